//! One running pod: its supervising task (init containers in order, then all containers), the reported
//! [`PodState`], graceful stop, and the chaos hooks of [`PodHandle`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use nix::sys::signal::Signal;
use tokio::sync::{OnceCell, watch};
use tokio::time::Instant;

use super::container::run_container;
use super::host::Tools;
use super::layout::{PodDir, SandboxRecord};
use super::plan::{ContainerPlan, ContainerState, PodPlan, PodState, ProcessState};
use super::probe::{self, ActionTarget};
use super::{network, procs, sandbox};

/// After SIGKILL, how long the container processes get to be reaped before the sandbox is swept.
const REAP_PATIENCE: Duration = Duration::from_secs(5);
/// Upstream gives a preStop hook that used up the grace period this much longer before SIGKILL.
const PRE_STOP_OVERRUN_GRACE: Duration = Duration::from_secs(2);

/// An init container or a container, by position in the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContainerRef {
    pub init: bool,
    pub index: usize,
}

/// A started container process: the shim (our child) and, once seen, the container's PID 1.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    pub shim: u32,
    pub pid1: Option<u32>,
}

/// What stop() and the container tasks agree on under one lock: no run starts once `stopping` is set.
#[derive(Debug, Default)]
pub struct Control {
    pub stopping: bool,
    pub runs: HashMap<ContainerRef, Run>,
}

pub struct Pod {
    pub plan: PodPlan,
    pub dir: PodDir,
    pub sandbox: SandboxRecord,
    pub tools: Tools,
    pub init_program: PathBuf,
    pub backoff: (Duration, Duration),
    pub state: watch::Sender<PodState>,
    /// Wakes waiting tasks (back-off, image retries, probes) when stop begins.
    pub stopping: watch::Sender<bool>,
    pub control: Mutex<Control>,
    /// Set when the supervising task has ended: no container runs or will run.
    pub done: watch::Sender<bool>,
    stopped: OnceCell<Result<(), String>>,
}

impl Pod {
    pub fn new(
        plan: PodPlan,
        dir: PodDir,
        sandbox: SandboxRecord,
        tools: Tools,
        init_program: PathBuf,
        backoff: (Duration, Duration),
    ) -> Self {
        let initial = initial_state(&plan);
        Self {
            plan,
            dir,
            sandbox,
            tools,
            init_program,
            backoff,
            state: watch::channel(initial).0,
            stopping: watch::channel(false).0,
            control: Mutex::new(Control::default()),
            done: watch::channel(false).0,
            stopped: OnceCell::new(),
        }
    }

    pub fn container(&self, c: ContainerRef) -> &ContainerPlan {
        if c.init {
            &self.plan.init_containers[c.index]
        } else {
            &self.plan.containers[c.index]
        }
    }

    pub fn find(&self, name: &str) -> Option<ContainerRef> {
        let main = self
            .plan
            .containers
            .iter()
            .position(|c| c.name == name)
            .map(|index| ContainerRef { init: false, index });
        main.or_else(|| {
            self.plan
                .init_containers
                .iter()
                .position(|c| c.name == name)
                .map(|index| ContainerRef { init: true, index })
        })
    }

    pub fn control(&self) -> MutexGuard<'_, Control> {
        // A panicking holder leaves the map consistent (every critical section is a single insert,
        // remove or read), so poisoning is not a reason to stop.
        self.control
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies `change` to one container's reported state; watchers are woken only by real changes.
    pub fn update(&self, c: ContainerRef, change: impl FnOnce(&mut ContainerState)) {
        self.state.send_if_modified(|state| {
            let list = if c.init {
                &mut state.init_containers
            } else {
                &mut state.containers
            };
            let Some(entry) = list.get_mut(c.index) else {
                return false;
            };
            let before = entry.clone();
            change(entry);
            *entry != before
        });
    }

    pub fn current(&self, c: ContainerRef) -> Option<ContainerState> {
        let state = self.state.borrow();
        let list = if c.init {
            &state.init_containers
        } else {
            &state.containers
        };
        list.get(c.index).cloned()
    }

    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Resolves once stop has begun.
    pub async fn stop_requested(&self) {
        let mut rx = self.stopping.subscribe();
        let _ = rx.wait_for(|stopping| *stopping).await;
    }

    /// The host PID of a running container's PID 1, found (and remembered) as the shim's child.
    pub fn pid1(&self, c: ContainerRef) -> Option<u32> {
        let mut control = self.control();
        let run = control.runs.get_mut(&c)?;
        if run.pid1.is_none() {
            run.pid1 = procs::children(run.shim).first().copied();
        }
        run.pid1
    }

    pub fn action_target(&self, c: ContainerRef) -> ActionTarget {
        let plan = self.container(c);
        ActionTarget {
            pid1: self.pid1(c),
            ip: self.plan.ip,
            env: plan.env.clone(),
            user: plan.run_as_user,
            group: plan.run_as_group,
            nsenter: self.tools.nsenter.clone(),
            curl: self.tools.curl.clone(),
        }
    }

    fn running(&self) -> Vec<ContainerRef> {
        self.control().runs.keys().copied().collect()
    }

    fn signal_running(&self, sig: Signal) {
        for c in self.running() {
            if let Some(pid) = self.pid1(c)
                && let Err(e) = procs::signal(pid, sig)
            {
                tracing::warn!(pod = %self.plan.uid, container = %self.container(c).name, error = %e, "signalling a container");
            }
        }
    }

    async fn wait_done(&self, until: Instant) -> bool {
        let mut done = self.done.subscribe();
        tokio::time::timeout_at(until, done.wait_for(|d| *d))
            .await
            .is_ok()
    }
}

fn initial_state(plan: &PodPlan) -> PodState {
    let waiting = |name: &str, reason: &str| ContainerState {
        name: name.to_owned(),
        state: ProcessState::Waiting {
            reason: reason.to_owned(),
            message: None,
        },
        last_termination: None,
        restart_count: 0,
        started: false,
        ready: false,
        container_id: None,
    };
    let main_reason = if plan.init_containers.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    PodState {
        init_containers: plan
            .init_containers
            .iter()
            .map(|c| waiting(&c.name, "PodInitializing"))
            .collect(),
        containers: plan
            .containers
            .iter()
            .map(|c| waiting(&c.name, main_reason))
            .collect(),
        initialized: plan.init_containers.is_empty(),
        finished: false,
    }
}

/// The pod's supervising task.
pub async fn supervise(pod: Arc<Pod>) {
    let mut initialized = true;
    for index in 0..pod.plan.init_containers.len() {
        let outcome = run_container(pod.clone(), ContainerRef { init: true, index }).await;
        if outcome.is_none_or(|t| t.exit_code != 0) {
            initialized = false;
            break;
        }
    }
    if initialized && !pod.is_stopping() {
        pod.state.send_modify(|s| {
            s.initialized = true;
            for c in &mut s.containers {
                if matches!(&c.state, ProcessState::Waiting { reason, .. } if reason == "PodInitializing") {
                    c.state = ProcessState::Waiting {
                        reason: "ContainerCreating".into(),
                        message: None,
                    };
                }
            }
        });
        let tasks: Vec<_> = (0..pod.plan.containers.len())
            .map(|index| tokio::spawn(run_container(pod.clone(), ContainerRef { init: false, index })))
            .collect();
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(pod = %pod.plan.uid, error = %e, "container task failed");
            }
        }
    }
    pod.state.send_modify(|s| s.finished = true);
    pod.done.send_replace(true);
}

/// A running pod. Cheap to clone; all clones drive the same pod.
#[derive(Clone)]
pub struct PodHandle {
    pod: Arc<Pod>,
}

impl PodHandle {
    pub(super) fn new(pod: Arc<Pod>) -> Self {
        Self { pod }
    }

    pub fn uid(&self) -> &str {
        &self.pod.plan.uid
    }

    /// The pod's state, updated on every change.
    pub fn state(&self) -> watch::Receiver<PodState> {
        self.pod.state.subscribe()
    }

    /// The pod's network namespace (`ip netns`) name.
    #[allow(dead_code)] // used by tests/runtime.rs
    pub fn netns_name(&self) -> &str {
        &self.pod.sandbox.netns
    }

    /// The host end of the pod's veth pair.
    #[allow(dead_code)] // used by tests/runtime.rs
    pub fn host_veth_name(&self) -> &str {
        &self.pod.sandbox.host_veth
    }

    /// Whether a stop has completed.
    pub fn is_stopped(&self) -> bool {
        self.pod.stopped.initialized()
    }

    /// Graceful stop: preStop hooks, SIGTERM to every container, SIGKILL after `grace`, terminations
    /// recorded, then the sandbox torn down. Idempotent; concurrent callers share one stop.
    pub async fn stop(&self, grace: Duration) -> anyhow::Result<()> {
        let pod = self.pod.clone();
        let result = self
            .pod
            .stopped
            .get_or_init(|| async move { stop(&pod, grace).await.map_err(|e| format!("{e:#}")) })
            .await;
        result.clone().map_err(|e| anyhow!(e))
    }

    /// SIGKILLs a container's PID 1; its restart policy then applies.
    pub fn kill_container(&self, name: &str) -> anyhow::Result<()> {
        let c = self
            .pod
            .find(name)
            .with_context(|| format!("no container {name:?} in pod {}", self.pod.plan.uid))?;
        let pid = self
            .pod
            .pid1(c)
            .with_context(|| format!("container {name:?} is not running"))?;
        procs::signal(pid, Signal::SIGKILL)
    }

    /// SIGSTOPs every process of every container.
    pub fn freeze(&self) -> anyhow::Result<()> {
        self.signal_all(Signal::SIGSTOP)
    }

    /// SIGCONTs every process of every container.
    pub fn thaw(&self) -> anyhow::Result<()> {
        self.signal_all(Signal::SIGCONT)
    }

    fn signal_all(&self, sig: Signal) -> anyhow::Result<()> {
        let namespaces: Vec<u64> = self
            .pod
            .running()
            .into_iter()
            .filter_map(|c| self.pod.pid1(c))
            .filter_map(|pid| procs::ns_inode(pid, "pid"))
            .collect();
        if namespaces.is_empty() {
            bail!("pod {} has no running container", self.pod.plan.uid);
        }
        for pid in procs::pids_in_ns("pid", &namespaces) {
            procs::signal(pid, sig)?;
        }
        Ok(())
    }

    /// Blocks all traffic to and from the pod (the host veth goes down).
    pub fn cut_network(&self) -> anyhow::Result<()> {
        network::cut(&self.pod.tools, &self.pod.sandbox)
    }

    pub fn restore_network(&self) -> anyhow::Result<()> {
        network::restore(&self.pod.tools, &self.pod.sandbox)
    }

    /// The log file of a container's current (or previous) run, if it exists.
    pub fn log_path(&self, container: &str, previous: bool) -> Option<PathBuf> {
        let c = self.pod.find(container)?;
        let restarts = self.pod.current(c)?.restart_count;
        let run = if previous {
            restarts.checked_sub(1)?
        } else {
            restarts
        };
        let path = self.pod.dir.log_file(container, run);
        path.exists().then_some(path)
    }

    /// The host PID of a running container's PID 1.
    #[allow(dead_code)] // used by tests/runtime.rs
    pub fn container_pid(&self, name: &str) -> Option<u32> {
        self.pod.pid1(self.pod.find(name)?)
    }

    /// A command that runs `argv` inside a running container (its namespaces, root, user and
    /// environment), for `kubectl exec`; the caller sets up stdio and spawns it.
    #[allow(dead_code)] // used by tests/runtime.rs
    pub fn exec_command(&self, container: &str, argv: &[String]) -> anyhow::Result<tokio::process::Command> {
        let c = self
            .pod
            .find(container)
            .with_context(|| format!("no container {container:?}"))?;
        probe::exec_command(&self.pod.action_target(c), argv)
            .map_err(|e| anyhow!("container {container:?}: {e}"))
    }
}

async fn stop(pod: &Arc<Pod>, grace: Duration) -> anyhow::Result<()> {
    let uid = &pod.plan.uid;
    let deadline = Instant::now() + grace;
    tracing::info!(pod = %uid, ?grace, "stopping pod");
    pod.control().stopping = true;
    pod.stopping.send_replace(true);

    let hooks: Vec<_> = pod
        .running()
        .into_iter()
        .filter(|c| !c.init)
        .filter_map(|c| pod.container(c).pre_stop.clone().map(|action| (c, action)))
        .map(|(c, action)| {
            let pod = pod.clone();
            async move {
                let target = pod.action_target(c);
                let budget = deadline.saturating_duration_since(Instant::now());
                if let Err(e) = probe::run_action(&action, &target, budget).await {
                    tracing::warn!(pod = %pod.plan.uid, container = %pod.container(c).name, error = %e, "preStop hook failed");
                }
            }
        })
        .collect();
    let mut hooks_overran = false;
    if !hooks.is_empty() {
        futures::future::join_all(hooks).await;
        hooks_overran = Instant::now() >= deadline;
    }
    let term_deadline = if hooks_overran {
        Instant::now() + PRE_STOP_OVERRUN_GRACE
    } else {
        deadline
    };

    pod.signal_running(Signal::SIGTERM);
    if !pod.wait_done(term_deadline).await {
        tracing::info!(pod = %uid, "grace period over, sending SIGKILL");
        pod.signal_running(Signal::SIGKILL);
        if !pod.wait_done(Instant::now() + REAP_PATIENCE).await {
            // A shim that lost its PID 1 some other way: the sweep below ends it.
            tracing::warn!(pod = %uid, "containers still reported running after SIGKILL");
        }
    }
    sandbox::teardown(&pod.tools, &pod.dir, &pod.sandbox).await?;
    pod.state.send_modify(|s| s.finished = true);
    tracing::info!(pod = %uid, "pod stopped");
    Ok(())
}
