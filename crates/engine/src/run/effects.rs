//! What a run does besides reading, in its two implementations: a live run
//! writes the state under its lease; a dry run (`retl preview`, `retl run
//! --dry-run`) writes nothing and keeps what it would have done in its
//! [`Preview`]. The phases say what they do through [`Effects`]; which of
//! the two happens is decided here, once per effect.

use std::time::{Duration, Instant};

use retl_diff::RowHash;
use retl_state::{Counts, Fenced, Lease, Outcome, RowLog, State};

use super::preview::{Planned, Preview};
use crate::{Error, Result};

/// A run's effects: live, or dry.
pub(super) enum Effects<'a> {
    /// A run: every write in a transaction fenced by its lease.
    Live(Live<'a>),
    /// A preview: no write; what a run would do, kept.
    Dry(Box<Preview>),
}

/// A live run's writer.
pub(super) struct Live<'a> {
    pub state: &'a State,
    pub lease: &'a Lease,
    /// The next run-log sequence number.
    seq: u64,
    /// When the live counts were last written.
    published: Option<Instant>,
}

impl<'a> Effects<'a> {
    /// A live run's effects, written to `state` under `lease`.
    pub(super) fn live(state: &'a State, lease: &'a Lease) -> Effects<'a> {
        Effects::Live(Live {
            state,
            lease,
            seq: 0,
            published: None,
        })
    }

    /// A dry run's effects, kept in a preview of `activation`.
    pub(super) fn dry(activation: &str) -> Effects<'a> {
        Effects::Dry(Box::new(Preview::new(activation)))
    }

    /// Whether the run writes (not a preview).
    pub(super) fn is_live(&self) -> bool {
        matches!(self, Effects::Live(_))
    }

    /// The preview a dry run kept.
    pub(super) fn into_preview(self) -> Option<Preview> {
        match self {
            Effects::Dry(preview) => Some(*preview),
            Effects::Live(_) => None,
        }
    }

    /// Runs `work` in one fenced transaction and commits it; a dry run
    /// writes nothing and gets `T::default()`.
    pub(super) async fn write<T: Default>(
        &self,
        work: impl AsyncFnOnce(&mut Fenced) -> retl_state::Result<T>,
    ) -> Result<T> {
        let Effects::Live(live) = self else {
            return Ok(T::default());
        };
        let mut tx = live.state.fenced(live.lease).await?;
        let done = work(&mut tx).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Records ledger outcomes and run-log rows in one fenced transaction (a
    /// dry run notes the rejections it would log).
    pub(super) async fn commit(
        &mut self,
        outcomes: &[Outcome<'_>],
        changed: &[(RowHash, RowHash)],
        logs: &[RowLog],
    ) -> Result<()> {
        let live = match self {
            Effects::Dry(preview) => {
                preview.note(logs);
                return Ok(());
            }
            Effects::Live(live) => live,
        };
        if outcomes.is_empty() && changed.is_empty() && logs.is_empty() {
            return Ok(());
        }
        let mut tx = live.state.fenced(live.lease).await?;
        tx.record(outcomes).await?;
        tx.note_changed(changed).await?;
        tx.log_rows(live.seq, logs).await?;
        tx.commit().await?;
        live.seq += logs.len() as u64;
        Ok(())
    }

    /// The sequence number the next run-log row gets (0 in a dry run).
    pub(super) fn seq(&self) -> u64 {
        match self {
            Effects::Live(live) => live.seq,
            Effects::Dry(_) => 0,
        }
    }

    /// After `rows` run-log rows were written in a transaction of the
    /// caller's (one row's outcome, the recovered rows).
    pub(super) fn logged(&mut self, rows: u64) {
        if let Effects::Live(live) = self {
            live.seq += rows;
        }
    }

    /// A safety limit's verdict: a refusal ends a run; a dry run notes it
    /// and goes on counting.
    pub(super) fn refuse(&mut self, verdict: Result<()>) -> Result<()> {
        match (verdict, self) {
            (Err(Error::Refused { message, .. }), Effects::Dry(preview)) => {
                preview.refused.get_or_insert(message);
                Ok(())
            }
            (verdict, _) => verdict,
        }
    }

    /// An invitation a dry run would send, listed (a live run sends it).
    pub(super) fn plan(&mut self, planned: Planned) {
        if let Effects::Dry(preview) = self {
            preview.plan(planned);
        }
    }

    /// Writes the counts so far to the run's record: `retl runs list` shows
    /// a running run's live counts, updated after a batch, at most once a
    /// second (each write is a durable commit; a fast scan of a large table
    /// would otherwise spend its time on them). A dry run has no record.
    pub(super) async fn publish(&mut self, counts: &Counts) -> Result<()> {
        self.publish_if(counts, false).await
    }

    /// [`publish`](Self::publish), at once when `now` (a run about to wait
    /// at a hold point shows its counts so far).
    pub(super) async fn publish_if(&mut self, counts: &Counts, now: bool) -> Result<()> {
        let Effects::Live(live) = self else {
            return Ok(());
        };
        if !now
            && live
                .published
                .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return Ok(());
        }
        live.published = Some(Instant::now());
        let mut tx = live.state.fenced(live.lease).await?;
        tx.update_counts(counts).await?;
        tx.commit().await?;
        Ok(())
    }
}
