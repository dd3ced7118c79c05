//! `retl run`: one run of one activation, interruptible by SIGINT or SIGTERM.

use std::time::Duration;

use retl_engine::config::Destination;

use crate::{Ctx, Failure, exit_code, output};

/// How long requests under way may take after an interrupt: one request's timeout and 5 s.
pub(crate) fn drain(destination: &Destination) -> Duration {
    destination.request_timeout() + Duration::from_secs(5)
}

/// Sets `flag` on the first SIGINT or SIGTERM.
pub(crate) async fn on_signal(cancel: retl_engine::Cancel) {
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
    crate::notice(
        "interrupted: no new requests; finishing the ones under way (Ctrl-C again does not hurry them)",
    );
    cancel.cancel();
}

/// The flags of `retl run`.
pub(crate) struct RunArgs {
    pub json: bool,
    pub lease_seconds: u64,
    pub limit: Option<u64>,
    pub allow_surge: bool,
    pub hold: Option<retl_engine::Hold>,
}

/// `retl run`.
pub(crate) async fn run(ctx: &Ctx, name: &str, args: &RunArgs) -> Result<u8, Failure> {
    let json = args.json;
    let project = ctx.load(name)?;
    let (activation, destination) = project.activation(name)?;
    let state = ctx.state().await?;
    let options = retl_engine::RunOptions {
        lease: Duration::from_secs(args.lease_seconds),
        drain: drain(destination),
        hold: args.hold,
        limit: args.limit,
        allow_surge: args.allow_surge,
        ..retl_engine::RunOptions::default()
    };
    let signals = tokio::spawn(on_signal(options.cancel.clone()));
    let finished = retl_engine::run_with(&state, activation, destination, &options).await;
    signals.abort();
    let finished = finished?;
    output::print_finished(&finished, json, &ctx.state_url)?;
    exit_code(&finished)
}
