//! `retl`: reverse-ETL from a warehouse to Trustpilot review invitations.
//!
//! This file dispatches the command line (`args`) and maps outcomes to the
//! documented exit codes; each command's body lives in its own module of
//! [`commands`].
//! The emulator (`retl emulator`, `retl demo`) is behind the default cargo
//! feature `emulator`: `cargo build --no-default-features` gives a binary
//! without axum.

mod args;
mod commands;
mod ctx;
mod exit;
mod logging;
mod output;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use args::{AlertsCommand, Cli, Command, LogFormat};
use clap::Parser as _;
use ctx::Ctx;
use exit::Exit;
use retl_engine::Finished;
use retl_engine::config::{ConfigErrors, Environment};
use retl_state::RunStatus;

/// A failure with its exit code.
pub(crate) struct Failure {
    code: Exit,
    error: anyhow::Error,
}

impl Failure {
    /// The error and its causes, each said once (a library's message often
    /// quotes its cause already).
    pub(crate) fn text(&self) -> String {
        let mut text = String::new();
        for (i, cause) in self.error.chain().enumerate() {
            let said = cause.to_string();
            if i == 0 {
                text = said;
            } else if !text.contains(&said) {
                text.push_str(": ");
                text.push_str(&said);
            }
        }
        text
    }

    /// A usage error ([`Exit::Config`]).
    pub(crate) fn usage(error: anyhow::Error) -> Failure {
        Failure {
            code: Exit::Config,
            error,
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        let error = error.into();
        let engine = error.downcast_ref::<retl_engine::Error>();
        let code = if engine.is_some_and(retl_engine::Error::is_locked) {
            Exit::Locked
        } else if error.downcast_ref::<ConfigErrors>().is_some()
            || engine.is_some_and(retl_engine::Error::is_config)
        {
            Exit::Config
        } else {
            Exit::Failed
        };
        Failure { code, error }
    }
}

/// Whether stderr carries JSON lines only (`--log-format json`).
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether notices start with the time (the daemon's: its log runs for weeks).
pub(crate) static TIMESTAMPS: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Whether only summaries are printed (`retl run --quiet`).
pub(crate) static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Tells the user something on stderr: a plain line, or in JSON log mode a
/// JSON log line, so that every line on stderr is then JSON.
pub(crate) fn notice(message: &str) {
    if QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(target: "retl", "{message}");
    } else if TIMESTAMPS.load(std::sync::atomic::Ordering::Relaxed) {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        eprintln!("{now} {message}");
    } else {
        eprintln!("{message}");
    }
}

fn init_logging(cli: &Cli) {
    let quiet = cli.quiet;
    if quiet {
        QUIET.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let default = match cli.verbose {
        _ if quiet => "error",
        // A long run's progress is an INFO event for machines to read.
        0 if matches!(cli.log_format, LogFormat::Json) => "warn,retl::progress=info",
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RETL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // No escape codes where no terminal reads them.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => {
            JSON_LOGS.store(true, std::sync::atomic::Ordering::Relaxed);
            builder
                .fmt_fields(logging::span_fields())
                .event_format(logging::FlatJson)
                .init();
        }
    }
}

/// A reader that stops early (`retl runs show … | head -1`) closes the pipe,
/// and `println!` then panics on the broken pipe. That is no error of
/// retl's: the process ends quietly with exit 0, as a Unix tool does on
/// SIGPIPE (Rust ignores SIGPIPE, and restoring it takes `unsafe`, which
/// this crate forbids).
fn quiet_on_broken_pipe() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        report(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    #[cfg(feature = "emulator")]
    let emulator = std::env::args_os()
        .nth(1)
        .is_some_and(|first| first == "emulator")
        .then(|| args::EmulatorCommand::parse_from(std::env::args_os().skip(1)));
    #[cfg(feature = "emulator")]
    let cli = match emulator {
        Some(emulator) => Cli {
            command: Command::Emulator(emulator.args),
            ..Cli::parse_from(["retl", "emulator"])
        },
        None => Cli::parse(),
    };
    #[cfg(not(feature = "emulator"))]
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Failed.into();
        }
    };
    let result = runtime.block_on(dispatch(cli));
    // Everything retl waited for has ended; a driver's call that outlived its
    // timeout on a blocking thread (an ADBC driver cannot be interrupted) is
    // not waited for.
    runtime.shutdown_background();
    match result {
        Ok(code) => code.into(),
        Err(failure) => {
            if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
                tracing::error!(target: "retl", exit_code = failure.code.code(), "{}", failure.text());
            } else {
                eprintln!("error: {}", failure.text());
            }
            failure.code.into()
        }
    }
}

/// The kinds of destination this binary knows: each one line here (see
/// "Adding a destination" in docs/architecture.md).
pub(crate) fn registry() -> retl_engine::config::Registry {
    retl_engine::config::Registry::new().with::<retl_trustpilot::Destination>()
}

/// The state database's URL: `--state`, else `RETL_STATE_URL` (the
/// target's, which wins over the process environment's, then the env
/// file's), else the default beside the configuration. A target of its own
/// state keeps what was sent to one Trustpilot from answering for another.
fn state_url(flag: Option<String>, environment: &Environment) -> String {
    flag.or_else(|| environment.get("RETL_STATE_URL"))
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_STATE.to_owned())
}

/// Where the state is kept when nothing else says.
const DEFAULT_STATE: &str = "sqlite://.retl/state.db";

#[allow(clippy::too_many_lines)] // one arm per command: the table of what each command runs
async fn dispatch(cli: Cli) -> Result<Exit, Failure> {
    let environment = match cli.command {
        #[cfg(feature = "emulator")]
        Command::Emulator(_) | Command::Demo { .. } => Environment::process(),
        Command::Init { .. }
        | Command::Schema { .. }
        | Command::Completions { .. }
        | Command::Man => Environment::process(),
        _ => Environment::load(
            &cli.config_dir,
            cli.env_file.as_deref(),
            cli.target.as_deref(),
        )?,
    };
    // The project is the directory holding the configuration directory; the
    // state lives there, wherever retl is started from (cron starts it in $HOME).
    let config_dir = std::path::absolute(&cli.config_dir).unwrap_or(cli.config_dir);
    let project = config_dir
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    let ctx = Ctx {
        state_url: retl_state::resolve_url(&state_url(cli.state, &environment), &project),
        config_dir,
        busy_timeout: cli.state_busy_timeout,
        state_timeout: cli.state_timeout,
        clock_offset: cli.clock_offset,
        environment,
        secrets: std::sync::Mutex::default(),
        registry: registry(),
    };
    // Whatever goes wrong is said with the configuration's secrets masked.
    let result: Result<Exit, Failure> = async {
        match cli.command {
            Command::Preview {
                activation,
                json,
                limit,
                show,
            } => {
                let options = retl_engine::RunOptions {
                    limit,
                    ..retl_engine::RunOptions::default()
                };
                commands::preview::preview(&ctx, &activation, options, json, show).await
            }
            Command::Baseline {
                activation,
                dry_run,
                json,
            } => {
                if dry_run {
                    let options = retl_engine::RunOptions {
                        baseline: true,
                        ..retl_engine::RunOptions::default()
                    };
                    return commands::preview::preview(
                        &ctx,
                        &activation,
                        options,
                        json,
                        args::Show::First(0),
                    )
                    .await;
                }
                let run = commands::run::RunArgs {
                    json,
                    quiet: QUIET.load(std::sync::atomic::Ordering::Relaxed),
                    lease_seconds: 60,
                    limit: None,
                    allow: commands::run::Allow::default(),
                    hold: None,
                    key_flush_rows: None,
                    key_push_rows: None,
                    baseline: true,
                };
                commands::run::run(&ctx, &[activation], &run).await
            }
            Command::Run {
                activations,
                all,
                json,
                lease_seconds,
                limit,
                allow_surge,
                allow_shared_source,
                destination_moved,
                dry_run,
                hold_at,
                key_flush_rows,
                key_push_rows,
            } => {
                let names = if all {
                    ctx.project()?.activations.keys().cloned().collect()
                } else {
                    activations
                };
                if dry_run {
                    let mut worst = Exit::Ok;
                    for name in &names {
                        let options = retl_engine::RunOptions {
                            limit,
                            ..retl_engine::RunOptions::default()
                        };
                        let code = commands::preview::preview(
                            &ctx,
                            name,
                            options,
                            json,
                            args::Show::First(20),
                        )
                        .await?;
                        if code.severity() > worst.severity() {
                            worst = code;
                        }
                    }
                    return Ok(worst);
                }
                let run = commands::run::RunArgs {
                    json,
                    quiet: QUIET.load(std::sync::atomic::Ordering::Relaxed),
                    lease_seconds,
                    limit,
                    allow: commands::run::Allow {
                        surge: allow_surge,
                        shared_source: allow_shared_source,
                        destination_moved,
                    },
                    hold: hold_at,
                    baseline: false,
                    key_flush_rows,
                    key_push_rows,
                };
                commands::run::run(&ctx, &names, &run).await
            }
            Command::Schedule {
                listen,
                listen_public,
                api_token_file,
                allowed_hosts,
                header_timeout,
                max_connections,
            } => {
                let args = retl_daemon::ScheduleArgs {
                    listen,
                    listen_public,
                    api_token_file,
                    allowed_hosts,
                    limits: retl_daemon::ServeLimits {
                        header_timeout,
                        max_connections,
                    },
                };
                commands::schedule::schedule(&ctx, &args).await
            }
            Command::Approve {
                activation,
                run,
                ahead,
                valid_for,
                revoke,
                by,
                json,
            } => {
                use retl_engine::approvals::Approve;
                let how = match (revoke, ahead) {
                    (true, _) => Approve::Revoke,
                    (false, true) => Approve::Ahead(valid_for),
                    (false, false) => Approve::Answer(run),
                };
                commands::approve::approve(&ctx, &activation, how, by, json).await
            }
            Command::Rename { old, new, json } => {
                commands::rename::rename(&ctx, &old, &new, json).await
            }
            Command::Init { dir } => commands::init::init(&dir),
            Command::Schema { kind } => {
                use retl_engine::config::schema::{all, schema};
                let registry = registry();
                let value = kind.map_or_else(|| all(&registry), |kind| schema(kind, &registry));
                println!("{}", serde_json::to_string_pretty(&value)?);
                Ok(Exit::Ok)
            }
            Command::Check { activations, json } => {
                commands::check::check(&ctx, &activations, json).await
            }
            Command::Dbt {
                command: args::DbtCommand::Exposures { out },
            } => {
                let text = retl_engine::dbt::exposures(&ctx.project()?);
                match out {
                    Some(file) => std::fs::write(&file, text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?,
                    None => print!("{text}"),
                }
                Ok(Exit::Ok)
            }
            Command::Completions { shell } => {
                use clap::CommandFactory as _;
                let mut command = Cli::command();
                clap_complete::generate(shell, &mut command, "retl", &mut std::io::stdout());
                Ok(Exit::Ok)
            }
            Command::Man => {
                use clap::CommandFactory as _;
                match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                    // A reader that stops early (`| head`) is not an error.
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                        Err(anyhow::Error::from(e).into())
                    }
                    _ => Ok(Exit::Ok),
                }
            }
            Command::Templates {
                destination,
                business_unit,
                json,
            } => commands::templates::templates(&ctx, &destination, business_unit, json).await,
            Command::Runs { command } => commands::runs::runs(&ctx, command).await,
            Command::Forget {
                email,
                destination,
                dry_run,
                json,
            } => {
                commands::forget::forget(&ctx, &email, destination.as_deref(), dry_run, json).await
            }
            Command::Alerts {
                command: AlertsCommand::Test { json },
            } => commands::alerts::test(&ctx, json).await,
            #[cfg(feature = "emulator")]
            Command::Emulator(args) => {
                retl_trustpilot_emulator::command::run(args).await?;
                Ok(Exit::Ok)
            }
            #[cfg(feature = "emulator")]
            Command::Demo { keep } => Box::pin(commands::demo::demo(keep.as_deref())).await,
        }
    }
    .await;
    result.map_err(|failure| ctx.masked(failure))
}

/// The exit code of a finished run.
pub(crate) fn exit_code(finished: &Finished) -> Result<Exit, Failure> {
    if let Some(failure) = &finished.failure {
        let code = if failure.is_refused() {
            Exit::Refused
        } else if failure.is_config() {
            Exit::Config
        } else {
            Exit::Failed
        };
        return Err(Failure {
            code,
            // The summary's error: the failure with its causes, its secrets masked.
            error: anyhow::anyhow!(
                "run {} failed: {}",
                finished.summary.run_id,
                finished
                    .summary
                    .error
                    .clone()
                    .unwrap_or_else(|| failure.to_string())
            ),
        });
    }
    if finished.summary.status == RunStatus::Interrupted {
        return Ok(Exit::Interrupted);
    }
    Ok(if finished.needs_attention() {
        Exit::Attention
    } else {
        Exit::Ok
    })
}
