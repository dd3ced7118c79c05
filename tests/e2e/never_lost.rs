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

/// `orders` with `diff: warehouse`, its key table in `schema`.
fn warehouse_diff(world: &World, schema: &str) {
    world.edit_activation(|yaml| {
        yaml.replace(
            "  primary_key: [order_id]\n",
            &format!("  primary_key: [order_id]\n  diff: warehouse\n  diff_schema: {schema}\n"),
        )
    });
}

#[test]
fn a_second_project_on_the_same_warehouse_keeps_a_key_table_of_its_own() {
    let world = World::new();
    warehouse_diff(&world, "retl");
    world.insert(1, 5, None, None);
    assert_eq!(count(&world.run().1, "sent"), 5);

    // Staging: the same warehouse and activation name, its own state and
    // its own Trustpilot. It must see every row, not the other's keys.
    let staging = second_emulator(&world);
    let staging_configs = world.dir.path().join("staging/configs");
    std::fs::create_dir_all(staging_configs.join("destinations")).unwrap();
    std::fs::create_dir_all(staging_configs.join("activations")).unwrap();
    let destination =
        std::fs::read_to_string(world.config_dir().join("destinations/trustpilot.yaml"))
            .unwrap()
            .replace(&world.emulator().url(), &staging.url());
    std::fs::write(
        staging_configs.join("destinations/trustpilot.yaml"),
        destination,
    )
    .unwrap();
    std::fs::copy(
        world.config_dir().join("activations/orders.yaml"),
        staging_configs.join("activations/orders.yaml"),
    )
    .unwrap();
    let run_staging = || {
        let out = Command::new(env!("CARGO_BIN_EXE_retl"))
            .arg("--config-dir")
            .arg(&staging_configs)
            .args(["run", "orders", "--json"])
            .env_remove("RETL_STATE_URL")
            .env("TP_KEY", "emulator-key")
            .env("TP_SECRET", "emulator-secret")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        summary(&out)
    };
    assert_eq!(count(&run_staging(), "sent"), 5);
    assert_eq!(staging.invitations().len(), 5);
    // New rows reach both, whichever runs first.
    world.insert(6, 7, None, None);
    assert_eq!(count(&run_staging(), "sent"), 2);
    assert_eq!(count(&world.run().1, "sent"), 2);
    assert_eq!(world.emulator().invitations().len(), 7);
    assert_eq!(staging.invitations().len(), 7);
}

#[test]
fn keys_written_into_the_key_table_by_hand_are_reported_and_never_trusted() {
    let world = World::new();
    warehouse_diff(&world, "retl");
    world.insert(1, 5, None, None);
    assert_eq!(count(&world.run().1, "sent"), 5);
    // A script writes two keys of rows retl never saw into its table.
    let table = super::warehouse::key_table(&world);
    world.insert(6, 7, None, None);
    world.sql(&format!(
        "INSERT INTO {table} (order_id, settled_at) VALUES (6, CURRENT_TIMESTAMP), (7, CURRENT_TIMESTAMP)"
    ));

    let check = world.retl(&["check", "orders", "--json"], "emulator-secret");
    assert_eq!(check.status.code(), Some(2), "{check:?}");
    let report = summary(&check);
    let source = &report["activations"][0]["source"];
    assert_eq!(source["key_table_unknown_keys"], 2, "{report}");
    let problems = report["problems"].to_string() + &report["activations"].to_string();
    assert!(problems.contains("never settled"), "{problems}");

    let out = world.retl(&["run", "orders", "--json"], "emulator-secret");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("held keys this state never settled"),
        "{out:?}"
    );
    assert_eq!(count(&summary(&out), "sent"), 2);
    let (_, again) = world.run();
    assert_eq!(count(&again, "read"), 0, "{again}");
    assert_eq!(world.emulator().invitations().len(), 7);
}

#[test]
fn an_activation_name_past_postgresqls_identifier_limit_keeps_working() {
    let Some(world) = World::with(super::Kind::Postgres) else {
        return;
    };
    let schema = format!("{}_k", world.server.as_ref().unwrap().1);
    let long = "orders_for_the_loyalty_programme_of_the_northern_european_region_2027";
    assert!(long.len() > 63);
    let yaml = std::fs::read_to_string(world.config_dir().join("activations/orders.yaml"))
        .unwrap()
        .replace(
            "  primary_key: [order_id]\n",
            &format!("  primary_key: [order_id]\n  diff: warehouse\n  diff_schema: {schema}\n"),
        )
        .replace("first_run: send_all", "first_run: skip_existing");
    std::fs::remove_file(world.config_dir().join("activations/orders.yaml")).unwrap();
    world.write(&format!("activations/{long}.yaml"), &yaml);
    world.insert(1, 5, None, None);
    let run = || {
        let out = world.retl(&["run", long, "--json"], "emulator-secret");
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        summary(&out)
    };
    assert_eq!(count(&run(), "baseline"), 5);
    world.insert(6, 8, None, None);
    assert_eq!(count(&run(), "sent"), 3);
    assert_eq!(count(&run(), "read"), 0);
    world.server_sql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
}

/// Every property path of a JSON Schema (through `properties`).
fn schema_paths(schema: &Value, prefix: &[String], out: &mut Vec<Vec<String>>) {
    for alternatives in ["anyOf", "oneOf", "allOf"] {
        for sub in schema[alternatives].as_array().into_iter().flatten() {
            schema_paths(sub, prefix, out);
        }
    }
    let Some(properties) = schema["properties"].as_object() else {
        return;
    };
    for (key, sub) in properties {
        let mut path = prefix.to_vec();
        path.push(key.clone());
        if !out.contains(&path) {
            out.push(path.clone());
        }
        schema_paths(sub, &path, out);
    }
}

/// `doc` with the value at `path` set to `value` (parents made maps).
fn with_value(doc: &Value, path: &[String], value: Value) -> Value {
    let mut doc = doc.clone();
    let mut node = &mut doc;
    for key in &path[..path.len() - 1] {
        if !node[key.as_str()].is_object() {
            node[key.as_str()] = serde_json::json!({});
        }
        node = &mut node[key.as_str()];
    }
    node[path[path.len() - 1].as_str()] = value;
    doc
}

/// Each key of `kind`'s schema written empty, as a list and as a map, in
/// `file` (written as JSON, which is YAML): the file still loads (the key's
/// default), or `retl check` names a problem at a line of it. Never gone
/// without a word.
fn every_key_is_read_or_named(world: &World, kind: &str, file: &str, base: &Value) {
    let schema = world.retl(&["schema", kind], "emulator-secret");
    let schema: Value = serde_json::from_slice(&schema.stdout).unwrap();
    let mut paths = Vec::new();
    schema_paths(&schema, &[], &mut paths);
    assert!(paths.len() > 10, "{paths:?}");
    let stem = file.rsplit('/').next().unwrap();
    let loaded_key = if kind == "activation" {
        "activations"
    } else {
        "destinations"
    };
    let name = stem.trim_end_matches(".yaml");
    for path in &paths {
        for value in [
            Value::Null,
            serde_json::json!(["a", "b"]),
            serde_json::json!({"a": 1}),
        ] {
            let doc = with_value(base, path, value.clone());
            world.write(file, &serde_json::to_string_pretty(&doc).unwrap());
            let out = world.retl(&["check", "--json"], "emulator-secret");
            let report: Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|_| panic!("{}: {out:?}", path.join(".")));
            let loaded = report[loaded_key]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["name"] == name);
            let placed = report["problems"].as_array().unwrap().iter().any(|p| {
                let p = p.as_str().unwrap();
                p.split_once(&format!("{stem}:"))
                    .is_some_and(|(_, rest)| rest.starts_with(|c: char| c.is_ascii_digit()))
            });
            assert!(
                loaded || placed,
                "{kind} `{}` = {value}: neither loaded nor a problem at its line: {report}",
                path.join(".")
            );
        }
    }
    world.write(file, &serde_json::to_string_pretty(base).unwrap());
}

#[test]
fn every_key_written_empty_or_of_the_wrong_shape_is_read_or_named_at_its_line() {
    let world = World::new();
    let activation = serde_json::json!({
        "source": {"connection": world.connection(), "table": "orders", "primary_key": ["order_id"]},
        "destination": "trustpilot",
        "first_run": "send_all",
        "mapping": {"reference_number": "order_id", "consumer_name": "full_name", "consumer_email": "email"},
    });
    every_key_is_read_or_named(&world, "activation", "activations/orders.yaml", &activation);
    let url = world.emulator().url();
    let destination = serde_json::json!({
        "type": "trustpilot",
        "auth": {"api_key": "${TP_KEY}", "api_secret": "${TP_SECRET}", "business_user_id": "user-emulator"},
        "endpoints": {"auth": url, "invitations": url},
        "defaults": {"business_unit_id": "bu-emulator"},
    });
    every_key_is_read_or_named(
        &world,
        "destination",
        "destinations/trustpilot.yaml",
        &destination,
    );
}

/// Two activations of 200 rows each (`orders`, `orders2`) under one
/// destination whose `limits.max_per_month` is 20.
fn two_under_one_allowance(world: &World) {
    world.write_destination_with("limits:\n  max_per_month: 20\n");
    world.insert(1, 200, None, None);
    world.sql("CREATE TABLE orders2 AS SELECT * FROM orders");
    let yaml = std::fs::read_to_string(world.config_dir().join("activations/orders.yaml"))
        .unwrap()
        .replace(
            &format!("table: {}", world.table()),
            &format!("table: {}2", world.table()),
        );
    world.write("activations/orders2.yaml", &yaml);
}

/// What both runs sent, from their JSON summaries (one object, or one a line).
fn sent_by(outputs: &[Output]) -> u64 {
    outputs
        .iter()
        .flat_map(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let whole: Option<Value> = serde_json::from_str(&text).ok();
            match whole {
                Some(Value::Array(runs)) => runs,
                Some(one) => vec![one],
                None => text
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect(),
            }
        })
        .map(|run| count(&run, "sent"))
        .sum()
}

#[test]
fn a_monthly_allowance_holds_for_two_activations_run_together() {
    let world = World::new();
    two_under_one_allowance(&world);
    let out = world.retl(&["run", "orders", "orders2", "--json"], "emulator-secret");
    assert!(matches!(out.status.code(), Some(0 | 3)), "{out:?}");
    assert_eq!(world.emulator().invitations().len(), 20, "{out:?}");
    assert_eq!(sent_by(&[out]), 20);
    // Nothing more this month, whichever runs.
    let again = world.retl(&["run", "orders", "orders2", "--json"], "emulator-secret");
    assert_eq!(sent_by(&[again]), 0);
    assert_eq!(world.emulator().invitations().len(), 20);
}

#[test]
fn a_monthly_allowance_holds_for_two_processes_on_a_postgresql_state() {
    let Some(world) = World::new().with_postgres_state() else {
        return;
    };
    two_under_one_allowance(&world);
    let spawn = |name: &str| {
        world
            .command(&["run", name, "--json"], "emulator-secret")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("orders"), spawn("orders2"));
    let outputs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    assert_eq!(world.emulator().invitations().len(), 20, "{outputs:?}");
    assert_eq!(sent_by(&outputs), 20);
}

/// Whether any of `needles` is in any file of the state's directory.
fn state_files_holding(dir: &std::path::Path, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("state.db") {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        for needle in needles {
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(format!("{name}: {needle}"));
            }
        }
    }
    found
}

#[test]
fn forget_leaves_no_byte_of_the_person_in_the_state_and_she_is_never_invited_again() {
    let world = World::new();
    // A customers table keyed by email: her address is the key.
    world.sql(
        "CREATE TABLE customers (email TEXT PRIMARY KEY, full_name TEXT, locale TEXT);
         INSERT INTO customers VALUES
           ('Ann.Quux@Bücher.example', 'Annabel Quuxley', 'en-US'),
           ('bob@shop.example', 'Bob Stone', 'en-US')",
    );
    world.write(
        "activations/customers.yaml",
        &format!(
            "source:\n  connection: {}\n  table: customers\n  primary_key: [email]\ndestination: trustpilot\nfirst_run: send_all\ndedupe:\n  by: consumer_email\n  within: 365d\nmapping:\n  reference_number: locale\n  consumer_name: full_name\n  consumer_email: email\n",
            world.connection()
        ),
    );
    let out = world.retl(&["run", "customers", "--json"], "emulator-secret");
    assert_eq!(count(&summary(&out), "sent"), 2, "{out:?}");
    let needles = [
        "Ann.Quux@Bücher.example",
        "ann.quux@bücher.example",
        "ann.quux@xn--bcher-kva.example",
        "Ann.Quux",
        "ann.quux",
        "Annabel Quuxley",
    ];
    assert!(
        !state_files_holding(world.dir.path(), &needles).is_empty(),
        "the key is in the state before"
    );

    let out = world.retl(
        &[
            "forget",
            "--email",
            "ann.quux@xn--bcher-kva.example",
            "--json",
        ],
        "emulator-secret",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let left = state_files_holding(world.dir.path(), &needles);
    assert!(left.is_empty(), "left after forget: {left:?}");
    assert!(
        !state_files_holding(world.dir.path(), &["bob@shop.example"]).is_empty(),
        "others stay"
    );

    // Her key stays settled; a new order of hers is withheld, saying why.
    let again = world.retl(&["run", "customers", "--json"], "emulator-secret");
    assert_eq!(count(&summary(&again), "sent"), 0);
    world.insert(1, 1, None, None);
    world.sql("UPDATE orders SET email = 'ANN.QUUX@bücher.example' WHERE order_id = 1");
    let (code, order) = world.run();
    assert_eq!(code, 0, "{order}");
    assert_eq!(
        (count(&order, "sent"), count(&order, "suppressed")),
        (0, 1),
        "{order}"
    );
    let found = world.retl(
        &[
            "runs",
            "find",
            "--email",
            "Ann.Quux@Bücher.example",
            "--json",
        ],
        "emulator-secret",
    );
    let found = summary(&found);
    assert!(found["forgotten_at"].is_string(), "{found}");
    let reason = found["rows"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("asked to be forgotten on"), "{reason}");
    assert_eq!(world.emulator().invitations().len(), 2);
}

#[test]
fn forget_leaves_no_row_holding_the_person_on_a_postgresql_state() {
    let Some(world) = World::new().with_postgres_state() else {
        return;
    };
    world.sql(
        "CREATE TABLE customers (email TEXT PRIMARY KEY, full_name TEXT, locale TEXT);
         INSERT INTO customers VALUES ('Ann.Quux@Bücher.example', 'Annabel Quuxley', 'en-US')",
    );
    world.write(
        "activations/customers.yaml",
        &format!(
            "source:\n  connection: {}\n  table: customers\n  primary_key: [email]\ndestination: trustpilot\nfirst_run: send_all\ndedupe:\n  by: consumer_email\n  within: 365d\nmapping:\n  reference_number: locale\n  consumer_name: full_name\n  consumer_email: email\n",
            world.connection()
        ),
    );
    let out = world.retl(&["run", "customers", "--json"], "emulator-secret");
    assert_eq!(count(&summary(&out), "sent"), 1, "{out:?}");
    let (url, schema) = world.pg_state.clone().unwrap();
    let holding = || -> i64 {
        world.runtime.block_on(async {
            use sqlx::ConnectOptions as _;
            let mut conn = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(&url)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut total = 0;
            for table in ["ledger", "run_rows", "runs", "contacts", "erasures", "forgotten"] {
                let n: i64 = sqlx::query_scalar(&format!(
                    "SELECT COUNT(*) FROM {schema}.{table} t WHERE lower(t::text) LIKE '%ann.quux%' OR t::text LIKE '%Quuxley%'"
                ))
                .fetch_one(&mut conn)
                .await
                .unwrap();
                total += n;
            }
            total
        })
    };
    assert!(holding() > 0, "her key is in the ledger before");
    let out = world.retl(
        &["forget", "--email", "ann.quux@bücher.example", "--json"],
        "emulator-secret",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(holding(), 0);
}
