//! No customer lost without a word: a ledger answers only for the
//! Trustpilot it sent to, a key table holds back only this state's keys,
//! an allowance holds across runs at once, and a forgotten person leaves
//! nothing but a suppression entry.

use std::net::SocketAddr;
use std::process::{Command, Output};

use retl_trustpilot_emulator::{Emulator, EmulatorConfig};
use serde_json::Value;

use super::{World, count};

/// A second emulator, in `world`'s runtime: another Trustpilot.
fn second_emulator(world: &World) -> Emulator {
    world
        .runtime
        .block_on(Emulator::start(
            EmulatorConfig::default(),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        ))
        .unwrap()
}

fn summary(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no JSON summary: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn the_readme_targets_flow_from_init_invites_each_customer_on_both_trustpilots() {
    let world = World::new();
    let prod = second_emulator(&world);
    let project = tempfile::tempdir().unwrap();
    let retl = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_retl"));
        command
            .current_dir(project.path())
            .env_remove("RETL_STATE_URL")
            .env("WAREHOUSE_URL", world.connection())
            .env("PROD_TRUSTPILOT_API_KEY", "emulator-key")
            .env("PROD_TRUSTPILOT_API_SECRET", "emulator-secret")
            .env("PROD_TRUSTPILOT_BUSINESS_USER_ID", "user-emulator")
            .env("PROD_TRUSTPILOT_BUSINESS_UNIT_ID", "bu-emulator");
        command
    };
    let init = retl().arg("init").output().unwrap();
    assert_eq!(init.status.code(), Some(0), "{init:?}");
    // The two Trustpilots are two emulators; the rest of targets.yaml is
    // as `retl init` wrote it.
    let targets = project.path().join("configs/targets.yaml");
    let text = std::fs::read_to_string(&targets)
        .unwrap()
        .replace("http://127.0.0.1:8787", &world.emulator().url())
        .replace("https://api.trustpilot.com", &prod.url())
        .replace("https://invitations-api.trustpilot.com", &prod.url());
    std::fs::write(&targets, text).unwrap();
    world.sql("ALTER TABLE orders ADD COLUMN sku TEXT");
    world.insert(1, 5, None, None);
    world.sql("UPDATE orders SET sku = 'SKU-' || order_id");

    let run = |target: &str| {
        let out = retl()
            .args(["--target", target, "run", "orders", "--json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        summary(&out)
    };
    assert_eq!(count(&run("emulator"), "sent"), 5);
    assert_eq!(world.emulator().invitations().len(), 5);
    // Production gets every customer the emulator got: its own state.
    assert_eq!(count(&run("prod"), "sent"), 5);
    assert_eq!(prod.invitations().len(), 5);
    world.insert(6, 6, None, None);
    world.sql("UPDATE orders SET sku = 'SKU-6' WHERE order_id = 6");
    assert_eq!(count(&run("prod"), "sent"), 1);
    assert_eq!(count(&run("emulator"), "sent"), 1);
    assert_eq!(prod.invitations().len(), 6);
    assert_eq!(world.emulator().invitations().len(), 6);
    assert!(project.path().join(".retl/emulator/state.db").is_file());
    assert!(project.path().join(".retl/state.db").is_file());
}

#[test]
fn a_destination_changed_under_settled_keys_is_refused_until_moved() {
    let world = World::new();
    world.insert(1, 5, None, None);
    let (code, first) = world.run();
    assert_eq!((code, count(&first, "sent")), (0, 5));

    // The same state, another Trustpilot: refused, nothing sent there.
    let other = second_emulator(&world);
    let edit = |from: &str, to: &str| {
        let path = world.config_dir().join("destinations/trustpilot.yaml");
        let text = std::fs::read_to_string(&path).unwrap().replace(from, to);
        std::fs::write(path, text).unwrap();
    };
    edit(&world.emulator().url(), &other.url());
    world.insert(6, 6, None, None);
    let (code, refused) = world.run();
    assert_eq!(code, 5, "{refused}");
    assert_eq!(refused["status"], "refused");
    let message = refused["error"].as_str().unwrap();
    for part in [
        format!("{} business unit bu-emulator", world.emulator().url()),
        format!("{} business unit bu-emulator", other.url()),
        "--destination-moved".to_owned(),
        "RETL_STATE_URL".to_owned(),
    ] {
        assert!(message.contains(&part), "{part} in {message}");
    }
    assert!(other.invitations().is_empty());

    // Another business unit under the same host is another destination too.
    edit(&other.url(), &world.emulator().url());
    edit(
        "business_unit_id: bu-emulator",
        "business_unit_id: bu-second",
    );
    let (code, refused) = world.run();
    assert_eq!(code, 5, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("bu-second"));
    edit(
        "business_unit_id: bu-second",
        "business_unit_id: bu-emulator",
    );

    // A deliberate move carries the history over: only the new row goes.
    edit(&world.emulator().url(), &other.url());
    let out = world.retl(
        &["run", "orders", "--destination-moved", "--json"],
        "emulator-secret",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(count(&summary(&out), "sent"), 1);
    let sent: Vec<String> = other
        .invitations()
        .iter()
        .map(|i| i.reference().unwrap().to_owned())
        .collect();
    assert_eq!(sent, ["6"]);
    let (code, again) = world.run();
    assert_eq!((code, count(&again, "sent")), (0, 0), "{again}");
}
