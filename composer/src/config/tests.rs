//! Loader tests: a full description, then one test per diagnostic kind
//! (each asserting the rendered text once).

use super::*;
use crate::units::ByteSize;
use std::fs;
use tempfile::TempDir;

/// A directory with the inputs the descriptions below name.
fn inputs() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    fs::create_dir_all(p.join("images")).unwrap();
    fs::create_dir_all(p.join("target/etc")).unwrap();
    fs::create_dir_all(p.join("boot-files")).unwrap();
    fs::write(p.join("images/flash.bin"), b"blob").unwrap();
    fs::write(p.join("images/Image"), b"kernel").unwrap();
    fs::write(p.join("images/busybox"), b"bb").unwrap();
    // `target` also stands for a lib/modules/<version> directory.
    fs::write(p.join("target/modules.dep"), b"").unwrap();
    fs::write(p.join("device_table.txt"), b"/dev d 755 0 0 - - - - -\n").unwrap();
    dir
}

fn opts(dir: &TempDir) -> LoadOptions {
    LoadOptions {
        vars: BTreeMap::from([
            (
                "BINARIES_DIR".to_string(),
                dir.path().join("images").display().to_string(),
            ),
            (
                "TARGET_DIR".to_string(),
                dir.path().join("target").display().to_string(),
            ),
        ]),
        use_env: false,
        layer_dirs: vec![dir.path().join("layers")],
        input_dirs: vec![],
    }
}

/// Loads `text` as `<dir>/board.yaml`; renders errors with the dir stripped.
fn load_in(dir: &TempDir, text: &str) -> Result<Description, String> {
    let path = dir.path().join("board.yaml");
    load_str(text, &path, &opts(dir)).map_err(|e| {
        e.0.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
            .replace(&format!("{}/", dir.path().display()), "")
    })
}

/// The one diagnostic `text` gives (asserts there is exactly one).
fn one_error(text: &str) -> String {
    let dir = inputs();
    let e = load_in(&dir, text).unwrap_err();
    assert_eq!(
        e.lines().filter(|l| !l.starts_with("  help")).count(),
        1,
        "{e}"
    );
    e
}

const FULL: &str = r##"
image:
  name: sdcard
  table: hybrid
  size: 4GiB
  sector-size: 512
  align: 1MiB
  seed: my-board
  disk-uuid: 11111111-2222-4333-8444-555555555555
  mbr-signature: 0x1234abcd
  gpt-entries: 128
  gpt-location: 1MiB
artifacts:
  rootfs:
    fs: { type: ext4, label: rootfs, from: "${TARGET_DIR}", owners: root,
          device-table: device_table.txt, features: [metadata_csum, ^huge_file],
          rules: [{ path: /usr/bin/ping, caps: cap_net_raw+ep, mode: "4755" }],
          journal: 16MiB, journal-init: lazy, block-size: 4096, inode-ratio: 16KiB,
          reserved: 5, hash-seed: 0fc63daf-8483-4772-8e79-3d69d8477de4 }
    size: auto +20%
    output: rootfs.ext4
  initrd:
    initramfs:
      busybox: ${BINARIES_DIR}/busybox
      dirs: [/proc, /sys]
      symlinks: { /sbin/init: /bin/busybox }
      nodes: [{ path: /dev/console, type: c, major: 5, minor: 1, mode: "0600" }]
      init: { script: "#!/bin/sh\nexec switch_root /newroot $${INIT:-/sbin/init}\n" }
      compression: zstd
    output: initrd.img
partitions:
  - name: uboot
    offset: 32KiB
    in-table: false
    image: "${BINARIES_DIR}/flash.bin"
    holes: [{ offset: 0, size: 1KiB }]
  - name: boot
    type: esp
    size: 64MiB
    bootable: true
    hybrid: true
    fs:
      type: vfat
      label: BOOT
      fat: 32
      cluster-size: 4KiB
      volume-id: 0xdeadbeef
      files: { /Image: "${BINARIES_DIR}/Image", /initrd.img: { artifact: initrd } }
      from: boot-files/
  - name: root-a
    type: root-x86-64
    size: auto +64MiB
    artifact: rootfs
    read-only: true
  - name: root-b
    same-as: root-a
  - name: wipe
    size: 1MiB
    fill: zero
  - name: data
    size: fill
    mbr-type: 0x83
    uuid: 0fc63daf-8483-4772-8e79-3d69d8477de4
    align: 4MiB
    fs: { type: ext4 }
outputs: [raw, bmap, zst, raw]
"##;

#[test]
fn loads_a_full_description() {
    let dir = inputs();
    let d = load_in(&dir, FULL).unwrap();
    assert_eq!(d.image.name.value, "sdcard");
    assert_eq!(d.image.table.value, TableKind::Hybrid);
    assert_eq!(d.image.seed.value, "my-board");
    assert_eq!(d.image.mbr_signature.as_ref().unwrap().value, 0x1234_abcd);
    assert_eq!(d.image.name.span.line, 3);
    assert_eq!(d.image.name.span.column, 9);
    let names: Vec<&str> = d.partitions.iter().map(|p| p.name.value.as_str()).collect();
    assert_eq!(names, ["uboot", "boot", "root-a", "root-b", "wipe", "data"]);
    let uboot = &d.partitions[0];
    assert!(!uboot.in_table.value);
    assert_eq!(uboot.offset.as_ref().unwrap().value, ByteSize(32 * 1024));
    assert_eq!(uboot.key, "partitions[0]");
    assert_eq!(
        d.image.gpt_location.as_ref().unwrap().value,
        ByteSize(1 << 20)
    );
    let Content::Image(img) = &uboot.content.value else {
        panic!("{:?}", uboot.content)
    };
    assert_eq!(img.path, dir.path().join("images/flash.bin"));
    assert_eq!(img.key, "partitions[0].image");
    let boot = &d.partitions[1];
    let Content::Fs(Filesystem::Vfat(v)) = &boot.content.value else {
        panic!()
    };
    assert_eq!(v.files.len(), 2);
    assert_eq!(v.files[0].dest.value, "/Image");
    assert!(matches!(&v.files[1].source, FileRef::Artifact(a) if a.value == "initrd"));
    assert_eq!(v.sources.from[0].path, dir.path().join("boot-files/"));
    assert_eq!(v.volume_id.as_ref().unwrap().value, 0xdead_beef);
    assert_eq!(
        d.partitions[2].size.as_ref().unwrap().value,
        SizeSpec::Auto(Headroom::Bytes(ByteSize(64 << 20)))
    );
    assert!(matches!(&d.partitions[3].content.value, Content::SameAs(r) if r.value == "root-a"));
    assert_eq!(d.partitions[4].content.value, Content::Zero);
    assert_eq!(d.partitions[5].size.as_ref().unwrap().value, SizeSpec::Fill);
    assert_eq!(d.partitions[5].mbr_type.as_ref().unwrap().value, 0x83);
    let rootfs = d.artifact("rootfs").unwrap();
    assert_eq!(rootfs.size.value, SizeSpec::Auto(Headroom::Percent(20)));
    let Content::Fs(Filesystem::Ext4(e)) = &rootfs.content.value else {
        panic!()
    };
    assert_eq!(e.journal.value, Journal::Size(ByteSize(16 << 20)));
    assert_eq!(e.journal_init.value, JournalInit::Lazy);
    assert_eq!(e.reserved.value, 5);
    assert_eq!(e.ownership.rules[0].mode.as_ref().unwrap().value, 0o4755);
    assert_eq!(
        e.features[1].value,
        Feature {
            name: "huge_file".into(),
            enabled: false
        }
    );
    let initrd = d.artifact("initrd").unwrap();
    let Content::Initramfs(i) = &initrd.content.value else {
        panic!()
    };
    assert_eq!(i.compression.value, Compression::Zstd);
    assert_eq!(i.nodes[0].major, 5);
    let Some(Init::Script(s)) = &i.init else {
        panic!()
    };
    assert!(s.value.contains("${INIT:-/sbin/init}"), "{}", s.value);
    let outs: Vec<OutputKind> = d.outputs.iter().map(|o| o.value).collect();
    assert_eq!(outs, [OutputKind::Raw, OutputKind::Bmap, OutputKind::Zst]);
}

#[test]
fn defaults_are_filled_in() {
    let dir = inputs();
    let d = load_in(
        &dir,
        "image: { name: sd }\npartitions:\n  - name: data\n    size: 1GiB\n",
    )
    .unwrap();
    assert_eq!(d.image.table.value, TableKind::Gpt);
    assert_eq!(d.image.size.value, ImageSize::Auto);
    assert_eq!(d.image.sector_size.value, 512);
    assert_eq!(d.image.align.value, ByteSize(1 << 20));
    assert_eq!(d.image.seed.value, "sd");
    let p = &d.partitions[0];
    assert!(p.in_table.value);
    assert_eq!(p.content.value, Content::Empty);
    let outs: Vec<OutputKind> = d.outputs.iter().map(|o| o.value).collect();
    assert_eq!(outs, [OutputKind::Raw, OutputKind::Bmap]);
}

#[test]
fn reports_every_problem_at_once_in_file_order() {
    let dir = inputs();
    let e = load_in(
        &dir,
        "image: { name: sd, table: gtp }\npartitions:\n  - name: a\n    size: 12QB\n  - name: b\n    sise: 1G\n",
    )
    .unwrap_err();
    let lines: Vec<&str> = e.lines().filter(|l| !l.starts_with("  help")).collect();
    assert_eq!(
        lines,
        [
            "board.yaml:1:27: image.table: \"gtp\" is not a partition table kind",
            "board.yaml:4:11: partitions[0].size: \"12QB\" is not a size",
            "board.yaml:6:5: partitions[1].sise: unknown key 'sise'",
        ]
    );
}

#[test]
fn not_a_size() {
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - name: a\n    size: 12QB\n"),
        "board.yaml:4:11: partitions[0].size: \"12QB\" is not a size\n  help: write a size (\"64MiB\"), auto, \"auto +64MiB\", \"auto +20%\" or fill"
    );
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - name: a\n    size: 1G\n    offset: 3 parsecs\n"),
        "board.yaml:5:13: partitions[0].offset: \"3 parsecs\" is not a size\n  help: write a number with a unit, e.g. \"64MiB\" or \"1G\""
    );
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - name: a\n    size: auto +200 %%\n"),
        "board.yaml:4:11: partitions[0].size: \"auto +200 %%\" has an invalid percentage\n  help: write a whole percentage from 0 to 1000, e.g. \"auto +20%\""
    );
    // One percentage and one size at most.
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - name: a\n    size: auto +10% +20%\n"),
        "board.yaml:4:11: partitions[0].size: \"auto +10% +20%\" has two percentages\n  help: write at most one percentage and one size, e.g. \"auto +30% +13MiB\""
    );
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - name: a\n    size: auto +1MiB +2MiB\n"),
        "board.yaml:4:11: partitions[0].size: \"auto +1MiB +2MiB\" has two sizes\n  help: write at most one percentage and one size, e.g. \"auto +30% +13MiB\""
    );
}

#[test]
fn wic_overhead_factor_and_extra_space() {
    let dir = tempfile::tempdir().unwrap();
    for (text, percent) in [
        ("auto +30% +13MiB", 30),
        ("auto +13MiB +30%", 30),
        ("auto+0%+13MiB", 0),
    ] {
        let d = load_in(
            &dir,
            &format!("image: {{ name: sd }}\npartitions:\n  - {{ name: a, size: \"{text}\", fs: {{ type: ext4 }} }}\n"),
        )
        .unwrap();
        assert_eq!(
            d.partitions[0].size.as_ref().unwrap().value,
            SizeSpec::Auto(Headroom::PercentAndBytes(percent, ByteSize(13 << 20))),
            "{text}"
        );
    }
}

#[test]
fn unknown_keys_suggest_and_list() {
    assert_eq!(
        one_error("image: { name: sd, sector_size: 512 }\n"),
        "board.yaml:1:20: image.sector_size: unknown key 'sector_size'\n  help: did you mean 'sector-size'? valid keys: name, table, size, sector-size, align, seed, disk-uuid, mbr-signature, gpt-entries, gpt-location, gpt-no-backup, protective-entry, extended-partition"
    );
}

#[test]
fn duplicate_partition_names() {
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: a, size: 1G }\n  - { name: a, size: 2G }\n"),
        "board.yaml:4:13: partitions[1].name: a second partition named \"a\"\n  help: the first is on line 3; rename one (partition names are unique)"
    );
}

#[test]
fn missing_image_and_name() {
    assert_eq!(
        one_error("partitions: []\n"),
        "board.yaml:1:1: missing key 'image'\n  help: add `image: { name: sdcard }` (the name of the output files)"
    );
    assert_eq!(
        one_error("image: { table: gpt }\n"),
        "board.yaml:1:8: image: missing key 'name'\n  help: add `name: sdcard` (the stem of the output files)"
    );
    assert_eq!(
        one_error("image: { name: \"my card\" }\n"),
        "board.yaml:1:16: image.name: \"my card\" is not a valid image name\n  help: use letters, digits, '.', '_' and '-' (it names the output files)"
    );
}

#[test]
fn enum_values() {
    assert_eq!(
        one_error("image: { name: sd }\noutputs: [raw, zstd]\n"),
        "board.yaml:2:16: outputs[1]: \"zstd\" is not an output format\n  help: write 'zst': that output is the file sd.img.zst; use one of: raw, bmap, zst, xz, gz, simg, qcow2"
    );
    // `img` is the raw image's extension, not a misspelt `simg`.
    assert_eq!(
        one_error("image: { name: sd }\noutputs: [img, bmap]\n"),
        "board.yaml:2:11: outputs[0]: \"img\" is not an output format\n  help: write 'raw': that output is the file sd.img; use one of: raw, bmap, zst, xz, gz, simg, qcow2"
    );
    assert_eq!(
        one_error("image: { name: sd }\noutputs: [raw, zts]\n"),
        "board.yaml:2:16: outputs[1]: \"zts\" is not an output format\n  help: did you mean 'zst'? use one of: raw, bmap, zst, xz, gz, simg, qcow2"
    );
    assert_eq!(
        one_error("image: { name: sd, sector-size: 1024 }\n"),
        "board.yaml:1:33: image.sector-size: \"1024\" is not a supported sector size\n  help: use 512 (SD cards, most eMMC) or 4096 (4Kn disks, UFS)"
    );
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: a, size: 1G, bootable: yes }\n"),
        "board.yaml:3:36: partitions[0].bootable: \"yes\" is not true or false\n  help: write true or false"
    );
}

#[test]
fn wrong_shapes() {
    assert_eq!(
        one_error("image: sd\n"),
        "board.yaml:1:8: image: expected a map, found \"sd\"\n  help: write `image: { name: sdcard, table: gpt }`"
    );
    assert_eq!(
        one_error("image: { name: sd }\npartitions: { name: a }\n"),
        "board.yaml:2:13: partitions: expected a list, found a map\n  help: write `partitions: [ { name: boot, ... } ]`"
    );
}

#[test]
fn two_contents_and_same_as_with_size() {
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - name: a\n    fs: { type: ext4 }\n    image: x.bin\n"),
        "board.yaml:5:5: partitions[0].image: a second content ('fs' is already set on line 4)\n  help: keep one of fs and image: a partition holds one content"
    );
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: a, fs: { type: ext4 } }\n  - { name: b, same-as: a, size: 1G }\n"),
        "board.yaml:4:34: partitions[1].size: same-as takes the size of 'a'\n  help: remove size, or use `artifact:` to share content with a size of its own"
    );
}

#[test]
fn references_and_cycles() {
    assert_eq!(
        one_error("image: { name: sd }\nartifacts:\n  rootfs: { fs: { type: ext4 } }\npartitions:\n  - { name: a, artifact: rootsf }\n"),
        "board.yaml:5:26: partitions[0].artifact: no artifact named \"rootsf\"\n  help: did you mean 'rootfs'? defined artifacts: rootfs"
    );
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: a, same-as: b }\n  - { name: b, same-as: a }\n"),
        "board.yaml:3:25: partitions[0].same-as: same-as loops: a -> b -> a\n  help: give one of these partitions its own content"
    );
    assert_eq!(
        one_error(
            "image: { name: sd }\npartitions:\n  - { name: a, same-as: c, size: 1G }\n"
                .replace(", size: 1G", "")
                .as_str()
        ),
        "board.yaml:3:25: partitions[0].same-as: no partition named \"c\"\n  help: partitions: a"
    );
    assert_eq!(
        one_error("image: { name: sd }\nartifacts:\n  x: { fs: { type: vfat, files: { /y: { artifact: y } } } }\n  y: { fs: { type: vfat, files: { /x: { artifact: x } } } }\n"),
        "board.yaml:3:51: artifacts.x.fs.files./y.artifact: artifact \"x\" contains itself: x -> y -> x\n  help: an artifact cannot be a file inside itself; break the loop"
    );
}

#[test]
fn fill_rules() {
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: a, size: fill }\n  - { name: b, size: fill }\n"),
        "board.yaml:4:22: partitions[1].size: a second `size: fill`\n  help: only one partition can take the rest of the disk (the first is at board.yaml:3:22); give this one a size"
    );
    assert_eq!(
        one_error("image: { name: sd }\nartifacts:\n  r: { fs: { type: ext4 }, size: fill }\n"),
        "board.yaml:3:34: artifacts.r.size: \"fill\" is only for partitions\n  help: write a size (\"64MiB\"), auto, \"auto +64MiB\" or \"auto +20%\""
    );
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: a }\n"),
        "board.yaml:3:13: partitions[0].name: partition \"a\" has no content to size it by\n  help: give it a size (\"256MiB\" or fill), or a content (fs, image, artifact)"
    );
}

#[test]
fn uuids_and_numbers() {
    assert_eq!(
        one_error("image: { name: sd, disk-uuid: 1234 }\n"),
        "board.yaml:1:31: image.disk-uuid: \"1234\" is not a UUID\n  help: write 8-4-4-4-12 hexadecimal digits, e.g. \"0fc63daf-8483-4772-8e79-3d69d8477de4\""
    );
    assert_eq!(
        one_error("image: { name: sd, table: mbr, mbr-signature: 0x1234abcdef }\n"),
        "board.yaml:1:47: image.mbr-signature: \"0x1234abcdef\" is too large for an MBR signature\n  help: write a number from 0 to 4294967295"
    );
    assert_eq!(
        one_error("image: { name: sd, gpt-entries: 64 }\n"),
        "board.yaml:1:33: image.gpt-entries: \"64\" is not a usable GPT entry count\n  help: use a multiple of 4 from 128 (the UEFI minimum) to 16384"
    );
    assert_eq!(
        one_error("image: { name: sd, gpt-location: 1000 }\n"),
        "board.yaml:1:34: image.gpt-location: \"1000\" is not a usable GPT array location\n  help: use a whole number of 512-byte sectors from 1KiB on (after the MBR and the GPT header)"
    );
    assert_eq!(
        one_error("image: { name: sd, table: mbr, gpt-location: 1MiB }\n"),
        "board.yaml:1:46: image.gpt-location: gpt-location needs a GPT\n  help: remove gpt-location, or use `table: gpt`"
    );
    assert_eq!(
        one_error("image: { name: sd, table: mbr, disk-uuid: 0fc63daf-8483-4772-8e79-3d69d8477de4 }\n"),
        "board.yaml:1:43: image.disk-uuid: a disk UUID needs a GPT\n  help: remove disk-uuid, or use `table: gpt` (mbr-signature is the MBR's disk id)"
    );
}

#[test]
fn blobs_outside_the_table() {
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: spl, in-table: false, image: images/flash.bin }\n"),
        "board.yaml:3:28: partitions[0].in-table: a blob outside the table needs an offset\n  help: add `offset:` (e.g. 32KiB for i.MX boot images), or remove `in-table: false`"
    );
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: spl, image: images/flash.bin, size: 1M, holes: [{ offset: 0, size: 1K }] }\n"),
        "board.yaml:3:60: partitions[0].holes: holes are for blobs outside the table\n  help: add `in-table: false` and an offset, or remove holes"
    );
}

#[test]
fn partition_types() {
    let e = one_error(
        "image: { name: sd }\npartitions:\n  - { name: a, size: 1G, type: root-x86_64 }\n",
    );
    assert!(
        e.starts_with("board.yaml:3:32: partitions[0].type: \"root-x86_64\" is not a partition type\n  help: did you mean 'root-x86-64'? write a GUID, an MBR byte such as 0x83, or a shorthand such as linux, "),
        "{e}"
    );
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: a, size: 1G, type: 0x05 }\n"),
        "board.yaml:3:32: partitions[0].type: \"0x05\" is the MBR type byte of an extended partition, which image-composer writes itself\n  help: use the type of the partition's content, e.g. linux or esp"
    );
    assert_eq!(
        one_error("image: { name: sd, table: mbr }\npartitions:\n  - { name: a, size: 1G, mbr-type: 0xee }\n"),
        "board.yaml:3:36: partitions[0].mbr-type: \"0xee\" is the MBR type byte of the GPT protective entry, which image-composer writes itself\n  help: use the partition's type byte, e.g. 0x83 (Linux) or 0x0c (FAT32 LBA)"
    );
    let dir = inputs();
    let d = load_in(&dir, "image: { name: sd }\npartitions:\n  - { name: a, size: 1G, type: ESP }\n  - { name: b, size: 1G, type: 0x0c }\n").unwrap();
    assert!(
        crate::ptable::types::lookup(&d.partitions[0].part_type.as_ref().unwrap().value).is_some()
    );
}

#[test]
fn filesystems() {
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: a, fs: { type: btrfs } }\n"),
        "board.yaml:3:28: partitions[0].fs.type: \"btrfs\" is not a filesystem type\n  help: use one of: vfat, ext4, squashfs, erofs, swap"
    );
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: a, fs: { type: vfat, fat: 24 } }\n"),
        "board.yaml:3:39: partitions[0].fs.fat: \"24\" is not a FAT size\n  help: use 12, 16 or 32, or leave it out to choose from the size"
    );
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: a, fs: { type: vfat, cluster-size: 3K } }\n"),
        "board.yaml:3:48: partitions[0].fs.cluster-size: \"3KiB\" is not a FAT cluster size\n  help: use a power of two from 512 to 64KiB, e.g. 4KiB"
    );
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: a, fs: { type: ext4, block-size: 8K } }\n"),
        "board.yaml:3:46: partitions[0].fs.block-size: \"8KiB\" is not an ext4 block size\n  help: use 1024, 2048 or 4096 (the Linux page size bounds it)"
    );
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: a, fs: { type: ext4, label: a-very-long-rootfs-label } }\n"),
        "board.yaml:3:41: partitions[0].fs.label: \"a-very-long-rootfs-label\" is longer than 16 bytes\n  help: ext4 labels hold at most 16 bytes; shorten it"
    );
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: a, fs: { type: ext4, features: [metadata_csun] } }\n"),
        "board.yaml:3:45: partitions[0].fs.features[0]: \"metadata_csun\" is not an ext4 feature\n  help: did you mean 'metadata_csum'? see ext4(5) for the feature names; '^name' disables one"
    );
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: a, fs: { type: ext4, rules: [{ path: /bin/x, mode: \"0789\" }] } }\n"),
        "board.yaml:3:64: partitions[0].fs.rules[0].mode: \"0789\" is not a file mode\n  help: write the permission bits in octal, e.g. \"0755\""
    );
}

#[test]
fn missing_inputs_are_all_reported() {
    let dir = inputs();
    let e = load_in(
        &dir,
        "image: { name: sd }\npartitions:\n  - { name: a, image: nope.bin }\n  - { name: b, fs: { type: ext4, from: images/Image } }\n",
    )
    .unwrap_err();
    let root = dir.path().display().to_string();
    let _ = root;
    assert_eq!(
        e,
        "board.yaml:3:23: partitions[0].image: \"nope.bin\" does not exist\n  help: looked for nope.bin; fix the path or pass --input-dir\nboard.yaml:4:40: partitions[1].fs.from: \"images/Image\" is not a directory\n  help: name a directory here (images/Image)"
    );
}

#[test]
fn input_dirs_are_searched_after_the_file_dir() {
    let dir = inputs();
    let elsewhere = tempfile::tempdir().unwrap();
    fs::write(elsewhere.path().join("u-boot.bin"), b"x").unwrap();
    let mut o = opts(&dir);
    o.input_dirs = vec![elsewhere.path().to_path_buf()];
    let d = load_str(
        "image: { name: sd }\npartitions:\n  - { name: a, image: u-boot.bin }\n",
        &dir.path().join("board.yaml"),
        &o,
    )
    .unwrap();
    let Content::Image(p) = &d.partitions[0].content.value else {
        panic!()
    };
    assert_eq!(p.path, elsewhere.path().join("u-boot.bin"));
    assert_eq!(p.text, "u-boot.bin");
}

#[test]
fn unset_variables_are_reported_once() {
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: a, image: \"${DEPLOY_DIR}/x.bin\" }\n"),
        "board.yaml:3:23: partitions[0].image: \"${DEPLOY_DIR}/x.bin\" uses ${DEPLOY_DIR}, which is not set\n  help: pass --var DEPLOY_DIR=... or export DEPLOY_DIR"
    );
}

#[test]
fn variables_expand_in_keys_too() {
    let dir = inputs();
    let mut o = opts(&dir);
    o.vars.insert("KERNEL_IMAGETYPE".into(), "Image".into());
    let d = load_str(
        "image: { name: sd }\npartitions:\n  - name: boot\n    size: 64MiB\n    fs:\n      type: vfat\n      files:\n        /${KERNEL_IMAGETYPE}: \"${BINARIES_DIR}/${KERNEL_IMAGETYPE}\"\n",
        &dir.path().join("board.yaml"),
        &o,
    )
    .unwrap();
    let Content::Fs(Filesystem::Vfat(v)) = &d.partitions[0].content.value else {
        panic!()
    };
    assert_eq!(v.files[0].dest.value, "/Image");
    assert_eq!(
        v.files[0].dest.key,
        "partitions[0].fs.files./${KERNEL_IMAGETYPE}"
    );
}

fn write(dir: &TempDir, rel: &str, text: &str) {
    let p = dir.path().join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

#[test]
fn layers_merge_by_name_in_order() {
    let dir = inputs();
    write(
        &dir,
        "layers/ab/layer.yaml",
        "image: { table: gpt, align: 4MiB }\nartifacts:\n  rootfs: { fs: { type: ext4, label: base } }\npartitions:\n  - { name: boot, size: 32MiB, fs: { type: vfat } }\n  - { name: root-a, artifact: rootfs, size: auto }\n  - { name: root-b, same-as: root-a }\noutputs: [raw, bmap]\n",
    );
    write(
        &dir,
        "layers/overlay/layer.yaml",
        "layers: [ab]\npartitions:\n  - { name: overlay, size: 256MiB, fs: { type: ext4 }, after: root-b }\n",
    );
    let d = load_in(
        &dir,
        "image: { name: sd }\nlayers: [overlay, ab]\nartifacts:\n  rootfs: { fs: { type: ext4, label: mine } }\npartitions:\n  - { name: boot, size: 64MiB }\n  - { name: data, size: fill, fs: { type: ext4 } }\n  - { name: env, size: 1MiB, before: boot }\noutputs: [zst]\n",
    )
    .unwrap();
    let names: Vec<&str> = d.partitions.iter().map(|p| p.name.value.as_str()).collect();
    assert_eq!(
        names,
        ["env", "boot", "root-a", "root-b", "overlay", "data"]
    );
    assert_eq!(d.image.align.value, ByteSize(4 << 20));
    let boot = &d.partitions[1];
    assert_eq!(
        boot.size.as_ref().unwrap().value,
        SizeSpec::Fixed(ByteSize(64 << 20))
    );
    assert!(boot
        .size
        .as_ref()
        .unwrap()
        .span
        .file
        .ends_with("board.yaml"));
    assert!(matches!(
        boot.content.value,
        Content::Fs(Filesystem::Vfat(_))
    ));
    assert!(boot.content.span.file.ends_with("ab/layer.yaml"));
    let Content::Fs(Filesystem::Ext4(e)) = &d.artifact("rootfs").unwrap().content.value else {
        panic!()
    };
    assert_eq!(e.label.as_ref().unwrap().value, "mine");
    let outs: Vec<OutputKind> = d.outputs.iter().map(|o| o.value).collect();
    assert_eq!(outs, [OutputKind::Raw, OutputKind::Bmap, OutputKind::Zst]);
    assert_eq!(d.layer_files.len(), 2);
    assert!(d.layer_files[0].ends_with("ab/layer.yaml"));
}

#[test]
fn replaced_layer_values_need_no_variables() {
    let dir = inputs();
    write(
        &dir,
        "layers/ro/layer.yaml",
        "artifacts:\n  initrd: { initramfs: { busybox: \"${BUSYBOX}\" } }\nlayers: [\"${LAYER}\"]\n",
    );
    write(&dir, "layers/extra/layer.yaml", "outputs: [zst]\n");
    let mut o = opts(&dir);
    o.vars.insert("LAYER".into(), "extra".into());
    // The board replaces the layer's busybox value (a deep merge keeps the
    // rest of the layer's initramfs): ${BUSYBOX} is never expanded.
    let d = load_str(
        "image: { name: sd }\nlayers: [ro]\nartifacts:\n  initrd: { initramfs: { busybox: \"${BINARIES_DIR}/busybox\" } }\n",
        &dir.path().join("board.yaml"),
        &o,
    )
    .unwrap();
    let Content::Initramfs(i) = &d.artifact("initrd").unwrap().content.value else {
        panic!()
    };
    assert!(i.busybox.as_ref().unwrap().path.ends_with("images/busybox"));
    assert!(d.outputs.iter().any(|o| o.value == OutputKind::Zst));
}

/// The layer below the board in the merge tests: an initramfs artifact with
/// maps (`files`, `symlinks`, `modules`), lists and scalars, and an ext4
/// partition. `layers/ro/init` exists: a path the layer names resolves in
/// the layer's directory whatever file it is merged into.
fn merge_layer(dir: &TempDir) {
    write(dir, "layers/ro/init", "#!/bin/sh\n");
    write(
        dir,
        "layers/ro/layer.yaml",
        "artifacts:
  initrd:
    initramfs:
      busybox: ${BINARIES_DIR}/busybox
      files: { /init: init }
      symlinks: { /sbin/init: /bin/busybox }
      dirs: [/proc, /sys]
      modules: { dir: \"${TARGET_DIR}\", load: [virtio_blk, ext4] }
      compression: gzip
    output: initrd.img
partitions:
  - name: data
    size: fill
    fs:
      type: ext4
      label: data
      from: ${TARGET_DIR}
      journal: false
      rules: [{ path: /etc/shadow, mode: \"0600\" }]
",
    );
}

fn initramfs(d: &Description) -> &Initramfs {
    let Content::Initramfs(i) = &d.artifact("initrd").unwrap().content.value else {
        panic!("not an initramfs")
    };
    i
}

fn ext4(p: &Partition) -> &Ext4 {
    let Content::Fs(Filesystem::Ext4(e)) = &p.content.value else {
        panic!("not ext4")
    };
    e
}

#[test]
fn layers_deep_merge_an_initramfs() {
    let dir = inputs();
    merge_layer(&dir);
    let d = load_in(
        &dir,
        "image: { name: sd }
layers: [ro]
artifacts:
  initrd:
    initramfs:
      files: { /bin/extra: \"${BINARIES_DIR}/Image\" }
      modules: { load: [virtio_pci] }
      compression: zstd
",
    )
    .unwrap();
    let i = initramfs(&d);
    // Kept from the layer, at the layer's lines.
    let busybox = i.busybox.as_ref().unwrap();
    assert!(busybox.span.file.ends_with("layers/ro/layer.yaml"));
    assert_eq!(busybox.span.line, 4);
    assert_eq!(busybox.key, "artifacts.initrd.initramfs.busybox");
    assert_eq!(i.symlinks.len(), 1);
    assert_eq!(
        d.artifact("initrd").unwrap().output.as_ref().unwrap().value,
        "initrd.img"
    );
    // `files:` merged: the layer's entry first (its path resolved in the
    // layer's directory), then the board's.
    let dests: Vec<&str> = i.files.iter().map(|f| f.dest.value.as_str()).collect();
    assert_eq!(dests, ["/init", "/bin/extra"]);
    let FileRef::Path(init) = &i.files[0].source else {
        panic!()
    };
    assert!(init.path.ends_with("layers/ro/init"), "{:?}", init.path);
    assert!(i.files[0].dest.span.file.ends_with("layers/ro/layer.yaml"));
    assert!(i.files[1].dest.span.file.ends_with("board.yaml"));
    assert_eq!(i.files[1].dest.span.line, 6);
    // `modules:` merged: `dir` from the layer; `load` replaced, not appended.
    let m = i.modules.as_ref().unwrap();
    assert!(m.dir.span.file.ends_with("layers/ro/layer.yaml"));
    let load: Vec<&str> = m.load.iter().map(|l| l.value.as_str()).collect();
    assert_eq!(load, ["virtio_pci"]);
    assert!(m.load[0].span.file.ends_with("board.yaml"));
    assert_eq!(m.load[0].key, "artifacts.initrd.initramfs.modules.load[0]");
    // Scalars: later wins, with the board's span.
    assert_eq!(i.compression.value, Compression::Zstd);
    assert_eq!(
        (i.compression.span.line, i.compression.span.column),
        (8, 20)
    );
    assert!(i.compression.span.file.ends_with("board.yaml"));
    // Lists the board does not write are the layer's.
    let dirs: Vec<&str> = i.dirs.iter().map(|s| s.value.as_str()).collect();
    assert_eq!(dirs, ["/proc", "/sys"]);
}

#[test]
fn layers_deep_merge_an_ext4_fs_and_replace_its_lists() {
    let dir = inputs();
    merge_layer(&dir);
    // Without `type:` and with the same `type:`: both continue the layer's fs.
    for fs in [
        "{ label: mine, rules: [{ path: /etc/passwd, uid: 1 }] }",
        "{ type: ext4, label: mine, rules: [{ path: /etc/passwd, uid: 1 }] }",
    ] {
        let d = load_in(
            &dir,
            &format!(
                "image: {{ name: sd, size: 1GiB }}
layers: [ro]
partitions:
  - name: data
    fs: {fs}
"
            ),
        )
        .unwrap_or_else(|e| panic!("{fs}: {e}"));
        let e = ext4(d.partition("data").unwrap());
        let label = e.label.as_ref().unwrap();
        assert_eq!(label.value, "mine");
        assert!(label.span.file.ends_with("board.yaml"));
        assert!(e.sources.from[0]
            .span
            .file
            .ends_with("layers/ro/layer.yaml"));
        assert_eq!(e.journal.value, Journal::None, "{fs}");
        // `rules:` is replaced by the board's list, not appended to.
        let rules: Vec<&str> = e
            .ownership
            .rules
            .iter()
            .map(|r| r.path.value.as_str())
            .collect();
        assert_eq!(rules, ["/etc/passwd"], "{fs}");
        // The partition's own keys still merge per key.
        assert_eq!(
            d.partition("data").unwrap().size.as_ref().unwrap().value,
            SizeSpec::Fill
        );
    }
}

#[test]
fn layers_replace_content_of_another_kind() {
    let dir = inputs();
    merge_layer(&dir);
    // Each of these would be an error if merged into the layer's content
    // (`journal` is not a vfat key, `busybox` not an ext4 one, two contents).
    let cases = [
        ("data", "fs: { type: vfat, label: DATA }"),
        ("data", "image: ${BINARIES_DIR}/flash.bin"),
        ("data", "fill: zero"),
        ("data", "same-as: boot"),
    ];
    for (name, content) in cases {
        let d = load_in(
            &dir,
            &format!(
                "image: {{ name: sd, size: 1GiB }}
layers: [ro]
partitions:
  - {{ name: boot, size: 8MiB }}
  - name: {name}
    size: 64MiB
    {content}
"
            ),
        );
        let d = match (content.starts_with("same-as"), d) {
            // The layer's `size: fill` stays (partition keys merge per key)
            // and same-as takes no size: that is the one problem; a merged
            // fs would add "a second content".
            (true, Err(e)) => {
                assert!(e.contains("same-as takes the size"), "{e}");
                assert_eq!(
                    e.lines().filter(|l| !l.starts_with("  help")).count(),
                    1,
                    "{e}"
                );
                continue;
            }
            (_, d) => d.unwrap_or_else(|e| panic!("{content}: {e}")),
        };
        let c = &d.partition(name).unwrap().content;
        assert!(c.span.file.ends_with("board.yaml"), "{content}");
        assert!(
            !matches!(c.value, Content::Fs(Filesystem::Ext4(_))),
            "{content}"
        );
    }
    let d = load_in(
        &dir,
        "image: { name: sd }
layers: [ro]
artifacts:
  initrd: { fs: { type: ext4, label: now-ext4 } }
",
    )
    .unwrap();
    let a = d.artifact("initrd").unwrap();
    let Content::Fs(Filesystem::Ext4(e)) = &a.content.value else {
        panic!()
    };
    assert_eq!(e.label.as_ref().unwrap().value, "now-ext4");
    assert!(e.sources.from.is_empty());
    // The artifact's other keys are still merged.
    assert_eq!(a.output.as_ref().unwrap().value, "initrd.img");
}

#[test]
fn diagnostics_in_a_merged_block_point_to_each_file() {
    let dir = inputs();
    merge_layer(&dir);
    write(
        &dir,
        "layers/bad/layer.yaml",
        "layers: [ro]
artifacts:
  initrd:
    initramfs:
      files: { /etc/a: missing-a }
      modules: { load: [\"${NOPE}\"] }
",
    );
    let e = load_in(
        &dir,
        "image: { name: sd }
layers: [bad]
artifacts:
  initrd:
    initramfs:
      files: { /etc/b: missing-b }
      modules: { load: [loop] }
      compression: zstdd
      symlinks: { /sbin/init: \"\" }
",
    )
    .unwrap_err();
    // The board replaced the list holding ${NOPE}: no unset-variable error.
    assert_eq!(
        e,
        "board.yaml:6:24: artifacts.initrd.initramfs.files./etc/b: \"missing-b\" does not exist
  help: looked for missing-b; fix the path or pass --input-dir
board.yaml:8:20: artifacts.initrd.initramfs.compression: \"zstdd\" is not a compression
  help: did you mean 'zstd'? use one of: none, gzip, zstd, xz, lz4
board.yaml:9:31: artifacts.initrd.initramfs.symlinks./sbin/init: empty symlink target
  help: write the path the link points to
layers/bad/layer.yaml:5:24: artifacts.initrd.initramfs.files./etc/a: \"missing-a\" does not exist
  help: looked for layers/bad/missing-a; fix the path or pass --input-dir"
    );
}

#[test]
fn layer_diagnostics_point_into_the_layer() {
    let dir = inputs();
    write(
        &dir,
        "layers/bad/layer.yaml",
        "partitions:\n  - { name: boot, size: 32QB }\n",
    );
    let e = load_in(&dir, "image: { name: sd }\nlayers: [bad]\n").unwrap_err();
    assert_eq!(
        e,
        "layers/bad/layer.yaml:2:25: partitions[0].size: \"32QB\" is not a size\n  help: write a size (\"64MiB\"), auto, \"auto +64MiB\", \"auto +20%\" or fill"
    );
}

#[test]
fn layer_cycles_and_unknown_layers() {
    let dir = inputs();
    write(&dir, "a.yaml", "layers: [./b.yaml]\n");
    write(&dir, "b.yaml", "layers: [./a.yaml]\n");
    write(&dir, "layers/ab-slots/layer.yaml", "{}\n");
    let e = load_in(&dir, "image: { name: sd }\nlayers: [./a.yaml, ab-slot]\n").unwrap_err();
    let root = fs::canonicalize(dir.path()).unwrap().display().to_string();
    let e = e.replace(&format!("{root}/"), "");
    assert_eq!(
        e,
        "b.yaml:1:10: layers[0]: \"./a.yaml\" includes itself: a.yaml -> b.yaml -> a.yaml\n  help: remove one of the layers entries that close the loop\nboard.yaml:2:20: layers[1]: \"ab-slot\" is not a known layer\n  help: did you mean 'ab-slots'? available layers: ab-slots"
    );
}

#[test]
fn after_an_unknown_partition() {
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: a, size: 1G }\n  - { name: b, size: 1G, after: c }\n"),
        "board.yaml:4:33: partitions[1].after: no partition named \"c\" to place this one by\n  help: name a partition defined earlier (in a layer or above): a"
    );
}

#[test]
fn syntax_error() {
    assert_eq!(
        one_error("image: { name: sd\npartitions: []\n"),
        "board.yaml:2:11: invalid YAML: while parsing a flow mapping, did not find expected ',' or '}'\n  help: check the indentation and quoting around this place"
    );
}

#[test]
fn hybrid_rules() {
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: a, size: 1G, hybrid: true }\n"),
        "board.yaml:3:34: partitions[0].hybrid: hybrid needs `table: hybrid`\n  help: remove hybrid, or set `table: hybrid` under image"
    );
    let many = "image: { name: sd, table: hybrid }\npartitions:\n  - { name: a, size: 1G, hybrid: true }\n  - { name: b, size: 1G, hybrid: true }\n  - { name: c, size: 1G, hybrid: true }\n  - { name: d, size: 1G, hybrid: true }\n";
    assert_eq!(
        one_error(many),
        "board.yaml:6:34: partitions[3].hybrid: more than 3 partitions marked hybrid\n  help: a hybrid MBR has room for 3 partitions besides the GPT protective entry; unmark some"
    );
}

#[test]
fn colliding_outputs() {
    assert_eq!(
        one_error("image: { name: sd }\nartifacts:\n  r: { fs: { type: ext4 }, output: sd.img }\n"),
        "board.yaml:3:36: artifacts.r.output: \"sd.img\" is also the output of the image\n  help: choose another file name"
    );
}

#[test]
fn load_reports_an_unreadable_file() {
    let e = load(
        Path::new("/nonexistent/board.yaml"),
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert!(e.0[0]
        .to_string()
        .starts_with("/nonexistent/board.yaml: cannot read the description"));
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Fragments that make YAML structure, schema keys and values likely.
    const PIECES: [&str; 28] = [
        "image:",
        " name: sd",
        "partitions:",
        "\n",
        "  - ",
        "name: a",
        "size: ",
        "fill",
        "auto +",
        "12QB",
        "1GiB",
        "{",
        "}",
        "[",
        "]",
        ",",
        ": ",
        "fs:",
        "type: ext4",
        "same-as: a",
        "artifact: r",
        "artifacts:",
        " r:",
        "&x ",
        "*x",
        "'",
        "\"",
        "${X}",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn never_panics_on_fragments(parts in proptest::collection::vec(0..PIECES.len(), 0..60)) {
            let text: String = parts.iter().map(|&i| PIECES[i]).collect();
            let _ = load_str(&text, Path::new("fuzz.yaml"), &LoadOptions::default());
        }

        #[test]
        fn never_panics_on_mutations(pos in 0usize..2000, byte in any::<u8>(), cut in 0usize..2000) {
            let mut bytes = FULL.as_bytes().to_vec();
            let pos = pos % bytes.len();
            bytes[pos] = byte;
            bytes.truncate(cut.max(pos + 1));
            let text = String::from_utf8_lossy(&bytes);
            let _ = load_str(&text, Path::new("fuzz.yaml"), &LoadOptions::default());
        }

        #[test]
        fn never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
            let _ = load_str(&text, Path::new("fuzz.yaml"), &LoadOptions::default());
        }
    }
}

/// More diagnostic kinds, one line of input each (`\n` for newlines).
#[test]
fn more_diagnostics() {
    let cases: &[(&str, &str)] = &[
        (
            "image: { name: sd }\npartitions:\n  - { name: a, size: 1G, image: \"\" }\n",
            "board.yaml:3:33: partitions[0].image: empty path\n  help: write a file path",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: a, size: 1G, image: images }\n",
            "board.yaml:3:33: partitions[0].image: \"images\" is a directory\n  help: name a file here (images)",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: a, size: auto 5M, fs: { type: ext4 } }\n",
            "board.yaml:3:22: partitions[0].size: \"auto 5M\" is not a size\n  help: write a size (\"64MiB\"), auto, \"auto +64MiB\", \"auto +20%\" or fill",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: a, size: 99999999999TiB }\n",
            "board.yaml:3:22: partitions[0].size: \"99999999999TiB\" is too large\n  help: write a size (\"64MiB\"), auto, \"auto +64MiB\", \"auto +20%\" or fill",
        ),
        (
            "image: { name: sd, table: mbr, mbr-signature: twelve }\n",
            "board.yaml:1:47: image.mbr-signature: \"twelve\" is not an MBR signature\n  help: write a decimal number or 0x followed by hexadecimal digits",
        ),
        (
            "image: { name: sd }\nartifacts:\n  \"root fs\": { fs: { type: ext4 } }\n",
            "board.yaml:3:3: artifacts.root fs: \"root fs\" is not a valid artifact name\n  help: use letters, digits, '.', '_' and '-'",
        ),
        (
            "image: { name: sd }\nartifacts: [rootfs]\n",
            "board.yaml:2:12: artifacts: expected a map of named artifacts, found a list\n  help: write `artifacts: { rootfs: { fs: { type: ext4 } } }`",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: a-partition-name-that-is-far-too-long-for-gpt, size: 1G }\n",
            "board.yaml:3:13: partitions[0].name: \"a-partition-name-that-is-far-too-long-for-gpt\" is not a usable partition name\n  help: use 1 to 36 characters (the GPT name field)",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: spl, in-table: false, offset: 32KiB, type: esp, image: images/flash.bin }\n",
            "board.yaml:3:56: partitions[0].type: 'type' has no effect on a blob outside the table\n  help: remove type, or remove `in-table: false`",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: b, size: 64M, fs: { type: vfat, label: \"BOOT:1\" } }\n",
            "board.yaml:3:52: partitions[0].fs.label: \"BOOT:1\" has ':', which FAT labels cannot hold\n  help: use letters, digits, space, '-' and '_'",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: r, size: 1G, fs: { type: ext4, inode-ratio: 512 } }\n",
            "board.yaml:3:57: partitions[0].fs.inode-ratio: \"512\" is out of range for bytes per inode\n  help: use 1KiB to 64MiB, e.g. 16KiB",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: r, size: 1G, fs: { type: ext4, inodes: 0 } }\n",
            "board.yaml:3:52: partitions[0].fs.inodes: \"0\" inodes are fewer than ext4 reserves\n  help: ext4 reserves inodes 1 to 11 (lost+found is 11); use at least 11 plus one per file, or leave it out",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: r, size: 1G, fs: { type: ext4, features: [^has_journal], journal: 16MiB } }\n",
            "board.yaml:3:79: partitions[0].fs.journal: a journal is asked for, but features turns has_journal off\n  help: keep one: remove '^has_journal' from features (the journal then has this size), or write 'journal: false' (partitions[0].fs.features[0] at line 3)",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: r, size: 1G, fs: { type: ext4, journal: false, features: [has_journal] } }\n",
            "board.yaml:3:53: partitions[0].fs.journal: journal: false contradicts the feature has_journal\n  help: keep one: remove 'has_journal' from features, or remove 'journal: false' (partitions[0].fs.features[0] at line 3)",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: r, size: 1G, fs: { type: ext4, inodes: 1000, inode-ratio: 16K } }\n",
            "board.yaml:3:71: partitions[0].fs.inode-ratio: inode-ratio and inodes both set\n  help: keep one: inodes is an exact count, inode-ratio derives it from the size",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: r, size: 1G, fs: { type: ext4, rules: [{ path: etc/shadow, mode: \"0600\" }] } }\n",
            "board.yaml:3:60: partitions[0].fs.rules[0].path: \"etc/shadow\" is not an absolute path\n  help: write globs from the filesystem's root, e.g. /usr/bin/*",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: r, size: 1G, fs: { type: ext4, rules: [{ path: /etc/shadow }] } }\n",
            "board.yaml:3:52: partitions[0].fs.rules[0]: a rule that changes nothing\n  help: add uid, gid, mode or caps",
        ),
        (
            "image: { name: sd }\nartifacts:\n  i: { initramfs: { symlinks: { /sbin/init: \"\" } } }\n",
            "board.yaml:3:45: artifacts.i.initramfs.symlinks./sbin/init: empty symlink target\n  help: write the path the link points to",
        ),
        (
            "image: { name: sd }\nartifacts:\n  i: { initramfs: { symlinks: [/sbin/init] } }\n",
            "board.yaml:3:31: artifacts.i.initramfs.symlinks: expected a map of link: target, found a list\n  help: write `symlinks: { /sbin/init: /bin/busybox }`",
        ),
        (
            "image: { name: sd }\nartifacts:\n  i: { initramfs: { modules: { load: [ext4] } } }\n",
            "board.yaml:3:30: artifacts.i.initramfs.modules: missing key 'dir'\n  help: add `dir:` (the host lib/modules/<version> directory)",
        ),
        (
            "image: { name: sd }\nartifacts:\n  i: { initramfs: { init: { text: \"#!/bin/sh\" } } }\n",
            "board.yaml:3:27: artifacts.i.initramfs.init: missing key 'script'\n  help: add `script:` with the text of /init\nboard.yaml:3:29: artifacts.i.initramfs.init.text: unknown key 'text'\n  help: valid keys: script",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: b, size: 64M, fs: { type: vfat, files: [/Image] } }\n",
            "board.yaml:3:52: partitions[0].fs.files: expected a map of destination: source, found a list\n  help: write `files: { /Image: \"${BINARIES_DIR}/Image\" }`",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: b, size: 64M, fs: { type: vfat, files: { /x: { artefact: y } } } }\n",
            "board.yaml:3:58: partitions[0].fs.files./x: missing key 'artifact' or 'text'\n  help: add `artifact: <name>` or `text: \"...\"`\nboard.yaml:3:60: partitions[0].fs.files./x.artefact: unknown key 'artefact'\n  help: did you mean 'artifact'? valid keys: artifact, text",
        ),
        (
            "image: { name: sd }\nartifacts:\n  r: { fs: { type: ext4 }, output: out/rootfs.ext4 }\n",
            "board.yaml:3:36: artifacts.r.output: \"out/rootfs.ext4\" is not a plain file name\n  help: use letters, digits, '.', '_' and '-'; the file is written into the output directory",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: spl, in-table: false, offset: 0, size: fill, image: images/flash.bin }\n",
            "board.yaml:3:52: partitions[0].size: a blob outside the table cannot fill the disk\n  help: give it a size, or leave size out to use the size of its image file",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: a, size: 1G, after: a-b, before: c }\n  - { name: c, size: 1G }\n",
            "board.yaml:3:33: partitions[0].after: no partition named \"a-b\" to place this one by\n  help: no partition is defined before this one; remove after/before\nboard.yaml:3:46: partitions[0].before: both after and before are set\n  help: keep one of them",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: a, size: 1G, after: [b] }\n",
            "board.yaml:3:33: partitions[0].after: expected a partition name, found a list\n  help: write `after: <name>` or `before: <name>`",
        ),
        (
            "? [a, b]\n: 1\nimage: { name: sd }\n",
            "board.yaml:1:3: a key must be a plain word\n  help: write keys as `name: value`",
        ),
        (
            "- image\n",
            "board.yaml:1:1: expected a map at the top of the file, found a list\n  help: start the file with `image:`, `partitions:` or `layers:`",
        ),
        (
            "image: { name: sd }\nlayers: nope\n",
            "board.yaml:2:9: layers: expected a list, found a scalar\n  help: write `layers: [readonly-rootfs-overlay, ./local.yaml]`",
        ),
        (
            "image: { name: sd }\nlayers: [{ name: x }]\n",
            "board.yaml:2:10: layers[0]: expected a layer name or path, found a map\n  help: write a layer name (readonly-rootfs-overlay) or a path (./local.yaml)",
        ),
        (
            "image: { name: sd }\nlayers: [./missing.yaml]\n",
            "board.yaml:2:10: layers[0]: layer file \"./missing.yaml\" does not exist\n  help: looked for missing.yaml; paths are relative to the including file",
        ),
        (
            "image: { name: sd }\noutputs: raw\n",
            "board.yaml:2:10: outputs: expected a list, found \"raw\"\n  help: write `outputs: [raw, bmap]`",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: a, size: 1G, fill: ones }\n",
            "board.yaml:3:32: partitions[0].fill: \"ones\" is not a fill pattern\n  help: use one of: zero",
        ),
        (
            "image: { name: sd }\npartitions:\n  - [a]\n",
            "board.yaml:3:5: partitions[0]: expected a map, found a list\n  help: write `- name: boot` followed by its keys",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: r, size: 1G, fs: { type: ext4, journal: 512 } }\n",
            "board.yaml:3:53: partitions[0].fs.journal: \"512\" is below the smallest journal, 4MiB\n  help: jbd2 needs at least 1024 blocks (4MiB with 4096-byte blocks); write 4MiB or more, or true for the default size",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: r, size: 1G, fs: { type: erofs, pcluster-size: 6KiB } }\n",
            "board.yaml:3:60: partitions[0].fs.pcluster-size: \"6KiB\" is not an EROFS physical cluster size\n  help: use a multiple of 4KiB up to 1MiB, e.g. 4KiB (the default) or 64KiB",
        ),
        (
            // A fuzz finding: 32T made the size search run for minutes.
            "image: { name: sd }\npartitions:\n  - { name: r, size: 1G, fs: { type: ext4, journal: 32T } }\n",
            "board.yaml:3:53: partitions[0].fs.journal: \"32TiB\" is above the largest journal, 40000MiB\n  help: mke2fs allows at most 10240000 blocks (40000MiB with 4096-byte blocks); write 40000MiB or less, or true for the default size",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: r, size: 1G, fs: ext4 }\n",
            "board.yaml:3:30: partitions[0].fs: expected a map, found \"ext4\"\n  help: write `fs: { type: ext4 }`",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: r, size: 1G, fs: { type: ext4, features: metadata_csum } }\n",
            "board.yaml:3:54: partitions[0].fs.features: expected a list, found \"metadata_csum\"\n  help: write `features: [metadata_csum, ^huge_file]`",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: r, size: 1G, fs: { type: ext4, rules: [{ path: /x, uid: -1 }] } }\n",
            "board.yaml:3:69: partitions[0].fs.rules[0].uid: \"-1\" is not a uid\n  help: write a decimal number or 0x followed by hexadecimal digits",
        ),
        (
            "image: { name: sd }\nartifacts:\n  i: { initramfs: { nodes: [{ path: /dev/x, type: b, major: 5000, minor: 1 }] } }\n",
            "board.yaml:3:61: artifacts.i.initramfs.nodes[0].major: \"5000\" is too large for a major number\n  help: write a number from 0 to 4095",
        ),
        (
            "image: { name: sd, size: 1001 }\n",
            "board.yaml:1:26: image.size: \"1001\" is not a whole number of 512-byte sectors\n  help: use a multiple of the sector size, or auto",
        ),
        (
            "image: { name: sd }\npartitions:\n  - { name: a, size: 1G, holes: [{ offset: 0 }], in-table: false, offset: 0, image: images/flash.bin }\n",
            "board.yaml:3:34: partitions[0].holes[0]: missing key 'size'\n  help: add `size:`",
        ),
    ];
    let dir = inputs();
    for (text, expected) in cases {
        assert_eq!(load_in(&dir, text).unwrap_err(), *expected, "{text}");
    }
}

#[test]
fn table_keys_from_genimage() {
    let dir = inputs();
    let d = load_in(
        &dir,
        "image: { name: sd, table: mbr, extended-partition: 2 }\npartitions:\n  - { name: a, size: 1G }\n  - { name: b, size: 1G, forced-primary: true }\n",
    )
    .unwrap();
    assert_eq!(d.image.extended_partition.as_ref().unwrap().value, 2);
    assert!(d.partitions[1].forced_primary.value);
    let d = load_in(
        &dir,
        "image: { name: sd, table: hybrid, protective-entry: first }\n",
    )
    .unwrap();
    assert!(d.image.protective_first.as_ref().unwrap().value);
    let d = load_in(
        &dir,
        "image: { name: sd, gpt-no-backup: true, mbr-signature: 0x5eed0001 }\npartitions:\n  - { name: a, size: 1G, gpt-attributes: [required, no-block-io, 48, 63] }\n  - { name: b, size: 1G, gpt-attributes: 0x1000000000000004 }\n",
    )
    .unwrap();
    assert!(d.image.gpt_no_backup.as_ref().unwrap().value);
    assert_eq!(d.image.mbr_signature.as_ref().unwrap().value, 0x5eed_0001);
    let bits = |i: usize| d.partitions[i].flags.attributes.as_ref().unwrap().value;
    assert_eq!(bits(0), 0b11 | 1 << 48 | 1 << 63);
    assert_eq!(bits(1), 1 << 60 | 1 << 2);
}

#[test]
fn table_keys_in_the_wrong_table_and_bad_attribute_bits() {
    assert_eq!(
        one_error("image: { name: sd, table: gpt, extended-partition: 2 }\n"),
        "board.yaml:1:52: image.extended-partition: extended-partition needs `table: mbr` (logical partitions are an MBR's)\n  help: remove extended-partition, or use `table: mbr`"
    );
    assert_eq!(
        one_error("image: { name: sd, table: mbr, extended-partition: 0 }\n"),
        "board.yaml:1:52: image.extended-partition: \"0\" is not an MBR entry\n  help: use 1 to 4, or remove it (entry 4 when more than four partitions are in the table)"
    );
    assert_eq!(
        one_error("image: { name: sd, table: gpt, protective-entry: first }\n"),
        "board.yaml:1:50: image.protective-entry: protective-entry is the place of the 0xEE entry in a hybrid MBR\n  help: remove protective-entry, or use `table: hybrid`"
    );
    assert_eq!(
        one_error("image: { name: sd, table: mbr, gpt-no-backup: true }\n"),
        "board.yaml:1:47: image.gpt-no-backup: gpt-no-backup needs a GPT\n  help: remove gpt-no-backup, or use `table: gpt` or `table: hybrid`"
    );
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: a, size: 1G, gpt-attributes: [required, sticky] }\n"),
        "board.yaml:3:53: partitions[0].gpt-attributes[1]: \"sticky\" is not a GPT attribute bit\n  help: write a bit number 0-63 or one of: required, no-block-io, legacy-bios-bootable, growfs, read-only, hidden, no-automount"
    );
    assert_eq!(
        one_error("image: { name: sd }\npartitions:\n  - { name: a, size: 1G, gpt-attributes: [3] }\n"),
        "board.yaml:3:42: partitions[0].gpt-attributes: 0x8 sets GPT attribute bits 3-47, which UEFI reserves\n  help: use bits 0-2 and the type-specific bits 48-63"
    );
}

#[test]
fn an_empty_caps_removes_capabilities_and_owners_default_to_the_session() {
    let dir = inputs();
    let d = load_in(
        &dir,
        "image: { name: sd }\npartitions:\n  - { name: r, size: 1G, fs: { type: ext4, rules: [{ path: /bin/ping, caps: \"\" }] } }\n",
    )
    .unwrap();
    let Content::Fs(Filesystem::Ext4(e)) = &d.partitions[0].content.value else {
        panic!("not ext4");
    };
    assert_eq!(e.ownership.rules[0].caps.as_ref().unwrap().value, "");
    // No `owners:` is no choice: the build decides from its session.
    assert!(e.ownership.owners.is_none());
}

#[test]
fn squashfs_keys_decode_and_bad_values_are_named() {
    let dir = inputs();
    let d = load_in(
        &dir,
        "image: { name: sd }
artifacts:
  root: { fs: { type: squashfs, compression: zstd, level: 19, block-size: 256KiB, owners: source, verity: true } }
",
    )
    .unwrap();
    let Content::Fs(Filesystem::Squashfs(q)) = &d.artifact("root").unwrap().content.value else {
        panic!()
    };
    assert!(q.verity.value);
    assert_eq!(q.compression.value, Compression::Zstd);
    assert_eq!(q.level.as_ref().unwrap().value, 19);
    assert_eq!(q.block_size.as_ref().unwrap().value, 256 * 1024);
    assert_eq!(q.ownership.owners.as_ref().unwrap().value, Owners::Source);
    let d = load_in(
        &dir,
        "image: { name: sd }\nartifacts:\n  root: { fs: { type: squashfs } }\n",
    )
    .unwrap();
    let Content::Fs(Filesystem::Squashfs(q)) = &d.artifact("root").unwrap().content.value else {
        panic!()
    };
    assert_eq!(
        (
            q.compression.value,
            q.level.is_none(),
            q.block_size.is_none(),
            q.verity.value
        ),
        (Compression::Gzip, true, true, false)
    );

    let bad = "image: { name: sd }\nartifacts:\n  root: { fs: { type: squashfs, compression: lz4, level: 3, block-size: 3KiB } }\n";
    let e = load_in(&dir, bad).unwrap_err();
    assert_eq!(
        e,
        "board.yaml:3:58: artifacts.root.fs.level: lz4 and none take no level\n  help: remove `level:`, or choose gzip, xz or zstd\n\
         board.yaml:3:73: artifacts.root.fs.block-size: \"3KiB\" is not a squashfs block size\n  help: use a power of two from 4KiB to 1MiB, e.g. 128KiB (the default)"
    );
    assert_eq!(
        one_error("image: { name: sd }\nartifacts:\n  root: { fs: { type: squashfs, level: 10 } }\n"),
        "board.yaml:3:40: artifacts.root.fs.level: \"10\" is out of range for this compression\n  help: use a level from 1 to 9"
    );
}

/// `${verity.NAME.KEY}` in a file's `text:`: kept for preparing, checked
/// against the description; anywhere else an error.
#[test]
fn verity_variables_in_file_texts() {
    const HEAD: &str = "image: { name: sd }\nartifacts:\n  rootfs: { fs: { type: erofs, verity: true } }\n  plain: { fs: { type: erofs } }\npartitions:\n  - { name: rootA, artifact: rootfs }\n";
    let dir = inputs();
    let d = load_in(
        &dir,
        &format!("{HEAD}  - {{ name: boot, fs: {{ type: vfat, files: {{ /cmdline: {{ text: \"roothash=${{verity.rootA.roothash}} $$ ${{BINARIES_DIR}}\" }} }} }} }}\n"),
    )
    .unwrap();
    let Content::Fs(Filesystem::Vfat(v)) = &d.partitions[1].content.value else {
        panic!("not vfat")
    };
    let FileRef::Text(t) = &v.files[0].source else {
        panic!("not a text")
    };
    let images = dir.path().join("images").display().to_string();
    assert_eq!(
        t.value,
        format!("roothash=${{verity.rootA.roothash}} $$ {images}")
    );

    let boot = |text: &str| {
        one_error(&format!(
            "{HEAD}  - {{ name: boot, fs: {{ type: vfat, files: {{ /c: {{ text: \"{text}\" }} }} }} }}\n"
        ))
    };
    assert_eq!(
        boot("${verity.rootX.roothash}"),
        "board.yaml:7:58: partitions[1].fs.files./c.text: ${verity.rootX.roothash}: no partition or artifact named \"rootX\"\n  help: with a hash tree: rootA, rootfs"
    );
    assert_eq!(
        boot("${verity.plain.roothash}"),
        "board.yaml:7:58: partitions[1].fs.files./c.text: ${verity.plain.roothash}: 'plain' has no dm-verity hash tree\n  help: add `verity: true` to its squashfs or EROFS `fs:`, or name another content (with a hash tree: rootA, rootfs)"
    );
    assert_eq!(
        boot("${verity.rootfs.hash}"),
        "board.yaml:7:58: partitions[1].fs.files./c.text: ${verity.rootfs.hash}: 'hash' is not a dm-verity value\n  help: write one of: roothash, salt, data_block_size, hash_block_size, data_blocks, hash_offset, hash_start_block, hash_algorithm, uuid"
    );
    assert_eq!(
        one_error("image: { name: sd, seed: \"${verity.rootA.roothash}\" }\n"),
        "board.yaml:1:26: image.seed: \"${verity.rootA.roothash}\" uses ${verity.rootA.roothash}, which only a file's `text:` can use\n  help: dm-verity values are known once the content is built: write them into a file as `{ text: \"...\" }`"
    );
    assert!(one_error(&format!(
        "{HEAD}  - {{ name: boot, fs: {{ type: vfat, files: {{ /c: {{ text: x, artifact: rootfs }} }} }} }}\n"
    ))
    .contains("both 'artifact' and 'text'"));
}

/// The schema's filesystem sections are the ones `fs:` decodes: each tag
/// the schema offers loads.
#[test]
fn every_filesystem_type_of_the_schema_decodes() {
    use super::schema::Kind;
    let Some(Kind::List(Kind::Map(partition))) = decode::TOP.key("partitions").map(|k| &k.kind)
    else {
        panic!("partitions is a list of maps");
    };
    let Some(Kind::Tagged(variants)) = partition.key("fs").map(|k| &k.kind) else {
        panic!("fs is tagged by type");
    };
    assert_eq!(variants.len(), 5);
    let dir = inputs();
    for (tag, section) in variants.iter() {
        assert!(section.key("type").is_some(), "{tag}");
        let text = format!(
            "image: {{ name: sd }}\npartitions:\n  - {{ name: a, size: 8MiB, fs: {{ type: {tag} }} }}\n"
        );
        load_in(&dir, &text).unwrap_or_else(|e| panic!("{tag}: {e}"));
    }
}

/// Unknown keys are checked against the schema's sections, nested ones too.
#[test]
fn unknown_keys_come_from_the_schema_sections() {
    let e = load_in(
        &inputs(),
        "image: { name: sd }\npartitions:\n  - { name: a, size: 8MiB, initramfs: { modules: { dirr: x } } }\n",
    )
    .unwrap_err();
    assert!(
        e.contains("unknown key 'dirr'") && e.contains("did you mean 'dir'? valid keys: dir, load"),
        "{e}"
    );
}
