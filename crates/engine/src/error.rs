//! Errors of a run.

use retl_config::ConfigErrors;

/// Why a run could not start or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is wrong (including a mapping that does not fit the source).
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// The activation's configuration does not fit its source.
    #[error("activation `{activation}`: {message}")]
    Mapping {
        /// The activation.
        activation: String,
        /// What does not fit.
        message: String,
    },
    /// The activation's mapping does not fit its source's columns.
    #[error("activation `{activation}`")]
    Unmapped {
        /// The activation.
        activation: String,
        /// What does not fit.
        #[source]
        error: retl_mapping::Error,
    },
    /// The source failed (connection, query, a value of the wrong type).
    #[error("source of activation `{activation}`")]
    Source {
        /// The activation.
        activation: String,
        /// The source's error.
        #[source]
        error: retl_source::Error,
    },
    /// The destination refused the run (its configuration or credentials),
    /// or could not be reached.
    #[error("destination `{destination}`")]
    Destination {
        /// The destination.
        destination: String,
        /// Its error.
        #[source]
        error: Box<dyn retl_destination::Failure>,
    },
    /// The command needs a kind of destination this one is not.

    /// The state database failed, or the activation's lease is held or lost.
    #[error(transparent)]
    State(#[from] retl_state::Error),
    /// A row could not be hashed.
    #[error(transparent)]
    Hash(#[from] retl_diff::Error),
    /// A command needs a business unit and the destination has no default one.

    /// A safety limit refused the run before anything was sent (exit code 5).
    #[error("activation `{activation}`: {message}")]
    Refused {
        /// The activation.
        activation: String,
        /// Which limit, the numbers, and the ways out.
        message: String,
    },
    /// This machine's clock and the warehouse's disagree, and the run decides
    /// with times (`max_row_age`, cursor mode): nothing was read or sent.
    #[error("activation `{activation}`: {message}")]
    ClockSkew {
        /// The activation.
        activation: String,
        /// Both clocks' times, and what to do.
        message: String,
    },
    /// A command asked for what cannot be done (nothing to approve): exit 2.
    #[error("{0}")]
    Usage(String),
    /// A bug: something that cannot happen did.
    #[error("internal error: {0}")]
    Internal(String),
    /// A bug: an activation's delivery handed to a destination that did not
    /// read it.
    #[error("internal error")]
    Foreign(#[from] retl_destination::Foreign),
    /// An interrupted run's deadline passed while it waited: what did not
    /// answer in time (its rows are recorded as the interrupt's rules say).
    #[error("{what} before the interrupt's deadline")]
    Deadline {
        /// What was waited for.
        what: &'static str,
    },
    /// The run's counts do not add up: a bug, reported loudly rather than hidden.
    #[error("run accounting does not add up: {0}")]
    Accounting(String),
}

impl Error {
    /// Whether a safety limit refused the run, nothing sent (exit code 5).
    pub fn is_refused(&self) -> bool {
        matches!(self, Error::Refused { .. })
    }

    /// Whether another run of the activation holds its lease (exit code 4).
    pub fn is_locked(&self) -> bool {
        matches!(self, Error::State(retl_state::Error::Locked { .. }))
    }

    /// Whether the user's configuration is at fault (exit code 2).
    pub fn is_config(&self) -> bool {
        match self {
            Error::Config(_) | Error::Mapping { .. } | Error::Usage(_) => true,
            Error::Destination { error, .. } => error.class() == retl_destination::Class::Fatal,
            Error::Source { error, .. } => matches!(
                error,
                retl_source::Error::ColumnMissing { .. }
                    | retl_source::Error::Columns(_)
                    | retl_source::Error::UnsupportedType { .. }
                    | retl_source::Error::UnsupportedScheme { .. }
            ),
            _ => false,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
