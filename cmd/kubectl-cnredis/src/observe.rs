//! Reads everything `status` shows: the cluster, its pods and their instance API through the API
//! server's pod proxy, its backups and schedules, its Events, the operator's pods. Anything that cannot
//! be read is recorded as such, so that `status` stays useful while instances or the operator are down.

use std::collections::BTreeMap;
use std::time::Duration;

use cnredis_api::names::{
    INSTANCE_API_PORT, LABEL_CLUSTER, LABEL_ROLE, instance_api_secret, instance_api_secret_of,
};
use cnredis_api::{RedisBackup, RedisCluster, RedisScheduledBackup};
use cnredis_wire::{InstanceReport, path};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, Node, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, PartialObjectMeta};
use kube::{Api, Client, ResourceExt};

use crate::connect::Kube;
use crate::view::{Answer, CertificateState, EventLine, Observed, OperatorPod, OperatorState, PodSummary};

/// How long one instance may take to answer through the pod proxy.
const INSTANCE_TIMEOUT: Duration = Duration::from_secs(4);
/// Annotation of an instance-API Secret (`<pod>-api`): when its certificate expires (RFC 3339).
const CERTIFICATE_NOT_AFTER: &str = cnredis_api::names::ANNOTATION_CERTIFICATE_NOT_AFTER;
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

pub async fn cluster(kube: &Kube, name: &str) -> anyhow::Result<RedisCluster> {
    let clusters: Api<RedisCluster> = Api::namespaced(kube.client.clone(), &kube.namespace);
    match clusters.get_opt(name).await {
        Ok(Some(cluster)) => Ok(cluster),
        Ok(None) => anyhow::bail!("RedisCluster {name} not found in namespace {}", kube.namespace),
        Err(error) => Err(anyhow::anyhow!(
            "cannot read RedisCluster {}/{name}: {error}",
            kube.namespace
        )),
    }
}

/// The cluster's pods: labelled with its name and owned by it (a pod someone else labelled is not one of
/// its instances).
pub async fn pods(kube: &Kube, cluster: &RedisCluster) -> anyhow::Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let list = api
        .list(&ListParams::default().labels(&format!("{LABEL_CLUSTER}={}", cluster.name_any())))
        .await?;
    let uid = cluster.uid();
    let mut pods: Vec<Pod> = list
        .items
        .into_iter()
        .filter(|p| p.owner_references().iter().any(|o| Some(&o.uid) == uid.as_ref()))
        .collect();
    pods.sort_by_key(|p| p.name_any());
    Ok(pods)
}

pub async fn observe(kube: &Kube, name: &str) -> anyhow::Result<Observed> {
    let cluster = cluster(kube, name).await?;
    let pods = pods(kube, &cluster).await?;
    let zones = node_zones(&kube.client, &pods).await;
    let summaries: Vec<PodSummary> = pods.iter().map(|p| summary(p, &zones)).collect();

    let instances = reports(kube, &pods)
        .await?
        .into_iter()
        .map(|(pod, report)| {
            let answer = match report {
                Ok(report) => Answer::Report(Box::new(report)),
                Err(error) => Answer::Error(error),
            };
            (pod, answer)
        })
        .collect();

    let pod_names: Vec<String> = summaries.iter().map(|p| p.name.clone()).collect();
    let backups = of_cluster(kube, |b: &RedisBackup| b.spec.cluster.name == name).await;
    let scheduled_backups = of_cluster(kube, |s: &RedisScheduledBackup| s.spec.cluster.name == name).await;

    Ok(Observed {
        observed_at: Time(Timestamp::now()),
        events: events(kube, "RedisCluster", name).await,
        operator: operator(&kube.client).await,
        instance_api_certificate: certificate(kube, name, &pod_names).await,
        cluster,
        pods: summaries,
        instances,
        backups,
        scheduled_backups,
    })
}

/// The objects of kind `K` in the namespace that `of_this` accepts; none when they cannot be listed.
async fn of_cluster<K>(kube: &Kube, of_this: impl Fn(&K) -> bool) -> Vec<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(kube.client.clone(), &kube.namespace);
    api.list(&ListParams::default())
        .await
        .map(|list| list.items.into_iter().filter(|o| of_this(o)).collect())
        .unwrap_or_default()
}

/// Every pod's answer to `GET /v1/status`, asked in parallel (one silent pod costs one timeout, not one
/// per pod), or why there is none.
pub async fn reports(
    kube: &Kube,
    pods: &[Pod],
) -> anyhow::Result<BTreeMap<String, Result<InstanceReport, String>>> {
    let mut answers = tokio::task::JoinSet::new();
    for pod in pods {
        let client = kube.client.clone();
        let namespace = kube.namespace.clone();
        let pod_name = pod.name_any();
        let has_ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some();
        answers.spawn(async move {
            let report = if has_ip {
                instance_report(&client, &namespace, &pod_name).await
            } else {
                Err("the pod has no IP address".into())
            };
            (pod_name, report)
        });
    }
    let mut reports = BTreeMap::new();
    while let Some(joined) = answers.join_next().await {
        let (pod, report) = joined?;
        reports.insert(pod, report);
    }
    Ok(reports)
}

/// `GET /v1/status` of one instance through `pods/proxy` (the instance API serves it without a client
/// certificate).
pub async fn instance_report(client: &Client, namespace: &str, pod: &str) -> Result<InstanceReport, String> {
    let uri = format!(
        "/api/v1/namespaces/{namespace}/pods/https:{pod}:{INSTANCE_API_PORT}/proxy{}",
        path::STATUS
    );
    let request = http::Request::get(uri)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let text = match tokio::time::timeout(INSTANCE_TIMEOUT, client.request_text(request)).await {
        Err(_) => return Err(format!("no answer within {}s", INSTANCE_TIMEOUT.as_secs())),
        Ok(Err(kube::Error::Api(status))) if status.code == 403 => {
            return Err(format!(
                "forbidden: you may lack permission to get pods/proxy ({})",
                status.message
            ));
        }
        Ok(Err(error)) => return Err(short_error(&error.to_string())),
        Ok(Ok(text)) => text,
    };
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "unexpected answer ({e}): {}",
            text.chars().take(120).collect::<String>()
        )
    })
}

/// The API server's proxy errors are long; the cause is at the end.
fn short_error(error: &str) -> String {
    let error = error.trim();
    match error.rfind(": ") {
        Some(i) if error.len() > 160 => error[i + 2..].to_string(),
        _ => error.to_string(),
    }
}

async fn node_zones(client: &Client, pods: &[Pod]) -> BTreeMap<String, String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut zones = BTreeMap::new();
    for node in pods
        .iter()
        .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
    {
        if zones.contains_key(&node) {
            continue;
        }
        // Listing nodes may be forbidden to a namespaced user: the zone is then left out.
        if let Ok(Some(n)) = nodes.get_metadata_opt(&node).await
            && let Some(zone) = n.labels().get(ZONE_LABEL)
        {
            zones.insert(node, zone.clone());
        }
    }
    zones
}

fn summary(pod: &Pod, zones: &BTreeMap<String, String>) -> PodSummary {
    let status = pod.status.clone().unwrap_or_default();
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    PodSummary {
        name: pod.name_any(),
        phase: status.phase.clone().unwrap_or_else(|| "Pending".into()),
        ready: status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        deleting: pod.metadata.deletion_timestamp.is_some(),
        ip: status.pod_ip.clone(),
        zone: node.as_ref().and_then(|n| zones.get(n).cloned()),
        node,
        qos: status.qos_class.clone(),
        restarts: status
            .container_statuses
            .iter()
            .flatten()
            .map(|c| c.restart_count)
            .sum(),
        role_label: pod.labels().get(LABEL_ROLE).cloned(),
        started: status.start_time.clone(),
    }
}

/// The Events of one object, oldest first.
pub async fn events(kube: &Kube, kind: &str, name: &str) -> Vec<EventLine> {
    let api: Api<Event> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let params =
        ListParams::default().fields(&format!("involvedObject.kind={kind},involvedObject.name={name}"));
    let Ok(list) = api.list(&params).await else {
        return Vec::new();
    };
    let mut lines: Vec<EventLine> = list
        .items
        .into_iter()
        .map(|e| EventLine {
            time: e
                .series
                .as_ref()
                .and_then(|s| s.last_observed_time.as_ref().map(|t| Time(t.0)))
                .or(e.last_timestamp.clone())
                .or(e.event_time.as_ref().map(|t| Time(t.0)))
                .or(e.first_timestamp.clone()),
            type_: e.type_.clone().unwrap_or_default(),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
            count: e.series.as_ref().and_then(|s| s.count).or(e.count).unwrap_or(1),
        })
        .collect();
    lines.sort_by_key(|e| e.time.as_ref().map(|t| t.0));
    lines
}

/// The operator's pods, found by the chart's label in any namespace.
pub async fn operator(client: &Client) -> OperatorState {
    let api: Api<Pod> = Api::all(client.clone());
    let params = ListParams::default().labels(&format!("app.kubernetes.io/name=cnredis,!{LABEL_CLUSTER}"));
    match api.list(&params).await {
        Ok(list) => OperatorState::Pods(
            list.items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .map(|p| OperatorPod {
                    namespace: p.namespace().unwrap_or_default(),
                    name: p.name_any(),
                    ready: p
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
                    image: p
                        .spec
                        .as_ref()
                        .and_then(|s| s.containers.first())
                        .and_then(|c| c.image.clone())
                        .unwrap_or_default(),
                })
                .collect(),
        ),
        Err(error) => OperatorState::Unknown(format!(
            "cannot list pods in all namespaces: {}",
            short_error(&error.to_string())
        )),
    }
}

/// The earliest expiry among the instance-API certificates of `pods` (each in `<pod>-api`), or of the
/// cluster-wide one that pods created by an older operator mount.
async fn certificate(kube: &Kube, cluster: &str, pods: &[String]) -> CertificateState {
    let api: Api<Secret> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let names = pods
        .iter()
        .map(|pod| instance_api_secret_of(pod))
        .chain([instance_api_secret(cluster)]);
    let mut earliest: Option<Timestamp> = None;
    for name in names {
        let meta: Result<Option<PartialObjectMeta<Secret>>, _> = api.get_metadata_opt(&name).await;
        match meta {
            Ok(Some(secret)) => {
                let not_after = secret
                    .annotations()
                    .get(CERTIFICATE_NOT_AFTER)
                    .and_then(|t| t.parse::<Timestamp>().ok());
                earliest = earliest.into_iter().chain(not_after).min();
            }
            Ok(None) => {}
            Err(error) => return CertificateState::Unknown(short_error(&error.to_string())),
        }
    }
    earliest.map_or(CertificateState::Missing, |t| CertificateState::NotAfter(Time(t)))
}
