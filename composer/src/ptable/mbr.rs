//! The MBR (DOS) table: classic, protective (under a GPT) and hybrid, and
//! the EBR chain of logical partitions.
//!
//! The 72 bytes we own of an MBR are 440..512 of LBA 0: disk signature,
//! four 16-byte entries, 0x55 0xAA. Bytes 0..440 are boot code and belong to
//! whoever installs one (a raw blob), so they are never written here. An EBR
//! is a whole sector with the same tail: entry 1 the logical partition
//! (start relative to the EBR), entry 2 the link to the next EBR (start
//! relative to the extended partition, size from that EBR to the end of its
//! partition, type 0x05), as Linux, sfdisk and the kernel's msdos parser
//! expect.
//!
//! CHS fields are filled as sfdisk fills them for a disk image: geometry 255
//! heads × 63 sectors, and 1023/254/63 (bytes `fe ff ff`) when beyond
//! cylinder 1023. A hybrid MBR lists the mirrored partitions and the 0xEE
//! entry in the order the plan numbered them (genimage's: mirrors first).
//! The protective entry follows UEFI 2.10 §5.2.3: type 0xEE,
//! start LBA 1, start CHS 0/0/2, end CHS `ff ff ff`, size the whole disk
//! (capped at 2^32-1). The MBR, EBRs and GPT we write for a plan are
//! byte-identical to what `sfdisk` writes for the same layout (tested).

use crate::plan::{Plan, TableKind};
use zerocopy::little_endian::U32;
use zerocopy::{Immutable, IntoBytes, KnownLayout};

/// Where the MBR's own bytes start within LBA 0 (after the boot code).
pub const TABLE_OFFSET: u64 = 440;
/// 0x55 0xAA at bytes 510..512: marks a valid MBR or EBR.
const BOOT_SIGNATURE: [u8; 2] = [0x55, 0xaa];
/// Status byte of a bootable ("active") partition.
const ACTIVE: u8 = 0x80;
/// Type of the GPT protective entry.
const TYPE_GPT_PROTECTIVE: u8 = 0xee;
/// Type of the extended partition in the MBR ("W95 Ext'd (LBA)", what
/// sfdisk writes for an extended partition on a disk image).
const TYPE_EXTENDED_LBA: u8 = 0x0f;
/// Type of an EBR's link to the next EBR ("Extended", what Linux and sfdisk use).
const TYPE_EXTENDED: u8 = 0x05;
/// Heads per cylinder and sectors per track of the fake geometry sfdisk and
/// fdisk use for CHS fields of disk images.
const HEADS: u64 = 255;
const SECTORS_PER_TRACK: u64 = 63;
/// The largest cylinder a CHS field can hold.
const MAX_CYLINDER: u64 = 1023;
/// CHS of anything beyond cylinder 1023: 1023/254/63.
const CHS_BEYOND: [u8; 3] = [0xfe, 0xff, 0xff];
/// Ending CHS of the protective entry: UEFI allows 0xFFFFFF ("not
/// representable") and sfdisk and sgdisk always write it, so we do too and
/// our protective MBR is byte-identical to theirs.
const PROTECTIVE_CHS_LAST: [u8; 3] = [0xff, 0xff, 0xff];

/// One MBR entry, 16 bytes.
#[derive(IntoBytes, Immutable, KnownLayout, Clone, Copy, Default)]
#[repr(C)]
pub struct MbrEntry {
    /// 0: 0x80 = bootable, 0x00 = not.
    pub status: u8,
    /// 1: CHS of the first sector (head, sector | cylinder high bits, cylinder).
    pub chs_first: [u8; 3],
    /// 4: partition type byte.
    pub os_type: u8,
    /// 5: CHS of the last sector.
    pub chs_last: [u8; 3],
    /// 8: first sector (LBA; relative for EBR entries).
    pub start_lba: U32,
    /// 12: number of sectors.
    pub sectors: U32,
}

const _: () = assert!(std::mem::size_of::<MbrEntry>() == 16);

/// The MBR from byte 440 of its sector: 72 bytes.
#[derive(IntoBytes, Immutable, KnownLayout, Clone, Copy, Default)]
#[repr(C)]
pub struct MbrTail {
    /// 440: disk signature (the "disk identifier" fdisk shows).
    pub disk_signature: U32,
    /// 444: zero (0x5a5a would mark it copy-protected).
    pub reserved: [u8; 2],
    /// 446: the four entries.
    pub entries: [MbrEntry; 4],

    /// 510: 0x55 0xAA.
    pub boot_signature: [u8; 2],
}

const _: () = assert!(std::mem::size_of::<MbrTail>() == 72);

/// CHS bytes of `lba` in the 255 × 63 geometry, saturated beyond cylinder 1023.
pub fn chs(lba: u64) -> [u8; 3] {
    let cylinder = lba / (HEADS * SECTORS_PER_TRACK);
    if cylinder > MAX_CYLINDER {
        return CHS_BEYOND;
    }
    let head = (lba / SECTORS_PER_TRACK) % HEADS;
    let sector = lba % SECTORS_PER_TRACK + 1;
    // Bounded above: head < 255, sector <= 63, cylinder <= 1023.
    [
        head as u8,
        sector as u8 | (((cylinder >> 8) as u8) << 6),
        (cylinder & 0xff) as u8,
    ]
}

/// An entry for sectors `first..first + sectors` (absolute LBAs, for CHS)
/// stored with start `stored_start` (relative in EBRs).
fn entry(status: u8, os_type: u8, first: u64, sectors: u64, stored_start: u64) -> MbrEntry {
    let last = (first + sectors).saturating_sub(1);
    MbrEntry {
        status,
        chs_first: chs(first),
        os_type,
        chs_last: chs(last),
        // The plan keeps everything an MBR describes below 2^32 sectors.
        start_lba: U32::new(u32::try_from(stored_start).unwrap_or(u32::MAX)),
        sectors: U32::new(u32::try_from(sectors).unwrap_or(u32::MAX)),
    }
}

fn tail(disk_signature: u32, entries: [MbrEntry; 4]) -> MbrTail {
    MbrTail {
        disk_signature: U32::new(disk_signature),
        reserved: [0; 2],
        entries,
        boot_signature: BOOT_SIGNATURE,
    }
}

/// The MBR tail at byte 440 and, for logical partitions, each EBR sector.
pub fn encode(plan: &Plan) -> Vec<(u64, Vec<u8>)> {
    let ss = u64::from(plan.sector_size);
    let mut out = Vec::new();
    let mut entries = [MbrEntry::default(); 4];
    // The plan holds 0 for a protective MBR unless the user set one (UEFI
    // 2.10 table 5.3 asks for zero; some boot loaders find their disk by it).
    let signature = plan.mbr_signature;
    let protective_slot = (plan.protective_entry as usize).saturating_sub(1);
    match plan.table {
        TableKind::None => return out,
        TableKind::Gpt => {
            entries[0] = protective(plan.sectors().saturating_sub(1));
        }
        TableKind::Hybrid => {
            // The protective entry covers the primary GPT (LBA 1 up to the
            // first usable LBA), in the entry the plan gave it: after the
            // mirrored partitions (genimage) or before them (sgdisk).
            let covered = plan.gpt.map_or(1, |g| g.first_usable_lba.saturating_sub(1));
            if let Some(e) = entries.get_mut(protective_slot) {
                *e = protective(covered);
            }
        }
        TableKind::Mbr => {}
    }
    for p in &plan.partitions {
        let Some(n) = p.mbr_number.filter(|_| p.ebr.is_none()) else {
            continue;
        };
        let slot = (n as usize).saturating_sub(1);
        let Some(e) = entries.get_mut(slot) else {
            continue;
        };
        let status = if p.bootable { ACTIVE } else { 0 };
        // The plan refused an MBR entry without a type byte.
        *e = entry(
            status,
            p.part_type.mbr.unwrap_or_default(),
            p.start / ss,
            p.size / ss,
            p.start / ss,
        );
    }
    if let Some((ext_start, ext_size)) = plan.extended {
        let first = ext_start / ss;
        let slot = (plan.extended_entry as usize).saturating_sub(1);
        if let Some(e) = entries.get_mut(slot) {
            *e = entry(0, TYPE_EXTENDED_LBA, first, ext_size / ss, first);
        }
        out.extend(ebrs(plan, first));
    }
    out.insert(
        0,
        (TABLE_OFFSET, tail(signature, entries).as_bytes().to_vec()),
    );
    out
}

/// The protective 0xEE entry from LBA 1 covering `sectors` sectors.
fn protective(sectors: u64) -> MbrEntry {
    let sectors = sectors.min(u64::from(u32::MAX));
    let mut e = entry(0, TYPE_GPT_PROTECTIVE, 1, sectors, 1);
    // UEFI 2.10 table 5.4: starting CHS 0x000200 (head 0, sector 2, cylinder 0).
    e.chs_first = [0x00, 0x02, 0x00];
    e.chs_last = PROTECTIVE_CHS_LAST;
    e
}

/// One EBR sector per logical partition, in table order.
fn ebrs(plan: &Plan, ext_first: u64) -> Vec<(u64, Vec<u8>)> {
    let ss = u64::from(plan.sector_size);
    let mut logical: Vec<_> = plan.partitions.iter().filter(|p| p.ebr.is_some()).collect();
    logical.sort_by_key(|p| p.number);
    let mut out = Vec::new();
    for (k, p) in logical.iter().enumerate() {
        let Some(ebr) = p.ebr else { continue };
        let ebr_lba = ebr / ss;
        let mut entries = [MbrEntry::default(); 4];
        let status = if p.bootable { ACTIVE } else { 0 };
        let first = p.start / ss;
        let os_type = p.part_type.mbr.unwrap_or_default();
        entries[0] = entry(status, os_type, first, p.size / ss, first - ebr_lba);
        if let Some(next) = logical.get(k + 1) {
            if let Some(next_ebr) = next.ebr {
                let next_lba = next_ebr / ss;
                let sectors = next.end() / ss - next_lba;
                entries[1] = entry(0, TYPE_EXTENDED, next_lba, sectors, next_lba - ext_first);
            }
        }
        let mut sector = vec![0u8; plan.sector_size as usize];
        let bytes = tail(0, entries);
        sector[TABLE_OFFSET as usize..TABLE_OFFSET as usize + 72].copy_from_slice(bytes.as_bytes());
        out.push((ebr, sector));
    }
    out
}
