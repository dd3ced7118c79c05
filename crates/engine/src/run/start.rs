//! What a run takes over from the state before it reads: a resend's rows
//! released, rows an earlier run left in flight (now `uncertain`), an
//! approval, whether the mapping changed, the contact key.

use retl_state::{RowLog, RowOutcome};

use super::RunCtx;
use crate::Result;

impl RunCtx<'_> {
    /// Turns rows an earlier run left in flight into `uncertain` (and logs
    /// them), after releasing the rows of a resend.
    pub(super) async fn recover(&mut self) -> Result<()> {
        let mut tx = self.state.fenced(self.lease).await?;
        if let Some(resend) = &self.options.resend {
            let released = tx.release(&resend.run_id, resend.outcome).await?;
            tracing::info!(
                released = released.len(),
                run_id = %resend.run_id,
                "rows released for resend"
            );
            self.only = Some(released.iter().map(|(key, _)| *key).collect());
            self.released = released.into_iter().map(|(_, key)| key).collect();
        }
        let recovered = tx.recover_in_flight().await?;
        if !recovered.is_empty() {
            tracing::warn!(
                rows = recovered.len(),
                "rows left in flight by an interrupted run are now uncertain"
            );
            self.counts.recovered = recovered.len() as u64;
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
            tx.log_rows(self.seq, &logs).await?;
            self.seq += logs.len() as u64;
        }
        tx.commit().await?;
        Ok(())
    }

    /// What the run carries from the state: an approval, whether the
    /// mapping changed since the last completed run, the contact key.
    pub(super) async fn load_from_state(&mut self) -> Result<()> {
        self.approval = self.approval().await?;
        self.reshaped = self
            .state
            .content_shape(&self.activation.name)
            .await?
            .is_some_and(|before| before != self.content_shape);
        if self.reshaped {
            tracing::warn!(
                "the mapping changed since the last completed run: rows already sent are re-hashed under it, not logged as changed"
            );
        }
        // A preview only reads the key (to foresee dedupe); it makes none.
        self.contact_key = match self.dry {
            None => Some(self.state.contact_key().await?),
            Some(_) => self.state.existing_contact_key().await?,
        };
        self.anyone_forgotten = self.state.anyone_forgotten().await?;
        Ok(())
    }

    /// The approval waiting for this run, taken (a preview only looks).
    async fn approval(&self) -> Result<Option<retl_state::Approval>> {
        let waiting = self.state.waiting_approval(&self.activation.name).await?;
        let approval = match self.dry {
            // Most runs have none: no write transaction (a commit) to learn it.
            _ if waiting.is_none() => None,
            Some(_) => waiting,
            None => {
                let mut tx = self.state.fenced(self.lease).await?;
                let taken = tx.take_approval().await?;
                tx.commit().await?;
                taken
            }
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
