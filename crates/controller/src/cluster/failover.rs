//! Automatic failover decisions, pure: is the primary failing ([`primary_failure`], debounced by
//! [`detect`]), is the old primary proven unable to take writes ([`fence_proof`]), and which replica takes
//! its place ([`choose_failover_target`]). The health loop (`health.rs`) observes the world, asks these
//! functions, and acts.

use std::time::Duration;

use cnredis_instance_client::wire::{InstanceReport, Role};
use jiff::Timestamp;

/// What the health loop saw of the primary in one poll.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrimaryFacts {
    /// The pod object exists.
    pub pod_exists: bool,
    /// The pod has a deletion timestamp.
    pub terminating: bool,
    /// Phase `Failed` (evicted, ...).
    pub pod_failed: bool,
    /// Every container of the pod has stopped (terminated or waiting to restart).
    pub containers_stopped: bool,
    /// The pod's node reports Ready=False or Unknown.
    pub node_not_ready: bool,
    /// The instance API's answer, `None` when it did not answer in time.
    pub report: Option<InstanceReport>,
    /// How long ago this operator first saw the current version of the primary Lease, when the primary
    /// holds it (`None` otherwise): a primary renews it every third of its duration.
    pub lease_renewed_ago: Option<Duration>,
    /// The primary Lease's duration.
    pub lease_duration: Duration,
}

impl PrimaryFacts {
    /// The primary renewed its Lease within a renewal period (a third of its duration) and a second: its
    /// instance manager runs, its server answers it as primary, and it reaches the API server.
    pub fn renews_its_lease(&self) -> bool {
        self.lease_renewed_ago
            .is_some_and(|ago| ago <= self.lease_duration / 3 + Duration::from_secs(1))
    }
}

/// Why the primary is failing; serialized into `status.primaryFailing.reason` and Events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    PodDeleted,
    PodGone,
    PodFailed,
    ContainerStopped,
    NodeNotReady,
    /// The instance API did not answer.
    Unreachable,
    /// The instance manager answered, its server did not.
    ServerDown,
    /// The server restarted with no dataset while the cluster records data: it stays fenced for ever.
    EmptyAfterRestart,
    /// The primary's server restarted (crash, container or pod restart): it waits isolated, since its
    /// dataset may be behind the replicas'.
    RestartedPrimary,
    /// The primary answers, but refuses writes because its lease ran out: it could neither renew it
    /// through the API server nor hold it by the promises of every other instance.
    LeaseLapsed,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PodDeleted => "PodDeleted",
            Self::PodGone => "PodGone",
            Self::PodFailed => "PodFailed",
            Self::ContainerStopped => "ContainerStopped",
            Self::NodeNotReady => "NodeNotReady",
            Self::Unreachable => "Unreachable",
            Self::ServerDown => "ServerDown",
            Self::EmptyAfterRestart => "EmptyAfterRestart",
            Self::RestartedPrimary => "RestartedPrimary",
            Self::LeaseLapsed => "LeaseLapsed",
        }
    }

    /// A failure that cannot heal by itself within the delay: the pod is going or gone, or the server
    /// came back without its data. Failing over at once is then both safe (the fence still needs proof)
    /// and the only way back to a writable primary.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::PodDeleted
                | Self::PodGone
                | Self::PodFailed
                | Self::EmptyAfterRestart
                | Self::RestartedPrimary
        )
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::PodDeleted,
            Self::PodGone,
            Self::PodFailed,
            Self::ContainerStopped,
            Self::NodeNotReady,
            Self::Unreachable,
            Self::ServerDown,
            Self::EmptyAfterRestart,
            Self::RestartedPrimary,
            Self::LeaseLapsed,
        ]
        .into_iter()
        .find(|f| f.as_str() == text)
    }
}

/// What is wrong with the primary in one observation, with a sentence for the status; `None` when it
/// serves.
pub fn primary_failure(pod: &str, facts: &PrimaryFacts) -> Option<(Failure, String)> {
    let failure = |f: Failure, message: String| Some((f, message));
    if !facts.pod_exists {
        return failure(Failure::PodGone, format!("pod {pod} does not exist"));
    }
    if facts.terminating {
        return failure(Failure::PodDeleted, format!("pod {pod} is being deleted"));
    }
    if facts.pod_failed {
        return failure(Failure::PodFailed, format!("pod {pod} has failed"));
    }
    if facts.containers_stopped {
        return failure(
            Failure::ContainerStopped,
            format!("the containers of {pod} have stopped"),
        );
    }
    // A NotReady node whose primary answers is a fault of the control plane (the kubelet, or its link
    // to the API server), not of the database: it keeps serving.
    match &facts.report {
        None if facts.node_not_ready => {
            failure(Failure::NodeNotReady, format!("the node of {pod} is not ready"))
        }
        None => failure(
            Failure::Unreachable,
            format!("the instance API of {pod} does not answer"),
        ),
        Some(report) if report.empty_after_restart => failure(
            Failure::EmptyAfterRestart,
            format!("{pod} restarted with an empty dataset"),
        ),
        Some(report) if report.restarted_primary => failure(
            Failure::RestartedPrimary,
            format!("the server of {pod} restarted: its dataset may be behind the replicas'"),
        ),
        Some(report) if !report.answered => failure(
            Failure::ServerDown,
            format!("the server of {pod} does not answer"),
        ),
        Some(report) if report.fence_reasons.iter().any(|r| r == "leaseExpired") => failure(
            Failure::LeaseLapsed,
            format!("{pod} refuses writes: its primary lease ran out"),
        ),
        Some(_) => None,
    }
}

/// The failure remembered in the status between polls (and operator restarts).
#[derive(Debug, Clone, PartialEq)]
pub struct Failing {
    pub pod: String,
    pub since: Timestamp,
    pub failure: Failure,
    pub message: String,
}

/// The verdict of one poll.
#[derive(Debug, Clone, PartialEq)]
pub enum Detection {
    /// The primary serves (or recovered): forget any failure.
    Healthy,
    /// Failing, not yet for long enough (or only just seen).
    Failing(Failing),
    /// Fail over now.
    FailOver(Failing),
}

/// Debounces [`primary_failure`]: a failure seen for the first time is only remembered; it fails over
/// once seen again `delay` after it was first seen, or at the next poll when it is final (whatever that
/// poll sees: a final failure does not heal). So one missed poll never fails over, and a server that
/// restarts with its data within the delay is kept.
pub fn detect(
    previous: Option<&Failing>,
    pod: &str,
    seen: Option<(Failure, String)>,
    now: Timestamp,
    delay: Duration,
) -> Detection {
    let previous = previous.filter(|p| p.pod == pod);
    let Some((failure, message)) = seen else {
        // A final failure does not heal: a pod deleted and recreated under the same name at once is a
        // new server started from its volume, which may hold less than the replicas.
        return match previous {
            Some(previous) if previous.failure.is_final() => Detection::FailOver(previous.clone()),
            _ => Detection::Healthy,
        };
    };
    let failing = match previous {
        // The first sighting of any failure of this pod starts the clock; the reason may change later
        // (unreachable, then pod deleted) without restarting it.
        Some(previous) => Failing {
            pod: pod.to_string(),
            since: previous.since,
            failure,
            message,
        },
        None => {
            return Detection::Failing(Failing {
                pod: pod.to_string(),
                since: now,
                failure,
                message,
            });
        }
    };
    let elapsed = now.duration_since(failing.since).unsigned_abs();
    if failure.is_final() || elapsed >= delay {
        Detection::FailOver(failing)
    } else {
        Detection::Failing(failing)
    }
}

/// The Event that tells about the primary's failsafe `episode` (its lease held by promises while it
/// could not reach the API server), unless `told` already did: `(warning, reason, note)`.
pub fn failsafe_event(
    pod: &str,
    episode: &cnredis_instance_client::wire::FailsafeEpisode,
    told: Option<&cnredis_instance_client::wire::FailsafeEpisode>,
) -> Option<(bool, &'static str, String)> {
    if told == Some(episode) {
        return None;
    }
    let by = episode.promised_by.join(", ");
    let by = if by.is_empty() {
        "no other instance (it has none)".to_string()
    } else {
        by
    };
    Some(match &episode.until {
        None => (
            true,
            "PrimaryFailsafe",
            format!(
                "{pod} cannot renew its lease through the API server since {}: it holds it by the promises of {by} and keeps taking writes; it fences itself if one stops answering",
                episode.since
            ),
        ),
        Some(until) => (
            false,
            "PrimaryFailsafeEnded",
            format!(
                "{pod} held its lease by the promises of {by} from {} to {until}, and renews it through the API server again; nothing was fenced or failed over",
                episode.since
            ),
        ),
    })
}

/// Holds back a failover from a primary that is only unreachable from this operator while it renews its
/// Lease: its manager runs and its server answers it as primary, and its clients and replicas most likely
/// reach it as well. The operator's own view of it is not worth a failover; the failure stays
/// remembered, and fails over at the first poll that finds the renewals stopped.
pub fn hold_back(detection: Detection, facts: &PrimaryFacts) -> Detection {
    match detection {
        Detection::FailOver(failing)
            if failing.failure == Failure::Unreachable && facts.renews_its_lease() =>
        {
            Detection::Failing(failing)
        }
        other => other,
    }
}

/// When the health loop looks again after a poll that decided `detection` at `now`: at its `period`
/// while the primary serves; soon (`soon`) after the first sighting of a final failure, which fails over
/// at the next poll; and for any other failure at the moment its `delay` runs out, if that comes before
/// the period. So a failover starts when its rule allows it, not up to a period later.
pub fn next_poll(
    detection: &Detection,
    now: Timestamp,
    delay: Duration,
    period: Duration,
    soon: Duration,
) -> Duration {
    let Detection::Failing(failing) = detection else {
        return period;
    };
    if failing.failure.is_final() {
        return soon;
    }
    let waited = now.duration_since(failing.since).unsigned_abs();
    delay.saturating_sub(waited).clamp(soon, period)
}

/// The primary Lease as the operator read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseFacts {
    pub holder: Option<String>,
    pub renewed: Option<Timestamp>,
    pub duration: Duration,
    /// How long this operator has seen this version of the Lease unchanged, on its own monotonic clock
    /// (from the first sighting of its `resourceVersion`); `None` if it has no sighting. The renewal was
    /// sent before it was seen, so its holder's hold ended `duration` after the sighting at the latest,
    /// whatever the nodes' clocks say (see [`SIGHTING_MARGIN`]).
    pub unchanged_for: Option<Duration>,
}

/// What the operator knows of the old primary's ability to take writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FenceFacts {
    /// Its instance manager answered a fence call: the server refuses writes.
    pub acknowledged: bool,
    /// Its pod object is gone.
    pub pod_gone: bool,
    /// The kubelet reported every container of the pod stopped before the object went away (the last
    /// version of it this operator saw). A graceful deletion ends so; a forced one (`--grace-period=0
    /// --force`, or a node's pods deleted while its kubelet is gone) removes the object while the
    /// processes may still run and take writes.
    pub pod_stopped: bool,
    pub lease: Option<LeaseFacts>,
}

/// How the old primary was proven unable to take writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceProof {
    Acknowledged,
    PodGone,
    LeaseExpired,
}

impl FenceProof {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acknowledged => "FenceAcknowledged",
            Self::PodGone => "PodGone",
            Self::LeaseExpired => "LeaseExpired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Acknowledged, Self::PodGone, Self::LeaseExpired]
            .into_iter()
            .find(|p| p.as_str() == text)
    }

    /// Whether the Lease may be handed over by the operator. Only with a proof other than its expiry:
    /// then its holder is known to take no writes whatever its lease says. An expired lease is taken by
    /// the new primary itself, and a live one is never overwritten.
    pub fn allows_lease_handover(self) -> bool {
        !matches!(self, Self::LeaseExpired)
    }
}

/// Margin on a lease this operator has seen unchanged: a lease proves a fence once it has been seen
/// unchanged for its duration plus this, as Kubernetes leader election judges a leader gone. No wall
/// clock enters it: the holder sent its renewal before the operator saw it, and counts its hold from
/// the sending, on its own monotonic clock, for the duration less its own 2 s margin. Only the rates of
/// two monotonic clocks may differ (parts per million); this covers that and scheduling.
pub const SIGHTING_MARGIN: Duration = Duration::from_millis(500);

/// Proof that `old_primary` cannot take writes, or why there is none yet.
pub fn fence_proof(old_primary: &str, facts: &FenceFacts, now: Timestamp) -> Result<FenceProof, String> {
    if facts.acknowledged {
        return Ok(FenceProof::Acknowledged);
    }
    if facts.pod_gone && facts.pod_stopped {
        return Ok(FenceProof::PodGone);
    }
    let unreachable = if facts.pod_gone {
        "was deleted without its containers reported stopped (a forced deletion: it may still run)"
    } else {
        "cannot be reached"
    };
    if facts.lease.is_none() {
        return Err(format!(
            "{old_primary} {unreachable} and holds no readable primary lease: waiting for its pod to stop"
        ));
    }
    // Whoever holds it now, the old primary's own hold ends only at its last renewal plus the duration;
    // a lease renewed by another holder since only moves that point later, which errs on the safe side.
    match lease_proof_in(facts, now) {
        Some(left) if !left.is_zero() => Err(format!(
            "{old_primary} {unreachable}: waiting {:.1} s for its primary lease to run out",
            left.as_secs_f64()
        )),
        _ => Ok(FenceProof::LeaseExpired),
    }
}

/// How long until the lease in `facts` proves a fence (zero once it does, or for a lease never renewed);
/// `None` without a lease. Only this operator's monotonic clock decides: the lease proves the fence once
/// the operator has seen its current version unchanged for its duration plus [`SIGHTING_MARGIN`]. No
/// wall clock enters it, so no skew between the operator, the API server and the old primary's node
/// can shorten the wait; after an operator restart the count starts at its first sighting (a failover
/// then waits up to one lease longer).
pub fn lease_proof_in(facts: &FenceFacts, _now: Timestamp) -> Option<Duration> {
    let lease = facts.lease.as_ref()?;
    if lease.renewed.is_none() {
        return Some(Duration::ZERO);
    }
    let full = lease.duration.saturating_add(SIGHTING_MARGIN);
    Some(lease.unchanged_for.map_or(full, |seen| full.saturating_sub(seen)))
}

/// One instance that might replace the primary.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<'a> {
    pub name: &'a str,
    pub serial: u32,
    /// The pod exists, is not being deleted, and is not fenced by the user.
    pub eligible_pod: bool,
    /// Fenced by the user (`cnredis.io/fencedInstances`): never chosen, never waited for.
    pub fenced_by_user: bool,
    /// Its node is Ready (or not known to be otherwise). Among replicas with the same offset, one on a
    /// Ready node is chosen: the health loop would fail a primary on a NotReady node over again at once.
    pub node_ready: bool,
    pub report: Option<&'a InstanceReport>,
}

/// How long a failover waits, from its start, for replicas that may be back soon (see
/// [`replicas_to_wait_for`]) before it chooses among those that answer.
pub const WAIT_FOR_REPLICAS: Duration = Duration::from_secs(30);

/// The replicas a failover waits for before choosing: a write acknowledged with `WAIT 1` is on at least
/// one replica, maybe on one only, so the choice among some replicas may drop it if another, absent,
/// holds it. Absent: its pod gone or being replaced, its instance not answering, or its server loading
/// its files (all replicas restarted at once: each saved what it had when it stopped, and the last to
/// stop has the most). Not one fenced by the user, nor one in a full sync (its data is the primary's
/// as of the sync's start, which the others also have).
pub fn replicas_to_wait_for(candidates: &[Candidate<'_>]) -> Vec<String> {
    candidates
        .iter()
        .filter(|c| !c.fenced_by_user)
        .filter(|c| match c.report {
            _ if !c.eligible_pod => true,
            None => true,
            Some(r) => !r.answered || r.persistence.loading,
        })
        .map(|c| c.name.to_string())
        .collect()
}

/// Why no replica may replace the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoCandidate(pub String);

/// The replica to promote: of the old primary's replication history (its replication ID, or the ID its
/// replicas carry), with data, not loading or mid-sync, and the highest offset; ties go to the lowest
/// serial after those on a Ready node. Readiness is not a criterion: every replica of a dead primary has
/// its link down; nor is the node's, before the offset: the most advanced replica may hold writes
/// acknowledged by it alone.
pub fn choose_failover_target(
    primary_replication_id: Option<&str>,
    candidates: &[Candidate<'_>],
) -> Result<String, NoCandidate> {
    let mut rejected = Vec::new();
    let mut usable: Vec<(&Candidate<'_>, &InstanceReport)> = Vec::new();
    for candidate in candidates {
        let why = match candidate.report {
            _ if !candidate.eligible_pod => Some("pod gone, terminating or fenced"),
            None => Some("does not answer"),
            Some(r) if !r.answered => Some("server does not answer"),
            Some(r) if r.role != Role::Replica => Some("not a replica"),
            Some(r) if r.empty_after_restart => Some("restarted empty"),
            Some(r) if r.persistence.loading => Some("still loading its dataset"),
            Some(r) if r.replication.sync_in_progress => Some("in the middle of a full sync"),
            Some(r) if r.replication.offset <= 0 => Some("has never synced"),
            Some(_) => None,
        };
        match (why, candidate.report) {
            (None, Some(report)) => usable.push((candidate, report)),
            (Some(why), _) => rejected.push(format!("{} {why}", candidate.name)),
            (None, None) => unreachable!("a candidate without a report is rejected"),
        }
    }
    // The lineage: the recorded primary's ID when a replica carries it; else the ID most replicas carry,
    // the most advanced first (the record may be the failed primary's state after a restart, with a new
    // ID, while its replicas all still carry the old one).
    let of_lineage = |r: &InstanceReport, id: &str| {
        r.replication.replication_id == id || r.replication.replication_id2 == id
    };
    let lineage = match primary_replication_id.filter(|id| !id.is_empty()) {
        Some(id) if usable.iter().any(|(_, r)| of_lineage(r, id)) => id.to_string(),
        _ => usable
            .iter()
            .map(|(_, r)| {
                let id = &r.replication.replication_id;
                let carriers = usable.iter().filter(|(_, o)| of_lineage(o, id)).count();
                (carriers, r.replication.offset, id.clone())
            })
            .max()
            .map(|(_, _, id)| id)
            .unwrap_or_default(),
    };
    let (same, diverged): (Vec<_>, Vec<_>) = usable.into_iter().partition(|(_, r)| of_lineage(r, &lineage));
    for (candidate, _) in &diverged {
        rejected.push(format!("{} has another replication history", candidate.name));
    }
    same.into_iter()
        .max_by(|(a, ra), (b, rb)| {
            ra.replication
                .offset
                .cmp(&rb.replication.offset)
                .then(a.node_ready.cmp(&b.node_ready))
                .then(b.serial.cmp(&a.serial))
        })
        .map(|(candidate, _)| candidate.name.to_string())
        .ok_or_else(|| {
            NoCandidate(if rejected.is_empty() {
                "there is no replica".to_string()
            } else {
                format!("no replica can be promoted: {}", rejected.join("; "))
            })
        })
}

#[cfg(test)]
mod tests;
