use super::*;
use cnredis_api::cluster::TlsSpec;

const MI: u64 = 1024 * 1024;

fn valkey() -> Engine {
    Engine {
        kind: EngineKind::Valkey,
        version: (8, 1, 8),
    }
}

fn spec() -> RedisClusterSpec {
    RedisClusterSpec::with_defaults()
}

fn spec_with(parameters: &[(&str, &str)]) -> RedisClusterSpec {
    let mut spec = spec();
    spec.parameters = parameters
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    spec
}

/// A primary with a password, 256Mi of memory, no TLS.
fn input(spec: &RedisClusterSpec) -> ConfigInput<'_> {
    ConfigInput {
        spec,
        engine: valkey(),
        pod_ip: Ipv4Addr::new(10, 0, 0, 7),
        port: 6379,
        data_dir: PathBuf::from("/data"),
        password: Some("secret".to_string()),
        memory_limit_bytes: Some(256 * MI),
        replica_of: None,
        tls: None,
        unix_socket: None,
    }
}

fn tls_files() -> TlsFiles {
    TlsFiles {
        cert: "/tls/tls.crt".into(),
        key: "/tls/tls.key".into(),
        ca: "/tls/ca.crt".into(),
    }
}

/// The value of `name` as the server reads it back, `None` when the file has no such line.
fn value(config: &str, name: &str) -> Option<String> {
    parse(config)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, value)| value.expect("rendered lines parse"))
}

fn names(config: &str) -> Vec<String> {
    parse(config).into_iter().map(|(name, _)| name).collect()
}

#[test]
fn default_spec_renders_a_primary_with_snapshots_and_aof() {
    let spec = spec();
    let expected = "\
# Rendered by cnredis for valkey 8.1.8. The instance manager rewrites this file; set parameters in the RedisCluster.
port 6379
bind 0.0.0.0
protected-mode no
daemonize no
dir /data
dbfilename dump.rdb
save 3600 1 300 100 60 10000
appendonly yes
aof-use-rdb-preamble yes
appendfsync everysec
maxmemory 187904819
maxmemory-policy noeviction
requirepass secret
masterauth secret
replica-announce-ip 10.0.0.7
replica-read-only yes
";
    assert_eq!(render(&input(&spec)).unwrap(), expected);
}

#[test]
fn rendering_is_deterministic() {
    let spec = spec_with(&[("timeout", "30"), ("hz", "20"), ("notify-keyspace-events", "KEA")]);
    assert_eq!(render(&input(&spec)).unwrap(), render(&input(&spec)).unwrap());
}

#[test]
fn persistence_modes_set_save_points_and_aof() {
    // (mode, user save parameter, save, appendonly, aof-use-rdb-preamble)
    let cases = [
        (PersistenceMode::None, None, "", "no", "no"),
        (PersistenceMode::Rdb, None, DEFAULT_SAVE_POINTS, "no", "no"),
        (PersistenceMode::Rdb, Some("900 1"), "900 1", "no", "no"),
        (PersistenceMode::Aof, None, "", "yes", "no"),
        (PersistenceMode::RdbAof, None, DEFAULT_SAVE_POINTS, "yes", "yes"),
        (PersistenceMode::RdbAof, Some("60  5"), "60 5", "yes", "yes"),
        (PersistenceMode::RdbAof, Some(""), "", "yes", "yes"),
    ];
    for (mode, user_save, save, appendonly, preamble) in cases {
        let parameters: Vec<(&str, &str)> = user_save.map(|save| ("save", save)).into_iter().collect();
        let mut spec = spec_with(&parameters);
        spec.persistence.mode = mode;
        let config = render(&input(&spec)).unwrap();
        let case = format!("{mode:?} with save {user_save:?}");
        assert_eq!(value(&config, "save").as_deref(), Some(save), "{case}");
        assert_eq!(
            value(&config, "appendonly").as_deref(),
            Some(appendonly),
            "{case}"
        );
        assert_eq!(
            value(&config, "aof-use-rdb-preamble").as_deref(),
            Some(preamble),
            "{case}"
        );
        assert_eq!(
            names(&config).iter().filter(|n| *n == "save").count(),
            1,
            "{case}"
        );
    }
}

#[test]
fn disabling_snapshots_renders_an_empty_quoted_save() {
    let mut spec = spec();
    spec.persistence.mode = PersistenceMode::Aof;
    let config = render(&input(&spec)).unwrap();
    assert!(config.contains("\nsave \"\"\n"), "{config}");
}

#[test]
fn a_save_parameter_without_snapshots_is_rejected() {
    for mode in [PersistenceMode::None, PersistenceMode::Aof] {
        for name in ["save", "SAVE"] {
            let mut spec = spec_with(&[(name, "60 1")]);
            spec.persistence.mode = mode;
            assert_eq!(
                render(&input(&spec)),
                Err(ConfigError::SaveWithoutSnapshots),
                "{mode:?} {name}"
            );
        }
    }
}

#[test]
fn append_fsync_follows_the_spec() {
    for (fsync, expected) in [
        (AppendFsync::Always, "always"),
        (AppendFsync::Everysec, "everysec"),
        (AppendFsync::No, "no"),
    ] {
        let mut spec = spec();
        spec.persistence.append_fsync = fsync;
        let config = render(&input(&spec)).unwrap();
        assert_eq!(value(&config, "appendfsync").as_deref(), Some(expected));
    }
}

#[test]
fn maxmemory_is_a_percentage_of_the_memory_limit() {
    // (limit, percent, maxmemory)
    let cases = [
        (Some(256 * MI), 70, Some("187904819")),
        (Some(1024 * MI), 50, Some("536870912")),
        (Some(100), 95, Some("95")),
        (None, 70, None),
    ];
    for (limit, percent, expected) in cases {
        let mut spec = spec();
        spec.memory.maxmemory_percent = percent;
        let mut input = input(&spec);
        input.memory_limit_bytes = limit;
        let config = render(&input).unwrap();
        assert_eq!(
            value(&config, "maxmemory").as_deref(),
            expected,
            "{limit:?} x {percent}%"
        );
        assert_eq!(value(&config, "maxmemory-policy").as_deref(), Some("noeviction"));
    }
}

#[test]
fn maxmemory_percent_outside_the_schema_range_is_rejected() {
    for percent in [0, -5, 101] {
        let mut spec = spec();
        spec.memory.maxmemory_percent = percent;
        assert_eq!(
            render(&input(&spec)),
            Err(ConfigError::InvalidMaxmemoryPercent(percent))
        );
    }
}

#[test]
fn eviction_policy_uses_the_server_spelling() {
    let mut spec = spec();
    spec.memory.policy = EvictionPolicy::AllkeysLfu;
    let config = render(&input(&spec)).unwrap();
    assert_eq!(value(&config, "maxmemory-policy").as_deref(), Some("allkeys-lfu"));
}

#[test]
fn a_replica_starts_following_its_primary_and_a_primary_follows_nobody() {
    let spec = spec();
    let primary = render(&input(&spec)).unwrap();
    assert_eq!(value(&primary, "replicaof"), None);

    let mut replica = input(&spec);
    replica.replica_of = Some(("10.0.0.5".to_string(), 6379));
    let replica = render(&replica).unwrap();
    assert_eq!(value(&replica, "replicaof").as_deref(), Some("10.0.0.5 6379"));
    for config in [&primary, &replica] {
        assert_eq!(value(config, "replica-announce-ip").as_deref(), Some("10.0.0.7"));
        assert_eq!(value(config, "replica-read-only").as_deref(), Some("yes"));
    }
}

#[test]
fn password_sets_requirepass_and_masterauth_and_auth_off_sets_neither() {
    let spec = spec();
    let config = render(&input(&spec)).unwrap();
    assert_eq!(value(&config, "requirepass").as_deref(), Some("secret"));
    assert_eq!(value(&config, "masterauth").as_deref(), Some("secret"));
    assert_eq!(value(&config, "protected-mode").as_deref(), Some("no"));

    let mut open = spec.clone();
    open.auth.enabled = false;
    let config = render(&input(&open)).unwrap();
    assert_eq!(value(&config, "requirepass"), None);
    assert_eq!(value(&config, "masterauth"), None);
    assert_eq!(value(&config, "protected-mode").as_deref(), Some("no"));
    assert!(config.contains("# spec.auth.enabled is false"), "{config}");
}

#[test]
fn auth_enabled_without_a_password_is_an_error_not_an_open_server() {
    let spec = spec();
    let mut input = input(&spec);
    input.password = None;
    assert_eq!(render(&input), Err(ConfigError::MissingPassword));
}

#[test]
fn sync_replicas_render_min_replicas_settings_only_when_asked() {
    let spec = spec();
    let config = render(&input(&spec)).unwrap();
    assert_eq!(value(&config, "min-replicas-to-write"), None);
    assert_eq!(value(&config, "min-replicas-max-lag"), None);

    let mut sync = spec.clone();
    sync.failover.min_sync_replicas = 1;
    sync.failover.max_sync_replica_lag_seconds = 5;
    let config = render(&input(&sync)).unwrap();
    assert_eq!(value(&config, "min-replicas-to-write").as_deref(), Some("1"));
    assert_eq!(value(&config, "min-replicas-max-lag").as_deref(), Some("5"));
}

#[test]
fn tls_moves_the_port_to_tls_and_encrypts_replication() {
    let mut spec = spec();
    spec.tls = Some(TlsSpec {
        secret_name: "c-tls".to_string(),
    });
    let mut input = input(&spec);
    input.tls = Some(tls_files());
    let config = render(&input).unwrap();
    for (name, expected) in [
        ("port", "0"),
        ("tls-port", "6379"),
        ("tls-cert-file", "/tls/tls.crt"),
        ("tls-key-file", "/tls/tls.key"),
        ("tls-ca-cert-file", "/tls/ca.crt"),
        ("tls-replication", "yes"),
        ("tls-auth-clients", "optional"),
    ] {
        assert_eq!(value(&config, name).as_deref(), Some(expected), "{name}");
    }
    assert_eq!(names(&config).iter().filter(|n| n.starts_with("port")).count(), 1);
}

#[test]
fn tls_spec_and_certificate_files_must_come_together() {
    let mut with_tls = spec();
    with_tls.tls = Some(TlsSpec {
        secret_name: "c-tls".to_string(),
    });
    assert_eq!(render(&input(&with_tls)), Err(ConfigError::MissingTlsFiles));

    let spec = spec();
    let mut files_only = input(&spec);
    files_only.tls = Some(tls_files());
    assert_eq!(render(&files_only), Err(ConfigError::UnexpectedTlsFiles));
}

#[test]
fn user_parameters_come_last_in_spec_order_with_lowercase_names() {
    let spec = spec_with(&[
        ("timeout", "300"),
        ("Hz", "50"),
        ("notify-keyspace-events", "Ex"),
        ("client-output-buffer-limit", "replica 256mb 64mb 60"),
    ]);
    let config = render(&input(&spec)).unwrap();
    let all = names(&config);
    let tail = &all[all.len() - 4..];
    // BTreeMap order of the spec keys: uppercase sorts first.
    assert_eq!(
        tail,
        [
            "hz",
            "client-output-buffer-limit",
            "notify-keyspace-events",
            "timeout"
        ]
    );
    assert!(config.contains("\n# spec.parameters\nhz 50\n"), "{config}");
    assert!(config.contains("\nclient-output-buffer-limit replica 256mb 64mb 60\n"));
    assert_eq!(value(&config, "notify-keyspace-events").as_deref(), Some("Ex"));
}

#[test]
fn owned_parameters_are_rejected_whatever_their_case() {
    for name in [
        "port",
        "PORT",
        "Dir",
        "requirepass",
        "RequirePass",
        "replicaof",
        "SlaveOf",
        "tls-port",
    ] {
        let spec = spec_with(&[(name, "1")]);
        assert_eq!(
            render(&input(&spec)),
            Err(ConfigError::OwnedParameter(name.to_string())),
            "{name}"
        );
    }
}

#[test]
fn every_owned_parameter_is_rejected() {
    for name in OPERATOR_OWNED_PARAMETERS {
        let spec = spec_with(&[(name, "x")]);
        assert_eq!(
            render(&input(&spec)),
            Err(ConfigError::OwnedParameter(name.to_string()))
        );
    }
}

#[test]
fn malformed_or_duplicate_parameter_names_are_rejected() {
    for name in ["", "max memory", "timeout\nport", "hz\"", "dir#"] {
        let spec = spec_with(&[(name, "1")]);
        assert_eq!(
            render(&input(&spec)),
            Err(ConfigError::InvalidParameterName(name.to_string())),
            "{name:?}"
        );
    }
    let spec = spec_with(&[("Timeout", "1"), ("timeout", "2")]);
    assert_eq!(
        render(&input(&spec)),
        Err(ConfigError::DuplicateParameter("timeout".to_string()))
    );
}

#[test]
fn values_are_quoted_so_the_server_reads_them_back_unchanged() {
    let tricky = [
        r#"a "quoted" word"#,
        r"back\slash",
        "two  spaces",
        "",
        "#not-a-comment",
        "'single'",
        "tab\there",
        "ünïcode",
    ];
    for tricky_value in tricky {
        let spec = spec_with(&[("notify-keyspace-events", tricky_value)]);
        let config = render(&input(&spec)).unwrap();
        assert_eq!(
            value(&config, "notify-keyspace-events").as_deref(),
            Some(tricky_value),
            "{config}"
        );
    }
    let spec = spec_with(&[("notify-keyspace-events", r#"a "b" c\d"#)]);
    let config = render(&input(&spec)).unwrap();
    assert!(
        config.contains(r#"notify-keyspace-events "a \"b\" c\\d""#),
        "{config}"
    );
}

#[test]
fn passwords_and_paths_are_quoted_too() {
    let spec = spec();
    let mut input = input(&spec);
    input.password = Some(r#"p@ss "word" \x"#.to_string());
    input.data_dir = PathBuf::from("/var/lib/my data");
    let config = render(&input).unwrap();
    assert_eq!(
        value(&config, "requirepass").as_deref(),
        Some(r#"p@ss "word" \x"#)
    );
    assert_eq!(value(&config, "dir").as_deref(), Some("/var/lib/my data"));
}

#[test]
fn line_breaks_in_values_are_rejected() {
    for bad in ["60 1\nport 1", "x\ry", "nul\0"] {
        let spec = spec_with(&[("timeout", bad)]);
        assert_eq!(
            render(&input(&spec)),
            Err(ConfigError::UnsafeValue("timeout".to_string())),
            "{bad:?}"
        );
        // Split into words or not, a multi-word parameter hides no line break either.
        let spec = spec_with(&[("save", bad)]);
        assert_eq!(
            render(&input(&spec)),
            Err(ConfigError::UnsafeValue("save".to_string()))
        );
    }
    let spec = spec();
    let mut input = input(&spec);
    input.password = Some("pass\nport 1".to_string());
    assert_eq!(
        render(&input),
        Err(ConfigError::UnsafeValue("requirepass".to_string()))
    );
}

#[test]
fn version_output_of_both_engines_parses() {
    let cases = [
        (
            "Valkey server v=8.1.8 sha=00000000:1 malloc=libc bits=64 build=7eb4ebc9d7e91f4e\n",
            EngineKind::Valkey,
            (8, 1, 8),
        ),
        (
            "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d7c971a948f0",
            EngineKind::Redis,
            (7, 0, 15),
        ),
        (
            "Valkey server v=9.0.0-rc1 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=1",
            EngineKind::Valkey,
            (9, 0, 0),
        ),
    ];
    for (output, kind, version) in cases {
        assert_eq!(
            Engine::parse_version_output(output),
            Ok(Engine { kind, version }),
            "{output}"
        );
    }
    assert_eq!(EngineKind::Valkey.server_binary(), "valkey-server");
    assert_eq!(EngineKind::Redis.server_binary(), "redis-server");
}

#[test]
fn unrecognized_version_output_is_an_error() {
    for output in [
        "",
        "KeyDB server v=6.3.4",
        "Redis server sha=00000000:0",
        "Redis server v=7.x.1",
        "Redis server v=7.2",
    ] {
        assert!(
            matches!(
                Engine::parse_version_output(output),
                Err(ConfigError::UnrecognizedVersionOutput(_))
            ),
            "{output:?}"
        );
    }
}

#[test]
fn engines_older_than_7_are_refused() {
    let spec = spec();
    let mut input = input(&spec);
    input.engine = Engine {
        kind: EngineKind::Redis,
        version: (6, 2, 14),
    };
    assert_eq!(render(&input), Err(ConfigError::UnsupportedEngine(input.engine)));
    input.engine.version = (7, 0, 0);
    assert!(render(&input).is_ok());
}

#[test]
fn live_settable_parameters_are_an_allow_list() {
    for name in [
        "maxmemory",
        "MAXMEMORY-POLICY",
        "save",
        "appendfsync",
        "slowlog-max-len",
        "lazyfree-lazy-eviction",
        "min-replicas-to-write",
        "repl-diskless-sync",
        "requirepass",
        "client-output-buffer-limit",
    ] {
        assert!(live_settable(name), "{name}");
    }
    for name in [
        "port",
        "tls-port",
        "databases",
        "io-threads",
        "bind",
        "unknown-thing",
    ] {
        assert!(!live_settable(name), "{name}");
    }
}

fn render_with(change: impl FnOnce(&mut RedisClusterSpec, &mut Option<u64>)) -> String {
    let mut spec = spec_with(&[("timeout", "0")]);
    let mut limit = Some(256 * MI);
    change(&mut spec, &mut limit);
    let mut input = input(&spec);
    input.memory_limit_bytes = limit;
    render(&input).unwrap()
}

#[test]
fn diff_applies_memory_changes_live() {
    let old = render_with(|_, _| {});
    let new = render_with(|spec, _| {
        spec.memory.maxmemory_percent = 50;
        spec.memory.policy = EvictionPolicy::AllkeysLru;
    });
    assert_eq!(
        diff(&old, &new),
        ConfigDiff {
            live: vec![
                ("maxmemory".to_string(), "134217728".to_string()),
                ("maxmemory-policy".to_string(), "allkeys-lru".to_string()),
            ],
            restart: vec![],
        }
    );
}

#[test]
fn diff_sends_ports_and_databases_to_a_restart() {
    let old = render_with(|_, _| {});
    let new = render_with(|spec, _| {
        spec.parameters.insert("databases".to_string(), "32".to_string());
        spec.parameters.insert("timeout".to_string(), "60".to_string());
    });
    let diff = diff(&old, &new);
    assert_eq!(diff.live, vec![("timeout".to_string(), "60".to_string())]);
    assert_eq!(diff.restart, vec!["databases".to_string()]);

    let plain = render_with(|_, _| {});
    let mut tls_spec = spec_with(&[("timeout", "0")]);
    tls_spec.tls = Some(TlsSpec {
        secret_name: "c-tls".to_string(),
    });
    let mut tls_input = input(&tls_spec);
    tls_input.tls = Some(tls_files());
    let with_tls = render(&tls_input).unwrap();
    let diff = super::diff(&plain, &with_tls);
    assert!(diff.live.is_empty(), "{diff:?}");
    assert!(diff.restart.contains(&"tls-port".to_string()), "{diff:?}");
    assert!(diff.restart.contains(&"port".to_string()), "{diff:?}");
}

#[test]
fn diff_of_identical_configurations_is_empty() {
    let config = render_with(|_, _| {});
    assert!(diff(&config, &config).is_empty());
}

#[test]
fn diff_rotates_the_password_live() {
    let spec = spec();
    let old = render(&input(&spec)).unwrap();
    let mut rotated = input(&spec);
    rotated.password = Some("new \"secret\"".to_string());
    let new = render(&rotated).unwrap();
    assert_eq!(
        diff(&old, &new).live,
        vec![
            ("requirepass".to_string(), "new \"secret\"".to_string()),
            ("masterauth".to_string(), "new \"secret\"".to_string()),
        ]
    );
}

#[test]
fn diff_passes_multi_word_values_as_config_set_takes_them() {
    let old = render_with(|spec, _| spec.persistence.mode = PersistenceMode::Aof);
    let new = render_with(|spec, _| spec.persistence.mode = PersistenceMode::RdbAof);
    assert_eq!(
        diff(&old, &new).live,
        vec![
            ("save".to_string(), DEFAULT_SAVE_POINTS.to_string()),
            ("aof-use-rdb-preamble".to_string(), "yes".to_string()),
        ]
    );
    let snapshots_off = render_with(|spec, _| spec.persistence.mode = PersistenceMode::Aof);
    assert_eq!(
        diff(&new, &snapshots_off).live,
        vec![
            ("save".to_string(), String::new()),
            ("aof-use-rdb-preamble".to_string(), "no".to_string()),
        ]
    );
}

#[test]
fn diff_resets_removed_live_parameters_to_their_default_and_restarts_for_others() {
    let with = render_with(|spec, _| {
        spec.failover.min_sync_replicas = 1;
        spec.parameters.insert("databases".to_string(), "32".to_string());
    });
    let without = render_with(|_, limit| *limit = None);
    let diff = diff(&with, &without);
    assert_eq!(
        diff.live,
        vec![
            ("maxmemory".to_string(), "0".to_string()),
            ("min-replicas-max-lag".to_string(), "10".to_string()),
            ("min-replicas-to-write".to_string(), "0".to_string()),
        ]
    );
    assert_eq!(diff.restart, vec!["databases".to_string()]);
}

#[test]
fn diff_leaves_the_replication_role_to_decide() {
    let spec = spec();
    let primary = render(&input(&spec)).unwrap();
    let mut replica = input(&spec);
    replica.replica_of = Some(("10.0.0.5".to_string(), 6379));
    let replica = render(&replica).unwrap();
    assert!(diff(&primary, &replica).is_empty());
    assert!(diff(&replica, &primary).is_empty());
}

#[test]
fn split_args_reads_what_quote_writes() {
    assert_eq!(
        split_args(r#"name bare "two words" "esc \" \\" """#),
        Some(vec![
            "name".to_string(),
            "bare".to_string(),
            "two words".to_string(),
            r#"esc " \"#.to_string(),
            String::new(),
        ])
    );
    assert_eq!(split_args(r#"name "unterminated"#), None);
    assert_eq!(split_args(r#"name "closed"glued"#), None);
}
