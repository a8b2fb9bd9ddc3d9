//! `cnredis instance run` supervising real servers (Valkey 9.1 and 8.1, Redis 7.0): replication set up
//! and repointed, switchover by promote and demote, fencing, the boot-time and empty-primary guards,
//! password rotation without a restart, a killed server coming back, a clean SIGTERM, the instance API's
//! authentication, metrics that a Prometheus parser reads, replicas serving stale reads for a bounded time
//! after their primary died, and the lease watchdog fencing on time while the manager is busy.

mod support;

use std::time::{Duration, Instant};

use cnredis_instance_client::wire::{self, Role};
use cnredis_instance_client::{ClientError, InstanceClient};
use support::{CLUSTER, Harness, PASSWORD, eventually, info_field};

const WAIT: Duration = Duration::from_secs(30);

async fn set(harness: &Harness, pod: &str, key: &str, value: &str) -> redis::RedisResult<()> {
    let mut connection = harness.redis(pod, PASSWORD).await?;
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(&mut connection)
        .await
}

async fn get(harness: &Harness, pod: &str, key: &str) -> Result<Option<String>, String> {
    let mut connection = harness.redis(pod, PASSWORD).await.map_err(|e| e.to_string())?;
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut connection)
        .await
        .map_err(|e| e.to_string())
}

async fn wait_value(harness: &Harness, pod: &str, key: &str, value: &str) {
    wait_value_with(harness, pod, PASSWORD, key, value).await
}

async fn wait_value_with(harness: &Harness, pod: &str, password: &str, key: &str, value: &str) {
    eventually(&format!("{key}={value} on {pod}"), WAIT, || async {
        let mut connection = harness.redis(pod, password).await.map_err(|e| e.to_string())?;
        let found: Option<String> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut connection)
            .await
            .map_err(|e| e.to_string())?;
        match found {
            Some(found) if found == value => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// `repl-ping-replica-period` of the server of `pod`.
async fn ping_period(harness: &Harness, pod: &str) -> String {
    let mut connection = harness
        .redis(pod, PASSWORD)
        .await
        .expect("connecting to the server");
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("repl-ping-replica-period")
        .query_async(&mut connection)
        .await
        .expect("CONFIG GET repl-ping-replica-period");
    pair.get(1).cloned().unwrap_or_default()
}

fn error_code(result: redis::RedisResult<()>) -> Option<String> {
    result.err().and_then(|error| error.code().map(str::to_string))
}

/// Two instances, c-1 primary: replication, fencing, auth, switchover, rotation, crash, SIGTERM.
async fn lifecycle(engine: &str) {
    let mut h = Harness::new(&format!("lifecycle-{engine}"), engine, 2, "rdb");
    h.set_primary(Some("c-1"), Some("c-1"));
    h.start("c-1");
    h.start("c-2");
    let primary = h.wait_ready("c-1").await;
    assert_eq!(primary.role, Role::Primary);
    assert!(!primary.fenced);
    let replica = h.wait_ready("c-2").await;
    assert_eq!(replica.role, Role::Replica);
    assert_eq!(
        replica.replication.primary.as_deref(),
        Some(format!("127.0.0.1:{}", h.instance("c-1").port).as_str())
    );
    assert_eq!(
        replica.engine,
        if engine.starts_with("valkey") {
            "valkey"
        } else {
            "redis"
        }
    );

    // Replication.
    set(&h, "c-1", "k1", "v1").await.unwrap();
    wait_value(&h, "c-2", "k1", "v1").await;
    assert_eq!(
        error_code(set(&h, "c-2", "k", "v").await).as_deref(),
        Some("READONLY")
    );

    // Authentication of the API: nothing changes for a caller that is not the operator.
    let anonymous = InstanceClient::new(
        cnredis_pki::anonymous_client_config(h.ca.cert_pem()).unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    let pod_identity = InstanceClient::new(
        cnredis_pki::client_config(h.ca.cert_pem(), &h.server_cert.cert_pem, &h.server_cert.key_pem).unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    let stranger_ca = cnredis_pki::CertificateAuthority::generate("another CA").unwrap();
    let stranger_cert = stranger_ca
        .issue_operator_client(Duration::from_secs(3600))
        .unwrap();
    let stranger = InstanceClient::new(
        cnredis_pki::client_config(h.ca.cert_pem(), &stranger_cert.cert_pem, &stranger_cert.key_pem).unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    let c1 = h.instance("c-1").target();
    for (who, client, expected) in [
        ("no certificate", &anonymous, 401),
        ("a pod's server certificate", &pod_identity, 403),
        ("another CA's operator certificate", &stranger, 403),
    ] {
        match client.fence(&c1).await {
            Err(ClientError::Api { status, error }) => {
                assert_eq!(status, expected, "fence with {who}: {error:?}")
            }
            other => panic!("fence with {who} should be refused, got {other:?}"),
        }
        match client.promote(&h.instance("c-2").target()).await {
            Err(ClientError::Api { status, .. }) => assert_eq!(status, expected, "promote with {who}"),
            other => panic!("promote with {who} should be refused, got {other:?}"),
        }
    }
    // Reads are open (probes carry no certificate).
    assert!(anonymous.ready(&c1).await.unwrap());
    set(&h, "c-1", "after-refused-calls", "1").await.unwrap();
    assert_eq!(h.status("c-2").await.unwrap().role, Role::Replica);

    // Fence: writes refused once the call returns; reads go on; unfence restores writes.
    let fenced = h.operator.fence(&c1).await.unwrap();
    assert!(fenced.fenced);
    assert_eq!(
        error_code(set(&h, "c-1", "k2", "v2").await).as_deref(),
        Some("NOREPLICAS")
    );
    assert_eq!(get(&h, "c-1", "k1").await.unwrap().as_deref(), Some("v1"));
    let report = h.status("c-1").await.unwrap();
    assert!(report.fenced);
    assert_eq!(report.fence_reasons, ["requested"]);
    // A fenced primary sends its replicas no PING, which would move their offsets past its own at the
    // fence; unfenced, it pings again.
    assert_eq!(ping_period(&h, "c-1").await, "3600");
    let unfenced = h.operator.unfence(&c1).await.unwrap();
    assert!(!unfenced.fenced);
    set(&h, "c-1", "k2", "v2").await.unwrap();
    assert_eq!(ping_period(&h, "c-1").await, "10");

    // The annotation fences as well, and withdrawing it unfences.
    h.set_annotation("cnredis.io/fencedInstances", Some(r#"["c-1"]"#));
    eventually("c-1 fenced by annotation", WAIT, || async {
        match error_code(set(&h, "c-1", "k3", "v3").await) {
            Some(code) if code == "NOREPLICAS" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    h.set_annotation("cnredis.io/fencedInstances", None);
    eventually("c-1 unfenced", WAIT, || async {
        set(&h, "c-1", "k3", "v3").await.map_err(|e| e.to_string())
    })
    .await;

    // Promotion is declarative: c-2 is not targetPrimary.
    match h.operator.promote(&h.instance("c-2").target()).await {
        Err(ClientError::Api { status, error }) => {
            assert_eq!((status, error.reason.as_str()), (409, "notTargetPrimary"))
        }
        other => panic!("promoting a pod that is not targetPrimary should fail, got {other:?}"),
    }

    // Switchover c-1 -> c-2: fence, wait for the offsets to match, promote, demote.
    let mut client_of_old_primary = h.redis("c-1", PASSWORD).await.unwrap();
    h.operator.fence(&c1).await.unwrap();
    eventually("c-2 caught up with c-1", WAIT, || async {
        let (p, r) = (h.status("c-1").await?, h.status("c-2").await?);
        if p.replication.offset == r.replication.offset {
            Ok(())
        } else {
            Err(format!("{} vs {}", p.replication.offset, r.replication.offset))
        }
    })
    .await;
    h.set_primary(Some("c-1"), Some("c-2"));
    let promoted = h.operator.promote(&h.instance("c-2").target()).await.unwrap();
    assert_eq!(promoted.role, Role::Primary);
    let again = h.operator.promote(&h.instance("c-2").target()).await.unwrap();
    assert_eq!(again.role, Role::Primary, "promote is idempotent");
    let demoted = h
        .operator
        .demote(
            &c1,
            &wire::DemoteRequest {
                primary_host: "127.0.0.1".to_string(),
                primary_port: h.instance("c-2").port,
            },
        )
        .await
        .unwrap();
    assert_eq!(demoted.role, Role::Replica);
    h.set_primary(Some("c-2"), Some("c-2"));
    h.operator.unfence(&c1).await.unwrap();
    assert!(
        redis::cmd("PING")
            .query_async::<String>(&mut client_of_old_primary)
            .await
            .is_err(),
        "clients of the demoted primary are disconnected"
    );
    // A client that connects after the demotion (the Service proxies may route `-leader` to c-1 for a
    // second or more) is sent away again, to reconnect to the new primary.
    let late_client = h.redis("c-1", PASSWORD).await.unwrap();
    let connected = Instant::now();
    eventually(
        "a client connected after the demotion is disconnected",
        WAIT,
        || {
            let mut client = late_client.clone();
            async move {
                match redis::cmd("PING").query_async::<String>(&mut client).await {
                    Ok(_) => Err(format!("still connected after {:?}", connected.elapsed())),
                    Err(_) => Ok(()),
                }
            }
        },
    )
    .await;
    set(&h, "c-2", "k4", "v4").await.unwrap();
    wait_value(&h, "c-1", "k4", "v4").await;
    assert_eq!(
        get(&h, "c-2", "k3").await.unwrap().as_deref(),
        Some("v3"),
        "no write lost"
    );
    h.wait_ready("c-1").await;
    let new_primary = h.wait_ready("c-2").await;
    assert_eq!(new_primary.replication.connected_replicas.len(), 1);

    // Metrics parse as Prometheus text.
    let text = reqwest_metrics(h.instance("c-2").metrics_port).await;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let value = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(value("redis_up", None), Some(1.0));
    assert_eq!(value("redis_connected_slaves", None), Some(1.0));
    assert!(value("redis_db_keys", Some(("db", "db0"))).unwrap_or(0.0) >= 4.0);
    assert_eq!(
        value("cnredis_instance_role", Some(("role", "primary"))),
        Some(1.0)
    );
    assert_eq!(value("cnredis_instance_fenced", None), Some(0.0));

    // Password rotation: the servers take the new password live (same run id), replication stays up.
    let mut before = h.redis("c-2", PASSWORD).await.unwrap();
    let run_id = info_field(&mut before, "run_id").await.unwrap();
    std::fs::write(&h.password_file, "second-password").unwrap();
    for pod in ["c-1", "c-2"] {
        eventually(&format!("{pod} takes the new password"), WAIT, || async {
            let new = h.redis(pod, "second-password").await.map_err(|e| e.to_string())?;
            drop(new);
            match h.redis(pod, PASSWORD).await {
                Ok(_) => Err("the old password still works".to_string()),
                Err(_) => Ok(()),
            }
        })
        .await;
    }
    let mut after = h.redis("c-2", "second-password").await.unwrap();
    assert_eq!(
        info_field(&mut after, "run_id").await.unwrap(),
        run_id,
        "no restart"
    );
    redis::cmd("SET")
        .arg("k5")
        .arg("v5")
        .query_async::<()>(&mut after)
        .await
        .unwrap();
    wait_value_with(&h, "c-1", "second-password", "k5", "v5").await;
    let mut replica = h.redis("c-1", "second-password").await.unwrap();

    // A reload: the kubelet writes the reload's time beside the password; the manager reports it once it
    // applied what the files hold.
    std::fs::write(
        h.password_file.with_file_name("reloaded-at"),
        "2026-12-02T17:00:00Z",
    )
    .unwrap();
    for pod in ["c-1", "c-2"] {
        eventually(&format!("{pod} reports the reload"), WAIT, || async {
            let report = h.status(pod).await?;
            match report.reloaded_at.as_deref() {
                Some("2026-12-02T17:00:00Z") => Ok(()),
                other => Err(format!("reloadedAt {other:?}")),
            }
        })
        .await;
    }

    // `cnredis instance cli` (what `kubectl cnredis cli` runs in the pod): the server's socket, the
    // mounted password, the cli's arguments.
    let cli = |pod: &str, args: &[&str]| {
        let output = std::process::Command::new(support::binary())
            .args(["instance", "cli", "--run-dir"])
            .arg(h.dir.join(pod).join("run"))
            .arg("--password-file")
            .arg(&h.password_file)
            .arg("--engine-dir")
            .arg(support::engine_dir(&h.engine))
            .args(args)
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).trim().to_string(),
        )
    };
    assert_eq!(cli("c-2", &["GET", "k5"]), (true, "v5".to_string()));
    let (_, role) = cli("c-1", &["ROLE"]);
    assert!(role.starts_with("slave") || role.starts_with("replica"), "{role}");

    // Spec changes: what the server takes live is applied at once, the rest is reported as pending.
    h.set_spec("memory", serde_json::json!({"maxmemoryPercent": 50}));
    h.set_spec(
        "parameters",
        serde_json::json!({"databases": "32", "maxmemory-samples": "7"}),
    );
    eventually("maxmemory and maxmemory-samples applied live", WAIT, || async {
        let mut connection = h
            .redis("c-2", "second-password")
            .await
            .map_err(|e| e.to_string())?;
        let mut values = Vec::new();
        for name in ["maxmemory", "maxmemory-samples"] {
            let pair: Vec<String> = redis::cmd("CONFIG")
                .arg("GET")
                .arg(name)
                .query_async(&mut connection)
                .await
                .map_err(|e| e.to_string())?;
            values.push(pair.get(1).cloned().unwrap_or_default());
        }
        // 50% of the 256 MiB limit the harness gives.
        (values == ["134217728", "7"])
            .then_some(())
            .ok_or(format!("{values:?}"))
    })
    .await;
    let pending = h.status("c-2").await.unwrap();
    assert_eq!(pending.pending_restart, ["databases"]);
    let mut same = h.redis("c-2", "second-password").await.unwrap();
    assert_eq!(
        info_field(&mut same, "run_id").await.unwrap(),
        run_id,
        "still no restart"
    );

    // A killed server comes back under the same manager, restarts counted, data from its RDB/primary.
    let server_pid: i32 = info_field(&mut replica, "process_id")
        .await
        .unwrap()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let restarted = eventually("c-1 server restarted", WAIT, || async {
        let report = h.status("c-1").await?;
        if report.server_restarts == 1 && report.ready {
            Ok(report)
        } else {
            Err(format!("{report:?}"))
        }
    })
    .await;
    assert_eq!(restarted.role, Role::Replica);
    let mut replica = h.redis("c-1", "second-password").await.unwrap();
    assert_ne!(
        info_field(&mut replica, "process_id").await.unwrap(),
        server_pid.to_string()
    );

    // SIGTERM: the manager stops its server and exits 0 within the grace period.
    let manager_pid = h.instance("c-1").manager_pid();
    let began = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(manager_pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut child = h.instances[0].manager.take().unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "manager still running after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stopped_in = began.elapsed();
    assert!(status.success(), "manager exit: {status:?}");
    assert!(
        h.redis("c-1", "second-password").await.is_err(),
        "server stopped with its manager"
    );
    eprintln!("{engine}: SIGTERM to exit in {stopped_in:?}");
}

async fn reqwest_metrics(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// Boot guards and the empty-primary guard with `persistence: none`.
async fn guards(engine: &str) {
    let mut h = Harness::new(&format!("guards-{engine}"), engine, 3, "none");
    // Before initialisation only the target may be primary; the others start refusing writes.
    h.set_primary(None, Some("c-1"));
    h.start("c-1");
    h.start("c-2");
    let first = h.wait_ready("c-1").await;
    assert_eq!(first.role, Role::Primary);
    let waiting = eventually("c-2 answers", WAIT, || async {
        let report = h.status("c-2").await?;
        if report.answered {
            Ok(report)
        } else {
            Err(format!("{report:?}"))
        }
    })
    .await;
    assert_eq!(waiting.role, Role::Replica, "not a second primary");
    assert!(waiting.fenced);
    assert_eq!(waiting.fence_reasons, ["awaitingInitialization"]);
    assert_eq!(
        error_code(set(&h, "c-2", "k", "v").await).as_deref(),
        Some("READONLY")
    );

    // Initialised: c-2 follows c-1; c-3 boots straight as a replica of c-1.
    h.set_primary(Some("c-1"), Some("c-1"));
    h.wait_ready("c-2").await;
    h.start("c-3");
    assert_eq!(h.wait_ready("c-3").await.role, Role::Replica);
    for i in 0..100 {
        set(&h, "c-1", &format!("key{i}"), "value").await.unwrap();
    }
    wait_value(&h, "c-2", "key99", "value").await;
    wait_value(&h, "c-3", "key99", "value").await;
    let offset = h.status("c-2").await.unwrap().replication.offset;
    h.record_instances(&[("c-1", 100, offset), ("c-2", 100, offset), ("c-3", 100, offset)]);

    // The primary's server dies; with persistence none it restarts empty. It must not feed replicas.
    let mut primary = h.redis("c-1", PASSWORD).await.unwrap();
    let pid: i32 = info_field(&mut primary, "process_id")
        .await
        .unwrap()
        .parse()
        .unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    let empty = eventually("c-1 reports emptyAfterRestart", WAIT, || async {
        let report = h.status("c-1").await?;
        if report.empty_after_restart && report.answered {
            Ok(report)
        } else {
            Err(format!("{report:?}"))
        }
    })
    .await;
    assert!(empty.fenced);
    assert!(empty.fence_reasons.contains(&"emptyAfterRestart".to_string()));
    assert_ne!(empty.role, Role::Primary);
    // The replicas tried to resynchronise from it and were refused.
    eventually("a replica's sync refused by the empty pod", WAIT, || async {
        let mut connection = h.redis("c-1", PASSWORD).await.map_err(|e| e.to_string())?;
        let text: String = redis::cmd("INFO")
            .arg("errorstats")
            .query_async(&mut connection)
            .await
            .map_err(|e| e.to_string())?;
        if text.contains("errorstat_NOMASTERLINK") {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;
    for pod in ["c-2", "c-3"] {
        assert_eq!(
            get(&h, pod, "key99").await.unwrap().as_deref(),
            Some("value"),
            "{pod} kept its data"
        );
    }
    match h.operator.promote(&h.instance("c-1").target()).await {
        Err(ClientError::Api { status, error }) => {
            assert_eq!((status, error.reason.as_str()), (409, "emptyAfterRestart"))
        }
        other => panic!("promoting an empty primary must fail, got {other:?}"),
    }

    // The operator fails over to c-2; c-1 and c-3 follow it and c-1 gets the data back.
    h.set_primary(Some("c-1"), Some("c-2"));
    assert_eq!(
        h.operator
            .promote(&h.instance("c-2").target())
            .await
            .unwrap()
            .role,
        Role::Primary
    );
    h.set_primary(Some("c-2"), Some("c-2"));
    wait_value(&h, "c-1", "key99", "value").await;
    let recovered = h.wait_ready("c-1").await;
    assert!(!recovered.empty_after_restart);
    assert_eq!(recovered.role, Role::Replica);
    assert_eq!(
        h.wait_ready("c-3").await.replication.primary.as_deref(),
        Some(format!("127.0.0.1:{}", h.instance("c-2").port).as_str())
    );
    let _ = CLUSTER;
}

/// Stops the instance manager of `pod` as the kubelet does when its pod goes away (SIGTERM: it stops its
/// server and exits) and waits for it to exit.
async fn stop_manager(h: &mut Harness, pod: &str) {
    let index = h.instances.iter().position(|i| i.name == pod).unwrap();
    let mut manager = h.instances[index].manager.take().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(manager.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    tokio::task::spawn_blocking(move || manager.wait())
        .await
        .unwrap()
        .unwrap();
}

/// A replica that was in sync stays ready (in `-replica`'s endpoints) for `maxStaleReadSeconds` after its
/// primary went away, serving what it has, then turns not ready; `/v1/status` says how long the link has
/// been down.
async fn stale_reads(engine: &str) {
    const BOUND: Duration = Duration::from_secs(4);
    let mut h = Harness::new(&format!("stale-reads-{engine}"), engine, 2, "none");
    h.set_spec(
        "failover",
        serde_json::json!({"maxStaleReadSeconds": BOUND.as_secs()}),
    );
    h.set_primary(Some("c-1"), Some("c-1"));
    h.start("c-1");
    h.start("c-2");
    h.wait_ready("c-1").await;
    set(&h, "c-1", "k", "before the failure").await.unwrap();
    wait_value(&h, "c-2", "k", "before the failure").await;
    let linked = h.wait_ready("c-2").await;
    assert_eq!(linked.replication.link.as_deref(), Some("up"));
    assert_eq!(linked.replication.link_down_seconds, None);

    // The primary's pod goes away: its manager stops its server and exits.
    stop_manager(&mut h, "c-1").await;
    let stopped = Instant::now();

    // Probed like the kubelet does (no certificate) until it turns not ready.
    let probe = InstanceClient::new(
        cnredis_pki::anonymous_client_config(h.ca.cert_pem()).unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    let c2 = h.instance("c-2").target();
    let mut stale_reads_served = 0;
    let not_ready_after = loop {
        let ready = probe.ready(&c2).await.unwrap();
        let elapsed = stopped.elapsed();
        if !ready {
            break elapsed;
        }
        assert!(
            elapsed < BOUND + Duration::from_secs(2),
            "c-2 still ready {elapsed:?} after its primary stopped"
        );
        let report = h.status("c-2").await.unwrap();
        if report.replication.link.as_deref() == Some("down") {
            // Ready until the bound; a report taken just after it (the probe above was earlier) may say not.
            assert!(
                report.ready || stopped.elapsed() + Duration::from_millis(500) >= BOUND,
                "not ready {:?} after its primary stopped: {report:?}",
                stopped.elapsed()
            );
            assert!(report.replication.link_down_seconds.is_some(), "{report:?}");
            assert_eq!(
                get(&h, "c-2", "k").await.unwrap().as_deref(),
                Some("before the failure"),
                "a stale read"
            );
            stale_reads_served += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(stale_reads_served > 0, "the link was never seen down while ready");
    assert!(
        not_ready_after + Duration::from_millis(500) >= BOUND,
        "c-2 turned not ready {not_ready_after:?} after its primary stopped, before the {BOUND:?} bound"
    );
    let report = h.status("c-2").await.unwrap();
    assert!(!report.ready);
    assert!(
        report.replication.link_down_seconds >= Some(BOUND.as_secs()),
        "{report:?}"
    );
    eprintln!(
        "{engine}: replica ready with its link down for {not_ready_after:?} (bound {BOUND:?}), {stale_reads_served} stale reads served"
    );
}

/// A valkey-server the test runs itself on a unix socket, killed when dropped.
struct LocalServer(std::process::Child);

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A connection to a server on its unix socket.
async fn unix_connection(socket: &std::path::Path) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Unix(socket.into()))?
        .set_redis_settings(
            redis::RedisConnectionInfo::default()
                .set_password(PASSWORD)
                .set_skip_set_lib_name(),
        );
    redis::Client::open(info)?
        .get_multiplexed_async_connection()
        .await
}

/// An instance manager in this process (its loop, API and watchdog as functions to call) for `c-1` of the
/// harness, with a primary lease of `lease` whose API server is unreachable (no renewal can succeed, as
/// for a primary cut off from the API server), over a valkey-server the test runs itself. Returns once the
/// manager has seen its server answer as primary.
async fn manager_in_process(
    h: &Harness,
    lease: Duration,
) -> (
    LocalServer,
    std::sync::Arc<cnredis_instance::manager::Manager>,
    std::path::PathBuf,
) {
    use cnredis_instance::lease::PrimaryLease;
    use cnredis_instance::manager::{Identity, Manager};
    use cnredis_instance::source::ClusterSource;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let instance = h.instance("c-1");
    let run_dir = h.dir.join("c-1").join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let engine_dir = support::engine_dir("valkey-9.1");
    let server = local_server(&run_dir, &instance.data_dir, &[]);
    let socket = run_dir.join("server.sock");
    let (_, engine) = cnredis_instance::run::detect_engine(Some(&engine_dir)).unwrap();
    let identity = Identity {
        pod_name: "c-1".to_string(),
        namespace: support::NAMESPACE.to_string(),
        cluster_name: CLUSTER.to_string(),
        pod_ip: std::net::Ipv4Addr::LOCALHOST,
        port: instance.port,
        data_dir: instance.data_dir.clone(),
        run_dir,
        password_file: Some(h.password_file.clone()),
        memory_limit_bytes: None,
        server_tls: None,
        object_store_credentials: h.dir.join("object-store"),
        peer_tls: None,
    };
    let cluster = ClusterSource::File(h.cluster_file.clone()).start();
    let unreachable =
        kube::Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap())).unwrap();
    let lease = PrimaryLease::new(
        unreachable,
        support::NAMESPACE,
        "c-primary".to_string(),
        "c-1".to_string(),
        lease,
    );
    let manager = Manager::new(identity, engine, cluster, Some(lease));
    eventually("the manager sees a primary", WAIT, || async {
        let mut state = manager.state.lock().await;
        let observed = manager.observe(&mut state).await;
        (manager.cluster.current().is_some()
            && observed.role == cnredis_instance::decide::ServerRole::Primary)
            .then_some(())
            .ok_or(format!("{observed:?}"))
    })
    .await;
    (server, manager, socket)
}

/// The pid of a pod's server, from its `INFO`.
async fn server_pid(h: &Harness, pod: &str) -> i32 {
    let mut connection = h.redis(pod, PASSWORD).await.unwrap();
    info_field(&mut connection, "process_id")
        .await
        .unwrap()
        .parse()
        .unwrap()
}

/// A fence asked for while the primary's server is down (between its crash and its restart) is
/// acknowledged at once, and the server then starts fenced: the operator's proof for a crashed primary
/// does not wait for the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_while_the_server_is_down_is_acknowledged_and_the_server_starts_fenced() {
    let mut h = Harness::new("fence-while-down", "valkey-9.1", 1, "rdb");
    h.set_primary(Some("c-1"), Some("c-1"));
    h.start("c-1");
    h.wait_ready("c-1").await;
    // A second crash within a minute of the first waits 2 s before the restart: time to ask.
    for crash in 1..=2 {
        let pid = server_pid(&h, "c-1").await;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
        eventually("the manager saw the crash", WAIT, || async {
            let report = h.status("c-1").await?;
            (report.server_restarts == crash && !report.answered)
                .then_some(())
                .ok_or(format!("{report:?}"))
        })
        .await;
        if crash == 1 {
            eventually("the server is back", WAIT, || async {
                h.redis("c-1", PASSWORD)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .await;
        }
    }
    let result = h.operator.fence(&h.instance("c-1").target()).await.unwrap();
    assert!(result.fenced, "{result:?}");
    assert!(result.message.contains("no server runs"), "{result:?}");
    let refusal = eventually("the server is back, refusing writes", WAIT, || async {
        match set(&h, "c-1", "k", "v").await {
            Err(error) if error.is_connection_refusal() || error.is_io_error() => Err(error.to_string()),
            other => Ok(other),
        }
    })
    .await;
    assert_eq!(error_code(refusal).as_deref(), Some("NOREPLICAS"));
    assert!(h.status("c-1").await.unwrap().fenced);
}

/// The target of a switchover that restarts without a dataset on disk (a demoted primary that never
/// wrote a snapshot, its server killed) follows the current primary and catches up. Isolated, as an
/// empty target used to start, it never did, and the switchover stalled with writes refused until it
/// was abandoned (seen in the failover suite's switchover-kill-target).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_target_restarted_without_a_dataset_follows_the_current_primary() {
    let mut h = Harness::new("empty-target", "valkey-9.1", 2, "none");
    h.set_primary(Some("c-1"), Some("c-1"));
    h.start("c-1");
    h.start("c-2");
    h.wait_ready("c-1").await;
    set(&h, "c-1", "k", "written before the switchover")
        .await
        .unwrap();
    wait_value(&h, "c-2", "k", "written before the switchover").await;
    h.record_instances(&[("c-1", 1, 100), ("c-2", 1, 100)]);

    // c-2 goes down, its files with it; the switchover to it begins meanwhile.
    stop_manager(&mut h, "c-2").await;
    let data_dir = h.instance("c-2").data_dir.clone();
    let _ = std::fs::remove_file(data_dir.join("dump.rdb"));
    let _ = std::fs::remove_dir_all(data_dir.join("appendonlydir"));
    h.set_primary(Some("c-1"), Some("c-2"));
    set(&h, "c-1", "k2", "written during the switchover")
        .await
        .unwrap();
    h.start("c-2");

    // It copies c-1's dataset, including what c-1 took while it was down.
    wait_value(&h, "c-2", "k", "written before the switchover").await;
    wait_value(&h, "c-2", "k2", "written during the switchover").await;
    let log = std::fs::read_to_string(&h.instance("c-2").log).unwrap();
    let start = log.lines().rfind(|line| line.contains("starting the server"));
    assert!(
        start.is_some_and(|line| line.contains("Replica")
            && (line.contains("dataset_on_disk=false") || line.contains("\"dataset_on_disk\":false"))),
        "c-2's last start was not as a replica without a dataset: {start:?}"
    );
}

/// `minSyncReplicas: 1` as it is, not as one might hope: the primary refuses writes (`NOREPLICAS`) while
/// no replica is connected, and takes them once one is; but it still acknowledges a write its only
/// replica never received while that replica's last acknowledgement is within
/// `maxSyncReplicaLagSeconds` (here: the replica's server frozen), and refuses only after. The window
/// is bounded, not closed: only `WAIT` proves a write is on a replica (docs/runbooks/failover.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_sync_replicas_refuses_writes_without_a_recent_replica_but_bounds_rather_than_closes_the_window()
{
    let mut h = Harness::new("min-sync", "valkey-9.1", 2, "none");
    h.set_spec(
        "failover",
        serde_json::json!({"minSyncReplicas": 1, "maxSyncReplicaLagSeconds": 3}),
    );
    h.set_primary(Some("c-1"), Some("c-1"));
    h.start("c-1");
    h.wait_ready("c-1").await;
    let refused = set(&h, "c-1", "k", "no replica yet").await;
    assert_eq!(error_code(refused).as_deref(), Some("NOREPLICAS"));

    h.start("c-2");
    eventually("a write is taken once c-2 replicates", WAIT, || async {
        set(&h, "c-1", "k", "replicated").await.map_err(|e| e.to_string())
    })
    .await;
    wait_value(&h, "c-2", "k", "replicated").await;

    // The replica's server stops reading; its connection stays up, its last acknowledgement ages.
    let replica = nix::unistd::Pid::from_raw(server_pid(&h, "c-2").await);
    nix::sys::signal::kill(replica, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let frozen = Instant::now();
    let taken = set(&h, "c-1", "unreplicated", "acknowledged by the primary alone").await;
    let within = frozen.elapsed();
    let refused_after = eventually(
        "writes refused once the replica's lag passes 3 s",
        WAIT,
        || async {
            match error_code(set(&h, "c-1", "later", "x").await).as_deref() {
                Some("NOREPLICAS") => Ok(frozen.elapsed()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    // (Its instance manager may have restarted it meanwhile.)
    let _ = nix::sys::signal::kill(replica, nix::sys::signal::Signal::SIGCONT);
    assert!(
        taken.is_ok(),
        "a write {within:?} after the replica froze was refused: {taken:?}"
    );
    assert!(
        refused_after <= Duration::from_secs(8),
        "writes were still taken {refused_after:?} after the replica froze"
    );

    // Resumed, the replica catches up and writes are taken again.
    eventually("writes taken again once the replica resumes", WAIT, || async {
        set(&h, "c-1", "after", "resumed")
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    wait_value(&h, "c-2", "unreplicated", "acknowledged by the primary alone").await;
}

/// A primary whose server exits says so at once: its report names it `restartedPrimary` while the
/// server is still down (the restart delay is a second), so the operator fails over without waiting for
/// the server to come back; and it comes back isolated and fenced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_whose_server_exits_reports_the_restart_before_the_server_is_back() {
    let mut h = Harness::new("exit-report", "valkey-9.1", 2, "rdb");
    h.set_primary(Some("c-1"), Some("c-1"));
    h.start("c-1");
    h.start("c-2");
    h.wait_ready("c-1").await;
    // The replicas hold data, as the operator records it: a restart of the primary's server is then no
    // longer its own to recover from.
    h.record_instances(&[("c-1", 1, 100), ("c-2", 1, 100)]);
    h.wait_view("c-1").await;
    set(&h, "c-1", "k", "acknowledged").await.unwrap();
    wait_value(&h, "c-2", "k", "acknowledged").await;
    let mut primary = h.redis("c-1", PASSWORD).await.unwrap();
    let server_pid: i32 = info_field(&mut primary, "process_id")
        .await
        .unwrap()
        .parse()
        .unwrap();
    // On disk too, so that the restart is one with data (not an empty one).
    redis::cmd("SAVE").query_async::<()>(&mut primary).await.unwrap();
    let before = h.status("c-1").await.unwrap();
    assert!(!before.restarted_primary, "{before:?}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let down = eventually("a report of c-1 with its server down", WAIT, || async {
        let report = h.status("c-1").await?;
        if !report.answered && report.server_restarts == 1 {
            Ok(report)
        } else {
            Err(format!("{report:?}"))
        }
    })
    .await;
    assert!(
        down.restarted_primary,
        "the server is down and the report does not say the primary restarted: {down:?}"
    );
    let back = eventually("c-1's server back, isolated and fenced", WAIT, || async {
        let report = h.status("c-1").await?;
        if report.answered && report.fenced {
            Ok(report)
        } else {
            Err(format!("{report:?}"))
        }
    })
    .await;
    assert!(back.restarted_primary, "{back:?}");
    assert!(
        back.fence_reasons.iter().any(|r| r == "restartedPrimary"),
        "{back:?}"
    );
}

/// A valkey-server of this test on the unix socket `server.sock` in `run_dir`, with its files in
/// `data_dir` and `extra` arguments.
fn local_server(run_dir: &std::path::Path, data_dir: &std::path::Path, extra: &[&str]) -> LocalServer {
    let engine_dir = support::engine_dir("valkey-9.1");
    LocalServer(
        std::process::Command::new(engine_dir.join("valkey-server"))
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(run_dir.join("server.sock"))
            .args(["--unixsocketperm", "700", "--requirepass", PASSWORD])
            .arg("--dir")
            .arg(data_dir)
            .args(extra)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("starting valkey-server"),
    )
}

/// A restarted primary still loading its dataset acknowledges a fence at once: the server serves
/// `CONFIG SET` while it loads, and then answers a write with `NOREPLICAS` rather than `LOADING` (the
/// check for good replicas comes first), so the fence's probe write is refused as expected; the fence
/// holds once the load is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_loading_its_dataset_acknowledges_a_fence_that_holds_once_loaded() {
    use cnredis_instance::server::ServerClient;

    let dir = std::env::temp_dir().join(format!("cnredis-loading-fence-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("server.sock");
    // About 6 MB of values that do not compress, saved to the RDB.
    {
        let _server = local_server(&dir, &dir, &[]);
        let mut connection = eventually("the server answers", WAIT, || async {
            unix_connection(&socket).await.map_err(|e| e.to_string())
        })
        .await;
        let mut pipe = redis::pipe();
        for i in 0u64..20_000 {
            let value: String = (0..10u64)
                .map(|j| format!("{:016x}", (i * 10 + j).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
                .collect();
            pipe.set(format!("key{i}"), value).ignore();
        }
        pipe.query_async::<()>(&mut connection).await.unwrap();
        redis::cmd("SAVE")
            .query_async::<()>(&mut connection)
            .await
            .unwrap();
    }
    // Restarted with the load slowed down (100 µs a key: about 2 s), answering while it loads.
    let _server = local_server(
        &dir,
        &dir,
        &[
            "--key-load-delay",
            "100",
            "--loading-process-events-interval-bytes",
            "1024",
        ],
    );
    let client = ServerClient::new(socket, Some(PASSWORD.to_string()));
    eventually("the server answers while loading", WAIT, || async {
        match client.info().await {
            Ok(info) if info.contains("loading:1") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    client
        .fence()
        .await
        .expect("a loading server acknowledges the fence");
    assert!(
        client.info().await.unwrap().contains("loading:1"),
        "the fence was acknowledged before the load ended"
    );
    let refusal = eventually("the load ends", WAIT, || async {
        let mut probe = redis::cmd("DEL");
        probe.arg("never-written");
        match client.query::<i64>(&probe).await {
            Err(error) if error.is_loading() => Err("still loading".to_string()),
            other => Ok(other),
        }
    })
    .await;
    assert!(
        matches!(&refusal, Err(cnredis_instance::server::ServerError::Redis(error)) if error.code() == Some("NOREPLICAS")),
        "after the load a write is refused: {refusal:?}"
    );
    assert!(client.is_fenced().await.unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The loop's connection and the watchdog's each survive a fence through the other (which disconnects
/// every normal client but the one fencing): the next command is answered, not failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_through_one_server_connection_does_not_fail_the_other() {
    let mut h = Harness::new("two-connections", "valkey-9.1", 1, "none");
    h.set_primary(Some("c-1"), Some("c-1"));
    let (_server, manager, _) = manager_in_process(&h, Duration::from_secs(15)).await;
    let (shared, own) = (&manager.server, &*manager.watchdog_server);
    for (fencing, other) in [(own, shared), (shared, own)] {
        other.info().await.unwrap();
        fencing.fence().await.unwrap();
        other
            .info()
            .await
            .expect("answered on a new connection after the fence closed the old one");
        fencing.unfence(0, 10).await.unwrap();
    }
}

/// The lease watchdog fences a primary whose lease runs out on time, although a status request holds the
/// manager's state and waits on the connection the loop and the API share for longer than the lease's
/// safety margin: it reads only the lease clock and fences through a connection of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_watchdog_fences_on_time_while_a_status_request_holds_the_manager() {
    use cnredis_instance::lease::EXPIRY_MARGIN;
    const LEASE: Duration = Duration::from_secs(4);

    let mut h = Harness::new("watchdog", "valkey-9.1", 1, "none");
    h.set_primary(Some("c-1"), Some("c-1"));
    let (_server, manager, socket) = manager_in_process(&h, LEASE).await;
    manager.spawn_lease_watchdog().unwrap();

    // A status request in flight: it holds the state and waits on the shared connection (a blocking read
    // that never returns, sent again each time the client gives up on it) until the test lets it go.
    let (let_go, released) = tokio::sync::oneshot::channel::<()>();
    let in_flight = tokio::spawn({
        let manager = manager.clone();
        async move {
            let _state = manager.state.lock().await;
            let mut released = std::pin::pin!(released);
            let mut blocking = redis::cmd("XREAD");
            blocking
                .arg("BLOCK")
                .arg(0)
                .arg("STREAMS")
                .arg("cnredis:test:never")
                .arg("$");
            loop {
                tokio::select! {
                    _ = &mut released => return,
                    _ = manager.server.query::<redis::Value>(&blocking) => {}
                }
            }
        }
    });
    eventually("the state is held", WAIT, || async {
        manager
            .state
            .try_lock()
            .map(|_| Err("free".to_string()))
            .unwrap_or(Ok(()))
    })
    .await;

    // The last successful renewal was sent now: writes are taken until its local expiry, refused from it.
    let renewed = Instant::now();
    manager.lease_clock.send_modify(|clock| clock.renewed(renewed));
    let expiry = renewed + LEASE - EXPIRY_MARGIN;
    let mut writer = unix_connection(&socket).await.unwrap();
    let fenced_at = loop {
        let result = redis::cmd("SET")
            .arg("k")
            .arg("v")
            .query_async::<()>(&mut writer)
            .await;
        let now = Instant::now();
        match result {
            Ok(()) => assert!(
                now < expiry + Duration::from_millis(500),
                "writes still accepted {:?} after the lease ran out",
                now - expiry
            ),
            Err(error) if error.code() == Some("NOREPLICAS") => break now,
            // The fence disconnects clients: reconnect and write again.
            Err(_) => writer = unix_connection(&socket).await.unwrap(),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        fenced_at >= expiry,
        "fenced {:?} before the lease ran out",
        expiry - fenced_at
    );
    let late = fenced_at - expiry;
    assert!(late < Duration::from_millis(500), "fenced {late:?} late");
    assert!(
        !in_flight.is_finished() && manager.state.try_lock().is_err(),
        "the status request was still holding the state"
    );
    // The server refuses writes from its CONFIG SET on; the watchdog records its fence once that returns.
    eventually("the watchdog recorded its fence", WAIT, || async {
        manager
            .lease_clock
            .borrow()
            .self_fenced_at
            .map(|_| ())
            .ok_or_else(|| "no fence recorded".to_string())
    })
    .await;
    eprintln!(
        "fenced {late:?} after the lease's local expiry, with the state held for {:?}",
        renewed.elapsed()
    );

    // Once the request is done, the loop reports why the server refuses writes.
    let_go.send(()).unwrap();
    in_flight.await.unwrap();
    // (The abandoned blocking read still holds the shared connection until the client gives up on it.)
    let report = eventually("the loop observes the server again", WAIT, || async {
        manager.reconcile().await;
        let report = cnredis_instance::http::report(&manager).await;
        report
            .answered
            .then_some(report.clone())
            .ok_or(format!("{report:?}"))
    })
    .await;
    assert_eq!(report.lease, wire::LeaseStatus::Expired);
    assert_eq!(report.fence_reasons, ["leaseExpired"], "{report:?}");
    assert!(report.fenced);

    // A renewal lifts the fence at the next pass, as when the API server is reachable again.
    manager
        .lease_clock
        .send_modify(|clock| clock.renewed(Instant::now()));
    manager.reconcile().await;
    let mut writer = unix_connection(&socket).await.unwrap();
    redis::cmd("SET")
        .arg("k")
        .arg("again")
        .query_async::<()>(&mut writer)
        .await
        .unwrap();
    assert_eq!(
        cnredis_instance::http::report(&manager).await.lease,
        wire::LeaseStatus::Held
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valkey_9_stale_reads() {
    stale_reads("valkey-9.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_7_stale_reads() {
    stale_reads("redis-7.0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valkey_9_lifecycle() {
    lifecycle("valkey-9.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_7_lifecycle() {
    lifecycle("redis-7.0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valkey_8_lifecycle() {
    lifecycle("valkey-8.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valkey_9_guards() {
    guards("valkey-9.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_7_guards() {
    guards("redis-7.0").await;
}
