//! Reads a genimage configuration (libconfuse syntax) and translates its
//! disk image (`hdimage`) into a [`Doc`].
//!
//! The parser takes libconfuse's syntax as genimage 19 uses it: sections
//! `NAME [TITLE] { ... }`, options `NAME = VALUE` / `NAME += VALUE`, lists
//! `{ a, b }`, functions `include(...)`, quoted (`"..."` with escapes,
//! `'...'` literal) and unquoted values, comments `#`, `//` and `/* */`.
//! Comments are kept with their position and carried over to the
//! translation of what they stand above or beside.
//!
//! Semantics follow genimage 19's `image-hd.c` and `genimage.c`: table
//! type `mbr` unless told, alignment 512 bytes unless told, a partition's
//! type `L` on GPT unless told, a partition without `size` as large as
//! its image. A partition's `image` that is defined in the same file by a
//! vfat/ext*/squashfs/erofs section becomes the partition's filesystem; any
//! other image name is an input file. Rejected: evaluating genimage's
//! `%` sizes or its mountpoint-based rootpath splitting — both depend on
//! genimage's temporary copy of the root tree, which image-composer does
//! not make; they are notes.

use super::{parse_error, size_text, Doc, Entry, Value};
use crate::diag::{Diagnostic, Diagnostics};
use std::collections::BTreeMap;
use std::path::Path;

/// A value as written: its text and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Scalar {
    text: String,
    line: u32,
    column: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Body {
    /// `NAME = value` (one item) or `NAME = { a, b }` (a list).
    Option { values: Vec<Scalar>, list: bool },
    /// `NAME [TITLE] { ... }`.
    Section {
        title: Option<Scalar>,
        children: Vec<Node>,
    },
    /// `NAME(args)`.
    Function { args: Vec<Scalar> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    name: String,
    line: u32,
    column: u32,
    /// The line of the node's last token.
    end_line: u32,
    body: Body,
    above: Vec<String>,
    after: Option<String>,
}

impl Node {
    fn children(&self) -> &[Node] {
        match &self.body {
            Body::Section { children, .. } => children,
            _ => &[],
        }
    }

    fn title(&self) -> Option<&str> {
        match &self.body {
            Body::Section { title, .. } => title.as_ref().map(|t| t.text.as_str()),
            _ => None,
        }
    }

    fn child(&self, name: &str) -> Option<&Node> {
        self.children().iter().rev().find(|c| c.name == name)
    }

    fn value(&self) -> Option<&Scalar> {
        match &self.body {
            Body::Option { values, .. } => values.last(),
            _ => None,
        }
    }

    fn values(&self) -> &[Scalar] {
        match &self.body {
            Body::Option { values, .. } => values,
            _ => &[],
        }
    }

    /// The node as the input wrote it, for notes: `name = "value"`.
    fn shown(&self) -> String {
        match &self.body {
            Body::Option { values, list } => {
                let items: Vec<String> = values.iter().map(|v| format!("\"{}\"", v.text)).collect();
                if *list {
                    format!("{} = {{ {} }}", self.name, items.join(", "))
                } else {
                    format!("{} = {}", self.name, items.join(""))
                }
            }
            Body::Section { title, .. } => match title {
                Some(t) => format!("{} {} {{ ... }}", self.name, t.text),
                None => format!("{} {{ ... }}", self.name),
            },
            Body::Function { args } => {
                let items: Vec<&str> = args.iter().map(|a| a.text.as_str()).collect();
                format!("{}({})", self.name, items.join(", "))
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Punct(char),
    PlusEq,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: u32,
    column: u32,
}

#[derive(Clone, Debug)]
struct Comment {
    line: u32,
    text: String,
}

/// Splits the text into tokens and comments.
fn lex(file: &Path, text: &str) -> Result<(Vec<Token>, Vec<Comment>), Diagnostic> {
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut line, mut column) = (0usize, 1u32, 1u32);
    let mut tokens = Vec::new();
    let mut comments = Vec::new();
    let advance = |i: &mut usize, line: &mut u32, column: &mut u32, c: char| {
        *i += 1;
        if c == '\n' {
            *line += 1;
            *column = 1;
        } else {
            *column += 1;
        }
    };
    while let Some(&c) = chars.get(i) {
        let (start_line, start_column) = (line, column);
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            advance(&mut i, &mut line, &mut column, c);
        } else if c == '#' || (c == '/' && next == Some('/')) {
            let mut body = String::new();
            while let Some(&c) = chars.get(i) {
                if c == '\n' {
                    break;
                }
                body.push(c);
                advance(&mut i, &mut line, &mut column, c);
            }
            let body = body.trim_start_matches('#').trim_start_matches("//");
            comments.push(Comment {
                line: start_line,
                text: body
                    .strip_prefix(' ')
                    .unwrap_or(body)
                    .trim_end()
                    .to_string(),
            });
        } else if c == '/' && next == Some('*') {
            let mut body = String::new();
            advance(&mut i, &mut line, &mut column, c);
            advance(&mut i, &mut line, &mut column, '*');
            loop {
                match (chars.get(i), chars.get(i + 1)) {
                    (Some('*'), Some('/')) => {
                        advance(&mut i, &mut line, &mut column, '*');
                        advance(&mut i, &mut line, &mut column, '/');
                        break;
                    }
                    (Some(&c), _) => {
                        body.push(c);
                        advance(&mut i, &mut line, &mut column, c);
                    }
                    (None, _) => {
                        return Err(parse_error(
                            file,
                            start_line,
                            start_column,
                            "a /* comment is not closed".into(),
                            "end the comment with */",
                        ))
                    }
                }
            }
            for (n, l) in body.lines().enumerate() {
                let l = l.trim().trim_start_matches('*').trim();
                if !l.is_empty() {
                    comments.push(Comment {
                        line: start_line + u32::try_from(n).unwrap_or(0),
                        text: l.to_string(),
                    });
                }
            }
        } else if c == '"' || c == '\'' {
            let mut body = String::new();
            advance(&mut i, &mut line, &mut column, c);
            loop {
                match chars.get(i).copied() {
                    None => {
                        return Err(parse_error(
                            file,
                            start_line,
                            start_column,
                            format!("a string opened with {c} is not closed"),
                            &format!("end the string with {c}"),
                        ))
                    }
                    Some(q) if q == c => {
                        advance(&mut i, &mut line, &mut column, q);
                        break;
                    }
                    Some('\\') if c == '"' => {
                        advance(&mut i, &mut line, &mut column, '\\');
                        let Some(e) = chars.get(i).copied() else {
                            continue;
                        };
                        body.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            'f' => '\x0c',
                            'b' => '\x08',
                            'e' => '\x1b',
                            other => other,
                        });
                        advance(&mut i, &mut line, &mut column, e);
                    }
                    Some(ch) => {
                        body.push(ch);
                        advance(&mut i, &mut line, &mut column, ch);
                    }
                }
            }
            tokens.push(Token {
                tok: Tok::Quoted(body),
                line: start_line,
                column: start_column,
            });
        } else if c == '+' && next == Some('=') {
            advance(&mut i, &mut line, &mut column, c);
            advance(&mut i, &mut line, &mut column, '=');
            tokens.push(Token {
                tok: Tok::PlusEq,
                line: start_line,
                column: start_column,
            });
        } else if "{}=,()".contains(c) {
            advance(&mut i, &mut line, &mut column, c);
            tokens.push(Token {
                tok: Tok::Punct(c),
                line: start_line,
                column: start_column,
            });
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.get(i) {
                if c.is_whitespace() || "{}=,()\"'#".contains(c) {
                    break;
                }
                if c == '/' && matches!(chars.get(i + 1), Some('/') | Some('*')) {
                    break;
                }
                word.push(c);
                advance(&mut i, &mut line, &mut column, c);
            }
            tokens.push(Token {
                tok: Tok::Word(word),
                line: start_line,
                column: start_column,
            });
        }
    }
    Ok((tokens, comments))
}

struct Parser<'a> {
    file: &'a Path,
    tokens: Vec<Token>,
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn error_here(&self, expected: &str) -> Diagnostic {
        match self.peek() {
            Some(t) => {
                let found = match &t.tok {
                    Tok::Word(w) => format!("'{w}'"),
                    Tok::Quoted(q) => format!("\"{q}\""),
                    Tok::Punct(p) => format!("'{p}'"),
                    Tok::PlusEq => "'+='".into(),
                };
                parse_error(
                    self.file,
                    t.line,
                    t.column,
                    format!("expected {expected}, found {found}"),
                    "genimage's syntax is `image NAME { hdimage { ... } partition NAME { key = value } }`",
                )
            }
            None => {
                let (line, column) = self.tokens.last().map_or((1, 1), |t| (t.line, t.column));
                parse_error(
                    self.file,
                    line,
                    column,
                    format!("expected {expected}, found the end of the file"),
                    "close every section with }",
                )
            }
        }
    }

    fn scalar(&mut self) -> Option<Scalar> {
        let t = self.peek()?.clone();
        match t.tok {
            Tok::Word(w) | Tok::Quoted(w) => {
                self.at += 1;
                Some(Scalar {
                    text: w,
                    line: t.line,
                    column: t.column,
                })
            }
            _ => None,
        }
    }

    fn punct(&mut self, p: char) -> bool {
        if self.peek().is_some_and(|t| t.tok == Tok::Punct(p)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn last_line(&self) -> u32 {
        self.at
            .checked_sub(1)
            .and_then(|i| self.tokens.get(i))
            .map_or(1, |t| t.line)
    }

    /// Items up to `}` (`nested`) or the end of the file.
    fn items(&mut self, nested: bool) -> Result<Vec<Node>, Diagnostic> {
        let mut nodes = Vec::new();
        loop {
            match self.peek() {
                None if nested => return Err(self.error_here("'}'")),
                None => return Ok(nodes),
                Some(t) if t.tok == Tok::Punct('}') && nested => return Ok(nodes),
                _ => {}
            }
            let Some(Token {
                tok: Tok::Word(name),
                line,
                column,
            }) = self.peek().cloned()
            else {
                return Err(self.error_here("an option or section name"));
            };
            self.at += 1;
            let body = match self.peek().map(|t| t.tok.clone()) {
                Some(Tok::Punct('=')) | Some(Tok::PlusEq) => {
                    self.at += 1;
                    if self.punct('{') {
                        let mut values = Vec::new();
                        if !self.punct('}') {
                            loop {
                                let Some(v) = self.scalar() else {
                                    return Err(self.error_here("a value"));
                                };
                                values.push(v);
                                if self.punct('}') {
                                    break;
                                }
                                if !self.punct(',') {
                                    return Err(self.error_here("',' or '}'"));
                                }
                            }
                        }
                        Body::Option { values, list: true }
                    } else {
                        let Some(v) = self.scalar() else {
                            return Err(self.error_here(&format!("a value for '{name}'")));
                        };
                        Body::Option {
                            values: vec![v],
                            list: false,
                        }
                    }
                }
                Some(Tok::Punct('(')) => {
                    self.at += 1;
                    let mut args = Vec::new();
                    while !self.punct(')') {
                        let Some(v) = self.scalar() else {
                            return Err(self.error_here("an argument or ')'"));
                        };
                        args.push(v);
                        self.punct(',');
                    }
                    Body::Function { args }
                }
                Some(Tok::Punct('{')) | Some(Tok::Word(_)) | Some(Tok::Quoted(_)) => {
                    let title = if self.punct('{') {
                        None
                    } else {
                        let title = self.scalar();
                        if !self.punct('{') {
                            return Err(self.error_here(&format!("'{{' after '{name}'")));
                        }
                        title
                    };
                    let children = self.items(true)?;
                    self.punct('}');
                    Body::Section { title, children }
                }
                _ => return Err(self.error_here(&format!("'=' or '{{' after '{name}'"))),
            };
            nodes.push(Node {
                name,
                line,
                column,
                end_line: self.last_line(),
                body,
                above: Vec::new(),
                after: None,
            });
        }
    }
}

/// Attaches each comment to the option ending on its line (after it) or
/// to the next node (above it); comments before the first node, or after
/// the last, are the file's head.
fn attach(nodes: &mut [Node], comments: Vec<Comment>, head: &mut Vec<String>) {
    /// Every node's first and last line, whether it is an option, and its
    /// index path, in file order.
    fn walk(nodes: &[Node], prefix: &mut Vec<usize>, out: &mut Vec<(u32, u32, bool, Vec<usize>)>) {
        for (i, n) in nodes.iter().enumerate() {
            prefix.push(i);
            let option = matches!(n.body, Body::Option { .. });
            out.push((n.line, n.end_line, option, prefix.clone()));
            walk(n.children(), prefix, out);
            prefix.pop();
        }
    }
    fn get<'n>(nodes: &'n mut [Node], path: &[usize]) -> Option<&'n mut Node> {
        let (first, rest) = path.split_first()?;
        let n = nodes.get_mut(*first)?;
        if rest.is_empty() {
            return Some(n);
        }
        match &mut n.body {
            Body::Section { children, .. } => get(children, rest),
            _ => None,
        }
    }
    let mut order = Vec::new();
    walk(nodes, &mut Vec::new(), &mut order);
    let first_line = order.first().map_or(u32::MAX, |(l, _, _, _)| *l);
    for c in comments {
        let beside = order
            .iter()
            .find(|(line, end, option, _)| *option && *end == c.line && *line <= c.line);
        if let Some(n) = beside.and_then(|(_, _, _, path)| get(nodes, path)) {
            if n.after.is_none() {
                n.after = Some(c.text);
                continue;
            }
        }
        let next = order.iter().find(|(line, _, _, _)| *line > c.line);
        match next.and_then(|(_, _, _, path)| get(nodes, path)) {
            Some(n) if c.line > first_line => n.above.push(c.text),
            _ => head.push(c.text),
        }
    }
}

/// Parses a genimage configuration into its nodes and the head comments.
fn parse(file: &Path, text: &str) -> Result<(Vec<Node>, Vec<String>), Diagnostic> {
    let (tokens, comments) = lex(file, text)?;
    let mut parser = Parser {
        file,
        tokens,
        at: 0,
    };
    let mut nodes = parser.items(false)?;
    let mut head = Vec::new();
    attach(&mut nodes, comments, &mut head);
    Ok((nodes, head))
}

/// A genimage size (`strtoul_suffix`: C integer, then `K`/`k`, `M`, `G`
/// or `s`), in bytes; `None` when it is not one (or is a `%` size).
fn size(text: &str) -> Option<u64> {
    let t = text.trim();
    let digits_end = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        2 + hex
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(hex.len())
    } else {
        t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len())
    };
    let (number, suffix) = t.split_at(digits_end);
    let value = if let Some(hex) = number
        .strip_prefix("0x")
        .or_else(|| number.strip_prefix("0X"))
    {
        u64::from_str_radix(hex, 16).ok()?
    } else if number.len() > 1 && number.starts_with('0') {
        u64::from_str_radix(&number[1..], 8).ok()?
    } else {
        number.parse().ok()?
    };
    let multiplier: u64 = match suffix {
        "" => 1,
        "k" | "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "s" => 512,
        _ => return None,
    };
    value.checked_mul(multiplier)
}

/// A libconfuse boolean.
fn boolean(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// A libconfuse integer (C syntax: decimal, 0x hex, 0 octal).
fn integer(text: &str) -> Option<u64> {
    size(text).filter(|_| {
        text.trim()
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == 'x' || c == 'X')
    })
}

/// Collects the problems of one translation.
struct Ctx<'a> {
    file: &'a Path,
    problems: Vec<Diagnostic>,
    doc: Doc,
}

impl Ctx<'_> {
    fn bad(&mut self, node: &Node, v: &Scalar, what: &str, help: &str) {
        self.problems.push(parse_error(
            self.file,
            v.line,
            v.column,
            format!("{}: \"{}\" is not {what}", node.name, v.text),
            help,
        ));
    }

    fn size_of(&mut self, node: &Node) -> Option<u64> {
        let v = node.value()?.clone();
        let s = size(&v.text);
        if s.is_none() {
            if v.text.trim_end().ends_with('%') {
                self.doc.note(
                    node.line,
                    format!(
                        "{}: genimage sizes it as a percentage of its content; \
                         written as size: auto",
                        node.shown()
                    ),
                );
            } else {
                self.bad(
                    node,
                    &v,
                    "a size",
                    "write a number with K, M, G or s (sectors), e.g. 32M",
                );
            }
        }
        s
    }

    fn bool_of(&mut self, node: &Node) -> Option<bool> {
        let v = node.value()?.clone();
        let b = boolean(&v.text);
        if b.is_none() {
            self.bad(node, &v, "a boolean", "write true or false");
        }
        b
    }

    fn note_unsupported(&mut self, node: &Node, why: &str) {
        self.doc.note(node.line, format!("{}: {why}", node.shown()));
    }
}

/// An entry carrying the node's comments.
fn entry(node: &Node, key: &str, value: Value) -> Entry {
    let mut e = Entry::new(key, value);
    e.above = node.above.clone();
    e.after = node.after.clone();
    e
}

/// Translates the first disk image (`hdimage`) of a genimage configuration.
pub fn translate(file: &Path, text: &str) -> Result<Doc, super::Error> {
    let (nodes, head) = parse(file, text).map_err(|d| super::Error::Input(Diagnostics(vec![d])))?;
    let mut cx = Ctx {
        file,
        problems: Vec::new(),
        doc: Doc {
            head,
            ..Doc::default()
        },
    };
    let mut images: BTreeMap<String, &Node> = BTreeMap::new();
    let mut disks = Vec::new();
    for n in &nodes {
        match (&n.body, n.name.as_str()) {
            (Body::Section { .. }, "image") => {
                if let Some(t) = n.title() {
                    images.insert(t.to_string(), n);
                }
                if n.child("hdimage").is_some() {
                    disks.push(n);
                }
            }
            (Body::Section { .. }, "config") => cx.note_unsupported(
                n,
                "genimage's own settings (paths, tool overrides) have no equivalent: \
                 give input directories with build --input-dir and variables with --var",
            ),
            (Body::Section { .. }, "flash") => {
                cx.note_unsupported(n, "flash chip types (NOR/NAND images) are not translated")
            }
            (Body::Function { .. }, "include") => cx.note_unsupported(
                n,
                "the included file is not read: import it separately and merge, or use layers:",
            ),
            _ => cx.note_unsupported(n, "not a genimage top-level item"),
        }
    }
    let Some(disk) = disks.first() else {
        return Err(super::Error::Input(Diagnostics(vec![parse_error(
            file,
            1,
            1,
            "has no disk image: no `image NAME { hdimage { ... } }` section".into(),
            "import translates genimage's hdimage images; other image types have no disk layout",
        )])));
    };
    for other in disks.iter().skip(1) {
        cx.note_unsupported(
            other,
            "a second disk image: import translates the first only",
        );
    }
    let mut used = Vec::new();
    translate_disk(&mut cx, disk, &images, &mut used);
    for (name, image) in &images {
        if image.child("hdimage").is_none() && !used.contains(name) {
            cx.note_unsupported(
                image,
                "not used by a partition of the disk image, not translated",
            );
        }
    }
    if cx.problems.is_empty() {
        Ok(cx.doc)
    } else {
        Err(super::Error::Input(Diagnostics(cx.problems)))
    }
}

fn translate_disk(
    cx: &mut Ctx,
    disk: &Node,
    images: &BTreeMap<String, &Node>,
    used: &mut Vec<String>,
) {
    let title = disk.title().unwrap_or("disk.img");
    let stem = title.strip_suffix(".img").unwrap_or(title);
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
    cx.doc.head.extend(disk.above.iter().cloned());
    cx.doc.image.push(Entry::text("name", name));
    let mut table = "mbr";
    let mut image_entries = Vec::new();
    let mut align = None;
    let Some(hd) = disk.child("hdimage") else {
        return;
    };
    for o in hd.children() {
        match o.name.as_str() {
            "partition-table-type" => match o.value().map(|v| v.text.as_str()) {
                Some("mbr" | "dos") => table = "mbr",
                Some("gpt") => table = "gpt",
                Some("hybrid") => table = "hybrid",
                Some("none") => table = "none",
                _ => {
                    if let Some(v) = o.value().cloned() {
                        cx.bad(
                            o,
                            &v,
                            "a partition table type",
                            "write mbr, gpt, hybrid or none",
                        );
                    }
                }
            },
            "partition-table" => {
                if let Some(b) = cx.bool_of(o) {
                    table = if b { "mbr" } else { "none" };
                }
            }
            "gpt" => {
                if let Some(b) = cx.bool_of(o) {
                    table = if b { "gpt" } else { "mbr" };
                }
            }
            "align" => {
                if let Some(a) = cx.size_of(o) {
                    align = Some(a);
                    image_entries.push(entry(o, "align", Value::Plain(size_text(a))));
                }
            }
            "disk-signature" => match o.value().map(|v| v.text.clone()) {
                Some(v) if v == "random" => cx.note_unsupported(
                    o,
                    "image-composer derives the disk signature from the seed (image.seed) instead",
                ),
                Some(v) => match integer(&v) {
                    Some(n) if n <= u64::from(u32::MAX) => image_entries.push(entry(
                        o,
                        "mbr-signature",
                        Value::Plain(format!("{n:#010x}")),
                    )),
                    _ => {
                        if let Some(s) = o.value().cloned() {
                            cx.bad(o, &s, "a 32-bit number", "write e.g. 0x12345678 or random");
                        }
                    }
                },
                None => {}
            },
            "disk-uuid" => {
                if let Some(v) = o.value() {
                    image_entries.push(entry(
                        o,
                        "disk-uuid",
                        Value::Plain(v.text.to_ascii_lowercase()),
                    ));
                }
            }
            "gpt-location" => {
                if let Some(s) = cx.size_of(o) {
                    image_entries.push(entry(o, "gpt-location", Value::Plain(size_text(s))));
                }
            }
            "gpt-no-backup" => {
                if let Some(b) = cx.bool_of(o) {
                    image_entries.push(entry(o, "gpt-no-backup", Value::Plain(b.to_string())));
                }
            }
            "extended-partition" => {
                if let Some(v) = o.value().cloned() {
                    match integer(&v.text) {
                        Some(0) => {}
                        Some(n @ 1..=4) => image_entries.push(entry(
                            o,
                            "extended-partition",
                            Value::Plain(n.to_string()),
                        )),
                        _ => cx.bad(
                            o,
                            &v,
                            "an MBR entry 0-4",
                            "write 1 to 4, or 0 for automatic",
                        ),
                    }
                }
            }
            // image-composer's MBR image always ends with its last partition.
            "fill" => {}
            _ => cx.note_unsupported(o, "not an hdimage option genimage 19 knows"),
        }
    }
    cx.doc.image.push(Entry::plain("table", table));
    if let Some(s) = disk.child("size") {
        if let Some(b) = cx.size_of(s) {
            cx.doc
                .image
                .push(entry(s, "size", Value::Plain(size_text(b))));
        }
    }
    if align.is_none() {
        let mut e = Entry::plain("align", "512");
        e.after = Some("genimage's default alignment".into());
        cx.doc.image.push(e);
    }
    cx.doc.image.extend(image_entries);
    let align = align.unwrap_or(512);
    for o in disk.children() {
        match o.name.as_str() {
            "hdimage" | "size" => {}
            "partition" => translate_partition(cx, o, table, align, images, used),
            "name" | "mountpoint" | "srcpath" | "empty" | "temporary" => {}
            "exec-pre" | "exec-post" => cx.note_unsupported(
                o,
                "genimage runs this command around the build; run it yourself",
            ),
            _ => cx.note_unsupported(o, "not translated"),
        }
    }
}

fn translate_partition(
    cx: &mut Ctx,
    part: &Node,
    table: &str,
    align: u64,
    images: &BTreeMap<String, &Node>,
    used: &mut Vec<String>,
) {
    let name = part.title().unwrap_or("part").to_string();
    let mut entries = vec![Entry::text("name", name.clone())];
    let mut content = Vec::new();
    let (mut mbr_type, mut gpt_type) = (None, None);
    let mut has_size = false;
    let mut in_table = true;
    let mut image_size = None;
    for o in part.children() {
        match o.name.as_str() {
            "partition-type" => {
                if let Some(v) = o.value().cloned() {
                    match integer(&v.text) {
                        Some(b @ 1..=255) => mbr_type = Some((o, b)),
                        _ => cx.bad(o, &v, "an MBR partition type", "write a byte, e.g. 0x83"),
                    }
                }
            }
            "partition-type-uuid" => gpt_type = o.value().map(|v| (o, v.text.clone())),
            "partition-uuid" => {
                if let Some(v) = o.value() {
                    entries.push(entry(o, "uuid", Value::Plain(v.text.to_ascii_lowercase())));
                }
            }
            "offset" => {
                if let Some(s) = cx.size_of(o) {
                    entries.push(entry(o, "offset", Value::Plain(size_text(s))));
                }
            }
            "size" => {
                if let Some(s) = cx.size_of(o) {
                    has_size = true;
                    entries.push(entry(o, "size", Value::Plain(size_text(s))));
                }
            }
            "autoresize" => {
                if cx.bool_of(o) == Some(true) {
                    has_size = true;
                    entries.push(entry(o, "size", Value::Plain("fill".into())));
                }
            }
            "align" => {
                if let Some(s) = cx.size_of(o) {
                    entries.push(entry(o, "align", Value::Plain(size_text(s))));
                }
            }
            "in-partition-table" => {
                if cx.bool_of(o) == Some(false) {
                    in_table = false;
                    entries.push(entry(o, "in-table", Value::Plain("false".into())));
                }
            }
            "bootable" | "read-only" | "no-automount" | "forced-primary" => {
                if cx.bool_of(o) == Some(true) {
                    entries.push(entry(o, &o.name, Value::Plain("true".into())));
                }
            }
            "hidden" => {
                if cx.bool_of(o) == Some(true) {
                    entries.push(entry(
                        o,
                        "gpt-attributes",
                        Value::List(vec!["hidden".into()]),
                    ));
                }
            }
            "holes" => {
                let mut holes = Vec::new();
                for v in o.values() {
                    let inner = v.text.trim().trim_start_matches('(').trim_end_matches(')');
                    match inner
                        .split_once(';')
                        .and_then(|(a, b)| Some((size(a)?, size(b)?)))
                    {
                        Some((start, end)) if end > start => holes.push(format!(
                            "{{ offset: {}, size: {} }}",
                            size_text(start),
                            size_text(end - start)
                        )),
                        _ => cx.bad(
                            o,
                            v,
                            "a hole",
                            "write \"(START; END)\", e.g. \"(440; 512)\"",
                        ),
                    }
                }
                entries.push(entry(
                    o,
                    "holes",
                    Value::Plain(format!("[{}]", holes.join(", "))),
                ));
            }
            "image" => {
                if let Some(v) = o.value() {
                    content = image_content(cx, o, &v.text, images, used, &mut image_size);
                }
            }
            "fill" => {
                if cx.bool_of(o) == Some(true) {
                    if part.child("image").is_none() {
                        content = vec![entry(o, "fill", Value::Plain("zero".into()))];
                    } else {
                        cx.note_unsupported(
                            o,
                            "genimage writes zeros after the image; image-composer leaves that \
                             part unmapped (it reads as zeros on fresh media)",
                        );
                    }
                }
            }
            "sparse" => {
                if cx.bool_of(o) == Some(false) {
                    cx.note_unsupported(o, "image-composer keeps the input's holes as holes");
                }
            }
            _ => cx.note_unsupported(o, "not translated"),
        }
    }
    // Types: one `type:`, plus `mbr-type`/`hybrid` where both tables see it.
    match (table, gpt_type, mbr_type) {
        (_, Some((o, g)), None) => entries.insert(1, entry(o, "type", Value::Text(g))),
        ("hybrid", g, Some((o, b))) => {
            let gt = g.as_ref().map_or("L".to_string(), |(_, t)| t.clone());
            let mut e = Entry::text("type", gt);
            if let Some((go, _)) = &g {
                e.above = go.above.clone();
                e.after = go.after.clone();
            }
            entries.insert(1, e);
            entries.insert(2, entry(o, "mbr-type", Value::Plain(format!("{b:#04x}"))));
            entries.insert(3, Entry::plain("hybrid", "true"));
        }
        (_, Some((o, g)), Some((_, b))) => {
            entries.insert(1, entry(o, "type", Value::Text(g)));
            entries.insert(2, Entry::plain("mbr-type", format!("{b:#04x}")));
        }
        (_, None, Some((o, b))) => {
            entries.insert(1, entry(o, "type", Value::Plain(format!("{b:#04x}"))))
        }
        (_, None, None) => {}
    }
    if !has_size {
        if let Some((node, s)) = image_size {
            entries.push(entry(node, "size", Value::Plain(size_text(s))));
        } else if in_table && align > 512 && part.child("image").is_some() {
            cx.doc.note(
                part.line,
                format!(
                    "partition {name}: genimage rounds a partition sized by its image up to the \
                     alignment ({}); image-composer's size: auto rounds to the sector, so the \
                     partition may end up to {} earlier (the next one starts at the same place): \
                     write a size to get genimage's",
                    size_text(align),
                    size_text(align - 512)
                ),
            );
        }
    }
    entries.extend(content);
    cx.doc.partitions.push(entries);
    cx.doc.partition_comments.push(part.above.clone());
}

/// A partition's content from `image = NAME`: the filesystem NAME's section
/// defines, or the input file NAME. Sets `image_size` from the section's
/// `size`.
fn image_content<'n>(
    cx: &mut Ctx,
    at: &Node,
    name: &str,
    images: &BTreeMap<String, &'n Node>,
    used: &mut Vec<String>,
    image_size: &mut Option<(&'n Node, u64)>,
) -> Vec<Entry> {
    let Some(image) = images.get(name).copied() else {
        return vec![entry(at, "image", Value::Text(name.to_string()))];
    };
    used.push(name.to_string());
    let mut fs: Vec<Entry> = Vec::new();
    let mut kind = None;
    let mountpoint = image
        .child("mountpoint")
        .and_then(|m| m.value())
        .map(|v| v.text.clone());
    let srcpath = image
        .child("srcpath")
        .and_then(|m| m.value())
        .map(|v| v.text.clone());
    let empty = image
        .child("empty")
        .and_then(|e| e.value())
        .and_then(|v| boolean(&v.text))
        == Some(true);
    let tree = || -> Option<String> {
        if empty {
            None
        } else if let Some(s) = &srcpath {
            Some(s.clone())
        } else {
            let m = mountpoint.clone().unwrap_or_default();
            let m = m.trim_end_matches('/');
            Some(format!(
                "${{TARGET_DIR}}{}{}",
                if m.is_empty() || m.starts_with('/') {
                    ""
                } else {
                    "/"
                },
                m
            ))
        }
    };
    for o in image.children() {
        match (o.name.as_str(), &o.body) {
            ("size", _) => {
                if let Some(s) = cx.size_of(o) {
                    *image_size = Some((o, s));
                }
            }
            ("mountpoint" | "srcpath" | "empty" | "name", _) => {}
            ("temporary", _) => {}
            ("exec-pre" | "exec-post", _) => cx.note_unsupported(
                o,
                &format!("genimage runs this command around building {name}; run it yourself"),
            ),
            ("vfat", Body::Section { .. }) => {
                kind = Some("vfat");
                fs.push(Entry::plain("type", "vfat"));
                let mut files = Vec::new();
                for v in o.children() {
                    match (v.name.as_str(), &v.body) {
                        ("label", _) => {
                            if let Some(l) = v.value() {
                                fs.push(entry(v, "label", Value::Text(l.text.clone())));
                            }
                        }
                        ("files", _) => {
                            for (i, f) in v.values().iter().enumerate() {
                                let base = f.text.trim_end_matches('/').rsplit('/').next().unwrap_or(&f.text);
                                let mut e = Entry::text(format!("/{base}"), f.text.clone());
                                if i == 0 {
                                    e.above = v.above.clone();
                                }
                                files.push(e);
                            }
                        }
                        ("file", Body::Section { .. }) => {
                            let target = v.title().unwrap_or("file").trim_start_matches('/');
                            match v.child("image").and_then(|i| i.value()) {
                                Some(src) => files.push(entry(v, &format!("/{target}"), Value::Text(src.text.clone()))),
                                None => cx.note_unsupported(v, "a file without image = is not translated"),
                            }
                        }
                        ("extraargs", _) => cx.note_unsupported(
                            v,
                            "mkdosfs arguments: set fat:, cluster-size:, volume-id: instead where they apply",
                        ),
                        _ => cx.note_unsupported(v, "not translated"),
                    }
                }
                if !files.is_empty() {
                    fs.push(Entry::new("files", Value::Map(files)));
                } else if let Some(t) = tree() {
                    fs.push(Entry::text("from", t));
                }
            }
            (t @ ("ext2" | "ext3" | "ext4"), Body::Section { .. }) => {
                kind = Some("ext4");
                fs.push(Entry::plain("type", "ext4"));
                if t != "ext4" {
                    cx.note_unsupported(
                        o,
                        "written as ext4 (image-composer writes ext4 only): set features: to match",
                    );
                }
                for v in o.children() {
                    match v.name.as_str() {
                        "label" => {
                            if let Some(l) = v.value() {
                                fs.push(entry(v, "label", Value::Text(l.text.clone())));
                            }
                        }
                        "features" => {
                            if let Some(l) = v.value() {
                                let list = l
                                    .text
                                    .split([',', ' '])
                                    .filter(|s| !s.is_empty())
                                    .map(String::from)
                                    .collect();
                                fs.push(entry(v, "features", Value::List(list)));
                            }
                        }
                        "use-mke2fs" => {}
                        "root-owner" if v.value().is_some_and(|r| r.text == "0:0") => {}
                        _ => cx.note_unsupported(v, "not translated"),
                    }
                }
                if let Some(t) = tree() {
                    fs.push(Entry::text("from", t));
                }
            }
            ("squashfs", Body::Section { .. }) => {
                kind = Some("squashfs");
                fs.push(Entry::plain("type", "squashfs"));
                for v in o.children() {
                    match (v.name.as_str(), v.value().map(|s| s.text.as_str())) {
                        ("compression", Some(c @ ("gzip" | "xz" | "zstd" | "lz4"))) => {
                            fs.push(entry(v, "compression", Value::Plain(c.into())))
                        }
                        ("block-size", Some(b)) => match size(b) {
                            Some(b) => fs.push(entry(v, "block-size", Value::Plain(size_text(b)))),
                            None => cx.note_unsupported(v, "not a size"),
                        },
                        _ => cx.note_unsupported(v, "not translated"),
                    }
                }
                if let Some(t) = tree() {
                    fs.push(Entry::text("from", t));
                }
            }
            ("erofs", Body::Section { .. }) => {
                kind = Some("erofs");
                fs.push(Entry::plain("type", "erofs"));
                for v in o.children() {
                    cx.note_unsupported(v, "not translated");
                }
                if let Some(t) = tree() {
                    fs.push(Entry::text("from", t));
                }
            }
            (_, Body::Section { .. }) => {
                cx.note_unsupported(
                    o,
                    &format!(
                        "genimage builds {name} with its {} handler, which image-composer lacks: \
                         build {name} beforehand and put it in an input directory",
                        o.name
                    ),
                );
                return vec![entry(at, "image", Value::Text(name.to_string()))];
            }
            _ => cx.note_unsupported(o, "not translated"),
        }
    }
    if kind.is_none() {
        cx.note_unsupported(
            image,
            "no filesystem section; the image is taken as an input file",
        );
        return vec![entry(at, "image", Value::Text(name.to_string()))];
    }
    let mut e = Entry::new("fs", Value::Map(fs));
    e.above = image.above.clone();
    e.above.push(format!("genimage's image {name}"));
    vec![e]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> String {
        match translate(Path::new("genimage.cfg"), text) {
            Ok(d) => d.render("genimage.cfg", super::super::Format::Genimage),
            Err(super::super::Error::Input(d)) => format!("{d}"),
            Err(super::super::Error::Build(e)) => format!("{e:#}"),
        }
    }

    #[test]
    fn sizes_follow_strtoul_suffix() {
        assert_eq!(size("32M"), Some(32 << 20));
        assert_eq!(size("16352K"), Some(16352 << 10));
        assert_eq!(size("32k"), Some(32 << 10));
        assert_eq!(size("2048s"), Some(2048 * 512));
        assert_eq!(size("0x1000"), Some(4096));
        assert_eq!(size("1024"), Some(1024));
        assert_eq!(size("1G"), Some(1 << 30));
        assert_eq!(size("1g"), None);
        assert_eq!(size("10%"), None);
    }

    #[test]
    fn translates_a_raspberry_pi_layout_with_comments() {
        let out = doc(r#"# RPi
image boot.vfat {
	vfat {
		files = { "bcm2711-rpi-4-b.dtb", "rpi-firmware/config.txt", "Image" }
	}
	size = 32M  # the firmware reads it
}

image sdcard.img {
	hdimage {
	}

	// the boot partition
	partition boot {
		partition-type = 0xC
		bootable = "true"
		image = "boot.vfat"
	}

	partition rootfs {
		partition-type = 0x83
		image = "rootfs.ext4"
		exec-pre = "true"
	}
}
"#);
        assert_eq!(
            out,
            r#"# Imported from the genimage configuration genimage.cfg by image-composer import.
#
# Not translated (finish these by hand, see docs/import.md):
# - genimage.cfg:23: exec-pre = "true": not translated
#
# RPi
image:
  name: sdcard
  table: mbr
  align: 512  # genimage's default alignment
partitions:
  # the boot partition
  - name: boot
    type: 0x0c
    bootable: true
    size: 32MiB  # the firmware reads it
    # genimage's image boot.vfat
    fs:
      type: vfat
      files:
        /bcm2711-rpi-4-b.dtb: bcm2711-rpi-4-b.dtb
        /config.txt: rpi-firmware/config.txt
        /Image: Image
  - name: rootfs
    type: 0x83
    image: rootfs.ext4
"#
        );
    }

    #[test]
    fn parse_errors_name_line_column_and_what_was_expected() {
        assert_eq!(
            doc("image a.img {\n  hdimage {\n  }\n  partition p {\n    size = \n  }\n}\n"),
            "error: genimage.cfg:6:3: expected a value for 'size', found '}'\n  \
             help: genimage's syntax is `image NAME { hdimage { ... } partition NAME { key = value } }`\n\
             error: 1 problem in genimage.cfg; nothing was written"
        );
        assert!(doc("image a.img {\n  hdimage {\n")
            .contains("genimage.cfg:2:11: expected '}', found the end of the file"));
        assert!(doc("image a.img { size = \"1\n")
            .contains("genimage.cfg:1:22: a string opened with \" is not closed"));
    }

    #[test]
    fn bad_values_are_all_reported() {
        let out = doc("image a.img {\n hdimage { partition-table-type = \"xyz\" }\n partition p { size = 12Q bootable = maybe }\n}\n");
        assert!(
            out.contains(
                "genimage.cfg:2:35: partition-table-type: \"xyz\" is not a partition table type"
            ),
            "{out}"
        );
        assert!(
            out.contains("genimage.cfg:3:23: size: \"12Q\" is not a size"),
            "{out}"
        );
        assert!(
            out.contains("genimage.cfg:3:38: bootable: \"maybe\" is not a boolean"),
            "{out}"
        );
        assert!(out.contains("3 problems"), "{out}");
    }

    #[test]
    fn hybrid_partitions_keep_both_types() {
        let out = doc("image a.img {\n hdimage { partition-table-type = \"hybrid\" align = 1M }\n partition boot { partition-type = 0xC partition-type-uuid = F image = \"b\" size = 8M }\n partition root { image = \"r\" size = 8M }\n}\n");
        assert!(
            out.contains("  - name: boot\n    type: F\n    mbr-type: 0x0c\n    hybrid: true\n"),
            "{out}"
        );
        assert!(
            out.contains("  - name: root\n    size: 8MiB\n    image: r\n"),
            "{out}"
        );
        assert!(out.contains("  align: 1MiB\n"), "{out}");
    }
}
