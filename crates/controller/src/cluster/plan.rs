//! What one reconcile of a RedisCluster must change, decided from the spec, the status and what was
//! observed of its instances. Pure: the shell observes, calls [`plan`], applies the result and writes the
//! status.
//!
//! Instances change one at a time: the first instance becomes primary (`targetPrimary` is set before its
//! pod exists, so its instance manager boots as primary), replicas are added only while every instance is
//! ready, a deleted pod is recreated on its PVC, an instance whose PVC is gone is removed and replaced by
//! a new serial, and scaling down removes the highest serial that is not the primary.

use std::collections::BTreeMap;

use cnredis_api::cluster::{PrimaryUpdateMethod, PrimaryUpdateStrategy, PvcRetentionPolicy};
use cnredis_api::names::{ROLE_PRIMARY, ROLE_REPLICA, instance_name};
use cnredis_instance_client::wire::{InstanceReport, Role};

/// Phase of a new cluster whose first instance is not created, `Wanted::bootstrap_refused` says why.
pub const PHASE_BOOTSTRAP_FAILED: &str = "Bootstrap failed";

/// Event reasons of a [`Removal`].
pub const REMOVED: &str = "InstanceRemoved";
pub const RESTARTED: &str = "InstanceRestarted";
pub const MOVED: &str = "InstanceMoved";

/// One instance as observed: its pod, its PVC, and its instance manager's report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub name: String,
    pub serial: u32,
    pub pod: Option<PodFacts>,
    /// The PVC exists and is not being deleted.
    pub pvc: bool,
    /// The instance API answered; `None` when it did not (or the pod has no IP yet).
    pub report: Option<InstanceReport>,
    /// The pod runs an older pod spec than the cluster's (or its server reports parameters that need a
    /// restart): a rolling update restarts it.
    pub outdated: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodFacts {
    /// Being deleted.
    pub terminating: bool,
    /// The pod's Ready condition.
    pub ready: bool,
    /// The pod failed for good (phase Failed), e.g. evicted.
    pub failed: bool,
    /// `cnredis.io/podSpecHash` of the running pod.
    pub spec_hash: Option<String>,
    /// The pod mounts the backup object store's credentials: pods created before `spec.backup` was set
    /// do not, until the rolling update replaces them.
    pub backup_credentials: bool,
    /// Its `cnredis.io/role` label.
    pub role_label: Option<String>,
}

/// The cluster's wishes and memory: from the spec and the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub cluster: String,
    pub instances: u32,
    pub current_primary: Option<String>,
    pub target_primary: Option<String>,
    pub latest_serial: u32,
    pub pvc_retention: PvcRetentionPolicy,
    /// Pods named in (or `*`) the fencing annotation.
    pub fenced: Vec<String>,
    pub update_strategy: PrimaryUpdateStrategy,
    pub update_method: PrimaryUpdateMethod,
    /// The health loop sees the current primary failing: its pod, if gone, is left to the failover
    /// rather than recreated as primary.
    pub primary_failing: bool,
    /// `spec.failover.maxSyncReplicaLagSeconds`: a switchover target must have heard from the primary
    /// within it.
    pub max_sync_lag_seconds: i64,
    /// Why the first instance of a new cluster must not be created (e.g. a restore this version cannot
    /// do): the cluster stays without pods, in phase `Bootstrap failed`, rather than start empty.
    pub bootstrap_refused: Option<String>,
    /// A replica to restart so that the scheduler places it in a failure domain without instances
    /// (`spread::planned_move`): done only when nothing else is to be done.
    pub spread: Option<Move>,
}

/// A deletion the shell executes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub name: String,
    pub delete_pod: bool,
    pub delete_pvc: bool,
    pub why: String,
    /// The Event's reason: `InstanceRemoved`, `InstanceRestarted` or `InstanceMoved`.
    pub reason: &'static str,
}

/// A replica to restart so that the scheduler places it in a free domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub instance: String,
    /// The domain it leaves.
    pub from: String,
    pub why: String,
}

/// A planned change of primary: fence `from`, wait for `to` to catch up, promote `to`, demote `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switchover {
    pub from: String,
    pub to: String,
}

/// The result of one reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub current_primary: Option<String>,
    pub target_primary: Option<String>,
    pub latest_serial: u32,
    /// Serials whose pod (and PVC, when missing) must be created.
    pub create: Vec<u32>,
    pub remove: Vec<Removal>,
    /// A planned switchover to run (or resume): from the current primary to the named replica.
    pub switchover: Option<Switchover>,
    /// A switchover is asked for (`targetPrimary` names another instance) but its target is not in sync:
    /// nothing is fenced meanwhile, the primary keeps taking writes, and the switchover starts once the
    /// target is in sync.
    pub switchover_waiting: bool,
    /// The `cnredis.io/role` label every existing pod must carry (`None`: no role label).
    pub roles: BTreeMap<String, Option<&'static str>>,
    pub phase: String,
    pub phase_reason: String,
    /// Every wanted instance exists, is ready, and replicates.
    pub healthy: bool,
}

fn is_live(instance: &Observed) -> bool {
    instance
        .pod
        .as_ref()
        .is_some_and(|pod| !pod.terminating && !pod.failed)
}

/// Ready as the instance manager judges it: answering and, for a replica, linked and synced.
fn is_ready(instance: &Observed) -> bool {
    is_live(instance)
        && instance.pod.as_ref().is_some_and(|pod| pod.ready)
        && instance.report.as_ref().is_some_and(|report| report.ready)
}

/// A role label value the operator sets, as the `'static` name `roles` holds.
fn known_role(label: &str) -> Option<&'static str> {
    [ROLE_PRIMARY, ROLE_REPLICA]
        .into_iter()
        .find(|role| *role == label)
}

fn role_of(instance: &Observed) -> Role {
    instance
        .report
        .as_ref()
        .filter(|report| report.answered)
        .map(|report| report.role)
        .unwrap_or(Role::Unknown)
}

pub fn plan(wanted: &Wanted, observed: &[Observed]) -> Plan {
    let mut plan = Plan {
        current_primary: wanted.current_primary.clone(),
        target_primary: wanted.target_primary.clone(),
        latest_serial: wanted
            .latest_serial
            .max(observed.iter().map(|i| i.serial).max().unwrap_or(0)),
        create: Vec::new(),
        remove: Vec::new(),
        switchover: None,
        switchover_waiting: false,
        roles: BTreeMap::new(),
        phase: String::new(),
        phase_reason: String::new(),
        healthy: false,
    };
    let name = |serial: u32| instance_name(&wanted.cluster, serial);
    let find = |pod: &str| observed.iter().find(|i| i.name == pod);

    // Instances whose PVC is gone cannot come back: remove their pod; a new serial replaces them.
    for instance in observed.iter().filter(|i| !i.pvc) {
        let is_primary = Some(&instance.name) == plan.current_primary.as_ref();
        if instance.pod.as_ref().is_some_and(|pod| !pod.terminating) && !is_primary {
            plan.remove.push(Removal {
                name: instance.name.clone(),
                delete_pod: true,
                delete_pvc: false,
                why: "its PVC was deleted; a new instance replaces it".to_string(),
                reason: REMOVED,
            });
        }
    }
    let with_storage: Vec<&Observed> = observed.iter().filter(|i| i.pvc).collect();

    match (&plan.current_primary, &plan.target_primary) {
        // A new cluster: the first instance is named target primary before its pod exists.
        (None, None) if wanted.bootstrap_refused.is_some() => {
            plan.phase = PHASE_BOOTSTRAP_FAILED.to_string();
            plan.phase_reason = wanted.bootstrap_refused.clone().unwrap_or_default();
        }
        (None, None) => {
            let serial = match with_storage.first() {
                Some(existing) => existing.serial,
                None => {
                    plan.latest_serial += 1;
                    plan.latest_serial
                }
            };
            plan.target_primary = Some(name(serial));
            if find(&name(serial)).is_none_or(|i| i.pod.is_none()) {
                plan.create.push(serial);
            }
            plan.phase = "Setting up primary".to_string();
            plan.phase_reason = format!("creating the first instance {}", name(serial));
        }
        // Bootstrap in progress: the target becomes current once it serves as primary.
        (None, Some(target)) => {
            let target = target.clone();
            match find(&target) {
                Some(instance) if is_live(instance) && role_of(instance) == Role::Primary => {
                    plan.current_primary = Some(target.clone());
                }
                Some(instance) if instance.pod.is_none() && instance.pvc => {
                    plan.create.push(instance.serial);
                }
                None => {
                    if let Some(serial) = cnredis_api::names::instance_serial(&wanted.cluster, &target) {
                        plan.create.push(serial);
                        plan.latest_serial = plan.latest_serial.max(serial);
                    }
                }
                Some(_) => {}
            }
            plan.phase = "Setting up primary".to_string();
            plan.phase_reason = format!("waiting for {target} to serve as primary");
            let restore = find(&target)
                .and_then(|i| i.report.as_ref())
                .and_then(|r| r.restore.as_ref());
            if let Some(restore) = restore.filter(|_| plan.current_primary.is_none()) {
                match &restore.error {
                    Some(error) => {
                        plan.phase = PHASE_BOOTSTRAP_FAILED.to_string();
                        plan.phase_reason =
                            format!("restoring on {target} failed (retried every 10s): {error}");
                    }
                    None => {
                        plan.phase = "Restoring".to_string();
                        plan.phase_reason = format!(
                            "{target}: {} ({} MiB)",
                            restore.step,
                            restore.downloaded_bytes >> 20
                        );
                    }
                }
            }
        }
        _ => {}
    }

    if plan.current_primary.is_some() {
        steady_state(wanted, observed, &mut plan);
    }

    // Role labels: the primary only while it serves as one and is not fenced (so a fenced primary has no
    // `-leader` endpoint); replicas by what their instance manager reports. A switchover about to run
    // moves the primary's label itself, to its target first, so `-leader` is never empty on the way.
    // An instance the operator cannot reach keeps the label it has: the operator learnt nothing about
    // it, its clients may still reach it, and a failing primary is the health loop's to fail over.
    for instance in observed.iter().filter(|i| i.pod.is_some()) {
        if instance.report.is_none() {
            let kept = instance.pod.as_ref().and_then(|p| p.role_label.clone());
            plan.roles
                .insert(instance.name.clone(), kept.as_deref().and_then(known_role));
            continue;
        }
        let fenced = wanted.fenced.iter().any(|f| f == "*" || *f == instance.name)
            || instance.report.as_ref().is_some_and(|r| r.fenced);
        let role = match role_of(instance) {
            Role::Primary
                if Some(&instance.name) == plan.current_primary.as_ref()
                    && (plan.current_primary == plan.target_primary
                        || plan.switchover_waiting
                        || plan.switchover.is_some())
                    && !fenced =>
            {
                Some(ROLE_PRIMARY)
            }
            // A switchover's target keeps the label it has: one not labelled yet (its server just came
            // back in sync) is not added to `-replica` just before it joins `-leader`, since kube-proxy
            // would program `-replica`'s change and hold `-leader`'s back a second, with every client
            // on the fenced primary meanwhile. (One labelled `replica` leaves `-replica` as the
            // switchover's first step.)
            Role::Replica if plan.switchover.as_ref().is_some_and(|s| s.to == instance.name) => {
                match instance.pod.as_ref().and_then(|p| p.role_label.as_deref()) {
                    Some(ROLE_REPLICA) => Some(ROLE_REPLICA),
                    Some(ROLE_PRIMARY) => Some(ROLE_PRIMARY),
                    _ => None,
                }
            }
            Role::Replica => Some(ROLE_REPLICA),
            _ => None,
        };
        plan.roles.insert(instance.name.clone(), role);
    }
    plan
}

fn steady_state(wanted: &Wanted, observed: &[Observed], plan: &mut Plan) {
    let name = |serial: u32| instance_name(&wanted.cluster, serial);
    let primary = plan.current_primary.clone().unwrap_or_default();
    let removed: Vec<String> = plan.remove.iter().map(|r| r.name.clone()).collect();
    let members: Vec<&Observed> = observed
        .iter()
        .filter(|i| i.pvc && !removed.contains(&i.name))
        .collect();

    // A deleted pod comes back on its PVC.
    let mut recreating = Vec::new();
    for instance in &members {
        if instance.pod.is_none() && !(instance.name == primary && wanted.primary_failing) {
            plan.create.push(instance.serial);
            recreating.push(instance.name.clone());
        }
    }

    // A switchover under way (the status names another target) is driven to its end first, once its
    // target is in sync: fencing the primary before would refuse writes for as long as the target takes
    // to get there (a full synchronisation, if it restarted empty).
    if let Some(target) = plan.target_primary.clone()
        && target != primary
    {
        plan.phase = "Switchover in progress".to_string();
        match switchover_target_not_in_sync(wanted, observed, &primary, &target) {
            None => {
                plan.phase_reason = format!("promoting {target} in place of {primary}");
                plan.switchover = Some(Switchover {
                    from: primary,
                    to: target,
                });
            }
            Some(why) => {
                plan.switchover_waiting = true;
                plan.phase_reason =
                    format!("waiting for {target} to be in sync before switching over from {primary}: {why}");
            }
        }
        return;
    }

    let all_ready = members.iter().all(|i| is_ready(i));
    let count = members.len() as u32;

    if !recreating.is_empty() {
        plan.phase = "Recreating instances".to_string();
        plan.phase_reason = format!("recreating {} on their volumes", recreating.join(", "));
        return;
    }
    if let Some(waiting) = members.iter().find(|i| !is_ready(i)) {
        plan.phase = if count < wanted.instances {
            "Creating replicas".to_string()
        } else {
            "Waiting for instances".to_string()
        };
        plan.phase_reason = match &waiting.report {
            Some(report) if report.role == Role::Replica && !report.ready => {
                format!("waiting for {} to sync from {primary}", waiting.name)
            }
            _ => format!("waiting for {} to be ready", waiting.name),
        };
        return;
    }
    if count < wanted.instances && all_ready {
        plan.latest_serial += 1;
        plan.create.push(plan.latest_serial);
        plan.phase = "Creating replicas".to_string();
        plan.phase_reason = format!(
            "creating {} ({} of {} instances)",
            name(plan.latest_serial),
            count + 1,
            wanted.instances
        );
        return;
    }
    if count > wanted.instances && all_ready {
        // Highest serial first, never the primary (nor a pod about to become it).
        if let Some(victim) = members
            .iter()
            .filter(|i| i.name != primary && Some(&i.name) != plan.target_primary.as_ref())
            .max_by_key(|i| i.serial)
        {
            plan.remove.push(Removal {
                name: victim.name.clone(),
                delete_pod: true,
                delete_pvc: wanted.pvc_retention == PvcRetentionPolicy::Delete,
                why: format!("scaling down to {} instances", wanted.instances),
                reason: REMOVED,
            });
            plan.phase = "Scaling down".to_string();
            plan.phase_reason = format!("removing {}", victim.name);
            return;
        }
    }
    if count == wanted.instances && all_ready && rolling_update(wanted, &members, plan) {
        return;
    }
    if count == wanted.instances
        && all_ready
        && wanted.fenced.is_empty()
        && let Some(spread) = &wanted.spread
        && spread.instance != primary
        && members.iter().any(|i| i.name == spread.instance)
    {
        plan.remove.push(Removal {
            name: spread.instance.clone(),
            delete_pod: true,
            delete_pvc: false,
            why: spread.why.clone(),
            reason: MOVED,
        });
        plan.phase = "Spreading instances".to_string();
        plan.phase_reason = format!("restarting {} on its volume: {}", spread.instance, spread.why);
        return;
    }
    plan.healthy = count == wanted.instances && all_ready && plan.remove.is_empty();
    plan.phase = if plan.healthy { "Healthy" } else { "Reconciling" }.to_string();
    plan.phase_reason = if plan.healthy {
        format!("{count} instances ready, {primary} is primary")
    } else {
        "applying changes".to_string()
    };
}

/// Why `target` cannot take over from `primary` now (`None`: it can).
fn switchover_target_not_in_sync(
    wanted: &Wanted,
    observed: &[Observed],
    primary: &str,
    target: &str,
) -> Option<String> {
    let Some(instance) = observed.iter().find(|i| i.name == target) else {
        return Some("it is not an instance of this cluster".to_string());
    };
    if !is_live(instance) {
        return Some("its pod is being created or replaced".to_string());
    }
    // Promoted already, by a switchover cut short before it named it current primary (only the
    // operator's promotion makes a target that is not current a primary): the switchover resumes to its
    // end. Waiting instead would lift the old primary's fence beside a writable new one.
    if instance
        .report
        .as_ref()
        .is_some_and(|report| report.role == Role::Primary)
    {
        return None;
    }
    let not_in_sync = match &instance.report {
        None => Some("its instance manager does not answer".to_string()),
        Some(report) => report.not_in_sync(primary, wanted.max_sync_lag_seconds),
    };
    // In sync but not Ready (its server just came back, say): `-leader` would not route to it yet, and
    // once promoted it would leave clients the demoted primary's READONLY until its next probe.
    not_in_sync.or_else(|| {
        let ready = instance.pod.as_ref().is_some_and(|pod| pod.ready);
        (!ready).then(|| "its pod is not Ready yet".to_string())
    })
}

/// Restarts outdated instances: replicas first, highest serial first, one at a time; the primary last,
/// by a switchover to the most advanced replica (or in place, or only when the user promotes, as the
/// spec says). Returns whether it planned a step.
fn rolling_update(wanted: &Wanted, members: &[&Observed], plan: &mut Plan) -> bool {
    let primary = plan.current_primary.clone().unwrap_or_default();
    if let Some(replica) = members
        .iter()
        .filter(|i| i.outdated && i.name != primary)
        .max_by_key(|i| i.serial)
    {
        plan.remove.push(Removal {
            name: replica.name.clone(),
            delete_pod: true,
            delete_pvc: false,
            why: "rolling update: restarting it with the new pod spec".to_string(),
            reason: RESTARTED,
        });
        plan.phase = "Upgrading".to_string();
        plan.phase_reason = format!("restarting replica {} with the new pod spec", replica.name);
        return true;
    }
    let Some(current) = members.iter().find(|i| i.outdated && i.name == primary) else {
        return false;
    };
    plan.phase = "Upgrading".to_string();
    let best_replica = members
        .iter()
        .filter(|i| i.name != primary && is_ready(i))
        .max_by_key(|i| i.report.as_ref().map(|r| r.replication.offset).unwrap_or(-1));
    match (wanted.update_strategy, wanted.update_method, best_replica) {
        (PrimaryUpdateStrategy::Supervised, _, Some(_)) => {
            plan.phase = "Waiting for the user".to_string();
            plan.phase_reason = format!(
                "the primary {primary} runs an old pod spec: promote a replica (kubectl cnredis promote) to finish the update"
            );
        }
        (PrimaryUpdateStrategy::Unsupervised, PrimaryUpdateMethod::Switchover, Some(target)) => {
            plan.phase_reason = format!(
                "switching over from {primary} to {} to update the primary",
                target.name
            );
            plan.switchover = Some(Switchover {
                from: primary,
                to: target.name.clone(),
            });
        }
        _ => {
            plan.remove.push(Removal {
                name: current.name.clone(),
                delete_pod: true,
                delete_pvc: false,
                why: "rolling update: restarting the primary in place".to_string(),
                reason: RESTARTED,
            });
            plan.phase_reason = format!("restarting the primary {primary} in place");
        }
    }
    true
}

#[cfg(test)]
mod tests;
