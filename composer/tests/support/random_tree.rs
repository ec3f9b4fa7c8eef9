//! Random trees for the filesystem writers' property tests: nested
//! directories, names with odd bytes (no `\n`, which line-based readers of
//! the tools split on), files from empty to several blocks, sparse files,
//! hard links, symlinks, devices, FIFOs, sockets, xattrs, owners, modes and
//! times. Shared by the ext4 and squashfs round-trip tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use composer::fs::tree::{Node, NodeId, NodeKind, Timestamp, Tree, ROOT};
use composer::fs::{BuildContext, FileSource};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub enum Kind {
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
pub struct Entry {
    pub parent: usize,
    pub name: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, u32),
    pub xattrs: Vec<(String, Vec<u8>)>,
}

pub fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(prop::sample::select(b"abcxyz019-_.".to_vec()), 1..12),
        2 => prop::collection::vec(any::<u8>().prop_filter("name byte", |b| *b != b'/' && *b != 0 && *b != b'\n'), 1..40),
        1 => prop::collection::vec(Just(b'n'), 200..=255),
    ]
    .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

pub fn kind() -> impl Strategy<Value = Kind> {
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

pub fn entry() -> impl Strategy<Value = Entry> {
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
pub fn build_tree(entries: &[Entry], host: &Path, ctx: &BuildContext) -> Tree {
    let mut tree = Tree::empty(ctx);
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
