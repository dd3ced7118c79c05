//! MySQL and MariaDB sources, read as a streamed prepared statement.
//!
//! The session is set to UTC (`time_zone = '+00:00'`), so `TIMESTAMP` values
//! arrive in UTC; `DATETIME` has no zone and is taken as UTC. While retl is
//! busy sending, it stops reading and the server waits: `net_write_timeout` is
//! raised for the session so that MySQL does not drop a slow reader.

use std::str::FromStr;

use chrono::{NaiveDate, NaiveDateTime};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlRow};
use sqlx::{ConnectOptions, Executor, Row, ValueRef};

use crate::columns::{Builder, Kind};
use crate::{Error, Plan, Result, Source, SourceSpec, connecting};

fn kind_of(db_type: &str) -> Option<Kind> {
    Some(match db_type {
        "BOOLEAN" => Kind::Bool,
        "TINYINT" => Kind::Int8,
        "SMALLINT" => Kind::Int16,
        "MEDIUMINT" | "INT" => Kind::Int32,
        "BIGINT" => Kind::Int64,
        "TINYINT UNSIGNED" => Kind::UInt8,
        "SMALLINT UNSIGNED" => Kind::UInt16,
        "MEDIUMINT UNSIGNED" | "INT UNSIGNED" => Kind::UInt32,
        "BIGINT UNSIGNED" => Kind::UInt64,
        "FLOAT" => Kind::Float32,
        "DOUBLE" => Kind::Float64,
        "DECIMAL" | "CHAR" | "VARCHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT"
        | "ENUM" | "SET" | "JSON" => Kind::Utf8,
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => Kind::Binary,
        "DATE" => Kind::Date32,
        "DATETIME" | "TIMESTAMP" => Kind::Timestamp,
        _ => return None,
    })
}

fn options(url: &str) -> Result<MySqlConnectOptions> {
    // sqlx knows the scheme as mysql://; mariadb:// is the same protocol.
    let url = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("mariadb") => format!("mysql://{rest}"),
        _ => url.to_owned(),
    };
    MySqlConnectOptions::from_str(&url).map_err(Error::Connect)
}

/// A connection to the warehouse, its session in UTC.
pub(crate) async fn connect(spec: &SourceSpec) -> Result<MySqlConnection> {
    let options = options(&spec.connection)?.timezone(Some("+00:00".to_owned()));
    connecting(spec, options.connect()).await
}

pub(crate) async fn plan(
    spec: &SourceSpec,
) -> Result<(Plan, MySqlConnection, crate::cursor::Statement)> {
    let mut conn = connect(spec).await?;
    conn.execute("SET SESSION net_write_timeout = 86400")
        .await
        .map_err(Error::Query)?;
    let (plan, statement) =
        crate::statement::plan(spec, &mut conn, crate::Driver::Mysql, '`', kind_of).await?;
    Ok((plan, conn, statement))
}

pub(crate) async fn open(spec: &SourceSpec) -> Result<Source> {
    let (plan, conn, statement) = plan(spec).await?;
    Ok(crate::statement::open::<sqlx::MySql>(
        spec,
        plan,
        conn,
        statement,
        |plan, builder, row, i, n| {
            append(builder, row, i).map_err(|e| Error::Decode {
                column: plan.schema.field(i).name().clone(),
                message: format!("row {n} ({}): {e}", plan.db_types[i]),
            })
        },
    ))
}

fn append(builder: &mut Builder, row: &MySqlRow, i: usize) -> std::result::Result<(), sqlx::Error> {
    if row.try_get_raw(i)?.is_null() {
        builder.append_null();
        return Ok(());
    }
    match builder {
        Builder::Bool(b) => b.append_value(row.try_get_unchecked(i)?),
        Builder::Int8(b) => b.append_value(row.try_get_unchecked(i)?),
        Builder::Int16(b) => b.append_value(row.try_get_unchecked(i)?),
        Builder::Int32(b) => b.append_value(row.try_get_unchecked(i)?),
        Builder::Int64(b) => b.append_value(row.try_get_unchecked(i)?),
        Builder::UInt8(b) => b.append_value(row.try_get_unchecked(i)?),
        Builder::UInt16(b) => b.append_value(row.try_get_unchecked(i)?),
        Builder::UInt32(b) => b.append_value(row.try_get_unchecked(i)?),
        Builder::UInt64(b) => b.append_value(row.try_get_unchecked(i)?),
        Builder::Float32(b) => b.append_value(row.try_get_unchecked(i)?),
        Builder::Float64(b) => b.append_value(row.try_get_unchecked(i)?),
        Builder::Utf8(b) => b.append_value(row.try_get_unchecked::<&str, _>(i)?),
        Builder::Binary(b) => b.append_value(row.try_get_unchecked::<&[u8], _>(i)?),
        Builder::Date32(b) => {
            let date: NaiveDate = row.try_get_unchecked(i)?;
            let days = date.signed_duration_since(NaiveDate::default()).num_days();
            b.append_value(i32::try_from(days).map_err(|e| sqlx::Error::Decode(Box::new(e)))?);
        }
        Builder::Timestamp(b) => {
            let at: NaiveDateTime = row.try_get_unchecked(i)?;
            b.append_value(at.and_utc().timestamp_micros());
        }
    }
    Ok(())
}
