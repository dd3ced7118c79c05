//! A destination that lives in memory, for the engine's own tests: proof
//! that a run needs nothing of a destination but its [`Kind`], and that
//! adding one is its code and one line in [`destinations!`](super).
//!
//! `type: memory` keeps what it is sent in a process-wide list, by
//! destination name ([`sent`]); `refuse:` lists the references it answers
//! as a row's fault (`rejected`), `failing:` those it cannot take now (a
//! transient failure: `failed`, tried again later), `lost:` those whose
//! request times out after it left (`uncertain`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use retl_config::{Map, Node, Reader};
use retl_destination::{
    Answer, Built, Class, Delivered, Failure, Kind, Rejected, Report, RetryPolicy, Rows, Sender,
};
use retl_mapping::{FieldSet, cell_text};
use serde_json::{Value, json};

/// What every memory destination was sent, by destination name.
static SENT: Mutex<BTreeMap<String, Vec<Value>>> = Mutex::new(BTreeMap::new());

/// The requests destination `name` was sent, in order.
pub(crate) fn sent(name: &str) -> Vec<Value> {
    SENT.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(name)
        .cloned()
        .unwrap_or_default()
}

/// The fields a memory destination's mapping may bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `reference`: the row's reference (required; the default key).
    Reference,
    /// `email`: must hold an `@`.
    Email,
}

impl FieldSet for Field {
    const ALL: &'static [Field] = &[Field::Reference, Field::Email];

    fn name(self) -> &'static str {
        match self {
            Field::Reference => "reference",
            Field::Email => "email",
        }
    }
}

/// A `type: memory` destination file.
#[derive(Debug, Clone)]
pub struct Memory {
    name: String,
    file: PathBuf,
    /// References answered as the row's fault.
    refuse: Vec<String>,
    /// References whose request times out after it left.
    lost: Vec<String>,
    /// References it cannot take now (a transient failure).
    failing: Vec<String>,
}

/// An activation's `mapping:` for a memory destination.
#[derive(Debug, Clone)]
pub struct Delivery {
    mapping: Vec<(Field, String)>,
}

/// The mapping bound to a source's columns.
pub struct Bound {
    columns: Vec<(Field, String, usize)>,
}

impl Bound {
    fn cell(&self, batch: &RecordBatch, row: usize, field: Field) -> Option<String> {
        let (_, _, index) = self.columns.iter().find(|(f, _, _)| *f == field)?;
        cell_text(batch.column(*index).as_ref(), row)
            .ok()
            .flatten()
            .map(std::borrow::Cow::into_owned)
    }
}

impl Rows for Bound {
    type Request = Value;

    fn build(&self, batch: &RecordBatch, row: usize) -> Result<Built<Value>, Rejected> {
        let reference = self
            .cell(batch, row, Field::Reference)
            .ok_or_else(|| Rejected::at("reference", "missing"))?;
        let email = self.cell(batch, row, Field::Email).unwrap_or_default();
        if !email.contains('@') {
            return Err(Rejected::at(
                "email",
                format!("`{email}` is not an email address"),
            ));
        }
        Ok(Built {
            contact: Some(email.clone()),
            request: json!({"reference": reference, "email": email}),
            reference,
            notes: Vec::new(),
        })
    }

    fn reference(&self, batch: &RecordBatch, row: usize) -> Option<String> {
        self.cell(batch, row, Field::Reference)
    }

    fn body(&self, request: &Value) -> Value {
        request.clone()
    }

    fn origins(&self, _: &RecordBatch, _: usize, _: &Value) -> BTreeMap<String, String> {
        self.columns
            .iter()
            .map(|(f, column, _)| (f.name().to_owned(), format!("row:{column}")))
            .collect()
    }
}

/// A failed request to a memory destination.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    class: Class,
    message: String,
}

impl Failure for Refused {
    fn class(&self) -> Class {
        self.class
    }

    fn retry_after(&self) -> Option<Duration> {
        None
    }

    fn answer(&self) -> Answer {
        Answer::default()
    }
}

/// Sends to the process-wide list.
pub struct MemorySender {
    destination: Memory,
}

impl Sender for MemorySender {
    type Request = Value;
    type Ticket = ();
    type Error = Refused;

    async fn ready(&self) -> Result<(), Refused> {
        Ok(())
    }

    async fn send(&self, (): (), request: &Value) -> Result<Delivered, Refused> {
        let reference = request["reference"].as_str().unwrap_or_default().to_owned();
        let refused = |class, message: &str| Refused {
            class,
            message: format!("{message}: {reference}"),
        };
        if self.destination.refuse.contains(&reference) {
            return Err(refused(Class::Rejected, "refused"));
        }
        if self.destination.failing.contains(&reference) {
            return Err(refused(Class::Transient, "not now"));
        }
        let mut sent = SENT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sent.entry(self.destination.name.clone())
            .or_default()
            .push(request.clone());
        if self.destination.lost.contains(&reference) {
            return Err(refused(Class::Uncertain, "no answer"));
        }
        Ok(Delivered {
            external_id: Some(format!("mem-{reference}")),
            ..Delivered::default()
        })
    }

    fn pause(&self, _: Duration) {}
}

retl_config::block! {
    /// A `type: memory` destination file.
    static FILE = "a test destination that keeps what it is sent", required ["type"] {
        "name" => retl_config::schema::string("its name"),
        "type" => json!({"const": "memory"}),
        "refuse" => retl_config::schema::strings("references it rejects"),
        "lost" => retl_config::schema::strings("references whose answer is lost"),
        "failing" => retl_config::schema::strings("references it fails transiently"),
    }
}

impl Kind for Memory {
    const TYPE: &'static str = "memory";
    type Delivery = Delivery;
    type Rows = Bound;
    type Sender = MemorySender;
    type Field = Field;
    const KEY_FIELD: Field = Field::Reference;
    type Context = ();

    fn read(
        r: &mut Reader<'_>,
        doc: &Node<'_>,
        name: String,
        file: &Path,
        _: &std::sync::Arc<()>,
    ) -> Option<Self> {
        let map = r.block(doc, "", &FILE)?;
        map.read_elsewhere(&["name", "type"]);
        let mut list = |key: &str| {
            map.get(key)
                .and_then(|node| r.strings(node, key))
                .unwrap_or_default()
        };
        Some(Memory {
            name,
            file: file.to_owned(),
            refuse: list("refuse"),
            lost: list("lost"),
            failing: list("failing"),
        })
    }

    fn read_delivery(
        &self,
        r: &mut Reader<'_>,
        activation: &Map<'_, '_>,
        _: &Path,
        _: bool,
    ) -> Option<Delivery> {
        let node = r.required(activation, "", "mapping", "reference, email")?;
        let mapping = retl_destination::read_mapping(r, node, &[Field::Reference])?;
        Some(Delivery { mapping })
    }

    fn schema() -> Value {
        FILE.schema()
    }

    fn target_schema() -> Value {
        json!({"type": "object"})
    }

    fn mapping_schema() -> Value {
        retl_destination::mapping_schema(&[Field::Reference])
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn file(&self) -> &Path {
        &self.file
    }

    fn limits(&self) -> retl_config::limits::Limits {
        retl_config::limits::Limits::default()
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }

    fn concurrency(&self) -> usize {
        2
    }

    fn retry(&self) -> RetryPolicy {
        RetryPolicy::default()
    }

    fn mapping(delivery: &Delivery) -> &[(Field, String)] {
        &delivery.mapping
    }

    fn creates(_: &Delivery) -> &'static str {
        "record"
    }

    /// The destination's name: each memory destination is a place of its own.
    fn identity(&self, _: &Delivery) -> String {
        format!("memory {}", self.name)
    }

    fn fingerprint(&self, delivery: &Delivery) -> String {
        use std::fmt::Write as _;
        let mut text = "memory 1".to_owned();
        for (field, column) in &delivery.mapping {
            let _ = write!(text, "\n{}={column}", field.name());
        }
        text
    }

    fn rows(
        &self,
        delivery: &Delivery,
        schema: &Schema,
        _: chrono::DateTime<chrono::Utc>,
    ) -> Result<Bound, retl_mapping::Error> {
        let columns = delivery
            .mapping
            .iter()
            .map(|(field, column)| {
                schema
                    .index_of(column)
                    .map(|index| (*field, column.clone(), index))
                    .map_err(|_| retl_mapping::Error::ColumnMissing {
                        field: field.name(),
                        column: column.clone(),
                        available: schema.fields().iter().map(|f| f.name().clone()).collect(),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Bound { columns })
    }

    fn sender(&self, _: &Delivery, _: Option<&Path>) -> Result<MemorySender, Refused> {
        Ok(MemorySender {
            destination: self.clone(),
        })
    }

    fn estimate(&self, _: u64) -> Duration {
        Duration::ZERO
    }

    async fn check(&self, deliveries: &[&Delivery]) -> Report {
        Report {
            lines: vec![format!(
                "{} activation(s), kept in memory",
                deliveries.len()
            )],
            ..Report::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use retl_state::{RowOutcome, State};
    use sqlx::ConnectOptions as _;

    use crate::config::Project;

    /// A warehouse table of four customers, a `type: memory` destination
    /// that refuses one and loses the answer of another, and an activation.
    async fn project(dir: &std::path::Path, destination: &str) -> Project {
        let warehouse = format!("sqlite://{}", dir.join("w.db").display());
        let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(&warehouse)
            .unwrap()
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT);
             INSERT INTO customers VALUES
               (1, 'a@x.example'), (2, 'not-an-email'), (3, 'c@x.example'), (4, 'd@x.example');",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let config = dir.join("config");
        std::fs::create_dir_all(config.join("destinations")).unwrap();
        std::fs::create_dir_all(config.join("activations")).unwrap();
        std::fs::write(
            config.join("destinations/memory.yaml"),
            format!("name: {destination}\ntype: memory\nrefuse: ['3']\nlost: ['4']\n"),
        )
        .unwrap();
        std::fs::write(
            config.join("activations/customers.yaml"),
            format!(
                "source:\n  connection: {warehouse}\n  table: customers\ndestination: {destination}\nfirst_run: send_all\nmapping:\n  reference: id\n  email: email\n"
            ),
        )
        .unwrap();
        Project::load(&config, &crate::destinations::test_registry()).expect("the project loads")
    }

    #[tokio::test]
    async fn a_run_goes_through_a_destination_the_run_does_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let project = project(dir.path(), "memory-run").await;
        let state = State::open(&format!(
            "sqlite://{}",
            dir.path().join("state.db").display()
        ))
        .await
        .unwrap();
        let activation = &project.activations["customers"];
        let destination = &project.destinations["memory-run"];
        assert_eq!(
            activation.primary_key,
            ["id"],
            "the default key is the destination's"
        );

        let first = crate::run(&state, activation, destination).await.unwrap();
        assert!(first.failure.is_none(), "{:?}", first.failure);
        let c = first.summary.counts;
        assert_eq!((c.read, c.new, c.sent), (4, 4, 1));
        assert_eq!((c.rejected, c.uncertain), (2, 1), "{c:?}");
        let rows = state.run_rows(&first.summary.run_id).await.unwrap();
        let outcome = |key: &str| {
            let row = rows.iter().find(|r| r.key == key).expect("a row per key");
            (row.outcome, row.external_id.clone(), row.reason.clone())
        };
        assert_eq!(
            outcome("1"),
            (RowOutcome::Sent, Some("mem-1".to_owned()), None)
        );
        let (rejected, _, reason) = outcome("2");
        assert_eq!(rejected, RowOutcome::Rejected);
        assert!(
            reason
                .unwrap()
                .contains("`not-an-email` is not an email address")
        );
        assert_eq!(
            outcome("3").0,
            RowOutcome::Rejected,
            "the destination blamed the row"
        );
        assert_eq!(outcome("4").0, RowOutcome::Uncertain, "it may have arrived");
        let bodies = super::sent("memory-run");
        assert_eq!(
            bodies.len(),
            2,
            "1 was sent, 4 left without an answer: {bodies:?}"
        );
        // Two at a time: in either order.
        let mut emails: Vec<&str> = bodies.iter().filter_map(|b| b["email"].as_str()).collect();
        emails.sort_unstable();
        assert_eq!(emails, ["a@x.example", "d@x.example"]);

        let second = crate::run(&state, activation, destination).await.unwrap();
        let c = second.summary.counts;
        assert_eq!((c.read, c.new, c.sent), (4, 0, 0), "{c:?}");
        assert_eq!(super::sent("memory-run").len(), 2, "nothing is sent twice");
    }

    #[tokio::test]
    async fn check_schema_and_preview_reach_the_destination_through_its_kind() {
        let dir = tempfile::tempdir().unwrap();
        let project = project(dir.path(), "memory-preview").await;
        let activation = &project.activations["customers"];
        let destination = &project.destinations["memory-preview"];
        let check = crate::check_destination(destination, &[activation]).await;
        assert_eq!(check.kind, "memory");
        assert_eq!(check.report.lines, ["1 activation(s), kept in memory"]);
        let found = crate::check_activation(None, activation, destination).await;
        assert!(found.problems.is_empty(), "{:?}", found.problems);

        let state = State::open(&format!(
            "sqlite://{}",
            dir.path().join("state.db").display()
        ))
        .await
        .unwrap();
        let preview = crate::preview(
            &state,
            activation,
            destination,
            &crate::RunOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            preview.counts.sent, 3,
            "the refusal and the lost answer are the destination's"
        );
        assert_eq!(preview.invitations[0].body["reference"], "1");
        assert_eq!(preview.invitations[0].origins["email"], "row:email");
        assert_eq!(preview.rejections.len(), 1);
        assert!(
            super::sent("memory-preview").is_empty(),
            "a preview sends nothing"
        );

        let schema = crate::config::schema::schema(
            crate::config::schema::SchemaKind::Destination,
            &crate::destinations::test_registry(),
        );
        assert!(schema.to_string().contains("\"const\":\"memory\""));
    }

    #[tokio::test]
    async fn a_promised_run_that_cannot_take_the_lease_is_recorded_saying_why() {
        let dir = tempfile::tempdir().unwrap();
        let project = project(dir.path(), "memory-promised").await;
        let state = State::open(&format!(
            "sqlite://{}",
            dir.path().join("state.db").display()
        ))
        .await
        .unwrap();
        let activation = &project.activations["customers"];
        let destination = &project.destinations["memory-promised"];
        let other = state
            .acquire_lease("customers", "elsewhere", std::time::Duration::from_mins(1))
            .await
            .unwrap();
        let options = crate::RunOptions {
            run_id: Some("promised-1".to_owned()),
            ..crate::RunOptions::default()
        };
        let refused = crate::run_with(&state, activation, destination, &options).await;
        assert!(refused.is_err());
        let recorded = state.run("promised-1").await.unwrap().expect("recorded");
        assert_eq!(recorded.status, retl_state::RunStatus::Failed);
        assert!(
            recorded.error.as_deref().unwrap().contains("did not start"),
            "{recorded:?}"
        );
        assert!(super::sent("memory-promised").is_empty());
        state.release_lease(&other).await.unwrap();
    }
}
