//! Where `${VAR}`s come from: the process environment, an env file
//! (`--env-file`), and a named target (`--target`) of `targets.yaml`.
//!
//! Precedence, highest first: the chosen target's variables, the process
//! environment, the env file. The target is an explicit choice on the command
//! line, so it wins; an env file only fills in what the environment does not
//! set (as dotenv tools do). Values are kept here, never logged.
//!
//! ```yaml
//! # configs/targets.yaml
//! targets:
//!   emulator:
//!     TRUSTPILOT_AUTH_URL: http://127.0.0.1:8787
//!     TRUSTPILOT_API_SECRET: emulator-secret
//!   prod:
//!     TRUSTPILOT_AUTH_URL: https://api.trustpilot.com
//!     TRUSTPILOT_API_SECRET: ${PROD_TRUSTPILOT_API_SECRET}   # from the environment
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use retl_config::{ConfigErrors, Problem, Reader, join};

/// The variables `${VAR}` references are looked up in.
#[derive(Clone, Default)]
pub struct Environment {
    /// From `--env-file`.
    file: BTreeMap<String, String>,
    /// From the chosen target.
    target: BTreeMap<String, String>,
    /// The chosen target's name.
    target_name: Option<String>,
}

impl fmt::Debug for Environment {
    /// Names only: the values may be secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("file", &self.file.keys().collect::<Vec<_>>())
            .field("target", &self.target_name)
            .field("target_vars", &self.target.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The file that defines targets, in the configuration directory.
pub const TARGETS_FILE: &str = "targets.yaml";

impl Environment {
    /// The process environment alone.
    pub fn process() -> Environment {
        Environment::default()
    }

    /// Loads `env_file` (dotenv syntax) and the target `target` of
    /// `config_dir/targets.yaml`; every problem at once.
    pub fn load(
        config_dir: &Path,
        env_file: Option<&Path>,
        target: Option<&str>,
    ) -> Result<Environment, ConfigErrors> {
        let mut environment = Environment::default();
        if let Some(path) = env_file {
            let entries = dotenvy::from_path_iter(path).map_err(|e| {
                ConfigErrors(vec![Problem::general(format!(
                    "cannot read the env file `{}`: {e}",
                    path.display()
                ))])
            })?;
            for entry in entries {
                let (name, value) = entry.map_err(|e| {
                    ConfigErrors(vec![Problem::in_file(
                        path,
                        "",
                        format!("not a valid env file line: {e}"),
                    )])
                })?;
                environment.file.insert(name, value);
            }
        }
        if let Some(name) = target {
            let file = config_dir.join(TARGETS_FILE);
            environment.target = read_target(&file, name, &|var| environment.lookup_base(var))?;
            environment.target_name = Some(name.to_owned());
        }
        Ok(environment)
    }

    /// The chosen target, if any.
    pub fn target(&self) -> Option<&str> {
        self.target_name.as_deref()
    }

    fn lookup_base(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .or_else(|| self.file.get(name).cloned())
    }

    /// The value of `name`: the target's, else the process environment's, else the env file's.
    pub fn get(&self, name: &str) -> Option<String> {
        self.target
            .get(name)
            .cloned()
            .or_else(|| self.lookup_base(name))
    }
}

/// Reads the variables of target `name` from `file`.
fn read_target(
    file: &PathBuf,
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, ConfigErrors> {
    let one = |message: String| ConfigErrors(vec![Problem::in_file(file, "", message)]);
    let text = std::fs::read_to_string(file).map_err(|e| {
        one(format!(
            "--target {name} needs {TARGETS_FILE} in the configuration directory: {e}"
        ))
    })?;
    let doc = retl_config::parse(file, &text).map_err(|p| ConfigErrors(vec![p]))?;
    let mut r = Reader::new(file, &text, env);
    let mut vars = BTreeMap::new();
    let targets = r
        .block(&doc, "", &super::blocks::TARGETS)
        .and_then(|map| {
            r.required(
                &map,
                "",
                "targets",
                "a mapping of target names to variables",
            )
        })
        .and_then(|node| r.map(node, "targets", &[]));
    if let Some(targets) = targets {
        let names: Vec<&str> = targets.entries().iter().map(|(n, _)| n.as_str()).collect();
        if let Some(node) = targets.get(name) {
            let path = join("targets", name);
            if let Some(values) = r.map(node, &path, &[]) {
                for (var, value) in values.entries() {
                    if let Some(value) = r.string(value, &join(&path, var)) {
                        vars.insert(var.clone(), value);
                    }
                }
            }
        } else {
            let hint = retl_config::closest(name, &names)
                .map_or_else(String::new, |c| format!("did you mean {c}? "));
            r.problem(
                targets.node,
                "targets",
                format!("no target `{name}`: {hint}defined: {}", names.join(", ")),
            );
        }
    }
    if r.problems.is_empty() {
        Ok(vars)
    } else {
        Err(ConfigErrors(r.problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_wins_over_the_environment_and_an_env_file_only_fills_in() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(TARGETS_FILE),
            "targets:\n  prod:\n    RETL_T_URL: https://api.example\n    RETL_T_SECRET: ${RETL_T_FROM_FILE}\n  emulator:\n    RETL_T_URL: http://127.0.0.1:8787\n",
        )
        .unwrap();
        let env_file = dir.path().join("prod.env");
        std::fs::write(&env_file, "RETL_T_FROM_FILE=s3cret\nRETL_T_ONLY_FILE=yes\n").unwrap();
        let env = Environment::load(dir.path(), Some(&env_file), Some("prod")).unwrap();
        assert_eq!(
            env.get("RETL_T_URL").as_deref(),
            Some("https://api.example")
        );
        assert_eq!(env.get("RETL_T_SECRET").as_deref(), Some("s3cret"));
        assert_eq!(env.get("RETL_T_ONLY_FILE").as_deref(), Some("yes"));
        assert_eq!(env.get("RETL_T_NOWHERE"), None);
        assert!(
            !format!("{env:?}").contains("s3cret"),
            "values stay out of Debug"
        );

        let err = Environment::load(dir.path(), None, Some("prdo")).unwrap_err();
        assert!(
            err.to_string()
                .contains("no target `prdo`: did you mean prod? defined: prod, emulator"),
            "{err}"
        );
    }
}
