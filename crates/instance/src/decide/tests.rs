use super::*;
use Action::*;
use FenceReason::*;

/// `host:port` of a pod of the test cluster `c`.
fn addr(pod: &str) -> String {
    let serial = pod.strip_prefix("c-").expect("a pod of cluster c");
    format!("10.0.0.{serial}:6379")
}

// Observed fixtures: a server that answers, unfenced, with a dataset, no lease trouble.

fn primary() -> Observed {
    Observed {
        answered: true,
        role: ServerRole::Primary,
        fenced: false,
        empty: false,
        loading: false,
        restarted_primary: false,
        lease: LeaseState::Held,
    }
}

fn replica_of(pod: &str) -> Observed {
    Observed {
        role: ServerRole::Replica {
            primary: addr(pod),
            link_up: true,
            sync_in_progress: false,
        },
        lease: LeaseState::NotPrimary,
        ..primary()
    }
}

fn unknown_role() -> Observed {
    Observed {
        role: ServerRole::Unknown,
        ..primary()
    }
}

fn silent() -> Observed {
    Observed {
        answered: false,
        ..unknown_role()
    }
}

impl Observed {
    fn fenced(self) -> Self {
        Self { fenced: true, ..self }
    }
    fn empty(self) -> Self {
        Self { empty: true, ..self }
    }
    fn lease(self, lease: LeaseState) -> Self {
        Self { lease, ..self }
    }
}

// Desired fixtures: cluster `c`, initialised, with c-1 current and target primary.

fn pod(name: &str) -> Desired {
    Desired {
        pod_name: name.to_string(),
        current_primary: Some("c-1".to_string()),
        target_primary: Some("c-1".to_string()),
        initialized: true,
        cluster_has_data: false,
        fence_requested: false,
        primary_address: Some(addr("c-1")),
        confirmed_primary: false,
        promotion_requested: false,
    }
}

impl Desired {
    /// The operator asked this pod to promote.
    fn asked_to_promote(self) -> Self {
        Self {
            promotion_requested: true,
            ..self
        }
    }
    /// Current and target primary both `pod` (a finished failover or switchover).
    fn primary_is(self, pod: &str) -> Self {
        self.current(pod).target(pod)
    }
    fn current(self, pod: &str) -> Self {
        Self {
            current_primary: Some(pod.to_string()),
            primary_address: Some(addr(pod)),
            ..self
        }
    }
    fn target(self, pod: &str) -> Self {
        Self {
            target_primary: Some(pod.to_string()),
            ..self
        }
    }
    fn no_primary(self) -> Self {
        Self {
            current_primary: None,
            target_primary: None,
            primary_address: None,
            ..self
        }
    }
    fn no_address(self) -> Self {
        Self {
            primary_address: None,
            ..self
        }
    }
    /// A new cluster: no current primary yet, `target` is to become the first.
    fn uninitialised(self, target: &str) -> Self {
        Self {
            initialized: false,
            ..self.no_primary().target(target)
        }
    }
    fn with_data(self) -> Self {
        Self {
            cluster_has_data: true,
            ..self
        }
    }
    fn fence_requested(self) -> Self {
        Self {
            fence_requested: true,
            ..self
        }
    }
    fn confirmed(self) -> Self {
        Self {
            confirmed_primary: true,
            ..self
        }
    }
}

fn fence(reason: FenceReason) -> Action {
    Fence { reason }
}

fn follow(pod: &str) -> Action {
    FollowPrimary { address: addr(pod) }
}

#[test]
fn decisions_by_role_fence_lease_and_emptiness() {
    let cases: Vec<(&str, Observed, Desired, Vec<Action>)> = vec![
        // Steady states.
        ("steady primary has nothing to do", primary(), pod("c-1"), vec![]),
        (
            "steady replica has nothing to do",
            replica_of("c-1"),
            pod("c-2"),
            vec![],
        ),
        (
            "a silent server is left to the supervisor",
            silent(),
            pod("c-1").fence_requested(),
            vec![],
        ),
        // Boot-time split-brain guard.
        (
            "replica of a stale primary repoints to current_primary",
            replica_of("c-3"),
            pod("c-2"),
            vec![follow("c-1")],
        ),
        (
            "a pod booting as primary that is not current_primary follows it",
            primary(),
            pod("c-2"),
            vec![follow("c-1"), DisconnectClients],
        ),
        (
            "a replica whose role cannot be read is pointed at current_primary",
            unknown_role(),
            pod("c-2"),
            vec![follow("c-1")],
        ),
        (
            "current_primary whose role cannot be read is promoted",
            unknown_role(),
            pod("c-1"),
            vec![PromoteToPrimary],
        ),
        (
            "with no primary known a booting primary refuses writes",
            primary(),
            pod("c-2").no_primary(),
            vec![fence(NoPrimaryKnown)],
        ),
        (
            "with no primary known an already fenced server stays as it is",
            primary().fenced(),
            pod("c-2").no_primary(),
            vec![],
        ),
        (
            "an unresolved primary address is no usable primary",
            primary(),
            pod("c-2").no_address(),
            vec![fence(NoPrimaryKnown)],
        ),
        (
            "a replica with no primary known is fenced but keeps its link",
            replica_of("c-1"),
            pod("c-2").no_primary(),
            vec![fence(NoPrimaryKnown)],
        ),
        (
            "a usable primary known again lifts the no-primary fence",
            replica_of("c-1").fenced(),
            pod("c-2"),
            vec![Unfence],
        ),
        // Initialisation.
        (
            "before initialisation the target starts as primary",
            primary(),
            pod("c-1").uninitialised("c-1"),
            vec![],
        ),
        (
            "before initialisation the target is promoted",
            unknown_role(),
            pod("c-1").uninitialised("c-1"),
            vec![PromoteToPrimary],
        ),
        (
            "before initialisation another pod waits with writes refused",
            primary(),
            pod("c-2").uninitialised("c-1"),
            vec![fence(AwaitingInitialization)],
        ),
        (
            "before initialisation a pod claiming current_primary is not primary",
            primary(),
            Desired {
                current_primary: Some("c-2".into()),
                ..pod("c-2").uninitialised("c-1")
            },
            vec![fence(AwaitingInitialization)],
        ),
        // Promotion and demotion.
        (
            "the target replica asked to promote is promoted",
            replica_of("c-1"),
            pod("c-2").target("c-2").asked_to_promote(),
            vec![PromoteToPrimary],
        ),
        (
            "a target replica nobody asked to promote keeps following the current primary",
            replica_of("c-1"),
            pod("c-2").target("c-2"),
            vec![],
        ),
        (
            "a stale target with no current primary known waits with writes refused",
            replica_of("c-1"),
            pod("c-2").no_primary().target("c-2"),
            vec![fence(NoPrimaryKnown)],
        ),
        (
            "the target already primary is not promoted again",
            primary(),
            pod("c-2").primary_is("c-2"),
            vec![],
        ),
        (
            "the current primary stays primary until current_primary moves",
            primary(),
            pod("c-1").target("c-2"),
            vec![],
        ),
        (
            "a current primary that is no longer primary is not promoted without being target",
            replica_of("c-2"),
            pod("c-1").target("c-2"),
            vec![fence(NoPrimaryKnown)],
        ),
        (
            "a replica not named target stays a replica when the primary is gone",
            replica_of("c-1"),
            pod("c-3").no_primary().target("c-2"),
            vec![fence(NoPrimaryKnown)],
        ),
        (
            "a demoted ex-primary follows the new primary and drops its clients",
            primary(),
            pod("c-1").primary_is("c-2"),
            vec![follow("c-2"), DisconnectClients],
        ),
        (
            "a fenced ex-primary follows, drops its clients and then unfences",
            primary().fenced(),
            pod("c-1").primary_is("c-2"),
            vec![follow("c-2"), DisconnectClients, Unfence],
        ),
        (
            "a fenced target is promoted and stays fenced",
            replica_of("c-1").fenced(),
            pod("c-2").target("c-2").asked_to_promote().fence_requested(),
            vec![PromoteToPrimary],
        ),
        // Fence requests.
        (
            "a fence request fences the primary",
            primary(),
            pod("c-1").fence_requested(),
            vec![fence(Requested)],
        ),
        (
            "a fence request on a fenced primary is a no-op",
            primary().fenced(),
            pod("c-1").fence_requested(),
            vec![],
        ),
        (
            "a withdrawn fence request unfences",
            primary().fenced(),
            pod("c-1"),
            vec![Unfence],
        ),
        (
            "a fence request fences a replica too",
            replica_of("c-1"),
            pod("c-2").fence_requested(),
            vec![fence(Requested)],
        ),
        (
            "a replica being repointed is fenced first",
            replica_of("c-3"),
            pod("c-2").fence_requested(),
            vec![fence(Requested), follow("c-1")],
        ),
        // Self-fencing lease.
        (
            "an expired lease fences the primary by itself",
            primary().lease(LeaseState::Expired),
            pod("c-1"),
            vec![fence(LeaseExpired)],
        ),
        (
            "an expired lease keeps the fence after the request is withdrawn",
            primary().fenced().lease(LeaseState::Expired),
            pod("c-1"),
            vec![],
        ),
        (
            "the operator's confirmation lifts the lease fence",
            primary().fenced().lease(LeaseState::Expired),
            pod("c-1").confirmed(),
            vec![Unfence],
        ),
        (
            "a confirmed primary still honours a fence request",
            primary().fenced().lease(LeaseState::Expired),
            pod("c-1").confirmed().fence_requested(),
            vec![],
        ),
        (
            "a renewed lease lifts the lease fence",
            primary().fenced().lease(LeaseState::Held),
            pod("c-1"),
            vec![Unfence],
        ),
        (
            "an expired lease keeps a demoted ex-primary fenced while it follows",
            primary().fenced().lease(LeaseState::Expired),
            pod("c-1").primary_is("c-2"),
            vec![follow("c-2"), DisconnectClients],
        ),
        // Empty-primary guard.
        (
            "an empty primary with data recorded reports and fences",
            primary().empty(),
            pod("c-1").with_data(),
            vec![ReportEmptyAfterRestart, fence(EmptyAfterRestart)],
        ),
        (
            "an empty fenced primary keeps reporting",
            primary().empty().fenced(),
            pod("c-1").with_data(),
            vec![ReportEmptyAfterRestart],
        ),
        (
            "an empty primary is fenced even when confirmed",
            primary().empty().fenced().lease(LeaseState::Expired),
            pod("c-1").with_data().confirmed(),
            vec![ReportEmptyAfterRestart],
        ),
        (
            "an empty primary of a cluster without data serves",
            primary().empty(),
            pod("c-1"),
            vec![],
        ),
        (
            "an empty target is not promoted",
            replica_of("c-1").empty(),
            pod("c-2").target("c-2").asked_to_promote().with_data(),
            vec![ReportEmptyAfterRestart, fence(EmptyAfterRestart)],
        ),
        (
            "an empty replica syncs as usual",
            replica_of("c-1").empty(),
            pod("c-2").with_data(),
            vec![],
        ),
        (
            "the first primary of a new cluster may be empty",
            primary().empty(),
            pod("c-1").uninitialised("c-1"),
            vec![],
        ),
        (
            "every guard at once fences once, naming the request",
            primary().empty().lease(LeaseState::Expired),
            pod("c-1").with_data().fence_requested(),
            vec![ReportEmptyAfterRestart, fence(Requested)],
        ),
    ];
    for (name, observed, desired, expected) in cases {
        assert_eq!(decide(&observed, &desired), expected, "{name}");
    }
}

#[test]
fn fence_reasons_lists_every_reason_that_holds() {
    let observed = primary().empty().lease(LeaseState::Expired);
    let desired = pod("c-1").with_data().fence_requested();
    assert_eq!(
        fence_reasons(&observed, &desired),
        vec![Requested, EmptyAfterRestart, LeaseExpired]
    );
    assert_eq!(fence_reasons(&primary(), &pod("c-1")), vec![]);
    assert_eq!(
        fence_reasons(&replica_of("c-1"), &pod("c-2").no_primary()),
        vec![NoPrimaryKnown]
    );
}

/// What executing `actions` does to the server, as the executor promises.
fn apply(observed: &Observed, actions: &[Action]) -> Observed {
    let mut next = observed.clone();
    for action in actions {
        match action {
            Fence { .. } => next.fenced = true,
            Unfence => next.fenced = false,
            PromoteToPrimary => next.role = ServerRole::Primary,
            FollowPrimary { address } => {
                next.role = ServerRole::Replica {
                    primary: address.clone(),
                    link_up: false,
                    sync_in_progress: true,
                }
            }
            DisconnectClients | ReportEmptyAfterRestart => {}
        }
    }
    next
}

fn all_observed() -> Vec<Observed> {
    let mut all = vec![silent()];
    for base in [
        primary(),
        replica_of("c-1"),
        replica_of("c-2"),
        replica_of("c-3"),
        unknown_role(),
    ] {
        for fenced in [false, true] {
            for empty in [false, true] {
                for lease in [LeaseState::Held, LeaseState::Expired, LeaseState::NotPrimary] {
                    all.push(Observed {
                        fenced,
                        empty,
                        lease,
                        ..base.clone()
                    });
                }
            }
        }
    }
    all
}

fn all_desired() -> Vec<Desired> {
    let pods = ["c-1", "c-2", "c-3"];
    let mut statuses = vec![pod("c-1").no_primary(), pod("c-1").no_address()];
    for initialised in [true, false] {
        for current in pods {
            for target in pods {
                let status = pod("c-1").current(current).target(target);
                statuses.push(if initialised {
                    status
                } else {
                    Desired {
                        initialized: false,
                        ..status
                    }
                });
            }
            if !initialised {
                statuses.push(pod("c-1").uninitialised(current));
            }
        }
    }
    let mut all = Vec::new();
    for status in statuses {
        for me in pods {
            for (has_data, fence, confirmed) in
                (0..8).map(|bits| (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0))
            {
                all.push(Desired {
                    pod_name: me.to_string(),
                    cluster_has_data: has_data,
                    fence_requested: fence,
                    confirmed_primary: confirmed,
                    ..status.clone()
                });
            }
        }
    }
    all
}

/// Every observed state against every status, checked against the invariants the guards promise.
#[test]
fn every_combination_keeps_the_guards() {
    let mut checked = 0;
    for observed in all_observed() {
        for desired in all_desired() {
            let case = format!("{observed:?} / {desired:?}");
            let actions = decide(&observed, &desired);
            let me = Some(desired.pod_name.as_str());
            let is_target = desired.target_primary.as_deref() == me;

            if !observed.answered {
                assert_eq!(actions, vec![], "{case}");
                continue;
            }
            assert!(
                !(actions.iter().any(|a| matches!(a, Fence { .. })) && actions.contains(&Unfence)),
                "fence and unfence together: {case}"
            );
            if actions.contains(&PromoteToPrimary) {
                assert!(is_target, "promoted without being target: {case}");
                assert!(
                    !(observed.empty && desired.cluster_has_data),
                    "empty promoted: {case}"
                );
            }
            for action in &actions {
                if let FollowPrimary { address } = action {
                    assert_eq!(Some(address), desired.primary_address.as_ref(), "{case}");
                    assert_ne!(desired.current_primary.as_deref(), me, "follows itself: {case}");
                }
            }
            if actions.contains(&Unfence) {
                assert!(!desired.fence_requested, "unfenced against a request: {case}");
                assert!(
                    observed.lease != LeaseState::Expired || desired.confirmed_primary,
                    "unfenced with an expired lease: {case}"
                );
            }

            // After the actions the server is where the status wants it, and writable only if it is the
            // one primary the status allows and no guard holds.
            let after = apply(&observed, &actions);
            let again = decide(&after, &desired);
            assert!(
                again.iter().all(|a| *a == ReportEmptyAfterRestart),
                "not idempotent, then {again:?}: {case}"
            );
            let writable = after.role == ServerRole::Primary && !after.fenced;
            if writable {
                let may_be_primary =
                    is_target || (desired.initialized && desired.current_primary.as_deref() == me);
                assert!(may_be_primary, "a second writable primary: {case}");
                assert!(!desired.fence_requested, "writable while fenced: {case}");
                assert!(
                    !(observed.empty && desired.cluster_has_data),
                    "empty primary writable: {case}"
                );
                assert!(
                    observed.lease != LeaseState::Expired || desired.confirmed_primary,
                    "writable with an expired lease: {case}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 10_000, "only {checked} combinations checked");
}

#[test]
fn a_pod_that_is_not_current_primary_always_replicates_from_it() {
    for observed in [
        primary(),
        replica_of("c-3"),
        replica_of("c-2"),
        unknown_role(),
        primary().fenced(),
    ] {
        let after = apply(&observed, &decide(&observed, &pod("c-2")));
        assert!(
            matches!(&after.role, ServerRole::Replica { primary, .. } if *primary == addr("c-1")),
            "{observed:?} became {after:?}"
        );
    }
}

#[test]
fn only_target_primary_may_start_as_primary_before_initialisation() {
    for observed in [primary(), replica_of("c-2"), unknown_role()] {
        for me in ["c-1", "c-2", "c-3"] {
            let desired = pod(me).uninitialised("c-1");
            let after = apply(&observed, &decide(&observed, &desired));
            let writable = after.role == ServerRole::Primary && !after.fenced;
            assert_eq!(writable, me == "c-1", "{me} from {observed:?}");
            if me != "c-1" {
                assert!(after.fenced, "{me} from {observed:?} waits with writes refused");
            }
        }
    }
}

#[test]
fn with_no_usable_primary_known_a_pod_refuses_writes_rather_than_become_primary() {
    for desired in [pod("c-2").no_primary(), pod("c-2").no_address()] {
        for observed in [primary(), replica_of("c-3"), unknown_role()] {
            let actions = decide(&observed, &desired);
            assert!(!actions.contains(&PromoteToPrimary), "{observed:?}");
            assert!(apply(&observed, &actions).fenced, "{observed:?}");
        }
    }
}

#[test]
fn empty_primary_is_never_followed_and_never_writes() {
    // The pod that status names primary restarted with no dataset while the cluster records data.
    for observed in [
        primary().empty(),
        unknown_role().empty(),
        replica_of("c-2").empty(),
    ] {
        for lease in [LeaseState::Held, LeaseState::Expired, LeaseState::NotPrimary] {
            for desired in [pod("c-1").with_data(), pod("c-1").with_data().confirmed()] {
                let observed = observed.clone().lease(lease);
                let actions = decide(&observed, &desired);
                assert_eq!(actions.first(), Some(&ReportEmptyAfterRestart), "{observed:?}");
                // It is never made a primary that replicas could copy, and never serves writes.
                assert!(!actions.contains(&PromoteToPrimary), "{observed:?}");
                assert!(!actions.contains(&Unfence), "{observed:?}");
                assert!(apply(&observed, &actions).fenced, "{observed:?}");
            }
        }
    }
    // Once the operator failed over, the empty pod follows the new primary and syncs its data.
    let empty = primary().empty().fenced();
    assert_eq!(
        decide(&empty, &pod("c-1").primary_is("c-2").with_data()),
        vec![follow("c-2"), DisconnectClients, Unfence]
    );
}

#[test]
fn expired_lease_fences_the_primary_until_confirmed() {
    let desired = pod("c-1");
    let mut server = primary();
    assert_eq!(decide(&server, &desired), vec![]);

    server.lease = LeaseState::Expired;
    let actions = decide(&server, &desired);
    assert_eq!(actions, vec![fence(LeaseExpired)]);
    server = apply(&server, &actions);

    // No unfence while the lease is expired, whatever else the status says.
    assert_eq!(decide(&server, &desired), vec![]);
    assert_eq!(decide(&server, &pod("c-1").fence_requested()), vec![]);

    let confirmed = pod("c-1").confirmed();
    assert_eq!(decide(&server, &confirmed), vec![Unfence]);
}

#[test]
fn fence_requests_are_idempotent_and_withdrawn_cleanly() {
    let requested = pod("c-1").fence_requested();
    let mut server = primary();
    let actions = decide(&server, &requested);
    assert_eq!(actions, vec![fence(Requested)]);
    server = apply(&server, &actions);
    assert_eq!(decide(&server, &requested), vec![]);
    assert_eq!(decide(&server, &pod("c-1")), vec![Unfence]);
}

#[test]
fn a_demoted_primary_follows_the_new_primary_and_disconnects_its_clients() {
    let actions = decide(&primary(), &pod("c-1").primary_is("c-3"));
    assert_eq!(actions, vec![follow("c-3"), DisconnectClients]);
    // A replica being repointed has no writers to disconnect.
    assert_eq!(
        decide(&replica_of("c-1"), &pod("c-2").primary_is("c-3")),
        vec![follow("c-3")]
    );
}

/// A replica of c-1 with this link state.
fn replica_link(link_up: bool, sync_in_progress: bool) -> Observed {
    Observed {
        role: ServerRole::Replica {
            primary: addr("c-1"),
            link_up,
            sync_in_progress,
        },
        ..replica_of("c-1")
    }
}

/// The link history after these observations, made `seconds` after `start`.
fn history(start: Instant, observations: &[(u64, Observed)]) -> LinkHistory {
    let mut link = LinkHistory::default();
    for (seconds, observed) in observations {
        link.observe(&observed.role, start + Duration::from_secs(*seconds));
    }
    link
}

#[test]
fn readiness_of_primaries_and_of_linked_replicas_needs_no_history() {
    let now = Instant::now();
    let bound = Duration::from_secs(30);
    let linked = replica_of("c-1");
    let loading = Observed {
        loading: true,
        ..replica_link(false, false)
    };
    let cases = [
        ("a primary", primary(), Readiness::Ready),
        ("a fenced primary", primary().fenced(), Readiness::Ready),
        ("a linked replica", linked, Readiness::Ready),
        (
            "a replica in its initial sync",
            replica_link(false, true),
            Readiness::NotReady(NotReady::NeverSynced),
        ),
        (
            "a replica whose link never came up",
            replica_link(false, false),
            Readiness::NotReady(NotReady::NeverSynced),
        ),
        (
            "a replica loading its dataset",
            loading,
            Readiness::NotReady(NotReady::Loading),
        ),
        (
            "a role that cannot be read",
            unknown_role(),
            Readiness::NotReady(NotReady::RoleUnknown),
        ),
        (
            "a silent server",
            silent(),
            Readiness::NotReady(NotReady::NotAnswering),
        ),
    ];
    for (name, observed, expected) in cases {
        let link = history(now, &[(0, observed.clone())]);
        assert_eq!(readiness(&observed, &link, bound, now), expected, "{name}");
    }
}

#[test]
fn a_replica_that_was_in_sync_serves_stale_reads_for_the_bound_after_its_link_went_down() {
    let start = Instant::now();
    let s = Duration::from_secs;
    let down = replica_link(false, false);
    let syncing = replica_link(false, true);
    let linked = replica_of("c-1");
    // (case, observations at seconds after start, bound, readiness asked at, expected)
    let cases = [
        (
            "link down 5 s of a 30 s bound",
            vec![(0, linked.clone()), (10, down.clone())],
            30,
            15,
            Readiness::ServingStale { link_down_for: s(5) },
        ),
        (
            "counted from the first observation of the link down",
            vec![(0, linked.clone()), (10, down.clone()), (20, down.clone())],
            30,
            39,
            Readiness::ServingStale { link_down_for: s(29) },
        ),
        (
            "down for exactly the bound",
            vec![(0, linked.clone()), (10, down.clone())],
            30,
            40,
            Readiness::NotReady(NotReady::LinkDownTooLong { link_down_for: s(30) }),
        ),
        (
            "down longer than the bound",
            vec![(0, linked.clone()), (10, down.clone())],
            30,
            100,
            Readiness::NotReady(NotReady::LinkDownTooLong { link_down_for: s(90) }),
        ),
        (
            "a bound of 0 is the old behaviour",
            vec![(0, linked.clone()), (10, down.clone())],
            0,
            10,
            Readiness::NotReady(NotReady::LinkDownTooLong { link_down_for: s(0) }),
        ),
        (
            "a resynchronisation counts as the link down",
            vec![(0, linked.clone()), (10, down.clone()), (12, syncing.clone())],
            30,
            20,
            Readiness::ServingStale { link_down_for: s(10) },
        ),
        (
            "a link that came back restarts the count",
            vec![
                (0, linked.clone()),
                (10, down.clone()),
                (35, linked.clone()),
                (50, down.clone()),
            ],
            30,
            60,
            Readiness::ServingStale { link_down_for: s(10) },
        ),
        (
            "a silent server does not stop or reset the count",
            vec![
                (0, linked.clone()),
                (10, down.clone()),
                (20, silent()),
                (45, down.clone()),
            ],
            30,
            45,
            Readiness::NotReady(NotReady::LinkDownTooLong { link_down_for: s(35) }),
        ),
        (
            "never synced since the server started",
            vec![(0, down.clone()), (1, syncing.clone())],
            30,
            2,
            Readiness::NotReady(NotReady::NeverSynced),
        ),
        (
            "a former primary has not synced with its new primary",
            vec![(0, primary()), (10, down.clone())],
            30,
            11,
            Readiness::NotReady(NotReady::NeverSynced),
        ),
        (
            "a replica repointed to a new primary keeps serving what it has",
            vec![
                (0, linked.clone()),
                (10, down.clone()),
                (
                    15,
                    Observed {
                        role: ServerRole::Replica {
                            primary: addr("c-2"),
                            link_up: false,
                            sync_in_progress: false,
                        },
                        ..replica_of("c-2")
                    },
                ),
            ],
            30,
            20,
            Readiness::ServingStale { link_down_for: s(10) },
        ),
    ];
    for (name, observations, bound, at, expected) in cases {
        let link = history(start, &observations);
        let (_, last) = observations.last().unwrap();
        let ready = readiness(last, &link, s(bound), start + s(at));
        assert_eq!(ready, expected, "{name}");
        assert_eq!(
            ready.is_ready(),
            matches!(ready, Readiness::ServingStale { .. }),
            "{name}"
        );
    }
}

#[test]
fn the_stale_read_count_starts_when_the_link_is_first_seen_down() {
    let start = Instant::now();
    let mut link = LinkHistory::default();
    link.observe(&replica_of("c-1").role, start);
    assert_eq!(link.down_for(start), None);
    let down = replica_link(false, false);
    // Asked before the observation is folded in: down for no time yet.
    assert_eq!(
        readiness(&down, &link, Duration::from_secs(1), start),
        Readiness::ServingStale {
            link_down_for: Duration::ZERO
        }
    );
    link.observe(&down.role, start + Duration::from_secs(3));
    assert_eq!(
        link.down_for(start + Duration::from_secs(4)),
        Some(Duration::from_secs(1))
    );
}

#[test]
fn boot_plan_starts_only_the_target_primary_as_primary_and_only_with_its_dataset() {
    let cases = [
        // (desired, dataset on disk) -> (role, fenced)
        (pod("c-1").primary_is("c-1"), true, BootRole::Primary, false),
        (pod("c-1").primary_is("c-1"), false, BootRole::Primary, false),
        (
            pod("c-1").primary_is("c-1").with_data(),
            false,
            BootRole::Isolated,
            true,
        ),
        // A restarted primary, even with its dataset, while the replicas hold data: its files may be
        // behind them.
        (
            pod("c-1").primary_is("c-1").with_data(),
            true,
            BootRole::Isolated,
            true,
        ),
        (
            pod("c-1").primary_is("c-1").fence_requested(),
            true,
            BootRole::Primary,
            true,
        ),
        (
            pod("c-2").primary_is("c-1"),
            true,
            BootRole::Replica { address: addr("c-1") },
            false,
        ),
        (
            pod("c-2").primary_is("c-1").with_data(),
            false,
            BootRole::Replica { address: addr("c-1") },
            false,
        ),
        (
            pod("c-2").primary_is("c-1").no_address(),
            true,
            BootRole::Isolated,
            true,
        ),
        (pod("c-2").no_primary(), true, BootRole::Isolated, true),
        (pod("c-2").uninitialised("c-1"), true, BootRole::Isolated, true),
        (pod("c-1").uninitialised("c-1"), false, BootRole::Primary, false),
        // The old primary of a switchover that restarts before the target is promoted.
        (
            pod("c-1").current("c-1").target("c-2"),
            true,
            BootRole::Isolated,
            true,
        ),
    ];
    for (desired, on_disk, role, fenced) in cases {
        assert_eq!(
            boot_plan(&desired, on_disk),
            (role.clone(), fenced),
            "{desired:?} with dataset on disk {on_disk}"
        );
    }
}

#[test]
fn a_stale_target_nobody_asked_to_promote_boots_as_a_replica_of_the_current_primary() {
    // Named target by a switchover nobody acts on any more: when the primary's lease lapses it must not
    // take the lease and promote itself, maybe behind another replica that acknowledged writes.
    let stale = pod("c-2").current("c-1").target("c-2");
    assert_eq!(
        boot_plan(&stale, true),
        (BootRole::Replica { address: addr("c-1") }, false)
    );
    assert!(!decide(&replica_of("c-1"), &stale).contains(&Action::PromoteToPrimary));
}

#[test]
fn a_switchover_target_that_restarts_before_it_holds_the_lease_follows_the_current_primary() {
    // The target of a switchover from c-1, restarted (its server killed) before the lease was handed to
    // it: boot_plan makes it primary, the lease is c-1's, so it replicates from c-1 to catch up.
    let desired = pod("c-2").current("c-1").target("c-2").asked_to_promote();
    assert_eq!(boot_plan(&desired, true), (BootRole::Primary, false));
    assert_eq!(
        boot_without_lease(&desired),
        (BootRole::Replica { address: addr("c-1") }, false)
    );
    assert_eq!(
        boot_without_lease(&desired.clone().fence_requested()),
        (BootRole::Replica { address: addr("c-1") }, true)
    );
    // Restarted without a dataset on disk (a demoted primary that never wrote a snapshot): not primary,
    // and not isolated either, where it could never catch up: it follows c-1 at once.
    assert_eq!(
        boot_plan(&desired.clone().with_data(), false),
        (BootRole::Replica { address: addr("c-1") }, false)
    );
    assert_eq!(
        boot_plan(&desired.clone().with_data().no_address(), false),
        (BootRole::Isolated, true)
    );
    // The current primary itself, or no primary to follow: isolated and fenced.
    for desired in [
        pod("c-1").primary_is("c-1"),
        pod("c-2").current("c-1").target("c-2").no_address(),
        pod("c-2").no_primary().target("c-2"),
    ] {
        assert_eq!(
            boot_without_lease(&desired),
            (BootRole::Isolated, true),
            "{desired:?}"
        );
    }
}

#[test]
fn a_restarted_primary_is_never_promoted_and_says_why() {
    let desired = pod("c-1").primary_is("c-1").with_data();
    let restarted = Observed {
        role: ServerRole::Replica {
            primary: "127.0.0.1:1".to_string(),
            link_up: false,
            sync_in_progress: false,
        },
        fenced: true,
        restarted_primary: true,
        ..primary()
    };
    assert!(is_primary_restart(&desired));
    assert!(!decide(&restarted, &desired).contains(&PromoteToPrimary));
    assert_eq!(
        fence_reasons(&restarted, &desired).first(),
        Some(&RestartedPrimary)
    );
    // Once the operator names another primary, it follows it and its fence is lifted.
    let after = pod("c-1").primary_is("c-2").with_data();
    let actions = decide(
        &Observed {
            restarted_primary: false,
            ..restarted.clone()
        },
        &after,
    );
    assert!(
        actions.iter().any(|a| matches!(a, FollowPrimary { .. })),
        "{actions:?}"
    );
    assert!(actions.contains(&Unfence), "{actions:?}");
}
