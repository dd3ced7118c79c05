//! Canonical row hashing over Arrow arrays.
//!
//! Every value is written as a one-byte type tag followed by a fixed-width or
//! length-prefixed payload, and a row's hash is SHA-256 over its values in the
//! given column order, truncated to 16 bytes. The tags group types by meaning,
//! not by width: every integer type encodes as the same 128-bit integer, so a
//! key column migrated from `int4` to `int8` keeps its identity; every timestamp
//! encodes as UTC nanoseconds.
//!
//! Keys are hashed from a *canonical* form of their values ([`hash_keys`]),
//! so a key keeps its identity when its column's type changes but its values
//! do not: besides every integer width, a text cell that is exactly an
//! integer's canonical decimal digits (`"42"`, `"-7"`; not `"042"`, `"+7"` or
//! `"42.0"`), a decimal with no fractional part and an integral float all
//! encode as that integer. The mapping is injective (each integer has one
//! canonical text), so two different keys never merge. This matters most on
//! PostgreSQL and MySQL, whose `numeric`/`decimal` columns are read as text:
//! `int` → `bigint` → `numeric(20,0)` → `text` all give one identity.
//! Content hashes ([`hash_rows`]) keep the type-tagged encoding.
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

/// Hashes the given columns of every row of `batch`, in the order given (a
/// row's content).
pub fn hash_rows(batch: &RecordBatch, columns: &[usize]) -> Result<Vec<RowHash>> {
    hash_with(batch, columns, Encoding::Typed)
}

/// Hashes the given key columns of every row of `batch` from the canonical
/// form of their values (a row's identity; see the module's overview).
pub fn hash_keys(batch: &RecordBatch, columns: &[usize]) -> Result<Vec<RowHash>> {
    hash_with(batch, columns, Encoding::Canonical)
}

/// Combines a row's content hash with a fingerprint of everything else that
/// shapes its request (settings, mapping): what a rejected row is compared by.
pub fn combine(content: &RowHash, fingerprint: &RowHash) -> RowHash {
    let mut h = Sha256::new();
    h.update(content);
    h.update(fingerprint);
    truncate(h)
}

/// The 16-byte fingerprint of `text` (for example a debug rendering of settings).
pub fn fingerprint(text: &str) -> RowHash {
    let mut h = Sha256::new();
    h.update(text.as_bytes());
    truncate(h)
}

/// The key hash of a row whose key, as the run log prints it, is
/// `row_key` (parts joined by `", "`): each part a canonical integer or
/// text, as [`hash_keys`] encodes them. A part holding `", "`, or a value
/// whose text is not its canonical form (a decimal read as `7000001.00`,
/// a date), may hash otherwise than its row did.
pub fn key_hash_of_text(row_key: &str) -> RowHash {
    let mut h = Sha256::new();
    for part in row_key.split(", ") {
        match canonical_integer(part) {
            Some(n) => integer(&mut h, n),
            None => text(&mut h, TEXT, part.as_bytes()),
        }
    }
    truncate(h)
}

/// When `stored` is the hash an earlier release gave the key whose logged
/// text is `row_key` (parts joined by `", "`), and the canonical hash
/// differs, returns the canonical hash.
///
/// Earlier releases hashed a text cell of digits as text; now it encodes as
/// the integer. Each digit-only part may have been either, so every
/// combination is tried (at most 16), and the key is rewritten only when one
/// matches `stored` exactly: a key whose text cannot be split back into its
/// parts (a part holding `", "`), or that was never text, is left alone.
pub fn canonical_from_legacy(stored: &RowHash, row_key: &str) -> Option<RowHash> {
    let parts: Vec<&str> = row_key.split(", ").collect();
    let numeric: Vec<usize> = (0..parts.len())
        .filter(|&i| canonical_integer(parts[i]).is_some())
        .collect();
    if numeric.is_empty() || numeric.len() > 4 {
        return None;
    }
    let encode = |as_text: u32| {
        let mut h = Sha256::new();
        for (i, part) in parts.iter().enumerate() {
            match numeric.iter().position(|&n| n == i) {
                Some(bit) if as_text & (1 << bit) == 0 => {
                    integer(&mut h, canonical_integer(part).expect("numeric"));
                }
                _ => text(&mut h, TEXT, part.as_bytes()),
            }
        }
        truncate(h)
    };
    let canonical = encode(0);
    if *stored == canonical {
        return None;
    }
    (1..1u32 << numeric.len())
        .any(|as_text| encode(as_text) == *stored)
        .then_some(canonical)
}

/// The integer whose canonical decimal text `s` is, if it is one.
fn canonical_integer(s: &str) -> Option<i128> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && s != "-0";
    canonical.then(|| s.parse().ok()).flatten()
}

fn truncate(h: Sha256) -> RowHash {
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// The Arrow field metadata key a source sets (to any value) on a text
/// column that holds a database decimal's exact text (PostgreSQL `numeric`,
/// MySQL `decimal`). In a key, such a text whose places are all zero
/// (`"7000001.00"`) encodes as the integer it equals, as a `Decimal128` does:
/// a key column changed from an integer to a decimal keeps its identity. Only
/// decimal columns get this: in a text column `"7.00"` and `"7"` are two keys.
pub const DECIMAL_TEXT: &str = "retl.decimal_text";

/// How values are written into a hash.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// Every type under its own tag (contents).
    Typed,
    /// Integers however they are stored (keys).
    Canonical,
    /// A key column of decimal text ([`DECIMAL_TEXT`]): also a zero fraction is the integer.
    CanonicalDecimal,
}

impl Encoding {
    fn is_key(self) -> bool {
        self != Encoding::Typed
    }
}

/// The integer a decimal's text equals when its places are all zero
/// (`"42.00"`, `"-7.0"`), or when it is an integer's canonical digits.
fn decimal_integer(s: &str) -> Option<i128> {
    match s.split_once('.') {
        Some((whole, places)) if !places.is_empty() && places.bytes().all(|b| b == b'0') => {
            canonical_integer(whole).or_else(|| (whole == "-0").then_some(0))
        }
        Some(_) => None,
        None => canonical_integer(s),
    }
}

fn hash_with(batch: &RecordBatch, columns: &[usize], encoding: Encoding) -> Result<Vec<RowHash>> {
    let mut hashers = vec![Sha256::new(); batch.num_rows()];
    for &index in columns {
        let array = batch.column(index);
        let field = batch.schema_ref().field(index);
        let encoding = if encoding.is_key() && field.metadata().contains_key(DECIMAL_TEXT) {
            Encoding::CanonicalDecimal
        } else {
            encoding
        };
        encode_column(array.as_ref(), &mut hashers, encoding).ok_or_else(|| {
            Error::UnsupportedType {
                column: batch.schema().field(index).name().clone(),
                data_type: array.data_type().clone(),
            }
        })?;
    }
    Ok(hashers.into_iter().map(truncate).collect())
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

/// A text cell: the integer it spells canonically, for a key; else text.
fn text_value(h: &mut Sha256, v: &str, encoding: Encoding) {
    let key = match encoding {
        Encoding::Typed => None,
        Encoding::Canonical => canonical_integer(v),
        Encoding::CanonicalDecimal => decimal_integer(v),
    };
    match key {
        Some(n) => integer(h, n),
        None => text(h, TEXT, v.as_bytes()),
    }
}

/// A float cell: the integer it equals, for a key; else its bits.
fn float_value(h: &mut Sha256, v: f64, encoding: Encoding) {
    // 2^53: every integer up to it is exact in an f64.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if encoding.is_key() && v.fract() == 0.0 && v.abs() <= EXACT {
        #[allow(clippy::cast_possible_truncation)] // integral and within ±2^53
        return integer(h, v as i128);
    }
    h.update([FLOAT]);
    h.update(v.to_bits().to_le_bytes());
}

/// Feeds each row's value of `array` into its hasher; `None` if the type is not covered.
fn encode_column(array: &dyn Array, hashers: &mut [Sha256], encoding: Encoding) -> Option<()> {
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
        DataType::Float32 => {
            each!(Float32Array, |v, h| float_value(h, f64::from(v), encoding));
        }
        DataType::Float64 => each!(Float64Array, |v, h| float_value(h, v, encoding)),
        DataType::Utf8 => each!(StringArray, |v, h| text_value(h, v, encoding)),
        DataType::LargeUtf8 => each!(LargeStringArray, |v, h| text_value(h, v, encoding)),
        DataType::Binary => each!(BinaryArray, |v, h| text(h, BYTES, v)),
        DataType::LargeBinary => each!(LargeBinaryArray, |v, h| text(h, BYTES, v)),
        DataType::Decimal128(_, scale) => {
            // A key's decimal with no fractional part is that integer.
            let unit = u32::try_from(*scale)
                .ok()
                .filter(|_| encoding.is_key())
                .and_then(|s| 10i128.checked_pow(s));
            let scale = scale.to_le_bytes();
            each!(Decimal128Array, |v, h| match unit {
                Some(unit) if v % unit == 0 => integer(h, v / unit),
                _ => {
                    h.update([DECIMAL]);
                    h.update(scale);
                    h.update(v.to_le_bytes());
                }
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
mod text_tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, RecordBatch, StringArray};

    use super::*;

    #[test]
    fn a_key_hashes_from_its_logged_text_as_from_its_row() {
        let batch = RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int64Array::from(vec![42])) as arrow_array::ArrayRef,
            ),
            (
                "sku",
                Arc::new(StringArray::from(vec!["007"])) as arrow_array::ArrayRef,
            ),
        ])
        .unwrap();
        assert_eq!(hash_keys(&batch, &[0]).unwrap()[0], key_hash_of_text("42"));
        assert_eq!(hash_keys(&batch, &[1]).unwrap()[0], key_hash_of_text("007"));
        assert_eq!(
            hash_keys(&batch, &[0, 1]).unwrap()[0],
            key_hash_of_text("42, 007")
        );
    }
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

    fn keys_of(column: ArrayRef) -> Vec<RowHash> {
        let batch = RecordBatch::try_from_iter([("k", column)]).unwrap();
        hash_keys(&batch, &[0]).unwrap()
    }

    #[test]
    fn a_key_keeps_its_identity_through_a_change_of_type() {
        let int = keys_of(Arc::new(Int32Array::from(vec![42, -7, 0])));
        let bigint = keys_of(Arc::new(Int64Array::from(vec![42, -7, 0])));
        // numeric(20,0) and text, as PostgreSQL and MySQL sources read them.
        let text = keys_of(Arc::new(StringArray::from(vec!["42", "-7", "0"])));
        let decimal = keys_of(Arc::new(
            Decimal128Array::from(vec![4200, -700, 0])
                .with_precision_and_scale(20, 2)
                .unwrap(),
        ));
        let float = keys_of(Arc::new(Float64Array::from(vec![42.0, -7.0, 0.0])));
        assert_eq!(int, bigint);
        assert_eq!(int, text);
        assert_eq!(int, decimal);
        assert_eq!(int, float);
    }

    #[test]
    fn a_decimal_key_with_zero_places_keeps_the_integers_identity() {
        let int = keys_of(Arc::new(Int64Array::from(vec![7_000_001, -7, 0])));
        let decimal_text = |values: Vec<&str>| {
            let field = arrow_schema::Field::new("id", DataType::Utf8, true).with_metadata(
                std::collections::HashMap::from([(DECIMAL_TEXT.to_owned(), String::new())]),
            );
            let batch = RecordBatch::try_new(
                Arc::new(arrow_schema::Schema::new(vec![field])),
                vec![Arc::new(StringArray::from(values)) as ArrayRef],
            )
            .unwrap();
            hash_keys(&batch, &[0]).unwrap()
        };
        assert_eq!(decimal_text(vec!["7000001.00", "-7.0", "0.000"]), int);
        assert_eq!(decimal_text(vec!["7000001", "-7", "-0.00"]), int);
        // Places that are not zero, and text columns, keep their own identity.
        assert_ne!(decimal_text(vec!["7000001.50"])[0], int[0]);
        assert_ne!(
            keys_of(Arc::new(StringArray::from(vec!["7000001.00"])))[0],
            int[0]
        );
        assert_ne!(
            decimal_text(vec!["7000001.5"]),
            decimal_text(vec!["7000001.50"])
        );
    }

    #[test]
    fn only_canonical_digits_are_read_as_an_integer_key() {
        let int = keys_of(Arc::new(Int64Array::from(vec![42, 42, 42, 42, 0])));
        let text = keys_of(Arc::new(StringArray::from(vec![
            "042", "+42", "42.0", " 42", "-0",
        ])));
        for (i, (a, b)) in int.iter().zip(&text).enumerate() {
            assert_ne!(a, b, "row {i}");
        }
        let fraction = keys_of(Arc::new(Float64Array::from(vec![42.5])));
        let half = keys_of(Arc::new(Int64Array::from(vec![42])));
        assert_ne!(fraction, half);
    }

    #[test]
    fn contents_still_tell_types_apart() {
        let text = hash_of(vec![Arc::new(StringArray::from(vec!["42"]))]);
        let int = hash_of(vec![Arc::new(Int64Array::from(vec![42]))]);
        assert_ne!(text, int);
    }

    #[test]
    fn a_legacy_text_key_of_digits_is_rewritten_and_nothing_else_is() {
        let legacy_text = hash_of(vec![Arc::new(StringArray::from(vec!["42"]))])[0];
        let canonical = keys_of(Arc::new(Int64Array::from(vec![42])))[0];
        assert_eq!(canonical_from_legacy(&legacy_text, "42"), Some(canonical));
        // Already canonical (an integer key): nothing to do.
        assert_eq!(canonical_from_legacy(&canonical, "42"), None);
        // A hash that is not this text's: left alone.
        assert_eq!(canonical_from_legacy(&[7; 16], "42"), None);
        let word = hash_of(vec![Arc::new(StringArray::from(vec!["abc"]))])[0];
        assert_eq!(canonical_from_legacy(&word, "abc"), None);
        // A composite key of text and an integer.
        let legacy = hash_of(vec![
            Arc::new(StringArray::from(vec!["7"])),
            Arc::new(Int64Array::from(vec![3])),
        ])[0];
        let batch = RecordBatch::try_from_iter([
            ("a", Arc::new(StringArray::from(vec!["7"])) as ArrayRef),
            ("b", Arc::new(Int64Array::from(vec![3])) as ArrayRef),
        ])
        .unwrap();
        let now = hash_keys(&batch, &[0, 1]).unwrap()[0];
        assert_eq!(canonical_from_legacy(&legacy, "7, 3"), Some(now));
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
