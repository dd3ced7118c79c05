//! A dbt model as a source (`source.dbt`): the model is found by name in
//! dbt's `manifest.json` and read from the relation dbt built for it
//! (`relation_name`, already quoted by dbt's adapter for the warehouse), as
//! a `SELECT * FROM` that relation. The connection stays `source.connection`:
//! dbt's `profiles.yml` is not read, since its credentials are often
//! another user's, its targets are chosen by dbt's flags, and retl's
//! `targets.yaml` already names per-environment connections.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// `source.dbt`: which model, and where dbt's manifest is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dbt {
    /// The model's name (`ref('orders')` is `orders`).
    pub model: String,
    /// `manifest.json`, when given (else `target/manifest.json` under `project_dir`).
    pub manifest: Option<PathBuf>,
    /// The dbt project's directory.
    pub project_dir: Option<PathBuf>,
}

/// A model found in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbtModel {
    /// The model's name.
    pub name: String,
    /// Its relation in the warehouse, as dbt quotes it.
    pub relation: String,
    /// Its unique key or primary key constraint, if dbt declares one.
    pub key: Option<Vec<String>>,
    /// Its SQL file, when the project directory is known.
    pub sql_file: Option<PathBuf>,
    /// The manifest it was found in.
    pub manifest: PathBuf,
}

impl Dbt {
    /// Its paths, relative ones taken from `project` (the directory that
    /// holds the configuration directory).
    pub fn resolve_paths(&mut self, project: &Path) {
        for path in [&mut self.manifest, &mut self.project_dir]
            .into_iter()
            .flatten()
        {
            if path.is_relative() {
                *path = project.join(&*path);
            }
        }
    }

    /// The manifest's path.
    pub fn manifest_path(&self) -> PathBuf {
        match (&self.manifest, &self.project_dir) {
            (Some(manifest), _) => manifest.clone(),
            (None, Some(dir)) => dir.join("target").join("manifest.json"),
            (None, None) => PathBuf::from("target/manifest.json"),
        }
    }

    /// Finds the model in the manifest: a problem's words when it cannot.
    pub fn find(&self) -> Result<DbtModel, String> {
        let path = self.manifest_path();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "cannot read dbt's manifest {}: {e} (run `dbt parse` or `dbt run` in the dbt project first)",
                path.display()
            )
        })?;
        let manifest: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a dbt manifest: {e}", path.display()))?;
        let root = manifest["metadata"]["project_name"]
            .as_str()
            .unwrap_or_default();
        let models: Vec<&Value> = manifest["nodes"]
            .as_object()
            .into_iter()
            .flat_map(|nodes| nodes.values())
            .filter(|node| node["resource_type"] == "model")
            .collect();
        let named: Vec<&&Value> = models
            .iter()
            .filter(|n| n["name"] == self.model.as_str())
            .collect();
        let node = named
            .iter()
            .find(|n| n["package_name"] == root)
            .or_else(|| named.first())
            .ok_or_else(|| {
                let names: Vec<&str> = models.iter().filter_map(|n| n["name"].as_str()).collect();
                let hint = retl_config::closest(&self.model, &names)
                    .map(|meant| format!("did you mean `{meant}`? "))
                    .unwrap_or_default();
                format!(
                    "dbt model `{}` is not in {}: {hint}its models: {}",
                    self.model,
                    path.display(),
                    names.join(", ")
                )
            })?;
        if node["config"]["materialized"] == "ephemeral" {
            return Err(format!(
                "dbt model `{}` is ephemeral: dbt builds no relation for it in the warehouse; read a model that is materialized (table, view, incremental)",
                self.model
            ));
        }
        let relation = node["relation_name"].as_str().ok_or_else(|| {
            format!(
                "dbt model `{}` has no relation in {} (not built by dbt)",
                self.model,
                path.display()
            )
        })?;
        let project = self
            .project_dir
            .clone()
            .or_else(|| path.parent().and_then(Path::parent).map(Path::to_path_buf));
        Ok(DbtModel {
            name: self.model.clone(),
            relation: relation.to_owned(),
            key: key_of(node),
            sql_file: project
                .zip(node["original_file_path"].as_str())
                .map(|(dir, file)| dir.join(file)),
            manifest: path,
        })
    }
}

/// The key dbt declares for a model: a primary key constraint (the model's
/// or a column's), else its `unique_key`.
fn key_of(node: &Value) -> Option<Vec<String>> {
    let strings = |value: &Value| -> Option<Vec<String>> {
        match value {
            Value::String(one) => Some(vec![one.clone()]),
            Value::Array(many) => {
                let names: Vec<String> = many
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                (!names.is_empty()).then_some(names)
            }
            _ => None,
        }
    };
    let primary = |constraints: &Value| {
        constraints
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "primary_key")
            .cloned()
    };
    if let Some(constraint) = primary(&node["constraints"]) {
        return strings(&constraint["columns"]);
    }
    for (name, column) in node["columns"].as_object().into_iter().flatten() {
        if primary(&column["constraints"]).is_some() {
            return Some(vec![name.clone()]);
        }
    }
    strings(&node["config"]["unique_key"])
}

impl DbtModel {
    /// The source's model: every column of dbt's relation.
    pub fn query(&self) -> String {
        format!("SELECT * FROM {}", self.relation)
    }

    /// Whether the manifest is older than the model's SQL file (the model
    /// changed since dbt last parsed the project).
    pub fn manifest_is_stale(&self) -> bool {
        let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        match (
            modified(&self.manifest),
            self.sql_file.as_deref().and_then(modified),
        ) {
            (Some(manifest), Some(sql)) => manifest < sql,
            _ => false,
        }
    }
}
