//! The lease watchdog: the primary stops accepting writes when its lease runs out, on a timer nothing else
//! can block (DESIGN.md, "Failover: fencing first").
//!
//! It sleeps until the local expiry of the lease ([`LeaseClock::expires_at`]) and, if no renewal came
//! meanwhile and the server acts as primary, fences the server. It runs on a thread of its own with its own
//! single-threaded runtime, reads only the [`LeaseClock`] (a watch channel, never locked across an await)
//! and talks to the server over a connection of its own, so neither the loop nor an API request holding
//! the manager's state, nor a busy shared connection, nor starved worker threads of the main runtime can
//! delay the fence. What to do at each instant is decided by the pure [`LeaseClock::watchdog_step`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::lease::{LeaseClock, WatchdogStep};
use crate::server::{ServerClient, ServerError};

/// While the lease stays expired, how often the watchdog checks that the server still refuses writes (and
/// fences it again if anything lifted the fence), or retries a fence that failed.
pub const ENFORCE_PERIOD: Duration = Duration::from_millis(250);

/// Starts the watchdog on its own thread. It runs for the life of the process.
pub fn spawn(clock: watch::Sender<LeaseClock>, server: Arc<ServerClient>) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("lease-watchdog".to_string())
        .spawn(move || runtime.block_on(watch_lease(clock, server)))?;
    Ok(())
}

/// The watchdog's loop; returns only if the clock can no longer change.
pub async fn watch_lease(clock: watch::Sender<LeaseClock>, server: Arc<ServerClient>) {
    let mut changes = clock.subscribe();
    let mut failing = false;
    loop {
        let step = changes.borrow_and_update().watchdog_step(Instant::now());
        let changed = match step {
            WatchdogStep::Idle => changes.changed().await,
            WatchdogStep::SleepUntil(expiry) => tokio::select! {
                () = tokio::time::sleep_until(expiry.into()) => Ok(()),
                changed = changes.changed() => changed,
            },
            WatchdogStep::Fence => {
                match enforce(&clock, &server).await {
                    Ok(()) => failing = false,
                    // Said once, not every ENFORCE_PERIOD while the server is down.
                    Err(error) if !failing => {
                        tracing::error!(%error, "the primary lease ran out and the server cannot be fenced; retrying");
                        failing = true;
                    }
                    Err(error) => tracing::debug!(%error, "fencing the server after the lease ran out"),
                }
                // The watchdog's own record is no news to itself. (A renewal meanwhile is seen at the next
                // look: the loop lifts the fence then, the watchdog has nothing to undo.)
                changes.borrow_and_update();
                tokio::select! {
                    () = tokio::time::sleep(ENFORCE_PERIOD) => Ok(()),
                    changed = changes.changed() => changed,
                }
            }
        };
        if changed.is_err() {
            return;
        }
    }
}

/// Fences the server (the first time for this expiry), or checks that it is still fenced and fences it
/// again if not (an unfence that raced the expiry).
async fn enforce(clock: &watch::Sender<LeaseClock>, server: &ServerClient) -> Result<(), ServerError> {
    let (already, expiry) = {
        let clock = clock.borrow();
        (clock.self_fenced_at.is_some(), clock.expires_at())
    };
    if already {
        match server.is_fenced().await {
            Ok(true) => return Ok(()),
            Ok(false) => {
                tracing::warn!("the primary lease is still expired but the fence was lifted: fencing again")
            }
            Err(error) => tracing::debug!(%error, "the lease watchdog cannot read the fence"),
        }
    }
    server.fence().await?;
    let now = Instant::now();
    clock.send_if_modified(|clock| {
        // A renewal that arrived meanwhile has ended this expiry: nothing to record.
        let record = clock.watchdog_step(now) == WatchdogStep::Fence && clock.self_fenced_at.is_none();
        if record {
            clock.self_fenced_at = Some(now);
        }
        record
    });
    if !already {
        let late = expiry.map(|expiry| now.saturating_duration_since(expiry));
        tracing::warn!(?late, "the primary lease ran out: the server refuses writes");
    }
    Ok(())
}
