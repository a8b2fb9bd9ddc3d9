//! Who is calling an instance manager: the operator, another instance manager of the CA (presenting its
//! own server certificate, for the primary's failsafe heartbeat), an anonymous client, or someone
//! presenting a certificate that makes them neither.

use std::sync::Arc;

use rustls_pki_types::{CertificateDer, ServerName, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};

use crate::{OPERATOR_CLIENT_NAME, PkiError, pem};

/// DER contents of the id-kp-clientAuth OID (1.3.6.1.5.5.7.3.2).
const EKU_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
/// DER contents of the id-kp-serverAuth OID (1.3.6.1.5.5.7.3.1).
const EKU_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];

/// The caller of one connection, as the HTTP layer needs it to answer 401 or 403.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// No client certificate: may read, may not change anything.
    Anonymous,
    /// A valid client certificate of the cluster CA issued to [`OPERATOR_CLIENT_NAME`].
    Operator,
    /// A valid server certificate of the CA: another instance manager, whose name the caller checks
    /// with [`InstanceCertificate::is_issued_to`]. It may only send the primary's failsafe heartbeat.
    Instance(InstanceCertificate),
    /// A client certificate that does not identify the operator, and why (human readable).
    Rejected(String),
}

/// The certificate an instance manager presented, already verified against the CA for serverAuth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceCertificate(CertificateDer<'static>);

impl InstanceCertificate {
    /// Whether the certificate carries the DNS name `name`
    /// ([`crate::instance_server_name`] of the instance the caller claims to be).
    pub fn is_issued_to(&self, name: &str) -> bool {
        let Ok(name) = ServerName::try_from(name) else {
            return false;
        };
        webpki::EndEntityCert::try_from(&self.0)
            .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
    }
}

/// Classifies the peer certificates of a connection against the CA. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CallerAuthorizer {
    anchors: Arc<[TrustAnchor<'static>]>,
    algorithms: &'static [&'static dyn SignatureVerificationAlgorithm],
}

impl CallerAuthorizer {
    pub fn new(ca_pem: &str) -> Result<Self, PkiError> {
        let anchors = pem::certificates("ca.crt", ca_pem)?
            .iter()
            .map(|cert| webpki::anchor_from_trusted_cert(cert).map(|anchor| anchor.to_owned()))
            .collect::<Result<Arc<[_]>, _>>()
            .map_err(PkiError::InvalidCaCertificate)?;
        Ok(Self {
            anchors,
            algorithms: rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .all,
        })
    }

    /// Classifies `peer_certificates` as rustls reports them (`ServerConnection::peer_certificates()`):
    /// the end-entity certificate first, then whatever intermediates the client sent.
    pub fn classify(&self, peer_certificates: Option<&[CertificateDer<'_>]>) -> Caller {
        self.classify_at(peer_certificates, UnixTime::now())
    }

    fn classify_at(&self, peer_certificates: Option<&[CertificateDer<'_>]>, now: UnixTime) -> Caller {
        let Some((end_entity, intermediates)) = peer_certificates.and_then(|certs| certs.split_first())
        else {
            return Caller::Anonymous;
        };
        match self.verify_operator(end_entity, intermediates, now) {
            Ok(()) => Caller::Operator,
            Err(reason) => match self.verify_for(end_entity, intermediates, now, EKU_SERVER_AUTH) {
                Ok(()) => Caller::Instance(InstanceCertificate(end_entity.clone().into_owned())),
                // A server certificate fails the operator's check on its usage: the chain is what
                // tells why it is not an instance's either.
                Err(server_reason) if reason.contains("not meant for client") => {
                    Caller::Rejected(server_reason)
                }
                Err(_) => Caller::Rejected(reason),
            },
        }
    }

    fn verify_for(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: &'static [u8],
    ) -> Result<(), String> {
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| format!("client certificate cannot be parsed: {e}"))?;
        cert.verify_for_usage(
            self.algorithms,
            &self.anchors,
            intermediates,
            now,
            webpki::KeyUsage::required(usage),
            None,
            None,
        )
        .map(|_| ())
        .map_err(chain_rejection)
    }

    fn verify_operator(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), String> {
        // `KeyUsage::client_auth()` would also accept a certificate without any EKU; every certificate
        // of this CA carries one, so demand it.
        self.verify_for(end_entity, intermediates, now, EKU_CLIENT_AUTH)?;
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| format!("client certificate cannot be parsed: {e}"))?;
        let operator =
            ServerName::try_from(OPERATOR_CLIENT_NAME).expect("OPERATOR_CLIENT_NAME is a DNS name");
        cert.verify_is_valid_for_subject_name(&operator)
            .map_err(|_| format!("client certificate is not issued to {OPERATOR_CLIENT_NAME}"))
    }
}

fn chain_rejection(error: webpki::Error) -> String {
    use webpki::Error::*;
    match error {
        UnknownIssuer => "client certificate is not issued by the cluster CA".to_owned(),
        CertExpired { .. } => "client certificate has expired".to_owned(),
        CertNotValidYet { .. } => "client certificate is not valid yet".to_owned(),
        RequiredEkuNotFoundContext(_) => {
            "client certificate is not meant for client authentication".to_owned()
        }
        CaUsedAsEndEntity => "a CA certificate cannot authenticate a client".to_owned(),
        other => format!("client certificate rejected: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::CertificateAuthority;

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    fn chain(cert_pem: &str) -> Vec<CertificateDer<'static>> {
        pem::certificates("tls.crt", cert_pem).unwrap()
    }

    /// What a case expects: the exact caller, or a rejection whose reason mentions a phrase.
    enum Expect {
        Is(Caller),
        RejectedBecause(&'static str),
        Instance,
    }

    #[test]
    fn peer_certificates_classify_into_callers() {
        let ca = CertificateAuthority::generate("cluster CA").unwrap();
        let other_ca = CertificateAuthority::generate("someone else's CA").unwrap();
        let server_name = crate::instance_api_server_name("cache", "prod");
        let now = SystemTime::now();
        let cases: Vec<(&str, Option<Vec<CertificateDer<'static>>>, Expect)> = vec![
            (
                "operator client certificate is the operator",
                Some(chain(&ca.issue_operator_client(DAY).unwrap().cert_pem)),
                Expect::Is(Caller::Operator),
            ),
            ("no certificate is anonymous", None, Expect::Is(Caller::Anonymous)),
            (
                "an empty chain is anonymous",
                Some(vec![]),
                Expect::Is(Caller::Anonymous),
            ),
            (
                "operator certificate of another CA is rejected",
                Some(chain(&other_ca.issue_operator_client(DAY).unwrap().cert_pem)),
                Expect::RejectedBecause("not issued by the cluster CA"),
            ),
            (
                "a pod's server certificate of the same CA is an instance, never the operator",
                Some(chain(
                    &ca.issue_server(std::slice::from_ref(&server_name), DAY)
                        .unwrap()
                        .cert_pem,
                )),
                Expect::Instance,
            ),
            (
                "server certificate named like the operator is an instance, never the operator",
                Some(chain(
                    &ca.issue_server(&[OPERATOR_CLIENT_NAME.to_owned()], DAY)
                        .unwrap()
                        .cert_pem,
                )),
                Expect::Instance,
            ),
            (
                "a server certificate of another CA is rejected",
                Some(chain(
                    &other_ca
                        .issue_server(std::slice::from_ref(&server_name), DAY)
                        .unwrap()
                        .cert_pem,
                )),
                Expect::RejectedBecause("not issued by the cluster CA"),
            ),
            (
                "client certificate with another name is rejected",
                Some(chain(
                    &ca.issue_client("intruder.cnredis.io", DAY).unwrap().cert_pem,
                )),
                Expect::RejectedBecause("not issued to operator.cnredis.io"),
            ),
            (
                "expired operator certificate is rejected",
                Some(chain(
                    &ca.issue_client_between(OPERATOR_CLIENT_NAME, now - 2 * DAY, now - DAY)
                        .unwrap()
                        .cert_pem,
                )),
                Expect::RejectedBecause("expired"),
            ),
            (
                "operator certificate not valid yet is rejected",
                Some(chain(
                    &ca.issue_client_between(OPERATOR_CLIENT_NAME, now + DAY, now + 2 * DAY)
                        .unwrap()
                        .cert_pem,
                )),
                Expect::RejectedBecause("not valid yet"),
            ),
            (
                "the CA certificate itself is rejected",
                Some(chain(ca.cert_pem())),
                Expect::RejectedBecause("CA certificate cannot authenticate"),
            ),
            (
                "bytes that are no certificate are rejected",
                Some(vec![CertificateDer::from(b"not a certificate".to_vec())]),
                Expect::RejectedBecause("cannot be parsed"),
            ),
        ];
        let authorizer = CallerAuthorizer::new(ca.cert_pem()).unwrap();
        for (case, peers, expect) in cases {
            let caller = authorizer.classify(peers.as_deref());
            match expect {
                Expect::Is(expected) => assert_eq!(caller, expected, "{case}"),
                Expect::Instance => assert!(matches!(caller, Caller::Instance(_)), "{case}: {caller:?}"),
                Expect::RejectedBecause(phrase) => match &caller {
                    Caller::Rejected(reason) => assert!(reason.contains(phrase), "{case}: {reason}"),
                    other => panic!("{case}: expected a rejection, got {other:?}"),
                },
            }
        }
    }

    #[test]
    fn operator_certificate_is_rejected_once_it_expires() {
        let ca = CertificateAuthority::generate("cluster CA").unwrap();
        let issued = ca.issue_operator_client(DAY).unwrap();
        let authorizer = CallerAuthorizer::new(ca.cert_pem()).unwrap();
        let peers = chain(&issued.cert_pem);
        let after_expiry = UnixTime::since_unix_epoch(
            (issued.not_after + Duration::from_secs(1))
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap(),
        );
        assert_eq!(
            authorizer.classify_at(Some(&peers), UnixTime::now()),
            Caller::Operator
        );
        assert!(matches!(
            authorizer.classify_at(Some(&peers), after_expiry),
            Caller::Rejected(_)
        ));
    }

    #[test]
    fn reloaded_ca_issues_certificates_the_authorizer_of_the_original_accepts() {
        let original = CertificateAuthority::generate("cluster CA").unwrap();
        let reloaded = CertificateAuthority::from_pem(original.cert_pem(), original.key_pem()).unwrap();
        let authorizer = CallerAuthorizer::new(original.cert_pem()).unwrap();
        let issued = reloaded.issue_operator_client(DAY).unwrap();
        assert_eq!(
            authorizer.classify(Some(&chain(&issued.cert_pem))),
            Caller::Operator
        );
    }

    #[test]
    fn an_instance_certificate_names_only_the_instance_it_was_issued_to() {
        let ca = CertificateAuthority::generate("cluster CA").unwrap();
        let name = crate::instance_server_name("cache-2", "cache", "prod");
        let issued = ca.issue_server(std::slice::from_ref(&name), DAY).unwrap();
        let authorizer = CallerAuthorizer::new(ca.cert_pem()).unwrap();
        let Caller::Instance(cert) = authorizer.classify(Some(&chain(&issued.cert_pem))) else {
            panic!("an instance certificate");
        };
        assert!(cert.is_issued_to(&name));
        assert!(!cert.is_issued_to(&crate::instance_server_name("cache-3", "cache", "prod")));
        assert!(!cert.is_issued_to(&crate::instance_server_name("cache-2", "other", "prod")));
    }

    #[test]
    fn authorizer_needs_a_ca_certificate() {
        let err = CallerAuthorizer::new("").unwrap_err();
        assert_eq!(err.to_string(), "ca.crt holds no certificate");
    }
}
