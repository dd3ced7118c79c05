//! The insert-only classification of a row against its ledger entry.

use crate::{Entry, RowHash, Status};

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
    /// Rejected before and its content has not changed: nothing to do.
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

/// Classifies a row by its ledger entry (if any) and its current content hash.
pub fn classify(entry: Option<&Entry>, content: &RowHash) -> Class {
    let Some(entry) = entry else {
        return Class::New;
    };
    match entry.status {
        Status::Sent | Status::Baseline if entry.content == *content => Class::AlreadySent,
        Status::Sent | Status::Baseline => Class::IgnoredChanged,
        Status::Rejected if entry.content == *content => Class::AlreadyRejected,
        Status::Rejected | Status::Failed => Class::Retry,
        Status::InFlight | Status::Uncertain => Class::Unresolved,
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
            classify(Some(&entry(Status::Sent, 1)), &[1; 16]),
            Class::AlreadySent
        );
        assert_eq!(
            classify(Some(&entry(Status::Sent, 1)), &[2; 16]),
            Class::IgnoredChanged
        );
        assert!(!Class::IgnoredChanged.is_new());
    }

    #[test]
    fn a_baseline_key_is_never_sent() {
        assert_eq!(
            classify(Some(&entry(Status::Baseline, 1)), &[1; 16]),
            Class::AlreadySent
        );
        assert_eq!(
            classify(Some(&entry(Status::Baseline, 1)), &[2; 16]),
            Class::IgnoredChanged
        );
    }

    #[test]
    fn a_rejected_key_is_retried_only_when_its_data_changed() {
        assert_eq!(
            classify(Some(&entry(Status::Rejected, 1)), &[1; 16]),
            Class::AlreadyRejected
        );
        assert_eq!(
            classify(Some(&entry(Status::Rejected, 1)), &[2; 16]),
            Class::Retry
        );
    }

    #[test]
    fn failed_keys_are_retried_and_uncertain_ones_are_not() {
        assert_eq!(
            classify(Some(&entry(Status::Failed, 1)), &[1; 16]),
            Class::Retry
        );
        assert_eq!(
            classify(Some(&entry(Status::Uncertain, 1)), &[2; 16]),
            Class::Unresolved
        );
        assert_eq!(
            classify(Some(&entry(Status::InFlight, 1)), &[1; 16]),
            Class::Unresolved
        );
        assert_eq!(classify(None, &[1; 16]), Class::New);
    }
}
