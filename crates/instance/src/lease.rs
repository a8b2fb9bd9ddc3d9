//! The primary lease (`coordination.k8s.io/v1` Lease `<cluster>-primary`): the primary renews it through
//! the API server and stops accepting writes by itself when it cannot renew it in time, so that the
//! operator may treat an expired lease as proof that the old primary is fenced.
//!
//! The lease counts as held until `duration - margin` after the *sending* of the last successful renewal:
//! the renewal time stored in the Lease is never earlier than that, so the pod fences itself before any
//! reader can see the lease expire. The operator hands the lease to a new primary by rewriting its holder;
//! the old holder then fails to renew and fences itself at once.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};

use crate::decide::LeaseState;

/// Safety margin between the local expiry and the expiry others compute from the stored renewal time.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("the primary lease is held by {holder} (renewed {age:?} ago)")]
    HeldByOther { holder: String, age: Duration },
    #[error("renewing the primary lease timed out after {0:?}")]
    Timeout(Duration),
    #[error("renewing the primary lease: {0}")]
    Api(#[from] kube::Error),
}

/// What this pod knows of its hold on the lease, as plain data. It lives in a `tokio::sync::watch`
/// channel ([`crate::manager::Manager::lease_clock`]): every change wakes the watchdog, and no lock on it is
/// ever held across an await, so neither the loop nor the API can delay the self-fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseClock {
    pub duration: Duration,
    /// When the last successful renewal (or acquisition) was sent.
    pub renewed_at: Option<Instant>,
    /// Another pod took the lease since.
    pub lost: bool,
    /// The server last reported itself primary (or is being promoted): only a primary is fenced when the
    /// lease runs out. A server that does not answer keeps the last role it reported.
    pub primary: bool,
    /// The last observation of the server got an answer. Renewals stop while it does not (as for a
    /// replica), so that the stored lease runs out and proves to the operator that this pod is fenced;
    /// unlike a replica's, the hold is kept, and the watchdog fences the server once it answers again.
    pub answering: bool,
    /// The operator confirmed this pod as primary after the current expiry (`POST /v1/unfence`); the
    /// next renewal ends the confirmation.
    pub confirmed: bool,
    /// When the watchdog fenced the server for the current expiry.
    pub self_fenced_at: Option<Instant>,
    /// The current hold comes from a round of failsafe promises, not a renewal through the API server
    /// ([`crate::failsafe`]).
    pub by_promises: bool,
}

/// What the lease watchdog must do at one instant, from the [`LeaseClock`] alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogStep {
    /// Nothing can expire: no lease is held, or the pod is not primary, or the operator confirmed it.
    /// Wait for the clock to change.
    Idle,
    /// The lease is held until this instant (its local expiry); look again then, or when the clock
    /// changes.
    SleepUntil(Instant),
    /// The lease ran out (or was taken) while this pod acts as primary: its server must refuse writes.
    Fence,
}

impl LeaseClock {
    pub fn new(duration: Duration) -> Self {
        Self {
            duration,
            renewed_at: None,
            lost: false,
            primary: false,
            answering: false,
            confirmed: false,
            self_fenced_at: None,
            by_promises: false,
        }
    }

    /// The local expiry: `duration - margin` after the sending of the last successful renewal.
    pub fn expires_at(&self) -> Option<Instant> {
        let valid_for = self.duration.saturating_sub(EXPIRY_MARGIN);
        self.renewed_at.map(|renewed| renewed + valid_for)
    }

    /// The lease state as [`crate::decide`] sees it. `primary` says whether this pod acts as primary
    /// (its server is one, or it is being promoted).
    pub fn state(&self, primary: bool, now: Instant) -> LeaseState {
        match self.expires_at() {
            _ if self.lost && primary => LeaseState::Expired,
            Some(expiry) if now < expiry && !self.lost => LeaseState::Held,
            Some(_) if primary => LeaseState::Expired,
            _ => LeaseState::NotPrimary,
        }
    }

    /// The watchdog's next step. It fences exactly when [`Self::state`] says `Expired` for the role the
    /// server last reported and the operator has not confirmed the pod: the same rule as the loop's
    /// `leaseExpired` fence reason, enforced on a timer of its own.
    pub fn watchdog_step(&self, now: Instant) -> WatchdogStep {
        match (self.state(self.primary, now), self.expires_at()) {
            (LeaseState::Expired, _) if !self.confirmed => WatchdogStep::Fence,
            (LeaseState::Held, Some(expiry)) => WatchdogStep::SleepUntil(expiry),
            _ => WatchdogStep::Idle,
        }
    }

    /// Folds in one observation of the server: `Some(primary)` when it answered, `None` when it did not.
    /// Returns whether anything changed.
    pub fn observed(&mut self, primary: Option<bool>) -> bool {
        let before = (self.primary, self.answering);
        self.answering = primary.is_some();
        self.primary = primary.unwrap_or(self.primary);
        before != (self.primary, self.answering)
    }

    /// Whether to renew the lease now: the server answers as primary.
    pub fn should_renew(&self) -> bool {
        self.primary && self.answering
    }

    pub fn renewed(&mut self, sent_at: Instant) {
        self.renewed_at = Some(sent_at);
        self.lost = false;
        self.confirmed = false;
        self.self_fenced_at = None;
        self.by_promises = false;
    }

    /// Every instance promised, in a round sent at `sent_at`, to refuse promotion for longer than this
    /// pod's hold from then: the hold runs from `sent_at` as from a renewal. Never undoes a lease taken
    /// by another pod, and never moves the hold back.
    pub fn held_by_promises(&mut self, sent_at: Instant) {
        if self.lost || self.renewed_at.is_some_and(|renewed| renewed >= sent_at) {
            return;
        }
        self.renewed_at = Some(sent_at);
        self.confirmed = false;
        self.self_fenced_at = None;
        self.by_promises = true;
    }

    pub fn lost(&mut self) {
        self.lost = true;
    }

    /// The operator confirms this pod as primary: it only means something once the lease has expired,
    /// and it holds until the next renewal. (A confirmation given while the lease is held would
    /// otherwise disarm the watchdog for an expiry nobody has seen yet.)
    pub fn confirm(&mut self, now: Instant) {
        if self.state(true, now) == LeaseState::Expired {
            self.confirmed = true;
        }
    }

    /// Forgets the lease once this pod is no longer the primary.
    pub fn released(&mut self) {
        self.renewed_at = None;
        self.lost = false;
        self.confirmed = false;
        self.self_fenced_at = None;
        self.by_promises = false;
    }
}

/// The Lease object of one cluster, renewed on behalf of one pod.
#[derive(Clone)]
pub struct PrimaryLease {
    api: Api<Lease>,
    name: String,
    holder: String,
    duration: Duration,
}

impl PrimaryLease {
    pub fn new(client: Client, namespace: &str, name: String, holder: String, duration: Duration) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name,
            holder,
            duration,
        }
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Takes the lease if it is free, expired or already this pod's, and renews it. Refuses while another
    /// pod holds it: the operator moves the holder when it fails over or switches over.
    pub async fn acquire_or_renew(&self, timeout: Duration) -> Result<(), LeaseError> {
        match tokio::time::timeout(timeout, self.try_acquire_or_renew()).await {
            Ok(result) => result,
            Err(_) => Err(LeaseError::Timeout(timeout)),
        }
    }

    async fn try_acquire_or_renew(&self) -> Result<(), LeaseError> {
        let now = jiff::Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, Some(now), 0)),
            };
            self.api.create(&PostParams::default(), &lease).await?;
            return Ok(());
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        let next = if holder == self.holder {
            self.spec(now, spec.acquire_time.map(|time| time.0), transitions)
        } else {
            let age = spec
                .renew_time
                .map(|time| now.duration_since(time.0).unsigned_abs())
                .unwrap_or(Duration::MAX);
            let duration = spec
                .lease_duration_seconds
                .map(|seconds| Duration::from_secs(seconds.max(0) as u64))
                .unwrap_or(self.duration);
            if !holder.is_empty() && age < duration {
                return Err(LeaseError::HeldByOther { holder, age });
            }
            self.spec(now, Some(now), transitions + 1)
        };
        lease.spec = Some(next);
        // The resourceVersion read above makes this a compare-and-swap: a concurrent change by the
        // operator wins, and this renewal fails.
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await?;
        Ok(())
    }

    fn spec(&self, now: jiff::Timestamp, acquired: Option<jiff::Timestamp>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.holder.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            acquire_time: acquired.map(MicroTime),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::LeaseState;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_renewed_lease_is_held_until_the_margin_before_its_duration() {
        let start = Instant::now();
        let mut clock = LeaseClock::new(15 * SECOND);
        clock.renewed(start);
        assert_eq!(clock.state(true, start + 12 * SECOND), LeaseState::Held);
        assert_eq!(clock.state(true, start + 13 * SECOND), LeaseState::Expired);
    }

    #[test]
    fn a_primary_that_never_held_the_lease_is_not_yet_a_lease_holder() {
        let clock = LeaseClock::new(15 * SECOND);
        assert_eq!(clock.state(true, Instant::now()), LeaseState::NotPrimary);
        assert_eq!(clock.state(false, Instant::now()), LeaseState::NotPrimary);
    }

    #[test]
    fn a_lease_taken_by_another_pod_expires_a_primary_at_once() {
        let start = Instant::now();
        let mut clock = LeaseClock::new(15 * SECOND);
        clock.renewed(start);
        clock.lost();
        assert_eq!(clock.state(true, start + SECOND), LeaseState::Expired);
        assert_eq!(clock.state(false, start + SECOND), LeaseState::NotPrimary);
    }

    #[test]
    fn a_late_renewal_restores_the_hold() {
        let start = Instant::now();
        let mut clock = LeaseClock::new(15 * SECOND);
        clock.renewed(start);
        assert_eq!(clock.state(true, start + 20 * SECOND), LeaseState::Expired);
        clock.renewed(start + 20 * SECOND);
        assert_eq!(clock.state(true, start + 21 * SECOND), LeaseState::Held);
    }

    /// A primary whose lease was renewed at `start`.
    fn primary_renewed_at(start: Instant) -> LeaseClock {
        let mut clock = LeaseClock::new(15 * SECOND);
        clock.observed(Some(true));
        clock.renewed(start);
        clock
    }

    #[test]
    fn the_watchdog_sleeps_until_the_margin_before_the_duration_then_fences() {
        let start = Instant::now();
        let clock = primary_renewed_at(start);
        let expiry = start + 13 * SECOND;
        assert_eq!(clock.expires_at(), Some(expiry));
        for at in [start, start + 5 * SECOND, expiry - Duration::from_millis(1)] {
            assert_eq!(clock.watchdog_step(at), WatchdogStep::SleepUntil(expiry));
        }
        assert_eq!(clock.watchdog_step(expiry), WatchdogStep::Fence);
        assert_eq!(clock.watchdog_step(expiry + 60 * SECOND), WatchdogStep::Fence);
    }

    #[test]
    fn the_watchdog_fences_exactly_when_the_loop_sees_the_lease_expired() {
        let start = Instant::now();
        let clock = primary_renewed_at(start);
        for millis in (0..20_000).step_by(250) {
            let at = start + Duration::from_millis(millis);
            assert_eq!(
                clock.watchdog_step(at) == WatchdogStep::Fence,
                clock.state(true, at) == LeaseState::Expired,
                "{millis} ms after the renewal"
            );
        }
    }

    #[test]
    fn a_renewal_sent_before_the_expiry_moves_the_watchdog_on() {
        let start = Instant::now();
        let mut clock = primary_renewed_at(start);
        // Sent at 5 s, answered only after the first expiry: valid from when it was sent.
        clock.renewed(start + 5 * SECOND);
        assert_eq!(
            clock.watchdog_step(start + 14 * SECOND),
            WatchdogStep::SleepUntil(start + 18 * SECOND)
        );
    }

    #[test]
    fn a_lease_taken_by_another_pod_fences_at_once() {
        let start = Instant::now();
        let mut clock = primary_renewed_at(start);
        clock.lost();
        assert_eq!(clock.watchdog_step(start + SECOND), WatchdogStep::Fence);
    }

    #[test]
    fn the_watchdog_leaves_replicas_and_pods_without_a_lease_alone() {
        let start = Instant::now();
        assert_eq!(
            LeaseClock::new(15 * SECOND).watchdog_step(start),
            WatchdogStep::Idle
        );
        let mut replica = primary_renewed_at(start);
        replica.observed(Some(false));
        assert_eq!(replica.watchdog_step(start + 20 * SECOND), WatchdogStep::Idle);
        let mut demoted = primary_renewed_at(start);
        demoted.released();
        assert_eq!(demoted.watchdog_step(start + 20 * SECOND), WatchdogStep::Idle);
    }

    #[test]
    fn a_primary_that_stops_answering_keeps_its_hold_but_is_not_renewed() {
        let start = Instant::now();
        let mut clock = primary_renewed_at(start);
        assert!(clock.should_renew());
        clock.observed(None);
        assert!(!clock.should_renew());
        assert_eq!(clock.watchdog_step(start + 13 * SECOND), WatchdogStep::Fence);
        clock.observed(Some(true));
        assert!(clock.should_renew());
    }

    #[test]
    fn a_confirmation_counts_only_for_an_expired_lease_and_until_the_next_renewal() {
        let start = Instant::now();
        let mut clock = primary_renewed_at(start);
        clock.confirm(start + SECOND);
        assert!(!clock.confirmed, "nothing to confirm while the lease is held");
        assert_eq!(clock.watchdog_step(start + 13 * SECOND), WatchdogStep::Fence);
        clock.confirm(start + 14 * SECOND);
        assert_eq!(clock.watchdog_step(start + 14 * SECOND), WatchdogStep::Idle);
        clock.renewed(start + 20 * SECOND);
        assert!(!clock.confirmed);
        assert_eq!(clock.watchdog_step(start + 33 * SECOND), WatchdogStep::Fence);
    }

    #[test]
    fn promises_extend_the_hold_from_the_sending_of_their_round() {
        let start = Instant::now();
        let mut clock = primary_renewed_at(start);
        clock.held_by_promises(start + 3 * SECOND);
        assert!(clock.by_promises);
        assert_eq!(
            clock.watchdog_step(start + 14 * SECOND),
            WatchdogStep::SleepUntil(start + 16 * SECOND)
        );
        assert_eq!(clock.watchdog_step(start + 16 * SECOND), WatchdogStep::Fence);
        clock.renewed(start + 17 * SECOND);
        assert!(
            !clock.by_promises,
            "a renewal through the API server ends the failsafe"
        );
    }

    #[test]
    fn promises_never_undo_a_lease_taken_by_another_pod_nor_move_the_hold_back() {
        let start = Instant::now();
        let mut clock = primary_renewed_at(start);
        clock.lost();
        clock.held_by_promises(start + SECOND);
        assert_eq!(clock.watchdog_step(start + SECOND), WatchdogStep::Fence);
        let mut clock = primary_renewed_at(start + 5 * SECOND);
        clock.held_by_promises(start + 3 * SECOND);
        assert_eq!(clock.renewed_at, Some(start + 5 * SECOND));
        assert!(!clock.by_promises);
    }

    #[test]
    fn a_demoted_pod_releases_the_lease() {
        let start = Instant::now();
        let mut clock = LeaseClock::new(15 * SECOND);
        clock.renewed(start);
        clock.released();
        assert_eq!(clock.state(false, start + 20 * SECOND), LeaseState::NotPrimary);
    }
}
