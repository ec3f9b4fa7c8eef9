use super::*;

pub(super) const INITRAMFS: Section = Section {
    doc: "A cpio initramfs",
    keys: &[
        KeySpec {
            name: "from",
            kind: Kind::AnyOf(&[Kind::Path, Kind::List(&Kind::Path)]),
            doc: "A directory tree copied in (input path), or a list of trees merged in order",
        },
        EXCLUDE,
        FILES,
        KeySpec {
            name: "dirs",
            kind: Kind::List(&Kind::Text),
            doc: "Directories created",
        },
        KeySpec {
            name: "symlinks",
            kind: Kind::MapOf(&Kind::Text),
            doc: "Symbolic links: link path -> target",
        },
        KeySpec {
            name: "nodes",
            kind: Kind::List(&Kind::Map(&NODE)),
            doc: "Device nodes and fifos",
        },
        KeySpec {
            name: "busybox",
            kind: Kind::Path,
            doc: "A static busybox, installed as /bin/busybox with its applet links",
        },
        KeySpec {
            name: "modules",
            kind: Kind::Map(&MODULES),
            doc: "Kernel modules from a host lib/modules/<version> directory",
        },
        KeySpec {
            name: "init",
            kind: Kind::AnyOf(&[Kind::Path, Kind::Map(&INIT_SCRIPT)]),
            doc: "Installed as /init: an input path or { script: text }",
        },
        KeySpec {
            name: "compression",
            kind: Kind::Enum(&COMPRESSION_NAMES),
            doc: "Archive compression (default gzip)",
        },
        OWNERS,
        DEVICE_TABLE,
        RULES,
    ],
};

const NODE: Section = Section {
    doc: "A device node or fifo",
    keys: &[
        KeySpec {
            name: "path",
            kind: Kind::Text,
            doc: "Where, e.g. /dev/console",
        },
        KeySpec {
            name: "type",
            kind: Kind::Enum(&NODE_TYPE_NAMES),
            doc: "c (character), b (block) or p (fifo)",
        },
        KeySpec {
            name: "major",
            kind: Kind::Uint,
            doc: "Major number (devices)",
        },
        KeySpec {
            name: "minor",
            kind: Kind::Uint,
            doc: "Minor number (devices)",
        },
        KeySpec {
            name: "mode",
            kind: Kind::Mode,
            doc: "Permission bits in octal (default 0600)",
        },
        KeySpec {
            name: "uid",
            kind: Kind::Uint,
            doc: "Owner user id (default 0)",
        },
        KeySpec {
            name: "gid",
            kind: Kind::Uint,
            doc: "Owner group id (default 0)",
        },
    ],
};

const MODULES: Section = Section {
    doc: "Kernel modules for the initramfs",
    keys: &[
        KeySpec {
            name: "dir",
            kind: Kind::Path,
            doc: "The host lib/modules/<version> directory",
        },
        KeySpec {
            name: "load",
            kind: Kind::List(&Kind::Text),
            doc: "The modules to load at boot (their dependencies come along)",
        },
    ],
};

const INIT_SCRIPT: Section = Section {
    doc: "/init written inline",
    keys: &[KeySpec {
        name: "script",
        kind: Kind::Text,
        doc: "The text of /init",
    }],
};

/// `type:`'s values of a device node.
const NODE_TYPES: [(&str, NodeKind); 3] = [
    ("c", NodeKind::Char),
    ("b", NodeKind::Block),
    ("p", NodeKind::Fifo),
];
const NODE_TYPE_NAMES: [&str; 3] = names(&NODE_TYPES);

pub(super) fn decode_initramfs(cx: &mut Cx<'_>, node: &Node) -> Option<Initramfs> {
    let f = cx.fields(
        node,
        &INITRAMFS,
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
            &MODULES,
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
                &INIT_SCRIPT,
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

pub(super) fn decode_node(cx: &mut Cx<'_>, item: &Node) -> Option<DeviceNode> {
    let f = cx.fields(
        item,
        &NODE,
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
            cx.choice(n, "a device node type", &NODE_TYPES)
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
