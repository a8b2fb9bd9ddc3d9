//! `cnredis controller`: health and metrics, leader election, the operator's credentials, and the
//! RedisCluster and RedisBackup controllers over every watched namespace.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use cnredis_api::{RedisBackup, RedisCluster, RedisScheduledBackup};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use crate::cluster::observe::POLL_TIMEOUT;
use crate::cluster::reconcile::{ReconcileError, reconcile};
use crate::context::Context;
use crate::metrics::Metrics;

/// The APIs one controller watches, in one namespace or all.
struct Scoped {
    clusters: Api<RedisCluster>,
    pods: Api<Pod>,
    pvcs: Api<PersistentVolumeClaim>,
    services: Api<Service>,
    secrets: Api<Secret>,
}

pub struct ControllerOptions {
    /// Namespaces to watch; empty means all.
    pub watch_namespaces: Vec<String>,
    pub metrics_addr: SocketAddr,
    pub leader_elect: bool,
    pub operator_image: String,
    /// Namespace of the operator (its CA Secret and leader Lease live there).
    pub namespace: String,
    /// Name of this operator pod (the leader identity and the events' reporter).
    pub pod_name: String,
}

fn error_policy(cluster: Arc<RedisCluster>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    tracing::warn!(cluster = %cluster.name_any(), namespace = ?cluster.namespace(), %error, "reconcile failed");
    let ctx = ctx.clone();
    let message = error.to_string();
    let reason = error.kind();
    tokio::spawn(async move {
        let event_type = kube::runtime::events::EventType::Warning;
        crate::events::publish(&ctx, &cluster, event_type, reason, "Reconcile", &message).await;
    });
    Action::requeue(Duration::from_secs(5))
}

fn schedule_error_policy(
    scheduled: Arc<RedisScheduledBackup>,
    error: &crate::backup::scheduler::ScheduleError,
    _ctx: Arc<Context>,
) -> Action {
    tracing::warn!(schedule = %scheduled.name_any(), namespace = ?scheduled.namespace(), %error, "scheduled backup reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

fn backup_error_policy(
    backup: Arc<RedisBackup>,
    error: &crate::backup::controller::BackupError,
    _ctx: Arc<Context>,
) -> Action {
    tracing::warn!(backup = %backup.name_any(), namespace = ?backup.namespace(), %error, "backup reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

pub async fn run(client: Client, options: ControllerOptions) -> anyhow::Result<()> {
    let metrics = Metrics::default();
    let leading = Arc::new(AtomicBool::new(false));
    tokio::spawn(serve_health(
        options.metrics_addr,
        metrics.clone(),
        leading.clone(),
    ));

    if options.leader_elect {
        crate::leader::lead(client.clone(), &options.namespace, options.pod_name.clone()).await;
    }
    leading.store(true, Ordering::SeqCst);

    let ca = crate::credentials::load_or_create_ca(&client, &options.namespace).await?;
    let operator_cert = ca.issue_operator_client(crate::credentials::CERTIFICATE_VALIDITY)?;
    let tls = cnredis_pki::client_config(ca.cert_pem(), &operator_cert.cert_pem, &operator_cert.key_pem)?;
    let instance_api = cnredis_instance_client::InstanceClient::new(tls, POLL_TIMEOUT)?;
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "cnredis".to_string(),
            instance: Some(options.pod_name.clone()),
        },
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        operator_image: options.operator_image.clone(),
        ca,
        instance_api,
        metrics,
        recorder,
        health_loops: Default::default(),
        lease_sightings: Default::default(),
        deleted_pods: Default::default(),
        recent_moves: Default::default(),
        failsafe_told: Default::default(),
        acting: Default::default(),
    });

    let namespaces: Vec<Option<String>> = if options.watch_namespaces.is_empty() {
        vec![None]
    } else {
        options.watch_namespaces.iter().cloned().map(Some).collect()
    };
    tracing::info!(?namespaces, image = %options.operator_image, "controller starting");
    let namespaces_for_backups = namespaces.clone();
    let controllers = namespaces.into_iter().map(|namespace| {
        let scoped = |client: Client| -> Scoped {
            match &namespace {
                Some(ns) => Scoped {
                    clusters: Api::namespaced(client.clone(), ns),
                    pods: Api::namespaced(client.clone(), ns),
                    pvcs: Api::namespaced(client.clone(), ns),
                    services: Api::namespaced(client.clone(), ns),
                    secrets: Api::namespaced(client, ns),
                },
                None => Scoped {
                    clusters: Api::all(client.clone()),
                    pods: Api::all(client.clone()),
                    pvcs: Api::all(client.clone()),
                    services: Api::all(client.clone()),
                    secrets: Api::all(client),
                },
            }
        };
        let Scoped {
            clusters,
            pods,
            pvcs,
            services,
            secrets,
        } = scoped(client.clone());
        let owned = || watcher::Config::default().labels(cnredis_api::names::LABEL_CLUSTER);
        let (reader, writer) = kube::runtime::reflector::store();
        let changes = watcher(clusters, watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .applied_objects()
            .predicate_filter(worth_reconciling, Default::default());
        Controller::for_stream(changes, reader)
            .owns(pods, owned())
            .owns(pvcs, owned())
            .owns(services, owned())
            .owns(secrets, owned())
            .shutdown_on_signal()
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, "reconcile");
                }
            })
    });
    let backup_controllers = namespaces_for_backups.into_iter().map(|namespace| {
        let (backups, schedules): (Api<RedisBackup>, Api<RedisScheduledBackup>) = match &namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        let backups = Controller::new(backups, watcher::Config::default())
            .shutdown_on_signal()
            .run(
                crate::backup::controller::reconcile,
                backup_error_policy,
                ctx.clone(),
            )
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, "backup reconcile");
                }
            });
        let schedules = Controller::new(schedules, watcher::Config::default())
            .shutdown_on_signal()
            .run(
                crate::backup::scheduler::reconcile,
                schedule_error_policy,
                ctx.clone(),
            )
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, "scheduled backup reconcile");
                }
            });
        futures::future::join(backups, schedules)
    });
    futures::future::join(
        futures::future::join_all(controllers),
        futures::future::join_all(backup_controllers),
    )
    .await;
    if options.leader_elect {
        crate::leader::release(client, &options.namespace, &options.pod_name).await;
    }
    Ok(())
}

/// What of a RedisCluster a reconcile acts on: the spec (its generation), the fencing, restart and reload
/// annotations, the
/// primary fields of the status and a recorded failover, and its deletion. Status writes of figures
/// (offsets, counts, phase) change none of these, so they do not wake a reconcile; the periodic requeue
/// and the owned objects' watches do.
fn worth_reconciling(cluster: &RedisCluster) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let status = cluster.status.clone().unwrap_or_default();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    cluster.metadata.generation.hash(&mut hasher);
    cluster.metadata.deletion_timestamp.is_some().hash(&mut hasher);
    cluster
        .annotations()
        .get(cnredis_api::names::ANNOTATION_FENCED_INSTANCES)
        .hash(&mut hasher);
    cluster
        .annotations()
        .get(cnredis_api::names::ANNOTATION_RESTARTED_AT)
        .hash(&mut hasher);
    cluster
        .annotations()
        .get(cnredis_api::names::ANNOTATION_RELOADED_AT)
        .hash(&mut hasher);
    status.target_primary.hash(&mut hasher);
    status.current_primary.hash(&mut hasher);
    status
        .failover
        .as_ref()
        .map(|f| (&f.from, &f.to, &f.step))
        .hash(&mut hasher);
    status.primary_failing.as_ref().map(|f| &f.pod).hash(&mut hasher);
    Some(hasher.finish())
}

async fn serve_health(addr: SocketAddr, metrics: Metrics, leading: Arc<AtomicBool>) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        // Ready as soon as it runs, leading or standing by: a standby that is not ready would block a
        // Deployment rollout forever, since it cannot lead before the old pod is gone.
        .route(
            "/readyz",
            get(move || {
                let leading = leading.clone();
                async move {
                    if leading.load(Ordering::SeqCst) {
                        "leading"
                    } else {
                        "standing by"
                    }
                }
            }),
        )
        .route("/metrics", get(move || async move { metrics.render() }));
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            tracing::info!(%addr, "health and metrics listening");
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "health endpoint stopped");
            }
        }
        Err(error) => tracing::error!(%addr, %error, "cannot listen for health and metrics"),
    }
}
