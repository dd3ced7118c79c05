//! Runs activations.
pub mod config;
