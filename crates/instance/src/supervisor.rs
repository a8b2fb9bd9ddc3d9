//! PID 1 duties: start the server as a child process, reap every child (orphans re-parented to PID 1
//! included) without losing the server's exit status, forward signals, restart a server that exited with a
//! backoff, and stop it within the pod's grace period.
//!
//! Children are started with `std::process::Command` and never waited for through it: one reaper thread
//! calls `waitpid(-1)` for every child, so an orphan's exit can never be mistaken for (or swallow) the
//! server's. Nothing else in the process may wait for children once the reaper runs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(Signal),
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exited(code) => write!(f, "exit code {code}"),
            Self::Signaled(signal) => write!(f, "signal {signal}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("cannot start {binary}: {source}")]
    Spawn { binary: PathBuf, source: std::io::Error },
    #[error("cannot install the handler for {0}: {1}")]
    Signal(&'static str, std::io::Error),
    #[error("cannot signal the server (pid {pid}): {source}")]
    Kill { pid: i32, source: Errno },
}

/// The watched children, by pid. An exit is handed over only to a watcher registered before it was
/// reaped: `spawn` registers while holding the lock across the fork, so the reaper cannot take the exit of
/// a new child first; and an exit reaped with no watcher (an orphan) is dropped, never kept for later, since
/// its pid may be reused by the next child.
#[derive(Default)]
struct Children {
    waiting: HashMap<i32, oneshot::Sender<ExitStatus>>,
}

impl Children {
    fn watch(&mut self, pid: i32) -> oneshot::Receiver<ExitStatus> {
        let (sender, exit) = oneshot::channel();
        self.waiting.insert(pid, sender);
        exit
    }

    fn reaped(&mut self, pid: i32, status: ExitStatus) {
        match self.waiting.remove(&pid) {
            Some(watcher) => {
                let _ = watcher.send(status);
            }
            None => tracing::debug!(pid, %status, "reaped an orphaned process"),
        }
    }
}

/// Reaps every child of this process and hands the exit status of a watched child to its watcher. There
/// is one per process: a second `waitpid(-1)` loop would steal the first one's exits.
#[derive(Clone)]
pub struct Reaper {
    children: Arc<Mutex<Children>>,
    thread: std::thread::Thread,
}

/// A started child: its pid and the future of its exit.
pub struct Child {
    pub pid: i32,
    pub exit: oneshot::Receiver<ExitStatus>,
}

static REAPER: std::sync::OnceLock<Reaper> = std::sync::OnceLock::new();

impl Reaper {
    /// The process's reaper, started on first use. It is a thread blocked in `waitpid(-1)`, so it needs
    /// no async runtime and reaps an exit as soon as it happens.
    pub fn start() -> Self {
        REAPER
            .get_or_init(|| {
                let children: Arc<Mutex<Children>> = Arc::default();
                let shared = children.clone();
                let thread = std::thread::Builder::new()
                    .name("reaper".to_string())
                    .spawn(move || reap_forever(&shared))
                    .expect("starting the reaper thread");
                Reaper {
                    children,
                    thread: thread.thread().clone(),
                }
            })
            .clone()
    }

    /// Starts `command` with its output going to this process's stdout/stderr (the container log).
    pub fn spawn(&self, mut command: Command) -> Result<Child, SupervisorError> {
        let binary = PathBuf::from(command.get_program());
        command.stdin(Stdio::null());
        // Held across the fork so that the reaper cannot take the exit before the watcher is registered.
        let mut children = self.children.lock().unwrap_or_else(|poison| poison.into_inner());
        let child = command
            .spawn()
            .map_err(|source| SupervisorError::Spawn { binary, source })?;
        let pid = child.id() as i32;
        let exit = children.watch(pid);
        drop(children);
        self.thread.unpark();
        Ok(Child { pid, exit })
    }
}

fn reap_forever(children: &Mutex<Children>) {
    loop {
        let (pid, status) = match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, ExitStatus::Exited(code)),
            Ok(WaitStatus::Signaled(pid, signal, _)) => (pid, ExitStatus::Signaled(signal)),
            Ok(_) | Err(Errno::EINTR) => continue,
            // No children: wait for the next spawn (and look again now and then).
            Err(Errno::ECHILD) => {
                std::thread::park_timeout(Duration::from_secs(1));
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "waitpid failed");
                std::thread::park_timeout(Duration::from_secs(1));
                continue;
            }
        };
        children
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .reaped(pid.as_raw(), status);
    }
}

/// Sends `signal` to a child.
pub fn send_signal(pid: i32, signal: Signal) -> Result<(), SupervisorError> {
    match kill(Pid::from_raw(pid), signal) {
        // Already gone: its exit is (or will be) reaped.
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(source) => Err(SupervisorError::Kill { pid, source }),
    }
}

/// Stops a child: SIGTERM, then SIGKILL once `grace` has passed. Returns how it ended.
pub async fn stop(child: &mut Child, grace: Duration) -> Result<ExitStatus, SupervisorError> {
    send_signal(child.pid, Signal::SIGTERM)?;
    match tokio::time::timeout(grace, &mut child.exit).await {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(_)) => Ok(ExitStatus::Signaled(Signal::SIGKILL)),
        Err(_) => {
            tracing::warn!(pid = child.pid, ?grace, "server did not stop in time, killing it");
            send_signal(child.pid, Signal::SIGKILL)?;
            Ok((&mut child.exit)
                .await
                .unwrap_or(ExitStatus::Signaled(Signal::SIGKILL)))
        }
    }
}

/// Delay before restarting a server that exited: doubling from one second up to thirty, and back to one
/// second once the server had been running for a minute.
pub fn restart_delay(consecutive_failures: u32) -> Duration {
    let exponent = consecutive_failures.saturating_sub(1).min(5);
    Duration::from_secs((1u64 << exponent).min(30))
}

/// How long a server must have run for its exit to count as a new failure rather than another one.
pub const STABLE_RUN: Duration = Duration::from_secs(60);

/// Process signals the instance manager handles: termination (stop the server and exit) and the signals
/// it forwards to the server as they are.
pub enum Incoming {
    Terminate(Signal),
    Forward(Signal),
}

/// Yields the signals this process receives, in the order they arrive.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> Result<Self, SupervisorError> {
        let install = |kind: SignalKind, name: &'static str| {
            signal(kind).map_err(|error| SupervisorError::Signal(name, error))
        };
        Ok(Self {
            term: install(SignalKind::terminate(), "SIGTERM")?,
            int: install(SignalKind::interrupt(), "SIGINT")?,
            hup: install(SignalKind::hangup(), "SIGHUP")?,
            usr1: install(SignalKind::user_defined1(), "SIGUSR1")?,
            usr2: install(SignalKind::user_defined2(), "SIGUSR2")?,
        })
    }

    pub async fn next(&mut self) -> Incoming {
        tokio::select! {
            _ = self.term.recv() => Incoming::Terminate(Signal::SIGTERM),
            _ = self.int.recv() => Incoming::Terminate(Signal::SIGINT),
            _ = self.hup.recv() => Incoming::Forward(Signal::SIGHUP),
            _ = self.usr1.recv() => Incoming::Forward(Signal::SIGUSR1),
            _ = self.usr2.recv() => Incoming::Forward(Signal::SIGUSR2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_delay_doubles_up_to_thirty_seconds() {
        let delays: Vec<u64> = (1..=8).map(|n| restart_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(restart_delay(0).as_secs(), 1);
    }

    #[test]
    fn an_orphan_reaped_under_a_pid_is_not_the_exit_of_the_next_child_given_that_pid() {
        let mut children = Children::default();
        // An orphan with pid 4242 exits and is reaped; the kernel then gives 4242 to the new server.
        children.reaped(4242, ExitStatus::Exited(0));
        let mut exit = children.watch(4242);
        assert_eq!(
            exit.try_recv(),
            Err(oneshot::error::TryRecvError::Empty),
            "the new server was reported as exited by the orphan's exit"
        );
        children.reaped(4242, ExitStatus::Exited(7));
        assert_eq!(exit.try_recv(), Ok(ExitStatus::Exited(7)));
        assert!(children.waiting.is_empty());
    }

    #[tokio::test]
    async fn server_exit_status_survives_reaping_of_orphans() {
        let reaper = Reaper::start();
        // An unwatched child that exits first, then the watched one with a distinctive code.
        // Not waited for here: the reaper takes it, which is the point.
        #[allow(clippy::zombie_processes)]
        let _orphan = Command::new("/bin/sh").args(["-c", "exit 0"]).spawn().unwrap();
        let mut command = Command::new("/bin/sh");
        command.args(["-c", "sleep 0.2; exit 7"]);
        let child = reaper.spawn(command).unwrap();
        let status = tokio::time::timeout(Duration::from_secs(10), child.exit)
            .await
            .expect("exit reported within 10 s")
            .unwrap();
        assert_eq!(status, ExitStatus::Exited(7));
    }

    #[tokio::test]
    async fn stop_kills_a_child_that_ignores_sigterm() {
        let reaper = Reaper::start();
        let marker = std::env::temp_dir().join(format!("cnredis-trap-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(format!(
            "trap '' TERM; touch {}; while :; do sleep 0.05; done",
            marker.display()
        ));
        let mut child = reaper.spawn(command).unwrap();
        // The marker appears once the trap is installed; a SIGTERM before that would end the shell.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !marker.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the shell never installed its trap"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        std::fs::remove_file(&marker).unwrap();
        let started = std::time::Instant::now();
        let status = stop(&mut child, Duration::from_millis(500)).await.unwrap();
        assert_eq!(status, ExitStatus::Signaled(Signal::SIGKILL));
        assert!(started.elapsed() >= Duration::from_millis(500));
    }
}
