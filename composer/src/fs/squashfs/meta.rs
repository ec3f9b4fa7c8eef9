//! Metadata blocks and the tables built from them.
//!
//! Squashfs keeps inodes, directories, fragment entries, ids and xattrs in
//! *metadata blocks*: at most 8 KiB of data, compressed on its own, behind a
//! 16-bit header (size on disk, bit 15 = stored uncompressed). A reference
//! into such a stream is the on-disk offset of the block that holds it
//! (relative to the stream's start) and the offset inside the uncompressed
//! block.

use super::compress::Compressor;

/// Uncompressed bytes per metadata block (`SQUASHFS_METADATA_SIZE`).
pub const METADATA_SIZE: usize = 8192;
/// Header bit: the block is stored uncompressed.
const METADATA_UNCOMPRESSED: u16 = 0x8000;

/// A stream of metadata blocks, compressed as each block fills.
pub struct MetaWriter<'c> {
    comp: &'c Compressor,
    /// Blocks written so far, headers included.
    out: Vec<u8>,
    buf: Vec<u8>,
    /// On-disk offset (in `out`) of every block, in order.
    block_starts: Vec<u64>,
}

/// Where something starts in a metadata stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaRef {
    /// On-disk offset of its block, relative to the stream's start.
    pub block: u64,
    /// Offset inside the uncompressed block.
    pub offset: u16,
}

impl MetaRef {
    /// The 64-bit form inodes and tables store (`block << 16 | offset`).
    pub fn packed(self) -> u64 {
        (self.block << 16) | u64::from(self.offset)
    }
}

impl<'c> MetaWriter<'c> {
    pub fn new(comp: &'c Compressor) -> Self {
        MetaWriter {
            comp,
            out: Vec::new(),
            buf: Vec::with_capacity(METADATA_SIZE * 2),
            block_starts: Vec::new(),
        }
    }

    /// Where the next byte pushed will be.
    pub fn position(&self) -> MetaRef {
        MetaRef {
            block: self.out.len() as u64,
            // Below METADATA_SIZE after every push.
            offset: self.buf.len() as u16,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.buf.extend_from_slice(bytes);
        while self.buf.len() >= METADATA_SIZE {
            let rest = self.buf.split_off(METADATA_SIZE);
            let block = std::mem::replace(&mut self.buf, rest);
            self.flush_block(&block)?;
        }
        Ok(())
    }

    fn flush_block(&mut self, block: &[u8]) -> anyhow::Result<()> {
        self.block_starts.push(self.out.len() as u64);
        let packed = self.comp.compress(block)?;
        let header = match &packed {
            Some(c) => c.len() as u16,
            None => block.len() as u16 | METADATA_UNCOMPRESSED,
        };
        self.out.extend_from_slice(&header.to_le_bytes());
        self.out
            .extend_from_slice(packed.as_deref().unwrap_or(block));
        Ok(())
    }

    /// The stream's bytes and the on-disk offsets of its blocks.
    pub fn finish(mut self) -> anyhow::Result<(Vec<u8>, Vec<u64>)> {
        if !self.buf.is_empty() {
            let block = std::mem::take(&mut self.buf);
            self.flush_block(&block)?;
        }
        Ok((self.out, self.block_starts))
    }
}

/// A lookup table (fragments, ids, xattr ids): `entries` in metadata blocks
/// appended to `image` at its end, followed by the index of the blocks'
/// absolute offsets. Returns the absolute offset of the index, which is
/// what the superblock records.
pub fn append_table(
    image_end: u64,
    out: &mut Vec<u8>,
    comp: &Compressor,
    entries: &[u8],
) -> anyhow::Result<u64> {
    let mut w = MetaWriter::new(comp);
    w.push(entries)?;
    let (bytes, starts) = w.finish()?;
    let blocks_at = image_end;
    out.extend_from_slice(&bytes);
    let index_at = blocks_at + bytes.len() as u64;
    for s in starts {
        out.extend_from_slice(&(blocks_at + s).to_le_bytes());
    }
    Ok(index_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::squashfs::compress::{Codec, Compressor};

    #[test]
    fn references_point_at_block_starts_on_disk() {
        let comp = Compressor::new(Codec::None, None, 131072).unwrap();
        let mut w = MetaWriter::new(&comp);
        w.push(&[1u8; 8000]).unwrap();
        let r = w.position();
        assert_eq!((r.block, r.offset), (0, 8000));
        w.push(&[2u8; 400]).unwrap();
        // 8192 bytes flushed uncompressed: 2 header bytes + 8192.
        assert_eq!(
            w.position(),
            MetaRef {
                block: 8194,
                offset: 208
            }
        );
        let (bytes, starts) = w.finish().unwrap();
        assert_eq!(starts, [0, 8194]);
        assert_eq!(&bytes[..2], &(8192u16 | 0x8000).to_le_bytes());
        assert_eq!(bytes.len(), 8194 + 2 + 208);
    }
}
