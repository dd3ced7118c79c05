//! Reading one cell of an Arrow array as text, or a text as a time.

use std::borrow::Cow;

use arrow_array::{
    Array, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int64Array, LargeStringArray, StringArray,
    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// A cell that cannot be read as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CellError {
    /// The column's type has no text form for an invitation.
    #[error("type {0} cannot be mapped to an invitation field")]
    Unsupported(DataType),
    /// A binary cell whose bytes are not UTF-8 text.
    #[error("the bytes are not UTF-8 text")]
    NotText,
    /// A timestamp or date outside chrono's range.
    #[error("timestamp {0} is out of range")]
    OutOfRange(i64),
    /// A semi-structured (JSON) cell mapped to a list field that is not a
    /// JSON array of strings: what it holds instead.
    #[error(
        "holds {0}, not a JSON array of strings; a list field reads a semi-structured column only as an array of strings: extract one in the source's `query:` (Snowflake: ARRAY_CONSTRUCT(payload:sku::string) AS skus; BigQuery: TO_JSON(ARRAY[JSON_VALUE(payload, '$.sku')]); PostgreSQL: to_jsonb(ARRAY[payload->>'sku']) AS skus)"
    )]
    NotAList(&'static str),
}

/// Whether columns of this type hold integers (of any width or sign).
pub fn is_integer(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// Whether [`cell_text`] can read columns of this type.
pub fn is_supported(data_type: &DataType) -> bool {
    is_integer(data_type)
        || matches!(
            data_type,
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Binary
                | DataType::Boolean
                | DataType::Float32
                | DataType::Float64
                | DataType::Decimal128(_, _)
                | DataType::Date32
                | DataType::Timestamp(_, _)
                | DataType::Null
        )
}

macro_rules! downcast {
    ($array:expr, $ty:ty) => {
        $array
            .as_any()
            .downcast_ref::<$ty>()
            .expect("array type matches its data type")
    };
}

/// The text of `array[row]`, or `None` for NULL.
///
/// Binary cells are read as text when their bytes are UTF-8.
/// Integers and decimals keep every digit (never through `f64`); timestamps are
/// rendered as ISO 8601, with a `Z` when the column carries a time zone (the
/// value is then UTC).
pub fn cell_text(array: &dyn Array, row: usize) -> Result<Option<Cow<'_, str>>, CellError> {
    if array.is_null(row) {
        return Ok(None);
    }
    let text: Cow<'_, str> = match array.data_type() {
        DataType::Utf8 => Cow::Borrowed(downcast!(array, StringArray).value(row)),
        DataType::LargeUtf8 => Cow::Borrowed(downcast!(array, LargeStringArray).value(row)),
        // Text the database marks binary (a MariaDB JSON or `_bin`-collated column)
        // is text all the same; real binary data is refused, cell by cell.
        DataType::Binary => Cow::Borrowed(
            std::str::from_utf8(downcast!(array, BinaryArray).value(row))
                .map_err(|_| CellError::NotText)?,
        ),
        DataType::Boolean => Cow::Borrowed(if downcast!(array, BooleanArray).value(row) {
            "true"
        } else {
            "false"
        }),
        DataType::Int8 => downcast!(array, Int8Array).value(row).to_string().into(),
        DataType::Int16 => downcast!(array, Int16Array).value(row).to_string().into(),
        DataType::Int32 => downcast!(array, Int32Array).value(row).to_string().into(),
        DataType::Int64 => downcast!(array, Int64Array).value(row).to_string().into(),
        DataType::UInt8 => downcast!(array, UInt8Array).value(row).to_string().into(),
        DataType::UInt16 => downcast!(array, UInt16Array).value(row).to_string().into(),
        DataType::UInt32 => downcast!(array, UInt32Array).value(row).to_string().into(),
        DataType::UInt64 => downcast!(array, UInt64Array).value(row).to_string().into(),
        DataType::Float32 => downcast!(array, Float32Array).value(row).to_string().into(),
        DataType::Float64 => downcast!(array, Float64Array).value(row).to_string().into(),
        DataType::Decimal128(_, _) => downcast!(array, Decimal128Array)
            .value_as_string(row)
            .into(),
        DataType::Date32 => {
            let days = downcast!(array, Date32Array).value(row);
            let date = NaiveDate::from_ymd_opt(1970, 1, 1)
                .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days(days.into())))
                .ok_or(CellError::OutOfRange(days.into()))?;
            date.format("%Y-%m-%d").to_string().into()
        }
        DataType::Timestamp(unit, tz) => {
            let value = match unit {
                TimeUnit::Second => downcast!(array, TimestampSecondArray).value(row),
                TimeUnit::Millisecond => downcast!(array, TimestampMillisecondArray).value(row),
                TimeUnit::Microsecond => downcast!(array, TimestampMicrosecondArray).value(row),
                TimeUnit::Nanosecond => downcast!(array, TimestampNanosecondArray).value(row),
            };
            let at = timestamp(*unit, value).ok_or(CellError::OutOfRange(value))?;
            let mut text = at.format("%Y-%m-%dT%H:%M:%S%.f").to_string();
            if tz.is_some() {
                text.push('Z');
            }
            text.into()
        }
        other => return Err(CellError::Unsupported(other.clone())),
    };
    Ok(Some(text))
}

fn timestamp(unit: TimeUnit, value: i64) -> Option<NaiveDateTime> {
    let (secs, nanos) = match unit {
        TimeUnit::Second => (value, 0),
        TimeUnit::Millisecond => (value.div_euclid(1_000), value.rem_euclid(1_000) * 1_000_000),
        TimeUnit::Microsecond => (
            value.div_euclid(1_000_000),
            value.rem_euclid(1_000_000) * 1_000,
        ),
        TimeUnit::Nanosecond => (
            value.div_euclid(1_000_000_000),
            value.rem_euclid(1_000_000_000),
        ),
    };
    let nanos = u32::try_from(nanos).ok()?;
    DateTime::from_timestamp(secs, nanos).map(|at| at.naive_utc())
}

/// Reads a time written in a cell: RFC 3339 with an offset (converted to
/// UTC), `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DDTHH:MM:SS` with optional fractions
/// (taken as UTC already), or a bare date (midnight UTC).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(at.and_utc());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(format!(
        "`{text}` is not a timestamp (expected e.g. 2026-05-01T09:30:00Z or 2026-05-01 09:30:00)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn times_are_read_as_utc() {
        let utc = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        assert_eq!(
            parse_time("2026-05-01T11:30:00+02:00").unwrap(),
            utc("2026-05-01T09:30:00Z")
        );
        assert_eq!(
            parse_time("2026-05-01 09:30:00.250").unwrap(),
            utc("2026-05-01T09:30:00.250Z")
        );
        assert_eq!(
            parse_time("2026-05-01").unwrap(),
            utc("2026-05-01T00:00:00Z")
        );
        assert!(parse_time("next tuesday").is_err());
    }

    #[test]
    fn integers_keep_every_digit_and_nulls_stay_null() {
        let array = Int64Array::from(vec![Some(i64::MAX), None, Some(i64::MIN)]);
        assert_eq!(
            cell_text(&array, 0).unwrap().as_deref(),
            Some("9223372036854775807")
        );
        assert_eq!(cell_text(&array, 1).unwrap(), None);
        assert_eq!(
            cell_text(&array, 2).unwrap().as_deref(),
            Some("-9223372036854775808")
        );
    }

    #[test]
    fn zoned_timestamps_render_as_utc() {
        let array = TimestampMicrosecondArray::from(vec![1_700_000_000_123_456])
            .with_timezone(Arc::<str>::from("UTC"));
        assert_eq!(
            cell_text(&array, 0).unwrap().as_deref(),
            Some("2023-11-14T22:13:20.123456Z")
        );
    }

    #[test]
    fn decimals_render_exactly() {
        let array = Decimal128Array::from(vec![12_345_678_901_234_567_890_i128])
            .with_precision_and_scale(38, 10)
            .unwrap();
        assert_eq!(
            cell_text(&array, 0).unwrap().as_deref(),
            Some("1234567890.1234567890")
        );
    }
}
