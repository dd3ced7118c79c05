//! Classifying a batch: hash, look the keys up, decide per row, map and
//! validate the new ones. Rows rejected before any request are recorded here.

use std::collections::HashMap;

use arrow_array::{Array as _, RecordBatch};
use retl_diff::{Class, Entry, RowHash, Status, classify, combine, hash_keys, hash_rows};
use retl_mapping::{cell_text, is_integer, parse_time};
use retl_source::KeyValue;
use retl_state::{Outcome, RowLog, RowOutcome};
use retl_trustpilot::{InvitationLink, Invitations, Request, TargetKind};

use super::RunCtx;
use crate::Result;

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

/// A row on its way to its destination, with its request `R`.
pub(super) struct Pending<R = Request> {
    pub key: RowHash,
    pub content: RowHash,
    /// The content with what shapes the request: recorded for a rejection.
    pub request_hash: RowHash,
    pub row_key: String,
    pub reference: String,
    pub previous: Option<Entry>,
    pub request: R,
    /// The row's `writeback.key_column` value.
    pub writeback_key: Option<KeyValue>,
    /// What its run-log row says when it is sent (how its request was made).
    pub notes: Vec<String>,
    /// In a dry run: where each value of the request came from.
    pub origins: Option<std::collections::BTreeMap<String, String>>,
    /// Its cursor value (cursor mode).
    pub cursor: Option<retl_source::CursorValue>,
}

/// The typed value of a row's cell, to find the row again for a writeback.
fn key_value(batch: &RecordBatch, column: usize, row: usize) -> Option<KeyValue> {
    let array = batch.column(column);
    if array.is_null(row) {
        return None;
    }
    let text = cell_text(array.as_ref(), row).ok()??;
    if is_integer(array.data_type()) {
        text.parse().ok().map(KeyValue::Int)
    } else {
        Some(KeyValue::Text(text.into_owned()))
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

/// What `max_row_age` says of a row.
enum Age {
    Young,
    TooOld(String),
    Unknown(String),
}

impl RunCtx<'_> {
    /// Whether the row is older than `max_row_age` (measured from the run's start).
    fn age(&self, batch: &RecordBatch, column: Option<usize>, row: usize) -> Age {
        let (Some(column), Some(limit)) = (column, self.activation.max_row_age.as_ref()) else {
            return Age::Young;
        };
        let name = &limit.column;
        let text = match cell_text(batch.column(column).as_ref(), row) {
            Ok(Some(text)) => text,
            Ok(None) => {
                return Age::Unknown(format!(
                    "max_row_age: `{name}` is NULL, so the row's age is unknown"
                ));
            }
            Err(e) => return Age::Unknown(format!("max_row_age: `{name}`: {e}")),
        };
        let at = match parse_time(&text) {
            Ok(at) => at,
            Err(e) => return Age::Unknown(format!("max_row_age: `{name}`: {e}")),
        };
        let cutoff =
            self.started - chrono::Duration::from_std(limit.age).unwrap_or(chrono::TimeDelta::MAX);
        if at < cutoff {
            Age::TooOld(format!(
                "too old: `{name}` is {} (max_row_age {}); never sent",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                humantime::format_duration(limit.age)
            ))
        } else {
            Age::Young
        }
    }

    /// Counts and classifies a batch, records rows rejected before sending, and
    /// returns the rows to send.
    pub(super) async fn classify_batch(
        &mut self,
        invitations: &Invitations,
        kind: TargetKind,
        batch: &RecordBatch,
        columns: &Columns,
        undecodable: &HashMap<usize, String>,
    ) -> Result<Vec<Pending>> {
        let keys = hash_keys(batch, &columns.key)?;
        let contents = hash_rows(batch, &columns.content)?;
        // A rejected row is compared by its request: content, the settings
        // and mapping (the run's fingerprint) and, with `max_row_age`, the
        // dating cell (a row rejected for a NULL date recovers once it has one).
        let dates = match columns.age {
            Some(column) => Some(hash_rows(batch, &[column])?),
            None => None,
        };
        let fingerprint = self.fingerprint;
        let request = |row: usize| {
            let shape = match &dates {
                Some(dates) => combine(&fingerprint, &dates[row]),
                None => fingerprint,
            };
            combine(&contents[row], &shape)
        };
        let pairs: Vec<(RowHash, RowHash)> =
            keys.iter().copied().zip(contents.iter().copied()).collect();
        // Only rows that need a decision come back; the others are settled
        // and unchanged. The key set answers for most rows, the ledger table
        // for the rest.
        let name = &self.activation.name;
        let changes: HashMap<RowHash, Option<Entry>> = match &self.keys.set {
            Some(set) => {
                let found = self.state.lookup_with(name, set, &pairs).await?;
                self.hold_records(found.settled).await?;
                found.changes
            }
            None => self.state.lookup_changes(name, &pairs).await?,
        };
        let mut pending = Vec::new();
        let mut changed: Vec<(RowHash, RowHash)> = Vec::new();
        let mut outcomes: Vec<(RowHash, RowHash, Status, String, Option<String>, String)> =
            Vec::new();
        let mut logs = Vec::new();
        for row in 0..batch.num_rows() {
            self.counts.read += 1;
            let cursor = columns.cursor.and_then(|c| cursor_value(batch, c, row));
            if columns.cursor.is_some() {
                self.saw_cursor(cursor.as_ref());
            }
            let (key, content) = (keys[row], contents[row]);
            // The key's text is only needed for rows the run log lists.
            let row_key = || key_text(batch, &columns.key, row, undecodable.get(&row));
            let has_null = columns.key.iter().any(|&c| batch.column(c).is_null(row));
            let reject_unrecorded = |this: &mut Self, logs: &mut Vec<RowLog>, reason: String| {
                // No ledger entry: the row has no usable identity of its own.
                this.counts.new += 1;
                this.counts.rejected += 1;
                logs.push(RowLog::new(
                    row_key(),
                    invitations.reference(batch, row).as_deref(),
                    RowOutcome::Rejected,
                    Some(reason),
                ));
            };
            if let Some(problem) = undecodable.get(&row) {
                reject_unrecorded(self, &mut logs, format!("cannot be read: {problem}"));
                continue;
            }
            if has_null {
                let reason = format!(
                    "primary key ({}) is NULL",
                    self.activation.primary_key.join(", ")
                );
                reject_unrecorded(self, &mut logs, reason);
                continue;
            }
            if self.seen_new.contains(&key) {
                let reason =
                    "duplicate primary key: an earlier row of this run has the same key".to_owned();
                reject_unrecorded(self, &mut logs, reason);
                continue;
            }
            let Some(&previous) = changes.get(&key) else {
                self.counts.already_sent += 1;
                continue;
            };
            match classify(previous.as_ref(), &content, &request(row)) {
                Class::AlreadySent | Class::Unresolved => self.counts.already_sent += 1,
                Class::IgnoredChanged => {
                    self.counts.ignored_changed += 1;
                    changed.push((key, content));
                    let reason = match previous.map(|e| e.status) {
                        Some(Status::Sent) | None => {
                            "changed after sending, not re-sent".to_owned()
                        }
                        Some(status) => {
                            format!("changed after it was recorded {status}; never sent")
                        }
                    };
                    logs.push(RowLog::new(
                        row_key(),
                        invitations.reference(batch, row).as_deref(),
                        RowOutcome::IgnoredChanged,
                        Some(reason),
                    ));
                }
                Class::AlreadyRejected => self.counts.already_rejected += 1,
                Class::New | Class::Retry
                    if self.only.as_ref().is_some_and(|only| !only.contains(&key)) =>
                {
                    // A resend sends only the rows it released.
                    self.counts.new += 1;
                    self.counts.skipped += 1;
                    self.hold_back(cursor.as_ref());
                    logs.push(RowLog::new(
                        row_key(),
                        invitations.reference(batch, row).as_deref(),
                        RowOutcome::Skipped,
                        Some("not part of this resend: sent by the next run".to_owned()),
                    ));
                }
                Class::New | Class::Retry => {
                    let age = self.age(batch, columns.age, row);
                    if let Age::TooOld(reason) = age {
                        self.counts.too_old += 1;
                        let reference = invitations.reference(batch, row);
                        let row_key = row_key();
                        logs.push(RowLog::new(
                            row_key.as_str(),
                            reference.as_deref(),
                            RowOutcome::TooOld,
                            Some(reason.clone()),
                        ));
                        outcomes.push((key, content, Status::TooOld, row_key, reference, reason));
                        continue;
                    }
                    self.counts.new += 1;
                    self.seen_new.insert(key);
                    let built = match age {
                        Age::Unknown(reason) => Err(reason),
                        _ => Ok(()),
                    }
                    .and_then(|()| invitations.build(batch, row).map_err(|r| r.to_string()))
                    .and_then(|built| {
                        built
                            .body
                            .validate()
                            .map(|()| built)
                            .map_err(|problems| problems.join("; "))
                    });
                    match built {
                        Ok(retl_trustpilot::Built { body, notes }) => pending.push(Pending {
                            origins: self.dry.as_ref().map(|dry| {
                                let json = serde_json::to_value(&body).unwrap_or_default();
                                invitations.origins(batch, row, &json, &dry.defaults, &dry.target)
                            }),
                            cursor: cursor.clone(),
                            key,
                            content,
                            request_hash: request(row),
                            row_key: row_key(),
                            reference: body.reference_number.clone(),
                            previous,
                            request: match kind {
                                TargetKind::EmailInvitation => Request::Email(Box::new(body)),
                                TargetKind::InvitationLink => {
                                    Request::Link(InvitationLink::for_invitation(&body))
                                }
                            },
                            writeback_key: columns
                                .writeback
                                .and_then(|column| key_value(batch, column, row)),
                            notes,
                        }),
                        Err(reason) => {
                            self.counts.rejected += 1;
                            let reference = invitations.reference(batch, row);
                            let row_key = row_key();
                            logs.push(RowLog::new(
                                row_key.as_str(),
                                reference.as_deref(),
                                RowOutcome::Rejected,
                                Some(reason.clone()),
                            ));
                            outcomes.push((
                                key,
                                request(row),
                                Status::Rejected,
                                row_key,
                                reference,
                                reason,
                            ));
                        }
                    }
                }
            }
        }
        let outcomes: Vec<Outcome<'_>> = outcomes
            .iter()
            .map(
                |(key, content, status, row_key, reference, reason)| Outcome {
                    key: *key,
                    content: *content,
                    status: *status,
                    row_key: Some(row_key),
                    reference: reference.as_deref(),
                    error: Some(reason),
                },
            )
            .collect();
        self.commit(&outcomes, &changed, &logs).await?;
        Ok(pending)
    }

    /// Records every row of `batch` as `baseline` in the key segments (rows
    /// without a key are rejected).
    pub(super) async fn record_baseline(
        &mut self,
        invitations: &Invitations,
        batch: &RecordBatch,
        columns: &Columns,
        undecodable: &HashMap<usize, String>,
    ) -> Result<()> {
        let keys = hash_keys(batch, &columns.key)?;
        let contents = hash_rows(batch, &columns.content)?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        let mut logs = Vec::new();
        for row in 0..batch.num_rows() {
            self.counts.read += 1;
            if let Some(column) = columns.cursor {
                self.saw_cursor(cursor_value(batch, column, row).as_ref());
            }
            let has_null = columns.key.iter().any(|&c| batch.column(c).is_null(row));
            let problem = undecodable.get(&row);
            if has_null || problem.is_some() {
                self.counts.new += 1;
                self.counts.rejected += 1;
                let reason = match problem {
                    Some(problem) => format!("cannot be read: {problem}"),
                    None => format!(
                        "primary key ({}) is NULL",
                        self.activation.primary_key.join(", ")
                    ),
                };
                logs.push(RowLog::new(
                    key_text(batch, &columns.key, row, problem),
                    invitations.reference(batch, row).as_deref(),
                    RowOutcome::Rejected,
                    Some(reason),
                ));
            } else {
                self.counts.baseline += 1;
                rows.push((keys[row], contents[row]));
            }
        }
        if let Some(dry) = &mut self.dry {
            dry.out.note(&logs);
            return Ok(());
        }
        // The baseline goes to the key segments, a block per part per million
        // rows: no ledger row per key.
        self.hold_records(rows).await?;
        if !logs.is_empty() {
            let mut tx = self.state.fenced(self.lease).await?;
            tx.log_rows(self.seq, &logs).await?;
            tx.commit().await?;
            self.seq += logs.len() as u64;
        }
        Ok(())
    }
}
