//! `retl run`: one run of one activation, interruptible by SIGINT or SIGTERM.

use std::time::Duration;

use crate::exit::Exit;
use crate::{Ctx, Failure, exit_code, output};

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

/// What `retl run` lets through on purpose.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Allow {
    /// `--allow-surge`.
    pub surge: bool,
    /// `--allow-shared-source`.
    pub shared_source: bool,
    /// `--destination-moved`.
    pub destination_moved: bool,
}

/// The flags of `retl run`.
pub(crate) struct RunArgs {
    pub json: bool,
    pub quiet: bool,
    pub lease_seconds: u64,
    pub limit: Option<u64>,
    pub allow: Allow,
    pub hold: Option<retl_engine::Hold>,
    pub key_flush_rows: Option<usize>,
    pub key_push_rows: Option<usize>,
    /// `retl baseline`: rows settled as baseline, none sent.
    pub baseline: bool,
}

/// `retl run A [B …]` (or `--all`): the runs go at once, in this process, so
/// activations that share an API key share its rate limiter and token.
pub(crate) async fn run(ctx: &Ctx, names: &[String], args: &RunArgs) -> Result<Exit, Failure> {
    if names.is_empty() {
        return Err(Failure::usage(anyhow::anyhow!(
            "no activation to run (the configuration directory has none)"
        )));
    }
    let project = match names {
        [one] => ctx.load(one)?,
        _ => ctx.project()?,
    };
    let mut chosen = Vec::with_capacity(names.len());
    for name in names {
        chosen.push((name.as_str(), project.activation(name)?));
    }
    let state = ctx.state().await?;
    let cancel = retl_engine::Cancel::default();
    let signals = tokio::spawn(on_signal(cancel.clone()));
    let bars = progress::Display::new(args.quiet);
    let runs = chosen.into_iter().map(|(name, (activation, destination))| {
        let counts = std::sync::Arc::new(std::sync::Mutex::new(retl_engine::Progress::default()));
        let options = retl_engine::RunOptions {
            lease: Duration::from_secs(args.lease_seconds),
            drain: retl_engine::drain(destination),
            hold: args.hold,
            limit: args.limit,
            allow_surge: args.allow.surge,
            allow_shared_source: args.allow.shared_source,
            destination_moved: args.allow.destination_moved,
            baseline: args.baseline,
            cancel: cancel.clone(),
            progress: Some(counts.clone()),
            key_flush_rows: args
                .key_flush_rows
                .unwrap_or(retl_engine::RunOptions::default().key_flush_rows),
            key_push_rows: args
                .key_push_rows
                .unwrap_or(retl_engine::RunOptions::default().key_push_rows),
            ..retl_engine::RunOptions::default()
        };
        let reporter = bars.follow(name, counts, destination.clone());
        let state = &state;
        async move {
            let finished = retl_engine::run_with(state, activation, destination, &options).await;
            reporter.done();
            finished
        }
    });
    let results = futures::future::join_all(runs).await;
    signals.abort();
    if let Some(notifier) = retl_alerts::Notifier::new(project.alerts.as_ref(), None) {
        let ended: Vec<_> = results.iter().flatten().map(|f| &f.summary).collect();
        notifier.after_runs(&state, &ended).await;
    }
    let mut worst: Result<Exit, Failure> = Ok(Exit::Ok);
    for result in results {
        let code = match result {
            Ok(finished) => {
                output::print_finished(&finished, args.json, &ctx.state_url)?;
                exit_code(&finished)
            }
            Err(e) => Err(Failure::from(e)),
        };
        let code = match code {
            Ok(code) => Ok(code),
            Err(failure) if names.len() > 1 => {
                // Said now; the others' summaries still follow.
                let failure = ctx.masked(failure);
                eprintln!("error: {}", failure.text());
                Err(failure)
            }
            Err(failure) => return Err(failure),
        };
        let rank = |r: &Result<Exit, Failure>| match r {
            Ok(code) => code.severity(),
            Err(f) => f.code.severity(),
        };
        if rank(&code) > rank(&worst) {
            worst = code;
        }
    }
    if alerts_unusable(ctx, &project)
        && matches!(worst, Ok(code) if code.severity() < Exit::AlertsUnusable.severity())
    {
        worst = Ok(Exit::AlertsUnusable);
    }
    match worst {
        Ok(code) => Ok(code),
        // Already printed above.
        Err(failure) => Ok(failure.code),
    }
}

/// Whether `alerts.yaml` could not be used (no alert was sent): its
/// problems are said on stderr whatever `--quiet` says, since a typo there
/// must not stop invitations, nor pass unseen.
fn alerts_unusable(ctx: &Ctx, project: &retl_engine::config::Project) -> bool {
    let alerts_file = ctx
        .config_dir()
        .join(retl_engine::config::alerts::ALERTS_FILE);
    let unusable: Vec<String> = project
        .problems
        .iter()
        .filter(|p| p.location.as_ref().is_some_and(|l| l.file == alerts_file))
        .map(ToString::to_string)
        .collect();
    if !unusable.is_empty() {
        eprintln!(
            "error: {} could not be used, so no alert was sent:\n  {}",
            alerts_file.display(),
            unusable.join("\n  ")
        );
    }
    !unusable.is_empty()
}

/// What a run shows while it works: on a terminal, a line per activation
/// redrawn in place; otherwise an info line every 10 s. `--quiet`: nothing.
mod progress {
    use std::fmt::Write as _;
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::{Duration, Instant};

    use retl_engine::Progress;
    use retl_state::Counts;

    /// How often a line is written without a terminal: every 10 s, or
    /// `RETL_PROGRESS_EVERY` (a hidden hook for tests).
    fn every() -> Duration {
        std::env::var("RETL_PROGRESS_EVERY")
            .ok()
            .and_then(|text| retl_config::parse_duration(&text))
            .unwrap_or(Duration::from_secs(10))
    }

    /// The progress display of one `retl run`.
    pub(crate) struct Display {
        bars: Option<indicatif::MultiProgress>,
        quiet: bool,
    }

    /// One run's reporter: stops when told, or when dropped.
    pub(crate) struct Reporter {
        task: Option<tokio::task::JoinHandle<()>>,
        bar: Option<indicatif::ProgressBar>,
    }

    impl Reporter {
        /// The run ended: its line goes (the summary follows).
        pub(crate) fn done(mut self) {
            self.stop();
        }

        fn stop(&mut self) {
            if let Some(task) = self.task.take() {
                task.abort();
            }
            if let Some(bar) = self.bar.take() {
                bar.finish_and_clear();
            }
        }
    }

    impl Drop for Reporter {
        fn drop(&mut self) {
            self.stop();
        }
    }

    impl Display {
        pub(crate) fn new(quiet: bool) -> Display {
            use std::io::IsTerminal as _;
            let terminal = std::io::stderr().is_terminal()
                && !crate::JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed);
            Display {
                bars: (terminal && !quiet).then(indicatif::MultiProgress::new),
                quiet,
            }
        }

        /// Starts showing the run of `name`, whose id and counts the engine
        /// keeps in `progress`.
        pub(crate) fn follow(
            &self,
            name: &str,
            progress: Arc<Mutex<Progress>>,
            destination: retl_engine::config::Destination,
        ) -> Reporter {
            if self.quiet {
                return Reporter {
                    task: None,
                    bar: None,
                };
            }
            let started = Instant::now();
            let name = name.to_owned();
            let read = move || {
                progress
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
            };
            if let Some(bars) = &self.bars {
                let bar = bars.add(indicatif::ProgressBar::new_spinner());
                let shown = bar.clone();
                let task = tokio::spawn(async move {
                    loop {
                        shown.set_message(line(
                            &name,
                            &read().counts,
                            started.elapsed(),
                            destination.waiting(),
                        ));
                        shown.tick();
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                });
                return Reporter {
                    task: Some(task),
                    bar: Some(bar),
                };
            }
            let every = every();
            let task = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let now = read();
                    let (elapsed, waiting) = (started.elapsed(), destination.waiting());
                    if crate::JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
                        event(&name, &now, elapsed, waiting);
                    } else {
                        crate::notice(&line(&name, &now.counts, elapsed, waiting));
                    }
                }
            });
            Reporter {
                task: Some(task),
                bar: None,
            }
        }
    }

    /// Progress for machines (`--log-format json`): an INFO event of target
    /// `retl::progress` whose fields are the run, its counts, the send rate
    /// and the wait for the rate window.
    fn event(name: &str, now: &Progress, elapsed: Duration, waiting: Option<Duration>) {
        let c = &now.counts;
        #[allow(clippy::cast_precision_loss)] // a rate for people to read
        let rate = c.sent as f64 / elapsed.as_secs_f64().max(0.001);
        tracing::info!(
            target: "retl::progress",
            run_id = %now.run_id,
            activation = %name,
            read = c.read,
            new = c.new,
            sent = c.sent,
            rejected = c.rejected,
            failed = c.failed,
            uncertain = c.uncertain,
            given_up = c.given_up,
            skipped = c.skipped,
            already_sent = c.already_sent,
            per_second = (rate * 10.0).round() / 10.0,
            elapsed_seconds = elapsed.as_secs(),
            waiting_seconds = waiting.map(|w| w.as_secs()),
            "progress"
        );
    }

    /// One progress line: rows read and new; sent, rejected, failed; the send
    /// rate; the time left; and the rate window being waited for, if it is.
    pub(crate) fn line(
        name: &str,
        c: &Counts,
        elapsed: Duration,
        waiting: Option<Duration>,
    ) -> String {
        let done = c.sent + c.rejected + c.failed + c.uncertain + c.given_up + c.suppressed;
        let secs = elapsed.as_secs_f64().max(0.001);
        #[allow(clippy::cast_precision_loss)] // a rate for people to read
        let rate = c.sent as f64 / secs;
        let mut out = format!(
            "{name}: read {} new {} | sent {} rejected {} failed {} | {rate:.1}/s",
            c.read, c.new, c.sent, c.rejected, c.failed
        );
        let left = c.new.saturating_sub(done + c.skipped);
        if left > 0 && rate > 0.0 {
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let eta = Duration::from_secs((left as f64 / rate).ceil() as u64);
            let _ = write!(out, " | about {} left", humantime::format_duration(eta));
        }
        if let Some(wait) = waiting {
            let wait = Duration::from_secs(wait.as_secs());
            let wait = humantime::format_duration(wait)
                .to_string()
                .replace(' ', "");
            let _ = write!(out, " | waiting {wait} for Trustpilot's rate window");
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_progress_line_says_what_is_done_how_fast_and_what_it_waits_for() {
            let counts = Counts {
                read: 1_000,
                new: 300,
                sent: 100,
                rejected: 2,
                ..Counts::default()
            };
            let text = line(
                "orders",
                &counts,
                Duration::from_secs(50),
                Some(Duration::from_secs(292)),
            );
            assert_eq!(
                text,
                "orders: read 1000 new 300 | sent 100 rejected 2 failed 0 | 2.0/s | about 1m 39s left | waiting 4m52s for Trustpilot's rate window"
            );
            let idle = line("orders", &Counts::default(), Duration::from_secs(1), None);
            assert_eq!(
                idle,
                "orders: read 0 new 0 | sent 0 rejected 0 failed 0 | 0.0/s"
            );
        }
    }
}
