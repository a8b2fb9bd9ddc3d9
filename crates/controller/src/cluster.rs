//! RedisCluster reconciliation: observe -> validate -> build -> apply -> status.

pub mod resources;
