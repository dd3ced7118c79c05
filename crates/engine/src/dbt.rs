//! `retl dbt exposures`: the activations that read dbt models, as a dbt
//! `exposures:` file, so that dbt's lineage shows where each model's rows go.

use std::fmt::Write as _;

use crate::config::Project;

/// The YAML of dbt's `exposures:` for every activation of `project` that
/// reads a dbt model (`source.dbt`): its name, owner (`owner:`, a name or an
/// email) and the model it depends on. Strings are written as JSON, which
/// YAML reads as they are.
pub fn exposures(project: &Project) -> String {
    let quoted = |text: &str| serde_json::Value::from(text).to_string();
    let mut out = String::from(
        "# Written by `retl dbt exposures`: each retl activation that reads a dbt model.\nversion: 2\nexposures:\n",
    );
    let mut any = false;
    for (name, activation) in &project.activations {
        let Some(model) = &activation.dbt else {
            continue;
        };
        any = true;
        let id: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let _ = writeln!(out, "  - name: retl_{id}");
        let _ = writeln!(out, "    label: {}", quoted(&format!("retl: {name}")));
        let _ = writeln!(out, "    type: application");
        let _ = writeln!(
            out,
            "    description: {}",
            quoted(&format!(
                "retl activation `{name}`: each new row of `{}` becomes a Trustpilot review invitation (destination `{}`)",
                model.name, activation.destination
            ))
        );
        let owner = activation.owner.as_deref().unwrap_or("retl");
        let field = if owner.contains('@') { "email" } else { "name" };
        let _ = writeln!(out, "    owner:\n      {field}: {}", quoted(owner));
        let _ = writeln!(
            out,
            "    depends_on:\n      - {}",
            quoted(&format!("ref('{}')", model.name))
        );
    }
    if !any {
        out.push_str("  []\n");
    }
    out
}
