//! The settled keys of an activation, in memory, for a full-scan diff.
//!
//! A full scan asks of every row read whether its key is already *settled*
//! (sent, baseline or too old: never to be sent again) with the same content.
//! Asking the ledger's B-tree costs a few microseconds a row; a [`KeySet`]
//! answers in a few cache misses, with no allocation and no IO.
//!
//! # Exact where it decides a send
//!
//! A key is found only if all 16 bytes of its hash match: the set holds every
//! byte of each key (the first two implied by its bucket, the other fourteen
//! stored), so a new row can never look settled. The content is kept as a
//! 4-byte tag: different tags prove the content changed ([`Seen::Changed`]),
//! equal tags are taken as unchanged. The tag only decides between
//! `already_sent` and `ignored_changed` of a key that is settled either way,
//! never whether a row is sent; a changed row whose tag collides (one chance in
//! 2³², per changed row) is counted as already sent and not logged as changed.
//!
//! # Bounded
//!
//! 18 bytes a key plus a bucket table of 4 bytes per bucket (about one bucket
//! per 8 keys): 10,000,000 keys take about 190 MB. The entries are allocated
//! once, at the size the state announces. Keys arrive a part (first key byte)
//! at a time, and a part's buckets are contiguous: building is a counting
//! sort of each part, no comparison sort.

use crate::RowHash;

/// Bytes of the key each entry stores (the first two are implied by the bucket).
const STORED: usize = 14;
/// Bytes of each entry: the key's last 14 bytes and a 4-byte content tag.
const ENTRY: usize = STORED + 4;
/// Fewest bucket bits: the first two key bytes are always implied by the bucket.
const MIN_BITS: u32 = 16;
/// Most bucket bits (a 16 MiB bucket table).
const MAX_BITS: u32 = 22;

/// What a [`KeySet`] knows of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Its key is settled with (as far as the tag tells) the same content.
    Unchanged,
    /// Its key is settled, with another content.
    Changed,
    /// Its key is not in the set: the ledger decides.
    Unknown,
}

/// Settled keys with a tag of their content, sorted into hash buckets.
pub struct KeySet {
    bits: u32,
    /// `offsets[b]..offsets[b + 1]` are bucket `b`'s entries.
    offsets: Vec<u32>,
    entries: Vec<[u8; ENTRY]>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("keys", &self.entries.len())
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

fn bucket(key: &RowHash, bits: u32) -> usize {
    let top = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    (top >> (32 - bits)) as usize
}

fn tag(content: &RowHash) -> [u8; 4] {
    [content[0], content[1], content[2], content[3]]
}

impl KeySet {
    /// A builder for about `capacity` records (their count sizes the buckets
    /// and the allocation: the entries are never copied to grow).
    pub fn builder(capacity: usize) -> KeySetBuilder {
        // About eight keys a bucket: a probe reads one or two cache lines.
        let wanted = (capacity / 8).max(1).next_power_of_two().trailing_zeros();
        let bits = wanted.clamp(MIN_BITS, MAX_BITS);
        KeySetBuilder {
            set: KeySet {
                bits,
                offsets: Vec::with_capacity((1 << bits) + 1),
                entries: Vec::with_capacity(capacity),
            },
            closed: 0,
            last_part: None,
        }
    }

    /// How many records it holds: a key recorded twice (its content changed)
    /// counts twice.
    pub fn records(&self) -> usize {
        self.entries.len()
    }

    /// How many distinct keys it holds (a walk of every bucket: for reports).
    pub fn len(&self) -> usize {
        let mut keys = 0;
        for bounds in self.offsets.windows(2) {
            let bucket = &self.entries[bounds[0] as usize..bounds[1] as usize];
            keys += bucket
                .iter()
                .enumerate()
                .filter(|(i, entry)| {
                    !bucket[i + 1..]
                        .iter()
                        .any(|later| later[..STORED] == entry[..STORED])
                })
                .count();
        }
        keys
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What the set knows of a row with this key and content.
    pub fn get(&self, key: &RowHash, content: &RowHash) -> Seen {
        let b = bucket(key, self.bits);
        self.scan(key, content, self.offsets[b], self.offsets[b + 1])
    }

    /// [`get`](Self::get) for every row of a batch, in order.
    ///
    /// In two passes (every row's bucket bounds, then every row's bucket):
    /// each is a loop of independent loads, so the processor waits for many
    /// cache misses at once instead of one after the other. On 1M keys this
    /// halves the time of a lookup.
    pub fn get_many(&self, rows: &[(RowHash, RowHash)]) -> Vec<Seen> {
        let bounds: Vec<(u32, u32)> = rows
            .iter()
            .map(|(key, _)| {
                let b = bucket(key, self.bits);
                (self.offsets[b], self.offsets[b + 1])
            })
            .collect();
        rows.iter()
            .zip(bounds)
            .map(|((key, content), (start, end))| self.scan(key, content, start, end))
            .collect()
    }

    fn scan(&self, key: &RowHash, content: &RowHash, start: u32, end: u32) -> Seen {
        let stored = &key[16 - STORED..];
        // From the end: of two records of a key, the later is in force.
        for entry in self.entries[start as usize..end as usize].iter().rev() {
            if &entry[..STORED] == stored {
                // A record of unknown content (a key-only baseline) is
                // taken as unchanged: the key is settled either way.
                return if entry[STORED..] == tag(content) || entry[STORED..] == [0; 4] {
                    Seen::Unchanged
                } else {
                    Seen::Changed
                };
            }
        }
        Seen::Unknown
    }
}

/// Builds a [`KeySet`] part by part: a part is every key whose first byte is
/// the same, and parts come in ascending order.
pub struct KeySetBuilder {
    set: KeySet,
    /// Buckets whose bounds are set.
    closed: usize,
    /// The last part added.
    last_part: Option<u8>,
}

impl KeySetBuilder {
    /// Adds one part's records `(key, content)` in the order they were
    /// written: of two records of one key, the later wins. No sort: records
    /// are counted per bucket, then placed (a counting sort of one part, whose
    /// buckets are contiguous and small enough to stay in cache).
    ///
    /// # Panics
    /// If a key does not start with `part`, or `part` is not above the last.
    pub fn add_part(&mut self, part: u8, records: &[(RowHash, RowHash)]) {
        assert!(
            self.last_part.is_none_or(|last| part > last),
            "parts must be added in ascending order"
        );
        self.last_part = Some(part);
        let bits = self.set.bits;
        // The part's buckets: every bucket whose first key byte is `part`.
        let first = usize::from(part) << (bits - 8);
        let width = 1usize << (bits - 8);
        let filled = self.set.entries.len();
        // Buckets of the parts skipped are empty.
        let start = u32::try_from(filled).expect("fewer than 2^32 keys");
        while self.closed < first {
            self.set.offsets.push(start);
            self.closed += 1;
        }
        let mut counts = vec![0u32; width];
        for (key, _) in records {
            assert_eq!(key[0], part, "a key outside its part");
            counts[bucket(key, bits) - first] += 1;
        }
        // Each bucket's start, then the place of its next record.
        let mut next = Vec::with_capacity(width);
        let mut at = start;
        for count in &counts {
            self.set.offsets.push(at);
            next.push(at);
            at += count;
        }
        self.closed += width;
        self.set.entries.resize(at as usize, [0; ENTRY]);
        for (key, content) in records {
            let slot = &mut next[bucket(key, bits) - first];
            let entry = &mut self.set.entries[*slot as usize];
            entry[..STORED].copy_from_slice(&key[16 - STORED..]);
            entry[STORED..].copy_from_slice(&tag(content));
            *slot += 1;
        }
    }

    /// The finished set.
    pub fn finish(mut self) -> KeySet {
        let filled = u32::try_from(self.set.entries.len()).expect("fewer than 2^32 keys");
        // The bucket bounds end with the end of the entries.
        let buckets = 1usize << self.set.bits;
        while self.set.offsets.len() <= buckets {
            self.set.offsets.push(filled);
        }
        // No `shrink_to_fit`: it would copy the entries, doubling the peak.
        self.set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> RowHash {
        // Spread over the whole key space, like the hashes the set holds.
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
        k[8..].copy_from_slice(&i.to_be_bytes());
        k
    }

    /// A set of `keys`, added part by part in the order given.
    fn set(keys: &[(RowHash, RowHash)]) -> KeySet {
        let mut builder = KeySet::builder(keys.len());
        for part in 0..=255u8 {
            let records: Vec<(RowHash, RowHash)> =
                keys.iter().copied().filter(|(k, _)| k[0] == part).collect();
            builder.add_part(part, &records);
        }
        builder.finish()
    }

    #[test]
    fn finds_every_key_it_holds_and_no_other() {
        let keys: Vec<(RowHash, RowHash)> = (0..50_000).map(|i| (key(i), key(i + 1))).collect();
        let set = set(&keys);
        assert_eq!((set.len(), set.records()), (50_000, 50_000));
        for (k, c) in &keys {
            assert_eq!(set.get(k, c), Seen::Unchanged);
            assert_eq!(set.get(k, &[0xAB; 16]), Seen::Changed);
        }
        let mixed = [keys[3], (keys[4].0, [0xAB; 16]), (key(70_000), [0; 16])];
        assert_eq!(
            set.get_many(&mixed),
            vec![Seen::Unchanged, Seen::Changed, Seen::Unknown]
        );
        for i in 50_000..60_000 {
            assert_eq!(set.get(&key(i), &key(i + 1)), Seen::Unknown);
        }
    }

    #[test]
    fn a_key_differing_in_any_single_byte_is_unknown() {
        let k = key(7);
        let set = set(&[(k, [1; 16])]);
        for byte in 0..16 {
            let mut other = k;
            other[byte] ^= 1;
            assert_eq!(set.get(&other, &[1; 16]), Seen::Unknown, "byte {byte}");
        }
    }

    #[test]
    fn the_later_of_two_records_of_a_key_wins() {
        let set = set(&[([5; 16], [1; 16]), ([6; 16], [1; 16]), ([5; 16], [2; 16])]);
        assert_eq!(set.records(), 3);
        assert_eq!(set.len(), 2);
        assert_eq!(set.get(&[5; 16], &[2; 16]), Seen::Unchanged);
        assert_eq!(set.get(&[5; 16], &[1; 16]), Seen::Changed);
    }

    #[test]
    fn the_empty_set_knows_nothing_and_extreme_keys_are_found() {
        assert_eq!(
            KeySet::builder(0).finish().get(&[0; 16], &[0; 16]),
            Seen::Unknown
        );
        let set = set(&[([0; 16], [0; 16]), ([0xFF; 16], [0; 16])]);
        assert_eq!(set.get(&[0; 16], &[0; 16]), Seen::Unchanged);
        assert_eq!(set.get(&[0xFF; 16], &[0; 16]), Seen::Unchanged);
    }

    #[test]
    #[should_panic(expected = "ascending")]
    fn parts_out_of_order_are_refused() {
        let mut builder = KeySet::builder(2);
        builder.add_part(5, &[([5; 16], [0; 16])]);
        builder.add_part(4, &[([4; 16], [0; 16])]);
    }

    #[test]
    #[should_panic(expected = "outside its part")]
    fn a_key_outside_its_part_is_refused() {
        KeySet::builder(1).add_part(5, &[([4; 16], [0; 16])]);
    }
}
