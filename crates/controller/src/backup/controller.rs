//! The RedisBackup controller: `Pending` (an instance is chosen, see [`super::choose`]) -> `Running` (the
//! instance manager takes it, `POST /v1/backups`) -> `Completed` | `Failed`. The status names the
//! instance before the call, so an operator restart finds the backup again (`GET /v1/backups/{name}`);
//! an instance manager that forgot it (restarted) is asked again, which is idempotent. Every wait is
//! bounded by `spec.timeoutSeconds`; an ended backup is never retried: create another RedisBackup.

use std::sync::Arc;
use std::time::Duration;

use cnredis_api::RedisCluster;
use cnredis_api::backup::{BackupPhase, DEFAULT_BACKUP_TIMEOUT_SECONDS, RedisBackup, RedisBackupStatus};
use cnredis_instance_client::ClientError;
use cnredis_instance_client::wire::{self, BackupRequest};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::choose::choose;
use super::store::store_location;
use crate::cluster::instance_api::api_target;
use crate::cluster::observe::observe;
use crate::conditions;
use crate::context::Context;

/// How often a running backup is polled, and a pending one tries to find an instance again.
const POLL: Duration = Duration::from_secs(2);
const PENDING_RETRY: Duration = Duration::from_secs(5);
/// Beyond the timeout the instance enforces itself: the instance's own answer arrives first.
const GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("RedisBackup has no namespace")]
    NoNamespace,
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
}

pub async fn reconcile(backup: Arc<RedisBackup>, ctx: Arc<Context>) -> Result<Action, BackupError> {
    let namespace = backup.namespace().ok_or(BackupError::NoNamespace)?;
    let status = backup.status.clone().unwrap_or_default();
    if matches!(status.phase, Some(BackupPhase::Completed | BackupPhase::Failed)) {
        return Ok(Action::await_change());
    }
    let clusters: Api<RedisCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let cluster_name = &backup.spec.cluster.name;
    let Some(cluster) = clusters.get_opt(cluster_name).await? else {
        let why = format!("RedisCluster {cluster_name} does not exist in namespace {namespace}");
        return fail(&ctx, &backup, &status, why).await;
    };
    let Some(config) = &cluster.spec.backup else {
        let why = format!(
            "RedisCluster {cluster_name} has no spec.backup: nothing says where its backups are stored"
        );
        return fail(&ctx, &backup, &status, why).await;
    };
    let location = match store_location(&config.object_store) {
        Ok(location) => location,
        Err(why) => return fail(&ctx, &backup, &status, why).await,
    };
    let timeout = Duration::from_secs(u64::from(
        backup
            .spec
            .timeout_seconds
            .unwrap_or(DEFAULT_BACKUP_TIMEOUT_SECONDS),
    ));
    let request = BackupRequest {
        name: backup.name_any(),
        cluster: cluster_name.clone(),
        cluster_uid: cluster.uid().unwrap_or_default(),
        store: location.clone(),
        timeout_seconds: timeout.as_secs(),
    };

    match (status.phase, &status.instance) {
        (Some(BackupPhase::Running), Some(pod)) => {
            running(&ctx, &backup, &cluster, &status, pod, &request, timeout).await
        }
        _ => {
            let target = backup.spec.target.unwrap_or(config.target);
            let world = observe(&ctx.client, &ctx.instance_api, &cluster).await?;
            let current = cluster.status.as_ref().and_then(|s| s.current_primary.as_deref());
            let choice = match choose(&world.instances, current, target) {
                Ok(choice) => choice,
                Err(why) => {
                    let waited = age(&backup);
                    if waited > timeout {
                        let why = format!("{why} (waited {}s)", waited.as_secs());
                        return fail(&ctx, &backup, &status, why).await;
                    }
                    pending(&ctx, &backup, &status, &why).await?;
                    return Ok(Action::requeue(PENDING_RETRY));
                }
            };
            let Some(pod) = world.pods.get(&choice.pod) else {
                return Ok(Action::requeue(PENDING_RETRY));
            };
            // The instance is recorded before it is asked: a restart in between finds it again.
            let directory = format!(
                "s3://{}/{}",
                location.bucket,
                [location.prefix.as_str(), cluster_name, &request.name]
                    .iter()
                    .filter(|part| !part.is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("/")
            );
            let started = RedisBackupStatus {
                phase: Some(BackupPhase::Running),
                instance: Some(choice.pod.clone()),
                backup_id: Some(request.name.clone()),
                destination_path: Some(format!("{directory}/")),
                started_at: Some(Time(Timestamp::now())),
                conditions: condition(
                    &backup,
                    "Running",
                    &format!("taking the backup on {}", choice.pod),
                ),
                ..RedisBackupStatus::default()
            };
            write_status(&ctx, &backup, &started).await?;
            let role = match choice.role {
                wire::Role::Primary => "primary",
                _ => "replica",
            };
            let note = format!(
                "backing up {} ({role}, replication offset {}) to {directory}/",
                choice.pod, choice.offset
            );
            publish(&ctx, &backup, EventType::Normal, "BackupStarted", &note).await;
            if let Some(target) = api_target(&cluster, pod)
                && let Err(error) = ctx.instance_api.start_backup(&target, &request).await
            {
                tracing::info!(backup = %request.name, %error, "starting the backup: will ask again");
            }
            Ok(Action::requeue(Duration::from_millis(500)))
        }
    }
}

/// Follows a backup an instance is taking.
async fn running(
    ctx: &Context,
    backup: &RedisBackup,
    cluster: &RedisCluster,
    status: &RedisBackupStatus,
    pod_name: &str,
    request: &BackupRequest,
    timeout: Duration,
) -> Result<Action, BackupError> {
    let running_for = status
        .started_at
        .as_ref()
        .map(|t| Duration::from_secs(Timestamp::now().duration_since(t.0).as_secs().max(0) as u64))
        .unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &backup.namespace().unwrap_or_default());
    let pod = pods.get_opt(pod_name).await?;
    let Some(target) = pod
        .as_ref()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .and_then(|p| api_target(cluster, p))
    else {
        let why = format!("pod {pod_name} went away during the backup");
        return fail(ctx, backup, status, why).await;
    };
    let answer = ctx.instance_api.backup(&target, &request.name).await;
    let answer = match answer {
        Err(ClientError::Api { status: 404, .. }) => {
            // Its instance manager restarted (or never got the request): ask again, idempotently.
            tracing::info!(backup = %request.name, pod = pod_name, "the instance does not know the backup: asking again");
            ctx.instance_api.start_backup(&target, request).await
        }
        other => other,
    };
    match answer {
        Ok(report) => match report.phase {
            wire::BackupPhase::Completed => complete(ctx, backup, cluster, status, report).await,
            wire::BackupPhase::Failed => {
                let why = report
                    .error
                    .unwrap_or_else(|| "the instance gave no reason".to_string());
                fail(ctx, backup, status, format!("{pod_name}: {why}")).await
            }
            wire::BackupPhase::Running if running_for > timeout + GRACE => {
                let why = format!("did not complete within {}s ({})", timeout.as_secs(), report.step);
                fail(ctx, backup, status, why).await
            }
            wire::BackupPhase::Running => {
                let progress = format!(
                    "{pod_name}: {}, {} MiB uploaded",
                    report.step,
                    report.uploaded_bytes >> 20
                );
                let mut next = status.clone();
                next.conditions = condition(backup, "Running", &progress);
                if next.conditions != status.conditions {
                    write_status(ctx, backup, &next).await?;
                }
                Ok(Action::requeue(POLL))
            }
        },
        Err(ClientError::Api { status: 409, error }) => {
            fail(
                ctx,
                backup,
                status,
                format!("{pod_name} refused it: {}", error.message),
            )
            .await
        }
        Err(error) if running_for > timeout + GRACE => {
            let why = format!("{pod_name} stopped answering during the backup: {error}");
            fail(ctx, backup, status, why).await
        }
        Err(error) => {
            tracing::info!(backup = %request.name, pod = pod_name, %error, "backup status unavailable");
            Ok(Action::requeue(POLL))
        }
    }
}

async fn complete(
    ctx: &Context,
    backup: &RedisBackup,
    cluster: &RedisCluster,
    status: &RedisBackupStatus,
    report: wire::BackupReport,
) -> Result<Action, BackupError> {
    let Some(manifest) = report.manifest else {
        return fail(ctx, backup, status, "completed without a manifest".to_string()).await;
    };
    let stopped = Timestamp::now();
    let done = RedisBackupStatus {
        phase: Some(BackupPhase::Completed),
        stopped_at: Some(Time(stopped)),
        size_bytes: Some(manifest.size_bytes as i64),
        checksum: Some(manifest.checksum.clone()),
        replication_offset: Some(manifest.replication_offset),
        engine_version: Some(format!("{} {}", manifest.engine, manifest.engine_version)),
        error: None,
        conditions: condition(backup, "Completed", "stored and verified"),
        ..status.clone()
    };
    write_status(ctx, backup, &done).await?;
    let took = took(status, stopped);
    let note = format!(
        "{} bytes ({} keys) from {} in {:.1}s, {}",
        manifest.size_bytes,
        manifest.keys,
        manifest.instance,
        took.as_secs_f64(),
        manifest.checksum
    );
    publish(ctx, backup, EventType::Normal, "BackupCompleted", &note).await;
    ctx.metrics.backup_ended(
        &backup.namespace().unwrap_or_default(),
        &backup.spec.cluster.name,
        took,
        Some(stopped.as_second()),
    );
    let recorded = json!({ "lastSuccessfulBackup": Time(stopped) });
    if let Err(error) = crate::cluster::status::merge(&ctx.client, cluster, recorded).await {
        tracing::warn!(%error, "cannot record the last successful backup");
    }
    retention(ctx, cluster).await;
    Ok(Action::await_change())
}

/// Retention after a completed backup: what it removed, or why it could not, as events on the cluster.
async fn retention(ctx: &Context, cluster: &RedisCluster) {
    match super::cleanup::apply_retention(ctx, cluster).await {
        Ok(gone) if gone.is_empty() => {}
        Ok(gone) => {
            let note = format!(
                "retention policy {}: removed {} from the object store",
                cluster
                    .spec
                    .backup
                    .as_ref()
                    .and_then(|b| b.retention_policy.as_deref())
                    .unwrap_or(""),
                gone.join(", ")
            );
            crate::events::publish(
                ctx,
                cluster,
                EventType::Normal,
                "BackupsRemoved",
                "Retention",
                &note,
            )
            .await;
        }
        Err(why) => {
            let note = format!("retention policy not applied: {why}");
            crate::events::publish(
                ctx,
                cluster,
                EventType::Warning,
                "RetentionFailed",
                "Retention",
                &note,
            )
            .await;
        }
    }
}

async fn fail(
    ctx: &Context,
    backup: &RedisBackup,
    status: &RedisBackupStatus,
    why: String,
) -> Result<Action, BackupError> {
    let stopped = Timestamp::now();
    let failed = RedisBackupStatus {
        phase: Some(BackupPhase::Failed),
        stopped_at: Some(Time(stopped)),
        error: Some(why.clone()),
        conditions: condition(backup, "Failed", &why),
        ..status.clone()
    };
    write_status(ctx, backup, &failed).await?;
    publish(ctx, backup, EventType::Warning, "BackupFailed", &why).await;
    ctx.metrics.backup_ended(
        &backup.namespace().unwrap_or_default(),
        &backup.spec.cluster.name,
        took(status, stopped),
        None,
    );
    Ok(Action::await_change())
}

/// Waiting for an instance: the status says why, once per new reason.
async fn pending(
    ctx: &Context,
    backup: &RedisBackup,
    status: &RedisBackupStatus,
    why: &str,
) -> Result<(), BackupError> {
    let next = RedisBackupStatus {
        phase: Some(BackupPhase::Pending),
        conditions: condition(backup, "Waiting", why),
        ..status.clone()
    };
    if next != *status {
        write_status(ctx, backup, &next).await?;
        publish(ctx, backup, EventType::Normal, "BackupPending", why).await;
    }
    Ok(())
}

fn took(status: &RedisBackupStatus, stopped: Timestamp) -> Duration {
    status
        .started_at
        .as_ref()
        .map(|t| Duration::from_millis(stopped.duration_since(t.0).as_millis().max(0) as u64))
        .unwrap_or_default()
}

/// Time since the RedisBackup was created.
fn age(backup: &RedisBackup) -> Duration {
    backup
        .meta()
        .creation_timestamp
        .as_ref()
        .map(|t| Duration::from_secs(Timestamp::now().duration_since(t.0).as_secs().max(0) as u64))
        .unwrap_or_default()
}

/// The conditions with `Completed` set: True once completed, False with the reason otherwise.
fn condition(backup: &RedisBackup, reason: &str, message: &str) -> Vec<Condition> {
    let old = backup
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    conditions::set(
        old,
        "Completed",
        reason == "Completed",
        reason,
        message,
        backup.meta().generation,
    )
}

async fn write_status(
    ctx: &Context,
    backup: &RedisBackup,
    status: &RedisBackupStatus,
) -> Result<(), BackupError> {
    let api: Api<RedisBackup> = Api::namespaced(ctx.client.clone(), &backup.namespace().unwrap_or_default());
    api.patch_status(
        &backup.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    Ok(())
}

async fn publish(ctx: &Context, backup: &RedisBackup, type_: EventType, reason: &str, note: &str) {
    crate::events::emit(ctx, &backup.object_ref(&()), None, type_, reason, "Backup", note).await
}

#[cfg(test)]
mod tests {
    use cnredis_api::common::ObjectStore;

    use super::*;

    fn store(path: &str) -> ObjectStore {
        serde_json::from_value(json!({
            "destinationPath": path,
            "endpointURL": "http://10.245.0.1:7070",
            "s3Credentials": {
                "accessKeyId": {"name": "s3", "key": "id"},
                "secretAccessKey": {"name": "s3", "key": "key"},
            },
        }))
        .unwrap()
    }

    #[test]
    fn destination_paths_split_into_bucket_and_prefix() {
        let nested = store_location(&store("s3://backups/team-a/cnredis/")).unwrap();
        assert_eq!(
            (nested.bucket.as_str(), nested.prefix.as_str()),
            ("backups", "team-a/cnredis")
        );
        assert_eq!(nested.region, "us-east-1");
        assert_eq!(nested.credentials, "backup");
        let bare = store_location(&store("s3://backups")).unwrap();
        assert_eq!((bare.bucket.as_str(), bare.prefix.as_str()), ("backups", ""));
        assert!(store_location(&store("gs://backups")).is_err());
    }
}
