//! Differential test: one seeded random tree (see `support/random_tree.rs`)
//! is written to a host directory, built from that directory (`from:`) as
//! ext4 (1 KiB and 4 KiB blocks; default features, `^metadata_csum`,
//! `^dir_index`), as an uncompressed initramfs and (a FAT-shaped tree) as
//! vfat, and read back by independent tools: `e2fsck -fn` and debugfs
//! `rdump`, GNU `cpio -idm`, `fsck.fat -n` and `mcopy -s -m`. What comes
//! back is compared with the host directory, the input, seen through what
//! each format keeps:
//!
//! - ext4 through `rdump`: directories, files and symlinks with names,
//!   content, link targets, and for directories and files mode, owner and
//!   mtime (clamped to `SOURCE_DATE_EPOCH`). `rdump` copies hard links and
//!   skips devices, FIFOs and sockets; `ext4_prop.rs` checks those inode
//!   by inode.
//! - initramfs through `cpio -idm` (`owners: source`): every entry's name,
//!   type, mode, owner, mtime (clamped), content, target, device numbers,
//!   and which paths are hard links of one another (not directory times,
//!   which GNU cpio does not always restore, see `initramfs`).
//! - vfat through `mcopy`: names, directories, file content, and the
//!   file times, all `SOURCE_DATE_EPOCH` (FAT keeps no owners or modes).
//!
//! Seeds: `DIFF_SEEDS=1,2,3` (comma-separated), else a fixed set. A failing
//! seed is printed; add it to `REGRESSION_SEEDS` with the fix. Device nodes
//! and owners need root; elsewhere the trees leave them out. A missing tool
//! skips on a laptop and fails in CI.
//!
//! Rejected: comparing with the `Tree` the writer received (the scan is
//! part of what is tested), and running `image-composer` per image
//! (description plumbing is covered by build_e2e; the writers are what
//! differ here).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ext4_support;
#[path = "support/random_tree.rs"]
mod random_tree;
mod support;

use composer::fs::cpio::{Compression, InitramfsOptions};
use composer::fs::ext4::{Ext4Options, Features};
use composer::fs::tree::{scan, Timestamp, TreeOptions};
use composer::fs::vfat::{prepare as vfat_prepare, VfatOptions};
use composer::fs::Content;
use composer::output::window::Window;
use ext4_support::{assert_fsck_clean, build_into, ctx};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};
use random_tree::{build_tree, entry, fat_entry, write_host, Entry, Kind};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use support::{have, sparse_file};

/// Seeds that once failed (none yet).
const REGRESSION_SEEDS: &[u64] = &[];
/// Run in CI and by default.
const DEFAULT_SEEDS: &[u64] = &[1, 2, 3, 4, 5, 6];

fn seeds() -> Vec<u64> {
    match std::env::var("DIFF_SEEDS") {
        Ok(v) => v
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .expect("DIFF_SEEDS: comma-separated numbers")
            })
            .collect(),
        Err(_) => DEFAULT_SEEDS
            .iter()
            .chain(REGRESSION_SEEDS)
            .copied()
            .collect(),
    }
}

/// The entries of `seed`, bounded in size (sparse files below 8 MiB) and,
/// without root, without device nodes, foreign owners and modes that lock
/// the owner out.
fn entries(seed: u64, one: impl Strategy<Value = Entry>) -> Vec<Entry> {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        ProptestConfig::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &key),
    );
    let mut list = prop::collection::vec(one, 0..80)
        .new_tree(&mut runner)
        .unwrap()
        .current();
    let root = rustix::process::geteuid().is_root();
    for e in &mut list {
        if let Kind::Sparse(len, _) = &mut e.kind {
            *len = *len % (8 << 20) + 1;
        }
        if !root {
            e.uid = rustix::process::geteuid().as_raw();
            e.gid = rustix::process::getegid().as_raw();
            // The owner must read back what it wrote, and delete it.
            e.mode |= 0o700;
            if matches!(e.kind, Kind::Char(..) | Kind::Block(..)) {
                e.kind = Kind::Fifo;
            }
        }
    }
    list
}

/// One path as read from a host directory.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    /// `S_IFMT` bits.
    kind: u32,
    /// Permission bits.
    perm: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    /// File content or symlink target.
    data: Vec<u8>,
    rdev: u64,
    /// The first path (in name order) of this inode: hard links agree.
    first: Vec<u8>,
}

const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;

/// Every path below `root` (`/a/b`), with what lstat and read say.
fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Seen> {
    fn walk(
        dir: &Path,
        prefix: &[u8],
        firsts: &mut BTreeMap<(u64, u64), Vec<u8>>,
        out: &mut BTreeMap<Vec<u8>, Seen>,
    ) {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let mut path = prefix.to_vec();
            path.push(b'/');
            path.extend_from_slice(p.file_name().unwrap().as_bytes());
            let m = std::fs::symlink_metadata(&p).unwrap();
            let kind = m.mode() & S_IFMT;
            let data = match kind {
                S_IFREG => std::fs::read(&p).unwrap(),
                S_IFLNK => std::fs::read_link(&p)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
                _ => Vec::new(),
            };
            let first = firsts
                .entry((m.dev(), m.ino()))
                .or_insert_with(|| path.clone())
                .clone();
            out.insert(
                path.clone(),
                Seen {
                    kind,
                    perm: m.mode() & 0o7777,
                    uid: m.uid(),
                    gid: m.gid(),
                    mtime: m.mtime(),
                    data,
                    rdev: m.rdev(),
                    first,
                },
            );
            if kind == S_IFDIR {
                walk(&p, &path, firsts, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, b"", &mut BTreeMap::new(), &mut out);
    out
}

/// Asserts that `got` equals `want` path by path, naming the seed and the
/// first paths that differ.
fn compare(what: &str, seed: u64, want: &BTreeMap<Vec<u8>, Seen>, got: &BTreeMap<Vec<u8>, Seen>) {
    let mut diffs = Vec::new();
    for (p, w) in want {
        match got.get(p) {
            None => diffs.push(format!("missing {}", String::from_utf8_lossy(p))),
            Some(g) if g != w => diffs.push(format!(
                "{}: want {}\n   got {}",
                String::from_utf8_lossy(p),
                short(w),
                short(g)
            )),
            _ => {}
        }
    }
    for p in got.keys().filter(|p| !want.contains_key(*p)) {
        diffs.push(format!("unexpected {}", String::from_utf8_lossy(p)));
    }
    assert!(
        diffs.is_empty(),
        "{what}, seed {seed} (DIFF_SEEDS={seed}): {} differences:\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// `Seen` for messages: octal mode, data summed, paths as text.
fn short(s: &Seen) -> String {
    format!(
        "{:o} {}:{} mtime {} rdev {:x} data {} bytes (sum {}) first {}",
        s.kind | s.perm,
        s.uid,
        s.gid,
        s.mtime,
        s.rdev,
        s.data.len(),
        s.data.iter().map(|&b| u64::from(b)).sum::<u64>(),
        String::from_utf8_lossy(&s.first)
    )
}

/// A random tree written below `dir/in`; returns the path.
fn input(seed: u64, one: impl Strategy<Value = Entry>, dir: &Path) -> std::path::PathBuf {
    let sources = dir.join("sources");
    std::fs::create_dir(&sources).unwrap();
    let tree = build_tree(&entries(seed, one), &sources, &ctx());
    let input = dir.join("in");
    std::fs::create_dir(&input).unwrap();
    write_host(&tree, &input);
    input
}

fn clamp(sec: i64) -> i64 {
    Timestamp { sec, nsec: 0 }.clamped(&ctx()).sec
}

fn ext4(seed: u64, input: &Path, dir: &Path, block_size: u32, features: &[&str]) {
    let what = format!("ext4 {block_size} {features:?}");
    let tree = scan(input, &TreeOptions { xattrs: false }, &ctx()).unwrap();
    let opts = Ext4Options {
        block_size,
        features: Features::resolve(features).unwrap(),
        ..Default::default()
    };
    let img = dir.join("ext4.img");
    build_into(&img, &opts, Some(&tree), None);
    assert_fsck_clean(&img);
    let out = dir.join(format!("ext4-{block_size}-{}", features.join("")));
    std::fs::create_dir(&out).unwrap();
    let res = Command::new("debugfs")
        .arg("-R")
        .arg(format!("rdump / {}", out.display()))
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{what}: debugfs rdump: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let mut got = snapshot(&out);
    got.remove(b"/lost+found".as_slice());
    let keep = |s: &Seen| matches!(s.kind, S_IFDIR | S_IFREG | S_IFLNK);
    let norm = |p: &Vec<u8>, s: &Seen| {
        let mut s = s.clone();
        s.first = p.clone();
        // rdump drops set-id and sticky bits (debugfs' mode_xlate);
        // ext4_prop.rs compares whole modes with `ls -p`.
        s.perm &= 0o777;
        if s.kind == S_IFLNK {
            (s.perm, s.uid, s.gid, s.mtime) = (0, 0, 0, 0);
        }
        s
    };
    let want = snapshot(input)
        .iter()
        .filter(|(_, s)| keep(s))
        .map(|(p, s)| {
            let mut s = norm(p, s);
            if s.kind != S_IFLNK {
                s.mtime = clamp(s.mtime);
            }
            (p.clone(), s)
        })
        .collect();
    let got = got.iter().map(|(p, s)| (p.clone(), norm(p, s))).collect();
    compare(&what, seed, &want, &got);
}

fn initramfs(seed: u64, input: &Path, dir: &Path) {
    let opts = InitramfsOptions {
        name: "diff".into(),
        // `owners: source`: the scan's owners, kept.
        tree: Some(scan(input, &TreeOptions { xattrs: false }, &ctx()).unwrap()),
        compression: Compression::None,
        ..Default::default()
    };
    let archive = composer::fs::cpio::build(&opts, &ctx()).unwrap();
    let out = dir.join("cpio");
    std::fs::create_dir(&out).unwrap();
    let mut child = Command::new("cpio")
        .args(["-idm", "--quiet", "--no-absolute-filenames"])
        .current_dir(&out)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&archive).unwrap();
    let res = child.wait_with_output().unwrap();
    assert!(
        res.status.success(),
        "initramfs: cpio -idm: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    // GNU cpio 2.13 does not always restore a directory's time: not for
    // one holding a hard link whose data member comes later (seed 1), nor
    // one holding a long-named device node (seed 3), although `cpio -tv`
    // lists the right dates. Directory times are not compared here.
    let input = snapshot(input);
    let norm = |s: &Seen| {
        let mut s = s.clone();
        if s.kind == S_IFLNK {
            (s.perm, s.mtime) = (0, 0);
        }
        if s.kind == S_IFDIR {
            s.mtime = 0;
        }
        s
    };
    let want = input
        .iter()
        .map(|(p, s)| {
            let mut s = norm(s);
            if s.kind != S_IFLNK && s.kind != S_IFDIR {
                s.mtime = clamp(s.mtime);
            }
            (p.clone(), s)
        })
        .collect();
    let got = snapshot(&out)
        .iter()
        .map(|(p, s)| (p.clone(), norm(s)))
        .collect();
    compare("initramfs", seed, &want, &got);
}

fn vfat(seed: u64, input: &Path, dir: &Path) {
    let opts = VfatOptions {
        tree: Some(scan(input, &TreeOptions::default(), &ctx()).unwrap()),
        ..VfatOptions::new("diff")
    };
    let fs = vfat_prepare(&opts, &ctx()).unwrap();
    let size = fs.min_size();
    let img = dir.join("vfat.img");
    let file = sparse_file(&img, size);
    fs.write(&mut Window::new(&file, 0, size)).unwrap();
    let fsck = Command::new("fsck.fat")
        .arg("-n")
        .arg(&img)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&fsck.stdout).into_owned() + &String::from_utf8_lossy(&fsck.stderr);
    assert!(
        fsck.status.success() && text.lines().count() == 2,
        "vfat, seed {seed}: fsck.fat -n:\n{text}"
    );
    let out = dir.join("vfat");
    std::fs::create_dir(&out).unwrap();
    if !snapshot(input).is_empty() {
        let res = Command::new("mcopy")
            .args(["-s", "-m", "-n", "-i"])
            .arg(&img)
            .arg("::/*")
            .arg(&out)
            .env("MTOOLS_SKIP_CHECK", "1")
            .env("TZ", "UTC")
            .output()
            .unwrap();
        assert!(
            res.status.success(),
            "vfat, seed {seed}: mcopy: {}",
            String::from_utf8_lossy(&res.stderr)
        );
    }
    let epoch = clamp(i64::MAX);
    let norm = |p: &Vec<u8>, s: &Seen, keep_time: bool| Seen {
        kind: s.kind,
        perm: 0,
        uid: 0,
        gid: 0,
        mtime: if s.kind == S_IFREG && keep_time {
            s.mtime
        } else {
            0
        },
        data: s.data.clone(),
        rdev: 0,
        first: p.clone(),
    };
    let want = snapshot(input)
        .iter()
        .map(|(p, s)| {
            let mut s = norm(p, s, false);
            if s.kind == S_IFREG {
                s.mtime = epoch;
            }
            (p.clone(), s)
        })
        .collect();
    let got = snapshot(&out)
        .iter()
        .map(|(p, s)| (p.clone(), norm(p, s, true)))
        .collect();
    compare("vfat", seed, &want, &got);
}

#[test]
fn ext4_and_initramfs_read_back_like_the_input() {
    if !(have("e2fsck") && have("debugfs") && have("cpio")) {
        return;
    }
    for seed in seeds() {
        let dir = tempfile::tempdir().unwrap();
        let input = input(seed, entry(), dir.path());
        for (bs, features) in [
            (1024, &[][..]),
            (4096, &["^metadata_csum"][..]),
            (1024, &["^dir_index", "^metadata_csum"][..]),
            (4096, &["^dir_index"][..]),
        ] {
            ext4(seed, &input, dir.path(), bs, features);
        }
        initramfs(seed, &input, dir.path());
    }
}

#[test]
fn vfat_reads_back_like_the_input() {
    if !(have("fsck.fat") && have("mcopy")) {
        return;
    }
    for seed in seeds() {
        let dir = tempfile::tempdir().unwrap();
        let input = input(seed, fat_entry(), dir.path());
        vfat(seed, &input, dir.path());
    }
}
