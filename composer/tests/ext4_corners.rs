//! ext4 corners found by randomized differential testing (issue 12): each
//! test builds the case, checks it with `e2fsck -fn` and reads it back with
//! `debugfs`, or asserts the error names the path and the fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ext4_support;

use composer::fs::ext4::{prepare, profile_inode_ratio, Ext4Options, Features, Journal};
use composer::fs::tree::{Node, NodeKind, Timestamp, Tree};
use composer::fs::FileSource;
use ext4_support::*;
use std::collections::BTreeMap;
use std::sync::Arc;

fn file_node(bytes: &[u8]) -> Node {
    Node::new(
        NodeKind::File {
            source: FileSource::Bytes(Arc::new(bytes.to_vec())),
            size: bytes.len() as u64,
        },
        0o644,
        Timestamp {
            sec: 1_600_000_000,
            nsec: 0,
        },
    )
}

/// The value after `key` in debugfs output (`Inode count: 5` -> "5").
fn field(text: &str, key: &str) -> String {
    let at = text
        .find(key)
        .unwrap_or_else(|| panic!("no '{key}' in:\n{text}"));
    text[at + key.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_lost_found_that_is_not_a_directory_is_refused_by_name() {
    let mut tree = Tree::empty(&ctx());
    tree.insert("/lost+found", file_node(b"x")).unwrap();
    let err = prepare(&Ext4Options::default(), Some(&tree), &ctx()).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("'/lost+found' in the tree is a regular file, not a directory")
            && text.contains("remove or rename it"),
        "{text}"
    );
}

#[test]
fn a_file_over_2gib_turns_large_file_on_as_mke2fs_does() {
    if !have("e2fsck") || !have("debugfs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(3 << 30).unwrap();
    drop(f);
    let mut tree = Tree::empty(&ctx());
    tree.insert(
        "/big",
        Node::new(
            NodeKind::File {
                source: FileSource::Path(big),
                size: 3 << 30,
            },
            0o644,
            Timestamp::default(),
        ),
    )
    .unwrap();
    let img = dir.path().join("lf.img");
    let opts = Ext4Options {
        features: Features::resolve(&["^large_file"]).unwrap(),
        ..Default::default()
    };
    build_into(&img, &opts, Some(&tree), None);
    assert_fsck_clean(&img);
    let stats = debugfs(&img, "stats");
    let features = stats
        .lines()
        .find(|l| l.starts_with("Filesystem features:"))
        .unwrap();
    assert!(features.contains("large_file"), "{features}");
    assert_eq!(field(&debugfs(&img, "stat /big"), "Size:"), "3221225472");
}

#[test]
fn times_outside_ext4s_range_are_clamped_not_wrapped() {
    if !have("e2fsck") || !have("debugfs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut tree = Tree::empty(&ctx());
    // 1800-01-01 and 3000-01-01.
    for (name, sec) in [("/old", -5_364_662_400i64), ("/future", 32_503_680_000)] {
        let mut n = file_node(b"t");
        n.mtime = Timestamp { sec, nsec: 5 };
        n.atime = n.mtime;
        n.ctime = n.mtime;
        tree.insert(name, n).unwrap();
    }
    let img = dir.path().join("t.img");
    build_into(&img, &Ext4Options::default(), Some(&tree), None);
    assert_fsck_clean(&img);
    // debugfs prints "mtime: 0x<seconds>:<extra> -- <date>".
    let old = debugfs(&img, "stat /old");
    assert_eq!(field(&old, "mtime:"), "0x80000000:00000000", "{old}");
    assert!(old.contains("1901"), "{old}");
    let future = debugfs(&img, "stat /future");
    assert_eq!(field(&future, "mtime:"), "0x7fffffff:00000003", "{future}");
    assert!(future.contains("2446"), "{future}");
}

#[test]
fn small_filesystems_get_mke2fs_small_profile_inode_ratio() {
    if !have("e2fsck") || !have("dumpe2fs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (size, ratio) in [(2u64 << 20, 8192u64), (64 << 20, 4096), (600 << 20, 16384)] {
        assert_eq!(profile_inode_ratio(size), ratio);
        let img = dir.path().join(format!("{size}.img"));
        // Without a journal: the smallest one (1024 blocks) needs 4 MiB.
        let opts = Ext4Options {
            journal: Journal::Off,
            ..Default::default()
        };
        build_into(&img, &opts, None, Some(size));
        assert_fsck_clean(&img);
        let out = std::process::Command::new("dumpe2fs")
            .arg("-h")
            .arg(&img)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let inodes: u64 = field(&text, "Inode count:").parse().unwrap();
        // mke2fs rounds the count up to whole inode-table blocks per group.
        let want = size / ratio;
        assert!(
            inodes >= want && inodes < want + want / 8 + 64,
            "{size}: {inodes} inodes, mke2fs's profile gives about {want}"
        );
    }
}

#[test]
fn errors_name_the_path_and_the_fix() {
    // Attributes that fit no block at 1 KiB.
    let mut tree = Tree::empty(&ctx());
    tree.mkdir_all("/etc/app").unwrap();
    let mut n = file_node(b"x");
    n.xattrs = BTreeMap::from([(b"user.big".to_vec(), vec![7u8; 2000])]);
    tree.insert("/etc/app/conf", n).unwrap();
    let opts = Ext4Options {
        block_size: 1024,
        ..Default::default()
    };
    let text = format!("{:#}", prepare(&opts, Some(&tree), &ctx()).unwrap_err());
    assert!(
        text.contains("placing extended attributes of '/etc/app/conf'")
            && text.contains("larger block size"),
        "{text}"
    );

    // More subdirectories than ext4 counts without dir_nlink.
    let mut tree = Tree::empty(&ctx());
    tree.mkdir_all("/var/many").unwrap();
    for i in 0..65_000 {
        tree.mkdir_all(&format!("/var/many/{i}")).unwrap();
    }
    let opts = Ext4Options {
        features: Features::resolve(&["^dir_nlink"]).unwrap(),
        ..Default::default()
    };
    let text = format!("{:#}", prepare(&opts, Some(&tree), &ctx()).unwrap_err());
    assert!(
        text.contains("directory '/var/many' has 65000 subdirectories")
            && text.contains("^dir_nlink"),
        "{text}"
    );

    // More entries than a two-level htree holds at 1 KiB blocks (about
    // 127 * 123 leaves of ~4 long names each).
    let mut tree = Tree::empty(&ctx());
    tree.mkdir_all("/srv/huge").unwrap();
    let long = "n".repeat(200);
    for i in 0..80_000 {
        tree.insert(&format!("/srv/huge/{long}{i}"), file_node(b""))
            .unwrap();
    }
    let opts = Ext4Options {
        block_size: 1024,
        ..Default::default()
    };
    let text = format!("{:#}", prepare(&opts, Some(&tree), &ctx()).unwrap_err());
    assert!(
        text.contains("building directory '/srv/huge'")
            && text.contains("80000 entries")
            && text.contains("block-size: 4096")
            && text.contains("^dir_index"),
        "{text}"
    );
}
