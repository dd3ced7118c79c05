//! What the clients of one program share, owned by Trustpilot's entry in
//! the destination registry (not process globals): one token per set of
//! credentials (so activations with one API key mint once), one rate
//! limiter per API key and host (as Trustpilot counts), when requests wait
//! for a rate window (for a progress line), and who observes every request
//! (the daemon's metrics).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use crate::pace::{Limiter, RateWindow};
use crate::token::Shared;

/// Called after every API call (invitations, links, templates) with its HTTP
/// status (0: no answer) and how long it took.
pub type RequestObserver = retl_destination::RequestObserver;

/// What the clients of one registry share.
#[derive(Default)]
pub struct Context {
    tokens: Mutex<HashMap<String, Arc<Shared>>>,
    limiters: Mutex<HashMap<String, Arc<Limiter>>>,
    observer: OnceLock<RequestObserver>,
}

impl fmt::Debug for Context {
    /// How many, never what (a token is a secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |m: usize| m;
        f.debug_struct("Context")
            .field(
                "tokens",
                &count(
                    self.tokens
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .len(),
                ),
            )
            .field(
                "limiters",
                &count(
                    self.limiters
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .len(),
                ),
            )
            .field("observed", &self.observer.get().is_some())
            .finish()
    }
}

impl Context {
    /// The shared state for `identity` (the token) and `pacing_key` (the
    /// limiter); the windows of the first client built for a key apply to
    /// every later one.
    pub(crate) fn shared(
        &self,
        identity: &str,
        pacing_key: &str,
        windows: Vec<RateWindow>,
    ) -> Arc<Shared> {
        let limiter = self
            .limiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(pacing_key.to_owned())
            .or_insert_with(|| Arc::new(Limiter::new(windows)))
            .clone();
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(identity.to_owned())
            .or_insert_with(|| Arc::new(Shared::new(limiter)))
            .clone()
    }

    /// How much longer requests wait for a rate window to open, if they do
    /// now (for progress displays).
    pub fn rate_wait(&self) -> Option<Duration> {
        self.limiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter_map(|limiter| limiter.waiting())
            .max()
    }

    /// Installs the observer of every request (the daemon's `/metrics`);
    /// the first installed stays.
    pub fn observe_requests(&self, observer: RequestObserver) {
        let _ = self.observer.set(observer);
    }

    /// Tells the observer, if there is one, of a request.
    pub(crate) fn observe(&self, status: u16, took: Duration) {
        if let Some(observer) = self.observer.get() {
            observer(status, took);
        }
    }
}
