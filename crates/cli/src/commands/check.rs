//! `retl check [ACTIVATION…] [--json]`: the configuration, each destination
//! and each source, without reading a row or sending anything (the checks
//! are the engine's `check_project`).

use crate::exit::Exit;
use crate::{Ctx, Failure};

/// `retl check`.
pub(crate) async fn check(ctx: &Ctx, only: &[String], json: bool) -> Result<Exit, Failure> {
    let project = ctx.project()?;
    let state = ctx.state_if_present().await?;
    let checked = retl_engine::check_project(&project, state.as_ref(), &ctx.state_url, only).await;
    if json {
        println!("{}", serde_json::to_string(&checked)?);
    } else {
        crate::output::print_human(&checked.text(ctx.config_dir()));
    }
    Ok(if checked.ok { Exit::Ok } else { Exit::Config })
}
