//! Probes and lifecycle hooks: running an [`Action`] (exec inside the container's namespaces, HTTP GET or
//! TCP connect from the host to the pod IP), and the threshold logic that turns results into
//! started / ready / live, as the upstream prober does.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::plan::{Action, ProbePlan};

/// Where an action runs: the container's PID 1 (for exec) and the pod IP (for network actions).
#[derive(Clone, Debug)]
pub struct ActionTarget {
    pub pid1: Option<u32>,
    pub ip: Ipv4Addr,
    pub env: Vec<(String, String)>,
    pub user: Option<u32>,
    pub group: Option<u32>,
    pub nsenter: PathBuf,
    pub curl: Option<PathBuf>,
}

/// Runs an action, bounded by `timeout`. `Err` carries the reason for events and messages.
pub async fn run_action(action: &Action, target: &ActionTarget, timeout: Duration) -> Result<(), String> {
    match action {
        Action::Exec(argv) => exec(argv, target, timeout).await,
        Action::HttpGet {
            port,
            path,
            https: false,
        } => tokio::time::timeout(timeout, http_get(target.ip, *port, path))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "GET http://{}:{port}{path}: timed out after {timeout:?}",
                    target.ip
                ))
            }),
        Action::HttpGet {
            port,
            path,
            https: true,
        } => https_get(target, *port, path, timeout).await,
        Action::TcpSocket { port } => {
            match tokio::time::timeout(timeout, TcpStream::connect((target.ip, *port))).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("dial tcp {}:{port}: {e}", target.ip)),
                Err(_) => Err(format!(
                    "dial tcp {}:{port}: timed out after {timeout:?}",
                    target.ip
                )),
            }
        }
    }
}

/// `nsenter` into the container's namespaces and root, as the container's user, with its environment.
pub fn exec_command(target: &ActionTarget, argv: &[String]) -> Result<tokio::process::Command, String> {
    let pid1 = target.pid1.ok_or("the container is not running")?;
    if argv.is_empty() {
        return Err("empty command".into());
    }
    let mut command = tokio::process::Command::new(&target.nsenter);
    command.arg("--target").arg(pid1.to_string());
    command.args(["--net", "--mount", "--pid", "--uts", "--root", "--wd"]);
    if let Some(gid) = target.group {
        command.arg("--setgid").arg(gid.to_string());
    }
    if let Some(uid) = target.user {
        command.arg("--setuid").arg(uid.to_string());
    }
    command
        .arg("--")
        .args(argv)
        .env_clear()
        .envs(target.env.iter().cloned());
    Ok(command)
}

async fn exec(argv: &[String], target: &ActionTarget, timeout: Duration) -> Result<(), String> {
    let mut command = exec_command(target, argv)?;
    // Own process group, so a timeout kills nsenter's child in the container too.
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = command.spawn().map_err(|e| format!("starting nsenter: {e}"))?;
    let pgid = child.id();
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) if output.status.success() => Ok(()),
        Ok(Ok(output)) => {
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            let text: String = text.trim().chars().take(512).collect();
            Err(format!("command {argv:?} failed ({}): {text}", output.status))
        }
        Ok(Err(e)) => Err(format!("running {argv:?}: {e}")),
        Err(_) => {
            if let Some(pgid) = pgid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Err(format!("command {argv:?} timed out after {timeout:?}"))
        }
    }
}

async fn http_get(ip: Ipv4Addr, port: u16, path: &str) -> Result<(), String> {
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let url = format!("http://{ip}:{port}{path}");
    let mut stream = TcpStream::connect((ip, port))
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: kube-probe/1.35\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let status = parse_status(&head).ok_or_else(|| format!("GET {url}: malformed response"))?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("GET {url}: HTTP probe failed with statuscode: {status}"))
    }
}

/// `HTTP/1.1 204 No Content` -> 204.
fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

/// HTTPS probes skip certificate checks, as upstream's do; curl does the TLS.
async fn https_get(target: &ActionTarget, port: u16, path: &str, timeout: Duration) -> Result<(), String> {
    let curl = target.curl.as_ref().ok_or("https probes need curl on the host")?;
    let url = format!(
        "https://{}:{port}{}",
        target.ip,
        if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        }
    );
    let seconds = format!("{:.3}", timeout.as_secs_f64().max(0.001));
    let output = tokio::process::Command::new(curl)
        .args([
            "-k",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--noproxy",
            "*",
            "--max-time",
            &seconds,
            &url,
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("running curl: {e}"))?;
    let status: u16 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    match status {
        200..=399 => Ok(()),
        0 => Err(format!("GET {url}: no response ({})", output.status)),
        other => Err(format!("GET {url}: HTTP probe failed with statuscode: {other}")),
    }
}

/// Consecutive-result thresholds of one probe.
#[derive(Clone, Debug)]
pub struct Thresholds {
    success_threshold: u32,
    failure_threshold: u32,
    successes: u32,
    failures: u32,
}

impl Thresholds {
    pub fn new(plan: &ProbePlan) -> Self {
        Self {
            success_threshold: plan.success_threshold.max(1),
            failure_threshold: plan.failure_threshold.max(1),
            successes: 0,
            failures: 0,
        }
    }

    /// Feeds one result; `Some(verdict)` once a threshold is met (and on every result after it that
    /// keeps it met), `None` while undecided.
    pub fn observe(&mut self, success: bool) -> Option<bool> {
        if success {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            (self.successes >= self.success_threshold).then_some(true)
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            (self.failures >= self.failure_threshold).then_some(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(success_threshold: u32, failure_threshold: u32) -> ProbePlan {
        ProbePlan {
            action: Action::TcpSocket { port: 1 },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold,
            failure_threshold,
        }
    }

    #[test]
    fn verdicts_need_consecutive_results() {
        let mut t = Thresholds::new(&plan(2, 3));
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(true), Some(true));
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), Some(false));
        assert_eq!(t.observe(false), Some(false));
    }

    #[test]
    fn zero_thresholds_act_as_one() {
        let mut t = Thresholds::new(&plan(0, 0));
        assert_eq!(t.observe(false), Some(false));
        assert_eq!(t.observe(true), Some(true));
    }

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(parse_status(b"HTTP/1.0 500\r\n"), Some(500));
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n"), None);
    }
}
