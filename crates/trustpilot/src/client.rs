//! The HTTP client: tokens, email invitations, invitation links, templates
//! and business units.
//!
//! One file on purpose: every private endpoint
//! goes through the same private request path (`ready`, `call_with`: token,
//! rate slot, one remint on 401, redirects refused, errors classed), and
//! splitting the endpoints from it would only export that path within the
//! crate. The one public endpoint, `business_unit_name` (the Business Units
//! API, with the API key and no token), takes a rate slot and classes its
//! errors the same way, but not that path.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde::Deserialize;

use crate::pace::RateWindow;
use crate::token::{self, Shared, Token};
use crate::{ApiError, EmailInvitation, Error, InvitationLink, Result, Secret};

/// The two Trustpilot hosts (configurable so tests and dry runs use the emulator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Where tokens are minted; Trustpilot's is `https://api.trustpilot.com`.
    pub auth: String,
    /// Where invitations are created; `https://invitations-api.trustpilot.com`.
    pub invitations: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            auth: "https://api.trustpilot.com".to_owned(),
            invitations: "https://invitations-api.trustpilot.com".to_owned(),
        }
    }
}

retl_config::spelled! {
    /// Which OAuth grant a destination uses (`auth.grant`): the spelling of
    /// [`Grant`] in the configuration and in the token request's `grant_type`.
    #[derive(Default)]
    pub enum GrantKind {
        /// The server grant (the default).
        #[default]
        ClientCredentials = "client_credentials",
        /// A business user's login (deprecated by Trustpilot, still served).
        Password = "password",
    }
}

/// How the access token is obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// `client_credentials`: no refresh token; invitation calls carry
    /// `x-business-user-id` (an Admin or Manager of the business).
    ClientCredentials {
        /// The business user the invitations are created on behalf of.
        business_user_id: Option<String>,
    },
    /// `password` (deprecated by Trustpilot, still served): a business user's login.
    Password {
        /// The business user's email.
        username: String,
        /// Their password.
        password: Secret,
    },
}

/// The application's API key and secret, and the grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The API key (OAuth client id).
    pub api_key: Secret,
    /// The API secret.
    pub api_secret: Secret,
    /// How to get a token.
    pub grant: Grant,
}

/// A token and a place under the rate limits, for one request ([`Client::ready`]).
/// Dropped unused, it gives its place back.
#[derive(Debug)]
pub struct Ticket {
    token: Secret,
    generation: u64,
    slot: crate::pace::Slot,
}

/// Everything a [`Client`] needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The hosts.
    pub endpoints: Endpoints,
    /// Key, secret, grant.
    pub credentials: Credentials,
    /// The whole-request timeout (connect, send, answer).
    pub timeout: Duration,
    /// The connect timeout.
    pub connect_timeout: Duration,
    /// Pacing windows for API calls (default: Trustpilot's 833/5 min and 10,000/h).
    pub rate_limits: Vec<RateWindow>,
    /// Where to keep the access token between runs (a file per credentials,
    /// readable by its owner only); `None`: only in memory.
    pub token_cache: Option<PathBuf>,
    /// What this client shares with the others of its registry entry (the
    /// token, the rate limiter, the request observer).
    pub context: Arc<crate::Context>,
}

impl ClientConfig {
    /// Settings with the default timeouts (30 s per request, 10 s to connect),
    /// Trustpilot's rate limits and no token cache.
    pub fn new(endpoints: Endpoints, credentials: Credentials) -> Self {
        ClientConfig {
            endpoints,
            credentials,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            rate_limits: RateWindow::trustpilot_defaults(),
            token_cache: None,
            context: Arc::default(),
        }
    }
}

/// A 2xx answer to an invitation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The status code (Trustpilot documents none in particular; any 2xx counts).
    pub status: u16,
    /// An id from the body, if the body carried one.
    pub id: Option<String>,
    /// What to note about the answer: its body could not be read (the status
    /// came, so the invitation exists; only its id is unknown).
    pub note: Option<String>,
}

/// A 2xx answer: its status, and its body or why it could not be read.
struct Answer {
    status: u16,
    body: Result<String, String>,
}

/// A created invitation link.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LinkCreated {
    /// The link's id.
    pub id: String,
    /// The link the consumer follows (`https://www.trustpilot.com/evaluate-link/…`).
    pub url: String,
}

/// An invitation template, as `GET …/templates` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// The id to use as `template_id`.
    pub id: String,
    /// Its name in Trustpilot's business app.
    #[serde(default)]
    pub name: String,
    /// Whether it is the business unit's default.
    #[serde(default)]
    pub is_default_template: bool,
    /// Its locale.
    #[serde(default)]
    pub locale: Option<String>,
    /// Its type (values undocumented by Trustpilot).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

#[derive(Deserialize)]
struct Templates {
    #[serde(default)]
    templates: Vec<Template>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    /// Trustpilot sends a string (`"359999"`); a number is accepted too.
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

/// A Trustpilot Invitation API client; cheap to share behind an `Arc`.
///
/// Clients built in one process with the same credentials share their access
/// token (minted once, by one caller at a time) and their pacing.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    config: ClientConfig,
    /// A hash of the auth host, key, secret and grant: names the shared token.
    identity: String,
    shared: Arc<Shared>,
}

fn trim_base(url: &str) -> &str {
    url.trim_end_matches('/')
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// What a transport failure means for the request. A connect error (refused,
/// DNS, the connect timeout, a TLS handshake) means nothing was sent; a
/// refused certificate is a configuration problem; anything later may have
/// reached Trustpilot. The connect timeout is kept below the total timeout
/// (see `Client::new`), so a timeout that is not a connect error fired after
/// the connection was made.
fn transport(e: reqwest::Error) -> Error {
    if crate::error::is_certificate_error(&e) {
        Error::Certificate(e)
    } else if e.is_connect() || e.is_builder() {
        Error::Connect(e)
    } else {
        Error::NoResponse(e)
    }
}

/// The host (and port) of a URL, to tell where a redirect points.
fn authority(url: &str) -> Option<(String, Option<u16>)> {
    let url = url::Url::parse(url).ok()?;
    Some((url.host_str()?.to_owned(), url.port_or_known_default()))
}

fn business_unit_path(business_unit: &str) -> Result<&str> {
    if business_unit.is_empty()
        || !business_unit
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::Config(format!(
            "business unit id `{business_unit}` may hold only letters, digits, - and _"
        )));
    }
    Ok(business_unit)
}

impl Client {
    /// Builds a client. No request is made until the first call.
    pub fn new(config: ClientConfig) -> Result<Self> {
        // reqwest is built without a bundled crypto provider; use ring. An error
        // here only means a provider is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        for (name, url) in [
            ("auth", &config.endpoints.auth),
            ("invitations", &config.endpoints.invitations),
        ] {
            if let Err(problem) = crate::config::check_endpoint(url) {
                return Err(Error::Config(format!("endpoints.{name}: {problem}")));
            }
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            // Below the total timeout, so that a connection never made fails as
            // a connect error (nothing sent), not as the total timeout (uncertain).
            .connect_timeout(config.connect_timeout.min(config.timeout / 2))
            // Never follow a redirect: a `sent` needs a 2xx from the endpoint
            // called, and the bearer token must not travel to another URL.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("retl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        let creds = &config.credentials;
        let who = match &creds.grant {
            Grant::ClientCredentials { business_user_id } => {
                format!(
                    "client_credentials:{}",
                    business_user_id.as_deref().unwrap_or_default()
                )
            }
            Grant::Password { username, .. } => format!("password:{username}"),
        };
        // The secret is part of the identity, so that a rotated secret never
        // reuses the old one's token; only its hash is kept.
        let identity = token::digest(&format!(
            "{}\n{}\n{}\n{who}",
            trim_base(&config.endpoints.auth),
            creds.api_key.expose(),
            creds.api_secret.expose()
        ));
        let pacing_key = token::digest(&format!(
            "{}\n{}",
            trim_base(&config.endpoints.invitations),
            creds.api_key.expose()
        ));
        let shared = config
            .context
            .shared(&identity, &pacing_key, config.rate_limits.clone());
        Ok(Client {
            http,
            config,
            identity,
            shared,
        })
    }

    /// Holds every request of this client (and of others with its API key) back
    /// for `duration`, after Trustpilot answered 429.
    pub fn pause(&self, duration: Duration) {
        self.shared.limiter.pause(duration);
    }

    /// A valid access token and its generation, minting one if needed.
    ///
    /// The lock is held while minting, so concurrent callers wait for one mint.
    async fn token(&self) -> Result<(Secret, u64)> {
        let mut slot = self.shared.token.lock().await;
        if let Some(token) = slot.as_ref()
            && token.fresh()
        {
            return Ok((token.access.clone(), token.generation));
        }
        let generation = slot.as_ref().map_or(1, |t| t.generation + 1);
        let cache = self.config.token_cache.as_deref();
        if slot.is_none()
            && let Some(mut cached) = cache.and_then(|dir| token::load(dir, &self.identity))
        {
            cached.generation = generation;
            let out = (cached.access.clone(), generation);
            *slot = Some(cached);
            return Ok(out);
        }
        let refresh = slot.as_ref().and_then(|t| t.refresh.clone());
        let token = self.mint(refresh, generation).await?;
        if let Some(dir) = cache
            && let Err(e) = token::save(dir, &self.identity, &token)
        {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot cache the access token; the next run mints a new one");
        }
        let out = (token.access.clone(), token.generation);
        *slot = Some(token);
        Ok(out)
    }

    /// Drops the token of `generation` (after a 401), unless a newer one replaced it.
    async fn invalidate(&self, generation: u64) {
        let mut slot = self.shared.token.lock().await;
        if let Some(token) = slot.as_mut()
            && token.generation == generation
        {
            token.renew_at = 0;
            if let Some(dir) = &self.config.token_cache {
                let _ = std::fs::remove_file(dir.join(token::cache_name(&self.identity)));
            }
        }
    }

    async fn mint(&self, refresh: Option<Secret>, generation: u64) -> Result<Token> {
        let creds = &self.config.credentials;
        let url = format!(
            "{}/v1/oauth/oauth-business-users-for-applications/accesstoken",
            trim_base(&self.config.endpoints.auth)
        );
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            creds.api_key.expose(),
            creds.api_secret.expose()
        ));
        let form: Vec<(&str, &str)> = match (&refresh, &creds.grant) {
            (Some(refresh), _) => vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.expose()),
            ],
            (None, Grant::ClientCredentials { .. }) => {
                vec![("grant_type", GrantKind::ClientCredentials.as_str())]
            }
            (None, Grant::Password { username, password }) => vec![
                ("grant_type", GrantKind::Password.as_str()),
                ("username", username),
                ("password", password.expose()),
            ],
        };
        let response = self
            .http
            .post(&url)
            .header(AUTHORIZATION, format!("Basic {basic}"))
            .form(&form)
            .send()
            .await
            // No invitation rides on a token request: any transport failure is
            // transient, but a refused certificate is a configuration problem.
            .map_err(|e| match transport(e) {
                Error::NoResponse(e) => Error::Connect(e),
                other => other,
            })?;
        let status = response.status().as_u16();
        let after = retry_after(response.headers());
        let body = response.text().await.map_err(Error::Connect)?;
        if (300..400).contains(&status) {
            return Err(Error::Redirect {
                status,
                location: None,
                same_host: false,
            });
        }
        if !(200..300).contains(&status) {
            if refresh.is_some() && status < 500 {
                // A stale refresh token: fall back to the grant itself, once.
                return Box::pin(self.mint(None, generation)).await;
            }
            return Err(Error::Auth(ApiError::from_body(status, after, &body)));
        }
        let parsed: TokenResponse = serde_json::from_str(&body)
            .map_err(|e| Error::TokenResponse(format!("{e} (status {status})")))?;
        let lifetime = match parsed.expires_in {
            Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            _ => None,
        }
        .map_or(Duration::from_hours(1), Duration::from_secs);
        let (lifetime, raised) = token::floored(lifetime);
        if raised
            && !self
                .shared
                .short_lifetime_warned
                .swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                floor_s = token::MIN_LIFETIME.as_secs(),
                "the token endpoint gave a token a lifetime under the floor; it is used that long"
            );
        }
        tracing::debug!(
            lifetime_s = lifetime.as_secs(),
            "minted a trustpilot access token"
        );
        Ok(Token {
            access: Secret::new(parsed.access_token),
            refresh: parsed.refresh_token.map(Secret::new),
            renew_at: token::renew_at(lifetime),
            generation,
        })
    }

    /// One paced, authenticated API call; the 2xx status and body, or the error.
    ///
    /// On a 401 or a JSON 403, mints a new token and retries once; a second
    /// refusal is returned (its class is [`Fatal`](crate::ErrorClass::Fatal)).
    async fn call(&self, url: &str, body: Option<&[u8]>, as_business_user: bool) -> Result<Answer> {
        let ticket = self.ready().await?;
        self.call_with(ticket, url, body, as_business_user).await
    }

    /// Waits for a token and a place under the rate limits: what a request
    /// needs before it can leave. The caller may do what must precede the
    /// request (mark it in flight) and then send it with the ticket; it can
    /// also drop the wait (an interrupt) with nothing sent.
    pub async fn ready(&self) -> Result<Ticket> {
        // Token first: a mint can take a moment, and the limiter must count
        // the call as close as possible to when Trustpilot sees it.
        let (token, generation) = self.token().await?;
        let slot = self.shared.limiter.acquire().await;
        Ok(Ticket {
            token,
            generation,
            slot,
        })
    }

    /// Sends one request with the token and rate slot of `ticket`. On a 401
    /// or a JSON 403, mints a new token, waits for another slot, and retries
    /// once.
    async fn call_with(
        &self,
        ticket: Ticket,
        url: &str,
        body: Option<&[u8]>,
        as_business_user: bool,
    ) -> Result<Answer> {
        let mut retried = false;
        let mut ticket = Some(ticket);
        loop {
            let Ticket {
                token,
                generation,
                slot,
            } = match ticket.take() {
                Some(ticket) => ticket,
                None => self.ready().await?,
            };
            let mut request = match body {
                Some(body) => self
                    .http
                    .post(url)
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.to_vec()),
                None => self.http.get(url),
            }
            .header(AUTHORIZATION, format!("Bearer {}", token.expose()));
            if as_business_user
                && let Grant::ClientCredentials {
                    business_user_id: Some(user),
                } = &self.config.credentials.grant
            {
                request = request.header("x-business-user-id", user);
            }
            // The windows count the call from now, when it really leaves.
            slot.sent();
            let started = std::time::Instant::now();
            let response = request.send().await.map_err(|e| {
                self.config.context.observe(0, started.elapsed());
                transport(e)
            })?;
            let status = response.status().as_u16();
            self.config.context.observe(status, started.elapsed());
            let after = retry_after(response.headers());
            let response_location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if (200..300).contains(&status) {
                // The status is Trustpilot's word that the request was carried
                // out: a body that breaks off afterwards changes nothing of that.
                let body = response
                    .text()
                    .await
                    .map_err(|e| retl_config::with_causes(&e));
                return Ok(Answer { status, body });
            }
            let text = response.text().await.map_err(transport)?;
            if (300..400).contains(&status) {
                let location = response_location.map(|l| {
                    url::Url::parse(url)
                        .and_then(|base| base.join(&l))
                        .map_or(l, |u| u.to_string())
                });
                let same_host = location.as_deref().and_then(authority) == authority(url);
                return Err(Error::Redirect {
                    status,
                    location,
                    same_host,
                });
            }
            let error = ApiError::from_body(status, after, &text);
            let auth_refused = status == 401 || (status == 403 && !error.is_html());
            if auth_refused && !retried {
                retried = true;
                self.invalidate(generation).await;
                continue;
            }
            return Err(Error::Api(error));
        }
    }

    fn business_unit_url(&self, business_unit: &str, endpoint: &str) -> Result<String> {
        Ok(format!(
            "{}/v1/private/business-units/{}/{endpoint}",
            trim_base(&self.config.endpoints.invitations),
            business_unit_path(business_unit)?
        ))
    }

    /// Creates one email invitation for `business_unit`.
    pub async fn create_email_invitation(
        &self,
        business_unit: &str,
        invitation: &EmailInvitation,
    ) -> Result<Accepted> {
        let ticket = self.ready().await?;
        self.send_email_invitation(ticket, business_unit, invitation)
            .await
    }

    /// Creates one email invitation with a ticket from [`ready`](Self::ready).
    pub async fn send_email_invitation(
        &self,
        ticket: Ticket,
        business_unit: &str,
        invitation: &EmailInvitation,
    ) -> Result<Accepted> {
        let url = self.business_unit_url(business_unit, "email-invitations")?;
        let body = serde_json::to_vec(invitation).map_err(|e| Error::Config(e.to_string()))?;
        let answer = self.call_with(ticket, &url, Some(&body), true).await?;
        // The success body is undocumented: keep an id if one is there.
        let (id, note) = match answer.body {
            Ok(text) => (
                serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("id").and_then(|id| id.as_str().map(str::to_owned))),
                None,
            ),
            Err(e) => (
                None,
                Some(format!(
                    "trustpilot answered HTTP {}, then the body broke off ({e}): sent, its id unknown",
                    answer.status
                )),
            ),
        };
        Ok(Accepted {
            status: answer.status,
            id,
            note,
        })
    }

    /// Creates one invitation link (the business sends it itself).
    pub async fn create_invitation_link(
        &self,
        business_unit: &str,
        link: &InvitationLink,
    ) -> Result<LinkCreated> {
        let ticket = self.ready().await?;
        self.send_invitation_link(ticket, business_unit, link).await
    }

    /// Creates one invitation link with a ticket from [`ready`](Self::ready).
    pub async fn send_invitation_link(
        &self,
        ticket: Ticket,
        business_unit: &str,
        link: &InvitationLink,
    ) -> Result<LinkCreated> {
        let url = self.business_unit_url(business_unit, "invitation-links")?;
        let body = serde_json::to_vec(link).map_err(|e| Error::Config(e.to_string()))?;
        let Answer { status, body } = self.call_with(ticket, &url, Some(&body), true).await?;
        // A body that broke off is unreadable too.
        let text = body.unwrap_or_default();
        // A 2xx means Trustpilot accepted the request: a body that cannot be
        // read makes the outcome uncertain, never a rejection.
        serde_json::from_str(&text).map_err(|_| Error::UnreadableSuccess {
            status,
            body: text.chars().take(200).collect(),
        })
    }

    /// Makes sure an access token is in hand, minting one if needed: proves
    /// the credentials (with no token cache, always a fresh mint).
    pub async fn authenticate(&self) -> Result<()> {
        self.token().await.map(|_| ())
    }

    /// The business unit's display name, from the public Business Units API
    /// (`GET {auth}/v1/business-units/{id}` with the API key in an `apikey`
    /// header). Trustpilot documents this endpoint for its public data; its
    /// exact body is not in the invitation docs, so the name is read from
    /// `displayName`, else `name.identifying`, and `None` when neither is there.
    pub async fn business_unit_name(&self, business_unit: &str) -> Result<Option<String>> {
        let url = format!(
            "{}/v1/business-units/{}",
            trim_base(&self.config.endpoints.auth),
            business_unit_path(business_unit)?
        );
        self.shared.limiter.acquire().await.sent();
        let response = self
            .http
            .get(&url)
            .header("apikey", self.config.credentials.api_key.expose())
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        let after = retry_after(response.headers());
        let text = response.text().await.map_err(transport)?;
        if !(200..300).contains(&status) {
            return Err(Error::Api(ApiError::from_body(status, after, &text)));
        }
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        Ok(body
            .get("displayName")
            .or_else(|| body.pointer("/name/identifying"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned))
    }

    /// The business unit's invitation templates.
    pub async fn templates(&self, business_unit: &str) -> Result<Vec<Template>> {
        let url = self.business_unit_url(business_unit, "templates")?;
        let Answer { status, body } = self.call(&url, None, false).await?;
        let text = body.map_err(|e| {
            Error::Api(ApiError::from_body(
                status,
                None,
                &serde_json::json!({ "message": format!("the template list broke off: {e}") })
                    .to_string(),
            ))
        })?;
        let list: Templates = serde_json::from_str(&text).map_err(|e| {
            Error::Api(ApiError::from_body(
                status,
                None,
                &format!("{{\"message\": \"an unreadable template list: {e}\"}}"),
            ))
        })?;
        Ok(list.templates)
    }

    /// Asks Trustpilot to delete the invitation data of `emails` in
    /// `business_unit` (`POST …/invitation-data/delete` with
    /// `customerEmails`; GDPR). It cannot be undone. The answer's status and
    /// body are not documented: any 2xx is taken as done.
    pub async fn delete_invitation_data(
        &self,
        business_unit: &str,
        emails: &[String],
    ) -> Result<u16> {
        let url = self.business_unit_url(business_unit, "invitation-data/delete")?;
        let body = serde_json::json!({ "customerEmails": emails }).to_string();
        let Answer { status, .. } = self.call(&url, Some(body.as_bytes()), true).await?;
        Ok(status)
    }
}
