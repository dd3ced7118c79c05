//! SQLite sources.
//!
//! SQLite types values, not columns: the declared type of a column decides its
//! Arrow type (`INTEGER` → Int64, `REAL`/`FLOAT`/`DOUBLE` → Float64, `BOOL…` →
//! Boolean, `BLOB` → Binary, anything else, including undeclared expression
//! columns → Utf8, SQLite's own text form). A value whose storage class does
//! not fit its column's Arrow type (text in an `INTEGER` column) stops the read
//! with an error naming the column and row, rather than being coerced silently.

use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{ConnectOptions, Row, TypeInfo, ValueRef};

use crate::columns::{Builder, Kind};
use crate::{Error, Plan, Result, Source, SourceSpec, connecting};

fn kind_of(declared: &str) -> Kind {
    let declared = declared.to_ascii_uppercase();
    if declared.contains("INT") {
        Kind::Int64
    } else if declared.contains("REAL") || declared.contains("FLOA") || declared.contains("DOUB") {
        Kind::Float64
    } else if declared.starts_with("BOOL") {
        Kind::Bool
    } else if declared == "BLOB" {
        Kind::Binary
    } else {
        Kind::Utf8
    }
}

/// A read-only connection to the warehouse.
pub(crate) async fn connect(spec: &SourceSpec) -> Result<SqliteConnection> {
    let options = SqliteConnectOptions::from_str(&spec.connection)
        .map_err(Error::Connect)?
        .read_only(true);
    connecting(spec, options.connect()).await
}

pub(crate) async fn plan(
    spec: &SourceSpec,
) -> Result<(Plan, SqliteConnection, crate::cursor::Statement)> {
    let mut conn = connect(spec).await?;
    // SQLite can read every declared type: anything unknown is text.
    let (plan, statement) =
        crate::statement::plan(spec, &mut conn, crate::Driver::Sqlite, '"', |t| {
            Some(kind_of(t))
        })
        .await?;
    Ok((plan, conn, statement))
}

pub(crate) async fn open(spec: &SourceSpec) -> Result<Source> {
    let (plan, conn, statement) = plan(spec).await?;
    Ok(crate::statement::open::<sqlx::Sqlite>(
        spec,
        plan,
        conn,
        statement,
        |plan, builder, row, i, n| {
            let field = plan.schema.field(i);
            append(builder, row, i).map_err(|bad| match bad {
                Bad::Type(found) => Error::ValueType {
                    column: field.name().clone(),
                    row: n,
                    found,
                    expected: field.data_type().to_string(),
                },
                Bad::Text => Error::Decode {
                    column: field.name().clone(),
                    message: "the text is not valid UTF-8".to_owned(),
                },
            })
        },
    ))
}

/// Why a cell could not be appended.
enum Bad {
    /// Its storage class (named) does not fit the column: the run stops.
    Type(String),
    /// Text that is not UTF-8: its row is rejected.
    Text,
}

/// Appends `row[index]`.
fn append(builder: &mut Builder, row: &SqliteRow, index: usize) -> std::result::Result<(), Bad> {
    let raw = row
        .try_get_raw(index)
        .map_err(|e| Bad::Type(e.to_string()))?;
    if raw.is_null() {
        builder.append_null();
        return Ok(());
    }
    let class = raw.type_info().name().to_owned();
    let decode_err = |e: sqlx::Error| Bad::Type(e.to_string());
    match (builder, class.as_str()) {
        (Builder::Int64(b), "INTEGER") => {
            b.append_value(row.try_get_unchecked(index).map_err(decode_err)?);
        }
        (Builder::Bool(b), "INTEGER" | "BOOLEAN") => {
            b.append_value(row.try_get_unchecked::<i64, _>(index).map_err(decode_err)? != 0);
        }
        (Builder::Float64(b), "REAL" | "INTEGER") => {
            b.append_value(row.try_get_unchecked(index).map_err(decode_err)?);
        }
        (Builder::Binary(b), _) => {
            b.append_value(
                row.try_get_unchecked::<Vec<u8>, _>(index)
                    .map_err(decode_err)?,
            );
        }
        (
            Builder::Utf8(b),
            "TEXT" | "INTEGER" | "REAL" | "NUMERIC" | "DATETIME" | "DATE" | "TIME" | "BOOLEAN",
        ) => {
            // SQLite stores whatever bytes it is given as TEXT.
            let bytes: &[u8] = row.try_get_unchecked(index).map_err(decode_err)?;
            b.append_value(std::str::from_utf8(bytes).map_err(|_| Bad::Text)?);
        }
        _ => return Err(Bad::Type(class)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
    use arrow_schema::DataType;

    use super::*;
    use crate::Model;

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
        let mut spec = SourceSpec::new(
            url,
            model,
            columns.iter().map(|c| (*c).to_owned()).collect(),
        );
        spec.batch_size = batch_size;
        spec
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
    async fn a_missing_column_names_the_one_meant_and_lists_the_columns_that_exist() {
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
            "column `mail` does not exist in the source; did you mean `email`? available columns: id, email"
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
}
