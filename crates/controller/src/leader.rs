//! Leader election among operator replicas: a `coordination.k8s.io` Lease in the operator's namespace.
//! Only the holder reconciles; a leader that cannot renew before the lease runs out stands down, so that
//! two replicas never reconcile at once.
//!
//! Leadership counts from the moment the last successful renewal was *sent*, and ends [`EXPIRY_MARGIN`]
//! before a standby may take the lease over: a standby takes it once it has seen one version of it
//! unchanged for its duration, on its own monotonic clock (the renewal was sent before it was seen), so
//! no skew between the machines' clocks can give two leaders. Every renewal is
//! bounded by a timeout well under what is left of that, and the end is kept by a thread of its own that
//! stands the process down when it passes, whether or not a renewal call is stuck.
//!
//! Standing down replaces the process image with a fresh one of the same binary and arguments
//! ([`stand_down`]): every task and in-flight call ends at once, as with an exit, but the container does
//! not exit, so the kubelet's restart back-off (which doubles at every exit) never delays the next
//! leadership. The fresh process stands by and leads again as soon as it can renew the lease.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};

pub const LEASE_NAME: &str = "cnredis-operator-leader";
const DURATION: Duration = Duration::from_secs(15);
/// How long before a standby may take the lease over (one version seen unchanged for `DURATION`) the leader
/// stops: covers the time the exit takes and clock drift.
const EXPIRY_MARGIN: Duration = Duration::from_secs(3);
/// The time between renewals while they succeed.
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// The time between attempts after a failed one, and between attempts to take the lease.
const RETRY: Duration = Duration::from_secs(2);
/// The longest any one call to take or renew the lease may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// How long leadership lasts after the sending of a successful renewal (or acquisition).
const VALID_FOR: Duration = DURATION.saturating_sub(EXPIRY_MARGIN);

/// The timeout of a renewal sent at `now` while leadership ends at `ends`: [`CALL_TIMEOUT`], and at most
/// half of what is left, so that a renewal that succeeds at the last moment still leaves time to act on.
/// `None` once leadership has ended.
fn renewal_timeout(now: Instant, ends: Instant) -> Option<Duration> {
    let left = ends.checked_duration_since(now).filter(|left| !left.is_zero())?;
    Some(CALL_TIMEOUT.min(left / 2))
}

/// The end of this replica's leadership, kept on a plain thread so that nothing on the async runtime
/// (a stuck renewal, busy workers) can postpone it.
struct Leadership {
    valid_for: Duration,
    ends: Mutex<Instant>,
    renewed: Condvar,
}

impl Leadership {
    /// Leadership taken by a call sent at `acquisition_sent`, lasting `valid_for` after each renewal.
    fn new(acquisition_sent: Instant, valid_for: Duration) -> Self {
        Self {
            valid_for,
            ends: Mutex::new(acquisition_sent + valid_for),
            renewed: Condvar::new(),
        }
    }

    /// A renewal sent at `sent` succeeded. (A late answer to an older renewal never moves the end back.)
    fn renewed(&self, sent: Instant) {
        let mut ends = self.ends.lock().unwrap_or_else(|poison| poison.into_inner());
        *ends = (*ends).max(sent + self.valid_for);
        self.renewed.notify_all();
    }

    fn ends(&self) -> Instant {
        *self.ends.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Blocks until leadership has ended.
    fn wait_until_ended(&self) {
        let mut ends = self.ends.lock().unwrap_or_else(|poison| poison.into_inner());
        loop {
            let now = Instant::now();
            if now >= *ends {
                return;
            }
            let wait = *ends - now;
            ends = self
                .renewed
                .wait_timeout(ends, wait)
                .unwrap_or_else(|poison| poison.into_inner())
                .0;
        }
    }
}

/// What a standby saw of the lease another replica holds: its version and when this replica first saw
/// it, on its own monotonic clock. The holder's `renewTime` is another machine's clock: judged against
/// this one, a skew above the margin would let a standby take a lease its holder still counts as
/// its own.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sighting {
    version: String,
    since: Instant,
}

/// Whether the lease whose current version is `version` has run out for a standby at `now`: that version
/// seen unchanged for `duration` (the holder sent its last renewal before it was first seen, and its
/// leadership ended `EXPIRY_MARGIN` before that). A new version starts the count again.
fn expired_by_sighting(seen: &mut Option<Sighting>, version: &str, now: Instant, duration: Duration) -> bool {
    match seen {
        Some(sighting) if sighting.version == version => now.duration_since(sighting.since) >= duration,
        _ => {
            *seen = Some(Sighting {
                version: version.to_string(),
                since: now,
            });
            false
        }
    }
}

/// Tries once to take or renew the lease for `identity`; true when held. `seen` is this replica's
/// sighting of another holder's lease, kept between attempts.
async fn try_hold(
    api: &Api<Lease>,
    identity: &str,
    seen: &mut Option<Sighting>,
) -> Result<bool, kube::Error> {
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
        let duration = current
            .lease_duration_seconds
            .map_or(DURATION, |seconds| Duration::from_secs(seconds.max(0) as u64));
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let expired =
            current.renew_time.is_none() || expired_by_sighting(seen, &version, Instant::now(), duration);
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
    let mut seen = None;
    let acquired = loop {
        let sent = Instant::now();
        match tokio::time::timeout(CALL_TIMEOUT, try_hold(&api, &identity, &mut seen)).await {
            Ok(Ok(true)) => break sent,
            Ok(Ok(false)) if !waiting_logged => {
                tracing::info!(lease = LEASE_NAME, "another operator replica leads; standing by");
                waiting_logged = true;
            }
            Ok(Ok(false)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "leader election"),
            Err(_) => tracing::warn!(timeout = ?CALL_TIMEOUT, "leader election: taking the lease timed out"),
        }
        tokio::time::sleep(RETRY).await;
    };
    tracing::info!(%identity, "leading");
    let leadership = std::sync::Arc::new(Leadership::new(acquired, VALID_FOR));
    let watched = leadership.clone();
    let spawned = std::thread::Builder::new()
        .name("leader-expiry".to_string())
        .spawn(move || {
            watched.wait_until_ended();
            stand_down("cannot renew the leader lease in time");
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the leader expiry timer; exiting");
        std::process::exit(1);
    }
    tokio::spawn(async move {
        let mut delay = RENEW_EVERY;
        loop {
            tokio::time::sleep(delay).await;
            let sent = Instant::now();
            // Past the end the expiry thread is exiting the process; nothing to send.
            let Some(timeout) = renewal_timeout(sent, leadership.ends()) else {
                continue;
            };
            delay = RETRY;
            match tokio::time::timeout(timeout, try_hold(&api, &identity, &mut None)).await {
                Ok(Ok(true)) => {
                    leadership.renewed(sent);
                    delay = RENEW_EVERY;
                }
                Ok(Ok(false)) => stand_down("leadership taken by another replica"),
                Ok(Err(error)) => tracing::warn!(%error, "renewing the leader lease"),
                Err(_) => tracing::warn!(?timeout, "renewing the leader lease timed out"),
            }
        }
    });
}

/// Ends this process's leadership at once: its image is replaced by a fresh one of the same binary with
/// the same arguments (every thread, task and in-flight call gone, as with an exit), which stands by for
/// the lease. Exits when that cannot be done.
fn stand_down(why: &str) -> ! {
    use std::os::unix::process::CommandExt;
    tracing::error!("{why}; standing down: restarting in place to stand by");
    // `/proc/self/exe` is the running binary even if its file was replaced or removed since.
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new("/proc/self/exe");
    if let Some(name) = args.next() {
        command.arg0(name);
    }
    let error = command.args(args).exec();
    tracing::error!(%error, "cannot restart in place; exiting");
    std::process::exit(1);
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

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);
    const MILLI: Duration = Duration::from_millis(1);

    #[test]
    fn leadership_ends_the_margin_before_the_duration_after_the_renewal_was_sent() {
        let sent = Instant::now();
        let leadership = Leadership::new(sent, VALID_FOR);
        assert_eq!(leadership.ends(), sent + 12 * SECOND);
        // Answered 4 s after it was sent: still counted from the sending.
        leadership.renewed(sent + 5 * SECOND);
        assert_eq!(leadership.ends(), sent + 17 * SECOND);
    }

    #[test]
    fn a_renewal_is_bounded_well_under_the_remaining_validity() {
        let sent = Instant::now();
        let ends = sent + VALID_FOR;
        // (sent this long after the last success, timeout)
        let cases = [
            (5 * SECOND, Some(CALL_TIMEOUT)),
            (6 * SECOND, Some(CALL_TIMEOUT)),
            (8 * SECOND, Some(2 * SECOND)),
            (11 * SECOND, Some(SECOND / 2)),
            (12 * SECOND, None),
            (20 * SECOND, None),
        ];
        for (after, timeout) in cases {
            let now = sent + after;
            assert_eq!(
                renewal_timeout(now, ends),
                timeout,
                "{after:?} after the last renewal"
            );
            if let Some(timeout) = timeout {
                assert!(now + timeout < ends, "a renewal returns before leadership ends");
            }
        }
    }

    #[test]
    fn a_renewal_that_times_out_leaves_room_for_a_retry_before_leadership_ends() {
        let sent = Instant::now();
        let ends = sent + VALID_FOR;
        let first = sent + RENEW_EVERY;
        let retry = first + renewal_timeout(first, ends).unwrap() + RETRY;
        assert!(renewal_timeout(retry, ends).is_some(), "a retry is still sent");
    }

    #[test]
    fn a_standby_judges_the_lease_by_its_own_clock_whatever_the_holders_renew_time_says() {
        // The holder's clock runs a minute behind: its renewTime looks a minute old at once. A standby
        // takes the lease only once it has seen one version unchanged for the whole duration.
        let start = Instant::now();
        let mut seen = None;
        assert!(!expired_by_sighting(&mut seen, "7", start, DURATION));
        assert!(!expired_by_sighting(
            &mut seen,
            "7",
            start + DURATION - MILLI,
            DURATION
        ));
        assert!(expired_by_sighting(&mut seen, "7", start + DURATION, DURATION));
    }

    #[test]
    fn a_renewal_seen_by_a_standby_starts_its_count_again() {
        let start = Instant::now();
        let mut seen = None;
        assert!(!expired_by_sighting(&mut seen, "7", start, DURATION));
        assert!(!expired_by_sighting(
            &mut seen,
            "8",
            start + 10 * SECOND,
            DURATION
        ));
        assert!(!expired_by_sighting(
            &mut seen,
            "8",
            start + 20 * SECOND,
            DURATION
        ));
        assert!(expired_by_sighting(&mut seen, "8", start + 25 * SECOND, DURATION));
    }

    #[test]
    fn a_late_answer_to_an_older_renewal_never_moves_the_end_back() {
        let start = Instant::now();
        let leadership = Leadership::new(start, VALID_FOR);
        leadership.renewed(start + 5 * SECOND);
        leadership.renewed(start + 2 * SECOND);
        assert_eq!(leadership.ends(), start + 17 * SECOND);
    }

    #[test]
    fn the_expiry_timer_fires_at_the_end_unless_a_renewal_postpones_it() {
        // Leadership valid 300 ms after each renewal; a renewal 150 ms in postpones the end to 450 ms.
        let valid_for = 300 * MILLI;
        let start = Instant::now();
        let leadership = std::sync::Arc::new(Leadership::new(start, valid_for));
        let waiting = leadership.clone();
        let timer = std::thread::spawn(move || {
            waiting.wait_until_ended();
            Instant::now()
        });
        let renewal = start + 150 * MILLI;
        std::thread::sleep(renewal.saturating_duration_since(Instant::now()));
        leadership.renewed(renewal);
        let ended = timer.join().unwrap();
        let late = ended.saturating_duration_since(renewal + valid_for);
        assert!(
            ended >= renewal + valid_for,
            "fired early, {:?} in",
            ended - start
        );
        assert!(late < 200 * MILLI, "fired {late:?} late");
    }
}
