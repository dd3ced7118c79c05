//! The sources against the real PostgreSQL and MariaDB of the development and
//! CI machines. Each test works in its own schema (PostgreSQL) or database
//! (MySQL). URLs come from `RETL_TEST_POSTGRES_URL` and `RETL_TEST_MYSQL_URL`
//! (`scripts/test.sh` sets both); unset, a test is skipped with a message,
//! except under `CI=true`, where it fails.

// The float values compared are ones that binary floats represent exactly.
#![allow(clippy::float_cmp)]

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use arrow_array::{
    Array, BinaryArray, BooleanArray, Date32Array, Float32Array, Float64Array, Int8Array,
    Int16Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    UInt64Array,
};
use arrow_schema::DataType;
use retl_source::{Error, Model, Source, SourceSpec};
use sqlx::{ConnectOptions, Connection, Executor};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name no other test (or earlier run) uses.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

fn url(var: &str) -> Option<String> {
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

fn spec(url: &str, model: Model, columns: &[&str]) -> SourceSpec {
    SourceSpec::new(
        url,
        model,
        columns.iter().map(|c| (*c).to_owned()).collect(),
    )
}

async fn read_all(source: &mut Source) -> Result<Vec<RecordBatch>, Error> {
    let mut out = Vec::new();
    while let Some(batch) = source.next_batch().await {
        out.push(batch?);
    }
    Ok(out)
}

fn col<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| {
            panic!(
                "column {name} has type {}",
                batch.schema().field_with_name(name).unwrap().data_type()
            )
        })
}

mod adbc;
mod keytable;

mod postgres {
    use super::*;
    use sqlx::postgres::{PgConnectOptions, PgConnection};

    struct Schema {
        url: String,
        name: String,
        conn: PgConnection,
    }

    impl Schema {
        async fn new() -> Option<Schema> {
            let url = url("RETL_TEST_POSTGRES_URL")?;
            let mut conn = PgConnectOptions::from_str(&url)
                .unwrap()
                .connect()
                .await
                .unwrap_or_else(|e| {
                    panic!("PostgreSQL at RETL_TEST_POSTGRES_URL is unreachable: {e}")
                });
            let name = unique("retl_src");
            conn.execute(format!("CREATE SCHEMA {name}").as_str())
                .await
                .unwrap();
            Some(Schema { url, name, conn })
        }

        async fn sql(&mut self, sql: &str) {
            let sql = sql.replace("$S", &self.name);
            sqlx::raw_sql(&sql).execute(&mut self.conn).await.unwrap();
        }

        async fn drop(mut self) {
            let sql = format!("DROP SCHEMA {} CASCADE", self.name);
            self.conn.execute(sql.as_str()).await.unwrap();
        }
    }

    #[tokio::test]
    async fn every_supported_type_arrives_exactly() {
        let Some(mut s) = Schema::new().await else {
            return;
        };
        s.sql(
            "CREATE TABLE $S.t (
                id int8, i2 int2, i4 int4, r real, d double precision, n numeric(40, 20),
                txt text, vc varchar(10), ch char(3), b bool, day date, ts timestamp,
                tstz timestamptz, u uuid, j json, jb jsonb, raw bytea);
             INSERT INTO $S.t VALUES
               (9223372036854775807, 32767, 2147483647, 1.5, 2.25, 12345678901234567890.12345678901234567890,
                'ø text', 'vc', 'ab', true, '2024-02-29', '2024-02-29 12:34:56.789012',
                '2024-02-29 12:00:00+05:30', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": 1}', '{\"b\": [2]}', '\\x00ff'),
               (-9223372036854775808, -32768, -2147483648, NULL, NULL, -0.00000000000000000001,
                '', NULL, NULL, false, '1900-01-01', '1969-12-31 23:59:59', NULL, NULL, NULL, NULL, NULL),
               (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
        )
        .await;
        let columns = [
            "id", "i2", "i4", "r", "d", "n", "txt", "vc", "ch", "b", "day", "ts", "tstz", "u", "j",
            "jb", "raw",
        ];
        let mut source = Source::open(&spec(
            &s.url,
            Model::Table(format!("{}.t", s.name)),
            &columns,
        ))
        .await
        .unwrap();
        let batches = read_all(&mut source).await.unwrap();
        assert_eq!(batches.len(), 1);
        let b = &batches[0];
        assert_eq!(col::<Int64Array>(b, "id").value(0), i64::MAX);
        assert_eq!(col::<Int64Array>(b, "id").value(1), i64::MIN);
        assert_eq!(col::<Int16Array>(b, "i2").value(1), i16::MIN);
        assert_eq!(col::<Int32Array>(b, "i4").value(0), i32::MAX);
        assert_eq!(col::<Float32Array>(b, "r").value(0), 1.5);
        assert_eq!(col::<Float64Array>(b, "d").value(0), 2.25);
        assert_eq!(
            col::<StringArray>(b, "n").value(0),
            "12345678901234567890.12345678901234567890"
        );
        assert_eq!(
            col::<StringArray>(b, "n").value(1),
            "-0.00000000000000000001"
        );
        assert_eq!(col::<StringArray>(b, "txt").value(0), "ø text");
        assert_eq!(
            col::<StringArray>(b, "txt").value(1),
            "",
            "empty text is not NULL"
        );
        assert_eq!(col::<StringArray>(b, "ch").value(0), "ab ");
        assert!(col::<BooleanArray>(b, "b").value(0));
        assert_eq!(col::<Date32Array>(b, "day").value(0), 19_782);
        assert_eq!(col::<Date32Array>(b, "day").value(1), -25_567);
        assert_eq!(
            col::<TimestampMicrosecondArray>(b, "ts").value(0),
            1_709_210_096_789_012
        );
        assert_eq!(
            col::<TimestampMicrosecondArray>(b, "ts").value(1),
            -1_000_000
        );
        // 12:00 at +05:30 is 06:30 UTC.
        assert_eq!(
            col::<TimestampMicrosecondArray>(b, "tstz").value(0),
            1_709_188_200_000_000
        );
        assert_eq!(
            b.schema().field_with_name("tstz").unwrap().data_type(),
            &DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(
            col::<StringArray>(b, "u").value(0),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        );
        assert_eq!(col::<StringArray>(b, "j").value(0), "{\"a\": 1}");
        assert_eq!(col::<StringArray>(b, "jb").value(0), "{\"b\": [2]}");
        assert_eq!(col::<BinaryArray>(b, "raw").value(0), &[0, 255]);
        for name in columns {
            assert!(
                b.column_by_name(name).unwrap().is_null(2),
                "{name} NULL stays NULL"
            );
        }
        s.drop().await;
    }

    #[tokio::test]
    async fn the_cursor_reader_gives_exactly_what_copy_gives() {
        let Some(mut s) = Schema::new().await else {
            return;
        };
        s.sql(
            "CREATE TABLE $S.t (
                id int8, i2 int2, i4 int4, r real, d double precision, n numeric(40, 20),
                txt text, b bool, day date, ts timestamp, tstz timestamptz, u uuid, jb jsonb, raw bytea);
             INSERT INTO $S.t
               SELECT g, (g % 100)::int2, g::int4, g / 4.0, g / 8.0, g * 1000000000.000000000001,
                      'row ø ' || g, g % 2 = 0, date '2024-02-29' + g, timestamp '2024-02-29 12:34:56.789012' + g * interval '1 hour',
                      timestamptz '2024-02-29 12:00:00+05:30' + g * interval '1 minute',
                      md5(g::text)::uuid, jsonb_build_object('g', g), int4send(g)
               FROM generate_series(1, 2500) g;
             INSERT INTO $S.t VALUES (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
        )
        .await;
        let columns = [
            "id", "i2", "i4", "r", "d", "n", "txt", "b", "day", "ts", "tstz", "u", "jb", "raw",
        ];
        let read = |mode: retl_source::Read| {
            let mut spec = spec(&s.url, Model::Table(format!("{}.t", s.name)), &columns);
            spec.read = mode;
            spec.batch_size = 1_000;
            spec
        };
        let mut copy = Source::open(&read(retl_source::Read::Copy)).await.unwrap();
        let copied = read_all(&mut copy).await.unwrap();
        let mut cursor = Source::open(&read(retl_source::Read::Cursor))
            .await
            .unwrap();
        let fetched = read_all(&mut cursor).await.unwrap();
        assert_eq!(
            fetched
                .iter()
                .map(RecordBatch::num_rows)
                .collect::<Vec<_>>(),
            [1_000, 1_000, 501],
            "a batch per FETCH: memory follows the batch"
        );
        assert_eq!(fetched, copied, "same types, same values, same batches");
        s.drop().await;
    }

    #[tokio::test]
    async fn a_query_model_streams_in_batches() {
        let Some(mut s) = Schema::new().await else {
            return;
        };
        s.sql("CREATE TABLE $S.orders AS SELECT g AS order_id, 'c' || g AS email FROM generate_series(1, 2500) g").await;
        let query = format!(
            "SELECT order_id * 2 AS doubled, email FROM {}.orders WHERE order_id <= 2345;",
            s.name
        );
        let mut spec = spec(&s.url, Model::Query(query), &["email", "doubled"]);
        spec.batch_size = 1000;
        let mut source = Source::open(&spec).await.unwrap();
        let batches = read_all(&mut source).await.unwrap();
        assert_eq!(
            batches
                .iter()
                .map(RecordBatch::num_rows)
                .collect::<Vec<_>>(),
            vec![1000, 1000, 345]
        );
        assert_eq!(batches[0].schema().field(0).name(), "email");
        let total: i64 = batches
            .iter()
            .flat_map(|b| {
                col::<Int32Array>(b, "doubled")
                    .values()
                    .iter()
                    .map(|v| i64::from(*v))
            })
            .sum();
        assert_eq!(total, 2345 * 2346);
        s.drop().await;
    }

    #[tokio::test]
    async fn unreadable_types_and_missing_columns_fail_before_any_row() {
        let Some(mut s) = Schema::new().await else {
            return;
        };
        s.sql("CREATE TABLE $S.t (id int4, span interval); INSERT INTO $S.t VALUES (1, '1 day')")
            .await;
        let table = Model::Table(format!("{}.t", s.name));
        let err = Source::open(&spec(&s.url, table.clone(), &["id", "span"]))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "column `span` has database type INTERVAL, which retl cannot read"
        );
        let err = Source::inspect(&spec(&s.url, table, &["id", "email"]), false)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "column `email` does not exist in the source; available columns: id, span"
        );
        s.drop().await;
    }

    #[tokio::test]
    async fn a_connection_dropped_mid_stream_is_an_error() {
        let Some(mut s) = Schema::new().await else {
            return;
        };
        s.sql("CREATE TABLE $S.big AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 300000) g").await;
        let mut spec = spec(
            &s.url,
            Model::Table(format!("{}.big", s.name)),
            &["id", "pad"],
        );
        spec.batch_size = 1000;
        let mut source = Source::open(&spec).await.unwrap();
        source.next_batch().await.unwrap().unwrap();
        s.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'retl' AND query LIKE 'COPY%big%'").await;
        let err = read_all(&mut source).await.unwrap_err();
        assert!(matches!(err, Error::Query(_)), "{err}");
        s.drop().await;
    }
}

mod mysql {
    use super::*;
    use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};

    struct Database {
        url: String,
        name: String,
        conn: MySqlConnection,
    }

    impl Database {
        async fn new() -> Option<Database> {
            let url = url("RETL_TEST_MYSQL_URL")?;
            let mut conn = MySqlConnectOptions::from_str(&url)
                .unwrap()
                .connect()
                .await
                .unwrap_or_else(|e| panic!("MySQL at RETL_TEST_MYSQL_URL is unreachable: {e}"));
            let name = unique("retl_src");
            conn.execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .unwrap();
            Some(Database { url, name, conn })
        }

        async fn sql(&mut self, sql: &str) {
            let sql = sql.replace("$D", &self.name);
            sqlx::raw_sql(&sql).execute(&mut self.conn).await.unwrap();
        }

        async fn drop(mut self) {
            let sql = format!("DROP DATABASE {}", self.name);
            self.conn.execute(sql.as_str()).await.unwrap();
            self.conn.close().await.unwrap();
        }
    }

    #[tokio::test]
    async fn every_supported_type_arrives_exactly() {
        let Some(mut d) = Database::new().await else {
            return;
        };
        d.sql(
            "CREATE TABLE $D.t (
                id BIGINT, u BIGINT UNSIGNED, ti TINYINT, si SMALLINT, mi MEDIUMINT, i INT,
                f FLOAT, dbl DOUBLE, dec38 DECIMAL(38, 10), vc VARCHAR(20), txt TEXT, flag BOOLEAN,
                day DATE, dt DATETIME(6), ts TIMESTAMP NULL, j JSON, raw BLOB, e ENUM('a', 'b'));
             SET time_zone = '+02:00';
             INSERT INTO $D.t VALUES
               (9223372036854775807, 18446744073709551615, -128, -32768, -8388608, -2147483648,
                1.5, 2.25, 1234567890123456789012345678.1234567890, 'ø vc', 'text', TRUE,
                '2024-02-29', '2024-02-29 12:34:56.789012', '2024-02-29 14:00:00', '{\"a\": 1}', x'00ff', 'b'),
               (-9223372036854775808, 0, 127, 32767, 8388607, 2147483647,
                NULL, NULL, -0.0000000001, '', NULL, FALSE, '1900-01-01', '1969-12-31 23:59:59', NULL, NULL, NULL, NULL),
               (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
        )
        .await;
        let columns = [
            "id", "u", "ti", "si", "mi", "i", "f", "dbl", "dec38", "vc", "txt", "flag", "day",
            "dt", "ts", "j", "raw", "e",
        ];
        let mut source = Source::open(&spec(
            &d.url,
            Model::Table(format!("{}.t", d.name)),
            &columns,
        ))
        .await
        .unwrap();
        let b = &read_all(&mut source).await.unwrap()[0];
        assert_eq!(col::<Int64Array>(b, "id").value(0), i64::MAX);
        assert_eq!(col::<Int64Array>(b, "id").value(1), i64::MIN);
        assert_eq!(col::<UInt64Array>(b, "u").value(0), u64::MAX);
        assert_eq!(col::<Int8Array>(b, "ti").value(0), i8::MIN);
        assert_eq!(col::<Int32Array>(b, "mi").value(0), -8_388_608);
        assert_eq!(col::<Float32Array>(b, "f").value(0), 1.5);
        assert_eq!(col::<Float64Array>(b, "dbl").value(0), 2.25);
        assert_eq!(
            col::<StringArray>(b, "dec38").value(0),
            "1234567890123456789012345678.1234567890"
        );
        assert_eq!(col::<StringArray>(b, "dec38").value(1), "-0.0000000001");
        assert_eq!(col::<StringArray>(b, "vc").value(0), "ø vc");
        assert_eq!(col::<StringArray>(b, "vc").value(1), "");
        assert!(col::<BooleanArray>(b, "flag").value(0));
        assert_eq!(col::<Date32Array>(b, "day").value(0), 19_782);
        assert_eq!(col::<Date32Array>(b, "day").value(1), -25_567);
        assert_eq!(
            col::<TimestampMicrosecondArray>(b, "dt").value(0),
            1_709_210_096_789_012
        );
        assert_eq!(
            col::<TimestampMicrosecondArray>(b, "dt").value(1),
            -1_000_000
        );
        // 14:00 at +02:00 is 12:00 UTC.
        assert_eq!(
            col::<TimestampMicrosecondArray>(b, "ts").value(0),
            1_709_208_000_000_000
        );
        // MySQL's JSON type arrives as text; MariaDB's JSON is LONGTEXT with a
        // binary collation, which the protocol marks binary: its bytes are the text.
        let json = b.column_by_name("j").unwrap();
        let text = match json.data_type() {
            DataType::Utf8 => col::<StringArray>(b, "j").value(0).to_owned(),
            _ => String::from_utf8(col::<BinaryArray>(b, "j").value(0).to_vec()).unwrap(),
        };
        assert!(text.contains("\"a\""), "{text}");
        assert_eq!(col::<BinaryArray>(b, "raw").value(0), &[0, 255]);
        assert_eq!(col::<StringArray>(b, "e").value(0), "b");
        for name in columns {
            assert!(
                b.column_by_name(name).unwrap().is_null(2),
                "{name} NULL stays NULL"
            );
        }
        d.drop().await;
    }

    #[tokio::test]
    async fn a_query_model_and_a_missing_column() {
        let Some(mut d) = Database::new().await else {
            return;
        };
        d.sql("CREATE TABLE $D.orders (order_id INT PRIMARY KEY, email VARCHAR(50), at TIME);
               INSERT INTO $D.orders VALUES (1, 'a@x.example', '10:00:00'), (2, 'b@x.example', NULL);").await;
        let query = format!(
            "SELECT order_id, UPPER(email) AS email FROM {}.orders ORDER BY order_id",
            d.name
        );
        let mut source = Source::open(&spec(&d.url, Model::Query(query), &["order_id", "email"]))
            .await
            .unwrap();
        let b = &read_all(&mut source).await.unwrap()[0];
        assert_eq!(col::<StringArray>(b, "email").value(1), "B@X.EXAMPLE");

        let table = Model::Table(format!("{}.orders", d.name));
        let err = Source::inspect(&spec(&d.url, table.clone(), &["order_id", "mail"]), false)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "column `mail` does not exist in the source; did you mean `email`? available columns: order_id, email, at"
        );
        let err = Source::inspect(&spec(&d.url, table, &["at"]), false)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "column `at` has database type TIME, which retl cannot read"
        );
        d.drop().await;
    }

    #[tokio::test]
    async fn a_connection_killed_mid_stream_is_an_error() {
        let Some(mut d) = Database::new().await else {
            return;
        };
        d.sql("CREATE TABLE $D.big (id INT PRIMARY KEY, pad VARCHAR(300));
               CREATE TABLE $D.digits (i INT);
               INSERT INTO $D.digits VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9);
               INSERT INTO $D.big
               SELECT a.i + 10 * b.i + 100 * c.i + 1000 * e.i + 10000 * f.i + 100000 * g.i, REPEAT('x', 250)
               FROM $D.digits a, $D.digits b, $D.digits c, $D.digits e, $D.digits f, $D.digits g
               WHERE g.i < 2;").await;
        let mut spec = spec(
            &d.url,
            Model::Table(format!("{}.big", d.name)),
            &["id", "pad"],
        );
        spec.batch_size = 1000;
        let mut source = Source::open(&spec).await.unwrap();
        source.next_batch().await.unwrap().unwrap();
        let ids: Vec<(u64,)> = sqlx::query_as(
            "SELECT CAST(id AS UNSIGNED) FROM information_schema.processlist WHERE info LIKE 'SELECT `id`, `pad` FROM%'",
        )
        .fetch_all(&mut d.conn)
        .await
        .unwrap();
        assert_eq!(ids.len(), 1, "the reading connection is found");
        d.sql(&format!("KILL {}", ids[0].0)).await;
        let err = read_all(&mut source).await.unwrap_err();
        assert!(matches!(err, Error::Query(_)), "{err}");
        d.drop().await;
    }
}
