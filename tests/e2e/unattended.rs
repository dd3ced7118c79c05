//! Left alone for weeks: a surge guard that refuses a rebuilt model and
//! nothing else, refusals a person can approve, and rows held back that say
//! so.

use super::{World, count, json};

/// `retl run orders --json` (plus `extra`): exit code, summary, stderr.
fn run(world: &World, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut args = vec!["run", "orders", "--json"];
    args.extend_from_slice(extra);
    json(world, &args)
}

#[test]
fn a_busy_hour_after_quiet_runs_is_sent_not_refused() {
    let world = World::new();
    world.edit_activation(|yaml| yaml.replace("first_run: send_all", "first_run: skip_existing"));
    world.insert(1, 9_700, None, None);
    let (code, first, stderr) = run(&world, &[]);
    assert_eq!((code, count(&first, "baseline")), (0, 9_700), "{stderr}");
    for _ in 0..5 {
        let (code, quiet, stderr) = run(&world, &[]);
        assert_eq!((code, count(&quiet, "new")), (0, 0), "{stderr}");
    }
    // 300 new orders in a table of 10,000: a busy hour, not a rebuilt model.
    world.insert(9_701, 10_000, None, None);
    let (code, busy, stderr) = run(&world, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&busy, "sent"), 300, "{busy}");
}

#[test]
fn a_rebuilt_model_is_refused_with_the_real_numbers_and_can_be_approved_once() {
    let world = World::new();
    world.insert(1, 20, None, None);
    assert_eq!(run(&world, &[]).0, 0);
    world.insert(21, 30, None, None);
    assert_eq!(count(&run(&world, &[]).1, "sent"), 10);
    // The model is rebuilt: every key is new.
    world.sql("DELETE FROM orders");
    world.insert(5_001, 5_400, None, None);
    let (code, refused, stderr) = run(&world, &[]);
    assert_eq!(code, 5, "{stderr}");
    for said in [
        "400 new rows",
        "100% of the 400 rows",
        "limits.surge_share, 50%",
        "more than 200",
        "limits.surge_factor (10) times the median 20 sent by its last 2 run(s)",
        "retl approve orders",
        "limits.surge: off",
    ] {
        assert!(stderr.contains(said), "`{said}` in: {stderr}");
    }
    assert_eq!(
        world.accepted_references().len(),
        30,
        "nothing more went out"
    );
    assert_eq!(count(&refused, "skipped"), 400, "{refused}");

    // A held-back order says it is pending, and why.
    let (_, found, _) = json(&world, &["runs", "find", "5001", "--json"]);
    let row = &found["rows"][0];
    assert_eq!(row["outcome"], "skipped", "{found}");
    let reason = row["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("pending: held back") && reason.contains("retl approve orders"),
        "{reason}"
    );

    let run_id = refused["run_id"].as_str().unwrap();
    let (code, approval, stderr) = json(
        &world,
        &[
            "approve", "orders", "--run", run_id, "--by", "alice", "--json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(approval["approved_by"], "alice");
    assert_eq!(approval["refused_run"], run_id);

    let (code, approved, stderr) = run(&world, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&approved, "sent"), 400, "{approved}");

    // Once: the next rebuild is refused again.
    world.sql("DELETE FROM orders");
    world.insert(8_001, 8_400, None, None);
    assert_eq!(run(&world, &[]).0, 5);
    assert_eq!(world.accepted_references().len(), 430);
}

#[test]
fn approving_a_run_that_was_not_refused_is_a_usage_error() {
    let world = World::new();
    world.insert(1, 2, None, None);
    let (_, summary, _) = run(&world, &[]);
    let run_id = summary["run_id"].as_str().unwrap();
    let out = world.retl(&["approve", "orders", "--run", run_id], "emulator-secret");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("was not refused"));
}

#[test]
fn an_approval_answers_a_refusal_and_is_refused_when_nothing_was_refused() {
    let world = World::new();
    world.insert(1, 2, None, None);
    assert_eq!(run(&world, &[]).0, 0);
    // Nothing was refused: no approval is left open to let a surge through.
    let out = world.retl(&["approve", "orders"], "emulator-secret");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("nothing to approve") && said.contains("--ahead"),
        "{said}"
    );
    let (_, check, _) = json(&world, &["check", "--json"]);
    assert_eq!(
        check["activations"][0]["approval"],
        serde_json::Value::Null,
        "{check}"
    );
    // The model is rebuilt and refused; `retl approve` answers that refusal.
    world.sql("DELETE FROM orders");
    world.insert(5_001, 5_400, None, None);
    let (code, refused, _) = run(&world, &[]);
    assert_eq!(code, 5);
    let (code, approval, stderr) = json(&world, &["approve", "orders", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(approval["refused_run"], refused["run_id"], "{approval}");
    assert_eq!(approval["expires_at"], serde_json::Value::Null);
}

#[test]
fn an_approval_ahead_expires_is_shown_everywhere_and_can_be_revoked() {
    let world = World::new();
    world.insert(1, 2, None, None);
    assert_eq!(run(&world, &[]).0, 0);
    // No $USER: who approved is the operating system's user, never "unknown".
    let out = world
        .command(
            &["approve", "orders", "--ahead", "--for", "2h", "--json"],
            "emulator-secret",
        )
        .env_remove("USER")
        .env_remove("LOGNAME")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let approval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let by = approval["approved_by"].as_str().unwrap();
    assert!(!by.is_empty() && by != "unknown", "{approval}");
    assert_eq!(approval["refused_run"], serde_json::Value::Null);
    assert!(approval["expires_at"].is_string(), "{approval}");
    let (_, check, _) = json(&world, &["check", "--json"]);
    assert_eq!(
        check["activations"][0]["approval"]["approved_by"], by,
        "{check}"
    );
    let human = world.retl(&["check"], "emulator-secret");
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(human.contains("approval: open, by"), "{human}");
    let (_, preview, _) = json(&world, &["preview", "orders", "--json"]);
    assert_eq!(preview["approval"]["approved_by"], by, "{preview}");
    // Unused for more than 2h, it expired.
    let later = world
        .command(&["preview", "orders", "--json"], "emulator-secret")
        .env("RETL_CLOCK_OFFSET", "3h")
        .output()
        .unwrap();
    let later: serde_json::Value = serde_json::from_slice(&later.stdout).unwrap();
    assert_eq!(later["approval"], serde_json::Value::Null, "{later}");
    // Revoked, it is gone; a second revoke has nothing to withdraw.
    let (code, revoked, stderr) = json(&world, &["approve", "orders", "--revoke", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(revoked["approved_by"], by);
    let (_, check, _) = json(&world, &["check", "--json"]);
    assert_eq!(check["activations"][0]["approval"], serde_json::Value::Null);
    let out = world.retl(&["approve", "orders", "--revoke"], "emulator-secret");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to revoke"));
}

#[test]
fn a_canary_then_the_next_scheduled_run_is_not_a_surge() {
    let world = World::new();
    // No first_run: the first-run guard asks for a choice; a canary is one.
    world.edit_activation(|yaml| yaml.replace("first_run: send_all\n", ""));
    world.insert(1, 500, None, None);
    let (code, _, stderr) = run(&world, &[]);
    assert_eq!(code, 5, "the first-run guard: {stderr}");
    let (code, canary, stderr) = run(&world, &["--limit", "5"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        (count(&canary, "sent"), count(&canary, "skipped")),
        (5, 495)
    );
    let (code, next, stderr) = run(&world, &[]);
    assert_eq!(
        code, 0,
        "the rows the canary left for later are expected: {stderr}"
    );
    assert_eq!(count(&next, "sent"), 495);
}

#[test]
fn the_surge_guard_can_be_switched_off() {
    let world = World::new();
    world.edit_activation(|yaml| format!("{yaml}limits:\n  surge: off\n"));
    world.insert(1, 3, None, None);
    assert_eq!(run(&world, &[]).0, 0);
    world.insert(100, 400, None, None);
    let (code, summary, stderr) = run(&world, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&summary, "sent"), 301);
}

#[test]
fn check_tells_the_schedule_the_next_run_and_whether_a_guard_would_refuse_it() {
    let world = World::new();
    world.edit_activation(|yaml| {
        format!(
            "{}schedule:\n  every: 15m\n",
            yaml.replace("first_run: send_all\n", "")
        )
    });
    world.insert(1, 500, None, None);
    let (_, checked, stderr) = json(&world, &["check", "orders", "--json"]);
    let activation = &checked["activations"][0];
    assert_eq!(activation["schedule"], "every 15m", "{checked}");
    assert!(activation["next_run"].is_string(), "{checked} {stderr}");
    let refused = activation["next_run_refused"].as_str().unwrap_or_default();
    assert!(refused.contains("limits.first_run_max (100)"), "{checked}");

    // After a canary and the rest, nothing would be refused; a rebuild would.
    assert_eq!(run(&world, &["--limit", "5"]).0, 0);
    assert_eq!(run(&world, &[]).0, 0);
    let (_, checked, _) = json(&world, &["check", "orders", "--json"]);
    assert_eq!(
        checked["activations"][0]["next_run_refused"],
        serde_json::Value::Null,
        "{checked}"
    );
    world.sql("DELETE FROM orders");
    world.insert(10_001, 16_000, None, None);
    let (_, checked, _) = json(&world, &["check", "orders", "--json"]);
    let refused = checked["activations"][0]["next_run_refused"]
        .as_str()
        .unwrap_or_default();
    assert!(
        refused.contains("6000 new rows") && refused.contains("surge"),
        "{checked}"
    );
    let out = world.retl(&["check", "orders"], "emulator-secret");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("schedule: every 15m, next run "), "{said}");
    assert!(said.contains("next run: would be refused: "), "{said}");
}

#[test]
fn a_destinations_monthly_allowance_spans_its_activations() {
    let world = World::new();
    world.write_destination_with("limits:\n  max_per_month: 5\n");
    world.insert(1, 4, None, None);
    let (code, first, stderr) = run(&world, &[]);
    assert_eq!((code, count(&first, "sent")), (0, 4), "{stderr}");
    // A second activation of the same destination: one allowance for both.
    let yaml = std::fs::read_to_string(world.config_dir().join("activations/orders.yaml")).unwrap();
    world.write("activations/returns.yaml", &yaml);
    let (code, second, stderr) = json(
        &world,
        &["run", "returns", "--json", "--allow-shared-source"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        (count(&second, "sent"), count(&second, "skipped")),
        (1, 3),
        "{second}"
    );
    let run_id = second["run_id"].as_str().unwrap();
    let (_, shown, _) = json(&world, &["runs", "show", run_id, "--json"]);
    let reasons: Vec<&str> = shown["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["reason"].as_str())
        .collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("allowance: limits.max_per_month (5) of destination `trustpilot` reached this month; sent next month")),
        "{reasons:?}"
    );
    let (_, checked, _) = json(&world, &["check", "orders", "--json"]);
    let allowance = &checked["activations"][0]["allowances"][0];
    assert_eq!(allowance["of"], "destination `trustpilot`", "{checked}");
    assert_eq!(
        (allowance["limit"].as_u64(), allowance["sent"].as_u64()),
        (Some(5), Some(5))
    );
}

#[test]
fn a_compressed_week_needs_nobody() {
    use retl_trustpilot_emulator::Fault;
    let world = World::new();
    world.write_destination_with(
        "request_timeout_seconds: 1\nretry:\n  backoff_ms: 20\n  tries_per_run: 2\n",
    );
    world.edit_activation(|yaml| yaml.replace("first_run: send_all", "first_run: skip_existing"));
    world.insert(1, 1_000, None, None);
    let mut minute = 0;
    let mut next = |world: &World| {
        minute += 5;
        let offset = format!("{minute}m");
        let out = world
            .command(&["run", "orders", "--json"], "emulator-secret")
            .env("RETL_CLOCK_OFFSET", &offset)
            .output()
            .unwrap();
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (out.status.code().unwrap(), summary)
    };
    assert_eq!(count(&next(&world).1, "baseline"), 1_000);
    for _ in 0..8 {
        assert_eq!(next(&world).0, 0, "a quiet run");
    }
    // A busy hour: 200 new orders.
    world.insert(1_001, 1_200, None, None);
    let (code, busy) = next(&world);
    assert_eq!((code, count(&busy, "sent")), (0, 200), "{busy}");
    // Six trickles of 5, then 150 more.
    for i in 0..6 {
        let from = 1_201 + i * 5;
        world.insert(from, from + 4, None, None);
        let (code, trickle) = next(&world);
        assert_eq!((code, count(&trickle, "sent")), (0, 5), "{trickle}");
    }
    world.insert(1_231, 1_380, None, None);
    let (code, more) = next(&world);
    assert_eq!((code, count(&more, "sent")), (0, 150), "{more}");
    // A 15-minute outage: every request answered 500; the rows stay failed.
    world.insert(1_381, 1_390, None, None);
    world
        .emulator()
        .script_faults([Some(Fault::ServerError); 60]);
    for _ in 0..3 {
        let (code, outage) = next(&world);
        assert_eq!((code, count(&outage, "failed")), (3, 10), "{outage}");
        assert_eq!(count(&outage, "rejected") + count(&outage, "given_up"), 0);
    }
    // It is over: the next run sends them; nobody stepped in.
    let (code, after) = next(&world);
    assert_eq!((code, count(&after, "sent")), (0, 10), "{after}");
    let accepted = world.accepted_references();
    assert_eq!(accepted.len(), 390);
    assert!(accepted.values().all(|n| *n == 1), "each invited once");
}

#[test]
fn a_first_run_setting_that_came_too_late_is_said_and_retl_baseline_records_the_rest() {
    let world = World::new();
    world.edit_activation(|yaml| yaml.replace("first_run: send_all\n", ""));
    world.insert(1, 500, None, None);
    let (code, canary, stderr) = run(&world, &["--limit", "20"]);
    assert_eq!((code, count(&canary, "sent")), (0, 20), "{stderr}");
    // skip_existing added after the canary: it no longer applies, and says so.
    world.edit_activation(|yaml| format!("{yaml}first_run: skip_existing\n"));
    let (_, preview, _) = json(&world, &["preview", "orders", "--json"]);
    let note = preview["first_run_note"].as_str().unwrap_or_default();
    assert!(
        note.contains("first_run: skip_existing no longer applies")
            && note.contains("(480 now)")
            && note.contains("retl baseline orders"),
        "{preview}"
    );
    let (_, check, _) = json(&world, &["check", "--json"]);
    assert!(
        check["activations"][0]["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("no longer applies")),
        "{check}"
    );
    // The way out: every row now in the source settled as baseline.
    let (code, dry, stderr) = json(&world, &["baseline", "orders", "--dry-run", "--json"]);
    assert_eq!(
        (code, dry["counts"]["baseline"].as_u64()),
        (0, Some(480)),
        "{stderr}"
    );
    let (code, baseline, stderr) = json(&world, &["baseline", "orders", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        (count(&baseline, "baseline"), count(&baseline, "sent")),
        (480, 0),
        "{baseline}"
    );
    assert_eq!(
        world.accepted_references().len(),
        20,
        "nothing more went out"
    );
    let (code, next, _) = run(&world, &[]);
    assert_eq!((code, count(&next, "sent")), (0, 0), "{next}");
    let (_, found, _) = json(&world, &["runs", "find", "300", "--json"]);
    assert_eq!(
        found["baseline"][0]["runs"][0], baseline["run_id"],
        "{found}"
    );
    let human = world.retl(&["runs", "find", "300"], "emulator-secret");
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("is baseline, never sent"),
        "{}",
        String::from_utf8_lossy(&human.stdout)
    );
}

#[test]
fn retl_baseline_is_refused_while_rows_are_uncertain() {
    use retl_trustpilot_emulator::Fault;
    let world = World::new();
    world.write_destination_with("request_timeout_seconds: 1\nretry:\n  backoff_ms: 1\n");
    world.insert(1, 1, None, None);
    world
        .emulator()
        .script_faults([Some(Fault::AcceptThenHang)]);
    let (code, first, _) = run(&world, &[]);
    assert_eq!((code, count(&first, "uncertain")), (3, 1), "{first}");
    world.insert(2, 3, None, None);
    let out = world.retl(&["baseline", "orders"], "emulator-secret");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{said}");
    assert!(
        said.contains("1 row(s) of `orders` are uncertain") && said.contains("retl runs settle"),
        "{said}"
    );
    // Nothing was recorded: the next run sends the new rows.
    let (_, next, _) = run(&world, &[]);
    assert_eq!(count(&next, "sent"), 2, "{next}");
}
