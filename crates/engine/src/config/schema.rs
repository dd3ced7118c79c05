//! The JSON Schema (draft 2020-12) of the configuration files, for editors:
//! `retl schema [destination|activation|targets]`.
//!
//! Assembled from the schemas each component writes beside its reader
//! (`retl_source::source_schema`, each destination kind's `schema`,
//! `target_schema` and `mapping_schema`) and,
//! for the activation's own keys, from the same key lists the engine reads.

use retl_config::schema::{DIALECT, choice, duration, object, string};
use retl_destination::Registry;
use serde_json::{Value, json};

use super::{ACTIVATION_KEYS, MAX_ROW_AGE_KEYS, WRITEBACK_KEYS};

retl_config::spelled! {
    /// Which file a schema describes.
    pub enum SchemaKind {
        /// `destinations/*.yaml`.
        Destination = "destination",
        /// `activations/*.yaml`.
        Activation = "activation",
        /// `targets.yaml`.
        Targets = "targets",
        /// `alerts.yaml`.
        Alerts = "alerts",
    }
}

fn document(title: &str, mut schema: Value) -> Value {
    schema["$schema"] = json!(DIALECT);
    schema["title"] = json!(title);
    schema
}

/// The schema of one kind of file.
pub fn schema(kind: SchemaKind, registry: &Registry) -> Value {
    match kind {
        SchemaKind::Destination => document("retl destination", destination(registry)),
        SchemaKind::Activation => document("retl activation", activation(registry)),
        SchemaKind::Targets => document("retl targets", targets()),
        SchemaKind::Alerts => document("retl alerts", super::alerts::schema()),
    }
}

/// One schema for every kind of file (a file must be one of them).
pub fn all(registry: &Registry) -> Value {
    json!({
        "$schema": DIALECT,
        "title": "retl configuration file",
        "$defs": {
            "destination": destination(registry),
            "activation": activation(registry),
            "targets": targets(),
            "alerts": super::alerts::schema(),
        },
        "anyOf": [
            {"$ref": "#/$defs/destination"},
            {"$ref": "#/$defs/activation"},
            {"$ref": "#/$defs/targets"},
            {"$ref": "#/$defs/alerts"},
        ],
    })
}

/// A destination, by its `type` (one schema per destination type).
fn destination(registry: &Registry) -> Value {
    let [destinations, _, _] = registry.schemas();
    json!({ "anyOf": destinations })
}

fn activation(registry: &Registry) -> Value {
    let [_, targets, mappings] = registry.schemas();
    let property = |key: &str| match key {
        "name" => string("the activation's name (default: the file stem)"),
        "description" => string("what it is for"),
        "source" => retl_source::source_schema(),
        "destination" => string("the destination's name"),
        "target" => json!({ "anyOf": targets }),
        "mapping" => json!({ "anyOf": mappings }),
        "writeback" => object(
            "with target.kind: invitation_link, where each link's URL is written",
            WRITEBACK_KEYS.iter().map(|k| (*k, string(k))).collect(),
            WRITEBACK_KEYS,
        ),
        "limits" => retl_config::limits::limits_schema(),
        "dedupe" => retl_config::limits::dedupe_schema(),
        "max_row_age" => object(
            "rows older than this are recorded too_old and never sent",
            vec![
                (
                    "column",
                    string("the column that dates a row (timestamp, date or text)"),
                ),
                ("age", duration("how old a row may be, e.g. 30d")),
            ],
            MAX_ROW_AGE_KEYS,
        ),
        "schedule" => json!({
            "description": "when `retl schedule` runs it: a 5-field cron expression or a nickname such as @hourly (UTC unless timezone: says otherwise), manual (the default), {every: 15m} or {cron, timezone}",
            "anyOf": [
                {"type": "string"},
                object(
                    "an interval or a cron expression",
                    vec![
                        ("every", duration("run this often, e.g. 15m")),
                        ("cron", string("a 5-field cron expression, or @yearly, @monthly, @weekly, @daily, @hourly")),
                        ("timezone", string("an IANA time zone for the cron expression")),
                    ],
                    &[],
                ),
            ],
        }),
        "timezone" => string("the IANA time zone a cron schedule is read in (default UTC)"),
        "retention" => object(
            "how long run logs are kept (the ledger is never pruned)",
            vec![
                (
                    "run_logs",
                    duration(
                        "run logs older than this are pruned at the end of a run, e.g. 180d (default: kept)",
                    ),
                ),
                (
                    "personal_data",
                    duration(
                        "reasons, answers and link URLs of run-log rows older than this are scrubbed at the end of a run, e.g. 90d (default: kept)",
                    ),
                ),
            ],
            &[],
        ),
        "first_run" => choice(
            super::FirstRun::CHOICES,
            "what the first run does with the rows already there (default send_all)",
        ),
        other => unreachable!("activation key `{other}` has no schema"),
    };
    object(
        "an activation: one source, one destination, one mapping",
        ACTIVATION_KEYS.iter().map(|k| (*k, property(k))).collect(),
        &["source", "destination", "mapping"],
    )
}

fn targets() -> Value {
    object(
        "named sets of variables for --target",
        vec![(
            "targets",
            json!({
                "type": "object",
                "description": "target name -> its variables",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "number", "boolean"]},
                },
            }),
        )],
        &["targets"],
    )
}
