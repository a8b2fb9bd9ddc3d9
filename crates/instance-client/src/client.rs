//! The operator's typed client of the instance API: HTTPS to a pod IP, verified against the cluster's
//! instance API certificate name, authenticated with the operator's client certificate.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::{self, path};

/// Per-target clients kept at most; past this the cache starts over, so pod IP churn over the operator's
/// lifetime cannot grow it without bound.
const MAX_CACHED_TARGETS: usize = 512;

/// Longest excerpt of an unexpected body kept in an error.
const BODY_EXCERPT: usize = 200;

/// One instance manager: the name its certificate must carry and where it listens.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// [`cnredis_pki::instance_api_server_name`] of the pod's cluster.
    pub server_name: String,
    /// Pod IP and instance API port.
    pub address: SocketAddr,
}

impl Target {
    pub fn new(server_name: impl Into<String>, address: SocketAddr) -> Self {
        Self {
            server_name: server_name.into(),
            address,
        }
    }

    /// `https://<server_name>:<port><path>`: the name is what TLS verifies, the port what is dialled.
    fn url(&self, path: &str) -> String {
        format!("https://{}:{}{path}", self.server_name, self.address.port())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.server_name, self.address)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("TLS configuration: {0}")]
    Pki(#[from] cnredis_pki::PkiError),
    #[error("cannot build an HTTP client: {0}")]
    Build(reqwest::Error),
    /// The TLS handshake failed, e.g. the pod's certificate is not the cluster's.
    #[error("TLS handshake failed: {0}")]
    Tls(rustls::Error),
    /// Connecting, sending or receiving failed, or the call timed out.
    #[error("{0}")]
    Transport(reqwest::Error),
    /// The instance manager refused or failed the call and said why.
    #[error("instance API answered {status}: {} ({})", error.message, error.reason)]
    Api { status: u16, error: wire::ApiError },
    /// The answer is not what the instance API sends (another server on the port, or a version skew).
    #[error("instance API answered {status} with an unexpected body: {detail}")]
    UnexpectedBody { status: u16, detail: String },
}

/// Calls instance managers. Cheap to clone; clones share their connections.
#[derive(Clone)]
pub struct InstanceClient {
    tls: rustls::ClientConfig,
    timeout: Duration,
    /// `reqwest` pins a name to an address only per client, so each target gets its own (and keeps its
    /// connections alive between reconciles).
    clients: Arc<Mutex<HashMap<Target, reqwest::Client>>>,
}

impl InstanceClient {
    /// `tls` is [`cnredis_pki::client_config`]; `timeout` bounds each call, connecting included.
    pub fn new(mut tls: rustls::ClientConfig, timeout: Duration) -> Result<Self, ClientError> {
        // reqwest is built without HTTP/2: offering h2 would let the server pick a protocol it cannot speak.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let client = Self {
            tls,
            timeout,
            clients: Arc::default(),
        };
        // Fail at construction, not at the first call, when reqwest cannot use this TLS configuration.
        client.build(&Target::new("localhost", SocketAddr::from(([127, 0, 0, 1], 0))))?;
        Ok(client)
    }

    /// A client without a client certificate that trusts `ca_pem`: what any other caller looks like.
    pub fn anonymous(ca_pem: &str, timeout: Duration) -> Result<Self, ClientError> {
        Self::new(cnredis_pki::anonymous_client_config(ca_pem)?, timeout)
    }

    pub async fn status(&self, target: &Target) -> Result<wire::InstanceReport, ClientError> {
        self.call(target, Method::GET, path::STATUS, None::<&()>).await
    }

    /// Whether the instance API at the target's address holds the certificate of the target's name: any
    /// answer to `GET /healthz` comes after a TLS handshake that verified it. (The handler takes no lock
    /// of the manager: a busy instance still answers.)
    pub async fn identify(&self, target: &Target) -> Result<(), ClientError> {
        self.send(target, Method::GET, path::HEALTHZ, None::<&()>)
            .await
            .map(drop)
    }

    /// `GET /readyz`: 200 is ready, 503 is not.
    pub async fn ready(&self, target: &Target) -> Result<bool, ClientError> {
        let response = self.send(target, Method::GET, path::READYZ, None::<&()>).await?;
        let status = response.status();
        let body = response.bytes().await.map_err(ClientError::Transport)?;
        readiness(status, &body)
    }

    pub async fn promote(&self, target: &Target) -> Result<wire::ActionResult, ClientError> {
        self.call(target, Method::POST, path::PROMOTE, None::<&()>).await
    }

    pub async fn demote(
        &self,
        target: &Target,
        request: &wire::DemoteRequest,
    ) -> Result<wire::ActionResult, ClientError> {
        self.call(target, Method::POST, path::DEMOTE, Some(request)).await
    }

    pub async fn fence(&self, target: &Target) -> Result<wire::ActionResult, ClientError> {
        self.call(target, Method::POST, path::FENCE, None::<&()>).await
    }

    pub async fn unfence(&self, target: &Target) -> Result<wire::ActionResult, ClientError> {
        self.call(target, Method::POST, path::UNFENCE, None::<&()>).await
    }

    /// `POST /v1/failsafe`: the primary's heartbeat to one replica (the client presents the primary's
    /// own instance certificate).
    pub async fn failsafe(
        &self,
        target: &Target,
        request: &wire::FailsafeRequest,
    ) -> Result<wire::FailsafePromise, ClientError> {
        self.call(target, Method::POST, path::FAILSAFE, Some(request))
            .await
    }

    /// `POST /v1/backups`: starts the backup, or reports it when one of that name exists (409 while
    /// another one runs).
    pub async fn start_backup(
        &self,
        target: &Target,
        request: &wire::BackupRequest,
    ) -> Result<wire::BackupReport, ClientError> {
        self.call(target, Method::POST, path::BACKUPS, Some(request))
            .await
    }

    /// `GET /v1/backups/{name}`: a 404 means this instance manager does not know the backup (it was
    /// restarted since, or never asked).
    pub async fn backup(&self, target: &Target, name: &str) -> Result<wire::BackupReport, ClientError> {
        let path = format!("{}/{name}", path::BACKUPS);
        self.call(target, Method::GET, &path, None::<&()>).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        target: &Target,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let response = self.send(target, method, path, body).await?;
        let status = response.status();
        let body = response.bytes().await.map_err(ClientError::Transport)?;
        decode(status, &body)
    }

    async fn send(
        &self,
        target: &Target,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut request = self.client_for(target)?.request(method, target.url(path));
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.map_err(transport_or_tls)
    }

    fn client_for(&self, target: &Target) -> Result<reqwest::Client, ClientError> {
        // A poisoned lock only means another call panicked while inserting; the map is still usable.
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(target) {
            return Ok(client.clone());
        }
        if clients.len() >= MAX_CACHED_TARGETS {
            clients.clear();
        }
        let client = self.build(target)?;
        clients.insert(target.clone(), client.clone());
        Ok(client)
    }

    fn build(&self, target: &Target) -> Result<reqwest::Client, ClientError> {
        reqwest::Client::builder()
            .tls_backend_preconfigured(self.tls.clone())
            .resolve(&target.server_name, target.address)
            .https_only(true)
            // Pod IPs are reached directly; a proxy from the environment would see the operator's calls.
            .no_proxy()
            // The client certificate must never follow a redirect elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .build()
            .map_err(ClientError::Build)
    }
}

impl fmt::Debug for InstanceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstanceClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The body of a 2xx answer as `T`, or the error a non-2xx answer carries.
fn decode<T: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<T, ClientError> {
    if !status.is_success() {
        return Err(refusal(status, body));
    }
    serde_json::from_slice(body).map_err(|e| ClientError::UnexpectedBody {
        status: status.as_u16(),
        detail: format!("{e}: {}", excerpt(body)),
    })
}

fn readiness(status: StatusCode, body: &[u8]) -> Result<bool, ClientError> {
    match status {
        StatusCode::OK => Ok(true),
        StatusCode::SERVICE_UNAVAILABLE => Ok(false),
        _ => Err(refusal(status, body)),
    }
}

fn refusal(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<wire::ApiError>(body) {
        Ok(error) => ClientError::Api {
            status: status.as_u16(),
            error,
        },
        Err(_) => ClientError::UnexpectedBody {
            status: status.as_u16(),
            detail: excerpt(body),
        },
    }
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(BODY_EXCERPT) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None if text.is_empty() => "(empty)".to_owned(),
        None => text.into_owned(),
    }
}

/// A refused certificate is a different failure from an unreachable pod: it means a wrong CA or a pod of
/// another cluster at that IP, not a network problem.
fn transport_or_tls(error: reqwest::Error) -> ClientError {
    match tls_cause(&error) {
        Some(tls) => ClientError::Tls(tls.clone()),
        None => ClientError::Transport(error),
    }
}

fn tls_cause<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        cause = match error.downcast_ref::<std::io::Error>() {
            // `io::Error::source` skips the error it wraps (hyper and tokio-rustls each wrap one), so
            // descend into it instead.
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests;
