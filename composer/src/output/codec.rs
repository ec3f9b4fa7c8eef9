//! The codec primitives: one function to encode and one to decode each of
//! zstd, xz and gzip, shared by the compressed image copies
//! ([`compress`](super::compress)) and the initramfs
//! ([`fs::cpio`](crate::fs::cpio)), so each format is made one way in one
//! place. Callers choose only what differs between them: the zstd level, the
//! LZMA2 options and xz check, the gzip level.
//!
//! **Crates** (measured in `docs/bmap.md`):
//! - zstd: the `zstd` crate (C libzstd, vendored and statically linked,
//!   built with `cc`, which Buildroot and Yocto cross-compile as they do
//!   every `-sys` crate). Pure-Rust `ruzstd` implements only its fastest
//!   level and ran at 8 MB/s against libzstd's 760 MB/s: rejected.
//! - xz: the `liblzma` crate (maintained fork of `xz2`, C liblzma vendored
//!   statically: same bytes on every host). Its stream encoder takes a filter
//!   chain and a check and writes the whole `.xz` container, so no container
//!   is written by hand. Pure-Rust `lzma-rs` has a literal-only encoder (no
//!   compression); `lzma-rust2` needed a hand-written container and was
//!   slower than liblzma: both rejected.
//! - gzip: `flate2` with its default pure-Rust `miniz_oxide` backend.
//!
//! **Determinism.** Every encoder runs single-threaded (libzstd's and
//! liblzma's multithreaded modes make output depend on the thread count);
//! gzip headers carry no name and mtime 0. The same input, options and
//! library version give the same bytes.
//!
//! Every encoder returns one complete, independent member of its format (a
//! zstd frame, an xz stream, a gzip member); decoders accept concatenations
//! of them, as the command-line tools do.

use liblzma::stream::{Check, Filters, LzmaOptions, Stream, CONCATENATED};
use std::io::{self, Read, Write};

/// One zstd frame of `data` at `level`, with the content size in the
/// header and the content checksum at the end (as `zstd` writes it).
/// Knowing the size, libzstd shrinks the window to fit small inputs.
pub fn zstd_encode(data: &[u8], level: i32) -> io::Result<Vec<u8>> {
    let mut c = zstd::bulk::Compressor::new(level)?;
    c.include_checksum(true)?;
    c.include_contentsize(true)?;
    c.compress(data)
}

/// The concatenated contents of the zstd frames in `data`.
pub fn zstd_decode(data: &[u8]) -> io::Result<Vec<u8>> {
    zstd::stream::decode_all(data)
}

/// One `.xz` stream of `data`: a single LZMA2 filter with `lzma2`, and
/// `check` over the uncompressed data.
pub fn xz_encode(data: &[u8], lzma2: &LzmaOptions, check: Check) -> io::Result<Vec<u8>> {
    let mut filters = Filters::new();
    filters.lzma2(lzma2);
    let stream = Stream::new_stream_encoder(&filters, check).map_err(io::Error::other)?;
    let mut out = Vec::with_capacity(data.len() / 2 + 4096);
    let mut e = liblzma::write::XzEncoder::new_stream(&mut out, stream);
    e.write_all(data)?;
    e.finish()?;
    Ok(out)
}

/// The concatenated contents of the `.xz` streams in `data`, every check
/// verified. No memory limit: the input is the user's own file.
pub fn xz_decode(data: &[u8]) -> io::Result<Vec<u8>> {
    let stream = Stream::new_stream_decoder(u64::MAX, CONCATENATED).map_err(io::Error::other)?;
    let mut out = Vec::with_capacity(data.len() * 4);
    liblzma::read::XzDecoder::new_stream(data, stream).read_to_end(&mut out)?;
    Ok(out)
}

/// One gzip member of `data` at `level` (0-9), with no file name and mtime
/// 0, so the output depends on the data only.
pub fn gzip_encode(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 2 + 4096);
    let mut e = flate2::GzBuilder::new()
        .mtime(0)
        .write(&mut out, flate2::Compression::new(level));
    e.write_all(data)?;
    e.finish()?;
    Ok(out)
}

/// The concatenated contents of the gzip members in `data`.
pub fn gzip_decode(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * 4);
    flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..20_000u32)
            .flat_map(|i| format!("row {} {}\n", i % 311, i / 7).into_bytes())
            .collect()
    }

    #[test]
    fn decoders_read_concatenated_members() {
        let (a, b) = (sample(), b"tail".to_vec());
        let both = [a.clone(), b.clone()].concat();
        let opts = LzmaOptions::new_preset(1).unwrap();
        let zst = [zstd_encode(&a, 1).unwrap(), zstd_encode(&b, 1).unwrap()].concat();
        assert_eq!(zstd_decode(&zst).unwrap(), both);
        let xz = [
            xz_encode(&a, &opts, Check::Crc32).unwrap(),
            xz_encode(&b, &opts, Check::Crc64).unwrap(),
        ]
        .concat();
        assert_eq!(xz_decode(&xz).unwrap(), both);
        let gz = [gzip_encode(&a, 1).unwrap(), gzip_encode(&b, 1).unwrap()].concat();
        assert_eq!(gzip_decode(&gz).unwrap(), both);
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        let data = sample();
        let opts = LzmaOptions::new_preset(1).unwrap();
        for (mut packed, decode) in [
            (
                zstd_encode(&data, 1).unwrap(),
                zstd_decode as fn(&[u8]) -> io::Result<Vec<u8>>,
            ),
            (xz_encode(&data, &opts, Check::Crc32).unwrap(), xz_decode),
            (gzip_encode(&data, 1).unwrap(), gzip_decode),
        ] {
            let last = packed.len() - 1;
            packed[last] ^= 0xFF;
            assert!(decode(&packed).is_err());
            assert!(decode(&packed[..packed.len() / 2]).is_err());
        }
    }
}
