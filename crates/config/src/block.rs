//! One declaration per YAML block: its keys, each with its JSON Schema.
//!
//! A [`Block`] is the only place a block's keys are spelled. The reader takes
//! its allowed keys from it ([`Reader::block`](crate::Reader::block)), and
//! `retl schema` its schema ([`Block::schema`]), so a key cannot be accepted
//! and missing from the schema, or the other way round. The reader of the
//! block's values still asks for each key by name; in debug builds (every
//! test) asking for a key the block does not declare panics, and so does a
//! file read without a problem in which a declared key was present but never
//! asked for: a key added to the declaration and forgotten by its reader.
//!
//! Declared with [`block!`](crate::block):
//!
//! ```
//! use retl_config::schema::{duration, string};
//!
//! retl_config::block! {
//!     /// `retention:`.
//!     pub static RETENTION = "how long run logs are kept", required [] {
//!         "run_logs" => duration("run logs older than this are pruned"),
//!         "note" => string("a note"),
//!     }
//! }
//! assert_eq!(RETENTION.names(), ["run_logs", "note"]);
//! assert_eq!(RETENTION.schema()["additionalProperties"], false);
//! ```

use serde_json::Value;

use crate::schema::object;

/// One key of a [`Block`].
#[derive(Clone, Copy)]
pub struct Key {
    /// The key as written in YAML.
    pub name: &'static str,
    /// Its JSON Schema.
    pub schema: fn() -> Value,
}

/// A YAML mapping's keys: what its reader accepts and what its JSON Schema
/// allows, declared once.
pub struct Block {
    /// What the block is for (the schema's description).
    pub description: &'static str,
    /// The keys the schema requires (the reader says `missing field` itself,
    /// with a hint of what to write).
    pub required: &'static [&'static str],
    /// A block whose keys this one has too, first (a target's settings are
    /// the destination's defaults and two more).
    pub base: Option<&'static Block>,
    /// The keys, in the order the schema lists them.
    pub keys: &'static [Key],
    /// Keys no longer in use that the reader still accepts, to say what
    /// replaced them; never in the schema.
    pub retired: &'static [&'static str],
}

impl Block {
    /// Every key's declaration, the base block's first; a key this block
    /// declares again replaces the base's in its place.
    pub fn all(&self) -> Vec<Key> {
        let mut keys = self.base.map(Block::all).unwrap_or_default();
        for key in self.keys {
            match keys.iter_mut().find(|k| k.name == key.name) {
                Some(base) => *base = *key,
                None => keys.push(*key),
            }
        }
        keys
    }

    /// The keys (not the retired ones), in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.all().iter().map(|k| k.name).collect()
    }

    /// The keys the reader accepts: the declared and the retired ones.
    pub(crate) fn accepted(&self) -> Vec<&'static str> {
        let mut names = self.names();
        names.extend_from_slice(self.retired);
        names
    }

    /// Whether the reader may ask for `key`.
    pub(crate) fn declares(&self, key: &str) -> bool {
        self.retired.contains(&key) || self.all().iter().any(|k| k.name == key)
    }

    /// The JSON Schema of the block: an object with exactly its keys.
    pub fn schema(&self) -> Value {
        self.schema_described(self.description)
    }

    /// [`schema`](Self::schema) with another description (one block read in
    /// two places that say different things of it).
    pub fn schema_described(&self, description: &str) -> Value {
        object(
            description,
            self.all()
                .into_iter()
                .map(|k| (k.name, (k.schema)()))
                .collect(),
            self.required,
        )
    }
}

/// Declares a [`Block`]: `static NAME = "description", required [..] { "key"
/// => schema, … }`, optionally `base BLOCK` after `required`, and `retired
/// [..]` at the end. Each schema is an expression evaluated when the schema
/// is printed.
#[macro_export]
macro_rules! block {
    (
        $(#[$meta:meta])*
        $vis:vis static $name:ident = $description:expr, required [$($required:literal),* $(,)?]
        $(, base $base:path)?
        { $($key:literal => $schema:expr),+ $(,)? }
        $(retired [$($retired:literal),* $(,)?])?
    ) => {
        $(#[$meta])*
        $vis static $name: $crate::Block = $crate::Block {
            description: $description,
            required: &[$($required),*],
            base: $crate::block!(@base $($base)?),
            keys: &[$($crate::Key { name: $key, schema: || $schema }),+],
            retired: &[$($($retired),*)?],
        };
    };
    (@base) => { None };
    (@base $base:path) => { Some(&$base) };
}

#[cfg(test)]
mod tests {
    use crate::schema::{boolean, keys, string};
    use crate::{Node, Reader};

    crate::block! {
        static BASE = "the base", required ["a"] {
            "a" => string("a"),
        }
    }
    crate::block! {
        static MORE = "more", required [], base BASE {
            "b" => boolean("b"),
            "a" => boolean("a, as a flag"),
        } retired ["old"]
    }

    fn doc(text: &str) -> Node<'_> {
        crate::parse(std::path::Path::new("x.yaml"), text).unwrap()
    }

    #[test]
    fn a_block_with_a_base_has_its_keys_first_and_no_retired_one() {
        assert_eq!(MORE.names(), ["a", "b"]);
        assert_eq!(keys(&MORE.schema()), ["a", "b"]);
        assert_eq!(MORE.schema()["required"], serde_json::json!([]));
        assert_eq!(
            MORE.schema()["properties"]["a"]["description"],
            "a, as a flag"
        );
        assert_eq!(BASE.schema()["required"], serde_json::json!(["a"]));
    }

    #[test]
    fn the_reader_accepts_the_declared_and_retired_keys_and_no_other() {
        let file = std::path::Path::new("x.yaml");
        let text = "a: 1\nb: true\nold: 2\nc: 3\n";
        let env = |_: &str| None;
        let mut r = Reader::new(file, text, &env);
        let node = doc(text);
        let map = r.block(&node, "", &MORE).unwrap();
        assert!(map.get("old").is_some());
        map.entries();
        drop(map);
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(r.problems[0].message.contains("unknown field `c`"));
        assert!(r.problems[0].message.contains("expected one of: a, b, old"));
    }

    #[test]
    #[should_panic(expected = "is not declared")]
    fn asking_for_an_undeclared_key_panics_in_tests() {
        let file = std::path::Path::new("x.yaml");
        let env = |_: &str| None;
        let mut r = Reader::new(file, "a: 1\n", &env);
        let node = doc("a: 1\n");
        let map = r.block(&node, "", &BASE).unwrap();
        let _ = map.get("zzz");
    }

    #[test]
    #[should_panic(expected = "never read")]
    fn a_declared_key_its_reader_forgets_panics_in_tests() {
        let file = std::path::Path::new("x.yaml");
        let env = |_: &str| None;
        let mut r = Reader::new(file, "a: 1\nb: true\n", &env);
        let node = doc("a: 1\nb: true\n");
        let map = r.block(&node, "", &MORE).unwrap();
        let _ = map.get("a");
        drop(map);
        let _ = r.finish(Some(()));
    }
}
