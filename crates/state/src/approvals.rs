//! `retl approve`: a person lets an activation's next run past the safety
//! limits that refused it (the surge guard, the first-run guard), once. An
//! approval answers a refused run, or is given ahead of one for a planned
//! backfill and expires. Who approved, when, which refused run it answered,
//! which run used it, and who revoked it stay in the `approvals` table.

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
    /// Given ahead of a refusal (`--ahead`): when it expires unused.
    pub expires_at: Option<String>,
}

const COLUMNS: &str = "activation, approved_at, approved_by, refused_run, used_by, expires_at";

/// The condition of an approval still open (not used, not revoked, not
/// expired), with the time now bound as parameter `now` (`$2`).
fn open(now: &str) -> String {
    format!("used_by IS NULL AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > {now})")
}

impl State {
    /// Records an approval of `activation`'s next run, answering the
    /// refused run `refused_run`, or given ahead of a refusal until
    /// `expires_at`; it waits for that run (an approval already open is not
    /// repeated: it is returned).
    pub async fn approve(
        &self,
        activation: &str,
        by: &str,
        refused_run: Option<&str>,
        expires_at: Option<&str>,
    ) -> Result<Approval> {
        if let Some(waiting) = self.waiting_approval(activation).await? {
            return Ok(waiting);
        }
        let now = self.now_text();
        on!(self.db.executor(), |c| sqlx::query(
            "INSERT INTO approvals (activation, approved_at, approved_by, refused_run, expires_at) VALUES ($1, $2, $3, $4, $5)"
        )
        .bind(activation)
        .bind(&now)
        .bind(by)
        .bind(refused_run)
        .bind(expires_at)
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
            expires_at: expires_at.map(str::to_owned),
        })
    }

    /// The approval open for `activation`'s next run, if there is one.
    pub async fn waiting_approval(&self, activation: &str) -> Result<Option<Approval>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM approvals WHERE activation = $1 AND {}
             ORDER BY approved_at LIMIT 1",
            open("$2")
        );
        on!(self.db.executor(), |c| sqlx::query_as(&sql)
            .bind(activation)
            .bind(self.now_text())
            .fetch_optional(c)
            .await)
        .map_err(Error::db("read approvals"))
    }

    /// Every open approval, of any activation (for `/metrics`).
    pub async fn open_approvals(&self) -> Result<Vec<Approval>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM approvals WHERE {} ORDER BY activation, approved_at",
            open("$1")
        );
        on!(self.db.executor(), |c| sqlx::query_as(&sql)
            .bind(self.now_text())
            .fetch_all(c)
            .await)
        .map_err(Error::db("read approvals"))
    }

    /// Revokes the approval open for `activation`'s next run (`by` says
    /// who): it answers nothing any more. `None` when none was open.
    pub async fn revoke_approval(&self, activation: &str, by: &str) -> Result<Option<Approval>> {
        let sql = format!(
            "UPDATE approvals SET revoked_at = $2, revoked_by = $3
             WHERE activation = $1 AND {} RETURNING {COLUMNS}",
            open("$4")
        );
        let now = self.now_text();
        let revoked: Vec<Approval> = on!(self.db.executor(), |c| sqlx::query_as(&sql)
            .bind(activation)
            .bind(&now)
            .bind(by)
            .bind(&now)
            .fetch_all(c)
            .await)
        .map_err(Error::db("revoke an approval"))?;
        Ok(revoked.into_iter().next())
    }
}

impl Fenced {
    /// Takes the approval waiting for this activation's next run, if there
    /// is one: this run uses it, and no other will.
    pub async fn take_approval(&mut self) -> Result<Option<Approval>> {
        let sql = format!(
            "UPDATE approvals SET used_by = $2, used_at = $3
             WHERE activation = $1 AND {}
             RETURNING {COLUMNS}",
            open("$3")
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
