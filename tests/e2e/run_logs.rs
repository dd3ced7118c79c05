//! Run logs that answer "did this customer get an invitation?": `runs show`
//! by short id, `latest` and outcome; `runs find`; live counts; retention.

use serde_json::Value;

use super::{World, count, json, spawn_held};

/// Two runs: rows 1-3 (row 2 rejected), then rows 4-5.
fn two_runs(world: &World) -> (String, String) {
    world.insert(1, 3, Some(2), None);
    let (_, first) = world.run();
    world.insert(4, 5, None, None);
    let (_, second) = world.run();
    (
        first["run_id"].as_str().unwrap().to_owned(),
        second["run_id"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn runs_show_takes_latest_a_prefix_or_an_ending_and_filters_by_outcome() {
    let world = World::new();
    let (first, second) = two_runs(&world);
    let (code, latest, _) = json(&world, &["runs", "show", "latest", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(latest["run_id"], second.as_str());
    let (_, by_activation, _) = json(
        &world,
        &["runs", "show", "latest", "--activation", "orders", "--json"],
    );
    assert_eq!(by_activation["run_id"], second.as_str());
    // The last characters differ between ids of one day.
    let ending = &first[first.len() - 10..];
    let (code, shown, stderr) = json(&world, &["runs", "show", ending, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(shown["run_id"], first.as_str());
    let prefix = &first[..30];
    let (_, shown, _) = json(&world, &["runs", "show", prefix, "--json"]);
    assert_eq!(shown["run_id"], first.as_str());
    // Both ids start alike: a short prefix is ambiguous, and says which.
    let common: String = first
        .chars()
        .zip(second.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    let (code, _, stderr) = json(&world, &["runs", "show", &common]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("several runs"), "{stderr}");
    assert!(
        stderr.contains(&first) && stderr.contains(&second),
        "{stderr}"
    );
    let (code, _, stderr) = json(&world, &["runs", "show", "ffffffffff"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no run matches"), "{stderr}");

    let (_, rejected, _) = json(
        &world,
        &["runs", "show", &first, "--outcome", "rejected", "--json"],
    );
    let rows = rejected["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["key"], "2");
}

#[test]
fn runs_find_says_whether_when_and_by_which_run_a_row_was_sent() {
    let world = World::new();
    let (first, second) = two_runs(&world);
    let (code, found, stderr) = json(&world, &["runs", "find", "4", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(found["sent"], true);
    assert_eq!(found["sent_run_id"], second.as_str());
    assert!(found["sent_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(found["rows"][0]["status_code"], 202);
    assert_eq!(found["rows"][0]["outcome"], "sent");

    let (_, rejected, _) = json(&world, &["runs", "find", "2", "--json"]);
    assert_eq!(rejected["sent"], false);
    assert_eq!(rejected["rows"][0]["run_id"], first.as_str());
    assert_eq!(rejected["rows"][0]["outcome"], "rejected");
    assert!(
        rejected["rows"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("consumer_email"),
        "{rejected}"
    );

    let (code, nothing, _) = json(&world, &["runs", "find", "no-such-order", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(nothing["sent"], false);
    assert_eq!(nothing["rows"], Value::Array(vec![]));
    let out = world.retl(&["runs", "find", "4"], "emulator-secret");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("was sent at"), "{text}");
    assert!(text.contains(&second), "{text}");
}

#[test]
fn runs_list_filters_by_status_and_age_and_retention_prunes_old_logs() {
    let world = World::new();
    two_runs(&world);
    let (_, completed, _) = json(&world, &["runs", "list", "--status", "completed", "--json"]);
    assert_eq!(completed.as_array().unwrap().len(), 2);
    let (_, failed, _) = json(&world, &["runs", "list", "--status", "failed", "--json"]);
    assert_eq!(failed.as_array().unwrap().len(), 0);
    let (code, _, stderr) = json(&world, &["runs", "list", "--status", "done"]);
    assert_eq!(code, 2, "{stderr}");

    // 200 days later, with run logs kept 180 days: the old runs go, the ledger stays.
    world.edit_activation(|yaml| format!("{yaml}retention:\n  run_logs: 180d\n"));
    world.insert(6, 6, None, None);
    let later = |args: &[&str]| {
        let out = world
            .command(args, "emulator-secret")
            .env("RETL_CLOCK_OFFSET", "200d")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let third = later(&["run", "orders", "--json"]);
    assert_eq!(count(&third, "sent"), 1);
    assert_eq!(
        count(&third, "already_sent"),
        4,
        "the ledger is never pruned"
    );
    let runs = later(&["runs", "list", "--json"]);
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    let recent = later(&["runs", "list", "--since", "2d", "--json"]);
    assert_eq!(recent.as_array().unwrap().len(), 1);
    let (_, found, _) = json(&world, &["runs", "find", "4", "--json"]);
    assert_eq!(found["rows"], Value::Array(vec![]), "its log row went too");
}

#[test]
fn a_running_run_shows_live_counts() {
    let world = World::new();
    world.edit_activation(|yaml| yaml.replace("  primary_key:", "  batch_size: 2\n  primary_key:"));
    world.insert(1, 5, None, None);
    let mut child = spawn_held(&world, "recorded:3", &["--json"]);
    let (_, runs, _) = json(&world, &["runs", "list", "--json"]);
    let run = &runs[0];
    assert_eq!(run["status"], "running");
    assert_eq!(count(run, "sent"), 2, "the first batch's counts: {run}");
    assert_eq!(count(run, "read"), 2);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_reader_that_stops_early_ends_retl_quietly() {
    let world = World::new();
    world.insert(1, 200, None, None);
    assert_eq!(world.run().0, 0);
    let mut child = world
        .command(&["runs", "show", "latest"], "emulator-secret")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -0`: the reader goes away before retl writes a line.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}

#[test]
fn a_customer_is_found_by_email_and_the_state_keeps_no_email_or_name() {
    use retl_trustpilot_emulator::Fault;
    let world = World::new();
    world.insert(1, 5, None, None);
    world
        .emulator()
        .script_faults([None, Some(Fault::BadRequest)]);
    let (code, _) = world.run();
    assert_eq!(code, 0);

    // Asked as a ticket would: mixed case, a stray space.
    let (code, found, stderr) = json(
        &world,
        &[
            "runs",
            "find",
            "--email",
            " Customer1@Shop.Example",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(found["sent"], true, "{found}");
    assert_eq!(found["rows"][0]["reference"], "1");
    assert_eq!(found["rows"][0]["outcome"], "sent");
    let (_, rejected, _) = json(
        &world,
        &[
            "runs",
            "find",
            "--email",
            "customer2@shop.example",
            "--json",
        ],
    );
    assert_eq!(rejected["sent"], false, "{rejected}");
    assert_eq!(rejected["rows"][0]["outcome"], "rejected", "{rejected}");
    let (_, nobody, _) = json(
        &world,
        &["runs", "find", "--email", "nobody@shop.example", "--json"],
    );
    assert_eq!(nobody["rows"].as_array().unwrap().len(), 0);
    let out = world.retl(
        &["runs", "find", "--email", "nobody@shop.example"],
        "emulator-secret",
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("no run logged a row for the email"));

    // Every byte of the state database: no address, no name.
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(world.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("state.db")
        {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(!bytes.is_empty(), "the state database was read");
    let text = String::from_utf8_lossy(&bytes).to_lowercase();
    for i in 1..=5 {
        assert!(
            !text.contains(&format!("customer{i}@shop.example")),
            "email {i} in the state"
        );
        assert!(
            !text.contains(&format!("customer {i}")),
            "name {i} in the state"
        );
    }
}
