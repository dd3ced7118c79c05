//! Errors of binding a mapping to a source schema.

/// Why a mapping cannot be applied to a source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A mapped column is not among the source's columns.
    #[error("mapping.{field}: column `{column}` does not exist in the source; available columns: {}", available.join(", "))]
    ColumnMissing {
        /// The field the column was mapped to.
        field: &'static str,
        /// The column the mapping names.
        column: String,
        /// The columns the source does have.
        available: Vec<String>,
    },
    /// A mapped column has an Arrow type no field can take.
    #[error(
        "mapping.{field}: column `{column}` has type {data_type}, which cannot be mapped to a field"
    )]
    UnsupportedType {
        /// The field the column was mapped to.
        field: &'static str,
        /// The column.
        column: String,
        /// Its Arrow type.
        data_type: arrow_schema::DataType,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
