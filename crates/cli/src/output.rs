//! Human-readable output: summaries and tables.

use std::fmt::Write as _;

use retl_state::{RowLog, RunSummary};

/// Text for a terminal: every control character (C0 but the line feed,
/// DEL, C1) written as a `\u{…}` escape, so that data (a key holding
/// `ESC ]0;…BEL`, say) cannot move the cursor, retitle the window or hide
/// lines. Every human output of data goes through it.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n';
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Prints human output, made [`terminal_safe`].
pub fn print_human(text: &str) {
    print!("{}", terminal_safe(text));
}

/// A run's summary as `--json` prints it: the run, and the state database it
/// was recorded in (password masked).
pub fn summary_json(summary: &RunSummary, state_url: &str) -> serde_json::Result<String> {
    let mut value = serde_json::to_value(summary)?;
    value["state"] = serde_json::Value::String(retl_state::State::masked(state_url));
    serde_json::to_string(&value)
}

/// Prints a finished run: its JSON summary, or its few lines.
pub fn print_finished(
    finished: &retl_engine::Finished,
    json: bool,
    state_url: &str,
) -> serde_json::Result<()> {
    if json {
        println!("{}", summary_json(&finished.summary, state_url)?);
    } else {
        print_human(&summary(&finished.summary));
    }
    Ok(())
}

/// A run's summary, a few lines.
pub fn summary(s: &RunSummary) -> String {
    s.text()
}

/// Left-aligned columns, two spaces apart.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
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
pub fn found(query: &str, rows: &[retl_state::FoundRow]) -> String {
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
        .find(|r| r.row.outcome == retl_state::RowOutcome::Sent)
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
pub fn found_rows(rows: &[retl_state::FoundRow]) -> String {
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

/// `retl templates`.
pub fn templates_table(templates: &[retl_trustpilot::Template]) -> String {
    if templates.is_empty() {
        return "no templates\n".to_owned();
    }
    let rows: Vec<Vec<String>> = templates
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.name.clone(),
                t.locale.clone().unwrap_or_default(),
                t.kind.clone().unwrap_or_default(),
                if t.is_default_template { "yes" } else { "" }.to_owned(),
            ]
        })
        .collect();
    table(&["ID", "NAME", "LOCALE", "TYPE", "DEFAULT"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_data_are_escaped_for_the_terminal() {
        assert_eq!(terminal_safe("plain\nlines"), "plain\nlines");
        assert_eq!(
            terminal_safe("k\u{1b}]0;owned\u{7}\r\t\u{9b}2J"),
            "k\\u{1b}]0;owned\\u{7}\\u{d}\\u{9}\\u{9b}2J"
        );
    }
}
