//! Access tokens: minted once, shared within the process, cached across runs.
//!
//! Trustpilot answers 429 to clients that mint tokens too often, and a token
//! lives about 100 hours. So a token is kept per (auth host, API key, grant
//! identity) for the whole process, minted by one caller at a time, and, when
//! a cache directory is given, saved in a file only its owner can read, so the
//! next `retl run` (a new process, minutes later) reuses it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::Secret;
use crate::pace::{Limiter, RateWindow};

/// A token with the moment it should be renewed.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) access: Secret,
    pub(crate) refresh: Option<Secret>,
    /// Seconds since the epoch after which the token is renewed.
    pub(crate) renew_at: u64,
    pub(crate) generation: u64,
}

impl Token {
    pub(crate) fn fresh(&self) -> bool {
        now_secs() < self.renew_at
    }
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What a process shares between clients with the same credentials.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) token: tokio::sync::Mutex<Option<Token>>,
    pub(crate) limiter: Arc<Limiter>,
}

/// The shared state for `identity` (the token) and `pacing_key` (the limiter).
///
/// Pacing is per API key and host, as Trustpilot counts it; the windows of the
/// first client built for a key apply to every later one.
pub(crate) fn shared(identity: &str, pacing_key: &str, windows: Vec<RateWindow>) -> Arc<Shared> {
    static TOKENS: OnceLock<Mutex<HashMap<String, Arc<Shared>>>> = OnceLock::new();
    static LIMITERS: OnceLock<Mutex<HashMap<String, Arc<Limiter>>>> = OnceLock::new();
    let limiter = LIMITERS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(pacing_key.to_owned())
        .or_insert_with(|| Arc::new(Limiter::new(windows)))
        .clone();
    TOKENS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(identity.to_owned())
        .or_insert_with(|| {
            Arc::new(Shared {
                token: tokio::sync::Mutex::new(None),
                limiter,
            })
        })
        .clone()
}

/// A hex SHA-256 (first 16 bytes) of text that holds secrets, safe to keep and show.
pub(crate) fn digest(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest[..16].iter().fold(String::new(), |mut hex, b| {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// The cache file name for an identity (already a digest).
pub(crate) fn cache_name(identity: &str) -> String {
    format!("token-{identity}.json")
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Cached {
    access_token: String,
    refresh_token: Option<String>,
    renew_at: u64,
}

/// Reads a cached token, if there is a fresh one.
pub(crate) fn load(dir: &Path, identity: &str) -> Option<Token> {
    let text = std::fs::read_to_string(dir.join(cache_name(identity))).ok()?;
    let cached: Cached = serde_json::from_str(&text).ok()?;
    let token = Token {
        access: Secret::new(cached.access_token),
        refresh: cached.refresh_token.map(Secret::new),
        renew_at: cached.renew_at,
        generation: 1,
    };
    token.fresh().then_some(token)
}

/// Saves a token readable by its owner only (written aside, then renamed).
pub(crate) fn save(dir: &Path, identity: &str, token: &Token) -> std::io::Result<()> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir)?;
    let path: PathBuf = dir.join(cache_name(identity));
    let aside = path.with_extension("tmp");
    let cached = Cached {
        access_token: token.access.expose().to_owned(),
        refresh_token: token.refresh.as_ref().map(|r| r.expose().to_owned()),
        renew_at: token.renew_at,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&aside)?;
    file.write_all(
        serde_json::to_string(&cached)
            .map_err(std::io::Error::other)?
            .as_bytes(),
    )?;
    file.sync_all()?;
    std::fs::rename(aside, path)
}

/// When to renew a token that lives `lifetime`: five minutes early, or halfway for short ones.
pub(crate) fn renew_at(lifetime: Duration) -> u64 {
    let margin = Duration::from_mins(5).min(lifetime / 2);
    now_secs() + lifetime.saturating_sub(margin).as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_token_is_private_and_read_back_while_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let token = Token {
            access: Secret::new("tok-1"),
            refresh: None,
            renew_at: now_secs() + 3600,
            generation: 7,
        };
        save(dir.path(), "id", &token).unwrap();
        let path = dir.path().join(cache_name("id"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(load(dir.path(), "id").unwrap().access.expose(), "tok-1");
        assert!(load(dir.path(), "other").is_none());
        let stale = Token {
            renew_at: now_secs() - 1,
            ..token
        };
        save(dir.path(), "id", &stale).unwrap();
        assert!(
            load(dir.path(), "id").is_none(),
            "a stale token is not used"
        );
        assert!(!digest("key-abc").contains("key-abc"));
    }
}
