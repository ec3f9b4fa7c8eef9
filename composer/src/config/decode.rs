//! Merged node tree → typed [`Description`]: schema, types, enum values,
//! defaults, per-value checks and input-path resolution.
//!
//! Every decoder takes a node and returns `Option<T>`: `None` after pushing a
//! diagnostic (or silently for a value already reported, [`Value::Invalid`]),
//! so that one run reports every problem. Cross-entry checks (references,
//! duplicate names, cycles) are in `validate.rs`.

use super::model::*;
use super::yaml::{child_path, Key, Node, Value};
use crate::diag::Diagnostic;
use crate::ids::Uuid;
use crate::ptable::types::{self, TypeError};
use crate::units::{ByteSize, SizeError, KIB};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The keys a content can be given by (exactly one per partition or artifact).
pub const CONTENT_KEYS: [&str; 6] = ["image", "fs", "initramfs", "artifact", "same-as", "fill"];

pub(crate) const TOP_KEYS: [&str; 6] = [
    "image",
    "layers",
    "artifacts",
    "partitions",
    "outputs",
    "update",
];
const UPDATE_KEYS: [&str; 4] = ["version", "compatible", "slot", "slot-artifact"];
const IMAGE_KEYS: [&str; 13] = [
    "name",
    "table",
    "size",
    "sector-size",
    "align",
    "seed",
    "disk-uuid",
    "mbr-signature",
    "gpt-entries",
    "gpt-location",
    "gpt-no-backup",
    "protective-entry",
    "extended-partition",
];
const PARTITION_KEYS: [&str; 25] = [
    "name",
    "type",
    "size",
    "offset",
    "in-table",
    "bootable",
    "read-only",
    "no-automount",
    "required",
    "legacy-bios-bootable",
    "gpt-attributes",
    "forced-primary",
    "uuid",
    "align",
    "mbr-type",
    "hybrid",
    "holes",
    "image",
    "fs",
    "initramfs",
    "artifact",
    "same-as",
    "fill",
    "after",
    "before",
];
const ARTIFACT_KEYS: [&str; 5] = ["fs", "initramfs", "image", "size", "output"];
const VFAT_KEYS: [&str; 8] = [
    "type",
    "label",
    "fat",
    "cluster-size",
    "volume-id",
    "files",
    "from",
    "exclude",
];
const EXT4_KEYS: [&str; 17] = [
    "type",
    "label",
    "uuid",
    "from",
    "exclude",
    "files",
    "owners",
    "device-table",
    "rules",
    "features",
    "journal",
    "journal-init",
    "block-size",
    "inode-ratio",
    "inodes",
    "reserved",
    "hash-seed",
];
const SQUASHFS_KEYS: [&str; 11] = [
    "type",
    "from",
    "exclude",
    "files",
    "owners",
    "device-table",
    "rules",
    "compression",
    "level",
    "block-size",
    "verity",
];
const SWAP_KEYS: [&str; 4] = ["type", "label", "uuid", "page-size"];
const EROFS_KEYS: [&str; 10] = [
    "type",
    "from",
    "exclude",
    "files",
    "owners",
    "device-table",
    "rules",
    "compression",
    "level",
    "pcluster-size",
];
const INITRAMFS_KEYS: [&str; 13] = [
    "from",
    "exclude",
    "files",
    "dirs",
    "symlinks",
    "nodes",
    "busybox",
    "modules",
    "init",
    "compression",
    "owners",
    "device-table",
    "rules",
];
const RULE_KEYS: [&str; 5] = ["path", "uid", "gid", "mode", "caps"];
const NODE_KEYS: [&str; 7] = ["path", "type", "major", "minor", "mode", "uid", "gid"];

/// ext4 feature names mke2fs knows (e2fsprogs lib/e2p/feature.c), so that a
/// typo is caught here rather than ignored by the writer.
const EXT4_FEATURES: [&str; 33] = [
    "64bit",
    "bigalloc",
    "casefold",
    "dir_index",
    "dir_nlink",
    "ea_inode",
    "encrypt",
    "ext_attr",
    "extent",
    "extents",
    "extra_isize",
    "fast_commit",
    "filetype",
    "flex_bg",
    "has_journal",
    "huge_file",
    "inline_data",
    "large_dir",
    "large_file",
    "meta_bg",
    "metadata_csum",
    "metadata_csum_seed",
    "mmp",
    "orphan_file",
    "project",
    "quota",
    "resize_inode",
    "sparse_super",
    "sparse_super2",
    "stable_inodes",
    "uninit_bg",
    "verity",
    "journal_dev",
];

/// Bytes per GPT partition entry (UEFI 2.10 §5.3.3).
const GPT_ENTRY_SIZE: u64 = 128;
/// UEFI reserves at least 16KiB for the entry array: 128 entries.
const GPT_ENTRIES_MIN: u64 = 128;
/// 16384 entries (2MiB of array) is far beyond any real table.
const GPT_ENTRIES_MAX: u64 = 16384;
/// FAT volume labels are 11 bytes (the BPB field).
const VFAT_LABEL_MAX: usize = 11;
/// ext4 `s_volume_name` is 16 bytes.
const EXT4_LABEL_MAX: usize = 16;
/// GPT partition names are 36 UTF-16 code units (72 bytes in the entry).
const GPT_NAME_MAX: usize = 36;
/// mke2fs accepts bytes-per-inode from 1KiB to 64MiB.
const INODE_RATIO_RANGE: (u64, u64) = (1024, 64 * 1024 * 1024);
/// mke2fs refuses more than 50% reserved blocks.
const RESERVED_MAX: u64 = 50;
/// FAT clusters are 1 to 128 sectors of 512 bytes (64KiB; Windows reads up to that).
const CLUSTER_RANGE: (u64, u64) = (512, 64 * KIB);

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

    /// The entries of a map node with only the `valid` keys; unknown keys are reported.
    fn fields<'n>(&mut self, node: &'n Node, valid: &[&str], example: &str) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.expected(node, "a map", example);
            return None;
        };
        for (k, v) in entries {
            if !valid.contains(&k.text.as_str()) {
                self.unknown_key(k, &v.path, valid);
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
        &TOP_KEYS,
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
        &UPDATE_KEYS,
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

fn decode_image(cx: &mut Cx<'_>, node: &Node) -> Option<Image> {
    let f = cx.fields(
        node,
        &IMAGE_KEYS,
        "write `image: { name: sdcard, table: gpt }`",
    )?;
    let name = f
        .require(
            cx,
            "name",
            "add `name: sdcard` (the stem of the output files)",
        )
        .and_then(|n| {
            let s = cx.spanned_text(n)?;
            if !is_name(&s.value) {
                cx.err(
                    n,
                    format!("\"{}\" is not a valid image name", s.value),
                    "use letters, digits, '.', '_' and '-' (it names the output files)",
                );
                return None;
            }
            Some(s)
        });
    let table = f.get("table").and_then(|n| {
        cx.choice(
            n,
            "a partition table kind",
            &[
                ("gpt", TableKind::Gpt),
                ("mbr", TableKind::Mbr),
                ("hybrid", TableKind::Hybrid),
                ("none", TableKind::None),
            ],
        )
        .map(|v| cx.spanned(n, v))
    });
    let table = f.or_default("table", table, TableKind::Gpt);
    let size = f.get("size").and_then(|n| {
        let t = n.as_str().map(str::trim);
        if t == Some("auto") {
            return Some(cx.spanned(n, ImageSize::Auto));
        }
        let t = cx.scalar_text(n, "a size")?;
        match t.parse::<ByteSize>() {
            Ok(s) => Some(cx.spanned(n, ImageSize::Fixed(s))),
            Err(_) => {
                cx.err(
                    n,
                    format!("\"{t}\" is not an image size"),
                    "write a size such as \"4GiB\", or auto (the smallest that fits)",
                );
                None
            }
        }
    });
    let size = f.or_default("size", size, ImageSize::Auto);
    let sector_size = f.get("sector-size").and_then(|n| {
        let v = cx.u32(n, "a sector size")?;
        if v != 512 && v != 4096 {
            cx.err(
                n,
                format!("\"{v}\" is not a supported sector size"),
                "use 512 (SD cards, most eMMC) or 4096 (4Kn disks, UFS)",
            );
            return None;
        }
        Some(cx.spanned(n, v))
    });
    let sector_size = f.or_default("sector-size", sector_size, 512);
    let align = f.get("align").and_then(|n| {
        let a = cx.size(n)?;
        check_align(cx, n, a, sector_size.value)?;
        Some(cx.spanned(n, a))
    });
    let align = f.or_default("align", align, ByteSize(crate::units::MIB));
    if let (ImageSize::Fixed(s), Some(n)) = (size.value, f.get("size")) {
        if s.0 == 0 || s.0 % u64::from(sector_size.value) != 0 {
            cx.err(
                n,
                format!(
                    "\"{s}\" is not a whole number of {}-byte sectors",
                    sector_size.value
                ),
                "use a multiple of the sector size, or auto",
            );
        }
    }
    let seed = f.get("seed").and_then(|n| cx.spanned_text(n));
    let disk_uuid = f
        .get("disk-uuid")
        .and_then(|n| cx.uuid(n).map(|u| cx.spanned(n, u)));
    let mbr_signature = f
        .get("mbr-signature")
        .and_then(|n| cx.u32(n, "an MBR signature").map(|u| cx.spanned(n, u)));
    let gpt_entries = f.get("gpt-entries").and_then(|n| {
        let v = cx.uint(n, u64::from(u32::MAX), "an entry count")?;
        let per_sector = u64::from(sector_size.value) / GPT_ENTRY_SIZE;
        if !(GPT_ENTRIES_MIN..=GPT_ENTRIES_MAX).contains(&v) || v % per_sector != 0 {
            cx.err(
                n,
                format!("\"{v}\" is not a usable GPT entry count"),
                format!(
                    "use a multiple of {per_sector} from {GPT_ENTRIES_MIN} (the UEFI minimum) to {GPT_ENTRIES_MAX}"
                ),
            );
            return None;
        }
        u32::try_from(v).ok().map(|v| cx.spanned(n, v))
    });
    let gpt_location = f.get("gpt-location").and_then(|n| {
        let a = cx.size(n)?;
        let sector = u64::from(sector_size.value);
        // LBA 0 holds the protective MBR and LBA 1 the GPT header.
        if a.0 % sector != 0 || a.0 < 2 * sector {
            cx.err(
                n,
                format!("\"{a}\" is not a usable GPT array location"),
                format!(
                    "use a whole number of {sector}-byte sectors from {} on (after the MBR and the GPT header)",
                    ByteSize(2 * sector)
                ),
            );
            return None;
        }
        Some(cx.spanned(n, a))
    });
    let gpt_no_backup = f
        .get("gpt-no-backup")
        .and_then(|n| cx.boolean(n).map(|b| cx.spanned(n, b)));
    let protective_first = f.get("protective-entry").and_then(|n| {
        cx.choice(
            n,
            "a protective entry position",
            &[("last", false), ("first", true)],
        )
        .map(|v| cx.spanned(n, v))
    });
    let extended_partition = f.get("extended-partition").and_then(|n| {
        let v = cx.uint(n, 4, "an MBR entry number")?;
        if v == 0 {
            cx.err(
                n,
                "\"0\" is not an MBR entry",
                "use 1 to 4, or remove it (entry 4 when more than four partitions are in the table)",
            );
            return None;
        }
        u32::try_from(v).ok().map(|v| cx.spanned(n, v))
    });
    let table_kind = table.value;
    check_table_keys(
        cx,
        table_kind,
        gpt_no_backup.as_ref().map(|d| d.diag("")),
        protective_first.as_ref().map(|d| d.diag("")),
        extended_partition.as_ref().map(|d| d.diag("")),
    );
    if let Some(d) = &disk_uuid {
        if matches!(table_kind, TableKind::Mbr | TableKind::None) {
            cx.diags.push(d.diag("a disk UUID needs a GPT").help(
                "remove disk-uuid, or use `table: gpt` (mbr-signature is the MBR's disk id)",
            ));
        }
    }
    if matches!(table_kind, TableKind::Mbr | TableKind::None) {
        for (key, span) in [
            ("gpt-entries", gpt_entries.as_ref().map(|d| d.diag(""))),
            ("gpt-location", gpt_location.as_ref().map(|d| d.diag(""))),
        ] {
            if let Some(at) = span {
                cx.diags.push(
                    Diagnostic::new(at.span, at.key, format!("{key} needs a GPT"))
                        .help(format!("remove {key}, or use `table: gpt`")),
                );
            }
        }
    }
    if let Some(d) = &mbr_signature {
        if table_kind == TableKind::None {
            cx.diags.push(d.diag("an MBR signature needs an MBR").help(
                "remove mbr-signature, or use a table (on `table: gpt` it is the protective MBR's)",
            ));
        }
    }
    let name = name?;
    let seed = seed.unwrap_or_else(|| name.clone());
    Some(Image {
        name,
        table,
        size,
        sector_size,
        align,
        seed,
        disk_uuid,
        mbr_signature,
        gpt_entries,
        gpt_location,
        gpt_no_backup,
        protective_first,
        extended_partition,
    })
}

/// `gpt-no-backup`, `protective-entry` and `extended-partition` (given as
/// the diagnostics to report at them) apply to one kind of table each.
fn check_table_keys(
    cx: &mut Cx<'_>,
    table: TableKind,
    gpt_no_backup: Option<Diagnostic>,
    protective_entry: Option<Diagnostic>,
    extended_partition: Option<Diagnostic>,
) {
    let checks = [
        (
            gpt_no_backup,
            matches!(table, TableKind::Gpt | TableKind::Hybrid),
            "gpt-no-backup needs a GPT",
            "remove gpt-no-backup, or use `table: gpt` or `table: hybrid`",
        ),
        (
            protective_entry,
            table == TableKind::Hybrid,
            "protective-entry is the place of the 0xEE entry in a hybrid MBR",
            "remove protective-entry, or use `table: hybrid`",
        ),
        (
            extended_partition,
            table == TableKind::Mbr,
            "extended-partition needs `table: mbr` (logical partitions are an MBR's)",
            "remove extended-partition, or use `table: mbr`",
        ),
    ];
    for (at, fits, message, help) in checks {
        if let (Some(at), false) = (at, fits) {
            cx.diags
                .push(Diagnostic::new(at.span, at.key, message).help(help));
        }
    }
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
            cx.choice(node, "a fill pattern", &[("zero", ())])?;
            Content::Zero
        }
        _ => return None,
    };
    Some(Spanned::new(content, key.span.clone(), node.path.clone()))
}

fn decode_artifact(cx: &mut Cx<'_>, node: &Node, name: Spanned<String>) -> Option<Artifact> {
    let f = cx.fields(
        node,
        &ARTIFACT_KEYS,
        "write `rootfs: { fs: { type: ext4 } }`",
    )?;
    let kinds = ["fs", "initramfs", "image"];
    let content = match one_content(cx, &f, &kinds) {
        Some((k, v)) => decode_content(cx, k, v),
        None => {
            cx.diags.push(
                Diagnostic::new(
                    name.span.clone(),
                    name.key.clone(),
                    "an artifact needs a content",
                )
                .help("add one of fs, initramfs, image"),
            );
            None
        }
    };
    let size = f.get("size").and_then(|n| {
        let s = cx.size_spec(n, false)?;
        Some(cx.spanned(n, s))
    });
    let size = f.or_default("size", size, SizeSpec::Auto(Headroom::None));
    let output = f.get("output").and_then(|n| {
        let s = cx.spanned_text(n)?;
        if !is_name(&s.value) {
            cx.err(
                n,
                format!("\"{}\" is not a plain file name", s.value),
                "use letters, digits, '.', '_' and '-'; the file is written into the output directory",
            );
            return None;
        }
        Some(s)
    });
    Some(Artifact {
        name,
        content: content?,
        size,
        output,
    })
}

fn decode_partition(cx: &mut Cx<'_>, node: &Node, image: Option<&Image>) -> Option<Partition> {
    let f = cx.fields(
        node,
        &PARTITION_KEYS,
        "write `- name: boot` followed by its keys",
    )?;
    let name = f
        .require(cx, "name", "add `name: ...` (also the GPT partition name)")
        .and_then(|n| {
            let s = cx.spanned_text(n)?;
            if s.value.is_empty() || s.value.encode_utf16().count() > GPT_NAME_MAX {
                cx.err(
                    n,
                    format!("\"{}\" is not a usable partition name", s.value),
                    format!("use 1 to {GPT_NAME_MAX} characters (the GPT name field)"),
                );
                return None;
            }
            Some(s)
        });
    let part_type = f.get("type").and_then(|n| {
        let s = cx.spanned_text(n)?;
        match types::check(&s.value) {
            Ok(_) => Some(s),
            Err(e) => {
                let help = match e {
                    TypeError::Unknown => {
                        let guess = closest(&s.value, types::names())
                            .map(|b| format!("did you mean '{b}'? "))
                            .unwrap_or_default();
                        format!(
                            "{guess}write a GUID, an MBR byte such as 0x83, or a shorthand such as {} (all in docs/config.md)",
                            types::COMMON.join(", ")
                        )
                    }
                    TypeError::NilGuid | TypeError::Reserved(_) => {
                        "use the type of the partition's content, e.g. linux or esp".to_string()
                    }
                };
                cx.err(n, format!("\"{}\" {e}", s.value), help);
                None
            }
        }
    });
    let mbr_type = f.get("mbr-type").and_then(|n| {
        let v = cx.uint(n, 0xff, "an MBR type byte")?;
        let v = u8::try_from(v).ok()?;
        if let Err(e) = types::check(&format!("0x{v:02x}")) {
            cx.err(
                n,
                format!("\"0x{v:02x}\" {e}"),
                "use the partition's type byte, e.g. 0x83 (Linux) or 0x0c (FAT32 LBA)",
            );
            return None;
        }
        Some(cx.spanned(n, v))
    });
    let size = f
        .get("size")
        .and_then(|n| cx.size_spec(n, true).map(|s| cx.spanned(n, s)));
    let offset = f
        .get("offset")
        .and_then(|n| cx.size(n).map(|s| cx.spanned(n, s)));
    let in_table = f.flag(cx, "in-table", true);
    let bootable = f.flag(cx, "bootable", false);
    let flags = PartitionFlags {
        read_only: f.flag(cx, "read-only", false),
        no_automount: f.flag(cx, "no-automount", false),
        required: f.flag(cx, "required", false),
        legacy_bios_bootable: f.flag(cx, "legacy-bios-bootable", false),
        attributes: f
            .get("gpt-attributes")
            .and_then(|n| decode_gpt_attributes(cx, n)),
    };
    let forced_primary = f.flag(cx, "forced-primary", false);
    let uuid = f
        .get("uuid")
        .and_then(|n| cx.uuid(n).map(|u| cx.spanned(n, u)));
    let sector = image.map_or(512, |i| i.sector_size.value);
    let align = f.get("align").and_then(|n| {
        let a = cx.size(n)?;
        check_align(cx, n, a, sector)?;
        Some(cx.spanned(n, a))
    });
    let hybrid = f.flag(cx, "hybrid", false);
    let mut holes = Vec::new();
    if let Some(n) = f.get("holes") {
        for h in cx
            .list(n, "write `holes: [{ offset: 0, size: 1KiB }]`")
            .unwrap_or_default()
        {
            if let Some(hf) = cx.fields(h, &["offset", "size"], "write `{ offset: 0, size: 1KiB }`")
            {
                let o = hf
                    .require(
                        cx,
                        "offset",
                        "add `offset:` (from the start of the image file)",
                    )
                    .and_then(|n| cx.size(n));
                let s = hf
                    .require(cx, "size", "add `size:`")
                    .and_then(|n| cx.size(n));
                if let (Some(offset), Some(size)) = (o, s) {
                    holes.push(cx.spanned(h, Hole { offset, size }));
                }
            }
        }
    }
    let content = match one_content(cx, &f, &CONTENT_KEYS) {
        Some((k, v)) => decode_content(cx, k, v),
        None => Some(Spanned::new(
            Content::Empty,
            node.span.clone(),
            node.path.clone(),
        )),
    };

    // Cross-key checks within the entry.
    if !in_table.value {
        if offset.is_none() && f.get("offset").is_none() {
            cx.diags.push(
                in_table
                    .diag("a blob outside the table needs an offset")
                    .help(
                    "add `offset:` (e.g. 32KiB for i.MX boot images), or remove `in-table: false`",
                ),
            );
        }
        for key in ["type", "uuid", "mbr-type"] {
            if let Some(n) = f.get(key) {
                cx.err(
                    n,
                    format!("'{key}' has no effect on a blob outside the table"),
                    format!("remove {key}, or remove `in-table: false`"),
                );
            }
        }
    } else if !holes.is_empty() {
        if let Some(n) = f.get("holes") {
            cx.err(
                n,
                "holes are for blobs outside the table",
                "add `in-table: false` and an offset, or remove holes",
            );
        }
    }
    if let (Some(c), Some(n)) = (&content, f.get("size")) {
        if let Content::SameAs(r) = &c.value {
            cx.err(
                n,
                format!("same-as takes the size of '{}'", r.value),
                "remove size, or use `artifact:` to share content with a size of its own",
            );
        }
    }
    if let Some(img) = image {
        if hybrid.value && img.table.value != TableKind::Hybrid {
            cx.diags.push(
                hybrid
                    .diag("hybrid needs `table: hybrid`")
                    .help("remove hybrid, or set `table: hybrid` under image"),
            );
        }
    }
    Some(Partition {
        name: name?,
        span: node.span.clone(),
        key: node.path.clone(),
        part_type,
        mbr_type,
        size,
        offset,
        in_table,
        bootable,
        flags,
        uuid,
        align,
        hybrid,
        forced_primary,
        holes,
        content: content?,
    })
}

/// GPT attribute bits by name, with their bit number (UEFI 2.10 table 5.8;
/// 59–63 from the Discoverable Partitions Specification).
const GPT_ATTRIBUTE_NAMES: [(&str, u32); 7] = [
    ("required", 0),
    ("no-block-io", 1),
    ("legacy-bios-bootable", 2),
    ("growfs", 59),
    ("read-only", 60),
    ("hidden", 62),
    ("no-automount", 63),
];
/// Bits 3–47 are reserved by UEFI for future use and must be zero.
const GPT_ATTRIBUTES_RESERVED: u64 = ((1u64 << 48) - 1) & !0b111;

/// `gpt-attributes:` as the 64-bit field: an integer (the field itself) or
/// a list of bit numbers and names.
fn decode_gpt_attributes(cx: &mut Cx<'_>, n: &Node) -> Option<Spanned<u64>> {
    let names: Vec<&str> = GPT_ATTRIBUTE_NAMES.iter().map(|(name, _)| *name).collect();
    let bits = match &n.value {
        Value::Seq(items) => {
            let mut bits = 0u64;
            for item in items {
                let text = cx.scalar_text(item, "a GPT attribute bit")?;
                let bit = GPT_ATTRIBUTE_NAMES
                    .iter()
                    .find(|(name, _)| *name == text)
                    .map(|&(_, bit)| bit)
                    .or_else(|| text.parse::<u32>().ok().filter(|&b| b < 64));
                match bit {
                    Some(b) => bits |= 1u64 << b,
                    None => cx.err(
                        item,
                        format!("\"{text}\" is not a GPT attribute bit"),
                        format!("write a bit number 0-63 or one of: {}", names.join(", ")),
                    ),
                }
            }
            bits
        }
        _ => cx.uint(n, u64::MAX, "GPT attribute bits")?,
    };
    if bits & GPT_ATTRIBUTES_RESERVED != 0 {
        cx.err(
            n,
            format!("{bits:#x} sets GPT attribute bits 3-47, which UEFI reserves"),
            "use bits 0-2 and the type-specific bits 48-63",
        );
        return None;
    }
    Some(cx.spanned(n, bits))
}

fn decode_fs(cx: &mut Cx<'_>, node: &Node) -> Option<Filesystem> {
    let Value::Map(_) = &node.value else {
        cx.expected(node, "a map", "write `fs: { type: ext4 }`");
        return None;
    };
    let Some(t) = node.get("type").filter(|n| !matches!(n.value, Value::Null)) else {
        cx.err(
            node,
            "missing key 'type'",
            "add `type: ext4`, `type: vfat`, `type: squashfs`, `type: erofs` or `type: swap`",
        );
        return None;
    };
    #[derive(Clone, Copy)]
    enum Kind {
        Vfat,
        Ext4,
        Squashfs,
        Erofs,
        Swap,
    }
    let kind = cx.choice(
        t,
        "a filesystem type",
        &[
            ("vfat", Kind::Vfat),
            ("ext4", Kind::Ext4),
            ("squashfs", Kind::Squashfs),
            ("erofs", Kind::Erofs),
            ("swap", Kind::Swap),
        ],
    )?;
    match kind {
        Kind::Vfat => decode_vfat(cx, node).map(|v| Filesystem::Vfat(Box::new(v))),
        Kind::Ext4 => decode_ext4(cx, node).map(|e| Filesystem::Ext4(Box::new(e))),
        Kind::Squashfs => decode_squashfs(cx, node).map(|q| Filesystem::Squashfs(Box::new(q))),
        Kind::Erofs => decode_erofs(cx, node).map(|e| Filesystem::Erofs(Box::new(e))),
        Kind::Swap => decode_swap(cx, node).map(|w| Filesystem::Swap(Box::new(w))),
    }
}

fn label(cx: &mut Cx<'_>, f: &Fields<'_>, max: usize, fs: &str) -> Option<Spanned<String>> {
    let n = f.get("label")?;
    let s = cx.spanned_text(n)?;
    if s.value.len() > max {
        cx.err(
            n,
            format!("\"{}\" is longer than {max} bytes", s.value),
            format!("{fs} labels hold at most {max} bytes; shorten it"),
        );
        return None;
    }
    Some(s)
}

fn decode_files(cx: &mut Cx<'_>, f: &Fields<'_>) -> Vec<FileEntry> {
    let mut out = Vec::new();
    let Some(n) = f.get("files") else {
        return out;
    };
    let Value::Map(entries) = &n.value else {
        cx.expected(
            n,
            "a map of destination: source",
            "write `files: { /Image: \"${BINARIES_DIR}/Image\" }`",
        );
        return out;
    };
    for (k, v) in entries {
        let dest = Spanned::new(k.text.clone(), k.span.clone(), v.path.clone());
        let dest_ok = check_dest(cx, &dest);
        let source = match &v.value {
            Value::Map(_) => cx
                .fields(v, &["artifact"], "write `{ artifact: name }`")
                .and_then(|af| {
                    af.require(cx, "artifact", "add `artifact: <name>`")
                        .and_then(|a| cx.spanned_text(a))
                })
                .map(FileRef::Artifact),
            _ => cx.input_path(v, PathKind::FileOrDir).map(FileRef::Path),
        };
        if let (true, Some(source)) = (dest_ok, source) {
            out.push(FileEntry { dest, source });
        }
    }
    out
}

/// Destination paths inside a filesystem are absolute and normal.
fn check_dest(cx: &mut Cx<'_>, dest: &Spanned<String>) -> bool {
    let d = &dest.value;
    let bad = !d.starts_with('/')
        || d == "/"
        || d.split('/')
            .skip(1)
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        cx.diags.push(
            dest.diag(format!(
                "\"{d}\" is not an absolute path inside the filesystem"
            ))
            .help("write it from the filesystem's root, e.g. /boot/Image (no '.', '..' or '//')"),
        );
    }
    !bad
}

/// Every component of a FAT destination is a legal long name (the writer's
/// own rule, [`crate::fs::vfat::names::validate`]).
fn check_fat_names(cx: &mut Cx<'_>, dest: &Spanned<String>) {
    for name in dest.value.split('/').filter(|c| !c.is_empty()) {
        if let Err(e) = crate::fs::vfat::names::validate(name) {
            cx.diags.push(
                dest.diag(format!("\"{}\": the name \"{name}\" {e}", dest.value))
                    .help("rename it for FAT, e.g. replace ':' with '-'"),
            );
        }
    }
}

/// `from:` (one directory or a list, merged in order) and `exclude:`
/// (absolute globs) of a filesystem or archive.
fn decode_sources(cx: &mut Cx<'_>, f: &Fields<'_>) -> Sources {
    let mut out = Sources::default();
    if let Some(n) = f.get("from") {
        let items: Vec<&Node> = match &n.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![n],
        };
        if items.is_empty() {
            cx.err(
                n,
                "`from: []` names no tree",
                "name a directory, or a list of them, or remove `from:` for an empty filesystem",
            );
        }
        for item in items {
            if let Some(p) = cx.input_path(item, PathKind::Dir) {
                out.from.push(p);
            }
        }
    }
    let Some(n) = f.get("exclude") else {
        return out;
    };
    if f.get("from").is_none() {
        cx.err(
            n,
            "`exclude:` without `from:` has nothing to leave out",
            "add `from:` with the tree, or remove `exclude:`",
        );
        return out;
    }
    for item in cx
        .list(n, "write `exclude: [/boot, \"/var/cache/**\"]`")
        .unwrap_or_default()
    {
        let Some(glob) = cx.spanned_text(item) else {
            continue;
        };
        let g = &glob.value;
        let body = g.strip_suffix('/').unwrap_or(g);
        let problem = if !g.starts_with('/') {
            Some((
                format!("\"{g}\" is not an absolute path"),
                format!(
                    "write it from the tree's root, \"/{g}\" (wic's --exclude-path={g} is /{g} here)"
                ),
            ))
        } else if body.is_empty() {
            Some((
                format!("\"{g}\" would leave out the whole tree"),
                "name what to leave out below the root, e.g. /boot, or remove `from:`".to_string(),
            ))
        } else if body
            .split('/')
            .skip(1)
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            Some((
                format!("\"{g}\" has an empty, '.' or '..' component"),
                "write the path from the tree's root without '.', '..' or '//', e.g. /var/cache/"
                    .to_string(),
            ))
        } else {
            None
        };
        match problem {
            Some((message, help)) => cx.diags.push(glob.diag(message).help(help)),
            None => out.exclude.push(glob),
        }
    }
    out
}

fn decode_vfat(cx: &mut Cx<'_>, node: &Node) -> Option<Vfat> {
    let f = cx.fields(node, &VFAT_KEYS, "write `fs: { type: vfat }`")?;
    let label =
        label(cx, &f, VFAT_LABEL_MAX, "FAT").and_then(|s| {
            if let Some(c) = s.value.chars().find(|c| {
                !c.is_ascii() || "\"*+,./:;<=>?[\\]|".contains(*c) || c.is_ascii_control()
            }) {
                cx.diags.push(
                    s.diag(format!(
                        "\"{}\" has '{c}', which FAT labels cannot hold",
                        s.value
                    ))
                    .help("use letters, digits, space, '-' and '_'"),
                );
                return None;
            }
            Some(s)
        });
    let fat = f.get("fat").and_then(|n| {
        let v = cx.uint(n, u64::from(u32::MAX), "a FAT size")?;
        if ![12, 16, 32].contains(&v) {
            cx.err(
                n,
                format!("\"{v}\" is not a FAT size"),
                "use 12, 16 or 32, or leave it out to choose from the size",
            );
            return None;
        }
        u8::try_from(v).ok().map(|v| cx.spanned(n, v))
    });
    let cluster_size = f.get("cluster-size").and_then(|n| {
        let s = cx.size(n)?;
        if !s.0.is_power_of_two() || s.0 < CLUSTER_RANGE.0 || s.0 > CLUSTER_RANGE.1 {
            cx.err(
                n,
                format!("\"{s}\" is not a FAT cluster size"),
                "use a power of two from 512 to 64KiB, e.g. 4KiB",
            );
            return None;
        }
        Some(cx.spanned(n, s))
    });
    let volume_id = f
        .get("volume-id")
        .and_then(|n| cx.u32(n, "a volume id").map(|v| cx.spanned(n, v)));
    let files = decode_files(cx, &f);
    for entry in &files {
        check_fat_names(cx, &entry.dest);
    }
    let sources = decode_sources(cx, &f);
    Some(Vfat {
        label,
        fat,
        cluster_size,
        volume_id,
        files,
        sources,
    })
}

fn decode_ownership(cx: &mut Cx<'_>, f: &Fields<'_>) -> Ownership {
    let owners = f.get("owners").and_then(|n| {
        cx.choice(
            n,
            "an owners mode",
            &[("root", Owners::Root), ("source", Owners::Source)],
        )
        .map(|o| cx.spanned(n, o))
    });
    let mut device_tables = Vec::new();
    if let Some(n) = f.get("device-table") {
        let items: Vec<&Node> = match &n.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![n],
        };
        for item in items {
            if let Some(p) = cx.input_path(item, PathKind::File) {
                device_tables.push(p);
            }
        }
    }
    let mut rules = Vec::new();
    if let Some(n) = f.get("rules") {
        for r in cx
            .list(
                n,
                "write `rules: [{ path: /usr/bin/ping, caps: cap_net_raw+ep }]`",
            )
            .unwrap_or_default()
        {
            let Some(rf) = cx.fields(
                r,
                &RULE_KEYS,
                "write `{ path: /etc/shadow, mode: \"0600\" }`",
            ) else {
                continue;
            };
            let Some(path) = rf
                .require(cx, "path", "add `path:` (a glob such as /usr/bin/*)")
                .and_then(|n| cx.spanned_text(n))
            else {
                continue;
            };
            if !path.value.starts_with('/') {
                cx.diags.push(
                    path.diag(format!("\"{}\" is not an absolute path", path.value))
                        .help("write globs from the filesystem's root, e.g. /usr/bin/*"),
                );
                continue;
            }
            let uid = rf
                .get("uid")
                .and_then(|n| cx.u32(n, "a uid").map(|v| cx.spanned(n, v)));
            let gid = rf
                .get("gid")
                .and_then(|n| cx.u32(n, "a gid").map(|v| cx.spanned(n, v)));
            let mode = rf
                .get("mode")
                .and_then(|n| cx.mode(n).map(|v| cx.spanned(n, v)));
            let caps = rf.get("caps").and_then(|n| {
                let s = cx.spanned_text(n)?;
                if !caps_look_valid(&s.value) {
                    cx.err(
                        n,
                        format!("\"{}\" is not a capability set", s.value),
                        "write it as for setcap, e.g. \"cap_net_raw+ep\" or \"cap_net_admin,cap_net_raw=eip\"",
                    );
                    return None;
                }
                Some(s)
            });
            if uid.is_none() && gid.is_none() && mode.is_none() && caps.is_none() {
                if ["uid", "gid", "mode", "caps"]
                    .iter()
                    .all(|k| rf.get(k).is_none())
                {
                    cx.err(
                        r,
                        "a rule that changes nothing",
                        "add uid, gid, mode or caps",
                    );
                }
                continue;
            }
            rules.push(Rule {
                path,
                uid,
                gid,
                mode,
                caps,
            });
        }
    }
    Ownership {
        owners,
        device_tables,
        rules,
    }
}

/// `cap_a,cap_b+eip` clauses separated by spaces (the `cap_from_text`
/// grammar, loosely); empty text removes the capabilities.
fn caps_look_valid(text: &str) -> bool {
    text.split_whitespace().all(|clause| {
        let Some(op) = clause.find(['+', '-', '=']) else {
            return false;
        };
        let (names, flags) = clause.split_at(op);
        let names_ok = names.is_empty()
            || names.split(',').all(|n| {
                n == "all"
                    || (n.starts_with("cap_")
                        && n.len() > 4
                        && n.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            });
        names_ok && flags.chars().all(|c| "+-=eip".contains(c))
    })
}

fn decode_ext4(cx: &mut Cx<'_>, node: &Node) -> Option<Ext4> {
    let f = cx.fields(node, &EXT4_KEYS, "write `fs: { type: ext4 }`")?;
    let label = label(cx, &f, EXT4_LABEL_MAX, "ext4");
    let uuid = f
        .get("uuid")
        .and_then(|n| cx.uuid(n).map(|u| cx.spanned(n, u)));
    let sources = decode_sources(cx, &f);
    let files = decode_files(cx, &f);
    let ownership = decode_ownership(cx, &f);
    let mut features = Vec::new();
    if let Some(n) = f.get("features") {
        for item in cx
            .list(n, "write `features: [metadata_csum, ^huge_file]`")
            .unwrap_or_default()
        {
            let Some(t) = cx.scalar_text(item, "a feature name") else {
                continue;
            };
            let (name, enabled) = match t.strip_prefix('^') {
                Some(rest) => (rest.to_string(), false),
                None => (t.clone(), true),
            };
            if !EXT4_FEATURES.contains(&name.as_str()) {
                let mut help = String::new();
                if let Some(best) = closest(&name, &EXT4_FEATURES) {
                    help.push_str(&format!("did you mean '{best}'? "));
                }
                help.push_str("see ext4(5) for the feature names; '^name' disables one");
                cx.err(item, format!("\"{t}\" is not an ext4 feature"), help);
                continue;
            }
            features.push(cx.spanned(item, Feature { name, enabled }));
        }
    }
    let block_size = f.get("block-size").and_then(|n| {
        let s = cx.size(n)?;
        if ![1024, 2048, 4096].contains(&s.0) {
            cx.err(
                n,
                format!("\"{s}\" is not an ext4 block size"),
                "use 1024, 2048 or 4096 (the Linux page size bounds it)",
            );
            return None;
        }
        u32::try_from(s.0).ok().map(|v| cx.spanned(n, v))
    });
    // The journal's smallest size is in blocks: it depends on the block size.
    let journal_block = block_size
        .as_ref()
        .map_or(crate::fs::ext4::Ext4Options::default().block_size, |b| {
            b.value
        });
    let journal_min = crate::fs::ext4::MIN_JOURNAL_BLOCKS * u64::from(journal_block);
    let journal = f.get("journal").and_then(|n| {
        match n.as_str().map(str::trim) {
            Some("true") => return Some(cx.spanned(n, Journal::Default)),
            Some("false") => return Some(cx.spanned(n, Journal::None)),
            _ => {}
        }
        match n.as_str().map(|t| t.trim().parse::<ByteSize>()) {
            Some(Ok(s)) if s.0 >= journal_min => Some(cx.spanned(n, Journal::Size(s))),
            Some(Ok(s)) => {
                cx.err(
                    n,
                    format!("\"{s}\" is below the smallest journal, {}", ByteSize(journal_min)),
                    format!(
                        "jbd2 needs at least {} blocks ({} with {}-byte blocks); write {} or more, or true for the default size",
                        crate::fs::ext4::MIN_JOURNAL_BLOCKS,
                        ByteSize(journal_min),
                        journal_block,
                        ByteSize(journal_min)
                    ),
                );
                None
            }
            _ => {
                if !matches!(n.value, Value::Invalid) {
                    let found = n.as_str().unwrap_or(n.kind_name());
                    cx.err(
                        n,
                        format!("\"{found}\" is not true, false or a journal size"),
                        "write true (default size), false (no journal) or a size such as 16MiB",
                    );
                }
                None
            }
        }
    });
    if let Some(j) = &journal {
        check_journal_features(cx, j, &features);
    }
    let journal = f.or_default("journal", journal, Journal::Default);
    let journal_init = f.get("journal-init").and_then(|n| {
        cx.choice(
            n,
            "a journal-init mode",
            &[("zero", JournalInit::Zero), ("lazy", JournalInit::Lazy)],
        )
        .map(|v| cx.spanned(n, v))
    });
    let journal_init = f.or_default("journal-init", journal_init, JournalInit::Zero);
    let inode_ratio = f.get("inode-ratio").and_then(|n| {
        let s = cx.size(n)?;
        if s.0 < INODE_RATIO_RANGE.0 || s.0 > INODE_RATIO_RANGE.1 {
            cx.err(
                n,
                format!("\"{s}\" is out of range for bytes per inode"),
                "use 1KiB to 64MiB, e.g. 16KiB",
            );
            return None;
        }
        Some(cx.spanned(n, s))
    });
    let inodes = f.get("inodes").and_then(|n| {
        let v = cx.uint(n, u64::from(u32::MAX), "an inode count")?;
        let min = u64::from(crate::fs::ext4::MIN_INODES);
        if v < min {
            cx.err(
                n,
                format!("\"{v}\" inodes are fewer than ext4 reserves"),
                format!("ext4 reserves inodes 1 to {min} (lost+found is {min}); use at least {min} plus one per file, or leave it out"),
            );
            return None;
        }
        Some(cx.spanned(n, v))
    });
    if let (Some(_), Some(n)) = (&inodes, f.get("inode-ratio")) {
        cx.err(
            n,
            "inode-ratio and inodes both set",
            "keep one: inodes is an exact count, inode-ratio derives it from the size",
        );
    }
    let reserved = f.get("reserved").and_then(|n| {
        let text = n
            .as_str()
            .map(|t| t.trim().trim_end_matches('%').trim().to_string());
        let v = match text.as_deref().map(str::parse::<u64>) {
            Some(Ok(v)) if v <= RESERVED_MAX => v,
            _ => {
                if !matches!(n.value, Value::Invalid) {
                    let found = n.as_str().unwrap_or(n.kind_name());
                    cx.err(
                        n,
                        format!("\"{found}\" is not a reserved-blocks percentage"),
                        format!("write a whole percent from 0 to {RESERVED_MAX}, e.g. 5"),
                    );
                }
                return None;
            }
        };
        u8::try_from(v).ok().map(|v| cx.spanned(n, v))
    });
    let reserved = f.or_default("reserved", reserved, 0);
    let hash_seed = f
        .get("hash-seed")
        .and_then(|n| cx.uuid(n).map(|u| cx.spanned(n, u)));
    Some(Ext4 {
        label,
        uuid,
        sources,
        files,
        ownership,
        features,
        journal,
        journal_init,
        block_size,
        inode_ratio,
        inodes,
        reserved,
        hash_seed,
    })
}

/// `compression:` of an initramfs or squashfs; default gzip.
fn compression(cx: &mut Cx<'_>, f: &Fields<'_>) -> Spanned<Compression> {
    let compression = f.get("compression").and_then(|n| {
        cx.choice(
            n,
            "a compression",
            &[
                ("none", Compression::None),
                ("gzip", Compression::Gzip),
                ("zstd", Compression::Zstd),
                ("xz", Compression::Xz),
                ("lz4", Compression::Lz4),
            ],
        )
        .map(|c| cx.spanned(n, c))
    });
    f.or_default("compression", compression, Compression::Gzip)
}

/// A `level:` of a compressed read-only filesystem: within `range` (the
/// chosen compression's), refused with `no_level` (message, help) when the
/// compression takes none; `what` names the compression in the range error.
fn compression_level(
    cx: &mut Cx<'_>,
    n: &Node,
    range: Option<(u32, u32)>,
    no_level: (&str, &str),
    what: &str,
) -> Option<Spanned<u32>> {
    let Some((lo, hi)) = range else {
        cx.err(n, no_level.0, no_level.1);
        return None;
    };
    let v = cx.uint(n, u64::from(u32::MAX), "a compression level")?;
    if !(u64::from(lo)..=u64::from(hi)).contains(&v) {
        cx.err(
            n,
            format!("\"{v}\" is out of range for {what}"),
            format!("use a level from {lo} to {hi}"),
        );
        return None;
    }
    u32::try_from(v).ok().map(|v| cx.spanned(n, v))
}

fn decode_squashfs(cx: &mut Cx<'_>, node: &Node) -> Option<Squashfs> {
    let f = cx.fields(node, &SQUASHFS_KEYS, "write `fs: { type: squashfs }`")?;
    let sources = decode_sources(cx, &f);
    let files = decode_files(cx, &f);
    let ownership = decode_ownership(cx, &f);
    let compression = compression(cx, &f);
    let level = f.get("level").and_then(|n| {
        compression_level(
            cx,
            n,
            compression.value.squashfs_codec().level_range(),
            (
                "lz4 and none take no level",
                "remove `level:`, or choose gzip, xz or zstd",
            ),
            "this compression",
        )
    });
    let block_size = f.get("block-size").and_then(|n| {
        let s = cx.size(n)?;
        if !s.0.is_power_of_two() || !(4 * KIB..=1024 * KIB).contains(&s.0) {
            cx.err(
                n,
                format!("\"{s}\" is not a squashfs block size"),
                "use a power of two from 4KiB to 1MiB, e.g. 128KiB (the default)",
            );
            return None;
        }
        u32::try_from(s.0).ok().map(|v| cx.spanned(n, v))
    });
    let verity = f.flag(cx, "verity", false);
    Some(Squashfs {
        sources,
        files,
        ownership,
        compression,
        level,
        block_size,
        verity,
    })
}

fn decode_swap(cx: &mut Cx<'_>, node: &Node) -> Option<Swap> {
    use crate::fs::swap::{LABEL_MAX, PAGE_SIZES};
    let f = cx.fields(node, &SWAP_KEYS, "write `fs: { type: swap }`")?;
    let label = label(cx, &f, LABEL_MAX, "swap");
    let uuid = f
        .get("uuid")
        .and_then(|n| cx.uuid(n).map(|u| cx.spanned(n, u)));
    let page_size = f.get("page-size").and_then(|n| {
        let s = cx.size(n)?;
        match u32::try_from(s.0).ok().filter(|p| PAGE_SIZES.contains(p)) {
            Some(p) => Some(cx.spanned(n, p)),
            None => {
                cx.err(
                    n,
                    format!("\"{s}\" is not a kernel page size"),
                    "use the target kernel's page size: 4KiB (the default), 16KiB or 64KiB",
                );
                None
            }
        }
    });
    Some(Swap {
        label,
        uuid,
        page_size,
    })
}

fn decode_erofs(cx: &mut Cx<'_>, node: &Node) -> Option<Erofs> {
    let f = cx.fields(node, &EROFS_KEYS, "write `fs: { type: erofs }`")?;
    let sources = decode_sources(cx, &f);
    let files = decode_files(cx, &f);
    let ownership = decode_ownership(cx, &f);
    use crate::fs::erofs::Compression as C;
    let compression = f
        .get("compression")
        .and_then(|n| {
            cx.choice(
                n,
                "an EROFS compression",
                &[("none", C::None), ("lz4", C::Lz4), ("lz4hc", C::Lz4hc)],
            )
        })
        .unwrap_or(C::None);
    let level = f.get("level").and_then(|n| {
        compression_level(
            cx,
            n,
            compression.level_range(),
            (
                "only lz4hc takes a level",
                "remove `level:`, or write `compression: lz4hc`",
            ),
            "lz4hc",
        )
    });
    let pcluster_size = f.get("pcluster-size").and_then(|n| {
        let s = cx.size(n)?;
        if s.0 == 0 || s.0 % (4 * KIB) != 0 || s.0 > 1024 * KIB {
            cx.err(
                n,
                format!("\"{s}\" is not an EROFS physical cluster size"),
                "use a multiple of 4KiB up to 1MiB, e.g. 4KiB (the default) or 64KiB",
            );
            return None;
        }
        u32::try_from(s.0).ok().map(|v| cx.spanned(n, v))
    });
    Some(Erofs {
        sources,
        files,
        ownership,
        compression,
        level,
        pcluster_size,
    })
}

/// A `journal:` written explicitly that `features:` contradicts (mke2fs
/// refuses `-J size=` with `-O ^has_journal`; here the feature list and the
/// journal key would silently disagree).
fn check_journal_features(
    cx: &mut Cx<'_>,
    journal: &Spanned<Journal>,
    features: &[Spanned<Feature>],
) {
    let Some(feature) = features
        .iter()
        .rev()
        .find(|f| f.value.name == "has_journal")
    else {
        return;
    };
    let (message, help) = match (journal.value, feature.value.enabled) {
        (Journal::None, true) => (
            "journal: false contradicts the feature has_journal",
            "keep one: remove 'has_journal' from features, or remove 'journal: false'",
        ),
        (Journal::Default | Journal::Size(_), false) => (
            "a journal is asked for, but features turns has_journal off",
            "keep one: remove '^has_journal' from features (the journal then has this size), or write 'journal: false'",
        ),
        _ => return,
    };
    cx.diags.push(journal.diag(message).help(format!(
        "{help} ({} at line {})",
        feature.key, feature.span.line
    )));
}

fn decode_initramfs(cx: &mut Cx<'_>, node: &Node) -> Option<Initramfs> {
    let f = cx.fields(
        node,
        &INITRAMFS_KEYS,
        "write `initramfs: { busybox: ..., init: ... }`",
    )?;
    let sources = decode_sources(cx, &f);
    let files = decode_files(cx, &f);
    let mut dirs = Vec::new();
    if let Some(n) = f.get("dirs") {
        for item in cx
            .list(n, "write `dirs: [/proc, /sys, /dev]`")
            .unwrap_or_default()
        {
            if let Some(s) = cx.spanned_text(item) {
                if check_dest(cx, &s) {
                    dirs.push(s);
                }
            }
        }
    }
    let mut symlinks = Vec::new();
    if let Some(n) = f.get("symlinks") {
        match &n.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    let link = Spanned::new(k.text.clone(), k.span.clone(), v.path.clone());
                    let ok = check_dest(cx, &link);
                    if let (true, Some(target)) = (ok, cx.spanned_text(v)) {
                        if target.value.is_empty() {
                            cx.err(
                                v,
                                "empty symlink target",
                                "write the path the link points to",
                            );
                            continue;
                        }
                        symlinks.push(Symlink { link, target });
                    }
                }
            }
            _ => cx.expected(
                n,
                "a map of link: target",
                "write `symlinks: { /sbin/init: /bin/busybox }`",
            ),
        }
    }
    let mut nodes = Vec::new();
    if let Some(n) = f.get("nodes") {
        for item in cx
            .list(
                n,
                "write `nodes: [{ path: /dev/console, type: c, major: 5, minor: 1 }]`",
            )
            .unwrap_or_default()
        {
            if let Some(d) = decode_node(cx, item) {
                nodes.push(d);
            }
        }
    }
    let busybox = f
        .get("busybox")
        .and_then(|n| cx.input_path(n, PathKind::File));
    let modules = f.get("modules").and_then(|n| {
        let mf = cx.fields(
            n,
            &["dir", "load"],
            "write `modules: { dir: ..., load: [virtio_blk] }`",
        )?;
        let dir = mf
            .require(
                cx,
                "dir",
                "add `dir:` (the host lib/modules/<version> directory)",
            )
            .and_then(|d| cx.input_path(d, PathKind::Dir));
        let mut load = Vec::new();
        if let Some(l) = mf.get("load") {
            for item in cx
                .list(l, "write `load: [virtio_blk, ext4]`")
                .unwrap_or_default()
            {
                if let Some(s) = cx.spanned_text(item) {
                    load.push(s);
                }
            }
        }
        let dir = dir?;
        // The writer reads the kernel's module index; without it no module
        // can be found (the directory is not a lib/modules/<version>).
        if dir.path.is_dir() && !dir.path.join("modules.dep").is_file() {
            cx.diags.push(
                Diagnostic::new(
                    dir.span.clone(),
                    dir.key.clone(),
                    format!("\"{}\" has no modules.dep", dir.text),
                )
                .help("name the kernel's lib/modules/<version> directory (run depmod there if modules.dep is missing)"),
            );
        }
        Some(Modules { dir, load })
    });
    let init = f.get("init").and_then(|n| match &n.value {
        Value::Map(_) => {
            let inf = cx.fields(
                n,
                &["script"],
                "write `init: { script: | ... }` or `init: path`",
            )?;
            inf.require(cx, "script", "add `script:` with the text of /init")
                .and_then(|s| cx.spanned_text(s))
                .map(Init::Script)
        }
        _ => cx.input_path(n, PathKind::File).map(Init::File),
    });
    let compression = compression(cx, &f);
    let ownership = decode_ownership(cx, &f);
    Some(Initramfs {
        sources,
        files,
        dirs,
        symlinks,
        nodes,
        busybox,
        modules,
        init,
        compression,
        ownership,
    })
}

fn decode_node(cx: &mut Cx<'_>, item: &Node) -> Option<DeviceNode> {
    let f = cx.fields(
        item,
        &NODE_KEYS,
        "write `{ path: /dev/console, type: c, major: 5, minor: 1 }`",
    )?;
    let path = f
        .require(cx, "path", "add `path:` (e.g. /dev/console)")
        .and_then(|n| cx.spanned_text(n))
        .filter(|p| check_dest(cx, p));
    let kind = f
        .require(
            cx,
            "type",
            "add `type:` c (character), b (block) or p (fifo)",
        )
        .and_then(|n| {
            cx.choice(
                n,
                "a device node type",
                &[
                    ("c", NodeKind::Char),
                    ("b", NodeKind::Block),
                    ("p", NodeKind::Fifo),
                ],
            )
            .map(|k| cx.spanned(n, k))
        });
    // Linux dev_t: 12-bit major, 20-bit minor.
    let major = f.get("major").map(|n| cx.uint(n, 0xfff, "a major number"));
    let minor = f
        .get("minor")
        .map(|n| cx.uint(n, 0xf_ffff, "a minor number"));
    let mode = f.get("mode").map(|n| cx.mode(n));
    let uid = f.get("uid").map(|n| cx.u32(n, "a uid"));
    let gid = f.get("gid").map(|n| cx.u32(n, "a gid"));
    let kind = kind?;
    if kind.value != NodeKind::Fifo {
        for (key, v) in [("major", &major), ("minor", &minor)] {
            if v.is_none() {
                cx.err(
                    item,
                    format!("missing key '{key}'"),
                    format!("add `{key}:`; device nodes need a major and a minor number"),
                );
            }
        }
    }
    Some(DeviceNode {
        path: path?,
        kind,
        major: u32::try_from(major.unwrap_or(Some(0))?).ok()?,
        minor: u32::try_from(minor.unwrap_or(Some(0))?).ok()?,
        mode: mode.unwrap_or(Some(0o600))?,
        uid: uid.unwrap_or(Some(0))?,
        gid: gid.unwrap_or(Some(0))?,
    })
}
