//! `retl runs list|show|resend`: the run logs.

use retl_state::{RowOutcome, State};

use crate::{Ctx, Failure, RunsCommand, exit_code, output};

/// `retl runs …`.
pub(crate) async fn runs(ctx: &Ctx, command: RunsCommand) -> Result<u8, Failure> {
    let state = ctx.state().await?;
    match command {
        RunsCommand::List {
            activation,
            limit,
            json,
        } => {
            let runs = state.list_runs(activation.as_deref(), limit).await?;
            if json {
                println!("{}", serde_json::to_string(&runs)?);
            } else {
                print!("{}", output::runs_table(&runs));
            }
        }
        RunsCommand::Show { run_id, json } => {
            let Some(summary) = state.run(&run_id).await? else {
                return Err(Failure::usage(anyhow::anyhow!(
                    "no run with id `{run_id}` (see `retl runs list`)"
                )));
            };
            let rows = state.run_rows(&run_id).await?;
            if json {
                let mut value = serde_json::to_value(&summary)?;
                value["rows"] = serde_json::to_value(&rows)?;
                println!("{value}");
            } else {
                print!("{}", output::summary(&summary));
                print!("{}", output::rows_table(&rows));
            }
        }
        RunsCommand::Resend {
            run_id,
            uncertain: _,
            yes,
            json,
        } => {
            return resend(ctx, &state, &run_id, yes, json).await;
        }
    }
    Ok(0)
}

async fn resend(
    ctx: &Ctx,
    state: &State,
    run_id: &str,
    yes: bool,
    json: bool,
) -> Result<u8, Failure> {
    let Some(summary) = state.run(run_id).await? else {
        return Err(Failure::usage(anyhow::anyhow!(
            "no run with id `{run_id}` (see `retl runs list`)"
        )));
    };
    let uncertain = state
        .run_rows(run_id)
        .await?
        .into_iter()
        .filter(|r| r.outcome == RowOutcome::Uncertain)
        .count();
    if uncertain == 0 {
        println!("run {run_id} has no uncertain rows: nothing to resend");
        return Ok(0);
    }
    let project = ctx.load(&summary.activation)?;
    let (activation, destination) = project.activation(&summary.activation)?;
    if !yes {
        use std::io::{BufRead as _, IsTerminal as _, Write as _};
        if !std::io::stdin().is_terminal() {
            return Err(Failure::usage(anyhow::anyhow!(
                "{uncertain} row(s) of run {run_id} may already have reached Trustpilot; resending can invite those customers twice. Confirm with --yes"
            )));
        }
        print!(
            "{uncertain} row(s) of run {run_id} may already have reached Trustpilot; resending can invite those customers twice.\nResend them now? [y/N] "
        );
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("nothing resent");
            return Ok(0);
        }
    }
    crate::notice(&format!(
        "releasing the uncertain row(s) of run {run_id}; running `{}`",
        activation.name
    ));
    let options = retl_engine::RunOptions {
        release_uncertain_of: Some(run_id.to_owned()),
        drain: crate::commands::run::drain(destination),
        ..retl_engine::RunOptions::default()
    };
    let finished = retl_engine::run_with(state, activation, destination, &options).await?;
    output::print_finished(&finished, json, &ctx.state_url)?;
    exit_code(&finished)
}
