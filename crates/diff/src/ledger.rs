//! The ledger: what each activation has already sent, in the state database.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use crate::db::now_text;
use crate::{Db, Error, Result, RowHash, Tx, on};

/// Keys per lookup statement (well under SQLite's limit of 32,766 bound parameters).
const LOOKUP_CHUNK: usize = 2_000;
/// Rows per multi-row baseline insert (6 parameters each on SQLite).
const INSERT_CHUNK: usize = 1_000;

/// Where a key stands in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Marked just before its request was sent; the outcome is not known yet.
    InFlight,
    /// Trustpilot accepted the invitation.
    Sent,
    /// Bad data (ours or Trustpilot's verdict): retried only when the content changes.
    Rejected,
    /// A transient failure: retried by a later run.
    Failed,
    /// The request may have reached Trustpilot: never resent automatically.
    Uncertain,
    /// Present before the activation's first run (`first_run: skip_existing`):
    /// never sent, and never to be.
    Baseline,
}

impl Status {
    /// The value stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InFlight => "in_flight",
            Status::Sent => "sent",
            Status::Rejected => "rejected",
            Status::Failed => "failed",
            Status::Uncertain => "uncertain",
            Status::Baseline => "baseline",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "in_flight" => Status::InFlight,
            "sent" => Status::Sent,
            "rejected" => Status::Rejected,
            "failed" => Status::Failed,
            "uncertain" => Status::Uncertain,
            "baseline" => Status::Baseline,
            other => return Err(Error::Corrupt(format!("unknown status `{other}`"))),
        })
    }
}

/// What the ledger knows of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The content hash last recorded for the key.
    pub content: RowHash,
    /// Its status.
    pub status: Status,
    /// How many requests were made for it so far.
    pub attempts: u32,
}

/// The final outcome of one row of a run, to be recorded for its key.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    /// The row's key hash.
    pub key: RowHash,
    /// The row's content hash.
    pub content: RowHash,
    /// `Sent`, `Rejected`, `Failed` or `Uncertain`.
    pub status: Status,
    /// The row's reference number, if it has one.
    pub reference: Option<&'a str>,
    /// Why it was not sent.
    pub error: Option<&'a str>,
}

/// The ledger of every activation, in the state database.
#[derive(Debug, Clone)]
pub struct Ledger {
    db: Db,
}

fn to_hash(bytes: &[u8]) -> Result<RowHash> {
    bytes
        .try_into()
        .map_err(|_| Error::Corrupt(format!("a hash of {} bytes", bytes.len())))
}

const MARK_IN_FLIGHT: &str = "
    INSERT INTO ledger (activation, key_hash, content_hash, status, attempts, row_key, reference,
                        first_run, last_run, updated_at)
    VALUES ($1, $2, $3, 'in_flight', 1, $4, $5, $6, $6, $7)
    ON CONFLICT (activation, key_hash) DO UPDATE SET
       content_hash = excluded.content_hash, status = 'in_flight',
       attempts = ledger.attempts + 1, row_key = excluded.row_key,
       reference = excluded.reference,
       last_run = excluded.last_run, updated_at = excluded.updated_at";

const RECORD: &str = "
    INSERT INTO ledger (activation, key_hash, content_hash, status, attempts, reference,
                        first_run, last_run, last_error, updated_at)
    VALUES ($1, $2, $3, $4, 0, $5, $6, $6, $7, $8)
    ON CONFLICT (activation, key_hash) DO UPDATE SET
       content_hash = excluded.content_hash, status = excluded.status,
       reference = excluded.reference, last_run = excluded.last_run,
       last_error = excluded.last_error, updated_at = excluded.updated_at";

impl Ledger {
    /// The state database the ledger lives in.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Opens the ledger in `db`, creating its table if needed.
    pub async fn open(db: Db) -> Result<Self> {
        let mut tx = db.begin().await?;
        tx.serialize_schema_changes().await?;
        Self::create_in(&mut tx).await?;
        tx.commit().await?;
        Ok(Ledger { db })
    }

    /// Wraps `db`, whose ledger table [`create_in`](Self::create_in) made.
    pub fn new(db: Db) -> Self {
        Ledger { db }
    }

    /// Creates the ledger table if needed, inside the caller's transaction.
    pub async fn create_in(tx: &mut Tx) -> Result<()> {
        let postgres = matches!(tx, Tx::Postgres(_));
        let (bytes, rowid) = if postgres {
            ("BYTEA", "")
        } else {
            ("BLOB", " WITHOUT ROWID")
        };
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS ledger (
                activation   TEXT NOT NULL,
                key_hash     {bytes} NOT NULL,
                content_hash {bytes} NOT NULL,
                status       TEXT NOT NULL,
                attempts     BIGINT NOT NULL DEFAULT 0,
                row_key      TEXT,
                reference    TEXT,
                first_run    TEXT NOT NULL,
                last_run     TEXT NOT NULL,
                last_error   TEXT,
                updated_at   TEXT NOT NULL,
                PRIMARY KEY (activation, key_hash)
            ){rowid}"
        );
        on!(tx.executor(), |c| sqlx::query(&ddl)
            .execute(c)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// What the ledger says of the rows `(key, content)` that need a decision:
    /// a key it does not hold maps to `None`, a key it holds in any state but
    /// "sent (or baseline) with this very content" maps to its entry. Keys left
    /// out of the map are already sent, unchanged: the common case of an
    /// incremental run costs one query per chunk and no row back.
    pub async fn lookup_changes(
        &self,
        activation: &str,
        rows: &[(RowHash, RowHash)],
    ) -> Result<HashMap<RowHash, Option<Entry>>> {
        type Found = (Vec<u8>, Option<Vec<u8>>, Option<String>, Option<i64>);
        // Probing in key order walks the ledger's B-tree forwards, page after page.
        let mut rows = rows.to_vec();
        rows.sort_unstable_by_key(|(key, _)| *key);
        let mut found = HashMap::new();
        for chunk in rows.chunks(LOOKUP_CHUNK / 2) {
            let hits: Vec<Found> = match &self.db {
                Db::Sqlite(pool) => {
                    // Anonymous `?` parameters: SQLite looks named ones (`$N`) up
                    // by a linear scan, which makes a long list quadratic.
                    let mut sql = String::from("WITH q(k, c) AS (VALUES ");
                    sql.push_str(&vec!["(?, ?)"; chunk.len()].join(", "));
                    sql.push_str(
                        ") SELECT q.k, l.content_hash, l.status, l.attempts FROM q
                         LEFT JOIN ledger l ON l.activation = ? AND l.key_hash = q.k
                         WHERE l.key_hash IS NULL
                            OR NOT (l.status IN ('sent', 'baseline') AND l.content_hash = q.c)",
                    );
                    let mut query = sqlx::query_as::<_, Found>(&sql);
                    for (key, content) in chunk {
                        query = query.bind(key.as_slice()).bind(content.as_slice());
                    }
                    query.bind(activation).fetch_all(pool).await?
                }
                Db::Postgres(pool) => {
                    let keys: Vec<Vec<u8>> = chunk.iter().map(|(k, _)| k.to_vec()).collect();
                    let contents: Vec<Vec<u8>> = chunk.iter().map(|(_, c)| c.to_vec()).collect();
                    sqlx::query_as::<_, Found>(
                        "SELECT q.k, l.content_hash, l.status, l.attempts
                         FROM unnest($2::bytea[], $3::bytea[]) AS q(k, c)
                         LEFT JOIN ledger l ON l.activation = $1 AND l.key_hash = q.k
                         WHERE l.key_hash IS NULL
                            OR NOT (l.status IN ('sent', 'baseline') AND l.content_hash = q.c)",
                    )
                    .bind(activation)
                    .bind(keys)
                    .bind(contents)
                    .fetch_all(pool)
                    .await?
                }
            };
            for (key, content, status, attempts) in hits {
                let entry = match (content, status) {
                    (Some(content), Some(status)) => Some(Entry {
                        content: to_hash(&content)?,
                        status: status.parse()?,
                        attempts: u32::try_from(attempts.unwrap_or_default()).unwrap_or(u32::MAX),
                    }),
                    _ => None,
                };
                found.insert(to_hash(&key)?, entry);
            }
        }
        Ok(found)
    }

    /// Durably marks a key in flight, just before its request is sent.
    pub async fn mark_in_flight(
        &self,
        activation: &str,
        run_id: &str,
        key: &RowHash,
        content: &RowHash,
        row_key: &str,
        reference: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        Self::mark_in_flight_in(
            &mut tx, activation, run_id, key, content, row_key, reference,
        )
        .await?;
        tx.commit().await
    }

    /// [`mark_in_flight`](Self::mark_in_flight) inside the caller's transaction.
    pub async fn mark_in_flight_in(
        tx: &mut Tx,
        activation: &str,
        run_id: &str,
        key: &RowHash,
        content: &RowHash,
        row_key: &str,
        reference: Option<&str>,
    ) -> Result<()> {
        let now = now_text();
        on!(tx.executor(), |c| sqlx::query(MARK_IN_FLIGHT)
            .bind(activation)
            .bind(key.as_slice())
            .bind(content.as_slice())
            .bind(row_key)
            .bind(reference)
            .bind(run_id)
            .bind(&now)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Records final outcomes, all in one transaction.
    pub async fn record(
        &self,
        activation: &str,
        run_id: &str,
        outcomes: &[Outcome<'_>],
    ) -> Result<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin().await?;
        Self::record_in(&mut tx, activation, run_id, outcomes).await?;
        tx.commit().await
    }

    /// Records final outcomes inside the caller's transaction, so that the
    /// ledger and the run log change together.
    pub async fn record_in(
        tx: &mut Tx,
        activation: &str,
        run_id: &str,
        outcomes: &[Outcome<'_>],
    ) -> Result<()> {
        let now = now_text();
        for outcome in outcomes {
            on!(tx.executor(), |c| sqlx::query(RECORD)
                .bind(activation)
                .bind(outcome.key.as_slice())
                .bind(outcome.content.as_slice())
                .bind(outcome.status.as_str())
                .bind(outcome.reference)
                .bind(run_id)
                .bind(outcome.error)
                .bind(&now)
                .execute(c)
                .await
                .map(|r| r.rows_affected()))?;
        }
        Ok(())
    }

    /// Records keys as `baseline` (present before the activation's first run),
    /// leaving any key the ledger already holds as it is.
    pub async fn record_baseline_in(
        tx: &mut Tx,
        activation: &str,
        run_id: &str,
        rows: &[(RowHash, RowHash)],
    ) -> Result<()> {
        let now = now_text();
        // Inserting in key order fills the ledger's B-tree page after page.
        let mut rows = rows.to_vec();
        rows.sort_unstable_by_key(|(key, _)| *key);
        for chunk in rows.chunks(INSERT_CHUNK) {
            // One statement per chunk: a round trip per row would dominate.
            match tx {
                Tx::Sqlite(tx) => {
                    // Anonymous `?` parameters (see `lookup_changes`).
                    let mut sql = String::from(
                        "INSERT INTO ledger (activation, key_hash, content_hash, status, attempts,
                                             first_run, last_run, updated_at) VALUES ",
                    );
                    sql.push_str(
                        &vec!["(?, ?, ?, 'baseline', 0, ?, ?, ?)"; chunk.len()].join(", "),
                    );
                    sql.push_str(" ON CONFLICT (activation, key_hash) DO NOTHING");
                    let mut query = sqlx::query(&sql);
                    for (key, content) in chunk {
                        query = query
                            .bind(activation)
                            .bind(key.as_slice())
                            .bind(content.as_slice())
                            .bind(run_id)
                            .bind(run_id)
                            .bind(&now);
                    }
                    query.execute(&mut **tx).await?;
                }
                Tx::Postgres(tx) => {
                    let keys: Vec<Vec<u8>> = chunk.iter().map(|(k, _)| k.to_vec()).collect();
                    let contents: Vec<Vec<u8>> = chunk.iter().map(|(_, c)| c.to_vec()).collect();
                    sqlx::query(
                        "INSERT INTO ledger (activation, key_hash, content_hash, status, attempts,
                                             first_run, last_run, updated_at)
                         SELECT $1, k, c, 'baseline', 0, $2, $2, $3
                         FROM unnest($4::bytea[], $5::bytea[]) AS q(k, c)
                         ON CONFLICT (activation, key_hash) DO NOTHING",
                    )
                    .bind(activation)
                    .bind(run_id)
                    .bind(&now)
                    .bind(keys)
                    .bind(contents)
                    .execute(&mut **tx)
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Undoes [`mark_in_flight`](Self::mark_in_flight) for a request known not to have
    /// been accepted (the run stopped before or because of it): the key returns to
    /// `previous`, or leaves the ledger if it had no entry.
    pub async fn restore(
        &self,
        activation: &str,
        key: &RowHash,
        previous: Option<&Entry>,
    ) -> Result<()> {
        match previous {
            None => {
                on!(self.db.executor(), |c| sqlx::query(
                    "DELETE FROM ledger WHERE activation = $1 AND key_hash = $2"
                )
                .bind(activation)
                .bind(key.as_slice())
                .execute(c)
                .await
                .map(|r| r.rows_affected()))?;
            }
            Some(entry) => {
                on!(self.db.executor(), |c| sqlx::query(
                    "UPDATE ledger SET status = $3, content_hash = $4, attempts = $5
                     WHERE activation = $1 AND key_hash = $2"
                )
                .bind(activation)
                .bind(key.as_slice())
                .bind(entry.status.as_str())
                .bind(entry.content.as_slice())
                .bind(i64::from(entry.attempts))
                .execute(c)
                .await
                .map(|r| r.rows_affected()))?;
            }
        }
        Ok(())
    }

    /// Turns the keys a crashed run left in flight into `uncertain`, returning
    /// their row keys and reference numbers (in no particular order).
    pub async fn recover_in_flight(
        &self,
        activation: &str,
    ) -> Result<Vec<(Option<String>, Option<String>)>> {
        let now = now_text();
        let rows: Vec<(Option<String>, Option<String>)> =
            on!(self.db.executor(), |c| sqlx::query_as(
                "UPDATE ledger SET status = 'uncertain',
                    last_error = 'in flight when a previous run stopped: delivery unknown',
                    updated_at = $2
             WHERE activation = $1 AND status = 'in_flight'
             RETURNING row_key, reference",
            )
            .bind(activation)
            .bind(&now)
            .fetch_all(c)
            .await)?;
        Ok(rows)
    }

    /// Whether the ledger holds any key of `activation`.
    pub async fn is_empty(&self, activation: &str) -> Result<bool> {
        let any: Option<(i64,)> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT 1 FROM ledger WHERE activation = $1 LIMIT 1"
        )
        .bind(activation)
        .fetch_optional(c)
        .await)?;
        Ok(any.is_none())
    }

    /// How many keys of `activation` have each status.
    pub async fn counts(&self, activation: &str) -> Result<Vec<(Status, u64)>> {
        let rows: Vec<(String, i64)> = on!(self.db.executor(), |c| {
            sqlx::query_as(
            "SELECT status, COUNT(*) FROM ledger WHERE activation = $1 GROUP BY status ORDER BY status",
        )
        .bind(activation)
        .fetch_all(c)
        .await
        })?;
        rows.into_iter()
            .map(|(status, n)| Ok((status.parse()?, u64::try_from(n).unwrap_or_default())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{QueryBuilder, Sqlite};

    use super::*;

    impl Ledger {
        /// Every entry the ledger holds among `keys` (SQLite), to check its state.
        async fn lookup(
            &self,
            activation: &str,
            keys: &[RowHash],
        ) -> Result<HashMap<RowHash, Entry>> {
            let Db::Sqlite(pool) = &self.db else {
                unreachable!("the tests use SQLite")
            };
            let mut found = HashMap::new();
            for chunk in keys.chunks(LOOKUP_CHUNK) {
                let mut query = QueryBuilder::<Sqlite>::new(
                    "SELECT key_hash, content_hash, status, attempts FROM ledger WHERE activation = ",
                );
                query.push_bind(activation).push(" AND key_hash IN (");
                let mut list = query.separated(", ");
                for key in chunk {
                    list.push_bind(key.as_slice());
                }
                query.push(")");
                let rows: Vec<(Vec<u8>, Vec<u8>, String, i64)> =
                    query.build_query_as().fetch_all(pool).await?;
                for (key, content, status, attempts) in rows {
                    let entry = Entry {
                        content: to_hash(&content)?,
                        status: status.parse()?,
                        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    };
                    found.insert(to_hash(&key)?, entry);
                }
            }
            Ok(found)
        }
    }

    async fn ledger() -> Ledger {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        Ledger::open(Db::Sqlite(pool)).await.unwrap()
    }

    #[tokio::test]
    async fn outcomes_are_found_by_key_and_scoped_to_their_activation() {
        let ledger = ledger().await;
        ledger
            .mark_in_flight("a", "run-1", &[1; 16], &[9; 16], "1", Some("R1"))
            .await
            .unwrap();
        ledger
            .record(
                "a",
                "run-1",
                &[Outcome {
                    key: [1; 16],
                    content: [9; 16],
                    status: Status::Sent,
                    reference: Some("R1"),
                    error: None,
                }],
            )
            .await
            .unwrap();
        let found = ledger.lookup("a", &[[1; 16], [2; 16]]).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[&[1; 16]].status, Status::Sent);
        assert_eq!(found[&[1; 16]].attempts, 1);
        assert!(ledger.lookup("b", &[[1; 16]]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn changes_leave_out_only_keys_sent_with_the_same_content() {
        let ledger = ledger().await;
        let outcome = |k: u8, c: u8, status| Outcome {
            key: [k; 16],
            content: [c; 16],
            status,
            reference: None,
            error: None,
        };
        ledger
            .record(
                "a",
                "r",
                &[
                    outcome(1, 1, Status::Sent),
                    outcome(2, 2, Status::Sent),
                    outcome(3, 3, Status::Failed),
                ],
            )
            .await
            .unwrap();
        let rows = [
            ([1; 16], [1; 16]),
            ([2; 16], [9; 16]),
            ([3; 16], [3; 16]),
            ([4; 16], [4; 16]),
        ];
        let changes = ledger.lookup_changes("a", &rows).await.unwrap();
        assert!(
            !changes.contains_key(&[1; 16]),
            "sent and unchanged: left out"
        );
        assert_eq!(
            changes[&[2; 16]].unwrap().status,
            Status::Sent,
            "changed content comes back"
        );
        assert_eq!(changes[&[3; 16]].unwrap().status, Status::Failed);
        assert_eq!(changes[&[4; 16]], None, "unknown key: absent");
        let many: Vec<(RowHash, RowHash)> = (0..2_500u16)
            .map(|i| {
                let mut k = [9u8; 16];
                k[..2].copy_from_slice(&i.to_le_bytes());
                (k, [0; 16])
            })
            .collect();
        assert_eq!(
            ledger.lookup_changes("a", &many).await.unwrap().len(),
            2_500
        );
    }

    #[tokio::test]
    async fn lookups_span_more_keys_than_one_statement_binds() {
        let ledger = ledger().await;
        let keys: Vec<RowHash> = (0..1_200u16)
            .map(|i| {
                let mut k = [0u8; 16];
                k[..2].copy_from_slice(&i.to_le_bytes());
                k
            })
            .collect();
        let outcomes: Vec<Outcome> = keys
            .iter()
            .step_by(2)
            .map(|k| Outcome {
                key: *k,
                content: [0; 16],
                status: Status::Rejected,
                reference: None,
                error: Some("bad"),
            })
            .collect();
        ledger.record("a", "run-1", &outcomes).await.unwrap();
        assert_eq!(ledger.lookup("a", &keys).await.unwrap().len(), 600);
    }

    #[tokio::test]
    async fn a_baseline_spans_many_statements_and_keeps_keys_already_sent() {
        let ledger = ledger().await;
        ledger
            .record(
                "a",
                "run-0",
                &[Outcome {
                    key: [0; 16],
                    content: [7; 16],
                    status: Status::Sent,
                    reference: None,
                    error: None,
                }],
            )
            .await
            .unwrap();
        let rows: Vec<(RowHash, RowHash)> = (0..2_500u16)
            .map(|i| {
                let mut k = [0u8; 16];
                k[..2].copy_from_slice(&i.to_le_bytes());
                (k, [1; 16])
            })
            .collect();
        let mut tx = ledger.db().begin().await.unwrap();
        Ledger::record_baseline_in(&mut tx, "a", "run-1", &rows)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let keys: Vec<RowHash> = rows.iter().map(|(k, _)| *k).collect();
        let found = ledger.lookup("a", &keys).await.unwrap();
        assert_eq!(found.len(), 2_500);
        assert_eq!(
            found[&[0; 16]].status,
            Status::Sent,
            "a sent key stays sent"
        );
        assert_eq!(found[&keys[1]].status, Status::Baseline);
    }

    #[tokio::test]
    async fn keys_left_in_flight_become_uncertain() {
        let ledger = ledger().await;
        ledger
            .mark_in_flight("a", "run-1", &[1; 16], &[0; 16], "1", Some("R1"))
            .await
            .unwrap();
        let recovered = ledger.recover_in_flight("a").await.unwrap();
        assert_eq!(
            recovered,
            vec![(Some("1".to_owned()), Some("R1".to_owned()))]
        );
        let found = ledger.lookup("a", &[[1; 16]]).await.unwrap();
        assert_eq!(found[&[1; 16]].status, Status::Uncertain);
        assert!(ledger.recover_in_flight("a").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn restoring_a_new_key_removes_it_and_an_old_one_gets_its_entry_back() {
        let ledger = ledger().await;
        ledger
            .mark_in_flight("a", "run-1", &[1; 16], &[0; 16], "1", None)
            .await
            .unwrap();
        ledger.restore("a", &[1; 16], None).await.unwrap();
        assert!(ledger.lookup("a", &[[1; 16]]).await.unwrap().is_empty());

        let failed = Entry {
            content: [3; 16],
            status: Status::Failed,
            attempts: 2,
        };
        ledger
            .mark_in_flight("a", "run-2", &[2; 16], &[4; 16], "2", None)
            .await
            .unwrap();
        ledger.restore("a", &[2; 16], Some(&failed)).await.unwrap();
        assert_eq!(
            ledger.lookup("a", &[[2; 16]]).await.unwrap()[&[2; 16]],
            failed
        );
    }
}
