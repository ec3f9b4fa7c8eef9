//! dm-verity hash trees (`verity: true` on squashfs, EROFS and compressed
//! EROFS) checked by cryptsetup's `veritysetup verify` with the root hash
//! the build publishes (`NAME.verity` beside the image, `plan --json`), and
//! refused by it after one flipped byte in the data or in the tree.
//! `unsquashfs` / `fsck.erofs --extract` still read the filesystem in front
//! of the tree.
//!
//! Needs cryptsetup-bin, squashfs-tools and erofs-utils; without them the
//! tests print a note and pass on a laptop, and fail when `CI` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::{composer, have_all, run, sfdisk};

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Two slots holding one filesystem `FS` with a hash tree.
const DESC: &str = r#"
image: { name: v, table: gpt, size: 32MiB, seed: verity-tests }
partitions:
  - name: rootA
    size: 8MiB
    fs: { FS, from: tree, verity: true }
  - name: rootB
    same-as: rootA
"#;

/// A small tree with compressible and incompressible files, a tail and
/// the description of `fs`.
fn make_tree(dir: &Path, fs: &str) {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("etc/hostname"), "verity\n").unwrap();
    let noise: Vec<u8> = (0..600_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(tree.join("noise"), noise).unwrap();
    std::fs::write(tree.join("zeros"), vec![0u8; 300_000]).unwrap();
    std::fs::write(dir.join("d.yaml"), DESC.replace("FS", fs)).unwrap();
}

/// `name=value` lines of a `.verity` file.
fn read_env(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Copies partition `name` of `image` out into `to`.
fn extract(image: &Path, name: &str, to: &Path) {
    let (_, parts) = sfdisk(image);
    let p = parts
        .iter()
        .find(|p| p.name.as_deref() == Some(name))
        .unwrap();
    let bytes = std::fs::read(image).unwrap();
    let (start, len) = (p.start as usize * 512, p.size as usize * 512);
    std::fs::write(to, &bytes[start..start + len]).unwrap();
}

fn verify(part: &Path, env: &BTreeMap<String, String>) -> (bool, String) {
    let out = Command::new("veritysetup")
        .arg("verify")
        .arg(part)
        .arg(part)
        .arg(&env["roothash"])
        .arg(format!("--hash-offset={}", env["hash_offset"]))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn flip(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at as usize] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

/// Reads `part`'s filesystem back with its own tool and checks a file.
type ReadBack = fn(part: &Path, scratch: &Path);

fn unsquashfs(part: &Path, _: &Path) {
    let listing = run(Command::new("unsquashfs").arg("-lln").arg(part));
    assert!(listing.contains("squashfs-root/etc/hostname"), "{listing}");
}

fn fsck_erofs(part: &Path, scratch: &Path) {
    let to = scratch.join("extract");
    let _ = std::fs::remove_dir_all(&to);
    run(Command::new("fsck.erofs")
        .arg(format!("--extract={}", to.display()))
        .arg(part));
    assert_eq!(
        std::fs::read_to_string(to.join("etc/hostname")).unwrap(),
        "verity\n"
    );
    assert_eq!(std::fs::read(to.join("zeros")).unwrap(), vec![0u8; 300_000]);
}

#[test]
fn squashfs_hash_tree_verifies() {
    check(
        "type: squashfs, compression: zstd",
        "unsquashfs",
        unsquashfs,
    );
}

#[test]
fn erofs_hash_tree_verifies() {
    check("type: erofs", "fsck.erofs", fsck_erofs);
}

/// Compressed clusters come from memory, the incompressible file and the
/// tails from their sources: both feed the tree.
#[test]
fn compressed_erofs_hash_tree_verifies() {
    check(
        "type: erofs, compression: lz4hc, pcluster-size: 16KiB",
        "fsck.erofs",
        fsck_erofs,
    );
}

/// Builds two slots of `fs` with a tree, checks them with veritysetup and
/// `reader`, flips bytes, builds again.
fn check(fs: &str, tool: &str, read_back: ReadBack) {
    if !have_all(&["veritysetup", tool, "sfdisk"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), fs);
    let desc = dir.path().join("d.yaml");
    let out = dir.path().join("out");
    let built = composer(&[
        "-q",
        "build",
        desc.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );

    // plan --json says what the build published (same inputs, same
    // SOURCE_DATE_EPOCH); each slot verifies with its own values (an EROFS
    // slot has its own filesystem UUID, so its own root hash; squashfs
    // slots have none and share it).
    let plan = composer(&["plan", "--json", desc.to_str().unwrap()]);
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let image = out.join("v.img");
    for slot in ["rootA", "rootB"] {
        let env = read_env(&out.join(format!("{slot}.verity")));
        assert_eq!(env["roothash"].len(), 64);
        assert_eq!(env["hash_offset"].parse::<u64>().unwrap() % 4096, 0);
        assert_eq!(
            env["hash_start_block"].parse::<u64>().unwrap(),
            env["hash_offset"].parse::<u64>().unwrap() / 4096 + 1
        );
        let v = &plan["verity"][slot];
        assert_eq!(v["roothash"], env["roothash"].as_str());
        assert_eq!(v["salt"], env["salt"].as_str());
        assert_eq!(v["data_blocks"].to_string(), env["data_blocks"]);
        assert_eq!(v["hash_offset"].to_string(), env["hash_offset"]);

        let part = dir.path().join(format!("{slot}.part"));
        extract(&image, slot, &part);
        let (ok, err) = verify(&part, &env);
        assert!(ok, "veritysetup verify {slot}: {err}");
        read_back(&part, dir.path());
    }
    let env = read_env(&out.join("rootA.verity"));

    // One flipped bit in the data, then one in the tree: refused.
    let part = dir.path().join("rootA.part");
    let data_end = env["hash_offset"].parse::<u64>().unwrap();
    let bad_data = dir.path().join("bad-data.part");
    std::fs::copy(&part, &bad_data).unwrap();
    flip(&bad_data, data_end / 2);
    let (ok, err) = verify(&bad_data, &env);
    assert!(!ok, "a flipped data byte verified");
    assert!(err.contains("Verification failed"), "{err}");
    let bad_tree = dir.path().join("bad-tree.part");
    std::fs::copy(&part, &bad_tree).unwrap();
    flip(&bad_tree, data_end + 4096 + 7);
    assert!(!verify(&bad_tree, &env).0, "a flipped tree byte verified");
    // Another root hash: refused.
    let mut other = env.clone();
    other.insert("roothash".into(), "00".repeat(32));
    assert!(!verify(&part, &other).0, "a wrong root hash verified");

    // A second build is bit-identical.
    let again = dir.path().join("again");
    let built = composer(&[
        "-q",
        "build",
        desc.to_str().unwrap(),
        "-o",
        again.to_str().unwrap(),
    ]);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    assert!(std::fs::read(&image).unwrap() == std::fs::read(again.join("v.img")).unwrap());
}

/// A boot partition listed before the EROFS slots it names carries each
/// slot's own root hash (`${verity.NAME.roothash}` in a file's `text:`),
/// the values the build publishes and veritysetup accepts; a name without
/// a hash tree is refused before anything is written (exit 2).
#[test]
fn boot_entries_carry_each_slots_root_hash() {
    if !have_all(&["veritysetup", "mtype", "sfdisk"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), "type: erofs");
    let desc = dir.path().join("d.yaml");
    let text = std::fs::read_to_string(&desc).unwrap().replace(
        "partitions:\n",
        "partitions:\n  - name: boot\n    size: 4MiB\n    fs:\n      type: vfat\n      files:\n        /a.conf: { text: \"options roothash=${verity.rootA.roothash} roothashoffset=${verity.rootA.hash_offset} cost=$$5\\n\" }\n        /b.conf: { text: \"options roothash=${verity.rootB.roothash}\\n\" }\n",
    );
    std::fs::write(&desc, &text).unwrap();
    let out = dir.path().join("out");
    let built = composer(&[
        "-q",
        "build",
        desc.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let image = out.join("v.img");
    let (_, parts) = sfdisk(&image);
    let spec = format!("{}@@{}", image.display(), parts[0].start * 512);
    let a = read_env(&out.join("rootA.verity"));
    let b = read_env(&out.join("rootB.verity"));
    assert_ne!(
        a["roothash"], b["roothash"],
        "EROFS slots have their own UUIDs"
    );
    assert_eq!(
        run(Command::new("mtype").args(["-i", &spec, "::/a.conf"])),
        format!(
            "options roothash={} roothashoffset={} cost=$5\n",
            a["roothash"], a["hash_offset"]
        )
    );
    assert_eq!(
        run(Command::new("mtype").args(["-i", &spec, "::/b.conf"])),
        format!("options roothash={}\n", b["roothash"])
    );
    let part = dir.path().join("rootB.part");
    extract(&image, "rootB", &part);
    assert!(verify(&part, &b).0);

    // A name without a tree: bad input, nothing written.
    std::fs::write(&desc, text.replace("verity.rootB.", "verity.boot.")).unwrap();
    let refused = dir.path().join("refused");
    let built = composer(&[
        "build",
        desc.to_str().unwrap(),
        "-o",
        refused.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&built.stderr);
    assert_eq!(built.status.code(), Some(2), "{err}");
    assert!(
        err.contains("d.yaml:10:26: partitions[0].fs.files./b.conf.text: ${verity.boot.roothash}: 'boot' has no dm-verity hash tree"),
        "{err}"
    );
    assert!(!refused.join("v.img").exists());
}
