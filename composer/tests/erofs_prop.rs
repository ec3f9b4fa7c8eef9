//! Property test: random trees (see `support/random_tree.rs`) -> EROFS ->
//! `fsck.erofs` checks it and `fsck.erofs --extract` (as root, so owners
//! and devices are restored) extracts a tree identical to the source:
//! names, kinds, modes (but setuid and setgid, which its `chown` after
//! `chmod` clears), owners, mtimes (with nanoseconds), contents,
//! symlink targets and device numbers (hard links come out as copies).
//! Two builds of the
//! same tree are bit-identical. Each case picks no compression, lz4 or
//! lz4hc and a 4, 16 or 64 KiB physical cluster (compressed cases cap
//! sparse files at 2 MiB to stay fast). 16 cases by default;
//! `PROPTEST_CASES` raises it. `lz4_files_read_back_through_the_kernel`
//! covers LZ4 block ends on fixed contents (text, runs in zeros, noise).
//!
//! When the test can loop-mount, the kernel's own EROFS reader is compared
//! the same way, xattrs included (fsck.erofs 1.5 extracts none). Linux
//! allows `user.*` xattrs only on files and directories, so those are left
//! out of the comparison on other kinds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/random_tree.rs"]
mod random_tree;
#[path = "support/read_back.rs"]
mod read_back;
mod support;

use composer::fs::erofs::{prepare, Compression, ErofsOptions};
use composer::fs::tree::{Timestamp, Tree};
use composer::fs::BuildContext;
use composer::ids::Seed;
use proptest::prelude::*;
use random_tree::{build_tree, entry, Entry};
use read_back::{cases, compare, is_root, mount, unmount, write_image, Keeps};
use std::path::Path;
use std::process::Command;
use support::{have_all, run};

fn ctx() -> BuildContext {
    BuildContext {
        seed: Seed("erofs-tests".into()),
        source_date_epoch: Some(1_700_000_000),
    }
}

/// Writes `tree` as EROFS into `img` at its minimum size.
fn build(img: &Path, opts: &ErofsOptions, tree: &Tree) {
    write_image(img, &prepare(opts, Some(tree), &ctx()).unwrap());
}

/// EROFS keeps the whole mtime.
fn exact(t: Timestamp) -> Timestamp {
    t
}

fn check(entries: &[Entry], opts: &ErofsOptions) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let tree = build_tree(entries, dir.path(), &ctx());
    let img = dir.path().join("fs.erofs");
    build(&img, opts, &tree);
    let again = dir.path().join("again.erofs");
    build(&again, opts, &tree);
    prop_assert!(
        std::fs::read(&img).unwrap() == std::fs::read(&again).unwrap(),
        "two builds differ"
    );

    let out = dir.path().join("out");
    let o = Command::new("fsck.erofs")
        .arg(format!("--extract={}", out.display()))
        .arg(&img)
        .output()
        .unwrap();
    prop_assert!(
        o.status.success(),
        "fsck.erofs failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let superblock = run(Command::new("dump.erofs").arg("-s").arg(&img));
    let keeps = Keeps {
        kernel: false,
        mtime: exact,
        mode_bits: 0o1777,
        hard_links: false,
    };
    compare(
        &tree,
        &out,
        keeps,
        false,
        &format!("the extraction; superblock:\n{superblock}"),
    )?;
    if let Some(mnt) = mount(&img, dir.path(), "erofs") {
        let keeps = Keeps {
            kernel: true,
            mode_bits: 0o7777,
            hard_links: true,
            ..keeps
        };
        let r = compare(&tree, &mnt, keeps, true, "kernel mount");
        unmount(&mnt);
        r?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(16), ..ProptestConfig::default() })]

    #[test]
    fn random_trees_extract_identical_with_fsck_erofs(
        entries in prop::collection::vec(entry(), 0..60),
        compression in prop::sample::select(vec![Compression::None, Compression::Lz4, Compression::Lz4hc]),
        pcluster_size in prop::sample::select(vec![4096u32, 16384, 65536]),
    ) {
        if !have_all(&["fsck.erofs", "dump.erofs"]) || !is_root() {
            return Ok(());
        }
        let opts = ErofsOptions { compression, pcluster_size, ..Default::default() };
        // Compressing 64 MiB sparse files dominates the run time: compressed
        // cases cap them at 2 MiB (still several extents and segments' worth
        // of zeros and runs).
        let entries: Vec<Entry> = if compression == Compression::None {
            entries
        } else {
            entries.into_iter().map(|mut e| {
                if let random_tree::Kind::Sparse(size, _) = &mut e.kind {
                    *size = (*size).min(2 << 20);
                }
                e
            }).collect()
        };
        check(&entries, &opts)?;
    }
}

/// A file with `content` in the root, default metadata.
fn file_entry(name: &str, content: Vec<u8>) -> Entry {
    Entry {
        parent: 0,
        name: name.as_bytes().to_vec(),
        kind: random_tree::Kind::File(content),
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: (1_700_000_000, 0),
        xattrs: Vec::new(),
    }
}

/// Contents that exercise the LZ4 encoder's block ends: text-like
/// repeats with noise, runs in zeros (what sparse files hold), noise.
fn lz4_contents() -> Vec<(&'static str, Vec<u8>)> {
    let mut x: u32 = 7;
    let mut rand = move || {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (x >> 16) as u8
    };
    let text: Vec<u8> = (0..300_000u32)
        .map(|i| {
            if i % 7 == 0 {
                rand()
            } else {
                b"abcdefgh"[(i % 8) as usize]
            }
        })
        .collect();
    let mut runs = vec![0u8; 1 << 20];
    for k in 0..40usize {
        let at = (k * 26_111) % runs.len();
        let len = (k * 977 % 9000 + 1).min(runs.len() - at);
        runs[at..at + len].fill(rand() | 1);
    }
    let noise: Vec<u8> = (0..50_000).map(|_| rand()).collect();
    let mut mixed = noise.clone();
    mixed.extend(vec![0u8; 70_000]);
    mixed.extend(&text[..90_000]);
    let steps: Vec<u8> = (0..200_000u32).map(|i| (i / 3 % 251) as u8).collect();
    vec![
        ("text", text),
        ("runs", runs),
        ("noise", noise),
        ("mixed", mixed),
        ("steps", steps),
    ]
}

#[test]
fn lz4_files_read_back_through_the_kernel() {
    if !have_all(&["fsck.erofs", "dump.erofs"]) || !is_root() {
        return;
    }
    for compression in [Compression::Lz4, Compression::Lz4hc] {
        for pcluster_size in [4096u32, 16384, 65536] {
            let opts = ErofsOptions {
                compression,
                pcluster_size,
                ..Default::default()
            };
            for (name, content) in lz4_contents() {
                check(&[file_entry(name, content)], &opts)
                    .unwrap_or_else(|e| panic!("{name}, {compression:?}, {pcluster_size}: {e}"));
            }
        }
    }
}
