//! What the daemon's page shows at a glance: each activation's last runs
//! and sends, invitations per day, a run's rows by outcome.

use crate::db::on;
use crate::runs::LogRow;
use crate::{Error, Result, RowLog, RowOutcome, State};

impl State {
    /// Every activation that has runs, by name.
    pub async fn activations_with_runs(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT DISTINCT activation FROM runs ORDER BY activation"
        )
        .fetch_all(c)
        .await)
        .map_err(Error::db("list activations"))?;
        Ok(rows.into_iter().map(|(a,)| a).collect())
    }

    /// Invitations sent per UTC day since `since` (RFC 3339), by
    /// activation: `(activation, YYYY-MM-DD, count)`.
    pub async fn sent_per_day(&self, since: &str) -> Result<Vec<(String, String, u64)>> {
        let rows: Vec<(String, String, i64)> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT u.activation, substr(r.at, 1, 10) AS day, COUNT(*)
             FROM run_rows r JOIN runs u ON u.run_id = r.run_id
             WHERE r.outcome = $2 AND r.at >= $1
             GROUP BY u.activation, substr(r.at, 1, 10)
             ORDER BY 1, 2"
        )
        .bind(since)
        .bind(RowOutcome::Sent.as_str())
        .fetch_all(c)
        .await)
        .map_err(Error::db("count sends per day"))?;
        Ok(rows
            .into_iter()
            .map(|(a, day, n)| (a, day, u64::try_from(n).unwrap_or_default()))
            .collect())
    }

    /// A page of a run's rows sorted by outcome, then key: `limit` rows
    /// from `offset`, and whether more follow.
    pub async fn run_rows_by_outcome(
        &self,
        run_id: &str,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<RowLog>, bool)> {
        let rows: Vec<LogRow> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT row_key, reference, outcome, reason, external_id, details, request
             FROM run_rows WHERE run_id = $1
             ORDER BY outcome, row_key, seq LIMIT $2 OFFSET $3"
        )
        .bind(run_id)
        .bind(i64::from(limit) + 1)
        .bind(i64::from(offset))
        .fetch_all(c)
        .await)
        .map_err(Error::db("read a run log"))?;
        let more = rows.len() > limit as usize;
        let rows = rows
            .into_iter()
            .take(limit as usize)
            .map(RowLog::try_from)
            .collect::<Result<_>>()?;
        Ok((rows, more))
    }
}
