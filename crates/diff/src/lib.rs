//! Finds the rows an activation has not sent yet: row hashing and the
//! insert-only classification. No IO: the ledger these decisions are made
//! against lives in `retl-state`, which stores this crate's [`Status`] and
//! [`Entry`].
//!
//! Two parts, in the order a row meets them:
//!
//! - [`hash`]: a row's *identity* is the SHA-256 of its primary-key columns
//!   (from a canonical form of their values, so a key survives a change of
//!   column type), its
//!   *content* the SHA-256 of every column the mapping reads. Both are computed
//!   column by column over Arrow arrays from a canonical, type-tagged,
//!   length-prefixed encoding, so `("ab","c")` and `("a","bc")` differ and NULL
//!   differs from `""`. The ledger keeps a 16-byte truncation.
//! - [`classify`]: the insert-only rules. A key never seen is new; a key already
//!   sent is never sent again, whatever changed (`ignored_changed`); a key
//!   rejected for bad data is tried again only when its content changed; a key
//!   that failed for a transient reason is tried again; a key whose delivery is
//!   uncertain is never resent automatically.
//! - [`keyset`]: the settled keys of an activation in memory, so that a full
//!   scan decides most rows without asking the ledger.

mod classify;
mod error;
pub mod hash;
pub mod keyset;

pub use classify::{Class, Entry, Status, classify};
pub use error::{Error, Result};
pub use hash::{
    DECIMAL_TEXT, RowHash, canonical_from_legacy, combine, fingerprint, hash_keys, hash_rows,
};
pub use keyset::{KeySet, KeySetBuilder, Seen};
