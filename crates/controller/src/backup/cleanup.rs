//! Retention (`spec.backup.retentionPolicy`) applied to the bucket, which is the catalog: every backup
//! directory under `<prefix>/<cluster>/` is a completed backup when it holds a manifest, else a running
//! or failed one. The obsolete ones ([`super::retention::obsolete`]) lose their artifacts first, then
//! their RedisBackup objects. The operator reads the store's credentials from the cluster's Secret. It
//! runs after every completed backup of the cluster.

use std::collections::BTreeMap;

use cnredis_api::RedisCluster;
use cnredis_api::backup::{BackupPhase, RedisBackup};
use cnredis_instance_client::objects;
use cnredis_instance_client::wire::{BackupManifest, MANIFEST_FILE};
use futures::TryStreamExt;
use jiff::Timestamp;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use super::retention::{Artifact, State, Window, obsolete};
use super::store::{read_credentials, store_location};
use crate::context::Context;

/// Applies the retention policy of `cluster`; the names of the backups removed.
pub async fn apply_retention(ctx: &Context, cluster: &RedisCluster) -> Result<Vec<String>, String> {
    let Some(config) = &cluster.spec.backup else {
        return Ok(Vec::new());
    };
    let Some(policy) = &config.retention_policy else {
        return Ok(Vec::new());
    };
    let window = Window::parse(policy)?;
    let namespace = cluster.namespace().unwrap_or_default();
    let location = store_location(&config.object_store)?;
    let credentials = read_credentials(ctx, &namespace, &config.object_store).await?;
    let store = objects::open_with(&location, credentials).map_err(|e| e.to_string())?;
    let dir = objects::cluster_dir(&location, &cluster.name_any());

    let backups: Api<RedisBackup> = Api::namespaced(ctx.client.clone(), &namespace);
    let objects_ = backups
        .list(&Default::default())
        .await
        .map_err(|e| e.to_string())?;
    let running: Vec<String> = objects_
        .items
        .iter()
        .filter(|b| b.spec.cluster.name == cluster.name_any())
        .filter(|b| {
            !matches!(
                b.status.as_ref().and_then(|s| s.phase),
                Some(BackupPhase::Completed | BackupPhase::Failed)
            )
        })
        .map(|b| b.name_any())
        .collect();

    let listed: Vec<object_store::ObjectMeta> = store.list(Some(&dir)).try_collect().await.map_err(|e| {
        format!(
            "listing {}/: {}",
            objects::url(&location, &dir),
            objects::describe(&e)
        )
    })?;
    let mut by_backup: BTreeMap<String, Vec<object_store::ObjectMeta>> = BTreeMap::new();
    for object in listed {
        let Some(name) = object
            .location
            .prefix_match(&dir)
            .and_then(|mut parts| parts.next())
        else {
            continue;
        };
        by_backup
            .entry(name.as_ref().to_string())
            .or_default()
            .push(object);
    }
    let mut artifacts = Vec::new();
    for (name, objects_of) in &by_backup {
        let manifest = objects_of
            .iter()
            .find(|o| o.location.filename() == Some(MANIFEST_FILE))
            .map(|o| o.location.clone());
        let state = match manifest {
            Some(path) => match read_manifest(store.as_ref(), &path).await {
                Some(at) => State::Completed { at },
                None => continue, // unreadable: never removed by a guess
            },
            None if running.contains(name) => State::Running,
            None => State::Failed {
                started: objects_of
                    .iter()
                    .map(|o| {
                        Timestamp::from_second(o.last_modified.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH)
                    })
                    .min()
                    .unwrap_or(Timestamp::UNIX_EPOCH),
            },
        };
        artifacts.push(Artifact {
            name: name.clone(),
            state,
        });
    }
    let gone = obsolete(&artifacts, window, Timestamp::now());
    for name in &gone {
        for object in by_backup.get(name).into_iter().flatten() {
            store.delete(&object.location).await.map_err(|e| {
                format!(
                    "deleting {}: {}",
                    objects::url(&location, &object.location),
                    objects::describe(&e)
                )
            })?;
        }
        // Its RedisBackup, when it points at these artifacts, goes with them.
        let suffix = format!("/{}/{name}/", cluster.name_any());
        if let Some(object) = objects_.items.iter().find(|b| {
            b.name_any() == *name
                && b.spec.cluster.name == cluster.name_any()
                && b.status
                    .as_ref()
                    .and_then(|s| s.destination_path.as_deref())
                    .is_some_and(|p| p.ends_with(&suffix))
        }) {
            let _ = backups.delete(&object.name_any(), &DeleteParams::default()).await;
        }
    }
    Ok(gone)
}

async fn read_manifest(store: &dyn ObjectStore, path: &ObjectPath) -> Option<Timestamp> {
    let bytes = store.get(path).await.ok()?.bytes().await.ok()?;
    let manifest: BackupManifest = serde_json::from_slice(&bytes).ok()?;
    manifest.stopped_at.parse().ok()
}
