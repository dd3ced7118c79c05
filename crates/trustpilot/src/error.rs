//! Errors of the Trustpilot client, each with the class that decides a row's fate.

use std::fmt;
use std::time::Duration;

/// What the caller should do about a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The row's data is bad: record it as `rejected`, go on.
    Rejected,
    /// Try again later (with backoff); the request was not accepted.
    Transient,
    /// Too many requests: wait (`Retry-After` if given), then try again.
    RateLimited,
    /// Configuration or authentication: stop the run; the row is not at fault.
    Fatal,
    /// The request may have reached Trustpilot: never resend it automatically.
    Uncertain,
}

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
    /// Whether the body was not JSON (an HTML page from the CDN).
    pub html: bool,
}

impl ApiError {
    /// The class of this answer.
    ///
    /// 409 and other undocumented 4xx codes are taken as permanent for the row:
    /// retrying a request Trustpilot refused on its merits could only duplicate.
    pub fn class(&self) -> ErrorClass {
        match self.status {
            400 | 409 | 422 => ErrorClass::Rejected,
            401 | 404 | 405 | 415 => ErrorClass::Fatal,
            // A JSON 403 is Trustpilot's (wrong business user, no API module); an
            // HTML 403 comes from the CDN in front of it and passes.
            403 if self.html => ErrorClass::Transient,
            403 => ErrorClass::Fatal,
            408 | 500..=599 => ErrorClass::Transient,
            429 => ErrorClass::RateLimited,
            _ => ErrorClass::Rejected,
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
            html: false,
        };
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        match serde_json::from_str::<serde_json::Value>(body) {
            Ok(json) if json.is_object() => {
                if let Some(fault) = json.get("fault") {
                    error.message = fault.get("faultstring").and_then(text).unwrap_or_default();
                    error.error_code = fault.pointer("/detail/errorcode").and_then(text);
                } else if json.get("error").is_some() && json.get("message").is_none() {
                    error.message = json
                        .get("error_description")
                        .and_then(text)
                        .unwrap_or_default();
                    error.error_code = json.get("error").and_then(text);
                } else {
                    error.message = json.get("message").and_then(text).unwrap_or_default();
                    error.error_code = json.get("errorCode").and_then(text);
                    error.details = json.get("details").and_then(text);
                    error.correlation_id = json.get("correlationId").and_then(text);
                }
            }
            _ => {
                error.html = body.trim_start().starts_with('<');
                error.message = if error.html {
                    "an HTML error page (from the CDN)".to_owned()
                } else {
                    body.chars().take(200).collect()
                };
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
    Connect(reqwest::Error),
    /// The server's TLS certificate was refused: nothing was sent, and no
    /// retry can help (a configuration problem: the host, a proxy, the clock).
    #[error("cannot connect to trustpilot: the TLS certificate was refused: {}", retl_config::with_causes(.0))]
    Certificate(reqwest::Error),
    /// The request went out but no complete answer came back.
    #[error(
        "no answer from trustpilot after the request was sent (it may have been accepted): {}",
        retl_config::with_causes(.0)
    )]
    NoResponse(reqwest::Error),
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
            Error::Auth(api) if api.status >= 500 || api.html => ErrorClass::Transient,
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
        assert!(cdn.html);
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
        assert_eq!(class(500), ErrorClass::Transient);
        assert_eq!(class(520), ErrorClass::Transient);
        assert_eq!(class(404), ErrorClass::Fatal);
        assert_eq!(class(415), ErrorClass::Fatal);
    }
}
