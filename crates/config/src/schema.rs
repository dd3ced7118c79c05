//! Pieces of JSON Schema (draft 2020-12) for the configuration files.
//!
//! Each component writes the schema of its settings beside their reader,
//! from the same key lists, with these helpers; `retl schema` prints the
//! whole, so that editors can complete and validate the YAML.
//!
//! Every scalar may also be written as a `${VAR}` reference: its value is
//! only known when the file is loaded, so the schema accepts a string that
//! holds one wherever a number or a boolean is expected.

use serde_json::{Value, json};

/// The dialect every schema declares.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// A string holding a `${VAR}` reference.
fn variable() -> Value {
    json!({"type": "string", "pattern": "\\$\\{"})
}

/// A string.
pub fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

/// A whole number from `min` to `max`.
pub fn integer(min: u64, max: u64, description: &str) -> Value {
    json!({
        "description": description,
        "anyOf": [{"type": "integer", "minimum": min, "maximum": max}, variable()],
    })
}

/// `true` or `false`.
pub fn boolean(description: &str) -> Value {
    json!({"description": description, "anyOf": [{"type": "boolean"}, variable()]})
}

/// One of `choices`.
pub fn choice(choices: &[&str], description: &str) -> Value {
    json!({"description": description, "anyOf": [{"enum": choices}, variable()]})
}

/// A duration such as `30m`, `12h`, `3d`, `1w`.
pub fn duration(description: &str) -> Value {
    json!({
        "type": "string",
        "description": description,
        "pattern": "^(\\s*[0-9]+\\s*[a-zA-Z]+)+\\s*$|\\$\\{",
    })
}

/// A list of strings; a single string is a list of one.
pub fn strings(description: &str) -> Value {
    json!({
        "description": description,
        "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}],
    })
}

/// A mapping with exactly `properties` (no others), `required` among them.
pub fn object(description: &str, properties: Vec<(&str, Value)>, required: &[&str]) -> Value {
    let properties: serde_json::Map<String, Value> = properties
        .into_iter()
        .map(|(key, schema)| (key.to_owned(), schema))
        .collect();
    json!({
        "type": "object",
        "description": description,
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// The keys an [`object`] schema allows, for tests that hold a schema and
/// its reader to the same keys.
pub fn keys(schema: &Value) -> Vec<&str> {
    schema["properties"]
        .as_object()
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default()
}
