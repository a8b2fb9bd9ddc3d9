//! Restart decisions, as the upstream kubelet makes them: which exits are restarted under which policy,
//! and the CrashLoopBackOff delay (first restart at once, then 10 s doubling to 5 min; forgotten once a
//! run has lasted twice the maximum).

use std::time::{Duration, Instant};

use super::plan::RestartPolicy;

/// Whether a container that exited with `exit_code` runs again.
pub fn should_restart(policy: RestartPolicy, init_container: bool, exit_code: i32) -> bool {
    match policy {
        RestartPolicy::Never => false,
        RestartPolicy::OnFailure => exit_code != 0,
        // Init containers run to completion; a successful one is never run again.
        RestartPolicy::Always => !init_container || exit_code != 0,
    }
}

/// Delays of one container's restarts.
#[derive(Clone, Debug)]
pub struct CrashLoopBackoff {
    initial: Duration,
    max: Duration,
    /// The delay the next restart waits; `None` until the first restart.
    next: Option<Duration>,
    last_restart: Option<Instant>,
}

impl CrashLoopBackoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: None,
            last_restart: None,
        }
    }

    /// How long to wait before restarting a container that exited at `exited_at`.
    pub fn delay(&mut self, exited_at: Instant) -> Duration {
        if let Some(last) = self.last_restart
            && exited_at.saturating_duration_since(last) > self.max * 2
        {
            self.next = None;
        }
        let delay = self.next.unwrap_or(Duration::ZERO);
        self.next = Some(match self.next {
            None => self.initial,
            Some(current) => (current * 2).min(self.max),
        });
        delay
    }

    /// Records that the container was started again at `at`.
    pub fn restarted(&mut self, at: Instant) {
        self.last_restart = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INITIAL: Duration = Duration::from_secs(10);
    const MAX: Duration = Duration::from_secs(300);

    #[test]
    fn policies_restart_the_exits_upstream_restarts() {
        use RestartPolicy::*;
        let table = [
            (Always, false, 0, true),
            (Always, false, 1, true),
            (OnFailure, false, 0, false),
            (OnFailure, false, 2, true),
            (Never, false, 1, false),
            (Always, true, 0, false),
            (Always, true, 1, true),
            (OnFailure, true, 1, true),
            (Never, true, 1, false),
        ];
        for (policy, init, code, expected) in table {
            assert_eq!(
                should_restart(policy, init, code),
                expected,
                "{policy:?} init={init} exit={code}"
            );
        }
    }

    #[test]
    fn crash_loop_waits_zero_then_doubles_from_ten_seconds_to_five_minutes() {
        let mut backoff = CrashLoopBackoff::new(INITIAL, MAX);
        let mut now = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..8 {
            let delay = backoff.delay(now);
            delays.push(delay.as_secs());
            now += delay;
            backoff.restarted(now);
            now += Duration::from_secs(1);
        }
        assert_eq!(delays, vec![0, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn crash_loop_resets_after_a_run_longer_than_ten_minutes() {
        let mut backoff = CrashLoopBackoff::new(INITIAL, MAX);
        let start = Instant::now();
        backoff.delay(start);
        backoff.restarted(start);
        assert_eq!(backoff.delay(start + Duration::from_secs(5)), INITIAL);
        backoff.restarted(start + Duration::from_secs(15));
        let much_later = start + Duration::from_secs(15) + MAX * 2 + Duration::from_secs(1);
        assert_eq!(backoff.delay(much_later), Duration::ZERO);
        backoff.restarted(much_later);
        assert_eq!(backoff.delay(much_later + Duration::from_secs(1)), INITIAL);
    }
}
