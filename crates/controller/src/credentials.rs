//! The operator's certificate authority (Secret `cnredis-ca` in the operator's namespace), its client
//! certificate for the instance API, each instance's instance-API server certificate, and generated
//! passwords.

use std::time::{Duration, SystemTime};

use cnredis_pki::{CertificateAuthority, IssuedCertificate};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt};

/// Secret holding the operator's CA in the operator's namespace.
pub const CA_SECRET: &str = "cnredis-ca";
/// Annotation on an instance-API Secret: when its certificate expires (RFC 3339).
pub const NOT_AFTER: &str = cnredis_api::names::ANNOTATION_CERTIFICATE_NOT_AFTER;
/// Validity of issued certificates, and how long before expiry they are replaced.
pub const CERTIFICATE_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Pki(#[from] cnredis_pki::PkiError),
    #[error("secret {0} lacks key {1}")]
    MissingKey(String, &'static str),
    #[error("cannot generate random bytes: {0}")]
    Random(String),
}

fn key(secret: &Secret, name: &'static str) -> Result<String, CredentialsError> {
    secret
        .data
        .as_ref()
        .and_then(|data| data.get(name))
        .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned())
        .ok_or_else(|| CredentialsError::MissingKey(secret.name_any(), name))
}

/// Loads the CA from its Secret, creating both on first start. Two operator replicas starting at once
/// agree: the second create fails and it reads the first one's CA.
pub async fn load_or_create_ca(
    client: &Client,
    namespace: &str,
) -> Result<CertificateAuthority, CredentialsError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    if let Some(secret) = secrets.get_opt(CA_SECRET).await? {
        return Ok(CertificateAuthority::from_pem(
            &key(&secret, "ca.crt")?,
            &key(&secret, "ca.key")?,
        )?);
    }
    let ca = CertificateAuthority::generate("cnredis operator CA")?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(CA_SECRET.to_string()),
            labels: Some([("app.kubernetes.io/managed-by".to_string(), "cnredis".to_string())].into()),
            ..ObjectMeta::default()
        },
        data: Some(
            [
                (
                    "ca.crt".to_string(),
                    ByteString(ca.cert_pem().as_bytes().to_vec()),
                ),
                ("ca.key".to_string(), ByteString(ca.key_pem().as_bytes().to_vec())),
            ]
            .into(),
        ),
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(namespace, "created the operator CA");
            Ok(ca)
        }
        Err(kube::Error::Api(response)) if response.code == 409 => {
            let secret = secrets.get(CA_SECRET).await?;
            Ok(CertificateAuthority::from_pem(
                &key(&secret, "ca.crt")?,
                &key(&secret, "ca.key")?,
            )?)
        }
        Err(error) => Err(error.into()),
    }
}

/// Whether the instance-API certificate in `secret` must be (re)issued: there is none, or it is from
/// another CA, incomplete, or within [`RENEW_BEFORE`] of its expiry (the [`NOT_AFTER`] annotation).
pub fn certificate_due(secret: Option<&Secret>, ca: &CertificateAuthority, now: SystemTime) -> bool {
    let Some(secret) = secret else { return true };
    let same_ca = key(secret, "ca.crt").is_ok_and(|pem| pem == ca.cert_pem());
    let fresh = secret
        .annotations()
        .get(NOT_AFTER)
        .and_then(|text| text.parse::<jiff::Timestamp>().ok())
        .is_some_and(|not_after| SystemTime::from(not_after) > now + RENEW_BEFORE);
    !(same_ca && fresh && key(secret, "tls.crt").is_ok() && key(secret, "tls.key").is_ok())
}

/// A new instance-API server certificate whose only name is `server_name`.
pub fn issue_instance_api(
    ca: &CertificateAuthority,
    server_name: &str,
) -> Result<IssuedCertificate, CredentialsError> {
    Ok(ca.issue_server(&[server_name.to_string()], CERTIFICATE_VALIDITY)?)
}

/// A password of 32 characters from an alphabet that needs no quoting in a URI or a shell.
pub fn generate_password() -> Result<String, CredentialsError> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 64];
    getrandom::fill(&mut bytes).map_err(|error| CredentialsError::Random(error.to_string()))?;
    // Rejection sampling keeps every character equally likely.
    let limit = 256 - 256 % ALPHABET.len();
    let password: String = bytes
        .iter()
        .filter(|&&b| (b as usize) < limit)
        .take(32)
        .map(|&b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect();
    if password.len() < 32 {
        return generate_password();
    }
    Ok(password)
}

/// The password in an existing Secret (key `password`).
pub async fn read_password(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<String>, CredentialsError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match secrets.get_opt(name).await? {
        Some(secret) => Ok(Some(key(&secret, "password")?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_with(ca: &CertificateAuthority, not_after: SystemTime) -> Secret {
        let issued = issue_instance_api(ca, "cache-1.cache-any.prod.svc").unwrap();
        let mut secret = Secret {
            data: Some(
                [
                    ("ca.crt", ca.cert_pem()),
                    ("tls.crt", &issued.cert_pem),
                    ("tls.key", &issued.key_pem),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
            ),
            ..Secret::default()
        };
        let not_after = jiff::Timestamp::try_from(not_after).unwrap().to_string();
        secret.metadata.annotations = Some([(NOT_AFTER.to_string(), not_after)].into());
        secret
    }

    #[test]
    fn a_certificate_is_due_when_absent_from_another_ca_incomplete_or_near_expiry() {
        let ca = CertificateAuthority::generate("cnredis operator CA").unwrap();
        let other = CertificateAuthority::generate("another CA").unwrap();
        let now = SystemTime::now();
        let far = now + 2 * RENEW_BEFORE;
        assert!(certificate_due(None, &ca, now));
        assert!(!certificate_due(Some(&secret_with(&ca, far)), &ca, now));
        assert!(certificate_due(Some(&secret_with(&other, far)), &ca, now));
        let near = now + RENEW_BEFORE - Duration::from_secs(60);
        assert!(certificate_due(Some(&secret_with(&ca, near)), &ca, now));
        let mut incomplete = secret_with(&ca, far);
        incomplete.data.as_mut().unwrap().remove("tls.key");
        assert!(certificate_due(Some(&incomplete), &ca, now));
        let mut unannotated = secret_with(&ca, far);
        unannotated.metadata.annotations = None;
        assert!(certificate_due(Some(&unannotated), &ca, now));
    }

    #[test]
    fn generated_passwords_are_long_distinct_and_plain() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
