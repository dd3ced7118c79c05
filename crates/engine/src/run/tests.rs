//! The run's core in process, through the memory destination and a
//! temporary SQLite state: every outcome a row can have, a rerun, a
//! preview, an interrupt, and a run killed between marking a row in flight
//! and recording it. No binary is spawned.

use std::str::FromStr as _;

use retl_state::{Outcome, RowOutcome, RunStatus, State};
use sqlx::ConnectOptions as _;

use crate::config::Project;
use crate::{RunOptions, preview, run, run_with};

/// A warehouse of `rows` (id, email), a memory destination named `name`
/// whose `extra` YAML says what it refuses, fails or loses, and activation
/// `customers`; the project and the state.
async fn world(
    dir: &std::path::Path,
    name: &str,
    rows: &str,
    extra: &str,
) -> (Project, State, String) {
    let warehouse = format!("sqlite://{}", dir.join("w.db").display());
    let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(&warehouse)
        .unwrap()
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "CREATE TABLE customers (id INTEGER, email TEXT); INSERT INTO customers VALUES {rows};"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let config = dir.join("config");
    std::fs::create_dir_all(config.join("destinations")).unwrap();
    std::fs::create_dir_all(config.join("activations")).unwrap();
    std::fs::write(
        config.join("destinations/memory.yaml"),
        format!("name: {name}\ntype: memory\n{extra}"),
    )
    .unwrap();
    std::fs::write(
        config.join("activations/customers.yaml"),
        format!(
            "source:\n  connection: {warehouse}\n  table: customers\n  primary_key: [id]\ndestination: {name}\nfirst_run: send_all\nmapping:\n  reference: id\n  email: email\n"
        ),
    )
    .unwrap();
    let project =
        Project::load(&config, &crate::destinations::test_registry()).expect("the project loads");
    let state = State::open(&format!("sqlite://{}", dir.join("state.db").display()))
        .await
        .unwrap();
    (project, state, warehouse)
}

/// Runs SQL on the warehouse.
async fn sql(warehouse: &str, text: &str) {
    let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(warehouse)
        .unwrap()
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql(text).execute(&mut conn).await.unwrap();
}

/// The outcome of each key in run `run_id`'s log.
async fn outcomes(state: &State, run_id: &str) -> Vec<(String, RowOutcome)> {
    let mut rows: Vec<(String, RowOutcome)> = state
        .run_rows(run_id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.outcome))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

#[tokio::test]
async fn every_outcome_is_recorded_once_and_the_counts_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let (project, state, _) = world(
        dir.path(),
        "memory-outcomes",
        "(1, 'a@x.example'), (2, 'not-an-email'), (3, 'c@x.example'), (4, 'd@x.example'), (5, 'e@x.example'), (NULL, 'n@x.example'), (6, 'f@x.example'), (6, 'g@x.example')",
        "refuse: ['3']\nlost: ['4']\nfailing: ['5']\n",
    )
    .await;
    let activation = &project.activations["customers"];
    let destination = &project.destinations["memory-outcomes"];
    let first = run(&state, activation, destination).await.unwrap();
    let c = first.summary.counts;
    assert!(c.balanced(), "{c:?}");
    assert_eq!(first.summary.status, RunStatus::Completed);
    assert_eq!((c.read, c.new), (8, 8), "{c:?}");
    assert_eq!(
        (c.sent, c.rejected, c.uncertain, c.failed, c.duplicate),
        (1, 3, 1, 1, 2),
        "1 sent; 2 (email), 3 (refused) and the NULL key rejected; both rows of key 6 duplicate: {c:?}"
    );
    let logged = outcomes(&state, &first.summary.run_id).await;
    assert_eq!(logged.len(), 8, "one run-log row per row read: {logged:?}");
    for (key, outcome) in [
        ("1", RowOutcome::Sent),
        ("2", RowOutcome::Rejected),
        ("3", RowOutcome::Rejected),
        ("4", RowOutcome::Uncertain),
        ("5", RowOutcome::Failed),
        ("6", RowOutcome::Duplicate),
    ] {
        assert!(
            logged.contains(&(key.to_owned(), outcome)),
            "{key}: {outcome:?} in {logged:?}"
        );
    }

    // A rerun: the failed row is tried again, the NULL key rejected again
    // and key 6 duplicate again (none of them is settled); the rest are
    // settled.
    let second = run(&state, activation, destination).await.unwrap();
    let c = second.summary.counts;
    assert!(c.balanced(), "{c:?}");
    assert_eq!(
        (c.new, c.failed, c.rejected, c.duplicate, c.sent),
        (4, 1, 1, 2, 0),
        "{c:?}"
    );
    assert_eq!(c.already_sent, 2, "1 and the uncertain 4: {c:?}");
    assert_eq!(c.already_rejected, 2, "2 and 3: {c:?}");
}

#[tokio::test]
async fn a_preview_counts_what_a_run_would_do_and_does_none_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let (project, state, warehouse) = world(
        dir.path(),
        "memory-preview-core",
        "(1, 'a@x.example'), (2, 'not-an-email'), (3, 'c@x.example')",
        "",
    )
    .await;
    let activation = &project.activations["customers"];
    let destination = &project.destinations["memory-preview-core"];
    let seen = preview(&state, activation, destination, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!((seen.counts.sent, seen.counts.rejected), (2, 1));
    assert!(crate::destinations::memory::sent("memory-preview-core").is_empty());
    assert!(
        state
            .list_runs(Some("customers"), 10)
            .await
            .unwrap()
            .is_empty()
    );

    let done = run(&state, activation, destination).await.unwrap();
    assert_eq!(done.summary.counts.sent, seen.counts.sent);
    // After it: a new row and a changed one.
    sql(
        &warehouse,
        "INSERT INTO customers VALUES (4, 'd@x.example'); UPDATE customers SET email = 'c2@x.example' WHERE id = 3",
    )
    .await;
    let seen = preview(&state, activation, destination, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (seen.counts.sent, seen.counts.ignored_changed),
        (1, 1),
        "{:?}",
        seen.counts
    );
}

#[tokio::test]
async fn an_interrupted_run_sends_nothing_more_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (project, state, _) = world(
        dir.path(),
        "memory-interrupt",
        "(1, 'a@x.example'), (2, 'b@x.example')",
        "",
    )
    .await;
    let activation = &project.activations["customers"];
    let destination = &project.destinations["memory-interrupt"];
    let options = RunOptions::default();
    options.cancel.cancel();
    let stopped = run_with(&state, activation, destination, &options)
        .await
        .unwrap();
    assert_eq!(stopped.summary.status, RunStatus::Interrupted);
    assert_eq!(stopped.summary.counts.sent, 0);
    assert!(crate::destinations::memory::sent("memory-interrupt").is_empty());
    // The next run sends them.
    let next = run(&state, activation, destination).await.unwrap();
    assert_eq!(next.summary.counts.sent, 2);
}

#[tokio::test]
async fn a_row_left_in_flight_by_a_killed_run_is_never_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let (project, state, _) = world(
        dir.path(),
        "memory-killed",
        "(1, 'a@x.example'), (2, 'b@x.example')",
        "",
    )
    .await;
    let activation = &project.activations["customers"];
    let destination = &project.destinations["memory-killed"];
    // What a run killed between the mark and the record leaves: row 1
    // marked in flight, its lease expired.
    let first = run(&state, activation, destination).await.unwrap();
    assert_eq!(first.summary.counts.sent, 2);
    let key = retl_diff::hash_keys(
        &arrow_array::RecordBatch::try_from_iter([(
            "id",
            std::sync::Arc::new(arrow_array::Int64Array::from(vec![1_i64]))
                as arrow_array::ArrayRef,
        )])
        .unwrap(),
        &[0],
    )
    .unwrap()[0];
    let lease = state
        .acquire_lease("customers", "killed", std::time::Duration::from_mins(1))
        .await
        .unwrap();
    let mut tx = state.fenced(&lease).await.unwrap();
    tx.record(&[Outcome {
        key,
        content: [0; 16],
        status: retl_diff::Status::InFlight,
        row_key: Some("1"),
        reference: Some("1"),
        error: None,
    }])
    .await
    .unwrap();
    tx.commit().await.unwrap();
    state.release_lease(&lease).await.unwrap();

    let after = run(&state, activation, destination).await.unwrap();
    let c = after.summary.counts;
    assert!(c.balanced(), "{c:?}");
    assert_eq!(c.sent, 0, "{c:?}");
    assert_eq!(c.recovered, 1, "the row found in flight is reported: {c:?}");
    assert!(after.needs_attention());
    assert_eq!(
        crate::destinations::memory::sent("memory-killed").len(),
        2,
        "nothing was sent again"
    );
}
