//! `retl demo`: the whole path on embedded defaults, in a temporary directory.

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;

use anyhow::Context as _;
use retl_engine::config::Project;
use retl_state::{RowOutcome, State};
use retl_trustpilot_emulator::{Emulator, EmulatorConfig};
use sqlx::ConnectOptions as _;
use sqlx::sqlite::SqliteConnectOptions;

use crate::exit::Exit;
use crate::{Failure, exit_code, output};

const FIRST_NAMES: [&str; 10] = [
    "Ada", "Bo", "Chen", "Dana", "Emil", "Femi", "Greta", "Hiro", "Ines", "Jonas",
];
const LAST_NAMES: [&str; 5] = ["Larsen", "Okafor", "Silva", "Novak", "Berg"];
const LOCALES: [&str; 3] = ["en-US", "da-DK", "de-DE"];

fn activation_yaml(warehouse: &Path) -> String {
    format!(
        "# New orders get a service and a product review invitation.
source:
  connection: sqlite://{}
  table: orders
  primary_key: [order_id]
destination: trustpilot
target:
  invitation_type: both
  product: {{ per_row: true }}
mapping:
  reference_number: order_id
  consumer_name: full_name
  consumer_email: email
  locale: locale
  product_sku: sku
",
        warehouse.display()
    )
}

fn destination_yaml() -> String {
    "# The demo's destination: `retl emulator` (port 8787 unless
# TRUSTPILOT_EMULATOR_URL says otherwise), with the credentials it accepts.
type: trustpilot
auth:
  grant: client_credentials
  api_key: ${TRUSTPILOT_API_KEY:-emulator-key}
  api_secret: ${TRUSTPILOT_API_SECRET:-emulator-secret}
  business_user_id: user-emulator
endpoints:            # the local emulator instead of Trustpilot's hosts
  auth: ${TRUSTPILOT_EMULATOR_URL:-http://127.0.0.1:8787}
  invitations: ${TRUSTPILOT_EMULATOR_URL:-http://127.0.0.1:8787}
defaults:
  business_unit_id: bu-emulator
  sender_name: Demo Shop
  reply_to: support@demo-shop.example
  service:
    tags: [demo]
"
    .to_owned()
}

async fn insert_orders(url: &str, from: u32, to: u32, bad: &[u32]) -> anyhow::Result<()> {
    let mut conn = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .connect()
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS orders (
            order_id TEXT PRIMARY KEY, full_name TEXT, email TEXT, locale TEXT, sku TEXT, ordered_at TEXT)",
    )
    .execute(&mut conn)
    .await?;
    for i in from..=to {
        let first = FIRST_NAMES[(i as usize) % FIRST_NAMES.len()];
        let last = LAST_NAMES[(i as usize / 3) % LAST_NAMES.len()];
        let mut name = Some(format!("{first} {last}"));
        let mut email = format!(
            "{}.{}{i}@example.com",
            first.to_lowercase(),
            last.to_lowercase()
        );
        if bad.first() == Some(&i) {
            email = format!("{}-at-example.com", first.to_lowercase());
        } else if bad.get(1) == Some(&i) {
            name = None;
        }
        sqlx::query("INSERT INTO orders VALUES (?1, ?2, ?3, ?4, ?5, datetime('now'))")
            .bind(format!("ORD-{}", 1000 + i))
            .bind(name)
            .bind(email)
            .bind(LOCALES[(i as usize) % LOCALES.len()])
            .bind(format!("SKU-{}", 100 + i % 7))
            .execute(&mut conn)
            .await?;
    }
    Ok(())
}

/// `retl demo [--keep DIR]`.
#[allow(clippy::too_many_lines)] // the demo is a script: its steps read in the order a user sees them
pub(crate) async fn demo(keep: Option<&Path>) -> Result<Exit, Failure> {
    let temporary;
    let root = match keep {
        Some(dir) => {
            if dir.join("configs").exists() || dir.join("warehouse.db").exists() {
                return Err(Failure::usage(anyhow::anyhow!(
                    "`{}` already holds a demo (configs/ or warehouse.db): choose another directory",
                    dir.display()
                )));
            }
            std::fs::create_dir_all(dir)?;
            std::path::absolute(dir)?
        }
        None => {
            temporary = tempfile::Builder::new().prefix("retl-demo-").tempdir()?;
            temporary.path().to_owned()
        }
    };
    let root = root.as_path();
    let warehouse = root.join("warehouse.db");
    let warehouse_url = format!("sqlite://{}", warehouse.display());
    insert_orders(&warehouse_url, 1, 50, &[17, 33])
        .await
        .context("creating the demo warehouse")?;

    let emulator = Emulator::start(
        EmulatorConfig::default(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .context("starting the trustpilot emulator")?;
    let config_dir = root.join("configs");
    std::fs::create_dir_all(config_dir.join("destinations"))?;
    std::fs::create_dir_all(config_dir.join("activations"))?;
    std::fs::write(
        config_dir.join("destinations/trustpilot.yaml"),
        destination_yaml(),
    )?;
    std::fs::write(
        config_dir.join("activations/orders.yaml"),
        activation_yaml(&warehouse),
    )?;
    let defaults = EmulatorConfig::default();
    let emulator_url = emulator.url();
    let env = move |name: &str| match name {
        "TRUSTPILOT_API_KEY" => Some(defaults.api_key.clone()),
        "TRUSTPILOT_API_SECRET" => Some(defaults.api_secret.clone()),
        "TRUSTPILOT_EMULATOR_URL" => Some(emulator_url.clone()),
        _ => None,
    };
    let project = Project::load_with_env(&config_dir, &env, &crate::registry())?;
    let (activation, destination) = project.activation("orders")?;
    let state_url = format!("sqlite://{}", root.join(".retl/state.db").display());
    let state = State::open(&state_url).await?;

    if keep.is_some() {
        println!("retl demo, in {} (kept)", root.display());
    } else {
        println!(
            "retl demo, in {} (removed when the demo ends; --keep DIR keeps it)",
            root.display()
        );
    }
    println!(
        "  warehouse: {} (50 orders; ORD-1017 has a bad email, ORD-1033 no name)",
        warehouse.display()
    );
    println!("  trustpilot emulator: {}\n", emulator.url());

    println!("== first run: every order is new ==");
    let first = retl_engine::run(&state, activation, destination).await?;
    output::print_human(&first.summary.text());
    let rows = state.run_rows(&first.summary.run_id).await?;
    let not_sent: Vec<_> = rows
        .into_iter()
        .filter(|r| r.outcome != RowOutcome::Sent)
        .collect();
    println!("\nrows not sent in this run:");
    output::print_human(&retl_state::text::rows_table(&not_sent));
    exit_code(&first)?;

    println!("\n== 5 new orders arrive, and ORD-1002's customer changes their email ==");
    insert_orders(&warehouse_url, 51, 55, &[]).await?;
    let mut conn = SqliteConnectOptions::from_str(&warehouse_url)?
        .connect()
        .await
        .map_err(anyhow::Error::from)?;
    sqlx::query("UPDATE orders SET email = 'bo.new@example.com' WHERE order_id = 'ORD-1002'")
        .execute(&mut conn)
        .await
        .map_err(anyhow::Error::from)?;

    println!("\n== second run: only the new orders are sent ==");
    let second = retl_engine::run(&state, activation, destination).await?;
    output::print_human(&second.summary.text());
    println!("\nits run log:");
    print!(
        "{}",
        retl_state::text::rows_table(&state.run_rows(&second.summary.run_id).await?)
    );

    let accepted = emulator.invitations();
    println!(
        "\nthe emulator accepted {} invitations, each reference number once: {}",
        accepted.len(),
        {
            let mut refs: Vec<_> = accepted.iter().filter_map(|i| i.reference()).collect();
            let n = refs.len();
            refs.sort_unstable();
            refs.dedup();
            if refs.len() == n { "yes" } else { "NO" }
        }
    );
    if let Some(example) = accepted.last() {
        println!(
            "the last request body it received:\n{}",
            serde_json::to_string_pretty(&example.body)?
        );
    }
    emulator.stop().await?;
    if keep.is_some() {
        // The demo's emulator is gone: the kept ledger answers for the
        // emulator the kept configuration reaches next (a stand-in, not a
        // Trustpilot whose invitations could be lost).
        state.release_destination("orders").await?;
        println!(
            "
Kept in {root}: warehouse.db, configs/ and the state in .retl/.
To rerun it yourself, start the emulator and run the activation:
  retl emulator &
  sqlite3 {root}/warehouse.db \"INSERT INTO orders VALUES ('ORD-2001', 'New Customer', 'new@example.com', 'en-US', 'SKU-101', datetime('now'))\"
  retl --config-dir {root}/configs --state {state_url} run orders",
            root = root.display(),
        );
    } else {
        println!(
            "\nNext: `retl demo --keep DIR` keeps all of this to edit and rerun; `retl init` writes a commented configs/ to start your own."
        );
    }
    exit_code(&second)
}
