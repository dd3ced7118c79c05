//! What `retl schedule` serves: `/healthz`, `/metrics` (Prometheus text),
//! `/api/runs`, `/api/runs/{id}`, the run-log page at `/` and, with
//! `--api-token-file`, `POST /api/activations/{name}/runs`.
//!
//! Its metrics are `metrics.rs`'s, the API for other tools and its token
//! `api.rs`'s.
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
use retl_state::{RowOutcome, RunFilter, RunMatch, RunStatus, RunSummary, State};
use serde::Deserialize;

use super::metrics::Metrics;

/// What the handlers share.
struct Web {
    state: State,
    metrics: Arc<Metrics>,
    state_url: String,
}

/// Who may ask what of the daemon: the hosts it answers to, the API token,
/// and where on-demand runs are sent (none without a token).
pub(crate) struct Access {
    /// `--allowed-host` and the listen address.
    pub hosts: AllowedHosts,
    /// The bearer token and where it is needed.
    pub auth: super::api::Auth,
    /// The daemon loop's inbox for `POST /api/activations/{name}/runs`.
    pub triggers: Option<tokio::sync::mpsc::Sender<super::api::Trigger>>,
}

/// The daemon's routes.
pub(crate) fn router(
    state: State,
    metrics: Arc<Metrics>,
    state_url: &str,
    access: Access,
) -> axum::Router {
    let web = Arc::new(Web {
        state,
        metrics,
        state_url: State::masked(state_url),
    });
    let mut router = axum::Router::new()
        .route("/", get(page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(serve_metrics))
        .route("/api/runs", get(api_runs))
        .route("/api/runs/{id}", get(api_run));
    if let Some(triggers) = access.triggers {
        router = router.route(
            "/api/activations/{name}/runs",
            axum::routing::post(super::api::start_run).with_state(triggers),
        );
    }
    router
        .with_state(web)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(access.auth),
            super::api::check_token,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(access.hosts),
            check_host,
        ))
}

/// The names a request's `Host` may give: the listen address, its name
/// (`localhost` for a loopback address), and the names of `--allowed-host`.
/// Anything else is answered 421, so that a page in a browser cannot read
/// the run logs through a name that resolves here (DNS rebinding).
#[derive(Debug, Clone)]
pub(crate) struct AllowedHosts {
    names: Vec<String>,
    port: u16,
}

impl AllowedHosts {
    /// The hosts of a daemon listening on `listen`, plus `extra` names.
    pub(crate) fn new(listen: std::net::SocketAddr, extra: &[String]) -> AllowedHosts {
        let mut names: Vec<String> = extra.iter().map(|n| n.to_ascii_lowercase()).collect();
        names.push(match listen.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            std::net::IpAddr::V4(ip) => ip.to_string(),
        });
        if listen.ip().is_loopback() {
            names.extend(["localhost", "127.0.0.1", "[::1]"].map(str::to_owned));
        }
        AllowedHosts {
            names,
            port: listen.port(),
        }
    }

    /// Whether a `Host` header's value names this daemon.
    pub(crate) fn allows(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        // `name`, or `name:port` with this daemon's port.
        let (name, port) = match host.rsplit_once(':') {
            Some((name, port)) if !port.contains(']') => (name, Some(port)),
            _ => (host.as_str(), None),
        };
        let port_ok = port.is_none_or(|p| p.parse::<u16>() == Ok(self.port));
        port_ok
            && self
                .names
                .iter()
                .any(|allowed| allowed == name || allowed == &host)
    }
}

async fn check_host(
    Extract(hosts): Extract<Arc<AllowedHosts>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(axum::http::uri::Authority::as_str)
        });
    match host {
        Some(host) if hosts.allows(host) => next.run(request).await,
        _ => (
            StatusCode::MISDIRECTED_REQUEST,
            "421 Misdirected Request: this daemon answers only to its listen address and --allowed-host names\n",
        )
            .into_response(),
    }
}

/// How the daemon's HTTP side guards itself against clients that hold
/// connections: a deadline for a request's head, and a connection limit
/// kept below the process's file limit (runs need files too).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServeLimits {
    /// A client must send a request's head within this long.
    pub header_timeout: Duration,
    /// At most this many connections at once; more wait to be accepted.
    pub max_connections: usize,
}

/// Serves `app` on `listener` under `limits`. Written on hyper directly
/// (not `axum::serve`) because that has neither a head timeout nor a
/// connection limit.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: ServeLimits,
) {
    let places = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    loop {
        let Ok(place) = places.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of files, say: wait a moment rather than spin.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "an HTTP connection ended");
            }
            drop(place);
        });
    }
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

/// `?limit=&after=`: a page of a run's rows.
#[derive(Debug, Deserialize)]
struct RowsQuery {
    /// At most this many rows (default [`ROWS_PAGE`], at most [`ROWS_PAGE_MAX`]).
    limit: Option<u32>,
    /// Rows after this position (`next_after` of the previous page).
    after: Option<i64>,
}

/// Rows of a run per page, unless `?limit=` says otherwise.
const ROWS_PAGE: u32 = 500;
/// The most rows one page holds: a run of any size is read a page at a time.
const ROWS_PAGE_MAX: u32 = 5_000;

async fn api_run(
    Extract(web): Extract<Arc<Web>>,
    Path(id): Path<String>,
    Query(q): Query<RowsQuery>,
) -> Response {
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
    let limit = q.limit.unwrap_or(ROWS_PAGE).clamp(1, ROWS_PAGE_MAX);
    let page = web.state.run_rows_page(&id, q.after, limit).await;
    let (summary, (rows, next)) = match (web.state.run(&id).await, page) {
        (Ok(Some(summary)), Ok(page)) => (summary, page),
        (Ok(None), _) => return failure(StatusCode::NOT_FOUND, "no such run"),
        (Err(e), _) | (_, Err(e)) => {
            return failure(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
        }
    };
    let mut value = serde_json::to_value(&summary).unwrap_or_default();
    value["rows"] = serde_json::to_value(&rows).unwrap_or_default();
    value["next_after"] = serde_json::to_value(next).unwrap_or_default();
    axum::Json(value).into_response()
}

/// `?run=ID[&after=N]` or `?q=REFERENCE_OR_KEY`.
#[derive(Debug, Deserialize)]
struct PageQuery {
    run: Option<String>,
    q: Option<String>,
    /// A run's rows after this position (the "next" link).
    after: Option<i64>,
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
th{background:#f4f4f4}.sent{color:#176f2c}.rejected,.failed{color:#a11}.uncertain,.refused,.given_up{color:#a60}\
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

#[allow(clippy::too_many_lines)] // one page, written top to bottom; its parts move to templates with the page's overhaul
async fn render(web: &Web, q: &PageQuery) -> Result<String, String> {
    let mut out = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>retl run logs</title>\
         <style>{STYLE}</style></head><body><h1><a href=\"/\">retl</a> run logs</h1>\
         <p>State: <code>{}</code></p>\
         <form method=\"get\" action=\"/\" role=\"search\"><label for=\"q\">Find a row by reference, key or the customer's email</label> \
         <input type=\"search\" id=\"q\" name=\"q\" value=\"{}\"> <button type=\"submit\">Search</button></form>",
        esc(&web.state_url),
        esc(q.q.as_deref().unwrap_or_default())
    );
    let problems = web.metrics.reload_problems();
    if !problems.is_empty() {
        out.push_str(
            "<div id=\"reload\" class=\"failed\"><p>The configuration has problems; \
             those files keep their previous version until fixed (then send SIGHUP):</p><ul>",
        );
        for problem in &problems {
            let _ = write!(out, "<li><code>{}</code></li>", esc(problem));
        }
        out.push_str("</ul></div>");
    }
    let allowances = web.metrics.allowance_table();
    if !allowances.is_empty() {
        out.push_str(
            "<h2>Allowances this month</h2><table id=\"allowances\"><tr><th>Activation</th><th>Of</th><th>Allowance</th><th>Sent</th><th>Left</th></tr>",
        );
        for (activation, a) in &allowances {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(activation),
                esc(&a.of),
                a.limit,
                a.sent,
                a.left()
            );
        }
        out.push_str("</table>");
    }
    let err = |e: retl_state::Error| e.to_string();
    if let Some(needle) = q.q.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        // An address is looked up by its keyed hash: emails are not stored.
        let rows = if needle.contains('@') {
            web.state.find_rows_by_contact(needle, None, 200).await
        } else {
            web.state.find_rows(needle, None, 200).await
        }
        .map_err(err)?;
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
                (None, true) => "No run logged this reference, key or email.".to_owned(),
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
                        .details
                        .status
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
        let (rows, next) = web
            .state
            .run_rows_page(&id, q.after, ROWS_PAGE)
            .await
            .map_err(err)?;
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
        if let Some(next) = next {
            let _ = write!(
                out,
                "<p><a id=\"next\" href=\"/?run={}&amp;after={next}\">Next {ROWS_PAGE} rows</a></p>",
                esc(&id)
            );
        }
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
    out.push_str("<table id=\"runs\"><tr><th>Run</th><th>Activation</th><th>Status</th><th>Started</th><th>Read</th><th>New</th><th>Sent</th><th>Rejected</th><th>Failed</th><th>Uncertain</th><th>Given up</th><th>Suppressed</th><th>Skipped</th><th>Reason</th></tr>");
    for r in runs {
        let c = &r.counts;
        let _ = write!(
            out,
            "<tr><td><a href=\"/?run={id}\">{id}</a></td><td>{}</td><td class=\"{status}\">{status}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.activation),
            esc(&r.started_at),
            c.read,
            c.new,
            c.sent,
            c.rejected,
            c.failed,
            c.uncertain,
            c.given_up,
            c.suppressed,
            c.skipped,
            esc(r.error.as_deref().unwrap_or_default()),
            id = esc(&r.run_id),
            status = r.status,
        );
    }
    out.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listen_address_its_name_and_allowed_hosts_are_answered() {
        let hosts = AllowedHosts::new("127.0.0.1:9187".parse().unwrap(), &["Retl.Internal".into()]);
        for host in [
            "127.0.0.1:9187",
            "127.0.0.1",
            "localhost:9187",
            "[::1]:9187",
            "retl.internal",
        ] {
            assert!(hosts.allows(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:9187",
            "localhost:80",
            "127.0.0.2:9187",
            "",
        ] {
            assert!(!hosts.allows(host), "{host}");
        }
        let public = AllowedHosts::new("0.0.0.0:80".parse().unwrap(), &[]);
        assert!(
            !public.allows("localhost"),
            "a public address has no name but its own"
        );
    }

    #[test]
    fn text_from_the_state_cannot_become_markup() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
