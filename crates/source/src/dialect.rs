//! The SQL a warehouse speaks, chosen, never guessed from a file path.
//!
//! A native source's dialect is its URL's scheme (`postgres://`,
//! `mysql://`, `sqlite://`; a PostgreSQL-protocol server that says it is
//! Redshift speaks Redshift's). An ADBC source's is `source.adbc.dialect`,
//! or else the vendor name the driver reports through ADBC's `GetInfo`
//! ([`Dialect::of_vendor`]); the `snowflake://` and `bigquery://` shortcuts
//! set theirs. A driver whose dialect retl does not know still reads (its
//! SQL is plain ANSI with double-quoted identifiers); what writes SQL of
//! its own (cursor mode, writeback, `diff: warehouse`) asks for one
//! ([`Dialect::required`]).

retl_config::spelled! {
    /// A warehouse's SQL dialect (`source.adbc.dialect`).
    pub enum Dialect {
        /// PostgreSQL (and servers of its protocol that speak its SQL).
        Postgresql = "postgresql",
        /// Amazon Redshift: PostgreSQL's protocol; no `UNLOGGED`, no
        /// indexes, no `json_populate_recordset`; `GETDATE()` on its
        /// compute nodes.
        Redshift = "redshift",
        /// MySQL and MariaDB.
        Mysql = "mysql",
        /// SQLite.
        Sqlite = "sqlite",
        /// Snowflake.
        Snowflake = "snowflake",
        /// Google `BigQuery` (GoogleSQL).
        Bigquery = "bigquery",
        /// Databricks and Apache Spark (Spark SQL).
        Databricks = "databricks",
        /// `DuckDB`.
        Duckdb = "duckdb",
    }
}

impl Dialect {
    /// The dialect of a driver's vendor name (ADBC `GetInfo`'s
    /// `vendor_name`): the names the drivers report (`PostgreSQL`,
    /// `SQLite`, `Snowflake`, `BigQuery`, `Spark`, `Databricks`, `DuckDB`,
    /// `Redshift`), compared whole and without case. `None` for any other.
    pub fn of_vendor(vendor: &str) -> Option<Dialect> {
        let vendor = vendor.trim().to_ascii_lowercase();
        Some(match vendor.as_str() {
            "postgresql" | "postgres" => Dialect::Postgresql,
            "redshift" | "amazon redshift" => Dialect::Redshift,
            "mysql" | "mariadb" => Dialect::Mysql,
            "sqlite" => Dialect::Sqlite,
            "snowflake" => Dialect::Snowflake,
            "bigquery" | "google bigquery" => Dialect::Bigquery,
            "spark" | "apache spark" | "spark sql" | "databricks" => Dialect::Databricks,
            "duckdb" => Dialect::Duckdb,
            _ => return None,
        })
    }

    /// How it quotes identifiers: backticks for `BigQuery`, Spark SQL and
    /// MySQL (whose double quotes make a string), the ANSI double quote
    /// for the others.
    pub fn quote(self) -> char {
        match self {
            Dialect::Bigquery | Dialect::Databricks | Dialect::Mysql => '`',
            _ => '"',
        }
    }

    /// The `n`th (1-based) bound parameter's placeholder through its ADBC
    /// driver: `$n` for PostgreSQL's and Redshift's (libpq), `?` for the
    /// others.
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Postgresql | Dialect::Redshift => format!("${n}"),
            _ => "?".to_owned(),
        }
    }

    /// `dialect`, or the error that names `what` needs one and how to set it.
    pub fn required(
        dialect: Option<Dialect>,
        driver: &str,
        what: &str,
    ) -> Result<Dialect, crate::Error> {
        dialect.ok_or_else(|| crate::Error::Adbc {
            driver: driver.to_owned(),
            message: format!(
                "{what} writes SQL in the warehouse's own dialect, and retl does not know this driver's (its vendor name is none retl knows): set source.adbc.dialect to one of {}",
                Dialect::CHOICES.join(", ")
            ),
            status: None,
            sqlstate: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Dialect;

    #[test]
    fn vendor_names_are_matched_whole_never_by_a_part() {
        assert_eq!(Dialect::of_vendor("DuckDB"), Some(Dialect::Duckdb));
        assert_eq!(Dialect::of_vendor("SQLite"), Some(Dialect::Sqlite));
        assert_eq!(Dialect::of_vendor("PostgreSQL"), Some(Dialect::Postgresql));
        assert_eq!(Dialect::of_vendor("Spark SQL"), Some(Dialect::Databricks));
        assert_eq!(Dialect::of_vendor("Snowflake"), Some(Dialect::Snowflake));
        assert_eq!(Dialect::of_vendor("my-spark-proxy"), None);
        assert_eq!(Dialect::of_vendor(""), None);
    }

    #[test]
    fn each_dialect_quotes_and_binds_its_own_way() {
        assert_eq!(Dialect::Databricks.quote(), '`');
        assert_eq!(Dialect::Bigquery.quote(), '`');
        assert_eq!(Dialect::Snowflake.quote(), '"');
        assert_eq!(Dialect::Postgresql.placeholder(2), "$2");
        assert_eq!(Dialect::Duckdb.placeholder(2), "?");
    }

    #[test]
    fn an_unknown_dialect_names_the_key_that_sets_one() {
        let error = Dialect::required(None, "libx.so", "diff: warehouse")
            .unwrap_err()
            .to_string();
        assert!(error.contains("source.adbc.dialect"), "{error}");
        assert!(error.contains("duckdb"), "{error}");
    }
}
