//! Certificates of the instance API: the operator's CA, the per-cluster server certificate of the instance
//! managers, the operator's client certificate, and the rustls configurations that let an instance manager
//! tell the operator apart from any other caller.

mod authority;
mod authorizer;
mod error;
mod pem;
mod tls;

pub use authority::{CertificateAuthority, IssuedCertificate};
pub use authorizer::{Caller, CallerAuthorizer};
pub use error::PkiError;
pub use tls::{anonymous_client_config, client_config, server_config};

/// DNS SAN (and CN) of the operator's client certificate: the identity an instance manager authorizes.
pub const OPERATOR_CLIENT_NAME: &str = "operator.cnredis.io";

/// Name the instance API server certificate of a cluster carries, and the name the operator verifies when
/// it connects to a pod IP. It is the cluster's `-any` Service name, so it also verifies for callers that
/// go through that Service.
pub fn instance_api_server_name(cluster: &str, namespace: &str) -> String {
    format!("{cluster}-any.{namespace}.svc")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_api_server_name_is_the_any_service_of_the_cluster() {
        assert_eq!(instance_api_server_name("cache", "prod"), "cache-any.prod.svc");
    }
}
