//! The cluster's Secrets: the server password (`<cluster>-auth`, unless the user names a Secret), what an
//! application mounts to connect (`<cluster>-app`), and the instance API's certificate
//! (`<cluster>-instance-api`). Values go in `data`, never `stringData`: `stringData` is write-only, so a
//! server-side apply of it would never match what is stored.

use std::collections::BTreeMap;

use cnredis_api::RedisCluster;
use cnredis_api::names::{REDIS_PORT, app_secret, auth_secret, leader_service};
use cnredis_pki::IssuedCertificate;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::meta::{COMPONENT_CREDENTIALS, cluster_name, cluster_namespace, owned_meta};

/// Key of the password in the auth Secret (the user's too) and in the app Secret.
pub const PASSWORD_KEY: &str = "password";
/// Key of the user name in the auth and app Secrets.
const USERNAME_KEY: &str = "username";
/// The user a password authenticates: `requirepass` sets the password of the `default` user.
pub const APP_USERNAME: &str = "default";

/// The Secret holding the server password: `spec.auth.secretName`, or the generated `<cluster>-auth`.
pub fn auth_secret_name(cluster: &RedisCluster) -> String {
    cluster
        .spec
        .auth
        .secret_name
        .clone()
        .unwrap_or_else(|| auth_secret(cluster_name(cluster)))
}

/// `<cluster>-auth` with the generated `password`; built only when the user names no Secret. Its type is
/// `kubernetes.io/basic-auth`, whose keys are exactly `username` and `password`.
pub fn desired_auth_secret(cluster: &RedisCluster, password: &str) -> Secret {
    secret(
        cluster,
        auth_secret(cluster_name(cluster)),
        "kubernetes.io/basic-auth",
        [(USERNAME_KEY, APP_USERNAME), (PASSWORD_KEY, password)],
    )
}

/// `<cluster>-app`: `uri`, `host`, `port`, `username` and `password` of the `-leader` Service, what an
/// application needs to connect. Without auth (`password` is `None`) the password is empty and the uri
/// carries none. With `spec.tls` the server speaks only TLS, so the uri's scheme is `rediss`.
pub fn desired_app_secret(cluster: &RedisCluster, password: Option<&str>) -> Secret {
    let host = format!(
        "{}.{}.svc",
        leader_service(cluster_name(cluster)),
        cluster_namespace(cluster)
    );
    let scheme = if cluster.spec.tls.is_some() {
        "rediss"
    } else {
        "redis"
    };
    let uri = match password {
        Some(password) => format!("{scheme}://:{}@{host}:{REDIS_PORT}", percent_encode(password)),
        None => format!("{scheme}://{host}:{REDIS_PORT}"),
    };
    let port = REDIS_PORT.to_string();
    secret(
        cluster,
        app_secret(cluster_name(cluster)),
        "Opaque",
        [
            ("uri", uri.as_str()),
            ("host", host.as_str()),
            ("port", port.as_str()),
            (USERNAME_KEY, APP_USERNAME),
            (PASSWORD_KEY, password.unwrap_or_default()),
        ],
    )
}

/// An instance-API Secret (`<pod>-api`, or the older cluster-wide `<cluster>-instance-api`): the server
/// certificate and the operator CA that issued it (which is also what the instance manager trusts for the
/// operator's client certificate), annotated with the certificate's expiry so that later reconciles keep
/// it until it is due.
pub fn desired_instance_api_secret(
    cluster: &RedisCluster,
    name: &str,
    ca_pem: &str,
    cert: &IssuedCertificate,
) -> Secret {
    let mut secret = secret(
        cluster,
        name.to_string(),
        "kubernetes.io/tls",
        [
            ("ca.crt", ca_pem),
            ("tls.crt", cert.cert_pem.as_str()),
            ("tls.key", cert.key_pem.as_str()),
        ],
    );
    let not_after = jiff::Timestamp::try_from(cert.not_after)
        .map(|t| t.to_string())
        .unwrap_or_default();
    secret
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(crate::credentials::NOT_AFTER.to_string(), not_after);
    secret
}

fn secret<const N: usize>(
    cluster: &RedisCluster,
    name: String,
    type_: &str,
    data: [(&str, &str); N],
) -> Secret {
    Secret {
        metadata: owned_meta(cluster, name, COMPONENT_CREDENTIALS),
        type_: Some(type_.to_string()),
        data: Some(
            data.into_iter()
                .map(|(key, value)| (key.to_string(), ByteString(value.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Secret::default()
    }
}

/// Percent-encodes every byte but RFC 3986's unreserved characters, so any password is a valid userinfo
/// (`@`, `/`, `:` and `%` in particular would otherwise end it or change its meaning).
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests;
