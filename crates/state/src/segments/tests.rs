//! The key segments' unit tests: blocks written, merged, loaded and looked
//! up, against what each key's last record says.

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
    let mut records: Vec<(RowHash, RowHash)> = (0..3_000).map(|i| (of_part(i), [1; 16])).collect();
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

#[test]
fn a_lookup_s_answer_is_read_block_by_block_whatever_a_block_s_length() {
    // Two blocks as SQLite frames them: a small one, and one past five
    // digits of length (more records than any block keeps today).
    let block = |first: u32, records: u32| -> Vec<u8> {
        let mut keys: Vec<RowHash> = (first..first + records).map(key).collect();
        keys.sort_unstable();
        keys.iter().flat_map(|k| [*k, [7; 16]].concat()).collect()
    };
    let (small, large) = (block(0, 3), block(10, 4_000));
    let mut answers = Vec::new();
    for (k, data) in [(key(1), &small), (key(11), &large)] {
        answers.extend_from_slice(&k);
        answers.extend_from_slice(format!("{:010}", data.len()).as_bytes());
        answers.extend_from_slice(data);
    }
    let (k, read, rest) = framed(&answers).unwrap();
    assert_eq!((k, read), (key(1), small.as_slice()));
    let (k, read, rest) = framed(rest).unwrap();
    assert_eq!((k, read), (key(11), large.as_slice()));
    assert!(rest.is_empty());
    assert_eq!(search(read, &key(11)).unwrap(), Some([7; 16]));
    // An answer cut short is corrupt, not a shorter block.
    let cut = &answers[16 + 10 + small.len()..answers.len() - 1];
    assert!(framed(cut).is_err());
}
