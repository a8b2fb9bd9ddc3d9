//! The PodDisruptionBudgets: a voluntary disruption (a node drain) may take at most one of the primary
//! and the replicas at a time, never the primary together with the last in-sync replica.
//!
//! Budgets follow the `cnredis.io/role` label, which the operator moves on failover and switchover, so
//! they keep protecting the right pods. A fenced primary has no role label and no budget: it must not
//! block the drain that may be what fenced it.

use std::collections::BTreeMap;

use cnredis_api::RedisCluster;
use cnredis_api::names::{LABEL_CLUSTER, LABEL_ROLE, ROLE_PRIMARY, ROLE_REPLICA};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{COMPONENT_DISRUPTION_BUDGET, cluster_name, owned_meta};

/// Budget over the primary.
pub fn primary_pdb_name(cluster: &str) -> String {
    format!("{cluster}-primary")
}

/// Budget over the replicas.
pub fn replicas_pdb_name(cluster: &str) -> String {
    format!("{cluster}-replicas")
}

/// `<cluster>-primary` (the primary stays) and `<cluster>-replicas` (at most one replica goes), or none
/// with one instance (a budget that can never be satisfied would block every drain) or with
/// `spec.enablePDB: false`.
pub fn desired_pdbs(cluster: &RedisCluster) -> Vec<PodDisruptionBudget> {
    let instances = cluster.spec.instances;
    if instances <= 1 || !cluster.spec.enable_pdb {
        return Vec::new();
    }
    let name = cluster_name(cluster);
    let replicas = instances - 1;
    vec![
        pdb(cluster, primary_pdb_name(name), ROLE_PRIMARY, 1),
        pdb(
            cluster,
            replicas_pdb_name(name),
            ROLE_REPLICA,
            (replicas - 1).max(0),
        ),
    ]
}

fn pdb(cluster: &RedisCluster, name: String, role: &str, min_available: i32) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: owned_meta(cluster, name, COMPONENT_DISRUPTION_BUDGET),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(min_available)),
            selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([
                    (LABEL_CLUSTER.to_string(), cluster_name(cluster).to_string()),
                    (LABEL_ROLE.to_string(), role.to_string()),
                ])),
                match_expressions: None,
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::resources::fixture::cluster;

    /// (name, role selected, minAvailable) of each budget.
    fn summary(pdbs: &[PodDisruptionBudget]) -> Vec<(String, String, i32)> {
        pdbs.iter()
            .map(|pdb| {
                let spec = pdb.spec.as_ref().unwrap();
                let labels = spec.selector.as_ref().unwrap().match_labels.as_ref().unwrap();
                let Some(IntOrString::Int(min)) = spec.min_available else {
                    panic!("minAvailable is not a number")
                };
                (
                    pdb.metadata.name.clone().unwrap(),
                    labels[LABEL_ROLE].clone(),
                    min,
                )
            })
            .collect()
    }

    #[test]
    fn budgets_keep_the_primary_and_all_replicas_but_one() {
        let both = |replicas_min| {
            vec![
                ("c-primary".to_string(), "primary".to_string(), 1),
                ("c-replicas".to_string(), "replica".to_string(), replicas_min),
            ]
        };
        let cases = [(1, vec![]), (2, both(0)), (3, both(1)), (5, both(3))];
        for (instances, expected) in cases {
            let pdbs = desired_pdbs(&cluster("c").instances(instances).build());
            assert_eq!(summary(&pdbs), expected, "instances: {instances}");
        }
    }

    #[test]
    fn no_budget_when_disabled() {
        let cluster = cluster("c").instances(3).enable_pdb(false).build();
        assert!(desired_pdbs(&cluster).is_empty());
    }

    #[test]
    fn budgets_select_only_pods_of_their_cluster() {
        for pdb in desired_pdbs(&cluster("cache").instances(3).build()) {
            let spec = pdb.spec.unwrap();
            let labels = spec.selector.unwrap().match_labels.unwrap();
            assert_eq!(labels[LABEL_CLUSTER], "cache");
            assert_eq!(labels.len(), 2);
            assert_eq!(pdb.metadata.owner_references.unwrap()[0].name, "cache");
        }
    }
}
