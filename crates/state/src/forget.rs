//! The right to be forgotten, in the state. After [`State::forget_contact`]
//! no row holds the person's address (as written, lowercased, or with its
//! domain in either form) nor anything said of her: her run-log rows are
//! deleted (matched by the keyed hash of her email, or by a key or a
//! reference that holds the address), the texts of her ledger entries (key,
//! reference, last error) are cleared while their key hashes stay settled
//! (so that those rows are never sent again), her dedupe claims are
//! deleted, and a run error that quoted her address no longer does. On
//! SQLite the file is then rewritten (`VACUUM`) and its write-ahead log
//! emptied, so that no freed page keeps a copy.
//!
//! One thing stays: the keyed hash of her address and the day she was
//! forgotten (`forgotten`). A later row for her is withheld
//! (`suppressed`), so that she is never invited again, and `runs find
//! --email` says she was forgotten and when. The hash is made with the
//! state's own key: a copy of the state does not give her address back.
//!
//! `retention.personal_data` scrubs the reasons and answers of every row
//! older than it.

use crate::contact::normalize;
use crate::db::{Db, on};
use crate::{Error, Result, State};

/// A person to forget: the texts her address is written as, and the keyed
/// hashes her rows and claims carry.
struct Person {
    texts: Vec<String>,
    hashes: Vec<String>,
}

impl State {
    /// The texts and hashes of the person with `email`.
    async fn person(&self, email: &str) -> Result<Person> {
        let mut texts = vec![email.trim().to_owned()];
        for form in [email.trim().to_lowercase(), normalize(email)] {
            if !texts.contains(&form) {
                texts.push(form);
            }
        }
        if let Some((local, domain)) = normalize(email).rsplit_once('@') {
            let (unicode, _) = idna::domain_to_unicode(domain);
            let form = format!("{local}@{unicode}");
            if !texts.contains(&form) {
                texts.push(form);
            }
        }
        let hashes = match self.existing_contact_key().await? {
            Some(key) => std::iter::once(key.hash(email))
                .chain(key.legacy_hashes(email))
                .collect(),
            None => Vec::new(),
        };
        Ok(Person { texts, hashes })
    }

    /// `column` (of text) contains `$n`, lowercased, in this database's SQL.
    fn contains(&self, column: &str, n: usize) -> String {
        match &self.db {
            Db::Sqlite(_) => format!("instr(lower(COALESCE({column}, '')), ${n}) > 0"),
            Db::Postgres(_) => format!("strpos(lower(COALESCE({column}, '')), ${n}) > 0"),
        }
    }

    /// How many run-log rows name the person with `email` (by the keyed
    /// hash of her email, or a key or reference holding the address).
    pub async fn contact_rows(&self, email: &str) -> Result<u64> {
        let person = self.person(email).await?;
        let mut total = 0;
        for (hash, text) in pairs(&person) {
            let sql = format!(
                "SELECT COUNT(*) FROM run_rows WHERE contact_hash = $1 OR {} OR {}",
                self.contains("row_key", 2),
                self.contains("reference", 2)
            );
            let (n,): (i64,) = on!(self.db.executor(), |c| sqlx::query_as(&sql)
                .bind(hash)
                .bind(text)
                .fetch_one(c)
                .await)
            .map_err(Error::db("count a person's rows"))?;
            total += u64::try_from(n).unwrap_or_default();
        }
        Ok(total)
    }

    /// When the person with `email` was forgotten, if she was.
    pub async fn forgotten_at(&self, email: &str) -> Result<Option<String>> {
        let Some(key) = self.existing_contact_key().await? else {
            return Ok(None);
        };
        for hash in std::iter::once(key.hash(email)).chain(key.legacy_hashes(email)) {
            let found: Option<(String,)> = on!(self.db.executor(), |c| sqlx::query_as(
                "SELECT forgotten_at FROM forgotten WHERE contact_hash = $1"
            )
            .bind(&hash)
            .fetch_optional(c)
            .await)
            .map_err(Error::db("look a forgotten person up"))?;
            if let Some((at,)) = found {
                return Ok(Some(at));
            }
        }
        Ok(None)
    }

    /// Erases the traces of the person with `email` (see the module) and
    /// records the erasure with `destinations` (their names); returns how
    /// many run-log rows were erased. One transaction, then (SQLite) the
    /// file rewritten.
    pub async fn forget_contact(&self, email: &str, destinations: &str) -> Result<u64> {
        let key = self.contact_key().await?;
        let person = self.person(email).await?;
        let now = self.now_text();
        let fail = Error::db("erase a person's traces");
        let mut tx = self.db.begin().await?;
        let mut erased = 0;
        for (hash, text) in pairs(&person) {
            let hers = format!(
                "r.contact_hash = $1 OR {} OR {}",
                self.contains("r.row_key", 2),
                self.contains("r.reference", 2)
            );
            // Her ledger entries keep their key hashes (settled: never sent
            // again) and lose every text.
            let ledger = format!(
                "UPDATE ledger SET row_key = NULL, reference = NULL, last_error = NULL
                 WHERE EXISTS (SELECT 1 FROM run_rows r JOIN runs u ON u.run_id = r.run_id
                               WHERE ({hers}) AND u.activation = ledger.activation
                                 AND r.row_key = ledger.row_key)
                    OR {} OR {} OR {}",
                self.contains("row_key", 2),
                self.contains("reference", 2),
                self.contains("last_error", 2)
            );
            on!(tx.executor(), |c| sqlx::query(&ledger)
                .bind(hash)
                .bind(text)
                .execute(c)
                .await
                .map(|_| ()))
            .map_err(fail)?;
            let rows = format!("DELETE FROM run_rows AS r WHERE {hers}");
            erased += on!(tx.executor(), |c| sqlx::query(&rows)
                .bind(hash)
                .bind(text)
                .execute(c)
                .await
                .map(|done| done.rows_affected()))
            .map_err(fail)?;
            on!(tx.executor(), |c| sqlx::query(
                "DELETE FROM contacts WHERE contact_hash = $1"
            )
            .bind(hash)
            .execute(c)
            .await
            .map(|_| ()))
            .map_err(fail)?;
            // A run's error that quoted her address says so no more.
            let quoted = format!(
                "SELECT run_id, error FROM runs WHERE {}",
                self.contains("error", 1)
            );
            let runs: Vec<(String, String)> = on!(tx.executor(), |c| sqlx::query_as(&quoted)
                .bind(text)
                .fetch_all(c)
                .await)
            .map_err(fail)?;
            for (run_id, error) in runs {
                let mended = replace_ignoring_case(&error, text, "<forgotten>");
                on!(tx.executor(), |c| sqlx::query(
                    "UPDATE runs SET error = $2 WHERE run_id = $1"
                )
                .bind(&run_id)
                .bind(&mended)
                .execute(c)
                .await
                .map(|_| ()))
                .map_err(fail)?;
            }
        }
        on!(tx.executor(), |c| sqlx::query(
            "INSERT INTO forgotten (contact_hash, forgotten_at) VALUES ($1, $2)
             ON CONFLICT (contact_hash) DO UPDATE SET forgotten_at = excluded.forgotten_at"
        )
        .bind(key.hash(email))
        .bind(&now)
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(fail)?;
        on!(tx.executor(), |c| sqlx::query(
            "INSERT INTO erasures (at, rows_erased, destinations) VALUES ($1, $2, $3)"
        )
        .bind(&now)
        .bind(i64::try_from(erased).unwrap_or(i64::MAX))
        .bind(destinations)
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(fail)?;
        tx.commit().await?;
        self.rewrite_file().await?;
        Ok(erased)
    }

    /// SQLite: rewrites the file without its free pages (`VACUUM`) and
    /// empties the write-ahead log into it, so that nothing deleted stays
    /// readable in either. (PostgreSQL keeps dead rows until its vacuum:
    /// no row holds them.)
    async fn rewrite_file(&self) -> Result<()> {
        let Db::Sqlite(pool) = &self.db else {
            return Ok(());
        };
        let fail = Error::db("rewrite the state file after erasing");
        crate::db::limited(sqlx::query("VACUUM").execute(pool))
            .await
            .map_err(fail)?;
        let (busy, _, _): (i64, i64, i64) =
            crate::db::limited(sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(pool))
                .await
                .map_err(Error::db("empty the write-ahead log after erasing"))?;
        if busy != 0 {
            tracing::warn!(
                "another process reads the state: its write-ahead log is emptied at the next checkpoint"
            );
        }
        Ok(())
    }

    /// `retention.personal_data`: scrubs the reasons and answers (link URLs
    /// among them) of `activation`'s run-log rows logged before `before`
    /// (RFC 3339); returns how many rows.
    pub async fn scrub_personal_data(&self, activation: &str, before: &str) -> Result<u64> {
        on!(self.db.executor(), |c| sqlx::query(
            "UPDATE run_rows SET reason = NULL, details = NULL
             WHERE at < $2 AND (reason IS NOT NULL OR details IS NOT NULL)
               AND run_id IN (SELECT run_id FROM runs WHERE activation = $1)"
        )
        .bind(activation)
        .bind(before)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))
        .map_err(Error::db("scrub personal data"))
    }
}

/// Each keyed hash with each text of `person`: the pairs a statement
/// looking for her rows is run with (no hash: a text alone).
fn pairs(person: &Person) -> Vec<(&str, &str)> {
    let hashes: Vec<&str> = if person.hashes.is_empty() {
        vec![""]
    } else {
        person.hashes.iter().map(String::as_str).collect()
    };
    let mut pairs = Vec::new();
    for hash in &hashes {
        for text in &person.texts {
            pairs.push((*hash, text.as_str()));
        }
    }
    pairs
}

/// `text` with every occurrence of `needle` (compared lowercased) replaced.
fn replace_ignoring_case(text: &str, needle: &str, with: &str) -> String {
    let lower = text.to_lowercase();
    let needle = needle.to_lowercase();
    if needle.is_empty() || lower.len() != text.len() {
        return text.replace(&needle, with);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for (at, _) in lower.match_indices(&needle) {
        out.push_str(&text[rest..at]);
        out.push_str(with);
        rest = at + needle.len();
    }
    out.push_str(&text[rest..]);
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Outcome, RowLog, RowOutcome, test_state};

    #[tokio::test]
    async fn forgetting_deletes_her_rows_and_claims_clears_her_texts_and_keeps_one_entry() {
        let (_dir, state) = test_state().await;
        let key = state.contact_key().await.unwrap();
        let hers = key.hash("Ann@Example.com");
        let lease = state
            .acquire_lease("customers", "run-1", Duration::from_mins(1))
            .await
            .unwrap();
        let mut tx = state.fenced(&lease).await.unwrap();
        tx.start_run().await.unwrap();
        // Keyed by her email: her key text is her address.
        tx.record(&[
            Outcome {
                key: [1; 16],
                content: [2; 16],
                status: retl_diff::Status::Sent,
                row_key: Some("ann@example.com"),
                reference: Some("ann@example.com"),
                error: None,
            },
            Outcome {
                key: [3; 16],
                content: [4; 16],
                status: retl_diff::Status::Sent,
                row_key: Some("bob@example.com"),
                reference: Some("bob@example.com"),
                error: None,
            },
        ])
        .await
        .unwrap();
        let mut row = RowLog::new(
            "ann@example.com",
            Some("ann@example.com"),
            RowOutcome::Sent,
            None,
        );
        row.contact_hash = Some(hers.clone());
        let bob = RowLog::new(
            "bob@example.com",
            Some("bob@example.com"),
            RowOutcome::Sent,
            None,
        );
        tx.log_rows(0, &[row, bob]).await.unwrap();
        tx.claim_contact(
            "activation:customers",
            &hers,
            &[],
            &[1; 16],
            "2000-01-01T00:00:00Z",
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        state.release_lease(&lease).await.unwrap();

        assert_eq!(state.contact_rows("ann@example.com").await.unwrap(), 1);
        let erased = state
            .forget_contact("ANN@example.com", "memory")
            .await
            .unwrap();
        assert_eq!(erased, 1);
        assert_eq!(state.contact_rows("ann@example.com").await.unwrap(), 0);
        assert!(
            state
                .forgotten_at("ann@example.com")
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(state.forgotten_at("bob@example.com").await.unwrap(), None);
        // Her claim is gone; her key stays settled, without its text.
        let claims: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM contacts")
            .fetch_one(match &state.db {
                crate::db::Db::Sqlite(pool) => pool,
                crate::db::Db::Postgres(_) => unreachable!("a SQLite test state"),
            })
            .await
            .unwrap();
        assert_eq!(claims, 0);
        let keys = state.ledger_keys("customers").await.unwrap();
        assert!(keys.contains(&[1; 16]) && keys.contains(&[3; 16]));
        assert_eq!(
            state
                .find_rows("ann@example.com", None, 10)
                .await
                .unwrap()
                .len(),
            0
        );
        assert_eq!(
            state
                .find_rows("bob@example.com", None, 10)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}
