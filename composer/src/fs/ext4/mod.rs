//! The native ext4 writer: an ext4 filesystem from a [`Tree`], written in
//! place into its window of the image, without mke2fs, root or mounts.
//!
//! Purpose: root, config, data and overlay partitions. [`prepare`] turns a
//! scanned tree into everything that does not depend on the filesystem size
//! (inode numbers, directory blocks with their checksums, attribute
//! placement, which logical blocks of each file hold data); [`Ext4Fs`]
//! then gives the planner its [`Content::min_size`] and, once the window is
//! known, lays out groups, bitmaps, inode tables, journal and data for the
//! window's size in memory (`layout.rs`) and writes them with large
//! sequential writes (`write.rs`). File data is copied once; holes of source
//! files and blocks of zeros stay holes (found when prepared, read once
//! for it: `input::InputFile::data_blocks`); everything not written (free space, unused
//! inode tables, the journal with [`JournalInit::Lazy`]) stays a hole of the
//! image and unmapped in the bmap, so an empty 4 GiB filesystem costs a few
//! hundred KiB of writes.
//!
//! On-disk format: the kernel's `Documentation/filesystems/ext4/` and
//! e2fsprogs (see `ondisk.rs`). Default features follow mke2fs's `ext4`
//! profile minus what old readers choke on: `has_journal ext_attr dir_index
//! filetype extent flex_bg sparse_super large_file huge_file dir_nlink
//! extra_isize metadata_csum`; `64bit` only when more than 2^32 blocks;
//! no `resize_inode`, `orphan_file` or `inline_data`. Turning
//! `metadata_csum` off (older U-Boot) turns `uninit_bg` on unless it is
//! disabled too. Inodes are 256 bytes; directories are hashed (htree) when
//! they need more than one block; reproducible: UUID and hash seed derive
//! from the image seed and the filesystem's name, times from the tree
//! (clamped to `SOURCE_DATE_EPOCH`), entries in name order.
//!
//! Rejected designs: driving `mke2fs -d` (needs the tree's ownership on
//! disk, i.e. fakeroot, rewrites its own image block by block; see
//! `shared/bench/BASELINE.md`); the `ext4_rs` crate (modifies an existing
//! filesystem only); a block-map (non-extent) layout (ext2/3 only).

mod dir;
mod hash;
mod layout;
mod ondisk;
mod read;
mod write;
mod xattr;

pub use layout::{MAX_JOURNAL_BLOCKS, MIN_JOURNAL_BLOCKS};
/// The fewest inodes an ext4 has: the reserved ones, `/lost+found` (inode
/// 11) included; the description's `inodes:` cannot go below it.
pub const MIN_INODES: u32 = ondisk::FIRST_INO;
pub use layout::profile_inode_ratio;
pub use read::OldFs;

use crate::fs::tree::{new_encode_dev, NodeId, NodeKind, Timestamp, Tree, ROOT};
use crate::fs::{BuildContext, Content, FileSource};
use crate::ids::Uuid;
use crate::input::InputFile;
use crate::output::window::Window;
use crate::units::human;
use anyhow::{anyhow, bail, Context};
use layout::{InodeNeed, JournalBlocks, Params, Place};
use ondisk::*;
use read::OldInode;
use std::collections::HashSet;

/// The resolved feature set of a filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Features {
    pub has_journal: bool,
    pub ext_attr: bool,
    pub dir_index: bool,
    pub flex_bg: bool,
    pub sparse_super: bool,
    pub large_file: bool,
    pub huge_file: bool,
    pub dir_nlink: bool,
    pub metadata_csum: bool,
    /// `uninit_bg` (`gdt_csum`): group descriptor checksums without
    /// metadata_csum; lets unused inode tables stay unwritten.
    pub uninit_bg: bool,
    /// Forces 64bit; it is turned on anyway above 2^32 blocks.
    pub bit64: bool,
}

impl Default for Features {
    fn default() -> Self {
        Features {
            has_journal: true,
            ext_attr: true,
            dir_index: true,
            flex_bg: true,
            sparse_super: true,
            large_file: true,
            huge_file: true,
            dir_nlink: true,
            metadata_csum: true,
            uninit_bg: false,
            bit64: false,
        }
    }
}

/// `EXT4_LINK_MAX`: most links an inode may have; a directory with more
/// subdirectories counts 1 (dir_nlink).
const MAX_LINKS: u32 = 65000;

/// Features this writer always uses; they cannot be disabled.
const REQUIRED_FEATURES: [&str; 4] = ["filetype", "extent", "extents", "extra_isize"];
/// Features that are always off; `^name` is accepted and changes nothing.
const ABSENT_FEATURES: [&str; 4] = ["resize_inode", "orphan_file", "inline_data", "meta_bg"];

impl Features {
    /// Applies a `features: [...]` list (mke2fs `-O` names, `^name` to
    /// disable) to the defaults. Errors name the feature and what is
    /// possible.
    pub fn resolve<S: AsRef<str>>(list: &[S]) -> Result<Features, String> {
        let mut f = Features::default();
        let mut uninit_bg_said = false;
        for item in list {
            let item = item.as_ref().trim();
            let (on, name) = match item.strip_prefix('^') {
                Some(n) => (false, n),
                None => (true, item),
            };
            let slot = match name {
                "has_journal" => &mut f.has_journal,
                "ext_attr" => &mut f.ext_attr,
                "dir_index" => &mut f.dir_index,
                "flex_bg" => &mut f.flex_bg,
                "sparse_super" => &mut f.sparse_super,
                "large_file" => &mut f.large_file,
                "huge_file" => &mut f.huge_file,
                "dir_nlink" => &mut f.dir_nlink,
                "metadata_csum" => &mut f.metadata_csum,
                "uninit_bg" | "gdt_csum" => {
                    uninit_bg_said = true;
                    &mut f.uninit_bg
                }
                "64bit" => &mut f.bit64,
                n if REQUIRED_FEATURES.contains(&n) => {
                    if on {
                        continue;
                    }
                    return Err(format!(
                        "feature '{n}' cannot be disabled: the native ext4 writer always uses it"
                    ));
                }
                n if ABSENT_FEATURES.contains(&n) => {
                    if !on {
                        continue;
                    }
                    return Err(format!("feature '{n}' is not supported by the native ext4 writer"));
                }
                n => {
                    return Err(format!(
                        "unknown or unsupported ext4 feature '{n}'; supported: has_journal, ext_attr, dir_index, flex_bg, sparse_super, large_file, huge_file, dir_nlink, metadata_csum, uninit_bg, 64bit (prefix '^' to disable)"
                    ))
                }
            };
            *slot = on;
        }
        if f.metadata_csum {
            // metadata_csum supersedes the CRC16 descriptor checksums.
            f.uninit_bg = false;
        } else if !uninit_bg_said {
            f.uninit_bg = true;
        }
        Ok(f)
    }

    /// Whether group descriptors carry checksums (and `itable_unused`).
    fn group_csum(&self) -> bool {
        self.metadata_csum || self.uninit_bg
    }
}

/// The journal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Journal {
    /// No journal (`^has_journal`).
    Off,
    /// mke2fs's default size for the filesystem size (4 MiB to 1 GiB).
    #[default]
    Default,
    /// This many bytes (at least 1024 blocks).
    Size(u64),
}

/// How the journal's blocks reach the device.
///
/// The journal superblock says the log is empty, so its other blocks are
/// never read at mount. But after a crash, replay scans forward from the
/// log start and accepts any block that looks like a descriptor of the
/// expected transaction: on reused media, stale journal blocks of an older
/// filesystem can then be replayed as if they were new. Zeroing closes that
/// window; it costs writing the journal's size when flashing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JournalInit {
    /// Journal blocks are mapped as zeros in the bmap: flashing writes them
    /// (safe on reused media; the default, for devices that lose power).
    #[default]
    Zero,
    /// Journal blocks stay unmapped (mke2fs's `lazy_journal_init`): faster
    /// flashing, safe only on media known to read as zeros.
    Lazy,
}

/// Options of one ext4 filesystem.
#[derive(Clone, Debug, PartialEq)]
pub struct Ext4Options {
    /// Names the filesystem in messages and in its derived identifiers.
    pub name: String,
    /// Volume label, at most 16 bytes.
    pub label: String,
    /// Filesystem UUID; derived from the image seed when `None`.
    pub uuid: Option<Uuid>,
    /// Directory hash seed; derived from the image seed when `None`.
    pub hash_seed: Option<Uuid>,
    /// 1024, 2048 or 4096.
    pub block_size: u32,
    pub features: Features,
    pub journal: Journal,
    pub journal_init: JournalInit,
    /// Bytes per inode for the inode count (mke2fs `-i`); `None`: by the
    /// filesystem's size, as mke2fs.conf's profiles (4096 below 512 MiB,
    /// 16384 up to 4 TiB, see [`profile_inode_ratio`]); raised
    /// automatically when the content has more inodes.
    pub inode_ratio: Option<u64>,
    /// Exact inode count (mke2fs `-N`); overrides `inode_ratio`.
    pub inodes: Option<u64>,
    /// Blocks reserved for root, in percent (mke2fs `-m`, default 5).
    pub reserved_percent: f64,
}

impl Default for Ext4Options {
    fn default() -> Self {
        Ext4Options {
            name: "ext4".into(),
            label: String::new(),
            uuid: None,
            hash_seed: None,
            block_size: 4096,
            features: Features::default(),
            journal: Journal::Default,
            journal_init: JournalInit::Zero,
            inode_ratio: None,
            inodes: None,
            reserved_percent: 5.0,
        }
    }
}

/// What an inode's `i_block` holds.
#[derive(Debug)]
enum Body {
    /// An extent tree over `InodeNeed::ranges` (files, directories, slow
    /// symlinks); the data comes from `Data`.
    Extents(Data),
    /// Raw `i_block` bytes (fast symlinks, device numbers, nothing).
    Inline([u8; 60]),
}

#[derive(Debug)]
enum Data {
    /// Directory blocks, concatenated, checksums included.
    Blocks(Vec<u8>),
    File(FileSource),
}

/// One inode, everything but its block locations.
#[derive(Debug)]
struct InodeInfo {
    ino: u32,
    mode: u16,
    uid: u32,
    gid: u32,
    links: u16,
    atime: Timestamp,
    mtime: Timestamp,
    ctime: Timestamp,
    size: u64,
    flags: u32,
    body: Body,
    xattr: xattr::Placed,
    /// `i_crtime` and its extra field when the inode is kept from the
    /// reference (stable placement); else the build time.
    crtime: Option<(u32, u32)>,
}

/// A prepared ext4 filesystem, ready for any window of at least
/// [`Content::min_size`] bytes.
#[derive(Debug)]
pub struct Ext4Fs {
    opts: Ext4Options,
    uuid: Uuid,
    hash_seed: [u8; 16],
    /// `crc32c(~0, uuid)`, the seed of every metadata checksum.
    csum_seed: Option<u32>,
    params: Params,
    /// Inodes 2, 11, 12, ... in inode order.
    inodes: Vec<InodeInfo>,
    /// Parallel to `inodes`.
    needs: Vec<InodeNeed>,
    /// Highest inode number used.
    last_ino: u32,
    time: Timestamp,
    min_blocks: u64,
    /// Where the inodes lay in the reference (`--reference`).
    stable: Option<Stable>,
}

/// Stable placement: the reference's size and each inode's old place.
#[derive(Debug)]
struct Stable {
    /// The reference's block count: another size lays out afresh.
    blocks: u64,
    /// Parallel to `Ext4Fs::inodes`.
    places: Vec<Option<Place>>,
}

/// Inode numbers of the tree's nodes.
struct Numbering {
    /// Per node: root 2, `/lost+found` 11, the rest from 12.
    ino: Vec<u32>,
    /// Nodes but the root and `/lost+found`, in inode order.
    order: Vec<NodeId>,
    lpf_in_tree: bool,
    /// Per node: the number is the one its path had in the reference.
    kept: Vec<bool>,
}

/// Which inodes the tree's nodes get: root 2, `/lost+found` 11, then 12...
/// in breadth-first order per directory (siblings get consecutive numbers).
/// With a reference, a node whose path (its first, for hard links) is in
/// the reference keeps that path's number, and the others take the lowest
/// numbers left, in the same order.
fn number_inodes(tree: &Tree, old: Option<&OldFs>) -> Numbering {
    let mut ino = vec![0u32; tree.len()];
    let mut kept = vec![false; tree.len()];
    ino[ROOT] = ROOT_INO;
    let mut seen = vec![false; tree.len()];
    seen[ROOT] = true;
    let mut lpf_in_tree = false;
    if let NodeKind::Dir { entries } = &tree.node(ROOT).kind {
        if let Some(&lpf) = entries.get(&b"lost+found"[..]) {
            if tree.node(lpf).is_dir() {
                ino[lpf] = LOST_FOUND_INO;
                seen[lpf] = true;
                lpf_in_tree = true;
            }
        }
    }
    let mut taken = HashSet::new();
    if let Some(old) = old {
        kept[ROOT] = true;
        for (path, id) in tree.walk() {
            match old.paths.get(&path) {
                Some(&n) if ino[id] == 0 && n > FIRST_INO && taken.insert(n) => {
                    ino[id] = n;
                    kept[id] = true;
                }
                Some(&LOST_FOUND_INO) if ino[id] == LOST_FOUND_INO => kept[id] = true,
                _ => {}
            }
        }
    }
    let mut order = Vec::new();
    let mut next = FIRST_INO + 1;
    let mut queue = std::collections::VecDeque::from([ROOT]);
    while let Some(d) = queue.pop_front() {
        if let NodeKind::Dir { entries } = &tree.node(d).kind {
            for &c in entries.values() {
                if seen[c] {
                    continue;
                }
                seen[c] = true;
                if ino[c] == 0 {
                    while taken.contains(&next) {
                        next += 1;
                    }
                    ino[c] = next;
                    next += 1;
                }
                order.push(c);
            }
            queue.extend(entries.values().filter(|&&c| tree.node(c).is_dir()));
        }
    }
    order.sort_by_key(|&c| ino[c]);
    Numbering {
        ino,
        order,
        lpf_in_tree,
        kept,
    }
}

/// Whether a file of the new tree has the old inode's content: the same
/// size, the same data blocks and the same bytes (read from both).
fn unchanged(
    old: &OldFs,
    inode: &OldInode,
    source: &FileSource,
    size: u64,
    ranges: &[(u64, u64)],
) -> anyhow::Result<bool> {
    if inode.size != size || inode.unwritten {
        return Ok(false);
    }
    let mut old_ranges: Vec<(u64, u64)> = Vec::new();
    for e in &inode.extents {
        match old_ranges.last_mut() {
            Some(r) if r.0 + r.1 == e.lblk => r.1 += e.len,
            _ => old_ranges.push((e.lblk, e.len)),
        }
    }
    if old_ranges != ranges {
        return Ok(false);
    }
    let bs = old.block_size;
    let input = match source {
        FileSource::Path(p) => Some(InputFile::open(p, size)?),
        FileSource::Bytes(_) => None,
    };
    // Compared in pieces of up to 256 blocks (1 MiB at 4 KiB).
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for e in &inode.extents {
        let mut done = 0;
        while done < e.len {
            let n = (e.len - done).min(256);
            let from = (e.lblk + done) * bs;
            let len = (n * bs).min(size.saturating_sub(from)) as usize;
            a.resize(len, 0);
            b.resize(len, 0);
            old.read_blocks(e.pblk + done, &mut a)?;
            match (&input, source) {
                (Some(f), _) => {
                    use std::os::unix::fs::FileExt;
                    f.file()
                        .read_exact_at(&mut b, from)
                        .context("reading the file")?;
                }
                (None, FileSource::Bytes(bytes)) => {
                    let from = from as usize;
                    match bytes.get(from..from + len) {
                        Some(src) => b.copy_from_slice(src),
                        None => return Ok(false),
                    }
                }
                (None, FileSource::Path(_)) => return Ok(false),
            }
            if a != b {
                return Ok(false);
            }
            done += n;
        }
    }
    if let Some(f) = input {
        f.check_unchanged()?;
    }
    Ok(true)
}

/// Where an inode of the reference goes again: exactly its place when the
/// content is unchanged (`same`), else its old blocks as a preference.
fn old_place(inode: &OldInode, same: bool) -> Option<Place> {
    if same {
        Some(Place::Keep {
            extents: inode.extents.clone(),
            tree: inode.tree.clone(),
        })
    } else if !inode.extents.is_empty() && !inode.unwritten {
        Some(Place::Prefer(inode.blocks().collect()))
    } else {
        None
    }
}

/// The per-inode checksum seed (`ext4_inode_csum_seed`; generation 0).
fn inode_seed(csum_seed: u32, ino: u32) -> u32 {
    let s = crc32c_raw(csum_seed, &ino.to_le_bytes());
    crc32c_raw(s, &0u32.to_le_bytes())
}

/// Logical block ranges (first, count) of a file that hold data, as
/// `mke2fs -d` stores a file: holes of the source and blocks of zeros are
/// not allocated, so a sparse and a dense copy of one content give one
/// filesystem (see `input::InputFile::data_blocks`).
fn data_ranges(source: &FileSource, size: u64, bs: u64) -> anyhow::Result<Vec<(u64, u64)>> {
    match source {
        FileSource::Bytes(bytes) => {
            let mut runs = Vec::new();
            let bs = usize::try_from(bs)?;
            crate::input::push_data_blocks(&mut runs, 0, bytes, bs);
            Ok(runs)
        }
        FileSource::Path(p) => InputFile::open(p, size)?.data_blocks(bs),
    }
}

/// Prepares a filesystem of `tree` (an empty one for `None`).
pub fn prepare(
    opts: &Ext4Options,
    tree: Option<&Tree>,
    ctx: &BuildContext,
) -> anyhow::Result<Ext4Fs> {
    prepare_against(opts, tree, ctx, None)
}

/// [`prepare`] with a `reference`, the previous release's filesystem:
/// unchanged files keep their inodes and blocks, other inodes their
/// numbers (stable placement, docs/ext4.md).
pub fn prepare_against(
    opts: &Ext4Options,
    tree: Option<&Tree>,
    ctx: &BuildContext,
    reference: Option<&OldFs>,
) -> anyhow::Result<Ext4Fs> {
    let name = opts.name.as_str();
    let ctxmsg = || format!("preparing ext4 filesystem '{name}'");
    let bs = u64::from(opts.block_size);
    if ![1024, 2048, 4096].contains(&opts.block_size) {
        bail!(
            "ext4 '{name}': block size {} is not supported; use 1024, 2048 or 4096",
            opts.block_size
        );
    }
    if opts.label.len() > 16 {
        bail!(
            "ext4 '{name}': label '{}' is {} bytes long; ext4 labels hold at most 16",
            opts.label,
            opts.label.len()
        );
    }
    if !(0.0..=50.0).contains(&opts.reserved_percent) {
        bail!(
            "ext4 '{name}': reserved percentage {} must be between 0 and 50",
            opts.reserved_percent
        );
    }
    let mut opts = opts.clone();
    if opts.journal == Journal::Off {
        opts.features.has_journal = false;
    }
    let features = opts.features.clone();
    let journal = if !features.has_journal {
        JournalBlocks::None
    } else {
        match opts.journal {
            Journal::Off => JournalBlocks::None,
            Journal::Default => JournalBlocks::Default,
            Journal::Size(bytes) => {
                let blocks = bytes / bs;
                if blocks < layout::MIN_JOURNAL_BLOCKS {
                    bail!(
                        "ext4 '{name}': journal size {} is below the minimum of {} blocks ({})",
                        human(bytes),
                        layout::MIN_JOURNAL_BLOCKS,
                        human(layout::MIN_JOURNAL_BLOCKS * bs)
                    );
                }
                JournalBlocks::Exactly(blocks)
            }
        }
    };
    let uuid = opts
        .uuid
        .unwrap_or_else(|| ctx.seed.uuid(&["ext4", name, "uuid"]));
    let hash_seed = opts
        .hash_seed
        .unwrap_or_else(|| ctx.seed.uuid(&["ext4", name, "hash_seed"]))
        .0;
    let csum_seed = features.metadata_csum.then(|| crc32c_raw(!0, &uuid.0));
    let time = Timestamp::build_time(ctx);

    let empty;
    let tree = match tree {
        Some(t) => t,
        None => {
            empty = Tree::empty(ctx);
            &empty
        }
    };
    check_lost_found(tree).with_context(ctxmsg)?;
    let reference = reference.filter(|old| {
        let same = old.block_size == bs;
        if !same {
            tracing::warn!(
                "ext4({name}): the reference has {}-byte blocks, this filesystem {bs}: laid out without it",
                old.block_size
            );
        }
        same
    });
    let Numbering {
        ino: inos,
        order,
        lpf_in_tree,
        kept,
    } = number_inodes(tree, reference);
    let path_of = |id: NodeId| node_path(tree, id);
    let mut large_file_needed = false;
    let links = tree.link_counts();
    let last_ino = order.last().map_or(FIRST_INO, |&n| inos[n]);
    let parents = parents(tree);
    let mut inodes = Vec::with_capacity(order.len() + 2);
    let mut needs = Vec::with_capacity(order.len() + 2);
    // With a reference: each inode's old place, and the files whose
    // content is to be compared with the old one (index, node, old inode).
    let mut places: Vec<Option<Place>> = Vec::new();
    let mut compare: Vec<(usize, NodeId, &OldInode)> = Vec::new();
    let old_inode = |ino: u32, node: Option<NodeId>| {
        let kept = node.is_none_or(|n| kept[n]);
        reference
            .filter(|_| kept)
            .and_then(|old| old.inodes.get(&ino))
    };
    // Which blocks of each regular file hold data: every file is read here
    // (its data segments), on all cores, so that blocks of zeros are holes
    // whether the source stored them or not.
    let files: Vec<NodeId> = order
        .iter()
        .copied()
        .filter(|&n| matches!(tree.node(n).kind, NodeKind::File { .. }))
        .collect();
    let file_ranges = crate::fs::parallel::map(&files, |&n| match &tree.node(n).kind {
        NodeKind::File { source, size, .. } => {
            data_ranges(source, *size, bs).with_context(|| format!("reading '{}'", path_of(n)))
        }
        _ => Ok(Vec::new()),
    })
    .with_context(ctxmsg)?;
    let mut file_ranges: std::collections::HashMap<NodeId, Vec<(u64, u64)>> =
        files.into_iter().zip(file_ranges).collect();

    // Nodes in inode order: root, lost+found (from the tree or made), rest.
    let lpf_node = match &tree.node(ROOT).kind {
        NodeKind::Dir { entries } => entries
            .get(&b"lost+found"[..])
            .copied()
            .filter(|&n| inos[n] == LOST_FOUND_INO),
        _ => None,
    };
    let mut list: Vec<(u32, Option<NodeId>)> =
        vec![(ROOT_INO, Some(ROOT)), (LOST_FOUND_INO, lpf_node)];
    list.extend(
        order
            .iter()
            .filter(|&&n| inos[n] != LOST_FOUND_INO)
            .map(|&n| (inos[n], Some(n))),
    );
    let dir_params = |ino: u32, parent: u32, min_blocks: usize| dir::DirParams {
        block_size: bs as usize,
        ino,
        parent,
        csum_seed: csum_seed.map(|s| inode_seed(s, ino)),
        dir_index: features.dir_index,
        hash_seed: &hash_seed,
        min_blocks,
    };
    // lost+found is made 16 KiB (at least 2 blocks) so e2fsck can reconnect
    // files without allocating, as mke2fs does.
    let lpf_blocks = (16384 / bs as usize).max(2);
    for (ino, node_id) in list {
        let old = old_inode(ino, node_id);
        places.push(old.and_then(|o| old_place(o, false)));
        let Some(id) = node_id else {
            // lost+found made here.
            let (blocks, _) = dir::build(&dir_params(ino, ROOT_INO, lpf_blocks), &[])?;
            let n = (blocks.len() as u64) / bs;
            inodes.push(InodeInfo {
                ino,
                mode: 0o040_700,
                uid: 0,
                gid: 0,
                links: 2,
                atime: time,
                mtime: time,
                ctime: time,
                size: blocks.len() as u64,
                flags: EXTENTS_FL,
                body: Body::Extents(Data::Blocks(blocks)),
                xattr: xattr::Placed::default(),
                crtime: old.map(|o| o.crtime),
            });
            needs.push(InodeNeed {
                ranges: vec![(0, n)],
                xattr_block: false,
            });
            continue;
        };
        let node = tree.node(id);
        let placed = if features.ext_attr {
            xattr::place(&node.xattrs, bs as usize)
        } else if node.xattrs.is_empty() {
            Ok(xattr::Placed::default())
        } else {
            Err(anyhow!("extended attributes need the ext_attr feature"))
        }
        .with_context(|| format!("placing extended attributes of '{}'", path_of(id)))
        .with_context(ctxmsg)?;
        let mut link_count = links[id];
        if !node.is_dir() && link_count > MAX_LINKS {
            bail!(
                "ext4 '{name}': '{}' has {link_count} hard links; ext4 allows {MAX_LINKS}: make some of them copies or symlinks",
                path_of(id)
            );
        }
        if node.is_dir() && link_count >= MAX_LINKS {
            if !features.dir_nlink {
                bail!(
                    "ext4 '{name}': directory '{}' has {} subdirectories, more than ext4 counts without dir_nlink ({}); enable the feature (remove '^dir_nlink' from 'features')",
                    path_of(id),
                    link_count - 2,
                    MAX_LINKS - 2
                );
            }
            link_count = 1;
        }
        let mut flags = 0;
        let mut ranges = Vec::new();
        let (body, size) = match &node.kind {
            NodeKind::Dir { entries } => {
                let mut list: Vec<dir::DirEntry<'_>> = entries
                    .iter()
                    .map(|(n, &c)| dir::DirEntry {
                        name: n.as_slice(),
                        ino: inos[c],
                        file_type: tree.node(c).kind.dirent_type(),
                    })
                    .collect();
                if id == ROOT && !lpf_in_tree {
                    let pos = list
                        .binary_search_by(|e| e.name.cmp(b"lost+found"))
                        .unwrap_or_else(|p| p);
                    list.insert(
                        pos,
                        dir::DirEntry {
                            name: b"lost+found",
                            ino: LOST_FOUND_INO,
                            file_type: FT_DIR,
                        },
                    );
                    link_count += 1;
                }
                let parent = if id == ROOT {
                    ROOT_INO
                } else {
                    // The first directory naming this one (directories have one).
                    parents[id].map(|p| inos[p]).unwrap_or(ROOT_INO)
                };
                let min = if ino == LOST_FOUND_INO { lpf_blocks } else { 1 };
                let (blocks, indexed) = dir::build(&dir_params(ino, parent, min), &list)
                    .with_context(|| format!("building directory '{}'", path_of(id)))
                    .with_context(ctxmsg)?;
                flags = EXTENTS_FL | if indexed { INDEX_FL } else { 0 };
                ranges.push((0, blocks.len() as u64 / bs));
                let size = blocks.len() as u64;
                (Body::Extents(Data::Blocks(blocks)), size)
            }
            NodeKind::File { source, size, .. } => {
                let max = (1u64 << 32) * bs;
                if *size > max {
                    bail!(
                        "ext4 '{name}': '{}' ({}) exceeds the largest file at {bs}-byte blocks ({}); use a larger block size",
                        path_of(id),
                        human(*size),
                        human(max)
                    );
                }
                if *size > LARGE_FILE_BYTES && !features.large_file && !large_file_needed {
                    // What mke2fs -d (libext2fs) and the kernel do when such
                    // a file is written: the flag follows the content.
                    tracing::warn!(
                        "ext4({name}): '{}' is larger than 2 GiB: turning the large_file feature on",
                        path_of(id)
                    );
                    large_file_needed = true;
                }
                flags = EXTENTS_FL;
                ranges = file_ranges.remove(&id).unwrap_or_default();
                if let Some(o) = old.filter(|o| o.mode & 0o170_000 == 0o100_000) {
                    compare.push((inodes.len(), id, o));
                }
                (Body::Extents(Data::File(source.clone())), *size)
            }
            NodeKind::Symlink { target } => {
                if target.is_empty() || target.len() >= bs as usize {
                    bail!(
                        "ext4 '{name}': the target of symlink '{}' is {} bytes long; ext4 holds 1 to {} bytes at this block size",
                        path_of(id),
                        target.len(),
                        bs - 1
                    );
                }
                if target.len() < 60 {
                    let mut b = [0u8; 60];
                    b[..target.len()].copy_from_slice(target);
                    (Body::Inline(b), target.len() as u64)
                } else {
                    flags = EXTENTS_FL;
                    ranges.push((0, 1));
                    let mut blk = vec![0u8; bs as usize];
                    blk[..target.len()].copy_from_slice(target);
                    (Body::Extents(Data::Blocks(blk)), target.len() as u64)
                }
            }
            NodeKind::CharDev { major, minor } | NodeKind::BlockDev { major, minor } => {
                let mut b = [0u8; 60];
                if *major < 256 && *minor < 256 {
                    b[..4].copy_from_slice(&((major << 8) | minor).to_le_bytes());
                } else {
                    let enc = new_encode_dev(*major, *minor);
                    b[4..8].copy_from_slice(&enc.to_le_bytes());
                }
                (Body::Inline(b), 0)
            }
            NodeKind::Fifo | NodeKind::Socket => (Body::Inline([0; 60]), 0),
        };
        needs.push(InodeNeed {
            ranges,
            xattr_block: placed.block.is_some(),
        });
        inodes.push(InodeInfo {
            ino,
            mode: node.st_mode() as u16,
            uid: node.uid,
            gid: node.gid,
            links: link_count.min(u32::from(u16::MAX)) as u16,
            atime: node.atime,
            mtime: node.mtime,
            ctime: node.ctime,
            size,
            flags,
            body,
            xattr: placed,
            crtime: old.map(|o| o.crtime),
        });
    }
    let stable = match reference {
        None => None,
        Some(old) => {
            let same = crate::fs::parallel::map(&compare, |&(i, id, o)| {
                let NodeKind::File { source, size, .. } = &tree.node(id).kind else {
                    return Ok(false);
                };
                unchanged(old, o, source, *size, &needs[i].ranges)
                    .with_context(|| format!("comparing '{}' with the reference", path_of(id)))
            })
            .with_context(ctxmsg)?;
            let mut unchanged_files = 0;
            for (&(i, _, o), same) in compare.iter().zip(same) {
                if same {
                    places[i] = old_place(o, true);
                    unchanged_files += 1;
                }
            }
            tracing::info!(
                "ext4({name}): reference: {} of {} inodes keep their numbers, {unchanged_files} unchanged files their blocks",
                kept.iter().filter(|&&k| k).count(),
                inodes.len()
            );
            Some(Stable {
                blocks: old.blocks,
                places,
            })
        }
    };
    if let Some(n) = opts.inodes {
        if n < u64::from(last_ino) {
            bail!(
                "ext4 '{name}': {n} inodes were asked for but the content needs {last_ino}; raise 'inodes' or leave it unset"
            );
        }
    }
    let params = Params {
        block_size: bs,
        sparse_super: features.sparse_super,
        flex_bg: features.flex_bg,
        force_64bit: features.bit64,
        inode_ratio: opts.inode_ratio,
        inodes: opts.inodes,
        reserved_percent: opts.reserved_percent,
        journal,
        inodes_needed: u64::from(last_ino),
    };
    let content: u64 = needs
        .iter()
        .map(|n| n.ranges.iter().map(|r| r.1).sum::<u64>() + u64::from(n.xattr_block))
        .sum();
    let min_blocks = layout::min_blocks(&params, &needs, content + u64::from(last_ino) * 256 / bs);
    opts.features.large_file |= large_file_needed;
    Ok(Ext4Fs {
        opts,
        uuid,
        hash_seed,
        csum_seed,
        params,
        inodes,
        needs,
        last_ino,
        time,
        min_blocks,
        stable,
    })
}

/// Files larger than this need the `large_file` feature (`i_size_high`).
const LARGE_FILE_BYTES: u64 = (1 << 31) - 1;

/// Refuses a tree whose `/lost+found` is not a directory: ext4 keeps inode
/// 11 there for e2fsck, so the name would appear twice in the root.
fn check_lost_found(tree: &Tree) -> anyhow::Result<()> {
    let NodeKind::Dir { entries } = &tree.node(ROOT).kind else {
        return Ok(());
    };
    match entries.get(&b"lost+found"[..]) {
        Some(&id) if !tree.node(id).is_dir() => bail!(
            "'/lost+found' in the tree is a {}, not a directory; ext4 needs that name for the directory e2fsck reconnects files to (mke2fs -d refuses it too): remove or rename it in the source tree",
            kind_name(&tree.node(id).kind)
        ),
        _ => Ok(()),
    }
}

fn kind_name(kind: &NodeKind) -> &'static str {
    match kind {
        NodeKind::Dir { .. } => "directory",
        NodeKind::File { .. } => "regular file",
        NodeKind::Symlink { .. } => "symbolic link",
        NodeKind::CharDev { .. } => "character device",
        NodeKind::BlockDev { .. } => "block device",
        NodeKind::Fifo => "FIFO",
        NodeKind::Socket => "socket",
    }
}

/// The first path naming `id` in the tree, for messages (`/` for the root).
fn node_path(tree: &Tree, id: NodeId) -> String {
    if id == ROOT {
        return "/".into();
    }
    tree.walk().into_iter().find(|&(_, n)| n == id).map_or_else(
        || format!("node {id}"),
        |(p, _)| String::from_utf8_lossy(&p).into_owned(),
    )
}

/// The directory holding each directory (the one entry naming it).
fn parents(tree: &Tree) -> Vec<Option<NodeId>> {
    let mut out = vec![None; tree.len()];
    for id in 0..tree.len() {
        if let NodeKind::Dir { entries } = &tree.node(id).kind {
            for &c in entries.values() {
                if tree.node(c).is_dir() {
                    out[c] = Some(id);
                }
            }
        }
    }
    out
}

impl Ext4Fs {
    /// The filesystem UUID.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// The options as resolved.
    pub fn options(&self) -> &Ext4Options {
        &self.opts
    }

    /// Inodes the content uses (the highest inode number).
    pub fn inodes_used(&self) -> u32 {
        self.last_ino
    }
}

impl Content for Ext4Fs {
    fn min_size(&self) -> u64 {
        self.min_blocks * u64::from(self.opts.block_size)
    }

    fn write(&self, window: &mut Window<'_>) -> anyhow::Result<()> {
        let bs = u64::from(self.opts.block_size);
        let blocks = window.len() / bs;
        let name = &self.opts.name;
        let places = self.stable.as_ref().and_then(|s| {
            let fresh = layout::geometry(&self.params, blocks).map_or(0, |g| g.blocks);
            if fresh != s.blocks {
                tracing::warn!(
                    "ext4({name}): the reference has {} blocks, this filesystem {fresh}: laid out without it",
                    s.blocks
                );
                return None;
            }
            Some(&s.places[..])
        });
        let stable = places.and_then(|p| {
            layout::plan(&self.params, blocks, &self.needs, Some(p))
                .inspect_err(|short| {
                    tracing::warn!(
                        "ext4({name}): with the reference's places the content lacks {short} blocks: laid out without it"
                    )
                })
                .ok()
        });
        let layout = match stable {
            Some(l) => Ok(l),
            None => layout::plan(&self.params, blocks, &self.needs, None),
        }
        .map_err(|short| {
            anyhow!(
                "ext4 '{}': {} is too small for its content: at least {} more needed; the smallest size that fits is {}",
                self.opts.name,
                human(window.len()),
                human(short * bs),
                human(self.min_size())
            )
        })?;
        write::write(self, &layout, window)
            .with_context(|| format!("writing ext4 filesystem '{}'", self.opts.name))
    }
}
