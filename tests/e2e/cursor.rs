//! Cursor mode (`source.incremental`): a run reads only rows at or past the
//! high-water mark less the lookback, with the condition in the warehouse's
//! `WHERE`; the ledger still decides; full scans catch late rows and NULLs.

use serde_json::Value;

use super::{Kind, World, count};

#[test]
fn cursor_mode_on_sqlite() {
    cursor_mode(&World::new());
}

#[test]
fn cursor_mode_on_postgresql() {
    if let Some(world) = World::with(Kind::Postgres) {
        cursor_mode(&world);
    }
}

#[test]
fn cursor_mode_on_mysql() {
    if let Some(world) = World::with(Kind::Mysql) {
        cursor_mode(&world);
    }
}

/// Inserts order `id` created at `at` (`NULL` for none).
fn order(world: &World, id: u32, at: &str) {
    let at = if at == "NULL" {
        at.to_owned()
    } else {
        format!("'{at}'")
    };
    world.sql(&format!(
        "INSERT INTO orders (order_id, full_name, email, locale, created_at) VALUES ({id}, 'Customer {id}', 'customer{id}@shop.example', 'en-US', {at})"
    ));
}

fn run_at(world: &World, offset: Option<&str>) -> Value {
    let mut command = world.command(&["run", "orders", "--json"], "emulator-secret");
    if let Some(offset) = offset {
        command.env("RETL_CLOCK_OFFSET", offset);
    }
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn cursor_mode(world: &World) {
    let column = match world.kind {
        Kind::Sqlite => "TEXT",
        Kind::Postgres => "timestamp",
        Kind::Mysql => "DATETIME(6)",
    };
    world.sql(&format!(
        "ALTER TABLE orders ADD COLUMN created_at {column}"
    ));
    for id in 1..=5 {
        order(world, id, &format!("2026-11-01 1{id}:00:00"));
    }
    world.edit_activation(|yaml| {
        yaml.replace(
            "  primary_key: [order_id]\n",
            "  primary_key: [order_id]\n  incremental:\n    cursor: created_at\n    lookback: 1h\n    full_scan_every: 7d\n",
        )
    });
    // No index on the cursor: check says so, and passes.
    let out = world.retl(&["check", "orders", "--json"], "emulator-secret");
    let check: Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = check["activations"][0]["warnings"].to_string();
    assert!(warnings.contains("leads no index"), "{check}");

    // The first run reads everything.
    let first = run_at(world, None);
    assert_eq!((count(&first, "read"), count(&first, "sent")), (5, 5));

    // Two new rows, and a late one far behind the high-water mark.
    order(world, 6, "2026-11-01 16:00:00");
    order(world, 7, "2026-11-01 17:00:00");
    order(world, 8, "2026-10-01 00:00:00");
    let second = run_at(world, None);
    // Rows 4..7: at or past 15:00 less the 1h lookback; the lookback's rows
    // are already sent.
    assert_eq!(count(&second, "read"), 4, "{second}");
    assert_eq!(count(&second, "sent"), 2);
    assert_eq!(count(&second, "already_sent"), 2);

    // A row without a cursor value is read only by a full scan.
    order(world, 9, "NULL");
    let third = run_at(world, None);
    assert_eq!(count(&third, "read"), 2, "rows 6 and 7: {third}");
    assert_eq!(count(&third, "sent"), 0);

    // Eight days later a full scan is due: the late row and the NULL go out.
    let full = run_at(world, Some("8d"));
    assert_eq!(count(&full, "read"), 9, "{full}");
    assert_eq!(count(&full, "sent"), 2);
    assert_eq!(count(&full, "cursor_null"), 1);
    let after = run_at(world, Some("8d"));
    assert_eq!(count(&after, "read"), 2, "back to the cursor: {after}");
    assert_eq!(count(&after, "sent"), 0);

    let sent = world.accepted_references();
    assert_eq!(sent.len(), 9);
    assert!(sent.values().all(|&n| n == 1), "nothing twice: {sent:?}");

    // With an index, check has nothing to say.
    world.sql("CREATE INDEX by_created ON orders (created_at)");
    let out = world.retl(&["check", "orders", "--json"], "emulator-secret");
    let check: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        check["activations"][0]["warnings"],
        Value::Array(vec![]),
        "{check}"
    );
}

#[test]
fn the_high_water_mark_stops_at_a_row_still_to_send() {
    use retl_trustpilot_emulator::Fault;
    let world = World::new();
    world.sql("ALTER TABLE orders ADD COLUMN created_at TEXT");
    order(&world, 1, "2026-11-01 10:00:00");
    world.edit_activation(|yaml| {
        yaml.replace(
            "  primary_key: [order_id]\n",
            "  primary_key: [order_id]\n  incremental:\n    cursor: created_at\n    lookback: 1h\n",
        )
    });
    world.write_destination_with("concurrency: 1\nretry:\n  tries_per_run: 1\n  backoff_ms: 20\n");
    assert_eq!(count(&run_at(&world, None), "sent"), 1);
    // Row 2 fails (a transient error); row 3, much later, goes out.
    order(&world, 2, "2026-11-01 18:00:00");
    order(&world, 3, "2026-11-01 23:00:00");
    world.emulator().script_faults([Some(Fault::ServerError)]);
    let out = world.retl(&["run", "orders", "--json"], "emulator-secret");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let failing: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((count(&failing, "failed"), count(&failing, "sent")), (1, 1));
    // The mark stayed at row 2: the next run reads it again and sends it.
    let next = run_at(&world, None);
    assert_eq!(count(&next, "sent"), 1, "{next}");
    assert_eq!(world.accepted_references().len(), 3);
}
