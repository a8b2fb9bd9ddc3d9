//! `RedisCluster`: a replicated Redis-protocol database, one primary and `instances - 1` replicas, each
//! instance a Pod and a PVC managed directly by the operator.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LocalObjectReference, NodeAffinity, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{BackupTarget, ObjectStore};

/// Image used when `spec.imageName` is not set.
pub const DEFAULT_IMAGE: &str = "valkey/valkey:8.1.4";

/// Redis parameters the operator owns. Setting one in `spec.parameters` is rejected at admission; the
/// dedicated spec field to use instead is named in the docs (`docs/api.md`).
pub const OPERATOR_OWNED_PARAMETERS: &[&str] = &[
    "aclfile",
    "appenddirname",
    "appendfilename",
    "appendfsync",
    "appendonly",
    "bind",
    "cluster-config-file",
    "cluster-enabled",
    "cluster-port",
    "daemonize",
    "dbfilename",
    "dir",
    "include",
    "loadmodule",
    "logfile",
    "masterauth",
    "masteruser",
    "maxmemory",
    "maxmemory-policy",
    "min-replicas-max-lag",
    "min-replicas-to-write",
    "min-slaves-max-lag",
    "min-slaves-to-write",
    "pidfile",
    "port",
    "primaryauth",
    "primaryuser",
    "protected-mode",
    "rename-command",
    "repl-ping-replica-period",
    "repl-ping-slave-period",
    "replica-announce-ip",
    "replica-announce-port",
    "replica-read-only",
    "replicaof",
    "requirepass",
    "slave-announce-ip",
    "slave-announce-port",
    "slave-read-only",
    "slaveof",
    "supervised",
    "tls-ca-cert-file",
    "tls-cert-file",
    "tls-key-file",
    "tls-port",
    "tls-replication",
    "unixsocket",
    "unixsocketperm",
    "user",
];

/// Specification of a RedisCluster.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "redis.cnredis.io",
    version = "v1",
    kind = "RedisCluster",
    doc = "A replicated Redis-protocol database (Valkey or Redis): one primary and instances - 1 replicas, with failover, backups and switchover managed by cnredis.",
    plural = "redisclusters",
    shortname = "rcl",
    category = "cnredis",
    namespaced,
    status = "RedisClusterStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Instances","type":"integer","jsonPath":".spec.instances","description":"Desired number of instances"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyInstances","description":"Instances ready and in sync"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase","description":"Lifecycle phase"}"#,
    printcolumn = r#"{"name":"Primary","type":"string","jsonPath":".status.currentPrimary","description":"Pod currently serving writes"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("self.metadata.name.size() <= 50")
        .message("a RedisCluster name must be at most 50 characters: its pods, services and secrets are named after it"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("a RedisCluster name must start with a letter and contain only lowercase letters, digits and '-': its Services are named after it")
)]
#[x_kube(
    validation = Rule::new("!has(self.failover) || self.failover.minSyncReplicas == 0 || self.failover.minSyncReplicas < self.instances")
        .message("failover.minSyncReplicas must be lower than instances: the primary needs that many replicas besides itself"),
    validation = Rule::new("!has(self.parameters) || !('save' in self.parameters) || !has(self.persistence) || self.persistence.mode in ['rdb', 'rdb+aof']")
        .message("parameters.save takes effect only with persistence.mode rdb or rdb+aof"),
    validation = Rule::new("has(self.bootstrap) == has(oldSelf.bootstrap) && (!has(self.bootstrap) || self.bootstrap == oldSelf.bootstrap)")
        .message("bootstrap is used only when the cluster is created and cannot change afterwards")
)]
#[serde(rename_all = "camelCase")]
pub struct RedisClusterSpec {
    /// Number of instances: one primary and `instances - 1` replicas.
    #[serde(default = "default_instances")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 16")
        .message("instances must be between 1 and 16 (one primary plus up to 15 replicas)"))]
    pub instances: i32,

    /// Topology. Only `standalone` (a primary with replicas, failover by the operator) is available in
    /// this release; `sentinel` and `cluster` (sharded) are reserved. Cannot change after creation.
    #[serde(default)]
    #[x_kube(
        validation = Rule::new("self == 'standalone'")
            .message("mode must be standalone: sentinel and cluster (sharded) modes are not available yet"),
        validation = Rule::new("self == oldSelf").message("mode cannot change after creation")
    )]
    pub mode: ClusterMode,

    /// Container image of the database: an unmodified `valkey/valkey` (default) or `redis` 7.2 image.
    /// Changing it rolls the instances, replicas first and the primary last.
    #[serde(default = "default_image")]
    #[schemars(length(min = 1, max = 512))]
    pub image_name: String,

    /// Pull policy of the database image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Always", "IfNotPresent", "Never"]))]
    pub image_pull_policy: Option<String>,

    /// Secrets used to pull the database image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// Compute resources of the database container. With requests equal to limits the pods get the
    /// Guaranteed QoS class; the memory limit sets `maxmemory` (see `memory`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Persistent volume of every instance.
    #[serde(default)]
    pub storage: StorageSpec,

    /// How the dataset is persisted to the volume.
    #[serde(default)]
    pub persistence: PersistenceSpec,

    /// `maxmemory` and eviction.
    #[serde(default)]
    pub memory: MemorySpec,

    /// Server parameters (`CONFIG SET` names), applied live when the server allows and by a rolling
    /// restart otherwise. Parameters the operator owns (port, dir, replicaof, requirepass, persistence
    /// and TLS files, ...) are rejected; use the dedicated fields instead.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = Rule::new(owned_parameters_rule())
        .message(Message::Expression(owned_parameters_message())))]
    pub parameters: BTreeMap<String, String>,

    /// Password authentication.
    #[serde(default)]
    pub auth: AuthSpec,

    /// TLS for client and replication traffic. Absent means plain TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,

    /// Placement of instances on nodes.
    #[serde(default)]
    pub affinity: AffinitySpec,

    /// Topology spread constraints added to every instance pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,

    /// Priority class of the instance pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,

    /// Create a PodDisruptionBudget so that a drain can never take the primary and the last in-sync
    /// replica together. Only created when `instances > 1`.
    #[serde(default = "default_true", rename = "enablePDB")]
    pub enable_pdb: bool,

    /// What happens to the PVC of an instance removed by scaling down.
    #[serde(default)]
    pub pvc_retention_policy: PvcRetentionPolicy,

    /// Whether a rolling update of the primary proceeds by itself (`unsupervised`) or waits for an
    /// explicit switchover by the user (`supervised`).
    #[serde(default)]
    pub primary_update_strategy: PrimaryUpdateStrategy,

    /// How the primary is updated: `switchover` to an in-sync replica first (no acknowledged write
    /// lost, a short write pause), or `restart` in place (longer unavailability, no role change).
    #[serde(default)]
    pub primary_update_method: PrimaryUpdateMethod,

    /// Automatic failover.
    #[serde(default)]
    pub failover: FailoverSpec,

    /// Seconds an instance is given to shut down (pod termination grace period).
    #[serde(default = "default_stop_delay")]
    #[schemars(range(min = 5, max = 3600))]
    pub stop_delay_seconds: i32,

    /// Backups to object storage for this cluster: where, and how long they are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupConfiguration>,

    /// How the dataset of a new cluster is created: empty (absent), or recovered from a backup.
    /// Used at creation only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<BootstrapSpec>,

    /// Log level of the instance manager.
    #[serde(default)]
    pub log_level: LogLevel,
}

/// CEL rule: every key of `spec.parameters` is absent from [`OPERATOR_OWNED_PARAMETERS`]
/// (case-insensitively, as Redis reads parameter names).
pub fn owned_parameters_rule() -> String {
    format!("self.all(k, !(k.lowerAscii() in {}))", owned_parameters_list())
}

/// CEL message expression of [`owned_parameters_rule`]: names the first offending parameter. (Joining
/// all of them with `.join(', ')` is what a user would like, but the API server estimates its cost over
/// unbounded key lengths at more than 100 times the budget and refuses the whole CRD.)
pub fn owned_parameters_message() -> String {
    format!(
        "'parameter ' + self.filter(k, k.lowerAscii() in {})[0] + ' is managed by cnredis and cannot be set; use the dedicated spec fields instead (see docs/api.md)'",
        owned_parameters_list()
    )
}

fn owned_parameters_list() -> String {
    let quoted: Vec<String> = OPERATOR_OWNED_PARAMETERS
        .iter()
        .map(|p| format!("'{p}'"))
        .collect();
    format!("[{}]", quoted.join(", "))
}

fn default_instances() -> i32 {
    1
}

fn default_image() -> String {
    DEFAULT_IMAGE.to_string()
}

fn default_true() -> bool {
    true
}

fn default_stop_delay() -> i32 {
    30
}

/// Topology of a RedisCluster.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ClusterMode {
    /// A primary and its replicas; the operator fails over.
    #[default]
    Standalone,
    /// Reserved: failover by Redis Sentinel.
    Sentinel,
    /// Reserved: sharded Redis Cluster.
    Cluster,
}

/// Persistent volume of each instance.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0")
        .message("storage.size can grow but not shrink"),
    validation = Rule::new("has(self.storageClass) == has(oldSelf.storageClass) && (!has(self.storageClass) || self.storageClass == oldSelf.storageClass)")
        .message("storage.storageClass cannot change after creation")
)]
pub struct StorageSpec {
    /// Size of each instance's PVC, e.g. `1Gi`. Can grow (where the StorageClass allows expansion),
    /// never shrink.
    #[serde(default = "default_storage_size")]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))")
        .message("storage.size must be a positive quantity such as 1Gi or 500Mi"))]
    #[schemars(length(max = 32))]
    pub size: String,
    /// StorageClass of the PVCs; absent means the cluster's default class. Cannot change after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
}

fn default_storage_size() -> String {
    "1Gi".to_string()
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            storage_class: None,
        }
    }
}

/// How the dataset is written to the volume.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PersistenceSpec {
    /// `none` (memory only: a restarted instance comes back empty and is re-synced or failed over),
    /// `rdb` (snapshots), `aof` (append-only file), `rdb+aof` (AOF with an RDB preamble: fast restarts,
    /// at most `appendFsync` of data lost on a crash).
    #[serde(default)]
    pub mode: PersistenceMode,
    /// How often the append-only file is fsynced (`appendfsync`); used with `aof` and `rdb+aof`.
    #[serde(default)]
    pub append_fsync: AppendFsync,
}

/// Persistence mode.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PersistenceMode {
    /// Memory only.
    #[serde(rename = "none")]
    None,
    /// RDB snapshots.
    #[serde(rename = "rdb")]
    Rdb,
    /// Append-only file.
    #[serde(rename = "aof")]
    Aof,
    /// Append-only file with an RDB preamble.
    #[default]
    #[serde(rename = "rdb+aof")]
    RdbAof,
}

/// `appendfsync` policy.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AppendFsync {
    /// fsync after every write: safest, slowest.
    Always,
    /// fsync once a second.
    #[default]
    Everysec,
    /// Leave flushing to the kernel.
    No,
}

/// Memory limits of the server.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MemorySpec {
    /// `maxmemory` as a percentage of the container's memory limit; the rest is headroom for
    /// replication buffers and copy-on-write during snapshots. Without a memory limit no `maxmemory`
    /// is set.
    #[serde(default = "default_maxmemory_percent")]
    #[schemars(range(min = 10, max = 95))]
    pub maxmemory_percent: i32,
    /// `maxmemory-policy`: what happens when `maxmemory` is reached.
    #[serde(default)]
    pub policy: EvictionPolicy,
}

fn default_maxmemory_percent() -> i32 {
    70
}

impl Default for MemorySpec {
    fn default() -> Self {
        Self {
            maxmemory_percent: default_maxmemory_percent(),
            policy: EvictionPolicy::default(),
        }
    }
}

/// `maxmemory-policy` values.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum EvictionPolicy {
    /// Refuse writes that need memory: no data is silently dropped.
    #[default]
    Noeviction,
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
}

/// Password authentication.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.enabled || !has(self.secretName)")
    .message("auth.secretName needs auth.enabled: true"))]
pub struct AuthSpec {
    /// Require a password. Turning it off leaves the database open to every pod that can reach it.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Secret (key `password`) holding the password. Absent: cnredis generates `<cluster>-auth`.
    /// A changed password is applied without restarting the instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

impl Default for AuthSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            secret_name: None,
        }
    }
}

/// TLS for client and replication traffic.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Secret of type `kubernetes.io/tls` with `tls.crt`, `tls.key` and `ca.crt`; its certificate must
    /// name the cluster's Services. Rotation is picked up without a restart.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// Placement of instances on nodes.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AffinitySpec {
    /// Keep instances of one cluster on different `topologyKey` domains: `preferred` (default: instances
    /// that came to share a domain, e.g. a pod recreated while a node was down, are spread again once a
    /// domain without instances could run one: the operator restarts a replica on its volume),
    /// `required` (pods stay Pending rather than share a domain) or `disabled`.
    #[serde(default)]
    pub pod_anti_affinity_type: PodAntiAffinityType,
    /// Node label that defines a failure domain for anti-affinity.
    #[serde(default = "default_topology_key")]
    #[schemars(length(min = 1, max = 317))]
    pub topology_key: String,
    /// Node labels an instance's node must have.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the instance pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Node affinity of the instance pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<NodeAffinity>,
}

fn default_topology_key() -> String {
    "kubernetes.io/hostname".to_string()
}

impl Default for AffinitySpec {
    fn default() -> Self {
        Self {
            pod_anti_affinity_type: PodAntiAffinityType::default(),
            topology_key: default_topology_key(),
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            node_affinity: None,
        }
    }
}

/// Strength of the pod anti-affinity between instances of one cluster.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum PodAntiAffinityType {
    #[default]
    Preferred,
    Required,
    Disabled,
}

/// Fate of a PVC whose instance was removed by scaling down.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PvcRetentionPolicy {
    /// Delete the PVC with its instance (its data is a replica's copy).
    #[default]
    Delete,
    /// Keep the PVC; it is not reused (serials are never reused) and must be deleted by hand.
    Retain,
}

/// Whether the primary's update waits for the user.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum PrimaryUpdateStrategy {
    #[default]
    Unsupervised,
    Supervised,
}

/// How the primary is updated.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum PrimaryUpdateMethod {
    #[default]
    Switchover,
    Restart,
}

/// Automatic failover.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailoverSpec {
    /// Seconds the primary must be continuously unhealthy (API or server unreachable, containers stopped,
    /// lease lapsed) before the operator fences it and promotes a replica. A pod deleted or gone, or a
    /// restarted server, fails over at once.
    #[serde(default = "default_failover_delay")]
    #[schemars(range(min = 1, max = 3600))]
    pub delay_seconds: i32,
    /// `min-replicas-to-write`: the primary refuses writes unless this many replicas are connected and
    /// no more than `maxSyncReplicaLagSeconds` behind. 0 turns the check off.
    #[serde(default)]
    #[schemars(range(min = 0, max = 15))]
    pub min_sync_replicas: i32,
    /// `min-replicas-max-lag` in seconds, used with `minSyncReplicas`.
    #[serde(default = "default_max_sync_lag")]
    #[schemars(range(min = 1, max = 3600))]
    pub max_sync_replica_lag_seconds: i32,
    /// Duration of the primary lease: a primary that can neither renew it through the API server nor
    /// hold it by the failsafe promises of every other instance refuses writes by itself before it runs
    /// out, and an unreachable primary is proven fenced once the operator has seen the lease unrenewed
    /// for this long plus 0.5 s on its own clock. It bounds the failover time of a partitioned or frozen
    /// primary; shorter leases mean more renewals (one every third of it).
    #[serde(default = "default_primary_lease")]
    #[schemars(range(min = 5, max = 300))]
    pub primary_lease_seconds: i32,
    /// Seconds a replica whose link to the primary is down stays ready, serving possibly stale reads
    /// through `-replica`, so that a failing primary is not also a read outage. 0: a replica leaves the
    /// endpoints as soon as its link drops.
    #[serde(default = "default_max_stale_read")]
    #[schemars(range(min = 0, max = 3600))]
    pub max_stale_read_seconds: i32,
}

/// Long enough that a server busy for two seconds (a fork, `DEBUG SLEEP 2`) is never failed over, short
/// enough that it never decides a partitioned primary's failover time: the 6 s lease does.
fn default_failover_delay() -> i32 {
    3
}

fn default_max_sync_lag() -> i32 {
    10
}

/// A lost or partitioned primary costs its clients about this long plus a second. A primary that cannot
/// renew it through the API server holds it by the failsafe promises of its replicas, so a short lease
/// does not turn an API server outage into a write outage.
fn default_primary_lease() -> i32 {
    6
}

fn default_max_stale_read() -> i32 {
    30
}

impl Default for FailoverSpec {
    fn default() -> Self {
        Self {
            delay_seconds: default_failover_delay(),
            min_sync_replicas: 0,
            max_sync_replica_lag_seconds: default_max_sync_lag(),
            max_stale_read_seconds: default_max_stale_read(),
            primary_lease_seconds: default_primary_lease(),
        }
    }
}

/// Backups of this cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupConfiguration {
    /// Where backups are stored.
    pub object_store: ObjectStore,
    /// How long backups are kept, e.g. `30d`, `4w`, `6m`; older artifacts are deleted from the store.
    /// Absent: kept forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[1-9][0-9]{0,3}[dwm]$')")
        .message("retentionPolicy must be a number of days, weeks or months such as 30d, 4w or 6m"))]
    pub retention_policy: Option<String>,
    /// Which instance backups are taken from.
    #[serde(default)]
    pub target: BackupTarget,
}

/// How the dataset of a new cluster is created.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapSpec {
    /// Restore the dataset from a backup into the new cluster's first instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoverySpec>,
}

/// Where a restored dataset comes from: exactly one of `backup` and `source`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.backup) != has(self.source)")
    .message("bootstrap.recovery needs exactly one of backup (a RedisBackup in this namespace) or source (an object store)"))]
pub struct RecoverySpec {
    /// A completed RedisBackup in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<LocalObjectReference>,
    /// An object store holding backups of a cluster that may no longer exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<RecoverySource>,
}

/// Backups in an object store, e.g. of a deleted cluster.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecoverySource {
    /// The store the backups were written to: the `spec.backup.objectStore` of the cluster that wrote
    /// them.
    pub object_store: ObjectStore,
    /// Name of the cluster that wrote the backups (their directory under `destinationPath`); absent
    /// means this cluster's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub cluster_name: Option<String>,
    /// ID of the backup to restore; absent means the newest completed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
}

/// A resolved restore source: the backup `<destinationPath>/<cluster>/<backupId>/` in `objectStore`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryStatus {
    /// The store holding the backup, with its credentials.
    pub object_store: ObjectStore,
    /// The cluster that wrote the backup.
    pub cluster: String,
    /// The backup restored (its directory under `<destinationPath>/<cluster>/`).
    pub backup_id: String,
    /// `sha256:<hex>` of the snapshot, from its manifest.
    pub checksum: String,
    /// Keys the manifest promises.
    pub keys: i64,
}

/// Instance manager log level.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

/// Observed state of a RedisCluster, written by the operator.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RedisClusterStatus {
    /// Lifecycle phase, e.g. `Setting up primary`, `Creating replicas`, `Healthy`, `Switchover in
    /// progress`, `Failing over`, `Upgrading`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// A sentence saying why the cluster is in its phase and what it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_reason: Option<String>,
    /// Standard conditions: `Ready`, `PrimaryAvailable`, `ReplicationHealthy`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Instances that exist.
    #[serde(default)]
    pub instances: i32,
    /// Instances that are ready and, for replicas, in sync.
    #[serde(default)]
    pub ready_instances: i32,
    /// Pod currently serving writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_primary: Option<String>,
    /// Pod that must become (or stay) primary; differs from `currentPrimary` during a switchover or
    /// failover. The instance manager promotes only the pod named here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_primary: Option<String>,
    /// When `currentPrimary` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_primary_timestamp: Option<Time>,
    /// Highest instance serial ever created; serials are never reused.
    #[serde(default)]
    pub latest_generated_serial: i32,
    /// Per-instance replication and health.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances_status: Vec<InstanceStatus>,
    /// Resource versions of the Secrets the instances use, to notice rotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets_resource_version: BTreeMap<String, String>,
    /// Image the instances run (or are being rolled to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Completion time of the last successful backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_backup: Option<Time>,
    /// Time of the last failed backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed_backup: Option<Time>,
    /// `metadata.generation` of the spec this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The primary has been seen failing since then (the failover delay counts from here); absent while
    /// it is healthy. Kept in the status so that an operator restart does not reset the count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_failing: Option<PrimaryFailing>,
    /// The backup the first instance restores, resolved from `spec.bootstrap.recovery` before it is
    /// created; kept afterwards as a record of where the dataset came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryStatus>,
    /// A failover under way, recorded before its first step so that every step can be resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverProgress>,
    /// The last completed failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<FailoverRecord>,
}

/// Why and since when the primary is seen failing.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrimaryFailing {
    /// The primary's pod.
    pub pod: String,
    /// First observation of the failure.
    pub since: Time,
    /// `PodDeleted`, `PodGone`, `PodFailed`, `ContainerStopped`, `NodeNotReady` (and no answer),
    /// `Unreachable`, `ServerDown`, `EmptyAfterRestart`, `RestartedPrimary`, `LeaseLapsed`.
    pub reason: String,
    /// What was seen, in a sentence.
    pub message: String,
}

/// A failover in progress: fence the old primary with proof, choose a replica, promote it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailoverProgress {
    /// The failed primary.
    pub from: String,
    /// Why it is failed over (a `PrimaryFailing` reason, or `Manual`).
    pub reason: String,
    /// When the primary was first seen failing.
    pub since: Time,
    /// When the operator decided to fail over.
    pub started: Time,
    /// `Fencing` (waiting for proof that the old primary takes no writes), `Promoting`.
    pub step: String,
    /// The proof that the old primary takes no writes, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence_proof: Option<String>,
    /// The replica chosen for promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// A completed failover.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailoverRecord {
    /// The failed primary.
    pub from: String,
    /// The replica promoted in its place.
    pub to: String,
    /// Why the primary was failed over (a `PrimaryFailing` reason).
    pub reason: String,
    /// When the primary was first seen failing.
    pub since: Time,
    pub started: Time,
    /// When the new primary was named `currentPrimary`.
    pub completed: Time,
    /// How the old primary was proven fenced.
    pub fence_proof: String,
    /// From the first failing observation to the promotion, as the operator measured it: clients saw at
    /// least this long without a writable primary (the time before detection adds to it).
    pub write_unavailable_ms: i64,
}

/// Replication and health of one instance.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// Pod name.
    pub name: String,
    /// `primary`, `replica`, or `unknown` when the instance did not answer.
    pub role: String,
    /// Ready: answering and, for a replica, linked and in sync.
    #[serde(default)]
    pub ready: bool,
    /// Refuses writes because it is fenced.
    #[serde(default)]
    pub fenced: bool,
    /// Node the pod runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Replication ID (`master_replid`). Like the offset and the keys, the last one reported while the
    /// instance does not answer: the guards need to know that the cluster holds data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_id: Option<String>,
    /// Replication offset (the last one reported while the instance does not answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_offset: Option<i64>,
    /// Bytes a replica is behind its primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<i64>,
    /// Keys in the instance's dataset (the last count reported while the instance does not answer). An
    /// instance that restarts empty while another instance is recorded with keys or a replication offset
    /// refuses to serve as primary (empty-primary guard), and a primary that restarts then starts
    /// isolated, to be failed over (restarted-primary guard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<i64>,
    /// Seconds since a replica last heard from its primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<i64>,
    /// Replication link of a replica: `up`, `down`, `syncing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// A sentence on what is wrong, when something is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Condition types the operator sets on a RedisCluster.
pub mod condition {
    /// Every instance is ready and in sync.
    pub const READY: &str = "Ready";
    /// A primary is serving writes.
    pub const PRIMARY_AVAILABLE: &str = "PrimaryAvailable";
    /// Every replica is linked to the primary within the lag bound.
    pub const REPLICATION_HEALTHY: &str = "ReplicationHealthy";
    /// A failover is under way (True), or why the last one could not proceed (False with a reason).
    pub const FAILOVER: &str = "Failover";
    /// The last backup succeeded.
    pub const LAST_BACKUP_SUCCEEDED: &str = "LastBackupSucceeded";
}

impl RedisClusterSpec {
    /// A spec with every default, as the API server stores a RedisCluster with an empty spec.
    pub fn with_defaults() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every spec field has a default")
    }
}
