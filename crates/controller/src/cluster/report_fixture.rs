//! A test fixture: the report of an instance that answers with `role`, for the pure decisions' tests.

use cnredis_instance_client::wire::{Dataset, InstanceReport, LeaseStatus, Persistence, Replication, Role};

/// An answering instance of cluster `c` in `role`, ready (a replica's link up), with default figures.
pub fn report(role: Role) -> InstanceReport {
    InstanceReport {
        pod: String::new(),
        cluster: "c".to_string(),
        answered: role != Role::Unknown,
        role,
        fenced: false,
        fence_reasons: Vec::new(),
        empty_after_restart: false,
        restarted_primary: false,
        ready: true,
        replication: Replication {
            link: (role == Role::Replica).then(|| "up".to_string()),
            ..Replication::default()
        },
        dataset: Dataset::default(),
        persistence: Persistence::default(),
        lease: LeaseStatus::Held,
        engine: "valkey".to_string(),
        engine_version: "8.1.8".to_string(),
        manager_version: "0.1.0".to_string(),
        manager_uptime_seconds: 1,
        server_uptime_seconds: 1,
        server_restarts: 0,
        pending_restart: Vec::new(),
        reloaded_at: None,
        cluster_resource_version: None,
        last_error: None,
        restore: None,
        failsafe: None,
    }
}
