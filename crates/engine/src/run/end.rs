//! The end of a run and what surrounds it: the lease's heartbeat, the
//! interrupt's deadline, recording the end (with the cursor's mark and the
//! content shape), a summary whose end could not be recorded, and the
//! retention housekeeping (`retention.run_logs`, `retention.personal_data`).

use std::time::Duration;

use retl_state::{Lease, RunStatus, RunSummary, State};

use super::options::by_interrupt;
use super::{RunOptions, cursor};
use crate::Error;

/// Aborts a background task when dropped.
pub(super) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renews the run's lease every third of its time while the run lives (it
/// is aborted when dropped); stops once another run took the lease.
pub(super) fn heartbeat(state: &State, lease: &Lease) -> AbortOnDrop {
    let (state, lease) = (state.clone(), lease.clone());
    AbortOnDrop(tokio::spawn(async move {
        loop {
            tokio::time::sleep(lease.ttl / 3).await;
            match state.renew_lease(&lease).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::error!(activation = %lease.activation, "lease lost to another run");
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "cannot renew the lease; retrying"),
            }
        }
    }))
}

/// Records the run's end (and, for a completed cursor run, its new mark) in
/// one fenced transaction; after an interrupt, by its deadline.
pub(super) async fn record_end(
    state: &State,
    lease: &Lease,
    options: &RunOptions,
    (cursor, shape): (Option<&cursor::CursorTrack>, Option<&str>),
    summary: &RunSummary,
) -> retl_state::Result<RunSummary> {
    let recorded = async {
        let mut tx = state.fenced(lease).await?;
        if let Some(shape) = shape {
            tx.set_content_shape(shape).await?;
        }
        if let Some(track) = cursor {
            let mark = track.next();
            let text = mark.as_ref().map(|m| (m.kind(), m.to_string()));
            let full_at = track.full.then(|| summary.started_at.clone());
            tx.set_cursor(
                text.as_ref().map(|(kind, text)| (*kind, text.as_str())),
                full_at.as_deref(),
            )
            .await?;
        }
        let mut closing = summary.clone();
        tx.finish_run(&mut closing).await?;
        tx.commit().await?;
        Ok::<_, retl_state::Error>(closing)
    };
    by_interrupt(options, recorded)
        .await
        .unwrap_or(Err(retl_state::Error::DeadlinePassed))
}

/// A summary whose end could not be recorded: failed, saying why, finished now.
pub(super) fn unrecorded(state: &State, summary: &mut RunSummary, error: &Error) {
    summary.status = RunStatus::Failed;
    let said = retl_config::with_causes(error);
    summary.error = Some(match summary.error.take() {
        Some(first) => format!("{first}; then the run's end could not be recorded: {said}"),
        None => format!("the run's end could not be recorded: {said}"),
    });
    summary.finished_at = Some(
        state
            .clock()
            .now()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    tracing::error!(activation = %summary.activation, run_id = %summary.run_id, "{said}");
}

/// Prunes the activation's run logs older than `keep` (`retention.run_logs`).
/// A failure is logged, not the run's: its outcomes are recorded already.
pub(super) async fn prune(state: &State, lease: &Lease, keep: Duration) {
    let before =
        state.clock().now() - chrono::Duration::from_std(keep).unwrap_or(chrono::TimeDelta::MAX);
    let before = before.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let pruned = async {
        let mut tx = state.fenced(lease).await?;
        let gone = tx.prune_run_logs(&before).await?;
        tx.commit().await?;
        Ok::<_, retl_state::Error>(gone)
    };
    match pruned.await {
        Ok(0) => {}
        Ok(runs) => tracing::info!(runs, before = %before, "run logs pruned (retention.run_logs)"),
        Err(e) => tracing::warn!(error = %e, "cannot prune run logs; they are kept"),
    }
}

/// `retention.personal_data`: scrubs the reasons, answers and link URLs of
/// the activation's run-log rows older than `keep`. A failure is logged.
pub(super) async fn scrub(state: &State, activation: &str, keep: Duration) {
    let before =
        state.clock().now() - chrono::Duration::from_std(keep).unwrap_or(chrono::TimeDelta::MAX);
    let before = before.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    match state.scrub_personal_data(activation, &before).await {
        Ok(0) => {}
        Ok(rows) => {
            tracing::info!(rows, before = %before, "personal data scrubbed (retention.personal_data)");
        }
        Err(e) => tracing::warn!(error = %e, "cannot scrub personal data; it is kept"),
    }
}
