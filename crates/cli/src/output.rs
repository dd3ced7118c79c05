//! Human-readable output: summaries and tables.

use std::fmt::Write as _;

use retl_state::RunSummary;

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
        print_human(&finished.summary.text());
    }
    Ok(())
}

/// `retl templates`.
pub fn templates_table(templates: &[retl_trustpilot::Template]) -> String {
    use retl_state::text::table;
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
