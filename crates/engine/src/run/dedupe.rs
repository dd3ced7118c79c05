//! One invitation per customer per period (`dedupe:`): a real run decides
//! it when it marks a row in flight (`deliver.rs`, claiming the customer in
//! the same transaction) and gives the claim back for a row not carried
//! out; a dry run only looks.

use std::time::Duration;

use retl_state::{RowOutcome, State};

use super::Run;
use super::classify::Pending;
use super::tally::Event;
use crate::Result;

/// One dedupe scope of an activation: its name (`activation:NAME` or
/// `destination:NAME`), its window, and the activations whose sent rows
/// count in it (the activation, or its destination's activations).
#[derive(Debug, Clone)]
pub(super) struct Scope {
    pub name: String,
    pub within: Duration,
    pub activations: Vec<String>,
}

/// The dedupe scopes of `activation`.
pub(super) fn scopes(activation: &crate::config::Activation) -> Vec<Scope> {
    activation
        .dedupe
        .iter()
        .map(|(name, within)| Scope {
            name: name.clone(),
            within: *within,
            activations: if name.starts_with("destination:") {
                activation.siblings.clone()
            } else {
                vec![activation.name.clone()]
            },
        })
        .collect()
}

/// A customer of row `p` invited within `scope`'s window, as the run log
/// says (the run log keeps every sent row's keyed hash, so the window covers
/// invitations made before dedupe was switched on).
pub(super) fn asking<'a>(
    scope: &'a Scope,
    since: &'a str,
    activation: &'a str,
    p: &'a Pending,
) -> retl_state::Asking<'a> {
    retl_state::Asking {
        activations: &scope.activations,
        since,
        row: (activation, &p.row_key),
    }
}

/// When a dedupe window of `within` began, by the state's clock.
pub(super) fn since(state: &State, within: Duration) -> String {
    let start =
        state.clock().now() - chrono::Duration::from_std(within).unwrap_or(chrono::TimeDelta::MAX);
    start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The run-log reason of a row withheld because `earlier` invited its customer.
pub(super) fn suppressed(earlier: &retl_state::Earlier, within: Duration) -> String {
    format!(
        "suppressed: this customer was invited at {} by run {} (activation {}); dedupe: one invitation per customer per {}",
        earlier.invited_at,
        earlier.run_id,
        earlier.activation,
        as_written(within)
    )
}

/// The run-log reason of a row withheld because its customer asked to be
/// forgotten on `at`.
pub(super) fn forgotten(at: &str) -> String {
    format!(
        "suppressed: this customer asked to be forgotten on {} (retl forget); never invited again",
        at.get(..10).unwrap_or(at)
    )
}

/// A period as a configuration writes it: `365d`, `12h`, else humantime's words.
fn as_written(period: Duration) -> String {
    let secs = period.as_secs();
    match secs {
        0 => "0s".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        _ => humantime::format_duration(period).to_string(),
    }
}

/// Gives back the row's claims of its customer (its request was not carried out).
pub(super) async fn release(
    tx: &mut retl_state::Fenced,
    dedupe: &[Scope],
    p: &Pending,
) -> retl_state::Result<()> {
    if let Some(contact) = &p.contact {
        for scope in dedupe {
            tx.release_contact(&scope.name, contact, &p.key).await?;
        }
    }
    Ok(())
}

/// A dry run's rows to send, but those whose customer was invited within
/// a dedupe window (or asked to be forgotten, when `anyone_forgotten`):
/// counted `suppressed` and noted (a real run decides this when it marks
/// the row, claiming the customer).
pub(super) async fn without_suppressed(
    run: &mut Run<'_>,
    anyone_forgotten: bool,
    pending: Vec<Pending>,
) -> Result<Vec<Pending>> {
    if run.activation.dedupe.is_empty() && !anyone_forgotten {
        return Ok(pending);
    }
    let mut kept = Vec::with_capacity(pending.len());
    let mut logs = Vec::new();
    'rows: for p in pending {
        if let Some(contact) = &p.contact {
            let hashes: Vec<&str> = std::iter::once(contact.as_str())
                .chain(p.legacy_contacts.iter().map(String::as_str))
                .collect();
            let forgotten_at = if anyone_forgotten {
                run.state.contact_forgotten(&hashes).await?
            } else {
                None
            };
            if let Some(at) = forgotten_at {
                run.count(Event::Ended(RowOutcome::Suppressed));
                logs.push(p.log(RowOutcome::Suppressed, Some(forgotten(&at))));
                continue 'rows;
            }
            for scope in scopes(run.activation) {
                let since = since(run.state, scope.within);
                let name = &run.activation.name;
                let mut earlier = run
                    .state
                    .contact_invited(&scope.name, &hashes, name, &p.key, &since)
                    .await?;
                if earlier.is_none() {
                    let asking = asking(&scope, &since, name, &p);
                    earlier = run.state.sent_before(&hashes, asking).await?;
                }
                if let Some(earlier) = earlier {
                    run.count(Event::Ended(RowOutcome::Suppressed));
                    let reason = suppressed(&earlier, scope.within);
                    logs.push(p.log(RowOutcome::Suppressed, Some(reason)));
                    continue 'rows;
                }
            }
        }
        kept.push(p);
    }
    run.effects.commit(&[], &[], &logs).await?;
    Ok(kept)
}
