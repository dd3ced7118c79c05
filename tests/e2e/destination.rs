//! The Trustpilot destination end to end: every error class through the
//! emulator, pacing, tokens across runs, templates, checks, links, resends.

use std::time::{Duration, Instant};

use retl_trustpilot_emulator::{EmulatorConfig, Fault, RateWindow};
use serde_json::Value;

use super::{Kind, World, count, row_with};

/// Fast retries and a short request timeout, so faults resolve quickly.
const FAST: &str = "request_timeout_seconds: 1\nretry:\n  backoff_ms: 20\n";

fn outcomes(world: &World, summary: &Value) -> Vec<(String, String, Option<String>)> {
    let log = world.show(summary["run_id"].as_str().unwrap());
    let mut rows: Vec<(String, String, Option<String>)> = log["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
                r["reason"].as_str().map(str::to_owned),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn assert_no_duplicates(world: &World) {
    let accepted = world.accepted_references();
    assert!(
        accepted.values().all(|&n| n == 1),
        "a reference number was accepted twice: {accepted:?}"
    );
}

#[test]
fn transient_errors_are_retried_within_the_run() {
    let world = World::new();
    world.write_destination_with(FAST);
    world.insert(1, 4, None, None);
    // Four rows, four faults of the transient kinds, then normal answers.
    world.emulator().script_faults([
        Some(Fault::ServerError),
        Some(Fault::CdnError),
        Some(Fault::CdnForbidden),
        Some(Fault::ServerError),
    ]);
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(count(&summary, "sent"), 4);
    let stats = world.emulator().stats();
    assert_eq!(
        stats.invitation_requests, 8,
        "each fault cost exactly one more request"
    );
    assert_eq!(stats.accepted, 4);
    assert_no_duplicates(&world);
}

/// `retl run orders --json` with the clock `offset` ahead.
fn run_at(world: &World, offset: &str) -> (i32, Value) {
    let out = world
        .command(&["run", "orders", "--json"], "emulator-secret")
        .env("RETL_CLOCK_OFFSET", offset)
        .output()
        .unwrap();
    let summary = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap(), summary)
}

#[test]
fn a_row_that_keeps_failing_is_retried_for_give_up_after_then_given_up_not_rejected() {
    let world = World::new();
    world.write_destination_with(&format!("{FAST}  tries_per_run: 2\n  give_up_after: 1h\n"));
    world.insert(1, 1, None, None);
    world
        .emulator()
        .script_faults([Some(Fault::ServerError); 6]);

    let (code, first) = world.run();
    assert_eq!(code, 3, "{first}");
    assert_eq!(count(&first, "failed"), 1);
    let rows = outcomes(&world, &first);
    assert_eq!(rows[0].1, "failed");
    assert!(
        rows[0].2.as_deref().unwrap().contains("HTTP 500"),
        "{rows:?}"
    );

    // Many runs within the hour: still failed, still retried.
    let (code, second) = run_at(&world, "30m");
    assert_eq!(code, 3, "{second}");
    assert_eq!(count(&second, "failed"), 1, "{second}");

    // An hour after the first failure: given up, never `rejected`.
    let (code, third) = run_at(&world, "61m");
    assert_eq!(code, 3, "a run that gives rows up needs attention: {third}");
    assert_eq!(count(&third, "given_up"), 1, "{third}");
    assert_eq!(count(&third, "rejected"), 0, "{third}");
    let rows = outcomes(&world, &third);
    assert_eq!(rows[0].1, "given_up");
    let reason = rows[0].2.as_deref().unwrap();
    assert!(
        reason.starts_with("given up after failing for 1h") && reason.contains("--given-up"),
        "{reason}"
    );
    assert_eq!(world.emulator().stats().invitation_requests, 6);

    let (code, fourth) = run_at(&world, "2h");
    assert_eq!(code, 0, "{fourth}");
    assert_eq!(
        count(&fourth, "new"),
        0,
        "given up is not retried on its own: {fourth}"
    );
    assert_eq!(world.emulator().stats().invitation_requests, 6);

    // The outage is over: a resend of the given-up rows sends them.
    let run_id = third["run_id"].as_str().unwrap();
    let out = world
        .command(
            &["runs", "resend", run_id, "--given-up", "--json"],
            "emulator-secret",
        )
        .env("RETL_CLOCK_OFFSET", "3h")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resent: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(count(&resent, "sent"), 1, "{resent}");
    assert_eq!(world.emulator().stats().accepted, 1);
    assert_no_duplicates(&world);
}

#[test]
fn retry_max_attempts_is_refused_with_its_replacement() {
    let world = World::new();
    world.write_destination_with(&format!("{FAST}  max_attempts: 5\n"));
    let out = world.retl(&["check"], "emulator-secret");
    assert_eq!(out.status.code(), Some(2));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("retry.max_attempts") && said.contains("retry.give_up_after"),
        "{said}"
    );
}

#[test]
fn trustpilots_400_rejects_the_row_with_its_details_and_correlation_id() {
    let world = World::new();
    world.write_destination_with(FAST);
    world.insert(1, 2, None, None);
    world.emulator().script_faults([Some(Fault::BadRequest)]);
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(
        (count(&summary, "sent"), count(&summary, "rejected")),
        (1, 1)
    );
    let log = world.show(summary["run_id"].as_str().unwrap());
    let rejected = row_with(&log, "rejected");
    assert_eq!(rejected["status_code"], 400);
    assert_eq!(rejected["error_code"], "1001");
    assert!(rejected["correlation_id"].is_string());
    assert!(
        rejected["reason"]
            .as_str()
            .unwrap()
            .contains("product catalogue")
    );
    assert_eq!(
        world.emulator().stats().invitation_requests,
        2,
        "a 400 is not retried"
    );
}

#[test]
fn a_request_that_may_have_arrived_is_uncertain_and_never_resent_by_itself() {
    let world = World::new();
    world.write_destination_with(FAST);
    world.insert(1, 3, None, None);
    world
        .emulator()
        .script_faults([Some(Fault::AcceptThenHang), Some(Fault::Drop)]);
    let started = Instant::now();
    let (code, first) = world.run();
    assert_eq!(code, 3, "{first}");
    assert_eq!((count(&first, "sent"), count(&first, "uncertain")), (1, 2));
    assert!(started.elapsed() < Duration::from_secs(20));
    let uncertain: Vec<_> = outcomes(&world, &first)
        .into_iter()
        .filter(|r| r.1 == "uncertain")
        .collect();
    assert_eq!(uncertain.len(), 2);

    let (code, second) = world.run();
    assert_eq!(code, 0, "{second}");
    assert_eq!(count(&second, "new"), 0);
    assert_eq!(count(&second, "already_sent"), 3);
    assert_eq!(
        world.emulator().stats().invitation_requests,
        3,
        "nothing resent automatically"
    );
    // The hung request was stored, the dropped one was not.
    assert_eq!(world.emulator().invitations().len(), 2);

    // Resending on purpose needs a confirmation.
    let run_id = first["run_id"].as_str().unwrap();
    let refused = world.retl(
        &["runs", "resend", run_id, "--uncertain"],
        "emulator-secret",
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    let resent = world.retl(
        &["runs", "resend", run_id, "--uncertain", "--yes", "--json"],
        "emulator-secret",
    );
    assert_eq!(
        resent.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&resent.stderr)
    );
    let summary: Value = serde_json::from_slice(&resent.stdout).unwrap();
    assert_eq!(count(&summary, "sent"), 2);
    assert_eq!(world.emulator().stats().invitation_requests, 5);
}

#[test]
fn an_unknown_business_unit_stops_the_run_as_a_configuration_error() {
    let world = World::new();
    world.write_destination_with(FAST);
    world.write(
        "destinations/trustpilot.yaml",
        &std::fs::read_to_string(world.config_dir().join("destinations/trustpilot.yaml"))
            .unwrap()
            .replace(
                "business_unit_id: bu-emulator",
                "business_unit_id: bu-unknown",
            ),
    );
    world.insert(1, 6, None, None);
    let (code, summary) = world.run();
    assert_eq!(code, 2, "{summary}");
    assert_eq!(count(&summary, "failed"), 0);
    assert_eq!(count(&summary, "sent"), 0);
    assert!(
        summary["error"].as_str().unwrap().contains("HTTP 404"),
        "{summary}"
    );
    assert!(
        world.emulator().stats().invitation_requests <= 4,
        "no request after the stop"
    );
}

#[test]
fn rate_limited_requests_wait_and_are_not_counted_as_failures() {
    let config = EmulatorConfig {
        retry_after: Some(1),
        ..EmulatorConfig::default()
    };
    let world = World::with_emulator(Kind::Sqlite, config).unwrap();
    world.write_destination_with(&format!("{FAST}  tries_per_run: 1\n"));
    world.insert(1, 3, None, None);
    world
        .emulator()
        .script_faults([Some(Fault::TooManyRequests); 3]);
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(count(&summary, "sent"), 3);
    assert_eq!(world.emulator().stats().invitation_requests, 6);
    assert_no_duplicates(&world);
}

#[test]
fn a_backlog_is_paced_under_the_rate_limits_without_429s() {
    let config = EmulatorConfig {
        rate_limits: vec![RateWindow {
            limit: 5,
            window: Duration::from_secs(1),
        }],
        ..EmulatorConfig::default()
    };
    let world = World::with_emulator(Kind::Sqlite, config).unwrap();
    world.write_destination_with(
        "rate_limits:\n  - { requests: 5, per_seconds: 1 }\nconcurrency: 8\n",
    );
    world.insert(1, 16, None, None);
    let started = Instant::now();
    let (code, summary) = world.run();
    let elapsed = started.elapsed();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(count(&summary, "sent"), 16);
    assert_eq!(
        world.emulator().stats().rate_limited,
        0,
        "pacing keeps under the window"
    );
    assert!(
        elapsed >= Duration::from_secs(3),
        "16 calls at 5/s take 3 s or more: {elapsed:?}"
    );
}

#[test]
fn the_token_is_reused_across_runs() {
    let world = World::new();
    world.insert(1, 1, None, None);
    world.run();
    world.insert(2, 2, None, None);
    world.run();
    assert_eq!(world.emulator().stats().tokens_issued, 1);
    let tokens = std::fs::read_dir(world.dir.path().join("tokens"))
        .unwrap()
        .count();
    assert_eq!(tokens, 1);
}

#[test]
fn templates_are_listed_and_check_confirms_the_destination() {
    let world = World::new();
    let out = world.retl(&["templates", "trustpilot", "--json"], "emulator-secret");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let templates: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(templates[0]["id"], "507f191e810c19729de860ea");
    assert_eq!(templates[0]["isDefaultTemplate"], true);
    let text = world.retl(&["templates", "trustpilot"], "emulator-secret");
    assert!(String::from_utf8_lossy(&text.stdout).starts_with("ID"));
    let unknown = world.retl(
        &["templates", "trustpilot", "--business-unit", "bu-nope"],
        "emulator-secret",
    );
    assert_eq!(unknown.status.code(), Some(2));

    world.write_destination_with("");
    let destination =
        std::fs::read_to_string(world.config_dir().join("destinations/trustpilot.yaml")).unwrap();
    world.write(
        "destinations/trustpilot.yaml",
        &destination.replace(
            "  sender_name: E2E Shop\n",
            "  sender_name: E2E Shop\n  service: { template_id: no-such-template }\n",
        ),
    );
    let out = world.retl(&["check"], "emulator-secret");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains(
            "destination trustpilot: business unit `bu-emulator` has no template `no-such-template`"
        ),
        "{stdout}"
    );

    let wrong = world.retl(&["check"], "wrong-secret");
    let stdout = String::from_utf8_lossy(&wrong.stdout);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(stdout.contains("invalid_client"), "{stdout}");
}

#[test]
fn invitation_links_are_created_logged_and_written_back() {
    let world = World::new();
    world.sql("ALTER TABLE orders ADD COLUMN review_link TEXT");
    world.insert(1, 3, None, None);
    world.write(
        "activations/orders.yaml",
        &format!(
            "source:\n  connection: {}\n  table: orders\ndestination: trustpilot\ntarget:\n  kind: invitation_link\n  service: {{ redirect_uri: https://shop.example/thanks }}\nmapping:\n  reference_number: order_id\n  consumer_name: full_name\n  consumer_email: email\n  locale: locale\nwriteback:\n  table: orders\n  key_column: order_id\n  url_column: review_link\n",
            world.connection()
        ),
    );
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(count(&summary, "sent"), 3);
    let log = world.show(summary["run_id"].as_str().unwrap());
    let row = &log["rows"][0];
    assert!(
        row["link_url"]
            .as_str()
            .unwrap()
            .starts_with("https://www.trustpilot.com/evaluate-link/")
    );
    assert!(row["reason"].is_null(), "{row}");
    let stored = world.emulator().invitations();
    assert_eq!(stored[0].kind, "link");
    assert_eq!(stored[0].body["redirectUri"], "https://shop.example/thanks");
    assert!(stored[0].body["referenceId"].is_string());
    assert!(stored[0].body.get("referenceNumber").is_none());
    // The links are in the warehouse, for the business's own email tool.
    let url = format!("sqlite://{}", world.warehouse().display());
    let links: Vec<(i64, Option<String>)> = world.runtime.block_on(async {
        use sqlx::ConnectOptions as _;
        use std::str::FromStr as _;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        sqlx::query_as("SELECT order_id, review_link FROM orders ORDER BY order_id")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    });
    assert!(
        links
            .iter()
            .all(|(_, link)| link.as_deref().is_some_and(|l| l.contains("evaluate-link"))),
        "{links:?}"
    );
    // The writeback itself changes no mapped column, so the next run sends nothing.
    let (_, again) = world.run();
    assert_eq!(count(&again, "sent"), 0);
}

#[test]
fn plain_http_to_another_host_is_refused_unless_allowed() {
    let world = World::new();
    let destination =
        std::fs::read_to_string(world.config_dir().join("destinations/trustpilot.yaml")).unwrap();
    let remote = destination.replace(&world.emulator().url(), "http://trustpilot.example.com");
    world.write("destinations/trustpilot.yaml", &remote);
    let out = world.retl(&["run", "orders"], "emulator-secret");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("plain http"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    world.write(
        "destinations/trustpilot.yaml",
        &format!("{remote}allow_insecure_http: true\n"),
    );
    let out = world.retl(&["check", "orders"], "emulator-secret");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("plain http"));
}

#[test]
fn many_concurrent_requests_never_starve_the_state_database() {
    let config = EmulatorConfig {
        latency: Duration::from_millis(10),
        ..EmulatorConfig::default()
    };
    let world = World::with_emulator(Kind::Sqlite, config).unwrap();
    world.write_destination_with("rate_limits: []\nconcurrency: 16\n");
    world.insert(1, 300, None, None);
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(count(&summary, "sent"), 300);
    assert_no_duplicates(&world);
}

#[test]
fn check_points_at_an_activations_unknown_template_id_and_suggests_the_closest() {
    let world = World::new();
    world.edit_activation(|yaml| {
        format!("{yaml}target:\n  service:\n    template_id: 507f191e810c19729de860ec\n")
    });
    let out = world.retl(&["check", "--json"], "emulator-secret");
    assert_eq!(out.status.code(), Some(2));
    let checked: Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = checked["activations"][0]["problems"].to_string();
    let line = std::fs::read_to_string(world.config_dir().join("activations/orders.yaml"))
        .unwrap()
        .lines()
        .position(|l| l.contains("template_id:"))
        .unwrap()
        + 1;
    assert!(
        problems.contains(&format!("activations/orders.yaml:{line}:"))
            && problems.contains("target.service.template_id: business unit `bu-emulator` has no template `507f191e810c19729de860ec`; did you mean `507f191e810c19729de860e"),
        "{problems}"
    );
    assert_eq!(
        checked["destinations"][0]["problems"],
        serde_json::json!([]),
        "said once, at the activation"
    );
    // And the emulator, like Trustpilot, refuses the invitation.
    world.insert(1, 1, None, None);
    let (code, summary) = world.run();
    assert_eq!((code, count(&summary, "rejected")), (0, 1), "{summary}");
}
