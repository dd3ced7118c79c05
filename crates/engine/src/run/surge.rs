//! The surge guard: made by the clear phase when it applies, handed to the
//! batch phase, which asks its verdict as new rows are counted; a run it
//! refuses logs the rows it held.

use retl_source::Source;
use retl_state::{RowLog, RowOutcome};

use super::Run;
use super::classify::Pending;
use super::start::Taken;
use super::tally::Event;
use crate::Result;

/// What a run's surge guard compares its new rows with.
#[derive(Debug)]
pub(super) struct Surge {
    /// More new rows than this (beyond `expected`) may be a surge.
    threshold: u64,
    /// The baseline: the median sent, and by how many runs.
    median: Option<(u64, usize)>,
    /// Rows the last completed run left for later (a canary, a cap).
    expected: u64,
    /// The source's rows, counted by the database once needed.
    table_rows: Option<u64>,
}

impl Surge {
    /// The surge guard of this run, if it applies: off with `limits.surge:
    /// off`, `--allow-surge`, `--limit`, a resend or an approval
    /// (`retl approve`). Its baseline is the median sent by the last
    /// `limits.surge_runs` completed runs that sent anything (runs with
    /// nothing new do not make "normal" zero); the rows the last completed
    /// run left for later (`skipped`: a canary's `--limit`, a cap) are
    /// expected on top of it.
    pub(super) async fn of(run: &Run<'_>, taken: &Taken) -> Result<Option<Surge>> {
        let limits = run.activation.limits;
        if !limits.surge()
            || run.options.allow_surge
            || run.options.limit.is_some()
            || taken.only.is_some()
            || taken.approval.is_some()
        {
            return Ok(None);
        }
        let runs = u32::try_from(limits.surge_runs()).unwrap_or(u32::MAX);
        let recent = run.state.recent_counts(&run.activation.name, runs).await?;
        let expected = recent.first().map_or(0, |c| c.skipped);
        let mut sent: Vec<u64> = recent.iter().map(|c| c.sent).filter(|n| *n > 0).collect();
        sent.sort_unstable();
        let median = sent.get(sent.len() / 2).copied();
        let threshold = median
            .map_or(0, |m| m.saturating_mul(limits.surge_factor()))
            .max(limits.surge_min());
        Ok(Some(Surge {
            threshold,
            median: median.map(|m| (m, sent.len())),
            expected,
            table_rows: None,
        }))
    }

    /// The surge guard's verdict on the rows counted so far: a refusal's
    /// message when more new rows than its threshold are also more than
    /// `limits.surge_share` of the table (counted by the database, once).
    pub(super) async fn verdict(&mut self, run: &Run<'_>) -> Option<String> {
        let guard = self;
        let surplus = run.counts.new.saturating_sub(guard.expected);
        if surplus <= guard.threshold {
            return None;
        }
        let rows = match guard.table_rows {
            Some(rows) => rows,
            None => {
                let counted = Source::inspect(&run.activation.source_spec(), true)
                    .await
                    .ok()
                    .and_then(|inspection| inspection.rows);
                let rows = counted.unwrap_or(run.counts.read).max(run.counts.read);
                *guard.table_rows.insert(rows)
            }
        };
        let limits = run.activation.limits;
        let share = limits.surge_share();
        if surplus.saturating_mul(100) <= share.saturating_mul(rows) {
            return None;
        }
        let name = &run.activation.name;
        let basis = match guard.median {
            Some((median, runs)) => format!(
                "limits.surge_factor ({}) times the median {median} sent by its last {runs} run(s) that sent anything, and at least limits.surge_min ({})",
                limits.surge_factor(),
                limits.surge_min()
            ),
            None => format!(
                "limits.surge_min ({}): no earlier run sent anything",
                limits.surge_min()
            ),
        };
        let expected = if guard.expected > 0 {
            format!(
                " besides the {} rows its last run left for later",
                guard.expected
            )
        } else {
            String::new()
        };
        Some(format!(
            "refused by a safety limit; nothing sent: {new} new rows{expected}, {pct}% of the {rows} rows of its source (over limits.surge_share, {share}%) and more than {threshold} ({basis}). A rebuilt model with new keys makes every row look new. Check the source; then `retl approve {name}` lets its next run send them once (or `retl run {name} --allow-surge` now), `retl preview {name}` lists them, and `limits.surge: off` turns the guard off",
            new = run.counts.new,
            pct = surplus.saturating_mul(100) / rows.max(1),
            threshold = guard.threshold,
        ))
    }
}

/// Rows held back by a run the surge guard refused: counted `skipped`
/// and logged as pending (the first 10,000), so that `retl runs find`
/// says why they were not sent.
pub(super) async fn skip_held(run: &mut Run<'_>, held: Vec<Pending>) -> Result<()> {
    const LOGGED: usize = 10_000;
    run.count_n(Event::Ended(RowOutcome::Skipped), held.len() as u64);
    let name = &run.activation.name;
    let reason = format!(
        "pending: held back because the surge guard refused the run; sent by the next run once approved (`retl approve {name}`)"
    );
    let logs: Vec<RowLog> = held
        .iter()
        .take(LOGGED)
        .map(|p| p.log(RowOutcome::Skipped, Some(reason.clone())))
        .collect();
    run.effects.commit(&[], &[], &logs).await
}
