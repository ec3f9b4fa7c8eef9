//! Property test: random trees (nested directories, names with odd bytes,
//! files from empty to several blocks, sparse files, hard links, fast and
//! slow symlinks, devices, FIFOs, sockets, xattrs, owners, modes, times)
//! -> ext4 at its minimum size -> `e2fsck -fn` clean and every inode read
//! back with `debugfs` identical. 50 cases by default; `PROPTEST_CASES`
//! raises it.
//!
//! Names exclude `\n` (debugfs' `ls -p` output is line based) and `/`, NUL
//! (impossible in names); everything else, including non-UTF-8 bytes, goes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ext4_support;

use composer::fs::ext4::{Ext4Options, Features};
use composer::fs::tree::{Node, NodeId, NodeKind, Timestamp, Tree, ROOT};
use composer::fs::FileSource;
use ext4_support::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

#[derive(Clone, Debug)]
enum Kind {
    Dir,
    File(Vec<u8>),
    /// (size, [(offset, byte, len)]) written into a sparse host file.
    Sparse(u64, Vec<(u64, u8, u16)>),
    Symlink(Vec<u8>),
    Link(usize),
    Fifo,
    Socket,
    Char(u32, u32),
    Block(u32, u32),
}

#[derive(Clone, Debug)]
struct Entry {
    parent: usize,
    name: Vec<u8>,
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, u32),
    xattrs: Vec<(String, Vec<u8>)>,
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(prop::sample::select(b"abcxyz019-_.".to_vec()), 1..12),
        2 => prop::collection::vec(any::<u8>().prop_filter("name byte", |b| *b != b'/' && *b != 0 && *b != b'\n'), 1..40),
        1 => prop::collection::vec(Just(b'n'), 200..=255),
    ]
    .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => Just(Kind::Dir),
        5 => prop::collection::vec(any::<u8>(), 0..13_000).prop_map(Kind::File),
        1 => (1u64..(64 << 20), prop::collection::vec((0u64..(64 << 20), any::<u8>(), 1u16..9000), 0..4))
            .prop_map(|(s, w)| Kind::Sparse(s, w)),
        2 => prop::collection::vec(prop::sample::select(b"abc/._-".to_vec()), 1..200).prop_map(Kind::Symlink),
        2 => (0usize..1000).prop_map(Kind::Link),
        1 => Just(Kind::Fifo),
        1 => Just(Kind::Socket),
        1 => (0u32..4096, 0u32..1_048_576).prop_map(|(a, b)| Kind::Char(a, b)),
        1 => (0u32..300, 0u32..300).prop_map(|(a, b)| Kind::Block(a, b)),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        0usize..1000,
        name(),
        kind(),
        0u32..0o10000,
        prop_oneof![Just(0u32), 0u32..70_000],
        prop_oneof![Just(0u32), 0u32..70_000],
        (-100i64..5_000_000_000, 0u32..1_000_000_000),
        prop::collection::vec(
            (
                "(user|trusted|security)\\.[a-z]{1,12}",
                prop::collection::vec(any::<u8>(), 0..200),
            ),
            0..3,
        ),
    )
        .prop_map(
            |(parent, name, kind, mode, uid, gid, mtime, xattrs)| Entry {
                parent,
                name,
                kind,
                mode,
                uid,
                gid,
                mtime,
                xattrs,
            },
        )
}

/// Builds the tree the entries describe (sparse files go to `host`).
fn build_tree(entries: &[Entry], host: &Path) -> Tree {
    let ctx = ctx();
    let mut tree = Tree::empty(&ctx);
    let mut dirs: Vec<NodeId> = vec![ROOT];
    let mut files: Vec<NodeId> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let parent = dirs[e.parent % dirs.len()];
        if let NodeKind::Dir { entries } = &tree.node(parent).kind {
            if entries.contains_key(&e.name) {
                continue;
            }
        }
        let time = Timestamp {
            sec: e.mtime.0,
            nsec: e.mtime.1,
        };
        let kind = match &e.kind {
            Kind::Dir => NodeKind::Dir {
                entries: BTreeMap::new(),
            },
            Kind::File(b) => NodeKind::File {
                source: FileSource::Bytes(Arc::new(b.clone())),
                size: b.len() as u64,
                sparse: false,
            },
            Kind::Sparse(size, writes) => {
                let p = host.join(format!("sparse{i}"));
                let f = std::fs::File::create(&p).unwrap();
                f.set_len(*size).unwrap();
                for (off, byte, len) in writes {
                    let off = off % size;
                    let len = u64::from(*len).min(size - off) as usize;
                    f.write_all_at(&vec![*byte | 1; len], off).unwrap();
                }
                NodeKind::File {
                    source: FileSource::Path(p),
                    size: *size,
                    sparse: true,
                }
            }
            Kind::Symlink(t) => NodeKind::Symlink { target: t.clone() },
            Kind::Link(target) => {
                if files.is_empty() {
                    continue;
                }
                let target = files[target % files.len()];
                tree.link_child(parent, &e.name, target).unwrap();
                continue;
            }
            Kind::Fifo => NodeKind::Fifo,
            Kind::Socket => NodeKind::Socket,
            Kind::Char(a, b) => NodeKind::CharDev {
                major: *a,
                minor: *b,
            },
            Kind::Block(a, b) => NodeKind::BlockDev {
                major: *a,
                minor: *b,
            },
        };
        let mut node = Node::new(kind, e.mode, time);
        node.uid = e.uid;
        node.gid = e.gid;
        node.atime = Timestamp { sec: 7, nsec: 9 };
        for (k, v) in &e.xattrs {
            node.xattrs.insert(k.as_bytes().to_vec(), v.clone());
        }
        let id = tree.insert_child(parent, &e.name, node).unwrap();
        match e.kind {
            Kind::Dir => dirs.push(id),
            Kind::File(_) | Kind::Sparse(..) => files.push(id),
            _ => {}
        }
    }
    tree
}

/// Runs debugfs with a command file; returns stdout split per command.
fn debugfs_batch(img: &Path, cmds: &[String], dir: &Path) -> Vec<Vec<u8>> {
    let file = dir.join("cmds");
    std::fs::write(&file, cmds.join("\n")).unwrap();
    let out = Command::new("debugfs")
        .arg("-f")
        .arg(&file)
        .arg(img)
        .output()
        .unwrap();
    let mut sections: Vec<Vec<u8>> = Vec::new();
    for line in out.stdout.split(|&b| b == b'\n') {
        if line.starts_with(b"debugfs: ") {
            sections.push(Vec::new());
        } else if let Some(s) = sections.last_mut() {
            s.extend_from_slice(line);
            s.push(b'\n');
        }
    }
    assert_eq!(sections.len(), cmds.len(), "debugfs output sections");
    sections
}

fn check(entries: &[Entry], bs: u32, csum: bool) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let tree = build_tree(entries, dir.path());
    let opts = Ext4Options {
        block_size: bs,
        features: if csum {
            Features::default()
        } else {
            Features::resolve(&["^metadata_csum"]).unwrap()
        },
        ..Default::default()
    };
    let img = dir.path().join("fs.img");
    build_into(&img, &opts, Some(&tree), None);
    assert_fsck_clean(&img);

    // Walk directories by inode with `ls -p`, matching the tree.
    let links = tree.link_counts();
    let mut ino_of: HashMap<NodeId, u64> = HashMap::new();
    ino_of.insert(ROOT, 2);
    let mut queue = vec![ROOT];
    let mut others: Vec<(NodeId, u64)> = Vec::new();
    while let Some(d) = queue.pop() {
        let out = debugfs_batch(&img, &[format!("ls -p <{}>", ino_of[&d])], dir.path()).remove(0);
        let NodeKind::Dir { entries: expect } = &tree.node(d).kind else {
            unreachable!()
        };
        let mut seen = 0;
        for line in out.split(|&b| b == b'\n').filter(|l| l.starts_with(b"/")) {
            // /ino/mode/uid/gid/name/size/
            let f: Vec<&[u8]> = line.split(|&b| b == b'/').collect();
            let name = f[5];
            if name == b"." || name == b".." || (d == ROOT && name == b"lost+found") {
                continue;
            }
            let num = |x: &[u8]| String::from_utf8_lossy(x).parse::<u64>().unwrap();
            let ino = num(f[1]);
            let id = *expect.get(name).ok_or_else(|| {
                TestCaseError::fail(format!(
                    "unexpected entry {:?}",
                    String::from_utf8_lossy(name)
                ))
            })?;
            seen += 1;
            let node = tree.node(id);
            prop_assert_eq!(
                u64::from_str_radix(&String::from_utf8_lossy(f[2]), 8).unwrap(),
                u64::from(node.st_mode())
            );
            prop_assert_eq!(num(f[3]), u64::from(node.uid));
            prop_assert_eq!(num(f[4]), u64::from(node.gid));
            if let Some(&prev) = ino_of.get(&id) {
                prop_assert_eq!(prev, ino, "hard links share an inode");
                continue;
            }
            prop_assert!(!ino_of.values().any(|&v| v == ino), "inode reused");
            ino_of.insert(id, ino);
            if node.is_dir() {
                queue.push(id);
            } else {
                others.push((id, ino));
            }
        }
        prop_assert_eq!(seen, expect.len());
    }

    // Every other inode: stat, contents, xattrs in one debugfs run.
    let mut cmds = Vec::new();
    for &(id, ino) in &others {
        cmds.push(format!("stat <{ino}>"));
        let node = tree.node(id);
        if matches!(node.kind, NodeKind::File { .. })
            || matches!(&node.kind, NodeKind::Symlink { target } if target.len() >= 60)
        {
            cmds.push(format!("dump <{ino}> {}/d{ino}", dir.path().display()));
        }
        for k in node.xattrs.keys() {
            cmds.push(format!(
                "ea_get -f {}/x{ino}.{} <{ino}> {}",
                dir.path().display(),
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(k)
            ));
        }
    }
    let out = debugfs_batch(&img, &cmds, dir.path());
    let mut k = 0;
    for &(id, ino) in &others {
        let node = tree.node(id);
        let stat = String::from_utf8_lossy(&out[k]).into_owned();
        k += 1;
        let links_line = format!("Links: {} ", links[id]);
        prop_assert!(stat.contains(&links_line), "links of {}: {}", ino, stat);
        let (s, x) = composer_time(node.mtime);
        prop_assert!(
            stat.contains(&format!("mtime: 0x{s:08x}:{x:08x}")),
            "mtime of {}: {}",
            ino,
            stat
        );
        match &node.kind {
            NodeKind::File { source, size, .. } => {
                k += 1;
                let got = std::fs::read(dir.path().join(format!("d{ino}"))).unwrap_or_default();
                let want = match source {
                    FileSource::Bytes(b) => b.to_vec(),
                    FileSource::Path(p) => std::fs::read(p).unwrap(),
                };
                prop_assert_eq!(got.len() as u64, *size);
                prop_assert!(got == want, "content of inode {}", ino);
            }
            NodeKind::Symlink { target } => {
                if target.len() >= 60 {
                    k += 1;
                    let got = std::fs::read(dir.path().join(format!("d{ino}"))).unwrap_or_default();
                    prop_assert!(&got == target, "slow symlink {}", ino);
                } else {
                    let want = format!("Fast link dest: \"{}\"", String::from_utf8_lossy(target));
                    prop_assert!(stat.contains(&want), "fast symlink {}: {}", ino, stat);
                }
            }
            NodeKind::CharDev { major, minor } | NodeKind::BlockDev { major, minor } => {
                let want = format!("Device major/minor number: {major:02}:{minor:02}");
                prop_assert!(stat.contains(&want), "{} in {}", want, stat);
            }
            _ => {}
        }
        for (name, value) in &node.xattrs {
            k += 1;
            let got = std::fs::read(
                dir.path()
                    .join(format!("x{ino}.{}", String::from_utf8_lossy(name))),
            )
            .unwrap_or_default();
            prop_assert!(
                &got == value,
                "xattr {} of {}",
                String::from_utf8_lossy(name),
                ino
            );
        }
    }
    Ok(())
}

/// The on-disk (seconds, extra) of a timestamp, as debugfs prints them.
fn composer_time(t: Timestamp) -> (u32, u32) {
    let lo = t.sec as i32;
    let epoch = ((t.sec - i64::from(lo)) >> 32) as u32 & 3;
    (lo as u32, (t.nsec << 2) | epoch)
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn random_trees_survive_e2fsck_and_read_back(
        entries in prop::collection::vec(entry(), 0..60),
        bs in prop::sample::select(vec![1024u32, 2048, 4096]),
        csum in any::<bool>(),
    ) {
        if !have("e2fsck") || !have("debugfs") {
            return Ok(());
        }
        check(&entries, bs, csum)?;
    }
}
