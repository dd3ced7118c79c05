//! End-to-end tests of the `retl` binary: a SQLite warehouse, the Trustpilot
//! emulator in-process, and the real binary driven through its command line.

mod adbc;
mod alerts;
mod audit;
mod columnar;
mod cursor;
mod dbt;
mod dedupe;
mod destination;
mod feedback;
mod first_hour;
mod never_lost;
mod outcomes;
mod properties;
mod run_logs;
mod safe_defaults;
mod safety;
mod schedule;
mod see_before_send;
mod semi_structured;
mod unattended;
mod warehouse;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::str::FromStr;

use retl_trustpilot_emulator::{Emulator, EmulatorConfig};
use serde_json::Value;
use sqlx::ConnectOptions as _;
use sqlx::sqlite::SqliteConnectOptions;

/// Which warehouse a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
    Mysql,
}

/// A warehouse, a config directory, a state database and an emulator.
pub(crate) struct World {
    runtime: tokio::runtime::Runtime,
    emulator: Option<Emulator>,
    pub(crate) dir: tempfile::TempDir,
    kind: Kind,
    /// The server URL (PostgreSQL, MySQL) and this test's own schema or database.
    server: Option<(String, String)>,
    /// A PostgreSQL state database instead of the SQLite file: URL and schema.
    pg_state: Option<(String, String)>,
}

/// Runs SQL on a PostgreSQL server.
fn pg_exec(runtime: &tokio::runtime::Runtime, url: &str, sql: &str) {
    runtime.block_on(async {
        let mut conn = sqlx::postgres::PgConnectOptions::from_str(url)
            .unwrap()
            .connect()
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is unreachable: {e}"));
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    });
}

static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The URL of a test database server; `None` (skip) outside CI when unset.
fn server_url(var: &str) -> Option<String> {
    if let Ok(url) = std::env::var(var) {
        return Some(url);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{var} must be set when CI=true (scripts/test.sh sets it)"
    );
    eprintln!("skipped: {var} is not set (scripts/test.sh sets it)");
    None
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some((url, schema)) = &self.pg_state {
            pg_exec(&self.runtime, url, &format!("DROP SCHEMA {schema} CASCADE"));
        }
        if let Some((_, name)) = &self.server {
            let sql = match self.kind {
                Kind::Postgres => format!("DROP SCHEMA {name} CASCADE"),
                _ => format!("DROP DATABASE {name}"),
            };
            self.server_sql(&sql);
        }
    }
}

impl World {
    fn new() -> World {
        World::with(Kind::Sqlite).unwrap()
    }

    /// A world on `kind`'s warehouse; `None` when that database is not configured (outside CI).
    fn with(kind: Kind) -> Option<World> {
        World::with_emulator(kind, EmulatorConfig::default())
    }

    /// A world whose emulator runs with `config`.
    fn with_emulator(kind: Kind, config: EmulatorConfig) -> Option<World> {
        let server = match kind {
            Kind::Sqlite => None,
            Kind::Postgres => Some(server_url("RETL_TEST_POSTGRES_URL")?),
            Kind::Mysql => Some(server_url("RETL_TEST_MYSQL_URL")?),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let emulator = runtime
            .block_on(Emulator::start(
                config,
                SocketAddr::from(([127, 0, 0, 1], 0)),
            ))
            .unwrap();
        let name = format!(
            "retl_e2e_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let world = World {
            runtime,
            emulator: Some(emulator),
            dir: tempfile::tempdir().unwrap(),
            kind,
            server: server.map(|url| (url, name.clone())),
            pg_state: None,
        };
        match kind {
            Kind::Sqlite => {}
            Kind::Postgres => world.server_sql(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            )),
            Kind::Mysql => world.server_sql(&format!(
                "DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}"
            )),
        }
        world.sql("CREATE TABLE orders (order_id INTEGER PRIMARY KEY, full_name TEXT, email TEXT, locale TEXT)");
        world.write_destination();
        world.write("activations/orders.yaml", &format!(
            "source:\n  connection: {}\n  table: {}\n  primary_key: [order_id]\ndestination: trustpilot\nfirst_run: send_all\nmapping:\n  reference_number: order_id\n  consumer_name: full_name\n  consumer_email: email\n  locale: locale\n",
            world.connection(),
            world.table()
        ));
        Some(world)
    }

    /// The activation's `source.connection`.
    fn connection(&self) -> String {
        match &self.server {
            Some((url, _)) => url.clone(),
            None => format!("sqlite://{}", self.warehouse().display()),
        }
    }

    /// The orders table, qualified with this test's schema or database.
    fn table(&self) -> String {
        match &self.server {
            Some((_, name)) => format!("{name}.orders"),
            None => "orders".to_owned(),
        }
    }

    /// Runs SQL on the server itself (not inside this test's schema).
    fn server_sql(&self, sql: &str) {
        let (url, _) = self.server.as_ref().expect("a database server");
        self.runtime.block_on(async {
            match self.kind {
                Kind::Postgres => {
                    let mut conn = sqlx::postgres::PgConnectOptions::from_str(url)
                        .unwrap()
                        .connect()
                        .await
                        .unwrap_or_else(|e| panic!("PostgreSQL is unreachable: {e}"));
                    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
                }
                Kind::Mysql => {
                    let mut conn = sqlx::mysql::MySqlConnectOptions::from_str(url)
                        .unwrap()
                        .connect()
                        .await
                        .unwrap_or_else(|e| panic!("MySQL is unreachable: {e}"));
                    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
                }
                Kind::Sqlite => unreachable!("sqlite has no server"),
            }
        });
    }

    fn emulator(&self) -> &Emulator {
        self.emulator.as_ref().unwrap()
    }

    fn warehouse(&self) -> PathBuf {
        self.dir.path().join("warehouse.db")
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.path().join("configs")
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.config_dir().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// The destination pointing at this world's emulator.
    /// Rewrites the activation file through `edit`.
    fn edit_activation(&self, edit: impl FnOnce(String) -> String) {
        let path = self.config_dir().join("activations/orders.yaml");
        let yaml = std::fs::read_to_string(&path).unwrap();
        std::fs::write(path, edit(yaml)).unwrap();
    }

    /// The request bodies the emulator accepted, by reference.
    fn bodies(&self) -> HashMap<String, Value> {
        self.emulator()
            .invitations()
            .into_iter()
            .map(|i| (i.reference().unwrap().to_owned(), i.body))
            .collect()
    }

    fn write_destination(&self) {
        self.write_destination_with("");
    }

    /// The destination, with `extra` top-level YAML appended (`retry`, `rate_limits`, ...).
    fn write_destination_with(&self, extra: &str) {
        let url = self.emulator().url();
        self.write(
            "destinations/trustpilot.yaml",
            &format!(
                "type: trustpilot\nauth:\n  api_key: ${{TP_KEY}}\n  api_secret: ${{TP_SECRET}}\n  business_user_id: user-emulator\nendpoints:\n  auth: {url}\n  invitations: {url}\ndefaults:\n  business_unit_id: bu-emulator\n  sender_name: E2E Shop\n{extra}"
            ),
        );
    }

    /// Runs SQL on the warehouse; `orders` means this test's orders table.
    fn sql(&self, sql: &str) {
        let sql = sql.replace("orders", &self.table());
        if self.kind != Kind::Sqlite {
            return self.server_sql(&sql);
        }
        let sql = sql.as_str();
        let url = format!("sqlite://{}", self.warehouse().display());
        self.runtime.block_on(async {
            let mut conn = SqliteConnectOptions::from_str(&url)
                .unwrap()
                .create_if_missing(true)
                .connect()
                .await
                .unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        });
    }

    /// Inserts orders `from..=to`; `bad_email` and `no_name` spoil one row each.
    fn insert(&self, from: u32, to: u32, bad_email: Option<u32>, no_name: Option<u32>) {
        let mut sql =
            String::from("INSERT INTO orders (order_id, full_name, email, locale) VALUES ");
        let values: Vec<String> = (from..=to)
            .map(|i| {
                let email = if Some(i) == bad_email {
                    "not-an-email".to_owned()
                } else {
                    format!("customer{i}@shop.example")
                };
                let name = if Some(i) == no_name {
                    "NULL".to_owned()
                } else {
                    format!("'Customer {i}'")
                };
                format!("({i}, {name}, '{email}', 'en-US')")
            })
            .collect();
        sql.push_str(&values.join(", "));
        self.sql(&sql);
    }

    fn retl(&self, args: &[&str], secret: &str) -> Output {
        self.command(args, secret).output().unwrap()
    }

    /// The `retl` command with this world's configuration and state.
    fn command(&self, args: &[&str], secret: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_retl"));
        command
            .args(["--config-dir", self.config_dir().to_str().unwrap()])
            .args(["--state", &self.state_url()])
            .args(args)
            .env("TP_KEY", "emulator-key")
            .env("TP_SECRET", secret)
            .env_remove("RETL_STATE_URL");
        command
    }

    pub(crate) fn state_url(&self) -> String {
        match &self.pg_state {
            Some((url, schema)) => {
                let join = if url.contains('?') { '&' } else { '?' };
                format!("{url}{join}options=-c%20search_path%3D{schema}")
            }
            None => format!("sqlite://{}", self.dir.path().join("state.db").display()),
        }
    }

    /// Keeps the state (ledger, run logs, leases) in a PostgreSQL schema of
    /// its own; `None` when PostgreSQL is not configured (outside CI).
    pub(crate) fn with_postgres_state(mut self) -> Option<World> {
        let url = server_url("RETL_TEST_POSTGRES_URL")?;
        let schema = format!(
            "retl_state_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        pg_exec(
            &self.runtime,
            &url,
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
        );
        self.pg_state = Some((url, schema));
        Some(self)
    }

    /// The state database's identity (made by its first run).
    pub(crate) fn state_identity(&self) -> String {
        let sql = "SELECT value FROM state_keys WHERE name = 'state_identity_v1'";
        self.runtime.block_on(async {
            if let Some((url, schema)) = &self.pg_state {
                let mut conn = sqlx::postgres::PgConnectOptions::from_str(url)
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
                let sql = sql.replace("state_keys", &format!("{schema}.state_keys"));
                return sqlx::query_scalar(&sql).fetch_one(&mut conn).await.unwrap();
            }
            let mut conn = SqliteConnectOptions::from_str(&self.state_url())
                .unwrap()
                .connect()
                .await
                .unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        })
    }

    /// How many ledger keys of `orders` have each status.
    fn ledger(&self) -> HashMap<String, u64> {
        if let Some((url, schema)) = &self.pg_state {
            let sql = format!(
                "SELECT status, COUNT(*) FROM {schema}.ledger WHERE activation = 'orders' GROUP BY status"
            );
            return self.runtime.block_on(async {
                let mut conn = sqlx::postgres::PgConnectOptions::from_str(url)
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
                let rows: Vec<(String, i64)> = sqlx::query_as(&sql)
                    .fetch_all(&mut conn)
                    .await
                    .unwrap_or_default();
                rows.into_iter()
                    .map(|(s, n)| (s, u64::try_from(n).unwrap()))
                    .collect()
            });
        }
        if !self.dir.path().join("state.db").exists() {
            return HashMap::new();
        }
        let url = self.state_url();
        self.runtime.block_on(async {
            let mut conn = SqliteConnectOptions::from_str(&url)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT status, COUNT(*) FROM ledger WHERE activation = 'orders' GROUP BY status",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            rows.into_iter()
                .map(|(s, n)| (s, u64::try_from(n).unwrap()))
                .collect()
        })
    }

    /// `retl run orders --json`: the exit code and the summary.
    fn run(&self) -> (i32, Value) {
        self.run_with_secret("emulator-secret")
    }

    fn run_with_secret(&self, secret: &str) -> (i32, Value) {
        let out = self.retl(&["run", "orders", "--json"], secret);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap(), summary)
    }

    fn show(&self, run_id: &str) -> Value {
        let out = self.retl(&["runs", "show", run_id, "--json"], "emulator-secret");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn accepted_references(&self) -> HashMap<String, usize> {
        let mut seen = HashMap::new();
        for invitation in self.emulator().invitations() {
            *seen
                .entry(invitation.reference().unwrap().to_owned())
                .or_insert(0) += 1;
        }
        seen
    }
}

fn count(summary: &Value, name: &str) -> u64 {
    summary["counts"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no count `{name}` in {summary}"))
}

#[test]
fn new_rows_are_sent_once_and_bad_rows_are_explained() {
    scenario(&World::new());
}

#[test]
fn the_same_scenario_on_postgresql() {
    if let Some(world) = World::with(Kind::Postgres) {
        scenario(&world);
    }
}

#[test]
fn the_same_scenario_with_a_postgresql_state_database() {
    if let Some(world) = World::new().with_postgres_state() {
        scenario(&world);
        assert_eq!(world.ledger().get("sent"), Some(&109));
    }
}

#[test]
fn the_same_scenario_on_postgresql_read_through_a_cursor() {
    // Redshift's path (no binary COPY), against PostgreSQL.
    if let Some(world) = World::with(Kind::Postgres) {
        world.edit_activation(|yaml| {
            yaml.replace(
                "  primary_key: [order_id]\n",
                "  primary_key: [order_id]\n  read: cursor\n",
            )
        });
        scenario(&world);
    }
}

#[test]
fn the_same_scenario_on_mysql() {
    if let Some(world) = World::with(Kind::Mysql) {
        scenario(&world);
    }
}

/// 100 rows (one bad email, one missing name), then reruns, inserts and edits.
fn scenario(world: &World) {
    world.insert(1, 100, Some(13), Some(77));

    let (code, first) = world.run();
    assert_eq!(code, 0, "{first}");
    assert_eq!(first["status"], "completed");
    assert_eq!(first["activation"], "orders");
    assert_eq!((count(&first, "read"), count(&first, "new")), (100, 100));
    assert_eq!((count(&first, "sent"), count(&first, "rejected")), (98, 2));
    for field in ["run_id", "started_at", "finished_at"] {
        assert!(first[field].is_string(), "{field} in {first}");
    }
    let log = world.show(first["run_id"].as_str().unwrap());
    let rejected: Vec<&Value> = log["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "rejected")
        .collect();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["key"], "13");
    assert_eq!(
        rejected[0]["reason"],
        "consumer_email: not a valid email address"
    );
    assert_eq!(rejected[1]["key"], "77");
    assert_eq!(rejected[1]["reference"], "77");
    assert_eq!(
        rejected[1]["reason"],
        "consumer_name: missing (column `full_name` is NULL or empty)"
    );
    assert_eq!(
        world.emulator().stats().bad_requests,
        0,
        "bad rows cost no API call"
    );

    let (code, second) = world.run();
    assert_eq!(code, 0, "{second}");
    assert_eq!(count(&second, "sent"), 0);
    assert_eq!(count(&second, "already_sent"), 98);
    assert_eq!(count(&second, "already_rejected"), 2);

    world.insert(101, 110, None, None);
    world.sql("UPDATE orders SET email = 'changed@shop.example' WHERE order_id = 5");
    let (code, third) = world.run();
    assert_eq!(code, 0);
    assert_eq!(count(&third, "sent"), 10);
    assert_eq!(count(&third, "ignored_changed"), 1);
    let third_log = world.show(third["run_id"].as_str().unwrap());
    let changed = row_with(&third_log, "ignored_changed");
    assert_eq!(changed["key"], "5");
    assert_eq!(changed["reason"], "changed after sending, not re-sent");
    let sent: Vec<String> = third_log["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "sent")
        .map(|r| r["reference"].as_str().unwrap().to_owned())
        .collect();
    let mut sent_sorted: Vec<u32> = sent.iter().map(|r| r.parse().unwrap()).collect();
    sent_sorted.sort_unstable();
    assert_eq!(sent_sorted, (101..=110).collect::<Vec<_>>());

    let accepted = world.accepted_references();
    assert_eq!(accepted.len(), 108);
    assert!(
        accepted.values().all(|&n| n == 1),
        "a reference number was accepted twice"
    );
    assert!(!accepted.contains_key("13") && !accepted.contains_key("77"));
    // A change is logged once: the next run finds row 5 as it left it.
    let (_, again) = world.run();
    assert_eq!(count(&again, "ignored_changed"), 0);
    assert_eq!(count(&again, "already_sent"), 108);

    // A rejected row whose data is fixed is sent by the next run.
    world.sql("UPDATE orders SET email = 'fixed@shop.example' WHERE order_id = 13");
    let (_, fourth) = world.run();
    assert_eq!(count(&fourth, "sent"), 1);
    assert_eq!(count(&fourth, "already_rejected"), 1);
}

#[test]
fn the_request_body_follows_the_mapping_and_defaults() {
    let world = World::new();
    world.insert(1, 1, None, None);
    let (code, _) = world.run();
    assert_eq!(code, 0);
    let body = &world.emulator().invitations()[0].body;
    assert_eq!(
        body,
        &serde_json::json!({
            "consumerEmail": "customer1@shop.example",
            "consumerName": "Customer 1",
            "referenceNumber": "1",
            "locale": "en-US",
            "senderName": "E2E Shop",
            "type": "email",
            "serviceReviewInvitation": {}
        })
    );
}

#[test]
fn a_broken_activation_file_is_a_configuration_error_with_its_position() {
    let world = World::new();
    world.write(
        "activations/orders.yaml",
        "source:\n  connection: sqlite://nowhere.db\n  tabel: orders\ndestination: trustpilot\nmapping:\n  reference_number: order_id\n  consumer_name: full_name\n  consumer_email: email\n",
    );
    let out = world.retl(&["run", "orders"], "emulator-secret");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = world.config_dir().join("activations/orders.yaml");
    assert!(
        stderr.contains(&format!(
            "{}:3:3: source.tabel: unknown field `tabel`",
            file.display()
        )),
        "{stderr}"
    );
    assert_eq!(world.emulator().stats().token_requests, 0);
}

#[test]
fn a_missing_environment_variable_is_named_with_its_file_and_line() {
    let world = World::new();
    let out = Command::new(env!("CARGO_BIN_EXE_retl"))
        .args([
            "--config-dir",
            world.config_dir().to_str().unwrap(),
            "run",
            "orders",
        ])
        .env_remove("TP_SECRET")
        .env("TP_KEY", "k")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("destinations/trustpilot.yaml:4:15: auth.api_secret: environment variable `TP_SECRET` is not set"), "{stderr}");
}

#[test]
fn a_mapped_column_missing_from_the_table_lists_the_real_columns() {
    let world = World::new();
    world.insert(1, 3, None, None);
    world.write(
        "activations/orders.yaml",
        &format!(
            "source:\n  connection: sqlite://{}\n  table: orders\ndestination: trustpilot\nmapping:\n  reference_number: order_id\n  consumer_name: name\n  consumer_email: email\n",
            world.warehouse().display()
        ),
    );
    let out = world.retl(&["run", "orders"], "emulator-secret");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("column `name` does not exist in the source; available columns: order_id, full_name, email, locale"), "{stderr}");
    assert!(
        stderr.contains("the configuration names it at ")
            && stderr.contains("activations/orders.yaml:7:18 (mapping.consumer_name)"),
        "{stderr}"
    );
}

#[test]
fn a_renamed_column_gets_a_did_you_mean() {
    let world = World::new();
    world.insert(1, 3, None, None);
    world.sql("ALTER TABLE orders RENAME COLUMN email TO email_address");
    for args in [&["run", "orders"][..], &["check"]] {
        let out = world.retl(args, "emulator-secret");
        assert_eq!(out.status.code(), Some(2));
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            said.contains(
                "column `email` does not exist in the source; did you mean `email_address`?"
            ) && said.contains("(mapping.consumer_email)"),
            "{args:?}: {said}"
        );
    }
}

#[test]
fn wrong_credentials_stop_the_run_without_failing_any_row() {
    let world = World::new();
    world.insert(1, 5, None, None);
    let (code, summary) = world.run_with_secret("wrong-secret");
    assert_eq!(code, 2, "{summary}");
    assert_eq!(summary["status"], "failed");
    assert_eq!(count(&summary, "failed"), 0);
    assert!(
        summary["error"]
            .as_str()
            .unwrap()
            .contains("invalid_client")
    );
    assert!(!summary.to_string().contains("wrong-secret"));

    let (code, retry) = world.run();
    assert_eq!(code, 0, "{retry}");
    assert_eq!(count(&retry, "sent"), 5);
    assert_eq!(world.accepted_references().len(), 5);
}

#[test]
fn rows_that_fail_transiently_exit_3_and_are_sent_by_the_next_run() {
    let mut world = World::new();
    world.insert(1, 3, None, None);
    // Point the destination at a port nobody listens on.
    let emulator = world.emulator.take().unwrap();
    let url = emulator.url();
    world.runtime.block_on(emulator.stop()).unwrap();
    let restarted = world
        .runtime
        .block_on(Emulator::start(
            EmulatorConfig::default(),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        ))
        .unwrap();
    world.write(
        "destinations/trustpilot.yaml",
        &format!(
            "type: trustpilot\nauth:\n  api_key: ${{TP_KEY}}\n  api_secret: ${{TP_SECRET}}\n  business_user_id: user-emulator\nendpoints:\n  auth: {url}\n  invitations: {url}\ndefaults:\n  business_unit_id: bu-emulator\n"
        ),
    );
    world.emulator = Some(restarted);
    let (code, failed) = world.run();
    assert_eq!(code, 3, "{failed}");
    assert_eq!(failed["status"], "completed");
    assert_eq!(count(&failed, "failed"), 3);

    world.write_destination();
    let (code, retry) = world.run();
    assert_eq!(code, 0, "{retry}");
    assert_eq!(count(&retry, "sent"), 3);
    assert_eq!(count(&retry, "new"), 3);
}

#[test]
fn runs_list_shows_the_newest_run_first() {
    let world = World::new();
    world.insert(1, 2, None, None);
    let (_, first) = world.run();
    let (_, second) = world.run();
    let out = world.retl(
        &["runs", "list", "--activation", "orders", "--json"],
        "emulator-secret",
    );
    assert!(out.status.success());
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs[0]["run_id"], second["run_id"]);
    assert_eq!(runs[1]["run_id"], first["run_id"]);

    let text = world.retl(&["runs", "list"], "emulator-secret");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.starts_with("RUN_ID"), "{text}");
    let missing = world.retl(&["runs", "show", "no-such-run"], "emulator-secret");
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn secrets_never_reach_output_logs_or_the_state_database() {
    let world = World::new();
    world.insert(1, 3, Some(2), None);
    let out = world.retl(
        &["-vv", "--log-format", "json", "run", "orders"],
        "emulator-secret",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let everything = format!(
        "{}{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&std::fs::read(world.dir.path().join("state.db")).unwrap()),
    );
    assert!(!everything.contains("emulator-secret"));
    assert!(
        !everything.contains("customer1@shop.example"),
        "emails stay out of logs and run logs"
    );
}

#[test]
fn the_demo_runs() {
    let out = Command::new(env!("CARGO_BIN_EXE_retl"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("read 50  new 50  sent 48  rejected 2"),
        "{stdout}"
    );
    assert!(stdout.contains("read 55  new 5  sent 5"), "{stdout}");
    assert!(
        stdout.contains("each reference number once: yes"),
        "{stdout}"
    );
}

#[test]
fn check_reports_each_activation_and_fails_on_any_problem() {
    for kind in [Kind::Sqlite, Kind::Postgres, Kind::Mysql] {
        let Some(world) = World::with(kind) else {
            continue;
        };
        let out = world.retl(&["check"], "emulator-secret");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{kind:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("\ndestination trustpilot: ok\n  token minted\n"),
            "{stdout}"
        );
        assert!(
            stdout.contains("  business unit bu-emulator (Emulator Shop): 2 template(s)"),
            "{stdout}"
        );
        assert!(stdout.contains("\norders: ok\n"), "{stdout}");
        assert!(stdout.starts_with("state: "), "{stdout}");
        assert!(
            stdout.contains("  first run: pending (send_all): the model has "),
            "{stdout}"
        );

        world.write(
            "activations/other.yaml",
            &format!(
                "source:\n  connection: {}\n  table: {}\ndestination: trustpilot\nmapping:\n  reference_number: order_id\n  consumer_name: name\n  consumer_email: email\n",
                world.connection(),
                world.table()
            ),
        );
        world.write("activations/broken.yaml", "source: [\n");
        let out = world.retl(&["check"], "emulator-secret");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{kind:?}: {stdout}");
        assert!(stdout.contains("broken.yaml:2:1: invalid YAML"), "{stdout}");
        assert!(stdout.contains("orders: ok"), "{stdout}");
        assert!(
            stdout.contains("other: source of activation `other`: column `name` does not exist in the source; available columns: order_id, full_name, email, locale"),
            "{kind:?}: {stdout}"
        );
        let only = world.retl(&["check", "orders"], "emulator-secret");
        let stdout = String::from_utf8_lossy(&only.stdout);
        assert_eq!(
            only.status.code(),
            Some(0),
            "`check orders` checks orders and what it uses, not the other files: {stdout}"
        );
        assert!(
            !stdout.contains("broken.yaml") && !stdout.contains("\nother:"),
            "{stdout}"
        );
    }
}

#[test]
fn check_names_an_unreachable_source() {
    let world = World::new();
    world.write(
        "activations/orders.yaml",
        "source:\n  connection: postgres://nobody:pw-secret@127.0.0.1:1/none\n  table: orders\n  connect_timeout_seconds: 5\ndestination: trustpilot\nmapping:\n  reference_number: order_id\n  consumer_name: full_name\n  consumer_email: email\n",
    );
    let out = world.retl(&["check"], "emulator-secret");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("orders: source of activation `orders`: cannot connect to the source"),
        "{stdout}"
    );
    assert!(!stdout.contains("pw-secret"));
}

#[test]
fn a_sent_key_repeated_by_a_join_is_duplicate_not_changed_after_sending() {
    let world = World::new();
    world.insert(1, 2, None, None);
    assert_eq!(count(&world.run().1, "sent"), 2);
    world.write(
        "activations/orders.yaml",
        &format!(
            "source:\n  connection: {}\n  query: |\n    SELECT order_id, full_name, email FROM orders\n    UNION ALL SELECT order_id, 'Other line', email FROM orders WHERE order_id = 2\ndestination: trustpilot\nmapping:\n  reference_number: order_id\n  consumer_name: full_name\n  consumer_email: email\n",
            world.connection()
        ),
    );
    for _ in 0..2 {
        let (code, summary) = world.run();
        assert_eq!(code, 0, "{summary}");
        assert_eq!(
            (
                count(&summary, "duplicate"),
                count(&summary, "ignored_changed"),
                count(&summary, "sent")
            ),
            (2, 0, 0),
            "{summary}"
        );
    }
    assert_eq!(world.accepted_references().get("2"), Some(&1));
}

#[test]
fn a_key_twice_in_one_read_is_duplicate_none_of_its_rows_sent_until_the_source_has_one() {
    let world = World::new();
    world.insert(1, 3, None, None);
    let query = |twice: bool| {
        format!(
            "source:\n  connection: {}\n  query: |\n    SELECT order_id, full_name, email FROM orders\n{}    UNION ALL SELECT NULL, 'Nobody', 'nobody@shop.example'\ndestination: trustpilot\nmapping:\n  reference_number: order_id\n  consumer_name: full_name\n  consumer_email: email\n",
            world.connection(),
            if twice {
                "    UNION ALL SELECT order_id, 'Other line', email FROM orders WHERE order_id = 2\n"
            } else {
                ""
            }
        )
    };
    world.write("activations/orders.yaml", &query(true));
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(
        (
            count(&summary, "read"),
            count(&summary, "sent"),
            count(&summary, "rejected"),
            count(&summary, "duplicate"),
        ),
        (5, 2, 1, 2),
        "{summary}"
    );
    let log = world.show(summary["run_id"].as_str().unwrap());
    let rows = log["rows"].as_array().unwrap();
    let duplicate: Vec<&Value> = rows
        .iter()
        .filter(|r| r["outcome"] == "duplicate")
        .collect();
    assert_eq!(duplicate.len(), 2, "{rows:?}");
    let reason = duplicate[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("appears more than once in this read")
            && reason.contains("string_agg, GROUP BY"),
        "{reason}"
    );
    assert!(
        rows.iter()
            .any(|r| r["outcome"] == "rejected" && r["reason"] == "primary key (order_id) is NULL")
    );
    assert_eq!(
        world.accepted_references().get("2"),
        None,
        "none of its rows"
    );
    // `--outcome duplicate` lists them.
    let out = world.retl(
        &["runs", "show", "latest", "--outcome", "duplicate", "--json"],
        "emulator-secret",
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["rows"].as_array().unwrap().len(), 2, "{shown}");
    // Still twice: duplicate again, never `ignored_changed`, never sent.
    let (_, again) = world.run();
    assert_eq!(
        (count(&again, "duplicate"), count(&again, "ignored_changed")),
        (2, 0),
        "{again}"
    );
    // The query fixed: the source has one row for it, and it goes out once.
    world.write("activations/orders.yaml", &query(false));
    let (_, fixed) = world.run();
    assert_eq!(count(&fixed, "sent"), 1, "{fixed}");
    assert_eq!(world.accepted_references().get("2"), Some(&1));
}

/// A table `events` of 250 rows whose row 150 has the id `oops`: a source
/// read in batches of 100 fails on its second batch.
fn events_table(world: &World) {
    world.sql(
        "CREATE TABLE events (id INTEGER, name TEXT, email TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 250)
         INSERT INTO events SELECT i, 'Customer ' || i, 'c' || i || '@shop.example' FROM n;
         UPDATE events SET id = 'oops' WHERE id = 150;",
    );
}

/// The activation on `events`, read in batches of 100.
fn events_activation(world: &World, first_run: &str) -> String {
    format!(
        "source:\n  connection: {}\n  table: events\n  batch_size: 100\ndestination: trustpilot\nfirst_run: {first_run}\nmapping:\n  reference_number: id\n  consumer_name: name\n  consumer_email: email\n",
        world.connection()
    )
}

#[test]
fn a_source_that_fails_mid_run_stops_the_run_and_the_next_run_picks_up() {
    let world = World::new();
    events_table(&world);
    world.write(
        "activations/orders.yaml",
        &events_activation(&world, "send_all"),
    );
    let (code, failed) = world.run();
    assert_eq!(code, 1, "{failed}");
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        failed["error"],
        "source of activation `orders`: column `id`, row 150: a TEXT value in a column read as Int64"
    );
    assert_eq!(
        count(&failed, "sent"),
        100,
        "the first batch went out before the failure"
    );
    assert_eq!(world.accepted_references().len(), 100);

    world.sql("UPDATE events SET id = 150 WHERE id = 'oops'");
    let (code, retry) = world.run();
    assert_eq!(code, 0, "{retry}");
    assert_eq!(
        (count(&retry, "sent"), count(&retry, "already_sent")),
        (150, 100)
    );
    let accepted = world.accepted_references();
    assert_eq!(accepted.len(), 250);
    assert!(accepted.values().all(|&n| n == 1));
}

#[test]
fn skip_existing_records_the_rows_already_there_and_sends_only_later_ones() {
    let world = World::new();
    events_table(&world);
    world.write(
        "activations/orders.yaml",
        &events_activation(&world, "skip_existing"),
    );
    // A first run that fails part-way has not completed: the next is a first run still.
    let (code, failed) = world.run();
    assert_eq!(code, 1, "{failed}");
    assert_eq!(count(&failed, "baseline"), 100);
    world.sql("UPDATE events SET id = 150 WHERE id = 'oops'");
    let (code, first) = world.run();
    assert_eq!(code, 0, "{first}");
    assert_eq!((count(&first, "baseline"), count(&first, "sent")), (250, 0));
    assert_eq!(world.emulator().stats().invitation_requests, 0);

    world.sql(
        "INSERT INTO events VALUES (251, 'New One', 'new1@shop.example'), (252, 'New Two', 'new2@shop.example')",
    );
    let (code, second) = world.run();
    assert_eq!(code, 0, "{second}");
    assert_eq!(
        (
            count(&second, "sent"),
            count(&second, "already_sent"),
            count(&second, "baseline")
        ),
        (2, 250, 0)
    );
    let mut sent: Vec<String> = world.accepted_references().into_keys().collect();
    sent.sort();
    assert_eq!(sent, vec!["251", "252"]);
}

#[test]
fn a_baseline_leaves_keys_an_unfinished_first_run_sent_as_they_are() {
    let world = World::new();
    events_table(&world);
    let activation = |first_run: &str| events_activation(&world, first_run);
    // A first run that sends its first batch, then fails: not completed.
    world.write("activations/orders.yaml", &activation("send_all"));
    let (code, failed) = world.run();
    assert_eq!((code, count(&failed, "sent")), (1, 100), "{failed}");
    // Its next run is a first run still; with skip_existing it records the
    // rest as a baseline, and the 100 keys sent stay sent.
    world.sql("UPDATE events SET id = 150 WHERE id = 'oops'");
    world.write("activations/orders.yaml", &activation("skip_existing"));
    let (code, first) = world.run();
    assert_eq!((code, count(&first, "sent")), (0, 0), "{first}");
    assert_eq!(world.ledger().get("sent"), Some(&100));
    world.sql("UPDATE events SET email = 'moved@shop.example' WHERE id IN (5, 200)");
    world.sql("INSERT INTO events VALUES (251, 'New One', 'new1@shop.example')");
    let (code, next) = world.run();
    assert_eq!(code, 0, "{next}");
    assert_eq!(
        (
            count(&next, "sent"),
            count(&next, "ignored_changed"),
            count(&next, "already_sent")
        ),
        (1, 2, 248),
        "{next}"
    );
    let accepted = world.accepted_references();
    assert_eq!(accepted.len(), 101);
    assert!(
        accepted.values().all(|&n| n == 1),
        "a reference was accepted twice"
    );
    assert!(accepted.contains_key("251") && !accepted.contains_key("200"));
}

/// Starts `retl run orders` held at `hold` (`POINT:N`) and returns it once it
/// says it is holding there: the moment is exact, not guessed with a sleep.
pub(crate) fn spawn_held(world: &World, hold: &str, extra: &[&str]) -> std::process::Child {
    use std::process::Stdio;
    let mut args = vec!["run", "orders"];
    args.extend_from_slice(extra);
    let child = world
        .command(&args, "emulator-secret")
        .env("RETL_HOLD_AT", hold)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    held_at(child, hold)
}

/// `child` (stderr piped), once it says it is holding at `hold`; its stderr
/// is drained from then on, so it never blocks on a full pipe.
pub(crate) fn held_at(mut child: std::process::Child, hold: &str) -> std::process::Child {
    use std::io::BufRead as _;
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    let point = hold.replace(':', " ");
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains(&format!("retl: holding at {point}")) => break,
            Some(Ok(_)) => {}
            _ => {
                let status = child.wait().unwrap();
                panic!("the run ended ({status}) before holding at {hold}");
            }
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// The address `retl schedule` says it serves, read from its stderr `lines`.
pub(crate) fn serving_address(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> String {
    loop {
        let line = lines
            .next()
            .expect("the daemon says where it serves")
            .unwrap();
        if let Some(rest) = line.split("serving http://").nth(1) {
            return rest.split_whitespace().next().unwrap().to_owned();
        }
    }
}

/// Sends `signal` (`-TERM`, `-HUP`, …) to process `pid`.
pub(crate) fn signal(pid: u32, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {signal} {pid}");
}

/// `retl ARGS` with this world's configuration: exit code, stdout as JSON
/// (`null` when it is not), and stderr.
pub(crate) fn json(world: &World, args: &[&str]) -> (i32, Value, String) {
    let out = world.retl(args, "emulator-secret");
    (
        out.status.code().unwrap(),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The first row of a run log (`retl runs show --json`) with `outcome`.
pub(crate) fn row_with(log: &Value, outcome: &str) -> Value {
    log["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["outcome"] == outcome)
        .unwrap_or_else(|| panic!("no {outcome} row in {log}"))
        .clone()
}
