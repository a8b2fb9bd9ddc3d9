//! Leader election among operator replicas: a `coordination.k8s.io` Lease in the operator's namespace.
//! Only the holder reconciles; a leader that cannot renew before the lease runs out exits, so that two
//! replicas never reconcile at once.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};

pub const LEASE_NAME: &str = "cnredis-operator-leader";
const DURATION: Duration = Duration::from_secs(15);
const RETRY: Duration = Duration::from_secs(2);

/// Tries once to take or renew the lease for `identity`; true when held.
async fn try_hold(api: &Api<Lease>, identity: &str) -> Result<bool, kube::Error> {
    let now = jiff::Timestamp::now();
    let spec = |acquired: jiff::Timestamp, transitions: i32| LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(DURATION.as_secs() as i32),
        acquire_time: Some(MicroTime(acquired)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    let Some(mut lease) = api.get_opt(LEASE_NAME).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(spec(now, 0)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(response)) if response.code == 409 => Ok(false),
            Err(error) => Err(error),
        };
    };
    let current = lease.spec.clone().unwrap_or_default();
    let holder = current.holder_identity.clone().unwrap_or_default();
    let transitions = current.lease_transitions.unwrap_or(0);
    let next = if holder == identity {
        spec(current.acquire_time.map(|t| t.0).unwrap_or(now), transitions)
    } else {
        let expired = current.renew_time.is_none_or(|renewed| {
            let duration = current
                .lease_duration_seconds
                .unwrap_or(DURATION.as_secs() as i32);
            now.duration_since(renewed.0).as_secs() > i64::from(duration)
        });
        if !holder.is_empty() && !expired {
            return Ok(false);
        }
        spec(now, transitions + 1)
    };
    lease.spec = Some(next);
    match api.replace(LEASE_NAME, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(response)) if response.code == 409 => Ok(false),
        Err(error) => Err(error),
    }
}

/// Waits until this replica leads, then keeps renewing in the background; exits the process when the
/// lease cannot be renewed in time.
pub async fn lead(client: Client, namespace: &str, identity: String) {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let mut waiting_logged = false;
    loop {
        match try_hold(&api, &identity).await {
            Ok(true) => break,
            Ok(false) if !waiting_logged => {
                tracing::info!(lease = LEASE_NAME, "another operator replica leads; standing by");
                waiting_logged = true;
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "leader election"),
        }
        tokio::time::sleep(RETRY).await;
    }
    tracing::info!(%identity, "leading");
    tokio::spawn(async move {
        let mut held_at = Instant::now();
        loop {
            tokio::time::sleep(DURATION / 3).await;
            match try_hold(&api, &identity).await {
                Ok(true) => held_at = Instant::now(),
                Ok(false) => {
                    tracing::error!("leadership taken by another replica; exiting");
                    std::process::exit(1);
                }
                Err(error) => tracing::warn!(%error, "renewing the leader lease"),
            }
            if held_at.elapsed() > DURATION - Duration::from_secs(3) {
                tracing::error!("cannot renew the leader lease in time; exiting");
                std::process::exit(1);
            }
        }
    });
}

/// Gives the lease up on a clean shutdown, so that a standby takes over at once instead of waiting for
/// it to expire.
pub async fn release(client: Client, namespace: &str, identity: &str) {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let Ok(Some(mut lease)) = api.get_opt(LEASE_NAME).await else {
        return;
    };
    let mut spec = lease.spec.clone().unwrap_or_default();
    if spec.holder_identity.as_deref() != Some(identity) {
        return;
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    lease.spec = Some(spec);
    match api.replace(LEASE_NAME, &PostParams::default(), &lease).await {
        Ok(_) => tracing::info!("released the leader lease"),
        Err(error) => tracing::warn!(%error, "could not release the leader lease"),
    }
}
