//! Pacing under Trustpilot's rate limits.
//!
//! Trustpilot asks for at most 833 calls per 5 minutes and 10,000 per hour.
//! [`Limiter`] keeps the send times of recent calls and makes a caller wait
//! until one more call fits every window, so a backlog of thousands goes out
//! at the allowed rate instead of provoking 429s. Each window is widened by a
//! small margin (2% of it, between 50 ms and a second) because Trustpilot counts
//! arrival times, not ours. Time is tokio's, so tests run it paused.
//!
//! A place is taken in two steps: [`Limiter::acquire`] waits for one and
//! returns a [`Slot`]; [`Slot::sent`] stamps it with the moment the request
//! really leaves (a row is marked in flight in between, which takes a commit).
//! Until then the slot counts as happening now in every window, so the time
//! between the two can never bunch requests together.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// At most `limit` calls per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    /// Calls allowed per window.
    pub limit: u32,
    /// The window's length.
    pub window: Duration,
}

impl RateWindow {
    /// Trustpilot's published guidance: 833 per 5 minutes and 10,000 per hour.
    pub fn trustpilot_defaults() -> Vec<RateWindow> {
        vec![
            RateWindow {
                limit: 833,
                window: Duration::from_mins(5),
            },
            RateWindow {
                limit: 10_000,
                window: Duration::from_hours(1),
            },
        ]
    }

    /// The window widened by a margin for the time between our count and
    /// Trustpilot's: 2% of it, at least 50 ms and at most a second.
    fn span(self) -> Duration {
        self.window + (self.window / 50).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
}

#[derive(Debug, Default)]
struct State {
    /// When each recent call left, oldest first.
    sent: VecDeque<Instant>,
    /// Slots taken whose call has not left yet: each counts as "now".
    pending: usize,
    paused_until: Option<Instant>,
}

/// A place under the rate limits, held until its call leaves
/// ([`sent`](Slot::sent)) or is given up (dropped).
#[derive(Debug)]
pub struct Slot {
    limiter: std::sync::Arc<Limiter>,
    done: bool,
}

impl Slot {
    /// The call leaves now: the windows count it from this moment.
    pub fn sent(mut self) {
        self.done = true;
        let now = Instant::now();
        let mut state = self.limiter.lock();
        state.pending = state.pending.saturating_sub(1);
        let at = state.sent.partition_point(|t| *t <= now);
        state.sent.insert(at, now);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.done {
            let mut state = self.limiter.lock();
            state.pending = state.pending.saturating_sub(1);
        }
    }
}

/// A sliding-window limiter over several windows at once.
#[derive(Debug)]
pub struct Limiter {
    windows: Vec<RateWindow>,
    state: Mutex<State>,
    /// When the latest wait for a rate window ends (Unix milliseconds; 0: none).
    waiting_until: std::sync::atomic::AtomicU64,
}

impl Limiter {
    /// A limiter for `windows` (none: no pacing).
    pub fn new(windows: Vec<RateWindow>) -> Self {
        Limiter {
            windows: windows.into_iter().filter(|w| w.limit > 0).collect(),
            state: Mutex::new(State::default()),
            waiting_until: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How much longer requests wait for a rate window to open, if they do
    /// now (half a second or more).
    pub fn waiting(&self) -> Option<Duration> {
        let until = self
            .waiting_until
            .load(std::sync::atomic::Ordering::Relaxed);
        let until = std::time::UNIX_EPOCH + Duration::from_millis(until);
        until
            .duration_since(std::time::SystemTime::now())
            .ok()
            .filter(|left| *left >= Duration::from_millis(500))
    }

    fn note_wait(&self, until: std::time::SystemTime) {
        let ms = until
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.waiting_until
            .fetch_max(ms, std::sync::atomic::Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long to wait before one more call fits; takes a pending slot when it fits now.
    fn try_take(&self, now: Instant) -> Option<Duration> {
        let mut state = self.lock();
        if let Some(until) = state.paused_until {
            if until > now {
                return Some(until - now);
            }
            state.paused_until = None;
        }
        let longest = self
            .windows
            .iter()
            .map(|w| w.span())
            .max()
            .unwrap_or_default();
        while state
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= longest)
        {
            state.sent.pop_front();
        }
        let mut wait = Duration::ZERO;
        for window in &self.windows {
            let span = window.span();
            let first_inside = state
                .sent
                .partition_point(|t| now.duration_since(*t) >= span);
            let sent_inside = state.sent.len() - first_inside;
            let inside = sent_inside + state.pending;
            let limit = window.limit as usize;
            if inside >= limit {
                // The call `inside - limit + 1` places from the oldest must
                // leave the window; pending slots are the newest of all.
                let leaving = first_inside + inside - limit;
                wait = wait.max(match state.sent.get(leaving) {
                    Some(t) if leaving < state.sent.len() => {
                        (*t + span).saturating_duration_since(now)
                    }
                    // Only calls still pending stand in the way: look again soon.
                    _ => Duration::from_millis(20),
                });
            }
        }
        if wait.is_zero() {
            state.pending += 1;
            None
        } else {
            Some(wait)
        }
    }

    /// Waits until one more call fits every window and takes its place.
    pub async fn acquire(self: &std::sync::Arc<Self>) -> Slot {
        while let Some(wait) = self.try_take(Instant::now()) {
            // Long waits are the rate window's: say so (`retl run`'s progress).
            if wait >= Duration::from_secs(1) {
                self.note_wait(std::time::SystemTime::now() + wait);
            }
            tokio::time::sleep(wait).await;
        }
        Slot {
            limiter: self.clone(),
            done: false,
        }
    }

    /// Holds every caller back for `duration` (after a 429), unless already held longer.
    pub fn pause(&self, duration: Duration) {
        let until = Instant::now() + duration;
        let mut state = self.lock();
        if state.paused_until.is_none_or(|p| p < until) {
            state.paused_until = Some(until);
        }
    }
}

/// How long `calls` requests take to leave under `windows`, starting with
/// empty windows: the last one waits until every window it would overfill
/// has moved on (Trustpilot's answer times are not counted).
pub fn estimate(windows: &[RateWindow], calls: u64) -> Duration {
    let Some(last) = calls.checked_sub(1) else {
        return Duration::ZERO;
    };
    windows
        .iter()
        .filter(|w| w.limit > 0)
        .map(|w| w.span() * u32::try_from(last / u64::from(w.limit)).unwrap_or(u32::MAX))
        .max()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_estimate_counts_the_windows_a_backlog_must_wait_for() {
        let windows = RateWindow::trustpilot_defaults();
        assert_eq!(estimate(&windows, 0), Duration::ZERO);
        assert_eq!(estimate(&windows, 833), Duration::ZERO);
        // The 834th waits one 5-minute window (and its margin).
        assert_eq!(estimate(&windows, 834), Duration::from_secs(301));
        // 10,001 calls: twelve 5-minute windows (3,612 s) outlast one hour (3,601 s).
        assert_eq!(estimate(&windows, 10_001), Duration::from_secs(3612));
    }

    #[tokio::test(start_paused = true)]
    async fn a_backlog_goes_out_at_the_tighter_windows_rate() {
        let limiter = std::sync::Arc::new(Limiter::new(vec![
            RateWindow {
                limit: 10,
                window: Duration::from_secs(5),
            },
            RateWindow {
                limit: 30,
                window: Duration::from_mins(1),
            },
        ]));
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..40 {
            limiter.acquire().await.sent();
            times.push(Instant::now() - start);
        }
        // The first 10 at once, then 10 more per 5 s window (plus margin), then
        // the minute window holds call 31 until the first calls are a minute old.
        assert!(times[9] < Duration::from_millis(1));
        assert!(times[10] >= Duration::from_secs(5));
        assert!(times[29] < Duration::from_secs(11));
        assert!(times[30] >= Duration::from_mins(1));
        // No 5 s span ever holds more than 10 calls.
        for (i, t) in times.iter().enumerate() {
            let inside = times[i..]
                .iter()
                .take_while(|u| u.saturating_sub(*t) < Duration::from_secs(5))
                .count();
            assert!(inside <= 10, "call {i}: {inside} calls within 5 s");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_caller() {
        let limiter = std::sync::Arc::new(Limiter::new(vec![RateWindow {
            limit: 100,
            window: Duration::from_secs(1),
        }]));
        limiter.pause(Duration::from_secs(7));
        let start = Instant::now();
        limiter.acquire().await.sent();
        assert!(Instant::now() - start >= Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn no_windows_means_no_waiting() {
        let limiter = std::sync::Arc::new(Limiter::new(Vec::new()));
        let start = Instant::now();
        for _ in 0..1000 {
            limiter.acquire().await.sent();
        }
        assert_eq!(Instant::now(), start);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_counts_from_when_its_call_leaves_not_when_it_was_taken() {
        let limiter = std::sync::Arc::new(Limiter::new(vec![RateWindow {
            limit: 2,
            window: Duration::from_secs(1),
        }]));
        let start = Instant::now();
        let (a, b) = (limiter.acquire().await, limiter.acquire().await);
        // The two calls leave late (their rows were being marked in flight).
        tokio::time::sleep(Duration::from_millis(800)).await;
        a.sent();
        b.sent();
        limiter.acquire().await.sent();
        // Not at 1 s (when the slots were taken + the window) but 1 s after they left.
        assert!(Instant::now() - start >= Duration::from_millis(1800));
        // A slot given up frees its place at once.
        let many = std::sync::Arc::new(Limiter::new(vec![RateWindow {
            limit: 1,
            window: Duration::from_hours(1),
        }]));
        drop(many.acquire().await);
        let before = Instant::now();
        many.acquire().await.sent();
        assert_eq!(Instant::now(), before);
    }
}
