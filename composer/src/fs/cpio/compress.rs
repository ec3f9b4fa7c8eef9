//! Compression of an initramfs archive, in the formats the Linux kernel's
//! initramfs unpacker reads (`init/initramfs.c` → `lib/decompress_*.c`),
//! and decompression of kernel modules shipped compressed (`.ko.xz`,
//! `.ko.zst`, `.ko.gz`).
//!
//! Every encoder is pure Rust (Buildroot and Yocto cross-build every crate)
//! and deterministic: no timestamps, names or thread-count-dependent output.
//! - gzip: `flate2` (miniz_oxide), header mtime 0, no file name.
//! - zstd: `ruzstd`, its "fastest" level (≈ zstd -1; the only level it
//!   implements). An initramfs is a few MiB, so the ratio matters little.
//! - xz: the `.xz` container written here around `lzma-rust2`'s LZMA2
//!   encoder (that crate's xz support needs a newer Rust than our MSRV).
//!   The kernel's XZ decoder verifies only CRC32 or no check, hence CRC32
//!   (what the kernel's own `usr/gen_initramfs.sh` asks of `xz`).
//! - lz4: the *legacy* lz4 frame (magic `0x184C2102`), the only one the
//!   kernel's `lib/decompress_unlz4.c` reads, around `lz4_flex` blocks.
//!
//! Spec: the .xz file format 1.1.0 (tukaani.org), lz4 `doc/lz4_Frame_format.md`
//! ("Legacy frame"), RFC 1952 (gzip), RFC 8878 (zstd).

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

/// How the archive is compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    #[default]
    Gzip,
    Zstd,
    Xz,
    Lz4,
}

impl Compression {
    const ALL: [(&'static str, Compression); 5] = [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("zstd", Compression::Zstd),
        ("xz", Compression::Xz),
        ("lz4", Compression::Lz4),
    ];
}

impl FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Compression::ALL
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, c)| *c)
            .ok_or_else(|| format!("\"{s}\" is not a compression; use none, gzip, zstd, xz or lz4"))
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Compression::ALL
            .iter()
            .find(|(_, c)| c == self)
            .map_or("?", |(n, _)| n);
        f.write_str(name)
    }
}

/// Compresses `data` with `how`.
pub fn compress(data: &[u8], how: Compression) -> Result<Vec<u8>> {
    match how {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 2),
                flate2::Compression::best(),
            );
            enc.write_all(data).context("gzip-compressing")?;
            enc.finish().context("gzip-compressing")
        }
        Compression::Zstd => Ok(ruzstd::encoding::compress_to_vec(
            data,
            ruzstd::encoding::CompressionLevel::Fastest,
        )),
        Compression::Xz => xz_compress(data),
        Compression::Lz4 => Ok(lz4_legacy_compress(data)),
    }
}

/// `.xz` magic bytes at the start of a stream.
const XZ_HEADER_MAGIC: [u8; 6] = [0xFD, b'7', b'z', b'X', b'Z', 0x00];
/// `.xz` magic bytes at the end of a stream.
const XZ_FOOTER_MAGIC: [u8; 2] = [b'Y', b'Z'];
/// Stream flags: no reserved bits, check type 0x01 = CRC32.
const XZ_STREAM_FLAGS: [u8; 2] = [0x00, 0x01];
/// Filter id of LZMA2 in a block header.
const XZ_FILTER_LZMA2: u8 = 0x21;
/// LZMA2 dictionary bounds: the format's minimum, and xz -6's size, which
/// is more than any initramfs needs.
const XZ_DICT_MIN: u32 = 4096;
const XZ_DICT_MAX: u32 = 8 << 20;

/// The one-byte LZMA2 dictionary size property: the smallest code `n` with
/// `(2 | (n & 1)) << (n / 2 + 11) >= dict` (xz format 5.3.1).
fn lzma2_dict_code(dict: u32) -> u8 {
    (0u8..40)
        .find(|n| (2u64 | u64::from(n & 1)) << (n / 2 + 11) >= u64::from(dict))
        .unwrap_or(40)
}

/// The variable-length integer of the xz format: 7 bits a byte, low first.
fn xz_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn pad4(out: &mut Vec<u8>, from: usize) {
    while !(out.len() - from).is_multiple_of(4) {
        out.push(0);
    }
}

fn xz_compress(data: &[u8]) -> Result<Vec<u8>> {
    let dict = u32::try_from(data.len())
        .unwrap_or(u32::MAX)
        .clamp(XZ_DICT_MIN, XZ_DICT_MAX)
        .next_power_of_two();
    let mut opts = lzma_rust2::LZMA2Options::with_preset(6);
    opts.dict_size = dict;
    let mut lzma2 = lzma_rust2::LZMA2Writer::new(Vec::new(), &opts);
    lzma2.write_all(data).context("xz-compressing")?;
    let packed = lzma2.finish().context("xz-compressing")?;

    let mut out = Vec::with_capacity(packed.len() + 64);
    out.extend_from_slice(&XZ_HEADER_MAGIC);
    out.extend_from_slice(&XZ_STREAM_FLAGS);
    out.extend_from_slice(&crc32fast::hash(&XZ_STREAM_FLAGS).to_le_bytes());

    // Block header: size, flags (one filter, no sizes), filter flags, padding, CRC32.
    let block_start = out.len();
    out.extend_from_slice(&[0, 0x00, XZ_FILTER_LZMA2, 0x01, lzma2_dict_code(dict)]);
    pad4(&mut out, block_start);
    let header_len = out.len() - block_start + 4;
    out[block_start] = (header_len / 4 - 1) as u8;
    let crc = crc32fast::hash(&out[block_start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&packed);
    pad4(&mut out, block_start);
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    let unpadded = (header_len + packed.len() + 4) as u64;

    // Index: one record.
    let index_start = out.len();
    out.push(0x00);
    xz_varint(&mut out, 1);
    xz_varint(&mut out, unpadded);
    xz_varint(&mut out, data.len() as u64);
    pad4(&mut out, index_start);
    let crc = crc32fast::hash(&out[index_start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    let index_len = out.len() - index_start;

    // Footer: CRC32 of (backward size, flags), backward size, flags, magic.
    let mut tail = Vec::with_capacity(6);
    tail.extend_from_slice(&((index_len / 4 - 1) as u32).to_le_bytes());
    tail.extend_from_slice(&XZ_STREAM_FLAGS);
    out.extend_from_slice(&crc32fast::hash(&tail).to_le_bytes());
    out.extend_from_slice(&tail);
    out.extend_from_slice(&XZ_FOOTER_MAGIC);
    Ok(out)
}

/// Magic of the legacy lz4 frame (`lz4 -l`), the one the kernel reads.
const LZ4_LEGACY_MAGIC: u32 = 0x184C_2102;
/// Uncompressed bytes per legacy block: fixed by the format at 8 MiB.
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

fn lz4_legacy_compress(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 2 + 16);
    out.extend_from_slice(&LZ4_LEGACY_MAGIC.to_le_bytes());
    for chunk in data.chunks(LZ4_LEGACY_BLOCK) {
        let block = lz4_flex::block::compress(chunk);
        // A block of at most 8 MiB compresses to well under 4 GiB.
        out.extend_from_slice(&(block.len() as u32).to_le_bytes());
        out.extend_from_slice(&block);
    }
    out
}

/// Kernel module file name suffixes and how to undo them.
const MODULE_SUFFIXES: [(&str, Compression); 4] = [
    (".ko.xz", Compression::Xz),
    (".ko.zst", Compression::Zstd),
    (".ko.gz", Compression::Gzip),
    (".ko", Compression::None),
];

/// How a module file named `name` is compressed, and its name as a plain
/// `.ko`; `None` when it is not a module file name.
pub fn module_compression(name: &str) -> Option<(Compression, String)> {
    MODULE_SUFFIXES.iter().find_map(|(suffix, how)| {
        name.strip_suffix(suffix)
            .map(|stem| (*how, format!("{stem}.ko")))
    })
}

/// Decompresses a module file's bytes: busybox `insmod` (and a kernel
/// without CONFIG_MODULE_DECOMPRESS) loads only plain `.ko`.
pub fn decompress(data: &[u8], how: Compression) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * 4);
    match how {
        Compression::None => out.extend_from_slice(data),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(data).read_to_end(&mut out)?;
        }
        Compression::Zstd => {
            ruzstd::decoding::StreamingDecoder::new(data)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .read_to_end(&mut out)?;
        }
        Compression::Xz => {
            lzma_rs::xz_decompress(&mut &data[..], &mut out)
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        Compression::Lz4 => bail!("lz4-compressed modules are not supported"),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sample() -> Vec<u8> {
        (0..60_000u32)
            .flat_map(|i| format!("line {} {}\n", i % 977, i / 3).into_bytes())
            .collect()
    }

    #[test]
    fn names_parse_and_print() {
        for (name, c) in Compression::ALL {
            assert_eq!(name.parse::<Compression>().unwrap(), c);
            assert_eq!(c.to_string(), name);
        }
        assert_eq!(
            "bzip2".parse::<Compression>().unwrap_err(),
            "\"bzip2\" is not a compression; use none, gzip, zstd, xz or lz4"
        );
    }

    #[test]
    fn dict_code_follows_the_xz_table() {
        assert_eq!(lzma2_dict_code(4096), 0);
        assert_eq!(lzma2_dict_code(1 << 20), 16);
        assert_eq!(lzma2_dict_code(3 << 19), 17);
        assert_eq!(lzma2_dict_code(8 << 20), 22);
    }

    #[test]
    fn our_codecs_round_trip_through_independent_decoders() {
        let data = sample();
        // Pure-Rust decoders written by others.
        let gz = compress(&data, Compression::Gzip).unwrap();
        assert_eq!(decompress(&gz, Compression::Gzip).unwrap(), data);
        let zst = compress(&data, Compression::Zstd).unwrap();
        assert_eq!(decompress(&zst, Compression::Zstd).unwrap(), data);
        let xz = compress(&data, Compression::Xz).unwrap();
        assert!(xz.len() < data.len() / 4, "xz does compress");
        assert_eq!(decompress(&xz, Compression::Xz).unwrap(), data);
        let lz4 = compress(&data, Compression::Lz4).unwrap();
        assert_eq!(&lz4[..4], &[0x02, 0x21, 0x4C, 0x18]);
        let block_len = u32::from_le_bytes([lz4[4], lz4[5], lz4[6], lz4[7]]) as usize;
        assert_eq!(lz4.len(), 8 + block_len, "one block for < 8 MiB");
        assert_eq!(
            lz4_flex::block::decompress(&lz4[8..], data.len()).unwrap(),
            data
        );
    }

    /// The reference command-line tools agree (xz checks every CRC and the index).
    #[test]
    fn reference_tools_decode_our_streams() {
        let data = sample();
        let dir = tempfile::tempdir().unwrap();
        for (how, tool, args) in [
            (Compression::Xz, "xz", &["-dc"][..]),
            (Compression::Gzip, "gzip", &["-dc"][..]),
            (Compression::Zstd, "zstd", &["-dc"][..]),
            (Compression::Lz4, "lz4", &["-dc"][..]),
        ] {
            if Command::new(tool).arg("--version").output().is_err() {
                assert!(std::env::var_os("CI").is_none(), "{tool} is missing in CI");
                eprintln!("note: {tool} not installed; skipping its check");
                continue;
            }
            let path = dir.path().join(format!("data.{how}"));
            std::fs::write(&path, compress(&data, how).unwrap()).unwrap();
            let out = Command::new(tool).args(args).arg(&path).output().unwrap();
            assert!(
                out.status.success(),
                "{tool}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.stdout == data, "{tool} decodes our {how} stream");
        }
    }

    #[test]
    fn module_names_map_to_decompressors() {
        assert_eq!(
            module_compression("ext4.ko.xz"),
            Some((Compression::Xz, "ext4.ko".into()))
        );
        assert_eq!(
            module_compression("a.ko"),
            Some((Compression::None, "a.ko".into()))
        );
        assert_eq!(module_compression("modules.dep"), None);
    }
}
