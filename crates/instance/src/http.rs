//! The instance API on port 8000 (health, readiness, status, and the operator's promote, demote, fence and
//! unfence) and the metrics endpoint on port 9121.
//!
//! The API speaks HTTPS with the cluster's instance-API certificate. Anyone may read health, readiness
//! and status (probes present no certificate); mutating calls need the operator's client certificate.
//! The TLS handshake admits any client certificate whose key the caller holds, and the request is then
//! judged on its certificate, so a wrong or missing one gets a 401/403 with a reason instead of a failed
//! handshake. Certificates are re-read when their files change, so a rotation needs no restart.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cnredis_instance_client::wire::{self, path};
use cnredis_pki::{Caller, CallerAuthorizer};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tower_service::Service;

use crate::decide::ServerRole;
use crate::decide::{NotReady, Readiness};
use crate::manager::{Manager, ManagerError, fence_reason_name, wire_role};
use crate::metrics::{self, ManagerMetrics};
use crate::source::Address;

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Files of the instance API certificate: `tls.crt`, `tls.key`, and the operator CA `ca.crt`.
#[derive(Debug, Clone)]
pub struct ApiTls {
    pub dir: PathBuf,
}

impl ApiTls {
    fn files(&self) -> [PathBuf; 3] {
        ["ca.crt", "tls.crt", "tls.key"].map(|name| self.dir.join(name))
    }

    fn load(&self) -> anyhow::Result<(Arc<rustls::ServerConfig>, CallerAuthorizer)> {
        let [ca, cert, key] = self
            .files()
            .map(|path| std::fs::read_to_string(&path).map_err(|e| (path, e)));
        let read = |file: Result<String, (PathBuf, std::io::Error)>| {
            file.map_err(|(path, error)| anyhow::anyhow!("cannot read {}: {error}", path.display()))
        };
        let (ca, cert, key) = (read(ca)?, read(cert)?, read(key)?);
        let config = cnredis_pki::server_config(&ca, &cert, &key)?;
        Ok((Arc::new(config), CallerAuthorizer::new(&ca)?))
    }

    fn modified(&self) -> Vec<Option<SystemTime>> {
        self.files()
            .iter()
            .map(|path| std::fs::metadata(path).and_then(|meta| meta.modified()).ok())
            .collect()
    }
}

fn router(manager: Arc<Manager>) -> Router {
    Router::new()
        .route(path::HEALTHZ, get(healthz))
        .route(path::READYZ, get(readyz))
        .route(path::STATUS, get(status))
        .route(path::PROMOTE, post(promote))
        .route(path::DEMOTE, post(demote))
        .route(path::FENCE, post(fence))
        .route(path::UNFENCE, post(unfence))
        .route(path::FAILSAFE, post(failsafe))
        .route(path::BACKUPS, post(start_backup))
        .route(&format!("{}/{{name}}", path::BACKUPS), get(backup))
        .with_state(manager)
}

/// Serves the instance API on `addr` until the listener fails.
pub async fn serve_api(addr: SocketAddr, tls: ApiTls, manager: Arc<Manager>) -> anyhow::Result<()> {
    let mut loaded = tls.load()?;
    let mut loaded_from = tls.modified();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "instance API listening");
    let app = router(manager);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting an instance API connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let modified = tls.modified();
        if modified != loaded_from {
            match tls.load() {
                Ok(fresh) => {
                    tracing::info!("instance API certificate reloaded");
                    loaded = fresh;
                    loaded_from = modified;
                }
                Err(error) => tracing::warn!(%error, "keeping the previous instance API certificate"),
            }
        }
        let (config, authorizer) = loaded.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "instance API TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let caller = authorizer.classify(stream.get_ref().1.peer_certificates());
            let app = app.layer(Extension(Arc::new(caller)));
            let service = hyper::service::service_fn(move |request| app.clone().call(request));
            if let Err(error) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, %error, "instance API connection ended with an error");
            }
        });
    }
}

/// Serves the metrics on `addr` (plain HTTP, as Prometheus scrapes pods).
pub async fn serve_metrics(addr: SocketAddr, manager: Arc<Manager>) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .with_state(manager);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics listening");
    axum::serve(listener, app).await?;
    Ok(())
}

fn error(status: StatusCode, reason: &str, message: impl Into<String>) -> Response {
    let body = wire::ApiError {
        reason: reason.to_string(),
        message: message.into(),
    };
    (status, Json(body)).into_response()
}

/// The failure of a call whose failpoint the chaos suite armed (only in a build with failpoints).
fn injected_fault(manager: &Manager, call: &str) -> Option<Response> {
    crate::failpoint::armed(&manager.identity.data_dir, call).then(|| {
        tracing::warn!(call, "failing the call: its failpoint is armed");
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failpoint",
            format!("the failpoint `{call}` is armed"),
        )
    })
}

/// Only the operator may change the server: the refusal for anybody else.
fn refusal(caller: &Caller) -> Option<Response> {
    match caller {
        Caller::Operator => None,
        Caller::Anonymous => Some(error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "this call needs the operator's client certificate",
        )),
        Caller::Instance(_) => Some(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "an instance's certificate may only send the failsafe heartbeat",
        )),
        Caller::Rejected(why) => Some(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the client certificate is not the operator's: {why}"),
        )),
    }
}

/// `POST /v1/failsafe`: only the instance the request names, by its own certificate.
async fn failsafe(
    State(manager): State<Arc<Manager>>,
    Extension(caller): Extension<Arc<Caller>>,
    Json(request): Json<wire::FailsafeRequest>,
) -> Response {
    let identity = &manager.identity;
    let name =
        cnredis_pki::instance_server_name(&request.primary, &identity.cluster_name, &identity.namespace);
    match caller.as_ref() {
        Caller::Instance(cert) if cert.is_issued_to(&name) => {}
        Caller::Instance(_) => {
            return error(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("the certificate is not {}'s", request.primary),
            );
        }
        _ => {
            return error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "only an instance of the cluster, with its own certificate, sends the failsafe heartbeat",
            );
        }
    }
    match manager.failsafe_promise(&request.primary).await {
        Ok(promise) => Json(promise).into_response(),
        Err(refused) => error(StatusCode::CONFLICT, refused.reason(), refused.to_string()),
    }
}

fn answer(result: Result<wire::ActionResult, ManagerError>) -> Response {
    match result {
        Ok(result) => Json(result).into_response(),
        Err(failure) => {
            let status = match failure {
                ManagerError::NotTargetPrimary(_)
                | ManagerError::IsTargetPrimary
                | ManagerError::EmptyAfterRestart
                | ManagerError::StillFenced(_)
                | ManagerError::PromotionHeld(_)
                | ManagerError::NoPromise(_)
                | ManagerError::Lease(_) => StatusCode::CONFLICT,
                ManagerError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            error(status, failure.reason(), failure.to_string())
        }
    }
}

async fn start_backup(
    State(manager): State<Arc<Manager>>,
    Extension(caller): Extension<Arc<Caller>>,
    Json(request): Json<wire::BackupRequest>,
) -> Response {
    if let Some(refused) = refusal(&caller) {
        return refused;
    }
    match crate::backup::start(&manager, request).await {
        Ok(report) => Json(report).into_response(),
        Err(refused) => {
            let (status, reason) = match refused {
                crate::backup::Refusal::Busy(_) => (StatusCode::CONFLICT, "backupRunning"),
                crate::backup::Refusal::Invalid(_) => (StatusCode::BAD_REQUEST, "invalidBackup"),
                crate::backup::Refusal::Unfit(_) => (StatusCode::CONFLICT, "instanceUnfit"),
            };
            error(status, reason, refused.to_string())
        }
    }
}

async fn backup(
    State(manager): State<Arc<Manager>>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    match manager.backups.get(&name) {
        Some(report) => Json(report).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "unknownBackup",
            format!("this instance manager knows no backup {name} (it may have restarted since)"),
        ),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(manager): State<Arc<Manager>>) -> Response {
    let readiness = {
        let mut state = manager.state.lock().await;
        manager.observe(&mut state).await;
        manager.readiness(&state)
    };
    let unavailable = |why: String| (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    match readiness {
        Some(Readiness::Ready) => (StatusCode::OK, "ready").into_response(),
        Some(Readiness::ServingStale { link_down_for }) => (
            StatusCode::OK,
            format!(
                "ready: replication link down for {}s, serving stale reads",
                link_down_for.as_secs()
            ),
        )
            .into_response(),
        Some(Readiness::NotReady(why)) => unavailable(why_not_ready(why)),
        None => unavailable("starting".to_string()),
    }
}

fn why_not_ready(why: NotReady) -> String {
    match why {
        NotReady::NotAnswering => "server not answering".to_string(),
        NotReady::RoleUnknown => "replication role unknown".to_string(),
        NotReady::Loading => "loading the dataset".to_string(),
        NotReady::NeverSynced => {
            "replication link down or syncing, and not in sync since the server started".to_string()
        }
        NotReady::LinkDownTooLong { link_down_for } => format!(
            "replication link down for {}s, not less than spec.failover.maxStaleReadSeconds",
            link_down_for.as_secs()
        ),
    }
}

async fn status(State(manager): State<Arc<Manager>>) -> Json<wire::InstanceReport> {
    // Fresh, not the loop's last pass: a switchover compares offsets from this.
    {
        let mut state = manager.state.lock().await;
        manager.observe(&mut state).await;
    }
    Json(report(&manager).await)
}

async fn promote(State(manager): State<Arc<Manager>>, Extension(caller): Extension<Arc<Caller>>) -> Response {
    if let Some(refusal) = refusal(&caller) {
        return refusal;
    }
    if let Some(injected) = injected_fault(&manager, "promote") {
        return injected;
    }
    answer(manager.promote().await)
}

async fn demote(
    State(manager): State<Arc<Manager>>,
    Extension(caller): Extension<Arc<Caller>>,
    body: Option<Json<wire::DemoteRequest>>,
) -> Response {
    if let Some(refusal) = refusal(&caller) {
        return refusal;
    }
    if let Some(injected) = injected_fault(&manager, "demote") {
        return injected;
    }
    let Some(Json(request)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "badRequest",
            "expected a JSON body {\"primaryHost\": ..., \"primaryPort\": ...}",
        );
    };
    answer(
        manager
            .demote(Address {
                host: request.primary_host,
                port: request.primary_port,
            })
            .await,
    )
}

async fn fence(State(manager): State<Arc<Manager>>, Extension(caller): Extension<Arc<Caller>>) -> Response {
    if let Some(refusal) = refusal(&caller) {
        return refusal;
    }
    answer(manager.fence().await)
}

async fn unfence(State(manager): State<Arc<Manager>>, Extension(caller): Extension<Arc<Caller>>) -> Response {
    if let Some(refusal) = refusal(&caller) {
        return refusal;
    }
    answer(manager.unfence().await)
}

/// The `/v1/status` body from the manager's latest observation.
pub async fn report(manager: &Manager) -> wire::InstanceReport {
    let state = manager.state.lock().await;
    let view = manager.cluster.current();
    let mode = view
        .as_ref()
        .map(|view| persistence_mode_name(view.cluster.spec.persistence.mode))
        .unwrap_or_default();
    let info = state.server_info.as_ref();
    let observed = state.observed.as_ref();
    let (major, minor, patch) = manager.engine.version;
    wire::InstanceReport {
        pod: manager.identity.pod_name.clone(),
        cluster: manager.identity.cluster_name.clone(),
        answered: observed.is_some_and(|o| o.answered),
        role: observed
            .map(|o| wire_role(&o.role))
            .unwrap_or(wire::Role::Unknown),
        fenced: observed.is_some_and(|o| o.fenced),
        fence_reasons: state
            .fence_reasons
            .iter()
            .map(|r| fence_reason_name(*r))
            .collect(),
        empty_after_restart: state.empty_after_restart,
        restarted_primary: state.restarted_primary,
        ready: manager
            .readiness(&state)
            .is_some_and(|readiness| readiness.is_ready()),
        replication: wire::Replication {
            link_down_seconds: observed
                .filter(|o| matches!(o.role, ServerRole::Replica { .. }))
                .and_then(|_| state.link.down_for(Instant::now()))
                .map(|down| down.as_secs()),
            ..info.map(|info| info.replication()).unwrap_or_default()
        },
        dataset: info.map(|info| info.dataset()).unwrap_or_default(),
        persistence: info
            .map(|info| info.persistence(mode, state.loaded_from_disk))
            .unwrap_or_default(),
        lease: state.lease,
        engine: manager.engine.kind.name().to_string(),
        engine_version: format!("{major}.{minor}.{patch}"),
        manager_version: env!("CARGO_PKG_VERSION").to_string(),
        manager_uptime_seconds: manager.started.elapsed().as_secs(),
        server_uptime_seconds: info.map(|info| info.uptime_in_seconds).unwrap_or(0),
        server_restarts: state.server_restarts,
        pending_restart: state.pending_restart.clone(),
        reloaded_at: state.reloaded_at.clone(),
        cluster_resource_version: view
            .as_ref()
            .and_then(|view| view.cluster.metadata.resource_version.clone()),
        last_error: state.last_error.clone(),
        restore: manager.restore.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        failsafe: manager
            .failsafe_episode
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
    }
}

fn persistence_mode_name(mode: cnredis_api::cluster::PersistenceMode) -> &'static str {
    use cnredis_api::cluster::PersistenceMode;
    match mode {
        PersistenceMode::None => "none",
        PersistenceMode::Rdb => "rdb",
        PersistenceMode::Aof => "aof",
        PersistenceMode::RdbAof => "rdb+aof",
    }
}

async fn metrics_text(State(manager): State<Arc<Manager>>) -> Response {
    // A fresh INFO, as redis_exporter scrapes; the loop's last one if the server does not answer now.
    let fresh = manager
        .server
        .info()
        .await
        .ok()
        .map(|text| crate::info::parse(&text));
    let report = report(&manager).await;
    let state = manager.state.lock().await;
    let info = fresh.as_ref().or(state.server_info.as_ref());
    let manager_metrics = ManagerMetrics {
        fenced: report.fenced,
        role: report.role,
        lease: report.lease,
        server_restarts: report.server_restarts,
        manager_version: report.manager_version,
        engine: report.engine,
        engine_version: report.engine_version,
        empty_after_restart: report.empty_after_restart,
        manager_uptime_seconds: report.manager_uptime_seconds,
        pending_restart: report.pending_restart.len(),
    };
    let text = metrics::render(
        info.filter(|_| report.answered || fresh.is_some()),
        &manager_metrics,
    );
    ([("content-type", metrics::CONTENT_TYPE)], text).into_response()
}
