//! What the instance manager must do next, decided from what its server looks like ([`Observed`]) and
//! what the cluster status asks of this pod ([`Desired`]). Pure: the shell observes (INFO, the lease, the
//! RedisCluster), calls [`decide`], and executes the returned [`Action`]s in order.
//!
//! The guards of DESIGN.md ("Failover: fencing first") and issue 4 live here:
//! - split brain at boot: a pod that is not `currentPrimary` replicates from it, only the pod named
//!   `targetPrimary` may become primary, and with no usable primary known a pod refuses writes rather than
//!   act as a second primary;
//! - empty primary: a primary that came back with no dataset while the cluster records data never serves
//!   writes and says so, so that the operator fails over instead of letting replicas copy an empty dataset;
//! - self-fencing: a primary whose lease ran out refuses writes until the operator confirms it.

/// Replication role as the server reports it (`INFO replication`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerRole {
    Primary,
    Replica {
        /// The primary it replicates from, `host:port` as in `master_host`/`master_port`.
        primary: String,
        /// `master_link_status:up`.
        link_up: bool,
        /// A full synchronisation is running (`master_sync_in_progress:1`).
        sync_in_progress: bool,
    },
    /// The server answered but its role could not be read.
    Unknown,
}

/// The primary lease (`coordination.k8s.io` Lease) as this pod's instance manager sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// This pod holds the lease and renews it in time.
    Held,
    /// This pod held the lease and could not renew it before it ran out: it may no longer be the primary.
    Expired,
    /// This pod holds no lease: it is not the primary, or has not taken the lease yet (the executor takes
    /// it before promoting). The shell reports this once the pod is no longer the primary.
    NotPrimary,
}

/// What the instance manager observed of its server and its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The server answered. When it did not, nothing can be executed against it: the supervisor restarts
    /// it and the guards apply to the next observation (and to the configuration it starts with).
    pub answered: bool,
    pub role: ServerRole,
    /// The server refuses writes because the instance manager fenced it.
    pub fenced: bool,
    /// The server has no dataset of its own: no keys, and it neither loaded a persistence file nor
    /// completed a synchronisation since it started. (A synced replica of an empty primary is not empty.)
    pub empty: bool,
    pub lease: LeaseState,
}

/// What the cluster wants of this pod, from the RedisCluster status and annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// This pod's name.
    pub pod_name: String,
    /// `status.currentPrimary`: the pod serving writes.
    pub current_primary: Option<String>,
    /// `status.targetPrimary`: the pod that must become (or stay) primary.
    pub target_primary: Option<String>,
    /// The cluster has had a primary.
    pub initialized: bool,
    /// The status records data or replicas: an empty primary would lose it.
    pub cluster_has_data: bool,
    /// This pod is named (or `*` is) in the `cnredis.io/fencedInstances` annotation.
    pub fence_requested: bool,
    /// `host:port` of `current_primary`, when the shell could resolve it.
    pub primary_address: Option<String>,
    /// The operator confirmed, after this pod's lease expired, that it is still the primary.
    pub confirmed_primary: bool,
}

/// Why a server must refuse writes; the first reason that holds is named in [`Action::Fence`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FenceReason {
    /// The `cnredis.io/fencedInstances` annotation names this pod.
    Requested,
    /// This pod is to be primary but its dataset restarted empty while the cluster records data.
    EmptyAfterRestart,
    /// The primary lease ran out and the operator has not confirmed this pod since.
    LeaseExpired,
    /// The cluster had a primary, but none this pod could replicate from is known now.
    NoPrimaryKnown,
    /// The cluster has not had its first primary yet and this pod is not the one to become it.
    AwaitingInitialization,
}

/// One step for the executor. An empty list means there is nothing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Tell the operator (instance status `emptyAfterRestart`) that this pod, which should be primary, has
    /// no dataset while the cluster records data: fail over instead. Repeated on every decision while it
    /// holds.
    ReportEmptyAfterRestart,
    /// Make the server refuse writes and disconnect its writing clients; done only once that holds. The
    /// fence outlives role changes until [`Action::Unfence`].
    Fence { reason: FenceReason },
    /// Become the primary (`REPLICAOF NO ONE`), after taking the primary lease.
    PromoteToPrimary,
    /// Replicate from this primary (`REPLICAOF host port`).
    FollowPrimary { address: String },
    /// Disconnect normal and pub/sub clients of a demoted primary, so they reconnect through `-leader`.
    DisconnectClients,
    /// Let the server accept writes again (it still refuses them as a replica).
    Unfence,
}

/// The role the cluster status gives this pod.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IntendedRole {
    Primary,
    Replica {
        address: String,
    },
    /// No primary this pod may replicate from is known, and it may not be primary itself.
    Waiting(FenceReason),
}

fn intended_role(observed: &Observed, desired: &Desired) -> IntendedRole {
    let me = Some(desired.pod_name.as_str());
    if desired.target_primary.as_deref() == me {
        return IntendedRole::Primary;
    }
    let current = desired.current_primary.as_deref();
    // The current primary stays primary while the status still names it, e.g. during a switchover until
    // the target is promoted (the operator fences it first). It is not promoted though: only the target
    // is. Before initialisation only the target may be primary at all.
    if desired.initialized && current == me {
        return if observed.role == ServerRole::Primary {
            IntendedRole::Primary
        } else {
            IntendedRole::Waiting(FenceReason::NoPrimaryKnown)
        };
    }
    match (current, &desired.primary_address) {
        (Some(current), Some(address)) if Some(current) != me => IntendedRole::Replica {
            address: address.clone(),
        },
        _ if desired.initialized => IntendedRole::Waiting(FenceReason::NoPrimaryKnown),
        _ => IntendedRole::Waiting(FenceReason::AwaitingInitialization),
    }
}

/// Every reason this pod must refuse writes now, most important first; empty means it may accept them.
pub fn fence_reasons(observed: &Observed, desired: &Desired) -> Vec<FenceReason> {
    let role = intended_role(observed, desired);
    let mut reasons = Vec::new();
    if desired.fence_requested {
        reasons.push(FenceReason::Requested);
    }
    if empty_after_restart(observed, desired, &role) {
        reasons.push(FenceReason::EmptyAfterRestart);
    }
    if observed.lease == LeaseState::Expired && !desired.confirmed_primary {
        reasons.push(FenceReason::LeaseExpired);
    }
    if let IntendedRole::Waiting(reason) = role {
        reasons.push(reason);
    }
    reasons
}

fn empty_after_restart(observed: &Observed, desired: &Desired, role: &IntendedRole) -> bool {
    *role == IntendedRole::Primary && observed.empty && desired.cluster_has_data
}

/// The actions that bring the server to what the cluster wants, in execution order: report, fence, role
/// change, disconnect, unfence. Idempotent: for a server already in the wanted state only the report of
/// an empty primary remains.
pub fn decide(observed: &Observed, desired: &Desired) -> Vec<Action> {
    if !observed.answered {
        return Vec::new();
    }
    let role = intended_role(observed, desired);
    let reasons = fence_reasons(observed, desired);
    let empty = empty_after_restart(observed, desired, &role);
    let mut actions = Vec::new();

    if empty {
        actions.push(Action::ReportEmptyAfterRestart);
    }
    if let Some(&reason) = reasons.first()
        && !observed.fenced
    {
        actions.push(Action::Fence { reason });
    }
    match role {
        // An empty pod is never made a primary: replicas would copy its empty dataset.
        IntendedRole::Primary if empty => {}
        IntendedRole::Primary => {
            if observed.role != ServerRole::Primary {
                actions.push(Action::PromoteToPrimary);
            }
        }
        IntendedRole::Replica { address } => match &observed.role {
            ServerRole::Replica { primary, .. } if *primary == address => {}
            ServerRole::Primary => {
                actions.push(Action::FollowPrimary { address });
                actions.push(Action::DisconnectClients);
            }
            ServerRole::Replica { .. } | ServerRole::Unknown => {
                actions.push(Action::FollowPrimary { address });
            }
        },
        IntendedRole::Waiting(_) => {}
    }
    if reasons.is_empty() && observed.fenced {
        actions.push(Action::Unfence);
    }
    actions
}

/// How a server (re)starts, decided before it runs, from the cluster status and whether its data
/// directory holds a dataset. The boot-time guards live here: only the target primary starts as primary,
/// and only with its dataset; everybody else starts as a replica of the current primary or, with no
/// primary to follow, isolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootRole {
    Primary,
    Replica {
        address: String,
    },
    /// A replica of an address that never answers ([`ISOLATED_PRIMARY`]): it refuses writes, and it
    /// refuses to feed replicas (`NOMASTERLINK`), which a primary, even a fenced one, would not.
    Isolated,
}

/// The unreachable primary an isolated server replicates from: port 1 on its own loopback.
pub const ISOLATED_PRIMARY: (&str, u16) = ("127.0.0.1", 1);

/// The start of a server: its role and whether it starts fenced. `dataset_on_disk` says whether the data
/// directory holds an RDB or AOF file to load.
pub fn boot_plan(desired: &Desired, dataset_on_disk: bool) -> (BootRole, bool) {
    let me = Some(desired.pod_name.as_str());
    let empty_guard = !dataset_on_disk && desired.cluster_has_data;
    let role = if desired.target_primary.as_deref() == me {
        if empty_guard {
            BootRole::Isolated
        } else {
            BootRole::Primary
        }
    } else {
        match (desired.current_primary.as_deref(), &desired.primary_address) {
            (Some(current), Some(address)) if Some(current) != me => BootRole::Replica {
                address: address.clone(),
            },
            _ => BootRole::Isolated,
        }
    };
    let fenced = desired.fence_requested || role == BootRole::Isolated;
    (role, fenced)
}

/// Readiness (`GET /readyz`): the server answers and, for a replica, its link is up and its initial sync
/// is complete. Fencing does not change readiness; the operator takes a fenced primary out of `-leader` by
/// its role label.
pub fn is_ready(observed: &Observed) -> bool {
    observed.answered
        && match observed.role {
            ServerRole::Primary => true,
            ServerRole::Replica {
                link_up,
                sync_in_progress,
                ..
            } => link_up && !sync_in_progress,
            ServerRole::Unknown => false,
        }
}

#[cfg(test)]
mod tests;
