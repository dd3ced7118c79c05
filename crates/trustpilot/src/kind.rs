//! Trustpilot as a kind of destination (`type: trustpilot`): what the engine
//! reads, builds, sends and checks through [`retl_destination::Kind`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use retl_config::{Map, Node, Problem, Reader};
use retl_destination::{Built, Kind, Rejected, Report, RetryPolicy, Rows};

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
    /// Where the target's template ids are written (`service`, `product`),
    /// for `retl check` to point at.
    pub template_at: Vec<(&'static str, retl_config::Location)>,
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

    fn build(&self, batch: &RecordBatch, row: usize) -> Result<Built<Request>, Rejected> {
        let built = self
            .invitations
            .build(batch, row)
            .map_err(|r| Rejected::at(retl_mapping::FieldSet::name(r.field), r.reason))?;
        built
            .body
            .validate()
            .map_err(|problems| Rejected::whole(problems.join("; ")))?;
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

    /// The body without the consumer's name and email (email invitations:
    /// `consumerName`, `consumerEmail`; links: `name`, `email`).
    fn recorded(&self, request: &Request) -> Option<serde_json::Value> {
        let mut body = request.body();
        let object = body.as_object_mut()?;
        for personal in ["consumerName", "consumerEmail", "name", "email"] {
            object.remove(personal);
        }
        Some(body)
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
    type Field = Field;
    const KEY_FIELD: Field = Field::ReferenceNumber;
    type Context = crate::Context;

    fn read(
        r: &mut Reader<'_>,
        doc: &Node<'_>,
        name: String,
        file: &Path,
        context: &std::sync::Arc<crate::Context>,
    ) -> Option<Self> {
        crate::config::read_destination(r, doc, name, file).map(|mut destination| {
            destination.context = context.clone();
            destination
        })
    }

    fn waiting(&self) -> Option<Duration> {
        self.context.rate_wait()
    }

    fn observe_requests(context: &crate::Context, observer: retl_destination::RequestObserver) {
        context.observe_requests(observer);
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
        let template_at = ["service", "product"]
            .into_iter()
            .filter_map(|part| {
                let node = retl_config::child(activation.get("target")?, &[part, "template_id"])?;
                Some((part, r.location(node)))
            })
            .collect();
        let (target, mapping) = (target?, mapping?);
        let mapped: Vec<Field> = mapping.iter().map(|(f, _)| *f).collect();
        for (path, message) in self.check_activation(&target, &mapped) {
            r.problems.push(Problem::in_file(file, &path, message));
        }
        Some(Delivery {
            target,
            mapping,
            template_at,
        })
    }

    fn schema() -> serde_json::Value {
        crate::schema::destination_schema()
    }

    fn target_schema() -> serde_json::Value {
        crate::schema::target_schema()
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

    fn dedupe(&self) -> Option<Duration> {
        self.dedupe
    }

    fn mapping(delivery: &Delivery) -> &[(Field, String)] {
        &delivery.mapping
    }

    fn creates(delivery: &Delivery) -> &'static str {
        delivery.target.kind.as_str()
    }

    /// The invitations endpoint (scheme, host, port and path; never a
    /// credential: the configuration refuses userinfo in it) and the
    /// business unit the activation's rows are invited for by default.
    fn identity(&self, delivery: &Delivery) -> String {
        let settings = self.settings_for(&delivery.target);
        format!(
            "{} business unit {}",
            self.endpoints.invitations.trim_end_matches('/'),
            settings.business_unit_id.as_deref().unwrap_or("(none)")
        )
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
    ) -> Result<InvitationRows, retl_mapping::Error> {
        let invitations = Invitations::new(
            self.settings_for(&delivery.target),
            &delivery.mapping,
            schema,
        )?
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
        // The destination's healthcheck sees what each activation sends with,
        // but for the template ids its own `target:` names: those are checked
        // below, against the templates found, and said at the activation.
        let sent_with: Vec<crate::Settings> = deliveries
            .iter()
            .map(|d| {
                let mut settings = self.settings_for(&d.target);
                for (part, _) in &d.template_at {
                    match *part {
                        "service" => settings.service.template_id = None,
                        _ => settings.product.template_id = None,
                    }
                }
                settings
            })
            .collect();
        // No token cache: a check mints a fresh token, to prove the credentials.
        let found = crate::check::check_destination(self, &sent_with, None).await;
        let mut activation_problems = Vec::new();
        for (i, delivery) in deliveries.iter().enumerate() {
            let settings = self.settings_for(&delivery.target);
            let Some(bu) = settings.business_unit_id.as_deref() else {
                continue;
            };
            let Some(unit) = found.business_units.iter().find(|u| u.id == bu) else {
                continue;
            };
            for (part, at) in &delivery.template_at {
                let id = match *part {
                    "service" => delivery.target.settings.service.template_id.as_deref(),
                    _ => delivery.target.settings.product.template_id.as_deref(),
                };
                if let Some(problem) = id.and_then(|id| unknown_template(unit, id)) {
                    activation_problems.push((
                        i,
                        format!(
                            "{}:{}:{}: target.{part}.template_id: {problem}",
                            at.file.display(),
                            at.line,
                            at.column
                        ),
                    ));
                }
            }
        }
        let mut report: Report = found.into();
        report.deliveries = activation_problems;
        report
    }
}

/// Why `id` is not a template of `unit`, with the closest one suggested
/// (or every one listed); `None` when it is one.
fn unknown_template(unit: &crate::check::BusinessUnit, id: &str) -> Option<String> {
    if unit.templates.iter().any(|t| t.id == id) {
        return None;
    }
    let names: Vec<&str> = unit.templates.iter().map(|t| t.name.as_str()).collect();
    let ids: Vec<&str> = unit.templates.iter().map(|t| t.id.as_str()).collect();
    let close = retl_config::closest(id, &ids)
        .or_else(|| retl_config::closest(id, &names))
        .and_then(|c| unit.templates.iter().find(|t| t.id == c || t.name == c));
    let hint = match close {
        Some(t) => format!("did you mean `{}` ({})?", t.id, t.name),
        None => {
            let all: Vec<String> = unit
                .templates
                .iter()
                .map(|t| format!("{} ({})", t.id, t.name))
                .collect();
            let all = if all.is_empty() {
                "none".to_owned()
            } else {
                all.join(", ")
            };
            format!("its templates: {all}")
        }
    };
    Some(format!(
        "business unit `{}` has no template `{id}`; {hint}",
        unit.id
    ))
}
