//! The ledger: what each activation has already sent.
//!
//! Reads go straight to the pool; every write is a method of [`Fenced`], so it
//! happens only under the run's lease.

use std::collections::HashMap;

use retl_diff::{Entry, RowHash, Status};

use crate::db::{Db, on};
use serde::Serialize;

use crate::{Error, Fenced, Result, State};

/// Keys per lookup statement (well under SQLite's limit of 32,766 bound parameters).
const LOOKUP_CHUNK: usize = 1_000;

/// The final outcome of one row of a run, to be recorded for its key.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    /// The row's key hash.
    pub key: RowHash,
    /// The row's content hash.
    pub content: RowHash,
    /// `Sent`, `Rejected`, `Failed` or `Uncertain`.
    pub status: Status,
    /// The row's primary-key values as text (for resends and `runs` lookups).
    pub row_key: Option<&'a str>,
    /// The row's reference number, if it has one.
    pub reference: Option<&'a str>,
    /// Why it was not sent.
    pub error: Option<&'a str>,
}

/// A key an interrupted run left in flight, now `uncertain`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Recovered {
    /// The row's primary-key values, as logged.
    pub row_key: Option<String>,
    /// Its reference number.
    pub reference: Option<String>,
}

/// `lookup_changes`' answers into `found`: a key without a ledger row as
/// `None`.
fn add_found(found: &mut HashMap<RowHash, Option<Entry>>, hits: Vec<Found>) -> Result<()> {
    for hit in hits {
        let entry = match (hit.content, hit.status) {
            (Some(content), Some(status)) => Some(Entry {
                content: to_hash(&content)?,
                status: to_status(&status)?,
                attempts: u32::try_from(hit.attempts.unwrap_or_default()).unwrap_or(u32::MAX),
            }),
            _ => None,
        };
        found.insert(to_hash(&hit.key)?, entry);
    }
    Ok(())
}

fn to_hash(bytes: &[u8]) -> Result<RowHash> {
    bytes.try_into().map_err(|_| Error::Corrupt {
        what: "ledger hash",
        detail: format!("{} bytes", bytes.len()),
    })
}

fn to_status(text: &str) -> Result<Status> {
    text.parse().map_err(|_| Error::Corrupt {
        what: "ledger status",
        detail: format!("`{text}`"),
    })
}

/// A ledger row that a lookup returned.
#[derive(sqlx::FromRow)]
struct Found {
    key: Vec<u8>,
    content: Option<Vec<u8>>,
    status: Option<String>,
    attempts: Option<i64>,
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

// `failing_since` is when the row's current run of transient failures began:
// kept while it stays `failed` (a mark in flight leaves it), cleared by any
// other outcome.
const RECORD: &str = "
    INSERT INTO ledger (activation, key_hash, content_hash, status, attempts, reference,
                        first_run, last_run, last_error, updated_at, row_key, failing_since)
    VALUES ($1, $2, $3, $4, 0, $5, $6, $6, $7, $8, $9, CASE WHEN $4 = 'failed' THEN $8 END)
    ON CONFLICT (activation, key_hash) DO UPDATE SET
       failing_since = CASE WHEN excluded.status = 'failed'
                            THEN COALESCE(ledger.failing_since, excluded.updated_at) END,
       content_hash = excluded.content_hash, status = excluded.status,
       reference = excluded.reference, last_run = excluded.last_run,
       last_error = excluded.last_error, updated_at = excluded.updated_at,
       row_key = COALESCE(excluded.row_key, ledger.row_key)";

/// An activation's rows that need attention: failing (retried by each run
/// until given up), uncertain (a person must look), given up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Attention {
    /// Rows whose last request failed transiently, not yet given up.
    pub failing: u64,
    /// When the longest-failing of them began failing (RFC 3339).
    pub failing_since: Option<String>,
    /// The error of the row that failed last.
    pub last_error: Option<String>,
    /// Rows whose delivery is unknown (never resent on their own).
    pub uncertain: u64,
    /// Rows given up after `retry.give_up_after`.
    pub given_up: u64,
}

impl State {
    /// What of `activation`'s rows needs attention now.
    pub async fn attention(&self, activation: &str) -> Result<Attention> {
        let counts: Vec<(String, i64, Option<String>)> =
            on!(self.db.executor(), |c| sqlx::query_as(
                "SELECT status, COUNT(*), MIN(failing_since) FROM ledger
             WHERE activation = $1 AND status IN ('failed', 'uncertain', 'given_up')
             GROUP BY status"
            )
            .bind(activation)
            .fetch_all(c)
            .await)
            .map_err(Error::db("count the rows needing attention"))?;
        let mut attention = Attention::default();
        for (status, n, since) in counts {
            let n = u64::try_from(n).unwrap_or_default();
            match status.as_str() {
                "failed" => (attention.failing, attention.failing_since) = (n, since),
                "uncertain" => attention.uncertain = n,
                _ => attention.given_up = n,
            }
        }
        if attention.failing > 0 {
            attention.last_error = on!(self.db.executor(), |c| sqlx::query_scalar(
                "SELECT last_error FROM ledger WHERE activation = $1 AND status = 'failed'
                 ORDER BY updated_at DESC LIMIT 1"
            )
            .bind(activation)
            .fetch_optional(c)
            .await)
            .map_err(Error::db("read the last failure"))?
            .flatten();
        }
        Ok(attention)
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
        // Probing in key order walks the ledger's B-tree forwards, page after page.
        let mut rows = rows.to_vec();
        rows.sort_unstable_by_key(|(key, _)| *key);
        let mut found = HashMap::new();
        let lookup = Error::db("look keys up in the ledger");
        match &self.db {
            Db::Sqlite(pool) => {
                // One connection for every chunk, whose page cache (8 MiB
                // each) the chunks share, rather than one filled per
                // connection. Anonymous `?` parameters: SQLite looks named
                // ones (`$N`) up by a linear scan, which makes a long list
                // quadratic.
                let mut connection = pool.acquire().await.map_err(lookup)?;
                for chunk in rows.chunks(LOOKUP_CHUNK) {
                    let mut sql = String::from("WITH q(k, c) AS (VALUES ");
                    sql.push_str(&vec!["(?, ?)"; chunk.len()].join(", "));
                    sql.push_str(
                        ") SELECT q.k AS key, l.content_hash AS content, l.status, l.attempts
                         FROM q LEFT JOIN ledger l ON l.activation = ? AND l.key_hash = q.k
                         WHERE l.key_hash IS NULL
                            OR NOT (l.status IN ('sent', 'baseline', 'too_old', 'suppressed') AND l.content_hash = q.c)",
                    );
                    let mut query = sqlx::query_as::<_, Found>(&sql);
                    for (key, content) in chunk {
                        query = query.bind(key.as_slice()).bind(content.as_slice());
                    }
                    let hits = query
                        .bind(activation)
                        .fetch_all(&mut *connection)
                        .await
                        .map_err(lookup)?;
                    add_found(&mut found, hits)?;
                }
            }
            Db::Postgres(pool) => {
                for chunk in rows.chunks(LOOKUP_CHUNK) {
                    let keys: Vec<Vec<u8>> = chunk.iter().map(|(k, _)| k.to_vec()).collect();
                    let contents: Vec<Vec<u8>> = chunk.iter().map(|(_, c)| c.to_vec()).collect();
                    let hits = sqlx::query_as::<_, Found>(
                        "SELECT q.k AS key, l.content_hash AS content, l.status, l.attempts
                         FROM unnest($2::bytea[], $3::bytea[]) AS q(k, c)
                         LEFT JOIN ledger l ON l.activation = $1 AND l.key_hash = q.k
                         WHERE l.key_hash IS NULL
                            OR NOT (l.status IN ('sent', 'baseline', 'too_old', 'suppressed') AND l.content_hash = q.c)",
                    )
                    .bind(activation)
                    .bind(keys)
                    .bind(contents)
                    .fetch_all(pool)
                    .await
                    .map_err(lookup)?;
                    add_found(&mut found, hits)?;
                }
            }
        }
        Ok(found)
    }

    /// How many keys of `activation` have each status (baseline keys that
    /// only the key segments hold included). It loads the segments: for
    /// reports and tests, not for every run.
    pub async fn ledger_counts(&self, activation: &str) -> Result<Vec<(Status, u64)>> {
        let rows: Vec<(String, i64)> = on!(self.db.executor(), |c| {
            sqlx::query_as(
                "SELECT status, COUNT(*) FROM ledger WHERE activation = $1 GROUP BY status ORDER BY status",
            )
            .bind(activation)
            .fetch_all(c)
            .await
        })
        .map_err(Error::db("count the ledger"))?;
        let mut counts: Vec<(Status, u64)> = rows
            .into_iter()
            .map(|(status, n)| Ok((to_status(&status)?, u64::try_from(n).unwrap_or_default())))
            .collect::<Result<_>>()?;
        let only_segments = self.segment_only_keys(activation).await?;
        if only_segments > 0 {
            match counts.iter_mut().find(|(s, _)| *s == Status::Baseline) {
                Some((_, n)) => *n += only_segments,
                None => {
                    counts.push((Status::Baseline, only_segments));
                    counts.sort_by_key(|(s, _)| s.as_str());
                }
            }
        }
        Ok(counts)
    }

    /// When the current run of transient failures of `key` began (RFC 3339),
    /// if the ledger holds it as `failed` with one: a row is given up once
    /// `retry.give_up_after` has passed since.
    pub async fn failing_since(&self, activation: &str, key: &RowHash) -> Result<Option<String>> {
        let found: Option<(Option<String>,)> = on!(self.db.executor(), |c| {
            sqlx::query_as(
                "SELECT failing_since FROM ledger WHERE activation = $1 AND key_hash = $2",
            )
            .bind(activation)
            .bind(key.as_slice())
            .fetch_optional(c)
            .await
        })
        .map_err(Error::db("read when a row began failing"))?;
        Ok(found.and_then(|(since,)| since))
    }
}

impl Fenced {
    /// Marks a key in flight, just before its request is sent.
    pub async fn mark_in_flight(
        &mut self,
        key: &RowHash,
        content: &RowHash,
        row_key: &str,
        reference: Option<&str>,
    ) -> Result<()> {
        on!(self.tx.executor(), |c| sqlx::query(MARK_IN_FLIGHT)
            .bind(&self.activation)
            .bind(key.as_slice())
            .bind(content.as_slice())
            .bind(row_key)
            .bind(reference)
            .bind(&self.run_id)
            .bind(&self.now)
            .execute(c)
            .await
            .map(|_| ()))
        .map_err(Error::db("mark a key in flight"))?;
        Ok(())
    }

    /// Records final outcomes, so that the ledger and the run log change together.
    pub async fn record(&mut self, outcomes: &[Outcome<'_>]) -> Result<()> {
        for outcome in outcomes {
            on!(self.tx.executor(), |c| sqlx::query(RECORD)
                .bind(&self.activation)
                .bind(outcome.key.as_slice())
                .bind(outcome.content.as_slice())
                .bind(outcome.status.as_str())
                .bind(outcome.reference)
                .bind(&self.run_id)
                .bind(outcome.error)
                .bind(&self.now)
                .bind(outcome.row_key)
                .execute(c)
                .await
                .map(|_| ()))
            .map_err(Error::db("record an outcome"))?;
        }
        Ok(())
    }

    /// Remembers the new content of keys that changed after they were handled
    /// (`ignored_changed`: sent, baseline or too old; never sent again), so
    /// that each change is logged once, and later runs find them unchanged. A
    /// baseline key only the key segments held gets a ledger row of its own;
    /// the segments get the new content too.
    pub async fn note_changed(&mut self, rows: &[(RowHash, RowHash)]) -> Result<()> {
        for (key, content) in rows {
            on!(self.tx.executor(), |c| sqlx::query(
                "INSERT INTO ledger (activation, key_hash, content_hash, status, attempts,
                                     first_run, last_run, updated_at)
                 VALUES ($1, $2, $3, 'baseline', 0, $5, $5, $4)
                 ON CONFLICT (activation, key_hash) DO UPDATE SET
                    content_hash = excluded.content_hash, updated_at = excluded.updated_at
                 WHERE ledger.status IN ('sent', 'baseline', 'too_old', 'suppressed')"
            )
            .bind(&self.activation)
            .bind(key.as_slice())
            .bind(content.as_slice())
            .bind(&self.now)
            .bind(&self.run_id)
            .execute(c)
            .await
            .map(|_| ()))
            .map_err(Error::db("note a changed key"))?;
        }
        self.append_segments(&mut rows.to_vec()).await
    }

    /// Undoes [`mark_in_flight`](Self::mark_in_flight) for a request known not
    /// to have been accepted: the key returns to `previous`, or leaves the
    /// ledger if it had no entry.
    pub async fn restore(&mut self, key: &RowHash, previous: Option<&Entry>) -> Result<()> {
        let restore = Error::db("restore a ledger entry");
        match previous {
            None => on!(self.tx.executor(), |c| sqlx::query(
                "DELETE FROM ledger WHERE activation = $1 AND key_hash = $2"
            )
            .bind(&self.activation)
            .bind(key.as_slice())
            .execute(c)
            .await
            .map(|_| ()))
            .map_err(restore)?,
            Some(entry) => on!(self.tx.executor(), |c| sqlx::query(
                "UPDATE ledger SET status = $3, content_hash = $4, attempts = $5
                 WHERE activation = $1 AND key_hash = $2"
            )
            .bind(&self.activation)
            .bind(key.as_slice())
            .bind(entry.status.as_str())
            .bind(entry.content.as_slice())
            .bind(i64::from(entry.attempts))
            .execute(c)
            .await
            .map(|_| ()))
            .map_err(restore)?,
        }
        Ok(())
    }

    /// Turns the keys a crashed run of this activation left in flight into
    /// `uncertain`, returning their row keys and reference numbers.
    pub async fn recover_in_flight(&mut self) -> Result<Vec<Recovered>> {
        on!(self.tx.executor(), |c| sqlx::query_as(
            "UPDATE ledger SET status = 'uncertain',
                last_error = 'in flight when a previous run stopped: delivery unknown',
                updated_at = $2
             WHERE activation = $1 AND status = 'in_flight'
             RETURNING row_key, reference",
        )
        .bind(&self.activation)
        .bind(&self.now)
        .fetch_all(c)
        .await)
        .map_err(Error::db("recover keys left in flight"))
    }

    /// Makes the rows that run `run_id` of this activation logged with
    /// `outcome` (`uncertain`, `rejected` or `given_up`), and that are still so in the
    /// ledger, retryable: the run sends them again. Returns each released
    /// row's key hash and key text.
    pub async fn release(
        &mut self,
        run_id: &str,
        outcome: crate::RowOutcome,
    ) -> Result<Vec<(RowHash, String)>> {
        let status = match outcome {
            crate::RowOutcome::Uncertain => Status::Uncertain,
            crate::RowOutcome::Rejected => Status::Rejected,
            crate::RowOutcome::GivenUp => Status::GivenUp,
            other => {
                return Err(Error::Corrupt {
                    what: "resend",
                    detail: format!("rows logged `{other}` cannot be released"),
                });
            }
        };
        let rows: Vec<(Vec<u8>, Option<String>)> = on!(self.tx.executor(), |c| sqlx::query_as(
            "UPDATE ledger SET status = 'failed', failing_since = NULL,
                    last_error = 'released for resend by `retl runs resend`',
                    updated_at = $4
             WHERE status = $3 AND activation = $2
               AND row_key IN (SELECT row_key FROM run_rows WHERE run_id = $1 AND outcome = $5)
             RETURNING key_hash, row_key",
        )
        .bind(run_id)
        .bind(&self.activation)
        .bind(status.as_str())
        .bind(&self.now)
        .bind(outcome.as_str())
        .fetch_all(c)
        .await)
        .map_err(Error::db("release rows for a resend"))?;
        rows.into_iter()
            .map(|(key, row_key)| Ok((to_hash(&key)?, row_key.unwrap_or_default())))
            .collect()
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::Lease;

    async fn state() -> (tempfile::TempDir, State) {
        crate::test_state().await
    }

    async fn lease(state: &State, activation: &str) -> Lease {
        crate::test_lease(state, activation).await
    }

    fn outcome(k: u8, c: u8, status: Status) -> Outcome<'static> {
        Outcome {
            key: [k; 16],
            content: [c; 16],
            status,
            row_key: None,
            reference: None,
            error: None,
        }
    }

    async fn entry(state: &State, activation: &str, key: RowHash) -> Option<Entry> {
        // A changed content hash always comes back, with the entry.
        state
            .lookup_changes(activation, &[(key, [0xEE; 16])])
            .await
            .unwrap()
            .remove(&key)
            .flatten()
    }

    #[tokio::test]
    async fn a_row_keeps_the_start_of_its_failures_until_another_outcome() {
        let (_dir, state) = state().await;
        let lease = lease(&state, "a").await;
        let fail = |state: &State| {
            let (state, lease) = (state.clone(), lease.clone());
            async move {
                let mut tx = state.fenced(&lease).await.unwrap();
                tx.mark_in_flight(&[1; 16], &[9; 16], "1", None)
                    .await
                    .unwrap();
                tx.record(&[outcome(1, 9, Status::Failed)]).await.unwrap();
                tx.commit().await.unwrap();
                state.failing_since("a", &[1; 16]).await.unwrap()
            }
        };
        let began = fail(&state).await.expect("a failed row says since when");
        assert_eq!(
            fail(&state).await.as_ref(),
            Some(&began),
            "kept across failures"
        );
        let mut tx = state.fenced(&lease).await.unwrap();
        tx.record(&[outcome(1, 9, Status::Sent)]).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(state.failing_since("a", &[1; 16]).await.unwrap(), None);
        assert_eq!(state.failing_since("b", &[1; 16]).await.unwrap(), None);
    }

    #[tokio::test]
    async fn outcomes_are_found_by_key_and_scoped_to_their_activation() {
        let (_dir, state) = state().await;
        let lease = lease(&state, "a").await;
        let mut tx = state.fenced(&lease).await.unwrap();
        tx.mark_in_flight(&[1; 16], &[9; 16], "1", Some("R1"))
            .await
            .unwrap();
        tx.record(&[outcome(1, 9, Status::Sent)]).await.unwrap();
        tx.commit().await.unwrap();
        let found = entry(&state, "a", [1; 16]).await.unwrap();
        assert_eq!(found.status, Status::Sent);
        assert_eq!(found.attempts, 1);
        assert_eq!(entry(&state, "b", [1; 16]).await, None);
    }

    #[tokio::test]
    async fn changes_leave_out_only_keys_sent_with_the_same_content() {
        let (_dir, state) = state().await;
        let lease = lease(&state, "a").await;
        let mut tx = state.fenced(&lease).await.unwrap();
        tx.record(&[
            outcome(1, 1, Status::Sent),
            outcome(2, 2, Status::Sent),
            outcome(3, 3, Status::Failed),
        ])
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let rows = [
            ([1; 16], [1; 16]),
            ([2; 16], [9; 16]),
            ([3; 16], [3; 16]),
            ([4; 16], [4; 16]),
        ];
        let changes = state.lookup_changes("a", &rows).await.unwrap();
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
        assert_eq!(state.lookup_changes("a", &many).await.unwrap().len(), 2_500);
    }

    #[tokio::test]
    async fn baseline_keys_in_segments_count_once_and_a_ledger_row_stays_in_force() {
        let (_dir, state) = state().await;
        let lease = lease(&state, "a").await;
        let mut tx = state.fenced(&lease).await.unwrap();
        tx.record(&[outcome(0, 7, Status::Sent)]).await.unwrap();
        let mut rows: Vec<(RowHash, RowHash)> = (0..2_500u16)
            .map(|i| {
                let mut k = [0u8; 16];
                k[..2].copy_from_slice(&i.to_le_bytes());
                (k, [1; 16])
            })
            .collect();
        tx.append_segments(&mut rows).await.unwrap();
        tx.commit().await.unwrap();
        let counts = state.ledger_counts("a").await.unwrap();
        assert_eq!(counts, vec![(Status::Baseline, 2_499), (Status::Sent, 1)]);
        assert_eq!(
            entry(&state, "a", [0; 16]).await.unwrap().status,
            Status::Sent,
            "a sent key stays sent"
        );
    }

    #[tokio::test]
    async fn a_changed_baseline_key_gets_a_row_and_its_new_content() {
        let (_dir, state) = state().await;
        let lease = lease(&state, "a").await;
        let mut tx = state.fenced(&lease).await.unwrap();
        tx.append_segments(&mut [([3; 16], [1; 16])]).await.unwrap();
        tx.note_changed(&[([3; 16], [2; 16])]).await.unwrap();
        tx.commit().await.unwrap();
        let set = state.key_set("a").await.unwrap();
        assert_eq!(set.get(&[3; 16], &[2; 16]), retl_diff::Seen::Unchanged);
        let back = state
            .lookup_changes("a", &[([3; 16], [2; 16])])
            .await
            .unwrap();
        assert!(back.is_empty(), "the ledger row holds the new content");
        assert_eq!(
            state.ledger_counts("a").await.unwrap(),
            vec![(Status::Baseline, 1)]
        );
    }

    #[tokio::test]
    async fn keys_left_in_flight_become_uncertain() {
        let (_dir, state) = state().await;
        let lease = lease(&state, "a").await;
        let mut tx = state.fenced(&lease).await.unwrap();
        tx.mark_in_flight(&[1; 16], &[0; 16], "1", Some("R1"))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut tx = state.fenced(&lease).await.unwrap();
        let recovered = tx.recover_in_flight().await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            recovered,
            vec![Recovered {
                row_key: Some("1".to_owned()),
                reference: Some("R1".to_owned())
            }]
        );
        assert_eq!(
            entry(&state, "a", [1; 16]).await.unwrap().status,
            Status::Uncertain
        );
        let mut tx = state.fenced(&lease).await.unwrap();
        assert!(tx.recover_in_flight().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn restoring_a_new_key_removes_it_and_an_old_one_gets_its_entry_back() {
        let (_dir, state) = state().await;
        let lease = lease(&state, "a").await;
        let mut tx = state.fenced(&lease).await.unwrap();
        tx.mark_in_flight(&[1; 16], &[0; 16], "1", None)
            .await
            .unwrap();
        tx.restore(&[1; 16], None).await.unwrap();
        let failed = Entry {
            content: [3; 16],
            status: Status::Failed,
            attempts: 2,
        };
        tx.mark_in_flight(&[2; 16], &[4; 16], "2", None)
            .await
            .unwrap();
        tx.restore(&[2; 16], Some(&failed)).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(entry(&state, "a", [1; 16]).await, None);
        assert_eq!(
            state.ledger_counts("a").await.unwrap(),
            vec![(Status::Failed, 1)]
        );
        let back = state
            .lookup_changes("a", &[([2; 16], [3; 16])])
            .await
            .unwrap();
        assert_eq!(back[&[2; 16]], Some(failed));
    }
}
