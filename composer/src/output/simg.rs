//! Android sparse images (`outputs: [simg]`, `NAME.simg`): the format
//! fastboot, NXP's UUU and `simg2img` read, written from the finished image
//! and the ranges the build mapped.
//!
//! **Format** (AOSP `system/core/libsparse/sparse_format.h`): a 28-byte
//! file header (magic `0xED26FF3A`, version 1.0, block size, total blocks,
//! chunk count, checksum 0 = none), then chunks, each a 12-byte header
//! (type, blocks, bytes including the header) and its data. Two chunk
//! types are used: `RAW` (the blocks' bytes follow) for the mapped blocks
//! and `DONT_CARE` (nothing follows) for the rest, exactly as a bmap
//! describes the image: unmapped blocks are left as the target has them
//! (a file written by `simg2img` keeps them as holes).
//!
//! **Chunks follow the mapped ranges**, rounded outwards to the sparse
//! block size; only mapped bytes are read from the image (zeros elsewhere
//! come from memory), once, in disk order. The block size is 4096 when the
//! image size is a multiple of it, else 512 (every planned disk is a whole
//! number of 512-byte sectors): libsparse needs whole blocks, and a larger
//! block would make `simg2img`'s output longer than the image.
//!
//! Raw chunks are cut at 16 MiB so that each one is a bounded
//! read and stays far below the format's 32-bit byte count.
//!
//! Rejected: `FILL` chunks for zero runs inside mapped ranges (a scan of
//! every mapped byte to save space the zst copy saves better; the output
//! would still be correct without them); a CRC32 chunk or header checksum
//! (optional in the format, ignored by fastboot, and libsparse's readers
//! check it only when asked).

use crate::output::window::{read_mapped, Extents};
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufWriter, Write};

/// `SPARSE_HEADER_MAGIC`.
const MAGIC: u32 = 0xED26_FF3A;
/// `sizeof(sparse_header_t)`.
const FILE_HEADER_BYTES: u16 = 28;
/// `sizeof(chunk_header_t)`.
const CHUNK_HEADER_BYTES: u16 = 12;
/// `CHUNK_TYPE_RAW`: the chunk's blocks follow its header.
const CHUNK_RAW: u16 = 0xCAC1;
/// `CHUNK_TYPE_DONT_CARE`: the chunk's blocks are not written.
const CHUNK_DONT_CARE: u16 = 0xCAC3;
/// Largest raw chunk: a bounded buffer per chunk, well within `u32` bytes.
const MAX_RAW_BYTES: u64 = 16 << 20;

/// One chunk: `blocks` blocks from block `first`, mapped (raw) or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Chunk {
    first: u64,
    blocks: u64,
    raw: bool,
}

/// The sparse block size for an image of `image_size` bytes.
fn block_size(image_size: u64) -> Result<u64> {
    match [4096, 512].into_iter().find(|b| image_size % b == 0) {
        Some(b) => Ok(b),
        None => bail!("an image of {image_size} bytes is not a whole number of 512-byte blocks"),
    }
}

/// The chunks of an image of `total_blocks` blocks of `block` bytes whose
/// `mapped` byte ranges must be written.
fn chunks(total_blocks: u64, block: u64, mapped: &Extents) -> Vec<Chunk> {
    let max_raw_blocks = MAX_RAW_BYTES / block;
    // Neighbours that touch once rounded to blocks merge.
    let blocks = mapped.to_blocks(block, total_blocks);
    let mut out = Vec::new();
    let mut pos = 0;
    let push = |first: u64, end: u64, raw: bool, out: &mut Vec<Chunk>| {
        let step = if raw {
            max_raw_blocks
        } else {
            u64::from(u32::MAX)
        };
        let mut first = first;
        while first < end {
            let blocks = (end - first).min(step);
            out.push(Chunk { first, blocks, raw });
            first += blocks;
        }
    };
    for (s, e) in blocks.iter() {
        push(pos, s, false, &mut out);
        push(s, e, true, &mut out);
        pos = e;
    }
    push(pos, total_blocks, false, &mut out);
    out
}

/// Writes the image (`image_size` bytes of `image`, non-zero only in
/// `mapped`) as an Android sparse image to `out`, an empty staged file;
/// `name` is for messages.
pub fn write_simg(
    image: &File,
    image_size: u64,
    mapped: &Extents,
    out: &File,
    name: &str,
) -> Result<()> {
    write_to(
        image,
        image_size,
        mapped,
        &mut BufWriter::with_capacity(1 << 20, out),
    )
    .with_context(|| format!("writing Android sparse image '{name}'"))
}

fn write_to(image: &File, image_size: u64, mapped: &Extents, sink: &mut dyn Write) -> Result<()> {
    let block = block_size(image_size)?;
    let total_blocks = image_size / block;
    let list = chunks(total_blocks, block, mapped);
    let mut header = Vec::with_capacity(usize::from(FILE_HEADER_BYTES));
    header.extend_from_slice(&MAGIC.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes()); // major version
    header.extend_from_slice(&0u16.to_le_bytes()); // minor version
    header.extend_from_slice(&FILE_HEADER_BYTES.to_le_bytes());
    header.extend_from_slice(&CHUNK_HEADER_BYTES.to_le_bytes());
    header.extend_from_slice(&u32::try_from(block)?.to_le_bytes());
    header.extend_from_slice(
        &u32::try_from(total_blocks)
            .context("the image has more blocks than an Android sparse image can hold")?
            .to_le_bytes(),
    );
    header.extend_from_slice(&u32::try_from(list.len())?.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes()); // no image checksum
    sink.write_all(&header)?;
    let mut buf = Vec::new();
    for chunk in list {
        let data_bytes = if chunk.raw { chunk.blocks * block } else { 0 };
        let mut head = Vec::with_capacity(usize::from(CHUNK_HEADER_BYTES));
        let kind = if chunk.raw {
            CHUNK_RAW
        } else {
            CHUNK_DONT_CARE
        };
        head.extend_from_slice(&kind.to_le_bytes());
        head.extend_from_slice(&0u16.to_le_bytes()); // reserved
        head.extend_from_slice(&u32::try_from(chunk.blocks)?.to_le_bytes());
        head.extend_from_slice(
            &u32::try_from(u64::from(CHUNK_HEADER_BYTES) + data_bytes)?.to_le_bytes(),
        );
        sink.write_all(&head)?;
        if chunk.raw {
            buf.resize(usize::try_from(data_bytes)?, 0);
            let start = chunk.first * block;
            read_mapped(image, mapped, start, &mut buf)
                .with_context(|| format!("reading image bytes {start}..{}", start + data_bytes))?;
            sink.write_all(&buf)?;
        }
    }
    sink.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extents(ranges: &[(u64, u64)]) -> Extents {
        let mut e = Extents::new();
        for &(s, end) in ranges {
            e.insert(s, end);
        }
        e
    }

    #[test]
    fn chunks_cover_every_block_once_and_round_outwards() {
        let list = chunks(
            100,
            4096,
            &extents(&[(100, 200), (4096 * 10 + 1, 4096 * 12)]),
        );
        assert_eq!(
            list,
            vec![
                Chunk {
                    first: 0,
                    blocks: 1,
                    raw: true
                },
                Chunk {
                    first: 1,
                    blocks: 9,
                    raw: false
                },
                Chunk {
                    first: 10,
                    blocks: 2,
                    raw: true
                },
                Chunk {
                    first: 12,
                    blocks: 88,
                    raw: false
                },
            ]
        );
    }

    #[test]
    fn ranges_sharing_a_block_make_one_chunk_and_long_ones_are_cut() {
        let list = chunks(50_000, 512, &extents(&[(0, 100), (300, 512 * 40_000)]));
        let max = MAX_RAW_BYTES / 512;
        let raw = |first, blocks| Chunk {
            first,
            blocks,
            raw: true,
        };
        assert_eq!(list[0], raw(0, max));
        assert_eq!(list[1], raw(max, 40_000 - max));
        assert_eq!(
            list[2],
            Chunk {
                first: 40_000,
                blocks: 10_000,
                raw: false
            }
        );
        assert_eq!(list.len(), 3);
    }

    #[test]
    fn block_size_divides_the_image() {
        assert_eq!(block_size(8 << 20).unwrap(), 4096);
        assert_eq!(block_size(4096 + 512).unwrap(), 512);
        assert!(block_size(1000).is_err());
    }
}
