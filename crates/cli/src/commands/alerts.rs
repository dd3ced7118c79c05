//! `retl alerts test`: a test alert to each channel of `configs/alerts.yaml`.

use crate::exit::Exit;
use crate::{Ctx, Failure};

/// `retl alerts test`.
pub(crate) async fn test(ctx: &Ctx, json: bool) -> Result<Exit, Failure> {
    let project = ctx.project()?;
    let file = ctx
        .config_dir()
        .join(retl_engine::config::alerts::ALERTS_FILE);
    if !project.problems.is_empty() && project.alerts.is_none() && file.is_file() {
        return Err(retl_engine::config::ConfigErrors(project.problems).into());
    }
    let Some(alerts) = project.alerts.as_ref().filter(|a| !a.channels.is_empty()) else {
        return Err(Failure::usage(anyhow::anyhow!(
            "no alert channels: {} defines none",
            file.display()
        )));
    };
    let state = ctx.state().await?;
    let notifier = retl_alerts::Notifier::new(Some(alerts), None)
        .ok_or_else(|| anyhow::anyhow!("cannot build an HTTP client for the alerts"))?;
    let results = notifier.test(&state).await;
    let all_sent = results.iter().all(|(_, r)| r.is_ok());
    if json {
        let rows: Vec<serde_json::Value> = results
            .iter()
            .map(|(name, result)| {
                serde_json::json!({
                    "channel": name,
                    "type": alerts.channels[name].kind(),
                    "sent": result.is_ok(),
                    "error": result.as_ref().err(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        for (name, result) in &results {
            match result {
                Ok(()) => println!("{name} ({}): sent", alerts.channels[name].kind()),
                Err(why) => println!("{name}: failed: {why}"),
            }
        }
    }
    Ok(if all_sent { Exit::Ok } else { Exit::Failed })
}
