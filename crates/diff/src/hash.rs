//! Canonical row hashing over Arrow arrays.
//!
//! Every value is written as a one-byte type tag followed by a fixed-width or
//! length-prefixed payload, and a row's hash is SHA-256 over its values in the
//! given column order, truncated to 16 bytes. The tags group types by meaning,
//! not by width: every integer type encodes as the same 128-bit integer, so a
//! key column migrated from `int4` to `int8` keeps its identity; every timestamp
//! encodes as UTC nanoseconds.
//!
//! Hashing runs column by column: one pass per column over the whole batch,
//! feeding each row's hasher, so the type dispatch happens once per column,
//! not once per cell.

use arrow_array::{
    Array, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int64Array, LargeBinaryArray, LargeStringArray, RecordBatch,
    StringArray, TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, TimeUnit};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// A 16-byte truncation of a row's SHA-256.
pub type RowHash = [u8; 16];

const NULL: u8 = 0;
const INTEGER: u8 = 1;
const FLOAT: u8 = 2;
const TEXT: u8 = 3;
const BYTES: u8 = 4;
const BOOLEAN: u8 = 5;
const DECIMAL: u8 = 6;
const DATE: u8 = 7;
const TIMESTAMP: u8 = 8;

/// Hashes the given columns of every row of `batch`, in the order given.
pub fn hash_rows(batch: &RecordBatch, columns: &[usize]) -> Result<Vec<RowHash>> {
    let mut hashers = vec![Sha256::new(); batch.num_rows()];
    for &index in columns {
        let array = batch.column(index);
        encode_column(array.as_ref(), &mut hashers).ok_or_else(|| Error::UnsupportedType {
            column: batch.schema().field(index).name().clone(),
            data_type: array.data_type().clone(),
        })?;
    }
    Ok(hashers
        .into_iter()
        .map(|h| {
            let digest = h.finalize();
            let mut out = [0u8; 16];
            out.copy_from_slice(&digest[..16]);
            out
        })
        .collect())
}

/// Feeds each row's value of `array` into its hasher; `None` if the type is not covered.
fn encode_column(array: &dyn Array, hashers: &mut [Sha256]) -> Option<()> {
    macro_rules! each {
        ($ty:ty, |$v:ident, $h:ident| $body:expr) => {{
            let typed = array.as_any().downcast_ref::<$ty>()?;
            for (row, $h) in hashers.iter_mut().enumerate() {
                if typed.is_null(row) {
                    $h.update([NULL]);
                } else {
                    let $v = typed.value(row);
                    $body;
                }
            }
        }};
    }
    fn integer(h: &mut Sha256, v: i128) {
        h.update([INTEGER]);
        h.update(v.to_le_bytes());
    }
    fn text(h: &mut Sha256, tag: u8, v: &[u8]) {
        h.update([tag]);
        h.update((v.len() as u64).to_le_bytes());
        h.update(v);
    }
    fn timestamp(h: &mut Sha256, v: i64, nanos_per_unit: i128) {
        h.update([TIMESTAMP]);
        h.update((i128::from(v) * nanos_per_unit).to_le_bytes());
    }
    match array.data_type() {
        DataType::Null => hashers.iter_mut().for_each(|h| h.update([NULL])),
        DataType::Boolean => each!(BooleanArray, |v, h| h.update([BOOLEAN, u8::from(v)])),
        DataType::Int8 => each!(Int8Array, |v, h| integer(h, v.into())),
        DataType::Int16 => each!(Int16Array, |v, h| integer(h, v.into())),
        DataType::Int32 => each!(Int32Array, |v, h| integer(h, v.into())),
        DataType::Int64 => each!(Int64Array, |v, h| integer(h, v.into())),
        DataType::UInt8 => each!(UInt8Array, |v, h| integer(h, v.into())),
        DataType::UInt16 => each!(UInt16Array, |v, h| integer(h, v.into())),
        DataType::UInt32 => each!(UInt32Array, |v, h| integer(h, v.into())),
        DataType::UInt64 => each!(UInt64Array, |v, h| integer(h, v.into())),
        DataType::Float32 => each!(Float32Array, |v, h| {
            h.update([FLOAT]);
            h.update(f64::from(v).to_bits().to_le_bytes());
        }),
        DataType::Float64 => each!(Float64Array, |v, h| {
            h.update([FLOAT]);
            h.update(v.to_bits().to_le_bytes());
        }),
        DataType::Utf8 => each!(StringArray, |v, h| text(h, TEXT, v.as_bytes())),
        DataType::LargeUtf8 => each!(LargeStringArray, |v, h| text(h, TEXT, v.as_bytes())),
        DataType::Binary => each!(BinaryArray, |v, h| text(h, BYTES, v)),
        DataType::LargeBinary => each!(LargeBinaryArray, |v, h| text(h, BYTES, v)),
        DataType::Decimal128(_, scale) => {
            let scale = scale.to_le_bytes();
            each!(Decimal128Array, |v, h| {
                h.update([DECIMAL]);
                h.update(scale);
                h.update(v.to_le_bytes());
            });
        }
        DataType::Date32 => each!(Date32Array, |v, h| {
            h.update([DATE]);
            h.update(v.to_le_bytes());
        }),
        DataType::Timestamp(TimeUnit::Second, _) => {
            each!(TimestampSecondArray, |v, h| timestamp(h, v, 1_000_000_000));
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            each!(TimestampMillisecondArray, |v, h| timestamp(h, v, 1_000_000));
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            each!(TimestampMicrosecondArray, |v, h| timestamp(h, v, 1_000));
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            each!(TimestampNanosecondArray, |v, h| timestamp(h, v, 1));
        }
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use arrow_array::ArrayRef;

    use super::*;

    fn hash_of(columns: Vec<ArrayRef>) -> Vec<RowHash> {
        let named: Vec<(String, ArrayRef)> = columns
            .into_iter()
            .enumerate()
            .map(|(i, c)| (format!("c{i}"), c))
            .collect();
        let batch = RecordBatch::try_from_iter(named).unwrap();
        let all: Vec<usize> = (0..batch.num_columns()).collect();
        hash_rows(&batch, &all).unwrap()
    }

    #[test]
    fn shifting_characters_between_columns_changes_the_hash() {
        let h = hash_of(vec![
            Arc::new(StringArray::from(vec!["ab", "a"])),
            Arc::new(StringArray::from(vec!["c", "bc"])),
        ]);
        assert_ne!(h[0], h[1]);
    }

    #[test]
    fn null_differs_from_empty_text_and_from_zero() {
        let text = hash_of(vec![Arc::new(StringArray::from(vec![None, Some("")]))]);
        assert_ne!(text[0], text[1]);
        let int = hash_of(vec![Arc::new(Int64Array::from(vec![None, Some(0)]))]);
        assert_ne!(int[0], int[1]);
        assert_eq!(text[0], int[0], "NULL is NULL whatever the column type");
    }

    #[test]
    fn integer_widths_share_an_identity_but_text_does_not() {
        let narrow = hash_of(vec![Arc::new(Int32Array::from(vec![42]))]);
        let wide = hash_of(vec![Arc::new(Int64Array::from(vec![42]))]);
        let text = hash_of(vec![Arc::new(StringArray::from(vec!["42"]))]);
        assert_eq!(narrow, wide);
        assert_ne!(wide, text);
    }

    #[test]
    fn hashes_are_stable_across_batches() {
        let once = hash_of(vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]);
        let again = hash_of(vec![Arc::new(Int64Array::from(vec![3, 2, 1]))]);
        assert_eq!(once[0], again[2]);
        assert_eq!(once[2], again[0]);
    }

    #[test]
    fn many_similar_rows_never_collide() {
        let n = 20_000;
        let a: Vec<String> = (0..n).map(|i| format!("{}", i % 200)).collect();
        let b: Vec<String> = (0..n).map(|i| format!("{}", i / 200)).collect();
        let h = hash_of(vec![
            Arc::new(StringArray::from(a)),
            Arc::new(StringArray::from(b)),
        ]);
        assert_eq!(h.iter().collect::<HashSet<_>>().len(), n);
    }

    #[test]
    fn binary_columns_hash_but_lists_are_refused_naming_the_column() {
        let bytes: arrow_array::ArrayRef =
            Arc::new(BinaryArray::from(vec![b"a".as_ref(), b"b".as_ref()]));
        let list: arrow_array::ArrayRef = Arc::new(arrow_array::ListArray::from_iter_primitive::<
            arrow_array::types::Int32Type,
            _,
            _,
        >(vec![Some(vec![Some(1)]), None]));
        let batch = RecordBatch::try_from_iter([("bytes", bytes), ("tags", list)]).unwrap();
        assert_eq!(hash_rows(&batch, &[0]).unwrap().len(), 2);
        let err = hash_rows(&batch, &[0, 1]).unwrap_err();
        assert!(
            err.to_string().starts_with("column `tags` has type List"),
            "{err}"
        );
    }
}
