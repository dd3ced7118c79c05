//! The classify phase, batch by batch: hash, look the keys up, decide per
//! row, map and validate the new ones. Rows settled before any request
//! (rejected, too old, changed after sending) are recorded here; the rest
//! are handed to the deliver phase as [`Pending`] rows. The batch's
//! classification, the one place a fate is applied, and the baseline's
//! recording read together.

use std::collections::{HashMap, HashSet};

use arrow_array::{Array as _, RecordBatch};
use retl_destination::{AnyRequest, BoxRows, Rows as _};
use retl_diff::{Entry, RowHash, Status, combine, hash_keys, hash_rows};
use retl_mapping::{cell_text, is_integer, parse_time};
use retl_source::KeyValue;
use retl_state::{Outcome, RowLog, RowOutcome};

use super::Run;
use super::fate::{Age, Facts, Fate, Ledger, Rejection, decide};
use super::sinks::Sinks;
use super::start::Taken;
use super::tally::{Event, Read};
use crate::config::{Activation, Destination};
use crate::{Error, Result};

/// The column indices a batch is read with.
pub(crate) struct Columns {
    /// The primary key's columns.
    pub key: Vec<usize>,
    /// The mapped columns, sorted by name (the content hash's order).
    pub content: Vec<usize>,
    /// The writeback's key column.
    pub writeback: Option<usize>,
    /// The `max_row_age` column.
    pub age: Option<usize>,
    /// The cursor column (`source.incremental.cursor`).
    pub cursor: Option<usize>,
}

impl Columns {
    /// Where an activation's columns are in the source's schema (the source
    /// reads every column the activation names).
    pub(crate) fn of(
        activation: &crate::config::Activation,
        schema: &arrow_schema::Schema,
    ) -> Columns {
        let index = |column: &str| {
            schema
                .index_of(column)
                .expect("the source reads every activation column")
        };
        let mut content_names = activation.delivery.mapped_columns();
        content_names.sort_unstable();
        Columns {
            key: activation.primary_key.iter().map(|c| index(c)).collect(),
            content: content_names.into_iter().map(index).collect(),
            writeback: activation.writeback.as_ref().map(|w| index(&w.key_column)),
            age: activation.max_row_age.as_ref().map(|m| index(&m.column)),
            cursor: activation
                .source
                .incremental
                .as_ref()
                .map(|i| index(&i.cursor)),
        }
    }
}

/// Whether a row the ledger holds (or is about to hold) settled, for good:
/// sent, baseline, too old or suppressed. Not a row whose delivery is
/// uncertain or in flight, which a resend may still send.
fn settled_by(fate: &Fate, ledger: &Ledger) -> bool {
    let settled = |status: Status| {
        matches!(
            status,
            Status::Sent | Status::Baseline | Status::TooOld | Status::Suppressed
        )
    };
    match (fate, ledger) {
        (Fate::TooOld, _) | (_, Ledger::Settled) => true,
        (Fate::AlreadySent | Fate::ChangedAfterSending { .. }, Ledger::Entry(entry)) => {
            entry.is_none_or(|e| settled(e.status))
        }
        _ => false,
    }
}

/// A row's cursor value (cursor mode), `None` when NULL.
fn cursor_value(
    batch: &RecordBatch,
    column: usize,
    row: usize,
) -> Option<retl_source::CursorValue> {
    use arrow_schema::DataType;
    use retl_source::CursorValue;
    let array = batch.column(column);
    let text = cell_text(array.as_ref(), row).ok()??;
    match array.data_type() {
        integer if is_integer(integer) => text.parse().ok().map(CursorValue::Int),
        DataType::Timestamp(_, _) | DataType::Date32 => {
            parse_time(&text).ok().map(CursorValue::Time)
        }
        _ => Some(CursorValue::Text(text.into_owned())),
    }
}

/// A row on its way to its destination, with its request.
pub(super) struct Pending {
    pub key: RowHash,
    pub content: RowHash,
    /// The content with what shapes the request: recorded for a rejection.
    pub request_hash: RowHash,
    pub row_key: String,
    pub reference: String,
    pub previous: Option<Entry>,
    pub request: AnyRequest,
    /// The row's `writeback.key_column` value.
    pub writeback_key: Option<KeyValue>,
    /// `diff: warehouse`: its key values, for the key table once settled.
    pub key_values: Option<Vec<KeyValue>>,
    /// What its run-log row says when it is sent (how its request was made).
    pub notes: Vec<String>,
    /// In a dry run: the request as JSON, and where each of its values came from.
    pub shown: Option<(
        serde_json::Value,
        std::collections::BTreeMap<String, String>,
    )>,
    /// Its cursor value (cursor mode).
    pub cursor: Option<retl_source::CursorValue>,
    /// The keyed hash of the person's email (see `retl_state::ContactKey`).
    pub contact: Option<String>,
    /// The hashes an older release kept for the same email (its domain in
    /// Unicode): dedupe looks them up too.
    pub legacy_contacts: Vec<String>,
    /// What the run log keeps of the request once sent ([`Rows::recorded`]).
    pub recorded: Option<serde_json::Value>,
}

impl Pending {
    /// Its run-log row with `outcome`, for the person's email to find.
    pub fn log(&self, outcome: RowOutcome, reason: Option<String>) -> RowLog {
        RowLog {
            contact_hash: self.contact.clone(),
            ..RowLog::new(
                self.row_key.as_str(),
                Some(&self.reference),
                outcome,
                reason,
            )
        }
    }
}

/// The primary-key values of a row, for the run log. The three things that
/// once all printed `NULL` stay apart: a NULL is `<NULL>`, a cell the source
/// could not decode (`problem` names its column) is `<unreadable>`, and a
/// real value that looks like either is quoted (`"<NULL>"`); the text `NULL`
/// is itself.
fn key_text(
    batch: &RecordBatch,
    key_columns: &[usize],
    row: usize,
    problem: Option<&String>,
) -> String {
    let part = |c: usize| match cell_text(batch.column(c).as_ref(), row) {
        Ok(Some(text)) if text.starts_with('<') && text.ends_with('>') => format!("{text:?}"),
        Ok(Some(text)) => text.into_owned(),
        Ok(None) => {
            let name = batch.schema_ref().field(c).name().clone();
            if problem.is_some_and(|p| p.starts_with(&format!("column `{name}`:"))) {
                "<unreadable>".to_owned()
            } else {
                "<NULL>".to_owned()
            }
        }
        Err(e) => format!("<{e}>"),
    };
    // One column, the common key: its text is the key's.
    if let [column] = key_columns {
        return part(*column);
    }
    let parts: Vec<String> = key_columns.iter().map(|&c| part(c)).collect();
    parts.join(", ")
}

/// What `max_row_age` says of a row, with the words for its run-log row.
struct AgeVerdict {
    age: Age,
    reason: Option<String>,
}

/// What is recorded for a batch: ledger outcomes, keys whose data changed
/// since they were settled, and run-log rows; committed together.
#[derive(Default)]
struct Records {
    outcomes: Vec<Recorded>,
    changed: Vec<(RowHash, RowHash)>,
    logs: Vec<RowLog>,
    /// `diff: warehouse`: the key values of the rows settled, for the key
    /// table once the rest is committed.
    settled: Vec<Option<Vec<KeyValue>>>,
}

/// A ledger outcome decided before any request.
struct Recorded {
    key: RowHash,
    /// The content (too old) or the request hash (rejected) to remember.
    content: RowHash,
    status: Status,
    row_key: String,
    reference: Option<String>,
    reason: String,
}

/// How a batch's rows become requests: the destination's builder, and
/// where the activation's columns are.
struct Mapping {
    rows: BoxRows,
    columns: Columns,
}

/// The classify phase: the destination bound to the source's columns, and
/// what it decides rows with besides each row.
pub(super) struct Classifier {
    mapping: Mapping,
    /// What shapes every request besides the row (settings, mapping): a
    /// rejected row is tried again when it changes.
    fingerprint: RowHash,
    /// The fingerprint as an older release made it, if the destination
    /// knows one (`Kind::legacy_fingerprint`): rows it rejected stay rejected.
    legacy_fingerprint: Option<RowHash>,
    decisions: Decisions,
}

/// What the classifier decides rows with besides the row itself.
struct Decisions {
    /// Keys this run is delivering: a second row with one of them is a duplicate.
    seen_new: HashSet<RowHash>,
    /// Keys seen more than once in this read: none of their rows is sent.
    duplicates: HashSet<RowHash>,
    /// A resend's released rows, by key hash: only these are sent.
    only: Option<HashSet<RowHash>>,
    /// The mapping changed since the last completed run.
    reshaped: bool,
    /// The key the person's email is hashed with in the run log.
    contact_key: Option<retl_state::ContactKey>,
    /// A preview shows each request's body and where its values came from.
    shows: bool,
    /// `retl baseline`: a row to send is settled as `baseline` instead.
    baseline: bool,
}

/// A row of a batch, for applying its fate.
struct At<'b> {
    batch: &'b RecordBatch,
    row: usize,
    key: RowHash,
    content: RowHash,
    request: RowHash,
    cursor: Option<retl_source::CursorValue>,
    /// The cell problem of the row, if one.
    problem: Option<&'b String>,
    /// Why its age is too old or unknown.
    age_reason: Option<String>,
}

/// Whether the row is older than `max_row_age` (measured from the run's
/// start, `started`).
fn age(
    activation: &Activation,
    started: chrono::DateTime<chrono::Utc>,
    batch: &RecordBatch,
    column: Option<usize>,
    row: usize,
) -> AgeVerdict {
    let young = AgeVerdict {
        age: Age::Young,
        reason: None,
    };
    let unknown = |reason: String| AgeVerdict {
        age: Age::Unknown,
        reason: Some(reason),
    };
    let (Some(column), Some(limit)) = (column, activation.max_row_age.as_ref()) else {
        return young;
    };
    let name = &limit.column;
    let text = match cell_text(batch.column(column).as_ref(), row) {
        Ok(Some(text)) => text,
        Ok(None) => {
            return unknown(format!(
                "max_row_age: `{name}` is NULL, so the row's age is unknown"
            ));
        }
        Err(e) => return unknown(format!("max_row_age: `{name}`: {e}")),
    };
    let at = match parse_time(&text) {
        Ok(at) => at,
        Err(e) => return unknown(format!("max_row_age: `{name}`: {e}")),
    };
    let cutoff = started - chrono::Duration::from_std(limit.age).unwrap_or(chrono::TimeDelta::MAX);
    if at < cutoff {
        AgeVerdict {
            age: Age::TooOld,
            reason: Some(format!(
                "too old: `{name}` is {} (max_row_age {}); never sent",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                humantime::format_duration(limit.age)
            )),
        }
    } else {
        young
    }
}

impl Classifier {
    /// The destination bound to the source's columns (`schema`): the
    /// request fingerprints and the builder of requests; with what the run
    /// `taken` over from the state.
    pub(super) fn new(
        run: &Run<'_>,
        destination: &Destination,
        schema: &arrow_schema::Schema,
        taken: Taken,
    ) -> Result<Classifier> {
        let activation = run.activation;
        let delivery = &activation.delivery;
        let fingerprint = retl_diff::fingerprint(&destination.fingerprint(delivery)?);
        let legacy_fingerprint = destination
            .legacy_fingerprint(delivery)?
            .map(|text| retl_diff::fingerprint(&text));
        let rows = destination
            .rows(delivery, schema, run.state.clock().now())?
            .map_err(|error| Error::Unmapped {
                activation: activation.name.clone(),
                error,
            })?;
        Ok(Classifier {
            mapping: Mapping {
                rows,
                columns: Columns::of(activation, schema),
            },
            fingerprint,
            legacy_fingerprint,
            decisions: Decisions {
                seen_new: HashSet::new(),
                duplicates: HashSet::new(),
                only: taken.only,
                reshaped: taken.reshaped,
                contact_key: taken.contact_key,
                shows: !run.effects.is_live(),
                baseline: run.options.baseline,
            },
        })
    }

    /// Counts and classifies a batch: each row's facts, its fate
    /// ([`decide`]), the fate applied ([`Decisions::apply`]); records the
    /// rows settled before sending and returns the rows to send.
    pub(super) async fn classify(
        &mut self,
        run: &mut Run<'_>,
        sinks: &mut Sinks,
        batch: &RecordBatch,
        undecodable: &HashMap<usize, String>,
    ) -> Result<Vec<Pending>> {
        let Classifier {
            mapping,
            fingerprint,
            legacy_fingerprint,
            decisions,
        } = self;
        let columns = &mapping.columns;
        let keys = hash_keys(batch, &columns.key)?;
        let contents = hash_rows(batch, &columns.content)?;
        // A rejected row is compared by its request: content, the settings
        // and mapping (the run's fingerprint) and, with `max_row_age`, the
        // dating cell (a row rejected for a NULL date recovers once it has one).
        let dates = match columns.age {
            Some(column) => Some(hash_rows(batch, &[column])?),
            None => None,
        };
        let request_by = |fingerprint: &RowHash, row: usize| {
            let shape = match &dates {
                Some(dates) => combine(fingerprint, &dates[row]),
                None => *fingerprint,
            };
            combine(&contents[row], &shape)
        };
        let (fingerprint, legacy) = (*fingerprint, *legacy_fingerprint);
        let pairs: Vec<(RowHash, RowHash)> =
            keys.iter().copied().zip(contents.iter().copied()).collect();
        let changes = changes(run, sinks, &pairs).await?;
        let repeated = repeated(&keys);
        let mut pending = Vec::new();
        let mut records = Records::default();
        for row in 0..batch.num_rows() {
            let cursor = columns.cursor.and_then(|c| cursor_value(batch, c, row));
            if columns.cursor.is_some() && sinks.saw_cursor(cursor.as_ref()) {
                run.count(Event::CursorNull);
            }
            let key = keys[row];
            let ledger = match changes.get(&key) {
                Some(previous) => Ledger::Entry(*previous),
                None => Ledger::Settled,
            };
            // A settled row's age does not matter: it is only read for the others.
            let age = match ledger {
                Ledger::Settled => AgeVerdict {
                    age: Age::Young,
                    reason: None,
                },
                Ledger::Entry(_) => age(run.activation, run.started, batch, columns.age, row),
            };
            // A settled row is decided by the key set alone: its request
            // hashes (a SHA-256 each) are made only for the rows that need them.
            let (request, legacy_request) = match ledger {
                Ledger::Settled => (RowHash::default(), None),
                Ledger::Entry(entry) => (
                    request_by(&fingerprint, row),
                    entry
                        .filter(|e| e.status == Status::Rejected)
                        .and(legacy)
                        .map(|legacy| request_by(&legacy, row)),
                ),
            };
            let at = At {
                batch,
                row,
                key,
                content: contents[row],
                request,
                cursor,
                problem: undecodable.get(&row),
                age_reason: age.reason,
            };
            let facts = Facts {
                unreadable: at.problem.map(String::as_str),
                key_null: columns.key.iter().any(|&c| batch.column(c).is_null(row)),
                duplicate: repeated.contains(&key)
                    || decisions.seen_new.contains(&key)
                    || decisions.duplicates.contains(&key),
                ledger,
                content: at.content,
                request: at.request,
                legacy_request,
                outside_resend: decisions
                    .only
                    .as_ref()
                    .is_some_and(|only| !only.contains(&key)),
                age: age.age,
            };
            let fate = decide(&facts);
            if sinks.warehouse.is_some() && settled_by(&fate, &facts.ledger) {
                let values = super::key_values::key_values(batch, &columns.key, row);
                records.settled.push(values);
            }
            match decisions.apply(run, fate, at, mapping, &mut records) {
                Applied::Settled => {}
                Applied::Send(p) => pending.push(*p),
                Applied::HeldBack(cursor) => sinks.hold_back(cursor.as_ref()),
            }
        }
        records.commit(run, sinks).await?;
        Ok(pending)
    }
}

/// The rows that need a decision, with their ledger entries; the others
/// are settled and unchanged. The key set answers for most rows, the
/// ledger table for the rest.
async fn changes(
    run: &Run<'_>,
    sinks: &mut Sinks,
    pairs: &[(RowHash, RowHash)],
) -> Result<HashMap<RowHash, Option<Entry>>> {
    let name = &run.activation.name;
    Ok(match &sinks.keys.set {
        Some(set) => {
            let found = run.state.lookup_with(name, set, pairs).await?;
            sinks.hold_records(run, found.settled).await?;
            found.changes
        }
        None => run.state.lookup_candidates(name, pairs).await?,
    })
}

/// What applying a row's fate gives the classify phase.
enum Applied {
    /// Settled, or recorded as it is (nothing more to do).
    Settled,
    /// A row to send (boxed: it is much larger than the others).
    Send(Box<Pending>),
    /// A row not handled for good, by its cursor value: the high-water mark
    /// stays at or below it.
    HeldBack(Option<retl_source::CursorValue>),
}

impl Records {
    /// Commits the batch's records, then hands the keys they settled to
    /// the warehouse's key table.
    async fn commit(self, run: &mut Run<'_>, sinks: &mut Sinks) -> Result<()> {
        let outcomes: Vec<Outcome<'_>> = self
            .outcomes
            .iter()
            .map(|r| Outcome {
                key: r.key,
                content: r.content,
                status: r.status,
                row_key: Some(&r.row_key),
                reference: r.reference.as_deref(),
                error: Some(&r.reason),
            })
            .collect();
        run.effects
            .commit(&outcomes, &self.changed, &self.logs)
            .await?;
        for values in self.settled {
            sinks.settled_key(run, values).await?;
        }
        Ok(())
    }
}

impl Decisions {
    /// Applies a row's fate, the one place that does: its counts, its ledger
    /// outcome and its run-log row; a row to send is built here (a request
    /// the destination's own checks refuse is rejected) and returned.
    fn apply(
        &mut self,
        run: &mut Run<'_>,
        fate: Fate,
        at: At<'_>,
        mapping: &Mapping,
        records: &mut Records,
    ) -> Applied {
        let none = Applied::Settled;
        let row_key = || at.row_key(mapping);
        let reference = || at.reference(mapping);
        let log = |records: &mut Records, outcome: RowOutcome, reason: String| {
            records.logs.push(RowLog::new(
                row_key(),
                reference().as_deref(),
                outcome,
                Some(reason),
            ));
        };
        let previous = match fate {
            Fate::AlreadySent => {
                run.count(Event::Read(Read::AlreadySent));
                return none;
            }
            Fate::AlreadyRejected => {
                run.count(Event::Read(Read::AlreadyRejected));
                return none;
            }
            Fate::ChangedAfterSending { .. } if self.reshaped => {
                // The mapping changed, not the data: its new hash is kept,
                // and it counts as it is, sent before.
                run.count(Event::Read(Read::Reshaped));
                records.changed.push((at.key, at.content));
                return none;
            }
            Fate::ChangedAfterSending { status } => {
                run.count(Event::Read(Read::IgnoredChanged));
                records.changed.push((at.key, at.content));
                let reason = match status {
                    Some(Status::Sent) | None => "changed after sending, not re-sent".to_owned(),
                    Some(status) => format!("changed after it was recorded {status}; never sent"),
                };
                log(records, RowOutcome::IgnoredChanged, reason);
                return none;
            }
            Fate::Duplicate => {
                run.count(Event::Read(Read::New));
                run.count(Event::Ended(RowOutcome::Duplicate));
                self.duplicates.insert(at.key);
                log(records, RowOutcome::Duplicate, duplicate_reason());
                // Not settled: the cursor's mark stays at or below it.
                return Applied::HeldBack(at.cursor);
            }
            Fate::Rejected(rejection) => {
                run.count(Event::Read(Read::New));
                run.count(Event::Ended(RowOutcome::Rejected));
                let reason = rejection_reason(run.activation, &rejection, &at);
                if rejection.recorded() {
                    self.seen_new.insert(at.key);
                    settle(&at, &Settled::rejected(&at), reason, mapping, records);
                } else {
                    log(records, RowOutcome::Rejected, reason);
                }
                return none;
            }
            Fate::OutsideResend => {
                run.count(Event::Read(Read::New));
                run.count(Event::Ended(RowOutcome::Skipped));
                let reason = "not part of this resend: sent by the next run".to_owned();
                log(records, RowOutcome::Skipped, reason);
                return Applied::HeldBack(at.cursor);
            }
            Fate::TooOld => {
                run.count(Event::Read(Read::TooOld));
                let reason = at.age_reason.clone().unwrap_or_default();
                // Remembered by its content: never sent, whatever the settings.
                let settled = Settled {
                    status: Status::TooOld,
                    outcome: RowOutcome::TooOld,
                    hash: at.content,
                };
                settle(&at, &settled, reason, mapping, records);
                return none;
            }
            Fate::Send { .. } if self.baseline => {
                // `retl baseline`: recorded, never sent (its ledger entry
                // says baseline; no run-log row, as a first run's baseline).
                run.count(Event::Read(Read::Baseline));
                records.outcomes.push(Recorded {
                    key: at.key,
                    content: at.content,
                    status: Status::Baseline,
                    row_key: row_key(),
                    reference: reference(),
                    reason: "baseline: recorded by `retl baseline`, never sent".to_owned(),
                });
                return none;
            }
            Fate::Send { previous } => previous,
        };
        match self.prepare(run, at, previous, mapping, records) {
            Some(p) => Applied::Send(Box::new(p)),
            None => Applied::Settled,
        }
    }

    /// A row to send: counted new, its request built and checked; a request
    /// the destination's own checks refuse is rejected instead.
    fn prepare(
        &mut self,
        run: &mut Run<'_>,
        at: At<'_>,
        previous: Option<Entry>,
        mapping: &Mapping,
        records: &mut Records,
    ) -> Option<Pending> {
        let Mapping { rows, columns } = mapping;
        run.count(Event::Read(Read::New));
        self.seen_new.insert(at.key);
        let built = match rows.build(at.batch, at.row) {
            Ok(built) => built,
            Err(reason) => {
                run.count(Event::Ended(RowOutcome::Rejected));
                settle(
                    &at,
                    &Settled::rejected(&at),
                    reason.to_string(),
                    mapping,
                    records,
                );
                return None;
            }
        };
        Some(Pending {
            shown: self.shows.then(|| {
                let body = rows.body(&built.request);
                let origins = rows.origins(at.batch, at.row, &body);
                (body, origins)
            }),
            key: at.key,
            content: at.content,
            request_hash: at.request,
            row_key: at.row_key(mapping),
            contact: built
                .contact
                .as_deref()
                .zip(self.contact_key.as_ref())
                .map(|(email, key)| key.hash(email)),
            legacy_contacts: built
                .contact
                .as_deref()
                .zip(self.contact_key.as_ref())
                .map(|(email, key)| key.legacy_hashes(email))
                .unwrap_or_default(),
            recorded: rows.recorded(&built.request),
            reference: built.reference,
            previous,
            request: built.request,
            writeback_key: columns
                .writeback
                .and_then(|column| super::key_values::key_value(at.batch, column, at.row)),
            key_values: run
                .activation
                .source
                .diff
                .eq(&retl_source::Diff::Warehouse)
                .then(|| super::key_values::key_values(at.batch, &columns.key, at.row))
                .flatten(),
            notes: built.notes,
            cursor: at.cursor,
        })
    }
}

/// The keys of a batch that appear more than once in it.
fn repeated(keys: &[RowHash]) -> HashSet<RowHash> {
    let mut seen = HashSet::with_capacity(keys.len());
    keys.iter()
        .filter(|key| !seen.insert(**key))
        .copied()
        .collect()
}

/// What the run log says of a row whose key the read repeats.
fn duplicate_reason() -> String {
    "duplicate: its key appears more than once in this read, so none of its rows is sent (which one is right cannot be known) and it is not settled; it goes out once the source has one row for it: aggregate the other rows (string_agg, GROUP BY) or pick one (DISTINCT ON, ROW_NUMBER() = 1) in the query".to_owned()
}

impl Classifier {
    /// `held` but the rows whose key turned out to be repeated later in the
    /// read: those are `duplicate` (counted and logged), not sent.
    pub(super) async fn without_duplicates(
        &self,
        run: &mut Run<'_>,
        sinks: &mut Sinks,
        held: Vec<Pending>,
    ) -> Result<Vec<Pending>> {
        let duplicates = &self.decisions.duplicates;
        if duplicates.is_empty() {
            return Ok(held);
        }
        let (repeated, kept): (Vec<Pending>, Vec<Pending>) =
            held.into_iter().partition(|p| duplicates.contains(&p.key));
        let logs: Vec<RowLog> = repeated
            .iter()
            .map(|p| {
                run.count(Event::Ended(RowOutcome::Duplicate));
                sinks.hold_back(p.cursor.as_ref());
                p.log(RowOutcome::Duplicate, Some(duplicate_reason()))
            })
            .collect();
        run.effects.commit(&[], &[], &logs).await?;
        Ok(kept)
    }
}

/// What the run log says of a rejection.
fn rejection_reason(activation: &Activation, rejection: &Rejection, at: &At<'_>) -> String {
    match rejection {
        Rejection::Unreadable(problem) => format!("cannot be read: {problem}"),
        Rejection::NullKey => format!(
            "primary key ({}) is NULL",
            activation.primary_key.join(", ")
        ),
        Rejection::UnknownAge => at.age_reason.clone().unwrap_or_default(),
    }
}

impl At<'_> {
    /// The row's key as the run log prints it.
    fn row_key(&self, mapping: &Mapping) -> String {
        key_text(self.batch, &mapping.columns.key, self.row, self.problem)
    }

    /// The row's reference number, if it has one.
    fn reference(&self, mapping: &Mapping) -> Option<String> {
        mapping.rows.reference(self.batch, self.row)
    }
}

/// How a row settled before any request is recorded.
struct Settled {
    /// Its ledger status.
    status: Status,
    /// Its run-log row's outcome.
    outcome: RowOutcome,
    /// The hash the ledger remembers it by.
    hash: RowHash,
}

impl Settled {
    /// Rejected before any request: remembered by its request hash, so that
    /// it is tried again when what would be sent for it changes.
    fn rejected(at: &At<'_>) -> Settled {
        Settled {
            status: Status::Rejected,
            outcome: RowOutcome::Rejected,
            hash: at.request,
        }
    }
}

/// Records a row settled before any request: its ledger outcome and its
/// run-log row.
fn settle(
    at: &At<'_>,
    settled: &Settled,
    reason: String,
    mapping: &Mapping,
    records: &mut Records,
) {
    let (row_key, reference) = (at.row_key(mapping), at.reference(mapping));
    records.logs.push(RowLog::new(
        row_key.as_str(),
        reference.as_deref(),
        settled.outcome,
        Some(reason.clone()),
    ));
    records.outcomes.push(Recorded {
        key: at.key,
        content: settled.hash,
        status: settled.status,
        row_key,
        reference,
        reason,
    });
}

impl Classifier {
    /// Records every row of `batch` as `baseline` in the key segments (rows
    /// without a key are rejected).
    pub(super) async fn record_baseline(
        &self,
        run: &mut Run<'_>,
        sinks: &mut Sinks,
        batch: &RecordBatch,
        undecodable: &HashMap<usize, String>,
    ) -> Result<()> {
        let Mapping {
            rows: mapping,
            columns,
        } = &self.mapping;
        let keys = hash_keys(batch, &columns.key)?;
        let contents = hash_rows(batch, &columns.content)?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        let mut logs = Vec::new();
        for row in 0..batch.num_rows() {
            if let Some(column) = columns.cursor
                && sinks.saw_cursor(cursor_value(batch, column, row).as_ref())
            {
                run.count(Event::CursorNull);
            }
            let has_null = columns.key.iter().any(|&c| batch.column(c).is_null(row));
            let problem = undecodable.get(&row);
            if has_null || problem.is_some() {
                run.count(Event::Read(Read::New));
                run.count(Event::Ended(RowOutcome::Rejected));
                let reason = match problem {
                    Some(problem) => format!("cannot be read: {problem}"),
                    None => format!(
                        "primary key ({}) is NULL",
                        run.activation.primary_key.join(", ")
                    ),
                };
                logs.push(RowLog::new(
                    key_text(batch, &columns.key, row, problem),
                    mapping.reference(batch, row).as_deref(),
                    RowOutcome::Rejected,
                    Some(reason),
                ));
            } else {
                run.count(Event::Read(Read::Baseline));
                rows.push((keys[row], contents[row]));
            }
        }
        // The baseline goes to the key segments, a block per part per million
        // rows: no ledger row per key (a dry run holds none).
        sinks.hold_records(run, rows).await?;
        run.effects.commit(&[], &[], &logs).await
    }
}
