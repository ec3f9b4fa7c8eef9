//! The native EROFS writer: an EROFS image from a [`Tree`], written in
//! place into its window of the image, without mkfs.erofs, root or
//! fakeroot.
//!
//! Purpose: read-only root filesystems that the kernel reads fast, for
//! partitions and standalone update artifacts. [`prepare`] lays the whole
//! image out from the tree (inode places, node ids, directory blocks, data
//! block addresses), so the exact size is known before planning
//! ([`Content::min_size`]); [`Content::write`] then writes it front to back
//! into the window: block 0 with the superblock and the metadata area,
//! then the data blocks, file contents copied from the sources
//! (`copy_file_range`, holes mapped as zeros).
//!
//! Format: the kernel's `Documentation/filesystems/erofs.rst` and
//! `fs/erofs/erofs_fs.h`, restricted to what Linux 6.1 (Debian 12) mounts:
//! 4 KiB blocks, the superblock at 1024 with its checksum, the metadata
//! area from block 0 (node ids count from the image's start), the root
//! inode first (right after the superblock, like mkfs.erofs: the root's
//! node id has 16 bits), then every other inode depth-first in name order
//! (hard links once), each record in the first metadata block with room
//! for it (`MetaPacker`), then the shared xattr area, then the data
//! blocks in inode order. Inodes are compact (32 bytes) when the superblock's build
//! time, 16-bit owners and link counts and a 32-bit size describe them,
//! else extended (64 bytes, own mtime with nanoseconds), mkfs.erofs's rule.
//! Files, directories and symlinks keep their last partial block inline
//! after the inode (`FLAT_INLINE`) when inode, xattrs and tail fit in one
//! block, else all their blocks are data blocks (`FLAT_PLAIN`); an inode
//! record never crosses a block boundary unless it is larger than a block.
//! Directory blocks hold entries sorted by name bytes, `.` and `..`
//! included, as the kernel's binary search needs. Xattrs: an xattr (name
//! and value) that more than two inodes carry is stored once in the shared
//! area (mkfs.erofs's default `-x 2`), the others inline after the inode;
//! prefixes are the ones Linux 6.1 reads (`user.`, `trusted.`,
//! `security.`, the POSIX ACLs). Only the mtime is kept (EROFS shows it as
//! atime and ctime too); compact inodes show the build time.
//!
//! Reproducible: the UUID derives from the seed, times come from the tree
//! (clamped to `SOURCE_DATE_EPOCH`, the build time is it), everything is
//! laid out in name order.
//!
//! Rejected designs: driving `mkfs.erofs` (needs the tree's ownership on
//! disk, i.e. fakeroot, and writes a file that must then be copied into
//! the disk image); the chunk-based layout (`--chunksize`, which keeps
//! holes) — mkfs.erofs does not use it by default and a plain layout is
//! read by every kernel; placing inode records one after the other and
//! starting a new block whenever the next record does not fit (what this
//! writer did first: on the bench rootfs, 16,850 files mostly below 4 KiB
//! with inline tails, it left 5.9 MB of metadata blocks unused, 1.6 % of
//! the image; first-fit packing as mkfs.erofs does recovers it).

mod compress;
mod lz4;
mod ondisk;

pub use compress::Compression;

use crate::fs::tree::{new_encode_dev, NodeId, NodeKind, Tree, ROOT};
use crate::fs::verity::{HashTree, Hasher, VerityInfo};
use crate::fs::{parallel, BuildContext, Content, FileSource};
use crate::input::InputFile;
use crate::output::window::Window;
use crate::units::human;
use anyhow::{anyhow, bail, Context};
use compress::{Compressor, Extent, SEGMENT};
use ondisk::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::FileExt;
use zerocopy::IntoBytes;

/// An xattr carried by more inodes than this is shared (mkfs.erofs's
/// default xattr tolerance, `-x 2`).
const XATTR_TOLERANCE: u32 = 2;
/// Longest file name (`EROFS_NAME_LEN`).
const NAME_LEN: usize = 255;
/// At most this many shared xattr ids fit an inode's xattr header.
const MAX_SHARED: usize = 255;
/// The end of the superblock.
const SUPER_END: u64 = (SUPER_OFFSET + std::mem::size_of::<SuperBlock>()) as u64;
/// Data written in one go (coalesced small blocks), and file data read
/// in one go for the dm-verity hashes.
const WRITE_CHUNK: usize = 4 << 20;

/// Options of one EROFS image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErofsOptions {
    /// Names the image in messages and its UUID.
    pub name: String,
    pub compression: Compression,
    /// lz4hc's level; 9 when `None`.
    pub level: Option<u32>,
    /// Largest physical cluster: a multiple of 4 KiB up to 1 MiB.
    pub pcluster_size: u32,
    /// Append a dm-verity hash tree ([`verity`](crate::fs::verity)).
    pub verity: bool,
}

impl Default for ErofsOptions {
    fn default() -> Self {
        ErofsOptions {
            name: "erofs".into(),
            compression: Compression::None,
            level: None,
            pcluster_size: BLOCK_SIZE as u32,
            verity: false,
        }
    }
}

/// A prepared EROFS image: block 0 and the metadata area in memory, the
/// data blocks described.
#[derive(Debug)]
pub struct ErofsFs {
    name: String,
    /// Blocks 0 to the end of the metadata area; file tails are read into
    /// it when it is written, then the superblock checksum is set.
    meta: Vec<u8>,
    tails: Vec<Tail>,
    /// Data blocks, in block order, after the metadata area.
    runs: Vec<Run>,
    /// Image size in blocks.
    blocks: u64,
    /// The dm-verity hash area after the image, when asked for.
    verity: Option<HashTree>,
}

impl ErofsFs {
    /// The image's size in bytes.
    pub fn bytes_used(&self) -> u64 {
        self.blocks * BLOCK_SIZE
    }

    /// The dm-verity parameters, when the image has a hash tree.
    pub fn verity(&self) -> Option<&VerityInfo> {
        self.verity.as_ref().map(|v| &v.info)
    }

    /// Block 0 and the metadata area as written: file tails read in, the
    /// superblock checksum set.
    fn finished_meta(&self) -> anyhow::Result<Vec<u8>> {
        let mut meta = self.meta.clone();
        for t in &self.tails {
            let input = open(&t.source, t.size)?;
            let len = usize::try_from(t.size - t.from)?;
            read_at(
                &t.source,
                input.as_ref(),
                &mut meta[t.at..t.at + len],
                t.from,
            )?;
            if let Some(input) = input {
                input.check_unchanged()?;
            }
        }
        // The checksum covers block 0 from the superblock on, with the
        // kernel's crc32c(~0) without the final inversion.
        let block0 = &mut meta[SUPER_OFFSET..BLOCK_SIZE as usize];
        block0[4..8].fill(0);
        let crc = !crc32c::crc32c(block0);
        block0[4..8].copy_from_slice(&crc.to_le_bytes());
        Ok(meta)
    }

    /// The dm-verity tree of the image's bytes, produced in order as
    /// [`Content::write`] writes them: the metadata area, then each run
    /// (built bytes from memory, file data read from its source), zero
    /// padded to whole blocks. Each run starts on a block, so the runs'
    /// level-0 digests are computed on all cores and joined in order.
    fn hash_tree(&self, seed: &crate::ids::Seed) -> anyhow::Result<HashTree> {
        let mut hasher = Hasher::new(seed);
        hasher.update(&self.finished_meta()?);
        let runs = parallel::map(&self.runs, |run| {
            let mut part = Hasher::new(seed);
            match &run.data {
                RunData::Bytes(bytes) => part.update(bytes),
                RunData::File { source, size, len } => {
                    let input = open(source, *size)?;
                    let mut buf = vec![0u8; usize::try_from((*len).min(WRITE_CHUNK as u64))?];
                    let mut at = 0;
                    while at < *len {
                        let n = usize::try_from((*len - at).min(WRITE_CHUNK as u64))?;
                        read_at(source, input.as_ref(), &mut buf[..n], at)?;
                        part.update(&buf[..n]);
                        at += n as u64;
                    }
                    if let Some(input) = input {
                        input.check_unchanged()?;
                    }
                }
            }
            Ok(part.level0(run.blocks() * BLOCK_SIZE))
        })?;
        let mut at = self.meta.len() as u64;
        for (run, digests) in self.runs.iter().zip(runs) {
            hasher.update_zeros(run.block * BLOCK_SIZE - at);
            hasher.append_level0(&digests);
            at = (run.block + run.blocks()) * BLOCK_SIZE;
        }
        Ok(hasher.finish(self.bytes_used()))
    }
}

/// The last partial block of a file, inline in the metadata area.
#[derive(Debug)]
struct Tail {
    /// Offset in the metadata area.
    at: usize,
    source: FileSource,
    /// The file's size.
    size: u64,
    /// Offset of the tail in the file.
    from: u64,
}

/// Data blocks from `block` on.
#[derive(Debug)]
struct Run {
    block: u64,
    data: RunData,
}

#[derive(Debug)]
enum RunData {
    /// The first `len` bytes of a file of `size` bytes; the rest of the
    /// last block reads as zeros.
    File {
        source: FileSource,
        size: u64,
        len: u64,
    },
    /// Built here (directory blocks, long symlink targets), padded to
    /// whole blocks when written.
    Bytes(Vec<u8>),
}

impl Run {
    fn blocks(&self) -> u64 {
        match &self.data {
            RunData::File { len, .. } => len.div_ceil(BLOCK_SIZE),
            RunData::Bytes(b) => (b.len() as u64).div_ceil(BLOCK_SIZE),
        }
    }
}

/// The on-disk prefix index and the name after it, for an xattr name.
fn xattr_key(name: &[u8]) -> Option<(u8, &[u8])> {
    XATTR_PREFIXES.iter().find_map(|&(prefix, index, whole)| {
        if whole {
            (name == prefix).then_some((index, &name[name.len()..]))
        } else {
            name.strip_prefix(prefix)
                .filter(|rest| !rest.is_empty())
                .map(|rest| (index, rest))
        }
    })
}

/// One xattr entry (shared or inline), padded to 4 bytes.
fn xattr_entry(name: &[u8], value: &[u8]) -> Result<Vec<u8>, String> {
    let shown = || String::from_utf8_lossy(name).into_owned();
    let (index, rest) = xattr_key(name).ok_or_else(|| {
        format!(
            "extended attribute '{}' cannot be stored: EROFS keeps only user., trusted. and \
             security. attributes and POSIX ACLs",
            shown()
        )
    })?;
    let name_len = u8::try_from(rest.len())
        .map_err(|_| format!("extended attribute name '{}' is too long", shown()))?;
    let value_size = u16::try_from(value.len()).map_err(|_| {
        format!(
            "the value of extended attribute '{}' is {} bytes; EROFS holds at most 65535",
            shown(),
            value.len()
        )
    })?;
    let mut out = XattrEntry {
        name_len,
        name_index: index,
        value_size: value_size.into(),
    }
    .as_bytes()
    .to_vec();
    out.extend_from_slice(rest);
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
    Ok(out)
}

/// An inode's xattr body: header, shared ids, inline entries; empty
/// without xattrs.
fn xattr_body(
    xattrs: &BTreeMap<Vec<u8>, Vec<u8>>,
    shared: &HashMap<(&[u8], &[u8]), u32>,
) -> Result<Vec<u8>, String> {
    if xattrs.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids = Vec::new();
    let mut inline = Vec::new();
    for (name, value) in xattrs {
        match shared.get(&(name.as_slice(), value.as_slice())) {
            Some(&id) if ids.len() < MAX_SHARED => ids.push(id),
            _ => inline.extend_from_slice(&xattr_entry(name, value)?),
        }
    }
    let mut out = XattrIbodyHeader {
        shared_count: ids.len() as u8,
        ..Default::default()
    }
    .as_bytes()
    .to_vec();
    for id in ids {
        out.extend_from_slice(&id.to_le_bytes());
    }
    out.extend_from_slice(&inline);
    Ok(out)
}

/// A directory's entries (`.` and `..` included) sorted by name bytes, cut
/// into blocks: each block's range of entries and the bytes it uses.
fn dir_blocks(names: &[&[u8]]) -> Vec<(std::ops::Range<usize>, usize)> {
    let mut out = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (i, name) in names.iter().enumerate() {
        let need = std::mem::size_of::<Dirent>() + name.len();
        if used + need > BLOCK_SIZE as usize {
            out.push((start..i, used));
            (start, used) = (i, 0);
        }
        used += need;
    }
    out.push((start..names.len(), used));
    out
}

/// The bytes of one directory block.
fn dir_block(entries: &[(&[u8], u64, u8)]) -> Vec<u8> {
    let mut heads = Vec::new();
    let mut names = Vec::new();
    let mut nameoff = entries.len() * std::mem::size_of::<Dirent>();
    for &(name, nid, file_type) in entries {
        heads.extend_from_slice(
            Dirent {
                nid: nid.into(),
                nameoff: (nameoff as u16).into(),
                file_type,
                reserved: 0,
            }
            .as_bytes(),
        );
        names.extend_from_slice(name);
        nameoff += name.len();
    }
    heads.extend_from_slice(&names);
    heads
}

/// Where one inode goes and what it holds.
struct Slot {
    /// Byte offset of the inode (= node id * 32).
    pos: u64,
    extended: bool,
    xattrs: Vec<u8>,
    /// File, directory or symlink size.
    size: u64,
    /// Bytes of the last block kept inline after the inode.
    inline: u64,
    /// First data block, when it has data blocks.
    block: Option<u64>,
    /// A compressed file's extents (empty otherwise).
    extents: Vec<Extent>,
}

impl Slot {
    fn nid(&self) -> u64 {
        self.pos / SLOT
    }
}

/// First-fit placement of inode records in the metadata area, as
/// mkfs.erofs packs them: a record goes into the lowest block that still
/// has room for it, so a record that does not fit the end of one block
/// leaves that room to the smaller records after it instead of wasting it
/// (on a tree of small files, a third of the metadata blocks). Records
/// larger than a block start a block of their own and may span blocks.
/// Deterministic: the places depend only on the order and sizes of the
/// records.
struct MetaPacker {
    /// Blocks begun so far.
    blocks: u64,
    /// Blocks with room left, by free bytes in units of [`SLOT`].
    open: Vec<BTreeSet<u64>>,
    /// Used bytes of each block in `open`.
    used: HashMap<u64, u64>,
}

impl MetaPacker {
    /// A packer whose block 0 is used up to `start` (the superblock).
    fn new(start: u64) -> Self {
        let mut packer = MetaPacker {
            blocks: 1,
            open: vec![BTreeSet::new(); (BLOCK_SIZE / SLOT) as usize + 1],
            used: HashMap::new(),
        };
        packer.fill(0, start);
        packer
    }

    /// Places a record of `len` bytes; returns its byte offset.
    fn place(&mut self, len: u64) -> u64 {
        let need = len.next_multiple_of(SLOT).max(SLOT);
        if need <= BLOCK_SIZE {
            let lowest = self.open[(need / SLOT) as usize..]
                .iter()
                .filter_map(|blocks| blocks.first())
                .min()
                .copied();
            let block = lowest.unwrap_or_else(|| {
                self.blocks += 1;
                self.blocks - 1
            });
            let used = self.used.get(&block).copied().unwrap_or(0);
            self.fill(block, used + need);
            return block * BLOCK_SIZE + used;
        }
        let first = self.blocks;
        self.blocks += need.div_ceil(BLOCK_SIZE);
        let rest = need % BLOCK_SIZE;
        if rest > 0 {
            self.fill(self.blocks - 1, rest);
        }
        first * BLOCK_SIZE
    }

    /// Records that `block` has `used` bytes in use.
    fn fill(&mut self, block: u64, used: u64) {
        if let Some(old) = self.used.remove(&block) {
            self.open[((BLOCK_SIZE - old) / SLOT) as usize].remove(&block);
        }
        if used < BLOCK_SIZE {
            self.open[((BLOCK_SIZE - used) / SLOT) as usize].insert(block);
            self.used.insert(block, used);
        }
    }

    /// The metadata area's length: whole blocks.
    fn len(&self) -> u64 {
        self.blocks * BLOCK_SIZE
    }
}

/// Prepares an EROFS image of `tree` (an empty root for `None`).
pub fn prepare(
    opts: &ErofsOptions,
    tree: Option<&Tree>,
    ctx: &BuildContext,
) -> anyhow::Result<ErofsFs> {
    let name = opts.name.as_str();
    prepare_inner(opts, tree, ctx).with_context(|| format!("preparing EROFS image '{name}'"))
}

fn prepare_inner(
    opts: &ErofsOptions,
    tree: Option<&Tree>,
    ctx: &BuildContext,
) -> anyhow::Result<ErofsFs> {
    let empty;
    let tree = match tree {
        Some(t) => t,
        None => {
            empty = Tree::empty(ctx);
            &empty
        }
    };
    let paths: HashMap<NodeId, Vec<u8>> = tree.walk().into_iter().map(|(p, id)| (id, p)).collect();
    let path_of = |id: NodeId| {
        paths.get(&id).map_or_else(
            || "/".to_string(),
            |p| String::from_utf8_lossy(p).into_owned(),
        )
    };

    // Inode order: the root, then depth-first in name order, hard-linked
    // nodes once; each directory's parent.
    let mut order = vec![ROOT];
    let mut seen = vec![false; tree.len()];
    seen[ROOT] = true;
    for (_, id) in tree.walk() {
        if !std::mem::replace(&mut seen[id], true) {
            order.push(id);
        }
    }
    let mut parent = vec![ROOT; tree.len()];
    for &id in &order {
        if let NodeKind::Dir { entries } = &tree.node(id).kind {
            for (n, &c) in entries {
                if n.len() > NAME_LEN {
                    bail!(
                        "'{}/{}': name longer than {NAME_LEN} bytes",
                        path_of(id).trim_end_matches('/'),
                        String::from_utf8_lossy(n)
                    );
                }
                if tree.node(c).is_dir() {
                    parent[c] = id;
                }
            }
        }
    }
    let links = tree.link_counts();
    let build_time = tree.build_time();

    // Shared xattrs: those more than XATTR_TOLERANCE inodes carry, in
    // name and value order.
    let mut uses: HashMap<(&[u8], &[u8]), u32> = HashMap::new();
    for &id in &order {
        for (n, v) in &tree.node(id).xattrs {
            *uses.entry((n.as_slice(), v.as_slice())).or_default() += 1;
        }
    }
    let common: BTreeSet<(&[u8], &[u8])> = uses
        .into_iter()
        .filter(|&(_, n)| n > XATTR_TOLERANCE)
        .map(|(k, _)| k)
        .collect();
    let mut shared_area = Vec::new();
    let mut shared: HashMap<(&[u8], &[u8]), u32> = HashMap::new();
    for (n, v) in common {
        let entry = xattr_entry(n, v).map_err(|e| anyhow!("{e}"))?;
        shared.insert(
            (n, v),
            u32::try_from(shared_area.len() / 4).context("too many shared xattrs")?,
        );
        shared_area.extend_from_slice(&entry);
    }

    // Each directory's entries, sorted by name bytes with `.` and `..`.
    let mut listings: HashMap<NodeId, Vec<(&[u8], NodeId)>> = HashMap::new();
    for &id in &order {
        if let NodeKind::Dir { entries } = &tree.node(id).kind {
            let mut all: Vec<(&[u8], NodeId)> = entries
                .iter()
                .map(|(n, &c)| (n.as_slice(), c))
                .chain([(&b"."[..], id), (&b".."[..], parent[id])])
                .collect();
            all.sort_unstable_by(|a, b| a.0.cmp(b.0));
            listings.insert(id, all);
        }
    }

    // Compressed files: segments on all cores, a file kept compressed when
    // that saves blocks.
    let mut extents: HashMap<NodeId, Vec<Extent>> = HashMap::new();
    if opts.compression != Compression::None {
        let comp = Compressor::new(opts.compression, opts.level, opts.pcluster_size)?;
        let mut jobs = Vec::new();
        for &id in &order {
            if let NodeKind::File { source, size, .. } = &tree.node(id).kind {
                let mut at = 0;
                while at < *size {
                    jobs.push((id, source, *size, at, (*size - at).min(SEGMENT)));
                    at += SEGMENT;
                }
            }
        }
        let outs = parallel::map(&jobs, |&(_, source, size, at, len)| {
            let input = open(source, size)?;
            let mut buf = vec![0u8; usize::try_from(len)?];
            read_at(source, input.as_ref(), &mut buf, at)?;
            if let Some(input) = input {
                input.check_unchanged()?;
            }
            Ok(comp.compress_segment(&buf, at))
        })
        .map_err(|e| e.context("compressing"))?;
        for (job, out) in jobs.iter().zip(outs) {
            extents.entry(job.0).or_default().extend(out);
        }
        extents.retain(|&id, e| {
            let size = match &tree.node(id).kind {
                NodeKind::File { size, .. } => *size,
                _ => 0,
            };
            e.iter().map(Extent::blocks).sum::<u64>() < size.div_ceil(BLOCK_SIZE)
        });
    }
    let big_pcluster =
        opts.compression != Compression::None && u64::from(opts.pcluster_size) > BLOCK_SIZE;
    let cfgs = if big_pcluster {
        Lz4Cfgs {
            len: 14.into(),
            max_pclusterblks: ((u64::from(opts.pcluster_size) / BLOCK_SIZE) as u16).into(),
            ..Default::default()
        }
        .as_bytes()
        .to_vec()
    } else {
        Vec::new()
    };
    let meta_start = (SUPER_END + cfgs.len() as u64).next_multiple_of(SLOT);

    // Inode places: records (inode, xattrs, inline tail) in order, each in
    // the first metadata block with room for it, never across a block
    // boundary unless larger than a block.
    let mut slots: Vec<Option<Slot>> = (0..tree.len()).map(|_| None).collect();
    let mut packer = MetaPacker::new(meta_start);
    for &id in &order {
        let node = tree.node(id);
        let xattrs =
            xattr_body(&node.xattrs, &shared).map_err(|e| anyhow!("'{}': {e}", path_of(id)))?;
        let size = match &node.kind {
            NodeKind::Dir { .. } => {
                let names: Vec<&[u8]> = listings[&id].iter().map(|e| e.0).collect();
                let blocks = dir_blocks(&names);
                (blocks.len() as u64 - 1) * BLOCK_SIZE + blocks.last().map_or(0, |b| b.1 as u64)
            }
            NodeKind::File { size, .. } => *size,
            NodeKind::Symlink { target } => target.len() as u64,
            _ => 0,
        };
        let nlink = links[id];
        let extended = size > u64::from(u32::MAX)
            || node.uid > 0xffff
            || node.gid > 0xffff
            || nlink > 0xffff
            || node.mtime != build_time;
        let core = if extended { 64 } else { 32 };
        let head = core + xattrs.len() as u64;
        let file_extents = extents.remove(&id).unwrap_or_default();
        let tail = size % BLOCK_SIZE;
        let inline = if file_extents.is_empty() && tail > 0 && head + tail <= BLOCK_SIZE {
            tail
        } else {
            0
        };
        let record = if file_extents.is_empty() {
            head + inline
        } else {
            index_at(head) + std::mem::size_of::<LclusterIndex>() as u64 * size.div_ceil(BLOCK_SIZE)
        };
        slots[id] = Some(Slot {
            pos: packer.place(record),
            extended,
            xattrs,
            size,
            inline,
            block: None,
            extents: file_extents,
        });
    }
    let mut meta_len = packer.len();
    let xattr_blkaddr = if shared_area.is_empty() {
        0
    } else {
        let at = meta_len / BLOCK_SIZE;
        meta_len += (shared_area.len() as u64).next_multiple_of(BLOCK_SIZE);
        at
    };

    // Data blocks, in inode order.
    let mut next_block = meta_len / BLOCK_SIZE;
    for &id in &order {
        let slot = slots[id]
            .as_mut()
            .ok_or_else(|| anyhow!("inode not placed"))?;
        let data_blocks = if slot.extents.is_empty() {
            (slot.size - slot.inline).div_ceil(BLOCK_SIZE)
        } else {
            slot.extents.iter().map(Extent::blocks).sum()
        };
        if data_blocks > 0 {
            slot.block = Some(next_block);
            next_block += data_blocks;
        }
    }
    let blocks = next_block;
    if blocks > u64::from(u32::MAX) {
        bail!("the image needs {blocks} blocks; EROFS addresses at most 2^32");
    }
    let slot = |id: NodeId| {
        slots[id]
            .as_ref()
            .ok_or_else(|| anyhow!("inode not placed"))
    };

    // The metadata area and the data runs.
    let mut meta = vec![0u8; usize::try_from(meta_len)?];
    let mut tails = Vec::new();
    let mut runs = Vec::new();
    for (index, &id) in order.iter().enumerate() {
        let node = tree.node(id);
        let s = slot(id)?;
        let layout = if !s.extents.is_empty() {
            LAYOUT_COMPRESSED_FULL
        } else if s.inline > 0 {
            LAYOUT_FLAT_INLINE
        } else {
            LAYOUT_FLAT_PLAIN
        };
        let u = match &node.kind {
            NodeKind::CharDev { major, minor } | NodeKind::BlockDev { major, minor } => {
                if *major > 0xfff || *minor > 0xf_ffff {
                    bail!(
                        "'{}': device {major}:{minor} does not fit the 12-bit major and 20-bit minor of Linux",
                        path_of(id)
                    );
                }
                new_encode_dev(*major, *minor)
            }
            NodeKind::Fifo | NodeKind::Socket => 0,
            // A compressed file's block count.
            _ if !s.extents.is_empty() => {
                u32::try_from(s.extents.iter().map(Extent::blocks).sum::<u64>())?
            }
            _ => s.block.map_or(Ok(NULL_ADDR), u32::try_from)?,
        };
        let xattr_icount = if s.xattrs.is_empty() {
            0
        } else {
            u16::try_from((s.xattrs.len() - 12) / 4 + 1).map_err(|_| {
                anyhow!(
                    "'{}': the extended attributes take more than 256 KiB",
                    path_of(id)
                )
            })?
        };
        let ino = u32::try_from(index + 1).context("too many inodes")?;
        let mode = node.st_mode() as u16;
        let format = layout << 1;
        let core = if s.extended {
            InodeExtended {
                format: (format | FORMAT_EXTENDED).into(),
                xattr_icount: xattr_icount.into(),
                mode: mode.into(),
                size: s.size.into(),
                u: u.into(),
                ino: ino.into(),
                uid: node.uid.into(),
                gid: node.gid.into(),
                // Two's complement: times before 1970 stay negative.
                mtime: (node.mtime.sec as u64).into(),
                mtime_nsec: node.mtime.nsec.into(),
                nlink: links[id].into(),
                ..Default::default()
            }
            .as_bytes()
            .to_vec()
        } else {
            InodeCompact {
                format: format.into(),
                xattr_icount: xattr_icount.into(),
                mode: mode.into(),
                nlink: (links[id] as u16).into(),
                size: (s.size as u32).into(),
                u: u.into(),
                ino: ino.into(),
                uid: (node.uid as u16).into(),
                gid: (node.gid as u16).into(),
                ..Default::default()
            }
            .as_bytes()
            .to_vec()
        };
        let at = usize::try_from(s.pos)?;
        let inline_at = at + core.len() + s.xattrs.len();
        meta[at..at + core.len()].copy_from_slice(&core);
        meta[at + core.len()..inline_at].copy_from_slice(&s.xattrs);
        let inline_at_end = inline_at + s.inline as usize;
        // The bytes that are not file contents: directory blocks, symlink
        // targets.
        let built = match &node.kind {
            NodeKind::Dir { .. } => {
                let listing = &listings[&id];
                let names: Vec<&[u8]> = listing.iter().map(|e| e.0).collect();
                let mut bytes = Vec::with_capacity(s.size as usize);
                for (range, _) in dir_blocks(&names) {
                    let mut entries = Vec::with_capacity(range.len());
                    for &(name, child) in &listing[range] {
                        entries.push((
                            name,
                            slot(child)?.nid(),
                            tree.node(child).kind.dirent_type(),
                        ));
                    }
                    bytes.resize(bytes.len().next_multiple_of(BLOCK_SIZE as usize), 0);
                    bytes.extend_from_slice(&dir_block(&entries));
                }
                Some(bytes)
            }
            NodeKind::Symlink { target } => Some(target.clone()),
            NodeKind::File { .. } if !s.extents.is_empty() => {
                let head = (core.len() + s.xattrs.len()) as u64;
                let first = s
                    .block
                    .ok_or_else(|| anyhow!("compressed file without blocks"))?;
                let map_at = at + head.next_multiple_of(8) as usize;
                let header = MapHeader {
                    advise: if big_pcluster {
                        ADVISE_BIG_PCLUSTER_1
                    } else {
                        0
                    }
                    .into(),
                    ..Default::default()
                };
                meta[map_at..map_at + 8].copy_from_slice(header.as_bytes());
                let indexes = lcluster_indexes(&s.extents, s.size, first, big_pcluster)?;
                let idx_at = at + index_at(head) as usize;
                meta[idx_at..idx_at + indexes.len()].copy_from_slice(&indexes);
                let mut bytes = Vec::new();
                for e in &s.extents {
                    bytes.extend_from_slice(&e.bytes);
                }
                runs.push(Run {
                    block: first,
                    data: RunData::Bytes(bytes),
                });
                None
            }
            NodeKind::File { source, size, .. } => {
                let full = size - s.inline;
                if s.inline > 0 {
                    tails.push(Tail {
                        at: inline_at,
                        source: source.clone(),
                        size: *size,
                        from: full,
                    });
                }
                if let Some(block) = s.block {
                    runs.push(Run {
                        block,
                        data: RunData::File {
                            source: source.clone(),
                            size: *size,
                            len: full,
                        },
                    });
                }
                None
            }
            _ => None,
        };
        if let Some(mut bytes) = built {
            let full = (s.size - s.inline) as usize;
            meta[inline_at..inline_at_end].copy_from_slice(&bytes[full..]);
            bytes.truncate(full);
            if let Some(block) = s.block {
                runs.push(Run {
                    block,
                    data: RunData::Bytes(bytes),
                });
            }
        }
    }
    if xattr_blkaddr > 0 {
        let at = usize::try_from(xattr_blkaddr * BLOCK_SIZE)?;
        meta[at..at + shared_area.len()].copy_from_slice(&shared_area);
    }

    let root_nid = u16::try_from(slot(ROOT)?.nid())
        .map_err(|_| anyhow!("the root inode is beyond the first 2 MiB of metadata"))?;
    let sb = SuperBlock {
        magic: MAGIC.into(),
        feature_compat: (COMPAT_SB_CHKSUM | COMPAT_MTIME).into(),
        blkszbits: BLOCK_BITS,
        root_nid: root_nid.into(),
        inos: (order.len() as u64).into(),
        build_time: (build_time.sec.max(0) as u64).into(),
        build_time_nsec: build_time.nsec.into(),
        blocks: (blocks as u32).into(),
        meta_blkaddr: 0.into(),
        xattr_blkaddr: (xattr_blkaddr as u32).into(),
        uuid: ctx.seed.uuid(&["erofs", &opts.name, "uuid"]).0,
        feature_incompat: match (opts.compression, big_pcluster) {
            (Compression::None, _) => 0,
            (_, false) => INCOMPAT_ZERO_PADDING,
            (_, true) => INCOMPAT_ZERO_PADDING | INCOMPAT_COMPR_CFGS,
        }
        .into(),
        compr_algs: if big_pcluster { ALG_LZ4 } else { 0 }.into(),
        ..Default::default()
    };
    meta[SUPER_OFFSET..SUPER_END as usize].copy_from_slice(sb.as_bytes());
    meta[SUPER_END as usize..SUPER_END as usize + cfgs.len()].copy_from_slice(&cfgs);
    debug_assert!(runs
        .windows(2)
        .all(|w| w[0].block + w[0].blocks() <= w[1].block));
    let mut fs = ErofsFs {
        name: opts.name.clone(),
        meta,
        tails,
        runs,
        blocks,
        verity: None,
    };
    if opts.verity {
        fs.verity = Some(fs.hash_tree(&ctx.seed).context("hashing for dm-verity")?);
    }
    Ok(fs)
}

/// Where a compressed inode's lcluster indexes start, relative to the
/// inode, for `head` bytes of inode and xattrs: the map header at the next
/// multiple of 8, then 8 reserved bytes (`Z_EROFS_VLE_LEGACY_INDEX_ALIGN`).
fn index_at(head: u64) -> u64 {
    head.next_multiple_of(8) + 16
}

/// The full (legacy) lcluster indexes of a compressed file: one per
/// 4 KiB of its size. The lcluster where an extent starts is its head
/// (`PLAIN` when stored raw) with the offset and first block; the others
/// point back to their head and on to the next one; with big pclusters
/// the first one after a compressed head holds the block count.
fn lcluster_indexes(
    extents: &[Extent],
    size: u64,
    first_block: u64,
    big: bool,
) -> anyhow::Result<Vec<u8>> {
    let count = size.div_ceil(BLOCK_SIZE);
    let mut out = Vec::with_capacity(count as usize * 8);
    let mut e = 0;
    let mut head_block = first_block;
    for lcn in 0..count {
        while e + 1 < extents.len() && extents[e + 1].start / BLOCK_SIZE <= lcn {
            head_block += extents[e].blocks();
            e += 1;
        }
        let ext = &extents[e];
        let head = ext.start / BLOCK_SIZE;
        let index = if head == lcn {
            LclusterIndex {
                advise: if ext.raw {
                    LCLUSTER_PLAIN
                } else {
                    LCLUSTER_HEAD1
                }
                .into(),
                cluster_ofs: ((ext.start % BLOCK_SIZE) as u16).into(),
                u: u32::try_from(head_block)?.into(),
            }
        } else {
            let next = extents.get(e + 1).map_or(count, |n| n.start / BLOCK_SIZE);
            let d0 = u16::try_from(lcn - head)?;
            let d0 = if d0 == 1 && big && !ext.raw {
                D0_CBLKCNT | u16::try_from(ext.blocks())?
            } else {
                d0
            };
            let d1 = u16::try_from(next - lcn)?;
            LclusterIndex {
                advise: LCLUSTER_NONHEAD.into(),
                cluster_ofs: 0.into(),
                u: (u32::from(d0) | (u32::from(d1) << 16)).into(),
            }
        };
        out.extend_from_slice(index.as_bytes());
    }
    Ok(out)
}

/// Opens a file source for reading (`None` for generated bytes).
fn open(source: &FileSource, size: u64) -> anyhow::Result<Option<InputFile>> {
    match source {
        FileSource::Path(p) => Ok(Some(InputFile::open(p, size)?)),
        FileSource::Bytes(_) => Ok(None),
    }
}

/// Reads `buf.len()` bytes at `pos` of a file source.
fn read_at(
    source: &FileSource,
    input: Option<&InputFile>,
    buf: &mut [u8],
    pos: u64,
) -> anyhow::Result<()> {
    match (source, input) {
        (FileSource::Bytes(b), _) => {
            let start = usize::try_from(pos)?;
            let slice = b
                .get(start..start + buf.len())
                .ok_or_else(|| anyhow!("generated file is shorter than expected"))?;
            buf.copy_from_slice(slice);
        }
        (FileSource::Path(p), Some(f)) => f
            .file()
            .read_exact_at(buf, pos)
            .with_context(|| format!("reading '{}'", p.display()))?,
        (FileSource::Path(p), None) => bail!("'{}' was not opened", p.display()),
    }
    Ok(())
}

impl Content for ErofsFs {
    fn min_size(&self) -> u64 {
        self.bytes_used() + self.verity.as_ref().map_or(0, HashTree::len)
    }

    fn write(&self, window: &mut Window<'_>) -> anyhow::Result<()> {
        if window.len() < self.min_size() {
            bail!(
                "EROFS '{}': {} is too small for its content; the smallest size that fits is {}",
                self.name,
                human(window.len()),
                human(self.min_size())
            );
        }
        let ctx = || format!("writing EROFS image '{}'", self.name);
        let meta = self.finished_meta().with_context(ctx)?;
        window.write_at(&meta, 0).with_context(ctx)?;
        window.settle(meta.len() as u64);

        let mut buf: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
        let mut buf_at = meta.len() as u64;
        for run in &self.runs {
            let at = run.block * BLOCK_SIZE;
            let end = at + run.blocks() * BLOCK_SIZE;
            match &run.data {
                RunData::Bytes(bytes) => {
                    if buf_at + buf.len() as u64 != at || buf.len() + bytes.len() > WRITE_CHUNK {
                        flush(window, &mut buf, &mut buf_at, at).with_context(ctx)?;
                    }
                    buf.extend_from_slice(bytes);
                    buf.resize(usize::try_from(end - buf_at)?, 0);
                }
                RunData::File { source, size, len } => {
                    flush(window, &mut buf, &mut buf_at, end).with_context(ctx)?;
                    let input = open(source, *size).with_context(ctx)?;
                    match (source, &input) {
                        (FileSource::Bytes(b), _) => {
                            let slice = b.get(..usize::try_from(*len)?).ok_or_else(|| {
                                anyhow!("generated file is shorter than expected")
                            })?;
                            window.write_at(slice, at).with_context(ctx)?;
                        }
                        (_, Some(f)) => {
                            window.copy_from(f.file(), 0, *len, at).with_context(ctx)?;
                            f.check_unchanged()?;
                        }
                        (FileSource::Path(p), None) => bail!("'{}' was not opened", p.display()),
                    }
                    // Holes of the source and the end of the last block
                    // must read as zeros.
                    window.zero(at, end - at).with_context(ctx)?;
                    window.settle(end);
                }
            }
        }
        flush(window, &mut buf, &mut buf_at, self.bytes_used()).with_context(ctx)?;
        if let Some(verity) = &self.verity {
            verity.write(window).with_context(ctx)?;
        }
        window.settle(window.len());
        Ok(())
    }
}

/// Writes the coalesced bytes and starts the buffer again at `next`.
fn flush(
    window: &mut Window<'_>,
    buf: &mut Vec<u8>,
    buf_at: &mut u64,
    next: u64,
) -> anyhow::Result<()> {
    if !buf.is_empty() {
        window.write_at(buf, *buf_at)?;
        window.settle(*buf_at + buf.len() as u64);
        buf.clear();
    }
    *buf_at = next;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inode_records_go_into_the_first_block_with_room() {
        let mut p = MetaPacker::new(128);
        // Does not fit after the superblock: a block of its own.
        assert_eq!(p.place(4000), BLOCK_SIZE);
        // Fits after the superblock, then after the first small one.
        assert_eq!(p.place(90), 128);
        assert_eq!(p.place(4000), 2 * BLOCK_SIZE);
        assert_eq!(p.place(64), 224);
        // Larger than a block: blocks of its own, the rest of the last one
        // stays open.
        assert_eq!(p.place(5000), 3 * BLOCK_SIZE);
        // The lowest block with room, not the last one.
        assert_eq!(p.place(3000), 288);
        assert_eq!(p.place(96), 3296);
        assert_eq!(p.place(3100), 4 * BLOCK_SIZE + 928);
        assert_eq!(p.len(), 5 * BLOCK_SIZE);
    }

    #[test]
    fn directory_blocks_hold_what_fits() {
        let long = [b'x'; 200];
        let names: Vec<&[u8]> = (0..40).map(|_| &long[..]).collect();
        let blocks = dir_blocks(&names);
        // 212 bytes per entry: 19 fit a block.
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0], (0..19, 19 * 212));
        assert_eq!(blocks[2], (38..40, 2 * 212));
    }

    #[test]
    fn xattr_prefixes_map_to_indexes() {
        assert_eq!(xattr_key(b"user.a"), Some((1, &b"a"[..])));
        assert_eq!(
            xattr_key(b"security.capability"),
            Some((6, &b"capability"[..]))
        );
        assert_eq!(xattr_key(b"system.posix_acl_access"), Some((2, &b""[..])));
        assert_eq!(xattr_key(b"system.other"), None);
        assert_eq!(xattr_key(b"user."), None);
        let e = xattr_entry(b"trusted.ab", b"xyz").unwrap();
        assert_eq!(e, [2, 4, 3, 0, b'a', b'b', b'x', b'y', b'z', 0, 0, 0]);
    }
}
