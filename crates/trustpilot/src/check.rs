//! The destination's healthcheck: what `retl check` verifies with Trustpilot.

use std::collections::BTreeSet;
use std::path::Path;

use crate::config::{Destination, Target};
use crate::{Client, ErrorClass};

/// Mints a token for `destination` and checks, for the business unit of each of
/// `targets` (and of its defaults), that it exists and that the template ids
/// configured for it are among its templates. Returns every problem found.
pub async fn check_destination(
    destination: &Destination,
    targets: &[&Target],
    token_cache: Option<&Path>,
) -> Vec<String> {
    let client = match Client::new(destination.client_config(token_cache)) {
        Ok(client) => client,
        Err(e) => return vec![e.to_string()],
    };
    let mut wanted: Vec<(String, BTreeSet<String>)> = Vec::new();
    let mut settings = vec![destination.defaults.clone()];
    settings.extend(targets.iter().map(|t| destination.settings_for(t)));
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
    let mut problems = Vec::new();
    for (bu, template_ids) in wanted {
        match client.templates(&bu).await {
            Ok(templates) => {
                for id in template_ids {
                    if !templates.iter().any(|t| t.id == id) {
                        let known: Vec<String> = templates
                            .iter()
                            .map(|t| format!("{} ({})", t.id, t.name))
                            .collect();
                        problems.push(format!(
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
                problems.push(format!(
                    "business unit `{bu}` not found (or wrong endpoints): {e}"
                ));
            }
            Err(e) if e.class() == ErrorClass::Fatal => {
                // Bad credentials concern every business unit: say it once.
                problems.push(e.to_string());
                break;
            }
            Err(e) => problems.push(format!("business unit `{bu}`: {e}")),
        }
    }
    problems
}
