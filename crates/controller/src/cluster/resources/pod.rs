//! The Pod of one instance, `<cluster>-<serial>`: the init container that installs `cnredis` into the
//! unmodified engine image, the `server` container running `cnredis instance run` as PID 1, their volumes,
//! and the hash of its spec that tells a rolling update which pods are out of date.

mod containers;
mod volumes;

pub use volumes::BACKUP_CREDENTIALS_VOLUME;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use cnredis_api::RedisCluster;
use cnredis_api::names::{ANNOTATION_RESTARTED_AT, LABEL_INSTANCE_NAME, LABEL_ROLE, instance_name};
use k8s_openapi::api::core::v1::{Pod, PodSecurityContext, PodSpec, SeccompProfile};
use kube::ResourceExt;

use super::meta::{COMPONENT_DATABASE, cluster_name, owned_meta};
use super::rbac::instance_service_account;
use super::scheduling;

/// Annotation on every instance pod: [`pod_spec_hash`] of the spec it was built with.
pub const ANNOTATION_POD_SPEC_HASH: &str = "cnredis.io/podSpecHash";

/// uid and gid of the `valkey`/`redis` user in the official images: the server runs as the user that owns
/// the data files those images create, so a volume written by a plain image stays readable.
const ENGINE_USER: i64 = 999;

/// What an instance pod is built from.
#[derive(Clone, Copy, Debug)]
pub struct PodInputs<'a> {
    pub cluster: &'a RedisCluster,
    /// The instance's serial: the pod is `<cluster>-<serial>`.
    pub serial: u32,
    /// Image of the operator, whose `cnredis` binary the init container copies into the pod.
    pub operator_image: &'a str,
    /// Value of the `cnredis.io/role` label (`primary` or `replica`). `None` leaves the label off: the role
    /// is not known yet, or the pod is a fenced primary that no Service may route to.
    pub role: Option<&'a str>,
}

/// The instance pod `<cluster>-<serial>`, annotated with the hash of its spec.
pub fn desired_pod(inputs: &PodInputs) -> Pod {
    let cluster = inputs.cluster;
    let name = instance_name(cluster_name(cluster), inputs.serial);

    let mut metadata = owned_meta(cluster, name.clone(), COMPONENT_DATABASE);
    let labels = metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(LABEL_INSTANCE_NAME.to_string(), name.clone());
    if let Some(role) = inputs.role {
        labels.insert(LABEL_ROLE.to_string(), role.to_string());
    }

    let mut pod = Pod {
        metadata,
        spec: Some(pod_spec(cluster, &name, inputs.operator_image)),
        status: None,
    };
    let mut annotations = BTreeMap::new();
    if let Some(restarted) = cluster.annotations().get(ANNOTATION_RESTARTED_AT) {
        annotations.insert(ANNOTATION_RESTARTED_AT.to_string(), restarted.clone());
    }
    pod.metadata.annotations = Some(annotations);
    let hash = pod_spec_hash(&pod);
    pod.metadata
        .annotations
        .get_or_insert_default()
        .insert(ANNOTATION_POD_SPEC_HASH.to_string(), hash);
    pod
}

/// Hash of what a rolling update must roll out: the pod's spec and the restart asked for on the cluster
/// (`cnredis.io/restartedAt`, e.g. by `kubectl cnredis restart`), and nothing else of its metadata (a
/// role label changes on every switchover without the pod being out of date). FNV-1a 64 over the spec's
/// JSON, as 16 hex digits: stable across processes and operator restarts, unlike `std`'s randomly seeded
/// hasher.
pub fn pod_spec_hash(pod: &Pod) -> String {
    // The JSON of a k8s-openapi struct is deterministic: fields in declaration order, maps are BTreeMaps.
    let mut json = serde_json::to_vec(&pod.spec).expect("a PodSpec serializes to JSON");
    if let Some(restarted) = pod.annotations().get(ANNOTATION_RESTARTED_AT) {
        json.extend_from_slice(b"\nrestartedAt=");
        json.extend_from_slice(restarted.as_bytes());
    }
    format!("{:016x}", fnv1a_64(&json))
}

fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

fn pod_spec(cluster: &RedisCluster, pod_name: &str, operator_image: &str) -> PodSpec {
    let spec = &cluster.spec;
    let volumes = volumes::pod_volumes(cluster, pod_name);
    PodSpec {
        hostname: Some(pod_name.to_string()),
        service_account_name: Some(instance_service_account(cluster_name(cluster))),
        // The instance manager talks to the API server (cluster watch, primary lease) with this token.
        automount_service_account_token: Some(true),
        // Service environment variables would change with every Service in the namespace, and the
        // instance manager does not read them.
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(i64::from(spec.stop_delay_seconds)),
        priority_class_name: spec.priority_class_name.clone(),
        image_pull_secrets: non_empty(spec.image_pull_secrets.clone()),
        security_context: Some(pod_security_context()),
        init_containers: Some(vec![containers::bootstrap(operator_image, &volumes)]),
        containers: vec![containers::server(cluster, &volumes)],
        volumes: Some(volumes.iter().map(|v| v.volume.clone()).collect()),
        affinity: scheduling::affinity(cluster),
        node_selector: scheduling::node_selector(cluster),
        tolerations: non_empty(spec.affinity.tolerations.clone()),
        topology_spread_constraints: non_empty(spec.topology_spread_constraints.clone()),
        ..PodSpec::default()
    }
}

fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(ENGINE_USER),
        run_as_group: Some(ENGINE_USER),
        fs_group: Some(ENGINE_USER),
        // A data volume of millions of files is not walked and chowned on every pod start.
        fs_group_change_policy: Some("OnRootMismatch".to_string()),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            localhost_profile: None,
        }),
        ..PodSecurityContext::default()
    }
}

/// `None` for an empty list: an absent field and an empty one are the same to the API server, and
/// leaving it out keeps the applied object minimal.
pub(super) fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}
