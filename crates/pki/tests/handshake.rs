//! Real TLS handshakes between the configurations of this crate: who gets through, and as whom.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cnredis_pki::{
    CallerAuthorizer, CertificateAuthority, anonymous_client_config, client_config, instance_api_server_name,
    instance_server_name, server_config,
};
use rustls::CertificateError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The instance API certificate of cluster `cache` in namespace `prod`, issued by `ca`.
fn instance_server(ca: &CertificateAuthority) -> rustls::ServerConfig {
    let issued = ca.issue_server(&[server_name()], DAY).unwrap();
    server_config(ca.cert_pem(), &issued.cert_pem, &issued.key_pem).unwrap()
}

fn server_name() -> String {
    instance_api_server_name("cache", "prod")
}

/// Accepts one connection and answers with how the caller was classified.
async fn serve_once(config: rustls::ServerConfig, authorizer: CallerAuthorizer) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let Ok(mut tls) = acceptor.accept(tcp).await else {
            return;
        };
        let caller = authorizer.classify(tls.get_ref().1.peer_certificates());
        let _ = tls.write_all(format!("{caller:?}").as_bytes()).await;
        let _ = tls.shutdown().await;
    });
    address
}

/// Connects as `config` to `name` at `address` and returns the server's answer.
async fn call(
    config: rustls::ClientConfig,
    address: SocketAddr,
    name: &str,
) -> Result<String, std::io::Error> {
    let tcp = TcpStream::connect(address).await?;
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await?;
    Ok(answer)
}

/// Why the client refused the server's certificate, when that is why the call failed.
fn certificate_error(err: &std::io::Error) -> Option<&CertificateError> {
    match err.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(reason) => Some(reason),
        _ => None,
    }
}

/// The client refused the server's certificate because it does not carry the name asked for.
fn assert_not_valid_for_the_name(err: &std::io::Error) {
    assert!(
        matches!(
            certificate_error(err),
            Some(CertificateError::NotValidForNameContext { .. })
        ),
        "{err}"
    );
}

/// An instance API server with `server_ca`'s certificate that judges callers against `trusted`.
async fn serve_for(server_ca: &CertificateAuthority, trusted: &CertificateAuthority) -> std::net::SocketAddr {
    serve_once(
        instance_server(server_ca),
        CallerAuthorizer::new(trusted.cert_pem()).unwrap(),
    )
    .await
}

/// A client trusting `ca` that presents `certificate`.
fn client_presenting(
    ca: &CertificateAuthority,
    certificate: &cnredis_pki::IssuedCertificate,
) -> rustls::ClientConfig {
    client_config(ca.cert_pem(), &certificate.cert_pem, &certificate.key_pem).unwrap()
}

#[tokio::test]
async fn operator_certificate_is_classified_as_operator() {
    let ca = CertificateAuthority::generate("cluster CA").unwrap();
    let address = serve_for(&ca, &ca).await;
    let operator = ca.issue_operator_client(DAY).unwrap();
    let config = client_presenting(&ca, &operator);
    assert_eq!(call(config, address, &server_name()).await.unwrap(), "Operator");
}

#[tokio::test]
async fn client_without_certificate_is_classified_as_anonymous() {
    let ca = CertificateAuthority::generate("cluster CA").unwrap();
    let address = serve_for(&ca, &ca).await;
    let config = anonymous_client_config(ca.cert_pem()).unwrap();
    assert_eq!(call(config, address, &server_name()).await.unwrap(), "Anonymous");
}

#[tokio::test]
async fn pod_server_certificate_as_client_is_an_instance_never_the_operator() {
    let ca = CertificateAuthority::generate("cluster CA").unwrap();
    let address = serve_for(&ca, &ca).await;
    let pod = ca.issue_server(&[server_name()], DAY).unwrap();
    let config = client_presenting(&ca, &pod);
    let answer = call(config, address, &server_name()).await.unwrap();
    // Another instance manager (the primary's failsafe heartbeat); the API lets it call nothing else.
    assert!(answer.starts_with("Instance("), "{answer}");
}

#[tokio::test]
async fn operator_certificate_of_another_ca_completes_the_handshake_and_is_rejected() {
    let ca = CertificateAuthority::generate("cluster CA").unwrap();
    let other_ca = CertificateAuthority::generate("someone else's CA").unwrap();
    let address = serve_for(&ca, &ca).await;
    let forged = other_ca.issue_operator_client(DAY).unwrap();
    let config = client_presenting(&ca, &forged);
    let answer = call(config, address, &server_name()).await.unwrap();
    assert!(
        answer.starts_with("Rejected(\"client certificate is not issued by the cluster CA"),
        "{answer}"
    );
}

#[tokio::test]
async fn client_refuses_a_server_certificate_of_another_ca() {
    let ca = CertificateAuthority::generate("cluster CA").unwrap();
    let other_ca = CertificateAuthority::generate("someone else's CA").unwrap();
    let address = serve_for(&other_ca, &ca).await;
    let operator = ca.issue_operator_client(DAY).unwrap();
    let config = client_presenting(&ca, &operator);
    let err = call(config, address, &server_name()).await.unwrap_err();
    assert!(
        matches!(certificate_error(&err), Some(CertificateError::UnknownIssuer)),
        "{err}"
    );
}

#[tokio::test]
async fn client_refuses_the_server_certificate_of_another_cluster() {
    let ca = CertificateAuthority::generate("cluster CA").unwrap();
    let address = serve_for(&ca, &ca).await;
    let config = anonymous_client_config(ca.cert_pem()).unwrap();
    let err = call(config, address, &instance_api_server_name("other", "prod"))
        .await
        .unwrap_err();
    assert_not_valid_for_the_name(&err);
}

#[tokio::test]
async fn operator_certificate_over_tls12_is_classified_as_operator() {
    let ca = CertificateAuthority::generate("cluster CA").unwrap();
    let address = serve_for(&ca, &ca).await;
    let operator = ca.issue_operator_client(DAY).unwrap();
    let key = signing_key(&operator.key_pem);
    let config = tls12_client(&ca, presenting(&operator.cert_pem, key));
    assert_eq!(call(config, address, &server_name()).await.unwrap(), "Operator");
}

/// A copy of the operator's certificate is worth nothing without its key: the handshake's signature check
/// fails before any HTTP is spoken.
#[tokio::test]
async fn operator_certificate_without_its_key_fails_the_handshake() {
    let ca = CertificateAuthority::generate("cluster CA").unwrap();
    let operator = ca.issue_operator_client(DAY).unwrap();
    let thief = ca.issue_client("thief.cnredis.io", DAY).unwrap();
    for (version, config) in [
        (
            "TLS 1.3",
            tls13_client(&ca, presenting(&operator.cert_pem, signing_key(&thief.key_pem))),
        ),
        (
            "TLS 1.2",
            tls12_client(&ca, presenting(&operator.cert_pem, signing_key(&thief.key_pem))),
        ),
    ] {
        let address = serve_for(&ca, &ca).await;
        let err = call(config, address, &server_name()).await.unwrap_err();
        let alert = err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
        assert!(
            matches!(
                alert,
                Some(rustls::Error::AlertReceived(
                    rustls::AlertDescription::DecryptError
                ))
            ),
            "{version}: {err}"
        );
    }
}

fn signing_key(key_pem: &str) -> Arc<dyn rustls::sign::SigningKey> {
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)
        .unwrap()
}

/// Presents `cert_pem` and signs with `key`, whether or not they belong together.
fn presenting(cert_pem: &str, key: Arc<dyn rustls::sign::SigningKey>) -> Arc<rustls::sign::CertifiedKey> {
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    Arc::new(rustls::sign::CertifiedKey::new(chain, key))
}

fn tls12_client(
    ca: &CertificateAuthority,
    identity: Arc<rustls::sign::CertifiedKey>,
) -> rustls::ClientConfig {
    client_with_versions(ca, &[&rustls::version::TLS12], identity)
}

fn tls13_client(
    ca: &CertificateAuthority,
    identity: Arc<rustls::sign::CertifiedKey>,
) -> rustls::ClientConfig {
    client_with_versions(ca, &[&rustls::version::TLS13], identity)
}

fn client_with_versions(
    ca: &CertificateAuthority,
    versions: &[&'static rustls::SupportedProtocolVersion],
    identity: Arc<rustls::sign::CertifiedKey>,
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(
        CertificateDer::pem_slice_iter(ca.cert_pem().as_bytes()).map(Result::unwrap),
    );
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(Presents(identity)))
}

/// Presents one certificate and key without checking that they match, as an attacker's client would.
#[derive(Debug)]
struct Presents(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for Presents {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// An address that belongs to another instance than the operator meant (a stale pod IP reused by a
/// recreated pod) fails the handshake: each instance's certificate names its pod only.
#[tokio::test]
async fn client_refuses_the_certificate_of_another_instance_of_the_same_cluster() {
    let ca = CertificateAuthority::generate("cluster CA").unwrap();
    let issued = ca
        .issue_server(&[instance_server_name("cache-3", "cache", "prod")], DAY)
        .unwrap();
    let config = server_config(ca.cert_pem(), &issued.cert_pem, &issued.key_pem).unwrap();
    let operator = ca.issue_operator_client(DAY).unwrap();

    let address = serve_once(config.clone(), CallerAuthorizer::new(ca.cert_pem()).unwrap()).await;
    let answer = call(
        client_presenting(&ca, &operator),
        address,
        &instance_server_name("cache-3", "cache", "prod"),
    )
    .await
    .unwrap();
    assert_eq!(answer, "Operator");

    let address = serve_once(config, CallerAuthorizer::new(ca.cert_pem()).unwrap()).await;
    let err = call(
        client_presenting(&ca, &operator),
        address,
        &instance_server_name("cache-1", "cache", "prod"),
    )
    .await
    .unwrap_err();
    assert_not_valid_for_the_name(&err);
}
