//! The cnredis operator: reconciles RedisClusters into instance Pods, PVCs, Services, Secrets and
//! PodDisruptionBudgets, and keeps their status.

pub mod backup;
pub mod cluster;
pub mod conditions;
pub mod context;
pub mod credentials;
pub mod events;
pub mod failpoint;
pub mod leader;
pub mod memory;
pub mod metrics;
pub mod run;
