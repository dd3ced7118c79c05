//! One row's requests: the protocol every destination is driven by.

use std::time::Duration;

use crate::{Class, Delivered, Failure, Sender};

/// How a row's requests are retried within one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Requests per row within one run for transient failures (the first included).
    pub tries_per_run: u32,
    /// The first backoff; it doubles with every try.
    pub backoff: Duration,
}

/// The longest a row waits between two tries, whatever `Retry-After` says.
const LONGEST_WAIT: Duration = Duration::from_mins(5);

/// What marking a row in flight did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// It is marked: its request may leave.
    Marked,
    /// A rule of the run's kept it from leaving (its customer was invited
    /// within the dedupe window), and it is not marked: why.
    Withheld(String),
    /// A limit of the run's kept it from leaving now (a monthly allowance
    /// another run spent first), and it is not marked: why. It goes out in
    /// a later run.
    Deferred(String),
}

/// What the run lends the protocol for one row: its mark in flight, its
/// interrupt, and the budgets it shares with the other rows.
pub trait Protocol: Sync {
    /// Why marking failed (a lost lease, a failing state database).
    type Error: Send;

    /// Marks the row in flight, committed, just before its first request
    /// leaves; or withholds it ([`Mark::Withheld`]): then nothing is sent.
    fn mark(&self) -> impl Future<Output = Result<Mark, Self::Error>> + Send;

    /// Gives a marked row back: interrupted before its request left.
    fn unmark(&self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Called once the row is marked (a run's hold point for tests).
    fn marked(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Resolves when the run is interrupted.
    fn cancelled(&self) -> impl Future<Output = ()> + Send;

    /// Whether the run is interrupted.
    fn is_cancelled(&self) -> bool;

    /// Whether the destination refused the run (no new try leaves).
    fn stopped(&self) -> bool;

    /// Takes one 429 from the run's budget of them: `true` while it lasts,
    /// and then the 429 does not count as a try.
    fn take_rate_limited(&self) -> bool;
}

/// What came of one row's requests.
#[derive(Debug)]
pub enum Attempt<E, M> {
    /// The destination carried the request out.
    Delivered(Delivered),
    /// The last request failed (its [`Class`] says what that means);
    /// `marked`: the row had been marked in flight.
    Refused {
        /// The failure.
        error: E,
        /// Whether the row was marked in flight.
        marked: bool,
    },
    /// Interrupted before any request for the row left; a mark was given back.
    NotStarted,
    /// The run withheld it at its mark (see [`Mark::Withheld`]): nothing sent.
    Withheld(String),
    /// The run deferred it at its mark (see [`Mark::Deferred`]): nothing
    /// sent, and it is sent by a later run.
    Deferred(String),
    /// Marking (or giving back) failed: nothing more can be recorded.
    Lost(M),
}

/// The run was interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

/// Sends one row's `request` to `sender`: for each try, waits for
/// [`Sender::ready`], marks the row in flight (first try only), sends;
/// retries [`Class::Transient`] failures up to `policy.tries_per_run` with
/// exponential backoff and jitter; waits out [`Class::RateLimited`] answers
/// for their `Retry-After` (pausing every request of the destination) without
/// counting them while the run's budget lasts. A failure of any other class,
/// `Uncertain` above all, is final: nothing that may have arrived is sent
/// again. Every wait races the interrupt, and no request starts after it.
pub async fn send_row<S: Sender, P: Protocol>(
    sender: &S,
    policy: Policy,
    run: &P,
    request: &S::Request,
) -> Attempt<S::Error, P::Error> {
    let mut tries: u32 = 0;
    let mut marked = false;
    loop {
        tries += 1;
        let ticket = tokio::select! {
            biased;
            () = run.cancelled() => return not_started(run, marked).await,
            ticket = sender.ready() => ticket,
        };
        let result = match ticket {
            Err(error) => Err(error),
            Ok(ticket) => {
                if !marked {
                    if run.is_cancelled() {
                        return Attempt::NotStarted;
                    }
                    match run.mark().await {
                        Err(error) => return Attempt::Lost(error),
                        Ok(Mark::Withheld(why)) => return Attempt::Withheld(why),
                        Ok(Mark::Deferred(why)) => return Attempt::Deferred(why),
                        Ok(Mark::Marked) => {}
                    }
                    marked = true;
                    run.marked().await;
                }
                if run.is_cancelled() {
                    return not_started(run, marked).await;
                }
                sender.send(ticket, request).await
            }
        };
        let error = match result {
            Ok(delivered) => return Attempt::Delivered(delivered),
            Err(error) => error,
        };
        let class = error.class();
        let backoff = policy.backoff * 2u32.saturating_pow(tries.min(16) - 1);
        let wait = error
            .retry_after()
            .unwrap_or_else(|| backoff + jitter(backoff / 2))
            .min(LONGEST_WAIT);
        if class == Class::RateLimited && run.take_rate_limited() {
            // Too fast for the destination: everyone waits, and this try does not count.
            tracing::info!(
                wait_ms = wait.as_millis(),
                "429 from the destination; pausing"
            );
            sender.pause(wait);
            tries -= 1;
            continue;
        }
        let retryable = matches!(class, Class::Transient | Class::RateLimited);
        if !retryable || tries >= policy.tries_per_run || run.stopped() {
            return Attempt::Refused { error, marked };
        }
        tracing::debug!(tries, wait_ms = wait.as_millis(), %error, "retrying");
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = run.cancelled() => return Attempt::Refused { error, marked },
        }
    }
}

/// Interrupted before a request left: a marked row is given back.
async fn not_started<E, P: Protocol>(run: &P, marked: bool) -> Attempt<E, P::Error> {
    if marked && let Err(error) = run.unmark().await {
        return Attempt::Lost(error);
    }
    Attempt::NotStarted
}

/// A random share of `max`, for backoff jitter.
fn jitter(max: Duration) -> Duration {
    // The operating system's randomness: retries of many runs at once
    // spread out instead of landing together. Without it, no jitter.
    let draw = getrandom::u32().unwrap_or(0);
    max.mul_f64(f64::from(draw) / f64::from(u32::MAX))
}

#[cfg(test)]
mod tests;
