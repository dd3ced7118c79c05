//! Keys compared in SQL exactly as retl identifies them (`source.diff:
//! warehouse`). For every key type and dialect, over generated values
//! (seeded: a failure names its seed) and the awkward ones (quotes,
//! separators, unicode, case and trailing spaces, integers at their
//! widths' ends, numerics past `i64`), a random third of the keys read is
//! written to the key table; then the anti-join must return exactly the
//! rows whose retl key was not written (NULL keys always), and the key
//! table read back must hold exactly the retl keys written.

use std::collections::{BTreeMap, BTreeSet};

use arrow_array::{Array as _, RecordBatch};
use retl_diff::{RowHash, hash_keys};
use std::time::Duration;

use retl_source::{Adbc, Dialect, KeyTable, KeyValue, Model, Source, SourceSpec};

use super::{read_all, unique, url};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// What a generated column holds.
#[derive(Clone, Copy)]
enum Gen {
    /// Integers in `min..=max`.
    Int(i128, i128),
    /// Text, awkward characters included.
    Text,
    /// UUIDs.
    Uuid,
}

const AWKWARD: &[&str] = &[
    "", " ", "a", "a ", " a", "A", "abc", "ABC", "42", "042", "-7", "+7", "4.0", "a,b", "a, b",
    "'", "''", "\"", "\\", "\\'", "|", "\t", "é", "e\u{301}", "😀", "日本", "<NULL>", "NULL",
    "null", "x\u{1f}y",
];

impl Gen {
    fn values(self, rng: &mut Rng, n: usize) -> Vec<String> {
        let mut out: BTreeSet<String> = BTreeSet::new();
        match self {
            Gen::Int(min, max) => {
                for v in [min, max, 0, 1, -1, min + 1, max - 1] {
                    if (min..=max).contains(&v) {
                        out.insert(v.to_string());
                    }
                }
                let span = u128::try_from(max - min).unwrap() + 1;
                while out.len() < n {
                    let r = (u128::from(rng.next()) << 64 | u128::from(rng.next())) % span;
                    out.insert((min + i128::try_from(r).unwrap()).to_string());
                }
            }
            Gen::Text => {
                out.extend(AWKWARD.iter().map(|s| (*s).to_owned()));
                let alphabet: Vec<char> = "aAbB 0123,'\"\\|é😀-_".chars().collect();
                while out.len() < n {
                    let len = rng.next() % 8;
                    let s: String = (0..len)
                        .map(|_| {
                            alphabet[usize::try_from(rng.next() % alphabet.len() as u64).unwrap()]
                        })
                        .collect();
                    // Trailing spaces compare equal to none in some collations:
                    // both kinds are kept, as real keys would be.
                    out.insert(s);
                }
            }
            Gen::Uuid => {
                while out.len() < n {
                    let (a, b) = (rng.next(), rng.next());
                    out.insert(format!(
                        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                        a >> 32,
                        (a >> 16) & 0xffff,
                        a & 0xffff,
                        b >> 48,
                        b & 0xffff_ffff_ffff
                    ));
                }
            }
        }
        out.into_iter().collect()
    }
}

/// A key shape: its columns (name, SQL type, values).
struct Case {
    name: &'static str,
    columns: Vec<(&'static str, String, Gen)>,
}

/// A case of key columns (name, SQL type, values).
fn case(name: &'static str, columns: Vec<(&'static str, &str, Gen)>) -> Case {
    Case {
        name,
        columns: columns
            .into_iter()
            .map(|(n, t, g)| (n, t.to_owned(), g))
            .collect(),
    }
}

/// Rows of `case`: every generated value, composite keys paired at random,
/// and two rows with a NULL key part.
fn rows(case: &Case, seed: u64) -> Vec<Vec<Option<String>>> {
    let mut rng = Rng(seed);
    let columns: Vec<Vec<String>> = case
        .columns
        .iter()
        .map(|(_, _, g)| g.values(&mut rng, 120))
        .collect();
    let n = columns.iter().map(Vec::len).max().unwrap();
    let mut rows: BTreeSet<Vec<Option<String>>> = BTreeSet::new();
    for i in 0..n {
        rows.insert(
            columns
                .iter()
                .map(|values| {
                    let pick = if i < values.len() {
                        i
                    } else {
                        usize::try_from(rng.next()).unwrap() % values.len()
                    };
                    Some(values[pick].clone())
                })
                .collect(),
        );
    }
    if columns.len() > 1 && case.columns.iter().all(|(_, _, g)| matches!(g, Gen::Text)) {
        // Separators moved between the parts must stay apart.
        rows.insert(
            vec![Some("a,b".into()), Some("c".into())]
                .into_iter()
                .take(columns.len())
                .collect(),
        );
    }
    let mut rows: Vec<_> = rows
        .into_iter()
        .filter(|r| r.len() == columns.len())
        .collect();
    let mut null = rows[0].clone();
    null[0] = None;
    rows.push(null.clone());
    rows.push(null);
    rows
}

/// Each row's retl key, and its values as a run writes them to the key table.
fn keys_of(batches: &[RecordBatch]) -> Vec<(RowHash, Option<Vec<KeyValue>>)> {
    let mut out = Vec::new();
    for batch in batches {
        let columns: Vec<usize> = (0..batch.num_columns()).collect();
        let hashes = hash_keys(batch, &columns).unwrap();
        for (row, hash) in hashes.into_iter().enumerate() {
            let values: Option<Vec<KeyValue>> = columns
                .iter()
                .map(|&c| {
                    let array = batch.column(c);
                    if array.is_null(row) {
                        return None;
                    }
                    let text = arrow_cast_text(array.as_ref(), row);
                    Some(match text.parse::<i64>() {
                        Ok(n) if array.data_type().is_integer() => KeyValue::Int(n),
                        _ => KeyValue::Text(text),
                    })
                })
                .collect();
            out.push((hash, values));
        }
    }
    out
}

/// A cell as text (the types a key table keeps: integers and text).
fn arrow_cast_text(array: &dyn arrow_array::Array, row: usize) -> String {
    use arrow_array::cast::AsArray as _;
    use arrow_array::types::{
        Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
    };
    use arrow_schema::DataType;
    match array.data_type() {
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).to_string(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).to_string(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).to_string(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).to_string(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).to_string(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).to_string(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(row).to_string(),
        DataType::Utf8 => array.as_string::<i32>().value(row).to_owned(),
        other => panic!("a key of type {other} in a key table test"),
    }
}

fn multiset(hashes: impl IntoIterator<Item = RowHash>) -> BTreeMap<RowHash, usize> {
    let mut out = BTreeMap::new();
    for h in hashes {
        *out.entry(h).or_insert(0) += 1;
    }
    out
}

/// The property on one dialect: `url` (or, for an ADBC source, its name,
/// and `adbc`), the case's table `table` (made and filled by the caller),
/// key tables in `schema`.
async fn holds(url: &str, table: &str, schema: &str, case: &Case, seed: u64) {
    holds_through(url, None, table, schema, case, seed).await;
}

/// How the key table is spoken to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Speaking {
    /// In the source's own dialect.
    Own,
    /// A PostgreSQL-protocol connection, in Redshift's SQL.
    Redshift,
}

/// [`holds`], through an ADBC driver when `adbc` is given (its dialect
/// found as a run finds it).
async fn holds_through(
    url: &str,
    adbc: Option<&Adbc>,
    table: &str,
    schema: &str,
    case: &Case,
    seed: u64,
) {
    holds_speaking(url, adbc, Speaking::Own, table, schema, case, seed).await;
}

/// The key table of `spec`'s model, spoken to as `speaking` says.
fn key_table(spec: &SourceSpec, speaking: Speaking, schema: &str, name: &str) -> KeyTable {
    let table = KeyTable::new(
        &spec.connection,
        &spec.model,
        spec.adbc.as_ref(),
        schema,
        name,
        "test-state",
        &spec.columns,
    )
    .unwrap();
    match speaking {
        Speaking::Redshift => table.speaking_redshift(),
        Speaking::Own => table,
    }
}

/// [`holds_through`], the key table spoken to as `speaking` says.
async fn holds_speaking(
    url: &str,
    adbc: Option<&Adbc>,
    speaking: Speaking,
    table: &str,
    schema: &str,
    case: &Case,
    seed: u64,
) {
    let adbc = match adbc {
        Some(adbc) => Some(
            adbc.resolved((Duration::from_secs(30), Duration::from_mins(5)))
                .await
                .unwrap(),
        ),
        None => None,
    };
    let columns: Vec<String> = case
        .columns
        .iter()
        .map(|(c, _, _)| (*c).to_owned())
        .collect();
    let model = Model::Table(table.to_owned());
    let spec = SourceSpec {
        adbc: adbc.clone(),
        ..SourceSpec::new(url, model.clone(), columns.clone())
    };
    let all = keys_of(
        &read_all(&mut Source::open(&spec).await.unwrap())
            .await
            .unwrap(),
    );
    let mut rng = Rng(seed ^ 0x5eed);
    let written: Vec<(RowHash, Vec<KeyValue>)> = all
        .iter()
        .filter_map(|(h, v)| v.clone().map(|v| (*h, v)))
        .filter(|_| rng.next().is_multiple_of(3))
        .collect();
    let key_table = key_table(&spec, speaking, schema, case.name);
    key_table.ensure().await.unwrap();
    let mut writer = key_table.writer().await.unwrap();
    let values: Vec<Vec<KeyValue>> = written.iter().map(|(_, v)| v.clone()).collect();
    key_table.push(&mut writer, &values).await.unwrap();

    let written_keys: BTreeSet<RowHash> = written.iter().map(|(h, _)| *h).collect();
    let expected = multiset(
        all.iter()
            .map(|(h, _)| *h)
            .filter(|h| !written_keys.contains(h)),
    );
    let narrowed = SourceSpec {
        anti_join: Some(key_table.anti_join()),
        ..spec.clone()
    };
    let crossed = keys_of(
        &read_all(&mut Source::open(&narrowed).await.unwrap())
            .await
            .unwrap(),
    );
    let crossed_keys: BTreeSet<RowHash> = crossed.iter().map(|(h, _)| *h).collect();
    let missing: Vec<_> = all
        .iter()
        .filter(|(h, _)| !written_keys.contains(h) && !crossed_keys.contains(h))
        .map(|(_, v)| v)
        .collect();
    let written_values: Vec<_> = written.iter().map(|(_, v)| v).collect();
    assert!(
        missing.is_empty(),
        "{}: rows whose key was not written did not cross: {missing:?} (written: {written_values:?}; seed {seed})",
        case.name
    );
    let nulls = crossed.iter().filter(|(_, v)| v.is_none()).count();
    assert_eq!(
        nulls, 2,
        "{}: the NULL keys cross every time (seed {seed})",
        case.name
    );
    assert_eq!(
        multiset(crossed.iter().map(|(h, _)| *h)),
        expected,
        "{}: the anti-join returns exactly the rows whose retl key was not written (seed {seed})",
        case.name
    );
    let table_spec = SourceSpec {
        adbc,
        ..SourceSpec::new(url, key_table_model(&key_table), columns)
    };
    let held = keys_of(
        &read_all(&mut Source::open(&table_spec).await.unwrap())
            .await
            .unwrap(),
    );
    assert_eq!(
        held.iter().map(|(h, _)| *h).collect::<BTreeSet<_>>(),
        written_keys,
        "{}: the key table holds the retl keys written (seed {seed})",
        case.name
    );
}

/// The key table as a model to read (its display name, dotted).
fn key_table_model(table: &KeyTable) -> Model {
    Model::Table(table.display())
}

fn pg_cases() -> Vec<Case> {
    vec![
        case(
            "int2",
            vec![("k", "smallint", Gen::Int(i16::MIN.into(), i16::MAX.into()))],
        ),
        case(
            "int4",
            vec![("k", "integer", Gen::Int(i32::MIN.into(), i32::MAX.into()))],
        ),
        case(
            "int8",
            vec![("k", "bigint", Gen::Int(i64::MIN.into(), i64::MAX.into()))],
        ),
        case(
            "numeric",
            vec![(
                "k",
                "numeric(20,0)",
                Gen::Int(-(10_i128.pow(20) - 1), 10_i128.pow(20) - 1),
            )],
        ),
        case(
            "numeric_scaled",
            vec![("k", "numeric(12,3)", Gen::Int(-999_999_999, 999_999_999))],
        ),
        case("text", vec![("k", "text", Gen::Text)]),
        case("uuid", vec![("k", "uuid", Gen::Uuid)]),
        case(
            "text_text",
            vec![("a", "text", Gen::Text), ("b", "text", Gen::Text)],
        ),
        case(
            "int_text",
            vec![
                ("a", "bigint", Gen::Int(-1_000, 1_000)),
                ("b", "varchar(20)", Gen::Text),
            ],
        ),
    ]
}

#[tokio::test]
async fn keys_compare_in_postgresql_exactly_as_retl_identifies_them() {
    use sqlx::{ConnectOptions as _, Executor as _};
    let Some(url) = url("RETL_TEST_POSTGRES_URL") else {
        return;
    };
    let mut conn = sqlx::postgres::PgConnectOptions::from_str(&url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (source, keys) = (unique("retl_kt"), unique("retl_kt_keys"));
    conn.execute(format!("CREATE SCHEMA {source}").as_str())
        .await
        .unwrap();
    for (i, case) in pg_cases().iter().enumerate() {
        let seed = 0x9e37_79b9 + i as u64;
        let table = format!("{source}.{}", case.name);
        let defs: Vec<String> = case
            .columns
            .iter()
            .map(|(n, t, _)| format!("{n} {t}"))
            .collect();
        conn.execute(format!("CREATE TABLE {table} ({}, payload text)", defs.join(", ")).as_str())
            .await
            .unwrap();
        for row in rows(case, seed) {
            let places: Vec<String> = case
                .columns
                .iter()
                .enumerate()
                .map(|(j, (_, t, _))| format!("CAST(${} AS {t})", j + 1))
                .collect();
            let sql = format!("INSERT INTO {table} VALUES ({}, 'p')", places.join(", "));
            let mut query = sqlx::query(&sql);
            for value in row {
                query = query.bind(value);
            }
            query.execute(&mut conn).await.unwrap();
        }
        holds(&url, &table, &keys, case, seed).await;
    }
    conn.execute(format!("DROP SCHEMA {source} CASCADE; DROP SCHEMA {keys} CASCADE").as_str())
        .await
        .unwrap();
}

#[tokio::test]
async fn keys_compare_in_mysql_exactly_as_retl_identifies_them() {
    use sqlx::{ConnectOptions as _, Executor as _};
    let Some(url) = url("RETL_TEST_MYSQL_URL") else {
        return;
    };
    let mut conn = sqlx::mysql::MySqlConnectOptions::from_str(&url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (source, keys) = (unique("retl_kt"), unique("retl_kt_keys"));
    conn.execute(format!("CREATE DATABASE {source} CHARACTER SET utf8mb4").as_str())
        .await
        .unwrap();
    let text = "varchar(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci";
    let cases = [
        case(
            "int1",
            vec![("k", "tinyint", Gen::Int(i8::MIN.into(), i8::MAX.into()))],
        ),
        case(
            "int4",
            vec![("k", "int", Gen::Int(i32::MIN.into(), i32::MAX.into()))],
        ),
        case(
            "int8",
            vec![("k", "bigint", Gen::Int(i64::MIN.into(), i64::MAX.into()))],
        ),
        case(
            "uint8",
            vec![("k", "bigint unsigned", Gen::Int(0, u64::MAX.into()))],
        ),
        case(
            "decimal",
            vec![(
                "k",
                "decimal(20,0)",
                Gen::Int(-(10_i128.pow(20) - 1), 10_i128.pow(20) - 1),
            )],
        ),
        case("text", vec![("k", text, Gen::Text)]),
        case(
            "text_text",
            vec![("a", text, Gen::Text), ("b", text, Gen::Text)],
        ),
    ];
    for (i, case) in cases.iter().enumerate() {
        let seed = 0x85eb_ca6b + i as u64;
        let table = format!("{source}.{}", case.name);
        let defs: Vec<String> = case
            .columns
            .iter()
            .map(|(n, t, _)| format!("{n} {t}"))
            .collect();
        let key: Vec<&str> = case.columns.iter().map(|(n, _, _)| *n).collect();
        conn.execute(
            format!(
                "CREATE TABLE {table} ({}, payload text, INDEX ({}))",
                defs.join(", "),
                key.join(", ")
            )
            .as_str(),
        )
        .await
        .unwrap();
        for row in rows(case, seed) {
            let places = vec!["?"; row.len()].join(", ");
            let sql = format!("INSERT INTO {table} VALUES ({places}, 'p')");
            let mut query = sqlx::query(&sql);
            for value in row {
                query = query.bind(value);
            }
            query.execute(&mut conn).await.unwrap();
        }
        holds(&url, &table, &keys, case, seed).await;
    }
    conn.execute(format!("DROP DATABASE {source}; DROP DATABASE {keys}").as_str())
        .await
        .unwrap();
}

#[tokio::test]
async fn keys_compare_in_sqlite_exactly_as_retl_identifies_them() {
    use sqlx::{ConnectOptions as _, Executor as _};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .unwrap()
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    let cases = [
        case(
            "int",
            vec![("k", "INTEGER", Gen::Int(i64::MIN.into(), i64::MAX.into()))],
        ),
        case("text", vec![("k", "TEXT", Gen::Text)]),
        case(
            "text_text",
            vec![("a", "TEXT", Gen::Text), ("b", "VARCHAR(20)", Gen::Text)],
        ),
        case(
            "int_text",
            vec![
                ("a", "BIGINT", Gen::Int(-1_000, 1_000)),
                ("b", "TEXT", Gen::Text),
            ],
        ),
    ];
    for (i, case) in cases.iter().enumerate() {
        let seed = 0xc2b2_ae35 + i as u64;
        let defs: Vec<String> = case
            .columns
            .iter()
            .map(|(n, t, _)| format!("{n} {t}"))
            .collect();
        conn.execute(
            format!(
                "CREATE TABLE {} ({}, payload TEXT)",
                case.name,
                defs.join(", ")
            )
            .as_str(),
        )
        .await
        .unwrap();
        for row in rows(case, seed) {
            let places = vec!["?"; row.len()].join(", ");
            let sql = format!("INSERT INTO {} VALUES ({places}, 'p')", case.name);
            let mut query = sqlx::query(&sql);
            for (value, (_, t, _)) in row.into_iter().zip(&case.columns) {
                query = if t.contains("INT") {
                    query.bind(value.map(|v| v.parse::<i64>().unwrap()))
                } else {
                    query.bind(value)
                };
            }
            query.execute(&mut conn).await.unwrap();
        }
        holds(&url, case.name, "retl", case, seed).await;
    }
}

use std::str::FromStr as _;

/// `case`'s rows as one `INSERT` of SQL literals into `table`, for engines
/// the test reaches only through their ADBC driver; `backslash`: the
/// dialect's strings escape with it (Snowflake's do).
fn insert_literals(case: &Case, seed: u64, table: &str, backslash: bool) -> String {
    let rows: Vec<String> = rows(case, seed)
        .into_iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&case.columns)
                .map(|(value, (_, t, _))| match value {
                    None => format!("CAST(NULL AS {t})"),
                    Some(v) => {
                        let mut v = v.replace('\'', "''");
                        if backslash {
                            v = v.replace('\\', "\\\\");
                        }
                        format!("CAST('{v}' AS {t})")
                    }
                })
                .collect();
            format!("({}, 'p')", cells.join(", "))
        })
        .collect();
    format!("INSERT INTO {table} VALUES {}", rows.join(", "))
}

/// `CREATE TABLE table (key columns, payload)` for `case`.
fn create_table(case: &Case, table: &str, text: &str) -> String {
    let defs: Vec<String> = case
        .columns
        .iter()
        .map(|(n, t, _)| format!("{n} {t}"))
        .collect();
    format!("CREATE TABLE {table} ({}, payload {text})", defs.join(", "))
}

fn duckdb_cases() -> Vec<Case> {
    vec![
        case(
            "tinyint",
            vec![("k", "TINYINT", Gen::Int(i8::MIN.into(), i8::MAX.into()))],
        ),
        case(
            "integer",
            vec![("k", "INTEGER", Gen::Int(i32::MIN.into(), i32::MAX.into()))],
        ),
        case(
            "bigint",
            vec![("k", "BIGINT", Gen::Int(i64::MIN.into(), i64::MAX.into()))],
        ),
        case(
            "ubigint",
            vec![("k", "UBIGINT", Gen::Int(0, u64::MAX.into()))],
        ),
        case(
            "hugeint",
            vec![(
                "k",
                "HUGEINT",
                // 38 digits (the generator's span must fit an i128).
                Gen::Int(-8 * 10_i128.pow(37), 8 * 10_i128.pow(37)),
            )],
        ),
        case(
            "decimal",
            vec![(
                "k",
                "DECIMAL(20, 0)",
                Gen::Int(-(10_i128.pow(20) - 1), 10_i128.pow(20) - 1),
            )],
        ),
        case(
            "decimal_scaled",
            vec![("k", "DECIMAL(12, 3)", Gen::Int(-999_999_999, 999_999_999))],
        ),
        case("varchar", vec![("k", "VARCHAR", Gen::Text)]),
        case("uuid", vec![("k", "UUID", Gen::Uuid)]),
        case(
            "varchar_varchar",
            vec![("a", "VARCHAR", Gen::Text), ("b", "VARCHAR", Gen::Text)],
        ),
        case(
            "bigint_varchar",
            vec![
                ("a", "BIGINT", Gen::Int(-1_000, 1_000)),
                ("b", "VARCHAR", Gen::Text),
            ],
        ),
    ]
}

/// `DuckDB` through its own ADBC entry point (`duckdb_adbc_init`), its
/// dialect found from the vendor name the driver reports.
#[tokio::test]
async fn keys_compare_in_duckdb_exactly_as_retl_identifies_them() {
    let Some(library) = url("RETL_TEST_DUCKDB_LIBRARY") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let options = vec![(
        "path".to_owned(),
        dir.path().join("w.duckdb").display().to_string(),
    )];
    let adbc = Adbc {
        entrypoint: Some("duckdb_adbc_init".into()),
        ..Adbc::new(library.clone(), options.clone())
    };
    let found = adbc
        .resolved((Duration::from_secs(30), Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(
        found.dialect,
        Some(Dialect::Duckdb),
        "GetInfo's vendor name"
    );
    for (i, case) in duckdb_cases().iter().enumerate() {
        let seed = 0x27d4_eb2f + i as u64;
        let table = format!("shop.{}", case.name);
        let create = create_table(case, &table, "VARCHAR");
        let insert = insert_literals(case, seed, &table, false);
        super::adbc::run_sql(
            &library,
            Some("duckdb_adbc_init"),
            &options,
            &["CREATE SCHEMA IF NOT EXISTS shop", &create, &insert],
        );
        holds_through("adbc:duckdb", Some(&adbc), &table, "retl", case, seed).await;
    }
}

/// PostgreSQL through its ADBC driver, in its own dialect and in
/// Redshift's: Redshift's key table SQL (no `UNLOGGED`, no index, keys
/// bound and cast, `GETDATE()`) run on PostgreSQL as far as the two agree
/// (PostgreSQL has no `GETDATE()`: the test's database is given one).
#[tokio::test]
async fn keys_compare_on_postgresql_in_its_dialect_and_redshifts_through_adbc_and_natively() {
    use sqlx::{ConnectOptions as _, Executor as _};
    let (Some(url), Some(library)) = (
        url("RETL_TEST_POSTGRES_URL"),
        url("RETL_TEST_ADBC_POSTGRESQL_DRIVER"),
    ) else {
        return;
    };
    let mut conn = sqlx::postgres::PgConnectOptions::from_str(&url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    conn.execute(
        "CREATE OR REPLACE FUNCTION getdate() RETURNS timestamp LANGUAGE sql AS 'SELECT localtimestamp'",
    )
    .await
    .unwrap();
    let source = unique("retl_kta");
    conn.execute(format!("CREATE SCHEMA {source}").as_str())
        .await
        .unwrap();
    let uri = url.replace("postgres://", "postgresql://");
    for (n, dialect) in [Dialect::Postgresql, Dialect::Redshift]
        .into_iter()
        .enumerate()
    {
        let keys = unique("retl_kta_keys");
        let adbc = Adbc {
            // PostgreSQL's is what the driver reports; Redshift's is chosen.
            dialect: (dialect == Dialect::Redshift).then_some(dialect),
            ..Adbc::new(library.clone(), vec![("uri".to_owned(), uri.clone())])
        };
        for (i, case) in pg_cases().iter().enumerate() {
            // Redshift has no uuid type.
            if dialect == Dialect::Redshift && case.name == "uuid" {
                continue;
            }
            let seed = 0x1656_67b1 + (n * 100 + i) as u64;
            let table = format!("{source}.{}_{dialect}", case.name);
            conn.execute(create_table(case, &table, "text").as_str())
                .await
                .unwrap();
            conn.execute(insert_literals(case, seed, &table, false).as_str())
                .await
                .unwrap();
            holds_through("adbc:postgresql", Some(&adbc), &table, &keys, case, seed).await;
        }
        conn.execute(format!("DROP SCHEMA {keys} CASCADE").as_str())
            .await
            .unwrap();
    }
    // Redshift over the PostgreSQL protocol (retl's own reader, as a
    // `postgres://` connection to Redshift reads): its SQL through sqlx.
    let keys = unique("retl_ktr_keys");
    for (i, case) in pg_cases().iter().enumerate() {
        if case.name == "uuid" {
            continue;
        }
        let seed = 0x5851_f42d + i as u64;
        let table = format!("{source}.{}_native", case.name);
        conn.execute(create_table(case, &table, "text").as_str())
            .await
            .unwrap();
        conn.execute(insert_literals(case, seed, &table, false).as_str())
            .await
            .unwrap();
        holds_speaking(&url, None, Speaking::Redshift, &table, &keys, case, seed).await;
    }
    conn.execute(format!("DROP SCHEMA {keys} CASCADE").as_str())
        .await
        .unwrap();
    conn.execute(format!("DROP SCHEMA {source} CASCADE").as_str())
        .await
        .unwrap();
}

fn snowflake_cases() -> Vec<Case> {
    vec![
        case(
            "number38",
            // fakesnow keeps NUMBER(38, 0) in DuckDB's BIGINT: 64-bit values.
            vec![(
                "K",
                "NUMBER(38, 0)",
                Gen::Int(i64::MIN.into(), i64::MAX.into()),
            )],
        ),
        case(
            "integer",
            vec![("K", "INTEGER", Gen::Int(i64::MIN.into(), i64::MAX.into()))],
        ),
        case(
            "number_scaled",
            vec![("K", "NUMBER(12, 3)", Gen::Int(-999_999_999, 999_999_999))],
        ),
        case("varchar", vec![("K", "VARCHAR", Gen::Text)]),
        case(
            "varchar_varchar",
            vec![("A", "VARCHAR", Gen::Text), ("B", "VARCHAR", Gen::Text)],
        ),
        case(
            "number_varchar",
            vec![
                ("A", "NUMBER(38, 0)", Gen::Int(-1_000, 1_000)),
                ("B", "VARCHAR", Gen::Text),
            ],
        ),
    ]
}

/// Snowflake through its ADBC driver, against fakesnow (its dialect found
/// from the vendor name the driver reports).
#[tokio::test]
async fn keys_compare_in_snowflake_exactly_as_retl_identifies_them() {
    let (Some(fakesnow), Some(library)) = (
        url("RETL_TEST_FAKESNOW"),
        url("RETL_TEST_ADBC_SNOWFLAKE_DRIVER"),
    ) else {
        return;
    };
    let (child, port) = super::adbc::start_fakesnow(&fakesnow);
    let _stop = super::adbc::Stop(child);
    let options = super::adbc::fakesnow_options(port);
    super::adbc::run_sql(
        &library,
        None,
        &options,
        &[
            "CREATE DATABASE IF NOT EXISTS SHOP",
            "CREATE SCHEMA IF NOT EXISTS SHOP.SALES",
        ],
    );
    let adbc = Adbc::new(library.clone(), options.clone());
    for (i, case) in snowflake_cases().iter().enumerate() {
        let seed = 0x94d0_49bb + i as u64;
        let table = format!("SHOP.SALES.{}", case.name.to_ascii_uppercase());
        let create = create_table(case, &table, "VARCHAR");
        let insert = insert_literals(case, seed, &table, true);
        super::adbc::run_sql(&library, None, &options, &[&create, &insert]);
        holds_through("adbc:snowflake", Some(&adbc), &table, "retl", case, seed).await;
    }
}

fn spark_cases() -> Vec<Case> {
    vec![
        case(
            "bigint",
            vec![("k", "BIGINT", Gen::Int(i64::MIN.into(), i64::MAX.into()))],
        ),
        case(
            "int",
            vec![("k", "INT", Gen::Int(i32::MIN.into(), i32::MAX.into()))],
        ),
        case(
            "decimal",
            vec![(
                "k",
                "DECIMAL(38, 0)",
                Gen::Int(-8 * 10_i128.pow(37), 8 * 10_i128.pow(37)),
            )],
        ),
        case(
            "decimal_scaled",
            vec![("k", "DECIMAL(12, 3)", Gen::Int(-999_999_999, 999_999_999))],
        ),
        case("string", vec![("k", "STRING", Gen::Text)]),
        case(
            "string_string",
            vec![("a", "STRING", Gen::Text), ("b", "STRING", Gen::Text)],
        ),
        case(
            "bigint_string",
            vec![
                ("a", "BIGINT", Gen::Int(-1_000, 1_000)),
                ("b", "STRING", Gen::Text),
            ],
        ),
    ]
}

/// `case`'s rows as one Spark SQL `INSERT`, each text as the UTF-8 of its
/// hex digits (Spark's string literals take backslash escapes).
fn spark_insert(case: &Case, seed: u64, table: &str) -> String {
    let rows: Vec<String> = rows(case, seed)
        .into_iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&case.columns)
                .map(|(value, (_, t, _))| match value {
                    None => format!("CAST(NULL AS {t})"),
                    Some(v) => {
                        let hex = v.bytes().fold(String::new(), |mut hex, b| {
                            use std::fmt::Write as _;
                            let _ = write!(hex, "{b:02X}");
                            hex
                        });
                        format!("CAST(CAST(X'{hex}' AS STRING) AS {t})")
                    }
                })
                .collect();
            format!("({}, 'p')", cells.join(", "))
        })
        .collect();
    format!("INSERT INTO {table} VALUES {}", rows.join(", "))
}

/// Databricks' dialect (Spark SQL) against a local Spark Connect server,
/// through `adbc-driver-spark`: its dialect from the vendor name the driver
/// reports (`Apache Spark`).
#[tokio::test]
async fn keys_compare_in_spark_exactly_as_retl_identifies_them() {
    let (Some(spark_home), Some(library)) = (
        url("RETL_TEST_SPARK_HOME"),
        url("RETL_TEST_ADBC_SPARK_DRIVER"),
    ) else {
        return;
    };
    let (_stop, port, _dir) = super::adbc::start_spark(&spark_home);
    let options = vec![("uri".to_owned(), format!("sc://127.0.0.1:{port}"))];
    let adbc = Adbc::new(library.clone(), options.clone());
    let found = adbc
        .resolved((Duration::from_secs(30), Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(
        found.dialect,
        Some(Dialect::Databricks),
        "GetInfo's vendor name"
    );
    super::adbc::run_sql(
        &library,
        None,
        &options,
        &["CREATE SCHEMA IF NOT EXISTS shop"],
    );
    for (i, case) in spark_cases().iter().enumerate() {
        let seed = 0x2545_f491 + i as u64;
        let table = format!("shop.{}", case.name);
        let create = create_table(case, &table, "STRING");
        let insert = spark_insert(case, seed, &table);
        super::adbc::run_sql(&library, None, &options, &[&create, &insert]);
        holds_through("adbc:spark", Some(&adbc), &table, "retl", case, seed).await;
    }
}
