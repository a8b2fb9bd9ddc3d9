//! `RedisScheduledBackup`: creates RedisBackups of a cluster on a cron schedule.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{BackupTarget, ClusterReference};

/// Specification of a RedisScheduledBackup.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "redis.cnredis.io",
    version = "v1",
    kind = "RedisScheduledBackup",
    doc = "Creates RedisBackups of a RedisCluster on a cron schedule.",
    plural = "redisscheduledbackups",
    shortname = "rsbak",
    category = "cnredis",
    namespaced,
    status = "RedisScheduledBackupStatus",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.cluster.name"}"#,
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Suspend","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Last Backup","type":"date","jsonPath":".status.lastScheduleTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RedisScheduledBackupSpec {
    /// The RedisCluster to back up; it must have `spec.backup` configured.
    pub cluster: ClusterReference,
    /// Cron schedule with a seconds field: `second minute hour day-of-month month day-of-week`, in UTC,
    /// e.g. `0 0 2 * * *` for 02:00 every day.
    #[x_kube(validation = Rule::new("self.matches('^[^ ]+( +[^ ]+){5}$')")
        .message("schedule needs six fields (second minute hour day-of-month month day-of-week), e.g. '0 0 2 * * *'"))]
    #[schemars(length(max = 256))]
    pub schedule: String,
    /// Stop creating backups while true.
    #[serde(default)]
    pub suspend: bool,
    /// Also take a backup as soon as the schedule is created.
    #[serde(default)]
    pub immediate: bool,
    /// Owner of the RedisBackups created: `none` (they outlive the schedule), `self` (deleted with the
    /// schedule), `cluster` (deleted with the cluster). Artifacts in the store follow the cluster's
    /// retention policy either way.
    #[serde(default)]
    pub backup_owner_reference: BackupOwnerReference,
    /// Instance to take backups from; absent means the cluster's `spec.backup.target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<BackupTarget>,
}

/// Owner set on the RedisBackups a schedule creates.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum BackupOwnerReference {
    #[default]
    None,
    #[serde(rename = "self")]
    SelfReference,
    Cluster,
}

/// Observed state of a RedisScheduledBackup.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RedisScheduledBackupStatus {
    /// When the schedule was last evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_time: Option<Time>,
    /// When the last RedisBackup was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When the next RedisBackup will be created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// Name of the last RedisBackup created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_name: Option<String>,
    /// Standard conditions (e.g. an invalid schedule).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
