//! `cnredis-kubelet`: the process kubelet of the local test cluster (see e2e/README.md). `run` serves one
//! node; `chaos` talks to a running node's chaos socket; `container-init` is the in-namespace half of
//! starting a container (internal).

mod chaos;
mod env;
mod images;
mod logs_server;
mod node;
mod pods;
mod provisioner;
mod runtime;
mod status;
mod volumes;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "cnredis-kubelet",
    about = "Process kubelet of the cnredis local test cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Register a node and run the pods bound to it.
    Run(RunArgs),
    /// Send a chaos request to a running kubelet.
    Chaos {
        /// The node's chaos socket: `<state-dir>/chaos.sock`.
        #[arg(long)]
        socket: PathBuf,
        #[command(subcommand)]
        request: chaos::Request,
    },
    /// Internal: the process between the kubelet and a container's command (see runtime::init).
    #[command(hide = true)]
    ContainerInit {
        /// Run as the container's PID 1 (started by the first stage).
        #[arg(long)]
        pid1: bool,
        spec: PathBuf,
    },
}

#[derive(Args, Debug)]
struct RunArgs {
    #[arg(long)]
    node: String,
    #[arg(long)]
    zone: String,
    #[arg(long)]
    node_ip: Ipv4Addr,
    #[arg(long)]
    kubeconfig: PathBuf,
    /// This node's state: pods, volumes, logs, chaos socket.
    #[arg(long)]
    state_dir: PathBuf,
    /// Image table (`e2e/images.yaml`).
    #[arg(long)]
    images: PathBuf,
    /// Where the image trees live.
    #[arg(long)]
    images_dir: PathBuf,
    /// Port of the kubelet API (HTTPS, for `kubectl logs`).
    #[arg(long, default_value_t = 10250)]
    api_port: u16,
    #[arg(long)]
    tls_cert: PathBuf,
    #[arg(long)]
    tls_key: PathBuf,
    /// CA of the API server's kubelet client certificate.
    #[arg(long)]
    client_ca: PathBuf,
    /// Also run the PV provisioner of StorageClass `cnredis-local` (one node does).
    #[arg(long, requires = "pv_root")]
    provisioner: bool,
    /// Where provisioned PVs keep their data.
    #[arg(long)]
    pv_root: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Before any thread exists: unshare(CLONE_NEWNS) fails in a multi-threaded process.
    if let Command::ContainerInit { pid1, spec } = &cli.command {
        runtime::container_init(spec, *pid1);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Chaos { socket, request } => {
                let reply = chaos::send(&socket, &request).await?;
                if reply.ok {
                    println!("{}", reply.message);
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("chaos request failed: {}", reply.message))
                }
            }
            Command::ContainerInit { .. } => unreachable!("handled before the runtime starts"),
        }
    })
}

async fn client_from(kubeconfig: &std::path::Path) -> anyhow::Result<kube::Client> {
    let config = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    std::fs::create_dir_all(&args.state_dir)?;
    let client = client_from(&args.kubeconfig).await?;
    let node = node::NodeConfig {
        name: args.node.clone(),
        zone: args.zone.clone(),
        ip: args.node_ip,
        api_port: args.api_port,
    };
    node::register(&client, &node).await?;
    let pod_cidr = node::wait_for_pod_cidr(&client, &node.name, Duration::from_secs(60)).await?;
    tracing::info!(node = %node.name, ?pod_cidr, "registered");

    let runtime = runtime::Runtime::new(args.state_dir.clone())?;
    let images = images::Images::load(&args.images, &args.images_dir)?;
    let kubelet = pods::Kubelet::new(
        client.clone(),
        node.clone(),
        runtime,
        images,
        args.state_dir.clone(),
        pod_cidr,
    )
    .await?;

    tokio::spawn(node::heartbeat(
        client.clone(),
        node.clone(),
        kubelet.up.subscribe(),
    ));
    let chaos_socket = args.state_dir.join("chaos.sock");
    tokio::spawn({
        let kubelet = Arc::clone(&kubelet);
        async move {
            if let Err(err) = chaos::serve(&chaos_socket, kubelet).await {
                tracing::error!("chaos socket failed: {err:#}");
            }
        }
    });
    tokio::spawn({
        let tls = logs_server::TlsFiles {
            cert: args.tls_cert.clone(),
            key: args.tls_key.clone(),
            client_ca: args.client_ca.clone(),
        };
        let lookup: Arc<dyn logs_server::LogLookup> = Arc::new(PodLogs(Arc::clone(&kubelet)));
        let addr = SocketAddr::from((args.node_ip, args.api_port));
        async move {
            if let Err(err) = logs_server::serve(addr, tls, lookup).await {
                tracing::error!("kubelet API failed: {err:#}");
            }
        }
    });
    if args.provisioner {
        let pv_root = args
            .pv_root
            .clone()
            .context("--pv-root is required with --provisioner")?;
        std::fs::create_dir_all(&pv_root)?;
        let client = client.clone();
        tokio::spawn(async move {
            if let Err(err) = provisioner::run(client, pv_root).await {
                tracing::error!("provisioner failed: {err:#}");
            }
        });
    }

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = Arc::clone(&kubelet).run() => result,
        _ = terminate.recv() => {
            // The local cluster is going away: leave no process, namespace or mount behind.
            tracing::info!(node = %node.name, "SIGTERM: stopping every pod");
            kubelet.kill_all().await;
            Ok(())
        }
    }
}

struct PodLogs(Arc<pods::Kubelet>);

impl logs_server::LogLookup for PodLogs {
    fn log_file(&self, namespace: &str, pod: &str, container: &str, previous: bool) -> Option<PathBuf> {
        self.0.handle(namespace, pod)?.log_path(container, previous)
    }
}
