//! `retl approve`: a person lets an activation's next run past the safety
//! limits that refused it (the surge guard, the first-run guard), once. Who
//! approved, when, which refused run it answered and which run used it stay
//! in the `approvals` table.

use serde::Serialize;

use crate::db::on;
use crate::{Error, Fenced, Result, State};

/// One approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Approval {
    /// The activation.
    pub activation: String,
    /// When (RFC 3339, UTC).
    pub approved_at: String,
    /// Who: `--by`, else the user running `retl approve`.
    pub approved_by: String,
    /// The refused run it answers, if one was named (`--run`).
    pub refused_run: Option<String>,
    /// The run that used it; `None` while it waits for the next run.
    pub used_by: Option<String>,
}

const COLUMNS: &str = "activation, approved_at, approved_by, refused_run, used_by";

impl State {
    /// Records an approval of `activation`'s next run; it waits for that
    /// run (an approval already waiting is not repeated: it is returned).
    pub async fn approve(
        &self,
        activation: &str,
        by: &str,
        refused_run: Option<&str>,
    ) -> Result<Approval> {
        if let Some(waiting) = self.waiting_approval(activation).await? {
            return Ok(waiting);
        }
        let now = self.now_text();
        on!(self.db.executor(), |c| sqlx::query(
            "INSERT INTO approvals (activation, approved_at, approved_by, refused_run) VALUES ($1, $2, $3, $4)"
        )
        .bind(activation)
        .bind(&now)
        .bind(by)
        .bind(refused_run)
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(Error::db("record an approval"))?;
        Ok(Approval {
            activation: activation.to_owned(),
            approved_at: now,
            approved_by: by.to_owned(),
            refused_run: refused_run.map(str::to_owned),
            used_by: None,
        })
    }

    /// The approval waiting for `activation`'s next run, if there is one.
    pub async fn waiting_approval(&self, activation: &str) -> Result<Option<Approval>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM approvals WHERE activation = $1 AND used_by IS NULL
             ORDER BY approved_at LIMIT 1"
        );
        on!(self.db.executor(), |c| sqlx::query_as(&sql)
            .bind(activation)
            .fetch_optional(c)
            .await)
        .map_err(Error::db("read approvals"))
    }
}

impl Fenced {
    /// Takes the approval waiting for this activation's next run, if there
    /// is one: this run uses it, and no other will.
    pub async fn take_approval(&mut self) -> Result<Option<Approval>> {
        let sql = format!(
            "UPDATE approvals SET used_by = $2, used_at = $3
             WHERE activation = $1 AND used_by IS NULL
             RETURNING {COLUMNS}"
        );
        let taken: Vec<Approval> = on!(self.tx.executor(), |c| sqlx::query_as(&sql)
            .bind(&self.activation)
            .bind(&self.run_id)
            .bind(&self.now)
            .fetch_all(c)
            .await)
        .map_err(Error::db("take an approval"))?;
        Ok(taken.into_iter().next())
    }
}
