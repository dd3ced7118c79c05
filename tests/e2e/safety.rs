//! No customer invited twice, no new row lost: crashes, fault storms,
//! concurrent runs, bad state databases.

use std::process::Stdio;
use std::time::{Duration, Instant};

use retl_trustpilot_emulator::{EmulatorConfig, Fault, FaultShares};

use super::{Kind, World, count, spawn_held};

/// A small deterministic generator, so a failing trial can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Runs the activation until a run completes with nothing left to retry.
fn run_to_completion(world: &World) -> serde_json::Value {
    for _ in 0..10 {
        let (code, summary) = world.run();
        assert!(matches!(code, 0 | 3), "exit {code}: {summary}");
        if count(&summary, "failed") == 0 {
            return summary;
        }
    }
    panic!("rows still failing after 10 runs");
}

fn crash_world() -> World {
    let config = EmulatorConfig {
        latency: Duration::from_millis(2),
        rate_limits: Vec::new(),
        ..EmulatorConfig::default()
    };
    World::with_emulator(Kind::Sqlite, config).unwrap()
}

#[test]
fn killed_runs_never_send_a_row_twice_nor_lose_one() {
    crash_trials(&crash_world(), 50);
}

#[test]
fn killed_runs_with_a_postgresql_state_database_never_send_twice() {
    if let Some(world) = crash_world().with_postgres_state() {
        crash_trials(&world, 12);
    }
}

/// Runs killed (SIGKILL) just after a block of key-segment records was
/// committed: a first run recording the rows already there (`skip_existing`)
/// killed between two of its blocks, then a run killed while folding keys the
/// ledger had settled into blocks. No old row is ever sent, and each new row
/// exactly once.
#[test]
fn runs_killed_while_writing_key_segments_send_each_new_row_once() {
    let world = crash_world();
    world.write_destination_with("rate_limits: []\nconcurrency: 4\n");
    world.edit_activation(|yaml| yaml.replace("first_run: send_all", "first_run: skip_existing"));
    world.insert(1, 300, None, None);
    let mut child = spawn_held(&world, "segments:2", &["--key-flush-rows", "50"]);
    child.kill().unwrap();
    child.wait().unwrap();
    let (code, first) = world.run();
    assert_eq!(code, 0, "{first}");
    assert_eq!(count(&first, "baseline"), 300, "{first}");
    assert_eq!(world.emulator().stats().invitation_requests, 0);

    world.insert(301, 400, None, None);
    let (code, second) = world.run();
    assert_eq!(code, 0, "{second}");
    assert_eq!(
        (count(&second, "sent"), count(&second, "already_sent")),
        (100, 300)
    );

    // The next run folds the 100 keys the ledger settled, in blocks of 10;
    // it is killed after the first, before it sends its own new rows.
    world.insert(401, 460, None, None);
    let mut child = spawn_held(&world, "segments:1", &["--key-flush-rows", "10"]);
    child.kill().unwrap();
    child.wait().unwrap();
    let third = run_to_completion(&world);
    assert_eq!(count(&third, "already_sent"), 400, "{third}");
    let (code, last) = world.run();
    assert_eq!(code, 0, "{last}");
    assert_eq!(
        (count(&last, "sent"), count(&last, "already_sent")),
        (0, 460)
    );
    let accepted = world.accepted_references();
    assert!(
        accepted.values().all(|&n| n == 1),
        "a reference was accepted twice"
    );
    let mut sent: Vec<u32> = accepted.keys().map(|r| r.parse().unwrap()).collect();
    sent.sort_unstable();
    assert_eq!(
        sent,
        (301..=460).collect::<Vec<_>>(),
        "each new row, once; no old one"
    );
}

/// `trials` times: new rows, a run killed (SIGKILL) at a chosen point (a row
/// just marked in flight, or just recorded), then runs until done; after each,
/// nothing sent twice and every row accounted for.
fn crash_trials(world: &World, trials: u32) {
    world.write_destination_with("rate_limits: []\nconcurrency: 4\n");
    let concurrency = 4;
    let rows_per_trial = 60;
    let mut rng = Lcg(0x5eed);
    let mut uncertain_seen = 0;
    let mut killed = 0;
    for trial in 0..trials {
        world.insert(
            trial * rows_per_trial + 1,
            (trial + 1) * rows_per_trial,
            None,
            None,
        );
        let before = world.ledger().get("uncertain").copied().unwrap_or(0);
        let point = if rng.below(2) == 0 {
            "in_flight"
        } else {
            "recorded"
        };
        let hold = format!("{point}:{}", 1 + rng.below(u64::from(rows_per_trial)));
        let mut child = spawn_held(world, &hold, &[]);
        child.kill().unwrap(); // SIGKILL
        killed += 1;
        child.wait().unwrap();
        run_to_completion(world);

        let ledger = world.ledger();
        let uncertain = ledger.get("uncertain").copied().unwrap_or(0);
        assert!(
            uncertain - before <= concurrency,
            "trial {trial}: {} rows uncertain after one kill, more than the {concurrency} requests in flight",
            uncertain - before
        );
        uncertain_seen += uncertain - before;
        let total: u64 = ledger.values().sum();
        let sent = ledger.get("sent").copied().unwrap_or(0);
        assert_eq!(
            total,
            u64::from((trial + 1) * rows_per_trial),
            "trial {trial}: every row has its entry: {ledger:?}"
        );
        assert_eq!(
            sent + uncertain,
            total,
            "trial {trial}: every row sent or reported: {ledger:?}"
        );
        let accepted = world.accepted_references();
        assert!(
            accepted.values().all(|&n| n == 1),
            "trial {trial}: a reference was accepted twice"
        );
        assert!(
            accepted.len() as u64 >= sent,
            "trial {trial}: a row recorded as sent never arrived"
        );
    }
    assert_eq!(killed, trials, "every trial kills a run in progress");
    eprintln!("{killed} kills, {uncertain_seen} rows left uncertain in all");
}

#[test]
fn a_fault_storm_leaves_every_row_with_one_outcome_and_no_duplicates() {
    let shares = FaultShares {
        burst: 3,
        seed: 42,
        ..FaultShares::default()
    }
    .with(Fault::ServerError, 0.05)
    .with(Fault::CdnError, 0.05)
    .with(Fault::AcceptThenHang, 0.05)
    .with(Fault::Drop, 0.03)
    .with(Fault::TooManyRequests, 0.02);
    let config = EmulatorConfig {
        faults: shares,
        rate_limits: Vec::new(),
        ..EmulatorConfig::default()
    };
    let world = World::with_emulator(Kind::Sqlite, config).unwrap();
    world.write_destination_with(
        "rate_limits: []\nconcurrency: 16\nrequest_timeout_seconds: 1\nretry:\n  backoff_ms: 5\n  tries_per_run: 2\n",
    );
    world.insert(1, 1500, Some(7), Some(8));
    let mut runs = 0;
    loop {
        let (code, summary) = world.run();
        runs += 1;
        assert!(matches!(code, 0 | 3), "exit {code}: {summary}");
        assert_eq!(summary["status"], "completed", "{summary}");
        // The run checked its own accounting; check it again from outside.
        let c = |n| count(&summary, n);
        assert_eq!(
            c("read"),
            c("already_sent") + c("already_rejected") + c("ignored_changed") + c("new")
        );
        assert_eq!(
            c("new"),
            c("sent") + c("rejected") + c("failed") + c("uncertain") + c("skipped")
        );
        if c("failed") == 0 || runs == 8 {
            break;
        }
    }
    let ledger = world.ledger();
    let total: u64 = ledger.values().sum();
    assert_eq!(total, 1500, "{ledger:?}");
    assert_eq!(ledger.get("failed"), None, "{ledger:?}");
    assert_eq!(
        ledger.get("rejected").copied().unwrap_or(0),
        2,
        "only the two bad rows: {ledger:?}"
    );
    let accepted = world.accepted_references();
    assert!(
        accepted.values().all(|&n| n == 1),
        "a reference was accepted twice"
    );
    let stats = world.emulator().stats();
    assert!(stats.faults > 100, "the storm happened: {stats:?}");
    assert!(
        ledger.get("uncertain").copied().unwrap_or(0) > 0,
        "hangs and drops leave rows uncertain"
    );
}

#[test]
fn two_runs_of_one_activation_at_the_same_moment_never_overlap() {
    let config = EmulatorConfig {
        latency: Duration::from_millis(100),
        ..EmulatorConfig::default()
    };
    simultaneous_runs(&World::with_emulator(Kind::Sqlite, config).unwrap());
}

#[test]
fn two_runs_sharing_a_postgresql_state_database_never_overlap() {
    let config = EmulatorConfig {
        latency: Duration::from_millis(100),
        ..EmulatorConfig::default()
    };
    if let Some(world) = World::with_emulator(Kind::Sqlite, config)
        .unwrap()
        .with_postgres_state()
    {
        simultaneous_runs(&world);
    }
}

/// Ten rounds of two runs started at the same moment: exactly one runs.
fn simultaneous_runs(world: &World) {
    world.write_destination_with("concurrency: 1\n");
    for round in 0..10 {
        world.insert(round * 5 + 1, round * 5 + 5, None, None);
        let spawn = || {
            world
                .command(&["run", "orders", "--json"], "emulator-secret")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let mut codes = [a.status.code().unwrap(), b.status.code().unwrap()];
        codes.sort_unstable();
        assert_eq!(
            codes,
            [0, 4],
            "round {round}: exactly one runs: {} {}",
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&b.stderr)
        );
        let refused = if a.status.code() == Some(4) { &a } else { &b };
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("is already running"),
            "{}",
            String::from_utf8_lossy(&refused.stderr)
        );
    }
    assert_eq!(world.accepted_references().len(), 50);
    assert!(world.accepted_references().values().all(|&n| n == 1));
}

#[test]
fn an_interrupted_run_finishes_what_is_under_way_and_the_next_one_the_rest() {
    let config = EmulatorConfig {
        latency: Duration::from_millis(50),
        ..EmulatorConfig::default()
    };
    let world = World::with_emulator(Kind::Sqlite, config).unwrap();
    world.write_destination_with("concurrency: 2\nrate_limits: []\n");
    world.insert(1, 200, None, None);
    // Interrupted right after the 50th outcome was recorded.
    let child = spawn_held(&world, "recorded:50", &["--json"]);
    let pid = child.id().to_string();
    let started = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(130));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["status"], "interrupted");
    assert_eq!(
        count(&summary, "uncertain"),
        0,
        "requests under way were finished"
    );
    let sent = count(&summary, "sent");
    // The 50 recorded, and at most the other request under way (concurrency 2).
    assert!((50..=51).contains(&sent), "{summary}");
    assert_eq!(count(&summary, "skipped"), 200 - sent, "{summary}");
    let (code, rest) = world.run();
    assert_eq!(code, 0, "{rest}");
    assert_eq!(count(&rest, "sent") + sent, 200);
    assert!(world.accepted_references().values().all(|&n| n == 1));
}

#[test]
fn a_read_only_state_database_is_a_clear_error_and_changes_nothing() {
    let world = World::new();
    world.insert(1, 3, None, None);
    let (code, _) = world.run();
    assert_eq!(code, 0);
    world.insert(4, 6, None, None);
    let read_only = format!("{}?mode=ro", world.state_url());
    let out = Command::new(env!("CARGO_BIN_EXE_retl"))
        .args([
            "--config-dir",
            world.config_dir().to_str().unwrap(),
            "--state",
            &read_only,
            "run",
            "orders",
        ])
        .env("TP_KEY", "emulator-key")
        .env("TP_SECRET", "emulator-secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("readonly") || stderr.contains("read-only"),
        "{stderr}"
    );
    assert_eq!(world.accepted_references().len(), 3, "nothing was sent");
    let (code, summary) = world.run();
    assert_eq!(code, 0);
    assert_eq!(count(&summary, "sent"), 3);
}

use std::process::Command;

#[test]
fn a_state_database_locked_by_another_program_is_a_clear_error() {
    let world = World::new();
    world.insert(1, 2, None, None);
    let (code, _) = world.run();
    assert_eq!(code, 0);
    world.insert(3, 4, None, None);
    // Another program holds the write lock longer than retl waits.
    let url = world.state_url();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        use sqlx::ConnectOptions as _;
        use std::str::FromStr as _;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
                .unwrap()
                .connect()
                .await
                .unwrap();
            sqlx::raw_sql("BEGIN EXCLUSIVE")
                .execute(&mut conn)
                .await
                .unwrap();
            locked_tx.send(()).unwrap();
            let _ = release_rx.recv();
            sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
        });
    });
    locked_rx.recv().unwrap();
    let out = world
        .command(&["run", "orders"], "emulator-secret")
        .env("RETL_STATE_BUSY_TIMEOUT", "200ms")
        .output()
        .unwrap();
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("database is locked"), "{stderr}");
    assert_eq!(world.accepted_references().len(), 2, "nothing was sent");
    let (code, summary) = world.run();
    assert_eq!(code, 0);
    assert_eq!(count(&summary, "sent"), 2);
}

#[test]
fn bad_rows_are_explained_and_the_others_go_on() {
    let world = World::new();
    world.insert(1, 4, Some(2), None);
    world.sql("UPDATE orders SET locale = 'english' WHERE order_id = 3");
    world.write(
        "activations/orders.yaml",
        &format!(
            "source:\n  connection: {}\n  query: SELECT CASE WHEN order_id = 4 THEN 'A#4' ELSE CAST(order_id AS TEXT) END AS ref, full_name, email, locale FROM orders\n  primary_key: [ref]\ndestination: trustpilot\nmapping:\n  reference_number: ref\n  consumer_name: full_name\n  consumer_email: email\n  locale: locale\n",
            world.connection()
        ),
    );
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(
        (count(&summary, "sent"), count(&summary, "rejected")),
        (1, 3)
    );
    let log = world.show(summary["run_id"].as_str().unwrap());
    let reasons: Vec<String> = log["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "rejected")
        .map(|r| {
            format!(
                "{}: {}",
                r["key"].as_str().unwrap(),
                r["reason"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        reasons.contains(&"2: consumer_email: not a valid email address".to_owned()),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"3: locale: `english` is not of the form xx-YY (e.g. en-US)".to_owned()),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("A#4: reference_number: `A#4` contains `#`")),
        "{reasons:?}"
    );
    assert_eq!(
        world.emulator().stats().invitation_requests,
        1,
        "bad rows cost no request"
    );
}

#[test]
fn an_sql_error_in_a_query_model_is_reported_with_the_databases_words() {
    let world = World::new();
    world.insert(1, 2, None, None);
    world.write(
        "activations/orders.yaml",
        &format!(
            "source:\n  connection: {}\n  query: SELECT order_id, full_name, email FROM ordrs\ndestination: trustpilot\nmapping:\n  reference_number: order_id\n  consumer_name: full_name\n  consumer_email: email\n",
            world.connection()
        ),
    );
    let (code, summary) = world.run();
    assert_eq!(code, 1, "{summary}");
    let error = summary["error"].as_str().unwrap();
    assert!(
        error.contains("source query failed") && error.contains("no such table: ordrs"),
        "{error}"
    );
    assert_eq!(
        world.ledger().values().sum::<u64>(),
        0,
        "the ledger is untouched"
    );
}

#[test]
fn secrets_stay_out_of_text_logs_too() {
    let world = World::new();
    world.insert(1, 2, Some(2), None);
    let out = world.retl(&["-vv", "run", "orders"], "emulator-secret");
    assert_eq!(out.status.code(), Some(0));
    let everything = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        everything.contains("run finished"),
        "debug logs were written: {everything}"
    );
    assert!(!everything.contains("emulator-secret"));
    assert!(!everything.contains("emulator-key"));
    assert!(!everything.contains("customer1@shop.example"));
    let tokens = world.dir.path().join("tokens");
    for file in std::fs::read_dir(tokens).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        assert!(!text.contains("emulator-secret") && !text.contains("emulator-key"));
    }
}
