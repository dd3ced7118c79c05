//! One invitation per customer per period (`dedupe:`): the last invitation
//! of each contact (the keyed hash of an email) in each scope (an
//! activation, or a destination and all its activations). A row claims its
//! contact in the same fenced transaction that marks it in flight, so two
//! runs at once cannot both invite one person, and a crash after the mark
//! keeps the claim (the row is `uncertain`: it may have been invited).

use retl_diff::RowHash;

use crate::contact::hex;
use crate::db::on;
use crate::{Error, Fenced, Result, State};

/// An earlier invitation of a contact, within the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Earlier {
    /// The run that invited them.
    pub run_id: String,
    /// The activation of that run.
    pub activation: String,
    /// When (RFC 3339).
    pub invited_at: String,
}

impl From<(String, String, String)> for Earlier {
    /// `(run_id, activation, invited_at)` as read.
    fn from((run_id, activation, invited_at): (String, String, String)) -> Earlier {
        Earlier {
            run_id,
            activation,
            invited_at,
        }
    }
}

/// The run log's answer for a customer: a row of one of `activations` that
/// was sent at or after `since` to one of `contacts` (keyed hashes), other
/// than the row `(me, row_key)` itself. The run log keeps every sent row's
/// hash, so a dedupe window covers invitations made before dedupe was
/// switched on.
const SENT_BEFORE: &str = "SELECT r.run_id, runs.activation, r.at FROM run_rows r
     JOIN runs ON runs.run_id = r.run_id
     WHERE r.contact_hash = $1 AND r.outcome = 'sent' AND r.at >= $2 AND runs.activation = $3
       AND NOT (runs.activation = $4 AND r.row_key = $5)
     ORDER BY r.at DESC LIMIT 1";

/// The run log's query for one hash and one activation of the scope.
fn sent_before<'q, DB: sqlx::Database>(
    contact: &'q str,
    activation: &'q str,
    asking: Asking<'q>,
) -> sqlx::query::QueryAs<'q, DB, (String, String, String), <DB as sqlx::Database>::Arguments<'q>>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (String, String, String): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    sqlx::query_as(SENT_BEFORE)
        .bind(contact)
        .bind(asking.since)
        .bind(activation)
        .bind(asking.row.0)
        .bind(asking.row.1)
}

/// The first of `contacts` some activation of the scope sent to, on
/// `$executor` (a run's transaction, or the pool); a macro rather than a
/// function because the two executors are different types.
macro_rules! first_sent {
    ($executor:expr, $contacts:expr, $asking:expr) => {{
        let mut earlier = None;
        'found: for contact in $contacts {
            for activation in $asking.activations {
                let found: Option<(String, String, String)> =
                    on!($executor, |c| sent_before(contact, activation, $asking)
                        .fetch_optional(c)
                        .await)
                    .map_err(Error::db("read the run log"))?;
                if let Some(found) = found {
                    earlier = Some(Earlier::from(found));
                    break 'found;
                }
            }
        }
        Ok(earlier)
    }};
}

/// Whom a dedupe lookup is for: a scope's activations and window, and the
/// row asking (it does not count against itself).
#[derive(Debug, Clone, Copy)]
pub struct Asking<'a> {
    /// The activations whose sent rows count in the scope.
    pub activations: &'a [String],
    /// The window's start (RFC 3339).
    pub since: &'a str,
    /// The row's activation and key text.
    pub row: (&'a str, &'a str),
}

impl Fenced {
    /// A customer sent to within the window, by the run log (see
    /// [`Asking`]): `contacts` are her keyed hashes (the current one first).
    pub async fn sent_before(
        &mut self,
        contacts: &[&str],
        asking: Asking<'_>,
    ) -> Result<Option<Earlier>> {
        first_sent!(self.tx.executor(), contacts, asking)
    }

    /// Claims `contact` in `scope` for the row `key` of this run, unless
    /// another row invited them at or after `since` (RFC 3339), under it or
    /// under one of the hashes an older release kept for the same email
    /// (`legacy`): then that invitation, and nothing is claimed.
    pub async fn claim_contact(
        &mut self,
        scope: &str,
        contact: &str,
        legacy: &[String],
        key: &RowHash,
        since: &str,
    ) -> Result<Option<Earlier>> {
        for old in legacy {
            let found: Option<(String, String, String)> =
                on!(self.tx.executor(), |c| sqlx::query_as(
                    "SELECT run_id, activation, invited_at FROM contacts
                 WHERE scope = $1 AND contact_hash = $2 AND invited_at >= $3
                   AND NOT (activation = $4 AND key_hash = $5)"
                )
                .bind(scope)
                .bind(old)
                .bind(since)
                .bind(&self.activation)
                .bind(hex(key.as_slice()))
                .fetch_optional(c)
                .await)
                .map_err(Error::db("read a contact"))?;
            if let Some(found) = found {
                return Ok(Some(Earlier::from(found)));
            }
        }
        let claimed: Vec<(String,)> = on!(self.tx.executor(), |c| sqlx::query_as(
            "INSERT INTO contacts (scope, contact_hash, activation, key_hash, run_id, invited_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (scope, contact_hash) DO UPDATE SET
                activation = excluded.activation, key_hash = excluded.key_hash,
                run_id = excluded.run_id, invited_at = excluded.invited_at
             WHERE contacts.invited_at < $7
                OR (contacts.activation = excluded.activation AND contacts.key_hash = excluded.key_hash)
             RETURNING run_id"
        )
        .bind(scope)
        .bind(contact)
        .bind(&self.activation)
        .bind(hex(key.as_slice()))
        .bind(&self.run_id)
        .bind(&self.now)
        .bind(since)
        .fetch_all(c)
        .await)
        .map_err(Error::db("claim a contact"))?;
        if !claimed.is_empty() {
            return Ok(None);
        }
        let found: Option<(String, String, String)> = on!(self.tx.executor(), |c| sqlx::query_as(
            "SELECT run_id, activation, invited_at FROM contacts WHERE scope = $1 AND contact_hash = $2"
        )
        .bind(scope)
        .bind(contact)
        .fetch_optional(c)
        .await)
        .map_err(Error::db("read a contact"))?;
        Ok(found.map(Earlier::from))
    }

    /// Gives back this run's claim of `contact` in `scope` for the row
    /// `key`: its request was not carried out (rejected, failed, not sent).
    pub async fn release_contact(
        &mut self,
        scope: &str,
        contact: &str,
        key: &RowHash,
    ) -> Result<()> {
        on!(self.tx.executor(), |c| sqlx::query(
            "DELETE FROM contacts WHERE scope = $1 AND contact_hash = $2
               AND activation = $3 AND key_hash = $4 AND run_id = $5"
        )
        .bind(scope)
        .bind(contact)
        .bind(&self.activation)
        .bind(hex(key.as_slice()))
        .bind(&self.run_id)
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(Error::db("release a contact"))
    }
}

impl State {
    /// [`Fenced::sent_before`], outside a run's transaction (a preview).
    pub async fn sent_before(
        &self,
        contacts: &[&str],
        asking: Asking<'_>,
    ) -> Result<Option<Earlier>> {
        first_sent!(self.db.executor(), contacts, asking)
    }

    /// Whether anyone was ever forgotten (`retl forget`) in this state: a
    /// run looks its rows' customers up only if so.
    pub async fn anyone_forgotten(&self) -> Result<bool> {
        let found: Option<(String,)> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT contact_hash FROM forgotten LIMIT 1"
        )
        .fetch_optional(c)
        .await)
        .map_err(Error::db("look for forgotten people"))?;
        Ok(found.is_some())
    }

    /// When the person whose email hashes to one of `contacts` was
    /// forgotten (`retl forget`), if she was: she is never invited again.
    pub async fn contact_forgotten(&self, contacts: &[&str]) -> Result<Option<String>> {
        for contact in contacts {
            let found: Option<(String,)> = on!(self.db.executor(), |c| sqlx::query_as(
                "SELECT forgotten_at FROM forgotten WHERE contact_hash = $1"
            )
            .bind(contact)
            .fetch_optional(c)
            .await)
            .map_err(Error::db("look a forgotten person up"))?;
            if let Some((at,)) = found {
                return Ok(Some(at));
            }
        }
        Ok(None)
    }

    /// Whether another row than `key` of `activation` invited `contact` in
    /// `scope` at or after `since` (a preview's question; it claims nothing).
    pub async fn contact_invited(
        &self,
        scope: &str,
        contacts: &[&str],
        activation: &str,
        key: &RowHash,
        since: &str,
    ) -> Result<Option<Earlier>> {
        for contact in contacts {
            let found: Option<(String, String, String)> =
                on!(self.db.executor(), |c| sqlx::query_as(
                    "SELECT run_id, activation, invited_at FROM contacts
                 WHERE scope = $1 AND contact_hash = $2 AND invited_at >= $3
                   AND NOT (activation = $4 AND key_hash = $5)"
                )
                .bind(scope)
                .bind(contact)
                .bind(since)
                .bind(activation)
                .bind(hex(key.as_slice()))
                .fetch_optional(c)
                .await)
                .map_err(Error::db("read a contact"))?;
            if let Some(found) = found {
                return Ok(Some(Earlier::from(found)));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::test_state;

    #[tokio::test]
    async fn a_claim_kept_under_an_older_releases_hash_still_withholds_the_customer() {
        let (_dir, state) = test_state().await;
        let ttl = Duration::from_mins(1);
        let lease = state.acquire_lease("orders", "run-1", ttl).await.unwrap();
        let mut tx = state.fenced(&lease).await.unwrap();
        let since = "2000-01-01T00:00:00.000Z";
        // An older release claimed her under the Unicode form's hash.
        assert!(
            tx.claim_contact("activation:orders", "legacy-hash", &[], &[1; 16], since)
                .await
                .unwrap()
                .is_none()
        );
        // Now her row hashes otherwise; the legacy hash is looked up too.
        let earlier = tx
            .claim_contact(
                "activation:orders",
                "new-hash",
                &["legacy-hash".to_owned()],
                &[2; 16],
                since,
            )
            .await
            .unwrap();
        assert_eq!(earlier.map(|e| e.run_id).as_deref(), Some("run-1"));
        // Her own row again (a retry) is not withheld by its own claim.
        assert!(
            tx.claim_contact(
                "activation:orders",
                "new-hash",
                &["legacy-hash".to_owned()],
                &[1; 16],
                since,
            )
            .await
            .unwrap()
            .is_none()
        );
        tx.commit().await.unwrap();
    }
}
