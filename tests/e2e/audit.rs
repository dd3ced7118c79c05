//! The faults of the adversarial audit, each through the binary as a user
//! would meet it: answers and inputs that invited a customer twice, dropped
//! one, leaked data or left an activation stuck.

use retl_trustpilot_emulator::Fault;
use serde_json::Value;

use super::{Kind, World, count, row_with};

/// Fast retries and a short request timeout, so faults resolve quickly.
const FAST: &str = "request_timeout_seconds: 2\nconcurrency: 1\nretry:\n  backoff_ms: 20\n";

/// How many times each reference reached the emulator's store.
fn stored_once_each(world: &World) {
    let accepted = world.accepted_references();
    assert!(
        accepted.values().all(|&n| n == 1),
        "a customer was invited twice: {accepted:?}"
    );
}

#[test]
fn a_gateway_answer_after_trustpilot_accepted_is_uncertain_and_never_resent() {
    let world = World::new();
    world.write_destination_with(FAST);
    world.insert(1, 4, None, None);
    // Each request is stored, then a proxy answers with an error.
    world.emulator().script_faults([
        Some(Fault::BadGatewayAfterAccept),
        Some(Fault::GatewayTimeoutAfterAccept),
        Some(Fault::OriginTimeoutAfterAccept),
        Some(Fault::UnknownAfterAccept),
    ]);
    let (code, first) = world.run();
    assert_eq!(code, 3, "{first}");
    assert_eq!(count(&first, "uncertain"), 4, "{first}");
    assert_eq!(count(&first, "sent"), 0, "{first}");
    assert_eq!(world.emulator().stats().invitation_requests, 4, "no retry");
    let log = world.show(first["run_id"].as_str().unwrap());
    let reasons: Vec<&str> = log["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    for status in ["502", "504", "520", "524"] {
        assert!(
            reasons
                .iter()
                .any(|r| r.contains(&format!("HTTP {status}"))),
            "{reasons:?}"
        );
    }

    let (code, second) = world.run();
    assert_eq!(code, 0, "{second}");
    assert_eq!(count(&second, "already_sent"), 4, "{second}");
    assert_eq!(world.emulator().stats().invitation_requests, 4);
    assert_eq!(world.emulator().invitations().len(), 4);
    stored_once_each(&world);
}

#[test]
fn an_answer_proving_the_request_never_got_through_is_retried() {
    let world = World::new();
    world.write_destination_with(FAST);
    world.insert(1, 2, None, None);
    world
        .emulator()
        .script_faults([Some(Fault::Unavailable), Some(Fault::CdnError)]);
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(count(&summary, "sent"), 2, "{summary}");
    assert_eq!(world.emulator().stats().invitation_requests, 4);
    stored_once_each(&world);
}

#[test]
fn a_4xx_that_blames_nothing_in_the_row_rejects_no_row() {
    let world = World::new();
    world.write_destination_with(FAST);
    world.insert(1, 3, None, None);
    world.emulator().script_faults([Some(Fault::CdnBadRequest)]);
    let (code, first) = world.run();
    assert_ne!(code, 0, "a failure of the run, not a success: {first}");
    assert_eq!(count(&first, "rejected"), 0, "{first}");
    assert!(
        !world.ledger().contains_key("rejected"),
        "{:?}",
        world.ledger()
    );

    // The next run sends every row: none was blamed.
    let (code, second) = world.run();
    assert_eq!(code, 0, "{second}");
    assert_eq!(count(&second, "sent"), 3, "{second}");
    assert_eq!(count(&second, "already_rejected"), 0, "{second}");
    stored_once_each(&world);
}

#[test]
fn a_success_whose_body_breaks_off_is_sent_with_a_note() {
    let world = World::new();
    world.write_destination_with(FAST);
    world.insert(1, 1, None, None);
    world
        .emulator()
        .script_faults([Some(Fault::AcceptThenStall)]);
    let (code, first) = world.run();
    assert_eq!(code, 0, "{first}");
    assert_eq!(count(&first, "sent"), 1, "{first}");
    let log = world.show(first["run_id"].as_str().unwrap());
    let row: Value = row_with(&log, "sent");
    assert!(
        row["reason"].as_str().unwrap().contains("body broke off"),
        "{row}"
    );
    let (_, second) = world.run();
    assert_eq!(count(&second, "already_sent"), 1, "{second}");
    stored_once_each(&world);
}

/// A text literal of `value` in `kind`'s SQL, for the test's own inserts.
fn text_literal(kind: Kind, value: &str) -> String {
    let quoted = |s: &str| match kind {
        Kind::Mysql => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''")),
        _ => format!("'{}'", s.replace('\'', "''")),
    };
    match value.split_once('\0') {
        None => quoted(value),
        Some((a, b)) => match kind {
            Kind::Mysql => format!("CONCAT({}, CHAR(0), {})", quoted(a), quoted(b)),
            _ => format!("({} || char(0) || {})", quoted(a), quoted(b)),
        },
    }
}

/// Cursor values with `'`, `\`, `--` and NUL are data: each run reads past
/// them, and none reads another table.
fn hostile_cursor_values(world: &World) {
    let text = if world.kind == Kind::Mysql {
        "VARCHAR(200)"
    } else {
        "TEXT"
    };
    world.sql(&format!("ALTER TABLE orders ADD COLUMN cur {text}"));
    world.sql(&format!(
        "CREATE TABLE orders_staff (id INTEGER, name {text}, email {text}, cur {text})"
    ));
    world.sql("INSERT INTO orders_staff VALUES (99, 'The CEO', 'ceo@internal.example', 'zz')");
    world.edit_activation(|yaml| {
        yaml.replace(
            "  primary_key: [order_id]\n",
            "  primary_key: [order_id]\n  incremental:\n    cursor: cur\n    lookback: 0\n",
        )
    });
    let mut values = vec![
        "a".to_owned(),
        "b\\' UNION SELECT id, name, email, cur, cur FROM orders_staff -- ".to_owned(),
        "c' OR 'x'='x".to_owned(),
        "d ends in a backslash\\".to_owned(),
        "e -- a comment".to_owned(),
    ];
    // PostgreSQL's text cannot hold NUL.
    if world.kind != Kind::Postgres {
        values.push("f\0nul".to_owned());
    }
    for (id, value) in values.iter().enumerate() {
        let id = id + 1;
        world.sql(&format!(
            "INSERT INTO orders (order_id, full_name, email, locale, cur) VALUES ({id}, 'Customer {id}', 'customer{id}@shop.example', 'en-US', {})",
            text_literal(world.kind, value)
        ));
        let (code, summary) = world.run();
        assert_eq!(code, 0, "after the cursor value {value:?}: {summary}");
        assert_eq!(count(&summary, "sent"), 1, "{value:?}: {summary}");
    }
    // Once more with the last value as the mark: nothing new, nothing broken.
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(count(&summary, "sent"), 0, "{summary}");
    let emails: Vec<String> = world
        .emulator()
        .invitations()
        .iter()
        .map(|i| {
            i.body["consumerEmail"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(
        !emails.iter().any(|e| e.contains("internal.example")),
        "a row of another table was invited: {emails:?}"
    );
    assert_eq!(emails.len(), values.len());
    stored_once_each(world);
}

#[test]
fn hostile_cursor_values_on_sqlite() {
    hostile_cursor_values(&World::new());
}

#[test]
fn hostile_cursor_values_on_postgresql() {
    if let Some(world) = World::with(Kind::Postgres) {
        hostile_cursor_values(&world);
    }
}

#[test]
fn hostile_cursor_values_on_mysql() {
    if let Some(world) = World::with(Kind::Mysql) {
        hostile_cursor_values(&world);
    }
}

#[test]
fn keys_print_apart_and_escapes_in_data_never_reach_the_terminal() {
    let world = World::new();
    world.sql("CREATE TABLE people (id TEXT, full_name TEXT, email TEXT)");
    world.sql(
        "INSERT INTO people VALUES ('NULL', 'Text Null', 'a@shop.example'), \
         (NULL, 'Real Null', 'b@shop.example'), \
         (CAST(X'FF' AS TEXT), 'Not UTF-8', 'c@shop.example'), \
         (char(27) || ']0;pwned' || char(7) || char(27) || '[2J', 'Escapes', 'd@shop.example')",
    );
    world.write(
        "activations/people.yaml",
        &format!(
            "source:\n  connection: {}\n  table: people\n  primary_key: [id]\ndestination: trustpilot\nfirst_run: send_all\nmapping:\n  reference_number: full_name\n  consumer_name: full_name\n  consumer_email: email\n",
            world.connection()
        ),
    );
    let out = world.retl(&["run", "people", "--json"], "emulator-secret");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(count(&summary, "sent"), 2, "{summary}");
    let log = world.show(summary["run_id"].as_str().unwrap());
    let mut keys: Vec<&str> = log["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "\u{1b}]0;pwned\u{7}\u{1b}[2J",
            "<NULL>",
            "<unreadable>",
            "NULL"
        ],
        "{log}"
    );
    for args in [
        vec!["runs", "show", "latest", "--activation", "people"],
        vec!["runs", "list"],
        vec!["runs", "find", "Escapes"],
    ] {
        let out = world.retl(&args, "emulator-secret");
        assert!(out.status.success(), "{args:?}: {out:?}");
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            !shown.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?}: {shown:?}"
        );
        if args[1] == "show" {
            assert!(shown.contains("\\u{1b}]0;pwned"), "{shown}");
        }
    }
}

#[test]
fn a_clock_that_disagrees_with_the_warehouse_refuses_a_run_that_decides_by_time() {
    let Some(world) = World::with(Kind::Postgres) else {
        return;
    };
    let (url, schema) = world.server.clone().unwrap();
    // The warehouse's clock 40 days behind this machine's: its `now()`,
    // found first on the connection's search_path.
    world.server_sql(&format!(
        "CREATE FUNCTION {schema}.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT pg_catalog.now() - interval '40 days' $$"
    ));
    world.sql("ALTER TABLE orders ADD COLUMN created_at timestamptz");
    world.insert(1, 3, None, None);
    world.sql("UPDATE orders SET created_at = pg_catalog.now() - interval '39 days'");
    let skewed = format!("{url}?options=-c%20search_path%3D{schema},pg_catalog");
    world.edit_activation(|yaml| {
        yaml.replace(
            &format!("connection: {url}\n"),
            &format!("connection: {skewed}\n"),
        )
    });
    // Without max_row_age or a cursor: a warning, and the run goes on.
    let out = world.retl(&["run", "orders", "--json"], "emulator-secret");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("the warehouse's"), "{said}");
    assert_eq!(world.accepted_references().len(), 3);

    // With max_row_age: refused before a row is read, both times named.
    world.insert(4, 6, None, None);
    world.sql("UPDATE orders SET created_at = pg_catalog.now() WHERE order_id > 3");
    world.edit_activation(|yaml| format!("{yaml}max_row_age:\n  column: created_at\n  age: 30d\n"));
    let out = world.retl(&["run", "orders", "--json"], "emulator-secret");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("this machine's clock reads") && said.contains("the warehouse's"),
        "{said}"
    );
    assert!(
        !world.ledger().contains_key("too_old"),
        "{:?}",
        world.ledger()
    );
    assert_eq!(world.accepted_references().len(), 3, "nothing sent");

    // The clocks agree again: the new rows are sent, none is too old.
    world.edit_activation(|yaml| yaml.replace(&skewed, &url));
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(count(&summary, "sent"), 3, "{summary}");
    assert_eq!(count(&summary, "too_old"), 0, "{summary}");
}

/// `retl ARGS` inside a new PID namespace (`unshare -p`), where its process
/// id is one this machine's `/proc` does not show; held at `hold`.
fn spawn_in_pid_namespace(world: &World, hold: &str) -> std::process::Child {
    use std::process::Stdio;
    let retl = world.command(&["run", "orders", "--json"], "emulator-secret");
    let mut command = std::process::Command::new("unshare");
    command
        .args(["-p", "-f", "--mount-proc", "--kill-child", "sh", "-c"])
        // A process id far above any this machine hands out.
        .arg("echo 4000000 > /proc/sys/kernel/ns_last_pid; \"$@\" & wait $!")
        .arg("sh")
        .arg(retl.get_program())
        .args(retl.get_args())
        .env("RETL_HOLD_AT", hold)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in retl.get_envs() {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    super::held_at(command.spawn().expect("unshare (util-linux) runs"), hold)
}

#[test]
fn a_run_in_another_pid_namespace_keeps_its_lease() {
    let world = World::new();
    world.insert(1, 3, None, None);
    let mut held = spawn_in_pid_namespace(&world, "in_flight:1");
    // Same host name, a process id this namespace cannot see: not proven dead.
    let out = world.retl(&["run", "orders", "--json"], "emulator-secret");
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lease"),
        "{out:?}"
    );
    // The two rows not held are sent (their tasks do not wait for the held one).
    let give_up = std::time::Instant::now() + std::time::Duration::from_mins(1);
    while world.emulator().stats().accepted < 2 {
        assert!(
            std::time::Instant::now() < give_up,
            "the other two rows were not sent"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Killed with its namespace: its lease is taken over once it expires.
    held.kill().unwrap();
    held.wait().unwrap();
    let out = world
        .command(&["run", "orders", "--json"], "emulator-secret")
        .env("RETL_CLOCK_OFFSET", "2m")
        .output()
        .unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    // What the killed run had in flight is uncertain, never sent twice.
    assert!(count(&summary, "recovered") >= 1, "{summary}");
    assert_eq!(count(&summary, "sent"), 0, "{summary}");
    stored_once_each(&world);
}

#[test]
fn a_run_that_loses_its_lease_still_prints_its_summary() {
    let world = World::new();
    world.insert(1, 1, None, None);
    let held = super::spawn_held(&world, "in_flight:1", &["--json"]);
    // Another run takes the lease once it expires (a clock ahead), and finishes.
    let out = world
        .command(&["run", "orders", "--json"], "emulator-secret")
        .env("RETL_CLOCK_OFFSET", "2m")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    // The first run, released, finds its lease gone.
    super::signal(held.id(), "-TERM");
    let out = held.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let summary: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON summary ({e}): {out:?}"));
    assert_eq!(summary["status"], "failed", "{summary}");
    assert!(
        summary["error"]
            .as_str()
            .unwrap()
            .contains("lost its lease"),
        "{summary}"
    );
    stored_once_each(&world);
}

/// `command`'s arguments with `--state` set to `state`.
fn with_state(command: &std::process::Command, state: &str) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut replace_next = false;
    for arg in command.get_args() {
        let arg = arg.to_str().unwrap().to_owned();
        args.push(if replace_next {
            state.to_owned()
        } else {
            arg.clone()
        });
        replace_next = arg == "--state";
    }
    args
}

/// Runs `retl run orders --json` `times` times inside a private mount
/// namespace whose state database sits on a tmpfs of `size`; after the
/// first run, `between` runs (a shell command, `$D` the tmpfs). Each run's
/// exit code and output are returned.
fn runs_on_a_small_disk(world: &World, size: &str, between: &[&str]) -> Vec<(i32, String, String)> {
    let disk = world.dir.path().join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let state = format!("sqlite://{}/state.db", disk.display());
    let retl = world.command(
        &["run", "orders", "--json", "--allow-surge"],
        "emulator-secret",
    );
    let args = with_state(&retl, &state);
    let mut script = format!(
        "D={disk}; mount -t tmpfs -o size={size} tmpfs \"$D\" || exit 99\n",
        disk = disk.display()
    );
    let run = |i: usize| {
        format!("\"$@\" > \"$D/../out{i}\" 2> \"$D/../err{i}\"; echo $? > \"$D/../code{i}\"\n")
    };
    script.push_str(&run(0));
    for (i, step) in between.iter().enumerate() {
        script.push_str(step);
        script.push('\n');
        script.push_str(&run(i + 1));
    }
    let mut command = std::process::Command::new("unshare");
    command
        .args(["-m", "sh", "-c", &script, "sh"])
        .arg(retl.get_program())
        .args(&args);
    for (name, value) in retl.get_envs() {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    let status = command.status().expect("unshare (util-linux) runs");
    assert!(
        status.success(),
        "the mount namespace script failed: {status}"
    );
    let read = |name: String| std::fs::read_to_string(world.dir.path().join(name)).unwrap();
    (0..=between.len())
        .map(|i| {
            (
                read(format!("code{i}")).trim().parse().unwrap(),
                read(format!("out{i}")),
                read(format!("err{i}")),
            )
        })
        .collect()
}

#[test]
fn a_full_state_disk_is_named_and_the_run_still_reports() {
    let world = World::new();
    world.insert(1, 1, None, None);
    let more = "INSERT INTO orders (order_id, full_name, email, locale) SELECT value + 100, 'Customer ' || value, 'customer' || value || '@shop.example', 'en-US' FROM generate_series(1, 400)";
    let warehouse = world.warehouse();
    // Room for the first run (the state and its migrations), not for the
    // second one's 400 rows: measured to pass from 500k to 800k.
    let runs = runs_on_a_small_disk(
        &world,
        "650k",
        &[
            &format!("sqlite3 {} \"{more}\" || exit 98", warehouse.display()),
            "mount -o remount,size=20m \"$D\"",
        ],
    );
    assert_eq!(runs[0].0, 0, "{runs:?}");
    // The disk fills up during the second run: said so, with its summary.
    let (code, out, err) = &runs[1];
    assert_eq!(*code, 1, "{runs:?}");
    let summary: Value =
        serde_json::from_str(out).unwrap_or_else(|e| panic!("no JSON summary ({e}): {err}"));
    assert_eq!(summary["status"], "failed", "{summary}");
    assert!(
        summary["error"]
            .as_str()
            .unwrap()
            .contains("the disk it is on is full"),
        "{summary}"
    );
    assert!(!err.contains("transaction depth"), "{err}");
    // With room again, the next run closes the failed one and goes on.
    let (code, out, err) = &runs[2];
    let next: Value = serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert!([0, 3].contains(code), "{next} {err}");
    stored_once_each(&world);
    let total = world.accepted_references().len();
    assert!(
        total >= 390,
        "every row but the few left uncertain: {total}"
    );
}

#[test]
fn a_renamed_activation_is_refused_until_its_history_is_carried_over() {
    let world = World::new();
    world.insert(1, 5, None, None);
    assert_eq!(world.run().0, 0);
    let activations = world.config_dir().join("activations");
    std::fs::rename(
        activations.join("orders.yaml"),
        activations.join("shop_orders.yaml"),
    )
    .unwrap();
    world.insert(6, 7, None, None);

    let (code, preview, _) = super::json(&world, &["preview", "shop_orders", "--json"]);
    assert_eq!(code, 0, "{preview}");
    assert!(
        preview["refused"]
            .as_str()
            .unwrap()
            .contains("retl rename orders shop_orders"),
        "{preview}"
    );
    let (code, summary, said) = super::json(&world, &["run", "shop_orders", "--json"]);
    assert_eq!(code, 5, "{summary} {said}");
    assert!(
        said.contains("activation `orders` already has a history"),
        "{said}"
    );
    assert_eq!(world.accepted_references().len(), 5, "nothing sent");

    let (code, moved, said) = super::json(&world, &["rename", "orders", "shop_orders", "--json"]);
    assert_eq!(code, 0, "{said}");
    assert_eq!(moved["moved"]["ledger"], 5, "{moved}");
    assert_eq!(moved["moved"]["runs"], 1, "{moved}");
    // Once is enough: the old name has nothing left, the new one has a history.
    let (code, _, said) = super::json(&world, &["rename", "orders", "shop_orders"]);
    assert_eq!(code, 2, "{said}");

    let (code, summary, said) = super::json(&world, &["run", "shop_orders", "--json"]);
    assert_eq!(code, 0, "{said}");
    assert_eq!(count(&summary, "sent"), 2, "{summary}");
    assert_eq!(count(&summary, "already_sent"), 5, "{summary}");
    let (_, runs, _) = super::json(
        &world,
        &["runs", "list", "--activation", "shop_orders", "--json"],
    );
    // The moved run, the refused first run, and the run after the rename.
    assert_eq!(runs.as_array().unwrap().len(), 3, "{runs}");
    stored_once_each(&world);
}

#[test]
fn two_activations_meant_to_share_a_source_say_so_once() {
    let world = World::new();
    world.insert(1, 2, None, None);
    assert_eq!(world.run().0, 0);
    let yaml = std::fs::read_to_string(world.config_dir().join("activations/orders.yaml")).unwrap();
    world.write("activations/orders_again.yaml", &yaml);
    let (code, _, said) = super::json(&world, &["run", "orders_again", "--json"]);
    assert_eq!(code, 5, "{said}");
    let (code, summary, said) = super::json(
        &world,
        &["run", "orders_again", "--json", "--allow-shared-source"],
    );
    assert_eq!(code, 0, "{summary} {said}");
    // Its first run is done: later runs need no flag.
    let (code, _, said) = super::json(&world, &["run", "orders_again", "--json"]);
    assert_eq!(code, 0, "{said}");
}

/// A TCP proxy on loopback to `target` that can be told to freeze: while
/// frozen it holds every byte in both directions, as a network that went
/// silent does (no reset, no answer).
struct FreezingProxy {
    address: std::net::SocketAddr,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FreezingProxy {
    fn start(target: &str) -> FreezingProxy {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let frozen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let target = target.to_owned();
        let flag = frozen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let flag = flag.clone();
                    std::thread::spawn(move || {
                        let mut buffer = [0u8; 16 * 1024];
                        loop {
                            let Ok(n) = std::io::Read::read(&mut from, &mut buffer) else {
                                return;
                            };
                            if n == 0 {
                                return;
                            }
                            // Held, not dropped, for as long as the freeze lasts.
                            while flag.load(Ordering::SeqCst) {
                                std::thread::park_timeout(std::time::Duration::from_millis(20));
                            }
                            if std::io::Write::write_all(&mut to, &buffer[..n]).is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        FreezingProxy { address, frozen }
    }

    fn freeze(&self) {
        self.frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_state_connection_that_goes_silent_fails_the_run_instead_of_hanging_it() {
    let Some(world) = World::new().with_postgres_state() else {
        return;
    };
    world.insert(1, 3, None, None);
    let url = world.state_url();
    let authority = url
        .split('@')
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let proxy = FreezingProxy::start(&authority);
    let through_proxy = url.replacen(&authority, &proxy.address.to_string(), 1);
    let retl = world.command(&["run", "orders", "--json"], "emulator-secret");
    let mut command = std::process::Command::new(retl.get_program());
    command
        .args(with_state(&retl, &through_proxy))
        .args(["--state-timeout", "2s"])
        .env("RETL_HOLD_AT", "in_flight:1")
        .env("TP_KEY", "emulator-key")
        .env("TP_SECRET", "emulator-secret")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = super::held_at(command.spawn().unwrap(), "in_flight:1");
    // The state's network goes silent, then the run is interrupted: every
    // write it still has to make now meets silence.
    proxy.freeze();
    super::signal(child.id(), "-TERM");
    let out = child.wait_with_output().unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON summary ({e}): {out:?}"));
    assert_eq!(summary["status"], "failed", "{summary}");
    assert_ne!(out.status.code(), Some(0), "{summary}");
    stored_once_each(&world);
}

#[test]
fn a_password_given_as_a_url_parameter_is_masked_everywhere() {
    let Some(world) = World::new().with_postgres_state() else {
        return;
    };
    world.insert(1, 2, None, None);
    let url = world.state_url();
    // PostgreSQL's driver takes `password=` as a parameter (trust auth ignores it).
    let secret = "pw-s3cr3t-in-a-parameter";
    let with_password = format!("{url}&password={secret}");
    let retl = |args: &[&str]| {
        let base = world.command(args, "emulator-secret");
        std::process::Command::new(base.get_program())
            .args(with_state(&base, &with_password))
            .env("TP_KEY", "emulator-key")
            .env("TP_SECRET", "emulator-secret")
            .output()
            .unwrap()
    };
    let mut seen = String::new();
    for args in [
        &["-v", "run", "orders", "--json"][..],
        &["preview", "orders", "--json"],
        &["check", "orders"],
        &["check", "orders", "--json"],
    ] {
        let out = retl(args);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!said.contains(secret), "{args:?}: {said}");
        seen.push_str(&said);
    }
    assert!(seen.contains("password=***"), "{seen}");
    // The daemon's page says which state it uses: masked too.
    let base = world.command(&["schedule", "--listen", "127.0.0.1:0"], "emulator-secret");
    let mut daemon = std::process::Command::new(base.get_program())
        .args(with_state(&base, &with_password))
        .env("TP_KEY", "emulator-key")
        .env("TP_SECRET", "emulator-secret")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(daemon.stderr.take().unwrap()));
    let address = super::serving_address(&mut lines);
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    std::io::Write::write_all(
        &mut stream,
        format!("GET / HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut page = String::new();
    std::io::Read::read_to_string(&mut stream, &mut page).unwrap();
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(page.contains("State:"), "{page}");
    assert!(!page.contains(secret), "{page}");
}

#[test]
fn a_value_from_the_environment_is_quoted_as_written_in_a_problem() {
    let world = World::new();
    world.write_destination_with("concurrency: ${TP_SECRET}\n");
    let out = world.retl(&["check"], "s3cr#t-from-the-environment");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!said.contains("s3cr#t"), "{said}");
    assert!(said.contains("${TP_SECRET}"), "{said}");
}

#[cfg(unix)]
#[test]
fn the_token_cache_is_private_and_follows_no_link() {
    use std::os::unix::fs::PermissionsExt as _;
    let world = World::new();
    world.insert(1, 1, None, None);
    assert_eq!(world.run().0, 0);
    let tokens = world.dir.path().join("tokens");
    let cached: Vec<std::path::PathBuf> = std::fs::read_dir(&tokens)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    let file = &cached[0];
    // A link planted where the token goes, and a stale world-readable file aside.
    std::fs::remove_file(file).unwrap();
    let elsewhere = world.dir.path().join("elsewhere");
    std::os::unix::fs::symlink(&elsewhere, file).unwrap();
    let stale = file.with_extension("tmp");
    std::fs::write(&stale, "old").unwrap();
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
    world.insert(2, 2, None, None);
    assert_eq!(world.run().0, 0);
    let meta = std::fs::symlink_metadata(file).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the link was replaced, not followed"
    );
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(!elsewhere.exists(), "nothing written through the link");
    // A token directory others can write to is refused, and said so.
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::remove_file(file).unwrap();
    world.insert(3, 3, None, None);
    let out = world.retl(&["run", "orders", "--json"], "emulator-secret");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("can be written by others"),
        "{out:?}"
    );
    assert!(
        !file.exists(),
        "no token cached in a directory others can write to"
    );
}

#[test]
fn rows_rejected_before_the_upgrade_stay_rejected() {
    let world = World::new();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/e2e/fixtures/rejected-before-0.2");
    std::fs::copy(fixture.join("warehouse.db"), world.warehouse()).unwrap();
    std::fs::copy(fixture.join("state.db"), world.dir.path().join("state.db")).unwrap();
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(count(&summary, "already_rejected"), 3, "{summary}");
    assert_eq!(count(&summary, "already_sent"), 2, "{summary}");
    assert_eq!(
        world.emulator().stats().invitation_requests,
        0,
        "no request for a row rejected before the upgrade"
    );
    // The earlier run's log reads as it did: Trustpilot's answers carried
    // over from the old columns into the neutral ones.
    let (_, runs, _) = super::json(&world, &["runs", "list", "--json"]);
    let first = runs.as_array().unwrap().last().unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let log = world.show(&first);
    let refused = log["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status_code"] == 400)
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(refused["error_code"], "1001", "{refused}");
    assert!(refused["correlation_id"].as_str().is_some(), "{refused}");
    let sent = row_with(&log, "sent");
    assert_eq!(sent["status_code"], 202, "{sent}");
    assert!(sent.get("invitation_id").is_some(), "{sent}");
    assert!(sent.get("link_url").is_some(), "{sent}");
}
