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
    key_hash_of_text,
};
pub use keyset::{KeySet, KeySetBuilder, Seen};

/// The content recorded for a key whose content was never read (a
/// baseline that read only the key columns, `source.diff: warehouse`): it
/// settles the key and compares equal to any content. A real content hash
/// is all zeros with a chance of 2⁻¹²⁸; a [`KeySet`] keeps four of its bytes,
/// so a real content whose tag is zero (one in 2³²) is taken as unchanged,
/// which decides only between `already_sent` and `ignored_changed`.
pub const UNKNOWN_CONTENT: RowHash = [0; 16];
