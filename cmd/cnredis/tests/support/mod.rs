//! A cluster of `cnredis instance run` processes on one host, each supervising a real `valkey-server` or
//! `redis-server`, fed a RedisCluster (spec, status, fencing annotation) through `--cluster-file` the way
//! the Kubernetes watch feeds it in a pod, and called through the instance API with real certificates.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cnredis_instance_client::wire;
use cnredis_instance_client::{InstanceClient, Target};
use cnredis_pki::{CertificateAuthority, IssuedCertificate};
use serde_json::{Value, json};

pub const PASSWORD: &str = "first-password";
pub const NAMESPACE: &str = "test";
pub const CLUSTER: &str = "c";
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// The binary under test: `CNREDIS_BIN` (the release build in `make test`) or the one cargo built.
pub fn binary() -> PathBuf {
    std::env::var_os("CNREDIS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cnredis")))
}

/// The engine binaries `e2e/install-deps.sh` unpacks (under `$CNREDIS_CACHE/images`): `valkey-9.1`,
/// `valkey-8.1`, `redis-7.0`.
pub fn engine_dir(engine: &str) -> PathBuf {
    let cache = std::env::var_os("CNREDIS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/cnredis"));
    let root = cache.join("images");
    let dir = root.join(engine).join("usr/local/bin");
    assert!(
        dir.is_dir(),
        "{} is missing: run e2e/install-deps.sh (make deps) first",
        dir.display()
    );
    dir
}

/// A free port that no other caller in this process got, below the kernel's ephemeral range (32768 and
/// up). A port the kernel picks for port 0 is one it also hands to outgoing connections and to the next
/// caller asking for port 0: a server restarted on it after a kill found it taken (seen in CI, the test
/// of a fence while the server is down), and the tests run in parallel threads.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const END: u32 = 32_768;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Processes running at once (test binaries of other crates) start at different places.
    let start = FIRST + std::process::id() % 1_000 * 10;
    let _ = NEXT.compare_exchange(0, start, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..(END - FIRST) {
        let port = FIRST + (NEXT.fetch_add(1, Ordering::SeqCst) - FIRST) % (END - FIRST);
        if TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
    panic!("no free port in {FIRST}..{END}")
}

/// Waits for `check` to return `Ok`, up to `within`; panics with the last observation otherwise.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) if Instant::now() >= deadline => {
                panic!("{what}: not reached within {within:?}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// One instance: its manager process, ports and files.
pub struct Instance {
    pub name: String,
    pub port: u16,
    pub api_port: u16,
    pub metrics_port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub manager: Option<Child>,
}

impl Instance {
    pub fn target(&self) -> Target {
        Target {
            server_name: cnredis_pki::instance_api_server_name(CLUSTER, NAMESPACE),
            address: SocketAddr::from(([127, 0, 0, 1], self.api_port)),
        }
    }

    pub fn manager_pid(&self) -> i32 {
        self.manager.as_ref().expect("manager running").id() as i32
    }
}

/// The cluster under test.
pub struct Harness {
    pub dir: PathBuf,
    pub engine: String,
    pub ca: CertificateAuthority,
    pub server_cert: IssuedCertificate,
    pub operator: InstanceClient,
    pub cluster_file: PathBuf,
    pub password_file: PathBuf,
    /// The RedisCluster (JSON) the instances read.
    pub cluster: Value,
    pub instances: Vec<Instance>,
    /// The `metadata.resourceVersion` of the last view published: every publication has a new one, as
    /// every change of the RedisCluster has in the API.
    pub published: std::sync::atomic::AtomicU64,
}

impl Harness {
    /// A cluster `c` of `instances` pods with the given persistence mode, nothing started yet.
    pub fn new(test: &str, engine: &str, instances: usize, persistence: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("cnredis-it-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("api-tls")).unwrap();
        let ca = CertificateAuthority::generate("cnredis test CA").unwrap();
        let server_cert = ca
            .issue_server(&[cnredis_pki::instance_api_server_name(CLUSTER, NAMESPACE)], YEAR)
            .unwrap();
        for (file, text) in [
            ("ca.crt", ca.cert_pem()),
            ("tls.crt", server_cert.cert_pem.as_str()),
            ("tls.key", server_cert.key_pem.as_str()),
        ] {
            std::fs::write(dir.join("api-tls").join(file), text).unwrap();
        }
        let operator_cert = ca.issue_operator_client(YEAR).unwrap();
        let operator = InstanceClient::new(
            cnredis_pki::client_config(ca.cert_pem(), &operator_cert.cert_pem, &operator_cert.key_pem)
                .unwrap(),
            Duration::from_secs(20),
        )
        .unwrap();
        let password_file = dir.join("password");
        std::fs::write(&password_file, PASSWORD).unwrap();
        let count = instances;
        let instances = (1..=count)
            .map(|serial| {
                let name = format!("{CLUSTER}-{serial}");
                let data_dir = dir.join(&name).join("data");
                std::fs::create_dir_all(&data_dir).unwrap();
                Instance {
                    log: dir.join(&name).join("manager.log"),
                    name,
                    port: free_port(),
                    api_port: free_port(),
                    metrics_port: free_port(),
                    data_dir,
                    manager: None,
                }
            })
            .collect();
        let cluster = json!({
            "apiVersion": "redis.cnredis.io/v1",
            "kind": "RedisCluster",
            "metadata": {"name": CLUSTER, "namespace": NAMESPACE, "annotations": {}},
            "spec": {
                "instances": count,
                "persistence": {"mode": persistence},
                "auth": {"enabled": true},
                "stopDelaySeconds": 10,
            },
            "status": {},
        });
        let harness = Self {
            cluster_file: dir.join("cluster.yaml"),
            dir,
            engine: engine.to_string(),
            ca,
            server_cert,
            operator,
            password_file,
            cluster,
            instances,
            published: std::sync::atomic::AtomicU64::new(0),
        };
        harness.publish();
        harness
    }

    /// Writes the cluster view the instances read (atomically: they poll the file).
    pub fn publish(&self) {
        let addresses: serde_json::Map<String, Value> = self
            .instances
            .iter()
            .map(|i| (i.name.clone(), json!({"host": "127.0.0.1", "port": i.port})))
            .collect();
        let version = self.published.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let mut cluster = self.cluster.clone();
        cluster["metadata"]["resourceVersion"] = json!(version.to_string());
        let view = json!({"cluster": cluster, "addresses": addresses});
        let temporary = self.cluster_file.with_extension("tmp");
        std::fs::write(&temporary, serde_json::to_string_pretty(&view).unwrap()).unwrap();
        std::fs::rename(&temporary, &self.cluster_file).unwrap();
    }

    /// Sets `status.currentPrimary` / `targetPrimary` (None removes the field) and publishes.
    pub fn set_primary(&mut self, current: Option<&str>, target: Option<&str>) {
        let status = self.cluster["status"].as_object_mut().unwrap();
        for (field, value) in [("currentPrimary", current), ("targetPrimary", target)] {
            match value {
                Some(pod) => status.insert(field.to_string(), json!(pod)),
                None => status.remove(field),
            };
        }
        self.publish();
    }

    /// Records instances in `status.instancesStatus` as the operator would (name, keys, offset).
    pub fn record_instances(&mut self, records: &[(&str, i64, i64)]) {
        let list: Vec<Value> = records
            .iter()
            .map(|(name, keys, offset)| {
                json!({"name": name, "role": "replica", "keys": keys, "replicationOffset": offset})
            })
            .collect();
        self.cluster["status"]["instancesStatus"] = json!(list);
        self.publish();
    }

    /// Sets `spec.<field>` (a top-level spec field) and publishes.
    pub fn set_spec(&mut self, field: &str, value: Value) {
        self.cluster["spec"][field] = value;
        self.publish();
    }

    pub fn set_annotation(&mut self, key: &str, value: Option<&str>) {
        let annotations = self.cluster["metadata"]["annotations"].as_object_mut().unwrap();
        match value {
            Some(value) => annotations.insert(key.to_string(), json!(value)),
            None => annotations.remove(key),
        };
        self.publish();
    }

    pub fn instance(&self, name: &str) -> &Instance {
        self.instances
            .iter()
            .find(|i| i.name == name)
            .expect("instance exists")
    }

    /// Starts the instance manager of `name`, reading the cluster from the cluster file.
    pub fn start(&mut self, name: &str) {
        let mut command = self.manager_command(name, NAMESPACE);
        command
            .arg("--cluster-file")
            .arg(&self.cluster_file)
            .arg("--password-file")
            .arg(&self.password_file);
        self.spawn(name, command);
    }

    /// Starts the instance manager of `name` against a real API server (with the primary lease).
    pub fn start_with_kubernetes(
        &mut self,
        name: &str,
        namespace: &str,
        kubeconfig: &Path,
        lease_seconds: u64,
    ) {
        let mut command = self.manager_command(name, namespace);
        command
            .env("KUBECONFIG", kubeconfig)
            .arg("--lease-duration-seconds")
            .arg(lease_seconds.to_string());
        self.spawn(name, command);
    }

    fn manager_command(&self, name: &str, namespace: &str) -> Command {
        let instance = self.instance(name);
        let mut command = Command::new(binary());
        command
            .args(["--log-format", "text", "--log-level", "debug", "instance", "run"])
            .args(["--cluster-name", CLUSTER, "--pod-namespace", namespace])
            .args(["--pod-name", name, "--pod-ip", "127.0.0.1"])
            .arg("--port")
            .arg(instance.port.to_string())
            .arg("--data-dir")
            .arg(&instance.data_dir)
            .arg("--run-dir")
            .arg(self.dir.join(name).join("run"))
            .arg("--api-tls-dir")
            .arg(self.dir.join("api-tls"))
            .arg("--api-addr")
            .arg(format!("127.0.0.1:{}", instance.api_port))
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{}", instance.metrics_port))
            .arg("--engine-dir")
            .arg(engine_dir(&self.engine))
            .arg("--object-store-credentials")
            .arg(self.dir.join("object-store"))
            .arg("--memory-limit-bytes")
            .arg(std::env::var("CNREDIS_TEST_MEMORY_LIMIT").unwrap_or_else(|_| (256u64 << 20).to_string()))
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null());
        command
    }

    fn spawn(&mut self, name: &str, mut command: Command) {
        let instance = self.instances.iter_mut().find(|i| i.name == name).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&instance.log)
            .unwrap();
        let child = command
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting cnredis instance run");
        instance.manager = Some(child);
    }

    /// The instance API's status of `name`, once it answers.
    pub async fn status(&self, name: &str) -> Result<wire::InstanceReport, String> {
        self.operator
            .status(&self.instance(name).target())
            .await
            .map_err(|error| format!("{error}"))
    }

    /// Waits until `name` has read the last view published (its report names that resourceVersion).
    pub async fn wait_view(&self, name: &str) {
        let published = self
            .published
            .load(std::sync::atomic::Ordering::SeqCst)
            .to_string();
        eventually(
            &format!("{name} reads view {published}"),
            Duration::from_secs(10),
            || async {
                let report = self.status(name).await?;
                match &report.cluster_resource_version {
                    Some(version) if *version == published => Ok(()),
                    other => Err(format!("{name} reports view {other:?}")),
                }
            },
        )
        .await
    }

    /// Waits until `name` reports ready (server up; a replica linked and synced).
    pub async fn wait_ready(&self, name: &str) -> wire::InstanceReport {
        eventually(&format!("{name} ready"), Duration::from_secs(30), || async {
            let report = self.status(name).await?;
            if report.ready {
                Ok(report)
            } else {
                Err(format!("{report:?}"))
            }
        })
        .await
    }

    /// A connection to the server of `name` with `password`.
    pub async fn redis(
        &self,
        name: &str,
        password: &str,
    ) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let info = redis::ConnectionAddr::Tcp("127.0.0.1".to_string(), self.instance(name).port);
        let info = redis::IntoConnectionInfo::into_connection_info(info)?.set_redis_settings(
            redis::RedisConnectionInfo::default()
                .set_password(password)
                .set_skip_set_lib_name(),
        );
        redis::Client::open(info)?
            .get_multiplexed_async_connection()
            .await
    }

    /// A connection to the server of `name`, which runs without a password.
    pub async fn redis_open(&self, name: &str) -> redis::aio::MultiplexedConnection {
        let info = redis::ConnectionAddr::Tcp("127.0.0.1".to_string(), self.instance(name).port);
        let info = redis::IntoConnectionInfo::into_connection_info(info)
            .unwrap()
            .set_redis_settings(redis::RedisConnectionInfo::default().set_skip_set_lib_name());
        redis::Client::open(info)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("connecting to the server")
    }

    /// SIGTERMs every manager still running and waits for it; prints their logs when the test failed.
    fn shutdown(&mut self) {
        for instance in &mut self.instances {
            if let Some(mut child) = instance.manager.take() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
                let deadline = Instant::now() + Duration::from_secs(15);
                while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    pub fn logs(&self) -> String {
        self.instances
            .iter()
            .map(|i| {
                let text = std::fs::read_to_string(&i.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(60).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("----- {} ({})\n{}\n", i.name, i.log.display(), tail.join("\n"))
            })
            .collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A value of `INFO` of `name`'s server.
pub async fn info_field(connection: &mut redis::aio::MultiplexedConnection, field: &str) -> Option<String> {
    let text: String = redis::cmd("INFO").query_async(connection).await.ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .map(|value| value.trim().to_string())
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}
