//! The Arrow column types a source produces, and their builders.

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder,
    Int8Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder, UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow_schema::{DataType, TimeUnit};

/// What a database column becomes in Arrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Float32,
    Float64,
    /// Text, and everything read as exact text (decimals, UUIDs, JSON).
    Utf8,
    Binary,
    Date32,
    /// Microseconds since the epoch, UTC (timestamps without a zone are taken as UTC).
    Timestamp,
}

impl Kind {
    pub(crate) fn data_type(self) -> DataType {
        match self {
            Kind::Bool => DataType::Boolean,
            Kind::Int8 => DataType::Int8,
            Kind::Int16 => DataType::Int16,
            Kind::Int32 => DataType::Int32,
            Kind::Int64 => DataType::Int64,
            Kind::UInt8 => DataType::UInt8,
            Kind::UInt16 => DataType::UInt16,
            Kind::UInt32 => DataType::UInt32,
            Kind::UInt64 => DataType::UInt64,
            Kind::Float32 => DataType::Float32,
            Kind::Float64 => DataType::Float64,
            Kind::Utf8 => DataType::Utf8,
            Kind::Binary => DataType::Binary,
            Kind::Date32 => DataType::Date32,
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
        }
    }
}

/// A builder for one column of one batch.
pub(crate) enum Builder {
    Bool(BooleanBuilder),
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    UInt8(UInt8Builder),
    UInt16(UInt16Builder),
    UInt32(UInt32Builder),
    UInt64(UInt64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Date32(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
}

macro_rules! each_builder {
    ($self:expr, $b:ident => $body:expr) => {
        match $self {
            Builder::Bool($b) => $body,
            Builder::Int8($b) => $body,
            Builder::Int16($b) => $body,
            Builder::Int32($b) => $body,
            Builder::Int64($b) => $body,
            Builder::UInt8($b) => $body,
            Builder::UInt16($b) => $body,
            Builder::UInt32($b) => $body,
            Builder::UInt64($b) => $body,
            Builder::Float32($b) => $body,
            Builder::Float64($b) => $body,
            Builder::Utf8($b) => $body,
            Builder::Binary($b) => $body,
            Builder::Date32($b) => $body,
            Builder::Timestamp($b) => $body,
        }
    };
}

impl Builder {
    pub(crate) fn new(kind: Kind, rows: usize) -> Self {
        match kind {
            Kind::Bool => Builder::Bool(BooleanBuilder::with_capacity(rows)),
            Kind::Int8 => Builder::Int8(Int8Builder::with_capacity(rows)),
            Kind::Int16 => Builder::Int16(Int16Builder::with_capacity(rows)),
            Kind::Int32 => Builder::Int32(Int32Builder::with_capacity(rows)),
            Kind::Int64 => Builder::Int64(Int64Builder::with_capacity(rows)),
            Kind::UInt8 => Builder::UInt8(UInt8Builder::with_capacity(rows)),
            Kind::UInt16 => Builder::UInt16(UInt16Builder::with_capacity(rows)),
            Kind::UInt32 => Builder::UInt32(UInt32Builder::with_capacity(rows)),
            Kind::UInt64 => Builder::UInt64(UInt64Builder::with_capacity(rows)),
            Kind::Float32 => Builder::Float32(Float32Builder::with_capacity(rows)),
            Kind::Float64 => Builder::Float64(Float64Builder::with_capacity(rows)),
            Kind::Utf8 => Builder::Utf8(StringBuilder::with_capacity(rows, rows * 24)),
            Kind::Binary => Builder::Binary(BinaryBuilder::with_capacity(rows, rows * 16)),
            Kind::Date32 => Builder::Date32(Date32Builder::with_capacity(rows)),
            Kind::Timestamp => Builder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            ),
        }
    }

    pub(crate) fn append_null(&mut self) {
        each_builder!(self, b => b.append_null());
    }

    pub(crate) fn len(&self) -> usize {
        each_builder!(self, b => b.len())
    }

    pub(crate) fn finish(&mut self) -> ArrayRef {
        each_builder!(self, b => Arc::new(b.finish()))
    }
}

/// `name` quoted with `quote` (`"` or `` ` ``), the quote doubled inside; `a.b`
/// becomes `"a"."b"`. A name is never pasted into SQL unquoted.
pub(crate) fn quote_ident(name: &str, quote: char) -> String {
    let doubled: String = [quote, quote].iter().collect();
    name.split('.')
        .map(|part| format!("{quote}{}{quote}", part.replace(quote, &doubled)))
        .collect::<Vec<_>>()
        .join(".")
}

/// A quoted single column name (dots are part of the name).
pub(crate) fn quote_column(name: &str, quote: char) -> String {
    let doubled: String = [quote, quote].iter().collect();
    format!("{quote}{}{quote}", name.replace(quote, &doubled))
}

/// The user's query without trailing semicolons or whitespace, ready to nest.
pub(crate) fn nestable(query: &str) -> &str {
    query.trim().trim_end_matches(';').trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_per_part() {
        assert_eq!(
            quote_ident("analytics.orders", '"'),
            "\"analytics\".\"orders\""
        );
        assert_eq!(quote_ident("we\"ird", '"'), "\"we\"\"ird\"");
        assert_eq!(quote_ident("shop.or`ders", '`'), "`shop`.`or``ders`");
        assert_eq!(quote_column("a.b", '"'), "\"a.b\"");
        assert_eq!(nestable("select 1;  \n"), "select 1");
    }
}
