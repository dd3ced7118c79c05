//! `retl check` over a whole project: which files' problems concern the
//! activations asked for, each destination's healthcheck, each activation's
//! source, and the report, as JSON (`--json`) and as text for people.

use std::fmt::Write as _;
use std::path::Path;

use retl_state::State;
use serde::Serialize;

use crate::check::PREVIEW_FAILED;
use crate::config::{Activation, Problem, Project};
use crate::{ActivationCheck, DestinationCheck, SourceCheck, check_activation, check_destination};

/// Everything `retl check` found (its `--json`).
#[derive(Debug, Serialize)]
pub struct ProjectCheck {
    /// Whether nothing is wrong.
    pub ok: bool,
    /// The state database, password masked.
    pub state: String,
    /// Problems of configuration files (with `file:line:column`).
    pub problems: Vec<String>,
    /// Each destination checked.
    pub destinations: Vec<DestinationCheck>,
    /// Each activation checked.
    pub activations: Vec<ActivationCheck>,
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether `problem` concerns the files of `names` (or, for a name that did
/// not load, any activation file of that stem and any destination file).
fn concerns(problem: &Problem, project: &Project, names: &[String]) -> bool {
    let Some(file) = problem.location.as_ref().map(|l| &l.file) else {
        return true;
    };
    let in_destinations = file
        .parent()
        .is_some_and(|d| d.file_name().is_some_and(|n| n == "destinations"));
    names
        .iter()
        .any(|name| match project.activations.get(name) {
            Some(activation) => {
                activation.file == *file
                    || (in_destinations && stem(file) == activation.destination)
            }
            None => stem(file) == *name || in_destinations,
        })
}

/// `retl check`: the configuration's problems (of the files of `only`, or
/// all), each destination's healthcheck and each activation's source, from
/// `project` and `state` (if there is one yet; `state_url` as shown).
pub async fn check_project(
    project: &Project,
    state: Option<&State>,
    state_url: &str,
    only: &[String],
) -> ProjectCheck {
    let mut checked = ProjectCheck {
        ok: true,
        state: State::masked(state_url),
        problems: Vec::new(),
        destinations: Vec::new(),
        activations: Vec::new(),
    };
    let names: Vec<String> = if only.is_empty() {
        project.activations.keys().cloned().collect()
    } else {
        only.to_vec()
    };
    checked.problems = project
        .problems
        .iter()
        .filter(|p| only.is_empty() || concerns(p, project, only))
        .map(ToString::to_string)
        .collect();
    for name in only {
        if !project.activations.contains_key(name) && checked.problems.is_empty() {
            let known: Vec<&str> = project.activations.keys().map(String::as_str).collect();
            checked.problems.push(format!(
                "no activation named `{name}`; defined: {}",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ));
        }
    }
    let selected: Vec<&Activation> = names
        .iter()
        .filter_map(|n| project.activations.get(n))
        .collect();
    let mut destination_names: Vec<&str> = Vec::new();
    for activation in &selected {
        if !destination_names.contains(&activation.destination.as_str()) {
            destination_names.push(&activation.destination);
        }
    }
    if only.is_empty() {
        // Every destination, also those no activation uses yet.
        for name in project.destinations.keys() {
            if !destination_names.contains(&name.as_str()) {
                destination_names.push(name);
            }
        }
    }
    for name in destination_names {
        let destination = &project.destinations[name];
        let users: Vec<&Activation> = selected
            .iter()
            .copied()
            .filter(|a| a.destination == name)
            .collect();
        checked
            .destinations
            .push(check_destination(destination, &users).await);
    }
    for activation in selected {
        let destination = &project.destinations[&activation.destination];
        checked
            .activations
            .push(check_activation(state, activation, destination).await);
    }
    // What a destination found of an activation's own settings is the activation's.
    let found: Vec<(String, String)> = checked
        .destinations
        .iter()
        .flat_map(|d| d.activation_problems.clone())
        .collect();
    for (name, problem) in found {
        if let Some(a) = checked.activations.iter_mut().find(|a| a.name == name) {
            a.problems.push(problem);
        }
    }
    checked.ok = checked.problems.is_empty()
        && checked
            .destinations
            .iter()
            .all(|d| d.report.problems.is_empty())
        && checked.activations.iter().all(|a| a.problems.is_empty());
    checked
}

/// The lines of `retl check`'s text that tell an activation's source.
fn source_lines(out: &mut String, source: Option<&SourceCheck>) {
    if let Some(source) = source {
        let columns: Vec<String> = source
            .columns
            .iter()
            .map(|c| format!("{} {}", c.name, c.db_type))
            .collect();
        let _ = writeln!(
            out,
            "  source: {}, {}: {}",
            source.connection,
            source.model,
            columns.join(", ")
        );
        if let Some(table) = &source.key_table {
            let _ = writeln!(
                out,
                "  diff: warehouse, key table {table} ({})",
                if source.key_table_exists == Some(true) {
                    "there"
                } else {
                    "made by the next run"
                }
            );
        }
    }
}

impl ProjectCheck {
    /// What `retl check` prints for people: what was checked, and every
    /// problem (`config_dir`: where activations are looked for).
    pub fn text(&self, config_dir: &Path) -> String {
        text(self, config_dir)
    }
}

/// What stands for an activation besides its next run: an open approval,
/// rows failing or needing a person, its allowances.
fn standing(out: &mut String, a: &crate::check::ActivationCheck) {
    if let Some(approval) = &a.approval {
        let _ = writeln!(out, "  {}", crate::approval_text(approval));
    }
    let attention = &a.attention;
    if attention.failing > 0 {
        let _ = writeln!(
            out,
            "  rows failing: {} since {} (retried by each run until retry.give_up_after; last error: {})",
            attention.failing,
            attention.failing_since.as_deref().unwrap_or("?"),
            attention.last_error.as_deref().unwrap_or("none recorded")
        );
    }
    if attention.uncertain + attention.given_up > 0 {
        let _ = writeln!(
            out,
            "  rows needing a person: {} uncertain, {} given up (`retl runs find`, `retl runs settle`, `retl runs resend`)",
            attention.uncertain, attention.given_up
        );
    }
    for allowance in &a.allowances {
        let _ = writeln!(
            out,
            "  allowance of {}: {} of {} left this month",
            allowance.of,
            allowance.left(),
            allowance.limit
        );
    }
}

fn text(checked: &ProjectCheck, config_dir: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "state: {}", checked.state);
    for problem in &checked.problems {
        let _ = writeln!(out, "problem: {problem}");
    }
    for d in &checked.destinations {
        let status = if d.report.problems.is_empty() {
            "ok"
        } else {
            "problems"
        };
        let _ = writeln!(out, "destination {}: {status}", d.name);
        for line in &d.report.lines {
            let _ = writeln!(out, "  {line}");
        }
        for problem in &d.report.problems {
            let _ = writeln!(out, "destination {}: {problem}", d.name);
        }
    }
    for a in &checked.activations {
        let status = if a.problems.is_empty() {
            "ok"
        } else {
            "problems"
        };
        let _ = writeln!(out, "{}: {status}", a.name);
        let _ = writeln!(out, "  destination: {}", a.destination);
        source_lines(&mut out, a.source.as_ref());
        if let Some(first) = &a.first_run {
            if first.pending {
                let _ = writeln!(
                    out,
                    "  first run: pending ({}): the model has {} row(s); it would send {}",
                    first.mode,
                    first.rows.map_or_else(|| "?".to_owned(), |n| n.to_string()),
                    first
                        .would_send
                        .map_or_else(|| "?".to_owned(), |n| n.to_string()),
                );
            } else {
                let _ = writeln!(out, "  first run: done (a run has completed)");
            }
        }
        let _ = writeln!(
            out,
            "  schedule: {}{}",
            a.schedule,
            a.next_run
                .as_deref()
                .map(|at| format!(", next run {at}"))
                .unwrap_or_default()
        );
        let unforeseen = a.warnings.iter().any(|w| w.starts_with(PREVIEW_FAILED));
        match &a.next_run_refused {
            Some(why) => {
                let _ = writeln!(out, "  next run: would be refused: {why}");
            }
            // Nothing can be said of a run that could not be previewed.
            None if unforeseen || !a.problems.is_empty() => {
                let _ = writeln!(
                    out,
                    "  next run: not foreseen (the problems and warnings below say why)"
                );
            }
            None => {
                let _ = writeln!(out, "  next run: no safety limit would refuse it");
            }
        }
        standing(&mut out, a);
        for warning in &a.warnings {
            let _ = writeln!(out, "  warning: {warning}");
        }
        for problem in &a.problems {
            let _ = writeln!(out, "{}: {problem}", a.name);
        }
    }
    if checked.destinations.is_empty()
        && checked.activations.is_empty()
        && checked.problems.is_empty()
    {
        let _ = writeln!(
            out,
            "no activations in {}",
            config_dir.join("activations").display()
        );
    }
    out
}
