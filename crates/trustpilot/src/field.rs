//! The catalogue of invitation fields a source column can be mapped to.

use std::fmt;

use retl_mapping::FieldSet;

/// A Trustpilot invitation field that a source column can feed (`mapping:` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// `consumerName` (required by retl).
    ConsumerName,
    /// `consumerEmail` (required).
    ConsumerEmail,
    /// `referenceNumber` (required by retl; the usual identity of a row).
    ReferenceNumber,
    /// `replyTo`.
    ReplyTo,
    /// `locale`, `xx-YY`.
    Locale,
    /// `senderName`.
    SenderName,
    /// `senderEmail`.
    SenderEmail,
    /// `locationId`.
    LocationId,
    /// `serviceReviewInvitation.tags`: comma-separated in a text cell, or a
    /// JSON array of strings in a semi-structured one.
    Tags,
    /// `productReviewInvitation.productSkus`: comma-separated in a text
    /// cell, or a JSON array of strings in a semi-structured one.
    ProductSku,
    /// `preferredSendTime`, a timestamp normalised to UTC.
    PreferredSendTime,
    /// `serviceReviewInvitation.templateId`.
    ServiceTemplateId,
    /// `serviceReviewInvitation.redirectUri` (absolute https).
    ServiceRedirectUri,
    /// `productReviewInvitation.templateId`.
    ProductTemplateId,
    /// `productReviewInvitation.redirectUri` (absolute https).
    ProductRedirectUri,
}

impl Field {
    /// The fields every activation must map.
    pub const REQUIRED: [Field; 3] = [
        Field::ConsumerName,
        Field::ConsumerEmail,
        Field::ReferenceNumber,
    ];
}

impl FieldSet for Field {
    const ALL: &'static [Field] = &[
        Field::ConsumerName,
        Field::ConsumerEmail,
        Field::ReferenceNumber,
        Field::ReplyTo,
        Field::Locale,
        Field::SenderName,
        Field::SenderEmail,
        Field::LocationId,
        Field::Tags,
        Field::ProductSku,
        Field::PreferredSendTime,
        Field::ServiceTemplateId,
        Field::ServiceRedirectUri,
        Field::ProductTemplateId,
        Field::ProductRedirectUri,
    ];

    fn name(self) -> &'static str {
        match self {
            Field::ConsumerName => "consumer_name",
            Field::ConsumerEmail => "consumer_email",
            Field::ReferenceNumber => "reference_number",
            Field::ReplyTo => "reply_to",
            Field::Locale => "locale",
            Field::SenderName => "sender_name",
            Field::SenderEmail => "sender_email",
            Field::LocationId => "location_id",
            Field::Tags => "tags",
            Field::ProductSku => "product_sku",
            Field::PreferredSendTime => "preferred_send_time",
            Field::ServiceTemplateId => "service_template_id",
            Field::ServiceRedirectUri => "service_redirect_uri",
            Field::ProductTemplateId => "product_template_id",
            Field::ProductRedirectUri => "product_redirect_uri",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_round_trips_through_its_name() {
        for field in Field::ALL {
            assert_eq!(Field::from_name(field.name()), Some(*field));
        }
        assert_eq!(Field::from_name("consumerEmail"), None);
    }
}
