//! The secrets a configuration holds, and the one function that hides
//! them in text retl did not write: a driver's, a database's or a server's
//! message, which may quote an option or a URL as it was given (a driver
//! that cannot parse a URL quotes it raw, password and all).
//!
//! Known secrets are the values of `${VAR}`s whose names look secret, the
//! password of every connection URL (taken from the text, even when it does
//! not parse as a URL), the values of URL query parameters and ADBC options
//! whose names look secret ([`is_secret_name`](crate::is_secret_name)).
//! Every message that leaves retl (printed, stored in a run log, served, sent
//! in an alert) passes through [`Secrets::mask`] first.

use std::fmt;

/// Values that must never appear in a message.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(Vec<String>);

impl fmt::Debug for Secrets {
    /// How many, never what.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({})", self.0.len())
    }
}

/// What a secret is replaced with.
const MASK: &str = "***";

/// Secrets shorter than this are not masked in free text: a two-letter
/// password would mask every word it appears in (and hide nothing).
const SHORTEST: usize = 3;

impl Secrets {
    /// No secret.
    pub fn new() -> Secrets {
        Secrets::default()
    }

    /// Adds `value`, as written and in its percent-encoded and decoded forms
    /// (a driver may print either).
    pub fn add(&mut self, value: &str) {
        let decoded = percent_encoding::percent_decode_str(value)
            .decode_utf8_lossy()
            .into_owned();
        let encoded =
            percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        for form in [value.to_owned(), decoded, encoded] {
            if form.chars().count() >= SHORTEST && !self.0.contains(&form) {
                self.0.push(form);
            }
        }
        // Longest first: a secret that contains another is masked whole.
        self.0.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Adds the secrets of a connection URL, read from its text whether or
    /// not it parses: the password of `user:password@` (with `@`, `/`, `#`,
    /// `[` or `?` in it too) and the values of query parameters whose names
    /// look secret.
    pub fn add_url(&mut self, url: &str) {
        let Some((_, rest)) = url.split_once("://") else {
            return;
        };
        // The userinfo ends at an `@`: the last one, or (when a query or a
        // path holds one too) the first. Both are taken: masking one text
        // too many hides nothing a person needs.
        for end in [rest.rfind('@'), rest.find('@')].into_iter().flatten() {
            if let Some((_, password)) = rest[..end].split_once(':') {
                self.add(password);
            }
        }
        if let Some((_, query)) = rest.split_once('?') {
            for pair in query.split('&') {
                if let Some((name, value)) = pair.split_once('=')
                    && crate::is_secret_name(name)
                {
                    self.add(value.split('#').next().unwrap_or(value));
                }
            }
        }
    }

    /// Adds every secret of `other`.
    pub fn extend(&mut self, other: &Secrets) {
        for value in &other.0 {
            if !self.0.contains(value) {
                self.0.push(value.clone());
            }
        }
        self.0.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every secret replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.0 {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_masked_in_a_url_that_does_not_parse() {
        for (url, password) in [
            ("postgresql://ro:Secret@[bad/db", "Secret"),
            ("postgresql://ro:pa[ss#wo/rd@db.example/shop", "pa[ss#wo/rd"),
            ("mysql://app:p%40ss%2Fword@db:3306/shop", "p%40ss%2Fword"),
            ("postgres://u:x?y@host/db?sslpassword=k3y-value", "x?y"),
        ] {
            let mut secrets = Secrets::new();
            secrets.add_url(url);
            let message = format!("driver: invalid uri: \"{url}\"");
            let masked = secrets.mask(&message);
            assert!(!masked.contains(password), "{masked}");
            assert!(masked.contains("***"), "{masked}");
        }
        let mut secrets = Secrets::new();
        secrets.add_url("postgres://u:x?y@host/db?sslpassword=k3y-value&sslmode=require");
        let masked = secrets.mask("sslpassword=k3y-value sslmode=require");
        assert_eq!(masked, "sslpassword=*** sslmode=require");
    }

    #[test]
    fn decoded_and_encoded_forms_are_masked_and_debug_tells_none() {
        let mut secrets = Secrets::new();
        secrets.add("p@ss/word");
        assert_eq!(secrets.mask("a p%40ss%2Fword b p@ss/word"), "a *** b ***");
        let mut secrets = Secrets::new();
        secrets.add_url("mysql://app:p%40ss@db/shop");
        assert_eq!(secrets.mask("login p@ss failed"), "login *** failed");
        assert_eq!(format!("{secrets:?}"), "Secrets(3)");
        assert!(!format!("{secrets:?}").contains("p@ss"));
        // Too short to mask in free text.
        let mut secrets = Secrets::new();
        secrets.add("ab");
        assert_eq!(secrets.mask("a tab"), "a tab");
    }
}
