//! The JSON bodies of the instance API (port 8000), defined once for the instance manager that serves them
//! and the operator and the kubectl plugin that read them. Field names are camelCase on the wire.

use serde::{Deserialize, Serialize};

/// Paths of the instance API.
pub mod path {
    pub const HEALTHZ: &str = "/healthz";
    pub const READYZ: &str = "/readyz";
    pub const STATUS: &str = "/v1/status";
    pub const PROMOTE: &str = "/v1/promote";
    pub const DEMOTE: &str = "/v1/demote";
    pub const FENCE: &str = "/v1/fence";
    pub const UNFENCE: &str = "/v1/unfence";
    /// `POST` by the primary's instance manager to each replica's while it cannot renew its lease
    /// through the API server ([`super::FailsafeRequest`]); only another instance's certificate may call it.
    pub const FAILSAFE: &str = "/v1/failsafe";
    /// `POST` starts a backup ([`super::BackupRequest`]); `GET /v1/backups/{name}` reads its progress.
    pub const BACKUPS: &str = "/v1/backups";
}

/// Replication role reported by the server.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    Primary,
    Replica,
    /// The server did not answer, or its role could not be read.
    Unknown,
}

/// The primary lease as the instance manager sees it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum LeaseStatus {
    /// This pod holds the primary lease and renews it in time.
    Held,
    /// This pod held the lease and could not renew it in time: it refuses writes until confirmed.
    Expired,
    /// This pod does not hold the lease (it is not the primary).
    NotPrimary,
    /// This pod holds the lease without renewing it through the API server, which it cannot reach: every
    /// other instance it knows promised, within the lease's duration, to follow it and refuse promotion.
    Failsafe,
    /// The instance manager runs without a lease (no Kubernetes API, e.g. in integration tests).
    Disabled,
}

/// `GET /v1/status`: everything the operator needs to judge one instance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceReport {
    /// Pod name.
    pub pod: String,
    /// RedisCluster name.
    pub cluster: String,
    /// The server answered the last observation.
    pub answered: bool,
    pub role: Role,
    /// The server refuses writes because this instance manager fenced it.
    pub fenced: bool,
    /// Why it must refuse writes now, most important first (`requested`, `emptyAfterRestart`,
    /// `leaseExpired`, `noPrimaryKnown`, `awaitingInitialization`); empty when it may accept them.
    pub fence_reasons: Vec<String>,
    /// This pod should be primary but restarted with no dataset while the cluster records data: the
    /// operator must fail over rather than let replicas copy it.
    pub empty_after_restart: bool,
    /// This pod was the primary and its server restarted while the replicas hold data: it stays isolated
    /// and fenced (its dataset may be behind theirs) until the operator fails over.
    #[serde(default)]
    pub restarted_primary: bool,
    /// `/readyz` answers 200.
    pub ready: bool,
    pub replication: Replication,
    pub dataset: Dataset,
    pub persistence: Persistence,
    pub lease: LeaseStatus,
    /// `valkey` or `redis`.
    pub engine: String,
    /// e.g. `8.1.8`.
    pub engine_version: String,
    /// Version of the `cnredis` binary running as instance manager.
    pub manager_version: String,
    /// Seconds since the instance manager started.
    pub manager_uptime_seconds: u64,
    /// Seconds since the server (re)started, from `INFO server`.
    pub server_uptime_seconds: u64,
    /// Times the supervisor restarted the server after it exited.
    pub server_restarts: u32,
    /// Parameters changed in the spec that the server only takes at a restart.
    pub pending_restart: Vec<String>,
    /// The reload (`cnredis.io/reloadedAt`, RFC 3339) whose configuration and password files the
    /// instance manager has applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reloaded_at: Option<String>,
    /// `metadata.resourceVersion` of the RedisCluster as this instance manager last read it: what it
    /// knows of the spec and the status (`currentPrimary`, `targetPrimary`, the instances' records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_resource_version: Option<String>,
    /// The last error of applying the desired state, when the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// A restore of `status.recovery` before the server's first start: in progress, or why it failed
    /// (it is tried again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreReport>,
    /// The latest time this pod, as primary, held its lease by failsafe promises because it could not
    /// renew it through the API server (since the instance manager started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failsafe: Option<FailsafeEpisode>,
}

/// A stretch of time a primary held its lease by the failsafe promises of every other instance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FailsafeEpisode {
    /// When the first round of promises held the lease (RFC 3339).
    pub since: String,
    /// When a renewal through the API server ended it; absent while it lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The pods whose promises held it in its first round.
    pub promised_by: Vec<String>,
}

impl InstanceReport {
    /// Why this instance cannot take over from `primary` now, `None` when it can: its server answers, it
    /// is a replica, not loading, not in a full synchronisation, its link is up and it heard from the
    /// primary within `lag_bound_seconds`. Readiness is no test of this: a replica stays ready for a while
    /// after its link went down, to serve (stale) reads.
    pub fn not_in_sync(&self, primary: &str, lag_bound_seconds: i64) -> Option<String> {
        let replication = &self.replication;
        if !self.answered {
            return Some("its server does not answer".into());
        }
        if self.role != Role::Replica {
            return Some(format!("it is not a replica (role {:?})", self.role).to_lowercase());
        }
        if self.persistence.loading {
            return Some("it is loading its dataset".into());
        }
        if replication.sync_in_progress {
            return Some("a full synchronisation is running".into());
        }
        if replication.link.as_deref() != Some("up") {
            return Some(format!(
                "its link to {primary} is {}",
                replication.link.as_deref().unwrap_or("unknown")
            ));
        }
        let lag = replication.lag_seconds.unwrap_or(0);
        if lag > lag_bound_seconds {
            return Some(format!(
                "it last heard from {primary} {lag}s ago (bound: spec.failover.maxSyncReplicaLagSeconds = {lag_bound_seconds}s)"
            ));
        }
        None
    }
}

/// Where the first instance of a restored cluster is with its restore.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    /// e.g. `downloading s3://backups/e2e/bk/second/dump.rdb`.
    pub step: String,
    pub downloaded_bytes: u64,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Replication state, from `INFO replication`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Replication {
    /// `master_replid`.
    pub replication_id: String,
    /// `master_replid2`: the previous replication id, kept after a promotion for partial resyncs.
    pub replication_id2: String,
    /// `master_repl_offset`.
    pub offset: i64,
    /// `second_repl_offset`: up to which offset `replicationId2` is valid (-1 when unused).
    pub second_offset: i64,
    /// A replica's primary, `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// A replica's link: `up`, `down` or `syncing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Bytes a replica is behind the offset its primary last announced (0 when linked and caught up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<i64>,
    /// Seconds since a replica last heard from its primary (`master_last_io_seconds_ago`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<i64>,
    /// A full synchronisation is running.
    pub sync_in_progress: bool,
    /// Seconds since the instance manager first saw a replica's link down (or a synchronisation running)
    /// after it was last up; absent while the link is up. A replica that was in sync stays ready for
    /// `spec.failover.maxStaleReadSeconds` of it, serving reads that may be that stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_down_seconds: Option<u64>,
    /// Replicas connected to this server (a primary's view).
    pub connected_replicas: Vec<ConnectedReplica>,
}

/// One replica as its primary lists it (`slaveN:` lines).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConnectedReplica {
    pub ip: String,
    pub port: u16,
    /// `online`, `wait_bgsave`, `send_bulk`, ...
    pub state: String,
    pub offset: i64,
    /// Bytes behind this primary's offset.
    pub lag_bytes: i64,
    /// Seconds since the replica's last acknowledgement.
    pub lag_seconds: i64,
}

/// Size of the dataset.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Dataset {
    /// Keys in all databases.
    pub keys: u64,
    /// Keys with an expiry.
    pub expires: u64,
    /// `used_memory`.
    pub used_memory_bytes: u64,
    /// `used_memory_dataset`.
    pub dataset_bytes: u64,
    /// `maxmemory` (0 = no limit).
    pub maxmemory_bytes: u64,
}

/// Persistence state, from `INFO persistence`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Persistence {
    /// The spec's mode: `none`, `rdb`, `aof` or `rdb+aof`.
    pub mode: String,
    /// The server is loading its dataset.
    pub loading: bool,
    /// The dataset was loaded from a file on the data volume when the server last started.
    pub loaded_from_disk: bool,
    pub rdb_changes_since_last_save: u64,
    pub rdb_bgsave_in_progress: bool,
    /// Unix time of the last successful RDB save.
    pub rdb_last_save_time: i64,
    pub rdb_last_bgsave_ok: bool,
    pub aof_enabled: bool,
    pub aof_rewrite_in_progress: bool,
    pub aof_last_write_ok: bool,
}

/// `POST /v1/demote`: follow this primary.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DemoteRequest {
    pub primary_host: String,
    pub primary_port: u16,
}

/// `POST /v1/failsafe`: the primary asks a replica to promise that it follows it and refuses any
/// promotion for the lease's duration from now.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FailsafeRequest {
    /// The pod asking: the cluster's current primary, as its certificate must also say.
    pub primary: String,
}

/// The answer to a [`FailsafeRequest`]: the promise, or why not (a 409 carries the reason).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FailsafePromise {
    /// The replica giving the promise.
    pub pod: String,
    /// How long, from when it answered, it refuses promotion.
    pub hold_millis: u64,
}

/// The answer to a mutating call once what it asked for holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ActionResult {
    /// What was done, or that nothing needed doing (calls are idempotent).
    pub message: String,
    /// The role after the call.
    pub role: Role,
    pub fenced: bool,
}

/// The body of every non-2xx answer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    /// Machine-readable reason, e.g. `unauthenticated`, `forbidden`, `notTargetPrimary`, `serverDown`.
    pub reason: String,
    pub message: String,
}

/// Where backups are stored, as the operator resolved it from the RedisCluster: the credentials are files
/// in the pod (a projected Secret), named by `credentials`, never sent over the API.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StoreLocation {
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// Endpoint of an S3-compatible service; `None` means AWS S3.
    pub endpoint_url: Option<String>,
    pub region: String,
    /// Directory (under the instance manager's credentials root) holding `ACCESS_KEY_ID`,
    /// `SECRET_ACCESS_KEY` and optionally `SESSION_TOKEN`.
    pub credentials: String,
}

/// `POST /v1/backups`: take a backup named `name` of this instance's dataset. Idempotent per name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BackupRequest {
    /// The RedisBackup's name; also the backup's directory in the store.
    pub name: String,
    /// The RedisCluster's name and UID: a prefix holding another cluster's backups is refused.
    pub cluster: String,
    pub cluster_uid: String,
    pub store: StoreLocation,
    /// The backup fails if it has not completed within this many seconds.
    pub timeout_seconds: u64,
}

/// Where a backup taken by an instance is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum BackupPhase {
    /// Snapshotting (`BGSAVE`) or uploading.
    Running,
    /// The snapshot and its manifest are stored.
    Completed,
    Failed,
}

/// `GET /v1/backups/{name}` (and the answer to the POST).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BackupReport {
    pub name: String,
    pub phase: BackupPhase,
    /// What it is doing or did last, e.g. `waiting for BGSAVE`, `uploading`.
    pub step: String,
    /// RFC 3339.
    pub started_at: String,
    pub stopped_at: Option<String>,
    /// Bytes uploaded so far.
    pub uploaded_bytes: u64,
    /// The manifest, once completed.
    pub manifest: Option<BackupManifest>,
    /// Why it failed, for a user.
    pub error: Option<String>,
}

/// `manifest.json`, written next to the snapshot after it was stored: its presence marks a complete
/// backup. Restore and retention read it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BackupManifest {
    /// Format of this file; readers refuse versions they do not know.
    pub version: u32,
    pub cluster: String,
    pub cluster_uid: String,
    pub backup: String,
    /// Pod the snapshot was taken on, and its role then.
    pub instance: String,
    pub role: Role,
    /// `valkey` or `redis`, and its version.
    pub engine: String,
    pub engine_version: String,
    /// The object holding the snapshot, relative to the backup's directory (`dump.rdb`).
    pub file: String,
    /// `rdb`.
    pub format: String,
    pub size_bytes: u64,
    /// `sha256:<hex>` of the snapshot's bytes.
    pub checksum: String,
    /// Replication ID and offset when the snapshot was started.
    pub replication_id: String,
    pub replication_offset: i64,
    /// Keys in the dataset when the snapshot was started.
    pub keys: u64,
    /// RFC 3339.
    pub started_at: String,
    pub stopped_at: String,
}

/// Version of [`BackupManifest`] this code writes and reads.
pub const MANIFEST_VERSION: u32 = 1;
/// Name of the manifest object inside a backup's directory.
pub const MANIFEST_FILE: &str = "manifest.json";
