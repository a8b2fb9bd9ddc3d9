//! `PodState` (what the runtime sees) → the `pods/status` patch, with upstream's phase rules and
//! conditions. Pure; sent by the caller as a strategic-merge patch, which merges `conditions` by type so
//! the scheduler's `PodScheduled` is kept.

use std::time::SystemTime;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::runtime::plan::{ContainerState, PodState, ProcessState, RestartPolicy, Termination};

/// What the status says beyond the runtime's view.
pub struct StatusInputs<'a> {
    pub pod: &'a Pod,
    pub state: &'a PodState,
    pub restart_policy: RestartPolicy,
    pub pod_ip: &'a str,
    pub host_ip: &'a str,
    pub start_time: SystemTime,
    pub now: SystemTime,
}

/// The `status` object to patch.
pub fn pod_status(inputs: &StatusInputs) -> Value {
    let state = inputs.state;
    let spec = inputs.pod.spec.as_ref();
    let image_of = |name: &str, init: bool| {
        let list = if init {
            spec.and_then(|s| s.init_containers.as_ref())
        } else {
            spec.map(|s| &s.containers)
        };
        list.into_iter()
            .flatten()
            .find(|c| c.name == name)
            .and_then(|c| c.image.clone())
            .unwrap_or_default()
    };
    let containers_ready =
        state.initialized && !state.containers.is_empty() && state.containers.iter().all(|c| c.ready);
    let gates_ready = spec
        .and_then(|s| s.readiness_gates.as_ref())
        .into_iter()
        .flatten()
        .all(|gate| condition_status(inputs.pod, &gate.condition_type).as_deref() == Some("True"));
    let phase = phase(state, inputs.restart_policy);
    let conditions = [
        ("PodReadyToStartContainers", true, None),
        ("Initialized", state.initialized, (!state.initialized).then_some("ContainersNotInitialized")),
        ("ContainersReady", containers_ready, (!containers_ready).then_some("ContainersNotReady")),
        ("Ready", containers_ready && gates_ready, (!(containers_ready && gates_ready)).then_some("ContainersNotReady")),
    ]
    .into_iter()
    .map(|(kind, ok, reason)| {
        let status = if ok { "True" } else { "False" };
        let unchanged = condition_status(inputs.pod, kind).as_deref() == Some(status);
        let transition = if unchanged {
            condition_transition(inputs.pod, kind).unwrap_or_else(|| rfc3339(inputs.now))
        } else {
            rfc3339(inputs.now)
        };
        // `null` removes a reason a previous patch left (a strategic merge keeps fields not named).
        json!({ "type": kind, "status": status, "reason": reason, "lastProbeTime": null, "lastTransitionTime": transition })
    })
    .collect::<Vec<_>>();
    json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": inputs.host_ip,
        // `$patch: replace`: a strategic merge would otherwise merge a changed IP into the list by key.
        "hostIPs": [{ "ip": inputs.host_ip }, { "$patch": "replace" }],
        "podIP": inputs.pod_ip,
        "podIPs": [{ "ip": inputs.pod_ip }, { "$patch": "replace" }],
        "startTime": rfc3339(inputs.start_time),
        "initContainerStatuses": state.init_containers.iter().map(|c| container_status(c, &image_of(&c.name, true))).collect::<Vec<_>>(),
        "containerStatuses": state.containers.iter().map(|c| container_status(c, &image_of(&c.name, false))).collect::<Vec<_>>(),
    })
}

/// Upstream's phase: Pending until every container has started once; Succeeded/Failed once every
/// container has terminated for good; Running otherwise.
pub fn phase(state: &PodState, policy: RestartPolicy) -> &'static str {
    let terminated = |c: &ContainerState| match &c.state {
        ProcessState::Terminated(t) => Some(t.exit_code),
        _ => None,
    };
    if state.finished
        || (policy == RestartPolicy::Never
            && state
                .init_containers
                .iter()
                .any(|c| terminated(c).is_some_and(|code| code != 0)))
    {
        let init_failed = state
            .init_containers
            .iter()
            .any(|c| terminated(c).is_some_and(|code| code != 0));
        let all_succeeded = state.containers.iter().all(|c| terminated(c) == Some(0));
        return if !init_failed && all_succeeded && !state.containers.is_empty() {
            "Succeeded"
        } else {
            "Failed"
        };
    }
    if !state.initialized {
        return "Pending";
    }
    let ever_started = |c: &ContainerState| {
        matches!(
            c.state,
            ProcessState::Running { .. } | ProcessState::Terminated(_)
        ) || c.last_termination.is_some()
    };
    if state.containers.iter().all(ever_started) {
        "Running"
    } else {
        "Pending"
    }
}

fn container_status(c: &ContainerState, image: &str) -> Value {
    let mut status = json!({
        "name": c.name,
        "state": process_state(&c.state),
        "lastState": c.last_termination.as_ref().map(|t| json!({ "terminated": termination(t) })).unwrap_or_else(|| json!({})),
        "ready": c.ready,
        "started": c.started,
        "restartCount": c.restart_count,
        "image": image,
        "imageID": format!("cnredis-e2e://{image}"),
    });
    if let Some(id) = &c.container_id {
        status["containerID"] = json!(id);
    }
    status
}

fn process_state(state: &ProcessState) -> Value {
    match state {
        ProcessState::Waiting { reason, message } => {
            let mut waiting = json!({ "reason": reason });
            if let Some(message) = message {
                waiting["message"] = json!(message);
            }
            json!({ "waiting": waiting })
        }
        ProcessState::Running { started_at } => json!({ "running": { "startedAt": rfc3339(*started_at) } }),
        ProcessState::Terminated(t) => json!({ "terminated": termination(t) }),
    }
}

fn termination(t: &Termination) -> Value {
    let mut out =
        json!({ "exitCode": t.exit_code, "reason": t.reason, "finishedAt": rfc3339(t.finished_at) });
    if let Some(started) = t.started_at {
        out["startedAt"] = json!(rfc3339(started));
    }
    if let Some(signal) = t.signal {
        out["signal"] = json!(signal);
    }
    if let Some(message) = &t.message {
        out["message"] = json!(message);
    }
    out
}

/// Whether the pod as stored disagrees with `status` (from [`pod_status`]) on a condition the kubelet owns.
/// Someone else changed it — the node lifecycle controller marks the pods of a node it saw NotReady not
/// ready, possibly after the node came back — and the kubelet must say again what it sees.
pub fn conditions_differ(pod: &Pod, status: &Value) -> bool {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|condition| {
            let kind = condition["type"].as_str().unwrap_or_default();
            condition_status(pod, kind).as_deref() != condition["status"].as_str()
        })
}

fn condition_status(pod: &Pod, kind: &str) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
}

fn condition_transition(pod: &Pod, kind: &str) -> Option<String> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)?;
    condition.last_transition_time.as_ref().map(|t| t.0.to_string())
}

/// Seconds-precision RFC 3339, as Kubernetes `Time` serializes.
pub fn rfc3339(at: SystemTime) -> String {
    let ts = Timestamp::try_from(at).unwrap_or(Timestamp::UNIX_EPOCH);
    Time(Timestamp::from_second(ts.as_second()).unwrap_or(ts))
        .0
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn running(name: &str, ready: bool) -> ContainerState {
        ContainerState {
            name: name.into(),
            state: ProcessState::Running {
                started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(100),
            },
            last_termination: None,
            restart_count: 0,
            started: true,
            ready,
            container_id: Some(format!("cnredis://u/{name}/0")),
        }
    }

    fn exited(name: &str, code: i32) -> ContainerState {
        ContainerState {
            state: ProcessState::Terminated(Termination {
                exit_code: code,
                signal: None,
                reason: if code == 0 {
                    "Completed".into()
                } else {
                    "Error".into()
                },
                message: None,
                started_at: None,
                finished_at: SystemTime::UNIX_EPOCH + Duration::from_secs(200),
            }),
            ready: false,
            ..running(name, false)
        }
    }

    fn waiting(name: &str, reason: &str) -> ContainerState {
        ContainerState {
            state: ProcessState::Waiting {
                reason: reason.into(),
                message: None,
            },
            started: false,
            ready: false,
            container_id: None,
            ..running(name, false)
        }
    }

    fn pod_state(
        init: Vec<ContainerState>,
        containers: Vec<ContainerState>,
        initialized: bool,
        finished: bool,
    ) -> PodState {
        PodState {
            init_containers: init,
            containers,
            initialized,
            finished,
        }
    }

    fn pod(status: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": "p" },
            "spec": { "containers": [{ "name": "main", "image": "valkey/valkey:8.1.4" }], "initContainers": [{ "name": "init", "image": "cnredis/cnredis:0.1.0" }] },
            "status": status
        }))
        .unwrap()
    }

    fn inputs<'a>(pod: &'a Pod, state: &'a PodState, now: u64) -> StatusInputs<'a> {
        StatusInputs {
            pod,
            state,
            restart_policy: RestartPolicy::Always,
            pod_ip: "10.244.0.2",
            host_ip: "10.245.0.11",
            start_time: SystemTime::UNIX_EPOCH + Duration::from_secs(50),
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(now),
        }
    }

    fn condition<'a>(status: &'a Value, kind: &str) -> &'a Value {
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == kind)
            .unwrap()
    }

    #[test]
    fn a_pod_whose_init_container_runs_is_pending_and_not_initialized() {
        let state = pod_state(
            vec![running("init", false)],
            vec![waiting("main", "PodInitializing")],
            false,
            false,
        );
        assert_eq!(phase(&state, RestartPolicy::Always), "Pending");
        let p = pod(json!({}));
        let status = pod_status(&inputs(&p, &state, 300));
        assert_eq!(condition(&status, "Initialized")["status"], "False");
        assert_eq!(
            status["containerStatuses"][0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        assert_eq!(
            status["initContainerStatuses"][0]["image"],
            "cnredis/cnredis:0.1.0"
        );
    }

    #[test]
    fn a_running_ready_pod_is_ready_with_its_addresses() {
        let state = pod_state(vec![exited("init", 0)], vec![running("main", true)], true, false);
        let p = pod(json!({}));
        let status = pod_status(&inputs(&p, &state, 300));
        assert_eq!(status["phase"], "Running");
        assert_eq!(condition(&status, "Ready")["status"], "True");
        assert_eq!(condition(&status, "ContainersReady")["status"], "True");
        assert_eq!(status["podIP"], "10.244.0.2");
        assert_eq!(status["hostIPs"][0]["ip"], "10.245.0.11");
        assert_eq!(
            status["containerStatuses"][0]["state"]["running"]["startedAt"],
            "1970-01-01T00:01:40Z"
        );
    }

    #[test]
    fn a_running_container_failing_readiness_leaves_the_pod_not_ready() {
        let state = pod_state(vec![], vec![running("main", false)], true, false);
        let p = pod(json!({}));
        let status = pod_status(&inputs(&p, &state, 300));
        assert_eq!(status["phase"], "Running");
        assert_eq!(condition(&status, "Ready")["status"], "False");
        assert_eq!(condition(&status, "Ready")["reason"], "ContainersNotReady");
    }

    #[test]
    fn a_ready_condition_someone_else_set_false_is_said_again() {
        let state = pod_state(vec![], vec![running("main", true)], true, false);
        let reported = pod(json!({}));
        let status = pod_status(&inputs(&reported, &state, 300));
        assert!(
            status["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["reason"].is_null())
        );
        // As stored after the kubelet's patch: nothing to say again.
        let stored = pod(json!({ "conditions": status["conditions"] }));
        assert!(!conditions_differ(&stored, &status));
        // The node lifecycle controller marked it not ready while the node was away.
        let mut marked = status["conditions"].clone();
        marked[3]["status"] = json!("False");
        let marked = pod(json!({ "conditions": marked }));
        assert!(conditions_differ(
            &marked,
            &pod_status(&inputs(&marked, &state, 300))
        ));
    }

    #[test]
    fn transition_time_is_kept_while_a_condition_does_not_change() {
        let state = pod_state(vec![], vec![running("main", true)], true, false);
        let before = pod(
            json!({ "conditions": [{ "type": "Ready", "status": "True", "lastTransitionTime": "1970-01-01T00:02:00Z" }] }),
        );
        let status = pod_status(&inputs(&before, &state, 500));
        assert_eq!(
            condition(&status, "Ready")["lastTransitionTime"],
            "1970-01-01T00:02:00Z"
        );
        assert_eq!(
            condition(&status, "Initialized")["lastTransitionTime"],
            "1970-01-01T00:08:20Z"
        );
    }

    #[test]
    fn unmet_readiness_gate_keeps_the_pod_not_ready() {
        let state = pod_state(vec![], vec![running("main", true)], true, false);
        let mut p = pod(json!({}));
        p.spec.as_mut().unwrap().readiness_gates = Some(vec![
            serde_json::from_value(json!({ "conditionType": "example.com/gate" })).unwrap(),
        ]);
        let status = pod_status(&inputs(&p, &state, 300));
        assert_eq!(condition(&status, "ContainersReady")["status"], "True");
        assert_eq!(condition(&status, "Ready")["status"], "False");
    }

    #[test]
    fn finished_pods_succeed_or_fail_by_exit_codes() {
        let ok = pod_state(vec![], vec![exited("main", 0)], true, true);
        assert_eq!(phase(&ok, RestartPolicy::Never), "Succeeded");
        let failed = pod_state(vec![], vec![exited("main", 1)], true, true);
        assert_eq!(phase(&failed, RestartPolicy::Never), "Failed");
        let init_failed = pod_state(
            vec![exited("init", 2)],
            vec![waiting("main", "PodInitializing")],
            false,
            false,
        );
        assert_eq!(phase(&init_failed, RestartPolicy::Never), "Failed");
        assert_eq!(phase(&init_failed, RestartPolicy::Always), "Pending");
    }

    #[test]
    fn a_restarting_container_keeps_the_pod_running() {
        let mut crashing = waiting("main", "CrashLoopBackOff");
        crashing.restart_count = 3;
        crashing.last_termination = Some(Termination {
            exit_code: 1,
            signal: None,
            reason: "Error".into(),
            message: Some("exit status 1".into()),
            started_at: None,
            finished_at: SystemTime::UNIX_EPOCH,
        });
        let state = pod_state(vec![], vec![crashing], true, false);
        assert_eq!(phase(&state, RestartPolicy::Always), "Running");
        let p = pod(json!({}));
        let status = pod_status(&inputs(&p, &state, 300));
        assert_eq!(
            status["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
            1
        );
        assert_eq!(status["containerStatuses"][0]["restartCount"], 3);
    }
}
