//! Metadata every owned object carries: name, namespace, the owner reference to its RedisCluster and the
//! cluster and recommended `app.kubernetes.io/*` labels.

use std::collections::BTreeMap;

use cnredis_api::RedisCluster;
use cnredis_api::names::LABEL_CLUSTER;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

/// `app.kubernetes.io/name`: the application, the same for every object of every cluster.
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/instance`: the RedisCluster.
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/managed-by`.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// `app.kubernetes.io/component`: what the object is for, one of the `COMPONENT_*` values.
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";

/// Value of [`LABEL_NAME`].
pub const NAME: &str = "cnredis";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "cnredis";

/// Instance pods and their PVCs.
pub const COMPONENT_DATABASE: &str = "database";
/// The `-leader`, `-replica` and `-any` Services.
pub const COMPONENT_SERVICE: &str = "service";
/// The auth, app and instance-API Secrets.
pub const COMPONENT_CREDENTIALS: &str = "credentials";
/// The PodDisruptionBudgets.
pub const COMPONENT_DISRUPTION_BUDGET: &str = "disruption-budget";
/// The instance manager's ServiceAccount, Role and RoleBinding.
pub const COMPONENT_INSTANCE_RBAC: &str = "instance-rbac";

/// Labels of every object owned by `cluster` with this component.
pub fn cluster_labels(cluster: &RedisCluster, component: &str) -> BTreeMap<String, String> {
    let name = cluster_name(cluster);
    BTreeMap::from([
        (LABEL_CLUSTER.to_string(), name.to_string()),
        (LABEL_NAME.to_string(), NAME.to_string()),
        (LABEL_INSTANCE.to_string(), name.to_string()),
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (LABEL_COMPONENT.to_string(), component.to_string()),
    ])
}

/// Metadata of an owned object: `name` in the cluster's namespace, owned by the cluster, with the
/// cluster's labels for `component`.
pub(super) fn owned_meta(cluster: &RedisCluster, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: cluster.metadata.namespace.clone(),
        labels: Some(cluster_labels(cluster, component)),
        owner_references: Some(owner_reference(cluster).into_iter().collect()),
        ..ObjectMeta::default()
    }
}

/// The controller owner reference to `cluster` (blocking its deletion): deleting the cluster deletes what
/// it owns, and the controller is woken by changes to owned objects. `None` only for a RedisCluster that
/// was never stored (no uid); every cluster the operator reconciles was read from the API server.
///
/// kube's `controller_owner_ref` leaves `blockOwnerDeletion` unset; it is set here so that a foreground
/// deletion of the cluster waits for its pods and volumes.
pub(super) fn owner_reference(cluster: &RedisCluster) -> Option<OwnerReference> {
    cluster.controller_owner_ref(&()).map(|owner| OwnerReference {
        block_owner_deletion: Some(true),
        ..owner
    })
}

/// The cluster's name (empty only for a RedisCluster that was never stored).
pub(super) fn cluster_name(cluster: &RedisCluster) -> &str {
    cluster.metadata.name.as_deref().unwrap_or_default()
}

/// The cluster's namespace. A RedisCluster read from the API server always has one; `default` is where
/// kubectl would have put one without.
pub(super) fn cluster_namespace(cluster: &RedisCluster) -> &str {
    cluster.metadata.namespace.as_deref().unwrap_or("default")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::resources::fixture::cluster;

    #[test]
    fn owned_objects_carry_the_cluster_and_recommended_labels() {
        let labels = cluster_labels(&cluster("cache").build(), COMPONENT_SERVICE);
        let expected: BTreeMap<String, String> = [
            ("cnredis.io/cluster", "cache"),
            ("app.kubernetes.io/name", "cnredis"),
            ("app.kubernetes.io/instance", "cache"),
            ("app.kubernetes.io/managed-by", "cnredis"),
            ("app.kubernetes.io/component", "service"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(labels, expected);
    }

    #[test]
    fn owner_reference_names_the_cluster_as_blocking_controller() {
        let owner = owner_reference(&cluster("cache").uid("0b1c").build());
        assert_eq!(
            owner,
            Some(OwnerReference {
                api_version: "redis.cnredis.io/v1".to_string(),
                kind: "RedisCluster".to_string(),
                name: "cache".to_string(),
                uid: "0b1c".to_string(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            })
        );
        let mut unstored = cluster("cache").build();
        unstored.metadata.uid = None;
        assert_eq!(owner_reference(&unstored), None);
    }

    #[test]
    fn owned_objects_live_in_the_cluster_namespace() {
        let meta = owned_meta(
            &cluster("cache").namespace("prod").build(),
            "x".to_string(),
            COMPONENT_DATABASE,
        );
        assert_eq!(meta.namespace.as_deref(), Some("prod"));
        assert_eq!(meta.name.as_deref(), Some("x"));
    }
}
