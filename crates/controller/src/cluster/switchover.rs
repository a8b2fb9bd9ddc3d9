//! A planned switchover, run to its end inside one reconcile (and resumed by the next one if the operator
//! stops half-way, since every step is idempotent and its progress is in the status): take the target
//! out of `-replica` and give the Service proxies a moment (when another replica serves reads), fence
//! the primary (writes stop), move the role label (so `-leader`) to the target, wait for it to reach
//! the primary's replication offset, name it targetPrimary, hand it the primary lease, promote it, name
//! it currentPrimary, demote the old primary to follow it, and lift the old primary's fence. No
//! acknowledged write is lost: the primary accepts none from the fence on.
//!
//! The plan starts a switchover only while its target is in sync. If the target drops out while it
//! catches up (its server restarted, its link went down), the switchover is interrupted at once rather
//! than wait with writes refused: the old primary is unfenced and labelled again, `targetPrimary` still
//! names the target, and the next reconcile starts again once it is in sync.
//!
//! Past the lease handover the switchover is bounded too (`docs/architecture.md`, "Switchover"): a target
//! that cannot be promoted within [`PROMOTE_WITHIN`] is fenced and the switchover rolled back (the old
//! primary named target again, given the lease back, labelled and unfenced); a target that was promoted
//! is the primary from then on, recorded at once, and an old primary that does not answer its demotion
//! follows the new one by itself, from the status, while its fence holds. A switchover resumed after its
//! target was promoted (the operator stopped between the two) finishes forward without the old primary.

use std::time::{Duration, Instant};

use cnredis_api::RedisCluster;
use cnredis_api::names::{REDIS_PORT, ROLE_PRIMARY, ROLE_REPLICA};
use cnredis_instance_client::Target;
use cnredis_instance_client::wire::{DemoteRequest, Role};
use kube::ResourceExt;
use serde_json::json;

use super::health::has_role;
use super::observe::World;
use super::plan::Switchover;
use crate::context::Context;
use crate::failpoint;

/// How long the Service proxies are given to program the target's leaving `-replica` before the fence:
/// kube-proxy programs a change and then waits a second (from the end of that sync) before the next,
/// so two of its syncs, with their own run time, fit in this.
const PROXY_SETTLE: Duration = Duration::from_millis(2200);

/// How long the target is asked, every [`PROMOTE_RETRY`], to promote before the switchover is rolled back.
const PROMOTE_WITHIN: Duration = Duration::from_secs(10);
const PROMOTE_RETRY: Duration = Duration::from_millis(500);

/// How long the target may take to catch up with the fenced primary before the switchover is abandoned
/// (and the primary unfenced).
const CATCH_UP: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum SwitchoverError {
    #[error("{0} has no pod IP")]
    NoAddress(String),
    #[error("instance API of {pod}: {source}")]
    Instance {
        pod: String,
        source: cnredis_instance_client::ClientError,
    },
    #[error(
        "{to} did not catch up with {from} within {within:?} (offsets {to_offset} < {from_offset}); switchover abandoned"
    )]
    CatchUp {
        from: String,
        to: String,
        within: Duration,
        from_offset: i64,
        to_offset: i64,
    },
    #[error(
        "{to} dropped out while catching up with {from} ({why}); {from} takes writes again and the switchover starts again once {to} is in sync"
    )]
    TargetDropped { from: String, to: String, why: String },
    #[error(
        "{to} could not be promoted within {within:?} ({why}); the switchover was rolled back and {from} takes writes again"
    )]
    PromoteFailed {
        from: String,
        to: String,
        within: Duration,
        why: String,
    },
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

impl SwitchoverError {
    /// The switchover is still asked for (`targetPrimary` names its target) and runs again later.
    pub fn is_retried(&self) -> bool {
        matches!(self, Self::TargetDropped { .. })
    }
}

fn target(world: &World, cluster: &RedisCluster, pod: &str) -> Result<(Target, String), SwitchoverError> {
    let no_address = || SwitchoverError::NoAddress(pod.to_string());
    let pod = world.pods.get(pod).ok_or_else(no_address)?;
    let target = super::instance_api::api_target(cluster, pod).ok_or_else(no_address)?;
    let ip = target.address.ip().to_string();
    Ok((target, ip))
}

/// A completed switchover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// How long writes were refused, from the fence to the promotion; unknown for a switchover resumed
    /// after its target was promoted.
    pub unavailable: Option<Duration>,
    /// Why the old primary was not demoted through its API (it follows the new primary by itself).
    pub demotion_deferred: Option<String>,
}

fn call(pod: &str) -> impl FnOnce(cnredis_instance_client::ClientError) -> SwitchoverError + use<> {
    let pod = pod.to_string();
    move |source| SwitchoverError::Instance { pod, source }
}

/// Runs (or resumes) `switchover`.
pub async fn run(
    ctx: &Context,
    cluster: &RedisCluster,
    world: &World,
    switchover: &Switchover,
) -> Result<Completed, SwitchoverError> {
    let api = &ctx.instance_api;
    let Switchover { from, to } = switchover;
    let (to_target, to_ip) = target(world, cluster, to)?;
    let status = cluster.status.clone().unwrap_or_default();
    // Resumed after the target's promotion (the operator stopped before recording it): the old primary
    // lost the lease before the target could take it, so it takes no writes; finish forward without it.
    if status.target_primary.as_deref() == Some(to.as_str())
        && api
            .status(&to_target)
            .await
            .is_ok_and(|report| report.role == Role::Primary)
    {
        let from_target = target(world, cluster, from).ok().map(|(t, _)| t);
        let demotion_deferred = finish(ctx, cluster, world, switchover, from_target.as_ref(), &to_ip).await?;
        return Ok(Completed {
            unavailable: None,
            demotion_deferred,
        });
    }
    // A primary that cannot be fenced through its API is never switched away from: promoting then would
    // risk two writable primaries. A failed primary is the failover's, which waits for proof.
    let from_target = match target(world, cluster, from) {
        Ok((t, _)) => Some(t),
        Err(error) if status.current_primary.as_deref() == Some(from.as_str()) => return Err(error),
        Err(_) => None,
    };
    // The target leaves `-replica` first, while the primary still takes writes, if another replica
    // keeps `-replica` an endpoint. Labelling it `primary` at the fence changes both Services; kube-proxy
    // programs whichever change it sees first and holds the other back a second, so half the time
    // `-leader`'s change waited behind `-replica`'s, with every client on the demoted primary (planned
    // switchover p50 0.3 s, but 1.1 s in 5 runs of 20). Now `-leader` changes alone.
    if from_target.is_some()
        && status.current_primary.as_deref() == Some(from.as_str())
        && world.pods.get(to).is_some_and(|pod| has_role(pod, ROLE_REPLICA))
        && world.instances.iter().any(|i| {
            i.name != *from
                && i.name != *to
                && i.pod.as_ref().is_some_and(|pod| pod.ready)
                && world
                    .pods
                    .get(&i.name)
                    .is_some_and(|pod| has_role(pod, ROLE_REPLICA))
        })
    {
        super::health::set_role(ctx, cluster, to, None).await?;
        tokio::time::sleep(PROXY_SETTLE).await;
    }
    let fenced_at = Instant::now();

    // Fencing and catching up are repeated on a resumed switchover (or one a user asked for by setting
    // targetPrimary): both are idempotent, and promoting is only safe after them.
    if let Some(from_target) = &from_target
        && status.current_primary.as_deref() == Some(from.as_str())
    {
        api.fence(from_target).await.map_err(call(from))?;
        // `-leader` moves to the target now: the Service proxies take most of a second to follow an
        // endpoint change, and they do it while the target catches up and is promoted. Until then a
        // client reaching the target gets READONLY, as one reaching the fenced primary gets NOREPLICAS.
        // The target is labelled first: a Service that is empty for a moment makes the proxies reject
        // connections, and a client refused often enough waits a second per attempt (ICMP replies are
        // rate-limited per client, so its SYNs go unanswered until TCP retransmits them).
        super::health::set_role(ctx, cluster, to, Some(ROLE_PRIMARY)).await?;
        super::health::set_role(ctx, cluster, from, None).await?;
        failpoint::exit_at(ctx, cluster, failpoint::SWITCHOVER_FENCED).await;
        let from_offset = api
            .status(from_target)
            .await
            .map_err(call(from))?
            .replication
            .offset;
        let deadline = Instant::now() + CATCH_UP;
        let lag_bound = i64::from(cluster.spec.failover.max_sync_replica_lag_seconds);
        loop {
            let dropped = match api.status(&to_target).await {
                Ok(report) if report.replication.offset >= from_offset => break,
                Ok(report) => report.not_in_sync(from, lag_bound),
                Err(error) => Some(format!("its instance manager does not answer: {error}")),
            };
            let error = match dropped {
                Some(why) => SwitchoverError::TargetDropped {
                    from: from.clone(),
                    to: to.clone(),
                    why,
                },
                None if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                None => {
                    // Abandoned: the old primary stays the target, so no later reconcile retries blindly.
                    super::status::merge(&ctx.client, cluster, json!({"targetPrimary": from})).await?;
                    let to_offset = api.status(&to_target).await.map_or(-1, |r| r.replication.offset);
                    SwitchoverError::CatchUp {
                        from: from.clone(),
                        to: to.clone(),
                        within: CATCH_UP,
                        from_offset,
                        to_offset,
                    }
                }
            };
            let _ = api.unfence(from_target).await;
            super::health::set_role(ctx, cluster, from, Some(ROLE_PRIMARY)).await?;
            super::health::set_role(ctx, cluster, to, Some(cnredis_api::names::ROLE_REPLICA)).await?;
            return Err(error);
        }
    }
    if status.target_primary.as_deref() != Some(to.as_str()) {
        super::status::merge(&ctx.client, cluster, json!({"targetPrimary": to})).await?;
    }

    // The old primary acknowledged its fence above (or is no longer current): the lease may move.
    super::health::hand_over_lease(ctx, cluster, from, to).await?;
    failpoint::exit_at(ctx, cluster, failpoint::SWITCHOVER_LEASE_MOVED).await;
    let deadline = Instant::now() + PROMOTE_WITHIN;
    loop {
        match api.promote(&to_target).await {
            Ok(promoted) => {
                debug_assert_eq!(promoted.role, Role::Primary);
                break;
            }
            Err(error) if Instant::now() < deadline => {
                tracing::warn!(cluster = %cluster.name_any(), %to, %error, "promotion failed; trying again");
                tokio::time::sleep(PROMOTE_RETRY).await;
            }
            Err(error) => {
                roll_back(ctx, cluster, switchover, from_target.as_ref(), &to_target).await?;
                return Err(SwitchoverError::PromoteFailed {
                    from: from.clone(),
                    to: to.clone(),
                    within: PROMOTE_WITHIN,
                    why: error.to_string(),
                });
            }
        }
    }
    let unavailable = fenced_at.elapsed();
    failpoint::exit_at(ctx, cluster, failpoint::SWITCHOVER_PROMOTED).await;
    let demotion_deferred = finish(ctx, cluster, world, switchover, from_target.as_ref(), &to_ip).await?;
    Ok(Completed {
        unavailable: Some(unavailable),
        demotion_deferred,
    })
}

/// After the target's promotion: it is the primary from now on, recorded first; then the labels, and the
/// old primary's demotion and unfencing. Returns why the demotion was left to the old primary itself.
async fn finish(
    ctx: &Context,
    cluster: &RedisCluster,
    world: &World,
    switchover: &Switchover,
    from_target: Option<&Target>,
    to_ip: &str,
) -> Result<Option<String>, SwitchoverError> {
    let api = &ctx.instance_api;
    let Switchover { from, to } = switchover;
    super::status::merge(
        &ctx.client,
        cluster,
        json!({"currentPrimary": to, "currentPrimaryTimestamp": jiff::Timestamp::now()}),
    )
    .await?;
    super::health::set_role(ctx, cluster, to, Some(ROLE_PRIMARY)).await?;
    if world.pods.contains_key(from) {
        super::health::set_role(ctx, cluster, from, Some(ROLE_REPLICA)).await?;
    }
    let Some(from_target) = from_target else {
        return Ok(None);
    };
    let request = DemoteRequest {
        primary_host: to_ip.to_string(),
        primary_port: REDIS_PORT,
    };
    // The old primary, no longer current, follows the new one by itself from the status; the call only
    // spares it the wait for its watch. Until it follows, its fence stays (lifted by a later reconcile,
    // once it reports itself a replica).
    if let Err(error) = api.demote(from_target, &request).await {
        tracing::warn!(cluster = %cluster.name_any(), %from, %error, "demotion failed; the old primary follows the new one by itself");
        return Ok(Some(format!(
            "{from} did not answer its demotion ({error}); it follows {to} by itself"
        )));
    }
    // The old primary is a replica now; its fence was the operator's request.
    api.unfence(from_target).await.map_err(call(from))?;
    Ok(None)
}

/// The target could not be promoted: it is fenced (should a promotion still go through, it takes no
/// write), the old primary is named target again (no resumed switchover promotes the target), given the
/// lease back, labelled, and unfenced. A step that fails leaves the rest to the next reconcile, which
/// (with targetPrimary back on the old primary) lifts the old primary's fence, or fails over.
async fn roll_back(
    ctx: &Context,
    cluster: &RedisCluster,
    switchover: &Switchover,
    from_target: Option<&Target>,
    to_target: &Target,
) -> Result<(), SwitchoverError> {
    let api = &ctx.instance_api;
    let Switchover { from, to } = switchover;
    api.fence(to_target).await.map_err(call(to))?;
    super::status::merge(&ctx.client, cluster, json!({"targetPrimary": from})).await?;
    super::health::hand_over_lease(ctx, cluster, to, from).await?;
    super::health::set_role(ctx, cluster, from, Some(ROLE_PRIMARY)).await?;
    super::health::set_role(ctx, cluster, to, Some(ROLE_REPLICA)).await?;
    if let Some(from_target) = from_target {
        api.unfence(from_target).await.map_err(call(from))?;
    }
    Ok(())
}
