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
    // New rows wait for the read's end (a repeated key sends nothing): all
    // five were read, and three are recorded sent when the run holds.
    assert_eq!(count(run, "read"), 5, "{run}");
    assert_eq!(count(run, "sent"), 3, "the counts so far: {run}");
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
    // One request at a time: the second row is the one the fault refuses.
    world.write_destination_with("concurrency: 1\n");
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

#[test]
fn forget_asks_trustpilot_then_erases_the_persons_traces_and_keeps_the_ledger() {
    use retl_trustpilot_emulator::Fault;
    let world = World::new();
    world.write_destination_with("concurrency: 1\n");
    world.insert(1, 3, None, None);
    world
        .emulator()
        .script_faults([None, Some(Fault::BadRequest)]);
    assert_eq!(world.run().0, 0);

    let (code, dry, stderr) = json(
        &world,
        &[
            "forget",
            "--email",
            "customer1@shop.example",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(dry["rows_erased"], 1, "{dry}");
    assert_eq!(
        dry["destinations"][0]["business_units"][0]["id"],
        "bu-emulator"
    );
    assert!(
        world.emulator().deletions().is_empty(),
        "a dry run asks nothing"
    );

    let (code, done, stderr) = json(
        &world,
        &["forget", "--email", "Customer1@shop.example", "--json"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(done["rows_erased"], 1);
    assert_eq!(done["destinations"][0]["business_units"][0]["status"], 200);
    assert_eq!(
        world.emulator().deletions(),
        [
            serde_json::json!({"customerEmails": ["Customer1@shop.example", "customer1@shop.example"]})
        ]
    );
    assert!(
        !world.accepted_references().contains_key("1"),
        "Trustpilot deleted it"
    );
    // No row of hers is left; finding her by email says she was forgotten.
    let (_, found, _) = json(
        &world,
        &[
            "runs",
            "find",
            "--email",
            "customer1@shop.example",
            "--json",
        ],
    );
    assert_eq!(found["rows"].as_array().unwrap().len(), 0, "{found}");
    assert!(found["forgotten_at"].is_string(), "{found}");
    let (_, by_reference, _) = json(&world, &["runs", "find", "1", "--json"]);
    assert_eq!(
        by_reference["rows"].as_array().unwrap().len(),
        0,
        "{by_reference}"
    );
    // The ledger still stops a second invitation.
    let (code, again) = world.run();
    assert_eq!((code, count(&again, "already_sent")), (0, 2), "{again}");
    assert_eq!(count(&again, "sent"), 0);
    // A later order of hers is suppressed; finding her says she was
    // forgotten, when, and that her keys stay settled: not "never sent".
    world.insert(9, 9, None, None);
    world.sql("UPDATE orders SET email = 'customer1@shop.example' WHERE order_id = 9");
    assert_eq!(count(&world.run().1, "suppressed"), 1);
    let out = world.retl(
        &["runs", "find", "--email", "customer1@shop.example"],
        "emulator-secret",
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("was forgotten on") && said.contains("stay settled"),
        "{said}"
    );
    assert!(!said.contains("never sent"), "{said}");
}

#[test]
fn forget_with_credentials_that_cannot_delete_is_a_configuration_error() {
    let world = World::new();
    world.insert(1, 1, None, None);
    assert_eq!(world.run().0, 0);
    let path = world.config_dir().join("destinations/trustpilot.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            "business_user_id: user-emulator",
            "business_user_id: someone-else",
        ),
    )
    .unwrap();
    let out = world.retl(
        &["forget", "--email", "customer1@shop.example"],
        "emulator-secret",
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was erased"));
    let (_, found, _) = json(
        &world,
        &[
            "runs",
            "find",
            "--email",
            "customer1@shop.example",
            "--json",
        ],
    );
    assert_eq!(
        found["rows"].as_array().unwrap().len(),
        1,
        "still findable: {found}"
    );
}

#[test]
fn personal_data_older_than_its_retention_is_scrubbed() {
    use retl_trustpilot_emulator::Fault;
    let world = World::new();
    world.edit_activation(|yaml| format!("{yaml}retention:\n  personal_data: 90d\n"));
    world.insert(1, 2, None, None);
    world.emulator().script_faults([Some(Fault::BadRequest)]);
    let (_, first) = world.run();
    let run_id = first["run_id"].as_str().unwrap().to_owned();
    let rejected = |world: &World| {
        let (_, shown, _) = json(world, &["runs", "show", &run_id, "--json"]);
        shown["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["outcome"] == "rejected")
            .cloned()
            .unwrap()
    };
    assert!(rejected(&world)["reason"].is_string());
    let out = world
        .command(&["run", "orders", "--json"], "emulator-secret")
        .env("RETL_CLOCK_OFFSET", "91d")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let row = rejected(&world);
    assert!(
        row["reason"].is_null() && row["correlation_id"].is_null(),
        "{row}"
    );
}

#[test]
fn a_mapping_change_is_not_a_data_change() {
    let world = World::new();
    world.insert(1, 30, None, None);
    assert_eq!(count(&world.run().1, "sent"), 30);
    // `locale` leaves the mapping: every content hash changes, no customer's data.
    world.edit_activation(|yaml| yaml.replace("  locale: locale\n", ""));
    let (code, reshaped) = world.run();
    assert_eq!(code, 0, "{reshaped}");
    assert_eq!(count(&reshaped, "ignored_changed"), 0, "{reshaped}");
    assert_eq!(count(&reshaped, "already_sent"), 30);
    assert_eq!(count(&reshaped, "reshaped"), 30);
    let run_id = reshaped["run_id"].as_str().unwrap();
    let (_, shown, _) = json(&world, &["runs", "show", run_id, "--json"]);
    assert_eq!(
        shown["rows"].as_array().unwrap().len(),
        0,
        "nothing logged per row: {shown}"
    );
    let out = world.retl(&["runs", "show", run_id], "emulator-secret");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("the mapping changed since the last run: 30 rows")
    );

    // A real change afterwards is logged as before.
    world.sql("UPDATE orders SET full_name = 'Renamed' WHERE order_id = 5");
    let (_, changed) = world.run();
    assert_eq!(count(&changed, "ignored_changed"), 1, "{changed}");
    assert_eq!(count(&changed, "reshaped"), 0);
    assert_eq!(
        world.accepted_references().len(),
        30,
        "nobody invited twice"
    );
}
