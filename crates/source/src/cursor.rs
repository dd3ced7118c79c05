//! Cursor mode (`source.incremental`): read only rows whose cursor column is
//! at or past a point, with the condition pushed into the warehouse's `WHERE`.
//!
//! A cursor value is an integer, a time, or text (SQLite keeps times as text,
//! and compares them as text: write them in one shape, ISO 8601 in UTC). Each
//! driver compares a value in the shape the column does: an integer; a
//! PostgreSQL timestamp (`…Z`, which a `timestamp` column reads without its
//! zone, as the source reads such columns as UTC); a MySQL
//! `YYYY-MM-DD HH:MM:SS.ffffff` (the session is in UTC); or the text itself.
//! Values are bound as parameters, never spliced into SQL ([`Statement`]).

use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::Driver;

/// A value of the cursor column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorValue {
    /// An integer column.
    Int(i64),
    /// A timestamp or date column, in UTC.
    Time(DateTime<Utc>),
    /// A text column (SQLite's times), compared as text.
    Text(String),
}

impl PartialOrd for CursorValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (CursorValue::Int(a), CursorValue::Int(b)) => Some(a.cmp(b)),
            (CursorValue::Time(a), CursorValue::Time(b)) => Some(a.cmp(b)),
            (CursorValue::Text(a), CursorValue::Text(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

impl fmt::Display for CursorValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CursorValue::Int(n) => write!(f, "{n}"),
            CursorValue::Time(t) => {
                f.write_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            }
            CursorValue::Text(s) => f.write_str(s),
        }
    }
}

/// How far behind the high-water mark a cursor run reads again (`lookback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookback {
    /// A duration, for a time cursor.
    Time(Duration),
    /// A count, for an integer cursor.
    Count(u64),
}

impl CursorValue {
    /// The kind's name, as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            CursorValue::Int(_) => "int",
            CursorValue::Time(_) => "time",
            CursorValue::Text(_) => "text",
        }
    }

    /// Reads a stored value back (`kind` from [`kind`](Self::kind), `text` from `Display`).
    pub fn parse(kind: &str, text: &str) -> Option<CursorValue> {
        match kind {
            "int" => text.parse().ok().map(CursorValue::Int),
            "time" => DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| CursorValue::Time(t.to_utc())),
            "text" => Some(CursorValue::Text(text.to_owned())),
            _ => None,
        }
    }

    /// This value moved back by `lookback`; `Err` when the two do not fit
    /// (a duration for an integer cursor, say).
    pub fn back(&self, lookback: Lookback) -> Result<CursorValue, String> {
        if matches!(
            lookback,
            Lookback::Time(Duration::ZERO) | Lookback::Count(0)
        ) {
            return Ok(self.clone());
        }
        match (self, lookback) {
            (CursorValue::Int(n), Lookback::Count(back)) => Ok(CursorValue::Int(
                n.saturating_sub(i64::try_from(back).unwrap_or(i64::MAX)),
            )),
            (CursorValue::Time(t), Lookback::Time(back)) => Ok(CursorValue::Time(
                *t - chrono::Duration::from_std(back).unwrap_or(chrono::TimeDelta::MAX),
            )),
            (CursorValue::Text(text), Lookback::Time(back)) => shift_text(text, back),
            (CursorValue::Int(_), Lookback::Time(_)) => Err(
                "the cursor column holds integers: write `lookback` as a number of them (e.g. 1000)"
                    .to_owned(),
            ),
            (_, Lookback::Count(_)) => Err(
                "the cursor column holds times: write `lookback` as a duration (e.g. 1d)".to_owned(),
            ),
        }
    }

    /// The value bound to the condition's parameter, in the shape `driver`
    /// compares with the column.
    fn param(&self, driver: Driver) -> Param {
        match (self, driver) {
            (CursorValue::Int(n), _) => Param::Int(*n),
            (CursorValue::Time(t), Driver::Mysql) => {
                Param::Text(t.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
            }
            (CursorValue::Time(t), Driver::Postgres) => {
                Param::Text(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
            }
            (CursorValue::Time(t), Driver::Sqlite) => {
                Param::Text(t.format("%Y-%m-%d %H:%M:%S").to_string())
            }
            (CursorValue::Text(s), _) => Param::Text(s.clone()),
        }
    }
}

/// The one value a cursor condition binds: never spliced into SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Param {
    /// An integer cursor.
    Int(i64),
    /// A time or text cursor, in the column's own comparison shape.
    Text(String),
}

/// The name of the PostgreSQL session setting that carries the cursor value
/// into a `COPY`, which takes no bind parameters: `set_config` binds it, the
/// statement reads it with `current_setting` (see [`Statement`]).
pub(crate) const PG_SETTING: &str = "retl.cursor";

/// A reading statement and the value bound to its cursor condition.
///
/// MySQL/MariaDB and SQLite bind the value to a `?`. PostgreSQL's `COPY`
/// cannot take a parameter, so the value is bound to
/// `SELECT set_config('retl.cursor', $1, false)` first and the condition
/// reads it back with `current_setting('retl.cursor')` (a text cursor: the
/// only kind whose value comes from the warehouse's text; an integer or a
/// time is written from its typed value, digits and separators only). Either
/// way a value is data, never SQL: a quote, a backslash, `--` or NUL in it
/// changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    /// The SQL.
    pub sql: String,
    /// The cursor value to bind, if the statement has a condition.
    pub param: Option<Param>,
}

/// A time written as text, moved back by `back`, written in the same shape
/// (separator, fraction, zone) so that text comparison still orders it.
fn shift_text(text: &str, back: Duration) -> Result<CursorValue, String> {
    let at = retl_mapping_time(text).ok_or_else(|| {
        format!("the cursor value `{text}` is not a time, so `lookback` cannot move it back")
    })?;
    let moved = at - chrono::Duration::from_std(back).unwrap_or(chrono::TimeDelta::MAX);
    let bytes = text.as_bytes();
    let separator = if bytes.get(10) == Some(&b'T') {
        'T'
    } else {
        ' '
    };
    let shaped = if text.len() == 10 {
        moved.format("%Y-%m-%d").to_string()
    } else {
        let fraction = text
            .get(19..)
            .and_then(|rest| rest.strip_prefix('.'))
            .map_or(0, |f| f.bytes().take_while(u8::is_ascii_digit).count());
        let mut out = moved
            .format(&format!("%Y-%m-%d{separator}%H:%M:%S"))
            .to_string();
        if fraction > 0 {
            let nanos = format!("{:09}", moved.timestamp_subsec_nanos());
            out.push('.');
            out.push_str(&nanos[..fraction.min(9)]);
        }
        if text.ends_with('Z') {
            out.push('Z');
        } else if text.ends_with("+00:00") {
            out.push_str("+00:00");
        }
        out
    };
    Ok(CursorValue::Text(shaped))
}

/// Reads a time written as text (RFC 3339, or `YYYY-MM-DD[ T]HH:MM:SS[.f]`, or a date), as UTC.
fn retl_mapping_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.to_utc());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(at) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Some(at.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// `source.incremental`: cursor mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incremental {
    /// A column that grows with inserts (a timestamp or an integer).
    pub cursor: String,
    /// Also re-read this far behind the high-water mark (late rows).
    pub lookback: Lookback,
    /// A full diff at most this often (and on the first run); `None`: only the first.
    pub full_scan_every: Option<Duration>,
}

/// Only rows whose `column` is at or past `from` (pushed into the `WHERE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// The cursor column.
    pub column: String,
    /// Where reading starts.
    pub from: CursorValue,
}

/// `SELECT columns FROM from`, with `since`'s condition and the key table's
/// anti-join (`source.diff: warehouse`) if there are.
pub(crate) fn select(
    columns: &[String],
    from: &str,
    since: Option<&Since>,
    anti_join: Option<&crate::AntiJoin>,
    driver: Driver,
    quote: char,
) -> Statement {
    let mut conditions = Vec::new();
    let mut param = None;
    let mut columns = columns.to_vec();
    let mut qualify = String::new();
    let from = match anti_join {
        Some(anti) => {
            let (from, prefix, condition) = anti_joined(from, &mut columns, anti, quote);
            qualify = prefix;
            conditions.push(condition);
            from
        }
        None => from.to_owned(),
    };
    if let Some(since) = since {
        let column = format!(
            "{qualify}{}",
            crate::columns::quote_column(&since.column, quote)
        );
        let (placeholder, bound) = match (driver, &since.from, since.from.param(driver)) {
            (Driver::Mysql | Driver::Sqlite, _, param) => ("?".to_owned(), Some(param)),
            (Driver::Postgres, CursorValue::Text(_), text) => {
                (format!("current_setting('{PG_SETTING}')"), Some(text))
            }
            // Digits, and a time chrono wrote (digits, `-`, `:`, `T`, `.`, `Z`):
            // nothing from the warehouse's text reaches the SQL. An untyped
            // literal takes the column's type (timestamp, timestamptz or date).
            (Driver::Postgres, _, Param::Int(n)) => (n.to_string(), None),
            (Driver::Postgres, _, Param::Text(time)) => (format!("'{time}'"), None),
        };
        // First: the one parameter a statement may have comes before any other.
        conditions.insert(0, format!("{column} >= {placeholder}"));
        param = bound;
    }
    Statement {
        sql: assemble(&columns, &from, &conditions),
        param,
    }
}

/// The key table's anti-join on `from` (`source.diff: warehouse`), which
/// names the outer row's columns through an alias: the `FROM` clause, the
/// prefix that qualifies the outer row's columns (given to `columns` too;
/// empty when they need none) and the condition.
pub(crate) fn anti_joined(
    from: &str,
    columns: &mut [String],
    anti: &crate::AntiJoin,
    quote: char,
) -> (String, String, String) {
    let (mut from, alias) = match from.strip_suffix(" AS retl_q") {
        Some(_) => (from.to_owned(), "retl_q"),
        None => (format!("{from} AS retl_s"), "retl_s"),
    };
    if let Some(join) = anti.join(alias, quote) {
        from.push_str(&join);
    }
    let mut qualify = String::new();
    if anti.qualifies() {
        qualify = format!("{alias}.");
        for column in columns.iter_mut() {
            column.insert_str(0, &qualify);
        }
    }
    let condition = anti.condition(alias, quote);
    (from, qualify, condition)
}

/// `SELECT columns FROM from [WHERE conditions…]`.
pub(crate) fn assemble(columns: &[String], from: &str, conditions: &[String]) -> String {
    let mut sql = format!("SELECT {} FROM {from}", columns.join(", "));
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_time_moves_back_in_its_own_shape() {
        let back = Duration::from_hours(25);
        assert_eq!(
            CursorValue::Text("2026-11-23 10:00:00".into()).back(Lookback::Time(back)),
            Ok(CursorValue::Text("2026-11-22 09:00:00".into()))
        );
        assert_eq!(
            CursorValue::Text("2026-11-23T10:00:00.250Z".into()).back(Lookback::Time(back)),
            Ok(CursorValue::Text("2026-11-22T09:00:00.250Z".into()))
        );
        assert_eq!(
            CursorValue::Text("2026-11-23".into()).back(Lookback::Time(back)),
            Ok(CursorValue::Text("2026-11-21".into())),
            "midnight less 25 hours is the day before yesterday"
        );
        assert!(
            CursorValue::Text("soon".into())
                .back(Lookback::Time(back))
                .is_err()
        );
    }

    #[test]
    fn a_lookback_must_fit_the_cursor() {
        assert_eq!(
            CursorValue::Int(5_000).back(Lookback::Count(1_000)),
            Ok(CursorValue::Int(4_000))
        );
        assert!(
            CursorValue::Int(5)
                .back(Lookback::Time(Duration::from_secs(1)))
                .is_err()
        );
        let t = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .unwrap()
            .to_utc();
        assert!(CursorValue::Time(t).back(Lookback::Count(1)).is_err());
    }

    #[test]
    fn the_anti_join_names_the_outer_row_through_an_alias() {
        let anti = crate::AntiJoin {
            table: r#""retl"."orders""#.into(),
            columns: vec!["id".into(), "re\"gion".into()],
            bytes: false,
        };
        let since = Since {
            column: "at".to_owned(),
            from: CursorValue::Int(7),
        };
        assert_eq!(
            select(
                &["id".into()],
                r#""orders""#,
                Some(&since),
                Some(&anti),
                Driver::Postgres,
                '"'
            )
            .sql,
            r#"SELECT id FROM "orders" AS retl_s WHERE "at" >= 7 AND NOT EXISTS (SELECT 1 FROM "retl"."orders" AS retl_k WHERE retl_k."id" = retl_s."id" AND retl_k."re""gion" = retl_s."re""gion")"#
        );
        assert_eq!(
            select(
                &["id".into()],
                "(SELECT 1) AS retl_q",
                None,
                Some(&anti),
                Driver::Sqlite,
                '"'
            )
            .sql,
            r#"SELECT id FROM (SELECT 1) AS retl_q WHERE NOT EXISTS (SELECT 1 FROM "retl"."orders" AS retl_k WHERE retl_k."id" = retl_q."id" AND retl_k."re""gion" = retl_q."re""gion")"#
        );
    }

    #[test]
    fn cursor_values_are_bound_never_spliced() {
        let since = |from| Since {
            column: "at".to_owned(),
            from,
        };
        let text = "zz\\' UNION SELECT 1 -- \0";
        let hostile = CursorValue::Text(text.into());
        for driver in [Driver::Mysql, Driver::Sqlite, Driver::Postgres] {
            let statement = select(
                &["id".into()],
                "t",
                Some(&since(hostile.clone())),
                None,
                driver,
                '"',
            );
            assert!(!statement.sql.contains("UNION"), "{statement:?}");
            assert_eq!(statement.param, Some(Param::Text(text.into())));
        }
        let t = DateTime::parse_from_rfc3339("2026-11-23T10:00:00.5Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            select(
                &["id".into()],
                "t",
                Some(&since(CursorValue::Time(t))),
                None,
                Driver::Postgres,
                '"'
            ),
            Statement {
                sql: r#"SELECT id FROM t WHERE "at" >= '2026-11-23T10:00:00.500000Z'"#.into(),
                param: None
            }
        );
        assert_eq!(
            select(
                &["id".into()],
                "t",
                Some(&since(CursorValue::Time(t))),
                None,
                Driver::Mysql,
                '`'
            ),
            Statement {
                sql: "SELECT id FROM t WHERE `at` >= ?".into(),
                param: Some(Param::Text("2026-11-23 10:00:00.500000".into()))
            }
        );
        assert_eq!(
            select(
                &["id".into()],
                "t",
                Some(&since(CursorValue::Int(-3))),
                None,
                Driver::Sqlite,
                '"'
            )
            .param,
            Some(Param::Int(-3))
        );
    }

    #[test]
    fn stored_values_read_back() {
        for value in [
            CursorValue::Int(42),
            CursorValue::Time(
                DateTime::parse_from_rfc3339("2026-11-23T10:00:00.123Z")
                    .unwrap()
                    .to_utc(),
            ),
            CursorValue::Text("2026-11-23 10:00:00".into()),
        ] {
            assert_eq!(
                CursorValue::parse(value.kind(), &value.to_string()),
                Some(value)
            );
        }
    }
}
