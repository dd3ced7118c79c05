//! Every recorded outcome is true: nothing marked uncertain that never left,
//! nothing marked sent or rejected against the facts, and interrupts within
//! their one deadline. Each test drives the binary against the emulator with
//! the matching fault.

use std::process::Command;
use std::time::{Duration, Instant};

use retl_trustpilot_emulator::{EmulatorConfig, Fault, RateWindow};

use super::{Kind, World, count, row_with, spawn_held};

fn interrupt(child: &std::process::Child) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// Waits (bounded) until `ready` holds: a point the test observes, not a guess.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < give_up, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn runs(world: &World) -> Vec<serde_json::Value> {
    let out = world.retl(&["runs", "list", "--json"], "emulator-secret");
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn balanced(counts: &serde_json::Value) -> bool {
    let n = |k: &str| counts[k].as_u64().unwrap_or(0);
    n("read")
        == n("already_sent")
            + n("already_rejected")
            + n("ignored_changed")
            + n("new")
            + n("baseline")
        && n("new") == n("sent") + n("rejected") + n("failed") + n("uncertain") + n("skipped")
}

#[test]
fn rows_waiting_for_the_rate_window_are_not_uncertain_when_the_run_is_killed() {
    let world = World::new();
    world.insert(1, 10, None, None);
    // Three calls an hour: after three invitations every other row waits.
    world.write_destination_with(
        "concurrency: 4\nrate_limits: [{requests: 3, per_seconds: 3600}]\n",
    );
    let mut child = spawn_held(&world, "recorded:3", &[]);
    child.kill().unwrap();
    child.wait().unwrap();
    let ledger = world.ledger();
    assert_eq!(ledger.get("sent"), Some(&3), "{ledger:?}");
    assert_eq!(
        ledger.get("in_flight"),
        None,
        "rows that only waited are not in flight"
    );

    world.write_destination_with("rate_limits: []\n");
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(count(&summary, "recovered"), 0);
    assert_eq!(count(&summary, "uncertain"), 0);
    assert_eq!(count(&summary, "sent"), 7);
    assert!(world.accepted_references().values().all(|&n| n == 1));
    assert_eq!(world.accepted_references().len(), 10);
}

#[test]
fn an_interrupt_under_429s_ends_by_its_deadline_with_nothing_uncertain() {
    // Two calls a minute, and 429s that say "come back in two minutes".
    let config = EmulatorConfig {
        rate_limits: vec![RateWindow {
            limit: 2,
            window: Duration::from_mins(1),
        }],
        retry_after: Some(120),
        ..EmulatorConfig::default()
    };
    let world = World::with_emulator(Kind::Sqlite, config).unwrap();
    world.insert(1, 6, None, None);
    world.write_destination_with("concurrency: 2\nrate_limits: []\nrequest_timeout_seconds: 5\n");
    let child = spawn_held(&world, "recorded:2", &["--json"]);
    // Let the other requests meet the 429 and its Retry-After.
    wait_until("a 429", || world.emulator().stats().rate_limited >= 1);
    let signalled = Instant::now();
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    let took = signalled.elapsed();
    assert_eq!(out.status.code(), Some(130));
    assert!(
        took < Duration::from_secs(10),
        "the deadline is 5 s + 5 s; took {took:?}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(count(&summary, "uncertain"), 0, "{summary}");
    assert_eq!(count(&summary, "sent"), 2, "{summary}");
    assert_eq!(count(&summary, "skipped"), 4, "{summary}");
    let ledger = world.ledger();
    assert_eq!(ledger.get("in_flight"), None, "{ledger:?}");
    assert_eq!(ledger.get("uncertain"), None, "{ledger:?}");
}

#[test]
fn an_interrupt_during_a_backoff_sends_no_retry() {
    let config = EmulatorConfig {
        faults: retl_trustpilot_emulator::FaultShares::default().with(Fault::ServerError, 1.0),
        ..EmulatorConfig::default()
    };
    let world = World::with_emulator(Kind::Sqlite, config).unwrap();
    world.insert(1, 3, None, None);
    world.write_destination_with(
        "concurrency: 1\nrate_limits: []\nrequest_timeout_seconds: 5\nretry: {backoff_ms: 20000, tries_per_run: 3}\n",
    );
    let child = world
        .command(&["run", "orders", "--json"], "emulator-secret")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("a first 500", || {
        world.emulator().stats().invitation_requests >= 1
    });
    let at_signal = world.emulator().stats().invitation_requests;
    let signalled = Instant::now();
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(signalled.elapsed() < Duration::from_secs(10));
    assert_eq!(
        world.emulator().stats().invitation_requests,
        at_signal,
        "no request after the signal"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(count(&summary, "uncertain"), 0, "{summary}");
    assert_eq!(count(&summary, "failed"), 1, "{summary}");
    assert_eq!(count(&summary, "skipped"), 2, "{summary}");
}

#[test]
fn twenty_interrupted_runs_each_finish_what_is_under_way_and_nothing_else() {
    let world = World::new();
    world.write_destination_with("concurrency: 2\nrate_limits: []\n");
    let mut total: usize = 0;
    for round in 0..20u32 {
        world.insert(round * 10 + 1, round * 10 + 10, None, None);
        total += 10;
        let child = spawn_held(&world, "recorded:3", &["--json"]);
        interrupt(&child);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "round {round}");
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(count(&summary, "uncertain"), 0, "round {round}: {summary}");
        assert!(balanced(&summary["counts"]), "round {round}: {summary}");
        let (code, rest) = world.run();
        assert_eq!(code, 0, "round {round}: {rest}");
        let accepted = world.accepted_references();
        assert_eq!(accepted.len(), total, "round {round}: every row sent");
        assert!(
            accepted.values().all(|&n| n == 1),
            "round {round}: none twice"
        );
    }
}

#[test]
fn a_redirect_is_a_failure_and_the_row_goes_out_later() {
    let world = World::new();
    world.insert(1, 2, None, None);
    world.write_destination_with("concurrency: 1\nrate_limits: []\nretry: {tries_per_run: 1}\n");
    world.emulator().script_faults([Some(Fault::Redirect)]);
    let (code, summary) = world.run();
    assert_eq!(code, 3, "{summary}");
    assert_eq!(count(&summary, "sent"), 1);
    assert_eq!(count(&summary, "failed"), 1);
    let log = world.show(summary["run_id"].as_str().unwrap());
    let failed = row_with(&log, "failed");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("redirect to `http://127.0.0.1"),
        "{failed}"
    );
    assert_eq!(
        world.accepted_references().len(),
        1,
        "the redirected one was not accepted"
    );
    let (code, again) = world.run();
    assert_eq!(code, 0, "{again}");
    assert_eq!(count(&again, "sent"), 1);
    assert!(world.accepted_references().values().all(|&n| n == 1));
}

#[test]
fn a_link_created_with_an_unreadable_answer_is_uncertain_and_never_created_again() {
    let world = World::new();
    world.insert(1, 2, None, None);
    world.write(
        "activations/orders.yaml",
        &format!(
            "source:\n  connection: {}\n  table: orders\ndestination: trustpilot\ntarget:\n  kind: invitation_link\nmapping:\n  reference_number: order_id\n  consumer_name: full_name\n  consumer_email: email\n",
            world.connection()
        ),
    );
    world.write_destination_with("concurrency: 1\nrate_limits: []\n");
    world.emulator().script_faults([Some(Fault::LinkNotJson)]);
    let (code, summary) = world.run();
    assert_eq!(code, 3, "{summary}");
    assert_eq!(count(&summary, "uncertain"), 1);
    assert_eq!(count(&summary, "rejected"), 0, "a 2xx is never a rejection");
    let log = world.show(summary["run_id"].as_str().unwrap());
    let uncertain = row_with(&log, "uncertain");
    assert!(
        uncertain["reason"].as_str().unwrap().contains("<html>"),
        "{uncertain}"
    );
    // The row changes; the link is not created a second time.
    world.sql("UPDATE orders SET email = 'changed@shop.example'");
    let (code, again) = world.run();
    assert_eq!(code, 0, "{again}");
    assert_eq!(
        world.emulator().stats().link_requests,
        2,
        "one link per row, ever"
    );
}

#[test]
fn a_run_that_lost_its_lease_is_closed_as_abandoned_with_counts_that_add_up() {
    let world = World::new();
    world.insert(1, 10, None, None);
    world.write_destination_with("concurrency: 1\nrate_limits: []\n");
    let first = spawn_held(&world, "recorded:4", &["--json"]);
    // Another run, whose clock is an hour ahead, sees the lease expired and takes over.
    let out = world
        .command(&["run", "orders", "--json"], "emulator-secret")
        .env("RETL_CLOCK_OFFSET", "1h")
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 3)), "{out:?}");
    // The first run goes on: its next write finds its lease gone.
    interrupt(&first);
    let zombie = first.wait_with_output().unwrap();
    assert_eq!(
        zombie.status.code(),
        Some(1),
        "the run that lost its lease fails"
    );
    let runs = runs(&world);
    let abandoned: Vec<&serde_json::Value> =
        runs.iter().filter(|r| r["status"] == "abandoned").collect();
    assert_eq!(abandoned.len(), 1, "{runs:#?}");
    assert_eq!(abandoned[0]["counts"]["sent"], 4, "{}", abandoned[0]);
    assert!(balanced(&abandoned[0]["counts"]), "{}", abandoned[0]);
    assert_eq!(world.accepted_references().len(), 10);
    assert!(world.accepted_references().values().all(|&n| n == 1));
}

#[test]
fn a_killed_run_is_abandoned_and_the_run_that_recovers_its_rows_exits_3() {
    let world = World::new();
    world.insert(1, 5, None, None);
    world.write_destination_with("concurrency: 1\nrate_limits: []\n");
    let mut child = spawn_held(&world, "in_flight:3", &[]);
    child.kill().unwrap();
    child.wait().unwrap();
    let (code, summary) = world.run();
    assert_eq!(code, 3, "rows found in flight need a person: {summary}");
    assert_eq!(count(&summary, "recovered"), 1);
    let runs = runs(&world);
    assert_eq!(
        runs.iter().filter(|r| r["status"] == "running").count(),
        0,
        "{runs:#?}"
    );
    assert_eq!(
        runs.iter().filter(|r| r["status"] == "abandoned").count(),
        1
    );
}

/// Two first runs started at the same moment on a state database that does
/// not exist yet: one runs (and holds), the other is refused with 4.
fn simultaneous_first_runs(world: &World, state_url: &dyn Fn(u32) -> String) {
    use std::io::BufRead as _;
    for round in 0..20u32 {
        let url = state_url(round);
        let spawn = || {
            let mut child = world
                .command(&["run", "orders"], "emulator-secret")
                .args(["--state", &url])
                .env("RETL_HOLD_AT", "in_flight:1")
                .stderr(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let stderr = child.stderr.take().unwrap();
            (child, stderr)
        };
        let (a, a_err) = spawn();
        let (b, b_err) = spawn();
        let (tx, rx) = std::sync::mpsc::channel();
        for (name, stderr) in [("a", a_err), ("b", b_err)] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut text = String::new();
                for line in std::io::BufReader::new(stderr)
                    .lines()
                    .map_while(Result::ok)
                {
                    if line.contains("retl: holding at") {
                        let _ = tx.send((name, true, text.clone()));
                    }
                    text.push_str(&line);
                    text.push('\n');
                }
                let _ = tx.send((name, false, text));
            });
        }
        // One holds (it runs); the other ends, refused. In either order.
        let mut holder = None;
        let mut ended: Vec<(&str, String)> = Vec::new();
        while holder.is_none() || !ended.iter().any(|(n, _)| Some(*n) != holder) {
            let (name, held, text) = rx.recv().unwrap();
            if held {
                assert!(holder.is_none(), "round {round}: both runs ran");
                holder = Some(name);
            } else {
                ended.push((name, text));
            }
            assert!(ended.len() < 2, "round {round}: neither ran: {ended:?}");
        }
        let holder = holder.unwrap();
        let (mut holder_child, mut other_child) = if holder == "a" { (a, b) } else { (b, a) };
        let status = other_child.wait().unwrap();
        let other_text = &ended[0].1;
        assert_eq!(status.code(), Some(4), "round {round}: {other_text}");
        assert!(
            other_text.contains("is already running"),
            "round {round}: {other_text}"
        );
        holder_child.kill().unwrap();
        holder_child.wait().unwrap();
    }
}

#[test]
fn simultaneous_first_runs_on_a_new_sqlite_state_one_runs_the_other_exits_4() {
    let world = World::new();
    world.insert(1, 3, None, None);
    let dir = tempfile::tempdir().unwrap();
    simultaneous_first_runs(&world, &|round| {
        format!(
            "sqlite://{}",
            dir.path().join(format!("round-{round}/state.db")).display()
        )
    });
}

#[test]
fn simultaneous_first_runs_on_a_new_postgresql_state_one_runs_the_other_exits_4() {
    let Some(url) = super::server_url("RETL_TEST_POSTGRES_URL") else {
        return;
    };
    let world = World::new();
    world.insert(1, 3, None, None);
    let schemas: Vec<String> = (0..20)
        .map(|round| format!("retl_race_{}_{round}", std::process::id()))
        .collect();
    for schema in &schemas {
        super::pg_exec(
            &world.runtime,
            &url,
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
        );
    }
    let join = if url.contains('?') { '&' } else { '?' };
    simultaneous_first_runs(&world, &|round| {
        format!(
            "{url}{join}options=-c%20search_path%3D{}",
            schemas[round as usize]
        )
    });
    for schema in &schemas {
        super::pg_exec(
            &world.runtime,
            &url,
            &format!("DROP SCHEMA {schema} CASCADE"),
        );
    }
}

#[test]
fn an_endpoint_with_credentials_in_it_is_refused_before_anything_is_sent() {
    let world = World::new();
    world.insert(1, 1, None, None);
    let url = world.emulator().url();
    let destination =
        std::fs::read_to_string(world.config_dir().join("destinations/trustpilot.yaml"))
            .unwrap()
            .replace(
                &format!("  invitations: {url}"),
                "  invitations: http://127.0.0.1:x@some-host",
            );
    world.write("destinations/trustpilot.yaml", &destination);
    let out = world.retl(&["run", "orders"], "emulator-secret");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("must not hold credentials"), "{stderr}");
    assert!(world.emulator().invitations().is_empty());
}

#[test]
fn a_refused_tls_certificate_stops_the_run_as_a_configuration_error_naming_it() {
    // A local TLS server with a self-signed certificate (openssl from the system).
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is needed for this test (Debian package openssl)");
    assert!(made.status.success(), "{made:?}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-www",
            "-accept",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the TLS server listens", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let world = World::new();
    world.insert(1, 2, None, None);
    let tls = format!("https://127.0.0.1:{port}");
    let destination =
        std::fs::read_to_string(world.config_dir().join("destinations/trustpilot.yaml"))
            .unwrap()
            .replace(&world.emulator().url(), &tls);
    world.write("destinations/trustpilot.yaml", &destination);
    let out = world.retl(&["run", "orders", "--json"], "emulator-secret");
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TLS certificate was refused"), "{stderr}");
    assert!(
        stderr.contains("certificate"),
        "the cause is named: {stderr}"
    );
    let ledger = world.ledger();
    assert_eq!(
        ledger.get("failed"),
        None,
        "no row counted against its attempts: {ledger:?}"
    );
    assert_eq!(ledger.get("rejected"), None, "{ledger:?}");
}

#[test]
fn a_cell_that_cannot_be_decoded_rejects_its_row_and_the_run_goes_on() {
    let world = World::new();
    world.insert(1, 3, None, None);
    world.sql("UPDATE orders SET full_name = CAST(x'41ff42' AS TEXT) WHERE order_id = 2");
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(count(&summary, "sent"), 2);
    assert_eq!(count(&summary, "rejected"), 1);
    let log = world.show(summary["run_id"].as_str().unwrap());
    let rejected = &log["rows"][0];
    assert_eq!(rejected["key"], "2");
    assert_eq!(
        rejected["reason"], "cannot be read: column `full_name`: the text is not valid UTF-8",
        "{rejected}"
    );
}

#[test]
fn an_unreachable_postgresql_state_database_says_so_at_once() {
    let world = World::new();
    let started = Instant::now();
    let out = world
        .command(&["runs", "list"], "emulator-secret")
        .args(["--state", "postgres://retl:pw-secret@127.0.0.1:1/state"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.to_lowercase().contains("connection refused"),
        "{stderr}"
    );
    assert!(!stderr.contains("pw-secret"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not a pool timeout"
    );
}

#[test]
fn in_json_log_mode_every_line_on_stderr_is_json() {
    let world = World::new();
    world.insert(1, 2, None, None);
    // A broken file beside the activation (a warning), then a failing run (the final error).
    world.write("activations/broken.yaml", "source: [\n");
    let out = world.retl(
        &["--log-format", "json", "-v", "run", "orders"],
        "wrong-secret",
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().count() >= 2, "{stderr}");
    for line in stderr.lines() {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not JSON: {line}");
    }
    assert!(
        stderr.contains("invalid_client"),
        "the final error is there: {stderr}"
    );
}

#[test]
fn a_writeback_to_a_postgresql_uuid_key_binds_it_in_its_own_type() {
    let Some(world) = World::with(Kind::Postgres) else {
        return;
    };
    // `sql` qualifies `orders` with this test's schema: `orders_links` follows.
    world.sql("CREATE TABLE orders_links (id uuid PRIMARY KEY, full_name TEXT, email TEXT, review_link TEXT)");
    world.sql(
        "INSERT INTO orders_links VALUES ('6f0e1d2c-3b4a-4958-8776-a5b4c3d2e1f0', 'Ann', 'ann@shop.example', NULL),
                                  ('00000000-0000-4000-8000-000000000001', 'Bob', 'bob@shop.example', NULL)",
    );
    let table = format!("{}_links", world.table());
    world.write(
        "activations/orders.yaml",
        &format!(
            "source:\n  connection: {}\n  table: {table}\ndestination: trustpilot\ntarget:\n  kind: invitation_link\nmapping:\n  reference_number: id\n  consumer_name: full_name\n  consumer_email: email\nwriteback:\n  table: {table}\n  key_column: id\n  url_column: review_link\n",
            world.connection()
        ),
    );
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(count(&summary, "sent"), 2);
    assert_eq!(count(&summary, "writeback_failed"), 0, "{summary}");
    let log = world.show(summary["run_id"].as_str().unwrap());
    for row in log["rows"].as_array().unwrap() {
        assert!(row["reason"].is_null(), "{row}");
    }
}

#[test]
fn a_failed_writeback_is_counted_and_the_run_exits_3() {
    let world = World::new();
    world.insert(1, 2, None, None);
    world.write(
        "activations/orders.yaml",
        &format!(
            "source:\n  connection: {}\n  table: orders\ndestination: trustpilot\ntarget:\n  kind: invitation_link\nmapping:\n  reference_number: order_id\n  consumer_name: full_name\n  consumer_email: email\nwriteback:\n  table: orders\n  key_column: order_id\n  url_column: no_such_column\n",
            world.connection()
        ),
    );
    let (code, summary) = world.run();
    assert_eq!(code, 3, "{summary}");
    assert_eq!(count(&summary, "sent"), 2, "the links exist: they are sent");
    assert_eq!(count(&summary, "writeback_failed"), 2, "{summary}");
}

#[test]
fn a_connection_never_made_is_a_failure_not_uncertain_even_under_a_short_timeout() {
    use std::io::BufRead as _;
    // A listener that never accepts, its queue full: the kernel ignores
    // further connection attempts, so connecting hangs until a timeout.
    let mut listener = Command::new("python3")
        .args([
            "-c",
            "import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen(0)\nprint(s.getsockname()[1], flush=True)\ntime.sleep(60)",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is on the machine");
    let mut line = String::new();
    std::io::BufReader::new(listener.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let _queued: Vec<_> = (0..4)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()
        })
        .collect();

    let world = World::new();
    world.insert(1, 1, None, None);
    // Tokens from the emulator; invitations to the listener that never answers.
    let destination =
        std::fs::read_to_string(world.config_dir().join("destinations/trustpilot.yaml"))
            .unwrap()
            .replace(
                &format!("  invitations: {}", world.emulator().url()),
                &format!("  invitations: http://127.0.0.1:{port}"),
            );
    world.write(
        "destinations/trustpilot.yaml",
        &format!("{destination}request_timeout_seconds: 2\nrate_limits: []\nretry: {{tries_per_run: 1}}\n"),
    );
    let (code, summary) = world.run();
    listener.kill().unwrap();
    listener.wait().unwrap();
    assert_eq!(code, 3, "{summary}");
    assert_eq!(count(&summary, "uncertain"), 0, "nothing left: {summary}");
    assert_eq!(count(&summary, "failed"), 1, "{summary}");
    let log = world.show(summary["run_id"].as_str().unwrap());
    let reason = log["rows"][0]["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.starts_with("cannot connect to trustpilot"),
        "{reason}"
    );
}
