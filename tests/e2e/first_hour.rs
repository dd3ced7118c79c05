//! A user's first hour: init, the demo kept, the emulator's credentials,
//! environments (env files, targets), hints, per-row template ids, and a
//! check that says what it checked.

use std::io::BufRead as _;
use std::process::{Command, Stdio};

use super::{World, count};

fn retl() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_retl"));
    command.env_remove("RETL_STATE_URL");
    command
}

#[test]
fn init_writes_a_tree_that_check_parses_naming_only_the_variables_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let out = retl().args(["init"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    for file in [
        "configs/destinations/trustpilot.yaml",
        "configs/activations/orders.yaml",
        "configs/targets.yaml",
    ] {
        assert!(dir.path().join(file).is_file(), "{file}");
    }
    let check = retl()
        .arg("--config-dir")
        .arg(dir.path().join("configs"))
        .args(["--state", "sqlite::memory:", "check", "--json"])
        .env_remove("WAREHOUSE_URL")
        .env_remove("TRUSTPILOT_API_KEY")
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let problems: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(problems.len(), 5, "{problems:#?}");
    assert!(
        problems
            .iter()
            .all(|p| p.contains(": environment variable `")),
        "{problems:#?}"
    );
    assert!(problems.iter().any(|p| p.contains("`WAREHOUSE_URL`")));

    // A second init overwrites nothing.
    let destination = dir.path().join("configs/destinations/trustpilot.yaml");
    std::fs::write(&destination, "# edited\n").unwrap();
    let again = retl().args(["init"]).arg(dir.path()).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not overwriting"));
    assert_eq!(std::fs::read_to_string(&destination).unwrap(), "# edited\n");
}

#[test]
fn the_kept_demo_reruns_against_an_emulator() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("demo");
    let out = retl().args(["demo", "--keep"]).arg(&keep).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    for file in [
        "warehouse.db",
        "configs/destinations/trustpilot.yaml",
        "configs/activations/orders.yaml",
        ".retl/state.db",
    ] {
        assert!(keep.join(file).exists(), "{file}");
    }
    // Rerun with a new order, against another emulator.
    let world = World::new();
    world.sql("SELECT 1");
    let warehouse = format!("sqlite://{}", keep.join("warehouse.db").display());
    world.runtime.block_on(async {
        use sqlx::ConnectOptions as _;
        use std::str::FromStr as _;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(&warehouse)
            .unwrap()
            .connect()
            .await
            .unwrap();
        sqlx::query("INSERT INTO orders VALUES ('ORD-2001', 'New One', 'new@example.com', 'en-US', 'SKU-101', 'now')")
            .execute(&mut conn)
            .await
            .unwrap();
    });
    let state = format!("sqlite://{}", keep.join(".retl/state.db").display());
    let rerun = retl()
        .arg("--config-dir")
        .arg(keep.join("configs"))
        .args(["--state", &state, "run", "orders", "--json"])
        .env("TRUSTPILOT_EMULATOR_URL", world.emulator().url())
        .output()
        .unwrap();
    assert_eq!(rerun.status.code(), Some(0), "{rerun:?}");
    let summary: serde_json::Value = serde_json::from_slice(&rerun.stdout).unwrap();
    assert_eq!(count(&summary, "sent"), 1, "only the new order: {summary}");
    assert_eq!(world.accepted_references().get("ORD-2001"), Some(&1));
}

#[test]
fn the_emulator_says_where_it_is_and_what_it_accepts() {
    let mut child = retl()
        .args(["emulator", "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("Ctrl-C stops it") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        banner.starts_with("trustpilot emulator listening on http://127.0.0.1:"),
        "{banner}"
    );
    for expected in [
        "api_key:          emulator-key",
        "api_secret:       emulator-secret",
        "business_user_id: user-emulator",
        "business units:   bu-emulator",
    ] {
        assert!(banner.contains(expected), "{expected} in {banner}");
    }
}

#[test]
fn an_env_file_and_a_target_supply_the_variables() {
    let world = World::new();
    world.insert(1, 2, None, None);
    // The destination's secret comes from a target, its key from an env file.
    let env_file = world.config_dir().join("../tp.env");
    std::fs::write(&env_file, "TP_KEY=emulator-key\n").unwrap();
    world.write(
        "targets.yaml",
        "targets:\n  emulator:\n    TP_SECRET: emulator-secret\n  prod:\n    TP_SECRET: ${PROD_SECRET:?set PROD_SECRET to the production API secret}\n",
    );
    let run = |extra: &[&str]| {
        let mut command = retl();
        command
            .arg("--config-dir")
            .arg(world.config_dir())
            .args(["--state", &world.state_url()])
            .args(extra)
            .args(["run", "orders", "--json"])
            .env_remove("TP_KEY")
            .env("TP_SECRET", "wrong-secret");
        command.output().unwrap()
    };
    let out = run(&[
        "--env-file",
        env_file.to_str().unwrap(),
        "--target",
        "emulator",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(count(&summary, "sent"), 2);

    let prod = run(&["--env-file", env_file.to_str().unwrap(), "--target", "prod"]);
    assert_eq!(prod.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&prod.stderr);
    assert!(
        stderr.contains("environment variable `PROD_SECRET` is not set: set PROD_SECRET to the production API secret"),
        "{stderr}"
    );
    let typo = run(&["--target", "emulatr"]);
    assert_eq!(typo.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("did you mean emulator?"));
}

#[test]
fn a_typo_gets_the_closest_name_and_its_line_underlined() {
    let world = World::new();
    world.edit_activation(|yaml| yaml.replace("consumer_email: email", "consumer_emial: email"));
    let out = world.retl(&["run", "orders"], "emulator-secret");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "mapping.consumer_emial: unknown field `consumer_emial`: did you mean consumer_email?"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("    |   consumer_emial: email\n    |   ^^^^^^^^^^^^^^\n"),
        "{stderr}"
    );
}

#[test]
fn template_ids_and_redirects_map_per_row_where_the_settings_leave_them_empty() {
    let world = World::new();
    world.sql("ALTER TABLE orders ADD COLUMN tpl TEXT");
    world.sql("ALTER TABLE orders ADD COLUMN thanks TEXT");
    world.insert(1, 3, None, None);
    world.sql("UPDATE orders SET tpl = CASE order_id WHEN 1 THEN '507f191e810c19729de860ea' ELSE '507f191e810c19729de860eb' END, thanks = 'https://shop.example/t/' || order_id WHERE order_id < 3");
    world.sql("UPDATE orders SET locale = 'da_DK' WHERE order_id = 2");
    world.edit_activation(|yaml| {
        yaml.replace(
            "  locale: locale\n",
            "  locale: locale\n  service_template_id: tpl\n  service_redirect_uri: thanks\n",
        )
    });
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(count(&summary, "sent"), 3);
    let bodies = world.bodies();
    assert_eq!(
        bodies["1"]["serviceReviewInvitation"]["templateId"],
        "507f191e810c19729de860ea"
    );
    assert_eq!(
        bodies["2"]["serviceReviewInvitation"]["redirectUri"],
        "https://shop.example/t/2"
    );
    assert_eq!(bodies["2"]["locale"], "da-DK", "da_DK is sent as da-DK");
    assert!(
        bodies["3"]["serviceReviewInvitation"]
            .get("templateId")
            .is_none(),
        "an empty cell and no setting: left out"
    );
}

#[test]
fn every_help_ends_with_an_example() {
    let commands: [&[&str]; 12] = [
        &[],
        &["run"],
        &["check"],
        &["init"],
        &["schema"],
        &["templates"],
        &["runs"],
        &["runs", "list"],
        &["runs", "show"],
        &["runs", "resend"],
        &["emulator"],
        &["demo"],
    ];
    for command in commands {
        let out = retl().args(command).arg("--help").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{command:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        let (_, example) = help
            .rsplit_once("\nExample")
            .unwrap_or_else(|| panic!("retl {command:?} --help has no example:\n{help}"));
        let lines: Vec<&str> = example
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert!(
            !lines.is_empty() && lines.iter().all(|l| l.trim_start().starts_with("retl ")),
            "retl {command:?} --help must end with its example:\n{help}"
        );
    }
}

#[test]
fn schema_prints_a_json_schema_of_each_kind_of_file() {
    for kind in ["destination", "activation", "targets"] {
        let out = retl().args(["schema", kind]).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{kind}"
        );
    }
    let activation: serde_json::Value = serde_json::from_slice(
        &retl()
            .args(["schema", "activation"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let mapping = &activation["properties"]["mapping"]["anyOf"][0]["properties"];
    for field in [
        "consumer_email",
        "service_template_id",
        "product_redirect_uri",
    ] {
        assert!(mapping.get(field).is_some(), "{field}");
    }
    let bad = retl().args(["schema", "activatoin"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn check_does_not_promise_a_next_run_it_could_not_preview() {
    let world = World::new();
    world.insert(1, 2, None, None);
    assert_eq!(world.run().0, 0);
    world.sql("ALTER TABLE orders RENAME TO orders_gone");
    let out = world.retl(&["check", "orders"], "emulator-secret");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        !stdout.contains("no safety limit would refuse it"),
        "{stdout}"
    );
    assert!(stdout.contains("next run: not foreseen"), "{stdout}");
}

#[test]
fn a_preview_shows_every_count_and_twenty_bodies_unless_asked_for_more() {
    let world = World::new();
    world.insert(1, 30, None, None);
    let out = world.retl(&["preview", "orders"], "emulator-secret");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for count in [
        "suppressed 0",
        "failed 0",
        "uncertain 0",
        "given_up 0",
        "would send 30",
    ] {
        assert!(text.contains(count), "{count} in {text}");
    }
    assert_eq!(text.matches("\ninvitation for row ").count(), 20, "{text}");
    assert!(text.contains("10 more request bodies not shown"), "{text}");
    let all = world.retl(&["preview", "orders", "--show", "all"], "emulator-secret");
    let all = String::from_utf8_lossy(&all.stdout);
    assert_eq!(all.matches("\ninvitation for row ").count(), 30);
    let three = world.retl(&["preview", "orders", "--show", "3"], "emulator-secret");
    assert_eq!(
        String::from_utf8_lossy(&three.stdout)
            .matches("\ninvitation for row ")
            .count(),
        3
    );
    let bad = world.retl(&["preview", "orders", "--show", "many"], "emulator-secret");
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn emulator_help_lists_only_the_options_that_apply_to_it() {
    let out = retl().args(["emulator", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--port") && help.contains("--fault"),
        "{help}"
    );
    for global in ["--state", "--target", "--config-dir", "--env-file"] {
        assert!(!help.contains(global), "`{global}` in: {help}");
    }
}

#[test]
fn completions_are_scripts_the_shells_accept_naming_every_command() {
    let help = retl().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .collect();
    assert!(commands.len() > 10, "{help}");
    let bash = retl().args(["completions", "bash"]).output().unwrap();
    assert!(bash.status.success());
    let script = String::from_utf8_lossy(&bash.stdout);
    for command in &commands {
        assert!(
            script.contains(&format!("retl__subcmd__{command}")),
            "`{command}` in the bash script"
        );
    }
    let mut check = Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), &bash.stdout).unwrap();
    assert!(check.wait().unwrap().success(), "bash -n accepts it");
    for shell in ["zsh", "fish", "powershell"] {
        let out = retl().args(["completions", shell]).output().unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    let man = retl().arg("man").output().unwrap();
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        man.status.success() && page.contains(".TH retl 1"),
        "{page}"
    );
    for command in &commands {
        assert!(page.contains(command), "`{command}` in the manual page");
    }
}
