//! `retl preview` (and `retl run --dry-run`): what a run would do, done by none of it.

use crate::args::Show;
use crate::exit::Exit;
use crate::{Ctx, Failure};

/// `retl preview`.
pub(crate) async fn preview(
    ctx: &Ctx,
    name: &str,
    options: retl_engine::RunOptions,
    json: bool,
    show: Show,
) -> Result<Exit, Failure> {
    let project = ctx.load(name)?;
    let (activation, destination) = project.activation(name)?;
    // A state database that does not exist yet is not created for a preview:
    // an empty one, thrown away afterwards, stands in for it.
    let scratch = tempfile_state()?;
    let state = match ctx.state_if_present().await? {
        Some(state) => state,
        None => retl_state::State::open(&scratch.url).await?,
    };
    let preview = retl_engine::preview(&state, activation, destination, &options).await;
    drop(state);
    let preview = preview?;
    if json {
        let mut value = serde_json::to_value(&preview)?;
        value["state"] = serde_json::Value::String(retl_state::State::masked(&ctx.state_url));
        println!("{}", serde_json::to_string(&value)?);
    } else {
        let shown = match show {
            Show::All => None,
            Show::First(n) => Some(n),
        };
        crate::output::print_human(&preview.text(shown));
    }
    Ok(Exit::Ok)
}

/// A scratch state file in the temporary directory, removed when dropped.
struct Scratch {
    dir: std::path::PathBuf,
    url: String,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tempfile_state() -> Result<Scratch, Failure> {
    let dir = std::env::temp_dir().join(format!(
        "retl-preview-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir).map_err(anyhow::Error::from)?;
    let url = format!("sqlite://{}", dir.join("state.db").display());
    Ok(Scratch { dir, url })
}
