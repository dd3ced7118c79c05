//! Errors of hashing.

use arrow_schema::DataType;

/// What can go wrong while hashing rows.
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
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
