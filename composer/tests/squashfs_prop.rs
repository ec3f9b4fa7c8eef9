//! Property test: random trees (see `support/random_tree.rs`) -> squashfs
//! with a random codec and block size -> `unsquashfs -lln` lists it and
//! `unsquashfs -d` (as root, so owners, devices and xattrs are restored)
//! extracts a tree identical to the source: names, kinds, modes, owners,
//! mtimes (seconds: squashfs keeps no more), contents, symlink targets,
//! device numbers, hard-link groups and xattrs. Two builds of the same
//! tree are bit-identical. 16 cases by default; `PROPTEST_CASES` raises it.
//!
//! Files with the same content share their blocks and fragment (mksquashfs's
//! duplicate detection): a fixed tree of copies, near-copies, sparse copies
//! and hard links reads back the same way and costs no more than its
//! distinct contents.
//!
//! When the test can loop-mount, the kernel's own squashfs reader is
//! compared the same way. Linux allows `user.*` xattrs only on files and
//! directories, so those are left out of the comparison on other kinds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/random_tree.rs"]
mod random_tree;
#[path = "support/read_back.rs"]
mod read_back;
mod support;

use composer::fs::squashfs::{prepare, Codec, SquashfsOptions};
use composer::fs::tree::{Timestamp, Tree};
use composer::fs::BuildContext;
use composer::ids::Seed;
use proptest::prelude::*;
use random_tree::{build_tree, entry, Entry, Kind};
use read_back::{cases, compare, is_root, mount, unmount, write_image, Keeps};
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
    write_image(img, &prepare(opts, Some(tree), &ctx()).unwrap());
}

/// Squashfs keeps seconds in 32 bits.
fn seconds(t: Timestamp) -> Timestamp {
    Timestamp {
        sec: t.sec.clamp(0, i64::from(u32::MAX)),
        nsec: 0,
    }
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
    let keeps = Keeps {
        kernel: false,
        mtime: seconds,
        mode_bits: 0o7777,
        hard_links: true,
    };
    compare(
        &tree,
        &out,
        keeps,
        true,
        &format!("the extraction; listing:\n{listing}"),
    )?;
    if let Some(mnt) = mount(&img, dir.path(), "squashfs") {
        let keeps = Keeps {
            kernel: true,
            ..keeps
        };
        let r = compare(&tree, &mnt, keeps, true, "kernel mount");
        unmount(&mnt);
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

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(16), ..ProptestConfig::default() })]

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

/// Copies of a file (here, in a subdirectory, sparse, hard-linked) are
/// stored once and read back as themselves; a copy that differs in its
/// last byte is stored on its own.
#[test]
fn duplicate_files_are_stored_once_and_read_back() {
    if !have_all(&["unsquashfs"]) || !is_root() {
        return;
    }
    // Incompressible bytes (xorshift), 2 blocks of 128 KiB and a tail.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let content: Vec<u8> = (0..300_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut near = content.clone();
    *near.last_mut().unwrap() ^= 1;
    let sparse = Kind::Sparse(1 << 20, vec![(4096, 7, 5000), (700_000, 9, 300)]);
    let e = |parent: usize, name: &str, kind: Kind| Entry {
        parent,
        name: name.as_bytes().to_vec(),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: (1_600_000_000, 0),
        xattrs: Vec::new(),
    };
    let distinct = vec![
        e(0, "d", Kind::Dir),
        e(0, "a", Kind::File(content.clone())),
        e(0, "near", Kind::File(near)),
        e(0, "sparse1", sparse.clone()),
    ];
    let mut copies = distinct.clone();
    copies.extend([
        e(0, "b", Kind::File(content.clone())),
        e(1, "c", Kind::File(content)),
        e(0, "sparse2", sparse),
        e(1, "link", Kind::Link(0)),
    ]);
    for codec in [Codec::Gzip, Codec::None] {
        check(&copies, codec, 131_072).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let opts = SquashfsOptions {
            codec,
            ..Default::default()
        };
        let size = |entries: &[Entry]| {
            let tree = build_tree(entries, dir.path(), &ctx());
            prepare(&opts, Some(&tree), &ctx()).unwrap().bytes_used()
        };
        let (one, all) = (size(&distinct), size(&copies));
        assert!(
            all < one + 4096,
            "{codec:?}: copies take {all} bytes, their distinct contents {one}"
        );
    }
}

/// A device number squashfs cannot hold (12-bit major, 20-bit minor) is
/// refused with the node's path; the largest one that fits is written.
#[test]
fn device_numbers_beyond_squashfs_fields_are_refused_by_path() {
    use composer::fs::tree::{Node, NodeKind};
    let t = Timestamp { sec: 0, nsec: 0 };
    for (major, minor, fits) in [
        (0xfff, 0xf_ffff, true),
        (0x1000, 0, false),
        (1, 0x10_0000, false),
    ] {
        let mut tree = Tree::empty(&ctx());
        tree.insert(
            "/tty",
            Node::new(NodeKind::CharDev { major, minor }, 0o600, t),
        )
        .unwrap();
        let r = prepare(&SquashfsOptions::default(), Some(&tree), &ctx());
        match (fits, r) {
            (true, r) => assert!(r.is_ok(), "{major}:{minor}: {:?}", r.err()),
            (false, Ok(_)) => panic!("{major}:{minor} was accepted"),
            (false, Err(e)) => {
                let msg = format!("{e:#}");
                assert!(
                    msg.contains(&format!("'/tty': device {major}:{minor} does not fit")),
                    "{msg}"
                );
            }
        }
    }
}
