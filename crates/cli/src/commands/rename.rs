//! `retl rename OLD NEW`: an activation's history under its new name.

use std::time::Duration;

use crate::exit::Exit;
use crate::{Ctx, Failure};

/// How long the two leases last while the history moves (one transaction).
const LEASE: Duration = Duration::from_mins(1);

/// `retl rename`.
pub(crate) async fn rename(ctx: &Ctx, old: &str, new: &str, json: bool) -> Result<Exit, Failure> {
    if old == new {
        return Err(Failure::usage(anyhow::anyhow!(
            "`{old}` and `{new}` are one name: nothing to move"
        )));
    }
    let state = ctx.state().await?;
    let moved = match state.rename_activation(old, new, LEASE).await {
        Ok(moved) => moved,
        Err(e @ retl_state::Error::Rename(_)) => return Err(Failure::usage(e.into())),
        Err(e) => return Err(e.into()),
    };
    if json {
        println!(
            "{}",
            serde_json::json!({"old": old, "new": new, "moved": moved})
        );
    } else {
        println!(
            "moved the history of `{old}` to `{new}`: {} ledger entries, {} blocks of settled keys, {} runs, {} cursor",
            moved.ledger, moved.key_segments, moved.runs, moved.cursors
        );
        let known = ctx
            .project()
            .ok()
            .is_some_and(|p| p.activations.contains_key(new));
        if !known {
            println!(
                "note: no activation `{new}` is configured yet: rename its file (or its `name:`) too"
            );
        }
    }
    Ok(Exit::Ok)
}
