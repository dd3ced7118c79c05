//! `retl runs list|show|find|resend`: the run logs.

use retl_state::{RowOutcome, RunFilter, RunMatch, State};

use crate::args::RunsCommand;
use crate::exit::Exit;
use crate::{Ctx, Failure, exit_code, output};

/// `retl runs …`.
pub(crate) async fn runs(ctx: &Ctx, command: RunsCommand) -> Result<Exit, Failure> {
    let state = ctx.state().await?;
    match command {
        RunsCommand::List {
            activation,
            status,
            since,
            limit,
            json,
        } => {
            let since = since.map(|ago| {
                let at = state.clock().now()
                    - chrono::Duration::from_std(ago).unwrap_or(chrono::TimeDelta::MAX);
                at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            });
            let filter = RunFilter {
                activation: activation.as_deref(),
                status,
                since,
                before: None,
            };
            let runs = state.find_runs(&filter, limit).await?;
            if json {
                println!("{}", serde_json::to_string(&runs)?);
            } else {
                output::print_human(&retl_state::text::runs_table(&runs));
            }
        }
        RunsCommand::Show {
            run_id,
            activation,
            outcome,
            json,
        } => {
            let run_id = resolve(&state, &run_id, activation.as_deref()).await?;
            let Some(summary) = state.run(&run_id).await? else {
                return Err(Failure::usage(anyhow::anyhow!(
                    "no run with id `{run_id}` (see `retl runs list`)"
                )));
            };
            let rows = match outcome {
                Some(outcome) => state.run_rows_with(&run_id, outcome).await?,
                None => state.run_rows(&run_id).await?,
            };
            if json {
                let mut value = serde_json::to_value(&summary)?;
                value["rows"] = serde_json::to_value(&rows)?;
                println!("{value}");
            } else {
                output::print_human(&summary.text());
                output::print_human(&retl_state::text::rows_table(&rows));
            }
        }
        RunsCommand::Find {
            reference_or_key,
            email,
            activation,
            limit,
            json,
        } => {
            let query = Query {
                reference_or_key,
                email,
                activation,
                limit,
            };
            find(&state, query, json).await?;
        }
        RunsCommand::Settle(args) => settle(ctx, &state, args).await?,
        RunsCommand::Resend {
            run_id,
            uncertain: _,
            rejected,
            given_up,
            yes,
            json,
        } => {
            let outcome = if rejected {
                RowOutcome::Rejected
            } else if given_up {
                RowOutcome::GivenUp
            } else {
                RowOutcome::Uncertain
            };
            return resend(ctx, &state, &run_id, outcome, yes, json).await;
        }
    }
    Ok(Exit::Ok)
}

/// `retl runs settle`: rows a run left uncertain, settled by a person.
async fn settle(ctx: &Ctx, state: &State, args: crate::args::Settle) -> Result<(), Failure> {
    let crate::args::Settle {
        run_id,
        activation,
        mut key,
        keys_file,
        sent,
        by,
        json,
        ..
    } = args;
    if let Some(file) = keys_file {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        key.extend(
            text.lines()
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned),
        );
    }
    let run_id = resolve(state, &run_id, activation.as_deref()).await?;
    let by = retl_engine::approvals::approver(by);
    let settled = retl_engine::settle::settle(state, &run_id, &key, sent, &by).await?;
    // The incidents about these rows may be over now.
    let project = ctx.project()?;
    if let Some(notifier) = retl_alerts::Notifier::new(project.alerts.as_ref(), None) {
        notifier.after_settle(state, &settled.activation, &by).await;
    }
    if json {
        println!("{}", serde_json::to_string(&settled)?);
    } else {
        println!(
            "settled as {} by {by}: {} row(s) run {run_id} left uncertain ({})",
            settled.settled_as.replace('_', " "),
            settled.keys.len(),
            settled.keys.join(", ")
        );
    }
    Ok(())
}

/// What `retl runs find` looks for.
struct Query {
    reference_or_key: Option<String>,
    email: Option<String>,
    activation: Option<String>,
    limit: u32,
}

/// `retl runs find`: by reference or key, or by the customer's email.
async fn find(state: &State, query: Query, json: bool) -> Result<(), Failure> {
    let activation = query.activation.as_deref();
    let mut forgotten = None;
    let (asked, rows) = match (query.reference_or_key, query.email) {
        (_, Some(email)) => {
            let rows = state
                .find_rows_by_contact(&email, activation, query.limit)
                .await?;
            forgotten = state.forgotten_at(&email).await?;
            (email, rows)
        }
        (Some(needle), None) => {
            let rows = state.find_rows(&needle, activation, query.limit).await?;
            (needle, rows)
        }
        (None, None) => unreachable!("clap requires one of them"),
    };
    let sent = rows.iter().find(|r| r.row.outcome == RowOutcome::Sent);
    // A key no run logged may be settled all the same, as baseline.
    let baseline = match (sent, &forgotten) {
        (None, None) if !asked.contains('@') => state.baseline_key(&asked, activation).await?,
        _ => Vec::new(),
    };
    let mut settlements = Vec::new();
    let mut keys: Vec<&str> = rows.iter().map(|r| r.row.key.as_str()).collect();
    keys.dedup();
    for key in keys {
        settlements.extend(state.settlements(key).await?);
    }
    if json {
        let value = serde_json::json!({
            "query": asked,
            "sent": sent.is_some(),
            "sent_at": sent.map(|r| &r.at),
            "sent_run_id": sent.map(|r| &r.run_id),
            "forgotten_at": forgotten,
            "settlements": settlements,
            "baseline": baseline,
            "rows": rows,
        });
        println!("{value}");
    } else if let Some(at) = &forgotten {
        // Her earlier rows were erased: "never sent" would not be true.
        output::print_human(&format!(
            "`{asked}` was forgotten on {} (retl forget): the runs' rows of this person were erased; the keys of those rows stay settled, and a later row for this address is suppressed: never invited again\n",
            at.get(..10).unwrap_or(at)
        ));
        if !rows.is_empty() {
            output::print_human(&retl_state::text::found_rows(&rows));
        }
    } else if let Some(first) = baseline.first() {
        let by = match first.runs.as_slice() {
            [] => "a run whose log was pruned".to_owned(),
            runs => format!("run {}", runs.join(", run ")),
        };
        output::print_human(&format!(
            "`{asked}` is baseline, never sent: recorded as already there by {by} (activation {}: a first run with first_run: skip_existing, or retl baseline); its key stays settled\n",
            first.activation
        ));
        if !rows.is_empty() {
            output::print_human(&retl_state::text::found_rows(&rows));
        }
    } else {
        output::print_human(&retl_state::text::found(&asked, &rows));
        for s in &settlements {
            output::print_human(&format!(
                "settled as {} by {} at {}: row {} that run {} left uncertain (retl runs settle)\n",
                s.settled_as.replace('_', " "),
                s.settled_by,
                s.settled_at,
                s.row_key,
                s.run_id
            ));
        }
    }
    Ok(())
}

/// The one run a person's run id names (see [`State::match_run`]).
async fn resend_id(state: &State, given: &str) -> Result<String, Failure> {
    resolve(state, given, None).await
}

pub(crate) async fn resolve(
    state: &State,
    given: &str,
    activation: Option<&str>,
) -> Result<String, Failure> {
    match state.match_run(given, activation).await? {
        RunMatch::One(id) => Ok(id),
        RunMatch::None => Err(Failure::usage(anyhow::anyhow!(
            "no run matches `{given}`{} (give its id, a unique prefix or ending of it, or `latest`; see `retl runs list`)",
            activation
                .map(|a| format!(" for activation `{a}`"))
                .unwrap_or_default()
        ))),
        RunMatch::Ambiguous(ids) => Err(Failure::usage(anyhow::anyhow!(
            "`{given}` matches several runs; give more characters: {}",
            ids.join(", ")
        ))),
    }
}

async fn resend(
    ctx: &Ctx,
    state: &State,
    run_id: &str,
    outcome: RowOutcome,
    yes: bool,
    json: bool,
) -> Result<Exit, Failure> {
    let run_id = &resend_id(state, run_id).await?;
    let Some(summary) = state.run(run_id).await? else {
        return Err(Failure::usage(anyhow::anyhow!(
            "no run with id `{run_id}` (see `retl runs list`)"
        )));
    };
    let logged = state
        .run_rows(run_id)
        .await?
        .into_iter()
        .filter(|r| r.outcome == outcome)
        .count();
    if logged == 0 {
        println!("run {run_id} has no {outcome} rows: nothing to resend");
        return Ok(Exit::Ok);
    }
    let project = ctx.load(&summary.activation)?;
    let (activation, destination) = project.activation(&summary.activation)?;
    // Rejected rows were refused: resending them cannot invite anyone twice.
    let uncertain = logged;
    if outcome == RowOutcome::Uncertain && !yes {
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
            return Ok(Exit::Ok);
        }
    }
    let options = retl_engine::RunOptions {
        resend: Some(retl_engine::Resend {
            run_id: run_id.to_owned(),
            outcome,
        }),
        drain: retl_engine::drain(destination),
        ..retl_engine::RunOptions::default()
    };
    let finished = retl_engine::run_with(state, activation, destination, &options).await?;
    if finished.released.is_empty() {
        crate::notice(&format!(
            "the {outcome} rows of run {run_id} were already resent or changed: nothing to resend"
        ));
    } else {
        crate::notice(&format!(
            "released {} {outcome} row(s) of run {run_id} and sent only those (keys: {})",
            finished.released.len(),
            finished.released.join("; ")
        ));
    }
    output::print_finished(&finished, json, &ctx.state_url)?;
    exit_code(&finished)
}
