//! `retl schedule`, the daemon: the loop that runs every activation with a
//! `schedule:` on time ([`schedule`]), and the HTTP side it serves: the
//! run-log page ([`page`]), `/metrics` ([`metrics`]), `/api/runs` and the run
//! API ([`api`]), behind one server with its guards ([`web`]). Alerts are
//! `retl-alerts`', shared with `retl run`.
//!
//! The program that starts it gives it a [`Host`]: the configuration as it
//! is on disk, where notices go. It handles no signal itself: SIGINT and
//! SIGTERM cancel the [`retl_engine::Cancel`] it is given, and it drains.

mod api;
mod drift;
mod metrics;
mod page;
mod schedule;
mod web;

pub use schedule::{Error, Host, ScheduleArgs, serve};
pub use web::ServeLimits;
