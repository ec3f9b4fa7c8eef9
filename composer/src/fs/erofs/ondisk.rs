//! EROFS on-disk structures, as Linux 6.1 reads them.
//!
//! Layouts follow the kernel's `fs/erofs/erofs_fs.h` and
//! `Documentation/filesystems/erofs.rst`. Every struct is little-endian
//! zerocopy with its size asserted, so layout and encoding are one thing.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{Immutable, IntoBytes, KnownLayout};

/// `EROFS_SUPER_MAGIC_V1`.
pub const MAGIC: u32 = 0xE0F5_E1E2;
/// The superblock starts 1024 bytes into the image (room for a boot sector).
pub const SUPER_OFFSET: usize = 1024;
/// Block size: Linux 6.1 mounts only images whose block size is the page
/// size, 4 KiB on every architecture this tool serves.
pub const BLOCK_SIZE: u64 = 4096;
pub const BLOCK_BITS: u8 = 12;
/// Inodes are addressed in 32-byte slots (`EROFS_ISLOTBITS`): a node id is
/// the inode's byte offset from the metadata area's start divided by 32.
pub const SLOT: u64 = 32;
/// "No block" (`EROFS_NULL_ADDR`), in `i_u` of inodes without data blocks.
pub const NULL_ADDR: u32 = u32::MAX;

/// `feature_compat`: the superblock checksum is valid.
pub const COMPAT_SB_CHKSUM: u32 = 0x1;
/// `feature_compat`: extended inodes carry per-file mtimes (set by
/// mkfs.erofs; readers use the field either way).
pub const COMPAT_MTIME: u32 = 0x2;

/// `feature_incompat`: compressed data is aligned to the end of its
/// physical cluster, zeros before it (`LZ4_0PADDING`), so the decoder
/// knows its exact length.
pub const INCOMPAT_ZERO_PADDING: u32 = 0x1;
/// `feature_incompat`: per-algorithm configurations follow the
/// superblock, and physical clusters may span several blocks
/// (`COMPR_CFGS` and `BIG_PCLUSTER` share the bit).
pub const INCOMPAT_COMPR_CFGS: u32 = 0x2;
/// Bit of LZ4 in the algorithm bitmap (`Z_EROFS_COMPRESSION_LZ4` = 0).
pub const ALG_LZ4: u16 = 1;

/// `i_format` bit 0: the inode is extended (64 bytes).
pub const FORMAT_EXTENDED: u16 = 1;
/// `i_format` bits 1-3: the data layout.
pub const LAYOUT_FLAT_PLAIN: u16 = 0;
pub const LAYOUT_COMPRESSED_FULL: u16 = 1;
pub const LAYOUT_FLAT_INLINE: u16 = 2;

/// The superblock, at [`SUPER_OFFSET`].
#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C)]
pub struct SuperBlock {
    /// 0x00: [`MAGIC`].
    pub magic: U32,
    /// 0x04: `crc32c(~0)` (no final inversion) of the rest of block 0 from
    /// the superblock on, this field zero.
    pub checksum: U32,
    /// 0x08
    pub feature_compat: U32,
    /// 0x0c: log2 of the block size.
    pub blkszbits: u8,
    /// 0x0d: 16-byte slots of superblock extension (none).
    pub sb_extslots: u8,
    /// 0x0e: node id of the root directory (16 bits: the root must be
    /// near the start of the metadata area).
    pub root_nid: U16,

    /// 0x10: number of inodes.
    pub inos: U64,
    /// 0x18: the time of compact inodes (which store none).
    pub build_time: U64,

    /// 0x20
    pub build_time_nsec: U32,
    /// 0x24: image size in blocks.
    pub blocks: U32,
    /// 0x28: block of the metadata area (node ids count from it).
    pub meta_blkaddr: U32,
    /// 0x2c: block of the shared xattr area.
    pub xattr_blkaddr: U32,

    /// 0x30
    pub uuid: [u8; 16],

    /// 0x40
    pub volume_name: [u8; 16],

    /// 0x50
    pub feature_incompat: U32,
    /// 0x54: with `COMPR_CFGS`, the bitmap of algorithms whose
    /// configurations follow the superblock; else the LZ4 window (0: 64 KiB).
    pub compr_algs: U16,
    /// 0x56: extra devices (none).
    pub extra_devices: U16,
    /// 0x58
    pub devt_slotoff: U16,
    /// 0x5a
    pub reserved: [u8; 6],

    /// 0x60: the packed inode (none).
    pub packed_nid: U64,
    /// 0x68
    pub reserved2: [u8; 24],
}
const _: () = assert!(std::mem::size_of::<SuperBlock>() == 128);

/// The 32-byte inode: no time of its own (the superblock's build time),
/// 16-bit owners and link count, 32-bit size.
#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C)]
pub struct InodeCompact {
    /// 0x00: version bit and data layout.
    pub format: U16,
    /// 0x02: xattr body size: 0, or 12 + 4 * (`xattr_icount` - 1) bytes.
    pub xattr_icount: U16,
    /// 0x04: `st_mode`.
    pub mode: U16,
    /// 0x06
    pub nlink: U16,
    /// 0x08
    pub size: U32,
    /// 0x0c
    pub reserved: U32,

    /// 0x10: first data block, or the device number, or the compressed
    /// block count.
    pub u: U32,
    /// 0x14: inode number for 32-bit `stat`.
    pub ino: U32,
    /// 0x18
    pub uid: U16,
    /// 0x1a
    pub gid: U16,
    /// 0x1c
    pub reserved2: U32,
}
const _: () = assert!(std::mem::size_of::<InodeCompact>() == 32);

/// The 64-bit inode: its own mtime with nanoseconds, 32-bit owners.
#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C)]
pub struct InodeExtended {
    /// 0x00
    pub format: U16,
    /// 0x02
    pub xattr_icount: U16,
    /// 0x04
    pub mode: U16,
    /// 0x06
    pub reserved: U16,
    /// 0x08
    pub size: U64,

    /// 0x10
    pub u: U32,
    /// 0x14
    pub ino: U32,
    /// 0x18
    pub uid: U32,
    /// 0x1c
    pub gid: U32,

    /// 0x20: seconds (Linux shows it as atime, mtime and ctime).
    pub mtime: U64,
    /// 0x28
    pub mtime_nsec: U32,
    /// 0x2c
    pub nlink: U32,

    /// 0x30
    pub reserved2: [u8; 16],
}
const _: () = assert!(std::mem::size_of::<InodeExtended>() == 64);

/// A directory entry; the names follow the entries of the block, in the
/// same order, not terminated (the next name's offset ends each).
#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C, packed)]
pub struct Dirent {
    /// 0x00
    pub nid: U64,
    /// 0x08: offset of the name in the block.
    pub nameoff: U16,
    /// 0x0a: `FT_*`.
    pub file_type: u8,
    /// 0x0b
    pub reserved: u8,
}
const _: () = assert!(std::mem::size_of::<Dirent>() == 12);

/// The head of an inode's xattr body, after the inode.
#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C)]
pub struct XattrIbodyHeader {
    /// 0x00
    pub reserved: U32,
    /// 0x04: shared xattr ids (4 bytes each) following this header.
    pub shared_count: u8,
    /// 0x05
    pub reserved2: [u8; 7],
}
const _: () = assert!(std::mem::size_of::<XattrIbodyHeader>() == 12);

/// One xattr, inline or shared: name suffix and value follow, the whole
/// padded to 4 bytes.
#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C)]
pub struct XattrEntry {
    /// 0x00: length of the name after its prefix.
    pub name_len: u8,
    /// 0x01: the prefix (`XATTR_INDEX_*`).
    pub name_index: u8,
    /// 0x02
    pub value_size: U16,
}
const _: () = assert!(std::mem::size_of::<XattrEntry>() == 4);

/// The xattr name prefixes Linux 6.1 reads, with their indexes
/// (`EROFS_XATTR_INDEX_*`); a full name matches a whole-name entry exactly.
pub const XATTR_PREFIXES: [(&[u8], u8, bool); 5] = [
    (b"user.", 1, false),
    (b"system.posix_acl_access", 2, true),
    (b"system.posix_acl_default", 3, true),
    (b"trusted.", 4, false),
    (b"security.", 6, false),
];

/// `h_advise`: physical clusters of head-1 lclusters may span blocks.
pub const ADVISE_BIG_PCLUSTER_1: u16 = 0x2;
/// Logical cluster types (`di_advise` bits 0-1): stored uncompressed,
/// compressed with the head-1 algorithm, inside an earlier cluster.
pub const LCLUSTER_PLAIN: u16 = 0;
pub const LCLUSTER_HEAD1: u16 = 1;
pub const LCLUSTER_NONHEAD: u16 = 2;
/// `delta[0]` of the first non-head lcluster of a big pcluster holds the
/// pcluster's block count with this bit.
pub const D0_CBLKCNT: u16 = 1 << 11;

/// The header of a compressed inode's index, at the inode's end aligned
/// to 8; the full (legacy) indexes follow after 8 more bytes.
#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C)]
pub struct MapHeader {
    /// 0x00: fragment offset or inline size (unused).
    pub reserved: U32,
    /// 0x04: `ADVISE_*`.
    pub advise: U16,
    /// 0x06: algorithm of head-1 (bits 0-3) and head-2 (bits 4-7) lclusters.
    pub algorithm_type: u8,
    /// 0x07: log2 of the lcluster size - 12.
    pub cluster_bits: u8,
}
const _: () = assert!(std::mem::size_of::<MapHeader>() == 8);

/// One logical cluster's index (`z_erofs_lcluster_index`).
#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C)]
pub struct LclusterIndex {
    /// 0x00: `LCLUSTER_*`.
    pub advise: U16,
    /// 0x02: where the head's extent starts in the lcluster.
    pub cluster_ofs: U16,
    /// 0x04: a head's first block, or a non-head's distances (in lclusters)
    /// back to its head (`delta[0]`) and on to the next head (`delta[1]`).
    pub u: U32,
}
const _: () = assert!(std::mem::size_of::<LclusterIndex>() == 8);

/// The LZ4 configuration after the superblock (`z_erofs_lz4_cfgs`),
/// behind its 16-bit length.
#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C)]
pub struct Lz4Cfgs {
    /// 0x00: the length of what follows (14).
    pub len: U16,
    /// 0x02: LZ4 window (0: 64 KiB).
    pub max_distance: U16,
    /// 0x04: largest physical cluster, in blocks.
    pub max_pclusterblks: U16,
    /// 0x06
    pub reserved: [u8; 10],
}
const _: () = assert!(std::mem::size_of::<Lz4Cfgs>() == 16);
