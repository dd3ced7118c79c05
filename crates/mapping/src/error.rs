//! Errors raised while building a [`Mapper`](crate::Mapper).

/// Why a mapping cannot be applied to a source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A mapped column is not among the source's columns.
    #[error("mapping.{field}: column `{column}` does not exist in the source; available columns: {}", available.join(", "))]
    ColumnMissing {
        /// The Trustpilot field the column was mapped to.
        field: crate::Field,
        /// The column the mapping names.
        column: String,
        /// The columns the source does have.
        available: Vec<String>,
    },
    /// A mapped column has an Arrow type no invitation field can take.
    #[error(
        "mapping.{field}: column `{column}` has type {data_type}, which cannot be mapped to an invitation field"
    )]
    UnsupportedType {
        /// The Trustpilot field the column was mapped to.
        field: crate::Field,
        /// The column.
        column: String,
        /// Its Arrow type.
        data_type: arrow_schema::DataType,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
