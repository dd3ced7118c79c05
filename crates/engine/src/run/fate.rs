//! A row's fate, decided by one pure function over named facts.
//!
//! [`decide`] takes what the run found out about a row (its cells, its key,
//! the ledger's entry, the resend, its age) and returns a [`Fate`]; it reads
//! nothing and writes nothing. The run applies a fate in one place
//! (`Decisions::apply` in `classify.rs`): the counts, the ledger outcome and the run-log row.
//! The precedence of the rules is the order of [`decide`]'s checks, and each
//! rule and each precedence has a unit test below.

use retl_diff::{Class, Entry, RowHash, Status, classify};

/// What the run knows of a row before deciding its fate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts<'a> {
    /// A cell of the row the source could not decode, if one.
    pub unreadable: Option<&'a str>,
    /// Whether a primary-key column is NULL.
    pub key_null: bool,
    /// Whether another row of this read has the same key.
    pub duplicate: bool,
    /// What the ledger says of the key.
    pub ledger: Ledger,
    /// The row's content hash.
    pub content: RowHash,
    /// Its request hash: content with what shapes its request (a rejection
    /// is remembered by it). Not read when the ledger settled the row.
    pub request: RowHash,
    /// The same, by the fingerprint of the release before requests were
    /// fingerprinted explicitly (a row it rejected stays rejected); only
    /// made for a key the ledger has as rejected.
    pub legacy_request: Option<RowHash>,
    /// A resend is under way and this key is not part of it.
    pub outside_resend: bool,
    /// What `max_row_age` says of it.
    pub age: Age,
}

/// What the ledger says of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ledger {
    /// Settled and unchanged: the key set answered without the ledger table.
    Settled,
    /// The ledger table's entry (`None`: never seen).
    Entry(Option<Entry>),
}

/// What `max_row_age` says of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Age {
    /// Young enough, or no `max_row_age`.
    Young,
    /// Older than `max_row_age`.
    TooOld,
    /// Its dating cell is NULL or unreadable.
    Unknown,
}

/// Why a row is rejected before any request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// A cell could not be decoded (the source's words).
    Unreadable(String),
    /// A primary-key column is NULL.
    NullKey,
    /// Its age cannot be told.
    UnknownAge,
}

impl Rejection {
    /// Whether the rejection is recorded in the ledger: only a row with an
    /// identity of its own (a readable, non-NULL, first-seen key) has one.
    pub fn recorded(&self) -> bool {
        matches!(self, Rejection::UnknownAge)
    }
}

/// A row's fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Sent (or settled: baseline, too old, uncertain) before, unchanged.
    AlreadySent,
    /// Rejected before, and what would be sent is the same.
    AlreadyRejected,
    /// Settled before and its data changed since: insert-only, never resent.
    /// `status`: what it was recorded as (`None`: settled in the key set).
    ChangedAfterSending {
        /// Its ledger status before the change.
        status: Option<Status>,
    },
    /// Rejected before any request.
    Rejected(Rejection),
    /// Its key appears more than once in the read: none of its rows is
    /// sent, and it is not settled (the ledger is not asked).
    Duplicate,
    /// New, but a resend is under way that does not include it.
    OutsideResend,
    /// New, and older than `max_row_age`: recorded, never sent.
    TooOld,
    /// To build and send (new, or to retry).
    Send {
        /// The ledger's entry, if the key was seen before.
        previous: Option<Entry>,
    },
}

/// Decides a row's fate from its facts. The order of the checks is the
/// precedence: a row that cannot be read, or has no usable key, is rejected
/// before the ledger is asked; the ledger's word comes before the resend and
/// the age; only a row that passes every rule is sent.
pub(crate) fn decide(facts: &Facts<'_>) -> Fate {
    if let Some(problem) = facts.unreadable {
        return Fate::Rejected(Rejection::Unreadable(problem.to_owned()));
    }
    if facts.key_null {
        return Fate::Rejected(Rejection::NullKey);
    }
    if facts.duplicate {
        return Fate::Duplicate;
    }
    let previous = match facts.ledger {
        Ledger::Settled => return Fate::AlreadySent,
        Ledger::Entry(previous) => previous,
    };
    let mut class = classify(previous.as_ref(), &facts.content, &facts.request);
    if class == Class::Retry
        && let (Some(entry), Some(legacy)) = (previous, facts.legacy_request)
        && entry.status == Status::Rejected
        && entry.content == legacy
    {
        // Rejected by the release before explicit fingerprints, and the same
        // request today: still rejected.
        class = Class::AlreadyRejected;
    }
    match class {
        Class::AlreadySent | Class::Unresolved => Fate::AlreadySent,
        Class::AlreadyRejected => Fate::AlreadyRejected,
        Class::IgnoredChanged => Fate::ChangedAfterSending {
            status: previous.map(|e| e.status),
        },
        Class::New | Class::Retry if facts.outside_resend => Fate::OutsideResend,
        Class::New | Class::Retry => match facts.age {
            Age::TooOld => Fate::TooOld,
            Age::Unknown => Fate::Rejected(Rejection::UnknownAge),
            Age::Young => Fate::Send { previous },
        },
    }
}

/// Whether a row to send is over the run's budget (a cap or `--limit`):
/// `Some(why)` when none is left, else takes one from it.
pub(crate) fn over_budget(budget: &mut Option<(u64, String)>) -> Option<String> {
    let (left, why) = budget.as_mut()?;
    if *left == 0 {
        return Some(why.clone());
    }
    *left -= 1;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTENT: RowHash = [1; 16];
    const REQUEST: RowHash = [2; 16];

    fn entry(status: Status, content: RowHash) -> Entry {
        Entry {
            content,
            status,
            attempts: 1,
        }
    }

    /// A new, readable, young row with nothing in the ledger.
    fn new_row() -> Facts<'static> {
        Facts {
            unreadable: None,
            key_null: false,
            duplicate: false,
            ledger: Ledger::Entry(None),
            content: CONTENT,
            request: REQUEST,
            legacy_request: None,
            outside_resend: false,
            age: Age::Young,
        }
    }

    #[test]
    fn a_new_row_is_sent() {
        assert_eq!(decide(&new_row()), Fate::Send { previous: None });
    }

    #[test]
    fn each_rule_alone() {
        let unreadable = Facts {
            unreadable: Some("column `email`: not UTF-8"),
            ..new_row()
        };
        assert_eq!(
            decide(&unreadable),
            Fate::Rejected(Rejection::Unreadable("column `email`: not UTF-8".into()))
        );
        let null = Facts {
            key_null: true,
            ..new_row()
        };
        assert_eq!(decide(&null), Fate::Rejected(Rejection::NullKey));
        let duplicate = Facts {
            duplicate: true,
            ..new_row()
        };
        assert_eq!(decide(&duplicate), Fate::Duplicate);
        let settled = Facts {
            ledger: Ledger::Settled,
            ..new_row()
        };
        assert_eq!(decide(&settled), Fate::AlreadySent);
        let sent = Facts {
            ledger: Ledger::Entry(Some(entry(Status::Sent, CONTENT))),
            ..new_row()
        };
        assert_eq!(decide(&sent), Fate::AlreadySent);
        let changed = Facts {
            ledger: Ledger::Entry(Some(entry(Status::Sent, [9; 16]))),
            ..new_row()
        };
        assert_eq!(
            decide(&changed),
            Fate::ChangedAfterSending {
                status: Some(Status::Sent)
            }
        );
        let rejected = Facts {
            ledger: Ledger::Entry(Some(entry(Status::Rejected, REQUEST))),
            ..new_row()
        };
        assert_eq!(decide(&rejected), Fate::AlreadyRejected);
        let outside = Facts {
            outside_resend: true,
            ..new_row()
        };
        assert_eq!(decide(&outside), Fate::OutsideResend);
        let old = Facts {
            age: Age::TooOld,
            ..new_row()
        };
        assert_eq!(decide(&old), Fate::TooOld);
        let undated = Facts {
            age: Age::Unknown,
            ..new_row()
        };
        assert_eq!(decide(&undated), Fate::Rejected(Rejection::UnknownAge));
    }

    #[test]
    fn failed_and_changed_rejections_are_sent_again() {
        let failed = Some(entry(Status::Failed, CONTENT));
        let retry = Facts {
            ledger: Ledger::Entry(failed),
            ..new_row()
        };
        assert_eq!(decide(&retry), Fate::Send { previous: failed });
        let fixed = Some(entry(Status::Rejected, [7; 16]));
        let fixed_row = Facts {
            ledger: Ledger::Entry(fixed),
            ..new_row()
        };
        assert_eq!(decide(&fixed_row), Fate::Send { previous: fixed });
    }

    #[test]
    fn a_row_rejected_by_the_earlier_fingerprint_stays_rejected() {
        let legacy: RowHash = [5; 16];
        let facts = Facts {
            ledger: Ledger::Entry(Some(entry(Status::Rejected, legacy))),
            legacy_request: Some(legacy),
            ..new_row()
        };
        assert_eq!(decide(&facts), Fate::AlreadyRejected);
        // The legacy hash only keeps a rejection; it never holds back a failure.
        let failed = Facts {
            ledger: Ledger::Entry(Some(entry(Status::Failed, legacy))),
            legacy_request: Some(legacy),
            ..new_row()
        };
        assert!(matches!(decide(&failed), Fate::Send { .. }));
    }

    #[test]
    fn an_unreadable_row_is_rejected_before_its_key_is_looked_at() {
        let facts = Facts {
            unreadable: Some("bad"),
            key_null: true,
            duplicate: true,
            ledger: Ledger::Settled,
            ..new_row()
        };
        assert!(matches!(
            decide(&facts),
            Fate::Rejected(Rejection::Unreadable(_))
        ));
    }

    #[test]
    fn a_null_key_comes_before_a_duplicate_and_the_ledger() {
        let facts = Facts {
            key_null: true,
            duplicate: true,
            ledger: Ledger::Settled,
            ..new_row()
        };
        assert_eq!(decide(&facts), Fate::Rejected(Rejection::NullKey));
    }

    #[test]
    fn a_duplicate_in_the_run_comes_before_the_ledger() {
        let facts = Facts {
            duplicate: true,
            ledger: Ledger::Settled,
            ..new_row()
        };
        assert_eq!(decide(&facts), Fate::Duplicate);
    }

    #[test]
    fn the_ledger_comes_before_the_resend_and_the_age() {
        for ledger in [
            Ledger::Settled,
            Ledger::Entry(Some(entry(Status::Sent, CONTENT))),
        ] {
            let facts = Facts {
                ledger,
                outside_resend: true,
                age: Age::TooOld,
                ..new_row()
            };
            assert_eq!(decide(&facts), Fate::AlreadySent);
        }
        let changed = Facts {
            ledger: Ledger::Entry(Some(entry(Status::Sent, [9; 16]))),
            age: Age::Unknown,
            ..new_row()
        };
        assert!(matches!(decide(&changed), Fate::ChangedAfterSending { .. }));
    }

    #[test]
    fn a_resend_that_leaves_a_row_out_comes_before_its_age() {
        let facts = Facts {
            outside_resend: true,
            age: Age::TooOld,
            ..new_row()
        };
        assert_eq!(decide(&facts), Fate::OutsideResend);
    }

    #[test]
    fn too_old_comes_before_an_unknown_age_can_matter() {
        // (One row has one age: the two cannot meet; too old is final, unknown rejects.)
        let undated_retry = Facts {
            ledger: Ledger::Entry(Some(entry(Status::Failed, CONTENT))),
            age: Age::Unknown,
            ..new_row()
        };
        assert_eq!(
            decide(&undated_retry),
            Fate::Rejected(Rejection::UnknownAge)
        );
    }

    #[test]
    fn the_budget_lets_rows_go_until_it_is_spent() {
        let mut budget = Some((2, "--limit 2".to_owned()));
        assert_eq!(over_budget(&mut budget), None);
        assert_eq!(over_budget(&mut budget), None);
        assert_eq!(over_budget(&mut budget).as_deref(), Some("--limit 2"));
        assert_eq!(over_budget(&mut None), None, "no budget, no limit");
    }
}
