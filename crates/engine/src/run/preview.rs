//! `retl preview` and `retl run --dry-run`: a run that reads, diffs and maps
//! exactly as a real one, and stops where a real one would write or send.
//!
//! It takes no lease and opens no write transaction: its context carries a
//! lease that was never acquired, so a write reached by mistake fails on the
//! fencing check instead of changing the state. Rows a run would send are
//! counted as `sent`; nothing is asked of the destination, so its own
//! verdicts (Trustpilot rejecting a template id, say) cannot be foreseen.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use retl_state::{Counts, RowLog, RowOutcome};
use serde::Serialize;

/// What a run of an activation would do now.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// The activation.
    pub activation: String,
    /// The counts a run would produce (`sent`: rows it would send).
    pub counts: Counts,
    /// The invitations it would send, in order (at most 10,000 unless
    /// `--limit` bounds them).
    pub invitations: Vec<Planned>,
    /// Whether more invitations would go out than are listed.
    pub invitations_truncated: bool,
    /// Rows it would reject before any request, with the reason.
    pub rejections: Vec<Refusal>,
    /// How long the sends would take at the destination's pacing (not
    /// counting the destination's answer times).
    pub estimated_seconds: u64,
    /// Why a real run would send nothing (a safety limit), if it would.
    pub refused: Option<String>,
    /// The approval (`retl approve`) open for the next run, if one is: the
    /// run goes past the safety limits with it (and uses it up).
    pub approval: Option<retl_state::Approval>,
    /// A `first_run:` setting that no longer applies (its first run
    /// completed), and what happens instead.
    pub first_run_note: Option<String>,
}

/// An open approval, as `retl check` and `retl preview` say it.
pub fn approval_text(approval: &retl_state::Approval) -> String {
    let answers = match (&approval.refused_run, &approval.expires_at) {
        (Some(run), _) => format!("answers refused run {run}"),
        (None, Some(expires)) => format!("given ahead of a refusal, expires {expires}"),
        (None, None) => "given before approvals answered a refusal".to_owned(),
    };
    format!(
        "approval: open, by {} at {} ({answers}): the next run goes past the safety limits once; `retl approve {} --revoke` withdraws it",
        approval.approved_by, approval.approved_at, approval.activation
    )
}

/// One invitation a run would send.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    /// The row's primary-key values.
    pub key: String,
    /// Its reference number.
    pub reference: String,
    /// The exact request body.
    pub body: serde_json::Value,
    /// Where each value of the body came from, by JSON path: `row:COLUMN`,
    /// `target`, `destination` or `retl` (a built-in default).
    pub origins: BTreeMap<String, String>,
}

/// One row a run would reject.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    /// The row's primary-key values.
    pub key: String,
    /// Its reference number, if it has one.
    pub reference: Option<String>,
    /// Why.
    pub reason: String,
}

/// Invitations listed when no `--limit` bounds them (the counts cover all).
pub const LISTED: usize = 10_000;

impl Preview {
    pub(super) fn new(activation: &str) -> Preview {
        Preview {
            activation: activation.to_owned(),
            counts: Counts::default(),
            invitations: Vec::new(),
            invitations_truncated: false,
            rejections: Vec::new(),
            estimated_seconds: 0,
            refused: None,
            approval: None,
            first_run_note: None,
        }
    }

    /// Takes the rejections from run-log rows a run would write.
    pub(super) fn note(&mut self, logs: &[RowLog]) {
        for log in logs.iter().filter(|l| l.outcome == RowOutcome::Rejected) {
            self.rejections.push(Refusal {
                key: log.key.clone(),
                reference: log.reference.clone(),
                reason: log.reason.clone().unwrap_or_default(),
            });
        }
    }

    /// Lists an invitation a run would send.
    pub(super) fn plan(&mut self, planned: Planned) {
        if self.invitations.len() < LISTED {
            self.invitations.push(planned);
        } else {
            self.invitations_truncated = true;
        }
    }
}

impl Preview {
    /// The preview as a person reads it: every count, then the first `shown`
    /// request bodies (all of them with `None`), then the rows it would reject.
    pub fn text(&self, shown: Option<usize>) -> String {
        let p = self;
        let c = &p.counts;
        let mut out = format!(
            "preview of activation {} (nothing was sent or written)\n",
            p.activation
        );
        let _ = writeln!(
            out,
            "  read {}  new {}  would send {}  rejected {}  skipped {}  too_old {}",
            c.read, c.new, c.sent, c.rejected, c.skipped, c.too_old
        );
        let _ = writeln!(
            out,
            "  already_sent {}  already_rejected {}  ignored_changed {}  baseline {}",
            c.already_sent, c.already_rejected, c.ignored_changed, c.baseline
        );
        let _ = writeln!(
            out,
            "  suppressed {}  failed {}  uncertain {}  given_up {}  recovered {}  cursor_null {}  reshaped {}  writeback_failed {}",
            c.suppressed,
            c.failed,
            c.uncertain,
            c.given_up,
            c.recovered,
            c.cursor_null,
            c.reshaped,
            c.writeback_failed
        );
        if c.sent > 0 {
            let _ = match p.estimated_seconds {
                0 => writeln!(
                    out,
                    "  the sends fit in the rate windows: no wait at the configured pacing"
                ),
                secs => writeln!(
                    out,
                    "  sending would take about {} at the configured pacing",
                    humantime_secs(secs)
                ),
            };
        }
        if let Some(refused) = &p.refused {
            let _ = writeln!(out, "  a run now would be {refused}");
        }
        let shown = shown.map_or(p.invitations.len(), |n| n.min(p.invitations.len()));
        for invitation in &p.invitations[..shown] {
            let _ = writeln!(
                out,
                "\ninvitation for row {} (reference {})",
                invitation.key, invitation.reference
            );
            let body = serde_json::to_string_pretty(&invitation.body).unwrap_or_default();
            for line in body.lines() {
                let _ = writeln!(out, "  {line}");
            }
            let origins: Vec<String> = invitation
                .origins
                .iter()
                .map(|(path, from)| format!("{path} <- {from}"))
                .collect();
            let _ = writeln!(out, "  from: {}", origins.join(", "));
        }
        if shown < p.invitations.len() {
            let _ = writeln!(
                out,
                "\n({} more request bodies not shown: --show N or --show all lists them, --json gives them all)",
                p.invitations.len() - shown
            );
        }
        if p.invitations_truncated {
            let _ = writeln!(
                out,
                "\n(only the first {} invitations are kept; use --limit to bound the preview)",
                p.invitations.len()
            );
        }
        if !p.rejections.is_empty() {
            let _ = writeln!(out, "\nrows that would be rejected:");
            for r in &p.rejections {
                let _ = writeln!(
                    out,
                    "  {} (reference {}): {}",
                    r.key,
                    r.reference.as_deref().unwrap_or("-"),
                    r.reason
                );
            }
        }
        out
    }
}

/// A duration as `42s`, `3m05s` or `2h07m`.
fn humantime_secs(seconds: u64) -> String {
    let minutes = seconds / 60;
    match (minutes / 60, minutes % 60, seconds % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// A dry run's deliver phase: what the budget lets go is counted `sent`
/// and listed, the rest `skipped`.
pub(super) fn plan_all(
    run: &mut super::Run<'_>,
    budget: &mut Option<(u64, String)>,
    pending: Vec<super::classify::Pending>,
) {
    use super::tally::Event;
    for p in pending {
        if super::fate::over_budget(budget).is_some() {
            run.count(Event::Ended(RowOutcome::Skipped));
            continue;
        }
        run.count(Event::Ended(RowOutcome::Sent));
        let (body, origins) = p.shown.unwrap_or_default();
        run.effects.plan(Planned {
            key: p.row_key,
            reference: p.reference,
            body,
            origins,
        });
    }
}
