//! QEMU disk images (`outputs: [qcow2]`, `NAME.qcow2`): qcow2 version 3, as
//! `qemu-img convert -O qcow2` makes them, written from the finished image
//! and the ranges the build mapped.
//!
//! **Format** (QEMU `docs/interop/qcow2.txt`): 64 KiB clusters; a header
//! in cluster 0; an L1 table pointing to L2 tables, whose entries point to
//! data clusters; a refcount table pointing to refcount blocks (16-bit
//! counts) that count the references to every cluster of the file. A guest
//! cluster with no L2 entry reads as zeros (there is no backing file), so
//! the holes of the image stay holes: only clusters with a mapped byte are
//! allocated.
//!
//! **One sequential write.** Which clusters are allocated follows from the
//! mapped ranges alone, so the whole layout is computed first: header, L1
//! table, refcount table, refcount blocks, L2 tables, then the data
//! clusters in guest order. Every cluster is referenced once, so every
//! table entry carries `QCOW_OFLAG_COPIED` (what `qemu-img check` expects
//! of a refcount of 1). Only mapped bytes are read from the image, once.
//!
//! Rejected: leaving mapped all-zero clusters unallocated (it needs the
//! data read before the layout is known: a second pass or a second file);
//! compressed clusters (slow to read back, and `zst` already exists for
//! transport); version 2 (`compat=0.10`), which only very old QEMU needs.

use crate::output::window::{read_mapped, Extents};
use anyhow::{Context, Result};
use std::fs::File;
use std::io::{BufWriter, Write};

/// "QFI\xfb".
const MAGIC: u32 = 0x5146_49FB;
const VERSION: u32 = 3;
/// 64 KiB clusters: QEMU's default.
const CLUSTER_BITS: u32 = 16;
const CLUSTER: u64 = 1 << CLUSTER_BITS;
/// 16-bit refcounts: QEMU's default (`refcount_bits=16`).
const REFCOUNT_ORDER: u32 = 4;
const REFCOUNT_BYTES: u64 = 2;
/// Length of the version 3 header, without extensions.
const HEADER_BYTES: u32 = 104;
/// Set in an L1 or L2 entry whose cluster has a refcount of exactly 1.
const OFLAG_COPIED: u64 = 1 << 63;
/// Table entries are 64-bit offsets.
const ENTRY_BYTES: u64 = 8;

/// Where every part of the file goes, in clusters.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    l1_entries: u64,
    l1_clusters: u64,
    refcount_table_clusters: u64,
    refcount_blocks: u64,
    /// L1 indexes that have an L2 table, ascending.
    l2_of: Vec<u64>,
    /// Guest cluster indexes that are allocated, ascending.
    data: Vec<u64>,
}

impl Layout {
    fn new(image_size: u64, mapped: &Extents) -> Layout {
        let guest_clusters = image_size.div_ceil(CLUSTER);
        let per_l2 = CLUSTER / ENTRY_BYTES;
        let l1_entries = guest_clusters.div_ceil(per_l2).max(1);
        let data: Vec<u64> = mapped
            .to_blocks(CLUSTER, guest_clusters)
            .iter()
            .flat_map(|(s, e)| s..e)
            .collect();
        let mut l2_of: Vec<u64> = data.iter().map(|c| c / per_l2).collect();
        l2_of.dedup();
        let l1_clusters = (l1_entries * ENTRY_BYTES).div_ceil(CLUSTER);
        // The refcount blocks count themselves and the table: grow both
        // until they cover every cluster of the file.
        let fixed = 1 + l1_clusters + l2_of.len() as u64 + data.len() as u64;
        let per_block = CLUSTER / REFCOUNT_BYTES;
        let (mut table, mut blocks) = (1, 1);
        loop {
            let total = fixed + table + blocks;
            let need_blocks = total.div_ceil(per_block);
            let need_table = (need_blocks * ENTRY_BYTES).div_ceil(CLUSTER);
            if need_blocks <= blocks && need_table <= table {
                break;
            }
            blocks = blocks.max(need_blocks);
            table = table.max(need_table);
        }
        Layout {
            l1_entries,
            l1_clusters,
            refcount_table_clusters: table,
            refcount_blocks: blocks,
            l2_of,
            data,
        }
    }

    fn l1_start(&self) -> u64 {
        1
    }
    fn refcount_table_start(&self) -> u64 {
        self.l1_start() + self.l1_clusters
    }
    fn refcount_blocks_start(&self) -> u64 {
        self.refcount_table_start() + self.refcount_table_clusters
    }
    fn l2_start(&self) -> u64 {
        self.refcount_blocks_start() + self.refcount_blocks
    }
    fn data_start(&self) -> u64 {
        self.l2_start() + self.l2_of.len() as u64
    }
    fn total_clusters(&self) -> u64 {
        self.data_start() + self.data.len() as u64
    }
}

/// Writes the image (`image_size` bytes of `image`, non-zero only in
/// `mapped`) as a qcow2 image to `out`, an empty staged file; `name` is
/// for messages.
pub fn write_qcow2(
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
    .with_context(|| format!("writing qcow2 image '{name}'"))
}

/// `cluster`-sized buffers of big-endian 64-bit entries.
fn table(clusters: u64, entries: impl IntoIterator<Item = (u64, u64)>) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; usize::try_from(clusters * CLUSTER)?];
    for (index, value) in entries {
        let at = usize::try_from(index * ENTRY_BYTES)?;
        bytes[at..at + 8].copy_from_slice(&value.to_be_bytes());
    }
    Ok(bytes)
}

fn write_to(image: &File, image_size: u64, mapped: &Extents, sink: &mut dyn Write) -> Result<()> {
    let layout = Layout::new(image_size, mapped);
    let per_l2 = CLUSTER / ENTRY_BYTES;

    let mut header = Vec::with_capacity(usize::try_from(CLUSTER)?);
    header.extend_from_slice(&MAGIC.to_be_bytes());
    header.extend_from_slice(&VERSION.to_be_bytes());
    header.extend_from_slice(&0u64.to_be_bytes()); // backing file offset
    header.extend_from_slice(&0u32.to_be_bytes()); // backing file name length
    header.extend_from_slice(&CLUSTER_BITS.to_be_bytes());
    header.extend_from_slice(&image_size.to_be_bytes());
    header.extend_from_slice(&0u32.to_be_bytes()); // no encryption
    header.extend_from_slice(&u32::try_from(layout.l1_entries)?.to_be_bytes());
    header.extend_from_slice(&(layout.l1_start() * CLUSTER).to_be_bytes());
    header.extend_from_slice(&(layout.refcount_table_start() * CLUSTER).to_be_bytes());
    header.extend_from_slice(&u32::try_from(layout.refcount_table_clusters)?.to_be_bytes());
    header.extend_from_slice(&0u32.to_be_bytes()); // snapshots
    header.extend_from_slice(&0u64.to_be_bytes()); // snapshot table offset
    header.extend_from_slice(&0u64.to_be_bytes()); // incompatible features
    header.extend_from_slice(&0u64.to_be_bytes()); // compatible features
    header.extend_from_slice(&0u64.to_be_bytes()); // autoclear features
    header.extend_from_slice(&REFCOUNT_ORDER.to_be_bytes());
    header.extend_from_slice(&HEADER_BYTES.to_be_bytes());
    debug_assert_eq!(header.len(), HEADER_BYTES as usize);
    header.extend_from_slice(&[0u8; 8]); // end of header extensions
    header.resize(usize::try_from(CLUSTER)?, 0);
    sink.write_all(&header)?;

    let l1 = layout.l2_of.iter().enumerate().map(|(i, &l1_index)| {
        let at = (layout.l2_start() + i as u64) * CLUSTER;
        (l1_index, at | OFLAG_COPIED)
    });
    sink.write_all(&table(layout.l1_clusters, l1)?)?;

    let blocks =
        (0..layout.refcount_blocks).map(|i| (i, (layout.refcount_blocks_start() + i) * CLUSTER));
    sink.write_all(&table(layout.refcount_table_clusters, blocks)?)?;
    let mut counts = vec![0u8; usize::try_from(layout.refcount_blocks * CLUSTER)?];
    for cluster in 0..layout.total_clusters() {
        let at = usize::try_from(cluster * REFCOUNT_BYTES)?;
        counts[at..at + 2].copy_from_slice(&1u16.to_be_bytes());
    }
    sink.write_all(&counts)?;

    let mut data = layout.data.iter().enumerate().peekable();
    for &l1_index in &layout.l2_of {
        let mut entries = Vec::new();
        while let Some((i, &guest)) = data.next_if(|(_, &g)| g / per_l2 == l1_index) {
            let at = (layout.data_start() + i as u64) * CLUSTER;
            entries.push((guest % per_l2, at | OFLAG_COPIED));
        }
        sink.write_all(&table(1, entries)?)?;
    }

    let mut buf = vec![0u8; usize::try_from(CLUSTER)?];
    for &guest in &layout.data {
        let start = guest * CLUSTER;
        let len = usize::try_from(CLUSTER.min(image_size - start))?;
        buf.fill(0);
        read_mapped(image, mapped, start, &mut buf[..len])
            .with_context(|| format!("reading image bytes {start}..{}", start + len as u64))?;
        sink.write_all(&buf)?;
    }
    sink.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_allocates_the_mapped_clusters_and_counts_itself() {
        let mut mapped = Extents::new();
        mapped.insert(0, 512);
        mapped.insert(CLUSTER * 8192 * 2 + 1, CLUSTER * 8192 * 2 + CLUSTER + 2);
        let layout = Layout::new(3 << 30, &mapped);
        assert_eq!(layout.l1_entries, 6); // 3 GiB / 512 MiB per L2 table
        assert_eq!(layout.l1_clusters, 1);
        assert_eq!(layout.l2_of, vec![0, 2]);
        assert_eq!(layout.data, vec![0, 8192 * 2, 8192 * 2 + 1]);
        assert_eq!(layout.total_clusters(), 1 + 1 + 1 + 1 + 2 + 3);
    }

    #[test]
    fn refcount_blocks_grow_with_the_file() {
        // 40000 data clusters need two refcount blocks (32768 counts each).
        let mut mapped = Extents::new();
        mapped.insert(0, 40_000 * CLUSTER);
        let layout = Layout::new(40_000 * CLUSTER, &mapped);
        assert_eq!(layout.refcount_blocks, 2);
        assert!(layout.total_clusters() <= layout.refcount_blocks * CLUSTER / REFCOUNT_BYTES);
    }
}
