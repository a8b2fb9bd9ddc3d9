//! Backups taken by this instance (`POST /v1/backups`): a `BGSAVE` whose completion is checked, the RDB
//! file streamed to the object store in a multipart upload (8 MiB parts, never the whole file in memory)
//! while its sha256 is computed, then `manifest.json` next to it. The manifest is written last, so a
//! backup directory without one is incomplete.
//!
//! One backup runs at a time per instance; a request for another name meanwhile is refused (409), a
//! request for a known name reports it (idempotent). Reports live in memory: after an instance manager
//! restart a running backup is gone, and `GET /v1/backups/{name}` answers 404, which the operator turns
//! into a failure (the bucket holds no manifest for it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cnredis_instance_client::wire::{
    self, BackupManifest, BackupPhase, BackupReport, BackupRequest, MANIFEST_VERSION,
};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;

use crate::info::{self, ServerInfo};
use crate::manager::Manager;
use cnredis_instance_client::objects::{self, SNAPSHOT_FILE};

/// Size of one multipart part (S3 needs at least 5 MiB for all but the last).
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploaded at the same time.
const UPLOAD_CONCURRENCY: usize = 2;
/// Reports kept for `GET` after their backup ended.
const KEPT_REPORTS: usize = 32;
/// How often the `BGSAVE` is polled.
const SAVE_POLL: Duration = Duration::from_millis(100);

/// Why a backup request is refused before it starts.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("backup {0} is running on this instance; one backup at a time")]
    Busy(String),
    #[error("{0}")]
    Invalid(String),
    #[error("this instance cannot be backed up now: {0}")]
    Unfit(String),
}

/// The backups this instance manager knows, newest last.
#[derive(Default)]
pub struct Backups {
    reports: std::sync::Mutex<Vec<BackupReport>>,
}

impl Backups {
    pub fn get(&self, name: &str) -> Option<BackupReport> {
        self.lock().iter().find(|r| r.name == name).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<BackupReport>> {
        self.reports.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut BackupReport)) {
        if let Some(report) = self.lock().iter_mut().find(|r| r.name == name) {
            change(report);
        }
    }
}

/// Starts the backup `request` names (in the background), or reports the one of that name.
pub async fn start(manager: &Arc<Manager>, request: BackupRequest) -> Result<BackupReport, Refusal> {
    if let Some(known) = manager.backups.get(&request.name) {
        return Ok(known);
    }
    validate(&request).map_err(Refusal::Invalid)?;
    {
        let state = manager.state.lock().await;
        let unfit = match &state.server_info {
            None => Some("its server does not answer".to_string()),
            Some(info) if info.loading => Some("its server is loading its dataset".to_string()),
            Some(_) if state.empty_after_restart => {
                Some("it restarted empty while the cluster records data".to_string())
            }
            Some(_) if state.restarted_primary => {
                Some("it is a restarted primary awaiting failover".to_string())
            }
            Some(_) => None,
        };
        if let Some(why) = unfit {
            return Err(Refusal::Unfit(why));
        }
    }
    let report = {
        let mut reports = manager.backups.lock();
        if let Some(known) = reports.iter().find(|r| r.name == request.name) {
            return Ok(known.clone());
        }
        if let Some(running) = reports.iter().find(|r| r.phase == BackupPhase::Running) {
            return Err(Refusal::Busy(running.name.clone()));
        }
        let report = BackupReport {
            name: request.name.clone(),
            phase: BackupPhase::Running,
            step: "starting".to_string(),
            started_at: now_rfc3339(),
            stopped_at: None,
            uploaded_bytes: 0,
            manifest: None,
            error: None,
        };
        reports.push(report.clone());
        let finished = reports.len().saturating_sub(KEPT_REPORTS);
        let mut dropped = 0;
        reports.retain(|r| {
            let drop = dropped < finished && r.phase != BackupPhase::Running;
            dropped += usize::from(drop);
            !drop
        });
        report
    };
    let manager = manager.clone();
    tokio::spawn(async move {
        let name = request.name.clone();
        let within = Duration::from_secs(request.timeout_seconds.max(1));
        let outcome = match tokio::time::timeout(within, take(&manager, &request)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                let step = manager.backups.get(&name).map(|r| r.step).unwrap_or_default();
                Err(format!(
                    "did not complete within {}s (it was {step})",
                    within.as_secs()
                ))
            }
        };
        match &outcome {
            Ok(manifest) => tracing::info!(
                backup = %name,
                bytes = manifest.size_bytes,
                checksum = %manifest.checksum,
                "backup completed"
            ),
            Err(error) => tracing::warn!(backup = %name, %error, "backup failed"),
        }
        manager.backups.update(&name, |report| {
            report.stopped_at = Some(now_rfc3339());
            match outcome {
                Ok(manifest) => {
                    report.phase = BackupPhase::Completed;
                    report.step = "completed".to_string();
                    report.manifest = Some(manifest);
                }
                Err(error) => {
                    report.phase = BackupPhase::Failed;
                    report.error = Some(error);
                }
            }
        });
    });
    Ok(report)
}

fn validate(request: &BackupRequest) -> Result<(), String> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    };
    if !plain(&request.name) {
        return Err(format!(
            "backup name {:?} is not a Kubernetes object name",
            request.name
        ));
    }
    if !plain(&request.cluster) {
        return Err(format!(
            "cluster name {:?} is not a Kubernetes object name",
            request.cluster
        ));
    }
    if request.store.bucket.is_empty() {
        return Err("the object store location names no bucket".to_string());
    }
    Ok(())
}

/// Takes the backup; the manifest on success, a sentence for the user on failure.
async fn take(manager: &Manager, request: &BackupRequest) -> Result<BackupManifest, String> {
    let name = &request.name;
    let step = |what: &str| manager.backups.update(name, |r| r.step = what.to_string());
    let location = &request.store;

    step("opening the object store");
    let store =
        objects::open(&manager.identity.object_store_credentials, location).map_err(|e| e.to_string())?;
    step("checking the backup location");
    check_location(store.as_ref(), request).await?;

    let before = read_info(manager).await?;
    if before.loading {
        return Err("the server is loading its dataset".to_string());
    }
    let started_at = now_rfc3339();
    step("waiting for BGSAVE");
    let save_started = Instant::now();
    snapshot(manager, &before).await?;
    tracing::info!(backup = %name, took_ms = save_started.elapsed().as_millis() as u64, "BGSAVE completed");

    step("uploading");
    let directory = objects::backup_dir(location, &request.cluster, name);
    let snapshot_path = directory.join(SNAPSHOT_FILE);
    let file = manager.identity.data_dir.join(SNAPSHOT_FILE);
    let (size_bytes, checksum) = upload(manager, name, store.as_ref(), &file, &snapshot_path).await?;
    let stored = store.head(&snapshot_path).await.map_err(|e| {
        format!(
            "reading back {}: {}",
            objects::url(location, &snapshot_path),
            objects::describe(&e)
        )
    })?;
    if stored.size != size_bytes {
        return Err(format!(
            "{} holds {} bytes, {size_bytes} were uploaded",
            objects::url(location, &snapshot_path),
            stored.size
        ));
    }

    step("writing the manifest");
    let engine = manager.engine.kind.name();
    let manifest = BackupManifest {
        version: MANIFEST_VERSION,
        cluster: request.cluster.clone(),
        cluster_uid: request.cluster_uid.clone(),
        backup: name.clone(),
        instance: manager.identity.pod_name.clone(),
        role: before.role,
        engine: engine.to_string(),
        engine_version: before.engine_version().to_string(),
        file: SNAPSHOT_FILE.to_string(),
        format: "rdb".to_string(),
        size_bytes,
        checksum,
        replication_id: before.master_replid.clone(),
        replication_offset: before.master_repl_offset,
        keys: before.total_keys(),
        started_at,
        stopped_at: now_rfc3339(),
    };
    let body = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    let manifest_path = objects::manifest_path(location, &request.cluster, name);
    store
        .put(&manifest_path, PutPayload::from(body))
        .await
        .map_err(|e| {
            format!(
                "writing {}: {}",
                objects::url(location, &manifest_path),
                objects::describe(&e)
            )
        })?;
    Ok(manifest)
}

/// The location must be reachable with these credentials, and its backups (if any) must be this
/// cluster's: another cluster of the same name (say, a restored copy) must not mix its backups in.
async fn check_location(store: &dyn ObjectStore, request: &BackupRequest) -> Result<(), String> {
    let location = &request.store;
    let dir = objects::cluster_dir(location, &request.cluster);
    let listing = store.list_with_delimiter(Some(&dir)).await.map_err(|e| {
        format!(
            "listing {}/: {}",
            objects::url(location, &dir),
            objects::describe(&e)
        )
    })?;
    for backup in listing.common_prefixes.iter().take(3) {
        let path = backup.clone().join(wire::MANIFEST_FILE);
        let bytes = match store.get(&path).await {
            Ok(found) => found.bytes().await.map_err(|e| objects::describe(&e))?,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => {
                return Err(format!(
                    "reading {}: {}",
                    objects::url(location, &path),
                    objects::describe(&e)
                ));
            }
        };
        let Ok(manifest) = serde_json::from_slice::<BackupManifest>(&bytes) else {
            continue;
        };
        if manifest.cluster_uid != request.cluster_uid {
            return Err(format!(
                "{}/ holds backups of another cluster named {} (uid {}, this one is {}): refusing to mix \
                 them; give this cluster's spec.backup.objectStore.destinationPath another prefix",
                objects::url(location, &dir),
                manifest.cluster,
                manifest.cluster_uid,
                request.cluster_uid
            ));
        }
        break;
    }
    Ok(())
}

async fn read_info(manager: &Manager) -> Result<ServerInfo, String> {
    manager
        .server
        .info()
        .await
        .map(|text| info::parse(&text))
        .map_err(|e| format!("the server did not answer INFO: {e}"))
}

/// Runs a `BGSAVE` (scheduled after a running AOF rewrite) and waits until it has written `dump.rdb`.
/// `rdb_saves` counts saves when they start, so a count above the one before the request and no save in
/// progress means a save that started after the request has ended.
async fn snapshot(manager: &Manager, before: &ServerInfo) -> Result<(), String> {
    loop {
        let mut command = redis::cmd("BGSAVE");
        command.arg("SCHEDULE");
        match manager.server.query::<String>(&command).await {
            Ok(_) => break,
            Err(error) if error.to_string().contains("already in progress") => {
                // Someone else's save: wait for it to end, then start ours.
                while read_info(manager).await?.rdb_bgsave_in_progress {
                    tokio::time::sleep(SAVE_POLL).await;
                }
            }
            Err(error) => return Err(format!("BGSAVE was refused: {error}")),
        }
    }
    loop {
        let now = read_info(manager).await?;
        if now.rdb_saves > before.rdb_saves && !now.rdb_bgsave_in_progress {
            if now.rdb_last_bgsave_ok {
                return Ok(());
            }
            return Err(
                "BGSAVE failed (rdb_last_bgsave_status:err): the server could not write its \
                        snapshot, e.g. the data volume is full; see the server's log"
                    .to_string(),
            );
        }
        tokio::time::sleep(SAVE_POLL).await;
    }
}

/// Streams `file` to `path` in a multipart upload, hashing as it goes; its size and `sha256:<hex>`.
async fn upload(
    manager: &Manager,
    name: &str,
    store: &dyn ObjectStore,
    file: &std::path::Path,
    path: &ObjectPath,
) -> Result<(u64, String), String> {
    let mut reader = tokio::fs::File::open(file)
        .await
        .map_err(|e| format!("opening {}: {e}", file.display()))?;
    let upload = store
        .put_multipart(path)
        .await
        .map_err(|e| format!("starting the upload of {path}: {}", objects::describe(&e)))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 1024 * 1024];
    let mut size: u64 = 0;
    let result: Result<(), String> = async {
        loop {
            let read = reader
                .read(&mut buffer)
                .await
                .map_err(|e| format!("reading {}: {e}", file.display()))?;
            if read == 0 {
                return Ok(());
            }
            writer
                .wait_for_capacity(UPLOAD_CONCURRENCY)
                .await
                .map_err(|e| format!("uploading {path}: {}", objects::describe(&e)))?;
            digest.update(&buffer[..read]);
            writer.write(&buffer[..read]);
            size += read as u64;
            manager.backups.update(name, |r| r.uploaded_bytes = size);
        }
    }
    .await;
    if let Err(error) = result {
        let _ = writer.abort().await;
        return Err(error);
    }
    writer
        .finish()
        .await
        .map_err(|e| format!("completing the upload of {path}: {}", objects::describe(&e)))?;
    manager.backups.update(name, |r| r.uploaded_bytes = size);
    Ok((size, format!("sha256:{}", hex(digest.finish().as_ref()))))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnredis_instance_client::wire::StoreLocation;

    fn request(name: &str) -> BackupRequest {
        BackupRequest {
            name: name.to_string(),
            cluster: "orders".to_string(),
            cluster_uid: "uid-1".to_string(),
            store: StoreLocation {
                bucket: "backups".to_string(),
                prefix: String::new(),
                endpoint_url: None,
                region: "us-east-1".to_string(),
                credentials: "backup".to_string(),
            },
            timeout_seconds: 60,
        }
    }

    #[test]
    fn backup_names_must_be_object_names() {
        assert!(validate(&request("nightly-20261202010000")).is_ok());
        assert!(validate(&request("../etc")).is_err());
        assert!(validate(&request("")).is_err());
        assert!(validate(&request("Upper")).is_err());
    }

    #[test]
    fn checksums_are_lowercase_hex() {
        let digest = ring::digest::digest(&ring::digest::SHA256, b"abc");
        assert_eq!(
            hex(digest.as_ref()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn manifests_round_trip_and_refuse_missing_fields() {
        let manifest = BackupManifest {
            version: MANIFEST_VERSION,
            cluster: "orders".to_string(),
            cluster_uid: "uid-1".to_string(),
            backup: "b1".to_string(),
            instance: "orders-2".to_string(),
            role: wire::Role::Replica,
            engine: "valkey".to_string(),
            engine_version: "8.1.4".to_string(),
            file: SNAPSHOT_FILE.to_string(),
            format: "rdb".to_string(),
            size_bytes: 42,
            checksum: "sha256:00".to_string(),
            replication_id: "abc".to_string(),
            replication_offset: 7,
            keys: 3,
            started_at: "2026-12-02T01:00:00Z".to_string(),
            stopped_at: "2026-12-02T01:00:01Z".to_string(),
        };
        let text = serde_json::to_string(&manifest).unwrap();
        assert!(
            text.contains("\"sizeBytes\":42") && text.contains("\"replicationOffset\":7"),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<BackupManifest>(&text).unwrap(), manifest);
        assert!(serde_json::from_str::<BackupManifest>("{\"version\":1}").is_err());
    }
}
