//! On-disk structures of FAT12/16/32 and their encodings: boot sector
//! (BIOS parameter block), FAT32 FSInfo sector, 8.3 and long-name directory
//! entries, FAT date and time, FAT table entries.
//!
//! Spec: Microsoft "FAT: General Overview of On-Disk Format" (fatgen103),
//! sections 3 (boot sector and BPB), 5 (FSInfo), 6 (directory entries) and 7
//! (long names). Every struct here is exactly its on-disk size (asserted) and
//! is built with little-endian field types, so encoding is a plain byte
//! copy; no struct is ever read back from disk by this crate.

use zerocopy::little_endian::{U16, U32};
use zerocopy::{Immutable, IntoBytes, KnownLayout, Unaligned};

/// The BIOS parameter block shared by FAT12/16 and FAT32 (fatgen103 §3.1).
#[derive(IntoBytes, Immutable, KnownLayout, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct Bpb {
    /// 0x00: x86 jump over the BPB to the boot code (`EB xx 90`).
    pub jump: [u8; 3],
    /// 0x03: OEM name, informational.
    pub oem_name: [u8; 8],
    /// 0x0B: bytes per logical sector (512, 1024, 2048 or 4096).
    pub bytes_per_sector: U16,
    /// 0x0D: sectors per cluster, a power of two up to 128.
    pub sectors_per_cluster: u8,
    /// 0x0E: sectors before the first FAT (boot sector included).
    pub reserved_sectors: U16,

    /// 0x10: number of FAT copies.
    pub num_fats: u8,
    /// 0x11: entries of the fixed root directory (0 on FAT32).
    pub root_entries: U16,
    /// 0x13: total sectors if below 65536, else 0 and `total_sectors_32`.
    pub total_sectors_16: U16,
    /// 0x15: media descriptor, repeated in the low byte of FAT entry 0.
    pub media: u8,
    /// 0x16: sectors per FAT on FAT12/16; 0 on FAT32 (which is how Linux and
    /// fsck.fat recognise FAT32).
    pub fat_sectors_16: U16,
    /// 0x18: CHS geometry: sectors per track (informational on LBA media).
    pub sectors_per_track: U16,
    /// 0x1A: CHS geometry: number of heads.
    pub heads: U16,
    /// 0x1C: sectors on the disk before this filesystem (partition start).
    pub hidden_sectors: U32,

    /// 0x20: total sectors when `total_sectors_16` is 0.
    pub total_sectors_32: U32,
}
const _: () = assert!(std::mem::size_of::<Bpb>() == 36);

/// The FAT32 part of the BPB, at offset 0x24 (fatgen103 §3.3).
#[derive(IntoBytes, Immutable, KnownLayout, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct Fat32Bpb {
    /// 0x24: sectors per FAT.
    pub fat_sectors_32: U32,
    /// 0x28: bit 7 clear = all FATs mirrored (bits 0-3 then unused).
    pub ext_flags: U16,
    /// 0x2A: filesystem version 0.0.
    pub fs_version: U16,
    /// 0x2C: first cluster of the root directory.
    pub root_cluster: U32,

    /// 0x30: sector of the FSInfo structure.
    pub fsinfo_sector: U16,
    /// 0x32: sector of the backup boot sector.
    pub backup_boot_sector: U16,
    /// 0x34: reserved, zero.
    pub reserved: [u8; 12],
}
const _: () = assert!(std::mem::size_of::<Fat32Bpb>() == 28);

/// The extended boot record that follows the BPB: at 0x24 on FAT12/16, at
/// 0x40 on FAT32 (offsets below are for FAT12/16; add 0x1C for FAT32).
#[derive(IntoBytes, Immutable, KnownLayout, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct VolumeInfo {
    /// 0x24: BIOS drive number (0x80 = first hard disk).
    pub drive_number: u8,
    /// 0x25: reserved; bit 0 is the Linux/Windows "dirty" flag, kept clear.
    pub reserved: u8,
    /// 0x26: 0x29 says the three following fields are present.
    pub boot_signature: u8,
    /// 0x27: volume serial number.
    pub volume_id: U32,
    /// 0x2B: volume label, space padded ("NO NAME    " when none).
    pub label: [u8; 11],
    /// 0x36: filesystem type string, informational ("FAT16   ").
    pub fs_type: [u8; 8],
}
const _: () = assert!(std::mem::size_of::<VolumeInfo>() == 26);

/// FAT32 FSInfo sector (fatgen103 §5): a free-space hint for drivers.
#[derive(IntoBytes, Immutable, KnownLayout, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct FsInfo {
    /// 0x000: lead signature `RRaA`.
    pub lead_signature: U32,
    /// 0x004: reserved, zero.
    pub reserved1: [u8; 480],
    /// 0x1E4: structure signature `rrAa`.
    pub struct_signature: U32,
    /// 0x1E8: free clusters, or 0xFFFFFFFF if unknown.
    pub free_count: U32,
    /// 0x1EC: hint for the next free cluster, or 0xFFFFFFFF.
    pub next_free: U32,
    /// 0x1F0: reserved, zero.
    pub reserved2: [u8; 12],
    /// 0x1FC: trail signature 0xAA550000.
    pub trail_signature: U32,
}
const _: () = assert!(std::mem::size_of::<FsInfo>() == 512);

pub const FSINFO_LEAD_SIGNATURE: u32 = 0x4161_5252;
pub const FSINFO_STRUCT_SIGNATURE: u32 = 0x6141_7272;
pub const FSINFO_TRAIL_SIGNATURE: u32 = 0xAA55_0000;

/// An 8.3 directory entry (fatgen103 §6).
#[derive(IntoBytes, Immutable, KnownLayout, Unaligned, Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct DirEntry {
    /// 0x00: short name, 8 + 3 characters, space padded, no dot.
    pub name: [u8; 11],
    /// 0x0B: attributes (`ATTR_*`).
    pub attr: u8,
    /// 0x0C: NT case flags: bit 3 = base lower case, bit 4 = extension.
    pub nt_case: u8,
    /// 0x0D: creation time, 10 ms units (0-199) beyond the 2 s of `ctime`.
    pub ctime_centis: u8,
    /// 0x0E: creation time.
    pub ctime: U16,

    /// 0x10: creation date.
    pub cdate: U16,
    /// 0x12: last access date.
    pub adate: U16,
    /// 0x14: high 16 bits of the first cluster (FAT32).
    pub cluster_hi: U16,
    /// 0x16: last modification time.
    pub mtime: U16,
    /// 0x18: last modification date.
    pub mdate: U16,
    /// 0x1A: low 16 bits of the first cluster.
    pub cluster_lo: U16,
    /// 0x1C: file size in bytes (0 for directories).
    pub size: U32,
}
const _: () = assert!(std::mem::size_of::<DirEntry>() == DIR_ENTRY_SIZE);

/// One piece (13 UTF-16 units) of a VFAT long name (fatgen103 §7).
#[derive(IntoBytes, Immutable, KnownLayout, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct LfnEntry {
    /// 0x00: sequence number 1..=20; 0x40 marks the last (stored first).
    pub order: u8,
    /// 0x01: name characters 1-5.
    pub name1: [U16; 5],
    /// 0x0B: always `ATTR_LONG_NAME`.
    pub attr: u8,
    /// 0x0C: entry type, zero.
    pub kind: u8,
    /// 0x0D: checksum of the 8.3 name this long name belongs to.
    pub checksum: u8,
    /// 0x0E: name characters 6-11.
    pub name2: [U16; 6],
    /// 0x1A: must be zero.
    pub cluster_lo: U16,
    /// 0x1C: name characters 12-13.
    pub name3: [U16; 2],
}
const _: () = assert!(std::mem::size_of::<LfnEntry>() == DIR_ENTRY_SIZE);

/// Bytes of one directory entry, short or long.
pub const DIR_ENTRY_SIZE: usize = 32;
/// UTF-16 units of a long name held by one LFN entry.
pub const LFN_CHARS_PER_ENTRY: usize = 13;
/// Marks the LFN entry holding the end of the name (stored first).
pub const LFN_LAST: u8 = 0x40;

pub const ATTR_VOLUME_ID: u8 = 0x08;
pub const ATTR_DIRECTORY: u8 = 0x10;
/// Set on files written by DOS, Windows, Linux and mtools alike.
pub const ATTR_ARCHIVE: u8 = 0x20;
/// read-only | hidden | system | volume id: the mark of an LFN entry.
pub const ATTR_LONG_NAME: u8 = 0x0F;
/// NT case flag: the 8-character base is displayed in lower case.
pub const CASE_LOWER_BASE: u8 = 0x08;
/// NT case flag: the 3-character extension is displayed in lower case.
pub const CASE_LOWER_EXT: u8 = 0x10;

/// Checksum of an 8.3 name stored in each of its LFN entries (fatgen103 §7),
/// which ties a long name to its short entry.
pub fn lfn_checksum(short: &[u8; 11]) -> u8 {
    short
        .iter()
        .fold(0u8, |sum, &c| sum.rotate_right(1).wrapping_add(c))
}

/// The LFN entries for `name` (UTF-16), in on-disk order (last part first).
pub fn lfn_entries(name: &[u16], checksum: u8) -> Vec<LfnEntry> {
    let count = name.len().div_ceil(LFN_CHARS_PER_ENTRY);
    let mut out = Vec::with_capacity(count);
    for index in (0..count).rev() {
        // Units after the name: one 0x0000 terminator, then 0xFFFF padding.
        let unit = |i: usize| -> U16 {
            let pos = index * LFN_CHARS_PER_ENTRY + i;
            U16::new(match pos.cmp(&name.len()) {
                std::cmp::Ordering::Less => name[pos],
                std::cmp::Ordering::Equal => 0,
                std::cmp::Ordering::Greater => 0xFFFF,
            })
        };
        let seq = u8::try_from(index + 1).unwrap_or(0x3F);
        out.push(LfnEntry {
            order: if index + 1 == count {
                seq | LFN_LAST
            } else {
                seq
            },
            name1: [unit(0), unit(1), unit(2), unit(3), unit(4)],
            attr: ATTR_LONG_NAME,
            kind: 0,
            checksum,
            name2: [unit(5), unit(6), unit(7), unit(8), unit(9), unit(10)],
            cluster_lo: U16::new(0),
            name3: [unit(11), unit(12)],
        });
    }
    out
}

/// A FAT timestamp: date, time (2 s units) and the 10 ms remainder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FatTime {
    pub date: u16,
    pub time: u16,
    pub centis: u8,
}

/// First second FAT can represent: 1980-01-01 00:00:00.
const FAT_EPOCH_UNIX: u64 = 315_532_800;
/// Last year FAT can represent (7-bit year field from 1980).
const FAT_LAST_YEAR: i64 = 2107;

impl FatTime {
    /// Encodes Unix time `secs` as FAT "local time", taking UTC as local
    /// time (what reproducible builds and `mkfs.fat --invariant` do).
    /// Times before 1980 or after 2107 are clamped to the representable range.
    pub fn from_unix(secs: u64) -> FatTime {
        let secs = secs.max(FAT_EPOCH_UNIX);
        let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
        let (mut year, mut month, mut day) = civil_from_days(days);
        let mut rem = secs % 86_400;
        if year > FAT_LAST_YEAR {
            (year, month, day) = (FAT_LAST_YEAR, 12, 31);
            rem = 86_399;
        }
        let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
        FatTime {
            date: (((year - 1980) as u16) << 9) | ((month as u16) << 5) | day as u16,
            time: ((h as u16) << 11) | ((m as u16) << 5) | (s / 2) as u16,
            centis: ((s % 2) * 100) as u8,
        }
    }
}

/// Proleptic Gregorian (year, month, day) of `days` since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Encodes FAT entries `entries` (cluster 0 first) as a FAT of `bits` bits.
pub fn encode_fat(entries: &[u32], bits: u8) -> Vec<u8> {
    match bits {
        12 => {
            // Two 12-bit entries share three bytes, low nibble first.
            let mut out = Vec::with_capacity(entries.len().div_ceil(2) * 3);
            for pair in entries.chunks(2) {
                let a = pair[0] & 0xFFF;
                let b = pair.get(1).map_or(0, |b| b & 0xFFF);
                out.push(a as u8);
                out.push(((a >> 8) | (b << 4)) as u8);
                out.push((b >> 4) as u8);
            }
            out.truncate((entries.len() * 3).div_ceil(2));
            out
        }
        16 => entries
            .iter()
            .flat_map(|&e| (e as u16).to_le_bytes())
            .collect(),
        _ => entries
            .iter()
            .flat_map(|&e| (e & 0x0FFF_FFFF).to_le_bytes())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_the_spec_example() {
        // fatgen103's algorithm applied by hand to "README  TXT".
        let mut sum = 0u8;
        for &c in b"README  TXT" {
            sum = (if sum & 1 != 0 { 0x80 } else { 0 }) + (sum >> 1);
            sum = sum.wrapping_add(c);
        }
        assert_eq!(lfn_checksum(b"README  TXT"), sum);
    }

    #[test]
    fn long_name_pieces_are_terminated_and_padded() {
        let name: Vec<u16> = "abcdefghijklmn".encode_utf16().collect(); // 14 units
        let e = lfn_entries(&name, 0xAB);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].order, 0x42);
        assert_eq!(e[1].order, 0x01);
        assert_eq!(e[0].name1[0].get(), u16::from(b'n'));
        assert_eq!(e[0].name1[1].get(), 0);
        assert_eq!(e[0].name1[2].get(), 0xFFFF);
        assert_eq!(e[0].name3[1].get(), 0xFFFF);
        // Exactly 13 units: no terminator needed.
        let e = lfn_entries(&name[..13], 0);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].name3[1].get(), u16::from(b'm'));
    }

    #[test]
    fn times_encode_as_utc_with_two_second_resolution() {
        // 2021-03-04 05:06:07 UTC
        let t = FatTime::from_unix(1_614_834_367);
        assert_eq!(t.date, (41 << 9) | (3 << 5) | 4);
        assert_eq!(t.time, (5 << 11) | (6 << 5) | 3);
        assert_eq!(t.centis, 100);
        let t = FatTime::from_unix(0);
        assert_eq!((t.date, t.time), ((1 << 5) | 1, 0));
        let t = FatTime::from_unix(u64::MAX / 2);
        assert_eq!(t.date >> 9, 127);
        // 2000-02-29 (leap day) 23:59:58
        let t = FatTime::from_unix(951_868_798);
        assert_eq!(t.date, (20 << 9) | (2 << 5) | 29);
        assert_eq!(t.time, (23 << 11) | (59 << 5) | 29);
    }

    #[test]
    fn fat12_packs_two_entries_in_three_bytes() {
        assert_eq!(
            encode_fat(&[0xFF8, 0xFFF, 0x003], 12),
            [0xF8, 0xFF, 0xFF, 0x03, 0x00]
        );
        assert_eq!(encode_fat(&[0x123, 0x456], 12), [0x23, 0x61, 0x45]);
        assert_eq!(encode_fat(&[0xFFF8, 3], 16), [0xF8, 0xFF, 3, 0]);
        assert_eq!(encode_fat(&[0xFFFF_FFF8], 32), [0xF8, 0xFF, 0xFF, 0x0F]);
    }
}
