//! Feedback while it works: several activations in one run, `--quiet`, JSON
//! log lines that carry the run, no escape codes without a terminal.

use retl_trustpilot_emulator::Fault;
use serde_json::Value;

use super::{World, count};

/// A second activation, `returns`, over the same table and destination (its
/// first run says `--allow-shared-source`: it is no rename of `orders`).
fn add_second_activation(world: &World) {
    let yaml = std::fs::read_to_string(world.config_dir().join("activations/orders.yaml")).unwrap();
    world.write(
        "activations/returns.yaml",
        &yaml.replace("first_run: send_all", "first_run: skip_existing"),
    );
}

#[test]
fn several_activations_run_in_one_process_and_the_worst_exit_code_wins() {
    let world = World::new();
    world.insert(1, 3, None, None);
    add_second_activation(&world);
    let out = world.retl(
        &[
            "run",
            "orders",
            "returns",
            "--json",
            "--allow-shared-source",
        ],
        "emulator-secret",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let summaries: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(summaries.len(), 2);
    assert_eq!(summaries[0]["activation"], "orders");
    assert_eq!(count(&summaries[0], "sent"), 3);
    assert_eq!(summaries[1]["activation"], "returns");
    assert_eq!(count(&summaries[1], "baseline"), 3);

    // --all, with one activation that fails transiently: exit 3 for both.
    world.insert(4, 5, None, None);
    world
        .emulator()
        .script_faults([Some(Fault::ServerError); 3]);
    world.write_destination_with("retry:\n  tries_per_run: 1\n  backoff_ms: 20\n");
    let out = world.retl(&["run", "--all", "--json"], "emulator-secret");
    let summaries: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(summaries.len(), 2, "{out:?}");
    let failed: u64 = summaries.iter().map(|s| count(s, "failed")).sum();
    assert!(failed > 0, "{summaries:?}");
    assert_eq!(out.status.code(), Some(3), "the worst of 0 and 3");

    // An unknown activation among them is a configuration error.
    let out = world.retl(&["run", "orders", "nope"], "emulator-secret");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn quiet_prints_only_the_summary() {
    let world = World::new();
    world.insert(1, 2, None, None);
    world.write("activations/broken.yaml", "source: [\n");
    let out = world.retl(&["run", "orders", "--quiet"], "emulator-secret");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("run "), "{stdout}");
    // Without --quiet, the broken file is mentioned.
    world.insert(3, 3, None, None);
    let out = world.retl(&["run", "orders"], "emulator-secret");
    assert!(!out.stderr.is_empty());
}

#[test]
fn json_log_lines_carry_the_run_and_no_escape_codes_reach_a_pipe() {
    let world = World::new();
    world.insert(1, 3, None, None);
    // A retried request logs from its request task.
    world.write_destination_with("retry:\n  backoff_ms: 20\n");
    world.emulator().script_faults([Some(Fault::ServerError)]);
    let out = world.retl(
        &["--log-format", "json", "-vv", "run", "orders", "--json"],
        "emulator-secret",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let run_id = summary["run_id"].as_str().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let run_lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("retl_engine") || t.starts_with("retl_destination"))
        })
        .collect();
    assert!(run_lines.len() >= 3, "{stderr}");
    for line in &run_lines {
        assert_eq!(line["run_id"], run_id, "{line}");
        assert_eq!(line["activation"], "orders", "{line}");
    }
    assert!(
        run_lines.iter().any(|l| l["target"]
            .as_str()
            .unwrap()
            .starts_with("retl_destination")),
        "a line from a request task: {stderr}"
    );
    // Text logs on a pipe: no ANSI escape codes.
    world.insert(4, 4, None, None);
    let out = world.retl(&["-vv", "run", "orders"], "emulator-secret");
    assert!(!out.stderr.is_empty());
    assert!(
        !out.stderr.contains(&0x1b),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn json_progress_is_an_info_event_with_the_run_and_its_counts_as_fields() {
    use std::io::BufRead as _;
    use std::process::Stdio;
    let world = World::new();
    world.insert(1, 3, None, None);
    // Held with its first row in flight: the run lasts until it is killed,
    // and its progress events come meanwhile.
    let mut child = world
        .command(
            &["--log-format", "json", "run", "orders"],
            "emulator-secret",
        )
        .env("RETL_HOLD_AT", "in_flight:1")
        .env("RETL_PROGRESS_EVERY", "20ms")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut progress = None;
    // A line every 20 ms: a run that never says it this way fails, not hangs.
    for line in lines.take(500) {
        let line = line.unwrap();
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if event["target"] == "retl::progress" && event["read"] == 3 {
            progress = Some(event);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let event = progress.expect("a progress event once the rows are read");
    assert_eq!(event["level"], "INFO", "{event}");
    assert_eq!(event["activation"], "orders", "{event}");
    assert_eq!(event["new"], 3, "{event}");
    assert!(
        event["sent"].is_u64() && event["failed"].is_u64(),
        "{event}"
    );
    let run_id = event["run_id"].as_str().unwrap();
    assert_eq!(run_id.len(), 36, "{event}");
}
