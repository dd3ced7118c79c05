//! Safe by default: the state follows the project, not the working directory.

use std::process::Command;

use super::{World, count, row_with};

#[test]
fn runs_started_from_two_directories_share_the_projects_state_and_send_nothing_twice() {
    let world = World::new();
    world.insert(1, 5, None, None);
    let run_from = |cwd: &std::path::Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_retl"))
            .current_dir(cwd)
            .arg("--config-dir")
            .arg(world.config_dir())
            .args(["run", "orders", "--json"])
            .env("TP_KEY", "emulator-key")
            .env("TP_SECRET", "emulator-secret")
            .env_remove("RETL_STATE_URL")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let (home, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = run_from(home.path());
    assert_eq!(count(&first, "sent"), 5);
    let second = run_from(elsewhere.path());
    assert_eq!(
        count(&second, "sent"),
        0,
        "the second directory found the same ledger"
    );
    assert_eq!(count(&second, "already_sent"), 5);
    // The state is the project's: beside the configuration directory.
    let project = world.config_dir().parent().unwrap().to_path_buf();
    assert!(project.join(".retl/state.db").is_file());
    assert!(!home.path().join(".retl").exists() && !elsewhere.path().join(".retl").exists());
    assert_eq!(
        second["state"],
        format!("sqlite://{}", project.join(".retl/state.db").display())
    );
    assert_eq!(world.accepted_references().len(), 5);
}

#[test]
fn the_state_url_in_a_summary_hides_its_password() {
    let world = World::new();
    let out = world
        .command(&["run", "orders", "--json"], "emulator-secret")
        .args(["--state", "postgres://retl:pw-secret@127.0.0.1:1/state"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("postgres://retl:***@127.0.0.1:1/state"),
        "{stderr}"
    );
    assert!(!stderr.contains("pw-secret"), "{stderr}");
}

#[test]
fn a_send_time_in_the_past_is_left_out_and_the_run_log_says_so() {
    let world = World::new();
    world.sql("ALTER TABLE orders ADD COLUMN send_at TEXT");
    world.insert(1, 2, None, None);
    world.sql("UPDATE orders SET send_at = '2020-01-01 09:00:00' WHERE order_id = 1");
    world.sql("UPDATE orders SET send_at = '2999-01-01 09:00:00' WHERE order_id = 2");
    world.edit_activation(|yaml| {
        yaml.replace(
            "  locale: locale\n",
            "  locale: locale\n  preferred_send_time: send_at\n",
        )
    });
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(count(&summary, "sent"), 2);
    let bodies = world.bodies();
    assert!(
        bodies["1"]["serviceReviewInvitation"]
            .get("preferredSendTime")
            .is_none(),
        "{}",
        bodies["1"]
    );
    assert_eq!(
        bodies["2"]["serviceReviewInvitation"]["preferredSendTime"],
        "2999-01-01T09:00:00"
    );
    let log = world.show(summary["run_id"].as_str().unwrap());
    let first = log["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "1")
        .unwrap()
        .clone();
    assert_eq!(first["outcome"], "sent");
    assert_eq!(
        first["reason"],
        "preferred_send_time 2020-01-01T09:00:00 is in the past: left out, the invitation goes out at once"
    );
}

#[test]
fn an_empty_setting_and_a_product_link_are_configuration_errors() {
    let world = World::new();
    world.insert(1, 1, None, None);
    world.write_destination_with("  reply_to: \"\"\n");
    let out = world.retl(&["run", "orders"], "emulator-secret");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("defaults.reply_to: must not be empty"),
        "{stderr}"
    );

    world.write_destination_with("");
    world.edit_activation(|yaml| yaml.replace(
            "destination: trustpilot\n",
            "destination: trustpilot\ntarget:\n  kind: invitation_link\n  invitation_type: both\n  product: { skus: [SKU-1] }\n",
        ));
    let out = world.retl(&["run", "orders"], "emulator-secret");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invitation links are service links only"),
        "{stderr}"
    );
    assert!(world.emulator().invitations().is_empty());
}

/// The world's activation without its explicit `first_run: send_all`.
fn unguarded(world: &World) {
    world.edit_activation(|yaml| yaml.replace("first_run: send_all\n", ""));
}

#[test]
fn a_large_first_run_without_first_run_sends_nothing_and_says_how_to_go_on() {
    let world = World::new();
    unguarded(&world);
    world.insert(1, 101, None, None);
    let (code, summary) = world.run();
    assert_eq!(code, 5, "{summary}");
    let error = summary["error"].as_str().unwrap();
    for needed in [
        "101 rows",
        "limits.first_run_max (100)",
        "first_run: send_all",
        "first_run: skip_existing",
        "--limit",
    ] {
        assert!(error.contains(needed), "{needed}: {error}");
    }
    assert!(world.emulator().invitations().is_empty(), "nothing sent");
    // A refusal is a status of its own, with its reason, not a failure.
    assert_eq!(summary["status"], "refused", "{summary}");
    let out = world.retl(&["runs", "list", "--status", "refused"], "emulator-secret");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("REASON"), "{listed}");
    assert!(listed.contains("refused"), "{listed}");
    assert!(listed.contains("it would send 101 rows"), "{listed}");
    let out = world.retl(
        &["runs", "list", "--status", "failed", "--json"],
        "emulator-secret",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    // A canary goes, and so does a first run under the limit.
    let out = world.retl(
        &["run", "orders", "--limit", "10", "--json"],
        "emulator-secret",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let canary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(count(&canary, "sent"), 10);
    assert_eq!(
        count(&canary, "skipped"),
        91,
        "the rest wait for later runs"
    );
    let (code, rest) = world.run();
    assert_eq!(code, 0, "{rest}");
    assert_eq!(
        count(&rest, "sent"),
        91,
        "a completed run ends the first run"
    );
    assert_eq!(world.accepted_references().len(), 101);
}

#[test]
fn caps_per_run_and_per_day_skip_the_rest_for_later() {
    let world = World::new();
    world.insert(1, 12, None, None);
    world.write_destination_with("limits: {max_per_day: 8}\n");
    world.edit_activation(|yaml| {
        format!(
            "{yaml}limits: {{max_per_run: 5}}
"
        )
    });
    let (code, first) = world.run();
    assert_eq!(code, 0, "{first}");
    assert_eq!(count(&first, "sent"), 5);
    assert_eq!(count(&first, "skipped"), 7);
    let log = world.show(first["run_id"].as_str().unwrap());
    let skipped = row_with(&log, "skipped");
    assert!(
        skipped["reason"]
            .as_str()
            .unwrap()
            .starts_with("cap: limits.max_per_run (5)"),
        "{skipped}"
    );
    let (_, second) = world.run();
    assert_eq!(
        count(&second, "sent"),
        3,
        "8 a day, 5 already today: {second}"
    );
    let log = world.show(second["run_id"].as_str().unwrap());
    assert!(log["rows"].as_array().unwrap().iter().any(|r| {
        r["reason"]
            .as_str()
            .is_some_and(|reason| reason.starts_with("cap: limits.max_per_day (8)"))
    }));
    assert_eq!(world.accepted_references().len(), 8);
}

#[test]
fn resend_rejected_sends_only_the_released_rows_and_says_when_there_is_nothing() {
    use retl_trustpilot_emulator::Fault;
    let world = World::new();
    world.write_destination_with("concurrency: 1\nrate_limits: []\n");
    world.insert(1, 3, None, None);
    // Trustpilot refuses the first request (a SKU missing from its catalogue, say).
    world.emulator().script_faults([Some(Fault::BadRequest)]);
    let (code, first) = world.run();
    assert_eq!(code, 0, "{first}");
    assert_eq!(count(&first, "rejected"), 1);
    let run_id = first["run_id"].as_str().unwrap().to_owned();
    // The catalogue is fixed; meanwhile two new orders arrive.
    world.insert(4, 5, None, None);
    let out = world.retl(
        &["runs", "resend", &run_id, "--rejected", "--json"],
        "emulator-secret",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let resent: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(count(&resent, "sent"), 1, "only the released row: {resent}");
    assert_eq!(count(&resent, "skipped"), 2, "the new rows wait: {resent}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("released 1 rejected row(s)"), "{stderr}");
    // Again: nothing left to release.
    let again = world.retl(
        &["runs", "resend", &run_id, "--rejected"],
        "emulator-secret",
    );
    assert_eq!(again.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("nothing to resend"),
        "{again:?}"
    );
    let (code, rest) = world.run();
    assert_eq!(code, 0, "{rest}");
    assert_eq!(count(&rest, "sent"), 2);
    let accepted = world.accepted_references();
    assert_eq!(accepted.len(), 5);
    assert!(accepted.values().all(|&n| n == 1));
    // A run with no rejected rows: nothing to do at all.
    let rest_id = rest["run_id"].as_str().unwrap();
    let none = world.retl(
        &["runs", "resend", rest_id, "--rejected"],
        "emulator-secret",
    );
    assert_eq!(none.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&none.stdout).contains("nothing to resend"));
}
