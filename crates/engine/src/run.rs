//! One run of one activation.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use arrow_array::{Array as _, RecordBatch};
use retl_diff::{Class, Entry, Ledger, Outcome, RowHash, Status, classify, hash_rows};
use retl_mapping::{Invitation, Mapper, cell_text};
use retl_source::{KeyValue, Source, Writer};
use retl_trustpilot::{
    Accepted, Client, EmailInvitation, ErrorClass, InvitationLink, LinkCreated,
    ProductReviewInvitation, ServiceReviewInvitation,
};
use tracing::Instrument;

use crate::config::{Activation, ActivationKind, Destination, FirstRun, RetryPolicy};
use crate::state::{Counts, Lease, RowLog, RunSummary, State};
use crate::{Error, Result};

/// Options of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How long the activation's lease lasts without renewal; it is renewed
    /// every third of that while the run lives.
    pub lease: Duration,
    /// Set it to stop the run gracefully (SIGINT, SIGTERM): no new batch is
    /// read and no new request starts; requests under way get `drain` to finish.
    pub cancel: Arc<AtomicBool>,
    /// How long requests under way may take to finish after a cancel.
    pub drain: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            lease: Duration::from_mins(1),
            cancel: Arc::new(AtomicBool::new(false)),
            drain: Duration::from_secs(30),
        }
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct Finished {
    /// The run as recorded in the run log.
    pub summary: RunSummary,
    /// Why it failed, if it did (the summary's `error` holds the same message).
    pub failure: Option<Error>,
}

impl Finished {
    /// Whether any row needs attention: it failed or its delivery is uncertain.
    pub fn needs_attention(&self) -> bool {
        self.summary.counts.failed > 0 || self.summary.counts.uncertain > 0
    }
}

/// The Trustpilot request body for a mapped row.
pub fn email_invitation(invitation: Invitation) -> EmailInvitation {
    EmailInvitation {
        consumer_email: invitation.consumer_email,
        consumer_name: invitation.consumer_name,
        reference_number: invitation.reference_number,
        locale: invitation.locale,
        sender_email: invitation.sender_email,
        sender_name: invitation.sender_name,
        reply_to: invitation.reply_to,
        location_id: invitation.location_id,
        kind: "email",
        service_review_invitation: invitation.service.map(|s| ServiceReviewInvitation {
            template_id: s.template_id,
            preferred_send_time: s.preferred_send_time,
            redirect_uri: s.redirect_uri,
            tags: s.tags,
        }),
        product_review_invitation: invitation.product.map(|p| ProductReviewInvitation {
            template_id: p.template_id,
            preferred_send_time: p.preferred_send_time,
            redirect_uri: p.redirect_uri,
            product_skus: p.skus,
        }),
    }
}

/// The invitation link for a mapped and validated row.
fn invitation_link(body: &EmailInvitation) -> InvitationLink {
    let service = body.service_review_invitation.as_ref();
    InvitationLink {
        reference_id: body.reference_number.clone(),
        email: body.consumer_email.clone(),
        name: body.consumer_name.clone(),
        locale: body.locale.clone(),
        location_id: body.location_id.clone(),
        tags: service.map(|s| s.tags.clone()).unwrap_or_default(),
        redirect_uri: service.and_then(|s| s.redirect_uri.clone()),
    }
}

/// What is sent for a row.
enum Request {
    Email(Box<EmailInvitation>),
    Link(InvitationLink),
}

/// A row on its way to Trustpilot.
struct Pending {
    key: RowHash,
    content: RowHash,
    row_key: String,
    reference: String,
    previous: Option<Entry>,
    request: Request,
    /// The row's `writeback.key_column` value.
    writeback_key: Option<KeyValue>,
}

/// What came of one row's requests.
enum Delivery {
    Sent(Accepted),
    Linked(LinkCreated),
    Refused(ErrorClass, retl_trustpilot::Error),
}

/// What the delivery loop of one run works with.
struct Sender<'a> {
    ledger: &'a Ledger,
    activation: &'a str,
    run_id: &'a str,
    net: Arc<Net>,
}

/// What the request tasks of one run share.
struct Net {
    client: Client,
    business_unit: String,
    policy: RetryPolicy,
    /// 429s this run may still wait out before they count as failures.
    rate_limited_budget: AtomicU32,
    /// Set when the destination refused the run: no new request leaves.
    stop: AtomicBool,
}

/// Runs `activation` once against `destination`, recording everything in `state`.
pub async fn run(
    state: &State,
    activation: &Activation,
    destination: &Destination,
) -> Result<Finished> {
    run_with(state, activation, destination, &RunOptions::default()).await
}

/// [`run`] with options: the lease duration and a cancel flag.
///
/// Fails with [`Error::Locked`] (and records nothing) when another run holds
/// the activation's lease.
pub async fn run_with(
    state: &State,
    activation: &Activation,
    destination: &Destination,
    options: &RunOptions,
) -> Result<Finished> {
    let run_id = uuid::Uuid::now_v7().to_string();
    let lease = state
        .acquire_lease(&activation.name, &run_id, options.lease)
        .await?;
    let heartbeat = {
        let (state, lease) = (state.clone(), lease.clone());
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease.ttl / 3).await;
                match state.renew_lease(&lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::error!(activation = %lease.activation, "lease lost to another run");
                        break;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot renew the lease; retrying"),
                }
            }
        }))
    };
    let mut summary = match state.start_run(&run_id, &activation.name).await {
        Ok(summary) => summary,
        Err(e) => {
            let _ = state.release_lease(&lease).await;
            return Err(e);
        }
    };
    let span = tracing::info_span!("run", activation = %activation.name, run_id = %run_id);
    let mut ctx = RunCtx {
        state,
        activation,
        run_id: &run_id,
        seq: 0,
        counts: Counts::default(),
        seen_new: HashSet::new(),
        writer: None,
        lease: &lease,
        options,
    };
    let result = ctx.execute(destination).instrument(span).await;
    summary.counts = ctx.counts;
    let failure = match result {
        Ok(()) if summary.counts.balanced() => None,
        Ok(()) => Some(Error::Accounting(format!("{:?}", summary.counts))),
        Err(e) => Some(e),
    };
    let cancelled = options.cancel.load(Ordering::SeqCst);
    summary.status = match (&failure, cancelled) {
        (Some(_), _) => "failed",
        (None, true) => "interrupted",
        (None, false) => "completed",
    }
    .to_owned();
    summary.error = failure.as_ref().map(ToString::to_string);
    state.finish_run(&mut summary).await?;
    drop(heartbeat);
    state.release_lease(&lease).await?;
    tracing::info!(
        activation = %activation.name, run_id = %run_id, status = %summary.status,
        read = summary.counts.read, sent = summary.counts.sent, rejected = summary.counts.rejected,
        failed = summary.counts.failed, "run finished"
    );
    Ok(Finished { summary, failure })
}

struct RunCtx<'a> {
    state: &'a State,
    activation: &'a Activation,
    run_id: &'a str,
    seq: u64,
    counts: Counts,
    /// Keys this run is delivering: a second row with one of them is a duplicate.
    seen_new: HashSet<RowHash>,
    /// The warehouse connection link URLs are written back with.
    writer: Option<Writer>,
    /// The activation's lease: every write checks it.
    lease: &'a Lease,
    options: &'a RunOptions,
}

/// The typed value of a row's cell, to find the row again for a writeback.
fn key_value(batch: &RecordBatch, column: usize, row: usize) -> Option<KeyValue> {
    use arrow_array::Array as _;
    use arrow_schema::DataType;
    let array = batch.column(column);
    if array.is_null(row) {
        return None;
    }
    let text = cell_text(array.as_ref(), row).ok()??;
    match array.data_type() {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => text.parse().ok().map(KeyValue::Int),
        _ => Some(KeyValue::Text(text.into_owned())),
    }
}

/// The primary-key values of a row, for the run log.
fn key_text(batch: &RecordBatch, key_columns: &[usize], row: usize) -> (String, bool) {
    let mut has_null = false;
    let parts: Vec<String> = key_columns
        .iter()
        .map(|&c| match cell_text(batch.column(c).as_ref(), row) {
            Ok(Some(text)) => text.into_owned(),
            Ok(None) => {
                has_null = true;
                "NULL".to_owned()
            }
            Err(e) => format!("<{e}>"),
        })
        .collect();
    (parts.join(", "), has_null)
}

fn row_log(key: &str, reference: Option<&str>, outcome: &str, reason: Option<String>) -> RowLog {
    RowLog {
        key: key.to_owned(),
        reference: reference.map(str::to_owned),
        outcome: outcome.to_owned(),
        reason,
        status_code: None,
        error_code: None,
        correlation_id: None,
        invitation_id: None,
        link_url: None,
    }
}

impl RunCtx<'_> {
    async fn execute(&mut self, destination: &Destination) -> Result<()> {
        let activation = self.activation;
        let name = activation.name.as_str();
        let ledger = self.state.ledger().clone();

        let recovered = ledger.recover_in_flight(name).await?;
        if !recovered.is_empty() {
            tracing::warn!(
                rows = recovered.len(),
                "rows left in flight by an interrupted run are now uncertain"
            );
            self.counts.recovered = recovered.len() as u64;
            let logs: Vec<RowLog> = recovered
                .iter()
                .map(|(key, reference)| {
                    row_log(
                        key.as_deref().unwrap_or("?"),
                        reference.as_deref(),
                        "uncertain",
                        Some(
                            "in flight when an earlier run stopped: delivery unknown, not resent"
                                .to_owned(),
                        ),
                    )
                })
                .collect();
            self.commit(&[], &logs).await?;
        }

        let spec = activation.source_spec();
        let source_error = |error| Error::Source {
            activation: name.to_owned(),
            error,
        };
        let mut source = Source::open(&spec).await.map_err(source_error)?;
        let schema = source.schema();
        let settings = destination.defaults.overlay(&activation.target);
        let business_unit = settings.business_unit_id.clone().unwrap_or_default();
        let mapper =
            Mapper::new(settings, &activation.mapping, &schema).map_err(|e| Error::Mapping {
                activation: name.to_owned(),
                message: e.to_string(),
            })?;
        let index = |column: &String| {
            schema
                .index_of(column)
                .expect("the source reads every activation column")
        };
        let key_columns: Vec<usize> = activation.primary_key.iter().map(index).collect();
        let mut content_names: Vec<&String> = activation.mapping.iter().map(|(_, c)| c).collect();
        content_names.sort();
        content_names.dedup();
        let content_columns: Vec<usize> = content_names.into_iter().map(index).collect();
        let writeback_column = activation.writeback.as_ref().map(|w| index(&w.key_column));
        if activation.writeback.is_some() {
            self.writer = Some(
                Writer::connect(&activation.connection)
                    .await
                    .map_err(source_error)?,
            );
        }

        let client = crate::check::client(destination, self.state.token_cache())?;
        let sender = Sender {
            ledger: &ledger,
            activation: name,
            run_id: self.run_id,
            net: Arc::new(Net {
                client,
                business_unit,
                policy: destination.retry,
                rate_limited_budget: AtomicU32::new(destination.retry.rate_limited_retries),
                stop: AtomicBool::new(false),
            }),
        };

        // Until an activation's first run completes, `skip_existing` records
        // the rows already there instead of sending them.
        let baseline = activation.first_run == FirstRun::SkipExisting
            && !self.state.has_completed_run(name).await?;
        if baseline {
            tracing::info!(
                "first run with first_run: skip_existing: recording existing rows, sending none"
            );
        }
        while let Some(batch) = source.next_batch().await {
            if self.options.cancel.load(Ordering::SeqCst) {
                tracing::warn!("interrupted: no more rows are read");
                break;
            }
            let batch = batch.map_err(source_error)?;
            if baseline {
                self.record_baseline(&mapper, &batch, &key_columns, &content_columns)
                    .await?;
                continue;
            }
            let columns = Columns {
                key: &key_columns,
                content: &content_columns,
                writeback: writeback_column,
            };
            let pending = self
                .classify_batch(&ledger, &mapper, &batch, &columns)
                .await?;
            tracing::debug!(
                rows = batch.num_rows(),
                to_send = pending.len(),
                "batch classified"
            );
            let fatal = self
                .deliver_all(&sender, destination.concurrency, pending)
                .await?;
            if let Some(error) = fatal {
                return Err(Error::Destination {
                    destination: destination.name.clone(),
                    error,
                });
            }
        }
        Ok(())
    }

    /// Counts and classifies a batch, records rows rejected before sending, and
    /// returns the rows to send.
    async fn classify_batch(
        &mut self,
        ledger: &Ledger,
        mapper: &Mapper,
        batch: &RecordBatch,
        columns: &Columns<'_>,
    ) -> Result<Vec<Pending>> {
        let keys = hash_rows(batch, columns.key)?;
        let contents = hash_rows(batch, columns.content)?;
        let pairs: Vec<(RowHash, RowHash)> =
            keys.iter().copied().zip(contents.iter().copied()).collect();
        // Only rows that need a decision come back; the others are sent and unchanged.
        let changes: HashMap<RowHash, Option<Entry>> =
            ledger.lookup_changes(&self.activation.name, &pairs).await?;
        let mut pending = Vec::new();
        let mut outcomes: Vec<(RowHash, RowHash, Option<String>, String)> = Vec::new();
        let mut logs = Vec::new();
        for row in 0..batch.num_rows() {
            self.counts.read += 1;
            let (key, content) = (keys[row], contents[row]);
            // The key's text is only needed for rows the run log lists.
            let row_key = || key_text(batch, columns.key, row).0;
            let has_null = columns.key.iter().any(|&c| batch.column(c).is_null(row));
            let reject_unrecorded = |this: &mut Self, logs: &mut Vec<RowLog>, reason: String| {
                // No ledger entry: the row has no usable identity of its own.
                this.counts.new += 1;
                this.counts.rejected += 1;
                logs.push(row_log(
                    &row_key(),
                    mapper.reference(batch, row).as_deref(),
                    "rejected",
                    Some(reason),
                ));
            };
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
            match classify(previous.as_ref(), &content) {
                Class::AlreadySent | Class::Unresolved => self.counts.already_sent += 1,
                Class::IgnoredChanged => self.counts.ignored_changed += 1,
                Class::AlreadyRejected => self.counts.already_rejected += 1,
                Class::New | Class::Retry => {
                    self.counts.new += 1;
                    self.seen_new.insert(key);
                    let mapped = mapper.map_row(batch, row).map_err(|r| r.to_string());
                    let body = mapped.map(email_invitation).and_then(|body| {
                        body.validate()
                            .map(|()| body)
                            .map_err(|problems| problems.join("; "))
                    });
                    match body {
                        Ok(body) => pending.push(Pending {
                            key,
                            content,
                            row_key: row_key(),
                            reference: body.reference_number.clone(),
                            previous,
                            request: match self.activation.kind {
                                ActivationKind::EmailInvitation => Request::Email(Box::new(body)),
                                ActivationKind::InvitationLink => {
                                    Request::Link(invitation_link(&body))
                                }
                            },
                            writeback_key: columns
                                .writeback
                                .and_then(|column| key_value(batch, column, row)),
                        }),
                        Err(reason) => {
                            self.counts.rejected += 1;
                            let reference = mapper.reference(batch, row);
                            logs.push(row_log(
                                &row_key(),
                                reference.as_deref(),
                                "rejected",
                                Some(reason.clone()),
                            ));
                            outcomes.push((key, content, reference, reason));
                        }
                    }
                }
            }
        }
        let outcomes: Vec<Outcome<'_>> = outcomes
            .iter()
            .map(|(key, content, reference, reason)| Outcome {
                key: *key,
                content: *content,
                status: Status::Rejected,
                reference: reference.as_deref(),
                error: Some(reason),
            })
            .collect();
        self.commit(&outcomes, &logs).await?;
        Ok(pending)
    }

    /// Records every row of `batch` as `baseline` (rows without a key are rejected).
    async fn record_baseline(
        &mut self,
        mapper: &Mapper,
        batch: &RecordBatch,
        key_columns: &[usize],
        content_columns: &[usize],
    ) -> Result<()> {
        let keys = hash_rows(batch, key_columns)?;
        let contents = hash_rows(batch, content_columns)?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        let mut logs = Vec::new();
        for row in 0..batch.num_rows() {
            self.counts.read += 1;
            let has_null = key_columns.iter().any(|&c| batch.column(c).is_null(row));
            if has_null {
                let row_key = key_text(batch, key_columns, row).0;
                self.counts.new += 1;
                self.counts.rejected += 1;
                let reason = format!(
                    "primary key ({}) is NULL",
                    self.activation.primary_key.join(", ")
                );
                logs.push(row_log(
                    &row_key,
                    mapper.reference(batch, row).as_deref(),
                    "rejected",
                    Some(reason),
                ));
            } else {
                self.counts.baseline += 1;
                rows.push((keys[row], contents[row]));
            }
        }
        let mut tx = self.state.db().begin().await?;
        State::check_lease(&mut tx, self.lease).await?;
        Ledger::record_baseline_in(&mut tx, &self.activation.name, self.run_id, &rows).await?;
        State::log_rows(&mut tx, self.run_id, self.seq, &logs).await?;
        tx.commit().await?;
        self.seq += logs.len() as u64;
        Ok(())
    }

    /// Records ledger outcomes and run-log rows in one transaction.
    async fn commit(&mut self, outcomes: &[Outcome<'_>], logs: &[RowLog]) -> Result<()> {
        if outcomes.is_empty() && logs.is_empty() {
            return Ok(());
        }
        let mut tx = self.state.db().begin().await?;
        State::check_lease(&mut tx, self.lease).await?;
        Ledger::record_in(&mut tx, &self.activation.name, self.run_id, outcomes).await?;
        State::log_rows(&mut tx, self.run_id, self.seq, logs).await?;
        tx.commit().await?;
        self.seq += logs.len() as u64;
        Ok(())
    }

    /// Sends `pending` with up to `concurrency` requests in flight, committing each
    /// outcome as it arrives. Returns the error that stopped the run, if any.
    ///
    /// Requests run as tasks of their own (in a `JoinSet`, aborted if this run
    /// fails) that touch no database: marking in flight and committing happen
    /// here, so requests go out when the limiter lets them, whatever the
    /// database is doing, and no request holds a database connection.
    async fn deliver_all(
        &mut self,
        sender: &Sender<'_>,
        concurrency: usize,
        pending: Vec<Pending>,
    ) -> Result<Option<retl_trustpilot::Error>> {
        let mut queue = pending.into_iter();
        let mut running = tokio::task::JoinSet::new();
        // What is under way, to account for requests abandoned at an interrupt.
        let mut under_way: HashMap<RowHash, (RowHash, String, String)> = HashMap::new();
        let mut fatal = None;
        loop {
            while running.len() < concurrency.max(1)
                && !sender.net.stop.load(Ordering::SeqCst)
                && !self.options.cancel.load(Ordering::SeqCst)
            {
                let Some(p) = queue.next() else { break };
                let mut tx = self.state.db().begin().await?;
                State::check_lease(&mut tx, self.lease).await?;
                Ledger::mark_in_flight_in(
                    &mut tx,
                    sender.activation,
                    sender.run_id,
                    &p.key,
                    &p.content,
                    &p.row_key,
                    Some(&p.reference),
                )
                .await?;
                tx.commit().await?;
                under_way.insert(p.key, (p.content, p.row_key.clone(), p.reference.clone()));
                let net = sender.net.clone();
                running.spawn(async move {
                    let delivery = deliver(&net, &p).await;
                    (p, delivery)
                });
            }
            let next = if self.options.cancel.load(Ordering::SeqCst) {
                // Interrupted: requests under way get a bounded time to finish;
                // the rest are abandoned, in flight, for the next run to report.
                match tokio::time::timeout(self.options.drain, running.join_next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        tracing::warn!(
                            abandoned = running.len(),
                            "requests did not finish in time"
                        );
                        running.abort_all();
                        break;
                    }
                }
            } else {
                running.join_next().await
            };
            let Some(done) = next else {
                break;
            };
            let (p, delivery) =
                done.map_err(|e| Error::Internal(format!("a request task failed: {e}")))?;
            under_way.remove(&p.key);
            self.record_delivery(sender, p, delivery, &mut fatal)
                .await?;
        }
        // Requests abandoned at an interrupt may have reached Trustpilot.
        let abandoned: Vec<(RowHash, RowHash, String, String)> = under_way
            .into_iter()
            .map(|(key, (content, row_key, reference))| (key, content, row_key, reference))
            .collect();
        let reason = "interrupted while the request was under way: delivery unknown, not resent";
        let outcomes: Vec<Outcome<'_>> = abandoned
            .iter()
            .map(|(key, content, _, reference)| Outcome {
                key: *key,
                content: *content,
                status: Status::Uncertain,
                reference: Some(reference),
                error: Some(reason),
            })
            .collect();
        let logs: Vec<RowLog> = abandoned
            .iter()
            .map(|(_, _, row_key, reference)| {
                row_log(
                    row_key,
                    Some(reference),
                    "uncertain",
                    Some(reason.to_owned()),
                )
            })
            .collect();
        self.counts.uncertain += abandoned.len() as u64;
        self.commit(&outcomes, &logs).await?;
        // Rows never sent because the run stopped: logged, retried by the next run.
        let mut logs = Vec::new();
        let reason = if self.options.cancel.load(Ordering::SeqCst) {
            "run interrupted before this row was sent"
        } else {
            "run stopped before this row was sent"
        };
        for p in queue {
            self.counts.skipped += 1;
            logs.push(row_log(
                &p.row_key,
                Some(&p.reference),
                "skipped",
                Some(reason.to_owned()),
            ));
        }
        self.commit(&[], &logs).await?;
        Ok(fatal)
    }

    /// Commits what came of one row's requests.
    async fn record_delivery(
        &mut self,
        sender: &Sender<'_>,
        p: Pending,
        delivery: Delivery,
        fatal: &mut Option<retl_trustpilot::Error>,
    ) -> Result<()> {
        let mut log = row_log(&p.row_key, Some(&p.reference), "", None);
        let status = match delivery {
            Delivery::Sent(accepted) => {
                self.counts.sent += 1;
                log.status_code = Some(accepted.status);
                log.invitation_id = accepted.id;
                Some(Status::Sent)
            }
            Delivery::Linked(link) => {
                self.counts.sent += 1;
                log.invitation_id = Some(link.id);
                log.link_url = Some(link.url);
                if let Some(problem) = self.write_back(&p, log.link_url.as_deref()).await {
                    log.reason = Some(problem);
                }
                Some(Status::Sent)
            }
            Delivery::Refused(class, error) => {
                if let Some(api) = error.api() {
                    log.status_code = Some(api.status);
                    log.error_code.clone_from(&api.error_code);
                    log.correlation_id.clone_from(&api.correlation_id);
                }
                log.reason = Some(error.to_string());
                match class {
                    ErrorClass::Rejected => {
                        self.counts.rejected += 1;
                        Some(Status::Rejected)
                    }
                    ErrorClass::Uncertain => {
                        self.counts.uncertain += 1;
                        Some(Status::Uncertain)
                    }
                    ErrorClass::Transient | ErrorClass::RateLimited => {
                        let attempts = p.previous.map_or(0, |e| e.attempts) + 1;
                        if attempts >= sender.net.policy.max_attempts {
                            self.counts.rejected += 1;
                            log.reason =
                                Some(format!("gave up after {attempts} attempts: {error}"));
                            Some(Status::Rejected)
                        } else {
                            self.counts.failed += 1;
                            Some(Status::Failed)
                        }
                    }
                    ErrorClass::Fatal => {
                        // Trustpilot refused the destination, not this row: it was
                        // not accepted, so its key goes back to where it was.
                        sender.net.stop.store(true, Ordering::SeqCst);
                        sender
                            .ledger
                            .restore(sender.activation, &p.key, p.previous.as_ref())
                            .await?;
                        self.counts.skipped += 1;
                        log.reason = Some(format!("run stopped: {error}"));
                        fatal.get_or_insert(error);
                        None
                    }
                }
            }
        };
        log.outcome = status.map_or("skipped", Status::as_str).to_owned();
        let outcome = status.map(|status| Outcome {
            key: p.key,
            content: p.content,
            status,
            reference: Some(&p.reference),
            error: log.reason.as_deref(),
        });
        let outcomes: Vec<Outcome<'_>> = outcome.into_iter().collect();
        self.commit(&outcomes, std::slice::from_ref(&log)).await?;
        Ok(())
    }

    /// Writes a created link's URL back to the warehouse; a problem to log, if any.
    async fn write_back(&mut self, p: &Pending, url: Option<&str>) -> Option<String> {
        let (Some(writeback), Some(writer), Some(url)) = (
            self.activation.writeback.as_ref(),
            self.writer.as_mut(),
            url,
        ) else {
            return None;
        };
        let Some(key) = &p.writeback_key else {
            return Some(format!(
                "link created; not written back: `{}` is NULL on this row",
                writeback.key_column
            ));
        };
        match writer
            .set_text(
                &writeback.table,
                &writeback.key_column,
                &writeback.url_column,
                key,
                url,
            )
            .await
        {
            Ok(0) => Some(format!(
                "link created; not written back: no row of `{}` has that `{}`",
                writeback.table, writeback.key_column
            )),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "writing an invitation link back failed");
                Some(format!("link created; writing it back failed: {e}"))
            }
        }
    }
}

/// The column indices a batch is read with.
struct Columns<'a> {
    key: &'a [usize],
    content: &'a [usize],
    writeback: Option<usize>,
}

/// A pseudo-random share of `max`, for backoff jitter (no need for a real RNG).
fn jitter(max: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    max.mul_f64(f64::from(nanos % 1000) / 1000.0)
}

/// Sends one row (already marked in flight), retrying transient failures (up
/// to `tries_per_run`) and waiting out 429s (while the run's budget lasts,
/// without counting them as tries). Touches no database.
async fn deliver(net: &Net, p: &Pending) -> Delivery {
    let mut tries = 0;
    loop {
        tries += 1;
        let result = match &p.request {
            Request::Email(body) => net
                .client
                .create_email_invitation(&net.business_unit, body)
                .await
                .map(Delivery::Sent),
            Request::Link(link) => net
                .client
                .create_invitation_link(&net.business_unit, link)
                .await
                .map(Delivery::Linked),
        };
        let error = match result {
            Ok(delivery) => return delivery,
            Err(error) => error,
        };
        let class = error.class();
        let retry_after = error.api().and_then(|api| api.retry_after);
        let backoff = net.policy.backoff * 2u32.saturating_pow(tries.min(16) - 1);
        let wait = retry_after
            .unwrap_or_else(|| backoff + jitter(backoff / 2))
            .min(Duration::from_mins(5));
        if class == ErrorClass::RateLimited
            && net
                .rate_limited_budget
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            // Too fast for Trustpilot: everyone waits, and this try does not count.
            tracing::info!(wait_ms = wait.as_millis(), "429 from trustpilot; pausing");
            net.client.pause(wait);
            tries -= 1;
            continue;
        }
        let retryable = matches!(class, ErrorClass::Transient | ErrorClass::RateLimited);
        if !retryable || tries >= net.policy.tries_per_run || net.stop.load(Ordering::SeqCst) {
            return Delivery::Refused(class, error);
        }
        tracing::debug!(tries, wait_ms = wait.as_millis(), %error, "retrying");
        tokio::time::sleep(wait).await;
    }
}
