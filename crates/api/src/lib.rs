//! The `redis.cnredis.io/v1` API: custom resource types, the names and labels every part shares, and
//! the generator of the API reference. No client IO lives here.

pub mod backup;
pub mod cluster;
pub mod common;
pub mod names;
pub mod quantity;
pub mod reference;
pub mod scheduled_backup;

pub use backup::{RedisBackup, RedisBackupSpec, RedisBackupStatus};
pub use cluster::{RedisCluster, RedisClusterSpec, RedisClusterStatus};
pub use scheduled_backup::{RedisScheduledBackup, RedisScheduledBackupSpec, RedisScheduledBackupStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD of the API, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        RedisCluster::crd(),
        RedisBackup::crd(),
        RedisScheduledBackup::crd(),
    ]
}

/// One CRD as YAML, as written to `manifests/crds/<plural>.yaml`.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> String {
    serde_saphyr::to_string(crd).expect("a CRD serializes to YAML")
}

/// Every CRD as one multi-document YAML stream (what `cnredis crd` prints).
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| format!("---\n{}", crd_yaml(crd)))
        .collect()
}
