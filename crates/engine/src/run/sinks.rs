//! Where what a run settles goes besides the ledger, shared by the phases
//! that settle rows (classify, deliver) and read at the end: the key
//! segments ([`keys`](super::keys)), the warehouse's key table
//! ([`warehouse`](super::warehouse)) and the cursor's mark
//! ([`cursor`](super::cursor)). Made by the open phase, with the source
//! ([`Sinks::open`]).

use arrow_array::RecordBatch;
use retl_diff::RowHash;
use retl_source::{KeyValue, Source, SourceSpec};

use super::Run;
use super::cursor::CursorTrack;
use super::keys::{Keys, Loading, start_loading};
use super::options::by_interrupt;
use super::tally::{Event, Read};
use super::warehouse::{self, Warehouse};
use crate::Result;

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
    /// Opens the source for this run (narrowed by the warehouse's key table
    /// with `diff: warehouse`), while what it classifies against loads.
    pub(super) async fn open(
        &mut self,
        run: &Run<'_>,
        spec: &mut SourceSpec,
        baseline: bool,
    ) -> Result<(Source, Loading)> {
        self.warehouse = run.plan_warehouse(spec, baseline).await?;
        // The key set loads from the state while the source connects and
        // starts streaming.
        let candidates = warehouse::reads_candidates(self.warehouse.as_ref(), spec.since.is_some());
        let keys = start_loading(run, baseline, candidates);
        let source = Source::open(spec).await.map_err(|e| run.source_error(e))?;
        warehouse::check_key_types(run, self.warehouse.as_ref(), &source.schema(), |c| {
            source.db_type(c).map(str::to_owned)
        })?;
        Ok((source, keys))
    }

    /// Holds records for the segments, writing them once enough are held (a
    /// dry run holds none).
    pub(super) async fn hold_records(
        &mut self,
        run: &Run<'_>,
        records: impl IntoIterator<Item = (RowHash, RowHash)>,
    ) -> Result<()> {
        self.keys.hold(run, records).await
    }

    /// Writes the records held as blocks; at the end of a run (`last`), also
    /// merges the parts that have too many blocks.
    pub(super) async fn write_records(&mut self, run: &Run<'_>, last: bool) -> Result<()> {
        self.keys.write(run, last).await
    }

    /// A key the ledger holds settled (its transaction committed): with
    /// `diff: warehouse`, it goes to the key table with the next push.
    pub(super) async fn settled_key(
        &mut self,
        run: &Run<'_>,
        values: Option<Vec<KeyValue>>,
    ) -> Result<()> {
        match &mut self.warehouse {
            Some(warehouse) => warehouse.settled(run, values).await,
            None => Ok(()),
        }
    }

    /// Writes the settled keys held to the key table.
    pub(super) async fn push_keys(&mut self, run: &Run<'_>) -> Result<()> {
        match &mut self.warehouse {
            Some(warehouse) => warehouse.push(run).await,
            None => Ok(()),
        }
    }

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

    /// Whether this run is a key-only baseline read from the warehouse's
    /// staging table (`diff: warehouse`, a first run, not a preview).
    pub(super) fn reads_key_baseline(&self, run: &Run<'_>) -> bool {
        run.effects.is_live() && self.warehouse.as_ref().is_some_and(Warehouse::is_baseline)
    }

    /// A first run's baseline with `diff: warehouse`: the keys of the
    /// staging table recorded, each settled as `baseline` with its content
    /// unknown; then the staging table put in place.
    pub(super) async fn key_baseline(
        &mut self,
        run: &mut Run<'_>,
        mut source: Source,
    ) -> Result<()> {
        tracing::info!(
            "first run with first_run: skip_existing: recording the existing keys, sending none"
        );
        while let Some(batch) = source.next_batch().await {
            if run.options.cancel.is_cancelled() {
                tracing::warn!("interrupted: no more rows are read");
                return Ok(());
            }
            let batch = batch.map_err(|e| run.source_error(e))?;
            self.record_key_baseline(run, &batch).await?;
        }
        self.write_records(run, true).await?;
        match &self.warehouse {
            Some(warehouse) => warehouse.finish_baseline(run, run.counts.baseline).await,
            None => Ok(()),
        }
    }

    /// Records a batch of a key-only baseline (the staging table's rows).
    async fn record_key_baseline(&mut self, run: &mut Run<'_>, batch: &RecordBatch) -> Result<()> {
        let key: Vec<usize> = (0..batch.num_columns()).collect();
        let keys = retl_diff::hash_keys(batch, &key)?;
        run.count_n(Event::Read(Read::Baseline), batch.num_rows() as u64);
        let records = keys.into_iter().map(|k| (k, retl_diff::UNKNOWN_CONTENT));
        self.hold_records(run, records).await
    }
}
