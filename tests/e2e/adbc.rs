//! An activation read through an ADBC driver (`source.adbc`), the SQLite
//! driver of the `adbc-driver-sqlite` wheel: it runs, checks and previews
//! like any other, and asks for what ADBC does not offer yet are refused
//! with their position.

use super::{Kind, World, count, server_url};

fn adbc_activation(world: &World, driver: &str, extra: &str) {
    let uri = format!("file:{}", world.warehouse().display());
    world.write(
        "activations/orders.yaml",
        &format!(
            "source:\n  adbc:\n    driver: {driver}\n    options:\n      uri: \"{uri}\"\n  table: orders\n  primary_key: [order_id]\n{extra}destination: trustpilot\nfirst_run: send_all\nmapping:\n  reference_number: order_id\n  consumer_name: full_name\n  consumer_email: email\n  locale: locale\n"
        ),
    );
}

#[test]
fn an_activation_reads_through_an_adbc_driver() {
    let Some(driver) = server_url("RETL_TEST_ADBC_SQLITE_DRIVER") else {
        return;
    };
    let world = World::new();
    adbc_activation(&world, &driver, "");
    world.insert(1, 20, Some(7), None);
    let out = world.retl(&["check", "orders", "--json"], "emulator-secret");
    let check: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{check}");
    let activation = &check["activations"][0];
    assert_eq!(activation["first_run"]["rows"], 20, "{check}");
    // TEXT columns read as text, as a run reads them (not Int64).
    let columns = activation["source"]["columns"].as_array().unwrap();
    let email = columns.iter().find(|c| c["name"] == "email").unwrap();
    assert_eq!(email["reads_as"], "Utf8", "{check}");
    assert!(
        activation["source"]["connection"]
            .as_str()
            .unwrap()
            .starts_with("adbc:"),
        "{check}"
    );
    let preview = world.retl(&["preview", "orders", "--json"], "emulator-secret");
    assert_eq!(preview.status.code(), Some(0), "{preview:?}");
    let (code, first) = world.run();
    assert_eq!(code, 0, "{first}");
    assert_eq!((count(&first, "sent"), count(&first, "rejected")), (19, 1));
    world.insert(21, 22, None, None);
    let (_, second) = world.run();
    assert_eq!(
        (count(&second, "sent"), count(&second, "already_sent")),
        (2, 19),
        "{second}"
    );
    assert!(world.accepted_references().values().all(|&n| n == 1));
}

#[test]
fn links_are_written_back_through_an_adbc_driver() {
    let Some(driver) = server_url("RETL_TEST_ADBC_SQLITE_DRIVER") else {
        return;
    };
    let world = World::new();
    world.sql("ALTER TABLE orders ADD COLUMN review_link TEXT");
    world.insert(1, 3, None, None);
    let uri = format!("file:{}", world.warehouse().display());
    world.write(
        "activations/orders.yaml",
        &format!(
            "source:\n  adbc:\n    driver: {driver}\n    options:\n      uri: \"{uri}\"\n  table: orders\n  primary_key: [order_id]\ndestination: trustpilot\nfirst_run: send_all\ntarget:\n  kind: invitation_link\nmapping:\n  reference_number: order_id\n  consumer_name: full_name\n  consumer_email: email\n  locale: locale\nwriteback:\n  table: orders\n  key_column: order_id\n  url_column: review_link\n"
        ),
    );
    let (code, summary) = world.run();
    assert_eq!((code, count(&summary, "sent")), (0, 3), "{summary}");
    assert_eq!(count(&summary, "writeback_failed"), 0, "{summary}");
    let url = format!("sqlite://{}", world.warehouse().display());
    let links: Vec<Option<String>> = world.runtime.block_on(async {
        use sqlx::ConnectOptions as _;
        use std::str::FromStr as _;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        sqlx::query_scalar("SELECT review_link FROM orders ORDER BY order_id")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    });
    assert_eq!(links.len(), 3);
    for link in links {
        let link = link.expect("every row has its link");
        assert!(
            link.starts_with("https://www.trustpilot.com/evaluate-link/"),
            "{link}"
        );
    }
}

#[test]
fn what_adbc_sources_do_not_offer_is_refused_where_it_is_written() {
    let world = World::new();
    adbc_activation(&world, "sqlite", "  read: cursor\n");
    let out = world.retl(&["run", "orders"], "emulator-secret");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("source.read is not offered with source.adbc"),
        "{stderr}"
    );
}

#[test]
fn a_missing_adbc_driver_is_named_with_how_to_install_it() {
    let world = World::new();
    adbc_activation(&world, "nosuchwarehouse", "");
    world.insert(1, 2, None, None);
    let out = world.retl(&["run", "orders"], "emulator-secret");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("cannot load the ADBC driver `nosuchwarehouse`"),
        "{stderr}"
    );
    assert!(stderr.contains("dbc install nosuchwarehouse"), "{stderr}");
}

#[test]
fn cursor_mode_reads_through_an_adbc_driver_past_the_mark() {
    let Some(driver) = server_url("RETL_TEST_ADBC_SQLITE_DRIVER") else {
        return;
    };
    let world = World::new();
    world.sql("ALTER TABLE orders ADD COLUMN created_at TEXT");
    adbc_activation(
        &world,
        &driver,
        "  incremental:\n    cursor: created_at\n    lookback: 1h\n",
    );
    let order = |id: u32, at: &str| {
        world.sql(&format!(
            "INSERT INTO orders (order_id, full_name, email, locale, created_at) VALUES ({id}, 'C {id}', 'c{id}@shop.example', 'en-US', '{at}')"
        ));
    };
    for id in 1..=5 {
        order(id, &format!("2026-11-01 1{id}:00:00"));
    }
    let out = world.retl(&["check", "orders", "--json"], "emulator-secret");
    let check: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        check["activations"][0]["warnings"]
            .to_string()
            .contains("cannot be told through an ADBC driver"),
        "{check}"
    );
    let (code, first) = world.run();
    assert_eq!(
        (code, count(&first, "read"), count(&first, "sent")),
        (0, 5, 5),
        "{first}"
    );
    order(6, "2026-11-01 16:00:00");
    order(7, "2026-11-01 17:00:00");
    // Rows 4..7: at or past 15:00 less the 1h lookback.
    let (code, second) = world.run();
    assert_eq!(
        (code, count(&second, "read"), count(&second, "sent")),
        (0, 4, 2),
        "{second}"
    );
    assert!(world.accepted_references().values().all(|&n| n == 1));
}

/// Starts `fakesnow -s -p PORT` (Snowflake's stand-in) and returns it with its port.
pub(crate) fn fakesnow(binary: &str) -> (std::process::Child, u16) {
    use std::io::BufRead as _;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(binary)
        .args(["-s", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("Uvicorn running") => break,
            Some(Ok(_)) => {}
            _ => panic!("fakesnow ended before it served"),
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    (child, port)
}

/// Runs SQL on fakesnow through Snowflake's own Python connector (beside it).
pub(crate) fn snowflake_sql(binary: &str, port: u16, sql: &str) {
    let python = std::path::Path::new(binary).with_file_name("python");
    let script = format!(
        "import snowflake.connector as s\nc = s.connect(user='fake', password='snow', account='fakesnow', host='127.0.0.1', port={port}, protocol='http', login_timeout=30, network_timeout=30)\nfor q in {sql:?}.split(';'):\n    c.cursor().execute(q)\n"
    );
    let out = std::process::Command::new(python)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The one number a query answers on fakesnow (Snowflake's Python connector).
pub(crate) fn snowflake_count(binary: &str, port: u16, sql: &str) -> u64 {
    let python = std::path::Path::new(binary).with_file_name("python");
    let script = format!(
        "import snowflake.connector as s\nc = s.connect(user='fake', password='snow', account='fakesnow', host='127.0.0.1', port={port}, protocol='http', login_timeout=30, network_timeout=30)\nprint(c.cursor().execute({sql:?}).fetchone()[0])\n"
    );
    let out = std::process::Command::new(python)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn a_snowflake_url_runs_through_the_adbc_driver_against_fakesnow() {
    let (Some(binary), Some(driver)) = (
        server_url("RETL_TEST_FAKESNOW"),
        server_url("RETL_TEST_ADBC_SNOWFLAKE_DRIVER"),
    ) else {
        return;
    };
    let (mut child, port) = fakesnow(&binary);
    snowflake_sql(
        &binary,
        port,
        "CREATE DATABASE SHOP;CREATE SCHEMA SHOP.SALES;CREATE TABLE SHOP.SALES.ORDERS (ORDER_ID NUMBER(38,0), FULL_NAME VARCHAR, EMAIL VARCHAR, LOCALE VARCHAR);INSERT INTO SHOP.SALES.ORDERS VALUES (1, 'Ann', 'ann@shop.example', 'en-US'), (2, 'Bo', 'bo@shop.example', 'da-DK'), (12345678901234567, 'Cy', 'cy@shop.example', 'en-US')",
    );
    let world = World::new();
    world.write(
        "activations/orders.yaml",
        &format!(
            "source:\n  connection: \"snowflake://fake:${{SNOW_PASSWORD}}@fakesnow/SHOP/SALES?host=127.0.0.1&port={port}&protocol=http&driver={driver}\"\n  table: ORDERS\n  primary_key: [ORDER_ID]\ndestination: trustpilot\nfirst_run: send_all\nmapping:\n  reference_number: ORDER_ID\n  consumer_name: FULL_NAME\n  consumer_email: EMAIL\n  locale: LOCALE\n"
        ),
    );
    let run = |args: &[&str]| {
        world
            .command(args, "emulator-secret")
            .env("SNOW_PASSWORD", "snow")
            .output()
            .unwrap()
    };
    let check = run(&["check", "orders", "--json"]);
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{report}");
    assert!(report.contains("snowflake://fake:***@fakesnow"), "{report}");
    assert!(
        !report.contains(":snow@"),
        "the password is masked: {report}"
    );
    let first = run(&["run", "orders", "--json"]);
    let summary: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(
        (first.status.code(), count(&summary, "sent")),
        (Some(0), 3),
        "{summary}"
    );
    snowflake_sql(
        &binary,
        port,
        "INSERT INTO SHOP.SALES.ORDERS VALUES (4, 'Di', 'di@shop.example', 'en-US')",
    );
    let second = run(&["run", "orders", "--json"]);
    let summary: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(
        (count(&summary, "sent"), count(&summary, "already_sent")),
        (1, 3),
        "{summary}"
    );
    let references = world.accepted_references();
    assert!(
        references.contains_key("12345678901234567"),
        "{references:?}"
    );
    assert!(references.values().all(|&n| n == 1));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_relative_driver_path_is_the_projects_wherever_retl_starts() {
    let Some(driver) = server_url("RETL_TEST_ADBC_SQLITE_DRIVER") else {
        return;
    };
    let world = World::new();
    world.insert(1, 2, None, None);
    // The project (the directory holding configs/) has the driver; the
    // directory retl is started from has another file of that name.
    std::fs::copy(&driver, world.dir.path().join("driver.so")).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("driver.so"), "not a library").unwrap();
    adbc_activation(&world, "./driver.so", "");
    let out = world
        .command(&["run", "orders", "--json"], "emulator-secret")
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(count(&summary, "sent"), 2);

    // A library that does not load: the loader's own words, no install hint.
    std::fs::write(world.dir.path().join("driver.so"), "not a library").unwrap();
    let out = world.retl(&["run", "orders"], "emulator-secret");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let shown = world.dir.path().join("driver.so").display().to_string();
    assert!(
        stderr.contains(&format!("cannot load the ADBC driver library `{shown}`")),
        "{stderr}"
    );
    assert!(
        stderr.contains("file too short") || stderr.contains("invalid ELF"),
        "{stderr}"
    );
    assert!(!stderr.contains("pip install"), "{stderr}");
    assert!(!stderr.contains("dbc install"), "{stderr}");
}

#[test]
fn a_server_that_takes_the_connection_and_never_answers_fails_by_connect_timeout() {
    let Some(driver) = server_url("RETL_TEST_ADBC_POSTGRESQL_DRIVER") else {
        return;
    };
    // A server that accepts connections and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.extend(stream.ok());
        }
    });
    let world = World::new();
    world.write(
        "activations/orders.yaml",
        &format!(
            "source:\n  adbc:\n    driver: {driver}\n    options:\n      uri: \"postgresql://retl@127.0.0.1:{port}/test\"\n  table: orders\n  connect_timeout_seconds: 2\ndestination: trustpilot\nfirst_run: send_all\nmapping:\n  reference_number: order_id\n  consumer_name: full_name\n  consumer_email: email\n"
        ),
    );
    let out = world.retl(&["check"], "emulator-secret");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("cannot connect to the source within 2s"),
        "{said}"
    );
    let out = world.retl(&["run", "orders"], "emulator-secret");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("cannot connect to the source within 2s"),
        "{said}"
    );
}

#[test]
fn a_query_that_goes_silent_through_an_adbc_driver_fails_by_read_timeout() {
    let Some(world) = World::with(Kind::Postgres) else {
        return;
    };
    let Some(driver) = server_url("RETL_TEST_ADBC_POSTGRESQL_DRIVER") else {
        return;
    };
    let (url, schema) = world.server.clone().unwrap();
    world.insert(1, 3, None, None);
    // The server answers the connection and then works for a minute.
    world.write(
        "activations/orders.yaml",
        &format!(
            "source:\n  adbc:\n    driver: {driver}\n    options:\n      uri: \"{}\"\n  query: SELECT order_id, full_name, email FROM {schema}.orders, pg_sleep(60)\n  read_timeout_seconds: 2\ndestination: trustpilot\nfirst_run: send_all\nmapping:\n  reference_number: order_id\n  consumer_name: full_name\n  consumer_email: email\n",
            url.replace("postgres://", "postgresql://")
        ),
    );
    let out = world.retl(&["run", "orders"], "emulator-secret");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("sent no data for 2s"), "{said}");
    assert!(world.accepted_references().is_empty());
    // The server's side of the query is ended, not waited for.
    world.server_sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%{schema}.orders, pg_sleep%' AND pid <> pg_backend_pid()"
    ));
}
