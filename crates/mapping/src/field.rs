//! The catalogue of invitation fields a source column can be mapped to.

use std::fmt;

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
    /// `serviceReviewInvitation.tags`, comma-separated in the cell.
    Tags,
    /// `productReviewInvitation.productSkus`, comma-separated in the cell.
    ProductSku,
    /// `preferredSendTime`, a timestamp normalised to UTC.
    PreferredSendTime,
}

impl Field {
    /// Every field, in catalogue order.
    pub const ALL: [Field; 11] = [
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
    ];

    /// The fields every activation must map.
    pub const REQUIRED: [Field; 3] = [
        Field::ConsumerName,
        Field::ConsumerEmail,
        Field::ReferenceNumber,
    ];

    /// The configuration name of the field (`consumer_email`, …).
    pub fn name(self) -> &'static str {
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
        }
    }

    /// Looks a field up by its configuration name.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The names of all fields, for error messages.
    pub fn names() -> Vec<&'static str> {
        Field::ALL.iter().map(|f| f.name()).collect()
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
            assert_eq!(Field::from_name(field.name()), Some(field));
        }
        assert_eq!(Field::from_name("consumerEmail"), None);
    }
}
