//! The daemon's API for other tools: `POST /api/activations/{name}/runs`
//! starts a run now (a dbt Cloud webhook, an Airflow task), and the bearer
//! token that guards it and, with `--listen-public`, every route but
//! `/healthz`.

use std::sync::Arc;

use axum::extract::{Path, State as Extract};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, oneshot};

/// A request to start a run of an activation now, for the daemon's loop.
pub(crate) struct Trigger {
    /// The activation.
    pub name: String,
    /// Where the loop answers.
    pub reply: oneshot::Sender<Triggered>,
}

/// What the daemon's loop did with a [`Trigger`].
pub(crate) enum Triggered {
    /// The run started, with this id.
    Started(String),
    /// A run of it is under way.
    Running,
    /// Another process holds its lease (a `retl run`, another daemon):
    /// who, and for how long more at most.
    Held(String, std::time::Duration),
    /// No such activation (or its file has problems).
    Unknown(String),
    /// The daemon is stopping: no new run starts.
    Stopping,
}

/// The API's bearer token (`--api-token-file`), kept as its SHA-256: a
/// token is compared by digest, so the comparison's time says nothing of it.
pub(crate) struct Auth {
    digest: Option<[u8; 32]>,
    /// `--listen-public`: every route but `/healthz` needs the token.
    public: bool,
}

impl Auth {
    /// The token read from `file` (trimmed; it must not be empty), if one.
    pub(crate) fn new(token: Option<&str>, public: bool) -> Auth {
        Auth {
            digest: token.map(|t| Sha256::digest(t.as_bytes()).into()),
            public,
        }
    }

    /// Whether requests to `path` need the token.
    fn guards(&self, path: &str) -> bool {
        path != "/healthz" && (self.public || path.starts_with("/api/activations/"))
    }

    fn accepts(&self, headers: &axum::http::HeaderMap) -> bool {
        let Some(digest) = self.digest else {
            return false;
        };
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| {
                <[u8; 32]>::from(Sha256::digest(given.trim().as_bytes())) == digest
            })
    }
}

/// Reads the token of `--api-token-file`.
pub(crate) fn read_token(file: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("--api-token-file {}: {e}", file.display()))?;
    let token = text.trim();
    if token.len() < 16 {
        anyhow::bail!(
            "--api-token-file {}: the token must have at least 16 characters (e.g. `openssl rand -hex 32 > {}`)",
            file.display(),
            file.display()
        );
    }
    Ok(token.to_owned())
}

/// The middleware that asks for the bearer token where [`Auth`] says.
pub(crate) async fn check_token(
    Extract(auth): Extract<Arc<Auth>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // No token: no route needs one (and the one that would does not exist;
    // `--listen-public` cannot go without a token).
    if auth.digest.is_none()
        || !auth.guards(request.uri().path())
        || auth.accepts(request.headers())
    {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "401 Unauthorized: send Authorization: Bearer <the token of --api-token-file>\n",
    )
        .into_response()
}

/// `POST /api/activations/{name}/runs`: 202 with the run's id, 409 while a
/// run of it is under way, 404 for an unknown activation, 503 while the
/// daemon stops.
pub(crate) async fn start_run(
    Extract(triggers): Extract<mpsc::Sender<Trigger>>,
    Path(name): Path<String>,
) -> Response {
    let (reply, answer) = oneshot::channel();
    let stopping = || {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"activation": name, "error": "the daemon is stopping"})),
        )
            .into_response()
    };
    let trigger = Trigger {
        name: name.clone(),
        reply,
    };
    if triggers.send(trigger).await.is_err() {
        return stopping();
    }
    match answer.await {
        Ok(Triggered::Started(run_id)) => (
            StatusCode::ACCEPTED,
            axum::Json(
                serde_json::json!({"activation": name, "run_id": run_id, "status": "started"}),
            ),
        )
            .into_response(),
        Ok(Triggered::Running) => (
            StatusCode::CONFLICT,
            axum::Json(
                serde_json::json!({"activation": name, "error": "a run of it is under way"}),
            ),
        )
            .into_response(),
        Ok(Triggered::Held(holder, left)) => (
            StatusCode::CONFLICT,
            axum::Json(serde_json::json!({
                "activation": name,
                "error": format!("another process runs it: {holder} holds its lease (for {}s more at most)", left.as_secs()),
                "holder": holder,
            })),
        )
            .into_response(),
        Ok(Triggered::Unknown(why)) => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"activation": name, "error": why})),
        )
            .into_response(),
        Ok(Triggered::Stopping) | Err(_) => stopping(),
    }
}
