//! Host processes seen through `/proc`: children, namespace membership, run state, signals.

use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Direct children of `pid` (`/proc/<pid>/task/<pid>/children`).
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| s.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// The inode naming a namespace of a process, e.g. `ns_inode(pid, "net")`.
pub fn ns_inode(pid: u32, kind: &str) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()?;
    parse_ns_link(link.to_str()?)
}

/// `net:[4026532281]` -> `4026532281`.
fn parse_ns_link(link: &str) -> Option<u64> {
    link.split_once(":[")?.1.strip_suffix(']')?.parse().ok()
}

/// The inode of a namespace file such as `/var/run/netns/<name>`.
pub fn ns_file_inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Every process whose namespace of `kind` is one of `inodes`.
pub fn pids_in_ns(kind: &str, inodes: &[u64]) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| ns_inode(*pid, kind).is_some_and(|ino| inodes.contains(&ino)))
        .collect()
}

/// The one-letter state of `/proc/<pid>/stat` (`R`, `S`, `T`, `Z`...).
pub fn state_letter(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Sends a signal; a process that is already gone is not an error.
pub fn signal(pid: u32, sig: Signal) -> anyhow::Result<()> {
    let raw = i32::try_from(pid).map_err(|_| anyhow::anyhow!("pid {pid} out of range"))?;
    match kill(Pid::from_raw(raw), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(anyhow::anyhow!("sending {sig} to {pid}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_links_parse_to_their_inode() {
        assert_eq!(parse_ns_link("net:[4026532281]"), Some(4_026_532_281));
        assert_eq!(parse_ns_link("garbage"), None);
    }

    #[test]
    fn own_process_is_found_in_its_own_network_namespace() {
        let me = std::process::id();
        let inode = ns_inode(me, "net").expect("own netns");
        assert!(pids_in_ns("net", &[inode]).contains(&me));
        assert!(matches!(state_letter(me), Some('R' | 'S')));
    }
}
