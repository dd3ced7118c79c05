//! The destinations a run works with: `retl-destination`'s [`Destination`]
//! and [`Delivery`], any kind behind one object-safe form, read through the
//! [`Registry`] the program builds (the binary names each kind once). The
//! run itself (`crate::run`) never names a kind.
//!
//! The test-only memory destination is here: proof that a destination is
//! its `Kind` and one registry line.

pub use retl_destination::{Delivery, Destination, Registry, RequestObserver};

#[cfg(test)]
pub(crate) mod memory;

/// The registry of the engine's own tests: the memory destination, and
/// Trustpilot's for the configuration tests (a dev-dependency only).
#[cfg(test)]
pub(crate) fn test_registry() -> Registry {
    Registry::new()
        .with::<memory::Memory>()
        .with::<retl_trustpilot::Destination>()
}
