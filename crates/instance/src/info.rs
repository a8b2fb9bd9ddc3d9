//! What the server says about itself: the reply to a plain `INFO`, parsed leniently into [`ServerInfo`]
//! and turned into the [`ServerRole`] that [`crate::decide`] reads and the DTOs of `GET /v1/status`.
//!
//! Valkey 8.1 and 9.1 still answer with Redis' field names (`role:master`, `slaveN:`, `master_*`,
//! `slave_*`), checked against their real output in `info/fixtures/`. Their `redis_version` is the Redis
//! version they are compatible with (7.2.4); the real one is `valkey_version`, see
//! [`ServerInfo::engine_version`]. The newer spellings other Valkey tooling already expects (`primary`,
//! `replicaN:`, `primary_*`, `replica_*`) are read too, so a rename does not silently turn a replica into
//! an unknown role.

use std::collections::BTreeMap;
use std::str::FromStr;

use cnredis_instance_client::wire;

use crate::decide::ServerRole;

/// The fields of `INFO` the instance manager reads, typed, and every field as sent. A field the server did
/// not send reads as zero, empty or "ok", except where noted.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerInfo {
    // Server
    /// The Redis version; Valkey reports the Redis version it is compatible with.
    pub redis_version: String,
    /// Valkey only.
    pub valkey_version: Option<String>,
    /// `valkey` on Valkey; Redis does not send it.
    pub server_name: Option<String>,
    pub uptime_in_seconds: u64,
    pub process_id: u32,
    pub tcp_port: u16,
    pub run_id: String,
    // Clients
    pub connected_clients: u64,
    pub blocked_clients: u64,
    // Memory
    pub used_memory: u64,
    pub used_memory_rss: u64,
    pub used_memory_peak: u64,
    pub used_memory_dataset: u64,
    /// 0 means no limit.
    pub maxmemory: u64,
    pub mem_fragmentation_ratio: f64,
    // Persistence
    pub loading: bool,
    pub rdb_changes_since_last_save: u64,
    pub rdb_bgsave_in_progress: bool,
    /// `rdb_saves`: RDB saves started since the server started (counted when the child forks).
    pub rdb_saves: u64,
    /// Unix time of the last successful save (the start time when there was none).
    pub rdb_last_save_time: i64,
    /// `rdb_last_bgsave_status` is not `err`.
    pub rdb_last_bgsave_ok: bool,
    pub aof_enabled: bool,
    pub aof_rewrite_in_progress: bool,
    /// `aof_last_write_status` is not `err`.
    pub aof_last_write_ok: bool,
    /// `aof_last_bgrewrite_status` is not `err`.
    pub aof_last_bgrewrite_ok: bool,
    // Stats
    pub total_connections_received: u64,
    pub total_commands_processed: u64,
    pub instantaneous_ops_per_sec: u64,
    pub expired_keys: u64,
    pub evicted_keys: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub rejected_connections: u64,
    pub total_net_input_bytes: u64,
    pub total_net_output_bytes: u64,
    // Replication
    /// `Unknown` when `role` is missing or unrecognised.
    pub role: wire::Role,
    pub master_replid: String,
    /// The replication id before the last promotion, all zeroes when there was none.
    pub master_replid2: String,
    /// This server's replication offset (a replica's follows what it applied).
    pub master_repl_offset: i64,
    /// Up to which offset `master_replid2` is valid; -1 when unused or not sent.
    pub second_repl_offset: i64,
    /// Replicas only.
    pub master_host: String,
    /// Replicas only.
    pub master_port: u16,
    /// Replicas only: `up` or `down`.
    pub master_link_status: String,
    /// Replicas only; -1 when the link is down or the field was not sent.
    pub master_last_io_seconds_ago: i64,
    pub master_sync_in_progress: bool,
    /// Replicas only: the primary's stream applied so far (1 before the first synchronisation).
    pub slave_repl_offset: i64,
    /// Replicas only: the primary's stream received so far, applied or not (Redis 7+, Valkey).
    pub slave_read_repl_offset: Option<i64>,
    pub connected_slaves: u64,
    /// The `slaveN:` lines of a primary, in the order of N.
    pub replicas: Vec<ListedReplica>,
    // Keyspace
    /// The `dbN:` lines, in the order of N; databases without keys are not listed.
    pub keyspace: Vec<DbKeyspace>,
    /// Every `key:value` line as sent, section headers left out; of a repeated key the last line.
    pub fields: BTreeMap<String, String>,
}

/// One replica as its primary lists it (`slave0:ip=10.0.0.2,port=6379,state=online,offset=186,lag=0`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedReplica {
    pub ip: String,
    pub port: u16,
    /// `online`, `wait_bgsave`, `send_bulk`, ...
    pub state: String,
    /// The replication offset the replica last acknowledged.
    pub offset: i64,
    /// Seconds since the replica's last acknowledgement.
    pub lag: i64,
}

/// One database of the `# Keyspace` section (`db0:keys=4,expires=1,avg_ttl=3599496`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbKeyspace {
    /// The N of `dbN`.
    pub db: u32,
    pub keys: u64,
    /// Keys with an expiry.
    pub expires: u64,
    /// Average remaining time to live of the expiring keys, in milliseconds.
    pub avg_ttl_ms: u64,
}

/// Parses the reply to `INFO` (CRLF as sent, or LF as `valkey-cli` prints it). Never fails: what cannot
/// be read is left at its default, so that one odd field does not hide the role of a server.
pub fn parse(text: &str) -> ServerInfo {
    let fields: BTreeMap<String, String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    let field = Fields(&fields);
    let get = |names: &[&str]| field.get(names);
    let string = |names: &[&str]| get(names).unwrap_or_default().to_owned();
    let flag = |names: &[&str]| get(names) == Some("1");
    let ok = |name: &str| get(&[name]) != Some("err");

    ServerInfo {
        redis_version: string(&["redis_version"]),
        valkey_version: get(&["valkey_version"]).map(str::to_owned),
        server_name: get(&["server_name"]).map(str::to_owned),
        uptime_in_seconds: field.number(&["uptime_in_seconds"], 0),
        process_id: field.number(&["process_id"], 0),
        tcp_port: field.number(&["tcp_port"], 0),
        run_id: string(&["run_id"]),
        connected_clients: field.number(&["connected_clients"], 0),
        blocked_clients: field.number(&["blocked_clients"], 0),
        used_memory: field.number(&["used_memory"], 0),
        used_memory_rss: field.number(&["used_memory_rss"], 0),
        used_memory_peak: field.number(&["used_memory_peak"], 0),
        used_memory_dataset: field.number(&["used_memory_dataset"], 0),
        maxmemory: field.number(&["maxmemory"], 0),
        mem_fragmentation_ratio: field.number(&["mem_fragmentation_ratio"], 0.0),
        loading: flag(&["loading"]),
        rdb_changes_since_last_save: field.number(&["rdb_changes_since_last_save"], 0),
        rdb_bgsave_in_progress: flag(&["rdb_bgsave_in_progress"]),
        rdb_saves: field.number(&["rdb_saves"], 0),
        rdb_last_save_time: field.number(&["rdb_last_save_time"], 0),
        rdb_last_bgsave_ok: ok("rdb_last_bgsave_status"),
        aof_enabled: flag(&["aof_enabled"]),
        aof_rewrite_in_progress: flag(&["aof_rewrite_in_progress"]),
        aof_last_write_ok: ok("aof_last_write_status"),
        aof_last_bgrewrite_ok: ok("aof_last_bgrewrite_status"),
        total_connections_received: field.number(&["total_connections_received"], 0),
        total_commands_processed: field.number(&["total_commands_processed"], 0),
        instantaneous_ops_per_sec: field.number(&["instantaneous_ops_per_sec"], 0),
        expired_keys: field.number(&["expired_keys"], 0),
        evicted_keys: field.number(&["evicted_keys"], 0),
        keyspace_hits: field.number(&["keyspace_hits"], 0),
        keyspace_misses: field.number(&["keyspace_misses"], 0),
        rejected_connections: field.number(&["rejected_connections"], 0),
        total_net_input_bytes: field.number(&["total_net_input_bytes"], 0),
        total_net_output_bytes: field.number(&["total_net_output_bytes"], 0),
        role: match get(&["role"]) {
            Some("master" | "primary") => wire::Role::Primary,
            Some("slave" | "replica") => wire::Role::Replica,
            _ => wire::Role::Unknown,
        },
        master_replid: string(&["master_replid", "primary_replid"]),
        master_replid2: string(&["master_replid2", "primary_replid2"]),
        master_repl_offset: field.number(&["master_repl_offset", "primary_repl_offset"], 0),
        second_repl_offset: field.number(&["second_repl_offset"], -1),
        master_host: string(&["master_host", "primary_host"]),
        master_port: field.number(&["master_port", "primary_port"], 0),
        master_link_status: string(&["master_link_status", "primary_link_status"]),
        master_last_io_seconds_ago: field
            .number(&["master_last_io_seconds_ago", "primary_last_io_seconds_ago"], -1),
        master_sync_in_progress: flag(&["master_sync_in_progress", "primary_sync_in_progress"]),
        slave_repl_offset: field.number(&["slave_repl_offset", "replica_repl_offset"], 0),
        slave_read_repl_offset: get(&["slave_read_repl_offset", "replica_read_repl_offset"])
            .and_then(|value| value.parse().ok()),
        connected_slaves: field.number(&["connected_slaves", "connected_replicas"], 0),
        replicas: numbered(&fields, &["slave", "replica"], listed_replica),
        keyspace: numbered(&fields, &["db"], db_keyspace),
        fields,
    }
}

impl ServerInfo {
    /// The role as [`crate::decide`] reads it.
    pub fn server_role(&self) -> ServerRole {
        match self.role {
            wire::Role::Primary => ServerRole::Primary,
            wire::Role::Replica => ServerRole::Replica {
                primary: self.primary_address(),
                link_up: self.master_link_status == "up",
                sync_in_progress: self.master_sync_in_progress,
            },
            wire::Role::Unknown => ServerRole::Unknown,
        }
    }

    /// `valkey` or `redis`.
    pub fn engine(&self) -> &str {
        self.server_name.as_deref().unwrap_or("redis")
    }

    /// The engine's own version: `valkey_version` on Valkey, whose `redis_version` is a compatibility
    /// constant.
    pub fn engine_version(&self) -> &str {
        self.valkey_version.as_deref().unwrap_or(&self.redis_version)
    }

    /// Keys in all databases.
    pub fn total_keys(&self) -> u64 {
        self.keyspace.iter().map(|db| db.keys).sum()
    }

    /// Keys with an expiry in all databases.
    pub fn total_expires(&self) -> u64 {
        self.keyspace.iter().map(|db| db.expires).sum()
    }

    /// The replication state for `GET /v1/status`.
    ///
    /// A replica cannot know how far its primary has written since it last heard from it, so its
    /// `lag_bytes` is what it received and has not applied yet (the larger of `slave_read_repl_offset` and
    /// its own `master_repl_offset`, minus `slave_repl_offset`, never below 0); it is only given while the
    /// link is up, since the offsets of a replica that never synchronised mean nothing (`slave_repl_offset`
    /// is 1 there). The lag that matters for a failover is the primary's view, in `connected_replicas`.
    pub fn replication(&self) -> wire::Replication {
        let mut replication = wire::Replication {
            replication_id: self.master_replid.clone(),
            replication_id2: self.master_replid2.clone(),
            offset: self.master_repl_offset,
            second_offset: self.second_repl_offset,
            sync_in_progress: self.master_sync_in_progress,
            connected_replicas: self
                .replicas
                .iter()
                .map(|replica| wire::ConnectedReplica {
                    ip: replica.ip.clone(),
                    port: replica.port,
                    state: replica.state.clone(),
                    offset: replica.offset,
                    lag_bytes: (self.master_repl_offset - replica.offset).max(0),
                    lag_seconds: replica.lag,
                })
                .collect(),
            ..wire::Replication::default()
        };
        if self.role == wire::Role::Replica {
            let link_up = self.master_link_status == "up";
            replication.primary = Some(self.primary_address());
            replication.link = Some(
                match (self.master_sync_in_progress, link_up) {
                    (true, _) => "syncing",
                    (false, true) => "up",
                    (false, false) => "down",
                }
                .to_owned(),
            );
            if link_up {
                let received = self
                    .slave_read_repl_offset
                    .unwrap_or(self.slave_repl_offset)
                    .max(self.master_repl_offset);
                replication.lag_bytes = Some((received - self.slave_repl_offset).max(0));
                replication.lag_seconds = Some(self.master_last_io_seconds_ago.max(0));
            }
        }
        replication
    }

    /// The size of the dataset for `GET /v1/status`.
    pub fn dataset(&self) -> wire::Dataset {
        wire::Dataset {
            keys: self.total_keys(),
            expires: self.total_expires(),
            used_memory_bytes: self.used_memory,
            dataset_bytes: self.used_memory_dataset,
            maxmemory_bytes: self.maxmemory,
        }
    }

    /// The persistence state for `GET /v1/status`; the spec's `mode` and whether the dataset was loaded
    /// from the data volume are known to the instance manager, not to `INFO`.
    pub fn persistence(&self, mode: &str, loaded_from_disk: bool) -> wire::Persistence {
        wire::Persistence {
            mode: mode.to_owned(),
            loading: self.loading,
            loaded_from_disk,
            rdb_changes_since_last_save: self.rdb_changes_since_last_save,
            rdb_bgsave_in_progress: self.rdb_bgsave_in_progress,
            rdb_last_save_time: self.rdb_last_save_time,
            rdb_last_bgsave_ok: self.rdb_last_bgsave_ok,
            aof_enabled: self.aof_enabled,
            aof_rewrite_in_progress: self.aof_rewrite_in_progress,
            aof_last_write_ok: self.aof_last_write_ok,
        }
    }

    /// `host:port` of a replica's primary, as `decide` compares it with the address it wants.
    fn primary_address(&self) -> String {
        format!("{}:{}", self.master_host, self.master_port)
    }
}

/// Lookups in the raw fields, each by its names old and new.
struct Fields<'a>(&'a BTreeMap<String, String>);

impl Fields<'_> {
    fn get(&self, names: &[&str]) -> Option<&str> {
        names
            .iter()
            .find_map(|name| self.0.get(*name))
            .map(String::as_str)
    }

    fn number<T: FromStr>(&self, names: &[&str], default: T) -> T {
        number_or(self.get(names), default)
    }
}

fn number_or<T: FromStr>(value: Option<&str>, default: T) -> T {
    value.and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// The lines `<prefix>N:...` for any of `prefixes`, read by `read`, in the order of N. A line `read`
/// rejects is skipped.
fn numbered<T>(
    fields: &BTreeMap<String, String>,
    prefixes: &[&str],
    read: impl Fn(u32, &str) -> Option<T>,
) -> Vec<T> {
    let mut lines: Vec<(u32, T)> = fields
        .iter()
        .filter_map(|(key, value)| {
            let index = prefixes.iter().find_map(|prefix| key.strip_prefix(prefix))?;
            // `slave_priority`, `replica_announced`, `replicas_waiting_psync` share the prefix.
            let index: u32 = index
                .parse()
                .ok()
                .filter(|_| index.bytes().all(|b| b.is_ascii_digit()))?;
            Some((index, read(index, value)?))
        })
        .collect();
    lines.sort_by_key(|(index, _)| *index);
    lines.into_iter().map(|(_, line)| line).collect()
}

/// The `key=value,...` pairs of a `slaveN:` or `dbN:` line.
fn pairs(value: &str) -> BTreeMap<&str, &str> {
    value.split(',').filter_map(|pair| pair.split_once('=')).collect()
}

fn listed_replica(_index: u32, value: &str) -> Option<ListedReplica> {
    let pairs = pairs(value);
    let get = |key: &str| pairs.get(key).copied();
    Some(ListedReplica {
        ip: get("ip")?.to_owned(),
        port: number_or(get("port"), 0),
        state: get("state").unwrap_or_default().to_owned(),
        offset: number_or(get("offset"), 0),
        lag: number_or(get("lag"), 0),
    })
}

fn db_keyspace(db: u32, value: &str) -> Option<DbKeyspace> {
    let pairs = pairs(value);
    let get = |key: &str| pairs.get(key).copied();
    Some(DbKeyspace {
        db,
        keys: get("keys")?.parse().ok()?,
        expires: number_or(get("expires"), 0),
        avg_ttl_ms: number_or(get("avg_ttl"), 0),
    })
}

#[cfg(test)]
pub(crate) mod tests;
