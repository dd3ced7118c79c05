//! retl's exit codes: one enum, the numbers the guide's table documents (docs/guide/commands.md).

/// What a command's exit code says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Exit {
    /// Done: the run completed (rejected rows included), or the command did what it was asked.
    Ok = 0,
    /// Anything else went wrong (a source or state database unreachable, a source failing mid-run).
    Failed = 1,
    /// A configuration or usage error.
    Config = 2,
    /// Completed, but some rows need a look: failed, uncertain, recovered, a writeback failed.
    Attention = 3,
    /// Another run of the activation holds its lease.
    Locked = 4,
    /// Refused by a safety limit; nothing sent.
    Refused = 5,
    /// The runs completed, but `alerts.yaml` could not be used: no alert
    /// was sent (a typo there must not stop invitations, nor pass unseen).
    AlertsUnusable = 6,
    /// Interrupted by SIGINT or SIGTERM.
    Interrupted = 130,
}

impl Exit {
    /// From the least to the most serious: the exit code of several runs is
    /// the most serious of theirs.
    const BY_SEVERITY: [Exit; 8] = [
        Exit::Ok,
        Exit::Attention,
        Exit::AlertsUnusable,
        Exit::Interrupted,
        Exit::Locked,
        Exit::Refused,
        Exit::Config,
        Exit::Failed,
    ];

    /// The process's exit code.
    pub(crate) fn code(self) -> u8 {
        self as u8
    }

    /// Its rank in [`BY_SEVERITY`](Self::BY_SEVERITY).
    pub(crate) fn severity(self) -> usize {
        Self::BY_SEVERITY
            .iter()
            .position(|e| *e == self)
            .unwrap_or(Self::BY_SEVERITY.len())
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codes_are_the_documented_ones_and_failures_outrank_the_rest() {
        let codes: Vec<u8> = Exit::BY_SEVERITY.iter().map(|e| e.code()).collect();
        assert_eq!(codes, [0, 3, 6, 130, 4, 5, 2, 1]);
        assert!(Exit::Failed.severity() > Exit::Attention.severity());
    }
}
