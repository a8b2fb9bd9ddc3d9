//! rustls configurations of the instance API: the instance manager's server side, which lets every client
//! finish the handshake so the HTTP layer can explain a refusal, and the operator's client side.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

use crate::{PkiError, pem};

/// The instance manager's TLS configuration (ALPN h2 and http/1.1).
///
/// Connections without a client certificate and with any client certificate whose key the client proves
/// to hold are accepted: a failed handshake tells the caller nothing, while a 401/403 with a JSON body does.
/// [`crate::CallerAuthorizer`] decides what the certificate is worth.
pub fn server_config(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<ServerConfig, PkiError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = ProvenKeyHolder {
        hints: trust_store(ca_pem)?.subjects(),
        algorithms: provider.signature_verification_algorithms,
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(
            pem::certificates("tls.crt", cert_pem)?,
            pem::private_key("tls.key", key_pem)?,
        )?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The operator's TLS configuration: trusts only the CA (no system roots) and presents the client
/// certificate.
pub fn client_config(
    ca_pem: &str,
    client_cert_pem: &str,
    client_key_pem: &str,
) -> Result<ClientConfig, PkiError> {
    Ok(client_builder(ca_pem)?.with_client_auth_cert(
        pem::certificates("tls.crt", client_cert_pem)?,
        pem::private_key("tls.key", client_key_pem)?,
    )?)
}

/// Trusts only the CA and presents no certificate: an anonymous caller (tests, read-only tools).
pub fn anonymous_client_config(ca_pem: &str) -> Result<ClientConfig, PkiError> {
    Ok(client_builder(ca_pem)?.with_no_client_auth())
}

fn client_builder(
    ca_pem: &str,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>, PkiError> {
    Ok(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(trust_store(ca_pem)?),
    )
}

fn trust_store(ca_pem: &str) -> Result<RootCertStore, PkiError> {
    let mut roots = RootCertStore::empty();
    for cert in pem::certificates("ca.crt", ca_pem)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// Accepts a client that presents no certificate or proves it holds the key of the one it presents.
#[derive(Debug)]
struct ProvenKeyHolder {
    /// The CA's subject, so a client holding several certificates picks the one of this CA.
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for ProvenKeyHolder {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
