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

/// The integer the query `sql` answers, through an ADBC driver.
fn adbc_number(
    library: &str,
    entrypoint: Option<&str>,
    options: &[(&str, String)],
    sql: &str,
) -> u64 {
    use adbc_core::options::{AdbcVersion, OptionDatabase, OptionValue};
    use adbc_core::{Connection as _, Database as _, Driver as _, Statement as _};
    use arrow_array::Array as _;
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
    let mut statement = connection.new_statement().unwrap();
    statement.set_sql_query(sql).unwrap();
    let batch = statement.execute().unwrap().next().unwrap().unwrap();
    let column = batch.column(0);
    assert!(!column.is_null(0), "{sql}: NULL");
    match column.data_type() {
        arrow_schema::DataType::Int64 => {
            use arrow_array::cast::AsArray as _;
            let n = column
                .as_primitive::<arrow_array::types::Int64Type>()
                .value(0);
            u64::try_from(n).unwrap()
        }
        other => panic!("{sql}: a {other}, not a count"),
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

/// [`only_new_rows_cross_and_a_kill_loses_nothing`] on `sales.orders`,
/// reached through the driver `library` (with `entrypoint`, `options`), its
/// key table in the schema `retl`.
fn through_the_driver(
    world: &World,
    library: &str,
    entrypoint: Option<&str>,
    options: &[(&str, String)],
) {
    let insert = |from: u32, to: u32| {
        let rows: Vec<String> = (from..=to)
            .map(|i| format!("({i}, 'Customer {i}', 'c{i}@shop.example', 'en-US')"))
            .collect();
        let sql = format!("INSERT INTO sales.orders VALUES {}", rows.join(", "));
        adbc_sql(library, entrypoint, options, &[sql]);
    };
    let keys_held = || {
        let table = retl_source::table_name("orders", &world.state_identity());
        let sql = format!("SELECT COUNT(DISTINCT order_id) FROM retl.{table}");
        adbc_number(library, entrypoint, options, &sql)
    };
    only_new_rows_cross_and_a_kill_loses_nothing(
        world,
        &Warehouse {
            insert: &insert,
            keys_held: &keys_held,
        },
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
    through_the_driver(&world, &library, entry, &options);
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

/// A Spark Connect server (`pyspark`'s own, run by `spark-submit` in the
/// foreground so that stopping the child stops it), its port, and the
/// directory holding its warehouse.
fn spark(spark_home: &str) -> (Stop, u16, tempfile::TempDir) {
    use std::io::BufRead as _;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let warehouse = format!(
        "spark.sql.warehouse.dir={}",
        dir.path().join("warehouse").display()
    );
    let mut child = std::process::Command::new(format!("{spark_home}/bin/spark-submit"))
        .args([
            "--class",
            "org.apache.spark.sql.connect.service.SparkConnectServer",
        ])
        .args(["--conf", &format!("spark.connect.grpc.binding.port={port}")])
        .args(["--conf", &warehouse, "--conf", "spark.ui.enabled=false"])
        .args(["--conf", "spark.driver.bindAddress=127.0.0.1"])
        .args(["--conf", "spark.driver.host=127.0.0.1", "spark-internal"])
        .env("SPARK_HOME", spark_home)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start Spark Connect from {spark_home}: {e}"));
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("Spark Connect server started") => break,
            Some(Ok(_)) => {}
            _ => panic!("the Spark Connect server ended before it served"),
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    (Stop(child), port, dir)
}

#[test]
fn spark_diffs_in_place_through_spark_connect() {
    let (Some(spark_home), Some(library)) = (
        server_url("RETL_TEST_SPARK_HOME"),
        server_url("RETL_TEST_ADBC_SPARK_DRIVER"),
    ) else {
        return;
    };
    let (_stop, port, _dir) = spark(&spark_home);
    let options = [("uri", format!("sc://127.0.0.1:{port}"))];
    adbc_sql(
        &library,
        None,
        &options,
        &[
            "CREATE SCHEMA sales".to_owned(),
            "CREATE TABLE sales.orders (order_id BIGINT, full_name STRING, email STRING, locale STRING)".to_owned(),
        ],
    );
    let world = World::new();
    world.write(
        "activations/orders.yaml",
        &format!(
            "source:\n  adbc:\n    driver: {library}\n    options:\n      uri: \"sc://127.0.0.1:{port}\"\n  table: sales.orders\n  primary_key: [order_id]\n  diff: warehouse\ndestination: trustpilot\nfirst_run: send_all\nmapping:\n  reference_number: order_id\n  consumer_name: full_name\n  consumer_email: email\n  locale: locale\n"
        ),
    );
    through_the_driver(&world, &library, None, &options);
}
