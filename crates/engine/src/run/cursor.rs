//! Cursor mode in a run (`source.incremental`): whether this run reads
//! everything or only past the high-water mark, and what it read, so that a
//! completed run moves the mark only as far as it fully handled.

use super::Run;
use crate::{Error, Result};

/// What a cursor-mode run tracks to move the high-water mark: only to the
/// greatest cursor value it fully handled.
#[derive(Debug)]
pub(super) struct CursorTrack {
    /// Whether it read every row.
    pub(super) full: bool,
    /// The high-water mark it started from.
    old: Option<retl_source::CursorValue>,
    /// The greatest cursor value it read.
    max_seen: Option<retl_source::CursorValue>,
    /// The least cursor value of a row it left failed or skipped.
    min_pending: Option<retl_source::CursorValue>,
}

impl CursorTrack {
    /// A row whose cursor value is `value` was read: whether it is a full
    /// scan's row with a NULL cursor.
    pub(super) fn saw(&mut self, value: Option<&retl_source::CursorValue>) -> bool {
        match value {
            Some(value) if self.max_seen.as_ref().is_none_or(|max| value > max) => {
                self.max_seen = Some(value.clone());
                false
            }
            Some(_) => false,
            None => self.full,
        }
    }

    /// A row with cursor `value` was not handled for good.
    pub(super) fn hold_back(&mut self, value: &retl_source::CursorValue) {
        if self.min_pending.as_ref().is_none_or(|min| value < min) {
            self.min_pending = Some(value.clone());
        }
    }

    /// The high-water mark after the run completed: the greatest value read,
    /// but no further than a row still to send; never back.
    pub(super) fn next(&self) -> Option<retl_source::CursorValue> {
        let reached = match (&self.max_seen, &self.min_pending) {
            (Some(max), Some(min)) if min < max => Some(min.clone()),
            (max, _) => max.clone(),
        };
        match (reached, &self.old) {
            (Some(new), Some(old)) if new < *old => Some(old.clone()),
            (None, old) => old.clone(),
            (new, _) => new,
        }
    }
}

impl Run<'_> {
    /// Cursor mode: whether this run reads everything (the first run, no
    /// high-water mark yet, or a full scan due by `full_scan_every`) or only
    /// rows at or past the high-water mark less the lookback.
    pub(super) async fn plan_cursor(
        &self,
        first_run: bool,
    ) -> Result<(Option<CursorTrack>, Option<retl_source::Since>)> {
        let Some(incremental) = &self.activation.source.incremental else {
            return Ok((None, None));
        };
        let recorded = self.state.cursor(&self.activation.name).await?;
        let high_water = recorded
            .high_water
            .and_then(|(kind, text)| retl_source::CursorValue::parse(&kind, &text));
        let last_full = recorded
            .full_scan_at
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.to_utc());
        let full_due = incremental.full_scan_every.is_some_and(|every| {
            last_full.is_none_or(|at| {
                self.started - at >= chrono::Duration::from_std(every).unwrap_or_default()
            })
        });
        let since = match &high_water {
            Some(mark) if !first_run && !full_due => Some(retl_source::Since {
                column: incremental.cursor.clone(),
                from: mark
                    .back(incremental.lookback)
                    .map_err(|message| Error::Mapping {
                        activation: self.activation.name.clone(),
                        message: format!("source.incremental.lookback: {message}"),
                    })?,
            }),
            _ => None,
        };
        match &since {
            Some(since) => tracing::info!(
                cursor = %since.column, from = %since.from,
                "cursor mode: reading rows at or past the high-water mark less the lookback"
            ),
            None => tracing::info!("cursor mode: a full scan"),
        }
        let track = CursorTrack {
            full: since.is_none(),
            old: high_water,
            max_seen: None,
            min_pending: None,
        };
        Ok((Some(track), since))
    }
}
