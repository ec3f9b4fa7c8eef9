//! `image-composer import`: translates a genimage configuration or a wic
//! kickstart (`.wks`) file into an image-composer description.
//!
//! Scope: the disk layout (table, partitions, sizes, offsets, alignment,
//! types, identifiers, flags) and the contents both tools build from files
//! (vfat with listed files, ext4/squashfs/erofs from the root tree, swap,
//! raw images). What a source cannot say in image-composer's schema
//! (genimage's `exec-pre`, wic's boot loader installing plugins, options
//! without an equivalent) is not dropped silently: each becomes a [`Note`]
//! with the input's line, printed on stderr and written as a comment at the
//! top of the output, so the description can be finished by hand.
//!
//! The translation works on the input's text only: it never looks at the
//! files the input names (they are where genimage's `--inputpath`, or
//! Yocto's deploy directory, has them when the description is built), so
//! relative input paths are written as they are and found through
//! `build --input-dir`.
//!
//! Each reader ([`genimage`], [`wks`]) parses into its own syntax tree with
//! spans and comments, then fills one [`Doc`], which renders the YAML.
//! Rejected: building the config model (`config::model`) and serializing
//! it — the model holds resolved values (expanded variables, derived
//! defaults) and no comments, and a YAML library writer would lose the
//! comments and the key order docs/config.md uses.

pub mod genimage;
pub mod wks;

use crate::diag::{Diagnostic, Diagnostics, Span};
use anyhow::Context;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The input formats `import` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Genimage,
    Wks,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "genimage" => Ok(Format::Genimage),
            "wks" | "wic" => Ok(Format::Wks),
            _ => Err(format!("'{text}' is not a format; write genimage or wks")),
        }
    }
}

/// What `import` was asked to do.
#[derive(Clone, Debug)]
pub struct Request {
    pub input: PathBuf,
    /// `None`: print the description on stdout.
    pub output: Option<PathBuf>,
    /// `None`: detect from the extension, then the content.
    pub format: Option<Format>,
}

/// Something of the input the description does not carry over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub line: u32,
    pub text: String,
}

/// A YAML value of the description being written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// Written as it is (numbers, sizes, booleans, plain words).
    Plain(String),
    /// Text, quoted when YAML would read it otherwise.
    Text(String),
    /// A flow list `[a, b]` of plain items.
    List(Vec<String>),
    /// A nested map.
    Map(Vec<Entry>),
}

/// One `key: value` of a map, with comments carried over from the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Value,
    /// Comment lines written above the key.
    pub above: Vec<String>,
    /// A comment written after the value on the same line.
    pub after: Option<String>,
}

impl Entry {
    pub fn new(key: impl Into<String>, value: Value) -> Self {
        Entry {
            key: key.into(),
            value,
            above: Vec::new(),
            after: None,
        }
    }

    pub fn plain(key: impl Into<String>, value: impl Into<String>) -> Self {
        Entry::new(key, Value::Plain(value.into()))
    }

    pub fn text(key: impl Into<String>, value: impl Into<String>) -> Self {
        Entry::new(key, Value::Text(value.into()))
    }
}

/// The description being written: `image:`, `partitions:` and the notes.
#[derive(Clone, Debug, Default)]
pub struct Doc {
    /// Comment lines of the input's head, written at the top.
    pub head: Vec<String>,
    pub image: Vec<Entry>,
    /// Each partition's map (its first entry is `name`).
    pub partitions: Vec<Vec<Entry>>,
    /// Comment lines above each partition (same index as `partitions`).
    pub partition_comments: Vec<Vec<String>>,
    pub notes: Vec<Note>,
}

impl Doc {
    pub fn note(&mut self, line: u32, text: impl Into<String>) {
        self.notes.push(Note {
            line,
            text: text.into(),
        });
    }

    /// The YAML text, `source` naming the input in the notes.
    pub fn render(&self, source: &str, format: Format) -> String {
        let mut out = String::new();
        let tool = match format {
            Format::Genimage => "genimage configuration",
            Format::Wks => "wic kickstart file",
        };
        let _ = writeln!(
            out,
            "# Imported from the {tool} {source} by image-composer import."
        );
        if !self.notes.is_empty() {
            let _ = writeln!(
                out,
                "#\n# Not translated (finish these by hand, see docs/import.md):"
            );
            for n in self.sorted_notes() {
                for (i, line) in wrap(&n.text, 68).iter().enumerate() {
                    if i == 0 {
                        let _ = writeln!(out, "# - {source}:{}: {line}", n.line);
                    } else {
                        let _ = writeln!(out, "#     {line}");
                    }
                }
            }
        }
        if !self.head.is_empty() {
            out.push_str("#\n");
            for c in &self.head {
                write_comment(&mut out, 0, c);
            }
        }
        out.push_str("image:\n");
        write_map(&mut out, 1, &self.image);
        out.push_str("partitions:\n");
        for (i, part) in self.partitions.iter().enumerate() {
            for c in self.partition_comments.get(i).into_iter().flatten() {
                write_comment(&mut out, 1, c);
            }
            for (j, e) in part.iter().enumerate() {
                write_entry(&mut out, 2, e, if j == 0 { "- " } else { "" });
            }
        }
        out
    }

    fn sorted_notes(&self) -> Vec<&Note> {
        let mut notes: Vec<&Note> = self.notes.iter().collect();
        notes.sort_by_key(|n| n.line);
        notes
    }
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn write_comment(out: &mut String, level: usize, text: &str) {
    indent(out, level);
    if text.is_empty() {
        out.push_str("#\n");
    } else {
        let _ = writeln!(out, "# {text}");
    }
}

fn write_map(out: &mut String, level: usize, entries: &[Entry]) {
    for e in entries {
        write_entry(out, level, e, "");
    }
}

/// `key: value`, at `level` (a list item's first key is written at the
/// level before, behind `- `).
fn write_entry(out: &mut String, level: usize, e: &Entry, item: &str) {
    let level = if item.is_empty() { level } else { level - 1 };
    for c in &e.above {
        write_comment(out, level + usize::from(!item.is_empty()), c);
    }
    indent(out, level);
    out.push_str(item);
    out.push_str(&quote_key(&e.key));
    out.push(':');
    let after = |out: &mut String| {
        if let Some(c) = &e.after {
            let _ = write!(out, "  # {c}");
        }
        out.push('\n');
    };
    let inner = level + usize::from(!item.is_empty()) + 1;
    match &e.value {
        Value::Plain(v) => {
            let _ = write!(out, " {v}");
            after(out);
        }
        Value::Text(v) => {
            let _ = write!(out, " {}", quote(v));
            after(out);
        }
        Value::List(items) => {
            let items: Vec<String> = items.iter().map(|i| quote(i)).collect();
            let _ = write!(out, " [{}]", items.join(", "));
            after(out);
        }
        Value::Map(entries) => {
            after(out);
            write_map(out, inner, entries);
        }
    }
}

/// A string as a YAML scalar: plain when YAML reads it back as the same
/// text, else double-quoted.
pub fn quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-+".contains(c))
        && !text.starts_with(['-', '.'])
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
        )
        && !text.chars().next().is_some_and(|c| c.is_ascii_digit());
    if plain {
        return text.to_string();
    }
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn quote_key(key: &str) -> String {
    let destination = key.starts_with('/') && !key.contains(['$', ':', '#', ' ', '"', '\'']);
    let word = key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if destination || word {
        key.to_string()
    } else {
        quote(key)
    }
}

/// Words of `text` in lines of at most `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let Some(last) = lines.last_mut() else {
            break;
        };
        if !last.is_empty() && last.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

/// A parse error at `line`:`column` of `file`.
pub fn parse_error(file: &Path, line: u32, column: u32, message: String, help: &str) -> Diagnostic {
    Diagnostic::new(
        Span::new(Arc::new(file.to_path_buf()), line, column),
        "",
        message,
    )
    .help(help)
}

/// Which reader a file is for: the extension (`.wks`, `.wks.in`, `.cfg`),
/// else the content (a line starting with `part ` or `bootloader ` is wic;
/// an `image NAME {` section genimage).
pub fn detect(path: &Path, text: &str) -> Option<Format> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".wks") || name.ends_with(".wks.in") || name.ends_with(".wks.inc") {
        return Some(Format::Wks);
    }
    for line in text.lines().map(str::trim_start) {
        let word = line.split_whitespace().next().unwrap_or("");
        match word {
            "part" | "partition" | "bootloader" | "include" if !line.contains('{') => {
                return Some(Format::Wks)
            }
            "image" | "config" | "flash" => return Some(Format::Genimage),
            _ => {}
        }
    }
    if name.contains("genimage") || name.ends_with(".cfg") || name.ends_with(".cfg.in") {
        return Some(Format::Genimage);
    }
    None
}

/// Why `import` did not succeed: bad input (exit 2) or a failed write.
pub type Error = crate::compose::Error;

/// Reads `request.input`, writes the description (to `request.output` via
/// `.partial` + rename, or stdout) and the notes to stderr.
pub fn run(request: &Request) -> Result<(), Error> {
    let input = &request.input;
    let bytes = std::fs::read(input)
        .with_context(|| format!("reading '{}'", input.display()))
        .map_err(Error::Build)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let before = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        Error::Input(Diagnostics(vec![parse_error(
            input,
            u32::try_from(line).unwrap_or(u32::MAX),
            u32::try_from(column).unwrap_or(u32::MAX),
            "is not UTF-8 text".into(),
            "convert the file to UTF-8",
        )]))
    })?;
    let format = match request.format.or_else(|| detect(input, &text)) {
        Some(f) => f,
        None => {
            return Err(Error::Input(Diagnostics::about_file(
                input,
                "",
                "is neither a genimage configuration nor a wic .wks file",
                "name the format: --format genimage or --format wks",
            )))
        }
    };
    let doc = match format {
        Format::Genimage => genimage::translate(input, &text)?,
        Format::Wks => wks::translate(input, &text)?,
    };
    let source = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| input.display().to_string());
    for n in doc.sorted_notes() {
        eprintln!(
            "warning: {}:{}: not translated: {}",
            input.display(),
            n.line,
            n.text
        );
    }
    let yaml = doc.render(&source, format);
    match &request.output {
        None => {
            print!("{yaml}");
            Ok(())
        }
        Some(path) => write_atomically(path, yaml.as_bytes()).map_err(Error::Build),
    }
}

/// Writes `bytes` to `path` through `path.partial` and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, bytes).with_context(|| format!("writing '{}'", partial.display()))?;
    std::fs::rename(&partial, path)
        .with_context(|| format!("renaming '{}' to '{}'", partial.display(), path.display()))
}

/// Bytes as a size the description reads (`32MiB`, `16352KiB`, `512`).
pub fn size_text(bytes: u64) -> String {
    crate::units::ByteSize(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_what_yaml_would_read_otherwise() {
        assert_eq!(quote("boot.vfat"), "boot.vfat");
        assert_eq!(quote("rpi-firmware/config.txt"), "rpi-firmware/config.txt");
        assert_eq!(quote("yes"), "\"yes\"");
        assert_eq!(quote("0x83"), "\"0x83\"");
        assert_eq!(quote("${TARGET_DIR}/boot"), "\"${TARGET_DIR}/boot\"");
        assert_eq!(quote("a: b"), "\"a: b\"");
        assert_eq!(quote("say \"hi\""), "\"say \\\"hi\\\"\"");
    }

    #[test]
    fn detects_the_format_by_name_then_content() {
        let p = Path::new;
        assert_eq!(detect(p("x.wks"), ""), Some(Format::Wks));
        assert_eq!(detect(p("x.wks.in"), ""), Some(Format::Wks));
        assert_eq!(
            detect(p("board.txt"), "# c\npart / --source rootfs\n"),
            Some(Format::Wks)
        );
        assert_eq!(
            detect(p("x.conf"), "image sdcard.img {\n}\n"),
            Some(Format::Genimage)
        );
        assert_eq!(detect(p("genimage.cfg"), ""), Some(Format::Genimage));
        assert_eq!(detect(p("notes.txt"), "hello\n"), None);
    }

    #[test]
    fn renders_notes_comments_and_nesting() {
        let mut doc = Doc::default();
        doc.head.push("A board.".into());
        doc.image.push(Entry::plain("name", "sdcard"));
        let mut fs = Entry::new(
            "fs",
            Value::Map(vec![
                Entry::plain("type", "vfat"),
                Entry::new("files", Value::Map(vec![Entry::text("/Image", "Image")])),
            ]),
        );
        fs.above.push("the boot files".into());
        let mut size = Entry::plain("size", "16352KiB");
        size.after = Some("16MB - 32KB".into());
        doc.partitions
            .push(vec![Entry::plain("name", "boot"), size, fs]);
        doc.partition_comments.push(vec!["boot partition".into()]);
        doc.note(7, "exec-pre = \"true\": genimage runs it before the image");
        assert_eq!(
            doc.render("genimage.cfg", Format::Genimage),
            "# Imported from the genimage configuration genimage.cfg by image-composer import.\n\
             #\n\
             # Not translated (finish these by hand, see docs/import.md):\n\
             # - genimage.cfg:7: exec-pre = \"true\": genimage runs it before the image\n\
             #\n\
             # A board.\n\
             image:\n  name: sdcard\n\
             partitions:\n  # boot partition\n  - name: boot\n    size: 16352KiB  # 16MB - 32KB\n\
             \x20   # the boot files\n    fs:\n      type: vfat\n      files:\n        /Image: Image\n"
        );
    }
}
