//! The configuration files on disk against the version the daemon runs. The
//! daemon reloads on SIGHUP only (a half-saved file must not become the
//! running configuration); when the files change without one, the page, the
//! log and `retl_config_changed_on_disk` say that what runs is not what
//! `retl check` and `retl preview` read.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

/// Each configuration file with its modification time and size.
type Snapshot = Vec<(PathBuf, Option<SystemTime>, u64)>;

/// The YAML files under `dir`, in order, with their times and sizes.
fn snapshot(dir: &Path) -> Snapshot {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                found.push((path, meta.modified().ok(), meta.len()));
            }
        }
    }
    found.sort();
    found
}

/// The files the daemon loaded, to compare with those on disk.
#[derive(Default)]
pub(crate) struct Drift {
    loaded: Mutex<Option<(PathBuf, Snapshot, String)>>,
    /// Whether the change was already logged (once per change).
    said: AtomicBool,
}

impl Drift {
    /// The configuration under `dir` was (re)loaded at `at`.
    pub(crate) fn loaded(&self, dir: &Path, at: String) {
        *self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((dir.to_owned(), snapshot(dir), at));
        self.said.store(false, Ordering::SeqCst);
    }

    /// What to say when the files on disk differ from those loaded (logged
    /// once per change).
    pub(crate) fn changed(&self) -> Option<String> {
        let loaded = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (dir, before, at) = loaded.as_ref()?;
        let now = snapshot(dir);
        if now == *before {
            return None;
        }
        let differ: Vec<String> = now
            .iter()
            .filter(|file| !before.contains(file))
            .map(|(path, ..)| path.display().to_string())
            .chain(
                before
                    .iter()
                    .filter(|(path, ..)| !now.iter().any(|(p, ..)| p == path))
                    .map(|(path, ..)| format!("{} (removed)", path.display())),
            )
            .collect();
        let message = format!(
            "the configuration files changed on disk since the daemon loaded them at {at} ({}): it runs the loaded version until SIGHUP (`kill -HUP <pid>`) reloads them; `retl check` and `retl preview` read the files on disk",
            differ.join(", ")
        );
        if !self.said.swap(true, Ordering::SeqCst) {
            tracing::warn!(target: "retl", "{message}");
        }
        Some(message)
    }
}
