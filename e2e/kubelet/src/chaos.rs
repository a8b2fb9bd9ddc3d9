//! Chaos hooks for end-to-end tests, served on a Unix socket in the node's state directory (reachable
//! from the host only, never from pods): kill a container, freeze/thaw a pod, cut/restore its network,
//! stop/start the whole node. One JSON request per connection, one JSON reply.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::pods::Kubelet;

#[derive(Clone, Debug, Serialize, Deserialize, clap::Subcommand)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// SIGKILL a container's process; its restart policy then applies.
    KillContainer {
        namespace: String,
        pod: String,
        container: String,
    },
    /// SIGSTOP every process of a pod.
    Freeze { namespace: String, pod: String },
    /// SIGCONT every process of a pod.
    Thaw { namespace: String, pod: String },
    /// Drop all traffic to and from a pod.
    CutNetwork { namespace: String, pod: String },
    /// Undo `cut-network`.
    RestoreNetwork { namespace: String, pod: String },
    /// The node goes down: heartbeats and status updates stop, and its pods freeze, die, or (with
    /// `--mode kubelet`: the kubelet alone is gone) run on.
    StopNode {
        #[arg(long, value_enum, default_value_t = StopMode::Kill)]
        mode: StopMode,
    },
    /// The node comes back: frozen pods resume, killed pods run again.
    StartNode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum StopMode {
    Freeze,
    Kill,
    /// Only the kubelet stops (crashed, or cut from the API server): its pods run on, unsupervised, and
    /// a pod deleted meanwhile is stopped only when the node comes back.
    Kubelet,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub message: String,
}

/// Serves chaos requests until the process exits.
pub async fn serve(socket: &Path, kubelet: Arc<Kubelet>) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).with_context(|| format!("binding {}", socket.display()))?;
    let stopped_as: Arc<Mutex<Option<StopMode>>> = Arc::default();
    loop {
        let (stream, _) = listener.accept().await?;
        let kubelet = Arc::clone(&kubelet);
        let stopped_as = Arc::clone(&stopped_as);
        tokio::spawn(async move {
            if let Err(err) = answer(stream, kubelet, stopped_as).await {
                tracing::warn!("chaos request failed: {err:#}");
            }
        });
    }
}

async fn answer(
    stream: UnixStream,
    kubelet: Arc<Kubelet>,
    stopped_as: Arc<Mutex<Option<StopMode>>>,
) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let request: Request = serde_json::from_str(&line).context("parsing the request")?;
    tracing::info!(?request, "chaos");
    let reply = match apply(&request, &kubelet, &stopped_as).await {
        Ok(message) => Reply { ok: true, message },
        Err(err) => Reply {
            ok: false,
            message: format!("{err:#}"),
        },
    };
    write
        .write_all(format!("{}\n", serde_json::to_string(&reply)?).as_bytes())
        .await?;
    Ok(())
}

async fn apply(
    request: &Request,
    kubelet: &Arc<Kubelet>,
    stopped_as: &Mutex<Option<StopMode>>,
) -> anyhow::Result<String> {
    let pod = |namespace: &str, name: &str| {
        kubelet
            .handle(namespace, name)
            .ok_or_else(|| anyhow!("pod {namespace}/{name} is not running on {}", kubelet.node.name))
    };
    match request {
        Request::KillContainer {
            namespace,
            pod: name,
            container,
        } => pod(namespace, name)?.kill_container(container)?,
        Request::Freeze { namespace, pod: name } => pod(namespace, name)?.freeze()?,
        Request::Thaw { namespace, pod: name } => pod(namespace, name)?.thaw()?,
        Request::CutNetwork { namespace, pod: name } => pod(namespace, name)?.cut_network()?,
        Request::RestoreNetwork { namespace, pod: name } => pod(namespace, name)?.restore_network()?,
        Request::StopNode { mode } => {
            let already = stopped_as.lock().unwrap().replace(*mode);
            if already.is_some() {
                return Ok(format!("node {} is already down", kubelet.node.name));
            }
            kubelet.up.send_replace(false);
            match mode {
                StopMode::Freeze => each_running_pod(kubelet, |h| h.freeze()),
                StopMode::Kill => kubelet.kill_all().await,
                StopMode::Kubelet => {}
            }
        }
        Request::StartNode => {
            let Some(mode) = stopped_as.lock().unwrap().take() else {
                return Ok(format!("node {} is already up", kubelet.node.name));
            };
            if mode == StopMode::Freeze {
                each_running_pod(kubelet, |h| h.thaw());
            }
            kubelet.up.send_replace(true);
            kubelet.resync().await?;
        }
    }
    Ok(format!("{request:?} done on {}", kubelet.node.name))
}

/// Applies a node-wide action to every pod that still has processes; pods whose containers have all
/// exited (completed jobs) have nothing to freeze.
fn each_running_pod(kubelet: &Kubelet, action: impl Fn(&crate::runtime::PodHandle) -> anyhow::Result<()>) {
    for handle in kubelet.handles().iter().filter(|h| !h.is_stopped()) {
        if let Err(err) = action(handle) {
            tracing::info!(pod = handle.uid(), "skipped: {err:#}");
        }
    }
}

/// Sends one request to a kubelet's chaos socket.
pub async fn send(socket: &Path, request: &Request) -> anyhow::Result<Reply> {
    let stream = UnixStream::connect(socket)
        .await
        .with_context(|| format!("connecting to {}", socket.display()))?;
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("{}\n", serde_json::to_string(request)?).as_bytes())
        .await?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    Ok(serde_json::from_str(&line)?)
}
