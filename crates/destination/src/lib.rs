//! The contract between a run and a destination.
//!
//! A destination crate implements [`Kind`]: how its destination file and an
//! activation's `target:` and `mapping:` are read, how a row becomes a
//! request ([`Rows`]), the sender, and its healthcheck. The engine knows no
//! destination but through it.
//!
//! A destination sends one row's request at a time ([`Sender`]): it first
//! waits until a request may leave ([`Sender::ready`]: a token, a place under
//! its rate limits), then sends it with what that wait gave
//! ([`Sender::send`]), and can hold every request back for a while
//! ([`Sender::pause`], after a 429). Every failure says what it means for the
//! row ([`Class`]), never by its message.
//!
//! [`send_row`] is the request protocol a run follows for each row, written
//! once against this contract: mark the row in flight between the wait and
//! the request, retry transient failures with backoff, wait out 429s
//! (`Retry-After` first), never resend what may have arrived, and give way to
//! an interrupt at every wait. It touches no database: marking is the
//! caller's ([`Protocol::mark`]), so it is tested on paused time against an
//! in-memory destination.

mod kind;
mod protocol;
pub mod registry;

use std::time::Duration;

pub use kind::{Built, Kind, Rejected, Report, RetryPolicy, Rows, mapping_schema, read_mapping};
pub use protocol::{Attempt, Cancelled, Mark, Policy, Protocol, send_row};
pub use registry::{AnyRequest, BoxRows, BoxSender, Delivery, Destination, Foreign, Registry};

/// What a failed request means for its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The row's data is bad: record it `rejected`, go on.
    Rejected,
    /// Try again later (with backoff); the request was not carried out.
    Transient,
    /// Too many requests: wait (`Retry-After` if given), then try again.
    RateLimited,
    /// Configuration or authentication: stop the run; the row is not at fault.
    Fatal,
    /// The request may have been carried out: never resend it automatically.
    Uncertain,
}

/// A destination's answer to a failed request, as the run log keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status, if an answer came.
    pub status: Option<u16>,
    /// The destination's own error code.
    pub error_code: Option<String>,
    /// The id the destination's support asks for.
    pub correlation_id: Option<String>,
}

/// A failed request.
pub trait Failure: std::error::Error + Send + Sync + 'static {
    /// What it means for the row.
    fn class(&self) -> Class;
    /// How long the destination asked to wait (`Retry-After`), if it did.
    fn retry_after(&self) -> Option<Duration>;
    /// What the destination answered, if anything.
    fn answer(&self) -> Answer;
}

/// A destination's failure, boxed, is an error whose cause is its own: an
/// error that wraps one keeps the chain (`source()`).
impl std::error::Error for Box<dyn Failure> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        (**self).source()
    }
}

/// Told of every request a destination makes: its HTTP status (0: no
/// answer) and how long it took.
pub type RequestObserver = std::sync::Arc<dyn Fn(u16, Duration) + Send + Sync>;

/// A request the destination carried out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// The success status, if the destination speaks HTTP.
    pub status: Option<u16>,
    /// The destination's id for what it created.
    pub external_id: Option<String>,
    /// A URL it created (an invitation link), if any.
    pub url: Option<String>,
    /// What the run log should say about it (a body that broke off, say).
    pub note: Option<String>,
}

/// A destination that sends one request at a time.
pub trait Sender: Send + Sync + 'static {
    /// One row's request.
    type Request: Send + Sync + 'static;
    /// What [`ready`](Self::ready) hands to [`send`](Self::send): a token, a
    /// place under the rate limits. Dropped unused, it gives its place back.
    type Ticket: Send;
    /// A failed request.
    type Error: Failure;

    /// Waits until a request may leave.
    fn ready(&self) -> impl Future<Output = Result<Self::Ticket, Self::Error>> + Send;

    /// Sends `request` with `ticket`.
    fn send(
        &self,
        ticket: Self::Ticket,
        request: &Self::Request,
    ) -> impl Future<Output = Result<Delivered, Self::Error>> + Send;

    /// Holds every request of this destination back for `wait` (a 429).
    fn pause(&self, wait: Duration);
}
