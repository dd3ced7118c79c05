//! `retl emulator`: its flags and its run, here beside the emulator they
//! configure (the binary only names the command).

// Doc comments on the argument types are `--help` text, shown as written.
#![allow(clippy::doc_markdown)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::{Emulator, EmulatorConfig};

/// The flags of `retl emulator`.
#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
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
    rate_limits: Vec<crate::RateWindow>,
    /// Send Retry-After (seconds) with 429 answers (Trustpilot documents none).
    #[arg(long)]
    retry_after: Option<u64>,
    /// Accept template ids that are not among its templates (by default an
    /// unknown templateId is a 400, as Trustpilot is believed to answer).
    #[arg(long)]
    accept_unknown_templates: bool,
    /// Status code of a carried-out invitation-data/delete (undocumented).
    #[arg(long, default_value_t = 200)]
    deletion_status: u16,
    /// Lifetime of minted tokens, in seconds.
    #[arg(long, default_value_t = 359_999)]
    token_lifetime_seconds: u64,
    /// A share of invitation requests that get a fault, FAULT=SHARE, with FAULT one of
    /// server_error, cdn_error, cdn_forbidden, too_many_requests, drop, accept_then_hang,
    /// bad_request, redirect, link_not_json, unavailable, bad_gateway_after_accept,
    /// gateway_timeout_after_accept, unknown_after_accept, origin_timeout_after_accept,
    /// accept_then_stall, cdn_bad_request (e.g. --fault server_error=0.1); repeat for several.
    #[arg(long = "fault", value_parser = parse_fault)]
    faults: Vec<(crate::Fault, f64)>,
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

fn parse_window(text: &str) -> Result<crate::RateWindow, String> {
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
    Ok(crate::RateWindow {
        limit,
        window: Duration::from_secs(seconds),
    })
}

fn parse_fault(text: &str) -> Result<(crate::Fault, f64), String> {
    let (name, share) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not FAULT=SHARE"))?;
    let fault: crate::Fault = serde_json::from_value(serde_json::Value::String(
        name.trim().to_owned(),
    ))
    .map_err(|_| {
        format!(
            "unknown fault `{name}`; one of: {}",
            crate::Fault::ALL.map(crate::Fault::name).join(", ")
        )
    })?;
    let share: f64 = share
        .trim()
        .parse()
        .ok()
        .filter(|s| (0.0..=1.0).contains(s))
        .ok_or_else(|| format!("share `{share}` is not a number from 0 to 1"))?;
    Ok((fault, share))
}

/// `retl emulator`: serves on 127.0.0.1 until Ctrl-C, its banner on stdout.
pub async fn run(args: EmulatorArgs) -> std::io::Result<()> {
    let mut shares = crate::FaultShares {
        burst: args.fault_burst,
        seed: args.fault_seed,
        ..crate::FaultShares::default()
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
        accept_unknown_templates: args.accept_unknown_templates,
        deletion_status: args.deletion_status,
        log_file: args.log_file,
        ..defaults
    };
    let credentials = config.clone();
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let emulator = Emulator::start(config, addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    print!("{}", banner(&emulator.url(), &credentials));
    // Tools that start the emulator read this line to know it is up.
    std::io::Write::flush(&mut std::io::stdout())?;
    emulator
        .serve_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

/// What the emulator says when it starts: where it is and what it accepts.
/// These are the emulator's own test credentials, not secrets.
fn banner(url: &str, config: &EmulatorConfig) -> String {
    format!(
        "trustpilot emulator listening on {url}
accepts:
  api_key:          {key}
  api_secret:       {secret}
  business_user_id: {user}   (grant: client_credentials)
  username:         {username}   (grant: password)
  password:         {password}
  business units:   {units}
point a destination at it:
  endpoints: {{ auth: \"{url}\", invitations: \"{url}\" }}
Ctrl-C stops it
",
        key = config.api_key,
        secret = config.api_secret,
        user = config.business_user_id,
        username = config.username,
        password = config.password,
        units = config.business_units.join(", "),
    )
}
