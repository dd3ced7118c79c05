//! A client for the Trustpilot Invitation API, as retl uses it.
//!
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
//! - A [`Limiter`] paces API calls under Trustpilot's two windows (833 per
//!   5 minutes, 10,000 per hour by default), shared per API key in the process.
//! - Besides email invitations: invitation links and the template list.
//! - Every failure is an [`Error`] whose [`ErrorClass`] tells the caller what
//!   to do with the row: record it as rejected, retry it, wait, stop the run,
//!   or (for a request that may have reached Trustpilot) never resend it blindly.
//!
//! Secrets live in [`Secret`], whose `Debug` and `Display` print `***`.
//!
//! Where the real API is undocumented (the success status and body, whether
//! 409 exists) the client takes the lenient reading and says so at that spot.

mod client;
mod error;
mod model;
mod pace;
mod secret;
mod token;

pub use client::{
    Accepted, Client, ClientConfig, Credentials, Endpoints, Grant, LinkCreated, Template,
};
pub use error::{ApiError, Error, ErrorClass, Result};
pub use model::{
    EmailInvitation, InvitationLink, ProductReviewInvitation, ServiceReviewInvitation,
    is_valid_email, is_valid_locale,
};
pub use pace::{Limiter, RateWindow};
pub use secret::Secret;
