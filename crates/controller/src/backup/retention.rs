//! Which backups a retention policy (`spec.backup.retentionPolicy`, e.g. `30d`) removes from the object
//! store. Pure and table-tested. The rule is a recovery window: every completed backup from the start
//! of the window on is kept, and so is the last one completed before it (it is what a restore to the
//! window's first moment would use); older ones go. The most recent completed backup is therefore never
//! removed, whatever its age. A backup still running is never touched; one that failed is removed once
//! it started before the window.

use jiff::{Span, Timestamp, ToSpan, tz::TimeZone};

/// A recovery window: a number of days, weeks or months.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Days(u16),
    Weeks(u16),
    Months(u16),
}

impl Window {
    /// Parses `<N>d`, `<N>w` or `<N>m` (N from 1); the error is a sentence for the status.
    pub fn parse(policy: &str) -> Result<Self, String> {
        let error = || {
            format!(
                "retentionPolicy {policy:?} must be a number of days, weeks or months such as 30d, 4w or 6m"
            )
        };
        let unit = policy.chars().last().ok_or_else(error)?;
        let count: u16 = policy[..policy.len() - unit.len_utf8()]
            .parse()
            .map_err(|_| error())?;
        if count == 0 || policy.starts_with(['+', '0']) {
            return Err(error());
        }
        match unit {
            'd' => Ok(Window::Days(count)),
            'w' => Ok(Window::Weeks(count)),
            'm' => Ok(Window::Months(count)),
            _ => Err(error()),
        }
    }

    /// The window's first moment, counted back from `now` on the UTC calendar (a month is a calendar
    /// month); None if that is before the representable past.
    pub fn start(self, now: Timestamp) -> Option<Timestamp> {
        let span: Span = match self {
            Window::Days(n) => i64::from(n).days(),
            Window::Weeks(n) => i64::from(n).weeks(),
            Window::Months(n) => i64::from(n).months(),
        };
        now.to_zoned(TimeZone::UTC)
            .checked_sub(span)
            .ok()
            .map(|z| z.timestamp())
    }
}

/// A backup found in the store, as far as retention cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub name: String,
    pub state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running,
    Completed { at: Timestamp },
    Failed { started: Timestamp },
}

/// The names of the backups to remove, oldest first.
pub fn obsolete(artifacts: &[Artifact], window: Window, now: Timestamp) -> Vec<String> {
    let Some(start) = window.start(now) else {
        return Vec::new();
    };
    // The last backup completed before the window opened: kept, the rest before it goes.
    let anchor = artifacts
        .iter()
        .filter_map(|a| match a.state {
            State::Completed { at } if at < start => Some((at, a.name.as_str())),
            _ => None,
        })
        .max();
    let mut gone: Vec<(Timestamp, &str)> = artifacts
        .iter()
        .filter_map(|a| match a.state {
            State::Completed { at } if anchor.is_some_and(|anchor| (at, a.name.as_str()) < anchor) => {
                Some((at, a.name.as_str()))
            }
            State::Failed { started } if started < start => Some((started, a.name.as_str())),
            _ => None,
        })
        .collect();
    gone.sort();
    gone.into_iter().map(|(_, name)| name.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn done(name: &str, when: &str) -> Artifact {
        Artifact {
            name: name.into(),
            state: State::Completed { at: at(when) },
        }
    }

    fn failed(name: &str, when: &str) -> Artifact {
        Artifact {
            name: name.into(),
            state: State::Failed { started: at(when) },
        }
    }

    #[test]
    fn policies_parse_as_days_weeks_or_months() {
        assert_eq!(Window::parse("30d"), Ok(Window::Days(30)));
        assert_eq!(Window::parse("4w"), Ok(Window::Weeks(4)));
        assert_eq!(Window::parse("6m"), Ok(Window::Months(6)));
        for bad in [
            "", "d", "0d", "07d", "+7d", "-1d", "30", "30y", "3.5d", "99999d", "30 d", "30dd",
        ] {
            let error = Window::parse(bad).unwrap_err();
            assert!(error.contains("such as 30d"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn a_month_is_a_calendar_month() {
        let now = at("2026-03-31T12:00:00Z");
        assert_eq!(Window::Months(1).start(now), Some(at("2026-02-28T12:00:00Z")));
        assert_eq!(Window::Weeks(1).start(now), Some(at("2026-03-24T12:00:00Z")));
        assert_eq!(Window::Days(1).start(now), Some(at("2026-03-30T12:00:00Z")));
    }

    #[test]
    fn the_last_backup_before_the_window_is_kept_and_older_ones_go() {
        let now = at("2026-12-10T00:00:00Z"); // a 7-day window opens on 2026-12-03
        let store = [
            done("b1", "2026-11-30T02:00:00Z"),
            done("b2", "2026-12-01T02:00:00Z"),
            done("b3", "2026-12-02T02:00:00Z"),
            done("b4", "2026-12-04T02:00:00Z"),
            done("b5", "2026-12-09T02:00:00Z"),
        ];
        assert_eq!(obsolete(&store, Window::Days(7), now), ["b1", "b2"]);
        // Listed in any order, the answer is the same.
        let mut shuffled = store.clone();
        shuffled.reverse();
        assert_eq!(obsolete(&shuffled, Window::Days(7), now), ["b1", "b2"]);
    }

    #[test]
    fn the_most_recent_completed_backup_is_never_removed() {
        let now = at("2026-12-10T00:00:00Z");
        // Every backup is older than the window: only the newest stays.
        let old = [
            done("b1", "2026-10-01T00:00:00Z"),
            done("b2", "2026-10-02T00:00:00Z"),
        ];
        assert_eq!(obsolete(&old, Window::Days(7), now), ["b1"]);
        assert!(obsolete(&[done("only", "2025-01-01T00:00:00Z")], Window::Days(1), now).is_empty());
        assert!(obsolete(&[], Window::Days(1), now).is_empty());
    }

    #[test]
    fn running_backups_are_kept_and_old_failures_go() {
        let now = at("2026-12-10T00:00:00Z");
        let store = [
            failed("f-old", "2026-11-01T00:00:00Z"),
            Artifact {
                name: "running".into(),
                state: State::Running,
            },
            failed("f-new", "2026-12-09T00:00:00Z"),
            done("b-new", "2026-12-09T01:00:00Z"),
        ];
        assert_eq!(obsolete(&store, Window::Days(7), now), ["f-old"]);
        // With no completed backup at all, nothing completed can go, old failures still do.
        let failures = [
            failed("f1", "2026-11-01T00:00:00Z"),
            Artifact {
                name: "r".into(),
                state: State::Running,
            },
        ];
        assert_eq!(obsolete(&failures, Window::Days(7), now), ["f1"]);
    }

    #[test]
    fn backups_completed_at_the_same_moment_are_ordered_by_name() {
        let now = at("2026-12-10T00:00:00Z");
        let store = [
            done("b", "2026-11-01T00:00:00Z"),
            done("a", "2026-11-01T00:00:00Z"),
        ];
        assert_eq!(obsolete(&store, Window::Days(7), now), ["a"]);
    }
}
