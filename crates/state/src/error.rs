//! Errors of the state database.

use std::time::Duration;

/// What can go wrong with the state database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The state database cannot be opened (unreachable, locked, not writable).
    #[error("cannot open the state database {url}")]
    Open {
        /// The URL, password masked.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The state database's folder cannot be created.
    #[error("cannot create the state database's folder `{path}`")]
    CreateDir {
        /// The folder.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The URL names no state database retl can use.
    #[error("unsupported state database `{url}`: use sqlite://PATH or postgres://…")]
    UnsupportedUrl {
        /// The URL, password masked.
        url: String,
    },
    /// A statement failed.
    #[error("state database: {what}{}", if is_disk_full(source) { ": the disk it is on is full; free space there, then run again (the next run closes this one)" } else { "" })]
    Database {
        /// What was being done.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The database holds a value this version does not understand.
    #[error("state database: corrupt {what}: {detail}")]
    Corrupt {
        /// Which value (`ledger status`, `run counts`, ...).
        what: &'static str,
        /// What was found.
        detail: String,
    },
    /// The database was migrated by a newer retl.
    #[error(
        "the state database has schema version {found}; this retl knows up to {known}: upgrade retl"
    )]
    TooNew {
        /// The newest version applied to the database.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// Another run of the activation holds its lease.
    #[error("activation `{activation}` is already running ({holder}); its lease expires in {}s unless renewed", expires_in.as_secs())]
    Locked {
        /// The activation.
        activation: String,
        /// `host:pid:run_id` of the run holding it.
        holder: String,
        /// How long until the lease expires if not renewed.
        expires_in: Duration,
    },
    /// An interrupted run's deadline passed before the state database answered.
    #[error("the state database did not answer before the interrupt's deadline")]
    DeadlinePassed,
    /// A history cannot be moved from one activation to another.
    #[error("{0}")]
    Rename(String),
    /// This run's lease expired and another run took it over.
    #[error(
        "activation `{activation}`: this run lost its lease to another run and stopped without committing more"
    )]
    LeaseLost {
        /// The activation.
        activation: String,
    },
}

/// Whether a driver error says the database's disk (or file size limit) is full.
fn is_disk_full(error: &sqlx::Error) -> bool {
    let code = error
        .as_database_error()
        .and_then(sqlx::error::DatabaseError::code);
    match code.as_deref() {
        // SQLite's SQLITE_FULL (13, in the low byte of extended codes);
        // PostgreSQL's disk_full (53100).
        Some("53100") => true,
        Some(code) => code.parse::<i64>().is_ok_and(|n| n & 0xff == 13),
        None => false,
    }
}

/// SQLite's primary result codes that tell "busy" and "read-only" apart.
const SQLITE_BUSY: &str = "5";
const SQLITE_LOCKED: &str = "6";
const SQLITE_READONLY: &str = "8";

impl Error {
    /// Wraps a driver error with what was being done.
    pub(crate) fn db(what: &'static str) -> impl Fn(sqlx::Error) -> Error + Copy {
        move |source| Error::Database { what, source }
    }

    fn sqlx(&self) -> Option<&sqlx::Error> {
        match self {
            Error::Open { source, .. } | Error::Database { source, .. } => Some(source),
            _ => None,
        }
    }

    fn sqlite_code(&self) -> Option<String> {
        let code = self.sqlx()?.as_database_error()?.code()?;
        // Extended codes carry the primary code in their low byte.
        let n: i64 = code.parse().ok()?;
        Some((n & 0xff).to_string())
    }

    /// Whether the database's disk is full.
    pub fn is_disk_full(&self) -> bool {
        self.sqlx().is_some_and(is_disk_full)
    }

    /// Whether another connection holds the database's lock (SQLite busy or locked).
    pub fn is_busy(&self) -> bool {
        matches!(
            self.sqlite_code().as_deref(),
            Some(SQLITE_BUSY | SQLITE_LOCKED)
        )
    }

    /// Whether the database (or its file) cannot be written.
    pub fn is_read_only(&self) -> bool {
        self.sqlite_code().as_deref() == Some(SQLITE_READONLY)
            || self
                .sqlx()
                .and_then(sqlx::Error::as_database_error)
                .and_then(sqlx::error::DatabaseError::code)
                .is_some_and(|code| code == "25006")
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
