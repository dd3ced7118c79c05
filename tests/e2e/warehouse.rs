//! `source.diff: warehouse`: the diff inside the warehouse, on each
//! database: only rows whose key is not in retl's key table cross; the
//! state decides every one; killing, truncating and switching send nothing
//! twice and lose nothing.

use std::str::FromStr as _;

use sqlx::ConnectOptions as _;

use super::{Kind, World, count, spawn_held};

/// The schema of this world's key table, and the table as SQL names it.
fn key_schema(world: &World) -> String {
    match &world.server {
        Some((_, name)) => format!("{name}_k"),
        None => "retl".to_owned(),
    }
}

/// The key table of `orders` kept by this world's state (which must exist:
/// its identity names the table).
pub(crate) fn key_table(world: &World) -> String {
    let name = retl_source::table_name("orders", &world.state_identity());
    match world.kind {
        Kind::Sqlite => format!("retl_{name}"),
        _ => format!("{}.{name}", key_schema(world)),
    }
}

/// Drops the key table's schema (a database on MySQL) when the test ends.
struct DropKeys<'w>(&'w World);

impl Drop for DropKeys<'_> {
    fn drop(&mut self) {
        let schema = key_schema(self.0);
        match self.0.kind {
            Kind::Sqlite => {}
            Kind::Postgres => self
                .0
                .server_sql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")),
            Kind::Mysql => self
                .0
                .server_sql(&format!("DROP DATABASE IF EXISTS {schema}")),
        }
    }
}

/// One number from the warehouse (`orders` is this test's table; the key
/// table is named in full).
fn scalar(world: &World, sql: &str) -> i64 {
    let sql = sql.replace("orders_table", &world.table());
    world.runtime.block_on(async {
        match world.kind {
            Kind::Sqlite => {
                let url = format!("sqlite://{}", world.warehouse().display());
                let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
                sqlx::query_scalar(&sql).fetch_one(&mut conn).await.unwrap()
            }
            Kind::Postgres => {
                let url = &world.server.as_ref().unwrap().0;
                let mut conn = sqlx::postgres::PgConnectOptions::from_str(url)
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
                sqlx::query_scalar(&sql).fetch_one(&mut conn).await.unwrap()
            }
            Kind::Mysql => {
                let url = &world.server.as_ref().unwrap().0;
                let mut conn = sqlx::mysql::MySqlConnectOptions::from_str(url)
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
                sqlx::query_scalar(&sql).fetch_one(&mut conn).await.unwrap()
            }
        }
    })
}

/// How many keys the key table holds (distinct: a key written twice is one).
fn keys_held(world: &World) -> i64 {
    scalar(
        world,
        &format!(
            "SELECT COUNT(*) FROM (SELECT DISTINCT order_id FROM {}) AS d",
            key_table(world)
        ),
    )
}

/// Sets `source.diff: warehouse` (with this world's key schema) and `first_run`.
fn warehouse_diff(world: &World, first_run: &str) {
    let schema = key_schema(world);
    world.edit_activation(|yaml| {
        yaml.replace(
            "  primary_key: [order_id]\n",
            &format!("  primary_key: [order_id]\n  diff: warehouse\n  diff_schema: {schema}\n"),
        )
        .replace("first_run: send_all", &format!("first_run: {first_run}"))
    });
}

fn assert_each_sent_once(world: &World, expected: usize) {
    let accepted = world.accepted_references();
    assert_eq!(accepted.len(), expected, "{accepted:?}");
    assert!(
        accepted.values().all(|&n| n == 1),
        "a reference was accepted twice: {accepted:?}"
    );
}

/// 100 rows (two bad), then reruns, inserts and a fix: only candidates cross.
fn scenario(world: &World) {
    let _drop = DropKeys(world);
    warehouse_diff(world, "send_all");
    world.insert(1, 100, Some(13), Some(77));
    let (code, first) = world.run();
    assert_eq!(code, 0, "{first}");
    assert_eq!((count(&first, "read"), count(&first, "sent")), (100, 98));
    assert_eq!(count(&first, "rejected"), 2);
    assert_eq!(keys_held(world), 98, "the sent keys are in the key table");

    // Only the two rejected rows are candidates now.
    let (code, second) = world.run();
    assert_eq!(code, 0, "{second}");
    assert_eq!(count(&second, "read"), 2, "{second}");
    assert_eq!(count(&second, "already_rejected"), 2);
    assert_eq!(count(&second, "sent"), 0);

    world.insert(101, 110, None, None);
    let (_, third) = world.run();
    assert_eq!(
        (count(&third, "read"), count(&third, "sent")),
        (12, 10),
        "{third}"
    );
    world.sql("UPDATE orders SET email = 'fixed@shop.example' WHERE order_id = 13");
    let (_, fourth) = world.run();
    assert_eq!(
        (count(&fourth, "read"), count(&fourth, "sent")),
        (2, 1),
        "{fourth}"
    );
    assert_eq!(keys_held(world), 109);
    assert_each_sent_once(world, 109);
}

#[test]
fn only_rows_not_in_the_key_table_cross_on_sqlite() {
    scenario(&World::new());
}

#[test]
fn only_rows_not_in_the_key_table_cross_on_postgresql() {
    if let Some(world) = World::with(Kind::Postgres) {
        scenario(&world);
    }
}

#[test]
fn only_rows_not_in_the_key_table_cross_on_mysql() {
    if let Some(world) = World::with(Kind::Mysql) {
        scenario(&world);
    }
}

/// A first run with `skip_existing` fills the key table inside the
/// warehouse; the next run reads only the rows added since.
fn baseline(world: &World) {
    let _drop = DropKeys(world);
    warehouse_diff(world, "skip_existing");
    world.insert(1, 2_500, None, None);
    let (code, first) = world.run();
    assert_eq!(code, 0, "{first}");
    assert_eq!(count(&first, "baseline"), 2_500, "{first}");
    assert_eq!(count(&first, "sent"), 0);
    assert_eq!(keys_held(world), 2_500);
    world.insert(2_501, 2_505, None, None);
    let (code, next) = world.run();
    assert_eq!(code, 0, "{next}");
    assert_eq!(
        (count(&next, "read"), count(&next, "sent")),
        (5, 5),
        "{next}"
    );
    assert_each_sent_once(world, 5);
}

#[test]
fn a_baseline_is_copied_inside_the_warehouse_on_sqlite() {
    baseline(&World::new());
}

#[test]
fn a_baseline_is_copied_inside_the_warehouse_on_postgresql() {
    if let Some(world) = World::with(Kind::Postgres) {
        baseline(&world);
    }
}

#[test]
fn a_baseline_is_copied_inside_the_warehouse_on_mysql() {
    if let Some(world) = World::with(Kind::Mysql) {
        baseline(&world);
    }
}

/// Truncated, then dropped: the state decides, nothing is sent again, the
/// table is rebuilt and the run says so.
fn emptied(world: &World) {
    let _drop = DropKeys(world);
    warehouse_diff(world, "send_all");
    world.insert(1, 50, None, None);
    assert_eq!(count(&world.run().1, "sent"), 50);
    for (id, empty) in [
        (1_001, format!("DELETE FROM {}", key_table(world))),
        (1_002, format!("DROP TABLE {}", key_table(world))),
    ] {
        world.server_or_sqlite(&empty);
        world.insert(id, id, None, None);
        let out = world.retl(&["run", "orders", "--json"], "emulator-secret");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("retl's key table holds no key but the state holds settled ones"),
            "{stderr}"
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(count(&summary, "sent"), 1, "{summary}");
        assert_eq!(
            count(&summary, "already_sent"),
            u64::from(id) - 951,
            "{summary}"
        );
        // Rebuilt: the next run reads nothing.
        let (_, after) = world.run();
        assert_eq!(count(&after, "read"), 0, "{after}");
    }
    assert_each_sent_once(world, 52);
}

#[test]
fn an_emptied_or_dropped_key_table_resends_nothing_and_is_rebuilt() {
    emptied(&World::new());
    if let Some(world) = World::with(Kind::Postgres) {
        emptied(&world);
    }
    if let Some(world) = World::with(Kind::Mysql) {
        emptied(&world);
    }
}

impl World {
    /// Runs SQL on the warehouse as written (no renaming of `orders`).
    pub(crate) fn server_or_sqlite(&self, sql: &str) {
        match self.kind {
            Kind::Sqlite => {
                let url = format!("sqlite://{}", self.warehouse().display());
                self.runtime.block_on(async {
                    let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
                        .unwrap()
                        .connect()
                        .await
                        .unwrap();
                    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
                });
            }
            _ => self.server_sql(sql),
        }
    }
}

#[test]
fn switching_between_the_diffs_sends_nothing_twice() {
    let world = World::new();
    let _drop = DropKeys(&world);
    world.insert(1, 30, None, None);
    assert_eq!(count(&world.run().1, "sent"), 30);
    // retl → warehouse: the first run reads everything once and fills the table.
    warehouse_diff(&world, "send_all");
    world.insert(31, 32, None, None);
    let (_, first) = world.run();
    assert_eq!(
        (count(&first, "sent"), count(&first, "already_sent")),
        (2, 30),
        "{first}"
    );
    assert_eq!(keys_held(&world), 32);
    world.insert(33, 33, None, None);
    let (_, narrow) = world.run();
    assert_eq!(
        (count(&narrow, "read"), count(&narrow, "sent")),
        (1, 1),
        "{narrow}"
    );
    // warehouse → retl: the state alone decides, as before.
    world.edit_activation(|yaml| yaml.replace("  diff: warehouse\n", "  diff: retl\n"));
    world.insert(34, 34, None, None);
    let (_, back) = world.run();
    assert_eq!(
        (count(&back, "sent"), count(&back, "already_sent")),
        (1, 33),
        "{back}"
    );
    assert_each_sent_once(&world, 34);
}

/// Killed at `hold` with 60 new rows, settled keys written ten at a time,
/// then run again: every row sent once, the key table complete.
fn killed_at(hold: &str, first_run: &str) {
    killed_at_in(&World::new(), hold, first_run);
}

/// [`killed_at`] in `world`.
fn killed_at_in(world: &World, hold: &str, first_run: &str) {
    let _drop = DropKeys(world);
    warehouse_diff(world, first_run);
    world.insert(1, 60, None, None);
    let mut held = spawn_held(world, hold, &["--key-push-rows", "10"]);
    held.kill().unwrap();
    held.wait().unwrap();
    let (code, rerun) = world.run();
    assert!(code == 0 || code == 3, "{rerun}");
    // Rows found in flight (their request may have left) are held as
    // uncertain, never sent again by themselves.
    let uncertain = count(&rerun, "recovered");
    // A baseline killed before its table took its place is made again.
    world.insert(61, 70, None, None);
    let (code, last) = world.run();
    assert_eq!(code, 0, "{last}");
    let sent = if first_run == "skip_existing" { 10 } else { 70 };
    let accepted = world.accepted_references();
    assert!(
        accepted.values().all(|&n| n == 1),
        "killed at {hold}: a reference was accepted twice"
    );
    let (accepted_n, ledger) = (accepted.len() as u64, world.ledger());
    assert!(
        accepted_n <= sent && accepted_n + uncertain >= sent,
        "killed at {hold}: every row sent once or held as uncertain: {accepted_n} sent, {uncertain} uncertain of {sent}"
    );
    assert_eq!(
        ledger.get("uncertain").copied().unwrap_or(0),
        uncertain,
        "{ledger:?}"
    );
    let (_, quiet) = world.run();
    assert_eq!(count(&quiet, "sent"), 0, "{quiet}");
    // The key table holds every settled key: the sent, and the baseline.
    let baseline = if first_run == "skip_existing" { 60 } else { 0 };
    assert_eq!(
        u64::try_from(keys_held(world)).unwrap(),
        ledger.get("sent").copied().unwrap_or(0) + baseline
    );
}

#[test]
fn killed_before_writing_the_key_table_nothing_is_sent_twice() {
    killed_at("keys_unpushed:1", "send_all");
}

#[test]
fn killed_while_writing_the_key_table_nothing_is_sent_twice() {
    killed_at("keys_pushed:1", "send_all");
}

#[test]
fn killed_between_sending_and_recording_nothing_is_sent_twice() {
    killed_at("in_flight:25", "send_all");
}

#[test]
fn killed_before_the_baseline_takes_its_place_nothing_is_sent() {
    killed_at("staged:1", "skip_existing");
}

#[test]
fn killed_after_writing_the_key_table_nothing_is_sent_twice() {
    killed_at("keys_pushed:2", "send_all");
}

#[test]
fn without_the_grant_the_run_and_check_name_it() {
    let Some(world) = World::with(Kind::Postgres) else {
        return;
    };
    let _drop = DropKeys(&world);
    let (url, schema) = world.server.clone().unwrap();
    let role = format!("{schema}_r");
    world.server_sql(&format!(
        "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA {schema} TO {role}; GRANT SELECT ON {schema}.orders TO {role}"
    ));
    let as_role = url.replacen("postgres@", &format!("{role}@"), 1);
    assert_ne!(as_role, url, "the test URL names its user: {url}");
    warehouse_diff(&world, "send_all");
    world.edit_activation(|yaml| yaml.replace(&url, &as_role));
    world.insert(1, 3, None, None);
    let grant = format!("GRANT CREATE ON DATABASE test TO {role}");
    let out = world.retl(&["run", "orders"], "emulator-secret");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&grant), "{stderr}");
    assert!(world.accepted_references().is_empty(), "nothing is sent");
    let out = world.retl(&["check", "--json"], "emulator-secret");
    let report = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{report}");
    assert!(report.contains(&grant), "{report}");
    // Granted, the same run goes.
    world.server_sql(&format!("GRANT CREATE ON DATABASE test TO {role}"));
    let (code, summary) = world.run();
    assert_eq!((code, count(&summary, "sent")), (0, 3), "{summary}");
    world.server_sql(&format!(
        "DROP SCHEMA IF EXISTS {schema}_k CASCADE; REVOKE ALL ON DATABASE test FROM {role}; REVOKE ALL ON SCHEMA {schema} FROM {role}; REVOKE ALL ON {schema}.orders FROM {role}; DROP ROLE {role}"
    ));
}

/// Cursor mode and the warehouse diff together: both conditions in one
/// `WHERE`, so a run reads only new rows past the mark, not the lookback's.
fn with_cursor_mode(world: &World) {
    let _drop = DropKeys(world);
    warehouse_diff(world, "send_all");
    let column = match world.kind {
        Kind::Sqlite => "TEXT",
        Kind::Postgres => "timestamp",
        Kind::Mysql => "DATETIME(6)",
    };
    world.sql(&format!(
        "ALTER TABLE orders ADD COLUMN created_at {column}"
    ));
    let order = |id: u32, at: &str| {
        world.sql(&format!(
            "INSERT INTO orders (order_id, full_name, email, locale, created_at) VALUES ({id}, 'C {id}', 'c{id}@shop.example', 'en-US', '{at}')"
        ));
    };
    for id in 1..=5 {
        order(id, &format!("2026-11-01 1{id}:00:00"));
    }
    world.edit_activation(|yaml| {
        yaml.replace(
            "  diff: warehouse\n",
            "  diff: warehouse\n  incremental:\n    cursor: created_at\n    lookback: 1h\n    full_scan_every: 7d\n",
        )
    });
    let run_at = |offset: &str| {
        let out = world
            .command(&["run", "orders", "--json"], "emulator-secret")
            .env("RETL_CLOCK_OFFSET", offset)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = run_at("0s");
    assert_eq!(
        (count(&first, "read"), count(&first, "sent")),
        (5, 5),
        "{first}"
    );
    order(6, "2026-11-01 16:00:00");
    order(7, "2026-11-01 17:00:00");
    order(8, "2026-10-01 00:00:00");
    // Rows 4 and 5 are inside the lookback but in the key table: not read.
    let second = run_at("0s");
    assert_eq!(
        (count(&second, "read"), count(&second, "sent")),
        (2, 2),
        "{second}"
    );
    // A full scan is due eight days on: only the late row is not in the table.
    let full = run_at("8d");
    assert_eq!(
        (count(&full, "read"), count(&full, "sent")),
        (1, 1),
        "{full}"
    );
    assert_each_sent_once(world, 8);
}

#[test]
fn with_cursor_mode_only_new_rows_past_the_mark_cross() {
    with_cursor_mode(&World::new());
    if let Some(world) = World::with(Kind::Postgres) {
        with_cursor_mode(&world);
    }
    if let Some(world) = World::with(Kind::Mysql) {
        with_cursor_mode(&world);
    }
}

/// Reads `world`'s warehouse through an ADBC driver (`RETL_TEST_ADBC_*`)
/// instead of its native connection, with `dialect` set where it is
/// given (else the vendor name the driver reports says it); `None` when
/// the driver is not configured (outside CI).
fn through_adbc(world: &World, dialect: Option<&str>) -> Option<()> {
    let (variable, uri) = match world.kind {
        Kind::Sqlite => (
            "RETL_TEST_ADBC_SQLITE_DRIVER",
            format!("file:{}", world.warehouse().display()),
        ),
        Kind::Postgres => (
            "RETL_TEST_ADBC_POSTGRESQL_DRIVER",
            world
                .server
                .as_ref()
                .unwrap()
                .0
                .replace("postgres://", "postgresql://"),
        ),
        Kind::Mysql => unreachable!("no ADBC driver for MySQL is tested"),
    };
    let driver = super::server_url(variable)?;
    let connection = match world.kind {
        Kind::Sqlite => format!("sqlite://{}", world.warehouse().display()),
        _ => world.server.as_ref().unwrap().0.clone(),
    };
    let dialect = dialect.map_or_else(String::new, |d| format!("    dialect: {d}\n"));
    world.edit_activation(|yaml| {
        let native = format!("  connection: {connection}\n");
        assert!(yaml.contains(&native), "{yaml}");
        yaml.replace(
            &native,
            &format!(
                "  adbc:\n    driver: {driver}\n{dialect}    options:\n      uri: \"{uri}\"\n"
            ),
        )
    });
    Some(())
}

/// PostgreSQL lacks Redshift's `GETDATE()`: the Redshift dialect's SQL is
/// run on PostgreSQL with one defined.
fn with_getdate(world: &World) {
    world.server_sql(
        "CREATE OR REPLACE FUNCTION public.getdate() RETURNS timestamp LANGUAGE sql AS 'SELECT localtimestamp'",
    );
}

#[test]
fn only_rows_not_in_the_key_table_cross_through_adbc_drivers_in_each_dialect() {
    let world = World::new();
    if through_adbc(&world, None).is_some() {
        scenario(&world);
    }
    if let Some(world) = World::with(Kind::Postgres)
        && through_adbc(&world, None).is_some()
    {
        scenario(&world);
    }
    if let Some(world) = World::with(Kind::Postgres)
        && through_adbc(&world, Some("redshift")).is_some()
    {
        with_getdate(&world);
        scenario(&world);
    }
}

#[test]
fn a_baseline_is_copied_inside_the_warehouse_through_adbc_drivers() {
    let world = World::new();
    if through_adbc(&world, None).is_some() {
        baseline(&world);
    }
    if let Some(world) = World::with(Kind::Postgres)
        && through_adbc(&world, Some("redshift")).is_some()
    {
        with_getdate(&world);
        baseline(&world);
    }
}

#[test]
fn killed_through_an_adbc_driver_nothing_is_sent_twice_or_lost() {
    for (hold, first_run) in [
        ("keys_unpushed:1", "send_all"),
        ("keys_pushed:1", "send_all"),
        ("keys_pushed:2", "send_all"),
        ("staged:1", "skip_existing"),
    ] {
        let world = World::new();
        if through_adbc(&world, None).is_none() {
            return;
        }
        killed_at_in(&world, hold, first_run);
    }
}

#[test]
fn with_cursor_mode_through_an_adbc_driver_only_new_rows_past_the_mark_cross() {
    if let Some(world) = World::with(Kind::Postgres)
        && through_adbc(&world, None).is_some()
    {
        with_cursor_mode(&world);
    }
}
