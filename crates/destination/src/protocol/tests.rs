//! The request protocol on paused time, against an in-memory destination.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::Answer;

/// A failure of the fake destination.
#[derive(Debug)]
struct Fake {
    class: Class,
    retry_after: Option<Duration>,
}

impl std::fmt::Display for Fake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.class)
    }
}

impl std::error::Error for Fake {}

impl Failure for Fake {
    fn class(&self) -> Class {
        self.class
    }
    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
    fn answer(&self) -> Answer {
        Answer::default()
    }
}

fn fails(class: Class) -> Result<Delivered, Fake> {
    Err(Fake {
        class,
        retry_after: None,
    })
}

/// An in-memory destination: answers from a script, honours pauses in
/// `ready`, and notes when each request left.
#[derive(Default)]
struct Destination {
    script: Mutex<VecDeque<Result<Delivered, Fake>>>,
    sent: Mutex<Vec<Instant>>,
    paused_until: Mutex<Option<Instant>>,
    /// `ready` never resolves: the rate window never opens.
    closed: AtomicBool,
}

impl Destination {
    fn answering(script: impl IntoIterator<Item = Result<Delivered, Fake>>) -> Destination {
        Destination {
            script: Mutex::new(script.into_iter().collect()),
            ..Destination::default()
        }
    }

    fn sent(&self) -> Vec<Instant> {
        self.sent.lock().unwrap().clone()
    }
}

impl Sender for Destination {
    type Request = &'static str;
    type Ticket = ();
    type Error = Fake;

    async fn ready(&self) -> Result<(), Fake> {
        if self.closed.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let until = *self.paused_until.lock().unwrap();
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
        Ok(())
    }

    async fn send(&self, (): (), _request: &&'static str) -> Result<Delivered, Fake> {
        self.sent.lock().unwrap().push(Instant::now());
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .expect("a scripted answer for every request")
    }

    fn pause(&self, wait: Duration) {
        *self.paused_until.lock().unwrap() = Some(Instant::now() + wait);
    }
}

/// The run's side: counts marks, can be interrupted.
struct Run {
    /// Withhold the row at its mark, saying this.
    withhold: Option<String>,
    marks: AtomicU32,
    unmarks: AtomicU32,
    cancel: tokio::sync::watch::Sender<bool>,
    rate_limited_budget: AtomicU32,
}

impl Run {
    fn new() -> Run {
        Run {
            withhold: None,
            marks: AtomicU32::new(0),
            unmarks: AtomicU32::new(0),
            cancel: tokio::sync::watch::Sender::new(false),
            rate_limited_budget: AtomicU32::new(100),
        }
    }
}

impl Protocol for Run {
    type Error = ();

    async fn mark(&self) -> Result<Mark, ()> {
        if let Some(why) = &self.withhold {
            return Ok(Mark::Withheld(why.clone()));
        }
        self.marks.fetch_add(1, Ordering::SeqCst);
        Ok(Mark::Marked)
    }

    async fn unmark(&self) -> Result<(), ()> {
        self.unmarks.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn cancelled(&self) {
        let mut rx = self.cancel.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    fn stopped(&self) -> bool {
        false
    }

    fn take_rate_limited(&self) -> bool {
        self.rate_limited_budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

const POLICY: Policy = Policy {
    tries_per_run: 3,
    backoff: Duration::from_millis(100),
};

#[tokio::test(start_paused = true)]
async fn a_row_withheld_at_its_mark_sends_nothing() {
    let destination = Destination::answering([Ok(Delivered::default())]);
    let run = Run {
        withhold: Some("invited 3 days ago".into()),
        ..Run::new()
    };
    let attempt = send_row(&destination, POLICY, &run, &"row").await;
    assert!(
        matches!(attempt, Attempt::Withheld(ref why) if why == "invited 3 days ago"),
        "{attempt:?}"
    );
    assert_eq!(run.marks.load(Ordering::SeqCst), 0);
    assert!(destination.sent().is_empty(), "no request left");
}

#[tokio::test(start_paused = true)]
async fn a_429_waits_its_retry_after_and_is_not_counted_as_a_try() {
    let destination = Destination::answering([
        Err(Fake {
            class: Class::RateLimited,
            retry_after: Some(Duration::from_secs(7)),
        }),
        Ok(Delivered::default()),
    ]);
    let run = Run::new();
    let one_try = Policy {
        tries_per_run: 1,
        ..POLICY
    };
    let started = Instant::now();
    let attempt = send_row(&destination, one_try, &run, &"row").await;
    assert!(matches!(attempt, Attempt::Delivered(_)), "{attempt:?}");
    let sent = destination.sent();
    assert_eq!(sent.len(), 2, "the 429 did not use up the one try");
    assert_eq!(
        sent[1] - started,
        Duration::from_secs(7),
        "Retry-After honoured"
    );
    assert_eq!(
        run.marks.load(Ordering::SeqCst),
        1,
        "marked once, before the first request"
    );
}

#[tokio::test(start_paused = true)]
async fn a_5xx_is_retried_with_growing_backoff_then_succeeds() {
    let destination = Destination::answering([
        fails(Class::Transient),
        fails(Class::Transient),
        Ok(Delivered {
            external_id: Some("inv-1".into()),
            ..Delivered::default()
        }),
    ]);
    let run = Run::new();
    let attempt = send_row(&destination, POLICY, &run, &"row").await;
    let Attempt::Delivered(delivered) = attempt else {
        panic!("{attempt:?}")
    };
    assert_eq!(delivered.external_id.as_deref(), Some("inv-1"));
    let sent = destination.sent();
    assert_eq!(sent.len(), 3);
    let (first, second) = (sent[1] - sent[0], sent[2] - sent[1]);
    // 100 ms, then 200 ms, each with up to half again of jitter.
    assert!((100..=150).contains(&first.as_millis()), "{first:?}");
    assert!((200..=300).contains(&second.as_millis()), "{second:?}");
    assert_eq!(run.marks.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn the_last_try_failing_gives_the_row_up_with_its_failure() {
    let destination = Destination::answering([
        fails(Class::Transient),
        fails(Class::Transient),
        fails(Class::Transient),
    ]);
    let run = Run::new();
    let attempt = send_row(&destination, POLICY, &run, &"row").await;
    let Attempt::Refused { error, marked } = attempt else {
        panic!("{attempt:?}")
    };
    assert_eq!(error.class, Class::Transient);
    assert!(marked);
    assert_eq!(
        destination.sent().len(),
        3,
        "tries_per_run requests, no more"
    );
}

#[tokio::test(start_paused = true)]
async fn a_timeout_after_the_request_left_is_uncertain_and_never_retried() {
    let destination = Destination::answering([fails(Class::Uncertain)]);
    let run = Run::new();
    let attempt = send_row(&destination, POLICY, &run, &"row").await;
    let Attempt::Refused { error, marked } = attempt else {
        panic!("{attempt:?}")
    };
    assert_eq!(error.class, Class::Uncertain);
    assert!(marked, "it was marked in flight before it left");
    assert_eq!(
        destination.sent().len(),
        1,
        "nothing that may have arrived is resent"
    );
}

#[tokio::test(start_paused = true)]
async fn an_interrupt_while_waiting_for_the_rate_window_sends_and_marks_nothing() {
    let destination = Destination::default();
    destination.closed.store(true, Ordering::SeqCst);
    let run = Run::new();
    let interrupt = async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        run.cancel.send_replace(true);
    };
    let (attempt, ()) = tokio::join!(send_row(&destination, POLICY, &run, &"row"), interrupt);
    assert!(matches!(attempt, Attempt::NotStarted), "{attempt:?}");
    assert_eq!(
        run.marks.load(Ordering::SeqCst),
        0,
        "never marked: the next run sends it"
    );
    assert!(destination.sent().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_interrupt_during_a_backoff_ends_the_row_with_its_last_failure() {
    let destination = Destination::answering([fails(Class::Transient), Ok(Delivered::default())]);
    let run = Run::new();
    let slow = Policy {
        tries_per_run: 3,
        backoff: Duration::from_mins(1),
    };
    let interrupt = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        run.cancel.send_replace(true);
    };
    let (attempt, ()) = tokio::join!(send_row(&destination, slow, &run, &"row"), interrupt);
    assert!(
        matches!(attempt, Attempt::Refused { marked: true, .. }),
        "{attempt:?}"
    );
    assert_eq!(
        destination.sent().len(),
        1,
        "no request after the interrupt"
    );
}

#[tokio::test(start_paused = true)]
async fn once_the_runs_429_budget_is_spent_a_429_counts_as_a_try() {
    let rate_limited = || {
        Err(Fake {
            class: Class::RateLimited,
            retry_after: None,
        })
    };
    let destination = Destination::answering([rate_limited(), rate_limited(), rate_limited()]);
    let run = Run::new();
    run.rate_limited_budget.store(0, Ordering::SeqCst);
    let attempt = send_row(&destination, POLICY, &run, &"row").await;
    assert!(
        matches!(&attempt, Attempt::Refused { error, .. } if error.class == Class::RateLimited),
        "{attempt:?}"
    );
    assert_eq!(destination.sent().len(), 3);
}
