//! `retl check`: what can be verified before a run, with IO.

use std::collections::BTreeSet;
use std::path::Path;

use retl_mapping::Mapper;
use retl_source::Source;
use retl_trustpilot::{Client, ClientConfig, ErrorClass};

use crate::config::{Activation, Destination};
use crate::{Error, Result};

/// A client for `destination`, caching its token in `token_cache`.
pub fn client(destination: &Destination, token_cache: Option<&Path>) -> Result<Client> {
    let mut config = ClientConfig::new(
        destination.endpoints.clone(),
        destination.credentials.clone(),
    );
    config.timeout = destination.request_timeout;
    config.rate_limits.clone_from(&destination.rate_limits);
    config.token_cache = token_cache.map(Into::into);
    Client::new(config).map_err(|error| Error::Destination {
        destination: destination.name.clone(),
        error,
    })
}

/// Mints a token for `destination` and checks, for the business unit of each of
/// `activations` (and of its defaults), that it exists and that the template ids
/// configured for it are among its templates. Returns every problem found.
pub async fn check_destination(
    destination: &Destination,
    activations: &[&Activation],
    token_cache: Option<&Path>,
) -> Vec<String> {
    let client = match client(destination, token_cache) {
        Ok(client) => client,
        Err(e) => return vec![e.to_string()],
    };
    let mut wanted: Vec<(String, BTreeSet<String>)> = Vec::new();
    let mut settings = vec![("defaults".to_owned(), destination.defaults.clone())];
    for activation in activations {
        settings.push((
            format!("activation `{}`", activation.name),
            destination.defaults.overlay(&activation.target),
        ));
    }
    for (_, s) in &settings {
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

/// Connects to the activation's source and checks that every key and mapped
/// column exists and has a type the mapping can use. Reads no row.
pub async fn check_source(activation: &Activation, destination: &Destination) -> Result<()> {
    let name = activation.name.as_str();
    let schema = Source::describe(&activation.source_spec())
        .await
        .map_err(|error| Error::Source {
            activation: name.to_owned(),
            error,
        })?;
    let settings = destination.defaults.overlay(&activation.target);
    Mapper::new(settings, &activation.mapping, &schema).map_err(|e| Error::Mapping {
        activation: name.to_owned(),
        message: e.to_string(),
    })?;
    Ok(())
}
