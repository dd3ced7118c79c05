//! Alerts: rules over runs, once per incident and once on recovery, to a
//! webhook, Slack and email, from `retl run` and from the daemon. The
//! receivers are real servers on loopback: an HTTP one and an SMTP one,
//! each speaking its protocol.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{World, json};

/// An HTTP server on loopback that answers 200 and keeps each request's
/// path and body.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<(String, String)>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let kept = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap_or_default();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = n.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap_or_default();
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_owned();
                kept.lock()
                    .unwrap()
                    .push((path, String::from_utf8_lossy(&body).into_owned()));
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Receiver { port, got }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The JSON bodies posted to `path`.
    fn bodies(&self, path: &str) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, body)| serde_json::from_str(body).unwrap())
            .collect()
    }

    fn events(&self, path: &str) -> Vec<String> {
        self.bodies(path)
            .iter()
            .map(|b| b["event"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// An SMTP server on loopback (plain text): it accepts every message and
/// keeps its data.
struct Mailbox {
    port: u16,
    messages: Arc<Mutex<Vec<String>>>,
    /// The `AUTH` commands received (it offers AUTH PLAIN).
    auths: Arc<Mutex<Vec<String>>>,
}

impl Mailbox {
    fn start() -> Mailbox {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let kept = messages.clone();
        let auths = Arc::new(Mutex::new(Vec::new()));
        let auths_kept = auths.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let _ = stream.write_all(b"220 mailbox ESMTP\r\n");
                let mut data: Option<String> = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some(text) = data.as_mut() {
                        if line == ".\r\n" {
                            kept.lock().unwrap().push(data.take().unwrap());
                            let _ = stream.write_all(b"250 queued\r\n");
                        } else {
                            text.push_str(&line);
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250-mailbox\r\n250 AUTH PLAIN\r\n",
                        "AUTH" => {
                            auths_kept.lock().unwrap().push(line.trim_end().to_owned());
                            b"235 accepted\r\n"
                        }
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go on\r\n"
                        }
                        "QUIT" => {
                            let _ = stream.write_all(b"221 bye\r\n");
                            break;
                        }
                        _ => b"250 OK\r\n",
                    };
                    let _ = stream.write_all(answer);
                }
            }
        });
        Mailbox {
            port,
            messages,
            auths,
        }
    }
}

fn until(what: &str, mut ready: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_mins(1);
    while !ready() {
        assert!(Instant::now() < give_up, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `retl run orders --json` with the clock `offset` ahead, if given.
fn run_at(world: &World, offset: Option<&str>) -> (i32, Value) {
    let mut command = world.command(&["run", "orders", "--json"], "emulator-secret");
    if let Some(offset) = offset {
        command.env("RETL_CLOCK_OFFSET", offset);
    }
    let out = command.output().unwrap();
    let summary = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap(), summary)
}

fn break_source(world: &World) {
    world.sql("ALTER TABLE orders RENAME TO orders_away");
}

fn mend_source(world: &World) {
    world.sql("ALTER TABLE orders_away RENAME TO orders");
}

#[test]
fn a_failing_activation_alerts_once_and_its_recovery_once() {
    let world = World::new();
    let hooks = Receiver::start();
    world.write(
        "alerts.yaml",
        &format!(
            "channels:\n  ops: {{type: webhook, url: \"{}\"}}\n  team: {{type: slack, url: \"{}\"}}\nrules:\n  - {{when: run_failed, notify: [ops]}}\n  - {{when: run_failed, notify: [team], every: true}}\n",
            hooks.url("/ops"),
            hooks.url("/slack")
        ),
    );
    world.insert(1, 2, None, None);
    assert_eq!(run_at(&world, None).0, 0);
    break_source(&world);
    let (code, failed) = run_at(&world, None);
    assert_eq!(code, 1, "{failed}");
    assert_eq!(run_at(&world, None).0, 1);
    assert_eq!(hooks.events("/ops"), ["run_failed"], "once per incident");
    let alert = &hooks.bodies("/ops")[0];
    for field in ["event", "activation", "run_id", "status", "message", "at"] {
        assert!(!alert[field].is_null(), "`{field}` in {alert}");
    }
    assert_eq!(alert["activation"], "orders");
    assert_eq!(alert["run_id"], failed["run_id"]);
    assert_eq!(alert["status"], "failed");
    assert!(
        alert["message"].as_str().unwrap().contains("orders"),
        "{alert}"
    );
    // `every: true`: each failing run; Slack gets its text.
    let slack = hooks.bodies("/slack");
    assert_eq!(slack.len(), 2, "{slack:?}");
    assert!(slack[0]["text"].as_str().unwrap().contains("run_failed"));

    mend_source(&world);
    assert_eq!(run_at(&world, None).0, 0);
    assert_eq!(run_at(&world, None).0, 0);
    assert_eq!(hooks.events("/ops"), ["run_failed", "recovered"]);
    let recovered = &hooks.bodies("/ops")[1];
    assert!(recovered["incident_opened_at"].is_string(), "{recovered}");
}

#[test]
fn rejections_over_a_threshold_stale_activations_and_email_alert() {
    let world = World::new();
    let hooks = Receiver::start();
    let mailbox = Mailbox::start();
    world.write(
        "alerts.yaml",
        &format!(
            "channels:\n  ops: {{type: webhook, url: \"{}\"}}\n  oncall: {{type: email, smtp: \"smtp://127.0.0.1:{}?tls=none\", from: retl@shop.example, to: [oncall@shop.example]}}\nrules:\n  - {{when: rejected, over: 1, notify: [ops]}}\n  - {{when: stale, after: 6h, notify: [oncall, ops]}}\n",
            hooks.url("/ops"),
            mailbox.port
        ),
    );
    world.insert(1, 1, Some(1), None);
    world.insert(2, 2, Some(2), None);
    let (code, _) = run_at(&world, None);
    assert_eq!(code, 0);
    assert_eq!(hooks.events("/ops"), ["rejected"]);

    // Seven hours later, a run fails: nothing has succeeded for over 6 h.
    break_source(&world);
    assert_eq!(run_at(&world, Some("7h")).0, 1);
    assert_eq!(hooks.events("/ops"), ["rejected", "stale"]);
    let mail = mailbox.messages.lock().unwrap().join("\n");
    assert!(mail.contains("Subject: retl: orders: stale"), "{mail}");
    assert!(mail.contains("no successful run for over 6h"), "{mail}");

    mend_source(&world);
    world.insert(3, 3, None, None);
    assert_eq!(run_at(&world, Some("8h")).0, 0);
    let events = hooks.events("/ops");
    assert_eq!(
        events.iter().filter(|e| *e == "recovered").count(),
        2,
        "{events:?}"
    );
}

#[test]
fn alerts_test_reaches_every_channel_and_says_which_failed() {
    let world = World::new();
    let hooks = Receiver::start();
    let mailbox = Mailbox::start();
    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    world.write(
        "alerts.yaml",
        &format!(
            "channels:\n  ops: {{type: webhook, url: \"{}\"}}\n  mail: {{type: email, smtp: \"smtp://127.0.0.1:{}?tls=none\", from: retl@shop.example, to: [a@shop.example, b@shop.example]}}\n",
            hooks.url("/ops"),
            mailbox.port
        ),
    );
    let (code, results, stderr) = json(&world, &["alerts", "test", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(results.as_array().unwrap().len(), 2, "{results}");
    assert_eq!(hooks.events("/ops"), ["test"]);
    assert_eq!(mailbox.messages.lock().unwrap().len(), 1);

    world.write(
        "alerts.yaml",
        &format!("channels:\n  gone: {{type: webhook, url: \"http://127.0.0.1:{closed}/x\"}}\n"),
    );
    let (code, results, _) = json(&world, &["alerts", "test", "--json"]);
    assert_eq!(code, 1, "{results}");
    assert_eq!(results[0]["sent"], false);
    assert!(
        results[0]["error"]
            .as_str()
            .unwrap()
            .contains("after 3 tries")
    );
}

#[test]
fn a_failing_alert_never_fails_the_run() {
    let world = World::new();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    world.write(
        "alerts.yaml",
        &format!(
            "channels:\n  gone: {{type: webhook, url: \"http://127.0.0.1:{closed}/x\"}}\nrules:\n  - {{when: rejected, notify: [gone]}}\n"
        ),
    );
    world.insert(1, 2, Some(1), None);
    let out = world.retl(&["run", "orders", "--json"], "emulator-secret");
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("alert not sent"), "{stderr}");
}

#[test]
fn the_alerts_file_is_checked_like_the_others() {
    let world = World::new();
    world.write(
        "alerts.yaml",
        "channels:\n  ops: {type: webhook, url: \"https://hooks.example/retl\"}\nrules:\n  - {when: run_faild, notify: [opps]}\n  - {when: stale, notify: [ops]}\n",
    );
    let out = world.retl(&["check"], "emulator-secret");
    assert_eq!(out.status.code(), Some(2));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "alerts.yaml:4:",
        "rules[0].when",
        "run_failed",
        "no channel `opps`",
        "rules[1].after",
    ] {
        assert!(said.contains(expected), "`{expected}` in: {said}");
    }
    let schema = world.retl(&["schema", "alerts"], "emulator-secret");
    let schema: Value = serde_json::from_slice(&schema.stdout).unwrap();
    assert_eq!(schema["title"], "retl alerts");
}

#[test]
fn the_daemon_alerts_once_for_an_activation_that_keeps_failing() {
    let world = World::new();
    let hooks = Receiver::start();
    world.write(
        "alerts.yaml",
        &format!(
            "channels:\n  ops: {{type: webhook, url: \"{}\"}}\nrules:\n  - {{when: run_failed, notify: [ops]}}\n",
            hooks.url("/ops")
        ),
    );
    world.edit_activation(|yaml| format!("{yaml}schedule:\n  every: 1s\n"));
    world.insert(1, 2, None, None);
    break_source(&world);
    let mut child = world
        .command(&["schedule", "--listen", "127.0.0.1:0"], "emulator-secret")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let failed_runs = Arc::new(Mutex::new(0));
    {
        let failed_runs = failed_runs.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if line.contains(" failed (read ") {
                    *failed_runs.lock().unwrap() += 1;
                }
            }
        });
    }
    until("three failed runs", || *failed_runs.lock().unwrap() >= 3);
    until("the alert", || !hooks.events("/ops").is_empty());
    assert_eq!(hooks.events("/ops"), ["run_failed"], "once, not per run");
    mend_source(&world);
    until("the recovery", || hooks.events("/ops").len() == 2);
    assert_eq!(hooks.events("/ops")[1], "recovered");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_password_a_driver_quotes_is_masked_in_every_output() {
    let Some(driver) = super::server_url("RETL_TEST_ADBC_POSTGRESQL_DRIVER") else {
        return;
    };
    let world = World::new();
    let receiver = Receiver::start();
    // A password with `[`, which the driver cannot parse and quotes raw.
    world.write(
        "activations/orders.yaml",
        &format!(
            "source:\n  adbc:\n    driver: {driver}\n    options:\n      uri: \"postgresql://ro:Sup3r[Secret@[bad/db\"\n  table: orders\n  primary_key: [order_id]\ndestination: trustpilot\nfirst_run: send_all\nmapping:\n  reference_number: order_id\n  consumer_name: full_name\n  consumer_email: email\n"
        ),
    );
    world.write(
        "alerts.yaml",
        &format!(
            "channels:\n  ops: {{type: webhook, url: \"http://127.0.0.1:{}/hook\"}}\nrules:\n  - {{when: run_failed, notify: [ops]}}\n",
            receiver.port
        ),
    );
    let check = world.retl(&["check", "--json"], "emulator-secret");
    let run = world.retl(&["run", "orders", "--json"], "emulator-secret");
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    let human = world.retl(&["run", "orders"], "emulator-secret");
    let list = world.retl(&["runs", "list", "--json"], "emulator-secret");
    let show = world.retl(&["runs", "show", "latest", "--json"], "emulator-secret");
    until("the alert", || !receiver.got.lock().unwrap().is_empty());
    let alerts: Vec<String> = receiver
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body)| body.clone())
        .collect();
    let mut said = alerts.join("\n");
    for out in [&check, &run, &human, &list, &show] {
        said.push_str(&String::from_utf8_lossy(&out.stdout));
        said.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    assert!(
        said.contains("Failed to connect"),
        "the driver's error is told: {said}"
    );
    assert!(said.contains("ro:***@"), "{said}");
    for secret in ["Sup3r[Secret", "Sup3r", "Sup3r%5BSecret"] {
        assert!(!said.contains(secret), "`{secret}` leaked: {said}");
    }
}

/// A server on loopback that takes connections and never answers.
fn silent_receiver() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

#[test]
fn receivers_that_never_answer_hold_retl_runs_exit_only_to_the_deadline() {
    let world = World::new();
    let (a, b) = (silent_receiver(), silent_receiver());
    world.write(
        "alerts.yaml",
        &format!(
            "channels:\n  one: {{type: webhook, url: \"http://127.0.0.1:{a}/hook\"}}\n  two: {{type: slack, url: \"http://127.0.0.1:{b}/hook\"}}\nrules:\n  - {{when: run_failed, notify: [one, two]}}\n"
        ),
    );
    break_source(&world);
    // Each channel alone would take three tries of 10 s: 66 s for both, one
    // after the other. Together, under one deadline (shortened here), the
    // run's exit waits for the deadline only.
    let started = Instant::now();
    let out = world
        .command(&["run", "orders", "--json"], "emulator-secret")
        .env("RETL_ALERTS_DEADLINE", "3s")
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("alerts not all sent within 3s"), "{stderr}");
}

#[test]
fn an_smtp_password_with_a_plus_logs_in_as_written() {
    let world = World::new();
    let mailbox = Mailbox::start();
    world.write(
        "alerts.yaml",
        &format!(
            "channels:\n  mail: {{type: email, smtp: \"smtp://retl:p+ss%40w0rd@127.0.0.1:{}?tls=none\", from: retl@shop.example, to: [a@shop.example]}}\n",
            mailbox.port
        ),
    );
    let (code, results, stderr) = json(&world, &["alerts", "test", "--json"]);
    assert_eq!(code, 0, "{results} {stderr}");
    let auths = mailbox.auths.lock().unwrap().clone();
    assert_eq!(auths.len(), 1, "{auths:?}");
    // AUTH PLAIN: base64 of NUL user NUL password.
    let encoded = auths[0].rsplit(' ').next().unwrap();
    let plain =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded).unwrap();
    assert_eq!(
        plain,
        b"\0retl\0p+ss@w0rd",
        "{}",
        String::from_utf8_lossy(&plain)
    );
}

#[test]
fn a_new_activation_is_not_stale_until_its_window_passed_since_its_first_run() {
    let world = World::new();
    let hooks = Receiver::start();
    world.write(
        "alerts.yaml",
        &format!(
            "channels:\n  ops: {{type: webhook, url: \"{}\"}}\nrules:\n  - {{when: stale, after: 5m, notify: [ops]}}\n  - {{when: refused, notify: [ops]}}\n",
            hooks.url("/ops")
        ),
    );
    // A first run the first-run guard refuses: refused, not stale.
    world.edit_activation(|yaml| yaml.replace("first_run: send_all\n", ""));
    world.insert(1, 150, None, None);
    assert_eq!(run_at(&world, None).0, 5);
    assert_eq!(hooks.events("/ops"), ["refused"]);
    // A failed run a minute later: still not stale.
    break_source(&world);
    assert_eq!(run_at(&world, Some("1m")).0, 1);
    assert_eq!(hooks.events("/ops"), ["refused"]);
    // Ten minutes after its first run, none has completed: stale, once.
    assert_eq!(run_at(&world, Some("10m")).0, 1);
    assert_eq!(hooks.events("/ops"), ["refused", "stale"]);
    let stale = &hooks.bodies("/ops")[1];
    assert!(
        stale["message"]
            .as_str()
            .unwrap()
            .contains("none has completed since its first run at"),
        "{stale}"
    );
    // A run that completes ends both incidents.
    mend_source(&world);
    world.edit_activation(|yaml| format!("{yaml}first_run: send_all\n"));
    assert_eq!(run_at(&world, Some("11m")).0, 0);
    let events = hooks.events("/ops");
    assert_eq!(
        events.iter().filter(|e| *e == "recovered").count(),
        2,
        "{events:?}"
    );
}

#[test]
fn a_typo_in_the_alerts_file_sends_the_invitations_and_says_so_even_quietly() {
    let world = World::new();
    let hooks = Receiver::start();
    world.write(
        "alerts.yaml",
        &format!(
            "channels:\n  ops: {{type: webhook, url: \"{}\"}}\nrules:\n  - {{when: rejected, notify: [opz]}}\n",
            hooks.url("/ops")
        ),
    );
    world.insert(1, 3, Some(2), None);
    let out = world
        .command(&["run", "orders", "--quiet"], "emulator-secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("alerts.yaml could not be used"), "{stderr}");
    assert!(stderr.contains("alerts.yaml:4:"), "its position: {stderr}");
    assert!(stderr.contains("opz"), "{stderr}");
    assert_eq!(
        world.accepted_references().len(),
        2,
        "the invitations went out"
    );
    assert!(hooks.events("/ops").is_empty());
    // retl check fails on it, with its position.
    let check = world.retl(&["check", "--json"], "emulator-secret");
    assert_eq!(check.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&check.stdout).contains("alerts.yaml:4:"));
}

#[test]
fn rows_failing_longer_than_after_alert_once_show_everywhere_and_recover_when_none_fails() {
    use retl_trustpilot_emulator::Fault;
    let world = World::new();
    let hooks = Receiver::start();
    world.write(
        "alerts.yaml",
        &format!(
            "channels:\n  ops: {{type: webhook, url: \"{}\"}}\nrules:\n  - {{when: failing, after: 30s, notify: [ops]}}\n",
            hooks.url("/ops")
        ),
    );
    world.write_destination_with(
        "request_timeout_seconds: 1\nretry:\n  backoff_ms: 1\n  tries_per_run: 1\n",
    );
    world.insert(1, 2, None, None);
    // Trustpilot answers 500 to every request of three runs.
    world
        .emulator()
        .script_faults([Some(Fault::ServerError); 6]);
    let (code, first) = run_at(&world, None);
    assert_eq!(
        (code, first["counts"]["failed"].as_u64()),
        (3, Some(2)),
        "{first}"
    );
    assert!(hooks.events("/ops").is_empty(), "failing for less than 30s");
    let (_, check, _) = json(&world, &["check", "--json"]);
    let attention = &check["activations"][0]["attention"];
    assert_eq!(attention["failing"], 2, "{check}");
    assert!(attention["failing_since"].is_string(), "{check}");
    assert!(
        attention["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("500"),
        "{check}"
    );
    let human = world.retl(&["check"], "emulator-secret");
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("rows failing: 2 since"),
        "{}",
        String::from_utf8_lossy(&human.stdout)
    );
    // A minute later the rows still fail: one alert, then no other.
    assert_eq!(run_at(&world, Some("1m")).0, 3);
    assert_eq!(run_at(&world, Some("2m")).0, 3);
    assert_eq!(hooks.events("/ops"), ["failing"]);
    let alert = &hooks.bodies("/ops")[0];
    let message = alert["message"].as_str().unwrap();
    assert!(
        message.contains("2 row(s) of `orders` have been failing for over 30s")
            && message.contains("HTTP 500"),
        "{alert}"
    );
    // Trustpilot is back: the rows go out, and the incident is over.
    let (code, back) = run_at(&world, Some("3m"));
    assert_eq!(
        (code, back["counts"]["sent"].as_u64()),
        (0, Some(2)),
        "{back}"
    );
    assert_eq!(hooks.events("/ops"), ["failing", "recovered"]);
    let recovered = hooks.bodies("/ops")[1]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        recovered.contains("no row of `orders` is failing any more"),
        "{recovered}"
    );
    let (_, check, _) = json(&world, &["check", "--json"]);
    assert_eq!(check["activations"][0]["attention"]["failing"], 0);
}

#[test]
fn an_uncertain_incident_recovers_when_its_rows_are_settled_not_when_a_later_run_completes() {
    use retl_trustpilot_emulator::Fault;
    let world = World::new();
    let hooks = Receiver::start();
    world.write(
        "alerts.yaml",
        &format!(
            "channels:\n  ops: {{type: webhook, url: \"{}\"}}\nrules:\n  - {{when: uncertain, notify: [ops]}}\n",
            hooks.url("/ops")
        ),
    );
    world.write_destination_with("request_timeout_seconds: 1\nretry:\n  backoff_ms: 1\n");
    world.insert(1, 2, None, None);
    // Trustpilot stores both invitations and never answers.
    world
        .emulator()
        .script_faults([Some(Fault::AcceptThenHang); 2]);
    let (code, first) = run_at(&world, None);
    assert_eq!(
        (code, first["counts"]["uncertain"].as_u64()),
        (3, Some(2)),
        "{first}"
    );
    assert_eq!(hooks.events("/ops"), ["uncertain"]);
    let run_id = first["run_id"].as_str().unwrap();
    // A later clean run: the two rows are still undecided, nothing recovered.
    world.insert(3, 3, None, None);
    let (code, clean) = run_at(&world, None);
    assert_eq!(
        (code, clean["counts"]["sent"].as_u64()),
        (0, Some(1)),
        "{clean}"
    );
    assert_eq!(
        hooks.events("/ops"),
        ["uncertain"],
        "the rows still need a person"
    );
    // A key the run did not leave uncertain settles nothing.
    let out = world.retl(
        &["runs", "settle", run_id, "--key", "3", "--sent"],
        "emulator-secret",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing settled"));
    // Order 1 reached Trustpilot (a person saw it there); order 2 did not.
    let (code, settled, stderr) = json(
        &world,
        &[
            "runs", "settle", run_id, "--key", "1", "--sent", "--by", "alice", "--json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(settled["settled_as"], "sent");
    assert_eq!(
        hooks.events("/ops"),
        ["uncertain"],
        "one row is still uncertain"
    );
    let keys = world.config_dir().join("keys.txt");
    std::fs::write(&keys, "2\n").unwrap();
    let out = world.retl(
        &[
            "runs",
            "settle",
            run_id,
            "--keys-file",
            keys.to_str().unwrap(),
            "--not-sent",
            "--by",
            "bob",
        ],
        "emulator-secret",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        hooks.events("/ops"),
        ["uncertain", "recovered"],
        "from the settle itself"
    );
    let recovered = hooks.bodies("/ops")[1]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(recovered.contains("settled by bob"), "{recovered}");
    settled_rows_are_told(&world);
}

/// After orders 1 (settled sent by alice) and 2 (settled not sent by bob):
/// order 2 is new again, and `runs find` says who settled each.
fn settled_rows_are_told(world: &World) {
    let (_, next) = run_at(world, None);
    assert_eq!(next["counts"]["sent"].as_u64(), Some(1), "{next}");
    let (_, found, _) = json(world, &["runs", "find", "1", "--json"]);
    let settlement = &found["settlements"][0];
    assert_eq!(
        (
            settlement["settled_as"].as_str(),
            settlement["settled_by"].as_str()
        ),
        (Some("sent"), Some("alice")),
        "{found}"
    );
    let human = world.retl(&["runs", "find", "2"], "emulator-secret");
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("settled as not sent by bob"),
        "{}",
        String::from_utf8_lossy(&human.stdout)
    );
}
