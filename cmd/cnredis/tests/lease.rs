//! The primary lease against a real API server (the local cluster, `make e2e` runs this with
//! `CNREDIS_E2E_KUBECONFIG`): a primary cut off from the API server that cannot hold its lease by the
//! failsafe promises of every other instance (one of them has no address) fences itself before its lease
//! can expire for anyone else (while anonymous status requests keep its API busy), comes back by itself
//! once it renews, and fences at once when the operator hands the lease to another pod. A primary with no
//! other instance to ask keeps taking writes while it is cut off (failsafe), and renews again after.
//!
//! The instance manager runs on the host with a kubeconfig pointing at a TCP relay to the API server; the
//! test cuts the relay (every open connection and new ones) to cut the manager off.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cnredis_api::RedisCluster;
use cnredis_instance_client::wire::{LeaseStatus, Role};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Config};
use serde_json::json;
use support::{Harness, eventually};
use tokio::net::{TcpListener, TcpStream};

const LEASE_SECONDS: u64 = 6;

/// A TCP relay that can be cut: every connection through it is dropped and new ones are refused.
struct Relay {
    port: u16,
    open: Arc<AtomicBool>,
    generation: tokio::sync::watch::Sender<u64>,
}

impl Relay {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let (is_open, cuts) = (open.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !is_open.load(Ordering::SeqCst) {
                    continue;
                }
                let upstream = upstream.clone();
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            open,
            generation,
        }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

async fn admin() -> (Client, Config, String) {
    let path =
        std::env::var("CNREDIS_E2E_KUBECONFIG").expect("CNREDIS_E2E_KUBECONFIG names the local cluster");
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    (Client::try_from(config.clone()).unwrap(), config, path)
}

/// The local cluster's CRDs, a namespace and RedisCluster `c` whose status names c-1 primary and lists
/// `instances`, and c-1's instance manager on the host, its API server reached through a [`Relay`];
/// returns once c-1 holds the lease.
async fn primary_behind_a_relay(instances: &[&str]) -> Setup {
    let (client, config, kubeconfig_path) = admin().await;
    let namespace = format!("lease-{}-{}", std::process::id(), instances.len());
    let instances: Vec<_> = instances
        .iter()
        .map(|name| json!({"name": name, "role": "replica", "ready": false}))
        .collect();

    // The CRDs, a namespace, and the RedisCluster with c-1 as primary.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in cnredis_api::crds() {
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(
            &name,
            &PatchParams::apply("cnredis-test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
    }
    eventually(
        "RedisCluster CRD established",
        Duration::from_secs(30),
        || async {
            let crd = crds
                .get("redisclusters.redis.cnredis.io")
                .await
                .map_err(|e| e.to_string())?;
            let established = crd.status.and_then(|s| s.conditions).is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
            established.then_some(()).ok_or("not established".to_string())
        },
    )
    .await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap(),
        )
        .await
        .unwrap();
    let clusters: Api<RedisCluster> = Api::namespaced(client.clone(), &namespace);
    let cluster: RedisCluster = serde_json::from_value(json!({
        "apiVersion": "redis.cnredis.io/v1", "kind": "RedisCluster",
        "metadata": {"name": "c"},
        "spec": {"instances": 1, "persistence": {"mode": "none"}, "auth": {"enabled": false}},
    }))
    .unwrap();
    clusters.create(&PostParams::default(), &cluster).await.unwrap();
    clusters
        .patch_status(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"currentPrimary": "c-1", "targetPrimary": "c-1", "instancesStatus": instances}})),
        )
        .await
        .unwrap();

    // The manager's kubeconfig points at the relay.
    let upstream = config.cluster_url.authority().unwrap().to_string();
    let upstream = upstream.replace("10.245.0.1", "127.0.0.1");
    let relay = Relay::start(upstream.clone()).await;
    let mut h = Harness::new(&format!("lease-{}", instances.len()), "valkey-9.1", 1, "none");
    let original = std::fs::read_to_string(&kubeconfig_path).unwrap();
    let relayed = original.replace(
        &config.cluster_url.to_string().trim_end_matches('/').to_string(),
        &format!("https://127.0.0.1:{}", relay.port),
    );
    assert_ne!(relayed, original, "the kubeconfig's server URL was replaced");
    let relayed_path = h.dir.join("kubeconfig");
    std::fs::write(&relayed_path, relayed).unwrap();
    h.start_with_kubernetes("c-1", &namespace, &relayed_path, LEASE_SECONDS);

    let ready = h.wait_ready("c-1").await;
    assert_eq!(ready.role, Role::Primary);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    let lease = eventually("lease held by c-1", Duration::from_secs(30), || async {
        let lease = leases.get("c-primary").await.map_err(|e| e.to_string())?;
        let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
        (holder.as_deref() == Some("c-1"))
            .then_some(lease)
            .ok_or(format!("{holder:?}"))
    })
    .await;
    assert_eq!(
        lease.spec.unwrap().lease_duration_seconds,
        Some(LEASE_SECONDS as i32)
    );
    Setup {
        namespace,
        relay,
        h,
        leases,
        namespaces,
    }
}

struct Setup {
    namespace: String,
    relay: Relay,
    h: Harness,
    leases: Api<Lease>,
    namespaces: Api<Namespace>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make e2e-smoke runs it with CNREDIS_E2E_KUBECONFIG"]
async fn primary_fences_itself_when_it_cannot_renew_its_lease() {
    // c-2 is listed but has no address: no failsafe hold is possible.
    let Setup {
        namespace,
        relay,
        h,
        leases,
        namespaces,
    } = primary_behind_a_relay(&["c-1", "c-2"]).await;
    let mut writer = h.redis_open("c-1").await;
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async::<()>(&mut writer)
        .await
        .unwrap();

    // Cut off: the manager fences itself before the lease it last renewed expires, however busy its API
    // is with status requests (they hold the manager's state while they observe the server).
    let pollers: Vec<_> = (0..4)
        .map(|_| {
            let client = cnredis_instance_client::InstanceClient::new(
                cnredis_pki::anonymous_client_config(h.ca.cert_pem()).unwrap(),
                Duration::from_secs(10),
            )
            .unwrap();
            let target = h.instance("c-1").target();
            tokio::spawn(async move {
                loop {
                    if client.status(&target).await.is_err() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            })
        })
        .collect();
    relay.cut();
    let cut_at = Instant::now();
    eventually(
        "c-1 refuses writes",
        Duration::from_secs(2 * LEASE_SECONDS),
        || async {
            let mut connection = h.redis_open("c-1").await;
            match redis::cmd("SET")
                .arg("k")
                .arg("v2")
                .query_async::<()>(&mut connection)
                .await
            {
                Err(error) if error.code() == Some("NOREPLICAS") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let fenced_after = cut_at.elapsed();
    for poller in pollers {
        poller.abort();
    }
    let last_renewal = leases
        .get("c-primary")
        .await
        .unwrap()
        .spec
        .unwrap()
        .renew_time
        .unwrap()
        .0;
    let expires = last_renewal + jiff::SignedDuration::from_secs(LEASE_SECONDS as i64);
    let now = jiff::Timestamp::now();
    assert!(
        now < expires,
        "fenced at {now}, but the stored lease only expires at {expires}"
    );
    eprintln!(
        "self-fenced {fenced_after:?} after the cut, {} before the lease expired",
        expires.duration_since(now)
    );
    // The watchdog fences the server on its own timer; the report's reasons follow at the manager's next
    // observation (a CI run once read `lease: expired` with no reason yet).
    eventually(
        "c-1 reports the lease expired as its fence reason",
        Duration::from_secs(5),
        || async {
            let report = h.status("c-1").await.map_err(|e| e.to_string())?;
            if report.lease == LeaseStatus::Expired
                && report.fence_reasons.contains(&"leaseExpired".to_string())
            {
                Ok(())
            } else {
                Err(format!(
                    "lease {:?}, fence reasons {:?}",
                    report.lease, report.fence_reasons
                ))
            }
        },
    )
    .await;

    // Reconnected: it renews and, still the holder and still named primary, takes writes again.
    relay.restore();
    eventually(
        "c-1 takes writes again",
        Duration::from_secs(3 * LEASE_SECONDS),
        || async {
            let mut connection = h.redis_open("c-1").await;
            redis::cmd("SET")
                .arg("k")
                .arg("v3")
                .query_async::<()>(&mut connection)
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await;
    assert_eq!(h.status("c-1").await.unwrap().lease, LeaseStatus::Held);

    // The operator hands the lease to another pod (a failover): c-1 fences at its next renewal.
    leases
        .patch(
            "c-primary",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"holderIdentity": "c-2", "renewTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()}}),
            ),
        )
        .await
        .unwrap();
    let handed_over = Instant::now();
    eventually(
        "c-1 fenced after the handover",
        Duration::from_secs(LEASE_SECONDS),
        || async {
            let mut connection = h.redis_open("c-1").await;
            match redis::cmd("SET")
                .arg("k")
                .arg("v4")
                .query_async::<()>(&mut connection)
                .await
            {
                Err(error) if error.code() == Some("NOREPLICAS") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    eprintln!(
        "fenced {:?} after the lease was handed over",
        handed_over.elapsed()
    );

    drop(h);
    namespaces.delete(&namespace, &Default::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make e2e runs it with CNREDIS_E2E_KUBECONFIG"]
async fn a_primary_with_no_other_instance_keeps_taking_writes_while_cut_off() {
    let Setup {
        namespace,
        relay,
        h,
        leases: _,
        namespaces,
    } = primary_behind_a_relay(&["c-1"]).await;
    relay.cut();
    let cut_at = Instant::now();
    eventually(
        "c-1 holds its lease by failsafe",
        Duration::from_secs(2 * LEASE_SECONDS),
        || async {
            let report = h.status("c-1").await.map_err(|e| e.to_string())?;
            (report.lease == LeaseStatus::Failsafe)
                .then_some(())
                .ok_or(format!("lease {:?}", report.lease))
        },
    )
    .await;
    // Writes are acknowledged all along, for three lease durations after the cut.
    let mut connection = h.redis_open("c-1").await;
    let mut writes = 0;
    while cut_at.elapsed() < Duration::from_secs(3 * LEASE_SECONDS) {
        let written: Result<(), _> = redis::cmd("SET")
            .arg("k")
            .arg(writes)
            .query_async(&mut connection)
            .await;
        assert!(
            written.is_ok(),
            "write {writes}, {:?} after the cut: {written:?}",
            cut_at.elapsed()
        );
        writes += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = h.status("c-1").await.unwrap();
    assert!(report.fence_reasons.is_empty(), "{:?}", report.fence_reasons);
    eprintln!(
        "{writes} writes acknowledged in the {:?} c-1 was cut off",
        cut_at.elapsed()
    );
    relay.restore();
    eventually(
        "c-1 renews through the API server again",
        Duration::from_secs(2 * LEASE_SECONDS),
        || async {
            let report = h.status("c-1").await.map_err(|e| e.to_string())?;
            (report.lease == LeaseStatus::Held)
                .then_some(())
                .ok_or(format!("lease {:?}", report.lease))
        },
    )
    .await;
    drop(h);
    namespaces.delete(&namespace, &Default::default()).await.unwrap();
}
