//! `retl init [DIR]`: a commented `configs/` tree to start from.
//!
//! The files are the repository's own `configs/` (embedded at build time),
//! so the reference users start from is the one the tests check.

use std::path::Path;

use crate::Failure;
use crate::exit::Exit;

/// The files `init` writes, under `DIR/configs/`.
const FILES: [(&str, &str); 3] = [
    (
        "destinations/trustpilot.yaml",
        include_str!("../../../../configs/destinations/trustpilot.yaml"),
    ),
    (
        "activations/orders.yaml",
        include_str!("../../../../configs/activations/orders.yaml"),
    ),
    (
        "targets.yaml",
        include_str!("../../../../configs/targets.yaml"),
    ),
];

/// `retl init`.
pub(crate) fn init(dir: &Path) -> Result<Exit, Failure> {
    let configs = dir.join("configs");
    let existing: Vec<String> = FILES
        .iter()
        .map(|(rel, _)| configs.join(rel))
        .filter(|path| path.exists())
        .map(|path| path.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(Failure::usage(anyhow::anyhow!(
            "not overwriting what is there (nothing was written): {}",
            existing.join(", ")
        )));
    }
    for (rel, text) in FILES {
        let path = configs.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        println!("wrote {}", path.display());
    }
    let config_dir = configs.display();
    println!(
        "
Next:
  1. Edit the files: every option is there, with what it does.
  2. Set the variables they use (or put them in a file for --env-file):
       WAREHOUSE_URL, TRUSTPILOT_API_KEY, TRUSTPILOT_API_SECRET,
       TRUSTPILOT_BUSINESS_USER_ID, TRUSTPILOT_BUSINESS_UNIT_ID
     retl --config-dir {config_dir} check   lists the ones still to set.
  3. Try it on the emulator first (`retl emulator` in another terminal):
       retl --config-dir {config_dir} --target emulator check
       retl --config-dir {config_dir} --target emulator run orders
     then with --target prod against Trustpilot."
    );
    Ok(Exit::Ok)
}
