//! Semi-structured columns mapped to list fields (tags, product SKUs) are
//! read as JSON, never split on commas by accident: a JSON array of
//! strings is the list as it is, commas inside an element included; any
//! other JSON rejects the row with a reason naming the column and how to
//! extract a list in a `query:`. Plain text is still split on commas.

use super::{Kind, World, count, row_with};

/// The tags the emulator accepted for order `reference`.
fn tags(world: &World, reference: &str) -> serde_json::Value {
    world.bodies()[reference]["serviceReviewInvitation"]["tags"].clone()
}

#[test]
fn postgresql_json_and_arrays_are_lists_and_other_json_is_explained() {
    let Some(world) = World::with(Kind::Postgres) else {
        return;
    };
    world.sql(
        "ALTER TABLE orders ADD COLUMN tags jsonb, ADD COLUMN labels text[], ADD COLUMN note text",
    );
    world.insert(1, 4, None, None);
    world.sql(r#"UPDATE orders SET tags = '["gift, wrapped", "vip"]' WHERE order_id = 1"#);
    world.sql(r#"UPDATE orders SET tags = '{"sku": "S-2"}' WHERE order_id = 2"#);
    world.sql("UPDATE orders SET labels = ARRAY['a, b', 'c'] WHERE order_id = 4");
    world.sql("UPDATE orders SET note = 'x, y' WHERE order_id = 4");
    world.edit_activation(|yaml| {
        yaml.replace("  locale: locale\n", "  locale: locale\n  tags: tags\n")
    });
    let (code, summary) = world.run();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(
        (count(&summary, "sent"), count(&summary, "rejected")),
        (3, 1),
        "{summary}"
    );
    assert_eq!(
        tags(&world, "1"),
        serde_json::json!(["gift, wrapped", "vip"])
    );
    let log = world.show(summary["run_id"].as_str().unwrap());
    let rejected = row_with(&log, "rejected");
    let reason = rejected["reason"].as_str().unwrap();
    assert!(reason.contains("column `tags`"), "{reason}");
    assert!(reason.contains("holds a JSON object"), "{reason}");
    assert!(reason.contains("query:"), "{reason}");

    // A text[] column is its elements; a text column is split on commas.
    world.edit_activation(|yaml| yaml.replace("  tags: tags\n", "  tags: labels\n"));
    world.insert(5, 5, None, None);
    world.sql("UPDATE orders SET labels = ARRAY['d, e'] WHERE order_id = 5");
    let (code, second) = world.run();
    assert_eq!((code, count(&second, "sent")), (0, 2), "{second}");
    assert_eq!(tags(&world, "5"), serde_json::json!(["d, e"]));
    world.edit_activation(|yaml| yaml.replace("  tags: labels\n", "  tags: note\n"));
    world.insert(6, 6, None, None);
    world.sql("UPDATE orders SET note = 'x, y' WHERE order_id = 6");
    let (_, third) = world.run();
    assert_eq!(count(&third, "sent"), 1, "{third}");
    assert_eq!(tags(&world, "6"), serde_json::json!(["x", "y"]));
}

#[test]
fn a_snowflake_variant_is_a_list_never_split_on_its_commas() {
    let (Some(binary), Some(driver)) = (
        super::server_url("RETL_TEST_FAKESNOW"),
        super::server_url("RETL_TEST_ADBC_SNOWFLAKE_DRIVER"),
    ) else {
        return;
    };
    let (mut child, port) = super::adbc::fakesnow(&binary);
    super::adbc::snowflake_sql(
        &binary,
        port,
        r#"CREATE DATABASE SHOP;CREATE SCHEMA SHOP.SALES;CREATE TABLE SHOP.SALES.ORDERS (ORDER_ID NUMBER(38,0), FULL_NAME VARCHAR, EMAIL VARCHAR, TAGS VARIANT);INSERT INTO SHOP.SALES.ORDERS SELECT 1, 'Ann', 'ann@shop.example', PARSE_JSON('["S9894, gift", "wrapped"]');INSERT INTO SHOP.SALES.ORDERS SELECT 2, 'Bo', 'bo@shop.example', PARSE_JSON('{"sku": "S9894", "n": 9894}')"#,
    );
    let world = World::new();
    world.write(
        "activations/orders.yaml",
        &format!(
            "source:\n  connection: \"snowflake://fake:snow@fakesnow/SHOP/SALES?host=127.0.0.1&port={port}&protocol=http&driver={driver}\"\n  table: ORDERS\n  primary_key: [ORDER_ID]\ndestination: trustpilot\nfirst_run: send_all\nmapping:\n  reference_number: ORDER_ID\n  consumer_name: FULL_NAME\n  consumer_email: EMAIL\n  tags: TAGS\n"
        ),
    );
    let (code, summary) = world.run();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(
        (count(&summary, "sent"), count(&summary, "rejected")),
        (1, 1),
        "{summary}"
    );
    assert_eq!(
        tags(&world, "1"),
        serde_json::json!(["S9894, gift", "wrapped"])
    );
    let log = world.show(summary["run_id"].as_str().unwrap());
    let reason = row_with(&log, "rejected")["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reason.contains("column `TAGS`"), "{reason}");
    assert!(reason.contains("holds a JSON object"), "{reason}");
}
