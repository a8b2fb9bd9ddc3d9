//! `cnredis instance run`: the instance manager's flags (most come from the downward API in a pod) turned
//! into [`cnredis_instance::run::RunOptions`].

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use cnredis_instance::config::TlsFiles;
use cnredis_instance::manager::Identity;
use cnredis_instance::run::RunOptions;
use cnredis_instance::source::ClusterSource;

#[derive(Args, Debug)]
pub struct InstanceRunArgs {
    /// Name of the RedisCluster this instance belongs to.
    #[arg(long, env = "CNREDIS_CLUSTER_NAME")]
    cluster_name: String,
    /// Name of this pod (downward API).
    #[arg(long, env = "POD_NAME")]
    pod_name: String,
    /// Namespace of this pod (downward API).
    #[arg(long, env = "POD_NAMESPACE")]
    pod_namespace: String,
    /// IP of this pod (downward API), announced to the primary.
    #[arg(long, env = "POD_IP")]
    pod_ip: Ipv4Addr,
    /// Port of the server.
    #[arg(long, env = "CNREDIS_PORT", default_value_t = cnredis_api::names::REDIS_PORT)]
    port: u16,
    /// Data directory (the PVC).
    #[arg(long, env = "CNREDIS_DATA_DIR", default_value = "/data")]
    data_dir: PathBuf,
    /// Directory for the rendered configuration and the server's unix socket.
    #[arg(long, env = "CNREDIS_RUN_DIR", default_value = "/controller/run")]
    run_dir: PathBuf,
    /// File holding the server password (a projected Secret key).
    #[arg(long, env = "CNREDIS_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
    /// Container memory limit in bytes (downward API `limits.memory`); read from the cgroup when absent.
    #[arg(long, env = "CNREDIS_MEMORY_LIMIT")]
    memory_limit_bytes: Option<u64>,
    /// Directory with the server's own certificate (`tls.crt`, `tls.key`, `ca.crt`) when `spec.tls` is set.
    #[arg(long, env = "CNREDIS_SERVER_TLS_DIR")]
    server_tls_dir: Option<PathBuf>,
    /// Directory with the instance API certificate (`tls.crt`, `tls.key`) and the operator CA (`ca.crt`).
    #[arg(long, env = "CNREDIS_API_TLS_DIR")]
    api_tls_dir: Option<PathBuf>,
    /// Address of the instance API.
    #[arg(long, env = "CNREDIS_API_ADDR", default_value = "0.0.0.0:8000")]
    api_addr: SocketAddr,
    /// Address of the metrics endpoint.
    #[arg(long, env = "CNREDIS_INSTANCE_METRICS_ADDR", default_value = "0.0.0.0:9121")]
    metrics_addr: SocketAddr,
    /// Read the RedisCluster and pod addresses from this YAML file instead of the Kubernetes API (runs
    /// without a primary lease). For tests and local runs.
    #[arg(long, env = "CNREDIS_CLUSTER_FILE")]
    cluster_file: Option<PathBuf>,
    /// Duration of the primary lease: a primary that cannot renew it for this long refuses writes.
    #[arg(long, env = "CNREDIS_LEASE_DURATION_SECONDS", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Directory holding one directory per object store (`ACCESS_KEY_ID`, `SECRET_ACCESS_KEY`, optional
    /// `SESSION_TOKEN`: projected Secret keys) for backups and restores.
    #[arg(long, env = "CNREDIS_OBJECT_STORE_CREDENTIALS", default_value = cnredis_api::names::OBJECT_STORE_CREDENTIALS_DIR)]
    object_store_credentials: PathBuf,
    /// Directory searched for valkey-server / redis-server before PATH.
    #[arg(long, env = "CNREDIS_ENGINE_DIR")]
    engine_dir: Option<PathBuf>,
}

/// cgroup v2 `memory.max` of this container, when limited.
fn cgroup_memory_limit() -> Option<u64> {
    std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub fn run(args: InstanceRunArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(run_async(args));
    // The server is stopped by now; background tasks (watches, API connections) are abandoned rather
    // than waited for, so that the pod's grace period goes to the server.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}

async fn run_async(args: InstanceRunArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (5..=3600).contains(&args.lease_duration_seconds),
        "--lease-duration-seconds must be within 5..=3600"
    );
    let identity = Identity {
        pod_name: args.pod_name,
        namespace: args.pod_namespace.clone(),
        cluster_name: args.cluster_name.clone(),
        pod_ip: args.pod_ip,
        port: args.port,
        data_dir: args.data_dir,
        run_dir: args.run_dir,
        password_file: args.password_file,
        memory_limit_bytes: args.memory_limit_bytes.or_else(cgroup_memory_limit),
        server_tls: args.server_tls_dir.map(|dir| TlsFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            ca: dir.join("ca.crt"),
        }),
        object_store_credentials: args.object_store_credentials,
        // Only pods can be forged: a cluster file names its addresses itself.
        peer_tls: args
            .cluster_file
            .is_none()
            .then(|| args.api_tls_dir.clone())
            .flatten(),
    };
    let (source, lease) = match args.cluster_file {
        Some(path) => (ClusterSource::File(path), None),
        None => {
            let client = crate::kube_client().await?;
            let source = ClusterSource::Kubernetes {
                client: client.clone(),
                namespace: args.pod_namespace,
                name: args.cluster_name,
            };
            (
                source,
                Some((client, Duration::from_secs(args.lease_duration_seconds))),
            )
        }
    };
    cnredis_instance::run::run(RunOptions {
        identity,
        source,
        lease,
        api_addr: args.api_addr,
        api_tls: args.api_tls_dir,
        metrics_addr: args.metrics_addr,
        engine_dir: args.engine_dir,
    })
    .await
}

/// `cnredis instance cli`: the engine's cli on this instance's server, through its unix socket,
/// authenticated with the mounted password. What `kubectl cnredis cli` runs in the pod (`kubectl exec`),
/// from the container's environment.
#[derive(Args, Debug)]
pub struct InstanceCliArgs {
    /// The instance manager's run directory (holds the server's socket).
    #[arg(long, env = "CNREDIS_RUN_DIR", default_value = "/controller/run")]
    run_dir: PathBuf,
    /// File holding the server password.
    #[arg(long, env = "CNREDIS_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
    /// Directory searched for valkey-cli / redis-cli before PATH.
    #[arg(long, env = "CNREDIS_ENGINE_DIR")]
    engine_dir: Option<PathBuf>,
    /// Arguments for the cli: a command to run once, or nothing for an interactive session.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Replaces this process with the cli; returns only when it cannot start.
pub fn cli(args: InstanceCliArgs) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let binary = cnredis_instance::run::find_binary(args.engine_dir.as_deref(), &["valkey-cli", "redis-cli"])
        .context("neither valkey-cli nor redis-cli is in the engine directory or PATH")?;
    let mut command = std::process::Command::new(&binary);
    command
        .arg("-s")
        .arg(args.run_dir.join(cnredis_instance::manager::SERVER_SOCKET))
        .args(&args.args);
    if let Some(path) = &args.password_file {
        let password = std::fs::read_to_string(path)
            .with_context(|| format!("reading the password file {}", path.display()))?;
        // The environment, not an argument: arguments are visible to every process of the pod.
        command.env("REDISCLI_AUTH", password.trim_end_matches(['\n', '\r']));
    }
    let error = command.exec();
    Err(error).with_context(|| format!("running {}", binary.display()))
}
