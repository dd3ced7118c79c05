//! The destination's healthcheck: what `retl check` verifies with Trustpilot.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use crate::Settings;
use crate::config::Destination;
use crate::{Client, ErrorClass};

/// What a check of a destination found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Whether a fresh access token was minted with the credentials.
    pub token_minted: bool,
    /// Each business unit the destination's defaults and the checked
    /// activations send to.
    pub business_units: Vec<BusinessUnit>,
    /// Every problem found.
    pub problems: Vec<String>,
}

/// A business unit as Trustpilot describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BusinessUnit {
    /// Its id.
    pub id: String,
    /// Its display name, when Trustpilot gives one.
    pub name: Option<String>,
    /// Its invitation templates (id and name).
    pub templates: Vec<TemplateRef>,
}

/// A template, briefly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateRef {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// Mints a fresh token for `destination`, then, for the business unit of its
/// defaults and of each of `activations` (the settings they send with):
/// reads its name, lists its templates and checks that the template ids
/// among those settings are among them. Every problem is in the report.
/// `token_cache` is normally `None`: a check mints a new token to prove the
/// credentials.
pub async fn check_destination(
    destination: &Destination,
    activations: &[Settings],
    token_cache: Option<&Path>,
) -> Report {
    let mut report = Report::default();
    let client = match Client::new(destination.client_config(token_cache)) {
        Ok(client) => client,
        Err(e) => {
            report.problems.push(e.to_string());
            return report;
        }
    };
    if let Err(e) = client.authenticate().await {
        report.problems.push(format!("no token: {e}"));
        return report;
    }
    report.token_minted = true;
    let mut wanted: Vec<(String, BTreeSet<String>)> = Vec::new();
    let mut settings = vec![destination.defaults.clone()];
    settings.extend(activations.iter().cloned());
    for s in &settings {
        let Some(bu) = s.business_unit_id.clone() else {
            continue;
        };
        let templates: BTreeSet<String> = [&s.service.template_id, &s.product.template_id]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        match wanted.iter_mut().find(|(b, _)| *b == bu) {
            Some((_, set)) => set.extend(templates),
            None => wanted.push((bu, templates)),
        }
    }
    for (bu, template_ids) in wanted {
        let mut unit = BusinessUnit {
            id: bu.clone(),
            ..BusinessUnit::default()
        };
        match client.templates(&bu).await {
            Ok(templates) => {
                unit.templates = templates
                    .iter()
                    .map(|t| TemplateRef {
                        id: t.id.clone(),
                        name: t.name.clone(),
                    })
                    .collect();
                for id in template_ids {
                    if !templates.iter().any(|t| t.id == id) {
                        let known: Vec<String> = templates
                            .iter()
                            .map(|t| format!("{} ({})", t.id, t.name))
                            .collect();
                        report.problems.push(format!(
                            "business unit `{bu}` has no template `{id}`; its templates: {}",
                            if known.is_empty() {
                                "none".to_owned()
                            } else {
                                known.join(", ")
                            }
                        ));
                    }
                }
            }
            Err(e) if e.api().is_some_and(|api| api.status == 404) => {
                report.problems.push(format!(
                    "business unit `{bu}` not found (or wrong endpoints): {e}"
                ));
            }
            Err(e) if e.class() == ErrorClass::Fatal => {
                // Bad credentials concern every business unit: say it once.
                report.problems.push(e.to_string());
                report.business_units.push(unit);
                break;
            }
            Err(e) => report.problems.push(format!("business unit `{bu}`: {e}")),
        }
        // The name is informative: a failure to read it is not a problem.
        match client.business_unit_name(&bu).await {
            Ok(name) => unit.name = name,
            Err(e) => tracing::debug!(error = %e, business_unit = %bu, "no business unit name"),
        }
        report.business_units.push(unit);
    }
    report
}

impl From<Report> for retl_destination::Report {
    /// The report as `retl check` shows it: a line for the token and for
    /// each business unit, and `token_minted` and `business_units` in JSON.
    fn from(report: Report) -> Self {
        let mut lines = Vec::new();
        if report.token_minted {
            lines.push("token minted".to_owned());
        }
        for bu in &report.business_units {
            let name = bu
                .name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            let templates: Vec<String> = bu
                .templates
                .iter()
                .map(|t| format!("{} ({})", t.id, t.name))
                .collect();
            lines.push(format!(
                "business unit {}{name}: {} template(s){}{}",
                bu.id,
                templates.len(),
                if templates.is_empty() { "" } else { ": " },
                templates.join(", ")
            ));
        }
        let mut fields = serde_json::Map::new();
        fields.insert("token_minted".to_owned(), report.token_minted.into());
        fields.insert(
            "business_units".to_owned(),
            serde_json::to_value(&report.business_units).unwrap_or_default(),
        );
        retl_destination::Report {
            lines,
            fields,
            problems: report.problems,
            deliveries: Vec::new(),
        }
    }
}
