//! Resolving `spec.bootstrap.recovery` before a restored cluster's first instance exists: which backup
//! (a completed RedisBackup in the namespace, or a backup ID — else the newest — under an object store),
//! checked in the store with the credentials the instance will use (the manifest must be readable), so
//! that a wrong key, a missing object or an unknown backup stop the bootstrap with a reason before any
//! pod is created.

use cnredis_api::RedisCluster;
use cnredis_api::backup::{BackupPhase, RedisBackup};
use cnredis_api::cluster::RecoveryStatus;
use cnredis_api::common::ObjectStore;
use cnredis_instance_client::objects;
use cnredis_instance_client::wire::{BackupManifest, MANIFEST_FILE};
use futures::TryStreamExt;
use kube::{Api, ResourceExt};
use object_store::ObjectStoreExt;

use super::store::read_credentials;
use crate::context::Context;

/// The backup a new cluster restores, or why it cannot.
pub async fn resolve(ctx: &Context, cluster: &RedisCluster) -> Result<RecoveryStatus, String> {
    let namespace = cluster.namespace().unwrap_or_default();
    let recovery = cluster
        .spec
        .bootstrap
        .as_ref()
        .and_then(|b| b.recovery.as_ref())
        .ok_or("no bootstrap.recovery")?;
    let (store, source_cluster, backup_id) = match (&recovery.backup, &recovery.source) {
        (Some(reference), _) => {
            let backups: Api<RedisBackup> = Api::namespaced(ctx.client.clone(), &namespace);
            let backup = backups
                .get_opt(&reference.name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    format!(
                        "RedisBackup {} does not exist in namespace {namespace}",
                        reference.name
                    )
                })?;
            let status = backup.status.clone().unwrap_or_default();
            if status.phase != Some(BackupPhase::Completed) {
                let phase = status
                    .phase
                    .map(|p| format!("{p:?}").to_lowercase())
                    .unwrap_or("new".into());
                return Err(format!(
                    "RedisBackup {} is {phase}, not completed",
                    reference.name
                ));
            }
            let source_name = backup.spec.cluster.name.clone();
            let clusters: Api<RedisCluster> = Api::namespaced(ctx.client.clone(), &namespace);
            let source = clusters.get_opt(&source_name).await.map_err(|e| e.to_string())?;
            let store = source.and_then(|c| c.spec.backup).map(|b| b.object_store).ok_or_else(|| {
                format!(
                    "RedisBackup {} belongs to RedisCluster {source_name}, which no longer exists or has no \
                     spec.backup: restore with bootstrap.recovery.source (its objectStore, clusterName \
                     {source_name}, backupId {}) instead",
                    reference.name,
                    status.backup_id.clone().unwrap_or_else(|| reference.name.clone())
                )
            })?;
            let id = status.backup_id.clone().unwrap_or_else(|| reference.name.clone());
            (store, source_name, Some(id))
        }
        (None, Some(source)) => (
            source.object_store.clone(),
            source.cluster_name.clone().unwrap_or_else(|| cluster.name_any()),
            source.backup_id.clone(),
        ),
        (None, None) => return Err("bootstrap.recovery names neither a backup nor a source".to_string()),
    };
    let manifest = read_manifest(ctx, &namespace, &store, &source_cluster, backup_id.as_deref()).await?;
    Ok(RecoveryStatus {
        object_store: store,
        cluster: source_cluster,
        backup_id: manifest.backup.clone(),
        checksum: manifest.checksum.clone(),
        keys: manifest.keys as i64,
    })
}

/// The manifest of `backup_id` (or of the newest completed backup) of `source_cluster` in `store`.
async fn read_manifest(
    ctx: &Context,
    namespace: &str,
    store: &ObjectStore,
    source_cluster: &str,
    backup_id: Option<&str>,
) -> Result<BackupManifest, String> {
    let location = objects::location(
        &store.destination_path,
        store.endpoint_url.clone(),
        &store.region,
        "recovery",
    )?;
    let credentials = read_credentials(ctx, namespace, store).await?;
    let bucket = objects::open_with(&location, credentials).map_err(|e| e.to_string())?;
    let read = |path: object_store::path::Path| {
        let bucket = bucket.clone();
        let url = objects::url(&location, &path);
        async move {
            let bytes = bucket
                .get(&path)
                .await
                .map_err(|e| format!("reading {url}: {}", objects::describe(&e)))?
                .bytes()
                .await
                .map_err(|e| format!("reading {url}: {}", objects::describe(&e)))?;
            serde_json::from_slice::<BackupManifest>(&bytes)
                .map_err(|e| format!("{url} is not a backup manifest: {e}"))
        }
    };
    if let Some(id) = backup_id {
        return read(objects::manifest_path(&location, source_cluster, id)).await;
    }
    // The newest completed backup: the manifest with the latest stop time.
    let dir = objects::cluster_dir(&location, source_cluster);
    let listed: Vec<object_store::ObjectMeta> = bucket.list(Some(&dir)).try_collect().await.map_err(|e| {
        format!(
            "listing {}/: {}",
            objects::url(&location, &dir),
            objects::describe(&e)
        )
    })?;
    let mut newest: Option<BackupManifest> = None;
    for object in listed
        .into_iter()
        .filter(|o| o.location.filename() == Some(MANIFEST_FILE))
    {
        let manifest = read(object.location).await?;
        if newest.as_ref().is_none_or(|n| manifest.stopped_at > n.stopped_at) {
            newest = Some(manifest);
        }
    }
    newest.ok_or_else(|| format!("{}/ holds no completed backup", objects::url(&location, &dir)))
}
