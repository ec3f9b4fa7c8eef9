//! Layers: reading the files a description includes and merging them into one
//! node tree.
//!
//! A `layers:` entry is a path (it contains a `/` or ends in `.yaml`/`.yml`;
//! relative to the including file) or a name looked up as
//! `<layer_dir>/<name>/layer.yaml` in each layer directory in turn. A layer
//! has the description's schema with every section optional, and may list
//! layers itself. Files apply depth first: a file's layers in list order, then
//! the file itself, so the top file applies last. A file reached twice
//! (diamond) applies once, at its first place; a file that includes itself,
//! directly or not, is an error naming the chain.
//!
//! Merge rules (also in docs/config.md):
//! - `image`: per key, later wins.
//! - `artifacts`: by name; a later definition of an existing name merges its
//!   keys into it (later wins per key); new names are added.
//! - `partitions`: by `name`, same per-key rule; new names are appended, or
//!   placed by `after: <name>` / `before: <name>` (which also move an
//!   existing entry).
//! - `outputs`: union, in first-seen order.
//!
//! A content key of a later definition (`CONTENT_KEYS`) continues the
//! earlier content when both are of the same kind: `initramfs:` over
//! `initramfs:`, or `fs:` over `fs:` whose `type:`s agree (or one side
//! leaves it out). The two maps are deep-merged: a key that is a map on both
//! sides (`files:`, `symlinks:`, `modules:`) merges recursively, anything
//! else (scalars, lists such as `modules.load`, `dirs`, `rules`) replaces
//! the earlier value. Any other content (another kind, another `fs` type,
//! `image:`, `artifact:`, `same-as:`, `fill:`) replaces the earlier one
//! whole, and an entry is always left with one content.
//!
//! Merging works on nodes, not on the typed model, so a value keeps the span
//! and key path of the file it came from; a merged map keeps those of its
//! first definition, and a replaced value brings its own key along (a key's
//! span and its value's path are always from one file, as `Spanned` needs).
//!
//! Rejected: merging typed structs (a layer may set a single key of a
//! partition whose other keys come from elsewhere; typed structs cannot
//! represent "not set here"). Merging lists (append `modules.load`, `dirs`,
//! `rules`): a list cannot say "remove this item" or "put it first", and the
//! order of `load` and `rules` is meaningful, so a later list is written
//! whole, as the list the build will use. Deep-merging across `fs` types:
//! vfat and ext4 share only a few keys (`label`, `from`), and an ext4
//! `journal:` left over in a vfat map would be an error the later file never
//! wrote. Comparing `type:` after expanding variables: variables are expanded
//! after merging, so that a value a later file replaces is never expanded.

use super::decode::CONTENT_KEYS;
use super::vars::Vars;
use super::yaml::{self, Key, Node, Value};
use super::LoadOptions;
use crate::diag::Diagnostic;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The merged tree and the layer files applied (in order, the top file excluded).
pub struct Merged {
    pub root: Node,
    pub layer_files: Vec<PathBuf>,
}

struct Loader<'a> {
    opts: &'a LoadOptions,
    diags: &'a mut Vec<Diagnostic>,
    /// Canonical paths of the files being included, outermost first.
    stack: Vec<PathBuf>,
    seen: HashSet<PathBuf>,
    /// Parsed files, in application order.
    order: Vec<Node>,
    layer_files: Vec<PathBuf>,
}

/// Whether a parsed layer file is a description: a map with at least one
/// top-level key a description has (a layer with a misspelt key still
/// gets its own diagnostics; a password file does not).
fn is_description(root: &Node) -> bool {
    match &root.value {
        Value::Map(entries) => {
            entries.is_empty()
                || entries
                    .iter()
                    .any(|(k, _)| super::decode::TOP.key(&k.text).is_some())
        }
        _ => false,
    }
}

/// Files deep a chain of `layers:` may go: real boards use two or three;
/// the limit keeps the recursion far from the end of the stack.
const MAX_LAYER_DEPTH: usize = 32;

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

impl Loader<'_> {
    /// Parses and applies one file; `entry` is the `layers:` entry that
    /// named it (`None` for the description itself).
    fn include(&mut self, text: &str, file: Arc<PathBuf>, entry: Option<&Node>) {
        let before = self.diags.len();
        let parsed = yaml::parse(text, &file, self.diags);
        if let (Some(entry), false) = (entry, parsed.as_ref().is_some_and(is_description)) {
            // A layer entry can name any file (`/etc/shadow`): when it is no
            // description, say so where it is named, with a position but
            // none of its contents (parser messages quote what they saw,
            // and `root:...:::` lines even parse as keys of a map).
            let at = match self.diags.get(before) {
                Some(d) => d.span.to_string(),
                None => file.display().to_string(),
            };
            self.diags.truncate(before);
            self.diags.push(
                Diagnostic::new(
                    entry.span.clone(),
                    entry.path.clone(),
                    format!("\"{}\" is not a description (a YAML map), at {at}", file.display()),
                )
                .help("name a layer file (YAML with image:, artifacts:, partitions: ...); its contents are not shown"),
            );
            return;
        }
        let Some(mut root) = parsed else {
            return;
        };
        if !matches!(root.value, Value::Map(_)) {
            self.diags.push(
                Diagnostic::new(
                    root.span.clone(),
                    "",
                    format!(
                        "expected a map at the top of the file, found {}",
                        root.kind_name()
                    ),
                )
                .help("start the file with `image:`, `partitions:` or `layers:`"),
            );
            return;
        }
        // Only `layers:` is expanded now (it names files to read); the rest
        // after merging, so that a value a later file replaces is never
        // expanded (a layer's ${BUSYBOX} need not be set when the board
        // redefines that artifact without it).
        let vars = Vars {
            vars: &self.opts.vars,
            use_env: self.opts.use_env,
        };
        if let Value::Map(entries) = &mut root.value {
            for (_, v) in entries.iter_mut().filter(|(k, _)| k.text == "layers") {
                vars.expand_tree(v, self.diags);
            }
        }
        if let Some(layers) = root.get("layers") {
            let entries: Vec<Node> = match &layers.value {
                Value::Seq(items) => items.clone(),
                Value::Null | Value::Invalid => Vec::new(),
                _ => {
                    self.diags.push(
                        Diagnostic::new(
                            layers.span.clone(),
                            layers.path.clone(),
                            format!("expected a list, found {}", layers.kind_name()),
                        )
                        .help("write `layers: [readonly-rootfs-overlay, ./local.yaml]`"),
                    );
                    Vec::new()
                }
            };
            for entry in &entries {
                self.include_entry(entry, &file);
            }
        }
        self.order.push(root);
    }

    fn include_entry(&mut self, entry: &Node, from: &Path) {
        let text = match &entry.value {
            Value::Scalar { text, .. } => text.clone(),
            Value::Invalid => return,
            _ => {
                self.diags.push(
                    Diagnostic::new(
                        entry.span.clone(),
                        entry.path.clone(),
                        format!("expected a layer name or path, found {}", entry.kind_name()),
                    )
                    .help("write a layer name (readonly-rootfs-overlay) or a path (./local.yaml)"),
                );
                return;
            }
        };
        let Some(path) = self.resolve(&text, entry, from) else {
            return;
        };
        let canon = canonical(&path);
        if let Some(pos) = self.stack.iter().position(|p| *p == canon) {
            let chain: Vec<String> = self.stack[pos..]
                .iter()
                .chain(std::iter::once(&canon))
                .map(|p| p.display().to_string())
                .collect();
            self.diags.push(
                Diagnostic::new(
                    entry.span.clone(),
                    entry.path.clone(),
                    format!("\"{text}\" includes itself: {}", chain.join(" -> ")),
                )
                .help("remove one of the layers entries that close the loop"),
            );
            return;
        }
        if self.stack.len() >= MAX_LAYER_DEPTH {
            self.diags.push(
                Diagnostic::new(
                    entry.span.clone(),
                    entry.path.clone(),
                    format!("\"{text}\" nests layers deeper than {MAX_LAYER_DEPTH} files"),
                )
                .help(
                    "list the layers side by side in one file instead of each including the next",
                ),
            );
            return;
        }
        if !self.seen.insert(canon.clone()) {
            return;
        }
        let content = match crate::input::read_text(&path) {
            Ok(c) => c,
            Err(e) => {
                self.diags.push(
                    Diagnostic::new(
                        entry.span.clone(),
                        entry.path.clone(),
                        format!("\"{text}\" cannot be read ({}: {e})", path.display()),
                    )
                    .help("check the path and its permissions"),
                );
                return;
            }
        };
        self.stack.push(canon);
        self.include(&content, Arc::new(path.clone()), Some(entry));
        self.stack.pop();
        self.layer_files.push(path);
    }

    /// The file a `layers:` entry names.
    fn resolve(&mut self, text: &str, entry: &Node, from: &Path) -> Option<PathBuf> {
        let is_path = text.contains('/') || text.ends_with(".yaml") || text.ends_with(".yml");
        if is_path {
            let base = from.parent().unwrap_or(Path::new(""));
            // Lexically without `.` components, so messages show `dir/b.yaml`.
            let path: PathBuf = base
                .join(text)
                .components()
                .filter(|c| !matches!(c, std::path::Component::CurDir))
                .collect();
            if path.is_file() {
                return Some(path);
            }
            self.diags.push(
                Diagnostic::new(
                    entry.span.clone(),
                    entry.path.clone(),
                    format!("layer file \"{text}\" does not exist"),
                )
                .help(format!(
                    "looked for {}; paths are relative to the including file",
                    path.display()
                )),
            );
            return None;
        }
        for dir in &self.opts.layer_dirs {
            let path = dir.join(text).join("layer.yaml");
            if path.is_file() {
                return Some(path);
            }
        }
        let mut known: Vec<String> = Vec::new();
        for dir in &self.opts.layer_dirs {
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    if e.path().join("layer.yaml").is_file() {
                        known.push(e.file_name().to_string_lossy().into_owned());
                    }
                }
            }
        }
        known.sort();
        known.dedup();
        let help = if self.opts.layer_dirs.is_empty() {
            "no layer directory is configured; write a path such as ./my-layer.yaml".to_string()
        } else if known.is_empty() {
            format!(
                "no layers found in {}; write a path such as ./my-layer.yaml",
                dirs_text(&self.opts.layer_dirs)
            )
        } else {
            let names: Vec<&str> = known.iter().map(String::as_str).collect();
            let guess = super::decode::closest(text, &names)
                .map(|b| format!("did you mean '{b}'? "))
                .unwrap_or_default();
            format!("{guess}available layers: {}", known.join(", "))
        };
        self.diags.push(
            Diagnostic::new(
                entry.span.clone(),
                entry.path.clone(),
                format!("\"{text}\" is not a known layer"),
            )
            .help(help),
        );
        None
    }
}

fn dirs_text(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads `text` (the top file at `file`) and every layer it includes, and
/// merges them. `None` when nothing usable could be parsed.
pub fn load_merged(
    text: &str,
    file: Arc<PathBuf>,
    opts: &LoadOptions,
    diags: &mut Vec<Diagnostic>,
) -> Option<Merged> {
    let mut loader = Loader {
        opts,
        diags,
        stack: vec![canonical(&file)],
        seen: HashSet::from([canonical(&file)]),
        order: Vec::new(),
        layer_files: Vec::new(),
    };
    loader.include(text, file.clone(), None);
    let Loader {
        order,
        layer_files,
        diags,
        ..
    } = loader;
    let top_ok = order
        .last()
        .is_some_and(|n| n.span.file.as_path() == file.as_path());
    if !top_ok {
        return None;
    }
    let mut root: Option<Node> = None;
    for node in order {
        match &mut root {
            None => {
                let mut base = Node {
                    value: Value::Map(Vec::new()),
                    span: node.span.clone(),
                    path: String::new(),
                };
                merge_file(&mut base, node, diags);
                root = Some(base);
            }
            Some(base) => merge_file(base, node, diags),
        }
    }
    let mut root = root?;
    let vars = Vars {
        vars: &opts.vars,
        use_env: opts.use_env,
    };
    vars.expand_tree(&mut root, diags);
    // The top file's span stands for the whole description.
    root.span = crate::diag::Span::new(file, 1, 1);
    Some(Merged { root, layer_files })
}

fn entries_mut(node: &mut Node) -> Option<&mut Vec<(Key, Node)>> {
    match &mut node.value {
        Value::Map(e) => Some(e),
        _ => None,
    }
}

fn set(entries: &mut Vec<(Key, Node)>, key: Key, value: Node) {
    match entries.iter_mut().find(|(k, _)| k.text == key.text) {
        Some(slot) => *slot = (key, value),
        None => entries.push((key, value)),
    }
}

/// Merges one file's tree into the accumulated tree.
fn merge_file(base: &mut Node, over: Node, diags: &mut Vec<Diagnostic>) {
    let (Some(base_entries), Value::Map(over_entries)) = (entries_mut(base), over.value) else {
        return;
    };
    for (key, value) in over_entries {
        match key.text.as_str() {
            "layers" => {}
            "image" | "update" => merge_keys(base_entries, key, value, set),
            "artifacts" => merge_keys(base_entries, key, value, |b, k, v| {
                match b.iter_mut().find(|(bk, _)| bk.text == k.text) {
                    Some((_, existing)) => merge_entry(existing, v),
                    None => b.push((k, v)),
                }
            }),
            "partitions" => merge_partitions(base_entries, key, value, diags),
            "outputs" => merge_outputs(base_entries, key, value),
            _ => set(base_entries, key, value),
        }
    }
}

/// Per-key merge of a map-valued section; a non-map on either side replaces.
fn merge_keys(
    base: &mut Vec<(Key, Node)>,
    key: Key,
    value: Node,
    mut each: impl FnMut(&mut Vec<(Key, Node)>, Key, Node),
) {
    let existing = base.iter_mut().find(|(k, _)| k.text == key.text);
    match (existing, value.value) {
        (Some((_, b)), Value::Map(over)) if matches!(b.value, Value::Map(_)) => {
            if let Value::Map(b_entries) = &mut b.value {
                for (k, v) in over {
                    each(b_entries, k, v);
                }
            }
        }
        (_, v) => set(
            base,
            key,
            Node {
                value: v,
                span: value.span,
                path: value.path,
            },
        ),
    }
}

/// A later definition of an entry: per key later wins; a content key
/// merges into the earlier content of the same kind, else replaces
/// whichever content the entry had.
fn merge_entry(existing: &mut Node, over: Node) {
    match (&mut existing.value, over.value) {
        (Value::Map(b), Value::Map(o)) => {
            for (k, v) in o {
                if CONTENT_KEYS.contains(&k.text.as_str()) {
                    merge_content(b, k, v);
                } else {
                    set(b, k, v);
                }
            }
        }
        (_, v) => {
            *existing = Node {
                value: v,
                span: over.span,
                path: over.path,
            }
        }
    }
}

/// A later content key of an entry: deep-merged into an earlier content of
/// the same kind ([`same_kind`]); otherwise it replaces it. Either way it
/// leaves the entry one content.
fn merge_content(entries: &mut Vec<(Key, Node)>, key: Key, value: Node) {
    entries.retain(|(k, _)| k.text == key.text || !CONTENT_KEYS.contains(&k.text.as_str()));
    match entries.iter_mut().find(|(k, _)| k.text == key.text) {
        Some((_, earlier)) if same_kind(&key.text, earlier, &value) => {
            if let (Value::Map(b), Value::Map(o)) = (&mut earlier.value, value.value) {
                merge_maps(b, o);
            }
        }
        _ => set(entries, key, value),
    }
}

/// Whether a later content `key: later` continues `earlier` rather than
/// replacing it: both are maps of `initramfs` or `fs`, and for `fs` the
/// types agree or one side leaves `type:` out (compared as written, before
/// variables are expanded).
fn same_kind(key: &str, earlier: &Node, later: &Node) -> bool {
    let maps = matches!(
        (&earlier.value, &later.value),
        (Value::Map(_), Value::Map(_))
    );
    let type_of = |n: &Node| n.get("type").and_then(Node::as_str).map(str::to_string);
    match key {
        "initramfs" => maps,
        "fs" => {
            maps && match (type_of(earlier), type_of(later)) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
        }
        _ => false,
    }
}

/// Deep merge of map entries: a key that is a map on both sides merges
/// recursively (the map keeps its earlier key and span); anything else
/// (scalar, list, null, a map over a scalar) replaces the earlier value
/// together with its key, so a key's span and its value's path always come
/// from the same file.
fn merge_maps(base: &mut Vec<(Key, Node)>, over: Vec<(Key, Node)>) {
    for (k, v) in over {
        match base.iter_mut().find(|(bk, _)| bk.text == k.text) {
            Some((_, slot))
                if matches!((&slot.value, &v.value), (Value::Map(_), Value::Map(_))) =>
            {
                if let (Value::Map(b), Value::Map(o)) = (&mut slot.value, v.value) {
                    merge_maps(b, o);
                }
            }
            _ => set(base, k, v),
        }
    }
}

fn name_of(node: &Node) -> Option<String> {
    node.get("name").and_then(Node::as_str).map(str::to_string)
}

fn merge_partitions(
    base: &mut Vec<(Key, Node)>,
    key: Key,
    value: Node,
    diags: &mut Vec<Diagnostic>,
) {
    let Value::Seq(items) = value.value else {
        // Not a list: keep it for the decoder to report.
        set(
            base,
            key,
            Node {
                value: value.value,
                span: value.span,
                path: value.path,
            },
        );
        return;
    };
    let list = match base.iter_mut().find(|(k, _)| k.text == key.text) {
        Some((_, n)) if matches!(n.value, Value::Seq(_)) => n,
        _ => {
            set(
                base,
                key.clone(),
                Node {
                    value: Value::Seq(Vec::new()),
                    span: value.span,
                    path: value.path,
                },
            );
            let Some((_, n)) = base.iter_mut().find(|(k, _)| k.text == key.text) else {
                return;
            };
            n
        }
    };
    let Value::Seq(list) = &mut list.value else {
        return;
    };
    // Names defined by this file: a second entry of the same name in one
    // file is a mistake, not a layer override.
    let mut here: Vec<(String, u32)> = Vec::new();
    for mut item in items {
        let name = name_of(&item);
        if let (Some(n), Some(name_node)) = (&name, item.get("name")) {
            if let Some((_, line)) = here.iter().find(|(h, _)| h == n) {
                diags.push(
                    Diagnostic::new(
                        name_node.span.clone(),
                        name_node.path.clone(),
                        format!("a second partition named \"{n}\""),
                    )
                    .help(format!(
                        "the first is on line {line}; rename one (partition names are unique)"
                    )),
                );
                continue;
            }
            here.push((n.clone(), name_node.span.line));
        }
        let position = take_position(&mut item, diags);
        let existing = name
            .as_ref()
            .and_then(|n| list.iter().position(|p| name_of(p).as_deref() == Some(n)));
        let entry = match existing {
            Some(i) => {
                let mut e = list.remove(i);
                merge_entry(&mut e, item);
                (e, Some(i))
            }
            None => (item, None),
        };
        let (entry, old_index) = entry;
        let index = match position {
            Some((anchor, after, node)) => {
                match list
                    .iter()
                    .position(|p| name_of(p).as_deref() == Some(&anchor))
                {
                    Some(i) => {
                        if after {
                            i + 1
                        } else {
                            i
                        }
                    }
                    None => {
                        let names: Vec<String> = list.iter().filter_map(name_of).collect();
                        let names: Vec<&str> = names.iter().map(String::as_str).collect();
                        let help = if names.is_empty() {
                            "no partition is defined before this one; remove after/before"
                                .to_string()
                        } else {
                            let guess = super::decode::closest(&anchor, &names)
                                .map(|b| format!("did you mean '{b}'? "))
                                .unwrap_or_default();
                            format!(
                                "{guess}name a partition defined earlier (in a layer or above): {}",
                                names.join(", ")
                            )
                        };
                        diags.push(
                            Diagnostic::new(
                                node.span.clone(),
                                node.path.clone(),
                                format!("no partition named \"{anchor}\" to place this one by"),
                            )
                            .help(help),
                        );
                        old_index.unwrap_or(list.len())
                    }
                }
            }
            None => old_index.unwrap_or(list.len()),
        };
        list.insert(index.min(list.len()), entry);
    }
}

/// Removes `after:` / `before:` from a partition entry: (name, is_after, node).
fn take_position(item: &mut Node, diags: &mut Vec<Diagnostic>) -> Option<(String, bool, Node)> {
    let entries = entries_mut(item)?;
    let mut found: Vec<(String, bool, Node)> = Vec::new();
    entries.retain(|(k, v)| {
        let after = match k.text.as_str() {
            "after" => true,
            "before" => false,
            _ => return true,
        };
        match &v.value {
            Value::Scalar { text, .. } => found.push((text.clone(), after, v.clone())),
            Value::Invalid => {}
            _ => diags.push(
                Diagnostic::new(
                    v.span.clone(),
                    v.path.clone(),
                    format!("expected a partition name, found {}", v.kind_name()),
                )
                .help("write `after: <name>` or `before: <name>`"),
            ),
        }
        false
    });
    if found.len() > 1 {
        let (_, _, second) = &found[1];
        diags.push(
            Diagnostic::new(
                second.span.clone(),
                second.path.clone(),
                "both after and before are set",
            )
            .help("keep one of them"),
        );
    }
    found.into_iter().next()
}

fn merge_outputs(base: &mut Vec<(Key, Node)>, key: Key, value: Node) {
    let existing = base.iter_mut().find(|(k, _)| k.text == key.text);
    match (existing, value.value) {
        (Some((_, b)), Value::Seq(over)) => {
            if let Value::Seq(list) = &mut b.value {
                for item in over {
                    let dup =
                        item.as_str().is_some() && list.iter().any(|l| l.as_str() == item.as_str());
                    if !dup {
                        list.push(item);
                    }
                }
            } else {
                b.value = Value::Seq(over);
            }
        }
        (_, v) => set(
            base,
            key,
            Node {
                value: v,
                span: value.span,
                path: value.path,
            },
        ),
    }
}
