//! Faults the chaos suite injects into the operator: compiled only with the `failpoints` feature (the
//! build `make build` makes for the tests), absent from any other build.
//!
//! The annotation [`ANNOTATION`] on a RedisCluster names one step of a switchover or a failover (the
//! `STEP_*` constants); the operator, reaching that step for that cluster, removes the annotation and
//! exits at once, as if killed there. Its successor (the Deployment's restarted container) finds the
//! annotation gone and must resume the switchover or failover from what the status, the Lease and the
//! labels say.

use cnredis_api::RedisCluster;

use crate::context::Context;

/// The annotation that arms the failpoint: its value is the step to exit at.
pub const ANNOTATION: &str = "cnredis.io/failpoint-exit";

/// A switchover, after the primary is fenced and `-leader` moved, before the target catches up.
pub const SWITCHOVER_FENCED: &str = "switchover-fenced";
/// A switchover, after the Lease moved to the target, before its promotion.
pub const SWITCHOVER_LEASE_MOVED: &str = "switchover-lease-moved";
/// A switchover, after the target's promotion, before `currentPrimary` names it.
pub const SWITCHOVER_PROMOTED: &str = "switchover-promoted";
/// A failover, after the old primary's fence is proven and recorded, before a replica is chosen.
pub const FAILOVER_FENCED: &str = "failover-fenced";
/// A failover, after the new primary is chosen and recorded, before its promotion.
pub const FAILOVER_CHOSEN: &str = "failover-chosen";
/// A failover, after the promotion, before the failover is recorded complete.
pub const FAILOVER_PROMOTED: &str = "failover-promoted";

/// Exits the process if `cluster` arms the failpoint `step`, once the annotation is removed.
#[cfg(feature = "failpoints")]
pub async fn exit_at(ctx: &Context, cluster: &RedisCluster, step: &str) {
    use kube::ResourceExt;
    use kube::api::{Api, Patch, PatchParams};

    if cluster.annotations().get(ANNOTATION).map(String::as_str) != Some(step) {
        return;
    }
    let api: Api<RedisCluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let patch = serde_json::json!({"metadata": {"annotations": {ANNOTATION: null}}});
    match api
        .patch(
            &cluster.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {
            tracing::error!(cluster = %cluster.name_any(), step, "exiting at the armed failpoint");
            std::process::exit(86);
        }
        Err(error) => tracing::warn!(%error, step, "cannot disarm the failpoint; not exiting"),
    }
}

/// Exits the process if `cluster` arms the failpoint `step`: never, in a build without failpoints.
#[cfg(not(feature = "failpoints"))]
pub async fn exit_at(_ctx: &Context, _cluster: &RedisCluster, _step: &str) {}
