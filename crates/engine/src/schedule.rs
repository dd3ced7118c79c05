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

impl Schedule {
    /// Parses a cron expression of 5 fields (minute hour day month weekday).
    pub fn cron(expression: &str, timezone: chrono_tz::Tz) -> Result<Schedule, String> {
        if expression.split_whitespace().count() != 5 {
            return Err(format!(
                "`{expression}` is not a cron expression of 5 fields (minute hour day-of-month month day-of-week), e.g. \"*/15 * * * *\""
            ));
        }
        let cron = croner::Cron::new(expression)
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
        assert!(err.contains("not a valid cron expression"), "{err}");
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
