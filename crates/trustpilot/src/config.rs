//! The Trustpilot destination's settings and their reader: `destinations/*.yaml`
//! of `type: trustpilot`, and the `target:` block of the activations that use it.
//!
//! Every problem is reported with its `file:line:column` and field path, all
//! at once (see `retl-config`).
//!
//! The destination's reader, the settings
//! reader shared by `defaults:` and `target:`, and the cross-file checks, kept
//! together because they read the same keys (their keys and schemas are declared
//! in `schema.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use retl_config::{Node, Reader, join};
use retl_mapping::Overlay as _;

use crate::schema;
use crate::{
    ClientConfig, Credentials, Endpoints, Field, Grant, InvitationType, ProductSettings,
    RateWindow, Secret, ServiceSettings, Settings, TagsMode,
};
use crate::{GrantKind, TargetKind};

/// A Trustpilot destination (`destinations/*.yaml` with `type: trustpilot`).
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
    /// Volume limits for every activation of this destination.
    pub limits: retl_config::limits::Limits,
    /// `dedupe.within`: one invitation per customer per this period, across
    /// all its activations.
    pub dedupe: Option<Duration>,
    /// What its clients share with the other Trustpilot destinations of its
    /// registry (tokens, rate limiters, the request observer).
    pub context: std::sync::Arc<crate::Context>,
}

/// An activation's `target:`: settings laid over the destination's defaults,
/// and what to create per row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// The settings.
    pub settings: Settings,
    /// Email invitations or invitation links.
    pub kind: TargetKind,
}

/// How failed requests are retried (`retry:` of a destination).
pub use retl_destination::RetryPolicy;

impl Destination {
    /// The problems of an activation that sends through this destination with
    /// `target` and maps the fields `mapped`: each as (field path, message).
    pub fn check_activation(&self, target: &Target, mapped: &[Field]) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let settings = self.defaults.overlay(&target.settings);
        if settings.business_unit_id.is_none() {
            problems.push((
                "target.business_unit_id".to_owned(),
                format!(
                    "no business unit: set it here or in destination `{}` defaults",
                    self.name
                ),
            ));
        }
        let kind = settings.invitation_type.unwrap_or_default();
        if target.kind == TargetKind::InvitationLink && kind.has_product() {
            problems.push((
                "target.kind".to_owned(),
                format!(
                    "invitation links are service links only: invitation_type `{kind}` cannot be sent as kind: invitation_link"
                ),
            ));
        }
        let maps = |field: Field| mapped.contains(&field);
        if kind.has_product() {
            if settings.product.per_row == Some(true) && !maps(Field::ProductSku) {
                problems.push((
                    "mapping.product_sku".to_owned(),
                    "target.product.per_row needs mapping.product_sku".to_owned(),
                ));
            }
            if settings.product.skus.is_none() && !maps(Field::ProductSku) {
                problems.push((
                    "target.product".to_owned(),
                    format!("invitation_type `{kind}` needs product SKUs: set target.product.skus or map product_sku"),
                ));
            }
        }
        problems
    }

    /// The settings an activation with `target` sends with: these defaults with the target laid over them.
    pub fn settings_for(&self, target: &Target) -> Settings {
        self.defaults.overlay(&target.settings)
    }

    /// The client configuration, caching tokens in `token_cache`.
    pub fn client_config(&self, token_cache: Option<&Path>) -> ClientConfig {
        let mut config = ClientConfig::new(self.endpoints.clone(), self.credentials.clone());
        config.timeout = self.request_timeout;
        config.rate_limits.clone_from(&self.rate_limits);
        config.token_cache = token_cache.map(Into::into);
        config.context = self.context.clone();
        config
    }
}

/// Reads an activation's `target:` block.
pub fn read_target(r: &mut Reader<'_>, node: &Node<'_>) -> Option<Target> {
    let mut kind = TargetKind::default();
    let settings = read_settings(r, node, "target", Some(&mut kind))?;
    Some(Target { settings, kind })
}

/// Reads a destination file of `type: trustpilot` (its `name` and `type` are
/// the engine's to read: they choose this reader).
pub fn read_destination(
    r: &mut Reader<'_>,
    doc: &Node<'_>,
    name: String,
    file: &Path,
) -> Option<Destination> {
    let map = r.block(doc, "", &schema::DESTINATION)?;
    map.read_elsewhere(&["name", "type"]);
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
        && let Some(e) = r.block(node, "endpoints", &schema::ENDPOINTS)
    {
        for (key, slot) in [
            ("auth", &mut endpoints.auth),
            ("invitations", &mut endpoints.invitations),
        ] {
            if let Some(node) = e.get(key)
                && let Some(url) = r.string(node, &join("endpoints", key))
            {
                match check_endpoint(&url) {
                    Ok(()) => *slot = url.trim_end_matches('/').to_owned(),
                    Err(problem) => r.problem(node, &join("endpoints", key), problem),
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
    let limits = map
        .get("limits")
        .map(|n| retl_config::limits::read_limits(r, n))
        .unwrap_or_default();
    let dedupe = map
        .get("dedupe")
        .and_then(|n| retl_config::limits::read_dedupe(r, n));
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
        limits,
        dedupe,
        context: std::sync::Arc::default(),
    })
}

/// Whether `url` can be an endpoint: an absolute http(s) URL with a host and
/// no credentials in it (they would travel with every request, and in logs).
pub(crate) fn check_endpoint(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(format!("`{url}` is not an http(s) URL"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "an endpoint must not hold credentials (user:password@): auth: has them".to_owned(),
        );
    }
    Ok(())
}

/// https anywhere, or http to a loopback address (the emulator), judged on
/// the parsed host (IPv6 literals included).
fn is_safe_endpoint(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    match parsed.scheme() {
        "https" => true,
        "http" => match parsed.host() {
            Some(url::Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

fn read_rate_limits(r: &mut Reader<'_>, node: &Node<'_>) -> Vec<RateWindow> {
    let Some(items) = r.list(node, "rate_limits") else {
        return RateWindow::trustpilot_defaults();
    };
    let mut windows = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("rate_limits[{i}]");
        let Some(map) = r.block(item, &path, &schema::RATE_WINDOW) else {
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
    let Some(map) = r.block(node, "retry", &schema::RETRY) else {
        return policy;
    };
    if let Some(node) = map.get("max_attempts") {
        r.problem(
            node,
            "retry.max_attempts",
            "max_attempts counted runs, so a short outage on a frequent schedule gave customers up; it is replaced by retry.give_up_after, a duration since a row first failed (default 7d): remove max_attempts, or write e.g. give_up_after: 2d",
        );
    }
    if let Some(after) = map
        .get("give_up_after")
        .and_then(|n| r.duration(n, "retry.give_up_after"))
    {
        policy.give_up_after = after;
    }
    let mut number = |key: &str, min: u64, max: u64| {
        map.get(key)
            .and_then(|n| r.number(n, &join("retry", key), min, max))
    };
    if let Some(n) = number("tries_per_run", 1, 20) {
        policy.tries_per_run = u32::try_from(n).unwrap_or(3);
    }
    if let Some(n) = number("rate_limited_retries", 0, 100_000) {
        policy.rate_limited_retries = u32::try_from(n).unwrap_or(100);
    }
    if let Some(n) = number("backoff_ms", 1, 600_000) {
        policy.backoff = Duration::from_millis(n);
    }
    policy
}

fn read_auth(r: &mut Reader<'_>, node: &Node<'_>) -> Option<Credentials> {
    let map = r.block(node, "auth", &schema::AUTH)?;
    let grant: GrantKind = match map.get("grant") {
        Some(node) => r
            .choice(node, "auth.grant", GrantKind::CHOICES)?
            .parse()
            .ok()?,
        None => GrantKind::default(),
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
    // The other grant's keys are accepted and unused (a file switched from
    // one grant to the other keeps loading).
    map.read_elsewhere(match grant {
        GrantKind::Password => &["business_user_id"],
        GrantKind::ClientCredentials => &["username", "password"],
    });
    let grant = if grant == GrantKind::Password {
        let username = required("username");
        let password = required("password");
        Grant::Password {
            username: username?,
            password: Secret::new(password?),
        }
    } else {
        let node = map.get("business_user_id");
        let user = node.and_then(|n| r.string(n, "auth.business_user_id"));
        // A value that failed to read (a missing variable) has its own problem.
        if user.is_none() && Reader::is_unset(node) {
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

/// Reads a redirect URI: an absolute `https` URL (`http` only to this machine).
/// Reads a setting's text. An empty or blank one (`sender_name: ""`, or a
/// `${VAR}` set to nothing) is a problem: it would go out as `""`; leaving
/// the key out lets Trustpilot's account default apply.
fn setting(r: &mut Reader<'_>, node: &Node<'_>, path: &str) -> Option<String> {
    let value = r.string(node, path)?;
    if value.trim().is_empty() {
        r.problem(
            node,
            path,
            "must not be empty (leave the key out to use the default)",
        );
        return None;
    }
    Some(value)
}

/// Reads a list setting (tags, SKUs): no item may be empty.
fn setting_list(r: &mut Reader<'_>, node: &Node<'_>, path: &str) -> Option<Vec<String>> {
    let items = r.strings(node, path)?;
    if items.iter().any(|item| item.trim().is_empty()) {
        r.problem(node, path, "an item is empty");
        return None;
    }
    Some(items)
}

fn redirect(r: &mut Reader<'_>, node: &Node<'_>, path: &str) -> Option<String> {
    let uri = setting(r, node, path)?;
    if crate::is_valid_redirect(&uri) {
        Some(uri)
    } else {
        r.problem(
            node,
            path,
            format!("`{uri}` is not an absolute https URL (http only to this machine)"),
        );
        None
    }
}

/// A `service:` block.
fn read_service(r: &mut Reader<'_>, node: &Node<'_>, sub: &str) -> Option<ServiceSettings> {
    let s = r.block(node, sub, &schema::SERVICE)?;
    Some(ServiceSettings {
        template_id: s
            .get("template_id")
            .and_then(|n| setting(r, n, &join(sub, "template_id"))),
        redirect_uri: s
            .get("redirect_uri")
            .and_then(|n| redirect(r, n, &join(sub, "redirect_uri"))),
        tags: s
            .get("tags")
            .and_then(|n| setting_list(r, n, &join(sub, "tags"))),
    })
}

/// A `product:` block (a target's may also say `per_row`).
fn read_product(
    r: &mut Reader<'_>,
    node: &Node<'_>,
    sub: &str,
    is_target: bool,
) -> Option<ProductSettings> {
    let block = if is_target {
        &schema::TARGET_PRODUCT
    } else {
        &schema::PRODUCT
    };
    let p = r.block(node, sub, block)?;
    Some(ProductSettings {
        template_id: p
            .get("template_id")
            .and_then(|n| setting(r, n, &join(sub, "template_id"))),
        redirect_uri: p
            .get("redirect_uri")
            .and_then(|n| redirect(r, n, &join(sub, "redirect_uri"))),
        skus: p
            .get("skus")
            .and_then(|n| setting_list(r, n, &join(sub, "skus"))),
        per_row: is_target
            .then(|| p.get("per_row"))
            .flatten()
            .and_then(|n| r.bool(n, &join(sub, "per_row"))),
    })
}

fn read_settings(
    r: &mut Reader<'_>,
    node: &Node<'_>,
    path: &str,
    kind: Option<&mut TargetKind>,
) -> Option<Settings> {
    let is_target = kind.is_some();
    let block = if is_target {
        &schema::TARGET
    } else {
        &schema::DEFAULTS
    };
    let map = r.block(node, path, block)?;
    let mut settings = Settings::default();
    if let Some(kind) = kind
        && let Some(node) = map.get("kind")
        && let Some(chosen) = r
            .choice(node, &join(path, "kind"), TargetKind::CHOICES)
            .and_then(|text| text.parse().ok())
    {
        *kind = chosen;
    }
    if let Some(node) = map.get("send_delay") {
        settings.send_delay = r.duration(node, &join(path, "send_delay"));
    }
    let text =
        |r: &mut Reader<'_>, key: &str| map.get(key).and_then(|n| setting(r, n, &join(path, key)));
    settings.business_unit_id = text(r, "business_unit_id");
    settings.sender_name = text(r, "sender_name");
    settings.sender_email = text(r, "sender_email");
    settings.reply_to = text(r, "reply_to");
    settings.locale = text(r, "locale").map(|l| crate::normalize_locale(&l));
    if let Some(node) = map.get("locale")
        && let Some(locale) = &settings.locale
        && !crate::is_valid_locale(locale)
    {
        r.problem(
            node,
            &join(path, "locale"),
            format!("`{locale}` is not of the form xx-YY (e.g. en-US)"),
        );
    }
    if is_target && let Some(node) = map.get("tags_mode") {
        settings.tags_mode = r
            .choice(node, &join(path, "tags_mode"), TagsMode::CHOICES)
            .and_then(|mode| mode.parse().ok());
    }
    for (key, value) in [
        ("sender_email", &settings.sender_email),
        ("reply_to", &settings.reply_to),
    ] {
        if let Some(node) = map.get(key)
            && let Some(email) = value
            && !crate::is_valid_email(email)
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
                InvitationType::CHOICES,
            )
            .and_then(|v| v.parse().ok());
    }
    if let Some(node) = map.get("service") {
        settings.service = read_service(r, node, &join(path, "service")).unwrap_or_default();
    }
    if let Some(node) = map.get("product") {
        settings.product =
            read_product(r, node, &join(path, "product"), is_target).unwrap_or_default();
    }
    Some(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> (Option<Target>, Vec<String>) {
        let file = Path::new("t.yaml");
        let doc = retl_config::parse(file, text).unwrap();
        let env = |name: &str| (name == "EMPTY").then(String::new);
        let mut r = Reader::new(file, text, &env);
        let target = read_target(&mut r, &doc);
        (target, r.problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn an_empty_setting_is_a_problem_not_an_empty_value() {
        let (target, problems) = read(
            "sender_name: \"\"\nreply_to: ${EMPTY}\nservice: { template_id: \"  \", tags: [a, \"\"] }\n",
        );
        assert!(target.is_some());
        assert_eq!(
            problems,
            vec![
                "t.yaml:1:14: target.sender_name: must not be empty (leave the key out to use the default)",
                "t.yaml:2:11: target.reply_to: must not be empty (leave the key out to use the default)",
                "t.yaml:3:25: target.service.template_id: must not be empty (leave the key out to use the default)",
                "t.yaml:3:37: target.service.tags: an item is empty",
            ]
        );
    }

    #[test]
    fn endpoints_are_parsed_urls_without_credentials() {
        assert!(check_endpoint("https://api.trustpilot.com").is_ok());
        assert!(check_endpoint("http://127.0.0.1:8787/").is_ok());
        let userinfo = check_endpoint("http://127.0.0.1:x@some-host").unwrap_err();
        assert!(userinfo.contains("must not hold credentials"), "{userinfo}");
        assert!(check_endpoint("https://user@api.example").is_err());
        assert!(check_endpoint("ftp://api.example").is_err());
        assert!(check_endpoint("api.example").is_err());
    }

    #[test]
    fn plain_http_is_safe_only_to_this_machine_judged_on_the_parsed_host() {
        for safe in [
            "https://api.trustpilot.com",
            "http://127.0.0.1:8787",
            "http://localhost:1",
            "http://[::1]:8787/x",
        ] {
            assert!(is_safe_endpoint(safe), "{safe}");
        }
        for unsafe_ in [
            "http://api.example",
            "http://127.0.0.1.evil.example",
            "http://[2001:db8::1]:80",
            "http://127.0.0.1:x@some-host",
        ] {
            assert!(!is_safe_endpoint(unsafe_), "{unsafe_}");
        }
    }
}
