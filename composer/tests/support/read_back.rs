//! Reading a read-only filesystem image back and comparing it with the
//! tree it was made from, shared by the squashfs and EROFS round-trip
//! tests: build at the minimum size into a file, compare an extracted or
//! kernel-mounted tree node by node (names, kinds, modes, owners, mtimes,
//! contents, symlink targets, device numbers, hard-link groups, xattrs),
//! loop-mount as root.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use composer::fs::tree::{self, NodeId, NodeKind, Timestamp, Tree, TreeOptions};
use composer::fs::{BuildContext, Content, FileSource};
use composer::ids::Seed;
use composer::output::window::{Extents, Window};
use proptest::prelude::*;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a format and a reader keep.
#[derive(Clone, Copy)]
pub struct Keeps {
    /// Read through a kernel mount, which shows a symlink's stored mode (an
    /// extraction cannot chmod a symlink: it gets 0777).
    pub kernel: bool,
    /// The mtime a reader shows for one the tree holds.
    pub mtime: fn(Timestamp) -> Timestamp,
    /// The mode bits the reader restores: fsck.erofs 1.5 sets the mode
    /// before the owner, and `chown` clears setuid and setgid.
    pub mode_bits: u32,
    /// The reader recreates hard links (fsck.erofs 1.5 writes each path
    /// as a file of its own).
    pub hard_links: bool,
}

/// Writes `fs` into `img` at its minimum size; every byte is mapped.
pub fn write_image(img: &Path, fs: &dyn Content) {
    let mapped = write_sized(img, fs, fs.min_size());
    assert_eq!(
        mapped.iter().collect::<Vec<_>>(),
        [(0, fs.min_size())],
        "every byte of the image is mapped"
    );
}

/// Writes `fs` into a new `img` of `size` bytes; returns what it mapped.
pub fn write_sized(img: &Path, fs: &dyn Content, size: u64) -> Extents {
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(img)
        .unwrap();
    file.set_len(size).unwrap();
    let mut w = Window::new(&file, 0, size);
    fs.write(&mut w).unwrap();
    w.into_mapped()
}

fn content(source: &FileSource) -> Vec<u8> {
    match source {
        FileSource::Bytes(b) => b.to_vec(),
        FileSource::Path(p) => std::fs::read(p).unwrap(),
    }
}

/// What must survive the round trip, per path. Linux allows `user.*`
/// xattrs only on files and directories: neither an extraction nor a
/// mount shows them elsewhere.
fn same_node(
    want: &Tree,
    w: NodeId,
    got: &Tree,
    g: NodeId,
    path: &str,
    keeps: Keeps,
) -> Result<(), TestCaseError> {
    let (a, b) = (want.node(w), got.node(g));
    let symlink = matches!(a.kind, NodeKind::Symlink { .. });
    let want_mode = if symlink && !keeps.kernel {
        a.file_type() | 0o777
    } else {
        a.st_mode()
    };
    let mask = !0o7777 | keeps.mode_bits;
    prop_assert_eq!(want_mode & mask, b.st_mode() & mask, "mode of {}", path);
    prop_assert_eq!((a.uid, a.gid), (b.uid, b.gid), "owner of {}", path);
    prop_assert_eq!((keeps.mtime)(a.mtime), b.mtime, "mtime of {}", path);
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

/// The extracted or mounted tree at `dir` matches `tree`; `xattrs`: the
/// reader restores them.
pub fn compare(
    tree: &Tree,
    dir: &Path,
    keeps: Keeps,
    xattrs: bool,
    what: &str,
) -> Result<(), TestCaseError> {
    let got = tree::scan(
        dir,
        &TreeOptions { xattrs },
        &BuildContext {
            seed: Seed("x".into()),
            source_date_epoch: None,
        },
    )
    .unwrap();
    let strip = |t: &Tree| {
        let mut t = t.clone();
        if !xattrs {
            for (_, id) in t.walk() {
                t.node_mut(id).xattrs.clear();
            }
            t.node_mut(tree::ROOT).xattrs.clear();
        }
        t
    };
    let want = strip(tree);
    let want_paths = want.walk();
    let got_paths: HashMap<Vec<u8>, NodeId> = got.walk().into_iter().collect();
    prop_assert_eq!(want_paths.len(), got_paths.len(), "entry count in {}", what);
    same_node(&want, tree::ROOT, &got, tree::ROOT, "/", keeps)?;
    let mut pairs: HashMap<NodeId, NodeId> = HashMap::new();
    for (path, w) in &want_paths {
        let shown = String::from_utf8_lossy(path).into_owned();
        let Some(&g) = got_paths.get(path) else {
            return Err(TestCaseError::fail(format!("{shown} missing in {what}")));
        };
        // Hard links: one source node <-> one extracted inode.
        match pairs.get(w).filter(|_| keeps.hard_links) {
            Some(&prev) => prop_assert_eq!(prev, g, "hard link group of {}", shown),
            None => {
                prop_assert!(
                    !keeps.hard_links || !pairs.values().any(|&v| v == g),
                    "{} linked wrongly",
                    shown
                );
                pairs.insert(*w, g);
            }
        }
        same_node(&want, *w, &got, g, &shown, keeps)?;
    }
    Ok(())
}

/// Loop-mounts `img` read-only as `fstype` (the kernel's reader); `None`
/// without root or loop devices, where the QEMU tests cover the kernel.
pub fn mount(img: &Path, dir: &Path, fstype: &str) -> Option<PathBuf> {
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", fstype, "-o", "loop,ro"])
        .arg(img)
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("note: cannot loop-mount; the kernel read-back is skipped");
    }
    ok.then_some(mnt)
}

/// Unmounts what [`mount`] mounted, waiting while it is busy: a child
/// that another test thread forked holds a copy of every descriptor open
/// at that moment (a file this test was reading under `mnt`) until its
/// exec closes it, which takes a while on a loaded machine.
pub fn unmount(mnt: &Path) {
    for _ in 0..50 {
        let o = Command::new("umount").arg(mnt).output().unwrap();
        if o.status.success() {
            return;
        }
        let why = String::from_utf8_lossy(&o.stderr);
        assert!(why.contains("busy"), "umount {}: {why}", mnt.display());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("umount {}: still busy after 5 s", mnt.display());
}

/// `PROPTEST_CASES`, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// True as root (extractions restore owners and devices only then); a
/// failure in CI otherwise.
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective uid.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "the read-back tests run as root in CI"
        );
        eprintln!("note: not root, extractions cannot restore owners; skipping");
    }
    root
}
