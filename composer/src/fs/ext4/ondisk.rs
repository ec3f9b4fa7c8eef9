//! ext4 on-disk structures and the checksums that cover them.
//!
//! Layouts follow the kernel's `Documentation/filesystems/ext4/` (the
//! "Data Structures and Algorithms" chapters: super.rst, group_descr.rst,
//! inodes.rst, ifork.rst, directory.rst, attributes.rst) and e2fsprogs'
//! `lib/ext2fs/ext2_fs.h`; the journal superblock follows `journal.rst`
//! (big-endian, unlike everything else). Every struct is little-endian
//! zerocopy with its size asserted, so layout and encoding are one thing.
//!
//! Checksums: metadata_csum uses CRC32C *without* the final inversion
//! (the kernel's `ext4_chksum`, e2fsprogs' `ext2fs_crc32c_le`); the `crc32c`
//! crate computes the standard (inverted) form with SSE4.2, so [`crc32c_raw`]
//! undoes the inversions. uninit_bg's group descriptor checksum is CRC16
//! (ANSI polynomial, reflected), kept for filesystems without metadata_csum.

use zerocopy::byteorder::big_endian as be;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `EXT4_SUPER_MAGIC`.
pub const SUPER_MAGIC: u16 = 0xEF53;
/// The superblock always starts 1024 bytes into the filesystem.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// Inode size used by this writer (mke2fs's default for ext4): room for
/// nanosecond timestamps, crtime and in-inode extended attributes.
pub const INODE_SIZE: u16 = 256;
/// `i_extra_isize`: the fields after the 128-byte base inode we fill
/// (through `i_projid`).
pub const EXTRA_ISIZE: u16 = 32;
/// First non-reserved inode (`EXT4_GOOD_OLD_FIRST_INO`).
pub const FIRST_INO: u32 = 11;
pub const ROOT_INO: u32 = 2;
pub const JOURNAL_INO: u32 = 8;
pub const LOST_FOUND_INO: u32 = 11;

// s_feature_compat
pub const COMPAT_HAS_JOURNAL: u32 = 0x4;
pub const COMPAT_EXT_ATTR: u32 = 0x8;
pub const COMPAT_DIR_INDEX: u32 = 0x20;
// s_feature_incompat
pub const INCOMPAT_FILETYPE: u32 = 0x2;
pub const INCOMPAT_EXTENTS: u32 = 0x40;
pub const INCOMPAT_64BIT: u32 = 0x80;
pub const INCOMPAT_FLEX_BG: u32 = 0x200;
// s_feature_ro_compat
pub const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
pub const RO_COMPAT_LARGE_FILE: u32 = 0x2;
pub const RO_COMPAT_HUGE_FILE: u32 = 0x8;
pub const RO_COMPAT_GDT_CSUM: u32 = 0x10;
pub const RO_COMPAT_DIR_NLINK: u32 = 0x20;
pub const RO_COMPAT_EXTRA_ISIZE: u32 = 0x40;
pub const RO_COMPAT_METADATA_CSUM: u32 = 0x400;

/// `s_state`: cleanly unmounted.
pub const STATE_VALID: u16 = 1;
/// `s_errors`: continue on errors (mke2fs's default).
pub const ERRORS_CONTINUE: u16 = 1;
/// `s_flags`: directory hashes treat name bytes as unsigned, the same on
/// every architecture (mke2fs picks by the build host's `char`).
pub const FLAGS_UNSIGNED_HASH: u32 = 0x2;
/// `s_def_hash_version` / `dx_root_info.hash_version`: half MD4.
pub const HASH_HALF_MD4: u8 = 1;
/// `s_default_mount_opts`: user_xattr | acl, as mke2fs sets.
pub const DEFAULT_MOUNT_OPTS: u32 = 0x0004 | 0x0008;
/// `s_checksum_type`: CRC32C.
pub const CHECKSUM_CRC32C: u8 = 1;
/// `s_jnl_backup_type`: `s_jnl_blocks` holds a copy of the journal inode's
/// `i_block` and size (`EXT3_JNL_BACKUP_BLOCKS`).
pub const JNL_BACKUP_BLOCKS: u8 = 1;

// bg_flags
pub const BG_INODE_UNINIT: u16 = 0x1;

// i_flags
pub const INDEX_FL: u32 = 0x1000;
pub const EXTENTS_FL: u32 = 0x80000;

/// The directory entry file type of a directory (`filetype` feature; all
/// of them: `NodeKind::dirent_type`).
pub const FT_DIR: u8 = 2;
/// `file_type` of the checksum tail that ends a leaf directory block.
pub const FT_DIR_CSUM: u8 = 0xDE;

/// `eh_magic` of every extent tree node.
pub const EXTENT_MAGIC: u16 = 0xF30A;
/// Longest initialized extent (`EXT_INIT_MAX_LEN`).
pub const EXTENT_MAX_LEN: u32 = 32768;

/// Magic of an xattr block and of the in-inode xattr area.
pub const XATTR_MAGIC: u32 = 0xEA02_0000;

/// The ext4 superblock (1024 bytes at byte 1024 of the filesystem).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone)]
#[repr(C)]
pub struct Superblock {
    /// 0x00: total inodes.
    pub s_inodes_count: U32,
    /// 0x04: total blocks, low 32 bits.
    pub s_blocks_count_lo: U32,
    /// 0x08: blocks reserved for root, low 32 bits.
    pub s_r_blocks_count_lo: U32,
    /// 0x0C: free blocks, low 32 bits.
    pub s_free_blocks_count_lo: U32,

    /// 0x10: free inodes.
    pub s_free_inodes_count: U32,
    /// 0x14: first data block (1 for 1 KiB blocks, else 0).
    pub s_first_data_block: U32,
    /// 0x18: block size is 2 ^ (10 + this).
    pub s_log_block_size: U32,
    /// 0x1C: cluster size exponent (= block size without bigalloc).
    pub s_log_cluster_size: U32,

    /// 0x20: blocks per group.
    pub s_blocks_per_group: U32,
    /// 0x24: clusters per group.
    pub s_clusters_per_group: U32,
    /// 0x28: inodes per group.
    pub s_inodes_per_group: U32,
    /// 0x2C: last mount time.
    pub s_mtime: U32,

    /// 0x30: last write time.
    pub s_wtime: U32,
    /// 0x34: mounts since last check.
    pub s_mnt_count: U16,
    /// 0x36: mounts before a check is forced (0xFFFF: never).
    pub s_max_mnt_count: U16,
    /// 0x38: `SUPER_MAGIC`.
    pub s_magic: U16,
    /// 0x3A: state (`STATE_VALID`).
    pub s_state: U16,
    /// 0x3C: behaviour on errors.
    pub s_errors: U16,
    /// 0x3E: minor revision.
    pub s_minor_rev_level: U16,

    /// 0x40: time of last check.
    pub s_lastcheck: U32,
    /// 0x44: maximum time between checks (0: none).
    pub s_checkinterval: U32,
    /// 0x48: creator OS (0: Linux).
    pub s_creator_os: U32,
    /// 0x4C: revision (1: dynamic inode sizes).
    pub s_rev_level: U32,

    /// 0x50: default uid for reserved blocks.
    pub s_def_resuid: U16,
    /// 0x52: default gid for reserved blocks.
    pub s_def_resgid: U16,
    /// 0x54: first non-reserved inode.
    pub s_first_ino: U32,
    /// 0x58: inode size.
    pub s_inode_size: U16,
    /// 0x5A: group holding this superblock copy.
    pub s_block_group_nr: U16,
    /// 0x5C: compatible features.
    pub s_feature_compat: U32,

    /// 0x60: incompatible features.
    pub s_feature_incompat: U32,
    /// 0x64: read-only compatible features.
    pub s_feature_ro_compat: U32,
    /// 0x68: volume UUID.
    pub s_uuid: [u8; 16],
    /// 0x78: volume label.
    pub s_volume_name: [u8; 16],
    /// 0x88: directory last mounted on.
    pub s_last_mounted: [u8; 64],
    /// 0xC8: compression bitmap (unused).
    pub s_algorithm_usage_bitmap: U32,
    /// 0xCC: blocks to preallocate for files.
    pub s_prealloc_blocks: u8,
    /// 0xCD: blocks to preallocate for directories.
    pub s_prealloc_dir_blocks: u8,
    /// 0xCE: reserved GDT blocks for online growth (resize_inode).
    pub s_reserved_gdt_blocks: U16,

    /// 0xD0: UUID of an external journal.
    pub s_journal_uuid: [u8; 16],
    /// 0xE0: journal inode.
    pub s_journal_inum: U32,
    /// 0xE4: external journal device.
    pub s_journal_dev: U32,
    /// 0xE8: head of the orphan inode list.
    pub s_last_orphan: U32,
    /// 0xEC: directory hash seed.
    pub s_hash_seed: [u8; 16],
    /// 0xFC: default directory hash algorithm.
    pub s_def_hash_version: u8,
    /// 0xFD: what `s_jnl_blocks` holds.
    pub s_jnl_backup_type: u8,
    /// 0xFE: group descriptor size (64bit only).
    pub s_desc_size: U16,

    /// 0x100: default mount options.
    pub s_default_mount_opts: U32,
    /// 0x104: first meta_bg group.
    pub s_first_meta_bg: U32,
    /// 0x108: filesystem creation time.
    pub s_mkfs_time: U32,
    /// 0x10C: copy of the journal inode's `i_block`, size high, size.
    pub s_jnl_blocks: [U32; 17],
    /// 0x150: total blocks, high 32 bits.
    pub s_blocks_count_hi: U32,
    /// 0x154: reserved blocks, high 32 bits.
    pub s_r_blocks_count_hi: U32,
    /// 0x158: free blocks, high 32 bits.
    pub s_free_blocks_count_hi: U32,
    /// 0x15C: every inode has at least this much extra space.
    pub s_min_extra_isize: U16,
    /// 0x15E: new inodes should reserve this much extra space.
    pub s_want_extra_isize: U16,

    /// 0x160: miscellaneous flags (`FLAGS_UNSIGNED_HASH`).
    pub s_flags: U32,
    /// 0x164: RAID stride.
    pub s_raid_stride: U16,
    /// 0x166: MMP check interval.
    pub s_mmp_interval: U16,
    /// 0x168: MMP block.
    pub s_mmp_block: U64,
    /// 0x170: RAID stripe width.
    pub s_raid_stripe_width: U32,
    /// 0x174: groups per flex group is 2 ^ this.
    pub s_log_groups_per_flex: u8,
    /// 0x175: metadata checksum algorithm.
    pub s_checksum_type: u8,
    /// 0x176: encryption level / padding.
    pub s_reserved_pad: U16,
    /// 0x178: KiB written over the filesystem's life.
    pub s_kbytes_written: U64,

    /// 0x180: snapshot and error-tracking fields (unused here).
    pub s_snapshot_and_errors: [u8; 0x80],
    /// 0x200: default mount options string.
    pub s_mount_opts: [u8; 64],
    /// 0x240: user quota inode.
    pub s_usr_quota_inum: U32,
    /// 0x244: group quota inode.
    pub s_grp_quota_inum: U32,
    /// 0x248: overhead blocks (0: let the kernel compute).
    pub s_overhead_clusters: U32,
    /// 0x24C: sparse_super2 backup groups.
    pub s_backup_bgs: [U32; 2],
    /// 0x254: encryption algorithms.
    pub s_encrypt_algos: [u8; 4],
    /// 0x258: encryption salt.
    pub s_encrypt_pw_salt: [u8; 16],
    /// 0x268: lost+found inode (0: find by name).
    pub s_lpf_ino: U32,
    /// 0x26C: project quota inode.
    pub s_prj_quota_inum: U32,

    /// 0x270: checksum seed (csum_seed feature only).
    pub s_checksum_seed: U32,
    /// 0x274: high bytes of the timestamps and error codes.
    pub s_time_hi: [u8; 8],
    /// 0x27C: filename charset encoding.
    pub s_encoding: U16,
    /// 0x27E: encoding flags.
    pub s_encoding_flags: U16,
    /// 0x280: orphan file inode.
    pub s_orphan_file_inum: U32,
    /// 0x284: padding.
    pub s_reserved: [U32; 94],
    /// 0x3FC: CRC32C of the superblock up to this field.
    pub s_checksum: U32,
}
const _: () = assert!(std::mem::size_of::<Superblock>() == 1024);

/// A block group descriptor; 64 bytes with the 64bit feature, else only
/// the first 32 bytes are on disk.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Default)]
#[repr(C)]
pub struct GroupDesc {
    /// 0x00: block bitmap location, low 32 bits.
    pub bg_block_bitmap_lo: U32,
    /// 0x04: inode bitmap location, low 32 bits.
    pub bg_inode_bitmap_lo: U32,
    /// 0x08: inode table location, low 32 bits.
    pub bg_inode_table_lo: U32,
    /// 0x0C: free blocks, low 16 bits.
    pub bg_free_blocks_count_lo: U16,
    /// 0x0E: free inodes, low 16 bits.
    pub bg_free_inodes_count_lo: U16,

    /// 0x10: directories, low 16 bits.
    pub bg_used_dirs_count_lo: U16,
    /// 0x12: `BG_*` flags.
    pub bg_flags: U16,
    /// 0x14: snapshot exclusion bitmap, low 32 bits.
    pub bg_exclude_bitmap_lo: U32,
    /// 0x18: block bitmap checksum, low 16 bits.
    pub bg_block_bitmap_csum_lo: U16,
    /// 0x1A: inode bitmap checksum, low 16 bits.
    pub bg_inode_bitmap_csum_lo: U16,
    /// 0x1C: never-used inodes at the end of the table, low 16 bits.
    pub bg_itable_unused_lo: U16,
    /// 0x1E: descriptor checksum.
    pub bg_checksum: U16,

    /// 0x20: block bitmap location, high 32 bits.
    pub bg_block_bitmap_hi: U32,
    /// 0x24: inode bitmap location, high 32 bits.
    pub bg_inode_bitmap_hi: U32,
    /// 0x28: inode table location, high 32 bits.
    pub bg_inode_table_hi: U32,
    /// 0x2C: free blocks, high 16 bits.
    pub bg_free_blocks_count_hi: U16,
    /// 0x2E: free inodes, high 16 bits.
    pub bg_free_inodes_count_hi: U16,

    /// 0x30: directories, high 16 bits.
    pub bg_used_dirs_count_hi: U16,
    /// 0x32: unused inodes, high 16 bits.
    pub bg_itable_unused_hi: U16,
    /// 0x34: snapshot exclusion bitmap, high 32 bits.
    pub bg_exclude_bitmap_hi: U32,
    /// 0x38: block bitmap checksum, high 16 bits.
    pub bg_block_bitmap_csum_hi: U16,
    /// 0x3A: inode bitmap checksum, high 16 bits.
    pub bg_inode_bitmap_csum_hi: U16,
    /// 0x3C: padding.
    pub bg_reserved: U32,
}
const _: () = assert!(std::mem::size_of::<GroupDesc>() == 64);
/// Offset of `bg_checksum` in a group descriptor.
pub const BG_CHECKSUM_OFFSET: usize = 0x1E;

/// An inode: the 128-byte base plus the 32 bytes counted by `i_extra_isize`.
/// The rest of the 256-byte slot holds in-inode extended attributes.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone)]
#[repr(C)]
pub struct Inode {
    /// 0x00: file type and permission bits.
    pub i_mode: U16,
    /// 0x02: owner uid, low 16 bits.
    pub i_uid: U16,
    /// 0x04: size in bytes, low 32 bits.
    pub i_size_lo: U32,
    /// 0x08: access time, seconds.
    pub i_atime: U32,
    /// 0x0C: change time, seconds.
    pub i_ctime: U32,

    /// 0x10: modification time, seconds.
    pub i_mtime: U32,
    /// 0x14: deletion time.
    pub i_dtime: U32,
    /// 0x18: group gid, low 16 bits.
    pub i_gid: U16,
    /// 0x1A: hard link count.
    pub i_links_count: U16,
    /// 0x1C: 512-byte sectors used, low 32 bits.
    pub i_blocks_lo: U32,

    /// 0x20: `*_FL` flags.
    pub i_flags: U32,
    /// 0x24: inode version (osd1).
    pub i_version: U32,
    /// 0x28: extent tree root, inline symlink target or device number.
    pub i_block: [u8; 60],
    /// 0x64: file version (NFS).
    pub i_generation: U32,
    /// 0x68: extended attribute block, low 32 bits.
    pub i_file_acl_lo: U32,
    /// 0x6C: size in bytes, high 32 bits.
    pub i_size_high: U32,
    /// 0x70: obsolete fragment address.
    pub i_obso_faddr: U32,
    /// 0x74: sectors used, high 16 bits.
    pub i_blocks_high: U16,
    /// 0x76: extended attribute block, high 16 bits.
    pub i_file_acl_high: U16,
    /// 0x78: uid, high 16 bits.
    pub i_uid_high: U16,
    /// 0x7A: gid, high 16 bits.
    pub i_gid_high: U16,
    /// 0x7C: inode checksum, low 16 bits.
    pub i_checksum_lo: U16,
    /// 0x7E: reserved.
    pub i_reserved: U16,

    /// 0x80: bytes of this struct past 128 in use (`EXTRA_ISIZE`).
    pub i_extra_isize: U16,
    /// 0x82: inode checksum, high 16 bits.
    pub i_checksum_hi: U16,
    /// 0x84: change time, nanoseconds << 2 | epoch bits.
    pub i_ctime_extra: U32,
    /// 0x88: modification time, extra.
    pub i_mtime_extra: U32,
    /// 0x8C: access time, extra.
    pub i_atime_extra: U32,

    /// 0x90: creation time, seconds.
    pub i_crtime: U32,
    /// 0x94: creation time, extra.
    pub i_crtime_extra: U32,
    /// 0x98: version, high 32 bits.
    pub i_version_hi: U32,
    /// 0x9C: project id.
    pub i_projid: U32,
}
// The original 128-byte ext2 inode and the EXTRA_ISIZE bytes we fill.
const _: () = assert!(std::mem::size_of::<Inode>() == 128 + EXTRA_ISIZE as usize);

/// Header of every extent tree node (in `i_block` or in a block).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Default)]
#[repr(C)]
pub struct ExtentHeader {
    /// 0x0: `EXTENT_MAGIC`.
    pub eh_magic: U16,
    /// 0x2: valid entries following.
    pub eh_entries: U16,
    /// 0x4: capacity in entries.
    pub eh_max: U16,
    /// 0x6: 0 for leaves, else levels of index below.
    pub eh_depth: U16,
    /// 0x8: tree generation (unused).
    pub eh_generation: U32,
}
const _: () = assert!(std::mem::size_of::<ExtentHeader>() == 12);

/// A leaf entry: `ee_len` blocks from logical `ee_block` at a physical block.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Default)]
#[repr(C)]
pub struct Extent {
    /// 0x0: first logical block.
    pub ee_block: U32,
    /// 0x4: length in blocks (at most `EXTENT_MAX_LEN`).
    pub ee_len: U16,
    /// 0x6: physical start, high 16 bits.
    pub ee_start_hi: U16,
    /// 0x8: physical start, low 32 bits.
    pub ee_start_lo: U32,
}
const _: () = assert!(std::mem::size_of::<Extent>() == 12);

/// An index entry: the subtree covering logical blocks from `ei_block`.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Default)]
#[repr(C)]
pub struct ExtentIndex {
    /// 0x0: first logical block covered.
    pub ei_block: U32,
    /// 0x4: block of the child node, low 32 bits.
    pub ei_leaf_lo: U32,
    /// 0x8: block of the child node, high 16 bits.
    pub ei_leaf_hi: U16,
    /// 0xA: unused.
    pub ei_unused: U16,
}
const _: () = assert!(std::mem::size_of::<ExtentIndex>() == 12);

/// Header of an extended attribute block.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Default)]
#[repr(C)]
pub struct XattrHeader {
    /// 0x00: `XATTR_MAGIC`.
    pub h_magic: U32,
    /// 0x04: inodes sharing this block.
    pub h_refcount: U32,
    /// 0x08: blocks used (always 1).
    pub h_blocks: U32,
    /// 0x0C: hash of all entry hashes.
    pub h_hash: U32,

    /// 0x10: CRC32C of the block (metadata_csum).
    pub h_checksum: U32,
    /// 0x14: reserved.
    pub h_reserved: [U32; 3],
}
const _: () = assert!(std::mem::size_of::<XattrHeader>() == 32);

/// An extended attribute entry, followed by its name (padded to 4 bytes).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Default)]
#[repr(C)]
pub struct XattrEntry {
    /// 0x0: length of the name suffix.
    pub e_name_len: u8,
    /// 0x1: name prefix index (1 `user.`, 4 `trusted.`, 6 `security.`, ...).
    pub e_name_index: u8,
    /// 0x2: value offset (from the first entry in an inode, from the block
    /// start in a block).
    pub e_value_offs: U16,
    /// 0x4: inode holding the value (ea_inode only; 0 here).
    pub e_value_inum: U32,
    /// 0x8: value length.
    pub e_value_size: U32,
    /// 0xC: hash of name and value.
    pub e_hash: U32,
}
const _: () = assert!(std::mem::size_of::<XattrEntry>() == 16);

/// The jbd2 journal superblock (big-endian), in the journal's first block.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone)]
#[repr(C)]
pub struct JournalSuperblock {
    /// 0x00: `JBD2_MAGIC`.
    pub h_magic: be::U32,
    /// 0x04: block type (`JBD2_SUPERBLOCK_V2`).
    pub h_blocktype: be::U32,
    /// 0x08: transaction id of this block (0).
    pub h_sequence: be::U32,
    /// 0x0C: journal block size.
    pub s_blocksize: be::U32,

    /// 0x10: journal length in blocks.
    pub s_maxlen: be::U32,
    /// 0x14: first log block.
    pub s_first: be::U32,
    /// 0x18: first expected transaction id.
    pub s_sequence: be::U32,
    /// 0x1C: first block of the log (0: the journal is empty).
    pub s_start: be::U32,

    /// 0x20: error value.
    pub s_errno: be::U32,
    /// 0x24: compatible features.
    pub s_feature_compat: be::U32,
    /// 0x28: incompatible features.
    pub s_feature_incompat: be::U32,
    /// 0x2C: read-only compatible features.
    pub s_feature_ro_compat: be::U32,

    /// 0x30: journal UUID (the filesystem's for an internal journal).
    pub s_uuid: [u8; 16],

    /// 0x40: filesystems sharing the journal.
    pub s_nr_users: be::U32,
    /// 0x44: location of a dynamic superblock copy.
    pub s_dynsuper: be::U32,
    /// 0x48: transaction blocks limit.
    pub s_max_transaction: be::U32,
    /// 0x4C: transaction data blocks limit.
    pub s_max_trans_data: be::U32,
    /// 0x50: checksum algorithm and padding.
    pub s_checksum_type: [u8; 4],
    /// 0x54: fast commit blocks, padding.
    pub s_padding: [be::U32; 42],
    /// 0xFC: checksum of the superblock (csum v2/v3 only).
    pub s_checksum: be::U32,
    /// 0x100: UUIDs of the filesystems sharing the journal.
    pub s_users: [u8; 16 * 48],
}
const _: () = assert!(std::mem::size_of::<JournalSuperblock>() == 1024);

/// `JBD2_MAGIC_NUMBER`.
pub const JBD2_MAGIC: u32 = 0xC03B_3998;
/// `JBD2_SUPERBLOCK_V2`.
pub const JBD2_SUPERBLOCK_V2: u32 = 4;

/// CRC32C as ext4 uses it: no pre- or post-inversion (`crc32c_le`).
pub fn crc32c_raw(seed: u32, data: &[u8]) -> u32 {
    !crc32c::crc32c_append(!seed, data)
}

/// CRC16 (ANSI, reflected, polynomial 0xA001) as e2fsprogs' `ext2fs_crc16`.
pub fn crc16(mut crc: u16, data: &[u8]) -> u16 {
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// The earliest and latest second ext4's 34-bit times hold
/// (1901-12-13 and 2446-05-10): the kernel's `s_time_min`/`s_time_max`.
pub const TIME_MIN: i64 = -(1 << 31);
pub const TIME_MAX: i64 = (1 << 31) - 1 + (3 << 32);

/// Encodes a time as (seconds field, `_extra` field): the low 32 bits of
/// the seconds, and nanoseconds << 2 with the two epoch bits that extend
/// the signed 32-bit seconds to 34 bits (years 1901 to 2446). Times outside
/// that range are clamped to its ends with nanoseconds 0, as the kernel's
/// `timestamp_truncate` does, instead of wrapping into the other end.
pub fn encode_time(sec: i64, nsec: u32) -> (u32, u32) {
    let (sec, nsec) = if sec <= TIME_MIN {
        (TIME_MIN, 0)
    } else if sec >= TIME_MAX {
        (TIME_MAX, 0)
    } else {
        (sec, nsec)
    };
    let lo = sec as i32;
    let epoch = ((sec - i64::from(lo)) >> 32) as u32 & 3;
    (lo as u32, (nsec.min(999_999_999) << 2) | epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_crc32c_matches_the_kernel_convention() {
        // crc32c_le(~0, "123456789") without final inversion = ~0xE3069283.
        assert_eq!(crc32c_raw(!0, b"123456789"), !0xE306_9283);
    }

    #[test]
    fn crc16_matches_the_ansi_check_value() {
        // CRC-16/ARC of "123456789" is 0xBB3D (init 0).
        assert_eq!(crc16(0, b"123456789"), 0xBB3D);
    }

    #[test]
    fn times_past_2038_use_the_epoch_bits() {
        assert_eq!(encode_time(5, 7), (5, 28));
        assert_eq!(encode_time(-1, 0), (u32::MAX, 0));
        let (lo, extra) = encode_time(1 << 31, 0);
        assert_eq!((lo, extra), (1 << 31, 1));
    }

    #[test]
    fn times_outside_the_range_are_clamped_not_wrapped() {
        // 1800-01-01 and 3000-01-01.
        assert_eq!(encode_time(-5_364_662_400, 5), (0x8000_0000, 0));
        assert_eq!(encode_time(32_503_680_000, 5), (0x7fff_ffff, 3));
        assert_eq!(encode_time(TIME_MIN + 1, 4), (0x8000_0001, 16));
    }
}
