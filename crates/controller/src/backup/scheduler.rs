//! The RedisScheduledBackup controller: creates a RedisBackup named after each due slot
//! ([`super::schedule::decide`]), never two at a time per schedule, one for any number of slots missed
//! while the operator was down. A RedisBackup of the slot's name that this schedule did not create is
//! left alone (Warning `BackupAdoptionRefused`).

use std::sync::Arc;
use std::time::Duration;

use cnredis_api::RedisCluster;
use cnredis_api::backup::{BackupPhase, RedisBackup, RedisBackupSpec};
use cnredis_api::names::LABEL_CLUSTER;
use cnredis_api::scheduled_backup::{BackupOwnerReference, RedisScheduledBackup, RedisScheduledBackupStatus};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, OwnerReference, Time};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::schedule::{Decision, Facts, Schedule, decide};
use crate::conditions;
use crate::context::Context;

/// Label on the RedisBackups a schedule creates: the schedule's name.
pub const LABEL_SCHEDULED_BACKUP: &str = "cnredis.io/scheduledBackup";
/// Label on them: whether it is the `immediate` one.
pub const LABEL_IMMEDIATE: &str = "cnredis.io/immediateBackup";
/// How often a schedule whose backup is still running looks again.
const RUNNING_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("RedisScheduledBackup has no namespace")]
    NoNamespace,
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
}

pub async fn reconcile(
    scheduled: Arc<RedisScheduledBackup>,
    ctx: Arc<Context>,
) -> Result<Action, ScheduleError> {
    let namespace = scheduled.namespace().ok_or(ScheduleError::NoNamespace)?;
    let name = scheduled.name_any();
    let status = scheduled.status.clone().unwrap_or_default();
    let schedule = match Schedule::parse(&scheduled.spec.schedule) {
        Ok(schedule) => schedule,
        Err(why) => {
            let next = RedisScheduledBackupStatus {
                next_schedule_time: None,
                conditions: condition(&scheduled, false, "InvalidSchedule", &why),
                ..status.clone()
            };
            if next != status {
                write_status(&ctx, &scheduled, &next).await?;
                publish(&ctx, &scheduled, EventType::Warning, "InvalidSchedule", &why).await;
            }
            return Ok(Action::await_change());
        }
    };
    let backups: Api<RedisBackup> = Api::namespaced(ctx.client.clone(), &namespace);
    let mine = backups
        .list(&ListParams::default().labels(&format!("{LABEL_SCHEDULED_BACKUP}={name}")))
        .await?;
    let running = mine
        .items
        .iter()
        .find(|b| {
            !matches!(
                b.status.as_ref().and_then(|s| s.phase),
                Some(BackupPhase::Completed | BackupPhase::Failed)
            )
        })
        .map(|b| b.name_any());
    let now = Timestamp::now();
    let facts = Facts {
        now,
        last_check: status.last_check_time.as_ref().map(|t| t.0),
        suspend: scheduled.spec.suspend,
        immediate: scheduled.spec.immediate,
        running,
    };
    let mut next_status = status.clone();
    let action = match decide(&schedule, &name, &facts) {
        Decision::Suspended => {
            next_status.next_schedule_time = None;
            next_status.conditions = condition(&scheduled, false, "Suspended", "spec.suspend is true");
            Action::await_change()
        }
        Decision::WaitForRunning { .. } => Action::requeue(RUNNING_RETRY),
        Decision::NoNextSlot => {
            next_status.next_schedule_time = None;
            next_status.conditions = condition(
                &scheduled,
                false,
                "NoNextSlot",
                "the schedule matches no future time",
            );
            Action::await_change()
        }
        Decision::Wait { next } => {
            next_status.last_check_time = Some(Time(now));
            next_status.next_schedule_time = Some(Time(next));
            next_status.conditions = condition(&scheduled, true, "Scheduled", "waiting for the next slot");
            until(next, now)
        }
        Decision::Create {
            name: backup_name,
            slot,
            immediate,
            next,
        } => {
            create(&ctx, &scheduled, &namespace, &backup_name, immediate).await?;
            next_status.last_check_time = Some(Time(now));
            next_status.last_schedule_time = Some(Time(slot));
            next_status.last_backup_name = Some(backup_name);
            next_status.next_schedule_time = next.map(Time);
            next_status.conditions = condition(&scheduled, true, "Scheduled", "backup created");
            next.map_or(Action::await_change(), |next| until(next, now))
        }
    };
    if next_status != status {
        write_status(&ctx, &scheduled, &next_status).await?;
    }
    Ok(action)
}

/// Creates the slot's RedisBackup; one that exists already is ours when it carries our label.
async fn create(
    ctx: &Context,
    scheduled: &RedisScheduledBackup,
    namespace: &str,
    backup_name: &str,
    immediate: bool,
) -> Result<(), ScheduleError> {
    let backups: Api<RedisBackup> = Api::namespaced(ctx.client.clone(), namespace);
    let cluster_name = &scheduled.spec.cluster.name;
    let owner = match scheduled.spec.backup_owner_reference {
        BackupOwnerReference::None => None,
        BackupOwnerReference::SelfReference => scheduled.controller_owner_ref(&()),
        BackupOwnerReference::Cluster => {
            let clusters: Api<RedisCluster> = Api::namespaced(ctx.client.clone(), namespace);
            clusters
                .get_opt(cluster_name)
                .await?
                .and_then(|cluster| cluster.controller_owner_ref(&()))
        }
    }
    .map(|owner| OwnerReference {
        controller: Some(false),
        ..owner
    });
    let backup = RedisBackup {
        metadata: ObjectMeta {
            name: Some(backup_name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(
                [
                    (LABEL_CLUSTER.to_string(), cluster_name.clone()),
                    (LABEL_SCHEDULED_BACKUP.to_string(), scheduled.name_any()),
                    (LABEL_IMMEDIATE.to_string(), immediate.to_string()),
                ]
                .into(),
            ),
            owner_references: owner.map(|owner| vec![owner]),
            ..ObjectMeta::default()
        },
        spec: RedisBackupSpec {
            cluster: scheduled.spec.cluster.clone(),
            target: scheduled.spec.target,
            timeout_seconds: None,
        },
        status: None,
    };
    match backups.create(&PostParams::default(), &backup).await {
        Ok(_) => {
            let note = format!("created RedisBackup {backup_name}");
            publish(ctx, scheduled, EventType::Normal, "BackupScheduled", &note).await;
        }
        Err(kube::Error::Api(response)) if response.code == 409 => {
            let existing = backups.get_opt(backup_name).await?;
            let ours = existing
                .as_ref()
                .is_some_and(|b| b.labels().get(LABEL_SCHEDULED_BACKUP) == Some(&scheduled.name_any()));
            if !ours {
                let note = format!(
                    "RedisBackup {backup_name} exists and was not created by this schedule: slot skipped"
                );
                publish(ctx, scheduled, EventType::Warning, "BackupAdoptionRefused", &note).await;
            }
        }
        Err(error) => return Err(error.into()),
    }
    Ok(())
}

fn until(next: Timestamp, now: Timestamp) -> Action {
    let millis = next.duration_since(now).as_millis().max(0) as u64;
    Action::requeue(Duration::from_millis(millis + 50))
}

/// The conditions with `Scheduling` set.
fn condition(scheduled: &RedisScheduledBackup, ok: bool, reason: &str, message: &str) -> Vec<Condition> {
    let old = scheduled
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    conditions::set(
        old,
        "Scheduling",
        ok,
        reason,
        message,
        scheduled.meta().generation,
    )
}

async fn write_status(
    ctx: &Context,
    scheduled: &RedisScheduledBackup,
    status: &RedisScheduledBackupStatus,
) -> Result<(), ScheduleError> {
    let api: Api<RedisScheduledBackup> =
        Api::namespaced(ctx.client.clone(), &scheduled.namespace().unwrap_or_default());
    api.patch_status(
        &scheduled.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    if status.next_schedule_time.is_none() {
        // A merge patch keeps a field it does not name: a suspended schedule has no next slot.
        api.patch_status(
            &scheduled.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "nextScheduleTime": null } })),
        )
        .await?;
    }
    Ok(())
}

async fn publish(
    ctx: &Context,
    scheduled: &RedisScheduledBackup,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    crate::events::emit(
        ctx,
        &scheduled.object_ref(&()),
        None,
        type_,
        reason,
        "Schedule",
        note,
    )
    .await
}
