//! Trustpilot as a kind of destination (`type: trustpilot`): what the engine
//! reads, builds, sends and checks through [`retl_destination::Kind`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use retl_config::{Map, Node, Problem, Reader};
use retl_destination::{Built, Kind, Report, RetryPolicy, Rows};

use crate::{
    Client, Destination, Error, Field, InvitationLink, Invitations, Request, Settings, Target,
    TargetKind, TrustpilotSender,
};

/// What an activation sends through a Trustpilot destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The `target:` block.
    pub target: Target,
    /// Trustpilot field ← source column, in catalogue order.
    pub mapping: Vec<(Field, String)>,
}

/// The requests of one run: the invitation builder, what it creates, and
/// the two settings layers a preview tells values' origins apart by.
#[derive(Debug)]
pub struct InvitationRows {
    invitations: Invitations,
    kind: TargetKind,
    defaults: Settings,
    target: Settings,
}

impl Rows for InvitationRows {
    type Request = Request;

    fn build(&self, batch: &RecordBatch, row: usize) -> Result<Built<Request>, String> {
        let built = self
            .invitations
            .build(batch, row)
            .map_err(|r| r.to_string())?;
        built
            .body
            .validate()
            .map_err(|problems| problems.join("; "))?;
        let crate::Built { body, notes } = built;
        Ok(Built {
            contact: Some(body.consumer_email.clone()),
            reference: body.reference_number.clone(),
            request: match self.kind {
                TargetKind::EmailInvitation => Request::Email(Box::new(body)),
                TargetKind::InvitationLink => Request::Link(InvitationLink::for_invitation(&body)),
            },
            notes,
        })
    }

    fn reference(&self, batch: &RecordBatch, row: usize) -> Option<String> {
        self.invitations.reference(batch, row)
    }

    fn body(&self, request: &Request) -> serde_json::Value {
        request.body()
    }

    fn origins(
        &self,
        batch: &RecordBatch,
        row: usize,
        body: &serde_json::Value,
    ) -> BTreeMap<String, String> {
        self.invitations
            .origins(batch, row, body, &self.defaults, &self.target)
    }
}

impl Kind for Destination {
    const TYPE: &'static str = "trustpilot";
    type Delivery = Delivery;
    type Rows = InvitationRows;
    type Sender = TrustpilotSender;

    fn read(r: &mut Reader<'_>, doc: &Node<'_>, name: String, file: &Path) -> Option<Self> {
        crate::config::read_destination(r, doc, name, file)
    }

    fn read_delivery(
        &self,
        r: &mut Reader<'_>,
        activation: &Map<'_, '_>,
        file: &Path,
        writeback: bool,
    ) -> Option<Delivery> {
        let target = match activation.get("target") {
            Some(node) => crate::config::read_target(r, node),
            None => Some(Target::default()),
        };
        if writeback
            && target
                .as_ref()
                .is_some_and(|t| t.kind != TargetKind::InvitationLink)
        {
            r.problem(
                activation.get("writeback").unwrap_or(activation.node),
                "writeback",
                "writeback needs target.kind: invitation_link",
            );
        }
        let mapping = r
            .required(
                activation,
                "",
                "mapping",
                "consumer_name, consumer_email, reference_number, ...",
            )
            .and_then(|node| retl_destination::read_mapping(r, node, &Field::REQUIRED));
        let (target, mapping) = (target?, mapping?);
        let mapped: Vec<Field> = mapping.iter().map(|(f, _)| *f).collect();
        for (path, message) in self.check_activation(&target, &mapped) {
            r.problems.push(Problem::in_file(file, &path, message));
        }
        Some(Delivery { target, mapping })
    }

    fn schema() -> serde_json::Value {
        crate::config::destination_schema()
    }

    fn target_schema() -> serde_json::Value {
        crate::config::target_schema()
    }

    fn mapping_schema() -> serde_json::Value {
        retl_destination::mapping_schema(&Field::REQUIRED)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn file(&self) -> &Path {
        &self.file
    }

    fn limits(&self) -> retl_config::limits::Limits {
        self.limits
    }

    fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    fn retry(&self) -> RetryPolicy {
        self.retry
    }

    fn mapped_columns(delivery: &Delivery) -> Vec<&str> {
        delivery.mapping.iter().map(|(_, c)| c.as_str()).collect()
    }

    /// The reference number's column: one invitation per order.
    fn default_key(delivery: &Delivery) -> Vec<String> {
        delivery
            .mapping
            .iter()
            .filter(|(f, _)| *f == Field::ReferenceNumber)
            .map(|(_, c)| c.clone())
            .collect()
    }

    fn creates(delivery: &Delivery) -> &'static str {
        delivery.target.kind.as_str()
    }

    fn fingerprint(&self, delivery: &Delivery) -> String {
        let settings = self.settings_for(&delivery.target);
        crate::request_fingerprint(&settings, delivery.target.kind, &delivery.mapping)
    }

    /// Releases before 0.2 fingerprinted the `Debug` text of the settings,
    /// the target kind and the mapping; frozen here only to recognise the
    /// rows they rejected.
    fn legacy_fingerprint(&self, delivery: &Delivery) -> Option<String> {
        let settings = self.settings_for(&delivery.target);
        Some(format!(
            "{settings:?} {:?} {:?}",
            delivery.target.kind, delivery.mapping
        ))
    }

    fn rows(
        &self,
        delivery: &Delivery,
        schema: &Schema,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<InvitationRows, String> {
        let invitations = Invitations::new(
            self.settings_for(&delivery.target),
            &delivery.mapping,
            schema,
        )
        .map_err(|e| e.to_string())?
        .at(now);
        Ok(InvitationRows {
            invitations,
            kind: delivery.target.kind,
            defaults: self.defaults.clone(),
            target: delivery.target.settings.clone(),
        })
    }

    fn sender(
        &self,
        delivery: &Delivery,
        token_cache: Option<&Path>,
    ) -> Result<TrustpilotSender, Error> {
        let settings = self.settings_for(&delivery.target);
        Ok(TrustpilotSender {
            client: Client::new(self.client_config(token_cache))?,
            business_unit: settings.business_unit_id.unwrap_or_default(),
        })
    }

    fn estimate(&self, requests: u64) -> Duration {
        crate::estimate(&self.rate_limits, requests)
    }

    async fn check(&self, deliveries: &[&Delivery]) -> Report {
        let targets: Vec<&Target> = deliveries.iter().map(|d| &d.target).collect();
        // No token cache: a check mints a fresh token, to prove the credentials.
        crate::check::check_destination(self, &targets, None)
            .await
            .into()
    }
}
