//! Where the instance manager learns what its cluster wants: its own RedisCluster (spec, status,
//! fencing annotation) and the addresses of the cluster's pods.
//!
//! In a pod this is a watch on the Kubernetes API, limited to its own RedisCluster by a field selector
//! and to its cluster's pods by label. Without Kubernetes (integration tests, local runs) the same view is
//! read from a YAML file that is re-read whenever it changes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cnredis_api::RedisCluster;
use cnredis_api::names::{LABEL_CLUSTER, REDIS_PORT};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// What the instance manager knows of its cluster at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    pub cluster: RedisCluster,
    /// Server address (`host`, `port`) of every pod of the cluster that has one.
    #[serde(default)]
    pub addresses: BTreeMap<String, Address>,
}

/// A server address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a cluster view: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("cannot read RedisCluster {name}: {source}")]
    Get { name: String, source: kube::Error },
    #[error("cannot read RedisCluster {name}: no answer from the API server within {within:?}")]
    Timeout {
        name: String,
        within: std::time::Duration,
    },
}

/// How long a fresh read of the RedisCluster may take: a role change that rests on it fails rather than
/// hang on an API server that does not answer.
pub const FRESH_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where the view comes from.
#[derive(Clone)]
pub enum ClusterSource {
    Kubernetes {
        client: Client,
        namespace: String,
        name: String,
    },
    File(PathBuf),
}

/// The latest view, and a way to read a fresh one when a decision must not rest on a stale watch (a
/// promotion).
#[derive(Clone)]
pub struct ClusterWatch {
    pub latest: watch::Receiver<Option<Arc<ClusterView>>>,
    source: ClusterSource,
}

impl ClusterSource {
    /// Starts following the cluster in the background.
    pub fn start(self) -> ClusterWatch {
        let (sender, latest) = watch::channel(None);
        match &self {
            Self::Kubernetes {
                client,
                namespace,
                name,
            } => {
                tokio::spawn(follow_kubernetes(
                    client.clone(),
                    namespace.clone(),
                    name.clone(),
                    sender,
                ));
            }
            Self::File(path) => {
                tokio::spawn(follow_file(path.clone(), sender));
            }
        }
        ClusterWatch { latest, source: self }
    }
}

impl ClusterWatch {
    pub fn current(&self) -> Option<Arc<ClusterView>> {
        self.latest.borrow().clone()
    }

    /// The RedisCluster as stored now (a read from the API server, or the file), with the addresses
    /// of the latest view.
    pub async fn fresh(&self) -> Result<Arc<ClusterView>, SourceError> {
        let addresses = self
            .current()
            .map(|view| view.addresses.clone())
            .unwrap_or_default();
        let cluster = match &self.source {
            ClusterSource::Kubernetes {
                client,
                namespace,
                name,
            } => {
                let api = Api::<RedisCluster>::namespaced(client.clone(), namespace);
                tokio::time::timeout(FRESH_READ_TIMEOUT, api.get(name))
                    .await
                    .map_err(|_| SourceError::Timeout {
                        name: name.clone(),
                        within: FRESH_READ_TIMEOUT,
                    })?
                    .map_err(|source| SourceError::Get {
                        name: name.clone(),
                        source,
                    })?
            }
            ClusterSource::File(path) => read_file(path)?.cluster,
        };
        Ok(Arc::new(ClusterView { cluster, addresses }))
    }
}

fn read_file(path: &PathBuf) -> Result<ClusterView, SourceError> {
    let text = std::fs::read_to_string(path).map_err(|source| SourceError::Read {
        path: path.clone(),
        source,
    })?;
    serde_saphyr::from_str(&text).map_err(|error| SourceError::Parse {
        path: path.clone(),
        message: error.to_string(),
    })
}

/// What tells one version of a followed file from the next: its modification time alone does not, since
/// two writes within one tick of the kernel's coarse clock (a few milliseconds) leave the same time; a
/// file replaced by a rename (how it is written, as a mounted ConfigMap is) has a new inode, and a
/// rewrite in place mostly a new length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileVersion {
    modified: SystemTime,
    inode: u64,
    len: u64,
}

fn file_version(path: &std::path::Path) -> Option<FileVersion> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(FileVersion {
        modified: meta.modified().ok()?,
        inode: meta.ino(),
        len: meta.len(),
    })
}

async fn follow_file(path: PathBuf, sender: watch::Sender<Option<Arc<ClusterView>>>) {
    let mut seen: Option<FileVersion> = None;
    let mut reported = false;
    loop {
        let modified = file_version(&path);
        if modified.is_some() && modified != seen {
            match read_file(&path) {
                Ok(view) => {
                    seen = modified;
                    reported = false;
                    sender.send_if_modified(|current| {
                        let changed = current.as_deref() != Some(&view);
                        if changed {
                            *current = Some(Arc::new(view));
                        }
                        changed
                    });
                }
                // A writer may be half-way through the file: try again at the next poll, and say so once.
                Err(error) if !reported => {
                    tracing::warn!(%error, "cluster view unreadable");
                    reported = true;
                }
                Err(_) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn follow_kubernetes(
    client: Client,
    namespace: String,
    name: String,
    sender: watch::Sender<Option<Arc<ClusterView>>>,
) {
    let clusters = Api::<RedisCluster>::namespaced(client.clone(), &namespace);
    let pods = Api::<Pod>::namespaced(client, &namespace);
    let cluster_events = watcher(
        clusters,
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .default_backoff()
    .applied_objects();
    let (pod_store, pod_writer) = reflector::store();
    let pod_events = watcher(
        pods,
        watcher::Config::default().labels(&format!("{LABEL_CLUSTER}={name}")),
    )
    .default_backoff()
    .reflect(pod_writer)
    .touched_objects();

    let mut cluster_events = std::pin::pin!(cluster_events);
    let mut pod_events = std::pin::pin!(pod_events);
    let mut cluster: Option<RedisCluster> = None;
    loop {
        tokio::select! {
            event = cluster_events.next() => match event {
                Some(Ok(object)) => cluster = Some(object),
                Some(Err(error)) => tracing::warn!(%error, "watching the RedisCluster"),
                None => return,
            },
            event = pod_events.next() => match event {
                Some(Ok(_)) => {}
                Some(Err(error)) => tracing::warn!(%error, "watching the cluster's pods"),
                None => return,
            },
        }
        let Some(cluster) = &cluster else { continue };
        let addresses = pod_store
            .state()
            .iter()
            .filter_map(|pod| {
                let name = pod.metadata.name.clone()?;
                let ip = pod.status.as_ref()?.pod_ip.clone()?;
                Some((
                    name,
                    Address {
                        host: ip,
                        port: REDIS_PORT,
                    },
                ))
            })
            .collect();
        let view = ClusterView {
            cluster: cluster.clone(),
            addresses,
        };
        sender.send_if_modified(|current| {
            let changed = current.as_deref() != Some(&view);
            if changed {
                *current = Some(Arc::new(view));
            }
            changed
        });
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;

    #[test]
    fn a_file_replaced_within_one_clock_tick_is_a_new_version() {
        let dir = std::env::temp_dir().join(format!("cnredis-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cluster.json");
        let write = |text: &str, at: SystemTime| {
            let temporary = dir.join("cluster.tmp");
            std::fs::write(&temporary, text).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&temporary)
                .unwrap()
                .set_modified(at)
                .unwrap();
            std::fs::rename(&temporary, &path).unwrap();
        };
        let tick = SystemTime::now();
        write(r#"{"status": {"currentPrimary": "c-1"}}"#, tick);
        let first = file_version(&path).unwrap();
        // The same length and the same modification time: only the inode tells them apart.
        write(r#"{"status": {"currentPrimary": "c-2"}}"#, tick);
        let second = file_version(&path).unwrap();
        assert_eq!(first.modified, second.modified);
        assert_ne!(
            first, second,
            "a second write within the same tick looks unchanged"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
