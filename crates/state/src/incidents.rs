//! Alert incidents: a rule that holds for an activation opens one (and
//! alerts), holds it while it keeps holding (silent), and closes it when it
//! no longer does (and says so: `recovered`). Kept in the state so that
//! "once per incident" holds across `retl run` processes and the daemon.

use crate::db::on;
use crate::{Error, Result, State};

impl State {
    /// Opens the incident `event` of `activation` (from run `run_id`), unless
    /// one is open: `true` when this call opened it (and should alert).
    pub async fn open_incident(
        &self,
        activation: &str,
        event: &str,
        run_id: Option<&str>,
    ) -> Result<bool> {
        let now = self.now_text();
        let inserted = on!(self.db.executor(), |c| {
            sqlx::query(
            "INSERT INTO incidents (activation, event, opened_at, run_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING"
        )
        .bind(activation)
        .bind(event)
        .bind(&now)
        .bind(run_id)
        .execute(c)
        .await
        .map(|done| done.rows_affected())
        })
        .map_err(Error::db("open an incident"))?;
        Ok(inserted > 0)
    }

    /// Closes the open incident `event` of `activation`, if there is one:
    /// when it opened (RFC 3339), to say it recovered.
    pub async fn close_incident(&self, activation: &str, event: &str) -> Result<Option<String>> {
        let now = self.now_text();
        let closed: Vec<(String,)> = on!(self.db.executor(), |c| sqlx::query_as(
            "UPDATE incidents SET closed_at = $3
             WHERE activation = $1 AND event = $2 AND closed_at IS NULL
             RETURNING opened_at"
        )
        .bind(activation)
        .bind(event)
        .bind(&now)
        .fetch_all(c)
        .await)
        .map_err(Error::db("close an incident"))?;
        Ok(closed.into_iter().next().map(|(at,)| at))
    }

    /// When `activation`'s last run completed (RFC 3339), if one did.
    pub async fn last_success(&self, activation: &str) -> Result<Option<String>> {
        let found: Option<(String,)> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT started_at FROM runs WHERE activation = $1 AND status = $2
             ORDER BY started_at DESC LIMIT 1"
        )
        .bind(activation)
        .bind(crate::RunStatus::Completed.as_str())
        .fetch_optional(c)
        .await)
        .map_err(Error::db("read the last successful run"))?;
        Ok(found.map(|(at,)| at))
    }
}
