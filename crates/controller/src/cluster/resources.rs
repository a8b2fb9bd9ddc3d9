//! Desired objects of a RedisCluster: pure builders of every Pod, PVC, Service, Secret, PodDisruptionBudget
//! and RBAC object the cluster owns, with no client IO.
//!
//! Each builder returns the complete object (everything cnredis owns in it, every time) and is
//! deterministic (building twice gives equal objects), because the objects are server-side applied with one
//! forced field manager: a field left out of one apply would be removed from the live object.

mod meta;
mod pdb;
mod pod;
mod rbac;
mod scheduling;
mod secrets;
mod services;
mod storage;

#[cfg(test)]
mod fixture;

pub use meta::{
    COMPONENT_CREDENTIALS, COMPONENT_DATABASE, COMPONENT_DISRUPTION_BUDGET, COMPONENT_INSTANCE_RBAC,
    COMPONENT_SERVICE, LABEL_COMPONENT, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME, MANAGED_BY, NAME,
    cluster_labels,
};
pub use pdb::{desired_pdbs, primary_pdb_name, replicas_pdb_name};
pub use pod::{ANNOTATION_POD_SPEC_HASH, BACKUP_CREDENTIALS_VOLUME, PodInputs, desired_pod, pod_spec_hash};
pub use rbac::{desired_instance_rbac, instance_service_account};
pub use secrets::{
    APP_USERNAME, auth_secret_name, desired_app_secret, desired_auth_secret, desired_instance_api_secret,
};
pub use services::desired_services;
pub use storage::desired_pvc;
