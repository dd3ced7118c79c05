//! `retl runs settle`: a person looked in Trustpilot's own interface and
//! settles rows a run left `uncertain`: sent (settled for good) or not sent
//! (new again: the next run sends them). Who settled each and when stay in
//! `settlements`, for `retl runs find`.

use serde::Serialize;

use crate::db::on;
use crate::{Error, Fenced, Result, State};

/// One row settled by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Settlement {
    /// The activation.
    pub activation: String,
    /// The run that left the row uncertain.
    pub run_id: String,
    /// The row's key.
    pub row_key: String,
    /// `sent` or `not_sent`.
    pub settled_as: String,
    /// Who settled it.
    pub settled_by: String,
    /// When (RFC 3339, UTC).
    pub settled_at: String,
}

impl Fenced {
    /// Settles the row `row_key` that run `run_id` left uncertain, as sent
    /// (`sent`) or not (it is then retried as a failed row is, by the next
    /// run), recording who (`by`). `Ok(false)` when this activation holds no
    /// uncertain row with that key that the run logged uncertain.
    pub async fn settle_uncertain(
        &mut self,
        run_id: &str,
        row_key: &str,
        sent: bool,
        by: &str,
    ) -> Result<bool> {
        let (status, reason) = if sent {
            ("sent", "settled as sent by hand (`retl runs settle`)")
        } else {
            (
                "failed",
                "settled as not sent by hand (`retl runs settle`): new again",
            )
        };
        let changed = on!(self.tx.executor(), |c| {
            sqlx::query(
            "UPDATE ledger SET status = $1, failing_since = NULL, last_error = $2, updated_at = $3
             WHERE activation = $4 AND row_key = $5 AND status = 'uncertain'
               AND EXISTS (SELECT 1 FROM run_rows
                           WHERE run_id = $6 AND row_key = $5 AND outcome = 'uncertain')"
        )
        .bind(status)
        .bind(reason)
        .bind(&self.now)
        .bind(&self.activation)
        .bind(row_key)
        .bind(run_id)
        .execute(c)
        .await
        .map(|done| done.rows_affected())
        })
        .map_err(Error::db("settle an uncertain row"))?;
        if changed == 0 {
            return Ok(false);
        }
        on!(self.tx.executor(), |c| sqlx::query(
            "INSERT INTO settlements (activation, run_id, row_key, settled_as, settled_by, settled_at)
             VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(&self.activation)
        .bind(run_id)
        .bind(row_key)
        .bind(if sent { "sent" } else { "not_sent" })
        .bind(by)
        .bind(&self.now)
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(Error::db("record a settlement"))?;
        Ok(true)
    }
}

impl State {
    /// The rows with key `row_key` settled by hand, oldest first.
    pub async fn settlements(&self, row_key: &str) -> Result<Vec<Settlement>> {
        on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT activation, run_id, row_key, settled_as, settled_by, settled_at
             FROM settlements WHERE row_key = $1 ORDER BY settled_at"
        )
        .bind(row_key)
        .fetch_all(c)
        .await)
        .map_err(Error::db("read settlements"))
    }
}

/// A key settled as `baseline` (recorded, never sent), as `retl runs find`
/// tells it: the activation, and its runs that recorded a baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaselineKey {
    /// The activation.
    pub activation: String,
    /// Its runs that recorded rows as baseline (a first run with
    /// `first_run: skip_existing`, `retl baseline`), oldest first.
    pub runs: Vec<String>,
}

impl State {
    /// Where the key `row_key` (as the run log prints it) is settled without
    /// a run-log row: as baseline (the ledger says so, or the key segments
    /// hold it and no run logged it sent). Of `activation`, or of every
    /// activation with runs.
    pub async fn baseline_key(
        &self,
        row_key: &str,
        activation: Option<&str>,
    ) -> Result<Vec<BaselineKey>> {
        let hash = retl_diff::key_hash_of_text(row_key);
        let names = match activation {
            Some(name) => vec![name.to_owned()],
            None => self.activations_with_runs().await?,
        };
        let mut found = Vec::new();
        for name in names {
            let status: Option<String> = on!(self.db.executor(), |c| sqlx::query_scalar(
                "SELECT status FROM ledger WHERE activation = $1 AND key_hash = $2"
            )
            .bind(&name)
            .bind(hash.as_slice())
            .fetch_optional(c)
            .await)
            .map_err(Error::db("look a key up in the ledger"))?;
            let baseline = match status.as_deref() {
                Some(status) => status == "baseline",
                None => !self.segment_contents(&name, &[hash]).await?.is_empty(),
            };
            if baseline {
                let runs = self
                    .list_runs(Some(&name), 10_000)
                    .await?
                    .into_iter()
                    .rev()
                    .filter(|run| run.counts.baseline > 0)
                    .map(|run| run.run_id)
                    .collect();
                found.push(BaselineKey {
                    activation: name,
                    runs,
                });
            }
        }
        Ok(found)
    }
}
