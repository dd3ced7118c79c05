//! A row's key as typed values, to find the row again in the warehouse: a
//! writeback's `UPDATE`, the key table of `diff: warehouse`.

use arrow_array::{Array as _, RecordBatch};
use retl_mapping::{cell_text, is_integer};
use retl_source::KeyValue;

/// The typed value of a row's cell: an integer column's value as an
/// integer when it fits `i64`, anything else as its text; `None` when NULL.
pub(super) fn key_value(batch: &RecordBatch, column: usize, row: usize) -> Option<KeyValue> {
    let array = batch.column(column);
    if array.is_null(row) {
        return None;
    }
    let text = cell_text(array.as_ref(), row).ok()??;
    Some(match text.parse() {
        Ok(n) if is_integer(array.data_type()) => KeyValue::Int(n),
        _ => KeyValue::Text(text.into_owned()),
    })
}

/// A row's key values, one per key column in `key`; `None` when one is NULL.
pub(super) fn key_values(batch: &RecordBatch, key: &[usize], row: usize) -> Option<Vec<KeyValue>> {
    key.iter()
        .map(|&column| key_value(batch, column, row))
        .collect()
}
