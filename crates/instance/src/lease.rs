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

/// What this pod knows of its hold on the lease, as plain data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseClock {
    pub duration: Duration,
    /// When the last successful renewal (or acquisition) was sent.
    pub renewed_at: Option<Instant>,
    /// Another pod took the lease since.
    pub lost: bool,
}

impl LeaseClock {
    pub fn new(duration: Duration) -> Self {
        Self {
            duration,
            renewed_at: None,
            lost: false,
        }
    }

    /// The lease state as [`crate::decide`] sees it. `primary` says whether this pod acts as primary
    /// (its server is one, or it is being promoted).
    pub fn state(&self, primary: bool, now: Instant) -> LeaseState {
        let valid_for = self.duration.saturating_sub(EXPIRY_MARGIN);
        match self.renewed_at {
            _ if self.lost && primary => LeaseState::Expired,
            Some(renewed) if now.duration_since(renewed) < valid_for && !self.lost => LeaseState::Held,
            Some(_) if primary => LeaseState::Expired,
            _ => LeaseState::NotPrimary,
        }
    }

    pub fn renewed(&mut self, sent_at: Instant) {
        self.renewed_at = Some(sent_at);
        self.lost = false;
    }

    pub fn lost(&mut self) {
        self.lost = true;
    }

    /// Forgets the lease once this pod is no longer the primary.
    pub fn released(&mut self) {
        self.renewed_at = None;
        self.lost = false;
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

    #[test]
    fn a_demoted_pod_releases_the_lease() {
        let start = Instant::now();
        let mut clock = LeaseClock::new(15 * SECOND);
        clock.renewed(start);
        clock.released();
        assert_eq!(clock.state(false, start + 20 * SECOND), LeaseState::NotPrimary);
    }
}
