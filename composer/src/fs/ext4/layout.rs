//! Geometry and block allocation: where every block of the filesystem goes,
//! decided in memory before anything is written.
//!
//! Given a block count, [`plan`] lays out block groups (sparse_super backup
//! superblocks and descriptor tables in groups 0, 1 and powers of 3, 5, 7),
//! packs each flex group's bitmaps and inode tables at its start (as mke2fs
//! does with flex_bg; with flex_bg off a flex group is one group), places
//! the journal right after the first flex group's metadata, then gives every
//! inode, in inode order, its data blocks, extent tree blocks and attribute
//! block from a single forward cursor. One cursor means file data lands in
//! inode order, so the writer's copies are one sequential sweep.
//!
//! With the previous release's places ([`Place`], stable placement), the
//! content is laid out in three passes after the metadata and journal:
//! unchanged inodes take exactly their old blocks, changed inodes whose
//! data still fits take their old blocks, and every other inode (new,
//! grown, or whose old blocks are taken) goes, in inode order, to the
//! smallest free run that holds it whole (best fit: small files fill the
//! small holes), or first fit in pieces when none does.
//!
//! A layout that does not fit records a shortfall in blocks instead of
//! failing, so the caller can say how much is missing and search for the
//! smallest size that fits ([`min_blocks`]).

use super::ondisk::EXTENT_MAX_LEN;

/// jbd2 refuses journals smaller than this (`JBD2_MIN_JOURNAL_BLOCKS`).
pub const MIN_JOURNAL_BLOCKS: u64 = 1024;
/// mke2fs refuses journals larger than this ("must be between 1024 and
/// 10240000 blocks").
pub const MAX_JOURNAL_BLOCKS: u64 = 10_240_000;
/// Groups per flex group (mke2fs's default `-G 16`).
pub const FLEX_GROUPS: u64 = 16;
/// mke2fs drops a last group smaller than its own overhead plus this many
/// blocks: such a sliver holds no useful data.
const LAST_GROUP_SLACK: u64 = 50;

/// mke2fs.conf's size classes (`mke2fs(8)` "-T usage-types"): a
/// filesystem below 3 MiB is "floppy", below 512 MiB "small", from 4 TiB
/// "big", from 16 TiB "huge", else "default".
const FLOPPY_BELOW: u64 = 3 << 20;
const SMALL_BELOW: u64 = 512 << 20;
const BIG_FROM: u64 = 4 << 40;
const HUGE_FROM: u64 = 16 << 40;

/// The `inode_ratio` of mke2fs.conf's profile for a filesystem of `bytes`
/// (Debian's and upstream's `/etc/mke2fs.conf`: floppy 8192, small 4096,
/// default 16384, big 32768, huge 65536). The profiles' other settings are
/// not followed: their `blocksize = 1024` because the block size is fixed
/// before an `auto` size is known, and `inode_size = 128` (older
/// mke2fs.conf) because such inodes hold no times past 2038.
pub fn profile_inode_ratio(bytes: u64) -> u64 {
    match bytes {
        b if b < FLOPPY_BELOW => 8192,
        b if b < SMALL_BELOW => 4096,
        b if b >= HUGE_FROM => 65536,
        b if b >= BIG_FROM => 32768,
        _ => 16384,
    }
}

/// Journal sizing request, in blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalBlocks {
    None,
    /// mke2fs's default for the filesystem size.
    Default,
    Exactly(u64),
}

/// Fixed inputs of a layout.
#[derive(Clone, Debug)]
pub struct Params {
    pub block_size: u64,
    pub sparse_super: bool,
    pub flex_bg: bool,
    pub force_64bit: bool,
    /// Bytes per inode; `None`: mke2fs.conf's profile for the size
    /// ([`profile_inode_ratio`]).
    pub inode_ratio: Option<u64>,
    pub inodes: Option<u64>,
    pub reserved_percent: f64,
    pub journal: JournalBlocks,
    /// Inodes the content uses (highest inode number).
    pub inodes_needed: u64,
}

/// What one inode needs besides its inode slot.
#[derive(Clone, Debug, Default)]
pub struct InodeNeed {
    /// Logical block ranges (start, count) that hold data, sorted, disjoint.
    pub ranges: Vec<(u64, u64)>,
    pub xattr_block: bool,
}

/// One extent: `len` blocks from logical `lblk` at physical `pblk`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ext {
    pub lblk: u64,
    pub pblk: u64,
    pub len: u64,
}

/// Where an inode lay in the previous release (stable placement,
/// `--reference`): [`plan`] puts it there again when those blocks are free.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// Unchanged content: exactly these extents and extent tree blocks.
    Keep { extents: Vec<Ext>, tree: Vec<u64> },
    /// Changed content: its old blocks, in logical order, if the new data
    /// fits in them; else it goes to free space like a new file.
    Prefer(Vec<u64>),
}

/// Where one inode's blocks went.
#[derive(Clone, Debug, Default)]
pub struct InodeAlloc {
    pub extents: Vec<Ext>,
    /// Extent tree node blocks, leaves first (see `extent_tree_blocks`).
    pub tree: Vec<u64>,
    pub xattr: Option<u64>,
}

/// The shape of the filesystem.
#[derive(Clone, Debug)]
pub struct Geometry {
    pub block_size: u64,
    pub blocks: u64,
    pub first_data_block: u64,
    pub blocks_per_group: u64,
    pub groups: u64,
    pub inodes_per_group: u64,
    pub itable_blocks: u64,
    pub desc_size: u64,
    pub gdt_blocks: u64,
    /// Groups per flex group (1 without flex_bg).
    pub flex: u64,
    pub sparse_super: bool,
    pub bit64: bool,
}

impl Geometry {
    pub fn group_start(&self, g: u64) -> u64 {
        self.first_data_block + g * self.blocks_per_group
    }

    pub fn group_blocks(&self, g: u64) -> u64 {
        (self.blocks - self.group_start(g)).min(self.blocks_per_group)
    }

    /// Whether group `g` holds a superblock and descriptor table copy.
    pub fn has_super(&self, g: u64) -> bool {
        if g <= 1 || !self.sparse_super {
            return true;
        }
        [3u64, 5, 7].iter().any(|&base| {
            let mut p = base;
            while p < g {
                p *= base;
            }
            p == g
        })
    }

    fn super_overhead(&self, g: u64) -> u64 {
        if self.has_super(g) {
            1 + self.gdt_blocks
        } else {
            0
        }
    }

    pub fn inodes_count(&self) -> u64 {
        self.groups * self.inodes_per_group
    }

    pub fn extent_per_block(&self) -> u64 {
        (self.block_size - 12) / 12
    }
}

/// Group metadata locations.
#[derive(Clone, Copy, Debug, Default)]
pub struct GroupMeta {
    pub block_bitmap: u64,
    pub inode_bitmap: u64,
    pub inode_table: u64,
}

/// A complete allocation.
#[derive(Debug)]
pub struct Layout {
    pub geo: Geometry,
    /// One bit per block, set when used.
    pub used: Vec<u64>,
    pub groups: Vec<GroupMeta>,
    pub journal: Vec<Ext>,
    /// Extent tree blocks of the journal inode (a journal over 4 extents).
    pub journal_tree: Vec<u64>,
    pub journal_blocks: u64,
    pub inodes: Vec<InodeAlloc>,
    pub reserved_blocks: u64,
    /// Blocks missing for everything to fit (0 when it fits).
    pub shortfall: u64,
    cursor: u64,
}

/// mke2fs's default journal size for a filesystem of `blocks` blocks
/// (`ext2fs_default_journal_size`), at least the jbd2 minimum.
pub fn default_journal_blocks(blocks: u64) -> u64 {
    let j = match blocks {
        b if b < 32768 => 1024,
        b if b < 256 * 1024 => 4096,
        b if b < 512 * 1024 => 8192,
        b if b < 4096 * 1024 => 16384,
        b if b < 8192 * 1024 => 32768,
        b if b < 16384 * 1024 => 65536,
        b if b < 32768 * 1024 => 131072,
        _ => 262144,
    };
    j.max(MIN_JOURNAL_BLOCKS)
}

/// Blocks an extent tree of `n` extents needs outside the inode.
pub fn extent_tree_blocks(n: u64, per_block: u64) -> u64 {
    if n <= 4 {
        return 0;
    }
    let mut level = n.div_ceil(per_block);
    let mut total = level;
    while level > 4 {
        level = level.div_ceil(per_block);
        total += level;
    }
    total
}

/// The geometry for `blocks` blocks, or the shortfall in blocks.
pub fn geometry(p: &Params, blocks: u64) -> Result<Geometry, u64> {
    let bs = p.block_size;
    let fdb = u64::from(bs == 1024);
    let bpg = 8 * bs;
    // Below this nothing useful fits (superblock, tables, root, lost+found).
    let floor = 64;
    if blocks < fdb + floor {
        return Err(fdb + floor - blocks);
    }
    let bit64 = p.force_64bit || blocks > u64::from(u32::MAX);
    let desc_size = if bit64 { 64 } else { 32 };
    let flex = if p.flex_bg { FLEX_GROUPS } else { 1 };
    let ipb = bs / 256;
    let align = ipb.max(8);
    let mut geo = Geometry {
        block_size: bs,
        blocks,
        first_data_block: fdb,
        blocks_per_group: bpg,
        groups: (blocks - fdb).div_ceil(bpg),
        inodes_per_group: 0,
        itable_blocks: 0,
        desc_size,
        gdt_blocks: 0,
        flex,
        sparse_super: p.sparse_super,
        bit64,
    };
    let set_inodes = |geo: &mut Geometry| -> Result<(), u64> {
        geo.gdt_blocks = (geo.groups * desc_size).div_ceil(bs);
        let target = match p.inodes {
            Some(n) => n,
            None => {
                let ratio = p
                    .inode_ratio
                    .unwrap_or_else(|| profile_inode_ratio(geo.blocks * bs));
                (geo.blocks * bs / ratio.max(1024)).max(p.inodes_needed)
            }
        };
        let mut ipg = target.div_ceil(geo.groups).max(16).next_multiple_of(align);
        let cap = 8 * bs;
        if ipg > cap {
            if p.inodes_needed > cap * geo.groups {
                // Each more group brings `cap` inodes.
                let more_groups = (p.inodes_needed - cap * geo.groups).div_ceil(cap);
                return Err(more_groups * bpg);
            }
            ipg = cap;
        }
        if ipg * geo.groups > u64::from(u32::MAX) {
            ipg = (u64::from(u32::MAX) / geo.groups) / align * align;
        }
        geo.inodes_per_group = ipg;
        geo.itable_blocks = ipg * 256 / bs;
        Ok(())
    };
    set_inodes(&mut geo)?;
    let rem = (blocks - fdb) % bpg;
    if rem != 0 && geo.groups > 1 {
        let last = geo.groups - 1;
        let mut own = geo.super_overhead(last);
        if !p.flex_bg {
            own += 2 + geo.itable_blocks;
        }
        if rem < own + LAST_GROUP_SLACK {
            geo.blocks -= rem;
            geo.groups -= 1;
            set_inodes(&mut geo)?;
        }
    }
    Ok(geo)
}

impl Layout {
    fn is_used(&self, b: u64) -> bool {
        self.used[(b / 64) as usize] & (1 << (b % 64)) != 0
    }

    fn mark(&mut self, start: u64, len: u64) {
        for b in start..start + len {
            self.used[(b / 64) as usize] |= 1 << (b % 64);
        }
    }

    /// The first free block at or after `from`, if any.
    fn next_free(&self, from: u64) -> Option<u64> {
        let mut b = from;
        while b < self.geo.blocks {
            let word = self.used[(b / 64) as usize] >> (b % 64);
            if word == u64::MAX >> (b % 64) {
                b = (b / 64 + 1) * 64;
                continue;
            }
            if !self.is_used(b) {
                return Some(b);
            }
            b += 1;
        }
        None
    }

    /// A run of `n` contiguous free blocks at or after `from`.
    fn find_run(&self, from: u64, n: u64) -> Option<u64> {
        let mut start = self.next_free(from)?;
        loop {
            let mut len = 0;
            while len < n && start + len < self.geo.blocks && !self.is_used(start + len) {
                len += 1;
            }
            if len == n {
                return Some(start);
            }
            start = self.next_free(start + len)?;
        }
    }

    /// The start of the smallest free run of at least `n` blocks at or
    /// after `from` (the lowest of equal ones): best fit, so that small
    /// files fill the small holes removed and shrunk files leave.
    fn best_run(&self, from: u64, n: u64) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        let mut at = self.next_free(from);
        while let Some(start) = at {
            let mut len = 0;
            while start + len < self.geo.blocks && !self.is_used(start + len) {
                len += 1;
            }
            if len >= n && best.is_none_or(|(_, l)| len < l) {
                best = Some((start, len));
                if len == n {
                    break;
                }
            }
            at = self.next_free(start + len);
        }
        best.map(|(start, _)| start)
    }

    /// Allocates `n` blocks from the cursor as runs, recording any shortfall.
    fn alloc(&mut self, n: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut left = n;
        while left > 0 {
            let Some(start) = self.next_free(self.cursor) else {
                self.shortfall += left;
                break;
            };
            let mut len = 0;
            while len < left && start + len < self.geo.blocks && !self.is_used(start + len) {
                len += 1;
            }
            self.mark(start, len);
            self.cursor = start + len;
            out.push((start, len));
            left -= len;
        }
        out
    }

    /// Used blocks in group `g`.
    pub fn group_used(&self, g: u64) -> u64 {
        let start = self.geo.group_start(g);
        let n = self.geo.group_blocks(g);
        if start % 64 == 0 && n % 64 == 0 {
            let w = &self.used[(start / 64) as usize..((start + n) / 64) as usize];
            return w.iter().map(|x| u64::from(x.count_ones())).sum();
        }
        (start..start + n).filter(|&b| self.is_used(b)).count() as u64
    }

    /// Free blocks in the whole filesystem.
    pub fn free_blocks(&self) -> u64 {
        // Bits past the end are set, so the zero bits are the free blocks.
        self.used.iter().map(|w| u64::from(w.count_zeros())).sum()
    }

    /// The block bitmap of group `g` (one block, padding bits set).
    pub fn block_bitmap(&self, g: u64) -> Vec<u8> {
        let bs = self.geo.block_size as usize;
        let start = self.geo.group_start(g);
        let n = self.geo.group_blocks(g);
        if start % 64 == 0 {
            // Bit i of the bitmap is bit i % 8 of byte i / 8: the
            // little-endian bytes of the words. Past the last block the
            // words' padding bits are set; past the last word, 0xFF.
            let mut out = vec![0xFFu8; bs];
            let first = (start / 64) as usize;
            let last = (start + n).div_ceil(64) as usize;
            for (k, w) in self.used[first..last].iter().enumerate() {
                out[k * 8..k * 8 + 8].copy_from_slice(&w.to_le_bytes());
            }
            return out;
        }
        let mut out = vec![0u8; bs];
        for i in 0..(8 * bs as u64) {
            if i >= n || self.is_used(start + i) {
                out[(i / 8) as usize] |= 1 << (i % 8);
            }
        }
        out
    }
}

/// Lays out a filesystem of `blocks` blocks holding `need`; `places`
/// (parallel to `need`) are where the inodes lay in the previous release.
pub fn plan(
    p: &Params,
    blocks: u64,
    need: &[InodeNeed],
    places: Option<&[Option<Place>]>,
) -> Result<Layout, u64> {
    let geo = geometry(p, blocks)?;
    let words = geo.blocks.div_ceil(64) as usize;
    // Bits past the end stay set, so allocation never goes there.
    let mut used = vec![0u64; words];
    if geo.blocks % 64 != 0 {
        used[words - 1] = !0u64 << (geo.blocks % 64);
    }
    let mut l = Layout {
        used,
        groups: vec![GroupMeta::default(); geo.groups as usize],
        journal: Vec::new(),
        journal_tree: Vec::new(),
        journal_blocks: 0,
        inodes: Vec::with_capacity(need.len()),
        reserved_blocks: 0,
        shortfall: 0,
        cursor: 0,
        geo,
    };
    // Boot block of 1 KiB-block filesystems, superblocks and descriptors.
    l.mark(0, l.geo.first_data_block);
    for g in 0..l.geo.groups {
        let n = l.geo.super_overhead(g);
        l.mark(l.geo.group_start(g), n);
    }
    // Bitmaps and inode tables, per flex group.
    let itb = l.geo.itable_blocks;
    for f in (0..l.geo.groups).step_by(l.geo.flex as usize) {
        let members: Vec<u64> = (f..(f + l.geo.flex).min(l.geo.groups)).collect();
        let base = l.geo.group_start(f);
        let place = |l: &mut Layout, n: u64, g: u64| -> u64 {
            match l.find_run(base, n) {
                Some(b)
                    if l.geo.flex > 1 || b + n <= l.geo.group_start(g) + l.geo.group_blocks(g) =>
                {
                    l.mark(b, n);
                    b
                }
                _ => {
                    l.shortfall += n;
                    0
                }
            }
        };
        for &g in &members {
            l.groups[g as usize].block_bitmap = place(&mut l, 1, g);
        }
        for &g in &members {
            l.groups[g as usize].inode_bitmap = place(&mut l, 1, g);
        }
        for &g in &members {
            l.groups[g as usize].inode_table = place(&mut l, itb, g);
        }
    }
    // The journal, contiguous when possible.
    let jblocks = match p.journal {
        JournalBlocks::None => 0,
        JournalBlocks::Default => default_journal_blocks(l.geo.blocks),
        JournalBlocks::Exactly(n) => n,
    };
    l.journal_blocks = jblocks;
    if jblocks > 0 {
        let start = l.find_run(0, jblocks);
        if let Some(s) = start {
            l.cursor = s;
        }
        let runs = l.alloc(jblocks);
        l.journal = extents_from_runs(0, &runs);
        let tree = extent_tree_blocks(l.journal.len() as u64, l.geo.extent_per_block());
        for (s, len) in l.alloc(tree) {
            l.journal_tree.extend(s..s + len);
        }
    }
    l.cursor = 0;
    match places {
        None => l.place_in_order(need),
        Some(places) => l.place_stable(need, places),
    }
    let pct = p.reserved_percent.clamp(0.0, 50.0);
    l.reserved_blocks = (l.geo.blocks as f64 * pct / 100.0) as u64;
    let free = l.free_blocks();
    if free < l.reserved_blocks {
        l.shortfall += l.reserved_blocks - free;
    }
    if l.shortfall > 0 {
        return Err(l.shortfall);
    }
    Ok(l)
}

impl Layout {
    /// Content in inode order from one forward cursor (no reference).
    fn place_in_order(&mut self, need: &[InodeNeed]) {
        for n in need {
            let mut a = InodeAlloc::default();
            for &(lstart, count) in &n.ranges {
                let runs = self.alloc(count);
                a.extents.extend(extents_from_runs(lstart, &runs));
            }
            self.alloc_tree_and_xattr(n, &mut a);
            self.inodes.push(a);
        }
    }

    /// Extent tree and attribute blocks of `a`, from the cursor.
    fn alloc_tree_and_xattr(&mut self, n: &InodeNeed, a: &mut InodeAlloc) {
        if a.tree.is_empty() {
            let tree = extent_tree_blocks(a.extents.len() as u64, self.geo.extent_per_block());
            for (s, len) in self.alloc(tree) {
                a.tree.extend(s..s + len);
            }
        }
        if n.xattr_block {
            a.xattr = self.alloc(1).first().map(|r| r.0);
        }
    }

    /// Whether the runs (start, length) are free and do not overlap each
    /// other (a corrupt reference could name a block twice).
    fn claimable(&self, runs: impl Iterator<Item = (u64, u64)>) -> bool {
        let mut runs: Vec<(u64, u64)> = runs.collect();
        runs.sort_unstable();
        runs.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0)
            && runs.iter().all(|&(start, len)| {
                start.saturating_add(len) <= self.geo.blocks
                    && (start..start + len).all(|b| !self.is_used(b))
            })
    }

    /// Content with the previous release's places (module doc).
    fn place_stable(&mut self, need: &[InodeNeed], places: &[Option<Place>]) {
        let per = self.geo.extent_per_block();
        let mut done: Vec<Option<InodeAlloc>> = vec![None; need.len()];
        // Unchanged inodes first, then changed ones that fit their old blocks.
        for keep in [true, false] {
            for (i, (n, place)) in need.iter().zip(places).enumerate() {
                let a = match place {
                    Some(Place::Keep { extents, tree }) if keep => {
                        if !self.claimable(extents.iter().map(|e| (e.pblk, e.len))) {
                            continue;
                        }
                        for e in extents {
                            self.mark(e.pblk, e.len);
                        }
                        // The tree blocks too, when the tree has the shape
                        // this writer gives those extents.
                        let shape = extent_tree_blocks(extents.len() as u64, per);
                        let mut a = InodeAlloc {
                            extents: extents.clone(),
                            ..Default::default()
                        };
                        if tree.len() as u64 == shape
                            && self.claimable(tree.iter().map(|&b| (b, 1)))
                        {
                            for &b in tree {
                                self.mark(b, 1);
                            }
                            a.tree = tree.clone();
                        }
                        a
                    }
                    Some(Place::Prefer(old)) if !keep => {
                        let count: u64 = n.ranges.iter().map(|r| r.1).sum();
                        let Some(old) = old.get(..count as usize) else {
                            continue;
                        };
                        if !self.claimable(old.iter().map(|&b| (b, 1))) {
                            continue;
                        }
                        let mut a = InodeAlloc::default();
                        let mut next = old.iter().copied();
                        for &(lstart, count) in &n.ranges {
                            let mut runs: Vec<(u64, u64)> = Vec::new();
                            for b in next.by_ref().take(count as usize) {
                                self.mark(b, 1);
                                match runs.last_mut() {
                                    Some(r) if r.0 + r.1 == b => r.1 += 1,
                                    _ => runs.push((b, 1)),
                                }
                            }
                            a.extents.extend(extents_from_runs(lstart, &runs));
                        }
                        a
                    }
                    _ => continue,
                };
                done[i] = Some(a);
            }
        }
        // Everything else, in inode order: the smallest free run that holds
        // the data whole, else first fit in pieces; tree and attribute
        // blocks first fit. Blocks are only taken here, so the search starts at the
        // lowest free block, which only moves up.
        let mut low = 0;
        for (n, a) in need.iter().zip(done.iter_mut()) {
            low = self.next_free(low).unwrap_or(self.geo.blocks);
            let mut alloc = match a.take() {
                Some(a) => a,
                None => {
                    let count: u64 = n.ranges.iter().map(|r| r.1).sum();
                    self.cursor = self.best_run(low, count).unwrap_or(low);
                    let mut a = InodeAlloc::default();
                    for &(lstart, count) in &n.ranges {
                        let runs = self.alloc(count);
                        a.extents.extend(extents_from_runs(lstart, &runs));
                    }
                    a
                }
            };
            self.cursor = low;
            self.alloc_tree_and_xattr(n, &mut alloc);
            self.inodes.push(alloc);
        }
    }
}

/// Extents for consecutive runs starting at logical block `lstart`, split
/// at the longest extent length.
fn extents_from_runs(lstart: u64, runs: &[(u64, u64)]) -> Vec<Ext> {
    let mut out = Vec::new();
    let mut lblk = lstart;
    for &(pblk, len) in runs {
        let mut off = 0;
        while off < len {
            let n = (len - off).min(u64::from(EXTENT_MAX_LEN));
            out.push(Ext {
                lblk: lblk + off,
                pblk: pblk + off,
                len: n,
            });
            off += n;
        }
        lblk += len;
    }
    out
}

/// The smallest block count whose layout fits `need`, searching up from
/// `start` by the reported shortfall, then down by bisection.
pub fn min_blocks(p: &Params, need: &[InodeNeed], start: u64) -> u64 {
    let mut lo = start.max(1);
    let mut hi = lo;
    let mut last_fail = None;
    loop {
        match plan(p, hi, need, None) {
            Ok(_) => break,
            Err(short) => {
                last_fail = Some(hi);
                // Grow by the shortfall: the metadata the growth brings comes
                // back as a small shortfall of the next try, so the last
                // step, which the search below bisects, stays small.
                hi += short.max(1);
            }
        }
    }
    if let Some(f) = last_fail {
        lo = f;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if plan(p, mid, need, None).is_ok() {
                hi = mid;
            } else {
                lo = mid;
            }
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params {
            block_size: 4096,
            sparse_super: true,
            flex_bg: true,
            force_64bit: false,
            inode_ratio: Some(16384),
            inodes: None,
            reserved_percent: 0.0,
            journal: JournalBlocks::Default,
            inodes_needed: 11,
        }
    }

    #[test]
    fn sparse_super_backups_go_to_powers_of_3_5_7() {
        let geo = geometry(&params(), 32768 * 50).unwrap();
        let with: Vec<u64> = (0..geo.groups).filter(|&g| geo.has_super(g)).collect();
        assert_eq!(with, [0, 1, 3, 5, 7, 9, 25, 27, 49]);
    }

    #[test]
    fn a_sliver_of_a_last_group_is_dropped() {
        let geo = geometry(&params(), 32768 * 3 + 10).unwrap();
        assert_eq!((geo.groups, geo.blocks), (3, 32768 * 3));
    }

    #[test]
    fn min_blocks_is_minimal_and_fits() {
        let need = vec![
            InodeNeed {
                ranges: vec![(0, 5000)],
                xattr_block: false,
            };
            3
        ];
        let p = params();
        let n = min_blocks(&p, &need, 100);
        assert!(plan(&p, n, &need, None).is_ok());
        assert!(plan(&p, n - 1, &need, None).is_err());
    }

    #[test]
    fn stable_places_keep_fit_and_fill_best_fit() {
        let p = params();
        let need = |n| InodeNeed {
            ranges: vec![(0, n)],
            xattr_block: false,
        };
        let first = plan(&p, 8192, &[need(10), need(10), need(10)], None).unwrap();
        let at: Vec<u64> = first.inodes.iter().map(|a| a.extents[0].pblk).collect();
        assert_eq!((at[1], at[2]), (at[0] + 10, at[0] + 20));
        // Inode 0 unchanged, 1 shrunk to 4 blocks, 2 grown to 12, 3 new.
        let prefer = |b: u64| Some(Place::Prefer((b..b + 10).collect()));
        let places = [
            Some(Place::Keep {
                extents: first.inodes[0].extents.clone(),
                tree: vec![],
            }),
            prefer(at[1]),
            prefer(at[2]),
            None,
        ];
        let l = plan(
            &p,
            8192,
            &[need(10), need(4), need(12), need(6)],
            Some(&places),
        )
        .unwrap();
        let got: Vec<(u64, u64)> = l
            .inodes
            .iter()
            .map(|a| (a.extents[0].pblk, a.extents[0].len))
            .collect();
        // The grown file takes the first free run that holds it (the shrunk
        // file's tail and its own old blocks), the new one what follows.
        assert_eq!(
            got,
            [(at[0], 10), (at[1], 4), (at[1] + 4, 12), (at[2] + 6, 6)]
        );
        assert!(l.inodes.iter().all(|a| a.extents.len() == 1));
        // A kept place that collides with metadata falls back to free space.
        let clash = [Some(Place::Keep {
            extents: vec![Ext {
                lblk: 0,
                pblk: 0,
                len: 10,
            }],
            tree: vec![],
        })];
        let l = plan(&p, 8192, &[need(10)], Some(&clash)).unwrap();
        assert_ne!(l.inodes[0].extents[0].pblk, 0);
    }

    #[test]
    fn tree_block_counts() {
        assert_eq!(extent_tree_blocks(4, 340), 0);
        assert_eq!(extent_tree_blocks(5, 340), 1);
        assert_eq!(extent_tree_blocks(340 * 4, 340), 4);
        assert_eq!(extent_tree_blocks(340 * 4 + 1, 340), 6);
    }
}
