//! Which source each activation reads, so that a renamed activation is not
//! taken for a new one; and `rename`, which carries a history over.
//!
//! An activation's history (ledger, key segments, cursor, run logs) is kept
//! under its name. A file renamed from `orders.yaml` to `shop_orders.yaml`
//! is, by name, a new activation with no history: its first run would send
//! every row again. So every run records a digest of its source (connection
//! without password, table or query, key, destination), and a first run
//! whose source another activation's history was built from is refused
//! until the history is moved ([`State::rename_activation`]) or the sharing
//! is confirmed.

use std::time::Duration;

use crate::db::on;
use crate::{Error, Fenced, Result, State};

/// What [`State::rename_activation`] moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Renamed {
    /// Ledger entries.
    pub ledger: u64,
    /// Blocks of settled keys.
    pub key_segments: u64,
    /// Runs (with their logged rows, which follow their run).
    pub runs: u64,
    /// The cursor-mode mark (0 or 1).
    pub cursors: u64,
}

impl Fenced {
    /// Records that this transaction's activation reads the source `source_id`.
    pub async fn note_source(&mut self, source_id: &str) -> Result<()> {
        on!(self.tx.executor(), |c| sqlx::query(
            "INSERT INTO activation_sources (activation, source_id, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (activation) DO UPDATE SET source_id = excluded.source_id, updated_at = excluded.updated_at"
        )
        .bind(&self.activation)
        .bind(source_id)
        .bind(&self.now)
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(Error::db("record the activation's source"))
    }
}

impl Fenced {
    /// Records where this transaction's activation sends (its destination's
    /// identity, see `retl_destination::Kind::identity`): what its settled
    /// keys answer for from now on.
    pub async fn note_destination(&mut self, identity: &str) -> Result<()> {
        on!(self.tx.executor(), |c| sqlx::query(
            "INSERT INTO activation_destinations (activation, identity, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (activation) DO UPDATE SET identity = excluded.identity, updated_at = excluded.updated_at"
        )
        .bind(&self.activation)
        .bind(identity)
        .bind(&self.now)
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(Error::db("record the activation's destination"))
    }
}

impl State {
    /// Forgets where `activation`'s keys were settled: its next run records
    /// the destination it sends to as theirs. For `retl demo --keep`, whose
    /// emulator is gone once it ends: the kept state answers for the one
    /// the kept configuration reaches next.
    pub async fn release_destination(&self, activation: &str) -> Result<()> {
        on!(self.db.executor(), |c| sqlx::query(
            "DELETE FROM activation_destinations WHERE activation = $1"
        )
        .bind(activation)
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(Error::db("release the activation's destination"))
    }

    /// The destination identity `activation`'s settled keys were settled
    /// against, and since when, if a run recorded one.
    pub async fn destination_of(&self, activation: &str) -> Result<Option<(String, String)>> {
        on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT identity, updated_at FROM activation_destinations WHERE activation = $1"
        )
        .bind(activation)
        .fetch_optional(c)
        .await)
        .map_err(Error::db("read the activation's destination"))
    }
}

impl Fenced {
    /// Sets how many keys this transaction's activation's warehouse key
    /// table holds as retl wrote them (`diff: warehouse`): a table found
    /// holding more holds keys retl never wrote.
    pub async fn set_key_table_keys(&mut self, keys: u64) -> Result<()> {
        self.count_key_table_keys("excluded.keys", keys).await
    }

    /// Adds `keys` written to the warehouse key table to its count.
    pub async fn add_key_table_keys(&mut self, keys: u64) -> Result<()> {
        self.count_key_table_keys("key_table_keys.keys + excluded.keys", keys)
            .await
    }

    /// Sets the key table's count to `value` (SQL over the row's `keys` and
    /// the `excluded.keys` given).
    async fn count_key_table_keys(&mut self, value: &str, keys: u64) -> Result<()> {
        let sql = format!(
            "INSERT INTO key_table_keys (activation, keys) VALUES ($1, $2)
             ON CONFLICT (activation) DO UPDATE SET keys = {value}"
        );
        on!(self.tx.executor(), |c| sqlx::query(&sql)
            .bind(&self.activation)
            .bind(i64::try_from(keys).unwrap_or(i64::MAX))
            .execute(c)
            .await
            .map(|_| ()))
        .map_err(Error::db("record the key table's keys"))
    }
}

impl State {
    /// How many keys retl wrote to `activation`'s warehouse key table, as
    /// far as it recorded (0 when it recorded none).
    pub async fn key_table_keys(&self, activation: &str) -> Result<u64> {
        let found: Option<(i64,)> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT keys FROM key_table_keys WHERE activation = $1"
        )
        .bind(activation)
        .fetch_optional(c)
        .await)
        .map_err(Error::db("read the key table's keys"))?;
        Ok(found.map_or(0, |(n,)| u64::try_from(n).unwrap_or_default()))
    }
}

impl Fenced {
    /// Records the mapped columns this activation's content hashes are now
    /// made under (at the end of a completed run).
    pub async fn set_content_shape(&mut self, shape: &str) -> Result<()> {
        on!(self.tx.executor(), |c| sqlx::query(
            "INSERT INTO content_shapes (activation, shape) VALUES ($1, $2)
             ON CONFLICT (activation) DO UPDATE SET shape = excluded.shape"
        )
        .bind(&self.activation)
        .bind(shape)
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(Error::db("record the content shape"))
    }
}

impl State {
    /// The mapped columns `activation`'s content hashes were last made
    /// under, if a completed run recorded them.
    pub async fn content_shape(&self, activation: &str) -> Result<Option<String>> {
        let found: Option<(String,)> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT shape FROM content_shapes WHERE activation = $1"
        )
        .bind(activation)
        .fetch_optional(c)
        .await)
        .map_err(Error::db("read the content shape"))?;
        Ok(found.map(|(shape,)| shape))
    }

    /// Another activation, not `activation`, whose history was built from
    /// the source `source_id` and still has settled keys: what a renamed
    /// activation would be.
    pub async fn history_of_source(
        &self,
        source_id: &str,
        activation: &str,
    ) -> Result<Option<String>> {
        let found: Option<(String,)> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT s.activation FROM activation_sources s
             WHERE s.source_id = $1 AND s.activation <> $2
               AND (EXISTS (SELECT 1 FROM ledger l WHERE l.activation = s.activation)
                    OR EXISTS (SELECT 1 FROM key_segments k WHERE k.activation = s.activation))
             ORDER BY s.updated_at DESC LIMIT 1"
        )
        .bind(source_id)
        .bind(activation)
        .fetch_optional(c)
        .await)
        .map_err(Error::db("look for the source's history"))?;
        Ok(found.map(|(name,)| name))
    }

    /// Moves `old`'s whole history (ledger, key segments, cursor, run logs,
    /// recorded source) to `new`, in one transaction, holding both
    /// activations' leases: no run of either can be under way. Refused when
    /// `new` has a history of its own or `old` has none.
    pub async fn rename_activation(&self, old: &str, new: &str, ttl: Duration) -> Result<Renamed> {
        let run_id = format!("rename-{old}-to-{new}");
        let old_lease = self.acquire_lease(old, &run_id, ttl).await?;
        let new_lease = match self.acquire_lease(new, &run_id, ttl).await {
            Ok(lease) => lease,
            Err(e) => {
                let _ = self.release_lease(&old_lease).await;
                return Err(e);
            }
        };
        let moved = async {
            let mut tx = self.fenced(&old_lease).await?;
            let count =
                |table: &'static str| format!("SELECT COUNT(*) FROM {table} WHERE activation = $1");
            let mut counts = [0u64; 4];
            let tables = ["ledger", "key_segments", "runs", "cursors"];
            for (slot, table) in counts.iter_mut().zip(tables) {
                let sql = count(table);
                let (n,): (i64,) = on!(tx.tx.executor(), |c| sqlx::query_as(&sql)
                    .bind(new)
                    .fetch_one(c)
                    .await)
                .map_err(Error::db("count a history"))?;
                // `new`'s own runs (refused first runs, say) settled nothing:
                // they stay, beside the runs that move.
                if n > 0 && table != "runs" {
                    return Err(Error::Rename(format!(
                        "activation `{new}` already has a history ({n} {table} rows): nothing moved"
                    )));
                }
                let (n,): (i64,) = on!(tx.tx.executor(), |c| sqlx::query_as(&sql)
                    .bind(old)
                    .fetch_one(c)
                    .await)
                .map_err(Error::db("count a history"))?;
                *slot = u64::try_from(n).unwrap_or_default();
            }
            if counts == [0; 4] {
                return Err(Error::Rename(format!(
                    "activation `{old}` has no history in this state database: nothing to move"
                )));
            }
            // What `new`'s refused first runs recorded gives way to `old`'s.
            for table in [
                "activation_sources",
                "activation_destinations",
                "key_table_keys",
            ] {
                let sql = format!("DELETE FROM {table} WHERE activation = $1");
                on!(tx.tx.executor(), |c| sqlx::query(&sql)
                    .bind(new)
                    .execute(c)
                    .await
                    .map(|_| ()))
                .map_err(Error::db("move a history"))?;
            }
            for table in tables.into_iter().chain([
                "key_prefixes",
                "key_bounds",
                "activation_sources",
                "approvals",
                "content_shapes",
                "incidents",
                "activation_destinations",
                "key_table_keys",
            ]) {
                let sql = format!("UPDATE {table} SET activation = $2 WHERE activation = $1");
                on!(tx.tx.executor(), |c| sqlx::query(&sql)
                    .bind(old)
                    .bind(new)
                    .execute(c)
                    .await
                    .map(|_| ()))
                .map_err(Error::db("move a history"))?;
            }
            tx.commit().await?;
            let [ledger, key_segments, runs, cursors] = counts;
            Ok(Renamed {
                ledger,
                key_segments,
                runs,
                cursors,
            })
        }
        .await;
        let _ = self.release_lease(&new_lease).await;
        let _ = self.release_lease(&old_lease).await;
        moved
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::test_state;

    #[tokio::test]
    async fn where_keys_were_settled_is_recorded_moved_with_a_rename_and_released() {
        let (_dir, state) = test_state().await;
        let ttl = Duration::from_mins(1);
        assert_eq!(state.destination_of("orders").await.unwrap(), None);
        let lease = state.acquire_lease("orders", "run-1", ttl).await.unwrap();
        let mut tx = state.fenced(&lease).await.unwrap();
        tx.note_destination("https://invitations.example business unit bu-1")
            .await
            .unwrap();
        tx.note_source("s1").await.unwrap();
        tx.start_run().await.unwrap();
        tx.record(&[crate::Outcome {
            key: [1; 16],
            content: [2; 16],
            status: retl_diff::Status::Sent,
            row_key: Some("1"),
            reference: Some("1"),
            error: None,
        }])
        .await
        .unwrap();
        tx.commit().await.unwrap();
        state.release_lease(&lease).await.unwrap();
        let (identity, _) = state.destination_of("orders").await.unwrap().unwrap();
        assert_eq!(identity, "https://invitations.example business unit bu-1");
        assert!(state.has_delivered("orders").await.unwrap());

        state
            .rename_activation("orders", "shop", ttl)
            .await
            .unwrap();
        assert_eq!(state.destination_of("orders").await.unwrap(), None);
        assert!(state.destination_of("shop").await.unwrap().is_some());
        state.release_destination("shop").await.unwrap();
        assert_eq!(state.destination_of("shop").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_source_read_by_another_activations_history_is_found_and_moved_with_it() {
        let (_dir, state) = test_state().await;
        let ttl = Duration::from_mins(1);
        // `orders` reads source `s1` and has settled a key.
        let lease = state.acquire_lease("orders", "run-1", ttl).await.unwrap();
        let mut tx = state.fenced(&lease).await.unwrap();
        tx.note_source("s1").await.unwrap();
        tx.start_run().await.unwrap();
        tx.record(&[crate::Outcome {
            key: [1; 16],
            content: [2; 16],
            status: retl_diff::Status::Sent,
            row_key: Some("1"),
            reference: Some("1"),
            error: None,
        }])
        .await
        .unwrap();
        tx.commit().await.unwrap();
        state.release_lease(&lease).await.unwrap();

        assert_eq!(
            state
                .history_of_source("s1", "renamed")
                .await
                .unwrap()
                .as_deref(),
            Some("orders")
        );
        assert_eq!(state.history_of_source("s1", "orders").await.unwrap(), None);
        assert_eq!(
            state.history_of_source("s2", "renamed").await.unwrap(),
            None
        );

        let moved = state
            .rename_activation("orders", "renamed", ttl)
            .await
            .unwrap();
        assert_eq!((moved.ledger, moved.runs), (1, 1));
        assert_eq!(
            state.history_of_source("s1", "renamed").await.unwrap(),
            None
        );
        assert_eq!(
            state
                .history_of_source("s1", "other")
                .await
                .unwrap()
                .as_deref(),
            Some("renamed")
        );
        // Nothing is left to move, and a name with a history takes none.
        assert!(
            state
                .rename_activation("orders", "renamed", ttl)
                .await
                .is_err()
        );
        assert!(
            state
                .rename_activation("renamed", "renamed2", ttl)
                .await
                .is_ok()
        );
    }
}
