//! Property test: random trees (see `support/random_tree.rs`) -> squashfs
//! with a random codec and block size -> `unsquashfs -lln` lists it and
//! `unsquashfs -d` (as root, so owners, devices and xattrs are restored)
//! extracts a tree identical to the source: names, kinds, modes, owners,
//! mtimes (seconds: squashfs keeps no more), contents, symlink targets,
//! device numbers, hard-link groups and xattrs. Two builds of the same
//! tree are bit-identical. 16 cases by default; `PROPTEST_CASES` raises it.
//!
//! When the test can loop-mount, the kernel's own squashfs reader is
//! compared the same way. Linux allows `user.*` xattrs only on files and
//! directories, so those are left out of the comparison on other kinds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/random_tree.rs"]
mod random_tree;
mod support;

use composer::fs::squashfs::{prepare, Codec, SquashfsOptions};
use composer::fs::tree::{self, NodeId, NodeKind, Tree, TreeOptions};
use composer::fs::{BuildContext, Content, FileSource};
use composer::ids::Seed;
use composer::output::window::Window;
use proptest::prelude::*;
use random_tree::{build_tree, entry, Entry};
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::process::Command;
use support::{have_all, run};

fn ctx() -> BuildContext {
    BuildContext {
        seed: Seed("squashfs-tests".into()),
        source_date_epoch: Some(1_700_000_000),
    }
}

/// Writes `tree` as squashfs into `img` at its minimum size.
fn build(img: &Path, opts: &SquashfsOptions, tree: &Tree) {
    let fs = prepare(opts, Some(tree), &ctx()).unwrap();
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(img)
        .unwrap();
    file.set_len(fs.min_size()).unwrap();
    let mut w = Window::new(&file, 0, fs.min_size());
    fs.write(&mut w).unwrap();
    assert_eq!(
        w.mapped().iter().collect::<Vec<_>>(),
        [(0, fs.min_size())],
        "every byte of the image is mapped"
    );
}

fn content(source: &FileSource) -> Vec<u8> {
    match source {
        FileSource::Bytes(b) => b.to_vec(),
        FileSource::Path(p) => std::fs::read(p).unwrap(),
    }
}

/// What must survive the round trip, per path. `kernel`: read through a
/// kernel mount, which shows a symlink's stored mode (an extraction cannot
/// chmod a symlink). Linux allows `user.*` xattrs only on files and
/// directories: neither an extraction nor a mount shows them elsewhere.
fn same_node(
    want: &Tree,
    w: NodeId,
    got: &Tree,
    g: NodeId,
    path: &str,
    kernel: bool,
) -> Result<(), TestCaseError> {
    let (a, b) = (want.node(w), got.node(g));
    // An extraction cannot chmod a symlink: it gets 0777.
    let symlink = matches!(a.kind, NodeKind::Symlink { .. });
    let want_mode = if symlink && !kernel {
        a.file_type() | 0o777
    } else {
        a.st_mode()
    };
    prop_assert_eq!(want_mode, b.st_mode(), "mode of {}", path);
    prop_assert_eq!((a.uid, a.gid), (b.uid, b.gid), "owner of {}", path);
    let sec = a.mtime.sec.clamp(0, i64::from(u32::MAX));
    prop_assert_eq!(sec, b.mtime.sec, "mtime of {}", path);
    match (&a.kind, &b.kind) {
        (NodeKind::File { source: sa, .. }, NodeKind::File { source: sb, .. }) => {
            prop_assert!(content(sa) == content(sb), "content of {}", path);
        }
        (NodeKind::Symlink { target: ta }, NodeKind::Symlink { target: tb }) => {
            prop_assert_eq!(ta, tb, "target of {}", path);
        }
        (
            NodeKind::CharDev { major, minor },
            NodeKind::CharDev {
                major: m2,
                minor: n2,
            },
        )
        | (
            NodeKind::BlockDev { major, minor },
            NodeKind::BlockDev {
                major: m2,
                minor: n2,
            },
        ) => {
            prop_assert_eq!((major, minor), (m2, n2), "device of {}", path);
        }
        _ => {}
    }
    let keep_user = matches!(a.kind, NodeKind::File { .. } | NodeKind::Dir { .. });
    let want_x: Vec<_> = a
        .xattrs
        .iter()
        .filter(|(k, _)| keep_user || !k.starts_with(b"user."))
        .collect();
    let got_x: Vec<_> = b.xattrs.iter().collect();
    prop_assert_eq!(want_x, got_x, "xattrs of {}", path);
    Ok(())
}

fn check(entries: &[Entry], codec: Codec, block_size: u32) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let tree = build_tree(entries, dir.path(), &ctx());
    let opts = SquashfsOptions {
        codec,
        block_size,
        ..Default::default()
    };
    let img = dir.path().join("fs.sqfs");
    build(&img, &opts, &tree);
    let again = dir.path().join("again.sqfs");
    build(&again, &opts, &tree);
    prop_assert!(
        std::fs::read(&img).unwrap() == std::fs::read(&again).unwrap(),
        "two builds differ"
    );

    let listing = run(Command::new("unsquashfs").arg("-lln").arg(&img));
    let out = dir.path().join("out");
    extract(&img, &out)?;
    compare(
        &tree,
        &out,
        false,
        &format!("the extraction; listing:\n{listing}"),
    )?;
    if let Some(mnt) = mount(&img, dir.path()) {
        let r = compare(&tree, &mnt, true, "kernel mount");
        run(Command::new("umount").arg(&mnt));
        r?;
    }
    Ok(())
}

/// `unsquashfs -d out img`. Setting `user.*` xattrs on a non-file fails
/// on the host (not in the image): those errors are let through, any other
/// one fails the case.
fn extract(img: &Path, out: &Path) -> Result<(), TestCaseError> {
    let o = Command::new("unsquashfs")
        .args(["-no-progress", "-ignore-errors", "-d"])
        .arg(out)
        .arg(img)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let bad: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("failed to write xattr user."))
        .collect();
    prop_assert!(
        matches!(o.status.code(), Some(0 | 2)) && bad.is_empty(),
        "unsquashfs failed ({}): {}",
        o.status,
        stderr
    );
    Ok(())
}

/// The extracted or mounted tree at `dir` matches `tree`.
fn compare(tree: &Tree, dir: &Path, kernel: bool, what: &str) -> Result<(), TestCaseError> {
    let got = tree::scan(
        dir,
        &TreeOptions { xattrs: true },
        &BuildContext {
            seed: Seed("x".into()),
            source_date_epoch: None,
        },
    )
    .unwrap();

    let want_paths = tree.walk();
    let got_paths: HashMap<Vec<u8>, NodeId> = got.walk().into_iter().collect();
    prop_assert_eq!(want_paths.len(), got_paths.len(), "entry count in {}", what);
    same_node(tree, tree::ROOT, &got, tree::ROOT, "/", kernel)?;
    let mut pairs: HashMap<NodeId, NodeId> = HashMap::new();
    for (path, w) in &want_paths {
        let shown = String::from_utf8_lossy(path).into_owned();
        let Some(&g) = got_paths.get(path) else {
            return Err(TestCaseError::fail(format!(
                "{shown} missing after extraction"
            )));
        };
        // Hard links: one source node <-> one extracted inode.
        match pairs.get(w) {
            Some(&prev) => prop_assert_eq!(prev, g, "hard link group of {}", shown),
            None => {
                prop_assert!(!pairs.values().any(|&v| v == g), "{} linked wrongly", shown);
                pairs.insert(*w, g);
            }
        }
        same_node(tree, *w, &got, g, &shown, kernel)?;
    }
    Ok(())
}

/// Loop-mounts `img` read-only (the kernel's squashfs reader); `None`
/// without root or loop devices, where the QEMU tests cover the kernel.
fn mount(img: &Path, dir: &Path) -> Option<std::path::PathBuf> {
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "squashfs", "-o", "loop,ro"])
        .arg(img)
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("note: cannot loop-mount; the kernel read-back is skipped");
    }
    ok.then_some(mnt)
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective uid.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "the squashfs round trip runs as root in CI"
        );
        eprintln!("note: not root, unsquashfs cannot restore owners; skipping");
    }
    root
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn random_trees_extract_identical_with_unsquashfs(
        entries in prop::collection::vec(entry(), 0..60),
        codec in prop::sample::select(vec![Codec::Gzip, Codec::Xz, Codec::Zstd, Codec::Lz4, Codec::None]),
        block_size in prop::sample::select(vec![4096u32, 65536, 131072, 1 << 20]),
    ) {
        if !have_all(&["unsquashfs"]) || !is_root() {
            return Ok(());
        }
        check(&entries, codec, block_size)?;
    }
}
