//! `promote CLUSTER INSTANCE`: a planned switchover to a chosen replica. The plugin checks what it can
//! see and sets `status.targetPrimary`; the operator fences the primary, waits for the target to catch
//! up, hands it the lease and promotes it (docs/runbooks/switchover.md).

use std::time::{Duration, Instant};

use cnredis_api::RedisCluster;
use cnredis_api::names::{ANNOTATION_FENCED_INSTANCES, FencedInstances};
use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::connect::Kube;
use crate::observe;
use crate::view::Answer;

/// Why a promotion is refused before anything is changed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0} is not an instance of cluster {1} (instances: {2})")]
    UnknownInstance(String, String, String),
    #[error("cluster {0} has no primary: a failover chooses one, a switchover cannot")]
    NoPrimary(String),
    #[error("a failover is in progress ({0}); wait for it to complete")]
    FailoverInProgress(String),
    #[error("a switchover to {0} is already in progress")]
    SwitchoverInProgress(String),
    #[error(
        "{0} is fenced (cnredis.io/fencedInstances): lift the fence first with `kubectl cnredis fence off`"
    )]
    Fenced(String),
    #[error("{0} is not in sync: {1}")]
    NotInSync(String, String),
}

/// Whether `target` may be promoted, judged from the cluster and the target's own report.
/// `Ok(false)` means it already is the primary.
pub fn check(cluster: &RedisCluster, target: &str, answer: Option<&Answer>) -> Result<bool, Refusal> {
    let name = cluster.name_any();
    let status = cluster.status.clone().unwrap_or_default();
    let known: Vec<&str> = status.instances_status.iter().map(|i| i.name.as_str()).collect();
    if !known.contains(&target) && answer.is_none() {
        return Err(Refusal::UnknownInstance(target.into(), name, known.join(", ")));
    }
    if let Some(failover) = &status.failover {
        return Err(Refusal::FailoverInProgress(format!(
            "{} failing: {}",
            failover.from, failover.step
        )));
    }
    if let Some(failing) = &status.primary_failing {
        return Err(Refusal::FailoverInProgress(format!(
            "{} failing since {}: {}",
            failing.pod, failing.since.0, failing.reason
        )));
    }
    let Some(current) = status.current_primary.as_deref() else {
        return Err(Refusal::NoPrimary(name));
    };
    if let Some(pending) = status.target_primary.as_deref().filter(|t| *t != current) {
        return Err(Refusal::SwitchoverInProgress(pending.into()));
    }
    if current == target {
        return Ok(false);
    }
    let fenced = FencedInstances::parse(
        cluster
            .annotations()
            .get(ANNOTATION_FENCED_INSTANCES)
            .map(String::as_str),
    )
    .unwrap_or(FencedInstances::All);
    if fenced.contains(target) {
        return Err(Refusal::Fenced(target.into()));
    }
    let lag_bound = i64::from(cluster.spec.failover.max_sync_replica_lag_seconds);
    let report = match answer {
        Some(Answer::Report(report)) => report,
        Some(Answer::Error(error)) => {
            return Err(Refusal::NotInSync(
                target.into(),
                format!("its instance manager does not answer ({error})"),
            ));
        }
        None => return Err(Refusal::NotInSync(target.into(), "it has no pod".into())),
    };
    report
        .not_in_sync(current, lag_bound)
        .map_or(Ok(true), |why| Err(Refusal::NotInSync(target.into(), why)))
}

pub struct PromoteArgs<'a> {
    pub cluster: &'a str,
    pub instance: &'a str,
    pub wait: bool,
    pub timeout: Duration,
    pub force: bool,
}

pub async fn run(kube: &Kube, args: PromoteArgs<'_>) -> anyhow::Result<()> {
    let cluster = observe::cluster(kube, args.cluster).await?;
    let answer = match observe::instance_report(&kube.client, &kube.namespace, args.instance).await {
        Ok(report) => Some(Answer::Report(Box::new(report))),
        Err(error) => {
            let pods = observe::pods(kube, &cluster).await?;
            pods.iter()
                .any(|p| p.name_any() == args.instance)
                .then_some(Answer::Error(error))
        }
    };
    match check(&cluster, args.instance, answer.as_ref()) {
        Ok(false) => {
            println!("{} is already the primary of {}", args.instance, args.cluster);
            return Ok(());
        }
        Ok(true) => {}
        Err(refusal @ Refusal::NotInSync(..)) if args.force => {
            eprintln!(
                "warning: {refusal}; promoting anyway (--force): the operator still waits for it to catch up"
            );
        }
        Err(refusal) => anyhow::bail!("refusing to promote: {refusal}"),
    }
    let from = cluster
        .status
        .as_ref()
        .and_then(|s| s.current_primary.clone())
        .unwrap_or_default();
    let started = Timestamp::now();
    let clusters: Api<RedisCluster> = Api::namespaced(kube.client.clone(), &kube.namespace);
    // A precondition on the version checked above: a concurrent request, or a failover the operator
    // started meanwhile, makes this write fail instead of interleaving with it.
    let patch = json!({
        "metadata": {"resourceVersion": cluster.metadata.resource_version},
        "status": {"targetPrimary": args.instance},
    });
    match clusters
        .patch_status(args.cluster, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(response)) if response.code == 409 => anyhow::bail!(
            "refusing to promote: {} changed while the request was checked (another switchover or a failover); look at `kubectl cnredis status {}` and try again",
            args.cluster,
            args.cluster
        ),
        Err(error) => return Err(error.into()),
    }
    println!(
        "switchover of {} from {from} to {} requested",
        args.cluster, args.instance
    );
    if !args.wait {
        return Ok(());
    }
    wait(kube, &args, started).await
}

async fn wait(kube: &Kube, args: &PromoteArgs<'_>, started: Timestamp) -> anyhow::Result<()> {
    let clock = Instant::now();
    let mut last_phase = String::new();
    loop {
        let cluster = observe::cluster(kube, args.cluster).await?;
        let status = cluster.status.clone().unwrap_or_default();
        let phase = status.phase.clone().unwrap_or_default();
        if phase != last_phase {
            println!("  {:>5.1}s  {phase}", clock.elapsed().as_secs_f64());
            last_phase = phase;
        }
        let events = observe::events(kube, "RedisCluster", args.cluster).await;
        let recent = |reason: &str| {
            events.iter().rev().find(|e| {
                e.reason == reason
                    && e.time
                        .as_ref()
                        .is_some_and(|t| t.0.as_second() >= started.as_second() - 1)
            })
        };
        if let Some(failed) = recent("SwitchoverFailed") {
            anyhow::bail!("switchover failed: {}", failed.message);
        }
        if status.current_primary.as_deref() == Some(args.instance) {
            let detail = recent("SwitchoverCompleted").map_or(String::new(), |e| format!(" ({})", e.message));
            println!(
                "{} is the primary of {} after {:.1}s{detail}",
                args.instance,
                args.cluster,
                clock.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if clock.elapsed() > args.timeout {
            anyhow::bail!(
                "{} is not the primary after {}s (phase {last_phase}); the switchover goes on: see `kubectl cnredis status {}`",
                args.instance,
                args.timeout.as_secs(),
                args.cluster
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests;
