//! `retl runs settle`: rows a run left `uncertain`, settled by a person who
//! looked in Trustpilot's own interface: as sent, or as not sent (new
//! again). Under the activation's lease, all the keys or none.

use std::time::Duration;

use retl_state::State;
use serde::Serialize;

use crate::{Error, Result};

/// What `retl runs settle` settled.
#[derive(Debug, Clone, Serialize)]
pub struct Settled {
    /// The run that left the rows uncertain.
    pub run_id: String,
    /// Its activation.
    pub activation: String,
    /// The keys settled.
    pub keys: Vec<String>,
    /// `sent` or `not_sent`.
    pub settled_as: &'static str,
    /// Who settled them.
    pub settled_by: String,
}

/// Settles the rows with `keys` that run `run_id` left uncertain, as sent
/// (`sent`) or not, recording `by`. A key the run did not leave uncertain
/// (or no longer is) settles nothing: an [`Error::Usage`] naming it.
pub async fn settle(
    state: &State,
    run_id: &str,
    keys: &[String],
    sent: bool,
    by: &str,
) -> Result<Settled> {
    let Some(run) = state.run(run_id).await? else {
        return Err(Error::Usage(format!(
            "no run with id `{run_id}` (see `retl runs list`)"
        )));
    };
    if keys.is_empty() {
        return Err(Error::Usage(
            "no key to settle: give --key or --keys-file".to_owned(),
        ));
    }
    let lease = state
        .acquire_lease(&run.activation, "settle", Duration::from_mins(1))
        .await?;
    let settled = async {
        let mut tx = state.fenced(&lease).await?;
        let mut missing = Vec::new();
        for key in keys {
            if !tx.settle_uncertain(run_id, key, sent, by).await? {
                missing.push(key.as_str());
            }
        }
        if !missing.is_empty() {
            return Err(Error::Usage(format!(
                "nothing settled: run {run_id} of `{}` left no uncertain row with key {} (see `retl runs show {run_id} --outcome uncertain`)",
                run.activation,
                missing.join(", ")
            )));
        }
        tx.commit().await?;
        Ok(())
    }
    .await;
    state.release_lease(&lease).await?;
    settled?;
    Ok(Settled {
        run_id: run_id.to_owned(),
        activation: run.activation,
        keys: keys.to_vec(),
        settled_as: if sent { "sent" } else { "not_sent" },
        settled_by: by.to_owned(),
    })
}
