//! Backups taken by a real instance manager (`POST /v1/backups`) into a real S3-compatible server
//! (versitygw, built by `e2e/install-versitygw.sh`, which checks SigV4 signatures): the snapshot and its
//! manifest land in the bucket, the checksum matches the stored bytes, the RDB loads into a fresh server
//! with every key, and each bad input (wrong secret, missing bucket, unreachable endpoint, another
//! cluster's prefix, a second backup while one runs) ends in a clear answer.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cnredis_instance_client::ClientError;
use cnredis_instance_client::wire::{
    BackupManifest, BackupPhase, BackupReport, BackupRequest, Role, StoreLocation,
};
use support::{Harness, eventually, free_port};

const ACCESS_KEY: &str = "cnredis-test";
const SECRET_KEY: &str = "cnredis-test-secret";
const BUCKET: &str = "backups";

/// A versitygw process serving `root` (one directory per bucket) on a free port.
struct S3 {
    child: Child,
    port: u16,
    root: PathBuf,
    tls: bool,
}

impl S3 {
    async fn start(dir: &Path) -> Self {
        Self::start_with(dir, None).await
    }

    /// With `tls` (certificate and key files), it serves HTTPS on `localhost`.
    async fn start_with(dir: &Path, tls: Option<(PathBuf, PathBuf)>) -> Self {
        let binary = std::env::var_os("CNREDIS_VERSITYGW")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var("HOME").expect("HOME"))
                    .join(".cache/cnredis/versitygw-v1.8.0/bin/versitygw")
            });
        assert!(
            binary.is_file(),
            "{} is missing: run e2e/install-versitygw.sh (make deps) first",
            binary.display()
        );
        let root = dir.join("s3");
        std::fs::create_dir_all(root.join(BUCKET)).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("versitygw.log")).unwrap();
        let mut command = Command::new(binary);
        if let Some((cert, key)) = &tls {
            command.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        let child = command
            .args(["--port", &format!("127.0.0.1:{port}")])
            .args([
                "--access",
                ACCESS_KEY,
                "--secret",
                SECRET_KEY,
                "--region",
                "us-east-1",
            ])
            .args(["--health", "/health", "posix"])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting versitygw");
        let s3 = Self {
            child,
            port,
            root,
            tls: tls.is_some(),
        };
        eventually("versitygw listens", Duration::from_secs(30), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .await;
        s3
    }

    fn endpoint(&self) -> String {
        match self.tls {
            true => format!("https://localhost:{}", self.port),
            false => format!("http://127.0.0.1:{}", self.port),
        }
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_credentials(h: &Harness, name: &str, secret: &str) -> PathBuf {
    let dir = h.dir.join("object-store").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ACCESS_KEY_ID"), format!("{ACCESS_KEY}\n")).unwrap();
    std::fs::write(dir.join("SECRET_ACCESS_KEY"), secret).unwrap();
    dir
}

fn request(s3: &S3, name: &str) -> BackupRequest {
    BackupRequest {
        name: name.to_string(),
        cluster: support::CLUSTER.to_string(),
        cluster_uid: "uid-of-c".to_string(),
        store: StoreLocation {
            bucket: BUCKET.to_string(),
            prefix: "team/cnredis".to_string(),
            endpoint_url: Some(s3.endpoint()),
            region: "us-east-1".to_string(),
            credentials: "backup".to_string(),
        },
        timeout_seconds: 120,
    }
}

async fn finished(h: &Harness, pod: &str, name: &str) -> BackupReport {
    let target = h.instance(pod).target();
    eventually(
        &format!("backup {name} finished"),
        Duration::from_secs(90),
        || async {
            let report = h
                .operator
                .backup(&target, name)
                .await
                .map_err(|e| e.to_string())?;
            match report.phase {
                BackupPhase::Running => Err(format!("{report:?}")),
                _ => Ok(report),
            }
        },
    )
    .await
}

fn sha256_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Starts a plain server on `rdb` and counts its keys.
async fn keys_in_rdb(engine: &str, rdb: &Path, dir: &Path) -> u64 {
    let data = dir.join("restored");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(rdb, data.join("dump.rdb")).unwrap();
    let port = free_port();
    let mut server = Command::new(support::engine_dir(engine).join("valkey-server"))
        .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting valkey-server");
    let keys = eventually(
        "the restored server loaded its RDB",
        Duration::from_secs(30),
        || async {
            let client =
                redis::Client::open(format!("redis://127.0.0.1:{port}")).map_err(|e| e.to_string())?;
            let mut connection = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            redis::cmd("DBSIZE")
                .query_async::<u64>(&mut connection)
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await;
    let _ = server.kill();
    let _ = server.wait();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_backs_up_to_s3_and_every_bad_input_gets_a_clear_answer() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let engine = "valkey-8.1";
    let mut h = Harness::new("backup", engine, 2, "rdb");
    let s3 = S3::start(&h.dir).await;
    write_credentials(&h, "backup", SECRET_KEY);
    write_credentials(&h, "wrong", "not-the-secret");
    h.set_primary(Some("c-1"), Some("c-1"));
    h.start("c-1");
    h.start("c-2");
    h.wait_ready("c-1").await;
    h.wait_ready("c-2").await;

    // 20 000 keys of 1 KiB that do not compress: a snapshot of about 20 MiB, several multipart parts.
    let mut primary = h.redis("c-1", support::PASSWORD).await.unwrap();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut noise = || {
        (0..128)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                format!("{:08x}", seed >> 32)
            })
            .collect::<String>()
    };
    for batch in 0..20 {
        let mut pipe = redis::pipe();
        for i in 0..1000 {
            pipe.set(format!("key:{}", batch * 1000 + i), noise()).ignore();
        }
        pipe.query_async::<()>(&mut primary).await.unwrap();
    }
    let replica = h.instance("c-2").target();
    eventually("the replica holds every key", Duration::from_secs(30), || async {
        let report = h.status("c-2").await?;
        if report.dataset.keys == 20_000 {
            Ok(())
        } else {
            Err(format!("{} keys", report.dataset.keys))
        }
    })
    .await;

    let started = h
        .operator
        .start_backup(&replica, &request(&s3, "b1"))
        .await
        .unwrap();
    assert_eq!(started.phase, BackupPhase::Running);
    // One backup at a time: another name is refused while b1 runs; b1 again is reported, not restarted.
    match h.operator.start_backup(&replica, &request(&s3, "b2")).await {
        Err(ClientError::Api { status: 409, error }) => {
            assert_eq!(error.reason, "backupRunning");
            assert!(error.message.contains("b1 is running"), "{}", error.message);
        }
        other => panic!("a second backup while b1 runs: {other:?}"),
    }
    let again = h
        .operator
        .start_backup(&replica, &request(&s3, "b1"))
        .await
        .unwrap();
    assert_eq!(again.started_at, started.started_at);

    let done = finished(&h, "c-2", "b1").await;
    assert_eq!(done.phase, BackupPhase::Completed, "{done:?}");
    let manifest = done.manifest.clone().unwrap();
    assert_eq!((manifest.role, manifest.keys), (Role::Replica, 20_000));
    assert_eq!(manifest.instance, "c-2");
    assert_eq!(manifest.engine, "valkey");
    assert!(manifest.replication_offset > 0);
    let stored = s3.root.join(BUCKET).join("team/cnredis/c/b1");
    let rdb = stored.join("dump.rdb");
    assert_eq!(std::fs::metadata(&rdb).unwrap().len(), manifest.size_bytes);
    assert!(manifest.size_bytes > 19 << 20, "{} bytes", manifest.size_bytes);
    assert_eq!(sha256_of(&rdb), manifest.checksum);
    let in_bucket: BackupManifest =
        serde_json::from_slice(&std::fs::read(stored.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(in_bucket, manifest);
    assert_eq!(keys_in_rdb(engine, &rdb, &h.dir).await, 20_000);
    println!(
        "b1: {} bytes, {}, {} -> {}",
        manifest.size_bytes, manifest.checksum, manifest.started_at, manifest.stopped_at
    );

    // Bad inputs: each fails with the store's own reason, and the next backup can run.
    let mut wrong_secret = request(&s3, "wrong-secret");
    wrong_secret.store.credentials = "wrong".to_string();
    let mut missing_bucket = request(&s3, "missing-bucket");
    missing_bucket.store.bucket = "no-such-bucket".to_string();
    let mut unreachable = request(&s3, "unreachable");
    unreachable.store.endpoint_url = Some(format!("http://127.0.0.1:{}", free_port()));
    let mut other_cluster = request(&s3, "other-cluster");
    other_cluster.cluster_uid = "uid-of-another-c".to_string();
    let mut no_credentials = request(&s3, "no-credentials");
    no_credentials.store.credentials = "absent".to_string();
    for (bad, expected) in [
        (wrong_secret, "SignatureDoesNotMatch"),
        (missing_bucket, "NoSuchBucket"),
        (unreachable, "error sending request"),
        (other_cluster, "holds backups of another cluster named c"),
        (no_credentials, "cannot read the object store credentials"),
    ] {
        let name = bad.name.clone();
        h.operator.start_backup(&replica, &bad).await.unwrap();
        let report = finished(&h, "c-2", &name).await;
        let error = report.error.clone().unwrap_or_default();
        assert_eq!(report.phase, BackupPhase::Failed, "{name}: {report:?}");
        assert!(
            error.contains(expected),
            "{name}: expected {expected:?} in {error:?}"
        );
        println!("{name}: {error}");
    }
    assert!(!s3.root.join(BUCKET).join("team/cnredis/c/other-cluster").exists());

    // The primary can be backed up too, and an unknown backup is a 404.
    h.operator
        .start_backup(&h.instance("c-1").target(), &request(&s3, "from-primary"))
        .await
        .unwrap();
    let primary_backup = finished(&h, "c-1", "from-primary").await;
    assert_eq!(primary_backup.phase, BackupPhase::Completed, "{primary_backup:?}");
    assert_eq!(primary_backup.manifest.unwrap().role, Role::Primary);
    match h.operator.backup(&replica, "never-asked").await {
        Err(ClientError::Api { status: 404, error }) => assert_eq!(error.reason, "unknownBackup"),
        other => panic!("an unknown backup: {other:?}"),
    }
}

/// The first instance of a restored cluster downloads and checks the backup before its server starts
/// (here with `rdb+aof`, where the snapshot must become the AOF base), and refuses a backup whose
/// checksum is not the one the operator planned with, reporting why without starting the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_instance_restores_a_backup_before_its_server_starts() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let engine = "valkey-8.1";
    // The backup: 3 000 keys from a one-instance cluster.
    let mut source = Harness::new("restore-source", engine, 1, "rdb");
    let s3 = S3::start(&source.dir).await;
    write_credentials(&source, "backup", SECRET_KEY);
    source.set_primary(Some("c-1"), Some("c-1"));
    source.start("c-1");
    source.wait_ready("c-1").await;
    let mut connection = source.redis("c-1", support::PASSWORD).await.unwrap();
    let mut pipe = redis::pipe();
    for i in 0..3000 {
        pipe.set(format!("k:{i}"), format!("v:{i}")).ignore();
    }
    pipe.query_async::<()>(&mut connection).await.unwrap();
    source
        .operator
        .start_backup(&source.instance("c-1").target(), &request(&s3, "snap"))
        .await
        .unwrap();
    let manifest = finished(&source, "c-1", "snap")
        .await
        .manifest
        .expect("completed");

    let recovery = |checksum: &str| {
        serde_json::json!({
            "objectStore": {
                "destinationPath": format!("s3://{BUCKET}/team/cnredis"),
                "endpointURL": s3.endpoint(),
                "s3Credentials": {
                    "accessKeyId": {"name": "s3", "key": "id"},
                    "secretAccessKey": {"name": "s3", "key": "key"},
                },
            },
            "cluster": "c",
            "backupId": "snap",
            "checksum": checksum,
            "keys": 3000,
        })
    };
    // A checksum other than the planned one: reported, and the server never starts.
    let mut refused = Harness::new("restore-refused", engine, 1, "rdb+aof");
    write_credentials(&refused, "recovery", SECRET_KEY);
    refused.cluster["status"]["recovery"] = recovery("sha256:0000");
    refused.set_primary(None, Some("c-1"));
    refused.start("c-1");
    let report = eventually(
        "the refused restore is reported",
        Duration::from_secs(30),
        || async {
            let report = refused.status("c-1").await?;
            match report.restore.as_ref().and_then(|r| r.error.clone()) {
                Some(error) => Ok((report, error)),
                None => Err(format!("{:?}", report.restore)),
            }
        },
    )
    .await;
    assert!(report.1.contains("not the one recorded"), "{}", report.1);
    assert!(!report.0.answered, "the server started: {:?}", report.0);
    assert!(!refused.instance("c-1").data_dir.join("dump.rdb").exists());

    // The planned checksum: restored, loaded through the AOF base, every key there.
    let mut restored = Harness::new("restore", engine, 1, "rdb+aof");
    write_credentials(&restored, "recovery", SECRET_KEY);
    restored.cluster["status"]["recovery"] = recovery(&manifest.checksum);
    restored.set_primary(None, Some("c-1"));
    restored.start("c-1");
    let ready = restored.wait_ready("c-1").await;
    assert_eq!(ready.dataset.keys, 3000, "{ready:?}");
    assert!(
        ready
            .restore
            .as_ref()
            .is_some_and(|r| r.error.is_none() && r.step.starts_with("restored snap"))
    );
    assert!(
        restored
            .instance("c-1")
            .data_dir
            .join("appendonlydir/appendonly.aof.manifest")
            .exists()
    );
    let mut connection = restored.redis("c-1", support::PASSWORD).await.unwrap();
    let value: String = redis::cmd("GET")
        .arg("k:2999")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(value, "v:2999");

    // A data volume too small for the snapshot (a 16 KiB tmpfs): the write error, no server, nothing left.
    let mut full = Harness::new("restore-full", engine, 1, "rdb");
    write_credentials(&full, "recovery", SECRET_KEY);
    full.cluster["status"]["recovery"] = recovery(&manifest.checksum);
    full.set_primary(None, Some("c-1"));
    let mount = Tmpfs::mount(&full.instance("c-1").data_dir, "16k");
    full.start("c-1");
    let error = restore_error(&full).await;
    assert!(error.contains("No space left on device"), "{error}");
    assert!(!full.instance("c-1").data_dir.join("temp-restore.rdb").exists());
    println!("disk full: {error}");
    drop(full);
    drop(mount);

    // The snapshot deleted from the store after the restore was planned.
    std::fs::remove_file(s3.root.join(BUCKET).join("team/cnredis/c/snap/dump.rdb")).unwrap();
    let mut deleted = Harness::new("restore-deleted", engine, 1, "rdb");
    write_credentials(&deleted, "recovery", SECRET_KEY);
    deleted.cluster["status"]["recovery"] = recovery(&manifest.checksum);
    deleted.set_primary(None, Some("c-1"));
    deleted.start("c-1");
    let error = restore_error(&deleted).await;
    assert!(error.contains("NoSuchKey"), "{error}");
    println!("object deleted: {error}");
}

/// The restore error `h`'s first instance reports; its server must not have started.
async fn restore_error(h: &Harness) -> String {
    let (report, error) = eventually("a restore error", Duration::from_secs(60), || async {
        let report = h.status("c-1").await?;
        match report.restore.as_ref().and_then(|r| r.error.clone()) {
            Some(error) => Ok((report, error)),
            None => Err(format!("{:?}", report.restore)),
        }
    })
    .await;
    assert!(!report.answered, "the server started: {report:?}");
    error
}

/// A tmpfs of `size` mounted on `dir` until dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount (the tests run as root)");
        assert!(status.success(), "mounting a tmpfs on {}", dir.display());
        Self(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// An `https://` store with a private CA: refused without the CA bundle, used with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_store_with_a_private_ca_is_trusted_through_its_bundle() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut h = Harness::new("backup-tls", "valkey-8.1", 1, "rdb");
    let ca = cnredis_pki::CertificateAuthority::generate("private S3 CA").unwrap();
    let issued = ca
        .issue_server(&["localhost".to_string()], Duration::from_secs(3600))
        .unwrap();
    let (cert, key) = (h.dir.join("s3.crt"), h.dir.join("s3.key"));
    std::fs::write(&cert, &issued.cert_pem).unwrap();
    std::fs::write(&key, &issued.key_pem).unwrap();
    let s3 = S3::start_with(&h.dir, Some((cert, key))).await;
    write_credentials(&h, "backup", SECRET_KEY);
    let with_ca = write_credentials(&h, "with-ca", SECRET_KEY);
    std::fs::write(with_ca.join("CA_BUNDLE"), ca.cert_pem()).unwrap();
    h.set_primary(Some("c-1"), Some("c-1"));
    h.start("c-1");
    h.wait_ready("c-1").await;
    let target = h.instance("c-1").target();

    h.operator
        .start_backup(&target, &request(&s3, "untrusted"))
        .await
        .unwrap();
    let untrusted = finished(&h, "c-1", "untrusted").await;
    let error = untrusted.error.clone().unwrap_or_default();
    assert_eq!(untrusted.phase, BackupPhase::Failed, "{untrusted:?}");
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    println!("without the CA bundle: {error}");

    let mut trusted = request(&s3, "trusted");
    trusted.store.credentials = "with-ca".to_string();
    h.operator.start_backup(&target, &trusted).await.unwrap();
    let report = finished(&h, "c-1", "trusted").await;
    assert_eq!(report.phase, BackupPhase::Completed, "{report:?}");
}

/// Latencies (µs) of SET+GET round trips against `name` until `stop` is set.
fn probe(
    h: &Harness,
    name: &str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<u64>> {
    let port = h.instance(name).port;
    tokio::spawn(async move {
        let url = format!("redis://:{}@127.0.0.1:{port}", support::PASSWORD);
        let client = redis::Client::open(url).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let mut samples = Vec::new();
        let mut n = 0u64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            n += 1;
            let began = std::time::Instant::now();
            let _: () = redis::cmd("SET")
                .arg("probe")
                .arg(n)
                .query_async(&mut connection)
                .await
                .unwrap();
            let _: String = redis::cmd("GET")
                .arg("probe")
                .query_async(&mut connection)
                .await
                .unwrap();
            samples.push(began.elapsed().as_micros() as u64);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        samples
    })
}

fn percentiles(mut samples: Vec<u64>) -> String {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize] as f64 / 1000.0;
    format!(
        "n={} p50={:.2}ms p99={:.2}ms p99.9={:.2}ms max={:.2}ms",
        samples.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0)
    )
}

/// `hack/bench-backup.sh`: backup and restore throughput for a `BENCH_MIB` dataset (default 1024) against
/// the local versitygw, with `BGSAVE` alone and a boto3 upload of the same file as ceilings, and the
/// primary's SET+GET latency with no backup, a backup from the replica, and one from the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: hack/bench-backup.sh"]
async fn bench_backup_and_restore() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mib: u64 = std::env::var("BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let engine = "valkey-8.1";
    let mut h = Harness::new("bench-backup", engine, 2, "none");
    let s3 = S3::start(&h.dir).await;
    write_credentials(&h, "backup", SECRET_KEY);
    h.set_primary(Some("c-1"), Some("c-1"));
    h.start("c-1");
    h.start("c-2");
    h.wait_ready("c-1").await;
    h.wait_ready("c-2").await;

    // Keys of 1 KiB of incompressible bytes.
    let keys = mib * 1024;
    let began = Instant::now();
    let mut connection = h.redis("c-1", support::PASSWORD).await.unwrap();
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for batch in 0..keys.div_ceil(1000) {
        let mut pipe = redis::pipe();
        for i in 0..1000u64 {
            let value: Vec<u8> = (0..128)
                .flat_map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed.to_le_bytes()
                })
                .collect();
            pipe.set(format!("key:{}", batch * 1000 + i), value).ignore();
        }
        pipe.query_async::<()>(&mut connection).await.unwrap();
    }
    eventually(
        "the replica holds every key",
        Duration::from_secs(600),
        || async {
            let report = h.status("c-2").await?;
            let want = keys.div_ceil(1000) * 1000;
            if report.dataset.keys == want && report.ready {
                Ok(())
            } else {
                Err(format!("{} keys", report.dataset.keys))
            }
        },
    )
    .await;
    println!(
        "populated {keys} keys of 1 KiB in {:.0}s",
        began.elapsed().as_secs_f64()
    );

    // Ceiling 1: BGSAVE alone, on the replica, with the primary's latency meanwhile.
    let mut rows = Vec::new();
    let bgsave_stop = Arc::new(AtomicBool::new(false));
    let bgsave_probe = probe(&h, "c-1", bgsave_stop.clone());
    let mut replica = h.redis("c-2", support::PASSWORD).await.unwrap();
    let began = Instant::now();
    let _: String = redis::cmd("BGSAVE").query_async(&mut replica).await.unwrap();
    eventually("BGSAVE done", Duration::from_secs(600), || async {
        let mut replica = h
            .redis("c-2", support::PASSWORD)
            .await
            .map_err(|e| e.to_string())?;
        match support::info_field(&mut replica, "rdb_bgsave_in_progress")
            .await
            .as_deref()
        {
            Some("0") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let bgsave = began.elapsed().as_secs_f64();
    bgsave_stop.store(true, Ordering::Relaxed);
    rows.push(format!(
        "primary latency, BGSAVE alone on the replica ({bgsave:.1} s): {}",
        percentiles(bgsave_probe.await.unwrap())
    ));
    let rdb = h.instance("c-2").data_dir.join("dump.rdb");
    let size = std::fs::metadata(&rdb).unwrap().len();
    let size_mib = size as f64 / (1024.0 * 1024.0);
    // Ceiling 2: the same file uploaded by boto3 (what `aws s3 cp` does), multipart, 8 MiB parts.
    let began = Instant::now();
    let status = Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, boto3\nfrom botocore.config import Config\nfrom boto3.s3.transfer import TransferConfig\n\
             s3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id=sys.argv[2], \
             aws_secret_access_key=sys.argv[3], region_name='us-east-1', config=Config(s3={'addressing_style': \
             'path'}, request_checksum_calculation='when_required'))\n\
             s3.upload_file(sys.argv[4], sys.argv[5], 'plain/dump.rdb', Config=TransferConfig(multipart_chunksize=8*1024*1024, max_concurrency=2))",
        )
        .args([&s3.endpoint(), ACCESS_KEY, SECRET_KEY])
        .arg(&rdb)
        .arg(BUCKET)
        .status()
        .expect("python3 with boto3");
    assert!(status.success());
    let plain = began.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(s3.root.join(BUCKET).join("plain/dump.rdb"));

    // The primary's latency: no backup, then a backup from the replica, then one from the primary.
    let stop = Arc::new(AtomicBool::new(false));
    let idle = probe(&h, "c-1", stop.clone());
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop.store(true, Ordering::Relaxed);
    rows.push(format!(
        "primary latency, no backup (10 s): {}",
        percentiles(idle.await.unwrap())
    ));
    let mut took = Vec::new();
    for (pod, name) in [("c-2", "from-replica"), ("c-1", "from-primary")] {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = probe(&h, "c-1", stop.clone());
        let began = Instant::now();
        h.operator
            .start_backup(&h.instance(pod).target(), &request(&s3, name))
            .await
            .unwrap();
        let report = finished(&h, pod, name).await;
        let seconds = began.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        assert_eq!(report.phase, BackupPhase::Completed, "{report:?}");
        rows.push(format!(
            "primary latency, backup {name} ({seconds:.1} s): {}",
            percentiles(samples.await.unwrap())
        ));
        took.push((name, seconds));
    }

    // Restore: a new instance downloads, verifies and loads the replica's backup.
    let manifest = h
        .operator
        .backup(&h.instance("c-2").target(), "from-replica")
        .await
        .unwrap()
        .manifest
        .unwrap();
    let mut restored = Harness::new("bench-restore", engine, 1, "rdb");
    write_credentials(&restored, "recovery", SECRET_KEY);
    restored.cluster["status"]["recovery"] = serde_json::json!({
        "objectStore": {
            "destinationPath": format!("s3://{BUCKET}/team/cnredis"),
            "endpointURL": s3.endpoint(),
            "s3Credentials": {"accessKeyId": {"name": "s3", "key": "id"}, "secretAccessKey": {"name": "s3", "key": "key"}},
        },
        "cluster": "c", "backupId": "from-replica", "checksum": manifest.checksum, "keys": manifest.keys,
    });
    restored.set_primary(None, Some("c-1"));
    let began = Instant::now();
    restored.start("c-1");
    let downloaded = eventually("restored", Duration::from_secs(600), || async {
        let report = restored.status("c-1").await?;
        match report.restore {
            Some(r) if r.step.starts_with("restored") => Ok(began.elapsed().as_secs_f64()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    eventually(
        "the restored server is ready",
        Duration::from_secs(600),
        || async {
            let report = restored.status("c-1").await?;
            if report.ready && report.dataset.keys == manifest.keys {
                Ok(())
            } else {
                Err(format!("{} keys", report.dataset.keys))
            }
        },
    )
    .await;
    let ready = began.elapsed().as_secs_f64();

    println!("\nsnapshot: {size_mib:.0} MiB ({keys} keys)");
    println!(
        "BGSAVE alone on the replica:        {bgsave:6.1} s  {:7.1} MiB/s",
        size_mib / bgsave
    );
    println!(
        "boto3 upload of the same file:      {plain:6.1} s  {:7.1} MiB/s",
        size_mib / plain
    );
    for (name, seconds) in &took {
        println!(
            "backup {name:<14} (API -> done): {seconds:6.1} s  {:7.1} MiB/s",
            size_mib / seconds
        );
    }
    println!(
        "restore: downloaded and verified:   {downloaded:6.1} s  {:7.1} MiB/s",
        size_mib / downloaded
    );
    println!(
        "restore: until the server is ready: {ready:6.1} s  {:7.1} MiB/s",
        size_mib / ready
    );
    for row in rows {
        println!("{row}");
    }
    drop(restored);
    drop(h);
}
