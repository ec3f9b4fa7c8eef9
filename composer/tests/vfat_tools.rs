//! The vfat writer checked by tools nobody here wrote: `fsck.vfat -n` must
//! find nothing to complain about, and mtools must read back every file,
//! name, label, volume id and FAT type exactly as given.
//!
//! Needs dosfstools and mtools; without them a test prints a note and passes
//! on a laptop, and fails when `CI` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::have;

use composer::fs::tree::{scan, Tree, TreeOptions};
use composer::fs::vfat::{prepare, VfatFs, VfatOptions};
use composer::fs::{BuildContext, Content, FileSource};
use composer::ids::Seed;
use composer::output::window::Window;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const MIB: u64 = 1024 * 1024;
/// 2023-11-14 22:13:20 UTC, an even second.
const EPOCH: u64 = 1_700_000_000;

fn ctx() -> BuildContext {
    BuildContext {
        seed: Seed("vfat-tests".into()),
        source_date_epoch: Some(EPOCH),
    }
}

/// `dir` scanned as `compose::prepare` does for `from:`.
fn scan_dir(dir: &Path) -> Tree {
    scan(dir, &TreeOptions::default(), &ctx()).unwrap()
}

fn tools() -> bool {
    have("fsck.vfat") && have("mcopy") && have("minfo")
}

/// Writes `fs` into a fresh sparse image of `size` bytes at offset 0.
fn build(fs: &VfatFs, size: u64, dir: &Path) -> anyhow::Result<PathBuf> {
    let img = dir.join("fs.img");
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&img)?;
    file.set_len(size)?;
    let mut w = Window::new(&file, 0, size);
    fs.write(&mut w)?;
    Ok(img)
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .env("MTOOLS_SKIP_CHECK", "1")
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `fsck.vfat -n` exits 0 and prints only its banner and summary line.
fn fsck(img: &Path) {
    let (ok, text) = run(Command::new("fsck.vfat").arg("-n").arg(img));
    let lines: Vec<&str> = text.lines().collect();
    assert!(ok, "fsck.vfat failed:\n{text}");
    assert_eq!(lines.len(), 2, "fsck.vfat complained:\n{text}");
    assert!(lines[1].contains(" files, "), "{text}");
}

fn minfo(img: &Path) -> String {
    let (ok, text) = run(Command::new("minfo").arg("-i").arg(img).arg("::"));
    assert!(ok, "minfo failed:\n{text}");
    text
}

/// Every file in the image, read back with `mcopy -s -m`: path -> bytes.
fn read_back(img: &Path, dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let (ok, text) = run(Command::new("mdir").arg("-i").arg(img).arg("-a").arg("::/"));
    assert!(ok, "mdir failed:\n{text}");
    let empty = text.contains("No files");
    if !empty {
        let (ok, text) = run(Command::new("mcopy")
            .args(["-s", "-m", "-n", "-i"])
            .arg(img)
            .arg("::/*")
            .arg(&out));
        assert!(ok, "mcopy failed:\n{text}");
    }
    let mut files = BTreeMap::new();
    collect(&out, "", &mut files);
    files
}

fn collect(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        let path = format!("{prefix}/{name}");
        if e.file_type().unwrap().is_dir() {
            out.insert(format!("{path}/"), Vec::new());
            collect(&e.path(), &path, out);
        } else {
            out.insert(path, std::fs::read(e.path()).unwrap());
        }
    }
}

/// What `read_back` should find for `files` given as bytes.
fn expected(files: &[(String, Vec<u8>)]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (path, bytes) in files {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for i in 1..parts.len() {
            out.insert(format!("/{}/", parts[..i].join("/")), Vec::new());
        }
        out.insert(path.clone(), bytes.clone());
    }
    out
}

fn opts_with(files: &[(String, Vec<u8>)]) -> VfatOptions {
    let mut o = VfatOptions::new("boot");
    o.files = files
        .iter()
        .map(|(p, b)| (p.clone(), FileSource::Bytes(Arc::new(b.clone()))))
        .collect();
    o
}

/// Deterministic bytes that differ per file and per position.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Builds, checks with fsck, reads back and compares; returns minfo's text.
fn check_round_trip(opts: &VfatOptions, files: &[(String, Vec<u8>)], size: Option<u64>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let fs = prepare(opts, &ctx()).unwrap();
    let size = size.unwrap_or_else(|| fs.min_size());
    let img = build(&fs, size, dir.path()).unwrap();
    fsck(&img);
    assert_eq!(read_back(&img, dir.path()), expected(files));
    minfo(&img)
}

#[test]
fn empty_filesystem_is_clean() {
    if !tools() {
        return;
    }
    let info = check_round_trip(&VfatOptions::new("empty"), &[], Some(MIB));
    assert!(info.contains("disk type=\"FAT12   \""), "{info}");
}

#[test]
fn fat_types_forced_and_automatic() {
    if !tools() {
        return;
    }
    let files: Vec<(String, Vec<u8>)> = vec![
        ("/Image".into(), pattern(300_000, 1)),
        ("/dtbs/board.dtb".into(), pattern(40_000, 2)),
        ("/EFI/BOOT/BOOTX64.EFI".into(), pattern(123_457, 3)),
        ("/config.txt".into(), b"enable_uart=1\n".to_vec()),
        ("/empty".into(), Vec::new()),
    ];
    for (bits, size, want) in [
        (None, 4 * MIB, "FAT12"),
        (None, 64 * MIB, "FAT16"),
        (None, 600 * MIB, "FAT32"),
        (Some(12), 16 * MIB, "FAT12"),
        (Some(16), 4 * MIB, "FAT16"),
        (Some(32), 40 * MIB, "FAT32"),
        (Some(32), 64 * MIB, "FAT32"),
    ] {
        let mut o = opts_with(&files);
        o.fat_bits = bits;
        o.label = Some("boot".into());
        let info = check_round_trip(&o, &files, Some(size));
        assert!(
            info.contains(&format!("disk type=\"{want}   \"")),
            "{bits:?} {size}: {info}"
        );
        assert!(info.contains("disk label=\"boot       \""), "{info}");
    }
}

#[test]
fn label_volume_id_and_hidden_sectors_reach_the_boot_sector() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut o = VfatOptions::new("esp");
    o.label = Some("Esp Part".into());
    o.volume_id = Some(0x1234_ABCD);
    o.hidden_sectors = 2048;
    let fs = prepare(&o, &ctx()).unwrap();
    let img = build(&fs, 64 * MIB, dir.path()).unwrap();
    fsck(&img);
    let info = minfo(&img);
    assert!(info.contains("serial number: 1234ABCD"), "{info}");
    // The case is kept as given (mkfs.fat 4.2, genimage, wic): LABEL= in
    // fstab and /dev/disk/by-label compare case-sensitively.
    assert!(info.contains("disk label=\"Esp Part   \""), "{info}");
    assert!(info.contains("hidden sectors: 2048"), "{info}");
    let (ok, text) = run(Command::new("mdir").arg("-i").arg(&img).arg("::/"));
    assert!(
        ok && text.contains("Volume in drive : is Esp Part"),
        "{text}"
    );
    let (ok, text) = run(Command::new("blkid")
        .args(["-p", "-s", "LABEL", "-o", "value"])
        .arg(&img));
    assert!(ok && text.trim_end() == "Esp Part", "{text}");
}

#[test]
fn volume_id_derives_from_the_seed_and_name() {
    let a = prepare(&VfatOptions::new("a"), &ctx()).unwrap();
    let a2 = prepare(&VfatOptions::new("a"), &ctx()).unwrap();
    let b = prepare(&VfatOptions::new("b"), &ctx()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let read_id = |fs: &VfatFs, name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let img = build(fs, 4 * MIB, &d).unwrap();
        let bytes = std::fs::read(img).unwrap();
        u32::from_le_bytes(bytes[0x27..0x2B].try_into().unwrap())
    };
    assert_eq!(read_id(&a, "a"), read_id(&a2, "a2"));
    assert_ne!(read_id(&a, "a"), read_id(&b, "b"));
    assert_eq!(
        read_id(&a, "a"),
        ctx().seed.u32(&["vfat", "a", "volume-id"])
    );
}

#[test]
fn four_kib_sectors() {
    if !tools() {
        return;
    }
    let files: Vec<(String, Vec<u8>)> = vec![
        ("/kernel.img".into(), pattern(1_000_000, 9)),
        ("/overlays/a long name.dtbo".into(), pattern(5000, 10)),
    ];
    for (bits, size) in [(None, 32 * MIB), (Some(32), 300 * MIB)] {
        let mut o = opts_with(&files);
        o.sector_size = 4096;
        o.fat_bits = bits;
        let info = check_round_trip(&o, &files, Some(size));
        assert!(info.contains("sector size: 4096 bytes"), "{info}");
    }
}

#[test]
fn long_names_with_spaces_unicode_and_255_units() {
    if !tools() {
        return;
    }
    let long = "L".repeat(250) + ".conf";
    let files: Vec<(String, Vec<u8>)> = vec![
        ("/a name with spaces.txt".into(), b"1".to_vec()),
        ("/Grüße aus Köln.txt".into(), b"2".to_vec()),
        ("/日本語のファイル名".into(), b"3".to_vec()),
        (format!("/{long}"), b"4".to_vec()),
        ("/.hidden-looking".into(), b"5".to_vec()),
        ("/MixedCase.Txt".into(), b"6".to_vec()),
        ("/vmlinuz".into(), b"7".to_vec()),
        ("/README.md".into(), b"8".to_vec()),
        ("/many.dots.in.name.tar.gz".into(), b"9".to_vec()),
    ];
    check_round_trip(&opts_with(&files), &files, Some(4 * MIB));
}

#[test]
fn short_name_clashes_get_distinct_tails() {
    if !tools() {
        return;
    }
    let files: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| {
            (
                format!("/kernel-version-{i}.img"),
                pattern(100 + i, i as u64),
            )
        })
        .chain([("/KERNEL~1.IMG".to_string(), b"plain".to_vec())])
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let fs = prepare(&opts_with(&files), &ctx()).unwrap();
    let img = build(&fs, 4 * MIB, dir.path()).unwrap();
    fsck(&img);
    assert_eq!(read_back(&img, dir.path()), expected(&files));
    // mdir lists 8.3 aliases next to the long names.
    let (_, text) = run(Command::new("mdir").arg("-i").arg(&img).arg("::/"));
    assert!(text.contains("KERNEL~2 IMG"), "{text}");
    assert!(text.contains("KERNE~10 IMG"), "{text}");
}

#[test]
fn deep_directories() {
    if !tools() {
        return;
    }
    let mut path = String::new();
    let mut files = Vec::new();
    for depth in 0..40 {
        path.push_str(&format!("/level {depth}"));
        files.push((
            format!("{path}/f{depth}"),
            pattern(depth * 37, depth as u64),
        ));
    }
    let mut fat32 = opts_with(&files);
    fat32.fat_bits = Some(32);
    check_round_trip(&opts_with(&files), &files, None);
    check_round_trip(&fat32, &files, None);
}

#[test]
fn two_thousand_files_in_one_directory() {
    if !tools() {
        return;
    }
    let files: Vec<(String, Vec<u8>)> = (0..2000)
        .map(|i| {
            (
                format!("/dir/overlay file {i:04}.dtbo"),
                pattern(i % 700, i as u64),
            )
        })
        .collect();
    check_round_trip(&opts_with(&files), &files, None);
    // In the FAT12/16 root directory too (it grows beyond 512 entries).
    let root: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(p, b)| (p.trim_start_matches("/dir").to_string(), b.clone()))
        .collect();
    let mut o = opts_with(&root);
    o.fat_bits = Some(16);
    check_round_trip(&o, &root, None);
}

#[test]
fn a_64_mib_file_and_one_exactly_one_cluster() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.bin");
    let data = pattern(64 * MIB as usize, 77);
    std::fs::write(&big, &data).unwrap();
    let mut o = VfatOptions::new("big");
    o.cluster_size = Some(4096);
    o.files = vec![
        ("/big.bin".into(), FileSource::Path(big)),
        ("/one".into(), FileSource::Bytes(Arc::new(pattern(4096, 5)))),
    ];
    let fs = prepare(&o, &ctx()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let img = build(&fs, fs.min_size(), out.path()).unwrap();
    fsck(&img);
    let back = read_back(&img, out.path());
    assert!(back["/big.bin"] == data, "64 MiB file differs");
    assert_eq!(back["/one"], pattern(4096, 5));
}

#[test]
fn from_directory_with_override_and_symlinks() {
    if !tools() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let s = src.path();
    std::fs::create_dir_all(s.join("overlays/sub")).unwrap();
    std::fs::write(s.join("config.txt"), "from tree\n").unwrap();
    std::fs::write(s.join("start4.elf"), pattern(10_000, 1)).unwrap();
    std::fs::write(s.join("overlays/sub/x.dtbo"), pattern(999, 2)).unwrap();
    std::os::unix::fs::symlink("start4.elf", s.join("start.elf")).unwrap();
    let mut o = VfatOptions::new("fw");
    o.tree = Some(scan_dir(s));
    o.files = vec![(
        "/CONFIG.TXT".into(),
        FileSource::Bytes(Arc::new(b"generated\n".to_vec())),
    )];
    let files: Vec<(String, Vec<u8>)> = vec![
        ("/CONFIG.TXT".into(), b"generated\n".to_vec()),
        ("/start4.elf".into(), pattern(10_000, 1)),
        ("/start.elf".into(), pattern(10_000, 1)),
        ("/overlays/sub/x.dtbo".into(), pattern(999, 2)),
    ];
    check_round_trip(&o, &files, None);

    // A link leaving the tree is refused, naming it: it is resolved as on
    // the target, from the tree's root, where /etc/hostname is not.
    std::os::unix::fs::symlink("/etc/hostname", s.join("escape")).unwrap();
    o.tree = Some(scan_dir(s));
    let err = format!("{:#}", prepare(&o, &ctx()).unwrap_err());
    assert!(err.contains("escape") && err.contains("outside"), "{err}");
    std::fs::remove_file(s.join("escape")).unwrap();
    // So is a link to a directory (FAT would need a second copy of it).
    std::os::unix::fs::symlink("overlays", s.join("ovl")).unwrap();
    o.tree = Some(scan_dir(s));
    let err = format!("{:#}", prepare(&o, &ctx()).unwrap_err());
    assert!(
        err.contains("ovl") && err.contains("points to a directory"),
        "{err}"
    );
}

#[test]
fn timestamps_come_from_source_date_epoch() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A host file from 2001 gets the epoch too, as do bytes and directories.
    let old = dir.path().join("old.txt");
    std::fs::write(&old, "old").unwrap();
    let status = Command::new("touch")
        .args(["-d", "2001-02-03 04:05:06"])
        .arg(&old)
        .env("TZ", "UTC")
        .status()
        .unwrap();
    assert!(status.success());
    let mut o = opts_with(&[("/a/b.txt".to_string(), b"x".to_vec())]);
    o.files
        .push(("/a/old.txt".into(), FileSource::Path(old.clone())));
    let fs = prepare(&o, &ctx()).unwrap();
    let img = build(&fs, 4 * MIB, dir.path()).unwrap();
    // 2023-11-14 22:13:20 UTC
    for path in ["::/a", "::/a/b.txt", "::/a/old.txt"] {
        let (ok, text) = run(Command::new("mdir").arg("-i").arg(&img).arg(path));
        assert!(ok && text.contains("2023-11-14  22:13"), "{text}");
    }
    // Without an epoch, host files keep their mtime.
    let no_epoch = BuildContext {
        source_date_epoch: None,
        ..ctx()
    };
    let fs = prepare(&o, &no_epoch).unwrap();
    let img = build(&fs, 4 * MIB, dir.path()).unwrap();
    let (ok, text) = run(Command::new("mdir").arg("-i").arg(&img).arg("::/a/old.txt"));
    assert!(ok && text.contains("2001-02-03   4:05"), "{text}");
}

#[test]
fn content_too_big_says_how_much_is_missing() {
    let files = vec![("/big".to_string(), vec![1u8; 3 * MIB as usize])];
    let fs = prepare(&opts_with(&files), &ctx()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = format!("{:#}", build(&fs, 2 * MIB, dir.path()).unwrap_err());
    assert!(err.contains("missing"), "{err}");
    assert!(err.contains("smallest size that holds it is 3."), "{err}");
    assert!(fs.min_size() > 3 * MIB && fs.min_size() < 3 * MIB + 64 * 1024);
}

#[test]
fn impossible_forced_type_names_the_sizes_that_work() {
    let mut o = VfatOptions::new("esp");
    o.fat_bits = Some(32);
    let fs = prepare(&o, &ctx()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = format!("{:#}", build(&fs, 16 * MIB, dir.path()).unwrap_err());
    assert!(
        err.contains("FAT32 with 512-byte sectors needs a size between 32.5 MiB and"),
        "{err}"
    );
}

#[test]
fn bad_names_are_errors_naming_the_path() {
    for (path, what) in [
        ("/EFI/a:b", "':'"),
        ("/x/name.", "ends with a dot"),
        (&format!("/{}", "n".repeat(256)) as &str, "256 UTF-16 units"),
    ] {
        let o = opts_with(&[(path.to_string(), vec![])]);
        let err = format!("{:#}", prepare(&o, &ctx()).unwrap_err());
        assert!(err.contains(what), "{path}: {err}");
        assert!(err.contains(&path[..8.min(path.len())]), "{path}: {err}");
    }
    let o = opts_with(&[("/Image".into(), vec![]), ("/IMAGE".into(), vec![])]);
    let err = format!("{:#}", prepare(&o, &ctx()).unwrap_err());
    assert!(
        err.contains("'/IMAGE' is given twice (as '/Image' before)"),
        "{err}"
    );
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("Image"), "a").unwrap();
    std::fs::write(src.path().join("IMAGE"), "b").unwrap();
    let mut o = VfatOptions::new("x");
    o.tree = Some(scan_dir(src.path()));
    let err = format!("{:#}", prepare(&o, &ctx()).unwrap_err());
    assert!(err.contains("differ only in case"), "{err}");
}

#[test]
fn two_builds_are_bit_identical() {
    let files: Vec<(String, Vec<u8>)> = (0..50)
        .map(|i| (format!("/d{}/file {i}", i % 7), pattern(i * 301, i as u64)))
        .collect();
    let o = opts_with(&files);
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let img_a = build(&prepare(&o, &ctx()).unwrap(), 8 * MIB, a.path()).unwrap();
    let img_b = build(&prepare(&o, &ctx()).unwrap(), 8 * MIB, b.path()).unwrap();
    assert!(std::fs::read(img_a).unwrap() == std::fs::read(img_b).unwrap());
}

/// A random tree: file paths (components from a small alphabet, so that
/// case clashes and 8.3 collisions happen) and sizes.
fn tree_strategy() -> impl Strategy<Value = Vec<(String, usize)>> {
    let component = prop_oneof![
        "[a-z]{1,8}",
        "[A-Za-z0-9 ._-]{1,20}",
        "(kernel|KERNEL|Kernel)[0-9]{0,2}(\\.img|\\.IMG)?",
        "[a-zäöü日本]{1,12}",
    ];
    let path = prop::collection::vec(component, 1..4);
    prop::collection::vec((path, 0usize..9000), 0..40).prop_map(|entries| {
        let mut seen = BTreeMap::new();
        let mut dirs = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for (parts, size) in entries {
            let parts: Vec<String> = parts
                .into_iter()
                .map(|p| p.trim_end_matches(['.', ' ']).to_string())
                .filter(|p| !p.is_empty() && p != "." && p != "..")
                .collect();
            if parts.is_empty() {
                continue;
            }
            let path = format!("/{}", parts.join("/"));
            let folded = path.to_uppercase();
            // Skip clashes: a folded path used before, or a file where a
            // directory is (or the reverse).
            let prefixes: Vec<String> = (1..parts.len())
                .map(|i| format!("/{}", parts[..i].join("/")).to_uppercase())
                .collect();
            if seen.contains_key(&folded)
                || dirs.contains(&folded)
                || prefixes.iter().any(|p| seen.contains_key(p))
            {
                continue;
            }
            seen.insert(folded, ());
            dirs.extend(prefixes);
            out.push((path, size));
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(30),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_trees_read_back_identical(
        tree in tree_strategy(),
        bits in prop_oneof![Just(None), Just(Some(12u8)), Just(Some(16)), Just(Some(32))],
        cluster in prop_oneof![Just(None), Just(Some(512u32)), Just(Some(1024)), Just(Some(4096))],
        spare in 0u64..200_000,
    ) {
        if !tools() {
            return Ok(());
        }
        // Directories whose case differs between paths ("a/x", "A/y") are
        // merged by FAT under the first spelling: normalise the expectation.
        let mut spelled: BTreeMap<String, String> = BTreeMap::new();
        let files: Vec<(String, Vec<u8>)> = tree
            .iter()
            .enumerate()
            .map(|(i, (p, size))| {
                let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
                let mut norm = String::new();
                for (k, part) in parts.iter().enumerate() {
                    let key = format!("{norm}/{part}").to_uppercase();
                    let name = if k + 1 < parts.len() {
                        spelled.entry(key).or_insert_with(|| part.to_string()).clone()
                    } else {
                        part.to_string()
                    };
                    norm = format!("{norm}/{name}");
                }
                (norm, pattern(*size, i as u64))
            })
            .collect();
        let mut o = opts_with(&files);
        o.fat_bits = bits;
        o.cluster_size = cluster;
        let fs = match prepare(&o, &ctx()) {
            Ok(fs) => fs,
            Err(e) => panic!("{e:#}"),
        };
        let dir = tempfile::tempdir().unwrap();
        // FAT32 with small clusters starts at ~33 MiB; sparse files cost nothing.
        let size = fs.min_size() + spare / 512 * 512;
        let img = build(&fs, size, dir.path()).unwrap();
        fsck(&img);
        prop_assert_eq!(read_back(&img, dir.path()), expected(&files));
    }
}

#[test]
fn holes_of_a_sparse_source_stay_holes_but_are_mapped_as_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("sparse.bin");
    let f = File::create(&src).unwrap();
    f.set_len(8 * MIB).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"head", 0).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"tail", 8 * MIB - 4).unwrap();
    drop(f);
    let mut o = VfatOptions::new("sparse");
    o.files = vec![("/sparse.bin".into(), FileSource::Path(src))];
    let fs = prepare(&o, &ctx()).unwrap();
    let img = dir.path().join("img");
    let file = support::sparse_file(&img, 16 * MIB);
    let mut w = Window::new(&file, 0, 16 * MIB);
    fs.write(&mut w).unwrap();
    // The file's 8 MiB must be written when flashed (zeros included)...
    assert!(w.mapped().total() >= 8 * MIB, "{:?}", w.mapped());
    // ...but the image itself stays sparse.
    let allocated = std::os::unix::fs::MetadataExt::blocks(&file.metadata().unwrap()) * 512;
    assert!(allocated < 2 * MIB, "{allocated} bytes allocated");
    if tools() {
        fsck(&img);
        let back = read_back(&img, dir.path());
        assert_eq!(back["/sparse.bin"].len() as u64, 8 * MIB);
        assert_eq!(&back["/sparse.bin"][..4], b"head");
    }
}
