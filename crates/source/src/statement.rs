//! What the MySQL and SQLite readers share, written once: planning a read
//! (the model's columns described, the plan, the `SELECT` with its cursor
//! or anti-join) and streaming its rows into batches. The two differ by
//! their quote character, their types ([`Plan::new`]'s `kind_of`) and how a
//! cell is appended; PostgreSQL reads through `COPY` and ADBC through
//! Arrow, so they have readers of their own.

use crate::columns::{Builder, Kind, quote_column};
use crate::cursor::{Param, Statement};
use crate::{Driver, Plan, Result, Source, SourceSpec, describe_columns, from_clause, read_rows};

/// The plan of `spec`'s read over `conn` (quoting names with `quote`, typing
/// columns with `kind_of`), and its `SELECT`.
pub(crate) async fn plan<C>(
    spec: &SourceSpec,
    conn: &mut C,
    driver: Driver,
    quote: char,
    kind_of: impl Fn(&str) -> Option<Kind>,
) -> Result<(Plan, Statement)>
where
    for<'c> &'c mut C: sqlx::Executor<'c>,
{
    let from = from_clause(&spec.model, quote);
    let available = describe_columns(&mut *conn, &from).await?;
    let plan = Plan::new(spec, &available, kind_of)?;
    let columns: Vec<String> = spec
        .columns
        .iter()
        .map(|c| quote_column(c, quote))
        .collect();
    let statement = crate::cursor::select(
        &columns,
        &from,
        spec.since.as_ref(),
        spec.anti_join.as_ref(),
        driver,
        quote,
    );
    Ok((plan, statement))
}

/// Streams `statement`'s rows over `conn` as `spec`'s batches, each cell
/// appended with `append` (its column's builder, the row, the column's
/// index, the row's number).
pub(crate) fn open<DB>(
    spec: &SourceSpec,
    plan: Plan,
    mut conn: DB::Connection,
    statement: Statement,
    append: impl Fn(&Plan, &mut Builder, &DB::Row, usize, u64) -> Result<()> + Send + Sync + 'static,
) -> Source
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let (batch_size, read_timeout) = (spec.batch_size, spec.read_timeout);
    Source::start(plan.schema.clone(), plan.columns(), move |tx| async move {
        let query = sqlx::query::<DB>(&statement.sql);
        let rows = match statement.param {
            None => sqlx::Executor::fetch(&mut conn, statement.sql.as_str()),
            Some(Param::Int(n)) => query.bind(n).fetch(&mut conn),
            Some(Param::Text(text)) => query.bind(text).fetch(&mut conn),
        };
        read_rows(
            rows,
            &plan,
            batch_size,
            read_timeout,
            &tx,
            |builder, row, i, n| append(&plan, builder, row, i, n),
        )
        .await
    })
}
