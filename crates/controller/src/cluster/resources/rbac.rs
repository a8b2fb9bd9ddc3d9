//! The instance manager's identity, `<cluster>-instance`: a ServiceAccount, and a Role bound to it with
//! only what `cnredis instance run` does with the API server — watch its RedisCluster and the pods, hold
//! the primary lease, record events. A pod can neither read Secrets nor write the RedisCluster.

use cnredis_api::RedisCluster;
use cnredis_api::names::{GROUP, primary_lease};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::meta::{COMPONENT_INSTANCE_RBAC, cluster_name, owned_meta};

/// ServiceAccount, Role and RoleBinding of the instance pods of `cluster`.
pub fn instance_service_account(cluster: &str) -> String {
    format!("{cluster}-instance")
}

/// The ServiceAccount the instance pods run as, its Role and the binding of the two.
pub fn desired_instance_rbac(cluster: &RedisCluster) -> (ServiceAccount, Role, RoleBinding) {
    let name = instance_service_account(cluster_name(cluster));
    let meta = || owned_meta(cluster, name.clone(), COMPONENT_INSTANCE_RBAC);
    let account = ServiceAccount {
        metadata: meta(),
        ..ServiceAccount::default()
    };
    let role = Role {
        metadata: meta(),
        rules: Some(instance_rules(cluster_name(cluster))),
    };
    let binding = RoleBinding {
        metadata: meta(),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_string(),
            kind: "Role".to_string(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_string(),
            name: name.clone(),
            namespace: cluster.metadata.namespace.clone(),
            api_group: None,
        }]),
    };
    (account, role, binding)
}

fn instance_rules(cluster: &str) -> Vec<PolicyRule> {
    vec![
        // Only its own RedisCluster: the instance manager gets it by name and watches it with the field
        // selector `metadata.name=<cluster>`, which is what lets the authorizer apply resourceNames to a
        // list or watch. A pod of one cluster cannot read another cluster's spec.
        rule(
            &[GROUP],
            &["redisclusters"],
            &[cluster],
            &["get", "list", "watch"],
        ),
        // The pods of its cluster (label selector), to know where the primary is.
        rule(&[""], &["pods"], &[], &["get", "list", "watch"]),
        // `create` cannot be restricted by name (the name is not known to the authorizer before the
        // object exists); everything else on leases is limited to the cluster's primary lease.
        rule(&["coordination.k8s.io"], &["leases"], &[], &["create"]),
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &[&primary_lease(cluster)],
            &["get", "update", "patch"],
        ),
        // Both event APIs: kube's `Recorder` writes `events.k8s.io` and patches an event to count repeats.
        rule(&["", "events.k8s.io"], &["events"], &[], &["create", "patch"]),
    ]
}

fn rule(groups: &[&str], resources: &[&str], names: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        resource_names: (!names.is_empty()).then(|| strings(names)),
        verbs: strings(verbs),
        non_resource_urls: None,
    }
}

#[cfg(test)]
mod tests;
