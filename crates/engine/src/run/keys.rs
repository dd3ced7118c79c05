//! The run's side of the key segments (see `retl_state`'s `segments`): the
//! key set a run classifies against, the baseline written as blocks, and the
//! folding of keys the ledger table settled into blocks; and the source
//! opened while they load.

use std::collections::HashSet;

use retl_diff::{KeySet, RowHash};

use super::Run;
use super::options::{HoldPoint, hold_at};
use crate::Result;

/// Parts of the key segments merged in one transaction.
const COMPACT_PARTS: usize = 8;

/// What [`start_loading`] loads.
pub(super) enum Loaded {
    /// A baseline's: the keys the ledger table holds.
    InTable(HashSet<RowHash>),
    /// Any other run's: the key set.
    Set(KeySet),
    /// Nothing: the run looks its few candidates up a batch at a time.
    Nothing,
}

/// A load under way; dropped (the run failed before it needed it), it stops.
pub(super) struct Loading(Option<tokio::task::JoinHandle<retl_state::Result<Loaded>>>);

impl Drop for Loading {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

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

/// Starts loading what the run classifies against: for a baseline, the
/// ledger table's keys (their entries stay in force); otherwise the key
/// set. It runs beside the source's connection and first batches.
///
/// A run that reads only candidates (`candidates`: cursor mode past its
/// high-water mark, the warehouse's anti-join) loads nothing: it looks
/// each batch's keys up in the ledger table and the segments, so its
/// memory follows the batch, not the activation's settled keys.
pub(super) fn start_loading(run: &Run<'_>, baseline: bool, candidates: bool) -> Loading {
    let state = run.state.clone();
    let name = run.activation.name.clone();
    Loading(Some(tokio::spawn(async move {
        if baseline {
            state.ledger_keys(&name).await.map(Loaded::InTable)
        } else if candidates {
            Ok(Loaded::Nothing)
        } else {
            state.key_set(&name).await.map(Loaded::Set)
        }
    })))
}

impl Keys {
    /// Waits for what [`start_loading`] loads.
    pub(super) async fn finish_loading(
        &mut self,
        run: &Run<'_>,
        mut loading: Loading,
    ) -> Result<()> {
        let task = loading.0.take().expect("a load is awaited once");
        let loaded = task
            .await
            .map_err(|e| crate::Error::Internal(format!("loading the key set stopped: {e}")))??;
        match loaded {
            Loaded::InTable(keys) => {
                self.in_table = keys;
                // Every row read is held: growing the buffer would copy it again and again.
                if run.effects.is_live() {
                    self.pending
                        .reserve_exact(run.options.key_flush_rows.min(1 << 20));
                }
            }
            Loaded::Set(set) => {
                tracing::debug!(records = set.records(), "key set loaded");
                self.set = Some(set);
            }
            Loaded::Nothing => tracing::debug!("candidates are looked up a batch at a time"),
        }
        Ok(())
    }
}

impl Keys {
    /// Holds records for the segments, writing them once enough are held (a
    /// dry run holds none).
    pub(super) async fn hold(
        &mut self,
        run: &Run<'_>,
        records: impl IntoIterator<Item = (RowHash, RowHash)>,
    ) -> Result<()> {
        if !run.effects.is_live() {
            return Ok(());
        }
        let flush_at = run.options.key_flush_rows.max(1);
        for record in records {
            if self.in_table.contains(&record.0) {
                continue;
            }
            self.pending.push(record);
            if self.pending.len() >= flush_at {
                self.write(run, false).await?;
            }
        }
        Ok(())
    }

    /// Writes the records held as blocks; at the end of a run (`last`), also
    /// merges the parts that have too many blocks.
    pub(super) async fn write(&mut self, run: &Run<'_>, last: bool) -> Result<()> {
        if self.pending.is_empty() && !last {
            return Ok(());
        }
        let pending = &mut self.pending;
        // A dry run writes nothing (and holds nothing to write).
        let written = run
            .effects
            .write(async |tx| {
                if last {
                    tx.append_segments(pending).await?;
                } else {
                    tx.append_segments_ahead(pending).await?;
                }
                Ok(true)
            })
            .await?;
        if written {
            self.pending.clear();
            hold_at(run.options, HoldPoint::Segments, &self.written).await;
        }
        if last && written {
            self.compact(run).await?;
        }
        Ok(())
    }

    /// Merges the crowded parts of the key segments, [`COMPACT_PARTS`] to a
    /// transaction: each part's merge stands alone, and the state's write
    /// lock is let go between them (a baseline of tens of millions of keys
    /// merges for tens of seconds; the lease is renewed meanwhile).
    async fn compact(&self, run: &Run<'_>) -> Result<()> {
        let mut merged = 0;
        loop {
            let now = run
                .effects
                .write(async |tx| tx.compact_segments(COMPACT_PARTS).await)
                .await?;
            merged += now;
            if now < COMPACT_PARTS {
                break;
            }
        }
        if merged > 0 {
            tracing::debug!(parts = merged, "key segments merged");
        }
        Ok(())
    }
}
