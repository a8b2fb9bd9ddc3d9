//! The operator's certificate authority: generated once, stored in a Secret, reloaded at every start, and
//! used to issue the instance API server certificates and the operator's client certificate.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SigningKey,
};
use rustls_pki_types::CertificateDer;

use crate::{OPERATOR_CLIENT_NAME, PkiError, pem};

/// How long a generated CA is valid: long enough that rotating it is a deliberate act, not a surprise.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// Certificates start this much before they are issued, so that a node whose clock lags the operator's
/// does not see a fresh certificate as not yet valid.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// 9999-12-31T23:59:59Z, the last instant an X.509 GeneralizedTime can hold.
const LATEST_NOT_AFTER: Duration = Duration::from_secs(253_402_300_799);

/// A CA whose key can sign certificates.
pub struct CertificateAuthority {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its freshly generated private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    pub cert_pem: String,
    pub key_pem: String,
    /// The certificate's notAfter (whole seconds, as written in the certificate).
    pub not_after: SystemTime,
}

/// What an issued certificate may be used for: each carries exactly one extended key usage, so a pod's
/// server certificate can never pass as a client and the operator's client certificate never as a server.
#[derive(Clone, Copy)]
enum Purpose {
    Server,
    Client,
}

impl CertificateAuthority {
    /// A new self-signed CA (ECDSA P-256, 10 years) that may sign end-entity certificates only.
    pub fn generate(common_name: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(common_name);
        // Path length 0: a leaked leaf can never act as an intermediate of this CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let (not_before, not_after) = window_from_now(CA_VALIDITY)?;
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Reloads a CA stored as PEM (`ca.crt`, `ca.key`).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let cert = pem::certificates("ca.crt", cert_pem)?.swap_remove(0);
        webpki::anchor_from_trusted_cert(&cert).map_err(PkiError::InvalidCaCertificate)?;
        let key = KeyPair::from_pem(key_pem).map_err(|source| PkiError::InvalidPrivateKey {
            what: "ca.key",
            source,
        })?;
        ensure_key_signs_for(&cert, &key)?;
        let issuer = Issuer::from_ca_cert_der(&cert, key)?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            issuer,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A server certificate (EKU serverAuth only) for `dns_names`; the first name is also the CN.
    pub fn issue_server(
        &self,
        dns_names: &[String],
        validity: Duration,
    ) -> Result<IssuedCertificate, PkiError> {
        let (not_before, not_after) = window_from_now(validity)?;
        self.issue(Purpose::Server, dns_names, not_before, not_after)
    }

    /// The operator's client certificate (EKU clientAuth only, SAN and CN [`OPERATOR_CLIENT_NAME`]).
    pub fn issue_operator_client(&self, validity: Duration) -> Result<IssuedCertificate, PkiError> {
        self.issue_client(OPERATOR_CLIENT_NAME, validity)
    }

    /// A client certificate (EKU clientAuth only) for `name`.
    pub fn issue_client(&self, name: &str, validity: Duration) -> Result<IssuedCertificate, PkiError> {
        let (not_before, not_after) = window_from_now(validity)?;
        self.issue(Purpose::Client, &[name.to_owned()], not_before, not_after)
    }

    fn issue(
        &self,
        purpose: Purpose,
        names: &[String],
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<IssuedCertificate, PkiError> {
        let first = names.first().ok_or(PkiError::NoDnsName)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = subject(first);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match purpose {
            Purpose::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Purpose::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        // The serial number defaults to a digest of the fresh public key, so it is unique per certificate.
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after,
        })
    }

    /// Issues a client certificate valid exactly between two instants, so tests can issue expired ones.
    #[cfg(test)]
    pub(crate) fn issue_client_between(
        &self,
        name: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<IssuedCertificate, PkiError> {
        self.issue(
            Purpose::Client,
            &[name.to_owned()],
            whole_seconds(not_before),
            whole_seconds(not_after),
        )
    }
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("cert_pem", &self.cert_pem)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn subject(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

/// `[now - CLOCK_SKEW, now + validity]` in whole seconds, the precision a certificate stores.
fn window_from_now(validity: Duration) -> Result<(SystemTime, SystemTime), PkiError> {
    let now = whole_seconds(SystemTime::now());
    let not_after = now
        .checked_add(validity)
        .filter(|end| *end <= UNIX_EPOCH + LATEST_NOT_AFTER)
        .ok_or(PkiError::ValidityOverflow(validity))?;
    Ok((now - CLOCK_SKEW, not_after))
}

fn whole_seconds(time: SystemTime) -> SystemTime {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs())
}

/// A Secret updated halfway (new certificate, old key) would otherwise go unnoticed until every issued
/// certificate failed verification.
fn ensure_key_signs_for(cert: &CertificateDer<'_>, key: &KeyPair) -> Result<(), PkiError> {
    const PROBE: &[u8] = b"cnredis CA key probe";
    let signature = key.sign(PROBE)?;
    let cert = webpki::EndEntityCert::try_from(cert).map_err(PkiError::InvalidCaCertificate)?;
    let algorithms = rustls::crypto::ring::default_provider()
        .signature_verification_algorithms
        .all;
    if algorithms
        .iter()
        .any(|alg| cert.verify_signature(*alg, PROBE, &signature).is_ok())
    {
        Ok(())
    } else {
        Err(PkiError::CaKeyMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    #[test]
    fn reloading_a_ca_keeps_its_pem() {
        let ca = CertificateAuthority::generate("cluster CA").unwrap();
        let reloaded = CertificateAuthority::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        assert_eq!(reloaded.cert_pem(), ca.cert_pem());
        assert_eq!(reloaded.key_pem(), ca.key_pem());
    }

    #[test]
    fn reloading_a_ca_with_another_ca_key_fails() {
        let ca = CertificateAuthority::generate("cluster CA").unwrap();
        let other = CertificateAuthority::generate("other CA").unwrap();
        let err = CertificateAuthority::from_pem(ca.cert_pem(), other.key_pem()).unwrap_err();
        assert!(matches!(err, PkiError::CaKeyMismatch), "{err}");
    }

    #[test]
    fn reloading_a_ca_without_key_fails() {
        let ca = CertificateAuthority::generate("cluster CA").unwrap();
        let err = CertificateAuthority::from_pem(ca.cert_pem(), "").unwrap_err();
        assert!(
            matches!(err, PkiError::InvalidPrivateKey { what: "ca.key", .. }),
            "{err}"
        );
    }

    #[test]
    fn server_certificate_needs_a_name() {
        let ca = CertificateAuthority::generate("cluster CA").unwrap();
        assert!(matches!(ca.issue_server(&[], DAY), Err(PkiError::NoDnsName)));
    }

    #[test]
    fn validity_past_year_9999_is_refused() {
        let ca = CertificateAuthority::generate("cluster CA").unwrap();
        let forever = Duration::from_secs(10_000 * 365 * 24 * 60 * 60);
        assert!(matches!(
            ca.issue_operator_client(forever),
            Err(PkiError::ValidityOverflow(_))
        ));
    }

    #[test]
    fn not_after_is_reported_in_whole_seconds_from_now() {
        let ca = CertificateAuthority::generate("cluster CA").unwrap();
        let before = SystemTime::now();
        let issued = ca.issue_operator_client(DAY).unwrap();
        let lifetime = issued.not_after.duration_since(before).unwrap_or_default();
        assert!(
            lifetime <= DAY && lifetime > DAY - Duration::from_secs(2),
            "{lifetime:?}"
        );
        assert_eq!(
            issued
                .not_after
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
            0
        );
    }

    #[test]
    fn debug_output_hides_private_keys() {
        let ca = CertificateAuthority::generate("cluster CA").unwrap();
        let issued = ca.issue_operator_client(DAY).unwrap();
        assert!(!format!("{ca:?}{issued:?}").contains("PRIVATE KEY"));
    }
}
