//! The declarations of an activation file's blocks: each key once, with its
//! JSON Schema. The readers (`mod.rs`, `when.rs`) accept these keys and no
//! other, and `retl schema activation` prints these schemas.

use retl_config::schema::{choice, duration, string};
use serde_json::json;

retl_config::block! {
    /// An activation file's own keys. `target` and `mapping` are read by
    /// the destination's type, and their schemas are the registry's
    /// (`schema.rs` fills them in).
    pub(super) static ACTIVATION = "an activation: one source, one destination, one mapping", required ["source", "destination", "mapping"] {
        "name" => string("the activation's name (default: the file stem)"),
        "description" => string("what it is for"),
        "owner" => string("who owns it: a name or an email (dbt's exposures name it)"),
        "source" => retl_source::source_schema(),
        "destination" => string("the destination's name"),
        "target" => json!({"description": "the destination's settings for this activation, by its type"}),
        "mapping" => json!({"description": "the destination's fields, each from a column, by its type"}),
        "writeback" => WRITEBACK.schema(),
        "first_run" => choice(
            super::FirstRun::CHOICES,
            "what the first run does with the rows already there (default send_all)",
        ),
        "limits" => retl_config::limits::LIMITS.schema(),
        "max_row_age" => MAX_ROW_AGE.schema(),
        "retention" => RETENTION.schema(),
        "dedupe" => retl_config::limits::DEDUPE.schema(),
        "schedule" => json!({
            "description": "when `retl schedule` runs it: a 5-field cron expression or a nickname such as @hourly (UTC unless timezone: says otherwise), manual (the default), {every: 15m} or {cron, timezone}",
            "anyOf": [{"type": "string"}, SCHEDULE.schema()],
        }),
        "timezone" => string("the IANA time zone a cron schedule is read in (default UTC)"),
    }
}

retl_config::block! {
    /// `schedule:` written as a mapping.
    pub(super) static SCHEDULE = "an interval or a cron expression", required [] {
        "every" => duration("run this often, e.g. 15m"),
        "cron" => string("a 5-field cron expression, or @yearly, @monthly, @weekly, @daily, @hourly"),
        "timezone" => string("an IANA time zone for the cron expression"),
    }
}

retl_config::block! {
    /// `retention:`.
    pub(super) static RETENTION = "how long run logs are kept (the ledger is never pruned)", required [] {
        "run_logs" => duration(
            "run logs older than this are pruned at the end of a run, e.g. 180d (default: kept)",
        ),
        "personal_data" => duration(
            "reasons, answers and link URLs of run-log rows older than this are scrubbed at the end of a run, e.g. 90d (default: kept)",
        ),
    }
}

retl_config::block! {
    /// `max_row_age:`.
    pub(super) static MAX_ROW_AGE = "rows older than this are recorded too_old and never sent", required ["column", "age"] {
        "column" => string("the column that dates a row (timestamp, date or text)"),
        "age" => duration("how old a row may be, e.g. 30d"),
    }
}

retl_config::block! {
    /// `writeback:`.
    pub(super) static WRITEBACK = "with target.kind: invitation_link, where each link's URL is written", required ["table", "key_column", "url_column"] {
        "table" => string("table"),
        "key_column" => string("key_column"),
        "url_column" => string("url_column"),
    }
}

retl_config::block! {
    /// `targets.yaml`.
    pub(super) static TARGETS = "named sets of variables for --target", required ["targets"] {
        "targets" => json!({
            "type": "object",
            "description": "target name -> its variables",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": {"type": ["string", "number", "boolean"]},
            },
        }),
    }
}
