//! When a RedisScheduledBackup creates a RedisBackup, and what it calls it. Pure, so the scheduler's
//! rules are table-tested: never two backups of a schedule running at once, one backup per slot whose
//! name is derived from the slot (so a create repeated after an operator restart finds the one it made),
//! and slots missed while the operator was down give one backup, not a burst.

use jiff::Timestamp;

/// A parsed six-field cron schedule (`second minute hour day-of-month month day-of-week`), in UTC.
#[derive(Debug, Clone)]
pub struct Schedule(croner::Cron);

impl Schedule {
    /// Parses a schedule; the error is a sentence for the schedule's status.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let fields = pattern.split_whitespace().count();
        if fields != 6 {
            return Err(format!(
                "schedule {pattern:?} has {fields} fields; it needs six: second minute hour \
                 day-of-month month day-of-week, e.g. '0 0 2 * * *'"
            ));
        }
        croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(pattern)
            .map(Schedule)
            .map_err(|error| format!("schedule {pattern:?} is not a valid cron pattern: {error}"))
    }

    /// The first slot strictly after `after`; None when the pattern never matches again.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        // Slots are whole seconds: the first after `after` is the first after its whole second.
        let start = Timestamp::from_second(after.as_second())
            .ok()?
            .to_zoned(jiff::tz::TimeZone::UTC);
        let next = self.0.find_next_occurrence(&start, false).ok()?;
        Some(next.timestamp())
    }
}

/// What the scheduler knows at one evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub now: Timestamp,
    /// The last evaluation (`status.lastCheckTime`); None before the first.
    pub last_check: Option<Timestamp>,
    pub suspend: bool,
    pub immediate: bool,
    /// A RedisBackup of this schedule that has not ended (neither Completed nor Failed).
    pub running: Option<String>,
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Suspended: nothing is created and nothing is scheduled.
    Suspended,
    /// A backup of this schedule is still running: look again later, create nothing.
    WaitForRunning { backup: String },
    /// Create this RedisBackup (its name is the slot's, so a repeated create finds it), then record
    /// `now` as the last check and `next` as the next slot.
    Create {
        name: String,
        slot: Timestamp,
        immediate: bool,
        next: Option<Timestamp>,
    },
    /// Nothing is due: record `now` as the last check and look again at `next`.
    Wait { next: Timestamp },
    /// The pattern matches no future time.
    NoNextSlot,
}

/// The scheduler's rule. The slot due is the first after the last check: if several passed meanwhile
/// (the operator was down), one backup is made, for the latest check, and the next check starts from
/// now — no catch-up burst.
pub fn decide(schedule: &Schedule, schedule_name: &str, facts: &Facts) -> Decision {
    if facts.suspend {
        return Decision::Suspended;
    }
    if let Some(backup) = &facts.running {
        return Decision::WaitForRunning {
            backup: backup.clone(),
        };
    }
    let next = schedule.next_after(facts.now);
    let Some(last_check) = facts.last_check else {
        if facts.immediate {
            return Decision::Create {
                name: backup_name(schedule_name, facts.now),
                slot: facts.now,
                immediate: true,
                next,
            };
        }
        return next.map_or(Decision::NoNextSlot, |next| Decision::Wait { next });
    };
    match schedule.next_after(last_check) {
        Some(slot) if slot <= facts.now => Decision::Create {
            name: backup_name(schedule_name, slot),
            slot,
            immediate: false,
            next,
        },
        Some(slot) => Decision::Wait { next: slot },
        None => Decision::NoNextSlot,
    }
}

/// `<schedule>-<YYYYMMDDhhmmss>` of the slot in UTC, the schedule's name shortened so that the whole is a
/// valid object name (253 characters).
pub fn backup_name(schedule_name: &str, slot: Timestamp) -> String {
    const SUFFIX: usize = 15; // "-" and 14 digits
    let stamp = slot.strftime("%Y%m%d%H%M%S");
    let mut prefix: String = schedule_name.chars().take(253 - SUFFIX).collect();
    while prefix.ends_with(['-', '.']) {
        prefix.pop();
    }
    format!("{prefix}-{stamp}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn facts(now: &str, last_check: Option<&str>) -> Facts {
        Facts {
            now: at(now),
            last_check: last_check.map(at),
            suspend: false,
            immediate: false,
            running: None,
        }
    }

    #[test]
    fn a_schedule_needs_six_fields_and_valid_ones() {
        assert!(Schedule::parse("0 0 2 * * *").is_ok());
        assert!(Schedule::parse("*/5 * * * * *").is_ok());
        let five = Schedule::parse("0 2 * * *").unwrap_err();
        assert!(five.contains("has 5 fields"), "{five}");
        let seven = Schedule::parse("0 0 2 * * * 2027").unwrap_err();
        assert!(seven.contains("has 7 fields"), "{seven}");
        let bad = Schedule::parse("0 0 25 * * *").unwrap_err();
        assert!(bad.contains("not a valid cron pattern"), "{bad}");
        assert!(Schedule::parse("a b c d e f").is_err());
    }

    #[test]
    fn the_next_slot_is_strictly_after() {
        let daily = Schedule::parse("0 0 2 * * *").unwrap();
        assert_eq!(
            daily.next_after(at("2026-12-01T01:59:59Z")),
            Some(at("2026-12-01T02:00:00Z"))
        );
        assert_eq!(
            daily.next_after(at("2026-12-01T02:00:00Z")),
            Some(at("2026-12-02T02:00:00Z"))
        );
        let every5s = Schedule::parse("*/5 * * * * *").unwrap();
        assert_eq!(
            every5s.next_after(at("2026-12-01T00:00:03.5Z")),
            Some(at("2026-12-01T00:00:05Z"))
        );
    }

    #[test]
    fn the_first_evaluation_waits_for_the_first_slot_unless_immediate() {
        let daily = Schedule::parse("0 0 2 * * *").unwrap();
        let first = facts("2026-12-01T10:00:00Z", None);
        assert_eq!(
            decide(&daily, "nightly", &first),
            Decision::Wait {
                next: at("2026-12-02T02:00:00Z")
            }
        );
        let immediate = Facts {
            immediate: true,
            ..first
        };
        assert_eq!(
            decide(&daily, "nightly", &immediate),
            Decision::Create {
                name: "nightly-20261201100000".into(),
                slot: at("2026-12-01T10:00:00Z"),
                immediate: true,
                next: Some(at("2026-12-02T02:00:00Z")),
            }
        );
    }

    #[test]
    fn a_due_slot_creates_one_backup_named_after_the_slot() {
        let daily = Schedule::parse("0 0 2 * * *").unwrap();
        let due = facts("2026-12-02T02:00:01Z", Some("2026-12-01T10:00:00Z"));
        assert_eq!(
            decide(&daily, "nightly", &due),
            Decision::Create {
                name: "nightly-20261202020000".into(),
                slot: at("2026-12-02T02:00:00Z"),
                immediate: false,
                next: Some(at("2026-12-03T02:00:00Z")),
            }
        );
        // Evaluated again a second later, with the check recorded: nothing more is due.
        let again = facts("2026-12-02T02:00:02Z", Some("2026-12-02T02:00:01Z"));
        assert_eq!(
            decide(&daily, "nightly", &again),
            Decision::Wait {
                next: at("2026-12-03T02:00:00Z")
            }
        );
    }

    #[test]
    fn slots_missed_while_the_operator_was_down_give_one_backup() {
        let every5s = Schedule::parse("*/5 * * * * *").unwrap();
        // Down for a minute: twelve slots passed; one backup, for the first slot after the last check,
        // and the next check starts from now.
        let back = facts("2026-12-01T00:01:02Z", Some("2026-12-01T00:00:01Z"));
        let Decision::Create { name, next, .. } = decide(&every5s, "often", &back) else {
            panic!("expected a backup");
        };
        assert_eq!(name, "often-20261201000005");
        assert_eq!(next, Some(at("2026-12-01T00:01:05Z")));
        let after = facts("2026-12-01T00:01:03Z", Some("2026-12-01T00:01:02Z"));
        assert_eq!(
            decide(&every5s, "often", &after),
            Decision::Wait {
                next: at("2026-12-01T00:01:05Z")
            }
        );
    }

    #[test]
    fn nothing_while_suspended_or_while_a_backup_runs() {
        let every5s = Schedule::parse("*/5 * * * * *").unwrap();
        let due = facts("2026-12-01T00:01:02Z", Some("2026-12-01T00:00:01Z"));
        let running = Facts {
            running: Some("often-20261201000005".into()),
            ..due.clone()
        };
        assert_eq!(
            decide(&every5s, "often", &running),
            Decision::WaitForRunning {
                backup: "often-20261201000005".into()
            }
        );
        let suspended = Facts {
            suspend: true,
            immediate: true,
            ..running
        };
        assert_eq!(decide(&every5s, "often", &suspended), Decision::Suspended);
    }

    #[test]
    fn a_pattern_with_no_future_slot_says_so() {
        // 30 February never comes.
        let never = Schedule::parse("0 0 0 30 2 *").unwrap();
        assert_eq!(
            decide(&never, "never", &facts("2026-12-01T00:00:00Z", None)),
            Decision::NoNextSlot
        );
    }

    #[test]
    fn backup_names_are_valid_object_names() {
        assert_eq!(
            backup_name("nightly", at("2026-12-01T02:03:04.9Z")),
            "nightly-20261201020304"
        );
        let long = format!("{}-x", "a".repeat(300));
        let name = backup_name(&long, at("2026-12-01T02:03:04Z"));
        assert_eq!(name.len(), 253);
        assert!(name.ends_with("a-20261201020304"), "{name}");
        let dash = format!("{}-b", "a".repeat(237));
        assert_eq!(
            backup_name(&dash, at("2026-12-01T02:03:04Z")),
            format!("{}-20261201020304", "a".repeat(237))
        );
    }
}
