//! `retl schedule`: runs on time, serves metrics, the API and the run-log
//! page, and stops cleanly on SIGTERM.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::World;

/// The daemon, the address it serves, and what it has said on stderr.
struct Daemon {
    child: Child,
    address: String,
    said: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Daemon {
    fn said(&self) -> String {
        self.said.lock().unwrap().join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(world: &World, extra: &[&str]) -> Daemon {
    start_with(world, extra, None)
}

fn start_with(world: &World, extra: &[&str], hold: Option<&str>) -> Daemon {
    let mut args = vec!["schedule", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut command = world.command(&args, "emulator-secret");
    if let Some(hold) = hold {
        command.env("RETL_HOLD_AT", hold);
    }
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = super::serving_address(&mut lines);
    let said = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let said = said.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                said.lock().unwrap().push(line);
            }
        });
    }
    Daemon {
        child,
        address,
        said,
    }
}

/// `GET path` over HTTP/1.0: status line and body.
fn get(address: &str, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// Waits until `ready` holds (the daemon's own clock decides when runs start).
fn until(what: &str, mut ready: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_mins(1);
    while !ready() {
        assert!(Instant::now() < give_up, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_daemon_runs_on_schedule_reports_metrics_and_stops_on_sigterm() {
    let world = World::new();
    world.insert(1, 3, None, None);
    world.edit_activation(|yaml| format!("{yaml}schedule:\n  every: 2s\n"));
    let mut daemon = start(&world, &[]);
    let runs = || -> Vec<Value> {
        let (_, body) = get(&daemon.address, "/api/runs");
        serde_json::from_str::<Vec<Value>>(&body).unwrap()
    };
    until("two finished runs", || {
        runs().iter().filter(|r| r["status"] == "completed").count() >= 2
    });
    let all = runs();
    let oldest = all.last().unwrap();
    assert_eq!(oldest["counts"]["sent"], 3, "the first run sent the rows");
    assert_eq!(world.accepted_references().len(), 3, "and nothing twice");

    // A run is in the state (what /api/runs reads) a moment before the
    // daemon's loop counts it in the metrics: wait for the count.
    let completed = || {
        let (_, metrics) = get(&daemon.address, "/metrics");
        metrics
            .lines()
            .find(|l| l.starts_with("retl_runs_total{activation=\"orders\",status=\"completed\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    until("the metrics to count two runs", || completed() >= 2);
    let (status, metrics) = get(&daemon.address, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(
        metrics.contains("retl_rows_total{activation=\"orders\",outcome=\"sent\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("retl_trustpilot_requests_total{status=\"202\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("retl_trustpilot_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains("retl_last_success_timestamp_seconds{activation=\"orders\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("retl_trustpilot_rate_limited_total 0"),
        "{metrics}"
    );
    assert_eq!(get(&daemon.address, "/healthz").1, "ok\n");

    // One run in JSON, by a short id.
    let id = oldest["run_id"].as_str().unwrap();
    let (status, one) = get(
        &daemon.address,
        &format!("/api/runs/{}", &id[id.len() - 12..]),
    );
    assert!(status.contains("200"), "{status}");
    let one: Value = serde_json::from_str(&one).unwrap();
    assert_eq!(one["run_id"], id);
    assert_eq!(one["rows"].as_array().unwrap().len(), 3);

    // The page finds a reference with its plain GET form.
    let (_, page) = get(&daemon.address, "/");
    assert!(page.contains("<form method=\"get\" action=\"/\""), "{page}");
    assert!(page.contains(id), "recent runs are listed");
    let (_, found) = get(&daemon.address, "/?q=2");
    assert!(found.contains("Sent at "), "{found}");
    assert!(
        found.contains(&format!("<a href=\"/?run={id}\">")),
        "{found}"
    );

    let pid = daemon.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = daemon.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM ends the daemon cleanly");
    let after = world.retl(&["runs", "list", "--json"], "emulator-secret");
    let after: Vec<Value> = serde_json::from_slice(&after.stdout).unwrap();
    assert!(
        after.iter().all(|r| r["status"] != "running"),
        "every run was recorded as finished: {after:?}"
    );
}

#[test]
fn a_public_listen_address_needs_listen_public() {
    let world = World::new();
    let out = world.retl(&["schedule", "--listen", "0.0.0.0:0"], "emulator-secret");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--listen-public"), "{stderr}");
}

#[test]
fn a_broken_schedule_is_reported_with_its_position() {
    let world = World::new();
    world.edit_activation(|yaml| format!("{yaml}schedule: \"61 * * * *\"\n"));
    let out = world.retl(&["check"], "emulator-secret");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    let all = format!("{stdout}{stderr}");
    assert!(all.contains("orders.yaml:"), "{all}");
    assert!(
        all.contains("the minute field `61` is out of range: minute is 0-59"),
        "{all}"
    );
}

/// Headless Chromium, if installed: `None` (skip) outside CI when missing.
fn chromium() -> Option<String> {
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        let found = std::process::Command::new(candidate)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            return Some(candidate.to_owned());
        }
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "chromium must be installed when CI=true (scripts/test.sh installs it)"
    );
    eprintln!("skipped: no chromium (scripts/test.sh installs it)");
    None
}

/// The DOM Chromium builds for `url`, after parsing and layout.
fn dump_dom(browser: &str, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The value of `attribute` on the first `<tag …>` of `dom` that has it.
fn attribute(dom: &str, tag: &str, attribute: &str) -> String {
    let start = dom
        .find(&format!("<{tag} "))
        .unwrap_or_else(|| panic!("no <{tag}> in {dom}"));
    let element = &dom[start..start + dom[start..].find('>').unwrap()];
    let key = format!("{attribute}=\"");
    let from = element
        .find(&key)
        .unwrap_or_else(|| panic!("no {attribute} in {element}"))
        + key.len();
    element[from..from + element[from..].find('"').unwrap()].to_owned()
}

#[test]
fn the_run_log_page_works_in_a_real_browser() {
    let Some(browser) = chromium() else { return };
    let world = World::new();
    world.insert(1, 3, Some(2), None);
    world.edit_activation(|yaml| format!("{yaml}schedule:\n  every: 1h\n"));
    let daemon = start(&world, &[]);
    until_a_run_completed(&daemon);
    let home = format!("http://{}/", daemon.address);
    let dom = dump_dom(&browser, &home);
    assert!(dom.contains("<table id=\"runs\">"), "{dom}");
    assert!(dom.contains(">completed<"), "{dom}");
    // The search box is a plain GET form: submitting it loads ACTION?NAME=VALUE.
    assert_eq!(attribute(&dom, "form", "method"), "get");
    let action = attribute(&dom, "form", "action");
    let name = attribute(&dom, "input", "name");
    let searched = dump_dom(
        &browser,
        &format!("http://{}{action}?{name}=2", daemon.address),
    );
    assert!(searched.contains("Never sent"), "{searched}");
    assert!(
        searched.contains("consumer_email: not a valid email address"),
        "{searched}"
    );
    let sent = dump_dom(
        &browser,
        &format!("http://{}{action}?{name}=3", daemon.address),
    );
    assert!(sent.contains("Sent at "), "{sent}");
    assert!(sent.contains("class=\"sent\">sent<"), "{sent}");
}

#[test]
fn sighup_reloads_and_a_broken_file_keeps_its_previous_version() {
    let world = World::new();
    world.insert(1, 2, None, None);
    world.edit_activation(|yaml| format!("{yaml}schedule:\n  every: 1h\n"));
    let daemon = start(&world, &[]);
    let completed = || {
        let (_, body) = get(&daemon.address, "/api/runs");
        serde_json::from_str::<Vec<Value>>(&body)
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "completed")
            .count()
    };
    until("the first run", || completed() == 1);
    let hup = || {
        let pid = daemon.child.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    // A broken file: the problem is logged with its position, the old version stays.
    world.edit_activation(|yaml| yaml.replace("every: 1h", "every: 1h\nmapping_typo: 1"));
    hup();
    until("the reload's report", || daemon.said().contains("reload:"));
    let said = daemon.said();
    assert!(said.contains("orders.yaml:"), "{said}");
    assert!(said.contains("mapping_typo"), "{said}");
    assert!(said.contains("previous version keeps running"), "{said}");
    let (_, metrics) = get(&daemon.address, "/metrics");
    assert!(
        metrics.contains("retl_next_run_timestamp_seconds{activation=\"orders\"}"),
        "still scheduled: {metrics}"
    );
    // Not only in the log: a metric, and the page says so.
    assert!(metrics.contains("retl_config_reload_failed 1"), "{metrics}");
    let (_, page) = get(&daemon.address, "/");
    assert!(page.contains("id=\"reload\""), "{page}");
    assert!(page.contains("mapping_typo"), "{page}");
    // Fixed, and every 2 s now: the next run follows the new schedule.
    world.edit_activation(|yaml| yaml.replace("every: 1h\nmapping_typo: 1", "every: 2s"));
    world.insert(3, 3, None, None);
    hup();
    until("a run on the new schedule", || completed() >= 2);
    assert_eq!(world.accepted_references().len(), 3);
    let (_, metrics) = get(&daemon.address, "/metrics");
    assert!(metrics.contains("retl_config_reload_failed 0"), "{metrics}");
}

#[test]
fn sigterm_drains_a_run_under_way_records_it_and_exits_0() {
    let world = World::new();
    world.insert(1, 3, None, None);
    world.edit_activation(|yaml| format!("{yaml}schedule:\n  every: 1h\n"));
    let mut daemon = start_with(&world, &[], Some("recorded:1"));
    until("the run to hold", || {
        daemon.said().contains("holding at recorded 1")
    });
    let pid = daemon.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = daemon.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", daemon.said());
    let out = world.retl(&["runs", "list", "--json"], "emulator-secret");
    let runs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "interrupted", "{runs:?}");
    let c = &runs[0]["counts"];
    let sent = c["sent"].as_u64().unwrap();
    assert_eq!(c["new"], 3, "every row accounted for: {c}");
    // Requests under way at the stop were finished and recorded.
    assert_eq!(world.accepted_references().len() as u64, sent, "{c}");
    // The next run sends the rest, once.
    let (code, next) = world.run();
    assert_eq!(code, 0, "{next}");
    assert_eq!(next["counts"]["sent"].as_u64().unwrap(), 3 - sent);
    assert_eq!(world.accepted_references().len(), 3);
}

/// `GET path` over HTTP/1.0 with the given `Host`: the status line.
fn get_as(address: &str, host: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn the_daemon_answers_only_its_own_host_names() {
    let world = World::new();
    let daemon = start(&world, &["--allowed-host", "retl.internal"]);
    let port = daemon.address.rsplit(':').next().unwrap().to_owned();
    for host in [
        daemon.address.clone(),
        format!("localhost:{port}"),
        "retl.internal".to_owned(),
        format!("RETL.internal:{port}"),
    ] {
        let status = get_as(&daemon.address, &host, "/api/runs");
        assert!(status.contains(" 200 "), "{host}: {status}");
    }
    // A name that resolves here by rebinding, another port, or no name at all.
    for host in [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        "127.0.0.1:1".to_owned(),
        String::new(),
    ] {
        let status = get_as(&daemon.address, &host, "/api/runs");
        assert!(status.contains(" 421 "), "{host:?}: {status}");
    }
}

#[test]
fn clients_that_never_send_their_request_cannot_hold_the_daemon() {
    let world = World::new();
    let daemon = start(
        &world,
        &["--header-timeout", "1s", "--max-connections", "4"],
    );
    // Four connections take every place and never finish their head.
    let mut idle: Vec<std::net::TcpStream> = (0..4)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&daemon.address).unwrap();
            stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
            stream
        })
        .collect();
    // Each is cut off by the head timeout (the read ends instead of blocking)...
    for stream in &mut idle {
        stream
            .set_read_timeout(Some(Duration::from_mins(1)))
            .unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
    }
    // ...and the daemon answers again.
    let (status, body) = get(&daemon.address, "/healthz");
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(body, "ok\n");
}

#[test]
fn a_runs_rows_come_a_page_at_a_time() {
    let world = World::new();
    world.insert(1, 7, None, None);
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    let run_id = summary["run_id"].as_str().unwrap();
    let daemon = start(&world, &[]);
    let mut keys = Vec::new();
    let mut after: Option<i64> = None;
    let mut pages = 0;
    loop {
        let path = match after {
            Some(after) => format!("/api/runs/{run_id}?limit=3&after={after}"),
            None => format!("/api/runs/{run_id}?limit=3"),
        };
        let (status, body) = get(&daemon.address, &path);
        assert!(status.contains(" 200 "), "{status} {body}");
        let page: Value = serde_json::from_str(&body).unwrap();
        let rows = page["rows"].as_array().unwrap();
        assert!(rows.len() <= 3, "{page}");
        keys.extend(rows.iter().map(|r| r["key"].as_str().unwrap().to_owned()));
        pages += 1;
        match page["next_after"].as_i64() {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 7, "{keys:?}");
}

#[test]
fn an_activation_removed_and_restored_while_it_runs_is_not_started_twice() {
    let world = World::new();
    world.insert(1, 3, None, None);
    world.edit_activation(|yaml| format!("{yaml}schedule:\n  every: 1h\n"));
    let mut daemon = start_with(&world, &[], Some("recorded:1"));
    until("the run to hold", || {
        daemon.said().contains("holding at recorded 1")
    });
    let pid = daemon.child.id();
    let signal = |name: &str| super::signal(pid, name);
    let file = world.config_dir().join("activations/orders.yaml");
    let aside = world.dir.path().join("orders.yaml.aside");
    std::fs::rename(&file, &aside).unwrap();
    signal("-HUP");
    until("the first reload", || {
        daemon.said().matches("scheduled activation(s)").count() >= 1
    });
    std::fs::rename(&aside, &file).unwrap();
    signal("-HUP");
    until("the second reload", || {
        daemon.said().matches("scheduled activation(s)").count() >= 2
    });
    // A third reload is handled only after the loop has acted on the
    // second: by then a second run would be planned (a next-run time).
    signal("-HUP");
    until("the third reload", || {
        daemon.said().matches("scheduled activation(s)").count() >= 3
    });
    let (_, metrics) = get(&daemon.address, "/metrics");
    assert!(
        !metrics.contains("retl_next_run_timestamp_seconds{activation=\"orders\"}"),
        "the run under way is the restored activation's own: {metrics}"
    );
    signal("-TERM");
    let status = daemon.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", daemon.said());
    let said = daemon.said();
    assert!(!said.contains("already running"), "{said}");
    let out = world.retl(&["runs", "list", "--json"], "emulator-secret");
    let runs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["status"], "interrupted", "{runs:?}");
}

/// An HTTP/1.0 request with an optional bearer token: status line and body.
fn request(address: &str, method: &str, path: &str, token: Option<&str>) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\n{auth}Content-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn token_file(world: &World) -> String {
    let file = world.dir.path().join("api-token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    file.to_str().unwrap().to_owned()
}

#[test]
fn a_run_starts_on_demand_with_the_api_token_and_one_at_a_time() {
    let world = World::new();
    world.insert(1, 3, None, None);
    let file = token_file(&world);
    // `orders` has no schedule: it runs only when asked. Held with a row in
    // flight, its run stays under way for the second request.
    let daemon = start_with(&world, &["--api-token-file", &file], Some("in_flight:1"));
    let path = "/api/activations/orders/runs";
    let (status, _) = request(&daemon.address, "POST", path, None);
    assert!(status.contains(" 401 "), "{status}");
    let (status, _) = request(&daemon.address, "POST", path, Some("not-the-token-at-all"));
    assert!(status.contains(" 401 "), "{status}");
    let (status, body) = request(
        &daemon.address,
        "POST",
        "/api/activations/nope/runs",
        Some(TOKEN),
    );
    assert!(status.contains(" 404 "), "{status} {body}");

    let (status, body) = request(&daemon.address, "POST", path, Some(TOKEN));
    assert!(status.contains(" 202 "), "{status} {body}");
    let started: Value = serde_json::from_str(&body).unwrap();
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    assert_eq!(started["activation"], "orders");
    let (status, body) = request(&daemon.address, "POST", path, Some(TOKEN));
    assert!(status.contains(" 409 "), "{status} {body}");
    // The run is the one the answer named: the API shows it under way.
    until("the run to be recorded", || {
        let (status, body) = get(&daemon.address, &format!("/api/runs/{run_id}"));
        status.contains(" 200 ") && body.contains("\"running\"")
    });
}

#[test]
fn a_run_started_on_demand_completes_and_the_route_needs_a_token_file() {
    let world = World::new();
    world.insert(1, 3, None, None);
    let plain = start(&world, &[]);
    let (status, _) = request(&plain.address, "POST", "/api/activations/orders/runs", None);
    assert!(
        status.contains(" 404 "),
        "no token file, no route: {status}"
    );
    drop(plain);

    let file = token_file(&world);
    let daemon = start(&world, &["--api-token-file", &file]);
    let (status, body) = request(
        &daemon.address,
        "POST",
        "/api/activations/orders/runs",
        Some(TOKEN),
    );
    assert!(status.contains(" 202 "), "{status} {body}");
    let run_id = serde_json::from_str::<Value>(&body).unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    until("the run to complete", || {
        get(&daemon.address, &format!("/api/runs/{run_id}"))
            .1
            .contains("\"completed\"")
    });
    assert_eq!(world.accepted_references().len(), 3);
    // The run's line in the daemon's log says every count that needs a look.
    until("the run's line", || {
        daemon.said().contains(
            "(read 3, sent 3, rejected 0, failed 0, uncertain 0, given_up 0, suppressed 0)",
        )
    });
}

#[test]
fn listen_public_needs_a_token_and_asks_for_it_everywhere_but_healthz() {
    let world = World::new();
    let out = world.retl(
        &["schedule", "--listen", "0.0.0.0:0", "--listen-public"],
        "emulator-secret",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--api-token-file"));

    let file = token_file(&world);
    let mut args = vec!["schedule", "--listen", "0.0.0.0:0", "--listen-public"];
    args.extend(["--api-token-file", &file]);
    let mut child = world
        .command(&args, "emulator-secret")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = super::serving_address(&mut lines);
    std::thread::spawn(move || lines.for_each(drop));
    let (status, _) = request(&address, "GET", "/healthz", None);
    assert!(status.contains(" 200 "), "{status}");
    for path in ["/", "/metrics", "/api/runs"] {
        let (status, _) = request(&address, "GET", path, None);
        assert!(status.contains(" 401 "), "{path}: {status}");
        let (status, _) = request(&address, "GET", path, Some(TOKEN));
        assert!(status.contains(" 200 "), "{path}: {status}");
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits until the daemon has completed a run.
fn until_a_run_completed(daemon: &Daemon) {
    until("the first run", || {
        let (_, body) = get(&daemon.address, "/api/runs");
        serde_json::from_str::<Vec<Value>>(&body)
            .unwrap()
            .iter()
            .any(|r| r["status"] == "completed")
    });
}

/// A screenshot of `url` by Chromium, as PNG, into `file`.
fn screenshot(browser: &str, url: &str, file: &std::path::Path) {
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--window-size=1280,900")
        .arg(format!("--screenshot={}", file.display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let png = std::fs::read(file).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG at {}", file.display());
}

#[test]
fn the_page_gives_support_and_volume_watchers_their_answers_in_a_real_browser() {
    let Some(browser) = chromium() else { return };
    let world = World::new();
    world.insert(1, 3, Some(2), None);
    world.edit_activation(|yaml| format!("{yaml}schedule:\n  every: 1h\n"));
    let daemon = start(&world, &[]);
    until_a_run_completed(&daemon);
    let (_, runs) = get(&daemon.address, "/api/runs");
    let runs: Vec<Value> = serde_json::from_str(&runs).unwrap();
    let run_id = runs[0]["run_id"].as_str().unwrap().to_owned();
    let base = format!("http://{}", daemon.address);
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("page");
    std::fs::create_dir_all(&shots).unwrap();

    // The overview: the activation's status, the chart, the runs.
    let home = dump_dom(&browser, &format!("{base}/"));
    assert!(home.contains("<table id=\"overview\">"), "{home}");
    assert!(home.contains("class=\"healthy\">healthy<"), "{home}");
    assert!(
        home.contains("<svg class=\"chart\"") && home.contains("<rect "),
        "{home}"
    );
    assert!(home.contains(&run_id), "{home}");
    screenshot(&browser, &format!("{base}/"), &shots.join("overview.png"));
    // The filters work: no failed run.
    let failed = dump_dom(&browser, &format!("{base}/?status=failed"));
    let runs_table = &failed[failed.find("<table id=\"runs\">").unwrap()..];
    assert!(!runs_table.contains(&run_id), "{failed}");

    // A run: rows by outcome, then key; what was sent, without the person.
    let run = dump_dom(&browser, &format!("{base}/?run={run_id}"));
    let rejected = run
        .find("class=\"rejected\">rejected<")
        .expect("a rejected row");
    let sent = run.find("class=\"sent\">sent<").expect("a sent row");
    assert!(rejected < sent, "rejected sorts before sent: {run}");
    assert!(run.contains("locale: en-US"), "{run}");
    assert!(
        !run.contains("customer1@shop.example") && !run.contains("Customer 1"),
        "{run}"
    );
    screenshot(
        &browser,
        &format!("{base}/?run={run_id}"),
        &shots.join("run.png"),
    );

    // Support's question, by the email in the ticket.
    let search = format!("{base}/?q=Customer3%40shop.example");
    let found = dump_dom(&browser, &search);
    assert!(found.contains("Sent at "), "{found}");
    assert!(found.contains(&run_id), "{found}");
    screenshot(&browser, &search, &shots.join("search.png"));
}

#[test]
fn a_run_asked_for_while_another_process_holds_the_lease_is_refused_by_name() {
    let world = World::new();
    world.insert(1, 3, None, None);
    // `retl run orders` in another process, held with a row in flight.
    let mut held = super::spawn_held(&world, "in_flight:1", &[]);
    let file = token_file(&world);
    let daemon = start(&world, &["--api-token-file", &file]);
    let (status, body) = request(
        &daemon.address,
        "POST",
        "/api/activations/orders/runs",
        Some(TOKEN),
    );
    assert!(status.contains(" 409 "), "{status} {body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("holds its lease"),
        "{answer}"
    );
    assert!(
        answer["holder"]
            .as_str()
            .unwrap()
            .contains(&held.id().to_string()),
        "{answer}"
    );
    held.kill().unwrap();
    held.wait().unwrap();
}

#[test]
fn an_open_approval_shows_on_the_page_and_in_the_metrics_until_revoked() {
    let world = World::new();
    world.insert(1, 2, None, None);
    assert_eq!(world.run().0, 0);
    let daemon = start(&world, &[]);
    let out = world.retl(
        &["approve", "orders", "--ahead", "--by", "alice"],
        "emulator-secret",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, metrics) = get(&daemon.address, "/metrics");
    assert!(
        metrics.contains("retl_approval_open{activation=\"orders\",kind=\"ahead\"} 1"),
        "{metrics}"
    );
    let (_, page) = get(&daemon.address, "/");
    assert!(
        page.contains("Open approvals") && page.contains("alice"),
        "{page}"
    );
    let out = world.retl(&["approve", "orders", "--revoke"], "emulator-secret");
    assert_eq!(out.status.code(), Some(0));
    let (_, metrics) = get(&daemon.address, "/metrics");
    assert!(!metrics.contains("retl_approval_open{"), "{metrics}");
    let (_, page) = get(&daemon.address, "/");
    assert!(!page.contains("Open approvals"), "{page}");
}

#[test]
fn rows_waiting_on_an_error_are_not_healthy_on_the_page_and_are_counted_in_the_metrics() {
    use retl_trustpilot_emulator::Fault;
    let world = World::new();
    world.write_destination_with(
        "request_timeout_seconds: 1\nretry:\n  backoff_ms: 1\n  tries_per_run: 1\n",
    );
    world.insert(1, 2, None, None);
    world
        .emulator()
        .script_faults([Some(Fault::ServerError); 2]);
    let (code, _) = world.run();
    assert_eq!(code, 3, "the run completed with failed rows");
    let daemon = start(&world, &[]);
    let (_, page) = get(&daemon.address, "/");
    assert!(
        page.contains("class=\"rows-failing\">rows failing (2 row(s) since"),
        "{page}"
    );
    assert!(!page.contains(">healthy<"), "{page}");
    let (_, metrics) = get(&daemon.address, "/metrics");
    assert!(
        metrics.contains("retl_rows_failing{activation=\"orders\"} 2"),
        "{metrics}"
    );
}

#[test]
fn files_changed_without_sighup_are_said_on_the_page_in_the_log_and_the_metrics() {
    let world = World::new();
    let daemon = start(&world, &[]);
    let (_, page) = get(&daemon.address, "/");
    assert!(!page.contains("changed on disk"), "{page}");
    world.edit_activation(|yaml| format!("{yaml}description: edited while the daemon runs\n"));
    let (_, page) = get(&daemon.address, "/");
    assert!(
        page.contains("the configuration files changed on disk since the daemon loaded them")
            && page.contains("orders.yaml")
            && page.contains("SIGHUP"),
        "{page}"
    );
    let (_, metrics) = get(&daemon.address, "/metrics");
    assert!(
        metrics.contains("retl_config_changed_on_disk 1"),
        "{metrics}"
    );
    until("the daemon to log it", || {
        daemon.said().contains("changed on disk")
    });
    // SIGHUP loads them: what runs is what is on disk again.
    let pid = daemon.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    until("the reload", || daemon.said().contains("reload:"));
    let (_, page) = get(&daemon.address, "/");
    assert!(!page.contains("changed on disk"), "{page}");
    let (_, metrics) = get(&daemon.address, "/metrics");
    assert!(
        metrics.contains("retl_config_changed_on_disk 0"),
        "{metrics}"
    );
}

/// The metric families `/metrics` declares (`# TYPE name kind`), with the
/// names their samples take (`_total`, `_bucket`, `_sum`, `_count`).
fn exposed(metrics: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split_whitespace().next().unwrap_or_default();
            for suffix in ["", "_total", "_bucket", "_sum", "_count", "_created"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

#[test]
fn the_grafana_dashboard_and_the_alerting_rules_name_only_metrics_the_daemon_exposes() {
    let world = World::new();
    world.insert(1, 2, None, None);
    world.edit_activation(|yaml| format!("{yaml}schedule:\n  every: 1h\n"));
    let daemon = start(&world, &[]);
    until("the first run", || {
        get(&daemon.address, "/metrics")
            .1
            .contains("retl_runs_total{")
    });
    let exposed = exposed(&get(&daemon.address, "/metrics").1);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/retl-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut queries: Vec<String> = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            queries.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    assert!(queries.len() >= 10, "{queries:?}");
    let rules = std::fs::read_to_string(root.join("deploy/prometheus/retl-rules.yml")).unwrap();
    queries.extend(
        rules
            .lines()
            .filter_map(|l| l.trim().strip_prefix("expr: "))
            .map(str::to_owned),
    );
    for query in &queries {
        let mut named = 0;
        for (at, _) in query.match_indices("retl_") {
            let name: String = query[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                exposed.contains(&name),
                "`{name}` of `{query}` is not in /metrics: {exposed:?}"
            );
            named += 1;
        }
        assert!(
            named > 0 || query.starts_with("up{"),
            "`{query}` names no retl metric"
        );
    }
}
