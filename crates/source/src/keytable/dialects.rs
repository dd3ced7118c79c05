//! The key table's SQL for sources read through ADBC, one dialect beside
//! the others: PostgreSQL, Redshift, `DuckDB`, Snowflake, Databricks (Spark
//! SQL), `BigQuery` and SQLite. Pure text, so that each dialect's
//! statements are unit-tested here and run against real engines in the
//! integration tests.
//!
//! | dialect | table | settled keys go in as | baseline into place |
//! |---|---|---|---|
//! | PostgreSQL | `UNLOGGED`, indexed, `ANALYZE`d | one JSON parameter, made rows of the table's own types (`json_populate_recordset`) | drop, rename (table and index) |
//! | Redshift | plain (no `UNLOGGED`, no indexes), `ANALYZE`d | a bound Arrow batch, decimals `CAST` | drop, rename |
//! | `DuckDB` | plain | the driver's bulk ingest into `{table}__push`, then `INSERT … SELECT` | drop, rename |
//! | Snowflake | `TRANSIENT` (no fail-safe) | a bound Arrow batch | drop, rename (qualified) |
//! | Databricks | the catalog's default (Delta) | literals that can only be data (Spark Connect's driver binds one row, and has no ingest) | drop, rename (qualified) |
//! | `BigQuery` | plain | a bound Arrow batch | drop, rename |
//! | SQLite | indexed | a bound Arrow batch | drop, rename, index remade |
//!
//! A bound batch is one statement the driver executes once per key,
//! with every key's values travelling as Arrow columns: an integer key as
//! `Int64`, any other as text, `CAST` to the key column's type where it is
//! a decimal (retl reads decimals as their exact text). Every other key
//! column takes its bound value by the database's own assignment, which
//! keeps an integer's and a string's value exactly.
//!
//! Between dropping the old table and renaming the baseline into its place,
//! a killed run leaves no key table: the next run makes an empty one and
//! reads every row once, and the state decides each (nothing is sent
//! again). Only PostgreSQL's native path does the two in one transaction.

use arrow_schema::DataType;

use crate::columns::quote_column;
use crate::{Dialect, Model, from_clause};

/// A key table's name and columns, and the model it holds keys of.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pub dialect: Dialect,
    /// Empty on SQLite (no schemas: the name carries the prefix).
    pub schema: String,
    pub columns: Vec<String>,
    pub model: Model,
}

/// How one statement's answer says whether a table is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// A `COUNT(*)` of the table: above 0 when it is there.
    Count(String),
    /// Statements that each list what they find: the table is there when
    /// every one lists something (Spark: the schema, then the table).
    Listed(Vec<String>),
}

impl Sql {
    fn quote(&self) -> char {
        self.dialect.quote()
    }

    /// `name` in the table's schema, quoted.
    pub fn qualified(&self, name: &str) -> String {
        super::qualify(&self.schema, name, self.quote())
    }

    fn keys(&self, prefix: &str) -> String {
        let q = self.quote();
        self.columns
            .iter()
            .map(|c| format!("{prefix}{}", quote_column(c, q)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The time a key was settled, as the dialect writes "now" on its
    /// compute nodes (Redshift's `CURRENT_TIMESTAMP` is the leader's only).
    fn now(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgresql => "now()",
            Dialect::Redshift => "GETDATE()",
            Dialect::Duckdb | Dialect::Sqlite | Dialect::Mysql => "CURRENT_TIMESTAMP",
            Dialect::Snowflake | Dialect::Bigquery | Dialect::Databricks => "CURRENT_TIMESTAMP()",
        }
    }

    /// Whether table `name` is there. Names are letters, digits and `_`
    /// (checked where they are made), so they are written as literals.
    pub fn exists(&self, name: &str) -> Lookup {
        let schema = &self.schema;
        match self.dialect {
            Dialect::Sqlite => Lookup::Count(format!(
                "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = '{name}'"
            )),
            Dialect::Bigquery => Lookup::Count(format!(
                "SELECT COUNT(*) AS n FROM `{schema}`.INFORMATION_SCHEMA.TABLES WHERE table_name = '{name}'"
            )),
            Dialect::Databricks => Lookup::Listed(vec![
                format!("SHOW SCHEMAS LIKE '{schema}'"),
                format!("SHOW TABLES IN `{schema}` LIKE '{name}'"),
            ]),
            Dialect::Postgresql
            | Dialect::Redshift
            | Dialect::Duckdb
            | Dialect::Snowflake
            | Dialect::Mysql => Lookup::Count(format!(
                "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = '{schema}' AND table_name = '{name}'"
            )),
        }
    }

    /// Whether the schema is there (`None`: the dialect makes it with
    /// `IF NOT EXISTS` and needs no look first).
    pub fn schema_exists(&self) -> Option<String> {
        match self.dialect {
            Dialect::Postgresql | Dialect::Redshift | Dialect::Duckdb | Dialect::Snowflake => {
                Some(format!(
                    "SELECT COUNT(*) AS n FROM information_schema.schemata WHERE schema_name = '{}'",
                    self.schema
                ))
            }
            _ => None,
        }
    }

    /// Makes the schema (`None` on SQLite, which has none).
    pub fn create_schema(&self) -> Option<String> {
        (self.dialect != Dialect::Sqlite).then(|| {
            format!(
                "CREATE SCHEMA IF NOT EXISTS {}",
                quote_column(&self.schema, self.quote())
            )
        })
    }

    /// Makes table `name` of the key columns, in the model's own types:
    /// empty, or (`fill`) holding every non-NULL key of the model.
    pub fn create(&self, name: &str, fill: bool) -> Vec<String> {
        let q = self.quote();
        let table = self.qualified(name);
        let keys = self.keys("");
        let from = from_clause(&self.model, q);
        let filter = if fill {
            self.columns
                .iter()
                .map(|c| format!("{} IS NOT NULL", quote_column(c, q)))
                .collect::<Vec<_>>()
                .join(" AND ")
        } else {
            "1 = 0".to_owned()
        };
        let kind = match self.dialect {
            Dialect::Postgresql => "UNLOGGED TABLE",
            Dialect::Snowflake => "TRANSIENT TABLE",
            _ => "TABLE",
        };
        let now = self.now();
        let mut sql = vec![format!(
            "CREATE {kind} {table} AS SELECT {keys}, {now} AS settled_at FROM {from} WHERE {filter}"
        )];
        let index = quote_column(&format!("{name}_key"), q);
        match self.dialect {
            Dialect::Postgresql => {
                sql.push(format!("CREATE INDEX {index} ON {table} ({keys})"));
                sql.push(format!("ANALYZE {table}"));
            }
            Dialect::Sqlite => {
                sql.push(format!(
                    "CREATE INDEX {index} ON {} ({keys})",
                    quote_column(name, q)
                ));
            }
            Dialect::Redshift => sql.push(format!("ANALYZE {table}")),
            _ => {}
        }
        sql
    }

    /// Puts table `staging` in table `name`'s place.
    pub fn swap(&self, name: &str, staging: &str) -> Vec<String> {
        let q = self.quote();
        let (table, from) = (self.qualified(name), self.qualified(staging));
        // Snowflake and Spark take the new name qualified (unqualified, it
        // lands in the session's schema); the others take the bare name.
        let to = match self.dialect {
            Dialect::Snowflake | Dialect::Databricks => table.clone(),
            _ => quote_column(name, q),
        };
        let mut sql = vec![
            format!("DROP TABLE IF EXISTS {table}"),
            format!("ALTER TABLE {from} RENAME TO {to}"),
        ];
        match self.dialect {
            Dialect::Postgresql => {
                sql.push(format!(
                    "ALTER INDEX {} RENAME TO {}",
                    self.qualified(&format!("{staging}_key")),
                    quote_column(&format!("{name}_key"), q)
                ));
                sql.push(format!("ANALYZE {table}"));
            }
            Dialect::Sqlite => {
                // An index keeps its name through a rename; names are the
                // database's, so the staging table's goes and the table's is made.
                sql.push(format!(
                    "DROP INDEX IF EXISTS {}",
                    quote_column(&format!("{staging}_key"), q)
                ));
                sql.push(format!(
                    "CREATE INDEX {} ON {} ({})",
                    quote_column(&format!("{name}_key"), q),
                    quote_column(name, q),
                    self.keys("")
                ));
            }
            Dialect::Redshift => sql.push(format!("ANALYZE {table}")),
            _ => {}
        }
        sql
    }

    /// `COUNT(*)` of table `name`.
    pub fn count(&self, name: &str) -> String {
        format!("SELECT COUNT(*) AS n FROM {}", self.qualified(name))
    }

    /// 1 when table `name` holds any row, else 0.
    pub fn any(&self, name: &str) -> String {
        format!(
            "SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM {} LIMIT 1) AS retl_any",
            self.qualified(name)
        )
    }

    /// The key columns of table `name`, no row: their types, as the driver
    /// gives them, say which need a `CAST` ([`Sql::insert`]).
    pub fn types(&self, name: &str) -> String {
        format!(
            "SELECT {} FROM {} WHERE 1 = 0",
            self.keys(""),
            self.qualified(name)
        )
    }

    /// The `n`th parameter, cast to `cast` where it is given.
    fn param(&self, n: usize, cast: Option<&String>) -> String {
        let placeholder = self.dialect.placeholder(n);
        match cast {
            Some(to) => format!("CAST({placeholder} AS {to})"),
            None => placeholder,
        }
    }

    /// Redshift: the key columns' types by name, for [`Sql::cast_named`]
    /// (its driver, PostgreSQL's, sends a `numeric` as text, so the
    /// batch's types cannot say it).
    pub fn named_types(&self, name: &str) -> Option<String> {
        (self.dialect == Dialect::Redshift).then(|| {
            format!(
                "SELECT column_name, CASE WHEN data_type IN ('numeric', 'decimal') AND numeric_precision IS NOT NULL THEN 'numeric(' || CAST(numeric_precision AS varchar) || ', ' || CAST(numeric_scale AS varchar) || ')' ELSE data_type END AS data_type FROM information_schema.columns WHERE table_schema = '{}' AND table_name = '{name}'",
                self.schema
            )
        })
    }

    /// What a key column of the database type `data_type` (as
    /// [`Sql::named_types`] spells it: `numeric(p, s)`) casts a bound text
    /// to: a decimal to itself; other types take a bound value by assignment.
    pub fn cast_named(data_type: &str) -> Option<String> {
        let data_type = data_type.to_ascii_lowercase();
        let numeric = data_type.starts_with("numeric") || data_type.starts_with("decimal");
        let plain = data_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '(' | ')' | ',' | ' '));
        (numeric && plain).then_some(data_type)
    }

    /// What a key column whose values the driver sends as `column` casts
    /// a bound text to: a decimal's exact text, to its own type. Other
    /// types take a bound value by assignment.
    pub fn cast(&self, column: &DataType) -> Option<String> {
        let (precision, scale) = match column {
            DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => (*p, *s),
            _ => return None,
        };
        Some(match self.dialect {
            // NUMERIC holds 38 digits with up to 9 after the point;
            // BIGNUMERIC the rest.
            Dialect::Bigquery if precision <= 38 && scale <= 9 => "NUMERIC".to_owned(),
            Dialect::Bigquery => "BIGNUMERIC".to_owned(),
            Dialect::Sqlite => return None,
            _ => format!("DECIMAL({precision}, {scale})"),
        })
    }

    /// Writes the keys of a bound batch (one column per key column, in
    /// order) into table `name`; `types` are its key columns' types.
    /// PostgreSQL takes them as one JSON parameter instead ([`Sql::insert_json`]).
    pub fn insert(&self, name: &str, casts: &[Option<String>]) -> String {
        let values: Vec<String> = (0..self.columns.len())
            .map(|i| self.param(i + 1, casts.get(i).and_then(Option::as_ref)))
            .collect();
        format!(
            "INSERT INTO {} ({}, settled_at) VALUES ({}, {})",
            self.qualified(name),
            self.keys(""),
            values.join(", "),
            self.now()
        )
    }

    /// Whether keys are written into the SQL as literals rather than bound:
    /// Spark Connect's driver binds one row only and has no ingest.
    /// Literals that can only be data ([`Sql::literal`]).
    pub fn literals(&self) -> bool {
        self.dialect == Dialect::Databricks
    }

    /// A key value as a Spark SQL literal that can only be data: an
    /// integer's digits, text as the UTF-8 of its hex digits
    /// (`CAST(X'…' AS STRING)`: a binary literal, which an inline table takes), so no quote, backslash or escape
    /// rule of the text reaches the SQL; cast where `cast` says.
    pub fn literal(value: &crate::KeyValue, cast: Option<&String>) -> String {
        let literal = match value {
            crate::KeyValue::Int(n) => n.to_string(),
            crate::KeyValue::Text(text) => {
                let hex: String = text.bytes().fold(String::new(), |mut hex, b| {
                    use std::fmt::Write as _;
                    let _ = write!(hex, "{b:02X}");
                    hex
                });
                format!("CAST(X'{hex}' AS STRING)")
            }
        };
        match cast {
            Some(to) => format!("CAST({literal} AS {to})"),
            None => literal,
        }
    }

    /// Writes `keys` into table `name` as literals ([`Sql::literal`]).
    pub fn insert_literals(
        &self,
        name: &str,
        casts: &[Option<String>],
        keys: &[Vec<crate::KeyValue>],
    ) -> String {
        self.insert_values(
            name,
            keys.iter().map(|key| {
                key.iter()
                    .enumerate()
                    .map(|(i, v)| Self::literal(v, casts.get(i).and_then(Option::as_ref)))
                    .collect()
            }),
        )
    }

    /// `INSERT INTO name (keys, settled_at) VALUES …`, a row for each of
    /// `rows` (its key columns' values as SQL), settled now.
    fn insert_values(&self, name: &str, rows: impl Iterator<Item = Vec<String>>) -> String {
        let tuples: Vec<String> = rows
            .map(|values| format!("({}, {})", values.join(", "), self.now()))
            .collect();
        format!(
            "INSERT INTO {} ({}, settled_at) VALUES {}",
            self.qualified(name),
            self.keys(""),
            tuples.join(", ")
        )
    }

    /// Removes `keys` from table `name` by making it anew without them
    /// (Spark's own tables take no `DELETE`; Delta's would, but the
    /// rebuild works on both): the rest copied into `keep`, which then
    /// takes the table's place.
    pub fn rebuild_without(
        &self,
        name: &str,
        keep: &str,
        casts: &[Option<String>],
        keys: &[Vec<crate::KeyValue>],
    ) -> Vec<String> {
        let q = self.quote();
        let each: Vec<String> = keys
            .iter()
            .map(|key| {
                let equal: Vec<String> = self
                    .columns
                    .iter()
                    .zip(key)
                    .enumerate()
                    .map(|(i, (c, v))| {
                        format!(
                            "{} = {}",
                            quote_column(c, q),
                            Self::literal(v, casts.get(i).and_then(Option::as_ref))
                        )
                    })
                    .collect();
                format!("({})", equal.join(" AND "))
            })
            .collect();
        let mut sql = vec![
            format!("DROP TABLE IF EXISTS {}", self.qualified(keep)),
            format!(
                "CREATE TABLE {} AS SELECT * FROM {} WHERE NOT ({})",
                self.qualified(keep),
                self.qualified(name),
                each.join(" OR ")
            ),
        ];
        sql.extend(self.swap(name, keep));
        sql
    }

    /// Whether settled keys go in through the driver's bulk ingest (into
    /// a table of their own, then copied across in SQL) rather than one
    /// statement with a bound batch: `DuckDB`'s driver binds one row only.
    pub fn ingests(&self) -> bool {
        self.dialect == Dialect::Duckdb
    }

    /// Copies the keys an ingest wrote into table `from` into table `name`
    /// (each key column cast as [`Sql::insert`] casts a bound one).
    pub fn insert_from(&self, name: &str, from: &str, casts: &[Option<String>]) -> String {
        let q = self.quote();
        let values: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let c = format!("retl_p.{}", quote_column(c, q));
                match casts.get(i).and_then(Option::as_ref) {
                    Some(to) => format!("CAST({c} AS {to})"),
                    None => c,
                }
            })
            .collect();
        format!(
            "INSERT INTO {} ({}, settled_at) SELECT {}, {} FROM {} AS retl_p",
            self.qualified(name),
            self.keys(""),
            values.join(", "),
            self.now(),
            self.qualified(from)
        )
    }

    /// Removes from table `name` the keys an ingest wrote into table `from`.
    pub fn delete_from(&self, name: &str, from: &str, casts: &[Option<String>]) -> String {
        let q = self.quote();
        let equal: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let c = quote_column(c, q);
                let theirs = format!("retl_p.{c}");
                let theirs = match casts.get(i).and_then(Option::as_ref) {
                    Some(to) => format!("CAST({theirs} AS {to})"),
                    None => theirs,
                };
                format!("{}.{c} = {theirs}", self.qualified(name))
            })
            .collect();
        format!(
            "DELETE FROM {} WHERE EXISTS (SELECT 1 FROM {} AS retl_p WHERE {})",
            self.qualified(name),
            self.qualified(from),
            equal.join(" AND ")
        )
    }

    /// Writes `rows` keys in one statement, their values bound in order
    /// (Redshift over the PostgreSQL protocol: one multi-row `INSERT`).
    pub fn insert_rows(&self, name: &str, casts: &[Option<String>], rows: usize) -> String {
        let width = self.columns.len();
        self.insert_values(
            name,
            (0..rows).map(|row| {
                (0..width)
                    .map(|i| self.param(row * width + i + 1, casts.get(i).and_then(Option::as_ref)))
                    .collect()
            }),
        )
    }

    /// Removes `rows` keys in one statement, their values bound in order.
    pub fn delete_rows(&self, name: &str, casts: &[Option<String>], rows: usize) -> String {
        let q = self.quote();
        let width = self.columns.len();
        let keys: Vec<String> = (0..rows)
            .map(|row| {
                let equal: Vec<String> = self
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let param =
                            self.param(row * width + i + 1, casts.get(i).and_then(Option::as_ref));
                        format!("{} = {param}", quote_column(c, q))
                    })
                    .collect();
                format!("({})", equal.join(" AND "))
            })
            .collect();
        format!(
            "DELETE FROM {} WHERE {}",
            self.qualified(name),
            keys.join(" OR ")
        )
    }

    /// PostgreSQL: the keys of one JSON parameter (an array of objects),
    /// made rows of the table's own types by the database.
    pub fn insert_json(&self, name: &str) -> String {
        let table = self.qualified(name);
        let keys = self.keys("");
        format!(
            "INSERT INTO {table} ({keys}, settled_at) SELECT {keys}, now() FROM json_populate_recordset(NULL::{table}, CAST($1 AS json))"
        )
    }

    /// Removes the key of each row of a bound batch from table `name`.
    pub fn delete(&self, name: &str, casts: &[Option<String>]) -> String {
        let q = self.quote();
        let equal: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                format!(
                    "{} = {}",
                    quote_column(c, q),
                    self.param(i + 1, casts.get(i).and_then(Option::as_ref))
                )
            })
            .collect();
        format!(
            "DELETE FROM {} WHERE {}",
            self.qualified(name),
            equal.join(" AND ")
        )
    }

    /// PostgreSQL: removes the keys of one JSON parameter.
    pub fn delete_json(&self, name: &str) -> String {
        let table = self.qualified(name);
        let q = self.quote();
        let equal: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let c = quote_column(c, q);
                format!("retl_k.{c} = retl_d.{c}")
            })
            .collect();
        format!(
            "DELETE FROM {table} AS retl_k USING json_populate_recordset(NULL::{table}, CAST($1 AS json)) AS retl_d WHERE {}",
            equal.join(" AND ")
        )
    }

    /// The step (or GRANT) that lets retl's user make and fill the table.
    pub fn grant(&self, user: &str) -> String {
        let schema = &self.schema;
        match self.dialect {
            Dialect::Postgresql | Dialect::Redshift => format!(
                "GRANT CREATE ON DATABASE <the database> TO {user}; (or make the schema for it: CREATE SCHEMA {schema} AUTHORIZATION {user})"
            ),
            Dialect::Snowflake => format!(
                "GRANT CREATE SCHEMA ON DATABASE <the database> TO ROLE <retl's role>; (or, if the schema exists: GRANT USAGE, CREATE TABLE ON SCHEMA {schema} TO ROLE <retl's role>, and ownership or INSERT, DELETE, SELECT, TRUNCATE on its tables)"
            ),
            Dialect::Bigquery => format!(
                "roles/bigquery.dataEditor on the dataset `{schema}` (and bigquery.datasets.create on the project to make it), with roles/bigquery.jobUser and roles/bigquery.readSessionUser on the project"
            ),
            Dialect::Databricks => format!(
                "GRANT USE SCHEMA, CREATE TABLE, SELECT, MODIFY ON SCHEMA {schema} TO `{user}` (or CREATE SCHEMA on the catalog, to make it)"
            ),
            Dialect::Duckdb | Dialect::Sqlite => {
                "open the database file writable (not read-only), in a directory retl's user may write".to_owned()
            }
            Dialect::Mysql => format!(
                "GRANT SELECT, INSERT, DELETE, CREATE, DROP, ALTER ON `{schema}`.* TO '{user}'@'%'"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(dialect: Dialect) -> Sql {
        Sql {
            dialect,
            schema: if dialect == Dialect::Sqlite {
                String::new()
            } else {
                "retl".into()
            },
            columns: vec!["order_id".into(), "region".into()],
            model: Model::Table("shop.orders".into()),
        }
    }

    #[test]
    fn each_dialect_makes_its_table_in_its_own_words() {
        let created = sql(Dialect::Snowflake).create("k_orders_0a", false);
        assert_eq!(
            created,
            [
                r#"CREATE TRANSIENT TABLE "retl"."k_orders_0a" AS SELECT "order_id", "region", CURRENT_TIMESTAMP() AS settled_at FROM "shop"."orders" WHERE 1 = 0"#
            ]
        );
        let created = sql(Dialect::Databricks).create("k_orders_0a", true);
        assert_eq!(
            created,
            [
                "CREATE TABLE `retl`.`k_orders_0a` AS SELECT `order_id`, `region`, CURRENT_TIMESTAMP() AS settled_at FROM `shop`.`orders` WHERE `order_id` IS NOT NULL AND `region` IS NOT NULL"
            ]
        );
        let created = sql(Dialect::Bigquery).create("k_orders_0a", false);
        assert_eq!(
            created[0],
            "CREATE TABLE `retl`.`k_orders_0a` AS SELECT `order_id`, `region`, CURRENT_TIMESTAMP() AS settled_at FROM `shop`.`orders` WHERE 1 = 0"
        );
        let redshift = sql(Dialect::Redshift).create("k_orders_0a", false);
        assert!(redshift[0].starts_with(r#"CREATE TABLE "retl"."k_orders_0a" AS SELECT"#));
        assert!(redshift[0].contains("GETDATE() AS settled_at"));
        assert!(
            !redshift.iter().any(|s| s.contains("INDEX")),
            "{redshift:?}"
        );
        let pg = sql(Dialect::Postgresql).create("k_orders_0a", false);
        assert!(pg[0].starts_with("CREATE UNLOGGED TABLE"));
        assert_eq!(
            pg[1],
            r#"CREATE INDEX "k_orders_0a_key" ON "retl"."k_orders_0a" ("order_id", "region")"#
        );
    }

    #[test]
    fn each_dialect_looks_a_table_up_where_it_lists_them() {
        assert_eq!(
            sql(Dialect::Bigquery).exists("k_a"),
            Lookup::Count(
                "SELECT COUNT(*) AS n FROM `retl`.INFORMATION_SCHEMA.TABLES WHERE table_name = 'k_a'"
                    .into()
            )
        );
        assert_eq!(
            sql(Dialect::Databricks).exists("k_a"),
            Lookup::Listed(vec![
                "SHOW SCHEMAS LIKE 'retl'".into(),
                "SHOW TABLES IN `retl` LIKE 'k_a'".into()
            ])
        );
        assert_eq!(
            sql(Dialect::Duckdb).exists("k_a"),
            Lookup::Count("SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'retl' AND table_name = 'k_a'".into())
        );
    }

    #[test]
    fn settled_keys_are_bound_and_decimals_cast_to_their_column() {
        let casts = |s: &Sql| -> Vec<Option<String>> {
            [DataType::Decimal128(38, 0), DataType::Utf8]
                .iter()
                .map(|t| s.cast(t))
                .collect()
        };
        let snowflake = sql(Dialect::Snowflake);
        assert_eq!(
            snowflake.insert("k_a", &casts(&snowflake)),
            r#"INSERT INTO "retl"."k_a" ("order_id", "region", settled_at) VALUES (CAST(? AS DECIMAL(38, 0)), ?, CURRENT_TIMESTAMP())"#
        );
        let bigquery = sql(Dialect::Bigquery);
        assert_eq!(
            bigquery.insert("k_a", &casts(&bigquery)),
            "INSERT INTO `retl`.`k_a` (`order_id`, `region`, settled_at) VALUES (CAST(? AS NUMERIC), ?, CURRENT_TIMESTAMP())"
        );
        assert_eq!(
            sql(Dialect::Redshift).delete("k_a", &[Sql::cast_named("numeric(12, 3)"), None]),
            r#"DELETE FROM "retl"."k_a" WHERE "order_id" = CAST($1 AS numeric(12, 3)) AND "region" = $2"#
        );
        assert_eq!(
            sql(Dialect::Redshift).insert_rows("k_a", &[None, None], 2),
            r#"INSERT INTO "retl"."k_a" ("order_id", "region", settled_at) VALUES ($1, $2, GETDATE()), ($3, $4, GETDATE())"#
        );
        assert!(
            sql(Dialect::Postgresql)
                .insert_json("k_a")
                .contains("json_populate_recordset(NULL::\"retl\".\"k_a\", CAST($1 AS json))")
        );
    }

    #[test]
    fn spark_gets_keys_as_literals_that_can_only_be_data() {
        use crate::KeyValue;
        let spark = sql(Dialect::Databricks);
        let keys = vec![
            vec![KeyValue::Int(7), KeyValue::Text("a'b\\c".into())],
            vec![KeyValue::Int(-1), KeyValue::Text(String::new())],
        ];
        assert_eq!(
            spark.insert_literals("k_a", &[Some("DECIMAL(20, 0)".into()), None], &keys),
            "INSERT INTO `retl`.`k_a` (`order_id`, `region`, settled_at) VALUES (CAST(7 AS DECIMAL(20, 0)), CAST(X'6127625C63' AS STRING), CURRENT_TIMESTAMP()), (CAST(-1 AS DECIMAL(20, 0)), CAST(X'' AS STRING), CURRENT_TIMESTAMP())"
        );
        let rebuilt = spark.rebuild_without("k_a", "k_a__keep", &[None, None], &keys[..1]);
        assert_eq!(
            rebuilt[1],
            "CREATE TABLE `retl`.`k_a__keep` AS SELECT * FROM `retl`.`k_a` WHERE NOT ((`order_id` = 7 AND `region` = CAST(X'6127625C63' AS STRING)))"
        );
        assert_eq!(
            rebuilt[3],
            "ALTER TABLE `retl`.`k_a__keep` RENAME TO `retl`.`k_a`"
        );
    }

    #[test]
    fn the_baseline_takes_the_tables_place_by_a_rename_each_dialect_reads() {
        assert_eq!(
            sql(Dialect::Snowflake).swap("k_a", "k_a__staging"),
            [
                r#"DROP TABLE IF EXISTS "retl"."k_a""#,
                r#"ALTER TABLE "retl"."k_a__staging" RENAME TO "retl"."k_a""#
            ]
        );
        assert_eq!(
            sql(Dialect::Duckdb).swap("k_a", "k_a__staging")[1],
            r#"ALTER TABLE "retl"."k_a__staging" RENAME TO "k_a""#
        );
        assert_eq!(
            sql(Dialect::Databricks).swap("k_a", "k_a__staging")[1],
            "ALTER TABLE `retl`.`k_a__staging` RENAME TO `retl`.`k_a`"
        );
        let sqlite = sql(Dialect::Sqlite).swap("p_k_a", "p_k_a__staging");
        assert_eq!(sqlite[2], r#"DROP INDEX IF EXISTS "p_k_a__staging_key""#);
    }
}
