//! How a person reads the run log: a run's summary (`retl run`, `retl runs
//! show`, the demo), a few lines with the counts first; and the tables of
//! `retl runs list`, `runs show` and `runs find`.

use std::fmt::Write as _;

use crate::{RowLog, RunSummary};

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

/// Left-aligned columns, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<w$}  ");
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// `retl runs list`.
pub fn runs_table(runs: &[RunSummary]) -> String {
    if runs.is_empty() {
        return "no runs yet\n".to_owned();
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.run_id.clone(),
                r.activation.clone(),
                r.status.to_string(),
                r.started_at.clone(),
                r.counts.read.to_string(),
                r.counts.sent.to_string(),
                r.counts.rejected.to_string(),
                r.counts.failed.to_string(),
                r.counts.uncertain.to_string(),
                reason(&r.activation, r.error.as_deref()),
            ]
        })
        .collect();
    table(
        &[
            "RUN_ID",
            "ACTIVATION",
            "STATUS",
            "STARTED_AT",
            "READ",
            "SENT",
            "REJECTED",
            "FAILED",
            "UNCERTAIN",
            "REASON",
        ],
        &rows,
    )
}

/// Why a run failed or was refused, cut to one line for a table (the whole
/// text is in `runs show` and `--json`).
fn reason(activation: &str, error: Option<&str>) -> String {
    const WIDTH: usize = 140;
    let line = error.unwrap_or("").lines().next().unwrap_or_default();
    // The ACTIVATION column says it already.
    let line = line
        .strip_prefix(&format!("activation `{activation}`: "))
        .unwrap_or(line);
    if line.chars().count() > WIDTH {
        let cut: String = line.chars().take(WIDTH - 1).collect();
        format!("{cut}…")
    } else {
        line.to_owned()
    }
}

/// The rows of `retl runs show`.
pub fn rows_table(rows: &[RowLog]) -> String {
    if rows.is_empty() {
        return "no rows were sent or rejected in this run\n".to_owned();
    }
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.key.clone(),
                r.reference.clone().unwrap_or_default(),
                r.outcome.to_string(),
                r.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&["KEY", "REFERENCE", "OUTCOME", "REASON"], &rows)
}

/// `retl runs find`: was it sent, and every log row found.
pub fn found(query: &str, rows: &[crate::FoundRow]) -> String {
    if rows.is_empty() {
        return if query.contains('@') {
            format!(
                "no run logged a row for the email `{query}`: never invited, rejected or tried\n"
            )
        } else {
            format!("no run logged a row with reference or key `{query}`\n")
        };
    }
    let mut out = match rows
        .iter()
        .find(|r| r.row.outcome == crate::RowOutcome::Sent)
    {
        Some(sent) => format!(
            "`{query}` was sent at {} by run {} (activation {})\n",
            sent.at, sent.run_id, sent.activation
        ),
        None => format!("`{query}` was never sent; what the runs logged:\n"),
    };
    out.push_str(&found_rows(rows));
    out
}

/// The table of the log rows `retl runs find` found.
pub fn found_rows(rows: &[crate::FoundRow]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let answer = match (r.row.details.status, &r.row.external_id) {
                (Some(code), Some(id)) => format!("HTTP {code}, id {id}"),
                (Some(code), None) => format!("HTTP {code}"),
                _ => String::new(),
            };
            vec![
                r.at.clone(),
                r.run_id.clone(),
                r.activation.clone(),
                r.row.key.clone(),
                r.row.reference.clone().unwrap_or_default(),
                r.row.outcome.to_string(),
                answer,
                r.row.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "AT",
            "RUN",
            "ACTIVATION",
            "KEY",
            "REFERENCE",
            "OUTCOME",
            "TRUSTPILOT",
            "REASON",
        ],
        &rows,
    )
}
