//! `retl approve ACTIVATION [--run RUN_ID | --ahead [--for 24h] | --revoke]`:
//! let the activation's next run, scheduled or by hand, past the safety
//! limits that refused it, once. An approval answers a refusal; one given
//! ahead of a planned backfill expires; an open one can be revoked.

use std::time::Duration;

use retl_state::{Approval, RunStatus, State};

use crate::exit::Exit;
use crate::{Ctx, Failure};

/// What `retl approve` is asked to do.
pub(crate) enum How {
    /// Answer a refused run: the one named, else the activation's last run.
    Answer(Option<String>),
    /// Approve the next run ahead of any refusal, open this long.
    Ahead(Duration),
    /// Withdraw the open approval.
    Revoke,
}

/// Who approves: `--by`, else the operating system's user running retl
/// (its login name, or `uid N` when it has none): never "unknown".
fn approver(by: Option<String>) -> String {
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

/// The refused run an approval answers: `given`, or the activation's last
/// run; an error saying there is nothing to approve when it was not refused.
async fn refused_run(
    state: &State,
    activation: &str,
    given: Option<&str>,
) -> Result<String, Failure> {
    let last = match given {
        Some(given) => {
            let id = super::runs::resolve(state, given, Some(activation)).await?;
            state.run(&id).await?
        }
        None => state
            .list_runs(Some(activation), 1)
            .await?
            .into_iter()
            .next(),
    };
    match last {
        Some(run) if run.status == RunStatus::Refused => Ok(run.run_id),
        found => {
            let said = match (&found, given) {
                (Some(run), Some(_)) => format!(
                    "run {} of `{activation}` was not refused by a safety limit (it is {})",
                    run.run_id, run.status
                ),
                (Some(run), None) => format!(
                    "the last run of `{activation}`, {}, was not refused by a safety limit (it is {})",
                    run.run_id, run.status
                ),
                (None, _) => format!("`{activation}` has never run"),
            };
            Err(Failure::usage(anyhow::anyhow!(
                "nothing to approve: {said}. An approval answers a refusal; for a planned backfill, `retl approve {activation} --ahead` lets its next run past the safety limits (open for 24h; --for to change)"
            )))
        }
    }
}

/// `retl approve`.
pub(crate) async fn approve(
    ctx: &Ctx,
    activation: &str,
    how: How,
    by: Option<String>,
    json: bool,
) -> Result<Exit, Failure> {
    ctx.load(activation)?;
    let state = ctx.state().await?;
    let by = approver(by);
    let approval = match how {
        How::Revoke => {
            let Some(revoked) = state.revoke_approval(activation, &by).await? else {
                return Err(Failure::usage(anyhow::anyhow!(
                    "nothing to revoke: `{activation}` has no open approval"
                )));
            };
            if !json {
                println!(
                    "revoked by {by}: the approval {} gave at {} no longer lets `{activation}` past its safety limits",
                    revoked.approved_by, revoked.approved_at
                );
            }
            revoked
        }
        How::Ahead(valid_for) => {
            let until = chrono::Duration::from_std(valid_for).unwrap_or(chrono::TimeDelta::MAX);
            let expires =
                (state.clock().now() + until).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let approval = state.approve(activation, &by, None, Some(&expires)).await?;
            if !json {
                println!("{}", said(&approval));
            }
            approval
        }
        How::Answer(run) => {
            let refused = refused_run(&state, activation, run.as_deref()).await?;
            let approval = state.approve(activation, &by, Some(&refused), None).await?;
            if !json {
                println!("{}", said(&approval));
            }
            approval
        }
    };
    if json {
        println!("{}", serde_json::to_string(&approval)?);
    }
    Ok(Exit::Ok)
}

/// What an approval lets through, as a sentence.
fn said(approval: &Approval) -> String {
    let activation = &approval.activation;
    format!(
        "approved by {} at {}: the next run of `{activation}` (scheduled or `retl run {activation}`) goes past the surge and first-run guards once{}",
        approval.approved_by,
        approval.approved_at,
        match (&approval.refused_run, &approval.expires_at) {
            (Some(id), _) => format!(", sending what run {id} refused"),
            (None, Some(expires)) =>
                format!(", if it starts before {expires} (given ahead of a refusal)"),
            (None, None) => String::new(),
        }
    )
}
