//! The FAT (vfat) writer: boot partitions, EFI system partitions, Raspberry
//! Pi firmware partitions, U-Boot boot partitions.
//!
//! The whole filesystem is laid out in memory from the content (directory
//! tree, names, sizes) and then written once, in place, into its window of
//! the image: boot sector, FSInfo and backup boot sector (FAT32), both FAT
//! copies, the root directory, the other directories and the file data.
//! Free clusters are left as holes; the free part of each FAT, the unused
//! root directory area and the reserved sectors are recorded as must-be-zero
//! ranges so that flashing over old data gives a clean filesystem.
//!
//! Layout is deterministic: directories are visited in name order (folded to
//! upper case, the order FAT compares names in), all directory clusters come
//! first, then file data, each file contiguous, in sorted path order. Every
//! time is `SOURCE_DATE_EPOCH` when it is set; otherwise files and
//! directories from the host keep their mtime and the rest (files given as
//! bytes, implied directories) get the build time. Times are encoded as FAT
//! local time taking UTC as local time. The volume id derives from the build
//! seed. Same inputs, same image. (Not merely clamped to the epoch, as other
//! writers may do: a FAT time is all most boot firmware shows of a file, and
//! a checkout or an extracted tarball sets older mtimes that differ between
//! build hosts.)
//!
//! Content comes from `files` (explicit destination paths) and a tree (the
//! `from:` directories, scanned, merged and cut by [`crate::fs::tree`] like
//! every other filesystem's). A `files` entry replaces a file of the same
//! path (compared case-insensitively) found in the tree: that is how a
//! generated `config.txt` overrides the one in a firmware directory. Any
//! other clash (a name given twice in `files`, a file where the tree has a
//! directory, two names in the tree differing only in case) is an error
//! naming both paths. Symbolic links in the tree are followed when they
//! lead to a regular file of the tree (FAT has no links, so the file is
//! copied), resolved as on the target: an absolute target starts at the
//! tree's root. Links to directories or to nothing in the tree, devices,
//! FIFOs and sockets are errors: copying host files or whole trees by
//! accident is worse than stopping. Hard links become copies.
//!
//! Spec: Microsoft fatgen103 ("FAT: General Overview of On-Disk Format"),
//! and the behaviour of Linux `fs/fat`, dosfstools (`fsck.fat`, `mkfs.fat`)
//! and mtools, which the tests use as independent checkers.
//!
//! Rejected designs: the `fatfs` crate (many small seeks and writes through
//! a generic Read/Write/Seek, and no control over timestamps or layout
//! order); `mkfs.vfat` + `mcopy` (external tools, a copy of every file
//! through user space, not reproducible by default).

mod geometry;
pub mod names;
mod ondisk;

pub use geometry::Geometry;

use crate::fs::tree::{Node as TreeNode, NodeId, NodeKind as TreeKind, Tree, ROOT};
use crate::fs::{BuildContext, Content, FileSource};
use crate::input::InputFile;
use crate::output::window::Window;
use crate::units::human;
use anyhow::{anyhow, bail, Context};
use geometry::Choice;
use names::ShortName;
use ondisk::{
    Bpb, DirEntry, Fat32Bpb, FatTime, FsInfo, VolumeInfo, ATTR_ARCHIVE, ATTR_DIRECTORY,
    ATTR_VOLUME_ID, DIR_ENTRY_SIZE, LFN_CHARS_PER_ENTRY,
};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};
use zerocopy::little_endian::{U16, U32};
use zerocopy::IntoBytes;

/// What to build: the `fs: { type: vfat, ... }` of a partition.
#[derive(Clone, Debug)]
pub struct VfatOptions {
    /// The partition or artifact name, for identifiers and messages.
    pub name: String,
    /// Volume label, at most 11 characters; case kept as given.
    pub label: Option<String>,
    /// 12, 16 or 32; None chooses by size like mkfs.fat.
    pub fat_bits: Option<u8>,
    /// Cluster size in bytes (a power of two, at least the sector size, at
    /// most 64 KiB); None chooses by size like mkfs.fat.
    pub cluster_size: Option<u32>,
    /// Volume serial number; None derives it from the build seed.
    pub volume_id: Option<u32>,
    /// Logical sector size: the disk's sector size (512, or 4096 on 4Kn).
    pub sector_size: u32,
    /// Sectors on the disk before the filesystem (the partition start, in
    /// sectors), stored in the boot sector for firmware that wants it.
    pub hidden_sectors: u32,
    /// Files to place: absolute destination path (`/EFI/BOOT/BOOTX64.EFI`)
    /// and where the bytes come from. They replace same-path files of `from`.
    pub files: Vec<(String, FileSource)>,
    /// The tree copied to the root (`from:`, see [`crate::fs::tree`]).
    pub tree: Option<Tree>,
}

impl VfatOptions {
    /// Options with defaults: automatic type and cluster size, 512-byte
    /// sectors, no label, no content.
    pub fn new(name: impl Into<String>) -> Self {
        VfatOptions {
            name: name.into(),
            label: None,
            fat_bits: None,
            cluster_size: None,
            volume_id: None,
            sector_size: 512,
            hidden_sectors: 0,
            files: Vec::new(),
            tree: None,
        }
    }
}

/// A prepared FAT filesystem: tree, names and sizes known, nothing written.
#[derive(Debug)]
pub struct VfatFs {
    name: String,
    label: Option<[u8; 11]>,
    volume_id: u32,
    hidden_sectors: u32,
    choice: Choice,
    /// Directories in visiting order; 0 is the root.
    dirs: Vec<Dir>,
    /// Files in data order (sorted paths).
    files: Vec<FileItem>,
    /// Time of the volume label entry.
    label_time: u64,
    min_sectors: u64,
}

#[derive(Debug)]
struct Dir {
    mtime: u64,
    /// Index of the parent directory (the root is its own parent).
    parent: usize,
    entries: Vec<Entry>,
    /// 32-byte slots: `.`/`..` or the label, entries and their long names.
    slots: u64,
}

#[derive(Debug)]
struct Entry {
    long: Vec<u16>,
    short: ShortName,
    mtime: u64,
    target: Target,
}

#[derive(Clone, Copy, Debug)]
enum Target {
    Dir(usize),
    File(usize),
}

#[derive(Debug)]
struct FileItem {
    /// Destination path, for messages.
    path: String,
    source: FileSource,
    size: u64,
}

/// Most 32-byte slots of one directory: the FAT specification caps a
/// directory at 2 MiB (entry indexes are 16 bits), and Linux's vfat
/// (`FAT_MAX_DIR_ENTRIES`) refuses to grow one further.
const MAX_DIR_SLOTS: u64 = 65536;
/// Most bytes of one FAT file (32-bit size field).
const MAX_FILE_BYTES: u64 = u32::MAX as u64;
/// Media descriptor for fixed disks, also the low byte of FAT entry 0.
const MEDIA_FIXED: u8 = 0xF8;
/// End-of-chain marker (masked to 12/16/28 bits when encoded).
const FAT_EOC: u32 = 0x0FFF_FFFF;
/// Boot sector signature at offset 510.
const BOOT_SIGNATURE: [u8; 2] = [0x55, 0xAA];
/// Extended boot signature: volume id, label and type follow.
const EXT_BOOT_SIGNATURE: u8 = 0x29;
/// FAT32 FSInfo and backup boot sector locations (fatgen103 §3.3; what
/// mkfs.fat and Windows use).
const FSINFO_SECTOR: u16 = 1;
const BACKUP_BOOT_SECTOR: u16 = 6;
/// Boot code for a non-bootable volume: `int 18h` (BIOS: try the next boot
/// device), then spin.
const BOOT_CODE: [u8; 4] = [0xCD, 0x18, 0xEB, 0xFE];
/// Label stored when there is none (what Windows and mkfs.fat write).
const NO_LABEL: [u8; 11] = *b"NO NAME    ";
/// CHS geometry fields for LBA media (what fdisk assumes).
const SECTORS_PER_TRACK: u16 = 63;
const HEADS: u16 = 255;
/// BIOS drive number of the first hard disk.
const DRIVE_NUMBER: u8 = 0x80;

/// Scans the inputs of `opts`: builds the directory tree, names every entry
/// and computes the smallest size. Nothing is written.
pub fn prepare(opts: &VfatOptions, ctx: &BuildContext) -> anyhow::Result<VfatFs> {
    let name = &opts.name;
    let choice =
        check_options(opts).with_context(|| format!("checking options of vfat '{name}'"))?;
    let label = opts
        .label
        .as_deref()
        .map(parse_label)
        .transpose()
        .with_context(|| format!("checking the label of vfat '{name}'"))?
        .flatten();
    let default_time = ctx.source_date_epoch.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });

    let mut root = Node::dir(String::new(), default_time);
    if let Some(tree) = &opts.tree {
        // Resolving links may not change the tree, but takes it mutably.
        let mut tree = tree.clone();
        add_tree(&mut tree, ROOT, "", &mut root, ctx)
            .with_context(|| format!("copying the tree of vfat '{name}'"))?;
    }
    for (dest, source) in &opts.files {
        add_file(&mut root, dest, source, ctx, default_time)
            .with_context(|| format!("adding '{dest}' to vfat '{name}'"))?;
    }

    let mut fs = VfatFs {
        name: name.clone(),
        label,
        volume_id: opts
            .volume_id
            .unwrap_or_else(|| ctx.seed.u32(&["vfat", name, "volume-id"])),
        hidden_sectors: opts.hidden_sectors,
        choice,
        dirs: Vec::new(),
        files: Vec::new(),
        label_time: default_time,
        min_sectors: 0,
    };
    fs.flatten(root, "", 0)
        .with_context(|| format!("naming the entries of vfat '{name}'"))?;
    fs.choice.root_slots = fs.dirs[0].slots;
    // The sizing search asks for the cluster need thousands of times; it
    // depends only on the cluster size and on where the root lives.
    let need_by_layout = std::cell::RefCell::new(BTreeMap::new());
    fs.min_sectors = geometry::min_total_sectors(&fs.choice, |g| {
        *need_by_layout
            .borrow_mut()
            .entry((g.cluster_bytes(), g.fat_bits == 32))
            .or_insert_with(|| fs.clusters_needed(g))
    })
    .ok_or_else(|| {
        anyhow!(
            "vfat '{name}': {} in {} files does not fit in any FAT{} filesystem",
            human(fs.files.iter().map(|f| f.size).sum()),
            fs.files.len(),
            fs.choice.fat_bits.map_or(String::new(), |b| b.to_string()),
        )
    })?;
    Ok(fs)
}

fn check_options(opts: &VfatOptions) -> anyhow::Result<Choice> {
    if !matches!(opts.sector_size, 512 | 1024 | 2048 | 4096) {
        bail!(
            "sector size {} is not supported; use 512 or 4096 (the disk's logical sector size)",
            opts.sector_size
        );
    }
    if let Some(bits) = opts.fat_bits {
        if !matches!(bits, 12 | 16 | 32) {
            bail!("FAT type {bits} does not exist; use 12, 16 or 32, or leave it unset");
        }
    }
    if let Some(c) = opts.cluster_size {
        if !c.is_power_of_two() || c < opts.sector_size || c > geometry::MAX_CLUSTER_BYTES {
            bail!(
                "cluster size {c} is not a power of two between the sector size ({}) and 64 KiB",
                opts.sector_size
            );
        }
    }
    let choice = Choice {
        fat_bits: opts.fat_bits,
        cluster_bytes: opts.cluster_size,
        sector_size: opts.sector_size,
        root_slots: 1,
    };
    if geometry::valid_range(&choice).is_none() {
        bail!(
            "FAT{} with {}-byte clusters is impossible at any size",
            opts.fat_bits.unwrap_or(0),
            opts.cluster_size.unwrap_or(0)
        );
    }
    Ok(choice)
}

/// Checks a volume label: at most 11 characters allowed in 8.3 names
/// (lower-case letters too), or spaces. The case is kept as written, like
/// mkfs.fat 4.2, genimage and wic: `/dev/disk/by-label` and `LABEL=` in
/// fstab compare case-sensitively. An empty label means none.
fn parse_label(text: &str) -> anyhow::Result<Option<[u8; 11]>> {
    let label = text.trim_end();
    if label.is_empty() {
        return Ok(None);
    }
    if label.len() > 11 {
        bail!(
            "label '{text}' is {} bytes long; FAT labels hold at most 11",
            label.len()
        );
    }
    if let Some(c) = label.chars().find(|&c| {
        !(c == ' ' || (c.is_ascii() && names::short_char_ok(c.to_ascii_uppercase() as u8)))
    }) {
        bail!(
            "label '{text}' contains {c:?}; use letters, digits, spaces and ! # $ % & ' ( ) - @ ^ _ ` {{ }} ~"
        );
    }
    if label.starts_with(' ') {
        bail!("label '{text}' starts with a space");
    }
    let mut raw = [b' '; 11];
    raw[..label.len()].copy_from_slice(label.as_bytes());
    Ok(Some(raw))
}

/// One node of the tree being assembled, before flattening.
#[derive(Debug)]
struct Node {
    name: String,
    mtime: u64,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// Children keyed by their folded name.
    Dir(BTreeMap<String, Node>),
    File {
        source: FileSource,
        size: u64,
        /// Came from `from` (so a `files` entry may replace it).
        from_tree: bool,
        /// Destination path, for messages.
        path: String,
    },
}

impl Node {
    fn dir(name: String, mtime: u64) -> Node {
        Node {
            name,
            mtime,
            kind: Kind::Dir(BTreeMap::new()),
        }
    }
}

/// The time of a host file or directory: `SOURCE_DATE_EPOCH` when set,
/// else its mtime.
fn host_time(ctx: &BuildContext, meta: &std::fs::Metadata) -> u64 {
    ctx.source_date_epoch.unwrap_or_else(|| {
        meta.modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs())
    })
}

/// The time of a tree node, by the rule of [`host_time`] (FAT has no
/// times before 1980; those are the encoder's business).
fn node_time(ctx: &BuildContext, node: &TreeNode) -> u64 {
    ctx.source_date_epoch
        .unwrap_or_else(|| u64::try_from(node.mtime.sec).unwrap_or(0))
}

fn check_name(name: &str, path: &str) -> anyhow::Result<()> {
    names::validate(name).map_err(|e| anyhow!("'{path}': the name '{name}' {e}"))
}

fn check_size(size: u64, path: &str) -> anyhow::Result<()> {
    if size > MAX_FILE_BYTES {
        bail!(
            "'{path}' is {}; a FAT file holds at most 4 GiB - 1 byte",
            human(size)
        );
    }
    Ok(())
}

/// Adds the entries of the tree's directory `dir` (at `dest`) to `node`.
fn add_tree(
    tree: &mut Tree,
    dir: NodeId,
    dest: &str,
    node: &mut Node,
    ctx: &BuildContext,
) -> anyhow::Result<()> {
    let Kind::Dir(children) = &mut node.kind else {
        bail!("'{dest}' is not a directory");
    };
    let entries = match &tree.node(dir).kind {
        TreeKind::Dir { entries } => entries.clone(),
        _ => bail!("'{dest}' is not a directory"),
    };
    for (raw, id) in entries {
        let name = String::from_utf8(raw).map_err(|e| {
            anyhow!(
                "'{dest}/{}': the name is not UTF-8",
                String::from_utf8_lossy(e.as_bytes())
            )
        })?;
        let path = format!("{dest}/{name}");
        check_name(&name, &path)?;
        let id = match &tree.node(id).kind {
            TreeKind::Symlink { target } => {
                let target = String::from_utf8_lossy(target).into_owned();
                let found = tree.resolve(&path, true, false).ok().flatten();
                match found.map(|f| (f, tree.node(f).is_dir())) {
                    Some((_, true)) => bail!(
                        "symbolic link '{path}' points to a directory ('{target}'); FAT has no links: replace it by a copy or remove it"
                    ),
                    Some((f, false)) => f,
                    None => bail!(
                        "symbolic link '{path}' points to '{target}', which is outside the tree or nowhere (links are followed as on the target, from the tree's root); FAT has no links, so only links to files inside the tree are copied"
                    ),
                }
            }
            _ => id,
        };
        let key = names::fold(&name);
        if let Some(other) = children.get(&key) {
            bail!(
                "'{path}' and '{dest}/{}' differ only in case, which FAT cannot tell apart",
                other.name
            );
        }
        let found = tree.node(id);
        let mtime = node_time(ctx, found);
        let child = match &found.kind {
            TreeKind::Dir { .. } => {
                let mut child = Node::dir(name, mtime);
                add_tree(tree, id, &path, &mut child, ctx)?;
                child
            }
            TreeKind::File { source, size } => {
                check_size(*size, &path)?;
                Node {
                    name,
                    mtime,
                    kind: Kind::File {
                        source: source.clone(),
                        size: *size,
                        from_tree: true,
                        path,
                    },
                }
            }
            _ => bail!("'{path}' is not a regular file or directory; FAT holds only those"),
        };
        children.insert(key, child);
    }
    Ok(())
}

/// Places `source` at `dest`, creating the directories on the way.
fn add_file(
    root: &mut Node,
    dest: &str,
    source: &FileSource,
    ctx: &BuildContext,
    default_time: u64,
) -> anyhow::Result<()> {
    let parts: Vec<&str> = dest.split('/').filter(|p| !p.is_empty()).collect();
    let Some((file_name, dirs)) = parts.split_last() else {
        bail!("the destination path names no file");
    };
    let mut node = root;
    let mut path = String::new();
    for part in dirs {
        path = format!("{path}/{part}");
        check_name(part, &path)?;
        let Kind::Dir(children) = &mut node.kind else {
            bail!("'{path}' is inside a file");
        };
        node = children
            .entry(names::fold(part))
            .or_insert_with(|| Node::dir(part.to_string(), default_time));
        if let Kind::File { path: other, .. } = &node.kind {
            bail!("'{path}' is needed as a directory, but '{other}' is a file");
        }
    }
    let path = format!("{path}/{file_name}");
    check_name(file_name, &path)?;
    let (size, mtime) = match source {
        FileSource::Path(p) => {
            let meta =
                std::fs::metadata(p).with_context(|| format!("reading '{}'", p.display()))?;
            if !meta.is_file() {
                bail!("'{}' is not a regular file", p.display());
            }
            (meta.len(), host_time(ctx, &meta))
        }
        FileSource::Bytes(b) => (b.len() as u64, default_time),
    };
    check_size(size, &path)?;
    let Kind::Dir(children) = &mut node.kind else {
        bail!("'{path}' is inside a file");
    };
    let key = names::fold(file_name);
    match children.get(&key).map(|n| &n.kind) {
        Some(Kind::Dir(_)) => bail!("'{path}' is already a directory"),
        Some(Kind::File {
            from_tree: false,
            path: other,
            ..
        }) => bail!("'{path}' is given twice (as '{other}' before)"),
        // A file from `from` is replaced.
        Some(Kind::File {
            from_tree: true, ..
        })
        | None => {}
    }
    children.insert(
        key,
        Node {
            name: file_name.to_string(),
            mtime,
            kind: Kind::File {
                source: source.clone(),
                size,
                from_tree: false,
                path,
            },
        },
    );
    Ok(())
}

impl VfatFs {
    /// Appends directory `node` (at `path`, child of `parent`) and its
    /// subtree; returns its index.
    fn flatten(&mut self, node: Node, path: &str, parent: usize) -> anyhow::Result<usize> {
        let Kind::Dir(children) = node.kind else {
            bail!("'{path}' is not a directory");
        };
        let index = self.dirs.len();
        self.dirs.push(Dir {
            mtime: node.mtime,
            parent: if index == 0 { 0 } else { parent },
            entries: Vec::new(),
            slots: 0,
        });
        let names: Vec<&str> = children.values().map(|c| c.name.as_str()).collect();
        let shorts = names::assign(&names).map_err(|e| anyhow!("in '{path}/': {e}"))?;
        let mut entries = Vec::with_capacity(children.len());
        let mut slots: u64 = if index == 0 {
            u64::from(self.label.is_some())
        } else {
            2
        };
        for (child, short) in children.into_values().zip(shorts) {
            let long: Vec<u16> = child.name.encode_utf16().collect();
            if short.needs_lfn {
                slots += long.len().div_ceil(LFN_CHARS_PER_ENTRY) as u64;
            }
            slots += 1;
            let child_path = format!("{path}/{}", child.name);
            let mtime = child.mtime;
            let target = match child.kind {
                Kind::Dir(_) => Target::Dir(self.flatten(child, &child_path, index)?),
                Kind::File { source, size, .. } => {
                    self.files.push(FileItem {
                        path: child_path,
                        source,
                        size,
                    });
                    Target::File(self.files.len() - 1)
                }
            };
            entries.push(Entry {
                long,
                short,
                mtime,
                target,
            });
        }
        if slots > MAX_DIR_SLOTS {
            bail!(
                "directory '{}/' needs {slots} directory slots ({} entries and their long names); FAT directories hold at most {MAX_DIR_SLOTS} (Linux and Windows refuse more): split the directory or use names of at most 8.3 characters",
                path,
                entries.len()
            );
        }
        self.dirs[index].entries = entries;
        self.dirs[index].slots = slots;
        Ok(index)
    }

    /// Clusters of directory `i` under layout `g` (0 for a fixed root).
    fn dir_clusters(&self, i: usize, g: &Geometry) -> u64 {
        if i == 0 && g.fat_bits != 32 {
            return 0;
        }
        (self.dirs[i].slots * DIR_ENTRY_SIZE as u64)
            .div_ceil(u64::from(g.cluster_bytes()))
            .max(1)
    }

    fn clusters_needed(&self, g: &Geometry) -> u64 {
        let cb = u64::from(g.cluster_bytes());
        let dirs: u64 = (0..self.dirs.len()).map(|i| self.dir_clusters(i, g)).sum();
        let files: u64 = self.files.iter().map(|f| f.size.div_ceil(cb)).sum();
        dirs + files
    }

    fn sector_size(&self) -> u64 {
        u64::from(self.choice.sector_size)
    }

    /// The layout this filesystem gets in a window of `len` bytes.
    pub fn geometry(&self, len: u64) -> anyhow::Result<Geometry> {
        let name = &self.name;
        let total = len / self.sector_size();
        let Some(g) = geometry::choose(total, &self.choice) else {
            let what = match (self.choice.fat_bits, self.choice.cluster_bytes) {
                (Some(b), Some(c)) => format!("FAT{b} with {} clusters", human(c.into())),
                (Some(b), None) => format!("FAT{b}"),
                (None, Some(c)) => format!("FAT with {} clusters", human(c.into())),
                (None, None) => "FAT".to_string(),
            };
            let (min, max) = geometry::valid_range(&self.choice).unwrap_or((0, 0));
            let ss = self.sector_size();
            bail!(
                "vfat '{name}': {what} with {ss}-byte sectors needs a size between {} and {}, but the partition holds {}; {}",
                human(min * ss),
                human(max * ss),
                human(len),
                if self.choice.fat_bits.is_some() {
                    "change the size or leave the FAT type unset"
                } else {
                    "change the size or the cluster size"
                }
            );
        };
        Ok(g)
    }

    /// Encodes the boot sector (one sector).
    fn boot_sector(&self, g: &Geometry, hidden_sectors: u32) -> anyhow::Result<Vec<u8>> {
        let total = g.total_sectors;
        let fat32 = g.fat_bits == 32;
        let narrow16 = |v: u32, what: &str| {
            u16::try_from(v).with_context(|| format!("encoding {what} {v} of vfat '{}'", self.name))
        };
        let bpb = Bpb {
            // Jump to the boot code just after the BPB (0x3E or 0x5A).
            jump: if fat32 {
                [0xEB, 0x58, 0x90]
            } else {
                [0xEB, 0x3C, 0x90]
            },
            oem_name: *b"MSWIN4.1",
            bytes_per_sector: U16::new(narrow16(g.sector_size, "sector size")?),
            sectors_per_cluster: u8::try_from(g.sectors_per_cluster)
                .context("encoding sectors per cluster")?,
            reserved_sectors: U16::new(narrow16(g.reserved_sectors, "reserved sectors")?),
            num_fats: 2,
            root_entries: U16::new(narrow16(g.root_entries, "root entries")?),
            total_sectors_16: U16::new(if !fat32 && total < 0x1_0000 {
                total as u16
            } else {
                0
            }),
            media: MEDIA_FIXED,
            fat_sectors_16: U16::new(if fat32 {
                0
            } else {
                narrow16(g.fat_sectors, "FAT size")?
            }),
            sectors_per_track: U16::new(SECTORS_PER_TRACK),
            heads: U16::new(HEADS),
            hidden_sectors: U32::new(hidden_sectors),
            total_sectors_32: U32::new(if !fat32 && total < 0x1_0000 { 0 } else { total }),
        };
        let info = VolumeInfo {
            drive_number: DRIVE_NUMBER,
            reserved: 0,
            boot_signature: EXT_BOOT_SIGNATURE,
            volume_id: U32::new(self.volume_id),
            label: self.label.unwrap_or(NO_LABEL),
            fs_type: match g.fat_bits {
                12 => *b"FAT12   ",
                16 => *b"FAT16   ",
                _ => *b"FAT32   ",
            },
        };
        let mut sector = vec![0u8; g.sector_size as usize];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            sector[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(bpb.as_bytes());
        if fat32 {
            let ext = Fat32Bpb {
                fat_sectors_32: U32::new(g.fat_sectors),
                ext_flags: U16::new(0),
                fs_version: U16::new(0),
                // The root directory is allocated first.
                root_cluster: U32::new(2),
                fsinfo_sector: U16::new(FSINFO_SECTOR),
                backup_boot_sector: U16::new(BACKUP_BOOT_SECTOR),
                reserved: [0; 12],
            };
            put(ext.as_bytes());
        }
        put(info.as_bytes());
        put(&BOOT_CODE);
        sector[510..512].copy_from_slice(&BOOT_SIGNATURE);
        Ok(sector)
    }

    /// Encodes the 32-byte slots of directory `i`, given every directory's
    /// and file's first cluster.
    fn dir_bytes(&self, i: usize, dir_first: &[u32], file_first: &[u32]) -> Vec<u8> {
        let dir = &self.dirs[i];
        let mut out = Vec::with_capacity(dir.slots as usize * DIR_ENTRY_SIZE);
        let stamp = |e: &mut DirEntry, secs: u64| {
            let t = FatTime::from_unix(secs);
            e.ctime_centis = t.centis;
            e.ctime = U16::new(t.time);
            e.cdate = U16::new(t.date);
            e.adate = U16::new(t.date);
            e.mtime = U16::new(t.time);
            e.mdate = U16::new(t.date);
        };
        let set_cluster = |e: &mut DirEntry, c: u32| {
            e.cluster_hi = U16::new((c >> 16) as u16);
            e.cluster_lo = U16::new(c as u16);
        };
        if i == 0 {
            if let Some(label) = self.label {
                let mut e = DirEntry {
                    name: label,
                    attr: ATTR_VOLUME_ID,
                    ..DirEntry::default()
                };
                stamp(&mut e, self.label_time);
                // A label entry has no creation or access time.
                (e.ctime_centis, e.ctime, e.cdate, e.adate) =
                    (0, U16::new(0), U16::new(0), U16::new(0));
                out.extend_from_slice(e.as_bytes());
            }
        } else {
            // `..` of a child of the root points to cluster 0, even on FAT32.
            let parent = if dir.parent == 0 {
                0
            } else {
                dir_first[dir.parent]
            };
            for (name, cluster) in [(*b".          ", dir_first[i]), (*b"..         ", parent)] {
                let mut e = DirEntry {
                    name,
                    attr: ATTR_DIRECTORY,
                    ..DirEntry::default()
                };
                stamp(&mut e, dir.mtime);
                set_cluster(&mut e, cluster);
                out.extend_from_slice(e.as_bytes());
            }
        }
        for entry in &dir.entries {
            if entry.short.needs_lfn {
                let sum = ondisk::lfn_checksum(&entry.short.raw);
                for lfn in ondisk::lfn_entries(&entry.long, sum) {
                    out.extend_from_slice(lfn.as_bytes());
                }
            }
            let mut e = DirEntry {
                name: entry.short.raw,
                nt_case: entry.short.nt_case,
                ..DirEntry::default()
            };
            stamp(&mut e, entry.mtime);
            match entry.target {
                Target::Dir(d) => {
                    e.attr = ATTR_DIRECTORY;
                    set_cluster(&mut e, dir_first[d]);
                }
                Target::File(f) => {
                    e.attr = ATTR_ARCHIVE;
                    set_cluster(&mut e, file_first[f]);
                    // Sizes were checked against MAX_FILE_BYTES in prepare.
                    e.size = U32::new(self.files[f].size as u32);
                }
            }
            out.extend_from_slice(e.as_bytes());
        }
        out
    }

    fn write_file(&self, f: &FileItem, w: &mut Window<'_>, pos: u64) -> anyhow::Result<()> {
        match &f.source {
            FileSource::Bytes(bytes) => w
                .write_at(bytes, pos)
                .with_context(|| format!("writing '{}' into vfat '{}'", f.path, self.name)),
            FileSource::Path(p) => {
                let input = InputFile::open(p, f.size)?;
                let len = f.size;
                // FAT files cannot be sparse: a hole of the source is file
                // content that must read as zero on the device, so the whole
                // range is mapped, and only the source's data is copied.
                w.zero(pos, len)
                    .with_context(|| format!("mapping '{}' in vfat '{}'", f.path, self.name))?;
                w.copy_from(input.file(), 0, len, pos).with_context(|| {
                    format!(
                        "copying '{}' to '{}' in vfat '{}'",
                        p.display(),
                        f.path,
                        self.name
                    )
                })?;
                input.check_unchanged()
            }
        }
    }
}

impl VfatFs {
    /// Writes the filesystem into `w` like [`Content::write`], recording
    /// `start_sector` (the partition's first sector on the disk, in logical
    /// sectors) as the boot sector's hidden sectors instead of the value
    /// given at prepare time. Starts beyond 2^32 sectors are stored as
    /// 0xFFFFFFFF (the field is 32 bits; only legacy boot code reads it).
    pub fn write_in_partition(&self, w: &mut Window<'_>, start_sector: u64) -> anyhow::Result<()> {
        let hidden_sectors = u32::try_from(start_sector).unwrap_or(u32::MAX);
        let name = &self.name;
        let g = self.geometry(w.len())?;
        let cb = u64::from(g.cluster_bytes());
        let need = self.clusters_needed(&g);
        if need > u64::from(g.clusters) {
            let missing = (need - u64::from(g.clusters)) * cb;
            bail!(
                "vfat '{name}': the content needs {need} clusters of {} but a {} FAT{} filesystem has {}: {} missing; the smallest size that holds it is {}",
                human(cb),
                human(g.size_bytes()),
                g.fat_bits,
                g.clusters,
                human(missing),
                human(self.min_size()),
            );
        }

        // Allocate: directories first, then files, each contiguous.
        let mut next: u32 = 2;
        let mut chains: Vec<(u32, u32)> = Vec::new();
        let mut take = |n: u64| -> u32 {
            if n == 0 {
                return 0;
            }
            let first = next;
            // n <= need <= g.clusters, which fits u32.
            next += n as u32;
            chains.push((first, n as u32));
            first
        };
        let dir_first: Vec<u32> = (0..self.dirs.len())
            .map(|i| take(self.dir_clusters(i, &g)))
            .collect();
        let file_first: Vec<u32> = self
            .files
            .iter()
            .map(|f| take(f.size.div_ceil(cb)))
            .collect();

        let mut fat = vec![0u32; next as usize];
        fat[0] = 0x0FFF_FF00 | u32::from(MEDIA_FIXED);
        fat[1] = FAT_EOC;
        for &(first, n) in &chains {
            for c in first..first + n - 1 {
                fat[c as usize] = c + 1;
            }
            fat[(first + n - 1) as usize] = FAT_EOC;
        }
        let fat_bytes = ondisk::encode_fat(&fat, g.fat_bits);

        let ctx = |what: &str| format!("writing {what} of vfat '{name}'");
        let ss = g.sector_size as u64;
        // Reserved area: boot sector(s) written, the rest must read as zero.
        w.zero(0, u64::from(g.reserved_sectors) * ss)
            .with_context(|| ctx("the reserved sectors"))?;
        let boot = self.boot_sector(&g, hidden_sectors)?;
        w.write_at(&boot, 0)
            .with_context(|| ctx("the boot sector"))?;
        if g.fat_bits == 32 {
            let free = g.clusters - (next - 2);
            let info = FsInfo {
                lead_signature: U32::new(ondisk::FSINFO_LEAD_SIGNATURE),
                reserved1: [0; 480],
                struct_signature: U32::new(ondisk::FSINFO_STRUCT_SIGNATURE),
                free_count: U32::new(free),
                next_free: U32::new(if free == 0 { u32::MAX } else { next }),
                reserved2: [0; 12],
                trail_signature: U32::new(ondisk::FSINFO_TRAIL_SIGNATURE),
            };
            let backup = u64::from(BACKUP_BOOT_SECTOR) * ss;
            let fsinfo = u64::from(FSINFO_SECTOR) * ss;
            w.write_at(info.as_bytes(), fsinfo)
                .with_context(|| ctx("the FSInfo sector"))?;
            w.write_at(&boot, backup)
                .with_context(|| ctx("the backup boot sector"))?;
            w.write_at(info.as_bytes(), backup + fsinfo)
                .with_context(|| ctx("the backup FSInfo sector"))?;
        }
        for copy in 0..2 {
            let at = g.fat_offset(copy);
            w.zero(at, g.fat_bytes()).with_context(|| ctx("the FAT"))?;
            w.write_at(&fat_bytes, at).with_context(|| ctx("the FAT"))?;
        }
        for i in 0..self.dirs.len() {
            let mut bytes = self.dir_bytes(i, &dir_first, &file_first);
            if i == 0 && g.fat_bits != 32 {
                let area = u64::from(g.root_entries) * DIR_ENTRY_SIZE as u64;
                w.zero(g.root_offset(), area)
                    .with_context(|| ctx("the root directory"))?;
                w.write_at(&bytes, g.root_offset())
                    .with_context(|| ctx("the root directory"))?;
            } else {
                // Whole clusters: the zeros after the last entry end the listing.
                bytes.resize((self.dir_clusters(i, &g) * cb) as usize, 0);
                w.write_at(&bytes, g.cluster_offset(dir_first[i]))
                    .with_context(|| ctx("a directory"))?;
            }
        }
        for (f, &first) in self.files.iter().zip(&file_first) {
            if first != 0 {
                self.write_file(f, w, g.cluster_offset(first))?;
            }
        }
        tracing::info!(
            "vfat({name}): FAT{}, {} clusters, {} files in {} directories, {} of {} used",
            g.fat_bits,
            human(cb),
            self.files.len(),
            self.dirs.len(),
            human(u64::from(next - 2) * cb),
            human(g.size_bytes()),
        );
        Ok(())
    }
}

impl Content for VfatFs {
    fn min_size(&self) -> u64 {
        self.min_sectors * self.sector_size()
    }

    fn write(&self, w: &mut Window<'_>) -> anyhow::Result<()> {
        self.write_in_partition(w, u64::from(self.hidden_sectors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Seed;
    use std::sync::Arc;

    fn ctx() -> BuildContext {
        BuildContext {
            seed: Seed("t".into()),
            source_date_epoch: Some(1_700_000_000),
        }
    }

    #[test]
    fn labels_keep_their_case_and_are_checked() {
        assert_eq!(parse_label("boot").unwrap(), Some(*b"boot       "));
        assert_eq!(parse_label("  ").unwrap(), None);
        assert_eq!(parse_label("RASPIFIRM").unwrap(), Some(*b"RASPIFIRM  "));
        assert_eq!(
            parse_label("a-very-long-label").unwrap_err().to_string(),
            "label 'a-very-long-label' is 17 bytes long; FAT labels hold at most 11"
        );
        assert!(parse_label("a.b").unwrap_err().to_string().contains("'.'"));
        assert!(parse_label("é").is_err());
    }

    #[test]
    fn options_out_of_range_are_refused() {
        let mut o = VfatOptions::new("x");
        o.fat_bits = Some(24);
        let err = format!("{:#}", prepare(&o, &ctx()).unwrap_err());
        assert_eq!(
            err,
            "checking options of vfat 'x': FAT type 24 does not exist; use 12, 16 or 32, or leave it unset"
        );
        let mut o = VfatOptions::new("x");
        o.cluster_size = Some(3000);
        assert!(format!("{:#}", prepare(&o, &ctx()).unwrap_err()).contains("power of two"));
        let mut o = VfatOptions::new("x");
        o.sector_size = 4096;
        o.cluster_size = Some(2048);
        assert!(prepare(&o, &ctx()).is_err());
        let mut o = VfatOptions::new("x");
        o.sector_size = 520;
        assert!(prepare(&o, &ctx()).is_err());
    }

    #[test]
    fn files_beside_and_inside_files_are_refused() {
        let bytes = |s: &str| FileSource::Bytes(Arc::new(s.as_bytes().to_vec()));
        let mut o = VfatOptions::new("x");
        o.files = vec![("/a".into(), bytes("1")), ("/A/b".into(), bytes("2"))];
        let err = format!("{:#}", prepare(&o, &ctx()).unwrap_err());
        assert!(
            err.contains("'/A' is needed as a directory, but '/a' is a file"),
            "{err}"
        );
        o.files = vec![("/a/b".into(), bytes("1")), ("/a".into(), bytes("2"))];
        let err = format!("{:#}", prepare(&o, &ctx()).unwrap_err());
        assert!(err.contains("'/a' is already a directory"), "{err}");
        o.files = vec![("/".into(), bytes("1"))];
        assert!(prepare(&o, &ctx()).is_err());
    }

    #[test]
    fn min_size_counts_directories_and_long_names() {
        let mut o = VfatOptions::new("x");
        o.fat_bits = Some(32);
        o.cluster_size = Some(512);
        let fs = prepare(&o, &ctx()).unwrap();
        // Empty FAT32: the root needs one cluster; 65525 are needed anyway.
        let g = fs.geometry(fs.min_size()).unwrap();
        assert_eq!(g.fat_bits, 32);
        assert_eq!(u64::from(g.clusters), 65_525);
        assert!(fs.geometry(fs.min_size() - 512).is_err());
        // 20 long names of 26 units: 3 slots each, 60 slots = 4 clusters of 512.
        o.files = (0..20)
            .map(|i| {
                (
                    format!("/d/{:026}", i),
                    FileSource::Bytes(Arc::new(Vec::new())),
                )
            })
            .collect();
        let fs = prepare(&o, &ctx()).unwrap();
        assert_eq!(fs.dirs[1].slots, 2 + 60);
        assert_eq!(fs.clusters_needed(&g), 1 + 4);
    }

    #[test]
    fn a_directory_over_65536_slots_is_refused_by_name() {
        let empty = FileSource::Bytes(Arc::new(Vec::new()));
        let mut o = VfatOptions::new("x");
        // `.`, `..` and 65534 short names: exactly the limit.
        o.files = (0..65_534)
            .map(|i| (format!("/big/F{i:05}"), empty.clone()))
            .collect();
        assert!(prepare(&o, &ctx()).is_ok());
        o.files.push(("/big/G".into(), empty));
        let err = format!("{:#}", prepare(&o, &ctx()).unwrap_err());
        assert!(
            err.contains("directory '/big/' needs 65537 directory slots (65535 entries")
                && err.contains("at most 65536"),
            "{err}"
        );
    }
}
