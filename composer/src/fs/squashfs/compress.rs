//! The squashfs compressors: what each one writes for a block, its id in
//! the superblock and its optional compressor-options block.
//!
//! Each block (data, fragment or metadata) is compressed on its own and kept
//! only when it got smaller; otherwise it is stored as is and flagged. The
//! byte formats are the ones `mksquashfs` writes and the kernel reads:
//! - gzip: a zlib stream (RFC 1950, header and Adler-32), default level 9;
//! - xz: an `.xz` stream, LZMA2 only, CRC32 check, the dictionary as large
//!   as the block (the kernel allocates the block size for it), preset 6;
//! - zstd: one zstd frame with the content size and no checksum, as
//!   `ZSTD_compressCCtx` writes it, default level 15;
//! - lz4: one raw LZ4 block (no frame), always with the options block
//!   `{version: 1 (legacy), flags: 0}` that the kernel checks;
//! - none: the gzip id with every "uncompressed" flag set and every block
//!   stored (mksquashfs `-noI -noD -noF -noX -noId`).

use crate::output::codec;
use anyhow::{bail, Context};
use liblzma::stream::{Check, LzmaOptions};
use std::io::Write;

/// The compression algorithm of a squashfs image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Xz,
    Zstd,
    Lz4,
    None,
}

impl Codec {
    /// The default level (mksquashfs's), `None` where levels do not exist.
    pub fn default_level(self) -> Option<u32> {
        match self {
            Codec::Gzip => Some(9),
            Codec::Xz => Some(6),
            Codec::Zstd => Some(15),
            Codec::Lz4 | Codec::None => None,
        }
    }

    /// The accepted levels, `None` where levels do not exist.
    pub fn level_range(self) -> Option<(u32, u32)> {
        match self {
            Codec::Gzip => Some((1, 9)),
            Codec::Xz => Some((0, 9)),
            Codec::Zstd => Some((1, 22)),
            Codec::Lz4 | Codec::None => None,
        }
    }

    /// `compression_id` in the superblock.
    fn id(self) -> u16 {
        match self {
            Codec::Gzip | Codec::None => 1,
            Codec::Xz => 4,
            Codec::Lz4 => 5,
            Codec::Zstd => 6,
        }
    }
}

/// Superblock flags telling readers which parts are stored uncompressed.
const UNCOMPRESSED_ALL: u16 = 0x0001 | 0x0002 | 0x0008 | 0x0100 | 0x0800;

/// A configured compressor.
#[derive(Debug)]
pub struct Compressor {
    codec: Codec,
    level: u32,
    block_size: u32,
}

impl Compressor {
    /// `level` defaults to the codec's; an error names the valid range.
    pub fn new(codec: Codec, level: Option<u32>, block_size: u32) -> anyhow::Result<Self> {
        let level = match (level, codec.level_range()) {
            (None, _) => codec.default_level().unwrap_or(0),
            (Some(l), Some((lo, hi))) if (lo..=hi).contains(&l) => l,
            (Some(l), Some((lo, hi))) => {
                bail!("compression level {l} is out of range for {codec:?}; use {lo} to {hi}")
            }
            (Some(l), None) => bail!("{codec:?} compression takes no level (got {l})"),
        };
        Ok(Compressor {
            codec,
            level,
            block_size,
        })
    }

    pub fn id(&self) -> u16 {
        self.codec.id()
    }

    /// Superblock flags the codec implies.
    pub fn flags(&self) -> u16 {
        match self.codec {
            Codec::None => UNCOMPRESSED_ALL,
            _ => 0,
        }
    }

    /// The compressor-options payload, when one is written.
    pub fn options(&self) -> Option<Vec<u8>> {
        match self.codec {
            Codec::Gzip if self.level != 9 => {
                // level, window size 15, no strategies.
                let mut o = self.level.to_le_bytes().to_vec();
                o.extend_from_slice(&15u16.to_le_bytes());
                o.extend_from_slice(&0u16.to_le_bytes());
                Some(o)
            }
            Codec::Zstd if self.level != 15 => Some(self.level.to_le_bytes().to_vec()),
            Codec::Lz4 => {
                let mut o = 1u32.to_le_bytes().to_vec();
                o.extend_from_slice(&0u32.to_le_bytes());
                Some(o)
            }
            _ => None,
        }
    }

    /// `data` compressed, or `None` when it is to be stored as is (no
    /// compression, or no gain).
    pub fn compress(&self, data: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        let packed = match self.codec {
            Codec::None => return Ok(None),
            Codec::Gzip => {
                let mut e = flate2::write::ZlibEncoder::new(
                    Vec::with_capacity(data.len()),
                    flate2::Compression::new(self.level),
                );
                e.write_all(data).context("compressing with zlib")?;
                e.finish().context("compressing with zlib")?
            }
            Codec::Xz => {
                let mut opts =
                    LzmaOptions::new_preset(self.level).context("configuring the xz encoder")?;
                opts.dict_size(self.block_size);
                codec::xz_encode(data, &opts, Check::Crc32).context("compressing with xz")?
            }
            Codec::Zstd => {
                zstd::bulk::compress(data, self.level as i32).context("compressing with zstd")?
            }
            Codec::Lz4 => lz4_flex::block::compress(data),
        };
        Ok((packed.len() < data.len()).then_some(packed))
    }
}
