//! The native squashfs writer: a squashfs 4.0 image from a [`Tree`],
//! written in place into its window of the image, without mksquashfs, root
//! or fakeroot.
//!
//! Purpose: compressed read-only root filesystems (2-3x smaller than ext4)
//! for partitions and for standalone update artifacts. [`prepare`] reads and
//! compresses every file, packs file tails into fragment blocks, and builds
//! the inode, directory, fragment, id and xattr tables in memory, so the
//! exact image size is known before planning ([`Content::min_size`]);
//! [`Content::write`] then writes it front to back into the window. The
//! compressed image is held in memory between the two (it is at most the
//! partition's size); the source files are read once.
//!
//! Speed: one pipeline ([`parallel::pipeline`]) keeps every core busy from
//! the first block to the last. Worker threads read and compress the files'
//! blocks (work items of up to 1 MiB) and each fragment block as soon as it
//! is full, while the calling thread takes the results back in inode order,
//! lays the data out, detects duplicates, packs the tails and writes the
//! inodes and directories. Before, each of these was a phase of its own and
//! the cores idled between them (on the bench rootfs the fragments alone
//! were a third of the compression, started only after the last data
//! block).
//!
//! Format: the kernel's `Documentation/filesystems/squashfs.rst` and
//! `fs/squashfs/squashfs_fs.h`, with the layout mksquashfs (squashfs-tools
//! 4.5) uses: superblock, compressor options, data and fragment blocks,
//! inode table, directory table, fragment table, id table, xattr table, the
//! whole padded to 4 KiB. Inodes are numbered and written in post-order
//! (a directory after its content, the root last), so every directory entry
//! knows where its inode is; extended inodes are used only where the basic
//! ones cannot say it (xattrs, hard links, sparse or >4 GiB files, large
//! directories). Blocks of zeros are holes (size 0), as mksquashfs does.
//! Defaults are mksquashfs's: 128 KiB blocks, gzip level 9, tail ends packed
//! into fragments. Not written: the NFS export table (only needed to export
//! the filesystem over NFS), directory indexes (lookups in directories of
//! many thousand entries scan linearly). Files with the same content (not
//! hard links: those are one inode) share their data blocks and fragment,
//! as with mksquashfs's duplicate detection (on the bench rootfs, without
//! it the image was 2.5 % larger than mksquashfs's).
//! Only mtime is stored (squashfs has no atime, ctime or nanoseconds).
//!
//! Reproducible: times come from the tree (clamped to `SOURCE_DATE_EPOCH`),
//! entries in name order, ids and xattr sets in first-use order, and every
//! block compressed on its own, single-threaded, so the thread count does
//! not change a byte.
//!
//! Rejected designs: driving `mksquashfs` (needs the tree's ownership on
//! disk, i.e. fakeroot or a pseudo file, and writes a file that must then be
//! copied into the disk image); the `backhand` crate (writes no xattrs,
//! builds a whole second copy of the tree, and its MSRV follows the latest
//! Rust closely).

mod compress;
mod meta;

pub use compress::Codec;

use crate::fs::tree::{new_encode_dev, Node, NodeId, NodeKind, Tree, MODE_BITS, ROOT};
use crate::fs::verity::{HashTree, VerityInfo};
use crate::fs::{parallel, BuildContext, Content, FileSource};
use crate::output::window::Window;
use crate::units::human;
use anyhow::{anyhow, bail, Context};
use compress::Compressor;
use meta::{append_table, MetaRef, MetaWriter};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// `SQUASHFS_MAGIC`, "hsqs".
const MAGIC: u32 = 0x7371_7368;
/// Size of the superblock.
const SUPERBLOCK_SIZE: usize = 96;
/// mksquashfs pads the image to this, the largest device block size
/// Linux uses, so a loop or block device reads whole blocks.
const PAD: u64 = 4096;
/// Superblock flag: tail ends are packed into fragments.
const FLAG_ALWAYS_FRAGMENTS: u16 = 0x0020;
/// Superblock flag: a compressor-options block follows the superblock.
const FLAG_COMPRESSOR_OPTIONS: u16 = 0x0400;
/// Bit 24 of a data block size: stored uncompressed.
const BLOCK_UNCOMPRESSED: u32 = 1 << 24;
/// Bit 15 of a metadata block header: stored uncompressed.
const METADATA_UNCOMPRESSED: u16 = 0x8000;
/// "No fragment", "no xattrs", "no table".
const NONE32: u32 = u32::MAX;
const NONE64: u64 = u64::MAX;
/// Entries per directory header (`SQUASHFS_DIR_COUNT`).
const DIR_COUNT: usize = 256;
/// Longest file name (`SQUASHFS_NAME_LEN`).
const NAME_LEN: usize = 256;
/// At most this many distinct uids and gids (16-bit index).
const MAX_IDS: usize = 1 << 16;
/// Blocks read and compressed by one work item: large enough to amortise
/// opening the file, small enough to share a big file between cores.
const CHUNK_BLOCKS: u64 = 8;
/// Work items compressed ahead of the one the layout waits for.
const AHEAD: usize = 256;

/// Basic inode types; the extended ones are these + 7.
const T_DIR: u16 = 1;
const T_FILE: u16 = 2;
const T_SYMLINK: u16 = 3;
const T_BLKDEV: u16 = 4;
const T_CHRDEV: u16 = 5;
const T_FIFO: u16 = 6;
const T_SOCKET: u16 = 7;
const EXTENDED: u16 = 7;

/// Options of one squashfs image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SquashfsOptions {
    /// Names the image in messages.
    pub name: String,
    pub codec: Codec,
    /// The codec's level; its default (mksquashfs's) when `None`.
    pub level: Option<u32>,
    /// Data block size: a power of two from 4 KiB to 1 MiB.
    pub block_size: u32,
    /// Append a dm-verity hash tree ([`verity`](crate::fs::verity)).
    pub verity: bool,
}

impl Default for SquashfsOptions {
    fn default() -> Self {
        SquashfsOptions {
            name: "squashfs".into(),
            codec: Codec::Gzip,
            level: None,
            block_size: 128 * 1024,
            verity: false,
        }
    }
}

/// A prepared squashfs image: its bytes, in the order they are written.
#[derive(Debug)]
pub struct SquashfsFs {
    name: String,
    /// Superblock and compressor options, at offset 0.
    head: Vec<u8>,
    /// Data and fragment blocks, contiguous from the end of `head`.
    data: Vec<Vec<u8>>,
    /// The tables, from the end of the data to `bytes_used`.
    tables: Vec<u8>,
    bytes_used: u64,
    /// The dm-verity hash area after the padded image, when asked for.
    verity: Option<HashTree>,
}

impl SquashfsFs {
    /// The image's length without the padding.
    pub fn bytes_used(&self) -> u64 {
        self.bytes_used
    }

    /// The dm-verity parameters, when the image has a hash tree.
    pub fn verity(&self) -> Option<&VerityInfo> {
        self.verity.as_ref().map(|v| &v.info)
    }

    /// The padded image's size (where a hash tree starts).
    fn padded_size(&self) -> u64 {
        self.bytes_used.div_ceil(PAD) * PAD
    }
}

/// One data block of a file, as stored.
#[derive(Debug)]
enum Block {
    /// All zeros: stored as size 0, read back as zeros.
    Hole,
    Packed(Vec<u8>),
    Stored(Vec<u8>),
}

/// A work item: `count` full blocks of file `file` from block `first`,
/// and the file's tail when `tail`.
struct Job {
    file: usize,
    first: u64,
    count: u64,
    tail: bool,
}

struct JobOut {
    blocks: Vec<Block>,
    tail: Option<Vec<u8>>,
}

/// Where a file's data went.
#[derive(Clone, Debug, Default)]
struct FileData {
    start: u64,
    sizes: Vec<u32>,
    /// Fragment index and offset inside it.
    fragment: Option<(u32, u32)>,
    /// Bytes of holes.
    sparse: u64,
}

/// The data area as it is laid out, file by file in inode order: each
/// file's blocks appended, its tail packed into the open fragment block.
/// Duplicate files (same bytes, not hard links) share their blocks and
/// fragment with the first copy, as mksquashfs's duplicate detection does;
/// only files whose size another file has can be copies, the others are
/// not hashed.
struct Layout {
    bs: u64,
    /// Where the next data block goes.
    pos: u64,
    data: Vec<Vec<u8>>,
    /// The open fragment block and how many full ones were handed off.
    fragment: Vec<u8>,
    full_fragments: u32,
    same_size: HashMap<u64, u32>,
    first_copy: HashMap<[u8; 32], FileData>,
}

impl Layout {
    fn new(files: &[(NodeId, &FileSource, u64)], bs: u64, data_start: u64) -> Self {
        let mut same_size: HashMap<u64, u32> = HashMap::new();
        for f in files {
            *same_size.entry(f.2).or_default() += 1;
        }
        Layout {
            bs,
            pos: data_start,
            data: Vec::new(),
            fragment: Vec::new(),
            full_fragments: 0,
            same_size,
            first_copy: HashMap::new(),
        }
    }

    /// Places the next file (`size` bytes, compressed into `parts`);
    /// returns where its data is and the fragment block its tail filled,
    /// if any (to be compressed and appended after the data, in order).
    fn place(&mut self, size: u64, parts: Vec<JobOut>) -> (FileData, Option<Vec<u8>>) {
        if parts.is_empty() {
            // An empty file: no blocks, no fragment, start 0.
            return (FileData::default(), None);
        }
        let identity =
            (self.same_size.get(&size) > Some(&1)).then(|| stored_identity(size, &parts));
        if let Some(original) = identity.and_then(|i| self.first_copy.get(&i)) {
            return (original.clone(), None);
        }
        let mut fd = FileData {
            start: self.pos,
            ..FileData::default()
        };
        let mut full = None;
        for out in parts {
            for block in out.blocks {
                let (size, bytes) = match block {
                    Block::Hole => {
                        fd.sparse += self.bs;
                        (0, None)
                    }
                    Block::Packed(b) => (b.len() as u32, Some(b)),
                    Block::Stored(b) => (b.len() as u32 | BLOCK_UNCOMPRESSED, Some(b)),
                };
                fd.sizes.push(size);
                if let Some(b) = bytes {
                    self.pos += b.len() as u64;
                    self.data.push(b);
                }
            }
            if let Some(tail) = out.tail {
                if self.fragment.len() + tail.len() > self.bs as usize {
                    full = Some(std::mem::take(&mut self.fragment));
                    self.full_fragments += 1;
                }
                fd.fragment = Some((self.full_fragments, self.fragment.len() as u32));
                self.fragment.extend_from_slice(&tail);
            }
        }
        if let Some(identity) = identity {
            self.first_copy.insert(identity, fd.clone());
        }
        (fd, full)
    }

    /// The last fragment block, if any.
    fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.fragment.is_empty()).then(|| std::mem::take(&mut self.fragment))
    }
}

/// Reads `len` bytes at `pos` of a file source.
fn read_source(
    source: &FileSource,
    handle: Option<&File>,
    pos: u64,
    len: usize,
) -> anyhow::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    match (source, handle) {
        (FileSource::Bytes(b), _) => {
            let start = usize::try_from(pos)?;
            let slice = b
                .get(start..start + len)
                .ok_or_else(|| anyhow!("generated file is shorter than expected"))?;
            buf.copy_from_slice(slice);
        }
        (FileSource::Path(p), Some(f)) => f.read_exact_at(&mut buf, pos).with_context(|| {
            format!(
                "reading '{}' (did it change during the build?)",
                p.display()
            )
        })?,
        (FileSource::Path(p), None) => bail!("'{}' was not opened", p.display()),
    }
    Ok(buf)
}

fn run_job(
    job: &Job,
    files: &[(NodeId, &FileSource, u64)],
    comp: &Compressor,
    bs: u64,
) -> anyhow::Result<JobOut> {
    let (_, source, size) = files[job.file];
    let handle = match source {
        FileSource::Path(p) => {
            Some(File::open(p).with_context(|| format!("opening '{}'", p.display()))?)
        }
        FileSource::Bytes(_) => None,
    };
    let mut blocks = Vec::with_capacity(job.count as usize);
    for b in job.first..job.first + job.count {
        let data = read_source(source, handle.as_ref(), b * bs, bs as usize)?;
        blocks.push(if data.iter().all(|&x| x == 0) {
            Block::Hole
        } else {
            match comp.compress(&data)? {
                Some(packed) => Block::Packed(packed),
                None => Block::Stored(data),
            }
        });
    }
    let tail = if job.tail {
        let at = size / bs * bs;
        Some(read_source(
            source,
            handle.as_ref(),
            at,
            (size - at) as usize,
        )?)
    } else {
        None
    };
    Ok(JobOut { blocks, tail })
}

/// A file's identity for duplicate detection: the SHA-256 of its size and
/// its stored form (compression is deterministic and lossless, so equal
/// stored forms are equal files).
fn stored_identity(size: u64, parts: &[JobOut]) -> [u8; 32] {
    let mut identity = Sha256::new();
    identity.update(size.to_le_bytes());
    for part in parts {
        for block in &part.blocks {
            let (tag, bytes): (u8, &[u8]) = match block {
                Block::Hole => (0, &[]),
                Block::Packed(b) => (1, b),
                Block::Stored(b) => (2, b),
            };
            identity.update([tag]);
            identity.update((bytes.len() as u64).to_le_bytes());
            identity.update(bytes);
        }
        if let Some(tail) = &part.tail {
            identity.update([3]);
            identity.update(tail);
        }
    }
    identity.finalize().into()
}

/// Nodes in the order their inodes are written (post-order: a directory
/// after everything in it; hard-linked nodes once) and each directory's
/// parent.
fn post_order(tree: &Tree) -> (Vec<NodeId>, Vec<NodeId>) {
    let mut seen = vec![false; tree.len()];
    let mut parent = vec![ROOT; tree.len()];
    let mut order = Vec::with_capacity(tree.len());
    let mut stack = vec![(ROOT, false)];
    while let Some((id, expanded)) = stack.pop() {
        if expanded {
            order.push(id);
            continue;
        }
        if seen[id] {
            continue;
        }
        seen[id] = true;
        match &tree.node(id).kind {
            NodeKind::Dir { entries } => {
                stack.push((id, true));
                for &child in entries.values().rev() {
                    if tree.node(child).is_dir() {
                        parent[child] = id;
                    }
                    stack.push((child, false));
                }
            }
            _ => order.push(id),
        }
    }
    (order, parent)
}

/// The xattr name prefixes squashfs stores, by type id.
const XATTR_PREFIXES: [(&[u8], u16); 3] = [(b"user.", 0), (b"trusted.", 1), (b"security.", 2)];

/// The key-value bytes of one xattr set.
fn encode_xattrs(xattrs: &BTreeMap<Vec<u8>, Vec<u8>>) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for (name, value) in xattrs {
        let Some((rest, kind)) = XATTR_PREFIXES
            .iter()
            .find_map(|(p, k)| name.strip_prefix(*p).map(|r| (r, *k)))
        else {
            return Err(format!(
                "extended attribute '{}' cannot be stored: squashfs keeps only user., trusted. and security. attributes",
                String::from_utf8_lossy(name)
            ));
        };
        let name_len = u16::try_from(rest.len()).map_err(|_| "xattr name too long".to_string())?;
        let value_len =
            u32::try_from(value.len()).map_err(|_| "xattr value too long".to_string())?;
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(rest);
        out.extend_from_slice(&value_len.to_le_bytes());
        out.extend_from_slice(value);
    }
    Ok(out)
}

/// Inode time: seconds, clamped to what 32 bits hold.
fn time32(sec: i64) -> u32 {
    u32::try_from(sec.max(0)).unwrap_or(u32::MAX)
}

/// A directory's listing: headers and entries for `children` (name,
/// node), whose inodes are already placed.
fn dir_listing(
    tree: &Tree,
    children: &[(&[u8], NodeId)],
    refs: &[Option<MetaRef>],
    inos: &[u32],
) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < children.len() {
        let first_ref = refs[children[i].1].ok_or_else(|| anyhow!("inode written out of order"))?;
        let base = inos[children[i].1];
        // The run sharing the first entry's inode block, in i16 reach.
        let mut n = 0;
        while i + n < children.len() && n < DIR_COUNT {
            let id = children[i + n].1;
            let r = refs[id].ok_or_else(|| anyhow!("inode written out of order"))?;
            let delta = i64::from(inos[id]) - i64::from(base);
            if r.block != first_ref.block || i16::try_from(delta).is_err() {
                break;
            }
            n += 1;
        }
        out.extend_from_slice(&(n as u32 - 1).to_le_bytes());
        out.extend_from_slice(&u32::try_from(first_ref.block)?.to_le_bytes());
        out.extend_from_slice(&base.to_le_bytes());
        for &(name, id) in &children[i..i + n] {
            let r = refs[id].ok_or_else(|| anyhow!("inode written out of order"))?;
            let delta = i16::try_from(i64::from(inos[id]) - i64::from(base))?;
            out.extend_from_slice(&r.offset.to_le_bytes());
            out.extend_from_slice(&delta.to_le_bytes());
            out.extend_from_slice(&basic_type(tree.node(id)).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16 - 1).to_le_bytes());
            out.extend_from_slice(name);
        }
        i += n;
    }
    Ok(out)
}

fn basic_type(node: &Node) -> u16 {
    match node.kind {
        NodeKind::Dir { .. } => T_DIR,
        NodeKind::File { .. } => T_FILE,
        NodeKind::Symlink { .. } => T_SYMLINK,
        NodeKind::BlockDev { .. } => T_BLKDEV,
        NodeKind::CharDev { .. } => T_CHRDEV,
        NodeKind::Fifo => T_FIFO,
        NodeKind::Socket => T_SOCKET,
    }
}

fn put32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}

/// Appends the xattr index to `body` when there is one: the type becomes
/// the extended one.
fn with_xattr(t: u16, body: &mut Vec<u8>, xattr: u32) -> u16 {
    if xattr == NONE32 {
        t
    } else {
        put32(body, xattr);
        t + EXTENDED
    }
}

/// A directory inode's type and body: its listing (`listing_len` bytes)
/// starts at `at` in the directory table.
fn dir_body(
    at: MetaRef,
    listing_len: usize,
    parent_ino: u32,
    nlink: u32,
    xattr: u32,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let file_size = u32::try_from(listing_len + 3).context("directory too large")?;
    let start = u32::try_from(at.block).context("directory table too large")?;
    let mut body = Vec::with_capacity(24);
    let t = if xattr != NONE32 || file_size > 0xffff {
        put32(&mut body, nlink);
        put32(&mut body, file_size);
        put32(&mut body, start);
        put32(&mut body, parent_ino);
        body.extend_from_slice(&0u16.to_le_bytes()); // no index
        body.extend_from_slice(&at.offset.to_le_bytes());
        put32(&mut body, xattr);
        T_DIR + EXTENDED
    } else {
        put32(&mut body, start);
        put32(&mut body, nlink);
        body.extend_from_slice(&(file_size as u16).to_le_bytes());
        body.extend_from_slice(&at.offset.to_le_bytes());
        put32(&mut body, parent_ino);
        T_DIR
    };
    Ok((t, body))
}

/// A regular file inode's type and body, basic when its fields fit.
fn file_body(fd: &FileData, size: u64, nlink: u32, xattr: u32) -> (u16, Vec<u8>) {
    let (frag, frag_off) = fd.fragment.unwrap_or((NONE32, 0));
    let basic = fd.start <= u64::from(u32::MAX)
        && size <= u64::from(u32::MAX)
        && nlink == 1
        && xattr == NONE32
        && fd.sparse == 0;
    let mut body = Vec::with_capacity(40 + 4 * fd.sizes.len());
    let t = if basic {
        put32(&mut body, fd.start as u32);
        put32(&mut body, frag);
        put32(&mut body, frag_off);
        put32(&mut body, size as u32);
        T_FILE
    } else {
        body.extend_from_slice(&fd.start.to_le_bytes());
        body.extend_from_slice(&size.to_le_bytes());
        body.extend_from_slice(&fd.sparse.to_le_bytes());
        put32(&mut body, nlink);
        put32(&mut body, frag);
        put32(&mut body, frag_off);
        put32(&mut body, xattr);
        T_FILE + EXTENDED
    };
    for s in &fd.sizes {
        put32(&mut body, *s);
    }
    (t, body)
}

/// The type and body of a symlink, device, FIFO or socket inode.
fn special_body(node: &Node, nlink: u32, xattr: u32) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut body = Vec::with_capacity(64);
    put32(&mut body, nlink);
    let t = match &node.kind {
        NodeKind::Symlink { target } => {
            put32(
                &mut body,
                u32::try_from(target.len()).context("symlink target too long")?,
            );
            body.extend_from_slice(target);
            T_SYMLINK
        }
        NodeKind::BlockDev { major, minor } | NodeKind::CharDev { major, minor } => {
            if *major > 0xfff || *minor > 0xf_ffff {
                bail!(
                    "device {major}:{minor} does not fit squashfs's 12-bit major and 20-bit minor"
                );
            }
            put32(&mut body, new_encode_dev(*major, *minor));
            basic_type(node)
        }
        NodeKind::Fifo | NodeKind::Socket => basic_type(node),
        NodeKind::Dir { .. } | NodeKind::File { .. } => {
            bail!("a directory or file is not a special inode")
        }
    };
    Ok((with_xattr(t, &mut body, xattr), body))
}

/// Prepares a squashfs image of `tree` (an empty root for `None`).
pub fn prepare(
    opts: &SquashfsOptions,
    tree: Option<&Tree>,
    ctx: &BuildContext,
) -> anyhow::Result<SquashfsFs> {
    let name = opts.name.as_str();
    prepare_inner(opts, tree, ctx).with_context(|| format!("preparing squashfs image '{name}'"))
}

fn prepare_inner(
    opts: &SquashfsOptions,
    tree: Option<&Tree>,
    ctx: &BuildContext,
) -> anyhow::Result<SquashfsFs> {
    let bs32 = opts.block_size;
    if !bs32.is_power_of_two() || !(4096..=1 << 20).contains(&bs32) {
        bail!(
            "block size {} is not supported; use a power of two from 4KiB to 1MiB",
            human(u64::from(bs32))
        );
    }
    let bs = u64::from(bs32);
    let comp = Compressor::new(opts.codec, opts.level, bs32)?;
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
    let (order, parent) = post_order(tree);
    let inode_count = u32::try_from(order.len()).context("too many inodes")?;
    let mut inos = vec![0u32; tree.len()];
    for (i, &id) in order.iter().enumerate() {
        inos[id] = i as u32 + 1;
    }
    let links = tree.link_counts();

    // Data: full blocks compressed in parallel, tails into fragments.
    let files: Vec<(NodeId, &FileSource, u64)> = order
        .iter()
        .filter_map(|&id| match &tree.node(id).kind {
            NodeKind::File { source, size, .. } => Some((id, source, *size)),
            _ => None,
        })
        .collect();
    let mut jobs = Vec::new();
    for (fi, &(_, _, size)) in files.iter().enumerate() {
        let full = size / bs;
        let has_tail = size % bs != 0;
        let mut first = 0;
        loop {
            let count = (full - first).min(CHUNK_BLOCKS);
            let last = first + count == full;
            if count > 0 || (last && has_tail) {
                jobs.push(Job {
                    file: fi,
                    first,
                    count,
                    tail: last && has_tail,
                });
            }
            first += count;
            if last {
                break;
            }
        }
    }
    let mut job_count = vec![0usize; files.len()];
    for job in &jobs {
        job_count[job.file] += 1;
    }

    // Ids, in first-use order.
    let mut ids: Vec<u32> = Vec::new();
    let mut id_index: HashMap<u32, u16> = HashMap::new();
    for &id in &order {
        let n = tree.node(id);
        for v in [n.uid, n.gid] {
            if let std::collections::hash_map::Entry::Vacant(slot) = id_index.entry(v) {
                if ids.len() == MAX_IDS {
                    bail!("more than {MAX_IDS} distinct uids and gids; squashfs holds at most that many");
                }
                slot.insert(ids.len() as u16);
                ids.push(v);
            }
        }
    }

    // Xattr sets, shared between inodes that have the same one.
    let mut xattr_kv = MetaWriter::new(&comp);
    let mut xattr_ids: Vec<u8> = Vec::new();
    let mut xattr_sets: BTreeMap<&BTreeMap<Vec<u8>, Vec<u8>>, u32> = BTreeMap::new();
    let mut xattr_of = vec![NONE32; tree.len()];
    for &id in &order {
        let set = &tree.node(id).xattrs;
        if set.is_empty() {
            continue;
        }
        if let Some(&i) = xattr_sets.get(set) {
            xattr_of[id] = i;
            continue;
        }
        let bytes = encode_xattrs(set).map_err(|e| anyhow!("'{}': {e}", path_of(id)))?;
        let index = u32::try_from(xattr_sets.len())?;
        xattr_ids.extend_from_slice(&xattr_kv.position().packed().to_le_bytes());
        xattr_ids.extend_from_slice(&(set.len() as u32).to_le_bytes());
        xattr_ids.extend_from_slice(&u32::try_from(bytes.len())?.to_le_bytes());
        xattr_kv.push(&bytes)?;
        xattr_sets.insert(set, index);
        xattr_of[id] = index;
    }

    // Data and inodes, in post-order: the workers compress data blocks
    // (and fragments as they fill) while this thread lays the data out,
    // packs the tails and writes the inodes and directories.
    let head = superblock_head(&comp);
    let mut layout = Layout::new(&files, bs, (SUPERBLOCK_SIZE + head.len()) as u64);
    let mut inodes = MetaWriter::new(&comp);
    let mut dirs = MetaWriter::new(&comp);
    let mut refs: Vec<Option<MetaRef>> = vec![None; tree.len()];
    let mut next_file = 0;
    let ((), packed_fragments) = parallel::pipeline(
        &jobs,
        AHEAD,
        |job| {
            run_job(job, &files, &comp, bs)
                .with_context(|| format!("compressing '{}'", path_of(files[job.file].0)))
        },
        |raw: Vec<u8>| {
            Ok(match comp.compress(&raw)? {
                Some(packed) => (packed.len() as u32, packed),
                None => (raw.len() as u32 | BLOCK_UNCOMPRESSED, raw),
            })
        },
        |stream| {
            for &id in &order {
                let node = tree.node(id);
                let (nlink, xattr) = (links[id], xattr_of[id]);
                let (kind, body) = match &node.kind {
                    NodeKind::Dir { entries } => {
                        let children: Vec<(&[u8], NodeId)> =
                            entries.iter().map(|(n, &c)| (n.as_slice(), c)).collect();
                        if let Some((n, _)) = children.iter().find(|(n, _)| n.len() > NAME_LEN) {
                            bail!(
                                "'{}/{}': name longer than {NAME_LEN} bytes",
                                path_of(id),
                                String::from_utf8_lossy(n)
                            );
                        }
                        let at = dirs.position();
                        let listing = dir_listing(tree, &children, &refs, &inos)?;
                        dirs.push(&listing)?;
                        let parent_ino = if id == ROOT {
                            inode_count + 1
                        } else {
                            inos[parent[id]]
                        };
                        dir_body(at, listing.len(), parent_ino, nlink, xattr)?
                    }
                    NodeKind::File { size, .. } => {
                        let file = next_file;
                        next_file += 1;
                        if files.get(file).map(|f| f.0) != Some(id) {
                            bail!("'{}': file data out of order", path_of(id));
                        }
                        let parts = (0..job_count[file])
                            .map(|_| stream.next_result())
                            .collect::<anyhow::Result<Vec<JobOut>>>()?;
                        let (fd, full) = layout.place(*size, parts);
                        if let Some(full) = full {
                            stream.push(full);
                        }
                        file_body(&fd, *size, nlink, xattr)
                    }
                    _ => special_body(node, nlink, xattr)
                        .map_err(|e| anyhow!("'{}': {e}", path_of(id)))?,
                };
                refs[id] = Some(inodes.position());
                let mut record = Vec::with_capacity(16 + body.len());
                record.extend_from_slice(&kind.to_le_bytes());
                // Permission bits only, as mksquashfs writes them: the type is the
                // inode type (recent kernels reject type bits here).
                record.extend_from_slice(&(node.mode & MODE_BITS).to_le_bytes()[..2]);
                record.extend_from_slice(&id_index[&node.uid].to_le_bytes());
                record.extend_from_slice(&id_index[&node.gid].to_le_bytes());
                record.extend_from_slice(&time32(node.mtime.sec).to_le_bytes());
                record.extend_from_slice(&inos[id].to_le_bytes());
                record.extend_from_slice(&body);
                inodes.push(&record)?;
            }
            if let Some(last) = layout.finish() {
                stream.push(last);
            }
            Ok(())
        },
    )?;
    let Layout {
        mut pos, mut data, ..
    } = layout;
    let mut fragment_table = Vec::with_capacity(packed_fragments.len() * 16);
    for (size, bytes) in packed_fragments {
        fragment_table.extend_from_slice(&pos.to_le_bytes());
        fragment_table.extend_from_slice(&size.to_le_bytes());
        fragment_table.extend_from_slice(&0u32.to_le_bytes());
        pos += bytes.len() as u64;
        data.push(bytes);
    }
    let fragment_count = u32::try_from(fragment_table.len() / 16).context("too many fragments")?;
    let root_ref = refs[ROOT].ok_or_else(|| anyhow!("the root inode was not written"))?;

    // Tables after the data, in mksquashfs's order.
    let inode_table_start = pos;
    let (inode_bytes, _) = inodes.finish()?;
    let (dir_bytes, _) = dirs.finish()?;
    let mut tables = inode_bytes;
    let directory_table_start = inode_table_start + tables.len() as u64;
    tables.extend_from_slice(&dir_bytes);
    let fragment_table_start = append_table(
        pos + tables.len() as u64,
        &mut tables,
        &comp,
        &fragment_table,
    )?;
    let id_bytes: Vec<u8> = ids.iter().flat_map(|v| v.to_le_bytes()).collect();
    let id_table_start = append_table(pos + tables.len() as u64, &mut tables, &comp, &id_bytes)?;
    let xattr_id_table_start = if xattr_sets.is_empty() {
        NONE64
    } else {
        let kv_start = pos + tables.len() as u64;
        let (kv, _) = xattr_kv.finish()?;
        tables.extend_from_slice(&kv);
        let mut w = MetaWriter::new(&comp);
        w.push(&xattr_ids)?;
        let (blocks, starts) = w.finish()?;
        let blocks_at = pos + tables.len() as u64;
        tables.extend_from_slice(&blocks);
        let header_at = pos + tables.len() as u64;
        tables.extend_from_slice(&kv_start.to_le_bytes());
        tables.extend_from_slice(&(xattr_sets.len() as u32).to_le_bytes());
        tables.extend_from_slice(&0u32.to_le_bytes());
        for s in starts {
            tables.extend_from_slice(&(blocks_at + s).to_le_bytes());
        }
        header_at
    };
    let bytes_used = pos + tables.len() as u64;

    let mut flags = comp.flags() | FLAG_ALWAYS_FRAGMENTS;
    if comp.options().is_some() {
        flags |= FLAG_COMPRESSOR_OPTIONS;
    }
    let mut sb = Vec::with_capacity(SUPERBLOCK_SIZE + head.len());
    for v in [
        MAGIC,
        inode_count,
        time32(tree.build_time().sec),
        bs32,
        fragment_count,
    ] {
        sb.extend_from_slice(&v.to_le_bytes());
    }
    for v in [
        comp.id(),
        bs32.trailing_zeros() as u16,
        flags,
        ids.len() as u16,
        4,
        0,
    ] {
        sb.extend_from_slice(&v.to_le_bytes());
    }
    for v in [
        root_ref.packed(),
        bytes_used,
        id_table_start,
        xattr_id_table_start,
        inode_table_start,
        directory_table_start,
        fragment_table_start,
        NONE64,
    ] {
        sb.extend_from_slice(&v.to_le_bytes());
    }
    debug_assert_eq!(sb.len(), SUPERBLOCK_SIZE);
    sb.extend_from_slice(&head);
    let mut fs = SquashfsFs {
        name: opts.name.clone(),
        head: sb,
        data,
        tables,
        bytes_used,
        verity: None,
    };
    if opts.verity {
        // From the bytes in memory: the image is never read back.
        let chunks = std::iter::once(fs.head.as_slice())
            .chain(fs.data.iter().map(Vec::as_slice))
            .chain(std::iter::once(fs.tables.as_slice()));
        fs.verity = Some(HashTree::compute(chunks, fs.padded_size(), &ctx.seed));
    }
    Ok(fs)
}

/// The compressor-options block that follows the superblock (a metadata
/// block stored uncompressed), empty when the codec writes none.
fn superblock_head(comp: &Compressor) -> Vec<u8> {
    match comp.options() {
        Some(o) => {
            let mut b = (o.len() as u16 | METADATA_UNCOMPRESSED)
                .to_le_bytes()
                .to_vec();
            b.extend_from_slice(&o);
            b
        }
        None => Vec::new(),
    }
}

impl Content for SquashfsFs {
    fn min_size(&self) -> u64 {
        self.padded_size() + self.verity.as_ref().map_or(0, HashTree::len)
    }

    fn write(&self, window: &mut Window<'_>) -> anyhow::Result<()> {
        if window.len() < self.min_size() {
            bail!(
                "squashfs '{}': {} is too small for its content; the smallest size that fits is {}",
                self.name,
                human(window.len()),
                human(self.min_size())
            );
        }
        let ctx = || format!("writing squashfs image '{}'", self.name);
        window.write_at(&self.head, 0).with_context(ctx)?;
        let mut pos = self.head.len() as u64;
        // Coalesce small blocks into large writes.
        let mut buf: Vec<u8> = Vec::with_capacity(4 << 20);
        let mut buf_at = pos;
        for block in &self.data {
            if buf.len() + block.len() > buf.capacity() && !buf.is_empty() {
                window.write_at(&buf, buf_at).with_context(ctx)?;
                buf_at += buf.len() as u64;
                buf.clear();
                window.settle(buf_at);
            }
            buf.extend_from_slice(block);
            pos += block.len() as u64;
        }
        buf.extend_from_slice(&self.tables);
        window.write_at(&buf, buf_at).with_context(ctx)?;
        pos += self.tables.len() as u64;
        debug_assert_eq!(pos, self.bytes_used);
        window
            .zero(pos, self.padded_size() - pos)
            .with_context(ctx)?;
        if let Some(verity) = &self.verity {
            verity.write(window).with_context(ctx)?;
        }
        window.settle(window.len());
        Ok(())
    }
}
