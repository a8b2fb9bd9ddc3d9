use std::time::SystemTime;

use super::*;
use crate::cluster::resources::fixture::cluster;

fn value(secret: &Secret, key: &str) -> String {
    let data = secret.data.as_ref().expect("data");
    let bytes = &data.get(key).unwrap_or_else(|| panic!("key {key} missing")).0;
    String::from_utf8(bytes.clone()).unwrap()
}

fn keys(secret: &Secret) -> Vec<&str> {
    secret.data.as_ref().unwrap().keys().map(String::as_str).collect()
}

#[test]
fn auth_secret_name_is_the_users_or_the_generated_one() {
    assert_eq!(auth_secret_name(&cluster("cache").build()), "cache-auth");
    assert_eq!(
        auth_secret_name(&cluster("cache").auth_secret("vault-synced").build()),
        "vault-synced"
    );
}

#[test]
fn auth_secret_holds_the_default_user_and_its_password() {
    let secret = desired_auth_secret(&cluster("cache").namespace("prod").build(), "s3cr3t");
    assert_eq!(secret.metadata.name.as_deref(), Some("cache-auth"));
    assert_eq!(secret.metadata.namespace.as_deref(), Some("prod"));
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/basic-auth"));
    assert_eq!(keys(&secret), ["password", "username"]);
    assert_eq!(value(&secret, "username"), "default");
    assert_eq!(value(&secret, "password"), "s3cr3t");
    assert!(secret.string_data.is_none());
}

#[test]
fn app_secret_points_at_the_leader_service() {
    let secret = desired_app_secret(&cluster("cache").namespace("prod").build(), Some("pw"));
    assert_eq!(secret.metadata.name.as_deref(), Some("cache-app"));
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    assert_eq!(keys(&secret), ["host", "password", "port", "uri", "username"]);
    assert_eq!(value(&secret, "host"), "cache-leader.prod.svc");
    assert_eq!(value(&secret, "port"), "6379");
    assert_eq!(value(&secret, "username"), "default");
    assert_eq!(value(&secret, "password"), "pw");
    assert_eq!(value(&secret, "uri"), "redis://:pw@cache-leader.prod.svc:6379");
}

#[test]
fn app_secret_uri_percent_encodes_the_password() {
    let cases = [
        ("p@ss/word", "p%40ss%2Fword"),
        ("a:b%c", "a%3Ab%25c"),
        ("plain-Pass_1.2~", "plain-Pass_1.2~"),
        ("sp ace#?", "sp%20ace%23%3F"),
        ("é", "%C3%A9"),
    ];
    for (password, encoded) in cases {
        let secret = desired_app_secret(&cluster("c").namespace("ns").build(), Some(password));
        assert_eq!(
            value(&secret, "uri"),
            format!("redis://:{encoded}@c-leader.ns.svc:6379"),
            "{password}"
        );
        // The password key itself is the password, not its encoding.
        assert_eq!(value(&secret, "password"), password);
    }
}

#[test]
fn app_secret_without_auth_has_an_empty_password_and_no_userinfo() {
    let secret = desired_app_secret(&cluster("c").namespace("ns").auth_disabled().build(), None);
    assert_eq!(value(&secret, "uri"), "redis://c-leader.ns.svc:6379");
    assert_eq!(value(&secret, "password"), "");
}

#[test]
fn app_secret_uri_uses_rediss_when_the_server_speaks_tls() {
    let secret = desired_app_secret(&cluster("c").namespace("ns").tls("c-tls").build(), Some("pw"));
    assert_eq!(value(&secret, "uri"), "rediss://:pw@c-leader.ns.svc:6379");
}

#[test]
fn instance_api_secret_is_a_tls_secret_with_its_ca() {
    let cert = IssuedCertificate {
        cert_pem: "CERT".to_string(),
        key_pem: "KEY".to_string(),
        not_after: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400),
    };
    let secret = desired_instance_api_secret(&cluster("cache").build(), "cache-2-api", "CA", &cert);
    assert_eq!(secret.metadata.name.as_deref(), Some("cache-2-api"));
    assert_eq!(
        secret.metadata.annotations.as_ref().unwrap()["cnredis.io/certificateNotAfter"],
        "1970-01-02T00:00:00Z"
    );
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(keys(&secret), ["ca.crt", "tls.crt", "tls.key"]);
    assert_eq!(value(&secret, "ca.crt"), "CA");
    assert_eq!(value(&secret, "tls.crt"), "CERT");
    assert_eq!(value(&secret, "tls.key"), "KEY");
}

#[test]
fn secrets_are_owned_credentials() {
    let c = cluster("cache").uid("u-1").build();
    for secret in [desired_auth_secret(&c, "x"), desired_app_secret(&c, Some("x"))] {
        let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.name.as_str(), owner.uid.as_str()), ("cache", "u-1"));
        let labels = secret.metadata.labels.unwrap();
        assert_eq!(labels["app.kubernetes.io/component"], "credentials");
        assert_eq!(labels["cnredis.io/cluster"], "cache");
    }
}

#[test]
fn secrets_are_deterministic() {
    let c = cluster("cache").build();
    assert_eq!(
        desired_app_secret(&c, Some("pw")),
        desired_app_secret(&c, Some("pw"))
    );
    assert_eq!(desired_auth_secret(&c, "pw"), desired_auth_secret(&c, "pw"));
}
