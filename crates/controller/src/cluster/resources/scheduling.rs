//! Placement of instance pods: the user's node selector and node affinity, and the pod anti-affinity that
//! keeps the instances of one cluster in different failure domains, so one node (or zone) going down
//! cannot take the primary and its replicas together.

use std::collections::BTreeMap;

use cnredis_api::RedisCluster;
use cnredis_api::cluster::PodAntiAffinityType;
use cnredis_api::names::LABEL_CLUSTER;
use k8s_openapi::api::core::v1::{Affinity, PodAffinityTerm, PodAntiAffinity, WeightedPodAffinityTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::meta::cluster_name;

/// Weight of the preferred anti-affinity: the highest the API allows, as spreading the instances matters
/// more than any preference the user may add.
const PREFERRED_WEIGHT: i32 = 100;

/// The pod's affinity: the user's node affinity and the instances' anti-affinity; `None` when neither.
pub fn affinity(cluster: &RedisCluster) -> Option<Affinity> {
    let node_affinity = cluster.spec.affinity.node_affinity.clone();
    let pod_anti_affinity = pod_anti_affinity(cluster);
    if node_affinity.is_none() && pod_anti_affinity.is_none() {
        return None;
    }
    Some(Affinity {
        node_affinity,
        pod_anti_affinity,
        pod_affinity: None,
    })
}

/// `spec.affinity.nodeSelector`, `None` when empty.
pub fn node_selector(cluster: &RedisCluster) -> Option<BTreeMap<String, String>> {
    let selector = &cluster.spec.affinity.node_selector;
    (!selector.is_empty()).then(|| selector.clone())
}

fn pod_anti_affinity(cluster: &RedisCluster) -> Option<PodAntiAffinity> {
    let term = PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                LABEL_CLUSTER.to_string(),
                cluster_name(cluster).to_string(),
            )])),
            match_expressions: None,
        }),
        topology_key: cluster.spec.affinity.topology_key.clone(),
        ..PodAffinityTerm::default()
    };
    match cluster.spec.affinity.pod_anti_affinity_type {
        PodAntiAffinityType::Preferred => Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
                weight: PREFERRED_WEIGHT,
                pod_affinity_term: term,
            }]),
            required_during_scheduling_ignored_during_execution: None,
        }),
        PodAntiAffinityType::Required => Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: None,
            required_during_scheduling_ignored_during_execution: Some(vec![term]),
        }),
        PodAntiAffinityType::Disabled => None,
    }
}
