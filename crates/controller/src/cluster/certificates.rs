//! Each instance's instance-API server certificate, in its own Secret `<pod>-api` that only its pod
//! mounts and whose only name is the pod's: issued before the pod is created, renewed before it expires,
//! deleted once the instance is gone (no pod, no PVC). The operator verifies that name on every call, so
//! a pod IP that now belongs to another instance fails the handshake rather than being fenced, promoted
//! or demoted in the place of the instance the operator meant. Pods created by an operator that gave the
//! whole cluster one certificate keep theirs, renewed, until the rolling update replaces them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use cnredis_api::RedisCluster;
use cnredis_api::names::{
    LABEL_CLUSTER, instance_api_secret, instance_api_secret_of, instance_name, instance_serial,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use super::apply::{ReconcileError, apply};
use super::observe::{World, owned_by};
use super::resources;
use crate::context::Context;
use crate::credentials;
use crate::events::publish;

/// The instance-API Secrets `cluster` needs, by name, with the name the certificate in each must carry:
/// one per instance that has a pod or a PVC or is about to be created (`create`), and the cluster-wide
/// one while a pod still mounts it.
pub fn wanted(cluster: &RedisCluster, world: &World, create: &[u32]) -> BTreeMap<String, String> {
    let (name, namespace) = (cluster.name_any(), cluster.namespace().unwrap_or_default());
    let instances = world
        .instances
        .iter()
        .filter(|i| i.pod.is_some() || i.pvc)
        .map(|i| i.name.clone())
        .chain(create.iter().map(|&serial| instance_name(&name, serial)));
    let mut wanted: BTreeMap<String, String> = instances
        .map(|pod| {
            let server_name = cnredis_pki::instance_server_name(&pod, &name, &namespace);
            (instance_api_secret_of(&pod), server_name)
        })
        .collect();
    if world
        .pods
        .values()
        .any(|pod| super::instance_api::mounts_shared_api_secret(cluster, pod))
    {
        wanted.insert(
            instance_api_secret(&name),
            cnredis_pki::instance_api_server_name(&name, &namespace),
        );
    }
    wanted
}

/// The instance-API Secrets among `existing` (Secrets the cluster owns) that are no longer `wanted`.
pub fn unwanted<'a>(
    cluster: &str,
    existing: impl IntoIterator<Item = &'a str>,
    wanted: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    let ours = |secret: &str| {
        secret == instance_api_secret(cluster)
            || secret
                .strip_suffix("-api")
                .is_some_and(|pod| instance_serial(cluster, pod).is_some())
    };
    existing
        .into_iter()
        .filter(|secret| ours(secret) && !wanted.contains_key(*secret))
        .map(str::to_string)
        .collect()
}

/// Issues what is missing, from another CA or near expiry, and deletes what no instance needs.
pub async fn ensure(
    cluster: &RedisCluster,
    ctx: &Context,
    namespace: &str,
    world: &World,
    create: &[u32],
) -> Result<(), ReconcileError> {
    let name = cluster.name_any();
    let uid = cluster.metadata.uid.clone().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let existing: BTreeMap<String, Secret> = secrets
        .list(&ListParams::default().labels(&format!("{LABEL_CLUSTER}={name}")))
        .await?
        .items
        .into_iter()
        .filter(|secret| owned_by(secret, &uid))
        .map(|secret| (secret.name_any(), secret))
        .collect();
    let wanted = wanted(cluster, world, create);
    let now = SystemTime::now();
    let mut issued = Vec::new();
    for (secret_name, server_name) in &wanted {
        if !credentials::certificate_due(existing.get(secret_name), &ctx.ca, now) {
            continue;
        }
        let certificate = credentials::issue_instance_api(&ctx.ca, server_name)?;
        let secret =
            resources::desired_instance_api_secret(cluster, secret_name, ctx.ca.cert_pem(), &certificate);
        apply(&ctx.client, namespace, &secret).await?;
        issued.push(secret_name.as_str());
    }
    if !issued.is_empty() {
        let note = format!("issued the instance API certificate in {}", issued.join(", "));
        publish(
            ctx,
            cluster,
            EventType::Normal,
            "CertificateIssued",
            "Issue",
            &note,
        )
        .await;
    }
    for secret_name in unwanted(&name, existing.keys().map(String::as_str), &wanted) {
        match secrets.delete(&secret_name, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(cluster = %name, secret = %secret_name, "deleted an instance API certificate no instance uses")
            }
            Err(kube::Error::Api(response)) if response.code == 404 => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::plan::{Observed, PodFacts};
    use cnredis_api::RedisClusterSpec;
    use k8s_openapi::api::core::v1::{Pod, PodSpec, SecretVolumeSource, Volume};

    fn cluster() -> RedisCluster {
        let mut cluster = RedisCluster::new("cache", RedisClusterSpec::with_defaults());
        cluster.metadata.namespace = Some("prod".to_string());
        cluster
    }

    fn pod(name: &str, secret: &str) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.to_string());
        pod.spec = Some(PodSpec {
            volumes: Some(vec![Volume {
                name: "instance-api".to_string(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(secret.to_string()),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            }]),
            ..PodSpec::default()
        });
        pod
    }

    fn instance(serial: u32, pod: bool, pvc: bool) -> Observed {
        Observed {
            name: format!("cache-{serial}"),
            serial,
            pod: pod.then(PodFacts::default),
            pvc,
            ..Observed::default()
        }
    }

    #[test]
    fn every_instance_with_a_pod_a_volume_or_about_to_be_created_has_its_own_certificate() {
        let world = World {
            instances: vec![
                instance(1, true, true),
                instance(2, false, true),
                instance(3, true, false),
                instance(4, false, false),
            ],
            pods: [("cache-1", "cache-1-api"), ("cache-3", "cache-3-api")]
                .into_iter()
                .map(|(name, secret)| (name.to_string(), pod(name, secret)))
                .collect(),
            pvcs: BTreeMap::new(),
        };
        let wanted = wanted(&cluster(), &world, &[5]);
        assert_eq!(
            wanted.iter().map(|(s, n)| format!("{s} {n}")).collect::<Vec<_>>(),
            [
                "cache-1-api cache-1.cache-any.prod.svc",
                "cache-2-api cache-2.cache-any.prod.svc",
                "cache-3-api cache-3.cache-any.prod.svc",
                "cache-5-api cache-5.cache-any.prod.svc",
            ]
        );
        // Gone for good (no pod, no volume): its certificate goes; other Secrets of the cluster stay.
        let existing = [
            "cache-1-api",
            "cache-4-api",
            "cache-auth",
            "cache-app",
            "cache-10-api",
            "cache-x-api",
        ];
        assert_eq!(
            unwanted("cache", existing, &wanted)
                .into_iter()
                .collect::<Vec<_>>(),
            ["cache-10-api", "cache-4-api"]
        );
    }

    #[test]
    fn the_cluster_wide_certificate_stays_while_a_pod_mounts_it() {
        let mut world = World {
            instances: vec![instance(1, true, true), instance(2, true, true)],
            pods: [("cache-1", "cache-instance-api"), ("cache-2", "cache-2-api")]
                .into_iter()
                .map(|(name, secret)| (name.to_string(), pod(name, secret)))
                .collect(),
            pvcs: BTreeMap::new(),
        };
        let wanted_now = wanted(&cluster(), &world, &[]);
        assert_eq!(
            wanted_now.get("cache-instance-api").map(String::as_str),
            Some("cache-any.prod.svc")
        );
        assert!(unwanted("cache", ["cache-instance-api"], &wanted_now).is_empty());

        world
            .pods
            .insert("cache-1".to_string(), pod("cache-1", "cache-1-api"));
        let wanted_after = wanted(&cluster(), &world, &[]);
        assert!(!wanted_after.contains_key("cache-instance-api"));
        assert_eq!(
            unwanted("cache", ["cache-instance-api"], &wanted_after)
                .into_iter()
                .collect::<Vec<_>>(),
            ["cache-instance-api"]
        );
    }
}
