//! Compressed copies decompressed by the command-line tools (`zstd -d`,
//! `xz -d`, `gzip -d`) must equal the image byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::have;

use composer::output::bmap;
use composer::output::compress::{write_compressed, Compression, CHUNK_BYTES};
use composer::output::window::{Extents, Window};
use std::fs::File;
use std::path::Path;
use std::process::Command;

/// A sparse image: data straddling chunk borders, a mapped zero range, a
/// fully unmapped chunk, a partial last chunk.
fn make_image(dir: &Path) -> (std::path::PathBuf, File, u64, Extents) {
    let path = dir.join("sd.img");
    let size = 3 * CHUNK_BYTES + 12345;
    let file = support::sparse_file(&path, size);
    let mut w = Window::new(&file, 0, size);
    let mut x: u32 = 1;
    let noise: Vec<u8> = (0..300_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    w.write_at(&noise, 0).unwrap();
    w.write_at(&noise, CHUNK_BYTES - 1000).unwrap();
    w.write_at(b"text text text text text", 3 * CHUNK_BYTES + 100)
        .unwrap();
    w.write_at(&noise[..345], size - 345).unwrap();
    w.zero(5_000_000, 100_000).unwrap();
    let mapped = w.into_mapped();
    (path, file, size, mapped)
}

#[test]
fn command_line_tools_decompress_to_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let (path, file, size, mapped) = make_image(dir.path());
    let image = std::fs::read(&path).unwrap();
    for (kind, tool) in [
        (Compression::Zst, "zstd"),
        (Compression::Xz, "xz"),
        (Compression::Gz, "gzip"),
    ] {
        if !have(tool) {
            continue;
        }
        let out = dir.path().join(format!("sd.img.{}", kind.extension()));
        write_compressed(
            &file,
            size,
            &mapped,
            kind,
            &std::fs::File::create(&out).unwrap(),
            "x",
        )
        .unwrap();
        let compressed_len = std::fs::metadata(&out).unwrap().len();
        assert!(compressed_len < size / 20, "{tool}: {compressed_len} bytes");
        let result = Command::new(tool).arg("-dc").arg(&out).output().unwrap();
        assert!(
            result.status.success(),
            "{tool} -d failed: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        assert!(
            result.stdout == image,
            "{tool} -d does not give back the image"
        );

        // bmaptool flashes the compressed image with the bmap of the raw
        // one (it decompresses multi-member files as one stream).
        if have("bmaptool") {
            let bmap_path = dir.path().join("sd.img.bmap");
            let ranges = bmap::hash_all(&file, size, &mapped).unwrap();
            std::fs::write(&bmap_path, bmap::render(size, &ranges)).unwrap();
            let flashed = dir.path().join("flashed.img");
            let status = Command::new("bmaptool")
                .args(["-q", "copy", "--bmap"])
                .arg(&bmap_path)
                .arg(&out)
                .arg(&flashed)
                .status()
                .unwrap();
            assert!(status.success(), "bmaptool copy of {}", out.display());
            assert!(
                std::fs::read(&flashed).unwrap() == image,
                "bmaptool from {tool}"
            );
        }

        // Deterministic: a second run gives the same bytes.
        let again = dir.path().join(format!("again.{}", kind.extension()));
        write_compressed(
            &file,
            size,
            &mapped,
            kind,
            &std::fs::File::create(&again).unwrap(),
            "x",
        )
        .unwrap();
        assert!(std::fs::read(&out).unwrap() == std::fs::read(&again).unwrap());
    }
}

/// The test above can fail: a byte the map does not cover is not copied.
#[test]
fn unmapped_bytes_are_not_read() {
    if !have("zstd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (path, file, size, mut mapped) = make_image(dir.path());
    use std::os::unix::fs::FileExt;
    file.write_all_at(b"unmapped", 2 * CHUNK_BYTES).unwrap();
    let out = dir.path().join("sd.img.zst");
    write_compressed(
        &file,
        size,
        &mapped,
        Compression::Zst,
        &std::fs::File::create(&out).unwrap(),
        "x",
    )
    .unwrap();
    let result = Command::new("zstd").arg("-dc").arg(&out).output().unwrap();
    assert!(result.stdout != std::fs::read(&path).unwrap());
    mapped.insert(2 * CHUNK_BYTES, 2 * CHUNK_BYTES + 8);
    write_compressed(
        &file,
        size,
        &mapped,
        Compression::Zst,
        &std::fs::File::create(&out).unwrap(),
        "x",
    )
    .unwrap();
    let result = Command::new("zstd").arg("-dc").arg(&out).output().unwrap();
    assert!(result.stdout == std::fs::read(&path).unwrap());
}
