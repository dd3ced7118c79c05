//! The deliver phase: the rows a batch hands on, sent through the
//! destination's boxed [`Sender`] (a preview plans them instead:
//! [`Deliverer`]). Each row's requests run
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

use retl_destination::{Attempt, BoxSender, Class, Failure, Mark, Policy, Protocol, send_row};
use retl_diff::{RowHash, Status};
use retl_source::Source;
use retl_state::{Lease, Outcome, RowLog, RowOutcome, State};

use tracing::Instrument as _;

use super::allowance::{Allowance, allowance_spent, month_of};
use super::classify::Pending;
use super::dedupe::{Scope, asking, forgotten, release, scopes, since, suppressed};
use super::fate::over_budget;
use super::options::bounded;
use super::sinks::Sinks;
use super::tally::Event;
use super::writeback::WriteBack;
use super::{HoldPoint, Run, RunOptions, hold_at};
use crate::config::Destination;
use crate::{Error, Result};

/// A destination's error, boxed.
type Refused = Box<dyn Failure>;

/// What came of one row's requests ([`send_row`]); a failed mark is the run's.
type Delivery = Attempt<Refused, retl_state::Error>;

/// The deliver phase: how many rows the run may still start sending, and
/// where they go.
pub(super) struct Deliverer {
    /// How many more rows this run may start sending, and why it is bounded.
    budget: Option<(u64, String)>,
    target: Target,
}

/// Where a deliverer's rows go.
enum Target {
    /// A run's: the destination, through the outbox.
    Outbox(Box<Outbox>),
    /// A preview's: listed, with what dedupe would withhold.
    Plan {
        /// Whether the state holds a forgotten person.
        anyone_forgotten: bool,
    },
}

impl Deliverer {
    /// The deliver phase of a run of `destination` reading `source`, with
    /// the budget and allowances the guards cleared.
    pub(super) async fn new(
        run: &Run<'_>,
        destination: &Destination,
        source: &Source,
        (budget, allowances): (Option<(u64, String)>, Vec<Allowance>),
        anyone_forgotten: bool,
    ) -> Result<Deliverer> {
        let target = if run.effects.is_live() {
            let writeback = match &run.activation.writeback {
                Some(writeback) => Some(WriteBack::open(run, writeback, source).await?),
                None => None,
            };
            let outbox = Outbox::of(run, destination, allowances, anyone_forgotten, writeback)?;
            Target::Outbox(Box::new(outbox))
        } else {
            Target::Plan { anyone_forgotten }
        };
        Ok(Deliverer { budget, target })
    }

    /// Sends `pending` (a preview plans them).
    pub(super) async fn send(
        &mut self,
        run: &mut Run<'_>,
        sinks: &mut Sinks,
        pending: Vec<Pending>,
    ) -> Result<()> {
        match &mut self.target {
            Target::Outbox(outbox) => {
                match outbox
                    .deliver_all(run, sinks, &mut self.budget, pending)
                    .await?
                {
                    Some(error) => Err(Error::Destination {
                        destination: outbox.to.clone(),
                        error,
                    }),
                    None => Ok(()),
                }
            }
            Target::Plan { anyone_forgotten } => {
                let pending =
                    super::dedupe::without_suppressed(run, *anyone_forgotten, pending).await?;
                super::preview::plan_all(run, &mut self.budget, pending);
                Ok(())
            }
        }
    }
}

/// Gives back a marked row's place in each allowance (its request was not
/// carried out).
async fn release_allowances(
    tx: &mut retl_state::Fenced,
    allowances: &[Allowance],
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
pub(super) struct Outbox {
    net: Arc<Net>,
    /// The destination's name.
    to: String,
    /// Requests in flight at once.
    concurrency: usize,
    /// Where created links are written back (`writeback:`).
    writeback: Option<WriteBack>,
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
struct Net {
    /// The activation's dedupe scopes.
    dedupe: Vec<Scope>,
    /// The activation's name.
    activation: String,
    /// The monthly allowances each row claims a place in when it is marked.
    allowances: Vec<Allowance>,
    /// Whether the state holds a forgotten person to look each customer up in.
    anyone_forgotten: bool,
    sender: BoxSender,
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

impl Net {
    fn marked(&self) -> std::sync::MutexGuard<'_, HashSet<RowHash>> {
        self.marked.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One row's side of the request protocol: its mark in the ledger, the run's
/// interrupt and budgets.
struct Row<'a> {
    net: &'a Net,
    p: &'a Pending,
}

impl Protocol for Row<'_> {
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
            let hashes: Vec<&str> = std::iter::once(contact.as_str())
                .chain(p.legacy_contacts.iter().map(String::as_str))
                .collect();
            for scope in &self.net.dedupe {
                let since = since(&self.net.state, scope.within);
                let asking = asking(scope, &since, &self.net.activation, p);
                let mut earlier = tx.sent_before(&hashes, asking).await?;
                if earlier.is_none() {
                    earlier = tx
                        .claim_contact(&scope.name, contact, &p.legacy_contacts, &p.key, &since)
                        .await?;
                }
                if let Some(earlier) = earlier {
                    // Dropped uncommitted: no claim and no mark stay.
                    return Ok(Mark::Withheld(suppressed(&earlier, scope.within)));
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

impl Outbox {
    /// The outbox of `destination` for the activation's requests, retrying
    /// as the destination's `retry:` says; its rows claim a place in each
    /// of `allowances` when they are marked.
    fn of(
        run: &Run<'_>,
        destination: &Destination,
        allowances: Vec<Allowance>,
        anyone_forgotten: bool,
        writeback: Option<WriteBack>,
    ) -> Result<Outbox> {
        let sender = destination
            .sender(&run.activation.delivery, run.state.token_cache())?
            .map_err(|error| Error::Destination {
                destination: destination.name().to_owned(),
                error,
            })?;
        let retry = destination.retry();
        Ok(Outbox {
            net: Arc::new(Net {
                dedupe: scopes(run.activation),
                activation: run.activation.name.clone(),
                allowances,
                anyone_forgotten,
                sender,
                policy: retry.policy(),
                give_up_after: retry.give_up_after,
                rate_limited_budget: AtomicU32::new(retry.rate_limited_retries),
                stop: AtomicBool::new(false),
                state: run.state.clone(),
                lease: run.lease.clone(),
                options: run.options.clone(),
                in_flight_arrivals: AtomicU64::new(0),
                marked: Mutex::new(HashSet::new()),
            }),
            to: destination.name().to_owned(),
            concurrency: destination.concurrency(),
            writeback,
        })
    }
}

/// A row's refused request, and when the row began failing (if it failed
/// transiently before).
struct Refusal {
    error: Refused,
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

/// When requests still running after an interrupt are given up: shortly
/// before the deadline, which leaves time to record them.
fn give_up_at(options: &RunOptions) -> Option<tokio::time::Instant> {
    let drain = options.drain;
    options
        .cancel
        .deadline(drain.saturating_sub(Duration::from_secs(2).min(drain / 4)))
}

impl Outbox {
    /// Sends `pending` with up to `concurrency` requests in flight (while
    /// `budget` lasts), committing each outcome as it arrives. Returns the
    /// error that stopped the run, if any.
    async fn deliver_all(
        &mut self,
        run: &mut Run<'_>,
        sinks: &mut Sinks,
        budget: &mut Option<(u64, String)>,
        pending: Vec<Pending>,
    ) -> Result<Option<Refused>> {
        let concurrency = self.concurrency;
        let mut queue = pending.into_iter();
        let mut running = tokio::task::JoinSet::new();
        // What is under way, to account for requests given up at an interrupt.
        let mut under_way: HashMap<RowHash, UnderWay> = HashMap::new();
        let mut fatal = None;
        let mut over = Vec::new();
        loop {
            while running.len() < concurrency.max(1)
                && !self.net.stop.load(Ordering::SeqCst)
                && !run.options.cancel.is_cancelled()
            {
                let Some(p) = queue.next() else { break };
                if let Some(why) = over_budget(budget) {
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
                let net = self.net.clone();
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
            let next = match give_up_at(run.options) {
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
                    () = run.options.cancel.cancelled() => continue,
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
            self.record_delivery(run, sinks, p, delivery, &mut fatal)
                .await?;
            // The counts so far, for `retl runs list` (at once before a hold).
            let holding = run
                .options
                .hold
                .is_some_and(|h| h.point == HoldPoint::Recorded);
            run.effects.publish_if(&run.counts, holding).await?;
            run.hold(HoldPoint::Recorded).await;
        }
        let marked = self.net.marked().clone();
        let unfinished = Unfinished {
            under_way: &under_way,
            marked: &marked,
            over,
        };
        unfinished.settle(run, sinks, queue).await?;
        Ok(fatal)
    }

    /// A delivered row's run-log row: what the destination answered, and
    /// its link written back (or the notes of how its request was made).
    async fn delivered(
        &mut self,
        run: &mut Run<'_>,
        p: &Pending,
        delivered: retl_destination::Delivered,
        log: &mut RowLog,
    ) {
        log.request.clone_from(&p.recorded);
        log.details.status = delivered.status;
        log.external_id = delivered.external_id;
        if delivered.url.is_some() {
            log.details.url = delivered.url;
            let url = log.details.url.as_deref();
            let written = match &mut self.writeback {
                Some(writeback) => writeback.write(run, p, url).await,
                None => None,
            };
            if let Some(problem) = written {
                run.count(Event::WritebackFailed);
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
    }

    /// Commits what came of one row's requests; its counts follow its
    /// run-log outcome.
    async fn record_delivery(
        &mut self,
        run: &mut Run<'_>,
        sinks: &mut Sinks,
        p: Pending,
        delivery: Delivery,
        fatal: &mut Option<Refused>,
    ) -> Result<()> {
        let mut log = p.log(RowOutcome::Skipped, None);
        let mut restore = false;
        // Marked, so holding a place in each allowance, until recorded.
        let mut claimed = matches!(delivery, Attempt::Delivered(_));
        let status = match delivery {
            Attempt::Delivered(delivered) => {
                self.delivered(run, &p, delivered, &mut log).await;
                Some(Status::Sent)
            }
            Attempt::NotStarted => {
                log.reason = Some(stopped_reason(run.options.cancel.is_cancelled()).to_owned());
                None
            }
            Attempt::Lost(_) => unreachable!("a lost lease ends the loop before recording"),
            Attempt::Withheld(why) => {
                log.reason = Some(why);
                Some(Status::Suppressed)
            }
            Attempt::Deferred(why) => {
                log.reason = Some(why);
                None
            }
            Attempt::Refused { error, marked } => {
                claimed = marked;
                let since = failing_since(run, &p, error.as_ref()).await;
                let refusal = Refusal {
                    error,
                    failing_since: since,
                };
                let (status, give_back) = self.refused(run, refusal, &mut log, fatal);
                restore = give_back && marked;
                status
            }
        };
        if matches!(status, Some(Status::Failed) | None) {
            sinks.hold_back(p.cursor.as_ref());
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
        run.count(Event::Ended(log.outcome));
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
        self.record_one(run, &p, give_back, &outcomes, &log).await?;
        self.net.marked().remove(&p.key);
        run.effects.logged(1);
        run.report();
        if matches!(status, Some(Status::Sent | Status::Suppressed)) {
            sinks.settled_key(run, p.key_values).await?;
        }
        Ok(())
    }

    /// Commits one row's outcome and run-log row, with what it gives back.
    async fn record_one(
        &self,
        run: &Run<'_>,
        p: &Pending,
        give_back: GiveBack,
        outcomes: &[Outcome<'_>],
        log: &RowLog,
    ) -> Result<()> {
        let (net, seq) = (&self.net, run.effects.seq());
        let write = run.effects.write(async |tx| {
            if give_back.claims {
                release(tx, &net.dedupe, p).await?;
            }
            if give_back.allowances {
                release_allowances(tx, &net.allowances, &net.state).await?;
            }
            if give_back.mark {
                tx.restore(&p.key, p.previous.as_ref()).await?;
            }
            tx.record(outcomes).await?;
            tx.log_rows(seq, std::slice::from_ref(log)).await
        });
        bounded(run.options, write).await
    }

    /// What a refused row becomes, by its failure's class: its ledger status
    /// (`None`: none, the run stops) and whether its mark is to be undone.
    fn refused(
        &self,
        run: &Run<'_>,
        refusal: Refusal,
        log: &mut RowLog,
        fatal: &mut Option<Refused>,
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
            Class::Rejected => (Some(Status::Rejected), false),
            Class::Uncertain => (Some(Status::Uncertain), false),
            Class::Transient | Class::RateLimited => {
                let now = run.state.clock().now();
                let failing = failing_since.map(|since| (now - since).to_std().unwrap_or_default());
                if let Some(failing) = failing.filter(|f| *f >= self.net.give_up_after) {
                    log.reason = Some(format!(
                        "given up after failing for {} (retry.give_up_after {}): {error}; `retl runs resend RUN_ID --given-up` sends it again",
                        humantime::format_duration(Duration::from_secs(failing.as_secs())),
                        humantime::format_duration(self.net.give_up_after)
                    ));
                    (Some(Status::GivenUp), false)
                } else {
                    (Some(Status::Failed), false)
                }
            }
            Class::Fatal => {
                // The destination refused the run, not this row: it was not
                // accepted, so its key goes back to where it was.
                self.net.stop.store(true, Ordering::SeqCst);
                log.reason = Some(format!("run stopped: {error}"));
                fatal.get_or_insert(error);
                (None, true)
            }
        }
    }
}

/// What the delivery loop left when it ended.
struct Unfinished<'u> {
    /// Rows whose request task was under way.
    under_way: &'u HashMap<RowHash, UnderWay>,
    /// Keys marked in flight and not yet recorded.
    marked: &'u HashSet<RowHash>,
    /// Rows over the budget, with why.
    over: Vec<(Pending, String)>,
}

impl Unfinished<'_> {
    /// Records what the loop left: requests given up at the deadline (those
    /// marked may have reached the destination: `uncertain`; the others never
    /// left: `skipped`, their mark undone), rows over the budget and rows
    /// never started (`skipped`, sent by a later run).
    async fn settle(
        self,
        run: &mut Run<'_>,
        sinks: &mut Sinks,
        not_started: impl Iterator<Item = Pending>,
    ) -> Result<()> {
        let Unfinished {
            under_way,
            marked,
            over,
        } = self;
        let cancelled = run.options.cancel.is_cancelled();
        let uncertain_reason =
            "interrupted while the request was under way: delivery unknown, not resent";
        let mut outcomes = Vec::new();
        let mut logs = Vec::new();
        // Rows whose task was given up before it counted them as marked never
        // left; if their mark was committing when the task stopped, it is undone.
        let mut give_back = Vec::new();
        for (key, row) in under_way {
            if marked.contains(key) {
                run.count(Event::Ended(RowOutcome::Uncertain));
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
                run.count(Event::Ended(RowOutcome::Skipped));
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
            run.count(Event::Ended(RowOutcome::Skipped));
            sinks.hold_back(p.cursor.as_ref());
            logs.push(p.log(RowOutcome::Skipped, Some(why)));
        }
        if !give_back.is_empty() {
            let effects = &run.effects;
            bounded(
                run.options,
                effects.write(async |tx| {
                    for (key, previous) in &give_back {
                        tx.restore(key, previous.as_ref()).await?;
                    }
                    Ok(())
                }),
            )
            .await?;
        }
        let options = run.options;
        bounded(options, run.effects.commit(&outcomes, &[], &logs)).await
    }
}

/// When a row refused with a transient `error` began failing, if it
/// failed before: a row that failed for the first time began now. A
/// state that cannot say is taken as "now" (the row is retried, not
/// given up).
async fn failing_since(
    run: &Run<'_>,
    p: &Pending,
    error: &dyn Failure,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let transient = matches!(error.class(), Class::Transient | Class::RateLimited);
    let failed_before = p
        .previous
        .is_some_and(|entry| entry.status == Status::Failed);
    if !transient || !failed_before {
        return None;
    }
    let since = run
        .state
        .failing_since(&run.activation.name, &p.key)
        .await
        .ok()??;
    chrono::DateTime::parse_from_rfc3339(&since)
        .ok()
        .map(|at| at.with_timezone(&chrono::Utc))
}
