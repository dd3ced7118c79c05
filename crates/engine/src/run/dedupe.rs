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
    dedupe: &[(String, Duration)],
    p: &Pending,
) -> retl_state::Result<()> {
    if let Some(contact) = &p.contact {
        for (scope, _) in dedupe {
            tx.release_contact(scope, contact, &p.key).await?;
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
            for (scope, within) in &run.activation.dedupe {
                let since = since(run.state, *within);
                let name = &run.activation.name;
                let contacts: Vec<&str> = std::iter::once(contact.as_str())
                    .chain(p.legacy_contacts.iter().map(String::as_str))
                    .collect();
                if let Some(earlier) = run
                    .state
                    .contact_invited(scope, &contacts, name, &p.key, &since)
                    .await?
                {
                    run.count(Event::Ended(RowOutcome::Suppressed));
                    logs.push(p.log(RowOutcome::Suppressed, Some(suppressed(&earlier, *within))));
                    continue 'rows;
                }
            }
        }
        kept.push(p);
    }
    run.effects.commit(&[], &[], &logs).await?;
    Ok(kept)
}
