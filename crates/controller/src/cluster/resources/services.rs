//! The cluster's Services: `-leader` routes to the primary (read/write), `-replica` to the replicas
//! (read-only) and `-any` to every instance. Routing follows the `cnredis.io/role` label, which only the
//! operator sets, so a failover moves `-leader` by relabelling pods.

use std::collections::BTreeMap;

use cnredis_api::RedisCluster;
use cnredis_api::names::{
    LABEL_CLUSTER, LABEL_ROLE, REDIS_PORT, ROLE_PRIMARY, ROLE_REPLICA, any_service, leader_service,
    replica_service,
};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{COMPONENT_DATABASE, COMPONENT_SERVICE, LABEL_COMPONENT, cluster_name, owned_meta};

/// `-leader`, `-replica` and `-any`, in that order.
pub fn desired_services(cluster: &RedisCluster) -> Vec<Service> {
    let name = cluster_name(cluster);
    vec![
        service(cluster, leader_service(name), Some(ROLE_PRIMARY)),
        service(cluster, replica_service(name), Some(ROLE_REPLICA)),
        service(cluster, any_service(name), None),
    ]
}

/// A ClusterIP Service on the Redis port over the cluster's instance pods, narrowed to `role` if given.
fn service(cluster: &RedisCluster, name: String, role: Option<&str>) -> Service {
    let mut selector = BTreeMap::from([
        (LABEL_CLUSTER.to_string(), cluster_name(cluster).to_string()),
        // Only instance pods: other pods of the cluster (a backup job, say) carry the cluster label too.
        (LABEL_COMPONENT.to_string(), COMPONENT_DATABASE.to_string()),
    ]);
    if let Some(role) = role {
        selector.insert(LABEL_ROLE.to_string(), role.to_string());
    }
    Service {
        metadata: owned_meta(cluster, name, COMPONENT_SERVICE),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("redis".to_string()),
                port: i32::from(REDIS_PORT),
                target_port: Some(IntOrString::String("redis".to_string())),
                protocol: Some("TCP".to_string()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::resources::fixture::cluster;

    fn selector(service: &Service) -> Vec<(String, String)> {
        let selector = service.spec.as_ref().unwrap().selector.clone().unwrap();
        selector.into_iter().collect()
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn services_select_the_primary_the_replicas_and_every_instance() {
        let services = desired_services(&cluster("cache").build());
        let names: Vec<_> = services
            .iter()
            .map(|s| s.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["cache-leader", "cache-replica", "cache-any"]);

        let instances = [
            ("app.kubernetes.io/component", "database"),
            ("cnredis.io/cluster", "cache"),
        ];
        let with_role = |role| {
            let mut all = instances.to_vec();
            all.push(("cnredis.io/role", role));
            all.sort();
            pairs(&all)
        };
        assert_eq!(selector(&services[0]), with_role("primary"));
        assert_eq!(selector(&services[1]), with_role("replica"));
        assert_eq!(selector(&services[2]), pairs(&instances));
    }

    #[test]
    fn services_are_cluster_ip_on_the_named_redis_port() {
        for service in desired_services(&cluster("cache").build()) {
            let spec = service.spec.unwrap();
            assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
            let ports = spec.ports.unwrap();
            assert_eq!(ports.len(), 1);
            assert_eq!(ports[0].name.as_deref(), Some("redis"));
            assert_eq!(ports[0].port, 6379);
            assert_eq!(
                ports[0].target_port,
                Some(IntOrString::String("redis".to_string()))
            );
        }
    }

    #[test]
    fn services_are_owned_by_the_cluster_and_labelled_as_services() {
        for service in desired_services(&cluster("cache").namespace("prod").build()) {
            assert_eq!(service.metadata.namespace.as_deref(), Some("prod"));
            assert_eq!(service.metadata.owner_references.unwrap()[0].name, "cache");
            assert_eq!(
                service.metadata.labels.unwrap()["app.kubernetes.io/component"],
                "service"
            );
        }
    }
}
