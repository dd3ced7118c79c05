//! The run log: one row per run, one row per row of a run that needed a
//! decision; its vocabulary (statuses, outcomes, counts) and its writes.
//! Searching it is `search.rs`'s; the cursors beside it, `cursor.rs`'s.
//! The vocabulary and the writes of one
//! table are read together.

use serde::{Deserialize, Serialize};

use crate::db::on;
use crate::{Error, Fenced, Result, RunFilter, State};

retl_config::spelled! {
    /// Where a run stands.
    pub enum RunStatus {
        /// Under way (or killed before it could say otherwise; see `Abandoned`).
        Running = "running",
        /// Every row read has its outcome.
        Completed = "completed",
        /// Stopped by an error; the rows it did record stand.
        Failed = "failed",
        /// Refused by a safety limit (the first-run guard, the surge guard, a
        /// renamed activation) before anything was sent; `error` says which
        /// limit and how to go on.
        Refused = "refused",
        /// Stopped by SIGINT or SIGTERM; rows not started are `skipped`.
        Interrupted = "interrupted",
        /// Found still `running` by a later run of its activation, which holds
        /// the lease: the process died (kill -9, a crash) without closing it.
        Abandoned = "abandoned",
    }
}

retl_config::spelled! {
    /// What happened to one row of a run, as its run-log row says.
    pub enum RowOutcome {
        /// Trustpilot accepted the invitation.
        Sent = "sent",
        /// Bad data (retl's validation or Trustpilot's verdict), with the reason.
        Rejected = "rejected",
        /// A transient failure; the next run tries again.
        Failed = "failed",
        /// The request may have reached Trustpilot: never resent on its own.
        Uncertain = "uncertain",
        /// Not attempted (the run stopped early, a cap, `--limit`); a later run sends it.
        Skipped = "skipped",
        /// Older than the activation's `max_row_age`: recorded, never sent.
        TooOld = "too_old",
        /// Failed transiently for longer than `retry.give_up_after`: no
        /// longer retried on its own; `retl runs resend --given-up` releases it.
        GivenUp = "given_up",
        /// Not sent: its customer was invited within the dedupe window; the
        /// reason names the earlier run and date.
        Suppressed = "suppressed",
        /// Already sent (or recorded `baseline`/`too_old`), and its data
        /// changed since: insert-only, not sent again. Logged once per change.
        IgnoredChanged = "ignored_changed",
        /// Its key appears more than once in the read: none of its rows is
        /// sent (which one is right cannot be known), and it is not settled.
        Duplicate = "duplicate",
    }
}

/// Counts of a run, by what happened to each row read.
///
/// `read = already_sent + already_rejected + ignored_changed + new + baseline + too_old`
/// and `new = sent + rejected + failed + uncertain + skipped + given_up + suppressed + duplicate`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Rows read from the source.
    pub read: u64,
    /// Rows this run had to deliver (never sent, or to retry).
    pub new: u64,
    /// Accepted by Trustpilot.
    pub sent: u64,
    /// Bad data (ours or Trustpilot's verdict); retried only once the row changes.
    pub rejected: u64,
    /// Transient failures; retried by the next run.
    pub failed: u64,
    /// Not attempted (the run stopped early).
    pub skipped: u64,
    /// Keys already sent (or recorded `baseline`/`too_old`) whose data changed
    /// since the last run that read them: insert-only, not sent again; each
    /// is logged (`ignored_changed`) once per change.
    pub ignored_changed: u64,
    /// Keys already handled, unchanged: sent, or uncertain, or recorded
    /// `baseline` or `too_old` by an earlier run.
    pub already_sent: u64,
    /// Keys rejected before whose data has not changed.
    pub already_rejected: u64,
    /// Requests that may have reached Trustpilot without an answer: never resent automatically.
    pub uncertain: u64,
    /// Rows an earlier, interrupted run left in flight, now marked uncertain (not part of `read`).
    pub recovered: u64,
    /// Rows recorded without sending because they were there before the
    /// activation's first run (`first_run: skip_existing`).
    #[serde(default)]
    pub baseline: u64,
    /// Invitation links created (and `sent`) whose URL could not be written
    /// back to the warehouse; the reason is in their run-log rows. Not part
    /// of the accounting identities.
    #[serde(default)]
    pub writeback_failed: u64,
    /// Rows of a cursor activation's full scan whose cursor is NULL (read
    /// only by full scans; not part of the accounting identities).
    #[serde(default)]
    pub cursor_null: u64,
    /// Rows this run found older than `max_row_age`: recorded `too_old`,
    /// never sent (later runs count them in `already_sent`).
    #[serde(default)]
    pub too_old: u64,
    /// Rows that failed transiently for longer than `retry.give_up_after`:
    /// no longer retried on their own (later runs count them in `already_sent`).
    #[serde(default)]
    pub given_up: u64,
    /// Rows sent before whose content hash was remade because the mapping
    /// changed (counted in `already_sent`, not logged as changed).
    #[serde(default)]
    pub reshaped: u64,
    /// Rows not sent because their customer was invited within the dedupe
    /// window (`dedupe:`).
    #[serde(default)]
    pub suppressed: u64,
    /// Rows whose key appears more than once in the read: none sent, none
    /// settled (counted among `new`).
    #[serde(default)]
    pub duplicate: u64,
}

impl Counts {
    /// Whether the accounting identities hold.
    pub fn balanced(&self) -> bool {
        self.read
            == self.already_sent
                + self.already_rejected
                + self.ignored_changed
                + self.new
                + self.baseline
                + self.too_old
            && self.new
                == self.sent
                    + self.rejected
                    + self.failed
                    + self.uncertain
                    + self.skipped
                    + self.given_up
                    + self.suppressed
                    + self.duplicate
    }
}

/// One run, as `retl run --json` and `retl runs list --json` print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    /// The run's id.
    pub run_id: String,
    /// The activation it ran.
    pub activation: String,
    /// Where it stands.
    pub status: RunStatus,
    /// What happened to the rows.
    pub counts: Counts,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// RFC 3339, UTC; `null` while running.
    pub finished_at: Option<String>,
    /// Why the run failed, if it did.
    pub error: Option<String>,
}

/// One row's entry in a run log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowLog {
    /// The row's primary-key values (`, `-joined).
    pub key: String,
    /// Its reference number, if it had one.
    pub reference: Option<String>,
    /// What happened to it.
    pub outcome: RowOutcome,
    /// Why, for anything but `sent`.
    pub reason: Option<String>,
    /// The destination's id for what it created (an invitation, a link), if
    /// it gave one. In JSON: `invitation_id`, as the run log always said.
    #[serde(rename = "invitation_id")]
    pub external_id: Option<String>,
    /// What the destination answered (stored as one JSON text).
    #[serde(flatten)]
    pub details: Details,
    /// The keyed hash of the person's normalised email ([`crate::ContactKey`]):
    /// how `retl runs find --email` finds the row without the email stored.
    #[serde(skip)]
    pub contact_hash: Option<String>,
    /// What was sent, without the person's name and email (template, SKUs,
    /// tags, send time, locale), as the destination sums its request up.
    pub request: Option<serde_json::Value>,
}

/// What a destination answered for a row, kept in the run log: every
/// destination's answer has these, or some of them. In JSON they keep the
/// names the run log always gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Details {
    /// The HTTP status of the last answer, if any.
    #[serde(rename = "status_code")]
    pub status: Option<u16>,
    /// The destination's own error code.
    pub error_code: Option<String>,
    /// The id its support asks for.
    pub correlation_id: Option<String>,
    /// A URL it created (an invitation link).
    #[serde(rename = "link_url")]
    pub url: Option<String>,
}

/// [`Details`] as the `run_rows.details` column stores them: neutral names,
/// unset fields left out; `NULL` when there is nothing.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Default)]
struct StoredDetails {
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

impl Details {
    /// The stored JSON text, `None` when nothing was answered.
    fn to_stored(&self) -> Option<String> {
        if *self == Details::default() {
            return None;
        }
        let stored = StoredDetails {
            status: self.status,
            error_code: self.error_code.clone(),
            correlation_id: self.correlation_id.clone(),
            url: self.url.clone(),
        };
        serde_json::to_string(&stored).ok()
    }

    /// Reads the stored JSON text.
    fn from_stored(text: Option<&str>) -> Result<Details> {
        let Some(text) = text else {
            return Ok(Details::default());
        };
        let stored: StoredDetails = serde_json::from_str(text).map_err(|e| Error::Corrupt {
            what: "run-log details",
            detail: e.to_string(),
        })?;
        Ok(Details {
            status: stored.status,
            error_code: stored.error_code,
            correlation_id: stored.correlation_id,
            url: stored.url,
        })
    }
}

impl RowLog {
    /// A log row with only its key, reference, outcome and reason.
    pub fn new(
        key: impl Into<String>,
        reference: Option<&str>,
        outcome: RowOutcome,
        reason: Option<String>,
    ) -> RowLog {
        RowLog {
            key: key.into(),
            reference: reference.map(str::to_owned),
            outcome,
            reason,
            external_id: None,
            details: Details::default(),
            contact_hash: None,
            request: None,
        }
    }
}

/// A `runs` row as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct RunRow {
    run_id: String,
    activation: String,
    status: String,
    started_at: String,
    finished_at: Option<String>,
    counts: String,
    error: Option<String>,
}

impl TryFrom<RunRow> for RunSummary {
    type Error = Error;

    fn try_from(row: RunRow) -> Result<RunSummary> {
        let corrupt = |what, detail: String| Error::Corrupt { what, detail };
        Ok(RunSummary {
            status: row
                .status
                .parse()
                .map_err(|e| corrupt("run status", format!("run {}: {e}", row.run_id)))?,
            counts: serde_json::from_str(&row.counts)
                .map_err(|e| corrupt("run counts", format!("run {}: {e}", row.run_id)))?,
            run_id: row.run_id,
            activation: row.activation,
            started_at: row.started_at,
            finished_at: row.finished_at,
            error: row.error,
        })
    }
}

/// A `run_rows` row with its position in the run.
#[derive(sqlx::FromRow)]
struct PagedLogRow {
    seq: i64,
    #[sqlx(flatten)]
    row: LogRow,
}

/// A `run_rows` row as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct LogRow {
    row_key: String,
    reference: Option<String>,
    outcome: String,
    reason: Option<String>,
    external_id: Option<String>,
    details: Option<String>,
    request: Option<String>,
}

impl TryFrom<LogRow> for RowLog {
    type Error = Error;

    fn try_from(row: LogRow) -> Result<RowLog> {
        Ok(RowLog {
            outcome: row.outcome.parse().map_err(|detail| Error::Corrupt {
                what: "run-log outcome",
                detail,
            })?,
            key: row.row_key,
            reference: row.reference,
            reason: row.reason,
            contact_hash: None,
            request: row
                .request
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok()),
            external_id: row.external_id,
            details: Details::from_stored(row.details.as_deref())?,
        })
    }
}

pub(crate) const RUN_COLUMNS: &str =
    "run_id, activation, status, started_at, finished_at, counts, error";

fn counts_json(counts: &Counts) -> String {
    serde_json::to_string(counts).expect("counts serialise")
}

impl State {
    /// Records run `run_id` of `activation`, which was promised (a run
    /// started through the API answers with its id) but could not start:
    /// `failed`, with `error` saying why, so that whoever follows the id
    /// finds it. It writes only this row of `runs` (it holds no lease and
    /// touches no ledger).
    pub async fn record_not_started(
        &self,
        activation: &str,
        run_id: &str,
        error: &str,
    ) -> Result<RunSummary> {
        let now = self.now_text();
        let summary = RunSummary {
            run_id: run_id.to_owned(),
            activation: activation.to_owned(),
            status: RunStatus::Failed,
            counts: Counts::default(),
            started_at: now.clone(),
            finished_at: Some(now),
            error: Some(error.to_owned()),
        };
        on!(self.db.executor(), |c| sqlx::query(
            "INSERT INTO runs (run_id, activation, status, started_at, finished_at, counts, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )
        .bind(&summary.run_id)
        .bind(&summary.activation)
        .bind(summary.status.as_str())
        .bind(&summary.started_at)
        .bind(&summary.finished_at)
        .bind(counts_json(&summary.counts))
        .bind(&summary.error)
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(Error::db("record a run that could not start"))?;
        Ok(summary)
    }
}

impl State {
    /// When `activation`'s first run started (RFC 3339), if it ever ran.
    pub async fn first_run_started(&self, activation: &str) -> Result<Option<String>> {
        let found: Option<(Option<String>,)> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT MIN(started_at) FROM runs WHERE activation = $1"
        )
        .bind(activation)
        .fetch_optional(c)
        .await)
        .map_err(Error::db("read the first run"))?;
        Ok(found.and_then(|(at,)| at))
    }

    /// The most recent runs, newest first.
    pub async fn list_runs(&self, activation: Option<&str>, limit: u32) -> Result<Vec<RunSummary>> {
        let filter = RunFilter {
            activation,
            ..RunFilter::default()
        };
        self.find_runs(&filter, limit).await
    }

    /// One run, if it exists.
    pub async fn run(&self, run_id: &str) -> Result<Option<RunSummary>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1");
        let row: Option<RunRow> = on!(self.db.executor(), |c| sqlx::query_as(&sql)
            .bind(run_id)
            .fetch_optional(c)
            .await)
        .map_err(Error::db("read a run"))?;
        row.map(RunSummary::try_from).transpose()
    }

    /// The rows logged by a run with `outcome`, in the order they were recorded.
    pub async fn run_rows_with(&self, run_id: &str, outcome: RowOutcome) -> Result<Vec<RowLog>> {
        let rows: Vec<LogRow> = on!(self.db.executor(), |c| {
            sqlx::query_as(
                "SELECT row_key, reference, outcome, reason, external_id, details, request
             FROM run_rows WHERE run_id = $1 AND outcome = $2 ORDER BY seq",
            )
            .bind(run_id)
            .bind(outcome.as_str())
            .fetch_all(c)
            .await
        })
        .map_err(Error::db("read a run log"))?;
        rows.into_iter().map(RowLog::try_from).collect()
    }

    /// The rows logged by a run, in the order they were recorded.
    pub async fn run_rows(&self, run_id: &str) -> Result<Vec<RowLog>> {
        let rows: Vec<LogRow> = on!(self.db.executor(), |c| {
            sqlx::query_as(
                "SELECT row_key, reference, outcome, reason, external_id, details, request
             FROM run_rows WHERE run_id = $1 ORDER BY seq",
            )
            .bind(run_id)
            .fetch_all(c)
            .await
        })
        .map_err(Error::db("read a run log"))?;
        rows.into_iter().map(RowLog::try_from).collect()
    }

    /// One page of a run's rows, in the order they were recorded: at most
    /// `limit` rows after position `after` (`None` for the first page), and the
    /// position to ask for the next page from, when there are more. A run of
    /// any size is read a page at a time.
    pub async fn run_rows_page(
        &self,
        run_id: &str,
        after: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<RowLog>, Option<i64>)> {
        // Positions start at 0.
        let after = after.unwrap_or(-1);
        let rows: Vec<PagedLogRow> = on!(self.db.executor(), |c| {
            sqlx::query_as(
                "SELECT seq, row_key, reference, outcome, reason, external_id, details, request
             FROM run_rows WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(run_id)
            .bind(after)
            .bind(i64::from(limit) + 1)
            .fetch_all(c)
            .await
        })
        .map_err(Error::db("read a run log"))?;
        let more = rows.len() > limit as usize;
        let page: Vec<PagedLogRow> = rows.into_iter().take(limit as usize).collect();
        let next = page.last().map(|r| r.seq).filter(|_| more);
        let rows = page
            .into_iter()
            .map(|r| RowLog::try_from(r.row))
            .collect::<Result<_>>()?;
        Ok((rows, next))
    }

    /// How many rows of `activation` were sent since `since` (RFC 3339, UTC).
    pub async fn sent_since(&self, activation: &str, since: &str) -> Result<u64> {
        let (n,): (i64,) = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT COUNT(*) FROM run_rows r JOIN runs u ON u.run_id = r.run_id
             WHERE u.activation = $1 AND r.outcome = $3 AND r.at >= $2"
        )
        .bind(activation)
        .bind(since)
        .bind(RowOutcome::Sent.as_str())
        .fetch_one(c)
        .await)
        .map_err(Error::db("count today's sends"))?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// The counts of the activation's last `n` completed runs, newest first
    /// (what the surge guard compares a run with).
    pub async fn recent_counts(&self, activation: &str, n: u32) -> Result<Vec<Counts>> {
        let rows: Vec<(String,)> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT counts FROM runs WHERE activation = $1 AND status = $3
             ORDER BY started_at DESC, run_id DESC LIMIT $2"
        )
        .bind(activation)
        .bind(i64::from(n))
        .bind(RunStatus::Completed.as_str())
        .fetch_all(c)
        .await)
        .map_err(Error::db("read runs"))?;
        rows.into_iter()
            .map(|(counts,)| {
                serde_json::from_str::<Counts>(&counts).map_err(|e| Error::Corrupt {
                    what: "run counts",
                    detail: e.to_string(),
                })
            })
            .collect()
    }

    /// Whether `activation` has a completed run (its first run is over).
    pub async fn has_completed_run(&self, activation: &str) -> Result<bool> {
        let any: Option<(i64,)> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT CAST(1 AS BIGINT) FROM runs WHERE activation = $1 AND status = $2 LIMIT 1"
        )
        .bind(activation)
        .bind(RunStatus::Completed.as_str())
        .fetch_optional(c)
        .await)
        .map_err(Error::db("read runs"))?;
        Ok(any.is_some())
    }
}

impl Fenced {
    /// Records the start of this transaction's run and returns its summary.
    pub async fn start_run(&mut self) -> Result<RunSummary> {
        let summary = RunSummary {
            run_id: self.run_id.clone(),
            activation: self.activation.clone(),
            status: RunStatus::Running,
            counts: Counts::default(),
            started_at: self.now.clone(),
            finished_at: None,
            error: None,
        };
        on!(self.tx.executor(), |c| sqlx::query(
            "INSERT INTO runs (run_id, activation, status, started_at, counts) VALUES ($1, $2, $3, $4, $5)"
        )
        .bind(&summary.run_id)
        .bind(&summary.activation)
        .bind(summary.status.as_str())
        .bind(&summary.started_at)
        .bind(counts_json(&summary.counts))
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(Error::db("record the start of a run"))?;
        Ok(summary)
    }

    /// Closes every other run of this activation still recorded as `running`
    /// as `abandoned`: the lease this transaction checked proves that none of
    /// them is alive. Each gets the counts of what it did record (its run-log
    /// rows), so that they add up. Returns how many.
    pub async fn abandon_stale_runs(&mut self) -> Result<u64> {
        let stale: Vec<(String,)> = on!(self.tx.executor(), |c| {
            sqlx::query_as(
                "SELECT run_id FROM runs WHERE activation = $1 AND status = $3 AND run_id <> $2",
            )
            .bind(&self.activation)
            .bind(&self.run_id)
            .bind(RunStatus::Running.as_str())
            .fetch_all(c)
            .await
        })
        .map_err(Error::db("find abandoned runs"))?;
        for (run_id,) in &stale {
            let outcomes: Vec<(String, i64)> = on!(self.tx.executor(), |c| sqlx::query_as(
                "SELECT outcome, COUNT(*) FROM run_rows WHERE run_id = $1 GROUP BY outcome"
            )
            .bind(run_id)
            .fetch_all(c)
            .await)
            .map_err(Error::db("count an abandoned run's rows"))?;
            let mut counts = Counts::default();
            for (outcome, n) in outcomes {
                let n = u64::try_from(n).unwrap_or_default();
                let outcome: RowOutcome = outcome.parse().map_err(|detail| Error::Corrupt {
                    what: "run-log outcome",
                    detail,
                })?;
                counts.read += n;
                match outcome {
                    RowOutcome::Sent => counts.sent += n,
                    RowOutcome::Rejected => counts.rejected += n,
                    RowOutcome::Failed => counts.failed += n,
                    RowOutcome::Uncertain => counts.uncertain += n,
                    RowOutcome::Skipped => counts.skipped += n,
                    RowOutcome::GivenUp => counts.given_up += n,
                    RowOutcome::Suppressed => counts.suppressed += n,
                    RowOutcome::Duplicate => counts.duplicate += n,
                    RowOutcome::TooOld => {
                        counts.too_old += n;
                        continue;
                    }
                    RowOutcome::IgnoredChanged => {
                        counts.ignored_changed += n;
                        continue;
                    }
                }
                counts.new += n;
            }
            on!(self.tx.executor(), |c| sqlx::query(
                "UPDATE runs SET status = $4, finished_at = $2, counts = $3,
                        error = 'the run stopped without closing its record (killed, its lease lost, or its machine failed); its counts are the rows it logged'
                 WHERE run_id = $1"
            )
            .bind(run_id)
            .bind(&self.now)
            .bind(counts_json(&counts))
            .bind(RunStatus::Abandoned.as_str())
            .execute(c)
            .await
            .map(|_| ()))
            .map_err(Error::db("close abandoned runs"))?;
        }
        Ok(stale.len() as u64)
    }

    /// Records the end of the run: its status, counts and error; sets `finished_at`.
    pub async fn finish_run(&mut self, summary: &mut RunSummary) -> Result<()> {
        summary.finished_at = Some(self.now.clone());
        on!(self.tx.executor(), |c| sqlx::query(
            "UPDATE runs SET status = $2, finished_at = $3, counts = $4, error = $5 WHERE run_id = $1"
        )
        .bind(&summary.run_id)
        .bind(summary.status.as_str())
        .bind(&summary.finished_at)
        .bind(counts_json(&summary.counts))
        .bind(&summary.error)
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(Error::db("record the end of a run"))?;
        Ok(())
    }

    /// Writes the counts of the run so far (a running run's live counts).
    pub async fn update_counts(&mut self, counts: &Counts) -> Result<()> {
        on!(self.tx.executor(), |c| sqlx::query(
            "UPDATE runs SET counts = $2 WHERE run_id = $1 AND status = $3"
        )
        .bind(&self.run_id)
        .bind(counts_json(counts))
        .bind(RunStatus::Running.as_str())
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(Error::db("record a run's counts"))?;
        Ok(())
    }

    /// Deletes the run logs (runs and their rows) of this activation that
    /// started before `before` (RFC 3339, UTC) and are over; returns how many
    /// runs went. The ledger is never pruned.
    pub async fn prune_run_logs(&mut self, before: &str) -> Result<u64> {
        let prune = Error::db("prune run logs");
        on!(self.tx.executor(), |c| sqlx::query(
            "DELETE FROM run_rows WHERE run_id IN (
                SELECT run_id FROM runs
                WHERE activation = $1 AND started_at < $2 AND status <> $3)"
        )
        .bind(&self.activation)
        .bind(before)
        .bind(RunStatus::Running.as_str())
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(prune)?;
        let gone = on!(self.tx.executor(), |c| sqlx::query(
            "DELETE FROM runs WHERE activation = $1 AND started_at < $2 AND status <> $3"
        )
        .bind(&self.activation)
        .bind(before)
        .bind(RunStatus::Running.as_str())
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(prune)?;
        Ok(gone)
    }

    /// Appends rows to the run's log, numbered from `first_seq`.
    pub async fn log_rows(&mut self, first_seq: u64, rows: &[RowLog]) -> Result<()> {
        for (i, row) in rows.iter().enumerate() {
            let seq = i64::try_from(first_seq + i as u64).map_err(|_| Error::Corrupt {
                what: "run-log sequence",
                detail: "overflow".to_owned(),
            })?;
            on!(self.tx.executor(), |c| sqlx::query(
                "INSERT INTO run_rows (run_id, seq, row_key, reference, outcome, reason,
                                       external_id, details, at, contact_hash, request)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&self.run_id)
            .bind(seq)
            .bind(&row.key)
            .bind(&row.reference)
            .bind(row.outcome.as_str())
            .bind(row.reason.as_deref().map(crate::contact::scrub))
            .bind(&row.external_id)
            .bind(row.details.to_stored())
            .bind(&self.now)
            .bind(&row.contact_hash)
            .bind(row.request.as_ref().map(serde_json::Value::to_string))
            .execute(c)
            .await
            .map(|_| ()))
            .map_err(Error::db("write the run log"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_and_the_database_spell_states_alike() {
        for status in RunStatus::ALL {
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, status.as_str());
            assert_eq!(status.as_str().parse::<RunStatus>(), Ok(*status));
        }
        for outcome in RowOutcome::ALL {
            let json = serde_json::to_value(outcome).unwrap();
            assert_eq!(json, outcome.as_str());
            assert_eq!(outcome.as_str().parse::<RowOutcome>(), Ok(*outcome));
        }
        assert!("done".parse::<RunStatus>().is_err());
    }
}
