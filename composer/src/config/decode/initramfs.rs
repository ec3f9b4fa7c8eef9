use super::*;

pub(super) const INITRAMFS_KEYS: [&str; 12] = [
    "from",
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
pub(super) const NODE_KEYS: [&str; 7] = ["path", "type", "major", "minor", "mode", "uid", "gid"];

pub(super) fn decode_initramfs(cx: &mut Cx<'_>, node: &Node) -> Option<Initramfs> {
    let f = cx.fields(
        node,
        &INITRAMFS_KEYS,
        "write `initramfs: { busybox: ..., init: ... }`",
    )?;
    let from = f.get("from").and_then(|n| cx.input_path(n, PathKind::Dir));
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
        from,
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
