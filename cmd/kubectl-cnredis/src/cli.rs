//! `cli CLUSTER [INSTANCE] [-- ARGS]`: a `valkey-cli` (or `redis-cli`) session on the primary or on one
//! instance, the way `kubectl cnpg psql` works.
//!
//! Two ways in:
//! - **exec** (default): `kubectl exec -it POD -c server -- /controller/cnredis instance cli ARGS`. In the
//!   pod, the instance manager's binary finds the engine's cli beside the server, connects through the
//!   server's unix socket and authenticates with the mounted password file: nothing secret crosses the
//!   command line, and TLS is not involved. Needs the kubelet's exec (every real cluster has it; the
//!   local e2e cluster's kubelet has not).
//! - **local** (`--local`): the cli on this machine connects to the pod's IP, authenticated with the
//!   password of `<cluster>-app` (passed in `REDISCLI_AUTH`, never as an argument). Needs a route to the
//!   pod network: the local e2e cluster, a node, a VPN into the cluster network.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cnredis_api::RedisCluster;
use cnredis_api::names::{REDIS_PORT, app_secret};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::{Api, ResourceExt};

use crate::connect::{Kube, KubeArgs};
use crate::observe;

/// The container that runs the server and its instance manager.
pub const SERVER_CONTAINER: &str = "server";
/// Where the init container puts the cnredis binary in every instance pod.
pub const IN_POD_BINARY: &str = "/controller/cnredis";

pub struct CliArgs<'a> {
    pub cluster: &'a str,
    pub instance: Option<&'a str>,
    pub local: bool,
    /// The cli binary for `--local` (default: `valkey-cli`, else `redis-cli`, from `PATH`).
    pub cli_binary: Option<PathBuf>,
    /// Arguments for the cli (a command to run once, or nothing for an interactive session).
    pub args: &'a [String],
}

/// Replaces this process with the cli session (returns only when it cannot start it).
pub async fn run(kube: &Kube, flags: &KubeArgs, args: CliArgs<'_>) -> anyhow::Result<()> {
    let cluster = observe::cluster(kube, args.cluster).await?;
    let pods = observe::pods(kube, &cluster).await?;
    let pod = choose_pod(&cluster, &pods, args.instance)?;
    let mut command = if args.local {
        let password = app_password(kube, &cluster).await?;
        let ip = pod_ip(pod)?;
        let binary = match args.cli_binary {
            Some(binary) => binary,
            None => find_cli().ok_or_else(|| {
                anyhow::anyhow!(
                    "--local needs valkey-cli or redis-cli on this machine (in PATH, or --cli-binary)"
                )
            })?,
        };
        if cluster.spec.tls.is_some() {
            anyhow::bail!(
                "{} speaks TLS: --local does not set up TLS yet; use the default (kubectl exec), which \
                 connects through the server's unix socket",
                args.cluster
            );
        }
        local_command(&binary, ip, args.args, password.as_deref())
    } else {
        let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
        let mut command = Command::new(std::env::var_os("KUBECTL").unwrap_or_else(|| "kubectl".into()));
        command.args(exec_args(
            flags,
            &kube.namespace,
            &pod.name_any(),
            interactive,
            args.args,
        ));
        command
    };
    let error = command.exec();
    anyhow::bail!("cannot run {:?}: {error}", command.get_program())
}

/// The instance the session opens on: INSTANCE (one of the cluster's pods), or the current primary.
fn choose_pod<'a>(
    cluster: &RedisCluster,
    pods: &'a [Pod],
    instance: Option<&str>,
) -> anyhow::Result<&'a Pod> {
    let name = cluster.name_any();
    let wanted = match instance {
        Some(instance) => instance.to_string(),
        None => cluster
            .status
            .as_ref()
            .and_then(|s| s.current_primary.clone())
            .ok_or_else(|| anyhow::anyhow!("{name} has no primary yet; name an instance"))?,
    };
    pods.iter().find(|p| p.name_any() == wanted).ok_or_else(|| {
        let names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
        anyhow::anyhow!(
            "{wanted} is not a running pod of {name} (pods: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )
    })
}

fn pod_ip(pod: &Pod) -> anyhow::Result<&str> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .filter(|ip| !ip.is_empty())
        .ok_or_else(|| anyhow::anyhow!("{} has no IP yet", pod.name_any()))
}

/// The password applications use (`<cluster>-app`, key `password`); `None` when auth is disabled.
async fn app_password(kube: &Kube, cluster: &RedisCluster) -> anyhow::Result<Option<String>> {
    if !cluster.spec.auth.enabled {
        return Ok(None);
    }
    let name = app_secret(&cluster.name_any());
    let secrets: Api<Secret> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let secret = secrets
        .get(&name)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read Secret {name} (the password): {e}"))?;
    let password = secret
        .data
        .as_ref()
        .and_then(|d| d.get("password"))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .ok_or_else(|| anyhow::anyhow!("Secret {name} has no key \"password\""))?;
    Ok(Some(password))
}

fn find_cli() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["valkey-cli", "redis-cli"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `kubectl [flags] exec -i [-t] POD -c server -- /controller/cnredis instance cli ARGS`.
fn exec_args(
    flags: &KubeArgs,
    namespace: &str,
    pod: &str,
    interactive: bool,
    args: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(kubeconfig) = &flags.kubeconfig {
        out.push(format!("--kubeconfig={}", kubeconfig.display()));
    }
    if let Some(context) = &flags.context {
        out.push(format!("--context={context}"));
    }
    out.push(format!("--namespace={namespace}"));
    out.push("exec".to_string());
    out.push("-i".to_string());
    if interactive {
        out.push("-t".to_string());
    }
    out.extend([
        pod.to_string(),
        "-c".to_string(),
        SERVER_CONTAINER.to_string(),
        "--".to_string(),
    ]);
    out.extend([
        IN_POD_BINARY.to_string(),
        "instance".to_string(),
        "cli".to_string(),
        // The user's words go to valkey-cli, even those that look like options of `cnredis instance cli`.
        "--".to_string(),
    ]);
    out.extend(args.iter().cloned());
    out
}

/// The cli on this machine, to `ip`, with the password in its environment (an argument would be visible
/// to every process of the machine).
fn local_command(binary: &Path, ip: &str, args: &[String], password: Option<&str>) -> Command {
    let mut command = Command::new(binary);
    command.args(local_args(ip, args));
    if let Some(password) = password {
        command.env("REDISCLI_AUTH", password);
    }
    command
}

/// `-h IP -p 6379 ARGS` for a cli on this machine.
fn local_args(ip: &str, args: &[String]) -> Vec<String> {
    let mut out = vec![
        "-h".to_string(),
        ip.to_string(),
        "-p".to_string(),
        REDIS_PORT.to_string(),
    ];
    out.extend(args.iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnredis_api::{RedisClusterSpec, RedisClusterStatus};
    use k8s_openapi::api::core::v1::PodStatus;
    use kube::api::ObjectMeta;

    fn pod(name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                pod_ip: Some("10.244.1.7".to_string()),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    fn cluster(primary: Option<&str>) -> RedisCluster {
        let mut cluster = RedisCluster::new("sessions", RedisClusterSpec::with_defaults());
        cluster.status = Some(RedisClusterStatus {
            current_primary: primary.map(str::to_string),
            ..RedisClusterStatus::default()
        });
        cluster
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_session_opens_on_the_primary_unless_an_instance_is_named() {
        let pods = [pod("sessions-1"), pod("sessions-2")];
        let c = cluster(Some("sessions-2"));
        assert_eq!(choose_pod(&c, &pods, None).unwrap().name_any(), "sessions-2");
        assert_eq!(
            choose_pod(&c, &pods, Some("sessions-1")).unwrap().name_any(),
            "sessions-1"
        );
    }

    #[test]
    fn an_unknown_instance_or_no_primary_is_refused_with_the_pods_there_are() {
        let pods = [pod("sessions-1")];
        let error = choose_pod(&cluster(Some("sessions-1")), &pods, Some("sessions-9")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "sessions-9 is not a running pod of sessions (pods: sessions-1)"
        );
        let error = choose_pod(&cluster(None), &pods, None).unwrap_err();
        assert_eq!(error.to_string(), "sessions has no primary yet; name an instance");
    }

    #[test]
    fn exec_passes_the_kubectl_flags_and_runs_the_in_pod_cli() {
        let flags = KubeArgs {
            kubeconfig: Some("/tmp/k".into()),
            context: Some("prod".to_string()),
            namespace: None,
        };
        let args = exec_args(&flags, "shop", "sessions-2", false, &strings(&["GET", "k"]));
        assert_eq!(
            args,
            strings(&[
                "--kubeconfig=/tmp/k",
                "--context=prod",
                "--namespace=shop",
                "exec",
                "-i",
                "sessions-2",
                "-c",
                "server",
                "--",
                "/controller/cnredis",
                "instance",
                "cli",
                "--",
                "GET",
                "k"
            ])
        );
        // Without flags, only the namespace; on a terminal, a tty too.
        let plain = exec_args(&KubeArgs::default(), "shop", "sessions-2", false, &[]);
        assert_eq!(plain[..3], strings(&["--namespace=shop", "exec", "-i"]));
        let mut with_tty = plain.clone();
        with_tty.insert(3, "-t".to_string());
        assert_eq!(
            exec_args(&KubeArgs::default(), "shop", "sessions-2", true, &[]),
            with_tty
        );
    }

    #[test]
    fn local_connects_to_the_pod_ip_and_never_puts_the_password_in_the_arguments() {
        let command = local_command(
            Path::new("valkey-cli"),
            "10.244.1.7",
            &strings(&["PING"]),
            Some("s3cret"),
        );
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, strings(&["-h", "10.244.1.7", "-p", "6379", "PING"]));
        let envs: Vec<(String, String)> = command
            .get_envs()
            .filter_map(|(k, v)| {
                Some((
                    k.to_string_lossy().into_owned(),
                    v?.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        assert_eq!(envs, [("REDISCLI_AUTH".to_string(), "s3cret".to_string())]);
    }
}
