use super::*;
use cnredis_instance_client::wire::Replication;

const SECOND: Duration = Duration::from_secs(1);

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap()
}

fn report(role: Role) -> InstanceReport {
    let mut report = crate::cluster::report_fixture::report(role);
    report.replication = Replication {
        replication_id: "lineage".to_string(),
        offset: 100,
        second_offset: -1,
        ..Replication::default()
    };
    report
}

fn serving() -> PrimaryFacts {
    PrimaryFacts {
        pod_exists: true,
        report: Some(report(Role::Primary)),
        ..PrimaryFacts::default()
    }
}

#[test]
fn a_serving_primary_is_not_failing() {
    assert_eq!(primary_failure("c-1", &serving()), None);
}

#[test]
fn primary_failures_are_named_most_telling_first() {
    let cases: Vec<(PrimaryFacts, Failure)> = vec![
        (PrimaryFacts::default(), Failure::PodGone),
        (
            PrimaryFacts {
                terminating: true,
                node_not_ready: true,
                ..serving()
            },
            Failure::PodDeleted,
        ),
        (
            PrimaryFacts {
                pod_failed: true,
                ..serving()
            },
            Failure::PodFailed,
        ),
        (
            PrimaryFacts {
                node_not_ready: true,
                report: None,
                ..serving()
            },
            Failure::NodeNotReady,
        ),
        (
            PrimaryFacts {
                report: Some(InstanceReport {
                    fenced: true,
                    fence_reasons: vec!["leaseExpired".to_string()],
                    ..report(Role::Primary)
                }),
                ..serving()
            },
            Failure::LeaseLapsed,
        ),
        (
            PrimaryFacts {
                containers_stopped: true,
                report: None,
                ..serving()
            },
            Failure::ContainerStopped,
        ),
        (
            PrimaryFacts {
                report: None,
                ..serving()
            },
            Failure::Unreachable,
        ),
        (
            PrimaryFacts {
                report: Some(InstanceReport {
                    answered: false,
                    ..report(Role::Unknown)
                }),
                ..serving()
            },
            Failure::ServerDown,
        ),
        (
            PrimaryFacts {
                report: Some(InstanceReport {
                    empty_after_restart: true,
                    fenced: true,
                    ..report(Role::Replica)
                }),
                ..serving()
            },
            Failure::EmptyAfterRestart,
        ),
        (
            PrimaryFacts {
                report: Some(InstanceReport {
                    restarted_primary: true,
                    fenced: true,
                    ..report(Role::Replica)
                }),
                ..serving()
            },
            Failure::RestartedPrimary,
        ),
    ];
    for (facts, expected) in cases {
        let seen = primary_failure("c-1", &facts).map(|(f, _)| f);
        assert_eq!(seen, Some(expected), "{facts:?}");
    }
}

#[test]
fn a_not_ready_node_whose_primary_answers_is_not_a_failure() {
    let facts = PrimaryFacts {
        node_not_ready: true,
        ..serving()
    };
    assert_eq!(primary_failure("c-1", &facts), None);
}

#[test]
fn an_unreachable_primary_that_renews_its_lease_is_not_failed_over() {
    let failing = Failing {
        pod: "c-1".to_string(),
        since: at(0),
        failure: Failure::Unreachable,
        message: "no answer".to_string(),
    };
    let renewing = PrimaryFacts {
        report: None,
        lease_renewed_ago: Some(SECOND),
        lease_duration: 6 * SECOND,
        ..serving()
    };
    assert_eq!(
        hold_back(Detection::FailOver(failing.clone()), &renewing),
        Detection::Failing(failing.clone())
    );
    // Renewals stopped for longer than a period and a second: fail over.
    let stopped = PrimaryFacts {
        lease_renewed_ago: Some(3100 * Duration::from_millis(1)),
        ..renewing.clone()
    };
    assert_eq!(
        hold_back(Detection::FailOver(failing.clone()), &stopped),
        Detection::FailOver(failing.clone())
    );
    // Another holder, or no sighting: fail over.
    let not_held = PrimaryFacts {
        lease_renewed_ago: None,
        ..renewing.clone()
    };
    assert!(matches!(
        hold_back(Detection::FailOver(failing.clone()), &not_held),
        Detection::FailOver(_)
    ));
    // Only an unreachable primary is held back: a server down is seen by its own manager.
    let down = Failing {
        failure: Failure::ServerDown,
        ..failing
    };
    assert!(matches!(
        hold_back(Detection::FailOver(down), &renewing),
        Detection::FailOver(_)
    ));
}

#[test]
fn a_failsafe_episode_is_told_once_as_it_starts_and_once_as_it_ends() {
    use cnredis_instance_client::wire::FailsafeEpisode;
    let ongoing = FailsafeEpisode {
        since: "2026-12-07T14:14:00Z".to_string(),
        until: None,
        promised_by: vec!["c-2".to_string(), "c-3".to_string()],
    };
    let (warning, reason, note) = failsafe_event("c-1", &ongoing, None).unwrap();
    assert!(warning);
    assert_eq!(reason, "PrimaryFailsafe");
    assert!(note.contains("promises of c-2, c-3"), "{note}");
    assert_eq!(failsafe_event("c-1", &ongoing, Some(&ongoing)), None);
    let ended = FailsafeEpisode {
        until: Some("2026-12-07T14:14:28Z".to_string()),
        ..ongoing.clone()
    };
    let (warning, reason, note) = failsafe_event("c-1", &ended, Some(&ongoing)).unwrap();
    assert!(!warning);
    assert_eq!(reason, "PrimaryFailsafeEnded");
    assert!(note.contains("nothing was fenced or failed over"), "{note}");
    assert_eq!(failsafe_event("c-1", &ended, Some(&ended)), None);
}

fn unreachable() -> Option<(Failure, String)> {
    Some((Failure::Unreachable, "no answer".to_string()))
}

#[test]
fn one_missed_poll_never_fails_over() {
    let first = detect(None, "c-1", unreachable(), at(0), SECOND);
    let Detection::Failing(failing) = first else {
        panic!("{first:?}")
    };
    assert_eq!(failing.since, at(0));
    // Even a failure seen long after a stale memory of another pod starts a fresh count.
    let other = Failing {
        pod: "c-2".to_string(),
        ..failing.clone()
    };
    assert!(matches!(
        detect(Some(&other), "c-1", unreachable(), at(100), SECOND),
        Detection::Failing(_)
    ));
    // And a final failure seen once is only remembered too.
    let deleted = Some((Failure::PodDeleted, "deleted".to_string()));
    assert!(matches!(
        detect(None, "c-1", deleted, at(0), SECOND),
        Detection::Failing(_)
    ));
}

#[test]
fn a_failure_fails_over_once_it_outlasts_the_delay() {
    let delay = 5 * SECOND;
    let Detection::Failing(first) = detect(None, "c-1", unreachable(), at(0), delay) else {
        panic!()
    };
    assert!(matches!(
        detect(Some(&first), "c-1", unreachable(), at(4), delay),
        Detection::Failing(_)
    ));
    match detect(Some(&first), "c-1", unreachable(), at(5), delay) {
        Detection::FailOver(failing) => assert_eq!(failing.since, at(0)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_final_failure_fails_over_at_its_second_sighting_whatever_the_delay() {
    let delay = 60 * SECOND;
    for failure in [Failure::PodDeleted, Failure::PodGone, Failure::EmptyAfterRestart] {
        let seen = || Some((failure, String::new()));
        let Detection::Failing(first) = detect(None, "c-1", seen(), at(0), delay) else {
            panic!()
        };
        assert!(
            matches!(
                detect(Some(&first), "c-1", seen(), at(1), delay),
                Detection::FailOver(_)
            ),
            "{failure:?}"
        );
    }
}

#[test]
fn a_server_that_restarts_within_the_delay_is_kept() {
    let delay = 5 * SECOND;
    let down = Some((Failure::ServerDown, String::new()));
    let Detection::Failing(first) = detect(None, "c-1", down, at(0), delay) else {
        panic!()
    };
    assert_eq!(
        detect(Some(&first), "c-1", None, at(2), delay),
        Detection::Healthy
    );
}

#[test]
fn the_clock_keeps_running_when_the_reason_changes() {
    let delay = 5 * SECOND;
    let Detection::Failing(first) = detect(None, "c-1", unreachable(), at(0), delay) else {
        panic!()
    };
    let stopped = Some((Failure::ContainerStopped, String::new()));
    match detect(Some(&first), "c-1", stopped, at(6), delay) {
        Detection::FailOver(f) => {
            assert_eq!((f.since, f.failure), (at(0), Failure::ContainerStopped))
        }
        other => panic!("{other:?}"),
    }
}

fn lease(holder: &str, renewed: i64) -> Option<LeaseFacts> {
    Some(LeaseFacts {
        holder: Some(holder.to_string()),
        renewed: Some(at(renewed)),
        duration: 15 * SECOND,
        unchanged_for: None,
    })
}

#[test]
fn an_acknowledged_fence_or_a_pod_gone_with_its_containers_stopped_is_proof_at_once() {
    let live = lease("c-1", 0);
    let acknowledged = FenceFacts {
        acknowledged: true,
        lease: live.clone(),
        ..FenceFacts::default()
    };
    assert_eq!(
        fence_proof("c-1", &acknowledged, at(1)),
        Ok(FenceProof::Acknowledged)
    );
    let gone = FenceFacts {
        pod_gone: true,
        pod_stopped: true,
        lease: live,
        ..FenceFacts::default()
    };
    assert_eq!(fence_proof("c-1", &gone, at(1)), Ok(FenceProof::PodGone));
}

#[test]
fn a_pod_force_deleted_while_running_proves_nothing_before_its_lease_runs_out() {
    // Deleted with --grace-period=0 --force from a node whose kubelet is gone: the object is gone, the
    // processes may run on and take writes. Only the lease (or an acknowledged fence) proves anything.
    let forced = FenceFacts {
        pod_gone: true,
        pod_stopped: false,
        lease: seen("c-1", 0, 3 * SECOND).lease,
        ..FenceFacts::default()
    };
    let waiting = fence_proof("c-1", &forced, at(3)).expect_err("no proof yet");
    assert!(waiting.contains("forced deletion"), "{waiting}");
    let later = FenceFacts {
        lease: seen("c-1", 0, 16 * SECOND).lease,
        ..forced.clone()
    };
    assert_eq!(fence_proof("c-1", &later, at(16)), Ok(FenceProof::LeaseExpired));
    let no_lease = FenceFacts {
        lease: None,
        ..forced
    };
    assert!(fence_proof("c-1", &no_lease, at(16)).is_err());
}

/// A lease renewed (by its stored time) at `renewed`, seen unchanged by the operator for `seen`.
fn seen(holder: &str, renewed: i64, seen: Duration) -> FenceFacts {
    FenceFacts {
        lease: Some(LeaseFacts {
            unchanged_for: Some(seen),
            ..lease(holder, renewed).unwrap()
        }),
        ..FenceFacts::default()
    }
}

#[test]
fn a_live_lease_of_an_unreachable_primary_is_no_proof_until_seen_unchanged_for_its_duration_and_the_margin() {
    let margin = SIGHTING_MARGIN;
    assert!(fence_proof("c-1", &seen("c-1", 0, 15 * SECOND), at(100)).is_err());
    assert_eq!(
        fence_proof("c-1", &seen("c-1", 0, 15 * SECOND + margin), at(15)),
        Ok(FenceProof::LeaseExpired)
    );
    assert_eq!(
        lease_proof_in(&seen("c-1", 0, 12 * SECOND), at(12)),
        Some(3 * SECOND + margin)
    );
    assert_eq!(
        lease_proof_in(&seen("c-1", 0, 20 * SECOND), at(12)),
        Some(Duration::ZERO)
    );
    assert_eq!(lease_proof_in(&FenceFacts::default(), at(30)), None);
}

#[test]
fn no_wall_clock_shortens_the_wait_for_a_lease_proof() {
    // The stored renewal time is long past on the operator's clock (a holder whose clock runs behind, or
    // an operator that just restarted): only the sighting counts.
    let just_seen = seen("c-1", -3600, Duration::ZERO);
    assert_eq!(
        lease_proof_in(&just_seen, at(0)),
        Some(15 * SECOND + SIGHTING_MARGIN)
    );
    assert!(fence_proof("c-1", &just_seen, at(0)).is_err());
    // A lease with no sighting at all is waited for in full.
    let unseen = FenceFacts {
        lease: lease("c-1", -3600),
        ..FenceFacts::default()
    };
    assert_eq!(
        lease_proof_in(&unseen, at(0)),
        Some(15 * SECOND + SIGHTING_MARGIN)
    );
    // And a holder whose clock runs ahead (renewal stored in the future) does not lengthen it.
    assert_eq!(
        fence_proof("c-1", &seen("c-1", 60, 15 * SECOND + SIGHTING_MARGIN), at(0)),
        Ok(FenceProof::LeaseExpired)
    );
}

#[test]
fn a_lease_never_renewed_proves_nothing_is_held_and_one_of_no_end_is_waited_for() {
    let unrenewed = FenceFacts {
        lease: Some(LeaseFacts {
            renewed: None,
            ..lease("c-1", 0).unwrap()
        }),
        ..FenceFacts::default()
    };
    assert_eq!(lease_proof_in(&unrenewed, at(0)), Some(Duration::ZERO));
    let forever = FenceFacts {
        lease: Some(LeaseFacts {
            duration: Duration::MAX / 2,
            unchanged_for: Some(3600 * SECOND),
            ..lease("c-1", 0).unwrap()
        }),
        ..FenceFacts::default()
    };
    assert!(fence_proof("c-1", &forever, at(1_000_000)).is_err());
}

#[test]
fn a_lease_held_by_another_pod_counts_from_its_last_sighting() {
    assert!(fence_proof("c-1", &seen("c-2", 10, 10 * SECOND), at(20)).is_err());
    assert_eq!(
        fence_proof("c-1", &seen("c-2", 10, 16 * SECOND), at(27)),
        Ok(FenceProof::LeaseExpired)
    );
}

#[test]
fn an_unreachable_primary_without_a_lease_is_never_proven_fenced() {
    let message = fence_proof("c-1", &FenceFacts::default(), at(1000)).unwrap_err();
    assert!(message.contains("c-1"), "{message}");
}

#[test]
fn only_an_expired_lease_is_left_to_the_new_primary_to_take() {
    assert!(FenceProof::Acknowledged.allows_lease_handover());
    assert!(FenceProof::PodGone.allows_lease_handover());
    assert!(!FenceProof::LeaseExpired.allows_lease_handover());
    for proof in [
        FenceProof::Acknowledged,
        FenceProof::PodGone,
        FenceProof::LeaseExpired,
    ] {
        assert_eq!(FenceProof::parse(proof.as_str()), Some(proof));
    }
}

fn replica(offset: i64) -> InstanceReport {
    let mut r = report(Role::Replica);
    r.replication.offset = offset;
    r.ready = false;
    r.replication.link = Some("down".to_string());
    r
}

fn candidate<'a>(name: &'a str, serial: u32, report: &'a InstanceReport) -> Candidate<'a> {
    Candidate {
        name,
        serial,
        eligible_pod: true,
        fenced_by_user: false,
        node_ready: true,
        report: Some(report),
    }
}

#[test]
fn among_equal_replicas_one_on_a_ready_node_is_chosen_but_never_before_a_more_advanced_one() {
    let (a, b) = (replica(250), replica(250));
    let on_unready_node = Candidate {
        node_ready: false,
        ..candidate("c-2", 2, &a)
    };
    let chosen = choose_failover_target(
        Some("lineage"),
        &[on_unready_node.clone(), candidate("c-3", 3, &b)],
    );
    assert_eq!(chosen, Ok("c-3".to_string()));
    let behind = replica(200);
    let chosen = choose_failover_target(Some("lineage"), &[on_unready_node, candidate("c-3", 3, &behind)]);
    assert_eq!(chosen, Ok("c-2".to_string()), "the offset comes first");
}

#[test]
fn a_failover_waits_for_replicas_that_may_hold_what_the_others_lack() {
    let (answering, mut loading, mut silent, syncing_base) =
        (replica(100), replica(90), replica(0), replica(80));
    loading.persistence.loading = true;
    silent.answered = false;
    let mut syncing = syncing_base;
    syncing.replication.sync_in_progress = true;
    let fenced = replica(500);
    let candidates = [
        candidate("c-2", 2, &answering),
        candidate("c-3", 3, &loading),
        candidate("c-4", 4, &silent),
        Candidate {
            report: None,
            ..candidate("c-5", 5, &answering)
        },
        Candidate {
            eligible_pod: false,
            report: None,
            ..candidate("c-6", 6, &answering)
        },
        candidate("c-7", 7, &syncing),
        Candidate {
            eligible_pod: false,
            fenced_by_user: true,
            ..candidate("c-8", 8, &fenced)
        },
    ];
    assert_eq!(replicas_to_wait_for(&candidates), ["c-3", "c-4", "c-5", "c-6"]);
    // Every replica answering, none loading: nothing to wait for.
    assert!(
        replicas_to_wait_for(&[candidate("c-2", 2, &answering), candidate("c-7", 7, &syncing)]).is_empty()
    );
}

#[test]
fn failover_picks_replica_with_highest_offset_though_none_is_ready() {
    let (a, b) = (replica(100), replica(250));
    let chosen = choose_failover_target(
        Some("lineage"),
        &[candidate("c-2", 2, &a), candidate("c-3", 3, &b)],
    );
    assert_eq!(chosen, Ok("c-3".to_string()));
}

#[test]
fn ties_go_to_the_lowest_serial() {
    let (a, b) = (replica(100), replica(100));
    let chosen = choose_failover_target(
        Some("lineage"),
        &[candidate("c-3", 3, &b), candidate("c-2", 2, &a)],
    );
    assert_eq!(chosen, Ok("c-2".to_string()));
}

#[test]
fn unfit_replicas_are_never_promoted_and_the_reason_is_given() {
    let empty = replica(0);
    let mut loading = replica(500);
    loading.persistence.loading = true;
    let mut syncing = replica(600);
    syncing.replication.sync_in_progress = true;
    let mut restarted_empty = replica(700);
    restarted_empty.empty_after_restart = true;
    let primary = report(Role::Primary);
    let fenced_by_user = replica(800);
    let candidates = [
        candidate("c-2", 2, &empty),
        candidate("c-3", 3, &loading),
        candidate("c-4", 4, &syncing),
        candidate("c-5", 5, &restarted_empty),
        candidate("c-7", 7, &primary),
        Candidate {
            eligible_pod: false,
            ..candidate("c-8", 8, &fenced_by_user)
        },
        Candidate {
            report: None,
            ..candidate("c-9", 9, &primary)
        },
    ];
    let NoCandidate(why) = choose_failover_target(Some("lineage"), &candidates).unwrap_err();
    for expected in [
        "c-2 has never synced",
        "c-3 still loading",
        "c-4 in the middle of a full sync",
        "c-5 restarted empty",
        "c-7 not a replica",
        "c-8 pod gone",
        "c-9 does not answer",
    ] {
        assert!(why.contains(expected), "{expected:?} not in {why:?}");
    }
}

#[test]
fn a_replica_that_was_promoted_before_keeps_its_lineage_through_replication_id2() {
    let mut moved_on = replica(300);
    moved_on.replication.replication_id = "newer".to_string();
    moved_on.replication.replication_id2 = "lineage".to_string();
    let stale = replica(200);
    let chosen = choose_failover_target(
        Some("lineage"),
        &[candidate("c-2", 2, &stale), candidate("c-3", 3, &moved_on)],
    );
    assert_eq!(chosen, Ok("c-3".to_string()));
}

#[test]
fn a_replica_of_another_history_is_passed_over_however_advanced() {
    let good = replica(100);
    let mut diverged = replica(900);
    diverged.replication.replication_id = "other".to_string();
    let candidates = [candidate("c-2", 2, &good), candidate("c-6", 6, &diverged)];
    assert_eq!(
        choose_failover_target(Some("lineage"), &candidates),
        Ok("c-2".to_string())
    );
    // Without a record, the history most replicas carry wins.
    let another = replica(50);
    let candidates = [
        candidate("c-2", 2, &good),
        candidate("c-3", 3, &another),
        candidate("c-6", 6, &diverged),
    ];
    assert_eq!(choose_failover_target(None, &candidates), Ok("c-2".to_string()));
}

#[test]
fn a_recorded_lineage_no_replica_carries_gives_way_to_the_most_advanced_replica() {
    // The failed primary restarted and the status recorded its new replication ID.
    let (a, b) = (replica(300), replica(400));
    assert_eq!(
        choose_failover_target(
            Some("restarted"),
            &[candidate("c-2", 2, &a), candidate("c-3", 3, &b)]
        ),
        Ok("c-3".to_string())
    );
}

#[test]
fn after_every_pod_restarted_an_isolated_replica_with_its_data_can_be_chosen() {
    // Restarted with no primary to follow, it replicates from nobody, but its files gave it an offset
    // of the lineage.
    let mut isolated = replica(900);
    isolated.replication.primary = Some("127.0.0.1:1".to_string());
    let empty = replica(0);
    let candidates = [candidate("c-2", 2, &isolated), candidate("c-3", 3, &empty)];
    assert_eq!(
        choose_failover_target(Some("lineage"), &candidates),
        Ok("c-2".to_string())
    );
}

#[test]
fn without_a_recorded_lineage_the_most_advanced_replica_sets_it() {
    let a = replica(300);
    let mut b = replica(400);
    b.replication.replication_id = "other".to_string();
    assert_eq!(
        choose_failover_target(None, &[candidate("c-2", 2, &a), candidate("c-3", 3, &b)]),
        Ok("c-3".to_string())
    );
}

#[test]
fn no_replica_at_all_is_said_plainly() {
    assert_eq!(
        choose_failover_target(Some("lineage"), &[]),
        Err(NoCandidate("there is no replica".to_string()))
    );
}

#[test]
fn failure_names_round_trip() {
    for failure in [
        Failure::PodDeleted,
        Failure::PodGone,
        Failure::PodFailed,
        Failure::ContainerStopped,
        Failure::NodeNotReady,
        Failure::Unreachable,
        Failure::ServerDown,
        Failure::EmptyAfterRestart,
        Failure::RestartedPrimary,
    ] {
        assert_eq!(Failure::parse(failure.as_str()), Some(failure));
    }
}

#[test]
fn a_deleted_primary_is_failed_over_even_if_a_pod_of_its_name_serves_again() {
    let deleted = Some((Failure::PodDeleted, "deleted".to_string()));
    let Detection::Failing(first) = detect(None, "c-1", deleted, at(0), 10 * SECOND) else {
        panic!()
    };
    match detect(Some(&first), "c-1", None, at(1), 10 * SECOND) {
        Detection::FailOver(f) => assert_eq!(f.failure, Failure::PodDeleted),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_next_poll_comes_when_the_failure_may_fail_over() {
    let period = SECOND;
    let soon = Duration::from_millis(100);
    let delay = 2 * SECOND;
    let failing = |failure: Failure, since: i64| {
        Detection::Failing(Failing {
            pod: "c-1".to_string(),
            since: at(since),
            failure,
            message: String::new(),
        })
    };
    let cases = [
        (Detection::Healthy, period),
        // A final failure fails over at its second sighting: look again soon.
        (failing(Failure::RestartedPrimary, 0), soon),
        (failing(Failure::PodDeleted, 0), soon),
        // Just seen, 2 s to wait: the period comes first.
        (failing(Failure::Unreachable, 0), period),
        // The delay has run out (the poll that sees it fails over; a failing one after, say an operator
        // restarted): never faster than `soon`.
        (failing(Failure::Unreachable, -5), soon),
    ];
    for (detection, wanted) in cases {
        assert_eq!(
            next_poll(&detection, at(0), delay, period, soon),
            wanted,
            "{detection:?}"
        );
    }
    let half_left = next_poll(
        &failing(Failure::Unreachable, 0),
        at(0) + Duration::from_millis(1500),
        delay,
        period,
        soon,
    );
    assert_eq!(half_left, Duration::from_millis(500));
}
