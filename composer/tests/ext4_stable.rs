//! Stable placement (`--reference`, docs/ext4.md "Stable placement"):
//! 20 successive releases of a changing tree (seeded generator: files
//! modified, grown, shrunk, added and removed each release), each built
//! with the previous one as the reference. Every release passes
//! `e2fsck -fn` and reads back through `debugfs rdump` as its tree; the
//! fragmentation `e2fsck` and `e2freefrag` report stays bounded; the
//! blocks that differ from the previous release are a fraction of those
//! of the same trees built without a reference; and a build is
//! reproducible from the same tree and reference.
//!
//! Then the command line: `build --reference OLD.img` keeps unchanged
//! files' blocks in a GPT image's partition, `bundle --reference` takes a
//! bundle, and a reference that is not one is refused with exit 2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ext4_support;
#[path = "support/read_back.rs"]
mod read_back;
mod support;

use composer::fs::ext4::{prepare, prepare_against, Ext4Options, OldFs};
use composer::fs::tree::{scan, Tree, TreeOptions};
use ext4_support::{assert_fsck_clean, ctx, debugfs};
use read_back::{compare, Keeps};
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::Path;
use std::process::Command;

/// The filesystem of every release.
const FS_BYTES: u64 = 32 << 20;
const BS: usize = 4096;
const RELEASES: usize = 20;

/// xorshift64*: the generator's only source of randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// A file size: mostly small, some up to 256 KiB, like a root filesystem.
    fn size(&mut self) -> usize {
        match self.below(10) {
            0 => 64 * 1024 + self.below(192 * 1024) as usize,
            1..=3 => 8 * 1024 + self.below(56 * 1024) as usize,
            _ => 1 + self.below(8 * 1024) as usize,
        }
    }
}

/// The tree of one release: path -> content.
type Files = BTreeMap<String, Vec<u8>>;

fn first_release(rng: &mut Rng) -> Files {
    let mut files = Files::new();
    for i in 0..300 {
        let dir = format!("d{:02}/s{}", rng.below(16), rng.below(3));
        let n = rng.size();
        files.insert(format!("{dir}/f{i:03}"), rng.bytes(n));
    }
    files
}

/// One release's changes: 12 files edited in place, 6 grown, 4 shrunk,
/// 6 added, 4 removed.
fn next_release(rng: &mut Rng, files: &mut Files, release: usize) {
    let pick = |rng: &mut Rng, files: &Files| {
        let k = rng.below(files.len() as u64) as usize;
        files.keys().nth(k).cloned().unwrap()
    };
    for _ in 0..12 {
        let p = pick(rng, files);
        let f = files.get_mut(&p).unwrap();
        let at = rng.below(f.len() as u64) as usize;
        let end = (at + 100).min(f.len());
        let patch = rng.bytes(end - at);
        f[at..end].copy_from_slice(&patch);
    }
    for _ in 0..6 {
        let p = pick(rng, files);
        let n = 1 + rng.below(32 * 1024) as usize;
        let more = rng.bytes(n);
        files.get_mut(&p).unwrap().extend(more);
    }
    for _ in 0..4 {
        let p = pick(rng, files);
        let f = files.get_mut(&p).unwrap();
        let keep = f.len() / 2 + 1;
        f.truncate(keep);
    }
    for i in 0..6 {
        let dir = format!("d{:02}/s{}", rng.below(16), rng.below(3));
        let n = rng.size();
        files.insert(format!("{dir}/r{release:02}-{i}"), rng.bytes(n));
    }
    for _ in 0..4 {
        let p = pick(rng, files);
        files.remove(&p);
    }
}

/// Makes `root` hold exactly `files`.
fn write_tree(root: &Path, files: &Files) {
    let _ = std::fs::remove_dir_all(root);
    for (p, data) in files {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
    }
}

fn build(img: &Path, tree: &Tree, reference: Option<&Path>) {
    let opts = Ext4Options::default();
    let fs = match reference {
        Some(r) => {
            let old = OldFs::read(File::open(r).unwrap(), 0, FS_BYTES).unwrap();
            prepare_against(&opts, Some(tree), &ctx(), Some(&old)).unwrap()
        }
        None => prepare(&opts, Some(tree), &ctx()).unwrap(),
    };
    read_back::write_sized(img, &fs, FS_BYTES);
}

/// What a block-level delta from `old` to `new` costs: blocks that differ
/// at the same offset, and blocks found nowhere in `old` (what the delta
/// bundle carries as literal bytes: it copies any block of the base).
fn delta_blocks(old: &Path, new: &Path) -> (usize, usize) {
    let (a, b) = (std::fs::read(old).unwrap(), std::fs::read(new).unwrap());
    let known: HashSet<&[u8]> = a.chunks(BS).collect();
    let moved = a
        .chunks(BS)
        .zip(b.chunks(BS))
        .filter(|(x, y)| x != y)
        .count();
    let literal = b
        .chunks(BS)
        .filter(|c| c.iter().any(|&x| x != 0) && !known.contains(c))
        .count();
    (moved, literal)
}

/// e2fsck's "n/m files (p% non-contiguous)".
fn non_contiguous_percent(img: &Path) -> f64 {
    let out = Command::new("e2fsck").arg("-fn").arg(img).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("non-contiguous")).unwrap();
    let pct = line.split('(').nth(1).unwrap().split('%').next().unwrap();
    pct.trim().parse().unwrap()
}

/// e2freefrag's number of free extents and largest one in KiB.
fn free_extents(img: &Path) -> (u64, u64) {
    let out = Command::new("e2freefrag").arg(img).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        let v = line.split(':').nth(1).unwrap().split_whitespace().next();
        v.unwrap().parse().unwrap()
    };
    (field("Num. free extent"), field("Max. free extent"))
}

/// Compares what `debugfs rdump` extracts from `img` with `tree`.
fn read_back(img: &Path, tree: &Tree, dir: &Path) {
    let out = dir.join("rdump");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir(&out).unwrap();
    debugfs(img, &format!("rdump / {}", out.display()));
    std::fs::remove_dir(out.join("lost+found")).unwrap();
    // rdump dumps the root's entries into `out`, not the root's own time.
    let root = tree.node(composer::fs::tree::ROOT).mtime.sec;
    support::run(
        Command::new("touch")
            .arg("-d")
            .arg(format!("@{root}"))
            .arg(&out),
    );
    let keeps = Keeps {
        kernel: false,
        mtime: |t| t,
        mode_bits: 0o777,
        hard_links: true,
    };
    compare(tree, &out, keeps, false, &img.display().to_string()).unwrap();
}

#[test]
fn twenty_releases_stay_clean_compact_and_small_deltas() {
    if !(ext4_support::have("e2fsck")
        && ext4_support::have("debugfs")
        && ext4_support::have("e2freefrag"))
    {
        return;
    }
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = d.join("tree");
    let mut rng = Rng(0x05EE_D0F5_AB1E);
    let mut files = first_release(&mut rng);
    let img = |kind: &str, r: usize| d.join(format!("{kind}-{r:02}.img"));
    let scan_tree = |files: &Files| {
        write_tree(&src, files);
        scan(&src, &TreeOptions { xattrs: false }, &ctx()).unwrap()
    };
    let tree = scan_tree(&files);
    build(&img("stable", 0), &tree, None);
    build(&img("fresh", 0), &tree, None);
    let mut totals = [0usize; 4];
    eprintln!("release  moved-stable  moved-fresh  literal-stable  literal-fresh  non-contig%  free-extents  max-free-KiB");
    for r in 1..=RELEASES {
        next_release(&mut rng, &mut files, r);
        let tree = scan_tree(&files);
        build(&img("stable", r), &tree, Some(&img("stable", r - 1)));
        build(&img("fresh", r), &tree, None);
        assert_fsck_clean(&img("stable", r));
        read_back(&img("stable", r), &tree, d);
        let (ms, ls) = delta_blocks(&img("stable", r - 1), &img("stable", r));
        let (mf, lf) = delta_blocks(&img("fresh", r - 1), &img("fresh", r));
        let frag = non_contiguous_percent(&img("stable", r));
        let (free, max_free) = free_extents(&img("stable", r));
        eprintln!("{r:7}  {ms:12}  {mf:11}  {ls:14}  {lf:13}  {frag:11}  {free:12}  {max_free:12}");
        for (t, v) in totals.iter_mut().zip([ms, mf, ls, lf]) {
            *t += v;
        }
        // Compact: the figures docs/ext4.md reports, with headroom.
        assert!(frag <= 2.0, "release {r}: {frag}% of files non-contiguous");
        assert!(free <= 64, "release {r}: free space in {free} pieces");
        // Small deltas, every release: what changes in place is what a
        // delta must carry anyway (changed data) plus a little metadata.
        // Small deltas, every release: a fifth of the blocks a fresh
        // layout changes in place, at most.
        assert!(
            ms * 5 <= mf,
            "release {r}: {ms} blocks changed in place, {mf} without the reference"
        );

        std::fs::remove_file(img("stable", r - 1)).unwrap();
        std::fs::remove_file(img("fresh", r - 1)).unwrap();
    }
    let [ms, mf, ls, lf] = totals;
    eprintln!("total    {ms:12}  {mf:11}  {ls:14}  {lf:13}");
    assert!(
        ms * 8 <= mf,
        "stable placement changes {ms} blocks in place over {RELEASES} releases, without it {mf}"
    );
    assert!(
        ls * 10 <= lf * 9,
        "stable placement carries {ls} new blocks, without it {lf}"
    );
    // Reproducible: the same tree and reference give the same bytes.
    let again = d.join("again.img");
    let last = img("stable", RELEASES);
    let tree = scan(&src, &TreeOptions { xattrs: false }, &ctx()).unwrap();
    let reference = d.join("reference.img");
    std::fs::copy(&last, &reference).unwrap();
    build(&last, &tree, Some(&reference));
    build(&again, &tree, Some(&reference));
    assert!(
        std::fs::read(&last).unwrap() == std::fs::read(&again).unwrap(),
        "two builds from one tree and reference differ"
    );
    // Against itself, a tree changes nothing but the build time stamps.
    let (moved, _) = delta_blocks(&reference, &last);
    assert_eq!(moved, 0, "blocks changed against an identical release");
    eprintln!(
        "{RELEASES} releases in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

const DESC: &str = "\
image: { name: dev, table: gpt }
partitions:
  - name: rootA
    size: 16MiB
    fs: { type: ext4, label: root, from: tree }
  - name: rootB
    same-as: rootA
update:
  compatible: test-board
  version: 1.0.0
  slot: rootA
";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = support::composer(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {err}");
    err
}

fn refused(args: &[&str], text: &str) {
    let out = support::composer(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(text), "{args:?}: wanted {text:?} in {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// The partition `name` of the image `img`, copied to `to`.
fn partition(img: &Path, name: &str, to: &Path) {
    let (_, parts) = support::sfdisk(img);
    let p = parts
        .iter()
        .find(|p| p.name.as_deref() == Some(name))
        .unwrap();
    let data = std::fs::read(img).unwrap();
    let (start, len) = ((p.start * 512) as usize, (p.size * 512) as usize);
    std::fs::write(to, &data[start..start + len]).unwrap();
}

/// `debugfs blocks` of `path` in the partition rootA of `img`.
fn blocks(img: &Path, path: &str, dir: &Path) -> String {
    let part = dir.join("part.img");
    partition(img, "rootA", &part);
    debugfs(&part, &format!("blocks {path}"))
}

#[test]
fn cli_reference_keeps_unchanged_files_in_place() {
    if !(support::have_all(&["sfdisk"]) && ext4_support::have("debugfs")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut rng = Rng(7);
    std::fs::write(d.join("board.yaml"), DESC).unwrap();
    let mut files = Files::new();
    for (name, kib) in [("a", 100), ("b", 50), ("c", 20)] {
        files.insert(name.into(), rng.bytes(kib * 1024));
    }
    write_tree(&d.join("tree"), &files);
    let desc = d.join("board.yaml");
    ok(&["build", s(&desc), "-o", s(&d.join("v1"))]);
    let v1 = d.join("v1/dev.img");
    // Release 2: b grows (a fresh layout moves c), d is new.
    files.get_mut("b").unwrap().extend(rng.bytes(40 * 1024));
    files.insert("d".into(), rng.bytes(30 * 1024));
    write_tree(&d.join("tree"), &files);
    let log = ok(&[
        "build",
        s(&desc),
        "-o",
        s(&d.join("v2")),
        "--reference",
        s(&v1),
    ]);
    assert!(log.contains("2 unchanged files their blocks"), "{log}");
    ok(&["build", s(&desc), "-o", s(&d.join("fresh"))]);
    let (v2, fresh) = (d.join("v2/dev.img"), d.join("fresh/dev.img"));
    for path in ["/a", "/c"] {
        assert_eq!(blocks(&v1, path, d), blocks(&v2, path, d), "{path} moved");
    }
    assert_ne!(
        blocks(&v1, "/c", d),
        blocks(&fresh, "/c", d),
        "a fresh layout keeps /c: the test proves nothing"
    );
    let part = d.join("part.img");
    partition(&v2, "rootA", &part);
    assert_fsck_clean(&part);
    assert_eq!(ext4_support::dump(&part, "/b", d), files["b"]);
    // Release 3 removes the first file: its inode number is a gap.
    let mut release3 = files.clone();
    release3.remove("a");
    write_tree(&d.join("tree"), &release3);
    ok(&[
        "build",
        s(&desc),
        "-o",
        s(&d.join("v3")),
        "--reference",
        s(&v2),
    ]);
    partition(&d.join("v3/dev.img"), "rootA", &part);
    assert_fsck_clean(&part);
    assert!(debugfs(&part, "testi <12>").contains("not in use"));
    assert_eq!(blocks(&v2, "/c", d), blocks(&d.join("v3/dev.img"), "/c", d));

    // Bundles: with the release-1 bundle as reference, release 2's bundle
    // holds the slot the image reference gave.
    ok(&["keygen", "-o", s(&d.join("keys"))]);
    let key = d.join("keys/bundle.key");
    let release1: Files = files
        .iter()
        .filter(|(k, _)| k.as_str() != "d")
        .map(|(k, v)| {
            (
                k.clone(),
                if k == "b" {
                    v[..50 * 1024].to_vec()
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    write_tree(&d.join("tree"), &release1);
    let out = d.join("b");
    let bundle = |v: &str, reference: Option<&Path>| {
        let mut args = vec![
            "bundle",
            s(&desc),
            "-o",
            s(&out),
            "--key",
            s(&key),
            "--version",
            v,
        ];
        if let Some(r) = reference {
            args.extend(["--reference", s(r)]);
        }
        ok(&args)
    };
    bundle("1", None);
    write_tree(&d.join("tree"), &files);
    let log = bundle("2", Some(&d.join("b/dev-1.bundle")));
    assert!(log.contains("2 unchanged files their blocks"), "{log}");
    let mut slot = Vec::new();
    std::io::Read::read_to_end(&mut support::unpack(&d.join("b/dev-2.bundle")), &mut slot).unwrap();
    partition(&v2, "rootA", &part);
    assert!(
        slot == std::fs::read(&part).unwrap(),
        "bundle and image references differ"
    );

    // What is not a reference.
    let bad = d.join("bad");
    let out = s(&bad);
    refused(
        &["build", s(&desc), "-o", out, "--reference", s(&desc)],
        "neither a bundle",
    );
    refused(
        &[
            "build",
            s(&desc),
            "-o",
            out,
            "--reference",
            s(&d.join("missing.img")),
        ],
        "--reference",
    );
    let broken = d.join("broken.img");
    std::fs::copy(&v1, &broken).unwrap();
    let (_, parts) = support::sfdisk(&broken);
    let start = parts
        .iter()
        .find(|p| p.name.as_deref() == Some("rootA"))
        .unwrap()
        .start
        * 512;
    let f = File::options().write(true).open(&broken).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0, 0], start + 1080).unwrap();
    refused(
        &["build", s(&desc), "-o", out, "--reference", s(&broken)],
        "'rootA' is not an ext4 filesystem",
    );
    assert!(
        !d.join("bad").exists(),
        "a refused build wrote its output directory"
    );
    // Another size: laid out afresh, with a warning.
    std::fs::write(&desc, DESC.replace("16MiB", "20MiB")).unwrap();
    let log = ok(&[
        "build",
        s(&desc),
        "-o",
        s(&d.join("v3")),
        "--reference",
        s(&v1),
    ]);
    assert!(log.contains("laid out without it"), "{log}");
    // Another block size: the same.
    std::fs::write(
        &desc,
        DESC.replace("label: root,", "label: root, block-size: 1024,"),
    )
    .unwrap();
    let log = ok(&[
        "build",
        s(&desc),
        "-o",
        s(&d.join("v5")),
        "--reference",
        s(&v1),
    ]);
    assert!(
        log.contains("4096-byte blocks, this filesystem 1024: laid out without it"),
        "{log}"
    );
}

/// A reference is input: a corrupt one is an error, never a panic or a
/// runaway allocation. Bytes of the metadata of a small filesystem
/// (superblock, descriptors, inode table, directories) are overwritten,
/// seeded, and the reader must return.
#[test]
fn corrupt_references_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut rng = Rng(99);
    let mut files = Files::new();
    for i in 0..40 {
        let n = rng.size();
        files.insert(format!("d{}/f{i}", i % 5), rng.bytes(n));
    }
    write_tree(&d.join("tree"), &files);
    let tree = scan(&d.join("tree"), &TreeOptions { xattrs: false }, &ctx()).unwrap();
    let good = d.join("good.img");
    build(&good, &tree, None);
    let old = OldFs::read(File::open(&good).unwrap(), 0, FS_BYTES).unwrap();
    assert_eq!(
        old.paths.len(),
        files.len() + 5 + 1,
        "files, their directories, lost+found"
    );
    let bytes = std::fs::read(&good).unwrap();
    // The metadata the reader follows sits in the first ~600 KiB here.
    let meta: Vec<usize> = (0..bytes.len() / BS)
        .filter(|&b| b < 160 && bytes[b * BS..(b + 1) * BS].iter().any(|&x| x != 0))
        .collect();
    let bad = d.join("bad.img");
    std::fs::copy(&good, &bad).unwrap();
    let f = File::options().read(true).write(true).open(&bad).unwrap();
    let (mut ok, mut err) = (0, 0);
    for _ in 0..300 {
        // A few bytes overwritten in place, restored afterwards.
        let mut changed = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let block = meta[rng.below(meta.len() as u64) as usize];
            let at = block * BS + rng.below(BS as u64) as usize;
            changed.push(at);
            std::os::unix::fs::FileExt::write_all_at(&f, &[rng.next() as u8], at as u64).unwrap();
        }
        match OldFs::read(File::open(&bad).unwrap(), 0, FS_BYTES) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
        for at in changed {
            std::os::unix::fs::FileExt::write_all_at(&f, &bytes[at..at + 1], at as u64).unwrap();
        }
    }
    eprintln!("corrupt references: {ok} read, {err} refused");
    assert!(
        err > 0,
        "no corruption was noticed: the reader checks nothing"
    );
    let zeros = d.join("zeros.img");
    support::sparse_file(&zeros, FS_BYTES);
    let e = OldFs::read(File::open(&zeros).unwrap(), 0, FS_BYTES).unwrap_err();
    assert!(format!("{e:#}").contains("no ext4 superblock"), "{e:#}");
}
