//! `report cluster CLUSTER`: one zip with everything a support ticket needs — the cluster's objects, its
//! Events, each instance's report and logs, the operator's logs, and `status` as a person reads it.
//! Secret values never enter it: Secrets are listed with their keys and the length of each value.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use cnredis_api::names::LABEL_CLUSTER;
use cnredis_api::{RedisBackup, RedisScheduledBackup};
use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, Secret, Service};
use kube::api::{ListParams, LogParams};
use kube::{Api, ResourceExt};
use zip::write::SimpleFileOptions;

use crate::connect::Kube;
use crate::render::{self, Style};
use crate::view::{Answer, OperatorState};
use crate::{observe, view};

/// Every value of a Secret replaced by a note of its length.
pub fn redact(mut secret: Secret) -> Secret {
    let redacted = |len: usize| ByteString(format!("<redacted: {len} bytes>").into_bytes());
    if let Some(data) = secret.data.as_mut() {
        for value in data.values_mut() {
            *value = redacted(value.0.len());
        }
    }
    if let Some(data) = secret.string_data.take() {
        let data = data.into_iter().map(|(k, v)| (k, redacted(v.len()))).collect();
        secret
            .data
            .get_or_insert_default()
            .extend::<std::collections::BTreeMap<_, _>>(data);
    }
    // The last-applied annotation would carry the values a second time.
    secret
        .annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
    secret.metadata.managed_fields = None;
    secret
}

struct Archive {
    zip: zip::ZipWriter<std::fs::File>,
    root: String,
    files: Vec<String>,
}

impl Archive {
    fn add(&mut self, name: &str, content: &[u8]) -> anyhow::Result<()> {
        let path = format!("{}/{name}", self.root);
        self.zip.start_file(&path, SimpleFileOptions::default())?;
        self.zip.write_all(content)?;
        self.files.push(name.to_string());
        Ok(())
    }

    fn yaml<T: serde::Serialize>(&mut self, name: &str, value: &T) -> anyhow::Result<()> {
        self.add(name, serde_saphyr::to_string(value)?.as_bytes())
    }
}

pub async fn cluster(kube: &Kube, name: &str, file: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let stamp = Timestamp::now().strftime("%Y%m%d%H%M%S").to_string();
    let path = file.unwrap_or_else(|| PathBuf::from(format!("report_{name}_{stamp}.zip")));
    let observed = observe::observe(kube, name).await?;
    let mut archive = Archive {
        zip: zip::ZipWriter::new(
            std::fs::File::create(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        ),
        root: format!("report_{name}_{stamp}"),
        files: Vec::new(),
    };
    let mut problems: Vec<String> = Vec::new();

    archive.add(
        "status.txt",
        render::status(
            &observed,
            Style {
                colour: false,
                verbose: true,
            },
        )
        .as_bytes(),
    )?;
    archive.yaml("cluster.yaml", &observed.cluster)?;
    let namespace = &kube.namespace;
    let selector = ListParams::default().labels(&format!("{LABEL_CLUSTER}={name}"));
    let pods: Vec<Pod> = observe::pods(kube, &observed.cluster).await?;
    archive.yaml("pods.yaml", &pods)?;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(kube.client.clone(), namespace);
    match pvcs.list(&selector).await {
        Ok(list) => archive.yaml("pvcs.yaml", &list.items)?,
        Err(e) => problems.push(format!("pvcs: {e}")),
    }
    let services: Api<Service> = Api::namespaced(kube.client.clone(), namespace);
    match services.list(&selector).await {
        Ok(list) => archive.yaml("services.yaml", &list.items)?,
        Err(e) => problems.push(format!("services: {e}")),
    }
    let secrets: Api<Secret> = Api::namespaced(kube.client.clone(), namespace);
    match secrets.list(&selector).await {
        Ok(list) => archive.yaml(
            "secrets-redacted.yaml",
            &list.items.into_iter().map(redact).collect::<Vec<_>>(),
        )?,
        Err(e) => problems.push(format!("secrets: {e}")),
    }
    let leases: Api<Lease> = Api::namespaced(kube.client.clone(), namespace);
    match leases.get_opt(&cnredis_api::names::primary_lease(name)).await {
        Ok(lease) => archive.yaml("primary-lease.yaml", &lease)?,
        Err(e) => problems.push(format!("lease: {e}")),
    }
    archive.yaml(
        "backups.yaml",
        &observed.backups.iter().collect::<Vec<&RedisBackup>>(),
    )?;
    archive.yaml(
        "scheduled-backups.yaml",
        &observed
            .scheduled_backups
            .iter()
            .collect::<Vec<&RedisScheduledBackup>>(),
    )?;
    archive.yaml("events.yaml", &events(kube, name, &pods, &observed.backups).await)?;

    for (pod, answer) in &observed.instances {
        match answer {
            Answer::Report(report) => archive.add(
                &format!("instances/{pod}.json"),
                &serde_json::to_vec_pretty(report)?,
            )?,
            Answer::Error(error) => archive.add(&format!("instances/{pod}.error.txt"), error.as_bytes())?,
        }
    }
    let api: Api<Pod> = Api::namespaced(kube.client.clone(), namespace);
    for pod in &pods {
        logs(&mut archive, &api, pod, "logs", &mut problems).await?;
    }
    if let OperatorState::Pods(operators) = &observed.operator {
        for operator in operators {
            let api: Api<Pod> = Api::namespaced(kube.client.clone(), &operator.namespace);
            match api.get(&operator.name).await {
                Ok(pod) => logs(&mut archive, &api, &pod, "operator", &mut problems).await?,
                Err(e) => problems.push(format!("operator pod {}: {e}", operator.name)),
            }
        }
    }
    let summary = summary(&observed, &archive.files, &problems);
    archive.add("README.txt", summary.as_bytes())?;
    archive.zip.finish()?;
    Ok(path)
}

/// Events of the cluster, its pods and its backups.
async fn events(kube: &Kube, cluster: &str, pods: &[Pod], backups: &[RedisBackup]) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let mut names: Vec<String> = vec![cluster.to_string()];
    names.extend(pods.iter().map(|p| p.name_any()));
    names.extend(backups.iter().map(|b| b.name_any()));
    let Ok(list) = api.list(&ListParams::default()).await else {
        return Vec::new();
    };
    let mut events: Vec<Event> = list
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_ref().is_some_and(|n| names.contains(n)))
        .collect();
    events.sort_by_key(|e| {
        e.last_timestamp
            .clone()
            .or(e.first_timestamp.clone())
            .map(|t| t.0)
    });
    events
}

async fn logs(
    archive: &mut Archive,
    api: &Api<Pod>,
    pod: &Pod,
    dir: &str,
    problems: &mut Vec<String>,
) -> anyhow::Result<()> {
    let containers = pod.status.iter().flat_map(|s| {
        s.init_container_statuses
            .iter()
            .flatten()
            .chain(s.container_statuses.iter().flatten())
    });
    for container in containers {
        let mut versions = vec![(false, "log")];
        if container.restart_count > 0 {
            versions.push((true, "previous.log"));
        }
        for (previous, suffix) in versions {
            let params = LogParams {
                container: Some(container.name.clone()),
                previous,
                ..LogParams::default()
            };
            match api.logs(&pod.name_any(), &params).await {
                Ok(text) => archive.add(
                    &format!("{dir}/{}/{}.{suffix}", pod.name_any(), container.name),
                    text.as_bytes(),
                )?,
                Err(e) => problems.push(format!("logs of {}/{}: {e}", pod.name_any(), container.name)),
            }
        }
    }
    Ok(())
}

fn summary(observed: &view::Observed, files: &[String], problems: &[String]) -> String {
    let mut text = format!(
        "cnredis support report of RedisCluster {}/{}\ncollected {} by kubectl-cnredis {}\n\nSecret values are redacted (secrets-redacted.yaml lists keys and lengths).\n\nFiles:\n",
        observed.cluster.namespace().unwrap_or_default(),
        observed.cluster.name_any(),
        observed.observed_at.0,
        env!("CARGO_PKG_VERSION"),
    );
    for file in files {
        text.push_str(&format!("  {file}\n"));
    }
    if !problems.is_empty() {
        text.push_str("\nNot collected:\n");
        for problem in problems {
            text.push_str(&format!("  {problem}\n"));
        }
    }
    text
}

/// Where the report went, for the user.
pub fn describe(path: &Path) -> String {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    format!("report written to {} ({})", path.display(), render::bytes(size))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn secret_values_are_replaced_by_their_length() {
        let mut secret = Secret {
            data: Some(BTreeMap::from([(
                "password".to_string(),
                ByteString(b"hunter22".to_vec()),
            )])),
            string_data: Some(BTreeMap::from([("token".to_string(), "abc".to_string())])),
            ..Secret::default()
        };
        secret.annotations_mut().insert(
            "kubectl.kubernetes.io/last-applied-configuration".into(),
            r#"{"data":{"password":"aHVudGVyMjI="}}"#.into(),
        );
        let yaml = serde_saphyr::to_string(&redact(secret)).unwrap();
        assert!(
            !yaml.contains("hunter22") && !yaml.contains("aHVudGVyMjI") && !yaml.contains("abc"),
            "{yaml}"
        );
        let redacted: Secret = serde_saphyr::from_str(&yaml).unwrap();
        let data = redacted.data.unwrap();
        assert_eq!(data["password"].0, b"<redacted: 8 bytes>");
        assert_eq!(data["token"].0, b"<redacted: 3 bytes>");
    }
}
