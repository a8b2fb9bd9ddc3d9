use super::*;

fn report(role: Role, ready: bool) -> InstanceReport {
    InstanceReport {
        ready,
        ..crate::cluster::report_fixture::report(role)
    }
}

/// An instance `c-<serial>` with a ready pod and PVC, reporting `role`.
fn instance(serial: u32, role: Role) -> Observed {
    Observed {
        name: format!("c-{serial}"),
        serial,
        pod: Some(PodFacts {
            ready: true,
            role_label: Some(match role {
                Role::Primary => ROLE_PRIMARY.to_string(),
                _ => ROLE_REPLICA.to_string(),
            }),
            ..PodFacts::default()
        }),
        pvc: true,
        report: Some(report(role, true)),
        outdated: false,
    }
}

impl Observed {
    fn not_ready(mut self) -> Self {
        if let Some(report) = &mut self.report {
            report.ready = false;
        }
        self
    }
    fn without_pod(mut self) -> Self {
        self.pod = None;
        self.report = None;
        self
    }
    fn without_pvc(mut self) -> Self {
        self.pvc = false;
        self
    }
    fn outdated(mut self) -> Self {
        self.outdated = true;
        self
    }
    fn offset(mut self, offset: i64) -> Self {
        if let Some(report) = &mut self.report {
            report.replication.offset = offset;
        }
        self
    }
    fn link(mut self, link: &str) -> Self {
        if let Some(report) = &mut self.report {
            report.replication.link = Some(link.to_string());
        }
        self
    }
    fn fenced(mut self) -> Self {
        if let Some(report) = &mut self.report {
            report.fenced = true;
        }
        self
    }
}

fn wanted(instances: u32) -> Wanted {
    Wanted {
        cluster: "c".to_string(),
        instances,
        current_primary: Some("c-1".to_string()),
        target_primary: Some("c-1".to_string()),
        latest_serial: 0,
        pvc_retention: PvcRetentionPolicy::Delete,
        fenced: Vec::new(),
        update_strategy: PrimaryUpdateStrategy::Unsupervised,
        update_method: PrimaryUpdateMethod::Switchover,
        primary_failing: false,
        max_sync_lag_seconds: 10,
        bootstrap_refused: None,
        spread: None,
    }
}

fn new_cluster(instances: u32) -> Wanted {
    Wanted {
        current_primary: None,
        target_primary: None,
        ..wanted(instances)
    }
}

fn steady(serials: &[u32]) -> Vec<Observed> {
    serials
        .iter()
        .map(|&s| instance(s, if s == 1 { Role::Primary } else { Role::Replica }))
        .collect()
}

#[test]
fn a_new_cluster_names_its_first_instance_target_primary_before_creating_it() {
    let plan = plan(&new_cluster(3), &[]);
    assert_eq!(plan.target_primary.as_deref(), Some("c-1"));
    assert_eq!(plan.current_primary, None);
    assert_eq!(plan.create, [1]);
    assert_eq!(plan.latest_serial, 1);
    assert_eq!(plan.phase, "Setting up primary");
}

#[test]
fn a_refused_bootstrap_creates_nothing_and_says_why() {
    let mut wanted = new_cluster(3);
    wanted.bootstrap_refused = Some("restore is not supported".to_string());
    let plan = plan(&wanted, &[]);
    assert_eq!(plan.target_primary, None);
    assert!(plan.create.is_empty());
    assert_eq!(plan.phase, PHASE_BOOTSTRAP_FAILED);
    assert_eq!(plan.phase_reason, "restore is not supported");
    assert!(!plan.healthy);
}

#[test]
fn a_restoring_target_reports_progress_then_a_failure_as_bootstrap_failed() {
    let mut wanted = new_cluster(3);
    wanted.target_primary = Some("c-1".to_string());
    wanted.latest_serial = 1;
    let mut restoring = instance(1, Role::Unknown);
    restoring.report.as_mut().unwrap().restore = Some(cnredis_instance_client::wire::RestoreReport {
        step: "downloading s3://b/p/c/b1/dump.rdb".to_string(),
        downloaded_bytes: 3 << 20,
        error: None,
    });
    let progress = plan(&wanted, std::slice::from_ref(&restoring));
    assert_eq!(progress.phase, "Restoring");
    assert_eq!(
        progress.phase_reason,
        "c-1: downloading s3://b/p/c/b1/dump.rdb (3 MiB)"
    );
    assert!(progress.create.is_empty() && !progress.healthy);

    restoring.report.as_mut().unwrap().restore.as_mut().unwrap().error = Some("checksum".to_string());
    let failed = plan(&wanted, std::slice::from_ref(&restoring));
    assert_eq!(failed.phase, PHASE_BOOTSTRAP_FAILED);
    assert_eq!(
        failed.phase_reason,
        "restoring on c-1 failed (retried every 10s): checksum"
    );

    // Once restored and serving, the target becomes the primary as any other.
    let mut serving = instance(1, Role::Primary);
    serving.report.as_mut().unwrap().restore = restoring.report.unwrap().restore.map(|mut r| {
        r.error = None;
        r
    });
    let done = plan(&wanted, &[serving]);
    assert_eq!(done.current_primary.as_deref(), Some("c-1"));
    assert_ne!(done.phase, "Restoring");
}

#[test]
fn the_target_becomes_current_once_it_serves_as_primary() {
    let mut wanted = new_cluster(3);
    wanted.target_primary = Some("c-1".to_string());
    wanted.latest_serial = 1;
    let waiting = plan(&wanted, &[instance(1, Role::Unknown)]);
    assert_eq!(waiting.current_primary, None);
    assert!(waiting.create.is_empty());
    let serving = plan(&wanted, &[instance(1, Role::Primary)]);
    assert_eq!(serving.current_primary.as_deref(), Some("c-1"));
    // ... and the first replica follows in the same pass.
    assert_eq!(serving.create, [2]);
}

#[test]
fn replicas_are_added_one_at_a_time_while_every_instance_is_ready() {
    let mut wanted = wanted(3);
    wanted.latest_serial = 2;
    let plan_ready = plan(&wanted, &steady(&[1, 2]));
    assert_eq!(plan_ready.create, [3]);
    assert_eq!(plan_ready.latest_serial, 3);

    let syncing = vec![instance(1, Role::Primary), instance(2, Role::Replica).not_ready()];
    let plan_syncing = plan(&wanted, &syncing);
    assert!(plan_syncing.create.is_empty());
    assert_eq!(plan_syncing.phase_reason, "waiting for c-2 to sync from c-1");
}

#[test]
fn serials_are_never_reused() {
    let mut wanted = wanted(3);
    wanted.latest_serial = 7;
    let plan = plan(&wanted, &steady(&[1, 5]));
    assert_eq!(plan.create, [8]);
}

#[test]
fn a_deleted_pod_comes_back_on_its_pvc() {
    let mut observed = steady(&[1, 2, 3]);
    observed[1] = observed[1].clone().without_pod();
    let plan = plan(&wanted(3), &observed);
    assert_eq!(plan.create, [2]);
    assert!(plan.remove.is_empty());
    assert_eq!(plan.phase, "Recreating instances");
}

#[test]
fn a_deleted_primary_pod_comes_back_on_its_pvc_as_primary() {
    let mut observed = steady(&[1, 2]);
    observed[0] = observed[0].clone().without_pod();
    let plan = plan(&wanted(2), &observed);
    assert_eq!(plan.create, [1]);
    assert_eq!(plan.current_primary.as_deref(), Some("c-1"));
}

#[test]
fn an_instance_whose_pvc_was_deleted_is_replaced_by_a_new_serial() {
    let mut wanted = wanted(3);
    wanted.latest_serial = 3;
    let mut observed = steady(&[1, 2, 3]);
    observed[2] = observed[2].clone().without_pvc();
    let first = plan(&wanted, &observed);
    assert_eq!(first.remove.len(), 1);
    assert_eq!(first.remove[0].name, "c-3");
    assert!(first.remove[0].delete_pod);
    assert_eq!(first.create, [4], "a new serial takes its place");
}

#[test]
fn scaling_down_removes_the_highest_serial_that_is_not_the_primary() {
    let mut wanted = wanted(2);
    wanted.current_primary = Some("c-3".to_string());
    wanted.target_primary = Some("c-3".to_string());
    let observed = vec![
        instance(1, Role::Replica),
        instance(2, Role::Replica),
        instance(3, Role::Primary),
    ];
    let plan = plan(&wanted, &observed);
    assert_eq!(plan.remove.len(), 1);
    assert_eq!(plan.remove[0].name, "c-2");
    assert!(plan.remove[0].delete_pvc);
}

#[test]
fn scaling_down_keeps_the_pvc_when_the_policy_retains_it() {
    let mut wanted = wanted(1);
    wanted.pvc_retention = PvcRetentionPolicy::Retain;
    let plan = plan(&wanted, &steady(&[1, 2]));
    assert_eq!(plan.remove[0].name, "c-2");
    assert!(!plan.remove[0].delete_pvc);
}

#[test]
fn scaling_down_waits_until_every_instance_is_ready() {
    let observed = vec![instance(1, Role::Primary), instance(2, Role::Replica).not_ready()];
    let plan = plan(&wanted(1), &observed);
    assert!(plan.remove.is_empty());
}

#[test]
fn the_primary_is_never_removed_even_when_it_is_the_highest_serial() {
    let mut wanted = wanted(1);
    wanted.current_primary = Some("c-2".to_string());
    wanted.target_primary = Some("c-2".to_string());
    let observed = vec![instance(1, Role::Replica), instance(2, Role::Primary)];
    let plan = plan(&wanted, &observed);
    assert_eq!(plan.remove[0].name, "c-1");
}

#[test]
fn a_healthy_cluster_needs_nothing() {
    let plan = plan(&wanted(3), &steady(&[1, 2, 3]));
    assert!(plan.create.is_empty() && plan.remove.is_empty());
    assert!(plan.healthy);
    assert_eq!(plan.phase, "Healthy");
    assert_eq!(plan.roles["c-1"], Some(ROLE_PRIMARY));
    assert_eq!(plan.roles["c-2"], Some(ROLE_REPLICA));
}

#[test]
fn a_fenced_primary_loses_its_role_label() {
    let mut observed = steady(&[1, 2]);
    observed[0] = observed[0].clone().fenced();
    assert_eq!(plan(&wanted(2), &observed).roles["c-1"], None);
    let mut by_annotation = wanted(2);
    by_annotation.fenced = vec!["*".to_string()];
    assert_eq!(plan(&by_annotation, &steady(&[1, 2])).roles["c-1"], None);
}

#[test]
fn a_pod_the_operator_cannot_reach_keeps_its_role_label() {
    // Unreachable from the operator only, its clients may still reach it: whether the primary serves is
    // the health loop's question (which fails it over, label first, when it does not), and the
    // endpoints follow each pod's own readiness probe.
    let mut observed = steady(&[1, 2]);
    observed[0].report = None;
    observed[1].report = None;
    let plan = plan(&wanted(2), &observed);
    assert_eq!(plan.roles["c-1"], Some(ROLE_PRIMARY));
    assert_eq!(plan.roles["c-2"], Some(ROLE_REPLICA));
    assert!(!plan.healthy);
}

#[test]
fn a_pod_whose_server_does_not_answer_has_no_role_label() {
    let mut observed = steady(&[1, 2]);
    for instance in &mut observed {
        instance.report.as_mut().unwrap().answered = false;
    }
    let plan = plan(&wanted(2), &observed);
    assert_eq!(plan.roles["c-1"], None);
    assert_eq!(plan.roles["c-2"], None);
}

#[test]
fn a_planned_switchover_leaves_the_primary_label_for_the_switchover_to_move() {
    // The switchover labels its target before it unlabels the primary: `-leader` is never empty, and a
    // client the Service proxies turn away meanwhile would wait a second per attempt.
    let mut wanted = wanted(2);
    wanted.target_primary = Some("c-2".to_string());
    let plan = plan(&wanted, &steady(&[1, 2]));
    assert!(plan.switchover.is_some());
    assert_eq!(plan.roles["c-1"], Some(ROLE_PRIMARY));
    assert_eq!(plan.roles["c-2"], Some(ROLE_REPLICA));
}

#[test]
fn a_rolling_update_restarts_replicas_highest_serial_first_and_one_at_a_time() {
    let observed: Vec<Observed> = steady(&[1, 2, 3]).into_iter().map(Observed::outdated).collect();
    let first = plan(&wanted(3), &observed);
    assert_eq!(first.remove.len(), 1);
    assert_eq!(first.remove[0].name, "c-3");
    assert!(!first.remove[0].delete_pvc, "a rolling update keeps the data");
    assert_eq!(first.phase, "Upgrading");

    // c-3 restarted and syncing: nothing else moves.
    let mut syncing = observed.clone();
    syncing[2] = instance(3, Role::Replica).not_ready();
    assert!(plan(&wanted(3), &syncing).remove.is_empty());

    let mut next = observed;
    next[2] = instance(3, Role::Replica);
    assert_eq!(plan(&wanted(3), &next).remove[0].name, "c-2");
}

#[test]
fn the_primary_is_updated_last_by_a_switchover_to_the_most_advanced_replica() {
    let observed = vec![
        instance(1, Role::Primary).outdated().offset(500),
        instance(2, Role::Replica).offset(480),
        instance(3, Role::Replica).offset(500),
    ];
    let plan = plan(&wanted(3), &observed);
    assert!(
        plan.remove.is_empty(),
        "the primary is never deleted while a switchover is possible"
    );
    assert_eq!(
        plan.switchover,
        Some(Switchover {
            from: "c-1".to_string(),
            to: "c-3".to_string()
        })
    );
}

#[test]
fn a_supervised_update_waits_for_the_user_to_promote() {
    let mut wanted = wanted(2);
    wanted.update_strategy = PrimaryUpdateStrategy::Supervised;
    let observed = vec![instance(1, Role::Primary).outdated(), instance(2, Role::Replica)];
    let plan = plan(&wanted, &observed);
    assert!(plan.switchover.is_none() && plan.remove.is_empty());
    assert_eq!(plan.phase, "Waiting for the user");
}

#[test]
fn the_restart_method_or_a_single_instance_restarts_the_primary_in_place() {
    let mut restart = wanted(2);
    restart.update_method = PrimaryUpdateMethod::Restart;
    let observed = vec![instance(1, Role::Primary).outdated(), instance(2, Role::Replica)];
    assert_eq!(plan(&restart, &observed).remove[0].name, "c-1");
    let single = plan(&wanted(1), &[instance(1, Role::Primary).outdated()]);
    assert_eq!(single.remove[0].name, "c-1");
    assert!(!single.remove[0].delete_pvc);
}

#[test]
fn a_switchover_in_progress_is_resumed_before_anything_else() {
    let mut wanted = wanted(3);
    wanted.target_primary = Some("c-2".to_string());
    let plan = plan(&wanted, &steady(&[1, 2]));
    assert_eq!(
        plan.switchover,
        Some(Switchover {
            from: "c-1".to_string(),
            to: "c-2".to_string()
        })
    );
    assert!(plan.create.is_empty(), "no scaling during a switchover");
}

#[test]
fn a_switchover_whose_target_was_promoted_before_the_operator_stopped_is_finished_not_waited_for() {
    let mut wanted = wanted(3);
    wanted.target_primary = Some("c-2".to_string());
    // The operator exited between c-2's promotion and naming it currentPrimary: c-2 reports itself
    // primary, and no longer "in sync" with c-1 as a replica would be.
    let observed = vec![
        instance(1, Role::Primary),
        instance(2, Role::Primary),
        instance(3, Role::Replica),
    ];
    let resumed = plan(&wanted, &observed);
    assert_eq!(
        resumed.switchover,
        Some(Switchover {
            from: "c-1".to_string(),
            to: "c-2".to_string()
        }),
        "waiting would lift c-1's fence beside the writable c-2"
    );
    assert!(!resumed.switchover_waiting);
}

#[test]
fn a_switchover_waits_with_the_primary_unfenced_while_its_target_is_not_in_sync() {
    let mut wanted = wanted(3);
    wanted.target_primary = Some("c-2".to_string());
    // c-2's server restarted: it is still ready (stale reads), but its link is down.
    let observed = vec![
        instance(1, Role::Primary),
        instance(2, Role::Replica).link("down"),
        instance(3, Role::Replica),
    ];
    let waits = plan(&wanted, &observed);
    assert_eq!(
        waits.switchover, None,
        "nothing is fenced before the target is in sync"
    );
    assert!(waits.switchover_waiting);
    assert_eq!(
        waits.roles["c-1"],
        Some(ROLE_PRIMARY),
        "the primary keeps -leader meanwhile"
    );
    assert_eq!(waits.phase, "Switchover in progress");
    assert_eq!(
        waits.phase_reason,
        "waiting for c-2 to be in sync before switching over from c-1: its link to c-1 is down"
    );
    assert!(
        waits.remove.is_empty() && waits.create.is_empty(),
        "no other change meanwhile"
    );
    assert_eq!(
        waits.target_primary.as_deref(),
        Some("c-2"),
        "the switchover stays asked for"
    );

    // In sync but its pod not Ready yet (a server that just came back): `-leader` could not reach it.
    let mut observed = steady(&[1, 2, 3]);
    observed[1].pod.as_mut().unwrap().ready = false;
    let unready = plan(&wanted, &observed);
    assert!(unready.switchover_waiting && unready.switchover.is_none());
    assert!(unready.phase_reason.ends_with("its pod is not Ready yet"));

    // A target whose pod was deleted comes back on its volume while the switchover waits for it.
    let observed = vec![
        instance(1, Role::Primary),
        instance(2, Role::Replica).without_pod(),
        instance(3, Role::Replica),
    ];
    let waiting = plan(&wanted, &observed);
    assert!(waiting.switchover_waiting && waiting.switchover.is_none());
    assert_eq!(waiting.create, [2]);
    assert!(
        waiting
            .phase_reason
            .ends_with("its pod is being created or replaced")
    );

    // A target that is no instance of the cluster is waited for, not switched to.
    wanted.target_primary = Some("c-9".to_string());
    let unknown = plan(&wanted, &steady(&[1, 2, 3]));
    assert!(unknown.switchover_waiting && unknown.switchover.is_none());
    assert!(
        unknown
            .phase_reason
            .ends_with("it is not an instance of this cluster")
    );

    // In sync again: the switchover runs.
    wanted.target_primary = Some("c-2".to_string());
    let ready = plan(&wanted, &steady(&[1, 2, 3]));
    assert!(!ready.switchover_waiting);
    assert_eq!(ready.switchover.map(|s| s.to).as_deref(), Some("c-2"));
    assert_eq!(ready.roles["c-1"], Some(ROLE_PRIMARY));
}

#[test]
fn a_failing_primary_whose_pod_is_gone_is_left_to_the_failover() {
    let mut wanted = wanted(3);
    wanted.current_primary = Some("c-1".to_string());
    wanted.target_primary = Some("c-1".to_string());
    wanted.primary_failing = true;
    let observed = [
        instance(1, Role::Primary).without_pod(),
        instance(2, Role::Replica).not_ready(),
        instance(3, Role::Replica).not_ready(),
    ];
    assert_eq!(plan(&wanted, &observed).create, Vec::<u32>::new());
    wanted.primary_failing = false;
    assert_eq!(plan(&wanted, &observed).create, vec![1]);
}

fn spreading(instance: &str) -> Option<Move> {
    Some(Move {
        instance: instance.to_string(),
        from: "a".to_string(),
        why: format!("spreading instances: {instance} shares a with c-1, and c has none"),
    })
}

#[test]
fn a_replica_sharing_a_domain_is_restarted_on_its_volume_once_nothing_else_is_to_be_done() {
    let wanted = Wanted {
        spread: spreading("c-3"),
        ..wanted(3)
    };
    let plan = plan(&wanted, &steady(&[1, 2, 3]));
    assert_eq!(
        plan.remove,
        vec![Removal {
            name: "c-3".to_string(),
            delete_pod: true,
            delete_pvc: false,
            why: "spreading instances: c-3 shares a with c-1, and c has none".to_string(),
            reason: MOVED,
        }]
    );
    assert_eq!(plan.phase, "Spreading instances");
    assert!(!plan.healthy);
    assert!(plan.create.is_empty());
}

#[test]
fn spreading_waits_for_every_instance_and_never_moves_the_primary_or_a_fenced_cluster() {
    let wanted = |instance: &str| Wanted {
        spread: spreading(instance),
        ..wanted(3)
    };
    // A replica not in sync, a missing pod, a rolling update, a scale-up: those first.
    let mut lagging = steady(&[1, 2, 3]);
    lagging[1] = lagging[1].clone().not_ready();
    let mut outdated = steady(&[1, 2, 3]);
    outdated[1] = outdated[1].clone().outdated();
    let cases = [
        ("a replica not ready", wanted("c-3"), lagging),
        (
            "a pod being recreated",
            wanted("c-3"),
            vec![
                instance(1, Role::Primary),
                instance(2, Role::Replica),
                instance(3, Role::Replica).without_pod(),
            ],
        ),
        ("a rolling update", wanted("c-3"), outdated),
        (
            "too few instances",
            Wanted {
                instances: 4,
                ..wanted("c-3")
            },
            steady(&[1, 2, 3]),
        ),
        ("the primary", wanted("c-1"), steady(&[1, 2, 3])),
        (
            "a fenced cluster",
            Wanted {
                fenced: vec!["c-2".to_string()],
                ..wanted("c-3")
            },
            steady(&[1, 2, 3]),
        ),
    ];
    for (case, wanted, observed) in cases {
        let plan = plan(&wanted, &observed);
        assert!(
            plan.remove.iter().all(|r| r.reason != MOVED),
            "{case}: {:?}",
            plan.remove
        );
        assert_ne!(plan.phase, "Spreading instances", "{case}");
    }
}

#[test]
fn a_switchover_target_not_labelled_yet_is_not_added_to_replica_on_its_way_to_leader() {
    // Its server just came back in sync, unlabelled: labelling it `replica` now would change `-replica`
    // just before the switchover changes `-leader`, and kube-proxy holds the second change back a second.
    let mut wanted = wanted(3);
    wanted.target_primary = Some("c-2".to_string());
    let mut observed = steady(&[1, 2, 3]);
    observed[1].pod.as_mut().unwrap().role_label = None;
    let switching = plan(&wanted, &observed);
    assert!(switching.switchover.is_some());
    assert_eq!(switching.roles["c-2"], None);
    assert_eq!(
        switching.roles["c-3"],
        Some(ROLE_REPLICA),
        "another replica is labelled as ever"
    );
    // Labelled `replica` already: it keeps it (the switchover takes it out of `-replica` first).
    let labelled = plan(&wanted, &steady(&[1, 2, 3]));
    assert_eq!(labelled.roles["c-2"], Some(ROLE_REPLICA));
    // Not switching over (the target not in sync): it is labelled by its role.
    let mut lagging = observed.clone();
    lagging[1] = lagging[1].clone().link("down");
    let waiting = plan(&wanted, &lagging);
    assert!(waiting.switchover.is_none());
    assert_eq!(waiting.roles["c-2"], Some(ROLE_REPLICA));
}
