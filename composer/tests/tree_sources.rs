//! `from:` lists (trees merged in order) and `exclude:` globs, through the
//! binary, for every kind that takes a tree: ext4, squashfs, EROFS, the
//! initramfs and vfat are built from the same description and read back by
//! tools nobody here wrote (debugfs and e2fsck -fn, unsquashfs,
//! fsck.erofs --extract, GNU cpio, mtools). The expected trees are written
//! out by hand from the rules in docs/config.md, not taken from a writer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use support::{composer, have_all, run};

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// Every entry below `root`: `d`, `f <content>` or `l <target>`.
fn listing(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = format!("/{}", path.strip_prefix(root).unwrap().display());
            let meta = fs::symlink_metadata(&path).unwrap();
            let what = if meta.is_dir() {
                stack.push(path.clone());
                "d".to_string()
            } else if meta.file_type().is_symlink() {
                format!("l {}", fs::read_link(&path).unwrap().display())
            } else {
                format!("f {}", fs::read_to_string(&path).unwrap())
            };
            out.insert(rel, what);
        }
    }
    out
}

fn expected(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(p, w)| (p.to_string(), w.to_string()))
        .collect()
}

/// The rootfs and its board overlay: a merged-/usr tree with a hard-linked
/// tool (one name under /boot, excluded; one replaced by the overlay).
fn trees(dir: &Path) {
    let base = dir.join("base");
    write(&base, "boot/Image", "kernel");
    write(&base, "boot/dtbs/x.dtb", "dtb");
    write(&base, "etc/hostname", "base");
    write(&base, "etc/keep", "keep");
    write(&base, "usr/bin/tool", "tool");
    fs::hard_link(base.join("usr/bin/tool"), base.join("usr/bin/alias")).unwrap();
    fs::hard_link(base.join("usr/bin/tool"), base.join("boot/tool")).unwrap();
    std::os::unix::fs::symlink("usr/bin", base.join("bin")).unwrap();
    write(&base, "var/cache/apt/pkg", "pkg");
    write(&base, "var/cache/.stamp", "s");
    write(&base, "var/log/messages", "log");
    write(&base, "opt/old/f", "old");
    write(&base, "data", "a file");
    let over = dir.join("overlay");
    write(&over, "etc/hostname", "board");
    write(&over, "bin/extra", "extra");
    write(&over, "opt", "opt file");
    write(&over, "data/sub/one", "1");
    fs::hard_link(over.join("data/sub/one"), over.join("data/two")).unwrap();
    write(&over, "usr/bin/alias", "new alias");
    let fw = dir.join("fw");
    write(&fw, "config.txt", "fw");
    write(&fw, "overlays/a.dtbo", "a");
    write(&fw, "cache/x", "x");
    let board = dir.join("board");
    write(&board, "config.txt", "board");
    write(&board, "overlays/b.dtbo", "b");
}

const ROOT_EXPECTED: [(&str, &str); 16] = [
    ("/bin", "l usr/bin"),
    ("/data", "d"),
    ("/data/sub", "d"),
    ("/data/sub/one", "f 1"),
    ("/data/two", "f 1"),
    ("/etc", "d"),
    ("/etc/hostname", "f board"),
    ("/etc/keep", "f keep"),
    ("/opt", "f opt file"),
    ("/usr", "d"),
    ("/usr/bin", "d"),
    ("/usr/bin/alias", "f new alias"),
    ("/usr/bin/extra", "f extra"),
    ("/usr/bin/tool", "f tool"),
    ("/var", "d"),
    ("/var/cache", "d"),
];

#[test]
fn merged_and_excluded_trees_read_back_by_independent_tools() {
    if !have_all(&[
        "debugfs",
        "e2fsck",
        "unsquashfs",
        "fsck.erofs",
        "cpio",
        "mcopy",
    ]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    trees(d);
    let tree = "from: [base, overlay], exclude: [/boot, \"/var/cache/**\", /var/log/]";
    let yaml = format!(
        "image: {{ name: t }}\n\
         artifacts:\n\
         \x20 root: {{ fs: {{ type: ext4, {tree} }}, output: root.ext4 }}\n\
         \x20 sq: {{ fs: {{ type: squashfs, {tree} }}, output: root.sqfs }}\n\
         \x20 ero: {{ fs: {{ type: erofs, {tree} }}, output: root.erofs }}\n\
         \x20 ird: {{ initramfs: {{ {tree}, compression: none }}, output: ird.cpio }}\n\
         \x20 boot: {{ fs: {{ type: vfat, from: [fw, board], exclude: [/cache] }}, output: boot.vfat }}\n\
         partitions:\n\
         \x20 - {{ name: root, artifact: root }}\n"
    );
    fs::write(d.join("board.yaml"), yaml).unwrap();
    let out = d.join("out");
    let result = composer(&[
        "build",
        d.join("board.yaml").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let mut root = expected(&ROOT_EXPECTED);
    // /var/log stays, emptied (the trailing slash).
    root.insert("/var/log".into(), "d".into());

    // ext4: e2fsck, debugfs rdump, and link counts from debugfs stat.
    let img = out.join("root.ext4");
    run(Command::new("e2fsck").arg("-fn").arg(&img));
    let x = d.join("x-ext4");
    fs::create_dir(&x).unwrap();
    run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("rdump / {}", x.display()))
        .arg(&img));
    let mut got = listing(&x);
    got.remove("/lost+found");
    assert_eq!(got, root, "ext4");
    for (path, links) in [
        ("/data/two", 2),
        ("/usr/bin/tool", 1),
        ("/usr/bin/alias", 1),
    ] {
        let stat = run(Command::new("debugfs")
            .arg("-R")
            .arg(format!("stat {path}"))
            .arg(&img));
        assert!(
            stat.contains(&format!("Links: {links} ")),
            "ext4 {path}: {stat}"
        );
    }

    // squashfs and the initramfs keep hard links: read the counts back.
    let x = d.join("x-sqfs");
    run(Command::new("unsquashfs")
        .arg("-no-xattrs")
        .arg("-d")
        .arg(&x)
        .arg(out.join("root.sqfs")));
    assert_eq!(listing(&x), root, "squashfs");
    let x_cpio = d.join("x-cpio");
    fs::create_dir(&x_cpio).unwrap();
    run(Command::new("sh")
        .current_dir(&x_cpio)
        .arg("-c")
        .arg("cpio -idm --quiet --no-absolute-filenames < ../out/ird.cpio"));
    assert_eq!(listing(&x_cpio), root, "initramfs");
    for x in [&x, &x_cpio] {
        for (path, links) in [("data/two", 2), ("usr/bin/tool", 1), ("usr/bin/alias", 1)] {
            assert_eq!(
                fs::metadata(x.join(path)).unwrap().nlink(),
                links,
                "{}: {path}",
                x.display()
            );
        }
    }

    // EROFS (fsck.erofs 1.5 writes hard links as separate files).
    let x = d.join("x-erofs");
    run(Command::new("fsck.erofs")
        .arg(format!("--extract={}", x.display()))
        .arg(out.join("root.erofs")));
    assert_eq!(listing(&x), root, "erofs");

    // vfat: mtools copies the whole filesystem out.
    let x = d.join("x-vfat");
    fs::create_dir(&x).unwrap();
    run(Command::new("mcopy")
        .args(["-s", "-n", "-i"])
        .arg(out.join("boot.vfat"))
        .arg("::/")
        .arg(&x));
    assert_eq!(
        listing(&x),
        expected(&[
            ("/config.txt", "f board"),
            ("/overlays", "d"),
            ("/overlays/a.dtbo", "f a"),
            ("/overlays/b.dtbo", "f b"),
        ]),
        "vfat"
    );
}

/// Builds `yaml` (written to `dir/board.yaml`) into `dir/out`.
fn build(dir: &Path, yaml: &str) -> std::path::PathBuf {
    fs::write(dir.join("board.yaml"), yaml).unwrap();
    let out = dir.join("out");
    let result = composer(&[
        "build",
        dir.join("board.yaml").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    out
}

#[test]
fn files_naming_a_directory_copy_it_for_every_kind() {
    if !have_all(&[
        "debugfs",
        "e2fsck",
        "unsquashfs",
        "fsck.erofs",
        "cpio",
        "mcopy",
    ]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("small"), "etc/hostname", "h");
    write(&d.join("small"), "opt/old", "o");
    write(&d.join("app"), "run.sh", "run");
    write(&d.join("app"), "lib/x.so", "x");
    write(d, "motd.txt", "motd");
    let content = "from: small, files: { /opt/app: app/, /etc/motd: motd.txt }";
    let out = build(
        d,
        &format!(
            "image: {{ name: t }}\n\
             artifacts:\n\
             \x20 root: {{ fs: {{ type: ext4, {content} }}, output: root.ext4 }}\n\
             \x20 sq: {{ fs: {{ type: squashfs, {content} }}, output: root.sqfs }}\n\
             \x20 ero: {{ fs: {{ type: erofs, {content} }}, output: root.erofs }}\n\
             \x20 ird: {{ initramfs: {{ {content}, compression: none }}, output: ird.cpio }}\n\
             \x20 boot: {{ fs: {{ type: vfat, {content} }}, output: boot.vfat }}\n\
             partitions:\n\
             \x20 - {{ name: root, artifact: root }}\n"
        ),
    );
    let want = expected(&[
        ("/etc", "d"),
        ("/etc/hostname", "f h"),
        ("/etc/motd", "f motd"),
        ("/opt", "d"),
        ("/opt/old", "f o"),
        ("/opt/app", "d"),
        ("/opt/app/run.sh", "f run"),
        ("/opt/app/lib", "d"),
        ("/opt/app/lib/x.so", "f x"),
    ]);
    let img = out.join("root.ext4");
    run(Command::new("e2fsck").arg("-fn").arg(&img));
    let x = d.join("x-ext4");
    fs::create_dir(&x).unwrap();
    run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("rdump / {}", x.display()))
        .arg(&img));
    let mut got = listing(&x);
    got.remove("/lost+found");
    assert_eq!(got, want, "ext4");
    let x = d.join("x-sqfs");
    run(Command::new("unsquashfs")
        .arg("-no-xattrs")
        .arg("-d")
        .arg(&x)
        .arg(out.join("root.sqfs")));
    assert_eq!(listing(&x), want, "squashfs");
    let x = d.join("x-erofs");
    run(Command::new("fsck.erofs")
        .arg(format!("--extract={}", x.display()))
        .arg(out.join("root.erofs")));
    assert_eq!(listing(&x), want, "erofs");
    let x = d.join("x-cpio");
    fs::create_dir(&x).unwrap();
    run(Command::new("sh")
        .current_dir(&x)
        .arg("-c")
        .arg("cpio -idm --quiet --no-absolute-filenames < ../out/ird.cpio"));
    assert_eq!(listing(&x), want, "initramfs");
    let x = d.join("x-vfat");
    fs::create_dir(&x).unwrap();
    run(Command::new("mcopy")
        .args(["-s", "-n", "-i"])
        .arg(out.join("boot.vfat"))
        .arg("::/")
        .arg(&x));
    assert_eq!(listing(&x), want, "vfat");
}

fn validate(dir: &Path, yaml: &str) -> (i32, String) {
    fs::write(dir.join("board.yaml"), yaml).unwrap();
    let out = composer(&["validate", dir.join("board.yaml").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stderr).replace(&format!("{}/", dir.display()), "");
    (out.status.code().unwrap(), text)
}

#[test]
fn exclude_patterns_are_checked_where_they_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    trees(d);
    // Written wrong: relative (wic's spelling), the root, `..`; and
    // `exclude:` without a tree. All reported in one run.
    let (code, text) = validate(
        d,
        "image: { name: t }\n\
         partitions:\n\
         \x20 - { name: a, fs: { type: ext4, from: base, exclude: [boot, /, /a/../b] } }\n\
         \x20 - { name: b, fs: { type: squashfs, exclude: [/boot] } }\n\
         \x20 - { name: c, fs: { type: erofs, from: [] } }\n",
    );
    assert_eq!(code, 2, "{text}");
    for line in [
        "board.yaml:3:56: partitions[0].fs.exclude[0]: \"boot\" is not an absolute path\n  help: write it from the tree's root, \"/boot\" (wic's --exclude-path=boot is /boot here)",
        "board.yaml:3:62: partitions[0].fs.exclude[1]: \"/\" would leave out the whole tree",
        "board.yaml:3:65: partitions[0].fs.exclude[2]: \"/a/../b\" has an empty, '.' or '..' component",
        "board.yaml:4:47: partitions[1].fs.exclude: `exclude:` without `from:` has nothing to leave out\n  help: add `from:` with the tree, or remove `exclude:`",
        "board.yaml:5:41: partitions[2].fs.from: `from: []` names no tree",
    ] {
        assert!(text.contains(line), "missing:\n{line}\nin:\n{text}");
    }
    // Matching nothing: every such pattern, at the pattern, for every kind.
    let (code, text) = validate(
        d,
        "image: { name: t }\n\
         artifacts:\n\
         \x20 ird: { initramfs: { from: [base, overlay], exclude: [/boot, /etc/hostnme, /data/sub/one/] } }\n\
         \x20 fw: { fs: { type: vfat, from: fw, exclude: [/overlay] } }\n\
         partitions:\n\
         \x20 - { name: a, fs: { type: ext4, from: base, exclude: [\"/usr/*/tol\"] } }\n",
    );
    assert_eq!(code, 2, "{text}");
    for line in [
        "board.yaml:3:63: artifacts.ird.initramfs.exclude[1]: \"/etc/hostnme\" matches nothing in the merged trees\n  help: fix the glob",
        "board.yaml:3:77: artifacts.ird.initramfs.exclude[2]: \"/data/sub/one/\" names no directory of the tree",
        "board.yaml:4:47: artifacts.fw.fs.exclude[0]: \"/overlay\" matches nothing in the tree",
        "board.yaml:6:56: partitions[0].fs.exclude[0]: \"/usr/*/tol\" matches nothing in the tree",
    ] {
        assert!(text.contains(line), "missing:\n{line}\nin:\n{text}");
    }
    assert!(!text.contains("/boot\""), "{text}");
}
