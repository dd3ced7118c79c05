//! Key segments: each activation's settled keys in sorted blocks, which a
//! full scan loads into a [`KeySet`] once instead of probing the ledger's
//! B-tree for every row.
//!
//! This file holds the record format, the load and the lookups by key (read
//! together: each reads the blocks the way the format lays them out);
//! `write.rs` the appends and merges; `tests.rs` the unit tests.
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
//! and one 3 KB block per key: on SQLite, in this process, the blocks of 200
//! keys come as one value and retl searches them; on PostgreSQL the server
//! finds each key in its block and 32 bytes cross the network.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use futures::TryStreamExt as _;
use retl_diff::{Entry, KeySet, KeySetBuilder, RowHash, Seen, Status};

use crate::db::{Db, on};
use crate::{Error, Result, State};

mod write;

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
/// Keys whose level-0 blocks one SQLite statement returns (as one value of
/// up to 600 KB): at 500, the run's peak RSS was 10 MB higher, at the same
/// speed (1M-row cursor bench).
const BLOCKS_CHUNK: usize = 200;
/// Digits of a block's length in those answers (`printf('%010d', …)`).
const LENGTH_DIGITS: usize = 10;
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

/// A key read back from the state, checked to be one.
fn as_key(bytes: &[u8]) -> Result<RowHash> {
    bytes
        .try_into()
        .map_err(|_| corrupt(format!("a key of {} bytes", bytes.len())))
}

/// The first of [`State::in_merged`]'s answers on SQLite (a key, its
/// block's length in ten ASCII digits, the block) and the rest after it.
/// Ten digits hold any blob SQLite keeps (at most 10⁹ bytes), so a block
/// larger than the bound cannot shift the framing.
fn framed(answers: &[u8]) -> Result<(RowHash, &[u8], &[u8])> {
    let bad = || corrupt("a lookup's answer cut short".to_owned());
    let (key, rest) = answers.split_at_checked(16).ok_or_else(bad)?;
    let (digits, rest) = rest.split_at_checked(LENGTH_DIGITS).ok_or_else(bad)?;
    let length: usize = std::str::from_utf8(digits)
        .ok()
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(bad)?;
    let (block, rest) = rest.split_at_checked(length).ok_or_else(bad)?;
    Ok((as_key(key)?, block, rest))
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
        match &self.db {
            // Each key's block, searched here: SQLite has no search of its
            // own cheaper than copying the block (its `instr` scans byte by
            // byte, and a result cannot name it twice without running it
            // twice), and the block is in this process. The answers come as
            // one value, each the key, the block's length in ten digits and
            // the block: SQLite's rows cross to retl one at a time, at about
            // the cost of reading the block. Anonymous parameters: SQLite
            // looks named ones up by a linear scan.
            Db::Sqlite(pool) => {
                // One connection for every chunk: each keeps a page cache
                // of its own (8 MiB), and chunks spread over the pool's
                // connections filled one each (a run's peak RSS at 50M rows
                // was 46, 56 or 66 MB by how many).
                let mut connection = pool.acquire().await.map_err(load)?;
                for chunk in keys.chunks(BLOCKS_CHUNK) {
                    let mut sql = String::from("WITH q(p, k) AS (VALUES ");
                    sql.push_str(&vec!["(?, ?)"; chunk.len()].join(", "));
                    sql.push_str(
                        ") SELECT CAST(group_concat(q.k || printf('%010d', length(s.data)) || s.data, x'') AS BLOB)
                           FROM q JOIN key_segments s
                           ON s.activation = ? AND s.part = q.p AND s.seq = (
                              SELECT b.seq FROM key_bounds b
                              WHERE b.activation = ? AND b.level = ? AND b.part = q.p AND b.hi >= q.k
                              ORDER BY b.hi LIMIT 1)",
                    );
                    let mut query = sqlx::query_scalar::<_, Option<Vec<u8>>>(&sql);
                    for key in chunk {
                        query = query.bind(i64::from(key[0])).bind(key.as_slice());
                    }
                    let answers = query
                        .bind(activation)
                        .bind(activation)
                        .bind(MERGED)
                        .fetch_one(&mut *connection)
                        .await
                        .map_err(load)?
                        .unwrap_or_default();
                    let mut rest = answers.as_slice();
                    while !rest.is_empty() {
                        let (key, block);
                        (key, block, rest) = framed(rest)?;
                        if let Some(content) = search(block, &key)? {
                            found.insert(key, content);
                        }
                    }
                }
            }
            Db::Postgres(pool) => {
                for chunk in keys.chunks(LOOKUP_CHUNK) {
                    self.in_merged_remote(pool, activation, chunk, found)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// [`Self::in_merged`] on PostgreSQL: where each key is in its block
    /// (`position`, 0: nowhere) and the 32 bytes from there cross the
    /// network, not the 3 KB block; a match across two records (16 bytes that
    /// happen to straddle them) has the block read whole.
    async fn in_merged_remote(
        &self,
        pool: &sqlx::PgPool,
        activation: &str,
        chunk: &[RowHash],
        found: &mut HashMap<RowHash, RowHash>,
    ) -> Result<()> {
        let parts: Vec<i64> = chunk.iter().map(|key| i64::from(key[0])).collect();
        let wanted: Vec<Vec<u8>> = chunk.iter().map(|key| key.to_vec()).collect();
        let rows: Vec<(Vec<u8>, i64, i64, Vec<u8>)> = sqlx::query_as(
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
        .map_err(Error::db("look keys up in the key segments"))?;
        let mut straddling = Vec::new();
        for (key, seq, at, record) in rows {
            let key = as_key(&key)?;
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
            let block = blocks
                .get(&at)
                .ok_or_else(|| corrupt(format!("block {} of part {} went missing", at.1, at.0)))?;
            if let Some(content) = search(block, &key)? {
                found.insert(key, content);
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

#[cfg(test)]
mod tests;
