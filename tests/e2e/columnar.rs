//! `diff: warehouse` on the columnar warehouses read through ADBC drivers,
//! through the binary: `DuckDB` (its own library, loaded by its entry
//! point `duckdb_adbc_init`, its dialect from the vendor name the driver
//! reports) and Snowflake (fakesnow, through `snowflake://`). Only rows
//! whose key is not in retl's key table cross; a run killed while writing
//! keys sends nothing twice and loses nothing.

use super::{World, count, server_url, spawn_held};

/// Runs statements through an ADBC driver (the test's own setup).
fn adbc_sql(library: &str, entrypoint: Option<&str>, options: &[(&str, String)], sql: &[String]) {
    use adbc_core::options::{AdbcVersion, OptionDatabase, OptionValue};
    use adbc_core::{Connection as _, Database as _, Driver as _, Statement as _};
    let mut driver = adbc_driver_manager::ManagedDriver::load_dynamic_from_filename(
        library,
        entrypoint.map(str::as_bytes),
        AdbcVersion::default(),
    )
    .unwrap();
    let database = driver
        .new_database_with_opts(
            options
                .iter()
                .map(|(k, v)| (OptionDatabase::from(*k), OptionValue::from(v.as_str()))),
        )
        .unwrap();
    let mut connection = database.new_connection().unwrap();
    for sql in sql {
        let mut statement = connection.new_statement().unwrap();
        statement.set_sql_query(sql).unwrap();
        drop(
            statement
                .execute()
                .unwrap_or_else(|e| panic!("{sql}: {}", e.message)),
        );
    }
}

/// A warehouse the test reaches through its driver.
struct Warehouse<'a> {
    /// Adds orders `from..=to` (two columns the mapping reads, and a locale).
    insert: &'a dyn Fn(u32, u32),
    /// How many distinct keys retl's key table holds.
    keys_held: &'a dyn Fn() -> u64,
}

/// 20 orders sent; a rerun reads none; ten more with the run killed after
/// writing its first five keys; then every order sent exactly once and
/// every settled key in the key table.
fn only_new_rows_cross_and_a_kill_loses_nothing(world: &World, warehouse: &Warehouse<'_>) {
    (warehouse.insert)(1, 20);
    let (code, first) = world.run();
    assert_eq!(code, 0, "{first}");
    assert_eq!(
        (count(&first, "read"), count(&first, "sent")),
        (20, 20),
        "{first}"
    );
    assert_eq!(
        (warehouse.keys_held)(),
        20,
        "the sent keys are in the key table"
    );
    let (_, quiet) = world.run();
    assert_eq!(count(&quiet, "read"), 0, "{quiet}");

    (warehouse.insert)(21, 30);
    let mut held = spawn_held(world, "keys_pushed:1", &["--key-push-rows", "5"]);
    held.kill().unwrap();
    held.wait().unwrap();
    let (code, rerun) = world.run();
    assert!(code == 0 || code == 3, "{rerun}");
    let uncertain = count(&rerun, "recovered");
    (warehouse.insert)(31, 32);
    let (code, last) = world.run();
    assert_eq!(code, 0, "{last}");
    let (_, after) = world.run();
    assert_eq!(count(&after, "sent"), 0, "{after}");
    let accepted = world.accepted_references();
    assert!(accepted.values().all(|&n| n == 1), "{accepted:?}");
    let sent = accepted.len() as u64;
    assert!(
        sent <= 32 && sent + uncertain >= 32,
        "every order sent once or held as uncertain: {sent} sent, {uncertain} uncertain"
    );
    assert_eq!(
        (warehouse.keys_held)(),
        world.ledger().get("sent").copied().unwrap_or(0),
        "every sent key is in the key table"
    );
}

#[test]
fn duckdb_diffs_in_place_through_its_own_entry_point() {
    let Some(library) = server_url("RETL_TEST_DUCKDB_LIBRARY") else {
        return;
    };
    let world = World::new();
    let path = world.dir.path().join("shop.duckdb").display().to_string();
    let options = [("path", path.clone())];
    let entry = Some("duckdb_adbc_init");
    adbc_sql(
        &library,
        entry,
        &options,
        &["CREATE SCHEMA sales; CREATE TABLE sales.orders (order_id HUGEINT, full_name VARCHAR, email VARCHAR, locale VARCHAR)".to_owned()],
    );
    world.write(
        "activations/orders.yaml",
        &format!(
            "source:\n  adbc:\n    driver: {library}\n    entrypoint: duckdb_adbc_init\n    options:\n      path: \"{path}\"\n  table: sales.orders\n  primary_key: [order_id]\n  diff: warehouse\ndestination: trustpilot\nfirst_run: send_all\nmapping:\n  reference_number: order_id\n  consumer_name: full_name\n  consumer_email: email\n  locale: locale\n"
        ),
    );
    let check = world.retl(&["check", "orders", "--json"], "emulator-secret");
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{report}");
    let insert = |from: u32, to: u32| {
        let rows: Vec<String> = (from..=to)
            .map(|i| format!("({i}, 'Customer {i}', 'c{i}@shop.example', 'en-US')"))
            .collect();
        adbc_sql(
            &library,
            entry,
            &options,
            &[format!(
                "INSERT INTO sales.orders VALUES {}",
                rows.join(", ")
            )],
        );
    };
    let keys_held = || {
        let table = retl_source::table_name("orders", &world.state_identity());
        let counted = world.dir.path().join("counted.txt");
        adbc_sql(
            &library,
            entry,
            &options,
            &[format!(
                "COPY (SELECT COUNT(DISTINCT order_id) FROM retl.{table}) TO '{}' (HEADER false)",
                counted.display()
            )],
        );
        std::fs::read_to_string(counted)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    only_new_rows_cross_and_a_kill_loses_nothing(
        &world,
        &Warehouse {
            insert: &insert,
            keys_held: &keys_held,
        },
    );
}

#[test]
fn a_driver_that_fails_to_load_says_the_loaders_own_error() {
    let world = World::new();
    // A manifest naming a library that is not one: the driver manager's
    // "not found" alone would hide why.
    let drivers = world.dir.path().join("drivers");
    std::fs::create_dir_all(&drivers).unwrap();
    let broken = drivers.join("broken.so");
    std::fs::write(&broken, "not a library").unwrap();
    std::fs::write(
        drivers.join("broken.toml"),
        format!(
            "name = \"broken\"\n[Driver]\nshared = \"{}\"\n",
            broken.display()
        ),
    )
    .unwrap();
    world.insert(1, 1, None, None);
    world.write(
        "activations/orders.yaml",
        "source:\n  adbc:\n    driver: broken\n  table: orders\ndestination: trustpilot\nmapping:\n  reference_number: order_id\n  consumer_name: full_name\n  consumer_email: email\n",
    );
    let out = world
        .command(&["check", "orders"], "emulator-secret")
        .env("ADBC_DRIVER_PATH", &drivers)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("broken.so"), "{said}");
    assert!(
        said.contains("file too short") || said.contains("invalid ELF header"),
        "the dlopen error is said: {said}"
    );
}

#[test]
fn snowflake_diffs_in_place_against_fakesnow() {
    let (Some(binary), Some(driver)) = (
        server_url("RETL_TEST_FAKESNOW"),
        server_url("RETL_TEST_ADBC_SNOWFLAKE_DRIVER"),
    ) else {
        return;
    };
    let (child, port) = super::adbc::fakesnow(&binary);
    let _stop = Stop(child);
    super::adbc::snowflake_sql(
        &binary,
        port,
        "CREATE DATABASE SHOP;CREATE SCHEMA SHOP.SALES;CREATE TABLE SHOP.SALES.ORDERS (ORDER_ID NUMBER(38,0), FULL_NAME VARCHAR, EMAIL VARCHAR, LOCALE VARCHAR)",
    );
    let world = World::new();
    world.write(
        "activations/orders.yaml",
        &format!(
            "source:\n  connection: \"snowflake://fake:snow@fakesnow/SHOP/SALES?host=127.0.0.1&port={port}&protocol=http&driver={driver}\"\n  table: ORDERS\n  primary_key: [ORDER_ID]\n  diff: warehouse\ndestination: trustpilot\nfirst_run: send_all\nmapping:\n  reference_number: ORDER_ID\n  consumer_name: FULL_NAME\n  consumer_email: EMAIL\n  locale: LOCALE\n"
        ),
    );
    let insert = |from: u32, to: u32| {
        let rows: Vec<String> = (from..=to)
            .map(|i| format!("({i}, 'Customer {i}', 'c{i}@shop.example', 'en-US')"))
            .collect();
        super::adbc::snowflake_sql(
            &binary,
            port,
            &format!("INSERT INTO SHOP.SALES.ORDERS VALUES {}", rows.join(", ")),
        );
    };
    let keys_held = || {
        let table = retl_source::table_name("orders", &world.state_identity());
        super::adbc::snowflake_count(
            &binary,
            port,
            &format!("SELECT COUNT(DISTINCT ORDER_ID) FROM SHOP.\"retl\".\"{table}\""),
        )
    };
    only_new_rows_cross_and_a_kill_loses_nothing(
        &world,
        &Warehouse {
            insert: &insert,
            keys_held: &keys_held,
        },
    );
}

/// Stops the stand-in however the test ends.
struct Stop(std::process::Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
