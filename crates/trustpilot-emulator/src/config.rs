//! The emulator's settings.

use std::path::PathBuf;
use std::time::Duration;

/// One rate-limit window: at most `limit` API calls per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    /// Calls allowed per window.
    pub limit: u32,
    /// The window's length.
    pub window: Duration,
}

/// An invitation template, as `GET …/templates` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// Template id (24 hex digits at Trustpilot).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether it is the business unit's default.
    pub is_default_template: bool,
    /// Its locale.
    pub locale: String,
    /// Its type; Trustpilot's values are undocumented, the emulator uses `service` and `product`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A fault the emulator can answer an invitation request with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// 500 with Trustpilot's JSON error body ("retry in 5-15 minutes"); nothing stored.
    ServerError,
    /// 521 ("web server is down") with an HTML page, as the CDN in front of
    /// Trustpilot sends when it cannot reach it; nothing stored.
    CdnError,
    /// 403 with an HTML page from the CDN; nothing stored.
    CdnForbidden,
    /// 429; nothing stored.
    TooManyRequests,
    /// A 500 status line goes out, then the connection breaks before the
    /// body; nothing stored.
    Drop,
    /// The invitation is stored, and the answer never comes.
    AcceptThenHang,
    /// 400 with `details`, as Trustpilot answers data its own checks refuse
    /// (e.g. a SKU missing from the product catalogue); nothing stored.
    BadRequest,
    /// 302 to `/login` (whose page answers 200 HTML), as a misconfigured
    /// proxy or an expired session would; nothing stored.
    Redirect,
    /// Invitation links only: the link is created, and the 200 answer is an
    /// HTML page instead of `{id, url}`.
    LinkNotJson,
    /// 503 with an HTML page: the service is down; nothing stored.
    Unavailable,
    /// The invitation is stored, then a proxy answers 502 (bad gateway) with an HTML page.
    BadGatewayAfterAccept,
    /// The invitation is stored, then a proxy answers 504 (gateway timeout).
    GatewayTimeoutAfterAccept,
    /// The invitation is stored, then the CDN answers 520 (unknown error).
    UnknownAfterAccept,
    /// The invitation is stored, then the CDN answers 524 (a timeout occurred).
    OriginTimeoutAfterAccept,
    /// The invitation is stored; the success status, headers and the start of
    /// the body go out, and the rest of the body never comes.
    AcceptThenStall,
    /// 400 with an HTML page from the CDN (a request it would not forward); nothing stored.
    CdnBadRequest,
}

impl Fault {
    /// Every fault, in the order shares are drawn.
    pub const ALL: [Fault; 16] = [
        Fault::ServerError,
        Fault::CdnError,
        Fault::CdnForbidden,
        Fault::TooManyRequests,
        Fault::Drop,
        Fault::AcceptThenHang,
        Fault::BadRequest,
        Fault::Redirect,
        Fault::LinkNotJson,
        Fault::Unavailable,
        Fault::BadGatewayAfterAccept,
        Fault::GatewayTimeoutAfterAccept,
        Fault::UnknownAfterAccept,
        Fault::OriginTimeoutAfterAccept,
        Fault::AcceptThenStall,
        Fault::CdnBadRequest,
    ];

    /// The fault's name, as `--fault` and the fault script spell it.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// Random faults: for each fault, the share of invitation requests (0.0-1.0) that get it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultShares {
    /// Shares per fault, in [`Fault::ALL`] order; their sum is at most 1.
    pub shares: [f64; 16],
    /// A drawn 429 is followed by this many more (a burst); 0 for single 429s.
    pub burst: u32,
    /// Seed of the draw, so a fault storm can be replayed.
    pub seed: u64,
}

impl FaultShares {
    /// Sets the share of one fault.
    #[must_use]
    pub fn with(mut self, fault: Fault, share: f64) -> Self {
        let index = Fault::ALL
            .iter()
            .position(|f| *f == fault)
            .expect("every fault is listed");
        self.shares[index] = share;
        self
    }
}

/// Everything the emulator accepts, refuses and pretends.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The application's API key.
    pub api_key: String,
    /// The application's API secret.
    pub api_secret: String,
    /// Business units that exist; any other gives 404.
    pub business_units: Vec<String>,
    /// The business user id that `client_credentials` calls must send in
    /// `x-business-user-id` (a missing or different one gives 403, errorCode 1014).
    pub business_user_id: String,
    /// The business user login accepted by the `password` grant.
    pub username: String,
    /// Its password.
    pub password: String,
    /// Lifetime of minted access tokens (Trustpilot: 359999 s).
    pub token_lifetime: Duration,
    /// The `expires_in` answered, when it should differ from the real
    /// lifetime (a token endpoint that says 0 for a token that lives on).
    pub advertised_lifetime: Option<Duration>,
    /// Status of a successful invitation call (undocumented at Trustpilot; default 202).
    pub success_status: u16,
    /// Body of a successful invitation call (undocumented; default `{}`).
    pub success_body: serde_json::Value,
    /// Added before every answer.
    pub latency: Duration,
    /// Rate limits on API calls (default 833 per 5 minutes and 10,000 per hour), enforced with 429.
    pub rate_limits: Vec<RateWindow>,
    /// Templates every business unit lists.
    pub templates: Vec<Template>,
    /// Append every accepted invitation to this JSON-lines file.
    pub log_file: Option<PathBuf>,
    /// The display name every business unit has (public Business Units API).
    pub business_unit_name: String,
    /// Send `Retry-After` (seconds) with 429s. Trustpilot documents none, so off by default.
    pub retry_after: Option<u64>,
    /// Random faults on invitation requests (none by default).
    pub faults: FaultShares,
    /// Accept a `templateId` that is not among [`templates`](Self::templates).
    /// Trustpilot is believed to reject one with 400, but does not document
    /// it: rejecting is the default, and this setting turns it off.
    pub accept_unknown_templates: bool,
    /// The status `invitation-data/delete` answers a valid request with
    /// (undocumented: any 2xx means done; default 200).
    pub deletion_status: u16,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            api_key: "emulator-key".to_owned(),
            api_secret: "emulator-secret".to_owned(),
            business_units: vec!["bu-emulator".to_owned()],
            business_user_id: "user-emulator".to_owned(),
            username: "admin@emulator.example".to_owned(),
            password: "emulator-password".to_owned(),
            token_lifetime: Duration::from_secs(359_999),
            advertised_lifetime: None,
            success_status: 202,
            success_body: serde_json::json!({}),
            latency: Duration::ZERO,
            rate_limits: vec![
                RateWindow {
                    limit: 833,
                    window: Duration::from_mins(5),
                },
                RateWindow {
                    limit: 10_000,
                    window: Duration::from_hours(1),
                },
            ],
            templates: vec![
                Template {
                    id: "507f191e810c19729de860ea".to_owned(),
                    name: "Default service invitation".to_owned(),
                    is_default_template: true,
                    locale: "en-US".to_owned(),
                    kind: "service".to_owned(),
                },
                Template {
                    id: "507f191e810c19729de860eb".to_owned(),
                    name: "Product invitation".to_owned(),
                    is_default_template: false,
                    locale: "en-US".to_owned(),
                    kind: "product".to_owned(),
                },
            ],
            log_file: None,
            business_unit_name: "Emulator Shop".to_owned(),
            retry_after: None,
            faults: FaultShares::default(),
            accept_unknown_templates: false,
            deletion_status: 200,
        }
    }
}
