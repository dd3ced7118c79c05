//! Invitation settings: the destination's `defaults` and the activation's `target`.
//!
//! Both layers have the same shape; [`Settings::overlay`] lays the activation's
//! target over the destination's defaults, key by key.

use std::fmt::Write as _;

use retl_mapping::{Overlay, pick};

retl_config::spelled! {
    /// What an activation creates per new row (`target.kind`).
    #[derive(Default)]
    pub enum TargetKind {
        /// An email invitation Trustpilot sends (the default).
        #[default]
        EmailInvitation = "email_invitation",
        /// An invitation link the business sends itself.
        InvitationLink = "invitation_link",
    }
}

retl_config::spelled! {
    /// Which review invitations a row produces.
    #[derive(Default)]
    pub enum InvitationType {
        /// A service review invitation only (the default).
        #[default]
        Service = "service",
        /// A product review invitation only.
        Product = "product",
        /// Both a service and a product review invitation, in one email.
        Both = "both",
    }
}

impl InvitationType {
    /// Whether the invitation carries a service review block.
    pub fn has_service(self) -> bool {
        matches!(self, Self::Service | Self::Both)
    }

    /// Whether the invitation carries a product review block.
    pub fn has_product(self) -> bool {
        matches!(self, Self::Product | Self::Both)
    }
}

retl_config::spelled! {
    /// How a row's tags combine with the tags of the settings (`target.tags_mode`).
    #[derive(Default)]
    pub enum TagsMode {
        /// The row's tags are added to the settings' tags (the default).
        #[default]
        Append = "append",
        /// The row's tags, when it has any, replace the settings' tags.
        Replace = "replace",
    }
}

/// The `service:` block of defaults or target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceSettings {
    /// `templateId` of the service review invitation.
    pub template_id: Option<String>,
    /// `redirectUri` after the consumer has reviewed.
    pub redirect_uri: Option<String>,
    /// Tags applied to the resulting service review.
    pub tags: Option<Vec<String>>,
}

/// The `product:` block of defaults or target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductSettings {
    /// `templateId` of the product review invitation.
    pub template_id: Option<String>,
    /// `redirectUri` after the consumer has reviewed.
    pub redirect_uri: Option<String>,
    /// A fixed list of SKUs, used when the row gives none.
    pub skus: Option<Vec<String>>,
    /// Whether every row must give its own SKUs through `mapping.product_sku`.
    pub per_row: Option<bool>,
}

/// One layer of invitation settings (destination `defaults` or activation `target`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// The business unit invitations are created for (the URL path, not the body).
    pub business_unit_id: Option<String>,
    /// Service, product or both.
    pub invitation_type: Option<InvitationType>,
    /// The service review block.
    pub service: ServiceSettings,
    /// The product review block.
    pub product: ProductSettings,
    /// `senderName`.
    pub sender_name: Option<String>,
    /// `senderEmail`.
    pub sender_email: Option<String>,
    /// `replyTo`.
    pub reply_to: Option<String>,
    /// `locale`.
    pub locale: Option<String>,
    /// Send this long after the run (`preferredSendTime`), unless the row gives a time.
    pub send_delay: Option<std::time::Duration>,
    /// How a row's tags combine with `service.tags` (target only).
    pub tags_mode: Option<TagsMode>,
}

impl Overlay for Settings {
    /// Lays `over` on top of `self`: every key set in `over` wins, the others keep `self`'s value.
    fn overlay(&self, over: &Settings) -> Settings {
        Settings {
            business_unit_id: pick(
                self.business_unit_id.as_ref(),
                over.business_unit_id.as_ref(),
            ),
            invitation_type: over.invitation_type.or(self.invitation_type),
            service: ServiceSettings {
                template_id: pick(
                    self.service.template_id.as_ref(),
                    over.service.template_id.as_ref(),
                ),
                redirect_uri: pick(
                    self.service.redirect_uri.as_ref(),
                    over.service.redirect_uri.as_ref(),
                ),
                tags: pick(self.service.tags.as_ref(), over.service.tags.as_ref()),
            },
            product: ProductSettings {
                template_id: pick(
                    self.product.template_id.as_ref(),
                    over.product.template_id.as_ref(),
                ),
                redirect_uri: pick(
                    self.product.redirect_uri.as_ref(),
                    over.product.redirect_uri.as_ref(),
                ),
                skus: pick(self.product.skus.as_ref(), over.product.skus.as_ref()),
                per_row: over.product.per_row.or(self.product.per_row),
            },
            sender_name: pick(self.sender_name.as_ref(), over.sender_name.as_ref()),
            sender_email: pick(self.sender_email.as_ref(), over.sender_email.as_ref()),
            reply_to: pick(self.reply_to.as_ref(), over.reply_to.as_ref()),
            locale: pick(self.locale.as_ref(), over.locale.as_ref()),
            send_delay: over.send_delay.or(self.send_delay),
            tags_mode: over.tags_mode.or(self.tags_mode),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_overrides_defaults_key_by_key() {
        let defaults = Settings {
            business_unit_id: Some("bu-default".into()),
            sender_name: Some("Acme".into()),
            service: ServiceSettings {
                template_id: Some("tpl-default".into()),
                redirect_uri: Some("https://acme.example/thanks".into()),
                tags: None,
            },
            ..Settings::default()
        };
        let target = Settings {
            invitation_type: Some(InvitationType::Both),
            service: ServiceSettings {
                template_id: Some("tpl-target".into()),
                ..ServiceSettings::default()
            },
            ..Settings::default()
        };
        let merged = defaults.overlay(&target);
        assert_eq!(merged.business_unit_id.as_deref(), Some("bu-default"));
        assert_eq!(merged.sender_name.as_deref(), Some("Acme"));
        assert_eq!(merged.invitation_type, Some(InvitationType::Both));
        assert_eq!(merged.service.template_id.as_deref(), Some("tpl-target"));
        assert_eq!(
            merged.service.redirect_uri.as_deref(),
            Some("https://acme.example/thanks")
        );
    }

    #[test]
    fn invitation_type_parses_only_documented_values() {
        assert_eq!("both".parse(), Ok(InvitationType::Both));
        assert!("Service".parse::<InvitationType>().is_err());
        assert!(InvitationType::Both.has_service() && InvitationType::Both.has_product());
        assert!(!InvitationType::Product.has_service());
    }
}

/// The version of [`request_fingerprint`]'s encoding. A new version is a
/// new identity for every rejected row's request: only change the encoding
/// with a new version, and keep reading rows the old one rejected.
pub const FINGERPRINT_VERSION: u32 = 2;

/// What shapes a row's request besides its own cells, written out field by
/// field in a fixed order: the effective settings, the target kind, and the
/// mapping (field ← column). A rejected row is remembered by its content
/// combined with this text's hash, so it is tried again when any of it
/// changes, and only then.
///
/// The settings are destructured without `..`: a field added to
/// [`Settings`] does not compile until it is written here (or said not to
/// shape the request), so the identity never changes by accident, as a
/// `Debug` text would on a new field or a changed derive.
pub fn request_fingerprint(
    settings: &Settings,
    kind: crate::TargetKind,
    mapping: &[(crate::Field, String)],
) -> String {
    let Settings {
        business_unit_id,
        invitation_type,
        service:
            ServiceSettings {
                template_id: service_template,
                redirect_uri: service_redirect,
                tags: service_tags,
            },
        product:
            ProductSettings {
                template_id: product_template,
                redirect_uri: product_redirect,
                skus: product_skus,
                per_row: product_per_row,
            },
        sender_name,
        sender_email,
        reply_to,
        locale,
        send_delay,
        tags_mode,
    } = settings;
    // Each value as JSON (null when unset): no value can run into the next.
    let text = |value: Option<&str>| serde_json::to_string(&value).unwrap_or_default();
    let list = |value: &Option<Vec<String>>| serde_json::to_string(value).unwrap_or_default();
    let fields: [(&str, String); 15] = [
        ("business_unit_id", text(business_unit_id.as_deref())),
        (
            "invitation_type",
            text(invitation_type.map(|t| t.to_string()).as_deref()),
        ),
        ("service.template_id", text(service_template.as_deref())),
        ("service.redirect_uri", text(service_redirect.as_deref())),
        ("service.tags", list(service_tags)),
        ("product.template_id", text(product_template.as_deref())),
        ("product.redirect_uri", text(product_redirect.as_deref())),
        ("product.skus", list(product_skus)),
        (
            "product.per_row",
            serde_json::to_string(product_per_row).unwrap_or_default(),
        ),
        ("sender_name", text(sender_name.as_deref())),
        ("sender_email", text(sender_email.as_deref())),
        ("reply_to", text(reply_to.as_deref())),
        ("locale", text(locale.as_deref())),
        (
            "send_delay_seconds",
            serde_json::to_string(&send_delay.map(|d| d.as_secs())).unwrap_or_default(),
        ),
        ("tags_mode", text(tags_mode.map(TagsMode::as_str))),
    ];
    let mut out = format!("retl request fingerprint {FINGERPRINT_VERSION}\n");
    for (name, value) in fields {
        let _ = writeln!(out, "{name}={value}");
    }
    let _ = writeln!(out, "kind={kind}");
    for (field, column) in mapping {
        let _ = writeln!(
            out,
            "mapping.{}={}",
            retl_mapping::FieldSet::name(*field),
            text(Some(column))
        );
    }
    out
}

#[cfg(test)]
mod fingerprint_tests {
    use super::*;
    use crate::{Field, TargetKind};

    #[test]
    fn the_request_fingerprint_is_pinned() {
        let settings = Settings {
            business_unit_id: Some("bu-1".into()),
            sender_name: Some("Shop".into()),
            service: ServiceSettings {
                template_id: Some("507f191e810c19729de860ea".into()),
                tags: Some(vec!["a".into(), "b\nc".into()]),
                ..ServiceSettings::default()
            },
            send_delay: Some(std::time::Duration::from_hours(1)),
            ..Settings::default()
        };
        let mapping = vec![
            (Field::ReferenceNumber, "order_id".to_owned()),
            (Field::ConsumerEmail, "email".to_owned()),
        ];
        let text = request_fingerprint(&settings, TargetKind::EmailInvitation, &mapping);
        assert_eq!(
            text,
            "retl request fingerprint 2\n\
             business_unit_id=\"bu-1\"\n\
             invitation_type=null\n\
             service.template_id=\"507f191e810c19729de860ea\"\n\
             service.redirect_uri=null\n\
             service.tags=[\"a\",\"b\\nc\"]\n\
             product.template_id=null\n\
             product.redirect_uri=null\n\
             product.skus=null\n\
             product.per_row=null\n\
             sender_name=\"Shop\"\n\
             sender_email=null\n\
             reply_to=null\n\
             locale=null\n\
             send_delay_seconds=3600\n\
             tags_mode=null\n\
             kind=email_invitation\n\
             mapping.reference_number=\"order_id\"\n\
             mapping.consumer_email=\"email\"\n"
        );
        // Every setting shapes it.
        let other = Settings {
            reply_to: Some("help@shop.example".into()),
            ..settings.clone()
        };
        assert_ne!(
            request_fingerprint(&other, TargetKind::EmailInvitation, &mapping),
            text
        );
        assert_ne!(
            request_fingerprint(&settings, TargetKind::InvitationLink, &mapping),
            text
        );
    }
}
