//! The user's configuration: destinations and activations in YAML.
//!
//! The engine reads only what belongs to the activation itself (its name,
//! source, destination name, `first_run`, limits, schedule, the link
//! writeback) and a destination's `name` and `type`. Everything else is read
//! by the component it configures, beside its code: the `source:` block by
//! `retl-source`, a destination file and an activation's `target:` and
//! `mapping:` by the destination's crate, chosen by the destination's `type`
//! (`crate::destinations` is that dispatch). All of them read with `retl-config`, which reports every
//! unknown key, wrong type, invalid value and missing environment variable
//! with its file, line, column and field path, and carries on.
//!
//! A file with any problem is left out of the project and its problems are
//! kept, so one broken activation does not stop the others. IO checks
//! (connecting to the warehouse, minting a token) are not done here.
//!
//! This file keeps each activation structure beside its reader: the activation is read in one pass that reports every problem, and
//! splitting the pass would scatter its order. Environments are `env.rs`'s,
//! the keys about when (`schedule`, `max_row_age`) `when.rs`'s.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// `alerts.yaml`, read by `retl-alerts` (where alerts are sent from too).
pub use retl_alerts::rules as alerts;
mod blocks;
mod env;
mod when;

use when::{read_max_row_age, read_schedule};
pub mod schema;

use retl_config::{Map, Node, Reader, join};
use retl_source::SourceConfig;

pub use env::{Environment, TARGETS_FILE};
pub use retl_config::{ConfigErrors, Location, Problem};

pub use crate::destinations::{Delivery, Destination, Registry, RequestObserver};

/// Where created invitation links are written back (`writeback:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writeback {
    /// The table to update, on the activation's source connection.
    pub table: String,
    /// The column that identifies the row (a column the activation reads).
    pub key_column: String,
    /// The column that receives the link's URL.
    pub url_column: String,
}

/// Rows older than this are never sent (`max_row_age:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxRowAge {
    /// The column that dates a row (a timestamp, a date, or text holding one).
    pub column: String,
    /// How old a row may be, counted back from the start of the run.
    pub age: std::time::Duration,
}

retl_config::spelled! {
    /// What the first run of an activation does with the rows already there (`first_run:`).
    #[derive(Default)]
    pub enum FirstRun {
        /// Send them all (the default).
        #[default]
        SendAll = "send_all",
        /// Record them as a baseline and send only rows that appear later.
        SkipExisting = "skip_existing",
    }
}

/// An activation (`activations/*.yaml`): one source, one destination, one mapping.
#[derive(Clone)]
pub struct Activation {
    /// Its name (`name:` or the file stem).
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    /// Where the file names each column it reads: `(column, "file:line:col
    /// (field)")`, for a column the source lacks.
    pub column_sites: Vec<(String, String)>,
    /// `source.dbt`: the dbt model it reads, as found in dbt's manifest.
    pub dbt: Option<retl_source::DbtModel>,
    /// `owner:`: who owns it (a name, or an email), for dbt's exposures.
    pub owner: Option<String>,
    /// Where and what to read.
    pub source: SourceConfig,
    /// The columns that identify a row.
    pub primary_key: Vec<String>,
    /// The destination's name.
    pub destination: String,
    /// The target and mapping, as the destination's type reads them.
    pub delivery: Delivery,
    /// Where to write created links' URLs.
    pub writeback: Option<Writeback>,
    /// Whether the first run sends the rows already there or only records them.
    pub first_run: FirstRun,
    /// Whether `first_run:` was written (a first run without it is guarded).
    pub first_run_explicit: bool,
    /// The activation's `limits:` (over its destination's), but for
    /// `max_per_month`, which is the activation's own.
    pub limits: retl_config::limits::Limits,
    /// One invitation per customer per period: each `(scope, within)` the
    /// activation's rows are checked in (`activation:NAME` for its own
    /// `dedupe:`, `destination:NAME` for its destination's).
    pub dedupe: Vec<(String, std::time::Duration)>,
    /// The destination's `limits.max_per_month`: its activations together.
    pub destination_max_per_month: Option<u64>,
    /// The activations of its destination (itself included), whose sends
    /// count against `destination_max_per_month`.
    pub siblings: Vec<String>,
    /// Rows older than this are recorded `too_old` and never sent.
    pub max_row_age: Option<MaxRowAge>,
    /// Run logs older than this are pruned at the end of each run
    /// (`retention.run_logs`); `None` keeps everything.
    pub run_log_retention: Option<std::time::Duration>,
    /// Reasons, answers and link URLs of run-log rows older than this are
    /// scrubbed at the end of each run (`retention.personal_data`).
    pub personal_data_retention: Option<std::time::Duration>,
    /// When `retl schedule` runs it (`schedule:`, default manual).
    pub schedule: crate::schedule::Schedule,
    /// What no message of its runs may show (see [`retl_config::Secrets`]):
    /// its source's secrets and the secret `${VAR}`s of its file.
    pub secrets: retl_config::Secrets,
}

impl Activation {
    /// A digest of what this activation reads and where it sends: the
    /// connection (password masked, so rotating it changes nothing), the
    /// table or query, the key, the destination and the target kind. Two
    /// activations with one identity would invite the same customers; a new
    /// name with an old identity is a renamed activation.
    pub fn source_identity(&self) -> String {
        let model = match &self.source.model {
            retl_source::Model::Table(table) => format!("table {table}"),
            retl_source::Model::Query(query) => format!("query {}", query.trim()),
        };
        let kind = self.delivery.creates();
        let text = format!(
            "retl source identity 1\n{}\n{model}\n{}\n{}\n{kind}",
            retl_source::redact_url(&self.source.connection),
            self.primary_key.join("\u{1f}"),
            self.destination,
        );
        retl_diff::fingerprint(&text)
            .iter()
            .fold(String::with_capacity(32), |mut hex, b| {
                use std::fmt::Write as _;
                let _ = write!(hex, "{b:02x}");
                hex
            })
    }
}

impl fmt::Debug for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Activation")
            .field("name", &self.name)
            .field("column_sites", &self.column_sites)
            .field("dbt", &self.dbt)
            .field("owner", &self.owner)
            .field("file", &self.file)
            .field("source", &self.source)
            .field("primary_key", &self.primary_key)
            .field("destination", &self.destination)
            .field("delivery", &self.delivery)
            .field("writeback", &self.writeback)
            .field("first_run", &self.first_run)
            .field("first_run_explicit", &self.first_run_explicit)
            .field("limits", &self.limits)
            .field("destination_max_per_month", &self.destination_max_per_month)
            .field("siblings", &self.siblings)
            .field("dedupe", &self.dedupe)
            .field("max_row_age", &self.max_row_age)
            .field("run_log_retention", &self.run_log_retention)
            .field("personal_data_retention", &self.personal_data_retention)
            .field("schedule", &self.schedule)
            .field("secrets", &self.secrets)
            .finish()
    }
}

impl Activation {
    /// What the source needs to read this activation's rows.
    pub fn source_spec(&self) -> retl_source::SourceSpec {
        let mut spec = self.source.spec(self.columns());
        spec.named_at.clone_from(&self.column_sites);
        spec
    }

    /// The columns the run reads: primary key first, then mapped columns (and
    /// the writeback key and `max_row_age` columns), each once.
    pub fn columns(&self) -> Vec<String> {
        let mut columns = self.primary_key.clone();
        let writeback_key = self.writeback.as_ref().map(|w| w.key_column.as_str());
        let dated_by = self.max_row_age.as_ref().map(|m| m.column.as_str());
        let cursor = self.source.incremental.as_ref().map(|i| i.cursor.as_str());
        for column in self
            .delivery
            .mapped_columns()
            .into_iter()
            .chain(writeback_key)
            .chain(dated_by)
            .chain(cursor)
        {
            if !columns.iter().any(|c| c == column) {
                columns.push(column.to_owned());
            }
        }
        columns
    }
}

/// The configuration directory, loaded.
#[derive(Debug, Clone, Default)]
pub struct Project {
    /// Valid destinations by name.
    pub destinations: BTreeMap<String, Destination>,
    /// Valid activations by name.
    pub activations: BTreeMap<String, Activation>,
    /// `alerts.yaml`, if there is one (and it has no problem).
    pub alerts: Option<alerts::Alerts>,
    /// Problems of the files left out.
    pub problems: Vec<Problem>,
    /// Every secret the files hold (their secret `${VAR}`s, the sources'
    /// passwords): masked in whatever retl prints.
    pub secrets: retl_config::Secrets,
}

fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    files.sort();
    Ok(files)
}

/// Inserts `item` under `name`, or returns the problem of a second definition.
fn insert_unique<T>(
    map: &mut BTreeMap<String, T>,
    name: String,
    item: T,
    file: impl Fn(&T) -> &Path,
    what: &str,
) -> Option<Problem> {
    if let Some(other) = map.get(&name) {
        return Some(Problem::in_file(
            file(&item),
            "name",
            format!(
                "{what} `{name}` is also defined in {}",
                file(other).display()
            ),
        ));
    }
    map.insert(name, item);
    None
}

fn stem(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Project {
    /// Loads `dir/destinations/*.yaml` and `dir/activations/*.yaml`, with
    /// `${VAR}`s from the process environment, destinations of the kinds of
    /// `registry`.
    pub fn load(dir: &Path, registry: &Registry) -> Result<Project, ConfigErrors> {
        Self::load_in(dir, &Environment::process(), registry)
    }

    /// As [`load`](Self::load), with `${VAR}`s from `environment` (an env file, a target).
    pub fn load_in(
        dir: &Path,
        environment: &Environment,
        registry: &Registry,
    ) -> Result<Project, ConfigErrors> {
        Self::load_with_env(dir, &|name| environment.get(name), registry)
    }

    /// As [`load`](Self::load), with `${VAR}`s from `env`.
    ///
    /// `Err` only when the directory itself is unusable; file problems are in
    /// [`Project::problems`].
    pub fn load_with_env(
        dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        registry: &Registry,
    ) -> Result<Project, ConfigErrors> {
        let dir_problem = |message: String| ConfigErrors(vec![Problem::general(message)]);
        if !dir.is_dir() {
            return Err(dir_problem(format!(
                "configuration directory `{}` does not exist (set it with --config-dir)",
                dir.display()
            )));
        }
        let mut project = Project::default();
        // Destinations whose file has problems: an activation using one is left
        // out without a second problem (the destination's are reported once).
        let mut broken = std::collections::BTreeSet::new();
        let read = |sub: &str| {
            yaml_files(&dir.join(sub))
                .map_err(|e| dir_problem(format!("cannot read `{}`: {e}", dir.join(sub).display())))
        };
        for file in read("destinations")? {
            let parsed = project.parse_file(&file, env, |r, doc| {
                read_destination(r, doc, &file, registry)
            });
            if parsed.is_none() {
                broken.insert(stem(&file));
            }
            if let Some(destination) = parsed {
                let (name, existing) = (destination.name().to_owned(), &mut project.destinations);
                let clash = insert_unique(
                    existing,
                    name,
                    destination,
                    Destination::file,
                    "destination",
                );
                project.problems.extend(clash);
            }
        }
        for file in read("activations")? {
            let destinations = project.destinations.clone();
            if let Some(activation) = project.parse_file(&file, env, |r, doc| {
                read_activation(r, doc, &file, &destinations, &broken)
            }) {
                let (name, existing) = (activation.name.clone(), &mut project.activations);
                let clash = insert_unique(existing, name, activation, |a| &a.file, "activation");
                project.problems.extend(clash);
            }
        }
        let alerts_file = dir.join(alerts::ALERTS_FILE);
        if alerts_file.is_file() {
            project.alerts = project.parse_file(&alerts_file, env, |r, doc| {
                alerts::read_alerts(r, doc, &alerts_file)
            });
        }
        for activation in project.activations.values() {
            project.secrets.extend(&activation.secrets);
        }
        let by_destination: Vec<(String, String)> = project
            .activations
            .values()
            .map(|a| (a.destination.clone(), a.name.clone()))
            .collect();
        for activation in project.activations.values_mut() {
            activation.siblings = by_destination
                .iter()
                .filter(|(d, _)| *d == activation.destination)
                .map(|(_, name)| name.clone())
                .collect();
        }
        Ok(project)
    }

    fn parse_file<T>(
        &mut self,
        file: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        read: impl FnOnce(&mut Reader<'_>, &Node<'_>) -> Option<T>,
    ) -> Option<T> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                self.problems.push(Problem::in_file(
                    file,
                    "",
                    format!("cannot read the file: {e}"),
                ));
                return None;
            }
        };
        let doc = match retl_config::parse(file, &text) {
            Ok(doc) => doc,
            Err(problem) => {
                self.problems.push(problem);
                return None;
            }
        };
        let mut reader = Reader::new(file, &text, env);
        let value = read(&mut reader, &doc);
        self.secrets.extend(reader.secrets());
        let (value, mut problems) = reader.finish(value);
        self.problems.append(&mut problems);
        value
    }

    /// The activation `name` and its destination, or every problem that stands in the way.
    pub fn activation(&self, name: &str) -> Result<(&Activation, &Destination), ConfigErrors> {
        if let Some(activation) = self.activations.get(name) {
            let destination = &self.destinations[&activation.destination];
            return Ok((activation, destination));
        }
        let mut problems = self.problems.clone();
        if problems.is_empty() {
            let known: Vec<&str> = self.activations.keys().map(String::as_str).collect();
            problems.push(Problem::general(format!(
                "no activation named `{name}`; defined: {}",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        }
        Err(ConfigErrors(problems))
    }
}

fn read_name(r: &mut Reader<'_>, map: &Map<'_, '_>, file: &Path) -> String {
    let name = match map.get("name") {
        Some(node) => r.string(node, "name").unwrap_or_default(),
        None => stem(file),
    };
    if !valid_name(&name) {
        let node = map.get("name").unwrap_or(map.node);
        r.problem(
            node,
            "name",
            format!("`{name}` is not a valid name: use letters, digits, -, _ and ."),
        );
    }
    name
}

/// Reads a destination file's `name` and `type`, and hands the file to the
/// reader of that type.
fn read_destination(
    r: &mut Reader<'_>,
    doc: &Node<'_>,
    file: &Path,
    registry: &Registry,
) -> Option<Destination> {
    // Each type's reader checks the keys; here only the two that choose it.
    let map = r.map(doc, "", &[])?;
    let name = read_name(r, &map, file);
    let kind = r
        .required(&map, "", "type", "trustpilot")
        .and_then(|node| r.choice(node, "type", &registry.types()))?;
    registry.read(&kind, r, doc, name, file)
}

/// A driver's relative path is the project's, as a relative state path is:
/// the directory holding the configuration directory (`file`'s grandparent's
/// parent).
fn resolve_driver(source: Option<&mut SourceConfig>, file: &Path) {
    if let Some(adbc) = source.and_then(|s| s.adbc.as_mut()) {
        adbc.resolve_driver(project_of(file));
    }
}

/// The project an activation file belongs to: the directory holding the
/// configuration directory (`file`'s grandparent's parent).
fn project_of(file: &Path) -> &Path {
    file.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .unwrap_or_else(|| Path::new("."))
}

/// `source.dbt`: the model found in dbt's manifest (paths taken from the
/// project) becomes the source's model, and dbt's key its default primary
/// key; a model that cannot be found is a problem at `source.dbt.model`.
fn resolve_dbt(
    r: &mut Reader<'_>,
    doc: &Node<'_>,
    source: Option<&mut SourceConfig>,
    file: &Path,
) -> Option<retl_source::DbtModel> {
    let source = source?;
    let dbt = source.dbt.as_mut()?;
    dbt.resolve_paths(project_of(file));
    match dbt.find() {
        Ok(model) => {
            source.model = retl_source::Model::Query(model.query());
            if source.primary_key.is_none() {
                source.primary_key.clone_from(&model.key);
            }
            Some(model)
        }
        Err(message) => {
            let node = retl_config::child(doc, &["source", "dbt", "model"]).unwrap_or(doc);
            r.problem(node, "source.dbt.model", message);
            None
        }
    }
}

/// The destination an activation names, among those read; a problem at
/// `node` when it is not defined. One whose file is broken is left out
/// without a problem of its own (its file's are reported there).
fn find_destination<'d>(
    r: &mut Reader<'_>,
    wanted: Option<&String>,
    node: Option<&Node<'_>>,
    destinations: &'d BTreeMap<String, Destination>,
    broken: &std::collections::BTreeSet<String>,
) -> Option<&'d Destination> {
    let (wanted, node) = wanted.zip(node)?;
    let found = destinations.get(wanted);
    if found.is_none() && broken.contains(wanted) {
        r.left_out_for_another_file();
    } else if found.is_none() {
        let known: Vec<&str> = destinations.keys().map(String::as_str).collect();
        r.problem(
            node,
            "destination",
            format!(
                "destination `{wanted}` is not defined (or its file has problems); defined: {}",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        );
    }
    found
}

fn read_activation(
    r: &mut Reader<'_>,
    doc: &Node<'_>,
    file: &Path,
    destinations: &BTreeMap<String, Destination>,
    broken: &std::collections::BTreeSet<String>,
) -> Option<Activation> {
    let map = r.block(doc, "", &blocks::ACTIVATION)?;
    let name = read_name(r, &map, file);
    if let Some(node) = map.get("description") {
        r.string(node, "description");
    }
    let mut source = r
        .required(&map, "", "source", "connection, table or query")
        .and_then(|node| retl_source::read_source(r, node));
    resolve_driver(source.as_mut(), file);
    let dbt = resolve_dbt(r, map.node, source.as_mut(), file);
    let owner = map.get("owner").and_then(|node| r.string(node, "owner"));
    let destination_node = r.required(&map, "", "destination", "");
    let destination_name = destination_node.and_then(|node| r.string(node, "destination"));
    let destination = find_destination(
        r,
        destination_name.as_ref(),
        destination_node,
        destinations,
        broken,
    );
    let first_run = map
        .get("first_run")
        .and_then(|node| r.choice(node, "first_run", FirstRun::CHOICES))
        .and_then(|text| text.parse().ok())
        .unwrap_or_default();
    let writeback = map
        .get("writeback")
        .and_then(|node| read_writeback(r, node));
    let limits = map
        .get("limits")
        .map(|node| retl_config::limits::read_limits(r, node))
        .unwrap_or_default();
    let max_row_age = map.get("max_row_age").map(|node| read_max_row_age(r, node));
    let own_dedupe = map
        .get("dedupe")
        .and_then(|node| retl_config::limits::read_dedupe(r, node));
    let name_for_scope = name.clone();
    let schedule = read_schedule(r, &map);
    let retention = map
        .get("retention")
        .and_then(|node| r.block(node, "retention", &blocks::RETENTION));
    let mut kept = |key: &str| {
        retention
            .as_ref()
            .and_then(|m| m.get(key))
            .and_then(|node| r.duration(node, &join("retention", key)))
    };
    let (run_log_retention, personal_data_retention) = (kept("run_logs"), kept("personal_data"));
    let destination = destination?;
    let own_month = limits.max_per_month;
    let mut limits = limits.over(destination.limits());
    limits.max_per_month = own_month;
    // The target and the mapping are the destination's to read.
    let delivery = destination.read_delivery(r, &map, file, writeback.is_some());
    let source = source?;
    let delivery = delivery?;
    let max_row_age = match max_row_age {
        Some(read) => Some(read?),
        None => None,
    };
    let primary_key = match &source.primary_key {
        Some(key) => key.clone(),
        None => delivery.default_key(),
    };
    let mut secrets = source.secrets.clone();
    secrets.extend(r.secrets());
    Some(Activation {
        name,
        column_sites: column_sites(r, map.node),
        dbt,
        owner,
        file: file.to_owned(),
        secrets,
        source,
        primary_key,
        destination: destination_name?,
        delivery,
        writeback,
        first_run,
        first_run_explicit: map.get("first_run").is_some(),
        limits,
        destination_max_per_month: destination.limits().max_per_month,
        dedupe: dedupe_scopes(&name_for_scope, own_dedupe, destination),
        siblings: Vec::new(),
        max_row_age,
        run_log_retention,
        personal_data_retention,
        schedule: schedule?,
    })
}

/// Where an activation document (`doc`) names columns: each mapped field,
/// the primary key, the cursor, `max_row_age.column`, `writeback.key_column`.
fn column_sites(r: &Reader<'_>, doc: &Node<'_>) -> Vec<(String, String)> {
    let mut sites = Vec::new();
    let mut site = |node: &Node<'_>, path: String| {
        if let Some(column) = retl_config::text_of(node).filter(|c| !c.is_empty()) {
            sites.push((column, format!("{} ({path})", r.location(node))));
        }
    };
    if let Some(Ok(entries)) = retl_config::child(doc, &["mapping"]).map(retl_config::entries) {
        for (key, node) in entries {
            site(node, join("mapping", &key));
        }
    }
    match retl_config::child(doc, &["source", "primary_key"]).map(retl_config::items) {
        Some(Ok(items)) => {
            for (i, node) in items.iter().enumerate() {
                site(node, format!("source.primary_key[{i}]"));
            }
        }
        Some(Err(node)) => site(node, "source.primary_key".to_owned()),
        None => {}
    }
    for path in [
        &["source", "incremental", "cursor"][..],
        &["max_row_age", "column"],
        &["writeback", "key_column"],
    ] {
        if let Some(node) = retl_config::child(doc, path) {
            site(node, path.join("."));
        }
    }
    sites
}

/// The dedupe scopes of activation `name`: its own `dedupe:`, and its
/// destination's (across that destination's activations).
fn dedupe_scopes(
    name: &str,
    own: Option<std::time::Duration>,
    destination: &Destination,
) -> Vec<(String, std::time::Duration)> {
    let own = own.map(|within| (format!("activation:{name}"), within));
    let shared = destination
        .dedupe()
        .map(|within| (format!("destination:{}", destination.name()), within));
    own.into_iter().chain(shared).collect()
}

fn read_writeback(r: &mut Reader<'_>, node: &Node<'_>) -> Option<Writeback> {
    let w = r.block(node, "writeback", &blocks::WRITEBACK)?;
    let mut field = |key: &str| {
        r.required(&w, "writeback", key, "")
            .and_then(|n| r.string(n, &join("writeback", key)))
    };
    let (table, key_column, url_column) =
        (field("table"), field("key_column"), field("url_column"));
    Some(Writeback {
        table: table?,
        key_column: key_column?,
        url_column: url_column?,
    })
}

#[cfg(test)]
mod tests;
