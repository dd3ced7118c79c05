//! A run's counts, changed in one place: [`count`] turns what happened to a
//! row into the counts it moves. A row read is counted once, by its class
//! ([`Read`]), and `read` with it; a new row is counted once more when it
//! ends ([`Event::Ended`]). So `read` is the sum of the classes by
//! construction, and `new` is the sum of the endings when every new row
//! ends once (the run asserts it with [`Counts::balanced`]).

use retl_state::{Counts, RowOutcome};

/// How a row read was classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Read {
    /// Settled before: sent, or settled for good.
    AlreadySent,
    /// Rejected before, and unchanged.
    AlreadyRejected,
    /// Sent before, its content hash remade under a changed mapping.
    Reshaped,
    /// Sent (or settled) before, and changed since: not sent again.
    IgnoredChanged,
    /// Older than `max_row_age`: recorded, never sent.
    TooOld,
    /// Recorded as there before the first run (`first_run: skip_existing`).
    Baseline,
    /// New (or to retry): it ends with one [`Event::Ended`].
    New,
}

/// Something a run counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    /// A row read, by its class.
    Read(Read),
    /// A new row's end: one of `sent`, `rejected`, `failed`, `uncertain`,
    /// `skipped`, `given_up`, `suppressed`, `duplicate`.
    Ended(RowOutcome),
    /// A sent row whose link could not be written back.
    WritebackFailed,
    /// A full scan's row with a NULL cursor.
    CursorNull,
    /// Rows an earlier run left in flight, found `uncertain` at the start.
    Recovered,
}

/// The counts `n` rows of `event` move. The only function that changes a
/// run's counts.
pub(super) fn count(counts: &mut Counts, event: Event, n: u64) {
    let field = match event {
        Event::Read(read) => {
            counts.read += n;
            match read {
                Read::AlreadySent => &mut counts.already_sent,
                Read::AlreadyRejected => &mut counts.already_rejected,
                Read::Reshaped => {
                    counts.reshaped += n;
                    &mut counts.already_sent
                }
                Read::IgnoredChanged => &mut counts.ignored_changed,
                Read::TooOld => &mut counts.too_old,
                Read::Baseline => &mut counts.baseline,
                Read::New => &mut counts.new,
            }
        }
        Event::Ended(outcome) => match outcome {
            RowOutcome::Sent => &mut counts.sent,
            RowOutcome::Rejected => &mut counts.rejected,
            RowOutcome::Failed => &mut counts.failed,
            RowOutcome::Uncertain => &mut counts.uncertain,
            RowOutcome::Skipped => &mut counts.skipped,
            RowOutcome::GivenUp => &mut counts.given_up,
            RowOutcome::Suppressed => &mut counts.suppressed,
            RowOutcome::Duplicate => &mut counts.duplicate,
            RowOutcome::TooOld | RowOutcome::IgnoredChanged => {
                unreachable!("{outcome} is how a row read is classified, not how a new row ends")
            }
        },
        Event::WritebackFailed => &mut counts.writeback_failed,
        Event::CursorNull => &mut counts.cursor_null,
        Event::Recovered => &mut counts.recovered,
    };
    *field += n;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_read_and_ended_once_balances() {
        let mut counts = Counts::default();
        for read in [
            Read::AlreadySent,
            Read::AlreadyRejected,
            Read::Reshaped,
            Read::IgnoredChanged,
            Read::TooOld,
            Read::Baseline,
        ] {
            count(&mut counts, Event::Read(read), 2);
        }
        for outcome in [
            RowOutcome::Sent,
            RowOutcome::Rejected,
            RowOutcome::Failed,
            RowOutcome::Uncertain,
            RowOutcome::Skipped,
            RowOutcome::GivenUp,
            RowOutcome::Suppressed,
            RowOutcome::Duplicate,
        ] {
            count(&mut counts, Event::Read(Read::New), 1);
            assert!(!counts.balanced(), "a new row not yet ended");
            count(&mut counts, Event::Ended(outcome), 1);
            assert!(counts.balanced(), "{counts:?}");
        }
        assert_eq!((counts.read, counts.new, counts.reshaped), (20, 8, 2));
        assert_eq!(counts.already_sent, 4, "a reshaped row is one sent before");
    }
}
