//! The primary's failsafe: how a primary keeps its lease while the API server cannot be reached, and why
//! that never makes two writable primaries (docs/architecture.md, "Failsafe").
//!
//! A primary renews its Lease through the API server. When a renewal fails for any reason but another
//! holder (the API server down, slow, or cut off from this pod), the primary asks every other instance
//! it knows — those of the last status it read, and any replica connected to its server — for a promise
//! (`POST /v1/failsafe`, authenticated by its own instance certificate). A replica promises only while
//! its last status names the asker current primary with no failover under way and its server follows
//! the asker; it remembers the moment of its promise *before* it answers, and refuses any promotion until
//! [`PROMISE_HOLD`] past the lease's duration has gone by since. With every promise in, the primary counts
//! its hold from the moment it *sent* the round, exactly as from a renewal: it ends `duration - 2 s`
//! later, before the promise of any replica ends. So no replica can be promoted while the primary
//! still takes writes by a promise, and a primary that misses one promise fences itself at the end of
//! its hold, whatever else happens.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use cnredis_api::RedisClusterStatus;
use cnredis_api::names::INSTANCE_API_PORT;

use crate::decide::ServerRole;
use crate::info::ListedReplica;
use crate::lease::EXPIRY_MARGIN;

/// How long past the lease's duration a replica refuses promotion after a promise: beyond the primary's
/// hold, which ends [`EXPIRY_MARGIN`] before the duration from the sending of the round.
pub const PROMISE_HOLD: Duration = Duration::from_secs(1);

/// How long one failsafe call may take; a round asks every instance at once.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// One instance the primary must hear a promise from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub pod: String,
    /// Where its instance API answers.
    pub api: SocketAddr,
}

/// The instances a primary must get a promise from: every instance of the last status but itself, and
/// every replica connected to its server, which must be one of those (a replica nobody knows, e.g. one
/// added after the status was last read, could be promoted without having promised). An instance without
/// an address cannot be asked, so there is no hold.
pub fn members(
    me: &str,
    status: &RedisClusterStatus,
    addresses: &[(String, IpAddr)],
    connected: &[ListedReplica],
) -> Result<Vec<Member>, String> {
    if status.current_primary.as_deref() != Some(me) {
        return Err(format!(
            "the last status read names {} current primary",
            status.current_primary.as_deref().unwrap_or("no")
        ));
    }
    let address_of = |pod: &str| addresses.iter().find(|(name, _)| name == pod).map(|(_, ip)| *ip);
    let mut members = Vec::new();
    for instance in status.instances_status.iter().filter(|i| i.name != me) {
        let ip =
            address_of(&instance.name).ok_or_else(|| format!("{} has no known address", instance.name))?;
        members.push(Member {
            pod: instance.name.clone(),
            api: SocketAddr::new(ip, INSTANCE_API_PORT),
        });
    }
    for replica in connected {
        let known = replica
            .ip
            .parse::<IpAddr>()
            .is_ok_and(|ip| members.iter().any(|m| m.api.ip() == ip));
        if !known {
            return Err(format!(
                "a replica at {} is connected that the last status does not list",
                replica.ip
            ));
        }
    }
    Ok(members)
}

/// Whether this replica may promise to follow `asker` and refuse promotion: its last status names the
/// asker current (and target) primary with no failover under way, and its server follows the asker's
/// address with its link up. `role` is a fresh observation of its server.
pub fn may_promise(
    me: &str,
    asker: &str,
    status: &RedisClusterStatus,
    asker_address: Option<&str>,
    role: &ServerRole,
) -> Result<(), String> {
    if asker == me {
        return Err("an instance does not promise to itself".to_string());
    }
    if status.current_primary.as_deref() != Some(asker) {
        return Err(format!(
            "the last status read names {} current primary",
            status.current_primary.as_deref().unwrap_or("no")
        ));
    }
    if status
        .target_primary
        .as_deref()
        .is_some_and(|target| target != asker)
    {
        return Err(format!(
            "a switchover to {} is under way",
            status.target_primary.as_deref().unwrap_or_default()
        ));
    }
    if let Some(failover) = &status.failover {
        return Err(format!("a failover from {} is under way", failover.from));
    }
    match (role, asker_address) {
        (
            ServerRole::Replica {
                primary,
                link_up: true,
                ..
            },
            Some(address),
        ) if primary == address => Ok(()),
        _ => Err(format!("this server does not follow {asker} with its link up")),
    }
}

/// When this instance may be promoted, from its promises and its own start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromotionGuard {
    /// When this instance manager started: a promise it gave before a restart is forgotten, so after a
    /// failover whose fence is not acknowledged it waits as if it had promised at its start.
    pub started: Instant,
    /// When it last promised (recorded before the answer left).
    pub promised: Option<Instant>,
    /// The primary lease's duration.
    pub lease: Duration,
}

impl PromotionGuard {
    /// How much longer a promotion must wait at `now`; `None` when it may go ahead. `unproven_fence`:
    /// the promotion is a failover's whose old primary did not acknowledge its fence (its lease ran out,
    /// or its pod is gone), so that primary might still hold its lease by promises.
    pub fn hold(&self, now: Instant, unproven_fence: bool) -> Option<Duration> {
        let until = |from: Instant| from + self.lease + PROMISE_HOLD;
        let promised = self.promised.map(until);
        let started = unproven_fence.then(|| until(self.started));
        let until = promised.into_iter().chain(started).max()?;
        (now < until).then(|| until - now)
    }
}

/// Whether a failover recorded in `status` promotes without the old primary's acknowledged fence.
pub fn unproven_fence(status: &RedisClusterStatus) -> bool {
    status
        .failover
        .as_ref()
        .is_some_and(|failover| failover.fence_proof.as_deref() != Some("FenceAcknowledged"))
}

/// Whether a promise of `hold` covers a primary's hold from one round: to the lease's duration less
/// [`EXPIRY_MARGIN`]. (A replica started with another lease duration may promise less.)
pub fn promise_covers(hold: Duration, lease: Duration) -> bool {
    hold >= lease.saturating_sub(EXPIRY_MARGIN)
}

#[cfg(test)]
mod tests;
