//! `limits:`: how much one run, or one day, may send. Read in an activation,
//! or in a destination for all its activations (the activation's keys win).

use crate::schema::{choice, duration, integer};
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
    /// At most this many rows sent per calendar month (UTC): a Trustpilot
    /// plan's allowance. In a destination's `limits:`, for its activations
    /// together; in an activation's, for it alone. The rest are `skipped`.
    pub max_per_month: Option<u64>,
    /// `surge: off` turns the surge guard off (default on).
    pub surge: Option<bool>,
    /// The surge guard's factor over the baseline (default 10).
    pub surge_factor: Option<u64>,
    /// A run never counts as a surge with this many new rows or fewer (default 100).
    pub surge_min: Option<u64>,
    /// A surge is more than this percentage of the rows read looking new (default 50).
    pub surge_share: Option<u64>,
    /// The completed runs that sent anything the baseline is the median of (default 30).
    pub surge_runs: Option<u64>,
}

/// The default of `surge_factor`.
pub const SURGE_FACTOR: u64 = 10;

/// The default of `surge_min`.
pub const SURGE_MIN: u64 = 100;

/// The default of `surge_share` (percent).
pub const SURGE_SHARE: u64 = 50;

/// The default of `surge_runs`.
pub const SURGE_RUNS: u64 = 30;

/// The default of `first_run_max`.
pub const FIRST_RUN_MAX: u64 = 100;

crate::block! {
    /// `limits:`, its keys and their schemas.
    pub static LIMITS = "how much one run, or one day, may send", required [] {
        "first_run_max" => integer(
            0,
            1_000_000_000,
            "a first run without first_run: that would send more sends nothing (default 100)",
        ),
        "max_per_run" => integer(0, 1_000_000_000, "at most this many rows sent per run"),
        "max_per_day" => integer(0, 1_000_000_000, "at most this many rows sent per UTC day"),
        "max_per_month" => integer(
            0,
            1_000_000_000,
            "at most this many rows sent per calendar month (UTC), a plan's allowance; on a destination, for its activations together",
        ),
        "surge" => choice(
            &["on", "off"],
            "the surge guard, which refuses a run whose new rows look like a rebuilt model (default on)",
        ),
        "surge_factor" => integer(
            1,
            1_000_000,
            "a surge has more new rows than this times the median sent by the recent runs that sent anything (default 10)",
        ),
        "surge_min" => integer(
            0,
            1_000_000_000,
            "a run with this many new rows or fewer is never a surge (default 100)",
        ),
        "surge_share" => integer(
            1,
            100,
            "a surge has more than this percentage of the rows read looking new (default 50)",
        ),
        "surge_runs" => integer(
            1,
            1000,
            "how many recent runs that sent anything the baseline is the median of (default 30)",
        ),
    }
}

impl Limits {
    /// `self`'s keys where set, else `base`'s.
    #[must_use]
    pub fn over(self, base: Limits) -> Limits {
        Limits {
            first_run_max: self.first_run_max.or(base.first_run_max),
            max_per_run: self.max_per_run.or(base.max_per_run),
            max_per_day: self.max_per_day.or(base.max_per_day),
            max_per_month: self.max_per_month.or(base.max_per_month),
            surge: self.surge.or(base.surge),
            surge_factor: self.surge_factor.or(base.surge_factor),
            surge_min: self.surge_min.or(base.surge_min),
            surge_share: self.surge_share.or(base.surge_share),
            surge_runs: self.surge_runs.or(base.surge_runs),
        }
    }

    /// Whether the surge guard is on.
    pub fn surge(self) -> bool {
        self.surge.unwrap_or(true)
    }

    /// The surge guard's factor.
    pub fn surge_factor(self) -> u64 {
        self.surge_factor.unwrap_or(SURGE_FACTOR)
    }

    /// The surge guard's floor.
    pub fn surge_min(self) -> u64 {
        self.surge_min.unwrap_or(SURGE_MIN)
    }

    /// The surge guard's share of the rows read, in percent.
    pub fn surge_share(self) -> u64 {
        self.surge_share.unwrap_or(SURGE_SHARE)
    }

    /// How many earlier runs the surge guard's baseline is taken from.
    pub fn surge_runs(self) -> u64 {
        self.surge_runs.unwrap_or(SURGE_RUNS)
    }

    /// The first-run guard's threshold.
    pub fn first_run_max(self) -> u64 {
        self.first_run_max.unwrap_or(FIRST_RUN_MAX)
    }
}

/// Reads a `limits:` block.
pub fn read_limits(r: &mut Reader<'_>, node: &Node<'_>) -> Limits {
    let Some(map) = r.block(node, "limits", &LIMITS) else {
        return Limits::default();
    };
    let mut number = |key: &str, min: u64, max: u64| {
        map.get(key)
            .and_then(|n| r.number(n, &join("limits", key), min, max))
    };
    let most = 1_000_000_000;
    let (first_run_max, max_per_run) = (
        number("first_run_max", 0, most),
        number("max_per_run", 0, most),
    );
    let (max_per_day, max_per_month) = (
        number("max_per_day", 0, most),
        number("max_per_month", 0, most),
    );
    let surge_factor = number("surge_factor", 1, 1_000_000);
    let surge_min = number("surge_min", 0, most);
    let surge_share = number("surge_share", 1, 100);
    let surge_runs = number("surge_runs", 1, 1000);
    let surge = map
        .get("surge")
        .and_then(|n| r.choice(n, "limits.surge", &["on", "off"]))
        .map(|text| text == "on");
    Limits {
        first_run_max,
        max_per_run,
        max_per_day,
        max_per_month,
        surge,
        surge_factor,
        surge_min,
        surge_share,
        surge_runs,
    }
}

crate::block! {
    /// `dedupe:`, its keys and their schemas.
    pub static DEDUPE = "one invitation per customer per period: a row whose customer (by email, trimmed and lowercased) was invited within `within` is suppressed", required ["by", "within"] {
        "by" => choice(&["consumer_email"], "what identifies a customer"),
        "within" => duration("the period, e.g. 365d"),
    }
}

/// Reads `dedupe: {by: consumer_email, within: 365d}` (in an activation, or
/// a destination for all its activations): the window within which one
/// customer (by email) is invited once.
pub fn read_dedupe(r: &mut Reader<'_>, node: &Node<'_>) -> Option<std::time::Duration> {
    let map = r.block(node, "dedupe", &DEDUPE)?;
    let by = r
        .required(&map, "dedupe", "by", "consumer_email")
        .and_then(|n| r.choice(n, "dedupe.by", &["consumer_email"]));
    let within = r
        .required(&map, "dedupe", "within", "365d")
        .and_then(|n| r.duration(n, "dedupe.within"));
    by?;
    within
}
