//! The JSON Schema (draft 2020-12) of the configuration files, for editors:
//! `retl schema [destination|activation|targets]`.
//!
//! Assembled from the schemas each component declares with its keys
//! (`retl_source::source_schema`, each destination kind's `schema`,
//! `target_schema` and `mapping_schema`) and, for the activation's own
//! keys, from the blocks the engine reads them through (`blocks.rs`).

use retl_config::schema::DIALECT;
use retl_destination::Registry;
use serde_json::{Value, json};

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
    let mut schema = super::blocks::ACTIVATION.schema();
    schema["properties"]["target"] = json!({ "anyOf": targets });
    schema["properties"]["mapping"] = json!({ "anyOf": mappings });
    schema
}

fn targets() -> Value {
    super::blocks::TARGETS.schema()
}
