//! The state database: the ledger and the run logs, side by side.

use std::path::Path;
use std::time::Duration;

use retl_diff::{Db, Ledger, Tx, on};
use serde::Serialize;

use crate::{Error, Result};

/// Counts of a run, by what happened to each row read.
///
/// `read = already_sent + already_rejected + ignored_changed + new + baseline` and
/// `new = sent + rejected + failed + uncertain + skipped`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
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
    /// Keys already sent whose data has changed since: insert-only, not sent again.
    pub ignored_changed: u64,
    /// Keys already sent (or whose earlier delivery is uncertain), unchanged.
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
            && self.new == self.sent + self.rejected + self.failed + self.uncertain + self.skipped
    }
}

/// One run, as `retl run --json` and `retl runs list --json` print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    /// The run's id.
    pub run_id: String,
    /// The activation it ran.
    pub activation: String,
    /// `running`, `completed` or `failed`.
    pub status: String,
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
    /// `sent`, `rejected`, `failed`, `uncertain` or `skipped`.
    pub outcome: String,
    /// Why, for anything but `sent`.
    pub reason: Option<String>,
    /// The HTTP status of Trustpilot's last answer, if any.
    pub status_code: Option<u16>,
    /// Trustpilot's `errorCode`.
    pub error_code: Option<String>,
    /// Trustpilot's `correlationId`.
    pub correlation_id: Option<String>,
    /// An id Trustpilot returned for the invitation (or link), if any.
    pub invitation_id: Option<String>,
    /// The invitation link's URL (`target.kind: invitation_link`).
    pub link_url: Option<String>,
}

/// The right to run one activation, held by one process until it expires.
///
/// Every write of a run checks its fencing token, so a process whose lease
/// expired and was taken over can no longer change the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The activation.
    pub activation: String,
    /// `host:pid:run_id` of the holder.
    pub holder: String,
    /// Grows by one with every new holder.
    pub token: i64,
    /// How long the lease lasts without renewal.
    pub ttl: Duration,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// This machine's name, to recognise leases left by dead local processes.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "localhost".to_owned(), |h| h.trim().to_owned())
}

/// Whether a lease holder (`host:pid:…`) is a process of this machine that no longer exists.
fn holder_is_dead_here(holder: &str) -> bool {
    let mut parts = holder.splitn(3, ':');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    host == host_name()
        && pid.parse::<u32>().is_ok_and(|pid| {
            pid != std::process::id()
                && Path::new("/proc/self").exists()
                && !Path::new(&format!("/proc/{pid}")).exists()
        })
}

/// The state database.
#[derive(Debug, Clone)]
pub struct State {
    db: Db,
    ledger: Ledger,
    /// Where access tokens are cached between runs.
    token_cache: Option<std::path::PathBuf>,
}

fn now() -> String {
    retl_diff::now_text()
}

type RunRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
);
type LogRow = (
    String,
    Option<String>,
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn summary_from(
    (run_id, activation, status, started_at, finished_at, counts, error): RunRow,
) -> RunSummary {
    RunSummary {
        run_id,
        activation,
        status,
        counts: serde_json::from_str(&counts).unwrap_or_default(),
        started_at,
        finished_at,
        error,
    }
}

const RUN_COLUMNS: &str = "run_id, activation, status, started_at, finished_at, counts, error";

impl State {
    /// Opens (creating if needed) the state database: `sqlite://PATH` or `postgres://…`.
    pub async fn open(url: &str) -> Result<State> {
        let db = Db::open(url).await?;
        let mut tx = db.begin().await?;
        tx.serialize_schema_changes().await?;
        Ledger::create_in(&mut tx).await?;
        let statements = [
            "CREATE TABLE IF NOT EXISTS runs (
                run_id      TEXT PRIMARY KEY,
                activation  TEXT NOT NULL,
                status      TEXT NOT NULL,
                started_at  TEXT NOT NULL,
                finished_at TEXT,
                counts      TEXT NOT NULL,
                error       TEXT
             )",
            "CREATE INDEX IF NOT EXISTS runs_by_activation ON runs (activation, started_at)",
            "CREATE TABLE IF NOT EXISTS leases (
                activation    TEXT PRIMARY KEY,
                holder        TEXT NOT NULL,
                fencing_token BIGINT NOT NULL,
                expires_at    BIGINT NOT NULL
             )",
            "CREATE TABLE IF NOT EXISTS run_rows (
                run_id         TEXT NOT NULL,
                seq            BIGINT NOT NULL,
                row_key        TEXT NOT NULL,
                reference      TEXT,
                outcome        TEXT NOT NULL,
                reason         TEXT,
                status_code    BIGINT,
                error_code     TEXT,
                correlation_id TEXT,
                invitation_id  TEXT,
                link_url       TEXT,
                at             TEXT NOT NULL,
                PRIMARY KEY (run_id, seq)
             )",
        ];
        for statement in statements {
            on!(tx.executor(), |c| sqlx::query(statement)
                .execute(c)
                .await
                .map(|_| ()))?;
        }
        // Databases made before invitation links lack the column.
        match tx.executor() {
            retl_diff::DbRef::Postgres(c) => {
                sqlx::query("ALTER TABLE run_rows ADD COLUMN IF NOT EXISTS link_url TEXT")
                    .execute(c)
                    .await?;
            }
            retl_diff::DbRef::Sqlite(c) => {
                let has: Option<(String,)> = sqlx::query_as(
                    "SELECT name FROM pragma_table_info('run_rows') WHERE name = 'link_url'",
                )
                .fetch_optional(&mut *c)
                .await?;
                if has.is_none() {
                    sqlx::query("ALTER TABLE run_rows ADD COLUMN link_url TEXT")
                        .execute(c)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        let ledger = Ledger::new(db.clone());
        let token_cache = match &db {
            // Beside the database file.
            Db::Sqlite(_) => {
                let path = url
                    .strip_prefix("sqlite://")
                    .or_else(|| url.strip_prefix("sqlite:"))
                    .unwrap_or_default();
                let path = path.split('?').next().unwrap_or(path);
                (!path.is_empty() && !path.starts_with(":memory:")).then(|| {
                    Path::new(path)
                        .parent()
                        .unwrap_or(Path::new("."))
                        .join("tokens")
                })
            }
            // A shared database holds no bearer tokens: the user's cache folder does.
            Db::Postgres(_) => {
                std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/retl/tokens"))
            }
        };
        Ok(State {
            db,
            ledger,
            token_cache,
        })
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Where access tokens are cached between runs, if anywhere.
    pub fn token_cache(&self) -> Option<&Path> {
        self.token_cache.as_deref()
    }

    /// Takes the lease on `activation` for `ttl`, if nobody holds it. A lease
    /// that expired, or whose holder was a process of this machine that is
    /// gone (killed), is taken over with a new fencing token.
    pub async fn acquire_lease(
        &self,
        activation: &str,
        run_id: &str,
        ttl: Duration,
    ) -> Result<Lease> {
        let holder = format!("{}:{}:{run_id}", host_name(), std::process::id());
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let now = now_ms();
        let current: Option<(String, i64)> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT holder, expires_at FROM leases WHERE activation = $1"
        )
        .bind(activation)
        .fetch_optional(c)
        .await)?;
        // A dead local holder's lease is taken over at once, if still theirs.
        let dead = current
            .as_ref()
            .filter(|(h, _)| holder_is_dead_here(h))
            .map(|(h, _)| h.clone());
        let taken: Option<(i64,)> = on!(self.db.executor(), |c| {
            sqlx::query_as(
            "INSERT INTO leases (activation, holder, fencing_token, expires_at) VALUES ($1, $2, 1, $3)
             ON CONFLICT (activation) DO UPDATE SET
                holder = excluded.holder,
                fencing_token = leases.fencing_token + 1,
                expires_at = excluded.expires_at
             WHERE leases.expires_at < $4 OR leases.holder = $5
             RETURNING fencing_token",
        )
        .bind(activation)
        .bind(&holder)
        .bind(now.saturating_add(ttl_ms))
        .bind(now)
        .bind(&dead)
        .fetch_optional(c)
        .await
        })?;
        match taken {
            Some((token,)) => Ok(Lease {
                activation: activation.to_owned(),
                holder,
                token,
                ttl,
            }),
            None => {
                let (other, expires_at) = current.unwrap_or_default();
                Err(Error::Locked {
                    activation: activation.to_owned(),
                    holder: other,
                    expires_in: Duration::from_millis(u64::try_from(expires_at - now).unwrap_or(0)),
                })
            }
        }
    }

    /// Extends the lease; `false` if it was lost (expired and taken over).
    pub async fn renew_lease(&self, lease: &Lease) -> Result<bool> {
        let ttl_ms = i64::try_from(lease.ttl.as_millis()).unwrap_or(i64::MAX);
        let updated = on!(self.db.executor(), |c| sqlx::query(
            "UPDATE leases SET expires_at = $3 WHERE activation = $1 AND fencing_token = $2",
        )
        .bind(&lease.activation)
        .bind(lease.token)
        .bind(now_ms().saturating_add(ttl_ms))
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(updated == 1)
    }

    /// Gives the lease up.
    pub async fn release_lease(&self, lease: &Lease) -> Result<()> {
        on!(self.db.executor(), |c| sqlx::query(
            "DELETE FROM leases WHERE activation = $1 AND fencing_token = $2"
        )
        .bind(&lease.activation)
        .bind(lease.token)
        .execute(c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Fails unless `lease` is still held and unexpired: run first in each
    /// write transaction of a run, so a zombie cannot commit. (SQLite's write
    /// transactions hold the database's write lock from the start; PostgreSQL
    /// locks the lease row until the commit.)
    pub(crate) async fn check_lease(tx: &mut Tx, lease: &Lease) -> Result<()> {
        let row: Option<(i64, i64)> = match tx.executor() {
            retl_diff::DbRef::Sqlite(c) => {
                sqlx::query_as("SELECT fencing_token, expires_at FROM leases WHERE activation = $1")
                    .bind(&lease.activation)
                    .fetch_optional(c)
                    .await?
            }
            retl_diff::DbRef::Postgres(c) => {
                sqlx::query_as(
                    "SELECT fencing_token, expires_at FROM leases WHERE activation = $1 FOR SHARE",
                )
                .bind(&lease.activation)
                .fetch_optional(c)
                .await?
            }
        };
        match row {
            Some((token, expires_at)) if token == lease.token && expires_at > now_ms() => Ok(()),
            _ => Err(Error::LeaseLost {
                activation: lease.activation.clone(),
            }),
        }
    }

    /// Whether `activation` has a completed run (its first run is over).
    pub async fn has_completed_run(&self, activation: &str) -> Result<bool> {
        let any: Option<(i64,)> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT 1 FROM runs WHERE activation = $1 AND status = 'completed' LIMIT 1"
        )
        .bind(activation)
        .fetch_optional(c)
        .await)?;
        Ok(any.is_some())
    }

    /// Makes the rows a run logged as `uncertain`, and still uncertain in the
    /// ledger, retryable again: the next run of their activation sends them.
    /// Returns how many were released.
    pub async fn release_uncertain(&self, run_id: &str) -> Result<u64> {
        let now = now();
        let released = on!(self.db.executor(), |c| {
            sqlx::query(
            "UPDATE ledger SET status = 'failed',
                    last_error = 'released for resend by `retl runs resend`',
                    updated_at = $2
             WHERE status = 'uncertain'
               AND activation = (SELECT activation FROM runs WHERE run_id = $1)
               AND row_key IN (SELECT row_key FROM run_rows WHERE run_id = $1 AND outcome = 'uncertain')",
        )
        .bind(run_id)
        .bind(&now)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(released)
    }

    /// Records the start of a run.
    pub async fn start_run(&self, run_id: &str, activation: &str) -> Result<RunSummary> {
        let summary = RunSummary {
            run_id: run_id.to_owned(),
            activation: activation.to_owned(),
            status: "running".to_owned(),
            counts: Counts::default(),
            started_at: now(),
            finished_at: None,
            error: None,
        };
        let counts = serde_json::to_string(&summary.counts).unwrap_or_default();
        on!(self.db.executor(), |c| {
            sqlx::query(
            "INSERT INTO runs (run_id, activation, status, started_at, counts) VALUES ($1, $2, $3, $4, $5)"
        )
        .bind(&summary.run_id)
        .bind(&summary.activation)
        .bind(&summary.status)
        .bind(&summary.started_at)
        .bind(&counts)
        .execute(c)
        .await
        .map(|_| ())
        })?;
        Ok(summary)
    }

    /// Records the end of a run: its status, counts and error; sets `finished_at`.
    pub async fn finish_run(&self, summary: &mut RunSummary) -> Result<()> {
        summary.finished_at = Some(now());
        let counts = serde_json::to_string(&summary.counts).unwrap_or_default();
        on!(self.db.executor(), |c| {
            sqlx::query(
            "UPDATE runs SET status = $2, finished_at = $3, counts = $4, error = $5 WHERE run_id = $1"
        )
        .bind(&summary.run_id)
        .bind(&summary.status)
        .bind(&summary.finished_at)
        .bind(&counts)
        .bind(&summary.error)
        .execute(c)
        .await
        .map(|_| ())
        })?;
        Ok(())
    }

    /// Appends rows to a run's log inside the caller's transaction.
    pub(crate) async fn log_rows(
        tx: &mut Tx,
        run_id: &str,
        first_seq: u64,
        rows: &[RowLog],
    ) -> Result<()> {
        let at = now();
        for (i, row) in rows.iter().enumerate() {
            let seq = i64::try_from(first_seq + i as u64)
                .map_err(|_| Error::State("run log sequence overflow".into()))?;
            on!(tx.executor(), |c| {
                sqlx::query(
                "INSERT INTO run_rows (run_id, seq, row_key, reference, outcome, reason, status_code,
                                       error_code, correlation_id, invitation_id, link_url, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(run_id)
            .bind(seq)
            .bind(&row.key)
            .bind(&row.reference)
            .bind(&row.outcome)
            .bind(&row.reason)
            .bind(row.status_code.map(i64::from))
            .bind(&row.error_code)
            .bind(&row.correlation_id)
            .bind(&row.invitation_id)
            .bind(&row.link_url)
            .bind(&at)
            .execute(c)
            .await
            .map(|_| ())
            })?;
        }
        Ok(())
    }

    /// The most recent runs, newest first.
    pub async fn list_runs(&self, activation: Option<&str>, limit: u32) -> Result<Vec<RunSummary>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE CAST($1 AS TEXT) IS NULL OR activation = $1
             ORDER BY started_at DESC, run_id DESC LIMIT $2"
        );
        let rows: Vec<RunRow> = on!(self.db.executor(), |c| sqlx::query_as(&sql)
            .bind(activation)
            .bind(i64::from(limit))
            .fetch_all(c)
            .await)?;
        Ok(rows.into_iter().map(summary_from).collect())
    }

    /// One run, if it exists.
    pub async fn run(&self, run_id: &str) -> Result<Option<RunSummary>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1");
        let row: Option<RunRow> = on!(self.db.executor(), |c| sqlx::query_as(&sql)
            .bind(run_id)
            .fetch_optional(c)
            .await)?;
        Ok(row.map(summary_from))
    }

    /// The rows logged by a run, in the order they were recorded.
    pub async fn run_rows(&self, run_id: &str) -> Result<Vec<RowLog>> {
        let rows: Vec<LogRow> = on!(self.db.executor(), |c| {
            sqlx::query_as(
            "SELECT row_key, reference, outcome, reason, status_code, error_code, correlation_id,
                    invitation_id, link_url
             FROM run_rows WHERE run_id = $1 ORDER BY seq",
        )
        .bind(run_id)
        .fetch_all(c)
        .await
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    key,
                    reference,
                    outcome,
                    reason,
                    status,
                    error_code,
                    correlation_id,
                    invitation_id,
                    link_url,
                )| {
                    RowLog {
                        key,
                        reference,
                        outcome,
                        reason,
                        status_code: status.and_then(|s| u16::try_from(s).ok()),
                        error_code,
                        correlation_id,
                        invitation_id,
                        link_url,
                    }
                },
            )
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn state() -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("state.db").display());
        let state = State::open(&url).await.unwrap();
        (dir, state)
    }

    #[tokio::test]
    async fn a_held_lease_refuses_a_second_run_and_is_free_after_release() {
        let (_dir, state) = state().await;
        let lease = state
            .acquire_lease("orders", "run-a", Duration::from_mins(1))
            .await
            .unwrap();
        let err = state
            .acquire_lease("orders", "run-b", Duration::from_mins(1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert!(err.to_string().contains("run-a"), "{err}");
        state
            .acquire_lease("other", "run-c", Duration::from_mins(1))
            .await
            .unwrap();
        state.release_lease(&lease).await.unwrap();
        let again = state
            .acquire_lease("orders", "run-b", Duration::from_mins(1))
            .await
            .unwrap();
        assert_eq!(again.token, 1, "a released lease starts over");
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over_and_its_zombie_cannot_commit() {
        let (_dir, state) = state().await;
        let zombie = state
            .acquire_lease("orders", "run-a", Duration::from_millis(200))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let fresh = state
            .acquire_lease("orders", "run-b", Duration::from_mins(1))
            .await
            .unwrap();
        assert_eq!(fresh.token, zombie.token + 1);
        let mut tx = state.db().begin().await.unwrap();
        let err = State::check_lease(&mut tx, &zombie).await.unwrap_err();
        assert!(matches!(err, Error::LeaseLost { .. }));
        State::check_lease(&mut tx, &fresh).await.unwrap();
        tx.commit().await.unwrap();
        assert!(
            !state.renew_lease(&zombie).await.unwrap(),
            "the zombie cannot renew either"
        );
    }

    #[tokio::test]
    async fn a_lease_of_a_dead_local_process_is_taken_over_at_once() {
        let (_dir, state) = state().await;
        // A process id that cannot exist (above the kernel's pid_max).
        let retl_diff::Db::Sqlite(pool) = state.db() else {
            unreachable!()
        };
        sqlx::query("INSERT INTO leases VALUES ('orders', ?1, 7, ?2)")
            .bind(format!("{}:4294967:run-x", host_name()))
            .bind(now_ms() + 3_600_000)
            .execute(pool)
            .await
            .unwrap();
        let lease = state
            .acquire_lease("orders", "run-y", Duration::from_mins(1))
            .await
            .unwrap();
        assert_eq!(lease.token, 8);
    }
}
