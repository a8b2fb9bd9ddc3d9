//! Pod volumes on the host: every volume becomes a directory (or a PV's directory) that the runtime
//! bind-mounts. Secret, ConfigMap, projected and downward-API volumes are written the way upstream's
//! atomic writer does (`..data` symlink swapped in one rename), and are re-written by `refresh` so that
//! rotated secrets and renewed tokens reach running pods without a restart.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, Secret,
    ServiceAccount, Volume,
};
use kube::api::{Api, PostParams};
use serde_json::json;

/// One file of a rendered volume: relative path, contents, mode.
pub type Files = BTreeMap<String, (Vec<u8>, u32)>;

/// Where each volume of a pod lives on the host.
pub type VolumePaths = BTreeMap<String, PathBuf>;

/// Prepares every volume of `pod` under `pod_dir/volumes/`. Errors name the volume and what is missing,
/// for the `FailedMount` event.
pub async fn prepare(client: &kube::Client, pod: &Pod, pod_dir: &Path) -> anyhow::Result<VolumePaths> {
    let mut paths = VolumePaths::new();
    for volume in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
    {
        let path = prepare_one(client, pod, pod_dir, volume)
            .await
            .with_context(|| format!("volume {:?}", volume.name))?;
        paths.insert(volume.name.clone(), path);
    }
    Ok(paths)
}

/// Re-renders the volumes whose content comes from the API (secrets, config maps, projected tokens,
/// downward API); emptyDirs and PVCs are left alone.
pub async fn refresh(client: &kube::Client, pod: &Pod, pod_dir: &Path) -> anyhow::Result<()> {
    for volume in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
    {
        if let Some(files) = render(client, pod, volume).await? {
            write_atomic(&pod_dir.join("volumes").join(&volume.name), &files, fs_group(pod))?;
        }
    }
    Ok(())
}

async fn prepare_one(
    client: &kube::Client,
    pod: &Pod,
    pod_dir: &Path,
    volume: &Volume,
) -> anyhow::Result<PathBuf> {
    let dir = pod_dir.join("volumes").join(&volume.name);
    if volume.empty_dir.is_some() {
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
        return Ok(dir);
    }
    if let Some(host) = &volume.host_path {
        let path = PathBuf::from(&host.path);
        if host.type_.as_deref() == Some("DirectoryOrCreate") {
            std::fs::create_dir_all(&path)?;
        }
        return Ok(path);
    }
    if let Some(claim) = &volume.persistent_volume_claim {
        return claim_path(client, pod, &claim.claim_name).await;
    }
    match render(client, pod, volume).await? {
        Some(files) => {
            write_atomic(&dir, &files, fs_group(pod))?;
            Ok(dir)
        }
        None => bail!(
            "unsupported volume type (supported: emptyDir, hostPath, persistentVolumeClaim, secret, configMap, projected, downwardAPI)"
        ),
    }
}

/// The host directory of the PV bound to `claim` (a `hostPath` PV, as the local provisioner creates).
async fn claim_path(client: &kube::Client, pod: &Pod, claim: &str) -> anyhow::Result<PathBuf> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let pvc = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .get_opt(claim)
        .await?
        .ok_or_else(|| anyhow!("persistentvolumeclaim {claim:?} not found"))?;
    let phase = pvc
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    let pv_name = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|_| phase == "Bound")
        .ok_or_else(|| anyhow!("persistentvolumeclaim {claim:?} is not bound (phase {phase:?})"))?;
    let pv = Api::<PersistentVolume>::all(client.clone()).get(&pv_name).await?;
    let spec = pv.spec.as_ref();
    let path = spec
        .and_then(|s| s.host_path.as_ref().map(|h| h.path.clone()))
        .or_else(|| spec.and_then(|s| s.local.as_ref().map(|l| l.path.clone())))
        .ok_or_else(|| anyhow!("persistentvolume {pv_name:?} has no hostPath or local source"))?;
    std::fs::create_dir_all(&path).with_context(|| format!("creating {path}"))?;
    Ok(PathBuf::from(path))
}

/// The files of an API-backed volume, or `None` for other volume types.
async fn render(client: &kube::Client, pod: &Pod, volume: &Volume) -> anyhow::Result<Option<Files>> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mode_of = |default_mode: Option<i32>| default_mode.unwrap_or(0o644) as u32;
    if let Some(source) = &volume.secret {
        let name = source.secret_name.clone().unwrap_or_default();
        let data = secret_data(client, ns, &name).await?;
        let mode = mode_of(source.default_mode);
        return keyed(
            "secret",
            &name,
            data,
            source.items.as_deref(),
            source.optional,
            mode,
        )
        .map(Some);
    }
    if let Some(source) = &volume.config_map {
        let data = config_map_data(client, ns, &source.name).await?;
        let mode = mode_of(source.default_mode);
        return keyed(
            "configmap",
            &source.name,
            data,
            source.items.as_deref(),
            source.optional,
            mode,
        )
        .map(Some);
    }
    if let Some(source) = &volume.downward_api {
        let items = source.items.as_deref().unwrap_or_default();
        return downward_files(pod, items, mode_of(source.default_mode)).map(Some);
    }
    if let Some(projected) = &volume.projected {
        let mode = mode_of(projected.default_mode);
        let mut files = Files::new();
        for source in projected.sources.iter().flatten() {
            if let Some(token) = &source.service_account_token {
                let value =
                    service_account_token(client, pod, token.expiration_seconds, token.audience.as_deref())
                        .await?;
                files.insert(token.path.clone(), (value.into_bytes(), mode));
            }
            if let Some(secret) = &source.secret {
                let data = secret_data(client, ns, &secret.name).await?;
                files.extend(keyed(
                    "secret",
                    &secret.name,
                    data,
                    secret.items.as_deref(),
                    secret.optional,
                    mode,
                )?);
            }
            if let Some(cm) = &source.config_map {
                let data = config_map_data(client, ns, &cm.name).await?;
                files.extend(keyed(
                    "configmap",
                    &cm.name,
                    data,
                    cm.items.as_deref(),
                    cm.optional,
                    mode,
                )?);
            }
            if let Some(downward) = &source.downward_api {
                files.extend(downward_files(
                    pod,
                    downward.items.as_deref().unwrap_or_default(),
                    mode,
                )?);
            }
        }
        return Ok(Some(files));
    }
    Ok(None)
}

/// The files of a Secret or ConfigMap source: its selected keys; nothing when it is missing but
/// optional; an error naming it when it is missing and required.
fn keyed(
    kind: &str,
    name: &str,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    mode: u32,
) -> anyhow::Result<Files> {
    match data {
        Some(data) => select(&data, items, mode, &format!("{kind} {name:?}")),
        None if optional == Some(true) => Ok(Files::new()),
        None => bail!("{kind} {name:?} not found"),
    }
}

fn downward_files(pod: &Pod, items: &[DownwardAPIVolumeFile], mode: u32) -> anyhow::Result<Files> {
    let mut files = Files::new();
    for item in items {
        let field = item
            .field_ref
            .as_ref()
            .map(|f| f.field_path.as_str())
            .unwrap_or_default();
        let content = downward_field(pod, field)?.into_bytes();
        files.insert(item.path.clone(), (content, item.mode.map_or(mode, |m| m as u32)));
    }
    Ok(files)
}

/// A Secret's keys and their bytes, or `None` when it does not exist.
async fn secret_data(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> anyhow::Result<Option<BTreeMap<String, Vec<u8>>>> {
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?;
    Ok(secret.map(|s| binary(s.data)))
}

/// A ConfigMap's keys (text and binary) and their bytes, or `None` when it does not exist.
async fn config_map_data(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> anyhow::Result<Option<BTreeMap<String, Vec<u8>>>> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?;
    Ok(cm.map(|cm| {
        let text = cm
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()));
        text.chain(binary(cm.binary_data)).collect()
    }))
}

fn binary(data: Option<BTreeMap<String, k8s_openapi::ByteString>>) -> BTreeMap<String, Vec<u8>> {
    data.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

/// A bound service-account token for the pod (TokenRequest bound to the pod object).
async fn service_account_token(
    client: &kube::Client,
    pod: &Pod,
    expiration: Option<i64>,
    audience: Option<&str>,
) -> anyhow::Result<String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let mut spec = json!({
        "expirationSeconds": expiration.unwrap_or(3607),
        "boundObjectRef": { "apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name, "uid": pod.metadata.uid },
    });
    if let Some(audience) = audience {
        spec["audiences"] = json!([audience]);
    }
    let request = json!({ "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec });
    let response: TokenRequest = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_subresource("token", &account, &PostParams::default(), &request)
        .await
        .with_context(|| format!("requesting a token for serviceaccount {ns}/{account}"))?;
    Ok(response.status.map(|s| s.token).unwrap_or_default())
}

/// The selected keys of `data` (all when `items` is absent), as files.
pub fn select(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    mode: u32,
    what: &str,
) -> anyhow::Result<Files> {
    let mut files = Files::new();
    match items {
        None => {
            for (key, value) in data {
                files.insert(key.clone(), (value.clone(), mode));
            }
        }
        Some(items) => {
            for item in items {
                let value = data
                    .get(&item.key)
                    .ok_or_else(|| anyhow!("key {:?} not found in {what}", item.key))?;
                files.insert(
                    item.path.clone(),
                    (value.clone(), item.mode.map_or(mode, |m| m as u32)),
                );
            }
        }
    }
    Ok(files)
}

/// A downward-API file: scalar fields as their value, label/annotation maps as `key="value"` lines.
pub fn downward_field(pod: &Pod, path: &str) -> anyhow::Result<String> {
    let meta = &pod.metadata;
    let lines = |map: &Option<BTreeMap<String, String>>| {
        map.iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}\n"))
            .collect::<String>()
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => lines(&meta.labels),
        "metadata.annotations" => lines(&meta.annotations),
        other => {
            // One key, `metadata.annotations['k']` or `metadata.labels['k']`: its value, or empty.
            let subscript = |prefix: &str| {
                other
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.strip_prefix("['"))
                    .and_then(|rest| rest.strip_suffix("']"))
            };
            if let Some(key) = subscript("metadata.annotations") {
                meta.annotations
                    .as_ref()
                    .and_then(|m| m.get(key))
                    .cloned()
                    .unwrap_or_default()
            } else if let Some(key) = subscript("metadata.labels") {
                meta.labels
                    .as_ref()
                    .and_then(|m| m.get(key))
                    .cloned()
                    .unwrap_or_default()
            } else {
                bail!("unsupported downward API field {other:?}")
            }
        }
    })
}

/// The pod's `securityContext.fsGroup`: upstream gives API-backed volume files that group, so a
/// non-root container can read a secret mounted with mode 0440.
fn fs_group(pod: &Pod) -> Option<u32> {
    let group = pod.spec.as_ref()?.security_context.as_ref()?.fs_group?;
    u32::try_from(group).ok()
}

/// Writes `files` into `dir` atomically: a new timestamped directory, `..data` re-pointed to it by a
/// rename, top-level entries as symlinks through `..data`, the previous directory removed. Files are
/// given the group `group` when set (the pod's fsGroup). Nothing is written when `dir` already holds
/// exactly `files`, as upstream's atomic writer does: a refresh that changes nothing leaves the files'
/// modification times alone (programs watch them to reload certificates).
pub fn write_atomic(dir: &Path, files: &Files, group: Option<u32>) -> anyhow::Result<()> {
    if holds_exactly(&dir.join("..data"), files) {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let stamp = format!(
        "..{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    );
    let staged = dir.join(&stamp);
    for (path, (content, mode)) in files {
        let target = staged.join(path);
        std::fs::create_dir_all(target.parent().unwrap_or(&staged))?;
        std::fs::write(&target, content)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(*mode))?;
        if let Some(gid) = group {
            nix::unistd::chown(&target, None, Some(nix::unistd::Gid::from_raw(gid)))?;
        }
    }
    std::fs::create_dir_all(&staged)?;
    let previous = std::fs::read_link(dir.join("..data")).ok();
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(&stamp, &tmp_link)?;
    std::fs::rename(&tmp_link, dir.join("..data"))?;
    let top: std::collections::BTreeSet<String> = files
        .keys()
        .map(|p| p.split('/').next().unwrap_or(p).to_string())
        .collect();
    for entry in &top {
        let link = dir.join(entry);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(entry), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !top.contains(&name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    if let Some(previous) = previous.filter(|p| p.as_os_str() != stamp.as_str()) {
        let _ = std::fs::remove_dir_all(dir.join(previous));
    }
    Ok(())
}

/// Whether the directory `data` holds exactly `files`: the same paths, contents and modes, nothing else.
fn holds_exactly(data: &Path, files: &Files) -> bool {
    let matches = |(path, (content, mode)): (&String, &(Vec<u8>, u32))| {
        let file = data.join(path);
        std::fs::read(&file).is_ok_and(|held| held == *content)
            && std::fs::metadata(&file).is_ok_and(|meta| meta.permissions().mode() & 0o7777 == *mode)
    };
    files.iter().all(matches) && count_files(data) == Some(files.len())
}

fn count_files(dir: &Path) -> Option<usize> {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        count += if path.is_dir() { count_files(&path)? } else { 1 };
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cnredis-volumes-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn atomic_writer_leaves_unchanged_files_alone() {
        let dir = scratch("unchanged");
        let v1: Files = [("tls.crt".to_string(), (b"cert".to_vec(), 0o644))].into();
        write_atomic(&dir, &v1, None).unwrap();
        let data = std::fs::read_link(dir.join("..data")).unwrap();
        write_atomic(&dir, &v1, None).unwrap();
        assert_eq!(
            std::fs::read_link(dir.join("..data")).unwrap(),
            data,
            "rewritten without a change"
        );
        let v2: Files = [("tls.crt".to_string(), (b"cert".to_vec(), 0o600))].into();
        write_atomic(&dir, &v2, None).unwrap();
        assert_ne!(
            std::fs::read_link(dir.join("..data")).unwrap(),
            data,
            "a new mode not written"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn atomic_writer_swaps_contents_and_drops_removed_keys() {
        let dir = scratch("atomic");
        let v1: Files = [
            ("password".into(), (b"one".to_vec(), 0o600)),
            ("user".into(), (b"u".to_vec(), 0o644)),
        ]
        .into();
        write_atomic(&dir, &v1, None).unwrap();
        assert_eq!(std::fs::read(dir.join("password")).unwrap(), b"one");
        assert_eq!(
            std::fs::metadata(dir.join("password"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        let v2: Files = [("password".into(), (b"two".to_vec(), 0o600))].into();
        write_atomic(&dir, &v2, None).unwrap();
        assert_eq!(std::fs::read(dir.join("password")).unwrap(), b"two");
        assert!(!dir.join("user").exists(), "a removed key must disappear");
        let stamps = std::fs::read_dir(&dir).unwrap().filter(|e| {
            let name = e.as_ref().unwrap().file_name().to_string_lossy().into_owned();
            name.starts_with("..") && name != "..data"
        });
        assert_eq!(stamps.count(), 1, "the previous generation must be removed");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn items_select_keys_and_a_missing_key_is_an_error() {
        let data: BTreeMap<String, Vec<u8>> =
            [("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())].into();
        let items: Vec<KeyToPath> =
            vec![serde_json::from_value(json!({ "key": "a", "path": "dir/a.txt", "mode": 256 })).unwrap()];
        let files = select(&data, Some(&items), 0o644, "secret s").unwrap();
        assert_eq!(files.get("dir/a.txt"), Some(&(b"1".to_vec(), 0o400)));
        assert_eq!(files.len(), 1);
        let missing: Vec<KeyToPath> =
            vec![serde_json::from_value(json!({ "key": "zz", "path": "z" })).unwrap()];
        let err = select(&data, Some(&missing), 0o644, "secret s").unwrap_err();
        assert!(
            err.to_string().contains("key \"zz\" not found in secret s"),
            "{err}"
        );
    }

    #[test]
    fn downward_api_writes_labels_as_quoted_lines() {
        let pod: Pod = serde_json::from_value(
            json!({ "metadata": { "name": "p", "labels": { "a": "1", "b": "x y" } } }),
        )
        .unwrap();
        assert_eq!(
            downward_field(&pod, "metadata.labels").unwrap(),
            "a=\"1\"\nb=\"x y\"\n"
        );
        assert_eq!(downward_field(&pod, "metadata.name").unwrap(), "p");
        assert!(downward_field(&pod, "spec.nodeName").is_err());
    }

    #[test]
    fn downward_api_subscripts_give_one_value_or_empty() {
        let pod: Pod = serde_json::from_value(json!({ "metadata": {
            "name": "p", "labels": { "a": "1" }, "annotations": { "cnredis.io/reloadedAt": "T" } } }))
        .unwrap();
        assert_eq!(
            downward_field(&pod, "metadata.annotations['cnredis.io/reloadedAt']").unwrap(),
            "T"
        );
        assert_eq!(downward_field(&pod, "metadata.labels['a']").unwrap(), "1");
        assert_eq!(downward_field(&pod, "metadata.labels['absent']").unwrap(), "");
        assert!(downward_field(&pod, "metadata.labels[a]").is_err());
    }
}
