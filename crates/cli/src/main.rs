//! `retl`: reverse-ETL from a warehouse to Trustpilot review invitations.
//!
//! The binary parses the command line, sets up logging, and hands over to
//! `retl-engine`; it maps outcomes to the documented exit codes.

// Doc comments on the argument types are `--help` text, shown as written.
#![allow(clippy::doc_markdown)]

mod demo;
mod output;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use retl_engine::config::{ConfigErrors, Project};
use retl_engine::{Finished, State};
use retl_trustpilot_emulator::{Emulator, EmulatorConfig};

const EXIT_CODES: &str = "\
Exit codes:
  0    the run completed (rejected rows included: they are bad data, recorded with their reason)
  1    anything else went wrong (source or state database unreachable, ...)
  2    configuration or usage error (the message names file:line:column and field)
  3    the run completed, but some rows failed (retried by the next run) or are uncertain
  4    another run of the activation is under way (its lease is held)
  130  interrupted (SIGINT or SIGTERM): requests under way were finished, the rest skipped";

/// Sync new warehouse rows to Trustpilot review invitations.
#[derive(Debug, Parser)]
#[command(name = "retl", version, about, after_help = EXIT_CODES)]
struct Cli {
    /// Directory holding destinations/*.yaml and activations/*.yaml.
    #[arg(long, global = true, default_value = "./configs", value_name = "DIR")]
    config_dir: PathBuf,
    /// State database (ledger and run logs); created on first use.
    #[arg(
        long,
        global = true,
        env = "RETL_STATE_URL",
        default_value = "sqlite://.retl/state.db",
        value_name = "URL"
    )]
    state: String,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// More log output (-v: info, -vv: debug). RETL_LOG overrides (e.g. RETL_LOG=retl_engine=debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an activation once: send every new row, then print a summary.
    #[command(after_help = EXIT_CODES)]
    Run {
        /// The activation's name.
        activation: String,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
        /// How long this run's lease on the activation lasts without renewal
        /// (renewed every third of it); a killed run's lease is taken over
        /// after this long, or at once on the same machine.
        #[arg(long, env = "RETL_LEASE_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
        lease_seconds: u64,
    },
    /// Check the configuration, each destination (a token is minted; the business
    /// units and template ids must exist) and each activation's source (every
    /// key and mapped column must exist, with a usable type). Reads no row and
    /// sends nothing. Exit code 2 on any problem.
    Check {
        /// Only this activation (default: all).
        activation: Option<String>,
    },
    /// List a business unit's invitation templates (to pick template ids).
    Templates {
        /// The destination whose credentials to use.
        destination: String,
        /// The business unit (default: the destination's defaults.business_unit_id).
        #[arg(long)]
        business_unit: Option<String>,
        /// Print JSON (an array of {id, name, isDefaultTemplate, locale, type}).
        #[arg(long)]
        json: bool,
    },
    /// Inspect run logs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Serve a local Trustpilot emulator (same endpoints, auth and validation).
    Emulator(EmulatorArgs),
    /// A self-contained demo: a SQLite warehouse, the emulator, two runs.
    Demo,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// The most recent runs, newest first.
    List {
        /// Only runs of this activation.
        #[arg(long)]
        activation: Option<String>,
        /// How many runs.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON (an array of run summaries).
        #[arg(long)]
        json: bool,
    },
    /// One run and the outcome of each of its rows.
    Show {
        /// The run's id (from `retl run` or `retl runs list`).
        run_id: String,
        /// Print JSON (the run summary with a `rows` array).
        #[arg(long)]
        json: bool,
    },
    /// Send again, on purpose, the rows of a run whose delivery is uncertain,
    /// then run the activation. They may already have reached Trustpilot:
    /// asks for confirmation unless --yes.
    Resend {
        /// The run whose uncertain rows to resend.
        run_id: String,
        /// Resend the rows logged as uncertain (the only rows that can be resent).
        #[arg(long, required = true)]
        uncertain: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Print the run summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
struct EmulatorArgs {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8787)]
    port: u16,
    /// A business unit that exists (repeat for more).
    #[arg(long = "business-unit", default_value = "bu-emulator")]
    business_units: Vec<String>,
    /// The API key to accept.
    #[arg(long, default_value = "emulator-key")]
    api_key: String,
    /// The API secret to accept.
    #[arg(long, default_value = "emulator-secret")]
    api_secret: String,
    /// The business user id client_credentials calls must send.
    #[arg(long, default_value = "user-emulator")]
    business_user_id: String,
    /// Added latency per request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Status code of a successful invitation call (Trustpilot's is undocumented).
    #[arg(long, default_value_t = 202)]
    success_status: u16,
    /// A rate-limit window, REQUESTS/DURATION (e.g. 100/5s, 833/5m, 10000/1h);
    /// repeat for several. Default: 833/5m and 10000/1h.
    #[arg(long = "rate-limit", value_parser = parse_window)]
    rate_limits: Vec<retl_trustpilot_emulator::RateWindow>,
    /// Send Retry-After (seconds) with 429 answers (Trustpilot documents none).
    #[arg(long)]
    retry_after: Option<u64>,
    /// Lifetime of minted tokens, in seconds.
    #[arg(long, default_value_t = 359_999)]
    token_lifetime_seconds: u64,
    /// A share of invitation requests that get a fault, FAULT=SHARE, with FAULT one of
    /// server_error, cdn_error, cdn_forbidden, too_many_requests, drop, accept_then_hang, bad_request
    /// (e.g. --fault server_error=0.1); repeat for several.
    #[arg(long = "fault", value_parser = parse_fault)]
    faults: Vec<(retl_trustpilot_emulator::Fault, f64)>,
    /// A drawn 429 is followed by this many more.
    #[arg(long, default_value_t = 0)]
    fault_burst: u32,
    /// Seed of the fault draw.
    #[arg(long, default_value_t = 1)]
    fault_seed: u64,
    /// Append every accepted invitation to this JSON-lines file.
    #[arg(long)]
    log_file: Option<PathBuf>,
}

fn parse_window(text: &str) -> Result<retl_trustpilot_emulator::RateWindow, String> {
    let err = || format!("`{text}` is not REQUESTS/DURATION (e.g. 100/5s, 833/5m, 10000/1h)");
    let (limit, window) = text.split_once('/').ok_or_else(err)?;
    let limit = limit.trim().parse().map_err(|_| err())?;
    let window = window.trim();
    let (n, unit) = window.split_at(window.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?);
    let n: u64 = n.parse().map_err(|_| err())?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(err()),
    };
    Ok(retl_trustpilot_emulator::RateWindow {
        limit,
        window: Duration::from_secs(seconds),
    })
}

fn parse_fault(text: &str) -> Result<(retl_trustpilot_emulator::Fault, f64), String> {
    let (name, share) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not FAULT=SHARE"))?;
    let fault: retl_trustpilot_emulator::Fault =
        serde_json::from_value(serde_json::Value::String(name.trim().to_owned())).map_err(|_| {
            format!("unknown fault `{name}`; one of: server_error, cdn_error, cdn_forbidden, too_many_requests, drop, accept_then_hang, bad_request")
        })?;
    let share: f64 = share
        .trim()
        .parse()
        .ok()
        .filter(|s| (0.0..=1.0).contains(s))
        .ok_or_else(|| format!("share `{share}` is not a number from 0 to 1"))?;
    Ok((fault, share))
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        let error = error.into();
        let engine = error.downcast_ref::<retl_engine::Error>();
        let code = if matches!(engine, Some(retl_engine::Error::Locked { .. })) {
            4
        } else if error.downcast_ref::<ConfigErrors>().is_some()
            || engine.is_some_and(retl_engine::Error::is_config)
        {
            2
        } else {
            1
        };
        Failure { code, error }
    }
}

fn init_logging(cli: &Cli) {
    let default = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RETL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

async fn dispatch(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Run {
            activation,
            json,
            lease_seconds,
        } => {
            run(
                &cli.config_dir,
                &cli.state,
                &activation,
                json,
                lease_seconds,
            )
            .await
        }
        Command::Check { activation } => check(&cli.config_dir, activation.as_deref()).await,
        Command::Templates {
            destination,
            business_unit,
            json,
        } => {
            templates(
                &cli.config_dir,
                &cli.state,
                &destination,
                business_unit,
                json,
            )
            .await
        }
        Command::Runs { command } => runs(&cli.config_dir, &cli.state, command).await,
        Command::Emulator(args) => emulator(args).await,
        Command::Demo => demo::demo().await,
    }
}

/// Loads the configuration, warning about broken files that do not concern `activation`.
fn load(config_dir: &std::path::Path, activation: &str) -> Result<Project, Failure> {
    let project = Project::load(config_dir)?;
    let (found, _) = project.activation(activation)?;
    if !project.problems.is_empty() {
        let others: Vec<String> = project.problems.iter().map(|p| format!("  {p}")).collect();
        eprintln!(
            "warning: other configuration files have problems and were skipped (activation `{}` is fine):\n{}",
            found.name,
            others.join("\n")
        );
    }
    Ok(project)
}

/// The exit code of a finished run.
fn exit_code(finished: &Finished) -> Result<u8, Failure> {
    if let Some(failure) = &finished.failure {
        let code = if failure.is_config() { 2 } else { 1 };
        return Err(Failure {
            code,
            error: anyhow::anyhow!("run {} failed: {failure}", finished.summary.run_id),
        });
    }
    if finished.summary.status == "interrupted" {
        return Ok(130);
    }
    Ok(if finished.needs_attention() { 3 } else { 0 })
}

/// Sets `flag` on the first SIGINT or SIGTERM.
async fn on_signal(flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    eprintln!(
        "interrupted: no new requests; finishing the ones under way (Ctrl-C again does not hurry them)"
    );
    flag.store(true, std::sync::atomic::Ordering::SeqCst);
}

async fn run(
    config_dir: &std::path::Path,
    state_url: &str,
    name: &str,
    json: bool,
    lease_seconds: u64,
) -> Result<u8, Failure> {
    let project = load(config_dir, name)?;
    let (activation, destination) = project.activation(name)?;
    let state = State::open(state_url).await?;
    let options = retl_engine::RunOptions {
        lease: Duration::from_secs(lease_seconds),
        drain: destination.request_timeout + Duration::from_secs(5),
        ..retl_engine::RunOptions::default()
    };
    let signals = tokio::spawn(on_signal(options.cancel.clone()));
    let finished = retl_engine::run_with(&state, activation, destination, &options).await;
    signals.abort();
    let finished = finished?;
    if json {
        println!("{}", serde_json::to_string(&finished.summary)?);
    } else {
        print!("{}", output::summary(&finished.summary));
    }
    exit_code(&finished)
}

async fn check(config_dir: &std::path::Path, only: Option<&str>) -> Result<u8, Failure> {
    let project = Project::load(config_dir)?;
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
        let users: Vec<&retl_engine::config::Activation> = names
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

async fn templates(
    config_dir: &std::path::Path,
    state_url: &str,
    name: &str,
    business_unit: Option<String>,
    json: bool,
) -> Result<u8, Failure> {
    let project = Project::load(config_dir)?;
    let Some(destination) = project.destinations.get(name) else {
        let mut problems = project.problems.clone();
        problems.push(retl_engine::config::Problem {
            location: None,
            path: String::new(),
            message: format!(
                "no destination named `{name}`; defined: {}",
                project
                    .destinations
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
        return Err(ConfigErrors(problems).into());
    };
    let Some(business_unit) =
        business_unit.or_else(|| destination.defaults.business_unit_id.clone())
    else {
        return Err(Failure {
            code: 2,
            error: anyhow::anyhow!(
                "destination `{name}` has no defaults.business_unit_id: pass --business-unit"
            ),
        });
    };
    let state = State::open(state_url).await?;
    let client = retl_engine::client(destination, state.token_cache())?;
    let templates = client.templates(&business_unit).await.map_err(|error| {
        retl_engine::Error::Destination {
            destination: name.to_owned(),
            error,
        }
    })?;
    if json {
        println!("{}", serde_json::to_string(&templates)?);
    } else {
        print!("{}", output::templates_table(&templates));
    }
    Ok(0)
}

async fn runs(
    config_dir: &std::path::Path,
    state_url: &str,
    command: RunsCommand,
) -> Result<u8, Failure> {
    let state = State::open(state_url).await?;
    match command {
        RunsCommand::List {
            activation,
            limit,
            json,
        } => {
            let runs = state.list_runs(activation.as_deref(), limit).await?;
            if json {
                println!("{}", serde_json::to_string(&runs)?);
            } else {
                print!("{}", output::runs_table(&runs));
            }
        }
        RunsCommand::Show { run_id, json } => {
            let Some(summary) = state.run(&run_id).await? else {
                return Err(Failure {
                    code: 2,
                    error: anyhow::anyhow!("no run with id `{run_id}` (see `retl runs list`)"),
                });
            };
            let rows = state.run_rows(&run_id).await?;
            if json {
                let mut value = serde_json::to_value(&summary)?;
                value["rows"] = serde_json::to_value(&rows)?;
                println!("{value}");
            } else {
                print!("{}", output::summary(&summary));
                print!("{}", output::rows_table(&rows));
            }
        }
        RunsCommand::Resend {
            run_id,
            uncertain: _,
            yes,
            json,
        } => {
            return resend(config_dir, &state, &run_id, yes, json).await;
        }
    }
    Ok(0)
}

async fn resend(
    config_dir: &std::path::Path,
    state: &State,
    run_id: &str,
    yes: bool,
    json: bool,
) -> Result<u8, Failure> {
    let Some(summary) = state.run(run_id).await? else {
        return Err(Failure {
            code: 2,
            error: anyhow::anyhow!("no run with id `{run_id}` (see `retl runs list`)"),
        });
    };
    let uncertain = state
        .run_rows(run_id)
        .await?
        .into_iter()
        .filter(|r| r.outcome == "uncertain")
        .count();
    if uncertain == 0 {
        println!("run {run_id} has no uncertain rows: nothing to resend");
        return Ok(0);
    }
    let project = load(config_dir, &summary.activation)?;
    let (activation, destination) = project.activation(&summary.activation)?;
    if !yes {
        use std::io::{BufRead as _, IsTerminal as _, Write as _};
        if !std::io::stdin().is_terminal() {
            return Err(Failure {
                code: 2,
                error: anyhow::anyhow!(
                    "{uncertain} row(s) of run {run_id} may already have reached Trustpilot; resending can invite those customers twice. Confirm with --yes"
                ),
            });
        }
        print!(
            "{uncertain} row(s) of run {run_id} may already have reached Trustpilot; resending can invite those customers twice.\nResend them now? [y/N] "
        );
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("nothing resent");
            return Ok(0);
        }
    }
    let released = state.release_uncertain(run_id).await?;
    eprintln!(
        "released {released} uncertain row(s) of run {run_id}; running `{}`",
        activation.name
    );
    let finished = retl_engine::run(state, activation, destination).await?;
    if json {
        println!("{}", serde_json::to_string(&finished.summary)?);
    } else {
        print!("{}", output::summary(&finished.summary));
    }
    exit_code(&finished)
}

async fn emulator(args: EmulatorArgs) -> Result<u8, Failure> {
    let mut shares = retl_trustpilot_emulator::FaultShares {
        burst: args.fault_burst,
        seed: args.fault_seed,
        ..retl_trustpilot_emulator::FaultShares::default()
    };
    for (fault, share) in args.faults {
        shares = shares.with(fault, share);
    }
    let defaults = EmulatorConfig::default();
    let config = EmulatorConfig {
        rate_limits: if args.rate_limits.is_empty() {
            defaults.rate_limits.clone()
        } else {
            args.rate_limits
        },
        retry_after: args.retry_after,
        token_lifetime: Duration::from_secs(args.token_lifetime_seconds),
        faults: shares,
        api_key: args.api_key,
        api_secret: args.api_secret,
        business_units: args.business_units,
        business_user_id: args.business_user_id,
        latency: Duration::from_millis(args.latency_ms),
        success_status: args.success_status,
        log_file: args.log_file,
        ..defaults
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let emulator = Emulator::start(config, addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!("trustpilot emulator listening on {}", emulator.url());
    println!(
        "point a destination's endpoints.auth and endpoints.invitations at it; Ctrl-C stops it"
    );
    emulator
        .serve_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(0)
}
