//! The run's side of the key segments (see `retl_state`'s `segments`): the
//! key set a run classifies against, the baseline written as blocks, and the
//! folding of keys the ledger table settled into blocks; and the source
//! opened while they load.

use std::collections::HashSet;

use retl_diff::{KeySet, RowHash};

use retl_source::Source;

use super::RunCtx;
use super::end::by_interrupt;
use super::options::{HoldPoint, hold_at};
use crate::{Error, Result};

/// What [`RunCtx::start_loading_keys`] loads.
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

impl RunCtx<'_> {
    /// Starts loading what the run classifies against: for a baseline, the
    /// ledger table's keys (their entries stay in force); otherwise the key
    /// set. It runs beside the source's connection and first batches.
    ///
    /// A run that reads only candidates (`candidates`: cursor mode past its
    /// high-water mark, the warehouse's anti-join) loads nothing: it looks
    /// each batch's keys up in the ledger table and the segments, so its
    /// memory follows the batch, not the activation's settled keys.
    pub(super) fn start_loading_keys(&self, baseline: bool, candidates: bool) -> Loading {
        let state = self.state.clone();
        let name = self.activation.name.clone();
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

    /// Waits for what [`start_loading_keys`](Self::start_loading_keys) loads.
    pub(super) async fn finish_loading_keys(&mut self, mut loading: Loading) -> Result<()> {
        let task = loading.0.take().expect("a load is awaited once");
        let loaded = task
            .await
            .map_err(|e| crate::Error::Internal(format!("loading the key set stopped: {e}")))??;
        match loaded {
            Loaded::InTable(keys) => {
                self.keys.in_table = keys;
                // Every row read is held: growing the buffer would copy it again and again.
                if self.dry.is_none() {
                    self.keys
                        .pending
                        .reserve_exact(self.options.key_flush_rows.min(1 << 20));
                }
            }
            Loaded::Set(set) => {
                tracing::debug!(records = set.records(), "key set loaded");
                self.keys.set = Some(set);
            }
            Loaded::Nothing => tracing::debug!("candidates are looked up a batch at a time"),
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
            if self.keys.in_table.contains(&record.0) {
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

    /// After a failure: what the run holds for the key segments is true all
    /// the same (rows there before the first completed run, keys the ledger
    /// settled), and so are the keys for the warehouse's key table (one not
    /// written is read again by the next run, never sent again): keep them.
    pub(super) async fn keep_what_is_settled(&mut self) {
        if let Some(Err(e)) = by_interrupt(self.options, self.write_records(false)).await {
            tracing::warn!(error = %retl_config::with_causes(&e), "key segments not written");
        }
        if let Some(Err(e)) = by_interrupt(self.options, self.push_keys()).await {
            tracing::warn!(error = %retl_config::with_causes(&e), "settled keys not written to the key table; the next run catches up");
        }
    }

    /// Opens the source for this run (narrowed by the warehouse's key table
    /// with `diff: warehouse`), while what it classifies against loads.
    pub(super) async fn open_source(
        &mut self,
        spec: &mut retl_source::SourceSpec,
        baseline: bool,
    ) -> Result<(Source, Loading)> {
        self.plan_warehouse(spec, baseline).await?;
        // The key set loads from the state while the source connects and
        // starts streaming.
        let keys = self.start_loading_keys(baseline, self.reads_candidates(spec.since.is_some()));
        let source = Source::open(spec).await.map_err(|error| Error::Source {
            activation: self.activation.name.clone(),
            error,
        })?;
        self.check_key_types(&source.schema(), |c| source.db_type(c).map(str::to_owned))?;
        Ok((source, keys))
    }
}
