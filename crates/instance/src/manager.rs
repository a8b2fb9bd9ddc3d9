//! The instance manager's loop: observe the server (`INFO`, the fence, the lease), build what the cluster
//! wants of this pod from its RedisCluster, [`decide`], execute the actions, and apply configuration
//! changes live. The HTTP API goes through the same [`Manager`], so a request and the loop never act on the
//! server at the same time. The lease is the exception: its clock sits outside the shared state, and the
//! [`crate::watchdog`] fences on its own timer and connection when the lease runs out.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cnredis_api::names::ANNOTATION_FENCED_INSTANCES;
use cnredis_api::names::FencedInstances;
use cnredis_instance_client::wire;
use tokio::sync::{Mutex, watch};

use crate::config::{self, ConfigInput, Engine};
use crate::decide::{self, Action, Desired, FenceReason, LeaseState, LinkHistory, Observed, ServerRole};
use crate::failsafe;
use crate::info::ServerInfo;
use crate::lease::{LeaseClock, PrimaryLease, WatchdogStep};
use crate::server::{ServerClient, ServerError};
use crate::source::{Address, ClusterView, ClusterWatch};

/// The server's unix socket, in the run directory (mode 0700: only the container's user).
pub const SERVER_SOCKET: &str = "server.sock";

/// Who this pod is and where its files are.
#[derive(Debug, Clone)]
pub struct Identity {
    pub pod_name: String,
    pub namespace: String,
    pub cluster_name: String,
    pub pod_ip: std::net::Ipv4Addr,
    /// Port of the server (6379 in a pod).
    pub port: u16,
    pub data_dir: PathBuf,
    /// Directory for the rendered configuration file and the server's unix socket.
    pub run_dir: PathBuf,
    /// The projected file holding the server password.
    pub password_file: Option<PathBuf>,
    /// The container's memory limit.
    pub memory_limit_bytes: Option<u64>,
    /// Certificate files of the server itself (`spec.tls`).
    pub server_tls: Option<config::TlsFiles>,
    /// Directory of the object-store credentials directories (projected Secrets), one per store.
    pub object_store_credentials: PathBuf,
    /// The instance API certificate (`ca.crt`, `tls.crt`, `tls.key`) with which this pod checks, before
    /// it replicates from a primary found by its pod's address, that the instance API at that address
    /// holds that pod's certificate: a pod with forged labels (named as the primary while its pod is
    /// being recreated) is never followed nor sent the replication password. `None` where the cluster
    /// is not read from pods (a cluster file).
    pub peer_tls: Option<PathBuf>,
}

impl Identity {
    pub fn config_path(&self) -> PathBuf {
        self.run_dir.join("server.conf")
    }
    pub fn socket_path(&self) -> PathBuf {
        self.run_dir.join(SERVER_SOCKET)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("this pod is not the cluster's targetPrimary ({0})")]
    NotTargetPrimary(String),
    #[error("this pod is the cluster's targetPrimary and is not demoted")]
    IsTargetPrimary,
    #[error("the dataset restarted empty while the cluster records data: fail over instead")]
    EmptyAfterRestart,
    #[error("the primary's server restarted and its dataset may be behind the replicas': fail over instead")]
    RestartedPrimary,
    #[error("still refusing writes: {0}")]
    StillFenced(String),
    #[error("the cluster's RedisCluster has not been read yet")]
    NoClusterView,
    #[error("not following {0}")]
    UnverifiedPrimary(String),
    #[error("server: {0}")]
    Server(#[from] ServerError),
    #[error("{0}")]
    Lease(#[from] crate::lease::LeaseError),
    #[error("{0}")]
    Source(#[from] crate::source::SourceError),
    #[error("configuration: {0}")]
    Config(#[from] config::ConfigError),
    #[error("{what} did not happen within {within:?}")]
    Timeout { what: &'static str, within: Duration },
    #[error(
        "promotion held back for {0:?}: the old primary may still hold its lease by this pod's failsafe promise"
    )]
    PromotionHeld(Duration),
    #[error("no failsafe promise: {0}")]
    NoPromise(String),
}

impl ManagerError {
    /// Machine-readable reason for the API's error body.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotTargetPrimary(_) => "notTargetPrimary",
            Self::IsTargetPrimary => "isTargetPrimary",
            Self::EmptyAfterRestart => "emptyAfterRestart",
            Self::RestartedPrimary => "restartedPrimary",
            Self::StillFenced(_) => "stillFenced",
            Self::NoClusterView => "noClusterView",
            Self::UnverifiedPrimary(_) => "unverifiedPrimary",
            Self::Server(_) => "serverError",
            Self::Lease(_) => "leaseNotHeld",
            Self::Source(_) => "clusterUnreadable",
            Self::Config(_) => "invalidConfiguration",
            Self::Timeout { .. } => "timeout",
            Self::PromotionHeld(_) => "promotionHeld",
            Self::NoPromise(_) => "noPromise",
        }
    }
}

/// What the loop, the API and the metrics share.
pub struct State {
    pub server_info: Option<ServerInfo>,
    pub observed: Option<Observed>,
    pub fence_reasons: Vec<FenceReason>,
    pub empty_after_restart: bool,
    /// The server was started as a restart of the primary ([`decide::is_primary_restart`]): isolated and
    /// fenced until the operator fails over. Forgotten once the status names another target primary.
    pub restarted_primary: bool,
    pub lease: wire::LeaseStatus,
    pub pending_restart: Vec<String>,
    /// The reload (`cnredis.io/reloadedAt`) whose files the last applied configuration reflects.
    pub reloaded_at: Option<String>,
    pub last_error: Option<String>,
    pub server_restarts: u32,
    /// When the running server process was started; `None` while none runs (before the first start, and
    /// between an exit and the restart). Set and cleared under this state's lock, as the boot plan is.
    pub server_started: Option<Instant>,
    /// The dataset was loaded from the data directory at the last start.
    pub loaded_from_disk: bool,
    /// The server is not empty: it started with a dataset, or in a cluster that recorded no data, or it
    /// has held keys or completed a synchronisation since (deleting its keys later does not make it empty).
    pub had_data: bool,
    /// The operator asked for a fence through the API.
    pub api_fence: bool,
    /// The operator asked this pod to follow another primary before the status says so.
    pub demoted_to: Option<Address>,
    /// The configuration the server runs with (the file it started with plus live changes).
    pub running_config: Option<String>,
    pub password: Option<String>,
    /// The replica's link across observations since the server started, for readiness.
    pub link: LinkHistory,
    /// When this demoted primary disconnects its clients again ([`CLIENT_SWEEPS`]).
    pub client_sweeps: Vec<Instant>,
    /// When the operator last asked this pod to promote (`POST /v1/promote`). It counts while the status
    /// names this pod target, for [`PROMOTION_REQUEST_VALIDITY`] (the operator asks again at every
    /// attempt), and is forgotten once the status names it current primary. (Not forgotten on a view that
    /// names another target: the watched view may lag the fresh read the request was checked against.)
    pub promotion_requested: Option<Instant>,
}

/// How long a request to promote counts: longer than a failover or switchover takes to retry it.
pub const PROMOTION_REQUEST_VALIDITY: Duration = Duration::from_secs(60);

/// A demoted primary disconnects its clients at the demotion and again after these delays. A switchover
/// labels its target before the old primary leaves `-leader`, and the Service proxies program a change at
/// most once a second: a client that reconnected through `-leader` meanwhile may have landed here, and
/// most client libraries keep a connection that answers `READONLY`. Sent away again, it reconnects to the
/// new primary. (Clients of `-replica` and `-any` reconnect too, to the same data.)
pub const CLIENT_SWEEPS: [Duration; 3] = [
    Duration::from_millis(1500),
    Duration::from_secs(3),
    Duration::from_secs(6),
];

/// The instance manager: identity, server connection, cluster view, lease, and the shared state.
pub struct Manager {
    pub identity: Identity,
    pub engine: Engine,
    /// The connection the loop, the API and the metrics share.
    pub server: ServerClient,
    /// The lease watchdog's own connection: nothing else uses it, so nothing else can hold it up.
    pub watchdog_server: Arc<ServerClient>,
    pub cluster: ClusterWatch,
    pub lease: Option<PrimaryLease>,
    /// This pod's hold on the primary lease. Outside [`State`]: the renewals, the watchdog and the loop
    /// read and change it without waiting for each other.
    pub lease_clock: watch::Sender<LeaseClock>,
    pub started: Instant,
    pub state: Mutex<State>,
    /// Backups this instance took or is taking.
    pub backups: crate::backup::Backups,
    /// The restore before the first start of a restored cluster's first instance.
    pub restore: std::sync::Mutex<Option<wire::RestoreReport>>,
    /// When this pod last promised the primary to refuse promotion ([`crate::failsafe`]).
    pub promised: std::sync::Mutex<Option<Instant>>,
    /// The latest stretch this pod held its lease by promises, for the report.
    pub failsafe_episode: std::sync::Mutex<Option<wire::FailsafeEpisode>>,
}

/// How long the check of a primary's certificate before following it may take.
const PEER_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a promotion, demotion or fence may take before the API call fails.
const ROLE_CHANGE_DEADLINE: Duration = Duration::from_secs(10);

impl Manager {
    pub fn new(
        identity: Identity,
        engine: Engine,
        cluster: ClusterWatch,
        lease: Option<PrimaryLease>,
    ) -> Arc<Self> {
        let password = read_password(&identity);
        let lease_duration = lease.as_ref().map(PrimaryLease::duration).unwrap_or_default();
        Arc::new(Self {
            server: ServerClient::new(identity.socket_path(), password.clone()),
            watchdog_server: Arc::new(ServerClient::new(identity.socket_path(), password.clone())),
            identity,
            engine,
            cluster,
            lease,
            lease_clock: watch::Sender::new(LeaseClock::new(lease_duration)),
            started: Instant::now(),
            backups: crate::backup::Backups::default(),
            restore: std::sync::Mutex::new(None),
            promised: std::sync::Mutex::new(None),
            failsafe_episode: std::sync::Mutex::new(None),
            state: Mutex::new(State {
                server_info: None,
                observed: None,
                fence_reasons: Vec::new(),
                empty_after_restart: false,
                restarted_primary: false,
                lease: wire::LeaseStatus::Disabled,
                pending_restart: Vec::new(),
                reloaded_at: None,
                last_error: None,
                server_restarts: 0,
                server_started: None,
                loaded_from_disk: false,
                had_data: false,
                api_fence: false,
                demoted_to: None,
                running_config: None,
                password,
                link: LinkHistory::default(),
                client_sweeps: Vec::new(),
                promotion_requested: None,
            }),
        })
    }

    /// What the cluster wants of this pod, from a view and the manager's own requests.
    pub fn desired(&self, view: &ClusterView, state: &State) -> Desired {
        let me = &self.identity.pod_name;
        let status = view.cluster.status.clone().unwrap_or_default();
        let annotation = view
            .cluster
            .metadata
            .annotations
            .as_ref()
            .and_then(|annotations| annotations.get(ANNOTATION_FENCED_INSTANCES));
        // An annotation that cannot be read fences: it may have meant this pod.
        let annotated = FencedInstances::parse(annotation.map(String::as_str))
            .map(|fenced| fenced.contains(me))
            .unwrap_or(true);
        let cluster_has_data = status.instances_status.iter().any(|instance| {
            instance.name != *me
                && (instance.keys.unwrap_or(0) > 0 || instance.replication_offset.unwrap_or(0) > 0)
        });
        let mut desired = Desired {
            pod_name: me.clone(),
            current_primary: status.current_primary.clone(),
            target_primary: status.target_primary.clone(),
            initialized: status.current_primary.is_some(),
            cluster_has_data,
            // A failover away from this pod is recorded before the operator fences it: a restart in
            // between must not boot an unfenced primary.
            fence_requested: annotated
                || state.api_fence
                || status
                    .failover
                    .as_ref()
                    .is_some_and(|failover| failover.from == *me),
            primary_address: status
                .current_primary
                .as_ref()
                .and_then(|primary| view.addresses.get(primary))
                .map(Address::to_string),
            confirmed_primary: self.lease_clock.borrow().confirmed,
            promotion_requested: state
                .promotion_requested
                .is_some_and(|asked| asked.elapsed() < PROMOTION_REQUEST_VALIDITY)
                && status.target_primary.as_deref() == Some(me.as_str()),
        };
        if let Some(address) = &state.demoted_to
            && desired.target_primary.as_deref() != Some(me)
            && desired.current_primary.as_deref() == Some(me)
        {
            // Demoted by the operator before the status names the new primary.
            desired.current_primary = Some(format!("{address} (demoted to)"));
            desired.primary_address = Some(address.to_string());
        }
        desired
    }

    /// Readiness from the latest observation, with the cluster's stale-read bound; `None` before the first
    /// observation.
    pub fn readiness(&self, state: &State) -> Option<decide::Readiness> {
        let max_stale = self
            .cluster
            .current()
            .map(|view| max_stale_read(&view.cluster.spec.failover))
            .unwrap_or_default();
        let observed = state.observed.as_ref()?;
        Some(decide::readiness(
            observed,
            &state.link,
            max_stale,
            Instant::now(),
        ))
    }

    /// The lease has run out while this pod acts as primary and nobody confirmed it: the server must
    /// refuse writes whatever the last observation said.
    pub fn lease_must_fence(&self) -> bool {
        self.lease.is_some() && self.lease_clock.borrow().watchdog_step(Instant::now()) == WatchdogStep::Fence
    }

    /// How much longer a promotion must wait for the promises this pod gave ([`crate::failsafe`]);
    /// `None` when it may go ahead (always without a lease).
    pub fn promotion_hold(&self, unproven_fence: bool) -> Option<Duration> {
        let lease = self.lease.as_ref()?.duration();
        let guard = failsafe::PromotionGuard {
            started: self.started,
            promised: *self.promised.lock().unwrap_or_else(|p| p.into_inner()),
            lease,
        };
        guard.hold(Instant::now(), unproven_fence)
    }

    /// `POST /v1/failsafe` from `asker`, whose certificate the API checked: promises to follow it and to
    /// refuse promotion for the lease's duration plus [`failsafe::PROMISE_HOLD`], if this pod's last
    /// status and a fresh look at its server allow it. The promise is recorded before the answer.
    pub async fn failsafe_promise(&self, asker: &str) -> Result<wire::FailsafePromise, ManagerError> {
        let Some(lease) = self.lease.as_ref().map(PrimaryLease::duration) else {
            return Err(ManagerError::NoPromise(
                "this instance runs without a lease".to_string(),
            ));
        };
        let mut state = self.state.lock().await;
        let observed = self.observe(&mut state).await;
        let view = self.cluster.current().ok_or(ManagerError::NoClusterView)?;
        let status = view.cluster.status.clone().unwrap_or_default();
        let address = view.addresses.get(asker).map(Address::to_string);
        failsafe::may_promise(
            &self.identity.pod_name,
            asker,
            &status,
            address.as_deref(),
            &observed.role,
        )
        .map_err(ManagerError::NoPromise)?;
        *self.promised.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        Ok(wire::FailsafePromise {
            pod: self.identity.pod_name.clone(),
            hold_millis: (lease + failsafe::PROMISE_HOLD).as_millis() as u64,
        })
    }

    /// Starts the [`crate::watchdog`] that fences the server when the lease runs out (with a lease only).
    pub fn spawn_lease_watchdog(&self) -> std::io::Result<()> {
        crate::watchdog::spawn(self.lease_clock.clone(), self.watchdog_server.clone())
    }

    /// The password for new server connections, of the loop's and the watchdog's alike.
    pub fn set_server_password(&self, password: Option<String>) {
        self.server.set_password(password.clone());
        self.watchdog_server.set_password(password);
    }

    /// Forgets the open server connections, after the server restarted.
    pub async fn reset_server_connections(&self) {
        self.server.reset().await;
        self.watchdog_server.reset().await;
    }

    /// One pass of the loop. Errors are recorded in the state (and reported by `/v1/status`).
    pub async fn reconcile(&self) {
        let mut state = self.state.lock().await;
        let result = self.reconcile_locked(&mut state).await;
        let error = result.err().map(|error| error.to_string());
        // Logged when it changes: a loop that fails the same way every second says so once.
        if let Some(error) = &error
            && state.last_error.as_ref() != Some(error)
        {
            tracing::warn!(pod = %self.identity.pod_name, %error, "reconcile");
        }
        state.last_error = error;
    }

    async fn reconcile_locked(&self, state: &mut State) -> Result<(), ManagerError> {
        let observed = self.observe(state).await;
        let Some(view) = self.cluster.current() else {
            return Err(ManagerError::NoClusterView);
        };
        if state
            .demoted_to
            .as_ref()
            .is_some_and(|_| view_moved_on(&view, &self.identity.pod_name))
        {
            state.demoted_to = None;
        }
        let desired = self.desired(&view, state);
        if desired.target_primary.as_deref() != Some(self.identity.pod_name.as_str()) {
            state.restarted_primary = false;
        }
        if desired.current_primary.as_deref() == Some(self.identity.pod_name.as_str()) {
            state.promotion_requested = None;
        }
        let observed = Observed {
            restarted_primary: state.restarted_primary,
            ..observed
        };
        state.fence_reasons = decide::fence_reasons(&observed, &desired);
        let actions = decide::decide(&observed, &desired);
        state.empty_after_restart = actions.contains(&Action::ReportEmptyAfterRestart);
        self.sweep_clients(state, &observed).await?;
        self.execute(state, &actions).await?;
        self.apply_configuration(state, &view).await
    }

    /// Reads the server and the lease into an [`Observed`], keeping the INFO for status and metrics.
    pub async fn observe(&self, state: &mut State) -> Observed {
        let info = match self.server.info().await {
            Ok(text) => Some(crate::info::parse(&text)),
            Err(error) => {
                tracing::debug!(%error, "server did not answer INFO");
                None
            }
        };
        let fenced = match &info {
            Some(_) => self.server.is_fenced().await.unwrap_or(false),
            None => false,
        };
        let role = info
            .as_ref()
            .map(ServerInfo::server_role)
            .unwrap_or(ServerRole::Unknown);
        let now = Instant::now();
        if let Some(info) = &info {
            state.link.observe(&role, now);
            if info.total_keys() > 0 || state.link.synced || state.loaded_from_disk {
                state.had_data = true;
            }
        }
        let answered_primary = info.as_ref().map(|_| role == ServerRole::Primary);
        self.lease_clock
            .send_if_modified(|clock| clock.observed(answered_primary));
        let lease = match &self.lease {
            None if role == ServerRole::Primary => LeaseState::Held,
            None => LeaseState::NotPrimary,
            Some(_) => self.lease_clock.borrow().state(role == ServerRole::Primary, now),
        };
        let by_promises = self.lease_clock.borrow().by_promises;
        state.lease = match (&self.lease, lease) {
            (None, _) => wire::LeaseStatus::Disabled,
            (Some(_), LeaseState::Held) if by_promises => wire::LeaseStatus::Failsafe,
            (Some(_), LeaseState::Held) => wire::LeaseStatus::Held,
            (Some(_), LeaseState::Expired) => wire::LeaseStatus::Expired,
            (Some(_), LeaseState::NotPrimary) => wire::LeaseStatus::NotPrimary,
        };
        let observed = Observed {
            answered: info.is_some(),
            role,
            fenced,
            empty: !state.had_data,
            loading: info.as_ref().is_some_and(|info| info.loading),
            restarted_primary: state.restarted_primary,
            lease,
        };
        state.server_info = info;
        state.observed = Some(observed.clone());
        observed
    }

    /// Disconnects a demoted primary's clients again when a [`CLIENT_SWEEPS`] delay is due (forgotten
    /// if it is no replica any more).
    async fn sweep_clients(&self, state: &mut State, observed: &Observed) -> Result<(), ManagerError> {
        if !matches!(observed.role, ServerRole::Replica { .. }) {
            state.client_sweeps.clear();
            return Ok(());
        }
        let now = Instant::now();
        if !state.client_sweeps.iter().any(|due| *due <= now) {
            return Ok(());
        }
        state.client_sweeps.retain(|due| *due > now);
        tracing::info!(pod = %self.identity.pod_name, left = state.client_sweeps.len(), "disconnecting the clients of a demoted primary again");
        self.server.disconnect_clients().await?;
        Ok(())
    }

    /// Before replicating from `address`: the pod the cluster view gives that address holds its own
    /// instance API certificate there ([`Identity::peer_tls`]). An address the operator named in a
    /// demotion is its word, already authenticated.
    pub async fn verify_primary(&self, state: &State, address: &str) -> Result<(), ManagerError> {
        let Some(dir) = &self.identity.peer_tls else {
            return Ok(());
        };
        if state
            .demoted_to
            .as_ref()
            .is_some_and(|to| to.to_string() == address)
        {
            return Ok(());
        }
        let unverified = |why: String| ManagerError::UnverifiedPrimary(format!("{address}: {why}"));
        let view = self.cluster.current().ok_or(ManagerError::NoClusterView)?;
        let pod = view
            .addresses
            .iter()
            .find(|(_, known)| known.to_string() == address)
            .map(|(pod, _)| pod.clone())
            .ok_or_else(|| unverified("no pod of the cluster has that address".to_string()))?;
        let ip: std::net::IpAddr = split_address(address)
            .0
            .parse()
            .map_err(|_| unverified("not an IP address".to_string()))?;
        let client = peer_client(dir, PEER_CHECK_TIMEOUT).map_err(unverified)?;
        let target = cnredis_instance_client::Target::new(
            cnredis_pki::instance_server_name(&pod, &self.identity.cluster_name, &self.identity.namespace),
            std::net::SocketAddr::new(ip, cnredis_api::names::INSTANCE_API_PORT),
        );
        client.identify(&target).await.map_err(|error| {
            unverified(format!(
                "its instance API does not answer with {pod}'s certificate ({error})"
            ))
        })
    }

    async fn execute(&self, state: &mut State, actions: &[Action]) -> Result<(), ManagerError> {
        for action in actions {
            tracing::info!(?action, pod = %self.identity.pod_name, "executing");
            match action {
                Action::ReportEmptyAfterRestart => {}
                Action::Fence { .. } => self.server.fence().await?,
                Action::PromoteToPrimary => {
                    let unproven = self
                        .cluster
                        .current()
                        .and_then(|view| view.cluster.status.clone())
                        .is_some_and(|status| failsafe::unproven_fence(&status));
                    if let Some(left) = self.promotion_hold(unproven) {
                        return Err(ManagerError::PromotionHeld(left));
                    }
                    if let Some(lease) = &self.lease {
                        let sent = Instant::now();
                        lease.acquire_or_renew(Duration::from_secs(5)).await?;
                        // Primary from now on for the renewals and the watchdog, before the server is.
                        self.lease_clock.send_modify(|clock| {
                            clock.renewed(sent);
                            clock.primary = true;
                        });
                    }
                    self.server.replicaof(None).await?;
                    state.demoted_to = None;
                }
                Action::FollowPrimary { address } => {
                    self.verify_primary(state, address).await?;
                    let (host, port) = split_address(address);
                    self.server.replicaof(Some((host, port))).await?;
                    self.lease_clock.send_modify(LeaseClock::released);
                }
                Action::DisconnectClients => {
                    self.server.disconnect_clients().await?;
                    let now = Instant::now();
                    state.client_sweeps = CLIENT_SWEEPS.iter().map(|after| now + *after).collect();
                }
                Action::Unfence => {
                    // The lease may have run out since it was observed: the watchdog would fence again
                    // at once, but writes must not get through in between.
                    if self.lease_must_fence() {
                        return Err(ManagerError::StillFenced("the primary lease ran out".to_string()));
                    }
                    let view = self.cluster.current().ok_or(ManagerError::NoClusterView)?;
                    let failover = &view.cluster.spec.failover;
                    let (to_write, max_lag) = if failover.min_sync_replicas > 0 {
                        (
                            i64::from(failover.min_sync_replicas),
                            i64::from(failover.max_sync_replica_lag_seconds),
                        )
                    } else {
                        (0, 10)
                    };
                    self.server.unfence(to_write, max_lag).await?;
                }
            }
        }
        Ok(())
    }

    /// Renders the configuration for the current spec and password, applies what the server takes live
    /// and records what needs a restart. (The file on disk is rendered afresh at every start.)
    async fn apply_configuration(&self, state: &mut State, view: &ClusterView) -> Result<(), ManagerError> {
        // Read before the password: the kubelet rewrites both in one swap, so the password read next is
        // at least as new as the reload this names.
        let reloaded_at = read_reloaded_at(&self.identity, view);
        let password = read_password(&self.identity);
        let rendered = self.render(view, password.clone(), None)?;
        let Some(running) = state.running_config.clone() else {
            return Ok(());
        };
        let diff = config::diff(&running, &rendered);
        let fenced = state.observed.as_ref().is_some_and(|observed| observed.fenced);
        let mut applied = Vec::new();
        for (name, value) in &diff.live {
            // While fenced, the write barrier owns these two; unfencing restores them from the spec.
            if fenced && name.starts_with("min-replicas-") {
                continue;
            }
            self.server.config_set(&[(name, value.clone())]).await?;
            tracing::info!(parameter = %name, "applied live");
            applied.push(name.clone());
        }
        if password != state.password {
            self.set_server_password(password.clone());
            state.password = password;
        }
        if !applied.is_empty() {
            state.running_config = Some(merge_applied(&running, &rendered, &applied));
        }
        state.pending_restart = diff.restart;
        state.reloaded_at = reloaded_at;
        Ok(())
    }

    /// The configuration file for `view`, starting as `replica_of` when given.
    pub fn render(
        &self,
        view: &ClusterView,
        password: Option<String>,
        replica_of: Option<(String, u16)>,
    ) -> Result<String, ManagerError> {
        let spec = &view.cluster.spec;
        let password = if spec.auth.enabled { password } else { None };
        let input = ConfigInput {
            spec,
            engine: self.engine,
            pod_ip: self.identity.pod_ip,
            port: self.identity.port,
            data_dir: self.identity.data_dir.clone(),
            password,
            memory_limit_bytes: self.identity.memory_limit_bytes,
            replica_of,
            tls: self.identity.server_tls.clone().filter(|_| spec.tls.is_some()),
            unix_socket: Some(self.identity.socket_path()),
        };
        Ok(config::render(&input)?)
    }

    /// `status.targetPrimary` as stored now: role changes never rest on a stale watch.
    async fn fresh_target_primary(&self) -> Result<Option<String>, ManagerError> {
        let view = self.cluster.fresh().await?;
        Ok(view
            .cluster
            .status
            .as_ref()
            .and_then(|status| status.target_primary.clone()))
    }

    /// `POST /v1/promote`: only when a fresh read of the RedisCluster names this pod `targetPrimary`.
    pub async fn promote(&self) -> Result<wire::ActionResult, ManagerError> {
        let target = self.fresh_target_primary().await?;
        if target.as_deref() != Some(self.identity.pod_name.as_str()) {
            return Err(ManagerError::NotTargetPrimary(format!(
                "targetPrimary is {}",
                target.as_deref().unwrap_or("not set")
            )));
        }
        self.state.lock().await.promotion_requested = Some(Instant::now());
        self.until(ROLE_CHANGE_DEADLINE, "promotion", |state| {
            if state.empty_after_restart {
                return Some(Err(ManagerError::EmptyAfterRestart));
            }
            if state.restarted_primary {
                return Some(Err(ManagerError::RestartedPrimary));
            }
            matches!(state.observed.as_ref(), Some(o) if o.role == ServerRole::Primary).then_some(Ok(()))
        })
        .await?;
        Ok(self.result("primary").await)
    }

    /// `POST /v1/demote`: follow `primary` now, unless the status still wants this pod as primary.
    pub async fn demote(&self, primary: Address) -> Result<wire::ActionResult, ManagerError> {
        let target = self.fresh_target_primary().await?;
        if target.as_deref() == Some(self.identity.pod_name.as_str()) {
            return Err(ManagerError::IsTargetPrimary);
        }
        let wanted = primary.to_string();
        self.state.lock().await.demoted_to = Some(primary);
        self.until(ROLE_CHANGE_DEADLINE, "demotion", |state| {
            matches!(
                state.observed.as_ref().map(|o| &o.role),
                Some(ServerRole::Replica { primary, .. }) if *primary == wanted
            )
            .then_some(Ok(()))
        })
        .await?;
        Ok(self.result(&format!("replica of {wanted}")).await)
    }

    /// `POST /v1/fence`: returns once a probe write is refused, or at once while no server process runs:
    /// nothing takes writes then, and the next start, planned under the same lock, boots fenced. (A
    /// primary whose server crashed is so proven fenced during the restart delay, without the operator
    /// waiting for its lease to run out.)
    pub async fn fence(&self) -> Result<wire::ActionResult, ManagerError> {
        {
            let mut state = self.state.lock().await;
            state.api_fence = true;
            if state.server_started.is_none() {
                return Ok(wire::ActionResult {
                    message: "fenced: no server runs, and it starts fenced".to_string(),
                    role: wire::Role::Unknown,
                    fenced: true,
                });
            }
            self.server.fence().await?;
        }
        self.reconcile().await;
        Ok(self.result("fenced: writes are refused").await)
    }

    /// `POST /v1/unfence`: withdraws the API fence and confirms this pod as primary after an expired
    /// lease. Fails while another reason still fences it (the annotation, an empty dataset, ...).
    pub async fn unfence(&self) -> Result<wire::ActionResult, ManagerError> {
        self.state.lock().await.api_fence = false;
        self.lease_clock
            .send_modify(|clock| clock.confirm(Instant::now()));
        self.reconcile().await;
        let state = self.state.lock().await;
        if !state.fence_reasons.is_empty() {
            let reasons: Vec<String> = state
                .fence_reasons
                .iter()
                .map(|r| fence_reason_name(*r))
                .collect();
            return Err(ManagerError::StillFenced(reasons.join(", ")));
        }
        drop(state);
        Ok(self.result("unfenced: writes are accepted").await)
    }

    /// Runs the loop until `done` says so, or fails after `within`.
    async fn until(
        &self,
        within: Duration,
        what: &'static str,
        done: impl Fn(&State) -> Option<Result<(), ManagerError>>,
    ) -> Result<(), ManagerError> {
        let deadline = Instant::now() + within;
        loop {
            self.reconcile().await;
            {
                let state = self.state.lock().await;
                if let Some(result) = done(&state) {
                    return result;
                }
                if Instant::now() >= deadline {
                    return Err(match &state.last_error {
                        Some(error) => ManagerError::StillFenced(format!("{what} failed: {error}")),
                        None => ManagerError::Timeout { what, within },
                    });
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The answer to a mutating call, from a fresh observation of the server.
    async fn result(&self, message: &str) -> wire::ActionResult {
        let mut state = self.state.lock().await;
        let observed = Some(self.observe(&mut state).await);
        wire::ActionResult {
            message: message.to_string(),
            role: observed
                .as_ref()
                .map(|o| wire_role(&o.role))
                .unwrap_or(wire::Role::Unknown),
            fenced: observed.is_some_and(|o| o.fenced),
        }
    }
}

/// `spec.failover.maxStaleReadSeconds` as a duration (a negative value, which admission refuses, as 0).
pub fn max_stale_read(failover: &cnredis_api::cluster::FailoverSpec) -> Duration {
    Duration::from_secs(u64::try_from(failover.max_stale_read_seconds).unwrap_or(0))
}

/// The status no longer names this pod current primary: a demotion request has been overtaken by it.
/// (Not "names another target": the watched view may lag the fresh read the demotion was checked
/// against, and a promotion clears the request anyway.)
fn view_moved_on(view: &ClusterView, me: &str) -> bool {
    let status = view.cluster.status.clone().unwrap_or_default();
    status.current_primary.as_deref() != Some(me)
}

pub fn wire_role(role: &ServerRole) -> wire::Role {
    match role {
        ServerRole::Primary => wire::Role::Primary,
        ServerRole::Replica { .. } => wire::Role::Replica,
        ServerRole::Unknown => wire::Role::Unknown,
    }
}

pub fn fence_reason_name(reason: FenceReason) -> String {
    match reason {
        FenceReason::Requested => "requested",
        FenceReason::EmptyAfterRestart => "emptyAfterRestart",
        FenceReason::RestartedPrimary => "restartedPrimary",
        FenceReason::LeaseExpired => "leaseExpired",
        FenceReason::NoPrimaryKnown => "noPrimaryKnown",
        FenceReason::AwaitingInitialization => "awaitingInitialization",
    }
    .to_string()
}

/// `host:port` → (host, port); the decision layer formats addresses this way.
fn split_address(address: &str) -> (&str, u16) {
    match address.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().unwrap_or(cnredis_api::names::REDIS_PORT)),
        None => (address, cnredis_api::names::REDIS_PORT),
    }
}

/// The running configuration after applying `applied` live: the new rendering for those parameters, the
/// old one for the rest (which still differ until a restart).
fn merge_applied(running: &str, rendered: &str, applied: &[String]) -> String {
    let name_of = |line: &str| line.split_whitespace().next().map(str::to_ascii_lowercase);
    let mut lines: Vec<String> = running
        .lines()
        .filter(|line| name_of(line).is_none_or(|name| !applied.contains(&name)))
        .map(str::to_string)
        .collect();
    lines.extend(
        rendered
            .lines()
            .filter(|line| name_of(line).is_some_and(|name| applied.contains(&name)))
            .map(str::to_string),
    );
    lines.join("\n") + "\n"
}

/// The last reload this instance's files reflect: the pod's `cnredis.io/reloadedAt` as the kubelet wrote
/// it beside the password; without a password, the cluster's annotation (the configuration comes from
/// the cluster itself).
fn read_reloaded_at(identity: &Identity, view: &ClusterView) -> Option<String> {
    let value = match &identity.password_file {
        Some(password) => {
            let path = password.with_file_name(cnredis_api::names::RELOADED_AT_FILE);
            std::fs::read_to_string(path).ok()?
        }
        None => view
            .cluster
            .metadata
            .annotations
            .as_ref()?
            .get(cnredis_api::names::ANNOTATION_RELOADED_AT)?
            .clone(),
    };
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// A client of the other instances' APIs presenting this pod's instance certificate, read from `dir`
/// (`ca.crt`, `tls.crt`, `tls.key`) at each call, so that a renewed certificate is used at once.
pub fn peer_client(
    dir: &std::path::Path,
    timeout: Duration,
) -> Result<cnredis_instance_client::InstanceClient, String> {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).map_err(|e| format!("{name}: {e}"));
    let tls = cnredis_pki::client_config(&read("ca.crt")?, &read("tls.crt")?, &read("tls.key")?)
        .map_err(|e| e.to_string())?;
    cnredis_instance_client::InstanceClient::new(tls, timeout).map_err(|e| e.to_string())
}

pub fn read_password(identity: &Identity) -> Option<String> {
    let path = identity.password_file.as_ref()?;
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text.trim_end_matches(['\n', '\r']).to_string()),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot read the password file");
            None
        }
    }
}

/// Writes a file only its owner can read (it holds the password), atomically.
pub fn write_private(path: &std::path::Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = result {
        tracing::error!(path = %path.display(), %error, "cannot write the server configuration");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_applied_takes_new_lines_only_for_applied_parameters() {
        let running = "port 6379\nmaxmemory 100\nio-threads 1\n";
        let rendered = "port 6379\nmaxmemory 200\nio-threads 4\n";
        let merged = merge_applied(running, rendered, &["maxmemory".to_string()]);
        let diff = config::diff(&merged, rendered);
        assert!(diff.live.is_empty(), "{diff:?}");
        assert_eq!(diff.restart, ["io-threads"]);
    }

    #[test]
    fn split_address_reads_host_and_port() {
        assert_eq!(split_address("10.0.0.1:6380"), ("10.0.0.1", 6380));
        assert_eq!(split_address("10.0.0.1"), ("10.0.0.1", 6379));
    }
}
