//! `retl check`: what can be verified before a run, with IO.

use retl_mapping::Mapper;
use retl_source::Source;

use crate::config::{Activation, Destination};
use crate::{Error, Result};

/// Connects to the activation's source and checks that every key and mapped
/// column exists and has a type the mapping can use. Reads no row.
pub async fn check_source(activation: &Activation, destination: &Destination) -> Result<()> {
    let name = activation.name.as_str();
    let schema = Source::describe(&activation.source_spec())
        .await
        .map_err(|source| Error::Source {
            activation: name.to_owned(),
            source,
        })?;
    let settings = destination.defaults.overlay(&activation.target);
    Mapper::new(settings, &activation.mapping, &schema).map_err(|e| Error::Mapping {
        activation: name.to_owned(),
        message: e.to_string(),
    })?;
    Ok(())
}
