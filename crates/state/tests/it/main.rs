//! The state database against real files and a real PostgreSQL server.

use std::str::FromStr;
use std::time::Duration;

use retl_diff::Status;
use retl_state::{Error, RowOutcome, RunStatus, State, migrate};
use sqlx::ConnectOptions as _;

/// A state database file written by retl 0.1.0 (two runs of an activation
/// `orders`: 9 sent and 1 rejected, then 1 more sent), before versions were recorded.
const V0_1_0: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/state-v0.1.0.db"
);

fn copy_fixture(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("state.db");
    std::fs::copy(V0_1_0, &path).unwrap();
    format!("sqlite://{}", path.display())
}

async fn versions(url: &str) -> Vec<i64> {
    let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    sqlx::query_as::<_, (i64,)>("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|(v,)| v)
        .collect()
}

#[tokio::test]
async fn a_state_database_written_by_the_first_release_opens_with_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let url = copy_fixture(&dir);
    let state = State::open(&url).await.unwrap();
    assert_eq!(
        versions(&url).await,
        (1..=retl_state::migrate::LATEST).collect::<Vec<i64>>()
    );

    let runs = state.list_runs(Some("orders"), 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.status == RunStatus::Completed));
    let (last, first) = (&runs[0], &runs[1]);
    assert_eq!((first.counts.sent, first.counts.rejected), (9, 1));
    assert_eq!((last.counts.sent, last.counts.already_sent), (1, 9));
    let rejected: Vec<_> = state
        .run_rows(&first.run_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.outcome == RowOutcome::Rejected)
        .collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].key, "7");
    assert_eq!(
        state.ledger_counts("orders").await.unwrap(),
        vec![(Status::Rejected, 1), (Status::Sent, 10)]
    );

    // A second open finds it up to date and changes nothing.
    drop(state);
    State::open(&url).await.unwrap();
    assert_eq!(
        versions(&url).await,
        (1..=retl_state::migrate::LATEST).collect::<Vec<i64>>()
    );
}

/// A key's hash as the releases before canonical keys made it, and as this one does.
fn key_hashes(text: &str) -> ([u8; 16], [u8; 16]) {
    use std::sync::Arc;
    let as_text: arrow_array::ArrayRef = Arc::new(arrow_array::StringArray::from(vec![text]));
    let batch = arrow_array::RecordBatch::try_from_iter([("k", as_text)]).unwrap();
    let legacy = retl_diff::hash_rows(&batch, &[0]).unwrap()[0];
    let int: arrow_array::ArrayRef = Arc::new(arrow_array::Int64Array::from(vec![
        text.parse::<i64>().unwrap(),
    ]));
    let batch = arrow_array::RecordBatch::try_from_iter([("k", int)]).unwrap();
    (legacy, retl_diff::hash_keys(&batch, &[0]).unwrap()[0])
}

#[tokio::test]
async fn migrating_gives_a_text_key_of_digits_its_integers_identity() {
    let dir = tempfile::tempdir().unwrap();
    let url = copy_fixture(&dir);
    // A numeric key read as text, sent by an earlier release; and one whose
    // canonical key is already in the ledger (it stays as it was).
    let (legacy, canonical) = key_hashes("555");
    let (legacy_dup, canonical_dup) = key_hashes("556");
    let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    for (key, row_key) in [(legacy, "555"), (legacy_dup, "556"), (canonical_dup, "556")] {
        sqlx::query(
            "INSERT INTO ledger (activation, key_hash, content_hash, status, attempts, row_key,
                                 first_run, last_run, updated_at)
             VALUES ('numeric', ?, ?, 'sent', 1, ?, 'r', 'r', 'now')",
        )
        .bind(key.as_slice())
        .bind([9u8; 16].as_slice())
        .bind(row_key)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    drop(conn);
    let state = State::open(&url).await.unwrap();
    let found = state
        .lookup_changes("numeric", &[(canonical, [9; 16]), (canonical_dup, [9; 16])])
        .await
        .unwrap();
    assert!(
        found.is_empty(),
        "both keys are sent and unchanged: {found:?}"
    );
    let legacy_left = state
        .lookup_changes("numeric", &[(legacy, [9; 16])])
        .await
        .unwrap();
    assert!(legacy_left.contains_key(&legacy), "the old hash is gone");
    // The integer keys of the first release's `orders` kept their identity.
    assert_eq!(
        state.ledger_counts("orders").await.unwrap(),
        vec![(Status::Rejected, 1), (Status::Sent, 10)]
    );
}

#[tokio::test]
async fn a_state_database_from_a_newer_release_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = copy_fixture(&dir);
    State::open(&url).await.unwrap();
    let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    sqlx::query("INSERT INTO schema_migrations VALUES (99, 'from the future', 'x')")
        .execute(&mut conn)
        .await
        .unwrap();
    let err = State::open(&url).await.unwrap_err();
    assert!(matches!(err, Error::TooNew { found: 99, .. }), "{err}");
}

#[tokio::test]
async fn a_locked_database_and_a_read_only_one_are_told_apart_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    let url = copy_fixture(&dir);
    // Another program holds the write lock.
    let mut other = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut other)
        .await
        .unwrap();
    let options = retl_state::OpenOptions {
        busy_timeout: Duration::from_millis(50),
        ..retl_state::OpenOptions::default()
    };
    let err = State::open_with(&url, &options).await.unwrap_err();
    assert!(err.is_busy(), "{err:?}");
    assert!(!err.is_read_only());
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    drop(other);

    // A database that needs migrating but may not be written.
    let ro = format!("{url}?mode=ro");
    let err = State::open_with(&ro, &options).await.unwrap_err();
    assert!(err.is_read_only(), "{err:?}");
    assert!(!err.is_busy());
}

/// The PostgreSQL server's URL; `None` (skip) outside CI when unset.
fn postgres_url() -> Option<String> {
    if let Ok(url) = std::env::var("RETL_TEST_POSTGRES_URL") {
        return Some(url);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "RETL_TEST_POSTGRES_URL must be set when CI=true (scripts/test.sh sets it)"
    );
    eprintln!("skipped: RETL_TEST_POSTGRES_URL is not set (scripts/test.sh sets it)");
    None
}

#[tokio::test]
async fn simultaneous_first_opens_of_a_postgresql_state_migrate_it_once() {
    let Some(url) = postgres_url() else { return };
    let schema = format!("retl_state_it_{}", std::process::id());
    let mut admin = sqlx::postgres::PgConnectOptions::from_str(&url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    let join = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{join}options=-c%20search_path%3D{schema}");
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = scoped.clone();
            tokio::spawn(async move { State::open(&url).await.map(|_| ()) })
        })
        .collect();
    for open in opens {
        open.await.unwrap().unwrap();
    }
    let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {schema}.schema_migrations"))
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(n, migrate::LATEST);
    sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut admin)
        .await
        .unwrap();
}

/// Keys of one part whose bytes 1–4 are equal, and others at random: a
/// candidate lookup (a block read per key) answers as a full scan's key set
/// does, on `url`'s state, before and after its parts are merged.
async fn candidate_lookups_answer_as_the_key_set(url: &str) {
    let state = State::open(url).await.unwrap();
    let lease = state
        .acquire_lease("orders", "run-1", std::time::Duration::from_mins(1))
        .await
        .unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut random = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut key = |shared: Option<u8>| {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&random().to_be_bytes());
        k[8..].copy_from_slice(&random().to_be_bytes());
        if let Some(i) = shared {
            k[..5].copy_from_slice(&[7, 1, 2, 3, 4]);
            k[5] = i;
        }
        k
    };
    let shared: Vec<[u8; 16]> = (0..60).map(|i| key(Some(i * 2))).collect();
    let others: Vec<[u8; 16]> = (0..3_000).map(|_| key(None)).collect();
    // Keys whose content is another key's bytes, their neighbour's (the
    // last bit apart, so in the same block): of ten that no record has
    // (ghosts), and of ten of `others`, so that a search for either finds
    // them inside a record first.
    let ghosts: Vec<[u8; 16]> = (0..10).map(|_| key(None)).collect();
    let decoys: Vec<([u8; 16], [u8; 16])> = ghosts
        .iter()
        .chain(&others[..10])
        .map(|content| {
            let mut neighbour = *content;
            neighbour[15] ^= 1;
            (neighbour, *content)
        })
        .collect();
    let first: Vec<([u8; 16], [u8; 16])> = shared
        .iter()
        .chain(&others)
        .map(|k| (*k, [1; 16]))
        .chain(decoys)
        .collect();
    // A second block rewrites every third key's content.
    let second: Vec<([u8; 16], [u8; 16])> = first
        .iter()
        .step_by(3)
        .map(|(k, _)| (*k, [2; 16]))
        .collect();
    for records in [first.clone(), second] {
        let mut tx = state.fenced(&lease).await.unwrap();
        tx.append_segments(&mut records.clone()).await.unwrap();
        tx.commit().await.unwrap();
    }
    // Each key asked with its content in force, an old one, or another;
    // and keys nowhere, some sharing the prefix.
    let mut rows: Vec<([u8; 16], [u8; 16])> = first
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (*k, [u8::try_from(i % 4).unwrap(); 16]))
        .collect();
    rows.extend((0..30).map(|i| (key(Some(i * 2 + 1)), [1; 16])));
    rows.extend((0..30).map(|_| (key(None), [1; 16])));
    rows.extend(ghosts.iter().map(|k| (*k, [1; 16])));
    // The candidates' answer, checked against the full scan's.
    let answers_alike = async |when: &str| {
        let found = state.lookup_candidates("orders", &rows).await.unwrap();
        let set = state.key_set("orders").await.unwrap();
        let full = state.lookup_with("orders", &set, &rows).await.unwrap();
        assert_eq!(
            found.keys().collect::<std::collections::BTreeSet<_>>(),
            full.changes
                .keys()
                .collect::<std::collections::BTreeSet<_>>(),
            "the rows that need a decision, {when}"
        );
        found
    };
    let found = answers_alike("as written").await;
    let new = found.values().filter(|entry| entry.is_none()).count();
    assert_eq!(
        new, 70,
        "the keys nowhere are new, the prefix's and the ghosts included"
    );

    // Rounds of small appends crowd the parts; merged into their level-0
    // blocks, they answer alike.
    for round in 0..=retl_state::MAX_BLOCKS + 1 {
        let records: Vec<([u8; 16], [u8; 16])> = first
            .iter()
            .skip(usize::try_from(round).unwrap())
            .step_by(7)
            .map(|(k, _)| (*k, [u8::try_from(round).unwrap() + 3; 16]))
            .chain((0..40).map(|_| (key(None), [9; 16])))
            .collect();
        let mut tx = state.fenced(&lease).await.unwrap();
        tx.append_segments(&mut records.clone()).await.unwrap();
        tx.commit().await.unwrap();
    }
    let mut tx = state.fenced(&lease).await.unwrap();
    assert!(tx.compact_segments(usize::MAX).await.unwrap() > 0);
    tx.commit().await.unwrap();
    answers_alike("after merges").await;
}

#[tokio::test]
async fn candidate_lookups_answer_as_a_full_scan_before_and_after_merges_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("state.db").display());
    candidate_lookups_answer_as_the_key_set(&url).await;
}

#[tokio::test]
async fn candidate_lookups_answer_as_a_full_scan_before_and_after_merges_on_postgresql() {
    let Some(url) = postgres_url() else { return };
    let schema = format!("retl_state_seg_{}", std::process::id());
    let mut admin = sqlx::postgres::PgConnectOptions::from_str(&url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    let join = if url.contains('?') { '&' } else { '?' };
    candidate_lookups_answer_as_the_key_set(&format!(
        "{url}{join}options=-c%20search_path%3D{schema}"
    ))
    .await;
    sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut admin)
        .await
        .unwrap();
}
