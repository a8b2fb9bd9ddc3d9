//! The client against a small stand-in of the instance API served over the real TLS configurations:
//! what the operator, an anonymous caller and an impostor get back, and which servers the client refuses.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Extension;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cnredis_instance_client::wire::{
    self, ActionResult, ApiError, DemoteRequest, InstanceReport, LeaseStatus, Role, path,
};
use cnredis_instance_client::{ClientError, InstanceClient, Target};
use cnredis_pki::{
    Caller, CallerAuthorizer, CertificateAuthority, client_config, instance_api_server_name, server_config,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
const TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the stand-in API as pod `pod` of `cluster` with a certificate of `ca`, authorizing against
/// `ca` too.
async fn serve(ca: &CertificateAuthority, cluster: &str, pod: &str) -> Target {
    let name = instance_api_server_name(cluster, "prod");
    let issued = ca.issue_server(std::slice::from_ref(&name), DAY).unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(
        server_config(ca.cert_pem(), &issued.cert_pem, &issued.key_pem).unwrap(),
    ));
    let authorizer = CallerAuthorizer::new(ca.cert_pem()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = api(pod);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, authorizer, app) = (acceptor.clone(), authorizer.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let caller = authorizer.classify(tls.get_ref().1.peer_certificates());
                let service = TowerToHyperService::new(app.layer(Extension(caller)));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Target::new(name, address)
}

fn api(pod: &str) -> Router {
    let report = report(pod);
    Router::new()
        .route(path::STATUS, get(move || async move { Json(report) }))
        .route(
            path::READYZ,
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "loading") }),
        )
        .route(
            path::PROMOTE,
            post(|Extension(caller): Extension<Caller>| async move {
                operator_only(caller, "promoted", Role::Primary)
            }),
        )
        .route(
            path::DEMOTE,
            post(
                |Extension(caller): Extension<Caller>, Json(request): Json<DemoteRequest>| async move {
                    let message = format!("following {}:{}", request.primary_host, request.primary_port);
                    operator_only(caller, &message, Role::Replica)
                },
            ),
        )
}

/// What the real instance manager does with a mutating call: only the operator gets through.
fn operator_only(caller: Caller, message: &str, role: Role) -> Response {
    let refuse = |status: StatusCode, reason: &str, message: String| {
        let error = ApiError {
            reason: reason.into(),
            message,
        };
        (status, Json(error)).into_response()
    };
    match caller {
        Caller::Operator => Json(ActionResult {
            message: message.into(),
            role,
            fenced: false,
        })
        .into_response(),
        Caller::Anonymous => refuse(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "no client certificate".into(),
        ),
        Caller::Instance(_) => refuse(StatusCode::FORBIDDEN, "forbidden", "an instance".into()),
        Caller::Rejected(why) => refuse(StatusCode::FORBIDDEN, "forbidden", why),
    }
}

fn report(pod: &str) -> InstanceReport {
    InstanceReport {
        pod: pod.into(),
        cluster: "cache".into(),
        answered: true,
        role: Role::Primary,
        fenced: false,
        fence_reasons: vec![],
        empty_after_restart: false,
        restarted_primary: false,
        ready: true,
        replication: wire::Replication::default(),
        dataset: wire::Dataset {
            keys: 42,
            ..Default::default()
        },
        persistence: wire::Persistence::default(),
        lease: LeaseStatus::Disabled,
        engine: "valkey".into(),
        engine_version: "8.1.8".into(),
        manager_version: "0.1.0".into(),
        manager_uptime_seconds: 1,
        server_uptime_seconds: 1,
        server_restarts: 0,
        pending_restart: vec![],
        reloaded_at: None,
        cluster_resource_version: None,
        last_error: None,
        restore: None,
        failsafe: None,
    }
}

fn operator(ca: &CertificateAuthority) -> InstanceClient {
    let issued = ca.issue_operator_client(DAY).unwrap();
    InstanceClient::new(
        client_config(ca.cert_pem(), &issued.cert_pem, &issued.key_pem).unwrap(),
        TIMEOUT,
    )
    .unwrap()
}

#[tokio::test]
async fn operator_reads_the_status_and_promotes() {
    let ca = CertificateAuthority::generate("cluster CA").unwrap();
    let target = serve(&ca, "cache", "cache-1").await;
    let client = operator(&ca);
    assert_eq!(client.status(&target).await.unwrap(), report("cache-1"));
    let promoted = client.promote(&target).await.unwrap();
    assert_eq!(
        (promoted.message.as_str(), promoted.role),
        ("promoted", Role::Primary)
    );
}

#[tokio::test]
async fn demote_sends_the_primary_to_follow() {
    let ca = CertificateAuthority::generate("cluster CA").unwrap();
    let target = serve(&ca, "cache", "cache-2").await;
    let request = DemoteRequest {
        primary_host: "10.0.0.1".into(),
        primary_port: 6379,
    };
    let demoted = operator(&ca).demote(&target, &request).await.unwrap();
    assert_eq!(
        (demoted.message.as_str(), demoted.role),
        ("following 10.0.0.1:6379", Role::Replica)
    );
}

#[tokio::test]
async fn readiness_503_means_not_ready() {
    let ca = CertificateAuthority::generate("cluster CA").unwrap();
    let target = serve(&ca, "cache", "cache-1").await;
    assert!(!operator(&ca).ready(&target).await.unwrap());
}

#[tokio::test]
async fn one_client_reaches_each_target_at_its_own_address() {
    let ca = CertificateAuthority::generate("cluster CA").unwrap();
    let first = serve(&ca, "cache", "cache-1").await;
    let second = serve(&ca, "cache", "cache-2").await;
    let other_cluster = serve(&ca, "sessions", "sessions-1").await;
    let client = operator(&ca);
    for (target, pod) in [
        (&first, "cache-1"),
        (&second, "cache-2"),
        (&other_cluster, "sessions-1"),
        (&first, "cache-1"),
    ] {
        assert_eq!(client.status(target).await.unwrap().pod, pod, "{target}");
    }
}

#[tokio::test]
async fn anonymous_caller_reads_but_may_not_promote() {
    let ca = CertificateAuthority::generate("cluster CA").unwrap();
    let target = serve(&ca, "cache", "cache-1").await;
    let client = InstanceClient::anonymous(ca.cert_pem(), TIMEOUT).unwrap();
    assert!(client.status(&target).await.is_ok());
    let err = client.promote(&target).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 401, error } if error.reason == "unauthenticated"),
        "{err:?}"
    );
}

#[tokio::test]
async fn pod_certificate_as_client_is_forbidden_to_promote() {
    let ca = CertificateAuthority::generate("cluster CA").unwrap();
    let target = serve(&ca, "cache", "cache-1").await;
    let pod = ca
        .issue_server(std::slice::from_ref(&target.server_name), DAY)
        .unwrap();
    let client = InstanceClient::new(
        client_config(ca.cert_pem(), &pod.cert_pem, &pod.key_pem).unwrap(),
        TIMEOUT,
    )
    .unwrap();
    let err = client.promote(&target).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 403, error } if error.reason == "forbidden"),
        "{err:?}"
    );
}

#[tokio::test]
async fn server_of_another_ca_is_refused_as_a_tls_error() {
    let ca = CertificateAuthority::generate("cluster CA").unwrap();
    let impostor = CertificateAuthority::generate("impostor CA").unwrap();
    let target = serve(&impostor, "cache", "cache-1").await;
    let err = operator(&ca).status(&target).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn pod_of_another_cluster_at_the_address_is_refused_as_a_tls_error() {
    let ca = CertificateAuthority::generate("cluster CA").unwrap();
    let sessions = serve(&ca, "sessions", "sessions-1").await;
    let expected_cache = Target::new(instance_api_server_name("cache", "prod"), sessions.address);
    let err = operator(&ca).status(&expected_cache).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn unreachable_pod_is_a_transport_error() {
    let ca = CertificateAuthority::generate("cluster CA").unwrap();
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let target = Target::new(instance_api_server_name("cache", "prod"), closed);
    let err = operator(&ca).status(&target).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Transport(e) if e.is_connect()),
        "{err:?}"
    );
}
