//! Certificates of the instance API: the operator's CA, the server certificate of each instance
//! manager, the operator's client certificate, and the rustls configurations that let an instance manager
//! tell the operator apart from any other caller.

mod authority;
mod authorizer;
mod error;
mod pem;
mod tls;

pub use authority::{CertificateAuthority, IssuedCertificate};
pub use authorizer::{Caller, CallerAuthorizer, InstanceCertificate};
pub use error::PkiError;
pub use tls::{anonymous_client_config, client_config, server_config};

/// DNS SAN (and CN) of the operator's client certificate: the identity an instance manager authorizes.
pub const OPERATOR_CLIENT_NAME: &str = "operator.cnredis.io";

/// Name the cluster-wide instance API server certificate carried, which every instance of the cluster
/// shared: the cluster's `-any` Service name. Pods created before per-instance certificates still present
/// it until the rolling update that the new pod spec causes has replaced them.
pub fn instance_api_server_name(cluster: &str, namespace: &str) -> String {
    format!("{cluster}-any.{namespace}.svc")
}

/// Name the instance API server certificate of one instance carries, and the name the operator verifies
/// when it connects to that pod's IP: an address that now belongs to another instance (a stale IP, reused
/// after a pod was recreated) fails the handshake instead of answering for the instance the operator meant
/// to fence or promote, and one instance's key cannot answer as another.
pub fn instance_server_name(pod: &str, cluster: &str, namespace: &str) -> String {
    format!("{pod}.{cluster}-any.{namespace}.svc")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_api_server_name_is_the_any_service_of_the_cluster() {
        assert_eq!(instance_api_server_name("cache", "prod"), "cache-any.prod.svc");
    }

    #[test]
    fn instance_server_name_is_the_pod_under_the_any_service() {
        assert_eq!(
            instance_server_name("cache-2", "cache", "prod"),
            "cache-2.cache-any.prod.svc"
        );
    }
}
