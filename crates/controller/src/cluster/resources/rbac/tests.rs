use super::*;
use crate::cluster::resources::fixture::cluster;

/// (groups, resources, resourceNames, verbs) of a rule, for readable comparisons.
type RuleSummary = (Vec<String>, Vec<String>, Vec<String>, Vec<String>);

fn summary(rule: &PolicyRule) -> RuleSummary {
    (
        rule.api_groups.clone().unwrap_or_default(),
        rule.resources.clone().unwrap_or_default(),
        rule.resource_names.clone().unwrap_or_default(),
        rule.verbs.clone(),
    )
}

fn expected(groups: &[&str], resources: &[&str], names: &[&str], verbs: &[&str]) -> RuleSummary {
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
    (
        strings(groups),
        strings(resources),
        strings(names),
        strings(verbs),
    )
}

#[test]
fn instance_role_grants_exactly_what_the_instance_manager_does() {
    let (_, role, _) = desired_instance_rbac(&cluster("cache").build());
    let rules: Vec<_> = role.rules.unwrap().iter().map(summary).collect();
    assert_eq!(
        rules,
        vec![
            expected(
                &["redis.cnredis.io"],
                &["redisclusters"],
                &["cache"],
                &["get", "list", "watch"]
            ),
            expected(&[""], &["pods"], &[], &["get", "list", "watch"]),
            expected(&["coordination.k8s.io"], &["leases"], &[], &["create"]),
            expected(
                &["coordination.k8s.io"],
                &["leases"],
                &["cache-primary"],
                &["get", "update", "patch"]
            ),
            expected(&["", "events.k8s.io"], &["events"], &[], &["create", "patch"]),
        ]
    );
}

#[test]
fn instance_role_never_reaches_secrets_or_writes_clusters() {
    let (_, role, _) = desired_instance_rbac(&cluster("cache").build());
    for rule in role.rules.unwrap() {
        let resources = rule.resources.unwrap();
        assert!(
            !resources.iter().any(|r| r == "secrets" || r == "*"),
            "{resources:?}"
        );
        assert!(!rule.verbs.iter().any(|v| v == "*"));
        if resources.iter().any(|r| r.starts_with("redisclusters")) {
            assert_eq!(rule.verbs, ["get", "list", "watch"]);
        }
    }
}

#[test]
fn binding_ties_the_instance_account_to_its_role() {
    let (account, role, binding) = desired_instance_rbac(&cluster("cache").namespace("prod").build());
    for meta in [&account.metadata, &role.metadata, &binding.metadata] {
        assert_eq!(meta.name.as_deref(), Some("cache-instance"));
        assert_eq!(meta.namespace.as_deref(), Some("prod"));
        assert_eq!(meta.owner_references.as_ref().unwrap()[0].name, "cache");
    }
    assert_eq!(
        binding.role_ref,
        RoleRef {
            api_group: "rbac.authorization.k8s.io".to_string(),
            kind: "Role".to_string(),
            name: "cache-instance".to_string(),
        }
    );
    assert_eq!(
        binding.subjects.unwrap(),
        [Subject {
            kind: "ServiceAccount".to_string(),
            name: "cache-instance".to_string(),
            namespace: Some("prod".to_string()),
            api_group: None,
        }]
    );
}
