//! `cnredis instance run`: find the engine, start the cluster watch, the lease, the API and the loop, and
//! supervise the server as PID 1 until SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::{Engine, EngineKind};
use crate::decide::{self, BootRole, ISOLATED_PRIMARY};
use crate::failsafe;
use crate::http::{self, ApiTls};
use crate::lease::{LeaseClock, PrimaryLease};
use crate::manager::{self, Identity, Manager};
use crate::restore;
use crate::server::{FENCED_MIN_REPLICAS, FENCED_PING_PERIOD};
use crate::source::ClusterSource;
use crate::supervisor::{self, Child, Incoming, Reaper, Signals};

/// Everything `instance run` needs, from flags and the downward API.
pub struct RunOptions {
    pub identity: Identity,
    pub source: ClusterSource,
    /// The Kubernetes client for the primary lease, and the lease duration; `None` runs without a lease.
    pub lease: Option<(kube::Client, Duration)>,
    pub api_addr: SocketAddr,
    /// The instance API certificate; without it the API is not served (integration runs may omit it).
    pub api_tls: Option<PathBuf>,
    pub metrics_addr: SocketAddr,
    /// Directory searched for the engine before `PATH`.
    pub engine_dir: Option<PathBuf>,
}

/// The first of `names` found in `engine_dir`, else in a directory of `PATH` (in that order of names).
pub fn find_binary(engine_dir: Option<&Path>, names: &[&str]) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = engine_dir.map(Path::to_path_buf).into_iter().collect();
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    names
        .iter()
        .find_map(|name| dirs.iter().map(|dir| dir.join(name)).find(|path| path.is_file()))
}

/// Finds `valkey-server`, else `redis-server`, and reads its version. Runs before the reaper starts: the
/// version probe is the only child the manager waits for itself.
pub fn detect_engine(engine_dir: Option<&Path>) -> anyhow::Result<(PathBuf, Engine)> {
    let names = [
        EngineKind::Valkey.server_binary(),
        EngineKind::Redis.server_binary(),
    ];
    let binary =
        find_binary(engine_dir, &names).context("neither valkey-server nor redis-server is in PATH")?;
    let output = Command::new(&binary)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", binary.display()))?;
    let engine = Engine::parse_version_output(&String::from_utf8_lossy(&output.stdout))?;
    Ok((binary, engine))
}

/// Whether the data directory holds a dataset the server will load.
pub fn dataset_on_disk(data_dir: &Path) -> bool {
    let non_empty = |path: &Path| std::fs::metadata(path).is_ok_and(|meta| meta.len() > 0);
    non_empty(&data_dir.join("dump.rdb"))
        || std::fs::read_dir(data_dir.join("appendonlydir"))
            .map(|entries| entries.flatten().any(|entry| non_empty(&entry.path())))
            .unwrap_or(false)
}

/// Removes what an interrupted save or rewrite leaves behind (`temp-<pid>.rdb`, `temp-rewriteaof-*`).
pub fn remove_stale_temp_files(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_temp = name.to_str().is_some_and(|name| name.starts_with("temp-"));
        if is_temp && entry.file_type().is_ok_and(|kind| kind.is_file()) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(file = %entry.path().display(), "removed a stale temporary file"),
                Err(error) => tracing::warn!(file = %entry.path().display(), %error, "cannot remove"),
            }
        }
    }
}

pub async fn run(options: RunOptions) -> anyhow::Result<()> {
    let (binary, engine) = detect_engine(options.engine_dir.as_deref())?;
    tracing::info!(engine = %engine, binary = %binary.display(), "engine found");
    std::fs::create_dir_all(&options.identity.run_dir)
        .with_context(|| format!("creating {}", options.identity.run_dir.display()))?;
    let reaper = Reaper::start();
    let mut signals = Signals::install()?;

    let watch = options.source.start();
    let lease = options.lease.map(|(client, duration)| {
        PrimaryLease::new(
            client,
            &options.identity.namespace,
            cnredis_api::names::primary_lease(&options.identity.cluster_name),
            options.identity.pod_name.clone(),
            duration,
        )
    });
    let manager = Manager::new(options.identity, engine, watch, lease);

    if let Some(dir) = options.api_tls.clone() {
        let api = http::serve_api(options.api_addr, ApiTls { dir }, manager.clone());
        tokio::spawn(async move {
            if let Err(error) = api.await {
                tracing::error!(%error, "instance API stopped");
            }
        });
    } else {
        tracing::warn!("no instance API certificate given: the instance API is not served");
    }
    let metrics = http::serve_metrics(options.metrics_addr, manager.clone());
    tokio::spawn(async move {
        if let Err(error) = metrics.await {
            tracing::error!(%error, "metrics endpoint stopped");
        }
    });
    tokio::spawn(reconcile_loop(manager.clone()));
    if manager.lease.is_some() {
        manager
            .spawn_lease_watchdog()
            .context("starting the lease watchdog")?;
        tokio::spawn(renew_loop(manager.clone(), options.api_tls.clone()));
    }
    supervise(manager, reaper, &mut signals, binary).await
}

/// Starts the server, restarts it when it exits, stops it on SIGTERM.
async fn supervise(
    manager: Arc<Manager>,
    reaper: Reaper,
    signals: &mut Signals,
    binary: PathBuf,
) -> anyhow::Result<()> {
    let mut watch = manager.cluster.latest.clone();
    // The guards need the cluster status: no server starts before it has been read.
    loop {
        if watch.borrow().is_some() {
            break;
        }
        tokio::select! {
            changed = watch.changed() => changed.context("cluster watch ended")?,
            signal = signals.next() => if let Incoming::Terminate(signal) = signal {
                tracing::info!(%signal, "stopping before the server started");
                return Ok(());
            },
            _ = tokio::time::sleep(Duration::from_secs(10)) => {
                tracing::info!("waiting for the RedisCluster to be readable");
            }
        }
    }
    // A restored cluster's first instance fetches its dataset before the server ever starts.
    loop {
        let view = manager.cluster.current().context("no cluster view")?;
        let identity = &manager.identity;
        let Some(recovery) = restore::wanted(&view, &identity.pod_name, &identity.data_dir) else {
            break;
        };
        tracing::info!(backup = %recovery.backup_id, cluster = %recovery.cluster, "restoring before the first start");
        let outcome = tokio::select! {
            outcome = restore::restore(&manager, &view, &recovery) => outcome,
            signal = signals.next() => match signal {
                Incoming::Terminate(signal) => {
                    tracing::info!(%signal, "stopping during the restore");
                    return Ok(());
                }
                Incoming::Forward(_) => continue,
            },
        };
        match outcome {
            Ok(_) => {
                restore::succeeded(&manager);
                break;
            }
            Err(error) => {
                tracing::warn!(%error, retry_in = ?restore::RETRY, "restore failed");
                restore::failed(&manager, &error);
                tokio::select! {
                    _ = tokio::time::sleep(restore::RETRY) => {}
                    signal = signals.next() => if let Incoming::Terminate(signal) = signal {
                        tracing::info!(%signal, "stopping after a failed restore");
                        return Ok(());
                    },
                }
            }
        }
    }
    let mut failures = 0u32;
    loop {
        let mut child = start_server(&manager, &reaper, &binary).await?;
        let started = Instant::now();
        loop {
            tokio::select! {
                exit = &mut child.exit => {
                    let status = exit.map(|s| s.to_string()).unwrap_or_else(|_| "unknown".into());
                    failures = if started.elapsed() >= supervisor::STABLE_RUN { 1 } else { failures + 1 };
                    let delay = supervisor::restart_delay(failures);
                    let restarted_primary = {
                        let mut state = manager.state.lock().await;
                        state.server_restarts += 1;
                        state.server_started = None;
                        // The primary's next start is a restart (isolated, fenced): say so now, while
                        // it waits out the restart delay, so the operator fails over without waiting
                        // for the server to come back first.
                        if let Some(view) = manager.cluster.current() {
                            let desired = manager.desired(&view, &state);
                            state.restarted_primary = decide::is_primary_restart(&desired);
                        }
                        state.restarted_primary
                    };
                    tracing::warn!(%status, ?delay, restarted_primary, "server exited; restarting");
                    manager.reset_server_connections().await;
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        signal = signals.next() => if let Incoming::Terminate(signal) = signal {
                            tracing::info!(%signal, "stopping while the server was down");
                            return Ok(());
                        },
                    }
                    break;
                }
                signal = signals.next() => match signal {
                    Incoming::Forward(signal) => supervisor::send_signal(child.pid, signal)?,
                    Incoming::Terminate(signal) => {
                        let grace = stop_grace(&manager);
                        tracing::info!(%signal, ?grace, "stopping the server");
                        let began = Instant::now();
                        let status = supervisor::stop(&mut child, grace).await?;
                        tracing::info!(%status, elapsed = ?began.elapsed(), "server stopped");
                        return Ok(());
                    }
                },
            }
        }
    }
}

/// The time the server gets to shut down: the pod's grace period (`spec.stopDelaySeconds`) less a
/// margin for the manager's own exit.
fn stop_grace(manager: &Manager) -> Duration {
    let seconds = manager
        .cluster
        .current()
        .map(|view| view.cluster.spec.stop_delay_seconds)
        .unwrap_or(30);
    Duration::from_secs(seconds.saturating_sub(2).max(1) as u64)
}

/// Renders the configuration for this start (the boot-time guards decide its role) and starts the server.
async fn start_server(manager: &Manager, reaper: &Reaper, binary: &Path) -> anyhow::Result<Child> {
    let identity = &manager.identity;
    let view = manager.cluster.current().context("no cluster view")?;
    remove_stale_temp_files(&identity.data_dir);
    let on_disk = dataset_on_disk(&identity.data_dir);
    let mut state = manager.state.lock().await;
    let desired = manager.desired(&view, &state);
    let (mut role, mut fenced) = decide::boot_plan(&desired, on_disk);
    let status = view.cluster.status.clone().unwrap_or_default();
    let promoting = desired.current_primary.as_deref() != Some(identity.pod_name.as_str());
    if role == BootRole::Primary
        && promoting
        && let Some(left) = manager.promotion_hold(failsafe::unproven_fence(&status))
    {
        // Promoted later by the loop, once the hold is over.
        (role, fenced) = decide::boot_without_lease(&desired);
        tracing::warn!(
            ?left,
            ?role,
            "the old primary may still hold its lease by promises: not starting as primary"
        );
    }
    if role == BootRole::Primary
        && let Some(lease) = &manager.lease
    {
        let sent = Instant::now();
        match lease.acquire_or_renew(Duration::from_secs(5)).await {
            Ok(()) => manager.lease_clock.send_modify(|clock| {
                clock.renewed(sent);
                clock.primary = true;
            }),
            Err(error) => {
                (role, fenced) = decide::boot_without_lease(&desired);
                tracing::warn!(%error, ?role, "the primary lease is not ours: not starting as primary");
            }
        }
    }
    if let BootRole::Replica { address } = &role
        && let Err(error) = manager.verify_primary(&state, address).await
    {
        // The loop follows it once its certificate answers.
        tracing::warn!(%error, "starting isolated");
        (role, fenced) = (BootRole::Isolated, true);
    }
    let replica_of = match &role {
        BootRole::Primary => None,
        BootRole::Replica { address } => address
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host.to_string(), port.parse().ok()?))),
        BootRole::Isolated => Some((ISOLATED_PRIMARY.0.to_string(), ISOLATED_PRIMARY.1)),
    };
    let password = manager::read_password(identity);
    let mut text = manager.render(&view, password.clone(), replica_of)?;
    if fenced {
        text.push_str(&format!(
            "# fenced at start\nmin-replicas-to-write {FENCED_MIN_REPLICAS}\nmin-replicas-max-lag 10\nrepl-ping-replica-period {FENCED_PING_PERIOD}\n"
        ));
    }
    manager::write_private(&identity.config_path(), &text);
    tracing::info!(?role, fenced, dataset_on_disk = on_disk, "starting the server");
    state.running_config = Some(text);
    state.password = password.clone();
    state.loaded_from_disk = on_disk;
    // A server that starts without a dataset is "empty" only while the cluster records data elsewhere:
    // the first primary of a new cluster starts empty and is not.
    state.had_data = on_disk || !desired.cluster_has_data;
    state.restarted_primary = decide::is_primary_restart(&desired);
    state.server_started = Some(Instant::now());
    state.server_info = None;
    state.observed = None;
    state.link = decide::LinkHistory::default();
    manager.set_server_password(password);
    manager.reset_server_connections().await;
    let mut command = Command::new(binary);
    command.arg(identity.config_path());
    Ok(reaper.spawn(command)?)
}

/// Observes and acts every second, and at once when the cluster view changes.
async fn reconcile_loop(manager: Arc<Manager>) {
    let mut watch = manager.cluster.latest.clone();
    loop {
        manager.reconcile().await;
        tokio::select! {
            _ = watch.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Renews the primary lease every third of its duration while the server answers as primary, and
/// releases it once the server is seen as anything else. When a renewal fails for any reason but another
/// holder, it asks the other instances for their failsafe promises ([`crate::failsafe`]) and holds the
/// lease by them, looking again twice as often until a renewal through the API server succeeds. It never
/// waits for the manager's state (the loop or an API request may hold it): the role and the hold are in
/// the lease clock.
async fn renew_loop(manager: Arc<Manager>, api_tls: Option<PathBuf>) {
    let Some(lease) = manager.lease.clone() else {
        return;
    };
    let period = lease.duration() / 3;
    loop {
        let (renew, primary) = {
            let clock = manager.lease_clock.borrow();
            (clock.should_renew(), clock.primary)
        };
        let mut failsafe = false;
        if renew {
            let sent = Instant::now();
            // Half the period: a failed attempt leaves time for a round of promises before the hold,
            // `duration - 2 s` from the last success, runs out.
            match lease.acquire_or_renew(period / 2).await {
                Ok(()) => {
                    let ended = manager.lease_clock.borrow().by_promises;
                    if ended {
                        tracing::info!("the primary lease is renewed through the API server again");
                        if let Some(episode) = manager
                            .failsafe_episode
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .as_mut()
                        {
                            episode
                                .until
                                .get_or_insert_with(|| jiff::Timestamp::now().to_string());
                        }
                    }
                    manager.lease_clock.send_modify(|clock| clock.renewed(sent));
                }
                Err(crate::lease::LeaseError::HeldByOther { holder, .. }) => {
                    tracing::warn!(%holder, "the primary lease was handed to another pod");
                    manager.lease_clock.send_modify(LeaseClock::lost);
                }
                Err(error) => {
                    failsafe = true;
                    let sent = Instant::now();
                    match failsafe_round(&manager, api_tls.as_deref()).await {
                        Ok(promised) => {
                            if !manager.lease_clock.borrow().by_promises {
                                tracing::warn!(%error, ?promised, "cannot renew the primary lease: held by the promises of every other instance");
                                *manager.failsafe_episode.lock().unwrap_or_else(|p| p.into_inner()) =
                                    Some(cnredis_instance_client::wire::FailsafeEpisode {
                                        since: jiff::Timestamp::now().to_string(),
                                        until: None,
                                        promised_by: promised,
                                    });
                            }
                            manager
                                .lease_clock
                                .send_modify(|clock| clock.held_by_promises(sent));
                        }
                        Err(why) => {
                            tracing::warn!(%error, %why, "cannot renew the primary lease, and no failsafe hold")
                        }
                    }
                }
            }
        } else if !primary {
            manager.lease_clock.send_if_modified(|clock| {
                let held = clock.renewed_at.is_some() || clock.lost;
                clock.released();
                held
            });
        }
        tokio::time::sleep(if failsafe { period / 2 } else { period }).await;
    }
}

/// One round of failsafe promises: every member ([`failsafe::members`]) asked at once, each within
/// [`failsafe::CALL_TIMEOUT`]; the pods that promised, or why there is no hold.
async fn failsafe_round(manager: &Manager, api_tls: Option<&Path>) -> Result<Vec<String>, String> {
    let dir = api_tls.ok_or("no instance API certificate to present")?;
    let client = manager::peer_client(dir, failsafe::CALL_TIMEOUT)?;
    let identity = &manager.identity;
    let view = manager.cluster.current().ok_or("the cluster has not been read")?;
    let status = view.cluster.status.clone().unwrap_or_default();
    let addresses: Vec<(String, std::net::IpAddr)> = view
        .addresses
        .iter()
        .filter_map(|(pod, address)| Some((pod.clone(), address.host.parse().ok()?)))
        .collect();
    // Its own connection: the loop's may be held by a slow command, and nothing here waits for it.
    let server = crate::server::ServerClient::new(identity.socket_path(), manager::read_password(identity));
    let info = server.info().await.map_err(|e| format!("the server: {e}"))?;
    let connected = crate::info::parse(&info).replicas;
    let members = failsafe::members(&identity.pod_name, &status, &addresses, &connected)?;
    let lease = manager
        .lease
        .as_ref()
        .map(PrimaryLease::duration)
        .unwrap_or_default();
    let request = cnredis_instance_client::wire::FailsafeRequest {
        primary: identity.pod_name.clone(),
    };
    let answers = futures::future::join_all(members.iter().map(|member| {
        let target = cnredis_instance_client::Target::new(
            cnredis_pki::instance_server_name(&member.pod, &identity.cluster_name, &identity.namespace),
            member.api,
        );
        let (client, request) = (&client, &request);
        async move {
            match tokio::time::timeout(failsafe::CALL_TIMEOUT, client.failsafe(&target, request)).await {
                Ok(Ok(promise))
                    if promise.pod == member.pod
                        && failsafe::promise_covers(Duration::from_millis(promise.hold_millis), lease) =>
                {
                    Ok(member.pod.clone())
                }
                Ok(Ok(promise)) => Err(format!("{}: a promise of {} ms", member.pod, promise.hold_millis)),
                Ok(Err(error)) => Err(format!("{}: {error}", member.pod)),
                Err(_) => Err(format!(
                    "{}: no answer within {:?}",
                    member.pod,
                    failsafe::CALL_TIMEOUT
                )),
            }
        }
    }))
    .await;
    answers.into_iter().collect()
}
