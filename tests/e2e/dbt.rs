//! dbt models as sources: a real dbt project (`fixtures/dbt`) built with
//! real dbt (dbt-core and dbt-postgres from their wheels, in the virtualenv
//! scripts/test.sh makes) against the test PostgreSQL, then read by name.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::{World, count, json, server_url};

/// The dbt project copied into the world's project as `analytics/`, with a
/// profile for the test PostgreSQL that builds into `schema`.
fn project(world: &World, pg_url: &str, schema: &str) -> PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/fixtures/dbt");
    let dir = world.config_dir().parent().unwrap().join("analytics");
    for file in [
        "dbt_project.yml",
        "models/orders.sql",
        "models/order_lines.sql",
        "models/schema.yml",
    ] {
        let to = dir.join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(fixture.join(file), to).unwrap();
    }
    let url = url::Url::parse(pg_url).unwrap();
    std::fs::write(
        dir.join("profiles.yml"),
        format!(
            "shop:\n  target: test\n  outputs:\n    test:\n      type: postgres\n      host: {}\n      port: {}\n      user: {}\n      password: \"{}\"\n      dbname: {}\n      schema: {schema}\n      threads: 1\n",
            url.host_str().unwrap(),
            url.port().unwrap_or(5432),
            url.username(),
            url.password().unwrap_or_default(),
            url.path().trim_start_matches('/'),
        ),
    )
    .unwrap();
    dir
}

/// Runs `dbt ARGS` in the project; panics with its output when it fails.
fn dbt(binary: &str, dir: &Path, args: &[&str]) {
    let out = Command::new(binary)
        .args(args)
        .arg("--project-dir")
        .arg(dir)
        .arg("--profiles-dir")
        .arg(dir)
        .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dbt {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn activation(world: &World, pg_url: &str, dbt: &str) {
    world.write(
        "activations/orders.yaml",
        &format!(
            "owner: crm-team@shop.example\nsource:\n  connection: {pg_url}\n  dbt: {dbt}\ndestination: trustpilot\nfirst_run: send_all\nmapping:\n  reference_number: order_ref\n  consumer_name: full_name\n  consumer_email: email\n"
        ),
    );
}

#[test]
fn an_activation_reads_a_dbt_model_by_name() {
    let (Some(binary), Some(pg_url)) = (
        server_url("RETL_TEST_DBT"),
        server_url("RETL_TEST_POSTGRES_URL"),
    ) else {
        return;
    };
    let world = World::new();
    let schema = format!("retl_dbt_{}", std::process::id());
    let dir = project(&world, &pg_url, &schema);
    dbt(&binary, &dir, &["run"]);
    activation(&world, &pg_url, "{model: orders, project_dir: analytics}");

    let (code, check, stderr) = json(&world, &["check", "--json"]);
    assert_eq!(code, 0, "{check} {stderr}");
    let (code, first, stderr) = json(&world, &["run", "orders", "--json"]);
    assert_eq!((code, count(&first, "sent")), (0, 3), "{stderr}");
    // The key is dbt's primary key constraint (order_id), not the reference.
    let (_, shown, _) = json(&world, &["runs", "show", "latest", "--json"]);
    let keys: Vec<&str> = shown["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"1") && !keys.contains(&"R-1"), "{shown}");
    let (_, again, _) = json(&world, &["run", "orders", "--json"]);
    assert_eq!(count(&again, "already_sent"), 3, "{again}");

    // A name the manifest does not have: a problem at its line, with a did-you-mean.
    activation(&world, &pg_url, "{model: ordrs, project_dir: analytics}");
    let out = world.retl(&["check"], "emulator-secret");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("orders.yaml:")
            && said.contains("dbt model `ordrs` is not in")
            && said.contains("did you mean `orders`?"),
        "{said}"
    );
    // An ephemeral model has no relation.
    activation(
        &world,
        &pg_url,
        "{model: order_lines, project_dir: analytics}",
    );
    let said =
        String::from_utf8_lossy(&world.retl(&["check"], "emulator-secret").stdout).into_owned();
    assert!(
        said.contains("dbt model `order_lines` is ephemeral"),
        "{said}"
    );

    // The model's SQL changed after dbt parsed the project: check says so.
    activation(&world, &pg_url, "{model: orders, project_dir: analytics}");
    let parsed = std::fs::metadata(dir.join("target/manifest.json"))
        .unwrap()
        .modified()
        .unwrap();
    let sql = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("models/orders.sql"))
        .unwrap();
    sql.set_modified(parsed + std::time::Duration::from_mins(1))
        .unwrap();
    let (_, check, _) = json(&world, &["check", "--json"]);
    assert!(
        check["activations"][0]["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("older than")),
        "{check}"
    );

    // A manifest elsewhere: `dbt parse --target-path`.
    dbt(&binary, &dir, &["parse", "--target-path", "parsed"]);
    activation(
        &world,
        &pg_url,
        "{model: orders, manifest: analytics/parsed/manifest.json}",
    );
    let (code, check, _) = json(&world, &["check", "--json"]);
    assert_eq!(code, 0, "{check}");

    // In the manifest, but not in the warehouse: not built.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    super::pg_exec(
        &runtime,
        &pg_url,
        &format!("ALTER TABLE {schema}.orders RENAME TO orders_away"),
    );
    let said =
        String::from_utf8_lossy(&world.retl(&["check"], "emulator-secret").stdout).into_owned();
    assert!(said.contains("is it built? `dbt run -s orders`"), "{said}");
    super::pg_exec(
        &runtime,
        &pg_url,
        &format!("ALTER TABLE {schema}.orders_away RENAME TO orders"),
    );

    exposures_reach_dbt(&world, &binary, &dir);
    super::pg_exec(&runtime, &pg_url, &format!("DROP SCHEMA {schema} CASCADE"));
}

/// `retl dbt exposures` names the activation, its owner and its model, and
/// dbt reads the file.
fn exposures_reach_dbt(world: &World, binary: &str, dir: &Path) {
    // dbt's lineage: the activation as an exposure.
    let out = world.retl(&["dbt", "exposures"], "emulator-secret");
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(
        yaml.contains("name: retl_orders")
            && yaml.contains("\"ref('orders')\"")
            && yaml.contains("email: \"crm-team@shop.example\""),
        "{yaml}"
    );
    std::fs::write(dir.join("models/retl_exposures.yml"), yaml.as_bytes()).unwrap();
    dbt(binary, dir, &["parse"]);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("target/manifest.json")).unwrap())
            .unwrap();
    assert!(
        manifest["exposures"]["exposure.shop.retl_orders"].is_object(),
        "dbt reads the exposure"
    );
}
