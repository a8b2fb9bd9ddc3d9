//! Dynamic provisioner for StorageClasses of provisioner `e2e.cnredis.io/local`: provisions a hostPath
//! PersistentVolume per claim as the directory `<pv_root>/pvc-<claim uid>`, deletes it when the claim is
//! gone (reclaim policy Delete) and grows it when the claim grows, acting as external provisioner and
//! external resizer at once. The PV controller of kube-controller-manager does the binding.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::{
    api::{
        core::v1::{
            HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
            PersistentVolumeSpec,
        },
        storage::v1::StorageClass,
    },
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::ObjectMeta},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::{
        controller::{self, Action, Controller},
        events::{Event, EventType, Recorder, Reporter},
        reflector::ObjectRef,
        watcher,
    },
};

/// The `provisioner` of the StorageClasses this module serves.
pub const PROVISIONER_NAME: &str = "e2e.cnredis.io/local";
/// Marks the PVs we created; the PV controller leaves their deletion to us because of it.
const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// Set by the scheduler on claims of WaitForFirstConsumer classes once a pod using them is placed.
const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// Claim conditions an external resizer clears once the volume has its new size.
const RESIZE_CONDITIONS: &[&str] = &[
    "Resizing",
    "FileSystemResizePending",
    "ControllerResizeError",
    "NodeResizeError",
];
/// A claim whose class does not exist yet is looked at again after this long.
const MISSING_CLASS_RECHECK: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("claim {claim} has no {field}")]
    IncompleteClaim { claim: String, field: &'static str },
    #[error("invalid quantity {value:?}: {reason}")]
    InvalidQuantity { value: String, reason: &'static str },
}

/// Runs the provisioner until its watches end (they retry on their own, so in practice forever).
/// Errors on single claims or volumes are logged and retried with per-object exponential backoff.
pub async fn run(client: Client, pv_root: PathBuf) -> anyhow::Result<()> {
    tokio::fs::create_dir_all(&pv_root)
        .await
        .map_err(|source| ProvisionError::Io {
            action: "create PV root",
            path: pv_root.clone(),
            source,
        })?;
    // hostPath must be absolute, whatever the caller passed.
    let pv_root = tokio::fs::canonicalize(&pv_root)
        .await
        .map_err(|source| ProvisionError::Io {
            action: "resolve PV root",
            path: pv_root.clone(),
            source,
        })?;
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "cnredis-kubelet-provisioner".into(),
            instance: None,
        },
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        pv_root,
        recorder,
        failures: Mutex::new(HashMap::new()),
    });
    tracing::info!(provisioner = PROVISIONER_NAME, pv_root = %ctx.pv_root.display(), "provisioner starting");

    let claims = Controller::new(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
    )
    // A PV change (created, resized, bound) is a reason to look at its claim again.
    .watches(
        Api::<PersistentVolume>::all(client.clone()),
        watcher::Config::default(),
        |pv| claim_of(&pv),
    )
    .run(reconcile_claim, retry_claim, ctx.clone())
    .for_each(|result| async move { log_controller_error("claim", result) });
    let volumes = Controller::new(Api::<PersistentVolume>::all(client), watcher::Config::default())
        .run(reconcile_volume, retry_volume, ctx)
        .for_each(|result| async move { log_controller_error("volume", result) });
    futures::future::join(claims, volumes).await;
    anyhow::bail!("provisioner watches ended")
}

/// Reconcile failures are logged by the retry policies; what is left worth a warning are watch errors
/// (RBAC, API server gone), which the controller retries with its own backoff.
fn log_controller_error<T>(
    controller: &'static str,
    result: Result<T, controller::Error<ProvisionError, watcher::Error>>,
) {
    match result {
        Ok(_) | Err(controller::Error::ReconcilerFailed(..)) => {}
        // A trigger for an object deleted in the meantime.
        Err(controller::Error::ObjectNotFound(object)) => {
            tracing::debug!(%object, "{controller} vanished before its reconcile");
        }
        Err(error) => tracing::warn!(%error, "{controller} controller"),
    }
}

struct Context {
    client: Client,
    pv_root: PathBuf,
    recorder: Recorder,
    /// Consecutive failures per object key, for the retry backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    fn backoff_after_failure(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(key.to_owned()).or_insert(0);
        *count = count.saturating_add(1);
        retry_delay(*count)
    }

    fn forget_failures(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// 1 s, 2 s, 4 s, ... capped at five minutes.
fn retry_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF)
}

fn claim_key(claim: &PersistentVolumeClaim) -> String {
    format!(
        "pvc/{}/{}",
        claim.namespace().unwrap_or_default(),
        claim.name_any()
    )
}

fn retry_claim(claim: Arc<PersistentVolumeClaim>, error: &ProvisionError, ctx: Arc<Context>) -> Action {
    let key = claim_key(&claim);
    let delay = ctx.backoff_after_failure(&key);
    tracing::warn!(claim = %key, %error, retry_in = ?delay, "claim reconcile failed");
    Action::requeue(delay)
}

fn retry_volume(pv: Arc<PersistentVolume>, error: &ProvisionError, ctx: Arc<Context>) -> Action {
    let key = format!("pv/{}", pv.name_any());
    let delay = ctx.backoff_after_failure(&key);
    tracing::warn!(pv = %pv.name_any(), %error, retry_in = ?delay, "volume reconcile failed");
    Action::requeue(delay)
}

async fn reconcile_claim(
    claim: Arc<PersistentVolumeClaim>,
    ctx: Arc<Context>,
) -> Result<Action, ProvisionError> {
    let action = reconcile_claim_once(&claim, &ctx).await?;
    ctx.forget_failures(&claim_key(&claim));
    Ok(action)
}

async fn reconcile_claim_once(
    claim: &PersistentVolumeClaim,
    ctx: &Context,
) -> Result<Action, ProvisionError> {
    if claim.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(class_name) = claim_class(claim) else {
        return Ok(Action::await_change());
    };
    let classes = Api::<StorageClass>::all(ctx.client.clone());
    let Some(class) = classes.get_opt(class_name).await? else {
        return Ok(Action::requeue(MISSING_CLASS_RECHECK));
    };
    if class.provisioner != PROVISIONER_NAME {
        return Ok(Action::await_change());
    }
    match claim_phase(claim) {
        ClaimPhase::Unprovisioned if ready_to_provision(claim, &class) => {
            provision(claim, &class, ctx).await?;
        }
        ClaimPhase::Bound(pv_name) if class.allow_volume_expansion == Some(true) => {
            expand(claim, pv_name, ctx).await?;
        }
        _ => {}
    }
    Ok(Action::await_change())
}

async fn provision(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    ctx: &Context,
) -> Result<(), ProvisionError> {
    let key = claim_key(claim);
    let uid = claim.uid().ok_or_else(|| ProvisionError::IncompleteClaim {
        claim: key.clone(),
        field: "metadata.uid",
    })?;
    let name = pv_name(&uid);
    let dir = ctx.pv_root.join(&name);
    let pv = desired_pv(claim, class, &dir)?;
    create_world_writable_dir(&dir).await?;
    match Api::<PersistentVolume>::all(ctx.client.clone())
        .create(&PostParams::default(), &pv)
        .await
    {
        Ok(_) => {
            tracing::info!(claim = %key, pv = %name, dir = %dir.display(), "provisioned volume");
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.is_already_exists() => {
            tracing::debug!(claim = %key, pv = %name, "volume already provisioned");
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// Grows the PV to the claim's request, then reports the new size in the claim's status, as an external
/// resizer with online (no node step) expansion does.
async fn expand(claim: &PersistentVolumeClaim, pv_name: &str, ctx: &Context) -> Result<(), ProvisionError> {
    let key = claim_key(claim);
    let volumes = Api::<PersistentVolume>::all(ctx.client.clone());
    let Some(pv) = volumes.get_opt(pv_name).await? else {
        return Ok(());
    };
    if !provisioned_by_us(&pv) {
        return Ok(());
    }
    let Some(request) = storage_request(claim) else {
        return Ok(());
    };
    let mut size = pv_capacity(&pv).cloned();
    if let Some(grown) = volume_growth(request, size.as_ref())? {
        let patch = serde_json::json!({ "spec": { "capacity": { "storage": grown } } });
        volumes
            .patch(pv_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        tracing::info!(claim = %key, pv = pv_name, size = %grown.0, "expanded volume");
        size = Some(grown);
    }
    let Some(size) = size else {
        return Ok(());
    };
    if !claim_status_lags(claim, &size)? {
        return Ok(());
    }
    let claims =
        Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &claim.namespace().unwrap_or_default());
    let patch = resized_claim_status(claim, &size);
    claims
        .patch_status(&claim.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    tracing::info!(claim = %key, pv = pv_name, size = %size.0, "claim reports expanded size");
    let event = Event {
        type_: EventType::Normal,
        reason: "VolumeResizeSuccessful".into(),
        note: Some(format!("resize volume {pv_name} to {} succeeded", size.0)),
        action: "Resize".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &claim_reference(claim)).await {
        tracing::warn!(claim = %key, %error, "could not record resize event");
    }
    Ok(())
}

async fn reconcile_volume(pv: Arc<PersistentVolume>, ctx: Arc<Context>) -> Result<Action, ProvisionError> {
    if releasable(&pv) {
        delete_volume(&pv, &ctx).await?;
    }
    ctx.forget_failures(&format!("pv/{}", pv.name_any()));
    Ok(Action::await_change())
}

async fn delete_volume(pv: &PersistentVolume, ctx: &Context) -> Result<(), ProvisionError> {
    let name = pv.name_any();
    // Only ever remove our own directory, whatever the PV's hostPath says.
    let dir = ctx.pv_root.join(&name);
    if host_path(pv) != Some(dir.as_path()) {
        tracing::warn!(
            pv = %name, host_path = ?host_path(pv), dir = %dir.display(),
            "hostPath is not the provisioned directory; removing only the directory"
        );
    }
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ProvisionError::Io {
                action: "remove volume directory",
                path: dir,
                source,
            });
        }
    }
    match Api::<PersistentVolume>::all(ctx.client.clone())
        .delete(&name, &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.is_not_found() => {}
        Err(error) => return Err(error.into()),
    }
    tracing::info!(pv = %name, dir = %dir.display(), "deleted released volume");
    Ok(())
}

async fn create_world_writable_dir(dir: &Path) -> Result<(), ProvisionError> {
    use std::os::unix::fs::PermissionsExt;
    let io_error = |action| {
        move |source| ProvisionError::Io {
            action,
            path: dir.to_owned(),
            source,
        }
    };
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(io_error("create volume directory"))?;
    // The umask narrows the mode given at creation, so set it afterwards.
    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
        .await
        .map_err(io_error("chmod volume directory"))
}

// ---------------------------------------------------------------- pure decisions

#[derive(Debug, PartialEq, Eq)]
enum ClaimPhase<'a> {
    /// Pending, no volume chosen yet: a candidate for provisioning.
    Unprovisioned,
    Bound(&'a str),
    Other,
}

fn claim_phase(claim: &PersistentVolumeClaim) -> ClaimPhase<'_> {
    let phase = claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    let volume = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .filter(|v| !v.is_empty());
    match (phase, volume) {
        ("Pending", None) => ClaimPhase::Unprovisioned,
        ("Bound", Some(pv)) => ClaimPhase::Bound(pv),
        _ => ClaimPhase::Other,
    }
}

fn claim_class(claim: &PersistentVolumeClaim) -> Option<&str> {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .filter(|c| !c.is_empty())
}

/// WaitForFirstConsumer classes provision only once the scheduler picked a node for the claim.
fn ready_to_provision(claim: &PersistentVolumeClaim, class: &StorageClass) -> bool {
    class.volume_binding_mode.as_deref() != Some("WaitForFirstConsumer")
        || claim.annotations().contains_key(ANN_SELECTED_NODE)
}

fn pv_name(claim_uid: &str) -> String {
    format!("pvc-{claim_uid}")
}

fn storage_request(claim: &PersistentVolumeClaim) -> Option<&Quantity> {
    claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
}

fn pv_capacity(pv: &PersistentVolume) -> Option<&Quantity> {
    pv.spec.as_ref()?.capacity.as_ref()?.get("storage")
}

fn host_path(pv: &PersistentVolume) -> Option<&Path> {
    pv.spec.as_ref()?.host_path.as_ref().map(|h| Path::new(&h.path))
}

fn provisioned_by_us(pv: &PersistentVolume) -> bool {
    pv.annotations().get(ANN_PROVISIONED_BY).map(String::as_str) == Some(PROVISIONER_NAME)
}

/// The PV for `claim` whose data lives in `dir`.
fn desired_pv(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    dir: &Path,
) -> Result<PersistentVolume, ProvisionError> {
    let key = claim_key(claim);
    let incomplete = |field| ProvisionError::IncompleteClaim {
        claim: key.clone(),
        field,
    };
    let uid = claim.uid().ok_or_else(|| incomplete("metadata.uid"))?;
    let request = storage_request(claim)
        .ok_or_else(|| incomplete("spec.resources.requests.storage"))?
        .clone();
    let spec = claim.spec.as_ref();
    Ok(PersistentVolume {
        metadata: ObjectMeta {
            name: Some(pv_name(&uid)),
            annotations: Some(BTreeMap::from([(
                ANN_PROVISIONED_BY.to_owned(),
                PROVISIONER_NAME.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([("storage".to_owned(), request)])),
            access_modes: spec.and_then(|s| s.access_modes.clone()),
            storage_class_name: Some(class.name_any()),
            persistent_volume_reclaim_policy: Some(
                class
                    .reclaim_policy
                    .clone()
                    .unwrap_or_else(|| "Delete".to_owned()),
            ),
            volume_mode: Some("Filesystem".to_owned()),
            mount_options: class.mount_options.clone(),
            host_path: Some(HostPathVolumeSource {
                path: dir.to_string_lossy().into_owned(),
                type_: Some("DirectoryOrCreate".to_owned()),
            }),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("PersistentVolumeClaim".to_owned()),
                namespace: claim.namespace(),
                name: Some(claim.name_any()),
                uid: Some(uid),
                ..ObjectReference::default()
            }),
            ..PersistentVolumeSpec::default()
        }),
        status: None,
    })
}

/// The size the volume must grow to, if the claim asks for more than it has.
fn volume_growth(
    request: &Quantity,
    capacity: Option<&Quantity>,
) -> Result<Option<Quantity>, ProvisionError> {
    let larger = match capacity {
        None => true,
        Some(capacity) => quantity_bytes(request)? > quantity_bytes(capacity)?,
    };
    Ok(larger.then(|| request.clone()))
}

/// Whether the claim's reported capacity is below `size` (the volume's new size).
fn claim_status_lags(claim: &PersistentVolumeClaim, size: &Quantity) -> Result<bool, ProvisionError> {
    let reported = claim
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"));
    Ok(match reported {
        None => false, // not bound yet from the PV controller's point of view
        Some(reported) => quantity_bytes(reported)? < quantity_bytes(size)?,
    })
}

/// Merge patch for the claim's status once its volume has `size`: what an external resizer with
/// online expansion writes when it is done.
fn resized_claim_status(claim: &PersistentVolumeClaim, size: &Quantity) -> serde_json::Value {
    let conditions: Vec<_> = claim
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| !RESIZE_CONDITIONS.contains(&c.type_.as_str()))
        .collect();
    serde_json::json!({
        "status": {
            "capacity": { "storage": size },
            "allocatedResources": { "storage": size },
            "allocatedResourceStatuses": null,
            "conditions": conditions,
        }
    })
}

/// A volume of ours whose claim is gone and whose class said to delete it.
fn releasable(pv: &PersistentVolume) -> bool {
    let released = pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
    let delete = pv
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        == Some("Delete");
    provisioned_by_us(pv) && released && delete && pv.metadata.deletion_timestamp.is_none()
}

fn claim_of(pv: &PersistentVolume) -> Option<ObjectRef<PersistentVolumeClaim>> {
    let claim_ref = pv.spec.as_ref()?.claim_ref.as_ref()?;
    Some(ObjectRef::new(claim_ref.name.as_deref()?).within(claim_ref.namespace.as_deref()?))
}

fn claim_reference(claim: &PersistentVolumeClaim) -> ObjectReference {
    claim.object_ref(&())
}

/// A quantity in bytes, rounded up to a whole byte like `resource.Quantity.Value()`.
pub fn quantity_bytes(quantity: &Quantity) -> Result<u128, ProvisionError> {
    cnredis_api::quantity::bytes(&quantity.0).map_err(|error| ProvisionError::InvalidQuantity {
        value: error.value,
        reason: error.reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        PersistentVolumeClaimCondition, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus,
        PersistentVolumeStatus, VolumeResourceRequirements,
    };

    fn q(s: &str) -> Quantity {
        Quantity(s.to_owned())
    }

    struct ClaimBuilder(PersistentVolumeClaim);

    fn claim(name: &str) -> ClaimBuilder {
        ClaimBuilder(PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some("1234-abcd".into()),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                storage_class_name: Some("cnredis-local".into()),
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                ..PersistentVolumeClaimSpec::default()
            }),
            status: None,
        })
    }

    impl ClaimBuilder {
        fn request(mut self, size: &str) -> Self {
            if let Some(spec) = self.0.spec.as_mut() {
                spec.resources = Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".into(), q(size))])),
                    ..VolumeResourceRequirements::default()
                });
            }
            self
        }
        fn bound(mut self, pv: &str, capacity: &str) -> Self {
            if let Some(spec) = self.0.spec.as_mut() {
                spec.volume_name = Some(pv.into());
            }
            self.0.status = Some(PersistentVolumeClaimStatus {
                phase: Some("Bound".into()),
                capacity: Some(BTreeMap::from([("storage".into(), q(capacity))])),
                ..PersistentVolumeClaimStatus::default()
            });
            self
        }
        fn condition(mut self, type_: &str) -> Self {
            let status = self.0.status.get_or_insert_with(Default::default);
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(PersistentVolumeClaimCondition {
                    type_: type_.into(),
                    status: "True".into(),
                    ..PersistentVolumeClaimCondition::default()
                });
            self
        }
        fn annotation(mut self, key: &str) -> Self {
            self.0
                .metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(key.into(), "node".into());
            self
        }
    }

    fn class() -> StorageClass {
        StorageClass {
            metadata: ObjectMeta {
                name: Some("cnredis-local".into()),
                ..ObjectMeta::default()
            },
            provisioner: PROVISIONER_NAME.into(),
            ..StorageClass::default()
        }
    }

    fn our_pv(phase: &str, policy: &str) -> PersistentVolume {
        let mut pv = match desired_pv(&claim("data").request("1Gi").0, &class(), Path::new("/pv/x")) {
            Ok(pv) => pv,
            Err(e) => panic!("{e}"),
        };
        if let Some(spec) = pv.spec.as_mut() {
            spec.persistent_volume_reclaim_policy = Some(policy.into());
        }
        pv.status = Some(PersistentVolumeStatus {
            phase: Some(phase.into()),
            ..PersistentVolumeStatus::default()
        });
        pv
    }

    #[test]
    fn volume_grows_only_when_the_request_exceeds_its_capacity() -> Result<(), ProvisionError> {
        assert_eq!(volume_growth(&q("2Gi"), Some(&q("1Gi")))?, Some(q("2Gi")));
        assert_eq!(volume_growth(&q("1024Mi"), Some(&q("1Gi")))?, None);
        assert_eq!(volume_growth(&q("1G"), Some(&q("1Gi")))?, None);
        assert_eq!(volume_growth(&q("1Gi"), None)?, Some(q("1Gi")));
        Ok(())
    }

    #[test]
    fn claim_status_lags_until_it_reports_the_new_size() -> Result<(), ProvisionError> {
        let c = claim("data").request("2Gi").bound("pvc-1", "1Gi").0;
        assert!(claim_status_lags(&c, &q("2Gi"))?);
        let c = claim("data").request("2Gi").bound("pvc-1", "2048Mi").0;
        assert!(!claim_status_lags(&c, &q("2Gi"))?);
        let unbound = claim("data").request("2Gi").0;
        assert!(!claim_status_lags(&unbound, &q("2Gi"))?);
        Ok(())
    }

    #[test]
    fn resized_status_clears_resize_conditions_and_keeps_others() {
        let c = claim("data")
            .bound("pvc-1", "1Gi")
            .condition("Resizing")
            .condition("FileSystemResizePending")
            .condition("ModifyingVolume")
            .0;
        let patch = resized_claim_status(&c, &q("2Gi"));
        assert_eq!(patch["status"]["capacity"]["storage"], "2Gi");
        assert_eq!(patch["status"]["allocatedResources"]["storage"], "2Gi");
        let types: Vec<_> = patch["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["type"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(types, ["ModifyingVolume"]);
    }

    #[test]
    fn pending_claim_without_volume_is_provisioned_and_bound_claim_is_not() {
        assert_eq!(claim_phase(&claim("a").0), ClaimPhase::Unprovisioned);
        let bound = claim("a").bound("pvc-1", "1Gi").0;
        assert_eq!(claim_phase(&bound), ClaimPhase::Bound("pvc-1"));
        let mut lost = claim("a").bound("pvc-1", "1Gi").0;
        if let Some(s) = lost.status.as_mut() {
            s.phase = Some("Lost".into());
        }
        assert_eq!(claim_phase(&lost), ClaimPhase::Other);
    }

    #[test]
    fn wait_for_first_consumer_claims_wait_for_a_selected_node() {
        let mut wffc = class();
        wffc.volume_binding_mode = Some("WaitForFirstConsumer".into());
        assert!(!ready_to_provision(&claim("a").0, &wffc));
        assert!(ready_to_provision(
            &claim("a").annotation(ANN_SELECTED_NODE).0,
            &wffc
        ));
        assert!(ready_to_provision(&claim("a").0, &class()));
    }

    #[test]
    fn desired_pv_mirrors_the_claim_and_the_class() -> Result<(), ProvisionError> {
        let mut retain = class();
        retain.reclaim_policy = Some("Retain".into());
        let pv = desired_pv(
            &claim("data").request("1Gi").0,
            &retain,
            Path::new("/pv/pvc-1234-abcd"),
        )?;
        assert_eq!(pv.name_any(), "pvc-1234-abcd");
        assert!(provisioned_by_us(&pv));
        let spec = pv.spec.unwrap_or_default();
        assert_eq!(spec.capacity.unwrap_or_default()["storage"], q("1Gi"));
        assert_eq!(spec.access_modes, Some(vec!["ReadWriteOnce".to_owned()]));
        assert_eq!(spec.storage_class_name.as_deref(), Some("cnredis-local"));
        assert_eq!(spec.persistent_volume_reclaim_policy.as_deref(), Some("Retain"));
        assert_eq!(spec.volume_mode.as_deref(), Some("Filesystem"));
        let host = spec.host_path.unwrap_or_default();
        assert_eq!(host.path, "/pv/pvc-1234-abcd");
        assert_eq!(host.type_.as_deref(), Some("DirectoryOrCreate"));
        let claim_ref = spec.claim_ref.unwrap_or_default();
        assert_eq!(claim_ref.namespace.as_deref(), Some("ns"));
        assert_eq!(claim_ref.name.as_deref(), Some("data"));
        assert_eq!(claim_ref.uid.as_deref(), Some("1234-abcd"));
        assert_eq!(claim_ref.kind.as_deref(), Some("PersistentVolumeClaim"));
        Ok(())
    }

    #[test]
    fn reclaim_policy_defaults_to_delete() -> Result<(), ProvisionError> {
        let pv = desired_pv(&claim("data").request("1Gi").0, &class(), Path::new("/pv/x"))?;
        let policy = pv.spec.and_then(|s| s.persistent_volume_reclaim_policy);
        assert_eq!(policy.as_deref(), Some("Delete"));
        Ok(())
    }

    #[test]
    fn claim_without_storage_request_cannot_be_provisioned() {
        let result = desired_pv(&claim("data").0, &class(), Path::new("/pv/x"));
        assert!(matches!(result, Err(ProvisionError::IncompleteClaim { .. })));
    }

    #[test]
    fn only_our_released_volumes_with_delete_policy_are_deleted() {
        assert!(releasable(&our_pv("Released", "Delete")));
        assert!(!releasable(&our_pv("Bound", "Delete")));
        assert!(!releasable(&our_pv("Released", "Retain")));
        let mut foreign = our_pv("Released", "Delete");
        foreign.metadata.annotations = None;
        assert!(!releasable(&foreign));
    }

    #[test]
    fn volume_changes_map_to_their_claim() {
        let pv = our_pv("Bound", "Delete");
        assert_eq!(claim_of(&pv), Some(ObjectRef::new("data").within("ns")));
    }

    #[test]
    fn retries_back_off_exponentially_up_to_five_minutes() {
        assert_eq!(retry_delay(1), Duration::from_secs(1));
        assert_eq!(retry_delay(2), Duration::from_secs(2));
        assert_eq!(retry_delay(5), Duration::from_secs(16));
        assert_eq!(retry_delay(100), MAX_BACKOFF);
    }
}
