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
#[path = "support/random_tree.rs"]
mod random_tree;

use composer::fs::ext4::{Ext4Options, Features};
use composer::fs::tree::{NodeId, NodeKind, Timestamp, ROOT};
use composer::fs::FileSource;
use ext4_support::*;
use proptest::prelude::*;
use random_tree::{build_tree, entry, Entry};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

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
    let tree = build_tree(entries, dir.path(), &ctx());
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
