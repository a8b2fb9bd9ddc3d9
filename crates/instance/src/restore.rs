//! Restore before the first start: the first instance of a cluster created from a backup downloads the
//! snapshot named by `status.recovery` (resolved by the operator) into its empty data directory, checks its
//! size and sha256 against the manifest while streaming, and only then lets the server start. With an AOF
//! persistence mode the snapshot also becomes the base of a fresh multi-part AOF, since a server with
//! `appendonly yes` and no AOF would start empty and ignore `dump.rdb`.
//!
//! It runs only while the cluster has no primary yet, on its target primary, with nothing on disk: a
//! later restart never rolls a dataset back to the backup. A failure (wrong credentials, missing object,
//! checksum mismatch, full disk) is reported through `/v1/status` and tried again; the server does not
//! start meanwhile, so a cluster is never bootstrapped empty in its place.

use std::path::Path;
use std::time::Duration;

use cnredis_api::cluster::{PersistenceMode, RecoveryStatus};
use cnredis_instance_client::objects::{self, SNAPSHOT_FILE};
use cnredis_instance_client::wire::{BackupManifest, MANIFEST_VERSION, RestoreReport};
use futures::StreamExt;
use object_store::ObjectStoreExt;
use tokio::io::AsyncWriteExt;

use crate::manager::Manager;
use crate::run::dataset_on_disk;
use crate::source::ClusterView;

/// Credentials directory of the restore source (`names::OBJECT_STORE_CREDENTIALS_DIR`/recovery).
pub const RECOVERY_CREDENTIALS: &str = "recovery";
/// Pause between attempts after a failure.
pub const RETRY: Duration = Duration::from_secs(10);
const TEMPORARY: &str = "temp-restore.rdb";

/// The backup to restore now, if this pod must restore one before its server starts.
pub fn wanted(view: &ClusterView, pod: &str, data_dir: &Path) -> Option<RecoveryStatus> {
    let status = view.cluster.status.as_ref()?;
    let recovery = status.recovery.clone()?;
    let first = status.current_primary.is_none() && status.target_primary.as_deref() == Some(pod);
    (first && !dataset_on_disk(data_dir)).then_some(recovery)
}

/// Downloads and verifies the backup into the data directory; a sentence for the user on failure.
pub async fn restore(
    manager: &Manager,
    view: &ClusterView,
    recovery: &RecoveryStatus,
) -> Result<u64, String> {
    let progress = |step: String, bytes: u64| {
        let mut slot = manager.restore.lock().unwrap_or_else(|p| p.into_inner());
        let error = slot.as_ref().and_then(|r| r.error.clone());
        *slot = Some(RestoreReport {
            step,
            downloaded_bytes: bytes,
            error,
        });
    };
    let store_config = &recovery.object_store;
    let location = objects::location(
        &store_config.destination_path,
        store_config.endpoint_url.clone(),
        &store_config.region,
        RECOVERY_CREDENTIALS,
    )?;
    let store =
        objects::open(&manager.identity.object_store_credentials, &location).map_err(|e| e.to_string())?;
    let manifest_path = objects::manifest_path(&location, &recovery.cluster, &recovery.backup_id);
    progress(format!("reading {}", objects::url(&location, &manifest_path)), 0);
    let bytes = store
        .get(&manifest_path)
        .await
        .map_err(|e| {
            format!(
                "reading {}: {}",
                objects::url(&location, &manifest_path),
                objects::describe(&e)
            )
        })?
        .bytes()
        .await
        .map_err(|e| objects::describe(&e))?;
    let manifest: BackupManifest = serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "{} is not a backup manifest: {e}",
            objects::url(&location, &manifest_path)
        )
    })?;
    if manifest.version != MANIFEST_VERSION {
        return Err(format!(
            "manifest version {} is not supported (this version reads {MANIFEST_VERSION})",
            manifest.version
        ));
    }
    if manifest.checksum != recovery.checksum {
        return Err(format!(
            "the manifest's checksum {} is not the one recorded when the restore was planned ({}): the backup \
             was replaced",
            manifest.checksum, recovery.checksum
        ));
    }
    let snapshot_path =
        objects::backup_dir(&location, &recovery.cluster, &recovery.backup_id).join(manifest.file.as_str());
    let url = objects::url(&location, &snapshot_path);
    let data_dir = &manager.identity.data_dir;
    let temporary = data_dir.join(TEMPORARY);
    let downloaded = async {
        let found = store
            .get(&snapshot_path)
            .await
            .map_err(|e| format!("reading {url}: {}", objects::describe(&e)))?;
        let mut stream = found.into_stream();
        let mut file = tokio::fs::File::create(&temporary)
            .await
            .map_err(|e| format!("creating {}: {e}", temporary.display()))?;
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut size: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| format!("downloading {url}: {}", objects::describe(&e)))?;
            digest.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| format!("writing {}: {e}", temporary.display()))?;
            size += chunk.len() as u64;
            progress(format!("downloading {url}"), size);
        }
        file.sync_all()
            .await
            .map_err(|e| format!("writing {}: {e}", temporary.display()))?;
        let checksum = format!("sha256:{}", crate::backup::hex(digest.finish().as_ref()));
        if size != manifest.size_bytes || checksum != manifest.checksum {
            return Err(format!(
                "{url} does not match its manifest: {size} bytes with {checksum}, the manifest says {} bytes with \
                 {}; the artifact is corrupt or was replaced",
                manifest.size_bytes, manifest.checksum
            ));
        }
        Ok(size)
    }
    .await;
    let size = match downloaded {
        Ok(size) => size,
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            return Err(error);
        }
    };
    let snapshot = data_dir.join(SNAPSHOT_FILE);
    std::fs::rename(&temporary, &snapshot).map_err(|e| format!("renaming {}: {e}", temporary.display()))?;
    if matches!(
        view.cluster.spec.persistence.mode,
        PersistenceMode::Aof | PersistenceMode::RdbAof
    ) {
        aof_base(data_dir, &snapshot).map_err(|e| format!("making the snapshot the AOF base: {e}"))?;
    }
    progress(
        format!(
            "restored {} ({} keys) from {url}",
            recovery.backup_id, manifest.keys
        ),
        size,
    );
    tracing::info!(backup = %recovery.backup_id, bytes = size, keys = manifest.keys, "restored");
    Ok(size)
}

/// A multi-part AOF (`appendonlydir/`) whose base is the snapshot and whose increment is empty.
fn aof_base(data_dir: &Path, snapshot: &Path) -> std::io::Result<()> {
    let dir = data_dir.join("appendonlydir");
    std::fs::create_dir_all(&dir)?;
    let base = dir.join("appendonly.aof.1.base.rdb");
    if std::fs::hard_link(snapshot, &base).is_err() {
        std::fs::copy(snapshot, &base)?;
    }
    std::fs::write(dir.join("appendonly.aof.1.incr.aof"), b"")?;
    std::fs::write(
        dir.join("appendonly.aof.manifest"),
        "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n",
    )
}

/// Records a failed attempt.
pub fn failed(manager: &Manager, error: &str) {
    let mut slot = manager.restore.lock().unwrap_or_else(|p| p.into_inner());
    let step = slot.as_ref().map(|r| r.step.clone()).unwrap_or_default();
    *slot = Some(RestoreReport {
        step,
        downloaded_bytes: 0,
        error: Some(error.to_string()),
    });
}

/// Clears a failure once an attempt succeeded.
pub fn succeeded(manager: &Manager) {
    if let Some(report) = manager.restore.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        report.error = None;
    }
}
