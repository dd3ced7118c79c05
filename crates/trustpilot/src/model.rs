//! The email-invitation request body and the API's validation rules.

use serde::Serialize;

/// The characters Trustpilot does not accept in `referenceNumber`.
pub const FORBIDDEN_REFERENCE_CHARS: [char; 6] = ['#', '*', '+', '"', '%', '&'];

/// `serviceReviewInvitation`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceReviewInvitation {
    /// `templateId`.
    pub template_id: Option<String>,
    /// `preferredSendTime`, UTC `YYYY-MM-DDTHH:MM:SS`.
    pub preferred_send_time: Option<String>,
    /// `redirectUri`.
    pub redirect_uri: Option<String>,
    /// `tags`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// `productReviewInvitation` (with `productSkus`; retl never sends `products`).
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductReviewInvitation {
    /// `templateId`.
    pub template_id: Option<String>,
    /// `preferredSendTime`, UTC `YYYY-MM-DDTHH:MM:SS`.
    pub preferred_send_time: Option<String>,
    /// `redirectUri`.
    pub redirect_uri: Option<String>,
    /// `productSkus`.
    pub product_skus: Vec<String>,
}

/// The body of `POST …/email-invitations`: one consumer per call.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailInvitation {
    /// `consumerEmail` (required).
    pub consumer_email: String,
    /// `consumerName` (required by retl).
    pub consumer_name: String,
    /// `referenceNumber` (required by retl).
    pub reference_number: String,
    /// `locale`, `xx-YY`.
    pub locale: Option<String>,
    /// `senderEmail`.
    pub sender_email: Option<String>,
    /// `senderName`.
    pub sender_name: Option<String>,
    /// `replyTo`.
    pub reply_to: Option<String>,
    /// `locationId`.
    pub location_id: Option<String>,
    /// `type`: always `"email"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Present for service and both.
    pub service_review_invitation: Option<ServiceReviewInvitation>,
    /// Present for product and both.
    pub product_review_invitation: Option<ProductReviewInvitation>,
}

/// The body of `POST …/invitation-links`. Note Trustpilot's field names differ
/// from email invitations (`referenceId`, `email`, `name`).
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvitationLink {
    /// `referenceId`.
    pub reference_id: String,
    /// `email`.
    pub email: String,
    /// `name`.
    pub name: String,
    /// `locale`.
    pub locale: Option<String>,
    /// `locationId`.
    pub location_id: Option<String>,
    /// `tags`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `redirectUri`.
    pub redirect_uri: Option<String>,
}

impl InvitationLink {
    /// The link for an email invitation's consumer: its service block's tags
    /// and redirect go with it (the links endpoint makes service links only).
    pub fn for_invitation(body: &EmailInvitation) -> InvitationLink {
        let service = body.service_review_invitation.as_ref();
        InvitationLink {
            reference_id: body.reference_number.clone(),
            email: body.consumer_email.clone(),
            name: body.consumer_name.clone(),
            locale: body.locale.clone(),
            location_id: body.location_id.clone(),
            tags: service.map(|s| s.tags.clone()).unwrap_or_default(),
            redirect_uri: service.and_then(|s| s.redirect_uri.clone()),
        }
    }
}

/// A practical email check: one `@`, a non-empty local part, a dotted domain,
/// no spaces, no empty labels.
pub fn is_valid_email(email: &str) -> bool {
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

/// A locale as Trustpilot wants it: `en_US` is written `en-US`; anything
/// else is kept as written (and [`is_valid_locale`] judges it).
pub fn normalize_locale(locale: &str) -> String {
    let b = locale.as_bytes();
    if b.len() == 5 && b[2] == b'_' {
        locale.replacen('_', "-", 1)
    } else {
        locale.to_owned()
    }
}

/// Whether `uri` is an absolute `https` URL, or `http` to this machine (loopback).
pub fn is_valid_redirect(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => match url.host() {
            Some(url::Host::Domain(host)) => host == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

/// `xx-YY`: two lowercase letters, a hyphen, two uppercase letters.
pub fn is_valid_locale(locale: &str) -> bool {
    let b = locale.as_bytes();
    b.len() == 5
        && b[0].is_ascii_lowercase()
        && b[1].is_ascii_lowercase()
        && b[2] == b'-'
        && b[3].is_ascii_uppercase()
        && b[4].is_ascii_uppercase()
}

impl EmailInvitation {
    /// Checks the body against the API's rules; every problem found, each naming its field.
    ///
    /// Messages never repeat the value of a personal field (emails, names).
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.consumer_email.is_empty() {
            problems.push("consumer_email: missing".to_owned());
        } else if !is_valid_email(&self.consumer_email) {
            problems.push("consumer_email: not a valid email address".to_owned());
        }
        if self.consumer_name.trim().is_empty() {
            problems.push("consumer_name: missing".to_owned());
        }
        if self.reference_number.is_empty() {
            problems.push("reference_number: missing".to_owned());
        } else if let Some(c) = self
            .reference_number
            .chars()
            .find(|c| FORBIDDEN_REFERENCE_CHARS.contains(c))
        {
            problems.push(format!(
                "reference_number: `{}` contains `{c}`; Trustpilot does not accept # * + \" % &",
                self.reference_number
            ));
        }
        if let Some(locale) = &self.locale
            && !is_valid_locale(locale)
        {
            problems.push(format!(
                "locale: `{locale}` is not of the form xx-YY (e.g. en-US)"
            ));
        }
        for (field, value) in [
            ("sender_email", &self.sender_email),
            ("reply_to", &self.reply_to),
        ] {
            if value.as_deref().is_some_and(|v| !is_valid_email(v)) {
                problems.push(format!("{field}: not a valid email address"));
            }
        }
        let redirects = [
            (
                "service_redirect_uri",
                self.service_review_invitation
                    .as_ref()
                    .and_then(|s| s.redirect_uri.as_ref()),
            ),
            (
                "product_redirect_uri",
                self.product_review_invitation
                    .as_ref()
                    .and_then(|p| p.redirect_uri.as_ref()),
            ),
        ];
        for (field, uri) in redirects {
            if let Some(uri) = uri
                && !is_valid_redirect(uri)
            {
                problems.push(format!(
                    "{field}: `{uri}` is not an absolute https URL (http only to this machine)"
                ));
            }
        }
        if self.service_review_invitation.is_none() && self.product_review_invitation.is_none() {
            problems.push("invitation_type: neither a service nor a product invitation".to_owned());
        }
        if let Some(product) = &self.product_review_invitation
            && product.product_skus.is_empty()
        {
            problems.push("product_sku: a product invitation needs at least one SKU".to_owned());
        }
        if let (Some(service), Some(product)) = (
            self.service_review_invitation
                .as_ref()
                .and_then(|s| s.preferred_send_time.as_ref()),
            self.product_review_invitation
                .as_ref()
                .and_then(|p| p.preferred_send_time.as_ref()),
        ) && service >= product
        {
            // Both are normalised to `YYYY-MM-DDTHH:MM:SS`, so text order is time order.
            problems.push(
                "preferred_send_time: the service send time must be earlier than the product send time"
                    .to_owned(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> EmailInvitation {
        EmailInvitation {
            consumer_email: "ann@shop.example".into(),
            consumer_name: "Ann".into(),
            reference_number: "ORD-1".into(),
            kind: "email",
            service_review_invitation: Some(ServiceReviewInvitation::default()),
            ..EmailInvitation::default()
        }
    }

    #[test]
    fn unset_fields_are_omitted_from_the_body() {
        let body = serde_json::to_value(valid()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "consumerEmail": "ann@shop.example",
                "consumerName": "Ann",
                "referenceNumber": "ORD-1",
                "type": "email",
                "serviceReviewInvitation": {}
            })
        );
    }

    #[test]
    fn both_blocks_serialise_in_camel_case() {
        let mut invitation = valid();
        invitation.locale = Some("da-DK".into());
        invitation.service_review_invitation = Some(ServiceReviewInvitation {
            template_id: Some("t1".into()),
            tags: vec!["vip".into()],
            ..ServiceReviewInvitation::default()
        });
        invitation.product_review_invitation = Some(ProductReviewInvitation {
            product_skus: vec!["SKU-1".into()],
            redirect_uri: Some("https://shop.example/thanks".into()),
            ..ProductReviewInvitation::default()
        });
        let body = serde_json::to_value(invitation).unwrap();
        assert_eq!(body["serviceReviewInvitation"]["templateId"], "t1");
        assert_eq!(body["serviceReviewInvitation"]["tags"][0], "vip");
        assert_eq!(body["productReviewInvitation"]["productSkus"][0], "SKU-1");
        assert_eq!(
            body["productReviewInvitation"]["redirectUri"],
            "https://shop.example/thanks"
        );
        assert_eq!(body["locale"], "da-DK");
    }

    #[test]
    fn every_problem_is_reported_and_none_repeats_the_email() {
        let mut invitation = valid();
        invitation.consumer_email = "ann(at)shop".into();
        invitation.reference_number = "A#1".into();
        invitation.locale = Some("english".into());
        let problems = invitation.validate().unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("consumer_email: "));
        assert!(problems.iter().all(|p| !p.contains("ann(at)shop")));
        assert!(problems[1].contains("contains `#`"));
    }

    #[test]
    fn email_and_locale_checks() {
        for good in ["a@b.co", "first.last+tag@sub.shop.example", "ø@dæ.dk"] {
            assert!(is_valid_email(good), "{good}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@@b.co", "a b@c.co", "a@b..co", "a@-b.co",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
        assert!(is_valid_locale("en-US"));
        assert_eq!(normalize_locale("en_US"), "en-US");
        assert_eq!(normalize_locale("english"), "english");
        assert!(is_valid_redirect("https://shop.example/thanks?x=1"));
        assert!(
            is_valid_redirect("http://127.0.0.1:8080/t") && is_valid_redirect("http://[::1]/t")
        );
        assert!(is_valid_redirect("http://localhost/t"));
        for bad in [
            "http://shop.example/t",
            "/thanks",
            "shop.example",
            "ftp://x.example/",
            "https://",
        ] {
            assert!(!is_valid_redirect(bad), "{bad}");
        }
        assert!(!is_valid_locale("en_US") && !is_valid_locale("EN-us") && !is_valid_locale("en"));
    }

    #[test]
    fn the_service_send_time_must_precede_the_product_send_time() {
        let mut invitation = valid();
        invitation.service_review_invitation = Some(ServiceReviewInvitation {
            preferred_send_time: Some("2026-05-02T00:00:00".into()),
            ..ServiceReviewInvitation::default()
        });
        invitation.product_review_invitation = Some(ProductReviewInvitation {
            preferred_send_time: Some("2026-05-01T00:00:00".into()),
            product_skus: vec!["S".into()],
            ..ProductReviewInvitation::default()
        });
        assert!(invitation.validate().unwrap_err()[0].starts_with("preferred_send_time"));
    }
}
