//! `retl forget --email ADDRESS [--destination NAME] [--dry-run]`: the right
//! to be forgotten. Asks Trustpilot to delete the person's invitation data
//! in every business unit the destination sends to, then erases their
//! traces from the state (see `retl_state`'s `forget_contact`).

use retl_engine::config::{Destination, Project};
use serde::Serialize;

use crate::exit::Exit;
use crate::{Ctx, Failure};

/// What `retl forget` did (or, with `--dry-run`, would do).
#[derive(Debug, Serialize)]
struct Forgotten {
    /// Nothing was asked or erased.
    dry_run: bool,
    /// Per destination, the business units asked.
    destinations: Vec<Asked>,
    /// Run-log rows erased (or that would be).
    rows_erased: u64,
}

/// One destination's deletion requests.
#[derive(Debug, Serialize)]
struct Asked {
    name: String,
    business_units: Vec<Unit>,
}

/// One business unit asked, and Trustpilot's answer (its HTTP status).
#[derive(Debug, Serialize)]
struct Unit {
    id: String,
    status: Option<u16>,
}

/// The business units `destination` sends to: its default and each of its
/// activations' targets.
fn business_units(project: &Project, name: &str, d: &retl_trustpilot::Destination) -> Vec<String> {
    let mut units: Vec<String> = d.defaults.business_unit_id.iter().cloned().collect();
    for activation in project
        .activations
        .values()
        .filter(|a| a.destination == name)
    {
        if let Some(delivery) = activation.delivery.get::<retl_trustpilot::Destination>()
            && let Some(bu) = d.settings_for(&delivery.target).business_unit_id
            && !units.contains(&bu)
        {
            units.push(bu);
        }
    }
    units
}

/// `retl forget`.
pub(crate) async fn forget(
    ctx: &Ctx,
    email: &str,
    only: Option<&str>,
    dry_run: bool,
    json: bool,
) -> Result<Exit, Failure> {
    if !email.contains('@') {
        return Err(Failure::usage(anyhow::anyhow!(
            "`{email}` is not an email address"
        )));
    }
    let project = ctx.project()?;
    let chosen: Vec<(&String, &Destination)> = match only {
        Some(name) => match project.destinations.get_key_value(name) {
            Some(found) => vec![found],
            None => {
                return Err(Failure::usage(anyhow::anyhow!(
                    "destination `{name}` is not defined (or its file has problems)"
                )));
            }
        },
        None => project.destinations.iter().collect(),
    };
    // As given, and lowercased if that differs: whether Trustpilot compares
    // addresses without case is not documented.
    let mut addresses = vec![email.trim().to_owned()];
    let lower = email.trim().to_lowercase();
    if lower != addresses[0] {
        addresses.push(lower);
    }
    let state = ctx.state().await?;
    let mut done = Forgotten {
        dry_run,
        destinations: Vec::new(),
        rows_erased: state.contact_rows(email).await?,
    };
    for (name, destination) in chosen {
        let Some(trustpilot) = destination.get::<retl_trustpilot::Destination>() else {
            continue;
        };
        let mut asked = Asked {
            name: name.clone(),
            business_units: Vec::new(),
        };
        let client = retl_trustpilot::Client::new(trustpilot.client_config(state.token_cache()))
            .map_err(|e| config_error(name, &e))?;
        for bu in business_units(&project, name, trustpilot) {
            let status = if dry_run {
                None
            } else {
                let answered = client.delete_invitation_data(&bu, &addresses).await;
                Some(answered.map_err(|e| match e.class() {
                    retl_trustpilot::ErrorClass::Fatal => config_error(name, &e),
                    _ => Failure::from(anyhow::anyhow!(
                        "destination `{name}`: business unit `{bu}`: the deletion failed, nothing was erased here: {e}"
                    )),
                })?)
            };
            asked.business_units.push(Unit { id: bu, status });
        }
        done.destinations.push(asked);
    }
    if !dry_run {
        let names: Vec<&str> = done.destinations.iter().map(|d| d.name.as_str()).collect();
        done.rows_erased = state.forget_contact(email, &names.join(",")).await?;
    }
    if json {
        println!("{}", serde_json::to_string(&done)?);
    } else {
        let verb = if dry_run { "would ask" } else { "asked" };
        for d in &done.destinations {
            for unit in &d.business_units {
                println!(
                    "{verb} Trustpilot ({}) to delete the invitation data of {email} in business unit {}{}",
                    d.name,
                    unit.id,
                    unit.status
                        .map(|s| format!(": HTTP {s}"))
                        .unwrap_or_default()
                );
            }
        }
        println!(
            "{} {} run-log row(s): reasons, answers and link URLs, and the email's hash; the ledger keeps the keys that stop a second invitation",
            if dry_run { "would erase" } else { "erased" },
            done.rows_erased
        );
    }
    Ok(Exit::Ok)
}

/// The destination's credentials cannot call the deletion endpoint: a
/// configuration error (exit 2), and nothing erased.
fn config_error(name: &str, error: &retl_trustpilot::Error) -> Failure {
    Failure::usage(anyhow::anyhow!(
        "destination `{name}`: its credentials cannot delete invitation data (POST …/invitation-data/delete), nothing was erased: {error}"
    ))
}
