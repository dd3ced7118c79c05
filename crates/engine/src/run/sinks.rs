//! Where what a run settles goes besides the ledger, shared by the phases
//! that settle rows (classify, deliver) and read at the end: the key
//! segments ([`keys`](super::keys)), the warehouse's key table
//! ([`warehouse`](super::warehouse)) and the cursor's mark
//! ([`cursor`](super::cursor)). Made by the open phase.

use super::Run;
use super::cursor::CursorTrack;
use super::end::by_interrupt;
use super::keys::Keys;
use super::warehouse::Warehouse;

/// A run's sinks of settled keys and cursor values.
#[derive(Default)]
pub(super) struct Sinks {
    /// The key set and the records on their way to the key segments.
    pub keys: Keys,
    /// `source.diff: warehouse`: the key table and the keys on their way to it.
    pub warehouse: Option<Warehouse>,
    /// Cursor mode: what this run read, for the high-water mark.
    pub cursor: Option<CursorTrack>,
}

impl Sinks {
    /// After a failure: what the run holds for the key segments is true all
    /// the same (rows there before the first completed run, keys the ledger
    /// settled), and so are the keys for the warehouse's key table (one not
    /// written is read again by the next run, never sent again): keep them.
    pub(super) async fn keep_what_is_settled(&mut self, run: &Run<'_>) {
        if let Some(Err(e)) = by_interrupt(run.options, self.write_records(run, false)).await {
            tracing::warn!(error = %retl_config::with_causes(&e), "key segments not written");
        }
        if let Some(Err(e)) = by_interrupt(run.options, self.push_keys(run)).await {
            tracing::warn!(error = %retl_config::with_causes(&e), "settled keys not written to the key table; the next run catches up");
        }
    }

    /// A row whose cursor value is `value` was read: whether it is a full
    /// scan's row with a NULL cursor (counted).
    pub(super) fn saw_cursor(&mut self, value: Option<&retl_source::CursorValue>) -> bool {
        self.cursor.as_mut().is_some_and(|track| track.saw(value))
    }

    /// A row with cursor `value` was not handled for good (failed, skipped):
    /// the high-water mark stays at or below it, so a later run reads it again.
    pub(super) fn hold_back(&mut self, value: Option<&retl_source::CursorValue>) {
        if let (Some(track), Some(value)) = (&mut self.cursor, value) {
            track.hold_back(value);
        }
    }
}
