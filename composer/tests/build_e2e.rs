//! The whole pipeline, through the binary: the default example built and
//! checked by tools nobody here wrote (sfdisk, sgdisk, e2fsck, debugfs,
//! fsck.vfat, mtools, bmaptool), reproducibility, exit statuses, and that a
//! failed build leaves nothing under a final name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;
use support::{composer, have_all, repo_root, run, sfdisk};

const ESP: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
const ROOT_ARM64: &str = "b921b045-1df0-41c3-af44-4c6f280d3fae";
const LINUX: &str = "0fc63daf-8483-4772-8e79-3d69d8477de4";

fn build_example(out: &Path) {
    let config = repo_root().join("examples/embedded/board.yaml");
    let result = composer(&[
        "build",
        config.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        result.status.success(),
        "build failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
}

/// Writes `yaml` as `dir/name` and builds it into `dir/out`.
fn build_yaml(dir: &Path, name: &str, yaml: &str) -> (std::path::PathBuf, std::process::Output) {
    let config = dir.join(name);
    fs::write(&config, yaml).unwrap();
    let out = dir.join("out");
    let result = composer(&[
        "build",
        config.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    (out, result)
}

#[test]
fn embedded_example_is_correct_by_independent_tools() {
    if !have_all(&[
        "sfdisk",
        "sgdisk",
        "e2fsck",
        "debugfs",
        "fsck.vfat",
        "mtype",
        "bmaptool",
    ]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    build_example(out);
    let img = out.join("embedded.img");
    let mut names: Vec<String> = fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "embedded.img",
            "embedded.img.bmap",
            "embedded.img.zst",
            "rootfs.ext4",
            "rootfs.ext4.bmap"
        ]
    );
    let unpacked = run(Command::new("sh").arg("-c").arg(format!(
        "zstd -dc {} | cmp - {} && echo same",
        out.join("embedded.img.zst").display(),
        out.join("embedded.img").display()
    )));
    assert_eq!(unpacked.trim(), "same", "the .zst is the image");

    // The table, as sfdisk reads it.
    let (json, parts) = sfdisk(&img);
    assert_eq!(json["partitiontable"]["label"], "gpt");
    assert_eq!(json["partitiontable"]["sectorsize"], 512);
    let got: Vec<(&str, &str)> = parts
        .iter()
        .map(|p| (p.name.as_deref().unwrap(), p.type_.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("boot", ESP),
            ("rootA", ROOT_ARM64),
            ("rootB", ROOT_ARM64),
            ("config", LINUX),
            ("overlay", LINUX),
            ("data", LINUX),
        ]
    );
    assert!(parts.iter().all(|p| p.start % 2048 == 0), "1 MiB aligned");
    assert_eq!(parts[0].size, 16 * 2048);
    let uuids: std::collections::BTreeSet<_> = parts.iter().map(|p| p.uuid.clone()).collect();
    assert_eq!(uuids.len(), parts.len(), "every partition has its own UUID");
    let sgdisk = run(Command::new("sgdisk").arg("-v").arg(&img));
    assert!(sgdisk.contains("No problems found"), "{sgdisk}");

    // The bootloader blob at 32 KiB, outside the table.
    let blob = fs::read(repo_root().join("examples/embedded/bootloader.bin")).unwrap();
    let image = fs::read(&img).unwrap();
    assert_eq!(&image[32768..32768 + blob.len()], &blob[..]);

    // Every ext4 partition is clean; the root slots hold the tree.
    for p in &parts[1..] {
        let spec = format!("{}?offset={}", img.display(), p.start * 512);
        let fsck = Command::new("e2fsck")
            .args(["-fn", &spec])
            .output()
            .unwrap();
        assert!(
            fsck.status.success(),
            "e2fsck {}: {}{}",
            p.name.as_deref().unwrap(),
            String::from_utf8_lossy(&fsck.stdout),
            String::from_utf8_lossy(&fsck.stderr)
        );
    }
    for slot in &parts[1..3] {
        let spec = format!("{}?offset={}", img.display(), slot.start * 512);
        let os_release = run(Command::new("debugfs").args(["-R", "cat /etc/os-release", &spec]));
        let source =
            fs::read_to_string(repo_root().join("examples/embedded/rootfs/etc/os-release"))
                .unwrap();
        assert_eq!(os_release, source);
        let stat = run(Command::new("debugfs").args(["-R", "stat /usr/bin/hello", &spec]));
        assert!(
            stat.contains("User:     0   Group:     0"),
            "owned by root: {stat}"
        );
        assert!(stat.contains("Mode:  0755"), "{stat}");
        let link = run(Command::new("debugfs").args(["-R", "stat /bin", &spec]));
        assert!(link.contains("Fast link dest: \"usr/bin\""), "{link}");
    }
    // Both slots are the same filesystem, byte for byte.
    let slot = |p: &support::SfdiskPart| {
        &image[(p.start * 512) as usize..((p.start + p.size) * 512) as usize]
    };
    assert!(slot(&parts[1]) == slot(&parts[2]), "rootA and rootB differ");

    // The boot partition: fsck.vfat on its bytes, files read back by mtools.
    let boot = &parts[0];
    let boot_img = out.join("boot.vfat");
    fs::write(&boot_img, slot(boot)).unwrap();
    run(Command::new("fsck.vfat").arg("-n").arg(&boot_img));
    let spec = format!("{}@@{}", img.display(), boot.start * 512);
    let conf = run(Command::new("mtype").args(["-i", &spec, "::/extlinux/extlinux.conf"]));
    let source =
        fs::read_to_string(repo_root().join("examples/embedded/boot/extlinux/extlinux.conf"))
            .unwrap();
    assert_eq!(conf, source);

    // The standalone artifact is a clean filesystem with its own bmap.
    let rootfs = out.join("rootfs.ext4");
    run(Command::new("e2fsck").arg("-fn").arg(&rootfs));

    // bmaptool accepts the bmap, verifies every range, and the copy is the image.
    let copy = out.join("copy.img");
    run(Command::new("bmaptool").arg("copy").arg(&img).arg(&copy));
    assert!(
        fs::read(&copy).unwrap() == image,
        "bmaptool copy differs from the image"
    );
    let copy = out.join("copy.ext4");
    run(Command::new("bmaptool").arg("copy").arg(&rootfs).arg(&copy));
    assert!(fs::read(&copy).unwrap() == fs::read(&rootfs).unwrap());
}

#[test]
fn two_builds_are_bit_identical() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    build_example(a.path());
    build_example(b.path());
    for name in [
        "embedded.img",
        "embedded.img.bmap",
        "embedded.img.zst",
        "rootfs.ext4",
        "rootfs.ext4.bmap",
    ] {
        let (x, y) = (
            fs::read(a.path().join(name)).unwrap(),
            fs::read(b.path().join(name)).unwrap(),
        );
        assert!(x == y, "{name} differs between two builds");
    }
}

#[test]
fn the_image_is_sparse_and_maps_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    build_example(dir.path());
    let img = dir.path().join("embedded.img");
    let meta = fs::metadata(&img).unwrap();
    assert_eq!(meta.len(), 256 << 20);
    use std::os::unix::fs::MetadataExt;
    let allocated = meta.blocks() * 512;
    assert!(
        allocated < 32 << 20,
        "{allocated} bytes allocated of a mostly empty image"
    );
    let bmap = fs::read_to_string(dir.path().join("embedded.img.bmap")).unwrap();
    let mapped: u64 = bmap
        .split("<MappedBlocksCount>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap();
    assert!(
        mapped * 4096 >= allocated / 2,
        "journals are mapped as zeros: {mapped} blocks"
    );
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (out, result) = build_yaml(
        dir.path(),
        "bad.yaml",
        "image:\n  name: bad\n  size: 12QB\npartitions:\n  - name: a\n    image: missing.bin\n",
    );
    assert_eq!(result.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("bad.yaml:3:9: image.size: \"12QB\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("missing.bin"),
        "every problem at once: {stderr}"
    );
    assert!(stderr.contains("2 problems"), "{stderr}");
    assert!(!out.exists(), "-o was created before validating");
}

#[test]
fn a_problem_found_while_preparing_exits_2_with_its_location_before_o_exists() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir_all(tree.join("sub")).unwrap();
    // FAT cannot store links: preparing the filesystem fails, before
    // anything is written; the partition's content is named.
    std::os::unix::fs::symlink("sub", tree.join("link")).unwrap();
    let yaml = "image: { name: fails, size: 8MiB }\npartitions:\n  - { name: boot, size: 4MiB, fs: { type: vfat, from: tree } }\n";
    let (out, result) = build_yaml(dir.path(), "board.yaml", yaml);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("board.yaml:3:31: partitions[0].fs: "),
        "{stderr}"
    );
    assert!(!out.exists(), "-o was created before validating");
    let validate = composer(&["validate", dir.path().join("board.yaml").to_str().unwrap()]);
    assert_eq!(validate.status.code(), Some(2), "validate finds it too");
}

#[test]
fn a_failed_build_exits_1_and_leaves_no_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    // The output directory cannot be created: a file stands in its way.
    let config = dir.path().join("board.yaml");
    fs::write(&config, "image: { name: fails, size: 8MiB }\npartitions:\n  - { name: data, size: 6MiB, fs: { type: ext4 } }\n").unwrap();
    let blocker = dir.path().join("file");
    fs::write(&blocker, "").unwrap();
    let out = blocker.join("out");
    let result = composer(&[
        "build",
        config.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: creating output directory"),
        "{stderr}"
    );
    let left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "left behind: {left:?}");
}

#[test]
fn plan_json_matches_the_built_table() {
    if !have_all(&["sfdisk"]) {
        return;
    }
    let config = repo_root().join("examples/embedded/board.yaml");
    let result = composer(&["plan", "--json", config.to_str().unwrap()]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    build_example(dir.path());
    let (_, parts) = sfdisk(&dir.path().join("embedded.img"));
    let planned: Vec<_> = plan["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["number"].is_u64())
        .collect();
    assert_eq!(planned.len(), parts.len());
    for (p, s) in planned.iter().zip(&parts) {
        assert_eq!(p["start"].as_u64().unwrap(), s.start * 512, "{p}");
        assert_eq!(p["uuid"].as_str().map(str::to_lowercase), s.uuid);
    }
}

#[test]
fn a_blob_with_holes_keeps_the_partition_table_intact() {
    if !have_all(&["sgdisk", "sfdisk"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A 64 KiB "bootloader" starting at byte 0 whose bytes 440..32768 are
    // unused: the MBR partition entries and the GPT live there.
    let blob: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8 + 1).collect();
    fs::write(dir.path().join("boot0.bin"), &blob).unwrap();
    let (out, result) = build_yaml(dir.path(), "board.yaml", "image: { name: holes, size: 8MiB }\npartitions:\n  - name: boot0\n    offset: 0\n    in-table: false\n    image: boot0.bin\n    holes: [{ offset: 440, size: 32328 }]\n  - { name: data, size: 2MiB }\n");
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let img = out.join("holes.img");
    let sgdisk = run(Command::new("sgdisk").arg("-v").arg(&img));
    assert!(sgdisk.contains("No problems found"), "{sgdisk}");
    let (_, parts) = sfdisk(&img);
    assert_eq!(parts.len(), 1);
    let image = fs::read(&img).unwrap();
    assert_eq!(&image[..440], &blob[..440], "boot code before the hole");
    assert_eq!(
        &image[32768..65536],
        &blob[32768..],
        "the blob after the hole"
    );
    assert_eq!(
        &image[510..512],
        &[0x55, 0xAA],
        "the MBR signature survives"
    );
}
