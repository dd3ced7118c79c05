//! The state database: what each activation sent, what each run did, and who
//! may run an activation now.
//!
//! It is a SQLite file by default, or PostgreSQL for deployments that share
//! one state between machines ([`State::open`]). Queries are written once,
//! with `$N` placeholders both drivers accept; the few dialect differences
//! (DDL, list lookups, row locks) branch on the pool's variant.
//!
//! - **Migrations** ([`migrate`]): a `schema_migrations` table records which
//!   versions are applied; each version is applied once, in order, inside one
//!   transaction that also serialises concurrent first opens. Version 1 is the
//!   schema of the first releases, so their state databases open unchanged.
//! - **The ledger**: per activation, key hash → content hash, status,
//!   attempts, row key, reference, first and last run, last error. It is the
//!   source of truth of what was sent; nothing is ever pruned from it.
//!   Settled keys are also kept in sorted blocks ([`segments`]): the baseline
//!   lives there only, and a full scan loads them into memory at once.
//! - **The run log**: one row per run ([`RunSummary`], with its [`Counts`])
//!   and one row per row of a run that needed a decision ([`RowLog`]).
//! - **Leases**: one row per activation being run, with a holder, an expiry
//!   and a fencing token that grows with every new holder.
//!
//! # Fenced writes
//!
//! Every write a run makes goes through a [`Fenced`] transaction, and the
//! only way to get one is [`State::fenced`], which checks the run's lease
//! first (under SQLite's write lock, or `FOR SHARE` on the PostgreSQL lease
//! row, held until the commit). A run whose lease was taken over (a zombie,
//! paused past its expiry) therefore cannot change the ledger or the run log:
//! its next write fails with [`Error::LeaseLost`]. The raw transaction type is
//! private to this crate, so an unfenced write cannot be written elsewhere.
//!
//! Times come from an injected [`Clock`], so lease expiry is tested without
//! sleeping.

mod allowance;
mod approvals;
mod clock;
mod contact;
mod cursor;
mod db;
mod dedupe;
mod error;
mod forget;
mod incidents;
mod lease;
mod ledger;
pub mod migrate;
mod overview;
mod runs;
mod search;
mod segments;
mod settle;
mod sources;
pub mod text;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use approvals::Approval;
#[cfg(test)]
pub(crate) use clock::ManualClock;
pub use clock::{Clock, OffsetClock, SystemClock};
pub use contact::ContactKey;
pub use cursor::Cursor;
pub use db::OpenOptions;
pub use dedupe::{Asking, Earlier};
pub use error::{Error, Result};
pub use lease::{Fenced, Lease};
pub use ledger::{Attention, Outcome, Recovered};
use retl_config::redact_url;
pub use runs::{Counts, Details, RowLog, RowOutcome, RunStatus, RunSummary};
pub use search::{FoundRow, RunFilter, RunMatch};
pub use segments::{Lookup, MAX_BLOCKS};
pub use settle::{BaselineKey, Settlement};
pub use sources::Renamed;

use db::Db;

/// The state database.
#[derive(Debug, Clone)]
pub struct State {
    db: Db,
    clock: Arc<dyn Clock>,
    /// Where access tokens are cached between runs.
    token_cache: Option<PathBuf>,
    /// The URL it was opened with, password masked.
    url: String,
}

/// `url` with a relative SQLite path made absolute against `project`, so the
/// state never depends on the working directory (a lost ledger would invite
/// everyone again). Other URLs, absolute paths and in-memory databases are
/// returned as they are.
pub fn resolve_url(url: &str, project: &Path) -> String {
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return url.to_owned();
    };
    let (path, query) = rest
        .split_once('?')
        .map_or((rest, None), |(p, q)| (p, Some(q)));
    if path.is_empty() || path.starts_with(":memory:") || Path::new(path).is_absolute() {
        return url.to_owned();
    }
    let absolute = project.join(path);
    match query {
        Some(query) => format!("sqlite://{}?{query}", absolute.display()),
        None => format!("sqlite://{}", absolute.display()),
    }
}

impl State {
    /// Opens (creating if needed, and migrating) the state database:
    /// `sqlite://PATH` or `postgres://…`, with the system clock.
    pub async fn open(url: &str) -> Result<State> {
        Self::open_with(url, &OpenOptions::default()).await
    }

    /// [`open`](Self::open) with options: the clock, SQLite's busy timeout.
    pub async fn open_with(url: &str, options: &OpenOptions) -> Result<State> {
        // A new SQLite file is created and migrated by one process at a time.
        let creating = match db::sqlite_path(url).filter(|p| !p.as_os_str().is_empty()) {
            Some(path) => {
                if let Some(parent) = path.parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent).map_err(|source| Error::CreateDir {
                        path: parent.to_owned(),
                        source,
                    })?;
                }
                Some(db::CreationLock::take(&path, options.busy_timeout).await?)
            }
            None => None,
        };
        let db = Db::open(url, options).await?;
        migrate::run(&db, options.clock.as_ref()).await?;
        drop(creating);
        let token_cache = match &db {
            // Beside the database file.
            Db::Sqlite(_) => db::sqlite_path(url)
                .filter(|path| !path.as_os_str().is_empty())
                .map(|path| path.parent().unwrap_or(Path::new(".")).join("tokens")),
            // A shared database holds no bearer tokens: the user's cache folder does.
            Db::Postgres(_) => {
                std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/retl/tokens"))
            }
        };
        Ok(State {
            db,
            clock: options.clock.clone(),
            token_cache,
            url: redact_url(url),
        })
    }

    /// `url` with any password replaced by `***`, as [`url`](Self::url) shows it.
    pub fn masked(url: &str) -> String {
        redact_url(url)
    }

    /// The URL the state was opened with, any password replaced by `***`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where access tokens are cached between runs, if anywhere.
    pub fn token_cache(&self) -> Option<&Path> {
        self.token_cache.as_deref()
    }

    /// The clock every time of the state comes from.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The current time as RFC 3339 text, UTC, milliseconds (as stored).
    fn now_text(&self) -> String {
        self.clock
            .now()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

/// A state in a new SQLite file, for unit tests.
#[cfg(test)]
pub(crate) async fn test_state() -> (tempfile::TempDir, State) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let url = format!("sqlite://{}", dir.path().join("state.db").display());
    (dir, State::open(&url).await.expect("a new state opens"))
}

/// The lease of a run `run-1` of `activation`, for unit tests.
#[cfg(test)]
pub(crate) async fn test_lease(state: &State, activation: &str) -> Lease {
    state
        .acquire_lease(activation, "run-1", std::time::Duration::from_mins(1))
        .await
        .expect("a free lease is taken")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_sqlite_paths_resolve_against_the_project() {
        let project = Path::new("/srv/shop");
        assert_eq!(
            resolve_url("sqlite://.retl/state.db", project),
            "sqlite:///srv/shop/.retl/state.db"
        );
        assert_eq!(
            resolve_url("sqlite://state.db?mode=ro", project),
            "sqlite:///srv/shop/state.db?mode=ro"
        );
        for kept in [
            "sqlite:///var/lib/retl/state.db",
            "sqlite::memory:",
            "postgres://retl@db/state",
        ] {
            assert_eq!(resolve_url(kept, project), kept);
        }
    }
}
