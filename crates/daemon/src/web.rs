//! What `retl schedule` serves: `/healthz`, `/metrics` (Prometheus text),
//! `/api/runs`, `/api/runs/{id}`, the run-log page at `/` and, with
//! `--api-token-file`, `POST /api/activations/{name}/runs`.
//!
//! Its metrics are `metrics.rs`'s, the API for other tools and its token
//! `api.rs`'s.
//!
//! The page is `page.rs`'s: plain HTML made on the server with maud (every
//! value escaped), no JavaScript.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State as Extract};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use retl_state::{RunFilter, RunMatch, RunStatus, State};
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
pub struct ServeLimits {
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
    let _ = web.metrics.config_drift();
    // Approvals are given by other processes (`retl approve`): read now.
    match web.state.open_approvals().await {
        Ok(open) => web.metrics.approvals(&open),
        Err(e) => tracing::warn!(error = %e, "cannot read the open approvals for /metrics"),
    }
    // Rows fail between the daemon's runs too (another process runs them).
    if let Ok(names) = web.state.activations_with_runs().await {
        for name in names {
            if let Ok(attention) = web.state.attention(&name).await {
                web.metrics.rows_failing(&name, attention.failing);
            }
        }
    }
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
        before: None,
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

async fn page(
    Extract(web): Extract<Arc<Web>>,
    Query(q): Query<super::page::PageQuery>,
) -> Response {
    let ctx = super::page::Context {
        state_url: &web.state_url,
        metrics: &web.metrics,
    };
    match super::page::render(&web.state, &ctx, &q).await {
        Ok(html) => Html(html).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Html(maud::html! { p { (e) } }.into_string()),
        )
            .into_response(),
    }
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
}
