//! Reads a wic kickstart file (`.wks`) and translates it into a [`Doc`].
//!
//! Syntax as wic's `ksparser.py` reads it: one command per line (`part`
//! or `partition`, `bootloader`, `include`), split like a POSIX shell
//! (`shlex`), options `--name value` or `--name=value`; `#` lines are
//! comments, carried over above the partition that follows them.
//! `include FILE` is read from the including file's directory.
//!
//! Semantics follow wic (openembedded-core `scripts/lib/wic`, the tree
//! before wic moved to its own repository): `--size`/`--fixed-size` in MiB
//! unless suffixed (`k`, `M`, `G`), `--offset` in KiB unless suffixed (`s`
//! sectors), `--align` in KiB; a partition starts right after the previous
//! one unless aligned (so the image's `align` is 512); sizes of content
//! partitions are `(content + max(extra, size − content)) × factor`
//! (docs/config.md, "Sizes translated from wic"); the boot loader plugins
//! size their vfat as content + max(16 MiB, size − content) without the
//! factor. Types come from the filesystem as parted sets them (`fat32` →
//! Microsoft basic data / 0x0c, `linux-swap` → swap / 0x82, anything else
//! Linux data / 0x83), unless `--part-type`/`--system-id` say otherwise;
//! GPT names are `--part-name`, else `--label`.
//!
//! Rejected: running the source plugins' logic (installing syslinux,
//! GRUB or systemd-boot, writing boot loader configuration, `--fsoptions`
//! into the root tree's fstab). Those are notes; the partitions they fill
//! are translated as vfat filesystems made from a directory the user
//! prepares.

use super::{parse_error, size_text, Doc, Entry, Value};
use crate::diag::{Diagnostic, Diagnostics};
use std::path::Path;

/// wic's default `--extra-space` in KiB (`DEFAULT_EXTRA_FILESYSTEM_SPACE`).
const DEFAULT_EXTRA_KIB: u64 = 10 * 1024;
/// wic's default `--overhead-factor` in percent (1.3).
const DEFAULT_FACTOR_PERCENT: u64 = 130;
/// The largest size read, in KiB (64 TiB): bytes × percent stays in u64.
const MAX_KIB: u64 = 1 << 36;
/// What wic's boot loader plugins add to their content, KiB
/// (`BOOTDD_EXTRA_SPACE`).
const BOOTDD_EXTRA_KIB: u64 = 16 * 1024;

/// One word of a command line and the column it starts at.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Word {
    text: String,
    column: u32,
}

/// Splits a line as Python's `shlex.split` does (POSIX mode, `#` not a
/// comment inside a line).
fn split(line: &str) -> Result<Vec<Word>, (u32, String)> {
    let mut words = Vec::new();
    let mut current: Option<Word> = None;
    let mut quote: Option<(char, u32)> = None;
    let mut chars = line.chars().enumerate().peekable();
    while let Some((i, c)) = chars.next() {
        let column = u32::try_from(i + 1).unwrap_or(u32::MAX);
        match quote {
            Some((q, _)) if c == q => quote = None,
            Some(('"', _)) if c == '\\' => {
                if let Some(&(_, n)) = chars.peek() {
                    if matches!(n, '"' | '\\' | '$' | '`') {
                        chars.next();
                        current
                            .get_or_insert(Word {
                                text: String::new(),
                                column,
                            })
                            .text
                            .push(n);
                        continue;
                    }
                }
                current
                    .get_or_insert(Word {
                        text: String::new(),
                        column,
                    })
                    .text
                    .push(c);
            }
            Some(_) => current
                .get_or_insert(Word {
                    text: String::new(),
                    column,
                })
                .text
                .push(c),
            None if c.is_whitespace() => {
                if let Some(w) = current.take() {
                    words.push(w);
                }
            }
            None if c == '"' || c == '\'' => {
                quote = Some((c, column));
                current.get_or_insert(Word {
                    text: String::new(),
                    column,
                });
            }
            None if c == '\\' => {
                let w = current.get_or_insert(Word {
                    text: String::new(),
                    column,
                });
                if let Some((_, n)) = chars.next() {
                    w.text.push(n);
                }
            }
            None => current
                .get_or_insert(Word {
                    text: String::new(),
                    column,
                })
                .text
                .push(c),
        }
    }
    if let Some((q, column)) = quote {
        return Err((column, format!("the quote {q} is not closed")));
    }
    if let Some(w) = current {
        words.push(w);
    }
    Ok(words)
}

/// A wic size (`sizetype`): a number with the default unit, or with `k`/`K`,
/// `M`, `G` (and `s`/`S` sectors where bytes are meant); in KiB, or bytes
/// when `bytes`.
fn size(text: &str, default: char, bytes: bool) -> Option<u64> {
    let (number, suffix) = match text.parse::<u64>() {
        Ok(n) => (n, default),
        Err(_) => {
            let mut chars = text.chars();
            let suffix = chars.next_back()?;
            (chars.as_str().parse().ok()?, suffix)
        }
    };
    let unit: u64 = if bytes { 1024 } else { 1 };
    match suffix {
        's' | 'S' if bytes => number.checked_mul(512),
        'k' | 'K' => number.checked_mul(unit),
        'M' => number.checked_mul(unit * 1024),
        'G' => number.checked_mul(unit * 1024 * 1024),
        _ => None,
    }
}

/// A command's options: name, value (`None` for a flag), column.
type Opts = Vec<(String, Option<Word>, u32)>;

/// The options of one `part` line.
#[derive(Clone, Debug, Default)]
struct Part {
    line: u32,
    mountpoint: Option<String>,
    opts: Opts,
    comments: Vec<String>,
    /// Set when the line came from an included file: `FILE:LINE`.
    origin: Option<String>,
}

impl Part {
    fn get(&self, name: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(n, _, _)| n == name)
            .and_then(|(_, v, _)| v.as_ref().map(|w| w.text.as_str()))
    }

    fn flag(&self, name: &str) -> bool {
        self.opts.iter().any(|(n, _, _)| n == name)
    }
}

/// Options that take a value, and flags, as `ksparser.py` declares them
/// (aliases mapped to one name).
const PART_VALUES: &[&str] = &[
    "align",
    "offset",
    "exclude-path",
    "include-path",
    "change-directory",
    "extra-space",
    "extra-partition-space",
    "fsoptions",
    "fspassno",
    "fstype",
    "mkfs-extraopts",
    "label",
    "ondisk",
    "overhead-factor",
    "part-name",
    "part-type",
    "rootfs-dir",
    "type",
    "size",
    "fixed-size",
    "source",
    "sourceparams",
    "system-id",
    "uuid",
    "fsuuid",
];
const PART_FLAGS: &[&str] = &[
    "active",
    "use-label",
    "no-table",
    "hidden",
    "use-uuid",
    "no-fstab-update",
    "mbr",
];
const BOOTLOADER_VALUES: &[&str] = &[
    "append",
    "configfile",
    "ptable",
    "diskid",
    "timeout",
    "source",
];

fn canonical(name: &str) -> &str {
    match name {
        "extra-filesystem-space" => "extra-space",
        "ondrive" => "ondisk",
        other => other,
    }
}

/// Reads one command's options; `Err` for an unknown option or a missing
/// value.
fn options(
    file: &Path,
    line: u32,
    words: &[Word],
    values: &[&str],
    flags: &[&str],
) -> Result<(Vec<Word>, Opts), Diagnostic> {
    let mut positional = Vec::new();
    let mut opts = Vec::new();
    let mut i = 0;
    while let Some(w) = words.get(i) {
        i += 1;
        let Some(opt) = w.text.strip_prefix("--") else {
            positional.push(w.clone());
            continue;
        };
        let (name, inline) = match opt.split_once('=') {
            Some((n, v)) => (canonical(n), Some(v.to_string())),
            None => (canonical(opt), None),
        };
        if flags.contains(&name) {
            opts.push((name.to_string(), None, w.column));
        } else if values.contains(&name) {
            let value = match inline {
                Some(v) => Word {
                    text: v,
                    column: w.column,
                },
                None => {
                    let Some(v) = words.get(i) else {
                        return Err(parse_error(
                            file,
                            line,
                            w.column,
                            format!("--{name} expects a value"),
                            &format!("write --{name} VALUE"),
                        ));
                    };
                    i += 1;
                    v.clone()
                }
            };
            // `--exclude-path` and `--include-path` take several words.
            if name == "exclude-path" || name == "include-path" {
                let mut all = value.text.clone();
                while let Some(more) = words.get(i).filter(|m| !m.text.starts_with("--")) {
                    all.push(' ');
                    all.push_str(&more.text);
                    i += 1;
                }
                opts.push((
                    name.to_string(),
                    Some(Word {
                        text: all,
                        column: value.column,
                    }),
                    w.column,
                ));
            } else {
                opts.push((name.to_string(), Some(value), w.column));
            }
        } else {
            let mut known: Vec<&str> = values.iter().chain(flags).copied().collect();
            known.sort_unstable();
            return Err(parse_error(
                file,
                line,
                w.column,
                format!("--{name} is not an option of this command"),
                &format!("wic knows --{}", known.join(", --")),
            ));
        }
    }
    Ok((positional, opts))
}

#[derive(Default)]
struct Input {
    parts: Vec<Part>,
    bootloader: Option<(u32, Opts)>,
    head: Vec<String>,
    notes: Vec<(u32, String)>,
}

/// Reads the commands of `text` (and of the files it includes).
fn read(
    file: &Path,
    text: &str,
    origin: Option<(&str, u32)>,
    input: &mut Input,
    problems: &mut Vec<Diagnostic>,
    depth: u32,
) {
    let mut comments: Vec<String> = Vec::new();
    let mut seen_command = !input.parts.is_empty() || input.bootloader.is_some();
    for (n, raw) in text.lines().enumerate() {
        let line = u32::try_from(n + 1).unwrap_or(u32::MAX);
        let reported = origin.map_or(line, |(_, l)| l);
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            if !seen_command && !comments.is_empty() {
                input.head.append(&mut comments);
                input.head.push(String::new());
            }
            continue;
        }
        if let Some(c) = trimmed.strip_prefix('#') {
            comments.push(c.strip_prefix(' ').unwrap_or(c).trim_end().to_string());
            continue;
        }
        let indent = u32::try_from(raw.len() - raw.trim_start().len()).unwrap_or(0);
        let words = match split(trimmed) {
            Ok(w) => w,
            Err((column, message)) => {
                problems.push(parse_error(
                    file,
                    line,
                    column + indent,
                    message,
                    "close the quote",
                ));
                continue;
            }
        };
        let words: Vec<Word> = words
            .into_iter()
            .map(|w| Word {
                text: w.text,
                column: w.column + indent,
            })
            .collect();
        let Some((command, rest)) = words.split_first() else {
            continue;
        };
        let where_ = origin.map(|(f, _)| format!("{f}:{line}"));
        match command.text.as_str() {
            "part" | "partition" => {
                seen_command = true;
                match options(file, line, rest, PART_VALUES, PART_FLAGS) {
                    Ok((positional, opts)) => {
                        if positional.len() > 1 {
                            problems.push(parse_error(
                                file,
                                line,
                                positional[1].column,
                                format!(
                                    "'{}' is not an option (the mount point is '{}')",
                                    positional[1].text, positional[0].text
                                ),
                                "write options as --name value",
                            ));
                        }
                        input.parts.push(Part {
                            line: reported,
                            mountpoint: positional.first().map(|w| w.text.clone()),
                            opts,
                            comments: std::mem::take(&mut comments),
                            origin: where_,
                        });
                    }
                    Err(d) => problems.push(d),
                }
            }
            "bootloader" => {
                seen_command = true;
                match options(file, line, rest, BOOTLOADER_VALUES, &[]) {
                    Ok((_, opts)) => {
                        if input.bootloader.is_some() {
                            problems.push(parse_error(
                                file,
                                line,
                                command.column,
                                "a second bootloader line".into(),
                                "wic takes one; merge them",
                            ));
                        }
                        input.bootloader = Some((reported, opts));
                        comments.clear();
                    }
                    Err(d) => problems.push(d),
                }
            }
            "include" => {
                let Some(target) = rest.first() else {
                    problems.push(parse_error(
                        file,
                        line,
                        command.column,
                        "include needs a file".into(),
                        "write include FILE.wks.inc",
                    ));
                    continue;
                };
                let path = file.parent().unwrap_or(Path::new(".")).join(&target.text);
                match std::fs::read_to_string(&path) {
                    Ok(inner) if depth < 8 => {
                        if !seen_command {
                            input.head.append(&mut comments);
                        }
                        let name = target.text.clone();
                        read(&path, &inner, Some((&name, reported)), input, problems, depth + 1);
                    }
                    Ok(_) => problems.push(parse_error(file, line, target.column, "includes nest more than 8 deep".into(), "check for an include loop")),
                    Err(e) => input.notes.push((
                        reported,
                        format!(
                            "include {}: not read ({e}; wic looks in its canned-wks directories too): its partitions are missing",
                            target.text
                        ),
                    )),
                }
            }
            other => problems.push(parse_error(
                file,
                line,
                command.column,
                format!("'{other}' is not a wic command"),
                "wic reads part, bootloader and include lines",
            )),
        }
    }
    if !seen_command {
        input.head.append(&mut comments);
    }
}

/// Translates a wic kickstart file.
pub fn translate(file: &Path, text: &str) -> Result<Doc, super::Error> {
    let mut input = Input::default();
    let mut problems = Vec::new();
    read(file, text, None, &mut input, &mut problems, 0);
    let mut doc = Doc::default();
    while input.head.last().is_some_and(String::is_empty) {
        input.head.pop();
    }
    doc.head = input.head;
    for (line, text) in input.notes {
        doc.note(line, text);
    }
    let stem = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.split('.').next().unwrap_or("disk");
    let name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    doc.image.push(Entry::text(
        "name",
        if name.is_empty() { "disk".into() } else { name },
    ));
    let mut table = "mbr";
    if let Some((line, opts)) = &input.bootloader {
        for (name, value, column) in opts {
            let v = value.as_ref().map(|w| w.text.as_str()).unwrap_or("");
            match name.as_str() {
                "ptable" => match v {
                    "msdos" => table = "mbr",
                    "gpt" => table = "gpt",
                    "gpt-hybrid" => table = "hybrid",
                    _ => problems.push(parse_error(file, *line, *column, format!("--ptable {v} is not msdos, gpt or gpt-hybrid"), "write --ptable gpt")),
                },
                "diskid" => match table {
                    "mbr" => match parse_int(v) {
                        Some(n) if n <= u64::from(u32::MAX) => doc.image.push(Entry::plain("mbr-signature", format!("{n:#010x}"))),
                        _ => problems.push(parse_error(file, *line, *column, format!("--diskid {v} is not a 32-bit number"), "write e.g. --diskid 0x12345678")),
                    },
                    _ => doc.image.push(Entry::plain("disk-uuid", v.to_ascii_lowercase())),
                },
                _ => doc.note(
                    *line,
                    format!("bootloader --{name}{}: wic's boot loader plugin writes its configuration; image-composer installs no boot loader", value.as_ref().map(|w| format!(" {}", w.text)).unwrap_or_default()),
                ),
            }
        }
    }
    doc.image.insert(1, Entry::plain("table", table));
    let mut align = Entry::plain("align", "512");
    align.after = Some("wic starts a partition right after the previous one unless --align".into());
    doc.image.insert(2, align);
    let mut names: Vec<String> = Vec::new();
    for (index, part) in input.parts.iter().enumerate() {
        translate_part(
            file,
            &mut doc,
            part,
            index,
            table,
            &mut names,
            &mut problems,
        );
    }
    if input.parts.iter().filter(|p| !p.flag("no-table")).count() > 4 && table == "mbr" {
        doc.note(
            input.parts.get(4).map_or(1, |p| p.line),
            "more than four partitions on MBR: wic makes the fourth and later logical in an extended partition at entry 4; image-composer does the same (extended-partition: 4) but places EBRs by its alignment",
        );
    }
    if problems.is_empty() {
        Ok(doc)
    } else {
        Err(super::Error::Input(Diagnostics(problems)))
    }
}

fn parse_int(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn translate_part(
    file: &Path,
    doc: &mut Doc,
    part: &Part,
    index: usize,
    table: &str,
    names: &mut Vec<String>,
    problems: &mut Vec<Diagnostic>,
) {
    let line = part.line;
    let at = |name: &str| {
        part.opts
            .iter()
            .rev()
            .find(|(n, _, _)| n == name)
            .map_or(1, |(_, _, c)| *c)
    };
    let note = |doc: &mut Doc, text: String| {
        let text = match &part.origin {
            Some(o) => format!("{text} (in {o})"),
            None => text,
        };
        doc.note(line, text);
    };
    let mut bad = |name: &str, what: &str, help: &str| {
        problems.push(parse_error(
            file,
            line,
            at(name),
            format!("--{name} {} is not {what}", part.get(name).unwrap_or("")),
            help,
        ));
    };
    let fstype = part.get("fstype").unwrap_or("vfat");
    let source = part.get("source").map(|s| s.replace('-', "_"));
    let label = part.get("label");
    // The name: wic's GPT name (--part-name, else --label), else one
    // made from the mount point.
    let base = part
        .get("part-name")
        .or(label)
        .map(String::from)
        .or_else(|| match part.mountpoint.as_deref() {
            Some("/") => Some("root".into()),
            Some(m) => {
                let m: String = m
                    .trim_matches('/')
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || "._-".contains(c) {
                            c
                        } else {
                            '-'
                        }
                    })
                    .collect();
                (!m.is_empty()).then_some(m)
            }
            None => None,
        })
        .unwrap_or_else(|| format!("part{}", index + 1));
    let mut name = base.clone();
    let mut n = 2;
    while names.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    names.push(name.clone());
    if table != "mbr"
        && part.get("part-name").is_none()
        && label.is_none()
        && !part.flag("no-table")
    {
        note(doc, format!("wic leaves this partition's GPT name 'primary' (parted's); image-composer names it '{name}'"));
    }
    let mut e = vec![Entry::text("name", name.clone())];
    let no_table = part.flag("no-table");
    // Type.
    if !no_table {
        let ty = match (table, part.get("part-type"), part.get("system-id")) {
            ("mbr", _, Some(id)) => Some(Value::Plain(format!(
                "{:#04x}",
                parse_int(id)
                    .or_else(|| u64::from_str_radix(id, 16).ok())
                    .unwrap_or(0)
            ))),
            (_, Some(guid), _) if table != "mbr" => Some(Value::Plain(guid.to_ascii_lowercase())),
            _ => match fstype {
                "swap" => Some(Value::Plain("swap".into())),
                "vfat" if table == "mbr" => Some(Value::Plain("0x0c".into())),
                "vfat" | "msdos" if table != "mbr" => Some(Value::Plain("fat32".into())),
                "msdos" => Some(Value::Plain("0x06".into())),
                _ => None,
            },
        };
        if let Some(t) = ty {
            e.push(Entry::new("type", t));
        }
        if table != "mbr" {
            if let Some(id) = part.get("system-id") {
                e.push(Entry::plain(
                    "mbr-type",
                    format!(
                        "{:#04x}",
                        u64::from_str_radix(id.trim_start_matches("0x"), 16).unwrap_or(0)
                    ),
                ));
            }
        }
        if table == "hybrid" && part.flag("mbr") {
            e.push(Entry::plain("hybrid", "true"));
        }
    } else {
        e.push(Entry::plain("in-table", "false"));
    }
    if let Some(o) = part.get("offset") {
        match size(o, 'K', true) {
            Some(b) => e.push(Entry::plain("offset", size_text(b))),
            None => bad(
                "offset",
                "a size",
                "write e.g. --offset 1024 (KiB) or --offset 64s",
            ),
        }
    } else if no_table {
        note(doc, "--no-table without --offset: wic places it after the previous partition; image-composer needs the offset: write offset:".into());
    }
    if let Some(a) = part.get("align") {
        match a.parse::<u64>() {
            Ok(k) if k > 0 => e.push(Entry::plain("align", size_text(k * 1024))),
            _ => bad("align", "a number of KiB", "write e.g. --align 1024"),
        }
    }
    if part.flag("active") {
        e.push(Entry::plain("bootable", "true"));
    }
    if part.flag("hidden") && table == "gpt" {
        // wic's --hidden sets the "required partition" attribute (bit 0).
        e.push(Entry::plain("required", "true"));
    }
    if let Some(u) = part.get("uuid") {
        if table != "mbr" {
            e.push(Entry::plain("uuid", u.to_ascii_lowercase()));
        }
    }
    // Size.
    let kib = |name: &str, bad: &mut dyn FnMut(&str, &str, &str)| -> Option<u64> {
        let v = part.get(name)?;
        // At most 64 TiB, so that the size arithmetic below cannot overflow.
        let s = size(v, 'M', false).filter(|&k| k <= MAX_KIB);
        if s.is_none() {
            bad(name, "a size", "write a number of MiB, or with k, M or G");
        }
        s
    };
    let fixed = kib("fixed-size", &mut bad);
    let min = kib("size", &mut bad).unwrap_or(0);
    let extra = kib("extra-space", &mut bad);
    let extra_part = kib("extra-partition-space", &mut bad).unwrap_or(0);
    let factor = match part.get("overhead-factor") {
        None => None,
        Some(f) => match f.parse::<f64>() {
            Ok(v) if (1.0..100.0).contains(&v) => Some(v),
            _ => {
                bad(
                    "overhead-factor",
                    "a factor of at least 1",
                    "write e.g. --overhead-factor 1.3",
                );
                None
            }
        },
    };
    let percent = factor.map_or(DEFAULT_FACTOR_PERCENT, |f| (f * 100.0).round() as u64);
    if let Some(f) = factor {
        if (f * 100.0 - percent as f64).abs() > 1e-6 {
            note(
                doc,
                format!("--overhead-factor {f} is rounded to {percent}%"),
            );
        }
    }
    let extra = extra.unwrap_or(DEFAULT_EXTRA_KIB);
    let content_kind = match source.as_deref() {
        None => "none",
        Some("rootfs") => "rootfs",
        Some("rawcopy") => "rawcopy",
        Some("bootimg_partition") => "files",
        Some("bootimg_pcbios" | "bootimg_efi" | "bootimg_biosplusefi") => "bootloader",
        Some("empty") => "empty",
        Some(_) => "other",
    };
    let size_value = if let Some(f) = fixed {
        Some(size_text(f * 1024))
    } else {
        match content_kind {
            "rootfs" | "files" => {
                if min > 0 {
                    // wic: (content + max(extra, min - content)) × factor,
                    // which is min × factor while content ≤ min − extra.
                    let k = min.max(extra) * percent / 100 + extra_part;
                    note(doc, format!(
                        "--size {min}K is a minimum: wic makes the partition (content + max(extra, size - content)) x factor, which is {} while the content stays under {}; written as that size (raise it when the content grows)",
                        size_text(k * 1024), size_text(min.saturating_sub(extra) * 1024)
                    ));
                    Some(size_text(k * 1024))
                } else {
                    let bytes = (extra * 1024 * percent / 100) + extra_part * 1024;
                    let mut spec = String::from("auto");
                    if percent > 100 {
                        spec.push_str(&format!(" +{}%", percent - 100));
                    }
                    if bytes > 0 {
                        spec.push_str(&format!(" +{}", size_text(bytes)));
                    }
                    Some(spec)
                }
            }
            "bootloader" => {
                if min > BOOTDD_EXTRA_KIB {
                    note(doc, format!("--size {min}K is a minimum: wic's boot loader plugin makes content + max(16MiB, size - content); written as {}", size_text(min * 1024)));
                    Some(size_text((min + extra_part) * 1024))
                } else {
                    Some(format!(
                        "auto +{}",
                        size_text((BOOTDD_EXTRA_KIB + extra_part) * 1024)
                    ))
                }
            }
            "rawcopy" => (min > 0).then(|| size_text((min + extra_part) * 1024)),
            _ => {
                if min > 0 {
                    Some(size_text((min + extra_part) * 1024))
                } else {
                    if !no_table {
                        bad(
                            "size",
                            "given",
                            "wic needs --size or --fixed-size for a partition without --source",
                        );
                    }
                    None
                }
            }
        }
    };
    if let Some(s) = size_value {
        e.push(Entry::plain("size", s));
    }
    // Content.
    let mut fs = Vec::new();
    let fs_type = match fstype {
        "ext2" | "ext3" | "ext4" => {
            if fstype != "ext4" {
                note(doc, format!("--fstype={fstype}: written as ext4 (image-composer writes ext4 only); set features: to match"));
            }
            Some("ext4")
        }
        "vfat" | "msdos" => {
            if fstype == "msdos" {
                note(
                    doc,
                    "--fstype=msdos: wic makes FAT16; written as vfat (set fat: 16)".into(),
                );
            }
            Some("vfat")
        }
        "squashfs" => Some("squashfs"),
        "erofs" => Some("erofs"),
        "swap" => Some("swap"),
        "none" => None,
        other => {
            note(doc, format!("--fstype={other}: image-composer cannot write {other}; the partition is left empty"));
            None
        }
    };
    let mut tree = None;
    match content_kind {
        "rootfs" => {
            let dir = part.get("rootfs-dir").map_or("${IMAGE_ROOTFS}".to_string(), |d| {
                if d.contains('/') {
                    d.to_string()
                } else {
                    format!("${{{d}}}")
                }
            });
            tree = Some(dir);
        }
        "files" => {
            note(doc, "--source bootimg_partition: wic copies IMAGE_BOOT_FILES into the vfat; list them under files: (translated as the directory ${BOOT_FILES})".into());
            tree = Some("${BOOT_FILES}".into());
        }
        "bootloader" => {
            let params = part.get("sourceparams").map(|p| format!(" --sourceparams=\"{p}\"")).unwrap_or_default();
            note(doc, format!(
                "--source {}{params}: wic's plugin installs the boot loader (and writes its configuration{}); image-composer installs none: put the boot loader's files in the directory ${{BOOT_DIR}}{}",
                part.get("source").unwrap_or(""),
                if content_kind == "bootloader" { " and the kernel" } else { "" },
                if source.as_deref() == Some("bootimg_pcbios") { ", and its MBR boot code is not written (write it with an in-table: false partition at offset 0 with holes: [{ offset: 440, size: 72 }])" } else { "" }
            ));
            tree = Some("${BOOT_DIR}".into());
        }
        "rawcopy" => {
            let params = part.get("sourceparams").unwrap_or("");
            let mut file_param = None;
            for kv in params.split(',') {
                match kv.split_once('=') {
                    Some(("file", f)) => file_param = Some(f.to_string()),
                    _ if kv.trim().is_empty() => {}
                    _ => note(doc, format!("--sourceparams {kv}: rawcopy's option is not translated (image-composer copies the whole file)")),
                }
            }
            match file_param {
                Some(f) => {
                    let path = if f.starts_with('/') || f.starts_with("${") { f } else { format!("${{DEPLOY_DIR_IMAGE}}/{f}") };
                    e.push(Entry::text("image", path));
                }
                None => bad("sourceparams", "file=NAME", "rawcopy needs --sourceparams=\"file=NAME\""),
            }
        }
        "other" => note(doc, format!(
            "--source {}: wic's plugin fills this partition; image-composer has no equivalent: the partition is left empty",
            part.get("source").unwrap_or("")
        )),
        _ => {}
    }
    if content_kind != "rawcopy" {
        if let Some(t) = fs_type {
            if content_kind != "other" && content_kind != "empty" {
                fs.push(Entry::plain("type", t));
                if let Some(l) = label {
                    if t != "squashfs" && t != "erofs" {
                        fs.push(Entry::text("label", l));
                    }
                }
                if let Some(u) = part.get("fsuuid") {
                    match t {
                        "ext4" | "swap" => fs.push(Entry::plain("uuid", u.to_ascii_lowercase())),
                        "vfat" => match parse_int(u).or_else(|| u64::from_str_radix(u, 16).ok()) {
                            Some(id) => fs.push(Entry::plain("volume-id", format!("{id:#010x}"))),
                            None => bad(
                                "fsuuid",
                                "a 32-bit number",
                                "write e.g. --fsuuid 0x1234abcd",
                            ),
                        },
                        _ => {}
                    }
                }
                if let Some(t) = &tree {
                    fs.push(Entry::text("from", t.clone()));
                }
            }
        }
    }
    if !fs.is_empty() {
        e.push(Entry::new("fs", Value::Map(fs)));
    }
    for (opt, why) in [
        ("exclude-path", "image-composer copies the whole tree: remove these paths from the directory, or build from a copy without them"),
        ("include-path", "image-composer builds from one tree: merge these into it"),
        ("change-directory", "write from: as that subdirectory"),
        ("fsoptions", "wic writes it into the root tree's /etc/fstab; edit the tree's fstab"),
        ("fspassno", "wic writes it into the root tree's /etc/fstab; edit the tree's fstab"),
        ("mkfs-extraopts", "mkfs arguments: set the filesystem's keys (features:, block-size:, inode-ratio: ...) instead"),
        ("type", "image-composer decides primary and logical partitions by their number (extended-partition:)"),
    ] {
        if let Some(v) = part.get(opt) {
            if opt == "type" && v == "primary" {
                continue;
            }
            note(doc, format!("--{opt} {v}: {why}"));
        }
    }
    if part.flag("use-uuid") || part.flag("use-label") {
        note(doc, "--use-uuid/--use-label: wic writes root= into the boot loader configuration and the fstab; image-composer writes neither (the partition's uuid is derived from the seed, see plan)".into());
    }
    if let Some(d) = part.get("ondisk") {
        if !matches!(d, "sda" | "mmcblk0" | "mmcblk" | "vda" | "sdb" | "hda") {
            note(doc, format!("--ondisk {d}: image-composer writes one disk"));
        }
    }
    if table == "mbr" && part.get("part-name").is_some() {
        note(
            doc,
            "--part-name on an MBR disk: wic refuses it; the name is kept as the partition's name"
                .into(),
        );
    }
    doc.partitions.push(e);
    doc.partition_comments.push(part.comments.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> String {
        match translate(Path::new("board.wks"), text) {
            Ok(d) => d.render("board.wks", super::super::Format::Wks),
            Err(super::super::Error::Input(d)) => format!("{d}"),
            Err(super::super::Error::Build(e)) => format!("{e:#}"),
        }
    }

    #[test]
    fn splits_like_shlex() {
        let w: Vec<String> = split(r#"part / --append="a b" --x='c d' e\ f"#)
            .unwrap()
            .into_iter()
            .map(|w| w.text)
            .collect();
        assert_eq!(w, ["part", "/", "--append=a b", "--x=c d", "e f"]);
        assert_eq!(
            split("a \"b").unwrap_err(),
            (3, "the quote \" is not closed".to_string())
        );
    }

    #[test]
    fn sizes_follow_sizetype() {
        assert_eq!(size("16", 'M', false), Some(16 * 1024));
        assert_eq!(size("44M", 'M', false), Some(44 * 1024));
        assert_eq!(size("512k", 'M', false), Some(512));
        assert_eq!(size("1G", 'M', false), Some(1024 * 1024));
        assert_eq!(size("1024", 'K', true), Some(1024 * 1024));
        assert_eq!(size("64s", 'K', true), Some(64 * 512));
        assert_eq!(size("12Q", 'M', false), None);
    }

    #[test]
    fn translates_an_efi_disk() {
        let out = doc("# short-description: EFI disk\n\n\
# the ESP\n\
part /boot --source bootimg-efi --sourceparams=\"loader=grub-efi\" --ondisk sda --label msdos --active --align 1024\n\
part / --source rootfs --ondisk sda --fstype=ext4 --label platform --align 1024 --use-uuid\n\
part swap --ondisk sda --size 44 --label swap1 --fstype=swap\n\
bootloader --ptable gpt --timeout=5 --append=\"console=ttyS0\"\n");
        assert!(
            out.contains(
                "# short-description: EFI disk\nimage:\n  name: board\n  table: gpt\n  align: 512"
            ),
            "{out}"
        );
        assert!(out.contains("  # the ESP\n  - name: msdos\n    type: fat32\n    align: 1MiB\n    bootable: true\n    size: auto +16MiB\n    fs:\n      type: vfat\n      label: msdos\n      from: \"${BOOT_DIR}\"\n"), "{out}");
        assert!(out.contains("  - name: platform\n    align: 1MiB\n    size: auto +30% +13MiB\n    fs:\n      type: ext4\n      label: platform\n      from: \"${IMAGE_ROOTFS}\"\n"), "{out}");
        assert!(out.contains("  - name: swap1\n    type: swap\n    size: 44MiB\n    fs:\n      type: swap\n      label: swap1\n"), "{out}");
        assert!(out.contains("# - board.wks:4: --source bootimg-efi --sourceparams=\"loader=grub-efi\": wic's plugin\n#     installs the boot loader"), "{out}");
        assert!(
            out.contains("# - board.wks:7: bootloader --timeout 5:"),
            "{out}"
        );
    }

    #[test]
    fn extra_space_and_overhead_factor_become_auto_headroom() {
        let out = doc("part / --source rootfs --fstype=ext4 --label root --extra-space 100M --overhead-factor 1\n");
        assert!(out.contains("    size: auto +100MiB\n"), "{out}");
        let out = doc("part / --source rootfs --fstype=ext4 --label root --extra-space 0 --overhead-factor 1.5\n");
        assert!(out.contains("    size: auto +50%\n"), "{out}");
        let out = doc("part / --source rootfs --fstype=ext4 --label root --fixed-size 1G\n");
        assert!(out.contains("    size: 1GiB\n"), "{out}");
    }

    #[test]
    fn parse_errors_name_line_column() {
        let out = doc("part / --source rootfs\npart /data --fstpye=ext4 --size 1\nbootloader --ptable \"gpt\n");
        assert!(
            out.contains("board.wks:2:12: --fstpye is not an option of this command"),
            "{out}"
        );
        assert!(
            out.contains("board.wks:3:21: the quote \" is not closed"),
            "{out}"
        );
        assert!(out.contains("2 problems"), "{out}");
        assert!(
            doc("frobnicate --x\n").contains("board.wks:1:1: 'frobnicate' is not a wic command")
        );
    }
}
