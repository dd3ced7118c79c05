//! One invitation per customer per period (`dedupe:`): by email, across a
//! destination's activations, under concurrency and through a kill.

use serde_json::Value;

use super::{World, count, json, spawn_held};

fn run(world: &World, args: &[&str], offset: Option<&str>) -> (i32, Value) {
    let mut command = world.command(args, "emulator-secret");
    if let Some(offset) = offset {
        command.env("RETL_CLOCK_OFFSET", offset);
    }
    let out = command.output().unwrap();
    (
        out.status.code().unwrap(),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
    )
}

/// How many invitations each email got.
fn per_email(world: &World) -> std::collections::HashMap<String, usize> {
    let mut seen = std::collections::HashMap::new();
    for invitation in world.emulator().invitations() {
        let email = invitation.body["consumerEmail"]
            .as_str()
            .unwrap()
            .to_lowercase();
        *seen.entry(email).or_insert(0) += 1;
    }
    seen
}

#[test]
fn a_customer_invited_within_the_window_is_suppressed_with_the_earlier_run() {
    let world = World::new();
    world.edit_activation(|yaml| format!("{yaml}dedupe:\n  by: consumer_email\n  within: 365d\n"));
    world.insert(1, 3, None, None);
    let (_, first) = world.run();
    assert_eq!(count(&first, "sent"), 3);
    // Order 4 is customer 1's second order (the address written differently);
    // orders 5 and 6 are one new customer's two orders, in one run.
    world.insert(4, 6, None, None);
    world.sql("UPDATE orders SET email = ' CUSTOMER1@shop.example' WHERE order_id = 4");
    world.sql("UPDATE orders SET email = 'new@shop.example' WHERE order_id IN (5, 6)");
    let (_, preview, _) = json(&world, &["preview", "orders", "--json"]);
    assert_eq!(
        count(&preview, "suppressed"),
        1,
        "the earlier run is known: {preview}"
    );
    let (code, second) = world.run();
    assert_eq!(code, 0, "{second}");
    assert_eq!(
        (count(&second, "sent"), count(&second, "suppressed")),
        (1, 2),
        "{second}"
    );
    let (_, found, _) = json(&world, &["runs", "find", "4", "--json"]);
    let row = &found["rows"][0];
    assert_eq!(row["outcome"], "suppressed", "{found}");
    let reason = row["reason"].as_str().unwrap();
    assert!(
        reason.contains(first["run_id"].as_str().unwrap()) && reason.contains("per 365d"),
        "{reason}"
    );
    assert!(
        per_email(&world).values().all(|n| *n == 1),
        "{:?}",
        per_email(&world)
    );
    // A suppressed order stays settled; a year and a day later, a new order
    // of customer 1 is invited.
    world.insert(7, 7, None, None);
    world.sql("UPDATE orders SET email = 'customer1@shop.example' WHERE order_id = 7");
    let (_, later) = run(&world, &["run", "orders", "--json"], Some("366d"));
    assert_eq!(
        (count(&later, "sent"), count(&later, "new")),
        (1, 1),
        "{later}"
    );
    assert_eq!(per_email(&world)["customer1@shop.example"], 2);
}

#[test]
fn dedupe_switched_on_later_still_sees_the_invitations_made_before() {
    let world = World::new();
    world.insert(1, 2, None, None);
    let (_, first) = world.run();
    assert_eq!(count(&first, "sent"), 2, "{first}");
    // A week later dedupe is switched on; customer 1 orders again.
    world.edit_activation(|yaml| format!("{yaml}dedupe:\n  by: consumer_email\n  within: 365d\n"));
    world.insert(3, 3, None, None);
    world.sql("UPDATE orders SET email = 'customer1@shop.example' WHERE order_id = 3");
    let (_, preview, _) = json(&world, &["preview", "orders", "--json"]);
    assert_eq!(count(&preview, "suppressed"), 1, "{preview}");
    let (code, second) = run(&world, &["run", "orders", "--json"], Some("7d"));
    assert_eq!(code, 0, "{second}");
    assert_eq!(
        (count(&second, "sent"), count(&second, "suppressed")),
        (0, 1),
        "the run log's history counts: {second}"
    );
    let (_, found, _) = json(&world, &["runs", "find", "3", "--json"]);
    let reason = found["rows"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(first["run_id"].as_str().unwrap()),
        "names the run that invited her before dedupe was on: {found}"
    );
    assert_eq!(per_email(&world)["customer1@shop.example"], 1);
}

/// `orders` and `returns`, two activations of one destination that dedupes
/// across them, over the same 20 customers.
fn two_activations(world: &World) {
    world.write_destination_with("dedupe: {by: consumer_email, within: 30d}\n");
    let yaml = std::fs::read_to_string(world.config_dir().join("activations/orders.yaml")).unwrap();
    world.write("activations/returns.yaml", &yaml);
    world.insert(1, 20, None, None);
}

#[test]
fn two_activations_running_together_never_both_invite_one_customer() {
    together(&World::new());
}

#[test]
fn two_activations_running_together_on_a_postgresql_state_never_both_invite_one_customer() {
    if let Some(world) = World::new().with_postgres_state() {
        together(&world);
    }
}

/// `orders` and `returns` started together: their marks interleave in the
/// state database; each customer is invited once.
fn together(world: &World) {
    two_activations(world);
    let spawn = |args: &[&str]| {
        world
            .command(args, "emulator-secret")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Started together: their marks interleave in the state database.
    let a = spawn(&["run", "orders", "--json"]);
    let b = spawn(&["run", "returns", "--json", "--allow-shared-source"]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!((a.status.code(), b.status.code()), (Some(0), Some(0)));
    let counts: Vec<Value> = [a, b]
        .iter()
        .map(|o| serde_json::from_slice(&o.stdout).unwrap())
        .collect();
    let sent: u64 = counts.iter().map(|c| count(c, "sent")).sum();
    let suppressed: u64 = counts.iter().map(|c| count(c, "suppressed")).sum();
    assert_eq!((sent, suppressed), (20, 20), "{counts:?}");
    assert!(per_email(world).values().all(|n| *n == 1));
}

#[test]
fn a_run_killed_after_claiming_a_customer_keeps_the_claim() {
    let world = World::new();
    two_activations(&world);
    world.write_destination_with("dedupe: {by: consumer_email, within: 30d}\nconcurrency: 1\n");
    // Killed with its first row in flight: that customer may have been invited.
    let mut held = spawn_held(&world, "in_flight:1", &[]);
    held.kill().unwrap();
    held.wait().unwrap();
    let (code, returns) = run(
        &world,
        &["run", "returns", "--json", "--allow-shared-source"],
        None,
    );
    assert_eq!(code, 0, "{returns}");
    assert_eq!(
        count(&returns, "suppressed"),
        1,
        "the customer in flight: {returns}"
    );
    assert_eq!(count(&returns, "sent"), 19);
    // The killed activation's rerun: its row in flight is uncertain, the rest
    // suppressed (returns invited them); nobody twice.
    let (_, orders) = run(
        &world,
        &["run", "orders", "--json", "--allow-shared-source"],
        None,
    );
    assert_eq!(count(&orders, "recovered"), 1, "{orders}");
    assert_eq!(count(&orders, "suppressed"), 19, "{orders}");
    assert!(
        per_email(&world).values().all(|n| *n == 1),
        "{:?}",
        per_email(&world)
    );
}

#[test]
fn a_domain_in_unicode_and_in_its_ascii_form_is_one_customer() {
    let world = World::new();
    world.edit_activation(|yaml| format!("{yaml}dedupe:\n  by: consumer_email\n  within: 365d\n"));
    world.insert(1, 1, None, None);
    world.sql("UPDATE orders SET email = 'ann@xn--bcher-kva.example' WHERE order_id = 1");
    let (code, first) = world.run();
    assert_eq!((code, count(&first, "sent")), (0, 1), "{first}");
    // Her next order, the same domain written in Unicode.
    world.insert(2, 2, None, None);
    world.sql("UPDATE orders SET email = 'Ann@Bücher.example' WHERE order_id = 2");
    let (code, second) = world.run();
    assert_eq!(code, 0, "{second}");
    assert_eq!(
        (count(&second, "sent"), count(&second, "suppressed")),
        (0, 1),
        "{second}"
    );
    // `runs find --email` finds her rows in either form.
    for email in ["ann@bücher.example", "ANN@xn--bcher-kva.example"] {
        let (_, found, _) = json(&world, &["runs", "find", "--email", email, "--json"]);
        assert_eq!(
            found["rows"].as_array().unwrap().len(),
            2,
            "{email}: {found}"
        );
    }
}
