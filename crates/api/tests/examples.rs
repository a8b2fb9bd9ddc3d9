//! The examples in `manifests/examples/` are what users copy first: every document in them must pass
//! admission and deserialize into the API types, and together they must show every kind.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

fn examples() -> Vec<(String, Vec<Value>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../manifests/examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let documents: Vec<Value> = serde_saphyr::from_str_multiple(&text)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                documents,
            )
        })
        .collect()
}

#[test]
fn every_example_passes_admission_and_deserializes() {
    let examples = examples();
    assert!(
        examples.len() >= 4,
        "expected the example files, found {}",
        examples.len()
    );
    for (file, documents) in examples {
        for document in documents {
            let kind = document["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: document without kind"));
            if document["apiVersion"] != "redis.cnredis.io/v1" {
                assert_eq!(kind, "Secret", "{file}: unexpected kind {kind}");
                assert!(
                    document["metadata"]["name"].is_string(),
                    "{file}: Secret without a name"
                );
                continue;
            }
            let admitted = support::admit(&document, None)
                .unwrap_or_else(|errors| panic!("{file}: {kind} rejected: {errors:#?}"));
            let typed = match kind {
                "RedisCluster" => serde_json::from_value::<cnredis_api::RedisCluster>(admitted).map(drop),
                "RedisBackup" => serde_json::from_value::<cnredis_api::RedisBackup>(admitted).map(drop),
                "RedisScheduledBackup" => {
                    serde_json::from_value::<cnredis_api::RedisScheduledBackup>(admitted).map(drop)
                }
                other => panic!("{file}: unknown kind {other}"),
            };
            typed.unwrap_or_else(|e| panic!("{file}: {kind} does not deserialize: {e}"));
        }
    }
}

#[test]
fn examples_show_every_kind_and_the_ha_cluster() {
    let examples = examples();
    let kinds: BTreeSet<String> = examples
        .iter()
        .flat_map(|(_, docs)| docs.iter().filter_map(|d| d["kind"].as_str().map(String::from)))
        .collect();
    for kind in ["RedisCluster", "RedisBackup", "RedisScheduledBackup"] {
        assert!(kinds.contains(kind), "no example of {kind}");
    }
    let (_, ha) = examples
        .iter()
        .find(|(file, _)| file == "cluster-ha.yaml")
        .expect("cluster-ha.yaml exists");
    assert_eq!(
        ha[0]["spec"]["instances"], 3,
        "the HA example runs three instances"
    );
}

#[test]
fn examples_that_break_a_rule_are_caught() {
    // The check above is only as good as its ability to fail: a broken copy of an example is rejected.
    let (_, ha) = examples()
        .into_iter()
        .find(|(file, _)| file == "cluster-ha.yaml")
        .unwrap();
    let broken = support::with(&ha[0], "spec.parameters.port", serde_json::json!("7000"));
    support::rejected(&broken, None, "is managed by cnredis and cannot be set");
}
