//! Where and as whom the operator reaches an instance's API: the pod's address and the name its
//! certificate bears (one per instance, or the cluster's shared one on pods created before per-instance
//! certificates).

use std::net::{IpAddr, SocketAddr};

use cnredis_api::RedisCluster;
use cnredis_api::names::INSTANCE_API_PORT;
use cnredis_instance_client::Target;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

/// Where the instance API of `pod` answers, and the name its certificate must carry: the pod's own
/// (`cnredis_pki::instance_server_name`), or the cluster-wide one while the pod still mounts the
/// cluster-wide Secret (created by an operator before per-instance certificates).
pub fn api_target(cluster: &RedisCluster, pod: &Pod) -> Option<Target> {
    let ip: IpAddr = pod.status.as_ref()?.pod_ip.as_ref()?.parse().ok()?;
    Some(Target {
        server_name: api_server_name(cluster, pod),
        address: SocketAddr::new(ip, INSTANCE_API_PORT),
    })
}

fn api_server_name(cluster: &RedisCluster, pod: &Pod) -> String {
    let (name, namespace) = (cluster.name_any(), cluster.namespace().unwrap_or_default());
    if mounts_shared_api_secret(cluster, pod) {
        cnredis_pki::instance_api_server_name(&name, &namespace)
    } else {
        cnredis_pki::instance_server_name(&pod.name_any(), &name, &namespace)
    }
}

/// Whether `pod` mounts the cluster-wide instance-API Secret (it was created before each instance had
/// its own certificate).
pub fn mounts_shared_api_secret(cluster: &RedisCluster, pod: &Pod) -> bool {
    let shared = cnredis_api::names::instance_api_secret(&cluster.name_any());
    pod.spec
        .iter()
        .flat_map(|spec| spec.volumes.iter().flatten())
        .any(|volume| volume.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some(shared.as_str()))
}
