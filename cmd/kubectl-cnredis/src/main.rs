//! `kubectl cnredis`: the kubectl plugin for cnredis clusters. Installed as `kubectl-cnredis` on the
//! PATH, kubectl runs it for `kubectl cnredis ...`. This file parses the command line and dispatches.

mod backup;
mod cli;
mod connect;
mod fence;
mod follow;
mod install;
mod list;
mod observe;
mod promote;
mod reload;
mod render;
mod report;
mod restart;
mod table;
mod view;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use cnredis_api::common::BackupTarget;

#[derive(Parser, Debug)]
#[command(
    name = "kubectl-cnredis",
    bin_name = "kubectl cnredis",
    version,
    about = "Operate cnredis clusters (Valkey and Redis on Kubernetes)",
    long_about = "Operate cnredis clusters (Valkey and Redis on Kubernetes).\n\n\
        Start with `kubectl cnredis status CLUSTER`; the runbooks in docs/runbooks say what to do next."
)]
struct Cli {
    #[command(flatten)]
    kube: connect::KubeArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show a cluster: phase, primary, instances and their replication, backups, certificates, events;
    /// without CLUSTER, list the clusters of the namespace (`-A`: of every namespace).
    Status(StatusArgs),
    /// Switch the primary over to INSTANCE (a planned switchover; nothing acknowledged is lost).
    Promote(PromoteArgs),
    /// Fence instances (they refuse writes and are never failed over to), or lift the fence.
    #[command(subcommand)]
    Fence(FenceCommand),
    /// Restart every instance (rolling: replicas first, the primary last by switchover), or one replica.
    Restart(RestartArgs),
    /// Re-read the configuration and the secrets (the password) without a restart, and wait until every
    /// instance has applied them.
    Reload(ReloadArgs),
    /// Open valkey-cli (or redis-cli) on the primary or on INSTANCE; ARGS after `--` run once.
    Cli(CliArgs),
    /// Take a backup of a cluster now (creates a RedisBackup) and follow it.
    Backup(BackupArgs),
    /// Collect a support report (a zip; secret values redacted).
    #[command(subcommand)]
    Report(ReportCommand),
    /// Print the version of this plugin and of the operator it talks to.
    Version,
    /// The operator's install manifest.
    #[command(subcommand)]
    Install(InstallCommand),
    /// Print a shell completion script for `kubectl-cnredis`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug)]
enum ReportCommand {
    /// The cluster's objects, Events, instance reports and logs, the operator's logs, and its status.
    Cluster {
        /// The RedisCluster.
        cluster: String,
        /// Where to write the zip (default: report_CLUSTER_YYYYMMDDHHMMSS.zip here).
        #[arg(short, long)]
        file: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum InstallCommand {
    /// Print the install manifest (namespace, CRDs, RBAC, operator) for `kubectl apply --server-side -f -`.
    Generate(InstallArgs),
}

#[derive(Args, Debug)]
struct InstallArgs {
    /// Namespace of the operator.
    #[arg(long, default_value = "cnredis-system")]
    operator_namespace: String,
    /// Operator image (default: the image of this plugin's version).
    #[arg(long)]
    image: Option<String>,
    /// Namespaces the operator watches, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    watch_namespaces: Vec<String>,
    /// Operator replicas (one leads, the others stand by).
    #[arg(long, default_value_t = 1)]
    replicas: u32,
}

#[derive(Args, Debug)]
struct StatusArgs {
    /// The RedisCluster; without it, every RedisCluster of the namespace on one line each.
    cluster: Option<String>,
    /// Without CLUSTER: list the RedisClusters of every namespace.
    #[arg(short = 'A', long, conflicts_with = "cluster")]
    all_namespaces: bool,
    /// Also show the configuration and per-instance details.
    #[arg(short, long)]
    verbose: bool,
    #[command(flatten)]
    output: OutputArgs,
    /// Colour the output: auto (only on a terminal), always, never.
    #[arg(long, value_enum, default_value_t = Colour::Auto)]
    color: Colour,
}

#[derive(Args, Debug)]
struct OutputArgs {
    /// Output format: for people (default), or json|yaml for scripts.
    #[arg(short, long, value_enum)]
    output: Option<Format>,
}

#[derive(Args, Debug)]
struct WaitArgs {
    /// Return as soon as the change is requested.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for the change to complete.
    #[arg(long, default_value = "300", value_name = "SECONDS")]
    timeout: u64,
}

impl WaitArgs {
    fn wait(&self) -> Option<Duration> {
        (!self.no_wait).then(|| Duration::from_secs(self.timeout))
    }
}

#[derive(Args, Debug)]
struct PromoteArgs {
    /// The RedisCluster.
    cluster: String,
    /// The replica (pod) to promote.
    instance: String,
    /// Promote even if the instance looks out of sync (the operator still waits for it to catch up, and
    /// abandons the switchover if it cannot within 30 s).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(Subcommand, Debug)]
enum FenceCommand {
    /// Fence INSTANCE (`*` for every instance): it refuses writes until the fence is lifted.
    On(FenceArgs),
    /// Lift the fence of INSTANCE (`*` for every instance).
    Off(FenceArgs),
}

#[derive(Args, Debug)]
struct FenceArgs {
    /// The RedisCluster.
    cluster: String,
    /// An instance (pod) name, or `*`.
    instance: String,
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(Args, Debug)]
struct RestartArgs {
    /// The RedisCluster.
    cluster: String,
    /// Restart only this replica.
    instance: Option<String>,
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(Args, Debug)]
struct ReloadArgs {
    /// The RedisCluster.
    cluster: String,
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    kubectl cnredis cli sessions                       # interactive, on the primary\n  \
    kubectl cnredis cli sessions sessions-2 -- INFO replication\n  \
    kubectl cnredis cli sessions --local -- DBSIZE     # from this machine, to the pod's IP")]
struct CliArgs {
    /// The RedisCluster.
    cluster: String,
    /// The instance (pod); default: the primary.
    instance: Option<String>,
    /// Run the cli on this machine against the pod's IP (needs a route to the pod network) instead of
    /// in the pod through `kubectl exec`.
    #[arg(long, env = "CNREDIS_CLI_LOCAL", value_parser = clap::builder::BoolishValueParser::new())]
    local: bool,
    /// The cli binary for --local (default: valkey-cli, else redis-cli, from PATH).
    #[arg(long, requires = "local", value_name = "PATH")]
    cli_binary: Option<std::path::PathBuf>,
    /// Arguments for the cli: a command to run once; none for an interactive session.
    #[arg(last = true)]
    args: Vec<String>,
}

#[derive(Args, Debug)]
struct BackupArgs {
    /// The RedisCluster; it needs spec.backup.
    cluster: String,
    /// Name of the RedisBackup (default: CLUSTER-YYYYMMDDHHMMSS, UTC).
    #[arg(long)]
    backup_name: Option<String>,
    /// Where to take it: the most advanced healthy replica, or the primary (default: the cluster's
    /// spec.backup.target).
    #[arg(short, long, value_enum)]
    target: Option<Target>,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Format {
    Json,
    Yaml,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Colour {
    Auto,
    Always,
    Never,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Target {
    PreferReplica,
    Primary,
}

fn print_as<T: serde::Serialize>(value: &T, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Yaml => print!("{}", serde_saphyr::to_string(value)?),
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Completion { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "kubectl-cnredis",
            &mut std::io::stdout(),
        );
        return Ok(());
    }
    if let Command::Install(InstallCommand::Generate(args)) = &cli.command {
        print!(
            "{}",
            install::generate(&install::InstallOptions {
                namespace: args.operator_namespace.clone(),
                image: args.image.clone(),
                watch_namespaces: args.watch_namespaces.clone(),
                replicas: args.replicas,
            })?
        );
        return Ok(());
    }
    let kube = cli.kube.connect().await?;
    match cli.command {
        Command::Status(args) => {
            let colour = match args.color {
                Colour::Always => true,
                Colour::Never => false,
                Colour::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            };
            let Some(cluster) = &args.cluster else {
                let clusters = list::clusters(&kube, args.all_namespaces).await?;
                match args.output.output {
                    Some(format) => print_as(&clusters, format)?,
                    None => print!(
                        "{}",
                        list::render(
                            &clusters,
                            jiff::Timestamp::now(),
                            args.all_namespaces,
                            &kube.namespace,
                            colour
                        )
                    ),
                }
                return Ok(());
            };
            let observed = observe::observe(&kube, cluster).await?;
            match args.output.output {
                Some(format) => print_as(&observed, format)?,
                None => {
                    let style = render::Style {
                        colour,
                        verbose: args.verbose,
                    };
                    print!("{}", render::status(&observed, style));
                }
            }
        }
        Command::Promote(args) => {
            promote::run(
                &kube,
                promote::PromoteArgs {
                    cluster: &args.cluster,
                    instance: &args.instance,
                    wait: !args.wait.no_wait,
                    timeout: Duration::from_secs(args.wait.timeout),
                    force: args.force,
                },
            )
            .await?
        }
        Command::Fence(FenceCommand::On(args)) => {
            fence::run(&kube, &args.cluster, &args.instance, true, args.wait.wait()).await?
        }
        Command::Fence(FenceCommand::Off(args)) => {
            fence::run(&kube, &args.cluster, &args.instance, false, args.wait.wait()).await?
        }
        Command::Restart(args) => match &args.instance {
            Some(instance) => restart::instance(&kube, &args.cluster, instance, args.wait.wait()).await?,
            None => restart::cluster(&kube, &args.cluster, args.wait.wait()).await?,
        },
        Command::Reload(args) => reload::run(&kube, &args.cluster, args.wait.wait()).await?,
        Command::Cli(args) => {
            cli::run(
                &kube,
                &cli.kube,
                cli::CliArgs {
                    cluster: &args.cluster,
                    instance: args.instance.as_deref(),
                    local: args.local,
                    cli_binary: args.cli_binary,
                    args: &args.args,
                },
            )
            .await?
        }
        Command::Backup(args) => {
            let backup = backup::run(
                &kube,
                backup::BackupArgs {
                    cluster: &args.cluster,
                    name: args.backup_name,
                    target: args.target.map(|t| match t {
                        Target::PreferReplica => BackupTarget::PreferReplica,
                        Target::Primary => BackupTarget::Primary,
                    }),
                    wait: args.wait.wait(),
                },
            )
            .await?;
            if let Some(format) = args.output.output {
                print_as(&backup, format)?;
            } else {
                println!("{}", kube::ResourceExt::name_any(&backup));
            }
        }
        Command::Report(ReportCommand::Cluster { cluster, file }) => {
            let path = report::cluster(&kube, &cluster, file).await?;
            println!("{}", report::describe(&path));
        }
        Command::Version => version(&kube).await,
        Command::Completion { .. } | Command::Install(_) => unreachable!("handled before connecting"),
    }
    Ok(())
}

async fn version(kube: &connect::Kube) {
    println!("kubectl-cnredis {}", env!("CARGO_PKG_VERSION"));
    match observe::operator(&kube.client).await {
        view::OperatorState::Pods(pods) if pods.is_empty() => println!("operator: no operator pod found"),
        view::OperatorState::Pods(pods) => {
            for pod in pods {
                println!(
                    "operator: {}/{} {} ({})",
                    pod.namespace,
                    pod.name,
                    pod.image,
                    if pod.ready { "ready" } else { "not ready" }
                );
            }
        }
        view::OperatorState::Unknown(why) => println!("operator: unknown ({why})"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
