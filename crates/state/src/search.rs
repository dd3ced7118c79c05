//! Finding runs and rows in the run log: `retl runs list` filters, run ids
//! as people give them (a prefix, an ending, `latest`), and `retl runs find`
//! (served by the `run_rows` indexes on `reference` and `row_key`).

use serde::Serialize;

use crate::db::on;
use crate::runs::{LogRow, RUN_COLUMNS, RunRow};
use crate::{Error, Result, RowLog, RunStatus, RunSummary, State};

/// Which runs `retl runs list` shows.
#[derive(Debug, Clone, Default)]
pub struct RunFilter<'a> {
    /// Only runs of this activation.
    pub activation: Option<&'a str>,
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// Only runs started at or after this time (RFC 3339, UTC).
    pub since: Option<String>,
    /// Only runs started before this time (RFC 3339, UTC): the next page.
    pub before: Option<String>,
}

/// One run-log row found by [`State::find_rows`], with its run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FoundRow {
    /// The run that logged it.
    pub run_id: String,
    /// The run's activation.
    pub activation: String,
    /// When it was logged (RFC 3339, UTC).
    pub at: String,
    /// The row as logged.
    #[serde(flatten)]
    pub row: RowLog,
}

/// A run id given by a person: a whole id, `latest`, a unique prefix, or a
/// unique ending (the characters that differ between ids of one day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMatch {
    /// Exactly one run.
    One(String),
    /// No run.
    None,
    /// Several runs; their ids, newest first (at most 10).
    Ambiguous(Vec<String>),
}

impl State {
    /// Every run-log row of the person with `email`, newest first (at most
    /// `limit`), across all runs (of `activation` if given).
    pub async fn find_rows_by_contact(
        &self,
        email: &str,
        activation: Option<&str>,
        limit: u32,
    ) -> Result<Vec<FoundRow>> {
        let Some(key) = self.existing_contact_key().await? else {
            return Ok(Vec::new());
        };
        // Its hash, and those an older release kept (a domain in Unicode).
        let mut hits: Vec<Hit> = Vec::new();
        for hash in std::iter::once(key.hash(email)).chain(key.legacy_hashes(email)) {
            let found: Vec<Hit> = on!(self.db.executor(), |c| {
                sqlx::query_as(
                    "SELECT r.run_id, runs.activation, r.at, r.row_key, r.reference, r.outcome, r.reason,
                            r.external_id, r.details, r.request
                     FROM run_rows r JOIN runs ON runs.run_id = r.run_id
                     WHERE r.contact_hash = $1 AND (CAST($2 AS TEXT) IS NULL OR runs.activation = $2)
                     ORDER BY r.at DESC, r.run_id DESC, r.seq DESC LIMIT $3",
                )
                .bind(&hash)
                .bind(activation)
                .bind(i64::from(limit))
                .fetch_all(c)
                .await
            })
            .map_err(Error::db("search the run logs by email"))?;
            hits.extend(found);
        }
        let mut rows: Vec<FoundRow> = hits
            .into_iter()
            .map(FoundRow::try_from)
            .collect::<Result<_>>()?;
        rows.sort_by(|a, b| b.at.cmp(&a.at));
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(rows)
    }

    /// The most recent runs that pass `filter`, newest first.
    pub async fn find_runs(&self, filter: &RunFilter<'_>, limit: u32) -> Result<Vec<RunSummary>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs
             WHERE (CAST($1 AS TEXT) IS NULL OR activation = $1)
               AND (CAST($2 AS TEXT) IS NULL OR status = $2)
               AND (CAST($3 AS TEXT) IS NULL OR started_at >= $3)
               AND (CAST($5 AS TEXT) IS NULL OR started_at < $5)
             ORDER BY started_at DESC, run_id DESC LIMIT $4"
        );
        let rows: Vec<RunRow> = on!(self.db.executor(), |c| sqlx::query_as(&sql)
            .bind(filter.activation)
            .bind(filter.status.map(RunStatus::as_str))
            .bind(filter.since.as_deref())
            .bind(i64::from(limit))
            .bind(filter.before.as_deref())
            .fetch_all(c)
            .await)
        .map_err(Error::db("list runs"))?;
        rows.into_iter().map(RunSummary::try_from).collect()
    }

    /// Resolves a run id as a person gives it: the whole id, `latest` (the
    /// newest run, of `activation` if given), a prefix, or an ending.
    pub async fn match_run(&self, given: &str, activation: Option<&str>) -> Result<RunMatch> {
        let given = given.trim();
        let ids = |pattern: String| async move {
            let rows: Vec<(String,)> = on!(self.db.executor(), |c| sqlx::query_as(
                "SELECT run_id FROM runs
                 WHERE run_id LIKE $1 AND (CAST($2 AS TEXT) IS NULL OR activation = $2)
                 ORDER BY started_at DESC, run_id DESC LIMIT 11"
            )
            .bind(pattern)
            .bind(activation)
            .fetch_all(c)
            .await)
            .map_err(Error::db("find a run"))?;
            Ok::<_, Error>(rows.into_iter().map(|(id,)| id).collect::<Vec<_>>())
        };
        if given == "latest" {
            let newest = self
                .find_runs(
                    &RunFilter {
                        activation,
                        ..RunFilter::default()
                    },
                    1,
                )
                .await?;
            return Ok(newest
                .into_iter()
                .next()
                .map_or(RunMatch::None, |r| RunMatch::One(r.run_id)));
        }
        // Run ids are hex digits and dashes: nothing to escape in a LIKE pattern.
        if given.is_empty() || !given.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Ok(RunMatch::None);
        }
        let given = given.to_ascii_lowercase();
        for pattern in [given.clone(), format!("{given}%"), format!("%{given}")] {
            let mut found = ids(pattern).await?;
            match found.len() {
                0 => {}
                1 => return Ok(RunMatch::One(found.remove(0))),
                _ => {
                    found.truncate(10);
                    return Ok(RunMatch::Ambiguous(found));
                }
            }
        }
        Ok(RunMatch::None)
    }

    /// Every run-log row whose reference or key is `needle`, newest first
    /// (at most `limit`), across all runs (of `activation` if given). Served
    /// by the `run_rows` indexes on `reference` and `row_key`.
    pub async fn find_rows(
        &self,
        needle: &str,
        activation: Option<&str>,
        limit: u32,
    ) -> Result<Vec<FoundRow>> {
        let hits: Vec<Hit> = on!(self.db.executor(), |c| {
            sqlx::query_as(
            "SELECT r.run_id, runs.activation, r.at, r.row_key, r.reference, r.outcome, r.reason,
                    r.external_id, r.details, r.request
             FROM (SELECT * FROM run_rows WHERE reference = $1
                   UNION SELECT * FROM run_rows WHERE row_key = $1) r
             JOIN runs ON runs.run_id = r.run_id
             WHERE CAST($2 AS TEXT) IS NULL OR runs.activation = $2
             ORDER BY r.at DESC, r.run_id DESC, r.seq DESC LIMIT $3"
        )
        .bind(needle)
        .bind(activation)
        .bind(i64::from(limit))
        .fetch_all(c)
        .await
        })
        .map_err(Error::db("search the run logs"))?;
        hits.into_iter().map(FoundRow::try_from).collect()
    }
}

/// A found run-log row as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct Hit {
    run_id: String,
    activation: String,
    at: String,
    #[sqlx(flatten)]
    row: LogRow,
}

impl TryFrom<Hit> for FoundRow {
    type Error = crate::Error;

    fn try_from(hit: Hit) -> Result<FoundRow> {
        Ok(FoundRow {
            run_id: hit.run_id,
            activation: hit.activation,
            at: hit.at,
            row: RowLog::try_from(hit.row)?,
        })
    }
}
