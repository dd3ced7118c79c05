//! `retl check`: the configuration, each destination and each source, without sending.

use retl_engine::config::Activation;

use crate::{Ctx, Failure};

/// `retl check`.
pub(crate) async fn check(ctx: &Ctx, only: Option<&str>) -> Result<u8, Failure> {
    let config_dir = ctx.config_dir();
    let project = ctx.project()?;
    let mut problems = 0;
    for problem in &project.problems {
        println!("problem: {problem}");
        problems += 1;
    }
    let names: Vec<&String> = match only {
        Some(name) if !project.activations.contains_key(name) => {
            if problems == 0
                && let Err(e) = project.activation(name)
            {
                println!(
                    "problem: {}",
                    e.0.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            }
            return Ok(2);
        }
        Some(name) => project
            .activations
            .keys()
            .filter(|n| n.as_str() == name)
            .collect(),
        None => project.activations.keys().collect(),
    };
    if names.is_empty() && problems == 0 {
        println!(
            "no activations in {}",
            config_dir.join("activations").display()
        );
    }
    let mut destinations: Vec<&str> = Vec::new();
    for name in &names {
        let (activation, _) = project.activation(name)?;
        if !destinations.contains(&activation.destination.as_str()) {
            destinations.push(&activation.destination);
        }
    }
    for name in destinations {
        let destination = &project.destinations[name];
        let users: Vec<&Activation> = names
            .iter()
            .filter_map(|n| project.activations.get(*n))
            .filter(|a| a.destination == name)
            .collect();
        // No token cache: a check mints a fresh token, to prove the credentials.
        let found = retl_engine::check_destination(destination, &users, None).await;
        if found.is_empty() {
            println!("destination {name}: ok");
        }
        for problem in found {
            println!("destination {name}: {problem}");
            problems += 1;
        }
    }
    for name in names {
        let (activation, destination) = project.activation(name)?;
        match retl_engine::check_source(activation, destination).await {
            Ok(()) => println!("{name}: ok"),
            Err(e) => {
                println!("{name}: {e}");
                problems += 1;
            }
        }
    }
    Ok(if problems == 0 { 0 } else { 2 })
}
