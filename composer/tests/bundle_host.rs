//! `image-composer keygen`, `bundle` and `bundle-info` end to end: the
//! bundle holds exactly the slot's bytes (checked against a `build` of the
//! same description and against e2fsck), is reproducible, verifies only
//! with its own key, and every malformed description, key or bundle is
//! refused with exit 2 and a message that says why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use support::{composer, unpack};

const DESC: &str = "\
image: { name: dev, table: gpt }
partitions:
  - name: rootA
    size: 8MiB
    fs: { type: ext4, label: root, from: tree }
  - name: rootB
    same-as: rootA
  - name: os
    size: 32MiB
    fs: { type: vfat, files: { /rootfs-A.img: { artifact: rootfs } } }
artifacts:
  rootfs: { fs: { type: ext4, from: tree }, size: 8MiB }
update:
  compatible: test-board
  version: 1.0.0
  slot: rootA
";

fn setup(dir: &Path, desc: &str) {
    std::fs::create_dir_all(dir.join("tree/etc")).unwrap();
    std::fs::write(dir.join("tree/etc/os-release"), "ID=test\n").unwrap();
    std::fs::write(dir.join("board.yaml"), desc).unwrap();
}

fn ok(args: &[&str]) -> String {
    let out = composer(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {err}");
    String::from_utf8_lossy(&out.stdout).into_owned() + &err
}

fn refused(args: &[&str], text: &str) {
    let out = composer(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(text), "{args:?}: wanted {text:?} in {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `bundle` of `d/board.yaml` into `d/out` with `d/keys/bundle.key`.
fn bundle_of(d: &Path, version: &str) -> PathBuf {
    let (desc, out, key) = (
        d.join("board.yaml"),
        d.join("out"),
        d.join("keys/bundle.key"),
    );
    ok(&[
        "bundle",
        s(&desc),
        "-o",
        s(&out),
        "--key",
        s(&key),
        "--version",
        version,
    ]);
    out.join(format!("dev-{version}.bundle"))
}

/// Runs `delta` between two bundles of `bundle_of` into `out`, signed with
/// the key under `d/keys`; the delta bundle's path.
fn delta_of(d: &Path, from: &Path, to: &Path, out: &Path) -> PathBuf {
    ok(&[
        "delta",
        "--from",
        s(from),
        "--to",
        s(to),
        "-o",
        s(out),
        "--key",
        s(&d.join("keys/bundle.key")),
    ]);
    let stem = |p: &Path| p.file_stem().unwrap().to_str().unwrap().to_owned();
    let from_version = stem(from).trim_start_matches("dev-").to_owned();
    out.join(format!("{}-from-{from_version}.bundle", stem(to)))
}

#[test]
fn partition_bundle_holds_the_slot_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, DESC);
    ok(&["keygen", "-o", s(&d.join("keys"))]);
    ok(&["keygen", "-o", s(&d.join("keys")), "--name", "other"]);
    let mode = std::fs::metadata(d.join("keys/bundle.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    let out = composer(&["keygen", "-o", s(&d.join("keys"))]);
    assert_eq!(out.status.code(), Some(1), "a key is never overwritten");

    let desc = d.join("board.yaml");
    let key = d.join("keys/bundle.key");
    ok(&[
        "bundle",
        s(&desc),
        "-o",
        s(&d.join("out")),
        "--key",
        s(&key),
    ]);
    let bundle = d.join("out/dev-1.0.0.bundle");
    let first = std::fs::read(&bundle).unwrap();
    let left: Vec<_> = std::fs::read_dir(d.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "no scratch files left: {left:?}");

    // Reproducible: same inputs, key and SOURCE_DATE_EPOCH (the tests' env).
    ok(&[
        "bundle",
        s(&desc),
        "-o",
        s(&d.join("out2")),
        "--key",
        s(&key),
    ]);
    assert_eq!(
        std::fs::read(d.join("out2/dev-1.0.0.bundle")).unwrap(),
        first
    );

    // The slot contents are the bytes of rootA in the composed disk image.
    if !support::have("sfdisk") {
        return;
    }
    ok(&["build", s(&desc), "-o", s(&d.join("img"))]);
    let info = ok(&[
        "bundle-info",
        s(&bundle),
        "--key",
        s(&d.join("keys/bundle.pub")),
    ]);
    assert!(info.contains("compatible=test-board\n"), "{info}");
    assert!(info.contains("slot=partition\n"), "{info}");
    assert!(!info.contains("verity-"), "no dm-verity values: {info}");
    assert!(info.contains("signature verified"), "{info}");
    let (_, parts) = support::sfdisk(&d.join("img/dev.img"));
    let root_a = &parts[0];
    let mut image = std::fs::File::open(d.join("img/dev.img")).unwrap();
    let mut slot = vec![0u8; (root_a.size * 512) as usize];
    std::io::Seek::seek(&mut image, std::io::SeekFrom::Start(root_a.start * 512)).unwrap();
    image.read_exact(&mut slot).unwrap();
    let sha = sha256_hex(&slot);
    assert!(info.contains(&format!("slot-sha256={sha}\n")), "{info}");
    assert!(
        info.contains(&format!("slot-size={}\n", slot.len())),
        "{info}"
    );

    // Another key, a changed byte, a truncation, an unknown format: exit 2, why.
    refused(
        &[
            "bundle-info",
            s(&bundle),
            "--key",
            s(&d.join("keys/other.pub")),
        ],
        "does not verify",
    );
    let bad = d.join("bad.bundle");
    let mut t = first.clone();
    let last = t.len() - 10;
    t[last] ^= 0x40;
    std::fs::write(&bad, &t).unwrap();
    refused(&["bundle-info", s(&bad)], "does not match its hash");
    std::fs::write(&bad, &first[..first.len() / 2]).unwrap();
    refused(&["bundle-info", s(&bad)], "truncated");
    let mut t = first.clone();
    t[8] = 9;
    std::fs::write(&bad, &t).unwrap();
    refused(&["bundle-info", s(&bad)], "format version 9 is unknown");
    refused(
        &["bundle-info", s(&bundle), "--key", s(&key)],
        "not an image-composer key file",
    );
    refused(
        &[
            "bundle",
            s(&desc),
            "-o",
            s(&d.join("out")),
            "--key",
            s(&d.join("keys/bundle.pub")),
        ],
        "pass the `.key` file",
    );
    refused(
        &[
            "bundle",
            s(&desc),
            "-o",
            s(&d.join("out")),
            "--key",
            s(&key),
            "--version",
            "1/2",
        ],
        "\"1/2\" is not a valid version",
    );
}

/// `verity-roothash=`/`verity-hash-offset=` lines of `bundle-info`'s output.
fn verity_lines(info: &str) -> String {
    info.lines()
        .filter(|l| l.starts_with("verity-"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The same lines from `plan --json`'s `verity.rootA`.
fn planned_verity(desc: &Path) -> String {
    let out = composer(&["plan", "--json", s(desc)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let v = &plan["verity"]["rootA"];
    format!(
        "verity-roothash={}\nverity-hash-offset={}\n",
        v["roothash"].as_str().unwrap(),
        v["hash_offset"].as_u64().unwrap()
    )
}

#[test]
fn verity_slot_bundle_carries_its_root_hash() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(
        d,
        &DESC.replace(
            "fs: { type: ext4, label: root, from: tree }",
            "fs: { type: squashfs, from: tree, verity: true }",
        ),
    );
    ok(&["keygen", "-o", s(&d.join("keys"))]);
    let desc = d.join("board.yaml");
    let pubkey = d.join("keys/bundle.pub");
    let v1 = bundle_of(d, "1.0.0");
    let info1 = ok(&["bundle-info", s(&v1), "--key", s(&pubkey)]);
    let want1 = planned_verity(&desc);
    assert_eq!(verity_lines(&info1), want1, "{info1}");
    // A new root has a new root hash; a delta carries the new one.
    std::fs::write(d.join("tree/etc/os-release"), "ID=test\nVERSION=2\n").unwrap();
    let v2 = bundle_of(d, "2.0.0");
    let info2 = ok(&["bundle-info", s(&v2), "--key", s(&pubkey)]);
    let want2 = planned_verity(&desc);
    assert_ne!(want1, want2);
    assert_eq!(verity_lines(&info2), want2, "{info2}");
    let delta = delta_of(d, &v1, &v2, &d.join("delta"));
    let info = ok(&["bundle-info", s(&delta), "--key", s(&pubkey)]);
    assert_eq!(verity_lines(&info), want2, "{info}");
}

#[test]
fn artifact_bundle_names_an_image_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, &DESC.replace("slot: rootA", "slot-artifact: rootfs"));
    ok(&["keygen", "-o", s(d)]);
    ok(&[
        "bundle",
        s(&d.join("board.yaml")),
        "-o",
        s(d),
        "--key",
        s(&d.join("bundle.key")),
        "--version",
        "2.0+x",
    ]);
    let info = ok(&["bundle-info", s(&d.join("dev-2.0+x.bundle"))]);
    assert!(
        info.contains("slot=file\nslot-file=rootfs-2.0+x.img\n"),
        "{info}"
    );
    assert!(info.contains(&format!("slot-size={}\n", 8 << 20)), "{info}");
    assert!(info.contains("signature not checked"), "{info}");
}

#[test]
fn update_section_problems_are_reported_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        (
            "slot: rootA",
            "slot: rootC",
            "update.slot: no partition named \"rootC\"",
        ),
        (
            "slot: rootA",
            "slot-artifact: rootfz",
            "did you mean 'rootfs'?",
        ),
        (
            "slot: rootA",
            "slot: rootA\n  slot-artifact: rootfs",
            "`slot` and `slot-artifact` are both given",
        ),
        ("slot: rootA", "slots: rootA", "unknown key 'slots'"),
        (
            "compatible: test-board",
            "compatible: a/b",
            "\"a/b\" is not a valid compatible",
        ),
    ];
    for (from, to, text) in cases {
        setup(d, &DESC.replace(from, to));
        refused(&["validate", s(&d.join("board.yaml"))], text);
    }
    setup(d, &DESC.replace("  version: 1.0.0\n", ""));
    ok(&["keygen", "-o", s(d)]);
    refused(
        &[
            "bundle",
            s(&d.join("board.yaml")),
            "-o",
            s(d),
            "--key",
            s(&d.join("bundle.key")),
        ],
        "no version for the bundle",
    );
    setup(d, DESC.split("update:").next().unwrap());
    refused(
        &[
            "bundle",
            s(&d.join("board.yaml")),
            "-o",
            s(d),
            "--key",
            s(&d.join("bundle.key")),
        ],
        "no `update:` section",
    );
}

/// Applies `delta` to `v1`'s slot contents as the device does; they must
/// give `v2`'s. Returns the delta's manifest.
fn assert_applies(d: &Path, delta: &Path, v1: &Path, v2: &Path) -> bundle::Manifest {
    let mut r = std::io::BufReader::new(std::fs::File::open(delta).unwrap());
    let pubkey =
        bundle::decode_public_key(&std::fs::read_to_string(d.join("keys/bundle.pub")).unwrap())
            .unwrap();
    let (_, m) = bundle::read_signed(&mut r)
        .unwrap()
        .verify(&[pubkey])
        .unwrap();
    let base = unpack(v1);
    bundle::check_base(&base, m.base.as_ref().unwrap()).unwrap();
    let mut made = Vec::new();
    bundle::delta_reader(r, &m, base)
        .unwrap()
        .read_to_end(&mut made)
        .unwrap();
    let mut want = Vec::new();
    unpack(v2).read_to_end(&mut want).unwrap();
    assert_eq!(made.len(), want.len());
    assert!(made == want, "the delta's result differs from the new slot");
    m
}

/// The size of the delta between two bundles of a tree holding `size`
/// bytes of noise in one file, before and after `edit`; checks that the
/// delta applies.
fn delta_after_edit(size: usize, edit: impl FnOnce(&mut Vec<u8>)) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, DESC);
    std::fs::create_dir_all(d.join("tree/usr/lib")).unwrap();
    let mut big = noise(size, 7);
    std::fs::write(d.join("tree/usr/lib/big.bin"), &big).unwrap();
    ok(&["keygen", "-o", s(&d.join("keys"))]);
    let v1 = bundle_of(d, "1.0.0");
    edit(&mut big);
    std::fs::write(d.join("tree/usr/lib/big.bin"), &big).unwrap();
    let v2 = bundle_of(d, "1.1.0");
    let delta = delta_of(d, &v1, &v2, &d.join("delta"));
    assert_applies(d, &delta, &v1, &v2);
    std::fs::metadata(&delta).unwrap().len()
}

/// A rebuilt file whose bytes moved (an insertion) and changed in a few
/// places costs its changed bytes, not the blocks after the insertion:
/// the delta finds the shifted bytes in the base at any offset.
#[test]
fn an_edited_file_costs_its_changed_bytes() {
    let size = delta_after_edit(1 << 20, |big| {
        big.splice(300_000..300_000, noise(1000, 8));
        for i in 0..10 {
            big[400_000 + i * 50_000] ^= 0x5a;
        }
    });
    // 1000 new bytes, 10 edits, the inode and bitmaps; 700 KB after the
    // insertion moved (noise: incompressible).
    assert!(size < 20_000, "delta of {size} bytes");
}

#[test]
fn edits_a_few_hundred_bytes_apart_cost_their_bytes() {
    // A rebuilt binary: 300 bytes inserted, then 100 edits of 8 bytes,
    // 2.5 KiB apart (no 4 KiB block of the old file is left whole).
    let size = delta_after_edit(256 << 10, |big| {
        big.splice(1000..1000, noise(300, 9));
        for i in 0..100 {
            let at = 2000 + i * 2500;
            big[at..at + 8].copy_from_slice(&noise(8, 10 + i as u32));
        }
    });
    // 1100 new bytes and ~100 copies, the inode and bitmaps: not the
    // 256 KiB file.
    assert!(size < 20_000, "delta of {size} bytes");
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Deterministic incompressible bytes.
fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn delta_carries_only_what_changed_and_applies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, DESC);
    std::fs::create_dir_all(d.join("tree/usr/lib")).unwrap();
    std::fs::write(d.join("tree/usr/lib/big.bin"), noise(1 << 20, 1)).unwrap();
    std::fs::write(d.join("tree/usr/lib/small.bin"), noise(20_000, 2)).unwrap();
    ok(&["keygen", "-o", s(&d.join("keys"))]);
    let key = d.join("keys/bundle.key");
    let bundle_of = |version: &str| bundle_of(d, version);
    let v1 = bundle_of("1.0.0");
    // A file that grows in front of the big one, a new file, one removed.
    std::fs::write(
        d.join("tree/etc/os-release"),
        "ID=test\nVERSION=2\n".repeat(500),
    )
    .unwrap();
    std::fs::write(d.join("tree/usr/lib/new.bin"), noise(100_000, 3)).unwrap();
    std::fs::remove_file(d.join("tree/usr/lib/small.bin")).unwrap();
    let v2 = bundle_of("1.1.0");
    let delta_to = |o: &Path| delta_of(d, &v1, &v2, o);
    let delta = delta_to(&d.join("delta"));
    let (full, small) = (
        std::fs::metadata(&v2).unwrap().len(),
        std::fs::metadata(&delta).unwrap().len(),
    );
    assert!(
        small < 200_000 && small * 4 < full,
        "delta {small} bytes, full bundle {full}"
    );
    let again = delta_to(&d.join("delta2"));
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&delta).unwrap()
    );

    let info = ok(&[
        "bundle-info",
        s(&delta),
        "--key",
        s(&d.join("keys/bundle.pub")),
    ]);
    assert!(info.contains("version=1.1.0\n"), "{info}");
    assert!(info.contains("base-version=1.0.0\n"), "{info}");
    assert!(info.contains("delta against dev 1.0.0"), "{info}");

    // Applied to the old slot contents, the delta gives the new ones.
    let m = assert_applies(d, &delta, &v1, &v2);
    // Against the new contents as base, it is refused.
    let err = bundle::check_base(&unpack(&v2), m.base.as_ref().unwrap()).unwrap_err();
    assert!(err.to_string().contains("wrong base"), "{err}");

    // Refusals, exit 2, nothing written.
    let mut tampered = std::fs::read(&v1).unwrap();
    let last = tampered.len() - 2;
    tampered[last] ^= 1;
    std::fs::write(d.join("tampered.bundle"), tampered).unwrap();
    std::fs::write(
        d.join("other.yaml"),
        DESC.replace("compatible: test-board", "compatible: other-board"),
    )
    .unwrap();
    ok(&[
        "bundle",
        s(&d.join("other.yaml")),
        "-o",
        s(&d.join("other")),
        "--key",
        s(&key),
    ]);
    let bad = d.join("bad");
    for (from, to, text) in [
        (delta.clone(), v2.clone(), "it is a delta bundle"),
        (
            d.join("tampered.bundle"),
            v2.clone(),
            "does not match its hash",
        ),
        (
            v1.clone(),
            d.join("other/dev-1.0.0.bundle"),
            "its compatible is 'other-board', the --from bundle's is 'test-board'",
        ),
        (d.join("missing.bundle"), v2.clone(), "cannot open"),
    ] {
        refused(
            &[
                "delta",
                "--from",
                s(&from),
                "--to",
                s(&to),
                "-o",
                s(&bad),
                "--key",
                s(&key),
            ],
            text,
        );
        assert!(!bad.join("dev-1.1.0-from-1.0.0.bundle").exists());
    }
}
