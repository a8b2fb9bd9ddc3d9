//! What the runtime is asked to run: a Pod reduced to host paths, argv and addresses. The Kubernetes side
//! (`crate::pods`) builds a `PodPlan` from a Pod and its referenced objects; the runtime never talks to
//! the API server.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

/// One pod, ready to run.
#[derive(Clone, Debug, PartialEq)]
pub struct PodPlan {
    /// `metadata.uid`; names the sandbox and its state directory.
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// Written to the pod's `/etc/hostname`.
    pub hostname: String,
    /// The pod's IP, from its node's podCIDR.
    pub ip: Ipv4Addr,
    /// Extra `/etc/hosts` lines (`ip name...`), beside `127.0.0.1 localhost` and the pod's own name.
    pub hosts: Vec<(Ipv4Addr, Vec<String>)>,
    /// Run in order, each to a successful exit, before any container starts.
    pub init_containers: Vec<ContainerPlan>,
    pub containers: Vec<ContainerPlan>,
    pub restart_policy: RestartPolicy,
    /// `terminationGracePeriodSeconds`: SIGTERM, then SIGKILL after this long.
    pub termination_grace: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// One container: a process tree in the pod's network namespace and its own mount and PID namespaces.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerPlan {
    pub name: String,
    /// Image tree whose `usr/` is layered over the host's `/usr` (see e2e/README.md).
    pub image_root: PathBuf,
    /// The image name as the pod spec gives it (reported in status).
    pub image: String,
    /// `command` + `args` after `$(VAR)` expansion; `argv[0]` is looked up in `PATH` inside the container.
    pub argv: Vec<String>,
    /// The complete environment of the process, `PATH` included.
    pub env: Vec<(String, String)>,
    pub working_dir: Option<PathBuf>,
    /// Volume mounts, in the order the pod spec lists them.
    pub mounts: Vec<MountPlan>,
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    /// `readOnlyRootFilesystem`: the overlaid `/usr` and the root are read-only; volumes keep their mode.
    pub read_only_root: bool,
    pub startup_probe: Option<ProbePlan>,
    pub liveness_probe: Option<ProbePlan>,
    pub readiness_probe: Option<ProbePlan>,
    /// `lifecycle.preStop`, run before SIGTERM on deletion.
    pub pre_stop: Option<Action>,
}

/// A host directory (or file) mounted into a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountPlan {
    pub host_path: PathBuf,
    pub container_path: PathBuf,
    pub read_only: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProbePlan {
    pub action: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

/// What a probe or a lifecycle hook does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run argv inside the container's namespaces; exit 0 is success.
    Exec(Vec<String>),
    /// GET `http(s)://<pod-ip>:<port><path>` from the host; 200–399 is success.
    HttpGet { port: u16, path: String, https: bool },
    /// Connect to `<pod-ip>:<port>` from the host.
    TcpSocket { port: u16 },
}

/// What the runtime reports about one container, mapped 1:1 onto `ContainerStatus`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerState {
    pub name: String,
    pub state: ProcessState,
    /// The previous run's end, for `lastState`.
    pub last_termination: Option<Termination>,
    pub restart_count: u32,
    /// Passed its startup probe (or has none) and is running.
    pub started: bool,
    /// Passes its readiness probe (or has none) and is running.
    pub ready: bool,
    /// A stable ID for this run, e.g. `cnredis://<uid>/<name>/<restart>`.
    pub container_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessState {
    /// Not running: e.g. `ContainerCreating`, `PodInitializing`, `CrashLoopBackOff`, `ErrImagePull`.
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: std::time::SystemTime,
    },
    Terminated(Termination),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Termination {
    pub exit_code: i32,
    /// Set when a signal ended it.
    pub signal: Option<i32>,
    /// `Completed`, `Error`, `OOMKilled`-like reasons.
    pub reason: String,
    /// Why it ended, when known (e.g. the exec error of a `StartError`).
    pub message: Option<String>,
    pub started_at: Option<std::time::SystemTime>,
    pub finished_at: std::time::SystemTime,
}

/// Whole-pod view the Kubernetes side turns into `PodStatus`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodState {
    pub init_containers: Vec<ContainerState>,
    pub containers: Vec<ContainerState>,
    /// All init containers completed.
    pub initialized: bool,
    /// Every container has exited and none will be restarted.
    pub finished: bool,
}
