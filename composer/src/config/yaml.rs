//! YAML text → a tree of [`Node`]s, each carrying its span and key path.
//!
//! The tree is built from the event stream of `granit-parser` (the YAML 1.2
//! parser under `serde-saphyr`, used directly: serde-saphyr itself needs Rust
//! 1.89, the parser 1.81, and we want its events, not serde), not through serde:
//! serde stops at the first error and loses spans inside internally tagged
//! enums (`fs: { type: ext4 }`), while we want every problem at once and a
//! line:column on every value. Each node also records its key path as written
//! in *its own* file (`partitions[2].size`), so diagnostics stay right after
//! layers are merged into one tree.
//!
//! Accepted: one document; block and flow style; anchors and aliases (an
//! alias is a copy of its anchored node, under a node budget against
//! "billion laughs"). Tags are ignored. Rejected with a diagnostic: duplicate
//! keys, non-scalar keys, more than one document, nesting deeper than
//! [`MAX_DEPTH`]. Merge keys (`<<`) are not supported: they are reported as
//! unknown keys by the schema decoder.

use crate::diag::{Diagnostic, Span};
use granit_parser::{Event, Parser, ScalarStyle, ScanError};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Deeper nesting than this is refused: no description needs more than a
/// handful of levels, and the tree builder recurses once per level.
pub const MAX_DEPTH: usize = 64;

/// At most this many nodes per file, counting alias copies: a description
/// has hundreds, a "billion laughs" document billions.
pub const MAX_NODES: usize = 200_000;

/// One YAML value with where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
    /// Key path as written in the node's own file: `partitions[2].fs.label`.
    pub path: String,
}

/// A mapping key with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing at all.
    Null,
    /// Any scalar, as text; `plain` is false for quoted and block scalars.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
    /// A value that was already reported as wrong (an unset variable):
    /// decoders skip it silently instead of piling up follow-up errors.
    Invalid,
}

impl Node {
    /// A short description of the kind of value, for "expected a map, found a list".
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Null => "nothing",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
            Value::Invalid => "an invalid value",
        }
    }

    /// The entry `key` of a map node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.text == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a scalar node.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }
}

/// Key path of the child `key` of a node at `parent`.
pub fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

struct Builder<'a> {
    parser: Parser<'a, granit_parser::StrInput<'a>>,
    file: Arc<PathBuf>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    diags: Vec<Diagnostic>,
}

/// Why the tree could not be built at all.
struct Fatal;

impl<'a> Builder<'a> {
    fn span(&self, m: &granit_parser::Marker) -> Span {
        Span::new(
            self.file.clone(),
            u32::try_from(m.line()).unwrap_or(u32::MAX),
            u32::try_from(m.col().saturating_add(1)).unwrap_or(u32::MAX),
        )
    }

    fn scan_error(&mut self, e: &ScanError) -> Fatal {
        let span = self.span(e.marker());
        self.diags.push(
            Diagnostic::new(span, "", format!("invalid YAML: {}", e.info()))
                .help("check the indentation and quoting around this place"),
        );
        Fatal
    }

    fn next(&mut self) -> Result<(Event<'a>, Span), Fatal> {
        // Comments are presentation, not data: skip them wherever they stand.
        let mut item = self.parser.next();
        while let Some(Ok((Event::Comment(..), _))) = item {
            item = self.parser.next();
        }
        match item {
            Some(Ok((ev, sp))) => {
                let span = self.span(&sp.start);
                Ok((ev, span))
            }
            Some(Err(e)) => Err(self.scan_error(&e)),
            None => {
                let span = Span::new(self.file.clone(), 0, 0);
                self.diags
                    .push(Diagnostic::new(span, "", "invalid YAML: unexpected end"));
                Err(Fatal)
            }
        }
    }

    fn count(&mut self, n: usize, span: &Span) -> Result<(), Fatal> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            self.diags.push(
                Diagnostic::new(
                    span.clone(),
                    "",
                    format!("the document expands to more than {MAX_NODES} values"),
                )
                .help("use fewer aliases (*name) of large anchored values"),
            );
            return Err(Fatal);
        }
        Ok(())
    }

    /// Reads one node whose first event is `(ev, span)`.
    fn node(
        &mut self,
        ev: Event<'a>,
        span: Span,
        path: String,
        depth: usize,
    ) -> Result<Node, Fatal> {
        if depth > MAX_DEPTH {
            self.diags.push(
                Diagnostic::new(span, path, format!("nested deeper than {MAX_DEPTH} levels"))
                    .help("flatten the description"),
            );
            return Err(Fatal);
        }
        self.count(1, &span)?;
        let (value, anchor) = match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = style == ScalarStyle::Plain;
                let value = if plain && matches!(&*text, "" | "~" | "null" | "Null" | "NULL") {
                    Value::Null
                } else {
                    Value::Scalar {
                        text: text.into_owned(),
                        plain,
                    }
                };
                (value, anchor)
            }
            Event::SequenceStart(_, anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (ev, sp) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    let p = format!("{path}[{}]", items.len());
                    items.push(self.node(ev, sp, p, depth + 1)?);
                }
                (Value::Seq(items), anchor)
            }
            Event::MappingStart(_, anchor, _) => {
                let mut entries: Vec<(Key, Node)> = Vec::new();
                loop {
                    let (ev, sp) = self.next()?;
                    if matches!(ev, Event::MappingEnd) {
                        break;
                    }
                    let key_node = self.node(ev, sp.clone(), path.clone(), depth + 1)?;
                    let key_text = match &key_node.value {
                        Value::Scalar { text, .. } => Some(text.clone()),
                        Value::Null => Some(String::new()),
                        _ => None,
                    };
                    let (vev, vsp) = self.next()?;
                    let Some(key_text) = key_text else {
                        self.diags.push(
                            Diagnostic::new(sp, path.clone(), "a key must be a plain word")
                                .help("write keys as `name: value`"),
                        );
                        self.node(vev, vsp, path.clone(), depth + 1)?;
                        continue;
                    };
                    let vpath = child_path(&path, &key_text);
                    let value = self.node(vev, vsp, vpath.clone(), depth + 1)?;
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.text == key_text) {
                        self.diags
                            .push(Diagnostic::new(sp, vpath, "duplicate key").help(format!(
                                "'{key_text}' is already set on line {}; remove one of them",
                                first.span.line
                            )));
                        continue;
                    }
                    entries.push((
                        Key {
                            text: key_text,
                            span: sp,
                        },
                        value,
                    ));
                }
                (Value::Map(entries), anchor)
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id).cloned() else {
                    self.diags
                        .push(Diagnostic::new(span, path, "alias of an unknown anchor"));
                    return Err(Fatal);
                };
                let n = count_nodes(&target);
                self.count(n, &span)?;
                return Ok(relocate(target, &span, &path));
            }
            _ => {
                self.diags.push(Diagnostic::new(
                    span,
                    path,
                    "invalid YAML: unexpected event",
                ));
                return Err(Fatal);
            }
        };
        let node = Node { value, span, path };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

fn count_nodes(n: &Node) -> usize {
    1 + match &n.value {
        Value::Seq(items) => items.iter().map(count_nodes).sum(),
        Value::Map(entries) => entries.iter().map(|(_, v)| count_nodes(v)).sum(),
        _ => 0,
    }
}

/// An alias copy: its paths are rewritten to where the alias stands; spans
/// keep pointing at the anchored definition, where the values were written.
fn relocate(mut n: Node, at: &Span, path: &str) -> Node {
    let old = std::mem::take(&mut n.path);
    fn rewrite(n: &mut Node, old: &str, new: &str) {
        if let Some(rest) = n.path.strip_prefix(old) {
            n.path = format!("{new}{rest}");
        }
        match &mut n.value {
            Value::Seq(items) => items.iter_mut().for_each(|c| rewrite(c, old, new)),
            Value::Map(entries) => entries.iter_mut().for_each(|(_, c)| rewrite(c, old, new)),
            _ => {}
        }
    }
    match &mut n.value {
        Value::Seq(items) => items.iter_mut().for_each(|c| rewrite(c, &old, path)),
        Value::Map(entries) => entries.iter_mut().for_each(|(_, c)| rewrite(c, &old, path)),
        _ => {}
    }
    n.path = path.to_string();
    if matches!(n.value, Value::Scalar { .. } | Value::Null) {
        n.span = at.clone();
    }
    n
}

/// Parses `text` (read from `file`) into a node tree. An empty document is an
/// empty map. Problems go to `diags`; `None` when the tree could not be built.
pub fn parse(text: &str, file: &Arc<PathBuf>, diags: &mut Vec<Diagnostic>) -> Option<Node> {
    let mut b = Builder {
        parser: Parser::new_from_str(text),
        file: file.clone(),
        anchors: HashMap::new(),
        nodes: 0,
        diags: Vec::new(),
    };
    let result = build_document(&mut b);
    diags.append(&mut b.diags);
    result.ok()
}

fn build_document<'a>(b: &mut Builder<'a>) -> Result<Node, Fatal> {
    let empty = |b: &Builder<'_>| Node {
        value: Value::Map(Vec::new()),
        span: Span::new(b.file.clone(), 1, 1),
        path: String::new(),
    };
    let mut root: Option<Node> = None;
    loop {
        let (ev, sp) = b.next()?;
        match ev {
            Event::StreamStart | Event::DocumentEnd => {}
            Event::StreamEnd => break,
            Event::DocumentStart(..) => {
                if root.is_some() {
                    b.diags.push(
                        Diagnostic::new(sp, "", "a second YAML document ('---')")
                            .help("a description is one document; remove the '---' line or split the file"),
                    );
                    return Err(Fatal);
                }
                let (ev, sp) = b.next()?;
                if matches!(ev, Event::DocumentEnd) {
                    root = Some(empty(b));
                    continue;
                }
                let node = b.node(ev, sp, String::new(), 0)?;
                root = Some(match node.value {
                    Value::Null => empty(b),
                    _ => node,
                });
            }
            _ => {}
        }
    }
    Ok(root.unwrap_or_else(|| empty(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> (Option<Node>, Vec<String>) {
        let mut d = Vec::new();
        let file = Arc::new(PathBuf::from("t.yaml"));
        let n = parse(text, &file, &mut d);
        (n, d.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn records_spans_and_paths() {
        let (n, d) = p("image:\n  name: sd\nparts:\n  - a: 1\n    b: [x, 'y']\n");
        assert!(d.is_empty(), "{d:?}");
        let n = n.unwrap();
        let name = n.get("image").unwrap().get("name").unwrap();
        assert_eq!((name.span.line, name.span.column), (2, 9));
        assert_eq!(name.path, "image.name");
        let Value::Seq(parts) = &n.get("parts").unwrap().value else {
            panic!()
        };
        let b = parts[0].get("b").unwrap();
        assert_eq!(b.path, "parts[0].b");
        let Value::Seq(items) = &b.value else {
            panic!()
        };
        assert_eq!(items[1].path, "parts[0].b[1]");
        assert_eq!(
            items[1].value,
            Value::Scalar {
                text: "y".into(),
                plain: false
            }
        );
    }

    #[test]
    fn duplicate_keys_are_reported_with_the_first_line() {
        let (_, d) = p("a: 1\nb: 2\na: 3\n");
        assert_eq!(
            d,
            ["t.yaml:3:1: a: duplicate key\n  help: 'a' is already set on line 1; remove one of them"]
        );
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let (n, d) = p("a: [1, 2\nb: 3\n");
        assert!(n.is_none());
        assert_eq!(d.len(), 1);
        assert!(d[0].starts_with("t.yaml:"), "{d:?}");
        assert!(d[0].contains("invalid YAML"), "{d:?}");
    }

    #[test]
    fn empty_documents_are_empty_maps() {
        for text in ["", "# only a comment\n", "---\n", "~\n"] {
            let (n, d) = p(text);
            assert!(d.is_empty(), "{text:?}: {d:?}");
            assert_eq!(n.unwrap().value, Value::Map(Vec::new()), "{text:?}");
        }
    }

    #[test]
    fn two_documents_are_refused() {
        let (n, d) = p("a: 1\n---\nb: 2\n");
        assert!(n.is_none());
        assert!(d[0].contains("a second YAML document"), "{d:?}");
    }

    #[test]
    fn aliases_copy_the_anchored_value_under_the_new_path() {
        let (n, d) = p("x: &fs { type: ext4, label: a }\ny: *fs\n");
        assert!(d.is_empty(), "{d:?}");
        let y = n.unwrap().get("y").unwrap().clone();
        assert_eq!(y.get("label").unwrap().path, "y.label");
    }

    #[test]
    fn billion_laughs_hits_the_budget() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let (n, d) = p(&text);
        assert!(n.is_none());
        assert!(d[0].contains("expands to more than"), "{d:?}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let (n, d) = p(&text);
        assert!(n.is_none());
        assert!(!d.is_empty());
    }
}
