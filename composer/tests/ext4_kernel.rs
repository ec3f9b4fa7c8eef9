//! The Linux kernel mounts what the ext4 writer makes: a loop mount of a
//! built filesystem, contents compared with the source, then a read-write
//! mount that adds and removes entries in a hashed directory (exercising
//! the kernel's own htree code against our index and hash seed), and
//! `e2fsck -fn` afterwards.
//!
//! Needs root and loop devices; without them (a laptop, an unprivileged CI
//! runner) it prints a note and returns: the QEMU boot tests cover the
//! kernel there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ext4_support;

use composer::fs::ext4::{Ext4Options, Features};
use composer::fs::tree::{scan, TreeOptions};
use ext4_support::*;
use std::path::Path;
use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn can_mount(dir: &Path) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    let ok = root && {
        let img = dir.join("probe.img");
        let mnt = dir.join("probe");
        std::fs::create_dir_all(&mnt).unwrap();
        build_into(&img, &Ext4Options::default(), None, Some(16 << 20));
        let m = run(
            "mount",
            &[
                "-o",
                "loop,ro",
                img.to_str().unwrap(),
                mnt.to_str().unwrap(),
            ],
        );
        if m {
            run("umount", &[mnt.to_str().unwrap()]);
        }
        m
    };
    if !ok {
        eprintln!("note: not root or no loop devices; skipping the kernel mount test");
    }
    ok
}

#[test]
fn kernel_mounts_reads_and_writes_the_filesystem() {
    if !have("e2fsck") || !have("mount") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    if !can_mount(dir.path()) {
        return;
    }
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("big")).unwrap();
    std::fs::create_dir_all(src.join("etc")).unwrap();
    // The source brings its own lost+found (then inode 11), so the trees
    // compare equal.
    std::fs::create_dir_all(src.join("lost+found")).unwrap();
    for i in 0..3000 {
        std::fs::write(src.join(format!("big/file-{i}")), format!("{i}\n")).unwrap();
    }
    std::fs::write(src.join("etc/data"), vec![7u8; 1 << 20]).unwrap();
    std::os::unix::fs::symlink("../etc/data", src.join("big/link")).unwrap();
    let tree = scan(&src, &TreeOptions::default(), &ctx()).unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let m = mnt.to_str().unwrap();
    for (name, opts) in [
        ("default", Ext4Options::default()),
        (
            "no-csum-1k",
            Ext4Options {
                block_size: 1024,
                features: Features::resolve(&["^metadata_csum"]).unwrap(),
                ..Default::default()
            },
        ),
    ] {
        let img = dir.path().join(format!("{name}.img"));
        build_into(&img, &opts, Some(&tree), Some(64 << 20));
        let i = img.to_str().unwrap();
        assert!(
            run("mount", &["-o", "loop,ro", i, m]),
            "{name}: mount failed"
        );
        let same = run(
            "diff",
            &["-r", "--no-dereference", src.to_str().unwrap(), m],
        );
        run("umount", &[m]);
        assert!(same, "{name}: contents differ from the source");

        assert!(
            run("mount", &["-o", "loop", i, m]),
            "{name}: rw mount failed"
        );
        for k in 0..500 {
            std::fs::write(mnt.join(format!("big/new-{k}")), b"x").unwrap();
        }
        for k in 0..1000 {
            std::fs::remove_file(mnt.join(format!("big/file-{k}"))).unwrap();
        }
        let n = std::fs::read_dir(mnt.join("big")).unwrap().count();
        run("umount", &[m]);
        assert_eq!(n, 3000 + 1 + 500 - 1000, "{name}");
        assert_fsck_clean(&img);
    }
}
