//! Property test of the initramfs writer: random sets of files, directories,
//! symlinks and device nodes, archived uncompressed, read back with the
//! `cpio` crate (an independent newc reader) and, when GNU cpio is
//! installed, listed by it too. Every declared entry must come back with
//! its type, mode, owner, content, target or device numbers; every parent
//! directory must exist; members must be sorted and the archive must end
//! with the trailer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use composer::fs::cpio::{
    build, Compression, DirSpec, FileSpec, InitramfsOptions, NodeKind, NodeSpec, SymlinkSpec,
};
use composer::fs::{BuildContext, FileSource};
use composer::ids::Seed;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

/// What the archive must hold at one path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Want {
    Dir {
        mode: u32,
        uid: u32,
        gid: u32,
    },
    File {
        mode: u32,
        uid: u32,
        gid: u32,
        data: Vec<u8>,
    },
    Link {
        target: String,
    },
    Node {
        kind: NodeKind,
        major: u32,
        minor: u32,
        mode: u32,
    },
}

/// One generated entry: parent directories (from a small alphabet, so
/// entries share them), then what the leaf is.
#[derive(Clone, Debug)]
enum Leaf {
    Dir(u32, u32, u32),
    File(u32, u32, u32, Vec<u8>),
    Link(String),
    Node(u8, u32, u32, u32),
}

fn leaf() -> impl Strategy<Value = Leaf> {
    prop_oneof![
        (0u32..0o7777, 0u32..3000, 0u32..3000).prop_map(|(m, u, g)| Leaf::Dir(m | 0o700, u, g)),
        (
            0u32..0o7777,
            0u32..3000,
            0u32..3000,
            prop::collection::vec(any::<u8>(), 0..3000)
        )
            .prop_map(|(m, u, g, d)| Leaf::File(m, u, g, d)),
        "[a-zA-Z0-9./_ -]{1,40}".prop_map(Leaf::Link),
        (0u8..3, 0u32..4096, 0u32..1_000_000, 0u32..0o777)
            .prop_map(|(k, ma, mi, m)| Leaf::Node(k, ma, mi, m)),
    ]
}

fn ctx() -> BuildContext {
    BuildContext {
        seed: Seed("cpio-prop".into()),
        source_date_epoch: Some(1_700_000_000),
    }
}

/// Builds the options and the expected archive contents from generated
/// entries. Directory components are `d0`..`d2` and leaves `e<i>`, so a
/// leaf never collides with a directory; a directory declared twice keeps
/// its first declaration.
fn options(entries: &[(Vec<u8>, Leaf)]) -> (InitramfsOptions, BTreeMap<String, Want>) {
    let mut opts = InitramfsOptions {
        name: "prop".into(),
        compression: Compression::None,
        ..Default::default()
    };
    let mut want = BTreeMap::new();
    for (i, (parents, leaf)) in entries.iter().enumerate() {
        let mut path = String::new();
        for p in parents {
            path.push_str(&format!("/d{p}"));
            want.entry(path[1..].to_string()).or_insert(Want::Dir {
                mode: 0o755,
                uid: 0,
                gid: 0,
            });
        }
        match leaf {
            Leaf::Dir(mode, uid, gid) => {
                // A declared directory: reuse the parent path itself when it
                // has one, else a fresh name.
                let dir = if parents.is_empty() {
                    format!("/e{i}")
                } else {
                    path.clone()
                };
                if opts.dirs.iter().any(|d| d.path == dir) {
                    continue;
                }
                opts.dirs.push(DirSpec {
                    path: dir.clone(),
                    mode: Some(*mode),
                    uid: *uid,
                    gid: *gid,
                });
                want.insert(
                    dir[1..].to_string(),
                    Want::Dir {
                        mode: *mode,
                        uid: *uid,
                        gid: *gid,
                    },
                );
            }
            Leaf::File(mode, uid, gid, data) => {
                let p = format!("{path}/e{i}");
                opts.files.push(FileSpec {
                    path: p.clone(),
                    source: FileSource::Bytes(Arc::new(data.clone())),
                    mode: Some(*mode),
                    uid: *uid,
                    gid: *gid,
                });
                want.insert(
                    p[1..].to_string(),
                    Want::File {
                        mode: *mode,
                        uid: *uid,
                        gid: *gid,
                        data: data.clone(),
                    },
                );
            }
            Leaf::Link(target) => {
                let p = format!("{path}/e{i}");
                opts.symlinks.push(SymlinkSpec {
                    path: p.clone(),
                    target: target.clone(),
                });
                want.insert(
                    p[1..].to_string(),
                    Want::Link {
                        target: target.clone(),
                    },
                );
            }
            Leaf::Node(k, major, minor, mode) => {
                let kind = [NodeKind::Char, NodeKind::Block, NodeKind::Fifo][usize::from(*k)];
                let (major, minor) = match kind {
                    NodeKind::Fifo => (0, 0),
                    _ => (*major, *minor),
                };
                let p = format!("{path}/e{i}");
                opts.nodes.push(NodeSpec {
                    path: p.clone(),
                    kind,
                    major,
                    minor,
                    mode: *mode,
                    uid: 0,
                    gid: 0,
                });
                want.insert(
                    p[1..].to_string(),
                    Want::Node {
                        kind,
                        major,
                        minor,
                        mode: *mode,
                    },
                );
            }
        }
    }
    (opts, want)
}

/// Reads every member of an uncompressed newc archive: name -> what it is.
fn read_back(archive: &[u8]) -> (Vec<String>, BTreeMap<String, Want>) {
    let mut names = Vec::new();
    let mut got = BTreeMap::new();
    let mut rest = archive;
    loop {
        let mut r = cpio::NewcReader::new(rest).unwrap();
        if r.entry().is_trailer() {
            break;
        }
        let e = r.entry();
        let (name, mode, uid, gid) = (e.name().to_string(), e.mode(), e.uid(), e.gid());
        let (rmaj, rmin) = (e.rdev_major(), e.rdev_minor());
        let mut data = Vec::new();
        r.read_to_end(&mut data).unwrap();
        let perm = mode & 0o7777;
        let what = match mode & 0o170000 {
            0o040000 => Want::Dir {
                mode: perm,
                uid,
                gid,
            },
            0o100000 => Want::File {
                mode: perm,
                uid,
                gid,
                data,
            },
            0o120000 => Want::Link {
                target: String::from_utf8(data).unwrap(),
            },
            t => Want::Node {
                kind: match t {
                    0o020000 => NodeKind::Char,
                    0o060000 => NodeKind::Block,
                    0o010000 => NodeKind::Fifo,
                    other => panic!("unexpected file type {other:o} of {name}"),
                },
                major: rmaj,
                minor: rmin,
                mode: perm,
            },
        };
        names.push(name.clone());
        got.insert(name, what);
        rest = r.finish().unwrap();
    }
    (names, got)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_declared_entry_comes_back(
        entries in prop::collection::vec((prop::collection::vec(0u8..3, 0..3), leaf()), 0..40)
    ) {
        let (opts, want) = options(&entries);
        let archive = build(&opts, &ctx()).unwrap();
        let (names, got) = read_back(&archive);

        let mut sorted = names.clone();
        sorted.sort();
        prop_assert_eq!(&names, &sorted, "members must be sorted");
        prop_assert_eq!(names.len(), got.len(), "a member appears twice");
        // Every parent of every member is a directory member.
        for name in &names {
            if let Some((parent, _)) = name.rsplit_once('/') {
                prop_assert!(
                    matches!(got.get(parent), Some(Want::Dir { .. })),
                    "parent of {} missing", name
                );
            }
        }
        prop_assert_eq!(&got, &want);

        // GNU cpio reads the same member list.
        if support::have("cpio") {
            let mut child = Command::new("cpio")
                .args(["-it", "--quiet"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let data = archive.clone();
            let feeder = std::thread::spawn(move || stdin.write_all(&data));
            let out = child.wait_with_output().unwrap();
            feeder.join().unwrap().unwrap();
            prop_assert!(out.status.success());
            let listed: Vec<String> =
                String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
            prop_assert_eq!(listed, names);
        }
    }
}
