//! The command line: every flag and its `--help` text (its doc comment,
//! shown as written), and the parsers of its values.

// Doc comments on the argument types are `--help` text, shown as written.
#![allow(clippy::doc_markdown)]

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

pub(crate) const EXIT_CODES: &str = "\
Exit codes:
  0    the run completed (rejected rows included: they are bad data, recorded with their reason)
  1    anything else went wrong (source or state database unreachable, ...)
  2    configuration or usage error (the message names file:line:column and field)
  3    the run completed, but some rows failed (retried by the next run) or are uncertain
  4    another run of the activation is under way (its lease is held)
  5    refused by a safety limit; nothing sent (a first run larger than limits.first_run_max,
       or a surge: more new rows than limits.surge_factor times the recent median)
  6    the run completed, but alerts.yaml could not be used: no alert was sent (its problems
       are on stderr, even with --quiet)
  130  interrupted (SIGINT or SIGTERM): requests under way were finished, the rest skipped

Example:
  retl init && retl --target emulator check && retl --target emulator run orders --json";

/// Sync new warehouse rows to Trustpilot review invitations.
#[derive(Debug, Parser)]
#[command(name = "retl", version, about, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// Directory holding destinations/*.yaml and activations/*.yaml.
    #[arg(long, global = true, default_value = "./configs", value_name = "DIR")]
    pub(crate) config_dir: PathBuf,
    /// State database (ledger and run logs); created on first use. A relative
    /// sqlite:// path is relative to the project: the directory that holds the
    /// configuration directory (not the working directory). Without it:
    /// `RETL_STATE_URL` of the chosen target (targets.yaml), else of the
    /// environment, else sqlite://.retl/state.db.
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) state: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// More log output (-v: info, -vv: debug). RETL_LOG overrides (e.g. RETL_LOG=retl_engine=debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Print only results (a run's summary): no progress, no notices, only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
    /// Load variables for ${VAR} from this file (dotenv syntax) before the
    /// configuration is read; the process environment wins over it.
    #[arg(long, global = true, env = "RETL_ENV_FILE", value_name = "FILE")]
    pub(crate) env_file: Option<PathBuf>,
    /// Use the variables of this target of CONFIG_DIR/targets.yaml; they win
    /// over the process environment (e.g. --target prod).
    #[arg(long, global = true, env = "RETL_TARGET", value_name = "NAME")]
    pub(crate) target: Option<String>,
    /// How long a SQLite state database waits for another process's lock
    /// before failing with "database is locked" (e.g. 10s, 500ms).
    #[arg(long, global = true, env = "RETL_STATE_BUSY_TIMEOUT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) state_busy_timeout: Duration,
    /// How long one statement of the state database may take before it
    /// fails (a connection that went silent fails the run instead of hanging
    /// it); on PostgreSQL also the server's statement and idle-in-transaction
    /// timeouts for retl's sessions.
    #[arg(long, global = true, env = "RETL_STATE_TIMEOUT", default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) state_timeout: Duration,
    /// For tests: read the clock this far ahead (leases expire at once).
    #[arg(long, global = true, hide = true, env = "RETL_CLOCK_OFFSET", value_parser = parse_duration)]
    pub(crate) clock_offset: Option<Duration>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run an activation once: send every new row, then print a summary.
    #[command(after_help = EXIT_CODES)]
    Run {
        /// The activations to run (several run at once, sharing each API
        /// key's rate limiter; the exit code is the worst of theirs).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        activations: Vec<String>,
        /// Run every activation of the configuration directory.
        #[arg(long)]
        all: bool,
        /// Print the summary as one JSON object (one line per activation).
        #[arg(long)]
        json: bool,
        /// How long this run's lease on the activation lasts without renewal
        /// (renewed every third of it); a killed run's lease is taken over
        /// after this long, or at once on the same machine.
        #[arg(long, env = "RETL_LEASE_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
        lease_seconds: u64,
        /// Send at most N rows (a canary); the rest are skipped and go out in
        /// later runs. Also lets a first run larger than limits.first_run_max go.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Send even if the new rows are a surge (the surge guard: more than
        /// its threshold and more than limits.surge_share of the source look
        /// new; see `retl approve` to let the next scheduled run send them).
        #[arg(long)]
        allow_surge: bool,
        /// Run a first run even though another activation's history was read
        /// from the same source (connection, table or query, key,
        /// destination): the two are meant to share it, not a rename (for a
        /// rename, use `retl rename OLD NEW`).
        #[arg(long)]
        allow_shared_source: bool,
        /// The destination's identity (its invitations host or business
        /// unit) changed on purpose and it is the same Trustpilot account:
        /// the keys already settled go on answering for it. Without this, a
        /// run whose destination changed under settled keys is refused.
        #[arg(long)]
        destination_moved: bool,
        /// Show what the run would do and do none of it (the same as `retl preview`).
        #[arg(long)]
        dry_run: bool,
        /// For tests: stop at POINT:N (in_flight:N, recorded:N, segments:N,
        /// keys_unpushed:N, keys_pushed:N, staged:N),
        /// say so on stderr, and wait to be killed or interrupted.
        #[arg(long, hide = true, env = "RETL_HOLD_AT", value_name = "POINT:N")]
        hold_at: Option<retl_engine::Hold>,
        /// For tests: key-segment records held before a write (default 1,000,000).
        #[arg(long, hide = true, env = "RETL_KEY_FLUSH_ROWS", value_name = "N")]
        key_flush_rows: Option<usize>,
        /// For tests: settled keys held before they are written to the
        /// warehouse's key table with `diff: warehouse` (default 10,000).
        #[arg(long, hide = true, env = "RETL_KEY_PUSH_ROWS", value_name = "N")]
        key_push_rows: Option<usize>,
    },
    /// Run every activation that has a `schedule:`, on time, until SIGINT or
    /// SIGTERM, and serve the run-log page, /metrics (Prometheus), /healthz and
    /// /api/runs. SIGHUP reloads the configuration (a broken file keeps its
    /// previous version). Exit code 0 after a stop, once runs under way are
    /// drained and recorded.
    #[command(
        after_help = "Examples:\n  retl schedule\n  retl schedule --listen 127.0.0.1:9187\n  retl schedule --listen 0.0.0.0:9187 --listen-public --api-token-file /etc/retl/token --allowed-host retl.internal"
    )]
    Schedule {
        /// Where to serve the page, the API and the metrics.
        #[arg(long, default_value = "127.0.0.1:9187", value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Allow a --listen address that is not loopback. Needs
        /// --api-token-file: every route but /healthz then asks for
        /// `Authorization: Bearer TOKEN` (the page shows customers'
        /// references and Trustpilot's answers).
        #[arg(long)]
        listen_public: bool,
        /// A file holding the API's bearer token (at least 16 characters).
        /// With it, `POST /api/activations/{name}/runs` starts a run now
        /// (202 with its run_id, 409 while one is under way), with
        /// `Authorization: Bearer TOKEN`.
        #[arg(long, value_name = "FILE")]
        api_token_file: Option<PathBuf>,
        /// A host name the page and the API answer to, besides the listen
        /// address (and `localhost` on loopback); any other `Host` gets 421.
        /// Repeat for several.
        #[arg(long = "allowed-host", value_name = "NAME")]
        allowed_hosts: Vec<String>,
        /// A client must send a request's head within this long (e.g. 10s).
        #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
        header_timeout: Duration,
        /// At most this many HTTP connections at once (more wait); keep it
        /// well below the process's open-file limit.
        #[arg(long, default_value_t = 256, value_name = "N")]
        max_connections: usize,
    },
    /// Show what a run would do now, and do none of it: the counts, each
    /// request body with where each value came from (row column, activation
    /// target, destination default), the rows that would be rejected and why,
    /// and how long the sends would take. Writes nothing, takes no lease,
    /// sends nothing. Exit code 0 even when a run would be refused (the
    /// refusal is shown).
    #[command(
        after_help = "Examples:\n  retl preview orders\n  retl preview orders --limit 5 --json"
    )]
    Preview {
        /// The activation's name.
        activation: String,
        /// Preview a run with `--limit N`: at most N rows sent, the rest skipped.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Print one JSON object: {counts, invitations: [{key, reference, body,
        /// origins}], rejections: [{key, reference, reason}], estimated_seconds}.
        #[arg(long)]
        json: bool,
        /// How many request bodies the text lists: a number, or `all`
        /// (`--json` lists them all).
        #[arg(long, value_name = "N|all", default_value = "20", value_parser = parse_show)]
        show: Show,
    },
    /// Check the configuration, each destination (a fresh token is minted;
    /// business units and template ids must exist) and each activation's
    /// source (every key and mapped column must exist, with a usable type),
    /// and say whether a first run is pending and how many rows it would send
    /// (counted by the database, not read). Sends nothing. Exit code 2 on any
    /// problem; every problem is reported, each once.
    #[command(after_help = "Examples:\n  retl check\n  retl --target emulator check orders --json")]
    Check {
        /// Only these activations, and what they use (default: all).
        activations: Vec<String>,
        /// Print one JSON object: {ok, state, problems, destinations, activations}.
        #[arg(long)]
        json: bool,
    },
    /// Let an activation's next run, scheduled or by hand, go past the
    /// safety limits that refused it (the surge guard, the first-run guard)
    /// and send what they held back, once. An approval answers a refused
    /// run: without one it is refused (exit 2), unless given `--ahead` of a
    /// planned backfill, which expires (`--for`, default 24h). Records who
    /// approved it and when; `--revoke` withdraws an open one.
    #[command(
        after_help = "Examples:\n  retl approve orders\n  retl approve orders --run 2f2051e581c8 --by alice\n  retl approve orders --ahead --for 2h\n  retl approve orders --revoke"
    )]
    Approve {
        /// The activation.
        activation: String,
        /// The refused run this answers (its id, a unique part of it, or
        /// `latest`; default: the activation's last run, which must be refused).
        #[arg(long = "run", value_name = "RUN_ID", conflicts_with_all = ["ahead", "revoke"])]
        run: Option<String>,
        /// Approve the next run before any refusal (a planned backfill).
        #[arg(long, conflicts_with = "revoke")]
        ahead: bool,
        /// How long an approval given `--ahead` stays open unused.
        #[arg(long = "for", value_name = "DURATION", default_value = "24h", value_parser = parse_duration, requires = "ahead")]
        valid_for: Duration,
        /// Withdraw the open approval instead.
        #[arg(long)]
        revoke: bool,
        /// Who approves (default: the operating system's user running retl).
        #[arg(long)]
        by: Option<String>,
        /// Print JSON: {activation, approved_at, approved_by, refused_run, used_by, expires_at}.
        #[arg(long)]
        json: bool,
    },
    /// Settle every row now in the activation's source as `baseline`,
    /// sending nothing: the way out when a `first_run: skip_existing` came
    /// too late (after a canary), or when a model is rebuilt on purpose.
    /// Refused (exit 5) while rows are uncertain; recorded as a run of its own.
    #[command(after_help = "Examples:\n  retl baseline orders --dry-run\n  retl baseline orders")]
    Baseline {
        /// The activation.
        activation: String,
        /// Say what it would record, recording nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the run summary (or, with --dry-run, the preview) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Carry an activation's history (ledger, key segments, cursor, run logs)
    /// over to a new name, after renaming its file or its `name:`: without
    /// it, the renamed activation has no history and its first run is
    /// refused (it would invite everyone again). Holds both activations'
    /// leases while it moves; refused if NEW has a history of its own.
    #[command(
        after_help = "Example:\n  mv configs/activations/orders.yaml configs/activations/shop_orders.yaml\n  retl rename orders shop_orders"
    )]
    Rename {
        /// The activation's old name.
        old: String,
        /// Its new name.
        new: String,
        /// Print JSON: {old, new, moved: {ledger, key_segments, runs, cursors}}.
        #[arg(long)]
        json: bool,
    },
    /// Write a commented configs/ tree (a destination, an activation, targets)
    /// showing every option. Refuses to overwrite existing files.
    #[command(after_help = "Example:\n  retl init my-project && cd my-project && retl check")]
    Init {
        /// The directory to write configs/ into.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Print the JSON Schema (draft 2020-12) of a configuration file, for
    /// editors to complete and validate YAML; without KIND, one schema that
    /// accepts any of them.
    #[command(after_help = "Example:\n  retl schema activation > .retl-activation.schema.json")]
    Schema {
        /// destination, activation or targets.
        #[arg(value_parser = schema_kind())]
        kind: Option<retl_engine::config::schema::SchemaKind>,
    },
    /// dbt: the activations that read dbt models (`source.dbt`), for dbt.
    Dbt {
        #[command(subcommand)]
        command: DbtCommand,
    },
    /// Print a completion script for a shell.
    #[command(
        after_help = "Examples:\n  retl completions bash > /etc/bash_completion.d/retl\n  retl completions zsh > \"${fpath[1]}/_retl\"\n  retl completions fish > ~/.config/fish/completions/retl.fish"
    )]
    Completions {
        /// bash, zsh, fish, powershell or elvish.
        shell: clap_complete::Shell,
    },
    /// Print retl's manual page (roff).
    #[command(after_help = "Example:\n  retl man > /usr/local/share/man/man1/retl.1")]
    Man,
    /// List a business unit's invitation templates (to pick template ids).
    #[command(
        after_help = "Example:\n  retl templates trustpilot --business-unit 5f0c0e1e2d3c4b5a6f7e8d9c"
    )]
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
    #[command(
        after_help = "Example:\n  retl runs list --activation orders\n  retl runs show 01a2... --json"
    )]
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// The right to be forgotten: ask Trustpilot to delete a person's
    /// invitation data (every business unit the destinations send to; it
    /// cannot be undone), then erase their traces from the state (reasons,
    /// answers, link URLs, the email's hash). The ledger keeps the keys that
    /// stop a second invitation; the erasure is recorded without the address.
    #[command(
        after_help = "Examples:\n  retl forget --email ann@example.com --dry-run\n  retl forget --email ann@example.com --destination trustpilot"
    )]
    Forget {
        /// The person's email address.
        #[arg(long, value_name = "ADDRESS")]
        email: String,
        /// Only this destination (default: every destination).
        #[arg(long, value_name = "NAME")]
        destination: Option<String>,
        /// Say what would be asked and erased; do neither.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON: {dry_run, destinations: [{name, business_units: [{id, status}]}], rows_erased}.
        #[arg(long)]
        json: bool,
    },
    /// Alerts (configs/alerts.yaml): channels and rules.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Serve a local Trustpilot emulator (same endpoints, auth and validation).
    #[cfg(feature = "emulator")]
    #[command(
        after_help = "Example:\n  retl emulator --port 8787 --fault server_error=0.1 --rate-limit 100/5s"
    )]
    Emulator(retl_trustpilot_emulator::command::EmulatorArgs),
    /// A self-contained demo: a SQLite warehouse, the emulator, two runs.
    #[cfg(feature = "emulator")]
    #[command(after_help = "Example:\n  retl demo --keep ./retl-demo")]
    Demo {
        /// Keep the demo's warehouse, configs and state in DIR, ready to edit and rerun.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
}

/// `retl alerts` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AlertsCommand {
    /// Send a test alert to each channel of configs/alerts.yaml; exit 1 if
    /// any could not be reached.
    #[command(after_help = "Example:\n  retl alerts test")]
    Test {
        /// Print JSON: [{channel, type, sent, error}].
        #[arg(long)]
        json: bool,
    },
}

/// `retl runs` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum RunsCommand {
    /// The most recent runs, newest first, with their counts (a running run's
    /// counts are live: written after every batch).
    #[command(
        after_help = "Examples:\n  retl runs list --activation orders --limit 5 --json\n  retl runs list --status failed --since 2d"
    )]
    List {
        /// Only runs of this activation.
        #[arg(long)]
        activation: Option<String>,
        /// Only runs with this status: running, completed, failed, interrupted, abandoned.
        #[arg(long, value_name = "S")]
        status: Option<retl_state::RunStatus>,
        /// Only runs started within this long (30m, 12h, 2d, 1w).
        #[arg(long, value_name = "DURATION", value_parser = parse_since)]
        since: Option<std::time::Duration>,
        /// How many runs.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON (an array of run summaries).
        #[arg(long)]
        json: bool,
    },
    /// One run and the outcome of each of its rows.
    #[command(
        after_help = "Examples:\n  retl runs show latest --activation orders\n  retl runs show 2f2051e581c8 --outcome rejected\n  retl runs show 01a20815 --json"
    )]
    Show {
        /// The run: its id, any unique prefix of it, its last characters, or
        /// `latest`.
        run_id: String,
        /// With `latest` (or a short id): only runs of this activation.
        #[arg(long)]
        activation: Option<String>,
        /// Only rows with this outcome: sent, rejected, failed, uncertain,
        /// skipped, too_old, ignored_changed, given_up, suppressed, duplicate.
        #[arg(long, value_name = "OUTCOME")]
        outcome: Option<retl_state::RowOutcome>,
        /// Print JSON (the run summary with a `rows` array).
        #[arg(long)]
        json: bool,
    },
    /// Was this row sent, was this customer invited? Every run-log row,
    /// across all runs, whose reference number or key is the one given, or
    /// (--email) whose customer has that email: when, in which run, with
    /// what outcome and what Trustpilot answered. Emails are not stored:
    /// rows are found by a keyed hash of the address (trimmed, lowercased).
    #[command(
        after_help = "Examples:\n  retl runs find ORD-10023\n  retl runs find 10023 --activation orders --json\n  retl runs find --email ann@example.com"
    )]
    #[command(group(clap::ArgGroup::new("query").required(true).args(["reference_or_key", "email"])))]
    Find {
        /// A reference number or a row's key (composite keys: `a, b`).
        reference_or_key: Option<String>,
        /// The customer's email address instead.
        #[arg(long, value_name = "ADDRESS")]
        email: Option<String>,
        /// Only runs of this activation.
        #[arg(long)]
        activation: Option<String>,
        /// At most this many log rows, newest first.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print JSON: {query, sent, sent_at, sent_run_id, rows: [...]}.
        #[arg(long)]
        json: bool,
    },
    /// Settle rows a run left uncertain, once a person looked in
    /// Trustpilot's own interface: --sent records them sent (settled for
    /// good), --not-sent makes them new again (the next run sends them).
    /// Logged with who and when; `retl runs find` shows it.
    #[command(
        after_help = "Examples:\n  retl runs settle 2f2051e581c8 --key 10023 --key 10024 --sent\n  retl runs settle latest --activation orders --keys-file keys.txt --not-sent"
    )]
    Settle(Settle),
    /// Send again, on purpose, the rows a run logged as uncertain (they may
    /// already have reached Trustpilot: asks for confirmation unless --yes),
    /// as rejected (after fixing their data or a setting) or as given up
    /// (after an outage longer than retry.give_up_after). Lists the keys it
    /// releases and sends only those rows; other new rows wait for the next run.
    #[command(
        after_help = "Examples:\n  retl runs resend 01a20815-b801-744c-a977-2f2051e581c8 --uncertain --yes\n  retl runs resend 01a20815-b801-744c-a977-2f2051e581c8 --rejected\n  retl runs resend 01a20815-b801-744c-a977-2f2051e581c8 --given-up"
    )]
    #[command(group(clap::ArgGroup::new("which").required(true).args(["uncertain", "rejected", "given_up"])))]
    Resend {
        /// The run whose rows to resend.
        run_id: String,
        /// Resend the rows logged as uncertain.
        #[arg(long)]
        uncertain: bool,
        /// Resend the rows logged as rejected.
        #[arg(long)]
        rejected: bool,
        /// Resend the rows logged as given_up.
        #[arg(long)]
        given_up: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Print the run summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    retl_config::parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration (e.g. 10s, 500ms)"))
}

fn parse_since(text: &str) -> Result<std::time::Duration, String> {
    retl_config::parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration: write e.g. 30m, 12h, 2d or 1w"))
}

fn schema_kind()
-> impl clap::builder::TypedValueParser<Value = retl_engine::config::schema::SchemaKind> {
    clap::builder::TypedValueParser::map(
        clap::builder::PossibleValuesParser::new(retl_engine::config::schema::SchemaKind::CHOICES),
        |kind| kind.parse().expect("one of the choices"),
    )
}

/// How many request bodies a preview's text lists (`--show`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Show {
    /// At most this many.
    First(usize),
    /// Every one.
    All,
}

/// `--show`: a number or `all`.
fn parse_show(text: &str) -> Result<Show, String> {
    if text.eq_ignore_ascii_case("all") {
        return Ok(Show::All);
    }
    text.parse()
        .map(Show::First)
        .map_err(|_| format!("`{text}` is neither a number nor `all`"))
}

/// `retl runs settle`'s arguments.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("keys").required(true).multiple(true).args(["key", "keys_file"])))]
#[command(group(clap::ArgGroup::new("as").required(true).args(["sent", "not_sent"])))]
pub(crate) struct Settle {
    /// The run that left the rows uncertain (its id, a unique part, or `latest`).
    pub(crate) run_id: String,
    /// With `latest` (or a short id): only runs of this activation.
    #[arg(long)]
    pub(crate) activation: Option<String>,
    /// A row's key (repeatable).
    #[arg(long = "key", value_name = "KEY")]
    pub(crate) key: Vec<String>,
    /// A file of keys, one per line.
    #[arg(long, value_name = "FILE")]
    pub(crate) keys_file: Option<std::path::PathBuf>,
    /// They reached Trustpilot: settled as sent.
    #[arg(long)]
    pub(crate) sent: bool,
    /// They did not: new again, sent by the next run.
    #[arg(long)]
    pub(crate) not_sent: bool,
    /// Who settles (default: the operating system's user running retl).
    #[arg(long)]
    pub(crate) by: Option<String>,
    /// Print JSON: {run_id, activation, keys, settled_as, settled_by}.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `retl emulator` on its own: only its options, since the global ones
/// (`--state`, `--target`, …) do not apply to it.
#[cfg(feature = "emulator")]
#[derive(Parser, Debug)]
#[command(
    name = "retl emulator",
    bin_name = "retl emulator",
    about = "Serve a local Trustpilot emulator (same endpoints, auth and validation)",
    after_help = "Example:\n  retl emulator --port 8787 --fault server_error=0.1 --rate-limit 100/5s"
)]
pub(crate) struct EmulatorCommand {
    #[command(flatten)]
    pub(crate) args: retl_trustpilot_emulator::command::EmulatorArgs,
}

/// `retl dbt …`.
#[derive(Debug, Subcommand)]
pub(crate) enum DbtCommand {
    /// Write dbt `exposures:` naming each activation that reads a dbt model,
    /// its `owner:` and the model, so that dbt's lineage shows them.
    #[command(
        after_help = "Example:\n  retl dbt exposures --out ../analytics/models/retl_exposures.yml"
    )]
    Exposures {
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}
