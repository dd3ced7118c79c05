//! What a run is started with: its options, the cancellation every part of
//! it waits on, and the hold points tests stop it at.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use retl_state::{Counts, RowOutcome};

/// A cancellation every part of a run can poll or wait on, and the moment it
/// came (every deadline of an interrupt counts from it).
#[derive(Debug, Clone)]
pub struct Cancel(Arc<tokio::sync::watch::Sender<Option<tokio::time::Instant>>>);

impl Default for Cancel {
    fn default() -> Self {
        Cancel(Arc::new(tokio::sync::watch::channel(None).0))
    }
}

impl Cancel {
    /// Cancels (SIGINT, SIGTERM): every waiter wakes. A second cancel keeps
    /// the first one's moment.
    pub fn cancel(&self) {
        self.0.send_if_modified(|at| {
            if at.is_some() {
                return false;
            }
            *at = Some(tokio::time::Instant::now());
            true
        });
    }

    /// Whether it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.borrow().is_some()
    }

    /// `after` past the moment of the cancel, if it was cancelled.
    pub fn deadline(&self, after: Duration) -> Option<tokio::time::Instant> {
        self.0.borrow().map(|at| at + after)
    }

    /// Waits until it is cancelled.
    pub async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(Option::is_some).await;
    }
}

retl_config::spelled! {
    /// A point in a run where it can be told to stop and wait (`--hold-at`,
    /// for tests that kill or interrupt a run at an exact moment instead of
    /// guessing with sleeps).
    pub enum HoldPoint {
        /// Just after a row was durably marked in flight, before its request leaves.
        InFlight = "in_flight",
        /// Just after a row's outcome was recorded.
        Recorded = "recorded",
        /// Just after a block of key-segment records was committed.
        Segments = "segments",
        /// `diff: warehouse`: settled keys are about to be written to the key
        /// table (the ledger holds them; the table not yet).
        KeysUnpushed = "keys_unpushed",
        /// `diff: warehouse`: just after a statement wrote settled keys to the key table.
        KeysPushed = "keys_pushed",
        /// `diff: warehouse`, a first run: the ledger holds the staging table's
        /// keys; the staging table is not yet in the key table's place.
        Staged = "staged",
    }
}

/// Where a run holds: at the `count`-th arrival at `point`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// The point.
    pub point: HoldPoint,
    /// Which arrival (from 1).
    pub count: u64,
}

impl std::str::FromStr for Hold {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let err = || {
            format!(
                "`{s}` is not POINT:N with POINT one of {}",
                HoldPoint::CHOICES.join(", ")
            )
        };
        let (point, count) = s.split_once(':').ok_or_else(err)?;
        let point = point.parse().map_err(|_| err())?;
        let count = count.parse().ok().filter(|n| *n > 0).ok_or_else(err)?;
        Ok(Hold { point, count })
    }
}

/// Which rows of an earlier run a resend sends again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resend {
    /// The earlier run.
    pub run_id: String,
    /// `uncertain` or `rejected`.
    pub outcome: RowOutcome,
}

/// Options of one run.
#[derive(Debug, Clone)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "each is an independent flag of the command line (--allow-surge, --allow-shared-source, --destination-moved, retl baseline)"
)]
pub struct RunOptions {
    /// How long the activation's lease lasts without renewal; it is renewed
    /// every third of that while the run lives.
    pub lease: Duration,
    /// Cancel it to stop the run gracefully (SIGINT, SIGTERM): no new batch is
    /// read and no new request starts; the run ends within `drain` of the cancel.
    pub cancel: Cancel,
    /// The one deadline of an interrupt, counted from the cancel: requests under
    /// way may finish until shortly before it (the rest are `uncertain`), every
    /// wait and commit ends by it. The CLI sets the request timeout plus 5 s.
    pub drain: Duration,
    /// A resend (`retl runs resend RUN_ID --uncertain|--rejected`): before
    /// reading, the rows that earlier run logged with that outcome are made
    /// sendable again, and only they are sent; other new rows wait for the
    /// next run (`skipped`).
    pub resend: Option<Resend>,
    /// Hold the run at this point: it prints `retl: holding at POINT N` on
    /// stderr and waits until cancelled (or killed).
    pub hold: Option<Hold>,
    /// Send at most this many rows (`--limit`, a canary); the rest are
    /// `skipped` and go out in later runs. It also lets a guarded first run,
    /// or a surge, go.
    pub limit: Option<u64>,
    /// Send even when the run's new rows are a surge (`--allow-surge`).
    pub allow_surge: bool,
    /// Run a first run even though another activation's history was built
    /// from the same source (`--allow-shared-source`): not a rename.
    pub allow_shared_source: bool,
    /// The activation's destination changed identity on purpose (a
    /// Trustpilot host renamed, say): its settled keys go on answering for
    /// the new one (`--destination-moved`).
    pub destination_moved: bool,
    /// `retl baseline`: every row now in the source that is not settled is
    /// settled as `baseline`, and nothing is sent.
    pub baseline: bool,
    /// Where the run keeps its id and counts so far, for a progress display:
    /// updated after every batch is classified and every row is recorded.
    pub progress: Option<Arc<std::sync::Mutex<Progress>>>,
    /// The run's id, when the caller chose it (a run started on demand
    /// answers with it before it starts); else a new UUID (v7). One run each.
    pub run_id: Option<String>,
    /// Key-segment records a run holds before it writes them (a baseline's
    /// rows, keys to fold): 32 bytes each.
    pub key_flush_rows: usize,
    /// `diff: warehouse`: settled keys a run holds before it writes them to
    /// the warehouse's key table (in statements of at most 1,000).
    pub key_push_rows: usize,
}

/// A run's progress so far, as a progress display reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// The run's id (empty until the run has one).
    pub run_id: String,
    /// Its counts so far.
    pub counts: Counts,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            lease: Duration::from_mins(1),
            cancel: Cancel::default(),
            drain: Duration::from_secs(30),
            resend: None,
            hold: None,
            limit: None,
            allow_surge: false,
            allow_shared_source: false,
            destination_moved: false,
            baseline: false,
            progress: None,
            run_id: None,
            key_flush_rows: 1_000_000,
            key_push_rows: 10_000,
        }
    }
}

/// At the `count`-th arrival at the hold point the options ask for (counted in
/// `arrivals`), says so and waits until cancelled (or killed).
pub(crate) async fn hold_at(options: &RunOptions, point: HoldPoint, arrivals: &AtomicU64) {
    let Some(hold) = options.hold.filter(|h| h.point == point) else {
        return;
    };
    if arrivals.fetch_add(1, Ordering::SeqCst) + 1 == hold.count {
        tracing::warn!("retl: holding at {point} {}", hold.count);
        options.cancel.cancelled().await;
    }
}

/// `work`, given up at the interrupt's deadline once there is one (`None`):
/// after SIGINT or SIGTERM, nothing a run still does waits past it.
///
/// The one helper a run bounds a wait by the interrupt with; [`bounded`]
/// is it for the run's own work.
pub(super) async fn by_interrupt<T>(
    options: &RunOptions,
    work: impl Future<Output = T>,
) -> Option<T> {
    match options.cancel.deadline(options.drain) {
        Some(deadline) => tokio::time::timeout_at(deadline, work).await.ok(),
        None => Some(work.await),
    }
}

/// The run's own `work` (writes to the state), given up at the interrupt's
/// deadline with [`Error::Deadline`].
pub(super) async fn bounded<T>(
    options: &RunOptions,
    work: impl Future<Output = crate::Result<T>>,
) -> crate::Result<T> {
    by_interrupt(options, work)
        .await
        .unwrap_or(Err(crate::Error::Deadline {
            what: "the state database did not answer",
        }))
}
