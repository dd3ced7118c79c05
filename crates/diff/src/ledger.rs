//! The ledger: what each activation has already sent, in the state database.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{QueryBuilder, Row, Sqlite};

use crate::{Error, Result, RowHash};

/// Keys per lookup statement (well under SQLite's bound-parameter limit).
const LOOKUP_CHUNK: usize = 500;

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

/// The ledger of every activation, in one SQLite state database.
#[derive(Debug, Clone)]
pub struct Ledger {
    pool: SqlitePool,
}

fn to_hash(bytes: &[u8]) -> Result<RowHash> {
    bytes
        .try_into()
        .map_err(|_| Error::Corrupt(format!("a hash of {} bytes", bytes.len())))
}

impl Ledger {
    /// The pool the ledger lives in (the state database).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Opens the ledger in `pool`, creating its table if needed.
    pub async fn open(pool: SqlitePool) -> Result<Self> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS ledger (
                activation   TEXT NOT NULL,
                key_hash     BLOB NOT NULL,
                content_hash BLOB NOT NULL,
                status       TEXT NOT NULL,
                attempts     INTEGER NOT NULL DEFAULT 0,
                row_key      TEXT,
                reference    TEXT,
                first_run    TEXT NOT NULL,
                last_run     TEXT NOT NULL,
                last_error   TEXT,
                updated_at   TEXT NOT NULL,
                PRIMARY KEY (activation, key_hash)
            ) WITHOUT ROWID",
        )
        .execute(&pool)
        .await?;
        Ok(Ledger { pool })
    }

    /// The entries of those `keys` that the ledger holds for `activation`.
    pub async fn lookup(
        &self,
        activation: &str,
        keys: &[RowHash],
    ) -> Result<HashMap<RowHash, Entry>> {
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
            for row in query.build().fetch_all(&self.pool).await? {
                let key = to_hash(row.try_get::<&[u8], _>(0)?)?;
                let entry = Entry {
                    content: to_hash(row.try_get::<&[u8], _>(1)?)?,
                    status: row.try_get::<&str, _>(2)?.parse()?,
                    attempts: row.try_get(3)?,
                };
                found.insert(key, entry);
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
        let mut conn = self.pool.acquire().await?;
        Self::mark_in_flight_in(
            &mut conn, activation, run_id, key, content, row_key, reference,
        )
        .await
    }

    /// [`mark_in_flight`](Self::mark_in_flight) on `conn`, typically inside the
    /// caller's transaction.
    pub async fn mark_in_flight_in(
        conn: &mut SqliteConnection,
        activation: &str,
        run_id: &str,
        key: &RowHash,
        content: &RowHash,
        row_key: &str,
        reference: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO ledger (activation, key_hash, content_hash, status, attempts, row_key, reference,
                                 first_run, last_run, updated_at)
             VALUES (?1, ?2, ?3, 'in_flight', 1, ?4, ?5, ?6, ?6, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
             ON CONFLICT (activation, key_hash) DO UPDATE SET
                content_hash = excluded.content_hash, status = 'in_flight',
                attempts = ledger.attempts + 1, row_key = excluded.row_key,
                reference = excluded.reference,
                last_run = excluded.last_run, updated_at = excluded.updated_at",
        )
        .bind(activation)
        .bind(key.as_slice())
        .bind(content.as_slice())
        .bind(row_key)
        .bind(reference)
        .bind(run_id)
        .execute(&mut *conn)
        .await?;
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
        let mut tx = self.pool.begin().await?;
        Self::record_in(&mut tx, activation, run_id, outcomes).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records final outcomes on `conn`, typically inside the caller's transaction
    /// so that the ledger and the run log change together.
    pub async fn record_in(
        conn: &mut SqliteConnection,
        activation: &str,
        run_id: &str,
        outcomes: &[Outcome<'_>],
    ) -> Result<()> {
        for outcome in outcomes {
            sqlx::query(
                "INSERT INTO ledger (activation, key_hash, content_hash, status, attempts, reference,
                                     first_run, last_run, last_error, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?6, ?7, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
                 ON CONFLICT (activation, key_hash) DO UPDATE SET
                    content_hash = excluded.content_hash, status = excluded.status,
                    reference = excluded.reference, last_run = excluded.last_run,
                    last_error = excluded.last_error, updated_at = excluded.updated_at",
            )
            .bind(activation)
            .bind(outcome.key.as_slice())
            .bind(outcome.content.as_slice())
            .bind(outcome.status.as_str())
            .bind(outcome.reference)
            .bind(run_id)
            .bind(outcome.error)
            .execute(&mut *conn)
            .await?;
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
                sqlx::query("DELETE FROM ledger WHERE activation = ?1 AND key_hash = ?2")
                    .bind(activation)
                    .bind(key.as_slice())
                    .execute(&self.pool)
                    .await?;
            }
            Some(entry) => {
                sqlx::query(
                    "UPDATE ledger SET status = ?3, content_hash = ?4, attempts = ?5
                     WHERE activation = ?1 AND key_hash = ?2",
                )
                .bind(activation)
                .bind(key.as_slice())
                .bind(entry.status.as_str())
                .bind(entry.content.as_slice())
                .bind(entry.attempts)
                .execute(&self.pool)
                .await?;
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
        let rows = sqlx::query(
            "UPDATE ledger SET status = 'uncertain',
                    last_error = 'in flight when a previous run stopped: delivery unknown',
                    updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE activation = ?1 AND status = 'in_flight'
             RETURNING row_key, reference",
        )
        .bind(activation)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    /// How many keys of `activation` have each status.
    pub async fn counts(&self, activation: &str) -> Result<Vec<(Status, u64)>> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) FROM ledger WHERE activation = ?1 GROUP BY status ORDER BY status",
        )
        .bind(activation)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let count: i64 = row.try_get(1)?;
                Ok((
                    row.try_get::<&str, _>(0)?.parse()?,
                    u64::try_from(count).unwrap_or_default(),
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use sqlx::sqlite::SqlitePoolOptions;

    use super::*;

    async fn ledger() -> Ledger {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        Ledger::open(pool).await.unwrap()
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
