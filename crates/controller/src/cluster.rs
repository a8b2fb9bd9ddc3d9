//! RedisCluster reconciliation: observe -> validate -> build -> apply -> status.

pub mod apply;
pub mod certificates;
pub mod failover;
pub mod fence;
pub mod health;
pub mod instance_api;
pub mod observe;
pub mod plan;
pub mod reconcile;
#[cfg(test)]
pub(crate) mod report_fixture;
pub mod resources;
pub mod spread;
pub mod status;
pub mod switchover;
