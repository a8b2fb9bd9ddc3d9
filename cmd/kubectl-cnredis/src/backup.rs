//! `backup CLUSTER`: creates a RedisBackup and follows it to `completed` or `failed`.

use std::time::{Duration, Instant};

use cnredis_api::backup::BackupPhase;
use cnredis_api::common::{BackupTarget, ClusterReference};
use cnredis_api::{RedisBackup, RedisBackupSpec};
use jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;

use crate::connect::Kube;
use crate::observe;
use crate::render::bytes;

/// `<cluster>-<yyyymmddhhmmss>` (UTC), the name a backup gets unless one is given.
pub fn default_name(cluster: &str, at: Timestamp) -> String {
    format!("{cluster}-{}", at.strftime("%Y%m%d%H%M%S"))
}

pub struct BackupArgs<'a> {
    pub cluster: &'a str,
    pub name: Option<String>,
    pub target: Option<BackupTarget>,
    pub wait: Option<Duration>,
}

pub async fn run(kube: &Kube, args: BackupArgs<'_>) -> anyhow::Result<RedisBackup> {
    let cluster = observe::cluster(kube, args.cluster).await?;
    if cluster.spec.backup.is_none() {
        anyhow::bail!(
            "cluster {} has no spec.backup: configure its object store first (docs/backup.md)",
            args.cluster
        );
    }
    let name = args
        .name
        .unwrap_or_else(|| default_name(args.cluster, Timestamp::now()));
    let backup = RedisBackup::new(
        &name,
        RedisBackupSpec {
            cluster: ClusterReference {
                name: args.cluster.to_string(),
            },
            target: args.target,
            timeout_seconds: None,
        },
    );
    let api: Api<RedisBackup> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let created = api
        .create(&PostParams::default(), &backup)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create RedisBackup {name}: {e}"))?;
    eprintln!("RedisBackup {name} created");
    let Some(timeout) = args.wait else {
        return Ok(created);
    };
    let clock = Instant::now();
    let mut last = String::new();
    loop {
        let backup = api.get(&name).await?;
        let status = backup.status.clone().unwrap_or_default();
        let line = match status.phase {
            None | Some(BackupPhase::Pending) => "pending".to_string(),
            Some(BackupPhase::Running) => format!("running on {}", status.instance.as_deref().unwrap_or("?")),
            Some(BackupPhase::Completed) => format!(
                "completed: {} from {}, {}, {}",
                bytes(u64::try_from(status.size_bytes.unwrap_or(0)).unwrap_or(0)),
                status.instance.as_deref().unwrap_or("?"),
                status.checksum.as_deref().unwrap_or("no checksum"),
                status.destination_path.as_deref().unwrap_or("?"),
            ),
            Some(BackupPhase::Failed) => {
                format!("failed: {}", status.error.as_deref().unwrap_or("no reason given"))
            }
        };
        if line != last {
            eprintln!("  {:>5.1}s  {line}", clock.elapsed().as_secs_f64());
            last = line;
        }
        match status.phase {
            Some(BackupPhase::Completed) => return Ok(backup),
            Some(BackupPhase::Failed) => {
                anyhow::bail!("backup {name} failed: {}", status.error.unwrap_or_default())
            }
            _ if clock.elapsed() > timeout => {
                anyhow::bail!(
                    "backup {name} is still {last} after {}s; it goes on (kubectl get rbak {name})",
                    timeout.as_secs()
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_sort_by_time() {
        let at: Timestamp = "2026-12-02T06:07:08Z".parse().unwrap();
        assert_eq!(default_name("sessions", at), "sessions-20261202060708");
    }
}
