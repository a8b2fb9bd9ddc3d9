use std::collections::BTreeMap;

use prometheus_parse::{Scrape as Parsed, Value};

use super::*;
use crate::info::tests::{FIXTURES, fixture};

fn manager() -> ManagerMetrics {
    ManagerMetrics {
        fenced: false,
        role: wire::Role::Primary,
        lease: wire::LeaseStatus::Held,
        server_restarts: 2,
        manager_version: "0.1.0".to_owned(),
        engine: "valkey".to_owned(),
        engine_version: "9.1.2".to_owned(),
        empty_after_restart: false,
        manager_uptime_seconds: 42,
        pending_restart: 1,
    }
}

fn scrape(text: &str) -> Parsed {
    Parsed::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("parseable exposition")
}

/// The value of the one sample of `metric` whose labels include `labels`.
fn value(parsed: &Parsed, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = parsed.samples.iter().filter(|sample| {
        sample.metric == metric
            && labels
                .iter()
                .all(|(key, value)| sample.labels.get(key) == Some(*value))
    });
    let sample = found.next()?;
    assert!(found.next().is_none(), "{metric}{labels:?} names a single sample");
    match sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
        _ => panic!("{metric} is a plain sample"),
    }
}

fn render_fixture(name: &str) -> Parsed {
    scrape(&render(Some(&fixture(name)), &manager()))
}

#[test]
fn every_fixture_renders_its_keys_replicas_and_offset() {
    // (fixture, db0 keys, connected slaves, master_repl_offset, master_link_up)
    let cases = [
        ("valkey-8.1-primary", 4.0, 1.0, 172.0, None),
        ("valkey-8.1-replica", 4.0, 0.0, 172.0, Some(1.0)),
        ("valkey-8.1-replica-link-down", 0.0, 0.0, 0.0, Some(0.0)),
        ("valkey-9.1-primary", 4.0, 1.0, 186.0, None),
        ("valkey-9.1-replica", 4.0, 0.0, 186.0, Some(1.0)),
        ("valkey-9.1-replica-link-down", 0.0, 0.0, 0.0, Some(0.0)),
        ("redis-7.0-primary", 4.0, 1.0, 172.0, None),
        ("redis-7.0-replica", 4.0, 0.0, 172.0, Some(1.0)),
        ("redis-7.0-replica-link-down", 0.0, 0.0, 0.0, Some(0.0)),
    ];
    assert_eq!(cases.len(), FIXTURES.len(), "every fixture has a case");
    for (name, keys, slaves, offset, link_up) in cases {
        let parsed = render_fixture(name);
        assert_eq!(value(&parsed, "redis_up", &[]), Some(1.0), "{name}");
        assert_eq!(
            value(&parsed, "redis_db_keys", &[("db", "db0")]),
            Some(keys),
            "{name}"
        );
        assert_eq!(
            value(&parsed, "redis_connected_slaves", &[]),
            Some(slaves),
            "{name}"
        );
        assert_eq!(
            value(&parsed, "redis_master_repl_offset", &[]),
            Some(offset),
            "{name}"
        );
        assert_eq!(value(&parsed, "redis_master_link_up", &[]), link_up, "{name}");
        assert_eq!(
            value(&parsed, "cnredis_instance_fenced", &[]),
            Some(0.0),
            "{name}"
        );
    }
}

#[test]
fn primary_renders_its_replica_and_server_figures() {
    let parsed = render_fixture("valkey-9.1-primary");
    let replica = [
        ("slave_ip", "127.0.0.1"),
        ("slave_port", "7421"),
        ("slave_state", "online"),
    ];
    assert_eq!(
        value(&parsed, "redis_connected_slave_offset_bytes", &replica),
        Some(186.0)
    );
    assert_eq!(
        value(&parsed, "redis_connected_slave_lag_seconds", &replica),
        Some(0.0)
    );
    assert_eq!(
        value(&parsed, "redis_db_keys_expiring", &[("db", "db0")]),
        Some(1.0)
    );
    assert_eq!(value(&parsed, "redis_memory_used_bytes", &[]), Some(1_211_424.0));
    assert_eq!(value(&parsed, "redis_mem_fragmentation_ratio", &[]), Some(5.58));
    assert_eq!(value(&parsed, "redis_commands_processed_total", &[]), Some(41.0));
    assert_eq!(value(&parsed, "redis_keyspace_misses_total", &[]), Some(1.0));
    assert_eq!(
        value(&parsed, "redis_rdb_changes_since_last_save", &[]),
        Some(4.0)
    );
    assert_eq!(value(&parsed, "redis_rdb_last_bgsave_status", &[]), Some(1.0));
    assert_eq!(
        value(&parsed, "redis_rdb_last_save_timestamp_seconds", &[]),
        Some(1_795_259_451.0)
    );
    let instance = [
        ("role", "master"),
        ("redis_version", "7.2.4"),
        ("redis_mode", "standalone"),
    ];
    assert_eq!(value(&parsed, "redis_instance_info", &instance), Some(1.0));
    assert_eq!(
        value(&parsed, "redis_slave_repl_offset", &[]),
        None,
        "a primary has no primary"
    );
}

#[test]
fn replica_renders_its_link_labelled_with_its_primary() {
    let parsed = render_fixture("redis-7.0-replica");
    let primary = [("master_host", "127.0.0.1"), ("master_port", "7430")];
    assert_eq!(value(&parsed, "redis_master_link_up", &primary), Some(1.0));
    assert_eq!(value(&parsed, "redis_slave_repl_offset", &primary), Some(172.0));
    assert_eq!(
        value(&parsed, "redis_master_sync_in_progress", &primary),
        Some(0.0)
    );
    assert_eq!(
        value(&parsed, "redis_master_last_io_seconds_ago", &primary),
        Some(1.0)
    );
    assert_eq!(value(&parsed, "redis_connected_slave_offset_bytes", &[]), None);
    let instance = [
        ("role", "slave"),
        ("redis_version", "7.0.15"),
        ("tcp_port", "7431"),
    ];
    assert_eq!(value(&parsed, "redis_instance_info", &instance), Some(1.0));
}

#[test]
fn silent_server_renders_only_redis_up_and_the_manager() {
    let text = render(None, &manager());
    let parsed = scrape(&text);
    assert_eq!(value(&parsed, "redis_up", &[]), Some(0.0));
    let names: Vec<&str> = parsed
        .samples
        .iter()
        .map(|sample| sample.metric.as_str())
        .collect();
    assert!(
        names
            .iter()
            .all(|name| *name == "redis_up" || name.starts_with("cnredis_instance_")),
        "{names:?}"
    );
    assert_eq!(
        value(&parsed, "cnredis_instance_server_restarts_total", &[]),
        Some(2.0)
    );
    assert_eq!(
        value(&parsed, "cnredis_instance_pending_restart_parameters", &[]),
        Some(1.0)
    );
    assert_eq!(
        value(&parsed, "cnredis_instance_manager_uptime_seconds", &[]),
        Some(42.0)
    );
    let info = [
        ("version", "0.1.0"),
        ("engine", "valkey"),
        ("engine_version", "9.1.2"),
    ];
    assert_eq!(value(&parsed, "cnredis_instance_manager_info", &info), Some(1.0));
}

#[test]
fn role_and_lease_have_one_series_per_value_set_for_the_current() {
    let fenced_replica = ManagerMetrics {
        fenced: true,
        role: wire::Role::Replica,
        lease: wire::LeaseStatus::NotPrimary,
        empty_after_restart: true,
        ..manager()
    };
    let parsed = scrape(&render(None, &fenced_replica));
    let roles = [("primary", 0.0), ("replica", 1.0), ("unknown", 0.0)];
    for (role, expected) in roles {
        assert_eq!(
            value(&parsed, "cnredis_instance_role", &[("role", role)]),
            Some(expected),
            "{role}"
        );
    }
    let leases = [
        ("held", 0.0),
        ("expired", 0.0),
        ("notPrimary", 1.0),
        ("disabled", 0.0),
    ];
    for (state, expected) in leases {
        let labels = [("state", state)];
        assert_eq!(
            value(&parsed, "cnredis_instance_lease_state", &labels),
            Some(expected),
            "{state}"
        );
    }
    assert_eq!(value(&parsed, "cnredis_instance_fenced", &[]), Some(1.0));
    assert_eq!(
        value(&parsed, "cnredis_instance_empty_after_restart", &[]),
        Some(1.0)
    );
}

#[test]
fn empty_server_still_renders_db0() {
    let parsed = scrape(&render(Some(&crate::info::parse("role:master\r\n")), &manager()));
    assert_eq!(value(&parsed, "redis_db_keys", &[("db", "db0")]), Some(0.0));
    assert_eq!(
        value(&parsed, "redis_db_keys_expiring", &[("db", "db0")]),
        Some(0.0)
    );
}

#[test]
fn failed_persistence_renders_status_zero() {
    let info = crate::info::parse("rdb_last_bgsave_status:err\r\naof_last_write_status:err\r\n");
    let parsed = scrape(&render(Some(&info), &manager()));
    assert_eq!(value(&parsed, "redis_rdb_last_bgsave_status", &[]), Some(0.0));
    assert_eq!(value(&parsed, "redis_aof_last_write_status", &[]), Some(0.0));
    assert_eq!(value(&parsed, "redis_aof_last_bgrewrite_status", &[]), Some(1.0));
}

#[test]
fn label_values_are_escaped() {
    let odd = ManagerMetrics {
        engine_version: "9.1\"x\\y".to_owned(),
        ..manager()
    };
    let text = render(None, &odd);
    assert!(text.contains(r#"engine_version="9.1\"x\\y""#), "{text}");
}

#[test]
fn every_family_has_help_and_type_and_every_sample_a_family() {
    let mut texts: Vec<String> = FIXTURES
        .iter()
        .map(|(name, _)| render(Some(&fixture(name)), &manager()))
        .collect();
    texts.push(render(None, &manager()));
    for text in texts {
        let mut helps = BTreeMap::new();
        let mut types = BTreeMap::new();
        for line in text.lines() {
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some("#"), Some("HELP"), Some(name), Some(_)) => assert!(helps.insert(name, ()).is_none()),
                (Some("#"), Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(types.insert(name, kind).is_none())
                }
                _ => {}
            }
        }
        assert_eq!(helps.keys().collect::<Vec<_>>(), types.keys().collect::<Vec<_>>());
        assert_eq!(text.lines().last(), Some("# EOF"));
        for sample in text.lines().filter(|line| !line.starts_with('#')) {
            let name = sample.split(['{', ' ']).next().unwrap_or_default();
            let family = match name.strip_suffix("_total") {
                Some(counter) if types.get(counter) == Some(&"counter") => counter,
                _ => name,
            };
            assert!(types.contains_key(family), "{name} has a HELP and a TYPE");
            assert!(
                matches!(types[family], "gauge" | "counter"),
                "{name}: {}",
                types[family]
            );
        }
    }
}
