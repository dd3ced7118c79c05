//! Key segments: each activation's settled keys in sorted blocks, which a
//! full scan loads into a [`KeySet`] once instead of probing the ledger's
//! B-tree for every row.
//!
//! The blocks' writing, merging,
//! loading and lookups by key share one record format and are read together.
//!
//! # What they hold
//!
//! `key_segments (activation, part, seq, records, data)`: `data` is a block of
//! at most [`BLOCK_RECORDS`] 32-byte records (key hash, content hash) sorted
//! by key, all of whose keys start with the byte `part` (3 KB: a page of
//! the state database). Beside each, `key_bounds (activation, part, seq,
//! level, lo, hi)` holds its first and last key and its level:
//!
//! - level 0: written by a merge (or an activation's first write); a part's
//!   level-0 blocks are disjoint, so a key can only be in the first whose
//!   last key is at or past it, which `key_bounds`' index finds;
//! - level 1: appended since; they may overlap, each is newer than every
//!   level-0 block of its part, and of two records of one key the block of
//!   the higher `seq` (which orders the blocks of one part) wins. A part with more than [`MAX_BLOCKS`] of them is
//!   merged into its level-0 blocks at the end of the run that found it so,
//!   rewriting only the blocks their records fall in.
//!
//! A record says "this key is settled (sent, baseline or too old) with this
//! content". A run looking up a few candidates reads about one block per key
//! ([`State::segment_contents`]), a few statements in all; a full scan
//! loads every block into a [`KeySet`]. (`key_prefixes`, which version 16
//! added to look keys up in larger blocks, is no longer written; a merge
//! deletes what it held of the blocks it rewrites.) They are written:
//!
//! - by a first run with `first_run: skip_existing` (the baseline), in place of
//!   one ledger row per key: a level-1 block per part per million rows
//!   (merged at the run's end), or level-0 blocks when it writes once, a few
//!   thousand rows instead of millions of B-tree inserts. Keys the ledger
//!   table already holds are left out, so that its entry stays in force;
//! - at the end of a full scan, for the keys the ledger table showed settled
//!   and unchanged but no segment held yet (sent by earlier runs): *folding*;
//! - with each content change of a settled key (`ignored_changed`), in the
//!   transaction that records it.
//!
//! # Why a full scan stays exact
//!
//! A key is settled if the ledger table says so, or if it has no ledger row
//! and a segment holds it. Settled is final (nothing turns a settled key back
//! into one to send), so a segment record can only be *behind* the table: it
//! may lack a key (that key is looked up in the table, as before) or, for at
//! most the time between a change and its record, hold an older content. It
//! never makes a key settled that is not. Segments are written in fenced
//! transactions of the state database itself, with the ledger rows they go
//! with: a crash at any point leaves both as they were before, or both after.
//! There is nothing beside the state to go stale.
//!
//! # Bounded
//!
//! Loading reads one part at a time (about 1/256 of the keys): its level-0
//! blocks joined into one row by the database (rows cross from SQLite one
//! at a time, and a part has thousands of small blocks), then its level-1
//! blocks in the order they were written, and places them into the set's
//! buckets (no merge, no sort). A lookup reads
//! the bounds of the level-1 blocks (few: merged past [`MAX_BLOCKS`] a part)
//! and one 3 KB block per key, of which 32 bytes cross to retl.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use futures::TryStreamExt as _;
use retl_diff::{Entry, KeySet, KeySetBuilder, RowHash, Seen, Status};

use crate::db::{Db, on};
use crate::{Error, Fenced, Result, State};

/// Bytes of a record: the key hash, then the content hash.
const RECORD: usize = 32;
/// Level-1 blocks (appended, overlapping) a part may have before they are
/// merged into its level-0 blocks.
pub const MAX_BLOCKS: i64 = 16;
/// The most records a block holds: 96 records, 3 KB, which one 4 KB page of
/// the state database holds whole (SQLite reads a blob whole to use any of
/// it, and a larger one spills over a chain of pages).
pub const BLOCK_RECORDS: usize = 96;
/// A block written by a merge: its part's level-0 blocks are disjoint, so
/// a key can only be in the one whose last key is the first at or past it.
const MERGED: i64 = 0;
/// A block written by an append: it may overlap any other of its part; it
/// is newer than every level-0 block of its part.
const APPENDED: i64 = 1;
/// Keys, or blocks, asked of the database in one statement.
const LOOKUP_CHUNK: usize = 500;
/// Blocks written by one statement.
const WRITE_CHUNK: usize = 100;
/// A block's bounds as a lookup reads them: part, seq, first key, last
/// key, records.
type Bounds = (i64, i64, Vec<u8>, Vec<u8>, i64);
/// Records of level-1 blocks a lookup reads in one statement (8 MB).
const LOAD_RECORDS: usize = 262_144;

/// What a full scan's lookup found for a batch.
#[derive(Debug, Default)]
pub struct Lookup {
    /// The rows that need a decision, as [`State::lookup_changes`] gives them:
    /// `None` for a key the ledger does not hold.
    pub changes: HashMap<RowHash, Option<Entry>>,
    /// Rows the ledger table holds settled and unchanged that the key set did
    /// not: to be folded into the segments.
    pub settled: Vec<(RowHash, RowHash)>,
}

fn corrupt(detail: String) -> Error {
    Error::Corrupt {
        what: "key segment",
        detail,
    }
}

fn records_of(data: &[u8]) -> Result<impl Iterator<Item = (RowHash, RowHash)> + '_> {
    if !data.len().is_multiple_of(RECORD) {
        return Err(corrupt(format!(
            "{} bytes, not a multiple of 32",
            data.len()
        )));
    }
    Ok(data.chunks_exact(RECORD).map(|record| {
        let (key, content) = record.split_at(16);
        (
            key.try_into().expect("16 bytes"),
            content.try_into().expect("16 bytes"),
        )
    }))
}

/// Binary search of a block (sorted by key) for `key`'s content; of two
/// records of one key in a block (there are none: a block keeps a key's
/// last record), either is the same.
fn search(block: &[u8], key: &RowHash) -> Result<Option<RowHash>> {
    if !block.len().is_multiple_of(RECORD) {
        return Err(corrupt(format!(
            "{} bytes, not a multiple of 32",
            block.len()
        )));
    }
    let (mut low, mut high) = (0, block.len() / RECORD);
    while low < high {
        let middle = low + (high - low) / 2;
        let record = &block[middle * RECORD..(middle + 1) * RECORD];
        match record[..16].cmp(key.as_slice()) {
            std::cmp::Ordering::Less => low = middle + 1,
            std::cmp::Ordering::Greater => high = middle,
            std::cmp::Ordering::Equal => {
                return Ok(Some(record[16..].try_into().expect("16 bytes")));
            }
        }
    }
    Ok(None)
}

/// Merges one part's blocks (oldest first) in key order, calling `out` for
/// every record; records of one key come oldest block first, so the last call
/// for a key is the one in force.
fn merge(blocks: &[Vec<u8>], mut out: impl FnMut(&RowHash, &RowHash)) -> Result<()> {
    if let [block] = blocks {
        for (key, content) in records_of(block)? {
            out(&key, &content);
        }
        return Ok(());
    }
    let mut heads: Vec<_> = blocks
        .iter()
        .map(|b| records_of(b).map(Iterator::peekable))
        .collect::<Result<_>>()?;
    let mut heap = BinaryHeap::with_capacity(heads.len());
    for (i, head) in heads.iter_mut().enumerate() {
        if let Some((key, _)) = head.peek() {
            heap.push(Reverse((*key, i)));
        }
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        let (key, content) = heads[i].next().expect("a queued head has a record");
        out(&key, &content);
        if let Some((next, _)) = heads[i].peek() {
            heap.push(Reverse((*next, i)));
        }
    }
    Ok(())
}

/// Adds a part's blocks (oldest first) to the set being built.
fn add_part(builder: &mut KeySetBuilder, part: Option<i64>, blocks: &[Vec<u8>]) -> Result<()> {
    let Some(part) = part else { return Ok(()) };
    let part = u8::try_from(part).map_err(|_| corrupt(format!("part {part}")))?;
    let mut all = Vec::with_capacity(blocks.iter().map(|b| b.len() / RECORD).sum());
    for block in blocks {
        all.extend(records_of(block)?);
    }
    if let Some(([first, ..], _)) = all.iter().find(|(key, _)| key[0] != part) {
        return Err(corrupt(format!("a key of part {first} in part {part}")));
    }
    builder.add_part(part, &all);
    Ok(())
}

impl State {
    /// The settled keys of `activation` that its segments hold.
    pub async fn key_set(&self, activation: &str) -> Result<KeySet> {
        let load = Error::db("load the key segments");
        let total: i64 = on!(self.db.executor(), |c| sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(records), 0) AS BIGINT) FROM key_segments WHERE activation = $1"
        )
        .bind(activation)
        .fetch_one(c)
        .await)
        .map_err(load)?;
        let mut builder = KeySet::builder(usize::try_from(total).unwrap_or_default());
        // Level-1 blocks (few: merged past a handful a part) as rows, in the
        // order they were written: of two records of a key the later wins.
        let mut appended: std::collections::BTreeMap<i64, Vec<Vec<u8>>> =
            std::collections::BTreeMap::new();
        let rows: Vec<(i64, Vec<u8>)> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT s.part, s.data FROM key_segments s LEFT JOIN key_bounds b
               ON b.activation = s.activation AND b.part = s.part AND b.seq = s.seq
             WHERE s.activation = $1 AND (b.level IS NULL OR b.level <> $2)
             ORDER BY s.part, s.seq"
        )
        .bind(activation)
        .bind(MERGED)
        .fetch_all(c)
        .await)
        .map_err(load)?;
        for (part, data) in rows {
            appended.entry(part).or_default().push(data);
        }
        // Level-0 blocks, disjoint, so in any order: a row per part, its
        // blocks joined by the database (rows cross one at a time, and a
        // part has thousands of small blocks). Memory stays at the set plus
        // one part.
        let mut take = |(part, merged): (i64, Vec<u8>)| -> Result<()> {
            let earlier: Vec<i64> = appended.range(..part).map(|(p, _)| *p).collect();
            for p in earlier {
                let blocks = appended.remove(&p).unwrap_or_default();
                add_part(&mut builder, Some(p), &blocks)?;
            }
            let mut blocks = vec![merged];
            blocks.extend(appended.remove(&part).unwrap_or_default());
            add_part(&mut builder, Some(part), &blocks)
        };
        // SQLite's `group_concat` copies a blob's bytes as they are; the
        // cast gives them back as a blob.
        let joined = match &self.db {
            Db::Sqlite(_) => "CAST(group_concat(s.data, x'') AS BLOB)",
            Db::Postgres(_) => "string_agg(s.data, ''::bytea)",
        };
        let sql = format!(
            "SELECT s.part, {joined} FROM key_segments s JOIN key_bounds b
               ON b.activation = s.activation AND b.part = s.part AND b.seq = s.seq
             WHERE s.activation = $1 AND b.level = $2 GROUP BY s.part ORDER BY s.part"
        );
        match &self.db {
            Db::Sqlite(pool) => {
                let mut rows = sqlx::query_as(&sql)
                    .bind(activation)
                    .bind(MERGED)
                    .fetch(pool);
                while let Some(row) = rows.try_next().await.map_err(load)? {
                    take(row)?;
                }
            }
            Db::Postgres(pool) => {
                let mut rows = sqlx::query_as(&sql)
                    .bind(activation)
                    .bind(MERGED)
                    .fetch(pool);
                while let Some(row) = rows.try_next().await.map_err(load)? {
                    take(row)?;
                }
            }
        }
        for (part, blocks) in appended {
            add_part(&mut builder, Some(part), &blocks)?;
        }
        Ok(builder.finish())
    }

    /// Looks a batch up against `set` first, and the ledger table only for
    /// the rows the set cannot decide (unknown keys, changed content): the
    /// same answer as [`lookup_changes`](Self::lookup_changes) for every row.
    pub async fn lookup_with(
        &self,
        activation: &str,
        set: &KeySet,
        rows: &[(RowHash, RowHash)],
    ) -> Result<Lookup> {
        let mut probe = Vec::new();
        let mut in_set = HashSet::new();
        for ((key, content), seen) in rows.iter().zip(set.get_many(rows)) {
            match seen {
                Seen::Unchanged => {}
                Seen::Changed => {
                    in_set.insert(*key);
                    probe.push((*key, *content));
                }
                Seen::Unknown => probe.push((*key, *content)),
            }
        }
        if probe.is_empty() {
            return Ok(Lookup::default());
        }
        let mut changes = self.lookup_changes(activation, &probe).await?;
        let mut settled = Vec::new();
        for (key, content) in probe {
            match changes.get_mut(&key) {
                // The table holds it settled with this content.
                None => settled.push((key, content)),
                // No ledger row, but a segment holds it: a baseline key whose
                // content changed (the set keeps only a tag of the old one).
                Some(entry @ None) if in_set.contains(&key) => {
                    let mut other = content;
                    other[0] ^= 0xFF;
                    *entry = Some(Entry {
                        content: other,
                        status: Status::Baseline,
                        attempts: 0,
                    });
                }
                Some(_) => {}
            }
        }
        Ok(Lookup { changes, settled })
    }

    /// What the segments hold for `keys` (the content in force), reading
    /// about one block (3 KB) per key: memory and time follow the candidates,
    /// not the activation's settled keys.
    ///
    /// A key is asked first of the level-1 blocks (appended since its part
    /// was last merged, few and small) whose bounds hold it, newest first;
    /// then of the one level-0 block that can hold it, the first of its part
    /// whose last key is at or past it, found through `key_bounds`' index in
    /// the statement that reads the block. A few statements in all, whatever
    /// the number of blocks.
    pub async fn segment_contents(
        &self,
        activation: &str,
        keys: &[RowHash],
    ) -> Result<HashMap<RowHash, RowHash>> {
        let mut found = HashMap::new();
        if keys.is_empty() {
            return Ok(found);
        }
        self.in_appended(activation, keys, &mut found).await?;
        let mut rest: Vec<RowHash> = keys
            .iter()
            .filter(|key| !found.contains_key(*key))
            .copied()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        // In key order: the index is walked forwards, page after page.
        rest.sort_unstable();
        self.in_merged(activation, &rest, &mut found).await?;
        Ok(found)
    }

    /// Looks `keys` up in the level-1 blocks whose bounds hold them, newest
    /// first, into `found`.
    async fn in_appended(
        &self,
        activation: &str,
        keys: &[RowHash],
        found: &mut HashMap<RowHash, RowHash>,
    ) -> Result<()> {
        let load = Error::db("look keys up in the key segments");
        // Level 1: the bounds of every appended block (and its size), then
        // the blocks that can hold a wanted key.
        let appended: Vec<Bounds> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT b.part, b.seq, b.lo, b.hi, s.records FROM key_bounds b JOIN key_segments s
                   ON s.activation = b.activation AND s.part = b.part AND s.seq = b.seq
                 WHERE b.activation = $1 AND b.level = $2"
        )
        .bind(activation)
        .bind(APPENDED)
        .fetch_all(c)
        .await)
        .map_err(load)?;
        if appended.is_empty() {
            return Ok(());
        }
        // Each part's blocks, and each block's keys to look for.
        let mut by_part: HashMap<i64, Vec<usize>> = HashMap::new();
        for (i, (part, ..)) in appended.iter().enumerate() {
            by_part.entry(*part).or_default().push(i);
        }
        let mut asked: std::collections::BTreeMap<usize, Vec<RowHash>> =
            std::collections::BTreeMap::new();
        for key in keys {
            let Some(blocks) = by_part.get(&i64::from(key[0])) else {
                continue;
            };
            for &i in blocks {
                let (_, _, lo, hi, _) = &appended[i];
                if lo.as_slice() <= key.as_slice() && key.as_slice() <= hi.as_slice() {
                    asked.entry(i).or_default().push(*key);
                }
            }
        }
        // The blocks are read a bounded batch at a time (blocks written
        // before version 20 may be large, and many), each key keeping the
        // content of the newest block that holds it.
        let mut newest: HashMap<RowHash, (i64, RowHash)> = HashMap::new();
        let mut batch: Vec<usize> = Vec::new();
        let mut records = 0;
        let blocks: Vec<usize> = asked.keys().copied().collect();
        for (n, &i) in blocks.iter().enumerate() {
            batch.push(i);
            records += usize::try_from(appended[i].4).unwrap_or(usize::MAX);
            let full = batch.len() >= LOOKUP_CHUNK || records >= LOAD_RECORDS;
            if !full && n + 1 < blocks.len() {
                continue;
            }
            let at: Vec<(i64, i64)> = batch
                .iter()
                .map(|&i| (appended[i].0, appended[i].1))
                .collect();
            let read = self.blocks_by_seq(activation, &at).await?;
            for &i in &batch {
                let (part, seq, ..) = appended[i];
                let block = read
                    .get(&(part, seq))
                    .ok_or_else(|| corrupt(format!("block {seq} of part {part} went missing")))?;
                for key in &asked[&i] {
                    if newest.get(key).is_some_and(|(kept, _)| *kept > seq) {
                        continue;
                    }
                    if let Some(content) = search(block, key)? {
                        newest.insert(*key, (seq, content));
                    }
                }
            }
            batch.clear();
            records = 0;
        }
        found.extend(newest.into_iter().map(|(key, (_, content))| (key, content)));
        Ok(())
    }

    /// Looks `keys` up in the one level-0 block each can be in, into `found`.
    async fn in_merged(
        &self,
        activation: &str,
        keys: &[RowHash],
        found: &mut HashMap<RowHash, RowHash>,
    ) -> Result<()> {
        let load = Error::db("look keys up in the key segments");
        for chunk in keys.chunks(LOOKUP_CHUNK) {
            // Each key's block, where the key is in it (1-based, 0: nowhere)
            // and the 32 bytes from there: a record when the place is one's
            // start; a match across two records (16 bytes that happen to
            // straddle them) has the block read whole.
            let rows: Vec<(Vec<u8>, i64, i64, Vec<u8>)> = match &self.db {
                Db::Sqlite(pool) => {
                    // Anonymous parameters: SQLite looks named ones up by a
                    // linear scan.
                    let mut sql = String::from("WITH q(p, k) AS (VALUES ");
                    sql.push_str(&vec!["(?, ?)"; chunk.len()].join(", "));
                    sql.push_str(
                        ") SELECT q.k, s.seq, instr(s.data, q.k), substr(s.data, instr(s.data, q.k), 32)
                           FROM q JOIN key_segments s
                           ON s.activation = ? AND s.part = q.p AND s.seq = (
                              SELECT b.seq FROM key_bounds b
                              WHERE b.activation = ? AND b.level = ? AND b.part = q.p AND b.hi >= q.k
                              ORDER BY b.hi LIMIT 1)",
                    );
                    let mut query = sqlx::query_as(&sql);
                    for key in chunk {
                        query = query.bind(i64::from(key[0])).bind(key.as_slice());
                    }
                    query
                        .bind(activation)
                        .bind(activation)
                        .bind(MERGED)
                        .fetch_all(pool)
                        .await
                }
                Db::Postgres(pool) => {
                    let parts: Vec<i64> = chunk.iter().map(|key| i64::from(key[0])).collect();
                    let wanted: Vec<Vec<u8>> = chunk.iter().map(|key| key.to_vec()).collect();
                    sqlx::query_as(
                        "SELECT q.k, s.seq, CAST(position(q.k IN s.data) AS BIGINT),
                                substr(s.data, position(q.k IN s.data), 32)
                         FROM unnest($2::bigint[], $3::bytea[]) AS q(p, k)
                         JOIN key_segments s ON s.activation = $1 AND s.part = q.p AND s.seq = (
                            SELECT b.seq FROM key_bounds b
                            WHERE b.activation = $1 AND b.level = $4 AND b.part = q.p AND b.hi >= q.k
                            ORDER BY b.hi LIMIT 1)",
                    )
                    .bind(activation)
                    .bind(parts)
                    .bind(wanted)
                    .bind(MERGED)
                    .fetch_all(pool)
                    .await
                }
            }
            .map_err(load)?;
            let mut straddling = Vec::new();
            for (key, seq, at, record) in rows {
                let key: RowHash = key
                    .as_slice()
                    .try_into()
                    .map_err(|_| corrupt(format!("a key of {} bytes", key.len())))?;
                let at = usize::try_from(at).unwrap_or_default();
                if at == 0 {
                    continue;
                }
                if (at - 1) % RECORD != 0 {
                    straddling.push((key, (i64::from(key[0]), seq)));
                    continue;
                }
                if let Some(content) = search(&record, &key)? {
                    found.insert(key, content);
                }
            }
            for (key, at) in straddling {
                let blocks = self.blocks_by_seq(activation, &[at]).await?;
                let block = blocks.get(&at).ok_or_else(|| {
                    corrupt(format!("block {} of part {} went missing", at.1, at.0))
                })?;
                if let Some(content) = search(block, &key)? {
                    found.insert(key, content);
                }
            }
        }
        Ok(())
    }

    /// The data of the blocks `at` (part, seq), by the same.
    async fn blocks_by_seq(
        &self,
        activation: &str,
        at: &[(i64, i64)],
    ) -> Result<HashMap<(i64, i64), Vec<u8>>> {
        let rows: Vec<(i64, i64, Vec<u8>)> = match &self.db {
            Db::Sqlite(pool) => {
                let mut sql = String::from("WITH q(p, s) AS (VALUES ");
                sql.push_str(&vec!["(?, ?)"; at.len()].join(", "));
                sql.push_str(
                    ") SELECT q.p, q.s, k.data FROM q JOIN key_segments k
                       ON k.activation = ? AND k.part = q.p AND k.seq = q.s",
                );
                let mut query = sqlx::query_as(&sql);
                for (part, seq) in at {
                    query = query.bind(*part).bind(*seq);
                }
                query.bind(activation).fetch_all(pool).await
            }
            Db::Postgres(pool) => {
                let parts: Vec<i64> = at.iter().map(|(part, _)| *part).collect();
                let seqs: Vec<i64> = at.iter().map(|(_, seq)| *seq).collect();
                sqlx::query_as(
                    "SELECT q.p, q.s, k.data FROM unnest($2::bigint[], $3::bigint[]) AS q(p, s)
                     JOIN key_segments k ON k.activation = $1 AND k.part = q.p AND k.seq = q.s",
                )
                .bind(activation)
                .bind(parts)
                .bind(seqs)
                .fetch_all(pool)
                .await
            }
        }
        .map_err(Error::db("read key-segment blocks"))?;
        Ok(rows
            .into_iter()
            .map(|(part, seq, data)| ((part, seq), data))
            .collect())
    }

    /// [`lookup_changes`](Self::lookup_changes) with the key segments: the
    /// same answer as a full scan's [`lookup_with`](Self::lookup_with) gives,
    /// for a few candidates, without loading the key set. The ledger table
    /// answers first; the segments only for the keys it does not hold.
    pub async fn lookup_candidates(
        &self,
        activation: &str,
        rows: &[(RowHash, RowHash)],
    ) -> Result<HashMap<RowHash, Option<Entry>>> {
        let mut changes = self.lookup_changes(activation, rows).await?;
        let unknown: Vec<RowHash> = changes
            .iter()
            .filter(|(_, entry)| entry.is_none())
            .map(|(key, _)| *key)
            .collect();
        if unknown.is_empty() {
            return Ok(changes);
        }
        let held = self.segment_contents(activation, &unknown).await?;
        for (key, content) in rows {
            let Some(recorded) = held.get(key) else {
                continue;
            };
            if recorded == content || *recorded == retl_diff::UNKNOWN_CONTENT {
                changes.remove(key);
            } else {
                changes.insert(
                    *key,
                    Some(Entry {
                        content: *recorded,
                        status: Status::Baseline,
                        attempts: 0,
                    }),
                );
            }
        }
        Ok(changes)
    }

    /// Whether `activation` has any settled key (in the ledger table or the
    /// segments): a key table that is empty then was emptied.
    pub async fn has_settled_keys(&self, activation: &str) -> Result<bool> {
        let found: i64 = on!(self.db.executor(), |c| sqlx::query_scalar(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM key_segments WHERE activation = $1)
                          OR EXISTS (SELECT 1 FROM ledger WHERE activation = $1
                                     AND status IN ('sent', 'baseline', 'too_old', 'suppressed'))
                    THEN 1 ELSE 0 END"
        )
        .bind(activation)
        .fetch_one(c)
        .await)
        .map_err(Error::db("look for settled keys"))?;
        Ok(found == 1)
    }

    /// Which of `keys` the ledger table holds settled for `activation`
    /// (the segments, which hold only settled keys, are asked through a
    /// [`KeySet`]): with them, the keys a warehouse key table may hold back.
    pub async fn settled_in_ledger(
        &self,
        activation: &str,
        keys: &[RowHash],
    ) -> Result<HashSet<RowHash>> {
        // Asked with a content no row has: a key left out of the answer,
        // or answered with a settled entry, is settled.
        let rows: Vec<(RowHash, RowHash)> = keys.iter().map(|k| (*k, [0xA5; 16])).collect();
        let changes = self.lookup_changes(activation, &rows).await?;
        let settled = keys
            .iter()
            .filter(|key| match changes.get(*key) {
                None => true,
                Some(Some(entry)) => matches!(
                    entry.status,
                    Status::Sent | Status::Baseline | Status::TooOld | Status::Suppressed
                ),
                Some(None) => false,
            })
            .copied()
            .collect();
        Ok(settled)
    }

    /// Whether `activation` has keys that answer for the destination they
    /// went to: sent, suppressed (by an invitation there), uncertain or in
    /// flight in the ledger, or settled keys in the segments (which do not
    /// say how each was settled). Rows that only failed, or were rejected,
    /// reached no one.
    pub async fn has_delivered(&self, activation: &str) -> Result<bool> {
        let found: i64 = on!(self.db.executor(), |c| sqlx::query_scalar(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM key_segments WHERE activation = $1)
                          OR EXISTS (SELECT 1 FROM ledger WHERE activation = $1
                                     AND status IN ('sent', 'suppressed', 'uncertain', 'in_flight'))
                    THEN 1 ELSE 0 END"
        )
        .bind(activation)
        .fetch_one(c)
        .await)
        .map_err(Error::db("look for a history"))?;
        Ok(found == 1)
    }

    /// Every key the ledger table holds for `activation` (a baseline leaves
    /// them out of its segments, so that their entries stay in force).
    pub async fn ledger_keys(&self, activation: &str) -> Result<HashSet<RowHash>> {
        let keys: Vec<Vec<u8>> = on!(self.db.executor(), |c| sqlx::query_scalar(
            "SELECT key_hash FROM ledger WHERE activation = $1"
        )
        .bind(activation)
        .fetch_all(c)
        .await)
        .map_err(Error::db("read the ledger's keys"))?;
        keys.iter()
            .map(|k| {
                k.as_slice()
                    .try_into()
                    .map_err(|_| corrupt(format!("a ledger key of {} bytes", k.len())))
            })
            .collect()
    }

    /// How many keys only the segments hold (baseline keys without a ledger row).
    pub(crate) async fn segment_only_keys(&self, activation: &str) -> Result<u64> {
        let set = self.key_set(activation).await?;
        if set.is_empty() {
            return Ok(0);
        }
        let table = self.ledger_keys(activation).await?;
        let in_both = table
            .iter()
            .filter(|key| set.get(key, &[0; 16]) != Seen::Unknown)
            .count();
        Ok(set.len().saturating_sub(in_both) as u64)
    }
}

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

#[cfg(test)]
mod tests {

    use super::*;

    async fn state() -> (tempfile::TempDir, State) {
        crate::test_state().await
    }

    fn key(i: u32) -> RowHash {
        let mut k = [0u8; 16];
        k[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
        k[4..8].copy_from_slice(&i.to_be_bytes());
        k
    }

    #[tokio::test]
    async fn candidates_are_looked_up_in_the_ledger_and_the_segments_as_a_full_scan_would() {
        let (_dir, state) = state().await;
        let lease = crate::test_lease(&state, "a").await;
        // Two blocks: key 1 rewritten by the second; key 3 of unknown content.
        for records in [
            vec![(key(1), [1; 16]), (key(2), [2; 16])],
            vec![(key(1), [9; 16]), (key(3), retl_diff::UNKNOWN_CONTENT)],
        ] {
            let mut tx = state.fenced(&lease).await.unwrap();
            tx.append_segments(&mut records.clone()).await.unwrap();
            tx.commit().await.unwrap();
        }
        let rows = [
            (key(1), [9; 16]), // the later block's content: settled, unchanged
            (key(2), [7; 16]), // changed since its baseline
            (key(3), [5; 16]), // unknown content: settled
            (key(4), [4; 16]), // nowhere: new
        ];
        let found = state.lookup_candidates("a", &rows).await.unwrap();
        assert!(
            !found.contains_key(&key(1)) && !found.contains_key(&key(3)),
            "{found:?}"
        );
        assert_eq!(
            found.get(&key(2)),
            Some(&Some(Entry {
                content: [2; 16],
                status: Status::Baseline,
                attempts: 0
            }))
        );
        assert_eq!(found.get(&key(4)), Some(&None));
        // The same answers as a full scan's, for the rows the set decides.
        let set = state.key_set("a").await.unwrap();
        let full = state.lookup_with("a", &set, &rows).await.unwrap();
        assert_eq!(
            full.changes.keys().collect::<HashSet<_>>(),
            found.keys().collect::<HashSet<_>>()
        );
        // Many keys: each is found in its block.
        let mut many: Vec<(RowHash, RowHash)> = (10..2_000).map(|i| (key(i), [3; 16])).collect();
        let mut tx = state.fenced(&lease).await.unwrap();
        tx.append_segments(&mut many.clone()).await.unwrap();
        tx.commit().await.unwrap();
        many.push((key(5_000), [3; 16]));
        let found = state.lookup_candidates("a", &many).await.unwrap();
        assert_eq!(found.keys().collect::<Vec<_>>(), vec![&key(5_000)]);
    }

    #[tokio::test]
    async fn blocks_load_into_a_set_where_the_later_record_wins_and_merge_when_crowded() {
        let (_dir, state) = state().await;
        let lease = crate::test_lease(&state, "a").await;
        // The first is level 0 (the activation had none); the next are level 1.
        for round in 0..=MAX_BLOCKS + 1 {
            let mut tx = state.fenced(&lease).await.unwrap();
            // Every round rewrites key 0 and adds 100 keys of its own.
            let mut records: Vec<(RowHash, RowHash)> = (0..100u32)
                .map(|i| (key(u32::try_from(round).unwrap() * 100 + i + 1), [1; 16]))
                .collect();
            records.push((key(0), [u8::try_from(round).unwrap(); 16]));
            tx.append_segments(&mut records).await.unwrap();
            tx.commit().await.unwrap();
        }
        let set = state.key_set("a").await.unwrap();
        assert_eq!(
            set.len(),
            1 + 100 * (usize::try_from(MAX_BLOCKS).unwrap() + 2)
        );
        let last = [u8::try_from(MAX_BLOCKS + 1).unwrap(); 16];
        assert_eq!(set.get(&key(0), &last), Seen::Unchanged);
        assert_eq!(set.get(&key(0), &[0; 16]), Seen::Changed);
        assert_eq!(set.get(&key(5), &[1; 16]), Seen::Unchanged);
        assert_eq!(set.get(&key(999_999), &[1; 16]), Seen::Unknown);
        assert!(state.key_set("b").await.unwrap().is_empty());

        let mut tx = state.fenced(&lease).await.unwrap();
        let merged = tx.compact_segments(usize::MAX).await.unwrap();
        tx.commit().await.unwrap();
        assert!(merged >= 1, "key 0's part had a block per round");
        let after = state.key_set("a").await.unwrap();
        assert_eq!(after.len(), set.len());
        assert_eq!(after.get(&key(0), &last), Seen::Unchanged);
        assert_eq!(after.get(&key(1_600), &[1; 16]), Seen::Unchanged);
    }

    /// Every block of `activation` as (part, level, records, lo, hi).
    async fn blocks(state: &State, activation: &str) -> Vec<(i64, i64, i64, Vec<u8>, Vec<u8>)> {
        on!(state.db.executor(), |c| sqlx::query_as(
            "SELECT b.part, b.level, s.records, b.lo, b.hi FROM key_bounds b JOIN key_segments s
               ON s.activation = b.activation AND s.part = b.part AND s.seq = b.seq
             WHERE b.activation = $1 ORDER BY b.part, b.level, b.hi"
        )
        .bind(activation)
        .fetch_all(c)
        .await)
        .unwrap()
    }

    #[tokio::test]
    async fn blocks_are_bounded_and_merges_keep_each_part_s_level_0_disjoint_and_exact() {
        let (_dir, state) = state().await;
        let lease = crate::test_lease(&state, "a").await;
        // What the segments must answer: each key's last content.
        let mut model: HashMap<RowHash, RowHash> = HashMap::new();
        let mut seed = 7u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // A baseline of 20,000 keys, then rounds of appends (new keys and
        // rewrites of old ones), merged whenever a part is crowded.
        let mut rounds: Vec<Vec<(RowHash, RowHash)>> =
            vec![(0..20_000).map(|i| (key(i), [1; 16])).collect()];
        for round in 0..40u32 {
            let size = if round % 10 == 9 { 3_000 } else { 300 };
            rounds.push(
                (0..size)
                    .map(|_| {
                        let i = u32::try_from(next() % 40_000).unwrap();
                        (key(i), [u8::try_from(round % 250).unwrap() + 2; 16])
                    })
                    .collect(),
            );
        }
        let mut merged = 0;
        for records in rounds {
            for (key, content) in &records {
                model.insert(*key, *content);
            }
            let mut tx = state.fenced(&lease).await.unwrap();
            tx.append_segments(&mut records.clone()).await.unwrap();
            merged += tx.compact_segments(usize::MAX).await.unwrap();
            tx.commit().await.unwrap();
        }
        assert!(merged > 0, "appends crowded some parts");
        let written = blocks(&state, "a").await;
        assert!(
            written
                .iter()
                .all(|(_, _, n, _, _)| usize::try_from(*n).unwrap() <= BLOCK_RECORDS)
        );
        // Each part's level-0 blocks are disjoint, in order of their keys.
        for pair in written.windows(2) {
            let [(pa, la, _, _, hi), (pb, lb, _, lo, _)] = pair else {
                unreachable!()
            };
            if pa == pb && *la == MERGED && *lb == MERGED {
                assert!(hi < lo, "overlapping level-0 blocks in part {pa}");
            }
        }
        let asked: Vec<RowHash> = (0..45_000).map(key).collect();
        let found = state.segment_contents("a", &asked).await.unwrap();
        let expected: HashMap<RowHash, RowHash> = model.clone();
        assert_eq!(found.len(), expected.len());
        assert!(
            found == expected,
            "a lookup answers each key's last content"
        );
        let set = state.key_set("a").await.unwrap();
        assert_eq!(set.len(), model.len());
        for (key, content) in &model {
            assert_eq!(set.get(key, content), Seen::Unchanged);
        }
    }

    #[tokio::test]
    async fn a_key_found_inside_another_record_s_content_is_looked_for_in_the_whole_block() {
        let (_dir, state) = state().await;
        let lease = crate::test_lease(&state, "a").await;
        // Keys of part 5; key 1's content is key 2's bytes, key 3's is
        // key 9's (which no record has).
        let of_part = |i: u8| {
            let mut k = [i; 16];
            k[0] = 5;
            k
        };
        let mut tx = state.fenced(&lease).await.unwrap();
        tx.append_segments(&mut [
            (of_part(1), of_part(2)),
            (of_part(2), [7; 16]),
            (of_part(3), of_part(9)),
        ])
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let found = state
            .segment_contents("a", &[of_part(2), of_part(9), of_part(1)])
            .await
            .unwrap();
        assert_eq!(found.get(&of_part(2)), Some(&[7; 16]));
        assert_eq!(found.get(&of_part(1)), Some(&of_part(2)));
        assert!(!found.contains_key(&of_part(9)), "{found:?}");
    }

    #[tokio::test]
    async fn blocks_written_before_bounds_are_level_1_until_their_part_is_merged() {
        let (_dir, state) = state().await;
        let lease = crate::test_lease(&state, "a").await;
        // A block as version 19 wrote it: 3,000 records of part 9 in one
        // blob, its bounds as version 20's migration gives them.
        let of_part = |i: u32| {
            let mut k = key(i);
            k[0] = 9;
            k
        };
        let mut records: Vec<(RowHash, RowHash)> =
            (0..3_000).map(|i| (of_part(i), [1; 16])).collect();
        records.sort_by_key(|(key, _)| *key);
        let data: Vec<u8> = records
            .iter()
            .flat_map(|(key, content)| key.iter().chain(content.iter()).copied())
            .collect();
        on!(state.db.executor(), |c| sqlx::query(
            "INSERT INTO key_segments (activation, part, seq, records, data) VALUES ('a', 9, 1, 3000, $1)"
        )
        .bind(&data)
        .execute(c)
        .await
        .map(|_| ()))
        .unwrap();
        on!(state.db.executor(), |c| sqlx::query(
            "INSERT INTO key_bounds (activation, part, seq, level, lo, hi)
             SELECT activation, part, seq, 1, substr(data, 1, 16), substr(data, length(data) - 31, 16)
             FROM key_segments"
        )
        .execute(c)
        .await
        .map(|_| ()))
        .unwrap();
        let keys: Vec<RowHash> = (0..3_001).map(of_part).collect();
        assert_eq!(
            state.segment_contents("a", &keys).await.unwrap().len(),
            3_000
        );
        let mut tx = state.fenced(&lease).await.unwrap();
        assert_eq!(
            tx.compact_segments(usize::MAX).await.unwrap(),
            1,
            "a block over the bound"
        );
        tx.commit().await.unwrap();
        let written = blocks(&state, "a").await;
        assert_eq!(written.len(), 3_000usize.div_ceil(BLOCK_RECORDS));
        assert!(written.iter().all(|(_, level, _, _, _)| *level == MERGED));
        let found = state.segment_contents("a", &keys).await.unwrap();
        assert_eq!(found.len(), 3_000);
        assert!(!found.contains_key(&of_part(3_000)));
    }

    #[tokio::test]
    async fn a_lookup_asks_the_table_only_for_what_the_set_cannot_decide() {
        let (_dir, state) = state().await;
        let lease = crate::test_lease(&state, "a").await;
        let mut tx = state.fenced(&lease).await.unwrap();
        // Key 1: baseline, in a segment only. Key 2: sent, in the table only.
        tx.append_segments(&mut [(key(1), [1; 16])]).await.unwrap();
        tx.record(&[crate::Outcome {
            key: key(2),
            content: [2; 16],
            status: Status::Sent,
            row_key: Some("2"),
            reference: None,
            error: None,
        }])
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let set = state.key_set("a").await.unwrap();
        let rows = [
            (key(1), [1; 16]),
            (key(2), [2; 16]),
            (key(3), [3; 16]),
            (key(4), [4; 16]),
        ];
        let found = state.lookup_with("a", &set, &rows).await.unwrap();
        assert_eq!(
            found.settled,
            vec![(key(2), [2; 16])],
            "fold what the table settled"
        );
        assert!(!found.changes.contains_key(&key(1)));
        assert_eq!(found.changes[&key(3)], None);
        // A changed baseline key comes back as baseline, with another content.
        let changed = state
            .lookup_with("a", &set, &[(key(1), [9; 16])])
            .await
            .unwrap();
        let entry = changed.changes[&key(1)].unwrap();
        assert_eq!(entry.status, Status::Baseline);
        assert_ne!(entry.content, [9; 16]);
    }
}
