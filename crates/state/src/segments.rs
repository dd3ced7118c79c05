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
//! 32-byte records (key hash, content hash) sorted by key, all of whose keys
//! start with the byte `part`; `seq` orders the blocks an activation wrote, and
//! of two records of one key the later block's wins. A record says "this key is
//! settled (sent, baseline or too old) with this content". Beside each block,
//! `key_prefixes (activation, part, seq, prefixes)` holds bytes 1–4 of each
//! of its keys, in order (a table of its own: SQLite reaches a column after
//! a large blob only through the blob's pages), so that a run looking up a
//! few candidates reads a block only when its prefixes hold one
//! ([`State::lookup_candidates`]). They are written:
//!
//! - by a first run with `first_run: skip_existing` (the baseline), in place of
//!   one ledger row per key: a block per part per million rows, a few
//!   sequential writes instead of millions of B-tree inserts. Keys the ledger
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
//! Loading reads one part's blocks at a time (about 1/256 of the keys) and
//! places them into the set's buckets (no merge, no sort); a part with more than
//! [`MAX_BLOCKS`] blocks is merged into one at the end of the run that found
//! it so.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use futures::TryStreamExt as _;
use retl_diff::{Entry, KeySet, KeySetBuilder, RowHash, Seen, Status};

use crate::db::{Db, on};
use crate::{Error, Fenced, Result, State};

/// Bytes of a record: the key hash, then the content hash.
const RECORD: usize = 32;
/// Blocks a part may have before it is merged into one.
pub const MAX_BLOCKS: i64 = 16;

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

fn records(data: &[u8]) -> Result<impl Iterator<Item = (RowHash, RowHash)> + '_> {
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

/// Bytes of a key kept in a block's prefixes: the four after the part's
/// (a new key matches one of a block of N keys with a chance of N in 2³²).
const PREFIX: usize = 4;

/// The prefixes of a block's records, in their (key) order: bytes 1–4 of
/// each key, an eighth of the block's size.
fn prefixes(block: &[u8]) -> Vec<u8> {
    block
        .chunks_exact(RECORD)
        .flat_map(|record| record[1..=PREFIX].iter().copied())
        .collect()
}

/// The records of a block whose prefix is `key`'s, as a range of record
/// indexes (empty when the block cannot hold `key`): the prefixes are in
/// the block's (key) order, so its records of that prefix are together.
fn prefix_range(prefixes: &[u8], key: &RowHash) -> std::ops::Range<usize> {
    let wanted = &key[1..=PREFIX];
    let count = prefixes.len() / PREFIX;
    let at = |i: usize| &prefixes[i * PREFIX..(i + 1) * PREFIX];
    let first = partition(count, |i| at(i) < wanted);
    let end = first + partition(count - first, |i| at(first + i) <= wanted);
    first..end
}

/// What a lookup asks of one block: the keys, and the records that can
/// hold them (`None`: the whole block, which has no prefixes).
#[derive(Debug, Default)]
struct Ask {
    keys: Vec<RowHash>,
    records: Option<std::ops::Range<usize>>,
    whole: bool,
}

impl Ask {
    fn add(&mut self, key: RowHash, range: Option<std::ops::Range<usize>>) {
        self.keys.push(key);
        match (range, &mut self.records) {
            (None, _) => self.whole = true,
            (Some(range), Some(records)) => {
                records.start = records.start.min(range.start);
                records.end = records.end.max(range.end);
            }
            (Some(range), records @ None) => *records = Some(range),
        }
    }

    /// The bytes to read: `substr`'s 1-based start and its length (the
    /// whole block: from 1, every byte).
    fn bytes(&self) -> (i64, i64) {
        match (&self.records, self.whole) {
            (Some(range), false) => (
                i64::try_from(range.start * RECORD + 1).unwrap_or(i64::MAX),
                i64::try_from(range.len() * RECORD).unwrap_or(i64::MAX),
            ),
            _ => (1, i64::from(i32::MAX)),
        }
    }
}

/// The first index in `0..count` for which `before` is false (`before`
/// true for a prefix of the indexes, false after).
fn partition(count: usize, before: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (0, count);
    while low < high {
        let middle = low + (high - low) / 2;
        if before(middle) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    low
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
        for (key, content) in records(block)? {
            out(&key, &content);
        }
        return Ok(());
    }
    let mut heads: Vec<_> = blocks
        .iter()
        .map(|b| records(b).map(Iterator::peekable))
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
        all.extend(records(block)?);
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
        let mut part: Option<i64> = None;
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        let sql = "SELECT part, data FROM key_segments WHERE activation = $1 ORDER BY part, seq";
        // One part's blocks at a time: memory stays at the set plus one part.
        let mut take = |(p, data): (i64, Vec<u8>)| -> Result<()> {
            if part != Some(p) {
                add_part(&mut builder, part, &blocks)?;
                blocks.clear();
                part = Some(p);
            }
            blocks.push(data);
            Ok(())
        };
        match &self.db {
            Db::Sqlite(pool) => {
                let mut rows = sqlx::query_as(sql).bind(activation).fetch(pool);
                while let Some(row) = rows.try_next().await.map_err(load)? {
                    take(row)?;
                }
            }
            Db::Postgres(pool) => {
                let mut rows = sqlx::query_as(sql).bind(activation).fetch(pool);
                while let Some(row) = rows.try_next().await.map_err(load)? {
                    take(row)?;
                }
            }
        }
        add_part(&mut builder, part, &blocks)?;
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

    /// What the segments hold for `keys` (the content in force), reading only
    /// the parts those keys fall in, one at a time: memory follows the
    /// candidates, not the activation's settled keys.
    ///
    /// A block's prefixes (an eighth of its size) say which of its records
    /// a key can be among; only those bytes cross to retl, sliced by the
    /// database (`substr`), one statement per part for all its blocks at
    /// once. PostgreSQL reads only the slice's chunks of a stored block;
    /// SQLite reads a block's blob whole to slice it, so there a lookup
    /// costs the blocks its keys fall in (one statement per part), which
    /// is small while blocks are (a baseline writes a block per part per
    /// million rows) and grows with a merged part's single block. A block
    /// written before version 16 has no prefixes and is read whole. A key
    /// not in the newest block that may hold it (two keys can share a
    /// prefix) is asked again of the older ones.
    pub async fn segment_contents(
        &self,
        activation: &str,
        keys: &[RowHash],
    ) -> Result<HashMap<RowHash, RowHash>> {
        let mut parts = std::collections::BTreeMap::<u8, Vec<RowHash>>::new();
        for key in keys {
            parts.entry(key[0]).or_default().push(*key);
        }
        let load = Error::db("look keys up in the key segments");
        let mut found = HashMap::new();
        for (part, wanted) in parts {
            let blocks: Vec<(i64, Option<Vec<u8>>)> = on!(self.db.executor(), |c| sqlx::query_as(
                "SELECT s.seq, p.prefixes FROM key_segments s
                 LEFT JOIN key_prefixes p ON p.activation = s.activation AND p.part = s.part AND p.seq = s.seq
                 WHERE s.activation = $1 AND s.part = $2 ORDER BY s.seq"
            )
            .bind(activation)
            .bind(i64::from(part))
            .fetch_all(c)
            .await)
            .map_err(load)?;
            // Each key with the blocks left to ask (those before this index,
            // newest first: later blocks win).
            let mut pending: Vec<(RowHash, usize)> =
                wanted.into_iter().map(|key| (key, blocks.len())).collect();
            while !pending.is_empty() {
                let mut asks: std::collections::BTreeMap<usize, Ask> =
                    std::collections::BTreeMap::new();
                for (key, before) in pending {
                    let next = (0..before).rev().find_map(|i| match &blocks[i].1 {
                        Some(prefixes) => {
                            let range = prefix_range(prefixes, &key);
                            (!range.is_empty()).then_some((i, Some(range)))
                        }
                        None => Some((i, None)),
                    });
                    // In no block: not in the segments.
                    let Some((block, range)) = next else { continue };
                    asks.entry(block).or_default().add(key, range);
                }
                let slices = self.block_slices(activation, part, &blocks, &asks).await?;
                pending = Vec::new();
                for (block, ask) in asks {
                    let records = &slices[&block];
                    for key in ask.keys {
                        match search(records, &key)? {
                            Some(content) => {
                                found.insert(key, content);
                            }
                            None => pending.push((key, block)),
                        }
                    }
                }
            }
        }
        Ok(found)
    }

    /// The records each ask of `asks` covers (by block index into `blocks`),
    /// read in one statement for the part: a slice of each block.
    async fn block_slices(
        &self,
        activation: &str,
        part: u8,
        blocks: &[(i64, Option<Vec<u8>>)],
        asks: &std::collections::BTreeMap<usize, Ask>,
    ) -> Result<HashMap<usize, Vec<u8>>> {
        let load = Error::db("look keys up in the key segments");
        let mut arms = Vec::with_capacity(asks.len());
        let mut binds: Vec<(i64, i64, i64, i64)> = Vec::with_capacity(asks.len());
        for (n, (&block, ask)) in asks.iter().enumerate() {
            let (from, length) = ask.bytes();
            let at = 3 + n * 4;
            arms.push(format!(
                "SELECT CAST(${at} AS BIGINT) AS i, substr(data, CAST(${} AS INTEGER), CAST(${} AS INTEGER)) AS d
                 FROM key_segments WHERE activation = $1 AND part = $2 AND seq = ${}",
                at + 1,
                at + 2,
                at + 3
            ));
            binds.push((
                i64::try_from(block).unwrap_or_default(),
                from,
                length,
                blocks[block].0,
            ));
        }
        let sql = arms.join(" UNION ALL ");
        let rows: Vec<(i64, Vec<u8>)> = on!(self.db.executor(), |c| {
            let mut query = sqlx::query_as(&sql).bind(activation).bind(i64::from(part));
            for (block, from, length, seq) in &binds {
                query = query.bind(*block).bind(*from).bind(*length).bind(*seq);
            }
            query.fetch_all(c).await
        })
        .map_err(load)?;
        let mut slices = HashMap::with_capacity(rows.len());
        for (block, data) in rows {
            slices.insert(usize::try_from(block).unwrap_or_default(), data);
        }
        for block in asks.keys() {
            if !slices.contains_key(block) {
                return Err(corrupt(format!(
                    "block {} of part {part} went missing",
                    blocks[*block].0
                )));
            }
        }
        Ok(slices)
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
    /// Writes `records` (key, content) as one new block per part they touch.
    /// Of two records of one key, the later in `records` wins.
    pub async fn append_segments(&mut self, records: &mut [(RowHash, RowHash)]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        records.sort_by_key(|(key, _)| *key);
        let write = Error::db("write key segments");
        let activation = self.activation.clone();
        let seq: i64 = on!(self.tx.executor(), |c| sqlx::query_scalar(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM key_segments WHERE activation = $1"
        )
        .bind(&activation)
        .fetch_one(c)
        .await)
        .map_err(write)?;
        let mut start = 0;
        while start < records.len() {
            let part = records[start].0[0];
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
            self.insert_block(i64::from(part), seq, data).await?;
            start = end;
        }
        Ok(())
    }

    async fn insert_block(&mut self, part: i64, seq: i64, data: Vec<u8>) -> Result<()> {
        let count = i64::try_from(data.len() / RECORD).unwrap_or(i64::MAX);
        let prefixes = prefixes(&data);
        on!(self.tx.executor(), |c| sqlx::query(
            "INSERT INTO key_prefixes (activation, part, seq, prefixes) VALUES ($1, $2, $3, $4)"
        )
        .bind(&self.activation)
        .bind(part)
        .bind(seq)
        .bind(&prefixes)
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(Error::db("write key segments"))?;
        on!(self.tx.executor(), |c| sqlx::query(
            "INSERT INTO key_segments (activation, part, seq, records, data)
             VALUES ($1, $2, $3, $4, $5)"
        )
        .bind(&self.activation)
        .bind(part)
        .bind(seq)
        .bind(count)
        .bind(&data)
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(Error::db("write key segments"))
    }

    /// Merges every part of this activation that has more than
    /// [`MAX_BLOCKS`] blocks into one block; returns how many parts it merged.
    pub async fn compact_segments(&mut self) -> Result<usize> {
        let compact = Error::db("compact key segments");
        let crowded: Vec<i64> = on!(self.tx.executor(), |c| sqlx::query_scalar(
            "SELECT part FROM key_segments WHERE activation = $1
             GROUP BY part HAVING COUNT(*) > $2 ORDER BY part"
        )
        .bind(&self.activation)
        .bind(MAX_BLOCKS)
        .fetch_all(c)
        .await)
        .map_err(compact)?;
        for &part in &crowded {
            let rows: Vec<(i64, Vec<u8>)> = on!(self.tx.executor(), |c| sqlx::query_as(
                "SELECT seq, data FROM key_segments WHERE activation = $1 AND part = $2
                 ORDER BY seq"
            )
            .bind(&self.activation)
            .bind(part)
            .fetch_all(c)
            .await)
            .map_err(compact)?;
            let last_seq = rows.last().map_or(0, |(seq, _)| *seq);
            let blocks: Vec<Vec<u8>> = rows.into_iter().map(|(_, data)| data).collect();
            let mut merged: Vec<u8> = Vec::with_capacity(blocks.iter().map(Vec::len).sum());
            merge(&blocks, |key, content| {
                let len = merged.len();
                if len >= RECORD && merged[len - RECORD..len - 16] == key[..] {
                    merged[len - 16..].copy_from_slice(content);
                } else {
                    merged.extend_from_slice(key);
                    merged.extend_from_slice(content);
                }
            })?;
            drop(blocks);
            for table in ["key_segments", "key_prefixes"] {
                let sql = format!("DELETE FROM {table} WHERE activation = $1 AND part = $2");
                on!(self.tx.executor(), |c| sqlx::query(&sql)
                    .bind(&self.activation)
                    .bind(part)
                    .execute(c)
                    .await
                    .map(|_| ()))
                .map_err(compact)?;
            }
            self.insert_block(part, last_seq, merged).await?;
        }
        Ok(crowded.len())
    }
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
        // Many keys of one part: the prefixes let each be found.
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
        for round in 0..=MAX_BLOCKS {
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
            1 + 100 * (usize::try_from(MAX_BLOCKS).unwrap() + 1)
        );
        let last = [u8::try_from(MAX_BLOCKS).unwrap(); 16];
        assert_eq!(set.get(&key(0), &last), Seen::Unchanged);
        assert_eq!(set.get(&key(0), &[0; 16]), Seen::Changed);
        assert_eq!(set.get(&key(5), &[1; 16]), Seen::Unchanged);
        assert_eq!(set.get(&key(999_999), &[1; 16]), Seen::Unknown);
        assert!(state.key_set("b").await.unwrap().is_empty());

        let mut tx = state.fenced(&lease).await.unwrap();
        let merged = tx.compact_segments().await.unwrap();
        tx.commit().await.unwrap();
        assert!(merged >= 1, "key 0's part had a block per round");
        let after = state.key_set("a").await.unwrap();
        assert_eq!(after.len(), set.len());
        assert_eq!(after.get(&key(0), &last), Seen::Unchanged);
        assert_eq!(after.get(&key(1_600), &[1; 16]), Seen::Unchanged);
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
