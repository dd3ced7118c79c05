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
    adbc_activation(
        &world,
        "sqlite",
        "  diff: warehouse\n  incremental:\n    cursor: order_id\n",
    );
    let out = world.retl(&["run", "orders"], "emulator-secret");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cursor mode (source.incremental) is not offered with source.adbc yet"),
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
