//! Raw content: a sparse source stays sparse, `skip` drops the head, a
//! missing file names its path, zero fill maps without writing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use composer::fs::raw::{RawImage, Zeros};
use composer::fs::Content;
use composer::output::window::Window;
use std::os::unix::fs::FileExt;

const MIB: u64 = 1 << 20;

#[test]
fn a_sparse_source_stays_sparse_and_skip_drops_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let src_path = dir.path().join("rootfs.ext4");
    let src = support::sparse_file(&src_path, 16 * MIB);
    src.write_all_at(&[1u8; 4096], 0).unwrap();
    src.write_all_at(&[2u8; 8192], 5 * MIB).unwrap();
    src.write_all_at(&[3u8; 100], 16 * MIB - 100).unwrap();
    src.sync_all().unwrap();

    // skip = 1 MiB: the first data block is not part of the content.
    let raw = RawImage::open(&src_path, MIB).unwrap();
    assert_eq!(raw.min_size(), 15 * MIB);
    let img = support::sparse_file(&dir.path().join("img"), 64 * MIB);
    let base = 8 * MIB;
    let mut w = Window::new(&img, base, 32 * MIB);
    raw.write(&mut w).unwrap();

    // Only the data segments are mapped: holes of the source stay holes.
    assert!(w.mapped().total() <= 2 * MIB, "{:?}", w.mapped());
    let mapped: Vec<_> = w.mapped().iter().collect();
    assert!(mapped
        .iter()
        .any(|&(s, e)| s <= 4 * MIB && e >= 4 * MIB + 8192));
    assert!(mapped
        .iter()
        .any(|&(s, e)| s <= 15 * MIB - 100 && e >= 15 * MIB));
    assert!(mapped.iter().all(|&(_, e)| e <= 15 * MIB));

    // Byte-identical to the source from `skip` on.
    let mut want = vec![0u8; 15 * MIB as usize];
    src.read_exact_at(&mut want, MIB).unwrap();
    let mut got = vec![0u8; 15 * MIB as usize];
    img.read_exact_at(&mut got, base).unwrap();
    assert!(want == got);
    let mut before = vec![0u8; base as usize];
    img.read_exact_at(&mut before, 0).unwrap();
    assert!(
        before.iter().all(|&b| b == 0),
        "nothing written before the window"
    );

    // The image itself stays sparse (du-style check on allocated blocks).
    use std::os::unix::fs::MetadataExt;
    let allocated = img.metadata().unwrap().blocks() * 512;
    assert!(allocated <= 2 * MIB, "{allocated} bytes allocated");
}

#[test]
fn skip_beyond_the_end_and_missing_files_are_errors_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u-boot.bin");
    std::fs::write(&path, [0u8; 100]).unwrap();
    assert_eq!(RawImage::open(&path, 100).unwrap().min_size(), 0);
    let err = format!("{:#}", RawImage::open(&path, 101).unwrap_err());
    assert!(err.contains("u-boot.bin") && err.contains("101"), "{err}");

    let missing = dir.path().join("flash.bin");
    let err = format!("{:#}", RawImage::open(&missing, 0).unwrap_err());
    assert!(err.contains("flash.bin"), "{err}");
    assert!(err.contains("No such file"), "{err}");
}

#[test]
fn zeros_map_the_whole_window_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let img = support::sparse_file(&dir.path().join("img"), 4 * MIB);
    let mut w = Window::new(&img, MIB, 2 * MIB);
    assert_eq!(Zeros.min_size(), 0);
    Zeros.write(&mut w).unwrap();
    assert_eq!(w.mapped().iter().collect::<Vec<_>>(), [(0, 2 * MIB)]);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(img.metadata().unwrap().blocks(), 0, "nothing was written");
}
