//! A pod's sandbox as a whole: its state directory files (`hosts`, `hostname`, the sandbox record) and
//! network, created before the first container and torn down after the last, or by a restarted
//! kubelet from the record alone.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::Signal;

use super::host::Tools;
use super::layout::{self, PodDir, SandboxRecord};
use super::plan::PodPlan;
use super::{network, procs};

/// Writes the pod's files and creates its network. A sandbox left by an earlier kubelet for the same
/// pod is removed first.
pub async fn create(tools: &Tools, dir: &PodDir, plan: &PodPlan) -> anyhow::Result<SandboxRecord> {
    if let Some(previous) = dir.read_record()? {
        tracing::info!(pod = %plan.uid, netns = %previous.netns, "removing the sandbox an earlier kubelet left");
        teardown(tools, dir, &previous).await?;
    }
    for sub in [
        dir.root().to_path_buf(),
        dir.logs(),
        dir.root().join("containers"),
    ] {
        tokio::fs::create_dir_all(&sub)
            .await
            .with_context(|| format!("creating {}", sub.display()))?;
    }
    let record = SandboxRecord::for_pod(&plan.uid, plan.ip);
    if record.netns_path().exists() {
        bail!(
            "network namespace {} already exists and is not this pod's: pod uid prefix clash?",
            record.netns
        );
    }
    write(&dir.hosts_file(), layout::hosts_file_content(plan)).await?;
    write(&dir.hostname_file(), format!("{}\n", plan.hostname)).await?;
    write(
        &dir.resolv_conf_file(),
        "# The local cluster runs no DNS server: Services are in /etc/hosts. With no nameserver line the\n\
         # resolver asks 127.0.0.1 in the pod's own network namespace and fails at once.\n\
         options timeout:1 attempts:1\n"
            .to_string(),
    )
    .await?;
    // Recorded before the network exists, so that a crash half-way leaves something to clean up.
    dir.write_record(&record)?;
    if let Err(e) = network::create(tools, &record).await {
        let _ = dir.remove_runtime_state();
        return Err(e.context(format!(
            "creating the network of pod {}/{}",
            plan.namespace, plan.name
        )));
    }
    Ok(record)
}

async fn write(path: &Path, content: String) -> anyhow::Result<()> {
    tokio::fs::write(path, content)
        .await
        .with_context(|| format!("writing {}", path.display()))
}

/// Kills whatever still runs in the sandbox, unmounts what is left under the pod directory, removes the
/// network and the pod's runtime state (its logs stay).
pub async fn teardown(tools: &Tools, dir: &PodDir, record: &SandboxRecord) -> anyhow::Result<()> {
    let survivors = kill_all(record, Duration::from_secs(5)).await;
    if !survivors.is_empty() {
        tracing::error!(netns = %record.netns, pids = ?survivors, "processes survived SIGKILL");
    }
    unmount_under(dir.root());
    network::destroy(tools, record).await;
    dir.remove_runtime_state()
}

/// SIGKILLs every process in the pod's network namespace until none is left or `patience` runs out;
/// returns the survivors.
pub async fn kill_all(record: &SandboxRecord, patience: Duration) -> Vec<u32> {
    let Some(inode) = procs::ns_file_inode(&record.netns_path()) else {
        return Vec::new();
    };
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let pids: Vec<u32> = procs::pids_in_ns("net", &[inode])
            .into_iter()
            .filter(|p| procs::state_letter(*p) != Some('Z'))
            .collect();
        if pids.is_empty() || tokio::time::Instant::now() >= deadline {
            return pids;
        }
        for pid in &pids {
            if let Err(e) = procs::signal(*pid, Signal::SIGKILL) {
                tracing::warn!(pid, error = %e, "killing a pod process");
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lazily unmounts every mount of this (the host's) mount namespace below `root`, deepest first.
/// Container mounts live in their own namespaces; this catches anything that leaked.
pub fn unmount_under(root: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4).map(unescape_mount_path))
        .filter(|point| Path::new(point).starts_with(root))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        if let Err(e) = nix::mount::umount2(point.as_str(), nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(mount = %point, error = %e, "unmounting a leftover pod mount");
        }
    }
}

/// Mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(code) = field
                .get(i + 1..i + 4)
                .and_then(|oct| u8::from_str_radix(oct, 8).ok())
        {
            out.push(code);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mount_path("/var/tmp/a\\040b"), "/var/tmp/a b");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
        assert_eq!(unescape_mount_path("/odd\\"), "/odd\\");
    }
}
