//! `configs/alerts.yaml`: where alerts go (channels) and when (rules).
//!
//! ```yaml
//! channels:
//!   ops:    {type: webhook, url: "https://hooks.example/retl"}
//!   team:   {type: slack, url: "${SLACK_WEBHOOK_URL}"}
//!   oncall: {type: email, smtp: "smtp://retl:${SMTP_PASSWORD}@mail.example:587", from: retl@shop.example, to: [oncall@shop.example]}
//! rules:
//!   - {when: run_failed, notify: [ops, team]}
//!   - {when: stale, after: 6h, notify: [oncall]}
//!   - {when: rejected, over: 50, notify: [team]}
//! ```
//!
//! Read like every other file: each problem with its position, a hint for
//! a misspelt key, `${VAR}`s from the environment. URLs are secrets (a
//! Slack webhook URL is its own credential; an SMTP URL holds a password):
//! `Debug` shows their scheme and host only.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use retl_config::schema::{choice, duration, integer, string, strings};
use retl_config::{Node, Reader, join};
use serde_json::{Value, json};

/// The file, in the configuration directory.
pub const ALERTS_FILE: &str = "alerts.yaml";

retl_config::spelled! {
    /// What a rule alerts on (`when:`).
    pub enum When {
        /// A run failed (the source, the state, the destination's refusal).
        RunFailed = "run_failed",
        /// A safety limit refused a run.
        Refused = "refused",
        /// Rows whose delivery is uncertain (found in flight, too).
        Uncertain = "uncertain",
        /// Rows given up after `retry.give_up_after`.
        GivenUp = "given_up",
        /// More rejected rows in a run than `over:`.
        Rejected = "rejected",
        /// No successful run for longer than `after:`.
        Stale = "stale",
        /// Rows have been failing (transiently, not yet given up) for longer
        /// than `after:` (default 30m): the destination is down or refusing.
        Failing = "failing",
    }
}

/// How long rows may fail before `when: failing` alerts, unless `after:` says.
pub const FAILING_AFTER: Duration = Duration::from_mins(30);

/// A channel's kind (`type:`).
const CHANNEL_TYPES: &[&str] = &["webhook", "slack", "email"];

/// Where an alert goes.
#[derive(Clone, PartialEq, Eq)]
pub enum Channel {
    /// `POST` of the alert as JSON.
    Webhook {
        /// The URL.
        url: String,
    },
    /// A Slack incoming webhook: `POST {"text": …}`.
    Slack {
        /// The incoming webhook's URL.
        url: String,
    },
    /// An email over SMTP.
    Email {
        /// `smtp://user:password@host:587` (STARTTLS), `smtps://…:465`
        /// (TLS), or `smtp://127.0.0.1:2525?tls=none` (loopback only).
        smtp: String,
        /// The sender.
        from: String,
        /// The recipients.
        to: Vec<String>,
    },
}

/// A URL as `Debug` may show it: scheme and host.
fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!("{}://{}/***", u.scheme(), u.host_str().unwrap_or("?")),
        Err(_) => "***".to_owned(),
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Channel::Webhook { url } => {
                f.debug_struct("Webhook").field("url", &shown(url)).finish()
            }
            Channel::Slack { url } => f.debug_struct("Slack").field("url", &shown(url)).finish(),
            Channel::Email { smtp, from, to } => f
                .debug_struct("Email")
                .field("smtp", &shown(smtp))
                .field("from", from)
                .field("to", to)
                .finish(),
        }
    }
}

impl Channel {
    /// Its `type:`.
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Webhook { .. } => "webhook",
            Channel::Slack { .. } => "slack",
            Channel::Email { .. } => "email",
        }
    }
}

/// One rule: when, and whom to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What it alerts on.
    pub when: When,
    /// The channels, by name.
    pub notify: Vec<String>,
    /// With `stale`: how long without a successful run; with `failing`: how
    /// long rows may fail before it alerts ([`FAILING_AFTER`] when unset).
    pub after: Option<Duration>,
    /// With `rejected`: more rejected rows in a run than this.
    pub over: Option<u64>,
    /// Alert on every run the rule holds for, not once per incident.
    pub every: bool,
}

/// `alerts.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Alerts {
    /// Channels by name.
    pub channels: BTreeMap<String, Channel>,
    /// Rules, in file order.
    pub rules: Vec<Rule>,
}

retl_config::block! {
    /// `alerts.yaml`.
    static FILE = "configs/alerts.yaml: alert channels and rules", required [] {
        "channels" => json!({"type": "object", "description": "channels by name", "additionalProperties": CHANNEL.schema()}),
        "rules" => json!({"type": "array", "description": "the rules", "items": RULE.schema()}),
    }
}

retl_config::block! {
    /// One channel of `channels:`.
    static CHANNEL = "where alerts go", required ["type"] {
        "type" => choice(
            CHANNEL_TYPES,
            "webhook (POST JSON), slack (an incoming webhook) or email (SMTP)",
        ),
        "url" => string("with webhook or slack: the URL to POST to"),
        "smtp" => string(
            "with email: smtp://user:password@host:587 (STARTTLS), smtps://…:465 (TLS), or smtp://localhost:PORT?tls=none",
        ),
        "from" => string("with email: the sender"),
        "to" => strings("with email: the recipients"),
    }
}

retl_config::block! {
    /// One rule of `rules:`.
    static RULE = "when to alert, and whom", required ["when", "notify"] {
        "when" => choice(When::CHOICES, "what the rule alerts on"),
        "notify" => strings("the channels, by name"),
        "after" => duration("with stale: how long without a successful run, e.g. 6h; with failing: how long rows may fail before it alerts (default 30m); any duration, seconds included"),
        "over" => integer(
            0,
            1_000_000_000,
            "with rejected: more rejected rows in a run than this",
        ),
        "every" => json!({"type": "boolean", "description": "alert on every run the rule holds for, not once per incident (default false)"}),
    }
}

/// Reads `alerts.yaml`.
/// Reads an `alerts.yaml` document; every problem is reported to `r`.
pub fn read_alerts(r: &mut Reader<'_>, doc: &Node<'_>, file: &Path) -> Option<Alerts> {
    let _ = file;
    let map = r.block(doc, "", &FILE)?;
    let mut channels = BTreeMap::new();
    if let Some(node) = map.get("channels")
        && let Some(named) = r.map(node, "channels", &[])
    {
        for (name, node) in named.entries() {
            if let Some(channel) = read_channel(r, node, &join("channels", name)) {
                channels.insert(name.clone(), channel);
            }
        }
    }
    let mut rules = Vec::new();
    if let Some(node) = map.get("rules") {
        match r.list(node, "rules") {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    let path = format!("rules[{i}]");
                    if let Some(rule) = read_rule(r, item, &path, &channels) {
                        rules.push(rule);
                    }
                }
            }
            None => return None,
        }
    }
    Some(Alerts { channels, rules })
}

fn read_channel(r: &mut Reader<'_>, node: &Node<'_>, path: &str) -> Option<Channel> {
    let map = r.block(node, path, &CHANNEL)?;
    let kind = r
        .required(&map, path, "type", "webhook, slack or email")
        .and_then(|n| r.choice(n, &join(path, "type"), CHANNEL_TYPES))?;
    let mut text = |key: &str, example: &str| {
        r.required(&map, path, key, example)
            .and_then(|n| r.string(n, &join(path, key)))
    };
    let url = |r: &mut Reader<'_>, text: Option<String>, key: &str| {
        let value = text?;
        let node = map.get(key).unwrap_or(map.node);
        match url::Url::parse(&value) {
            Ok(u) if matches!(u.scheme(), "https" | "http") => Some(value),
            _ => {
                r.problem(node, &join(path, key), "must be an http(s) URL");
                None
            }
        }
    };
    match kind.as_str() {
        "webhook" => {
            let value = text("url", "https://hooks.example/retl");
            url(r, value, "url").map(|url| Channel::Webhook { url })
        }
        "slack" => {
            let value = text("url", "${SLACK_WEBHOOK_URL}");
            url(r, value, "url").map(|url| Channel::Slack { url })
        }
        _ => {
            let smtp = text("smtp", "smtp://user:${SMTP_PASSWORD}@mail.example:587");
            let from = text("from", "retl@shop.example");
            let to = r
                .required(&map, path, "to", "[oncall@shop.example]")
                .and_then(|n| r.strings(n, &join(path, "to")));
            let smtp = smtp?;
            if let Err(why) = smtp_problem(&smtp) {
                r.problem(
                    map.get("smtp").unwrap_or(map.node),
                    &join(path, "smtp"),
                    why,
                );
                return None;
            }
            let to = to?;
            if to.is_empty() {
                r.problem(
                    map.get("to").unwrap_or(map.node),
                    &join(path, "to"),
                    "needs at least one address",
                );
                return None;
            }
            Some(Channel::Email {
                smtp,
                from: from?,
                to,
            })
        }
    }
}

/// Why an SMTP URL cannot be used, if it cannot: `smtp://` (STARTTLS),
/// `smtps://` (TLS), and plain text only to this machine (`?tls=none`).
pub fn smtp_problem(smtp: &str) -> Result<(), String> {
    let u = url::Url::parse(smtp).map_err(|e| format!("not a URL ({e})"))?;
    let tls = u
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    match (u.scheme(), tls.as_deref()) {
        ("smtp" | "smtps", None) => Ok(()),
        ("smtp", Some("none")) => {
            let host = u.host_str().unwrap_or_default();
            if matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1") {
                Ok(())
            } else {
                Err(format!(
                    "?tls=none sends the password in clear: only to this machine, not `{host}`"
                ))
            }
        }
        (scheme, tls) => Err(format!(
            "`{scheme}://`{} is not one of smtp:// (STARTTLS, port 587), smtps:// (TLS, port 465), smtp://localhost:PORT?tls=none",
            tls.map(|t| format!(" with tls={t}")).unwrap_or_default()
        )),
    }
}

fn read_rule(
    r: &mut Reader<'_>,
    node: &Node<'_>,
    path: &str,
    channels: &BTreeMap<String, Channel>,
) -> Option<Rule> {
    let map = r.block(node, path, &RULE)?;
    let when: Option<When> = r
        .required(&map, path, "when", "run_failed")
        .and_then(|n| r.choice(n, &join(path, "when"), When::CHOICES))
        .and_then(|t| t.parse().ok());
    let notify_node = r.required(&map, path, "notify", "[a channel name]");
    let notify = notify_node.and_then(|n| r.strings(n, &join(path, "notify")));
    if let (Some(names), Some(node)) = (&notify, notify_node) {
        for name in names {
            if !channels.contains_key(name) {
                let known: Vec<&str> = channels.keys().map(String::as_str).collect();
                r.problem(
                    node,
                    &join(path, "notify"),
                    format!(
                        "no channel `{name}` (or its definition has problems); channels: {}",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
        }
    }
    let after = map
        .get("after")
        .and_then(|n| r.duration(n, &join(path, "after")));
    let over = map
        .get("over")
        .and_then(|n| r.number(n, &join(path, "over"), 0, 1_000_000_000));
    let every = map
        .get("every")
        .and_then(|n| r.bool(n, &join(path, "every")))
        .unwrap_or(false);
    let when = when?;
    match (when, after.is_some(), map.get("after")) {
        (When::Stale, false, None) => {
            r.problem(
                map.node,
                &join(path, "after"),
                "`when: stale` needs `after:`, e.g. after: 6h",
            );
        }
        (When::Stale | When::Failing, _, _) | (_, _, None) => {}
        (_, _, Some(node)) => r.problem(
            node,
            &join(path, "after"),
            "only `when: stale` and `when: failing` take `after:`",
        ),
    }
    if let Some(node) = map.get("over")
        && when != When::Rejected
    {
        r.problem(
            node,
            &join(path, "over"),
            "only `when: rejected` takes `over:`",
        );
    }
    Some(Rule {
        when,
        notify: notify?,
        after,
        over,
        every,
    })
}

/// The JSON Schema of `alerts.yaml`.
pub fn schema() -> Value {
    FILE.schema()
}
