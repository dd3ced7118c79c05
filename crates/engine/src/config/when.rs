//! An activation's keys about *when*: `schedule:` with `timezone:` (when
//! `retl schedule` runs it) and `max_row_age:` (which rows are too old to
//! invite).

use retl_config::{Map, Node, Reader};

use super::MaxRowAge;
use super::blocks::{MAX_ROW_AGE, SCHEDULE};

/// `schedule:` (a cron expression, `manual`, `{every: 15m}` or `{cron, timezone}`)
/// and the activation's `timezone:` (for a cron expression; default UTC).
pub(super) fn read_schedule(
    r: &mut Reader<'_>,
    map: &Map<'_, '_>,
) -> Option<crate::schedule::Schedule> {
    use crate::schedule::Schedule;
    let zone = |r: &mut Reader<'_>, node: &Node<'_>, path: &str| {
        let name = r.string(node, path)?;
        match name.parse::<chrono_tz::Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                r.problem(
                    node,
                    path,
                    format!("`{name}` is not a time zone: write an IANA name such as Europe/Paris, or UTC"),
                );
                None
            }
        }
    };
    let mut timezone = match map.get("timezone") {
        Some(node) => Some(zone(r, node, "timezone")?),
        None => None,
    };
    let Some(node) = map.get("schedule") else {
        return Some(Schedule::Manual);
    };
    let mut cron_node = node;
    let mut path = "schedule".to_owned();
    if Reader::is_map(node) {
        let m = r.block(node, "schedule", &SCHEDULE)?;
        if let Some(tz) = m.get("timezone") {
            timezone = Some(zone(r, tz, "schedule.timezone")?);
        }
        match (m.get("every"), m.get("cron")) {
            (Some(every), None) => {
                let every = r.duration(every, "schedule.every")?;
                if every < std::time::Duration::from_secs(1) {
                    r.problem(node, "schedule.every", "an interval of at least 1s");
                    return None;
                }
                return Some(Schedule::Every(every));
            }
            (None, Some(cron)) => {
                cron_node = cron;
                path = "schedule.cron".to_owned();
            }
            _ => {
                r.problem(
                    node,
                    "schedule",
                    "give either `every: 15m` or `cron: \"*/15 * * * *\"`",
                );
                return None;
            }
        }
    }
    let text = r.string(cron_node, &path)?;
    if text.trim() == "manual" {
        return Some(Schedule::Manual);
    }
    match Schedule::cron(text.trim(), timezone.unwrap_or(chrono_tz::UTC)) {
        Ok(schedule) => Some(schedule),
        Err(message) => {
            r.problem(cron_node, &path, message);
            None
        }
    }
}

pub(super) fn read_max_row_age(r: &mut Reader<'_>, node: &Node<'_>) -> Option<MaxRowAge> {
    let m = r.block(node, "max_row_age", &MAX_ROW_AGE)?;
    let column = r
        .required(&m, "max_row_age", "column", "the column that dates a row")
        .and_then(|n| r.string(n, "max_row_age.column"));
    let age = r
        .required(&m, "max_row_age", "age", "for example 30d")
        .and_then(|n| r.duration(n, "max_row_age.age"));
    Some(MaxRowAge {
        column: column?,
        age: age?,
    })
}
