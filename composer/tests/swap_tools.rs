//! `fs: { type: swap }` checked by util-linux: the first page is the one
//! `mkswap` writes for the same label, UUID and size, `blkid` and
//! `swaplabel` read the label and UUID back, the rest of the area is a
//! hole, and the same description gives the same UUID.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::os::unix::fs::FileExt;
use std::process::Command;

const SWAP_BYTES: u64 = 8 << 20;

fn extract(img: &std::path::Path, offset: u64, len: u64, to: &std::path::Path) {
    let src = fs::File::open(img).unwrap();
    let mut buf = vec![0u8; usize::try_from(len).unwrap()];
    src.read_exact_at(&mut buf, offset).unwrap();
    fs::write(to, &buf).unwrap();
}

#[test]
fn a_swap_partition_is_mkswaps_and_blkid_reads_it() {
    if !support::have_all(&["mkswap", "blkid", "swaplabel", "sfdisk"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("board.yaml");
    fs::write(
        &yaml,
        "image: { name: t }\npartitions:\n  - name: root\n    size: 8MiB\n    fs: { type: ext4 }\n  - name: swap\n    type: swap\n    size: 8MiB\n    fs: { type: swap, label: swap-a }\n  - name: swap2\n    size: 1MiB\n    fs: { type: swap, uuid: 0fc63daf-8483-4772-8e79-3d69d8477de4 }\n",
    )
    .unwrap();
    let mut uuids = Vec::new();
    for out in ["one", "two"] {
        let out = dir.path().join(out);
        let r = support::composer(&["build", yaml.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let img = out.join("t.img");
        let (_, parts) = support::sfdisk(&img);
        assert_eq!(parts[1].size * 512, SWAP_BYTES);
        let ours = out.join("swap.part");
        extract(&img, parts[1].start * 512, SWAP_BYTES, &ours);
        let probe = support::run(
            Command::new("blkid")
                .args(["-p", "-o", "export"])
                .arg(&ours),
        );
        assert!(probe.contains("TYPE=swap"), "{probe}");
        assert!(probe.contains("LABEL=swap-a"), "{probe}");
        assert!(probe.contains("VERSION=1"), "{probe}");
        let uuid = probe
            .lines()
            .find_map(|l| l.strip_prefix("UUID="))
            .expect("a UUID")
            .to_string();
        let shown = support::run(Command::new("swaplabel").arg(&ours));
        assert!(
            shown.contains("LABEL: swap-a") && shown.contains(&uuid),
            "{shown}"
        );
        // mkswap with the same label, UUID and size writes the same page;
        // nothing else of the area is written by either.
        let theirs = out.join("mkswap.part");
        support::sparse_file(&theirs, SWAP_BYTES);
        support::run(
            Command::new("mkswap")
                .args(["-L", "swap-a", "-U", &uuid, "-p", "4096"])
                .arg(&theirs),
        );
        let (a, b) = (fs::read(&ours).unwrap(), fs::read(&theirs).unwrap());
        assert!(a == b, "the swap area differs from mkswap's");
        let second = out.join("swap2.part");
        extract(&img, parts[2].start * 512, 1 << 20, &second);
        let probe = support::run(
            Command::new("blkid")
                .args(["-p", "-o", "export"])
                .arg(&second),
        );
        assert!(
            probe.contains("UUID=0fc63daf-8483-4772-8e79-3d69d8477de4"),
            "{probe}"
        );
        uuids.push(uuid);
    }
    assert_eq!(uuids[0], uuids[1], "the UUID derives from the seed");
}

#[test]
fn a_swap_partition_needs_a_size() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("board.yaml");
    fs::write(
        &yaml,
        "image: { name: t }\npartitions:\n  - name: swap\n    fs: { type: swap }\n",
    )
    .unwrap();
    let r = support::composer(&["validate", yaml.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("board.yaml:3:11: partitions[0].name: swap partition \"swap\" needs a size"),
        "{err}"
    );
}
