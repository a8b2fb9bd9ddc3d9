//! Publishing Events. kube's `Recorder` folds events into one series by type, reason, action and the
//! objects involved — not by message — and keeps the first message: a second switchover within its
//! cache's lifetime showed as "x2" of the first one's message ("pl-3 is the primary" when pl-2 had
//! become it). So the action carries a digest of the message, and only identical messages fold.

use cnredis_api::RedisCluster;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::Resource;
use kube::runtime::events::{Event, EventType};

use crate::context::Context;

/// `action` made specific to `note`: `Switchover` becomes `Switchover-1a2b3c4d`.
pub fn series_action(action: &str, note: &str) -> String {
    let digest = note.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    format!("{action}-{digest:08x}")
}

/// Publishes an Event on `regarding` (about `related`, if any); a failure is logged, never fatal.
pub async fn emit(
    ctx: &Context,
    regarding: &ObjectReference,
    related: Option<ObjectReference>,
    type_: EventType,
    reason: &str,
    action: &str,
    note: &str,
) {
    // The Events API refuses notes longer than 1 kB.
    let note: String = note.chars().take(1024).collect();
    let event = Event {
        type_,
        reason: reason.to_string(),
        action: series_action(action, &note),
        note: Some(note),
        secondary: related,
    };
    if let Err(error) = ctx.recorder.publish(&event, regarding).await {
        tracing::warn!(%error, reason, "cannot publish an event");
    }
}

/// An Event on the cluster.
pub async fn publish(
    ctx: &Context,
    cluster: &RedisCluster,
    type_: EventType,
    reason: &str,
    action: &str,
    note: &str,
) {
    publish_about(ctx, cluster, None, type_, reason, action, note).await
}

/// An Event on the cluster about one of its pods: the pod is the related object, so that events about
/// different pods are not folded into one series.
pub async fn publish_about(
    ctx: &Context,
    cluster: &RedisCluster,
    pod: Option<&Pod>,
    type_: EventType,
    reason: &str,
    action: &str,
    note: &str,
) {
    let related = pod.map(|pod| pod.object_ref(&()));
    emit(
        ctx,
        &cluster.object_ref(&()),
        related,
        type_,
        reason,
        action,
        note,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_identical_messages_share_an_action() {
        let first = series_action("Switchover", "pl-3 is the primary");
        assert_eq!(first, series_action("Switchover", "pl-3 is the primary"));
        assert_ne!(first, series_action("Switchover", "pl-2 is the primary"));
        assert!(
            first.starts_with("Switchover-") && first.len() == "Switchover-".len() + 8,
            "{first}"
        );
    }
}
