//! SQLite sources.
//!
//! SQLite types values, not columns: the declared type of a column decides its
//! Arrow type (`INTEGER` → Int64, `REAL`/`FLOAT`/`DOUBLE` → Float64, `BOOL…` →
//! Boolean, `BLOB` → Binary, anything else, including undeclared expression
//! columns → Utf8, SQLite's own text form). A value whose storage class does
//! not fit its column's Arrow type (text in an `INTEGER` column) stops the read
//! with an error naming the column and row, rather than being coerced silently.

use std::str::FromStr;
use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::TryStreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{Column, ConnectOptions, Executor, Row, TypeInfo, ValueRef};

use crate::{Error, Model, Result, Source, SourceSpec};

/// `name` as a quoted SQLite identifier; `a.b` becomes `"a"."b"`.
pub(crate) fn quote_ident(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

fn arrow_type(declared: &str) -> DataType {
    let declared = declared.to_ascii_uppercase();
    if declared.contains("INT") {
        DataType::Int64
    } else if declared.contains("REAL") || declared.contains("FLOA") || declared.contains("DOUB") {
        DataType::Float64
    } else if declared.starts_with("BOOL") {
        DataType::Boolean
    } else if declared == "BLOB" {
        DataType::Binary
    } else {
        DataType::Utf8
    }
}

pub(crate) async fn open(spec: &SourceSpec) -> Result<Source> {
    let options = SqliteConnectOptions::from_str(&spec.connection)
        .map_err(Error::Connect)?
        .read_only(true);
    let mut conn = options.connect().await.map_err(Error::Connect)?;
    let sql = match &spec.model {
        Model::Table(table) => {
            let columns: Vec<String> = spec.columns.iter().map(|c| quote_ident(c)).collect();
            format!("SELECT {} FROM {}", columns.join(", "), quote_ident(table))
        }
        Model::Query(query) => query.clone(),
    };
    // For a table, describe the whole table so a missing column lists the real ones.
    let describe_sql = match &spec.model {
        Model::Table(table) => format!("SELECT * FROM {}", quote_ident(table)),
        Model::Query(query) => query.clone(),
    };
    let described = conn.describe(&describe_sql).await.map_err(Error::Query)?;
    let available: Vec<(String, String)> = described
        .columns()
        .iter()
        .map(|c| (c.name().to_owned(), c.type_info().name().to_owned()))
        .collect();
    let mut fields = Vec::with_capacity(spec.columns.len());
    let mut positions = Vec::with_capacity(spec.columns.len());
    for (i, column) in spec.columns.iter().enumerate() {
        let Some(found) = available.iter().position(|(name, _)| name == column) else {
            return Err(Error::ColumnMissing {
                column: column.clone(),
                available: available.iter().map(|(n, _)| n.clone()).collect(),
            });
        };
        fields.push(Field::new(column, arrow_type(&available[found].1), true));
        // A table query selects exactly the needed columns, in order.
        positions.push(match spec.model {
            Model::Table(_) => i,
            Model::Query(_) => found,
        });
    }
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let batch_size = spec.batch_size;
    let reader_schema = schema.clone();
    Ok(Source::start(schema, move |tx| {
        tokio::spawn(async move {
            let result = read(&mut conn, &sql, &reader_schema, &positions, batch_size, &tx).await;
            if let Err(e) = result {
                // The receiver may be gone (the run was cancelled): nothing left to tell.
                let _ = tx.send(Err(e)).await;
            }
        })
    }))
}

enum Builder {
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Bytes(BinaryBuilder),
    Text(StringBuilder),
}

impl Builder {
    fn new(data_type: &DataType, capacity: usize) -> Self {
        match data_type {
            DataType::Int64 => Builder::Int(Int64Builder::with_capacity(capacity)),
            DataType::Float64 => Builder::Float(Float64Builder::with_capacity(capacity)),
            DataType::Boolean => Builder::Bool(BooleanBuilder::with_capacity(capacity)),
            DataType::Binary => {
                Builder::Bytes(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            _ => Builder::Text(StringBuilder::with_capacity(capacity, capacity * 16)),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Bytes(b) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Builder::Int(b) => b.len(),
            Builder::Float(b) => b.len(),
            Builder::Bool(b) => b.len(),
            Builder::Bytes(b) => b.len(),
            Builder::Text(b) => b.len(),
        }
    }

    /// Appends `row[index]`; `Err(found type)` if its storage class does not fit.
    fn append(&mut self, row: &SqliteRow, index: usize) -> std::result::Result<(), String> {
        let raw = row.try_get_raw(index).map_err(|e| e.to_string())?;
        if raw.is_null() {
            match self {
                Builder::Int(b) => b.append_null(),
                Builder::Float(b) => b.append_null(),
                Builder::Bool(b) => b.append_null(),
                Builder::Bytes(b) => b.append_null(),
                Builder::Text(b) => b.append_null(),
            }
            return Ok(());
        }
        let class = raw.type_info().name().to_owned();
        let decode_err = |e: sqlx::Error| e.to_string();
        match (self, class.as_str()) {
            (Builder::Int(b), "INTEGER") => {
                b.append_value(row.try_get_unchecked(index).map_err(decode_err)?);
            }
            (Builder::Bool(b), "INTEGER" | "BOOLEAN") => {
                b.append_value(row.try_get_unchecked::<i64, _>(index).map_err(decode_err)? != 0);
            }
            (Builder::Float(b), "REAL" | "INTEGER") => {
                b.append_value(row.try_get_unchecked(index).map_err(decode_err)?);
            }
            (Builder::Bytes(b), _) => {
                b.append_value(
                    row.try_get_unchecked::<Vec<u8>, _>(index)
                        .map_err(decode_err)?,
                );
            }
            (
                Builder::Text(b),
                "TEXT" | "INTEGER" | "REAL" | "NUMERIC" | "DATETIME" | "DATE" | "TIME" | "BOOLEAN",
            ) => {
                b.append_value(
                    row.try_get_unchecked::<String, _>(index)
                        .map_err(decode_err)?,
                );
            }
            _ => return Err(class),
        }
        Ok(())
    }
}

async fn read(
    conn: &mut SqliteConnection,
    sql: &str,
    schema: &SchemaRef,
    positions: &[usize],
    batch_size: usize,
    tx: &tokio::sync::mpsc::Sender<Result<RecordBatch>>,
) -> Result<()> {
    let new_builders = || -> Vec<Builder> {
        schema
            .fields()
            .iter()
            .map(|f| Builder::new(f.data_type(), batch_size))
            .collect()
    };
    let mut builders = new_builders();
    let mut rows = conn.fetch(sql);
    let mut row_number: u64 = 0;
    while let Some(row) = rows.try_next().await.map_err(Error::Query)? {
        row_number += 1;
        for (builder, (&position, field)) in builders
            .iter_mut()
            .zip(positions.iter().zip(schema.fields().iter()))
        {
            builder
                .append(&row, position)
                .map_err(|found| Error::ValueType {
                    column: field.name().clone(),
                    row: row_number,
                    found,
                    expected: field.data_type().to_string(),
                })?;
        }
        if builders[0].len() >= batch_size && !flush(schema, &mut builders, tx).await {
            return Ok(());
        }
    }
    if builders.first().is_some_and(|b| b.len() > 0) {
        flush(schema, &mut builders, tx).await;
    }
    Ok(())
}

/// Sends the built batch; `false` when nobody listens any more.
async fn flush(
    schema: &SchemaRef,
    builders: &mut [Builder],
    tx: &tokio::sync::mpsc::Sender<Result<RecordBatch>>,
) -> bool {
    let columns: Vec<ArrayRef> = builders.iter_mut().map(Builder::finish).collect();
    let batch = RecordBatch::try_new(schema.clone(), columns)
        .expect("builders follow the schema and hold the same number of rows");
    tx.send(Ok(batch)).await.is_ok()
}

#[cfg(test)]
mod tests {
    use arrow_array::{Array, Int64Array, StringArray};

    use super::*;

    async fn database(sql: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let mut conn = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        (dir, url)
    }

    fn spec(url: &str, model: Model, columns: &[&str], batch_size: usize) -> SourceSpec {
        SourceSpec {
            connection: url.to_owned(),
            model,
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            batch_size,
        }
    }

    async fn collect(source: &mut Source) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        while let Some(batch) = source.next_batch().await {
            out.push(batch.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn a_table_streams_in_batches_with_typed_columns() {
        let (_dir, url) = database(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT, total REAL, note TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 25)
             INSERT INTO orders SELECT i, 'c' || i || '@x.example', i * 1.5, NULL FROM n;",
        )
        .await;
        let mut source = Source::open(&spec(
            &url,
            Model::Table("orders".into()),
            &["id", "email", "note"],
            10,
        ))
        .await
        .unwrap();
        assert_eq!(source.schema().field(0).data_type(), &DataType::Int64);
        let batches = collect(&mut source).await;
        assert_eq!(
            batches
                .iter()
                .map(RecordBatch::num_rows)
                .collect::<Vec<_>>(),
            vec![10, 10, 5]
        );
        let ids = batches[2]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(ids.value(4), 25);
        let emails = batches[0]
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(emails.value(0), "c1@x.example");
        assert!(batches[0].column(2).is_null(0));
    }

    #[tokio::test]
    async fn a_missing_column_lists_the_columns_that_exist() {
        let (_dir, url) = database("CREATE TABLE orders (id INTEGER, email TEXT);").await;
        let err = Source::open(&spec(
            &url,
            Model::Table("orders".into()),
            &["id", "mail"],
            10,
        ))
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "column `mail` does not exist in the source; available columns: id, email"
        );
    }

    #[tokio::test]
    async fn a_query_model_picks_columns_by_name() {
        let (_dir, url) = database(
            "CREATE TABLE t (a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'x'), (2, 'y');",
        )
        .await;
        let query = Model::Query("SELECT b, a * 10 AS a10 FROM t ORDER BY a".into());
        let mut source = Source::open(&spec(&url, query, &["a10", "b"], 100))
            .await
            .unwrap();
        let batches = collect(&mut source).await;
        let a10 = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(a10.value(1), 20, "expression types are inferred");
        let b = batches[0]
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(b.value(0), "x");
    }

    #[tokio::test]
    async fn text_in_an_integer_column_names_the_column_and_row() {
        let (_dir, url) =
            database("CREATE TABLE t (id INTEGER); INSERT INTO t VALUES (1), ('oops');").await;
        let mut source = Source::open(&spec(&url, Model::Table("t".into()), &["id"], 100))
            .await
            .unwrap();
        let err = source.next_batch().await.unwrap().unwrap_err();
        assert_eq!(
            err.to_string(),
            "column `id`, row 2: a TEXT value in a column read as Int64"
        );
    }

    #[test]
    fn identifiers_are_quoted_per_part() {
        assert_eq!(quote_ident("analytics.orders"), "\"analytics\".\"orders\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
