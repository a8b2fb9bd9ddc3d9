//! Host commands the runtime relies on (`ip`, `nsenter`, `curl`): found once, run with their stderr
//! logged and returned on failure.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Where host tools are looked up besides `PATH` (a kubelet started by a test may lack the sbin dirs).
const FALLBACK_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Absolute paths of the host tools.
#[derive(Clone, Debug)]
pub struct Tools {
    pub ip: PathBuf,
    pub nsenter: PathBuf,
    /// Only https probes need it.
    pub curl: Option<PathBuf>,
}

impl Tools {
    pub fn find() -> anyhow::Result<Self> {
        Ok(Self {
            ip: find_tool("ip").context("iproute2's `ip` is required")?,
            nsenter: find_tool("nsenter").context("util-linux's `nsenter` is required")?,
            curl: find_tool("curl").ok(),
        })
    }
}

pub fn find_tool(name: &str) -> anyhow::Result<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path_var).chain(FALLBACK_DIRS.iter().map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    bail!("`{name}` not found in PATH or {FALLBACK_DIRS:?}")
}

pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn describe(program: &Path, args: &[&str]) -> String {
    let mut line = program.display().to_string();
    for arg in args {
        line.push(' ');
        line.push_str(arg);
    }
    line
}

fn check(
    program: &Path,
    args: &[&str],
    output: std::io::Result<std::process::Output>,
) -> anyhow::Result<String> {
    let command = describe(program, args);
    let output = output.with_context(|| format!("spawning `{command}`"))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    tracing::error!(command = %command, status = %output.status, stderr = %stderr, "host command failed");
    bail!("`{command}` failed ({}): {stderr}", output.status)
}

/// Runs a host command to completion; its stdout on success.
pub async fn run(program: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    check(program, args, output)
}

/// [`run`] for the synchronous chaos hooks; the commands it runs finish in milliseconds.
pub fn run_blocking(program: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output();
    check(program, args, output)
}
