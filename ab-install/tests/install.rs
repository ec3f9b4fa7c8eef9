//! ab-install against a directory that plays the device (`AB_ROOT`): a
//! regular file stands for the slot partition, a directory for the
//! OS-image partition, `ab-switch` and `mount` are logged. Installs what
//! it should, where it should, and refuses — with nothing written and no
//! trial scheduled — a bundle of another key, a tampered byte, another
//! compatible string, a running trial, a slot too small, the other slot kind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bundle::{key_from_seed, seal, Base, DeltaWriter, Manifest, SlotKind, Verity};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const SLOT_BYTES: u64 = 1 << 20;

fn slot_contents() -> Vec<u8> {
    (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn make_bundle(slot: &[u8], seed: u8, compatible: &str, kind: SlotKind) -> Vec<u8> {
    sealed(slot, slot, None, None, seed, compatible, kind)
}

/// A partition bundle whose slot contents have dm-verity values.
fn verity_bundle(slot: &[u8], seed: u8, root_hash: u8) -> Vec<u8> {
    let verity = Verity {
        root_hash: [root_hash; 32],
        hash_offset: 4096,
    };
    sealed(
        slot,
        slot,
        None,
        Some(verity),
        seed,
        "board",
        SlotKind::Partition,
    )
}

/// The header, manifest and signature at the front of `bundle`.
fn head(bundle: &[u8]) -> Vec<u8> {
    let mut r = bundle;
    bundle::read_signed(&mut r).unwrap().to_bytes()
}

/// A bundle whose payload is `plain` compressed, for the slot contents
/// `slot`, a delta when `base` is given.
fn sealed(
    plain: &[u8],
    slot: &[u8],
    base: Option<Base>,
    verity: Option<Verity>,
    seed: u8,
    compatible: &str,
    kind: SlotKind,
) -> Vec<u8> {
    let payload = zstd::bulk::compress(plain, 3).unwrap();
    let chunk_size = bundle::MIN_CHUNK_BYTES;
    let m = Manifest {
        image: "dev".into(),
        version: "1.0".into(),
        compatible: compatible.into(),
        slot: kind,
        slot_size: slot.len() as u64,
        slot_sha256: Sha256::digest(slot).into(),
        verity,
        base,
        payload_size: payload.len() as u64,
        chunk_size,
        chunks: payload
            .chunks(chunk_size as usize)
            .map(|c| Sha256::digest(c).into())
            .collect(),
    };
    let mut out = seal(&m, &key_from_seed([seed; 32])).unwrap();
    out.extend_from_slice(&payload);
    out
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// A device running slot A; `images`: the OS-image-file variant.
fn device(root: &Path, images: bool) {
    let key = key_from_seed([1; 32]).verifying_key();
    write(
        root,
        "etc/image-composer/keys/vendor.pub",
        bundle::encode_public_key(&key).as_bytes(),
    );
    write(root, "etc/image-composer/compatible", b"board\n");
    write(root, "run/ab/slot", b"A\n");
    write(root, "run/ab/trial", b"no\n");
    write(root, "proc/self/mountinfo", b"");
    write(
        root,
        "media/config/ab/state",
        b"active=A\ntrial=\ntries=0\nfailed=\n",
    );
    if images {
        write(root, "proc/cmdline", b"console=ttyS0 rootos=PARTLABEL=os\n");
        write(
            root,
            "media/rfs/os/versions.conf",
            b"# slots\nA=rootfs-A.img\nB=rootfs-B.img\n",
        );
        write(root, "media/rfs/os/rootfs-A.img", &base_contents());
        write(root, "media/rfs/os/rootfs-B.img", &[0xBB; 4096]);
        write(root, "media/rfs/os/old.ab-install.partial", b"x");
    } else {
        write(
            root,
            "proc/cmdline",
            b"console=ttyS0 rootA=/dev/slotA rootB=/dev/slotB\n",
        );
        write(root, "dev/slotA", &base_contents());
        write(root, "dev/slotB", &vec![0xEE; SLOT_BYTES as usize]);
    }
    let log = root.join("log");
    write(
        root,
        "bin/ab-switch",
        format!("#!/bin/sh\necho \"switch $*\" >>{}\n", log.display()).as_bytes(),
    );
    write(
        root,
        "bin/mount",
        format!("#!/bin/sh\necho \"mount $*\" >>{}\n", log.display()).as_bytes(),
    );
    for b in ["bin/ab-switch", "bin/mount"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join(b), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Runs ab-install on `bundle` (as a file, or on stdin); exit code and stderr.
fn install(root: &Path, bundle: &[u8], stdin: bool) -> (i32, String) {
    let path = root.join("update.bundle");
    std::fs::write(&path, bundle).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ab-install"));
    cmd.env("AB_ROOT", root)
        .env("AB_SWITCH", root.join("bin/ab-switch"))
        .env("AB_MOUNT", root.join("bin/mount"))
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.arg(if stdin { "-".into() } else { path });
    let mut child = cmd.spawn().unwrap();
    if stdin {
        let mut input = child.stdin.take().unwrap();
        let _ = input.write_all(bundle);
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    (
        out.status.code().unwrap(),
        err + &String::from_utf8_lossy(&out.stdout),
    )
}

fn log(root: &Path) -> String {
    std::fs::read_to_string(root.join("log")).unwrap_or_default()
}

#[test]
fn installs_a_partition_slot_from_a_file_and_from_stdin() {
    for stdin in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        device(root, false);
        let slot = slot_contents();
        let (code, out) = install(
            root,
            &make_bundle(&slot, 1, "board", SlotKind::Partition),
            stdin,
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("installed dev 1.0 into slot B"), "{out}");
        let dev = std::fs::read(root.join("dev/slotB")).unwrap();
        assert_eq!(&dev[..slot.len()], &slot[..]);
        assert!(
            dev[slot.len()..].iter().all(|&b| b == 0xEE),
            "nothing past the slot contents"
        );
        assert_eq!(log(root), "switch B\n");
    }
}

#[test]
fn cancels_a_pending_trial_of_the_target_first() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    device(root, false);
    write(
        root,
        "media/config/ab/state",
        b"active=A\ntrial=B\ntries=0\nfailed=\n",
    );
    let (code, out) = install(
        root,
        &make_bundle(&slot_contents(), 1, "board", SlotKind::Partition),
        false,
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(log(root), "switch none\nswitch B\n");
}

#[test]
fn refusals_write_nothing() {
    let slot = slot_contents();
    let good = make_bundle(&slot, 1, "board", SlotKind::Partition);
    let mut tampered = good.clone();
    let last = tampered.len() - 3;
    tampered[last] ^= 1;
    let file = SlotKind::File {
        name: "rootfs-1.0.img".into(),
    };
    let big = vec![7u8; SLOT_BYTES as usize + 1];
    // (what, bundle, a file of the device changed first, the refusal)
    type Case<'a> = (&'a str, Vec<u8>, Option<(&'a str, &'a [u8])>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "another key",
            make_bundle(&slot, 2, "board", SlotKind::Partition),
            None,
            "does not verify with any trusted key",
        ),
        ("tampered byte", tampered, None, "does not match its hash"),
        (
            "compatible",
            make_bundle(&slot, 1, "other-board", SlotKind::Partition),
            None,
            "the bundle is for 'other-board', this device is 'board'",
        ),
        (
            "on trial",
            good.clone(),
            Some(("run/ab/trial", b"yes\n")),
            "runs on trial",
        ),
        (
            "too small",
            make_bundle(&big, 1, "board", SlotKind::Partition),
            None,
            "holds 1048576 bytes, the bundle needs 1048577",
        ),
        (
            "slot kind",
            make_bundle(&slot, 1, "board", file),
            None,
            "this device boots partitions",
        ),
        (
            "no keys",
            good.clone(),
            Some(("etc/image-composer/keys/vendor.pub", b"junk")),
            "not an image-composer key file",
        ),
        (
            "format",
            {
                let mut b = good.clone();
                b[8] = 7;
                b
            },
            None,
            "format version 7 is unknown",
        ),
        (
            "truncated",
            good[..good.len() - 100].to_vec(),
            None,
            "truncated",
        ),
    ];
    for (what, bundle, change, text) in cases {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        device(root, false);
        if let Some((rel, data)) = change {
            write(root, rel, data);
        }
        let (code, out) = install(root, &bundle, false);
        assert_eq!(code, 2, "{what}: {out}");
        assert!(out.contains(text), "{what}: wanted {text:?} in {out}");
        let dev = std::fs::read(root.join("dev/slotB")).unwrap();
        assert!(
            dev.iter().all(|&b| b == 0xEE),
            "{what}: the slot was written"
        );
        assert_eq!(log(root), "", "{what}: a state change");
    }
}

#[test]
fn installs_an_image_file_and_points_versions_conf_at_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    device(root, true);
    let slot = slot_contents();
    let kind = SlotKind::File {
        name: "rootfs-1.0.img".into(),
    };
    let (code, out) = install(root, &make_bundle(&slot, 1, "board", kind), false);
    assert_eq!(code, 0, "{out}");
    let os = root.join("media/rfs/os");
    assert_eq!(std::fs::read(os.join("B-rootfs-1.0.img")).unwrap(), slot);
    assert_eq!(
        std::fs::read_to_string(os.join("versions.conf")).unwrap(),
        "# slots\nA=rootfs-A.img\nB=B-rootfs-1.0.img\n"
    );
    assert_eq!(
        std::fs::read(os.join("rootfs-A.img")).unwrap(),
        base_contents()
    );
    let mut names: Vec<_> = std::fs::read_dir(&os)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["B-rootfs-1.0.img", "rootfs-A.img", "versions.conf"],
        "old B and leftovers removed"
    );
    let os_s = os.display();
    assert_eq!(
        log(root),
        format!("mount -o remount,rw {os_s}\nmount -o remount,ro {os_s}\nswitch B\n")
    );

    // The partition kind is refused on this device, nothing touched.
    let before = std::fs::read(os.join("versions.conf")).unwrap();
    let (code, out) = install(
        root,
        &make_bundle(&slot, 1, "board", SlotKind::Partition),
        false,
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("this device boots image files"), "{out}");
    assert_eq!(std::fs::read(os.join("versions.conf")).unwrap(), before);
}

/// What the running slot A holds: the base of the deltas below.
fn base_contents() -> Vec<u8> {
    (0..200_000u32).map(|i| (i % 251) as u8 ^ 0xAA).collect()
}

/// A delta from `base_contents()`: the new contents and the delta bundle.
/// `tweak` changes the manifest's base or the ops' result before sealing.
fn make_delta(
    seed: u8,
    kind: SlotKind,
    tweak: impl FnOnce(&mut Base, &mut Vec<u8>),
) -> (Vec<u8>, Vec<u8>) {
    let old = base_contents();
    let mut ops = DeltaWriter::new(Vec::new());
    ops.copy(50_000, 100_000).unwrap();
    ops.zero(8192).unwrap();
    ops.data(b"a new file").unwrap();
    ops.copy(0, 50_000).unwrap();
    let (plain, _) = ops.finish().unwrap();
    let mut new = old[50_000..150_000].to_vec();
    new.extend([0; 8192]);
    new.extend(b"a new file");
    new.extend(&old[..50_000]);
    let mut base = Base {
        version: "0.9".into(),
        size: old.len() as u64,
        sha256: Sha256::digest(&old).into(),
    };
    let mut claimed = new.clone();
    tweak(&mut base, &mut claimed);
    let bundle = sealed(&plain, &claimed, Some(base), None, seed, "board", kind);
    (new, bundle)
}

#[test]
fn applies_a_delta_to_the_running_slot() {
    for stdin in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        device(root, false);
        let (new, delta) = make_delta(1, SlotKind::Partition, |_, _| {});
        let (code, out) = install(root, &delta, stdin);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("as a delta from 0.9 to slot B"), "{out}");
        let dev = std::fs::read(root.join("dev/slotB")).unwrap();
        assert_eq!(&dev[..new.len()], &new[..]);
        assert!(dev[new.len()..].iter().all(|&b| b == 0xEE));
        assert_eq!(
            std::fs::read(root.join("dev/slotA")).unwrap(),
            base_contents()
        );
        assert_eq!(log(root), "switch B\n");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    device(root, true);
    let kind = SlotKind::File {
        name: "rootfs-1.0.img".into(),
    };
    let (new, delta) = make_delta(1, kind, |_, _| {});
    let (code, out) = install(root, &delta, false);
    assert_eq!(code, 0, "{out}");
    let os = root.join("media/rfs/os");
    assert_eq!(std::fs::read(os.join("B-rootfs-1.0.img")).unwrap(), new);
    assert!(std::fs::read_to_string(os.join("versions.conf"))
        .unwrap()
        .contains("B=B-rootfs-1.0.img"));
}

#[test]
fn a_delta_for_another_base_or_tampered_writes_nothing() {
    let (_, good) = make_delta(1, SlotKind::Partition, |_, _| {});
    let mut tampered = good.clone();
    let last = tampered.len() - 3;
    tampered[last] ^= 1;
    let mut other_base = base_contents();
    other_base[123_456] ^= 1;
    // (what, bundle, slot A's contents, from stdin, the refusal)
    type Case<'a> = (&'a str, Vec<u8>, Vec<u8>, bool, &'a str);
    let cases: Vec<Case> = vec![
        (
            "another base",
            good.clone(),
            other_base.clone(),
            false,
            "wrong base: the delta applies to 0.9",
        ),
        (
            "another base, stdin",
            good.clone(),
            other_base,
            true,
            "wrong base",
        ),
        (
            "short base",
            good.clone(),
            base_contents()[..1000].to_vec(),
            false,
            "fewer than the base's 200000 bytes",
        ),
        (
            "tampered byte",
            tampered,
            base_contents(),
            false,
            "does not match its hash",
        ),
        (
            "another key",
            make_delta(2, SlotKind::Partition, |_, _| {}).1,
            base_contents(),
            false,
            "does not verify",
        ),
        (
            "copy beyond the base",
            make_delta(1, SlotKind::Partition, |b, _| {
                b.size = 120_000;
                b.sha256 = Sha256::digest(&base_contents()[..120_000]).into();
            })
            .1,
            base_contents()[..120_000].to_vec(),
            false,
            "beyond the base's 120000 bytes",
        ),
        (
            "ops make another size",
            make_delta(1, SlotKind::Partition, |_, n| n.push(0)).1,
            base_contents(),
            false,
            "the delta makes 158202 bytes, the manifest says 158203",
        ),
    ];
    for (what, bundle, slot_a, stdin, text) in cases {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        device(root, false);
        write(root, "dev/slotA", &slot_a);
        let (code, out) = install(root, &bundle, stdin);
        assert_eq!(code, 2, "{what}: {out}");
        assert!(out.contains(text), "{what}: wanted {text:?} in {out}");
        let dev = std::fs::read(root.join("dev/slotB")).unwrap();
        assert!(
            dev.iter().all(|&b| b == 0xEE),
            "{what}: the slot was written"
        );
        assert_eq!(
            std::fs::read(root.join("dev/slotA")).unwrap(),
            slot_a,
            "{what}"
        );
        assert_eq!(log(root), "", "{what}: a state change");
    }
}

#[test]
fn a_delta_whose_result_differs_schedules_no_trial() {
    // Signed ops that make other bytes than the manifest's hash: found
    // while writing (a stream cannot be checked twice), so exit 1 and no
    // trial; the running slot is untouched.
    let (_, bad) = make_delta(1, SlotKind::Partition, |_, n| n[0] ^= 1);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    device(root, false);
    let (code, out) = install(root, &bad, true);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("SHA-256 differs from the manifest's"), "{out}");
    assert_eq!(log(root), "");
    assert_eq!(
        std::fs::read(root.join("dev/slotA")).unwrap(),
        base_contents()
    );
}

/// Runs `ab-install verity-open` with the stored manifest `file`.
fn verity_open(root: &Path, file: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ab-install"))
        .env("AB_ROOT", root)
        .args([
            "verity-open",
            "test-verity",
            "/nonexistent/slotB",
            "--manifest",
        ])
        .arg(file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    (out.status.code().unwrap(), err)
}

#[test]
fn stores_the_signed_manifest_of_a_verity_slot_before_the_trial() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    device(root, false);
    // The trial must find the stored manifest in place.
    let stored = root.join("media/config/ab/slot-B.manifest");
    write(
        root,
        "bin/ab-switch",
        format!(
            "#!/bin/sh\n[ -f {} ] && echo \"switch $* (manifest stored)\" >>{}\n",
            stored.display(),
            root.join("log").display()
        )
        .as_bytes(),
    );
    let slot = slot_contents();
    let bundle = verity_bundle(&slot, 1, 0xab);
    let (code, out) = install(root, &bundle, true);
    assert_eq!(code, 0, "{out}");
    assert_eq!(std::fs::read(&stored).unwrap(), head(&bundle));
    assert!(!root.join("media/config/ab/slot-B.manifest.new").exists());
    let config = root.join("media/config");
    assert_eq!(
        log(root),
        format!(
            "mount -o remount,rw {0}\nmount -o remount,ro {0}\nswitch B (manifest stored)\n",
            config.display()
        )
    );

    // The boot's check: the stored manifest opens with its values...
    let (code, err) = verity_open(root, &stored);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("opening /nonexistent/slotB"), "{err}");
    // ...but not when it is changed, signed by another key, followed by
    // bytes, without values, or when the initramfs has no key.
    let bad = root.join("bad.manifest");
    let mut flipped = head(&bundle);
    let key = b"verity-roothash=";
    let at = flipped.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    flipped[at] ^= 1;
    let no_values = head(&make_bundle(&slot, 1, "board", SlotKind::Partition));
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("changed", flipped, "refused: the signature does not verify"),
        (
            "another key",
            head(&verity_bundle(&slot, 2, 0xab)),
            "refused: the signature does not verify",
        ),
        (
            "trailing",
            [head(&bundle), b"x".to_vec()].concat(),
            "refused: data follows",
        ),
        ("no values", no_values, "has no dm-verity values"),
        (
            "truncated",
            head(&bundle)[..100].to_vec(),
            "refused: the bundle ends inside",
        ),
    ];
    for (what, bytes, text) in cases {
        std::fs::write(&bad, bytes).unwrap();
        let (code, err) = verity_open(root, &bad);
        assert_eq!(code, 1, "{what}: {err}");
        assert!(err.contains(text), "{what}: {err}");
        assert!(!err.contains("opening /nonexistent"), "{what}: {err}");
    }
    std::fs::remove_file(root.join("etc/image-composer/keys/vendor.pub")).unwrap();
    let (code, err) = verity_open(root, &stored);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no trusted keys"), "{err}");
}

#[test]
fn a_bundle_without_verity_values_removes_the_slots_stale_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    device(root, false);
    let slot = slot_contents();
    let old = head(&verity_bundle(&slot, 1, 0x11));
    write(root, "media/config/ab/slot-A.manifest", &old);
    write(root, "media/config/ab/slot-B.manifest", &old);
    let (code, out) = install(
        root,
        &make_bundle(&slot, 1, "board", SlotKind::Partition),
        false,
    );
    assert_eq!(code, 0, "{out}");
    assert!(!root.join("media/config/ab/slot-B.manifest").exists());
    assert_eq!(
        std::fs::read(root.join("media/config/ab/slot-A.manifest")).unwrap(),
        old,
        "the running slot's manifest is kept"
    );
    assert!(log(root).ends_with("switch B\n"), "{}", log(root));
    // A new verity bundle replaces an old manifest of the slot.
    let bundle = verity_bundle(&slot, 1, 0x22);
    write(root, "media/config/ab/slot-B.manifest", &old);
    let (code, out) = install(root, &bundle, false);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        std::fs::read(root.join("media/config/ab/slot-B.manifest")).unwrap(),
        head(&bundle)
    );
}
