//! Finds the rows an activation has not sent yet.
//!
//! Three parts, in the order a row meets them:
//!
//! - [`hash`]: a row's *identity* is the SHA-256 of its primary-key columns, its
//!   *content* the SHA-256 of every column the mapping reads. Both are computed
//!   column by column over Arrow arrays from a canonical, type-tagged,
//!   length-prefixed encoding, so `("ab","c")` and `("a","bc")` differ and NULL
//!   differs from `""`. The ledger keeps a 16-byte truncation.
//! - [`Ledger`]: per activation, key hash → content hash, status, attempts,
//!   first and last run, last error. It lives in the state database ([`Db`]:
//!   a SQLite file by default, PostgreSQL for shared deployments).
//!   Lookups go by batches of rows, never one SQL round trip per row, and
//!   return only the rows that need a decision (not those already sent unchanged).
//! - [`classify`]: the insert-only rules. A key never seen is new; a key already
//!   sent is never sent again, whatever changed (`ignored_changed`); a key
//!   rejected for bad data is tried again only when its content changed; a key
//!   that failed for a transient reason is tried again; a key whose delivery is
//!   uncertain is never resent automatically.

mod classify;
mod db;
mod error;
pub mod hash;
mod ledger;

pub use classify::{Class, classify};
pub use db::{Db, DbRef, Tx, now_text};
pub use error::{Error, Result};
pub use hash::{RowHash, hash_rows};
pub use ledger::{Entry, Ledger, Outcome, Status};
