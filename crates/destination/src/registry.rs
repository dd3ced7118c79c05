//! Destinations of any kind, behind one object-safe form, and the registry
//! that reads them by their `type:`.
//!
//! A destination crate implements the typed [`Kind`] (its own request,
//! ticket and error types, no boxing per request). This module wraps any
//! `Kind` in [`Destination`] and its activations' settings in [`Delivery`],
//! and hands a run boxed rows ([`BoxRows`]) and a boxed sender
//! ([`BoxSender`]), so the engine works with every kind alike without being
//! generic over them. The binary builds the [`Registry`]: one line per kind.
//!
//! A delivery is only ever read by its own destination
//! ([`Destination::read_delivery`]), and a run's rows and sender come from
//! the same destination, so the downcasts below meet only their own types;
//! a mismatch would be a bug, and says so.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use retl_config::{Map, Node, Reader};

use crate::{
    Answer, Built, Class, Delivered, Failure, Kind, Rejected, Report, RetryPolicy, Rows, Sender,
};

/// A future that can be held across threads, boxed.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One row's request, of any destination.
pub type AnyRequest = Box<dyn Any + Send + Sync>;

/// What a sender's wait handed over (a token, a place under the rate
/// limits), of any destination.
pub type AnyTicket = Box<dyn Any + Send>;

/// A boxed destination's failure is a failure.
impl Failure for Box<dyn Failure> {
    fn class(&self) -> Class {
        (**self).class()
    }

    fn retry_after(&self) -> Option<Duration> {
        (**self).retry_after()
    }

    fn answer(&self) -> Answer {
        (**self).answer()
    }
}

/// An activation's `target:` and `mapping:`, as a destination's kind read
/// them.
trait AnyDelivery: fmt::Debug + Send + Sync {
    fn mapped_columns(&self) -> Vec<&str>;
    fn default_key(&self) -> Vec<String>;
    fn creates(&self) -> &'static str;
    fn as_any(&self) -> &dyn Any;
}

struct DeliveryOf<K: Kind>(K::Delivery);

impl<K: Kind> fmt::Debug for DeliveryOf<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<K: Kind> AnyDelivery for DeliveryOf<K> {
    fn mapped_columns(&self) -> Vec<&str> {
        K::mapped_columns(&self.0)
    }

    fn default_key(&self) -> Vec<String> {
        K::default_key(&self.0)
    }

    fn creates(&self) -> &'static str {
        K::creates(&self.0)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// What an activation sends through its destination: its `target:` and
/// `mapping:`, read by the destination's kind.
#[derive(Debug, Clone)]
pub struct Delivery(Arc<dyn AnyDelivery>);

impl Delivery {
    /// The source columns it reads, each once, in mapping order.
    pub fn mapped_columns(&self) -> Vec<&str> {
        let mut columns: Vec<&str> = Vec::new();
        for column in self.0.mapped_columns() {
            if !columns.contains(&column) {
                columns.push(column);
            }
        }
        columns
    }

    /// The primary key when the source names none.
    pub fn default_key(&self) -> Vec<String> {
        self.0.default_key()
    }

    /// What it creates per row, as a word (`email_invitation`, …).
    pub fn creates(&self) -> &'static str {
        self.0.creates()
    }

    /// Its settings as kind `K` read them, if `K` read it.
    pub fn get<K: Kind>(&self) -> Option<&K::Delivery> {
        self.0
            .as_any()
            .downcast_ref::<DeliveryOf<K>>()
            .map(|d| &d.0)
    }
}

/// A destination of any kind, as a run and `retl check` use it.
trait AnyDestination: fmt::Debug + Send + Sync {
    fn type_name(&self) -> &'static str;
    fn name(&self) -> &str;
    fn file(&self) -> &Path;
    fn limits(&self) -> retl_config::limits::Limits;
    fn request_timeout(&self) -> Duration;
    fn concurrency(&self) -> usize;
    fn retry(&self) -> RetryPolicy;
    fn dedupe(&self) -> Option<Duration>;
    fn estimate(&self, requests: u64) -> Duration;
    fn waiting(&self) -> Option<Duration>;
    fn read_delivery(
        &self,
        r: &mut Reader<'_>,
        activation: &Map<'_, '_>,
        file: &Path,
        writeback: bool,
    ) -> Option<Delivery>;
    fn check<'a>(&'a self, deliveries: &'a [&'a Delivery]) -> BoxFuture<'a, Report>;
    fn fingerprint(&self, delivery: &Delivery) -> Result<String, Foreign>;
    fn legacy_fingerprint(&self, delivery: &Delivery) -> Result<Option<String>, Foreign>;
    fn identity(&self, delivery: &Delivery) -> Result<String, Foreign>;
    fn rows(
        &self,
        delivery: &Delivery,
        schema: &Schema,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<Result<BoxRows, retl_mapping::Error>>;
    fn sender(
        &self,
        delivery: &Delivery,
        token_cache: Option<&Path>,
    ) -> Option<Result<BoxSender, Box<dyn Failure>>>;
    fn as_any(&self) -> &dyn Any;
}

impl<K: Kind> AnyDestination for K
where
    <K::Sender as Sender>::Ticket: 'static,
{
    fn type_name(&self) -> &'static str {
        K::TYPE
    }

    fn name(&self) -> &str {
        Kind::name(self)
    }

    fn file(&self) -> &Path {
        Kind::file(self)
    }

    fn limits(&self) -> retl_config::limits::Limits {
        Kind::limits(self)
    }

    fn request_timeout(&self) -> Duration {
        Kind::request_timeout(self)
    }

    fn concurrency(&self) -> usize {
        Kind::concurrency(self)
    }

    fn retry(&self) -> RetryPolicy {
        Kind::retry(self)
    }

    fn dedupe(&self) -> Option<Duration> {
        Kind::dedupe(self)
    }

    fn estimate(&self, requests: u64) -> Duration {
        Kind::estimate(self, requests)
    }

    fn waiting(&self) -> Option<Duration> {
        Kind::waiting(self)
    }

    fn read_delivery(
        &self,
        r: &mut Reader<'_>,
        activation: &Map<'_, '_>,
        file: &Path,
        writeback: bool,
    ) -> Option<Delivery> {
        Kind::read_delivery(self, r, activation, file, writeback)
            .map(|d| Delivery(Arc::new(DeliveryOf::<K>(d))))
    }

    fn check<'a>(&'a self, deliveries: &'a [&'a Delivery]) -> BoxFuture<'a, Report> {
        let mine: Vec<&K::Delivery> = deliveries.iter().filter_map(|d| d.get::<K>()).collect();
        Box::pin(async move { Kind::check(self, &mine).await })
    }

    fn fingerprint(&self, delivery: &Delivery) -> Result<String, Foreign> {
        mine::<K>(self, delivery).map(|d| Kind::fingerprint(self, d))
    }

    fn legacy_fingerprint(&self, delivery: &Delivery) -> Result<Option<String>, Foreign> {
        mine::<K>(self, delivery).map(|d| Kind::legacy_fingerprint(self, d))
    }

    fn identity(&self, delivery: &Delivery) -> Result<String, Foreign> {
        mine::<K>(self, delivery).map(|d| Kind::identity(self, d))
    }

    fn rows(
        &self,
        delivery: &Delivery,
        schema: &Schema,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<Result<BoxRows, retl_mapping::Error>> {
        let delivery = delivery.get::<K>()?;
        Some(Kind::rows(self, delivery, schema, now).map(|rows| BoxRows(Box::new(RowsOf(rows)))))
    }

    fn sender(
        &self,
        delivery: &Delivery,
        token_cache: Option<&Path>,
    ) -> Option<Result<BoxSender, Box<dyn Failure>>> {
        let delivery = delivery.get::<K>()?;
        Some(
            Kind::sender(self, delivery, token_cache)
                .map(|sender| BoxSender(Box::new(SenderOf(sender))))
                .map_err(|e| Box::new(e) as Box<dyn Failure>),
        )
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A destination: one destination file, of one of the registry's kinds.
#[derive(Debug, Clone)]
pub struct Destination(Arc<dyn AnyDestination>);

/// A delivery handed to a destination that did not read it: a bug (each
/// activation's delivery is read by its own destination).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a delivery not read by destination `{destination}` was handed to it")]
pub struct Foreign {
    /// The destination it was handed to.
    pub destination: String,
}

fn foreign(destination: &str) -> Foreign {
    Foreign {
        destination: destination.to_owned(),
    }
}

/// `delivery`'s settings as kind `K` read them, or the bug that it was not.
fn mine<'d, K: Kind>(destination: &K, delivery: &'d Delivery) -> Result<&'d K::Delivery, Foreign> {
    delivery
        .get::<K>()
        .ok_or_else(|| foreign(Kind::name(destination)))
}

impl Destination {
    /// A destination of kind `K`.
    pub fn new<K: Kind>(destination: K) -> Destination
    where
        <K::Sender as Sender>::Ticket: 'static,
    {
        Destination(Arc::new(destination))
    }

    /// Its name.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// Its `type:`.
    pub fn type_name(&self) -> &'static str {
        self.0.type_name()
    }

    /// The file it came from.
    pub fn file(&self) -> &Path {
        self.0.file()
    }

    /// Its `limits:`, for all its activations.
    pub fn limits(&self) -> retl_config::limits::Limits {
        self.0.limits()
    }

    /// How long one request to it may take.
    pub fn request_timeout(&self) -> Duration {
        self.0.request_timeout()
    }

    /// Requests in flight at once.
    pub fn concurrency(&self) -> usize {
        self.0.concurrency()
    }

    /// How failed requests are retried.
    pub fn retry(&self) -> RetryPolicy {
        self.0.retry()
    }

    /// Its `dedupe.within`, across its activations.
    pub fn dedupe(&self) -> Option<Duration> {
        self.0.dedupe()
    }

    /// How long `requests` requests take at its pacing.
    pub fn estimate(&self, requests: u64) -> Duration {
        self.0.estimate(requests)
    }

    /// How much longer its requests wait for a rate window, if they do now.
    pub fn waiting(&self) -> Option<Duration> {
        self.0.waiting()
    }

    /// Reads an activation's `target:` and `mapping:` for this destination.
    pub fn read_delivery(
        &self,
        r: &mut Reader<'_>,
        activation: &Map<'_, '_>,
        file: &Path,
        writeback: bool,
    ) -> Option<Delivery> {
        self.0.read_delivery(r, activation, file, writeback)
    }

    /// `retl check`'s healthcheck, for the activations whose deliveries are
    /// `deliveries` (those it did not read are left out).
    pub async fn check(&self, deliveries: &[&Delivery]) -> Report {
        self.0.check(deliveries).await
    }

    /// Everything besides the row that shapes `delivery`'s requests.
    pub fn fingerprint(&self, delivery: &Delivery) -> Result<String, Foreign> {
        self.0.fingerprint(delivery)
    }

    /// The fingerprint an older release made, if it differs.
    pub fn legacy_fingerprint(&self, delivery: &Delivery) -> Result<Option<String>, Foreign> {
        self.0.legacy_fingerprint(delivery)
    }

    /// Where `delivery`'s rows go (see [`Kind::identity`]).
    pub fn identity(&self, delivery: &Delivery) -> Result<String, Foreign> {
        self.0.identity(delivery)
    }

    /// The requests of one run, bound to `schema`'s columns; the inner
    /// `Err` says which mapped column does not fit, the outer a bug.
    pub fn rows(
        &self,
        delivery: &Delivery,
        schema: &Schema,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Result<BoxRows, retl_mapping::Error>, Foreign> {
        self.0
            .rows(delivery, schema, now)
            .ok_or_else(|| foreign(self.name()))
    }

    /// A sender for `delivery`'s requests; the inner `Err` is the
    /// destination's, the outer a bug.
    pub fn sender(
        &self,
        delivery: &Delivery,
        token_cache: Option<&Path>,
    ) -> Result<Result<BoxSender, Box<dyn Failure>>, Foreign> {
        self.0
            .sender(delivery, token_cache)
            .ok_or_else(|| foreign(self.name()))
    }

    /// The destination as its own kind `K`, if it is one.
    pub fn get<K: Kind>(&self) -> Option<&K> {
        self.0.as_any().downcast_ref::<K>()
    }
}

/// A run's requests, of any destination.
trait AnyRows: Send + Sync {
    fn build(&self, batch: &RecordBatch, row: usize) -> Result<Built<AnyRequest>, Rejected>;
    fn reference(&self, batch: &RecordBatch, row: usize) -> Option<String>;
    fn body(&self, request: &AnyRequest) -> serde_json::Value;
    fn recorded(&self, request: &AnyRequest) -> Option<serde_json::Value>;
    fn origins(
        &self,
        batch: &RecordBatch,
        row: usize,
        body: &serde_json::Value,
    ) -> std::collections::BTreeMap<String, String>;
}

struct RowsOf<R: Rows>(R);

/// A request of this destination's own type: built by its rows, so always.
fn own<T: 'static>(request: &AnyRequest) -> &T {
    request
        .downcast_ref::<T>()
        .expect("a request reaches only the destination whose rows built it")
}

impl<R: Rows> AnyRows for RowsOf<R> {
    fn build(&self, batch: &RecordBatch, row: usize) -> Result<Built<AnyRequest>, Rejected> {
        self.0.build(batch, row).map(|built| Built {
            request: Box::new(built.request) as AnyRequest,
            reference: built.reference,
            notes: built.notes,
            contact: built.contact,
        })
    }

    fn reference(&self, batch: &RecordBatch, row: usize) -> Option<String> {
        self.0.reference(batch, row)
    }

    fn body(&self, request: &AnyRequest) -> serde_json::Value {
        self.0.body(own::<R::Request>(request))
    }

    fn recorded(&self, request: &AnyRequest) -> Option<serde_json::Value> {
        self.0.recorded(own::<R::Request>(request))
    }

    fn origins(
        &self,
        batch: &RecordBatch,
        row: usize,
        body: &serde_json::Value,
    ) -> std::collections::BTreeMap<String, String> {
        self.0.origins(batch, row, body)
    }
}

/// A run's requests, boxed: the [`Rows`] of any destination.
pub struct BoxRows(Box<dyn AnyRows>);

impl Rows for BoxRows {
    type Request = AnyRequest;

    fn build(&self, batch: &RecordBatch, row: usize) -> Result<Built<AnyRequest>, Rejected> {
        self.0.build(batch, row)
    }

    fn reference(&self, batch: &RecordBatch, row: usize) -> Option<String> {
        self.0.reference(batch, row)
    }

    fn body(&self, request: &AnyRequest) -> serde_json::Value {
        self.0.body(request)
    }

    fn recorded(&self, request: &AnyRequest) -> Option<serde_json::Value> {
        self.0.recorded(request)
    }

    fn origins(
        &self,
        batch: &RecordBatch,
        row: usize,
        body: &serde_json::Value,
    ) -> std::collections::BTreeMap<String, String> {
        self.0.origins(batch, row, body)
    }
}

/// A destination's sender, of any destination.
trait AnySender: Send + Sync {
    fn ready(&self) -> BoxFuture<'_, Result<AnyTicket, Box<dyn Failure>>>;
    fn send<'a>(
        &'a self,
        ticket: AnyTicket,
        request: &'a AnyRequest,
    ) -> BoxFuture<'a, Result<Delivered, Box<dyn Failure>>>;
    fn pause(&self, wait: Duration);
}

struct SenderOf<S: Sender>(S);

impl<S: Sender> AnySender for SenderOf<S>
where
    S::Ticket: 'static,
{
    fn ready(&self) -> BoxFuture<'_, Result<AnyTicket, Box<dyn Failure>>> {
        Box::pin(async move {
            self.0
                .ready()
                .await
                .map(|ticket| Box::new(ticket) as AnyTicket)
                .map_err(|e| Box::new(e) as Box<dyn Failure>)
        })
    }

    fn send<'a>(
        &'a self,
        ticket: AnyTicket,
        request: &'a AnyRequest,
    ) -> BoxFuture<'a, Result<Delivered, Box<dyn Failure>>> {
        let ticket = *ticket
            .downcast::<S::Ticket>()
            .expect("a ticket reaches only the sender whose wait gave it");
        let request = own::<S::Request>(request);
        Box::pin(async move {
            self.0
                .send(ticket, request)
                .await
                .map_err(|e| Box::new(e) as Box<dyn Failure>)
        })
    }

    fn pause(&self, wait: Duration) {
        self.0.pause(wait);
    }
}

/// A destination's sender, boxed: the [`Sender`] of any destination.
pub struct BoxSender(Box<dyn AnySender>);

impl Sender for BoxSender {
    type Request = AnyRequest;
    type Ticket = AnyTicket;
    type Error = Box<dyn Failure>;

    async fn ready(&self) -> Result<AnyTicket, Box<dyn Failure>> {
        self.0.ready().await
    }

    async fn send(
        &self,
        ticket: AnyTicket,
        request: &AnyRequest,
    ) -> Result<Delivered, Box<dyn Failure>> {
        self.0.send(ticket, request).await
    }

    fn pause(&self, wait: Duration) {
        self.0.pause(wait);
    }
}

/// A kind of destination in the registry: reads destination files of its
/// `type:`, and gives its JSON Schemas.
trait AnyKind: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn read(
        &self,
        r: &mut Reader<'_>,
        doc: &Node<'_>,
        name: String,
        file: &Path,
    ) -> Option<Destination>;
    fn schemas(&self) -> [serde_json::Value; 3];
    fn observe_requests(&self, observer: crate::RequestObserver);
}

/// A kind, with what its destinations share.
struct KindOf<K: Kind>(Arc<K::Context>);

impl<K: Kind> AnyKind for KindOf<K>
where
    <K::Sender as Sender>::Ticket: 'static,
{
    fn type_name(&self) -> &'static str {
        K::TYPE
    }

    fn read(
        &self,
        r: &mut Reader<'_>,
        doc: &Node<'_>,
        name: String,
        file: &Path,
    ) -> Option<Destination> {
        K::read(r, doc, name, file, &self.0).map(Destination::new)
    }

    fn schemas(&self) -> [serde_json::Value; 3] {
        [K::schema(), K::target_schema(), K::mapping_schema()]
    }

    fn observe_requests(&self, observer: crate::RequestObserver) {
        K::observe_requests(&self.0, observer);
    }
}

/// The kinds of destination a program knows, by `type:`: the binary builds
/// it, one [`with`](Registry::with) per kind.
#[derive(Default, Clone)]
pub struct Registry {
    kinds: Vec<Arc<dyn AnyKind>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.types()).finish()
    }
}

impl Registry {
    /// No kind yet.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// With kind `K`.
    #[must_use]
    pub fn with<K: Kind>(mut self) -> Registry
    where
        <K::Sender as Sender>::Ticket: 'static,
    {
        self.kinds.push(Arc::new(KindOf::<K>(Arc::default())));
        self
    }

    /// Hands `observer` every request of every destination this registry
    /// reads (the daemon's metrics).
    pub fn observe_requests(&self, observer: &crate::RequestObserver) {
        for kind in &self.kinds {
            kind.observe_requests(observer.clone());
        }
    }

    /// The `type:` values a destination may have.
    pub fn types(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|k| k.type_name()).collect()
    }

    /// Reads a destination file whose `type:` is `kind` (one of
    /// [`types`](Self::types); `None` for another, without a problem).
    pub fn read(
        &self,
        kind: &str,
        r: &mut Reader<'_>,
        doc: &Node<'_>,
        name: String,
        file: &Path,
    ) -> Option<Destination> {
        self.kinds
            .iter()
            .find(|k| k.type_name() == kind)?
            .read(r, doc, name, file)
    }

    /// The JSON Schemas of a destination file, an activation's `target:`
    /// and its `mapping:`, one per kind.
    pub fn schemas(&self) -> [Vec<serde_json::Value>; 3] {
        let mut schemas = [Vec::new(), Vec::new(), Vec::new()];
        for kind in &self.kinds {
            let [destination, target, mapping] = kind.schemas();
            schemas[0].push(destination);
            schemas[1].push(target);
            schemas[2].push(mapping);
        }
        schemas
    }
}
