//! `retl preview` (and `retl run --dry-run`): what a run would do, done by none of it.

use std::fmt::Write as _;

use retl_engine::Preview;

use crate::args::Show;
use crate::exit::Exit;
use crate::{Ctx, Failure};

/// `retl preview`.
pub(crate) async fn preview(
    ctx: &Ctx,
    name: &str,
    limit: Option<u64>,
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
    let options = retl_engine::RunOptions {
        limit,
        ..retl_engine::RunOptions::default()
    };
    let preview = retl_engine::preview(&state, activation, destination, &options).await;
    drop(state);
    let preview = preview?;
    if json {
        let mut value = serde_json::to_value(&preview)?;
        value["state"] = serde_json::Value::String(retl_state::State::masked(&ctx.state_url));
        println!("{}", serde_json::to_string(&value)?);
    } else {
        crate::output::print_human(&render(&preview, show));
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

/// The preview as a person reads it.
fn render(p: &Preview, show: Show) -> String {
    let c = &p.counts;
    let mut out = format!(
        "preview of activation {} (nothing was sent or written)\n",
        p.activation
    );
    let _ = writeln!(
        out,
        "  read {}  new {}  would send {}  rejected {}  skipped {}  too_old {}",
        c.read, c.new, c.sent, c.rejected, c.skipped, c.too_old
    );
    let _ = writeln!(
        out,
        "  already_sent {}  already_rejected {}  ignored_changed {}  baseline {}",
        c.already_sent, c.already_rejected, c.ignored_changed, c.baseline
    );
    let _ = writeln!(
        out,
        "  suppressed {}  failed {}  uncertain {}  given_up {}  recovered {}  cursor_null {}  reshaped {}  writeback_failed {}",
        c.suppressed,
        c.failed,
        c.uncertain,
        c.given_up,
        c.recovered,
        c.cursor_null,
        c.reshaped,
        c.writeback_failed
    );
    if c.sent > 0 {
        let _ = match p.estimated_seconds {
            0 => writeln!(
                out,
                "  the sends fit in the rate windows: no wait at the configured pacing"
            ),
            secs => writeln!(
                out,
                "  sending would take about {} at the configured pacing",
                humantime_secs(secs)
            ),
        };
    }
    if let Some(refused) = &p.refused {
        let _ = writeln!(out, "  a run now would be {refused}");
    }
    let shown = match show {
        Show::All => p.invitations.len(),
        Show::First(n) => n.min(p.invitations.len()),
    };
    for invitation in &p.invitations[..shown] {
        let _ = writeln!(
            out,
            "\ninvitation for row {} (reference {})",
            invitation.key, invitation.reference
        );
        let body = serde_json::to_string_pretty(&invitation.body).unwrap_or_default();
        for line in body.lines() {
            let _ = writeln!(out, "  {line}");
        }
        let origins: Vec<String> = invitation
            .origins
            .iter()
            .map(|(path, from)| format!("{path} <- {from}"))
            .collect();
        let _ = writeln!(out, "  from: {}", origins.join(", "));
    }
    if shown < p.invitations.len() {
        let _ = writeln!(
            out,
            "\n({} more request bodies not shown: --show N or --show all lists them, --json gives them all)",
            p.invitations.len() - shown
        );
    }
    if p.invitations_truncated {
        let _ = writeln!(
            out,
            "\n(only the first {} invitations are kept; use --limit to bound the preview)",
            p.invitations.len()
        );
    }
    if !p.rejections.is_empty() {
        let _ = writeln!(out, "\nrows that would be rejected:");
        for r in &p.rejections {
            let _ = writeln!(
                out,
                "  {} (reference {}): {}",
                r.key,
                r.reference.as_deref().unwrap_or("-"),
                r.reason
            );
        }
    }
    out
}

fn humantime_secs(seconds: u64) -> String {
    let minutes = seconds / 60;
    match (minutes / 60, minutes % 60, seconds % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}
