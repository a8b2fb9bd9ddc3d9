//! `status` without a cluster: every RedisCluster of the namespace, or of every namespace (`-A`), one
//! line each — where to look first when several clusters share a namespace or a page names none.

use cnredis_api::RedisCluster;
use jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use crate::connect::Kube;
use crate::render::{age, fenced_instances, phase_tone};
use crate::table::{Table, Tone};

pub async fn clusters(kube: &Kube, all_namespaces: bool) -> anyhow::Result<Vec<RedisCluster>> {
    let api: Api<RedisCluster> = if all_namespaces {
        Api::all(kube.client.clone())
    } else {
        Api::namespaced(kube.client.clone(), &kube.namespace)
    };
    let mut clusters = api
        .list(&ListParams::default())
        .await
        .map_err(|e| anyhow::anyhow!("cannot list RedisClusters: {e}"))?
        .items;
    clusters.sort_by_key(|c| (c.namespace().unwrap_or_default(), c.name_any()));
    Ok(clusters)
}

/// The table; a sentence when there is nothing to show.
pub fn render(
    clusters: &[RedisCluster],
    now: Timestamp,
    all_namespaces: bool,
    namespace: &str,
    colour: bool,
) -> String {
    if clusters.is_empty() {
        return if all_namespaces {
            "No RedisCluster in any namespace.\n".to_string()
        } else {
            format!("No RedisCluster in namespace {namespace}.\n")
        };
    }
    let mut header = vec![
        "NAME",
        "READY",
        "PHASE",
        "PRIMARY",
        "FENCED",
        "LAST BACKUP",
        "AGE",
    ];
    if all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    let mut table = Table::new(header);
    for cluster in clusters {
        let status = cluster.status.clone().unwrap_or_default();
        let phase = status.phase.clone().unwrap_or_else(|| "-".to_string());
        let phase_tone = phase_tone(&phase);
        let ready_tone = if status.ready_instances >= cluster.spec.instances {
            Tone::Plain
        } else {
            Tone::Warn
        };
        let fenced = match fenced_instances(cluster) {
            Ok(fenced) => fenced.map(|list| (list, Tone::Bad)),
            Err(_) => Some(("invalid annotation".to_string(), Tone::Bad)),
        };
        let mut row = vec![
            (cluster.name_any(), Tone::Plain),
            (
                format!("{}/{}", status.ready_instances, cluster.spec.instances),
                ready_tone,
            ),
            (phase, phase_tone),
            (
                status.current_primary.clone().unwrap_or_else(|| "-".to_string()),
                Tone::Plain,
            ),
            fenced.unwrap_or(("-".to_string(), Tone::Dim)),
            (
                status
                    .last_successful_backup
                    .as_ref()
                    .map(|t| format!("{} ago", age(now, t)))
                    .unwrap_or_else(|| "-".to_string()),
                Tone::Plain,
            ),
            (
                cluster
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| age(now, t))
                    .unwrap_or_default(),
                Tone::Plain,
            ),
        ];
        if all_namespaces {
            row.insert(0, (cluster.namespace().unwrap_or_default(), Tone::Plain));
        }
        table.row(row);
    }
    table.render(colour)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnredis_api::names::ANNOTATION_FENCED_INSTANCES;
    use cnredis_api::{RedisClusterSpec, RedisClusterStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn cluster(namespace: &str, name: &str, phase: &str, ready: i32, fenced: Option<&str>) -> RedisCluster {
        let mut cluster = RedisCluster::new(name, RedisClusterSpec::with_defaults());
        cluster.spec.instances = 3;
        cluster.metadata.namespace = Some(namespace.to_string());
        cluster.metadata.creation_timestamp = Some(Time(at("2026-12-01T12:00:00Z")));
        if let Some(fenced) = fenced {
            cluster.metadata.annotations =
                Some([(ANNOTATION_FENCED_INSTANCES.to_string(), fenced.to_string())].into());
        }
        cluster.status = Some(RedisClusterStatus {
            phase: Some(phase.to_string()),
            ready_instances: ready,
            current_primary: Some(format!("{name}-1")),
            last_successful_backup: (phase == "Healthy").then(|| Time(at("2026-12-02T11:30:00Z"))),
            ..RedisClusterStatus::default()
        });
        cluster
    }

    #[test]
    fn one_line_per_cluster_with_its_namespace_under_all_namespaces() {
        let clusters = [
            cluster("shop", "carts", "Healthy", 3, None),
            cluster("web", "sessions", "Failing over", 2, Some(r#"["sessions-1"]"#)),
        ];
        let text = render(&clusters, at("2026-12-02T12:00:00Z"), true, "default", false);
        assert_eq!(
            text,
            "NAMESPACE  NAME      READY  PHASE         PRIMARY     FENCED          LAST BACKUP  AGE\n\
             shop       carts     3/3    Healthy       carts-1     -               30m ago      24h\n\
             web        sessions  2/3    Failing over  sessions-1  [\"sessions-1\"]  -            24h\n"
        );
        let one_namespace = render(&clusters[..1], at("2026-12-02T12:00:00Z"), false, "shop", false);
        assert!(one_namespace.starts_with("NAME   READY"), "{one_namespace}");
    }

    #[test]
    fn nothing_to_list_says_where_it_looked() {
        let now = at("2026-12-02T12:00:00Z");
        assert_eq!(
            render(&[], now, false, "shop", false),
            "No RedisCluster in namespace shop.\n"
        );
        assert_eq!(
            render(&[], now, true, "shop", false),
            "No RedisCluster in any namespace.\n"
        );
    }
}
