//! What `retl schedule` serves: `/healthz`, `/metrics` (Prometheus text),
//! `/api/runs`, `/api/runs/{id}` and the run-log page at `/`.
//!
//! The page is plain HTML made on the server: recent runs with their counts,
//! one run's rows (`/?run=ID`), and a search box by reference or key
//! (`/?q=…`, a GET form). It needs no JavaScript at all. Everything it shows
//! from the state database is HTML-escaped.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State as Extract};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use retl_state::{RowOutcome, RunFilter, RunMatch, RunStatus, RunSummary, State};
use serde::Deserialize;

type Labels = Vec<(String, String)>;

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
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("retl");
        let runs = Family::<Labels, Counter>::default();
        let rows = Family::<Labels, Counter>::default();
        let requests = Family::<Labels, Counter>::default();
        let rate_limited = Counter::default();
        let latency = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let next_run = Family::default();
        let last_success = Family::default();
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
        let c = &summary.counts;
        for (outcome, n) in [
            ("sent", c.sent),
            ("rejected", c.rejected),
            ("failed", c.failed),
            ("uncertain", c.uncertain),
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

/// What the handlers share.
struct Web {
    state: State,
    metrics: Arc<Metrics>,
    state_url: String,
}

/// The daemon's routes.
pub(crate) fn router(state: State, metrics: Arc<Metrics>, state_url: &str) -> axum::Router {
    let web = Arc::new(Web {
        state,
        metrics,
        state_url: State::masked(state_url),
    });
    axum::Router::new()
        .route("/", get(page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(serve_metrics))
        .route("/api/runs", get(api_runs))
        .route("/api/runs/{id}", get(api_run))
        .with_state(web)
}

async fn serve_metrics(Extract(web): Extract<Arc<Web>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        web.metrics.text(),
    )
        .into_response()
}

fn failure(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({"error": message}))).into_response()
}

/// `?activation=&status=&limit=`.
#[derive(Debug, Deserialize)]
struct RunsQuery {
    activation: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
}

async fn api_runs(Extract(web): Extract<Arc<Web>>, Query(q): Query<RunsQuery>) -> Response {
    let status = match q.status.as_deref().map(str::parse::<RunStatus>).transpose() {
        Ok(status) => status,
        Err(e) => return failure(StatusCode::BAD_REQUEST, &e),
    };
    let filter = RunFilter {
        activation: q.activation.as_deref(),
        status,
        since: None,
    };
    match web
        .state
        .find_runs(&filter, q.limit.unwrap_or(50).min(1000))
        .await
    {
        Ok(runs) => axum::Json(runs).into_response(),
        Err(e) => failure(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn api_run(Extract(web): Extract<Arc<Web>>, Path(id): Path<String>) -> Response {
    let id = match web.state.match_run(&id, None).await {
        Ok(RunMatch::One(id)) => id,
        Ok(RunMatch::None) => return failure(StatusCode::NOT_FOUND, "no such run"),
        Ok(RunMatch::Ambiguous(ids)) => {
            return failure(
                StatusCode::BAD_REQUEST,
                &format!("several runs match: {}", ids.join(", ")),
            );
        }
        Err(e) => return failure(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let (summary, rows) = match (web.state.run(&id).await, web.state.run_rows(&id).await) {
        (Ok(Some(summary)), Ok(rows)) => (summary, rows),
        (Ok(None), _) => return failure(StatusCode::NOT_FOUND, "no such run"),
        (Err(e), _) | (_, Err(e)) => {
            return failure(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
        }
    };
    let mut value = serde_json::to_value(&summary).unwrap_or_default();
    value["rows"] = serde_json::to_value(&rows).unwrap_or_default();
    axum::Json(value).into_response()
}

/// `?run=ID` or `?q=REFERENCE_OR_KEY`.
#[derive(Debug, Deserialize)]
struct PageQuery {
    run: Option<String>,
    q: Option<String>,
}

/// Escapes text for HTML element content and quoted attributes. Five
/// replacements: small enough that a crate would add more than it saves.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}\
th{background:#f4f4f4}.sent{color:#176f2c}.rejected,.failed{color:#a11}.uncertain{color:#a60}\
form{margin:1em 0}input[type=search]{width:20em}";

async fn page(Extract(web): Extract<Arc<Web>>, Query(q): Query<PageQuery>) -> Response {
    match render(&web, &q).await {
        Ok(html) => Html(html).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Html(format!("<p>{}</p>", esc(&e))),
        )
            .into_response(),
    }
}

async fn render(web: &Web, q: &PageQuery) -> Result<String, String> {
    let mut out = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>retl run logs</title>\
         <style>{STYLE}</style></head><body><h1><a href=\"/\">retl</a> run logs</h1>\
         <p>State: <code>{}</code></p>\
         <form method=\"get\" action=\"/\" role=\"search\"><label for=\"q\">Find a row by reference or key</label> \
         <input type=\"search\" id=\"q\" name=\"q\" value=\"{}\"> <button type=\"submit\">Search</button></form>",
        esc(&web.state_url),
        esc(q.q.as_deref().unwrap_or_default())
    );
    let err = |e: retl_state::Error| e.to_string();
    if let Some(needle) = q.q.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        let rows = web.state.find_rows(needle, None, 200).await.map_err(err)?;
        let sent = rows.iter().find(|r| r.row.outcome == RowOutcome::Sent);
        let _ = write!(
            out,
            "<h2>Search: {}</h2><p id=\"verdict\">{}</p>",
            esc(needle),
            match (sent, rows.is_empty()) {
                (Some(s), _) => format!(
                    "Sent at {} by run <a href=\"/?run={}\">{}</a> ({}).",
                    esc(&s.at),
                    esc(&s.run_id),
                    esc(&s.run_id),
                    esc(&s.activation)
                ),
                (None, true) => "No run logged this reference or key.".to_owned(),
                (None, false) => "Never sent. What the runs logged:".to_owned(),
            }
        );
        if !rows.is_empty() {
            out.push_str("<table id=\"found\"><tr><th>At</th><th>Run</th><th>Activation</th><th>Key</th><th>Reference</th><th>Outcome</th><th>Trustpilot</th><th>Reason</th></tr>");
            for r in &rows {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td><a href=\"/?run={}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&r.at),
                    esc(&r.run_id),
                    esc(&r.run_id),
                    esc(&r.activation),
                    esc(&r.row.key),
                    esc(r.row.reference.as_deref().unwrap_or_default()),
                    r.row.outcome,
                    r.row.outcome,
                    r.row
                        .status_code
                        .map(|c| format!("HTTP {c}"))
                        .unwrap_or_default(),
                    esc(r.row.reason.as_deref().unwrap_or_default()),
                );
            }
            out.push_str("</table>");
        }
    } else if let Some(given) = q.run.as_deref() {
        let RunMatch::One(id) = web.state.match_run(given, None).await.map_err(err)? else {
            return Ok(format!(
                "{out}<p>No run matches <code>{}</code>.</p></body></html>",
                esc(given)
            ));
        };
        let summary = web.state.run(&id).await.map_err(err)?;
        let rows = web.state.run_rows(&id).await.map_err(err)?;
        if let Some(s) = summary {
            let _ = write!(out, "<h2>Run {}</h2>", esc(&s.run_id));
            runs_table(&mut out, std::slice::from_ref(&s));
        }
        out.push_str("<table id=\"rows\"><tr><th>Key</th><th>Reference</th><th>Outcome</th><th>Reason</th></tr>");
        for r in &rows {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                esc(&r.key),
                esc(r.reference.as_deref().unwrap_or_default()),
                r.outcome,
                r.outcome,
                esc(r.reason.as_deref().unwrap_or_default()),
            );
        }
        out.push_str("</table>");
    } else {
        let runs = web
            .state
            .find_runs(&RunFilter::default(), 50)
            .await
            .map_err(err)?;
        out.push_str("<h2>Recent runs</h2>");
        runs_table(&mut out, &runs);
    }
    out.push_str("</body></html>");
    Ok(out)
}

fn runs_table(out: &mut String, runs: &[RunSummary]) {
    out.push_str("<table id=\"runs\"><tr><th>Run</th><th>Activation</th><th>Status</th><th>Started</th><th>Read</th><th>New</th><th>Sent</th><th>Rejected</th><th>Failed</th><th>Uncertain</th><th>Skipped</th></tr>");
    for r in runs {
        let c = &r.counts;
        let _ = write!(
            out,
            "<tr><td><a href=\"/?run={id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.activation),
            r.status,
            esc(&r.started_at),
            c.read,
            c.new,
            c.sent,
            c.rejected,
            c.failed,
            c.uncertain,
            c.skipped,
            id = esc(&r.run_id),
        );
    }
    out.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_state_cannot_become_markup() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }

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
}
