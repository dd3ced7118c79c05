//! Writing a created invitation link back to the warehouse
//! (`writeback:`), bounded by the request timeout and the interrupt. Part
//! of a live run's deliver phase.

use std::time::Duration;

use retl_source::{Source, Writer};

use super::Run;
use super::classify::Pending;
use crate::Result;

/// A live run's link writer: the warehouse connection, and the type of the
/// writeback's key column as the database names it.
pub(super) struct WriteBack {
    writer: Writer,
    key_type: Option<String>,
}

impl WriteBack {
    /// Connects to the warehouse `source` reads, to write `writeback`'s links.
    pub(super) async fn open(
        run: &Run<'_>,
        writeback: &crate::config::Writeback,
        source: &Source,
    ) -> Result<WriteBack> {
        let key_type = source.db_type(&writeback.key_column).map(str::to_owned);
        let writer = Writer::for_source(&run.activation.source)
            .await
            .map_err(|e| run.source_error(e))?;
        Ok(WriteBack { writer, key_type })
    }

    /// Writes a created link's URL back to the warehouse; a problem to log, if any.
    pub(super) async fn write(
        &mut self,
        run: &Run<'_>,
        p: &Pending,
        url: Option<&str>,
    ) -> Option<String> {
        let (Some(writeback), Some(url)) = (run.activation.writeback.as_ref(), url) else {
            return None;
        };
        let writer = &mut self.writer;
        let Some(key) = &p.writeback_key else {
            return Some(format!(
                "link created; not written back: `{}` is NULL on this row",
                writeback.key_column
            ));
        };
        // A writeback waits no longer than a request, nor past an interrupt's deadline.
        let limit = run.options.drain.max(Duration::from_secs(5));
        let deadline = run
            .options
            .cancel
            .deadline(run.options.drain)
            .unwrap_or_else(|| tokio::time::Instant::now() + limit)
            .min(tokio::time::Instant::now() + limit);
        let written = tokio::time::timeout_at(
            deadline,
            writer.set_text(
                &writeback.table,
                &writeback.key_column,
                &writeback.url_column,
                key,
                self.key_type.as_deref(),
                url,
            ),
        )
        .await;
        let Ok(written) = written else {
            tracing::warn!("writing an invitation link back took too long; given up");
            return Some(format!(
                "link created; writing it back did not finish within {}s",
                limit.as_secs()
            ));
        };
        match written {
            Ok(0) => Some(format!(
                "link created; not written back: no row of `{}` has that `{}`",
                writeback.table, writeback.key_column
            )),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "writing an invitation link back failed");
                Some(format!("link created; writing it back failed: {e}"))
            }
        }
    }
}
