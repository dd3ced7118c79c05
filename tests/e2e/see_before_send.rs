//! Nothing large goes out by surprise, and what goes out can be seen first:
//! `retl preview` / `run --dry-run`, the surge guard, `max_row_age`, rows a
//! fixed setting recovers, and keys that change type.

use super::{Kind, World, count, json, row_with};

#[test]
fn a_preview_shows_each_body_with_its_origins_and_the_rejections_and_changes_nothing() {
    let world = World::new();
    world.insert(1, 3, Some(2), None);
    world.sql("UPDATE orders SET locale = NULL WHERE order_id = 3");
    world.edit_activation(|yaml| {
        format!("{yaml}target:\n  reply_to: help@shop.example\n  locale: fr-FR\n")
    });
    let state_file = world.dir.path().join("state.db");
    let (code, preview, stderr) = json(&world, &["preview", "orders", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&preview, "read"), 3);
    assert_eq!(count(&preview, "new"), 3);
    assert_eq!(count(&preview, "sent"), 2, "rows a run would send");
    assert_eq!(count(&preview, "rejected"), 1);
    assert_eq!(preview["estimated_seconds"], 0);
    let invitations = preview["invitations"].as_array().unwrap();
    assert_eq!(invitations.len(), 2);
    let first = &invitations[0];
    assert_eq!(first["key"], "1");
    assert_eq!(first["reference"], "1");
    assert_eq!(first["body"]["consumerEmail"], "customer1@shop.example");
    assert_eq!(first["body"]["senderName"], "E2E Shop");
    assert_eq!(first["origins"]["consumerEmail"], "row:email");
    assert_eq!(first["origins"]["senderName"], "destination");
    assert_eq!(first["origins"]["replyTo"], "target");
    assert_eq!(first["origins"]["locale"], "row:locale");
    // Row 3's locale is NULL: the target's value goes out.
    assert_eq!(invitations[1]["body"]["locale"], "fr-FR");
    assert_eq!(invitations[1]["origins"]["locale"], "target");
    let rejections = preview["rejections"].as_array().unwrap();
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0]["key"], "2");
    assert!(
        rejections[0]["reason"]
            .as_str()
            .unwrap()
            .contains("consumer_email: not a valid email address"),
        "{preview}"
    );
    // Nothing was sent, and no state was made or written.
    assert!(world.emulator().invitations().is_empty());
    assert!(!state_file.exists(), "a preview creates no state database");

    // `run --dry-run` is the same thing.
    let (code, dry, _) = json(&world, &["run", "orders", "--dry-run", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(dry["counts"], preview["counts"]);
    assert!(!state_file.exists());

    // After a real run, a preview reads the ledger and still writes nothing.
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    let ledger = world.ledger();
    let (_, after, _) = json(&world, &["preview", "orders", "--json", "--limit", "1"]);
    assert_eq!(count(&after, "already_sent"), 2);
    assert_eq!(count(&after, "already_rejected"), 1);
    assert_eq!(count(&after, "new"), 0);
    assert_eq!(world.ledger(), ledger);
    let (_, runs, _) = json(&world, &["runs", "list", "--json"]);
    assert_eq!(runs.as_array().unwrap().len(), 1, "a preview is not a run");
}

#[test]
fn a_preview_with_a_limit_lists_that_many_and_counts_the_rest_skipped() {
    let world = World::new();
    world.insert(1, 5, None, None);
    let (code, preview, _) = json(&world, &["preview", "orders", "--limit", "2", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(count(&preview, "sent"), 2);
    assert_eq!(count(&preview, "skipped"), 3);
    assert_eq!(preview["invitations"].as_array().unwrap().len(), 2);
}

#[test]
fn a_preview_estimates_the_time_the_pacing_will_take() {
    let world = World::new();
    world.write_destination_with("rate_limits:\n  - {requests: 2, per_seconds: 10}\n");
    world.insert(1, 5, None, None);
    let (code, preview, stderr) = json(&world, &["preview", "orders", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    // Five calls, two per window: the fifth waits two windows (10.2 s each).
    assert_eq!(preview["estimated_seconds"], 20);
}

#[test]
fn a_surge_of_new_rows_is_refused_until_allowed() {
    let world = World::new();
    world.insert(1, 3, None, None);
    let (code, summary) = world.run();
    assert_eq!((code, count(&summary, "sent")), (0, 3));
    // A model rebuilt with new keys: every row looks new again.
    world.insert(100, 249, None, None);
    let out = world.retl(&["run", "orders", "--json"], "emulator-secret");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("nothing sent"), "{stderr}");
    assert!(stderr.contains("--allow-surge"), "{stderr}");
    assert!(stderr.contains("surge_factor"), "{stderr}");
    assert_eq!(
        world.accepted_references().len(),
        3,
        "nothing more went out"
    );
    // The preview says so too, and shows the rows.
    let (code, preview, _) = json(&world, &["preview", "orders", "--json"]);
    assert_eq!(code, 0);
    assert!(
        preview["refused"].as_str().unwrap().contains("surge"),
        "{preview}"
    );
    let (code, allowed, stderr) = json(&world, &["run", "orders", "--json", "--allow-surge"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&allowed, "sent"), 150);
    assert_eq!(world.accepted_references().len(), 153);
}

#[test]
fn a_surge_factor_of_the_activation_raises_the_threshold() {
    let world = World::new();
    world.insert(1, 20, None, None);
    assert_eq!(world.run().0, 0);
    world.edit_activation(|yaml| format!("{yaml}limits:\n  surge_factor: 20\n"));
    // 300 new rows against a median of 20: under 20 x 20 = 400.
    world.insert(100, 399, None, None);
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(count(&summary, "sent"), 300);
}

#[test]
fn rows_older_than_max_row_age_are_recorded_too_old_and_never_sent() {
    let world = World::new();
    world.sql("ALTER TABLE orders ADD COLUMN created_at TEXT");
    world.insert(1, 3, None, None);
    world.sql("UPDATE orders SET created_at = '2020-01-01 09:00:00' WHERE order_id = 1");
    world.sql("UPDATE orders SET created_at = '2999-01-01 09:00:00' WHERE order_id = 2");
    world.edit_activation(|yaml| format!("{yaml}max_row_age:\n  column: created_at\n  age: 30d\n"));
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(count(&summary, "read"), 3);
    assert_eq!(count(&summary, "too_old"), 1);
    assert_eq!(count(&summary, "new"), 2, "too_old rows are not new");
    assert_eq!(count(&summary, "sent"), 1);
    assert_eq!(count(&summary, "rejected"), 1, "row 3 has no date");
    let log = world.show(summary["run_id"].as_str().unwrap());
    let old = row_with(&log, "too_old");
    assert_eq!(old["key"], "1");
    assert!(
        old["reason"].as_str().unwrap().contains("max_row_age"),
        "{old}"
    );
    let undated = row_with(&log, "rejected");
    assert_eq!(undated["key"], "3");
    assert!(
        undated["reason"].as_str().unwrap().contains("created_at"),
        "{undated}"
    );
    assert_eq!(world.ledger().get("too_old"), Some(&1));
    // Later runs never send row 1; row 3 goes once it is dated.
    world.sql("UPDATE orders SET created_at = '2999-01-01 09:00:00' WHERE order_id = 3");
    let (code, again) = world.run();
    assert_eq!(code, 0, "{again}");
    assert_eq!(count(&again, "sent"), 1);
    assert_eq!(count(&again, "too_old"), 0);
    let sent = world.accepted_references();
    assert!(!sent.contains_key("1"), "{sent:?}");
    assert_eq!(sent.len(), 2);
}

#[test]
fn fixing_the_setting_that_broke_rows_sends_them() {
    let world = World::new();
    world.sql("ALTER TABLE orders ADD COLUMN sku TEXT");
    world.insert(1, 2, None, None);
    world.edit_activation(|yaml| {
        format!(
            "{}target:\n  invitation_type: both\n  product:\n    per_row: true\n",
            yaml.replace(
                "  locale: locale\n",
                "  locale: locale\n  product_sku: sku\n"
            )
        )
    });
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(count(&summary, "rejected"), 2, "no row gives a SKU");
    // The same data, the same setting: nothing to do.
    let (_, same) = world.run();
    assert_eq!(count(&same, "already_rejected"), 2);
    // The setting is fixed: one catalogue SKU for every row.
    world.edit_activation(|yaml| yaml.replace("    per_row: true\n", "    skus: [SKU-1]\n"));
    let (code, fixed) = world.run();
    assert_eq!(code, 0, "{fixed}");
    assert_eq!(count(&fixed, "sent"), 2, "{fixed}");
    assert_eq!(world.accepted_references().len(), 2);
}

#[test]
fn a_key_keeps_its_identity_when_its_column_changes_type_on_postgresql() {
    let Some(world) = World::with(Kind::Postgres) else {
        return;
    };
    let alter = |ty: &str| format!("ALTER TABLE orders ALTER COLUMN order_id TYPE {ty}");
    key_type_changes(
        &world,
        &["bigint", "numeric(20,0)", "numeric(20,2)", "bigint", "text"].map(alter),
    );
}

#[test]
fn a_key_keeps_its_identity_when_its_column_changes_type_on_mysql() {
    let Some(world) = World::with(Kind::Mysql) else {
        return;
    };
    let alter = |ty: &str| format!("ALTER TABLE orders MODIFY order_id {ty}");
    key_type_changes(
        &world,
        &[
            "BIGINT",
            "DECIMAL(20,0)",
            "DECIMAL(20,2)",
            "BIGINT",
            "VARCHAR(32)",
        ]
        .map(alter),
    );
}

/// Sends five rows, then changes the key column's type by each statement:
/// no row looks new, nothing goes out again.
fn key_type_changes(world: &World, statements: &[String]) {
    world.insert(1, 5, None, None);
    assert_eq!(world.run().0, 0);
    for ty in statements {
        world.sql(ty);
        let (code, summary) = world.run();
        assert_eq!(code, 0, "{ty}: {summary}");
        assert_eq!(count(&summary, "new"), 0, "{ty}: {summary}");
        assert_eq!(count(&summary, "sent"), 0, "{ty}: {summary}");
    }
    assert_eq!(world.accepted_references().len(), 5);
}
