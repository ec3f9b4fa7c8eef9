//! The typed description: what `config::load` returns and the planner and
//! writers consume.
//!
//! Every value a user wrote that a later stage may find wrong (a size that
//! does not fit, a missing input, an overlap) carries the [`Span`] where it
//! was written and its key path, through [`Spanned`], so that the planner's
//! diagnostics point at the user's line, also when the value came from a
//! layer file. Defaults are filled in here (with the span of the enclosing
//! entry), so consumers never re-implement them. The schema is documented in
//! `docs/config.md`; keep the two in step.
//!
//! Rejected: serde-derived structs as the model (no spans inside tagged
//! enums, first error only), and `Option` everywhere for defaulted keys
//! (every consumer would repeat the defaults).

use crate::diag::Span;
use crate::ids::Uuid;
use crate::units::ByteSize;
use std::path::PathBuf;
use std::sync::Arc;

/// A value with where it was written and its key path (`partitions[2].size`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
    /// Key path as written in the file of `span`.
    pub key: String,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span, key: impl Into<String>) -> Self {
        Spanned {
            value,
            span,
            key: key.into(),
        }
    }

    /// A diagnostic about this value, at its span and key.
    pub fn diag(&self, message: impl Into<String>) -> crate::diag::Diagnostic {
        crate::diag::Diagnostic::new(self.span.clone(), self.key.clone(), message)
    }
}

/// A whole description, layers merged, variables expanded, inputs resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Description {
    /// The top-level file.
    pub file: Arc<PathBuf>,
    /// Layer files applied, in the order they were merged (the top file last, not listed).
    pub layer_files: Vec<PathBuf>,
    pub image: Image,
    /// Named contents, in definition order.
    pub artifacts: Vec<Artifact>,
    /// Partitions and raw blobs, in order (layer merge order, then `after:`/`before:`).
    pub partitions: Vec<Partition>,
    /// Output formats, without duplicates; `[raw, bmap]` when not written.
    pub outputs: Vec<Spanned<OutputKind>>,
    /// `update:`: what a slot bundle holds (`image-composer bundle`).
    pub update: Option<Update>,
}

impl Description {
    pub fn artifact(&self, name: &str) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.name.value == name)
    }

    pub fn partition(&self, name: &str) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.name.value == name)
    }
}

/// `image:`.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// Output stem: `<name>.img`, `<name>.img.bmap`. `[A-Za-z0-9._-]+`.
    pub name: Spanned<String>,
    /// Default `gpt`.
    pub table: Spanned<TableKind>,
    /// Default `auto`.
    pub size: Spanned<ImageSize>,
    /// 512 or 4096; default 512.
    pub sector_size: Spanned<u32>,
    /// Default 1MiB; a multiple of the sector size.
    pub align: Spanned<ByteSize>,
    /// Default: the image name.
    pub seed: Spanned<String>,
    /// GPT disk GUID; derived from the seed when absent.
    pub disk_uuid: Option<Spanned<Uuid>>,
    /// MBR disk signature; derived from the seed when absent.
    pub mbr_signature: Option<Spanned<u32>>,
    /// GPT partition entry count, at least 128 (default decided by the planner: 128).
    pub gpt_entries: Option<Spanned<u32>>,
    /// `gpt-location`: byte offset of the primary GPT entry array (genimage's
    /// `gpt-location`), to keep it clear of boot ROM blobs; default right
    /// after the GPT header.
    pub gpt_location: Option<Spanned<ByteSize>>,
    /// `gpt-no-backup: true`: no backup GPT (genimage's `gpt-no-backup`).
    pub gpt_no_backup: Option<Spanned<bool>>,
    /// `protective-entry`: true for `first` (sgdisk's hybrid order), false
    /// for `last` (genimage's, the default).
    pub protective_first: Option<Spanned<bool>>,
    /// `extended-partition`: the MBR entry (1–4) of the extended partition.
    pub extended_partition: Option<Spanned<u32>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TableKind {
    Gpt,
    Mbr,
    /// GPT plus a hybrid MBR listing the partitions marked `hybrid: true`.
    Hybrid,
    /// No partition table: partitions are placed at their offsets only.
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageSize {
    /// The smallest size that holds every region.
    Auto,
    Fixed(ByteSize),
}

/// A partition's or artifact's `size:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeSpec {
    Fixed(ByteSize),
    /// The content's minimum size plus headroom (`auto`, `auto +64MiB`, `auto +20%`).
    Auto(Headroom),
    /// The rest of the disk (partitions only; at most one).
    Fill,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Headroom {
    None,
    Bytes(ByteSize),
    /// Percent of the content's minimum size.
    Percent(u32),
    /// Both: `auto +30% +13MiB`.
    PercentAndBytes(u32, ByteSize),
}

/// `artifacts.<name>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Artifact {
    pub name: Spanned<String>,
    /// An `fs`, `initramfs` or `image` content (never empty or a reference).
    pub content: Spanned<Content>,
    /// Size when written standalone or used where a size is `auto`; default `auto`.
    pub size: Spanned<SizeSpec>,
    /// File name in the output directory, when written standalone.
    pub output: Option<Spanned<String>>,
}

/// One entry of `partitions:`.
#[derive(Clone, Debug, PartialEq)]
pub struct Partition {
    pub name: Spanned<String>,
    /// The `- name: ...` entry as a whole (for "this partition" diagnostics).
    pub span: Span,
    /// Key path of the entry as written in its file: `partitions[2]`.
    pub key: String,
    /// `type:` as written: a shorthand (`esp`, `root-x86-64`), a GUID or an
    /// MBR byte (`0x0c`), already checked with `ptable::types::check`, so
    /// `ptable::types::lookup` returns `Some` for it; `None` means the
    /// planner's default (Linux data).
    pub part_type: Option<Spanned<String>>,
    /// `mbr-type:` byte for MBR/hybrid tables when `type` gives none.
    pub mbr_type: Option<Spanned<u8>>,
    /// Default `auto` (content size); `same-as` copies the referenced size.
    pub size: Option<Spanned<SizeSpec>>,
    /// Absolute byte offset from the start of the disk.
    pub offset: Option<Spanned<ByteSize>>,
    /// `false`: a raw blob outside the table (requires `offset`). Default true.
    pub in_table: Spanned<bool>,
    /// `bootable:` — MBR active flag / GPT legacy BIOS bootable attribute.
    pub bootable: Spanned<bool>,
    pub flags: PartitionFlags,
    pub uuid: Option<Spanned<Uuid>>,
    /// Start alignment; default the image's.
    pub align: Option<Spanned<ByteSize>>,
    /// Also listed in the MBR of a `hybrid` table.
    pub hybrid: Spanned<bool>,
    /// `forced-primary`: a primary MBR partition after the logical ones.
    pub forced_primary: Spanned<bool>,
    /// Ranges of a raw blob allowed to overlap table areas (genimage `holes`).
    pub holes: Vec<Spanned<Hole>>,
    pub content: Spanned<Content>,
}

/// GPT attribute bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionFlags {
    pub read_only: Spanned<bool>,
    pub no_automount: Spanned<bool>,
    pub required: Spanned<bool>,
    pub legacy_bios_bootable: Spanned<bool>,
    /// `gpt-attributes`: more bits, OR-ed with the flags above.
    pub attributes: Option<Spanned<u64>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hole {
    /// From the start of the blob.
    pub offset: ByteSize,
    pub size: ByteSize,
}

/// What a partition or artifact holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    /// Nothing: a hole, reads as zeros on fresh media, unmapped in the bmap.
    Empty,
    /// `fill: zero`: mapped zeros (wipes reused media).
    Zero,
    /// `image:` a file copied in.
    Image(InputPath),
    Fs(Filesystem),
    Initramfs(Box<Initramfs>),
    /// `artifact:` a named artifact (validated to exist).
    Artifact(Spanned<String>),
    /// `same-as:` another partition's content and size (validated to exist, no cycles).
    SameAs(Spanned<String>),
}

/// A host path named in the description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputPath {
    /// As written, variables expanded (for messages).
    pub text: String,
    /// Resolved: the written path if absolute, else the first existing of
    /// `<file's dir>/text`, `<input-dir>/text`...; `<file's dir>/text` if none exists.
    pub path: PathBuf,
    pub span: Span,
    pub key: String,
}

/// `from:` and `exclude:`: the host trees a filesystem or archive starts
/// from (`fs::tree::Tree::merge`, `fs::tree::Tree::exclude`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sources {
    /// Directories merged in order, a later one's entries replacing an
    /// earlier one's; empty: no tree.
    pub from: Vec<InputPath>,
    /// Absolute globs of entries left out of the merged tree; a trailing
    /// `/` empties a directory and keeps it.
    pub exclude: Vec<Spanned<String>>,
}

/// `fs:`, tagged by `type:`.
#[derive(Clone, Debug, PartialEq)]
pub enum Filesystem {
    Vfat(Box<Vfat>),
    Ext4(Box<Ext4>),
    Squashfs(Box<Squashfs>),
    Erofs(Box<Erofs>),
    Swap(Box<Swap>),
}

/// A file placed into a filesystem or archive: `files: { /dest: source }`;
/// a source directory is copied with everything in it (grafted onto the
/// tree by `fs::tree::Tree::graft`).
#[derive(Clone, Debug, PartialEq)]
pub struct FileEntry {
    /// Absolute destination path inside the filesystem (`/Image`).
    pub dest: Spanned<String>,
    pub source: FileRef,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FileRef {
    Path(InputPath),
    /// `{ artifact: name }`: the artifact's bytes.
    Artifact(Spanned<String>),
    /// `{ text: ... }`: these bytes, its `${verity.NAME.KEY}` and `$$`
    /// still to expand (config::vars::expand_verity).
    Text(Spanned<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Vfat {
    /// Up to 11 characters; default none.
    pub label: Option<Spanned<String>>,
    /// 12, 16 or 32; default chosen by the writer from the size.
    pub fat: Option<Spanned<u8>>,
    /// Bytes per cluster: a power of two from 512 to 64KiB.
    pub cluster_size: Option<Spanned<ByteSize>>,
    /// Derived from the seed when absent.
    pub volume_id: Option<Spanned<u32>>,
    pub files: Vec<FileEntry>,
    /// The directories whose content is copied in.
    pub sources: Sources,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owners {
    /// Every file owned by root:root (a tree that belongs to the building user).
    Root,
    /// Owners as the source tree reports them (inside fakeroot or pseudo:
    /// as the session recorded them).
    Source,
}

/// An ownership/mode/capability override: `rules: [{ path: glob, ... }]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// A glob over absolute paths inside the filesystem (`/usr/bin/*`).
    pub path: Spanned<String>,
    pub uid: Option<Spanned<u32>>,
    pub gid: Option<Spanned<u32>>,
    /// Permission bits, written as octal text ("0755"); at most 0o7777.
    pub mode: Option<Spanned<u32>>,
    /// File capabilities in `cap_from_text` form (`cap_net_raw+ep`).
    pub caps: Option<Spanned<String>>,
}

/// Ownership settings shared by ext4 and initramfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ownership {
    /// `None`: chosen at build time from the session (see
    /// `compose::prepare::choose_owners`).
    pub owners: Option<Spanned<Owners>>,
    /// Buildroot makedevs device tables, applied in order.
    pub device_tables: Vec<InputPath>,
    /// Applied in order after the device tables; later rules win.
    pub rules: Vec<Rule>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Journal {
    None,
    /// The writer's default size.
    Default,
    Size(ByteSize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalInit {
    /// The journal blocks are written (mapped zeros).
    Zero,
    /// Left unwritten (holes), as mke2fs `lazy_journal_init`.
    Lazy,
}

/// An ext4 feature toggle: `name` or `^name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feature {
    pub name: String,
    pub enabled: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ext4 {
    /// Up to 16 bytes.
    pub label: Option<Spanned<String>>,
    pub uuid: Option<Spanned<Uuid>>,
    /// The directory trees the filesystem is made from; empty filesystem when none.
    pub sources: Sources,
    /// Files and directories placed over the tree (`files:`).
    pub files: Vec<FileEntry>,
    pub ownership: Ownership,
    pub features: Vec<Spanned<Feature>>,
    /// Default: `Journal::Default`.
    pub journal: Spanned<Journal>,
    /// Default `zero`.
    pub journal_init: Spanned<JournalInit>,
    /// 1024, 2048 or 4096; default chosen by the writer (4096).
    pub block_size: Option<Spanned<u32>>,
    /// Bytes per inode.
    pub inode_ratio: Option<Spanned<ByteSize>>,
    /// Exact inode count.
    pub inodes: Option<Spanned<u64>>,
    /// Reserved blocks, percent (0..=50); default 0.
    pub reserved: Spanned<u8>,
    pub hash_seed: Option<Spanned<Uuid>>,
}

/// `fs: { type: squashfs }`: a compressed read-only filesystem.
#[derive(Clone, Debug, PartialEq)]
pub struct Squashfs {
    /// The directory trees; an empty root when none.
    pub sources: Sources,
    /// Files and directories placed over the tree (`files:`).
    pub files: Vec<FileEntry>,
    pub ownership: Ownership,
    /// Default gzip (mksquashfs's).
    pub compression: Spanned<Compression>,
    /// The codec's level; its default when absent (validated against the codec).
    pub level: Option<Spanned<u32>>,
    /// A power of two from 4KiB to 1MiB; default 128KiB.
    pub block_size: Option<Spanned<u32>>,
    /// Append a dm-verity hash tree; default false.
    pub verity: Spanned<bool>,
}

/// `fs: { type: erofs }`: a read-only EROFS image.
#[derive(Clone, Debug, PartialEq)]
pub struct Erofs {
    /// The directory trees; an empty root when none.
    pub sources: Sources,
    /// Files and directories placed over the tree (`files:`).
    pub files: Vec<FileEntry>,
    pub ownership: Ownership,
    /// Default none (mkfs.erofs's).
    pub compression: crate::fs::erofs::Compression,
    /// lz4hc's level (1-12); 9 when absent.
    pub level: Option<Spanned<u32>>,
    /// A multiple of 4KiB up to 1MiB; default 4KiB.
    pub pcluster_size: Option<Spanned<u32>>,
    /// Append a dm-verity hash tree; default false.
    pub verity: Spanned<bool>,
}

/// `fs: { type: swap }`: a Linux swap area (mkswap's signature).
#[derive(Clone, Debug, PartialEq)]
pub struct Swap {
    /// Up to 16 bytes.
    pub label: Option<Spanned<String>>,
    /// Derived from the seed when absent.
    pub uuid: Option<Spanned<Uuid>>,
    /// The target kernel's page size; default 4096.
    pub page_size: Option<Spanned<u32>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Xz,
    Lz4,
}

impl Compression {
    /// The squashfs codec of this name.
    pub fn squashfs_codec(self) -> crate::fs::squashfs::Codec {
        use crate::fs::squashfs::Codec;
        match self {
            Compression::None => Codec::None,
            Compression::Gzip => Codec::Gzip,
            Compression::Zstd => Codec::Zstd,
            Compression::Xz => Codec::Xz,
            Compression::Lz4 => Codec::Lz4,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Char,
    Block,
    Fifo,
}

/// `nodes: [{ path, type, major, minor, mode, uid, gid }]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceNode {
    pub path: Spanned<String>,
    pub kind: Spanned<NodeKind>,
    /// 0 for fifos.
    pub major: u32,
    pub minor: u32,
    /// Permission bits; default 0o600.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// `symlinks: { /link: target }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symlink {
    pub link: Spanned<String>,
    pub target: Spanned<String>,
}

/// `modules: { dir, load }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Modules {
    /// A host `lib/modules/<version>` directory.
    pub dir: InputPath,
    /// Module names to include (with their dependencies) and load at boot, in order.
    pub load: Vec<Spanned<String>>,
}

/// `init:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Init {
    /// A host file installed as `/init`.
    File(InputPath),
    /// `init: { script: "..." }`: the text installed as `/init`, mode 0755.
    Script(Spanned<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Initramfs {
    pub sources: Sources,
    pub files: Vec<FileEntry>,
    pub dirs: Vec<Spanned<String>>,
    pub symlinks: Vec<Symlink>,
    pub nodes: Vec<DeviceNode>,
    /// A static busybox installed as `/bin/busybox` with its applet links.
    pub busybox: Option<InputPath>,
    pub modules: Option<Modules>,
    pub init: Option<Init>,
    /// Default gzip.
    pub compression: Spanned<Compression>,
    pub ownership: Ownership,
}

/// `update:`: the slot contents and labels of a field-update bundle.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    /// The bundle's version when `--version` is not given.
    pub version: Option<Spanned<String>>,
    /// The device's compatible string; default: the image name.
    pub compatible: Spanned<String>,
    /// What fills a slot (exactly one of `slot`, `slot-artifact`).
    pub slot: Spanned<UpdateSlot>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateSlot {
    /// `slot: rootA`: the bytes of this partition (ab-slots).
    Partition(String),
    /// `slot-artifact: rootfs`: this artifact, as an image file on the
    /// OS-image partition (ab-slots-images).
    Artifact(String),
}

/// An entry of `outputs:`: a file the build writes beside the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutputKind {
    Raw,
    Bmap,
    Zst,
    Xz,
    Gz,
    /// Android sparse image (fastboot, UUU, `simg2img`).
    Simg,
    /// QEMU's qcow2, holes kept.
    Qcow2,
}

impl OutputKind {
    /// Every kind, in the order of the docs.
    pub const ALL: [OutputKind; 7] = [
        OutputKind::Raw,
        OutputKind::Bmap,
        OutputKind::Zst,
        OutputKind::Xz,
        OutputKind::Gz,
        OutputKind::Simg,
        OutputKind::Qcow2,
    ];

    /// The name written in `outputs:`.
    pub const fn keyword(self) -> &'static str {
        match self {
            OutputKind::Raw => "raw",
            OutputKind::Bmap => "bmap",
            OutputKind::Zst => "zst",
            OutputKind::Xz => "xz",
            OutputKind::Gz => "gz",
            OutputKind::Simg => "simg",
            OutputKind::Qcow2 => "qcow2",
        }
    }

    /// The file this output is written to, for an image named `image`.
    pub fn file_name(self, image: &str) -> String {
        match self {
            OutputKind::Raw => format!("{image}.img"),
            OutputKind::Simg | OutputKind::Qcow2 => format!("{image}.{}", self.keyword()),
            _ => format!("{image}.img.{}", self.keyword()),
        }
    }
}
