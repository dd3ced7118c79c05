//! A monthly allowance (`limits.max_per_month`): what was sent against it,
//! read by the clear phase into the run's budget, and claimed by the
//! deliver phase as each row is marked.

use crate::Result;

/// The month an allowance is counted in, by the state's clock (UTC): `YYYY-MM`.
pub(super) fn month_of(state: &retl_state::State) -> String {
    state.clock().now().format("%Y-%m").to_string()
}

/// What a row deferred by a spent allowance is logged with.
pub(super) fn allowance_spent(allowance: &Allowance) -> String {
    format!(
        "allowance: limits.max_per_month ({}) of {} reached this month; sent next month",
        allowance.limit, allowance.of
    )
}

/// A monthly allowance (`limits.max_per_month`) and what was sent against it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Allowance {
    /// Whose: `activation NAME` or `destination NAME` (its activations together).
    pub of: String,
    /// The counter rows claim it in: `activation:NAME` or `destination:NAME`.
    #[serde(skip)]
    pub scope: String,
    /// The allowance.
    pub limit: u64,
    /// Sent this calendar month (UTC).
    pub sent: u64,
}

impl Allowance {
    /// What is left of it this month.
    pub fn left(&self) -> u64 {
        self.limit.saturating_sub(self.sent)
    }
}

/// The monthly allowances `activation` sends under, with what was sent
/// this month (UTC) against each (for a run's budget, `retl check` and the page).
pub async fn allowances(
    state: &retl_state::State,
    activation: &crate::config::Activation,
) -> Result<Vec<Allowance>> {
    use chrono::Datelike as _;
    let now = state.clock().now();
    let month = now
        .date_naive()
        .with_day(1)
        .unwrap_or(now.date_naive())
        .and_time(chrono::NaiveTime::MIN)
        .and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let counted = now.format("%Y-%m").to_string();
    let mut found = Vec::new();
    if let Some(limit) = activation.limits.max_per_month {
        let scope = format!("activation:{}", activation.name);
        let logged = state.sent_since(&activation.name, &month).await?;
        // The counter holds claims under way too (another run's in flight).
        let claimed = state.allowance_used(&scope, &counted).await?;
        found.push(Allowance {
            of: format!("activation `{}`", activation.name),
            scope,
            limit,
            sent: logged.max(claimed.unwrap_or_default()),
        });
    }
    if let Some(limit) = activation.destination_max_per_month {
        let mut logged = 0;
        for sibling in &activation.siblings {
            logged += state.sent_since(sibling, &month).await?;
        }
        let scope = format!("destination:{}", activation.destination);
        let claimed = state.allowance_used(&scope, &counted).await?;
        found.push(Allowance {
            of: format!("destination `{}`", activation.destination),
            scope,
            limit,
            sent: logged.max(claimed.unwrap_or_default()),
        });
    }
    Ok(found)
}
