//! ext4 writer, feature by feature: every test builds a filesystem, checks
//! it with `e2fsck -fn` and reads it back with `debugfs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ext4_support;

use composer::fs::ext4::{prepare, Ext4Options, Features, Journal, JournalInit};
use composer::fs::tree::{
    scan, Node, NodeKind, OwnerChoice, OwnerRule, Timestamp, Tree, TreeOptions,
};
use composer::fs::{Content, FileSource};
use composer::ids::Uuid;
use ext4_support::*;
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// The value after `key` in debugfs `stat` output (`Links: 2` -> "2").
fn field<'a>(stat: &'a str, key: &str) -> &'a str {
    let at = stat
        .find(key)
        .unwrap_or_else(|| panic!("no '{key}' in:\n{stat}"));
    stat[at + key.len()..].split_whitespace().next().unwrap()
}

fn file_node(bytes: &[u8], mode: u32) -> Node {
    Node::new(
        NodeKind::File {
            source: FileSource::Bytes(Arc::new(bytes.to_vec())),
            size: bytes.len() as u64,
        },
        mode,
        Timestamp {
            sec: 1_600_000_000,
            nsec: 123_456_789,
        },
    )
}

#[test]
fn large_directories_are_hashed_and_complete() {
    if !have("e2fsck") || !have("debugfs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut tree = Tree::empty(&ctx());
    tree.mkdir_all("/many").unwrap();
    for i in 0..12_000 {
        tree.insert(
            &format!("/many/entry-with-a-longish-name-{i:05}"),
            file_node(b"", 0o644),
        )
        .unwrap();
    }
    for bs in [4096u32, 1024] {
        let img = dir.path().join(format!("big{bs}.img"));
        let opts = Ext4Options {
            block_size: bs,
            ..Default::default()
        };
        build_into(&img, &opts, Some(&tree), None);
        assert_fsck_clean(&img);
        let st = debugfs(&img, "stat /many");
        assert!(
            field(&st, "Flags:").contains("0x81000"),
            "not indexed:\n{st}"
        );
        let ls = debugfs(&img, "ls /many");
        assert_eq!(ls.matches("entry-with-a-longish-name-").count(), 12_000);
        let htree = debugfs(&img, "htree /many");
        assert!(htree.contains("Indirect levels: "), "{htree}");
        if bs == 1024 {
            assert!(
                htree.contains("Indirect levels: 1"),
                "1 KiB blocks need two levels"
            );
        }
        let st = debugfs(&img, "stat /many/entry-with-a-longish-name-07777");
        assert!(st.contains("Type: regular"), "{st}");
    }
}

#[test]
fn sparse_files_over_4gib_and_fragmented_files_keep_their_data() {
    if !have("e2fsck") || !have("debugfs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    // 5 GiB with data at both ends: cheap as a sparse file.
    let huge = std::fs::File::create(src.join("huge")).unwrap();
    huge.set_len(5 << 30).unwrap();
    huge.write_all_at(b"head", 0).unwrap();
    huge.write_all_at(b"tail", (5 << 30) - 4).unwrap();
    // Data in every other 4 KiB block: ~1500 extents, a multi-level tree.
    let frag = std::fs::File::create(src.join("frag")).unwrap();
    let mut expect = vec![0u8; 3000 * 4096];
    for b in (0..3000).step_by(2) {
        let chunk = vec![(b % 251) as u8 + 1; 4096];
        frag.write_all_at(&chunk, b * 4096).unwrap();
        expect[(b * 4096) as usize..(b * 4096 + 4096) as usize].copy_from_slice(&chunk);
    }
    // The last block (2999) is a hole the file does not reach.
    expect.truncate(2999 * 4096);
    drop((huge, frag));
    let tree = scan(&src, &TreeOptions::default(), &ctx()).unwrap();
    for bs in [4096u32, 1024] {
        let img = dir.path().join(format!("sparse{bs}.img"));
        let opts = Ext4Options {
            block_size: bs,
            ..Default::default()
        };
        let (fs, _) = build_into(&img, &opts, Some(&tree), None);
        assert!(fs.min_size() < 64 << 20, "holes must not take space");
        assert_fsck_clean(&img);
        let st = debugfs(&img, "stat /huge");
        assert_eq!(field(&st, "Size:"), (5u64 << 30).to_string());
        let got = dump(&img, "/frag", dir.path());
        let first_bad = got.iter().zip(&expect).position(|(a, b)| a != b);
        assert!(
            got.len() == expect.len() && first_bad.is_none(),
            "bs {bs}: dumped {} bytes, first difference at {first_bad:?}",
            got.len()
        );
        let st = debugfs(&img, "stat /frag");
        assert!(st.contains("(ETB1)"), "expected a two-level extent tree");
        // The huge file's last block, read straight from the image.
        let ex = debugfs(&img, "ex /huge");
        let last = ex.lines().last().unwrap();
        // "0/ 0   2/  2 5242879 - 5242879  4386 -  4386      1"
        let parts: Vec<&str> = last.split(" - ").collect();
        let lblk: u64 = parts[0].split_whitespace().last().unwrap().parse().unwrap();
        let pblk: u64 = parts[1].split_whitespace().last().unwrap().parse().unwrap();
        let f = std::fs::File::open(&img).unwrap();
        let mut buf = [0u8; 4];
        let off = (5u64 << 30) - 4 - lblk * u64::from(bs);
        f.read_exact_at(&mut buf, pblk * u64::from(bs) + off)
            .unwrap();
        assert_eq!(&buf, b"tail", "extent line: {last}");
    }
}

#[test]
fn owners_modes_links_specials_xattrs_and_times_match() {
    if !have("e2fsck") || !have("debugfs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("bin/ping"), b"#!ping").unwrap();
    std::fs::write(
        src.join("etc/passwd"),
        b"root:x:0:0::/root:/bin/sh\nwww:x:33:34::/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(src.join("etc/group"), b"root:x:0:\nwww:x:34:\n").unwrap();
    std::fs::hard_link(src.join("bin/ping"), src.join("bin/ping6")).unwrap();
    std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("fifo").as_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    let xattrs_ok = rustix::fs::setxattr(
        src.join("etc/passwd").as_path(),
        "user.note",
        b"kept",
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok();
    // Nanosecond timestamps.
    let ts = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 1_500_000_000,
            tv_nsec: 111,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 1_500_000_001,
            tv_nsec: 987_654_321,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        src.join("etc/passwd").as_path(),
        &ts,
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();

    let mut tree = scan(&src, &TreeOptions { xattrs: true }, &ctx()).unwrap();
    tree.apply_owners(&OwnerChoice::default(), "test");
    tree.apply_device_table_str(
        "/dev d 755 0 0 - - - - -\n\
         /dev/console c 600 0 5 5 1 - - -\n\
         /dev/sda b 660 0 6 8 0 0 1 3\n\
         /dev/big c 600 0 0 300 70000 - - -\n\
         /bin/ping f 4755 0 www - - - - -\n\
         |xattr cap_net_raw+ep\n\
         /var/www d 750 www www - - - - -\n",
        "table",
    )
    .unwrap();
    tree.apply_rules(&[OwnerRule {
        glob: "/etc/*".into(),
        uid: Some(1000),
        gid: Some(1001),
        mode: Some(0o600),
        caps: None,
    }])
    .unwrap();
    let img = dir.path().join("own.img");
    build_into(&img, &Ext4Options::default(), Some(&tree), None);
    assert_fsck_clean(&img);

    let st = debugfs(&img, "stat /bin/ping");
    assert_eq!(field(&st, "Mode:"), "04755");
    assert_eq!(field(&st, "Links:"), "2");
    assert_eq!(field(&st, "Group:"), "34");
    let ino = field(&st, "Inode:").to_string();
    let st6 = debugfs(&img, "stat /bin/ping6");
    assert_eq!(field(&st6, "Inode:"), ino, "hard links share one inode");
    let ea = debugfs(&img, "ea_list /bin/ping");
    assert!(
        ea.contains("security.capability (20) = 01 00 00 02 00 20 00 00"),
        "{ea}"
    );
    let st = debugfs(&img, "stat /etc/passwd");
    assert_eq!(field(&st, "Mode:"), "0600");
    assert_eq!(field(&st, "User:"), "1000");
    assert_eq!(field(&st, "Group:"), "1001");
    // mtime 1500000001 = 0x59682f01, nsec 987654321 << 2 = 0xeb79a2c4.
    assert!(st.contains("mtime: 0x59682f01:eb79a2c4"), "{st}");
    assert!(st.contains("atime: 0x59682f00:000001bc"), "{st}");
    if xattrs_ok {
        let ea = debugfs(&img, "ea_list /etc/passwd");
        assert!(ea.contains("user.note (4) = \"kept\""), "{ea}");
    }
    assert_eq!(
        dump(&img, "/etc/passwd", dir.path()),
        std::fs::read(src.join("etc/passwd")).unwrap()
    );

    let st = debugfs(&img, "stat /dev/console");
    assert!(st.contains("Type: character special"), "{st}");
    assert!(st.contains("Device major/minor number: 05:01"), "{st}");
    assert_eq!(field(&st, "Group:"), "5");
    let st = debugfs(&img, "stat /dev/big");
    assert!(st.contains("Device major/minor number: 300:70000"), "{st}");
    for (n, minor) in [(0, 0), (1, 1), (2, 2)] {
        let st = debugfs(&img, &format!("stat /dev/sda{n}"));
        assert!(st.contains("Type: block special"), "{st}");
        assert!(
            st.contains(&format!("Device major/minor number: 08:{minor:02}")),
            "{st}"
        );
    }
    let st = debugfs(&img, "stat /var/www");
    assert_eq!(field(&st, "Mode:"), "0750");
    assert_eq!(field(&st, "User:"), "33");
    let ls = debugfs(&img, "ls -l /");
    assert!(ls.contains("10640 (5)"), "fifo:\n{ls}");
    assert!(
        ls.contains("140755 (6)") || ls.contains("(6)"),
        "socket:\n{ls}"
    );
    assert!(ls.contains("lost+found"), "{ls}");
}

#[test]
fn feature_variants_are_clean() {
    if !have("e2fsck") || !have("debugfs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut tree = Tree::empty(&ctx());
    tree.mkdir_all("/a/b").unwrap();
    tree.insert("/a/b/f", file_node(&[5u8; 10_000], 0o644))
        .unwrap();
    let mut x = BTreeMap::new();
    x.insert(b"user.big".to_vec(), vec![9u8; 300]);
    x.insert(
        b"security.selinux".to_vec(),
        b"system_u:object_r:etc_t:s0\0".to_vec(),
    );
    let id = tree.lookup("/a/b/f").unwrap().unwrap();
    tree.node_mut(id).xattrs = x;
    let variants: Vec<(&str, Ext4Options)> = vec![
        (
            "no-journal",
            Ext4Options {
                journal: Journal::Off,
                ..Default::default()
            },
        ),
        (
            "journal-8M",
            Ext4Options {
                journal: Journal::Size(8 << 20),
                ..Default::default()
            },
        ),
        (
            "64bit",
            Ext4Options {
                features: Features::resolve(&["64bit"]).unwrap(),
                ..Default::default()
            },
        ),
        (
            "no-flex",
            Ext4Options {
                features: Features::resolve(&["^flex_bg"]).unwrap(),
                ..Default::default()
            },
        ),
        (
            "no-sparse",
            Ext4Options {
                features: Features::resolve(&["^sparse_super"]).unwrap(),
                ..Default::default()
            },
        ),
        (
            "no-csum-no-uninit",
            Ext4Options {
                features: Features::resolve(&["^metadata_csum", "^uninit_bg", "^dir_index"])
                    .unwrap(),
                ..Default::default()
            },
        ),
        (
            "2k",
            Ext4Options {
                block_size: 2048,
                journal_init: JournalInit::Lazy,
                ..Default::default()
            },
        ),
        (
            "ids",
            Ext4Options {
                label: "rootfs".into(),
                uuid: Uuid::parse("01234567-89ab-4cde-8f01-23456789abcd"),
                inodes: Some(5000),
                reserved_percent: 0.0,
                ..Default::default()
            },
        ),
    ];
    for (name, opts) in variants {
        let img = dir.path().join(format!("{name}.img"));
        build_into(&img, &opts, Some(&tree), Some(200 << 20));
        assert_fsck_clean(&img);
        assert!(
            dump(&img, "/a/b/f", dir.path()) == vec![5u8; 10_000],
            "{name}"
        );
        let ea = debugfs(&img, "ea_list /a/b/f");
        assert!(ea.contains("user.big (300)"), "{name}: {ea}");
        assert!(
            ea.contains("security.selinux (27) = \"system_u:object_r:etc_t:s0\\000\""),
            "{name}: {ea}"
        );
        let sb = debugfs(&img, "stats");
        if name == "ids" {
            assert!(sb.contains("Filesystem volume name:   rootfs"), "{sb}");
            assert!(sb.contains("01234567-89ab-4cde-8f01-23456789abcd"), "{sb}");
            assert!(sb.contains("Reserved block count:     0"), "{sb}");
        }
        if name == "no-journal" {
            assert!(!sb.contains("has_journal"), "{sb}");
        }
        if name == "journal-8M" {
            let st = debugfs(&img, "stat <8>");
            assert_eq!(field(&st, "Size:"), (8u64 << 20).to_string());
        }
    }
}

#[test]
fn builds_are_reproducible_and_too_small_windows_say_by_how_much() {
    let dir = tempfile::tempdir().unwrap();
    let mut tree = Tree::empty(&ctx());
    for i in 0..300 {
        tree.insert(&format!("/f{i}"), file_node(&vec![i as u8; i * 97], 0o644))
            .unwrap();
    }
    let a = dir.path().join("a.img");
    let b = dir.path().join("b.img");
    build_into(&a, &Ext4Options::default(), Some(&tree), Some(32 << 20));
    build_into(&b, &Ext4Options::default(), Some(&tree), Some(32 << 20));
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());

    let fs = prepare(&Ext4Options::default(), Some(&tree), &ctx()).unwrap();
    let small = fs.min_size() - 64 * 4096;
    let file = std::fs::File::create(dir.path().join("c.img")).unwrap();
    file.set_len(small).unwrap();
    let mut w = composer::output::window::Window::new(&file, 0, small);
    let err = format!("{:#}", fs.write(&mut w).unwrap_err());
    assert!(err.contains("more needed"), "{err}");
    assert!(err.contains("smallest size that fits"), "{err}");
}

#[test]
fn min_size_fits_exactly_with_every_block_size() {
    if !have("e2fsck") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut tree = Tree::empty(&ctx());
    for i in 0..50 {
        tree.insert(&format!("/f{i}"), file_node(&vec![1u8; 5000 * i], 0o644))
            .unwrap();
    }
    for bs in [1024u32, 2048, 4096] {
        let img = dir.path().join(format!("m{bs}.img"));
        let opts = Ext4Options {
            block_size: bs,
            ..Default::default()
        };
        let (fs, _) = build_into(&img, &opts, Some(&tree), None);
        assert_fsck_clean(&img);
        assert!(prepare(&opts, Some(&tree), &ctx()).unwrap().min_size() == fs.min_size());
        assert!(Path::new(&img).metadata().unwrap().len() == fs.min_size());
    }
}
