//! Every admission rule of the API, one accepting and one rejecting case each, plus the defaults a user
//! sees with `kubectl get -o yaml`.

mod support;

use serde_json::json;
use support::*;

// --- defaults --------------------------------------------------------------------------------------

#[test]
fn empty_spec_gets_the_documented_defaults() {
    let minimal = json!({
        "apiVersion": "redis.cnredis.io/v1", "kind": "RedisCluster",
        "metadata": { "name": "cache" }, "spec": {}
    });
    let spec = &accepted(&minimal, None)["spec"];
    assert_eq!(spec["instances"], 1);
    assert_eq!(spec["mode"], "standalone");
    assert_eq!(spec["imageName"], cnredis_api::cluster::DEFAULT_IMAGE);
    assert!(cnredis_api::cluster::DEFAULT_IMAGE.starts_with("valkey/valkey:8."));
    assert_eq!(spec["persistence"]["mode"], "rdb+aof");
    assert_eq!(spec["persistence"]["appendFsync"], "everysec");
    assert_eq!(spec["auth"]["enabled"], true);
    assert_eq!(spec["affinity"]["podAntiAffinityType"], "preferred");
    assert_eq!(spec["affinity"]["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(spec["enablePDB"], true);
    assert_eq!(spec["storage"]["size"], "1Gi");
    assert_eq!(spec["memory"]["maxmemoryPercent"], 70);
    assert_eq!(spec["memory"]["policy"], "noeviction");
    assert_eq!(spec["primaryUpdateStrategy"], "unsupervised");
    assert_eq!(spec["primaryUpdateMethod"], "switchover");
    assert_eq!(spec["failover"]["delaySeconds"], 3);
    assert_eq!(spec["failover"]["primaryLeaseSeconds"], 6);
    assert_eq!(spec["pvcRetentionPolicy"], "Delete");
    assert_eq!(spec["stopDelaySeconds"], 30);
}

#[test]
fn schema_defaults_match_the_rust_defaults() {
    // The operator deserializes objects the API server defaulted; both must agree on every default.
    let minimal = json!({
        "apiVersion": "redis.cnredis.io/v1", "kind": "RedisCluster",
        "metadata": { "name": "cache" }, "spec": {}
    });
    let defaulted = accepted(&minimal, None);
    let from_server: cnredis_api::RedisClusterSpec =
        serde_json::from_value(defaulted["spec"].clone()).unwrap();
    assert_eq!(from_server, cnredis_api::RedisClusterSpec::with_defaults());
}

#[test]
fn partially_given_objects_are_completed_field_by_field() {
    let c = with(
        &cluster("cache"),
        "spec.persistence",
        json!({ "appendFsync": "always" }),
    );
    let spec = &accepted(&c, None)["spec"];
    assert_eq!(spec["persistence"]["mode"], "rdb+aof");
    assert_eq!(spec["persistence"]["appendFsync"], "always");
}

// --- RedisCluster: name ----------------------------------------------------------------------------

#[test]
fn cluster_name_of_fifty_characters_is_accepted() {
    accepted(&cluster(&"a".repeat(50)), None);
}

#[test]
fn cluster_name_longer_than_fifty_characters_is_rejected() {
    rejected(&cluster(&"a".repeat(51)), None, "at most 50 characters");
}

#[test]
fn cluster_name_starting_with_a_letter_is_accepted() {
    accepted(&cluster("cache-2b"), None);
}

#[test]
fn cluster_name_starting_with_a_digit_is_rejected() {
    rejected(&cluster("2cache"), None, "must start with a letter");
}

// --- instances -------------------------------------------------------------------------------------

#[test]
fn sixteen_instances_are_accepted() {
    accepted(&with(&cluster("c"), "spec.instances", json!(16)), None);
}

#[test]
fn zero_instances_give_one_error_not_a_cascade() {
    let errors = admit(&with(&cluster("c"), "spec.instances", json!(0)), None).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
}

#[test]
fn zero_or_seventeen_instances_are_rejected() {
    rejected(
        &with(&cluster("c"), "spec.instances", json!(0)),
        None,
        "instances must be between 1 and 16",
    );
    rejected(
        &with(&cluster("c"), "spec.instances", json!(17)),
        None,
        "instances must be between 1 and 16",
    );
}

// --- mode ------------------------------------------------------------------------------------------

#[test]
fn standalone_mode_is_accepted() {
    accepted(&with(&cluster("c"), "spec.mode", json!("standalone")), None);
}

#[test]
fn sentinel_mode_is_rejected_until_it_exists() {
    rejected(
        &with(&cluster("c"), "spec.mode", json!("sentinel")),
        None,
        "mode must be standalone",
    );
}

#[test]
fn unknown_mode_is_rejected_by_the_enum() {
    rejected(
        &with(&cluster("c"), "spec.mode", json!("sharded")),
        None,
        "Unsupported value: \"sharded\"",
    );
}

#[test]
fn unchanged_mode_passes_the_transition_rule() {
    let old = with(&cluster("c"), "spec.mode", json!("standalone"));
    accepted(&with(&old, "spec.instances", json!(5)), Some(&old));
}

#[test]
fn changed_mode_fails_the_transition_rule() {
    let old = with(&cluster("c"), "spec.mode", json!("standalone"));
    rejected(
        &with(&old, "spec.mode", json!("cluster")),
        Some(&old),
        "mode cannot change after creation",
    );
}

// --- parameters ------------------------------------------------------------------------------------

#[test]
fn user_parameters_are_accepted() {
    let c = with(
        &cluster("c"),
        "spec.parameters",
        json!({ "maxmemory-samples": "10", "timeout": "300" }),
    );
    accepted(&c, None);
}

#[test]
fn operator_owned_parameters_are_rejected() {
    for owned in [
        "port",
        "dir",
        "replicaof",
        "requirepass",
        "appendonly",
        "maxmemory",
        "min-replicas-to-write",
    ] {
        let c = with(&cluster("c"), "spec.parameters", json!({ owned: "x" }));
        rejected(&c, None, "is managed by cnredis and cannot be set");
    }
}

#[test]
fn owned_parameters_are_rejected_whatever_their_case() {
    let c = with(
        &cluster("c"),
        "spec.parameters",
        json!({ "RequirePass": "x", "timeout": "0" }),
    );
    rejected(
        &c,
        None,
        "parameter RequirePass is managed by cnredis and cannot be set; use the dedicated spec fields",
    );
}

#[test]
fn the_rule_covers_exactly_the_owned_parameter_list() {
    let rule = cnredis_api::cluster::owned_parameters_rule();
    for owned in cnredis_api::cluster::OPERATOR_OWNED_PARAMETERS {
        assert!(
            rule.contains(&format!("'{owned}'")),
            "{owned} missing from {rule}"
        );
        let c = with(&cluster("c"), "spec.parameters", json!({ *owned: "x" }));
        rejected(&c, None, "is managed by cnredis and cannot be set");
    }
}

#[test]
fn more_than_64_parameters_are_rejected() {
    let many: serde_json::Map<String, serde_json::Value> =
        (0..65).map(|i| (format!("p{i}"), json!("v"))).collect();
    rejected(
        &with(&cluster("c"), "spec.parameters", json!(many)),
        None,
        "must have at most 64 items",
    );
}

#[test]
fn save_parameter_with_rdb_persistence_is_accepted() {
    let c = with(&cluster("c"), "spec.parameters", json!({ "save": "900 1" }));
    accepted(&with(&c, "spec.persistence", json!({ "mode": "rdb" })), None);
}

#[test]
fn save_parameter_without_rdb_persistence_is_rejected() {
    let c = with(&cluster("c"), "spec.parameters", json!({ "save": "900 1" }));
    rejected(
        &with(&c, "spec.persistence", json!({ "mode": "aof" })),
        None,
        "parameters.save takes effect only",
    );
}

// --- failover --------------------------------------------------------------------------------------

#[test]
fn sync_replicas_below_instances_are_accepted() {
    accepted(
        &with(&cluster("c"), "spec.failover", json!({ "minSyncReplicas": 2 })),
        None,
    );
}

#[test]
fn sync_replicas_equal_to_instances_are_rejected() {
    let c = with(&cluster("c"), "spec.failover", json!({ "minSyncReplicas": 3 }));
    rejected(&c, None, "failover.minSyncReplicas must be lower than instances");
}

// --- storage ---------------------------------------------------------------------------------------

#[test]
fn storage_size_quantity_is_accepted() {
    accepted(
        &with(&cluster("c"), "spec.storage", json!({ "size": "500Mi" })),
        None,
    );
}

#[test]
fn storage_size_that_is_no_quantity_or_zero_is_rejected() {
    rejected(
        &with(&cluster("c"), "spec.storage", json!({ "size": "lots" })),
        None,
        "positive quantity",
    );
    rejected(
        &with(&cluster("c"), "spec.storage", json!({ "size": "0" })),
        None,
        "positive quantity",
    );
}

#[test]
fn every_storage_size_admission_accepts_is_one_the_operator_reads() {
    // The spellings the quantity grammar allows beyond the usual `1Gi`: exponents, a sign, exa, fractions.
    let sizes = [
        "1Gi",
        "500M",
        "1073741824",
        "1e9",
        "1E9",
        "1e+9",
        "+1Gi",
        "+5G",
        "2E",
        "1Ei",
        "1.5Gi",
        ".5Gi",
        "1500m",
        "1e18",
        "8Ei",
        "1P",
        "2Pi",
        "100k",
        "64Ki",
    ];
    let mut admitted = 0;
    for size in sizes {
        let object = with(&cluster("c"), "spec.storage", json!({ "size": size }));
        if admit(&object, None).is_ok() {
            admitted += 1;
            let read = cnredis_api::quantity::bytes(size);
            assert!(read.is_ok(), "admitted {size:?} but the operator reads {read:?}");
        }
    }
    // The exponent and sign spellings are admitted: the check above is not vacuous.
    assert!(
        admitted >= 15,
        "only {admitted} of {} sizes admitted",
        sizes.len()
    );
}

#[test]
fn storage_can_grow() {
    let old = with(&cluster("c"), "spec.storage", json!({ "size": "1Gi" }));
    accepted(&with(&old, "spec.storage.size", json!("2Gi")), Some(&old));
}

#[test]
fn storage_cannot_shrink() {
    let old = with(&cluster("c"), "spec.storage", json!({ "size": "2Gi" }));
    rejected(
        &with(&old, "spec.storage.size", json!("1500Mi")),
        Some(&old),
        "storage.size can grow but not shrink",
    );
}

#[test]
fn unchanged_storage_class_is_accepted() {
    let old = with(
        &cluster("c"),
        "spec.storage",
        json!({ "size": "1Gi", "storageClass": "fast" }),
    );
    accepted(&with(&old, "spec.storage.size", json!("2Gi")), Some(&old));
}

#[test]
fn changed_or_added_storage_class_is_rejected() {
    let old = with(
        &cluster("c"),
        "spec.storage",
        json!({ "size": "1Gi", "storageClass": "fast" }),
    );
    let msg = "storage.storageClass cannot change after creation";
    rejected(
        &with(&old, "spec.storage.storageClass", json!("slow")),
        Some(&old),
        msg,
    );
    let unset = with(&cluster("c"), "spec.storage", json!({ "size": "1Gi" }));
    rejected(
        &with(&unset, "spec.storage.storageClass", json!("fast")),
        Some(&unset),
        msg,
    );
}

// --- persistence, memory (schema) ------------------------------------------------------------------

#[test]
fn known_persistence_mode_is_accepted() {
    accepted(
        &with(&cluster("c"), "spec.persistence", json!({ "mode": "none" })),
        None,
    );
}

#[test]
fn unknown_persistence_mode_is_rejected() {
    rejected(
        &with(&cluster("c"), "spec.persistence", json!({ "mode": "fast" })),
        None,
        "Unsupported value: \"fast\"",
    );
}

#[test]
fn maxmemory_percent_in_range_is_accepted() {
    accepted(
        &with(&cluster("c"), "spec.memory", json!({ "maxmemoryPercent": 95 })),
        None,
    );
}

#[test]
fn maxmemory_percent_out_of_range_is_rejected() {
    rejected(
        &with(&cluster("c"), "spec.memory", json!({ "maxmemoryPercent": 99 })),
        None,
        "less than or equal to 95",
    );
}

#[test]
fn unknown_field_is_rejected() {
    rejected(
        &with(&cluster("c"), "spec.replicas", json!(3)),
        None,
        "unknown field \"replicas\"",
    );
}

// --- auth ------------------------------------------------------------------------------------------

#[test]
fn named_password_secret_with_auth_enabled_is_accepted() {
    accepted(
        &with(
            &cluster("c"),
            "spec.auth",
            json!({ "enabled": true, "secretName": "pw" }),
        ),
        None,
    );
}

#[test]
fn named_password_secret_with_auth_disabled_is_rejected() {
    let c = with(
        &cluster("c"),
        "spec.auth",
        json!({ "enabled": false, "secretName": "pw" }),
    );
    rejected(&c, None, "auth.secretName needs auth.enabled: true");
}

// --- backup ----------------------------------------------------------------------------------------

#[test]
fn s3_destination_is_accepted() {
    accepted(&cluster_with_backup("c"), None);
}

#[test]
fn destination_that_is_not_an_s3_url_is_rejected() {
    let msg = "destinationPath must be an s3:// URL";
    for bad in ["https://backups/cnredis", "s3://", "backups"] {
        rejected(
            &with(
                &cluster_with_backup("c"),
                "spec.backup.objectStore.destinationPath",
                json!(bad),
            ),
            None,
            msg,
        );
    }
}

#[test]
fn http_endpoint_is_accepted() {
    let c = with(
        &cluster_with_backup("c"),
        "spec.backup.objectStore.endpointURL",
        json!("https://s3.example:443"),
    );
    accepted(&c, None);
}

#[test]
fn endpoint_without_scheme_is_rejected() {
    let c = with(
        &cluster_with_backup("c"),
        "spec.backup.objectStore.endpointURL",
        json!("minio:9000"),
    );
    rejected(&c, None, "endpointURL must start with http:// or https://");
}

#[test]
fn retention_in_days_weeks_or_months_is_accepted() {
    for ok in ["30d", "4w", "6m"] {
        accepted(
            &with(
                &cluster_with_backup("c"),
                "spec.backup.retentionPolicy",
                json!(ok),
            ),
            None,
        );
    }
}

#[test]
fn retention_without_unit_or_in_years_is_rejected() {
    for bad in ["30", "1y", "0d"] {
        let c = with(
            &cluster_with_backup("c"),
            "spec.backup.retentionPolicy",
            json!(bad),
        );
        rejected(
            &c,
            None,
            "retentionPolicy must be a number of days, weeks or months",
        );
    }
}

// --- bootstrap -------------------------------------------------------------------------------------

#[test]
fn recovery_from_a_backup_is_accepted() {
    let c = with(
        &cluster("c"),
        "spec.bootstrap",
        json!({ "recovery": { "backup": { "name": "b1" } } }),
    );
    accepted(&c, None);
}

#[test]
fn recovery_from_both_or_neither_source_is_rejected() {
    let msg = "bootstrap.recovery needs exactly one of backup";
    let both =
        json!({ "recovery": { "backup": { "name": "b1" }, "source": { "objectStore": object_store() } } });
    rejected(&with(&cluster("c"), "spec.bootstrap", both), None, msg);
    rejected(
        &with(&cluster("c"), "spec.bootstrap", json!({ "recovery": {} })),
        None,
        msg,
    );
}

#[test]
fn unchanged_bootstrap_is_accepted_on_update() {
    let old = with(
        &cluster("c"),
        "spec.bootstrap",
        json!({ "recovery": { "backup": { "name": "b1" } } }),
    );
    accepted(&with(&old, "spec.instances", json!(2)), Some(&old));
}

#[test]
fn bootstrap_added_or_changed_after_creation_is_rejected() {
    let msg = "bootstrap is used only when the cluster is created";
    let old = cluster("c");
    let added = with(
        &old,
        "spec.bootstrap",
        json!({ "recovery": { "backup": { "name": "b1" } } }),
    );
    rejected(&added, Some(&old), msg);
    let changed = with(&added, "spec.bootstrap.recovery.backup.name", json!("b2"));
    rejected(&changed, Some(&added), msg);
}

// --- RedisBackup -----------------------------------------------------------------------------------

#[test]
fn backup_update_that_keeps_the_spec_is_accepted() {
    let old = backup("b1", "cache");
    let relabelled = with(&old, "metadata.labels", json!({ "team": "a" }));
    accepted(&relabelled, Some(&old));
}

#[test]
fn backup_spec_change_is_rejected() {
    let old = backup("b1", "cache");
    rejected(
        &with(&old, "spec.cluster.name", json!("other")),
        Some(&old),
        "the spec of a RedisBackup cannot change",
    );
}

#[test]
fn backup_without_a_cluster_is_rejected() {
    rejected(
        &with(&backup("b1", "cache"), "spec.cluster", serde_json::Value::Null),
        None,
        "spec.cluster: Required value",
    );
}

// --- RedisScheduledBackup --------------------------------------------------------------------------

#[test]
fn six_field_schedule_is_accepted() {
    let s = accepted(&scheduled_backup("nightly", "cache", "0 0 2 * * *"), None);
    assert_eq!(s["spec"]["suspend"], false);
    assert_eq!(s["spec"]["immediate"], false);
    assert_eq!(s["spec"]["backupOwnerReference"], "none");
}

#[test]
fn five_field_schedule_is_rejected() {
    rejected(
        &scheduled_backup("nightly", "cache", "0 2 * * *"),
        None,
        "schedule needs six fields",
    );
}

#[test]
fn unknown_owner_reference_policy_is_rejected() {
    let s = with(
        &scheduled_backup("n", "cache", "0 0 2 * * *"),
        "spec.backupOwnerReference",
        json!("namespace"),
    );
    rejected(&s, None, "Unsupported value: \"namespace\"");
}

#[test]
fn owned_parameter_message_names_exactly_the_offending_keys() {
    let c = with(
        &cluster("c"),
        "spec.parameters",
        json!({ "port": "7000", "timeout": "0" }),
    );
    let errors = admit(&c, None).unwrap_err();
    assert_eq!(
        errors,
        vec![
            "spec.parameters: parameter port is managed by cnredis and cannot be set; use the dedicated spec fields instead (see docs/api.md)"
        ]
    );
}
