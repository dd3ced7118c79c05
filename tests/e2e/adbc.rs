//! An activation read through an ADBC driver (`source.adbc`), the SQLite
//! driver of the `adbc-driver-sqlite` wheel: it runs, checks and previews
//! like any other, and asks for what ADBC does not offer yet are refused
//! with their position.

use super::{World, count, server_url};

fn adbc_activation(world: &World, driver: &str, extra: &str) {
    let uri = format!("file:{}", world.warehouse().display());
    world.write(
        "activations/orders.yaml",
        &format!(
            "source:\n  adbc:\n    driver: {driver}\n    options:\n      uri: \"{uri}\"\n  table: orders\n  primary_key: [order_id]\n{extra}destination: trustpilot\nfirst_run: send_all\nmapping:\n  reference_number: order_id\n  consumer_name: full_name\n  consumer_email: email\n  locale: locale\n"
        ),
    );
}

#[test]
fn an_activation_reads_through_an_adbc_driver() {
    let Some(driver) = server_url("RETL_TEST_ADBC_SQLITE_DRIVER") else {
        return;
    };
    let world = World::new();
    adbc_activation(&world, &driver, "");
    world.insert(1, 20, Some(7), None);
    let out = world.retl(&["check", "orders", "--json"], "emulator-secret");
    let check: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{check}");
    let activation = &check["activations"][0];
    assert_eq!(activation["first_run"]["rows"], 20, "{check}");
    assert!(
        activation["source"]["connection"]
            .as_str()
            .unwrap()
            .starts_with("adbc:"),
        "{check}"
    );
    let preview = world.retl(&["preview", "orders", "--json"], "emulator-secret");
    assert_eq!(preview.status.code(), Some(0), "{preview:?}");
    let (code, first) = world.run();
    assert_eq!(code, 0, "{first}");
    assert_eq!((count(&first, "sent"), count(&first, "rejected")), (19, 1));
    world.insert(21, 22, None, None);
    let (_, second) = world.run();
    assert_eq!(
        (count(&second, "sent"), count(&second, "already_sent")),
        (2, 19),
        "{second}"
    );
    assert!(world.accepted_references().values().all(|&n| n == 1));
}

#[test]
fn what_adbc_sources_do_not_offer_yet_is_refused_where_it_is_written() {
    let world = World::new();
    adbc_activation(&world, "sqlite", "  diff: warehouse\n  read: cursor\n");
    let out = world.retl(&["run", "orders"], "emulator-secret");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("source.read is not offered with source.adbc yet"),
        "{stderr}"
    );
    assert!(
        stderr.contains("diff: warehouse has no dialect for ADBC sources yet"),
        "{stderr}"
    );
}

#[test]
fn a_missing_adbc_driver_is_named_with_how_to_install_it() {
    let world = World::new();
    adbc_activation(&world, "nosuchwarehouse", "");
    world.insert(1, 2, None, None);
    let out = world.retl(&["run", "orders"], "emulator-secret");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("cannot load the ADBC driver `nosuchwarehouse`"),
        "{stderr}"
    );
    assert!(stderr.contains("dbc install nosuchwarehouse"), "{stderr}");
}

#[test]
fn cursor_mode_reads_through_an_adbc_driver_past_the_mark() {
    let Some(driver) = server_url("RETL_TEST_ADBC_SQLITE_DRIVER") else {
        return;
    };
    let world = World::new();
    world.sql("ALTER TABLE orders ADD COLUMN created_at TEXT");
    adbc_activation(
        &world,
        &driver,
        "  incremental:\n    cursor: created_at\n    lookback: 1h\n",
    );
    let order = |id: u32, at: &str| {
        world.sql(&format!(
            "INSERT INTO orders (order_id, full_name, email, locale, created_at) VALUES ({id}, 'C {id}', 'c{id}@shop.example', 'en-US', '{at}')"
        ));
    };
    for id in 1..=5 {
        order(id, &format!("2026-11-01 1{id}:00:00"));
    }
    let (code, first) = world.run();
    assert_eq!(
        (code, count(&first, "read"), count(&first, "sent")),
        (0, 5, 5),
        "{first}"
    );
    order(6, "2026-11-01 16:00:00");
    order(7, "2026-11-01 17:00:00");
    // Rows 4..7: at or past 15:00 less the 1h lookback.
    let (code, second) = world.run();
    assert_eq!(
        (code, count(&second, "read"), count(&second, "sent")),
        (0, 4, 2),
        "{second}"
    );
    assert!(world.accepted_references().values().all(|&n| n == 1));
}
