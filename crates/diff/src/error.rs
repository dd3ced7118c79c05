//! Errors of hashing and of the ledger.

use arrow_schema::DataType;

/// What can go wrong while hashing rows or using the ledger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key or content column has a type the canonical encoding does not cover.
    #[error("column `{column}` has type {data_type}, which cannot be hashed")]
    UnsupportedType {
        /// The column's name.
        column: String,
        /// Its Arrow type.
        data_type: DataType,
    },
    /// The state database cannot be opened.
    #[error("{0}")]
    Open(String),
    /// The state database failed.
    #[error("ledger: {0}")]
    Database(sqlx::Error),
    /// The ledger holds a value this version does not understand.
    #[error("ledger: corrupt entry: {0}")]
    Corrupt(String),
}

// The database's words are in the message, so they are not also a `source()`
// (a chain printer would show them twice).
impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(e)
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
