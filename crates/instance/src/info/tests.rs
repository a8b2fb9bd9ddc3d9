use super::*;

/// Real replies to `INFO`, captured raw (CRLF) from a primary with one replica and a few keys (one with an
/// expiry), its replica, and a replica whose primary is not running.
pub(crate) const FIXTURES: &[(&str, &str)] = &[
    (
        "valkey-8.1-primary",
        include_str!("fixtures/valkey-8.1-primary.txt"),
    ),
    (
        "valkey-8.1-replica",
        include_str!("fixtures/valkey-8.1-replica.txt"),
    ),
    (
        "valkey-8.1-replica-link-down",
        include_str!("fixtures/valkey-8.1-replica-link-down.txt"),
    ),
    (
        "valkey-9.1-primary",
        include_str!("fixtures/valkey-9.1-primary.txt"),
    ),
    (
        "valkey-9.1-replica",
        include_str!("fixtures/valkey-9.1-replica.txt"),
    ),
    (
        "valkey-9.1-replica-link-down",
        include_str!("fixtures/valkey-9.1-replica-link-down.txt"),
    ),
    (
        "redis-7.0-primary",
        include_str!("fixtures/redis-7.0-primary.txt"),
    ),
    (
        "redis-7.0-replica",
        include_str!("fixtures/redis-7.0-replica.txt"),
    ),
    (
        "redis-7.0-replica-link-down",
        include_str!("fixtures/redis-7.0-replica-link-down.txt"),
    ),
];

pub(crate) fn fixture(name: &str) -> ServerInfo {
    let (_, text) = FIXTURES
        .iter()
        .find(|(fixture, _)| *fixture == name)
        .expect("a captured fixture");
    parse(text)
}

fn replica_of(primary: &str, link_up: bool) -> ServerRole {
    ServerRole::Replica {
        primary: primary.to_owned(),
        link_up,
        sync_in_progress: false,
    }
}

#[test]
fn every_fixture_reads_role_engine_offset_and_keys() {
    // (fixture, role, engine, version, master_repl_offset, keys, expires)
    let cases = [
        (
            "valkey-8.1-primary",
            ServerRole::Primary,
            "valkey",
            "8.1.8",
            172,
            4,
            1,
        ),
        (
            "valkey-8.1-replica",
            replica_of("127.0.0.1:7410", true),
            "valkey",
            "8.1.8",
            172,
            4,
            1,
        ),
        (
            "valkey-8.1-replica-link-down",
            replica_of("127.0.0.1:7413", false),
            "valkey",
            "8.1.8",
            0,
            0,
            0,
        ),
        (
            "valkey-9.1-primary",
            ServerRole::Primary,
            "valkey",
            "9.1.2",
            186,
            4,
            1,
        ),
        (
            "valkey-9.1-replica",
            replica_of("127.0.0.1:7420", true),
            "valkey",
            "9.1.2",
            186,
            4,
            1,
        ),
        (
            "valkey-9.1-replica-link-down",
            replica_of("127.0.0.1:7423", false),
            "valkey",
            "9.1.2",
            0,
            0,
            0,
        ),
        (
            "redis-7.0-primary",
            ServerRole::Primary,
            "redis",
            "7.0.15",
            172,
            4,
            1,
        ),
        (
            "redis-7.0-replica",
            replica_of("127.0.0.1:7430", true),
            "redis",
            "7.0.15",
            172,
            4,
            1,
        ),
        (
            "redis-7.0-replica-link-down",
            replica_of("127.0.0.1:7433", false),
            "redis",
            "7.0.15",
            0,
            0,
            0,
        ),
    ];
    assert_eq!(cases.len(), FIXTURES.len(), "every fixture has a case");
    for (name, role, engine, version, offset, keys, expires) in cases {
        let info = fixture(name);
        assert_eq!(info.server_role(), role, "{name}");
        assert_eq!(info.engine(), engine, "{name}");
        assert_eq!(info.engine_version(), version, "{name}");
        assert_eq!(info.master_repl_offset, offset, "{name}");
        assert_eq!(info.total_keys(), keys, "{name}");
        assert_eq!(info.total_expires(), expires, "{name}");
        assert_eq!(info.master_replid.len(), 40, "{name}");
        assert_eq!(info.second_repl_offset, -1, "{name}");
        assert!(
            info.uptime_in_seconds > 0 && info.process_id > 0 && info.used_memory > 0,
            "{name}"
        );
    }
}

#[test]
fn primary_fixtures_list_their_caught_up_replica() {
    for (name, port, offset) in [
        ("valkey-8.1-primary", 7411, 172),
        ("valkey-9.1-primary", 7421, 186),
        ("redis-7.0-primary", 7431, 172),
    ] {
        let info = fixture(name);
        assert_eq!(info.connected_slaves, 1, "{name}");
        let expected = ListedReplica {
            ip: "127.0.0.1".to_owned(),
            port,
            state: "online".to_owned(),
            offset,
            lag: 0,
        };
        assert_eq!(info.replicas, vec![expected], "{name}");
        let replication = info.replication();
        assert_eq!(replication.connected_replicas[0].lag_bytes, 0, "{name}");
        assert_eq!(
            (replication.primary, replication.link, replication.lag_bytes),
            (None, None, None)
        );
    }
}

#[test]
fn replica_fixtures_read_their_link_and_offsets() {
    // (fixture, link, last io ago, slave_repl_offset, lag_bytes)
    let cases = [
        ("valkey-8.1-replica", "up", 1, 172, Some(0)),
        ("valkey-9.1-replica", "up", 2, 186, Some(0)),
        ("redis-7.0-replica", "up", 1, 172, Some(0)),
        // A replica that never synchronised reports offset 1 and no last I/O.
        ("valkey-8.1-replica-link-down", "down", -1, 1, None),
        ("valkey-9.1-replica-link-down", "down", -1, 1, None),
        ("redis-7.0-replica-link-down", "down", -1, 1, None),
    ];
    for (name, link, last_io, slave_offset, lag_bytes) in cases {
        let info = fixture(name);
        assert_eq!(info.master_link_status, link, "{name}");
        assert_eq!(info.master_last_io_seconds_ago, last_io, "{name}");
        assert_eq!(info.slave_repl_offset, slave_offset, "{name}");
        assert_eq!(info.slave_read_repl_offset, Some(slave_offset), "{name}");
        assert_eq!((info.connected_slaves, info.replicas.len()), (0, 0), "{name}");
        let replication = info.replication();
        assert_eq!(replication.link.as_deref(), Some(link), "{name}");
        assert_eq!(replication.lag_bytes, lag_bytes, "{name}");
        assert_eq!(replication.lag_seconds, lag_bytes.map(|_| last_io), "{name}");
    }
}

#[test]
fn valkey_reports_a_compatible_redis_version_besides_its_own() {
    let info = fixture("valkey-9.1-primary");
    assert_eq!(info.redis_version, "7.2.4");
    assert_eq!(info.valkey_version.as_deref(), Some("9.1.2"));
    assert_eq!(info.server_name.as_deref(), Some("valkey"));
    // Valkey says `server_mode` where Redis says `redis_mode`; the raw map keeps either.
    assert_eq!(
        info.fields.get("server_mode").map(String::as_str),
        Some("standalone")
    );
    assert_eq!(
        fixture("redis-7.0-primary")
            .fields
            .get("redis_mode")
            .map(String::as_str),
        Some("standalone")
    );
}

#[test]
fn fixture_fields_of_every_section_are_typed() {
    let info = fixture("valkey-9.1-primary");
    assert_eq!((info.tcp_port, info.process_id), (7420, 25470));
    assert_eq!(info.run_id, "312c9caf11ade61fd05619f4bc78c5de45138104");
    assert_eq!((info.connected_clients, info.blocked_clients), (1, 0));
    assert_eq!((info.used_memory, info.used_memory_rss), (1_211_424, 6_647_808));
    assert_eq!(
        (info.used_memory_peak, info.used_memory_dataset, info.maxmemory),
        (1_211_424, 195_268, 0)
    );
    assert_eq!(info.mem_fragmentation_ratio, 5.58);
    assert!(!info.loading && !info.rdb_bgsave_in_progress && !info.aof_enabled);
    assert!(info.rdb_last_bgsave_ok && info.aof_last_write_ok && info.aof_last_bgrewrite_ok);
    assert_eq!(
        (info.rdb_changes_since_last_save, info.rdb_last_save_time),
        (4, 1_795_259_451)
    );
    assert_eq!(
        (info.total_connections_received, info.total_commands_processed),
        (33, 41)
    );
    assert_eq!((info.keyspace_hits, info.keyspace_misses), (1, 1));
    assert_eq!(
        (info.total_net_input_bytes, info.total_net_output_bytes),
        (851, 156_492)
    );
    assert_eq!(
        (info.expired_keys, info.evicted_keys, info.rejected_connections),
        (0, 0, 0)
    );
    assert_eq!(info.instantaneous_ops_per_sec, 7);
    let db0 = DbKeyspace {
        db: 0,
        keys: 4,
        expires: 1,
        avg_ttl_ms: 3_599_496,
    };
    assert_eq!(info.keyspace, vec![db0]);
}

#[test]
fn lf_lines_parse_like_crlf_lines() {
    for (name, text) in FIXTURES {
        assert!(text.contains("\r\n"), "{name} is stored as the server sent it");
        assert_eq!(parse(&text.replace("\r\n", "\n")), parse(text), "{name}");
    }
}

#[test]
fn malformed_input_reads_as_defaults_without_panicking() {
    for text in [
        "",
        "\r\n\r\n",
        "no colon at all",
        ":",
        "role:",
        "role:sentinel",
        "# Replication\r\nrole",
        "uptime_in_seconds:-5\r\ntcp_port:99999\r\nmaster_repl_offset:x",
        "slave0:garbage\r\nslave1:ip=\r\nslave+2:ip=a",
        "db0:keys=x,expires=1\r\ndb:keys=1\r\ndbx:keys=1",
    ] {
        let info = parse(text);
        assert_eq!(info.server_role(), ServerRole::Unknown, "{text:?}");
        assert_eq!(
            (info.uptime_in_seconds, info.tcp_port, info.master_repl_offset),
            (0, 0, 0),
            "{text:?}"
        );
        assert_eq!(info.total_keys(), 0, "{text:?}");
        assert_eq!(info.engine(), "redis", "{text:?}");
    }
    assert_eq!(
        parse("slave1:ip=").replicas.len(),
        1,
        "an address is enough to list a replica"
    );
}

#[test]
fn newer_primary_and_replica_spellings_are_read() {
    let replica = parse(
        "role:replica\r\nprimary_host:10.0.0.1\r\nprimary_port:6379\r\nprimary_link_status:up\r\n\
         primary_sync_in_progress:1\r\nreplica_repl_offset:90\r\nreplica_read_repl_offset:100\r\n",
    );
    let role = ServerRole::Replica {
        primary: "10.0.0.1:6379".to_owned(),
        link_up: true,
        sync_in_progress: true,
    };
    assert_eq!(replica.server_role(), role);
    assert_eq!(
        (replica.slave_repl_offset, replica.slave_read_repl_offset),
        (90, Some(100))
    );

    let primary =
        parse("role:primary\r\nconnected_replicas:1\r\nreplica0:ip=10.0.0.2,port=6379,state=online");
    assert_eq!(primary.server_role(), ServerRole::Primary);
    assert_eq!(
        (primary.connected_slaves, primary.replicas[0].ip.as_str()),
        (1, "10.0.0.2")
    );
}

#[test]
fn replicas_and_databases_are_ordered_by_their_number() {
    let info = parse(
        "slave10:ip=c,port=3\r\nslave2:ip=b,port=2\r\nslave0:ip=a,port=1\r\n\
         db10:keys=3,expires=0\r\ndb2:keys=2,expires=0\r\ndb0:keys=1,expires=1,avg_ttl=5",
    );
    let ips: Vec<&str> = info.replicas.iter().map(|replica| replica.ip.as_str()).collect();
    assert_eq!(ips, ["a", "b", "c"]);
    let dbs: Vec<u32> = info.keyspace.iter().map(|db| db.db).collect();
    assert_eq!(dbs, [0, 2, 10]);
    assert_eq!(info.dataset().keys, 6);
    assert_eq!(info.dataset().expires, 1);
}

#[test]
fn replica_lag_counts_bytes_received_but_not_applied() {
    let info = parse(
        "role:slave\r\nmaster_host:h\r\nmaster_port:1\r\nmaster_link_status:up\r\n\
         master_last_io_seconds_ago:3\r\nmaster_repl_offset:500\r\nslave_repl_offset:500\r\n\
         slave_read_repl_offset:620\r\n",
    );
    let replication = info.replication();
    assert_eq!(replication.lag_bytes, Some(120));
    assert_eq!(replication.lag_seconds, Some(3));
    assert_eq!(replication.primary.as_deref(), Some("h:1"));
}

#[test]
fn syncing_replica_reports_a_syncing_link_without_lag() {
    let info = parse("role:slave\r\nmaster_link_status:down\r\nmaster_sync_in_progress:1\r\n");
    let replication = info.replication();
    assert_eq!(replication.link.as_deref(), Some("syncing"));
    assert!(replication.sync_in_progress);
    assert_eq!((replication.lag_bytes, replication.lag_seconds), (None, None));
}

#[test]
fn primary_measures_each_replica_lag_from_its_own_offset() {
    let info = parse(
        "role:master\r\nmaster_repl_offset:1000\r\nconnected_slaves:2\r\n\
         slave0:ip=a,port=1,state=online,offset=1000,lag=0\r\n\
         slave1:ip=b,port=2,state=wait_bgsave,offset=0,lag=7\r\n",
    );
    let lags: Vec<(i64, i64)> = info
        .replication()
        .connected_replicas
        .iter()
        .map(|replica| (replica.lag_bytes, replica.lag_seconds))
        .collect();
    assert_eq!(lags, [(0, 0), (1000, 7)]);
}

#[test]
fn failed_saves_and_writes_read_as_not_ok() {
    let info = parse(
        "rdb_last_bgsave_status:err\r\naof_last_write_status:err\r\naof_last_bgrewrite_status:err\r\n\
         aof_enabled:1\r\nloading:1",
    );
    assert!(!info.rdb_last_bgsave_ok && !info.aof_last_write_ok && !info.aof_last_bgrewrite_ok);
    let persistence = info.persistence("aof", true);
    assert_eq!(persistence.mode, "aof");
    assert!(persistence.loaded_from_disk && persistence.loading && persistence.aof_enabled);
    assert!(!persistence.rdb_last_bgsave_ok && !persistence.aof_last_write_ok);
}

#[test]
fn dataset_and_persistence_of_a_fixture_carry_its_figures() {
    let info = fixture("redis-7.0-primary");
    let dataset = info.dataset();
    assert_eq!(
        (dataset.keys, dataset.expires, dataset.maxmemory_bytes),
        (4, 1, 0)
    );
    assert_eq!(
        (dataset.used_memory_bytes, dataset.dataset_bytes),
        (info.used_memory, info.used_memory_dataset)
    );
    let persistence = info.persistence("none", false);
    assert_eq!(persistence.rdb_changes_since_last_save, 4);
    assert!(persistence.rdb_last_bgsave_ok && persistence.aof_last_write_ok && !persistence.loaded_from_disk);
}
