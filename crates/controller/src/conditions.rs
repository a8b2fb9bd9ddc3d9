//! The one rule every status condition of every resource follows (RedisCluster, RedisBackup,
//! RedisScheduledBackup, and the failover's `Failover` condition):
//!
//! - `lastTransitionTime` moves only when `status` changes (True ↔ False), as the Kubernetes API
//!   conventions define it; a new reason or message under the same status keeps the time, so "Ready
//!   False since 10:02" stays true while the reason for it changes.
//! - the message is cut to [`MESSAGE_LIMIT`] characters (an error chain from an object store can be
//!   kilobytes), ending in `…` when cut.
//! - `observedGeneration` is the generation the condition was computed from.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Longest message a condition carries, in characters.
pub const MESSAGE_LIMIT: usize = 1024;

/// The condition `type_` as it is now, given the conditions it had (`old`).
pub fn condition(
    old: &[Condition],
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let since = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: truncated(message),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// `old` with the condition `type_` set as given: replaced where it was, appended otherwise, every
/// other condition kept as it was.
pub fn set(
    old: &[Condition],
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Vec<Condition> {
    let new = condition(old, type_, ok, reason, message, generation);
    let mut conditions = old.to_vec();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(slot) => *slot = new,
        None => conditions.push(new),
    }
    conditions
}

fn truncated(message: &str) -> String {
    if message.chars().count() <= MESSAGE_LIMIT {
        return message.to_string();
    }
    let mut cut: String = message.chars().take(MESSAGE_LIMIT - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    fn old(type_: &str, status: &str, reason: &str, since: i64) -> Condition {
        Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: "before".to_string(),
            observed_generation: Some(1),
            last_transition_time: at(since),
        }
    }

    #[test]
    fn a_new_reason_under_the_same_status_keeps_the_transition_time() {
        let before = [old("Ready", "False", "Reconciling", 100)];
        let now = condition(&before, "Ready", false, "Failing over", "m", Some(2));
        assert_eq!(now.last_transition_time, at(100));
        assert_eq!(now.reason, "Failing over");
        assert_eq!(now.message, "m");
        assert_eq!(now.observed_generation, Some(2));
    }

    #[test]
    fn a_change_of_status_moves_the_transition_time() {
        let before = [old("Ready", "False", "Reconciling", 100)];
        let now = condition(&before, "Ready", true, "ClusterReady", "", None);
        assert_eq!(now.status, "True");
        assert!(now.last_transition_time.0 > at(100).0);
    }

    #[test]
    fn the_time_of_another_type_is_not_borrowed() {
        let before = [old("Completed", "False", "Running", 100)];
        let now = condition(&before, "Ready", false, "Reconciling", "", None);
        assert_ne!(now.last_transition_time, at(100));
    }

    #[test]
    fn long_messages_are_cut_with_an_ellipsis_on_a_character_boundary() {
        let long = "é".repeat(MESSAGE_LIMIT + 10);
        let now = condition(&[], "Completed", false, "Failed", &long, None);
        assert_eq!(now.message.chars().count(), MESSAGE_LIMIT);
        assert!(now.message.ends_with('…'));
        let exact = "x".repeat(MESSAGE_LIMIT);
        assert_eq!(
            condition(&[], "Completed", false, "Failed", &exact, None).message,
            exact
        );
    }

    #[test]
    fn set_replaces_in_place_and_keeps_the_others() {
        let before = [
            old("Ready", "True", "ClusterReady", 100),
            old("Failover", "False", "Idle", 200),
            old("PrimaryAvailable", "True", "PrimaryServing", 300),
        ];
        let after = set(&before, "Failover", true, "FailingOver", "why", Some(3));
        let types: Vec<&str> = after.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "Failover", "PrimaryAvailable"]);
        assert_eq!(after[0], before[0]);
        assert_eq!(after[2], before[2]);
        assert_eq!(after[1].status, "True");
        let added = set(&before, "Resizing", false, "Done", "", None);
        assert_eq!(added.len(), 4);
        assert_eq!(added[3].type_, "Resizing");
    }
}
