//! The Trustpilot destination's blocks, each key declared once with its JSON
//! Schema: the reader (`config.rs`) accepts these keys and no other, and
//! `retl schema destination` prints these schemas.

use retl_config::schema::{boolean, choice, duration, integer, string, strings};
use serde_json::{Value, json};

use crate::{GrantKind, InvitationType, TagsMode, TargetKind};

retl_config::block! {
    /// A `type: trustpilot` destination file. `name` and `type` are the
    /// engine's to read (they choose this reader).
    pub(crate) static DESTINATION = "a Trustpilot destination", required ["type", "auth"] {
        "name" => string("the destination's name (default: the file stem)"),
        "type" => json!({"const": "trustpilot", "description": "the destination's type"}),
        "auth" => AUTH.schema(),
        "endpoints" => ENDPOINTS.schema(),
        "defaults" => DEFAULTS.schema(),
        "concurrency" => integer(1, 64, "requests in flight at once (default 4)"),
        "request_timeout_seconds" => integer(1, 600, "timeout of one request (default 30)"),
        "rate_limits" => json!({
            "type": "array",
            "description": "pacing windows (default 833 per 300 s and 10000 per 3600 s); [] turns pacing off",
            "items": RATE_WINDOW.schema(),
        }),
        "retry" => RETRY.schema(),
        "allow_insecure_http" => {
            boolean("allow plain http to hosts other than this machine (default false)")
        },
        "limits" => retl_config::limits::LIMITS.schema(),
        "dedupe" => retl_config::limits::DEDUPE.schema(),
    }
}

retl_config::block! {
    /// `auth:`.
    pub(crate) static AUTH = "credentials", required ["api_key", "api_secret"] {
        "grant" => choice(
            GrantKind::CHOICES,
            "how the token is obtained (default client_credentials)",
        ),
        "api_key" => string("the API key"),
        "api_secret" => string("the API secret"),
        "business_user_id" => string(
            "client_credentials: the business user (Admin or Manager) sent as x-business-user-id",
        ),
        "username" => string("password grant: the business user's login"),
        "password" => string("password grant: their password"),
    }
}

retl_config::block! {
    /// `endpoints:`.
    pub(crate) static ENDPOINTS = "where the API lives (default: Trustpilot's hosts)", required [] {
        "auth" => string("an http(s) URL; plain http only to this machine"),
        "invitations" => string("an http(s) URL; plain http only to this machine"),
    }
}

retl_config::block! {
    /// One item of `rate_limits:`.
    pub(crate) static RATE_WINDOW = "at most `requests` calls per `per_seconds`", required ["requests", "per_seconds"] {
        "requests" => integer(1, 1_000_000, "requests"),
        "per_seconds" => integer(1, 86_400, "per_seconds"),
    }
}

retl_config::block! {
    /// `retry:`. `max_attempts` counted runs; it is refused with the way out.
    pub(crate) static RETRY = "retries of transient failures", required [] {
        "tries_per_run" => integer(1, 20, "requests per row within one run (default 3)"),
        "give_up_after" => duration(
            "how long a row may keep failing transiently (from its first failure) before it is given up, e.g. 7d (default 7d)",
        ),
        "rate_limited_retries" => integer(0, 100_000, "429s a run waits out (default 100)"),
        "backoff_ms" => integer(
            1,
            600_000,
            "the first backoff, doubled per retry (default 500)",
        ),
    } retired ["max_attempts"]
}

retl_config::block! {
    /// A destination's `defaults:`.
    pub(crate) static DEFAULTS = "invitation settings every activation starts from", required [] {
        "business_unit_id" => string("the business unit invitations are created for"),
        "invitation_type" => choice(
            InvitationType::CHOICES,
            "service (default), product or both",
        ),
        "service" => SERVICE.schema(),
        "product" => PRODUCT.schema(),
        "sender_name" => string("senderName"),
        "sender_email" => string("senderEmail"),
        "reply_to" => string("replyTo"),
        "locale" => string("xx-YY, e.g. en-US (en_US is accepted)"),
        "send_delay" => duration("send this long after the run, e.g. 30m, 12h, 3d, 1w"),
    }
}

retl_config::block! {
    /// An activation's `target:`: the defaults' keys, a product block that
    /// may say `per_row`, and two more.
    pub(crate) static TARGET = "overrides the destination's defaults, key by key", required [], base DEFAULTS {
        "product" => TARGET_PRODUCT.schema(),
        "kind" => choice(
            TargetKind::CHOICES,
            "what each row creates (default email_invitation)",
        ),
        "tags_mode" => choice(
            TagsMode::CHOICES,
            "append (default): the row's tags add to service.tags; replace: they replace them",
        ),
    }
}

retl_config::block! {
    /// `service:`.
    pub(crate) static SERVICE = "the service review invitation", required [] {
        "template_id" => string("a template id (retl templates DESTINATION)"),
        "redirect_uri" => string("an absolute https URL (http only to this machine)"),
        "tags" => strings("tags applied to the review"),
    }
}

retl_config::block! {
    /// A destination's `product:`.
    pub(crate) static PRODUCT = "the product review invitation", required [] {
        "template_id" => string("a template id"),
        "redirect_uri" => string("an absolute https URL (http only to this machine)"),
        "skus" => strings("a fixed list of SKUs, used when the row gives none"),
    }
}

retl_config::block! {
    /// A target's `product:`.
    pub(crate) static TARGET_PRODUCT = "the product review invitation", required [], base PRODUCT {
        "per_row" => boolean("every row must give its SKUs (mapping.product_sku)"),
    }
}

/// The JSON Schema of a `type: trustpilot` destination file.
pub fn destination_schema() -> Value {
    DESTINATION.schema()
}

/// The JSON Schema of an activation's `target:` for a Trustpilot destination.
pub fn target_schema() -> Value {
    TARGET.schema()
}
