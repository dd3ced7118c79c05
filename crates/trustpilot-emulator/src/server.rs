//! The HTTP server and its state.
//!
//! One file on purpose: it is one independent reading of
//! the whole Trustpilot API (token, invitations, links, templates, business
//! units, invitation-data deletion, faults), kept together so that it reads side by side with the API
//! notes it follows.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{EmulatorConfig, Fault, validate};

/// An invitation the emulator accepted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredInvitation {
    /// The id the emulator gave it.
    pub id: String,
    /// The business unit of the request path.
    pub business_unit_id: String,
    /// `x-business-user-id`, if sent.
    pub business_user_id: Option<String>,
    /// `email` (email invitation) or `link` (invitation link).
    pub kind: String,
    /// The request body as received.
    pub body: Value,
}

impl StoredInvitation {
    /// The request's `referenceNumber` (email) or `referenceId` (link).
    pub fn reference(&self) -> Option<&str> {
        self.body
            .get("referenceNumber")
            .or_else(|| self.body.get("referenceId"))
            .and_then(Value::as_str)
    }
}

/// Request counts, for asserting how many calls a client made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Token requests, granted or not.
    pub token_requests: u64,
    /// Tokens granted.
    pub tokens_issued: u64,
    /// Email-invitation requests, whatever their answer.
    pub invitation_requests: u64,
    /// Invitation-link requests.
    pub link_requests: u64,
    /// Template-list requests.
    pub template_requests: u64,
    /// Invitations and links accepted.
    pub accepted: u64,
    /// Answers 400.
    pub bad_requests: u64,
    /// Answers 401 and 403.
    pub unauthorized: u64,
    /// Answers 429.
    pub rate_limited: u64,
    /// Faults injected (scripted or drawn).
    pub faults: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GrantKind {
    ClientCredentials,
    User,
}

#[derive(Debug, Default)]
struct Inner {
    tokens: HashMap<String, (Instant, GrantKind)>,
    refresh_tokens: HashSet<String>,
    invitations: Vec<StoredInvitation>,
    /// Every valid `invitation-data/delete` request body, in order.
    deletions: Vec<Value>,
    calls: VecDeque<Instant>,
    stats: Stats,
    script: VecDeque<Option<Fault>>,
    rng: u64,
    burst_left: u32,
}

impl Inner {
    /// The fault for the next invitation request, if any: the script first, then the shares.
    fn next_fault(&mut self, config: &EmulatorConfig) -> Option<Fault> {
        if let Some(scripted) = self.script.pop_front() {
            return scripted;
        }
        if self.burst_left > 0 {
            self.burst_left -= 1;
            return Some(Fault::TooManyRequests);
        }
        let shares = &config.faults;
        if shares.shares.iter().all(|s| *s <= 0.0) {
            return None;
        }
        // splitmix64: small, seedable, good enough to spread faults.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        #[allow(clippy::cast_precision_loss)] // 53 bits of a uniform draw are plenty
        let draw = (z >> 11) as f64 / (1u64 << 53) as f64;
        let mut edge = 0.0;
        for (fault, share) in Fault::ALL.iter().zip(shares.shares) {
            edge += share;
            if draw < edge {
                if *fault == Fault::TooManyRequests {
                    self.burst_left = shares.burst;
                }
                return Some(*fault);
            }
        }
        None
    }
}

struct Shared {
    config: EmulatorConfig,
    inner: Mutex<Inner>,
    /// Wakes answers that hang on purpose when the emulator stops.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

type AppState = Arc<Shared>;

/// A running emulator.
pub struct Emulator {
    addr: SocketAddr,
    shared: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<io::Result<()>>,
}

fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

fn error(status: StatusCode, message: &str, code: u32, details: Option<String>) -> Response {
    // Trustpilot's numeric error codes are undocumented except 1014; these are the emulator's.
    let mut body = json!({"message": message, "errorCode": code, "correlationId": new_id()});
    if let Some(details) = details {
        body["details"] = Value::String(details);
    }
    (status, axum::Json(body)).into_response()
}

fn too_many(app: &Shared) -> Response {
    let mut answer = error(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests",
        429,
        None,
    );
    if let Some(seconds) = app.config.retry_after {
        answer.headers_mut().insert(
            header::RETRY_AFTER,
            seconds
                .to_string()
                .parse()
                .expect("digits are a valid header"),
        );
    }
    answer
}

fn html(status: StatusCode, title: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html")],
        format!("<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"),
    )
        .into_response()
}

/// A fault answered before the request reaches the API (nothing is stored), or
/// `None` for faults that need the request processed first.
fn early_fault(app: &Shared, fault: Fault) -> Option<Response> {
    Some(match fault {
        Fault::ServerError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal server error, please retry in 5-15 minutes",
            500,
            None,
        ),
        Fault::CdnError => html(
            StatusCode::from_u16(521).expect("521 is a valid status"),
            "521: Web server is down",
        ),
        Fault::Unavailable => html(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable"),
        Fault::CdnBadRequest => html(StatusCode::BAD_REQUEST, "400 Bad Request"),
        Fault::CdnForbidden => html(StatusCode::FORBIDDEN, "403 Forbidden"),
        Fault::TooManyRequests => too_many(app),
        Fault::Drop => {
            // A status line goes out, then the body fails: the connection
            // breaks mid-answer. The status is a 500 (nothing was stored), so
            // the client knows only that something in between broke.
            let body = axum::body::Body::from_stream(futures::stream::once(async {
                Err::<Bytes, io::Error>(io::Error::other("connection dropped by the emulator"))
            }));
            (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
        }
        Fault::BadRequest => error(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            1001,
            Some("Product with SKU was not found in the product catalogue.".to_owned()),
        ),
        Fault::Redirect => (StatusCode::FOUND, [(header::LOCATION, "/login")], "").into_response(),
        Fault::AcceptThenHang
        | Fault::LinkNotJson
        | Fault::BadGatewayAfterAccept
        | Fault::GatewayTimeoutAfterAccept
        | Fault::UnknownAfterAccept
        | Fault::OriginTimeoutAfterAccept
        | Fault::AcceptThenStall => return None,
    })
}

/// The answer a fault gives after the request was carried out, if any.
fn late_fault(app: &Shared, fault: Fault, success: StatusCode) -> Option<Response> {
    let status = |code| StatusCode::from_u16(code).expect("a valid status");
    Some(match fault {
        Fault::BadGatewayAfterAccept => html(StatusCode::BAD_GATEWAY, "502 Bad Gateway"),
        Fault::GatewayTimeoutAfterAccept => {
            html(StatusCode::GATEWAY_TIMEOUT, "504 Gateway Time-out")
        }
        Fault::UnknownAfterAccept => {
            html(status(520), "520: Web server is returning an unknown error")
        }
        Fault::OriginTimeoutAfterAccept => html(status(524), "524: A timeout occurred"),
        Fault::AcceptThenStall => {
            // The start of the body, then nothing until the emulator stops.
            let mut stopping = app.stopping.subscribe();
            let rest = futures::stream::once(async move {
                let _ = stopping.wait_for(|stop| *stop).await;
                Err::<Bytes, io::Error>(io::Error::other("the emulator stopped"))
            });
            let start = futures::stream::iter([Ok(Bytes::from_static(b"{\"id\":"))]);
            let body = axum::body::Body::from_stream(futures::StreamExt::chain(start, rest));
            (success, body).into_response()
        }
        _ => return None,
    })
}

/// Where the `redirect` fault sends clients: a login page that answers 200.
async fn login_page() -> Response {
    html(StatusCode::OK, "Log in to Trustpilot Business")
}

/// Never answers (until the emulator stops): the client times out.
async fn hang(app: &Shared) -> Response {
    let mut stopping = app.stopping.subscribe();
    let _ = stopping.wait_for(|stop| *stop).await;
    StatusCode::SERVICE_UNAVAILABLE.into_response()
}

fn gateway_unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"fault": {"faultstring": "Invalid access token",
                                     "detail": {"errorcode": "oauth.v2.InvalidAccessToken"}}})),
    )
        .into_response()
}

impl Emulator {
    /// Starts serving on `addr` (use `127.0.0.1:0` for any free port).
    pub async fn start(config: EmulatorConfig, addr: SocketAddr) -> io::Result<Emulator> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let rng = config.faults.seed;
        let shared = Arc::new(Shared {
            config,
            inner: Mutex::new(Inner {
                rng,
                ..Inner::default()
            }),
            stopping: tokio::sync::watch::channel(false).0,
        });
        let app = Router::new()
            .route(
                "/v1/oauth/oauth-business-users-for-applications/accesstoken",
                post(token),
            )
            .route(
                "/v1/oauth/oauth-business-users-for-applications/refresh",
                post(token),
            )
            .route(
                "/v1/private/business-units/{bu}/email-invitations",
                post(email_invitation),
            )
            .route(
                "/v1/private/business-units/{bu}/invitation-links",
                post(invitation_link),
            )
            .route("/v1/private/business-units/{bu}/templates", get(templates))
            .route(
                "/v1/private/business-units/{bu}/invitation-data/delete",
                post(delete_invitation_data),
            )
            .route("/v1/business-units/{bu}", get(business_unit))
            .route("/login", get(login_page).post(login_page))
            .route("/_emulator/invitations", get(list_invitations))
            .route("/_emulator/stats", get(stats))
            .route("/_emulator/faults", post(script_faults))
            .with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
        });
        Ok(Emulator {
            addr,
            shared,
            shutdown: Some(tx),
            server,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, for both `endpoints.auth` and `endpoints.invitations`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every invitation accepted so far, in order.
    pub fn invitations(&self) -> Vec<StoredInvitation> {
        self.shared.lock().invitations.clone()
    }

    /// The bodies of the `invitation-data/delete` requests it carried out.
    pub fn deletions(&self) -> Vec<Value> {
        self.shared.lock().deletions.clone()
    }

    /// Request counts so far.
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats
    }

    /// Queues faults for the next invitation requests (`None`: answer normally).
    pub fn script_faults(&self, faults: impl IntoIterator<Item = Option<Fault>>) {
        self.shared.lock().script.extend(faults);
    }

    /// Serves until `stop` resolves, then shuts down gracefully.
    pub async fn serve_until(mut self, stop: impl Future<Output = ()>) -> io::Result<()> {
        stop.await;
        self.shared.stopping.send_replace(true);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.server).await.map_err(io::Error::other)?
    }

    /// Stops serving.
    pub async fn stop(self) -> io::Result<()> {
        self.serve_until(async {}).await
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shared.stopping.send_replace(true);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (key, secret) = text.split_once(':')?;
    Some((key.to_owned(), secret.to_owned()))
}

async fn token(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    tokio::time::sleep(app.config.latency).await;
    let oauth_error = |status: StatusCode, error: &str, description: &str| {
        (
            status,
            axum::Json(json!({"error": error, "error_description": description})),
        )
            .into_response()
    };
    let mut inner = app.lock();
    inner.stats.token_requests += 1;
    match basic_credentials(&headers) {
        Some((key, secret)) if key == app.config.api_key && secret == app.config.api_secret => {}
        _ => {
            inner.stats.unauthorized += 1;
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client credentials are invalid",
            );
        }
    }
    let form: HashMap<String, String> = url_form(&body);
    let grant = match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => GrantKind::ClientCredentials,
        Some("password") => {
            if form.get("username") != Some(&app.config.username)
                || form.get("password") != Some(&app.config.password)
            {
                inner.stats.unauthorized += 1;
                return oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_grant",
                    "Invalid username or password",
                );
            }
            GrantKind::User
        }
        Some("refresh_token") => {
            let known = form
                .get("refresh_token")
                .is_some_and(|t| inner.refresh_tokens.remove(t));
            if !known {
                inner.stats.unauthorized += 1;
                return oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_grant",
                    "Invalid refresh token",
                );
            }
            GrantKind::User
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Unsupported grant type",
            );
        }
    };
    let access = new_id();
    let lifetime = app.config.token_lifetime;
    inner
        .tokens
        .insert(access.clone(), (Instant::now() + lifetime, grant));
    inner.stats.tokens_issued += 1;
    let mut answer = json!({
        "access_token": access,
        // Trustpilot sends these as strings.
        "expires_in": app.config.advertised_lifetime.unwrap_or(lifetime).as_secs().to_string(),
        "issued_at": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
            .to_string(),
        "token_type": "BearerToken",
    });
    if grant == GrantKind::User {
        let refresh = new_id();
        inner.refresh_tokens.insert(refresh.clone());
        answer["refresh_token"] = Value::String(refresh);
    }
    (StatusCode::OK, axum::Json(answer)).into_response()
}

fn url_form(body: &[u8]) -> HashMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = |c: u8| char::from(c).to_digit(16);
                    match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                        (Some(hi), Some(lo)) => {
                            out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// The checks every private API call goes through, in the gateway's order:
/// rate limit, token, business unit, and (for calls made on a business user's
/// behalf, `needs_user`) the business user. `Err` is the answer to give.
fn admit(
    app: &Shared,
    inner: &mut Inner,
    headers: &HeaderMap,
    bu: &str,
    needs_user: bool,
) -> Result<(), Response> {
    let now = Instant::now();
    let longest = app
        .config
        .rate_limits
        .iter()
        .map(|w| w.window)
        .max()
        .unwrap_or(Duration::ZERO);
    while inner
        .calls
        .front()
        .is_some_and(|t| now.duration_since(*t) >= longest)
    {
        inner.calls.pop_front();
    }
    for window in &app.config.rate_limits {
        let in_window = inner
            .calls
            .iter()
            .rev()
            .take_while(|t| now.duration_since(**t) < window.window)
            .count();
        if in_window >= window.limit as usize {
            inner.stats.rate_limited += 1;
            // With `retry_after` set, the windows' 429s carry it too.
            return Err(too_many(app));
        }
    }
    inner.calls.push_back(now);

    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let grant = match bearer.and_then(|t| inner.tokens.get(t.trim())) {
        Some((expires, grant)) if *expires > now => *grant,
        _ => {
            inner.stats.unauthorized += 1;
            return Err(gateway_unauthorized());
        }
    };
    if !app.config.business_units.iter().any(|b| b == bu) {
        return Err(error(
            StatusCode::NOT_FOUND,
            "Business unit not found",
            1004,
            None,
        ));
    }
    // Trustpilot documents x-business-user-id on email invitations (and data
    // deletion); whether other endpoints check it is unknown, so they do not here.
    if needs_user && grant == GrantKind::ClientCredentials {
        let user = headers
            .get("x-business-user-id")
            .and_then(|v| v.to_str().ok());
        if user != Some(app.config.business_user_id.as_str()) {
            inner.stats.unauthorized += 1;
            return Err(error(
                StatusCode::FORBIDDEN,
                "Access to resource is forbidden",
                1014,
                None,
            ));
        }
    }
    Ok(())
}

fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, Response> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
            1015,
            None,
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            1001,
            Some(format!("The body is not valid JSON: {e}")),
        )
    })
}

fn append_log(app: &Shared, stored: &StoredInvitation) {
    if let Some(path) = &app.config.log_file {
        use std::io::Write as _;
        let line = serde_json::to_string(stored).unwrap_or_default();
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot append to the emulator's log file");
        }
    }
}

async fn email_invitation(
    State(app): State<AppState>,
    Path(bu): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    tokio::time::sleep(app.config.latency).await;
    let fault = {
        let mut inner = app.lock();
        inner.stats.invitation_requests += 1;
        let fault = inner.next_fault(&app.config);
        if let Some(fault) = fault {
            inner.stats.faults += 1;
            if fault == Fault::TooManyRequests {
                inner.stats.rate_limited += 1;
            }
            if let Some(answer) = early_fault(&app, fault) {
                return answer;
            }
        }
        fault
    };
    if let Err(answer) = accept_email_invitation(&app, &headers, bu, &body) {
        return answer;
    }
    if fault == Some(Fault::AcceptThenHang) {
        return hang(&app).await;
    }
    let status = StatusCode::from_u16(app.config.success_status).unwrap_or(StatusCode::ACCEPTED);
    if let Some(answer) = fault.and_then(|fault| late_fault(&app, fault, status)) {
        return answer;
    }
    if app.config.success_body.is_null() {
        status.into_response()
    } else {
        (status, axum::Json(app.config.success_body.clone())).into_response()
    }
}

/// Admits, validates and stores an email invitation; `Err` is the refusal to answer with.
fn accept_email_invitation(
    app: &Shared,
    headers: &HeaderMap,
    bu: String,
    body: &[u8],
) -> Result<(), Response> {
    let mut inner = app.lock();
    admit(app, &mut inner, headers, &bu, true)?;
    let body = json_body(headers, body).inspect_err(|_| inner.stats.bad_requests += 1)?;
    let mut details = validate::email_invitation(&body);
    if !app.config.accept_unknown_templates {
        details.extend(validate::unknown_templates(&body, &app.config.templates));
    }
    if !details.is_empty() {
        inner.stats.bad_requests += 1;
        return Err(error(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            1001,
            Some(details.join(" ")),
        ));
    }
    let stored = StoredInvitation {
        id: new_id(),
        business_unit_id: bu,
        business_user_id: headers
            .get("x-business-user-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        kind: "email".to_owned(),
        body,
    };
    append_log(app, &stored);
    inner.invitations.push(stored);
    inner.stats.accepted += 1;
    Ok(())
}

async fn invitation_link(
    State(app): State<AppState>,
    Path(bu): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    tokio::time::sleep(app.config.latency).await;
    let mut inner = app.lock();
    inner.stats.link_requests += 1;
    let fault = inner.next_fault(&app.config);
    if let Some(fault) = fault {
        inner.stats.faults += 1;
        if let Some(answer) = early_fault(&app, fault) {
            return answer;
        }
    }
    if let Err(answer) = admit(&app, &mut inner, &headers, &bu, false) {
        return answer;
    }
    let body = match json_body(&headers, &body) {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let email = body
        .get("email")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut parts = email.split('@');
    let valid = matches!((parts.next(), parts.next(), parts.next()), (Some(l), Some(d), None) if !l.is_empty() && d.contains('.'));
    if !valid {
        inner.stats.bad_requests += 1;
        return error(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            1001,
            Some("'Email' is not in the correct format.".to_owned()),
        );
    }
    let id = new_id();
    let stored = StoredInvitation {
        id: id.clone(),
        business_unit_id: bu,
        business_user_id: None,
        kind: "link".to_owned(),
        body,
    };
    append_log(&app, &stored);
    inner.invitations.push(stored);
    inner.stats.accepted += 1;
    let url = format!("https://www.trustpilot.com/evaluate-link/{id}");
    if fault == Some(Fault::LinkNotJson) {
        // The link exists, but the answer is not the JSON a client expects.
        return html(StatusCode::OK, "Link created");
    }
    (StatusCode::OK, axum::Json(json!({"id": id, "url": url}))).into_response()
}

/// `POST …/invitation-data/delete` (GDPR): `{"customerEmails": [...]}` or
/// `{"deleteOlderThan": "MM/DD/YYYY hh:mm:ss"}`, never both; the stored
/// invitations of those emails (compared without case) are deleted. Which of
/// day and month comes first in `deleteOlderThan` is not documented (the
/// example is `09/07/2013 13:37:00`): the emulator checks the shape only,
/// deletes nothing by date, and keeps the request.
async fn delete_invitation_data(
    State(app): State<AppState>,
    Path(bu): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    tokio::time::sleep(app.config.latency).await;
    let mut inner = app.lock();
    if let Err(answer) = admit(&app, &mut inner, &headers, &bu, true) {
        return answer;
    }
    let body = match json_body(&headers, &body) {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    if let Err(problem) = validate::deletion(&body) {
        inner.stats.bad_requests += 1;
        return error(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            1001,
            Some(problem),
        );
    }
    if let Some(emails) = body.get("customerEmails").and_then(Value::as_array) {
        let gone: Vec<String> = emails
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_lowercase)
            .collect();
        inner.invitations.retain(|i| {
            let email = i
                .body
                .get("consumerEmail")
                .or_else(|| i.body.get("email"))
                .and_then(Value::as_str)
                .map(str::to_lowercase);
            i.business_unit_id != bu || !email.is_some_and(|e| gone.contains(&e))
        });
    }
    inner.deletions.push(body);
    StatusCode::from_u16(app.config.deletion_status)
        .unwrap_or(StatusCode::OK)
        .into_response()
}

async fn templates(
    State(app): State<AppState>,
    Path(bu): Path<String>,
    headers: HeaderMap,
) -> Response {
    tokio::time::sleep(app.config.latency).await;
    let mut inner = app.lock();
    inner.stats.template_requests += 1;
    if let Err(answer) = admit(&app, &mut inner, &headers, &bu, false) {
        return answer;
    }
    (
        StatusCode::OK,
        axum::Json(json!({"templates": app.config.templates})),
    )
        .into_response()
}

/// The public Business Units API: the API key in an `apikey` header, no token.
async fn business_unit(
    State(app): State<AppState>,
    Path(bu): Path<String>,
    headers: HeaderMap,
) -> Response {
    tokio::time::sleep(app.config.latency).await;
    let key = headers.get("apikey").and_then(|v| v.to_str().ok());
    if key != Some(app.config.api_key.as_str()) {
        return error(StatusCode::UNAUTHORIZED, "Invalid API key", 1001, None);
    }
    if !app.config.business_units.contains(&bu) {
        return error(StatusCode::NOT_FOUND, "Business unit not found", 1004, None);
    }
    let name = &app.config.business_unit_name;
    (
        StatusCode::OK,
        axum::Json(json!({
            "id": bu,
            "displayName": name,
            "name": {"identifying": name, "referring": [name]},
        })),
    )
        .into_response()
}

async fn list_invitations(State(app): State<AppState>) -> Response {
    axum::Json(json!({"invitations": app.lock().invitations})).into_response()
}

#[derive(serde::Deserialize)]
struct Script {
    script: Vec<Option<Fault>>,
}

async fn script_faults(
    State(app): State<AppState>,
    axum::Json(script): axum::Json<Script>,
) -> Response {
    app.lock().script.extend(script.script);
    StatusCode::NO_CONTENT.into_response()
}

async fn stats(State(app): State<AppState>) -> Response {
    axum::Json(app.lock().stats).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_are_percent_decoded() {
        let form = url_form(b"grant_type=password&username=a%40b.co&password=p+w%21");
        assert_eq!(form["username"], "a@b.co");
        assert_eq!(form["password"], "p w!");
    }
}
