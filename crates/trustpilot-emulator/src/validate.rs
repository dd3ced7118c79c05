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
