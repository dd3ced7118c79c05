//! One module per command.

pub(crate) mod alerts;
pub(crate) mod approve;
pub(crate) mod check;
#[cfg(feature = "emulator")]
pub(crate) mod demo;
pub(crate) mod forget;
pub(crate) mod init;
pub(crate) mod preview;
pub(crate) mod rename;
pub(crate) mod run;
pub(crate) mod runs;
pub(crate) mod schedule;
pub(crate) mod templates;
