//! `retl schedule`: the daemon (`retl-daemon`), started with this
//! program's configuration, state and signals.

use std::path::Path;

use retl_engine::config::{ConfigErrors, Project};

use crate::exit::Exit;
use crate::{Ctx, Failure, notice};

impl retl_daemon::Host for Ctx {
    fn project(&self) -> Result<Project, ConfigErrors> {
        self.load_project()
    }

    fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    fn state_url(&self) -> &str {
        &self.state_url
    }

    fn notice(&self, message: &str) {
        notice(message);
    }

    fn registry(&self) -> &retl_engine::config::Registry {
        &self.registry
    }
}

/// `retl schedule`.
pub(crate) async fn schedule(ctx: &Ctx, args: &retl_daemon::ScheduleArgs) -> Result<Exit, Failure> {
    crate::TIMESTAMPS.store(true, std::sync::atomic::Ordering::Relaxed);
    let state = ctx.state().await?;
    // The web side reads through a pool of its own: a flood of page or API
    // requests waits for its two connections, never for the runs'.
    let web_state = ctx.state_with(2).await?;
    let cancel = retl_engine::Cancel::default();
    let stop = tokio::spawn(super::run::on_signal(cancel.clone()));
    let served = retl_daemon::serve(ctx, args, state, web_state, cancel).await;
    stop.abort();
    match served {
        Ok(()) => Ok(Exit::Ok),
        Err(retl_daemon::Error::Usage(message)) => Err(Failure::usage(anyhow::anyhow!(message))),
        Err(retl_daemon::Error::Config(errors)) => Err(errors.into()),
        Err(e) => Err(Failure::from(anyhow::Error::from(e))),
    }
}
