//! Spreading the instances again after an outage. With the default (preferred) anti-affinity, a pod
//! recreated while a node is down lands beside another instance, and nothing moves it back when the node
//! returns: one node then holds two instances, and losing it costs the primary and a replica together
//! (the failover then waits for the absent replica, which may hold an acknowledged write).
//!
//! When a replica shares its failure domain (the anti-affinity's topology key) with another instance and
//! a Ready node of a free domain could run it, the plan restarts that replica's pod on its PVC, once every
//! instance is ready and nothing else is under way; the scheduler's anti-affinity places it in the free
//! domain. Which node could run it is judged as the scheduler would on what the operator can know: the
//! node is Ready and not cordoned, its taints are tolerated, and it matches the node selector, the
//! required node affinity and the node affinity of the replica's volume. A replica that went back to the
//! domain it left anyway (the scheduler weighed something else higher) is not moved again for
//! [`RETRY_AFTER`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cnredis_api::RedisCluster;
use cnredis_api::cluster::PodAntiAffinityType;
use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PersistentVolume, Taint, Toleration,
};
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use super::observe::World;
pub use super::plan::Move;
use crate::context::{ClusterKey, Context};

/// The node label the kubelet sets to the node's name: the default topology key.
const HOSTNAME_KEY: &str = "kubernetes.io/hostname";

/// How long a replica whose move left it in the same domain is not moved again.
pub const RETRY_AFTER: Duration = Duration::from_secs(600);

/// A node as placement judges it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeFacts {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub ready: bool,
    pub unschedulable: bool,
    pub taints: Vec<Taint>,
}

impl NodeFacts {
    pub fn of(node: &Node) -> Self {
        let spec = node.spec.clone().unwrap_or_default();
        NodeFacts {
            name: node.name_any(),
            labels: node.labels().clone(),
            ready: node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
            unschedulable: spec.unschedulable.unwrap_or(false),
            taints: spec.taints.unwrap_or_default(),
        }
    }
}

/// What an instance's pod asks of its node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Requirements {
    pub node_selector: BTreeMap<String, String>,
    /// The pod's required node affinity.
    pub node_affinity: Option<NodeSelector>,
    pub tolerations: Vec<Toleration>,
    /// The node affinity of the instance's PersistentVolume (a local volume, a zonal disk).
    pub volume_affinity: Option<NodeSelector>,
}

/// Whether a pod with `requirements` could be scheduled on `node`, by what the operator can know.
pub fn could_run_on(requirements: &Requirements, node: &NodeFacts) -> bool {
    node.ready
        && !node.unschedulable
        && requirements
            .node_selector
            .iter()
            .all(|(key, value)| node.labels.get(key) == Some(value))
        && [&requirements.node_affinity, &requirements.volume_affinity]
            .into_iter()
            .flatten()
            .all(|selector| selects(selector, node))
        && node
            .taints
            .iter()
            .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
            .all(|taint| requirements.tolerations.iter().any(|t| tolerates(t, taint)))
}

/// Terms are ORed; within a term, every expression and field must match; an empty term matches nothing.
fn selects(selector: &NodeSelector, node: &NodeFacts) -> bool {
    selector
        .node_selector_terms
        .iter()
        .any(|term| term_matches(term, node))
}

fn term_matches(term: &NodeSelectorTerm, node: &NodeFacts) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|r| requirement_matches(r, node.labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let value = (r.key == "metadata.name").then_some(node.name.as_str());
            requirement_matches(r, value)
        })
}

fn requirement_matches(requirement: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    let number = |v: &str| v.parse::<i64>().ok();
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| values.iter().all(|x| x != v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        operator @ ("Gt" | "Lt") => match (value.and_then(number), values) {
            (Some(v), [bound]) => number(bound).is_some_and(|b| if operator == "Gt" { v > b } else { v < b }),
            _ => false,
        },
        _ => false,
    }
}

fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => key.is_empty() || key == taint.key,
        "Equal" => {
            key == taint.key
                && toleration.value.as_deref().unwrap_or_default()
                    == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// One instance as placement sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placed {
    pub name: String,
    /// The domain its pod runs in; `None` while unscheduled or on a node without the topology key.
    pub domain: Option<String>,
    /// A replica that may be moved (not the primary nor a switchover's target, not held back).
    pub movable: bool,
    /// Domains with a node that could run it.
    pub open: BTreeSet<String>,
}

/// The instances in each domain, by name.
fn by_domain(instances: &[Placed]) -> BTreeMap<&str, Vec<&str>> {
    let mut domains: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for instance in instances {
        if let Some(domain) = &instance.domain {
            domains.entry(domain).or_default().push(&instance.name);
        }
    }
    domains
}

/// The replica to move: one sharing its domain with another instance, with a free domain (no instance)
/// that could run it; the highest serial first (`instances` are in serial order).
pub fn replica_to_move(instances: &[Placed]) -> Option<Move> {
    let count = by_domain(instances);
    instances.iter().rev().filter(|i| i.movable).find_map(|instance| {
        let domain = instance.domain.as_deref()?;
        let sharing: Vec<&str> = count[domain]
            .iter()
            .copied()
            .filter(|n| *n != instance.name)
            .collect();
        if sharing.is_empty() {
            return None;
        }
        let free: Vec<&str> = instance
            .open
            .iter()
            .map(String::as_str)
            .filter(|d| !count.contains_key(d))
            .collect();
        (!free.is_empty()).then(|| Move {
            instance: instance.name.clone(),
            from: domain.to_string(),
            why: format!(
                "spreading instances: {} shares {domain} with {}, and {} {} none",
                instance.name,
                sharing.join(", "),
                free.join(", "),
                if free.len() == 1 { "has" } else { "have" }
            ),
        })
    })
}

/// Where the instances of `cluster` run, and the replica to move, if any (only with a preferred
/// anti-affinity: a required one never shares a domain, a disabled one does not care).
pub async fn planned_move(
    ctx: &Context,
    cluster: &RedisCluster,
    world: &World,
) -> Result<Option<Move>, kube::Error> {
    if cluster.spec.affinity.pod_anti_affinity_type != PodAntiAffinityType::Preferred || world.pods.len() < 2
    {
        return Ok(None);
    }
    let key: ClusterKey = (cluster.namespace().unwrap_or_default(), cluster.name_any());
    let topology_key = &cluster.spec.affinity.topology_key;
    let node_name = |instance: &str| {
        world
            .pods
            .get(instance)
            .and_then(|pod| pod.spec.as_ref()?.node_name.clone())
    };
    let used: BTreeSet<String> = world
        .instances
        .iter()
        .filter_map(|i| node_name(&i.name))
        .collect();
    let scheduled = world
        .instances
        .iter()
        .filter(|i| node_name(&i.name).is_some())
        .count();
    // The common case costs no API call: with the hostname key (which the kubelet sets to the node's
    // name), instances on distinct nodes are in distinct domains.
    if topology_key == HOSTNAME_KEY && used.len() == scheduled {
        return Ok(None);
    }
    // The instances' nodes one by one; every node only when two instances share a domain.
    let nodes_api = Api::<Node>::all(ctx.client.clone());
    let mut nodes = Vec::new();
    for name in &used {
        if let Some(node) = nodes_api.get_opt(name).await? {
            nodes.push(NodeFacts::of(&node));
        }
    }
    let domain_of = |nodes: &[NodeFacts], node: &str| {
        nodes
            .iter()
            .find(|n| n.name == node)
            .and_then(|n| n.labels.get(topology_key).cloned())
    };
    let status = cluster.status.clone().unwrap_or_default();
    let pinned = [status.current_primary, status.target_primary];
    let mut placed = Vec::new();
    for instance in world
        .instances
        .iter()
        .filter(|i| world.pods.contains_key(&i.name))
    {
        let domain = node_name(&instance.name).and_then(|node| domain_of(&nodes, &node));
        placed.push(Placed {
            name: instance.name.clone(),
            movable: !pinned.contains(&Some(instance.name.clone()))
                && domain
                    .as_ref()
                    .is_some_and(|d| !ctx.recent_moves.held(&key, &instance.name, d, RETRY_AFTER)),
            domain,
            open: BTreeSet::new(),
        });
    }
    let crowded: BTreeSet<String> = by_domain(&placed)
        .into_iter()
        .filter(|(_, names)| names.len() >= 2)
        .map(|(domain, _)| domain.to_string())
        .collect();
    if crowded.is_empty() {
        return Ok(None);
    }
    let nodes: Vec<NodeFacts> = nodes_api
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(NodeFacts::of)
        .collect();
    let affinity = &cluster.spec.affinity;
    for instance in placed.iter_mut() {
        if !instance.movable || !instance.domain.as_ref().is_some_and(|d| crowded.contains(d)) {
            continue;
        }
        let requirements = Requirements {
            node_selector: affinity.node_selector.clone(),
            node_affinity: affinity
                .node_affinity
                .as_ref()
                .and_then(|a| a.required_during_scheduling_ignored_during_execution.clone()),
            tolerations: affinity.tolerations.clone(),
            volume_affinity: volume_affinity(ctx, world, &instance.name).await?,
        };
        instance.open = nodes
            .iter()
            .filter(|n| could_run_on(&requirements, n))
            .filter_map(|n| n.labels.get(topology_key).cloned())
            .collect();
    }
    Ok(replica_to_move(&placed))
}

async fn volume_affinity(
    ctx: &Context,
    world: &World,
    instance: &str,
) -> Result<Option<NodeSelector>, kube::Error> {
    let Some(volume) = world
        .pvcs
        .get(instance)
        .and_then(|pvc| pvc.spec.as_ref()?.volume_name.clone())
    else {
        return Ok(None);
    };
    let volume = Api::<PersistentVolume>::all(ctx.client.clone())
        .get_opt(&volume)
        .await?;
    Ok(volume
        .and_then(|v| v.spec?.node_affinity?.required)
        .filter(|s| !s.node_selector_terms.is_empty()))
}

#[cfg(test)]
mod tests;
