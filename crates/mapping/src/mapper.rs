//! Applying the precedence rules to one row.

use std::fmt;

use arrow_array::RecordBatch;
use arrow_schema::Schema;

use crate::value::{cell_text, is_supported, parse_send_time};
use crate::{Error, Field, InvitationType, Result, Settings};

/// The service review part of an invitation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceBlock {
    /// `templateId`.
    pub template_id: Option<String>,
    /// `redirectUri`.
    pub redirect_uri: Option<String>,
    /// `tags` (empty: omitted).
    pub tags: Vec<String>,
    /// `preferredSendTime`, UTC `YYYY-MM-DDTHH:MM:SS`.
    pub preferred_send_time: Option<String>,
}

/// The product review part of an invitation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProductBlock {
    /// `templateId`.
    pub template_id: Option<String>,
    /// `redirectUri`.
    pub redirect_uri: Option<String>,
    /// `productSkus` (never empty).
    pub skus: Vec<String>,
    /// `preferredSendTime`, UTC `YYYY-MM-DDTHH:MM:SS`.
    pub preferred_send_time: Option<String>,
}

/// One row, resolved into the values of one email invitation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Invitation {
    /// `referenceNumber`.
    pub reference_number: String,
    /// `consumerName`.
    pub consumer_name: String,
    /// `consumerEmail`.
    pub consumer_email: String,
    /// `locale`.
    pub locale: Option<String>,
    /// `senderName`.
    pub sender_name: Option<String>,
    /// `senderEmail`.
    pub sender_email: Option<String>,
    /// `replyTo`.
    pub reply_to: Option<String>,
    /// `locationId`.
    pub location_id: Option<String>,
    /// Present for service and both.
    pub service: Option<ServiceBlock>,
    /// Present for product and both.
    pub product: Option<ProductBlock>,
}

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

/// Applies one activation's mapping and settings to rows of one source schema.
#[derive(Debug, Clone)]
pub struct Mapper {
    settings: Settings,
    /// `send_delay` counts from here (the run's start).
    now: chrono::DateTime<chrono::Utc>,
    invitation_type: InvitationType,
    /// Per [`Field`] (in `Field::ALL` order): the mapped column's index and name.
    columns: Vec<Option<(usize, String)>>,
}

/// Trustpilot's `preferredSendTime` form (UTC).
const SEND_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

fn one_minute_later(time: &str) -> String {
    chrono::NaiveDateTime::parse_from_str(time, SEND_TIME_FORMAT).map_or_else(
        |_| time.to_owned(),
        |t| {
            (t + chrono::Duration::minutes(1))
                .format(SEND_TIME_FORMAT)
                .to_string()
        },
    )
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Mapper {
    /// Builds a mapper for `schema`; fails if a mapped column is missing or of an unusable type.
    ///
    /// `settings` are the merged destination defaults and activation target.
    pub fn new(settings: Settings, mapping: &[(Field, String)], schema: &Schema) -> Result<Self> {
        let mut columns = vec![None; Field::ALL.len()];
        for (field, column) in mapping {
            let Some((index, schema_field)) = schema.column_with_name(column) else {
                return Err(Error::ColumnMissing {
                    field: *field,
                    column: column.clone(),
                    available: schema.fields().iter().map(|f| f.name().clone()).collect(),
                });
            };
            if !is_supported(schema_field.data_type()) {
                return Err(Error::UnsupportedType {
                    field: *field,
                    column: column.clone(),
                    data_type: schema_field.data_type().clone(),
                });
            }
            columns[*field as usize] = Some((index, column.clone()));
        }
        Ok(Mapper {
            now: chrono::Utc::now(),
            invitation_type: settings.invitation_type.unwrap_or_default(),
            settings,
            columns,
        })
    }

    /// Counts `send_delay` from `now` instead of the moment the mapper was built.
    #[must_use]
    pub fn at(mut self, now: chrono::DateTime<chrono::Utc>) -> Self {
        self.now = now;
        self
    }

    /// The invitation type every row of this activation gets.
    pub fn invitation_type(&self) -> InvitationType {
        self.invitation_type
    }

    /// The row's value for `field`: `None` when unmapped, NULL or blank.
    fn cell(
        &self,
        batch: &RecordBatch,
        row: usize,
        field: Field,
    ) -> Result<Option<String>, Rejection> {
        let Some((index, column)) = &self.columns[field as usize] else {
            return Ok(None);
        };
        let text = cell_text(batch.column(*index).as_ref(), row).map_err(|e| Rejection {
            field,
            reason: format!("column `{column}`: {e}"),
        })?;
        Ok(text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()))
    }

    fn required(&self, batch: &RecordBatch, row: usize, field: Field) -> Result<String, Rejection> {
        self.cell(batch, row, field)?.ok_or_else(|| Rejection {
            field,
            reason: match &self.columns[field as usize] {
                Some((_, column)) => format!("missing (column `{column}` is NULL or empty)"),
                None => "missing (not mapped)".to_owned(),
            },
        })
    }

    /// The reference number of a row, if it has one (for run logs of rejected rows).
    pub fn reference(&self, batch: &RecordBatch, row: usize) -> Option<String> {
        self.cell(batch, row, Field::ReferenceNumber).ok().flatten()
    }

    /// Maps one row: row values win over `target`, which wins over `defaults`.
    pub fn map_row(&self, batch: &RecordBatch, row: usize) -> Result<Invitation, Rejection> {
        let s = &self.settings;
        let send_time = match self.cell(batch, row, Field::PreferredSendTime)? {
            Some(text) => Some(parse_send_time(&text).map_err(|reason| Rejection {
                field: Field::PreferredSendTime,
                reason,
            })?),
            None => s.send_delay.and_then(|delay| {
                let at = self.now + chrono::Duration::from_std(delay).ok()?;
                Some(at.format(SEND_TIME_FORMAT).to_string())
            }),
        };
        let service = if self.invitation_type.has_service() {
            let tags = match self.cell(batch, row, Field::Tags)? {
                Some(text) => split_list(&text),
                None => s.service.tags.clone().unwrap_or_default(),
            };
            Some(ServiceBlock {
                template_id: s.service.template_id.clone(),
                redirect_uri: s.service.redirect_uri.clone(),
                tags,
                preferred_send_time: send_time.clone(),
            })
        } else {
            None
        };
        let product = if self.invitation_type.has_product() {
            let skus = match self.cell(batch, row, Field::ProductSku)? {
                Some(text) => split_list(&text),
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
            Some(ProductBlock {
                template_id: s.product.template_id.clone(),
                redirect_uri: s.product.redirect_uri.clone(),
                skus,
                // Trustpilot requires the service send time to precede the product
                // one: with both blocks, the product invitation follows a minute later.
                preferred_send_time: match (&service, send_time) {
                    (None, time) => time,
                    (Some(_), Some(time)) => Some(one_minute_later(&time)),
                    (Some(_), None) => None,
                },
            })
        } else {
            None
        };
        Ok(Invitation {
            reference_number: self.required(batch, row, Field::ReferenceNumber)?,
            consumer_name: self.required(batch, row, Field::ConsumerName)?,
            consumer_email: self.required(batch, row, Field::ConsumerEmail)?,
            locale: self
                .cell(batch, row, Field::Locale)?
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
            service,
            product,
        })
    }
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
        let mapper = Mapper::new(settings(), &mapping(), &batch.schema()).unwrap();
        let first = mapper.map_row(&batch, 0).unwrap();
        assert_eq!(first.reference_number, "1");
        assert_eq!(first.locale.as_deref(), Some("da-DK"));
        assert_eq!(first.product.unwrap().skus, vec!["A-1", "B-2"]);
        assert_eq!(first.service.unwrap().template_id.as_deref(), Some("tpl-s"));

        let second = mapper.map_row(&batch, 1).unwrap();
        assert_eq!(second.locale.as_deref(), Some("en-US"));
        assert_eq!(second.product.unwrap().skus, vec!["DEFAULT-SKU"]);
    }

    #[test]
    fn a_null_required_column_rejects_the_row_naming_the_column() {
        let batch = batch();
        let mapper = Mapper::new(settings(), &mapping(), &batch.schema()).unwrap();
        let rejection = mapper.map_row(&batch, 2).unwrap_err();
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
        let mapper = Mapper::new(settings, &mapping(), &batch.schema()).unwrap();
        assert!(mapper.map_row(&batch, 0).is_ok());
        assert_eq!(
            mapper.map_row(&batch, 1).unwrap_err().field,
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
        let mapper = Mapper::new(settings, &mapping(), &batch.schema())
            .unwrap()
            .at(now);
        let invitation = mapper.map_row(&batch, 0).unwrap();
        assert_eq!(
            invitation.service.unwrap().preferred_send_time.as_deref(),
            Some("2026-05-04T10:00:00")
        );
        assert_eq!(
            invitation.product.unwrap().preferred_send_time.as_deref(),
            Some("2026-05-04T10:01:00")
        );
    }

    #[test]
    fn service_only_invitations_have_no_product_block() {
        let batch = batch();
        let mut settings = settings();
        settings.invitation_type = None;
        let mapper = Mapper::new(settings, &mapping(), &batch.schema()).unwrap();
        let invitation = mapper.map_row(&batch, 1).unwrap();
        assert!(invitation.service.is_some());
        assert!(invitation.product.is_none());
    }

    #[test]
    fn a_missing_column_lists_the_available_ones() {
        let batch = batch();
        let mut mapping = mapping();
        mapping.push((Field::Tags, "tag_list".into()));
        let err = Mapper::new(settings(), &mapping, &batch.schema()).unwrap_err();
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
        let mapper = Mapper::new(
            Settings::default(),
            &[(Field::ReferenceNumber, "blob".into())],
            &batch.schema(),
        )
        .unwrap();
        let err = mapper.map_row(&batch, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "reference_number: column `blob`: the bytes are not UTF-8 text"
        );
        // Row 0 maps its reference, then stops at the unmapped name.
        assert_eq!(
            mapper.map_row(&batch, 0).unwrap_err().field,
            Field::ConsumerName
        );
    }
}
