//! Compression of an initramfs archive, in the formats the Linux kernel's
//! initramfs unpacker reads (`init/initramfs.c` → `lib/decompress_*.c`),
//! and decompression of kernel modules shipped compressed (`.ko.xz`,
//! `.ko.zst`, `.ko.gz`).
//!
//! zstd, xz and gzip go through [`output::codec`](crate::output::codec),
//! the one place each format is encoded and decoded (C libzstd, C liblzma,
//! `flate2`; why those crates is documented there). This module picks the
//! settings the kernel build itself uses for an initramfs
//! (`usr/Makefile` → `scripts/Makefile.lib`) and checks they suit the
//! kernel's decoders:
//! - gzip: level 9 (`gzip -n -9`), no name, mtime 0.
//! - zstd: level 19 (`zstd -19`; the kernel avoids `-22 --ultra` for the
//!   initramfs, whose 128 MiB window would have to be allocated at boot).
//!   Level 19's window is at most 8 MiB, and less for smaller archives since
//!   libzstd fits it to the known input size; `lib/decompress_unzstd.c`
//!   refuses only windows above `1 << ZSTD_WINDOWLOG_MAX` (128 MiB on the
//!   oldest kernels with zstd support). The frame carries the content
//!   checksum, which the kernel verifies.
//! - xz: one LZMA2 filter, no BCJ filter, check CRC32, as `xz
//!   --check=crc32 --lzma2=dict=1MiB` does for the kernel. The kernel's XZ
//!   decoder (`lib/xz`) verifies only CRC32 or no check; Linux 6.1 refuses
//!   a CRC64 stream ("Input was encoded with settings that are not
//!   supported by this XZ decoder": tried under QEMU). The dictionary is the archive size rounded up to a
//!   power of two, clamped to 4 KiB..8 MiB (xz -6's): larger gains nothing,
//!   and the kernel's multi-call decoder allocates it at boot.
//! - lz4: the *legacy* lz4 frame (magic `0x184C2102`), the only one the
//!   kernel's `lib/decompress_unlz4.c` reads, around `lz4_flex` blocks
//!   (pure Rust; neither libzstd nor liblzma has a counterpart).
//!
//! Every encoder is deterministic: no timestamps, names or
//! thread-count-dependent output.
//!
//! Rejected designs: pure-Rust `ruzstd` (fastest level only: 1.7x larger
//! than level 19 on the qemu-x86_64-ab example's initramfs), `lzma-rust2` with a hand-written
//! `.xz` container and `lzma-rs` for decoding (three xz implementations where
//! liblzma, already linked for the image copies, does all of it).
//!
//! Spec: lz4 `doc/lz4_Frame_format.md` ("Legacy frame"); the others are the
//! libraries' own formats (RFC 1952, RFC 8878, the .xz file format 1.1.0).

use crate::output::codec;
use anyhow::{bail, Context, Result};
use liblzma::stream::{Check, LzmaOptions};
use serde::Deserialize;
use std::fmt;
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

/// zstd level of the kernel's `cmd_zstd` (`scripts/Makefile.lib`), which
/// `usr/Makefile` uses for the initramfs.
const ZSTD_LEVEL: i32 = 19;
/// gzip level of the kernel's `cmd_gzip` (`gzip -n -9`).
const GZIP_LEVEL: u32 = 9;
/// xz preset whose LZMA2 settings (but for the dictionary) are used: xz's
/// default, and what the kernel's `xz --lzma2=dict=1MiB` starts from.
const XZ_PRESET: u32 = 6;
/// LZMA2 dictionary bounds: liblzma's minimum, and xz -6's size, which is
/// more than any initramfs needs.
const XZ_DICT_MIN: u32 = 4096;
const XZ_DICT_MAX: u32 = 8 << 20;

/// Compresses `data` with `how`.
pub fn compress(data: &[u8], how: Compression) -> Result<Vec<u8>> {
    let packed = match how {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => codec::gzip_encode(data, GZIP_LEVEL),
        Compression::Zstd => codec::zstd_encode(data, ZSTD_LEVEL),
        Compression::Xz => xz_kernel_options(data.len())
            .and_then(|lzma2| codec::xz_encode(data, &lzma2, Check::Crc32)),
        Compression::Lz4 => Ok(lz4_legacy_compress(data)),
    };
    packed.with_context(|| format!("{how}-compressing the archive"))
}

/// The LZMA2 options for an archive of `len` bytes: preset 6, dictionary
/// sized to the archive (see the module doc).
fn xz_kernel_options(len: usize) -> std::io::Result<LzmaOptions> {
    let dict = u32::try_from(len)
        .unwrap_or(u32::MAX)
        .clamp(XZ_DICT_MIN, XZ_DICT_MAX)
        .next_power_of_two();
    let mut opts = LzmaOptions::new_preset(XZ_PRESET).map_err(std::io::Error::other)?;
    opts.dict_size(dict);
    Ok(opts)
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
    let plain = match how {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => codec::gzip_decode(data),
        Compression::Zstd => codec::zstd_decode(data),
        Compression::Xz => codec::xz_decode(data),
        Compression::Lz4 => bail!("lz4-compressed modules are not supported"),
    };
    plain.with_context(|| format!("{how}-decompressing"))
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
    fn our_codecs_round_trip_through_the_module_decoders() {
        let data = sample();
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

    #[test]
    fn same_input_same_bytes() {
        let data = sample();
        for (_, how) in Compression::ALL {
            assert!(
                compress(&data, how).unwrap() == compress(&data, how).unwrap(),
                "{how} is deterministic"
            );
        }
    }

    #[test]
    fn bad_module_data_is_an_error_naming_the_format() {
        let err = decompress(b"not xz", Compression::Xz).unwrap_err();
        assert!(
            format!("{err:#}").starts_with("xz-decompressing: "),
            "{err:#}"
        );
    }

    /// What the kernel needs of an xz stream, read back by `xz` itself: check
    /// CRC32 (`lib/xz` verifies nothing else), one LZMA2 filter and no BCJ,
    /// the dictionary sized to the archive.
    #[test]
    fn xz_stream_has_what_the_kernel_decoder_needs() {
        if Command::new("xz").arg("--version").output().is_err() {
            assert!(std::env::var_os("CI").is_none(), "xz is missing in CI");
            eprintln!("note: xz not installed; skipping its check");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        for (len, dict) in [(1000, "4KiB"), (600_000, "1MiB"), (9 << 20, "8MiB")] {
            let data: Vec<u8> = sample().into_iter().cycle().take(len).collect();
            let path = dir.path().join("data.xz");
            std::fs::write(&path, compress(&data, Compression::Xz).unwrap()).unwrap();
            let out = Command::new("xz")
                .args(["--robot", "--list", "-vv"])
                .arg(&path)
                .output()
                .unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            assert!(out.status.success(), "{text}");
            // One `block` line: the check is column 9, the filter chain last.
            let blocks: Vec<Vec<&str>> = text
                .lines()
                .map(|l| l.split('\t').collect::<Vec<_>>())
                .filter(|cols| cols[0] == "block")
                .collect();
            assert_eq!(blocks.len(), 1, "{text}");
            assert_eq!(blocks[0][9], "CRC32", "{text}");
            let filters = format!("--lzma2=dict={dict}");
            assert_eq!(blocks[0].last(), Some(&filters.as_str()), "{text}");
        }
    }

    /// The window `lib/decompress_unzstd.c` must allocate at boot, read from
    /// the frame header (RFC 8878 §3.1.1.1): the archive's size when it fits
    /// level 19's 8 MiB window (single segment), else 8 MiB; the kernel
    /// refuses more than 128 MiB.
    #[test]
    fn zstd_window_fits_the_kernel_decoder() {
        for (len, window) in [(600_000u64, 600_000u64), (9 << 20, 8 << 20)] {
            let data: Vec<u8> = sample().into_iter().cycle().take(len as usize).collect();
            let zst = compress(&data, Compression::Zstd).unwrap();
            assert_eq!(&zst[..4], &[0x28, 0xB5, 0x2F, 0xFD]);
            let descriptor = zst[4];
            let single_segment = descriptor & 0x20 != 0;
            assert_eq!(descriptor & 0x04, 0x04, "content checksum flag");
            let found = if single_segment {
                // Frame_Content_Size, 4 bytes for these sizes (flag 2).
                assert_eq!(descriptor >> 6, 2);
                u64::from(u32::from_le_bytes([zst[5], zst[6], zst[7], zst[8]]))
            } else {
                let (exponent, mantissa) = (u64::from(zst[5] >> 3), u64::from(zst[5] & 7));
                let base = 1u64 << (10 + exponent);
                base + base / 8 * mantissa
            };
            assert_eq!(found, window, "input of {len} bytes");
        }
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

    /// Modules compressed the way kernel builds do it (`xz --check=crc32
    /// --lzma2=dict=1MiB`, xz's default CRC64, `zstd -T0`, `gzip -n -9`)
    /// decode to the original bytes.
    #[test]
    fn module_decoders_read_reference_tool_streams() {
        let data = sample();
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("m.ko");
        std::fs::write(&plain, &data).unwrap();
        for (how, tool, args) in [
            (
                Compression::Xz,
                "xz",
                &["-c", "--check=crc32", "--lzma2=dict=1MiB"][..],
            ),
            (Compression::Xz, "xz", &["-c"][..]),
            (Compression::Zstd, "zstd", &["-q", "-c", "-T0"][..]),
            (Compression::Gzip, "gzip", &["-c", "-n", "-9"][..]),
        ] {
            if Command::new(tool).arg("--version").output().is_err() {
                assert!(std::env::var_os("CI").is_none(), "{tool} is missing in CI");
                eprintln!("note: {tool} not installed; skipping its check");
                continue;
            }
            let out = Command::new(tool).args(args).arg(&plain).output().unwrap();
            assert!(out.status.success(), "{tool} {args:?}");
            assert!(
                decompress(&out.stdout, how).unwrap() == data,
                "{tool} {args:?} stream decodes"
            );
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
