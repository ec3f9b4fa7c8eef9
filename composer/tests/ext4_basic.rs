//! ext4 writer: empty filesystems and small trees, checked with e2fsck -fn
//! and read back with debugfs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ext4_support;

use composer::fs::ext4::{Ext4Options, Features};
use composer::fs::tree::{scan, TreeOptions};
use ext4_support::*;
use std::os::unix::fs::symlink;

#[test]
fn empty_filesystem_is_clean_and_writes_little() {
    if !have("e2fsck") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("empty.img");
    let opts = Ext4Options {
        journal_init: composer::fs::ext4::JournalInit::Lazy,
        ..Default::default()
    };
    let (_fs, mapped) = build_into(&img, &opts, None, Some(4 << 30));
    assert_fsck_clean(&img);
    assert!(mapped.total() < 4 << 20, "wrote {} bytes", mapped.total());
}

#[test]
fn small_tree_reads_back() {
    if !have("e2fsck") || !have("debugfs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("etc/sub")).unwrap();
    std::fs::write(src.join("etc/hello"), b"hello world\n").unwrap();
    std::fs::write(src.join("etc/sub/big"), vec![0xabu8; 300_000]).unwrap();
    symlink("hello", src.join("etc/link")).unwrap();
    symlink("x".repeat(200), src.join("etc/longlink")).unwrap();
    let tree = scan(&src, &TreeOptions::default(), &ctx()).unwrap();
    for bs in [1024u32, 2048, 4096] {
        for csum in [true, false] {
            let img = dir.path().join(format!("t{bs}{csum}.img"));
            let features = if csum {
                Features::default()
            } else {
                Features::resolve(&["^metadata_csum"]).unwrap()
            };
            let opts = Ext4Options {
                block_size: bs,
                features,
                ..Default::default()
            };
            build_into(&img, &opts, Some(&tree), Some(64 << 20));
            assert_fsck_clean(&img);
            assert_eq!(dump(&img, "/etc/hello", dir.path()), b"hello world\n");
            assert_eq!(
                dump(&img, "/etc/sub/big", dir.path()),
                vec![0xabu8; 300_000]
            );
            assert_eq!(
                dump(&img, "/etc/longlink", dir.path()),
                "x".repeat(200).as_bytes()
            );
            let st = debugfs(&img, "stat /etc/link");
            assert!(st.contains("Fast link dest: \"hello\""), "{st}");
        }
    }
}
