//! `retl check` and `retl templates`: what can be verified before a run, with IO.

use std::path::Path;

use retl_source::Source;
use retl_trustpilot::{Client, Invitations, Template};

use crate::config::{Activation, Delivery, Destination};
use crate::{Error, Result};

/// Mints a token for `destination` and checks, for the business unit of its
/// defaults and of each of `activations`, that it exists and has the template
/// ids configured for it. Returns every problem found.
pub async fn check_destination(
    destination: &Destination,
    activations: &[&Activation],
    token_cache: Option<&Path>,
) -> Vec<String> {
    match destination {
        Destination::Trustpilot(destination) => {
            let targets: Vec<&retl_trustpilot::Target> = activations
                .iter()
                .map(|a| match &a.delivery {
                    Delivery::Trustpilot { target, .. } => target,
                })
                .collect();
            retl_trustpilot::check::check_destination(destination, &targets, token_cache).await
        }
    }
}

/// The invitation templates of `business_unit` (default: the destination's
/// default business unit).
pub async fn templates(
    destination: &Destination,
    business_unit: Option<String>,
    token_cache: Option<&Path>,
) -> Result<Vec<Template>> {
    let Destination::Trustpilot(destination) = destination;
    let Some(business_unit) =
        business_unit.or_else(|| destination.defaults.business_unit_id.clone())
    else {
        return Err(Error::NoBusinessUnit {
            destination: destination.name.clone(),
        });
    };
    let fail = |error| Error::Destination {
        destination: destination.name.clone(),
        error,
    };
    let client = Client::new(destination.client_config(token_cache)).map_err(fail)?;
    client.templates(&business_unit).await.map_err(fail)
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
    let (Destination::Trustpilot(destination), Delivery::Trustpilot { target, mapping }) =
        (destination, &activation.delivery);
    Invitations::new(destination.settings_for(target), mapping, &schema).map_err(|e| {
        Error::Mapping {
            activation: name.to_owned(),
            message: e.to_string(),
        }
    })?;
    Ok(())
}
