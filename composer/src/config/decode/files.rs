use super::*;

pub(super) const FILES: KeySpec = KeySpec {
    name: "files",
    kind: Kind::MapOf(&Kind::AnyOf(&[Kind::Path, Kind::Map(&FILE_ARTIFACT)])),
    doc: "Files placed in it: destination path -> input path, or { artifact: name }",
};
pub(super) const OWNERS: KeySpec = KeySpec {
    name: "owners",
    kind: Kind::Enum(&OWNERS_NAMES),
    doc: "root: every file of the from: tree root:root; source: owners as the tree reports them",
};
pub(super) const DEVICE_TABLE: KeySpec = KeySpec {
    name: "device-table",
    kind: Kind::AnyOf(&[Kind::Path, Kind::List(&Kind::Path)]),
    doc: "Buildroot makedevs device tables (input paths), applied in order",
};
pub(super) const RULES: KeySpec = KeySpec {
    name: "rules",
    kind: Kind::List(&Kind::Map(&RULE)),
    doc:
        "Ownership, mode and capability overrides, applied after the device tables; later rules win",
};

const FILE_ARTIFACT: Section = Section {
    doc: "A file whose content is an artifact or a text",
    keys: &[
        KeySpec {
            name: "artifact",
            kind: Kind::Text,
            doc: "The artifact written as this file",
        },
        KeySpec {
            name: "text",
            kind: Kind::Text,
            doc: "The file's text; ${verity.NAME.KEY} references are filled in at build time",
        },
    ],
};

const RULE: Section = Section {
    doc: "An ownership, mode or capability override",
    keys: &[
        KeySpec {
            name: "path",
            kind: Kind::Text,
            doc: "A glob from the filesystem root, e.g. /usr/bin/*",
        },
        KeySpec {
            name: "uid",
            kind: Kind::Uint,
            doc: "Owner user id",
        },
        KeySpec {
            name: "gid",
            kind: Kind::Uint,
            doc: "Owner group id",
        },
        KeySpec {
            name: "mode",
            kind: Kind::Mode,
            doc: "Permission bits in octal, e.g. \"0755\"",
        },
        KeySpec {
            name: "caps",
            kind: Kind::Text,
            doc: "File capabilities as for setcap, e.g. cap_net_raw+ep",
        },
    ],
};

/// `owners:`'s values.
const OWNERS_MODES: [(&str, Owners); 2] = [("root", Owners::Root), ("source", Owners::Source)];
const OWNERS_NAMES: [&str; 2] = names(&OWNERS_MODES);

pub(super) fn decode_files(cx: &mut Cx<'_>, f: &Fields<'_>) -> Vec<FileEntry> {
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
                .fields(
                    v,
                    &FILE_ARTIFACT,
                    "write `{ artifact: name }` or `{ text: \"...\" }`",
                )
                .and_then(|af| match (af.get("artifact"), af.get("text")) {
                    (Some(a), None) => cx.spanned_text(a).map(FileRef::Artifact),
                    (None, Some(t)) => cx.spanned_text(t).map(FileRef::Text),
                    (None, None) => {
                        cx.err(
                            v,
                            "missing key 'artifact' or 'text'",
                            "add `artifact: <name>` or `text: \"...\"`",
                        );
                        None
                    }
                    (Some(_), Some(_)) => {
                        cx.err(
                            v,
                            "both 'artifact' and 'text'",
                            "keep one: a file is an artifact's bytes or a text",
                        );
                        None
                    }
                }),
            _ => cx.input_path(v, PathKind::FileOrDir).map(FileRef::Path),
        };
        if let (true, Some(source)) = (dest_ok, source) {
            out.push(FileEntry { dest, source });
        }
    }
    out
}

/// Destination paths inside a filesystem are absolute and normal.
pub(super) fn check_dest(cx: &mut Cx<'_>, dest: &Spanned<String>) -> bool {
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

pub(super) fn decode_ownership(cx: &mut Cx<'_>, f: &Fields<'_>) -> Ownership {
    let owners = f.get("owners").and_then(|n| {
        cx.choice(n, "an owners mode", &OWNERS_MODES)
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
            let Some(rf) = cx.fields(r, &RULE, "write `{ path: /etc/shadow, mode: \"0600\" }`")
            else {
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
pub(super) fn caps_look_valid(text: &str) -> bool {
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

/// `from:` (one directory or a list, merged in order) and `exclude:`
/// (absolute globs) of a filesystem or archive.
pub(super) fn decode_sources(cx: &mut Cx<'_>, f: &Fields<'_>) -> Sources {
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
