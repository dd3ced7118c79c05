//! Reads a warehouse table or query as a bounded stream of Arrow record batches.
//!
//! [`Source::open`] connects, works out the Arrow schema of the model before
//! any row is read (so a missing column or a type retl cannot read fails the
//! run up front, naming the column), then streams rows in batches of
//! `batch_size`. At most two batches wait in the channel between the reader and
//! the run, so memory stays flat however large the table is. Dropping the
//! [`Source`] cancels the read.
//!
//! A table model reads only the columns the activation needs, each name quoted
//! for the dialect; a query model runs the user's SQL as written and picks the
//! needed columns from its result by name.
//!
//! Connection URLs can hold passwords: no error or log line of this crate
//! prints one.

mod error;
mod sqlite;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use error::{Error, Result};

/// What to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Model {
    /// A table, optionally schema-qualified (`analytics.orders`).
    Table(String),
    /// A `SELECT` statement, run as written.
    Query(String),
}

/// Everything needed to open a source.
#[derive(Clone)]
pub struct SourceSpec {
    /// The connection URL (`sqlite://path/to/file.db`); may hold a password.
    pub connection: String,
    /// The table or query.
    pub model: Model,
    /// The columns the activation reads, in the order the batches will hold them.
    pub columns: Vec<String>,
    /// Rows per batch.
    pub batch_size: usize,
}

impl std::fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceSpec")
            .field("connection", &redact_url(&self.connection))
            .field("model", &self.model)
            .field("columns", &self.columns)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

/// The URL with any password replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// The database behind a connection URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// `sqlite://` or `sqlite:`.
    Sqlite,
}

impl Driver {
    /// Chooses the driver by the URL's scheme.
    pub fn for_url(url: &str) -> Result<Self> {
        let scheme = url
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Ok(Driver::Sqlite),
            _ => Err(Error::UnsupportedScheme { scheme }),
        }
    }
}

/// An open source: its schema, and a stream of batches.
#[derive(Debug)]
pub struct Source {
    schema: SchemaRef,
    batches: mpsc::Receiver<Result<RecordBatch>>,
    reader: JoinHandle<()>,
}

impl Source {
    /// Connects, checks the model's columns and types, and starts reading.
    pub async fn open(spec: &SourceSpec) -> Result<Source> {
        if spec.batch_size == 0 {
            return Err(Error::InvalidBatchSize);
        }
        match Driver::for_url(&spec.connection)? {
            Driver::Sqlite => sqlite::open(spec).await,
        }
    }

    fn start(
        schema: SchemaRef,
        read: impl FnOnce(mpsc::Sender<Result<RecordBatch>>) -> JoinHandle<()>,
    ) -> Source {
        let (tx, rx) = mpsc::channel(2);
        Source {
            schema,
            batches: rx,
            reader: read(tx),
        }
    }

    /// The Arrow schema of every batch: the requested columns, in order.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The next batch; `None` at the end of the model.
    pub async fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
        self.batches.recv().await
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://etl:s3cret@db.example:5432/wh"),
            "postgres://etl:***@db.example:5432/wh"
        );
        assert_eq!(
            redact_url("sqlite://.retl/state.db"),
            "sqlite://.retl/state.db"
        );
    }

    #[test]
    fn unknown_schemes_are_named_in_the_error() {
        let err = Driver::for_url("oracle://x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported connection scheme `oracle`; supported: sqlite"
        );
    }
}
