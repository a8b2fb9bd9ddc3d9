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
//!
//! Readiness ([`readiness`]) lives here too: a replica that was in sync keeps serving (stale) reads for
//! `spec.failover.maxStaleReadSeconds` after its link to the primary went down.

use std::time::{Duration, Instant};

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
    /// The server is loading its dataset (`loading:1`) and answers reads with `LOADING`.
    pub loading: bool,
    /// The server was started while this pod already was the cluster's primary (a restart of the
    /// primary, see [`is_primary_restart`]): its dataset is what its files held, possibly behind the
    /// replicas, which acknowledged writes it lost.
    pub restarted_primary: bool,
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
    /// The operator asked this pod, named `targetPrimary`, to promote (`POST /v1/promote`). A pod named
    /// target in a status nobody acts on any more (a switchover abandoned half-way) is not promoted by
    /// that name alone: only the operator knows whether it is the most advanced replica.
    pub promotion_requested: bool,
}

impl Desired {
    /// This pod is to be primary: named `targetPrimary` and already current primary, or asked to
    /// promote, or the first primary of a new cluster.
    fn to_be_primary(&self) -> bool {
        let me = Some(self.pod_name.as_str());
        self.target_primary.as_deref() == me
            && (!self.initialized || self.current_primary.as_deref() == me || self.promotion_requested)
    }
}

/// Why a server must refuse writes; the first reason that holds is named in [`Action::Fence`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FenceReason {
    /// The `cnredis.io/fencedInstances` annotation names this pod.
    Requested,
    /// This pod is to be primary but its dataset restarted empty while the cluster records data.
    EmptyAfterRestart,
    /// This pod was the primary and its server restarted while replicas hold data: its dataset may be
    /// behind theirs, so it waits, isolated, for the operator to fail over.
    RestartedPrimary,
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
    if desired.to_be_primary() {
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
    } else if restarted_primary(observed, desired, &role) {
        reasons.push(FenceReason::RestartedPrimary);
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

fn restarted_primary(observed: &Observed, desired: &Desired, role: &IntendedRole) -> bool {
    *role == IntendedRole::Primary && observed.restarted_primary && desired.cluster_has_data
}

/// A start of the server of the pod the status names current and target primary, in a cluster whose
/// replicas hold data: the primary restarted (its server crashed, its container or pod was restarted).
/// Whatever its files hold may be behind the replicas (an RDB is a past snapshot; an AOF loses up to a
/// second with `appendfsync everysec`), and replicas that resynced from it would drop writes they had
/// acknowledged. So it starts isolated and fenced, and the operator fails over to the most advanced
/// replica.
pub fn is_primary_restart(desired: &Desired) -> bool {
    let me = Some(desired.pod_name.as_str());
    desired.initialized
        && desired.target_primary.as_deref() == me
        && desired.current_primary.as_deref() == me
        && desired.cluster_has_data
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
    let restarted = restarted_primary(observed, desired, &role);
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
        // Nor is a restarted primary: its dataset may be behind the replicas'.
        IntendedRole::Primary if empty || restarted => {}
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
    let role = if desired.to_be_primary() {
        if is_primary_restart(desired) {
            BootRole::Isolated
        } else if empty_guard {
            // The target of a switchover that restarted without a dataset (a demoted primary that never
            // wrote a snapshot, its server killed): it must not serve empty, but isolated it could never
            // catch up and the switchover would stall with writes refused. It follows the current primary
            // (fenced by the switchover, it still replicates) and is promoted once it has caught up.
            boot_without_lease(desired).0
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

/// The start of a pod that [`boot_plan`] made primary but that could not take the primary lease: another
/// pod holds it. That is a switchover (or failover) to this pod that has not handed it the lease yet —
/// the operator fences the current primary and waits for this pod to catch up with it before it does —
/// so it follows the current primary meanwhile; isolated, it could never catch up and the switchover
/// would be abandoned. With no other primary to follow, isolated. It is promoted only once it holds the
/// lease ([`Action::PromoteToPrimary`] takes it first).
pub fn boot_without_lease(desired: &Desired) -> (BootRole, bool) {
    match (desired.current_primary.as_deref(), &desired.primary_address) {
        (Some(current), Some(address)) if current != desired.pod_name => (
            BootRole::Replica {
                address: address.clone(),
            },
            desired.fence_requested,
        ),
        _ => (BootRole::Isolated, true),
    }
}

/// What the instance manager remembers of its server's replication link from one observation to the next,
/// on its own monotonic clock. Starts afresh with every start of the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkHistory {
    /// The server has been a replica with its link up and no synchronisation running since it started:
    /// its dataset is a copy of the primary's, however old. A primary that becomes a replica is not
    /// synced until it has synchronised with its new primary (it may hold writes nobody else has).
    pub synced: bool,
    /// When the manager first saw the link down (or a synchronisation running) since it was last up.
    pub down_since: Option<Instant>,
}

impl LinkHistory {
    /// Folds in the role of one observation made at `now`. A server that did not answer changes nothing.
    pub fn observe(&mut self, role: &ServerRole, now: Instant) {
        match role {
            ServerRole::Replica {
                link_up: true,
                sync_in_progress: false,
                ..
            } => {
                self.synced = true;
                self.down_since = None;
            }
            ServerRole::Replica { .. } => {
                self.down_since.get_or_insert(now);
            }
            ServerRole::Primary => *self = Self::default(),
            ServerRole::Unknown => {}
        }
    }

    /// How long the link has been down at `now`; `None` while it is up.
    pub fn down_for(&self, now: Instant) -> Option<Duration> {
        self.down_since.map(|since| now.saturating_duration_since(since))
    }
}

/// Readiness (`GET /readyz`, `ready` in `/v1/status`): whether the pod belongs in its Services' endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// A primary, or a replica linked to its primary with no synchronisation running.
    Ready,
    /// A replica that was in sync and whose link has been down for less than the stale-read bound: it
    /// keeps serving reads, so that a failing primary is not also a read outage.
    ServingStale {
        link_down_for: Duration,
    },
    NotReady(NotReady),
}

/// Why a pod is not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// The server does not answer.
    NotAnswering,
    /// The server answers but its role cannot be read.
    RoleUnknown,
    /// The server is loading its dataset and refuses reads.
    Loading,
    /// A replica that has not completed a synchronisation since it started, and is not linked now.
    NeverSynced,
    /// A replica whose link has been down for the stale-read bound or longer.
    LinkDownTooLong { link_down_for: Duration },
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        !matches!(self, Self::NotReady(_))
    }
}

/// Readiness of a server as observed, given its link history and `spec.failover.maxStaleReadSeconds`
/// (`max_stale`; zero: a replica is not ready as soon as its link is down). Fencing does not change
/// readiness; the operator takes a fenced primary out of `-leader` by its role label.
pub fn readiness(observed: &Observed, link: &LinkHistory, max_stale: Duration, now: Instant) -> Readiness {
    if !observed.answered {
        return Readiness::NotReady(NotReady::NotAnswering);
    }
    match observed.role {
        ServerRole::Primary => Readiness::Ready,
        ServerRole::Unknown => Readiness::NotReady(NotReady::RoleUnknown),
        ServerRole::Replica { .. } if observed.loading => Readiness::NotReady(NotReady::Loading),
        ServerRole::Replica {
            link_up: true,
            sync_in_progress: false,
            ..
        } => Readiness::Ready,
        ServerRole::Replica { .. } if !link.synced => Readiness::NotReady(NotReady::NeverSynced),
        ServerRole::Replica { .. } => {
            // Not seen down yet (the history is folded in after this observation): down for no time.
            let link_down_for = link.down_for(now).unwrap_or_default();
            if link_down_for < max_stale {
                Readiness::ServingStale { link_down_for }
            } else {
                Readiness::NotReady(NotReady::LinkDownTooLong { link_down_for })
            }
        }
    }
}

#[cfg(test)]
mod tests;
