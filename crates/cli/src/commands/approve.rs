//! `retl approve ACTIVATION [--run RUN_ID]`: let the activation's next run,
//! scheduled or by hand, past the safety limits that refused it, once.

use retl_state::RunStatus;

use crate::exit::Exit;
use crate::{Ctx, Failure};

/// Who approves: `--by`, else the user running retl.
fn approver(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `retl approve`.
pub(crate) async fn approve(
    ctx: &Ctx,
    activation: &str,
    run: Option<&str>,
    by: Option<String>,
    json: bool,
) -> Result<Exit, Failure> {
    ctx.load(activation)?;
    let state = ctx.state().await?;
    let refused_run = match run {
        Some(given) => {
            let id = super::runs::resolve(&state, given, Some(activation)).await?;
            let summary = state.run(&id).await?;
            match summary {
                Some(s) if s.status == RunStatus::Refused => Some(id),
                Some(s) => {
                    return Err(Failure::usage(anyhow::anyhow!(
                        "run {id} of `{activation}` was not refused by a safety limit (it is {}): nothing to approve",
                        s.status
                    )));
                }
                None => unreachable!("a matched run exists"),
            }
        }
        None => None,
    };
    let approval = state
        .approve(activation, &approver(by), refused_run.as_deref())
        .await?;
    if json {
        println!("{}", serde_json::to_string(&approval)?);
    } else {
        println!(
            "approved by {} at {}: the next run of `{activation}` (scheduled or `retl run {activation}`) goes past the surge and first-run guards once{}",
            approval.approved_by,
            approval.approved_at,
            approval
                .refused_run
                .as_deref()
                .map(|id| format!(", sending what run {id} refused"))
                .unwrap_or_default()
        );
    }
    Ok(Exit::Ok)
}
