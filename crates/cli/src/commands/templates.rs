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
    let state = ctx.state().await?;
    let templates = retl_engine::templates(destination, business_unit, state.token_cache()).await?;
    if json {
        println!("{}", serde_json::to_string(&templates)?);
    } else {
        output::print_human(&output::templates_table(&templates));
    }
    Ok(Exit::Ok)
}
