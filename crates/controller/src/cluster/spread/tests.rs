use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Taint, Toleration,
};

use super::*;
use crate::memory::RecentMoves;

fn node(name: &str, zone: &str) -> NodeFacts {
    NodeFacts {
        name: name.to_string(),
        labels: BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), name.to_string()),
            ("zone".to_string(), zone.to_string()),
        ]),
        ready: true,
        unschedulable: false,
        taints: Vec::new(),
    }
}

fn requirement(key: &str, operator: &str, values: &[&str]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.to_string(),
        operator: operator.to_string(),
        values: Some(values.iter().map(|v| v.to_string()).collect()),
    }
}

fn selector(terms: Vec<NodeSelectorTerm>) -> NodeSelector {
    NodeSelector {
        node_selector_terms: terms,
    }
}

fn expressions(requirements: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
    NodeSelectorTerm {
        match_expressions: Some(requirements),
        match_fields: None,
    }
}

fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
    Taint {
        key: key.to_string(),
        value: value.map(str::to_string),
        effect: effect.to_string(),
        time_added: None,
    }
}

fn toleration(key: Option<&str>, operator: &str, value: Option<&str>, effect: Option<&str>) -> Toleration {
    Toleration {
        key: key.map(str::to_string),
        operator: Some(operator.to_string()),
        value: value.map(str::to_string),
        effect: effect.map(str::to_string),
        toleration_seconds: None,
    }
}

#[test]
fn a_node_that_is_not_ready_or_cordoned_runs_nothing() {
    let free = Requirements::default();
    assert!(could_run_on(&free, &node("b", "z")));
    let not_ready = NodeFacts {
        ready: false,
        ..node("b", "z")
    };
    let cordoned = NodeFacts {
        unschedulable: true,
        ..node("b", "z")
    };
    assert!(!could_run_on(&free, &not_ready));
    assert!(!could_run_on(&free, &cordoned));
}

#[test]
fn node_selector_and_required_node_affinity_must_match() {
    let by_selector = Requirements {
        node_selector: BTreeMap::from([("zone".to_string(), "z1".to_string())]),
        ..Requirements::default()
    };
    assert!(could_run_on(&by_selector, &node("a", "z1")));
    assert!(!could_run_on(&by_selector, &node("b", "z2")));

    // Terms are ORed, expressions within a term ANDed.
    let by_affinity = Requirements {
        node_affinity: Some(selector(vec![
            expressions(vec![
                requirement("zone", "In", &["z1", "z2"]),
                requirement("kubernetes.io/hostname", "NotIn", &["a"]),
            ]),
            expressions(vec![requirement("zone", "In", &["z9"])]),
        ])),
        ..Requirements::default()
    };
    let cases = [
        ("a", "z1", false),
        ("b", "z1", true),
        ("c", "z2", true),
        ("d", "z3", false),
        ("e", "z9", true),
    ];
    for (name, zone, expected) in cases {
        assert_eq!(
            could_run_on(&by_affinity, &node(name, zone)),
            expected,
            "{name} in {zone}"
        );
    }
}

#[test]
fn every_operator_of_a_node_selector_requirement() {
    let mut n = node("n1", "z");
    n.labels.insert("cpus".to_string(), "8".to_string());
    let cases = [
        (requirement("zone", "In", &["z"]), true),
        (requirement("zone", "In", &["y"]), false),
        (requirement("zone", "NotIn", &["y"]), true),
        (requirement("absent", "NotIn", &["y"]), true),
        (requirement("zone", "Exists", &[]), true),
        (requirement("absent", "Exists", &[]), false),
        (requirement("absent", "DoesNotExist", &[]), true),
        (requirement("zone", "DoesNotExist", &[]), false),
        (requirement("cpus", "Gt", &["4"]), true),
        (requirement("cpus", "Gt", &["8"]), false),
        (requirement("cpus", "Lt", &["16"]), true),
        (requirement("zone", "Gt", &["1"]), false),
        (requirement("zone", "Sideways", &["z"]), false),
    ];
    for (r, expected) in cases {
        let requirements = Requirements {
            node_affinity: Some(selector(vec![expressions(vec![r.clone()])])),
            ..Requirements::default()
        };
        assert_eq!(could_run_on(&requirements, &n), expected, "{r:?}");
    }
    // Fields: only metadata.name; an empty term matches nothing.
    let by_name = |name: &str| Requirements {
        node_affinity: Some(selector(vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![requirement("metadata.name", "In", &[name])]),
        }])),
        ..Requirements::default()
    };
    assert!(could_run_on(&by_name("n1"), &n));
    assert!(!could_run_on(&by_name("n2"), &n));
    let empty = Requirements {
        node_affinity: Some(selector(vec![NodeSelectorTerm::default()])),
        ..Requirements::default()
    };
    assert!(!could_run_on(&empty, &n));
}

#[test]
fn a_volume_bound_to_one_node_runs_only_there() {
    let requirements = Requirements {
        volume_affinity: Some(selector(vec![expressions(vec![requirement(
            "kubernetes.io/hostname",
            "In",
            &["a"],
        )])])),
        ..Requirements::default()
    };
    assert!(could_run_on(&requirements, &node("a", "z")));
    assert!(!could_run_on(&requirements, &node("b", "z")));
}

#[test]
fn taints_that_forbid_scheduling_need_a_toleration() {
    let tainted = |t: Taint| NodeFacts {
        taints: vec![t],
        ..node("b", "z")
    };
    let with = |tolerations: Vec<Toleration>| Requirements {
        tolerations,
        ..Requirements::default()
    };
    let dedicated = tainted(taint("dedicated", Some("redis"), "NoSchedule"));
    assert!(!could_run_on(&with(vec![]), &dedicated));
    assert!(could_run_on(
        &with(vec![toleration(
            Some("dedicated"),
            "Equal",
            Some("redis"),
            Some("NoSchedule")
        )]),
        &dedicated
    ));
    assert!(!could_run_on(
        &with(vec![toleration(Some("dedicated"), "Equal", Some("web"), None)]),
        &dedicated
    ));
    assert!(!could_run_on(
        &with(vec![toleration(
            Some("dedicated"),
            "Exists",
            None,
            Some("NoExecute")
        )]),
        &dedicated
    ));
    assert!(could_run_on(
        &with(vec![toleration(Some("dedicated"), "Exists", None, None)]),
        &dedicated
    ));
    // An empty key with Exists tolerates everything.
    assert!(could_run_on(
        &with(vec![toleration(None, "Exists", None, None)]),
        &dedicated
    ));
    // A node going away (NoExecute) too; a soft preference does not forbid.
    assert!(!could_run_on(
        &with(vec![]),
        &tainted(taint("unreachable", None, "NoExecute"))
    ));
    assert!(could_run_on(
        &with(vec![]),
        &tainted(taint("busy", None, "PreferNoSchedule"))
    ));
}

fn placed(name: &str, domain: Option<&str>, movable: bool, open: &[&str]) -> Placed {
    Placed {
        name: name.to_string(),
        domain: domain.map(str::to_string),
        movable,
        open: open.iter().map(|d| d.to_string()).collect::<BTreeSet<_>>(),
    }
}

#[test]
fn a_replica_sharing_a_domain_moves_to_a_free_one_highest_serial_first() {
    let all = ["a", "b", "c"];
    // c-1 (primary) and c-3 share a; c-2 is on b; c is free.
    let instances = [
        placed("c-1", Some("a"), false, &all),
        placed("c-2", Some("b"), true, &all),
        placed("c-3", Some("a"), true, &all),
    ];
    let chosen = replica_to_move(&instances).expect("a move");
    assert_eq!(chosen.instance, "c-3");
    assert_eq!(chosen.from, "a");
    assert_eq!(
        chosen.why,
        "spreading instances: c-3 shares a with c-1, and c has none"
    );

    // Two replicas share a domain: the higher serial moves.
    let instances = [
        placed("c-1", Some("b"), false, &all),
        placed("c-2", Some("a"), true, &all),
        placed("c-3", Some("a"), true, &all),
    ];
    assert_eq!(replica_to_move(&instances).unwrap().instance, "c-3");
}

#[test]
fn nothing_moves_without_a_free_domain_that_could_run_it() {
    // Spread already.
    let spread = [
        placed("c-1", Some("a"), false, &["a", "b", "c"]),
        placed("c-2", Some("b"), true, &["a", "b", "c"]),
        placed("c-3", Some("c"), true, &["a", "b", "c"]),
    ];
    assert_eq!(replica_to_move(&spread), None);
    // The free domain c cannot run c-3 (its volume, a taint, a cordon): none to go to.
    let stuck = [
        placed("c-1", Some("a"), false, &["a", "b", "c"]),
        placed("c-2", Some("b"), true, &["a", "b", "c"]),
        placed("c-3", Some("a"), true, &["a", "b"]),
    ];
    assert_eq!(replica_to_move(&stuck), None);
    // Only the primary (or a held-back replica) shares: nothing moves.
    let pinned = [
        placed("c-1", Some("a"), false, &["a", "b", "c"]),
        placed("c-2", Some("b"), true, &["a", "b", "c"]),
        placed("c-3", Some("a"), false, &["a", "b", "c"]),
    ];
    assert_eq!(replica_to_move(&pinned), None);
    // More instances than domains: every domain is taken.
    let crowded = [
        placed("c-1", Some("a"), false, &["a", "b"]),
        placed("c-2", Some("b"), true, &["a", "b"]),
        placed("c-3", Some("a"), true, &["a", "b"]),
    ];
    assert_eq!(replica_to_move(&crowded), None);
}

#[test]
fn an_instance_not_yet_placed_takes_no_domain() {
    let instances = [
        placed("c-1", Some("a"), false, &["a", "b", "c"]),
        placed("c-2", None, true, &["a", "b", "c"]),
        placed("c-3", Some("a"), true, &["a", "b", "c"]),
    ];
    let chosen = replica_to_move(&instances).unwrap();
    assert_eq!(chosen.instance, "c-3");
    assert_eq!(
        chosen.why,
        "spreading instances: c-3 shares a with c-1, and b, c have none"
    );
}

#[test]
fn a_replica_back_in_the_domain_it_left_is_held_back_for_a_while() {
    let moves = RecentMoves::default();
    let key = ("ns".to_string(), "c".to_string());
    moves.record(&key, "c-3", "a");
    assert!(moves.held(&key, "c-3", "a", RETRY_AFTER));
    assert!(!moves.held(&key, "c-3", "c", RETRY_AFTER), "it moved: not held");
    assert!(!moves.held(&key, "c-2", "a", RETRY_AFTER), "another replica");
    assert!(
        !moves.held(&("ns".to_string(), "d".to_string()), "c-3", "a", RETRY_AFTER),
        "another cluster"
    );
    moves.forget(&key);
    assert!(!moves.held(&key, "c-3", "a", RETRY_AFTER));
}
