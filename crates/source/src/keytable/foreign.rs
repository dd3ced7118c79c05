//! Running a dialect's key table statements ([`super::dialects`]) on the
//! connection that speaks it: an ADBC driver's, or a PostgreSQL-protocol
//! connection to Redshift (whose server said so: it has none of the
//! PostgreSQL statements the native path uses).

use arrow_array::{ArrayRef, RecordBatch};
use sqlx::postgres::PgConnection;

use super::{KeyTable, dialects};
use crate::adbc::Updater;
use crate::writeback::KeyValue;
use crate::{Dialect, Error, Result};

/// A connection that runs [`dialects::Sql`]'s statements.
pub(super) enum On<'c> {
    /// An ADBC driver's connection.
    Adbc(&'c Updater),
    /// Redshift, over the PostgreSQL protocol (sqlx).
    Redshift(&'c mut PgConnection),
}

impl KeyTable {
    fn fail(&self, what: &str, error: Error) -> Error {
        self.adbc_denied(what, error)
    }

    /// Runs `statements` in order.
    pub(super) async fn foreign_run(
        &self,
        on: &mut On<'_>,
        statements: Vec<String>,
        what: &'static str,
    ) -> Result<()> {
        for sql in statements {
            match on {
                On::Adbc(conn) => {
                    conn.execute(sql, None, what)
                        .await
                        .map_err(|e| self.fail(what, e))?;
                }
                On::Redshift(c) => {
                    sqlx::query(&sql)
                        .execute(&mut **c)
                        .await
                        .map_err(|e| self.denied(what, e))?;
                }
            }
        }
        Ok(())
    }

    /// The integer the query `sql` answers (a `COUNT(*)`).
    pub(super) async fn foreign_count(
        &self,
        on: &mut On<'_>,
        sql: String,
        what: &'static str,
    ) -> Result<u64> {
        match on {
            On::Adbc(conn) => conn.count(sql, what).await.map_err(|e| self.fail(what, e)),
            On::Redshift(c) => {
                let n: i64 = sqlx::query_scalar(&sql)
                    .fetch_one(&mut **c)
                    .await
                    .map_err(|e| self.denied(what, e))?;
                Ok(u64::try_from(n).unwrap_or_default())
            }
        }
    }

    /// Whether table `name` is there.
    pub(super) async fn foreign_exists(&self, on: &mut On<'_>, name: &str) -> Result<bool> {
        let what = "look the table up";
        match self.foreign_sql().exists(name) {
            dialects::Lookup::Count(sql) => Ok(self.foreign_count(on, sql, what).await? > 0),
            dialects::Lookup::Listed(statements) => {
                let On::Adbc(conn) = on else {
                    unreachable!("only Spark SQL lists, and it is read through ADBC")
                };
                for sql in statements {
                    let rows: usize = conn
                        .rows(sql, what)
                        .await
                        .map_err(|e| self.fail(what, e))?
                        .iter()
                        .map(RecordBatch::num_rows)
                        .sum();
                    if rows == 0 {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        }
    }

    /// Whether the table holds any key.
    pub(super) async fn foreign_any(&self, on: &mut On<'_>) -> Result<bool> {
        let sql = self.foreign_sql().any(&self.name);
        Ok(self.foreign_count(on, sql, "read the table").await? > 0)
    }

    /// Makes the schema if needed, then table `name` (empty, or `fill`ed
    /// with the model's keys).
    pub(super) async fn foreign_create(
        &self,
        on: &mut On<'_>,
        name: &str,
        fill: bool,
    ) -> Result<()> {
        let sql = self.foreign_sql();
        if let Some(create) = sql.create_schema() {
            let there = match sql.schema_exists() {
                Some(lookup) => self.foreign_count(on, lookup, "look the schema up").await? > 0,
                None => false,
            };
            if !there {
                // Snowflake's CREATE SCHEMA makes the new schema the
                // session's: the model's unqualified names must still
                // resolve where they did.
                let current = match (&*on, sql.dialect) {
                    (On::Adbc(conn), Dialect::Snowflake) => {
                        let what = "look the session's schema up";
                        let pairs = text_pairs(
                            &conn
                                .rows(
                                    "SELECT CURRENT_DATABASE() AS d, CURRENT_SCHEMA() AS s"
                                        .to_owned(),
                                    what,
                                )
                                .await
                                .map_err(|e| self.fail(what, e))?,
                        );
                        pairs.into_iter().next()
                    }
                    _ => None,
                };
                self.foreign_run(on, vec![create], "create the schema")
                    .await?;
                if let Some((database, schema)) = current {
                    let back = format!(
                        "USE SCHEMA {}.{}",
                        crate::columns::quote_column(&database, '"'),
                        crate::columns::quote_column(&schema, '"')
                    );
                    self.foreign_run(on, vec![back], "return to the session's schema")
                        .await?;
                }
            }
        }
        self.foreign_run(on, sql.create(name, fill), "create the table")
            .await
    }

    /// Puts the staging table in the table's place.
    pub(super) async fn foreign_swap(&self, on: &mut On<'_>) -> Result<()> {
        let statements = self.foreign_sql().swap(&self.name, &self.staging());
        self.foreign_run(on, statements, "put the baseline in place")
            .await
    }

    /// What each key column casts a bound text to ([`dialects::Sql::cast`]).
    async fn foreign_casts(&self, on: &mut On<'_>) -> Result<Vec<Option<String>>> {
        let what = "read the key columns' types";
        let sql = self.foreign_sql();
        if let Some(lookup) = sql.named_types(&self.name) {
            let named: Vec<(String, String)> = match on {
                On::Redshift(c) => sqlx::query_as(&lookup)
                    .fetch_all(&mut **c)
                    .await
                    .map_err(|e| self.denied(what, e))?,
                On::Adbc(conn) => text_pairs(
                    &conn
                        .rows(lookup, what)
                        .await
                        .map_err(|e| self.fail(what, e))?,
                ),
            };
            return Ok(self
                .columns
                .iter()
                .map(|c| {
                    named
                        .iter()
                        .find(|(n, _)| n == c)
                        .and_then(|(_, t)| dialects::Sql::cast_named(t))
                })
                .collect());
        }
        let On::Adbc(conn) = on else {
            unreachable!("Redshift's types are looked up by name")
        };
        let batches = conn
            .rows(sql.types(&self.name), what)
            .await
            .map_err(|e| self.fail(what, e))?;
        let schema = batches.first().map(RecordBatch::schema);
        Ok(schema
            .iter()
            .flat_map(|s| s.fields().iter().map(|f| sql.cast(f.data_type())))
            .collect())
    }

    /// Writes settled keys: PostgreSQL's as one JSON parameter, `DuckDB`'s
    /// through the driver's ingest, Redshift's as multi-row `INSERT`s, the
    /// others as one statement with a bound Arrow batch.
    pub(super) async fn foreign_push(&self, on: &mut On<'_>, keys: &[Vec<KeyValue>]) -> Result<()> {
        let what = "write settled keys";
        let sql = self.foreign_sql();
        if let (On::Adbc(conn), Dialect::Postgresql) = (&*on, sql.dialect) {
            for chunk in keys.chunks(Self::CHUNK) {
                let json = one_text(self.json_rows(chunk));
                conn.execute(sql.insert_json(&self.name), Some(json), what)
                    .await
                    .map_err(|e| self.fail(what, e))?;
            }
            return Ok(());
        }
        let casts = self.foreign_casts(on).await?;
        match on {
            On::Redshift(c) => {
                for chunk in keys.chunks(Self::CHUNK) {
                    let insert = sql.insert_rows(&self.name, &casts, chunk.len());
                    super::bind_keys(sqlx::query(&insert), chunk)
                        .execute(&mut **c)
                        .await
                        .map_err(|e| self.denied(what, e))?;
                }
                Ok(())
            }
            On::Adbc(conn) if sql.literals() => {
                for chunk in keys.chunks(Self::CHUNK) {
                    conn.execute(sql.insert_literals(&self.name, &casts, chunk), None, what)
                        .await
                        .map_err(|e| self.fail(what, e))?;
                }
                Ok(())
            }
            On::Adbc(conn) if sql.ingests() => {
                let insert = sql.insert_from(&self.name, &self.push_table(), &casts);
                self.through_push_table(conn, keys, insert, what).await
            }
            On::Adbc(conn) => {
                let insert = sql.insert(&self.name, &casts);
                conn.execute(insert, Some(self.batch(keys)?), what)
                    .await
                    .map_err(|e| self.fail(what, e))?;
                Ok(())
            }
        }
    }

    /// Removes keys (as [`KeyTable::remove`]).
    pub(super) async fn foreign_remove(
        &self,
        on: &mut On<'_>,
        keys: &[Vec<KeyValue>],
    ) -> Result<()> {
        let what = "remove keys retl never settled";
        let sql = self.foreign_sql();
        if let (On::Adbc(conn), Dialect::Postgresql) = (&*on, sql.dialect) {
            let json = one_text(self.json_rows(keys));
            conn.execute(sql.delete_json(&self.name), Some(json), what)
                .await
                .map_err(|e| self.fail(what, e))?;
            return Ok(());
        }
        let casts = self.foreign_casts(on).await?;
        match on {
            On::Redshift(c) => {
                for chunk in keys.chunks(100) {
                    let delete = sql.delete_rows(&self.name, &casts, chunk.len());
                    super::bind_keys(sqlx::query(&delete), chunk)
                        .execute(&mut **c)
                        .await
                        .map_err(|e| self.denied(what, e))?;
                }
                Ok(())
            }
            On::Adbc(_) if sql.literals() => {
                let keep = format!("{}__keep", self.name);
                let statements = sql.rebuild_without(&self.name, &keep, &casts, keys);
                self.foreign_run(on, statements, what).await
            }
            On::Adbc(conn) if sql.ingests() => {
                let delete = sql.delete_from(&self.name, &self.push_table(), &casts);
                self.through_push_table(conn, keys, delete, what).await
            }
            On::Adbc(conn) => {
                conn.execute(
                    sql.delete(&self.name, &casts),
                    Some(self.batch(keys)?),
                    what,
                )
                .await
                .map_err(|e| self.fail(what, e))?;
                Ok(())
            }
        }
    }

    /// The table an ingest writes keys into before SQL copies them across.
    fn push_table(&self) -> String {
        format!("{}__push", self.name)
    }

    /// Ingests `keys` into the push table (made anew), runs `statement`
    /// (which reads it), and drops it.
    async fn through_push_table(
        &self,
        conn: &Updater,
        keys: &[Vec<KeyValue>],
        statement: String,
        what: &'static str,
    ) -> Result<()> {
        let sql = self.foreign_sql();
        let push = self.push_table();
        let drop = format!("DROP TABLE IF EXISTS {}", sql.qualified(&push));
        let mut on = On::Adbc(conn);
        self.foreign_run(&mut on, vec![drop.clone()], what).await?;
        conn.ingest(&self.schema, &push, self.batch(keys)?, what)
            .await
            .map_err(|e| self.fail(what, e))?;
        self.foreign_run(&mut on, vec![statement, drop], what).await
    }

    /// `keys` as an Arrow batch, a column per key column: `Int64` where
    /// every value is an integer, else text.
    fn batch(&self, keys: &[Vec<KeyValue>]) -> Result<RecordBatch> {
        let columns: Vec<(String, ArrayRef)> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, column)| {
                let values = keys.iter().map(|key| key.get(i));
                let ints: Option<Vec<i64>> = values
                    .clone()
                    .map(|v| match v {
                        Some(KeyValue::Int(n)) => Some(*n),
                        _ => None,
                    })
                    .collect();
                let array: ArrayRef = match ints {
                    Some(ints) => std::sync::Arc::new(arrow_array::Int64Array::from(ints)),
                    None => std::sync::Arc::new(
                        values
                            .map(|v| match v {
                                Some(KeyValue::Int(n)) => Some(n.to_string()),
                                Some(KeyValue::Text(t)) => Some(t.clone()),
                                None => None,
                            })
                            .collect::<arrow_array::StringArray>(),
                    ),
                };
                (column.clone(), array)
            })
            .collect();
        RecordBatch::try_from_iter(columns).map_err(|e| Error::Decode {
            column: String::new(),
            message: format!("the settled keys as a batch: {e}"),
        })
    }
}

/// The rows of two text columns.
fn text_pairs(batches: &[RecordBatch]) -> Vec<(String, String)> {
    use arrow_array::cast::AsArray as _;
    let mut pairs = Vec::new();
    for batch in batches {
        let (Some(first), Some(second)) = (
            batch.column(0).as_string_opt::<i32>(),
            batch.column(1).as_string_opt::<i32>(),
        ) else {
            continue;
        };
        for row in 0..batch.num_rows() {
            pairs.push((first.value(row).to_owned(), second.value(row).to_owned()));
        }
    }
    pairs
}

/// One text parameter, as a one-row batch.
fn one_text(text: String) -> RecordBatch {
    let array: ArrayRef = std::sync::Arc::new(arrow_array::StringArray::from(vec![text]));
    RecordBatch::try_from_iter([("keys", array)]).expect("one column of one row")
}
