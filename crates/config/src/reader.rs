//! [`Reader`]: typed accessors over position-marked YAML nodes that record
//! every problem (with its position, field path and the offending line) and
//! carry on, instead of stopping at the first.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use saphyr::{ScalarStyle, YamlData};

use crate::{Block, Location, Node, Problem, excerpt, parse_duration};

/// The name among `choices` closest to `wrong`, if one is close enough to be
/// what was meant (a typo, not another word).
pub fn closest<'c>(wrong: &str, choices: &[&'c str]) -> Option<&'c str> {
    choices
        .iter()
        .map(|c| (strsim::jaro_winkler(wrong, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// The node at `path` (mapping keys, one per level) under `node`, if there
/// is one; no problem is reported (the reader of those keys reports them).
pub fn child<'n, 'a>(node: &'n Node<'a>, path: &[&str]) -> Option<&'n Node<'a>> {
    let Some((first, rest)) = path.split_first() else {
        return Some(node);
    };
    let YamlData::Mapping(mapping) = &untagged(node).data else {
        return None;
    };
    let (_, value) = mapping
        .iter()
        .find(|(key, _)| scalar_text(key).is_some_and(|k| k == *first))?;
    child(value, rest)
}

/// `did you mean X? ` when a choice is close to `wrong`, else nothing.
fn hint(wrong: &str, choices: &[&str]) -> String {
    closest(wrong, choices).map_or_else(String::new, |c| format!("did you mean {c}? "))
}

/// Reads nodes of one file, collecting problems.
pub struct Reader<'f> {
    file: &'f Path,
    text: &'f str,
    env: &'f dyn Fn(&str) -> Option<String>,
    /// Every problem found so far.
    pub problems: Vec<Problem>,
    /// Keys written with no value (`table:` alone). Read as absent, so that
    /// an optional key takes its default; but a reader that then gives up
    /// without a problem gave up because of one of them: [`Reader::finish`]
    /// reports them.
    unset: Vec<Problem>,
    /// The values of `${VAR}`s whose names look secret.
    secrets: crate::Secrets,
    /// The file is left out because of another file's problems (already
    /// reported there): [`Reader::finish`] adds none of its own.
    elsewhere: bool,
    /// Values that came from the environment, with the text as written
    /// (`${VAR}`) and where: a problem quotes the text, never the value.
    substituted: Vec<Substituted>,
    /// Keys of [`Block`]s that were written but never asked for by their
    /// reader: a reader that forgot a declared key (checked in debug builds).
    unread: Rc<RefCell<Vec<String>>>,
}

/// A scalar whose `${VAR}`s were replaced by their values.
struct Substituted {
    line: usize,
    col: usize,
    value: String,
    written: String,
}

/// A mapping's entries, in document order, keys as text.
pub struct Map<'n, 'a> {
    /// The mapping node itself.
    pub node: &'n Node<'a>,
    entries: Vec<(String, &'n Node<'a>)>,
    /// Read through a [`Block`]: the keys asked for are checked against it,
    /// and those present but never asked for are told to the reader.
    declared: Option<Declared>,
}

/// What a [`Map`] read through a [`Block`] keeps to check its reader.
struct Declared {
    block: &'static Block,
    path: String,
    /// Per entry, whether its reader asked for it.
    asked: Vec<Cell<bool>>,
    /// Where the keys never asked for go, when the map is dropped.
    unread: Rc<RefCell<Vec<String>>>,
}

impl<'n, 'a> Map<'n, 'a> {
    /// The value of `key`, if present.
    ///
    /// # Panics
    /// In debug builds, when the map was read through a [`Block`] that does
    /// not declare `key`: a key read but not declared.
    pub fn get(&self, key: &str) -> Option<&'n Node<'a>> {
        if let Some(declared) = &self.declared {
            assert!(
                !cfg!(debug_assertions) || declared.block.declares(key),
                "`{}` is not declared in the block its reader reads it from",
                join(&declared.path, key)
            );
        }
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        if let Some(declared) = &self.declared {
            declared.asked[index].set(true);
        }
        Some(self.entries[index].1)
    }

    /// Says that `keys` are read by another reader of the same mapping (a
    /// destination file's `name` and `type`, read by the engine).
    pub fn read_elsewhere(&self, keys: &[&str]) {
        for key in keys {
            let _ = self.get(key);
        }
    }

    /// All entries.
    pub fn entries(&self) -> &[(String, &'n Node<'a>)] {
        if let Some(declared) = &self.declared {
            declared.asked.iter().for_each(|asked| asked.set(true));
        }
        &self.entries
    }
}

impl Drop for Map<'_, '_> {
    fn drop(&mut self) {
        let Some(declared) = &self.declared else {
            return;
        };
        let mut unread = declared.unread.borrow_mut();
        for ((key, _), asked) in self.entries.iter().zip(&declared.asked) {
            if !asked.get() {
                unread.push(join(&declared.path, key));
            }
        }
    }
}

/// Joins a field path.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn kind(node: &Node<'_>) -> &'static str {
    match &node.data {
        YamlData::Mapping(_) => "a mapping",
        YamlData::Sequence(_) => "a list",
        _ if is_null(node) => "null",
        _ => "a scalar",
    }
}

fn is_null(node: &Node<'_>) -> bool {
    match &node.data {
        YamlData::Representation(text, ScalarStyle::Plain, None) => {
            matches!(text.as_ref(), "" | "~" | "null" | "Null" | "NULL")
        }
        YamlData::Value(saphyr::Scalar::Null) => true,
        _ => false,
    }
}

fn untagged<'n, 'a>(node: &'n Node<'a>) -> &'n Node<'a> {
    match &node.data {
        YamlData::Tagged(_, inner) => untagged(inner),
        _ => node,
    }
}

/// A mapping's entries, keys as text (no problem reported), or `Err` when
/// `node` is not a mapping.
pub fn entries<'n, 'a>(node: &'n Node<'a>) -> Result<Vec<(String, &'n Node<'a>)>, &'n Node<'a>> {
    match &untagged(node).data {
        YamlData::Mapping(mapping) => Ok(mapping
            .iter()
            .filter_map(|(k, v)| Some((scalar_text(k)?.into_owned(), v)))
            .collect()),
        _ => Err(node),
    }
}

/// A sequence's items (no problem reported), or `Err` when `node` is not a
/// sequence (a scalar written for a list of one).
pub fn items<'n, 'a>(node: &'n Node<'a>) -> Result<&'n [Node<'a>], &'n Node<'a>> {
    match &untagged(node).data {
        YamlData::Sequence(items) => Ok(items),
        _ => Err(node),
    }
}

/// A scalar's text as written (no `${VAR}` replaced, no problem reported):
/// for finding where a value was written, after it was read.
pub fn text_of(node: &Node<'_>) -> Option<String> {
    scalar_text(node).map(Cow::into_owned)
}

fn scalar_text<'n>(node: &'n Node<'_>) -> Option<Cow<'n, str>> {
    match &untagged(node).data {
        YamlData::Representation(text, _, _) => Some(Cow::Borrowed(text.as_ref())),
        YamlData::Value(scalar) => Some(match scalar {
            saphyr::Scalar::String(s) => Cow::Borrowed(s.as_ref()),
            saphyr::Scalar::Integer(i) => Cow::Owned(i.to_string()),
            saphyr::Scalar::FloatingPoint(f) => Cow::Owned(f.to_string()),
            saphyr::Scalar::Boolean(b) => Cow::Owned(b.to_string()),
            saphyr::Scalar::Null => Cow::Borrowed(""),
        }),
        _ => None,
    }
}

impl<'f> Reader<'f> {
    /// A reader for `file`, whose text is `text`, looking `${VAR}`s up with `env`.
    pub fn new(file: &'f Path, text: &'f str, env: &'f dyn Fn(&str) -> Option<String>) -> Self {
        Reader {
            file,
            text,
            env,
            problems: Vec::new(),
            unset: Vec::new(),
            secrets: crate::Secrets::new(),
            elsewhere: false,
            substituted: Vec::new(),
            unread: Rc::default(),
        }
    }

    /// The values of the `${VAR}`s read so far whose names look secret
    /// (`${PG_PASSWORD}`, `${TP_API_SECRET}`): masked in every message.
    pub fn secrets(&self) -> &crate::Secrets {
        &self.secrets
    }

    /// Says that the file read is left out because of another file's
    /// problems, reported at that file (an activation whose destination
    /// file is broken): it gets no problem of its own.
    pub fn left_out_for_another_file(&mut self) {
        self.elsewhere = true;
    }

    /// The problems of a file read with this reader into `value`: those
    /// found; or, when the read gave nothing and found no problem, the keys
    /// written with no value (a key that has no default needs one); or, if
    /// there were none either, one problem saying the file was left out. A
    /// file is never left out without a problem at its file.
    ///
    /// # Panics
    /// In debug builds, when the file was read without a problem and a key
    /// its block declares was written but never read.
    pub fn finish<T>(mut self, value: Option<T>) -> (Option<T>, Vec<Problem>) {
        let unread = self.unread.borrow();
        assert!(
            !cfg!(debug_assertions)
                || value.is_none()
                || !self.problems.is_empty()
                || unread.is_empty(),
            "declared keys never read by their reader: {}",
            unread.join(", ")
        );
        drop(unread);
        if self.problems.is_empty() && value.is_none() && !self.elsewhere {
            self.problems = std::mem::take(&mut self.unset);
            if self.problems.is_empty() {
                self.problems.push(Problem::in_file(
                    self.file,
                    "",
                    "this file could not be read, and no problem was found to say why: please report this",
                ));
            }
        }
        let mut problems = self.problems;
        problems.sort_by_key(|p| p.location.as_ref().map(|l| (l.line, l.column)));
        if problems.is_empty() {
            (value, problems)
        } else {
            (None, problems)
        }
    }

    /// The position of `node`.
    pub fn location(&self, node: &Node<'_>) -> Location {
        Location {
            file: self.file.to_owned(),
            line: node.span.start.line(),
            column: node.span.start.col() + 1,
        }
    }

    /// Records a problem at `node`, with the offending text marked. A value
    /// that came from the environment is quoted as written (`${VAR}`), never
    /// as its value: it may be a secret.
    pub fn problem(&mut self, node: &Node<'_>, path: &str, message: impl Into<String>) {
        let problem = self.problem_at(node, path, message.into());
        self.problems.push(problem);
    }

    /// A key written with no value, read as absent (see `unset`).
    fn note_unset(&mut self, node: &Node<'_>, path: &str) {
        let key = path.rsplit('.').next().unwrap_or(path);
        let problem = self.problem_at(
            node,
            path,
            format!("`{key}` has no value: write one (a key left out takes its default, where it has one)"),
        );
        self.unset.push(problem);
    }

    fn problem_at(&self, node: &Node<'_>, path: &str, message: String) -> Problem {
        let mut message = message;
        let (start, end) = (&node.span.start, &node.span.end);
        for substituted in &self.substituted {
            let here = substituted.line == start.line() && substituted.col == start.col();
            // Elsewhere, only values too long to appear by chance are replaced.
            if !substituted.value.is_empty() && (here || substituted.value.len() >= 6) {
                message = message.replace(&substituted.value, &substituted.written);
            }
        }
        let width = if end.line() == start.line() {
            end.col().saturating_sub(start.col())
        } else {
            usize::MAX
        };
        Problem {
            location: Some(self.location(node)),
            path: path.to_owned(),
            message,
            excerpt: excerpt(self.text, start.line(), start.col(), width),
        }
    }

    /// Whether a value is absent or null.
    pub fn is_unset(node: Option<&Node<'_>>) -> bool {
        node.is_none_or(is_null)
    }

    /// Whether `node` is a mapping (a block or flow `{…}`), to tell a key's
    /// forms apart before reading it.
    pub fn is_map(node: &Node<'_>) -> bool {
        matches!(untagged(node).data, YamlData::Mapping(_))
    }

    /// Reads a mapping whose keys are declared by `block`; reports each
    /// unknown key.
    pub fn block<'n, 'a>(
        &mut self,
        node: &'n Node<'a>,
        path: &str,
        block: &'static Block,
    ) -> Option<Map<'n, 'a>> {
        let mut map = self.map(node, path, &block.accepted())?;
        map.declared = Some(Declared {
            block,
            path: path.to_owned(),
            asked: map.entries.iter().map(|_| Cell::new(false)).collect(),
            unread: Rc::clone(&self.unread),
        });
        Some(map)
    }

    /// Reads a mapping whose keys must be among `allowed` (any key when it is
    /// empty); reports each unknown key. A block with a fixed set of keys is
    /// read with [`block`](Self::block) instead, from its declaration.
    pub fn map<'n, 'a>(
        &mut self,
        node: &'n Node<'a>,
        path: &str,
        allowed: &[&str],
    ) -> Option<Map<'n, 'a>> {
        let node = untagged(node);
        let YamlData::Mapping(mapping) = &node.data else {
            let found = kind(node);
            self.problem(node, path, format!("expected a mapping, found {found}"));
            return None;
        };
        let mut entries: Vec<(String, &'n Node<'a>)> = Vec::with_capacity(mapping.len());
        for (key, value) in mapping {
            let Some(name) = scalar_text(key) else {
                self.problem(key, path, "keys must be plain names");
                continue;
            };
            let name = name.into_owned();
            if entries.iter().any(|(k, _)| *k == name) {
                self.problem(key, &join(path, &name), "duplicate key");
                continue;
            }
            if !allowed.is_empty() && !allowed.contains(&name.as_str()) {
                let hint = hint(&name, allowed);
                self.problem(
                    key,
                    &join(path, &name),
                    format!(
                        "unknown field `{name}`: {hint}expected one of: {}",
                        allowed.join(", ")
                    ),
                );
                continue;
            }
            entries.push((name, value));
        }
        Some(Map {
            node,
            entries,
            declared: None,
        })
    }

    /// Reads a string, replacing `${VAR}` from the environment (`$${` is a literal `${`).
    /// Null gives `None` without a problem.
    pub fn string(&mut self, node: &Node<'_>, path: &str) -> Option<String> {
        if is_null(node) {
            self.note_unset(node, path);
            return None;
        }
        let Some(text) = scalar_text(node) else {
            let found = kind(node);
            self.problem(node, path, format!("expected a string, found {found}"));
            return None;
        };
        let value = self.interpolate(node, path, &text)?;
        if value != text {
            self.substituted.push(Substituted {
                line: node.span.start.line(),
                col: node.span.start.col(),
                value: value.clone(),
                written: text.into_owned(),
            });
        }
        Some(value)
    }

    fn interpolate(&mut self, node: &Node<'_>, path: &str, text: &str) -> Option<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut ok = true;
        while let Some(start) = rest.find('$') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            if let Some(escaped) = after.strip_prefix("${") {
                out.push_str("${");
                rest = escaped;
            } else if let Some(body) = after.strip_prefix('{') {
                let Some(end) = body.find('}') else {
                    self.problem(node, path, "unclosed `${` (write `$${` for a literal `${`)");
                    return None;
                };
                let reference = &body[..end];
                // `${VAR:-default}` and `${VAR:?message}`, as in a POSIX shell:
                // an unset or empty variable takes the default, or is an error
                // with the message.
                let operator = [reference.find(":-"), reference.find(":?")]
                    .into_iter()
                    .flatten()
                    .min();
                let (name, fallback) = match operator {
                    Some(at) => {
                        let (name, rest) = reference.split_at(at);
                        (name, Some((&rest[..2], &rest[2..])))
                    }
                    None => (reference, None),
                };
                let valid =
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                let value = (self.env)(name).filter(|v| fallback.is_none() || !v.is_empty());
                if !valid {
                    self.problem(
                        node,
                        path,
                        format!("`${{{reference}}}` is not a valid environment variable reference"),
                    );
                    ok = false;
                } else if let Some(value) = value {
                    if crate::is_secret_name(name) {
                        self.secrets.add(&value);
                    }
                    out.push_str(&value);
                } else if let Some((":-", default)) = fallback {
                    out.push_str(default);
                } else if let Some((_, message)) = fallback {
                    self.problem(
                        node,
                        path,
                        format!("environment variable `{name}` is not set: {message}"),
                    );
                    ok = false;
                } else {
                    self.problem(
                        node,
                        path,
                        format!("environment variable `{name}` is not set"),
                    );
                    ok = false;
                }
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        ok.then_some(out)
    }

    /// Reads a string and checks it is one of `choices`.
    pub fn choice(&mut self, node: &Node<'_>, path: &str, choices: &[&str]) -> Option<String> {
        let value = self.string(node, path)?;
        if choices.contains(&value.as_str()) {
            Some(value)
        } else {
            let hint = hint(&value, choices);
            self.problem(
                node,
                path,
                format!(
                    "invalid value `{value}`: {hint}expected one of: {}",
                    choices.join(", ")
                ),
            );
            None
        }
    }

    /// Reads `true` or `false`.
    pub fn bool(&mut self, node: &Node<'_>, path: &str) -> Option<bool> {
        match self.string(node, path)?.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            other => {
                self.problem(
                    node,
                    path,
                    format!("expected true or false, found `{other}`"),
                );
                None
            }
        }
    }

    /// Reads a whole number within `min..=max`.
    pub fn number(&mut self, node: &Node<'_>, path: &str, min: u64, max: u64) -> Option<u64> {
        let text = self.string(node, path)?;
        match text.replace('_', "").parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.problem(
                    node,
                    path,
                    format!("expected a whole number from {min} to {max}, found `{text}`"),
                );
                None
            }
        }
    }

    /// Reads a duration (`30m`, `12h`, `3d`, `1w`).
    pub fn duration(&mut self, node: &Node<'_>, path: &str) -> Option<Duration> {
        let text = self.string(node, path)?;
        let duration = parse_duration(&text);
        if duration.is_none() {
            self.problem(
                node,
                path,
                format!("`{text}` is not a duration: write e.g. 30s, 15m, 12h, 3d or 1w"),
            );
        }
        duration
    }

    /// The value of a key that must be present: reports `missing field` at the
    /// mapping when it is absent. `hint` (if not empty) follows in brackets.
    pub fn required<'n, 'a>(
        &mut self,
        map: &Map<'n, 'a>,
        path: &str,
        key: &str,
        hint: &str,
    ) -> Option<&'n Node<'a>> {
        let found = map.get(key);
        if found.is_none() {
            let message = if hint.is_empty() {
                format!("missing field `{key}`")
            } else {
                format!("missing field `{key}` ({hint})")
            };
            self.problem(map.node, &join(path, key), message);
        }
        found
    }

    /// Reads a list of nodes.
    pub fn list<'n, 'a>(&mut self, node: &'n Node<'a>, path: &str) -> Option<&'n [Node<'a>]> {
        let node = untagged(node);
        if let YamlData::Sequence(items) = &node.data {
            Some(items)
        } else {
            let found = kind(node);
            self.problem(node, path, format!("expected a list, found {found}"));
            None
        }
    }

    /// Reads a list of strings; a single string is taken as a list of one.
    pub fn strings(&mut self, node: &Node<'_>, path: &str) -> Option<Vec<String>> {
        let node = untagged(node);
        match &node.data {
            YamlData::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    if let Some(s) = self.string(item, &format!("{path}[{i}]")) {
                        out.push(s);
                    }
                }
                (out.len() == items.len()).then_some(out)
            }
            _ => self.string(node, path).map(|s| vec![s]),
        }
    }
}
