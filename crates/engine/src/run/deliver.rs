//! Delivering the rows of a batch: mark in flight, send (from tasks that touch
//! no database), record each outcome as it arrives.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use retl_diff::{RowHash, Status};
use retl_state::{Outcome, RowLog, RowOutcome};
use retl_trustpilot::{Accepted, Client, ErrorClass, LinkCreated, RetryPolicy, Settings};

use super::classify::{Pending, Request};
use super::{HoldPoint, RunCtx};
use crate::{Error, Result};

/// What came of one row's requests.
enum Delivery {
    Sent(Accepted),
    Linked(LinkCreated),
    Refused(ErrorClass, retl_trustpilot::Error),
}

/// What the delivery loop of one run works with.
pub(super) struct Sender {
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

impl Sender {
    /// A sender to `destination` with `settings` (defaults with the target laid over).
    pub(super) fn new(
        destination: &retl_trustpilot::Destination,
        settings: &Settings,
        token_cache: Option<&Path>,
    ) -> Result<Sender> {
        let client = Client::new(destination.client_config(token_cache)).map_err(|error| {
            Error::Destination {
                destination: destination.name.clone(),
                error,
            }
        })?;
        Ok(Sender {
            net: Arc::new(Net {
                client,
                business_unit: settings.business_unit_id.clone().unwrap_or_default(),
                policy: destination.retry,
                rate_limited_budget: AtomicU32::new(destination.retry.rate_limited_retries),
                stop: AtomicBool::new(false),
            }),
        })
    }
}

impl RunCtx<'_> {
    /// Sends `pending` with up to `concurrency` requests in flight, committing each
    /// outcome as it arrives. Returns the error that stopped the run, if any.
    ///
    /// Requests run as tasks of their own (in a `JoinSet`, aborted if this run
    /// fails) that touch no database: marking in flight and committing happen
    /// here, so requests go out when the limiter lets them, whatever the
    /// database is doing, and no request holds a database connection.
    pub(super) async fn deliver_all(
        &mut self,
        sender: &Sender,
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
                && !self.options.cancel.is_cancelled()
            {
                let Some(p) = queue.next() else { break };
                let mut tx = self.state.fenced(self.lease).await?;
                tx.mark_in_flight(&p.key, &p.content, &p.row_key, Some(&p.reference))
                    .await?;
                tx.commit().await?;
                self.hold(HoldPoint::InFlight).await;
                under_way.insert(p.key, (p.content, p.row_key.clone(), p.reference.clone()));
                let net = sender.net.clone();
                running.spawn(async move {
                    let delivery = deliver(&net, &p).await;
                    (p, delivery)
                });
            }
            let next = if self.options.cancel.is_cancelled() {
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
            self.hold(HoldPoint::Recorded).await;
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
                RowLog::new(
                    row_key.as_str(),
                    Some(reference),
                    RowOutcome::Uncertain,
                    Some(reason.to_owned()),
                )
            })
            .collect();
        self.counts.uncertain += abandoned.len() as u64;
        self.commit(&outcomes, &logs).await?;
        // Rows never sent because the run stopped: logged, retried by the next run.
        let mut logs = Vec::new();
        let reason = if self.options.cancel.is_cancelled() {
            "run interrupted before this row was sent"
        } else {
            "run stopped before this row was sent"
        };
        for p in queue {
            self.counts.skipped += 1;
            logs.push(RowLog::new(
                p.row_key,
                Some(&p.reference),
                RowOutcome::Skipped,
                Some(reason.to_owned()),
            ));
        }
        self.commit(&[], &logs).await?;
        Ok(fatal)
    }

    /// Commits what came of one row's requests.
    async fn record_delivery(
        &mut self,
        sender: &Sender,
        p: Pending,
        delivery: Delivery,
        fatal: &mut Option<retl_trustpilot::Error>,
    ) -> Result<()> {
        let mut log = RowLog::new(
            p.row_key.as_str(),
            Some(&p.reference),
            RowOutcome::Skipped,
            None,
        );
        let mut restore = false;
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
                        restore = true;
                        self.counts.skipped += 1;
                        log.reason = Some(format!("run stopped: {error}"));
                        fatal.get_or_insert(error);
                        None
                    }
                }
            }
        };
        log.outcome = match status {
            Some(Status::Sent) => RowOutcome::Sent,
            Some(Status::Rejected) => RowOutcome::Rejected,
            Some(Status::Failed) => RowOutcome::Failed,
            Some(Status::Uncertain) => RowOutcome::Uncertain,
            _ => RowOutcome::Skipped,
        };
        let outcome = status.map(|status| Outcome {
            key: p.key,
            content: p.content,
            status,
            reference: Some(&p.reference),
            error: log.reason.as_deref(),
        });
        let outcomes: Vec<Outcome<'_>> = outcome.into_iter().collect();
        let mut tx = self.state.fenced(self.lease).await?;
        if restore {
            tx.restore(&p.key, p.previous.as_ref()).await?;
        }
        tx.record(&outcomes).await?;
        tx.log_rows(self.seq, std::slice::from_ref(&log)).await?;
        tx.commit().await?;
        self.seq += 1;
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
