//! `.partial` then rename: a failed build leaves nothing, a committed one
//! exactly the final file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use composer::output::atomic::{write_atomic, PartialFile};
use std::os::unix::fs::FileExt;
use std::path::Path;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn dropping_without_commit_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let final_path = dir.path().join("sdcard.img");
    {
        let p = PartialFile::create(&final_path).unwrap();
        p.file().set_len(1 << 20).unwrap();
        p.file().write_all_at(b"half an image", 0).unwrap();
        assert_eq!(names(dir.path()), ["sdcard.img.partial"]);
        // The build fails here: `p` is dropped.
    }
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

#[test]
fn a_failed_rebuild_keeps_the_previous_image() {
    let dir = tempfile::tempdir().unwrap();
    let final_path = dir.path().join("sdcard.img");
    std::fs::write(&final_path, b"previous").unwrap();
    drop(PartialFile::create(&final_path).unwrap());
    assert_eq!(std::fs::read(&final_path).unwrap(), b"previous");
    assert_eq!(names(dir.path()), ["sdcard.img"]);
}

#[test]
fn commit_leaves_exactly_the_final_file() {
    let dir = tempfile::tempdir().unwrap();
    let final_path = dir.path().join("sdcard.img");
    std::fs::write(&final_path, b"previous build").unwrap();
    // A stale .partial from a killed run is truncated, not appended to.
    std::fs::write(dir.path().join("sdcard.img.partial"), b"stale junk junk").unwrap();
    let p = PartialFile::create(&final_path).unwrap();
    assert_eq!(p.partial_path(), dir.path().join("sdcard.img.partial"));
    p.file().write_all_at(b"new", 0).unwrap();
    p.commit().unwrap();
    assert_eq!(names(dir.path()), ["sdcard.img"]);
    assert_eq!(std::fs::read(&final_path).unwrap(), b"new");
}

#[test]
fn write_atomic_replaces_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sdcard.img.bmap");
    write_atomic(&path, b"one").unwrap();
    write_atomic(&path, b"two").unwrap();
    assert_eq!(names(dir.path()), ["sdcard.img.bmap"]);
    assert_eq!(std::fs::read(&path).unwrap(), b"two");
}

#[test]
fn a_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = PartialFile::create(&dir.path().join("no/such/dir/x.img")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}
