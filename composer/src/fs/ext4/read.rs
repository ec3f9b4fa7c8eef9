//! A small ext4 reader: what stable placement needs to know about the
//! previous release's filesystem (`--reference`), read from its bytes.
//!
//! Scope: the superblock, the group descriptors, inodes, extent trees
//! (any depth) and directories (linear and hashed: the blocks of an htree
//! read as ordinary entry blocks whose index parts are empty entries, so
//! one loop reads both). It gives every path its inode number, and every
//! inode its mode, size, extents, extent tree blocks and creation time.
//! File data is not read here; [`OldFs::read_blocks`] reads it when the
//! writer compares a file's old and new bytes.
//!
//! Every value is checked before it is used: a block outside the
//! filesystem, an inode number past the inode count, a bad magic or a
//! directory loop is an error naming the inode, never a panic, since the
//! reference is user input. Not supported (refused with a message): no
//! `extent` feature (ext2/3 block maps), `meta_bg`, `inline_data`, inode
//! sizes below 256 bytes; the writer never makes those.
//!
//! Rejected: a reader crate such as `ext4-view` (made to read file
//! contents by path; placement needs each inode's physical extents and
//! extent tree blocks in the writer's own terms, `layout::Ext`, and this
//! reader shares `ondisk.rs` with the writer); debugfs (a tool dependency
//! at build time, and its output is for people).

use super::layout::Ext;
use super::ondisk::*;
use anyhow::{bail, ensure, Context, Result};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use zerocopy::FromBytes;

/// `EXT4_FEATURE_INCOMPAT_META_BG` and `_INLINE_DATA`: layouts the reader
/// does not follow.
const INCOMPAT_META_BG: u32 = 0x10;
const INCOMPAT_INLINE_DATA: u32 = 0x8000;
/// Extents longer than this are unwritten (preallocated, read as zeros).
const INIT_MAX_LEN: u16 = 32768;
/// An extent tree deeper than this is corrupt (ext4 stays below 5).
const MAX_DEPTH: u16 = 5;
const S_IFMT: u16 = 0o170_000;
const S_IFDIR: u16 = 0o040_000;

/// One inode of the old filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OldInode {
    pub mode: u16,
    pub size: u64,
    /// Leaf extents in logical order.
    pub extents: Vec<Ext>,
    /// Extent tree node blocks outside the inode, in the order the writer
    /// allocates them (leaves first, then each level up).
    pub tree: Vec<u64>,
    /// `i_crtime`, `i_crtime_extra`.
    pub crtime: (u32, u32),
    /// Whether some extent is unwritten (reads as zeros whatever its blocks hold).
    pub unwritten: bool,
}

impl OldInode {
    /// The physical blocks in logical order.
    pub fn blocks(&self) -> impl Iterator<Item = u64> + '_ {
        self.extents.iter().flat_map(|e| e.pblk..e.pblk + e.len)
    }
}

/// The old filesystem, as far as placement needs it.
#[derive(Debug)]
pub struct OldFs {
    file: File,
    /// Byte offset of the filesystem in `file`.
    offset: u64,
    pub block_size: u64,
    pub blocks: u64,
    /// Absolute path (`/a/b`) to inode number; the root is not listed.
    pub paths: HashMap<Vec<u8>, u32>,
    pub inodes: HashMap<u32, OldInode>,
}

struct Geo {
    block_size: u64,
    blocks: u64,
    inodes_count: u32,
    inodes_per_group: u64,
    inode_size: u64,
    inode_tables: Vec<u64>,
}

impl OldFs {
    /// Reads the filesystem of `len` bytes at `offset` of `file`.
    pub fn read(file: File, offset: u64, len: u64) -> Result<OldFs> {
        let mut sb_bytes = [0u8; 1024];
        file.read_exact_at(&mut sb_bytes, offset + SUPERBLOCK_OFFSET)
            .context("reading the superblock")?;
        let sb = Superblock::read_from_bytes(&sb_bytes[..])
            .map_err(|_| anyhow::anyhow!("superblock of unexpected size"))?;
        ensure!(
            sb.s_magic.get() == SUPER_MAGIC,
            "no ext4 superblock (magic {:#06x} at byte 1080, not 0xef53)",
            sb.s_magic.get()
        );
        let log = sb.s_log_block_size.get();
        ensure!(log <= 2, "block size 2^{} KiB is not 1, 2 or 4 KiB", log);
        let bs = 1024u64 << log;
        let incompat = sb.s_feature_incompat.get();
        ensure!(
            incompat & INCOMPAT_EXTENTS != 0,
            "the filesystem does not use extents (ext2/ext3)"
        );
        ensure!(
            incompat & (INCOMPAT_META_BG | INCOMPAT_INLINE_DATA) == 0,
            "the filesystem uses meta_bg or inline_data, which image-composer never writes"
        );
        let bit64 = incompat & INCOMPAT_64BIT != 0;
        let blocks = u64::from(sb.s_blocks_count_lo.get())
            | if bit64 {
                u64::from(sb.s_blocks_count_hi.get()) << 32
            } else {
                0
            };
        ensure!(
            blocks * bs <= len,
            "the filesystem's {blocks} blocks of {bs} bytes do not fit in its {len} bytes"
        );
        let bpg = u64::from(sb.s_blocks_per_group.get());
        let ipg = u64::from(sb.s_inodes_per_group.get());
        let fdb = u64::from(sb.s_first_data_block.get());
        // One bitmap block per group says how many blocks and inodes a
        // group can have; mke2fs's smallest group has 256 blocks.
        ensure!(
            (256..=8 * bs).contains(&bpg) && (1..=8 * bs).contains(&ipg) && fdb < blocks,
            "the superblock's group geometry is invalid"
        );
        let inode_size = u64::from(sb.s_inode_size.get());
        ensure!(
            (256..=bs).contains(&inode_size) && inode_size.is_power_of_two(),
            "inode size {inode_size} is not supported (256 bytes or more)"
        );
        let groups = (blocks - fdb).div_ceil(bpg);
        let desc_size = if bit64 {
            u64::from(sb.s_desc_size.get()).max(32)
        } else {
            32
        };
        ensure!(
            groups * ipg <= u64::from(u32::MAX),
            "the inode count overflows"
        );
        let mut gdt = vec![0u8; usize::try_from(groups * desc_size)?];
        file.read_exact_at(&mut gdt, offset + (fdb + 1) * bs)
            .context("reading the group descriptors")?;
        let mut inode_tables = Vec::new();
        for g in 0..groups as usize {
            let raw = &gdt[g * desc_size as usize..(g + 1) * desc_size as usize];
            let mut full = [0u8; 64];
            full[..raw.len()].copy_from_slice(raw);
            let d = GroupDesc::read_from_bytes(&full[..])
                .map_err(|_| anyhow::anyhow!("group descriptor of unexpected size"))?;
            let table = u64::from(d.bg_inode_table_lo.get())
                | if bit64 {
                    u64::from(d.bg_inode_table_hi.get()) << 32
                } else {
                    0
                };
            ensure!(
                table + (ipg * inode_size).div_ceil(bs) <= blocks,
                "group {g}'s inode table (block {table}) is outside the filesystem"
            );
            inode_tables.push(table);
        }
        let geo = Geo {
            block_size: bs,
            blocks,
            inodes_count: (groups * ipg) as u32,
            inodes_per_group: ipg,
            inode_size,
            inode_tables,
        };
        let mut fs = OldFs {
            file,
            offset,
            block_size: bs,
            blocks,
            paths: HashMap::new(),
            inodes: HashMap::new(),
        };
        fs.walk(&geo)?;
        Ok(fs)
    }

    /// Reads `n` bytes from block `pblk` (bounds checked by the caller's extents).
    pub fn read_blocks(&self, pblk: u64, buf: &mut [u8]) -> Result<()> {
        self.file
            .read_exact_at(buf, self.offset + pblk * self.block_size)
            .with_context(|| format!("reading block {pblk} of the reference"))
    }

    /// Every directory from the root, breadth first.
    fn walk(&mut self, geo: &Geo) -> Result<()> {
        let root = self.inode(geo, ROOT_INO)?;
        ensure!(
            root.mode & S_IFMT == S_IFDIR,
            "inode 2 (the root) is not a directory"
        );
        self.inodes.insert(ROOT_INO, root);
        let mut seen = HashSet::from([ROOT_INO]);
        let mut queue = VecDeque::from([(Vec::new(), ROOT_INO)]);
        while let Some((path, dir)) = queue.pop_front() {
            let entries = self
                .dir_entries(&self.inodes[&dir])
                .with_context(|| format!("reading directory inode {dir}"))?;
            for (name, ino) in entries {
                if name == b"." || name == b".." {
                    continue;
                }
                let mut p = path.clone();
                p.push(b'/');
                p.extend_from_slice(&name);
                if !self.inodes.contains_key(&ino) {
                    let inode = self.inode(geo, ino)?;
                    self.inodes.insert(ino, inode);
                }
                let is_dir = self.inodes[&ino].mode & S_IFMT == S_IFDIR;
                if is_dir {
                    ensure!(
                        seen.insert(ino),
                        "directory inode {ino} is named twice (a loop)"
                    );
                    queue.push_back((p.clone(), ino));
                }
                self.paths.insert(p, ino);
            }
        }
        Ok(())
    }

    fn inode(&self, geo: &Geo, ino: u32) -> Result<OldInode> {
        ensure!(
            ino >= 1 && ino <= geo.inodes_count,
            "inode number {ino} is out of range"
        );
        let idx = u64::from(ino - 1);
        let table = geo.inode_tables[(idx / geo.inodes_per_group) as usize];
        let at = table * geo.block_size + (idx % geo.inodes_per_group) * geo.inode_size;
        let mut raw = vec![0u8; geo.inode_size as usize];
        self.file
            .read_exact_at(&mut raw, self.offset + at)
            .with_context(|| format!("reading inode {ino}"))?;
        let (i, _) =
            Inode::read_from_prefix(&raw).map_err(|_| anyhow::anyhow!("inode {ino} is short"))?;
        let size = u64::from(i.i_size_lo.get()) | (u64::from(i.i_size_high.get()) << 32);
        let mut out = OldInode {
            mode: i.i_mode.get(),
            size,
            extents: Vec::new(),
            tree: Vec::new(),
            crtime: (i.i_crtime.get(), i.i_crtime_extra.get()),
            unwritten: false,
        };
        if i.i_flags.get() & EXTENTS_FL != 0 {
            let mut tree = Vec::new();
            self.extent_node(geo, &i.i_block, MAX_DEPTH, &mut out, &mut tree)
                .with_context(|| format!("reading the extent tree of inode {ino}"))?;
            // The writer allocates leaves before the levels above them.
            tree.sort_by_key(|&(depth, _)| depth);
            out.tree = tree.into_iter().map(|(_, b)| b).collect();
            let mut last_end = 0;
            for e in &out.extents {
                ensure!(
                    e.lblk >= last_end,
                    "inode {ino}'s extents overlap or are out of order"
                );
                last_end = e.lblk + e.len;
            }
        }
        Ok(out)
    }

    /// Collects the leaves below one node (`bytes`: `i_block` or a block).
    /// `tree` gets (depth of the node, block) of every node block.
    fn extent_node(
        &self,
        geo: &Geo,
        bytes: &[u8],
        depth_left: u16,
        out: &mut OldInode,
        tree: &mut Vec<(u16, u64)>,
    ) -> Result<()> {
        let (h, rest) = ExtentHeader::read_from_prefix(bytes)
            .map_err(|_| anyhow::anyhow!("extent node is short"))?;
        ensure!(h.eh_magic.get() == EXTENT_MAGIC, "bad extent magic");
        let depth = h.eh_depth.get();
        ensure!(depth < depth_left, "extent tree too deep");
        let n = usize::from(h.eh_entries.get());
        ensure!(
            n * 12 <= rest.len(),
            "extent node holds more entries than fit"
        );
        for k in 0..n {
            let entry = &rest[k * 12..k * 12 + 12];
            if depth == 0 {
                let (e, _) = Extent::read_from_prefix(entry)
                    .map_err(|_| anyhow::anyhow!("extent is short"))?;
                let mut len = e.ee_len.get();
                if len > INIT_MAX_LEN {
                    len -= INIT_MAX_LEN;
                    out.unwritten = true;
                }
                let pblk = u64::from(e.ee_start_lo.get()) | (u64::from(e.ee_start_hi.get()) << 32);
                ensure!(
                    len > 0 && pblk > 0 && pblk + u64::from(len) <= geo.blocks,
                    "extent at block {pblk} ({len} blocks) is outside the filesystem"
                );
                ensure!(
                    (out.extents.len() as u64) < geo.blocks,
                    "more extents than blocks"
                );
                out.extents.push(Ext {
                    lblk: u64::from(e.ee_block.get()),
                    pblk,
                    len: u64::from(len),
                });
            } else {
                let (ix, _) = ExtentIndex::read_from_prefix(entry)
                    .map_err(|_| anyhow::anyhow!("extent index is short"))?;
                let pblk = u64::from(ix.ei_leaf_lo.get()) | (u64::from(ix.ei_leaf_hi.get()) << 32);
                ensure!(
                    pblk > 0 && pblk < geo.blocks,
                    "extent tree block {pblk} is outside the filesystem"
                );
                ensure!((tree.len() as u64) < geo.blocks, "extent tree too large");
                tree.push((depth - 1, pblk));
                let mut block = vec![0u8; geo.block_size as usize];
                self.read_blocks(pblk, &mut block)?;
                self.extent_node(geo, &block, depth, out, tree)?;
            }
        }
        Ok(())
    }

    /// (name, inode) of every entry of a directory, in block order.
    fn dir_entries(&self, dir: &OldInode) -> Result<Vec<(Vec<u8>, u32)>> {
        let bs = self.block_size as usize;
        let mut out = Vec::new();
        let mut block = vec![0u8; bs];
        for pblk in dir.blocks() {
            self.read_blocks(pblk, &mut block)?;
            let mut at = 0usize;
            while at + 8 <= bs {
                let ino =
                    u32::from_le_bytes([block[at], block[at + 1], block[at + 2], block[at + 3]]);
                let rec_len = usize::from(u16::from_le_bytes([block[at + 4], block[at + 5]]));
                let name_len = usize::from(block[at + 6]);
                if rec_len < 8 || at + rec_len > bs || 8 + name_len > rec_len {
                    bail!("directory block {pblk}: bad entry at byte {at}");
                }
                if ino != 0 {
                    out.push((block[at + 8..at + 8 + name_len].to_vec(), ino));
                }
                at += rec_len;
            }
        }
        Ok(out)
    }
}
