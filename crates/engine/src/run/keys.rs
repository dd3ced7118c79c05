//! The run's side of the key segments (see `retl_state`'s `segments`): the
//! key set a run classifies against, the baseline written as blocks, and the
//! folding of keys the ledger table settled into blocks.

use std::collections::HashSet;

use retl_diff::{KeySet, RowHash};

use super::RunCtx;
use super::options::{HoldPoint, hold_at};
use crate::Result;

/// What a run keeps of the key segments.
#[derive(Default)]
pub(super) struct Keys {
    /// The settled keys the segments held when the run started.
    pub set: Option<KeySet>,
    /// Records to write: baseline rows, or keys to fold.
    pub pending: Vec<(RowHash, RowHash)>,
    /// A baseline's keys the ledger table already holds: left out of the blocks.
    pub in_table: HashSet<RowHash>,
    /// Arrivals at [`HoldPoint::Segments`].
    pub written: std::sync::atomic::AtomicU64,
}

impl RunCtx<'_> {
    /// Loads what the run classifies against: for a baseline, the ledger
    /// table's keys (its entries stay in force); otherwise the key set.
    pub(super) async fn load_keys(&mut self, baseline: bool) -> Result<()> {
        let name = &self.activation.name;
        if baseline {
            self.keys.in_table = self.state.ledger_keys(name).await?;
            // Every row read is held: growing the buffer would copy it again and again.
            if self.dry.is_none() {
                self.keys
                    .pending
                    .reserve_exact(self.options.key_flush_rows.min(1 << 20));
            }
        } else {
            let set = self.state.key_set(name).await?;
            tracing::debug!(records = set.records(), "key set loaded");
            self.keys.set = Some(set);
        }
        Ok(())
    }

    /// Holds records for the segments, writing them once enough are held.
    pub(super) async fn hold_records(
        &mut self,
        records: impl IntoIterator<Item = (RowHash, RowHash)>,
    ) -> Result<()> {
        if self.dry.is_some() {
            return Ok(());
        }
        let flush_at = self.options.key_flush_rows.max(1);
        for record in records {
            if !self.keys.in_table.is_empty() && self.keys.in_table.contains(&record.0) {
                continue;
            }
            self.keys.pending.push(record);
            if self.keys.pending.len() >= flush_at {
                self.write_records(false).await?;
            }
        }
        Ok(())
    }

    /// Writes the records held as blocks; at the end of a run (`last`), also
    /// merges the parts that have too many blocks.
    pub(super) async fn write_records(&mut self, last: bool) -> Result<()> {
        if self.dry.is_some() || (self.keys.pending.is_empty() && !last) {
            return Ok(());
        }
        let mut tx = self.state.fenced(self.lease).await?;
        tx.append_segments(&mut self.keys.pending).await?;
        if last {
            let merged = tx.compact_segments().await?;
            if merged > 0 {
                tracing::debug!(parts = merged, "key segments merged");
            }
        }
        tx.commit().await?;
        self.keys.pending.clear();
        hold_at(self.options, HoldPoint::Segments, &self.keys.written).await;
        Ok(())
    }
}
