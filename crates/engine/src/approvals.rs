//! `retl approve`: an approval answers one refusal, or is given ahead of a
//! planned backfill and expires; an open one can be revoked. The decisions
//! are here; the state keeps the approvals (`retl_state`'s `approvals`).

use std::time::Duration;

use retl_state::{Approval, RunStatus, State};

use crate::{Error, Result};

/// What a person asks of `retl approve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approve {
    /// Answer a refused run: the one named (its id), else the activation's
    /// last run, which must have been refused.
    Answer(Option<String>),
    /// Approve the next run ahead of any refusal, open this long.
    Ahead(Duration),
    /// Withdraw the open approval.
    Revoke,
}

/// Who approves: `by`, else the operating system's user running retl (its
/// login name, or `uid N` when it has none): never "unknown".
pub fn approver(by: Option<String>) -> String {
    by.filter(|name| !name.trim().is_empty())
        .or_else(|| whoami::fallible::username().ok())
        .or_else(|| std::env::var("USER").ok())
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| {
            use std::os::unix::fs::MetadataExt as _;
            std::fs::metadata("/proc/self").map_or_else(
                |_| "the operating system's user (unnamed)".to_owned(),
                |m| format!("uid {}", m.uid()),
            )
        })
}

/// Does what `how` asks for `activation`, approved or revoked by `by`:
/// the approval given, or the one revoked. Nothing to approve (no refused
/// run) or to revoke is an [`Error::Usage`].
pub async fn approve(state: &State, activation: &str, how: Approve, by: &str) -> Result<Approval> {
    match how {
        Approve::Revoke => state.revoke_approval(activation, by).await?.ok_or_else(|| {
            Error::Usage(format!(
                "nothing to revoke: `{activation}` has no open approval"
            ))
        }),
        Approve::Ahead(valid_for) => {
            let until = chrono::Duration::from_std(valid_for).unwrap_or(chrono::TimeDelta::MAX);
            let expires =
                (state.clock().now() + until).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            Ok(state.approve(activation, by, None, Some(&expires)).await?)
        }
        Approve::Answer(run) => {
            let refused = refused_run(state, activation, run).await?;
            Ok(state.approve(activation, by, Some(&refused), None).await?)
        }
    }
}

/// The refused run an approval answers: `run` (an id), or the activation's
/// last run; nothing to approve when it was not refused.
async fn refused_run(state: &State, activation: &str, run: Option<String>) -> Result<String> {
    let named = run.is_some();
    let last = match run {
        Some(id) => state.run(&id).await?,
        None => state
            .list_runs(Some(activation), 1)
            .await?
            .into_iter()
            .next(),
    };
    let said = match &last {
        Some(run) if run.status == RunStatus::Refused => return Ok(run.run_id.clone()),
        Some(run) if named => format!(
            "run {} of `{activation}` was not refused by a safety limit (it is {})",
            run.run_id, run.status
        ),
        Some(run) => format!(
            "the last run of `{activation}`, {}, was not refused by a safety limit (it is {})",
            run.run_id, run.status
        ),
        None => format!("`{activation}` has never run"),
    };
    Err(Error::Usage(format!(
        "nothing to approve: {said}. An approval answers a refusal; for a planned backfill, `retl approve {activation} --ahead` lets its next run past the safety limits (open for 24h; --for to change)"
    )))
}

/// What an approval lets through, as a sentence (`retl approve`).
pub fn approved_text(approval: &Approval) -> String {
    let activation = &approval.activation;
    format!(
        "approved by {} at {}: the next run of `{activation}` (scheduled or `retl run {activation}`) goes past the surge and first-run guards once{}",
        approval.approved_by,
        approval.approved_at,
        match (&approval.refused_run, &approval.expires_at) {
            (Some(id), _) => format!(", sending what run {id} refused"),
            (None, Some(expires)) => {
                format!(", if it starts before {expires} (given ahead of a refusal)")
            }
            (None, None) => String::new(),
        }
    )
}
