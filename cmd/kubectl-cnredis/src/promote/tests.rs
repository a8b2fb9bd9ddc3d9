use serde_json::{Value, json};

use super::*;

fn cluster(status: Value, annotations: Value) -> RedisCluster {
    serde_json::from_value(json!({
        "apiVersion": "redis.cnredis.io/v1",
        "kind": "RedisCluster",
        "metadata": {"name": "c", "namespace": "ns", "annotations": annotations},
        "spec": {},
        "status": status,
    }))
    .unwrap()
}

fn healthy() -> Value {
    json!({
        "phase": "Healthy",
        "currentPrimary": "c-1",
        "targetPrimary": "c-1",
        "instancesStatus": [
            {"name": "c-1", "role": "primary"},
            {"name": "c-2", "role": "replica"},
            {"name": "c-3", "role": "replica"},
        ],
    })
}

fn replica(edit: impl FnOnce(&mut Value)) -> Answer {
    let mut report = json!({
        "pod": "c-2", "cluster": "c", "answered": true, "role": "replica", "fenced": false,
        "fenceReasons": [], "emptyAfterRestart": false, "ready": true,
        "replication": {"replicationId": "r", "replicationId2": "0", "offset": 100, "secondOffset": -1,
            "primary": "c-1:6379", "link": "up", "lagBytes": 0, "lagSeconds": 1, "syncInProgress": false,
            "connectedReplicas": []},
        "dataset": {"keys": 1, "expires": 0, "usedMemoryBytes": 1, "datasetBytes": 1, "maxmemoryBytes": 0},
        "persistence": {"mode": "rdb", "loading": false, "loadedFromDisk": true, "rdbChangesSinceLastSave": 0,
            "rdbBgsaveInProgress": false, "rdbLastSaveTime": 0, "rdbLastBgsaveOk": true, "aofEnabled": false,
            "aofRewriteInProgress": false, "aofLastWriteOk": true},
        "lease": "notPrimary", "engine": "valkey", "engineVersion": "8.1.8", "managerVersion": "0.1.0",
        "managerUptimeSeconds": 10, "serverUptimeSeconds": 10, "serverRestarts": 0, "pendingRestart": [],
    });
    edit(&mut report);
    Answer::Report(Box::new(serde_json::from_value(report).unwrap()))
}

#[test]
fn an_in_sync_replica_may_be_promoted() {
    assert_eq!(
        check(&cluster(healthy(), json!({})), "c-2", Some(&replica(|_| {}))),
        Ok(true)
    );
}

#[test]
fn promoting_the_primary_is_a_no_op() {
    assert_eq!(check(&cluster(healthy(), json!({})), "c-1", None), Ok(false));
}

#[test]
fn refusals_name_their_reason() {
    let fenced = json!({"cnredis.io/fencedInstances": "[\"c-2\"]"});
    let all_fenced = json!({"cnredis.io/fencedInstances": "[\"*\"]"});
    let mut failing = healthy();
    failing["primaryFailing"] =
        json!({"pod": "c-1", "since": "2026-12-02T06:00:00Z", "reason": "PodDeleted", "message": "deleted"});
    let mut failover = healthy();
    failover["failover"] = json!({"from": "c-1", "reason": "PodDeleted", "since": "2026-12-02T06:00:00Z",
        "started": "2026-12-02T06:00:01Z", "step": "Fencing"});
    let mut switching = healthy();
    switching["targetPrimary"] = json!("c-3");
    let mut headless = healthy();
    headless.as_object_mut().unwrap().remove("currentPrimary");
    let in_sync = replica(|_| {});
    let cases: Vec<(&str, RedisCluster, &str, Option<Answer>, &str)> = vec![
        (
            "unknown",
            cluster(healthy(), json!({})),
            "c-9",
            None,
            "c-9 is not an instance of cluster c (instances: c-1, c-2, c-3)",
        ),
        (
            "fenced",
            cluster(healthy(), fenced),
            "c-2",
            Some(in_sync.clone()),
            "c-2 is fenced",
        ),
        (
            "all fenced",
            cluster(healthy(), all_fenced),
            "c-2",
            Some(in_sync.clone()),
            "c-2 is fenced",
        ),
        (
            "primary failing",
            cluster(failing, json!({})),
            "c-2",
            Some(in_sync.clone()),
            "a failover is in progress (c-1 failing since",
        ),
        (
            "failover",
            cluster(failover, json!({})),
            "c-2",
            Some(in_sync.clone()),
            "a failover is in progress (c-1 failing: Fencing)",
        ),
        (
            "switchover",
            cluster(switching, json!({})),
            "c-2",
            Some(in_sync.clone()),
            "a switchover to c-3 is already in progress",
        ),
        (
            "no primary",
            cluster(headless, json!({})),
            "c-2",
            Some(in_sync.clone()),
            "cluster c has no primary",
        ),
        (
            "link down",
            cluster(healthy(), json!({})),
            "c-2",
            Some(replica(|r| r["replication"]["link"] = json!("down"))),
            "c-2 is not in sync: its link to c-1 is down",
        ),
        (
            "syncing",
            cluster(healthy(), json!({})),
            "c-2",
            Some(replica(|r| r["replication"]["syncInProgress"] = json!(true))),
            "a full synchronisation is running",
        ),
        (
            "lagging",
            cluster(healthy(), json!({})),
            "c-2",
            Some(replica(|r| r["replication"]["lagSeconds"] = json!(60))),
            "it last heard from c-1 60s ago (bound: spec.failover.maxSyncReplicaLagSeconds = 10s)",
        ),
        (
            "loading",
            cluster(healthy(), json!({})),
            "c-2",
            Some(replica(|r| r["persistence"]["loading"] = json!(true))),
            "it is loading its dataset",
        ),
        (
            "server down",
            cluster(healthy(), json!({})),
            "c-2",
            Some(replica(|r| r["answered"] = json!(false))),
            "its server does not answer",
        ),
        (
            "primary",
            cluster(healthy(), json!({})),
            "c-2",
            Some(replica(|r| r["role"] = json!("primary"))),
            "it is not a replica (role primary)",
        ),
        (
            "silent",
            cluster(healthy(), json!({})),
            "c-2",
            Some(Answer::Error("no answer within 4s".into())),
            "its instance manager does not answer (no answer within 4s)",
        ),
    ];
    for (what, cluster, target, answer, want) in cases {
        let got = check(&cluster, target, answer.as_ref())
            .expect_err(what)
            .to_string();
        assert!(got.contains(want), "{what}: {got:?} does not contain {want:?}");
    }
}
