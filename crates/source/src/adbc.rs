//! Sources read through ADBC (Arrow Database Connectivity) drivers:
//! `source.adbc: {driver, options}`. The driver's shared library is loaded
//! at run time by the driver manager (`adbc_driver_manager`): by the path
//! of the library, or by a name the manager resolves through ADBC driver
//! manifests (as the `dbc` installer writes them) and the library path.
//!
//! Record batches arrive over the Arrow C stream interface and are used as
//! they are where their type is one retl reads; only types retl reads
//! differently are converted, column by column: a decimal becomes its exact
//! text (with [`retl_diff::DECIMAL_TEXT`], so a `NUMBER(38,0)` key hashes as
//! the integer it holds), a timestamp of any unit or zone becomes UTC
//! microseconds, large and view strings become strings. A type retl cannot
//! read stops the run before any row is read, naming the column and its type.
//!
//! Everything retl asks of an ADBC
//! driver (read, types, cursor condition, writeback, clock) over the one
//! driver manager, read together.
//!
//! ADBC calls block: they run on a blocking thread, which hands batches to
//! the run through the same bounded channel as the other readers.
//!
//! The SQL is written in the source's [`Dialect`]: `source.adbc.dialect`,
//! else the vendor name the driver reports (`GetInfo`), else plain ANSI
//! with double-quoted identifiers, which reads but does not write (cursor
//! mode, writeback and `diff: warehouse` ask for a dialect). Cursor mode
//! writes its condition into that SQL ([`literal`]); writeback binds its
//! values ([`Updater`]); `diff: warehouse` anti-joins the key table
//! ([`crate::keytable`]), whose statements run through [`Updater`] too.

use std::sync::Arc;
use std::time::Duration;

use adbc_core::options::{AdbcVersion, OptionDatabase, OptionValue};
use adbc_core::{Connection as _, Database as _, Driver as _, Optionable as _, Statement as _};
use adbc_driver_manager::{ManagedConnection, ManagedDriver, ManagedStatement};
use arrow_array::{
    Array, ArrayRef, Decimal128Array, LargeBinaryArray, LargeStringArray, RecordBatch,
    RecordBatchReader, StringArray, StringViewArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::columns::quote_column;
use crate::{Dialect, Error, Model, Result, Source, SourceSpec};

/// `source.adbc`: which driver, and the options its database is made with.
#[derive(Clone, PartialEq, Eq)]
pub struct Adbc {
    /// A driver name (resolved through ADBC driver manifests and the library
    /// path) or the path of its shared library.
    pub driver: String,
    /// The database options (`uri`, `username`, `password`, or the driver's
    /// own keys), in the order written. Values may be secrets.
    pub options: Vec<(String, String)>,
    /// The driver's init symbol, where it is not the default
    /// (`AdbcDriverInit`, or one derived from the library's name): `DuckDB`'s
    /// is `duckdb_adbc_init`.
    pub entrypoint: Option<String>,
    /// The SQL dialect (`source.adbc.dialect`); `None`: the vendor name the
    /// driver reports says it, or it stays unknown.
    pub dialect: Option<Dialect>,
    /// Options set on every statement (`source.adbc.statement_options`):
    /// `BigQuery`'s `adbc.bigquery.sql.query.*`, for example. Values may be
    /// secrets.
    pub statement_options: Vec<(String, String)>,
}

impl Adbc {
    /// The driver `driver` with database `options`, and nothing else set.
    pub fn new(driver: impl Into<String>, options: Vec<(String, String)>) -> Adbc {
        Adbc {
            driver: driver.into(),
            options,
            entrypoint: None,
            dialect: None,
            statement_options: Vec::new(),
        }
    }

    /// The source's name for people and for its identity: `adbc:DRIVER`,
    /// and its `uri` option with any password masked.
    pub fn name(&self) -> String {
        match self.options.iter().find(|(k, _)| k == "uri") {
            Some((_, uri)) => format!("adbc:{} {}", self.driver, crate::redact_url(uri)),
            None => format!("adbc:{}", self.driver),
        }
    }
}

impl std::fmt::Debug for Adbc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The option values may hold passwords and keys: only their names.
        let keys: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        let statement: Vec<&str> = self
            .statement_options
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        f.debug_struct("Adbc")
            .field("driver", &self.driver)
            .field("options", &keys)
            .field("entrypoint", &self.entrypoint)
            .field("dialect", &self.dialect)
            .field("statement_options", &statement)
            .finish()
    }
}

fn adbc_error(driver: &str, what: &str, e: &adbc_core::error::Error) -> Error {
    // A driver that gives no SQLSTATE leaves it all zeros.
    let sqlstate: String = e
        .sqlstate
        .iter()
        .filter(|c| **c != 0)
        .map(|c| char::from(u8::try_from(*c).unwrap_or(b'?')))
        .collect();
    Error::Adbc {
        driver: driver.to_owned(),
        message: format!("{what}: {}", e.message),
        status: Some(format!("{:?}", e.status)),
        sqlstate: (!sqlstate.is_empty()).then_some(sqlstate),
    }
}

/// Whether `driver` names a library by its path (a `/` or a library
/// extension in it) rather than a driver by its name.
pub fn is_driver_path(driver: &str) -> bool {
    driver.contains('/')
        || [".so", ".dylib", ".dll"]
            .iter()
            .any(|ext| driver.ends_with(ext))
}

impl Adbc {
    /// A driver path relative to the project (the directory that holds the
    /// configuration directory, as a relative state path is), made
    /// absolute: where retl is started from never changes which library
    /// loads.
    pub fn resolve_driver(&mut self, project: &std::path::Path) {
        let path = std::path::Path::new(&self.driver);
        // A bare file name (`libadbc_driver_x.so`) is the loader's to find
        // on the library path; a path with a folder in it is the project's.
        if self.driver.contains('/') && path.is_relative() {
            let relative: std::path::PathBuf = path
                .components()
                .filter(|c| *c != std::path::Component::CurDir)
                .collect();
            self.driver = project.join(relative).display().to_string();
        }
    }
}

/// Loads the driver: a path (with a `/` or a library extension) is loaded as
/// it is, and its loader's error said as it is; a name is looked up by the
/// driver manager, and a library it found but could not load is said with
/// the loader's own error (the manager's trace of where it looked), not
/// only "not found". `entrypoint` is the init symbol where it is not the
/// default.
fn load(driver: &str, entrypoint: Option<&str>) -> Result<ManagedDriver> {
    let entrypoint = entrypoint.map(str::as_bytes);
    if is_driver_path(driver) {
        return ManagedDriver::load_dynamic_from_filename(
            driver,
            entrypoint,
            AdbcVersion::default(),
        )
        .map_err(|e| Error::AdbcLibrary {
            path: driver.to_owned(),
            message: with_trace(&e),
        });
    }
    ManagedDriver::load_from_name(
        driver,
        entrypoint,
        AdbcVersion::default(),
        adbc_core::LOAD_FLAG_DEFAULT,
        None,
    )
    .map_err(|e| Error::AdbcDriver {
        driver: driver.to_owned(),
        message: with_trace(&e),
    })
}

/// An error's message with the driver manager's load trace (each place it
/// looked, and each library's `dlopen` error) when it has one.
fn with_trace(e: &adbc_core::error::Error) -> String {
    let trace: Vec<String> = e
        .details
        .iter()
        .flatten()
        .filter(|(key, _)| key.ends_with("driver_load_trace"))
        .map(|(_, value)| String::from_utf8_lossy(value).trim().to_owned())
        .filter(|text| !text.is_empty())
        .collect();
    if trace.is_empty() {
        e.message.clone()
    } else {
        format!("{} ({})", e.message, trace.join("; ").replace('\n', "; "))
    }
}

/// A connection to the database `adbc` describes, and its dialect: the one
/// configured, else the one of the vendor name the driver reports.
fn connect(adbc: &Adbc) -> Result<(ManagedConnection, Option<Dialect>)> {
    let mut driver = load(&adbc.driver, adbc.entrypoint.as_deref())?;
    let options = adbc.options.iter().map(|(key, value)| {
        (
            OptionDatabase::from(key.as_str()),
            OptionValue::from(value.as_str()),
        )
    });
    let database = driver
        .new_database_with_opts(options)
        .map_err(|e| adbc_error(&adbc.driver, "open the database", &e))?;
    let connection = database
        .new_connection()
        .map_err(|e| adbc_error(&adbc.driver, "connect", &e))?;
    let dialect = adbc
        .dialect
        .or_else(|| vendor_name(&connection).and_then(|v| Dialect::of_vendor(&v)));
    Ok((connection, dialect))
}

/// The vendor name the driver reports (`GetInfo`), if it reports one.
fn vendor_name(connection: &ManagedConnection) -> Option<String> {
    use arrow_array::cast::AsArray as _;
    let codes = std::collections::HashSet::from([adbc_core::options::InfoCode::VendorName]);
    let reader = connection.get_info(Some(codes)).ok()?;
    for batch in reader {
        let batch = batch.ok()?;
        let Some(values) = batch.column(1).as_union_opt() else {
            continue;
        };
        for row in 0..batch.num_rows() {
            // The union's member 0 is `string_value`.
            if values.type_id(row) == 0 {
                let strings = values.child(0).as_string_opt::<i32>()?;
                return Some(strings.value(values.value_offset(row)).to_owned());
            }
        }
    }
    None
}

/// A new statement with the source's statement options set.
fn statement(
    adbc: &Adbc,
    connection: &mut ManagedConnection,
    what: &str,
) -> Result<ManagedStatement> {
    let mut statement = connection
        .new_statement()
        .map_err(|e| adbc_error(&adbc.driver, what, &e))?;
    for (key, value) in &adbc.statement_options {
        statement
            .set_option(
                adbc_core::options::OptionStatement::from(key.as_str()),
                OptionValue::from(value.as_str()),
            )
            .map_err(|e| {
                adbc_error(
                    &adbc.driver,
                    &format!("set statement option `{key}` (source.adbc.statement_options)"),
                    &e,
                )
            })?;
    }
    Ok(statement)
}

/// A query's result being read, with what it needs alive: the reader is
/// dropped first, then its statement, then the connection (a driver may
/// close the reader with either).
struct Running {
    reader: Box<dyn RecordBatchReader + Send + 'static>,
    _statement: ManagedStatement,
    _connection: ManagedConnection,
}

/// What blocking work says once it is connected: the connect timeout stops
/// counting there, and the read timeout starts ([`bounded`]).
struct Connected(Option<tokio::sync::oneshot::Sender<()>>);

impl Connected {
    /// Nothing waits on it (work not bounded).
    fn unbounded() -> Connected {
        Connected(None)
    }

    fn done(&mut self) {
        if let Some(said) = self.0.take() {
            let _ = said.send(());
        }
    }
}

/// Runs `work` (a driver's blocking calls) on a blocking thread, bounded:
/// it must connect within `connect` and end within `read` after that. A
/// driver's call cannot be interrupted: one past its time is left to end
/// on its thread, and the source fails now (the drivers' own timeouts, where
/// they have them, are their options).
async fn bounded<T: Send + 'static>(
    driver: &str,
    (connect, read): (Duration, Duration),
    work: impl FnOnce(&mut Connected) -> Result<T> + Send + 'static,
) -> Result<T> {
    let (said, connected) = tokio::sync::oneshot::channel();
    let task = tokio::task::spawn_blocking(move || work(&mut Connected(Some(said))));
    // Work that ends (or fails) before it connects drops the sender: no wait.
    if tokio::time::timeout(connect, connected).await.is_err() {
        return Err(Error::ConnectTimeout(connect));
    }
    match tokio::time::timeout(read, task).await {
        Err(_) => Err(Error::ReadTimeout(read)),
        Ok(joined) => joined.map_err(|e| Error::Adbc {
            driver: driver.to_owned(),
            message: e.to_string(),
            status: None,
            sqlstate: None,
        })?,
    }
}

/// Connects and runs the SQL `sql` writes in the connection's dialect,
/// saying when it is connected.
fn query(
    adbc: &Adbc,
    sql: impl FnOnce(Option<Dialect>) -> Result<String>,
    connected: &mut Connected,
) -> Result<Running> {
    let driver = adbc.driver.as_str();
    let (mut connection, dialect) = connect(adbc)?;
    connected.done();
    let sql = sql(dialect)?;
    tracing::debug!(driver, statement = %sql, "ADBC query");
    let mut statement = statement(adbc, &mut connection, "prepare a statement")?;
    statement
        .set_sql_query(&sql)
        .map_err(|e| adbc_error(driver, "prepare the query", &e))?;
    let reader = statement
        .execute()
        .map_err(|e| adbc_error(driver, "run the query", &e))?;
    Ok(Running {
        reader,
        _statement: statement,
        _connection: connection,
    })
}

/// How identifiers are quoted in `dialect` (ANSI double quotes when it is
/// unknown).
fn quote_of(dialect: Option<Dialect>) -> char {
    dialect.map_or('"', Dialect::quote)
}

/// The `FROM` clause of a model.
fn from(model: &Model, quote: char) -> String {
    match model {
        Model::Table(table) => crate::columns::quote_ident(table, quote),
        Model::Query(query) => format!("({}) AS retl_q", crate::columns::nestable(query)),
    }
}

/// `SELECT columns FROM model` in `dialect`, with cursor mode's condition
/// and the key table's anti-join (`diff: warehouse`) if there are; both
/// need the dialect known.
fn select(spec: &SourceSpec, dialect: Option<Dialect>) -> Result<String> {
    let driver = spec.adbc.as_ref().map_or("", |a| a.driver.as_str());
    let quote = quote_of(dialect);
    let mut from = from(&spec.model, quote);
    let mut columns: Vec<String> = spec
        .columns
        .iter()
        .map(|c| quote_column(c, quote))
        .collect();
    let mut conditions = Vec::new();
    let mut qualify = String::new();
    if let Some(anti) = &spec.anti_join {
        Dialect::required(dialect, driver, "source.diff: warehouse")?;
        let (joined, prefix, condition) =
            crate::cursor::anti_joined(&from, &mut columns, anti, quote);
        (from, qualify) = (joined, prefix);
        conditions.push(condition);
    }
    if let Some(since) = &spec.since {
        Dialect::required(dialect, driver, "cursor mode (source.incremental)")?;
        let value = literal(&since.from).ok_or_else(|| Error::Decode {
            column: since.column.clone(),
            message: format!(
                "the cursor value `{}` holds characters other than a number's or a time's, which retl does not write into an ADBC source's SQL; use a timestamp or integer cursor column",
                since.from
            ),
        })?;
        let column = quote_column(&since.column, quote);
        conditions.insert(0, format!("{qualify}{column} >= {value}"));
    }
    Ok(crate::cursor::assemble(&columns, &from, &conditions))
}

/// A cursor value as an SQL literal every ADBC dialect reads, or `None`.
///
/// ADBC drivers bind parameters each in their own placeholder syntax, so the
/// value is written into the SQL, and only values that cannot be anything
/// but data are: an integer's digits; a time as an untyped string in UTC
/// (`'2026-11-30T10:00:00.000000Z'`), which takes the column's type (a
/// timestamp with or without a zone, a date); a text cursor (SQLite's times)
/// only when it is digits and `-:. TZ+` alone. No quote or backslash, so
/// no dialect's escaping rules matter.
fn literal(value: &crate::CursorValue) -> Option<String> {
    use crate::CursorValue;
    match value {
        CursorValue::Int(n) => Some(n.to_string()),
        CursorValue::Time(t) => Some(format!(
            "'{}'",
            t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        )),
        CursorValue::Text(text)
            if !text.is_empty()
                && text.chars().all(|c| {
                    c.is_ascii_digit() || matches!(c, '-' | ':' | '.' | ' ' | 'T' | 'Z' | '+')
                }) =>
        {
            Some(format!("'{text}'"))
        }
        CursorValue::Text(_) => None,
    }
}

/// What retl reads a column of `data_type` as, or `None` if it cannot.
fn reads_as(data_type: &DataType) -> Option<DataType> {
    use DataType as T;
    Some(match data_type {
        T::Boolean
        | T::Int8
        | T::Int16
        | T::Int32
        | T::Int64
        | T::UInt8
        | T::UInt16
        | T::UInt32
        | T::UInt64
        | T::Float32
        | T::Float64
        | T::Utf8
        | T::Binary
        | T::Date32 => data_type.clone(),
        T::LargeUtf8 | T::Utf8View | T::Decimal128(_, _) | T::Decimal256(_, _) => T::Utf8,
        T::LargeBinary => T::Binary,
        T::Timestamp(_, _) => T::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
        // A list of text or integers: its JSON text (see `list_json`).
        T::List(item) | T::LargeList(item)
            if matches!(
                item.data_type(),
                T::Utf8 | T::LargeUtf8 | T::Int32 | T::Int64
            ) =>
        {
            T::Utf8
        }
        _ => return None,
    })
}

/// The schema retl reads from the driver's `schema`, with each column's
/// type as the driver gives it; every column it cannot read, at once.
fn plan(spec: &SourceSpec, schema: &Schema) -> Result<(SchemaRef, Vec<(String, String)>)> {
    if schema.fields().is_empty() {
        // Not "available columns: " with nothing after: the driver said nothing.
        return Err(Error::Adbc {
            driver: spec.adbc.as_ref().map_or_else(String::new, |a| a.driver.clone()),
            message: "the driver returned no columns for the model (its result came back without a schema: check the model's SQL and the driver's permissions to read it)".to_owned(),
            status: None,
            sqlstate: None,
        });
    }
    let mut fields = Vec::new();
    let mut problems = Vec::new();
    let mut types = Vec::new();
    for column in &spec.columns {
        let Ok(field) = schema.field_with_name(column) else {
            problems.push(Error::ColumnMissing {
                column: column.clone(),
                available: schema.fields().iter().map(|f| f.name().clone()).collect(),
                named_at: spec.named_at(column),
            });
            continue;
        };
        let Some(data_type) =
            reads_as(field.data_type()).or_else(|| is_uuid(field).then_some(DataType::Utf8))
        else {
            problems.push(Error::UnsupportedType {
                column: column.clone(),
                db_type: field.data_type().to_string(),
            });
            continue;
        };
        let mut out = Field::new(column, data_type, true);
        if matches!(
            field.data_type(),
            DataType::Decimal128(_, _) | DataType::Decimal256(_, _)
        ) {
            out = out.with_metadata(std::collections::HashMap::from([(
                retl_diff::DECIMAL_TEXT.to_owned(),
                "true".to_owned(),
            )]));
        }
        if is_json(field) {
            out = out.with_metadata(std::collections::HashMap::from([(
                retl_mapping::JSON_TEXT.to_owned(),
                "true".to_owned(),
            )]));
        }
        fields.push(out);
        types.push((column.clone(), field.data_type().to_string()));
    }
    match problems.len() {
        0 => Ok((Arc::new(Schema::new(fields)), types)),
        1 => Err(problems.remove(0)),
        _ => Err(Error::Columns(problems)),
    }
}

/// Whether `field`'s text is JSON (a semi-structured column): Arrow's
/// canonical `arrow.json` extension, Snowflake's `VARIANT`, `OBJECT` and
/// `ARRAY` (its driver's `logicalType`), PostgreSQL's `json` and `jsonb`
/// (its driver's type name), and a list (read as its JSON, see
/// [`list_json`]).
fn is_json(field: &Field) -> bool {
    let meta = |key: &str| field.metadata().get(key).map(|v| v.to_ascii_lowercase());
    matches!(
        field.data_type(),
        DataType::List(_) | DataType::LargeList(_)
    ) || meta("ARROW:extension:name").as_deref() == Some("arrow.json")
        || matches!(
            meta("logicalType").as_deref(),
            Some("variant" | "object" | "array")
        )
        || matches!(
            meta("ADBC:postgresql:typname").as_deref(),
            Some("json" | "jsonb")
        )
}

/// A list of text or integers as its JSON text (`["a","b"]`); `None` for
/// a list of any other type.
fn list_json(array: &ArrayRef) -> Option<ArrayRef> {
    use arrow_array::cast::AsArray as _;
    let element = |values: &ArrayRef, i: usize| -> Option<serde_json::Value> {
        if values.is_null(i) {
            return Some(serde_json::Value::Null);
        }
        let as_int = |v: i64| Some(serde_json::Value::from(v));
        match values.data_type() {
            DataType::Utf8 => Some(values.as_string::<i32>().value(i).into()),
            DataType::LargeUtf8 => Some(values.as_string::<i64>().value(i).into()),
            DataType::Int64 => as_int(
                values
                    .as_primitive::<arrow_array::types::Int64Type>()
                    .value(i),
            ),
            DataType::Int32 => as_int(
                values
                    .as_primitive::<arrow_array::types::Int32Type>()
                    .value(i)
                    .into(),
            ),
            _ => None,
        }
    };
    let lists: Vec<Option<ArrayRef>> = match array.data_type() {
        DataType::List(_) => array.as_list::<i32>().iter().collect(),
        DataType::LargeList(_) => array.as_list::<i64>().iter().collect(),
        _ => return None,
    };
    let mut out = Vec::with_capacity(lists.len());
    for list in lists {
        out.push(match list {
            None => None,
            Some(values) => Some(
                serde_json::Value::Array(
                    (0..values.len())
                        .map(|i| element(&values, i))
                        .collect::<Option<Vec<_>>>()?,
                )
                .to_string(),
            ),
        });
    }
    Some(Arc::new(StringArray::from(out)))
}

/// Whether `field` holds UUIDs: Arrow's canonical `arrow.uuid` extension
/// (16 bytes), as PostgreSQL's driver sends a `uuid`. retl reads them as
/// their text, as its own PostgreSQL reader does, so a key hashes alike
/// through either.
fn is_uuid(field: &Field) -> bool {
    field.data_type() == &DataType::FixedSizeBinary(16)
        && field
            .metadata()
            .get("ARROW:extension:name")
            .is_some_and(|name| name == "arrow.uuid")
}

/// 16 bytes as a UUID's text (`8-4-4-4-12` lower-case hex digits).
fn uuid_text(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().fold(String::new(), |mut hex, b| {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
        hex
    });
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The exact text of a decimal of `scale` places.
fn decimal_text(value: i128, scale: i8) -> String {
    scaled_text(&value.to_string(), scale)
}

/// The exact text of the unscaled integer `digits` (with its sign) at
/// `scale` places: a 256-bit decimal (`BigQuery`'s `BIGNUMERIC`) too.
fn scaled_text(digits: &str, scale: i8) -> String {
    let (sign, digits) = match digits.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", digits),
    };
    if scale <= 0 {
        if digits == "0" {
            return "0".to_owned();
        }
        let zeros = "0".repeat(usize::try_from(-i32::from(scale)).unwrap_or(0));
        return format!("{sign}{digits}{zeros}");
    }
    let scale = usize::try_from(scale).unwrap_or(0);
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = digits.split_at(digits.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// `array` as `target` (see [`reads_as`]); `None` when the driver sent a
/// type that does not become `target` (a column whose type changed between
/// batches).
fn convert(array: &ArrayRef, target: &DataType) -> Option<ArrayRef> {
    if array.data_type() == target {
        return Some(array.clone());
    }
    if matches!(
        array.data_type(),
        DataType::List(_) | DataType::LargeList(_)
    ) && target == &DataType::Utf8
    {
        return list_json(array);
    }
    if array.data_type() == &DataType::FixedSizeBinary(16) && target == &DataType::Utf8 {
        // Only a UUID column is planned so ([`is_uuid`]).
        let bytes = array
            .as_any()
            .downcast_ref::<arrow_array::FixedSizeBinaryArray>()?;
        return Some(Arc::new(
            bytes
                .iter()
                .map(|v| v.map(uuid_text))
                .collect::<StringArray>(),
        ));
    }
    if reads_as(array.data_type()).as_ref() != Some(target) {
        return None;
    }
    Some(convert_to_read(array))
}

/// `array` as [`reads_as`] says retl reads it.
fn convert_to_read(array: &ArrayRef) -> ArrayRef {
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<Decimal128Array>() {
        let scale = a.scale();
        return Arc::new(
            a.iter()
                .map(|v| v.map(|v| decimal_text(v, scale)))
                .collect::<StringArray>(),
        );
    }
    if let Some(a) = any.downcast_ref::<arrow_array::Decimal256Array>() {
        let scale = a.scale();
        return Arc::new(
            a.iter()
                .map(|v| v.map(|v| scaled_text(&v.to_string(), scale)))
                .collect::<StringArray>(),
        );
    }
    if let Some(a) = any.downcast_ref::<LargeStringArray>() {
        return Arc::new(a.iter().collect::<StringArray>());
    }
    if let Some(a) = any.downcast_ref::<StringViewArray>() {
        return Arc::new(a.iter().collect::<StringArray>());
    }
    if let Some(a) = any.downcast_ref::<LargeBinaryArray>() {
        return Arc::new(a.iter().collect::<arrow_array::BinaryArray>());
    }
    if let DataType::Timestamp(unit, _) = array.data_type() {
        use arrow_array::cast::AsArray as _;
        use arrow_array::types::{
            TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
        };
        // Zoned timestamps hold UTC instants; unzoned ones are taken as UTC.
        let micros: TimestampMicrosecondArray = match unit {
            TimeUnit::Second => array
                .as_primitive::<TimestampSecondType>()
                .unary_opt(|v| v.checked_mul(1_000_000)),
            TimeUnit::Millisecond => array
                .as_primitive::<TimestampMillisecondType>()
                .unary(|v| v * 1_000),
            TimeUnit::Microsecond => array
                .as_primitive::<arrow_array::types::TimestampMicrosecondType>()
                .clone(),
            TimeUnit::Nanosecond => array
                .as_primitive::<TimestampNanosecondType>()
                .unary(|v| v.div_euclid(1_000)),
        };
        return Arc::new(micros.with_timezone("UTC"));
    }
    unreachable!("reads_as admits no other conversion: {}", array.data_type())
}

/// A batch of the driver's, as retl reads it.
fn shape(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| {
            let array = batch
                .column_by_name(field.name())
                .ok_or_else(|| Error::Decode {
                    column: field.name().clone(),
                    message: "missing from a batch the driver sent".to_owned(),
                })?;
            convert(array, field.data_type()).ok_or_else(|| Error::Decode {
                column: field.name().clone(),
                message: format!(
                    "the driver sent {} in a column it first described as becoming {}",
                    array.data_type(),
                    field.data_type()
                ),
            })
        })
        .collect::<Result<_>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::Decode {
        column: String::new(),
        message: e.to_string(),
    })
}

/// Blocking: connects and works out the schema of `select` (`retl check`)
/// without reading a row; but SQLite's driver types columns by their values
/// (an empty result's columns all read as Int64), so it gets one row to type
/// them by. A run plans from its own result's schema.
fn describe(
    spec: &SourceSpec,
    adbc: &Adbc,
    connected: &mut Connected,
) -> Result<(SchemaRef, Vec<(String, String)>)> {
    let running = query(
        adbc,
        |dialect| {
            let select = select(spec, dialect)?;
            Ok(if dialect == Some(Dialect::Sqlite) {
                format!("SELECT * FROM ({select}) AS retl_d LIMIT 1")
            } else {
                format!("SELECT * FROM ({select}) AS retl_d WHERE 1 = 0")
            })
        },
        connected,
    )?;
    plan(spec, &running.reader.schema())
}

impl Adbc {
    /// This source with its dialect known where it can be: the one
    /// configured, else the one of the vendor name the driver reports
    /// (which takes a connection, bounded by `limits`: to connect, then
    /// to answer).
    pub async fn resolved(&self, limits: (Duration, Duration)) -> Result<Adbc> {
        if self.dialect.is_some() {
            return Ok(self.clone());
        }
        let adbc = self.clone();
        let dialect = bounded(&self.driver, limits, move |connected| {
            let (_connection, dialect) = connect(&adbc)?;
            connected.done();
            Ok(dialect)
        })
        .await?;
        Ok(Adbc {
            dialect,
            ..self.clone()
        })
    }
}

impl Source {
    /// Connects through the ADBC driver, checks the model's columns and
    /// types, and starts reading on a blocking thread.
    pub(crate) async fn open_adbc(spec: &SourceSpec, adbc: &Adbc) -> Result<Source> {
        let (spec_c, adbc_c) = (spec.clone(), adbc.clone());
        // The query runs first: its own result's schema is the plan.
        let limits = (spec.connect_timeout, spec.read_timeout);
        let (running, schema, types) = bounded(&adbc.driver, limits, move |connected| {
            let running = query(&adbc_c, |dialect| select(&spec_c, dialect), connected)?;
            let (schema, types) = plan(&spec_c, &running.reader.schema())?;
            Ok::<_, Error>((running, schema, types))
        })
        .await?;
        let (adbc, shaped) = (adbc.clone(), schema.clone());
        let read_timeout = spec.read_timeout;
        Ok(Source::start(schema, types, move |tx| async move {
            // The driver's calls run on a blocking thread and hand each
            // batch over one at a time; the wait for the next is bounded by
            // the read timeout (the time the run takes with a batch does
            // not count: the thread waits to hand the next over then).
            let (batches, mut next) = tokio::sync::mpsc::channel(1);
            let driver = adbc.driver.clone();
            let reading = tokio::task::spawn_blocking(move || {
                let Running {
                    reader,
                    _statement,
                    _connection,
                } = running;
                for batch in reader {
                    let batch = batch
                        .map_err(|e| Error::Adbc {
                            driver: adbc.driver.clone(),
                            message: format!("read a batch: {e}"),
                            status: None,
                            sqlstate: None,
                        })
                        .and_then(|batch| shape(&batch, &shaped));
                    let failed = batch.is_err();
                    if batches.blocking_send(batch).is_err() || failed {
                        // The run stopped reading, or the read failed.
                        return;
                    }
                }
            });
            loop {
                match tokio::time::timeout(read_timeout, next.recv()).await {
                    // The driver's call is left to end on its thread.
                    Err(_) => return Err(Error::ReadTimeout(read_timeout)),
                    Ok(None) => break,
                    Ok(Some(batch)) => {
                        if tx.send(Ok((batch?, Vec::new()))).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
            reading.await.map_err(|e| joined(&driver, &e))
        }))
    }

    /// [`Source::inspect`] through ADBC: the schema, and `COUNT(*)` if asked.
    pub(crate) async fn inspect_adbc(
        spec: &SourceSpec,
        adbc: &Adbc,
        count_rows: bool,
    ) -> Result<crate::Inspection> {
        let limits = (spec.connect_timeout, spec.read_timeout);
        let (spec, adbc) = (spec.clone(), adbc.clone());
        let driver = adbc.driver.clone();
        bounded(&driver, limits, move |connected| {
            let (schema, columns) = describe(&spec, &adbc, connected)?;
            let rows = if count_rows {
                let model = spec.model.clone();
                let sql = move |dialect| {
                    Ok(format!(
                        "SELECT COUNT(*) AS n FROM {}",
                        from(&model, quote_of(dialect))
                    ))
                };
                let mut running = query(&adbc, sql, &mut Connected::unbounded())?;
                let batch = running
                    .reader
                    .next()
                    .transpose()
                    .map_err(|e| Error::Adbc {
                        driver: adbc.driver.clone(),
                        message: format!("count the rows: {e}"),
                        status: None,
                        sqlstate: None,
                    })?
                    .ok_or_else(|| Error::Adbc {
                        driver: adbc.driver.clone(),
                        message: "count the rows: no answer".to_owned(),
                        status: None,
                        sqlstate: None,
                    })?;
                Some(count_of(batch.column(0)))
            } else {
                None
            };
            Ok(crate::Inspection {
                schema,
                columns,
                rows,
            })
        })
        .await
    }
}

/// A connection that writes: one value back at a time (`writeback`), and
/// the key table's statements (`diff: warehouse`). Values are bound as
/// parameters, never written into the SQL, each in the dialect's own
/// placeholder ([`Dialect::placeholder`]).
pub struct Updater {
    adbc: Adbc,
    dialect: Option<Dialect>,
    connection: std::sync::Arc<std::sync::Mutex<ManagedConnection>>,
}

impl Updater {
    /// Connects through the driver (on a blocking thread).
    pub(crate) async fn connect(adbc: &Adbc) -> Result<Updater> {
        let config = adbc.clone();
        let (connection, dialect) = tokio::task::spawn_blocking(move || connect(&config))
            .await
            .map_err(|e| joined(&adbc.driver, &e))??;
        Ok(Updater {
            adbc: adbc.clone(),
            dialect,
            connection: Arc::new(std::sync::Mutex::new(connection)),
        })
    }

    /// Runs `sql` on the connection (a blocking thread), with `params`
    /// bound (each row of the batch one execution, where the driver
    /// executes a bound batch row by row); `what` says what it was for.
    /// The rows it changed (0 when the driver does not say).
    pub(crate) async fn execute(
        &self,
        sql: String,
        params: Option<RecordBatch>,
        what: &'static str,
    ) -> Result<u64> {
        // What it is for, not its text: Spark's statements carry the keys
        // themselves as literals, and keys are customers' data.
        tracing::debug!(
            driver = %self.adbc.driver,
            what,
            bound_rows = params.as_ref().map_or(0, RecordBatch::num_rows),
            "ADBC statement"
        );
        self.on_statement(what, move |statement, error| {
            statement.set_sql_query(&sql).map_err(error)?;
            if let Some(params) = params {
                statement.bind(params).map_err(error)?;
            }
            let updated = statement.execute_update().map_err(error)?;
            Ok(updated.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
        })
        .await
    }

    /// Runs `work` on a new statement of the connection, on a blocking
    /// thread; `error` makes a driver's error retl's, saying `what` it was.
    async fn on_statement<T: Send + 'static>(
        &self,
        what: &'static str,
        work: impl FnOnce(&mut ManagedStatement, &dyn Fn(adbc_core::error::Error) -> Error) -> Result<T>
        + Send
        + 'static,
    ) -> Result<T> {
        let (adbc, connection) = (self.adbc.clone(), self.connection.clone());
        tokio::task::spawn_blocking(move || {
            let mut connection = connection
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut statement = statement(&adbc, &mut connection, what)?;
            work(&mut statement, &|e| adbc_error(&adbc.driver, what, &e))
        })
        .await
        .map_err(|e| joined(&self.adbc.driver, &e))?
    }

    /// Bulk-ingests `batch` into a new table `table` (in `schema`, unless
    /// empty) through the driver's ingest (ADBC `adbc.ingest.*`): the
    /// driver's fastest way in, its columns typed from the batch's.
    pub(crate) async fn ingest(
        &self,
        schema: &str,
        table: &str,
        batch: RecordBatch,
        what: &'static str,
    ) -> Result<()> {
        use adbc_core::options::{IngestMode, OptionStatement};
        let (schema, table) = (schema.to_owned(), table.to_owned());
        self.on_statement(what, move |statement, error| {
            statement
                .set_option(
                    OptionStatement::TargetTable,
                    OptionValue::from(table.as_str()),
                )
                .map_err(error)?;
            if !schema.is_empty() {
                statement
                    .set_option(
                        OptionStatement::TargetDbSchema,
                        OptionValue::from(schema.as_str()),
                    )
                    .map_err(error)?;
            }
            statement
                .set_option(OptionStatement::IngestMode, IngestMode::Create.into())
                .map_err(error)?;
            statement.bind(batch).map_err(error)?;
            statement.execute_update().map_err(error)?;
            Ok(())
        })
        .await
    }

    /// Runs the query `sql` and reads its whole result (small results:
    /// a count, a lookup, a schema).
    pub(crate) async fn rows(&self, sql: String, what: &'static str) -> Result<Vec<RecordBatch>> {
        let driver = self.adbc.driver.clone();
        tracing::debug!(driver, statement = %sql, what, "ADBC query");
        self.on_statement(what, move |statement, error| {
            statement.set_sql_query(&sql).map_err(error)?;
            let reader = statement.execute().map_err(error)?;
            let schema = reader.schema();
            let mut batches = reader
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::Adbc {
                    driver: driver.clone(),
                    message: format!("{what}: {e}"),
                    status: None,
                    sqlstate: None,
                })?;
            if batches.is_empty() {
                batches.push(RecordBatch::new_empty(schema));
            }
            Ok(batches)
        })
        .await
    }

    /// The one integer the query `sql` answers (a `COUNT(*)`).
    pub(crate) async fn count(&self, sql: String, what: &'static str) -> Result<u64> {
        let batches = self.rows(sql, what).await?;
        Ok(batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .map_or(0, |b| count_of(b.column(0))))
    }

    /// `UPDATE table SET column = value WHERE key_column = key`; the number
    /// of rows updated (0 when the driver does not say).
    pub(crate) async fn set_text(
        &mut self,
        table: &str,
        key_column: &str,
        column: &str,
        key: &crate::KeyValue,
        value: &str,
    ) -> Result<u64> {
        let dialect = Dialect::required(self.dialect, &self.adbc.driver, "writeback")?;
        let quote = dialect.quote();
        let sql = format!(
            "UPDATE {} SET {} = {} WHERE {} = {}",
            crate::columns::quote_ident(table, quote),
            quote_column(column, quote),
            dialect.placeholder(1),
            quote_column(key_column, quote),
            dialect.placeholder(2),
        );
        let key: ArrayRef = match key {
            crate::KeyValue::Int(i) => Arc::new(arrow_array::Int64Array::from(vec![*i])),
            crate::KeyValue::Text(t) => Arc::new(StringArray::from(vec![t.as_str()])),
        };
        let params = RecordBatch::try_from_iter([
            (
                "value",
                Arc::new(StringArray::from(vec![value])) as ArrayRef,
            ),
            ("key", key),
        ])
        .map_err(|e| Error::Adbc {
            driver: self.adbc.driver.clone(),
            message: e.to_string(),
            status: None,
            sqlstate: None,
        })?;
        self.execute(sql, Some(params), "write back").await
    }
}

/// A blocking task that did not end (it panicked or was cancelled).
fn joined(driver: &str, e: &tokio::task::JoinError) -> Error {
    Error::Adbc {
        driver: driver.to_owned(),
        message: e.to_string(),
        status: None,
        sqlstate: None,
    }
}

/// The database's own clock through ADBC (`SELECT CURRENT_TIMESTAMP`): a
/// timestamp, or text such as SQLite's `YYYY-MM-DD HH:MM:SS` (UTC).
pub(crate) async fn warehouse_now(
    adbc: &Adbc,
    limits: (Duration, Duration),
) -> Result<chrono::DateTime<chrono::Utc>> {
    use arrow_array::cast::AsArray as _;
    let adbc = adbc.clone();
    let driver = adbc.driver.clone();
    let unreadable = |what: String| Error::Decode {
        column: "CURRENT_TIMESTAMP".to_owned(),
        message: what,
    };
    let column = bounded(&driver, limits, move |connected| {
        let now = |_| Ok("SELECT CURRENT_TIMESTAMP AS now".to_owned());
        let mut running = query(&adbc, now, connected)?;
        match running.reader.next() {
            Some(Ok(batch)) if batch.num_rows() > 0 => Ok(batch.column(0).clone()),
            Some(Err(e)) => Err(Error::Adbc {
                driver: adbc.driver.clone(),
                message: format!("read the clock: {e}"),
                status: None,
                sqlstate: None,
            }),
            _ => Err(Error::Adbc {
                driver: adbc.driver.clone(),
                message: "read the clock: no answer".to_owned(),
                status: None,
                sqlstate: None,
            }),
        }
    })
    .await?;
    let target = DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")));
    match column.data_type() {
        DataType::Timestamp(_, _) => {
            let micros = convert(&column, &target)
                .ok_or_else(|| unreadable(format!("a {}", column.data_type())))?;
            let value = micros
                .as_primitive::<arrow_array::types::TimestampMicrosecondType>()
                .value(0);
            chrono::DateTime::from_timestamp_micros(value)
                .ok_or_else(|| unreadable(format!("{value} µs is out of range")))
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = convert(&column, &DataType::Utf8)
                .ok_or_else(|| unreadable(format!("a {}", column.data_type())))?;
            let text = text.as_string::<i32>().value(0).to_owned();
            chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f")
                .map(|t| t.and_utc())
                .or_else(|_| chrono::DateTime::parse_from_rfc3339(&text).map(|t| t.to_utc()))
                .map_err(|e| unreadable(format!("`{text}`: {e}")))
        }
        other => Err(unreadable(format!("a {other}, not a time"))),
    }
}

/// The one integer a `COUNT(*)` answers, whatever integer or decimal type
/// the driver gives it.
fn count_of(array: &ArrayRef) -> u64 {
    use arrow_array::cast::AsArray as _;
    use arrow_array::types::{Int32Type, Int64Type, UInt64Type};
    if array.is_empty() || array.is_null(0) {
        return 0;
    }
    match array.data_type() {
        DataType::Int64 => u64::try_from(array.as_primitive::<Int64Type>().value(0)).unwrap_or(0),
        DataType::Int32 => u64::try_from(array.as_primitive::<Int32Type>().value(0)).unwrap_or(0),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(0),
        DataType::Decimal128(_, _) => array
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .and_then(|a| u64::try_from(a.value(0)).ok())
            .unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod resolve_tests {
    use super::Adbc;

    fn adbc(driver: &str) -> Adbc {
        Adbc::new(driver.to_owned(), Vec::new())
    }

    #[test]
    fn a_relative_driver_path_is_the_projects_and_a_name_stays_a_name() {
        let project = std::path::Path::new("/srv/shop");
        for (given, resolved) in [
            ("./drivers/libduck.so", "/srv/shop/drivers/libduck.so"),
            ("drivers/libduck.so", "/srv/shop/drivers/libduck.so"),
            ("libduck.so", "libduck.so"),
            ("/opt/adbc/libpg.so", "/opt/adbc/libpg.so"),
            ("snowflake", "snowflake"),
        ] {
            let mut a = adbc(given);
            a.resolve_driver(project);
            assert_eq!(a.driver, resolved, "{given}");
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_result_without_columns_says_the_driver_returned_none() {
        let spec = SourceSpec::new(
            "adbc:x",
            crate::Model::Table("orders".into()),
            vec!["id".into()],
        );
        let error = plan(&spec, &Schema::empty()).unwrap_err().to_string();
        assert!(error.contains("the driver returned no columns"), "{error}");
        assert!(!error.contains("available columns"), "{error}");
    }
    use super::*;

    #[test]
    fn decimals_become_their_exact_text() {
        type I256 =
            <arrow_array::types::Decimal256Type as arrow_array::types::ArrowPrimitiveType>::Native;
        assert_eq!(decimal_text(12_345, 2), "123.45");
        assert_eq!(decimal_text(-5, 3), "-0.005");
        assert_eq!(decimal_text(7, 0), "7");
        assert_eq!(
            decimal_text(i128::from(i64::MAX) * 10, 0),
            "92233720368547758070"
        );
        assert_eq!(decimal_text(12, -2), "1200");
        assert_eq!(decimal_text(0, 2), "0.00");

        let big = arrow_array::Decimal256Array::from(vec![
            I256::from_string("-123456789012345678901234567890123456789012345").unwrap(),
        ])
        .with_precision_and_scale(76, 38)
        .unwrap();
        let out = convert(&(Arc::new(big) as ArrayRef), &DataType::Utf8).unwrap();
        assert_eq!(
            out.as_any().downcast_ref::<StringArray>().unwrap().value(0),
            "-1234567.89012345678901234567890123456789012345"
        );
    }

    #[test]
    fn uuids_become_their_text() {
        let bytes: Vec<u8> = (0..16).collect();
        assert_eq!(uuid_text(&bytes), "00010203-0405-0607-0809-0a0b0c0d0e0f");
        let array: ArrayRef = Arc::new(
            arrow_array::FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                vec![Some(bytes.as_slice()), None].into_iter(),
                16,
            )
            .unwrap(),
        );
        let out = convert(&array, &DataType::Utf8).unwrap();
        let out = out.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(out.value(0), "00010203-0405-0607-0809-0a0b0c0d0e0f");
        assert!(out.is_null(1));
    }

    #[test]
    fn timestamps_of_every_unit_become_utc_microseconds() {
        let ns: ArrayRef = Arc::new(arrow_array::TimestampNanosecondArray::from(vec![
            Some(1_500_000_999),
            None,
        ]));
        let target = DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")));
        let out = convert(&ns, &target).unwrap();
        let out = out
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(out.value(0), 1_500_000);
        assert!(out.is_null(1));
        assert_eq!(out.data_type(), &target);
    }

    #[test]
    fn cursor_values_are_written_only_when_they_can_only_be_data() {
        use crate::CursorValue;
        assert_eq!(literal(&CursorValue::Int(-42)).as_deref(), Some("-42"));
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-30T10:00:00.5Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            literal(&CursorValue::Time(t)).as_deref(),
            Some("'2026-11-30T10:00:00.500000Z'")
        );
        assert_eq!(
            literal(&CursorValue::Text("2026-11-30 10:00:00".into())).as_deref(),
            Some("'2026-11-30 10:00:00'")
        );
        for hostile in ["x' OR 1=1 --", "2026\'", "", "a"] {
            assert_eq!(
                literal(&CursorValue::Text(hostile.into())),
                None,
                "{hostile}"
            );
        }
    }

    #[test]
    fn the_dialect_quotes_never_the_drivers_path() {
        let spec = |driver: &str| SourceSpec {
            adbc: Some(Adbc::new(driver, Vec::new())),
            ..SourceSpec::new(
                "adbc:x",
                Model::Table("project.dataset.orders".into()),
                vec!["order_id".into()],
            )
        };
        assert_eq!(
            select(&spec("bigquery"), Some(Dialect::Bigquery)).unwrap(),
            "SELECT `order_id` FROM `project`.`dataset`.`orders`"
        );
        // A path with "spark" in it says nothing: the dialect does.
        let path = "/opt/spark/libadbc_driver_flightsql.so";
        assert_eq!(
            select(&spec(path), None).unwrap(),
            r#"SELECT "order_id" FROM "project"."dataset"."orders""#
        );
        assert_eq!(
            select(&spec(path), Some(Dialect::Databricks)).unwrap(),
            "SELECT `order_id` FROM `project`.`dataset`.`orders`"
        );
    }

    #[test]
    fn the_anti_join_and_the_cursor_need_a_dialect_and_read_in_it() {
        let mut spec = SourceSpec {
            adbc: Some(Adbc::new("libx.so", Vec::new())),
            ..SourceSpec::new(
                "adbc:x",
                Model::Table("shop.orders".into()),
                vec!["id".into(), "email".into()],
            )
        };
        spec.anti_join = Some(crate::AntiJoin {
            table: "`retl`.`k_orders_0a`".into(),
            columns: vec!["id".into()],
            bytes: false,
        });
        spec.since = Some(crate::Since {
            column: "id".into(),
            from: crate::CursorValue::Int(7),
        });
        let error = select(&spec, None).unwrap_err().to_string();
        assert!(error.contains("source.adbc.dialect"), "{error}");
        assert_eq!(
            select(&spec, Some(Dialect::Databricks)).unwrap(),
            "SELECT `id`, `email` FROM `shop`.`orders` AS retl_s WHERE `id` >= 7 AND NOT EXISTS (SELECT 1 FROM `retl`.`k_orders_0a` AS retl_k WHERE retl_k.`id` = retl_s.`id`)"
        );
    }

    #[test]
    fn the_options_values_never_reach_debug() {
        let adbc = Adbc::new("snowflake", vec![("password".into(), "hunter2".into())]);
        let shown = format!("{adbc:?}");
        assert!(
            shown.contains("password") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
