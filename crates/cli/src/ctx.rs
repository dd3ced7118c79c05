//! What every command gets from the global options: the configuration
//! directory, the state database and where `${VAR}`s come from.

use std::path::Path;
use std::time::Duration;

use retl_engine::config::{Environment, Project};
use retl_state::{OpenOptions, State};

use crate::{Failure, notice};

/// What every command gets from the global options.
pub(crate) struct Ctx {
    /// `--config-dir`.
    pub config_dir: std::path::PathBuf,
    /// `--state`.
    pub state_url: String,
    /// `--state-busy-timeout`.
    pub busy_timeout: Duration,
    /// `--state-timeout`.
    pub state_timeout: Duration,
    /// Where `${VAR}`s come from (`--env-file`, `--target`).
    pub environment: Environment,
    /// `--clock-offset` (tests).
    pub clock_offset: Option<Duration>,
    /// The kinds of destination, with what their destinations share (made
    /// once: every load of the configuration reads through it).
    pub registry: retl_engine::config::Registry,
    /// The secrets of the configuration as loaded: whatever retl prints of
    /// an error passes through them ([`retl_config::Secrets::mask`]).
    pub secrets: std::sync::Mutex<retl_config::Secrets>,
}

impl Ctx {
    /// Opens the state database.
    pub(crate) async fn state(&self) -> Result<State, Failure> {
        self.state_with(OpenOptions::default().max_connections)
            .await
    }

    /// The state database, on a pool of at most `connections` connections.
    pub(crate) async fn state_with(&self, connections: u32) -> Result<State, Failure> {
        let mut options = OpenOptions {
            busy_timeout: self.busy_timeout,
            statement_timeout: self.state_timeout,
            max_connections: connections,
            ..OpenOptions::default()
        };
        if let Some(ahead) = self.clock_offset {
            options.clock = std::sync::Arc::new(retl_state::OffsetClock { ahead });
        }
        Ok(State::open_with(&self.state_url, &options).await?)
    }

    /// The state database if it exists already (a SQLite file that is not
    /// there yet is not created: nothing has run).
    pub(crate) async fn state_if_present(&self) -> Result<Option<State>, Failure> {
        if let Some(path) = self.state_url.strip_prefix("sqlite://")
            && !path.starts_with(":memory:")
            && !Path::new(path.split('?').next().unwrap_or(path)).exists()
        {
            return Ok(None);
        }
        self.state().await.map(Some)
    }

    /// Loads the configuration, warning about broken files that do not concern `activation`.
    pub(crate) fn load(&self, activation: &str) -> Result<Project, Failure> {
        let project = self.project()?;
        let (found, _) = project.activation(activation)?;
        if !project.problems.is_empty() {
            let others: Vec<String> = project.problems.iter().map(|p| format!("  {p}")).collect();
            notice(&format!(
                "warning: other configuration files have problems and were skipped (activation `{}` is fine):\n{}",
                found.name,
                others.join("\n")
            ));
        }
        Ok(project)
    }

    /// The configuration directory.
    pub(crate) fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// The whole configuration directory, with its problems.
    pub(crate) fn project(&self) -> Result<Project, Failure> {
        Ok(self.load_project()?)
    }

    /// The configuration, its secrets kept for masking what is printed.
    pub(crate) fn load_project(&self) -> Result<Project, retl_engine::config::ConfigErrors> {
        let project = Project::load_in(&self.config_dir, &self.environment, &self.registry)?;
        self.secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(&project.secrets);
        Ok(project)
    }

    /// `failure` with every secret of the configuration masked in its text
    /// (a driver's or a server's message may quote one).
    pub(crate) fn masked(&self, failure: Failure) -> Failure {
        let secrets = self
            .secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if secrets.is_empty() {
            return failure;
        }
        let text = failure.text();
        let masked = secrets.mask(&text);
        if masked == text {
            return failure;
        }
        Failure {
            code: failure.code,
            error: anyhow::anyhow!(masked),
        }
    }
}
