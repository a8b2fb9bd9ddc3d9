//! Why a certificate could not be issued, loaded or turned into a TLS configuration.

/// Errors of this crate. `what` names the input as it is stored in a Secret (`ca.crt`, `tls.key`, ...).
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{what} holds no certificate")]
    NoCertificate { what: &'static str },
    #[error("{what} is not valid PEM: {source}")]
    InvalidPem {
        what: &'static str,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{what} holds no private key")]
    NoPrivateKey { what: &'static str },
    #[error("{what} is not a usable private key: {source}")]
    InvalidPrivateKey {
        what: &'static str,
        source: rcgen::Error,
    },
    #[error("ca.crt is not a usable CA certificate: {0}")]
    InvalidCaCertificate(webpki::Error),
    #[error("ca.key does not belong to ca.crt")]
    CaKeyMismatch,
    #[error("a server certificate needs at least one DNS name")]
    NoDnsName,
    #[error("a validity of {0:?} ends past the representable time")]
    ValidityOverflow(std::time::Duration),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration rejected: {0}")]
    Tls(#[from] rustls::Error),
}
