//! Writing a created invitation link back to the warehouse
//! (`writeback:`), bounded by the request timeout and the interrupt.

use std::time::Duration;

use super::RunCtx;
use super::classify::Pending;

impl RunCtx<'_> {
    /// Writes a created link's URL back to the warehouse; a problem to log, if any.
    pub(super) async fn write_back<R>(
        &mut self,
        p: &Pending<R>,
        url: Option<&str>,
    ) -> Option<String> {
        let (Some(writeback), Some(writer), Some(url)) = (
            self.activation.writeback.as_ref(),
            self.writer.as_mut(),
            url,
        ) else {
            return None;
        };
        let Some(key) = &p.writeback_key else {
            return Some(format!(
                "link created; not written back: `{}` is NULL on this row",
                writeback.key_column
            ));
        };
        // A writeback waits no longer than a request, nor past an interrupt's deadline.
        let limit = self.options.drain.max(Duration::from_secs(5));
        let deadline = self
            .options
            .cancel
            .deadline(self.options.drain)
            .unwrap_or_else(|| tokio::time::Instant::now() + limit)
            .min(tokio::time::Instant::now() + limit);
        let written = tokio::time::timeout_at(
            deadline,
            writer.set_text(
                &writeback.table,
                &writeback.key_column,
                &writeback.url_column,
                key,
                self.writeback_key_type.as_deref(),
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
