//! The configuration's references hold together: the JSON Schema `retl
//! schema` prints, the readers, the example `configs/` and every YAML example
//! of the README.

use std::path::{Path, PathBuf};

use retl_engine::config::Project;
use retl_engine::config::schema::{SchemaKind, schema};
use serde_json::{Value, json};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// YAML as JSON, scalars typed as YAML 1.2 types them (what an editor sees).
fn to_json(yaml: &saphyr::Yaml<'_>) -> Value {
    use saphyr::{Scalar, Yaml};
    match yaml {
        Yaml::Value(Scalar::Null) => Value::Null,
        Yaml::Value(Scalar::Boolean(b)) => json!(b),
        Yaml::Value(Scalar::Integer(i)) => json!(i),
        Yaml::Value(Scalar::FloatingPoint(f)) => json!(f.into_inner()),
        Yaml::Value(Scalar::String(s)) => json!(s.as_ref()),
        Yaml::Representation(text, _, _) => json!(text.as_ref()),
        Yaml::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Yaml::Tagged(_, inner) => to_json(inner),
        Yaml::Alias(_) | Yaml::BadValue => Value::Null,
    }
}

fn parse(text: &str) -> Value {
    use saphyr::LoadableYamlNode as _;
    let docs = saphyr::Yaml::load_from_str(text).expect("valid YAML");
    to_json(&docs[0])
}

fn validate(kind: SchemaKind, instance: &Value) -> Result<(), String> {
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource("retl.json", schema(kind, &registry()))
        .expect("the schema is JSON");
    let index = compiler
        .compile("retl.json", &mut schemas)
        .expect("the schema compiles under draft 2020-12");
    schemas
        .validate(instance, index)
        .map_err(|e| format!("{e:#}"))
}

/// Which file a YAML example is, by what it holds.
fn kind_of(doc: &Value) -> SchemaKind {
    if doc.get("targets").is_some() {
        SchemaKind::Targets
    } else if doc.get("channels").is_some() || doc.get("rules").is_some() {
        SchemaKind::Alerts
    } else if doc.get("type").is_some() || doc.get("auth").is_some() {
        SchemaKind::Destination
    } else {
        SchemaKind::Activation
    }
}

/// The fenced `yaml` blocks of the README and of the guide's chapters
/// (`docs/guide/*.md`), each with `file:line` where it starts.
fn readme_examples() -> Vec<(String, String)> {
    let guide = repository().join("docs/guide");
    let mut files = vec![repository().join("README.md")];
    let mut chapters: Vec<_> = std::fs::read_dir(&guide)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    chapters.sort();
    files.extend(chapters);
    let mut examples = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file
            .strip_prefix(repository())
            .unwrap_or(&file)
            .display()
            .to_string();
        let mut current: Option<(String, String)> = None;
        for (i, line) in text.lines().enumerate() {
            match (&mut current, line.trim_end()) {
                (None, "```yaml") => current = Some((format!("{name}:{}", i + 2), String::new())),
                (Some(_), "```") => examples.extend(current.take()),
                (Some((_, text)), _) => {
                    text.push_str(line);
                    text.push('\n');
                }
                (None, _) => {}
            }
        }
    }
    examples
}

#[test]
fn every_example_configuration_validates_against_the_schema() {
    let configs = repository().join("configs");
    let files = [
        ("destinations/trustpilot.yaml", SchemaKind::Destination),
        ("activations/orders.yaml", SchemaKind::Activation),
        ("targets.yaml", SchemaKind::Targets),
    ];
    for (file, kind) in files {
        let doc = parse(&std::fs::read_to_string(configs.join(file)).unwrap());
        validate(kind, &doc).unwrap_or_else(|e| panic!("configs/{file}: {e}"));
    }
    let examples = readme_examples();
    assert!(
        examples.len() >= 6,
        "the README's YAML examples: {}",
        examples.len()
    );
    for (line, text) in &examples {
        let doc = parse(text);
        validate(kind_of(&doc), &doc).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
}

#[test]
fn every_yaml_example_of_the_readme_loads_without_a_problem() {
    // Variables get plausible values; a pair of files (destination then
    // activation) is loaded together, as a project.
    let env = |name: &str| {
        Some(match name {
            n if n.ends_with("WAREHOUSE_URL") => "sqlite://warehouse.db".to_owned(),
            n if n.ends_with("WEBHOOK_URL") => "https://hooks.example/T0/B0/x".to_owned(),
            n if n.ends_with("_URL") => return None,
            n if n.ends_with("BUSINESS_UNIT_ID") => "bu-1".to_owned(),
            other => format!("value-of-{other}"),
        })
    };
    let examples = readme_examples();
    let destination = examples
        .iter()
        .find(|(_, text)| kind_of(&parse(text)) == SchemaKind::Destination)
        .expect("the README shows a destination");
    for (line, text) in &examples {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        match kind_of(&parse(text)) {
            SchemaKind::Targets => {
                write("targets.yaml", text);
                for target in parse(text)["targets"].as_object().unwrap().keys() {
                    // The process environment has no production secrets: only
                    // those may be missing.
                    if let Err(e) =
                        retl_engine::config::Environment::load(dir.path(), None, Some(target))
                    {
                        assert!(
                            e.0.iter()
                                .all(|p| p.message.starts_with("environment variable `")),
                            "{line}: {e}"
                        );
                    }
                }
                continue;
            }
            SchemaKind::Destination => write("destinations/trustpilot.yaml", text),
            SchemaKind::Alerts => write("alerts.yaml", text),
            SchemaKind::Activation => {
                write("destinations/trustpilot.yaml", &destination.1);
                // A dbt model is found in dbt's manifest: a small one here.
                let text =
                    match parse(text)["source"]["dbt"]["model"].as_str() {
                        Some(model) => {
                            let manifest = dir.path().join("manifest.json");
                            std::fs::write(&manifest, serde_json::json!({
                            "metadata": {"project_name": "shop"},
                            "nodes": {format!("model.shop.{model}"): {
                                "resource_type": "model", "name": model, "package_name": "shop",
                                "relation_name": format!("\"analytics\".\"{model}\""),
                                "config": {"materialized": "table"},
                            }},
                        }).to_string()).unwrap();
                            let mut doc = parse(text);
                            doc["source"]["dbt"] =
                                serde_json::json!({"model": model, "manifest": manifest});
                            serde_json::to_string(&doc).unwrap()
                        }
                        None => text.clone(),
                    };
                write("activations/example.yaml", &text);
            }
        }
        let project = Project::load_with_env(dir.path(), &env, &registry()).unwrap();
        assert!(
            project.problems.is_empty(),
            "{line}: {}",
            retl_engine::config::ConfigErrors(project.problems.clone())
        );
    }
}

/// A document with every key the schema allows, each with a value of its type.
fn maximal(schema: &Value) -> Value {
    if let Some(alternatives) = schema.get("anyOf").and_then(Value::as_array) {
        return maximal(&alternatives[0]);
    }
    if let Some(value) = schema.get("const") {
        return value.clone();
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values[0].clone();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => match schema.get("properties").and_then(Value::as_object) {
            Some(properties) => Value::Object(
                properties
                    .iter()
                    .map(|(k, v)| (k.clone(), maximal(v)))
                    .collect(),
            ),
            None => json!({"x": {"Y": "z"}}),
        },
        Some("array") => json!([maximal(&schema["items"])]),
        Some("integer") => schema["minimum"].clone(),
        Some("boolean") => json!(true),
        _ => json!("x"),
    }
}

fn yaml(value: &Value) -> String {
    // JSON is YAML: the reader reads it as it reads any flow mapping.
    value.to_string()
}

#[test]
fn the_schema_and_the_readers_agree_on_every_key() {
    // The schemas are built from the readers' own key lists, so every key a
    // reader accepts is in its schema (a key without a schema panics here).
    let destination = schema(SchemaKind::Destination, &registry());
    let activation = schema(SchemaKind::Activation, &registry());
    // And every key the schema allows, at every depth, is one the readers accept.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("destinations")).unwrap();
    std::fs::create_dir_all(dir.path().join("activations")).unwrap();
    let mut full_destination = maximal(&destination);
    full_destination["name"] = json!("trustpilot");
    let mut full_activation = maximal(&activation);
    full_activation["destination"] = json!("trustpilot");
    full_activation["name"] = json!("full");
    std::fs::write(
        dir.path().join("destinations/trustpilot.yaml"),
        yaml(&full_destination),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("activations/full.yaml"),
        yaml(&full_activation),
    )
    .unwrap();
    let project = Project::load_with_env(dir.path(), &|_| None, &registry()).unwrap();
    let unknown: Vec<String> = project
        .problems
        .iter()
        .filter(|p| p.message.contains("unknown field"))
        .map(ToString::to_string)
        .collect();
    assert!(unknown.is_empty(), "{unknown:#?}");
    // Both refuse a key that is in neither.
    let mut typo = full_activation.clone();
    typo["source"]["tabel"] = json!("orders");
    assert!(validate(SchemaKind::Activation, &typo).is_err());
    std::fs::write(dir.path().join("activations/full.yaml"), yaml(&typo)).unwrap();
    let project = Project::load_with_env(dir.path(), &|_| None, &registry()).unwrap();
    assert!(
        project
            .problems
            .iter()
            .any(|p| p.message.starts_with("unknown field `tabel`")),
        "{:?}",
        project.problems
    );
}

/// The kinds of destination the binary knows.
fn registry() -> retl_engine::config::Registry {
    retl_engine::config::Registry::new().with::<retl_trustpilot::Destination>()
}
