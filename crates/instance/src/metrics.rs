//! The instance's metrics on port 9121, rendered for one scrape from the server's `INFO` and the instance
//! manager's state: the server's in `redis_exporter`'s names (so its dashboards and alerts apply), the
//! manager's as `cnredis_instance_*`.
//!
//! A registry is built per scrape: every value is a reading of this moment, and a series that no longer
//! exists (a replica that left, a role the server lost) simply is not rendered again. No pod or cluster
//! label: Prometheus attaches the pod's target labels.

use std::fmt::Debug;

use cnredis_instance_client::wire;
use prometheus_client::encoding::EncodeGaugeValue;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use crate::info::{DbKeyspace, ListedReplica, ServerInfo};

/// The content type of [`render`]'s output (OpenMetrics text, as `prometheus-client` encodes it). Served
/// as `text/plain; version=0.0.4` it still parses, but Prometheus then misses the type of the counters.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The instance manager's side of a scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerMetrics {
    pub fenced: bool,
    pub role: wire::Role,
    pub lease: wire::LeaseStatus,
    pub server_restarts: u32,
    pub manager_version: String,
    /// `valkey` or `redis`.
    pub engine: String,
    pub engine_version: String,
    pub empty_after_restart: bool,
    pub manager_uptime_seconds: u64,
    /// Parameters changed in the spec that the server only takes at a restart.
    pub pending_restart: usize,
}

/// The exposition text of one scrape. `info` is `None` when the server did not answer: then only
/// `redis_up 0` and the manager's metrics are rendered, not stale readings.
pub fn render(info: Option<&ServerInfo>, manager: &ManagerMetrics) -> String {
    let mut scrape = Scrape::default();
    scrape.gauge("redis_up", "The server answered INFO", i64::from(info.is_some()));
    if let Some(info) = info {
        server_metrics(&mut scrape, info);
    }
    manager_metrics(&mut scrape, manager);
    let mut text = String::new();
    encode(&mut text, &scrape.registry).expect("writing to a String cannot fail");
    text
}

/// A value read from `INFO` or the manager's state: metric name, help, reading.
type Reading<S, T> = (&'static str, &'static str, fn(&S) -> T);

/// The server's unlabelled gauges, in `redis_exporter`'s names; flags read as 1/0, statuses as 1 for ok.
#[rustfmt::skip]
const GAUGES: &[Reading<ServerInfo, i64>] = &[
    ("redis_uptime_in_seconds", "Seconds since the server started", |i| int(i.uptime_in_seconds)),
    ("redis_connected_clients", "Client connections", |i| int(i.connected_clients)),
    ("redis_blocked_clients", "Clients blocked in a blocking call", |i| int(i.blocked_clients)),
    ("redis_memory_used_bytes", "Bytes allocated by the server", |i| int(i.used_memory)),
    ("redis_memory_used_rss_bytes", "Resident set size of the server", |i| int(i.used_memory_rss)),
    ("redis_memory_used_peak_bytes", "Peak of the bytes allocated", |i| int(i.used_memory_peak)),
    ("redis_memory_used_dataset_bytes", "Bytes used by the dataset", |i| int(i.used_memory_dataset)),
    ("redis_memory_max_bytes", "The maxmemory setting, 0 for no limit", |i| int(i.maxmemory)),
    ("redis_instantaneous_ops_per_sec", "Commands per second", |i| int(i.instantaneous_ops_per_sec)),
    ("redis_connected_slaves", "Replicas connected to this server", |i| int(i.connected_slaves)),
    ("redis_master_repl_offset", "This server's replication offset", |i| i.master_repl_offset),
    ("redis_loading_dump_file", "The server is loading its dataset", |i| i64::from(i.loading)),
    ("redis_rdb_changes_since_last_save", "Changes since the last save",
        |i| int(i.rdb_changes_since_last_save)),
    ("redis_rdb_bgsave_in_progress", "An RDB save is running", |i| i64::from(i.rdb_bgsave_in_progress)),
    ("redis_rdb_last_save_timestamp_seconds", "Unix time of the last save", |i| i.rdb_last_save_time),
    ("redis_rdb_last_bgsave_status", "The last RDB save succeeded", |i| i64::from(i.rdb_last_bgsave_ok)),
    ("redis_aof_enabled", "The append-only file is on", |i| i64::from(i.aof_enabled)),
    ("redis_aof_rewrite_in_progress", "An AOF rewrite is running", |i| i64::from(i.aof_rewrite_in_progress)),
    ("redis_aof_last_write_status", "The last AOF write succeeded", |i| i64::from(i.aof_last_write_ok)),
    ("redis_aof_last_bgrewrite_status", "The last AOF rewrite succeeded",
        |i| i64::from(i.aof_last_bgrewrite_ok)),
];

/// The server's counters; the names lack `_total`, which the encoder appends to the sample.
#[rustfmt::skip]
const COUNTERS: &[Reading<ServerInfo, u64>] = &[
    ("redis_commands_processed", "Commands processed", |i| i.total_commands_processed),
    ("redis_connections_received", "Connections accepted", |i| i.total_connections_received),
    ("redis_rejected_connections", "Connections rejected by maxclients", |i| i.rejected_connections),
    ("redis_keyspace_hits", "Successful key lookups", |i| i.keyspace_hits),
    ("redis_keyspace_misses", "Failed key lookups", |i| i.keyspace_misses),
    ("redis_expired_keys", "Keys removed because they expired", |i| i.expired_keys),
    ("redis_evicted_keys", "Keys evicted by the maxmemory policy", |i| i.evicted_keys),
    ("redis_net_input_bytes", "Bytes read from the network", |i| i.total_net_input_bytes),
    ("redis_net_output_bytes", "Bytes written to the network", |i| i.total_net_output_bytes),
];

/// A replica's gauges, labelled with its primary as in `redis_exporter`: a new primary is a new series.
#[rustfmt::skip]
const REPLICA_GAUGES: &[Reading<ServerInfo, i64>] = &[
    ("redis_master_link_up", "The link to the primary is up", |i| i64::from(i.master_link_status == "up")),
    ("redis_master_last_io_seconds_ago", "Seconds since the primary was heard, -1 when the link is down",
        |i| i.master_last_io_seconds_ago),
    ("redis_master_sync_in_progress", "A full synchronisation is running",
        |i| i64::from(i.master_sync_in_progress)),
    ("redis_slave_repl_offset", "Offset of the primary's stream applied", |i| i.slave_repl_offset),
];

#[rustfmt::skip]
const MANAGER_GAUGES: &[Reading<ManagerMetrics, i64>] = &[
    ("cnredis_instance_manager_uptime_seconds", "Seconds since the manager started",
        |m| int(m.manager_uptime_seconds)),
    ("cnredis_instance_fenced", "The server refuses writes: it is fenced", |m| i64::from(m.fenced)),
    ("cnredis_instance_empty_after_restart", "This pod should be primary but restarted without its dataset",
        |m| i64::from(m.empty_after_restart)),
    ("cnredis_instance_pending_restart_parameters", "Changed parameters that wait for a server restart",
        |m| int(m.pending_restart as u64)),
];

fn server_metrics(scrape: &mut Scrape, info: &ServerInfo) {
    let instance = [(instance_labels(info), 1)];
    scrape.labelled("redis_instance_info", "Information about the server", instance);
    for (name, help, read) in GAUGES {
        scrape.gauge(name, help, read(info));
    }
    let ratio = info.mem_fragmentation_ratio;
    scrape.gauge(
        "redis_mem_fragmentation_ratio",
        "Resident over allocated memory",
        ratio,
    );
    for (name, help, read) in COUNTERS {
        scrape.counter(name, help, read(info));
    }

    // An empty server lists no database; db0 is rendered anyway so that dashboards show 0, not no data.
    let mut keyspace = info.keyspace.clone();
    if !keyspace.iter().any(|db| db.db == 0) {
        keyspace.insert(0, DbKeyspace::default());
    }
    let db = |n: u32| vec![("db", format!("db{n}"))];
    let keys = keyspace.iter().map(|k| (db(k.db), int(k.keys)));
    scrape.labelled("redis_db_keys", "Keys by database", keys);
    let expiring = keyspace.iter().map(|k| (db(k.db), int(k.expires)));
    scrape.labelled("redis_db_keys_expiring", "Keys with an expiry", expiring);

    if info.role == wire::Role::Replica {
        let primary = || {
            let port = info.master_port.to_string();
            vec![("master_host", info.master_host.clone()), ("master_port", port)]
        };
        for (name, help, read) in REPLICA_GAUGES {
            scrape.labelled(name, help, [(primary(), read(info))]);
        }
    }
    let replica = |r: &ListedReplica| {
        let (ip, port, state) = (r.ip.clone(), r.port.to_string(), r.state.clone());
        vec![("slave_ip", ip), ("slave_port", port), ("slave_state", state)]
    };
    let offsets = info.replicas.iter().map(|r| (replica(r), r.offset));
    scrape.labelled(
        "redis_connected_slave_offset_bytes",
        "Offset a replica acknowledged",
        offsets,
    );
    let lags = info.replicas.iter().map(|r| (replica(r), r.lag));
    let help = "Seconds since a replica's last acknowledgement";
    scrape.labelled("redis_connected_slave_lag_seconds", help, lags);
}

/// `redis_exporter`'s labels of `redis_instance_info`.
fn instance_labels(info: &ServerInfo) -> Labels {
    let raw = |keys: &[&str]| keys.iter().find_map(|key| info.fields.get(*key)).cloned();
    vec![
        ("role", raw(&["role"]).unwrap_or_default()),
        ("redis_version", info.redis_version.clone()),
        ("redis_build_id", raw(&["redis_build_id"]).unwrap_or_default()),
        // Valkey says `server_mode` where Redis says `redis_mode`.
        (
            "redis_mode",
            raw(&["redis_mode", "server_mode"]).unwrap_or_default(),
        ),
        ("os", raw(&["os"]).unwrap_or_default()),
        ("maxmemory_policy", raw(&["maxmemory_policy"]).unwrap_or_default()),
        ("tcp_port", info.tcp_port.to_string()),
        ("run_id", info.run_id.clone()),
        ("process_id", info.process_id.to_string()),
    ]
}

fn manager_metrics(scrape: &mut Scrape, manager: &ManagerMetrics) {
    let (version, engine) = (manager.manager_version.clone(), manager.engine.clone());
    let labels = vec![
        ("version", version),
        ("engine", engine),
        ("engine_version", manager.engine_version.clone()),
    ];
    let help = "The instance manager's version and the engine it runs";
    scrape.labelled("cnredis_instance_manager_info", help, [(labels, 1)]);
    for (name, help, read) in MANAGER_GAUGES {
        scrape.gauge(name, help, read(manager));
    }
    let restarts = u64::from(manager.server_restarts);
    scrape.counter(
        "cnredis_instance_server_restarts",
        "Restarts of the server after it exited",
        restarts,
    );

    // One series per possible value, 1 for the current one: a change shows as a flip, and a missing series
    // never needs telling apart from a missed scrape.
    let roles = [
        (wire::Role::Primary, "primary"),
        (wire::Role::Replica, "replica"),
        (wire::Role::Unknown, "unknown"),
    ];
    let roles = roles.map(|(role, name)| (vec![("role", name.to_owned())], i64::from(manager.role == role)));
    let help = "The server's replication role, 1 for the current";
    scrape.labelled("cnredis_instance_role", help, roles);
    let leases = [
        (wire::LeaseStatus::Held, "held"),
        (wire::LeaseStatus::Expired, "expired"),
        (wire::LeaseStatus::NotPrimary, "notPrimary"),
        (wire::LeaseStatus::Failsafe, "failsafe"),
        (wire::LeaseStatus::Disabled, "disabled"),
    ];
    let current = |lease| i64::from(manager.lease == lease);
    let leases = leases.map(|(lease, name)| (vec![("state", name.to_owned())], current(lease)));
    let help = "The primary lease as this pod sees it, 1 for the current state";
    scrape.labelled("cnredis_instance_lease_state", help, leases);
}

type Labels = Vec<(&'static str, String)>;

/// One scrape's registry, with the three shapes of metric rendered here.
#[derive(Default)]
struct Scrape {
    registry: Registry,
}

impl Scrape {
    fn gauge<N>(&mut self, name: &'static str, help: &'static str, value: N)
    where
        N: EncodeGaugeValue + Send + Sync + Debug + 'static,
    {
        self.registry.register(name, help, ConstGauge::new(value));
    }

    /// `name` without `_total`: the encoder appends it to the sample.
    fn counter(&mut self, name: &'static str, help: &'static str, value: u64) {
        self.registry.register(name, help, ConstCounter::new(value));
    }

    /// A gauge per label set; nothing when there is none, as for a primary's replicas before any connects.
    fn labelled(
        &mut self,
        name: &'static str,
        help: &'static str,
        series: impl IntoIterator<Item = (Labels, i64)>,
    ) {
        let series: Vec<_> = series.into_iter().collect();
        if series.is_empty() {
            return;
        }
        let family = Family::<Labels, Gauge>::default();
        for (labels, value) in series {
            family.get_or_create(&labels).set(value);
        }
        self.registry.register(name, help, family);
    }
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
