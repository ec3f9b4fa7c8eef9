//! Merged node tree → typed [`Description`]: schema, types, enum values,
//! defaults, per-value checks and input-path resolution.
//!
//! Every decoder takes a node and returns `Option<T>`: `None` after pushing a
//! diagnostic (or silently for a value already reported, [`Value::Invalid`]),
//! so that one run reports every problem. Cross-entry checks (references,
//! duplicate names, cycles) are in `validate.rs`.
//!
//! One file per part of the schema, each with the key table of its maps
//! ([`Section`], checked by `Cx::fields` and rendered by `config::schema`)
//! and the `(name, value)` tables of its enum keys beside the decoder:
//! this file (the top level, `update`, contents), `image`, `partition`
//! (partitions, holes, artifacts), `fs` (vfat, ext4, squashfs, erofs,
//! swap), `files` (file lists, destinations, ownership rules) and
//! `initramfs`.

use super::model::*;
use super::schema::{names, KeySpec, Kind, Section};
use super::yaml::{child_path, Key, Node, Value};
use crate::diag::Diagnostic;
use crate::ids::Uuid;
use crate::ptable::types::{self, TypeError};
use crate::units::{ByteSize, SizeError, KIB};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod files;
mod fs;
mod image;
mod initramfs;
mod partition;

use files::*;
use fs::*;
use image::*;
use initramfs::*;
use partition::*;

/// `fill:`'s values.
const FILL_PATTERNS: [(&str, ()); 1] = [("zero", ())];
const FILL_NAMES: [&str; 1] = names(&FILL_PATTERNS);

/// The keys a content can be given by (exactly one per partition or artifact).
pub const CONTENT_KEYS: [&str; 6] = ["image", "fs", "initramfs", "artifact", "same-as", "fill"];

/// The top-level map of a description (and of a layer).
pub const TOP: Section = Section {
    doc: "An image-composer description, or a layer of one: the disk, its partitions and what fills them (docs/config.md)",
    keys: &[
        KeySpec {
            name: "image",
            kind: Kind::Map(&IMAGE),
            doc: "The disk: name of the output files, partition table, size, geometry",
        },
        KeySpec {
            name: "layers",
            kind: Kind::List(&Kind::Text),
            doc: "Layers this file is merged over: names from the layer directories, or paths",
        },
        KeySpec {
            name: "artifacts",
            kind: Kind::MapOf(&Kind::Map(&ARTIFACT)),
            doc: "Named contents: a partition's content, a file inside another filesystem, and/or a file of their own",
        },
        KeySpec {
            name: "partitions",
            kind: Kind::List(&Kind::Map(&PARTITION)),
            doc: "The partitions and the blobs outside the table, in disk order",
        },
        KeySpec {
            name: "outputs",
            kind: Kind::List(&Kind::Enum(&OUTPUT_NAMES)),
            doc: "The files written (default: raw, bmap)",
        },
        KeySpec {
            name: "update",
            kind: Kind::Map(&UPDATE),
            doc: "What `image-composer bundle` puts into an update bundle",
        },
    ],
};

/// The names of `outputs:`, in the order of the docs.
const OUTPUT_NAMES: [&str; OutputKind::ALL.len()] = {
    let mut out = [""; OutputKind::ALL.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = OutputKind::ALL[i].keyword();
        i += 1;
    }
    out
};

const UPDATE: Section = Section {
    doc: "What `image-composer bundle` puts into an update bundle (docs/updates.md)",
    keys: &[
        KeySpec {
            name: "version",
            kind: Kind::Text,
            doc: "The bundle's version (1 to 128 letters, digits, '.', '_', '-', '+')",
        },
        KeySpec {
            name: "compatible",
            kind: Kind::Text,
            doc: "What devices the bundle is for (default: the image name)",
        },
        KeySpec {
            name: "slot",
            kind: Kind::Text,
            doc: "The partition whose content fills a slot (ab-slots)",
        },
        KeySpec {
            name: "slot-artifact",
            kind: Kind::Text,
            doc: "The artifact that fills a slot (ab-slots-images); instead of slot",
        },
    ],
};

/// Which kind of host path a key names.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    File,
    Dir,
    /// A regular file or a directory (`files:` sources).
    FileOrDir,
}

/// Decoding state: where problems go and where relative inputs are searched.
pub struct Cx<'a> {
    pub diags: &'a mut Vec<Diagnostic>,
    pub input_dirs: &'a [PathBuf],
    /// Names of partitions and artifacts left out of the description because
    /// they had a problem: references to them are not reported again.
    pub broken: std::collections::BTreeSet<String>,
}

impl Cx<'_> {
    fn err(&mut self, node: &Node, message: impl Into<String>, help: impl Into<String>) {
        self.diags
            .push(Diagnostic::new(node.span.clone(), node.path.clone(), message).help(help.into()));
    }

    fn expected(&mut self, node: &Node, what: &str, help: &str) {
        if matches!(node.value, Value::Invalid) {
            return;
        }
        let found = match &node.value {
            Value::Scalar { text, .. } => format!("\"{text}\""),
            _ => node.kind_name().to_string(),
        };
        self.err(node, format!("expected {what}, found {found}"), help);
    }

    /// The entries of a map node with only the keys of `section`; unknown
    /// keys are reported.
    fn fields<'n>(
        &mut self,
        node: &'n Node,
        section: &Section,
        example: &str,
    ) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.expected(node, "a map", example);
            return None;
        };
        for (k, v) in entries {
            if section.key(&k.text).is_none() {
                self.unknown_key(k, &v.path, &section.names());
            }
        }
        Some(Fields { node, entries })
    }

    fn unknown_key(&mut self, key: &Key, path: &str, valid: &[&str]) {
        let mut help = String::new();
        if let Some(best) = closest(&key.text, valid) {
            help.push_str(&format!("did you mean '{best}'? "));
        }
        help.push_str(&format!("valid keys: {}", valid.join(", ")));
        self.diags.push(
            Diagnostic::new(
                key.span.clone(),
                path,
                format!("unknown key '{}'", key.text),
            )
            .help(help),
        );
    }

    fn text(&mut self, node: &Node) -> Option<String> {
        match &node.value {
            Value::Scalar { text, .. } => Some(text.clone()),
            _ => {
                self.expected(node, "text", "write a single value, e.g. `key: value`");
                None
            }
        }
    }

    fn spanned_text(&mut self, node: &Node) -> Option<Spanned<String>> {
        let t = self.text(node)?;
        Some(Spanned::new(t, node.span.clone(), node.path.clone()))
    }

    fn spanned<T>(&self, node: &Node, value: T) -> Spanned<T> {
        Spanned::new(value, node.span.clone(), node.path.clone())
    }

    fn boolean(&mut self, node: &Node) -> Option<bool> {
        let t = self.scalar_text(node, "true or false")?;
        match t.as_str() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => {
                self.err(
                    node,
                    format!("\"{t}\" is not true or false"),
                    "write true or false",
                );
                None
            }
        }
    }

    /// The text of a scalar, or a diagnostic naming `what` was expected.
    fn scalar_text(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, .. } => Some(text.trim().to_string()),
            _ => {
                self.expected(node, what, &format!("write {what}"));
                None
            }
        }
    }

    fn size(&mut self, node: &Node) -> Option<ByteSize> {
        let t = self.scalar_text(node, "a size")?;
        match t.parse::<ByteSize>() {
            Ok(s) => Some(s),
            Err(e) => {
                self.size_error(node, &t, &e);
                None
            }
        }
    }

    /// A size that `ok` accepts; else the error `"SIZE" problem` with `help`.
    fn size_where(
        &mut self,
        node: &Node,
        ok: impl Fn(u64) -> bool,
        problem: &str,
        help: &str,
    ) -> Option<ByteSize> {
        let s = self.size(node)?;
        if ok(s.0) {
            return Some(s);
        }
        self.err(node, format!("\"{s}\" {problem}"), help);
        None
    }

    fn size_error(&mut self, node: &Node, text: &str, e: &SizeError) {
        let message = match e {
            SizeError::NotASize | SizeError::UnknownUnit(_) => format!("\"{text}\" is not a size"),
            SizeError::Overflow => format!("\"{text}\" is too large"),
        };
        self.err(
            node,
            message,
            "write a number with a unit, e.g. \"64MiB\" or \"1G\"",
        );
    }

    /// `SIZE | auto | auto +SIZE | auto +N% | auto +N% +SIZE | fill` (fill only
    /// when `allow_fill`).
    fn size_spec(&mut self, node: &Node, allow_fill: bool) -> Option<SizeSpec> {
        let help = if allow_fill {
            "write a size (\"64MiB\"), auto, \"auto +64MiB\", \"auto +20%\" or fill"
        } else {
            "write a size (\"64MiB\"), auto, \"auto +64MiB\" or \"auto +20%\""
        };
        let t = self.scalar_text(node, "a size")?;
        if t == "fill" {
            if allow_fill {
                return Some(SizeSpec::Fill);
            }
            self.err(node, "\"fill\" is only for partitions", help);
            return None;
        }
        if let Some(rest) = t.strip_prefix("auto") {
            let rest = rest.trim();
            if rest.is_empty() {
                return Some(SizeSpec::Auto(Headroom::None));
            }
            let Some(extra) = rest.strip_prefix('+') else {
                self.err(node, format!("\"{t}\" is not a size"), help);
                return None;
            };
            // `+N%`, `+SIZE`, or both (wic's overhead factor and extra space).
            let (mut percent, mut bytes) = (None, None);
            for term in extra.split('+').map(str::trim) {
                let twice = |what: &str| {
                    (
                        format!("\"{t}\" has two {what}"),
                        "write at most one percentage and one size, e.g. \"auto +30% +13MiB\"",
                    )
                };
                if let Some(pct) = term.strip_suffix('%') {
                    match pct.trim().parse::<u32>() {
                        Ok(_) if percent.is_some() => {
                            let (m, h) = twice("percentages");
                            self.err(node, m, h);
                            return None;
                        }
                        Ok(p) if p <= 1000 => percent = Some(p),
                        _ => {
                            self.err(
                                node,
                                format!("\"{t}\" has an invalid percentage"),
                                "write a whole percentage from 0 to 1000, e.g. \"auto +20%\"",
                            );
                            return None;
                        }
                    }
                } else {
                    match term.parse::<ByteSize>() {
                        Ok(_) if bytes.is_some() => {
                            let (m, h) = twice("sizes");
                            self.err(node, m, h);
                            return None;
                        }
                        Ok(s) => bytes = Some(s),
                        Err(_) => {
                            self.err(node, format!("\"{t}\" is not a size"), help);
                            return None;
                        }
                    }
                }
            }
            return Some(SizeSpec::Auto(match (percent, bytes) {
                (Some(p), Some(b)) => Headroom::PercentAndBytes(p, b),
                (Some(p), None) => Headroom::Percent(p),
                (None, Some(b)) => Headroom::Bytes(b),
                (None, None) => Headroom::None,
            }));
        }
        match t.parse::<ByteSize>() {
            Ok(s) => Some(SizeSpec::Fixed(s)),
            Err(SizeError::Overflow) => {
                self.err(node, format!("\"{t}\" is too large"), help);
                None
            }
            Err(_) => {
                self.err(node, format!("\"{t}\" is not a size"), help);
                None
            }
        }
    }

    /// A non-negative integer, decimal or `0x` hexadecimal, at most `max`.
    fn uint(&mut self, node: &Node, max: u64, what: &str) -> Option<u64> {
        let t = self.scalar_text(node, what)?;
        let digits = t.replace('_', "");
        let parsed = match digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
        {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => digits.parse::<u64>(),
        };
        match parsed {
            Ok(v) if v <= max => Some(v),
            Ok(_) => {
                self.err(
                    node,
                    format!("\"{t}\" is too large for {what}"),
                    format!("write a number from 0 to {max}"),
                );
                None
            }
            Err(_) => {
                self.err(
                    node,
                    format!("\"{t}\" is not {what}"),
                    "write a decimal number or 0x followed by hexadecimal digits",
                );
                None
            }
        }
    }

    fn u32(&mut self, node: &Node, what: &str) -> Option<u32> {
        self.uint(node, u64::from(u32::MAX), what)
            .and_then(|v| u32::try_from(v).ok())
    }

    /// Permission bits written in octal ("0755", "755", "4755").
    fn mode(&mut self, node: &Node) -> Option<u32> {
        let t = self.scalar_text(node, "a mode")?;
        match u32::from_str_radix(&t, 8) {
            Ok(m) if m <= 0o7777 && !t.is_empty() => Some(m),
            _ => {
                self.err(
                    node,
                    format!("\"{t}\" is not a file mode"),
                    "write the permission bits in octal, e.g. \"0755\"",
                );
                None
            }
        }
    }

    fn uuid(&mut self, node: &Node) -> Option<Uuid> {
        let t = self.scalar_text(node, "a UUID")?;
        match Uuid::parse(&t) {
            Some(u) => Some(u),
            None => {
                self.err(
                    node,
                    format!("\"{t}\" is not a UUID"),
                    "write 8-4-4-4-12 hexadecimal digits, e.g. \"0fc63daf-8483-4772-8e79-3d69d8477de4\"",
                );
                None
            }
        }
    }

    /// One of the names in `choices`.
    fn choice<T: Copy>(&mut self, node: &Node, what: &str, choices: &[(&str, T)]) -> Option<T> {
        let t = self.scalar_text(node, what)?;
        if let Some((_, v)) = choices.iter().find(|(n, _)| *n == t) {
            return Some(*v);
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let mut help = String::new();
        if let Some(best) = closest(&t, &names) {
            help.push_str(&format!("did you mean '{best}'? "));
        }
        help.push_str(&format!("use one of: {}", names.join(", ")));
        self.err(node, format!("\"{t}\" is not {what}"), help);
        None
    }

    /// A host input path, resolved against the file's directory, then the input dirs.
    fn input_path(&mut self, node: &Node, kind: PathKind) -> Option<InputPath> {
        let what = match kind {
            PathKind::File => "a file path",
            PathKind::Dir => "a directory path",
            PathKind::FileOrDir => "a file or directory path",
        };
        let text = self.scalar_text(node, what)?;
        if text.is_empty() {
            self.err(node, "empty path", format!("write {what}"));
            return None;
        }
        let written = Path::new(&text);
        let base = node
            .span
            .file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut candidates = vec![base.join(written)];
        if written.is_relative() {
            candidates.extend(self.input_dirs.iter().map(|d| d.join(written)));
        }
        let found = candidates.iter().find(|c| c.exists()).cloned();
        let path = match found {
            Some(p) => {
                // A file input is read to its end, and its size decides the
                // layout: a FIFO, a device or a socket would hang or read
                // forever (`/dev/zero`), so only regular files are inputs.
                let ok = match kind {
                    PathKind::File => p.is_file(),
                    PathKind::Dir => p.is_dir(),
                    PathKind::FileOrDir => p.is_file() || p.is_dir(),
                };
                if !ok {
                    let (is, want) = match kind {
                        PathKind::File if p.is_dir() => ("a directory", "a file"),
                        PathKind::File => ("not a regular file", "a regular file"),
                        PathKind::Dir => ("not a directory", "a directory"),
                        PathKind::FileOrDir => (
                            "not a regular file or directory",
                            "a regular file or a directory",
                        ),
                    };
                    self.err(
                        node,
                        format!("\"{text}\" is {is}"),
                        format!("name {want} here ({})", p.display()),
                    );
                }
                p
            }
            None => {
                let searched: Vec<String> =
                    candidates.iter().map(|c| c.display().to_string()).collect();
                let help = if written.is_relative() && self.input_dirs.is_empty() {
                    format!(
                        "looked for {}; fix the path or pass --input-dir",
                        searched.join(", ")
                    )
                } else {
                    format!("looked for {}; fix the path", searched.join(", "))
                };
                self.err(node, format!("\"{text}\" does not exist"), help);
                candidates.swap_remove(0)
            }
        };
        Some(InputPath {
            text,
            path,
            span: node.span.clone(),
            key: node.path.clone(),
        })
    }

    /// A list node's items; a single scalar counts as a one-item list.
    fn list<'n>(&mut self, node: &'n Node, example: &str) -> Option<Vec<&'n Node>> {
        match &node.value {
            Value::Seq(items) => Some(items.iter().collect()),
            Value::Invalid => None,
            _ => {
                self.expected(node, "a list", example);
                None
            }
        }
    }
}

/// The entries of one map, with the keys checked.
struct Fields<'n> {
    node: &'n Node,
    entries: &'n [(Key, Node)],
}

impl<'n> Fields<'n> {
    /// The value of `key`; `None` when absent or null.
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.text == key)
            .map(|(_, v)| v)
            .filter(|v| !matches!(v.value, Value::Null))
    }

    /// A required key; reports its absence at the map.
    fn require(&self, cx: &mut Cx<'_>, key: &str, help: &str) -> Option<&'n Node> {
        let v = self.get(key);
        if v.is_none() {
            cx.diags.push(
                Diagnostic::new(
                    self.node.span.clone(),
                    self.node.path.clone(),
                    format!("missing key '{key}'"),
                )
                .help(help),
            );
        }
        v
    }

    /// A defaulted bool: the value, or `default` spanned at the map.
    fn flag(&self, cx: &mut Cx<'_>, key: &str, default: bool) -> Spanned<bool> {
        match self.get(key) {
            Some(n) => Spanned::new(
                cx.boolean(n).unwrap_or(default),
                n.span.clone(),
                n.path.clone(),
            ),
            None => Spanned::new(
                default,
                self.node.span.clone(),
                child_path(&self.node.path, key),
            ),
        }
    }

    /// A defaulted value spanned at the map when absent.
    fn or_default<T>(&self, key: &str, value: Option<Spanned<T>>, default: T) -> Spanned<T> {
        value.unwrap_or_else(|| {
            Spanned::new(
                default,
                self.node.span.clone(),
                child_path(&self.node.path, key),
            )
        })
    }
}

/// The closest of `names` to `word` when it is a plausible typo.
pub fn closest<'a>(word: &str, names: &[&'a str]) -> Option<&'a str> {
    let len = word.chars().count();
    if len < 3 {
        return None;
    }
    let limit = (len / 3).max(1);
    names
        .iter()
        .map(|n| (levenshtein(word, n), *n))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// Optimal-string-alignment distance: edits, counting a swap of two
/// neighbours ("gtp" for "gpt") as one.
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Decodes the merged root node. `layer_files` is recorded in the result.
pub fn decode(
    cx: &mut Cx<'_>,
    root: &Node,
    file: Arc<PathBuf>,
    layer_files: Vec<PathBuf>,
) -> Option<Description> {
    let f = cx.fields(
        root,
        &TOP,
        "a description is a map with image, partitions, ...",
    )?;
    let image = match f.require(
        cx,
        "image",
        "add `image: { name: sdcard }` (the name of the output files)",
    ) {
        Some(n) => decode_image(cx, n),
        None => None,
    };

    let mut artifacts = Vec::new();
    if let Some(n) = f.get("artifacts") {
        if let Value::Map(entries) = &n.value {
            for (k, v) in entries {
                if !is_name(&k.text) {
                    cx.diags.push(
                        Diagnostic::new(
                            k.span.clone(),
                            v.path.clone(),
                            format!("\"{}\" is not a valid artifact name", k.text),
                        )
                        .help("use letters, digits, '.', '_' and '-'"),
                    );
                }
                let name = Spanned::new(k.text.clone(), k.span.clone(), v.path.clone());
                let before = cx.diags.len();
                match decode_artifact(cx, v, name) {
                    Some(a) if cx.diags.len() == before => artifacts.push(a),
                    _ => {
                        cx.broken.insert(k.text.clone());
                    }
                }
            }
        } else {
            cx.expected(
                n,
                "a map of named artifacts",
                "write `artifacts: { rootfs: { fs: { type: ext4 } } }`",
            );
        }
    }

    let mut partitions = Vec::new();
    if let Some(n) = f.get("partitions") {
        if let Some(items) = cx.list(n, "write `partitions: [ { name: boot, ... } ]`") {
            for item in items {
                let before = cx.diags.len();
                match decode_partition(cx, item, image.as_ref()) {
                    Some(p) if cx.diags.len() == before => partitions.push(p),
                    _ => {
                        if let Some(name) = item.get("name").and_then(Node::as_str) {
                            cx.broken.insert(name.to_string());
                        }
                    }
                }
            }
        }
    }

    let mut outputs: Vec<Spanned<OutputKind>> = Vec::new();
    match f.get("outputs") {
        Some(n) => {
            if let Some(items) = cx.list(n, "write `outputs: [raw, bmap]`") {
                for item in items {
                    let choices = OutputKind::ALL.map(|k| (k.keyword(), k));
                    if let Some((text, kind)) = output_alias(item) {
                        let file = image.as_ref().map_or_else(
                            || "IMAGE.img".to_string(),
                            |i| kind.file_name(&i.name.value),
                        );
                        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                        cx.err(
                            item,
                            format!("\"{text}\" is not an output format"),
                            format!(
                                "write '{}': that output is the file {file}; use one of: {}",
                                kind.keyword(),
                                names.join(", ")
                            ),
                        );
                        continue;
                    }
                    if let Some(k) = cx.choice(item, "an output format", &choices) {
                        if !outputs.iter().any(|o| o.value == k) {
                            outputs.push(cx.spanned(item, k));
                        }
                    }
                }
            }
        }
        None => {
            for k in [OutputKind::Raw, OutputKind::Bmap] {
                outputs.push(Spanned::new(k, root.span.clone(), "outputs"));
            }
        }
    }

    let image = image?;
    let update = match f.get("update") {
        Some(n) => Some(decode_update(cx, n, &image)?),
        None => None,
    };
    Some(Description {
        file,
        layer_files,
        image,
        artifacts,
        partitions,
        outputs,
        update,
    })
}

/// An `outputs:` entry that names a format by its file's extension or its
/// tool's word rather than by its keyword (`img` for `raw`): edit distance
/// would suggest a wrong keyword (`simg` for `img`).
fn output_alias(item: &Node) -> Option<(&str, OutputKind)> {
    const ALIASES: [(&str, OutputKind); 7] = [
        ("img", OutputKind::Raw),
        ("image", OutputKind::Raw),
        ("zstd", OutputKind::Zst),
        ("gzip", OutputKind::Gz),
        ("sparse", OutputKind::Simg),
        ("android-sparse", OutputKind::Simg),
        ("qcow", OutputKind::Qcow2),
    ];
    let text = item.as_str()?.trim();
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == text)
        .map(|&(_, kind)| (text, kind))
}

/// `update:`; names are checked like the bundle manifest checks them.
fn decode_update(cx: &mut Cx<'_>, node: &Node, image: &Image) -> Option<Update> {
    let f = cx.fields(
        node,
        &UPDATE,
        "write `update: { compatible: my-board, slot: rootA }`",
    )?;
    let label = |cx: &mut Cx<'_>, key: &str| -> Option<Option<Spanned<String>>> {
        let Some(n) = f.get(key) else {
            return Some(None);
        };
        let s = cx.spanned_text(n)?;
        let ok = s.value.len() <= 128 && is_name(&s.value.replace('+', "_"));
        if !ok {
            cx.err(
                n,
                format!("\"{}\" is not a valid {key}", s.value),
                "use 1 to 128 letters, digits, '.', '_', '-' and '+'",
            );
            return None;
        }
        Some(Some(s))
    };
    let version = label(cx, "version");
    let compatible = label(cx, "compatible");
    let slot = match (f.get("slot"), f.get("slot-artifact")) {
        (Some(n), None) => cx
            .spanned_text(n)
            .map(|s| Spanned::new(UpdateSlot::Partition(s.value), s.span, s.key)),
        (None, Some(n)) => cx
            .spanned_text(n)
            .map(|s| Spanned::new(UpdateSlot::Artifact(s.value), s.span, s.key)),
        (Some(_), Some(n)) => {
            cx.err(
                n,
                "`slot` and `slot-artifact` are both given",
                "keep `slot` (a partition, ab-slots) or `slot-artifact` (an image file, ab-slots-images)",
            );
            None
        }
        (None, None) => {
            f.require(
                cx,
                "slot",
                "add `slot: rootA` (the partition that fills a slot) or `slot-artifact: rootfs`",
            );
            None
        }
    };
    let compatible = compatible?.unwrap_or_else(|| {
        Spanned::new(
            image.name.value.clone(),
            node.span.clone(),
            format!("{}.compatible", node.path),
        )
    });
    Some(Update {
        version: version?,
        compatible,
        slot: slot?,
    })
}

fn check_align(cx: &mut Cx<'_>, n: &Node, a: ByteSize, sector: u32) -> Option<()> {
    if a.0 == 0 || a.0 % u64::from(sector) != 0 {
        cx.err(
            n,
            format!("\"{a}\" is not a whole number of {sector}-byte sectors"),
            "use a multiple of the sector size, e.g. 1MiB",
        );
        return None;
    }
    Some(())
}

/// The content keys present in a map, in written order.
fn content_keys<'n>(f: &Fields<'n>, allowed: &[&str]) -> Vec<(&'n Key, &'n Node)> {
    f.entries
        .iter()
        .filter(|(k, _)| allowed.contains(&k.text.as_str()))
        .map(|(k, v)| (k, v))
        .collect()
}

/// Reports every content key after the first; returns the first.
fn one_content<'n>(
    cx: &mut Cx<'_>,
    f: &Fields<'n>,
    allowed: &[&str],
) -> Option<(&'n Key, &'n Node)> {
    let keys = content_keys(f, allowed);
    let first = keys.first().copied();
    if let Some((k0, _)) = first {
        for (k, v) in keys.iter().skip(1) {
            cx.diags.push(
                Diagnostic::new(
                    k.span.clone(),
                    v.path.clone(),
                    format!(
                        "a second content ('{}' is already set on line {})",
                        k0.text, k0.span.line
                    ),
                )
                .help(format!(
                    "keep one of {} and {}: a partition holds one content",
                    k0.text, k.text
                )),
            );
        }
    }
    first
}

fn decode_content(cx: &mut Cx<'_>, key: &Key, node: &Node) -> Option<Spanned<Content>> {
    let content = match key.text.as_str() {
        "image" => Content::Image(cx.input_path(node, PathKind::File)?),
        "fs" => Content::Fs(decode_fs(cx, node)?),
        "initramfs" => Content::Initramfs(Box::new(decode_initramfs(cx, node)?)),
        "artifact" => Content::Artifact(cx.spanned_text(node)?),
        "same-as" => Content::SameAs(cx.spanned_text(node)?),
        "fill" => {
            cx.choice(node, "a fill pattern", &FILL_PATTERNS)?;
            Content::Zero
        }
        _ => return None,
    };
    Some(Spanned::new(content, key.span.clone(), node.path.clone()))
}
