//! Alerts, in one place for `retl run` and the daemon alike: the rules and
//! channels of `configs/alerts.yaml`, read with every problem's position
//! ([`rules`]), and what happens after each run ([`notify`]): a rule that
//! starts to hold opens an incident in the state and alerts its channels
//! once, the run that ends it says `recovered` once, and sending never fails
//! a run nor holds its exit past [`deadline`].

pub mod notify;
pub mod rules;

pub use notify::{Alert, Notifier, Queued, deadline};
pub use rules::{ALERTS_FILE, Alerts, Channel, Rule, When, read_alerts, schema};
