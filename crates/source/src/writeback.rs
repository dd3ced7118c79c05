//! Writing a value back to the warehouse, one row at a time (invitation links).

use std::str::FromStr;

use sqlx::mysql::MySqlConnection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

use crate::columns::quote_ident;
use crate::{Driver, Error, Result};

/// The key value of the row to update, bound with its own type so that the
/// database can use its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValue {
    /// An integer key.
    Int(i64),
    /// Any other key, as text.
    Text(String),
}

/// A connection that updates one column of one row at a time.
pub enum Writer {
    /// PostgreSQL.
    Postgres(PgConnection),
    /// Redshift, over the PostgreSQL protocol (its key table speaks
    /// Redshift's SQL).
    Redshift(PgConnection),
    /// MySQL or MariaDB.
    Mysql(MySqlConnection),
    /// SQLite.
    Sqlite(SqliteConnection),
    /// An ADBC driver's connection (`source.adbc`).
    Adbc(crate::adbc::Updater),
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Writer::Postgres(_) => "Writer(postgres)",
            Writer::Redshift(_) => "Writer(redshift)",
            Writer::Mysql(_) => "Writer(mysql)",
            Writer::Sqlite(_) => "Writer(sqlite)",
            Writer::Adbc(_) => "Writer(adbc)",
        })
    }
}

impl Writer {
    /// Connects to the source `config` reads, for writing: through its ADBC
    /// driver when it has one, else by its connection URL.
    pub async fn for_source(config: &crate::SourceConfig) -> Result<Writer> {
        match &config.adbc {
            Some(adbc) => Writer::for_adbc(adbc).await,
            None => Writer::connect(&config.connection).await,
        }
    }

    /// Connects through an ADBC driver, for writing.
    pub async fn for_adbc(adbc: &crate::Adbc) -> Result<Writer> {
        crate::adbc::Updater::connect(adbc).await.map(Writer::Adbc)
    }

    /// Connects to the warehouse at `url` for writing.
    pub async fn connect(url: &str) -> Result<Writer> {
        Ok(match Driver::for_url(url)? {
            Driver::Postgres => {
                Writer::Postgres(PgConnection::connect(url).await.map_err(Error::Connect)?)
            }
            Driver::Mysql => {
                let url = match url.split_once("://") {
                    Some((scheme, rest)) if scheme.eq_ignore_ascii_case("mariadb") => {
                        format!("mysql://{rest}")
                    }
                    _ => url.to_owned(),
                };
                Writer::Mysql(
                    MySqlConnection::connect(&url)
                        .await
                        .map_err(Error::Connect)?,
                )
            }
            Driver::Sqlite => Writer::Sqlite(
                SqliteConnectOptions::from_str(url)
                    .map_err(Error::Connect)?
                    .connect()
                    .await
                    .map_err(Error::Connect)?,
            ),
        })
    }

    /// `UPDATE table SET column = value WHERE key_column = key`; the number of
    /// rows updated. `key_type` is the key column's type as the database
    /// names it ([`Source::db_type`](crate::Source::db_type)): on PostgreSQL
    /// the key is cast to it, so that a `uuid` or `numeric` key (read as text)
    /// compares in its own type and its index is used.
    pub async fn set_text(
        &mut self,
        table: &str,
        key_column: &str,
        column: &str,
        key: &KeyValue,
        key_type: Option<&str>,
        value: &str,
    ) -> Result<u64> {
        macro_rules! update {
            ($conn:expr, $quote:expr, $p1:expr, $p2:expr) => {{
                let sql = format!(
                    "UPDATE {} SET {} = {} WHERE {} = {}",
                    quote_ident(table, $quote),
                    crate::columns::quote_column(column, $quote),
                    $p1,
                    crate::columns::quote_column(key_column, $quote),
                    $p2
                );
                let query = sqlx::query(&sql).bind(value);
                let query = match key {
                    KeyValue::Int(i) => query.bind(*i),
                    KeyValue::Text(t) => query.bind(t.as_str()),
                };
                query
                    .execute($conn)
                    .await
                    .map_err(Error::Query)?
                    .rows_affected()
            }};
        }
        // Only a plain type name is spliced into the SQL.
        let pg_key = match key_type {
            Some(t)
                if !t.is_empty()
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ' ')) =>
            {
                format!("CAST($2 AS {t})")
            }
            _ => "$2".to_owned(),
        };
        Ok(match self {
            Writer::Adbc(updater) => {
                return updater
                    .set_text(table, key_column, column, key, value)
                    .await;
            }
            Writer::Postgres(conn) | Writer::Redshift(conn) => {
                update!(&mut *conn, '"', "$1", pg_key)
            }
            Writer::Mysql(conn) => update!(&mut *conn, '`', "?", "?"),
            Writer::Sqlite(conn) => update!(&mut *conn, '"', "?1", "?2"),
        })
    }
}
