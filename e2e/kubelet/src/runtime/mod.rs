//! The Linux side of the process kubelet: sandboxes (network namespace, veth, routes), container
//! processes (mount + PID namespaces over a constructed root), restart policy, probes, logs, and the
//! chaos hooks. It knows nothing of the API server: it runs a [`plan::PodPlan`] and reports
//! [`plan::PodState`].
//!
//! Host layout under the state directory: `pods/<uid>/` holds `sandbox.json` (the netns and veth, for
//! cleanup after a kubelet restart), `hosts`, `hostname`, `containers/<name>/` (scratch: init spec,
//! exit status, root mount point, overlay upper layers) and `logs/<name>/<restart>.log`.

mod container;
mod cri_log;
mod host;
mod init;
mod layout;
mod network;
pub mod plan;
mod pod;
mod probe;
mod procs;
mod restart;
mod sandbox;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};

pub use init::container_init;
pub use layout::hosts_file_content;
pub use pod::PodHandle;

use host::Tools;
use layout::PodDir;
use plan::PodPlan;

/// Upstream's CrashLoopBackOff: 10 s, doubling, at most 5 min.
const DEFAULT_BACKOFF: (Duration, Duration) = (Duration::from_secs(10), Duration::from_secs(300));

/// Runs pods on this host.
pub struct Runtime {
    state_dir: PathBuf,
    init_program: PathBuf,
    tools: Tools,
    backoff: (Duration, Duration),
    pods: Mutex<HashMap<String, PodHandle>>,
}

impl Runtime {
    /// A runtime keeping pod state under `state_dir` (the node's kubelet directory) and starting
    /// containers through this executable's `container-init` subcommand.
    pub fn new(state_dir: PathBuf) -> anyhow::Result<Self> {
        let pods = state_dir.join("pods");
        std::fs::create_dir_all(&pods).with_context(|| format!("creating {}", pods.display()))?;
        let init_program = std::env::current_exe().context("locating this executable")?;
        Ok(Self {
            state_dir,
            init_program,
            tools: Tools::find()?,
            backoff: DEFAULT_BACKOFF,
            pods: Mutex::new(HashMap::new()),
        })
    }

    /// Starts containers through another executable's `container-init` (tests, whose own executable
    /// has no such subcommand).
    #[allow(dead_code)] // used by tests/runtime.rs
    pub fn with_init_program(mut self, program: PathBuf) -> Self {
        self.init_program = program;
        self
    }

    /// Overrides the CrashLoopBackOff delays.
    #[allow(dead_code)] // used by tests/runtime.rs
    pub fn with_crash_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = (initial, max);
        self
    }

    fn live_pods(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodHandle>> {
        self.pods.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets up the sandbox and starts the pod in a background task. Starting a pod that runs already
    /// returns its handle; a sandbox an earlier kubelet left for the same uid is removed first (its
    /// containers start afresh).
    pub async fn start(&self, plan: PodPlan) -> anyhow::Result<PodHandle> {
        validate(&plan)?;
        if let Some(running) = self.live_pods().get(&plan.uid).filter(|h| !h.is_stopped()) {
            return Ok(running.clone());
        }
        let dir = PodDir::new(&self.state_dir, &plan.uid);
        let record = sandbox::create(&self.tools, &dir, &plan).await?;
        tracing::info!(pod = %plan.uid, namespace = %plan.namespace, name = %plan.name, ip = %plan.ip, netns = %record.netns, "sandbox ready");
        let pod = Arc::new(pod::Pod::new(
            plan,
            dir,
            record,
            self.tools.clone(),
            self.init_program.clone(),
            self.backoff,
        ));
        tokio::spawn(pod::supervise(pod.clone()));
        let handle = PodHandle::new(pod);
        let mut pods = self.live_pods();
        pods.retain(|_, h| !h.is_stopped());
        pods.insert(handle.uid().to_owned(), handle.clone());
        Ok(handle)
    }

    /// Removes the sandboxes (processes, mounts, network, runtime state; logs stay) of every pod under
    /// the state directory that is not in `keep`: those an earlier kubelet left, and any this one runs.
    pub async fn remove_orphans(&self, keep: &HashSet<String>) -> anyhow::Result<()> {
        let doomed: Vec<PodHandle> = self
            .live_pods()
            .values()
            .filter(|h| !keep.contains(h.uid()) && !h.is_stopped())
            .cloned()
            .collect();
        for handle in doomed {
            handle.stop(Duration::ZERO).await?;
        }
        let pods = self.state_dir.join("pods");
        let mut entries = tokio::fs::read_dir(&pods)
            .await
            .with_context(|| format!("listing {}", pods.display()))?;
        let mut failures = Vec::new();
        while let Some(entry) = entries.next_entry().await? {
            let Some(uid) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if keep.contains(&uid) || layout::validate_uid(&uid).is_err() {
                continue;
            }
            let dir = PodDir::new(&self.state_dir, &uid);
            let record = match dir.read_record() {
                Ok(Some(record)) => record,
                Ok(None) => continue,
                Err(e) => {
                    failures.push(format!("{uid}: {e:#}"));
                    continue;
                }
            };
            tracing::info!(pod = %uid, netns = %record.netns, "removing orphaned sandbox");
            if let Err(e) = sandbox::teardown(&self.tools, &dir, &record).await {
                failures.push(format!("{uid}: {e:#}"));
            }
        }
        if !failures.is_empty() {
            bail!("removing orphaned sandboxes: {}", failures.join("; "));
        }
        Ok(())
    }
}

fn validate(plan: &PodPlan) -> anyhow::Result<()> {
    layout::validate_uid(&plan.uid)?;
    let mut names = HashSet::new();
    for c in plan.init_containers.iter().chain(&plan.containers) {
        layout::validate_container_name(&c.name)?;
        if !names.insert(c.name.as_str()) {
            bail!("container name {:?} is used twice in pod {}", c.name, plan.uid);
        }
    }
    if plan.containers.is_empty() {
        bail!("pod {} has no containers", plan.uid);
    }
    Ok(())
}
