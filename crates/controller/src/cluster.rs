//! RedisCluster reconciliation: observe -> validate -> build -> apply -> status.

pub mod observe;
pub mod plan;
pub mod quantity;
pub mod reconcile;
pub mod resources;
pub mod status;
pub mod switchover;
