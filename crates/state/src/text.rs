//! How a person reads a run's summary (`retl run`, `retl runs show`, the
//! demo): a few lines, the counts first.

use std::fmt::Write as _;

use crate::RunSummary;

impl RunSummary {
    /// The run as a person reads it, a few lines: its counts, and a sentence
    /// for each outcome that needs one.
    pub fn text(&self) -> String {
        let s = self;
        let c = &s.counts;
        let mut out = format!(
            "run {}  activation {}  {}  in {}\n",
            s.run_id,
            s.activation,
            s.status,
            duration(s)
        );
        let _ = writeln!(
            out,
            "  read {}  new {}  sent {}  rejected {}  failed {}  uncertain {}  skipped {}",
            c.read, c.new, c.sent, c.rejected, c.failed, c.uncertain, c.skipped
        );
        let _ = writeln!(
            out,
            "  already_sent {}  already_rejected {}  ignored_changed {}",
            c.already_sent, c.already_rejected, c.ignored_changed
        );
        if c.suppressed > 0 {
            let _ = writeln!(
                out,
                "  suppressed {}: their customer was invited within the dedupe window (dedupe:); never sent",
                c.suppressed
            );
        }
        if c.duplicate > 0 {
            let _ = writeln!(
                out,
                "  duplicate {}: rows whose key appears more than once in the read; none of them sent, none settled (fix the query: `retl runs show {} --outcome duplicate`)",
                c.duplicate, s.run_id
            );
        }
        if c.reshaped > 0 {
            let _ = writeln!(
                out,
                "  the mapping changed since the last run: {} rows sent before were re-hashed under it (not logged as changed)",
                c.reshaped
            );
        }
        if c.given_up > 0 {
            let _ = writeln!(
                out,
                "  given_up {}: failed for longer than retry.give_up_after; not retried on their own (retl runs resend {} --given-up)",
                c.given_up, s.run_id
            );
        }
        if c.baseline > 0 {
            let _ = writeln!(
                out,
                "  baseline {}: rows already there on the first run, recorded and not sent (first_run: skip_existing)",
                c.baseline
            );
        }
        if c.too_old > 0 {
            let _ = writeln!(
                out,
                "  too_old {}: rows older than max_row_age, recorded and never sent",
                c.too_old
            );
        }
        if c.recovered > 0 {
            let _ = writeln!(
                out,
                "  recovered {} row(s) left in flight by an interrupted run: marked uncertain, not resent",
                c.recovered
            );
        }
        if let Some(error) = &s.error {
            let _ = writeln!(out, "  error: {error}");
        }
        out
    }
}

/// The duration between two RFC 3339 times, as `1.23s`.
fn duration(summary: &RunSummary) -> String {
    let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
    match (
        parse(&summary.started_at),
        summary.finished_at.as_deref().and_then(parse),
    ) {
        (Some(start), Some(end)) => {
            let ms = (end - start).num_milliseconds();
            format!("{}.{:02}s", ms / 1000, (ms % 1000) / 10)
        }
        _ => "-".to_owned(),
    }
}
