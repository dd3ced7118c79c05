//! When an activation runs (`schedule:`), and when it is due next.
//!
//! A schedule is a 5-field cron expression (parsed by `croner`, evaluated in
//! UTC or in the activation's `timezone:`), a fixed interval (`{every: 15m}`),
//! or `manual` (the default: `retl schedule` leaves it alone).
//!
//! The timing rules are pure functions of times given to them, so they are
//! tested without waiting:
//! - [`Schedule::first_due`]: at start, an activation whose scheduled time
//!   passed while nothing ran (downtime) is due at once, once, however many
//!   times it was missed: one catch-up run, not a burst.
//! - [`Schedule::due_after_run`]: after a run, the next time after the run's
//!   start; if that passed while the run was still going (a slow run), once
//!   more at once. A slow run delays only its own activation.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// An activation's `schedule:`.
#[derive(Clone)]
pub enum Schedule {
    /// Run only when asked (`retl run`).
    Manual,
    /// Every so long, counted from the start of the previous run.
    Every(Duration),
    /// At the times a cron expression names, in a time zone.
    Cron {
        /// The parsed expression.
        cron: Box<croner::Cron>,
        /// As written.
        expression: String,
        /// Where its hours and days are counted.
        timezone: chrono_tz::Tz,
    },
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Manual => f.write_str("manual"),
            Schedule::Every(every) => write!(f, "every {}", humantime::format_duration(*every)),
            Schedule::Cron {
                expression,
                timezone,
                ..
            } => write!(f, "cron `{expression}` ({timezone})"),
        }
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Schedule) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Schedule {}

/// One field of a cron expression: its name and the range of its numbers.
struct CronField {
    name: &'static str,
    low: u32,
    high: u32,
}

/// The five fields, in order (day-of-week 0-7: 0 and 7 are Sunday).
const CRON_FIELDS: [CronField; 5] = [
    CronField {
        name: "minute",
        low: 0,
        high: 59,
    },
    CronField {
        name: "hour",
        low: 0,
        high: 23,
    },
    CronField {
        name: "day-of-month",
        low: 1,
        high: 31,
    },
    CronField {
        name: "month",
        low: 1,
        high: 12,
    },
    CronField {
        name: "day-of-week",
        low: 0,
        high: 7,
    },
];

impl CronField {
    /// Checks every number of `text` (lists, ranges, steps) against the
    /// range; names (`JAN`, `MON`) and `*`, `?`, `L` are left to the parser.
    fn check(&self, text: &str) -> Result<(), String> {
        for part in text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (part, None),
            };
            if step == Some("0") {
                return Err(format!("the {} field `{text}` has a step of 0", self.name));
            }
            for number in range.split('-') {
                let Ok(n) = number.parse::<u32>() else {
                    continue;
                };
                if n < self.low || n > self.high {
                    return Err(format!(
                        "the {} field `{text}` is out of range: {} is {}-{}",
                        self.name, self.name, self.low, self.high
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Schedule {
    /// Parses a cron expression of 5 fields (minute hour day month weekday),
    /// or one of the nicknames `@yearly` (`@annually`), `@monthly`,
    /// `@weekly`, `@daily` (`@midnight`) and `@hourly`. A number outside its
    /// field's range is named with the field and the range.
    pub fn cron(expression: &str, timezone: chrono_tz::Tz) -> Result<Schedule, String> {
        let fields = match expression.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            nickname if nickname.starts_with('@') => {
                return Err(format!(
                    "`{expression}` is not a cron nickname: use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly"
                ));
            }
            written => written,
        };
        if fields.split_whitespace().count() != 5 {
            return Err(format!(
                "`{expression}` is not a cron expression of 5 fields (minute hour day-of-month month day-of-week), e.g. \"*/15 * * * *\", or a nickname such as @hourly"
            ));
        }
        for (text, field) in fields.split_whitespace().zip(CRON_FIELDS) {
            field
                .check(text)
                .map_err(|e| format!("`{expression}`: {e}"))?;
        }
        let cron = croner::Cron::new(fields)
            .parse()
            .map_err(|e| format!("`{expression}` is not a valid cron expression: {e}"))?;
        Ok(Schedule::Cron {
            cron: Box::new(cron),
            expression: expression.to_owned(),
            timezone,
        })
    }

    /// Whether `retl schedule` runs it.
    pub fn is_scheduled(&self) -> bool {
        !matches!(self, Schedule::Manual)
    }

    /// The first scheduled time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Manual => None,
            Schedule::Every(every) => Some(t + chrono::Duration::from_std(*every).ok()?),
            Schedule::Cron { cron, timezone, .. } => cron
                .find_next_occurrence(&t.with_timezone(timezone), false)
                .ok()
                .map(|at| at.with_timezone(&Utc)),
        }
    }

    /// When an activation is first due after the scheduler starts at `now`,
    /// given when its last run started (if it ever ran). A scheduled time
    /// missed while nothing ran makes it due at once (one catch-up); an
    /// interval schedule that never ran is due at once too.
    pub fn first_due(
        &self,
        last_started: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match (self, last_started) {
            (Schedule::Manual, _) => None,
            (Schedule::Every(_), None) => Some(now),
            (_, None) => self.next_after(now),
            (_, Some(last)) => self.next_after(last).map(|due| due.max(now)),
        }
    }

    /// When an activation is due again after a run that started at
    /// `started`, at `now` (when it ended): the next scheduled time after
    /// its start, or at once (once) if that passed while it ran.
    pub fn due_after_run(
        &self,
        started: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.next_after(started).map(|due| due.max(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn a_cron_schedule_runs_at_its_times_in_its_time_zone() {
        let utc = Schedule::cron("0 6 * * *", chrono_tz::UTC).unwrap();
        assert_eq!(
            utc.next_after(at("2026-11-23T05:59:00Z")),
            Some(at("2026-11-23T06:00:00Z"))
        );
        assert_eq!(
            utc.next_after(at("2026-11-23T06:00:00Z")),
            Some(at("2026-11-24T06:00:00Z")),
            "strictly after"
        );
        let paris = Schedule::cron("0 6 * * *", chrono_tz::Europe::Paris).unwrap();
        assert_eq!(
            paris.next_after(at("2026-11-23T00:00:00Z")),
            Some(at("2026-11-23T05:00:00Z")),
            "06:00 in Paris is 05:00 UTC in winter"
        );
    }

    #[test]
    fn cron_expressions_need_five_valid_fields() {
        assert!(Schedule::cron("0 6 * *", chrono_tz::UTC).is_err());
        assert!(Schedule::cron("0 0 6 * * *", chrono_tz::UTC).is_err());
        let err = Schedule::cron("61 * * * *", chrono_tz::UTC).unwrap_err();
        assert_eq!(
            err,
            "`61 * * * *`: the minute field `61` is out of range: minute is 0-59"
        );
        let err = Schedule::cron("0 9 * 13 MON-FRI", chrono_tz::UTC).unwrap_err();
        assert!(err.contains("the month field `13`"), "{err}");
        assert!(err.contains("1-12"), "{err}");
        let err = Schedule::cron("0 25/2 * * *", chrono_tz::UTC).unwrap_err();
        assert!(err.contains("the hour field `25/2`"), "{err}");
        assert!(Schedule::cron("*/15 9-17 1,15 JAN-DEC MON-FRI", chrono_tz::UTC).is_ok());
        assert!(
            Schedule::cron("0 0 * * 7", chrono_tz::UTC).is_ok(),
            "7 is Sunday too"
        );
    }

    #[test]
    fn cron_nicknames_are_their_five_fields() {
        let t = at("2026-11-23T10:30:00Z");
        for (nickname, fields) in [
            ("@hourly", "0 * * * *"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@weekly", "0 0 * * 0"),
            ("@monthly", "0 0 1 * *"),
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
        ] {
            let nick = Schedule::cron(nickname, chrono_tz::UTC).unwrap();
            let long = Schedule::cron(fields, chrono_tz::UTC).unwrap();
            assert_eq!(nick.next_after(t), long.next_after(t), "{nickname}");
            assert_eq!(
                nick.to_string(),
                format!("cron `{nickname}` (UTC)"),
                "as written"
            );
        }
        assert!(Schedule::cron("@fortnightly", chrono_tz::UTC).is_err());
    }

    #[test]
    fn after_downtime_an_activation_catches_up_once() {
        let hourly = Schedule::cron("0 * * * *", chrono_tz::UTC).unwrap();
        let now = at("2026-11-23T10:30:00Z");
        // Last ran at 02:00; 03:00 … 10:00 were missed: due now, once.
        assert_eq!(
            hourly.first_due(Some(at("2026-11-23T02:00:00Z")), now),
            Some(now)
        );
        let after = hourly.due_after_run(now, at("2026-11-23T10:30:05Z"));
        assert_eq!(after, Some(at("2026-11-23T11:00:00Z")), "then back on time");
        // Nothing missed: the next scheduled time.
        assert_eq!(
            hourly.first_due(Some(at("2026-11-23T10:00:00Z")), now),
            Some(at("2026-11-23T11:00:00Z"))
        );
        // Never ran: the next scheduled time for cron, at once for an interval.
        assert_eq!(
            hourly.first_due(None, now),
            Some(at("2026-11-23T11:00:00Z"))
        );
        let every = Schedule::Every(Duration::from_mins(15));
        assert_eq!(every.first_due(None, now), Some(now));
        assert_eq!(Schedule::Manual.first_due(None, now), None);
    }

    #[test]
    fn a_slow_run_delays_only_its_next_run() {
        let every = Schedule::Every(Duration::from_mins(15));
        let started = at("2026-11-23T10:00:00Z");
        assert_eq!(
            every.due_after_run(started, at("2026-11-23T10:01:00Z")),
            Some(at("2026-11-23T10:15:00Z"))
        );
        // Ran 40 minutes: due at once, once (not three times).
        let ended = at("2026-11-23T10:40:00Z");
        assert_eq!(every.due_after_run(started, ended), Some(ended));
    }
}
