//! Runs activations: the activation's configuration, dispatch on the
//! destination's type, and the run itself (lease, read, classify, deliver,
//! record) over `retl-source`, `retl-diff`, `retl-state` and the destination's
//! crate.
//!
//! A run loads the activation's settled keys from the state's key segments
//! into memory once, then reads its source batch by batch. For each batch it
//! hashes every row's key and content, decides most rows against the key set
//! and looks the rest up in the ledger (one query per thousand keys),
//! classifies each row, maps and validates the new ones, and sends them with
//! a bounded number of requests in flight.
//!
//! # The delivery protocol
//!
//! The order of writes is the correctness contract of retl:
//!
//! 0. **Lease.** A run first takes its activation's lease in the state
//!    database (a row with a holder, an expiry and a fencing token), renewed
//!    every third of its length. A second run of the activation, here or on
//!    another machine sharing a PostgreSQL state database, is refused
//!    ([`retl_state::Error::Locked`]). A lease expires if its holder dies; on the same
//!    machine, a lease whose holder process is gone is taken over at once.
//! 1. **Mark in flight.** Before a request for a row leaves, the row's key is
//!    written to the ledger as `in_flight` and committed (SQLite with
//!    `synchronous = FULL`), in a [`retl_state::Fenced`] transaction: the only
//!    kind of write transaction there is, begun by checking the lease's
//!    fencing token.
//! 2. **Send.** The request goes to the destination from the row's own task
//!    (`retl_destination::send_row`), which touches the database only to
//!    mark the row in flight (1, just before its request leaves) and, when
//!    an interrupt comes first, to give that mark back.
//! 3. **Record.** The outcome (`sent`, `rejected`, `failed`, `uncertain`) and
//!    the row's run-log entry are committed together, in one transaction that
//!    also checks the fencing token, so a run whose lease was taken over (a
//!    zombie) can no longer change the ledger.
//!
//! A run that dies between 1 and 3 leaves the key `in_flight`. The next run of
//! the activation turns every such key into `uncertain` before it reads a row,
//! reports them in its run log, and never sends them again on its own: the
//! invitation may have gone out, and an email cannot be recalled. So a row is
//! sent at most once, a row that is not known to be sent is always either
//! retried (`failed`, or never marked) or reported (`uncertain`), and a kill
//! leaves at most `concurrency` rows uncertain.
//!
//! Rows rejected before any request (bad data, a NULL or duplicated key) are
//! recorded per batch. A request refused for a reason that concerns the whole
//! destination (bad credentials, unknown business unit) stops the run; that
//! row's key goes back to its previous ledger state and the rows not yet sent
//! are logged as `skipped`, to be sent by the next run. An interrupt (SIGINT,
//! SIGTERM, [`RunOptions::cancel`]) stops reading and starting requests; the
//! requests under way get a bounded time to finish; of those still running
//! after it, a row already marked in flight is recorded `uncertain`, and one
//! not yet marked (still waiting for the rate window) is `skipped` and sent
//! by the next run.
//!
//! Every row read ends with exactly one outcome, and the run checks its own
//! accounting before it finishes:
//! `read = already_sent + already_rejected + ignored_changed + new + baseline + too_old` and
//! `new = sent + rejected + failed + uncertain + skipped + given_up + suppressed`.
//!
//! Each row's fate before any request is one pure decision (`run/fate.rs`:
//! already sent, changed after sending, rejected with its reason, too old,
//! outside a resend, or to send), applied in one place that updates the
//! counts, the ledger and the run log; the budget (`--limit`, caps) decides
//! "over budget" as rows are handed to delivery.

pub mod approvals;
mod check;
pub mod config;
pub mod dbt;
mod destinations;
mod error;
mod project_check;
mod run;
pub mod schedule;
pub mod settle;

pub use check::{
    ActivationCheck, ColumnCheck, DestinationCheck, FirstRunCheck, SourceCheck, check_activation,
    check_destination,
};
pub use error::{Error, Result};
pub use project_check::{ProjectCheck, check_project};
pub use run::{
    Allowance, Cancel, Finished, Hold, HoldPoint, Planned, Preview, Progress, Refusal, Resend,
    RunOptions, allowances, approval_text, preview, run, run_with,
};

/// How long a run may take to drain after an interrupt: the destination's
/// request timeout (a request under way may finish) plus 5 s to record it.
pub fn drain(destination: &config::Destination) -> std::time::Duration {
    destination.request_timeout() + std::time::Duration::from_secs(5)
}
