//! One run of one activation, as a pipeline of phases. Each phase owns
//! what it makes and hands the next what it needs; none calls back into an
//! earlier one:
//!
//! 1. **take over** ([`start`]): the lease taken, a resend's rows released,
//!    rows an earlier run left in flight made `uncertain`, an approval, the
//!    contact key: a [`Taken`](start::Taken).
//! 2. **clear** ([`limits`]): the clock, the guards (a renamed activation, a
//!    moved destination, a large first run), the budget (with the monthly
//!    [`allowance`]s) and the [`surge`] guard: a [`Cleared`](limits::Cleared).
//! 3. **open**: the cursor's plan ([`cursor`]), the warehouse's key table
//!    ([`warehouse`]), the source and the key set ([`keys`]), which make the
//!    run's [`Sinks`](sinks::Sinks) (where settled keys and cursor values
//!    go); the destination bound to the source's columns: a
//!    [`Classifier`](classify::Classifier) and a
//!    [`Deliverer`](deliver::Deliverer).
//! 4. **for each batch**: classify ([`classify`], deciding each row with
//!    [`fate`]), then deliver ([`deliver`]; a preview plans instead); the
//!    surge guard watches between them.
//! 5. **end** ([`end`]): the keys held written, the end recorded, the
//!    housekeeping.
//!
//! Every phase works with the [`Run`]: what runs, under which lease and
//! options, its [`Effects`](effects::Effects) (live or dry: a preview is
//! the dry implementation, not a flag) and its counts, which change only
//! through [`tally::count`]. [`options`] holds what a run is started with,
//! [`dedupe`] one invitation per customer, [`writeback`] links written back.

mod allowance;
mod classify;
mod cursor;
mod dedupe;
mod deliver;
mod effects;
mod end;
mod fate;
mod key_values;
mod keys;
mod limits;
mod options;
mod preview;
mod sinks;
mod start;
mod surge;
mod tally;
#[cfg(test)]
mod tests;
mod warehouse;
mod writeback;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

use retl_source::Source;
use retl_state::{Counts, Lease, RunStatus, RunSummary, State};
use tracing::Instrument;

use crate::config::{Activation, Destination, FirstRun};
use crate::{Error, Result};

pub use allowance::{Allowance, allowances};
use effects::Effects;
use end::{heartbeat, prune, record_end, scrub, unrecorded};
use options::by_interrupt;
pub(super) use options::hold_at;
pub use options::{Cancel, Hold, HoldPoint, Progress, Resend, RunOptions};
pub use preview::{Planned, Preview, Refusal, approval_text};
use sinks::Sinks;
use tally::Event;
pub(crate) use warehouse::unknown_keys;

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
    let started = open_record(state, &lease, activation);
    let mut summary = match started.instrument(span.clone()).await {
        Ok(summary) => summary,
        Err(e) => {
            let _ = state.release_lease(&lease).await;
            return Err(e);
        }
    };
    tracing::info!(parent: &span, state = %state.url(), "run started");
    let mut run = Run::new(
        state,
        activation,
        &lease,
        options,
        Effects::live(state, &lease),
    );
    let mut sinks = Sinks::default();
    // Boxed: the phases' state is large, the caller's future stays small.
    let result = Box::pin(run.execute(destination, &mut sinks))
        .instrument(span.clone())
        .await;
    if result.is_err() {
        sinks.keep_what_is_settled(&run).instrument(span).await;
    }
    summary.counts = run.counts;
    let ctx_released = std::mem::take(&mut run.released);
    let failure = judge(&mut summary, result, activation, options);
    let completed = summary.status == RunStatus::Completed;
    let cursor = sinks.cursor.as_ref().filter(|_| completed);
    let shape = Some(run.content_shape.as_str()).filter(|_| completed);
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

/// Opens the run's record: earlier runs that never finished are marked
/// abandoned, and the source it reads is noted.
async fn open_record(state: &State, lease: &Lease, activation: &Activation) -> Result<RunSummary> {
    let mut tx = state.fenced(lease).await?;
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
    Ok(summary)
}

/// The run's status and error in `summary` from what its phases gave
/// (`result`, the counts already in it); the failure, if it failed. Counts
/// that do not add up fail it: the accounting identity is asserted here.
fn judge(
    summary: &mut RunSummary,
    result: Result<()>,
    activation: &Activation,
    options: &RunOptions,
) -> Option<Error> {
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
    failure
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
    let mut run = Run::new(
        state,
        activation,
        &lease,
        options,
        Effects::dry(&activation.name),
    );
    Box::pin(run.execute(destination, &mut Sinks::default())).await?;
    let counts = run.counts;
    let mut out = run
        .effects
        .into_preview()
        .expect("a dry run keeps its preview");
    out.counts = counts;
    out.estimated_seconds = destination.estimate(out.counts.sent).as_secs();
    out.approval = state.waiting_approval(&activation.name).await?;
    if activation.first_run == FirstRun::SkipExisting
        && !options.baseline
        && state.has_completed_run(&activation.name).await?
    {
        let name = &activation.name;
        out.first_run_note = Some(format!(
            "first_run: skip_existing no longer applies: a run of `{name}` has completed, so the next run sends every row not settled yet ({} now) instead of recording them; to record the rows there now as baseline, sending none: `retl baseline {name}`",
            out.counts.sent
        ));
    }
    Ok(out)
}

/// What every phase of one run works with: what runs, under which lease
/// and options, its effects and its counts.
struct Run<'a> {
    state: &'a State,
    activation: &'a Activation,
    /// The activation's lease: every write checks it.
    lease: &'a Lease,
    options: &'a RunOptions,
    /// The run's start (`max_row_age` counts back from it).
    started: chrono::DateTime<chrono::Utc>,
    /// The mapped columns this run's content hashes are made under.
    content_shape: String,
    /// What it writes (live), or keeps to show (dry).
    effects: Effects<'a>,
    /// Changed only through [`Run::count`].
    counts: Counts,
    /// Arrivals at [`HoldPoint::Recorded`].
    recorded: AtomicU64,
    /// A resend's released rows, by key text: told when the run ends.
    released: Vec<String>,
}

impl<'a> Run<'a> {
    fn new(
        state: &'a State,
        activation: &'a Activation,
        lease: &'a Lease,
        options: &'a RunOptions,
        effects: Effects<'a>,
    ) -> Run<'a> {
        Run {
            state,
            activation,
            lease,
            options,
            started: state.clock().now(),
            content_shape: content_shape(activation),
            effects,
            counts: Counts::default(),
            recorded: AtomicU64::new(0),
            released: Vec::new(),
        }
    }

    /// Counts one row's `event`.
    fn count(&mut self, event: Event) {
        tally::count(&mut self.counts, event, 1);
    }

    /// Counts `n` rows' `event`.
    fn count_n(&mut self, event: Event, n: u64) {
        tally::count(&mut self.counts, event, n);
    }

    /// The run, phase after phase.
    async fn execute(&mut self, destination: &Destination, sinks: &mut Sinks) -> Result<()> {
        let activation = self.activation;
        let delivery = &activation.delivery;
        let name = activation.name.as_str();
        let only = if self.effects.is_live() {
            self.recover().await?
        } else {
            None
        };
        if only
            .as_ref()
            .is_some_and(std::collections::HashSet::is_empty)
        {
            tracing::info!("nothing to resend");
            return Ok(());
        }
        let mut spec = activation.source_spec();
        self.check_clock(&spec).await?;
        let taken = self.take_over(only).await?;
        if self.options.baseline {
            let verdict = self.baseline_allowed().await;
            self.effects.refuse(verdict)?;
        }
        let first_run = !self.state.has_completed_run(name).await?;
        let identity = destination.identity(delivery)?;
        let cleared = self.clear(&taken, first_run, &identity).await?;
        // Until an activation's first run completes, `skip_existing` records
        // the rows already there instead of sending them.
        // `retl baseline` on a first run takes the same way (the key
        // segments); later, each row to send is settled as baseline instead.
        let baseline =
            (activation.first_run == FirstRun::SkipExisting || self.options.baseline) && first_run;
        let (track, since) = self.plan_cursor(first_run).await?;
        sinks.cursor = track;
        spec.since = since;
        let (source, keys) = sinks.open(self, &mut spec, baseline).await?;
        if sinks.reads_key_baseline(self) {
            sinks.keys.finish_loading(self, keys).await?;
            return sinks.key_baseline(self, source).await;
        }
        let schema = source.schema();
        let limits::Cleared {
            budget,
            allowances,
            surge,
        } = cleared;
        let forgotten = taken.anyone_forgotten;
        let classifier = classify::Classifier::new(self, destination, &schema, taken)?;
        let deliverer =
            deliver::Deliverer::new(self, destination, &source, (budget, allowances), forgotten)
                .await?;
        if baseline {
            tracing::info!(
                "first run with first_run: skip_existing: recording existing rows, sending none"
            );
        }
        sinks.keys.finish_loading(self, keys).await?;
        let batches = Batches {
            source,
            classifier,
            deliverer,
            surge,
            baseline,
        };
        batches.run(self, sinks).await?;
        sinks.push_keys(self).await?;
        sinks.write_records(self, true).await
    }

    /// `retl baseline` is refused while rows of the activation are uncertain
    /// (those left in flight are uncertain by now): a person settles them
    /// first, since settling them as baseline would hide them.
    async fn baseline_allowed(&self) -> Result<()> {
        let name = &self.activation.name;
        let uncertain = self.state.attention(name).await?.uncertain;
        if uncertain == 0 {
            return Ok(());
        }
        Err(Error::Refused {
            activation: name.clone(),
            message: format!(
                "refused; nothing recorded: {uncertain} row(s) of `{name}` are uncertain (they may have reached Trustpilot): settle them first with `retl runs settle RUN_ID --key K (--sent | --not-sent)` (`retl runs list --activation {name}` names the runs), then run `retl baseline {name}` again"
            ),
        })
    }

    /// Shares the counts so far with a progress display, if there is one.
    fn report(&self) {
        if let Some(progress) = &self.options.progress {
            progress
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .counts = self.counts;
        }
    }

    /// At the hold point asked for, says so and waits until cancelled.
    async fn hold(&self, point: HoldPoint) {
        hold_at(self.options, point, &self.recorded).await;
    }

    /// The error of the activation's source.
    fn source_error(&self, error: retl_source::Error) -> Error {
        Error::Source {
            activation: self.activation.name.clone(),
            error,
        }
    }
}

/// The batch phase: each batch read, classified, then delivered; under the
/// surge guard, rows are held until the guard has counted them all.
struct Batches {
    source: Source,
    classifier: classify::Classifier,
    deliverer: deliver::Deliverer,
    surge: Option<surge::Surge>,
    /// A first run with `first_run: skip_existing`: rows recorded, none sent.
    baseline: bool,
}

/// New rows held until the read ends, so that a key seen twice sends none
/// of its rows; past this many, the oldest go out (a key repeated further
/// apart in the read than this may have had one row sent).
const HOLD_ROWS: usize = 50_000;

impl Batches {
    async fn run(mut self, run: &mut Run<'_>, sinks: &mut Sinks) -> Result<()> {
        let mut held: Vec<classify::Pending> = Vec::new();
        while let Some(batch) = self.source.next_batch().await {
            if run.options.cancel.is_cancelled() {
                tracing::warn!("interrupted: no more rows are read");
                break;
            }
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    // What was read before the failure goes out (unless the
                    // surge guard is still counting): the run fails after.
                    let error = run.source_error(e);
                    if self.surge.is_none() {
                        self.flush(run, sinks, std::mem::take(&mut held)).await?;
                    }
                    return Err(error);
                }
            };
            // Cells the source could not decode: their rows are rejected.
            let undecodable = undecodable(&self.source);
            if self.baseline {
                self.classifier
                    .record_baseline(run, sinks, &batch, &undecodable)
                    .await?;
                continue;
            }
            let pending = self
                .classifier
                .classify(run, sinks, &batch, &undecodable)
                .await?;
            run.report();
            tracing::debug!(
                rows = batch.num_rows(),
                to_send = pending.len(),
                "batch classified"
            );
            held.extend(pending);
            match self.surge.as_mut() {
                Some(guard) => {
                    if let Some(message) = guard.verdict(run).await {
                        if run.effects.is_live() {
                            surge::skip_held(run, std::mem::take(&mut held)).await?;
                        }
                        run.effects.refuse(Err(Error::Refused {
                            activation: run.activation.name.clone(),
                            message,
                        }))?;
                        // A preview goes on counting, with the refusal noted.
                        self.surge = None;
                    }
                }
                None if held.len() >= HOLD_ROWS => {
                    let oldest: Vec<_> = held.drain(..held.len() - HOLD_ROWS / 2).collect();
                    self.flush(run, sinks, oldest).await?;
                }
                None => {}
            }
            run.effects.publish(&run.counts).await?;
        }
        self.flush(run, sinks, held).await
    }

    /// Sends `held`, but the rows whose key turned out to be repeated in
    /// the read (`duplicate`: none of its rows is sent).
    async fn flush(
        &mut self,
        run: &mut Run<'_>,
        sinks: &mut Sinks,
        held: Vec<classify::Pending>,
    ) -> Result<()> {
        let held = self.classifier.without_duplicates(run, sinks, held).await?;
        self.deliverer.send(run, sinks, held).await
    }
}
