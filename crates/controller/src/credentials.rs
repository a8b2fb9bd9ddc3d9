//! The operator's certificate authority (Secret `cnredis-ca` in the operator's namespace), its client
//! certificate for the instance API, each cluster's instance-API server certificate, and generated
//! passwords.

use std::time::{Duration, SystemTime};

use cnredis_api::RedisCluster;
use cnredis_api::names::instance_api_secret;
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

/// The instance-API certificate of `cluster`: the one in its Secret while it is from this CA and far
/// from expiry, else a new one (`Some`, to be applied).
pub async fn instance_api_certificate(
    client: &Client,
    ca: &CertificateAuthority,
    cluster: &RedisCluster,
) -> Result<Option<IssuedCertificate>, CredentialsError> {
    let namespace = cluster.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    if let Some(secret) = secrets.get_opt(&instance_api_secret(&cluster.name_any())).await? {
        let same_ca = key(&secret, "ca.crt").is_ok_and(|pem| pem == ca.cert_pem());
        let fresh = secret
            .annotations()
            .get(NOT_AFTER)
            .and_then(|text| text.parse::<jiff::Timestamp>().ok())
            .is_some_and(|not_after| SystemTime::from(not_after) > SystemTime::now() + RENEW_BEFORE);
        if same_ca && fresh && key(&secret, "tls.crt").is_ok() && key(&secret, "tls.key").is_ok() {
            return Ok(None);
        }
    }
    let name = cnredis_pki::instance_api_server_name(&cluster.name_any(), &namespace);
    Ok(Some(ca.issue_server(&[name], CERTIFICATE_VALIDITY)?))
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

    #[test]
    fn generated_passwords_are_long_distinct_and_plain() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
