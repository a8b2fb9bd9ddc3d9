//! The volumes of an instance pod and where the `server` container mounts them. Each volume is declared
//! once with its mount, so a volume can never be mounted without existing or exist without its mount.
//! Secrets reach the pod only as volumes: a rotated secret then appears in the files without a restart,
//! and no credential is visible in the pod spec or `/proc/*/environ`.

use cnredis_api::RedisCluster;
use cnredis_api::common::ObjectStore;
use cnredis_api::names::{ANNOTATION_RELOADED_AT, RELOADED_AT_FILE, instance_api_secret_of};
use k8s_openapi::api::core::v1::{
    DownwardAPIProjection, DownwardAPIVolumeFile, EmptyDirVolumeSource, KeyToPath, ObjectFieldSelector,
    PersistentVolumeClaimVolumeSource, ProjectedVolumeSource, SecretKeySelector, SecretProjection,
    SecretVolumeSource, Volume, VolumeMount, VolumeProjection,
};

use crate::cluster::resources::secrets::{PASSWORD_KEY, auth_secret_name};

/// Shared by both containers: the `cnredis` binary, and the instance manager's run directory.
pub const CONTROLLER_VOLUME: &str = "controller";
/// The projected volume of the backup object store's credentials (present while `spec.backup` is set).
pub const BACKUP_CREDENTIALS_VOLUME: &str = "object-store-backup";
pub const CONTROLLER_DIR: &str = "/controller";
pub const DATA_DIR: &str = "/data";
pub const RUN_DIR: &str = "/controller/run";
pub const AUTH_DIR: &str = "/etc/cnredis/auth";
pub const INSTANCE_API_TLS_DIR: &str = "/etc/cnredis/instance-api";
pub const SERVER_TLS_DIR: &str = "/etc/cnredis/tls";
/// `spec.backup.objectStore`'s credentials: `names::OBJECT_STORE_CREDENTIALS_DIR`/`names::BACKUP_CREDENTIALS`.
pub const BACKUP_CREDENTIALS_DIR: &str = "/etc/cnredis/object-store/backup";
/// The restore source's credentials (`status.recovery`).
pub const RECOVERY_CREDENTIALS_DIR: &str = "/etc/cnredis/object-store/recovery";

/// Owner and group may read, nobody else: the files hold a password or a private key, and the pod's
/// fsGroup makes the group the server's.
const SECRET_MODE: i32 = 0o440;

/// A volume and where the `server` container mounts it.
#[derive(Clone, Debug)]
pub struct PodVolume {
    pub volume: Volume,
    pub mount_path: &'static str,
    pub read_only: bool,
}

impl PodVolume {
    pub fn mount(&self) -> VolumeMount {
        VolumeMount {
            name: self.volume.name.clone(),
            mount_path: self.mount_path.to_string(),
            read_only: self.read_only.then_some(true),
            ..VolumeMount::default()
        }
    }
}

/// Every volume of the pod `pod_name`, in a fixed order.
pub fn pod_volumes(cluster: &RedisCluster, pod_name: &str) -> Vec<PodVolume> {
    let mut volumes = vec![
        writable(empty_dir(CONTROLLER_VOLUME), CONTROLLER_DIR),
        writable(
            Volume {
                name: "data".to_string(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: pod_name.to_string(),
                    read_only: None,
                }),
                ..Volume::default()
            },
            DATA_DIR,
        ),
        // The root filesystem is read-only; the server and its tools may still want a scratch directory.
        writable(empty_dir("tmp"), "/tmp"),
    ];
    if cluster.spec.auth.enabled {
        volumes.push(read_only(auth(cluster), AUTH_DIR));
    }
    volumes.push(read_only(
        secret("instance-api", instance_api_secret_of(pod_name)),
        INSTANCE_API_TLS_DIR,
    ));
    if let Some(tls) = &cluster.spec.tls {
        volumes.push(read_only(
            secret("server-tls", tls.secret_name.clone()),
            SERVER_TLS_DIR,
        ));
    }
    if let Some(backup) = &cluster.spec.backup {
        volumes.push(read_only(
            object_store_credentials(BACKUP_CREDENTIALS_VOLUME, &backup.object_store),
            BACKUP_CREDENTIALS_DIR,
        ));
    }
    // Recorded once, before the first pod, and kept: the volume never changes a pod spec afterwards.
    if let Some(recovery) = cluster.status.as_ref().and_then(|s| s.recovery.as_ref()) {
        volumes.push(read_only(
            object_store_credentials("object-store-recovery", &recovery.object_store),
            RECOVERY_CREDENTIALS_DIR,
        ));
    }
    volumes
}

/// The password, and beside it the pod's `cnredis.io/reloadedAt`: one projected volume, which the kubelet
/// rewrites in one atomic update, so an instance manager that reads the reload's time in the file knows
/// the password beside it is as the Secret was when the pod was annotated (`kubectl cnredis reload`).
fn auth(cluster: &RedisCluster) -> Volume {
    let sources = vec![
        VolumeProjection {
            secret: Some(SecretProjection {
                name: auth_secret_name(cluster),
                items: Some(vec![KeyToPath {
                    key: PASSWORD_KEY.to_string(),
                    path: PASSWORD_KEY.to_string(),
                    mode: None,
                }]),
                optional: None,
            }),
            ..VolumeProjection::default()
        },
        VolumeProjection {
            downward_api: Some(DownwardAPIProjection {
                items: Some(vec![DownwardAPIVolumeFile {
                    path: RELOADED_AT_FILE.to_string(),
                    field_ref: Some(ObjectFieldSelector {
                        api_version: None,
                        field_path: format!("metadata.annotations['{ANNOTATION_RELOADED_AT}']"),
                    }),
                    ..DownwardAPIVolumeFile::default()
                }]),
            }),
            ..VolumeProjection::default()
        },
    ];
    Volume {
        name: "auth".to_string(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(sources),
            default_mode: Some(SECRET_MODE),
        }),
        ..Volume::default()
    }
}

/// The keys of an object store's credentials as the files the instance manager reads. Optional: a
/// missing Secret or key must not keep the pod from starting (the database matters more than its
/// backups); a backup then fails with the missing file's name.
fn object_store_credentials(name: &str, store: &ObjectStore) -> Volume {
    let credentials = &store.s3_credentials;
    let project = |selector: &SecretKeySelector, file: &str| VolumeProjection {
        secret: Some(SecretProjection {
            name: selector.name.clone(),
            items: Some(vec![KeyToPath {
                key: selector.key.clone(),
                path: file.to_string(),
                mode: None,
            }]),
            optional: Some(true),
        }),
        ..VolumeProjection::default()
    };
    let mut sources = vec![
        project(&credentials.access_key_id, "ACCESS_KEY_ID"),
        project(&credentials.secret_access_key, "SECRET_ACCESS_KEY"),
    ];
    if let Some(token) = &credentials.session_token {
        sources.push(project(token, "SESSION_TOKEN"));
    }
    if let Some(ca) = &store.endpoint_ca {
        sources.push(project(ca, "CA_BUNDLE"));
    }
    Volume {
        name: name.to_string(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(sources),
            default_mode: Some(SECRET_MODE),
        }),
        ..Volume::default()
    }
}

fn writable(volume: Volume, mount_path: &'static str) -> PodVolume {
    PodVolume {
        volume,
        mount_path,
        read_only: false,
    }
}

fn read_only(volume: Volume, mount_path: &'static str) -> PodVolume {
    PodVolume {
        volume,
        mount_path,
        read_only: true,
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

fn secret(name: &str, secret_name: String) -> Volume {
    Volume {
        name: name.to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret_name),
            items: None,
            default_mode: Some(SECRET_MODE),
            optional: None,
        }),
        ..Volume::default()
    }
}
