//! Reads the world of one RedisCluster: its pods and PVCs (by label), and the report of every instance
//! manager, polled in parallel with a short timeout so that one slow pod never stalls a reconcile.

use std::collections::BTreeMap;
use std::time::Duration;

use cnredis_api::RedisCluster;
use cnredis_api::names::{LABEL_CLUSTER, LABEL_ROLE, instance_serial};
use cnredis_instance_client::wire::InstanceReport;
use cnredis_instance_client::{InstanceClient, Target};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use super::plan::{Observed, PodFacts};

/// How long one instance API call may take inside a reconcile.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(3);

/// Annotation carrying the hash of the pod spec a pod was built from.
pub const POD_SPEC_HASH: &str = "cnredis.io/podSpecHash";

/// What was observed, with the raw pods (for status: node names).
pub struct World {
    pub instances: Vec<Observed>,
    pub pods: BTreeMap<String, Pod>,
    /// PVCs not being deleted, by name.
    pub pvcs: BTreeMap<String, PersistentVolumeClaim>,
}

pub async fn observe(
    client: &Client,
    instance_api: &InstanceClient,
    cluster: &RedisCluster,
) -> Result<World, kube::Error> {
    let namespace = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let selector = ListParams::default().labels(&format!("{LABEL_CLUSTER}={name}"));
    let pods = Api::<Pod>::namespaced(client.clone(), &namespace)
        .list(&selector)
        .await?;
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace)
        .list(&selector)
        .await?;

    // Only what the cluster owns: a pod or PVC anyone else labels as one of its instances is ignored.
    let uid = cluster.uid().unwrap_or_default();
    let pods: Vec<Pod> = pods.items.into_iter().filter(|p| owned_by(p, &uid)).collect();
    let pvcs: Vec<PersistentVolumeClaim> = pvcs.items.into_iter().filter(|p| owned_by(p, &uid)).collect();
    let mut instances: BTreeMap<String, Observed> = BTreeMap::new();
    fn entry<'a>(
        instances: &'a mut BTreeMap<String, Observed>,
        cluster: &str,
        pod_name: &str,
    ) -> Option<&'a mut Observed> {
        let serial = instance_serial(cluster, pod_name)?;
        Some(instances.entry(pod_name.to_string()).or_insert_with(|| Observed {
            name: pod_name.to_string(),
            serial,
            ..Observed::default()
        }))
    }
    let mut live_pvcs = BTreeMap::new();
    for pvc in pvcs {
        if pvc.metadata.deletion_timestamp.is_none()
            && let Some(instance) = entry(&mut instances, &name, &pvc.name_any())
        {
            instance.pvc = true;
            live_pvcs.insert(pvc.name_any(), pvc);
        }
    }
    let mut by_name = BTreeMap::new();
    for pod in pods {
        let Some(instance) = entry(&mut instances, &name, &pod.name_any()) else {
            continue;
        };
        let status = pod.status.clone().unwrap_or_default();
        instance.pod = Some(PodFacts {
            terminating: pod.metadata.deletion_timestamp.is_some(),
            ready: status
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            failed: status.phase.as_deref() == Some("Failed"),
            spec_hash: pod.annotations().get(POD_SPEC_HASH).cloned(),
            role_label: pod.labels().get(LABEL_ROLE).cloned(),
            backup_credentials: pod
                .spec
                .iter()
                .flat_map(|s| s.volumes.iter().flatten())
                .any(|v| v.name == crate::cluster::resources::BACKUP_CREDENTIALS_VOLUME),
        });
        by_name.insert(pod.name_any(), pod);
    }

    let polls = by_name.iter().filter_map(|(pod_name, pod)| {
        if pod.metadata.deletion_timestamp.is_some() {
            return None;
        }
        let target = super::instance_api::api_target(cluster, pod)?;
        let pod_name = pod_name.clone();
        Some(async move {
            let report = poll(instance_api, &target).await;
            (pod_name, report)
        })
    });
    for (pod_name, report) in futures::future::join_all(polls).await {
        if let Some(instance) = instances.get_mut(&pod_name) {
            instance.report = report;
        }
    }
    let mut instances: Vec<Observed> = instances.into_values().collect();
    instances.sort_by_key(|i| i.serial);
    Ok(World {
        instances,
        pods: by_name,
        pvcs: live_pvcs,
    })
}

/// `object` has a controller owner reference to the cluster with this UID.
pub fn owned_by(object: &impl kube::Resource, cluster_uid: &str) -> bool {
    !cluster_uid.is_empty()
        && object.meta().owner_references.as_ref().is_some_and(|owners| {
            owners
                .iter()
                .any(|o| o.uid == cluster_uid && o.controller == Some(true))
        })
}

async fn poll(client: &InstanceClient, target: &Target) -> Option<InstanceReport> {
    match tokio::time::timeout(POLL_TIMEOUT, client.status(target)).await {
        Ok(Ok(report)) => Some(report),
        Ok(Err(error)) => {
            tracing::debug!(%target, %error, "instance API did not answer");
            None
        }
        Err(_) => {
            tracing::debug!(%target, "instance API timed out");
            None
        }
    }
}
