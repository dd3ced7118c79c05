//! The source's settings (an activation's `source:` block) and their reader.

use std::fmt;
use std::time::Duration;

use retl_config::schema::{integer, string, strings};
use retl_config::{Node, Reader, join};
use serde_json::Value;

use crate::{Model, SourceSpec, redact_url};

/// An activation's `source:`: where and what to read.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// The connection URL (may hold a password; never printed).
    pub connection: String,
    /// The table or query.
    pub model: Model,
    /// The columns that identify a row, if given (`primary_key:`).
    pub primary_key: Option<Vec<String>>,
    /// Rows per batch.
    pub batch_size: usize,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long the database may stay silent while retl waits for rows.
    pub read_timeout: Duration,
    /// Cursor mode (`incremental:`), if set.
    pub incremental: Option<crate::Incremental>,
    /// How a PostgreSQL-protocol source is read (`read:`).
    pub read: crate::Read,
    /// Where new rows are told from settled ones (`diff:`).
    pub diff: crate::Diff,
    /// The schema of retl's key table with `diff: warehouse` (`diff_schema:`).
    pub diff_schema: String,
    /// Read through an ADBC driver (`adbc:`); `connection` is then `adbc:DRIVER`.
    pub adbc: Option<crate::Adbc>,
    /// `dbt:`: the model is a dbt model, found by name in dbt's manifest
    /// (the engine resolves it into `model` when it reads the activation).
    pub dbt: Option<crate::Dbt>,
    /// What its messages must never show: the connection's password, the
    /// values of options and query parameters whose names look secret, the
    /// password of an ADBC `uri` (read from its text, even when it does not
    /// parse).
    pub secrets: retl_config::Secrets,
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceConfig")
            .field("connection", &redact_url(&self.connection))
            .field("model", &self.model)
            .field("primary_key", &self.primary_key)
            .field("batch_size", &self.batch_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("incremental", &self.incremental)
            .field("read", &self.read)
            .field("diff", &self.diff)
            .field("diff_schema", &self.diff_schema)
            .field("adbc", &self.adbc)
            .field("dbt", &self.dbt)
            .field("secrets", &self.secrets)
            .finish()
    }
}

impl SourceConfig {
    /// What [`Source::open`](crate::Source::open) needs to read `columns`.
    pub fn spec(&self, columns: Vec<String>) -> SourceSpec {
        SourceSpec {
            connection: self.connection.clone(),
            model: self.model.clone(),
            columns,
            batch_size: self.batch_size,
            connect_timeout: self.connect_timeout,
            read_timeout: self.read_timeout,
            since: None,
            read: self.read,
            anti_join: None,
            adbc: self.adbc.clone(),
            named_at: Vec::new(),
        }
    }
}

retl_config::block! {
    /// `source.adbc:`.
    static ADBC = "read through an ADBC driver instead of `connection` (Snowflake, BigQuery, PostgreSQL, SQLite, Flight SQL, …): the driver's library is loaded at run time", required ["driver"] {
        "driver" => string(
            "a driver name, found through ADBC driver manifests (as `dbc install` writes them) or the library path, or the path of the driver's shared library",
        ),
        "options" => serde_json::json!({"description": "the database options, by the driver's own names (uri, username, password, adbc.snowflake.sql.account, …); values may be ${VAR}", "type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}),
        "statement_options" => serde_json::json!({"description": "options set on every statement, by the driver's own names (e.g. BigQuery's adbc.bigquery.sql.query.*); values may be ${VAR}", "type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}),
        "entrypoint" => string(
            "the driver's init symbol, where it is not the default AdbcDriverInit (DuckDB's libduckdb: duckdb_adbc_init)",
        ),
        "dialect" => retl_config::schema::choice(
            crate::Dialect::CHOICES,
            "the warehouse's SQL dialect, for cursor mode, writeback and diff: warehouse (default: the vendor name the driver reports; a driver of another vendor reads, but these need it set)",
        ),
    }
}

retl_config::block! {
    /// `source.incremental:`.
    static INCREMENTAL = "cursor mode: read only rows at or past the high-water mark (less a lookback)", required ["cursor"] {
        "cursor" => string("a column that grows with inserts: a timestamp or an integer"),
        "lookback" => serde_json::json!({"description": "also re-read this far behind the high-water mark: a duration (1d) for a time cursor, a number for an integer one", "type": ["string", "integer"]}),
        "full_scan_every" => retl_config::schema::duration(
            "a full diff at most this often, to catch rows later than the lookback (e.g. 7d)",
        ),
    }
}

retl_config::block! {
    /// `source.dbt:`.
    static DBT = "read a dbt model by name: its relation comes from dbt's manifest.json", required ["model"] {
        "model" => string("the model's name, as in ref('orders')"),
        "project_dir" => string("the dbt project's directory (its target/manifest.json is read), relative to the project"),
        "manifest" => string("dbt's manifest.json, in place of project_dir (e.g. a --target-path of dbt parse)"),
    }
}

retl_config::block! {
    /// An activation's `source:`.
    static SOURCE = "where and what to read", required ["connection"] {
        "connection" => string(
            "postgres://user:pass@host:5432/db, mysql:// (or mariadb://), sqlite://path; driver options in the URL. Through ADBC drivers: snowflake://USER:PASSWORD@ACCOUNT/DATABASE/SCHEMA?warehouse=W&role=R&private_key_file=PATH, bigquery://PROJECT/DATASET?credentials_file=PATH",
        ),
        "table" => string("a table, optionally schema-qualified; only the needed columns are read"),
        "query" => string("a SELECT, run as written (nested as a subquery)"),
        "primary_key" => strings(
            "the columns that identify a row (default: the column mapped to reference_number)",
        ),
        "batch_size" => integer(1, 1_000_000, "rows per batch (default 10000)"),
        "connect_timeout_seconds" => integer(1, 86_400, "how long connecting may take (default 30)"),
        "read_timeout_seconds" => integer(
            1,
            86_400,
            "how long the database may stay silent while retl waits for rows (default 300)",
        ),
        "incremental" => INCREMENTAL.schema(),
        "read" => retl_config::schema::choice(
            crate::Read::CHOICES,
            "PostgreSQL protocol only: copy (binary COPY, the default) or cursor (DECLARE … CURSOR and FETCH per batch, for Redshift and CockroachDB; chosen by itself when the server is Redshift or refuses COPY)",
        ),
        "diff" => retl_config::schema::choice(
            crate::Diff::CHOICES,
            "where new rows are told from settled ones: retl (the default: retl reads the rows and its state decides) or warehouse (an anti-join against a table of settled keys retl keeps in diff_schema; only new rows cross the network; PostgreSQL, MySQL/MariaDB, SQLite, and through ADBC: Snowflake, BigQuery, Databricks, DuckDB, Redshift, PostgreSQL, SQLite)",
        ),
        "diff_schema" => string(
            "with diff: warehouse, the schema retl's key table is kept in (default retl; a database on MySQL; on SQLite, which has no schemas, the table's name prefix): letters, digits and _",
        ),
        "adbc" => ADBC.schema(),
        "dbt" => DBT.schema(),
    }
}

/// The JSON Schema of an activation's `source:` block, from the keys its reader accepts.
pub fn source_schema() -> Value {
    let mut schema = SOURCE.schema();
    schema["oneOf"] = serde_json::json!([{"required": ["table"]}, {"required": ["query"]}, {"required": ["dbt"]}]);
    // `connection`, or `adbc` in its place.
    schema["required"] = serde_json::json!([]);
    schema["allOf"] =
        serde_json::json!([{"anyOf": [{"required": ["connection"]}, {"required": ["adbc"]}]}]);
    schema
}

/// Reads an activation's `source:` block.
pub fn read_source(r: &mut Reader<'_>, node: &Node<'_>) -> Option<SourceConfig> {
    let map = r.block(node, "source", &SOURCE)?;
    let adbc = match map.get("adbc") {
        Some(node) => Some(read_adbc(r, node)?),
        None => None,
    };
    let connection = read_connection(r, &map, adbc.as_ref());
    // `snowflake://…`, `bigquery://…`: an ADBC driver and its options.
    let adbc = match (adbc, &connection) {
        (None, Some(url)) => match crate::shortcut::adbc_of(url) {
            Some(Ok(found)) => Some(found),
            Some(Err(message)) => {
                r.problem(
                    map.get("connection").unwrap_or(map.node),
                    "source.connection",
                    message,
                );
                None
            }
            None => None,
        },
        (adbc, _) => adbc,
    };
    let dbt = match map.get("dbt") {
        Some(node) => Some(read_dbt(r, node)?),
        None => None,
    };
    let model = read_model(r, &map, dbt.as_ref());
    let primary_key = match map.get("primary_key") {
        Some(node) => {
            let key = r.strings(node, "source.primary_key");
            if key.as_ref().is_some_and(Vec::is_empty) {
                r.problem(node, "source.primary_key", "must name at least one column");
            }
            key
        }
        None => None,
    };
    let batch_size = map
        .get("batch_size")
        .and_then(|n| r.number(n, "source.batch_size", 1, 1_000_000))
        .unwrap_or(10_000);
    let seconds = |r: &mut Reader<'_>, key: &str, default: u64| {
        map.get(key)
            .and_then(|n| r.number(n, &join("source", key), 1, 86_400))
            .map_or(Duration::from_secs(default), Duration::from_secs)
    };
    let connect_timeout = seconds(r, "connect_timeout_seconds", 30);
    let read_timeout = seconds(r, "read_timeout_seconds", 300);
    let read = map
        .get("read")
        .and_then(|n| r.choice(n, "source.read", crate::Read::CHOICES))
        .and_then(|t| t.parse().ok())
        .unwrap_or_default();
    let diff = map
        .get("diff")
        .and_then(|n| r.choice(n, "source.diff", crate::Diff::CHOICES))
        .and_then(|t| t.parse().ok())
        .unwrap_or_default();
    let diff_schema = read_diff_schema(r, &map);
    let incremental = match map.get("incremental") {
        Some(node) => Some(read_incremental(r, node)?),
        None => None,
    };
    if adbc.is_some() {
        refuse_with_adbc(r, &map);
    }
    let adbc = adbc.map(|adbc| with_driver_timeouts(adbc, connect_timeout));
    let mut secrets = retl_config::Secrets::new();
    if let Some(url) = &connection {
        secrets.add_url(url);
    }
    for (name, value) in adbc
        .iter()
        .flat_map(|a| a.options.iter().chain(&a.statement_options))
    {
        if retl_config::is_secret_name(name) {
            secrets.add(value);
        }
        secrets.add_url(value);
    }
    Some(SourceConfig {
        connection: connection?,
        model: model?,
        primary_key,
        batch_size: usize::try_from(batch_size).ok()?,
        connect_timeout,
        read_timeout,
        incremental,
        read,
        diff,
        diff_schema: diff_schema?,
        adbc,
        dbt,
        secrets,
    })
}

/// `table`, `query`, or (with `dbt`) a model the engine resolves from dbt's
/// manifest: one of them.
fn read_model(
    r: &mut Reader<'_>,
    map: &retl_config::Map<'_, '_>,
    dbt: Option<&crate::Dbt>,
) -> Option<Model> {
    match (map.get("table"), map.get("query"), dbt) {
        (Some(table), None, None) => r.string(table, "source.table").map(Model::Table),
        (None, Some(query), None) => r.string(query, "source.query").map(Model::Query),
        // Resolved from dbt's manifest once the project's directory is known.
        (None, None, Some(_)) => Some(Model::Query(String::new())),
        (None, None, None) => {
            r.problem(
                map.node,
                "source",
                "missing field `table`, `query` or `dbt`",
            );
            None
        }
        (table, query, _) => {
            let node = query.or(table).unwrap_or(map.node);
            r.problem(
                node,
                "source",
                "give one of `table`, `query` or `dbt`, not more",
            );
            None
        }
    }
}

fn read_dbt(r: &mut Reader<'_>, node: &Node<'_>) -> Option<crate::Dbt> {
    let m = r.block(node, "source.dbt", &DBT)?;
    let model = r
        .required(&m, "source.dbt", "model", "the model's name")
        .and_then(|n| r.string(n, "source.dbt.model"));
    let path = |r: &mut Reader<'_>, key: &str| {
        m.get(key)
            .and_then(|n| r.string(n, &join("source.dbt", key)))
            .map(std::path::PathBuf::from)
    };
    let (project_dir, manifest) = (path(r, "project_dir"), path(r, "manifest"));
    if project_dir.is_none() && manifest.is_none() {
        r.problem(
            m.node,
            "source.dbt",
            "give `project_dir` (the dbt project, whose target/manifest.json is read) or `manifest`",
        );
        return None;
    }
    Some(crate::Dbt {
        model: model?,
        manifest,
        project_dir,
    })
}

/// `source.connection`, or in its place the name of `source.adbc`'s driver.
fn read_connection(
    r: &mut Reader<'_>,
    map: &retl_config::Map<'_, '_>,
    adbc: Option<&crate::Adbc>,
) -> Option<String> {
    let connection = match (map.get("connection"), adbc) {
        (Some(node), Some(_)) => {
            r.problem(
                node,
                "source.connection",
                "give either `connection` or `adbc`, not both",
            );
            None
        }
        (None, Some(adbc)) => Some(adbc.name()),
        (Some(node), None) => r.string(node, "source.connection"),
        (None, None) => {
            r.problem(
                map.node,
                "source.connection",
                "missing field `connection` (e.g. sqlite://warehouse.db)",
            );
            None
        }
    };
    if let Some(url) = connection
        .as_ref()
        .filter(|url| adbc.is_none() && crate::shortcut::adbc_of(url).is_none())
        && let Err(e) = crate::Driver::for_url(url)
    {
        r.problem(
            map.get("connection").unwrap_or(map.node),
            "source.connection",
            e.to_string(),
        );
    }
    connection
}

/// `source.diff_schema` (default `retl`), checked to name a schema.
fn read_diff_schema(r: &mut Reader<'_>, map: &retl_config::Map<'_, '_>) -> Option<String> {
    match map.get("diff_schema") {
        Some(node) => {
            let name = r.string(node, "source.diff_schema");
            if let Some(name) = name.as_ref().filter(|n| !crate::valid_schema(n)) {
                r.problem(
                    node,
                    "source.diff_schema",
                    format!("`{name}` cannot name a schema: use letters, digits and _ (at most 48), not starting with a digit"),
                );
            }
            name
        }
        None => Some("retl".to_owned()),
    }
}

/// `connect_timeout_seconds` as the driver's own option too, where retl
/// knows the driver has one and the options do not set it: Snowflake's
/// `adbc.snowflake.sql.client_option.login_timeout` (a Go duration). retl
/// also enforces it around the driver's calls, for every driver.
fn with_driver_timeouts(mut adbc: crate::Adbc, connect: Duration) -> crate::Adbc {
    const SNOWFLAKE_LOGIN: &str = "adbc.snowflake.sql.client_option.login_timeout";
    if adbc.dialect == Some(crate::Dialect::Snowflake)
        && !adbc.options.iter().any(|(k, _)| k == SNOWFLAKE_LOGIN)
    {
        adbc.options.push((
            SNOWFLAKE_LOGIN.to_owned(),
            format!("{}s", connect.as_secs()),
        ));
    }
    adbc
}

/// What `source.adbc` does not offer, refused where it is written.
fn refuse_with_adbc(r: &mut Reader<'_>, map: &retl_config::Map<'_, '_>) {
    for (key, what) in [("read", "source.read")] {
        if let Some(node) = map.get(key) {
            r.problem(
                node,
                &join("source", key),
                format!("{what} is not offered with source.adbc: it chooses how a PostgreSQL-protocol connection is read, and an ADBC driver reads its own way"),
            );
        }
    }
}

fn read_adbc(r: &mut Reader<'_>, node: &Node<'_>) -> Option<crate::Adbc> {
    let m = r.block(node, "source.adbc", &ADBC)?;
    let driver = r
        .required(
            &m,
            "source.adbc",
            "driver",
            "a driver name or the path of its library",
        )
        .and_then(|n| r.string(n, "source.adbc.driver"));
    let options = read_options(r, &m, "options")?;
    let statement_options = read_options(r, &m, "statement_options")?;
    let entrypoint = match m.get("entrypoint") {
        Some(node) => Some(r.string(node, "source.adbc.entrypoint")?),
        None => None,
    };
    let dialect = match m.get("dialect") {
        Some(node) => Some(
            r.choice(node, "source.adbc.dialect", crate::Dialect::CHOICES)?
                .parse()
                .ok()?,
        ),
        None => None,
    };
    Some(crate::Adbc {
        entrypoint,
        dialect,
        statement_options,
        ..crate::Adbc::new(driver?, options)
    })
}

/// `source.adbc.{key}`: a map of option names to values, in the order written.
fn read_options(
    r: &mut Reader<'_>,
    m: &retl_config::Map<'_, '_>,
    key: &str,
) -> Option<Vec<(String, String)>> {
    let mut options = Vec::new();
    if let Some(node) = m.get(key) {
        let path = join("source.adbc", key);
        let o = r.map(node, &path, &[])?;
        for (name, value) in o.entries() {
            if let Some(value) = r.string(value, &join(&path, name)) {
                options.push((name.clone(), value));
            }
        }
    }
    Some(options)
}

fn read_incremental(r: &mut Reader<'_>, node: &Node<'_>) -> Option<crate::Incremental> {
    let m = r.block(node, "source.incremental", &INCREMENTAL)?;
    let cursor = r
        .required(
            &m,
            "source.incremental",
            "cursor",
            "a timestamp or integer column",
        )
        .and_then(|n| r.string(n, "source.incremental.cursor"));
    let lookback = match m.get("lookback") {
        Some(n) => {
            let text = r.string(n, "source.incremental.lookback")?;
            match text.replace('_', "").parse::<u64>() {
                Ok(count) => Some(crate::Lookback::Count(count)),
                Err(_) => r
                    .duration(n, "source.incremental.lookback")
                    .map(crate::Lookback::Time),
            }
        }
        None => Some(crate::Lookback::Time(Duration::ZERO)),
    };
    let full_scan_every = match m.get("full_scan_every") {
        Some(n) => Some(r.duration(n, "source.incremental.full_scan_every")?),
        None => None,
    };
    Some(crate::Incremental {
        cursor: cursor?,
        lookback: lookback?,
        full_scan_every,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::read_source;

    /// The source block `yaml` as read, with `${DB_PASSWORD}` set.
    fn source(yaml: &str) -> super::SourceConfig {
        let file = Path::new("a.yaml");
        let env = |name: &str| (name == "DB_PASSWORD").then(|| "fr0m-env".to_owned());
        let doc = retl_config::parse(file, yaml).unwrap();
        let mut r = retl_config::Reader::new(file, yaml, &env);
        let mut config = read_source(&mut r, &doc).expect("read");
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        config.secrets.extend(r.secrets());
        config
    }

    #[test]
    fn snowflakes_login_timeout_is_the_connect_timeout_unless_the_options_say_it() {
        let login = |yaml: &str| {
            source(yaml)
                .adbc
                .unwrap()
                .options
                .into_iter()
                .filter(|(k, _)| k == "adbc.snowflake.sql.client_option.login_timeout")
                .map(|(_, v)| v)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            login("connection: snowflake://u:p@acct/DB/S\ntable: t\nconnect_timeout_seconds: 3\n"),
            ["3s"]
        );
        assert_eq!(
            login(
                "adbc:\n  driver: snowflake\n  dialect: snowflake\n  options:\n    adbc.snowflake.sql.client_option.login_timeout: 9s\ntable: t\n"
            ),
            ["9s"]
        );
    }

    #[test]
    fn every_kind_of_source_knows_the_secrets_its_messages_must_not_show() {
        for (yaml, secret) in [
            (
                "connection: postgres://ro:pg-pass@db/shop\ntable: t\n",
                "pg-pass",
            ),
            (
                "connection: mysql://ro:my%23pass@db/shop\ntable: t\n",
                "my#pass",
            ),
            (
                "connection: sqlite:///tmp/w.db?auth_token=tok-123\ntable: t\n",
                "tok-123",
            ),
            (
                "connection: postgres://ro:${DB_PASSWORD}@db/shop\ntable: t\n",
                "fr0m-env",
            ),
            (
                "adbc:\n  driver: snowflake\n  options:\n    password: sn0w-pass\ntable: t\n",
                "sn0w-pass",
            ),
            (
                "adbc:\n  driver: postgresql\n  options:\n    uri: \"postgresql://ro:Se[cret@[bad/db\"\ntable: t\n",
                "Se[cret",
            ),
        ] {
            let config = source(yaml);
            let message = format!("the driver said: {secret} is wrong");
            let masked = config.secrets.mask(&message);
            assert!(!masked.contains(secret), "{yaml}: {masked}");
        }
    }
}
