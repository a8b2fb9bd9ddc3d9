//! What every reconcile shares: the client, the operator's CA and instance-API client, the image the
//! instance pods bootstrap from, metrics and the event recorder.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cnredis_api::RedisCluster;
use cnredis_instance_client::InstanceClient;
use cnredis_pki::CertificateAuthority;
use kube::runtime::events::Recorder;
use kube::{Client, ResourceExt};

use crate::metrics::Metrics;

pub use crate::memory::ClusterKey;
use crate::memory::{DeletedPods, LeaseSightings, RecentMoves};

pub struct Context {
    pub client: Client,
    /// Image whose `cnredis` binary the init container of every instance pod copies.
    pub operator_image: String,
    pub ca: CertificateAuthority,
    /// Authenticated with the operator's client certificate, issued by `ca`.
    pub instance_api: InstanceClient,
    pub metrics: Metrics,
    pub recorder: Recorder,
    /// The health loop of each cluster, by namespace and name.
    pub health_loops: Mutex<BTreeMap<ClusterKey, tokio::task::JoinHandle<()>>>,
    /// When this process first saw the current version of each cluster's primary Lease.
    pub lease_sightings: LeaseSightings,
    /// The last version of each instance pod this process saw deleted.
    pub deleted_pods: DeletedPods,
    /// The replicas moved to spread each cluster's instances again, and from which domain.
    pub recent_moves: RecentMoves,
    /// The failsafe episode of each cluster's primary this process last told about in an Event.
    pub failsafe_told: Mutex<BTreeMap<ClusterKey, cnredis_instance_client::wire::FailsafeEpisode>>,
    /// One lock per cluster, held by whoever changes its primary (a reconcile, a failover step), so
    /// that they never interleave.
    pub acting: Mutex<BTreeMap<ClusterKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl Context {
    /// The lock of `cluster` that reconciles and failover steps take.
    pub fn acting(&self, cluster: &RedisCluster) -> Arc<tokio::sync::Mutex<()>> {
        let key = (cluster.namespace().unwrap_or_default(), cluster.name_any());
        self.acting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .clone()
    }
}
