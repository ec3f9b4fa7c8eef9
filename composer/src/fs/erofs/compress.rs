//! EROFS compression: a file cut into extents, each compressed into one
//! physical cluster (pcluster) of whole blocks.
//!
//! EROFS compression is fixed-output: each pcluster is filled by
//! compressing as much input as fits ([`lz4::compress_dest_size`]), its
//! data aligned to the pcluster's end (zeros before it, `ZERO_PADDING`),
//! so that the kernel knows its exact length. A pcluster is kept only when
//! it holds more input than its blocks would raw (mkfs.erofs's rule);
//! otherwise one block of input is stored as is (a `PLAIN` lcluster).
//! Files are cut into [`SEGMENT`]s compressed on their own, so segments go
//! to all cores and the output does not depend on how many there are.

use super::lz4::{self, Effort, Finder};
use super::ondisk::BLOCK_SIZE;
use anyhow::bail;

/// The EROFS compression of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    /// LZ4's fast mode (`mkfs.erofs -zlz4`).
    Lz4,
    /// LZ4 with a deeper match search (`mkfs.erofs -zlz4hc`), levels 1-12.
    Lz4hc,
}

impl Compression {
    /// The accepted levels (mkfs.erofs's, default 9), `None` where levels
    /// do not exist.
    pub fn level_range(self) -> Option<(u32, u32)> {
        match self {
            Compression::Lz4hc => Some((1, 12)),
            Compression::None | Compression::Lz4 => None,
        }
    }
}

/// Default lz4hc level (`LZ4HC_CLEVEL_DEFAULT`).
pub const DEFAULT_LEVEL: u32 = 9;
/// Input compressed together (and split between cores).
pub const SEGMENT: u64 = 4 << 20;
/// Longest extent: keeps an lcluster's distances in their 16-bit fields
/// and the kernel's decompression buffers small.
const MAX_EXTENT: usize = 1 << 20;

/// One extent of a file and its pcluster.
#[derive(Debug)]
pub struct Extent {
    /// Offset in the file.
    pub start: u64,
    /// Stored uncompressed.
    pub raw: bool,
    /// The pcluster, whole blocks.
    pub bytes: Vec<u8>,
}

impl Extent {
    pub fn blocks(&self) -> u64 {
        self.bytes.len() as u64 / BLOCK_SIZE
    }
}

/// A configured compressor.
#[derive(Clone, Copy, Debug)]
pub struct Compressor {
    effort: Effort,
    pcluster: usize,
}

impl Compressor {
    pub fn new(
        compression: Compression,
        level: Option<u32>,
        pcluster: u32,
    ) -> anyhow::Result<Self> {
        if pcluster == 0 || u64::from(pcluster) % BLOCK_SIZE != 0 || pcluster > 1 << 20 {
            bail!("physical cluster size {pcluster} is not a multiple of 4 KiB up to 1 MiB");
        }
        let effort = match (compression, level) {
            (Compression::Lz4hc, level) => {
                let l = level.unwrap_or(DEFAULT_LEVEL);
                if !(1..=12).contains(&l) {
                    bail!("lz4hc level {l} is out of range; use 1 to 12");
                }
                Effort {
                    attempts: 1 << (l - 1),
                    lazy: true,
                }
            }
            (Compression::Lz4, None) => Effort {
                attempts: 1,
                lazy: false,
            },
            (Compression::Lz4, Some(l)) => bail!("lz4 takes no level (got {l})"),
            (Compression::None, _) => bail!("no compression to configure"),
        };
        Ok(Compressor {
            effort,
            pcluster: pcluster as usize,
        })
    }

    /// The extents of `data`, which starts `base` bytes into its file.
    pub fn compress_segment(&self, data: &[u8], base: u64) -> Vec<Extent> {
        let bs = BLOCK_SIZE as usize;
        let mut finder = Finder::new();
        let mut out = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let end = (at + MAX_EXTENT).min(data.len());
            let (block, used) =
                lz4::compress_dest_size(&mut finder, &data[..end], at, self.pcluster, self.effort);
            let padded = block.len().next_multiple_of(bs);
            let (len, raw, bytes) = if used > padded {
                let mut bytes = vec![0u8; padded - block.len()];
                bytes.extend_from_slice(&block);
                (used, false, bytes)
            } else {
                // The kernel maps a stored extent up to the end of the
                // lcluster read, capped at its one block only by the next
                // head: so the file's last stored extent must not cross an
                // lcluster boundary (it is cut there; the rest follows).
                let rest = data.len() - at;
                let n = if rest <= bs {
                    rest.min(bs - ((base + at as u64) % BLOCK_SIZE) as usize)
                } else {
                    bs
                };
                let mut bytes = data[at..at + n].to_vec();
                bytes.resize(bs, 0);
                (n, true, bytes)
            };
            out.push(Extent {
                start: base + at as u64,
                raw,
                bytes,
            });
            at += len;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_cover_the_segment_and_gain() {
        let c = Compressor::new(Compression::Lz4hc, None, 8192).unwrap();
        let mut data: Vec<u8> = (0..100_000u32).map(|i| (i / 3 % 251) as u8).collect();
        // An incompressible stretch, several clusters long.
        let mut x: u32 = 1;
        for b in &mut data[40_000..70_000] {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *b = (x >> 16) as u8;
        }
        let ext = c.compress_segment(&data, 4096);
        let mut at = 4096;
        for (i, e) in ext.iter().enumerate() {
            assert_eq!(e.start, at);
            let end = ext.get(i + 1).map_or(4096 + data.len() as u64, |n| n.start);
            let len = end - e.start;
            assert!(e.bytes.len() as u64 % BLOCK_SIZE == 0 && e.bytes.len() <= 8192);
            if e.raw {
                assert_eq!(
                    &e.bytes[..len as usize],
                    &data[(at - 4096) as usize..][..len as usize]
                );
            } else {
                assert!(len > e.bytes.len() as u64);
                let first = e.bytes.iter().position(|&b| b != 0).unwrap();
                let back = lz4_flex::block::decompress(&e.bytes[first..], len as usize).unwrap();
                assert_eq!(back, &data[(at - 4096) as usize..][..len as usize]);
            }
            at += len;
        }
        assert_eq!(at, 4096 + data.len() as u64);
        assert!(ext.iter().any(|e| e.raw) && ext.iter().any(|e| !e.raw));
        // A file ending in noise: its last stored extent stays inside one
        // lcluster (the kernel rejects it otherwise).
        let noise = &data[40_000..47_596];
        let ext = c.compress_segment(noise, 4096 + 1000);
        let last = ext.last().unwrap();
        assert!(last.raw);
        assert_eq!(
            last.start / BLOCK_SIZE,
            (4096 + 1000 + noise.len() as u64 - 1) / BLOCK_SIZE
        );
    }
}
