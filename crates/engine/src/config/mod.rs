//! The user's configuration: destinations and activations in YAML.
//!
//! Three steps. [`yaml`] parses each file into position-marked nodes; the
//! readers below turn them into typed [`Destination`]s and [`Activation`]s,
//! reporting every unknown key, wrong type, invalid value and missing
//! environment variable with its file, line, column and field path; then
//! [`Project::load`] checks what spans files (an activation's destination
//! exists, the business unit is set somewhere, the mapping has what the
//! invitation type needs). A file with any problem is left out of the project
//! and its problems are kept, so one broken activation does not stop the others.
//!
//! IO checks (connecting to the warehouse, minting a token) are not done here.

pub mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use retl_mapping::{Field, InvitationType, ProductSettings, ServiceSettings, Settings};
use retl_source::Model;
use retl_trustpilot::{Credentials, Endpoints, Grant, RateWindow, Secret};

pub use yaml::{Location, Problem};
use yaml::{Map, Node, Reader, join};

/// A Trustpilot destination (`destinations/*.yaml`).
#[derive(Debug, Clone)]
pub struct Destination {
    /// Its name (`name:` or the file stem).
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    /// The API hosts.
    pub endpoints: Endpoints,
    /// Key, secret and grant (redacted in `Debug`).
    pub credentials: Credentials,
    /// Invitation settings every activation starts from.
    pub defaults: Settings,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Timeout of one API request.
    pub request_timeout: Duration,
    /// Pacing windows for API calls (empty: no pacing).
    pub rate_limits: Vec<RateWindow>,
    /// How failed requests are retried.
    pub retry: RetryPolicy,
}

/// How failed requests are retried (`retry:` of a destination).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Requests per row within one run for transient failures (the first included).
    pub tries_per_run: u32,
    /// Runs that may try a row before it is rejected ("gave up after N attempts").
    pub max_attempts: u32,
    /// 429s a run may wait out before they count as failures of their rows.
    pub rate_limited_retries: u32,
    /// The first backoff; it doubles with each retry of a row, with jitter.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            tries_per_run: 3,
            max_attempts: 5,
            rate_limited_retries: 100,
            backoff: Duration::from_millis(500),
        }
    }
}

/// What an activation creates per new row (`target.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActivationKind {
    /// An email invitation Trustpilot sends (`email_invitation`, the default).
    #[default]
    EmailInvitation,
    /// An invitation link the business sends itself (`invitation_link`).
    InvitationLink,
}

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

/// An activation (`activations/*.yaml`): one source, one destination, one mapping.
#[derive(Clone)]
pub struct Activation {
    /// Its name (`name:` or the file stem).
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    /// The warehouse connection URL (may hold a password; never printed).
    pub connection: String,
    /// The table or query.
    pub model: Model,
    /// The columns that identify a row.
    pub primary_key: Vec<String>,
    /// Rows per source batch.
    pub batch_size: usize,
    /// How long connecting to the source may take.
    pub connect_timeout: Duration,
    /// How long the source may stay silent while retl waits for rows.
    pub read_timeout: Duration,
    /// The destination's name.
    pub destination: String,
    /// Settings laid over the destination's defaults.
    pub target: Settings,
    /// Trustpilot field ← source column, in catalogue order.
    pub mapping: Vec<(Field, String)>,
    /// Email invitations or invitation links.
    pub kind: ActivationKind,
    /// Where to write created links' URLs.
    pub writeback: Option<Writeback>,
    /// Whether the first run sends the rows already there or only records them.
    pub first_run: FirstRun,
}

/// What the first run of an activation does with the rows already there (`first_run:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FirstRun {
    /// Send them all (`send_all`, the default).
    #[default]
    SendAll,
    /// Record them as a baseline and send only rows that appear later (`skip_existing`).
    SkipExisting,
}

impl fmt::Debug for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Activation")
            .field("name", &self.name)
            .field("file", &self.file)
            .field("connection", &retl_source::redact_url(&self.connection))
            .field("model", &self.model)
            .field("primary_key", &self.primary_key)
            .field("destination", &self.destination)
            .field("target", &self.target)
            .field("mapping", &self.mapping)
            .field("kind", &self.kind)
            .field("writeback", &self.writeback)
            .field("first_run", &self.first_run)
            .finish_non_exhaustive()
    }
}

impl Activation {
    /// What the source needs to read this activation's rows.
    pub fn source_spec(&self) -> retl_source::SourceSpec {
        let mut spec = retl_source::SourceSpec::new(
            self.connection.clone(),
            self.model.clone(),
            self.columns(),
        );
        spec.batch_size = self.batch_size;
        spec.connect_timeout = self.connect_timeout;
        spec.read_timeout = self.read_timeout;
        spec
    }

    /// The columns the run reads: primary key first, then mapped columns, each once.
    pub fn columns(&self) -> Vec<String> {
        let mut columns = self.primary_key.clone();
        let writeback_key = self.writeback.as_ref().map(|w| &w.key_column);
        for column in self.mapping.iter().map(|(_, c)| c).chain(writeback_key) {
            if !columns.contains(column) {
                columns.push(column.clone());
            }
        }
        columns
    }
}

/// Every configuration problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<Problem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "{n} configuration problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for problem in &self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The configuration directory, loaded.
#[derive(Debug, Clone, Default)]
pub struct Project {
    /// Valid destinations by name.
    pub destinations: BTreeMap<String, Destination>,
    /// Valid activations by name.
    pub activations: BTreeMap<String, Activation>,
    /// Problems of the files left out.
    pub problems: Vec<Problem>,
}

const DESTINATION_KEYS: &[&str] = &[
    "name",
    "type",
    "auth",
    "endpoints",
    "defaults",
    "concurrency",
    "request_timeout_seconds",
    "rate_limits",
    "retry",
    "allow_insecure_http",
];
const RETRY_KEYS: &[&str] = &[
    "tries_per_run",
    "max_attempts",
    "rate_limited_retries",
    "backoff_ms",
];
const RATE_KEYS: &[&str] = &["requests", "per_seconds"];
const WRITEBACK_KEYS: &[&str] = &["table", "key_column", "url_column"];
const AUTH_KEYS: &[&str] = &[
    "grant",
    "api_key",
    "api_secret",
    "business_user_id",
    "username",
    "password",
];
const ACTIVATION_KEYS: &[&str] = &[
    "name",
    "description",
    "source",
    "destination",
    "target",
    "mapping",
    "writeback",
    "first_run",
];
const SOURCE_KEYS: &[&str] = &[
    "connection",
    "table",
    "query",
    "primary_key",
    "batch_size",
    "connect_timeout_seconds",
    "read_timeout_seconds",
];
const SETTINGS_KEYS: &[&str] = &[
    "business_unit_id",
    "invitation_type",
    "service",
    "product",
    "sender_name",
    "sender_email",
    "reply_to",
    "locale",
    "send_delay",
];
const TARGET_KEYS: &[&str] = &[
    "business_unit_id",
    "invitation_type",
    "service",
    "product",
    "sender_name",
    "sender_email",
    "reply_to",
    "locale",
    "send_delay",
    "kind",
];
const SERVICE_KEYS: &[&str] = &["template_id", "redirect_uri", "tags"];
const PRODUCT_KEYS: &[&str] = &["template_id", "redirect_uri", "skus"];
const TARGET_PRODUCT_KEYS: &[&str] = &["template_id", "redirect_uri", "skus", "per_row"];

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
    file: impl Fn(&T) -> &PathBuf,
    what: &str,
) -> Option<Problem> {
    if let Some(other) = map.get(&name) {
        return Some(Problem {
            location: Some(Location {
                file: file(&item).clone(),
                line: 1,
                column: 1,
            }),
            path: "name".into(),
            message: format!(
                "{what} `{name}` is also defined in {}",
                file(other).display()
            ),
        });
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
    /// Loads `dir/destinations/*.yaml` and `dir/activations/*.yaml`, with `${VAR}`s from the process environment.
    pub fn load(dir: &Path) -> Result<Project, ConfigErrors> {
        Self::load_with_env(dir, &|name| std::env::var(name).ok())
    }

    /// As [`load`](Self::load), with `${VAR}`s from `env`.
    ///
    /// `Err` only when the directory itself is unusable; file problems are in
    /// [`Project::problems`].
    pub fn load_with_env(
        dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Project, ConfigErrors> {
        let dir_problem = |message: String| {
            ConfigErrors(vec![Problem {
                location: None,
                path: String::new(),
                message,
            }])
        };
        if !dir.is_dir() {
            return Err(dir_problem(format!(
                "configuration directory `{}` does not exist (set it with --config-dir)",
                dir.display()
            )));
        }
        let mut project = Project::default();
        let read = |sub: &str| {
            yaml_files(&dir.join(sub))
                .map_err(|e| dir_problem(format!("cannot read `{}`: {e}", dir.join(sub).display())))
        };
        for file in read("destinations")? {
            if let Some(destination) = project.parse_file(&file, env, read_destination) {
                let (name, existing) = (destination.name.clone(), &mut project.destinations);
                let clash = insert_unique(existing, name, destination, |d| &d.file, "destination");
                project.problems.extend(clash);
            }
        }
        for file in read("activations")? {
            if let Some(activation) = project.parse_file(&file, env, read_activation) {
                let (name, existing) = (activation.name.clone(), &mut project.activations);
                let clash = insert_unique(existing, name, activation, |a| &a.file, "activation");
                project.problems.extend(clash);
            }
        }
        let mut broken = Vec::new();
        for activation in project.activations.values() {
            let problems = project.cross_check(activation);
            if !problems.is_empty() {
                broken.push(activation.name.clone());
                project.problems.extend(problems);
            }
        }
        for name in broken {
            project.activations.remove(&name);
        }
        Ok(project)
    }

    fn parse_file<T>(
        &mut self,
        file: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        read: fn(&mut Reader<'_>, &Node<'_>, &Path) -> Option<T>,
    ) -> Option<T> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                self.problems.push(Problem {
                    location: Some(Location {
                        file: file.to_owned(),
                        line: 1,
                        column: 1,
                    }),
                    path: String::new(),
                    message: format!("cannot read the file: {e}"),
                });
                return None;
            }
        };
        let doc = match yaml::parse(file, &text) {
            Ok(doc) => doc,
            Err(problem) => {
                self.problems.push(problem);
                return None;
            }
        };
        let mut reader = Reader::new(file, env);
        let value = read(&mut reader, &doc, file);
        if reader.problems.is_empty() {
            value
        } else {
            reader
                .problems
                .sort_by_key(|p| p.location.as_ref().map(|l| (l.line, l.column)));
            self.problems.append(&mut reader.problems);
            None
        }
    }

    /// Checks of an activation against its destination.
    fn cross_check(&self, activation: &Activation) -> Vec<Problem> {
        let at = |path: &str, message: String| Problem {
            location: Some(Location {
                file: activation.file.clone(),
                line: 1,
                column: 1,
            }),
            path: path.to_owned(),
            message,
        };
        let Some(destination) = self.destinations.get(&activation.destination) else {
            let known: Vec<&str> = self.destinations.keys().map(String::as_str).collect();
            return vec![at(
                "destination",
                format!(
                    "destination `{}` is not defined (or its file has problems); defined: {}",
                    activation.destination,
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            )];
        };
        let mut problems = Vec::new();
        let settings = destination.defaults.overlay(&activation.target);
        if settings.business_unit_id.is_none() {
            problems.push(at(
                "target.business_unit_id",
                format!(
                    "no business unit: set it here or in destination `{}` defaults",
                    destination.name
                ),
            ));
        }
        let kind = settings.invitation_type.unwrap_or_default();
        let maps = |field: Field| activation.mapping.iter().any(|(f, _)| *f == field);
        if kind.has_product() {
            if settings.product.per_row == Some(true) && !maps(Field::ProductSku) {
                problems.push(at(
                    "mapping.product_sku",
                    "target.product.per_row needs mapping.product_sku".to_owned(),
                ));
            }
            if settings.product.skus.is_none() && !maps(Field::ProductSku) {
                problems.push(at(
                    "target.product",
                    format!("invitation_type `{kind}` needs product SKUs: set target.product.skus or map product_sku"),
                ));
            }
        }
        problems
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
            problems.push(Problem {
                location: None,
                path: String::new(),
                message: format!(
                    "no activation named `{name}`; defined: {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            });
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

fn read_destination(r: &mut Reader<'_>, doc: &Node<'_>, file: &Path) -> Option<Destination> {
    let map = r.map(doc, "", DESTINATION_KEYS)?;
    let name = read_name(r, &map, file);
    match map.get("type") {
        Some(node) => {
            r.choice(node, "type", &["trustpilot"]);
        }
        None => r.problem(map.node, "type", "missing field `type` (trustpilot)"),
    }
    let credentials = match map.get("auth") {
        Some(node) => read_auth(r, node),
        None => {
            r.problem(
                map.node,
                "auth",
                "missing field `auth` (api_key, api_secret, ...)",
            );
            None
        }
    };
    let mut endpoints = Endpoints::default();
    if let Some(node) = map.get("endpoints")
        && let Some(e) = r.map(node, "endpoints", &["auth", "invitations"])
    {
        for (key, slot) in [
            ("auth", &mut endpoints.auth),
            ("invitations", &mut endpoints.invitations),
        ] {
            if let Some(node) = e.get(key)
                && let Some(url) = r.string(node, &join("endpoints", key))
            {
                if url.starts_with("https://") || url.starts_with("http://") {
                    *slot = url.trim_end_matches('/').to_owned();
                } else {
                    r.problem(
                        node,
                        &join("endpoints", key),
                        format!("`{url}` is not an http(s) URL"),
                    );
                }
            }
        }
    }
    let defaults = match map.get("defaults") {
        Some(node) => read_settings(r, node, "defaults", None).unwrap_or_default(),
        None => Settings::default(),
    };
    let concurrency = map
        .get("concurrency")
        .and_then(|n| r.number(n, "concurrency", 1, 64))
        .unwrap_or(4);
    let timeout = map
        .get("request_timeout_seconds")
        .and_then(|n| r.number(n, "request_timeout_seconds", 1, 600))
        .unwrap_or(30);
    let rate_limits = match map.get("rate_limits") {
        Some(node) => read_rate_limits(r, node),
        None => RateWindow::trustpilot_defaults(),
    };
    let retry = map
        .get("retry")
        .map(|n| read_retry(r, n))
        .unwrap_or_default();
    let insecure = map
        .get("allow_insecure_http")
        .and_then(|n| r.bool(n, "allow_insecure_http"))
        .unwrap_or(false);
    if !insecure {
        for key in ["auth", "invitations"] {
            let url = if key == "auth" {
                &endpoints.auth
            } else {
                &endpoints.invitations
            };
            if !is_safe_endpoint(url) {
                let node = map.get("endpoints").unwrap_or(map.node);
                r.problem(
                    node,
                    &join("endpoints", key),
                    format!("`{url}` is plain http to a host that is not this machine: use https, or set allow_insecure_http: true"),
                );
            }
        }
    }
    Some(Destination {
        name,
        file: file.to_owned(),
        endpoints,
        credentials: credentials?,
        defaults,
        concurrency: usize::try_from(concurrency).unwrap_or(4),
        request_timeout: Duration::from_secs(timeout),
        rate_limits,
        retry,
    })
}

/// https anywhere, or http to a loopback address (the emulator).
fn is_safe_endpoint(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return true;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn read_rate_limits(r: &mut Reader<'_>, node: &Node<'_>) -> Vec<RateWindow> {
    let Some(items) = r.list(node, "rate_limits") else {
        return RateWindow::trustpilot_defaults();
    };
    let mut windows = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("rate_limits[{i}]");
        let Some(map) = r.map(item, &path, RATE_KEYS) else {
            continue;
        };
        let mut field = |key: &str, max: u64| match map.get(key) {
            Some(n) => r.number(n, &join(&path, key), 1, max),
            None => {
                r.problem(
                    map.node,
                    &join(&path, key),
                    format!("missing field `{key}`"),
                );
                None
            }
        };
        let requests = field("requests", 1_000_000);
        let seconds = field("per_seconds", 86_400);
        if let (Some(requests), Some(seconds)) = (requests, seconds) {
            windows.push(RateWindow {
                limit: u32::try_from(requests).unwrap_or(u32::MAX),
                window: Duration::from_secs(seconds),
            });
        }
    }
    windows
}

fn read_retry(r: &mut Reader<'_>, node: &Node<'_>) -> RetryPolicy {
    let mut policy = RetryPolicy::default();
    let Some(map) = r.map(node, "retry", RETRY_KEYS) else {
        return policy;
    };
    let mut number = |key: &str, min: u64, max: u64| {
        map.get(key)
            .and_then(|n| r.number(n, &join("retry", key), min, max))
    };
    if let Some(n) = number("tries_per_run", 1, 20) {
        policy.tries_per_run = u32::try_from(n).unwrap_or(3);
    }
    if let Some(n) = number("max_attempts", 1, 1000) {
        policy.max_attempts = u32::try_from(n).unwrap_or(5);
    }
    if let Some(n) = number("rate_limited_retries", 0, 100_000) {
        policy.rate_limited_retries = u32::try_from(n).unwrap_or(100);
    }
    if let Some(n) = number("backoff_ms", 1, 600_000) {
        policy.backoff = Duration::from_millis(n);
    }
    policy
}

/// Parses `30s`, `15m`, `2h`, `3d` or `1w`.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(seconds)?))
}

fn read_auth(r: &mut Reader<'_>, node: &Node<'_>) -> Option<Credentials> {
    let map = r.map(node, "auth", AUTH_KEYS)?;
    let grant = match map.get("grant") {
        Some(node) => r.choice(node, "auth.grant", &["client_credentials", "password"])?,
        None => "client_credentials".to_owned(),
    };
    let mut required = |key: &str| -> Option<String> {
        match map.get(key) {
            Some(node) => {
                let value = r.string(node, &join("auth", key));
                if value.as_deref() == Some("") {
                    r.problem(node, &join("auth", key), "must not be empty");
                    return None;
                }
                if value.is_none() && Reader::is_unset(Some(node)) {
                    r.problem(node, &join("auth", key), "must not be empty");
                }
                value
            }
            None => {
                r.problem(
                    map.node,
                    &join("auth", key),
                    format!("missing field `{key}`"),
                );
                None
            }
        }
    };
    let api_key = required("api_key");
    let api_secret = required("api_secret");
    let grant = if grant == "password" {
        let username = required("username");
        let password = required("password");
        Grant::Password {
            username: username?,
            password: Secret::new(password?),
        }
    } else {
        let user = map
            .get("business_user_id")
            .and_then(|n| r.string(n, "auth.business_user_id"));
        if user.is_none() {
            r.problem(
                map.node,
                "auth.business_user_id",
                "the client_credentials grant needs business_user_id (an Admin or Manager of the business)",
            );
        }
        Grant::ClientCredentials {
            business_user_id: user,
        }
    };
    Some(Credentials {
        api_key: Secret::new(api_key?),
        api_secret: Secret::new(api_secret?),
        grant,
    })
}

fn read_settings(
    r: &mut Reader<'_>,
    node: &Node<'_>,
    path: &str,
    kind: Option<&mut ActivationKind>,
) -> Option<Settings> {
    let is_target = kind.is_some();
    let map = r.map(
        node,
        path,
        if is_target {
            TARGET_KEYS
        } else {
            SETTINGS_KEYS
        },
    )?;
    let mut settings = Settings::default();
    if let Some(kind) = kind
        && let Some(node) = map.get("kind")
    {
        match r
            .choice(
                node,
                &join(path, "kind"),
                &["email_invitation", "invitation_link"],
            )
            .as_deref()
        {
            Some("invitation_link") => *kind = ActivationKind::InvitationLink,
            Some(_) => *kind = ActivationKind::EmailInvitation,
            None => {}
        }
    }
    if let Some(node) = map.get("send_delay")
        && let Some(text) = r.string(node, &join(path, "send_delay"))
    {
        settings.send_delay = parse_duration(&text);
        if settings.send_delay.is_none() {
            r.problem(
                node,
                &join(path, "send_delay"),
                format!("`{text}` is not a duration: write e.g. 30m, 12h, 3d or 1w"),
            );
        }
    }
    let text =
        |r: &mut Reader<'_>, key: &str| map.get(key).and_then(|n| r.string(n, &join(path, key)));
    settings.business_unit_id = text(r, "business_unit_id");
    settings.sender_name = text(r, "sender_name");
    settings.sender_email = text(r, "sender_email");
    settings.reply_to = text(r, "reply_to");
    settings.locale = text(r, "locale");
    if let Some(node) = map.get("locale")
        && let Some(locale) = &settings.locale
        && !retl_trustpilot::is_valid_locale(locale)
    {
        r.problem(
            node,
            &join(path, "locale"),
            format!("`{locale}` is not of the form xx-YY (e.g. en-US)"),
        );
    }
    for key in ["sender_email", "reply_to"] {
        if let Some(node) = map.get(key)
            && let Some(email) = r.string(node, &join(path, key))
            && !retl_trustpilot::is_valid_email(&email)
        {
            r.problem(node, &join(path, key), "not a valid email address");
        }
    }
    if let Some(node) = map.get("business_unit_id")
        && let Some(bu) = &settings.business_unit_id
        && !bu
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        r.problem(
            node,
            &join(path, "business_unit_id"),
            "may hold only letters, digits, - and _",
        );
    }
    if let Some(node) = map.get("invitation_type") {
        settings.invitation_type = r
            .choice(
                node,
                &join(path, "invitation_type"),
                &InvitationType::CHOICES,
            )
            .and_then(|v| InvitationType::parse(&v));
    }
    if let Some(node) = map.get("service") {
        let sub = join(path, "service");
        if let Some(s) = r.map(node, &sub, SERVICE_KEYS) {
            settings.service = ServiceSettings {
                template_id: s
                    .get("template_id")
                    .and_then(|n| r.string(n, &join(&sub, "template_id"))),
                redirect_uri: s
                    .get("redirect_uri")
                    .and_then(|n| r.string(n, &join(&sub, "redirect_uri"))),
                tags: s
                    .get("tags")
                    .and_then(|n| r.strings(n, &join(&sub, "tags"))),
            };
        }
    }
    if let Some(node) = map.get("product") {
        let sub = join(path, "product");
        let keys = if is_target {
            TARGET_PRODUCT_KEYS
        } else {
            PRODUCT_KEYS
        };
        if let Some(p) = r.map(node, &sub, keys) {
            settings.product = ProductSettings {
                template_id: p
                    .get("template_id")
                    .and_then(|n| r.string(n, &join(&sub, "template_id"))),
                redirect_uri: p
                    .get("redirect_uri")
                    .and_then(|n| r.string(n, &join(&sub, "redirect_uri"))),
                skus: p
                    .get("skus")
                    .and_then(|n| r.strings(n, &join(&sub, "skus"))),
                per_row: p
                    .get("per_row")
                    .and_then(|n| r.bool(n, &join(&sub, "per_row"))),
            };
        }
    }
    Some(settings)
}

fn read_activation(r: &mut Reader<'_>, doc: &Node<'_>, file: &Path) -> Option<Activation> {
    let map = r.map(doc, "", ACTIVATION_KEYS)?;
    let name = read_name(r, &map, file);
    if let Some(node) = map.get("description") {
        r.string(node, "description");
    }
    let destination = match map.get("destination") {
        Some(node) => r.string(node, "destination"),
        None => {
            r.problem(map.node, "destination", "missing field `destination`");
            None
        }
    };
    let mut kind = ActivationKind::default();
    let target = match map.get("target") {
        Some(node) => read_settings(r, node, "target", Some(&mut kind)),
        None => Some(Settings::default()),
    };
    let writeback = map.get("writeback").and_then(|node| {
        let w = r.map(node, "writeback", WRITEBACK_KEYS)?;
        let mut field = |key: &str| match w.get(key) {
            Some(n) => r.string(n, &join("writeback", key)),
            None => {
                r.problem(
                    w.node,
                    &join("writeback", key),
                    format!("missing field `{key}`"),
                );
                None
            }
        };
        let (table, key_column, url_column) =
            (field("table"), field("key_column"), field("url_column"));
        Some(Writeback {
            table: table?,
            key_column: key_column?,
            url_column: url_column?,
        })
    });
    let first_run = match map.get("first_run") {
        Some(node) => match r
            .choice(node, "first_run", &["send_all", "skip_existing"])
            .as_deref()
        {
            Some("skip_existing") => FirstRun::SkipExisting,
            _ => FirstRun::SendAll,
        },
        None => FirstRun::SendAll,
    };
    if writeback.is_some() && kind != ActivationKind::InvitationLink {
        r.problem(
            map.get("writeback").unwrap_or(map.node),
            "writeback",
            "writeback needs target.kind: invitation_link",
        );
    }
    let mapping = match map.get("mapping") {
        Some(node) => read_mapping(r, node),
        None => {
            r.problem(
                map.node,
                "mapping",
                "missing field `mapping` (consumer_name, consumer_email, reference_number, ...)",
            );
            None
        }
    };
    let source = match map.get("source") {
        Some(node) => read_source(r, node),
        None => {
            r.problem(
                map.node,
                "source",
                "missing field `source` (connection, table or query)",
            );
            None
        }
    };
    let mapping = mapping?;
    let source = source?;
    let primary_key = match source.primary_key {
        Some(key) => key,
        None => mapping
            .iter()
            .filter(|(f, _)| *f == Field::ReferenceNumber)
            .map(|(_, c)| c.clone())
            .collect(),
    };
    Some(Activation {
        name,
        file: file.to_owned(),
        connection: source.connection,
        model: source.model,
        primary_key,
        batch_size: source.batch_size,
        connect_timeout: source.connect_timeout,
        read_timeout: source.read_timeout,
        destination: destination?,
        target: target?,
        mapping,
        kind,
        writeback,
        first_run,
    })
}

struct SourceParts {
    connection: String,
    model: Model,
    primary_key: Option<Vec<String>>,
    batch_size: usize,
    connect_timeout: Duration,
    read_timeout: Duration,
}

fn read_source(r: &mut Reader<'_>, node: &Node<'_>) -> Option<SourceParts> {
    let map = r.map(node, "source", SOURCE_KEYS)?;
    let connection = match map.get("connection") {
        Some(node) => r.string(node, "source.connection"),
        None => {
            r.problem(
                map.node,
                "source.connection",
                "missing field `connection` (e.g. sqlite://warehouse.db)",
            );
            None
        }
    };
    if let Some(url) = &connection
        && let Err(e) = retl_source::Driver::for_url(url)
    {
        r.problem(
            map.get("connection").unwrap_or(map.node),
            "source.connection",
            e.to_string(),
        );
    }
    let model = match (map.get("table"), map.get("query")) {
        (Some(table), None) => r.string(table, "source.table").map(Model::Table),
        (None, Some(query)) => r.string(query, "source.query").map(Model::Query),
        (Some(_), Some(query)) => {
            r.problem(
                query,
                "source.query",
                "give either `table` or `query`, not both",
            );
            None
        }
        (None, None) => {
            r.problem(map.node, "source", "missing field `table` or `query`");
            None
        }
    };
    let primary_key = match map.get("primary_key") {
        Some(node) => {
            let key = r.strings(node, "source.primary_key");
            if key.as_ref().is_some_and(Vec::is_empty) {
                r.problem(node, "source.primary_key", "must name at least one column");
            }
            key
        }
        None => None,
    };
    let batch_size = map
        .get("batch_size")
        .and_then(|n| r.number(n, "source.batch_size", 1, 1_000_000))
        .unwrap_or(10_000);
    let seconds = |r: &mut Reader<'_>, key: &str, default: u64| {
        map.get(key)
            .and_then(|n| r.number(n, &join("source", key), 1, 86_400))
            .map_or(Duration::from_secs(default), Duration::from_secs)
    };
    let connect_timeout = seconds(r, "connect_timeout_seconds", 30);
    let read_timeout = seconds(r, "read_timeout_seconds", 300);
    Some(SourceParts {
        connection: connection?,
        model: model?,
        primary_key,
        batch_size: usize::try_from(batch_size).ok()?,
        connect_timeout,
        read_timeout,
    })
}

fn read_mapping(r: &mut Reader<'_>, node: &Node<'_>) -> Option<Vec<(Field, String)>> {
    let names = Field::names();
    let map = r.map(node, "mapping", &names)?;
    let mut mapping = Vec::new();
    for (key, value) in map.entries() {
        let field = Field::from_name(key).expect("keys were checked against the catalogue");
        if let Some(column) = r.string(value, &join("mapping", key)) {
            if column.is_empty() {
                r.problem(value, &join("mapping", key), "must name a column");
            } else {
                mapping.push((field, column));
            }
        } else if Reader::is_unset(Some(value)) {
            r.problem(value, &join("mapping", key), "must name a column");
        }
    }
    for field in Field::REQUIRED {
        if !mapping.iter().any(|(f, _)| *f == field) {
            r.problem(
                map.node,
                &join("mapping", field.name()),
                format!("missing field `{field}` (the source column it comes from)"),
            );
        }
    }
    mapping.sort_by_key(|(f, _)| *f);
    Some(mapping)
}

#[cfg(test)]
mod tests;
