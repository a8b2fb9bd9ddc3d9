//! The cnredis operator: reconciles RedisClusters into instance Pods, PVCs, Services, Secrets and a
//! PodDisruptionBudget, and keeps their status.

pub mod cluster;
