//! The right to be forgotten, in the state: a person's run-log rows lose
//! what could identify them (the destination's answers and the reasons,
//! link URLs among them, and the keyed hash of their email), the ledger
//! keeps the key hashes that stop a second invitation, and the erasure is
//! recorded without the address. `retention.personal_data` does the same
//! for every row older than it.

use crate::db::on;
use crate::{Error, Result, State};

impl State {
    /// How many run-log rows name the person with `email`.
    pub async fn contact_rows(&self, email: &str) -> Result<u64> {
        let Some(key) = self.existing_contact_key().await? else {
            return Ok(0);
        };
        let (n,): (i64,) = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT COUNT(*) FROM run_rows WHERE contact_hash = $1"
        )
        .bind(key.hash(email))
        .fetch_one(c)
        .await)
        .map_err(Error::db("count a person's rows"))?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// Erases the traces of the person with `email` (see the module) and
    /// records the erasure with `destinations` (their names); returns how
    /// many run-log rows were erased. One transaction.
    pub async fn forget_contact(&self, email: &str, destinations: &str) -> Result<u64> {
        let Some(key) = self.existing_contact_key().await? else {
            return Ok(0);
        };
        let hash = key.hash(email);
        let now = self.now_text();
        let fail = Error::db("erase a person's traces");
        let mut tx = self.db.begin().await?;
        // The ledger's last error of those rows may quote an answer.
        on!(tx.executor(), |c| sqlx::query(
            "UPDATE ledger SET last_error = NULL
             WHERE EXISTS (SELECT 1 FROM run_rows r JOIN runs u ON u.run_id = r.run_id
                           WHERE r.contact_hash = $1 AND u.activation = ledger.activation
                             AND r.row_key = ledger.row_key)"
        )
        .bind(&hash)
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(fail)?;
        let erased = on!(tx.executor(), |c| sqlx::query(
            "UPDATE run_rows SET reason = NULL, details = NULL, contact_hash = NULL
             WHERE contact_hash = $1"
        )
        .bind(&hash)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))
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
        Ok(erased)
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
