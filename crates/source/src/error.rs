//! Errors of reading a source.

/// What can go wrong while opening or reading a source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection URL's scheme names no supported database.
    #[error(
        "unsupported connection scheme `{scheme}`; supported: postgres, postgresql, mysql, mariadb, sqlite"
    )]
    UnsupportedScheme {
        /// The scheme found.
        scheme: String,
    },
    /// `batch_size` was zero.
    #[error("batch size must be at least 1")]
    InvalidBatchSize,
    /// The database could not be reached or opened.
    #[error("cannot connect to the source: {0}")]
    Connect(#[source] sqlx::Error),
    /// Connecting took longer than the connect timeout.
    #[error("cannot connect to the source within {0:?}")]
    ConnectTimeout(std::time::Duration),
    /// The database sent nothing for longer than the read timeout.
    #[error("the source sent no data for {0:?}; giving up")]
    ReadTimeout(std::time::Duration),
    /// The database sent data retl cannot decode.
    #[error("column `{column}`: {message}")]
    Decode {
        /// The column.
        column: String,
        /// What is wrong.
        message: String,
    },
    /// A needed column is not in the model.
    #[error("{}", missing(column, available, named_at.as_deref()))]
    ColumnMissing {
        /// The column asked for.
        column: String,
        /// The columns the model has.
        available: Vec<String>,
        /// Where the configuration names it (`file:line:column (field)`).
        named_at: Option<String>,
    },
    /// A column's database type has no Arrow mapping in retl.
    #[error("column `{column}` has database type {db_type}, which retl cannot read")]
    UnsupportedType {
        /// The column.
        column: String,
        /// Its type as the database names it.
        db_type: String,
    },
    /// Several column problems, all found at once.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Columns(Vec<Error>),
    /// A value does not fit the type its column was read as.
    #[error("column `{column}`, row {row}: a {found} value in a column read as {expected}")]
    ValueType {
        /// The column.
        column: String,
        /// The row number within the run, from 1.
        row: u64,
        /// The value's own type.
        found: String,
        /// The type the column is read as.
        expected: String,
    },
    /// retl's key table (`source.diff: warehouse`) could not be made, read or written.
    #[error(
        "cannot {what} of retl's key table `{table}`: {error}{}",
        hint(error, grant)
    )]
    KeyTable {
        /// The table, as `schema.name`.
        table: String,
        /// What retl was doing.
        what: String,
        /// The database's error.
        #[source]
        error: sqlx::Error,
        /// The GRANT (or step) that lets retl do it.
        grant: String,
    },
    /// An ADBC driver could not be found or loaded.
    #[error(
        "cannot load the ADBC driver `{driver}`: {message}. Install it (for example `dbc install {driver}`, which writes a driver manifest the driver manager finds, or `pip install adbc-driver-{driver}`, whose wheel holds the library) and give its name or the path of its library in source.adbc.driver"
    )]
    AdbcDriver {
        /// The driver as configured.
        driver: String,
        /// What the driver manager said.
        message: String,
    },
    /// An ADBC driver's library, given by its path, could not be loaded:
    /// the loader's own words (no install hint: the path was chosen).
    #[error("cannot load the ADBC driver library `{path}`: {message}")]
    AdbcLibrary {
        /// The library's path, as resolved.
        path: String,
        /// What the loader said (`dlopen`'s error).
        message: String,
    },
    /// An ADBC driver refused an operation.
    #[error("ADBC driver `{driver}`: {message}")]
    Adbc {
        /// The driver as configured.
        driver: String,
        /// What failed, and the driver's message.
        message: String,
        /// The ADBC status code (`IO`, `InvalidArguments`, …), when the
        /// driver gave one.
        status: Option<String>,
        /// The five-character SQLSTATE, when the driver gave one.
        sqlstate: Option<String>,
    },
    /// The model's SQL failed, before or during the read.
    #[error("source query failed: {0}")]
    Query(#[source] sqlx::Error),
}

impl Error {
    /// Each problem on its own (several for [`Error::Columns`]).
    pub fn problems(&self) -> Vec<String> {
        match self {
            Error::Columns(all) => all.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }
}

/// What [`Error::ColumnMissing`] says: the column, the one meant if one is
/// close (a column renamed in the model), the columns there are, and where
/// the configuration names it.
fn missing(column: &str, available: &[String], named_at: Option<&str>) -> String {
    let names: Vec<&str> = available.iter().map(String::as_str).collect();
    let hint = retl_config::closest(column, &names)
        .map(|meant| format!("did you mean `{meant}`? "))
        .unwrap_or_default();
    let at = named_at
        .map(|at| format!("; the configuration names it at {at}"))
        .unwrap_or_default();
    format!(
        "column `{column}` does not exist in the source; {hint}available columns: {}{at}",
        available.join(", ")
    )
}

/// The GRANT to run, when the database refused for want of a privilege.
fn hint(error: &sqlx::Error, grant: &str) -> String {
    let code = error
        .as_database_error()
        .and_then(sqlx::error::DatabaseError::code)
        .unwrap_or_default();
    // PostgreSQL's insufficient_privilege and invalid_schema_name-on-create;
    // MySQL's access denied to a database or a table; SQLite's read-only file.
    let denied = matches!(code.as_ref(), "42501" | "1044" | "1142" | "42000" | "8")
        || error.to_string().contains("denied")
        || error.to_string().contains("readonly");
    if denied {
        format!("; retl needs: {grant}")
    } else {
        String::new()
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
