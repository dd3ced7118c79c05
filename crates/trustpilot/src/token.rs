//! Access tokens: minted once, shared within the process, cached across runs.
//!
//! Trustpilot answers 429 to clients that mint tokens too often, and a token
//! lives about 100 hours. So a token is kept per (auth host, API key, grant
//! identity) for the whole process, minted by one caller at a time, and, when
//! a cache directory is given, saved in a file only its owner can read, so the
//! next `retl run` (a new process, minutes later) reuses it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::Secret;
use crate::pace::Limiter;

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

/// What the clients of one registry with the same credentials share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) token: tokio::sync::Mutex<Option<Token>>,
    pub(crate) limiter: Arc<Limiter>,
    /// Whether a too-short token lifetime was warned of (once).
    pub(crate) short_lifetime_warned: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// No token yet, paced by `limiter`.
    pub(crate) fn new(limiter: Arc<Limiter>) -> Shared {
        Shared {
            token: tokio::sync::Mutex::new(None),
            limiter,
            short_lifetime_warned: std::sync::atomic::AtomicBool::new(false),
        }
    }
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

/// Reads a cached token, if there is a fresh one in a private directory
/// (see [`private_dir`]); a symlink, or a file others can read, is not used.
pub(crate) fn load(dir: &Path, identity: &str) -> Option<Token> {
    private_dir(dir).ok()?;
    let path = dir.join(cache_name(identity));
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.file_type().is_file() || group_or_other_bits(&meta, 0o077) {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let cached: Cached = serde_json::from_str(&text).ok()?;
    let token = Token {
        access: Secret::new(cached.access_token),
        refresh: cached.refresh_token.map(Secret::new),
        renew_at: cached.renew_at,
        generation: 1,
    };
    token.fresh().then_some(token)
}

/// Whether `meta`'s permission bits include any of `bits` (never on non-Unix).
fn group_or_other_bits(meta: &std::fs::Metadata, bits: u32) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        meta.permissions().mode() & bits != 0
    }
    #[cfg(not(unix))]
    {
        let _ = (meta, bits);
        false
    }
}

/// Makes sure the cache directory exists (created `0700`) and that no one
/// but its owner can write to it: in a directory others can write to, they
/// could put a file or a link where the token goes.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.file_type().is_dir() {
        return Err(std::io::Error::other(format!(
            "the token directory {} is not a directory (a link?)",
            dir.display()
        )));
    }
    if group_or_other_bits(&meta, 0o022) {
        return Err(std::io::Error::other(format!(
            "the token directory {} can be written by others: make it private (chmod 700)",
            dir.display()
        )));
    }
    Ok(())
}

/// Saves a token readable by its owner only: written to a new file of mode
/// `0600` (created exclusively, so neither a stale file nor a link planted
/// in its place is reused), then renamed over the cache file.
pub(crate) fn save(dir: &Path, identity: &str, token: &Token) -> std::io::Result<()> {
    use std::io::Write as _;
    private_dir(dir)?;
    let path: PathBuf = dir.join(cache_name(identity));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let aside = dir.join(format!(
        "{}.{}-{nanos}.tmp",
        cache_name(identity),
        std::process::id()
    ));
    let cached = Cached {
        access_token: token.access.expose().to_owned(),
        refresh_token: token.refresh.as_ref().map(|r| r.expose().to_owned()),
        renew_at: token.renew_at,
    };
    let mut options = std::fs::OpenOptions::new();
    // create_new is O_CREAT|O_EXCL: it fails on any existing path, a link included.
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&aside)?;
    let written = (|| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            // Whatever the umask: owner read and write, nothing else.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(
            serde_json::to_string(&cached)
                .map_err(std::io::Error::other)?
                .as_bytes(),
        )?;
        file.sync_all()?;
        std::fs::rename(&aside, &path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&aside);
    }
    written
}

/// The shortest token lifetime retl believes: a shorter `expires_in` (even
/// 0) would have it mint a token per request, which Trustpilot answers 429.
pub(crate) const MIN_LIFETIME: Duration = Duration::from_mins(1);

/// `expires_in` as retl uses it: at least [`MIN_LIFETIME`]; `true` when it was raised.
pub(crate) fn floored(lifetime: Duration) -> (Duration, bool) {
    if lifetime < MIN_LIFETIME {
        (MIN_LIFETIME, true)
    } else {
        (lifetime, false)
    }
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

    fn token() -> Token {
        Token {
            access: Secret::new("tok-2"),
            refresh: None,
            renew_at: now_secs() + 3600,
            generation: 1,
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_stale_world_readable_file_aside_does_not_make_the_token_readable() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("tokens");
        std::fs::create_dir(&cache).unwrap();
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
        // What an earlier release left behind: a 0644 file aside, and a link
        // where the cache file goes.
        let stale = cache.join("token-id.tmp");
        std::fs::write(&stale, "old").unwrap();
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&elsewhere, cache.join(cache_name("id"))).unwrap();
        save(&cache, "id", &token()).unwrap();
        let path = cache.join(cache_name("id"));
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(
            meta.file_type().is_file(),
            "the link was replaced, not followed"
        );
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert!(!elsewhere.exists(), "nothing written through the link");
        assert_eq!(load(&cache, "id").unwrap().access.expose(), "tok-2");
        // A cache file others can read is not trusted.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load(&cache, "id").is_none());
    }

    #[cfg(unix)]
    #[test]
    fn a_token_directory_others_can_write_to_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = save(&open, "id", &token()).unwrap_err();
        assert!(
            error.to_string().contains("can be written by others"),
            "{error}"
        );
        assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0);
        // A new directory is made private.
        let new = dir.path().join("a/b");
        save(&new, "id", &token()).unwrap();
        let mode = std::fs::metadata(&new).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_lifetime_below_the_floor_is_taken_as_the_floor() {
        assert_eq!(floored(Duration::ZERO), (MIN_LIFETIME, true));
        assert_eq!(floored(Duration::from_secs(59)), (MIN_LIFETIME, true));
        assert_eq!(
            floored(Duration::from_secs(359_999)),
            (Duration::from_secs(359_999), false)
        );
    }
}
