//! The controller's metrics (`/metrics` on port 8080): reconciles, their duration and errors by kind,
//! and instances by state.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::cluster::observe::World;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailoverLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    namespace: String,
    cluster: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackupLabels {
    namespace: String,
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackupResultLabels {
    namespace: String,
    cluster: String,
    result: String,
}

#[derive(Clone)]
pub struct Metrics {
    backup_last_success: Family<BackupLabels, Gauge>,
    backups: Family<BackupResultLabels, Counter>,
    backup_duration: Histogram,
    registry: Arc<Registry>,
    reconciles: Counter,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
    instances: Family<InstanceLabels, Gauge>,
    switchover_unavailability: Histogram,
    failovers: Family<FailoverLabels, Counter>,
    failovers_completed: Family<FailoverLabels, Counter>,
    failover_detection: Histogram,
    failover_duration: Histogram,
    failover_unavailability: Histogram,
    /// Serialises rendering with updates of the instance gauges.
    lock: Arc<Mutex<()>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cnredis");
        let reconciles = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]);
        let instances = Family::<InstanceLabels, Gauge>::default();
        registry.register("reconciles", "RedisCluster reconciles", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciles by error kind",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of a reconcile",
            duration.clone(),
        );
        registry.register("instances", "Instances by cluster and state", instances.clone());
        let switchover_unavailability = Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0]);
        registry.register(
            "switchover_write_unavailability_seconds",
            "Time the primary refused writes during a switchover",
            switchover_unavailability.clone(),
        );
        let failovers = Family::<FailoverLabels, Counter>::default();
        registry.register(
            "failovers_started",
            "Failovers started, by the reason the primary failed",
            failovers.clone(),
        );
        let failovers_completed = Family::<FailoverLabels, Counter>::default();
        registry.register(
            "failovers_completed",
            "Failovers completed, by the reason the primary failed",
            failovers_completed.clone(),
        );
        let buckets = [0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0];
        let failover_detection = Histogram::new(buckets);
        registry.register(
            "failover_detection_seconds",
            "From the first failing poll of the primary to the decision to fail over",
            failover_detection.clone(),
        );
        let failover_duration = Histogram::new(buckets);
        registry.register(
            "failover_duration_seconds",
            "From the decision to fail over to the promotion of the new primary",
            failover_duration.clone(),
        );
        let failover_unavailability = Histogram::new(buckets);
        registry.register(
            "failover_write_unavailability_seconds",
            "From the first failing poll of the primary to the promotion of the new primary",
            failover_unavailability.clone(),
        );
        let backup_last_success = Family::<BackupLabels, Gauge>::default();
        registry.register(
            "backup_last_success_timestamp_seconds",
            "Unix time the last successful backup of a cluster completed",
            backup_last_success.clone(),
        );
        let backups = Family::<BackupResultLabels, Counter>::default();
        registry.register(
            "backups",
            "Backups ended, by cluster and result (completed, failed)",
            backups.clone(),
        );
        let backup_duration =
            Histogram::new([1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0]);
        registry.register(
            "backup_duration_seconds",
            "From the start of a backup on its instance to its end",
            backup_duration.clone(),
        );
        Self {
            backup_last_success,
            backups,
            backup_duration,
            registry: Arc::new(registry),
            failovers,
            failovers_completed,
            failover_detection,
            failover_duration,
            failover_unavailability,
            reconciles,
            errors,
            duration,
            instances,
            switchover_unavailability,
            lock: Arc::default(),
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, took: Duration, error: Option<&'static str>) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
        if let Some(kind) = error {
            self.errors
                .get_or_create(&ErrorLabels {
                    kind: kind.to_string(),
                })
                .inc();
        }
    }

    pub fn switchover(&self, unavailable: Duration) {
        self.switchover_unavailability.observe(unavailable.as_secs_f64());
    }

    pub fn failover_started(&self, reason: &str, detection: Duration) {
        let labels = FailoverLabels {
            reason: reason.to_string(),
        };
        self.failovers.get_or_create(&labels).inc();
        self.failover_detection.observe(detection.as_secs_f64());
    }

    pub fn failover_completed(&self, reason: &str, took: Duration, unavailable: Duration) {
        let labels = FailoverLabels {
            reason: reason.to_string(),
        };
        self.failovers_completed.get_or_create(&labels).inc();
        self.failover_duration.observe(took.as_secs_f64());
        self.failover_unavailability.observe(unavailable.as_secs_f64());
    }

    pub fn observe_instances(&self, namespace: &str, cluster: &str, world: &World) {
        let _guard = self.lock.lock().unwrap_or_else(|poison| poison.into_inner());
        let mut counts =
            std::collections::BTreeMap::from([("ready", 0), ("not_ready", 0), ("unreachable", 0)]);
        for instance in &world.instances {
            let state = match &instance.report {
                Some(report) if report.ready => "ready",
                Some(_) => "not_ready",
                None => "unreachable",
            };
            *counts.entry(state).or_default() += 1;
        }
        for (state, count) in counts {
            let labels = InstanceLabels {
                namespace: namespace.to_string(),
                cluster: cluster.to_string(),
                state: state.to_string(),
            };
            self.instances.get_or_create(&labels).set(count);
        }
    }

    /// A backup of `cluster` ended after `took`; `completed_at` (Unix seconds) when it succeeded.
    pub fn backup_ended(&self, namespace: &str, cluster: &str, took: Duration, completed_at: Option<i64>) {
        let result = if completed_at.is_some() {
            "completed"
        } else {
            "failed"
        };
        self.backups
            .get_or_create(&BackupResultLabels {
                namespace: namespace.to_string(),
                cluster: cluster.to_string(),
                result: result.to_string(),
            })
            .inc();
        self.backup_duration.observe(took.as_secs_f64());
        if let Some(at) = completed_at {
            self.backup_last_success
                .get_or_create(&BackupLabels {
                    namespace: namespace.to_string(),
                    cluster: cluster.to_string(),
                })
                .set(at);
        }
    }

    pub fn render(&self) -> String {
        let _guard = self.lock.lock().unwrap_or_else(|poison| poison.into_inner());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("encoding to a String");
        text
    }
}
