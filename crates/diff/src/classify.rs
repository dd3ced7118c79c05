//! The insert-only classification of a row against its ledger entry.

use std::fmt;
use std::str::FromStr;

use crate::RowHash;

/// Where a key stands in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Marked just before its request was sent; the outcome is not known yet.
    InFlight,
    /// Trustpilot accepted the invitation.
    Sent,
    /// Bad data (ours or Trustpilot's verdict): retried only when the content changes.
    Rejected,
    /// A transient failure: retried by a later run.
    Failed,
    /// The request may have reached Trustpilot: never resent automatically.
    Uncertain,
    /// Present before the activation's first run (`first_run: skip_existing`):
    /// never sent, and never to be.
    Baseline,
    /// Older than the activation's `max_row_age` when first seen: never sent.
    TooOld,
    /// Failed transiently for longer than `retry.give_up_after`: no longer
    /// retried on its own (`retl runs resend --given-up` releases it). Not
    /// the data's fault, so never `rejected`.
    GivenUp,
    /// Not sent: its customer was invited within the dedupe window
    /// (`dedupe:`). Settled: never sent.
    Suppressed,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 9] = [
        Status::InFlight,
        Status::Sent,
        Status::Rejected,
        Status::Failed,
        Status::Uncertain,
        Status::Baseline,
        Status::TooOld,
        Status::GivenUp,
        Status::Suppressed,
    ];

    /// The value stored in the ledger's `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InFlight => "in_flight",
            Status::Sent => "sent",
            Status::Rejected => "rejected",
            Status::Failed => "failed",
            Status::Uncertain => "uncertain",
            Status::Baseline => "baseline",
            Status::TooOld => "too_old",
            Status::GivenUp => "given_up",
            Status::Suppressed => "suppressed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown ledger status `{s}`"))
    }
}

/// What the ledger knows of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The content hash last recorded for the key; for a `rejected` key, its
    /// request hash (see [`classify`]).
    pub content: RowHash,
    /// Its status.
    pub status: Status,
    /// How many requests were made for it so far.
    pub attempts: u32,
}

/// What a run does with a row, given what the ledger says of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Never seen: send it.
    New,
    /// Seen before but not delivered (a transient failure, or a rejection whose
    /// data has since changed): send it again.
    Retry,
    /// Sent before with the same content: nothing to do.
    AlreadySent,
    /// Sent before and its content changed since: insert-only, so nothing to do.
    IgnoredChanged,
    /// Rejected before and neither its content nor what shapes its request
    /// has changed: nothing to do.
    AlreadyRejected,
    /// A previous run may or may not have delivered it (`uncertain` or left
    /// in flight): never resent automatically.
    Unresolved,
}

impl Class {
    /// Whether this run sends the row.
    pub fn is_new(self) -> bool {
        matches!(self, Class::New | Class::Retry)
    }
}

/// Classifies a row by its ledger entry (if any), its current content hash,
/// and its request hash: the content combined with a fingerprint of the
/// settings and mapping that shape its request ([`combine`](crate::combine)).
///
/// A `rejected` key is recorded with its request hash, so it is tried again
/// when its data changes *or* a setting that shaped the rejected request
/// does (a fixed template id or SKU recovers the rows it broke).
pub fn classify(entry: Option<&Entry>, content: &RowHash, request: &RowHash) -> Class {
    let Some(entry) = entry else {
        return Class::New;
    };
    match entry.status {
        Status::Sent | Status::Baseline | Status::TooOld | Status::Suppressed
            if entry.content == *content =>
        {
            Class::AlreadySent
        }
        Status::Sent | Status::Baseline | Status::TooOld | Status::Suppressed => {
            Class::IgnoredChanged
        }
        Status::Rejected if entry.content == *request => Class::AlreadyRejected,
        Status::Rejected | Status::Failed => Class::Retry,
        Status::InFlight | Status::Uncertain | Status::GivenUp => Class::Unresolved,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(status: Status, content: u8) -> Entry {
        Entry {
            content: [content; 16],
            status,
            attempts: 1,
        }
    }

    #[test]
    fn a_sent_key_is_never_sent_again_even_when_changed() {
        assert_eq!(
            classify(Some(&entry(Status::Sent, 1)), &[1; 16], &[1; 16]),
            Class::AlreadySent
        );
        assert_eq!(
            classify(Some(&entry(Status::Sent, 1)), &[2; 16], &[2; 16]),
            Class::IgnoredChanged
        );
        assert!(!Class::IgnoredChanged.is_new());
    }

    #[test]
    fn a_baseline_key_is_never_sent() {
        assert_eq!(
            classify(Some(&entry(Status::Baseline, 1)), &[1; 16], &[1; 16]),
            Class::AlreadySent
        );
        assert_eq!(
            classify(Some(&entry(Status::Baseline, 1)), &[2; 16], &[2; 16]),
            Class::IgnoredChanged
        );
    }

    #[test]
    fn a_rejected_key_is_retried_only_when_its_data_changed() {
        assert_eq!(
            classify(Some(&entry(Status::Rejected, 1)), &[1; 16], &[1; 16]),
            Class::AlreadyRejected
        );
        assert_eq!(
            classify(Some(&entry(Status::Rejected, 1)), &[2; 16], &[2; 16]),
            Class::Retry
        );
    }

    #[test]
    fn a_rejected_key_is_retried_when_what_shapes_its_request_changed() {
        let rejected = entry(Status::Rejected, 5);
        assert_eq!(
            classify(Some(&rejected), &[1; 16], &[5; 16]),
            Class::AlreadyRejected
        );
        assert_eq!(classify(Some(&rejected), &[1; 16], &[6; 16]), Class::Retry);
    }

    #[test]
    fn a_too_old_key_is_never_sent() {
        let old = entry(Status::TooOld, 1);
        assert_eq!(classify(Some(&old), &[1; 16], &[1; 16]), Class::AlreadySent);
        assert_eq!(
            classify(Some(&old), &[2; 16], &[2; 16]),
            Class::IgnoredChanged
        );
    }

    #[test]
    fn failed_keys_are_retried_and_uncertain_ones_are_not() {
        assert_eq!(
            classify(Some(&entry(Status::Failed, 1)), &[1; 16], &[1; 16]),
            Class::Retry
        );
        assert_eq!(
            classify(Some(&entry(Status::Uncertain, 1)), &[2; 16], &[2; 16]),
            Class::Unresolved
        );
        assert_eq!(
            classify(Some(&entry(Status::InFlight, 1)), &[1; 16], &[1; 16]),
            Class::Unresolved
        );
        assert_eq!(classify(None, &[1; 16], &[1; 16]), Class::New);
    }

    #[test]
    fn every_status_round_trips_through_its_stored_text() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
        }
        assert!("sent ".parse::<Status>().is_err());
    }
}
