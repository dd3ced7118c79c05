//! The key segments' writing side: appends (a run's settled keys, a
//! baseline's flushes), the merges that keep each part's level-0 blocks
//! disjoint and bounded, and the rows they write (see [`super`] for the
//! format and why it stays exact).

use std::collections::HashMap;

use retl_diff::RowHash;

use super::{
    APPENDED, BLOCK_RECORDS, LOOKUP_CHUNK, MAX_BLOCKS, MERGED, RECORD, WRITE_CHUNK, corrupt, merge,
    records_of,
};
use crate::db::on;
use crate::{Error, Fenced, Result};

impl Fenced {
    /// Writes `records` (key, content), sorted, for each part they touch:
    /// as level-0 blocks of at most [`BLOCK_RECORDS`] when the activation
    /// has no block yet (a baseline's first flush), else as one level-1
    /// block, newer than what its part holds (a part with one larger than
    /// [`BLOCK_RECORDS`] is merged at the end of the run). Of two records of
    /// one key, the later in `records` wins.
    pub async fn append_segments(&mut self, records: &mut [(RowHash, RowHash)]) -> Result<()> {
        self.append(records, false).await
    }

    /// [`append_segments`](Self::append_segments) for a write that more of
    /// the same run will follow (a baseline's flush before its last): always
    /// level 1, since the run's merge at its end rewrites them anyway (as
    /// level 0 they would be written small, read back and deleted).
    pub async fn append_segments_ahead(
        &mut self,
        records: &mut [(RowHash, RowHash)],
    ) -> Result<()> {
        self.append(records, true).await
    }

    async fn append(&mut self, records: &mut [(RowHash, RowHash)], ahead: bool) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        records.sort_by_key(|(key, _)| *key);
        let any: Option<i64> = on!(self.tx.executor(), |c| sqlx::query_scalar(
            "SELECT part FROM key_bounds WHERE activation = $1 LIMIT 1"
        )
        .bind(&self.activation)
        .fetch_optional(c)
        .await)
        .map_err(Error::db("write key segments"))?;
        let level = if any.is_some() || ahead {
            APPENDED
        } else {
            MERGED
        };
        let mut blocks = Vec::new();
        let mut start = 0;
        while start < records.len() {
            let part = records[start].0[0];
            let mut seq = self.next_seq(i64::from(part)).await?;
            let end = start + records[start..].partition_point(|(key, _)| key[0] == part);
            let mut data = Vec::with_capacity((end - start) * RECORD);
            for (i, (key, content)) in records[start..end].iter().enumerate() {
                // Sorted and stable: keep a key's last record only.
                if records
                    .get(start + i + 1)
                    .is_some_and(|(next, _)| next == key)
                {
                    continue;
                }
                data.extend_from_slice(key);
                data.extend_from_slice(content);
            }
            // Level 0 in blocks of the bound. Level 1 as one block per part:
            // a run's appends are a few keys a part, and a large one (a
            // baseline's later flushes, a fold) is merged at the end of its
            // run, which then reads and deletes a few rows instead of
            // thousands.
            let pieces: Vec<&[u8]> = if level == MERGED {
                split(&data).collect()
            } else {
                vec![&data]
            };
            for block in pieces {
                blocks.push(Block {
                    part: i64::from(part),
                    seq,
                    level,
                    data: block.to_vec(),
                });
                seq += 1;
            }
            start = end;
        }
        self.insert_blocks(&blocks).await
    }

    /// `count` parameter marks from the `first`-th: `?` on SQLite (bound in
    /// order; a named one is looked up by a scan of them all), `$N` on
    /// PostgreSQL.
    fn marks(&self, first: usize, count: usize) -> Vec<String> {
        (first..first + count)
            .map(|n| match self.tx {
                crate::db::Tx::Sqlite(_) => "?".to_owned(),
                crate::db::Tx::Postgres(_) => format!("${n}"),
            })
            .collect()
    }

    /// The seq past every block of `part` (the index finds it: a seq
    /// orders the blocks of one part only).
    async fn next_seq(&mut self, part: i64) -> Result<i64> {
        on!(self.tx.executor(), |c| sqlx::query_scalar(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM key_segments WHERE activation = $1 AND part = $2"
        )
        .bind(&self.activation)
        .bind(part)
        .fetch_one(c)
        .await)
        .map_err(Error::db("write key segments"))
    }

    /// Writes `blocks` and their bounds, [`WRITE_CHUNK`] to a statement.
    async fn insert_blocks(&mut self, blocks: &[Block]) -> Result<()> {
        let write = Error::db("write key segments");
        for chunk in blocks.chunks(WRITE_CHUNK) {
            // Each row binds the activation too: SQLite's anonymous `?`
            // parameters are bound in order, while a named one (`$N`) is
            // looked up by a scan of them all.
            let rows = |width: usize| {
                let marks = self.marks(1, chunk.len() * width);
                marks
                    .chunks(width)
                    .map(|row| format!("({})", row.join(", ")))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let segments = format!(
                "INSERT INTO key_segments (activation, part, seq, records, data) VALUES {}",
                rows(5)
            );
            let bounds = format!(
                "INSERT INTO key_bounds (activation, part, seq, level, lo, hi) VALUES {}",
                rows(6)
            );
            on!(self.tx.executor(), |c| {
                let mut query = sqlx::query(&segments);
                for block in chunk {
                    query = query
                        .bind(&self.activation)
                        .bind(block.part)
                        .bind(block.seq)
                        .bind(i64::try_from(block.data.len() / RECORD).unwrap_or(i64::MAX))
                        .bind(block.data.as_slice());
                }
                query.execute(c).await.map(|_| ())
            })
            .map_err(write)?;
            on!(self.tx.executor(), |c| {
                let mut query = sqlx::query(&bounds);
                for block in chunk {
                    let (lo, hi) = block.bounds();
                    query = query
                        .bind(&self.activation)
                        .bind(block.part)
                        .bind(block.seq)
                        .bind(block.level)
                        .bind(lo)
                        .bind(hi);
                }
                query.execute(c).await.map(|_| ())
            })
            .map_err(write)?;
        }
        Ok(())
    }

    /// Merges the level-1 blocks of every part of this activation that has
    /// more than [`MAX_BLOCKS`] of them, or one larger than
    /// [`BLOCK_RECORDS`] (written before blocks were bounded), into its
    /// level-0 blocks; returns how many parts it merged.
    ///
    /// Only the level-0 blocks a merged record falls in are rewritten (each
    /// record goes to the first block whose last key is at or past it, the
    /// last block past the end), so a merge costs the records appended, not
    /// the part; a block grown past [`BLOCK_RECORDS`] is split.
    ///
    /// At most `parts` parts are merged: a caller that merges in several
    /// transactions (each part's merge stands alone) holds the state's write
    /// lock a short while each, and calls again while it gets `parts`.
    pub async fn compact_segments(&mut self, parts: usize) -> Result<usize> {
        let compact = Error::db("compact key segments");
        let crowded: Vec<i64> = on!(self.tx.executor(), |c| sqlx::query_scalar(
            "SELECT b.part FROM key_bounds b JOIN key_segments s
               ON s.activation = b.activation AND s.part = b.part AND s.seq = b.seq
             WHERE b.activation = $1 AND b.level = $2
             GROUP BY b.part HAVING COUNT(*) > $3 OR MAX(s.records) > $4
             ORDER BY b.part LIMIT $5"
        )
        .bind(&self.activation)
        .bind(APPENDED)
        .bind(MAX_BLOCKS)
        .bind(i64::try_from(BLOCK_RECORDS).unwrap_or(i64::MAX))
        .bind(i64::try_from(parts).unwrap_or(i64::MAX))
        .fetch_all(c)
        .await)
        .map_err(compact)?;
        for &part in &crowded {
            self.merge_part(part).await?;
        }
        Ok(crowded.len())
    }

    /// Merges `part`'s level-1 blocks into its level-0 blocks.
    async fn merge_part(&mut self, part: i64) -> Result<()> {
        let compact = Error::db("compact key segments");
        let appended: Vec<(i64, Vec<u8>)> = on!(self.tx.executor(), |c| sqlx::query_as(
            "SELECT s.seq, s.data FROM key_bounds b JOIN key_segments s
               ON s.activation = b.activation AND s.part = b.part AND s.seq = b.seq
             WHERE b.activation = $1 AND b.part = $2 AND b.level = $3 ORDER BY s.seq"
        )
        .bind(&self.activation)
        .bind(part)
        .bind(APPENDED)
        .fetch_all(c)
        .await)
        .map_err(compact)?;
        let mut fresh: Vec<(RowHash, RowHash)> = Vec::new();
        let blocks: Vec<Vec<u8>> = appended.into_iter().map(|(_, data)| data).collect();
        merge(&blocks, |key, content| match fresh.last_mut() {
            Some((last, kept)) if last == key => *kept = *content,
            _ => fresh.push((*key, *content)),
        })?;
        drop(blocks);
        let base: Vec<(i64, Vec<u8>)> = on!(self.tx.executor(), |c| sqlx::query_as(
            "SELECT seq, hi FROM key_bounds WHERE activation = $1 AND level = $2 AND part = $3
             ORDER BY hi"
        )
        .bind(&self.activation)
        .bind(MERGED)
        .bind(part)
        .fetch_all(c)
        .await)
        .map_err(compact)?;
        // Each record's level-0 block (an index into `base`).
        let mut groups: Vec<(usize, Vec<(RowHash, RowHash)>)> = Vec::new();
        let mut at = 0;
        for (key, content) in fresh {
            while at + 1 < base.len() && base[at].1.as_slice() < key.as_slice() {
                at += 1;
            }
            match groups.last_mut() {
                Some((i, records)) if *i == at => records.push((key, content)),
                _ => groups.push((at, vec![(key, content)])),
            }
        }
        let touched: Vec<i64> = if base.is_empty() {
            Vec::new()
        } else {
            groups.iter().map(|(i, _)| base[*i].0).collect()
        };
        let mut old: HashMap<i64, Vec<u8>> = HashMap::new();
        for chunk in touched.chunks(LOOKUP_CHUNK) {
            let marks = self.marks(1, chunk.len() + 2);
            let sql = format!(
                "SELECT seq, data FROM key_segments WHERE activation = {} AND part = {} AND seq IN ({})",
                marks[0],
                marks[1],
                marks[2..].join(", ")
            );
            let rows: Vec<(i64, Vec<u8>)> = on!(self.tx.executor(), |c| {
                let mut query = sqlx::query_as(&sql).bind(&self.activation).bind(part);
                for seq in chunk {
                    query = query.bind(*seq);
                }
                query.fetch_all(c).await
            })
            .map_err(compact)?;
            old.extend(rows);
        }
        let mut seq = self.next_seq(part).await?;
        let mut written = Vec::new();
        for (i, records) in groups {
            let kept = if base.is_empty() {
                Vec::new()
            } else {
                let at = base[i].0;
                old.remove(&at)
                    .ok_or_else(|| corrupt(format!("block {at} of part {part} went missing")))?
            };
            let data = overlay(&kept, records)?;
            for block in split(&data) {
                written.push(Block {
                    part,
                    seq,
                    level: MERGED,
                    data: block.to_vec(),
                });
                seq += 1;
            }
        }
        self.remove_merged(part, &touched).await?;
        self.insert_blocks(&written).await
    }

    /// Deletes `part`'s level-1 blocks and its level-0 blocks `touched`
    /// (which a merge rewrote).
    async fn remove_merged(&mut self, part: i64, touched: &[i64]) -> Result<()> {
        let compact = Error::db("compact key segments");
        // The bounds last: the others find their level-1 blocks through them.
        for table in ["key_segments", "key_prefixes", "key_bounds"] {
            let sql = format!(
                "DELETE FROM {table} WHERE activation = $1 AND part = $2 AND seq IN (
                    SELECT seq FROM key_bounds WHERE activation = $1 AND part = $2 AND level = $3)"
            );
            on!(self.tx.executor(), |c| sqlx::query(&sql)
                .bind(&self.activation)
                .bind(part)
                .bind(APPENDED)
                .execute(c)
                .await
                .map(|_| ()))
            .map_err(compact)?;
        }
        for chunk in touched.chunks(LOOKUP_CHUNK) {
            let marks = self.marks(1, chunk.len() + 2);
            for table in ["key_segments", "key_bounds", "key_prefixes"] {
                let sql = format!(
                    "DELETE FROM {table} WHERE activation = {} AND part = {} AND seq IN ({})",
                    marks[0],
                    marks[1],
                    marks[2..].join(", ")
                );
                on!(self.tx.executor(), |c| {
                    let mut query = sqlx::query(&sql).bind(&self.activation).bind(part);
                    for seq in chunk {
                        query = query.bind(*seq);
                    }
                    query.execute(c).await.map(|_| ())
                })
                .map_err(compact)?;
            }
        }
        Ok(())
    }
}

/// A block's records (`kept`) and newer ones (sorted), as one block's data
/// in key order; of one key, the newer record wins.
fn overlay(kept: &[u8], newer: Vec<(RowHash, RowHash)>) -> Result<Vec<u8>> {
    let mut data = Vec::with_capacity(kept.len() + newer.len() * RECORD);
    let mut kept = records_of(kept)?.peekable();
    let mut newer = newer.into_iter().peekable();
    loop {
        let next = match (kept.peek(), newer.peek()) {
            (None, None) => break,
            (Some(_), None) => kept.next(),
            (None, Some(_)) => newer.next(),
            (Some((a, _)), Some((b, _))) => match a.cmp(b) {
                std::cmp::Ordering::Less => kept.next(),
                std::cmp::Ordering::Greater => newer.next(),
                std::cmp::Ordering::Equal => {
                    kept.next();
                    newer.next()
                }
            },
        };
        let (key, content) = next.expect("one side has a record");
        data.extend_from_slice(&key);
        data.extend_from_slice(&content);
    }
    Ok(data)
}

/// A block to write.
struct Block {
    part: i64,
    seq: i64,
    level: i64,
    data: Vec<u8>,
}

impl Block {
    /// Its first and last key.
    fn bounds(&self) -> (&[u8], &[u8]) {
        let last = self.data.len() - RECORD;
        (&self.data[..16], &self.data[last..last + 16])
    }
}

/// `data` (records sorted by key) as blocks of at most [`BLOCK_RECORDS`],
/// of even sizes.
fn split(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let count = data.len() / RECORD;
    let blocks = count.div_ceil(BLOCK_RECORDS).max(1);
    let size = count.div_ceil(blocks) * RECORD;
    data.chunks(size.max(RECORD))
}
