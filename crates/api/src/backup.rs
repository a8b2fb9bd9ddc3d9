//! `RedisBackup`: one backup of one RedisCluster to its object store.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{BackupTarget, ClusterReference};

/// Specification of a RedisBackup. Immutable: to take another backup, create another RedisBackup.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "redis.cnredis.io",
    version = "v1",
    kind = "RedisBackup",
    doc = "One backup of one RedisCluster to its object store.",
    plural = "redisbackups",
    shortname = "rbak",
    category = "cnredis",
    namespaced,
    status = "RedisBackupStatus",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.cluster.name"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Instance","type":"string","jsonPath":".status.instance","description":"Pod the backup was taken from"}"#,
    printcolumn = r#"{"name":"Size","type":"integer","jsonPath":".status.sizeBytes","description":"Bytes written to the object store"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self == oldSelf")
    .message("the spec of a RedisBackup cannot change; create a new RedisBackup instead"))]
#[serde(rename_all = "camelCase")]
pub struct RedisBackupSpec {
    /// The RedisCluster to back up; it must have `spec.backup` configured.
    pub cluster: ClusterReference,
    /// Instance to take the backup from; absent means the cluster's `spec.backup.target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<BackupTarget>,
    /// Seconds the backup may take, from when an instance starts it, before it is failed. Default 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 86400))]
    pub timeout_seconds: Option<u32>,
}

/// `spec.timeoutSeconds` when absent.
pub const DEFAULT_BACKUP_TIMEOUT_SECONDS: u32 = 3600;

/// Phase of a RedisBackup.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum BackupPhase {
    /// Accepted, waiting for an instance to take it.
    Pending,
    /// Snapshot taken or being uploaded.
    Running,
    /// Stored and verified.
    Completed,
    /// Failed; `status.error` says why.
    Failed,
}

/// Observed state of a RedisBackup.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RedisBackupStatus {
    /// Where the backup is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupPhase>,
    /// Pod the backup was taken from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Identifier of the backup inside the object store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// Full `s3://` path of the stored artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_path: Option<String>,
    /// When the snapshot started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the backup completed or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<Time>,
    /// Size of the stored artifact in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// Checksum of the stored artifact, `sha256:<hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Replication offset of the instance when the snapshot was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_offset: Option<i64>,
    /// Server that wrote the snapshot, e.g. `valkey 8.1.4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// Why the backup failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Standard conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
