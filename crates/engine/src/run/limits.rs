//! The second phase, clearing: the safety limits a run applies before it
//! sends. The guards (a renamed activation, a moved destination, a large
//! first run), the surge guard, and the budget (`--limit`,
//! `limits.max_per_run`, `limits.max_per_day`, `limits.max_per_month`),
//! handed on as a [`Cleared`]. A refusal ends a run with exit code 5; a
//! preview notes it and goes on counting.

use retl_source::Source;

use super::Run;
use super::allowance::{Allowance, allowance_spent, allowances, month_of};
use super::start::Taken;
use super::surge::Surge;
use crate::{Error, Result};

/// What a run that passed its guards goes on with.
pub(super) struct Cleared {
    /// How many rows it may start sending, and why it is bounded.
    pub budget: Option<(u64, String)>,
    /// The monthly allowances its rows claim a place in when they are marked.
    pub allowances: Vec<Allowance>,
    /// Its surge guard, if one applies.
    pub surge: Option<Surge>,
}

/// The most this machine's clock and the warehouse's may differ before a
/// run that computes with times (`max_row_age`, cursor mode) is refused.
pub(crate) const MAX_CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// What the two clocks say, when they are more than [`MAX_CLOCK_SKEW`]
/// apart: a message naming both times.
pub(crate) fn clock_skew(
    ours: chrono::DateTime<chrono::Utc>,
    theirs: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    let skew = (ours - theirs).abs();
    (skew > MAX_CLOCK_SKEW).then(|| {
        let at =
            |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let secs = skew.num_seconds().unsigned_abs();
        let apart: Vec<String> = [
            (secs / 86_400, "d"),
            (secs / 3600 % 24, "h"),
            (secs / 60 % 60, "m"),
            (secs % 60, "s"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
        format!(
            "this machine's clock reads {}, the warehouse's {}: {} apart, more than {} minutes",
            at(ours),
            at(theirs),
            apart.join(" "),
            MAX_CLOCK_SKEW.num_minutes()
        )
    })
}

impl Run<'_> {
    /// Compares this machine's clock with the warehouse's. A skew over
    /// [`MAX_CLOCK_SKEW`] fails a run that decides with times (`max_row_age`
    /// would record new rows `too_old` for good; cursor mode would move its
    /// mark by a wrong clock); otherwise it is a warning.
    pub(super) async fn check_clock(&self, spec: &retl_source::SourceSpec) -> Result<()> {
        let before = chrono::Utc::now();
        let theirs = Source::warehouse_now(spec)
            .await
            .map_err(|error| Error::Source {
                activation: self.activation.name.clone(),
                error,
            })?;
        let after = chrono::Utc::now();
        let ours = before + (after - before) / 2;
        let Some(message) = clock_skew(ours, theirs) else {
            return Ok(());
        };
        let decides_with_time =
            self.activation.max_row_age.is_some() || self.activation.source.incremental.is_some();
        if decides_with_time {
            return Err(Error::ClockSkew {
                activation: self.activation.name.clone(),
                message: format!(
                    "{message}; a run with max_row_age or cursor mode needs the two to agree: set this machine's clock right (NTP)"
                ),
            });
        }
        tracing::warn!("{message}");
        Ok(())
    }

    /// A first run whose source another activation's history was built
    /// from is refused: it is most likely that activation, renamed, and
    /// would invite its customers again.
    async fn guard_renamed(&self, first_run: bool, resend: bool) -> Result<()> {
        if !first_run || self.options.allow_shared_source || resend {
            return Ok(());
        }
        let name = &self.activation.name;
        let identity = self.activation.source_identity();
        let Some(other) = self.state.history_of_source(&identity, name).await? else {
            return Ok(());
        };
        Err(Error::Refused {
            activation: name.clone(),
            message: format!(
                "refused by a safety limit; nothing sent: this is the first run of `{name}`, but activation `{other}` already has a history read from the same source (connection, table or query, key, destination): if `{name}` is `{other}` renamed, run `retl rename {other} {name}` to carry its ledger over; if both are meant to read it, run `retl run {name} --allow-shared-source` once"
            ),
        })
    }

    /// A run whose destination is not the one its activation's keys were
    /// settled against is refused: a settled key answers only for where its
    /// invitation went (the invitations host and the business unit), so
    /// counting it as sent for another would lose that customer there. The
    /// identity is recorded by the first run (and by each run that changes
    /// it with nothing settled, or with `--destination-moved`).
    async fn guard_destination(&self, identity: &str) -> Result<()> {
        let name = &self.activation.name;
        let recorded = self.state.destination_of(name).await?;
        let unchanged = recorded.as_ref().is_some_and(|(old, _)| old == identity);
        if unchanged {
            return Ok(());
        }
        if let Some((old, since)) = &recorded
            && !self.options.destination_moved
            && self.state.has_delivered(name).await?
        {
            let destination = &self.activation.destination;
            return Err(Error::Refused {
                activation: name.clone(),
                message: format!(
                    "refused by a safety limit; nothing sent: the keys `{name}` settled answer for destination `{destination}` at {old} (since {since}), but it now sends to {identity}. A settled key answers only for where its invitation went: counting them as sent here would never invite those customers. If this is another Trustpilot (another target, a test account), give it a state of its own: `--state sqlite://.retl/OTHER/state.db`, or `RETL_STATE_URL` in its target of targets.yaml. If it is the same account under a new address, run `retl run {name} --destination-moved` once to carry the history over"
                ),
            });
        }
        self.effects
            .write(async |tx| {
                if let Some((old, _)) = &recorded {
                    tracing::warn!(from = %old, to = %identity, "the destination's identity changed (--destination-moved, or nothing was settled yet): the settled keys now answer for the new one");
                }
                tx.note_destination(identity).await
            })
            .await
    }

    /// The phase: the guards a run passes before it reads (a rename, a
    /// moved destination (`identity`), a large first run), its budget and
    /// its surge guard.
    pub(super) async fn clear(
        &mut self,
        taken: &Taken,
        first_run: bool,
        identity: &str,
    ) -> Result<Cleared> {
        let verdict = self.guard_renamed(first_run, taken.only.is_some()).await;
        self.effects.refuse(verdict)?;
        let verdict = self.guard_destination(identity).await;
        self.effects.refuse(verdict)?;
        // `retl baseline` sends nothing: no guard of what is sent applies.
        let sends = !self.options.baseline;
        let verdict = self
            .guard_first_run(first_run && sends, taken.approval.is_some())
            .await;
        self.effects.refuse(verdict)?;
        let (budget, allowances) = self.budget().await?;
        let surge = if first_run || !sends {
            None
        } else {
            Surge::of(self, taken).await?
        };
        Ok(Cleared {
            budget,
            allowances,
            surge,
        })
    }

    /// A first run with no explicit `first_run:` that would send more than
    /// `limits.first_run_max` rows sends nothing ([`Error::Refused`]). The rows
    /// are counted by the database, not read. `--limit` lets it go as a canary.
    async fn guard_first_run(&self, first_run: bool, approved: bool) -> Result<()> {
        let activation = self.activation;
        if !first_run || activation.first_run_explicit || self.options.limit.is_some() || approved {
            return Ok(());
        }
        let max = activation.limits.first_run_max();
        let rows = Source::inspect(&activation.source_spec(), true)
            .await
            .map_err(|error| Error::Source {
                activation: activation.name.clone(),
                error,
            })?
            .rows
            .unwrap_or_default();
        if rows <= max {
            return Ok(());
        }
        let name = &activation.name;
        Err(Error::Refused {
            activation: name.clone(),
            message: format!(
                "refused by a safety limit; nothing sent: this is its first run and it would send {rows} rows, more than limits.first_run_max ({max}). Choose: `first_run: send_all` to invite them all, `first_run: skip_existing` to invite only rows that arrive from now on, `retl run {name} --limit N` to send N as a canary, or `retl approve {name}` to let its next run send them all once"
            ),
        })
    }

    /// How many rows this run may start sending: the least of `--limit`,
    /// `limits.max_per_run`, what `limits.max_per_day` leaves of today (UTC)
    /// and what `limits.max_per_month` leaves of this month, the
    /// activation's own and its destination's (its activations together).
    async fn budget(&self) -> Result<(Option<(u64, String)>, Vec<Allowance>)> {
        let limits = self.activation.limits;
        let mut budget: Option<(u64, String)> = None;
        let mut bound = |n: u64, why: String| {
            if budget.as_ref().is_none_or(|(b, _)| n < *b) {
                budget = Some((n, why));
            }
        };
        if let Some(n) = self.options.limit {
            bound(
                n,
                format!("limit: --limit {n} reached; sent by a later run"),
            );
        }
        if let Some(n) = limits.max_per_run {
            bound(
                n,
                format!("cap: limits.max_per_run ({n}) reached; sent by a later run"),
            );
        }
        if let Some(n) = limits.max_per_day {
            let midnight = self
                .state
                .clock()
                .now()
                .date_naive()
                .and_time(chrono::NaiveTime::MIN)
                .and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let today = self
                .state
                .sent_since(&self.activation.name, &midnight)
                .await?;
            bound(
                n.saturating_sub(today),
                format!("cap: limits.max_per_day ({n}) reached; sent on a later day"),
            );
        }
        let allowances = allowances(self.state, self.activation).await?;
        if !allowances.is_empty() {
            // Each row claims its place in the allowance when it is marked;
            // the counters start from what the run logs say was sent.
            let month = month_of(self.state);
            self.effects
                .write(async |tx| {
                    for allowance in &allowances {
                        tx.seed_allowance(&allowance.scope, &month, allowance.sent)
                            .await?;
                    }
                    Ok(())
                })
                .await?;
        }
        for allowance in &allowances {
            bound(allowance.left(), allowance_spent(allowance));
        }
        Ok((budget, allowances))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_more_than_five_minutes_apart_are_named_with_both_times() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        assert_eq!(
            clock_skew(at("2026-11-30T12:00:00Z"), at("2026-11-30T12:05:00Z")),
            None
        );
        assert_eq!(
            clock_skew(at("2027-01-09T12:00:00Z"), at("2026-11-30T12:00:00Z")).as_deref(),
            Some(
                "this machine's clock reads 2027-01-09T12:00:00Z, the warehouse's 2026-11-30T12:00:00Z: 40d apart, more than 5 minutes"
            )
        );
    }
}
