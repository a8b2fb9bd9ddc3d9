//! One reconcile of a RedisCluster: credentials and static objects, observe, plan, apply, status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cnredis_api::RedisCluster;
use cnredis_api::names::{
    ANNOTATION_FENCED_INSTANCES, ANNOTATION_RELOADED_AT, FencedInstances, LABEL_ROLE, instance_name,
};
use cnredis_api::quantity;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;

pub use super::apply::ReconcileError;
use super::apply::{apply, apply_params};
use super::observe::{World, observe};
use super::plan::{MOVED, PHASE_BOOTSTRAP_FAILED, Plan, Wanted, plan};
use super::resources::{self, PodInputs};
use super::status;
use crate::context::Context;
use crate::credentials;
use crate::events::{publish, publish_about};

pub async fn reconcile(cluster: Arc<RedisCluster>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let result = reconcile_inner(&cluster, &ctx).await;
    ctx.metrics
        .reconciled(started.elapsed(), result.as_ref().err().map(ReconcileError::kind));
    result
}

async fn reconcile_inner(cluster: &RedisCluster, ctx: &Arc<Context>) -> Result<Action, ReconcileError> {
    let namespace = cluster.namespace().ok_or(ReconcileError::NoNamespace)?;
    let name = cluster.name_any();
    if cluster.metadata.deletion_timestamp.is_some() {
        // Owner references delete everything it owns.
        return Ok(Action::await_change());
    }
    let password = ensure_credentials(cluster, ctx, &namespace).await?;
    let client = &ctx.client;

    // Objects that do not depend on the instances.
    let (account, role, binding) = resources::desired_instance_rbac(cluster);
    apply(client, &namespace, &account).await?;
    apply(client, &namespace, &role).await?;
    apply(client, &namespace, &binding).await?;
    for service in resources::desired_services(cluster) {
        apply(client, &namespace, &service).await?;
    }
    let pdbs = resources::desired_pdbs(cluster);
    for pdb in &pdbs {
        apply(client, &namespace, pdb).await?;
    }
    delete_stale_pdbs(cluster, ctx, &namespace, &pdbs).await?;
    apply(
        client,
        &namespace,
        &resources::desired_app_secret(cluster, password.as_deref()),
    )
    .await?;

    // The health loop detects a failing primary and drives a failover under way, by its own steps,
    // never by a plan made around it.
    super::health::ensure_running(ctx, cluster);
    let failing_over = cluster.status.as_ref().is_some_and(|s| s.failover.is_some());
    // Observed before taking the lock: polling an instance that does not answer takes up to the poll
    // timeout, and a failover step must not wait that long for the lock. What the plan rests on (the
    // primaries and the failover record) is read again under the lock.
    let mut world = observe(client, &ctx.instance_api, cluster).await?;
    // Whoever changes the primary holds this lock: a failover step never interleaves with a plan.
    let acting = ctx.acting(cluster);
    let _acting = acting.lock().await;
    if primaries_moved(ctx, cluster).await? {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    mark_outdated(cluster, ctx, &mut world);
    let status = cluster.status.clone().unwrap_or_default();
    let annotation = cluster.annotations().get(ANNOTATION_FENCED_INSTANCES).cloned();
    let fenced = match FencedInstances::parse(annotation.as_deref()) {
        Ok(FencedInstances::All) => vec!["*".to_string()],
        Ok(FencedInstances::Some(names)) => names.into_iter().collect(),
        Ok(FencedInstances::None) => Vec::new(),
        Err(message) => {
            publish(
                ctx,
                cluster,
                EventType::Warning,
                "InvalidAnnotation",
                "Validate",
                &message,
            )
            .await;
            vec!["*".to_string()]
        }
    };
    let wanted = Wanted {
        cluster: name.clone(),
        instances: cluster.spec.instances.max(1) as u32,
        current_primary: status.current_primary.clone(),
        target_primary: status.target_primary.clone(),
        latest_serial: status.latest_generated_serial.max(0) as u32,
        pvc_retention: cluster.spec.pvc_retention_policy,
        fenced,
        update_strategy: cluster.spec.primary_update_strategy,
        update_method: cluster.spec.primary_update_method,
        primary_failing: cluster.spec.instances > 1
            && status
                .primary_failing
                .as_ref()
                .is_some_and(|f| Some(&f.pod) == status.current_primary.as_ref()),
        max_sync_lag_seconds: i64::from(cluster.spec.failover.max_sync_replica_lag_seconds),
        bootstrap_refused: None,
        spread: None,
    };
    // A restored cluster: the backup is resolved and checked, and recorded, before its first pod exists.
    let mut wanted = wanted;
    let restoring = cluster
        .spec
        .bootstrap
        .as_ref()
        .is_some_and(|b| b.recovery.is_some());
    if restoring
        && status.recovery.is_none()
        && status.current_primary.is_none()
        && status.target_primary.is_none()
    {
        match crate::backup::recovery::resolve(ctx, cluster).await {
            Ok(recovery) => {
                let note = format!(
                    "restoring backup {} of {} ({} keys, {}) into the first instance",
                    recovery.backup_id, recovery.cluster, recovery.keys, recovery.checksum
                );
                status::patch_recovery(client, cluster, &recovery).await?;
                publish(
                    ctx,
                    cluster,
                    EventType::Normal,
                    "RestorePlanned",
                    "Bootstrap",
                    &note,
                )
                .await;
                return Ok(Action::requeue(Duration::from_millis(200)));
            }
            Err(why) => wanted.bootstrap_refused = Some(format!("cannot restore: {why}")),
        }
    }
    let mut plan = plan(&wanted, &world.instances);
    // Instances sharing a failure domain since an outage: when nothing else is to be done, a replica is
    // restarted for the scheduler to place it in a free one.
    let spread = match plan.healthy && !failing_over {
        true => super::spread::planned_move(ctx, cluster, &world).await?,
        false => None,
    };
    if spread.is_some() {
        wanted.spread = spread.clone();
        plan = super::plan::plan(&wanted, &world.instances);
    }
    if plan.phase == PHASE_BOOTSTRAP_FAILED {
        if status.phase.as_deref() != Some(PHASE_BOOTSTRAP_FAILED) {
            publish(
                ctx,
                cluster,
                EventType::Warning,
                "BootstrapFailed",
                "Bootstrap",
                &plan.phase_reason,
            )
            .await;
        }
        status::write(client, cluster, &plan, &world).await?;
        return Ok(Action::requeue(Duration::from_secs(10)));
    }
    if failing_over {
        // Only the replicas' pods come back (e.g. after every pod was deleted at once), since the
        // failover may need one of them: nothing is labelled, removed or switched over meanwhile.
        create_instances(cluster, ctx, &namespace, &plan).await?;
        return Ok(Action::requeue(super::health::PERIOD));
    }

    // The status names the target primary and the serials before any pod boots with them.
    if plan.target_primary != wanted.target_primary
        || plan.latest_serial != wanted.latest_serial
        || plan.current_primary != wanted.current_primary
    {
        status::patch_primary(client, cluster, &plan).await?;
        if plan.current_primary != wanted.current_primary
            && let Some(primary) = &plan.current_primary
        {
            let note = format!("{primary} is the primary");
            publish(
                ctx,
                cluster,
                EventType::Normal,
                "PrimaryElected",
                "Bootstrap",
                &note,
            )
            .await;
        }
    }
    execute(cluster, ctx, &namespace, &plan, &world).await?;
    if let Some(chosen) = &spread
        && plan
            .remove
            .iter()
            .any(|r| r.reason == MOVED && r.name == chosen.instance)
    {
        ctx.recent_moves
            .record(&(namespace.clone(), name.clone()), &chosen.instance, &chosen.from);
    }
    if plan.switchover.is_none() {
        lift_stale_fence(ctx, cluster, &plan, &world, &wanted.fenced).await;
    }
    if let Some(switchover) = &plan.switchover {
        let note = format!("switching over from {} to {}", switchover.from, switchover.to);
        publish(
            ctx,
            cluster,
            EventType::Normal,
            "SwitchoverStarted",
            "Switchover",
            &note,
        )
        .await;
        match super::switchover::run(ctx, cluster, &world, switchover).await {
            Ok(completed) => {
                let refused = match completed.unavailable {
                    Some(unavailable) => format!("writes were refused for {} ms", unavailable.as_millis()),
                    None => "resumed after its promotion".to_string(),
                };
                let deferred = completed
                    .demotion_deferred
                    .as_deref()
                    .map(|why| format!("; {why}"))
                    .unwrap_or_default();
                let note = format!("{} is the primary; {refused}{deferred}", switchover.to);
                publish(
                    ctx,
                    cluster,
                    EventType::Normal,
                    "SwitchoverCompleted",
                    "Switchover",
                    &note,
                )
                .await;
                if let Some(unavailable) = completed.unavailable {
                    ctx.metrics.switchover(unavailable);
                }
                tracing::info!(
                    cluster = %name,
                    from = %switchover.from,
                    to = %switchover.to,
                    unavailable_ms = completed.unavailable.map(|u| u.as_millis() as u64),
                    demotion_deferred = completed.demotion_deferred,
                    "switchover completed"
                );
                return Ok(Action::requeue(Duration::from_millis(500)));
            }
            Err(error) => {
                let note = error.to_string();
                // An interrupted switchover is retried once its target is in sync again; a failed one
                // is not (its targetPrimary names the old primary again).
                let reason = if error.is_retried() {
                    "SwitchoverInterrupted"
                } else {
                    "SwitchoverFailed"
                };
                publish(ctx, cluster, EventType::Warning, reason, "Switchover", &note).await;
            }
        }
    }
    if plan.healthy
        && let Some((phase, reason)) = storage_phase(cluster, &world)
    {
        plan.phase = phase;
        plan.phase_reason = reason;
    }
    status::write(client, cluster, &plan, &world).await?;
    ctx.metrics.observe_instances(&namespace, &name, &world);

    Ok(if plan.healthy {
        Action::requeue(Duration::from_secs(10))
    } else {
        Action::requeue(Duration::from_secs(2))
    })
}

/// Whether the primaries or the failover record of `cluster` changed since it was read (by a failover
/// step, or because the read was a cache's older copy): a plan made from it would be stale.
async fn primaries_moved(ctx: &Context, cluster: &RedisCluster) -> Result<bool, kube::Error> {
    let api: Api<RedisCluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let Some(fresh) = api.get_opt(&cluster.name_any()).await? else {
        return Ok(true);
    };
    let key = |c: &RedisCluster| {
        let s = c.status.clone().unwrap_or_default();
        (
            s.current_primary,
            s.target_primary,
            s.failover.map(|f| (f.from, f.to)),
            s.primary_failing.map(|f| f.pod),
        )
    };
    Ok(key(&fresh) != key(cluster))
}

/// A fence the operator asked for through the API and no longer needs: left on the primary by a
/// switchover an operator restart cut short, or on an old primary that a failover fenced and that follows
/// the new one now. With no switchover about to run and no annotation naming it, it is lifted.
async fn lift_stale_fence(
    ctx: &Context,
    cluster: &RedisCluster,
    plan: &Plan,
    world: &World,
    annotated: &[String],
) {
    let Some(primary) = plan.current_primary.as_deref() else {
        return;
    };
    // A switchover about to run fences the primary itself; one waiting for its target does not.
    if plan.target_primary.as_deref() != Some(primary) && !plan.switchover_waiting {
        return;
    }
    // Never beside another primary: a target promoted by a switchover cut short is finished first.
    let other_primary = world.instances.iter().any(|i| {
        i.name != primary
            && i.report
                .as_ref()
                .is_some_and(|r| r.role == cnredis_instance_client::wire::Role::Primary)
    });
    for instance in &world.instances {
        if annotated.iter().any(|f| f == "*" || *f == instance.name)
            || (other_primary && instance.name == primary)
        {
            continue;
        }
        let stale = instance.report.as_ref().is_some_and(|r| {
            r.fenced
                && !r.fence_reasons.is_empty()
                && r.fence_reasons.iter().all(|reason| reason == "requested")
                && (instance.name == primary || r.role == cnredis_instance_client::wire::Role::Replica)
        });
        let target = world
            .pods
            .get(&instance.name)
            .and_then(|pod| super::instance_api::api_target(cluster, pod));
        let (true, Some(target)) = (stale, target) else {
            continue;
        };
        match ctx.instance_api.unfence(&target).await {
            Ok(_) => {
                let note = format!(
                    "lifted the fence left on {} by a switchover or failover",
                    instance.name
                );
                let pod = world.pods.get(&instance.name);
                publish_about(
                    ctx,
                    cluster,
                    pod,
                    EventType::Normal,
                    "FenceLifted",
                    "Unfence",
                    &note,
                )
                .await;
            }
            Err(error) => tracing::warn!(%error, instance = %instance.name, "cannot lift a stale fence"),
        }
    }
}

/// Marks the instances a rolling update must restart: their pod was built from another pod spec, or
/// their server waits for a restart to take changed parameters.
fn mark_outdated(cluster: &RedisCluster, ctx: &Context, world: &mut World) {
    for instance in &mut world.instances {
        let Some(pod) = &instance.pod else { continue };
        let desired = resources::desired_pod(&PodInputs {
            cluster,
            serial: instance.serial,
            operator_image: &ctx.operator_image,
            role: None,
        });
        let wanted = desired
            .annotations()
            .get(resources::ANNOTATION_POD_SPEC_HASH)
            .cloned();
        let pending = instance
            .report
            .as_ref()
            .is_some_and(|r| !r.pending_restart.is_empty());
        instance.outdated = pod.spec_hash != wanted || pending;
    }
}

/// The auth Secret (generated unless the user names one) and the password in it.
async fn ensure_credentials(
    cluster: &RedisCluster,
    ctx: &Context,
    namespace: &str,
) -> Result<Option<String>, ReconcileError> {
    if !cluster.spec.auth.enabled {
        return Ok(None);
    }
    let secret_name = resources::auth_secret_name(cluster);
    if let Some(password) = credentials::read_password(&ctx.client, namespace, &secret_name).await? {
        return Ok(Some(password));
    }
    if cluster.spec.auth.secret_name.is_some() {
        return Err(ReconcileError::InvalidSpec(format!(
            "spec.auth.secretName names Secret {secret_name}, which does not exist (it needs a key \"password\")"
        )));
    }
    let password = credentials::generate_password()?;
    apply(
        &ctx.client,
        namespace,
        &resources::desired_auth_secret(cluster, &password),
    )
    .await?;
    let note = format!("generated the password in Secret {secret_name}");
    publish(
        ctx,
        cluster,
        EventType::Normal,
        "PasswordGenerated",
        "Generate",
        &note,
    )
    .await;
    Ok(Some(password))
}

async fn execute(
    cluster: &RedisCluster,
    ctx: &Context,
    namespace: &str,
    plan: &Plan,
    world: &World,
) -> Result<(), ReconcileError> {
    let client = &ctx.client;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);

    // PVCs of every instance: grown when spec.storage.size grew and their StorageClass allows it. A size
    // that cannot be read is reported in the status (`storage_phase`) and grows nothing.
    let wanted_bytes = quantity::bytes(&cluster.spec.storage.size).ok();
    for instance in world.instances.iter().filter(|i| i.pvc) {
        let (Some(pvc), Some(wanted_bytes)) = (world.pvcs.get(&instance.name), wanted_bytes) else {
            continue;
        };
        let requested = pvc
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref()?.requests.as_ref()?.get("storage").cloned())
            .and_then(|q| quantity::bytes(&q.0).ok());
        if requested.is_some_and(|requested| wanted_bytes < requested) {
            // Admission refuses shrinking; an older PVC keeps its size.
            continue;
        }
        if requested.is_none_or(|requested| wanted_bytes > requested) {
            let class = pvc.spec.as_ref().and_then(|s| s.storage_class_name.clone());
            if !expansion_allowed(ctx, class.as_deref()).await? {
                let note = format!(
                    "spec.storage.size {} cannot be applied to {}: StorageClass {} does not allow volume expansion",
                    cluster.spec.storage.size,
                    instance.name,
                    class.as_deref().unwrap_or("(default)")
                );
                publish(
                    ctx,
                    cluster,
                    EventType::Warning,
                    "VolumeExpansionNotAllowed",
                    "Resize",
                    &note,
                )
                .await;
                continue;
            }
            let note = format!(
                "growing volume {} to {}",
                instance.name, cluster.spec.storage.size
            );
            publish(ctx, cluster, EventType::Normal, "VolumeResizing", "Resize", &note).await;
        }
        apply(
            client,
            namespace,
            &resources::desired_pvc(cluster, instance.serial),
        )
        .await?;
    }
    // Certificates before the pods that mount them.
    super::certificates::ensure(cluster, ctx, namespace, world, &plan.create).await?;
    create_instances(cluster, ctx, namespace, plan).await?;
    for removal in &plan.remove {
        let pod = world.pods.get(&removal.name);
        if removal.delete_pod {
            delete_ignoring_absent(&pods, &removal.name).await?;
        }
        if removal.delete_pvc {
            delete_ignoring_absent(&pvcs, &removal.name).await?;
        }
        let note = match removal.reason {
            MOVED => format!(
                "restarting {} on its volume elsewhere: {}",
                removal.name, removal.why
            ),
            _ => format!("removed instance {}: {}", removal.name, removal.why),
        };
        publish_about(
            ctx,
            cluster,
            pod,
            EventType::Normal,
            removal.reason,
            "Delete",
            &note,
        )
        .await;
    }
    // Role labels decide the -leader and -replica endpoints.
    for (pod_name, role) in &plan.roles {
        let Some(pod) = world.pods.get(pod_name) else {
            continue;
        };
        if pod.labels().get(LABEL_ROLE).map(String::as_str) == *role {
            continue;
        }
        let patch = json!({"metadata": {"labels": {LABEL_ROLE: role}}});
        match pods
            .patch(pod_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => tracing::info!(pod = %pod_name, ?role, "role label"),
            // Deleted since it was observed: the next reconcile sees it gone.
            Err(kube::Error::Api(response)) if response.code == 404 => {}
            Err(error) => return Err(error.into()),
        }
    }
    annotate_reload(cluster, ctx, world, &pods).await
}

/// Copies the cluster's `cnredis.io/reloadedAt` to its pods: a pod that changes has its secret volumes
/// rewritten by the kubelet at once (the password beside the reload's time, in one atomic update), and
/// its instance manager applies them.
async fn annotate_reload(
    cluster: &RedisCluster,
    ctx: &Context,
    world: &World,
    pods: &Api<Pod>,
) -> Result<(), ReconcileError> {
    let Some(at) = cluster.annotations().get(ANNOTATION_RELOADED_AT) else {
        return Ok(());
    };
    let mut annotated = Vec::new();
    for (pod_name, pod) in &world.pods {
        if pod.metadata.deletion_timestamp.is_some()
            || pod.annotations().get(ANNOTATION_RELOADED_AT) == Some(at)
        {
            continue;
        }
        let patch = json!({"metadata": {"annotations": {ANNOTATION_RELOADED_AT: at}}});
        match pods
            .patch(pod_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => annotated.push(pod_name.clone()),
            Err(kube::Error::Api(response)) if response.code == 404 => {}
            Err(error) => return Err(error.into()),
        }
    }
    if !annotated.is_empty() {
        let note = format!(
            "reload requested at {at}: annotated {} so that their secret volumes are rewritten",
            annotated.join(", ")
        );
        publish(ctx, cluster, EventType::Normal, "Reload", "Reload", &note).await;
    }
    Ok(())
}

/// Creates the pods (and PVCs) the plan lists.
async fn create_instances(
    cluster: &RedisCluster,
    ctx: &Context,
    namespace: &str,
    plan: &Plan,
) -> Result<(), ReconcileError> {
    let client = &ctx.client;
    let name = cluster.name_any();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    for &serial in &plan.create {
        let pod_name = instance_name(&name, serial);
        apply(client, namespace, &resources::desired_pvc(cluster, serial)).await?;
        let role = plan.roles.get(&pod_name).copied().flatten();
        let pod = resources::desired_pod(&PodInputs {
            cluster,
            serial,
            operator_image: &ctx.operator_image,
            role,
        });
        let created = pods
            .patch(&pod_name, &apply_params(), &Patch::Apply(&pod))
            .await?;
        let note = format!("created instance {pod_name}");
        publish_about(
            ctx,
            cluster,
            Some(&created),
            EventType::Normal,
            "InstanceCreated",
            "Create",
            &note,
        )
        .await;
    }
    Ok(())
}

async fn expansion_allowed(ctx: &Context, class: Option<&str>) -> Result<bool, kube::Error> {
    let classes: Api<k8s_openapi::api::storage::v1::StorageClass> = Api::all(ctx.client.clone());
    let class = match class {
        Some(name) => classes.get_opt(name).await?,
        None => classes
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .find(|c| {
                c.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("storageclass.kubernetes.io/is-default-class"))
                    .is_some_and(|v| v == "true")
            }),
    };
    Ok(class.and_then(|c| c.allow_volume_expansion).unwrap_or(false))
}

/// The phase and its reason while volumes are being grown to `spec.storage.size` ("k of n volumes have
/// 2Gi"), or when that size cannot be read; `None` when every volume has it.
fn storage_phase(cluster: &RedisCluster, world: &World) -> Option<(String, String)> {
    let capacities = world
        .pvcs
        .values()
        .filter_map(|pvc| pvc.status.as_ref()?.capacity.as_ref()?.get("storage"))
        .map(|capacity| capacity.0.as_str());
    storage_phase_of(&cluster.spec.storage.size, capacities)
}

fn storage_phase_of<'a>(size: &str, capacities: impl Iterator<Item = &'a str>) -> Option<(String, String)> {
    let wanted = match quantity::bytes(size) {
        Ok(wanted) => wanted,
        Err(error) => {
            return Some((
                "Cannot resize volumes".to_string(),
                format!("spec.storage.size: {error}; volumes keep their size"),
            ));
        }
    };
    let capacities: Vec<u128> = capacities.filter_map(|c| quantity::bytes(c).ok()).collect();
    let done = capacities.iter().filter(|&&c| c >= wanted).count();
    (done < capacities.len()).then(|| {
        (
            "Resizing volumes".to_string(),
            format!("{done} of {} volumes have {size}", capacities.len()),
        )
    })
}

async fn delete_stale_pdbs(
    cluster: &RedisCluster,
    ctx: &Context,
    namespace: &str,
    wanted: &[k8s_openapi::api::policy::v1::PodDisruptionBudget],
) -> Result<(), ReconcileError> {
    let api: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
        Api::namespaced(ctx.client.clone(), namespace);
    let name = cluster.name_any();
    for candidate in [format!("{name}-primary"), format!("{name}-replicas")] {
        if !wanted
            .iter()
            .any(|pdb| pdb.metadata.name.as_deref() == Some(candidate.as_str()))
        {
            delete_ignoring_absent(&api, &candidate).await?;
        }
    }
    Ok(())
}

async fn delete_ignoring_absent<K>(api: &Api<K>, name: &str) -> Result<(), kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(response)) if response.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::storage_phase_of;

    #[test]
    fn volumes_short_of_the_size_are_counted_in_any_spelling_of_it() {
        let phase = storage_phase_of("2Gi", ["2Gi", "1Gi", "2147483648"].into_iter());
        assert_eq!(
            phase,
            Some((
                "Resizing volumes".to_string(),
                "2 of 3 volumes have 2Gi".to_string()
            ))
        );
        // Exponent and sign spellings the API admits are sizes like any other.
        assert_eq!(storage_phase_of("+2e9", ["2G", "1953125Ki"].into_iter()), None);
        assert!(storage_phase_of("1e10", ["2G"].into_iter()).is_some());
    }

    #[test]
    fn a_size_that_cannot_be_read_is_reported_not_skipped() {
        let (phase, reason) = storage_phase_of("1e40", ["1Gi"].into_iter()).expect("reported");
        assert_eq!(phase, "Cannot resize volumes");
        assert!(reason.contains("too large"), "{reason}");
    }
}
