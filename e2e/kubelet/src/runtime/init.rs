//! `cnredis-kubelet container-init`: the two processes between the kubelet and a container's command.
//!
//! The kubelet starts the *shim* (`container-init <spec>`), which joins the pod's network namespace,
//! unshares a PID namespace and starts *pid1* (`container-init --pid1 <spec>`) as PID 1 of it. pid1
//! unshares mount and UTS namespaces, builds the container root (e2e/README.md), pivots into it, drops
//! privileges and execs the command, which so becomes PID 1. The shim waits for it and writes its exact
//! exit status to a file: a process cannot learn the status of a grandchild, and `unshare --fork` reports
//! a SIGKILLed child as exit 1.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use serde::{Deserialize, Serialize};

/// Everything pid1 needs, written by the kubelet to `<container dir>/spec.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InitSpec {
    /// `/var/run/netns/<name>`.
    pub netns: PathBuf,
    pub hostname: String,
    /// The container's scratch directory (see [`RunFiles`]).
    pub dir: PathBuf,
    /// `<image_root>/usr`, layered over the host's `/usr`; `None` when the image has no `usr/`.
    pub image_usr: Option<PathBuf>,
    pub hosts_file: PathBuf,
    pub hostname_file: PathBuf,
    pub resolv_conf_file: PathBuf,
    pub mounts: Vec<InitMount>,
    pub read_only_root: bool,
    pub user: Option<u32>,
    pub group: Option<u32>,
    pub working_dir: Option<PathBuf>,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InitMount {
    pub host_path: PathBuf,
    pub container_path: PathBuf,
    pub read_only: bool,
}

/// The exit of the container's PID 1 as the shim saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// Files in a container's scratch directory.
#[derive(Clone, Debug)]
pub struct RunFiles {
    pub dir: PathBuf,
}

impl RunFiles {
    pub fn spec(&self) -> PathBuf {
        self.dir.join("spec.json")
    }
    pub fn exit_record(&self) -> PathBuf {
        self.dir.join("exit.json")
    }
    /// Created empty by pid1 when it starts; holds the reason when the command could not be started.
    pub fn start_error(&self) -> PathBuf {
        self.dir.join("start-error")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    /// Overlay upper and work directories of `usr` or `etc`; all on the state directory's filesystem.
    pub fn upper(&self, layer: &str) -> PathBuf {
        self.dir.join(layer).join("upper")
    }
    pub fn work(&self, layer: &str) -> PathBuf {
        self.dir.join(layer).join("work")
    }
}

/// Exit codes of a command that could not be started (the shell's convention).
const EXIT_NOT_FOUND: i32 = 127;
const EXIT_NOT_EXECUTABLE: i32 = 126;
const EXIT_SETUP_FAILED: i32 = 128;

/// Where the old root sits while the new one is built.
const OLD_ROOT: &str = "/.oldroot";

/// The hidden `container-init` subcommand. Never returns: it execs the command or exits.
pub fn container_init(spec_path: &Path, pid1: bool) -> ! {
    let spec = match read_spec(spec_path) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("cnredis-kubelet container-init: {e:#}");
            std::process::exit(EXIT_SETUP_FAILED);
        }
    };
    let files = RunFiles {
        dir: spec.dir.clone(),
    };
    if pid1 {
        run_pid1(spec_path, &spec, &files)
    } else {
        run_shim(spec_path, &spec, &files)
    }
}

fn read_spec(path: &Path) -> anyhow::Result<InitSpec> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

fn fail(files: &RunFiles, code: i32, error: &anyhow::Error) -> ! {
    let message = format!("{error:#}");
    eprintln!("cnredis-kubelet container-init: {message}");
    let _ = std::fs::write(files.start_error(), &message);
    std::process::exit(code);
}

fn run_shim(spec_path: &Path, spec: &InitSpec, files: &RunFiles) -> ! {
    let status = shim(spec_path, spec).unwrap_or_else(|e| fail(files, EXIT_SETUP_FAILED, &e));
    let record = ExitRecord {
        code: status.code(),
        signal: status.signal(),
    };
    if let Err(e) = std::fs::write(
        files.exit_record(),
        serde_json::to_vec(&record).unwrap_or_default(),
    ) {
        eprintln!("cnredis-kubelet container-init: recording the exit status: {e}");
    }
    std::process::exit(record.code.unwrap_or_else(|| 128 + record.signal.unwrap_or(0)));
}

fn shim(spec_path: &Path, spec: &InitSpec) -> anyhow::Result<std::process::ExitStatus> {
    let netns = File::open(&spec.netns).with_context(|| format!("opening {}", spec.netns.display()))?;
    setns(&netns, CloneFlags::CLONE_NEWNET).with_context(|| format!("joining {}", spec.netns.display()))?;
    drop(netns);
    unshare(CloneFlags::CLONE_NEWPID).context("unsharing the PID namespace")?;
    let exe = std::env::current_exe().context("locating this executable")?;
    let mut child = std::process::Command::new(exe)
        .arg("container-init")
        .arg("--pid1")
        .arg(spec_path)
        .spawn()
        .context("starting the container's PID 1")?;
    child.wait().context("waiting for the container's PID 1")
}

fn run_pid1(spec_path: &Path, spec: &InitSpec, files: &RunFiles) -> ! {
    // The shim is our parent: if it is killed, so are we (and with us the whole PID namespace).
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    // Marks that pid1 ran; stays empty unless the command cannot be started. Closed on exec.
    let mut report = match File::create(files.start_error()) {
        Ok(file) => file,
        Err(e) => {
            eprintln!(
                "cnredis-kubelet container-init: creating {}: {e}",
                files.start_error().display()
            );
            std::process::exit(EXIT_SETUP_FAILED);
        }
    };
    if let Err(e) = build_root(spec, files) {
        let e = e.context(format!("building the container root ({})", spec_path.display()));
        report_and_exit(&mut report, EXIT_SETUP_FAILED, &e);
    }
    let (code, error) = exec_command(spec);
    report_and_exit(&mut report, code, &error)
}

fn report_and_exit(report: &mut File, code: i32, error: &anyhow::Error) -> ! {
    let message = format!("{error:#}");
    eprintln!("cnredis-kubelet container-init: {message}");
    let _ = report.write_all(message.as_bytes());
    std::process::exit(code);
}

/// The container root (e2e/README.md): a tmpfs with `/usr` and `/etc` overlaid on the host's (image
/// tree first; per-container upper layers, so mount points under `/etc` never touch the host), the
/// merged-usr links, the pod's `hosts` and `hostname`, `/dev` (with a private `/dev/shm`), a fresh
/// read-only sysfs, a fresh `/proc`, private `/tmp` and `/run`, then the volumes. Built after
/// `pivot_root`, with host paths reached through [`OLD_ROOT`], so that container paths resolve inside
/// the new root.
fn build_root(spec: &InitSpec, files: &RunFiles) -> anyhow::Result<()> {
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS)
        .context("unsharing mount and UTS namespaces")?;
    nix::unistd::sethostname(&spec.hostname)
        .with_context(|| format!("setting hostname {:?}", spec.hostname))?;
    mount_at(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;

    let rootfs = files.rootfs();
    std::fs::create_dir_all(&rootfs).with_context(|| format!("creating {}", rootfs.display()))?;
    mount_at(
        Some(OsStr::new("tmpfs")),
        &rootfs,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0755"),
    )?;
    mkdir(&rootfs.join(OLD_ROOT.trim_start_matches('/')), 0o700)?;
    nix::unistd::pivot_root(&rootfs, &rootfs.join(OLD_ROOT.trim_start_matches('/'))).context("pivot_root")?;
    nix::unistd::chdir("/").context("chdir /")?;

    overlay("usr", spec.image_usr.as_deref(), files)?;
    merged_usr_links()?;
    overlay("etc", None, files)?;
    place_file(&spec.hosts_file, Path::new("/etc/hosts"))?;
    place_file(&spec.hostname_file, Path::new("/etc/hostname"))?;
    place_file(&spec.resolv_conf_file, Path::new("/etc/resolv.conf"))?;
    special_filesystems(spec.read_only_root)?;
    for m in &spec.mounts {
        volume(m).with_context(|| {
            format!(
                "mounting {} at {}",
                m.host_path.display(),
                m.container_path.display()
            )
        })?;
    }
    umount2(OLD_ROOT, MntFlags::MNT_DETACH).context("detaching the old root")?;
    std::fs::remove_dir(OLD_ROOT).context("removing the old root mount point")?;
    if spec.read_only_root {
        for path in ["/", "/usr", "/etc"] {
            remount_read_only(Path::new(path))?;
        }
    }
    Ok(())
}

/// The old root's view of a host path.
fn host(path: &Path) -> PathBuf {
    Path::new(OLD_ROOT).join(path.strip_prefix("/").unwrap_or(path))
}

fn mount_at(
    source: Option<&OsStr>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> anyhow::Result<()> {
    mount(source, target, fstype, flags, data).with_context(|| {
        format!(
            "mount {} on {} (type {}, flags {flags:?}, data {})",
            source
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "none".into()),
            target.display(),
            fstype.unwrap_or("none"),
            data.unwrap_or("")
        )
    })
}

fn mkdir(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

fn bind(source: &Path, target: &Path) -> anyhow::Result<()> {
    mount_at(
        Some(source.as_os_str()),
        target,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
}

fn remount_read_only(target: &Path) -> anyhow::Result<()> {
    mount_at(
        None,
        target,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None,
    )
}

/// `/<layer>` = overlay of the image's tree (if any) over the host's, with a per-container upper layer.
fn overlay(layer: &str, image: Option<&Path>, files: &RunFiles) -> anyhow::Result<()> {
    let target = Path::new("/").join(layer);
    mkdir(&target, 0o755)?;
    let mut lowers = Vec::new();
    if let Some(image) = image {
        lowers.push(host(image));
    }
    lowers.push(host(Path::new("/").join(layer).as_path()));
    let upper = host(&files.upper(layer));
    let work = host(&files.work(layer));
    for path in lowers.iter().chain([&upper, &work]) {
        let text = path.to_string_lossy();
        if text.contains([':', ',', '\\']) {
            bail!("overlay layer path {text:?} contains ':', ',' or '\\'");
        }
    }
    for lower in &lowers {
        if upper.starts_with(lower) || work.starts_with(lower) {
            bail!(
                "overlay upper layer {} lies inside lower layer {}",
                upper.display(),
                lower.display()
            );
        }
    }
    let lowerdir: Vec<String> = lowers.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowerdir.join(":"),
        upper.display(),
        work.display()
    );
    mount_at(
        Some(OsStr::new("overlay")),
        &target,
        Some("overlay"),
        MsFlags::empty(),
        Some(&data),
    )
}

/// The host's top-level links into `/usr` (merged usr: `/bin -> usr/bin`...); real directories (an
/// unmerged host) are bound read-only instead.
fn merged_usr_links() -> anyhow::Result<()> {
    for name in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let on_host = host(Path::new("/").join(name).as_path());
        let Ok(meta) = std::fs::symlink_metadata(&on_host) else {
            continue;
        };
        let target = Path::new("/").join(name);
        if meta.file_type().is_symlink() {
            let link =
                std::fs::read_link(&on_host).with_context(|| format!("reading {}", on_host.display()))?;
            std::os::unix::fs::symlink(&link, &target)
                .with_context(|| format!("linking {}", target.display()))?;
        } else if meta.is_dir() {
            mkdir(&target, 0o755)?;
            bind(&on_host, &target)?;
            remount_read_only(&target)?;
        }
    }
    Ok(())
}

/// Binds a host file over a file of the new root, creating the latter (in an upper layer) if needed.
fn place_file(source: &Path, target: &Path) -> anyhow::Result<()> {
    if !target.exists() {
        File::create(target).with_context(|| format!("creating {}", target.display()))?;
    }
    bind(&host(source), target)
}

fn special_filesystems(read_only_root: bool) -> anyhow::Result<()> {
    let nosuid_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let locked = nosuid_nodev | MsFlags::MS_NOEXEC;

    mkdir(Path::new("/dev"), 0o755)?;
    bind(&host(Path::new("/dev")), Path::new("/dev"))?;
    // The host's /dev/shm would be shared by every pod.
    if Path::new("/dev/shm").is_dir() {
        mount_at(
            Some(OsStr::new("shm")),
            Path::new("/dev/shm"),
            Some("tmpfs"),
            nosuid_nodev,
            Some("mode=1777"),
        )?;
    }

    mkdir(Path::new("/sys"), 0o555)?;
    // A fresh sysfs shows the pod's own network devices; fall back to the host's read-only.
    if mount(
        Some("sysfs"),
        "/sys",
        Some("sysfs"),
        locked | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .is_err()
    {
        bind(&host(Path::new("/sys")), Path::new("/sys"))?;
        remount_read_only(Path::new("/sys"))?;
    }

    mkdir(Path::new("/proc"), 0o555)?;
    mount_at(
        Some(OsStr::new("proc")),
        Path::new("/proc"),
        Some("proc"),
        locked,
        None,
    )?;

    // Private to the container; with a read-only root they are plain directories of the root and
    // read-only with it, as in an upstream container (writable only through an emptyDir).
    for (dir, mode, data) in [("/tmp", 0o1777, "mode=1777"), ("/run", 0o755, "mode=0755")] {
        mkdir(Path::new(dir), mode)?;
        if !read_only_root {
            mount_at(
                Some(OsStr::new("tmpfs")),
                Path::new(dir),
                Some("tmpfs"),
                nosuid_nodev,
                Some(data),
            )?;
        }
    }

    mkdir(Path::new("/root"), 0o700)?;
    mkdir(Path::new("/var/tmp"), 0o1777)?;
    mkdir(Path::new("/var/lib"), 0o755)?;
    mkdir(Path::new("/var/log"), 0o755)?;
    mkdir(Path::new("/home"), 0o755)?;
    Ok(())
}

/// A container path must be absolute and free of `..`, so it stays inside the new root.
fn checked_container_path(path: &Path) -> anyhow::Result<&Path> {
    if !path.is_absolute() {
        bail!("mount path {} is not absolute", path.display());
    }
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        bail!("mount path {} contains '..'", path.display());
    }
    Ok(path)
}

fn volume(m: &InitMount) -> anyhow::Result<()> {
    let target = checked_container_path(&m.container_path)?;
    let source = host(&m.host_path);
    let meta = std::fs::metadata(&source).with_context(|| format!("host path {}", m.host_path.display()))?;
    if meta.is_dir() {
        std::fs::create_dir_all(target).with_context(|| format!("creating {}", target.display()))?;
    } else {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        if !target.exists() {
            File::create(target).with_context(|| format!("creating {}", target.display()))?;
        }
    }
    bind(&source, target)?;
    if m.read_only {
        remount_read_only(target)?;
    }
    Ok(())
}

/// `argv[0]` as `execvp` would find it, in the `PATH` of the container's environment.
fn resolve_program(argv0: &str, env: &[(String, String)]) -> Option<PathBuf> {
    if argv0.contains('/') {
        return Some(PathBuf::from(argv0));
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(argv0))
        .find(|candidate| super::host::is_executable(candidate))
}

/// Drops privileges and execs; returns only on failure, with the exit code to report.
fn exec_command(spec: &InitSpec) -> (i32, anyhow::Error) {
    let Some(argv0) = spec.argv.first() else {
        return (EXIT_NOT_FOUND, anyhow::anyhow!("no command given"));
    };
    let Some(program) = resolve_program(argv0, &spec.env) else {
        return (
            EXIT_NOT_FOUND,
            anyhow::anyhow!("exec: {argv0:?}: executable file not found in $PATH"),
        );
    };
    let working_dir = spec.working_dir.clone().unwrap_or_else(|| PathBuf::from("/"));
    if let Err(e) = std::fs::create_dir_all(&working_dir) {
        return (
            EXIT_SETUP_FAILED,
            anyhow::anyhow!("creating working directory {}: {e}", working_dir.display()),
        );
    }
    let mut command = std::process::Command::new(&program);
    command
        .arg0(argv0)
        .args(&spec.argv[1..])
        .env_clear()
        .envs(spec.env.iter().cloned())
        .current_dir(&working_dir);
    if let Some(gid) = spec.group {
        command.gid(gid);
    }
    if let Some(uid) = spec.user {
        // Also clears supplementary groups (std does setgroups(0) when root sets a uid).
        command.uid(uid);
    }
    let error = command.exec();
    let code = match error.kind() {
        std::io::ErrorKind::NotFound => EXIT_NOT_FOUND,
        std::io::ErrorKind::PermissionDenied => EXIT_NOT_EXECUTABLE,
        _ => EXIT_SETUP_FAILED,
    };
    (code, anyhow::anyhow!("exec {}: {error}", program.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_in_the_container_path() {
        let env = vec![("PATH".to_owned(), "/nonexistent:/usr/bin".to_owned())];
        assert_eq!(resolve_program("env", &env), Some(PathBuf::from("/usr/bin/env")));
        assert_eq!(resolve_program("no-such-program-xyz", &env), None);
        assert_eq!(resolve_program("./x", &env), Some(PathBuf::from("./x")));
    }

    #[test]
    fn mount_paths_must_stay_inside_the_root() {
        assert!(checked_container_path(Path::new("data")).is_err());
        assert!(checked_container_path(Path::new("/data/../etc")).is_err());
        assert!(checked_container_path(Path::new("/data/x")).is_ok());
    }
}
