//! The health loop of one RedisCluster, beside its reconciles: every second it looks at the primary (its
//! pod, its node, its instance API), remembers in the status since when it is failing, and fails over
//! once [`failover::detect`] says so: record the intent, take the primary out of `-leader`, fence it and
//! wait for proof, choose the replica, promote it. Every step is recorded in `status.failover` first, so
//! a restarted operator's health loop resumes it where it stopped.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use cnredis_api::RedisCluster;
use cnredis_api::cluster::{FailoverProgress, FailoverRecord, PrimaryFailing, condition};
use cnredis_api::names::{
    ANNOTATION_FENCED_INSTANCES, FencedInstances, LABEL_CLUSTER, LABEL_ROLE, REDIS_PORT, ROLE_PRIMARY,
    ROLE_REPLICA, instance_serial, primary_lease,
};
use cnredis_instance_client::wire::InstanceReport;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::failover::{
    self, Candidate, Detection, Failing, Failure, FenceFacts, FenceProof, LeaseFacts, PrimaryFacts,
};
use super::fence;
use super::instance_api::api_target;
use crate::context::Context;
use crate::events::{publish, publish_about};

/// Period of the health loop.
pub const PERIOD: Duration = Duration::from_secs(1);
/// The shortest time between two polls: a burst of pod changes costs one poll every this long.
const MIN_PERIOD: Duration = Duration::from_millis(100);
/// How long one instance API call of the health loop may take: shorter than the period, so a hung
/// instance costs one poll, not the loop.
const CALL_TIMEOUT: Duration = Duration::from_millis(900);
/// How long a promotion may take.
const PROMOTE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the read of the cluster at the start of a poll may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one poll may take, a failover step included (a promotion is bounded by `PROMOTE_TIMEOUT`).
const TICK_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts the health loop of `cluster` unless one runs.
pub fn ensure_running(ctx: &Arc<Context>, cluster: &RedisCluster) {
    let Some(namespace) = cluster.namespace() else {
        return;
    };
    let key = (namespace, cluster.name_any());
    let mut loops = ctx.health_loops.lock().unwrap_or_else(|p| p.into_inner());
    if loops.get(&key).is_some_and(|task| !task.is_finished()) {
        return;
    }
    let task = tokio::spawn(run(ctx.clone(), key.0.clone(), key.1.clone()));
    loops.insert(key, task);
}

async fn run(ctx: Arc<Context>, namespace: String, name: String) {
    let api: Api<RedisCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    tracing::info!(%namespace, cluster = %name, "health loop started");
    // A change of one of the cluster's pods (deleted, terminating, a container stopped) is looked at
    // at once rather than at the next period.
    let pod_changed = Arc::new(tokio::sync::Notify::new());
    let pod_watch = tokio::spawn(watch_pods(
        ctx.clone(),
        namespace.clone(),
        name.clone(),
        pod_changed.clone(),
    ));
    // Every renewal of the primary lease is seen as it happens, so that an unreachable primary's lease
    // proves its fence by this process's own clock (see `failover::SIGHTING_MARGIN`).
    let lease_watch = tokio::spawn(watch_lease(ctx.clone(), namespace.clone(), name.clone()));
    loop {
        let started = tokio::time::Instant::now();
        let mut next = PERIOD;
        match tokio::time::timeout(READ_TIMEOUT, api.get_opt(&name)).await {
            Ok(Ok(Some(cluster))) if cluster.metadata.deletion_timestamp.is_none() => {
                // Bounded as a whole: a hung API server costs this cluster a poll and releases its
                // `acting` lock; every failover step is recorded before it acts, so the next poll
                // resumes where this one was cut.
                match tokio::time::timeout(TICK_TIMEOUT, tick(&ctx, &cluster)).await {
                    Ok(Ok(after)) => next = after,
                    Ok(Err(error)) => tracing::warn!(%namespace, cluster = %name, %error, "health check"),
                    Err(_) => {
                        tracing::warn!(%namespace, cluster = %name, timeout = ?TICK_TIMEOUT, "health check did not finish in time")
                    }
                }
            }
            Ok(Ok(_)) => break,
            Ok(Err(error)) => {
                tracing::warn!(%namespace, cluster = %name, %error, "health loop cannot read the cluster")
            }
            Err(_) => {
                tracing::warn!(%namespace, cluster = %name, timeout = ?READ_TIMEOUT, "health loop cannot read the cluster: no answer")
            }
        }
        tokio::select! {
            () = tokio::time::sleep_until(started + next) => {}
            () = pod_changed.notified() => {
                tokio::time::sleep_until(started + MIN_PERIOD).await;
            }
        }
    }
    pod_watch.abort();
    lease_watch.abort();
    ctx.lease_sightings.forget(&(namespace.clone(), name.clone()));
    ctx.deleted_pods.forget(&(namespace.clone(), name.clone()));
    ctx.recent_moves.forget(&(namespace.clone(), name.clone()));
    ctx.failsafe_told
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&(namespace.clone(), name.clone()));
    tracing::info!(%namespace, cluster = %name, "health loop stopped: the cluster is gone");
}

/// Wakes the health loop on every change of a pod of cluster `name`, and keeps the last version of
/// each deleted pod (`DeletedPods`); restarts its watch on errors.
async fn watch_pods(ctx: Arc<Context>, namespace: String, name: String, changed: Arc<tokio::sync::Notify>) {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let config = watcher::Config::default().labels(&format!("{LABEL_CLUSTER}={name}"));
    let mut events = std::pin::pin!(watcher(pods, config).default_backoff());
    let key = (namespace.clone(), name.clone());
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                ctx.deleted_pods.exists(&key, &pod);
                changed.notify_one();
            }
            Ok(watcher::Event::Delete(pod)) => {
                ctx.deleted_pods.saw_deleted(&key, pod);
                changed.notify_one();
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%namespace, cluster = %name, %error, "pod watch"),
        }
    }
}

/// Notes every version of the primary Lease of cluster `name` as it is written; restarts its watch on
/// errors.
async fn watch_lease(ctx: Arc<Context>, namespace: String, name: String) {
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", primary_lease(&name)));
    let key = (namespace.clone(), name.clone());
    let mut events = std::pin::pin!(watcher(leases, config).default_backoff());
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(lease) | watcher::Event::InitApply(lease)) => {
                ctx.lease_sightings.saw(&key, &lease);
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%namespace, cluster = %name, %error, "lease watch"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

/// Pods named in the fencing annotation, `*` for all; an unreadable annotation fences all.
fn fenced_by_user(cluster: &RedisCluster) -> FencedInstances {
    FencedInstances::parse(
        cluster
            .annotations()
            .get(ANNOTATION_FENCED_INSTANCES)
            .map(String::as_str),
    )
    .unwrap_or(FencedInstances::All)
}

/// One poll of the cluster's primary; returns when to poll again.
async fn tick(ctx: &Arc<Context>, cluster: &RedisCluster) -> Result<Duration, HealthError> {
    let status = cluster.status.clone().unwrap_or_default();
    if status.failover.is_some() {
        resume_failover(ctx, cluster).await?;
        return Ok(PERIOD);
    }
    let Some(primary) = status.current_primary.clone() else {
        return Ok(PERIOD);
    };
    // A primary the user fenced is never failed over. One a switchover is moving away from is watched
    // too: if it dies half-way, the switchover (which needs it to answer) cannot finish, and the
    // failover, which needs only proof, takes over.
    if fenced_by_user(cluster).contains(&primary) {
        if status.primary_failing.is_some() {
            super::status::merge(&ctx.client, cluster, json!({"primaryFailing": null})).await?;
        }
        return Ok(PERIOD);
    }
    let pods = owned_pods(ctx, cluster).await?;
    let facts = primary_facts(ctx, cluster, &pods, &primary).await?;
    tell_failsafe(ctx, cluster, pods.get(&primary), &primary, facts.report.as_ref()).await;
    let previous = status.primary_failing.as_ref().and_then(remembered);
    let delay = Duration::from_secs(cluster.spec.failover.delay_seconds.max(1) as u64);
    let seen = failover::primary_failure(&primary, &facts);
    let now = Timestamp::now();
    let detection = failover::hold_back(
        failover::detect(previous.as_ref(), &primary, seen, now, delay),
        &facts,
    );
    let next = failover::next_poll(&detection, now, delay, PERIOD, MIN_PERIOD);
    match detection {
        Detection::Healthy => {
            if let Some(failing) = &status.primary_failing {
                super::status::merge(&ctx.client, cluster, json!({"primaryFailing": null})).await?;
                let note = format!(
                    "{primary} serves again ({} since {}); no failover",
                    failing.reason, failing.since.0
                );
                publish(
                    ctx,
                    cluster,
                    EventType::Normal,
                    "PrimaryRecovered",
                    "Detect",
                    &note,
                )
                .await;
            }
        }
        Detection::Failing(failing) => {
            let changed = previous
                .as_ref()
                .is_none_or(|p| p.failure != failing.failure || p.since != failing.since);
            if changed {
                super::status::merge(
                    &ctx.client,
                    cluster,
                    json!({"primaryFailing": failing_status(&failing)}),
                )
                .await?;
                let note = if failing.failure.is_final() {
                    format!("{}; failing over", failing.message)
                } else {
                    format!(
                        "{}; failing over unless it recovers within {} s",
                        failing.message,
                        delay.as_secs()
                    )
                };
                let pod = pods.get(&primary);
                publish_about(
                    ctx,
                    cluster,
                    pod,
                    EventType::Warning,
                    "PrimaryFailing",
                    "Detect",
                    &note,
                )
                .await;
            }
        }
        Detection::FailOver(failing) => {
            if cluster.spec.instances <= 1 {
                // Nothing to fail over to: the reconcile recreates the pod on its volume.
                return Ok(next);
            }
            let _acting = ctx.acting(cluster).lock_owned().await;
            // Decided from the object read before the lock: re-read it, and fail over only if nobody
            // changed the primary meanwhile.
            let api: Api<RedisCluster> =
                Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
            let Some(cluster) = api.get_opt(&cluster.name_any()).await? else {
                return Ok(next);
            };
            let cluster = &cluster;
            let fresh = cluster.status.clone().unwrap_or_default();
            // A switchover that ended while this waited for the lock (completed, or rolled back with
            // `targetPrimary` on the primary again) moved the lease on purpose: the next poll decides
            // from what holds after it.
            if fresh.failover.is_some()
                || fresh.current_primary.as_deref() != Some(primary.as_str())
                || fresh.target_primary != status.target_primary
            {
                return Ok(next);
            }
            let progress = FailoverProgress {
                from: primary.clone(),
                reason: failing.failure.as_str().to_string(),
                since: Time(failing.since),
                started: Time(Timestamp::now()),
                step: "Fencing".to_string(),
                fence_proof: None,
                to: None,
            };
            // Compare-and-swap on the object this decision was made from: a concurrent change of the
            // primary (a reconcile, another operator) makes this write fail and the next poll decide
            // again.
            // The cluster is not Ready and has no writable primary until the failover completes.
            let message = format!("failing over from {primary}: {}", failing.message);
            let cond = conditions_with(
                cluster,
                &[
                    (condition::FAILOVER, true, "FailingOver", &message),
                    (condition::READY, false, "FailingOver", &message),
                    (
                        condition::PRIMARY_AVAILABLE,
                        false,
                        "PrimaryFailed",
                        &failing.message,
                    ),
                ],
            );
            let written = cas_status(
                ctx,
                cluster,
                json!({"primaryFailing": failing_status(&failing), "failover": progress, "phase": "Failing over",
                       "phaseReason": format!("{}: fencing {primary}", failing.message), "conditions": cond}),
            )
            .await?;
            ctx.metrics
                .failover_started(failing.failure.as_str(), elapsed_since(failing.since));
            let note = format!("{}: failing over from {primary}", failing.message);
            publish_about(
                ctx,
                cluster,
                pods.get(&primary),
                EventType::Warning,
                "FailoverStarted",
                "Failover",
                &note,
            )
            .await;
            drive(ctx, &written, &pods).await?;
        }
    }
    Ok(next)
}

/// An Event when the primary's report shows it began or ended holding its lease by failsafe promises
/// (once each, per operator process).
async fn tell_failsafe(
    ctx: &Arc<Context>,
    cluster: &RedisCluster,
    pod: Option<&Pod>,
    primary: &str,
    report: Option<&InstanceReport>,
) {
    let Some(episode) = report.and_then(|r| r.failsafe.as_ref()) else {
        return;
    };
    let key = (cluster.namespace().unwrap_or_default(), cluster.name_any());
    let event = {
        let told = ctx.failsafe_told.lock().unwrap_or_else(|p| p.into_inner());
        failover::failsafe_event(primary, episode, told.get(&key))
    };
    let Some((warning, reason, note)) = event else {
        return;
    };
    let kind = if warning {
        EventType::Warning
    } else {
        EventType::Normal
    };
    publish_about(ctx, cluster, pod, kind, reason, "Failsafe", &note).await;
    ctx.failsafe_told
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, episode.clone());
}

fn remembered(failing: &PrimaryFailing) -> Option<Failing> {
    Some(Failing {
        pod: failing.pod.clone(),
        since: failing.since.0,
        failure: Failure::parse(&failing.reason)?,
        message: failing.message.clone(),
    })
}

fn failing_status(failing: &Failing) -> PrimaryFailing {
    PrimaryFailing {
        pod: failing.pod.clone(),
        since: Time(failing.since),
        reason: failing.failure.as_str().to_string(),
        message: failing.message.clone(),
    }
}

fn elapsed_since(since: Timestamp) -> Duration {
    Timestamp::now().duration_since(since).unsigned_abs()
}

/// Resumes the failover `status.failover` records (from the health loop, or a reconcile).
async fn resume_failover(ctx: &Arc<Context>, cluster: &RedisCluster) -> Result<(), HealthError> {
    let _acting = ctx.acting(cluster).lock_owned().await;
    // Re-read under the lock: another step may have completed it meanwhile.
    let api: Api<RedisCluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let Some(cluster) = api.get_opt(&cluster.name_any()).await? else {
        return Ok(());
    };
    if cluster.status.as_ref().is_none_or(|s| s.failover.is_none()) {
        return Ok(());
    }
    let pods = owned_pods(ctx, &cluster).await?;
    drive(ctx, &cluster, &pods).await
}

/// The pods of `cluster`, by name: labelled with it *and* owned by it (its UID), so that a pod anyone
/// else creates with the right labels is never polled, chosen or promoted.
pub async fn owned_pods(ctx: &Context, cluster: &RedisCluster) -> Result<BTreeMap<String, Pod>, kube::Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let selector = ListParams::default().labels(&format!("{LABEL_CLUSTER}={}", cluster.name_any()));
    let uid = cluster.uid().unwrap_or_default();
    Ok(api
        .list(&selector)
        .await?
        .items
        .into_iter()
        .filter(|pod| super::observe::owned_by(pod, &uid))
        .filter(|pod| instance_serial(&cluster.name_any(), &pod.name_any()).is_some())
        .map(|pod| (pod.name_any(), pod))
        .collect())
}

async fn report_of(ctx: &Context, cluster: &RedisCluster, pod: &Pod) -> Option<InstanceReport> {
    report_within(ctx, cluster, pod, CALL_TIMEOUT).await
}

async fn report_within(
    ctx: &Context,
    cluster: &RedisCluster,
    pod: &Pod,
    timeout: Duration,
) -> Option<InstanceReport> {
    let target = api_target(cluster, pod)?;
    match tokio::time::timeout(timeout, ctx.instance_api.status(&target)).await {
        Ok(Ok(report)) => Some(report),
        _ => None,
    }
}

/// Whether the last version of a deleted pod shows its processes ended: the pod failed or succeeded,
/// or every container it reported is not running. A pod that reported no container proves nothing.
fn stopped_for_good(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Failed" | "Succeeded")) || containers_stopped(pod)
}

fn containers_stopped(pod: &Pod) -> bool {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    !statuses.is_empty()
        && statuses
            .iter()
            .all(|c| c.state.as_ref().is_none_or(|s| s.running.is_none()))
}

async fn node_not_ready(ctx: &Context, pod: &Pod) -> Result<bool, kube::Error> {
    let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
        return Ok(false);
    };
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let Some(node) = nodes.get_opt(&node).await? else {
        return Ok(true);
    };
    Ok(node
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status != "True"))
}

async fn primary_facts(
    ctx: &Context,
    cluster: &RedisCluster,
    pods: &BTreeMap<String, Pod>,
    primary: &str,
) -> Result<PrimaryFacts, kube::Error> {
    let Some(pod) = pods.get(primary) else {
        return Ok(PrimaryFacts::default());
    };
    let (report, node_not_ready) = tokio::join!(report_of(ctx, cluster, pod), node_not_ready(ctx, pod));
    let key = (cluster.namespace().unwrap_or_default(), cluster.name_any());
    let (lease_renewed_ago, lease_duration) = ctx.lease_sightings.renewed_by(&key, primary);
    Ok(PrimaryFacts {
        lease_renewed_ago,
        lease_duration,
        pod_exists: true,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        pod_failed: pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"),
        containers_stopped: containers_stopped(pod),
        node_not_ready: node_not_ready?,
        report,
    })
}

/// One pass over a recorded failover: fence with proof, choose, promote, complete. Returns when a step
/// must wait (the next poll comes back) or the failover is complete.
async fn drive(
    ctx: &Arc<Context>,
    cluster: &RedisCluster,
    pods: &BTreeMap<String, Pod>,
) -> Result<(), HealthError> {
    let status = cluster.status.clone().unwrap_or_default();
    let Some(progress) = status.failover.clone() else {
        return Ok(());
    };
    let from = progress.from.clone();
    if fenced_by_user(cluster).contains(&from) && progress.to.is_none() {
        // The user fenced the failing primary meanwhile: the failover stops; the user decides.
        super::status::merge(&ctx.client, cluster, json!({"failover": null})).await?;
        let note =
            format!("failover from {from} stopped: the cnredis.io/fencedInstances annotation names it");
        publish(
            ctx,
            cluster,
            EventType::Normal,
            "FailoverStopped",
            "Failover",
            &note,
        )
        .await;
        return Ok(());
    }
    let old_pod = pods.get(&from);

    // The old primary leaves `-leader` first, whatever happens next; a stand-in takes its place just
    // before, so that the Service proxies take both changes in one sync and `-leader` is never empty.
    let stand_in = if progress.to.is_none() {
        label_stand_in(ctx, cluster, pods, &from).await?
    } else {
        None
    };
    if let Some(pod) = old_pod
        && has_role(pod, ROLE_PRIMARY)
    {
        set_role(ctx, cluster, &from, None).await?;
    }

    let proof = match progress.fence_proof.as_deref() {
        Some(proof) => proof.to_string(),
        None => {
            let facts = fence_facts(ctx, cluster, old_pod, &from).await?;
            match failover::fence_proof(&from, &facts, Timestamp::now()) {
                Ok(proof) => {
                    // The lease ran out, but a manager that is hung while its server runs did not fence
                    // it: the operator does, before the proof is recorded and the offsets compared.
                    let last_known = old_pod.cloned().or_else(|| {
                        let key = (cluster.namespace().unwrap_or_default(), cluster.name_any());
                        ctx.deleted_pods.last_of(&key, &from)
                    });
                    let server = match (proof, last_known) {
                        (FenceProof::LeaseExpired, Some(pod)) => fence_server_of(ctx, cluster, &pod).await,
                        _ => String::new(),
                    };
                    super::status::merge(
                        &ctx.client,
                        cluster,
                        json!({"failover": {"fenceProof": proof.as_str()}}),
                    )
                    .await?;
                    let note = format!("{from} takes no writes: {}{server}", proof_sentence(proof));
                    publish_about(
                        ctx,
                        cluster,
                        old_pod,
                        EventType::Normal,
                        "PrimaryFenced",
                        "Fence",
                        &note,
                    )
                    .await;
                    crate::failpoint::exit_at(ctx, cluster, crate::failpoint::FAILOVER_FENCED).await;
                    proof.as_str().to_string()
                }
                Err(waiting) => {
                    set_phase_reason(ctx, cluster, &status, &waiting).await?;
                    return Ok(());
                }
            }
        }
    };

    let to = match progress.to.clone() {
        Some(to) => to,
        None => match choose(
            ctx,
            cluster,
            pods,
            &from,
            Timestamp::now().duration_since(progress.started.0),
        )
        .await
        {
            Ok(to) => {
                if FenceProof::parse(&proof).is_some_and(FenceProof::allows_lease_handover) {
                    hand_over_lease(ctx, cluster, &from, &to).await?;
                }
                super::status::merge(
                    &ctx.client,
                    cluster,
                    json!({"targetPrimary": to, "failover": {"to": to, "step": "Promoting"},
                           "phaseReason": format!("promoting {to} in place of {from}")}),
                )
                .await?;
                crate::failpoint::exit_at(ctx, cluster, crate::failpoint::FAILOVER_CHOSEN).await;
                to
            }
            Err(not_chosen) => {
                // Waiting for replicas is part of a failover under way; no replica to promote stops it.
                let (why, under_way, reason, event_type, event) = match &not_chosen {
                    NotChosen::Waiting(why) => (
                        why,
                        true,
                        "WaitingForReplicas",
                        EventType::Normal,
                        "FailoverWaiting",
                    ),
                    NotChosen::Blocked(why) => {
                        (why, false, "NoCandidate", EventType::Warning, "FailoverBlocked")
                    }
                };
                if status.phase_reason.as_deref() != Some(why.as_str()) {
                    let cond = failover_condition(cluster, under_way, reason, why);
                    super::status::merge(
                        &ctx.client,
                        cluster,
                        json!({"phaseReason": why, "conditions": cond}),
                    )
                    .await?;
                    let note = format!("{from} stays fenced: {why}");
                    publish(ctx, cluster, event_type, event, "Failover", &note).await;
                }
                return Ok(());
            }
        },
    };

    let Some(target) = pods.get(&to).and_then(|pod| api_target(cluster, pod)) else {
        set_phase_reason(
            ctx,
            cluster,
            &status,
            &format!("waiting for {to} to have an address"),
        )
        .await?;
        return Ok(());
    };
    // Again at every attempt: a handover that lost a race with a renewal is retried, never left undone.
    if FenceProof::parse(&proof).is_some_and(FenceProof::allows_lease_handover) {
        hand_over_lease(ctx, cluster, &from, &to).await?;
    }
    // Labelled before its promotion, which the Service proxies then follow in parallel (see switchover);
    // then a stand-in that was not chosen leaves `-leader`.
    set_role(ctx, cluster, &to, Some(ROLE_PRIMARY)).await?;
    let stand_ins = pods
        .values()
        .filter(|pod| has_role(pod, ROLE_PRIMARY))
        .map(|pod| pod.name_any())
        .chain(stand_in)
        .filter(|name| *name != to && *name != from);
    for name in stand_ins.collect::<std::collections::BTreeSet<_>>() {
        set_role(ctx, cluster, &name, Some(ROLE_REPLICA)).await?;
    }
    match tokio::time::timeout(PROMOTE_TIMEOUT, ctx.instance_api.promote(&target)).await {
        Ok(Ok(_)) => crate::failpoint::exit_at(ctx, cluster, crate::failpoint::FAILOVER_PROMOTED).await,
        Ok(Err(error)) => {
            let why = format!("promoting {to}: {error}");
            set_phase_reason(ctx, cluster, &status, &why).await?;
            return Ok(());
        }
        Err(_) => {
            let why = format!("promoting {to}: no answer within {PROMOTE_TIMEOUT:?}");
            set_phase_reason(ctx, cluster, &status, &why).await?;
            return Ok(());
        }
    }

    let completed = Timestamp::now();
    let unavailable = completed.duration_since(progress.since.0).unsigned_abs();
    let record = FailoverRecord {
        from: from.clone(),
        to: to.clone(),
        reason: progress.reason.clone(),
        since: progress.since.clone(),
        started: progress.started.clone(),
        completed: Time(completed),
        fence_proof: proof.clone(),
        write_unavailable_ms: unavailable.as_millis() as i64,
    };
    let cond = failover_condition(
        cluster,
        false,
        "FailoverCompleted",
        &format!("failed over from {from} to {to} ({})", progress.reason),
    );
    super::status::merge(
        &ctx.client,
        cluster,
        json!({
            "currentPrimary": to,
            "currentPrimaryTimestamp": completed,
            "failover": null,
            "primaryFailing": null,
            "lastFailover": record,
            "conditions": cond,
            "phaseReason": format!("{to} was promoted in place of {from}"),
        }),
    )
    .await?;
    ctx.metrics.failover_completed(
        &progress.reason,
        completed.duration_since(progress.started.0).unsigned_abs(),
        unavailable,
    );
    let note = format!(
        "{to} is the primary in place of {from} ({}; fence proof: {proof}); {} ms from the first failing poll",
        progress.reason,
        unavailable.as_millis()
    );
    publish_about(
        ctx,
        cluster,
        pods.get(&to),
        EventType::Normal,
        "FailoverCompleted",
        "Failover",
        &note,
    )
    .await;
    tracing::info!(cluster = %cluster.name_any(), %from, %to, reason = %progress.reason, %proof,
        unavailable_ms = unavailable.as_millis() as u64, "failover completed");
    Ok(())
}

fn proof_sentence(proof: FenceProof) -> &'static str {
    match proof {
        FenceProof::Acknowledged => "its instance manager acknowledged the fence",
        FenceProof::PodGone => "its pod is gone",
        FenceProof::LeaseExpired => "its primary lease ran out",
    }
}

/// Fences the old primary's server through its Redis port (`fence::fence_server`); the words the
/// `PrimaryFenced` Event adds: what became of the server.
async fn fence_server_of(ctx: &Context, cluster: &RedisCluster, pod: &Pod) -> String {
    let Some(ip) = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse::<IpAddr>().ok())
    else {
        return "; its pod has no IP, so no server to fence".to_string();
    };
    let namespace = cluster.namespace().unwrap_or_default();
    let password = if cluster.spec.auth.enabled {
        let secret = super::resources::auth_secret_name(cluster);
        match crate::credentials::read_password(&ctx.client, &namespace, &secret).await {
            Ok(password) => password,
            Err(error) => return format!("; its server not fenced by the operator: {error}"),
        }
    } else {
        None
    };
    let address = SocketAddr::new(ip, REDIS_PORT);
    match tokio::time::timeout(3 * fence::SERVER_TIMEOUT, fence::fence_server(address, password)).await {
        Ok(Ok(())) => "; its server, still running, fenced by the operator".to_string(),
        Ok(Err(error)) => {
            tracing::info!(pod = %pod.name_any(), %error, "the old primary's server was not fenced");
            format!("; its server did not take the operator's fence ({error})")
        }
        Err(_) => "; its server does not answer".to_string(),
    }
}

/// Gathers the proofs that the old primary takes no writes: its pod gone, its lease run out, or else a
/// fence acknowledged through its API. A fence call to an unreachable pod ends by the time its lease
/// proves the fence, so that the proof never waits for a timeout.
async fn fence_facts(
    ctx: &Context,
    cluster: &RedisCluster,
    pod: Option<&Pod>,
    from: &str,
) -> Result<FenceFacts, kube::Error> {
    // Re-read the pod: only its absence now proves anything (while a failover is recorded, the
    // reconcile does not recreate it, and a pod that boots meanwhile boots fenced).
    let namespace = cluster.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), &namespace);
    let lease_name = primary_lease(&cluster.name_any());
    let (pod_now, lease) = tokio::try_join!(pods.get_opt(from), leases.get_opt(&lease_name))?;
    let key = (namespace, cluster.name_any());
    // A pod gone proves its processes stopped only if the kubelet said so before the object went away.
    let deleted = pod_now
        .is_none()
        .then(|| ctx.deleted_pods.last_of(&key, from))
        .flatten();
    let mut facts = FenceFacts {
        acknowledged: false,
        pod_gone: pod_now.is_none(),
        pod_stopped: deleted.as_ref().is_some_and(stopped_for_good),
        lease: lease.map(|lease| {
            let unchanged_for = ctx.lease_sightings.saw(&key, &lease);
            let spec = lease.spec.unwrap_or_default();
            LeaseFacts {
                holder: spec.holder_identity,
                renewed: spec.renew_time.map(|t| t.0),
                duration: Duration::from_secs(spec.lease_duration_seconds.unwrap_or(15).max(0) as u64),
                unchanged_for,
            }
        }),
    };
    let waiting = match failover::fence_proof(from, &facts, Timestamp::now()) {
        Ok(_) => return Ok(facts),
        Err(_) => failover::lease_proof_in(&facts, Timestamp::now()),
    };
    // A pod deleted by force may still run at its last address: a fence there is proof as any other.
    if let Some(target) = pod.or(deleted.as_ref()).and_then(|pod| api_target(cluster, pod)) {
        let timeout = waiting.map_or(CALL_TIMEOUT * 2, |left| {
            left.clamp(CALL_TIMEOUT / 9, CALL_TIMEOUT * 2)
        });
        facts.acknowledged = matches!(
            tokio::time::timeout(timeout, ctx.instance_api.fence(&target)).await,
            Ok(Ok(result)) if result.fenced
        );
    }
    Ok(facts)
}

/// How long the instances may take to answer for the choice of a stand-in.
const STAND_IN_POLL: Duration = Duration::from_millis(300);

/// Labels a replica `primary` in place of the old primary while its fence is proven and the replica to
/// promote chosen, unless one is already: the replica the failover would choose now among those that
/// answer at once, which it usually promotes in the end. Until then it refuses writes (`READONLY`), as
/// the fenced primary does, so that clients of `-leader` retry at once rather than be refused by the
/// Service proxies, which costs a client a second per attempt (docs/development.md); and once it is
/// promoted, the proxies already route to it. Returns the replica it labelled.
async fn label_stand_in(
    ctx: &Context,
    cluster: &RedisCluster,
    pods: &BTreeMap<String, Pod>,
    from: &str,
) -> Result<Option<String>, kube::Error> {
    let others: Vec<&Pod> = pods.values().filter(|pod| pod.name_any() != from).collect();
    if others.iter().any(|pod| has_role(pod, ROLE_PRIMARY)) {
        return Ok(None);
    }
    let polls = poll_candidates(ctx, cluster, &others, STAND_IN_POLL).await;
    let names: Vec<String> = others.iter().map(|pod| pod.name_any()).collect();
    let fenced = fenced_by_user(cluster);
    let cluster_name = cluster.name_any();
    let candidates: Vec<Candidate<'_>> = others
        .iter()
        .zip(&names)
        .zip(&polls)
        .map(|((pod, name), (report, node_ready))| {
            candidate(
                &cluster_name,
                &fenced,
                name,
                Some(pod),
                report.as_ref(),
                *node_ready,
            )
        })
        .collect();
    let Ok(name) = failover::choose_failover_target(lineage_of(cluster, from).as_deref(), &candidates) else {
        return Ok(None);
    };
    set_role(ctx, cluster, &name, Some(ROLE_PRIMARY)).await?;
    Ok(Some(name))
}

/// The replication ID the status last recorded for the old primary `from`.
fn lineage_of(cluster: &RedisCluster, from: &str) -> Option<String> {
    cluster
        .status
        .as_ref()
        .and_then(|s| s.instances_status.iter().find(|i| i.name == from))
        .and_then(|i| i.replication_id.clone())
}

/// Why no replica is chosen yet.
enum NotChosen {
    /// Replicas that may hold writes the others lack have not answered: the choice waits for them, for
    /// a bounded time.
    Waiting(String),
    /// No replica may be promoted.
    Blocked(String),
}

/// Polls every other instance and chooses the one to promote.
async fn choose(
    ctx: &Context,
    cluster: &RedisCluster,
    pods: &BTreeMap<String, Pod>,
    from: &str,
    waited: jiff::SignedDuration,
) -> Result<String, NotChosen> {
    let fenced = fenced_by_user(cluster);
    let others: Vec<&Pod> = pods.values().filter(|pod| pod.name_any() != from).collect();
    let polls = poll_candidates(ctx, cluster, &others, CALL_TIMEOUT).await;
    let names: Vec<String> = others.iter().map(|pod| pod.name_any()).collect();
    // Instances the status knows whose pod is gone (all deleted at once, being recreated) count too.
    let podless: Vec<String> = cluster
        .status
        .iter()
        .flat_map(|s| s.instances_status.iter().map(|i| i.name.clone()))
        .filter(|name| name != from && !pods.contains_key(name))
        .collect();
    let cluster_name = cluster.name_any();
    let candidate =
        |name, pod, report, node_ready| candidate(&cluster_name, &fenced, name, pod, report, node_ready);
    let candidates: Vec<Candidate<'_>> = others
        .iter()
        .zip(&names)
        .zip(&polls)
        .map(|((pod, name), (report, node_ready))| candidate(name, Some(pod), report.as_ref(), *node_ready))
        .chain(podless.iter().map(|name| candidate(name, None, None, true)))
        .collect();
    let absent = failover::replicas_to_wait_for(&candidates);
    if !absent.is_empty() && waited.unsigned_abs() < failover::WAIT_FOR_REPLICAS {
        return Err(NotChosen::Waiting(format!(
            "waiting up to {}s for {} to answer before choosing: a write acknowledged by one replica only may be there",
            failover::WAIT_FOR_REPLICAS.as_secs(),
            absent.join(", ")
        )));
    }
    failover::choose_failover_target(lineage_of(cluster, from).as_deref(), &candidates)
        .map_err(|failover::NoCandidate(why)| NotChosen::Blocked(why))
}

/// Polls each of `pods`: its instance's report (within `timeout`) and whether its node is Ready (true
/// when that cannot be read).
async fn poll_candidates(
    ctx: &Context,
    cluster: &RedisCluster,
    pods: &[&Pod],
    timeout: Duration,
) -> Vec<(Option<InstanceReport>, bool)> {
    futures::future::join_all(pods.iter().map(|pod| async move {
        let (report, node_not_ready) = tokio::join!(
            report_within(ctx, cluster, pod, timeout),
            node_not_ready(ctx, pod)
        );
        (report, !node_not_ready.unwrap_or(false))
    }))
    .await
}

/// One instance as a failover candidate; `pod` None: its pod is gone.
fn candidate<'a>(
    cluster_name: &str,
    fenced: &FencedInstances,
    name: &'a str,
    pod: Option<&Pod>,
    report: Option<&'a InstanceReport>,
    node_ready: bool,
) -> Candidate<'a> {
    let fenced_by_user = fenced.contains(name);
    Candidate {
        node_ready,
        name,
        serial: instance_serial(cluster_name, name).unwrap_or(u32::MAX),
        eligible_pod: pod.is_some_and(|pod| pod.metadata.deletion_timestamp.is_none()) && !fenced_by_user,
        fenced_by_user,
        report,
    }
}

/// Hands the primary lease to `to`, only while `from` (proven fenced) or nobody holds it: a compare-and-
/// swap on the Lease read here, so that a concurrent renewal by anyone wins.
pub async fn hand_over_lease(
    ctx: &Context,
    cluster: &RedisCluster,
    from: &str,
    to: &str,
) -> Result<(), kube::Error> {
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let name = primary_lease(&cluster.name_any());
    // A conflict is a renewal by the fenced old primary (its server, fenced, still reports primary)
    // between the read and the write: read again and retry, so the promotion does not find the lease
    // still held by it.
    for _ in 0..HANDOVER_ATTEMPTS {
        let Some(mut lease) = api.get_opt(&name).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        match spec.holder_identity.as_deref() {
            Some(holder) if holder == to => return Ok(()),
            Some(holder) if holder != from => return Ok(()),
            _ => {}
        }
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(Timestamp::now());
        spec.holder_identity = Some(to.to_string());
        spec.renew_time = Some(now.clone());
        spec.acquire_time = Some(now);
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        lease.spec = Some(spec);
        match api.replace(&name, &PostParams::default(), &lease).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(response)) if response.code == 409 => continue,
            Err(error) => return Err(error),
        }
    }
    tracing::warn!(cluster = %cluster.name_any(), %from, %to, "the primary lease kept changing during its handover; the next poll tries again");
    Ok(())
}

/// Read-modify-write attempts of one lease handover.
const HANDOVER_ATTEMPTS: usize = 3;

/// Whether `pod` carries the `cnredis.io/role` label `role`.
pub fn has_role(pod: &Pod, role: &str) -> bool {
    pod.labels().get(LABEL_ROLE).is_some_and(|r| r == role)
}

/// Sets (or removes) a pod's role label at once.
pub async fn set_role(
    ctx: &Context,
    cluster: &RedisCluster,
    pod: &str,
    role: Option<&str>,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let patch = json!({"metadata": {"labels": {LABEL_ROLE: role}}});
    match api
        .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(response)) if response.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}

/// Merges `status` only if the cluster is unchanged since `cluster` was read; returns the new object.
async fn cas_status(
    ctx: &Context,
    cluster: &RedisCluster,
    status: serde_json::Value,
) -> Result<RedisCluster, kube::Error> {
    let api: Api<RedisCluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let patch = json!({"metadata": {"resourceVersion": cluster.resource_version()}, "status": status});
    api.patch_status(
        &cluster.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
}

async fn set_phase_reason(
    ctx: &Context,
    cluster: &RedisCluster,
    status: &cnredis_api::RedisClusterStatus,
    reason: &str,
) -> Result<(), kube::Error> {
    if status.phase_reason.as_deref() == Some(reason) {
        return Ok(());
    }
    super::status::merge(
        &ctx.client,
        cluster,
        json!({"phase": "Failing over", "phaseReason": reason}),
    )
    .await
}

/// The conditions with `Failover` set as given (the others kept).
fn failover_condition(
    cluster: &RedisCluster,
    ok: bool,
    reason: &str,
    message: &str,
) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    conditions_with(cluster, &[(condition::FAILOVER, ok, reason, message)])
}

/// The cluster's conditions with these `(type, ok, reason, message)` set, the others kept.
fn conditions_with(
    cluster: &RedisCluster,
    set: &[(&str, bool, &str, &str)],
) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    let old = cluster.status.clone().unwrap_or_default().conditions;
    set.iter().fold(old, |conditions, (type_, ok, reason, message)| {
        crate::conditions::set(
            &conditions,
            type_,
            *ok,
            reason,
            message,
            cluster.metadata.generation,
        )
    })
}
