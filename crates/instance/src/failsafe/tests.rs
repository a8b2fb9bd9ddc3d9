use super::*;

const SECOND: Duration = Duration::from_secs(1);

/// A status naming `primary` current primary, with these instances.
fn status(primary: &str, instances: &[&str]) -> RedisClusterStatus {
    let instances: Vec<_> = instances
        .iter()
        .map(|name| serde_json::json!({"name": name, "role": "replica", "ready": true}))
        .collect();
    serde_json::from_value(serde_json::json!({
        "currentPrimary": primary,
        "targetPrimary": primary,
        "instancesStatus": instances,
    }))
    .unwrap()
}

fn addresses(pods: &[(&str, &str)]) -> Vec<(String, IpAddr)> {
    pods.iter()
        .map(|(pod, ip)| (pod.to_string(), ip.parse().unwrap()))
        .collect()
}

fn connected(ip: &str) -> ListedReplica {
    ListedReplica {
        ip: ip.to_string(),
        port: 6379,
        state: "online".to_string(),
        offset: 10,
        lag: 0,
    }
}

fn following(address: &str, link_up: bool) -> ServerRole {
    ServerRole::Replica {
        primary: address.to_string(),
        link_up,
        sync_in_progress: false,
    }
}

#[test]
fn the_primary_asks_every_other_instance_of_its_last_status() {
    let status = status("c-1", &["c-1", "c-2", "c-3"]);
    let known = addresses(&[("c-1", "10.0.0.1"), ("c-2", "10.0.0.2"), ("c-3", "10.0.0.3")]);
    let members = members("c-1", &status, &known, &[connected("10.0.0.2")]).unwrap();
    let pods: Vec<_> = members
        .iter()
        .map(|m| (m.pod.as_str(), m.api.to_string()))
        .collect();
    assert_eq!(
        pods,
        [
            ("c-2", "10.0.0.2:8000".to_string()),
            ("c-3", "10.0.0.3:8000".to_string())
        ]
    );
}

#[test]
fn no_hold_by_promises_when_a_member_cannot_be_asked() {
    let known = addresses(&[("c-1", "10.0.0.1"), ("c-2", "10.0.0.2")]);
    let three = status("c-1", &["c-1", "c-2", "c-3"]);
    let err = members("c-1", &three, &known, &[]).unwrap_err();
    assert!(err.contains("c-3 has no known address"), "{err}");
    // A replica connected to the server that the status does not list (added since it was read).
    let two = status("c-1", &["c-1", "c-2"]);
    let err = members("c-1", &two, &known, &[connected("10.0.0.9")]).unwrap_err();
    assert!(err.contains("10.0.0.9"), "{err}");
    // A pod the status no longer names primary asks nobody.
    let moved = status("c-2", &["c-1", "c-2"]);
    assert!(members("c-1", &moved, &known, &[]).is_err());
}

#[test]
fn a_single_instance_primary_needs_no_promise() {
    let status = status("c-1", &["c-1"]);
    assert_eq!(
        members("c-1", &status, &addresses(&[("c-1", "10.0.0.1")]), &[]),
        Ok(vec![])
    );
}

#[test]
fn a_replica_promises_only_to_the_primary_it_follows_with_no_change_under_way() {
    let primary = "10.0.0.1:6379";
    let healthy = status("c-1", &["c-1", "c-2"]);
    let up = following(primary, true);
    assert_eq!(may_promise("c-2", "c-1", &healthy, Some(primary), &up), Ok(()));

    let cases: Vec<(&str, RedisClusterStatus, ServerRole, &str)> = vec![
        (
            "asked by another pod",
            status("c-3", &["c-1", "c-2", "c-3"]),
            up.clone(),
            "names c-3",
        ),
        (
            "link down",
            healthy.clone(),
            following(primary, false),
            "does not follow",
        ),
        (
            "follows another address",
            healthy.clone(),
            following("10.0.0.3:6379", true),
            "does not follow",
        ),
        (
            "is a primary itself",
            healthy.clone(),
            ServerRole::Primary,
            "does not follow",
        ),
        (
            "a switchover is under way",
            {
                let mut s = healthy.clone();
                s.target_primary = Some("c-2".to_string());
                s
            },
            up.clone(),
            "switchover to c-2",
        ),
        (
            "a failover is under way",
            {
                let mut s = healthy.clone();
                s.failover = Some(failover(None));
                s
            },
            up.clone(),
            "failover from c-1",
        ),
    ];
    for (case, status, role, phrase) in cases {
        let err = may_promise("c-2", "c-1", &status, Some(primary), &role).unwrap_err();
        assert!(err.contains(phrase), "{case}: {err}");
    }
    assert!(may_promise("c-1", "c-1", &healthy, Some(primary), &up).is_err());
}

fn failover(proof: Option<&str>) -> cnredis_api::cluster::FailoverProgress {
    serde_json::from_value(serde_json::json!({
        "from": "c-1", "reason": "Unreachable", "since": "2026-12-07T10:00:00Z",
        "started": "2026-12-07T10:00:02Z", "step": "Fencing", "fenceProof": proof,
    }))
    .unwrap()
}

#[test]
fn a_promise_holds_promotion_back_past_the_primarys_hold() {
    let start = Instant::now();
    let guard = PromotionGuard {
        started: start - 60 * SECOND,
        promised: Some(start),
        lease: 6 * SECOND,
    };
    // The primary's hold from a round sent before the promise ends 4 s after it at the latest.
    assert_eq!(guard.hold(start + 4 * SECOND, false), Some(3 * SECOND));
    assert_eq!(guard.hold(start + 6 * SECOND, false), Some(SECOND));
    assert_eq!(guard.hold(start + 7 * SECOND, false), None);
    assert!(promise_covers(guard.lease + PROMISE_HOLD, guard.lease));
}

#[test]
fn without_a_promise_only_an_unproven_fence_waits_for_the_managers_start() {
    let start = Instant::now();
    let guard = PromotionGuard {
        started: start,
        promised: None,
        lease: 6 * SECOND,
    };
    assert_eq!(
        guard.hold(start + SECOND, false),
        None,
        "switchovers and acknowledged fences"
    );
    assert_eq!(guard.hold(start + SECOND, true), Some(6 * SECOND));
    assert_eq!(guard.hold(start + 7 * SECOND, true), None);
    let old = PromotionGuard {
        started: start - 60 * SECOND,
        ..guard
    };
    assert_eq!(
        old.hold(start, true),
        None,
        "a manager up for long promised nothing it forgot"
    );
}

#[test]
fn only_an_acknowledged_fence_is_proven() {
    let mut status = status("c-1", &["c-1", "c-2"]);
    assert!(
        !unproven_fence(&status),
        "no failover: a switchover or the first primary"
    );
    for (proof, unproven) in [
        (None, true),
        (Some("LeaseExpired"), true),
        (Some("PodGone"), true),
        (Some("FenceAcknowledged"), false),
    ] {
        status.failover = Some(failover(proof));
        assert_eq!(unproven_fence(&status), unproven, "{proof:?}");
    }
}

#[test]
fn a_shorter_promise_than_the_primarys_hold_does_not_count() {
    assert!(promise_covers(7 * SECOND, 6 * SECOND));
    assert!(promise_covers(4 * SECOND, 6 * SECOND));
    assert!(!promise_covers(3 * SECOND, 6 * SECOND));
}
