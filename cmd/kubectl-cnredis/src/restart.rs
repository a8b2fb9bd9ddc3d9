//! `restart CLUSTER [INSTANCE]`: a rolling restart of every instance through the operator's rolling
//! update (replicas first, the primary last by switchover), or the restart of one replica by deleting
//! its pod (the operator recreates it on its volume and it resyncs).

use std::time::{Duration, Instant};

use cnredis_api::names::ANNOTATION_RESTARTED_AT;
use k8s_openapi::api::core::v1::Pod;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};

use crate::connect::Kube;
use crate::follow::{self, Look, Outcome};
use crate::observe;

pub async fn cluster(kube: &Kube, name: &str, wait: Option<Duration>) -> anyhow::Result<()> {
    let cluster = observe::cluster(kube, name).await?;
    let at = follow::stamp(kube, name, ANNOTATION_RESTARTED_AT).await?;
    println!("rolling restart of {name} requested ({ANNOTATION_RESTARTED_AT}={at})");
    let Some(timeout) = wait else { return Ok(()) };
    let wanted = cluster.spec.instances;
    let look = || async {
        let cluster = observe::cluster(kube, name).await?;
        let pods = observe::pods(kube, &cluster).await?;
        let restarted = pods
            .iter()
            .filter(|p| p.annotations().get(ANNOTATION_RESTARTED_AT) == Some(&at) && is_ready(p))
            .count();
        let status = cluster.status.clone().unwrap_or_default();
        let phase = status.phase.unwrap_or_default();
        Ok(Look {
            done: i32::try_from(restarted).unwrap_or(0) >= wanted
                && phase == "Healthy"
                && status.ready_instances >= wanted,
            line: format!("{restarted}/{wanted} restarted and ready, phase {phase}"),
        })
    };
    match follow::follow(timeout, Duration::from_secs(1), look).await? {
        Outcome::Done(seconds) => println!("{name} restarted in {seconds:.1}s"),
        Outcome::TimedOut(last) => anyhow::bail!(
            "the rolling restart of {name} has not completed after {}s ({last}); it goes on",
            timeout.as_secs()
        ),
    }
    Ok(())
}

pub async fn instance(kube: &Kube, name: &str, instance: &str, wait: Option<Duration>) -> anyhow::Result<()> {
    let cluster = observe::cluster(kube, name).await?;
    let primary = cluster.status.as_ref().and_then(|s| s.current_primary.clone());
    if primary.as_deref() == Some(instance) {
        anyhow::bail!(
            "{instance} is the primary of {name}: restarting it would stop writes until a failover; \
             promote a replica first (`kubectl cnredis promote {name} INSTANCE`), or restart the whole \
             cluster (`kubectl cnredis restart {name}`), which switches over before the primary restarts"
        );
    }
    let pods = observe::pods(kube, &cluster).await?;
    let Some(pod) = pods.iter().find(|p| p.name_any() == instance) else {
        let names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
        anyhow::bail!("{instance} is not a pod of {name} (pods: {})", names.join(", "));
    };
    let old_uid = pod.uid();
    let api: Api<Pod> = Api::namespaced(kube.client.clone(), &kube.namespace);
    api.delete(instance, &DeleteParams::default()).await?;
    println!("{instance} deleted; the operator recreates it on its volume");
    let Some(timeout) = wait else { return Ok(()) };
    let clock = Instant::now();
    loop {
        let fresh = api.get_opt(instance).await?.filter(|p| p.uid() != old_uid);
        if let Some(pod) = fresh.filter(is_ready)
            && observe::instance_report(&kube.client, &kube.namespace, &pod.name_any())
                .await
                .is_ok_and(|r| r.ready)
        {
            println!(
                "{instance} restarted and ready in {:.1}s",
                clock.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if clock.elapsed() > timeout {
            anyhow::bail!(
                "{instance} is not ready {}s after its restart; see `kubectl cnredis status {name}`",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
