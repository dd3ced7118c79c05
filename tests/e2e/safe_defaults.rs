//! Safe by default: the state follows the project, not the working directory.

use std::process::Command;

use super::{World, count};

#[test]
fn runs_started_from_two_directories_share_the_projects_state_and_send_nothing_twice() {
    let world = World::new();
    world.insert(1, 5, None, None);
    let run_from = |cwd: &std::path::Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_retl"))
            .current_dir(cwd)
            .arg("--config-dir")
            .arg(world.config_dir())
            .args(["run", "orders", "--json"])
            .env("TP_KEY", "emulator-key")
            .env("TP_SECRET", "emulator-secret")
            .env_remove("RETL_STATE_URL")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let (home, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = run_from(home.path());
    assert_eq!(count(&first, "sent"), 5);
    let second = run_from(elsewhere.path());
    assert_eq!(
        count(&second, "sent"),
        0,
        "the second directory found the same ledger"
    );
    assert_eq!(count(&second, "already_sent"), 5);
    // The state is the project's: beside the configuration directory.
    let project = world.config_dir().parent().unwrap().to_path_buf();
    assert!(project.join(".retl/state.db").is_file());
    assert!(!home.path().join(".retl").exists() && !elsewhere.path().join(".retl").exists());
    assert_eq!(
        second["state"],
        format!("sqlite://{}", project.join(".retl/state.db").display())
    );
    assert_eq!(world.accepted_references().len(), 5);
}

#[test]
fn the_state_url_in_a_summary_hides_its_password() {
    let world = World::new();
    let out = world
        .command(&["run", "orders", "--json"], "emulator-secret")
        .args(["--state", "postgres://retl:pw-secret@127.0.0.1:1/state"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("postgres://retl:***@127.0.0.1:1/state"),
        "{stderr}"
    );
    assert!(!stderr.contains("pw-secret"), "{stderr}");
}
