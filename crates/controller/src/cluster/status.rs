//! The RedisCluster status: primary names and serials (written before pods boot with them), then per
//! instance figures, counts, phase and conditions after each reconcile.

use cnredis_api::RedisCluster;
use cnredis_api::cluster::{InstanceStatus, condition};

use crate::conditions;
use cnredis_instance_client::wire::Role;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::observe::World;
use super::plan::{Observed, Plan};

/// Records the target/current primary and the latest serial.
pub async fn patch_primary(client: &Client, cluster: &RedisCluster, plan: &Plan) -> Result<(), kube::Error> {
    let previous = cluster.status.as_ref().and_then(|s| s.current_primary.clone());
    let mut status = json!({
        "targetPrimary": plan.target_primary,
        "currentPrimary": plan.current_primary,
        "latestGeneratedSerial": plan.latest_serial,
    });
    if plan.current_primary != previous {
        status["currentPrimaryTimestamp"] = json!(jiff::Timestamp::now());
    }
    merge(client, cluster, status).await
}

/// Records the resolved restore source, before the first instance is created.
pub async fn patch_recovery(
    client: &Client,
    cluster: &RedisCluster,
    recovery: &cnredis_api::cluster::RecoveryStatus,
) -> Result<(), kube::Error> {
    merge(client, cluster, json!({ "recovery": recovery })).await
}

/// Merges `status` (a JSON object of status fields) into the RedisCluster's status.
pub async fn merge(
    client: &Client,
    cluster: &RedisCluster,
    status: serde_json::Value,
) -> Result<(), kube::Error> {
    let api: Api<RedisCluster> = Api::namespaced(client.clone(), &cluster.namespace().unwrap_or_default());
    api.patch_status(
        &cluster.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    Ok(())
}

/// One instance's entry in `status.instancesStatus`. `last` is its entry before: an instance that does not
/// answer keeps the replication ID, offset and key count it last reported — the instance managers' guards
/// read them as "the cluster holds data", and forgetting them whenever every instance is down at once (a
/// full restart) would let an empty or stale primary boot as primary and its replicas resync from it.
pub fn instance_status(
    instance: &Observed,
    node: Option<String>,
    last: Option<&InstanceStatus>,
) -> InstanceStatus {
    let Some(report) = instance.report.as_ref().filter(|r| r.answered) else {
        let message = match &instance.pod {
            None => "no pod".to_string(),
            Some(pod) if pod.terminating => "pod is terminating".to_string(),
            Some(_) => "instance manager not answering".to_string(),
        };
        return InstanceStatus {
            name: instance.name.clone(),
            role: "unknown".to_string(),
            node,
            message: Some(message),
            replication_id: last.and_then(|l| l.replication_id.clone()),
            replication_offset: last.and_then(|l| l.replication_offset),
            keys: last.and_then(|l| l.keys),
            ..InstanceStatus::default()
        };
    };
    let replication = &report.replication;
    let message = if report.empty_after_restart {
        Some("restarted with an empty dataset while the cluster records data".to_string())
    } else if !report.fence_reasons.is_empty() {
        Some(format!("fenced: {}", report.fence_reasons.join(", ")))
    } else {
        report.last_error.clone()
    };
    InstanceStatus {
        name: instance.name.clone(),
        role: match report.role {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::Unknown => "unknown",
        }
        .to_string(),
        ready: report.ready,
        fenced: report.fenced,
        node,
        replication_id: Some(replication.replication_id.clone()),
        replication_offset: Some(replication.offset),
        lag_bytes: replication.lag_bytes,
        keys: Some(report.dataset.keys as i64),
        lag_seconds: replication.lag_seconds,
        link: replication.link.clone(),
        message,
    }
}

/// Writes everything the reconcile learnt.
pub async fn write(
    client: &Client,
    cluster: &RedisCluster,
    plan: &Plan,
    world: &World,
) -> Result<(), kube::Error> {
    let old = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;
    let instances: Vec<InstanceStatus> = world
        .instances
        .iter()
        .map(|i| {
            let node = world
                .pods
                .get(&i.name)
                .and_then(|p| p.spec.as_ref()?.node_name.clone());
            let last = old.instances_status.iter().find(|l| l.name == i.name);
            instance_status(i, node, last)
        })
        .collect();
    let ready = instances.iter().filter(|i| i.ready).count() as i32;
    let primary = plan
        .current_primary
        .as_deref()
        .and_then(|p| instances.iter().find(|i| i.name == p));
    let primary_ok = primary.is_some_and(|p| p.role == "primary" && p.ready && !p.fenced);
    let replicas: Vec<&InstanceStatus> = instances
        .iter()
        .filter(|i| Some(i.name.as_str()) != plan.current_primary.as_deref())
        .collect();
    let replication_ok = replicas
        .iter()
        .all(|r| r.role == "replica" && r.link.as_deref() == Some("up"));
    let mut conditions = vec![
        conditions::condition(
            &old.conditions,
            condition::READY,
            plan.healthy,
            if plan.healthy {
                "ClusterReady"
            } else {
                "Reconciling"
            },
            &plan.phase_reason,
            generation,
        ),
        conditions::condition(
            &old.conditions,
            condition::PRIMARY_AVAILABLE,
            primary_ok,
            if primary_ok { "PrimaryServing" } else { "NoPrimary" },
            &match (&plan.current_primary, primary_ok) {
                (Some(p), true) => format!("{p} accepts writes"),
                (Some(p), false) => format!("{p} is not serving writes"),
                (None, _) => "no primary yet".to_string(),
            },
            generation,
        ),
        conditions::condition(
            &old.conditions,
            condition::REPLICATION_HEALTHY,
            replication_ok,
            if replication_ok {
                "ReplicasStreaming"
            } else {
                "ReplicaNotStreaming"
            },
            &format!(
                "{} of {} replicas linked",
                replicas
                    .iter()
                    .filter(|r| r.link.as_deref() == Some("up"))
                    .count(),
                replicas.len()
            ),
            generation,
        ),
    ];
    // Conditions other parts own (Failover, backups) are kept.
    let ours = [
        condition::READY,
        condition::PRIMARY_AVAILABLE,
        condition::REPLICATION_HEALTHY,
    ];
    conditions.extend(
        old.conditions
            .iter()
            .filter(|c| !ours.contains(&c.type_.as_str()))
            .cloned(),
    );
    let status = json!({
        "phase": plan.phase,
        "phaseReason": plan.phase_reason,
        "instances": instances.len(),
        "readyInstances": ready,
        "instancesStatus": instances,
        "conditions": conditions,
        "image": cluster.spec.image_name,
        "observedGeneration": generation,
    });
    if unchanged(&old, &status) {
        return Ok(());
    }
    merge(client, cluster, status).await
}

/// Every field of `update` already has that value in `old`: writing it would only wake watchers.
fn unchanged(old: &cnredis_api::RedisClusterStatus, update: &serde_json::Value) -> bool {
    let Ok(old) = serde_json::to_value(old) else {
        return false;
    };
    let Some(fields) = update.as_object() else {
        return false;
    };
    fields
        .iter()
        .all(|(key, value)| old.get(key).unwrap_or(&serde_json::Value::Null) == value)
}

#[cfg(test)]
mod tests {
    use cnredis_instance_client::wire::InstanceReport;

    use super::*;
    use crate::cluster::plan::PodFacts;
    use crate::cluster::report_fixture::report;

    fn instance(report: Option<InstanceReport>) -> Observed {
        Observed {
            name: "c-1".to_string(),
            serial: 1,
            pod: Some(PodFacts::default()),
            pvc: true,
            report,
            outdated: false,
        }
    }

    #[test]
    fn an_instance_that_does_not_answer_keeps_the_data_it_last_reported() {
        let mut answering = report(Role::Replica);
        answering.replication.replication_id = "aaaa".to_string();
        answering.replication.offset = 4242;
        answering.dataset.keys = 7;
        let last = instance_status(&instance(Some(answering)), None, None);
        assert_eq!((last.replication_offset, last.keys), (Some(4242), Some(7)));

        // Down (a full restart): the guards still see that the cluster holds data.
        let down = instance_status(&instance(None), None, Some(&last));
        assert_eq!(down.role, "unknown");
        assert!(!down.ready);
        assert_eq!(down.message.as_deref(), Some("instance manager not answering"));
        assert_eq!(
            (down.replication_id.as_deref(), down.replication_offset, down.keys),
            (Some("aaaa"), Some(4242), Some(7))
        );

        // Back, empty: what it reports now replaces what it reported before.
        let empty = instance_status(&instance(Some(report(Role::Replica))), None, Some(&down));
        assert_eq!((empty.replication_offset, empty.keys), (Some(0), Some(0)));
    }
}
