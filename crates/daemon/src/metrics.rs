//! The daemon's metrics, as `/metrics` serves them (Prometheus text): runs
//! and rows by activation, Trustpilot's answers and their durations, when
//! each activation runs next and last succeeded, whether it is blocked by a
//! refusal, and whether the configuration as last loaded has problems.

use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use retl_state::{RunStatus, RunSummary};

type Labels = Vec<(String, String)>;

/// A scheduled activation, as the daemon's plan has it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Planned {
    /// When it runs next (`None` while a run is under way or unscheduled).
    pub next: Option<DateTime<Utc>>,
    /// Its schedule.
    pub schedule: Option<retl_engine::schedule::Schedule>,
}

/// The daemon's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    runs: Family<Labels, Counter>,
    rows: Family<Labels, Counter>,
    requests: Family<Labels, Counter>,
    rate_limited: Counter,
    latency: Histogram,
    next_run: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    last_success: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// What stands now, per activation: set, not counted.
    gauges: Gauges,
    alerts: Family<Labels, Counter>,
    /// Each scheduled activation's next run and schedule, for the page.
    plan: std::sync::Mutex<std::collections::BTreeMap<String, Planned>>,
    /// Each activation's monthly allowances, for the page.
    allowances: std::sync::Mutex<std::collections::BTreeMap<String, Vec<retl_engine::Allowance>>>,
    /// The problems of the configuration as last loaded (at the start or by
    /// SIGHUP), for the page.
    reload_problems: std::sync::Mutex<Vec<String>>,
    /// The configuration files as loaded, against those on disk.
    pub(crate) drift: super::drift::Drift,
}

/// The metrics that say what stands now (set, not counted).
struct Gauges {
    reload_failed: Gauge,
    changed_on_disk: Gauge,
    blocked: Family<Labels, Gauge>,
    allowance_left: Family<Labels, Gauge>,
    allowance_limit: Family<Labels, Gauge>,
    approval_open: Family<Labels, Gauge>,
    rows_failing: Family<Labels, Gauge>,
}

impl Gauges {
    /// The gauges, registered in `registry`.
    fn new(registry: &mut Registry) -> Gauges {
        let gauges = Gauges {
            reload_failed: Gauge::default(),
            changed_on_disk: Gauge::default(),
            blocked: Family::default(),
            allowance_left: Family::default(),
            allowance_limit: Family::default(),
            approval_open: Family::default(),
            rows_failing: Family::default(),
        };
        registry.register(
            "config_reload_failed",
            "1 when the configuration as last (re)loaded had problems (those files keep their previous version), else 0",
            gauges.reload_failed.clone(),
        );
        registry.register(
            "config_changed_on_disk",
            "1 while the configuration files on disk differ from those the daemon loaded (it runs the loaded ones until SIGHUP), else 0",
            gauges.changed_on_disk.clone(),
        );
        registry.register(
            "activation_blocked",
            "1 while an activation's last run was refused by a safety limit, else 0",
            gauges.blocked.clone(),
        );
        registry.register(
            "allowance_left",
            "What is left this month (UTC) of each limits.max_per_month an activation sends under (of: activation or destination)",
            gauges.allowance_left.clone(),
        );
        registry.register(
            "allowance_limit",
            "Each limits.max_per_month an activation sends under (of: activation or destination)",
            gauges.allowance_limit.clone(),
        );
        registry.register(
            "approval_open",
            "1 while an approval (retl approve) is open for an activation's next run, which then goes past its safety limits once (kind: answer or ahead), else 0",
            gauges.approval_open.clone(),
        );
        registry.register(
            "rows_failing",
            "Rows of an activation whose last request failed transiently and that are not given up yet (retried by each run)",
            gauges.rows_failing.clone(),
        );
        gauges
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("retl");
        let gauges = Gauges::new(&mut registry);
        let runs = Family::<Labels, Counter>::default();
        let rows = Family::<Labels, Counter>::default();
        let requests = Family::<Labels, Counter>::default();
        let rate_limited = Counter::default();
        let latency = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let next_run = Family::default();
        let last_success = Family::default();
        let alerts = Family::<Labels, Counter>::default();
        registry.register(
            "alerts",
            "Alerts by channel and result (sent, failed after its tries)",
            alerts.clone(),
        );
        registry.register("runs", "Runs by activation and status", runs.clone());
        registry.register("rows", "Rows by activation and outcome", rows.clone());
        registry.register(
            "trustpilot_requests",
            "Trustpilot API calls by HTTP status (0: no answer)",
            requests.clone(),
        );
        registry.register(
            "trustpilot_rate_limited",
            "Trustpilot answers 429 Too Many Requests",
            rate_limited.clone(),
        );
        registry.register(
            "trustpilot_request_duration_seconds",
            "How long Trustpilot API calls took",
            latency.clone(),
        );
        registry.register(
            "next_run_timestamp_seconds",
            "When each scheduled activation runs next (Unix time)",
            next_run.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When each activation's last completed run finished (Unix time)",
            last_success.clone(),
        );
        Metrics {
            registry,
            runs,
            rows,
            requests,
            rate_limited,
            latency,
            next_run,
            last_success,
            gauges,
            alerts,
            allowances: std::sync::Mutex::default(),
            plan: std::sync::Mutex::default(),
            reload_problems: std::sync::Mutex::default(),
            drift: super::drift::Drift::default(),
        }
    }
}

fn label(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[allow(clippy::cast_precision_loss)] // Unix seconds are far below 2^52
fn unix(at: DateTime<Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}

impl Metrics {
    /// The configuration was (re)loaded with these problems (none: clean).
    pub(crate) fn reloaded(&self, problems: Vec<String>) {
        self.gauges
            .reload_failed
            .set(i64::from(!problems.is_empty()));
        *self
            .reload_problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = problems;
    }

    /// An activation's monthly allowances, as its last run (or the
    /// daemon's start) left them.
    pub(crate) fn allowances(&self, activation: &str, allowances: Vec<retl_engine::Allowance>) {
        for a in &allowances {
            let labels = label(&[("activation", activation), ("of", &a.of)]);
            self.gauges
                .allowance_left
                .get_or_create(&labels)
                .set(i64::try_from(a.left()).unwrap_or(i64::MAX));
            self.gauges
                .allowance_limit
                .get_or_create(&labels)
                .set(i64::try_from(a.limit).unwrap_or(i64::MAX));
        }
        self.allowances
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(activation.to_owned(), allowances);
    }

    /// Whether the configuration files on disk differ from those loaded:
    /// the message saying so, if they do.
    pub(crate) fn config_drift(&self) -> Option<String> {
        let changed = self.drift.changed();
        self.gauges
            .changed_on_disk
            .set(i64::from(changed.is_some()));
        changed
    }

    /// The approvals open now: 1 for each, 0 for those no longer open.
    pub(crate) fn approvals(&self, open: &[retl_state::Approval]) {
        self.gauges.approval_open.clear();
        for approval in open {
            let kind = if approval.refused_run.is_some() {
                "answer"
            } else {
                "ahead"
            };
            self.gauges
                .approval_open
                .get_or_create(&label(&[
                    ("activation", &approval.activation),
                    ("kind", kind),
                ]))
                .set(1);
        }
    }

    /// The rows failing now, per activation.
    pub(crate) fn rows_failing(&self, activation: &str, rows: u64) {
        self.gauges
            .rows_failing
            .get_or_create(&label(&[("activation", activation)]))
            .set(i64::try_from(rows).unwrap_or(i64::MAX));
    }

    /// An alert to `channel` was sent, or failed (`result`).
    pub(crate) fn alert(&self, channel: &str, result: &str) {
        self.alerts
            .get_or_create(&label(&[("channel", channel), ("result", result)]))
            .inc();
    }

    /// `activation`'s schedule, for the page to tell a stale activation.
    pub(crate) fn schedule(&self, activation: &str, schedule: retl_engine::schedule::Schedule) {
        self.plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(activation.to_owned())
            .or_default()
            .schedule = Some(schedule);
    }

    /// The scheduled activations: each one's next run and schedule.
    pub(crate) fn plan(&self) -> std::collections::BTreeMap<String, Planned> {
        self.plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Every activation's monthly allowances, for the page.
    pub(crate) fn allowance_table(&self) -> Vec<(String, retl_engine::Allowance)> {
        self.allowances
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .flat_map(|(name, list)| list.iter().map(|a| (name.clone(), a.clone())))
            .collect()
    }

    /// The problems of the configuration as last (re)loaded.
    pub(crate) fn reload_problems(&self) -> Vec<String> {
        self.reload_problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// One API call's answer.
    pub(crate) fn request(&self, status: u16, took: Duration) {
        self.requests
            .get_or_create(&label(&[("status", &status.to_string())]))
            .inc();
        if status == 429 {
            self.rate_limited.inc();
        }
        self.latency.observe(took.as_secs_f64());
    }

    /// A run that could not start (its status only).
    pub(crate) fn run_status(&self, activation: &str, status: RunStatus) {
        self.runs
            .get_or_create(&label(&[
                ("activation", activation),
                ("status", status.as_str()),
            ]))
            .inc();
    }

    /// A finished run: its status, its rows by outcome, and its end if it completed.
    pub(crate) fn run(&self, activation: &str, summary: &RunSummary) {
        self.run_status(activation, summary.status);
        self.gauges
            .blocked
            .get_or_create(&label(&[("activation", activation)]))
            .set(i64::from(summary.status == RunStatus::Refused));
        let c = &summary.counts;
        for (outcome, n) in [
            ("sent", c.sent),
            ("rejected", c.rejected),
            ("failed", c.failed),
            ("uncertain", c.uncertain),
            ("given_up", c.given_up),
            ("suppressed", c.suppressed),
            ("duplicate", c.duplicate),
            ("skipped", c.skipped),
            ("too_old", c.too_old),
            ("ignored_changed", c.ignored_changed),
            ("baseline", c.baseline),
        ] {
            self.rows
                .get_or_create(&label(&[("activation", activation), ("outcome", outcome)]))
                .inc_by(n);
        }
        if summary.status == RunStatus::Completed
            && let Some(end) = summary
                .finished_at
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        {
            self.last_success
                .get_or_create(&label(&[("activation", activation)]))
                .set(unix(end.to_utc()));
        }
    }

    /// When an activation runs next (`None`: not scheduled, or running now).
    pub(crate) fn next_run(&self, activation: &str, at: Option<DateTime<Utc>>) {
        self.plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(activation.to_owned())
            .or_default()
            .next = at;
        let labels = label(&[("activation", activation)]);
        match at {
            Some(at) => {
                self.next_run.get_or_create(&labels).set(unix(at));
            }
            None => {
                self.next_run.remove(&labels);
            }
        }
    }

    /// The Prometheus text exposition.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_prometheus_text_with_every_family() {
        let m = Metrics::default();
        m.request(202, Duration::from_millis(40));
        m.request(429, Duration::from_millis(5));
        m.next_run(
            "orders",
            Some(DateTime::from_timestamp(1_800_000_000, 0).unwrap()),
        );
        let text = m.text();
        assert!(
            text.contains("retl_trustpilot_requests_total{status=\"202\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("retl_trustpilot_rate_limited_total 1"),
            "{text}"
        );
        assert!(
            text.contains("retl_trustpilot_request_duration_seconds_count 2"),
            "{text}"
        );
        assert!(
            text.contains("retl_next_run_timestamp_seconds{activation=\"orders\"} 1800000000"),
            "{text}"
        );
        m.next_run("orders", None);
        assert!(!m.text().contains("activation=\"orders\""));
    }

    #[test]
    fn a_refused_run_blocks_its_activation_until_one_completes() {
        let m = Metrics::default();
        let mut summary = RunSummary {
            run_id: "r1".into(),
            activation: "orders".into(),
            status: RunStatus::Refused,
            counts: retl_state::Counts::default(),
            started_at: "2026-11-30T12:00:00.000Z".into(),
            finished_at: Some("2026-11-30T12:00:01.000Z".into()),
            error: Some("refused by a safety limit".into()),
        };
        m.run("orders", &summary);
        let text = m.text();
        assert!(
            text.contains("retl_activation_blocked{activation=\"orders\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("retl_runs_total{activation=\"orders\",status=\"refused\"} 1"),
            "{text}"
        );
        summary.status = RunStatus::Completed;
        m.run("orders", &summary);
        assert!(
            m.text()
                .contains("retl_activation_blocked{activation=\"orders\"} 0")
        );
        m.reloaded(vec!["orders.yaml:3:1: bad".into()]);
        assert!(m.text().contains("retl_config_reload_failed 1"));
        m.reloaded(Vec::new());
        assert!(m.text().contains("retl_config_reload_failed 0"));
    }
}
