//! The emulator's own reading of Trustpilot's validation rules.
//!
//! Written apart from the client's checks on purpose; messages follow what
//! Trustpilot has been seen to answer (`'Consumer Email' is not in the correct format.`).

use serde_json::Value;

fn email_ok(s: &str) -> bool {
    let mut parts = s.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let labels: Vec<&str> = domain.split('.').collect();
    !local.is_empty()
        && !s.contains(char::is_whitespace)
        && labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty())
}

fn locale_ok(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    chars.len() == 5
        && chars[..2].iter().all(char::is_ascii_lowercase)
        && chars[2] == '-'
        && chars[3..].iter().all(char::is_ascii_uppercase)
}

fn text<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

/// The template ids of an email-invitation body that are not among
/// `templates`, as problems.
pub(crate) fn unknown_templates(body: &Value, templates: &[crate::Template]) -> Vec<String> {
    ["serviceReviewInvitation", "productReviewInvitation"]
        .iter()
        .filter_map(|part| body.get(part)?.get("templateId")?.as_str())
        .filter(|id| !templates.iter().any(|t| t.id == *id))
        .map(|id| format!("'Template Id' '{id}' does not exist for this business unit."))
        .collect()
}

/// Whether an `invitation-data/delete` body is acceptable: exactly one of
/// `customerEmails` (a non-empty list of addresses) and `deleteOlderThan`
/// (`NN/NN/NNNN NN:NN:NN`).
pub(crate) fn deletion(body: &Value) -> Result<(), String> {
    let emails = body.get("customerEmails");
    let older = body.get("deleteOlderThan");
    match (emails, older) {
        (Some(_), Some(_)) => {
            Err("Give either 'customerEmails' or 'deleteOlderThan', not both.".to_owned())
        }
        (None, None) => Err("Give 'customerEmails' or 'deleteOlderThan'.".to_owned()),
        (Some(emails), None) => match emails.as_array() {
            Some(list)
                if !list.is_empty() && list.iter().all(|e| e.as_str().is_some_and(email_ok)) =>
            {
                Ok(())
            }
            _ => Err("'customerEmails' must be a non-empty list of email addresses.".to_owned()),
        },
        (None, Some(at)) => {
            let shape = at.as_str().is_some_and(|t| {
                let b = t.as_bytes();
                b.len() == 19
                    && b.iter().enumerate().all(|(i, c)| match i {
                        2 | 5 => *c == b'/',
                        10 => *c == b' ',
                        13 | 16 => *c == b':',
                        _ => c.is_ascii_digit(),
                    })
            });
            if shape {
                Ok(())
            } else {
                Err("'deleteOlderThan' must look like 09/07/2013 13:37:00.".to_owned())
            }
        }
    }
}

/// Problems with an email-invitation body; empty when acceptable.
pub(crate) fn email_invitation(body: &Value) -> Vec<String> {
    let mut details = Vec::new();
    if !body.is_object() {
        return vec!["The request body must be a JSON object.".to_owned()];
    }
    match text(body, "consumerEmail") {
        None => details.push("'Consumer Email' is required.".to_owned()),
        Some(email) if !email_ok(email) => {
            details.push("'Consumer Email' is not in the correct format.".to_owned());
        }
        Some(_) => {}
    }
    for (key, label) in [("senderEmail", "Sender Email"), ("replyTo", "Reply To")] {
        if let Some(v) = text(body, key)
            && !email_ok(v)
        {
            details.push(format!("'{label}' is not in the correct format."));
        }
    }
    if let Some(reference) = text(body, "referenceNumber")
        && reference.contains(['#', '*', '+', '"', '%', '&'])
    {
        details.push("'Reference Number' contains characters that are not allowed.".to_owned());
    }
    if let Some(locale) = body.get("locale")
        && !locale.as_str().is_some_and(locale_ok)
    {
        details.push("'Locale' is not a valid locale.".to_owned());
    }
    if let Some(kind) = body.get("type")
        && kind.as_str() != Some("email")
    {
        details.push("'Type' must be 'email'.".to_owned());
    }
    let service = body.get("serviceReviewInvitation");
    let product = body.get("productReviewInvitation");
    if let Some(product) = product {
        let skus = product.get("productSkus");
        let products = product.get("products");
        if skus.is_some() && products.is_some() {
            details.push("Specify either 'products' or 'productSkus', not both.".to_owned());
        }
        let empty = |v: Option<&Value>| v.and_then(Value::as_array).is_none_or(Vec::is_empty);
        if empty(skus) && empty(products) {
            details
                .push("A product review invitation needs 'products' or 'productSkus'.".to_owned());
        }
    }
    let time = |v: Option<&Value>| {
        v.and_then(|b| b.get("preferredSendTime"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    if let (Some(s), Some(p)) = (time(service), time(product))
        && s >= p
    {
        details.push(
            "The service review preferred send time must be earlier than the product review one."
                .to_owned(),
        );
    }
    details
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_deletion_names_emails_or_a_date_never_both() {
        assert!(deletion(&json!({"customerEmails": ["a@b.co"]})).is_ok());
        assert!(deletion(&json!({"deleteOlderThan": "09/07/2013 13:37:00"})).is_ok());
        assert!(
            deletion(
                &json!({"customerEmails": ["a@b.co"], "deleteOlderThan": "09/07/2013 13:37:00"})
            )
            .is_err()
        );
        assert!(deletion(&json!({})).is_err());
        assert!(deletion(&json!({"customerEmails": []})).is_err());
        assert!(deletion(&json!({"customerEmails": ["nope"]})).is_err());
        assert!(deletion(&json!({"deleteOlderThan": "2013-07-09T13:37:00Z"})).is_err());
    }

    #[test]
    fn an_unknown_template_id_is_named() {
        let templates = crate::EmulatorConfig::default().templates;
        let known = json!({"serviceReviewInvitation": {"templateId": "507f191e810c19729de860ea"}});
        assert!(unknown_templates(&known, &templates).is_empty());
        let unknown = json!({"serviceReviewInvitation": {"templateId": "nope"}});
        assert_eq!(
            unknown_templates(&unknown, &templates),
            ["'Template Id' 'nope' does not exist for this business unit."]
        );
    }

    #[test]
    fn a_minimal_service_invitation_passes() {
        let body = json!({"consumerEmail": "a@b.co", "consumerName": "A", "referenceNumber": "1",
                          "serviceReviewInvitation": {}});
        assert!(email_invitation(&body).is_empty());
    }

    #[test]
    fn bad_fields_are_each_explained() {
        let body = json!({"consumerEmail": "nope", "referenceNumber": "A&B", "locale": "en_US",
                          "productReviewInvitation": {"productSkus": [], }});
        let details = email_invitation(&body);
        assert_eq!(details.len(), 4, "{details:?}");
    }
}
