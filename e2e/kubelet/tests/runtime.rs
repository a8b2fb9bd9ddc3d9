//! The runtime against the real kernel: every test runs real pods (network, mount and PID namespaces,
//! veths, overlays) and needs root. Pod IPs come from 10.244.250.0/24, clear of the local cluster's node
//! ranges; names carry this process's PID so that parallel tests never share a sandbox. The runtime sets
//! the host state its pod network needs (`net.ipv4.ip_forward`, forwarding and proxy ARP on each host
//! veth) itself: these tests pass on a fresh machine, before `e2e/cluster.sh up` ever ran.

#[allow(dead_code, unused_imports)]
#[path = "../src/runtime/mod.rs"]
mod runtime;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runtime::plan::{
    Action, ContainerPlan, ContainerState, MountPlan, PodPlan, PodState, ProbePlan, ProcessState,
    RestartPolicy,
};
use runtime::{PodHandle, Runtime};
use tokio::sync::watch;

const BASE: &str = "/var/tmp/cnredis-runtime-tests";
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";
const TEST_POD_RANGE: &str = "10.244.250.0/24";

/// One test's directories (state, image tree, volume) and runtime; removes every sandbox of its state
/// directory on drop, whether the test passed or not.
struct Fixture {
    id: u16,
    base: PathBuf,
    runtime: Runtime,
}

impl Fixture {
    fn new(id: u16) -> Self {
        assert!(
            nix::unistd::geteuid().is_root(),
            "runtime tests create namespaces and veths: run them as root"
        );
        // Test traffic to a pod IP whose /32 route is gone must die here, not leave through the default
        // route; the pods' own /32 routes are more specific.
        let blackhole = std::process::Command::new("ip")
            .args(["route", "replace", "blackhole", TEST_POD_RANGE])
            .status()
            .expect("running ip");
        assert!(
            blackhole.success(),
            "could not add the blackhole route for {TEST_POD_RANGE}"
        );
        let base = Path::new(BASE).join(format!("{}-{id}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        for dir in ["state", "image/usr/local/bin", "data"] {
            std::fs::create_dir_all(base.join(dir)).unwrap();
        }
        let hello = base.join("image/usr/local/bin/hello");
        std::fs::write(&hello, "#!/bin/sh\necho hello from the image\n").unwrap();
        std::fs::set_permissions(&hello, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let runtime = Runtime::new(base.join("state"))
            .unwrap()
            .with_init_program(PathBuf::from(env!("CARGO_BIN_EXE_cnredis-kubelet")));
        Self { id, base, runtime }
    }

    fn data(&self) -> PathBuf {
        self.base.join("data")
    }

    fn image(&self) -> PathBuf {
        self.base.join("image")
    }

    fn uid(&self, n: u8) -> String {
        format!(
            "{:08x}-{:02x}{n:02x}-4000-8000-000000000000",
            std::process::id(),
            self.id
        )
    }

    fn ip(&self, n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 244, 250, u8::try_from(self.id).unwrap() * 4 + n)
    }

    fn container(&self, name: &str, argv: &[&str]) -> ContainerPlan {
        ContainerPlan {
            name: name.into(),
            image_root: self.image(),
            image: "test/image:1".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![("PATH".into(), PATH.into()), ("GREETING".into(), "hi".into())],
            working_dir: None,
            mounts: vec![MountPlan {
                host_path: self.data(),
                container_path: "/data".into(),
                read_only: false,
            }],
            run_as_user: None,
            run_as_group: None,
            read_only_root: false,
            startup_probe: None,
            liveness_probe: None,
            readiness_probe: None,
            pre_stop: None,
        }
    }

    /// A container serving `/data` over HTTP on `ip:port` (python3's http.server).
    fn http_server(&self, name: &str, ip: &str, port: u16) -> ContainerPlan {
        let port = port.to_string();
        let argv = [
            "python3",
            "-m",
            "http.server",
            port.as_str(),
            "--bind",
            ip,
            "--directory",
            "/data",
        ];
        self.container(name, &argv)
    }

    fn pod(&self, n: u8, containers: Vec<ContainerPlan>) -> PodPlan {
        PodPlan {
            uid: self.uid(n),
            namespace: "default".into(),
            name: format!("test-{}-{n}", self.id),
            hostname: format!("test-{}-{n}", self.id),
            ip: self.ip(n),
            hosts: vec![(Ipv4Addr::new(10, 245, 0, 1), vec!["api.example".into()])],
            init_containers: Vec::new(),
            containers,
            restart_policy: RestartPolicy::Always,
            termination_grace: Duration::from_secs(5),
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let state = self.base.join("state");
        // The test's own tokio runtime may be the one dropping us: clean up from a thread of our own.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async { Runtime::new(state)?.remove_orphans(&HashSet::new()).await })
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("cleanup of {}: {e:#}", self.base.display()),
            Err(_) => eprintln!("cleanup of {} panicked", self.base.display()),
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn probe(action: Action, period_ms: u64, failure_threshold: u32) -> ProbePlan {
    ProbePlan {
        action,
        initial_delay: Duration::ZERO,
        period: Duration::from_millis(period_ms),
        timeout: Duration::from_secs(2),
        success_threshold: 1,
        failure_threshold,
    }
}

fn exec(script: &str) -> Action {
    Action::Exec(vec!["sh".into(), "-c".into(), script.into()])
}

/// Waits for the pod state to satisfy `cond`; on timeout fails with what was seen last.
async fn wait_state(
    rx: &mut watch::Receiver<PodState>,
    what: &str,
    timeout: Duration,
    cond: impl FnMut(&PodState) -> bool,
) -> PodState {
    let seen = match tokio::time::timeout(timeout, rx.wait_for(cond)).await {
        Ok(Ok(state)) => return state.clone(),
        Ok(Err(_)) => "the pod's state channel closed",
        Err(_) => "timed out",
    };
    panic!(
        "{seen} after {timeout:?} waiting for {what}; last state: {:#?}",
        *rx.borrow()
    )
}

/// Polls `probe` every 50 ms until it yields a value; on timeout fails with `what`.
async fn eventually<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A file's content once it holds a complete line.
async fn read_line_file(path: &Path) -> String {
    eventually(
        &format!("{} to be written", path.display()),
        Duration::from_secs(15),
        || std::fs::read_to_string(path).ok().filter(|s| s.ends_with('\n')),
    )
    .await
}

fn main_container<'a>(state: &'a PodState, name: &str) -> &'a ContainerState {
    state
        .containers
        .iter()
        .find(|c| c.name == name)
        .expect("container in state")
}

fn is_running(c: &ContainerState) -> bool {
    matches!(c.state, ProcessState::Running { .. })
}

fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(format!("GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// Every process in the same PID namespace as `pid`.
fn pid_namespace_members(pid: u32) -> Vec<u32> {
    let ns = |p: u32| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    let Some(target) = ns(pid) else { return Vec::new() };
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| ns(*p).as_ref() == Some(&target))
        .collect()
}

fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Exited (a zombie is only waiting for its parent).
fn is_gone(pid: u32) -> bool {
    process_state(pid).is_none_or(|s| matches!(s, 'Z' | 'X'))
}

fn command_output(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts the host holds nothing of the pod: netns, veth, mounts, processes, runtime state.
fn assert_sandbox_gone(fx: &Fixture, handle: &PodHandle, pids: &[u32]) {
    let netns = command_output("ip", &["netns", "list"]);
    assert!(
        !netns.contains(handle.netns_name()),
        "netns {} still listed:\n{netns}",
        handle.netns_name()
    );
    let links = command_output("ip", &["link"]);
    assert!(
        !links.contains(handle.host_veth_name()),
        "veth {} still present:\n{links}",
        handle.host_veth_name()
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let base = fx.base.to_str().unwrap();
    let leftover: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(base) || l.contains(handle.netns_name()))
        .collect();
    assert!(leftover.is_empty(), "mounts left behind: {leftover:#?}");
    let alive: Vec<u32> = pids.iter().copied().filter(|p| !is_gone(*p)).collect();
    assert!(alive.is_empty(), "processes left behind: {alive:?}");
    let pod_dir = fx.base.join("state/pods").join(handle.uid());
    let remaining: Vec<String> = std::fs::read_dir(&pod_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        remaining,
        vec!["logs".to_owned()],
        "runtime state left in {}",
        pod_dir.display()
    );
}

#[tokio::test]
async fn container_sees_its_volumes_and_image_and_its_command_is_pid_1() {
    let fx = Fixture::new(1);
    std::fs::write(fx.data().join("in.txt"), "from the host\n").unwrap();
    let conf = fx.base.join("app.conf");
    std::fs::write(&conf, "key=value\n").unwrap();
    let ro = fx.base.join("ro");
    std::fs::create_dir_all(&ro).unwrap();

    let mut main = fx.container(
        "main",
        &[
            "sh",
            "-c",
            "echo $$ > /data/pid; cat /data/in.txt > /data/out.txt; cat /etc/config/app.conf > /data/conf; \
             hello > /data/hello; cat /proc/sys/kernel/hostname > /data/hostname; \
             grep -c api.example /etc/hosts > /data/hosts; echo $GREETING > /data/env; \
             (touch /ro/x 2>/dev/null && echo writable || echo read-only) > /data/ro; \
             ls /proc | grep -c '^[0-9]' > /data/procs; echo done > /data/done; exec sleep 1000",
        ],
    );
    main.mounts.push(MountPlan {
        host_path: conf,
        container_path: "/etc/config/app.conf".into(),
        read_only: true,
    });
    main.mounts.push(MountPlan {
        host_path: ro,
        container_path: "/ro".into(),
        read_only: true,
    });
    let mut locked = fx.container(
        "locked",
        &[
            "sh",
            "-c",
            "(touch /usr/x 2>/dev/null && echo writable || echo read-only) > /data/locked-usr; \
             (touch /x 2>/dev/null && echo writable || echo read-only) > /data/locked-root; \
             (touch /tmp/x 2>/dev/null && echo writable || echo read-only) > /data/locked-tmp; \
             (touch /data/x && echo writable || echo read-only) > /data/locked-volume; exec sleep 1000",
        ],
    );
    locked.read_only_root = true;
    let handle = fx.runtime.start(fx.pod(0, vec![main, locked])).await.unwrap();

    assert_eq!(read_line_file(&fx.data().join("done")).await, "done\n");
    let data = |f: &str| std::fs::read_to_string(fx.data().join(f)).unwrap();
    assert_eq!(data("pid"), "1\n", "the command is PID 1 of its namespace");
    assert_eq!(data("out.txt"), "from the host\n");
    assert_eq!(data("conf"), "key=value\n", "a file mounts onto a file path");
    assert_eq!(
        data("hello"),
        "hello from the image\n",
        "the image's usr/ is layered over the host's"
    );
    assert_eq!(data("hostname"), "test-1-0\n");
    assert_eq!(
        data("hosts"),
        "1\n",
        "the pod's /etc/hosts holds the plan's entries"
    );
    assert_eq!(data("env"), "hi\n");
    assert_eq!(data("ro"), "read-only\n");
    let procs: u32 = data("procs").trim().parse().unwrap();
    assert!(
        procs <= 4,
        "a fresh /proc shows only the container's processes, saw {procs}"
    );

    assert_eq!(
        read_line_file(&fx.data().join("locked-volume")).await,
        "writable\n"
    );
    assert_eq!(data("locked-usr"), "read-only\n");
    assert_eq!(data("locked-root"), "read-only\n");
    assert_eq!(data("locked-tmp"), "read-only\n");

    let pid = eventually("main's pid", Duration::from_secs(5), || {
        handle.container_pid("main")
    })
    .await;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert_eq!(nspid.split_whitespace().last(), Some("1"), "{nspid}");
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        cmdline.starts_with("sleep\0"),
        "PID 1 is the exec'd command, got {cmdline:?}"
    );
    assert!(
        !fx.base
            .join("state/pods")
            .join(handle.uid())
            .join("containers/main/usr/upper/x")
            .exists()
    );

    handle.stop(Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn container_and_its_exec_probes_run_as_the_requested_user_in_the_working_dir() {
    let fx = Fixture::new(16);
    let shared = fx.data().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let mut c = fx.container(
        "c",
        &[
            "sh",
            "-c",
            "echo $(id -u):$(id -g):$(id -G):$(pwd) > /data/shared/main; exec sleep 1000",
        ],
    );
    c.run_as_user = Some(65534);
    c.run_as_group = Some(65533);
    c.working_dir = Some("/work/dir".into());
    c.readiness_probe = Some(probe(exec("echo $(id -u):$(id -g) > /data/shared/probe"), 200, 1));
    let handle = fx.runtime.start(fx.pod(0, vec![c])).await.unwrap();

    assert_eq!(
        read_line_file(&fx.data().join("shared/main")).await,
        "65534:65533:65533:/work/dir\n"
    );
    assert_eq!(
        read_line_file(&fx.data().join("shared/probe")).await,
        "65534:65533\n"
    );
    let mut rx = handle.state();
    wait_state(&mut rx, "c ready", Duration::from_secs(10), |s| {
        main_container(s, "c").ready
    })
    .await;
    handle.stop(Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn pod_ip_is_reachable_from_the_host_and_http_readiness_turns_ready() {
    let fx = Fixture::new(2);
    let ip = fx.ip(0).to_string();
    let mut web = fx.http_server("web", &ip, 8080);
    web.readiness_probe = Some(probe(
        Action::HttpGet {
            port: 8080,
            path: "/".into(),
            https: false,
        },
        200,
        1,
    ));
    std::fs::write(fx.data().join("index.html"), "served from the pod\n").unwrap();
    let handle = fx.runtime.start(fx.pod(0, vec![web])).await.unwrap();
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap()
            .trim(),
        "1",
        "the runtime turns on forwarding for its pods (the host answers their gateway's ARP)"
    );

    let mut rx = handle.state();
    let state = wait_state(&mut rx, "web ready", Duration::from_secs(20), |s| {
        main_container(s, "web").ready
    })
    .await;
    let web = main_container(&state, "web");
    assert!(is_running(web) && web.started, "{web:?}");
    let response = http_get(SocketAddr::new(fx.ip(0).into(), 8080)).unwrap();
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(response.contains("served from the pod"), "{response}");

    handle.stop(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn failing_readiness_probe_keeps_the_container_unready() {
    let fx = Fixture::new(3);
    let mut c = fx.container("c", &["sleep", "1000"]);
    // An exec probe runs inside the container: it sees the container's /data.
    c.readiness_probe = Some(probe(exec("echo probed >> /data/probes; exit 1"), 200, 1));
    let handle = fx.runtime.start(fx.pod(0, vec![c])).await.unwrap();
    let mut rx = handle.state();
    wait_state(&mut rx, "c running", Duration::from_secs(10), |s| {
        is_running(main_container(s, "c"))
    })
    .await;

    let probes = fx.data().join("probes");
    eventually("three failed readiness probes", Duration::from_secs(10), || {
        assert!(
            !main_container(&rx.borrow(), "c").ready,
            "a container failing readiness became ready"
        );
        std::fs::read_to_string(&probes)
            .ok()
            .filter(|s| s.lines().count() >= 3)
    })
    .await;
    let state = rx.borrow().clone();
    let c = main_container(&state, "c");
    assert!(is_running(c) && c.started && !c.ready, "{c:?}");

    handle.stop(Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn crashing_container_backs_off_and_counts_restarts() {
    let fx = Fixture::new(4);
    let c = fx.container("crash", &["sh", "-c", "echo crashing; exit 3"]);
    let handle = fx.runtime.start(fx.pod(0, vec![c])).await.unwrap();
    let mut rx = handle.state();

    let state = wait_state(&mut rx, "CrashLoopBackOff", Duration::from_secs(15), |s| {
        matches!(&main_container(s, "crash").state, ProcessState::Waiting { reason, .. } if reason == "CrashLoopBackOff")
    })
    .await;
    let c = main_container(&state, "crash");
    assert_eq!(
        c.restart_count, 1,
        "first restart is immediate, the second backs off: {c:?}"
    );
    let last = c.last_termination.as_ref().expect("lastState");
    assert_eq!((last.exit_code, last.reason.as_str()), (3, "Error"));
    assert!(!c.ready);

    let state = wait_state(&mut rx, "second restart", Duration::from_secs(20), |s| {
        main_container(s, "crash").restart_count >= 2
    })
    .await;
    assert_eq!(main_container(&state, "crash").restart_count, 2);
    let previous = handle.log_path("crash", true).expect("previous run's log");
    assert!(
        std::fs::read_to_string(previous)
            .unwrap()
            .contains(" stdout F crashing")
    );

    handle.stop(Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn init_container_completes_before_the_main_container_starts() {
    let fx = Fixture::new(5);
    let mut plan = fx.pod(
        0,
        vec![fx.container(
            "main",
            &[
                "sh",
                "-c",
                "(test -f /data/init-done && echo yes || echo no) > /data/main-saw-init; exec sleep 1000",
            ],
        )],
    );
    plan.init_containers =
        vec![fx.container("setup", &["sh", "-c", "sleep 0.3; echo done > /data/init-done"])];
    let handle = fx.runtime.start(plan).await.unwrap();

    assert_eq!(read_line_file(&fx.data().join("main-saw-init")).await, "yes\n");
    let mut rx = handle.state();
    let state = wait_state(&mut rx, "main running", Duration::from_secs(10), |s| {
        is_running(main_container(s, "main"))
    })
    .await;
    assert!(state.initialized);
    let init = &state.init_containers[0];
    assert!(
        matches!(&init.state, ProcessState::Terminated(t) if t.exit_code == 0 && t.reason == "Completed"),
        "{init:?}"
    );

    handle.stop(Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn failed_init_container_with_never_policy_finishes_the_pod() {
    let fx = Fixture::new(6);
    let mut plan = fx.pod(0, vec![fx.container("main", &["sleep", "1000"])]);
    plan.init_containers = vec![fx.container("setup", &["sh", "-c", "exit 7"])];
    plan.restart_policy = RestartPolicy::Never;
    let handle = fx.runtime.start(plan).await.unwrap();
    let mut rx = handle.state();
    let state = wait_state(&mut rx, "pod finished", Duration::from_secs(10), |s| s.finished).await;
    assert!(!state.initialized);
    assert!(matches!(&state.init_containers[0].state, ProcessState::Terminated(t) if t.exit_code == 7));
    assert!(
        matches!(&state.containers[0].state, ProcessState::Waiting { reason, .. } if reason == "PodInitializing")
    );
    handle.stop(Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn stop_escalates_to_sigkill_after_the_grace_period_and_leaves_nothing_behind() {
    let fx = Fixture::new(7);
    let c = fx.container(
        "stubborn",
        &["sh", "-c", "trap '' TERM; sleep 1000 & sleep 1001 & wait"],
    );
    let handle = fx.runtime.start(fx.pod(0, vec![c])).await.unwrap();
    let pid = eventually("stubborn's pid", Duration::from_secs(10), || {
        handle.container_pid("stubborn")
    })
    .await;
    let pids = eventually("three processes", Duration::from_secs(10), || {
        Some(pid_namespace_members(pid)).filter(|p| p.len() >= 3)
    })
    .await;

    let began = Instant::now();
    handle.stop(Duration::from_secs(1)).await.unwrap();
    let took = began.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "SIGKILL came before the grace period ended: {took:?}"
    );
    assert!(took < Duration::from_secs(8), "stop took {took:?}");

    let state = handle.state().borrow().clone();
    assert!(state.finished);
    let c = main_container(&state, "stubborn");
    assert!(
        matches!(&c.state, ProcessState::Terminated(t) if t.exit_code == 137 && t.signal == Some(9)),
        "{c:?}"
    );
    assert_sandbox_gone(&fx, &handle, &pids);
    handle
        .stop(Duration::from_secs(1))
        .await
        .expect("stop is idempotent");
}

#[tokio::test]
async fn stop_runs_the_pre_stop_hook_then_sigterm() {
    let fx = Fixture::new(8);
    let mut c = fx.container(
        "polite",
        &["sh", "-c", "trap 'echo term > /data/term; exit 0' TERM; echo trapping > /data/trapping; while true; do sleep 0.1; done"],
    );
    c.pre_stop = Some(exec("echo prestop > /data/prestop"));
    let handle = fx.runtime.start(fx.pod(0, vec![c])).await.unwrap();
    let mut rx = handle.state();
    wait_state(&mut rx, "polite running", Duration::from_secs(10), |s| {
        is_running(main_container(s, "polite"))
    })
    .await;
    // PID 1 only receives the signals it has a handler for: stop only once the trap is set.
    read_line_file(&fx.data().join("trapping")).await;

    let began = Instant::now();
    handle.stop(Duration::from_secs(20)).await.unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "a container that exits on SIGTERM waited for the grace period"
    );
    assert_eq!(
        std::fs::read_to_string(fx.data().join("prestop")).unwrap(),
        "prestop\n"
    );
    assert_eq!(std::fs::read_to_string(fx.data().join("term")).unwrap(), "term\n");
    let state = handle.state().borrow().clone();
    let c = main_container(&state, "polite");
    assert!(
        matches!(&c.state, ProcessState::Terminated(t) if t.exit_code == 0 && t.reason == "Completed"),
        "{c:?}"
    );
}

#[tokio::test]
async fn freeze_stops_every_process_of_the_pod_and_thaw_resumes_them() {
    let fx = Fixture::new(9);
    let c = fx.container("c", &["sh", "-c", "sleep 1000 & while true; do sleep 1; done"]);
    let handle = fx.runtime.start(fx.pod(0, vec![c])).await.unwrap();
    let pid = eventually("c's pid", Duration::from_secs(10), || handle.container_pid("c")).await;
    eventually("two processes", Duration::from_secs(10), || {
        Some(()).filter(|()| pid_namespace_members(pid).len() >= 2)
    })
    .await;

    handle.freeze().unwrap();
    eventually("every process stopped", Duration::from_secs(5), || {
        let states: Vec<_> = pid_namespace_members(pid)
            .into_iter()
            .map(process_state)
            .collect();
        states.iter().all(|s| *s == Some('T')).then_some(())
    })
    .await;
    handle.thaw().unwrap();
    eventually("every process resumed", Duration::from_secs(5), || {
        let states: Vec<_> = pid_namespace_members(pid)
            .into_iter()
            .map(process_state)
            .collect();
        states.iter().all(|s| matches!(s, Some('S' | 'R'))).then_some(())
    })
    .await;

    handle.stop(Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn cut_network_isolates_the_pod_until_restored() {
    let fx = Fixture::new(10);
    let ip = fx.ip(0).to_string();
    let mut web = fx.http_server("web", &ip, 8080);
    web.readiness_probe = Some(probe(Action::TcpSocket { port: 8080 }, 200, 1));
    let handle = fx.runtime.start(fx.pod(0, vec![web])).await.unwrap();
    let mut rx = handle.state();
    wait_state(&mut rx, "web ready", Duration::from_secs(20), |s| {
        main_container(s, "web").ready
    })
    .await;
    let addr = SocketAddr::new(fx.ip(0).into(), 8080);
    http_get(addr).unwrap();

    handle.cut_network().unwrap();
    eventually("the pod to become unreachable", Duration::from_secs(5), || {
        http_get(addr).err()
    })
    .await;
    wait_state(
        &mut rx,
        "web unready while cut off",
        Duration::from_secs(10),
        |s| !main_container(s, "web").ready,
    )
    .await;

    handle.restore_network().unwrap();
    eventually("the pod to be reachable again", Duration::from_secs(10), || {
        http_get(addr).ok()
    })
    .await;
    wait_state(&mut rx, "web ready again", Duration::from_secs(10), |s| {
        main_container(s, "web").ready
    })
    .await;

    handle.stop(Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn unknown_image_waits_in_err_image_pull() {
    let fx = Fixture::new(11);
    let mut c = fx.container("c", &["sleep", "1000"]);
    c.image_root = fx.base.join("no-such-image");
    c.image = "nowhere/unknown:1".into();
    let handle = fx.runtime.start(fx.pod(0, vec![c])).await.unwrap();
    let mut rx = handle.state();
    let state = wait_state(&mut rx, "ErrImagePull", Duration::from_secs(10), |s| {
        matches!(&main_container(s, "c").state, ProcessState::Waiting { reason, .. } if reason == "ErrImagePull")
    })
    .await;
    let ProcessState::Waiting { message, .. } = &main_container(&state, "c").state else {
        unreachable!()
    };
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("nowhere/unknown:1")),
        "{message:?}"
    );
    assert!(
        handle.log_path("c", false).is_none(),
        "a container without image never ran"
    );
    assert!(handle.container_pid("c").is_none());
    handle.stop(Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn logs_are_written_in_cri_format() {
    let fx = Fixture::new(12);
    let c = fx.container(
        "talker",
        &[
            "sh",
            "-c",
            "echo to-stdout; echo to-stderr >&2; printf no-newline",
        ],
    );
    let mut plan = fx.pod(0, vec![c]);
    plan.restart_policy = RestartPolicy::Never;
    let handle = fx.runtime.start(plan).await.unwrap();
    let mut rx = handle.state();
    let state = wait_state(&mut rx, "pod finished", Duration::from_secs(10), |s| s.finished).await;
    let c = main_container(&state, "talker");
    assert!(
        matches!(&c.state, ProcessState::Terminated(t) if t.exit_code == 0 && t.reason == "Completed"),
        "{c:?}"
    );

    let log = std::fs::read_to_string(handle.log_path("talker", false).expect("log file")).unwrap();
    let mut seen = Vec::new();
    for line in log.lines() {
        let (stamp, rest) = line.split_once(' ').unwrap();
        assert_eq!(stamp.len(), 30, "RFC3339 with nanoseconds: {line}");
        assert!(
            stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T' && stamp.as_bytes()[19] == b'.',
            "{line}"
        );
        seen.push(rest.to_owned());
    }
    seen.sort();
    assert_eq!(
        seen,
        vec!["stderr F to-stderr", "stdout F no-newline", "stdout F to-stdout"]
    );
    assert!(handle.log_path("talker", true).is_none());
    handle.stop(Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn missing_executable_is_a_start_error_with_exit_code_127() {
    let fx = Fixture::new(13);
    let c = fx.container("c", &["no-such-program"]);
    let mut plan = fx.pod(0, vec![c]);
    plan.restart_policy = RestartPolicy::Never;
    let handle = fx.runtime.start(plan).await.unwrap();
    let mut rx = handle.state();
    let state = wait_state(&mut rx, "pod finished", Duration::from_secs(10), |s| s.finished).await;
    let c = main_container(&state, "c");
    let ProcessState::Terminated(t) = &c.state else {
        panic!("{c:?}")
    };
    assert_eq!((t.exit_code, t.reason.as_str()), (127, "StartError"));
    assert!(
        t.message
            .as_deref()
            .is_some_and(|m| m.contains("executable file not found")),
        "{t:?}"
    );
    handle.stop(Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn failed_liveness_probe_restarts_the_container_once_startup_passed() {
    let fx = Fixture::new(14);
    let mut c = fx.container("c", &["sh", "-c", "sleep 0.6; touch /tmp/up; exec sleep 1000"]);
    c.startup_probe = Some(probe(
        exec("echo startup >> /data/probes; test -f /tmp/up"),
        100,
        100,
    ));
    c.liveness_probe = Some(probe(exec("echo liveness >> /data/probes; exit 1"), 100, 2));
    let mut plan = fx.pod(0, vec![c]);
    plan.termination_grace = Duration::from_secs(1);
    let handle = fx.runtime.start(plan).await.unwrap();
    let mut rx = handle.state();

    let state = wait_state(&mut rx, "a restart", Duration::from_secs(20), |s| {
        main_container(s, "c").restart_count >= 1
    })
    .await;
    let last = main_container(&state, "c")
        .last_termination
        .clone()
        .expect("lastState");
    // `sleep` as PID 1 ignores SIGTERM: killed after the grace period.
    assert_eq!((last.exit_code, last.signal), (137, Some(9)), "{last:?}");
    let probes = std::fs::read_to_string(fx.data().join("probes")).unwrap();
    let first: Vec<&str> = probes.lines().take_while(|l| *l == "startup").collect();
    assert!(first.len() >= 2, "liveness ran before startup passed:\n{probes}");
    handle.stop(Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn remove_orphans_cleans_up_after_a_kubelet_restart() {
    let fx = Fixture::new(15);
    let state_dir = fx.base.join("state");
    let plans = [
        fx.pod(0, vec![fx.container("c", &["sleep", "1000"])]),
        fx.pod(1, vec![fx.container("c", &["sleep", "1001"])]),
    ];
    // The "old kubelet": its own tokio runtime, shut down while its pods still run.
    let program = PathBuf::from(env!("CARGO_BIN_EXE_cnredis-kubelet"));
    let (doomed, kept) = {
        let state_dir = state_dir.clone();
        let plans = plans.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let pids = rt.block_on(async {
                let old = Runtime::new(state_dir).unwrap().with_init_program(program);
                let mut pids = Vec::new();
                for plan in plans {
                    let handle = old.start(plan).await.unwrap();
                    let pid = eventually("pid", Duration::from_secs(10), || handle.container_pid("c")).await;
                    pids.push((handle, pid));
                }
                pids
            });
            rt.shutdown_background();
            let mut pids = pids
                .into_iter()
                .map(|(h, pid)| (h.netns_name().to_owned(), h.host_veth_name().to_owned(), pid));
            (pids.next().unwrap(), pids.next().unwrap())
        })
        .join()
        .unwrap()
    };

    let new = Runtime::new(state_dir).unwrap();
    new.remove_orphans(&HashSet::from([plans[1].uid.clone()]))
        .await
        .unwrap();

    let netns = command_output("ip", &["netns", "list"]);
    let links = command_output("ip", &["link"]);
    assert!(
        !netns.contains(&doomed.0) && !links.contains(&doomed.1),
        "orphan left:\n{netns}\n{links}"
    );
    eventually("the orphan's process to end", Duration::from_secs(5), || {
        is_gone(doomed.2).then_some(())
    })
    .await;
    assert!(
        netns.contains(&kept.0) && links.contains(&kept.1),
        "kept pod's sandbox removed:\n{netns}\n{links}"
    );
    assert!(
        matches!(process_state(kept.2), Some('S' | 'R')),
        "kept pod's process gone"
    );
}
