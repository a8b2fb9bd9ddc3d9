//! What the operator remembers of each cluster between calls, in this process's memory only (lost on
//! restart, which every user of it allows for): the first sightings of its primary Lease's versions, the
//! last versions of its deleted pods, and the replicas it moved to spread the instances.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

/// A cluster by namespace and name.
pub type ClusterKey = (String, String);

/// The last version of each instance pod this process saw deleted, until a pod of that name exists
/// again: whether the kubelet reported its containers stopped before the object went away (a graceful
/// deletion), and the address its processes may still answer at if it did not (a forced one).
#[derive(Default)]
pub struct DeletedPods(std::sync::Mutex<BTreeMap<ClusterKey, BTreeMap<String, Pod>>>);

impl DeletedPods {
    pub(crate) fn saw_deleted(&self, cluster: &ClusterKey, pod: Pod) {
        let mut deleted = self.0.lock().unwrap_or_else(|p| p.into_inner());
        deleted
            .entry(cluster.clone())
            .or_default()
            .insert(pod.name_any(), pod);
    }

    pub(crate) fn exists(&self, cluster: &ClusterKey, pod: &Pod) {
        let mut deleted = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pods) = deleted.get_mut(cluster) {
            pods.remove(&pod.name_any());
        }
    }

    /// The last version of `name` seen before its deletion.
    pub fn last_of(&self, cluster: &ClusterKey, name: &str) -> Option<Pod> {
        let deleted = self.0.lock().unwrap_or_else(|p| p.into_inner());
        deleted.get(cluster)?.get(name).cloned()
    }

    pub(crate) fn forget(&self, cluster: &ClusterKey) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(cluster);
    }
}

/// When this process first saw the current version (`resourceVersion`) of each cluster's primary
/// Lease, on its monotonic clock. Only ever errs late: a version is timed from its first sighting, by
/// the watch or by a read, whichever comes first, and any new version starts the count again.
#[derive(Default)]
pub struct LeaseSightings(std::sync::Mutex<BTreeMap<ClusterKey, Sighting>>);

/// The first sighting of one version of a primary Lease.
struct Sighting {
    version: String,
    holder: Option<String>,
    duration: Duration,
    at: Instant,
}

impl LeaseSightings {
    /// Notes a sighting of `lease`; returns how long its version has been seen unchanged (`None` for a
    /// Lease without a version).
    pub fn saw(&self, cluster: &ClusterKey, lease: &Lease) -> Option<Duration> {
        let version = lease.resource_version()?;
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(cluster) {
            Some(known) if known.version == version => Some(known.at.elapsed()),
            _ => {
                let spec = lease.spec.clone().unwrap_or_default();
                let sighting = Sighting {
                    version,
                    holder: spec.holder_identity,
                    duration: Duration::from_secs(spec.lease_duration_seconds.unwrap_or(15).max(0) as u64),
                    at: Instant::now(),
                };
                seen.insert(cluster.clone(), sighting);
                Some(Duration::ZERO)
            }
        }
    }

    /// How long ago the current version of the Lease was first seen, if `holder` holds it, and its
    /// duration.
    pub fn renewed_by(&self, cluster: &ClusterKey, holder: &str) -> (Option<Duration>, Duration) {
        let seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(cluster) {
            Some(known) => (
                (known.holder.as_deref() == Some(holder)).then(|| known.at.elapsed()),
                known.duration,
            ),
            None => (None, Duration::ZERO),
        }
    }

    pub(crate) fn forget(&self, cluster: &ClusterKey) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(cluster);
    }
}

/// The domain a replica was moved from, and when.
type Moved = (String, Instant);

/// The last move of each cluster's replicas: a replica back in the domain it left is held back.
#[derive(Default)]
pub struct RecentMoves(std::sync::Mutex<BTreeMap<ClusterKey, BTreeMap<String, Moved>>>);

impl RecentMoves {
    pub fn record(&self, key: &ClusterKey, instance: &str, from_domain: &str) {
        let mut moves = self.0.lock().unwrap_or_else(|p| p.into_inner());
        moves
            .entry(key.clone())
            .or_default()
            .insert(instance.to_string(), (from_domain.to_string(), Instant::now()));
    }

    /// Moved less than `retry_after` ago and in the domain it left again.
    pub(crate) fn held(&self, key: &ClusterKey, instance: &str, domain: &str, retry_after: Duration) -> bool {
        let moves = self.0.lock().unwrap_or_else(|p| p.into_inner());
        moves
            .get(key)
            .and_then(|m| m.get(instance))
            .is_some_and(|(from, at)| from == domain && at.elapsed() < retry_after)
    }

    pub fn forget(&self, key: &ClusterKey) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}
