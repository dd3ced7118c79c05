//! The state database: SQLite (a file, the default) or PostgreSQL (shared).
//!
//! Queries are written once, with `$N` placeholders, which both drivers
//! accept; the few dialect differences (DDL, list lookups) branch on the
//! variant. [`on!`] runs one statement on whichever database is behind a
//! [`Db`] or a [`Tx`].

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};

use crate::{Error, Result};

/// A pool on the state database.
#[derive(Debug, Clone)]
pub enum Db {
    /// A SQLite file (WAL, `synchronous = FULL`).
    Sqlite(SqlitePool),
    /// A PostgreSQL database, shared by several machines.
    Postgres(PgPool),
}

/// A write transaction on the state database.
///
/// On SQLite it is `BEGIN IMMEDIATE`: it holds the write lock from its first
/// statement, so a check made in it (a lease) still holds at its commit.
#[derive(Debug)]
pub enum Tx {
    /// On SQLite.
    Sqlite(Transaction<'static, Sqlite>),
    /// On PostgreSQL.
    Postgres(Transaction<'static, Postgres>),
}

/// Runs `$body` with `$c` bound to the executor of whichever database `$target`
/// (a `&Db` or a `&mut Tx`) holds; each arm is type-checked on its own.
#[macro_export]
macro_rules! on {
    ($target:expr, |$c:ident| $body:expr) => {
        match $target {
            $crate::DbRef::Sqlite($c) => $body,
            $crate::DbRef::Postgres($c) => $body,
        }
    };
}

/// What [`on!`] matches on: `Db::executor()` or `Tx::executor()`.
pub enum DbRef<S, P> {
    /// A SQLite executor.
    Sqlite(S),
    /// A PostgreSQL executor.
    Postgres(P),
}

impl Db {
    /// Opens the state database at `url`: `sqlite://PATH` (created, with its
    /// folder, on first use) or `postgres://…`.
    pub async fn open(url: &str) -> Result<Db> {
        let scheme = url
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => {
                let path = url
                    .strip_prefix("sqlite://")
                    .or_else(|| url.strip_prefix("sqlite:"))
                    .unwrap_or_default();
                let file = std::path::Path::new(path.split('?').next().unwrap_or(path));
                if let Some(parent) = file.parent()
                    && !parent.as_os_str().is_empty()
                    && !path.starts_with(":memory:")
                {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        Error::Open(format!("cannot create `{}`: {e}", parent.display()))
                    })?;
                }
                let options: SqliteConnectOptions = url
                    .parse()
                    .map_err(|e: sqlx::Error| Error::Open(e.to_string()))?;
                let options = options
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // An outcome must survive a crash of this machine, not only of
                    // this process: a lost `sent` would send that invitation again.
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(10))
                    // A 32 MiB page cache per connection for the ledger's B-tree.
                    .pragma("cache_size", "-32768");
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(options)
                    .await
                    .map_err(|e| Error::Open(format!("cannot open the state database: {e}")))?;
                Ok(Db::Sqlite(pool))
            }
            "postgres" | "postgresql" => {
                let pool = PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(url)
                    .await
                    .map_err(|e| Error::Open(format!("cannot open the state database: {e}")))?;
                Ok(Db::Postgres(pool))
            }
            other => Err(Error::Open(format!(
                "unsupported state database scheme `{other}`: use sqlite://PATH or postgres://…"
            ))),
        }
    }

    /// The executor, for [`on!`].
    pub fn executor(&self) -> DbRef<&SqlitePool, &PgPool> {
        match self {
            Db::Sqlite(pool) => DbRef::Sqlite(pool),
            Db::Postgres(pool) => DbRef::Postgres(pool),
        }
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }
}

impl Tx {
    /// The executor, for [`on!`].
    pub fn executor(&mut self) -> DbRef<&mut sqlx::SqliteConnection, &mut sqlx::PgConnection> {
        match self {
            Tx::Sqlite(tx) => DbRef::Sqlite(&mut **tx),
            Tx::Postgres(tx) => DbRef::Postgres(&mut **tx),
        }
    }

    /// Makes concurrent schema changes wait for this transaction: two
    /// processes creating the tables of a new PostgreSQL database at the same
    /// moment would otherwise collide in its catalogue. (SQLite's write
    /// transaction already excludes the other.)
    pub async fn serialize_schema_changes(&mut self) -> Result<()> {
        if let Tx::Postgres(tx) = self {
            // Any fixed number: it names retl's schema lock.
            sqlx::query("SELECT pg_advisory_xact_lock(7265071101)")
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Commits.
    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// The current time as RFC 3339 text, UTC, milliseconds.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
