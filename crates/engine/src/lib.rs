//! Runs activations: configuration, orchestration, ledger commits and run logs.
//!
//! A run reads its source batch by batch. For each batch it hashes every row's
//! key and content, looks the keys up in the ledger (one query per few hundred
//! keys), classifies each row, maps and validates the new ones, and sends them
//! with a bounded number of requests in flight.
//!
//! # The delivery protocol
//!
//! The order of writes is the correctness contract of retl:
//!
//! 1. **Mark in flight.** Before a request for a row leaves, the row's key is
//!    written to the ledger as `in_flight` and committed (SQLite with
//!    `synchronous = FULL`).
//! 2. **Send.** The request goes to Trustpilot.
//! 3. **Record.** The outcome (`sent`, `rejected`, `failed`, `uncertain`) and
//!    the row's run-log entry are committed together, in one transaction.
//!
//! A run that dies between 1 and 3 leaves the key `in_flight`. The next run of
//! the activation turns every such key into `uncertain` before it reads a row,
//! reports them in its run log, and never sends them again on its own: the
//! invitation may have gone out, and an email cannot be recalled. So a row is
//! sent at most once, and a row that is not known to be sent is always either
//! retried (`failed`, or never marked) or reported (`uncertain`).
//!
//! Rows rejected before any request (bad data, a NULL or duplicated key) are
//! recorded per batch. A request refused for a reason that concerns the whole
//! destination (bad credentials, unknown business unit) stops the run; that
//! row's key goes back to its previous ledger state and the rows not yet sent
//! are logged as `skipped`, to be sent by the next run.
//!
//! Every row read ends with exactly one outcome, and the run checks its own
//! accounting before it finishes:
//! `read = already_sent + already_rejected + ignored_changed + new` and
//! `new = sent + rejected + failed + uncertain + skipped`.

mod check;
pub mod config;
mod error;
mod run;
mod state;

pub use check::{check_destination, check_source, client};
pub use error::{Error, Result};
pub use run::{Finished, RunOptions, email_invitation, run, run_with};
pub use state::{Counts, Lease, RowLog, RunSummary, State};
