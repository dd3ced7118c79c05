//! Sources read through ADBC drivers, the real ones: the libraries of the
//! `adbc-driver-sqlite` and `adbc-driver-postgresql` wheels from `PyPI`
//! (`scripts/test.sh` installs them under `target/` and names them in
//! `RETL_TEST_ADBC_SQLITE_DRIVER` and `RETL_TEST_ADBC_POSTGRESQL_DRIVER`).
//! The same tables read through ADBC and through retl's own readers give
//! the same keys (so moving an activation between them re-invites no one)
//! and the same values.

use std::str::FromStr as _;

use arrow_array::RecordBatch;
use retl_diff::hash_keys;
use retl_source::{Adbc, Error, Model, Source, SourceSpec};
use sqlx::{ConnectOptions as _, Executor as _};

use super::{read_all, unique, url};

fn spec(url: &str, adbc: Option<Adbc>, model: Model, columns: &[&str]) -> SourceSpec {
    SourceSpec {
        adbc,
        ..SourceSpec::new(
            url,
            model,
            columns.iter().map(|c| (*c).to_owned()).collect(),
        )
    }
}

fn keys(batches: &[RecordBatch], columns: &[usize]) -> Vec<[u8; 16]> {
    batches
        .iter()
        .flat_map(|b| hash_keys(b, columns).unwrap())
        .collect()
}

/// Each column of every row as text, to compare two reads value by value.
fn cells(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .map(|c| shown(c.as_ref(), row))
                    .collect(),
            );
        }
    }
    rows
}

/// A cell's text through Arrow's own formatter (a test-only view).
fn shown(array: &dyn arrow_array::Array, row: usize) -> String {
    if array.is_null(row) {
        return "NULL".to_owned();
    }
    // `Type\n[\n  value,\n]`: the third line.
    format!("{:?}", array.slice(row, 1))
        .lines()
        .nth(2)
        .unwrap_or_default()
        .trim()
        .trim_end_matches(',')
        .to_owned()
}

fn driver(var: &str) -> Option<String> {
    url(var)
}

#[tokio::test]
async fn sqlite_through_its_adbc_driver_reads_what_the_native_reader_reads() {
    let Some(library) = driver("RETL_TEST_ADBC_SQLITE_DRIVER") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let native = format!("sqlite://{}", path.display());
    let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(&native)
        .unwrap()
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    conn.execute(
        "CREATE TABLE orders (order_id INTEGER, email TEXT, amount REAL);
         INSERT INTO orders VALUES (1, 'a@x.example', 1.5), (2, 'b''quote@x.example', NULL),
                                   (9007199254740993, 'ünï@x.example', -2.25);",
    )
    .await
    .unwrap();
    let adbc = Adbc::new(
        library,
        vec![("uri".into(), format!("file:{}", path.display()))],
    );
    let columns = ["order_id", "email", "amount"];
    let model = Model::Table("orders".into());
    let through_adbc = read_all(
        &mut Source::open(&spec(
            &adbc.name(),
            Some(adbc.clone()),
            model.clone(),
            &columns,
        ))
        .await
        .unwrap(),
    )
    .await
    .unwrap();
    let through_sqlx = read_all(
        &mut Source::open(&spec(&native, None, model.clone(), &columns))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(keys(&through_adbc, &[0]), keys(&through_sqlx, &[0]));
    let shown = cells(&through_adbc);
    assert_eq!(shown[1][1], "\"b'quote@x.example\"", "{shown:?}");
    assert_eq!(shown[2][0], "9007199254740993", "{shown:?}");
    assert_eq!(shown, cells(&through_sqlx));
    // Inspected without reading a row: the types, and a count.
    let inspected = Source::inspect(
        &spec(&adbc.name(), Some(adbc.clone()), model, &columns),
        true,
    )
    .await
    .unwrap();
    assert_eq!(inspected.rows, Some(3));
    assert_eq!(inspected.columns[0].0, "order_id");
    // A query model, and a column that is not there.
    let query = Model::Query("SELECT order_id, email FROM orders WHERE order_id < 3".into());
    let rows: usize = read_all(
        &mut Source::open(&spec(
            &adbc.name(),
            Some(adbc.clone()),
            query,
            &["order_id"],
        ))
        .await
        .unwrap(),
    )
    .await
    .unwrap()
    .iter()
    .map(RecordBatch::num_rows)
    .sum();
    assert_eq!(rows, 2);
    let missing = Source::open(&spec(
        &adbc.name(),
        Some(adbc.clone()),
        Model::Table("orders".into()),
        &["order_id", "emial"],
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(&missing, Error::ColumnMissing { column, .. } if column == "emial"),
        "{missing}"
    );
    let now = Source::warehouse_now(&spec(
        &adbc.name(),
        Some(adbc),
        Model::Table("orders".into()),
        &[],
    ))
    .await
    .unwrap();
    assert!(
        (chrono::Utc::now() - now).num_seconds().abs() < 300,
        "{now}"
    );
}

#[tokio::test]
async fn postgresql_through_its_adbc_driver_keeps_keys_and_exact_values() {
    let Some(library) = driver("RETL_TEST_ADBC_POSTGRESQL_DRIVER") else {
        return;
    };
    let Some(pg) = url("RETL_TEST_POSTGRES_URL") else {
        return;
    };
    let schema = unique("retl_adbc");
    let mut conn = sqlx::postgres::PgConnectOptions::from_str(&pg)
        .unwrap()
        .connect()
        .await
        .unwrap();
    conn.execute(
        format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.orders (order_id bigint, big numeric(20,0), price numeric(10,2),
                 email text, ordered_at timestamp, paid_at timestamptz, shipped boolean, day date);
             INSERT INTO {schema}.orders VALUES
               (1, 12345678901234567890, 19.99, 'a@x.example', '2026-11-30 10:00:00.123456',
                '2026-11-30 10:00:00+02', true, '2026-11-30'),
               (-7, -1, 0.10, NULL, NULL, NULL, NULL, NULL);"
        )
        .as_str(),
    )
    .await
    .unwrap();
    let adbc = Adbc::new(
        library,
        vec![("uri".into(), pg.replace("postgres://", "postgresql://"))],
    );
    let columns = [
        "order_id",
        "big",
        "price",
        "email",
        "ordered_at",
        "paid_at",
        "shipped",
        "day",
    ];
    let model = Model::Table(format!("{schema}.orders"));
    let through_adbc = read_all(
        &mut Source::open(&spec(
            &adbc.name(),
            Some(adbc.clone()),
            model.clone(),
            &columns,
        ))
        .await
        .unwrap(),
    )
    .await
    .unwrap();
    let through_copy = read_all(
        &mut Source::open(&spec(&pg, None, model, &columns))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    // A bigint key and a numeric(20,0) key hash alike either way.
    assert_eq!(keys(&through_adbc, &[0]), keys(&through_copy, &[0]));
    assert_eq!(keys(&through_adbc, &[1]), keys(&through_copy, &[1]));
    // A link written back through the driver: `$1`/`$2`, bound, not spliced.
    let mut writer = retl_source::Writer::for_adbc(&adbc).await.unwrap();
    let link = "https://example.test/it's?a=1&b='2'";
    let updated = writer
        .set_text(
            &format!("{schema}.orders"),
            "order_id",
            "email",
            &retl_source::KeyValue::Int(-7),
            None,
            link,
        )
        .await
        .unwrap();
    assert_eq!(updated, 1);
    let stored: String = sqlx::query_scalar(&format!(
        "SELECT email FROM {schema}.orders WHERE order_id = -7"
    ))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(stored, link);
    let shown = cells(&through_adbc);
    assert_eq!(shown[0][1], "\"12345678901234567890\"", "{shown:?}");
    assert_eq!(shown[0][2], "\"19.99\"", "{shown:?}");
    assert_eq!(shown, cells(&through_copy));
    conn.execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_driver_that_is_not_there_is_named_with_how_to_install_it() {
    let adbc = Adbc::new(
        "nosuchwarehouse",
        vec![("password".into(), "hunter2".into())],
    );
    let error = Source::open(&spec(
        &adbc.name(),
        Some(adbc),
        Model::Table("t".into()),
        &["id"],
    ))
    .await
    .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("`nosuchwarehouse`"), "{text}");
    assert!(text.contains("dbc install nosuchwarehouse"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

/// Starts `fakesnow -s -p PORT` and returns it once it serves, with its port.
pub(super) fn start_fakesnow(fakesnow: &str) -> (std::process::Child, u16) {
    use std::io::BufRead as _;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(fakesnow)
        .args(["-s", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {fakesnow}: {e}"));
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
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

/// Stops the stand-in however the test ends.
pub(super) struct Stop(pub(super) std::process::Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs statements through the driver itself (the test's own setup);
/// `entrypoint` where the driver's init symbol is not the default.
pub(super) fn run_sql(
    library: &str,
    entrypoint: Option<&str>,
    options: &[(String, String)],
    statements: &[&str],
) {
    use adbc_core::options::{AdbcVersion, OptionDatabase, OptionValue};
    use adbc_core::{Connection as _, Database as _, Driver as _, Statement as _};
    let mut driver = adbc_driver_manager::ManagedDriver::load_dynamic_from_filename(
        library,
        entrypoint.map(str::as_bytes),
        AdbcVersion::default(),
    )
    .unwrap();
    let database = driver
        .new_database_with_opts(options.iter().map(|(k, v)| {
            (
                OptionDatabase::from(k.as_str()),
                OptionValue::from(v.as_str()),
            )
        }))
        .unwrap();
    let mut connection = database.new_connection().unwrap();
    for sql in statements {
        let mut statement = connection.new_statement().unwrap();
        statement.set_sql_query(*sql).unwrap();
        drop(
            statement
                .execute()
                .unwrap_or_else(|e| panic!("{sql}: {}", e.message)),
        );
    }
}

#[tokio::test]
async fn snowflake_through_its_adbc_driver_against_fakesnow() {
    let Some(fakesnow) = url("RETL_TEST_FAKESNOW") else {
        return;
    };
    let Some(library) = driver("RETL_TEST_ADBC_SNOWFLAKE_DRIVER") else {
        return;
    };
    let (child, port) = start_fakesnow(&fakesnow);
    let _stop = Stop(child);
    let options = fakesnow_options(port);
    run_sql(
        &library,
        None,
        &options,
        &[
            "CREATE DATABASE IF NOT EXISTS SHOP",
            "CREATE SCHEMA IF NOT EXISTS SHOP.SALES",
            "CREATE OR REPLACE TABLE SHOP.SALES.ORDERS (ORDER_ID NUMBER(38,0), PRICE NUMBER(10,2), ORDERED_AT TIMESTAMP_NTZ, EMAIL VARCHAR, PAID_AT TIMESTAMP_LTZ, SHIPPED_AT TIMESTAMP_TZ, EXTRA VARIANT)",
            "INSERT INTO SHOP.SALES.ORDERS SELECT 1, 19.99, '2026-11-30 10:00:00.123456', 'a@x.example', '2026-11-30 10:00:00 +02:00'::TIMESTAMP_LTZ, '2026-11-30 10:00:00 +02:00'::TIMESTAMP_TZ, PARSE_JSON('{\"gift\": true}')",
            "INSERT INTO SHOP.SALES.ORDERS SELECT 1234567890123456789, -0.10, '2026-11-30 11:00:00', 'b@x.example', '2026-11-30 11:00:00 +00:00'::TIMESTAMP_LTZ, '2026-11-30 11:00:00 +00:00'::TIMESTAMP_TZ, PARSE_JSON('[1, 2]')",
        ],
    );
    let adbc = Adbc::new(library, options);
    let columns = [
        "ORDER_ID",
        "PRICE",
        "ORDERED_AT",
        "EMAIL",
        "PAID_AT",
        "SHIPPED_AT",
        "EXTRA",
    ];
    let model = Model::Table("SHOP.SALES.ORDERS".into());
    let batches = read_all(
        &mut Source::open(&spec(
            &adbc.name(),
            Some(adbc.clone()),
            model.clone(),
            &columns,
        ))
        .await
        .unwrap(),
    )
    .await
    .unwrap();
    // NUMBER(38,0) keys hash as the same integers read from PostgreSQL.
    let same_integers = RecordBatch::try_from_iter([(
        "ORDER_ID",
        std::sync::Arc::new(arrow_array::Int64Array::from(vec![
            1,
            1_234_567_890_123_456_789,
        ])) as arrow_array::ArrayRef,
    )])
    .unwrap();
    assert_eq!(keys(&batches, &[0]), keys(&[same_integers], &[0]));
    let shown = cells(&batches);
    assert_eq!(shown[0][1], "\"19.99\"", "{shown:?}");
    assert_eq!(shown[1][1], "\"-0.10\"", "{shown:?}");
    assert!(
        shown[0][2].contains("2026-11-30T10:00:00.123456"),
        "{shown:?}"
    );
    // TIMESTAMP_LTZ and TIMESTAMP_TZ: the instant, in UTC; VARIANT: its JSON text.
    assert!(shown[0][4].contains("2026-11-30T08:00:00"), "{shown:?}");
    assert!(shown[0][5].contains("2026-11-30T08:00:00"), "{shown:?}");
    assert!(shown[0][6].contains("gift"), "{shown:?}");
    // Cursor mode: the condition in Snowflake's SQL.
    let mut since = spec(&adbc.name(), Some(adbc.clone()), model, &columns);
    since.since = Some(retl_source::Since {
        column: "ORDER_ID".into(),
        from: retl_source::CursorValue::Int(2),
    });
    let rows: usize = read_all(&mut Source::open(&since).await.unwrap())
        .await
        .unwrap()
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(rows, 1);
    link_written_back_through(&adbc).await;
    let now = Source::warehouse_now(&since).await.unwrap();
    assert!(
        (chrono::Utc::now() - now).num_seconds().abs() < 300,
        "{now}"
    );
}

/// A link written back through the Snowflake driver, `?` bound, and read again.
async fn link_written_back_through(adbc: &Adbc) {
    let mut writer = retl_source::Writer::for_adbc(adbc).await.unwrap();
    writer
        .set_text(
            "SHOP.SALES.ORDERS",
            "ORDER_ID",
            "EMAIL",
            &retl_source::KeyValue::Int(1),
            None,
            "https://example.test/it's",
        )
        .await
        .unwrap();
    let emails = read_all(
        &mut Source::open(&spec(
            &adbc.name(),
            Some(adbc.clone()),
            Model::Query("SELECT EMAIL FROM SHOP.SALES.ORDERS WHERE ORDER_ID = 1".into()),
            &["EMAIL"],
        ))
        .await
        .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(cells(&emails)[0][0], "\"https://example.test/it's\"");
}

/// The Snowflake driver's options for fakesnow on `port`.
pub(super) fn fakesnow_options(port: u16) -> Vec<(String, String)> {
    [
        ("username", "fake"),
        ("password", "snow"),
        ("adbc.snowflake.sql.account", "fakesnow"),
        ("adbc.snowflake.sql.uri.host", "127.0.0.1"),
        ("adbc.snowflake.sql.uri.port", &port.to_string()),
        ("adbc.snowflake.sql.uri.protocol", "http"),
        ("adbc.snowflake.sql.db", "SHOP"),
        ("adbc.snowflake.sql.schema", "SALES"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// A Spark Connect server (`pyspark`'s own, run by `spark-submit` in the
/// foreground so that stopping the child stops it), its port, and the
/// directory holding its warehouse.
pub(super) fn start_spark(spark_home: &str) -> (Stop, u16, tempfile::TempDir) {
    use std::io::BufRead as _;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(format!("{spark_home}/bin/spark-submit"))
        .args([
            "--class",
            "org.apache.spark.sql.connect.service.SparkConnectServer",
            "--conf",
            &format!("spark.connect.grpc.binding.port={port}"),
            "--conf",
            &format!(
                "spark.sql.warehouse.dir={}",
                dir.path().join("warehouse").display()
            ),
            "--conf",
            "spark.ui.enabled=false",
            "--conf",
            "spark.driver.bindAddress=127.0.0.1",
            "--conf",
            "spark.driver.host=127.0.0.1",
            "spark-internal",
        ])
        .env("SPARK_HOME", spark_home)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start Spark Connect from {spark_home}: {e}"));
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
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

/// `source.adbc.statement_options` reach every statement: `DuckDB` takes
/// none it does not know, and says so, named as retl's key.
#[tokio::test]
async fn statement_options_are_set_on_each_statement_and_a_refused_one_is_named() {
    let Some(library) = driver("RETL_TEST_DUCKDB_LIBRARY") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let options = vec![(
        "path".to_owned(),
        dir.path().join("w.duckdb").display().to_string(),
    )];
    run_sql(
        &library,
        Some("duckdb_adbc_init"),
        &options,
        &["CREATE TABLE orders AS SELECT 1 AS id"],
    );
    let adbc = Adbc {
        entrypoint: Some("duckdb_adbc_init".into()),
        statement_options: vec![("adbc.retl.no_such_option".into(), "x".into())],
        ..Adbc::new(library, options)
    };
    let error = Source::open(&spec(
        &adbc.name(),
        Some(adbc),
        Model::Table("orders".into()),
        &["id"],
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.contains(
            "statement option `adbc.retl.no_such_option` (source.adbc.statement_options)"
        ),
        "{error}"
    );
}
