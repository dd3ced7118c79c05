//! The first phase: what a run takes over from the state before it reads.
//! A resend's rows released, rows an earlier run left in flight (now
//! `uncertain`), an approval, whether the mapping changed, the contact key:
//! a [`Taken`], handed to the guards and the classifier.

use std::collections::HashSet;

use retl_diff::RowHash;
use retl_state::{RowLog, RowOutcome};

use super::Run;
use super::tally::Event;
use crate::Result;

/// What a run took over from the state.
pub(super) struct Taken {
    /// A resend's released rows, by key hash: only these are sent.
    pub only: Option<HashSet<RowHash>>,
    /// The approval (`retl approve`) this run goes past its safety limits with.
    pub approval: Option<retl_state::Approval>,
    /// The mapping changed since the last completed run: a settled row whose
    /// content hash differs is re-hashed silently, not logged as changed.
    pub reshaped: bool,
    /// The key the person's email is hashed with in the run log (none in a
    /// preview of a state that has none: it makes nothing).
    pub contact_key: Option<retl_state::ContactKey>,
    /// Whether the state holds a forgotten person (only then is each row's
    /// customer looked up there).
    pub anyone_forgotten: bool,
}

impl Run<'_> {
    /// Takes over from the state what the run goes on with (`only`: what
    /// [`recover`](Self::recover) released).
    pub(super) async fn take_over(&mut self, only: Option<HashSet<RowHash>>) -> Result<Taken> {
        let approval = self.approval().await?;
        let reshaped = self
            .state
            .content_shape(&self.activation.name)
            .await?
            .is_some_and(|before| before != self.content_shape);
        if reshaped {
            tracing::warn!(
                "the mapping changed since the last completed run: rows already sent are re-hashed under it, not logged as changed"
            );
        }
        // A preview only reads the key (to foresee dedupe); it makes none.
        let contact_key = if self.effects.is_live() {
            Some(self.state.contact_key().await?)
        } else {
            self.state.existing_contact_key().await?
        };
        Ok(Taken {
            only,
            approval,
            reshaped,
            contact_key,
            anyone_forgotten: self.state.anyone_forgotten().await?,
        })
    }

    /// Releases the rows of a resend (returning their key hashes), then
    /// turns rows an earlier run left in flight into `uncertain` (and logs
    /// them).
    pub(super) async fn recover(&mut self) -> Result<Option<HashSet<RowHash>>> {
        let mut tx = self.state.fenced(self.lease).await?;
        let mut only = None;
        if let Some(resend) = &self.options.resend {
            let released = tx.release(&resend.run_id, resend.outcome).await?;
            tracing::info!(
                released = released.len(),
                run_id = %resend.run_id,
                "rows released for resend"
            );
            only = Some(released.iter().map(|(key, _)| *key).collect());
            self.released = released.into_iter().map(|(_, key)| key).collect();
        }
        let recovered = tx.recover_in_flight().await?;
        if !recovered.is_empty() {
            tracing::warn!(
                rows = recovered.len(),
                "rows left in flight by an interrupted run are now uncertain"
            );
            self.count_n(Event::Recovered, recovered.len() as u64);
            let logs: Vec<RowLog> = recovered
                .iter()
                .map(|r| {
                    RowLog::new(
                        r.row_key.as_deref().unwrap_or("?"),
                        r.reference.as_deref(),
                        RowOutcome::Uncertain,
                        Some(
                            "in flight when an earlier run stopped: delivery unknown, not resent"
                                .to_owned(),
                        ),
                    )
                })
                .collect();
            tx.log_rows(self.effects.seq(), &logs).await?;
            self.effects.logged(logs.len() as u64);
        }
        tx.commit().await?;
        Ok(only)
    }

    /// The approval waiting for this run, taken (a preview only looks).
    async fn approval(&self) -> Result<Option<retl_state::Approval>> {
        let waiting = self.state.waiting_approval(&self.activation.name).await?;
        let approval = match waiting {
            // Most runs have none: no write transaction (a commit) to learn it.
            None => None,
            Some(_) if self.effects.is_live() => {
                let mut tx = self.state.fenced(self.lease).await?;
                let taken = tx.take_approval().await?;
                tx.commit().await?;
                taken
            }
            waiting => waiting,
        };
        if let Some(a) = &approval {
            tracing::info!(
                approved_by = %a.approved_by,
                approved_at = %a.approved_at,
                "approved (retl approve): this run goes past the safety limits that refused the activation"
            );
        }
        Ok(approval)
    }
}
