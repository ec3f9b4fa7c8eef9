//! Directory blocks: linear directories and hashed (htree) indexes.
//!
//! A directory whose entries fit in one block is a single linear block
//! (`.`, `..`, entries in name order). A larger one becomes an htree when
//! `dir_index` is on (as the kernel would make it on its first split): a
//! `dx_root` block, one level of `dx_node` blocks if the root cannot point
//! at every leaf, and leaf blocks holding the entries in hash order. Without
//! `dir_index` large directories stay linear. Layout per
//! `Documentation/filesystems/ext4/directory.rst`; hashes from `hash.rs`.
//! With metadata_csum each leaf ends with a 12-byte checksum tail and each
//! index block with a `dx_tail`.
//!
//! Rejected: three-level trees (`largedir`), not needed below ~100 million
//! entries per directory at 4 KiB blocks, and unreadable by older kernels.

use super::hash::dx_hash;
use super::ondisk::{crc32c_raw, FT_DIR, FT_DIR_CSUM, HASH_HALF_MD4};
use anyhow::bail;

/// One entry of a directory (besides `.` and `..`).
pub struct DirEntry<'a> {
    pub name: &'a [u8],
    pub ino: u32,
    pub file_type: u8,
}

/// What a directory's blocks need to be built.
pub struct DirParams<'a> {
    pub block_size: usize,
    pub ino: u32,
    pub parent: u32,
    /// Per-inode checksum seed when metadata_csum is on.
    pub csum_seed: Option<u32>,
    /// Build an htree when the directory needs more than one block.
    pub dir_index: bool,
    pub hash_seed: &'a [u8; 16],
    /// Pad with empty blocks up to this many (lost+found).
    pub min_blocks: usize,
}

/// Size of the checksum tail at the end of leaf blocks.
const DIRENT_TAIL: usize = 12;
/// Size of `dx_tail` after the index entries.
const DX_TAIL: usize = 8;
/// Offset of the count/limit header in a dx_root block.
const DX_ROOT_COUNT_OFFSET: usize = 32;
/// Offset of the count/limit header in a dx_node block.
const DX_NODE_COUNT_OFFSET: usize = 8;

fn rec_len(name_len: usize) -> usize {
    (8 + name_len + 3) & !3
}

fn put_dirent(block: &mut [u8], at: usize, ino: u32, rec: usize, name: &[u8], ft: u8) {
    block[at..at + 4].copy_from_slice(&ino.to_le_bytes());
    block[at + 4..at + 6].copy_from_slice(&(rec as u16).to_le_bytes());
    block[at + 6] = name.len() as u8;
    block[at + 7] = ft;
    block[at + 8..at + 8 + name.len()].copy_from_slice(name);
}

/// Builds the blocks of a directory; returns them concatenated and whether
/// the directory is hash-indexed.
pub fn build(p: &DirParams<'_>, entries: &[DirEntry<'_>]) -> anyhow::Result<(Vec<u8>, bool)> {
    for e in entries {
        if e.name.is_empty() || e.name.len() > 255 {
            bail!(
                "file name '{}' is {} bytes long; ext4 allows 1 to 255",
                String::from_utf8_lossy(e.name),
                e.name.len()
            );
        }
    }
    let bs = p.block_size;
    let usable = bs
        - if p.csum_seed.is_some() {
            DIRENT_TAIL
        } else {
            0
        };
    let dots = rec_len(1) + rec_len(2);
    let total: usize = dots + entries.iter().map(|e| rec_len(e.name.len())).sum::<usize>();
    if total <= usable || !p.dir_index {
        let mut leaves = pack_leaves(p, entries.iter(), true);
        while leaves.len() < p.min_blocks {
            leaves.push(empty_leaf(p));
        }
        return Ok((leaves.concat(), false));
    }
    // Hashed: entries in (hash, minor hash, name) order.
    let mut hashed: Vec<(u32, u32, &DirEntry<'_>)> = entries
        .iter()
        .map(|e| {
            let (h, m) = dx_hash(e.name, p.hash_seed);
            (h, m, e)
        })
        .collect();
    hashed.sort_by(|a, b| (a.0, a.1, a.2.name).cmp(&(b.0, b.1, b.2.name)));
    // Pack leaves, remembering the first hash of each.
    let mut leaves: Vec<Vec<u8>> = Vec::new();
    let mut starts: Vec<u32> = Vec::new();
    let mut cur: Vec<&DirEntry<'_>> = Vec::new();
    let mut used = 0;
    let mut prev_hash = None;
    let mut first_hash = 0;
    for (h, _, e) in &hashed {
        let need = rec_len(e.name.len());
        if used + need > usable {
            leaves.push(leaf_block(p, &cur, false));
            starts.push(first_hash);
            cur.clear();
            used = 0;
        }
        if cur.is_empty() {
            // A leaf continuing a run of equal hashes is marked with the
            // collision bit (hashes are otherwise even).
            first_hash = if prev_hash == Some(*h) { h | 1 } else { *h };
        }
        cur.push(e);
        used += need;
        prev_hash = Some(*h);
    }
    leaves.push(leaf_block(p, &cur, false));
    starts.push(first_hash);

    let csum = if p.csum_seed.is_some() { DX_TAIL } else { 0 };
    let root_limit = (bs - DX_ROOT_COUNT_OFFSET - csum) / 8;
    let node_limit = (bs - DX_NODE_COUNT_OFFSET - csum) / 8;
    let n = leaves.len();
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    if n <= root_limit {
        // Block 0 root, leaves from block 1.
        let ptrs: Vec<(u32, u32)> = (0..n).map(|i| (starts[i], (i + 1) as u32)).collect();
        blocks.push(dx_root(p, 0, root_limit, &ptrs));
        blocks.extend(leaves);
    } else {
        let nodes = n.div_ceil(node_limit);
        if nodes > root_limit {
            bail!(
                "it has {} entries, more than a two-level hash index holds at {}-byte blocks; use a larger block size ('block-size: 4096'), split the directory, or index no directory ('features: [^dir_index]', slower lookups)",
                entries.len(),
                bs
            );
        }
        // Block 0 root, blocks 1..=nodes index nodes, then leaves.
        let first_leaf = 1 + nodes;
        let mut root_ptrs = Vec::new();
        let mut node_blocks = Vec::new();
        for k in 0..nodes {
            let lo = k * node_limit;
            let hi = ((k + 1) * node_limit).min(n);
            let ptrs: Vec<(u32, u32)> = (lo..hi)
                .map(|i| (starts[i], (first_leaf + i) as u32))
                .collect();
            root_ptrs.push((starts[lo], (1 + k) as u32));
            node_blocks.push(dx_node(p, node_limit, &ptrs));
        }
        blocks.push(dx_root(p, 1, root_limit, &root_ptrs));
        blocks.extend(node_blocks);
        blocks.extend(leaves);
    }
    Ok((blocks.concat(), true))
}

/// Packs entries into linear leaf blocks; the first starts with `.`/`..`.
fn pack_leaves<'e>(
    p: &DirParams<'_>,
    entries: impl Iterator<Item = &'e DirEntry<'e>>,
    dots: bool,
) -> Vec<Vec<u8>> {
    let usable = p.block_size
        - if p.csum_seed.is_some() {
            DIRENT_TAIL
        } else {
            0
        };
    let mut out = Vec::new();
    let mut cur: Vec<&DirEntry<'_>> = Vec::new();
    let mut used = if dots { rec_len(1) + rec_len(2) } else { 0 };
    let mut first = dots;
    for e in entries {
        let need = rec_len(e.name.len());
        if used + need > usable {
            out.push(leaf_block(p, &cur, first));
            first = false;
            cur.clear();
            used = 0;
        }
        cur.push(e);
        used += need;
    }
    out.push(leaf_block(p, &cur, first));
    out
}

fn empty_leaf(p: &DirParams<'_>) -> Vec<u8> {
    leaf_block(p, &[], false)
}

/// One leaf block: optional dots, the entries, the last one stretched to the
/// end of the usable space, then the checksum tail.
fn leaf_block(p: &DirParams<'_>, entries: &[&DirEntry<'_>], dots: bool) -> Vec<u8> {
    let bs = p.block_size;
    let usable = bs
        - if p.csum_seed.is_some() {
            DIRENT_TAIL
        } else {
            0
        };
    let mut b = vec![0u8; bs];
    let mut list: Vec<(u32, &[u8], u8)> = Vec::new();
    if dots {
        list.push((p.ino, b".", FT_DIR));
        list.push((p.parent, b"..", FT_DIR));
    }
    list.extend(entries.iter().map(|e| (e.ino, e.name, e.file_type)));
    if list.is_empty() {
        // An empty block: one unused entry spanning it.
        put_dirent(&mut b, 0, 0, usable, b"", 0);
    }
    let mut at = 0;
    for (i, (ino, name, ft)) in list.iter().enumerate() {
        let rec = if i + 1 == list.len() {
            usable - at
        } else {
            rec_len(name.len())
        };
        put_dirent(&mut b, at, *ino, rec, name, *ft);
        at += rec;
    }
    if let Some(seed) = p.csum_seed {
        let tail = usable;
        b[tail + 4..tail + 6].copy_from_slice(&(DIRENT_TAIL as u16).to_le_bytes());
        b[tail + 7] = FT_DIR_CSUM;
        let c = crc32c_raw(seed, &b[..tail]);
        b[tail + 8..tail + 12].copy_from_slice(&c.to_le_bytes());
    }
    b
}

/// Writes count/limit and (hash, block) entries at `off`, then the dx tail.
fn put_dx_entries(p: &DirParams<'_>, b: &mut [u8], off: usize, limit: usize, ptrs: &[(u32, u32)]) {
    b[off..off + 2].copy_from_slice(&(limit as u16).to_le_bytes());
    b[off + 2..off + 4].copy_from_slice(&(ptrs.len() as u16).to_le_bytes());
    for (i, (hash, block)) in ptrs.iter().enumerate() {
        let e = off + i * 8;
        // The first entry's hash slot holds count/limit; its hash is 0.
        if i > 0 {
            b[e..e + 4].copy_from_slice(&hash.to_le_bytes());
        }
        b[e + 4..e + 8].copy_from_slice(&block.to_le_bytes());
    }
    if let Some(seed) = p.csum_seed {
        let tail = off + limit * 8;
        let c = crc32c_raw(seed, &b[..off + ptrs.len() * 8]);
        // dt_reserved (4 zero bytes) then the checksum field as zero.
        let c = crc32c_raw(c, &[0u8; 8]);
        b[tail + 4..tail + 8].copy_from_slice(&c.to_le_bytes());
    }
}

fn dx_root(p: &DirParams<'_>, levels: u8, limit: usize, ptrs: &[(u32, u32)]) -> Vec<u8> {
    let bs = p.block_size;
    let mut b = vec![0u8; bs];
    put_dirent(&mut b, 0, p.ino, 12, b".", FT_DIR);
    put_dirent(&mut b, 12, p.parent, bs - 12, b"..", FT_DIR);
    // dx_root_info: reserved_zero (4), hash_version, info_length, levels, flags.
    b[28] = HASH_HALF_MD4;
    b[29] = 8;
    b[30] = levels;
    put_dx_entries(p, &mut b, DX_ROOT_COUNT_OFFSET, limit, ptrs);
    b
}

fn dx_node(p: &DirParams<'_>, limit: usize, ptrs: &[(u32, u32)]) -> Vec<u8> {
    let bs = p.block_size;
    let mut b = vec![0u8; bs];
    // A fake empty entry spanning the block hides the index from readers
    // that do not know htrees.
    b[4..6].copy_from_slice(&(bs as u16).to_le_bytes());
    put_dx_entries(p, &mut b, DX_NODE_COUNT_OFFSET, limit, ptrs);
    b
}
