//! `retl schedule`: the daemon. It runs every activation that has a
//! `schedule:`, each on time and never overlapping itself, in one process (so
//! activations that share an API key share one rate limiter and one token),
//! and serves `/healthz`, `/metrics`, `/api/runs` and the run-log page.
//!
//! One loop owns the plan (activation → configuration, next due time, the run
//! under way). It wakes for the earliest due activation, a finished run,
//! SIGHUP (reload the configuration; a broken file keeps its previous version)
//! or SIGINT/SIGTERM (start nothing more, let the runs under way drain within
//! their deadline, record them, exit 0). The timing rules themselves are
//! `retl_engine::schedule`'s, tested there without waiting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use retl_engine::config::{Activation, Destination, Project};
use retl_state::{RunStatus, State};

use retl_alerts::Notifier;
use retl_engine::config::ConfigErrors;

use super::metrics::Metrics;
use super::web;

/// What the daemon needs of the program that starts it.
pub trait Host: Sync {
    /// The configuration as it is on disk now (at the start, at SIGHUP, for
    /// an activation asked for through the API).
    fn project(&self) -> Result<Project, ConfigErrors>;
    /// The configuration directory.
    fn config_dir(&self) -> &std::path::Path;
    /// The state database's URL, as the page shows it.
    fn state_url(&self) -> &str;
    /// Tells the operator something (a line on stderr).
    fn notice(&self, message: &str);
    /// The registry the configuration's destinations are read through (the
    /// daemon observes their requests for its metrics).
    fn registry(&self) -> &retl_engine::config::Registry;
}

/// Why the daemon could not start or go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The flags do not fit together (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The configuration cannot be used at the start (exit code 2).
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] retl_state::Error),
    /// The address cannot be served, or a signal cannot be watched.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

/// The flags of `retl schedule`.
pub struct ScheduleArgs {
    /// `--listen`.
    pub listen: SocketAddr,
    /// `--listen-public`: an address that is not loopback, with a token.
    pub listen_public: bool,
    /// `--api-token-file`: the API's bearer token.
    pub api_token_file: Option<std::path::PathBuf>,
    /// `--allowed-host`: names the page answers to besides the listen address.
    pub allowed_hosts: Vec<String>,
    /// The HTTP side's head timeout and connection limit.
    pub limits: web::ServeLimits,
}

/// A scheduled run's end: its activation, how it went, and its monthly
/// allowances after it.
type Ended = (
    String,
    Result<retl_engine::Finished, retl_engine::Error>,
    Result<Vec<retl_engine::Allowance>, retl_engine::Error>,
);

/// One scheduled activation.
struct Entry {
    activation: Activation,
    destination: Destination,
    /// When it runs next (`None`: never, e.g. made manual by a reload).
    next: Option<DateTime<Utc>>,
    /// Whether a run of it is under way.
    running: bool,
    /// Removed from the configuration (or made manual) while its run was
    /// under way: kept until that run ends, so that a reload which brings
    /// it back knows the run is its own, and starts no second one.
    removed: bool,
}

/// `retl schedule`: serves until `cancel` is cancelled, then lets the runs
/// under way drain and returns. `state` is the runs' pool, `web_state` the
/// page's and the API's own (two connections).
#[allow(clippy::too_many_lines)] // the daemon's one loop: starting due runs, waiting, reloading and stopping share its state
pub async fn serve(
    ctx: &dyn Host,
    args: &ScheduleArgs,
    state: State,
    web_state: State,
    cancel: retl_engine::Cancel,
) -> Result<(), Error> {
    let notice = |message: &str| ctx.notice(message);
    if !args.listen.ip().is_loopback() && !args.listen_public {
        return Err(Error::Usage(format!(
            "--listen {} is not a loopback address: the run-log page shows customers' references. Add --listen-public and --api-token-file to serve it with a token",
            args.listen
        )));
    }
    if args.listen_public && args.api_token_file.is_none() {
        return Err(Error::Usage(
            "--listen-public needs --api-token-file: every route but /healthz then asks for Authorization: Bearer TOKEN".to_owned(),
        ));
    }
    let token = match &args.api_token_file {
        Some(file) => {
            Some(super::api::read_token(file).map_err(|e| Error::Usage(format!("{e:#}")))?)
        }
        None => None,
    };
    let project = ctx.project()?;
    for problem in &project.problems {
        notice(&format!("warning: {problem}"));
    }
    let metrics = Arc::new(Metrics::default());
    metrics.reloaded(project.problems.iter().map(ToString::to_string).collect());
    metrics.drift.loaded(ctx.config_dir(), now_text(&state));
    let mut notifier =
        Notifier::new(project.alerts.as_ref(), Some(alert_counter(&metrics))).map(Arc::new);
    {
        let metrics = metrics.clone();
        ctx.registry().observe_requests(
            &(Arc::new(move |status, took| metrics.request(status, took))
                as retl_engine::config::RequestObserver),
        );
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| Error::Io {
            what: format!("cannot listen on {}", args.listen),
            source,
        })?;
    let address = listener.local_addr().map_err(|source| Error::Io {
        what: "cannot read the listening address".to_owned(),
        source,
    })?;
    let (triggers, mut inbox) = tokio::sync::mpsc::channel::<super::api::Trigger>(16);
    let access = web::Access {
        hosts: web::AllowedHosts::new(address, &args.allowed_hosts),
        auth: super::api::Auth::new(token.as_deref(), args.listen_public),
        triggers: token.is_some().then_some(triggers),
    };
    let app = web::router(web_state, metrics.clone(), ctx.state_url(), access);
    let server = tokio::spawn(web::serve(listener, app, args.limits));

    let mut plan: BTreeMap<String, Entry> = BTreeMap::new();
    merge(&mut plan, &project, &state, &metrics).await?;
    let scheduled: Vec<String> = plan
        .iter()
        .map(|(name, e)| format!("{name} ({})", e.activation.schedule))
        .collect();
    notice(&format!(
        "retl schedule: serving http://{address} (run logs, /metrics, /api/runs); scheduled: {}",
        if scheduled.is_empty() {
            "none (no activation has a schedule:)".to_owned()
        } else {
            scheduled.join(", ")
        }
    ));

    // Runs are polled here rather than spawned: each run spawns its own
    // request tasks, and the daemon's loop only waits for their ends.
    let mut runs: FuturesUnordered<Running> = FuturesUnordered::new();
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|source| Error::Io {
            what: "cannot watch SIGHUP".to_owned(),
            source,
        })?;
    let clock = state.clock().clone();
    // `stale` rules are checked every minute (and after each run).
    let mut stale_check = tokio::time::interval(Duration::from_mins(1));
    loop {
        let now = clock.now();
        // Start everything due.
        if !cancel.is_cancelled() {
            for (name, entry) in &mut plan {
                if entry.running || entry.next.is_none_or(|at| at > now) {
                    continue;
                }
                runs.push(start(name, entry, &state, &cancel, None));
            }
        }
        for (name, entry) in &plan {
            metrics.next_run(name, entry.next.filter(|_| !entry.running));
        }
        if cancel.is_cancelled() && runs.is_empty() {
            break;
        }
        let wake = plan
            .values()
            .filter(|e| !e.running)
            .filter_map(|e| e.next)
            .min()
            .map_or(Duration::from_hours(1), |at| {
                (at - clock.now()).to_std().unwrap_or_default()
            });
        tokio::select! {
                    () = tokio::time::sleep(wake), if !cancel.is_cancelled() => {}
                    Some((name, finished, allowances)) = runs.next() => {
                        if let Ok(allowances) = allowances {
                            metrics.allowances(&name, allowances);
                        }
                        if let (Some(notifier), Ok(finished)) = (&notifier, &finished) {
                            // Alerts never hold the loop up.
                            let (notifier, state, summary) =
                                (notifier.clone(), state.clone(), finished.summary.clone());
                            tokio::spawn(async move { notifier.after_run(&state, &summary).await });
                        }
                        let now = clock.now();
                        let started = finished_run(&name, finished, &metrics, notice).unwrap_or(now);
                        if let Some(entry) = plan.get_mut(&name) {
                            entry.running = false;
                            entry.next = if cancel.is_cancelled() || entry.removed {
                                None
                            } else {
                                entry.activation.schedule.due_after_run(started, now)
                            };
                            if entry.removed {
                                plan.remove(&name);
                            }
                        }
                    }
                    _ = hangup.recv() => {
        if let Some(project) = reload(ctx, &mut plan, &state, &metrics).await? {
                            // A broken alerts.yaml keeps its previous version, as every file does.
                            let alerts_file = ctx.config_dir().join(retl_engine::config::alerts::ALERTS_FILE);
                            if project.alerts.is_some() || !alerts_file.is_file() {
                                notifier = Notifier::new(project.alerts.as_ref(), Some(alert_counter(&metrics)))
                                    .map(Arc::new);
                            }
                        }
                    }
                    _ = stale_check.tick() => {
                        // Said once per change, in the log and on the page.
                        let _ = metrics.config_drift();
                        if let Some(notifier) = &notifier {
                            for name in plan.keys() {
                                let (notifier, state, name) = (notifier.clone(), state.clone(), name.clone());
                                tokio::spawn(async move { notifier.timed(&state, &name).await });
                            }
                        }
                    }
                    Some(trigger) = inbox.recv() => {
                        let answer = on_demand(ctx, &mut plan, &trigger.name, &cancel, &state, &mut runs).await;
                        let _ = trigger.reply.send(answer);
                    }
                    () = cancel.cancelled(), if !cancel.is_cancelled() => {
                        notice("retl schedule: stopping: no new runs; runs under way drain and are recorded");
                    }
                }
    }
    server.abort();
    notice("retl schedule: stopped");
    Ok(())
}

/// A run's future, once it ends.
type Running = std::pin::Pin<Box<dyn Future<Output = Ended>>>;

/// Starts a run of `entry` (with the id `run_id`, if given).
fn start(
    name: &str,
    entry: &mut Entry,
    state: &State,
    cancel: &retl_engine::Cancel,
    run_id: Option<String>,
) -> Running {
    entry.running = true;
    let (state, activation, destination) = (
        state.clone(),
        entry.activation.clone(),
        entry.destination.clone(),
    );
    let options = retl_engine::RunOptions {
        cancel: cancel.clone(),
        drain: retl_engine::drain(&destination),
        // For tests, as `retl run --hold-at`: hold at an exact point.
        hold: std::env::var("RETL_HOLD_AT")
            .ok()
            .and_then(|h| h.parse().ok()),
        run_id,
        ..retl_engine::RunOptions::default()
    };
    let name = name.to_owned();
    Box::pin(async move {
        let finished = retl_engine::run_with(&state, &activation, &destination, &options).await;
        let allowances = retl_engine::allowances(&state, &activation).await;
        (name, finished, allowances)
    })
}

/// `POST /api/activations/{name}/runs`: starts a run of `name` now, unless
/// one is under way. An activation without a schedule is read from the
/// configuration as it is now, and leaves the plan when its run ends.
async fn on_demand(
    ctx: &dyn Host,
    plan: &mut BTreeMap<String, Entry>,
    name: &str,
    cancel: &retl_engine::Cancel,
    state: &State,
    runs: &mut FuturesUnordered<Running>,
) -> super::api::Triggered {
    use super::api::Triggered;
    if cancel.is_cancelled() {
        return Triggered::Stopping;
    }
    if !plan.contains_key(name) {
        let loaded = ctx.project().map_err(|e| e.to_string()).and_then(|p| {
            p.activation(name)
                .map(|(a, d)| (a.clone(), d.clone()))
                .map_err(|e| e.to_string())
        });
        match loaded {
            Ok((activation, destination)) => {
                plan.insert(
                    name.to_owned(),
                    Entry {
                        activation,
                        destination,
                        next: None,
                        running: false,
                        removed: true,
                    },
                );
            }
            Err(why) => return Triggered::Unknown(why),
        }
    }
    let entry = plan.get_mut(name).expect("inserted above if missing");
    if entry.running {
        return Triggered::Running;
    }
    // Another process's run (`retl run`, a second daemon) holds the lease:
    // a run started now could not take it.
    if let Ok(Some((holder, left))) = state.lease_holder(name).await {
        return Triggered::Held(holder, left);
    }
    let run_id = uuid::Uuid::now_v7().to_string();
    ctx.notice(&format!(
        "{name}: run {run_id} started on demand (POST /api/activations/{name}/runs)"
    ));
    runs.push(start(name, entry, state, cancel, Some(run_id.clone())));
    Triggered::Started(run_id)
}

/// SIGHUP: reads the configuration again and merges it into the plan; a
/// broken file keeps its previous version, and its problems are said, shown
/// on the page and counted in the metrics.
/// The state's time now, as stored.
fn now_text(state: &State) -> String {
    state
        .clock()
        .now()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn reload(
    ctx: &dyn Host,
    plan: &mut BTreeMap<String, Entry>,
    state: &State,
    metrics: &Metrics,
) -> Result<Option<Project>, Error> {
    let notice = |message: &str| ctx.notice(message);
    metrics.drift.loaded(ctx.config_dir(), now_text(state));
    match ctx.project() {
        Ok(project) => {
            // Counted before it is said: whoever reads the notice finds the metric.
            metrics.reloaded(project.problems.iter().map(ToString::to_string).collect());
            for problem in &project.problems {
                notice(&format!(
                    "reload: {problem} (its previous version keeps running)"
                ));
            }
            merge(plan, &project, state, metrics).await?;
            notice(&format!("reload: {} scheduled activation(s)", plan.len()));
            Ok(Some(project))
        }
        Err(e) => {
            let problem = e.to_string();
            metrics.reloaded(vec![problem.clone()]);
            notice(&format!(
                "reload failed, the previous configuration keeps running: {problem}"
            ));
            Ok(None)
        }
    }
}

/// Records a finished run in the metrics and says how it went; returns its start.
fn finished_run(
    name: &str,
    finished: Result<retl_engine::Finished, retl_engine::Error>,
    metrics: &Metrics,
    notice: impl Fn(&str),
) -> Option<DateTime<Utc>> {
    match finished {
        Ok(finished) => {
            let s = &finished.summary;
            metrics.run(name, s);
            let c = &s.counts;
            notice(&format!(
                "{name}: run {} {} (read {}, sent {}, rejected {}, failed {}, uncertain {}, given_up {}, suppressed {}){}",
                s.run_id,
                s.status,
                c.read,
                c.sent,
                c.rejected,
                c.failed,
                c.uncertain,
                c.given_up,
                c.suppressed,
                s.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
            DateTime::parse_from_rfc3339(&s.started_at)
                .ok()
                .map(|t| t.to_utc())
        }
        Err(e) if e.is_locked() => {
            notice(&format!(
                "{name}: not run, another run holds its lease: {}",
                retl_config::with_causes(&e)
            ));
            None
        }
        Err(e) => {
            metrics.run_status(name, RunStatus::Failed);
            notice(&format!(
                "{name}: the run could not start: {}",
                retl_config::with_causes(&e)
            ));
            None
        }
    }
}

/// Lays a freshly loaded project over the plan: activations with a schedule
/// are added or updated, those without are dropped, and an activation whose
/// file (or destination's file) is broken keeps its previous version.
async fn merge(
    plan: &mut BTreeMap<String, Entry>,
    project: &Project,
    state: &State,
    metrics: &Metrics,
) -> Result<(), Error> {
    let broken: Vec<&std::path::Path> = project
        .problems
        .iter()
        .filter_map(|p| p.location.as_ref().map(|l| l.file.as_path()))
        .collect();
    // An entry whose run is under way is retired, not dropped (see `Entry::removed`).
    let retire = |name: &str, entry: &mut Entry| {
        metrics.next_run(name, None);
        entry.next = None;
        entry.removed = true;
        entry.running
    };
    plan.retain(|name, entry| {
        let kept = project.activations.contains_key(name)
            || broken
                .iter()
                .any(|f| *f == entry.activation.file || *f == entry.destination.file());
        kept || retire(name, entry)
    });
    let now = state.clock().now();
    for (name, activation) in &project.activations {
        if !activation.schedule.is_scheduled() {
            if let Some(entry) = plan.get_mut(name)
                && !retire(name, entry)
            {
                plan.remove(name);
            }
            continue;
        }
        if let Ok(allowances) = retl_engine::allowances(state, activation).await {
            metrics.allowances(name, allowances);
        }
        metrics.schedule(name, activation.schedule.clone());
        let destination = project.destinations[&activation.destination].clone();
        match plan.get_mut(name) {
            Some(entry) => {
                let changed = entry.activation.schedule != activation.schedule || entry.removed;
                entry.activation = activation.clone();
                entry.destination = destination;
                entry.removed = false;
                if changed && !entry.running {
                    entry.next = first_due(state, activation, now).await?;
                }
            }
            None => {
                let next = first_due(state, activation, now).await?;
                plan.insert(
                    name.clone(),
                    Entry {
                        activation: activation.clone(),
                        destination,
                        next,
                        running: false,
                        removed: false,
                    },
                );
            }
        }
    }
    Ok(())
}

/// When an activation is first due, from its last run's start.
async fn first_due(
    state: &State,
    activation: &Activation,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, Error> {
    let last = state.list_runs(Some(&activation.name), 1).await?;
    let last_started = last
        .first()
        .and_then(|r| DateTime::parse_from_rfc3339(&r.started_at).ok())
        .map(|t| t.to_utc());
    Ok(activation.schedule.first_due(last_started, now))
}

/// Counts the daemon's alerts in its metrics (`retl_alerts_total`).
fn alert_counter(metrics: &Arc<Metrics>) -> retl_alerts::notify::Counter {
    let metrics = metrics.clone();
    Arc::new(move |channel, result| metrics.alert(channel, result))
}
