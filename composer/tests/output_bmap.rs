//! The bmap checked by independent readers: `bmaptool copy` (verifies the
//! file checksum, every range checksum and the mapped block count),
//! `bmaptool create` (its hole scan must find the same ranges where the
//! image's data blocks are exactly the mapped ones) and the `bmap-parser`
//! crate (a proptest round trip).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::have;

use composer::output::bmap::{self, Hasher, MappedRange, BLOCK_SIZE};
use composer::output::window::{Extents, Window};
use proptest::prelude::*;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// splitmix64: deterministic test data without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.next() | 1) as u8).collect()
    }
}

/// What a test image holds: its mapped ranges, some of them data (never a
/// zero byte, so a data block is never mistaken for a hole), some zeros
/// that must be written.
struct TestImage {
    path: PathBuf,
    file: Arc<File>,
    size: u64,
    mapped: Extents,
}

/// Writes `data_writes` random-length, random-offset data ranges and
/// `zero_ranges` must-be-zero ranges into a fresh image of `size` bytes.
fn make_image(
    dir: &Path,
    name: &str,
    size: u64,
    seed: u64,
    data_writes: usize,
    zero_ranges: usize,
) -> TestImage {
    let path = dir.join(name);
    let file = support::sparse_file(&path, size);
    let mut rng = Rng(seed);
    let mut w = Window::new(&file, 0, size);
    for _ in 0..data_writes {
        let len = 1 + rng.below(3 * BLOCK_SIZE + 777);
        let pos = rng.below(size - len);
        w.write_at(&rng.bytes(len as usize), pos).unwrap();
    }
    for _ in 0..zero_ranges {
        let len = 1 + rng.below(5 * BLOCK_SIZE);
        let pos = rng.below(size - len);
        w.zero(pos, len).unwrap();
    }
    let mapped = w.into_mapped();
    TestImage {
        path,
        file: Arc::new(file),
        size,
        mapped,
    }
}

/// Hashes the image the way the build does: several regions, each
/// submitted to a running [`Hasher`] once written. Region borders are
/// block-aligned so that no block is submitted twice.
fn hash_in_regions(img: &TestImage, borders: &[u64]) -> Vec<MappedRange> {
    let hasher = Hasher::spawn(Arc::clone(&img.file), img.size).unwrap();
    let mut cuts = vec![0];
    cuts.extend(borders.iter().map(|b| b * BLOCK_SIZE));
    cuts.push(img.size);
    for pair in cuts.windows(2) {
        let mut region = Extents::new();
        for (s, e) in img.mapped.iter() {
            let (s, e) = (s.max(pair[0]), e.min(pair[1]));
            if s < e {
                region.insert(s, e);
            }
        }
        hasher.submit_extents(&region);
    }
    hasher.finish().unwrap()
}

fn write_bmap(img: &TestImage, ranges: &[MappedRange]) -> PathBuf {
    let path = img.path.with_extension("bmap");
    std::fs::write(&path, bmap::render(img.size, ranges)).unwrap();
    path
}

/// The blocks of `path` that hold data, by `SEEK_DATA`/`SEEK_HOLE`.
fn data_blocks(path: &Path) -> Vec<std::ops::Range<u64>> {
    use rustix::fs::{seek, SeekFrom};
    let f = File::open(path).unwrap();
    f.sync_all().unwrap();
    let size = f.metadata().unwrap().len();
    let mut out: Vec<std::ops::Range<u64>> = Vec::new();
    let mut pos = 0;
    while pos < size {
        let Ok(data) = seek(&f, SeekFrom::Data(pos)) else {
            break;
        };
        let hole = seek(&f, SeekFrom::Hole(data)).unwrap();
        out.push(data / BLOCK_SIZE..hole.div_ceil(BLOCK_SIZE));
        pos = hole;
    }
    out
}

/// `bmaptool copy` into a new file; returns whether it succeeded, and on
/// success checks that the copy equals the image and that bmaptool wrote
/// exactly the mapped blocks (zero ranges included): the copy's data
/// blocks, as the filesystem reports them, are the mapped ones.
fn bmaptool_copy(img: &TestImage, bmap_path: &Path) -> bool {
    let out = img.path.with_extension("out");
    let status = Command::new("bmaptool")
        .args(["-q", "copy", "--bmap"])
        .arg(bmap_path)
        .arg(&img.path)
        .arg(&out)
        .status()
        .unwrap();
    if !status.success() {
        return false;
    }
    let image = std::fs::read(&img.path).unwrap();
    let flashed = std::fs::read(&out).unwrap();
    assert!(image == flashed, "the copy differs from the image");
    assert_eq!(data_blocks(&out), bmap::blocks_of(&img.mapped));
    true
}

#[test]
fn bmaptool_accepts_and_verifies_our_bmap() {
    if !have("bmaptool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Sizes not multiples of 4096: the last block is partial.
    for (i, (size, writes, zeros)) in [
        (5 * 1024 * 1024 + 123, 40, 6),
        (64 * 4096 + 1, 3, 1),
        (3 * 1024 * 1024 + 4095, 200, 20),
    ]
    .into_iter()
    .enumerate()
    {
        let img = make_image(
            dir.path(),
            &format!("img{i}.img"),
            size,
            7 + i as u64,
            writes,
            zeros,
        );
        // The last partial block always holds data.
        img.file.write_all_at(b"tail", size - 4).unwrap();
        let mut mapped = img.mapped.clone();
        mapped.insert(size - 4, size);
        let img = TestImage { mapped, ..img };

        let blocks = bmap::blocks_count(size);
        let ranges = hash_in_regions(&img, &[blocks / 3, blocks / 2, blocks - 1]);
        let total: u64 = ranges.iter().map(MappedRange::blocks).sum();
        let expected: u64 = bmap::blocks_of(&img.mapped)
            .iter()
            .map(|r| r.end - r.start)
            .sum();
        assert_eq!(total, expected);
        let bmap_path = write_bmap(&img, &ranges);
        assert!(
            bmaptool_copy(&img, &bmap_path),
            "bmaptool rejected {}",
            bmap_path.display()
        );

        // The standalone path (one submission) is accepted too.
        let all = bmap::hash_all(&img.file, size, &img.mapped).unwrap();
        let bmap_path = write_bmap(&img, &all);
        assert!(bmaptool_copy(&img, &bmap_path));
    }
}

#[test]
fn bmaptool_rejects_a_tampered_image_or_bmap() {
    if !have("bmaptool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = make_image(dir.path(), "t.img", 2 * 1024 * 1024, 99, 20, 2);
    let ranges = bmap::hash_all(&img.file, img.size, &img.mapped).unwrap();
    let bmap_path = write_bmap(&img, &ranges);
    assert!(bmaptool_copy(&img, &bmap_path));

    // One byte changed inside a mapped range: the range checksum fails.
    let (s, _) = img.mapped.iter().next().unwrap();
    let mut b = [0u8];
    img.file.read_exact_at(&mut b, s).unwrap();
    img.file.write_all_at(&[b[0] ^ 1], s).unwrap();
    assert!(!bmaptool_copy(&img, &bmap_path), "tampered image accepted");
    img.file.write_all_at(&b, s).unwrap();
    assert!(bmaptool_copy(&img, &bmap_path));

    // One range edited in the bmap: the file checksum fails.
    let xml = std::fs::read_to_string(&bmap_path).unwrap();
    let r = &ranges[0];
    let edited = xml.replacen(
        &format!("> {}-{} </Range>", r.first_block, r.last_block),
        &format!("> {}-{} </Range>", r.first_block, r.last_block + 1),
        1,
    );
    assert_ne!(xml, edited);
    std::fs::write(&bmap_path, edited).unwrap();
    assert!(!bmaptool_copy(&img, &bmap_path), "tampered bmap accepted");
}

#[test]
fn bmaptool_accepts_an_empty_map() {
    if !have("bmaptool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = make_image(dir.path(), "e.img", 1024 * 1024 + 5, 1, 0, 0);
    let ranges = Hasher::spawn(Arc::clone(&img.file), img.size)
        .unwrap()
        .finish()
        .unwrap();
    assert!(ranges.is_empty());
    let bmap_path = write_bmap(&img, &ranges);
    assert!(bmaptool_copy(&img, &bmap_path));
}

/// Where every mapped block holds data, `bmaptool create`'s hole scan sees
/// exactly our map: both bmaps must list the same ranges and checksums.
#[test]
fn bmaptool_create_finds_the_same_ranges() {
    if !have("bmaptool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = make_image(dir.path(), "c.img", 4 * 1024 * 1024 + 1000, 5, 60, 0);
    img.file.sync_all().unwrap();
    let ours = bmap::render(
        img.size,
        &bmap::hash_all(&img.file, img.size, &img.mapped).unwrap(),
    );
    let theirs_path = dir.path().join("c.theirs.bmap");
    let status = Command::new("bmaptool")
        .args(["-q", "create", "-o"])
        .arg(&theirs_path)
        .arg(&img.path)
        .status()
        .unwrap();
    assert!(status.success());
    let theirs = std::fs::read_to_string(&theirs_path).unwrap();
    let ours = bmap_parser::Bmap::from_xml(&ours).unwrap();
    let theirs = bmap_parser::Bmap::from_xml(&theirs).unwrap();
    assert_eq!(ours.image_size(), theirs.image_size());
    assert_eq!(ours.blocks(), theirs.blocks());
    assert_eq!(ours.mapped_blocks(), theirs.mapped_blocks());
    let ours: Vec<_> = ours.block_map().cloned().collect();
    let theirs: Vec<_> = theirs.block_map().cloned().collect();
    assert_eq!(ours, theirs);
}

/// Disjoint random block ranges inside an image of random size.
fn arb_bmap() -> impl Strategy<Value = (u64, Vec<MappedRange>)> {
    (1u64..1 << 40).prop_flat_map(|size| {
        let blocks = bmap::blocks_count(size);
        (
            Just(size),
            prop::collection::vec((0..blocks, 1u64..1000, any::<[u8; 32]>()), 1..30),
        )
            .prop_map(|(size, raw)| {
                let blocks = bmap::blocks_count(size);
                let mut taken = Extents::new();
                let mut ranges = Vec::new();
                for (first, len, sha256) in raw {
                    let last = (first + len - 1).min(blocks - 1);
                    let before = taken.total();
                    taken.insert(first, last + 1);
                    // Keep only ranges that overlap nothing kept so far.
                    if taken.total() - before == last - first + 1
                        && !ranges
                            .iter()
                            .any(|r: &MappedRange| r.first_block <= last && first <= r.last_block)
                    {
                        ranges.push(MappedRange {
                            first_block: first,
                            last_block: last,
                            sha256,
                        });
                    }
                }
                (size, ranges)
            })
    })
}

proptest! {
    #[test]
    fn bmap_parser_reads_back_what_we_render((size, ranges) in arb_bmap()) {
        let xml = bmap::render(size, &ranges);
        let parsed = bmap_parser::Bmap::from_xml(&xml).map_err(|e| TestCaseError::fail(format!("{e}\n{xml}")))?;
        prop_assert_eq!(parsed.image_size(), size);
        prop_assert_eq!(parsed.blocks(), bmap::blocks_count(size));
        let mapped: u64 = ranges.iter().map(MappedRange::blocks).sum();
        prop_assert_eq!(parsed.mapped_blocks(), mapped);
        let mut sorted = ranges.clone();
        sorted.sort_by_key(|r| r.first_block);
        let got: Vec<_> = parsed.block_map().collect();
        prop_assert_eq!(got.len(), sorted.len());
        for (g, r) in got.iter().zip(&sorted) {
            prop_assert_eq!(g.offset(), r.first_block * BLOCK_SIZE);
            prop_assert_eq!(g.length(), ((r.last_block + 1) * BLOCK_SIZE).min(size) - r.first_block * BLOCK_SIZE);
            let sum = g.checksum();
            prop_assert_eq!(sum.as_slice(), &r.sha256[..]);
        }
    }
}
