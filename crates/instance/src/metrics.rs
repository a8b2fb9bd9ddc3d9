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

use crate::info::ServerInfo;

/// The content type of [`render`]'s output (OpenMetrics text, as `prometheus-client` encodes it). Served
/// as `text/plain; version=0.0.4` it still parses, but Prometheus then misses the type of the counters.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The instance manager's side of a scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerMetrics {
    /// Not rendered (Prometheus attaches the pod's target labels); kept for the callers' context.
    pub pod: String,
    /// Not rendered, as `pod`.
    pub cluster: String,
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

fn server_metrics(scrape: &mut Scrape, info: &ServerInfo) {
    let raw = |key: &str| info.fields.get(key).cloned().unwrap_or_default();
    // `redis_exporter`'s label set; Valkey says `server_mode` where Redis says `redis_mode`.
    let mode = info
        .fields
        .get("redis_mode")
        .or(info.fields.get("server_mode"))
        .cloned();
    let labels = vec![
        ("role", raw("role")),
        ("redis_version", info.redis_version.clone()),
        ("redis_build_id", raw("redis_build_id")),
        ("redis_mode", mode.unwrap_or_default()),
        ("os", raw("os")),
        ("maxmemory_policy", raw("maxmemory_policy")),
        ("tcp_port", info.tcp_port.to_string()),
        ("run_id", info.run_id.clone()),
        ("process_id", info.process_id.to_string()),
    ];
    scrape.labelled(
        "redis_instance_info",
        "Information about the server",
        [(labels, 1)],
    );
    scrape.gauge(
        "redis_uptime_in_seconds",
        "Seconds since the server started",
        info.uptime_in_seconds,
    );

    scrape.gauge(
        "redis_connected_clients",
        "Client connections",
        info.connected_clients,
    );
    scrape.gauge(
        "redis_blocked_clients",
        "Clients blocked in a blocking call",
        info.blocked_clients,
    );

    scrape.gauge(
        "redis_memory_used_bytes",
        "Bytes allocated by the server",
        info.used_memory,
    );
    scrape.gauge(
        "redis_memory_used_rss_bytes",
        "Resident set size of the server",
        info.used_memory_rss,
    );
    scrape.gauge(
        "redis_memory_used_peak_bytes",
        "Peak of the bytes allocated",
        info.used_memory_peak,
    );
    scrape.gauge(
        "redis_memory_used_dataset_bytes",
        "Bytes used by the dataset",
        info.used_memory_dataset,
    );
    scrape.gauge(
        "redis_memory_max_bytes",
        "The maxmemory setting (0 = no limit)",
        info.maxmemory,
    );
    let fragmentation = info.mem_fragmentation_ratio;
    scrape.gauge(
        "redis_mem_fragmentation_ratio",
        "Resident over allocated memory",
        fragmentation,
    );

    // An empty server lists no database; db0 is rendered anyway so that dashboards show 0, not no data.
    let mut keyspace = info.keyspace.clone();
    if !keyspace.iter().any(|db| db.db == 0) {
        keyspace.insert(0, crate::info::DbKeyspace::default());
    }
    let db = |n: u32| vec![("db", format!("db{n}"))];
    let keys = keyspace.iter().map(|k| (db(k.db), saturating(k.keys)));
    scrape.labelled("redis_db_keys", "Keys by database", keys);
    let expiring = keyspace.iter().map(|k| (db(k.db), saturating(k.expires)));
    scrape.labelled(
        "redis_db_keys_expiring",
        "Keys with an expiry by database",
        expiring,
    );

    let commands = info.total_commands_processed;
    scrape.counter("redis_commands_processed", "Commands processed", commands);
    let connections = info.total_connections_received;
    scrape.counter("redis_connections_received", "Connections accepted", connections);
    let rejected = info.rejected_connections;
    scrape.counter(
        "redis_rejected_connections",
        "Connections rejected by maxclients",
        rejected,
    );
    let ops = info.instantaneous_ops_per_sec;
    scrape.gauge(
        "redis_instantaneous_ops_per_sec",
        "Commands per second, as the server samples them",
        ops,
    );
    scrape.counter(
        "redis_keyspace_hits",
        "Successful key lookups",
        info.keyspace_hits,
    );
    scrape.counter(
        "redis_keyspace_misses",
        "Failed key lookups",
        info.keyspace_misses,
    );
    scrape.counter(
        "redis_expired_keys",
        "Keys removed because they expired",
        info.expired_keys,
    );
    scrape.counter(
        "redis_evicted_keys",
        "Keys evicted by the maxmemory policy",
        info.evicted_keys,
    );
    scrape.counter(
        "redis_net_input_bytes",
        "Bytes read from the network",
        info.total_net_input_bytes,
    );
    scrape.counter(
        "redis_net_output_bytes",
        "Bytes written to the network",
        info.total_net_output_bytes,
    );

    replication_metrics(scrape, info);

    scrape.gauge(
        "redis_loading_dump_file",
        "The server is loading its dataset",
        i64::from(info.loading),
    );
    let changes = info.rdb_changes_since_last_save;
    scrape.gauge(
        "redis_rdb_changes_since_last_save",
        "Changes since the last RDB save",
        changes,
    );
    let bgsave = i64::from(info.rdb_bgsave_in_progress);
    scrape.gauge("redis_rdb_bgsave_in_progress", "An RDB save is running", bgsave);
    let saved_at = info.rdb_last_save_time;
    scrape.gauge(
        "redis_rdb_last_save_timestamp_seconds",
        "Unix time of the last RDB save",
        saved_at,
    );
    let rdb_ok = i64::from(info.rdb_last_bgsave_ok);
    scrape.gauge(
        "redis_rdb_last_bgsave_status",
        "The last RDB save succeeded",
        rdb_ok,
    );
    scrape.gauge(
        "redis_aof_enabled",
        "The append-only file is on",
        i64::from(info.aof_enabled),
    );
    let rewrite = i64::from(info.aof_rewrite_in_progress);
    scrape.gauge(
        "redis_aof_rewrite_in_progress",
        "An AOF rewrite is running",
        rewrite,
    );
    let write_ok = i64::from(info.aof_last_write_ok);
    scrape.gauge(
        "redis_aof_last_write_status",
        "The last AOF write succeeded",
        write_ok,
    );
    let rewrite_ok = i64::from(info.aof_last_bgrewrite_ok);
    scrape.gauge(
        "redis_aof_last_bgrewrite_status",
        "The last AOF rewrite succeeded",
        rewrite_ok,
    );
}

fn replication_metrics(scrape: &mut Scrape, info: &ServerInfo) {
    scrape.gauge(
        "redis_connected_slaves",
        "Replicas connected to this server",
        info.connected_slaves,
    );
    let offset = info.master_repl_offset;
    scrape.gauge(
        "redis_master_repl_offset",
        "This server's replication offset",
        offset,
    );

    if info.role == wire::Role::Replica {
        // Labelled with the primary as in redis_exporter, so that a change of primary is a new series.
        let primary = || {
            vec![
                ("master_host", info.master_host.clone()),
                ("master_port", info.master_port.to_string()),
            ]
        };
        let link_up = i64::from(info.master_link_status == "up");
        scrape.labelled(
            "redis_master_link_up",
            "The link to the primary is up",
            [(primary(), link_up)],
        );
        let last_io = info.master_last_io_seconds_ago;
        let help = "Seconds since the last interaction with the primary (-1 when the link is down)";
        scrape.labelled("redis_master_last_io_seconds_ago", help, [(primary(), last_io)]);
        let syncing = i64::from(info.master_sync_in_progress);
        let help = "A full synchronisation from the primary is running";
        scrape.labelled("redis_master_sync_in_progress", help, [(primary(), syncing)]);
        let applied = info.slave_repl_offset;
        let help = "Offset of the primary's stream this replica applied";
        scrape.labelled("redis_slave_repl_offset", help, [(primary(), applied)]);
    }

    let replica = |r: &crate::info::ListedReplica| {
        vec![
            ("slave_ip", r.ip.clone()),
            ("slave_port", r.port.to_string()),
            ("slave_state", r.state.clone()),
        ]
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

fn manager_metrics(scrape: &mut Scrape, manager: &ManagerMetrics) {
    let labels = vec![
        ("version", manager.manager_version.clone()),
        ("engine", manager.engine.clone()),
        ("engine_version", manager.engine_version.clone()),
    ];
    let help = "The instance manager's version and the engine it runs";
    scrape.labelled("cnredis_instance_manager_info", help, [(labels, 1)]);
    let uptime = manager.manager_uptime_seconds;
    scrape.gauge(
        "cnredis_instance_manager_uptime_seconds",
        "Seconds since the manager started",
        uptime,
    );

    let fenced = i64::from(manager.fenced);
    scrape.gauge(
        "cnredis_instance_fenced",
        "The server refuses writes because it is fenced",
        fenced,
    );
    // One series per possible value, 1 for the current one: a change is visible as a flip, and absent
    // series never need telling apart from a missed scrape.
    let roles = [
        (wire::Role::Primary, "primary"),
        (wire::Role::Replica, "replica"),
        (wire::Role::Unknown, "unknown"),
    ];
    let roles = roles.map(|(role, name)| (vec![("role", name.to_owned())], i64::from(manager.role == role)));
    scrape.labelled(
        "cnredis_instance_role",
        "The server's replication role (1 for the current)",
        roles,
    );
    let leases = [
        (wire::LeaseStatus::Held, "held"),
        (wire::LeaseStatus::Expired, "expired"),
        (wire::LeaseStatus::NotPrimary, "notPrimary"),
        (wire::LeaseStatus::Disabled, "disabled"),
    ];
    let leases = leases.map(|(lease, name)| {
        (
            vec![("state", name.to_owned())],
            i64::from(manager.lease == lease),
        )
    });
    scrape.labelled(
        "cnredis_instance_lease_state",
        "The primary lease as this pod sees it",
        leases,
    );

    let restarts = u64::from(manager.server_restarts);
    scrape.counter(
        "cnredis_instance_server_restarts",
        "Restarts of the server after it exited",
        restarts,
    );
    let empty = i64::from(manager.empty_after_restart);
    let help = "This pod should be primary but restarted without its dataset";
    scrape.gauge("cnredis_instance_empty_after_restart", help, empty);
    let pending = saturating(manager.pending_restart as u64);
    let help = "Parameters changed in the spec that wait for a server restart";
    scrape.gauge("cnredis_instance_pending_restart_parameters", help, pending);
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

fn saturating(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
