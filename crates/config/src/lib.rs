//! The configuration reader every retl component reads its settings with.
//!
//! A typed walk over a YAML document that keeps every position and collects
//! every problem instead of stopping at the first.
//!
//! Serde deserialisation stops at the first unknown key or wrong type; users
//! fixing a file want all of them at once, each with its line and column. So
//! the loader parses with saphyr into position-marked nodes (scalars kept as
//! written, never guessed into numbers, so `007` stays `007`) and this module
//! reads them with small typed accessors that report into a shared list and
//! carry on.
//!
//! Each component owns its settings and their reader (the source in
//! `retl-source`, the Trustpilot destination in `retl-trustpilot`, the
//! activation in `retl-engine`); this crate only gives them the reader, the
//! [`Problem`] type with its `file:line:column`, and [`ConfigErrors`].
//!
//! The reader is hand-written rather than serde-derived on purpose: serde
//! stops at the first unknown key or wrong type, and it cannot keep the
//! position of every scalar once values are deserialised.

mod block;
pub mod limits;
mod reader;
pub mod schema;
mod secrets;

pub use block::{Block, Key};
pub use reader::{Map, Reader, child, closest, entries, items, join, text_of};
pub use secrets::Secrets;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use saphyr::{MarkedYaml, YamlLoader};
use saphyr_parser::Parser;

/// Where a problem is: file, line and column (both from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where it is (none for problems of the directory itself).
    pub location: Option<Location>,
    /// The field path (`source.primary_key[0]`), empty for the whole document.
    pub path: String,
    /// What is wrong and, where it helps, what is accepted.
    pub message: String,
    /// The offending line, to show under the message.
    pub excerpt: Option<Excerpt>,
}

/// The line a problem is on, and which part of it is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excerpt {
    /// The line's text.
    pub line: String,
    /// Where the offending text starts on it (in characters, from 0).
    pub start: usize,
    /// How many characters it spans (at least 1).
    pub width: usize,
}

impl fmt::Display for Excerpt {
    /// The line, and a line of `^` under the offending text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "    | {}", self.line)?;
        write!(
            f,
            "    | {}{}",
            " ".repeat(self.start),
            "^".repeat(self.width.max(1))
        )
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every configuration problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<Problem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "{n} configuration problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for problem in &self.0 {
            write!(f, "\n  {problem}")?;
            if let Some(excerpt) = &problem.excerpt {
                write!(f, "\n{excerpt}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Problem {
    /// A problem of a whole file (line 1, column 1), such as a clash of names.
    pub fn in_file(file: &Path, path: &str, message: impl Into<String>) -> Problem {
        Problem {
            location: Some(Location {
                file: file.to_owned(),
                line: 1,
                column: 1,
            }),
            path: path.to_owned(),
            message: message.into(),
            excerpt: None,
        }
    }

    /// A problem with no file (the configuration directory, the command line).
    pub fn general(message: impl Into<String>) -> Problem {
        Problem {
            location: None,
            path: String::new(),
            message: message.into(),
            excerpt: None,
        }
    }
}

/// Declares an enum whose every spelling is one and the same: the
/// configuration value it is read from, the text it is written as (JSON, the
/// database, messages), `--help` and the JSON Schema's choices all come from
/// its `= "text"`. It derives `serde`'s traits (the calling crate depends on
/// `serde`) and gives `ALL`, `CHOICES`, `as_str`, `Display` and `FromStr`
/// (whose error lists the choices).
#[macro_export]
macro_rules! spelled {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        $vis enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// Every spelling, in declaration order.
            pub const CHOICES: &'static [&'static str] = &[$($text,)+];

            /// Its one spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> ::std::result::Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "`{other}` is not one of: {}",
                        $name::CHOICES.join(", ")
                    )),
                }
            }
        }
    };
}

/// A connection URL with its password replaced by `***`, for messages and
/// logs (configuration holds URLs; no component prints one unmasked).
///
/// Masked are the password of `user:password@`, and the value of every query
/// parameter whose name suggests a secret ([`is_secret_name`]), such as
/// `?password=…` (which the PostgreSQL and MySQL drivers accept) or
/// `?sslpassword=…`, `?token=…`, `?private_key=…`.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        // Not a URL to the `url` crate (a password with `[` or `#` in it,
        // say): what looks like its secrets is masked in the text.
        let mut secrets = Secrets::new();
        secrets.add_url(url);
        return secrets.mask(url);
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if let Some(query) = parsed.query() {
        // Pair by pair as written (a value-less `password` stays as it is).
        let masked: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_secret_name(name) => format!("{name}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        parsed.set_query(Some(&masked.join("&")));
    }
    parsed.to_string()
}

/// Whether a parameter's name suggests that its value is a secret: it
/// contains `pass`, `pwd`, `secret`, `token`, `key`, `credential` or `auth`,
/// in any case and wherever in the name (`sslpassword`, `api_token`).
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "credential",
        "auth",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// An error and its causes, `: `-joined, each cause once: what a person reads
/// in a message or a run log (a library's own message often names only the
/// operation; the reason, such as "connection refused", is in its sources).
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Parses a duration written the human way: `30s`, `15m`, `12h`, `3d`, `1w`.
///
/// Uses `humantime`, so combinations (`1h 30m`) are accepted as well.
pub fn parse_duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text.trim()).ok()
}

/// A YAML node with its position.
pub type Node<'a> = MarkedYaml<'a>;

/// Parses one document; `Err` is a syntax problem.
pub fn parse<'a>(file: &Path, text: &'a str) -> Result<Node<'a>, Problem> {
    let mut loader = YamlLoader::<Node<'a>>::default();
    loader.early_parse(false);
    let mut parser = Parser::new_from_str(text);
    let syntax = |marker: &saphyr::Marker, info: &str| Problem {
        location: Some(Location {
            file: file.to_owned(),
            line: marker.line(),
            column: marker.col() + 1,
        }),
        path: String::new(),
        message: format!("invalid YAML: {info}"),
        excerpt: excerpt(text, marker.line(), marker.col(), 1),
    };
    if let Err(e) = parser.load(&mut loader, false) {
        return Err(syntax(e.marker(), e.info()));
    }
    if let Some(e) = loader.error() {
        return Err(syntax(e.marker(), e.info()));
    }
    loader
        .into_documents()
        .into_iter()
        .next()
        .ok_or_else(|| Problem {
            location: Some(Location {
                file: file.to_owned(),
                line: 1,
                column: 1,
            }),
            path: String::new(),
            message: "the file is empty".to_owned(),
            excerpt: None,
        })
}

/// The line `line` (from 1) of `text`, with `width` characters from `column` (from 0) marked.
pub(crate) fn excerpt(text: &str, line: usize, column: usize, width: usize) -> Option<Excerpt> {
    let content = text.lines().nth(line.checked_sub(1)?)?;
    let length = content.chars().count();
    if column > length {
        return None;
    }
    Some(Excerpt {
        line: content.to_owned(),
        start: column,
        width: width.clamp(1, (length - column).max(1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "KEY").then(|| "k-123".to_owned())
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_all_reported_with_positions() {
        let text = "name: a\ntabel: x\nsource:\n  - 1\nbatch: lots\n";
        let file = Path::new("a.yaml");
        let doc = parse(file, text).unwrap();
        let mut r = Reader::new(file, text, &env);
        let map = r.map(&doc, "", &["name", "source", "batch"]).unwrap();
        r.map(map.get("source").unwrap(), "source", &[]);
        r.number(map.get("batch").unwrap(), "batch", 1, 10);
        let shown: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            vec![
                "a.yaml:2:1: tabel: unknown field `tabel`: expected one of: name, source, batch",
                "a.yaml:4:3: source: expected a mapping, found a list",
                "a.yaml:5:8: batch: expected a whole number from 1 to 10, found `lots`",
            ]
        );
    }

    #[test]
    fn a_read_that_gives_up_on_a_key_with_no_value_names_that_key() {
        let text = "name: a\ntable:\n";
        let file = Path::new("a.yaml");
        let doc = parse(file, text).unwrap();
        let mut r = Reader::new(file, text, &env);
        let map = r.map(&doc, "", &["name", "table"]).unwrap();
        let table = map.get("table").and_then(|n| r.string(n, "table"));
        let (value, problems) = r.finish(table);
        assert_eq!(value, None);
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert!(shown[0].starts_with("a.yaml:2:"), "{shown:?}");
        assert!(shown[0].contains("`table` has no value"), "{shown:?}");

        // A key with no value that the read did without: its default, no problem.
        let mut r = Reader::new(file, text, &env);
        let map = r.map(&doc, "", &["name", "table"]).unwrap();
        let _ = map.get("table").and_then(|n| r.string(n, "table"));
        let (value, problems) = r.finish(Some("default"));
        assert_eq!((value, problems.len()), (Some("default"), 0));

        // A read that gives up with nothing to name still names the file.
        let r = Reader::new(file, text, &env);
        let (value, problems) = r.finish(None::<()>);
        assert_eq!(value, None);
        assert!(
            problems[0].to_string().starts_with("a.yaml"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_problem_with_a_value_from_the_environment_quotes_it_as_written() {
        let file = Path::new("d.yaml");
        let text = "concurrency: ${KEY}\nauth: \"x${KEY}\"\n";
        let doc = parse(file, text).unwrap();
        let mut r = Reader::new(file, text, &env);
        let map = r.map(&doc, "", &[]).unwrap();
        r.number(map.get("concurrency").unwrap(), "concurrency", 1, 64);
        let auth = map.get("auth").unwrap();
        let url = r.string(auth, "auth").unwrap();
        r.problem(auth, "auth", format!("`{url}` is not a URL"));
        let shown: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            vec![
                "d.yaml:1:14: concurrency: expected a whole number from 1 to 64, found `${KEY}`",
                "d.yaml:2:7: auth: `x${KEY}` is not a URL",
            ]
        );
        let all = format!("{:?}", r.problems);
        assert!(!all.contains("k-123"), "{all}");
    }

    #[test]
    fn environment_variables_are_replaced_and_missing_ones_named() {
        let file = Path::new("d.yaml");
        let text = "a: \"${KEY}-x\"\nb: ${NOPE}\nc: $${KEY} costs $5\n";
        let doc = parse(file, text).unwrap();
        let mut r = Reader::new(file, text, &env);
        let map = r.map(&doc, "", &[]).unwrap();
        assert_eq!(
            r.string(map.get("a").unwrap(), "a").as_deref(),
            Some("k-123-x")
        );
        assert_eq!(r.string(map.get("b").unwrap(), "b"), None);
        assert_eq!(
            r.string(map.get("c").unwrap(), "c").as_deref(),
            Some("${KEY} costs $5")
        );
        assert_eq!(
            r.problems[0].to_string(),
            "d.yaml:2:4: b: environment variable `NOPE` is not set"
        );
    }

    #[test]
    fn defaults_and_required_messages_work_as_in_a_shell() {
        let file = Path::new("e.yaml");
        let text = "a: ${NOPE:-fallback}\nb: ${KEY:-unused}\nc: ${EMPTY:-was-empty}\nd: ${NOPE:?set it to your API key}\ne: ${EMPTY}\n";
        let doc = parse(file, text).unwrap();
        let env = |name: &str| match name {
            "KEY" => Some("k".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let mut r = Reader::new(file, text, &env);
        let map = r.map(&doc, "", &[]).unwrap();
        let mut get = |key| r.string(map.get(key).unwrap(), key);
        assert_eq!(get("a").as_deref(), Some("fallback"));
        assert_eq!(get("b").as_deref(), Some("k"));
        assert_eq!(
            get("c").as_deref(),
            Some("was-empty"),
            ":- also covers an empty value"
        );
        assert_eq!(get("d"), None);
        assert_eq!(
            get("e").as_deref(),
            Some(""),
            "without :- an empty value stays empty"
        );
        assert_eq!(
            r.problems[0].to_string(),
            "e.yaml:4:4: d: environment variable `NOPE` is not set: set it to your API key"
        );
    }

    #[test]
    fn a_typo_gets_the_closest_name_and_the_line_is_shown_underlined() {
        let file = Path::new("t.yaml");
        let text = "mapping:\n  consumer_emial: email\nkind: servce\n";
        let doc = parse(file, text).unwrap();
        let mut r = Reader::new(file, text, &env);
        let map = r.map(&doc, "", &["mapping", "kind"]).unwrap();
        r.map(
            map.get("mapping").unwrap(),
            "mapping",
            &["consumer_name", "consumer_email", "locale"],
        );
        r.choice(
            map.get("kind").unwrap(),
            "kind",
            &["service", "product", "both"],
        );
        r.map(map.get("mapping").unwrap(), "mapping", &["zzz"]);
        let shown: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown[..2],
            [
                "t.yaml:2:3: mapping.consumer_emial: unknown field `consumer_emial`: did you mean consumer_email? expected one of: consumer_name, consumer_email, locale",
                "t.yaml:3:7: kind: invalid value `servce`: did you mean service? expected one of: service, product, both",
            ]
        );
        assert!(
            !shown[2].contains("did you mean"),
            "no hint when nothing is close: {}",
            shown[2]
        );
        let all = ConfigErrors(r.problems.clone()).to_string();
        assert!(
            all.contains("\n    |   consumer_emial: email\n    |   ^^^^^^^^^^^^^^\n"),
            "{all}"
        );
        assert!(
            all.contains("\n    | kind: servce\n    |       ^^^^^^"),
            "{all}"
        );
    }

    #[test]
    fn scalars_keep_their_written_form() {
        let file = Path::new("s.yaml");
        let text = "id: 007\non: yes\n";
        let doc = parse(file, text).unwrap();
        let mut r = Reader::new(file, text, &env);
        let map = r.map(&doc, "", &[]).unwrap();
        assert_eq!(
            r.string(map.get("id").unwrap(), "id").as_deref(),
            Some("007")
        );
        assert_eq!(
            r.string(map.get("on").unwrap(), "on").as_deref(),
            Some("yes")
        );
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://etl:s3cret@db.example:5432/wh"),
            "postgres://etl:***@db.example:5432/wh"
        );
        assert_eq!(
            redact_url("sqlite://.retl/state.db"),
            "sqlite://.retl/state.db"
        );
        assert_eq!(redact_url("postgres://etl@db/wh"), "postgres://etl@db/wh");
        assert_eq!(
            redact_url("postgres://etl@db/wh?password=s3cret&sslmode=require"),
            "postgres://etl@db/wh?password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("mysql://db/wh?user=etl&PASSWORD=s3cret#x"),
            "mysql://db/wh?user=etl&PASSWORD=***#x"
        );
        assert_eq!(
            redact_url(
                "postgres://u:p%40ss@db?sslpassword=a&api_token=b&private-key=c&Credentials=d&application_name=retl"
            ),
            "postgres://u:***@db?sslpassword=***&api_token=***&private-key=***&Credentials=***&application_name=retl"
        );
        assert_eq!(
            redact_url("postgres://db?password"),
            "postgres://db?password"
        );
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let file = Path::new("bad.yaml");
        let problem = parse(file, "a: [1, 2\nb: c\n").unwrap_err();
        assert!(problem.to_string().starts_with("bad.yaml:"), "{problem}");
        assert!(problem.message.starts_with("invalid YAML"));
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let file = Path::new("twice.yaml");
        let problem = parse(file, "a: 1\na: 2\n").unwrap_err();
        assert_eq!(
            problem.to_string(),
            "twice.yaml:2:1: invalid YAML: duplicated key in mapping"
        );
    }
}
