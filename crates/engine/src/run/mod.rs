//! One run of one activation, in its phases: lease, recover, the safety
//! limits ([`limits`]), read (in cursor mode from the high-water mark:
//! [`cursor`]), classify ([`classify`]), deliver and record ([`deliver`]),
//! finish. [`options`] holds what a run is started with; [`preview`] the
//! dry run that shares all of it but the writes; [`start`] what a run takes
//! over from the state, [`end`] its end and housekeeping, [`dedupe`] one
//! invitation per customer, [`writeback`] links written back. Here:
//! `run_with` and `RunCtx::execute` with the helpers each calls once.

mod classify;
mod cursor;
mod dedupe;
mod deliver;
mod end;
mod fate;
mod key_values;
mod keys;
mod limits;
mod options;
mod preview;
mod start;
#[cfg(test)]
mod tests;
mod warehouse;
mod writeback;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use retl_destination::{AnyRequest, BoxRows, BoxSender, Sender};
use retl_diff::RowHash;
use retl_source::{Source, Writer};
use retl_state::{Counts, Lease, Outcome, RowLog, RunStatus, RunSummary, State};
use tracing::Instrument;

use crate::config::{Activation, Delivery, Destination, FirstRun};
use crate::{Error, Result};

pub(crate) use classify::Columns;
use end::{by_interrupt, heartbeat, prune, record_end, scrub, unrecorded};
pub use limits::{Allowance, allowances};
pub(super) use options::hold_at;
pub use options::{Cancel, Hold, HoldPoint, Progress, Resend, RunOptions};
pub use preview::{Planned, Preview, Refusal};
pub(crate) use warehouse::unknown_keys;

/// A destination bound to a run: the builder of its requests, and its
/// outbox (none in a dry run).
type Bound = (BoxRows, Option<deliver::Outbox<BoxSender>>);

/// How a run ended.
#[derive(Debug)]
pub struct Finished {
    /// The run as recorded in the run log.
    pub summary: RunSummary,
    /// Why it failed, if it did (the summary's `error` holds the same message).
    pub failure: Option<Error>,
    /// The key texts of the rows a resend released.
    pub released: Vec<String>,
}

impl Finished {
    /// Whether any row needs attention: it failed, its delivery is uncertain
    /// (found in flight, too), it was given up, or its link could not be
    /// written back.
    pub fn needs_attention(&self) -> bool {
        let c = &self.summary.counts;
        c.failed > 0
            || c.uncertain > 0
            || c.given_up > 0
            || c.recovered > 0
            || c.writeback_failed > 0
    }
}

/// Runs `activation` once against `destination`, recording everything in `state`.
pub async fn run(
    state: &State,
    activation: &Activation,
    destination: &Destination,
) -> Result<Finished> {
    run_with(state, activation, destination, &RunOptions::default()).await
}

/// [`run`] with options: the lease duration, cancellation, resend, hold point.
///
/// Fails with a [`retl_state::Error::Locked`] (and records nothing) when
/// another run holds the activation's lease.
pub async fn run_with(
    state: &State,
    activation: &Activation,
    destination: &Destination,
    options: &RunOptions,
) -> Result<Finished> {
    let run_id = options
        .run_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    if let Some(progress) = &options.progress {
        progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .run_id
            .clone_from(&run_id);
    }
    let span = tracing::info_span!("run", activation = %activation.name, run_id = %run_id);
    let lease = take_lease(state, activation, &run_id, options).await?;
    let heartbeat = heartbeat(state, &lease);
    let started = async {
        let mut tx = state.fenced(&lease).await?;
        let abandoned = tx.abandon_stale_runs().await?;
        tx.note_source(&activation.source_identity()).await?;
        let summary = tx.start_run().await?;
        tx.commit().await?;
        if abandoned > 0 {
            tracing::warn!(
                runs = abandoned,
                "earlier runs that never finished are now marked abandoned"
            );
        }
        Ok::<_, Error>(summary)
    };
    let mut summary = match started.instrument(span.clone()).await {
        Ok(summary) => summary,
        Err(e) => {
            let _ = state.release_lease(&lease).await;
            return Err(e);
        }
    };
    tracing::info!(parent: &span, state = %state.url(), "run started");
    let mut ctx = RunCtx::new(state, activation, &lease, options, None);
    let result = ctx.execute(destination).instrument(span.clone()).await;
    if result.is_err() {
        ctx.keep_what_is_settled().instrument(span).await;
    }
    summary.counts = ctx.counts;
    let ctx_released = std::mem::take(&mut ctx.released);
    let failure = match result {
        Ok(()) if summary.counts.balanced() => None,
        Ok(()) => Some(Error::Accounting(format!("{:?}", summary.counts))),
        Err(e) => Some(e),
    };
    summary.status = match (&failure, options.cancel.is_cancelled()) {
        (Some(failure), _) if failure.is_refused() => RunStatus::Refused,
        (Some(_), _) => RunStatus::Failed,
        (None, true) => RunStatus::Interrupted,
        (None, false) => RunStatus::Completed,
    };
    // A driver's or a server's message may quote an option it was given.
    summary.error = failure
        .as_ref()
        .map(|e| activation.secrets.mask(&retl_config::with_causes(e)));
    let completed = summary.status == RunStatus::Completed;
    let cursor = ctx.cursor.as_ref().filter(|_| completed);
    let shape = Some(ctx.content_shape.as_str()).filter(|_| completed);
    let recorded = record_end(state, &lease, options, (cursor, shape), &summary).await;
    let summary = match recorded {
        Ok(closing) => closing,
        Err(e) => {
            // The end could not be recorded (the lease lost, the state's
            // disk full or unreachable): what the run did is still told,
            // as a failed run. Its log stays `running` until the next run
            // closes it as `abandoned`.
            drop(heartbeat);
            let _ = by_interrupt(options, state.release_lease(&lease)).await;
            let error = Error::State(e);
            unrecorded(state, &mut summary, &error);
            return Ok(Finished {
                summary,
                failure: Some(failure.unwrap_or(error)),
                released: ctx_released,
            });
        }
    };
    if let Some(keep) = activation.run_log_retention {
        let _ = by_interrupt(options, prune(state, &lease, keep)).await;
    }
    if let Some(keep) = activation.personal_data_retention {
        let _ = by_interrupt(options, scrub(state, &activation.name, keep)).await;
    }
    drop(heartbeat);
    // The run is recorded: a lease that cannot be given back expires.
    if let Some(Err(e)) = by_interrupt(options, state.release_lease(&lease)).await {
        tracing::warn!(error = %retl_config::with_causes(&e), "cannot release the lease; it expires by itself");
    }
    tracing::info!(
        activation = %activation.name, run_id = %run_id, status = %summary.status,
        read = summary.counts.read, sent = summary.counts.sent, rejected = summary.counts.rejected,
        failed = summary.counts.failed, "run finished"
    );
    Ok(Finished {
        summary,
        failure,
        released: ctx_released,
    })
}

/// The activation's lease for run `run_id`. A run whose id was promised
/// (started through the API) and that cannot take it is recorded, failed,
/// saying why: its id is never a dead end.
async fn take_lease(
    state: &State,
    activation: &Activation,
    run_id: &str,
    options: &RunOptions,
) -> Result<Lease> {
    match state
        .acquire_lease(&activation.name, run_id, options.lease)
        .await
    {
        Ok(lease) => Ok(lease),
        Err(e) => {
            if options.run_id.is_some() {
                let why = format!("did not start: {}", retl_config::with_causes(&e));
                let _ = state
                    .record_not_started(&activation.name, run_id, &why)
                    .await;
            }
            Err(e.into())
        }
    }
}

/// What an activation's content hashes are made of: its mapped columns, by
/// name (the content hash's order).
fn content_shape(activation: &Activation) -> String {
    let mut columns = activation.delivery.mapped_columns();
    columns.sort_unstable();
    format!("content 1\u{1f}{}", columns.join("\u{1f}"))
}

/// The cells of the batch last read that the source could not decode, by
/// row: their rows are rejected, naming the column.
fn undecodable(source: &Source) -> HashMap<usize, String> {
    source
        .cell_problems()
        .iter()
        .map(|p| (p.row, format!("column `{}`: {}", p.column, p.message)))
        .collect()
}

/// What a run of `activation` would do now, without doing it: the same
/// reading, diffing and mapping, and no lease, no write, no request
/// (`retl preview`, `retl run --dry-run`). `options.limit` bounds it as it
/// bounds a run. A run a safety limit would refuse is still previewed, with
/// the refusal in [`Preview::refused`].
pub async fn preview(
    state: &State,
    activation: &Activation,
    destination: &Destination,
    options: &RunOptions,
) -> Result<Preview> {
    // Never acquired: any write reached by mistake fails its fencing check.
    let lease = Lease {
        activation: activation.name.clone(),
        run_id: "preview".to_owned(),
        holder: "preview".to_owned(),
        token: -1,
        ttl: options.lease,
    };
    let dry = preview::DryRun {
        out: Preview::new(&activation.name),
    };
    let mut ctx = RunCtx::new(state, activation, &lease, options, Some(dry));
    ctx.execute(destination).await?;
    let mut out = ctx.dry.take().expect("a dry run keeps its preview").out;
    out.counts = ctx.counts;
    out.estimated_seconds = destination.estimate(out.counts.sent).as_secs();
    Ok(out)
}

/// What one run works with while it reads, classifies and delivers.
struct RunCtx<'a> {
    state: &'a State,
    activation: &'a Activation,
    /// The next run-log sequence number.
    seq: u64,
    counts: Counts,
    /// Keys this run is delivering: a second row with one of them is a duplicate.
    seen_new: HashSet<RowHash>,
    /// The warehouse connection link URLs are written back with.
    writer: Option<Writer>,
    /// The writeback key column's type, as the database names it.
    writeback_key_type: Option<String>,
    /// The activation's lease: every write checks it.
    lease: &'a Lease,
    options: &'a RunOptions,
    /// Arrivals at [`HoldPoint::Recorded`].
    recorded: AtomicU64,
    /// How many more rows this run may start sending, and why it is bounded.
    budget: Option<(u64, String)>,
    /// The monthly allowances its rows claim a place in when they are marked.
    allowances: Vec<limits::Allowance>,
    /// Whether the state holds a forgotten person (only then is each row's
    /// customer looked up there).
    anyone_forgotten: bool,
    /// The key the person's email is hashed with in the run log (none in a
    /// preview, which keeps nothing).
    contact_key: Option<retl_state::ContactKey>,
    /// The mapped columns this run's content hashes are made under.
    content_shape: String,
    /// The mapping changed since the last completed run: a settled row whose
    /// content hash differs is re-hashed silently, not logged as changed.
    reshaped: bool,
    /// The approval (`retl approve`) this run goes past its safety limits with.
    approval: Option<retl_state::Approval>,
    /// A resend's released rows: key hashes (only these are sent) and key texts.
    only: Option<HashSet<RowHash>>,
    released: Vec<String>,
    /// What shapes every request besides the row (settings, mapping): a
    /// rejected row is tried again when it changes.
    fingerprint: RowHash,
    /// The fingerprint as an older release made it, if the destination
    /// knows one ([`Kind::legacy_fingerprint`]): rows it rejected stay rejected.
    legacy_fingerprint: Option<RowHash>,
    /// The run's start (`max_row_age` counts back from it).
    started: chrono::DateTime<chrono::Utc>,
    /// A preview: nothing is written or sent.
    dry: Option<preview::DryRun>,
    /// Cursor mode: what this run read, for the high-water mark.
    cursor: Option<cursor::CursorTrack>,
    /// When the live counts were last written.
    published: Option<std::time::Instant>,
    /// The key set and the records on their way to the key segments.
    keys: keys::Keys,
    /// `source.diff: warehouse`: the key table and the keys on their way to it.
    warehouse: Option<warehouse::Warehouse>,
}

impl<'a> RunCtx<'a> {
    fn new(
        state: &'a State,
        activation: &'a Activation,
        lease: &'a Lease,
        options: &'a RunOptions,
        dry: Option<preview::DryRun>,
    ) -> RunCtx<'a> {
        RunCtx {
            state,
            activation,
            seq: 0,
            counts: Counts::default(),
            seen_new: HashSet::new(),
            writer: None,
            writeback_key_type: None,
            lease,
            options,
            recorded: AtomicU64::new(0),
            budget: None,
            allowances: Vec::new(),
            anyone_forgotten: false,
            approval: None,
            content_shape: content_shape(activation),
            reshaped: false,
            contact_key: None,
            only: None,
            released: Vec::new(),
            fingerprint: [0; 16],
            legacy_fingerprint: None,
            started: state.clock().now(),
            dry,
            cursor: None,
            published: None,
            keys: keys::Keys::default(),
            warehouse: None,
        }
    }

    /// The run.
    async fn execute(&mut self, destination: &Destination) -> Result<()> {
        let activation = self.activation;
        let delivery = &activation.delivery;
        let name = activation.name.as_str();
        if self.dry.is_none() {
            self.recover().await?;
        }

        let mut spec = activation.source_spec();
        let source_error = |error| Error::Source {
            activation: name.to_owned(),
            error,
        };
        if self.only.as_ref().is_some_and(HashSet::is_empty) {
            tracing::info!("nothing to resend");
            return Ok(());
        }
        self.check_clock(&spec).await?;
        self.load_from_state().await?;
        let first_run = !self.state.has_completed_run(name).await?;
        let identity = destination.identity(delivery).map_err(Error::Internal)?;
        self.guards(first_run, &identity).await?;
        let budget = self.budget().await?;
        self.budget = budget;
        spec.since = self.plan_cursor(first_run).await?;
        // Until an activation's first run completes, `skip_existing` records
        // the rows already there instead of sending them.
        let baseline = activation.first_run == FirstRun::SkipExisting && first_run;
        let (mut source, keys) = self.open_source(&mut spec, baseline).await?;
        let schema = source.schema();
        if self.reads_key_baseline() {
            self.finish_loading_keys(keys).await?;
            return self.key_baseline(source).await;
        }
        let columns = Columns::of(activation, &schema);
        if let Some(writeback) = activation.writeback.as_ref().filter(|_| self.dry.is_none()) {
            self.writeback_key_type = source.db_type(&writeback.key_column).map(str::to_owned);
            self.writer = Some(
                Writer::for_source(&activation.source)
                    .await
                    .map_err(source_error)?,
            );
        }
        let (rows, sender) = self.bind(destination, delivery, &schema)?;
        let concurrency = destination.concurrency();
        let to = destination.name();

        if baseline {
            tracing::info!(
                "first run with first_run: skip_existing: recording existing rows, sending none"
            );
        }
        self.finish_loading_keys(keys).await?;
        let mut surge = if baseline || first_run {
            None
        } else {
            self.surge_guard().await?
        };
        // Under the surge guard, nothing is sent until the run's new rows are
        // all counted (a surge is refused as soon as it is one).
        let mut held: Vec<classify::Pending<AnyRequest>> = Vec::new();
        while let Some(batch) = source.next_batch().await {
            if self.options.cancel.is_cancelled() {
                tracing::warn!("interrupted: no more rows are read");
                break;
            }
            let batch = batch.map_err(source_error)?;
            // Cells the source could not decode: their rows are rejected.
            let undecodable = undecodable(&source);
            if baseline {
                self.record_baseline(&rows, &batch, &columns, &undecodable)
                    .await?;
                continue;
            }
            let pending = self
                .classify_batch(&rows, &batch, &columns, &undecodable)
                .await?;
            self.report();
            tracing::debug!(
                rows = batch.num_rows(),
                to_send = pending.len(),
                "batch classified"
            );
            let Some(guard) = surge.as_mut() else {
                self.send(sender.as_ref(), to, concurrency, pending).await?;
                self.publish_counts().await?;
                continue;
            };
            held.extend(pending);
            if let Some(message) = self.surge_verdict(guard).await {
                if self.dry.is_none() {
                    self.skip_held(std::mem::take(&mut held)).await?;
                }
                self.refuse(Err(Error::Refused {
                    activation: name.to_owned(),
                    message,
                }))?;
                // A preview goes on counting, with the refusal noted.
                surge = None;
                let held = std::mem::take(&mut held);
                self.send(sender.as_ref(), to, concurrency, held).await?;
            }
            self.publish_counts().await?;
        }
        self.send(sender.as_ref(), to, concurrency, held).await?;
        self.push_keys().await?;
        self.write_records(true).await
    }

    /// The destination bound to this run's source: the request fingerprints,
    /// the builder of requests over `schema`'s columns, and (unless a dry
    /// run) the outbox.
    fn bind(
        &mut self,
        destination: &Destination,
        delivery: &Delivery,
        schema: &arrow_schema::Schema,
    ) -> Result<Bound> {
        self.fingerprint =
            retl_diff::fingerprint(&destination.fingerprint(delivery).map_err(Error::Internal)?);
        self.legacy_fingerprint = destination
            .legacy_fingerprint(delivery)
            .map_err(Error::Internal)?
            .map(|text| retl_diff::fingerprint(&text));
        let rows = destination
            .rows(delivery, schema, self.state.clock().now())
            .map_err(Error::Internal)?
            .map_err(|error| Error::Unmapped {
                activation: self.activation.name.clone(),
                error,
            })?;
        let sender = match self.dry {
            None => Some(deliver::Outbox::of(destination, delivery, self)?),
            Some(_) => None,
        };
        Ok((rows, sender))
    }

    /// Shares the counts so far with a progress display, if there is one.
    pub(super) fn report(&self) {
        if let Some(progress) = &self.options.progress {
            progress
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .counts = self.counts;
        }
    }

    /// Writes the counts so far to the run's record: `retl runs list` shows
    /// a running run's live counts, updated after a batch, at most once a
    /// second (each write is a durable commit; a fast scan of a large table
    /// would otherwise spend its time on them).
    async fn publish_counts(&mut self) -> Result<()> {
        if self.dry.is_some()
            || self
                .published
                .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return Ok(());
        }
        self.published = Some(std::time::Instant::now());
        let mut tx = self.state.fenced(self.lease).await?;
        tx.update_counts(&self.counts).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sends rows to destination `to`, `concurrency` at a time (a dry run
    /// lists them instead).
    async fn send<S: Sender>(
        &mut self,
        sender: Option<&deliver::Outbox<S>>,
        to: &str,
        concurrency: usize,
        pending: Vec<classify::Pending<S::Request>>,
    ) -> Result<()> {
        let Some(sender) = sender else {
            let pending = self.without_suppressed(pending).await?;
            self.plan_all(pending);
            return Ok(());
        };
        match self.deliver_all(sender, concurrency, pending).await? {
            Some(error) => Err(Error::Destination {
                destination: to.to_owned(),
                error: Box::new(error),
            }),
            None => Ok(()),
        }
    }

    /// A dry run's [`send`](Self::send): counts what the budget lets go as
    /// `sent` and the rest as `skipped`, and lists the invitations.
    fn plan_all<R>(&mut self, pending: Vec<classify::Pending<R>>) {
        for p in pending {
            if fate::over_budget(&mut self.budget).is_some() {
                self.counts.skipped += 1;
                continue;
            }
            self.counts.sent += 1;
            let (body, origins) = p.shown.unwrap_or_default();
            if let Some(dry) = &mut self.dry {
                dry.out.plan(Planned {
                    key: p.row_key,
                    reference: p.reference,
                    body,
                    origins,
                });
            }
        }
    }

    /// Records ledger outcomes and run-log rows in one fenced transaction
    /// (a dry run only notes its rejections).
    async fn commit(
        &mut self,
        outcomes: &[Outcome<'_>],
        changed: &[(RowHash, RowHash)],
        logs: &[RowLog],
    ) -> Result<()> {
        if let Some(dry) = &mut self.dry {
            dry.out.note(logs);
            return Ok(());
        }
        if outcomes.is_empty() && changed.is_empty() && logs.is_empty() {
            return Ok(());
        }
        let mut tx = self.state.fenced(self.lease).await?;
        tx.record(outcomes).await?;
        tx.note_changed(changed).await?;
        tx.log_rows(self.seq, logs).await?;
        tx.commit().await?;
        self.seq += logs.len() as u64;
        Ok(())
    }

    /// At the hold point asked for, says so and waits until cancelled.
    async fn hold(&self, point: HoldPoint) {
        hold_at(self.options, point, &self.recorded).await;
    }
}
