//! A kind of destination, as the engine drives it: what a destination
//! file's `type:` names.
//!
//! A destination crate implements [`Kind`] once. The engine reads the
//! destination file and each activation's `target:` and `mapping:` through
//! it, builds one request per new row with its [`Rows`], sends them through
//! its [`Sender`], and asks it for `retl check`'s healthcheck. Nothing else
//! of a destination is known outside its crate.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use retl_config::{Map, Node, Reader, join};
use retl_mapping::FieldSet;
use serde::Serialize;

use crate::{Policy, Sender};

/// How a destination's failed requests are retried (its `retry:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Requests per row within one run for transient failures (the first included).
    pub tries_per_run: u32,
    /// How long a row may keep failing transiently (5xx, timeouts, lost
    /// connections), counted from its first failure, before it is given up
    /// (`given_up`, never `rejected`: the data was not at fault).
    pub give_up_after: Duration,
    /// 429s a run may wait out before they count as failures of their rows.
    pub rate_limited_retries: u32,
    /// The first backoff; it doubles with each retry of a row, with jitter.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            tries_per_run: 3,
            give_up_after: Duration::from_hours(7 * 24),
            rate_limited_retries: 100,
            backoff: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// The part [`send_row`](crate::send_row) follows within one run.
    pub fn policy(&self) -> Policy {
        Policy {
            tries_per_run: self.tries_per_run,
            backoff: self.backoff,
        }
    }
}

/// One row's request, built.
#[derive(Debug, Clone, PartialEq)]
pub struct Built<R> {
    /// The request.
    pub request: R,
    /// The reference the run log and the ledger keep for the row (empty when
    /// the destination has none).
    pub reference: String,
    /// What the row's run-log row says of how its request was made.
    pub notes: Vec<String>,
    /// The person's email, if the request has one: the run log keeps only a
    /// keyed hash of it, to find the person's rows by email.
    pub contact: Option<String>,
}

/// Why one row's request cannot be built: the row is `rejected`, with this
/// as its reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", field.map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct Rejected {
    /// The destination field at fault, if one is.
    pub field: Option<&'static str>,
    /// What is wrong, naming the column (never the value of a personal field).
    pub reason: String,
}

impl Rejected {
    /// A rejection at `field`.
    pub fn at(field: &'static str, reason: impl Into<String>) -> Rejected {
        Rejected {
            field: Some(field),
            reason: reason.into(),
        }
    }

    /// A rejection of the whole request.
    pub fn whole(reason: impl Into<String>) -> Rejected {
        Rejected {
            field: None,
            reason: reason.into(),
        }
    }
}

/// Builds the requests of one run: an activation's mapping bound to the
/// columns its source gives.
pub trait Rows: Send + Sync + 'static {
    /// One row's request.
    type Request: Send + Sync + 'static;

    /// The request of `row`, checked against every rule the destination
    /// enforces that can be checked without asking it; `Err` says why the
    /// row is rejected (the field and the value's problem).
    fn build(&self, batch: &RecordBatch, row: usize) -> Result<Built<Self::Request>, Rejected>;

    /// The reference of a row, if it has one (for the run log of a row
    /// rejected before its request is built).
    fn reference(&self, batch: &RecordBatch, row: usize) -> Option<String>;

    /// The request as JSON, exactly as it would be sent (for a preview).
    fn body(&self, request: &Self::Request) -> serde_json::Value;

    /// What the run log keeps of a sent request: what was sent, without
    /// the person's name or email (none by default).
    fn recorded(&self, request: &Self::Request) -> Option<serde_json::Value> {
        let _ = request;
        None
    }

    /// Where each value of `body` (built from `row`) came from, by JSON path
    /// (for a preview): `row:COLUMN`, or the configuration layer that set it.
    fn origins(
        &self,
        batch: &RecordBatch,
        row: usize,
        body: &serde_json::Value,
    ) -> BTreeMap<String, String>;
}

/// What `retl check` found for one destination: every problem, and what it
/// verified, for people (`lines`) and for `--json` (`fields`, beside
/// `problems`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// What was verified, a line each (`token minted`, …).
    #[serde(skip)]
    pub lines: Vec<String>,
    /// The same, as JSON fields of the check's object.
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Every problem found.
    pub problems: Vec<String>,
    /// Problems of one activation's own settings (a template id its
    /// `target:` names that does not exist), by the index of its delivery
    /// in what [`Kind::check`] was given: reported at the activation, with
    /// its position.
    #[serde(skip)]
    pub deliveries: Vec<(usize, String)>,
}

/// A kind of destination: one implementation per destination crate, chosen
/// by a destination file's `type:`.
pub trait Kind: fmt::Debug + Clone + Send + Sync + 'static {
    /// What `type:` names it.
    const TYPE: &'static str;
    /// What one activation sends through it: its `target:` and `mapping:`.
    type Delivery: fmt::Debug + Clone + Send + Sync + 'static;
    /// The requests of one run.
    type Rows: Rows<Request = <Self::Sender as Sender>::Request>;
    /// Sends them.
    type Sender: Sender;
    /// The fields of its `mapping:`.
    type Field: FieldSet;
    /// The field whose column identifies a row when the source names no
    /// key (the reference).
    const KEY_FIELD: Self::Field;

    /// What the destinations of this kind in one registry share (a token
    /// cache, rate limiters, a request observer): made once by the registry
    /// entry, handed to each destination it reads.
    type Context: Default + Send + Sync + 'static;

    /// Reads a destination file of this type (`name` already read) with the
    /// registry entry's `context`; every problem is reported to `r`.
    fn read(
        r: &mut Reader<'_>,
        doc: &Node<'_>,
        name: String,
        file: &Path,
        context: &std::sync::Arc<Self::Context>,
    ) -> Option<Self>;

    /// How much longer its requests wait for a rate window to open, if they
    /// do now (what a progress line says).
    fn waiting(&self) -> Option<Duration> {
        None
    }

    /// Hands `observer` every request of the destinations of `context` (the
    /// daemon's metrics); a kind that makes no HTTP request ignores it.
    fn observe_requests(context: &Self::Context, observer: crate::RequestObserver) {
        let _ = (context, observer);
    }

    /// Reads an activation's `target:` and `mapping:` for this destination;
    /// `writeback` says whether the activation writes a created URL back.
    fn read_delivery(
        &self,
        r: &mut Reader<'_>,
        activation: &Map<'_, '_>,
        file: &Path,
        writeback: bool,
    ) -> Option<Self::Delivery>;

    /// The JSON Schema of a destination file of this type.
    fn schema() -> serde_json::Value;

    /// The JSON Schema of an activation's `target:` for this type.
    fn target_schema() -> serde_json::Value;

    /// The JSON Schema of an activation's `mapping:` for this type.
    fn mapping_schema() -> serde_json::Value;

    /// Its name.
    fn name(&self) -> &str;

    /// The file it came from.
    fn file(&self) -> &Path;

    /// Its `limits:`, for all its activations.
    fn limits(&self) -> retl_config::limits::Limits;

    /// How long one request to it may take.
    fn request_timeout(&self) -> Duration;

    /// Requests in flight at once.
    fn concurrency(&self) -> usize;

    /// How failed requests are retried.
    fn retry(&self) -> RetryPolicy;

    /// `dedupe.within` of the destination (across its activations), if set:
    /// one invitation per customer (the request's contact) per this period.
    fn dedupe(&self) -> Option<Duration> {
        None
    }

    /// `delivery`'s mapping: each destination field and the source column
    /// it comes from, in catalogue order.
    fn mapping(delivery: &Self::Delivery) -> &[(Self::Field, String)];

    /// The source columns `delivery` reads, in mapping order (may repeat).
    fn mapped_columns(delivery: &Self::Delivery) -> Vec<&str> {
        Self::mapping(delivery)
            .iter()
            .map(|(_, column)| column.as_str())
            .collect()
    }

    /// The primary key when the source names none: the column mapped to
    /// [`KEY_FIELD`](Self::KEY_FIELD) (one row, one reference).
    fn default_key(delivery: &Self::Delivery) -> Vec<String> {
        Self::mapping(delivery)
            .iter()
            .filter(|(field, _)| *field == Self::KEY_FIELD)
            .map(|(_, column)| column.clone())
            .collect()
    }

    /// What `delivery` creates per row, as a word (part of an activation's
    /// source identity: two kinds of thing are two activations).
    fn creates(delivery: &Self::Delivery) -> &'static str;

    /// Where `delivery`'s rows go, as text a person can read and that
    /// holds no secret: for Trustpilot, the invitations host and the
    /// business unit. A settled key answers only for the identity it was
    /// settled against: a run whose identity differs from the one its
    /// activation's keys were settled against is refused until the change
    /// is confirmed (a state of its own, or a deliberate move).
    fn identity(&self, delivery: &Self::Delivery) -> String;

    /// Everything besides the row that shapes `delivery`'s requests, as
    /// stable text: a row rejected with one fingerprint is tried again when
    /// it changes. Encode it explicitly (named fields, a fixed order, a
    /// version), never from `Debug`.
    fn fingerprint(&self, delivery: &Self::Delivery) -> String;

    /// The fingerprint an older release made, if it differs, so that the
    /// rows it rejected stay rejected after an upgrade.
    fn legacy_fingerprint(&self, delivery: &Self::Delivery) -> Option<String> {
        let _ = delivery;
        None
    }

    /// Binds `delivery` to the columns of `schema` for a run starting `now`;
    /// `Err` says which mapped column does not fit.
    fn rows(
        &self,
        delivery: &Self::Delivery,
        schema: &Schema,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Self::Rows, retl_mapping::Error>;

    /// A sender for `delivery`'s requests (`token_cache`: where credentials
    /// may be kept between runs).
    fn sender(
        &self,
        delivery: &Self::Delivery,
        token_cache: Option<&Path>,
    ) -> Result<Self::Sender, <Self::Sender as Sender>::Error>;

    /// How long `requests` requests take at its pacing.
    fn estimate(&self, requests: u64) -> Duration;

    /// `retl check`'s healthcheck: credentials and what `deliveries` send to.
    fn check(&self, deliveries: &[&Self::Delivery]) -> impl Future<Output = Report> + Send;
}

/// Reads `mapping:` (field ← column) against a destination's field
/// catalogue `F`; every field in `required` must be mapped. Sorted in
/// catalogue order.
pub fn read_mapping<F: FieldSet>(
    r: &mut Reader<'_>,
    node: &Node<'_>,
    required: &[F],
) -> Option<Vec<(F, String)>> {
    let names = F::names();
    let map = r.map(node, "mapping", &names)?;
    let mut mapping = Vec::new();
    for (key, value) in map.entries() {
        let field = F::from_name(key).expect("keys were checked against the catalogue");
        if let Some(column) = r.string(value, &join("mapping", key)) {
            if column.is_empty() {
                r.problem(value, &join("mapping", key), "must name a column");
            } else {
                mapping.push((field, column));
            }
        } else if Reader::is_unset(Some(value)) {
            r.problem(value, &join("mapping", key), "must name a column");
        }
    }
    for field in required {
        if !mapping.iter().any(|(f, _)| f == field) {
            r.problem(
                map.node,
                &join("mapping", field.name()),
                format!(
                    "missing field `{}` (the source column it comes from)",
                    field.name()
                ),
            );
        }
    }
    let order = |f: &F| F::ALL.iter().position(|x| x == f);
    mapping.sort_by_key(|(f, _)| order(f));
    Some(mapping)
}

/// The JSON Schema of a `mapping:` over the field catalogue `F`.
pub fn mapping_schema<F: FieldSet>(required: &[F]) -> serde_json::Value {
    use retl_config::schema::{object, string};
    let required: Vec<&str> = required.iter().map(|f| f.name()).collect();
    object(
        "destination field <- source column",
        F::ALL
            .iter()
            .map(|f| (f.name(), string("the source column")))
            .collect(),
        &required,
    )
}
