//! One container's life: start a run (shim -> PID 1 -> command, see [`super::init`]), report it
//! running, probe it, wait for its end, record the termination and restart it per policy with
//! CrashLoopBackOff.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use nix::sys::signal::Signal;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::init::{ExitRecord, InitMount, InitSpec, RunFiles};
use super::plan::{ContainerPlan, ProbePlan, ProcessState, Termination};
use super::pod::{ContainerRef, Pod, Run};
use super::probe::{self, Thresholds};
use super::restart::{CrashLoopBackoff, should_restart};
use super::{cri_log, procs};

/// How often a missing image tree is looked for again.
const IMAGE_RETRY: Duration = Duration::from_secs(10);
/// How long a new run may take to show its PID 1.
const PID1_PATIENCE: Duration = Duration::from_secs(5);
/// How long the log copy may lag behind the exit before the termination is reported anyway.
const LOG_DRAIN_PATIENCE: Duration = Duration::from_secs(2);
/// Upstream validation requires periods of at least a second; a zero period would spin.
const MIN_PROBE_PERIOD: Duration = Duration::from_millis(100);

/// A run that has been spawned.
struct Started {
    child: tokio::process::Child,
    files: RunFiles,
    started_at: SystemTime,
    since: Instant,
    log: tokio::task::JoinHandle<()>,
}

/// Runs a container until it ends for good (policy) or the pod stops; returns its last termination,
/// `None` if it never ran.
pub async fn run_container(pod: Arc<Pod>, c: ContainerRef) -> Option<Termination> {
    let plan = pod.container(c).clone();
    let mut backoff = CrashLoopBackoff::new(pod.backoff.0, pod.backoff.1);
    let mut last = None;
    loop {
        if pod.is_stopping() {
            return last;
        }
        if !plan.image_root.is_dir() {
            let message = format!(
                "image {:?} not found: no image tree at {}",
                plan.image,
                plan.image_root.display()
            );
            pod.update(c, |s| {
                s.state = ProcessState::Waiting {
                    reason: "ErrImagePull".into(),
                    message: Some(message),
                }
            });
            tokio::select! {
                () = pod.stop_requested() => return last,
                () = tokio::time::sleep(IMAGE_RETRY) => continue,
            }
        }
        let restart = pod.current(c).map_or(0, |s| s.restart_count);
        let term = match start(&pod, c, &plan, restart).await {
            Ok(Some(started)) => supervise_run(&pod, c, &plan, started, restart).await,
            Ok(None) => return last,
            Err(e) => {
                tracing::error!(pod = %pod.plan.uid, container = %plan.name, error = %format!("{e:#}"), "cannot start container");
                Termination {
                    exit_code: 128,
                    signal: None,
                    reason: "StartError".into(),
                    message: Some(format!("{e:#}")),
                    started_at: None,
                    finished_at: SystemTime::now(),
                }
            }
        };
        tracing::info!(pod = %pod.plan.uid, container = %plan.name, exit_code = term.exit_code, reason = %term.reason, "container exited");

        if pod.is_stopping() || !should_restart(pod.plan.restart_policy, c.init, term.exit_code) {
            let ready = c.init && term.exit_code == 0;
            pod.update(c, |s| {
                s.state = ProcessState::Terminated(term.clone());
                s.started = false;
                s.ready = ready;
            });
            return Some(term);
        }
        let delay = backoff.delay(Instant::now().into_std());
        pod.update(c, |s| {
            s.last_termination = Some(term.clone());
            s.started = false;
            s.ready = false;
            s.state = if delay.is_zero() {
                ProcessState::Terminated(term.clone())
            } else {
                ProcessState::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: Some(format!(
                        "back-off {}s restarting failed container={} pod={}_{}({})",
                        delay.as_secs(),
                        plan.name,
                        pod.plan.name,
                        pod.plan.namespace,
                        pod.plan.uid
                    )),
                }
            };
        });
        tokio::select! {
            () = pod.stop_requested() => {
                pod.update(c, |s| s.state = ProcessState::Terminated(term.clone()));
                return Some(term);
            }
            () = tokio::time::sleep(delay) => {}
        }
        backoff.restarted(Instant::now().into_std());
        pod.update(c, |s| s.restart_count += 1);
        last = Some(term);
    }
}

/// Prepares the scratch directory and spawns the shim; `None` if the pod began stopping.
async fn start(
    pod: &Arc<Pod>,
    c: ContainerRef,
    plan: &ContainerPlan,
    restart: u32,
) -> anyhow::Result<Option<Started>> {
    let files = RunFiles {
        dir: pod.dir.container_dir(&plan.name),
    };
    if tokio::fs::try_exists(&files.dir).await.unwrap_or(false) {
        tokio::fs::remove_dir_all(&files.dir)
            .await
            .with_context(|| format!("clearing {}", files.dir.display()))?;
    }
    for dir in [
        files.rootfs(),
        files.upper("usr"),
        files.work("usr"),
        files.upper("etc"),
        files.work("etc"),
    ] {
        tokio::fs::create_dir_all(&dir)
            .await
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let image_usr = plan.image_root.join("usr");
    let spec = InitSpec {
        netns: pod.sandbox.netns_path(),
        hostname: pod.plan.hostname.clone(),
        dir: files.dir.clone(),
        image_usr: image_usr.is_dir().then_some(image_usr),
        hosts_file: pod.dir.hosts_file(),
        hostname_file: pod.dir.hostname_file(),
        resolv_conf_file: pod.dir.resolv_conf_file(),
        mounts: plan
            .mounts
            .iter()
            .map(|m| InitMount {
                host_path: m.host_path.clone(),
                container_path: m.container_path.clone(),
                read_only: m.read_only,
            })
            .collect(),
        read_only_root: plan.read_only_root,
        user: plan.run_as_user,
        group: plan.run_as_group,
        working_dir: plan.working_dir.clone(),
        argv: plan.argv.clone(),
        env: plan.env.clone(),
    };
    tokio::fs::write(files.spec(), serde_json::to_vec_pretty(&spec)?)
        .await
        .with_context(|| format!("writing {}", files.spec().display()))?;
    let log_path = pod.dir.log_file(&plan.name, restart);
    if let Some(parent) = log_path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .with_context(|| format!("creating {}", parent.display()))?;
    }

    let mut child = {
        let mut control = pod.control();
        if control.stopping {
            return Ok(None);
        }
        let child = tokio::process::Command::new(&pod.init_program)
            .arg("container-init")
            .arg(files.spec())
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Not in the kubelet's process group: a terminal's Ctrl-C must not reach containers.
            .process_group(0)
            .spawn()
            .with_context(|| format!("spawning {} container-init", pod.init_program.display()))?;
        control.runs.insert(
            c,
            Run {
                shim: child.id().unwrap_or(0),
                pid1: None,
            },
        );
        child
    };
    let stdout = child.stdout.take().context("the shim's stdout is not piped")?;
    let stderr = child.stderr.take().context("the shim's stderr is not piped")?;
    let log = cri_log::spawn_writer(log_path, stdout, stderr);
    Ok(Some(Started {
        child,
        files,
        started_at: SystemTime::now(),
        since: Instant::now(),
        log,
    }))
}

/// Reports the run, probes it, waits for its end (killing it on a failed liveness or startup probe).
async fn supervise_run(
    pod: &Arc<Pod>,
    c: ContainerRef,
    plan: &ContainerPlan,
    mut run: Started,
    restart: u32,
) -> Termination {
    wait_for_pid1(pod, c, &mut run.child).await;
    let container_id = format!("cnredis://{}/{}/{restart}", pod.plan.uid, plan.name);
    let started = !c.init && plan.startup_probe.is_none();
    let ready = started && plan.readiness_probe.is_none();
    pod.update(c, |s| {
        s.state = ProcessState::Running {
            started_at: run.started_at,
        };
        s.container_id = Some(container_id);
        s.started = started;
        s.ready = ready;
    });

    let (live_tx, live_rx) = oneshot::channel();
    let has_probes =
        plan.startup_probe.is_some() || plan.liveness_probe.is_some() || plan.readiness_probe.is_some();
    let probes =
        (!c.init && has_probes).then(|| tokio::spawn(probe_loop(pod.clone(), c, run.since, live_tx)));
    let status = tokio::select! {
        status = run.child.wait() => status,
        Ok(reason) = live_rx => {
            tracing::info!(pod = %pod.plan.uid, container = %plan.name, %reason, "killing container");
            kill_gracefully(pod, c, &mut run.child).await
        }
    };
    if let Some(probes) = probes {
        probes.abort();
    }
    pod.control().runs.remove(&c);
    if tokio::time::timeout(LOG_DRAIN_PATIENCE, &mut run.log)
        .await
        .is_err()
    {
        tracing::warn!(pod = %pod.plan.uid, container = %plan.name, "log copy still busy after exit");
    }
    termination(status, &run.files, run.started_at).await
}

async fn wait_for_pid1(pod: &Pod, c: ContainerRef, shim: &mut tokio::process::Child) {
    let deadline = Instant::now() + PID1_PATIENCE;
    while pod.pid1(c).is_none() && Instant::now() < deadline {
        if matches!(shim.try_wait(), Ok(Some(_)) | Err(_)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// SIGTERM, then SIGKILL after the pod's grace period.
async fn kill_gracefully(
    pod: &Pod,
    c: ContainerRef,
    shim: &mut tokio::process::Child,
) -> std::io::Result<std::process::ExitStatus> {
    if let Some(pid) = pod.pid1(c) {
        let _ = procs::signal(pid, Signal::SIGTERM);
    }
    if let Ok(status) = tokio::time::timeout(pod.plan.termination_grace, shim.wait()).await {
        return status;
    }
    if let Some(pid) = pod.pid1(c) {
        let _ = procs::signal(pid, Signal::SIGKILL);
    }
    shim.wait().await
}

async fn termination(
    status: std::io::Result<std::process::ExitStatus>,
    files: &RunFiles,
    started_at: SystemTime,
) -> Termination {
    let finished_at = SystemTime::now();
    let record: Option<ExitRecord> = tokio::fs::read(files.exit_record())
        .await
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let (code, signal) = match (record, &status) {
        (Some(record), _) => (record.code, record.signal),
        (None, Ok(status)) => (status.code(), status.signal()),
        (None, Err(_)) => (None, None),
    };
    let exit_code = code.or(signal.map(|s| 128 + s)).unwrap_or(-1);
    let (reason, message) = match tokio::fs::read_to_string(files.start_error()).await {
        Ok(text) if text.is_empty() => (
            (if exit_code == 0 { "Completed" } else { "Error" }).to_owned(),
            None,
        ),
        Ok(text) => ("StartError".to_owned(), Some(text)),
        Err(_) => (
            "StartError".to_owned(),
            Some("the container sandbox ended before the command started; see the container log".to_owned()),
        ),
    };
    Termination {
        exit_code,
        signal,
        reason,
        message,
        started_at: Some(started_at),
        finished_at,
    }
}

/// Startup gates liveness and readiness; a failed startup or liveness verdict goes to `live_tx`.
async fn probe_loop(pod: Arc<Pod>, c: ContainerRef, since: Instant, live_tx: oneshot::Sender<String>) {
    let plan = pod.container(c).clone();
    if let Some(startup) = &plan.startup_probe {
        let (ok, message) = Prober::start(&pod, c, startup, since).await.verdict().await;
        if !ok {
            let _ = live_tx.send(format!("Startup probe failed: {message}"));
            return;
        }
        let ready = plan.readiness_probe.is_none();
        pod.update(c, |s| {
            s.started = true;
            s.ready = ready;
        });
    }
    let readiness = async {
        let Some(probe) = &plan.readiness_probe else {
            return std::future::pending::<()>().await;
        };
        let mut prober = Prober::start(&pod, c, probe, since).await;
        loop {
            let (ok, _) = prober.verdict().await;
            pod.update(c, |s| s.ready = ok);
        }
    };
    let liveness = async {
        let Some(probe) = &plan.liveness_probe else {
            return std::future::pending::<String>().await;
        };
        let mut prober = Prober::start(&pod, c, probe, since).await;
        loop {
            let (ok, message) = prober.verdict().await;
            if !ok {
                return format!("Liveness probe failed: {message}");
            }
        }
    };
    tokio::select! {
        reason = liveness => { let _ = live_tx.send(reason); }
        () = readiness => {}
    }
}

/// One probe of one run: its schedule and thresholds.
struct Prober<'a> {
    pod: &'a Pod,
    c: ContainerRef,
    plan: &'a ProbePlan,
    thresholds: Thresholds,
    ticks: tokio::time::Interval,
}

impl<'a> Prober<'a> {
    /// Waits out the initial delay, counted from the container's start.
    async fn start(pod: &'a Pod, c: ContainerRef, plan: &'a ProbePlan, since: Instant) -> Self {
        tokio::time::sleep_until(since + plan.initial_delay).await;
        let mut ticks = tokio::time::interval(plan.period.max(MIN_PROBE_PERIOD));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            pod,
            c,
            plan,
            thresholds: Thresholds::new(plan),
            ticks,
        }
    }

    /// Probes until a threshold is met: `(true, _)` or `(false, last failure)`.
    async fn verdict(&mut self) -> (bool, String) {
        loop {
            self.ticks.tick().await;
            let target = self.pod.action_target(self.c);
            let result = probe::run_action(&self.plan.action, &target, self.plan.timeout).await;
            if let Err(reason) = &result {
                tracing::debug!(pod = %self.pod.plan.uid, container = %self.pod.container(self.c).name, %reason, "probe failed");
            }
            if let Some(verdict) = self.thresholds.observe(result.is_ok()) {
                return (verdict, result.err().unwrap_or_default());
            }
        }
    }
}
