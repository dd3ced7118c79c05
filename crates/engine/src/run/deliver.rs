//! Delivering the rows of a batch to any [`Sender`]. Each row's requests run
//! in a task of its own, following `retl_destination::send_row`: it waits
//! for the destination to be ready (a token, a place under the rate limits),
//! then marks the row in flight (a fenced transaction, lent as the row's
//! [`Protocol`]), then sends; the run's loop records each outcome as it
//! arrives.
//!
//! Marking last means a row is in flight only when its bytes are about to go
//! out: a run killed while rows wait for the rate window leaves them as they
//! were, sent by the next run, not `uncertain`. Every wait races the run's
//! cancellation, and an interrupt has one deadline (`RunOptions::drain` from
//! the signal): no request starts after the signal, requests under way may
//! finish until shortly before the deadline, and what is still running then is
//! `uncertain` if it was marked, `skipped` if not.
//!
//! The loop, the interrupt's accounting and the
//! recording of each outcome share the outbox and are read together.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use retl_destination::{
    Attempt, BoxSender, Class, Failure as _, Mark, Policy, Protocol, Sender, send_row,
};
use retl_diff::{RowHash, Status};
use retl_state::{Lease, Outcome, RowLog, RowOutcome, State};

use tracing::Instrument as _;

use super::classify::Pending;
use super::dedupe::{forgotten, release, since, suppressed};
use super::fate::over_budget;
use super::limits::{allowance_spent, month_of};
use super::{HoldPoint, RunCtx, RunOptions, hold_at};
use crate::config::Destination;
use crate::{Error, Result};

/// What came of one row's requests ([`send_row`]); a failed mark is the run's.
type Delivery<S> = Attempt<<S as Sender>::Error, retl_state::Error>;

/// Gives back a marked row's place in each allowance (its request was not
/// carried out).
async fn release_allowances(
    tx: &mut retl_state::Fenced,
    allowances: &[super::limits::Allowance],
    state: &State,
) -> retl_state::Result<()> {
    let month = month_of(state);
    for allowance in allowances {
        tx.release_allowance(&allowance.scope, &month).await?;
    }
    Ok(())
}

/// What a row not carried out gives back when its outcome is recorded.
#[derive(Debug, Clone, Copy)]
struct GiveBack {
    /// Its customer's dedupe claims.
    claims: bool,
    /// Its places in the monthly allowances (it was marked).
    allowances: bool,
    /// Its mark: the ledger entry it had before.
    mark: bool,
}

/// What the delivery loop of one run works with: a destination and what its
/// request tasks share.
pub(super) struct Outbox<S: Sender> {
    net: Arc<Net<S>>,
}

/// A row whose request task is under way, for the accounting of an interrupt.
struct UnderWay {
    content: RowHash,
    row_key: String,
    reference: String,
    previous: Option<retl_diff::Entry>,
    contact: Option<String>,
}

/// What the request tasks of one run share.
struct Net<S: Sender> {
    /// The activation's dedupe scopes and windows.
    dedupe: Vec<(String, Duration)>,
    /// The monthly allowances each row claims a place in when it is marked.
    allowances: Vec<super::limits::Allowance>,
    /// Whether the state holds a forgotten person to look each customer up in.
    anyone_forgotten: bool,
    sender: S,
    policy: Policy,
    /// How long a row may keep failing transiently before it is given up.
    give_up_after: Duration,
    /// 429s this run may still wait out before they count as failures.
    rate_limited_budget: AtomicU32,
    /// Set when the destination refused the run: no new request leaves.
    stop: AtomicBool,
    /// Where rows are marked in flight, under the run's lease.
    state: State,
    lease: Lease,
    options: RunOptions,
    /// Arrivals at [`HoldPoint::InFlight`].
    in_flight_arrivals: AtomicU64,
    /// Keys marked in flight and not yet recorded.
    marked: Mutex<HashSet<RowHash>>,
}

impl<S: Sender> Net<S> {
    fn marked(&self) -> std::sync::MutexGuard<'_, HashSet<RowHash>> {
        self.marked.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One row's side of the request protocol: its mark in the ledger, the run's
/// interrupt and budgets.
struct Row<'a, S: Sender> {
    net: &'a Net<S>,
    p: &'a Pending<S::Request>,
}

impl<S: Sender> Protocol for Row<'_, S> {
    type Error = retl_state::Error;

    /// Marks the row in flight, just before its request leaves, and claims
    /// its customer in each dedupe scope, in one transaction; a customer
    /// invited within a scope's window withholds the row (nothing claimed).
    async fn mark(&self) -> retl_state::Result<Mark> {
        let p = self.p;
        if let Some(contact) = p.contact.as_ref().filter(|_| self.net.anyone_forgotten) {
            let hashes: Vec<&str> = std::iter::once(contact.as_str())
                .chain(p.legacy_contacts.iter().map(String::as_str))
                .collect();
            if let Some(at) = self.net.state.contact_forgotten(&hashes).await? {
                return Ok(Mark::Withheld(forgotten(&at)));
            }
        }
        let mut tx = self.net.state.fenced(&self.net.lease).await?;
        if let Some(contact) = &p.contact {
            for (scope, within) in &self.net.dedupe {
                let since = since(&self.net.state, *within);
                if let Some(earlier) = tx
                    .claim_contact(scope, contact, &p.legacy_contacts, &p.key, &since)
                    .await?
                {
                    // Dropped uncommitted: no claim and no mark stay.
                    return Ok(Mark::Withheld(suppressed(&earlier, *within)));
                }
            }
        }
        let month = month_of(&self.net.state);
        for allowance in &self.net.allowances {
            if !tx
                .claim_allowance(&allowance.scope, &month, allowance.limit)
                .await?
            {
                // Another run spent it first. Dropped uncommitted: nothing stays.
                return Ok(Mark::Deferred(allowance_spent(allowance)));
            }
        }
        tx.mark_in_flight(&p.key, &p.content, &p.row_key, Some(&p.reference))
            .await?;
        tx.commit().await?;
        self.net.marked().insert(p.key);
        Ok(Mark::Marked)
    }

    /// Gives a marked row back (interrupted before its request left), and
    /// its customer's and its allowances' claims.
    async fn unmark(&self) -> retl_state::Result<()> {
        let mut tx = self.net.state.fenced(&self.net.lease).await?;
        release(&mut tx, &self.net.dedupe, self.p).await?;
        release_allowances(&mut tx, &self.net.allowances, &self.net.state).await?;
        tx.restore(&self.p.key, self.p.previous.as_ref()).await?;
        tx.commit().await?;
        self.net.marked().remove(&self.p.key);
        Ok(())
    }

    async fn marked(&self) {
        let net = self.net;
        hold_at(&net.options, HoldPoint::InFlight, &net.in_flight_arrivals).await;
    }

    async fn cancelled(&self) {
        self.net.options.cancel.cancelled().await;
    }

    fn is_cancelled(&self) -> bool {
        self.net.options.cancel.is_cancelled()
    }

    fn stopped(&self) -> bool {
        self.net.stop.load(Ordering::SeqCst)
    }

    fn take_rate_limited(&self) -> bool {
        self.net
            .rate_limited_budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl Outbox<BoxSender> {
    /// The outbox of `destination` for `delivery`'s requests, retrying as
    /// the destination's `retry:` says.
    pub(super) fn of(
        destination: &Destination,
        delivery: &crate::config::Delivery,
        ctx: &RunCtx<'_>,
    ) -> Result<Outbox<BoxSender>> {
        let sender = destination
            .sender(delivery, ctx.state.token_cache())
            .map_err(Error::Internal)?
            .map_err(|error| Error::Destination {
                destination: destination.name().to_owned(),
                error,
            })?;
        let retry = destination.retry();
        Ok(Outbox::new(
            sender,
            retry.policy(),
            retry.give_up_after,
            retry.rate_limited_retries,
            ctx,
        ))
    }
}

impl<S: Sender> Outbox<S> {
    /// An outbox to `sender`, retrying by `policy`, giving a row up after
    /// it has failed for `give_up_after`, waiting out at most `rate_limited` 429s.
    pub(super) fn new(
        sender: S,
        policy: Policy,
        give_up_after: Duration,
        rate_limited: u32,
        ctx: &RunCtx<'_>,
    ) -> Self {
        Outbox {
            net: Arc::new(Net {
                dedupe: ctx.activation.dedupe.clone(),
                allowances: ctx.allowances.clone(),
                anyone_forgotten: ctx.anyone_forgotten,
                sender,
                policy,
                give_up_after,
                rate_limited_budget: AtomicU32::new(rate_limited),
                stop: AtomicBool::new(false),
                state: ctx.state.clone(),
                lease: ctx.lease.clone(),
                options: ctx.options.clone(),
                in_flight_arrivals: AtomicU64::new(0),
                marked: Mutex::new(HashSet::new()),
            }),
        }
    }
}

/// A row's refused request, and when the row began failing (if it failed
/// transiently before).
struct Refusal<E> {
    error: E,
    failing_since: Option<chrono::DateTime<chrono::Utc>>,
}

/// The reason of a row not sent because its run stopped.
fn stopped_reason(cancelled: bool) -> &'static str {
    if cancelled {
        "run interrupted before this row was sent"
    } else {
        "run stopped before this row was sent"
    }
}

impl RunCtx<'_> {
    /// When requests still running after an interrupt are given up: shortly
    /// before the deadline, which leaves time to record them.
    fn give_up_at(&self) -> Option<tokio::time::Instant> {
        let drain = self.options.drain;
        self.options
            .cancel
            .deadline(drain.saturating_sub(Duration::from_secs(2).min(drain / 4)))
    }

    /// Bounds `work` by the interrupt's deadline, once there is one.
    async fn by_deadline<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        match self.options.cancel.deadline(self.options.drain) {
            None => work.await,
            Some(deadline) => {
                tokio::time::timeout_at(deadline, work)
                    .await
                    .unwrap_or(Err(Error::Deadline {
                        what: "the state database did not answer",
                    }))
            }
        }
    }

    /// Sends `pending` with up to `concurrency` requests in flight, committing each
    /// outcome as it arrives. Returns the error that stopped the run, if any.
    pub(super) async fn deliver_all<S: Sender>(
        &mut self,
        outbox: &Outbox<S>,
        concurrency: usize,
        pending: Vec<Pending<S::Request>>,
    ) -> Result<Option<S::Error>> {
        let mut queue = pending.into_iter();
        let mut running = tokio::task::JoinSet::new();
        // What is under way, to account for requests given up at an interrupt.
        let mut under_way: HashMap<RowHash, UnderWay> = HashMap::new();
        let mut fatal = None;
        let mut over = Vec::new();
        loop {
            while running.len() < concurrency.max(1)
                && !outbox.net.stop.load(Ordering::SeqCst)
                && !self.options.cancel.is_cancelled()
            {
                let Some(p) = queue.next() else { break };
                if let Some(why) = over_budget(&mut self.budget) {
                    // Over a cap or the --limit: not sent, sent by a later run.
                    over.push((p, why));
                    continue;
                }
                under_way.insert(
                    p.key,
                    UnderWay {
                        content: p.content,
                        row_key: p.row_key.clone(),
                        reference: p.reference.clone(),
                        previous: p.previous,
                        contact: p.contact.clone(),
                    },
                );
                let net = outbox.net.clone();
                // The request task logs under the run's span (run_id, activation).
                running.spawn(
                    async move {
                        let row = Row { net: &net, p: &p };
                        let delivery = send_row(&net.sender, net.policy, &row, &p.request).await;
                        (p, delivery)
                    }
                    .in_current_span(),
                );
            }
            let next = match self.give_up_at() {
                Some(give_up) => {
                    match tokio::time::timeout_at(give_up, running.join_next()).await {
                        Ok(next) => next,
                        Err(_) => {
                            tracing::warn!(
                                abandoned = running.len(),
                                "requests did not finish before the interrupt's deadline"
                            );
                            running.abort_all();
                            break;
                        }
                    }
                }
                None => tokio::select! {
                    next = running.join_next() => next,
                    () = self.options.cancel.cancelled() => continue,
                },
            };
            let Some(done) = next else {
                break;
            };
            let (p, delivery) =
                done.map_err(|e| Error::Internal(format!("a request task failed: {e}")))?;
            under_way.remove(&p.key);
            if let Attempt::Lost(error) = delivery {
                // The lease is gone (or the database): nothing more can be recorded.
                return Err(error.into());
            }
            self.record_delivery(outbox, p, delivery, &mut fatal)
                .await?;
            self.hold(HoldPoint::Recorded).await;
        }
        let marked = outbox.net.marked().clone();
        self.settle_unfinished(&under_way, &marked, over, queue)
            .await?;
        Ok(fatal)
    }

    /// Records what the loop left: requests given up at the deadline (those
    /// marked may have reached the destination: `uncertain`; the others never
    /// left: `skipped`, their mark undone), rows over the budget and rows
    /// never started (`skipped`, sent by a later run).
    async fn settle_unfinished<R>(
        &mut self,
        under_way: &HashMap<RowHash, UnderWay>,
        marked: &HashSet<RowHash>,
        over: Vec<(Pending<R>, String)>,
        not_started: impl Iterator<Item = Pending<R>>,
    ) -> Result<()> {
        let cancelled = self.options.cancel.is_cancelled();
        let uncertain_reason =
            "interrupted while the request was under way: delivery unknown, not resent";
        let mut outcomes = Vec::new();
        let mut logs = Vec::new();
        // Rows whose task was given up before it counted them as marked never
        // left; if their mark was committing when the task stopped, it is undone.
        let mut give_back = Vec::new();
        for (key, row) in under_way {
            if marked.contains(key) {
                self.counts.uncertain += 1;
                outcomes.push(Outcome {
                    key: *key,
                    content: row.content,
                    status: Status::Uncertain,
                    row_key: Some(&row.row_key),
                    reference: Some(&row.reference),
                    error: Some(uncertain_reason),
                });
                logs.push(RowLog {
                    contact_hash: row.contact.clone(),
                    ..RowLog::new(
                        row.row_key.as_str(),
                        Some(&row.reference),
                        RowOutcome::Uncertain,
                        Some(uncertain_reason.to_owned()),
                    )
                });
            } else {
                self.counts.skipped += 1;
                give_back.push((*key, row.previous));
                logs.push(RowLog {
                    contact_hash: row.contact.clone(),
                    ..RowLog::new(
                        row.row_key.as_str(),
                        Some(&row.reference),
                        RowOutcome::Skipped,
                        Some(stopped_reason(cancelled).to_owned()),
                    )
                });
            }
        }
        let stopped = stopped_reason(cancelled);
        let not_started = not_started.map(|p| (p, stopped.to_owned()));
        for (p, why) in over.into_iter().chain(not_started) {
            self.counts.skipped += 1;
            self.hold_back(p.cursor.as_ref());
            logs.push(p.log(RowOutcome::Skipped, Some(why)));
        }
        if !give_back.is_empty() {
            let (state, lease) = (self.state, self.lease);
            self.by_deadline(async {
                let mut tx = state.fenced(lease).await?;
                for (key, previous) in &give_back {
                    tx.restore(key, previous.as_ref()).await?;
                }
                tx.commit().await?;
                Ok(())
            })
            .await?;
        }
        self.commit_bounded(&outcomes, &logs).await
    }

    /// [`commit`](RunCtx::commit), by the interrupt's deadline once there is one.
    async fn commit_bounded(&mut self, outcomes: &[Outcome<'_>], logs: &[RowLog]) -> Result<()> {
        match self.options.cancel.deadline(self.options.drain) {
            None => self.commit(outcomes, &[], logs).await,
            Some(deadline) => tokio::time::timeout_at(deadline, self.commit(outcomes, &[], logs))
                .await
                .unwrap_or(Err(Error::Deadline {
                    what: "the state database did not answer",
                })),
        }
    }

    /// Commits what came of one row's requests.
    async fn record_delivery<S: Sender>(
        &mut self,
        outbox: &Outbox<S>,
        p: Pending<S::Request>,
        delivery: Delivery<S>,
        fatal: &mut Option<S::Error>,
    ) -> Result<()> {
        let mut log = p.log(RowOutcome::Skipped, None);
        let mut restore = false;
        // Marked, so holding a place in each allowance, until recorded.
        let mut claimed = matches!(delivery, Attempt::Delivered(_));
        let status = match delivery {
            Attempt::Delivered(delivered) => {
                self.counts.sent += 1;
                log.request.clone_from(&p.recorded);
                log.details.status = delivered.status;
                log.external_id = delivered.external_id;
                if delivered.url.is_some() {
                    log.details.url = delivered.url;
                    if let Some(problem) = self.write_back(&p, log.details.url.as_deref()).await {
                        self.counts.writeback_failed += 1;
                        log.reason = Some(problem);
                    }
                } else {
                    let notes: Vec<&str> = p
                        .notes
                        .iter()
                        .map(String::as_str)
                        .chain(delivered.note.as_deref())
                        .collect();
                    if !notes.is_empty() {
                        log.reason = Some(notes.join("; "));
                    }
                }
                Some(Status::Sent)
            }
            Attempt::NotStarted => {
                self.counts.skipped += 1;
                log.reason = Some(stopped_reason(self.options.cancel.is_cancelled()).to_owned());
                None
            }
            Attempt::Lost(_) => unreachable!("a lost lease ends the loop before recording"),
            Attempt::Withheld(why) => {
                self.counts.suppressed += 1;
                log.reason = Some(why);
                Some(Status::Suppressed)
            }
            Attempt::Deferred(why) => {
                self.counts.skipped += 1;
                log.reason = Some(why);
                None
            }
            Attempt::Refused { error, marked } => {
                claimed = marked;
                let since = self.failing_since(&p, &error).await;
                let refusal = Refusal {
                    error,
                    failing_since: since,
                };
                let (status, give_back) = self.refused(outbox, refusal, &mut log, fatal);
                restore = give_back && marked;
                status
            }
        };
        if matches!(status, Some(Status::Failed) | None) {
            self.hold_back(p.cursor.as_ref());
        }
        log.outcome = match status {
            Some(Status::Sent) => RowOutcome::Sent,
            Some(Status::Rejected) => RowOutcome::Rejected,
            Some(Status::Failed) => RowOutcome::Failed,
            Some(Status::Uncertain) => RowOutcome::Uncertain,
            Some(Status::GivenUp) => RowOutcome::GivenUp,
            Some(Status::Suppressed) => RowOutcome::Suppressed,
            _ => RowOutcome::Skipped,
        };
        let outcome = status.map(|status| Outcome {
            key: p.key,
            // A rejection is remembered by its request (see `retl_diff::classify`).
            content: if status == Status::Rejected {
                p.request_hash
            } else {
                p.content
            },
            status,
            row_key: Some(&p.row_key),
            reference: Some(&p.reference),
            error: log.reason.as_deref(),
        });
        let outcomes: Vec<Outcome<'_>> = outcome.into_iter().collect();
        // Not carried out: the customer's claims go back.
        let unclaim = !matches!(
            status,
            Some(Status::Sent | Status::Uncertain | Status::Suppressed)
        );
        let give_back = GiveBack {
            claims: unclaim,
            allowances: unclaim && claimed,
            mark: restore,
        };
        self.record_one(&outbox.net, &p, give_back, &outcomes, &log)
            .await?;
        outbox.net.marked().remove(&p.key);
        self.recorded_one(status, p.key_values).await
    }

    /// Commits one row's outcome and run-log row, with what it gives back.
    async fn record_one<S: Sender>(
        &self,
        net: &Net<S>,
        p: &Pending<S::Request>,
        give_back: GiveBack,
        outcomes: &[Outcome<'_>],
        log: &RowLog,
    ) -> Result<()> {
        let (state, lease, seq) = (self.state, self.lease, self.seq);
        self.by_deadline(async {
            let mut tx = state.fenced(lease).await?;
            if give_back.claims {
                release(&mut tx, &net.dedupe, p).await?;
            }
            if give_back.allowances {
                release_allowances(&mut tx, &net.allowances, state).await?;
            }
            if give_back.mark {
                tx.restore(&p.key, p.previous.as_ref()).await?;
            }
            tx.record(outcomes).await?;
            tx.log_rows(seq, std::slice::from_ref(log)).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// After a row's outcome is committed: the next run-log row, the
    /// counts shown, and (`diff: warehouse`) a settled key for the key table.
    async fn recorded_one(
        &mut self,
        status: Option<Status>,
        key_values: Option<Vec<retl_source::KeyValue>>,
    ) -> Result<()> {
        self.seq += 1;
        self.report();
        if matches!(status, Some(Status::Sent | Status::Suppressed)) {
            self.settled_key(key_values).await?;
        }
        Ok(())
    }

    /// When a row refused with a transient `error` began failing, if it
    /// failed before: a row that failed for the first time began now. A
    /// state that cannot say is taken as "now" (the row is retried, not
    /// given up).
    async fn failing_since<R, E: retl_destination::Failure>(
        &self,
        p: &Pending<R>,
        error: &E,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let transient = matches!(error.class(), Class::Transient | Class::RateLimited);
        let failed_before = p
            .previous
            .is_some_and(|entry| entry.status == Status::Failed);
        if !transient || !failed_before {
            return None;
        }
        let since = self
            .state
            .failing_since(&self.activation.name, &p.key)
            .await
            .ok()??;
        chrono::DateTime::parse_from_rfc3339(&since)
            .ok()
            .map(|at| at.with_timezone(&chrono::Utc))
    }

    /// What a refused row becomes, by its failure's class: its ledger status
    /// (`None`: none, the run stops) and whether its mark is to be undone.
    fn refused<S: Sender>(
        &mut self,
        outbox: &Outbox<S>,
        refusal: Refusal<S::Error>,
        log: &mut RowLog,
        fatal: &mut Option<S::Error>,
    ) -> (Option<Status>, bool) {
        let Refusal {
            error,
            failing_since,
        } = refusal;
        let answer = error.answer();
        log.details.status = answer.status;
        log.details.error_code = answer.error_code;
        log.details.correlation_id = answer.correlation_id;
        log.reason = Some(error.to_string());
        match error.class() {
            Class::Rejected => {
                self.counts.rejected += 1;
                (Some(Status::Rejected), false)
            }
            Class::Uncertain => {
                self.counts.uncertain += 1;
                (Some(Status::Uncertain), false)
            }
            Class::Transient | Class::RateLimited => {
                let now = self.state.clock().now();
                let failing = failing_since.map(|since| (now - since).to_std().unwrap_or_default());
                if let Some(failing) = failing.filter(|f| *f >= outbox.net.give_up_after) {
                    self.counts.given_up += 1;
                    log.reason = Some(format!(
                        "given up after failing for {} (retry.give_up_after {}): {error}; `retl runs resend RUN_ID --given-up` sends it again",
                        humantime::format_duration(Duration::from_secs(failing.as_secs())),
                        humantime::format_duration(outbox.net.give_up_after)
                    ));
                    (Some(Status::GivenUp), false)
                } else {
                    self.counts.failed += 1;
                    (Some(Status::Failed), false)
                }
            }
            Class::Fatal => {
                // The destination refused the run, not this row: it was not
                // accepted, so its key goes back to where it was.
                outbox.net.stop.store(true, Ordering::SeqCst);
                self.counts.skipped += 1;
                log.reason = Some(format!("run stopped: {error}"));
                fatal.get_or_insert(error);
                (None, true)
            }
        }
    }
}
