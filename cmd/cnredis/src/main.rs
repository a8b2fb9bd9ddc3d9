//! `cnredis`: one static binary for the operator (`controller`), the in-pod instance manager
//! (`instance run`), the init container that installs the binary into a pod (`bootstrap`), and the CRD
//! printer (`crd`). This file only parses the command line and dispatches.

mod bootstrap;
mod instance;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "cnredis", version, about = "Kubernetes operator for Valkey and Redis", long_about = None)]
struct Cli {
    #[command(flatten)]
    telemetry: telemetry::TelemetryArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator: reconcile RedisClusters, RedisBackups and RedisScheduledBackups.
    Controller(ControllerArgs),
    /// The in-pod instance manager.
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// Copy this executable to DEST (mode 0755); used by the init container of every instance pod.
    Bootstrap {
        /// Where to write the copy, e.g. /controller/cnredis.
        dest: PathBuf,
    },
    /// Print the CustomResourceDefinitions of the redis.cnredis.io API as YAML.
    Crd,
    /// Print the version of this binary.
    Version,
}

#[derive(Args, Debug)]
struct ControllerArgs {
    /// Namespaces to watch, comma-separated; empty means all namespaces.
    #[arg(
        long,
        env = "CNREDIS_WATCH_NAMESPACES",
        value_delimiter = ',',
        default_value = ""
    )]
    watch_namespaces: Vec<String>,
    /// Address of the metrics and health endpoints (/metrics, /healthz, /readyz).
    #[arg(long, env = "CNREDIS_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,
    /// Elect a leader among operator replicas (a Lease in the operator's namespace).
    #[arg(long, env = "CNREDIS_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Image whose cnredis binary the init container of every instance pod copies.
    #[arg(long, env = "CNREDIS_OPERATOR_IMAGE")]
    operator_image: String,
    /// Namespace of the operator: its CA Secret and leader Lease live there (downward API).
    #[arg(long, env = "POD_NAMESPACE", default_value = "cnredis-system")]
    namespace: String,
    /// Name of this operator pod: the leader identity (downward API).
    #[arg(long, env = "POD_NAME", default_value = "cnredis-operator")]
    pod_name: String,
}

#[derive(Subcommand, Debug)]
enum InstanceCommand {
    /// Run as PID 1 of an instance pod: supervise the server and serve the instance API.
    Run(Box<instance::InstanceRunArgs>),
    /// Open valkey-cli (or redis-cli) on this instance's server: its unix socket, the mounted password.
    /// `kubectl cnredis cli` runs it through `kubectl exec`; ARGS go to the cli.
    Cli(instance::InstanceCliArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One TLS provider for every client and server in the process (kube, the instance API).
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Err(err) = telemetry::init(&cli.telemetry) {
        eprintln!("cnredis: {err:#}");
        return ExitCode::from(2);
    }
    match run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("cnredis: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Bootstrap { dest } => {
            let written = bootstrap::install_self(&dest)?;
            println!("installed {} ({} bytes)", dest.display(), written);
            Ok(ExitCode::SUCCESS)
        }
        Command::Crd => {
            print!("{}", cnredis_api::crds_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("cnredis {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Controller(args) => {
            controller(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Instance(InstanceCommand::Run(args)) => {
            instance::run(*args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Instance(InstanceCommand::Cli(args)) => {
            instance::cli(args)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn controller(args: ControllerArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let options = cnredis_controller::run::ControllerOptions {
        watch_namespaces: args
            .watch_namespaces
            .into_iter()
            .filter(|ns| !ns.is_empty())
            .collect(),
        metrics_addr: args.metrics_addr,
        leader_elect: args.leader_elect,
        operator_image: args.operator_image,
        namespace: args.namespace,
        pod_name: args.pod_name,
    };
    runtime.block_on(async { cnredis_controller::run::run(kube_client().await?, options).await })
}

/// The Kubernetes client: in a pod, the in-cluster configuration, read directly. Inferring it would look
/// for a kubeconfig first, under the home directory; for a user without a passwd entry (the operator's
/// 65532, the engines' 999) a static binary can only ask NSS modules it cannot load, and crashes.
pub async fn kube_client() -> anyhow::Result<kube::Client> {
    use anyhow::Context as _;
    let config = if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        kube::Config::incluster().context("reading the in-cluster configuration")?
    } else {
        kube::Config::infer().await.context("finding a kubeconfig")?
    };
    kube::Client::try_from(config).context("connecting to the Kubernetes API")
}
