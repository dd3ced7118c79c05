//! `retl templates`: a business unit's invitation templates.

use retl_engine::config::{ConfigErrors, Problem};

use crate::exit::Exit;
use crate::{Ctx, Failure, output};

/// `retl templates`.
pub(crate) async fn templates(
    ctx: &Ctx,
    name: &str,
    business_unit: Option<String>,
    json: bool,
) -> Result<Exit, Failure> {
    let project = ctx.project()?;
    let Some(destination) = project.destinations.get(name) else {
        let mut problems = project.problems.clone();
        problems.push(Problem::general(format!(
            "no destination named `{name}`; defined: {}",
            project
                .destinations
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
        return Err(ConfigErrors(problems).into());
    };
    let Some(trustpilot) = destination.get::<retl_trustpilot::Destination>() else {
        return Err(Failure::usage(anyhow::anyhow!(
            "destination `{name}` is of type `{}`: templates are Trustpilot's (type: trustpilot)",
            destination.type_name()
        )));
    };
    let Some(business_unit) =
        business_unit.or_else(|| trustpilot.defaults.business_unit_id.clone())
    else {
        return Err(Failure::usage(anyhow::anyhow!(
            "destination `{name}` has no defaults.business_unit_id: pass --business-unit"
        )));
    };
    let state = ctx.state().await?;
    let fail = |error: retl_trustpilot::Error| {
        let fatal = error.class() == retl_trustpilot::ErrorClass::Fatal;
        let failure =
            Failure::from(anyhow::Error::from(error).context(format!("destination `{name}`")));
        if fatal {
            Failure::usage(failure.error)
        } else {
            failure
        }
    };
    let client = retl_trustpilot::Client::new(trustpilot.client_config(state.token_cache()))
        .map_err(fail)?;
    let templates = client.templates(&business_unit).await.map_err(fail)?;
    if json {
        println!("{}", serde_json::to_string(&templates)?);
    } else {
        output::print_human(&output::templates_table(&templates));
    }
    Ok(Exit::Ok)
}
