//! A person's email, never stored: run-log rows keep a keyed hash of it
//! (HMAC-SHA-256 under a secret made once per state database and kept in
//! it), so support can ask "did she get an invitation?" by email
//! ([`State::find_rows_by_contact`]) while a copy of the state leaks no
//! address.
//!
//! An address is compared trimmed and lowercased. Plus-addresses are kept
//! as written: `ann+shop@example.com` and `ann@example.com` are two
//! addresses (some providers deliver both to one mailbox, others do not).

use std::fmt;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::db::on;
use crate::{Error, Result, State};

/// The secret of one state database that contact hashes are made with.
#[derive(Clone)]
pub struct ContactKey([u8; 32]);

impl fmt::Debug for ContactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContactKey(***)")
    }
}

/// An email as it is compared: trimmed, lowercased, its domain in its
/// ASCII form (IDNA: `bücher.example` is `xn--bcher-kva.example`, one
/// domain written two ways). The local part is kept as written, lowercased.
pub(crate) fn normalize(email: &str) -> String {
    let email = email.trim().to_lowercase();
    match email.rsplit_once('@') {
        Some((local, domain)) => match idna::domain_to_ascii(domain) {
            Ok(ascii) if !ascii.is_empty() => format!("{local}@{ascii}"),
            _ => email,
        },
        None => email,
    }
}

/// `email` as releases before IDNA compared it: trimmed, lowercased, its
/// domain in its Unicode form as written (an ASCII form stayed ASCII).
fn legacy_forms(email: &str) -> Vec<String> {
    let email = email.trim().to_lowercase();
    let mut forms = vec![email.clone()];
    if let Some((local, domain)) = email.rsplit_once('@') {
        let (unicode, found) = idna::domain_to_unicode(domain);
        if found.is_ok() {
            forms.push(format!("{local}@{unicode}"));
        }
    }
    forms
}

impl ContactKey {
    /// The keyed hash of `email` (normalised), as hex.
    pub fn hash(&self, email: &str) -> String {
        self.mac(&normalize(email))
    }

    /// The keyed hashes an older release may have kept for `email` (its
    /// domain in Unicode), where they differ from [`hash`](Self::hash):
    /// looked up beside it, so that an invitation made before domains were
    /// compared in one form still counts.
    pub fn legacy_hashes(&self, email: &str) -> Vec<String> {
        let now = self.hash(email);
        let mut hashes: Vec<String> = Vec::new();
        for form in legacy_forms(email) {
            let hash = self.mac(&form);
            if hash != now && !hashes.contains(&hash) {
                hashes.push(hash);
            }
        }
        hashes
    }

    fn mac(&self, text: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(text.as_bytes());
        hex(&mac.finalize().into_bytes())
    }
}

/// `bytes` as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut hex, b| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// `text` with anything that looks like an email address replaced by
/// `<email>`: a destination's answer, kept in the run log, may quote one.
pub(crate) fn scrub(text: &str) -> String {
    let looks_like_email = |word: &str| {
        let word = word.trim_matches(|c: char| !c.is_alphanumeric());
        word.split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
    };
    if !text.contains('@') {
        return text.to_owned();
    }
    text.split(' ')
        .map(|word| {
            if looks_like_email(word) {
                "<email>"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

const NAME: &str = "contact_hmac_v1";
const IDENTITY: &str = "state_identity_v1";

fn hex_bytes(text: &str) -> Option<[u8; 32]> {
    let mut key = [0; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

impl State {
    /// This database's contact key, made (32 random bytes) and kept on
    /// first use; two processes making it at once keep the first one's.
    pub async fn contact_key(&self) -> Result<ContactKey> {
        if let Some(key) = self.existing_contact_key().await? {
            return Ok(key);
        }
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| Error::Corrupt {
            what: "contact key",
            detail: format!("no randomness: {e}"),
        })?;
        let hex = hex(&fresh);
        on!(self.db.executor(), |c| sqlx::query(
            "INSERT INTO state_keys (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        )
        .bind(NAME)
        .bind(&hex)
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(Error::db("keep the contact key"))?;
        self.existing_contact_key()
            .await?
            .ok_or_else(|| Error::Corrupt {
                what: "contact key",
                detail: "not kept".to_owned(),
            })
    }

    /// This state database's identity: 16 random bytes as hex, made once
    /// on first use and kept. What the state keeps elsewhere in its name
    /// (the key table in a warehouse) is told apart from another state's by it.
    pub async fn identity(&self) -> Result<String> {
        if let Some(id) = self.existing_identity().await? {
            return Ok(id);
        }
        let mut fresh = [0u8; 16];
        getrandom::fill(&mut fresh).map_err(|e| Error::Corrupt {
            what: "state identity",
            detail: format!("no randomness: {e}"),
        })?;
        on!(self.db.executor(), |c| sqlx::query(
            "INSERT INTO state_keys (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        )
        .bind(IDENTITY)
        .bind(hex(&fresh))
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(Error::db("keep the state's identity"))?;
        self.existing_identity()
            .await?
            .ok_or_else(|| Error::Corrupt {
                what: "state identity",
                detail: "not kept".to_owned(),
            })
    }

    /// This state database's identity, if one was made (a preview makes none).
    pub async fn existing_identity(&self) -> Result<Option<String>> {
        let found: Option<(String,)> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT value FROM state_keys WHERE name = $1"
        )
        .bind(IDENTITY)
        .fetch_optional(c)
        .await)
        .map_err(Error::db("read the state's identity"))?;
        Ok(found.map(|(id,)| id))
    }

    /// This database's contact key, if one was made (a preview makes none).
    pub async fn existing_contact_key(&self) -> Result<Option<ContactKey>> {
        let found: Option<(String,)> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT value FROM state_keys WHERE name = $1"
        )
        .bind(NAME)
        .fetch_optional(c)
        .await)
        .map_err(Error::db("read the contact key"))?;
        match found {
            None => Ok(None),
            Some((hex,)) => hex_bytes(&hex)
                .map(|k| Some(ContactKey(k)))
                .ok_or(Error::Corrupt {
                    what: "contact key",
                    detail: "not 32 bytes of hex".to_owned(),
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_compared_trimmed_and_lowercased_and_plus_addresses_kept() {
        let key = ContactKey([7; 32]);
        assert_eq!(key.hash(" Ann@Example.COM "), key.hash("ann@example.com"));
        assert_ne!(
            key.hash("ann+shop@example.com"),
            key.hash("ann@example.com")
        );
        assert_ne!(
            ContactKey([8; 32]).hash("ann@example.com"),
            key.hash("ann@example.com")
        );
        assert_eq!(key.hash("a@b.co").len(), 64);
        // One domain, written in Unicode or in its ASCII form: one customer.
        assert_eq!(
            key.hash("Ann@Bücher.example"),
            key.hash("ann@xn--bcher-kva.example")
        );
        assert_ne!(
            key.hash("ann@bücher.example"),
            key.hash("ann@bucher.example")
        );
        // What an older release kept for either form is looked up too.
        let legacy = ContactKey([7; 32]).mac("ann@bücher.example");
        assert!(
            key.legacy_hashes("ann@xn--bcher-kva.example")
                .contains(&legacy)
        );
        assert!(key.legacy_hashes("ann@bücher.example").contains(&legacy));
        assert!(key.legacy_hashes("ann@example.com").is_empty());
        assert_eq!(format!("{key:?}"), "ContactKey(***)");
    }

    #[test]
    fn an_answer_quoting_an_address_is_kept_without_it() {
        assert_eq!(
            scrub("invalid consumerEmail (ann@example.com) for business unit"),
            "invalid consumerEmail <email> for business unit"
        );
        assert_eq!(
            scrub("HTTP 500: retry in 5-15 minutes"),
            "HTTP 500: retry in 5-15 minutes"
        );
    }

    #[tokio::test]
    async fn one_key_per_database_made_once() {
        let (_dir, state) = crate::test_state().await;
        assert!(state.existing_contact_key().await.unwrap().is_none());
        let made = state.contact_key().await.unwrap();
        let again = state.contact_key().await.unwrap();
        assert_eq!(made.hash("a@b.co"), again.hash("a@b.co"));
    }
}
