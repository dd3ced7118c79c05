//! Each activation's cursor (cursor mode): its high-water mark and the start
//! of its last full scan, as completed runs record them (table `cursors`).

use crate::db::on;
use crate::{Error, Fenced, Result, State};

/// An activation's cursor (cursor mode), as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The high-water mark: its kind (`int`, `time`, `text`) and text.
    pub high_water: Option<(String, String)>,
    /// When the last full scan started (RFC 3339, UTC).
    pub full_scan_at: Option<String>,
}

impl State {
    /// The activation's cursor: its high-water mark (kind and text) and when
    /// its last full scan started, as recorded by completed runs.
    pub async fn cursor(&self, activation: &str) -> Result<Cursor> {
        let row: Option<(Option<String>, Option<String>, Option<String>)> =
            on!(self.db.executor(), |c| sqlx::query_as(
                "SELECT kind, high_water, full_scan_at FROM cursors WHERE activation = $1"
            )
            .bind(activation)
            .fetch_optional(c)
            .await)
            .map_err(Error::db("read the cursor"))?;
        Ok(match row {
            Some((kind, high_water, full_scan_at)) => Cursor {
                high_water: kind.zip(high_water),
                full_scan_at,
            },
            None => Cursor::default(),
        })
    }
}

impl Fenced {
    /// Records the activation's cursor after a completed run: its high-water
    /// mark (`kind` and text, as the source crate writes them; `None` keeps
    /// the one recorded) and, after a full scan, when it started.
    pub async fn set_cursor(
        &mut self,
        high_water: Option<(&str, &str)>,
        full_scan_at: Option<&str>,
    ) -> Result<()> {
        on!(self.tx.executor(), |c| sqlx::query(
            "INSERT INTO cursors (activation, kind, high_water, full_scan_at, updated_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (activation) DO UPDATE SET
                kind = COALESCE(excluded.kind, cursors.kind),
                high_water = COALESCE(excluded.high_water, cursors.high_water),
                full_scan_at = COALESCE(excluded.full_scan_at, cursors.full_scan_at),
                updated_at = excluded.updated_at"
        )
        .bind(&self.activation)
        .bind(high_water.map(|(kind, _)| kind))
        .bind(high_water.map(|(_, text)| text))
        .bind(full_scan_at)
        .bind(&self.now)
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(Error::db("record the cursor"))?;
        Ok(())
    }
}
