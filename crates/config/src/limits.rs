//! `limits:`: how much one run, or one day, may send. Read in an activation,
//! or in a destination for all its activations (the activation's keys win).

use serde_json::Value;

use crate::schema::{integer, object};
use crate::{Node, Reader, join};

/// Volume limits (`limits:`). Unset keys fall back to the other layer, then
/// to the defaults in [`Limits::first_run_max`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// A first run without an explicit `first_run:` that would send more than
    /// this sends nothing (default 100).
    pub first_run_max: Option<u64>,
    /// At most this many rows sent per run; the rest are `skipped` ("cap").
    pub max_per_run: Option<u64>,
    /// At most this many rows sent per UTC day; the rest are `skipped` ("cap").
    pub max_per_day: Option<u64>,
    /// A run with more than this many times the median sent by the
    /// activation's last 10 completed runs (and more than
    /// [`SURGE_MIN`]) new rows is refused (default 10).
    pub surge_factor: Option<u64>,
}

/// The default of `surge_factor`.
pub const SURGE_FACTOR: u64 = 10;

/// A run never counts as a surge with this many new rows or fewer.
pub const SURGE_MIN: u64 = 100;

/// The default of `first_run_max`.
pub const FIRST_RUN_MAX: u64 = 100;

/// The keys of `limits:`.
pub const LIMIT_KEYS: &[&str] = &[
    "first_run_max",
    "max_per_run",
    "max_per_day",
    "surge_factor",
];

impl Limits {
    /// `self`'s keys where set, else `base`'s.
    #[must_use]
    pub fn over(self, base: Limits) -> Limits {
        Limits {
            first_run_max: self.first_run_max.or(base.first_run_max),
            max_per_run: self.max_per_run.or(base.max_per_run),
            max_per_day: self.max_per_day.or(base.max_per_day),
            surge_factor: self.surge_factor.or(base.surge_factor),
        }
    }

    /// The surge guard's factor.
    pub fn surge_factor(self) -> u64 {
        self.surge_factor.unwrap_or(SURGE_FACTOR)
    }

    /// The first-run guard's threshold.
    pub fn first_run_max(self) -> u64 {
        self.first_run_max.unwrap_or(FIRST_RUN_MAX)
    }
}

/// Reads a `limits:` block.
pub fn read_limits(r: &mut Reader<'_>, node: &Node<'_>) -> Limits {
    let Some(map) = r.map(node, "limits", LIMIT_KEYS) else {
        return Limits::default();
    };
    let mut number = |key: &str| {
        map.get(key)
            .and_then(|n| r.number(n, &join("limits", key), 0, 1_000_000_000))
    };
    Limits {
        first_run_max: number("first_run_max"),
        max_per_run: number("max_per_run"),
        max_per_day: number("max_per_day"),
        surge_factor: map
            .get("surge_factor")
            .and_then(|n| r.number(n, "limits.surge_factor", 1, 1_000_000)),
    }
}

/// The JSON Schema of `limits:`.
pub fn limits_schema() -> Value {
    let property = |key: &str| match key {
        "first_run_max" => integer(
            0,
            1_000_000_000,
            "a first run without first_run: that would send more sends nothing (default 100)",
        ),
        "max_per_run" => integer(0, 1_000_000_000, "at most this many rows sent per run"),
        "max_per_day" => integer(0, 1_000_000_000, "at most this many rows sent per UTC day"),
        "surge_factor" => integer(
            1,
            1_000_000,
            "a run with more new rows than this times the median sent by the last 10 completed runs (and over 100) is refused unless --allow-surge (default 10)",
        ),
        other => unreachable!("limits key `{other}` has no schema"),
    };
    object(
        "how much one run, or one day, may send",
        LIMIT_KEYS.iter().map(|k| (*k, property(k))).collect(),
        &[],
    )
}
