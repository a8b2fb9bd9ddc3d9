//! Reading certificates and keys out of the PEM text stored in Secrets.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::PkiError;

/// All certificates of `pem`, in order; at least one.
pub(crate) fn certificates(what: &'static str, pem: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| PkiError::InvalidPem { what, source })?;
    if certs.is_empty() {
        return Err(PkiError::NoCertificate { what });
    }
    Ok(certs)
}

/// The first private key of `pem` (PKCS#8, SEC1 or PKCS#1).
pub(crate) fn private_key(what: &'static str, pem: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => PkiError::NoPrivateKey { what },
        source => PkiError::InvalidPem { what, source },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_without_certificate_is_named_in_the_error() {
        let err = certificates("ca.crt", "").unwrap_err();
        assert_eq!(err.to_string(), "ca.crt holds no certificate");
    }

    #[test]
    fn pem_without_key_is_named_in_the_error() {
        let err = private_key("tls.key", "not pem at all").unwrap_err();
        assert_eq!(err.to_string(), "tls.key holds no private key");
    }
}
