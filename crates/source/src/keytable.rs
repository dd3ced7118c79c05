//! The warehouse side of `source.diff: warehouse`: a table of an
//! activation's settled keys inside the source database, which the read
//! anti-joins against so that only rows not in it cross the network.
//!
//! Each step (make, fill, swap, write keys, probe the
//! grants) holds the SQL of the three databases side by side, so that a
//! change to one dialect is made beside the others.
//!
//! # The table
//!
//! | database | name | columns |
//! |---|---|---|
//! | PostgreSQL | `"{diff_schema}"."k_{name}_{digest}"`, unlogged | the key columns, in the source's own types; `settled_at timestamptz` |
//! | MySQL, MariaDB | `` `{diff_schema}`.`k_{name}_{digest}` `` (a database) | the key columns; `settled_at datetime(6)` |
//! | SQLite (no schemas) | `"{diff_schema}_k_{name}_{digest}"` | the key columns; `settled_at` (text) |
//!
//! `{name}` is the activation's name (cut, see [`table_name`]) and
//! `{digest}` is made of the state's identity and the activation's name: each
//! state keeps a table of its own, so the table only ever holds back rows
//! that this state settled. Keys the state does not know (a person or a
//! script wrote them) are found by the run (the table holds more keys than
//! retl wrote) and removed.
//!
//! It is made with `CREATE TABLE … AS SELECT {key columns} … FROM {model}`
//! holding no row, so every key column has exactly the type the model gives
//! it, and compares with the source's column in that type: a key is found in
//! the table exactly when the source's row has the same key value, which is
//! when retl gives them the same key (its canonical hash is a function of
//! the values read, and the values of one type read the same from either
//! table). It has an index on the key columns, not a unique one: a key
//! written twice (a source with duplicate keys) changes no answer of
//! `NOT EXISTS`.
//!
//! # Lag, never lead
//!
//! The table only ever holds keys the state's ledger holds settled: the run
//! writes a key after the ledger's transaction that settled it committed.
//! So the table may lack settled keys (a run killed between the two, a table
//! truncated or dropped), and then those rows come back through the
//! anti-join, the ledger says they are settled, and the run writes them
//! again. Nothing is ever sent because of what this table holds or lacks:
//! the ledger decides every row that crosses.
//!
//! # The first run's baseline
//!
//! `first_run: skip_existing` fills the table inside the warehouse: a
//! staging table is made with `CREATE TABLE … AS SELECT` of the key
//! columns, retl reads the keys back from it (its rows are what the ledger
//! records), and once the ledger has them the staging table is renamed into
//! place. A row added to the source during all this is in neither.

use std::fmt;

use sqlx::Connection as _;

mod dialects;
mod foreign;

use foreign::On;

use crate::columns::quote_column;
use crate::writeback::{KeyValue, Writer};
use crate::{Adbc, Dialect, Driver, Error, Model, Result, from_clause};

/// Whether `name` can be `source.diff_schema`: letters, digits and `_`,
/// not starting with a digit (it names a schema, a database or a prefix).
pub fn valid_schema(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 48
}

/// The most characters of an activation's name a key table's name keeps.
const NAME_PART: usize = 24;

/// The name of the key table of `activation` kept by the state `owner`:
/// `k_{name}_{digest}`. The digest (12 hex digits of SHA-256 over the
/// state's identity and the whole activation name) makes it one table per
/// activation and state: a second project on the same warehouse (staging,
/// with its own state), or an activation whose name is another's with a
/// suffix, never shares one. The name part is the activation's, cut to 24
/// characters of ASCII letters, digits and `_` (others become `_`), so that
/// the table and the names made from it (`_key`, `__staging`,
/// `__staging_key`, `__old`: at most 52 characters) stay within every
/// dialect's limit (PostgreSQL 63 bytes, MySQL 64 characters). A name made
/// from it never has the shape of another's table name: a table's name
/// always ends in `_` and 12 hex digits.
pub fn table_name(activation: &str, owner: &str) -> String {
    use sha2::Digest as _;
    let readable: String = activation
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(NAME_PART)
        .collect();
    let digest = sha2::Sha256::digest(format!("retl key table 1\u{1f}{owner}\u{1f}{activation}"));
    let hex = digest.iter().take(6).fold(String::new(), |mut hex, b| {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
        hex
    });
    format!("k_{readable}_{hex}")
}

/// The anti-join a read adds: only rows whose key is not in `table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AntiJoin {
    /// The key table, quoted for the dialect.
    pub(crate) table: String,
    /// The key columns, unquoted.
    pub(crate) columns: Vec<String>,
    /// MySQL, MariaDB: compare bytes too, and as a `LEFT JOIN`. Their
    /// default collations call `abc` and `ABC`, or `a` and `a `, equal,
    /// where retl's keys differ; and MariaDB's subquery cache answers a
    /// `NOT EXISTS` for `ABC` with the answer it found for `abc`.
    pub(crate) bytes: bool,
}

impl AntiJoin {
    /// `k.c = outer.c AND …` (with the byte comparison where it is needed).
    fn equal(&self, outer: &str, quote: char) -> String {
        let equal: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let c = quote_column(c, quote);
                if self.bytes {
                    // The first term finds the key through the index, the
                    // second keeps only the byte-for-byte equal.
                    format!("retl_k.{c} = {outer}.{c} AND BINARY retl_k.{c} = BINARY {outer}.{c}")
                } else {
                    format!("retl_k.{c} = {outer}.{c}")
                }
            })
            .collect();
        equal.join(" AND ")
    }

    /// The `LEFT JOIN` clause (MySQL), or nothing.
    pub(crate) fn join(&self, outer: &str, quote: char) -> Option<String> {
        self.bytes.then(|| {
            format!(
                " LEFT JOIN {} AS retl_k ON {}",
                self.table,
                self.equal(outer, quote)
            )
        })
    }

    /// The `WHERE` condition: `NOT EXISTS (SELECT 1 FROM table k WHERE k.c =
    /// outer.c …)`, or with the `LEFT JOIN`, `k.c IS NULL`. The table holds
    /// no NULL key, so a row with a match is never null-extended.
    pub(crate) fn condition(&self, outer: &str, quote: char) -> String {
        if self.bytes {
            let first = quote_column(&self.columns[0], quote);
            return format!("retl_k.{first} IS NULL");
        }
        format!(
            "NOT EXISTS (SELECT 1 FROM {} AS retl_k WHERE {})",
            self.table,
            self.equal(outer, quote)
        )
    }

    /// The first key column.
    pub(crate) fn first_column(&self) -> &str {
        &self.columns[0]
    }

    /// Whether the read's columns must be named through the outer alias
    /// (a join puts the key table's columns beside them).
    pub(crate) fn qualifies(&self) -> bool {
        self.bytes
    }
}

/// Where a key table's statements go.
#[derive(Clone, PartialEq, Eq)]
enum Target {
    /// A native connection (`postgres://`, `mysql://`, `sqlite://`); a
    /// PostgreSQL-protocol server that says it is Redshift is spoken to in
    /// Redshift's SQL ([`foreign`]).
    Native(Driver),
    /// A PostgreSQL-protocol connection spoken to in Redshift's SQL
    /// whatever the server says ([`KeyTable::speaking_redshift`]).
    Redshift,
    /// An ADBC driver, in its dialect ([`dialects`]).
    Adbc(Box<Adbc>, Dialect),
}

/// An activation's key table in its source database.
#[derive(Clone)]
pub struct KeyTable {
    connection: String,
    target: Target,
    model: Model,
    /// The schema (a database on MySQL; a name prefix on SQLite).
    schema: String,
    /// The table's own name.
    name: String,
    columns: Vec<String>,
}

impl fmt::Debug for KeyTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyTable")
            .field("table", &self.display())
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

/// What [`KeyTable::ensure`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The table was not there, and now is (empty).
    pub created: bool,
    /// It holds no key.
    pub empty: bool,
}

impl Target {
    fn quote(&self) -> char {
        match self {
            Target::Native(Driver::Mysql) => '`',
            Target::Native(Driver::Postgres | Driver::Sqlite) | Target::Redshift => '"',
            Target::Adbc(_, dialect) => dialect.quote(),
        }
    }
}

impl KeyTable {
    /// Keys written to the table per statement.
    pub const CHUNK: usize = 1_000;

    /// Whether a key column read as `data_type` can be kept in a key table:
    /// it must come back from it as the same value (integers, and text,
    /// which holds decimals and UUIDs).
    pub fn keeps(data_type: &arrow_schema::DataType) -> bool {
        use arrow_schema::DataType as T;
        matches!(
            data_type,
            T::Int8
                | T::Int16
                | T::Int32
                | T::Int64
                | T::UInt8
                | T::UInt16
                | T::UInt32
                | T::UInt64
                | T::Utf8
                | T::LargeUtf8
        )
    }

    /// The key table of activation `activation` of the state `owner` (the
    /// state's identity, made once), reading `model` at `connection` (or
    /// through `adbc`, whose dialect must be known: see
    /// [`Adbc::resolved`]), identified by `columns`, in schema `schema`.
    pub fn new(
        connection: &str,
        model: &Model,
        adbc: Option<&Adbc>,
        schema: &str,
        activation: &str,
        owner: &str,
        columns: &[String],
    ) -> Result<KeyTable> {
        let target = match adbc {
            Some(adbc) => {
                let dialect =
                    Dialect::required(adbc.dialect, &adbc.driver, "source.diff: warehouse")?;
                if dialect == Dialect::Mysql {
                    return Err(Error::Adbc {
                        driver: adbc.driver.clone(),
                        message: "diff: warehouse through an ADBC driver has no MySQL dialect: read MySQL and MariaDB through a mysql:// connection".to_owned(),
                        status: None,
                        sqlstate: None,
                    });
                }
                Target::Adbc(Box::new(adbc.clone()), dialect)
            }
            None => Target::Native(Driver::for_url(connection)?),
        };
        let stem = table_name(activation, owner);
        let (schema, name) = match target {
            Target::Native(Driver::Sqlite) | Target::Adbc(_, Dialect::Sqlite) => {
                (String::new(), format!("{schema}_{stem}"))
            }
            _ => (schema.to_owned(), stem),
        };
        Ok(KeyTable {
            connection: connection.to_owned(),
            target,
            model: model.clone(),
            schema,
            name,
            columns: columns.to_vec(),
        })
    }

    fn quote(&self) -> char {
        self.target.quote()
    }

    /// The statements of an ADBC source's dialect, if it is one.
    fn sql(&self) -> Option<dialects::Sql> {
        match &self.target {
            Target::Adbc(_, dialect) => Some(self.sql_in(*dialect)),
            Target::Native(_) | Target::Redshift => None,
        }
    }

    fn sql_in(&self, dialect: Dialect) -> dialects::Sql {
        dialects::Sql {
            dialect,
            schema: self.schema.clone(),
            columns: self.columns.clone(),
            model: self.model.clone(),
        }
    }

    /// The statements [`foreign`] runs: the ADBC source's dialect's, or
    /// (a PostgreSQL-protocol connection to Redshift) Redshift's.
    fn foreign_sql(&self) -> dialects::Sql {
        self.sql().unwrap_or_else(|| self.sql_in(Dialect::Redshift))
    }

    /// This table on a PostgreSQL-protocol connection, spoken to in
    /// Redshift's SQL whatever the server says it is: for a server that
    /// speaks Redshift's SQL without saying so (and to test that SQL on
    /// PostgreSQL, as far as the two agree).
    #[must_use]
    pub fn speaking_redshift(mut self) -> KeyTable {
        if matches!(self.target, Target::Native(Driver::Postgres)) {
            self.target = Target::Redshift;
        }
        self
    }

    /// `name` in this table's schema, quoted.
    fn qualified(&self, name: &str) -> String {
        qualify(&self.schema, name, self.quote())
    }

    /// The table as people write it: `retl.orders`.
    pub fn display(&self) -> String {
        if self.schema.is_empty() {
            self.name.clone()
        } else {
            format!("{}.{}", self.schema, self.name)
        }
    }

    fn staging(&self) -> String {
        format!("{}__staging", self.name)
    }

    /// The anti-join a read against this table adds.
    pub fn anti_join(&self) -> AntiJoin {
        AntiJoin {
            table: self.qualified(&self.name),
            columns: self.columns.clone(),
            bytes: matches!(self.target, Target::Native(Driver::Mysql)),
        }
    }

    /// The model a baseline reads its keys from: the staging table
    /// [`fill_staging`](Self::fill_staging) made.
    pub fn staging_model(&self) -> Model {
        // `Model::Table` splits on dots and quotes each part.
        Model::Table(if self.schema.is_empty() {
            self.staging()
        } else {
            format!("{}.{}", self.schema, self.staging())
        })
    }

    fn key_list(&self) -> String {
        let q = self.quote();
        self.columns
            .iter()
            .map(|c| quote_column(c, q))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The GRANT (or the step) that lets retl make and fill the table,
    /// for the error that says it cannot.
    pub fn grant(&self) -> String {
        let user = user_of(&self.connection);
        let driver = match &self.target {
            Target::Native(driver) => *driver,
            Target::Redshift => Driver::Postgres,
            Target::Adbc(adbc, _) => {
                let user = adbc
                    .options
                    .iter()
                    .find(|(k, _)| k == "username")
                    .map_or("<retl's user>", |(_, v)| v.as_str());
                return self.sql().map(|s| s.grant(user)).unwrap_or_default();
            }
        };
        match driver {
            Driver::Postgres => format!(
                "GRANT CREATE ON DATABASE {db} TO {user}; (or make the schema for it: CREATE SCHEMA {schema} AUTHORIZATION {user}; or, if it exists, GRANT USAGE, CREATE ON SCHEMA {schema} TO {user})",
                db = database_of(&self.connection),
                schema = quote_column(&self.schema, '"'),
            ),
            Driver::Mysql => format!(
                "GRANT SELECT, INSERT, CREATE, DROP, ALTER, INDEX ON `{}`.* TO '{user}'@'%' (and CREATE DATABASE `{}` if it does not exist)",
                self.schema, self.schema
            ),
            Driver::Sqlite => {
                "make the database file (and its directory) writable by retl's user".to_owned()
            }
        }
    }

    fn denied(&self, what: &str, error: sqlx::Error) -> Error {
        Error::KeyTable {
            table: self.display(),
            what: what.to_owned(),
            error,
            grant: self.grant(),
        }
    }

    /// An ADBC error (whose message says what retl was doing), said with
    /// which table and the grant that lets it.
    fn adbc_denied(&self, _what: &str, error: Error) -> Error {
        match error {
            Error::Adbc {
                driver,
                message,
                status,
                sqlstate,
            } => Error::Adbc {
                driver,
                message: format!(
                    "retl's key table `{}`: {message} (if retl lacks the right: {})",
                    self.display(),
                    self.grant()
                ),
                status,
                sqlstate,
            },
            other => other,
        }
    }

    async fn connect(&self) -> Result<Writer> {
        match &self.target {
            Target::Adbc(adbc, dialect) => {
                let adbc = Adbc {
                    dialect: Some(*dialect),
                    ..(**adbc).clone()
                };
                Writer::for_adbc(&adbc).await
            }
            Target::Native(Driver::Postgres) | Target::Redshift => {
                Ok(match Writer::connect(&self.connection).await? {
                    Writer::Postgres(mut c) => {
                        if self.target == Target::Redshift
                            || crate::postgres::is_redshift(&mut c).await
                        {
                            Writer::Redshift(c)
                        } else {
                            Writer::Postgres(c)
                        }
                    }
                    other => other,
                })
            }
            Target::Native(_) => Writer::connect(&self.connection).await,
        }
    }

    /// Whether the table is there, without making it.
    pub async fn exists(&self) -> Result<bool> {
        let mut conn = self.connect().await?;
        self.exists_on(&mut conn).await
    }

    async fn exists_on(&self, conn: &mut Writer) -> Result<bool> {
        let found: std::result::Result<i64, sqlx::Error> =
            match conn {
                Writer::Adbc(u) => return self.foreign_exists(&mut On::Adbc(u), &self.name).await,
                Writer::Redshift(c) => {
                    return self.foreign_exists(&mut On::Redshift(c), &self.name).await;
                }
                Writer::Postgres(c) => sqlx::query_scalar(
                    "SELECT COUNT(*) FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace
                     WHERE n.nspname = $1 AND t.relname = $2",
                )
                .bind(&self.schema)
                .bind(&self.name)
                .fetch_one(&mut *c)
                .await,
                Writer::Mysql(c) => {
                    sqlx::query_scalar(
                        "SELECT COUNT(*) FROM information_schema.TABLES
                     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                    )
                    .bind(&self.schema)
                    .bind(&self.name)
                    .fetch_one(&mut *c)
                    .await
                }
                Writer::Sqlite(c) => {
                    sqlx::query_scalar(
                        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    )
                    .bind(&self.name)
                    .fetch_one(&mut *c)
                    .await
                }
            };
        Ok(found.map_err(|e| self.denied("look the table up", e))? > 0)
    }

    /// Makes the table (and its schema) if it is not there; says whether it
    /// was made and whether it holds any key.
    pub async fn ensure(&self) -> Result<Found> {
        let mut conn = self.connect().await?;
        let created = if self.exists_on(&mut conn).await? {
            false
        } else {
            self.create(&mut conn, &self.name, false).await?;
            true
        };
        let empty = created || self.is_empty_on(&mut conn).await?;
        Ok(Found { created, empty })
    }

    /// Whether the table is there, and whether retl may make it or write to
    /// it, without making or writing anything (`retl check`). `None` where
    /// the database cannot say cheaply (MySQL's grants, SQLite's file).
    pub async fn probe(&self) -> Result<(bool, Option<bool>)> {
        let mut conn = self.connect().await?;
        let exists = self.exists_on(&mut conn).await?;
        let Writer::Postgres(c) = &mut conn else {
            return Ok((exists, None));
        };
        let allowed: std::result::Result<bool, sqlx::Error> = if exists {
            sqlx::query_scalar(
                "SELECT has_table_privilege(format('%I.%I', $1::text, $2::text), 'SELECT, INSERT')",
            )
            .bind(&self.schema)
            .bind(&self.name)
            .fetch_one(&mut *c)
            .await
        } else {
            sqlx::query_scalar(
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)
                        THEN has_schema_privilege($1, 'USAGE, CREATE')
                        ELSE has_database_privilege(current_database(), 'CREATE') END",
            )
            .bind(&self.schema)
            .fetch_one(&mut *c)
            .await
        };
        Ok((
            exists,
            Some(allowed.map_err(|e| self.denied("look the grants up", e))?),
        ))
    }

    async fn is_empty_on(&self, conn: &mut Writer) -> Result<bool> {
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 AS one FROM {} LIMIT 1) AS retl_any",
            self.qualified(&self.name)
        );
        let count: std::result::Result<i64, sqlx::Error> = match conn {
            Writer::Adbc(u) => return self.foreign_any(&mut On::Adbc(u)).await.map(|any| !any),
            Writer::Redshift(c) => {
                return self.foreign_any(&mut On::Redshift(c)).await.map(|any| !any);
            }
            Writer::Postgres(c) => sqlx::query_scalar(&sql).fetch_one(&mut *c).await,
            Writer::Mysql(c) => sqlx::query_scalar(&sql).fetch_one(&mut *c).await,
            Writer::Sqlite(c) => sqlx::query_scalar(&sql).fetch_one(&mut *c).await,
        };
        Ok(count.map_err(|e| self.denied("read the table", e))? == 0)
    }

    /// Makes the schema if needed, then table `name` of the key columns:
    /// empty, or (`fill`) holding every non-NULL key of the model.
    async fn create(&self, conn: &mut Writer, name: &str, fill: bool) -> Result<()> {
        let q = self.quote();
        let table = self.qualified(name);
        let keys = self.key_list();
        let from = from_clause(&self.model, q);
        let not_null: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{} IS NOT NULL", quote_column(c, q)))
            .collect();
        let filter = if fill {
            not_null.join(" AND ")
        } else {
            "1 = 0".to_owned()
        };
        let index = quote_column(&format!("{name}_key"), q);
        let create = |what: &str, e| self.denied(what, e);
        match conn {
            Writer::Adbc(u) => return self.foreign_create(&mut On::Adbc(u), name, fill).await,
            Writer::Redshift(c) => {
                return self.foreign_create(&mut On::Redshift(c), name, fill).await;
            }
            Writer::Postgres(c) => {
                let mut tx = c.begin().await.map_err(|e| create("begin", e))?;
                let schema_there: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                )
                .bind(&self.schema)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| create("look the schema up", e))?;
                if !schema_there {
                    sqlx::query(&format!("CREATE SCHEMA {}", quote_column(&self.schema, q)))
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| create("create the schema", e))?;
                }
                for sql in [
                    // Unlogged: no WAL, about 40% less time to fill it. A
                    // crash of the server empties it, which only makes the
                    // next run read every row once (the ledger decides).
                    format!(
                        "CREATE UNLOGGED TABLE {table} AS SELECT {keys}, now() AS settled_at FROM {from} WHERE {filter}"
                    ),
                    format!("CREATE INDEX {index} ON {table} ({keys})"),
                    format!("ANALYZE {table}"),
                ] {
                    sqlx::query(&sql)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| create("create the table", e))?;
                }
                tx.commit().await.map_err(|e| create("commit", e))?;
            }
            Writer::Mysql(c) => {
                sqlx::query(&format!(
                    "CREATE DATABASE IF NOT EXISTS {}",
                    quote_column(&self.schema, q)
                ))
                .execute(&mut *c)
                .await
                .map_err(|e| create("create the database", e))?;
                sqlx::query(&format!(
                    "CREATE TABLE {table} (INDEX {index} ({keys})) AS SELECT {keys}, CURRENT_TIMESTAMP(6) AS settled_at FROM {from} WHERE {filter}"
                ))
                .execute(&mut *c)
                .await
                .map_err(|e| create("create the table", e))?;
            }
            Writer::Sqlite(c) => {
                let mut tx = c.begin().await.map_err(|e| create("begin", e))?;
                for sql in [
                    format!(
                        "CREATE TABLE {table} AS SELECT {keys}, CURRENT_TIMESTAMP AS settled_at FROM {from} WHERE {filter}"
                    ),
                    format!("CREATE INDEX {index} ON {} ({keys})", quote_column(name, q)),
                ] {
                    sqlx::query(&sql)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| create("create the table", e))?;
                }
                tx.commit().await.map_err(|e| create("commit", e))?;
            }
        }
        Ok(())
    }

    async fn drop_table(&self, conn: &mut Writer, name: &str) -> Result<()> {
        let sql = format!("DROP TABLE IF EXISTS {}", self.qualified(name));
        let done = match conn {
            Writer::Adbc(u) => {
                return self
                    .foreign_run(&mut On::Adbc(u), vec![sql], "drop a table of its own")
                    .await;
            }
            Writer::Redshift(c) => {
                return self
                    .foreign_run(&mut On::Redshift(c), vec![sql], "drop a table of its own")
                    .await;
            }
            Writer::Postgres(c) => sqlx::query(&sql).execute(&mut *c).await.map(|_| ()),
            Writer::Mysql(c) => sqlx::query(&sql).execute(&mut *c).await.map(|_| ()),
            Writer::Sqlite(c) => sqlx::query(&sql).execute(&mut *c).await.map(|_| ()),
        };
        done.map_err(|e| self.denied("drop a table of its own", e))
    }

    /// Makes the staging table of a first run's baseline: every non-NULL
    /// key of the model, copied inside the warehouse.
    pub async fn fill_staging(&self) -> Result<()> {
        let mut conn = self.connect().await?;
        let staging = self.staging();
        self.drop_table(&mut conn, &staging).await?;
        self.create(&mut conn, &staging, true).await
    }

    /// Puts the staging table in the key table's place (in one step where
    /// the database has one): called once the ledger holds its keys.
    pub async fn swap_in_staging(&self) -> Result<()> {
        let mut conn = self.connect().await?;
        let q = self.quote();
        let (table, staging) = (self.qualified(&self.name), self.qualified(&self.staging()));
        let swap = |e| self.denied("put the baseline in place", e);
        match &mut conn {
            Writer::Adbc(u) => return self.foreign_swap(&mut On::Adbc(u)).await,
            Writer::Redshift(c) => return self.foreign_swap(&mut On::Redshift(c)).await,
            Writer::Postgres(c) => {
                let mut tx = c.begin().await.map_err(swap)?;
                for sql in [
                    format!("DROP TABLE IF EXISTS {table}"),
                    format!(
                        "ALTER TABLE {staging} RENAME TO {}",
                        quote_column(&self.name, q)
                    ),
                    format!(
                        "ALTER INDEX {}.{} RENAME TO {}",
                        quote_column(&self.schema, q),
                        quote_column(&format!("{}_key", self.staging()), q),
                        quote_column(&format!("{}_key", self.name), q)
                    ),
                ] {
                    sqlx::query(&sql).execute(&mut *tx).await.map_err(swap)?;
                }
                tx.commit().await.map_err(swap)?;
                // The visibility map set, the anti-join can read the key
                // table's index alone (an index-only scan).
                sqlx::query(&format!("VACUUM (ANALYZE) {table}"))
                    .execute(&mut *c)
                    .await
                    .map_err(swap)?;
            }
            Writer::Mysql(c) => {
                let old = self.qualified(&format!("{}__old", self.name));
                // One atomic RENAME of both; the old table is dropped after.
                sqlx::query(&format!("DROP TABLE IF EXISTS {old}"))
                    .execute(&mut *c)
                    .await
                    .map_err(swap)?;
                sqlx::query(&format!(
                    "CREATE TABLE IF NOT EXISTS {table} LIKE {staging}"
                ))
                .execute(&mut *c)
                .await
                .map_err(swap)?;
                sqlx::query(&format!(
                    "RENAME TABLE {table} TO {old}, {staging} TO {table}"
                ))
                .execute(&mut *c)
                .await
                .map_err(swap)?;
                sqlx::query(&format!("DROP TABLE {old}"))
                    .execute(&mut *c)
                    .await
                    .map_err(swap)?;
            }
            Writer::Sqlite(c) => {
                let mut tx = c.begin().await.map_err(swap)?;
                for sql in [
                    format!("DROP TABLE IF EXISTS {table}"),
                    format!(
                        "ALTER TABLE {staging} RENAME TO {}",
                        quote_column(&self.name, q)
                    ),
                    // An index keeps its name through a rename, and index
                    // names are the database's: the next baseline's
                    // staging index would meet it.
                    format!(
                        "DROP INDEX IF EXISTS {}",
                        quote_column(&format!("{}_key", self.staging()), q)
                    ),
                    format!(
                        "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
                        quote_column(&format!("{}_key", self.name), q),
                        quote_column(&self.name, q),
                        self.key_list()
                    ),
                ] {
                    sqlx::query(&sql).execute(&mut *tx).await.map_err(swap)?;
                }
                tx.commit().await.map_err(swap)?;
            }
        }
        Ok(())
    }

    /// Writes settled keys (each one value per key column, in order).
    pub async fn push(&self, conn: &mut Writer, keys: &[Vec<KeyValue>]) -> Result<()> {
        let table = self.qualified(&self.name);
        let columns = self.key_list();
        let push = |e| self.denied("write settled keys", e);
        for chunk in keys.chunks(Self::CHUNK) {
            match conn {
                Writer::Adbc(u) => return self.foreign_push(&mut On::Adbc(u), keys).await,
                Writer::Redshift(c) => return self.foreign_push(&mut On::Redshift(c), keys).await,
                Writer::Postgres(c) => {
                    // One parameter: each key a JSON object, made into a
                    // row of the table's own types by the database.
                    sqlx::query(&format!(
                        "INSERT INTO {table} ({columns}, settled_at)
                         SELECT {columns}, now() FROM json_populate_recordset(NULL::{table}, $1::json)"
                    ))
                    .bind(self.json_rows(chunk))
                    .execute(&mut *c)
                    .await
                    .map_err(push)?;
                }
                Writer::Mysql(c) => {
                    let now = "CURRENT_TIMESTAMP(6)";
                    let sql = insert_values(&table, &columns, self.columns.len(), chunk.len(), now);
                    bind_keys(sqlx::query(&sql), chunk)
                        .execute(&mut *c)
                        .await
                        .map_err(push)?;
                }
                Writer::Sqlite(c) => {
                    let now = "CURRENT_TIMESTAMP";
                    let sql = insert_values(&table, &columns, self.columns.len(), chunk.len(), now);
                    bind_keys(sqlx::query(&sql), chunk)
                        .execute(&mut *c)
                        .await
                        .map_err(push)?;
                }
            }
        }
        Ok(())
    }

    /// Removes keys from the table (keys the state never settled: a person
    /// or a script wrote them). Each one value per key column, in order.
    pub async fn remove(&self, conn: &mut Writer, keys: &[Vec<KeyValue>]) -> Result<()> {
        let table = self.qualified(&self.name);
        let q = self.quote();
        let remove = |e| self.denied("remove keys retl never settled", e);
        for chunk in keys.chunks(100) {
            match conn {
                Writer::Adbc(u) => return self.foreign_remove(&mut On::Adbc(u), keys).await,
                Writer::Redshift(c) => {
                    return self.foreign_remove(&mut On::Redshift(c), keys).await;
                }
                Writer::Postgres(c) => {
                    let equal: Vec<String> = self
                        .columns
                        .iter()
                        .map(|col| {
                            let col = quote_column(col, q);
                            format!("retl_k.{col} = retl_d.{col}")
                        })
                        .collect();
                    sqlx::query(&format!(
                        "DELETE FROM {table} AS retl_k USING json_populate_recordset(NULL::{table}, $1::json) AS retl_d WHERE {}",
                        equal.join(" AND ")
                    ))
                    .bind(self.json_rows(chunk))
                    .execute(&mut *c)
                    .await
                    .map_err(remove)?;
                }
                Writer::Mysql(c) => {
                    // Bytes compared, as the anti-join compares them.
                    let sql = self.delete_keys(&table, "BINARY ", chunk.len());
                    bind_keys(sqlx::query(&sql), chunk)
                        .execute(&mut *c)
                        .await
                        .map_err(remove)?;
                }
                Writer::Sqlite(c) => {
                    let sql = self.delete_keys(&table, "", chunk.len());
                    bind_keys(sqlx::query(&sql), chunk)
                        .execute(&mut *c)
                        .await
                        .map_err(remove)?;
                }
            }
        }
        Ok(())
    }

    /// `DELETE FROM table WHERE (c = ? AND …) OR …` for `keys` keys, each
    /// side of each `=` prefixed with `compare` (`BINARY ` on MySQL).
    fn delete_keys(&self, table: &str, compare: &str, keys: usize) -> String {
        let q = self.quote();
        let one: Vec<String> = self
            .columns
            .iter()
            .map(|col| {
                let col = quote_column(col, q);
                format!("{compare}{col} = {compare}?")
            })
            .collect();
        let one = format!("({})", one.join(" AND "));
        format!("DELETE FROM {table} WHERE {}", vec![one; keys].join(" OR "))
    }

    /// How many keys the table holds (a key written twice counts twice).
    pub async fn count(&self) -> Result<u64> {
        let mut conn = self.connect().await?;
        let sql = format!("SELECT COUNT(*) FROM {}", self.qualified(&self.name));
        let count: std::result::Result<i64, sqlx::Error> = match &mut conn {
            Writer::Adbc(u) => {
                let sql = self.foreign_sql().count(&self.name);
                return self
                    .foreign_count(&mut On::Adbc(u), sql, "count its keys")
                    .await;
            }
            Writer::Redshift(c) => {
                let sql = self.foreign_sql().count(&self.name);
                return self
                    .foreign_count(&mut On::Redshift(c), sql, "count its keys")
                    .await;
            }
            Writer::Postgres(c) => sqlx::query_scalar(&sql).fetch_one(&mut *c).await,
            Writer::Mysql(c) => sqlx::query_scalar(&sql).fetch_one(&mut *c).await,
            Writer::Sqlite(c) => sqlx::query_scalar(&sql).fetch_one(&mut *c).await,
        };
        Ok(u64::try_from(count.map_err(|e| self.denied("count its keys", e))?).unwrap_or_default())
    }

    /// The table as a model to read its keys from (to check them against
    /// the state).
    pub fn model(&self) -> Model {
        Model::Table(if self.schema.is_empty() {
            self.name.clone()
        } else {
            format!("{}.{}", self.schema, self.name)
        })
    }

    /// Keys as the JSON rows PostgreSQL's `json_populate_recordset` makes
    /// rows of the table's own types from.
    fn json_rows(&self, keys: &[Vec<KeyValue>]) -> String {
        let rows: Vec<serde_json::Value> = keys
            .iter()
            .map(|key| {
                self.columns
                    .iter()
                    .zip(key)
                    .map(|(column, value)| {
                        let value = match value {
                            KeyValue::Int(i) => serde_json::Value::from(*i),
                            KeyValue::Text(t) => serde_json::Value::from(t.as_str()),
                        };
                        (column.clone(), value)
                    })
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            })
            .collect();
        serde_json::Value::Array(rows).to_string()
    }

    /// A connection to write keys with ([`push`](Self::push)).
    pub async fn writer(&self) -> Result<Writer> {
        self.connect().await
    }
}

/// Binds every value of `keys`, in order: an integer as an integer (its
/// index is used), anything else as text.
fn bind_keys<'q, DB>(
    mut query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    keys: &'q [Vec<KeyValue>],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for value in keys.iter().flatten() {
        query = match value {
            KeyValue::Int(i) => query.bind(*i),
            KeyValue::Text(t) => query.bind(t.as_str()),
        };
    }
    query
}

/// `INSERT INTO table (columns, settled_at) VALUES (?, …, now), …` for `rows` keys.
fn insert_values(table: &str, columns: &str, width: usize, rows: usize, now: &str) -> String {
    let row = format!("({}, {now})", vec!["?"; width].join(", "));
    format!(
        "INSERT INTO {table} ({columns}, settled_at) VALUES {}",
        vec![row; rows].join(", ")
    )
}

/// The part of a connection URL after the scheme: `user:pass@host/db?…`.
fn after_scheme(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, rest)| rest)
}

/// The user of a connection URL, for a GRANT statement (never its password).
fn user_of(url: &str) -> String {
    let rest = after_scheme(url);
    let user = match rest.split('/').next().unwrap_or_default().rsplit_once('@') {
        Some((credentials, _)) => credentials.split(':').next().unwrap_or_default(),
        None => "",
    };
    if user.is_empty() {
        "<retl's user>".to_owned()
    } else {
        user.to_owned()
    }
}

/// The database of a connection URL, for a GRANT statement.
fn database_of(url: &str) -> String {
    let rest = after_scheme(url);
    let database = rest
        .split_once('/')
        .map(|(_, path)| path.split('?').next().unwrap_or_default())
        .unwrap_or_default();
    if database.is_empty() {
        "<the database>".to_owned()
    } else {
        database.to_owned()
    }
}

/// `name` in `schema` (none when empty), each quoted with `quote`.
fn qualify(schema: &str, name: &str, quote: char) -> String {
    if schema.is_empty() {
        quote_column(name, quote)
    } else {
        format!(
            "{}.{}",
            quote_column(schema, quote),
            quote_column(name, quote)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::table_name;

    #[test]
    fn table_names_fit_every_dialect_and_never_meet_another_activations() {
        let long = "a".repeat(200);
        for name in [long.as_str(), "orders", "Orders-2027 (EU)", "ordres_é", ""] {
            let table = table_name(name, "state-1");
            // The longest name made from it: the staging table's index.
            assert!(format!("{table}__staging_key").len() <= 63, "{table}");
            assert!(table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        }
        // One table per activation and state.
        assert_ne!(
            table_name("orders", "state-1"),
            table_name("orders", "state-2")
        );
        assert_ne!(table_name(&long, "s"), table_name(&format!("{long}b"), "s"));
        assert_ne!(table_name("Orders", "s"), table_name("orders", "s"));
        // `orders`'s staging table is not `orders__staging`'s key table.
        let staging = format!("{}__staging", table_name("orders", "s"));
        for other in ["orders__staging", &staging] {
            assert_ne!(table_name(other, "s"), staging);
        }
        assert_eq!(table_name("orders", "s"), table_name("orders", "s"));
    }
}
