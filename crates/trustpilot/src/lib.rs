//! The Trustpilot destination: everything retl knows of Trustpilot lives here.
//!
//! - [`config`]: the destination's settings (auth, endpoints, rate limits,
//!   retry, defaults) and an activation's `target:`, with their reader.
//! - [`Field`]: the catalogue of fields a source column can be mapped to;
//!   [`Settings`]: the layers of invitation settings.
//! - [`Invitations`]: a mapped row becomes the request body, one
//!   [`EmailInvitation`] (or, from it, an [`InvitationLink`]).
//! - [`EmailInvitation`] is the request body of
//!   `POST /v1/private/business-units/{id}/email-invitations`, serialised in
//!   Trustpilot's camelCase with every unset field omitted (Trustpilot's account
//!   defaults then apply). [`EmailInvitation::validate`] applies the rules the
//!   API enforces before any request is made, so a bad row costs no API call.
//! - [`Client`] mints an OAuth token (client credentials with
//!   `x-business-user-id`, or the password grant, renewed with its refresh
//!   token), shares it with every client of the process that has the same
//!   credentials, mints at most one at a time, caches it across runs in an
//!   owner-only file, and on a 401 (or a JSON 403) mints once more and retries
//!   once.
//! - A limiter paces API calls under Trustpilot's two windows (833 per
//!   5 minutes, 10,000 per hour by default), shared per API key in the process.
//! - Besides email invitations: invitation links and the template list.
//! - Every failure is an [`Error`] whose [`ErrorClass`] tells the caller what
//!   to do with the row: record it as rejected, retry it, wait, stop the run,
//!   or (for a request that may have reached Trustpilot) never resend it blindly.
//!
//! - [`Destination`] is `type: trustpilot` to the engine
//!   ([`retl_destination::Kind`]): an activation's [`Delivery`] (target and
//!   mapping), its [`InvitationRows`] and its [`TrustpilotSender`].
//! - [`check`]: the healthcheck `retl check` runs (a fresh token, business
//!   units and template ids).
//!
//! Secrets live in [`Secret`], whose `Debug` and `Display` print `***`.
//!
//! Where the real API is undocumented (the success status and body, whether
//! 409 exists) the client takes the lenient reading and says so at that spot.

pub mod check;
mod client;
pub mod config;
mod context;
mod error;
mod field;
mod invitation;
mod kind;
mod model;
mod pace;
mod schema;
mod secret;
mod sender;
mod settings;
mod token;

pub use client::{
    Accepted, Client, ClientConfig, Credentials, Endpoints, Grant, GrantKind, LinkCreated,
    Template, Ticket,
};
pub use config::{Destination, RetryPolicy, Target};
pub use context::{Context, RequestObserver};
pub use error::{ApiError, Body, Error, ErrorClass, Result};
pub use field::Field;
pub use invitation::{Built, Invitations, Rejection};
pub use kind::{Delivery, InvitationRows};
pub use model::{
    EmailInvitation, InvitationLink, ProductReviewInvitation, ServiceReviewInvitation,
    is_valid_email, is_valid_locale, is_valid_redirect, normalize_locale,
};
pub use pace::{RateWindow, estimate};
pub use secret::Secret;
pub use sender::{Request, TrustpilotSender};
pub use settings::{
    FINGERPRINT_VERSION, InvitationType, ProductSettings, ServiceSettings, Settings, TagsMode,
    TargetKind, request_fingerprint,
};
