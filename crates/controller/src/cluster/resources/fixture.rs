//! Test fixtures: RedisClusters built from a few words, `cluster("c").instances(3).tls("c-tls").build()`,
//! starting from the spec the API server stores for an empty one.

use std::collections::BTreeMap;

use cnredis_api::RedisCluster;
use cnredis_api::cluster::{LogLevel, PodAntiAffinityType, RedisClusterSpec, TlsSpec};
use k8s_openapi::api::core::v1::{
    LocalObjectReference, NodeAffinity, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

pub struct ClusterBuilder {
    cluster: RedisCluster,
}

/// A stored RedisCluster `name` in namespace `ns`, every spec field defaulted.
pub fn cluster(name: &str) -> ClusterBuilder {
    let mut cluster = RedisCluster::new(name, RedisClusterSpec::with_defaults());
    cluster.metadata.namespace = Some("ns".to_string());
    cluster.metadata.uid = Some(format!("uid-of-{name}"));
    ClusterBuilder { cluster }
}

fn quantities(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, Quantity>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect(),
    )
}

impl ClusterBuilder {
    pub fn build(self) -> RedisCluster {
        self.cluster
    }

    fn spec(mut self, change: impl FnOnce(&mut RedisClusterSpec)) -> Self {
        change(&mut self.cluster.spec);
        self
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        self.cluster.metadata.namespace = Some(namespace.to_string());
        self
    }

    pub fn uid(mut self, uid: &str) -> Self {
        self.cluster.metadata.uid = Some(uid.to_string());
        self
    }

    pub fn instances(self, instances: i32) -> Self {
        self.spec(|s| s.instances = instances)
    }

    pub fn image(self, image: &str) -> Self {
        self.spec(|s| s.image_name = image.to_string())
    }

    pub fn image_pull_policy(self, policy: &str) -> Self {
        self.spec(|s| s.image_pull_policy = Some(policy.to_string()))
    }

    pub fn image_pull_secret(self, name: &str) -> Self {
        self.spec(|s| {
            s.image_pull_secrets.push(LocalObjectReference {
                name: name.to_string(),
            })
        })
    }

    pub fn auth_disabled(self) -> Self {
        self.spec(|s| s.auth.enabled = false)
    }

    pub fn auth_secret(self, name: &str) -> Self {
        self.spec(|s| s.auth.secret_name = Some(name.to_string()))
    }

    pub fn tls(self, secret: &str) -> Self {
        self.spec(|s| {
            s.tls = Some(TlsSpec {
                secret_name: secret.to_string(),
            })
        })
    }

    /// Requests and limits, each a list of (resource, quantity).
    pub fn resources(self, requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Self {
        let resources = ResourceRequirements {
            requests: quantities(requests).filter(|q| !q.is_empty()),
            limits: quantities(limits).filter(|q| !q.is_empty()),
            ..ResourceRequirements::default()
        };
        self.spec(|s| s.resources = Some(resources))
    }

    pub fn storage(self, size: &str, class: Option<&str>) -> Self {
        self.spec(|s| {
            s.storage.size = size.to_string();
            s.storage.storage_class = class.map(str::to_string);
        })
    }

    pub fn anti_affinity(self, kind: PodAntiAffinityType) -> Self {
        self.spec(|s| s.affinity.pod_anti_affinity_type = kind)
    }

    pub fn topology_key(self, key: &str) -> Self {
        self.spec(|s| s.affinity.topology_key = key.to_string())
    }

    pub fn node_selector(self, key: &str, value: &str) -> Self {
        self.spec(|s| {
            s.affinity
                .node_selector
                .insert(key.to_string(), value.to_string());
        })
    }

    pub fn toleration(self, toleration: Toleration) -> Self {
        self.spec(|s| s.affinity.tolerations.push(toleration))
    }

    pub fn node_affinity(self, affinity: NodeAffinity) -> Self {
        self.spec(|s| s.affinity.node_affinity = Some(affinity))
    }

    pub fn topology_spread(self, constraint: TopologySpreadConstraint) -> Self {
        self.spec(|s| s.topology_spread_constraints.push(constraint))
    }

    pub fn priority_class(self, name: &str) -> Self {
        self.spec(|s| s.priority_class_name = Some(name.to_string()))
    }

    pub fn stop_delay_seconds(self, seconds: i32) -> Self {
        self.spec(|s| s.stop_delay_seconds = seconds)
    }

    /// `spec.backup` to `s3://backups/team` with keys `id`/`key` of Secret `s3`.
    pub fn backup(self) -> Self {
        self.spec(|spec| {
            spec.backup = Some(
                serde_json::from_value(serde_json::json!({
                    "objectStore": {
                        "destinationPath": "s3://backups/team",
                        "s3Credentials": {
                            "accessKeyId": {"name": "s3", "key": "id"},
                            "secretAccessKey": {"name": "s3", "key": "key"},
                        },
                    },
                }))
                .unwrap(),
            )
        })
    }

    pub fn log_level(self, level: LogLevel) -> Self {
        self.spec(|s| s.log_level = level)
    }

    pub fn enable_pdb(self, enabled: bool) -> Self {
        self.spec(|s| s.enable_pdb = enabled)
    }
}
