//! Reads a warehouse table or query as a bounded stream of Arrow record batches.
//!
//! The `Source` API with what every driver shares
//! (the plan of columns and types, the batch loop with its read timer,
//! inspection, the warehouse's clock), kept in one place so that the three
//! drivers' modules hold only what differs between them.
//!
//! [`Source::open`] connects, works out the Arrow schema of the model before
//! any row is read (so a missing column or a type retl cannot read fails the
//! run up front, naming the column), then streams rows in batches of
//! `batch_size`. At most two batches wait in the channel between the reader and
//! the run, so memory stays flat however large the table is. Dropping the
//! [`Source`] cancels the read.
//!
//! A table model reads only the columns the activation needs, each name quoted
//! for the dialect; a query model nests the user's SQL as a subquery and picks
//! the needed columns from it by name.
//!
//! | database | how rows are read |
//! |---|---|
//! | PostgreSQL | `COPY (SELECT …) TO STDOUT (FORMAT binary)`, parsed straight into Arrow builders |
//! | MySQL, MariaDB | a streamed prepared statement (binary protocol) |
//! | SQLite | a streamed statement |
//! | anything with an ADBC driver (`source.adbc`, `snowflake://`, `bigquery://`) | the driver's Arrow stream, converted only where retl reads a type differently ([`Adbc`]) |
//!
//! Column types map to Arrow without loss: integers of every width (unsigned
//! too), floats, booleans, text, dates, timestamps (with and without a zone,
//! both as UTC microseconds; a timestamp without a zone is taken as UTC),
//! and decimals, UUIDs and JSON as their exact text (never through `f64`). A
//! type retl cannot read is an error naming the column and its database type,
//! raised before any row is read.
//!
//! An activation's `source:` settings and their reader live in [`SourceConfig`]
//! and [`read_source`].
//!
//! Connection URLs can hold passwords: no error or log line of this crate
//! prints one.

mod adbc;
mod columns;
mod config;
mod cursor;
mod dbt;
mod dialect;
mod error;
mod keytable;
mod mysql;
mod postgres;
mod shortcut;
mod sqlite;
mod statement;
mod writeback;

use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use adbc::Adbc;
use columns::Kind;
pub use config::{SourceConfig, read_source, source_schema};
pub use cursor::{CursorValue, Incremental, Lookback, Since};
pub use dialect::Dialect;
pub use error::{Error, Result};
pub use keytable::{AntiJoin, Found, KeyTable, table_name, valid_schema};
pub use writeback::{KeyValue, Writer};

/// What to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Model {
    /// A table, optionally schema-qualified (`analytics.orders`).
    Table(String),
    /// A `SELECT` statement, run as written (nested as a subquery).
    Query(String),
}

retl_config::spelled! {
    /// How a PostgreSQL-protocol source is read (`source.read`).
    #[derive(Default)]
    pub enum Read {
        /// `COPY (SELECT …) TO STDOUT (FORMAT binary)`: the fastest (the default).
        #[default]
        Copy = "copy",
        /// A server-side cursor (`DECLARE … CURSOR`, then `FETCH n` per
        /// batch), for servers without binary COPY (Redshift, CockroachDB).
        Cursor = "cursor",
    }
}

retl_config::spelled! {
    /// Where new rows are told from settled ones (`source.diff`).
    #[derive(Default)]
    pub enum Diff {
        /// retl reads every row (or, in cursor mode, the recent ones) and
        /// its state decides (the default).
        #[default]
        Retl = "retl",
        /// The warehouse anti-joins the source against a table of settled
        /// keys that retl keeps in `source.diff_schema`: only rows not in it
        /// cross the network ([`KeyTable`]); the state still decides each.
        Warehouse = "warehouse",
    }
}

/// Everything needed to open a source.
#[derive(Clone)]
pub struct SourceSpec {
    /// The connection URL (`postgres://…`, `mysql://…`, `sqlite://…`); may hold a password.
    pub connection: String,
    /// The table or query.
    pub model: Model,
    /// The columns the activation reads, in the order the batches will hold them.
    pub columns: Vec<String>,
    /// Rows per batch.
    pub batch_size: usize,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long the database may stay silent while retl waits for rows (the
    /// time retl itself spends sending does not count).
    pub read_timeout: Duration,
    /// Cursor mode: only rows at or past this point (`None`: every row).
    pub since: Option<Since>,
    /// How a PostgreSQL-protocol source is read (other drivers ignore it).
    pub read: Read,
    /// `source.diff: warehouse`: only rows whose key is not in this table.
    pub anti_join: Option<AntiJoin>,
    /// `source.adbc`: read through this ADBC driver (`connection` is then
    /// only a name for people: `adbc:DRIVER`).
    pub adbc: Option<Adbc>,
    /// Where the configuration names each column (`file:line:column
    /// (field)`), for a column the model lacks.
    pub named_at: Vec<(String, String)>,
}

impl SourceSpec {
    /// Where the configuration names `column`, if it is known.
    pub fn named_at(&self, column: &str) -> Option<String> {
        self.named_at
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, at)| at.clone())
    }

    /// A spec with the default batch size (10,000) and timeouts (30 s to connect,
    /// 300 s of database silence).
    pub fn new(connection: impl Into<String>, model: Model, columns: Vec<String>) -> Self {
        SourceSpec {
            connection: connection.into(),
            model,
            columns,
            batch_size: 10_000,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_mins(5),
            since: None,
            read: Read::Copy,
            anti_join: None,
            adbc: None,
            named_at: Vec::new(),
        }
    }
}

impl std::fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceSpec")
            .field("connection", &redact_url(&self.connection))
            .field("model", &self.model)
            .field("columns", &self.columns)
            .field("batch_size", &self.batch_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("since", &self.since)
            .field("read", &self.read)
            .field("anti_join", &self.anti_join)
            .field("adbc", &self.adbc)
            .field("named_at", &self.named_at)
            .finish()
    }
}

pub use dbt::{Dbt, DbtModel};
pub use retl_config::redact_url;

/// The database behind a connection URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// `sqlite://` or `sqlite:`.
    Sqlite,
    /// `postgres://` or `postgresql://` (PostgreSQL and compatible warehouses).
    Postgres,
    /// `mysql://` or `mariadb://`.
    Mysql,
}

impl Driver {
    /// Chooses the driver by the URL's scheme.
    pub fn for_url(url: &str) -> Result<Self> {
        let scheme = url
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Ok(Driver::Sqlite),
            "postgres" | "postgresql" => Ok(Driver::Postgres),
            "mysql" | "mariadb" => Ok(Driver::Mysql),
            _ => Err(Error::UnsupportedScheme { scheme }),
        }
    }
}

/// How a source's needed columns map onto what the model returns.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) schema: SchemaRef,
    pub(crate) kinds: Vec<Kind>,
    /// The database type name of each needed column.
    pub(crate) db_types: Vec<String>,
}

impl Plan {
    /// Checks every needed column exists in `available` (name, database type) and
    /// has a type `kind_of` knows.
    pub(crate) fn new(
        spec: &SourceSpec,
        available: &[(String, String)],
        kind_of: impl Fn(&str) -> Option<Kind>,
    ) -> Result<Plan> {
        let mut fields = Vec::with_capacity(spec.columns.len());
        let mut kinds = Vec::with_capacity(spec.columns.len());
        let mut db_types = Vec::with_capacity(spec.columns.len());
        let mut problems = Vec::new();
        for column in &spec.columns {
            let Some((_, db_type)) = available.iter().find(|(name, _)| name == column) else {
                problems.push(Error::ColumnMissing {
                    column: column.clone(),
                    available: available.iter().map(|(n, _)| n.clone()).collect(),
                    named_at: spec.named_at(column),
                });
                continue;
            };
            let Some(kind) = kind_of(db_type) else {
                problems.push(Error::UnsupportedType {
                    column: column.clone(),
                    db_type: db_type.clone(),
                });
                continue;
            };
            let mut field = Field::new(column, kind.data_type(), true);
            if kind == Kind::Utf8 && matches!(db_type.as_str(), "NUMERIC" | "DECIMAL") {
                // Exact text of a number: a key of it keeps the integer's
                // identity when its places are all zero (see retl_diff's hash).
                field = field.with_metadata(std::collections::HashMap::from([(
                    retl_diff::DECIMAL_TEXT.to_owned(),
                    "true".to_owned(),
                )]));
            }
            if kind == Kind::Utf8 && is_json_type(db_type) {
                // Semi-structured: a list field reads it as a JSON array.
                field = field.with_metadata(std::collections::HashMap::from([(
                    retl_mapping::JSON_TEXT.to_owned(),
                    "true".to_owned(),
                )]));
            }
            fields.push(field);
            kinds.push(kind);
            db_types.push(db_type.clone());
        }
        // Every column problem at once: one is itself, several are listed.
        match problems.len() {
            0 => {}
            1 => return Err(problems.remove(0)),
            _ => return Err(Error::Columns(problems)),
        }
        Ok(Plan {
            schema: Arc::new(Schema::new(fields)),
            kinds,
            db_types,
        })
    }
}

/// Whether a column of the database type `db_type` (as the native drivers
/// name it) is read as JSON text: `JSON`, `JSONB`, and PostgreSQL's arrays
/// (read through `to_json`).
fn is_json_type(db_type: &str) -> bool {
    matches!(db_type, "JSON" | "JSONB") || db_type.ends_with("[]")
}

/// What [`Source::inspect`] found.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The schema the batches would have.
    pub schema: SchemaRef,
    /// Each column read, with its type as the database names it.
    pub columns: Vec<(String, String)>,
    /// How many rows the model has, when asked.
    pub rows: Option<u64>,
}

impl Plan {
    /// Each column read, with its type as the database names it.
    pub(crate) fn columns(&self) -> Vec<(String, String)> {
        self.schema
            .fields()
            .iter()
            .zip(&self.db_types)
            .map(|(field, db_type)| (field.name().clone(), db_type.clone()))
            .collect()
    }
}

/// An open source: its schema, and a stream of batches.
#[derive(Debug)]
pub struct Source {
    schema: SchemaRef,
    /// Each column read, with its type as the database names it.
    db_types: Vec<(String, String)>,
    batches: mpsc::Receiver<Result<Batch>>,
    reader: JoinHandle<()>,
    /// The undecodable cells of the batch last returned.
    problems: Vec<CellProblem>,
}

/// The `FROM` clause of a model: the quoted table, or the query as a subquery.
pub(crate) fn from_clause(model: &Model, quote: char) -> String {
    match model {
        Model::Table(table) => columns::quote_ident(table, quote),
        Model::Query(query) => format!("({}) AS retl_q", columns::nestable(query)),
    }
}

/// The columns (name, database type) of `SELECT * FROM {from}`, without running it.
pub(crate) async fn describe_columns<'c, E>(conn: E, from: &str) -> Result<Vec<(String, String)>>
where
    E: sqlx::Executor<'c>,
{
    use sqlx::{Column as _, TypeInfo as _};
    let sql = format!("SELECT * FROM {from}");
    let described = conn.describe(&sql).await.map_err(Error::Query)?;
    Ok(described
        .columns()
        .iter()
        .map(|c| (c.name().to_owned(), c.type_info().name().to_owned()))
        .collect())
}

/// Runs `fut` under the spec's connect timeout.
pub(crate) async fn connecting<T>(
    spec: &SourceSpec,
    fut: impl Future<Output = std::result::Result<T, sqlx::Error>>,
) -> Result<T> {
    match tokio::time::timeout(spec.connect_timeout, fut).await {
        Ok(result) => result.map_err(Error::Connect),
        Err(_) => Err(Error::ConnectTimeout(spec.connect_timeout)),
    }
}

impl Source {
    /// The warehouse's own clock: its `now()`, in UTC. A run compares it
    /// with this machine's before it trusts times it computes (row ages,
    /// cursor marks). SQLite's clock is this machine's.
    pub async fn warehouse_now(spec: &SourceSpec) -> Result<chrono::DateTime<chrono::Utc>> {
        if let Some(adbc) = &spec.adbc {
            return adbc::warehouse_now(adbc, (spec.connect_timeout, spec.read_timeout)).await;
        }
        let text: String = match Driver::for_url(&spec.connection)? {
            Driver::Sqlite => {
                let mut conn = sqlite::connect(spec).await?;
                sqlx::query_scalar("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")
                    .fetch_one(&mut conn)
                    .await
            }
            Driver::Postgres => {
                let mut conn = postgres::connect(spec).await?;
                sqlx::query_scalar(
                    "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
                )
                .fetch_one(&mut conn)
                .await
            }
            Driver::Mysql => {
                let mut conn = mysql::connect(spec).await?;
                sqlx::query_scalar("SELECT DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%dT%H:%i:%s.%fZ')")
                    .fetch_one(&mut conn)
                    .await
            }
        }
        .map_err(Error::Query)?;
        chrono::DateTime::parse_from_rfc3339(&text)
            .map(|t| t.to_utc())
            .map_err(|e| Error::Decode {
                column: "now()".to_owned(),
                message: format!("the warehouse's clock reads `{text}`: {e}"),
            })
    }

    /// Connects, checks the model's columns and types, and starts reading.
    pub async fn open(spec: &SourceSpec) -> Result<Source> {
        if spec.batch_size == 0 {
            return Err(Error::InvalidBatchSize);
        }
        if let Some(adbc) = &spec.adbc {
            return Source::open_adbc(spec, adbc).await;
        }
        match Driver::for_url(&spec.connection)? {
            Driver::Sqlite => sqlite::open(spec).await,
            Driver::Postgres => postgres::open(spec).await,
            Driver::Mysql => mysql::open(spec).await,
        }
    }

    /// Connects and checks the model's columns and types without reading a
    /// row: the schema the batches would have, each column's database type,
    /// and (if `count_rows`) how many rows the model has, counted by the
    /// database (`SELECT COUNT(*)`), not read.
    pub async fn inspect(spec: &SourceSpec, count_rows: bool) -> Result<Inspection> {
        if let Some(adbc) = &spec.adbc {
            return Source::inspect_adbc(spec, adbc, count_rows).await;
        }
        // Counted over the model itself: the plan's statement may be a COPY.
        let count_sql =
            |quote: char| format!("SELECT COUNT(*) FROM {}", from_clause(&spec.model, quote));
        // Plans the model on a driver's connection, then counts its rows there.
        macro_rules! inspect {
            ($plan:expr, $quote:expr) => {{
                let (plan, mut conn, _) = $plan.await?;
                let rows = if count_rows {
                    let (n,): (i64,) = sqlx::query_as(&count_sql($quote))
                        .fetch_one(&mut conn)
                        .await
                        .map_err(Error::Query)?;
                    Some(n)
                } else {
                    None
                };
                (plan, rows)
            }};
        }
        let (plan, rows) = match Driver::for_url(&spec.connection)? {
            Driver::Sqlite => inspect!(sqlite::plan(spec), '"'),
            Driver::Postgres => inspect!(postgres::plan(spec), '"'),
            Driver::Mysql => inspect!(mysql::plan(spec), '`'),
        };
        Ok(Inspection {
            columns: plan.columns(),
            schema: plan.schema,
            rows: rows.map(|n| u64::try_from(n).unwrap_or_default()),
        })
    }

    /// Whether the table's `column` leads an index, so that cursor mode's
    /// `WHERE column >= …` does not scan the table. `None` when the database
    /// cannot tell: the model is a query, or the catalogue cannot be read.
    pub async fn cursor_indexed(spec: &SourceSpec, column: &str) -> Result<Option<bool>> {
        if spec.adbc.is_some() {
            return Ok(None);
        }
        let Model::Table(table) = &spec.model else {
            return Ok(None);
        };
        let (schema, name) = match table.rsplit_once('.') {
            Some((schema, name)) => (Some(schema.trim_matches(['"', '`'])), name),
            None => (None, table.as_str()),
        };
        let name = name.trim_matches(['"', '`']);
        let found: std::result::Result<(i64,), sqlx::Error> =
            match Driver::for_url(&spec.connection)? {
                Driver::Sqlite => {
                    let (_, mut conn, _) = sqlite::plan(spec).await?;
                    sqlx::query_as(
                        "SELECT COUNT(*) FROM pragma_index_list(?1) l, pragma_index_info(l.name) i
                     WHERE i.seqno = 0 AND i.name = ?2",
                    )
                    .bind(name)
                    .bind(column)
                    .fetch_one(&mut conn)
                    .await
                }
                Driver::Postgres => {
                    let (_, mut conn, _) = postgres::plan(spec).await?;
                    postgres::indexes_leading_with(&mut conn, schema, name, column).await
                }
                Driver::Mysql => {
                    let (_, mut conn, _) = mysql::plan(spec).await?;
                    sqlx::query_as(
                        "SELECT COUNT(*) FROM information_schema.statistics
                     WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?
                       AND column_name = ? AND seq_in_index = 1",
                    )
                    .bind(schema)
                    .bind(name)
                    .bind(column)
                    .fetch_one(&mut conn)
                    .await
                }
            };
        Ok(found.ok().map(|(n,)| n > 0))
    }

    /// [`cursor_indexed`](Self::cursor_indexed), with "cannot tell" for a failure.
    pub async fn inspect_cursor(spec: &SourceSpec, column: &str) -> Option<bool> {
        Self::cursor_indexed(spec, column).await.ok().flatten()
    }

    /// Spawns `read` as the reader task; an error it ends with becomes the
    /// stream's last item.
    fn start<F>(
        schema: SchemaRef,
        db_types: Vec<(String, String)>,
        read: impl FnOnce(mpsc::Sender<Result<Batch>>) -> F,
    ) -> Source
    where
        F: Future<Output = Result<()>> + Send + 'static,
    {
        // Two batches wait at most: the reader blocks until the run takes one.
        let (tx, rx) = mpsc::channel(2);
        let errors = tx.clone();
        let reading = read(tx);
        let reader = tokio::spawn(async move {
            if let Err(e) = reading.await {
                // The receiver may be gone (the run was cancelled): nothing left to tell.
                let _ = errors.send(Err(e)).await;
            }
        });
        Source {
            schema,
            db_types,
            batches: rx,
            reader,
            problems: Vec::new(),
        }
    }

    /// The type of `column` as the database names it.
    pub fn db_type(&self, column: &str) -> Option<&str> {
        self.db_types
            .iter()
            .find(|(name, _)| name == column)
            .map(|(_, t)| t.as_str())
    }

    /// The Arrow schema of every batch: the requested columns, in order.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The next batch; `None` at the end of the model. After an error, `None`.
    /// Cells it could not decode are NULL in it, and listed by
    /// [`cell_problems`](Self::cell_problems).
    pub async fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
        match self.batches.recv().await? {
            Ok((batch, problems)) => {
                self.problems = problems;
                Some(Ok(batch))
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// The cells of the batch last returned that could not be decoded.
    pub fn cell_problems(&self) -> &[CellProblem] {
        &self.problems
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Sends a finished batch; `false` when nobody listens any more.
pub(crate) async fn flush(
    schema: &SchemaRef,
    builders: &mut [columns::Builder],
    problems: Vec<CellProblem>,
    tx: &mpsc::Sender<Result<Batch>>,
) -> bool {
    let columns = builders.iter_mut().map(columns::Builder::finish).collect();
    let batch = RecordBatch::try_new(schema.clone(), columns)
        .expect("builders follow the schema and hold the same number of rows");
    tx.send(Ok((batch, problems))).await.is_ok()
}

/// A batch and the cells of it that could not be decoded.
pub(crate) type Batch = (RecordBatch, Vec<CellProblem>);

/// A cell the database sent that retl cannot decode (text that is not
/// UTF-8, say). It is NULL in its batch; the run rejects its row with this
/// reason and goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellProblem {
    /// The row, within its batch.
    pub row: usize,
    /// The column.
    pub column: String,
    /// What is wrong.
    pub message: String,
}

/// Reads a stream of database rows into batches of `plan`, sending each full
/// batch to `tx`; `append(builder, row, column, row_number)` fills one cell.
/// The stream's next item, or [`Error::ReadTimeout`] when the database sends
/// nothing for `timeout`. A timer is set only when no item is ready: an item
/// is usually one row, and a timer per row costs a clock read and a timer
/// entry each.
pub(crate) async fn next_within<S>(stream: &mut S, timeout: Duration) -> Result<Option<S::Item>>
where
    S: futures::Stream + Unpin,
{
    use futures::{FutureExt as _, StreamExt as _};
    if let Some(item) = stream.next().now_or_never() {
        return Ok(item);
    }
    tokio::time::timeout(timeout, stream.next())
        .await
        .map_err(|_| Error::ReadTimeout(timeout))
}

pub(crate) async fn read_rows<R>(
    mut rows: futures::stream::BoxStream<'_, std::result::Result<R, sqlx::Error>>,
    plan: &Plan,
    batch_size: usize,
    read_timeout: Duration,
    tx: &mpsc::Sender<Result<Batch>>,
    append: impl Fn(&mut columns::Builder, &R, usize, u64) -> Result<()>,
) -> Result<()> {
    let mut builders = builders(plan, batch_size);
    let mut problems = Vec::new();
    let mut row_number: u64 = 0;
    loop {
        let Some(row) = next_within(&mut rows, read_timeout).await? else {
            break;
        };
        let row = row.map_err(Error::Query)?;
        row_number += 1;
        let in_batch = builders[0].len();
        for (index, builder) in builders.iter_mut().enumerate() {
            match append(builder, &row, index, row_number) {
                Ok(()) => {}
                // One bad cell costs its row, not the run.
                Err(Error::Decode { column, message }) => {
                    builder.append_null();
                    problems.push(CellProblem {
                        row: in_batch,
                        column,
                        message,
                    });
                }
                Err(other) => return Err(other),
            }
        }
        if builders[0].len() >= batch_size
            && !flush(
                &plan.schema,
                &mut builders,
                std::mem::take(&mut problems),
                tx,
            )
            .await
        {
            return Ok(());
        }
    }
    if builders.first().is_some_and(|b| b.len() > 0) {
        flush(&plan.schema, &mut builders, problems, tx).await;
    }
    Ok(())
}

/// The builders for one batch of `plan`.
pub(crate) fn builders(plan: &Plan, rows: usize) -> Vec<columns::Builder> {
    plan.kinds
        .iter()
        .map(|k| columns::Builder::new(*k, rows))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_schemes_are_named_in_the_error() {
        let err = Driver::for_url("oracle://x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported connection scheme `oracle`; supported: postgres, postgresql, mysql, mariadb, sqlite"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_database_that_sends_no_row_for_the_read_timeout_fails_the_read() {
        use futures::StreamExt as _;
        let plan = Plan {
            schema: Arc::new(arrow_schema::Schema::empty()),
            kinds: Vec::new(),
            db_types: Vec::new(),
        };
        let (tx, _rx) = mpsc::channel(2);
        let rows = futures::stream::pending::<std::result::Result<(), sqlx::Error>>().boxed();
        let timeout = Duration::from_mins(5);
        let read = read_rows(rows, &plan, 10, timeout, &tx, |_, (), _, _| Ok(()));
        // Paused time: the five minutes pass as soon as nothing else can run.
        assert!(matches!(read.await, Err(Error::ReadTimeout(t)) if t == timeout));
    }
}
