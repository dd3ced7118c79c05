//! Generic mapping machinery: from a warehouse row to the values of a
//! destination's fields.
//!
//! A destination declares its field catalogue (a [`FieldSet`]) and builds its
//! requests; this crate gives it the three things every destination needs:
//!
//! - **Binding** ([`Bindings`]): an activation's `mapping:` (field ← column)
//!   checked once against the source's Arrow schema, so a missing column or
//!   an unusable type fails before any row, listing the real columns.
//! - **Layered settings**: a value comes from the row's mapped column when it
//!   holds one, else from the activation's `target`, else from the
//!   destination's `defaults`:
//!
//!   ```text
//!   destination defaults  <  activation target  <  the row's mapped column
//!   ```
//!
//!   [`Overlay`] lays a target over defaults key by key ([`pick`] for one
//!   key); [`Bindings::text`] reads the row's layer, where a NULL or blank
//!   cell means "not set on this row".
//! - **Cell values** ([`cell_text`], [`parse_time`]): one Arrow cell as exact
//!   text (integers and decimals never through a float) or as a UTC time.
//!
//! The crate does no IO.

mod error;
mod value;

use std::fmt;
use std::marker::PhantomData;

use arrow_array::RecordBatch;
use arrow_schema::Schema;

pub use error::{Error, Result};

/// Field metadata a source sets on a column whose text is JSON (a
/// semi-structured column: `json`/`jsonb`, a PostgreSQL array, MySQL's
/// `JSON`, Snowflake's `VARIANT`/`OBJECT`/`ARRAY`, …): a list field reads
/// it as a JSON array ([`Bindings::list`]), never split on commas.
pub const JSON_TEXT: &str = "retl.json_text";
pub use value::{CellError, cell_text, is_integer, is_supported, parse_time};

/// A destination's catalogue of mappable fields.
pub trait FieldSet: Copy + Eq + fmt::Debug + 'static {
    /// Every field, in catalogue order.
    const ALL: &'static [Self];

    /// The field's configuration name (`consumer_email`, …).
    fn name(self) -> &'static str;

    /// Looks a field up by its configuration name.
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// The names of all fields, in catalogue order.
    fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|f| f.name()).collect()
    }
}

/// Settings that come in layers: `over`'s keys win, the others keep `self`'s.
pub trait Overlay {
    /// Lays `over` on top of `self`.
    #[must_use]
    fn overlay(&self, over: &Self) -> Self;
}

/// One key of an [`Overlay`]: `over` if set, else `base`.
pub fn pick<T: Clone>(base: Option<&T>, over: Option<&T>) -> Option<T> {
    over.or(base).cloned()
}

/// A row's cell that cannot be read for a field: the row is rejected, naming
/// the field and the column (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellRejection<F> {
    /// The field.
    pub field: F,
    /// The column.
    pub column: String,
    /// Why.
    pub error: CellError,
}

/// An activation's mapping, bound to the columns of one source schema.
#[derive(Debug, Clone)]
pub struct Bindings<F> {
    /// Per field, in `F::ALL` order: the mapped column's index and name.
    columns: Vec<Option<(usize, String)>>,
    /// Per field: whether its column's text is JSON ([`JSON_TEXT`]).
    json: Vec<bool>,
    fields: PhantomData<F>,
}

impl<F: FieldSet> Bindings<F> {
    /// Binds `mapping` (field ← column name) to `schema`; fails if a mapped
    /// column is missing or of a type no field can take.
    pub fn bind(mapping: &[(F, String)], schema: &Schema) -> Result<Self> {
        let mut columns = vec![None; F::ALL.len()];
        let mut json = vec![false; F::ALL.len()];
        for (field, column) in mapping {
            let Some((index, schema_field)) = schema.column_with_name(column) else {
                return Err(Error::ColumnMissing {
                    field: field.name(),
                    column: column.clone(),
                    available: schema.fields().iter().map(|f| f.name().clone()).collect(),
                });
            };
            if !is_supported(schema_field.data_type()) {
                return Err(Error::UnsupportedType {
                    field: field.name(),
                    column: column.clone(),
                    data_type: schema_field.data_type().clone(),
                });
            }
            columns[position(*field)] = Some((index, column.clone()));
            json[position(*field)] = schema_field.metadata().contains_key(JSON_TEXT);
        }
        Ok(Bindings {
            columns,
            json,
            fields: PhantomData,
        })
    }

    /// The column `field` is mapped to, if any.
    pub fn column(&self, field: F) -> Option<&str> {
        self.columns[position(field)]
            .as_ref()
            .map(|(_, c)| c.as_str())
    }

    /// The row's value for `field`, trimmed: `None` when the field is not
    /// mapped, or its cell is NULL or blank ("not set on this row").
    pub fn text(
        &self,
        batch: &RecordBatch,
        row: usize,
        field: F,
    ) -> Result<Option<String>, CellRejection<F>> {
        let Some((index, column)) = &self.columns[position(field)] else {
            return Ok(None);
        };
        let text =
            cell_text(batch.column(*index).as_ref(), row).map_err(|error| CellRejection {
                field,
                column: column.clone(),
                error,
            })?;
        Ok(text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()))
    }

    /// The row's list for a list field (tags, SKUs): `None` when unmapped,
    /// NULL or blank. A column of JSON text ([`JSON_TEXT`]) must hold a
    /// JSON array of strings, which is the list as it is (a comma inside
    /// an element included); any other JSON rejects the row, naming the
    /// column. Any other column's text is split on commas. Elements are
    /// trimmed; blank ones are left out.
    pub fn list(
        &self,
        batch: &RecordBatch,
        row: usize,
        field: F,
    ) -> std::result::Result<Option<Vec<String>>, CellRejection<F>> {
        use serde_json::Value;
        let Some(text) = self.text(batch, row, field)? else {
            return Ok(None);
        };
        let keep = |item: &str| {
            let item = item.trim();
            (!item.is_empty()).then(|| item.to_owned())
        };
        if !self.json[position(field)] {
            return Ok(Some(text.split(',').filter_map(keep).collect()));
        }
        let rejected = |what: &'static str| CellRejection {
            field,
            column: self.column(field).unwrap_or_default().to_owned(),
            error: CellError::NotAList(what),
        };
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(keep(s)),
                    Value::Array(_) => Err(rejected("an array holding an array")),
                    Value::Object(_) => Err(rejected("an array holding an object")),
                    Value::Number(_) => Err(rejected("an array holding a number")),
                    Value::Bool(_) => Err(rejected("an array holding a boolean")),
                    Value::Null => Err(rejected("an array holding null")),
                })
                .filter_map(std::result::Result::transpose)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(Some),
            Ok(Value::Object(_)) => Err(rejected("a JSON object")),
            Ok(Value::String(_)) => Err(rejected("a JSON string")),
            Ok(Value::Number(_)) => Err(rejected("a JSON number")),
            Ok(Value::Bool(_)) => Err(rejected("a JSON boolean")),
            Ok(Value::Null) => Err(rejected("JSON null")),
            Err(_) => Err(rejected("text that is not JSON")),
        }
    }
}

fn position<F: FieldSet>(field: F) -> usize {
    F::ALL
        .iter()
        .position(|f| *f == field)
        .expect("a field is in its own catalogue")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, BinaryArray, Int64Array, StringArray};

    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Demo {
        Id,
        Name,
        Blob,
    }

    impl FieldSet for Demo {
        const ALL: &'static [Self] = &[Demo::Id, Demo::Name, Demo::Blob];

        fn name(self) -> &'static str {
            match self {
                Demo::Id => "id",
                Demo::Name => "name",
                Demo::Blob => "blob",
            }
        }
    }

    fn batch() -> RecordBatch {
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("order_id", Arc::new(Int64Array::from(vec![1, 2]))),
            (
                "full_name",
                Arc::new(StringArray::from(vec![Some(" Ann "), Some("  ")])),
            ),
            (
                "bytes",
                Arc::new(BinaryArray::from(vec![b"ok".as_ref(), &[0xff, 0xfe]])),
            ),
        ];
        RecordBatch::try_from_iter(columns).unwrap()
    }

    #[test]
    fn every_field_round_trips_through_its_name() {
        for field in Demo::ALL {
            assert_eq!(Demo::from_name(field.name()), Some(*field));
        }
        assert_eq!(Demo::from_name("Name"), None);
    }

    #[test]
    fn cells_are_trimmed_and_blank_ones_are_not_set() {
        let batch = batch();
        let mapping = [
            (Demo::Id, "order_id".into()),
            (Demo::Name, "full_name".into()),
        ];
        let bound = Bindings::bind(&mapping, &batch.schema()).unwrap();
        assert_eq!(
            bound.text(&batch, 0, Demo::Id).unwrap().as_deref(),
            Some("1")
        );
        assert_eq!(
            bound.text(&batch, 0, Demo::Name).unwrap().as_deref(),
            Some("Ann")
        );
        assert_eq!(bound.text(&batch, 1, Demo::Name).unwrap(), None);
        assert_eq!(
            bound.text(&batch, 0, Demo::Blob).unwrap(),
            None,
            "not mapped"
        );
        assert_eq!(bound.column(Demo::Name), Some("full_name"));
    }

    #[test]
    fn a_missing_column_lists_the_available_ones() {
        let batch = batch();
        let err = Bindings::bind(&[(Demo::Name, "name".into())], &batch.schema()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mapping.name: column `name` does not exist in the source; available columns: order_id, full_name, bytes"
        );
    }

    #[test]
    fn an_unreadable_cell_names_its_field_and_column() {
        let batch = batch();
        let bound = Bindings::bind(&[(Demo::Blob, "bytes".into())], &batch.schema()).unwrap();
        assert_eq!(
            bound.text(&batch, 0, Demo::Blob).unwrap().as_deref(),
            Some("ok")
        );
        let rejection = bound.text(&batch, 1, Demo::Blob).unwrap_err();
        assert_eq!(rejection.field, Demo::Blob);
        assert_eq!(rejection.column, "bytes");
        assert_eq!(rejection.error, CellError::NotText);
    }

    #[test]
    fn the_layer_above_wins_key_by_key() {
        assert_eq!(pick(Some(&1), Some(&2)), Some(2));
        assert_eq!(pick(Some(&1), None), Some(1));
        assert_eq!(pick::<i32>(None, None), None);
    }

    #[test]
    fn a_json_column_is_a_list_as_it_is_and_anything_else_in_it_is_named() {
        let values = vec![
            Some(r#"["S-1", "gift, wrapped", " "]"#),
            Some(r#"{"sku": "S-2"}"#),
            Some("[1, 2]"),
            Some("a, b"),
        ];
        let schema = Schema::new(vec![
            arrow_schema::Field::new("skus", arrow_schema::DataType::Utf8, true).with_metadata(
                std::collections::HashMap::from([(JSON_TEXT.to_owned(), "true".to_owned())]),
            ),
            arrow_schema::Field::new("plain", arrow_schema::DataType::Utf8, true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema.clone()),
            vec![
                Arc::new(StringArray::from(values.clone())),
                Arc::new(StringArray::from(values)),
            ],
        )
        .unwrap();
        let json = Bindings::bind(&[(Demo::Name, "skus".to_owned())], &schema).unwrap();
        assert_eq!(
            json.list(&batch, 0, Demo::Name).unwrap(),
            Some(vec!["S-1".to_owned(), "gift, wrapped".to_owned()])
        );
        let object = json.list(&batch, 1, Demo::Name).unwrap_err();
        assert_eq!(object.column, "skus");
        assert!(
            object.error.to_string().contains("holds a JSON object"),
            "{}",
            object.error
        );
        assert!(
            object.error.to_string().contains("query:"),
            "{}",
            object.error
        );
        let numbers = json.list(&batch, 2, Demo::Name).unwrap_err();
        assert!(
            numbers.error.to_string().contains("a number"),
            "{}",
            numbers.error
        );
        // A column of plain text is split on commas, as before.
        let plain = Bindings::bind(&[(Demo::Name, "plain".to_owned())], &schema).unwrap();
        assert_eq!(
            plain.list(&batch, 3, Demo::Name).unwrap(),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
    }
}
