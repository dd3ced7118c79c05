//! The JSON Schema of the destination's settings, built from the same key
//! lists its reader (`config.rs`) accepts: a key without a schema panics here.

use retl_config::schema::{boolean, choice, duration, integer, object, string, strings};
use serde_json::{Value, json};

use crate::config::{
    AUTH_KEYS, DESTINATION_KEYS, ENDPOINT_KEYS, PRODUCT_KEYS, RATE_KEYS, RETRY_KEYS, SERVICE_KEYS,
    SETTINGS_KEYS, TARGET_KEYS, TARGET_PRODUCT_KEYS,
};
use crate::{InvitationType, TagsMode};

/// The JSON Schema of a `type: trustpilot` destination file, from the keys
/// its reader accepts.
pub fn destination_schema() -> Value {
    let property = |key: &str| match key {
        "name" => string("the destination's name (default: the file stem)"),
        "type" => json!({"const": "trustpilot", "description": "the destination's type"}),
        "auth" => {
            let auth = |key: &str| match key {
                "grant" => choice(
                    crate::GrantKind::CHOICES,
                    "how the token is obtained (default client_credentials)",
                ),
                "api_key" => string("the API key"),
                "api_secret" => string("the API secret"),
                "business_user_id" => string(
                    "client_credentials: the business user (Admin or Manager) sent as x-business-user-id",
                ),
                "username" => string("password grant: the business user's login"),
                "password" => string("password grant: their password"),
                other => unreachable!("auth key `{other}` has no schema"),
            };
            object(
                "credentials",
                AUTH_KEYS.iter().map(|k| (*k, auth(k))).collect(),
                &["api_key", "api_secret"],
            )
        }
        "endpoints" => object(
            "where the API lives (default: Trustpilot's hosts)",
            ENDPOINT_KEYS
                .iter()
                .map(|k| {
                    (
                        *k,
                        string("an http(s) URL; plain http only to this machine"),
                    )
                })
                .collect(),
            &[],
        ),
        "defaults" => settings_schema(
            SETTINGS_KEYS,
            PRODUCT_KEYS,
            "invitation settings every activation starts from",
        ),
        "concurrency" => integer(1, 64, "requests in flight at once (default 4)"),
        "request_timeout_seconds" => integer(1, 600, "timeout of one request (default 30)"),
        "rate_limits" => json!({
            "type": "array",
            "description": "pacing windows (default 833 per 300 s and 10000 per 3600 s); [] turns pacing off",
            "items": object(
                "at most `requests` calls per `per_seconds`",
                RATE_KEYS
                    .iter()
                    .map(|k| {
                        let max = if *k == "requests" { 1_000_000 } else { 86_400 };
                        (*k, integer(1, max, k))
                    })
                    .collect(),
                RATE_KEYS,
            ),
        }),
        "retry" => {
            let retry = |key: &str| match key {
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
                other => unreachable!("retry key `{other}` has no schema"),
            };
            object(
                "retries of transient failures",
                RETRY_KEYS.iter().map(|k| (*k, retry(k))).collect(),
                &[],
            )
        }
        "allow_insecure_http" => {
            boolean("allow plain http to hosts other than this machine (default false)")
        }
        "limits" => retl_config::limits::limits_schema(),
        "dedupe" => retl_config::limits::dedupe_schema(),
        other => unreachable!("destination key `{other}` has no schema"),
    };
    object(
        "a Trustpilot destination",
        DESTINATION_KEYS.iter().map(|k| (*k, property(k))).collect(),
        &["type", "auth"],
    )
}

/// The JSON Schema of an activation's `target:` for a Trustpilot destination.
pub fn target_schema() -> Value {
    settings_schema(
        TARGET_KEYS,
        TARGET_PRODUCT_KEYS,
        "overrides the destination's defaults, key by key",
    )
}

fn settings_schema(keys: &[&str], product_keys: &[&str], description: &str) -> Value {
    let property = |key: &str| match key {
        "business_unit_id" => string("the business unit invitations are created for"),
        "invitation_type" => choice(
            InvitationType::CHOICES,
            "service (default), product or both",
        ),
        "service" => object(
            "the service review invitation",
            SERVICE_KEYS
                .iter()
                .map(|k| {
                    let schema = match *k {
                        "template_id" => string("a template id (retl templates DESTINATION)"),
                        "redirect_uri" => {
                            string("an absolute https URL (http only to this machine)")
                        }
                        "tags" => strings("tags applied to the review"),
                        other => unreachable!("service key `{other}` has no schema"),
                    };
                    (*k, schema)
                })
                .collect(),
            &[],
        ),
        "product" => object(
            "the product review invitation",
            product_keys
                .iter()
                .map(|k| {
                    let schema = match *k {
                        "template_id" => string("a template id"),
                        "redirect_uri" => {
                            string("an absolute https URL (http only to this machine)")
                        }
                        "skus" => strings("a fixed list of SKUs, used when the row gives none"),
                        "per_row" => boolean("every row must give its SKUs (mapping.product_sku)"),
                        other => unreachable!("product key `{other}` has no schema"),
                    };
                    (*k, schema)
                })
                .collect(),
            &[],
        ),
        "sender_name" => string("senderName"),
        "sender_email" => string("senderEmail"),
        "reply_to" => string("replyTo"),
        "locale" => string("xx-YY, e.g. en-US (en_US is accepted)"),
        "send_delay" => duration("send this long after the run, e.g. 30m, 12h, 3d, 1w"),
        "kind" => choice(
            crate::TargetKind::CHOICES,
            "what each row creates (default email_invitation)",
        ),
        "tags_mode" => choice(
            TagsMode::CHOICES,
            "append (default): the row's tags add to service.tags; replace: they replace them",
        ),
        other => unreachable!("settings key `{other}` has no schema"),
    };
    object(
        description,
        keys.iter().map(|k| (*k, property(k))).collect(),
        &[],
    )
}
