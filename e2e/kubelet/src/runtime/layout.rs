//! Where a pod lives on the host: its state directory under `<state>/pods/<uid>/` and the names of its
//! network namespace and host veth. Every name is derived from the pod UID, so a restarted kubelet finds
//! the same sandbox again.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// Kernel limit for interface names (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

/// Checks a pod UID before it names files and namespaces.
pub fn validate_uid(uid: &str) -> anyhow::Result<()> {
    if uid.is_empty() || uid.len() > 128 {
        bail!("pod uid {uid:?} must be 1 to 128 characters");
    }
    if !uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        bail!("pod uid {uid:?} may only hold letters, digits and '-'");
    }
    if uid.chars().all(|c| c == '-') {
        bail!("pod uid {uid:?} has no letters or digits");
    }
    Ok(())
}

/// Checks a container name before it names directories.
pub fn validate_container_name(name: &str) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !valid {
        bail!("container name {name:?} is not a DNS label");
    }
    Ok(())
}

/// `cnr-<first 12 characters of the uid without dashes>`.
pub fn netns_name(uid: &str) -> String {
    let short: String = uid.chars().filter(|c| *c != '-').take(12).collect();
    format!("cnr-{}", short.to_ascii_lowercase())
}

/// `cnr<8 hex>`: FNV-1a of the uid, so any uid gives a valid, stable interface name.
pub fn host_veth_name(uid: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in uid.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    let name = format!("cnr{hash:08x}");
    debug_assert!(name.len() <= MAX_IFNAME);
    name
}

/// The network pieces of one sandbox, recorded in the pod directory so that a restarted kubelet can
/// remove them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub uid: String,
    pub netns: String,
    pub host_veth: String,
    pub ip: std::net::Ipv4Addr,
}

impl SandboxRecord {
    pub fn for_pod(uid: &str, ip: std::net::Ipv4Addr) -> Self {
        Self {
            uid: uid.to_owned(),
            netns: netns_name(uid),
            host_veth: host_veth_name(uid),
            ip,
        }
    }

    /// Where `ip netns` keeps the namespace.
    pub fn netns_path(&self) -> PathBuf {
        Path::new("/var/run/netns").join(&self.netns)
    }
}

/// `<state>/pods/<uid>/`.
#[derive(Clone, Debug)]
pub struct PodDir {
    root: PathBuf,
}

impl PodDir {
    pub fn new(state_dir: &Path, uid: &str) -> Self {
        Self {
            root: state_dir.join("pods").join(uid),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn sandbox_record(&self) -> PathBuf {
        self.root.join("sandbox.json")
    }

    pub fn hosts_file(&self) -> PathBuf {
        self.root.join("hosts")
    }

    /// The pod's `/etc/resolv.conf`: no nameserver, so that a name missing from `/etc/hosts` fails at
    /// once inside the pod instead of sending a query to the host's resolver from a pod address.
    pub fn resolv_conf_file(&self) -> PathBuf {
        self.root.join("resolv.conf")
    }

    pub fn hostname_file(&self) -> PathBuf {
        self.root.join("hostname")
    }

    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// `logs/<container>/<restart>.log`.
    pub fn log_file(&self, container: &str, restart: u32) -> PathBuf {
        self.logs().join(container).join(format!("{restart}.log"))
    }

    /// The per-container scratch directory: init spec, exit status, root mount point, overlay layers.
    pub fn container_dir(&self, container: &str) -> PathBuf {
        self.root.join("containers").join(container)
    }

    pub fn read_record(&self) -> anyhow::Result<Option<SandboxRecord>> {
        let path = self.sandbox_record();
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn write_record(&self, record: &SandboxRecord) -> anyhow::Result<()> {
        let path = self.sandbox_record();
        std::fs::write(&path, serde_json::to_vec_pretty(record)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Deletes everything of the pod but its logs.
    pub fn remove_runtime_state(&self) -> anyhow::Result<()> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("listing {}", self.root.display())),
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_name() == "logs" {
                continue;
            }
            let path = entry.path();
            let removed = if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.with_context(|| format!("removing {}", path.display()))?;
        }
        Ok(())
    }
}

/// `/etc/hosts` of a pod: localhost, the pod's own name, then the plan's extra entries.
pub fn hosts_file_content(plan: &super::plan::PodPlan) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file (cnredis-kubelet).\n127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    out.push_str(&format!("{}\t{}\n", plan.ip, plan.hostname));
    for (ip, names) in &plan.hosts {
        if !names.is_empty() {
            out.push_str(&format!("{ip}\t{}\n", names.join("\t")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netns_name_uses_first_twelve_uid_characters_without_dashes() {
        assert_eq!(
            netns_name("8f0e6a2b-1c3d-4e5f-a6b7-c8d9e0f1a2b3"),
            "cnr-8f0e6a2b1c3d"
        );
    }

    #[test]
    fn host_veth_name_is_stable_and_fits_ifnamsiz() {
        let name = host_veth_name("8f0e6a2b-1c3d-4e5f-a6b7-c8d9e0f1a2b3");
        assert_eq!(name, host_veth_name("8f0e6a2b-1c3d-4e5f-a6b7-c8d9e0f1a2b3"));
        assert_eq!(name.len(), 11);
        assert!(name.starts_with("cnr") && name[3..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(name, host_veth_name("8f0e6a2b-1c3d-4e5f-a6b7-c8d9e0f1a2b4"));
    }

    #[test]
    fn uids_that_could_escape_the_state_directory_are_rejected() {
        assert!(validate_uid("../etc").is_err());
        assert!(validate_uid("a/b").is_err());
        assert!(validate_uid("").is_err());
        assert!(validate_uid("---").is_err());
        assert!(validate_uid("8f0e6a2b-1c3d-4e5f-a6b7-c8d9e0f1a2b3").is_ok());
    }

    #[test]
    fn container_names_that_are_not_labels_are_rejected() {
        assert!(validate_container_name("..").is_err());
        assert!(validate_container_name("a/b").is_err());
        assert!(validate_container_name("valkey").is_ok());
    }
}
