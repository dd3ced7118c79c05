//! `retl approve ACTIVATION [--run RUN_ID | --ahead [--for 24h] | --revoke]`:
//! let the activation's next run past the safety limits that refused it,
//! once (the decisions are `retl_engine::approvals`).

use retl_engine::approvals::{Approve, approve as decide, approved_text, approver};

use crate::exit::Exit;
use crate::{Ctx, Failure};

/// `retl approve`.
pub(crate) async fn approve(
    ctx: &Ctx,
    activation: &str,
    how: Approve,
    by: Option<String>,
    json: bool,
) -> Result<Exit, Failure> {
    ctx.load(activation)?;
    let state = ctx.state().await?;
    // A short run id (or `latest`) names one run of this activation.
    let how = match how {
        Approve::Answer(Some(given)) => Approve::Answer(Some(
            super::runs::resolve(&state, &given, Some(activation)).await?,
        )),
        how => how,
    };
    let revoke = how == Approve::Revoke;
    let by = approver(by);
    let approval = decide(&state, activation, how, &by).await?;
    if json {
        println!("{}", serde_json::to_string(&approval)?);
    } else if revoke {
        println!(
            "revoked by {by}: the approval {} gave at {} no longer lets `{activation}` past its safety limits",
            approval.approved_by, approval.approved_at
        );
    } else {
        println!("{}", approved_text(&approval));
    }
    Ok(Exit::Ok)
}
