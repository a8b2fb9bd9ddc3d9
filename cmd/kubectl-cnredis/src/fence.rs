//! `fence on|off CLUSTER INSTANCE|*`: edits the `cnredis.io/fencedInstances` annotation, then waits until
//! the instances report the fence (or its end). A fenced instance refuses writes and is never failed
//! over to; fencing the primary stops writes without a failover (docs/runbooks/fencing.md).

use std::time::{Duration, Instant};

use cnredis_api::RedisCluster;
use cnredis_api::names::{ANNOTATION_FENCED_INSTANCES, FencedInstances};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::connect::Kube;
use crate::observe;

/// The annotation after fencing (`on`) or unfencing `instance` (`*` for every instance), given the
/// instances that exist.
pub fn edit(
    current: &FencedInstances,
    instance: &str,
    on: bool,
    instances: &[String],
) -> Result<FencedInstances, String> {
    if instance != "*" && !instances.iter().any(|i| i == instance) {
        return Err(format!(
            "{instance} is not an instance of this cluster (instances: {})",
            instances.join(", ")
        ));
    }
    Ok(match (on, instance, current) {
        (true, "*", _) => FencedInstances::All,
        (false, "*", _) => FencedInstances::None,
        (true, _, FencedInstances::All) => FencedInstances::All,
        (true, name, FencedInstances::None) => FencedInstances::Some([name.to_string()].into()),
        (true, name, FencedInstances::Some(names)) => {
            let mut names = names.clone();
            names.insert(name.to_string());
            FencedInstances::Some(names)
        }
        (false, name, FencedInstances::All) => {
            // Lifting one fence of `*` leaves the others fenced.
            let rest: std::collections::BTreeSet<String> =
                instances.iter().filter(|i| *i != name).cloned().collect();
            if rest.is_empty() {
                FencedInstances::None
            } else {
                FencedInstances::Some(rest)
            }
        }
        (false, _, FencedInstances::None) => FencedInstances::None,
        (false, name, FencedInstances::Some(names)) => {
            let mut names = names.clone();
            names.remove(name);
            if names.is_empty() {
                FencedInstances::None
            } else {
                FencedInstances::Some(names)
            }
        }
    })
}

/// Attempts at the annotation edit: the operator writes the object too, and an edit made on a stale
/// `resourceVersion` is refused (409) rather than overwrite; it is then redone on a fresh read.
const EDIT_ATTEMPTS: usize = 5;

pub async fn run(
    kube: &Kube,
    cluster_name: &str,
    instance: &str,
    on: bool,
    wait: Option<Duration>,
) -> anyhow::Result<()> {
    let clusters: Api<RedisCluster> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let mut attempt = 0;
    let (pods, instances, next) = loop {
        attempt += 1;
        let cluster = observe::cluster(kube, cluster_name).await?;
        let pods = observe::pods(kube, &cluster).await?;
        let mut instances: Vec<String> = cluster
            .status
            .iter()
            .flat_map(|s| s.instances_status.iter().map(|i| i.name.clone()))
            .chain(pods.iter().map(|p| p.name_any()))
            .collect();
        instances.sort();
        instances.dedup();
        let current = FencedInstances::parse(
            cluster
                .annotations()
                .get(ANNOTATION_FENCED_INSTANCES)
                .map(String::as_str),
        )
        .map_err(|e| anyhow::anyhow!("{e}; fix the annotation by hand"))?;
        let next = edit(&current, instance, on, &instances).map_err(anyhow::Error::msg)?;
        if next == current {
            println!("{cluster_name}: nothing to change ({})", describe(&current));
            break (pods, instances, next);
        }
        // The resourceVersion makes the edit fail rather than overwrite a concurrent one.
        let patch = json!({"metadata": {
            "resourceVersion": cluster.resource_version(),
            "annotations": {ANNOTATION_FENCED_INSTANCES: next.to_annotation()},
        }});
        match clusters
            .patch(cluster_name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => {
                println!("{cluster_name}: {}", describe(&next));
                break (pods, instances, next);
            }
            Err(kube::Error::Api(status)) if status.code == 409 && attempt < EDIT_ATTEMPTS => continue,
            Err(e) => anyhow::bail!("cannot annotate {cluster_name}: {e}"),
        }
    };
    let Some(timeout) = wait else { return Ok(()) };
    let watched: Vec<String> = instances
        .into_iter()
        .filter(|i| instance == "*" || i == instance)
        .filter(|i| pods.iter().any(|p| &p.name_any() == i))
        .collect();
    let clock = Instant::now();
    let mut waiting = watched.clone();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for name in waiting {
            match observe::instance_report(&kube.client, &kube.namespace, &name).await {
                Ok(report) if report.fenced == next.contains(&name) => {
                    println!(
                        "  {:>5.1}s  {name} {}",
                        clock.elapsed().as_secs_f64(),
                        if report.fenced {
                            "refuses writes"
                        } else {
                            "is no longer fenced"
                        }
                    );
                }
                _ => still.push(name),
            }
        }
        waiting = still;
        if waiting.is_empty() {
            break;
        }
        if clock.elapsed() > timeout {
            anyhow::bail!(
                "after {}s these instances do not report the change yet: {}",
                timeout.as_secs(),
                waiting.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

fn describe(fenced: &FencedInstances) -> String {
    match fenced {
        FencedInstances::None => "no instance is fenced".into(),
        FencedInstances::All => "every instance is fenced".into(),
        FencedInstances::Some(names) => {
            format!("fenced: {}", names.iter().cloned().collect::<Vec<_>>().join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(names: &[&str]) -> FencedInstances {
        FencedInstances::Some(names.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn fences_add_up_and_lift_one_at_a_time() {
        let instances: Vec<String> = ["c-1", "c-2", "c-3"].map(String::from).to_vec();
        let cases = [
            (FencedInstances::None, "c-1", true, some(&["c-1"])),
            (some(&["c-1"]), "c-2", true, some(&["c-1", "c-2"])),
            (some(&["c-1"]), "c-1", true, some(&["c-1"])),
            (some(&["c-1", "c-2"]), "c-1", false, some(&["c-2"])),
            (some(&["c-1"]), "c-1", false, FencedInstances::None),
            (FencedInstances::None, "c-1", false, FencedInstances::None),
            (some(&["c-1"]), "*", true, FencedInstances::All),
            (FencedInstances::All, "*", false, FencedInstances::None),
            (FencedInstances::All, "c-2", false, some(&["c-1", "c-3"])),
            (FencedInstances::All, "c-2", true, FencedInstances::All),
        ];
        for (current, instance, on, want) in cases {
            assert_eq!(
                edit(&current, instance, on, &instances).unwrap(),
                want,
                "{current:?} {instance} {on}"
            );
        }
    }

    #[test]
    fn an_unknown_instance_is_refused() {
        let error = edit(&FencedInstances::None, "c-9", true, &["c-1".to_string()]).unwrap_err();
        assert_eq!(error, "c-9 is not an instance of this cluster (instances: c-1)");
    }
}
