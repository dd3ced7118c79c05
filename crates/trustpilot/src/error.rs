//! Errors of the Trustpilot client, each with the class that decides a row's fate.

use std::fmt;
use std::time::Duration;

/// What a failed request means for its row: the run's own [`retl_destination::Class`].
pub use retl_destination::Class as ErrorClass;

/// A non-success HTTP answer from Trustpilot, with whatever its body said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status code.
    pub status: u16,
    /// `message` (or the gateway's `faultstring`, or OAuth's `error_description`).
    pub message: String,
    /// `errorCode` (or the gateway's `errorcode`, or OAuth's `error`).
    pub error_code: Option<String>,
    /// `details`, when Trustpilot explains a validation failure.
    pub details: Option<String>,
    /// `correlationId`, for Trustpilot support.
    pub correlation_id: Option<String>,
    /// `Retry-After`, if the answer carried one.
    pub retry_after: Option<Duration>,
    /// Who wrote the body, as far as its shape tells.
    pub body: Body,
}

/// The shape of an error answer's body: which layer in front of (or inside)
/// Trustpilot wrote it. Only Trustpilot's own JSON error can speak about a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Trustpilot's application error: `{message, errorCode, details?, correlationId}`.
    Trustpilot,
    /// The API gateway's `{fault: {faultstring, detail: {errorcode}}}`.
    Gateway,
    /// An OAuth error: `{error, error_description}`.
    OAuth,
    /// An HTML page: the CDN or a proxy.
    Html,
    /// Anything else: empty, plain text, JSON of another shape.
    Other,
}

impl ApiError {
    /// Whether the body was an HTML page (the CDN or a proxy wrote it).
    pub fn is_html(&self) -> bool {
        self.body == Body::Html
    }

    /// The class of this answer: the table in `docs/architecture.md`
    /// ("What an answer means"), with what is known of each status in
    /// `shared/trustpilot-api.md`.
    ///
    /// Two rules carry the weight:
    /// - Only Trustpilot's own JSON error on a 400, 409 or 422 blames the row
    ///   (`Rejected`). Any other 4xx (an HTML page from the CDN, 413, 414, 431
    ///   from a too-large header) says nothing about the row's data: the run
    ///   stops (`Fatal`), the row stays new and the next run sends it.
    /// - An answer that may come from a proxy after the request reached the
    ///   application (502, 504, 520, 524, or any 5xx without Trustpilot's JSON
    ///   body) is `Uncertain`: the invitation may exist, and a duplicate cannot
    ///   be taken back. Only answers proving the request never got through
    ///   (503, 521, 522, 523), and Trustpilot's own JSON 500 ("please retry"),
    ///   are retried.
    pub fn class(&self) -> ErrorClass {
        let trustpilot = self.body == Body::Trustpilot;
        match self.status {
            400 | 409 | 422 if trustpilot => ErrorClass::Rejected,
            401 | 404 | 405 | 415 => ErrorClass::Fatal,
            // A JSON 403 is Trustpilot's (wrong business user, no API module); an
            // HTML 403 comes from the CDN in front of it and passes.
            403 if self.is_html() => ErrorClass::Transient,
            403 => ErrorClass::Fatal,
            // The server timed out waiting for the request: it never had it whole.
            408 => ErrorClass::Transient,
            429 => ErrorClass::RateLimited,
            // Not Trustpilot's word on this row: a failure of the run, not of the data.
            400..=499 => ErrorClass::Fatal,
            // Service unavailable, and the CDN's "origin is down" (521),
            // "connection timed out" (522), "origin unreachable" (523): the
            // request never reached the application.
            503 | 521..=523 => ErrorClass::Transient,
            // Bad gateway, gateway timeout, the CDN's "unknown error" (520) and
            // "a timeout occurred" (524): a proxy answering after it forwarded
            // the request, which the application may have carried out.
            502 | 504 | 520 | 524 => ErrorClass::Uncertain,
            // Trustpilot's own 500 ("please retry in 5-15 minutes"), 501: the
            // application answered that it did not carry the request out.
            500..=599 if trustpilot => ErrorClass::Transient,
            // A 5xx written by something else: who knows what reached Trustpilot.
            _ => ErrorClass::Uncertain,
        }
    }

    /// Reads an error body in any of the shapes Trustpilot's layers produce.
    pub(crate) fn from_body(status: u16, retry_after: Option<Duration>, body: &str) -> Self {
        let mut error = ApiError {
            status,
            message: String::new(),
            error_code: None,
            details: None,
            correlation_id: None,
            retry_after,
            body: Body::Other,
        };
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        match serde_json::from_str::<serde_json::Value>(body) {
            Ok(json) if json.is_object() => {
                if let Some(fault) = json.get("fault") {
                    error.body = Body::Gateway;
                    error.message = fault.get("faultstring").and_then(text).unwrap_or_default();
                    error.error_code = fault.pointer("/detail/errorcode").and_then(text);
                } else if json.get("error").is_some() && json.get("message").is_none() {
                    error.body = Body::OAuth;
                    error.message = json
                        .get("error_description")
                        .and_then(text)
                        .unwrap_or_default();
                    error.error_code = json.get("error").and_then(text);
                } else if ["message", "errorCode", "details"]
                    .iter()
                    .any(|field| json.get(field).and_then(text).is_some())
                {
                    error.body = Body::Trustpilot;
                    error.message = json.get("message").and_then(text).unwrap_or_default();
                    error.error_code = json.get("errorCode").and_then(text);
                    error.details = json.get("details").and_then(text);
                    error.correlation_id = json.get("correlationId").and_then(text);
                } else {
                    error.message = body.chars().take(200).collect();
                }
            }
            _ => {
                if body.trim_start().starts_with('<') {
                    error.body = Body::Html;
                    "an HTML error page (from the CDN)".clone_into(&mut error.message);
                } else {
                    error.message = body.chars().take(200).collect();
                }
            }
        }
        if error.message.is_empty() {
            "no message".clone_into(&mut error.message);
        }
        error
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(code) = &self.error_code {
            write!(f, " (errorCode {code})")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(details) = &self.details {
            write!(f, "; details: {details}")?;
        }
        if let Some(id) = &self.correlation_id {
            write!(f, "; correlationId {id}")?;
        }
        Ok(())
    }
}

/// What can go wrong talking to Trustpilot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Trustpilot answered with a non-success status.
    #[error("trustpilot answered {0}")]
    Api(ApiError),
    /// The token request failed: wrong key, secret, user or password.
    #[error("cannot get an access token: {0}")]
    Auth(ApiError),
    /// No connection could be made: nothing was sent.
    #[error("cannot connect to trustpilot: {}", retl_config::with_causes(.0))]
    Connect(#[source] reqwest::Error),
    /// The server's TLS certificate was refused: nothing was sent, and no
    /// retry can help (a configuration problem: the host, a proxy, the clock).
    #[error("cannot connect to trustpilot: the TLS certificate was refused: {}", retl_config::with_causes(.0))]
    Certificate(#[source] reqwest::Error),
    /// The request went out but no complete answer came back.
    #[error(
        "no answer from trustpilot after the request was sent (it may have been accepted): {}",
        retl_config::with_causes(.0)
    )]
    NoResponse(#[source] reqwest::Error),
    /// A 3xx answer: retl never follows redirects (a `sent` needs a 2xx from
    /// the endpoint called, and a bearer token must not travel elsewhere).
    #[error("trustpilot answered HTTP {status} with a redirect to `{}`, which retl does not follow{}", location.as_deref().unwrap_or("?"), if *same_host { "" } else { " (another host: check the endpoints)" })]
    Redirect {
        /// The status.
        status: u16,
        /// The `Location` header.
        location: Option<String>,
        /// Whether it points to the host that was called.
        same_host: bool,
    },
    /// A 2xx whose body is not what the endpoint returns: the request was
    /// accepted (the link may exist), but its result cannot be read.
    #[error(
        "trustpilot answered HTTP {status}, but not with the expected JSON (it may have been created): {body}"
    )]
    UnreadableSuccess {
        /// The status.
        status: u16,
        /// The body, truncated.
        body: String,
    },
    /// The token response could not be read.
    #[error("unexpected token response: {0}")]
    TokenResponse(String),
    /// The client's settings are unusable.
    #[error("invalid trustpilot client settings: {0}")]
    Config(String),
}

impl Error {
    /// What to do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Api(api) => api.class(),
            Error::Auth(api) if api.status == 429 => ErrorClass::RateLimited,
            Error::Auth(api) if api.status >= 500 || api.is_html() => ErrorClass::Transient,
            Error::Connect(_) => ErrorClass::Transient,
            Error::Redirect { same_host, .. } => {
                if *same_host {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Fatal
                }
            }
            Error::NoResponse(_) | Error::UnreadableSuccess { .. } => ErrorClass::Uncertain,
            Error::Auth(_) | Error::TokenResponse(_) | Error::Config(_) | Error::Certificate(_) => {
                ErrorClass::Fatal
            }
        }
    }

    /// The API's answer, if there was one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(api) | Error::Auth(api) => Some(api),
            _ => None,
        }
    }
}

impl retl_destination::Failure for Error {
    fn class(&self) -> ErrorClass {
        Error::class(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        self.api().and_then(|api| api.retry_after)
    }

    fn answer(&self) -> retl_destination::Answer {
        match self.api() {
            Some(api) => retl_destination::Answer {
                status: Some(api.status),
                error_code: api.error_code.clone(),
                correlation_id: api.correlation_id.clone(),
            },
            None => retl_destination::Answer::default(),
        }
    }
}

/// Whether a transport error is a refused TLS certificate.
pub(crate) fn is_certificate_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && is_certificate_error(inner)
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trustpilot_error_bodies_are_read_in_every_shape() {
        let api = ApiError::from_body(
            400,
            None,
            r#"{"message":"Invalid request","errorCode":1001,"details":"'Consumer Email' is not in the correct format.","correlationId":"c-1"}"#,
        );
        assert_eq!(api.class(), ErrorClass::Rejected);
        assert_eq!(api.error_code.as_deref(), Some("1001"));
        assert_eq!(
            api.to_string(),
            "HTTP 400 (errorCode 1001): Invalid request; details: 'Consumer Email' is not in the correct format.; correlationId c-1"
        );

        let gateway = ApiError::from_body(
            401,
            None,
            r#"{"fault":{"faultstring":"Invalid access token","detail":{"errorcode":"oauth.v2.InvalidAccessToken"}}}"#,
        );
        assert_eq!(
            gateway.error_code.as_deref(),
            Some("oauth.v2.InvalidAccessToken")
        );
        assert_eq!(gateway.class(), ErrorClass::Fatal);

        let oauth = ApiError::from_body(
            401,
            None,
            r#"{"error":"invalid_client","error_description":"bad key"}"#,
        );
        assert_eq!(oauth.message, "bad key");

        let cdn = ApiError::from_body(403, None, "<html><body>Forbidden</body></html>");
        assert!(cdn.is_html());
        assert_eq!(cdn.class(), ErrorClass::Transient);
        assert_eq!(
            ApiError::from_body(
                403,
                None,
                r#"{"message":"Access to resource is forbidden","errorCode":1014}"#
            )
            .class(),
            ErrorClass::Fatal
        );
    }

    #[test]
    fn classes_follow_the_status() {
        let class = |status| ApiError::from_body(status, None, "{}").class();
        assert_eq!(class(429), ErrorClass::RateLimited);
        assert_eq!(class(404), ErrorClass::Fatal);
        assert_eq!(class(415), ErrorClass::Fatal);
    }

    const TRUSTPILOT: &str =
        r#"{"message":"Internal server error, please retry in 5-15 minutes","errorCode":500}"#;
    const FIELD: &str = r#"{"message":"Invalid request","errorCode":1001,"details":"'Consumer Email' is not in the correct format."}"#;
    const PAGE: &str = "<html><body><h1>Error</h1></body></html>";

    #[test]
    fn an_answer_a_proxy_may_give_after_forwarding_is_uncertain() {
        for status in [502, 504, 520, 524] {
            for body in [PAGE, "", "{}", TRUSTPILOT] {
                let api = ApiError::from_body(status, None, body);
                assert_eq!(api.class(), ErrorClass::Uncertain, "{status} {body:?}");
            }
        }
        // A 5xx that is not Trustpilot's JSON error may come from anything in between.
        for body in [PAGE, "", "oops", "{}", r#"{"fault":{"faultstring":"x"}}"#] {
            let api = ApiError::from_body(500, None, body);
            assert_eq!(api.class(), ErrorClass::Uncertain, "500 {body:?}");
        }
    }

    #[test]
    fn an_answer_proving_the_request_never_got_through_is_retried() {
        for status in [503, 521, 522, 523] {
            for body in [PAGE, "", TRUSTPILOT] {
                let api = ApiError::from_body(status, None, body);
                assert_eq!(api.class(), ErrorClass::Transient, "{status} {body:?}");
            }
        }
        assert_eq!(
            ApiError::from_body(500, None, TRUSTPILOT).class(),
            ErrorClass::Transient,
            "Trustpilot's own 500 says it did not carry the request out"
        );
        assert_eq!(
            ApiError::from_body(408, None, PAGE).class(),
            ErrorClass::Transient
        );
    }

    #[test]
    fn only_trustpilots_json_error_blames_the_row() {
        for status in [400, 409, 422] {
            assert_eq!(
                ApiError::from_body(status, None, FIELD).class(),
                ErrorClass::Rejected,
                "{status}"
            );
            for body in [
                PAGE,
                "",
                "{}",
                "Bad Request",
                r#"{"fault":{"faultstring":"x"}}"#,
            ] {
                let api = ApiError::from_body(status, None, body);
                assert_eq!(api.class(), ErrorClass::Fatal, "{status} {body:?}");
            }
        }
        for status in [406, 410, 411, 413, 414, 418, 431, 451] {
            for body in [PAGE, FIELD] {
                let api = ApiError::from_body(status, None, body);
                assert_eq!(api.class(), ErrorClass::Fatal, "{status} {body:?}");
            }
        }
    }
}
