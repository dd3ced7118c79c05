//! Alerts (`configs/alerts.yaml`): after each run, by `retl run` and the
//! daemon alike, each rule is checked against the run; a rule that starts
//! to hold opens an incident in the state and alerts its channels once, and
//! the first completed run after it closes the incident and says
//! `recovered` once (`every: true`: every run it holds for alerts). `stale`
//! is checked after each run and, in the daemon, every minute.
//!
//! Sending is bounded (three tries, 10 s each, 1 s then 2 s apart; the
//! alerts of a run go to all their channels at once, and `retl run` gives
//! them 15 s together after its runs end) and never fails a run: a failed
//! alert is logged and counted (`retl_alerts_total{channel,result}`).

use std::sync::Arc;
use std::time::Duration;

use crate::rules::{Alerts, Channel, FAILING_AFTER, Rule, When};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use retl_state::{Attention, Counts, RunStatus, RunSummary, State};
use serde::Serialize;

/// Tries per alert and channel.
const TRIES: u32 = 3;
/// How long one try may take.
const TRY_TIMEOUT: Duration = Duration::from_secs(10);

/// An alert decided and not yet sent, with the channels it goes to.
pub type Queued = (Vec<String>, Alert);

/// How long `retl run` gives the alerts of its runs, all together, after
/// they end (`RETL_ALERTS_DEADLINE`, a hidden hook for tests, shortens it):
/// a receiver that never answers cannot hold its exit.
pub fn deadline() -> Duration {
    std::env::var("RETL_ALERTS_DEADLINE")
        .ok()
        .and_then(|text| retl_config::parse_duration(&text))
        .unwrap_or(Duration::from_secs(15))
}

/// One alert, as a webhook receives it (the JSON body).
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// The rule's `when` (`run_failed`, `refused`, `uncertain`, `given_up`,
    /// `rejected`, `stale`), `recovered` when its incident is over, or `test`.
    pub event: String,
    /// The rule that fired (for `recovered`: whose incident is over).
    pub rule: Option<String>,
    /// The activation.
    pub activation: String,
    /// The run that raised it (or ended it), if one.
    pub run_id: Option<String>,
    /// That run's status.
    pub status: Option<String>,
    /// What happened and what to do, in words.
    pub message: String,
    /// When the alert was made (RFC 3339, UTC).
    pub at: String,
    /// With `recovered`: when the incident opened.
    pub incident_opened_at: Option<String>,
    /// That run's counts.
    pub counts: Option<Counts>,
}

impl Alert {
    /// An alert of `event` for the incident `key` of `activation`, about
    /// run `summary` if there is one.
    fn new(
        state: &State,
        event: &str,
        key: &str,
        activation: &str,
        summary: Option<&RunSummary>,
        message: String,
    ) -> Alert {
        Alert {
            event: event.to_owned(),
            rule: Some(key.to_owned()),
            activation: activation.to_owned(),
            run_id: summary.map(|s| s.run_id.clone()),
            status: summary.map(|s| s.status.to_string()),
            message,
            at: now_text(state),
            incident_opened_at: None,
            counts: summary.map(|s| s.counts),
        }
    }
}

/// Sends the alerts of one configuration.
pub struct Notifier {
    alerts: Alerts,
    http: reqwest::Client,
    count: Option<Counter>,
}

/// Counts each alert sent or failed, by channel and result (`sent`,
/// `failed`): the daemon's `retl_alerts_total`.
pub type Counter = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// An incident's key: rules with the same key share it (two rules on
/// `run_failed` for two teams open one incident, alert both).
fn key(rule: &Rule) -> String {
    match rule.when {
        When::Rejected => format!("rejected>{}", rule.over.unwrap_or(0)),
        When::Stale => format!(
            "stale>{}",
            humantime::format_duration(rule.after.unwrap_or_default())
        ),
        When::Failing => format!(
            "failing>{}",
            humantime::format_duration(rule.after.unwrap_or(FAILING_AFTER))
        ),
        other => other.as_str().to_owned(),
    }
}

fn now_text(state: &State) -> String {
    state
        .clock()
        .now()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Notifier {
    /// A notifier for `alerts`, if the project has any rule.
    pub fn new(alerts: Option<&Alerts>, count: Option<Counter>) -> Option<Notifier> {
        let alerts = alerts.filter(|a| !a.rules.is_empty() || !a.channels.is_empty())?;
        // reqwest is built without a bundled crypto provider; use ring (an
        // error only means one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(TRY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("retl/", env!("CARGO_PKG_VERSION")))
            .build()
            .ok()?;
        Some(Notifier {
            alerts: alerts.clone(),
            http,
            count,
        })
    }

    /// After a run of `summary.activation`: the rules it makes hold open
    /// their incidents and alert; a completed run closes the others' and
    /// says they recovered. Then `stale`.
    pub async fn after_run(&self, state: &State, summary: &RunSummary) {
        let mut out = Vec::new();
        self.decide_after_run(state, summary, &mut out).await;
        self.send_all(out).await;
    }

    /// After several runs ended together (`retl run a b c`): their alerts
    /// all decided, then sent together within one [`deadline`]. They never
    /// fail a run, nor hold its exit past the deadline.
    pub async fn after_runs(&self, state: &State, summaries: &[&RunSummary]) {
        let sending = async {
            let mut out = Vec::new();
            for summary in summaries {
                self.decide_after_run(state, summary, &mut out).await;
            }
            self.send_all(out).await;
        };
        let deadline = deadline();
        if tokio::time::timeout(deadline, sending).await.is_err() {
            tracing::warn!(
                "alerts not all sent within {}s of the runs' end: a channel did not answer in time",
                deadline.as_secs()
            );
        }
    }

    /// What [`after_run`](Self::after_run) decides (incidents opened and
    /// closed in the state), its alerts added to `out` to be sent together.
    pub async fn decide_after_run(
        &self,
        state: &State,
        summary: &RunSummary,
        out: &mut Vec<Queued>,
    ) {
        let mut keys: Vec<String> = Vec::new();
        let timed = |r: &&Rule| matches!(r.when, When::Stale | When::Failing);
        let attention = state.attention(&summary.activation).await.ok();
        for rule in self.alerts.rules.iter().filter(|r| !timed(r)) {
            let key = key(rule);
            if keys.contains(&key) {
                continue;
            }
            keys.push(key.clone());
            let rules: Vec<&Rule> = self
                .alerts
                .rules
                .iter()
                .filter(|r| self::key(r) == key)
                .collect();
            match holds(rule, summary) {
                Some(message) => {
                    let opened = state
                        .open_incident(&summary.activation, &key, Some(&summary.run_id))
                        .await
                        .unwrap_or_else(|e| {
                            tracing::warn!(error = %e, "cannot record an alert incident; alerting anyway");
                            true
                        });
                    let alert = Alert::new(
                        state,
                        rule.when.as_str(),
                        &key,
                        &summary.activation,
                        Some(summary),
                        message,
                    );
                    for r in rules.iter().filter(|r| opened || r.every) {
                        out.push((r.notify.clone(), alert.clone()));
                    }
                }
                None => {
                    let Some(message) = over(rule, summary, attention.as_ref()) else {
                        continue;
                    };
                    let activation = &summary.activation;
                    self.recover(state, activation, &key, &rules, Some(summary), message, out)
                        .await;
                }
            }
        }
        self.decide_timed(state, &summary.activation, out).await;
    }

    /// After `retl runs settle` settled rows of `activation` by hand: the
    /// incidents about rows (`uncertain`, `given_up`) whose rows are all
    /// settled now are over, and say so.
    pub async fn after_settle(&self, state: &State, activation: &str, by: &str) {
        let Ok(attention) = state.attention(activation).await else {
            return;
        };
        let mut out = Vec::new();
        for rule in &self.alerts.rules {
            let left = match rule.when {
                When::Uncertain => attention.uncertain,
                When::GivenUp => attention.given_up,
                _ => continue,
            };
            if left == 0 {
                let key = key(rule);
                let message = format!(
                    "{key} is over: no row of `{activation}` is {key} any more (settled by {by} with `retl runs settle`)"
                );
                self.recover(state, activation, &key, &[rule], None, message, &mut out)
                    .await;
            }
        }
        self.send_all(out).await;
    }

    /// The rules that hold by time, between runs too: `stale` (no
    /// successful run for longer than `after`; a successful run closes it)
    /// and `failing` (rows failing for longer than `after`; closed once no
    /// row fails).
    pub async fn timed(&self, state: &State, activation: &str) {
        let mut out = Vec::new();
        self.decide_timed(state, activation, &mut out).await;
        self.send_all(out).await;
    }

    /// What [`timed`](Self::timed) decides, its alerts added to `out`.
    async fn decide_timed(&self, state: &State, activation: &str, out: &mut Vec<Queued>) {
        self.decide_stale(state, activation, out).await;
        self.decide_failing(state, activation, out).await;
    }

    /// `failing` rules for `activation`: rows failing for longer than
    /// `after` open the incident and alert once; no row failing closes it.
    async fn decide_failing(&self, state: &State, activation: &str, out: &mut Vec<Queued>) {
        let rules: Vec<&Rule> = self
            .alerts
            .rules
            .iter()
            .filter(|r| r.when == When::Failing)
            .collect();
        if rules.is_empty() {
            return;
        }
        let Ok(attention) = state.attention(activation).await else {
            return;
        };
        let now = state.clock().now();
        let since = attention
            .failing_since
            .as_deref()
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .map(|at| at.to_utc());
        for rule in rules {
            let key = key(rule);
            let after = rule.after.unwrap_or(FAILING_AFTER);
            let failing_for = since.map(|at| (now - at).to_std().unwrap_or_default());
            if attention.failing > 0 && failing_for.is_some_and(|f| f > after) {
                let opened = state
                    .open_incident(activation, &key, None)
                    .await
                    .unwrap_or(true);
                if opened || rule.every {
                    let message = format!(
                        "{} row(s) of `{activation}` have been failing for over {} (the first since {}): they are retried by each run until retry.give_up_after; the last error: {}",
                        attention.failing,
                        humantime::format_duration(after),
                        attention.failing_since.as_deref().unwrap_or("?"),
                        attention.last_error.as_deref().unwrap_or("none recorded")
                    );
                    let alert = Alert::new(state, "failing", &key, activation, None, message);
                    out.push((rule.notify.clone(), alert));
                }
            } else if attention.failing == 0 {
                let message =
                    format!("{key} is over: no row of `{activation}` is failing any more");
                self.recover(state, activation, &key, &[rule], None, message, out)
                    .await;
            }
        }
    }

    /// `stale` rules for `activation`, its alerts added to `out`.
    async fn decide_stale(&self, state: &State, activation: &str, out: &mut Vec<Queued>) {
        let now = state.clock().now();
        let last = state.last_success(activation).await.ok().flatten();
        // Never completed: its time counts from its first run (a new
        // activation, even one refused at once, is not stale before `after`
        // has passed; one that never ran is not stale at all).
        let first = match &last {
            Some(_) => None,
            None => state.first_run_started(activation).await.ok().flatten(),
        };
        let since = last
            .as_deref()
            .or(first.as_deref())
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .map(|at| at.to_utc());
        for rule in self.alerts.rules.iter().filter(|r| r.when == When::Stale) {
            let key = key(rule);
            let after = rule.after.unwrap_or_default();
            let late = since.is_some_and(|at| (now - at).to_std().unwrap_or_default() > after);
            if late {
                let opened = state
                    .open_incident(activation, &key, None)
                    .await
                    .unwrap_or(true);
                if opened || rule.every {
                    let message = match (&last, &first) {
                        (Some(at), _) => format!(
                            "no successful run for over {} (the last completed run started {at})",
                            humantime::format_duration(after)
                        ),
                        (None, first) => format!(
                            "no successful run for over {}: none has completed since its first run at {}",
                            humantime::format_duration(after),
                            first.as_deref().unwrap_or("?")
                        ),
                    };
                    let alert = Alert::new(state, "stale", &key, activation, None, message);
                    out.push((rule.notify.clone(), alert));
                }
            } else if last.is_some() {
                let message = format!("{key} is over: a run completed");
                self.recover(state, activation, &key, &[rule], None, message, out)
                    .await;
            }
        }
    }

    /// The incident `key` of `activation` is over (run `summary` completed,
    /// if one did): if it was open, its rules' channels hear `recovered`.
    #[allow(clippy::too_many_arguments)] // the incident, its rules, the run, and where its alert goes
    async fn recover(
        &self,
        state: &State,
        activation: &str,
        key: &str,
        rules: &[&Rule],
        summary: Option<&RunSummary>,
        message: String,
        out: &mut Vec<Queued>,
    ) {
        let Ok(Some(opened_at)) = state.close_incident(activation, key).await else {
            return;
        };
        let mut alert = Alert::new(state, "recovered", key, activation, summary, message);
        alert.incident_opened_at = Some(opened_at);
        for rule in rules {
            out.push((rule.notify.clone(), alert.clone()));
        }
    }

    /// `retl alerts test`: a test alert to every channel; each channel's result.
    pub async fn test(&self, state: &State) -> Vec<(String, Result<(), String>)> {
        let mut alert = Alert::new(
            state,
            "test",
            "",
            "-",
            None,
            "a test alert from `retl alerts test`: this channel works".to_owned(),
        );
        alert.rule = None;
        let mut results = Vec::new();
        for (name, channel) in &self.alerts.channels {
            results.push((name.clone(), self.deliver(name, channel, &alert).await));
        }
        results
    }

    /// Sends every alert of `out` to its channels, all at once (a channel
    /// that never answers holds up none of the others); a failure is logged
    /// and counted.
    pub async fn send_all(&self, out: Vec<Queued>) {
        let sends = out.iter().flat_map(|(names, alert)| {
            names.iter().filter_map(move |name| {
                let channel = self.alerts.channels.get(name)?;
                Some(async move {
                    if let Err(why) = self.deliver(name, channel, alert).await {
                        tracing::warn!(channel = %name, event = %alert.event, activation = %alert.activation, "alert not sent: {why}");
                    }
                })
            })
        });
        futures::future::join_all(sends).await;
    }

    /// Sends `alert` to `channel`, trying up to [`TRIES`] times.
    async fn deliver(&self, name: &str, channel: &Channel, alert: &Alert) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 0..TRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
            }
            let sent = tokio::time::timeout(TRY_TIMEOUT, self.send(channel, alert))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {}s", TRY_TIMEOUT.as_secs())));
            match sent {
                Ok(()) => {
                    self.count(name, "sent");
                    return Ok(());
                }
                Err(why) => last = why,
            }
        }
        self.count(name, "failed");
        Err(format!(
            "{} {name}: {last} (after {TRIES} tries)",
            channel.kind()
        ))
    }

    fn count(&self, channel: &str, result: &str) {
        if let Some(count) = &self.count {
            count(channel, result);
        }
    }

    async fn send(&self, channel: &Channel, alert: &Alert) -> Result<(), String> {
        match channel {
            Channel::Webhook { url } => {
                self.post(url, &serde_json::to_value(alert).unwrap_or_default())
                    .await
            }
            Channel::Slack { url } => {
                let text = format!(
                    "*retl* `{}`: *{}*: {}{}",
                    alert.activation,
                    alert.event,
                    alert.message,
                    alert
                        .run_id
                        .as_deref()
                        .map(|id| format!(" (run {id})"))
                        .unwrap_or_default()
                );
                self.post(url, &serde_json::json!({"text": text})).await
            }
            Channel::Email { smtp, from, to } => email(smtp, from, to, alert).await,
        }
    }

    async fn post(&self, url: &str, body: &serde_json::Value) -> Result<(), String> {
        // The URL is a secret (a Slack webhook's is its credential): errors
        // never quote it.
        let answer = self
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|e| format!("no answer: {}", e.without_url()))?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", answer.status()))
        }
    }
}

/// The user and password of an SMTP URL, percent-decoded (a `+` is a
/// `+`: a URL's userinfo is not a form), if it has a password.
fn smtp_credentials(url: &url::Url) -> Option<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    url.password()
        .map(|password| (decode(url.username()), decode(password)))
}

/// Whether `rule` holds for the run `summary`: the alert's message if so.
fn holds(rule: &Rule, summary: &RunSummary) -> Option<String> {
    let c = &summary.counts;
    let id = &summary.run_id;
    let error = summary.error.as_deref().unwrap_or("no reason recorded");
    match rule.when {
        When::RunFailed => (summary.status == RunStatus::Failed)
            .then(|| format!("run {id} failed: {error}")),
        When::Refused => (summary.status == RunStatus::Refused)
            .then(|| format!("run {id} was refused: {error}")),
        When::Uncertain => (c.uncertain + c.recovered > 0).then(|| {
            format!(
                "{} row(s) of run {id} may have reached the destination without an answer: check them, then `retl runs resend {id} --uncertain` for those that did not",
                c.uncertain + c.recovered
            )
        }),
        When::GivenUp => (c.given_up > 0).then(|| {
            format!(
                "{} row(s) of run {id} failed for longer than retry.give_up_after and were given up: `retl runs resend {id} --given-up` once the destination is back",
                c.given_up
            )
        }),
        When::Rejected => {
            let over = rule.over.unwrap_or(0);
            (c.rejected > over).then(|| {
                format!(
                    "{} row(s) rejected in run {id}, more than {over}: `retl runs show {id} --outcome rejected` says why",
                    c.rejected
                )
            })
        }
        When::Stale | When::Failing => None,
    }
}

/// Why an incident of `rule` is over after run `summary`, if it is: an
/// incident about rows (`uncertain`, `given_up`) when no such row is left
/// (`attention`; a later run completing does not settle them), any other
/// when the run completed.
fn over(rule: &Rule, summary: &RunSummary, attention: Option<&Attention>) -> Option<String> {
    let key = key(rule);
    let activation = &summary.activation;
    let left = match rule.when {
        When::Uncertain => attention.map(|a| a.uncertain),
        When::GivenUp => attention.map(|a| a.given_up),
        _ => {
            return (summary.status == RunStatus::Completed)
                .then(|| format!("{key} is over: run {} completed", summary.run_id));
        }
    };
    (left == Some(0)).then(|| {
        format!(
            "{key} is over: no row of `{activation}` is {key} any more (run {} ended {})",
            summary.run_id, summary.status
        )
    })
}

/// Sends `alert` by email through `smtp` (see [`retl_engine::config::alerts::smtp_problem`]).
async fn email(smtp: &str, from: &str, to: &[String], alert: &Alert) -> Result<(), String> {
    let url = url::Url::parse(smtp).map_err(|e| format!("smtp URL: {e}"))?;
    let host = url.host_str().ok_or("smtp URL: no host")?.to_owned();
    let plain = url.query_pairs().any(|(k, v)| k == "tls" && v == "none");
    let tls = || TlsParameters::new(host.clone()).map_err(|e| format!("TLS: {e}"));
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
        .timeout(Some(TRY_TIMEOUT));
    builder = match (url.scheme(), plain) {
        ("smtps", _) => builder
            .port(url.port().unwrap_or(465))
            .tls(Tls::Wrapper(tls()?)),
        (_, true) => builder.port(url.port().unwrap_or(25)).tls(Tls::None),
        _ => builder
            .port(url.port().unwrap_or(587))
            .tls(Tls::Required(tls()?)),
    };
    if let Some((user, password)) = smtp_credentials(&url) {
        builder = builder.credentials(Credentials::new(user, password));
    }
    let mailbox = |text: &str| {
        text.parse::<Mailbox>()
            .map_err(|e| format!("`{text}` is not an email address: {e}"))
    };
    let mut message = Message::builder()
        .from(mailbox(from)?)
        .subject(format!("retl: {}: {}", alert.activation, alert.event));
    for address in to {
        message = message.to(mailbox(address)?);
    }
    let body = format!(
        "{}\n\nactivation: {}\nevent: {}\nrun: {}\nstatus: {}\nat: {}\n",
        alert.message,
        alert.activation,
        alert.event,
        alert.run_id.as_deref().unwrap_or("-"),
        alert.status.as_deref().unwrap_or("-"),
        alert.at
    );
    let message = message.body(body).map_err(|e| e.to_string())?;
    builder
        .build()
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_smtp_password_is_percent_decoded_and_a_plus_stays_a_plus() {
        let url = url::Url::parse("smtp://re%40tl:p+ss%2Bw%20rd%40x@mail.example:587").unwrap();
        assert_eq!(
            smtp_credentials(&url),
            Some(("re@tl".to_owned(), "p+ss+w rd@x".to_owned()))
        );
        let url = url::Url::parse("smtp://mail.example:587").unwrap();
        assert_eq!(smtp_credentials(&url), None);
    }
}
