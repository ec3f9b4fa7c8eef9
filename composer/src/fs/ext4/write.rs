//! Writing a laid-out filesystem: every metadata block is built in memory,
//! sorted by position and written with few large writes; file data is then
//! copied once, in inode order (which is disk order), keeping source holes.
//!
//! Nothing else is written: free blocks, the unused tail of each inode table
//! (the kernel's lazy init zeroes it, e2fsck skips it thanks to
//! `bg_itable_unused`) and, with [`JournalInit::Lazy`], the journal past its
//! superblock stay holes. Ranges that must read as zero on the device
//! (allocated file blocks that are holes in the source, a zeroed journal,
//! inode tables without group checksums) are recorded with
//! [`Window::zero`], which maps them in the bmap without writing.

use super::layout::{Ext, Layout};
use super::ondisk::*;
use super::{Body, Data, Ext4Fs, InodeInfo, JournalInit};
use crate::fs::FileSource;
use crate::input::InputFile;
use crate::output::window::Window;
use anyhow::{bail, Context};
use std::borrow::Cow;
use zerocopy::{FromBytes, FromZeros, IntoBytes};

/// Coalesced metadata writes are flushed at this size.
const WRITE_CHUNK: usize = 8 << 20;
/// `S_IFDIR`, to count directories per group.
const S_IFDIR: u16 = 0o040_000;
const S_IFMT: u16 = 0o170_000;
/// Mode of the journal inode: a regular file, rw for root.
const JOURNAL_MODE: u16 = 0o100_600;

/// Metadata pieces: (byte offset in the filesystem, bytes).
type Pieces<'a> = Vec<(u64, Cow<'a, [u8]>)>;

pub(super) fn write(fs: &Ext4Fs, l: &Layout, w: &mut Window<'_>) -> anyhow::Result<()> {
    let geo = &l.geo;
    let bs = geo.block_size;
    let ipg = geo.inodes_per_group;
    let groups = geo.groups as usize;
    let feat = &fs.opts.features;
    // Per group: inodes in use, and the slots up to the last one in use.
    // The reserved inodes (1 to 10) count as used, as mke2fs marks them;
    // with stable placement numbers can have gaps (removed files).
    let mut used_count = vec![0u64; groups];
    let mut used_until = vec![0u64; groups];
    let mut inode_bitmaps = vec![vec![0u8; bs as usize]; groups];
    let reserved = 0..u64::from(FIRST_INO - 1);
    for idx in reserved.chain(fs.inodes.iter().map(|i| u64::from(i.ino - 1))) {
        let (g, i) = ((idx / ipg) as usize, idx % ipg);
        let byte = &mut inode_bitmaps[g][(i / 8) as usize];
        if *byte & (1 << (i % 8)) == 0 {
            // The root (2) is both reserved and in the list.
            used_count[g] += 1;
            *byte |= 1 << (i % 8);
        }
        used_until[g] = used_until[g].max(i + 1);
    }
    let used_in = |g: u64| used_until[g as usize];

    let mut pieces: Pieces<'_> = Vec::new();
    let mut tables: Vec<Vec<u8>> = (0..geo.groups)
        .map(|g| vec![0u8; ((used_in(g) * 256).div_ceil(bs) * bs) as usize])
        .collect();
    let mut dirs = vec![0u64; groups];
    let mut put_inode = |ino: u32, bytes: &[u8]| {
        let idx = u64::from(ino - 1);
        let (g, i) = ((idx / ipg) as usize, (idx % ipg) as usize);
        tables[g][i * 256..i * 256 + 256].copy_from_slice(bytes);
    };

    // The journal inode.
    let mut jnl_backup = [0u32; 17];
    if l.journal_blocks > 0 {
        let seed = fs.csum_seed.map(|s| super::inode_seed(s, JOURNAL_INO));
        let i_block = extent_tree(&l.journal, &l.journal_tree, fs, seed, &mut pieces);
        let size = l.journal_blocks * bs;
        let info = InodeInfo {
            ino: JOURNAL_INO,
            mode: JOURNAL_MODE,
            uid: 0,
            gid: 0,
            links: 1,
            atime: fs.time,
            mtime: fs.time,
            ctime: fs.time,
            size,
            flags: EXTENTS_FL,
            body: Body::Inline(i_block),
            xattr: Default::default(),
            crtime: None,
        };
        let nblocks = l.journal_blocks + l.journal_tree.len() as u64;
        put_inode(
            JOURNAL_INO,
            &encode_inode(fs, &info, &i_block, nblocks, None)?,
        );
        for (k, word) in i_block.chunks(4).enumerate() {
            jnl_backup[k] = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        }
        jnl_backup[15] = (size >> 32) as u32;
        jnl_backup[16] = size as u32;
    }

    // Content inodes and their blocks.
    let mut copies: Vec<(&FileSource, u64, &[Ext])> = Vec::new();
    for (info, alloc) in fs.inodes.iter().zip(&l.inodes) {
        let seed = fs.csum_seed.map(|s| super::inode_seed(s, info.ino));
        if info.mode & S_IFMT == S_IFDIR {
            dirs[((info.ino - 1) as u64 / ipg) as usize] += 1;
        }
        let i_block = match &info.body {
            Body::Inline(b) => *b,
            Body::Extents(data) => {
                match data {
                    Data::Blocks(bytes) => {
                        for e in &alloc.extents {
                            let from = (e.lblk * bs) as usize;
                            let to = ((e.lblk + e.len) * bs) as usize;
                            pieces.push((e.pblk * bs, Cow::Borrowed(&bytes[from..to])));
                        }
                    }
                    Data::File(src) => copies.push((src, info.size, &alloc.extents)),
                }
                extent_tree(&alloc.extents, &alloc.tree, fs, seed, &mut pieces)
            }
        };
        if let (Some(block), Some(pblk)) = (&info.xattr.block, alloc.xattr) {
            let mut b = block.clone();
            if let Some(cs) = fs.csum_seed {
                let c = crc32c_raw(cs, &pblk.to_le_bytes());
                let c = crc32c_raw(c, &b);
                b[0x10..0x14].copy_from_slice(&c.to_le_bytes());
            }
            pieces.push((pblk * bs, Cow::Owned(b)));
        }
        let data_blocks: u64 = alloc.extents.iter().map(|e| e.len).sum();
        let nblocks = data_blocks + alloc.tree.len() as u64 + u64::from(alloc.xattr.is_some());
        let bytes = encode_inode(fs, info, &i_block, nblocks, alloc.xattr)
            .with_context(|| format!("encoding inode {}", info.ino))?;
        put_inode(info.ino, &bytes);
    }

    // Bitmaps and group descriptors.
    let gcsum = feat.group_csum();
    let ds = geo.desc_size as usize;
    let mut gdt = vec![0u8; (geo.gdt_blocks * bs) as usize];
    let (mut free_blocks, mut free_inodes) = (0u64, 0u64);
    for g in 0..geo.groups {
        let gi = g as usize;
        let m = l.groups[gi];
        let bb = l.block_bitmap(g);
        let mut ib = std::mem::take(&mut inode_bitmaps[gi]);
        let used = used_in(g);
        for i in ipg..8 * bs {
            ib[(i / 8) as usize] |= 1 << (i % 8);
        }
        let gfree = geo.group_blocks(g) - l.group_used(g);
        let ifree = ipg - used_count[gi];
        free_blocks += gfree;
        free_inodes += ifree;
        let mut d = GroupDesc {
            bg_block_bitmap_lo: (m.block_bitmap as u32).into(),
            bg_inode_bitmap_lo: (m.inode_bitmap as u32).into(),
            bg_inode_table_lo: (m.inode_table as u32).into(),
            bg_free_blocks_count_lo: (gfree as u16).into(),
            bg_free_inodes_count_lo: (ifree as u16).into(),
            bg_used_dirs_count_lo: (dirs[gi] as u16).into(),
            bg_block_bitmap_hi: ((m.block_bitmap >> 32) as u32).into(),
            bg_inode_bitmap_hi: ((m.inode_bitmap >> 32) as u32).into(),
            bg_inode_table_hi: ((m.inode_table >> 32) as u32).into(),
            bg_free_blocks_count_hi: ((gfree >> 16) as u16).into(),
            bg_free_inodes_count_hi: ((ifree >> 16) as u16).into(),
            bg_used_dirs_count_hi: ((dirs[gi] >> 16) as u16).into(),
            ..Default::default()
        };
        if gcsum {
            if used == 0 {
                d.bg_flags = BG_INODE_UNINIT.into();
            }
            let unused = ipg - used;
            d.bg_itable_unused_lo = (unused as u16).into();
            d.bg_itable_unused_hi = ((unused >> 16) as u16).into();
        }
        if let Some(cs) = fs.csum_seed {
            let bc = crc32c_raw(cs, &bb[..(geo.blocks_per_group / 8) as usize]);
            let ic = crc32c_raw(cs, &ib[..(ipg / 8) as usize]);
            d.bg_block_bitmap_csum_lo = (bc as u16).into();
            d.bg_inode_bitmap_csum_lo = (ic as u16).into();
            if ds >= 64 {
                d.bg_block_bitmap_csum_hi = ((bc >> 16) as u16).into();
                d.bg_inode_bitmap_csum_hi = ((ic >> 16) as u16).into();
            }
        }
        let mut raw = d.as_bytes()[..ds].to_vec();
        if let Some(cs) = fs.csum_seed {
            let c = crc32c_raw(cs, &(g as u32).to_le_bytes());
            let c = crc32c_raw(c, &raw[..BG_CHECKSUM_OFFSET]);
            let c = crc32c_raw(c, &[0, 0]);
            let c = crc32c_raw(c, &raw[BG_CHECKSUM_OFFSET + 2..]);
            raw[BG_CHECKSUM_OFFSET..BG_CHECKSUM_OFFSET + 2]
                .copy_from_slice(&(c as u16).to_le_bytes());
        } else if gcsum {
            let c = crc16(!0, &fs.uuid.0);
            let c = crc16(c, &(g as u32).to_le_bytes());
            let c = crc16(c, &raw[..BG_CHECKSUM_OFFSET]);
            let c = crc16(c, &raw[BG_CHECKSUM_OFFSET + 2..]);
            raw[BG_CHECKSUM_OFFSET..BG_CHECKSUM_OFFSET + 2].copy_from_slice(&c.to_le_bytes());
        }
        gdt[gi * ds..gi * ds + ds].copy_from_slice(&raw);
        pieces.push((m.block_bitmap * bs, Cow::Owned(bb)));
        pieces.push((m.inode_bitmap * bs, Cow::Owned(ib)));
    }
    for (g, t) in tables.into_iter().enumerate() {
        let start = l.groups[g].inode_table * bs;
        if !gcsum {
            // Without itable_unused every inode slot is read: map it zeroed.
            w.zero(start, geo.itable_blocks * bs)?;
        }
        if !t.is_empty() {
            pieces.push((start, Cow::Owned(t)));
        }
    }

    // Superblocks.
    let sb = superblock(fs, l, free_blocks, free_inodes, &jnl_backup);
    for g in 0..geo.groups {
        if !geo.has_super(g) {
            continue;
        }
        let mut copy = sb.clone();
        copy.s_block_group_nr = (g as u16).into();
        if fs.csum_seed.is_some() {
            let c = crc32c_raw(!0, &copy.as_bytes()[..0x3FC]);
            copy.s_checksum = c.into();
        }
        let start = geo.group_start(g) * bs;
        let mut block = vec![0u8; bs as usize];
        if g == 0 {
            // Group 0: the superblock sits at byte 1024; zero what precedes
            // it (old signatures) by writing the whole first block(s).
            let mut head = vec![0u8; (SUPERBLOCK_OFFSET as usize) + 1024];
            head[SUPERBLOCK_OFFSET as usize..].copy_from_slice(copy.as_bytes());
            if bs > 2048 {
                head.resize(bs as usize, 0);
            }
            block = head;
            pieces.push((0, Cow::Owned(block)));
        } else {
            block[..1024].copy_from_slice(copy.as_bytes());
            pieces.push((start, Cow::Owned(block)));
        }
        pieces.push(((geo.group_start(g) + 1) * bs, Cow::Owned(gdt.clone())));
    }

    // The journal superblock.
    if let Some(first) = l.journal.first() {
        let mut b = vec![0u8; bs as usize];
        b[..1024].copy_from_slice(journal_superblock(fs, l).as_bytes());
        pieces.push((first.pblk * bs, Cow::Owned(b)));
        if fs.opts.journal_init == JournalInit::Zero {
            for e in &l.journal {
                w.zero(e.pblk * bs, e.len * bs)?;
            }
        }
    }

    write_pieces(w, pieces).context("writing metadata")?;

    // Copies go in inode order, which the layout makes disk order; after
    // each one, everything below the lowest block still to be copied is
    // final (metadata was written first).
    let mut rest: Vec<u64> = copies
        .iter()
        .map(|(_, _, e)| e.iter().map(|x| x.pblk * bs).min().unwrap_or(u64::MAX))
        .collect();
    for i in (0..rest.len().saturating_sub(1)).rev() {
        rest[i] = rest[i].min(rest[i + 1]);
    }
    for (i, (src, size, extents)) in copies.into_iter().enumerate() {
        copy_file(w, src, size, extents, bs)?;
        w.settle(rest.get(i + 1).copied().unwrap_or(u64::MAX));
    }
    Ok(())
}

/// Sorts pieces by position and writes them, merging neighbours.
fn write_pieces(w: &mut Window<'_>, mut pieces: Pieces<'_>) -> anyhow::Result<()> {
    pieces.sort_by_key(|p| p.0);
    let mut buf: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
    let mut at = 0u64;
    for (off, data) in pieces {
        let end = at + buf.len() as u64;
        if off < end {
            bail!("two metadata blocks overlap at byte {off} (a bug in the ext4 layout)");
        }
        if !buf.is_empty() && (off != end || buf.len() >= WRITE_CHUNK) {
            w.write_at(&buf, at)?;
            buf.clear();
        }
        if buf.is_empty() {
            at = off;
        }
        buf.extend_from_slice(&data);
    }
    if !buf.is_empty() {
        w.write_at(&buf, at)?;
    }
    Ok(())
}

/// Copies a file's data into its extents, keeping the source's holes.
fn copy_file(
    w: &mut Window<'_>,
    src: &FileSource,
    size: u64,
    extents: &[Ext],
    bs: u64,
) -> anyhow::Result<()> {
    match src {
        FileSource::Path(p) => {
            let input = InputFile::open(p, size)?;
            for e in extents {
                let from = e.lblk * bs;
                let len = (e.len * bs).min(size - from);
                w.copy_from(input.file(), from, len, e.pblk * bs)
                    .with_context(|| format!("copying '{}'", p.display()))?;
                // Blocks of the extent that are holes in the source must
                // still read as zero on the device.
                w.zero(e.pblk * bs, e.len * bs)?;
            }
            input.check_unchanged()?;
        }
        FileSource::Bytes(bytes) => {
            for e in extents {
                let from = (e.lblk * bs) as usize;
                let to = (((e.lblk + e.len) * bs) as usize).min(bytes.len());
                w.write_at(&bytes[from..to], e.pblk * bs)?;
                w.zero(e.pblk * bs, e.len * bs)?;
            }
        }
    }
    Ok(())
}

fn extent_header(entries: usize, max: u64, depth: u16) -> ExtentHeader {
    ExtentHeader {
        eh_magic: EXTENT_MAGIC.into(),
        eh_entries: (entries as u16).into(),
        eh_max: (max as u16).into(),
        eh_depth: depth.into(),
        eh_generation: 0.into(),
    }
}

/// Builds the extent tree of `exts`: returns `i_block`, pushes tree blocks.
fn extent_tree<'a>(
    exts: &[Ext],
    tree_blocks: &[u64],
    fs: &Ext4Fs,
    seed: Option<u32>,
    pieces: &mut Pieces<'a>,
) -> [u8; 60] {
    let bs = u64::from(fs.opts.block_size);
    let per = (bs - 12) / 12;
    let leaf = |e: &Ext| Extent {
        ee_block: (e.lblk as u32).into(),
        ee_len: (e.len as u16).into(),
        ee_start_hi: ((e.pblk >> 32) as u16).into(),
        ee_start_lo: (e.pblk as u32).into(),
    };
    let index = |lblk: u64, pblk: u64| ExtentIndex {
        ei_block: (lblk as u32).into(),
        ei_leaf_lo: (pblk as u32).into(),
        ei_leaf_hi: ((pblk >> 32) as u16).into(),
        ei_unused: 0.into(),
    };
    let mut root = [0u8; 60];
    if exts.len() <= 4 {
        root[..12].copy_from_slice(extent_header(exts.len(), 4, 0).as_bytes());
        for (i, e) in exts.iter().enumerate() {
            root[12 + 12 * i..24 + 12 * i].copy_from_slice(leaf(e).as_bytes());
        }
        return root;
    }
    let mut next = tree_blocks.iter().copied();
    let mut node_block = |entries: Vec<[u8; 12]>, depth: u16, pieces: &mut Pieces<'a>| -> u64 {
        let pblk = next.next().unwrap_or(0);
        let mut b = vec![0u8; bs as usize];
        b[..12].copy_from_slice(extent_header(entries.len(), per, depth).as_bytes());
        for (i, e) in entries.iter().enumerate() {
            b[12 + 12 * i..24 + 12 * i].copy_from_slice(e);
        }
        if let Some(s) = seed {
            let tail = (12 + 12 * per) as usize;
            let c = crc32c_raw(s, &b[..tail]);
            b[tail..tail + 4].copy_from_slice(&c.to_le_bytes());
        }
        pieces.push((pblk * bs, Cow::Owned(b)));
        pblk
    };
    let to12 = |bytes: &[u8]| -> [u8; 12] {
        let mut a = [0u8; 12];
        a.copy_from_slice(bytes);
        a
    };
    // (first logical block, node block) of the current level.
    let mut level: Vec<(u64, u64)> = exts
        .chunks(per as usize)
        .map(|c| {
            let entries = c.iter().map(|e| to12(leaf(e).as_bytes())).collect();
            (c[0].lblk, node_block(entries, 0, pieces))
        })
        .collect();
    let mut depth = 1u16;
    while level.len() > 4 {
        level = level
            .chunks(per as usize)
            .map(|c| {
                let entries = c
                    .iter()
                    .map(|&(l, p)| to12(index(l, p).as_bytes()))
                    .collect();
                (c[0].0, node_block(entries, depth, pieces))
            })
            .collect();
        depth += 1;
    }
    root[..12].copy_from_slice(extent_header(level.len(), 4, depth).as_bytes());
    for (i, &(l, p)) in level.iter().enumerate() {
        root[12 + 12 * i..24 + 12 * i].copy_from_slice(index(l, p).as_bytes());
    }
    root
}

fn encode_inode(
    fs: &Ext4Fs,
    info: &InodeInfo,
    i_block: &[u8; 60],
    fs_blocks: u64,
    xattr_block: Option<u64>,
) -> anyhow::Result<Vec<u8>> {
    let sectors = fs_blocks * u64::from(fs.opts.block_size) / 512;
    if sectors > u64::from(u32::MAX) && !fs.opts.features.huge_file {
        bail!(
            "inode {} needs the huge_file feature (over 2 TiB of blocks)",
            info.ino
        );
    }
    if sectors >> 48 != 0 {
        bail!("inode {} has more blocks than ext4 can count", info.ino);
    }
    let (atime, atime_x) = encode_time(info.atime.sec, info.atime.nsec);
    let (mtime, mtime_x) = encode_time(info.mtime.sec, info.mtime.nsec);
    let (ctime, ctime_x) = encode_time(info.ctime.sec, info.ctime.nsec);
    let (crtime, crtime_x) = info
        .crtime
        .unwrap_or_else(|| encode_time(fs.time.sec, fs.time.nsec));
    let xb = xattr_block.unwrap_or(0);
    let inode = Inode {
        i_mode: info.mode.into(),
        i_uid: (info.uid as u16).into(),
        i_size_lo: (info.size as u32).into(),
        i_atime: atime.into(),
        i_ctime: ctime.into(),
        i_mtime: mtime.into(),
        i_gid: (info.gid as u16).into(),
        i_links_count: info.links.into(),
        i_blocks_lo: (sectors as u32).into(),
        i_flags: info.flags.into(),
        i_block: *i_block,
        i_file_acl_lo: (xb as u32).into(),
        i_size_high: ((info.size >> 32) as u32).into(),
        i_blocks_high: ((sectors >> 32) as u16).into(),
        i_file_acl_high: ((xb >> 32) as u16).into(),
        i_uid_high: ((info.uid >> 16) as u16).into(),
        i_gid_high: ((info.gid >> 16) as u16).into(),
        i_extra_isize: EXTRA_ISIZE.into(),
        i_ctime_extra: ctime_x.into(),
        i_mtime_extra: mtime_x.into(),
        i_atime_extra: atime_x.into(),
        i_crtime: crtime.into(),
        i_crtime_extra: crtime_x.into(),
        ..Inode::new_zeroed()
    };
    let mut out = vec![0u8; usize::from(INODE_SIZE)];
    out[..std::mem::size_of::<Inode>()].copy_from_slice(inode.as_bytes());
    if !info.xattr.inline.is_empty() {
        out[std::mem::size_of::<Inode>()..].copy_from_slice(&info.xattr.inline);
    }
    if let Some(cs) = fs.csum_seed {
        let c = crc32c_raw(super::inode_seed(cs, info.ino), &out);
        let mut ino = Inode::read_from_prefix(&out)
            .map(|(i, _)| i)
            .unwrap_or_else(|_| Inode::new_zeroed());
        ino.i_checksum_lo = (c as u16).into();
        ino.i_checksum_hi = ((c >> 16) as u16).into();
        out[..std::mem::size_of::<Inode>()].copy_from_slice(ino.as_bytes());
    }
    Ok(out)
}

fn superblock(
    fs: &Ext4Fs,
    l: &Layout,
    free_blocks: u64,
    free_inodes: u64,
    jnl_backup: &[u32; 17],
) -> Superblock {
    let geo = &l.geo;
    let f = &fs.opts.features;
    let mut compat = 0;
    if l.journal_blocks > 0 {
        compat |= COMPAT_HAS_JOURNAL;
    }
    if f.ext_attr {
        compat |= COMPAT_EXT_ATTR;
    }
    if f.dir_index {
        compat |= COMPAT_DIR_INDEX;
    }
    let mut incompat = INCOMPAT_FILETYPE | INCOMPAT_EXTENTS;
    if geo.bit64 {
        incompat |= INCOMPAT_64BIT;
    }
    if f.flex_bg {
        incompat |= INCOMPAT_FLEX_BG;
    }
    let mut ro = RO_COMPAT_EXTRA_ISIZE;
    for (on, bit) in [
        (f.sparse_super, RO_COMPAT_SPARSE_SUPER),
        (f.large_file, RO_COMPAT_LARGE_FILE),
        (f.huge_file, RO_COMPAT_HUGE_FILE),
        (f.dir_nlink, RO_COMPAT_DIR_NLINK),
        (f.metadata_csum, RO_COMPAT_METADATA_CSUM),
        (f.uninit_bg, RO_COMPAT_GDT_CSUM),
    ] {
        if on {
            ro |= bit;
        }
    }
    let mut label = [0u8; 16];
    label[..fs.opts.label.len()].copy_from_slice(fs.opts.label.as_bytes());
    let time = fs.time.sec.clamp(0, i64::from(u32::MAX)) as u32;
    let log = geo.block_size.trailing_zeros() - 10;
    let mut sb = Superblock::new_zeroed();
    sb.s_inodes_count = (geo.inodes_count() as u32).into();
    sb.s_blocks_count_lo = (geo.blocks as u32).into();
    sb.s_blocks_count_hi = ((geo.blocks >> 32) as u32).into();
    sb.s_r_blocks_count_lo = (l.reserved_blocks as u32).into();
    sb.s_r_blocks_count_hi = ((l.reserved_blocks >> 32) as u32).into();
    sb.s_free_blocks_count_lo = (free_blocks as u32).into();
    sb.s_free_blocks_count_hi = ((free_blocks >> 32) as u32).into();
    sb.s_free_inodes_count = (free_inodes as u32).into();
    sb.s_first_data_block = (geo.first_data_block as u32).into();
    sb.s_log_block_size = log.into();
    sb.s_log_cluster_size = log.into();
    sb.s_blocks_per_group = (geo.blocks_per_group as u32).into();
    sb.s_clusters_per_group = (geo.blocks_per_group as u32).into();
    sb.s_inodes_per_group = (geo.inodes_per_group as u32).into();
    sb.s_wtime = time.into();
    sb.s_max_mnt_count = u16::MAX.into();
    sb.s_magic = SUPER_MAGIC.into();
    sb.s_state = STATE_VALID.into();
    sb.s_errors = ERRORS_CONTINUE.into();
    sb.s_lastcheck = time.into();
    sb.s_rev_level = 1.into();
    sb.s_first_ino = FIRST_INO.into();
    sb.s_inode_size = INODE_SIZE.into();
    sb.s_feature_compat = compat.into();
    sb.s_feature_incompat = incompat.into();
    sb.s_feature_ro_compat = ro.into();
    sb.s_uuid = fs.uuid.0;
    sb.s_volume_name = label;
    sb.s_hash_seed = fs.hash_seed;
    sb.s_def_hash_version = HASH_HALF_MD4;
    if l.journal_blocks > 0 {
        sb.s_journal_inum = JOURNAL_INO.into();
        sb.s_jnl_backup_type = JNL_BACKUP_BLOCKS;
        for (d, s) in sb.s_jnl_blocks.iter_mut().zip(jnl_backup) {
            *d = (*s).into();
        }
    }
    if geo.bit64 {
        sb.s_desc_size = (geo.desc_size as u16).into();
    }
    sb.s_default_mount_opts = DEFAULT_MOUNT_OPTS.into();
    sb.s_mkfs_time = time.into();
    sb.s_min_extra_isize = EXTRA_ISIZE.into();
    sb.s_want_extra_isize = EXTRA_ISIZE.into();
    sb.s_flags = FLAGS_UNSIGNED_HASH.into();
    if f.flex_bg {
        sb.s_log_groups_per_flex = super::layout::FLEX_GROUPS.trailing_zeros() as u8;
    }
    if f.metadata_csum {
        sb.s_checksum_type = CHECKSUM_CRC32C;
    }
    sb
}

fn journal_superblock(fs: &Ext4Fs, l: &Layout) -> JournalSuperblock {
    let mut j = JournalSuperblock::new_zeroed();
    j.h_magic = JBD2_MAGIC.into();
    j.h_blocktype = JBD2_SUPERBLOCK_V2.into();
    j.s_blocksize = fs.opts.block_size.into();
    j.s_maxlen = (l.journal_blocks as u32).into();
    j.s_first = 1.into();
    j.s_sequence = 1.into();
    j.s_uuid = fs.uuid.0;
    j.s_nr_users = 1.into();
    j.s_users[..16].copy_from_slice(&fs.uuid.0);
    j
}
