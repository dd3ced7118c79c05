//! The pool on the state database, and the transaction type behind [`Fenced`](crate::Fenced).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};

use retl_config::redact_url;

use crate::{Clock, Error, Result, SystemClock};

/// How to open the state database.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Where times come from (leases, run times).
    pub clock: Arc<dyn Clock>,
    /// How long a SQLite statement waits for another connection's lock
    /// before it fails with "database is locked".
    pub busy_timeout: Duration,
    /// How long opening a PostgreSQL state database may take.
    pub connect_timeout: Duration,
    /// Connections the pool may hold. The daemon's web side opens a pool of
    /// its own, so that its reads never take the connections runs need.
    pub max_connections: u32,
    /// How long one statement, begin or commit may take before it fails
    /// (see [`limited`]); on PostgreSQL also the server's `statement_timeout`
    /// and `idle_in_transaction_session_timeout` for retl's sessions.
    pub statement_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            clock: Arc::new(SystemClock),
            busy_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            max_connections: 4,
            statement_timeout: Duration::from_mins(1),
        }
    }
}

/// A pool on the state database.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    /// A SQLite file (WAL, `synchronous = FULL`).
    Sqlite(SqlitePool),
    /// A PostgreSQL database, shared by several machines.
    Postgres(PgPool),
}

/// A write transaction. On SQLite it is `BEGIN IMMEDIATE`: it holds the write
/// lock from its first statement, so a check made in it still holds at its commit.
#[derive(Debug)]
pub(crate) enum Tx {
    /// On SQLite.
    Sqlite(Transaction<'static, Sqlite>),
    /// On PostgreSQL.
    Postgres(Transaction<'static, Postgres>),
}

/// Runs `$body` with `$c` bound to the executor of whichever database `$target`
/// (a `&Db` or a `&mut Tx`) holds; each arm is type-checked on its own.
/// Every statement is bounded by [`limited`]: a connection that goes
/// silent fails the statement instead of hanging the run.
macro_rules! on {
    ($target:expr, |$c:ident| $body:expr) => {
        $crate::db::limited(async {
            match $target {
                $crate::db::DbRef::Sqlite($c) => $body,
                $crate::db::DbRef::Postgres($c) => $body,
            }
        })
        .await
    };
}
pub(crate) use on;

/// How long one statement (or a begin, or a commit) of the state database
/// may take, in milliseconds: [`OpenOptions::statement_timeout`] (on SQLite
/// at least the busy timeout and 5 s), set when a state is opened. One value
/// for the process: its states are opened with the same options.
static STATEMENT_LIMIT_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(60_000);

/// `work` (a statement), failed with a timeout once the statement limit
/// passes. The time limit is kept here, on the client: a connection whose
/// network went silent (a frozen proxy, a dead server) gets no answer at
/// all, so no server-side limit can end the wait.
pub(crate) async fn limited<T>(
    work: impl Future<Output = std::result::Result<T, sqlx::Error>>,
) -> std::result::Result<T, sqlx::Error> {
    let limit =
        Duration::from_millis(STATEMENT_LIMIT_MS.load(std::sync::atomic::Ordering::Relaxed));
    match tokio::time::timeout(limit, work).await {
        Ok(done) => done,
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the state database did not answer within {} (state_timeout)",
                humantime::format_duration(limit)
            ),
        ))),
    }
}

/// What [`on!`] matches on: `Db::executor()` or `Tx::executor()`.
pub(crate) enum DbRef<S, P> {
    /// A SQLite executor.
    Sqlite(S),
    /// A PostgreSQL executor.
    Postgres(P),
}

/// The file of a `sqlite://` URL (`None` for other schemes and in-memory databases).
pub(crate) fn sqlite_path(url: &str) -> Option<PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or(path);
    (!path.starts_with(":memory:")).then(|| PathBuf::from(path))
}

/// An exclusive lock on `<database>.lock` beside a SQLite state file, held
/// while the database is opened and migrated: two processes creating a new
/// state database at the same moment would otherwise collide in SQLite's own
/// locks ("database is locked") before either could take the lease.
#[derive(Debug)]
pub(crate) struct CreationLock(
    #[allow(dead_code, reason = "held for its lock")] Option<std::fs::File>,
);

impl CreationLock {
    /// Waits up to `timeout` for the lock of the SQLite file `path`.
    pub(crate) async fn take(path: &Path, timeout: Duration) -> Result<CreationLock> {
        let mut name = path.as_os_str().to_owned();
        name.push(".lock");
        let lock_path = PathBuf::from(name);
        let file = match std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
        {
            Ok(file) => file,
            // A folder retl may not write to (a read-only state): nothing can be
            // created there either, so there is nothing to serialise.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Ok(CreationLock(None));
            }
            Err(source) => {
                return Err(Error::CreateDir {
                    path: lock_path,
                    source,
                });
            }
        };
        let give_up = tokio::time::Instant::now() + timeout;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(CreationLock(Some(file))),
                Err(std::fs::TryLockError::WouldBlock) if tokio::time::Instant::now() < give_up => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::CreateDir {
                        path: lock_path,
                        source: std::io::Error::new(
                            std::io::ErrorKind::WouldBlock,
                            "another process is creating the state database",
                        ),
                    });
                }
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(Error::CreateDir {
                        path: lock_path,
                        source,
                    });
                }
            }
        }
    }
}

impl Db {
    /// Opens the state database at `url`: `sqlite://PATH` (created, with its
    /// folder, on first use) or `postgres://…`.
    pub(crate) async fn open(url: &str, options: &OpenOptions) -> Result<Db> {
        // SQLite's BEGIN waits up to the busy timeout for another writer.
        let limit = if url.starts_with("sqlite:") {
            options
                .statement_timeout
                .max(options.busy_timeout + Duration::from_secs(5))
        } else {
            options.statement_timeout
        };
        STATEMENT_LIMIT_MS.store(
            u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        let scheme = url
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let open_error = |source| Error::Open {
            url: redact_url(url),
            source,
        };
        match scheme.as_str() {
            "sqlite" => {
                // Its folder was made by `State::open_with`, under the creation lock.
                let connect: SqliteConnectOptions = url.parse().map_err(open_error)?;
                let connect = connect
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // An outcome must survive a crash of this machine, not only of
                    // this process: a lost `sent` would send that invitation again.
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(options.busy_timeout)
                    // An 8 MiB page cache per connection: the interior pages of
                    // a ledger of tens of millions of keys. A candidate lookup
                    // reads pages it will not read again; a larger cache only
                    // holds them (it is retl's resident memory).
                    .pragma("cache_size", "-8192");
                let pool = SqlitePoolOptions::new()
                    .max_connections(options.max_connections.max(1))
                    .acquire_timeout(options.busy_timeout.max(Duration::from_secs(1)))
                    // A COMMIT that failed (a full disk) can leave a connection
                    // that believes it is still in a transaction, which would
                    // refuse every later BEGIN: such a connection is closed,
                    // not reused. The SELECT runs after any rollback queued
                    // when its transaction was dropped.
                    .before_acquire(|conn, _| {
                        Box::pin(async move {
                            sqlx::Executor::execute(&mut *conn, "SELECT 1").await?;
                            Ok(!sqlx::Connection::is_in_transaction(conn))
                        })
                    })
                    .connect_with(connect)
                    .await
                    .map_err(open_error)?;
                Ok(Db::Sqlite(pool))
            }
            "postgres" | "postgresql" => {
                let limit = format!("{}ms", options.statement_timeout.as_millis());
                let connect: PgConnectOptions = url.parse().map_err(open_error)?;
                // The server ends what a client that went silent left: a
                // statement, or a transaction holding the lease row's lock;
                // and probes the connection (client-side TCP keepalive is not
                // among the driver's settings, hence `limited` on our side).
                let connect = connect.options([
                    ("statement_timeout", limit.as_str()),
                    ("idle_in_transaction_session_timeout", limit.as_str()),
                    ("tcp_keepalives_idle", "30"),
                    ("tcp_keepalives_interval", "10"),
                    ("tcp_keepalives_count", "3"),
                ]);
                // Connect once first, so that an unreachable server fails at once
                // with the driver's own words ("connection refused"), not after
                // the pool's retries as "pool timed out".
                let probe = tokio::time::timeout(
                    options.connect_timeout,
                    <sqlx::PgConnection as sqlx::Connection>::connect_with(&connect),
                )
                .await
                .map_err(|_| open_error(sqlx::Error::PoolTimedOut))?
                .map_err(open_error)?;
                sqlx::Connection::close(probe).await.ok();
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections.max(1))
                    .acquire_timeout(options.connect_timeout)
                    .connect_with(connect)
                    .await
                    .map_err(open_error)?;
                Ok(Db::Postgres(pool))
            }
            _ => Err(Error::UnsupportedUrl {
                url: redact_url(url),
            }),
        }
    }

    /// The executor, for [`on!`].
    pub(crate) fn executor(&self) -> DbRef<&SqlitePool, &PgPool> {
        match self {
            Db::Sqlite(pool) => DbRef::Sqlite(pool),
            Db::Postgres(pool) => DbRef::Postgres(pool),
        }
    }

    /// Starts a write transaction.
    pub(crate) async fn begin(&self) -> Result<Tx> {
        let begin = Error::db("begin a transaction");
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(
                limited(pool.begin_with("BEGIN IMMEDIATE"))
                    .await
                    .map_err(begin)?,
            ),
            Db::Postgres(pool) => Tx::Postgres(limited(pool.begin()).await.map_err(begin)?),
        })
    }
}

impl Tx {
    /// The executor, for [`on!`].
    pub(crate) fn executor(
        &mut self,
    ) -> DbRef<&mut sqlx::SqliteConnection, &mut sqlx::PgConnection> {
        match self {
            Tx::Sqlite(tx) => DbRef::Sqlite(&mut **tx),
            Tx::Postgres(tx) => DbRef::Postgres(&mut **tx),
        }
    }

    /// Commits.
    pub(crate) async fn commit(self) -> Result<()> {
        let commit = Error::db("commit");
        match self {
            Tx::Sqlite(tx) => limited(tx.commit()).await.map_err(commit),
            Tx::Postgres(tx) => limited(tx.commit()).await.map_err(commit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_statement_that_gets_no_answer_fails_at_the_limit() {
        let silent = std::future::pending::<std::result::Result<(), sqlx::Error>>();
        let error = limited(silent).await.unwrap_err();
        assert!(
            error.to_string().contains("did not answer within"),
            "{error}"
        );
        assert!(limited(async { Ok::<_, sqlx::Error>(7) }).await.is_ok());
    }
}
