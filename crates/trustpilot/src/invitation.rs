//! A row, mapped into the one invitation type: the request body itself.
//!
//! Each value follows the precedence of `retl-mapping`: the row's mapped
//! column when it holds a value, else the activation's `target`, else the
//! destination's `defaults`. The result is the [`EmailInvitation`] that is
//! sent (or turned into an [`InvitationLink`](crate::InvitationLink)); there
//! is no intermediate type to keep in step with it.
//!
//! Every field's precedence is tested
//! beside the builder that applies it.
//!
//! [`Invitations::origins`] tells, for a preview, which of those layers each
//! value came from; it lives here because it reads the same bindings. Half
//! of the file's length is its tests.

use std::fmt;

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use chrono::{DateTime, Utc};
use retl_mapping::{Bindings, parse_time};

use crate::{
    EmailInvitation, Field, InvitationType, ProductReviewInvitation, ServiceReviewInvitation,
    Settings, TagsMode, normalize_locale,
};

/// Why a row cannot become an invitation. The row is recorded as `rejected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The field at fault.
    pub field: Field,
    /// What is wrong, naming the column (never the value of a personal field).
    pub reason: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// A row's request body, and what the run log should say of how it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The body.
    pub body: EmailInvitation,
    /// Notes for the row's run log (a send time in the past left out, say).
    pub notes: Vec<String>,
}

/// Builds the invitations of one activation from rows of one source schema.
#[derive(Debug, Clone)]
pub struct Invitations {
    settings: Settings,
    /// `send_delay` counts from here (the run's start).
    now: DateTime<Utc>,
    invitation_type: InvitationType,
    bindings: Bindings<Field>,
}

/// Trustpilot's `preferredSendTime` form (UTC, no zone).
const SEND_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

fn send_time(at: DateTime<Utc>) -> String {
    at.format(SEND_TIME_FORMAT).to_string()
}

impl Invitations {
    /// Binds `mapping` to `schema`; fails if a mapped column is missing or of
    /// an unusable type. `settings` are the destination defaults with the
    /// activation target laid over them.
    pub fn new(
        settings: Settings,
        mapping: &[(Field, String)],
        schema: &Schema,
    ) -> retl_mapping::Result<Self> {
        Ok(Invitations {
            bindings: Bindings::bind(mapping, schema)?,
            now: Utc::now(),
            invitation_type: settings.invitation_type.unwrap_or_default(),
            settings,
        })
    }

    /// Counts `send_delay` from `now` instead of the moment this was built.
    #[must_use]
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }

    /// The row's value for `field`: `None` when unmapped, NULL or blank.
    fn cell(
        &self,
        batch: &RecordBatch,
        row: usize,
        field: Field,
    ) -> Result<Option<String>, Rejection> {
        self.bindings
            .text(batch, row, field)
            .map_err(|e| Rejection {
                field,
                reason: format!("column `{}`: {}", e.column, e.error),
            })
    }

    /// The row's list for a list field ([`retl_mapping::Bindings::list`]):
    /// a JSON column's array as it is, other text split on commas.
    fn list(
        &self,
        batch: &RecordBatch,
        row: usize,
        field: Field,
    ) -> Result<Option<Vec<String>>, Rejection> {
        self.bindings
            .list(batch, row, field)
            .map_err(|e| Rejection {
                field,
                reason: format!("column `{}`: {}", e.column, e.error),
            })
    }

    fn required(&self, batch: &RecordBatch, row: usize, field: Field) -> Result<String, Rejection> {
        self.cell(batch, row, field)?.ok_or_else(|| Rejection {
            field,
            reason: match self.bindings.column(field) {
                Some(column) => format!("missing (column `{column}` is NULL or empty)"),
                None => "missing (not mapped)".to_owned(),
            },
        })
    }

    /// The reference number of a row, if it has one (for run logs of rejected rows).
    pub fn reference(&self, batch: &RecordBatch, row: usize) -> Option<String> {
        self.cell(batch, row, Field::ReferenceNumber).ok().flatten()
    }

    /// Where each value of `body` (built from this row) came from, by its
    /// JSON path: `row:COLUMN` (the row's mapped column), `target` (the
    /// activation's `target:`), `destination` (the destination's
    /// `defaults:`), or `retl` (a built-in default, such as the invitation
    /// type `service`). `defaults` and `target` are the two layers this
    /// builder's settings were laid from. Only paths present in `body` appear.
    pub fn origins(
        &self,
        batch: &RecordBatch,
        row: usize,
        body: &serde_json::Value,
        defaults: &Settings,
        target: &Settings,
    ) -> std::collections::BTreeMap<String, String> {
        type Set = fn(&Settings) -> bool;
        let table: [(&str, Option<Field>, Set); 15] = [
            ("consumerEmail", Some(Field::ConsumerEmail), |_| false),
            ("consumerName", Some(Field::ConsumerName), |_| false),
            ("referenceNumber", Some(Field::ReferenceNumber), |_| false),
            ("locale", Some(Field::Locale), |s| s.locale.is_some()),
            ("senderEmail", Some(Field::SenderEmail), |s| {
                s.sender_email.is_some()
            }),
            ("senderName", Some(Field::SenderName), |s| {
                s.sender_name.is_some()
            }),
            ("replyTo", Some(Field::ReplyTo), |s| s.reply_to.is_some()),
            ("locationId", Some(Field::LocationId), |_| false),
            ("type", None, |s| s.invitation_type.is_some()),
            (
                "serviceReviewInvitation/templateId",
                Some(Field::ServiceTemplateId),
                |s| s.service.template_id.is_some(),
            ),
            (
                "serviceReviewInvitation/redirectUri",
                Some(Field::ServiceRedirectUri),
                |s| s.service.redirect_uri.is_some(),
            ),
            ("serviceReviewInvitation/tags", Some(Field::Tags), |s| {
                s.service.tags.is_some()
            }),
            (
                "productReviewInvitation/templateId",
                Some(Field::ProductTemplateId),
                |s| s.product.template_id.is_some(),
            ),
            (
                "productReviewInvitation/redirectUri",
                Some(Field::ProductRedirectUri),
                |s| s.product.redirect_uri.is_some(),
            ),
            (
                "productReviewInvitation/productSkus",
                Some(Field::ProductSku),
                |s| s.product.skus.is_some(),
            ),
        ];
        let send_time: [(&str, Option<Field>, Set); 2] = [
            (
                "serviceReviewInvitation/preferredSendTime",
                Some(Field::PreferredSendTime),
                |s| s.send_delay.is_some(),
            ),
            (
                "productReviewInvitation/preferredSendTime",
                Some(Field::PreferredSendTime),
                |s| s.send_delay.is_some(),
            ),
        ];
        let mut out = std::collections::BTreeMap::new();
        for (path, field, set) in table.into_iter().chain(send_time) {
            let present = body
                .pointer(&format!("/{path}"))
                .is_some_and(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()));
            if !present {
                continue;
            }
            let from_row = field.and_then(|field| {
                let column = self.bindings.column(field)?;
                matches!(self.cell(batch, row, field), Ok(Some(_))).then(|| format!("row:{column}"))
            });
            let origin = from_row.unwrap_or_else(|| {
                if set(target) {
                    "target".to_owned()
                } else if set(defaults) {
                    "destination".to_owned()
                } else {
                    "retl".to_owned()
                }
            });
            out.insert(path.to_owned(), origin);
        }
        out
    }

    /// When the row's invitation goes out (`preferredSendTime`): the row's
    /// time, else the settings' delay from now; a time already past is left
    /// out (the invitation goes at once), with a note.
    fn send_at(
        &self,
        batch: &RecordBatch,
        row: usize,
        notes: &mut Vec<String>,
    ) -> Result<Option<String>, Rejection> {
        Ok(match self.cell(batch, row, Field::PreferredSendTime)? {
            Some(text) => {
                let at = parse_time(&text).map_err(|reason| Rejection {
                    field: Field::PreferredSendTime,
                    reason,
                })?;
                if at < self.now {
                    notes.push(format!(
                        "preferred_send_time {} is in the past: left out, the invitation goes out at once",
                        send_time(at)
                    ));
                    None
                } else {
                    Some(send_time(at))
                }
            }
            None => self.settings.send_delay.and_then(|delay| {
                Some(send_time(
                    self.now + chrono::Duration::from_std(delay).ok()?,
                ))
            }),
        })
    }

    /// The request body for one row: row values win over `target`, which wins
    /// over `defaults`. Not yet validated against the API's rules
    /// ([`EmailInvitation::validate`]).
    pub fn build(&self, batch: &RecordBatch, row: usize) -> Result<Built, Rejection> {
        let s = &self.settings;
        let mut notes = Vec::new();
        let send_at = self.send_at(batch, row, &mut notes)?;
        let service = if self.invitation_type.has_service() {
            let defaults = s.service.tags.clone().unwrap_or_default();
            let tags = match (self.list(batch, row, Field::Tags)?, s.tags_mode) {
                (Some(row_tags), Some(TagsMode::Replace)) => row_tags,
                (Some(row_tags), _) => {
                    let mut tags = defaults;
                    for tag in row_tags {
                        if !tags.contains(&tag) {
                            tags.push(tag);
                        }
                    }
                    tags
                }
                (None, _) => defaults,
            };
            Some(ServiceReviewInvitation {
                template_id: self
                    .cell(batch, row, Field::ServiceTemplateId)?
                    .or_else(|| s.service.template_id.clone()),
                redirect_uri: self
                    .cell(batch, row, Field::ServiceRedirectUri)?
                    .or_else(|| s.service.redirect_uri.clone()),
                tags,
                preferred_send_time: send_at.clone(),
            })
        } else {
            None
        };
        let product = if self.invitation_type.has_product() {
            let skus = match self.list(batch, row, Field::ProductSku)? {
                Some(skus) => skus,
                None if s.product.per_row == Some(true) => {
                    return Err(Rejection {
                        field: Field::ProductSku,
                        reason: "missing: target.product.per_row needs a SKU on every row"
                            .to_owned(),
                    });
                }
                None => s.product.skus.clone().unwrap_or_default(),
            };
            if skus.is_empty() {
                return Err(Rejection {
                    field: Field::ProductSku,
                    reason: "no product SKU for a product review invitation".to_owned(),
                });
            }
            Some(ProductReviewInvitation {
                template_id: self
                    .cell(batch, row, Field::ProductTemplateId)?
                    .or_else(|| s.product.template_id.clone()),
                redirect_uri: self
                    .cell(batch, row, Field::ProductRedirectUri)?
                    .or_else(|| s.product.redirect_uri.clone()),
                product_skus: skus,
                // Trustpilot requires the service send time to precede the product
                // one: with both blocks, the product invitation follows a minute later.
                preferred_send_time: match (&service, &send_at) {
                    (None, time) => time.clone(),
                    (Some(_), Some(time)) => Some(one_minute_later(time)),
                    (Some(_), None) => None,
                },
            })
        } else {
            None
        };
        let body = EmailInvitation {
            reference_number: self.required(batch, row, Field::ReferenceNumber)?,
            consumer_name: self.required(batch, row, Field::ConsumerName)?,
            consumer_email: self.required(batch, row, Field::ConsumerEmail)?,
            locale: self
                .cell(batch, row, Field::Locale)?
                .map(|l| normalize_locale(&l))
                .or_else(|| s.locale.clone()),
            sender_name: self
                .cell(batch, row, Field::SenderName)?
                .or_else(|| s.sender_name.clone()),
            sender_email: self
                .cell(batch, row, Field::SenderEmail)?
                .or_else(|| s.sender_email.clone()),
            reply_to: self
                .cell(batch, row, Field::ReplyTo)?
                .or_else(|| s.reply_to.clone()),
            location_id: self.cell(batch, row, Field::LocationId)?,
            kind: "email",
            service_review_invitation: service,
            product_review_invitation: product,
        };
        Ok(Built { body, notes })
    }
}

fn one_minute_later(time: &str) -> String {
    chrono::NaiveDateTime::parse_from_str(time, SEND_TIME_FORMAT).map_or_else(
        |_| time.to_owned(),
        |t| send_time((t + chrono::Duration::minutes(1)).and_utc()),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, BinaryArray, Int64Array, StringArray};
    use arrow_schema::{DataType, Field as ArrowField};

    use super::*;
    use crate::{ProductSettings, ServiceSettings};

    fn batch() -> RecordBatch {
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("order_id", Arc::new(Int64Array::from(vec![1, 2, 3]))),
            (
                "name",
                Arc::new(StringArray::from(vec![Some("Ann"), Some("Bob"), None])),
            ),
            (
                "email",
                Arc::new(StringArray::from(vec![
                    "ann@x.example",
                    "bob@x.example",
                    "c@x.example",
                ])),
            ),
            (
                "locale",
                Arc::new(StringArray::from(vec![Some("da-DK"), None, Some(" ")])),
            ),
            (
                "sku",
                Arc::new(StringArray::from(vec![Some("A-1, B-2"), None, None])),
            ),
        ];
        RecordBatch::try_from_iter(columns).unwrap()
    }

    fn mapping() -> Vec<(Field, String)> {
        vec![
            (Field::ReferenceNumber, "order_id".into()),
            (Field::ConsumerName, "name".into()),
            (Field::ConsumerEmail, "email".into()),
            (Field::Locale, "locale".into()),
            (Field::ProductSku, "sku".into()),
        ]
    }

    fn settings() -> Settings {
        Settings {
            locale: Some("en-US".into()),
            invitation_type: Some(InvitationType::Both),
            service: ServiceSettings {
                template_id: Some("tpl-s".into()),
                ..ServiceSettings::default()
            },
            product: ProductSettings {
                skus: Some(vec!["DEFAULT-SKU".into()]),
                ..ProductSettings::default()
            },
            ..Settings::default()
        }
    }

    #[test]
    fn row_values_win_and_blank_cells_fall_back_to_settings() {
        let batch = batch();
        let mapper = Invitations::new(settings(), &mapping(), &batch.schema()).unwrap();
        let first = mapper.build(&batch, 0).unwrap().body;
        assert_eq!(first.reference_number, "1");
        assert_eq!(first.locale.as_deref(), Some("da-DK"));
        assert_eq!(
            first.product_review_invitation.unwrap().product_skus,
            vec!["A-1", "B-2"]
        );
        assert_eq!(
            first
                .service_review_invitation
                .unwrap()
                .template_id
                .as_deref(),
            Some("tpl-s")
        );

        let second = mapper.build(&batch, 1).unwrap().body;
        assert_eq!(second.locale.as_deref(), Some("en-US"));
        assert_eq!(
            second.product_review_invitation.unwrap().product_skus,
            vec!["DEFAULT-SKU"]
        );
    }

    #[test]
    fn a_null_required_column_rejects_the_row_naming_the_column() {
        let batch = batch();
        let mapper = Invitations::new(settings(), &mapping(), &batch.schema()).unwrap();
        let rejection = mapper.build(&batch, 2).unwrap_err();
        assert_eq!(rejection.field, Field::ConsumerName);
        assert_eq!(
            rejection.to_string(),
            "consumer_name: missing (column `name` is NULL or empty)"
        );
    }

    #[test]
    fn per_row_skus_reject_rows_without_one() {
        let batch = batch();
        let mut settings = settings();
        settings.product.per_row = Some(true);
        let mapper = Invitations::new(settings, &mapping(), &batch.schema()).unwrap();
        assert!(mapper.build(&batch, 0).is_ok());
        assert_eq!(
            mapper.build(&batch, 1).unwrap_err().field,
            Field::ProductSku
        );
    }

    #[test]
    fn a_send_delay_counts_from_the_run_and_the_product_follows_the_service() {
        let batch = batch();
        let mut settings = settings();
        settings.send_delay = Some(std::time::Duration::from_hours(72));
        let now = chrono::DateTime::parse_from_rfc3339("2026-05-01T10:00:00Z")
            .unwrap()
            .to_utc();
        let mapper = Invitations::new(settings, &mapping(), &batch.schema())
            .unwrap()
            .at(now);
        let invitation = mapper.build(&batch, 0).unwrap().body;
        assert_eq!(
            invitation
                .service_review_invitation
                .unwrap()
                .preferred_send_time
                .as_deref(),
            Some("2026-05-04T10:00:00")
        );
        assert_eq!(
            invitation
                .product_review_invitation
                .unwrap()
                .preferred_send_time
                .as_deref(),
            Some("2026-05-04T10:01:00")
        );
    }

    #[test]
    fn service_only_invitations_have_no_product_block() {
        let batch = batch();
        let mut settings = settings();
        settings.invitation_type = None;
        let mapper = Invitations::new(settings, &mapping(), &batch.schema()).unwrap();
        let invitation = mapper.build(&batch, 1).unwrap().body;
        assert!(invitation.service_review_invitation.is_some());
        assert!(invitation.product_review_invitation.is_none());
    }

    #[test]
    fn a_missing_column_lists_the_available_ones() {
        let batch = batch();
        let mut mapping = mapping();
        mapping.push((Field::Tags, "tag_list".into()));
        let err = Invitations::new(settings(), &mapping, &batch.schema()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mapping.tags: column `tag_list` does not exist in the source; available columns: order_id, name, email, locale, sku"
        );
    }

    #[test]
    fn binary_cells_map_when_they_hold_text_and_reject_the_row_otherwise() {
        let schema = Schema::new(vec![ArrowField::new("blob", DataType::Binary, true)]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(BinaryArray::from(vec![
                b"Ann".as_ref(),
                &[0xff, 0xfe],
            ]))],
        )
        .unwrap();
        let mapper = Invitations::new(
            Settings::default(),
            &[(Field::ReferenceNumber, "blob".into())],
            &batch.schema(),
        )
        .unwrap();
        let err = mapper.build(&batch, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "reference_number: column `blob`: the bytes are not UTF-8 text"
        );
        // Row 0 maps its reference, then stops at the unmapped name.
        assert_eq!(
            mapper.build(&batch, 0).unwrap_err().field,
            Field::ConsumerName
        );
    }

    #[test]
    #[allow(clippy::too_many_lines)] // one table of cases, each read against the others
    fn per_row_templates_and_redirects_fill_in_and_win_like_every_field() {
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("order_id", Arc::new(Int64Array::from(vec![1, 2]))),
            ("name", Arc::new(StringArray::from(vec!["Ann", "Bob"]))),
            (
                "email",
                Arc::new(StringArray::from(vec!["a@x.example", "b@x.example"])),
            ),
            (
                "tpl",
                Arc::new(StringArray::from(vec![Some("tpl-row"), None])),
            ),
            (
                "thanks",
                Arc::new(StringArray::from(vec![
                    Some("https://shop.example/row"),
                    None,
                ])),
            ),
            (
                "ptpl",
                Arc::new(StringArray::from(vec![Some("ptpl-row"), None])),
            ),
            (
                "locale",
                Arc::new(StringArray::from(vec![Some("en_US"), Some("da-DK")])),
            ),
            (
                "tags",
                Arc::new(StringArray::from(vec![Some("vip, summer"), None])),
            ),
            ("sku", Arc::new(StringArray::from(vec!["S-1", "S-2"]))),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let mapping = vec![
            (Field::ReferenceNumber, "order_id".into()),
            (Field::ConsumerName, "name".into()),
            (Field::ConsumerEmail, "email".into()),
            (Field::ServiceTemplateId, "tpl".into()),
            (Field::ServiceRedirectUri, "thanks".into()),
            (Field::ProductTemplateId, "ptpl".into()),
            (Field::Locale, "locale".into()),
            (Field::Tags, "tags".into()),
            (Field::ProductSku, "sku".into()),
        ];
        let mut settings = settings();
        settings.service.tags = Some(vec!["retl".into(), "vip".into()]);
        settings.service.redirect_uri = Some("https://shop.example/default".into());
        settings.product.template_id = Some("ptpl-default".into());
        let build = |settings: Settings, row| {
            Invitations::new(settings, &mapping, &batch.schema())
                .unwrap()
                .build(&batch, row)
                .unwrap()
                .body
        };
        let first = build(settings.clone(), 0);
        let service = first.service_review_invitation.unwrap();
        assert_eq!(service.template_id.as_deref(), Some("tpl-row"));
        assert_eq!(
            service.redirect_uri.as_deref(),
            Some("https://shop.example/row")
        );
        assert_eq!(
            service.tags,
            vec!["retl", "vip", "summer"],
            "appended, once each"
        );
        assert_eq!(
            first
                .product_review_invitation
                .unwrap()
                .template_id
                .as_deref(),
            Some("ptpl-row")
        );
        assert_eq!(
            first.locale.as_deref(),
            Some("en-US"),
            "en_US is normalised"
        );

        let second = build(settings.clone(), 1);
        let service = second.service_review_invitation.unwrap();
        assert_eq!(
            service.template_id.as_deref(),
            Some("tpl-s"),
            "empty cell: the setting"
        );
        assert_eq!(
            service.redirect_uri.as_deref(),
            Some("https://shop.example/default")
        );
        assert_eq!(service.tags, vec!["retl", "vip"]);
        assert_eq!(
            second
                .product_review_invitation
                .unwrap()
                .template_id
                .as_deref(),
            Some("ptpl-default")
        );

        settings.tags_mode = Some(TagsMode::Replace);
        let replaced = build(settings, 0).service_review_invitation.unwrap();
        assert_eq!(replaced.tags, vec!["vip", "summer"]);
    }

    #[test]
    fn a_row_redirect_that_is_not_https_fails_validation_before_any_request() {
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("order_id", Arc::new(Int64Array::from(vec![1]))),
            ("name", Arc::new(StringArray::from(vec!["Ann"]))),
            ("email", Arc::new(StringArray::from(vec!["a@x.example"]))),
            (
                "thanks",
                Arc::new(StringArray::from(vec!["http://shop.example/t"])),
            ),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let mapping = vec![
            (Field::ReferenceNumber, "order_id".into()),
            (Field::ConsumerName, "name".into()),
            (Field::ConsumerEmail, "email".into()),
            (Field::ServiceRedirectUri, "thanks".into()),
        ];
        let body = Invitations::new(Settings::default(), &mapping, &batch.schema())
            .unwrap()
            .build(&batch, 0)
            .unwrap()
            .body;
        assert_eq!(
            body.validate().unwrap_err(),
            vec![
                "service_redirect_uri: `http://shop.example/t` is not an absolute https URL (http only to this machine)"
            ]
        );
    }
}
