//! `source.diff: warehouse` in a run: the key table made or found, the read
//! narrowed to the rows whose key it lacks, and the keys the ledger settled
//! written to it afterwards (see `retl_source`'s `keytable` for the table).
//!
//! The ledger decides every row that crosses; the table only saves reading
//! rows the ledger would call settled. So a key is written to the table
//! only after the ledger's transaction that settled it committed, and a
//! table that lags (a run killed in between, a table truncated or dropped)
//! costs rows read again, never a row sent again: those rows come back,
//! the ledger says they are settled, and they are written again.

use retl_source::{KeyTable, KeyValue, Source, SourceSpec, Writer};

use super::Run;
use super::key_values::key_values;
use super::options::{HoldPoint, hold_at};
use crate::{Error, Result};

/// How a run with `diff: warehouse` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Narrowed {
    /// Through the anti-join: only candidates cross; they are looked up
    /// one batch at a time.
    Candidates,
    /// Every row (the table is new or was emptied while the ledger holds
    /// settled keys, or a preview finds no table): against the key set,
    /// each settled row written to the table.
    Everything,
    /// A first run's baseline, from the staging table inside the warehouse.
    Baseline,
}

/// The run's side of the key table.
pub(super) struct Warehouse {
    pub table: KeyTable,
    pub narrowed: Narrowed,
    writer: Option<Writer>,
    /// Settled keys not yet written.
    pending: Vec<Vec<KeyValue>>,
    /// Arrivals at the hold points.
    unpushed: std::sync::atomic::AtomicU64,
    pushed: std::sync::atomic::AtomicU64,
    staged: std::sync::atomic::AtomicU64,
}

/// The keys of a key table that the state never settled.
pub(crate) struct Unknown {
    /// Their values, one per key column.
    pub keys: Vec<Vec<KeyValue>>,
    /// The first, as text, for a message.
    pub first: Option<String>,
}

/// Reads every key `table` holds (keys only, through the source's own
/// reader, so that each hashes as the source's row with that key does) and
/// returns those `activation` never settled in `state`.
pub(crate) async fn unknown_keys(
    state: &retl_state::State,
    activation: &crate::config::Activation,
    table: &KeyTable,
    spec: &SourceSpec,
) -> Result<Unknown> {
    let source_error = |error| Error::Source {
        activation: activation.name.clone(),
        error,
    };
    let mut read = spec.clone();
    read.model = table.model();
    read.columns.clone_from(&activation.primary_key);
    read.since = None;
    read.anti_join = None;
    let mut source = Source::open(&read).await.map_err(source_error)?;
    let key: Vec<usize> = (0..activation.primary_key.len()).collect();
    let mut unknown = Unknown {
        keys: Vec::new(),
        first: None,
    };
    // The segments' keys at once (as a full scan loads them), the ledger's
    // a batch at a time.
    let set = state.key_set(&activation.name).await?;
    while let Some(batch) = source.next_batch().await {
        let batch = batch.map_err(source_error)?;
        let hashes = retl_diff::hash_keys(&batch, &key)?;
        let rows: Vec<(retl_diff::RowHash, retl_diff::RowHash)> =
            hashes.iter().map(|h| (*h, [0xA5; 16])).collect();
        let in_segments: Vec<bool> = set
            .get_many(&rows)
            .into_iter()
            .map(|seen| seen != retl_diff::Seen::Unknown)
            .collect();
        let probe: Vec<retl_diff::RowHash> = hashes
            .iter()
            .zip(&in_segments)
            .filter(|(_, held)| !**held)
            .map(|(h, _)| *h)
            .collect();
        let settled = state.settled_in_ledger(&activation.name, &probe).await?;
        for (row, hash) in hashes.iter().enumerate() {
            if in_segments[row] || settled.contains(hash) {
                continue;
            }
            if let Some(values) = key_values(&batch, &key, row) {
                if unknown.first.is_none() {
                    let text: Vec<String> = values
                        .iter()
                        .map(|v| match v {
                            KeyValue::Int(i) => i.to_string(),
                            KeyValue::Text(t) => t.clone(),
                        })
                        .collect();
                    unknown.first = Some(text.join(", "));
                }
                unknown.keys.push(values);
            }
        }
    }
    Ok(unknown)
}

impl Run<'_> {
    /// With `diff: warehouse`, finds (or, unless a preview, makes) the key
    /// table and narrows `spec` to the rows it lacks; says how the run reads.
    pub(super) async fn plan_warehouse(
        &self,
        spec: &mut SourceSpec,
        baseline: bool,
    ) -> Result<Option<Warehouse>> {
        let activation = self.activation;
        if activation.source.diff != retl_source::Diff::Warehouse {
            return Ok(None);
        }
        let name = activation.name.as_str();
        let source_error = |error| Error::Source {
            activation: name.to_owned(),
            error,
        };
        // A preview makes no identity: without one, this state has no table.
        let owner = if self.effects.is_live() {
            self.state.identity().await?
        } else {
            self.state.existing_identity().await?.unwrap_or_default()
        };
        // An ADBC source's dialect, where the configuration does not say
        // it, is the vendor name its driver reports: asked once, here.
        if let Some(adbc) = &spec.adbc {
            let limits = (spec.connect_timeout, spec.read_timeout);
            spec.adbc = Some(adbc.resolved(limits).await.map_err(source_error)?);
        }
        let table = KeyTable::new(
            &spec.connection,
            &spec.model,
            spec.adbc.as_ref(),
            &activation.source.diff_schema,
            name,
            &owner,
            &activation.primary_key,
        )
        .map_err(source_error)?;
        let shown = table.display();
        let live = self.effects.is_live();
        // A preview only looks for the table; a run fills, makes or checks it.
        let narrowed = if baseline {
            if live {
                table.fill_staging().await.map_err(source_error)?;
                tracing::info!(table = %shown, "diff: warehouse: the existing keys are copied into retl's key table inside the warehouse");
            }
            Narrowed::Baseline
        } else if !live {
            if table.exists().await.map_err(source_error)? {
                Narrowed::Candidates
            } else {
                Narrowed::Everything
            }
        } else {
            let found = table.ensure().await.map_err(source_error)?;
            if found.created {
                self.set_key_table_keys(0).await?;
            } else {
                self.verify_key_table(&table, spec).await?;
            }
            if found.empty && self.state.has_settled_keys(name).await? {
                tracing::warn!(
                    table = %shown,
                    "retl's key table holds no key but the state holds settled ones (it is new, or was dropped or emptied): this run reads every row once, the state decides each, and the table is rebuilt; nothing is sent again"
                );
                Narrowed::Everything
            } else {
                if found.created {
                    tracing::info!(table = %shown, "diff: warehouse: retl's key table was made");
                }
                Narrowed::Candidates
            }
        };
        if narrowed == Narrowed::Candidates {
            spec.anti_join = Some(table.anti_join());
        }
        if narrowed == Narrowed::Baseline && live {
            spec.model = table.staging_model();
            spec.columns.clone_from(&activation.primary_key);
            spec.since = None;
        }
        Ok(Some(Warehouse {
            table,
            narrowed,
            writer: None,
            pending: Vec::new(),
            unpushed: 0.into(),
            pushed: 0.into(),
            staged: 0.into(),
        }))
    }
}

/// Whether the run looks its rows up a batch at a time rather than loading
/// the key set: few rows are candidates (the warehouse's anti-join, or
/// cursor mode past its high-water mark: `since`).
pub(super) fn reads_candidates(warehouse: Option<&Warehouse>, since: bool) -> bool {
    match warehouse {
        Some(w) => w.narrowed == Narrowed::Candidates,
        None => since,
    }
}

/// Stops the run before any row is read when a key column cannot be kept
/// in the key table, naming it and its type.
pub(super) fn check_key_types(
    run: &Run<'_>,
    warehouse: Option<&Warehouse>,
    schema: &arrow_schema::Schema,
    db_type: impl Fn(&str) -> Option<String>,
) -> Result<()> {
    if warehouse.is_none() {
        return Ok(());
    }
    for column in &run.activation.primary_key {
        let Ok(field) = schema.field_with_name(column) else {
            continue;
        };
        if !KeyTable::keeps(field.data_type()) {
            return Err(Error::Mapping {
                activation: run.activation.name.clone(),
                message: format!(
                    "source.diff: warehouse keeps keys of integer, text, decimal and UUID columns; primary key column `{column}` is {}; use diff: retl for this activation",
                    db_type(column).unwrap_or_else(|| field.data_type().to_string())
                ),
            });
        }
    }
    Ok(())
}

impl Warehouse {
    /// Whether the run is a key-only baseline, read from the staging table.
    pub(super) fn is_baseline(&self) -> bool {
        self.narrowed == Narrowed::Baseline
    }

    /// A key the ledger holds settled (its transaction committed): it goes
    /// to the table with the next push.
    pub(super) async fn settled(
        &mut self,
        run: &Run<'_>,
        values: Option<Vec<KeyValue>>,
    ) -> Result<()> {
        if !run.effects.is_live() || self.narrowed == Narrowed::Baseline {
            return Ok(());
        }
        if let Some(values) = values {
            self.pending.push(values);
        }
        if self.pending.len() >= run.options.key_push_rows.max(1) {
            self.push(run).await?;
        }
        Ok(())
    }

    /// Writes the settled keys held to the table.
    pub(super) async fn push(&mut self, run: &Run<'_>) -> Result<()> {
        // A dry run holds none.
        if self.pending.is_empty() {
            return Ok(());
        }
        let source_error = |error| run.source_error(error);
        hold_at(run.options, HoldPoint::KeysUnpushed, &self.unpushed).await;
        if self.writer.is_none() {
            self.writer = Some(self.table.writer().await.map_err(source_error)?);
        }
        let writer = self.writer.as_mut().expect("connected above");
        let keys = std::mem::take(&mut self.pending);
        let chunk = retl_source::KeyTable::CHUNK.min(run.options.key_push_rows.max(1));
        for chunk in keys.chunks(chunk) {
            self.table.push(writer, chunk).await.map_err(source_error)?;
            run.effects
                .write(async |tx| tx.add_key_table_keys(chunk.len() as u64).await)
                .await?;
            hold_at(run.options, HoldPoint::KeysPushed, &self.pushed).await;
        }
        tracing::debug!(keys = keys.len(), table = %self.table.display(), "settled keys written to the key table");
        Ok(())
    }

    /// A baseline's end: the ledger holds the staging table's `keys`, so
    /// it takes the key table's place.
    pub(super) async fn finish_baseline(&self, run: &Run<'_>, keys: u64) -> Result<()> {
        hold_at(run.options, HoldPoint::Staged, &self.staged).await;
        if run.options.cancel.is_cancelled() {
            return Ok(());
        }
        self.table
            .swap_in_staging()
            .await
            .map_err(|e| run.source_error(e))?;
        run.set_key_table_keys(keys).await
    }
}

impl Run<'_> {
    /// Records how many keys the key table holds as retl wrote them.
    pub(super) async fn set_key_table_keys(&self, keys: u64) -> Result<()> {
        self.effects
            .write(async |tx| tx.set_key_table_keys(keys).await)
            .await
    }

    /// The key table holds back only what this state settled: when it
    /// holds more keys than retl wrote (a person or a script wrote to it;
    /// a run killed between writing keys and counting them), every key it
    /// holds is checked against the state, and those the state never
    /// settled are removed (their rows then cross and the state decides
    /// them). Fewer keys is only lag: the count follows the table down.
    async fn verify_key_table(&self, table: &KeyTable, spec: &SourceSpec) -> Result<()> {
        let name = self.activation.name.as_str();
        let source_error = |error| Error::Source {
            activation: name.to_owned(),
            error,
        };
        let held = table.count().await.map_err(source_error)?;
        let written = self.state.key_table_keys(name).await?;
        if held <= written {
            if held < written {
                self.set_key_table_keys(held).await?;
            }
            return Ok(());
        }
        let unknown = unknown_keys(self.state, self.activation, table, spec).await?;
        if !unknown.keys.is_empty() {
            let mut writer = table.writer().await.map_err(source_error)?;
            table
                .remove(&mut writer, &unknown.keys)
                .await
                .map_err(source_error)?;
            tracing::warn!(
                table = %table.display(),
                keys = unknown.keys.len(),
                first = %unknown.first.as_deref().unwrap_or_default(),
                "retl's key table held keys this state never settled (written by a person or a script): they are removed, and their rows are read and decided by the state in this run"
            );
        }
        self.set_key_table_keys(held - unknown.keys.len() as u64)
            .await
    }
}
