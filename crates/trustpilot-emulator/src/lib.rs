//! A local stand-in for the Trustpilot Invitation API.
//!
//! It serves, on one loopback address, both Trustpilot hosts' endpoints that
//! retl uses, with their paths, auth rules, validation and error bodies:
//!
//! - `POST /v1/oauth/oauth-business-users-for-applications/accesstoken` (and
//!   `/refresh`): Basic auth with the API key and secret; `client_credentials`,
//!   `password` and `refresh_token` grants; `expires_in` as a string.
//! - `POST /v1/private/business-units/{id}/email-invitations`
//! - `POST /v1/private/business-units/{id}/invitation-links`
//! - `GET  /v1/private/business-units/{id}/templates`
//! - `POST /v1/private/business-units/{id}/invitation-data/delete`: either
//!   `customerEmails` or `deleteOlderThan` (400 for both or neither); the
//!   stored invitations of those emails go. An unknown `templateId` in an
//!   email invitation is a 400 unless [`EmulatorConfig::accept_unknown_templates`].
//! - `GET  /_emulator/invitations` and `GET /_emulator/stats`: what it accepted
//!   and how many requests of each kind it saw, for tests and demos. With
//!   [`EmulatorConfig::log_file`] every accepted invitation is also appended to
//!   a JSON-lines file. `POST /_emulator/faults` with `{"script": ["server_error",
//!   null, "accept_then_hang"]}` queues faults for the next invitation requests
//!   (`null`: answer normally).
//! - Faults, scripted or drawn at random by share ([`FaultShares`]): 500, 503,
//!   HTML 521, 400 and 403 from the CDN, 429 bursts, a connection dropped
//!   mid-answer, an invitation accepted whose answer never comes or whose body
//!   breaks off, and an invitation accepted and then answered by a gateway
//!   (502, 504, 520, 524).
//!
//! It shares no code with the client in `retl-trustpilot`: it is a second,
//! independent reading of Trustpilot's documentation, so a misreading in one
//! shows up as a failure against the other. Where the documentation is silent
//! (the success status and body, the numeric `errorCode`s, whether the rate
//! limits are hard) the behaviour is a setting with a documented default.

pub mod command;
mod config;
mod server;
mod validate;

pub use config::{EmulatorConfig, Fault, FaultShares, RateWindow, Template};
pub use server::{Emulator, Stats, StoredInvitation};
