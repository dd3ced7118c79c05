//! Monthly allowances (`limits.max_per_month`), claimed row by row: each
//! row claims one invitation of each allowance it sends under in the same
//! fenced transaction that marks it in flight, and gives it back if its
//! request is not carried out. Two runs at once, in one process or two, on
//! SQLite or PostgreSQL, cannot together pass an allowance: the claim is
//! one conditional update of one counter row, which the database
//! serialises.

use crate::db::on;
use crate::{Error, Fenced, Result, State};

impl Fenced {
    /// Makes the counter of `scope` for `month` (`YYYY-MM`, UTC), starting
    /// at `used` (what the run logs say was sent this month before), unless
    /// it is there.
    pub async fn seed_allowance(&mut self, scope: &str, month: &str, used: u64) -> Result<()> {
        on!(self.tx.executor(), |c| sqlx::query(
            "INSERT INTO allowance_uses (scope, month, used) VALUES ($1, $2, $3)
             ON CONFLICT (scope, month) DO NOTHING"
        )
        .bind(scope)
        .bind(month)
        .bind(i64::try_from(used).unwrap_or(i64::MAX))
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(Error::db("open a monthly allowance"))
    }

    /// Claims one invitation of `scope`'s allowance of `limit` for `month`;
    /// `false` when it is spent (nothing claimed).
    pub async fn claim_allowance(&mut self, scope: &str, month: &str, limit: u64) -> Result<bool> {
        if limit == 0 {
            return Ok(false);
        }
        let claimed = on!(self.tx.executor(), |c| sqlx::query(
            "INSERT INTO allowance_uses (scope, month, used) VALUES ($1, $2, 1)
             ON CONFLICT (scope, month) DO UPDATE SET used = allowance_uses.used + 1
             WHERE allowance_uses.used < $3"
        )
        .bind(scope)
        .bind(month)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(c)
        .await
        .map(|done| done.rows_affected()))
        .map_err(Error::db("claim a monthly allowance"))?;
        // A new month's first claim inserts; a spent one changes no row.
        Ok(claimed == 1)
    }

    /// Gives back one invitation of `scope`'s allowance for `month` (a
    /// claimed row whose request was not carried out).
    pub async fn release_allowance(&mut self, scope: &str, month: &str) -> Result<()> {
        on!(self.tx.executor(), |c| sqlx::query(
            "UPDATE allowance_uses SET used = used - 1 WHERE scope = $1 AND month = $2 AND used > 0"
        )
        .bind(scope)
        .bind(month)
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(Error::db("give back a monthly allowance"))
    }
}

impl State {
    /// What `scope`'s allowance for `month` has claimed (sent, in flight or
    /// uncertain), if its counter was made.
    pub async fn allowance_used(&self, scope: &str, month: &str) -> Result<Option<u64>> {
        let found: Option<(i64,)> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT used FROM allowance_uses WHERE scope = $1 AND month = $2"
        )
        .bind(scope)
        .bind(month)
        .fetch_optional(c)
        .await)
        .map_err(Error::db("read a monthly allowance"))?;
        Ok(found.map(|(n,)| u64::try_from(n).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::test_state;

    #[tokio::test]
    async fn an_allowance_is_claimed_one_row_at_a_time_and_given_back() {
        let (_dir, state) = test_state().await;
        let lease = state
            .acquire_lease("a1", "run-1", Duration::from_mins(1))
            .await
            .unwrap();
        let mut tx = state.fenced(&lease).await.unwrap();
        tx.seed_allowance("destination:tp", "2026-12", 18)
            .await
            .unwrap();
        // Seeding twice keeps the first count.
        tx.seed_allowance("destination:tp", "2026-12", 0)
            .await
            .unwrap();
        let mut claimed = 0;
        for _ in 0..5 {
            if tx
                .claim_allowance("destination:tp", "2026-12", 20)
                .await
                .unwrap()
            {
                claimed += 1;
            }
        }
        assert_eq!(claimed, 2);
        tx.release_allowance("destination:tp", "2026-12")
            .await
            .unwrap();
        assert!(
            tx.claim_allowance("destination:tp", "2026-12", 20)
                .await
                .unwrap()
        );
        assert!(
            !tx.claim_allowance("destination:tp", "2026-12", 20)
                .await
                .unwrap()
        );
        // A month with no counter yet starts at its first claim.
        assert!(
            tx.claim_allowance("destination:tp", "2027-01", 20)
                .await
                .unwrap()
        );
        assert!(
            !tx.claim_allowance("destination:x", "2027-01", 0)
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();
        assert_eq!(
            state
                .allowance_used("destination:tp", "2026-12")
                .await
                .unwrap(),
            Some(20)
        );
    }
}
