//! The GUID Partition Table: header and entry array, primary and backup.
//!
//! Layout per UEFI 2.10 §5.3: the header in LBA 1 (and its backup in the
//! last LBA), the entry array right after the primary header (or where the
//! plan moved it) and right before the backup header. Both headers carry the
//! CRC32 (IEEE 802.3, what `crc32fast` computes) of the first `header_size`
//! bytes with the CRC field zeroed, and the CRC32 of the `entries * 128`
//! bytes of the array; the rest of a header's sector must be zero.
//!
//! Rejected: the `gpt` crate (it reads and writes a device through its own
//! I/O layer and picks its own GUIDs; here the plan decides every byte and
//! the caller writes through its window).

use crate::plan::{GptLayout, Plan};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// "EFI PART": the header signature.
const SIGNATURE: [u8; 8] = *b"EFI PART";
/// Revision 1.0, the only one defined (UEFI 2.10 table 5.5).
const REVISION: u32 = 0x0001_0000;
/// GPT partition names are 36 UTF-16LE code units.
const NAME_UNITS: usize = 36;

/// The GPT header (UEFI 2.10 table 5.5), 92 bytes at the start of its sector.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy)]
#[repr(C)]
pub struct GptHeader {
    /// 0: `EFI PART`.
    pub signature: [u8; 8],
    /// 8: 0x00010000.
    pub revision: U32,
    /// 12: 92, the bytes covered by `header_crc32`.
    pub header_size: U32,

    /// 16: CRC32 of the header with this field zero.
    pub header_crc32: U32,
    /// 20: must be zero.
    pub reserved: U32,
    /// 24: the LBA of this header.
    pub my_lba: U64,

    /// 32: the LBA of the other header.
    pub alternate_lba: U64,
    /// 40: first LBA a partition may use.
    pub first_usable_lba: U64,

    /// 48: last LBA a partition may use (inclusive).
    pub last_usable_lba: U64,
    /// 56: the disk GUID, mixed-endian.
    pub disk_guid: [u8; 16],

    /// 72: the LBA of this header's entry array.
    pub partition_entry_lba: U64,
    /// 80: number of entries in the array.
    pub num_entries: U32,
    /// 84: bytes per entry (128).
    pub entry_size: U32,

    /// 88: CRC32 of the `num_entries * entry_size` bytes of the array.
    pub entries_crc32: U32,
}

const _: () = assert!(std::mem::size_of::<GptHeader>() == 92);

/// One GPT entry (UEFI 2.10 table 5.6), 128 bytes.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy)]
#[repr(C)]
pub struct GptEntry {
    /// 0: partition type GUID, mixed-endian; all zero = unused entry.
    pub type_guid: [u8; 16],

    /// 16: unique partition GUID, mixed-endian.
    pub unique_guid: [u8; 16],

    /// 32: first LBA.
    pub first_lba: U64,
    /// 40: last LBA (inclusive).
    pub last_lba: U64,

    /// 48: attribute bits (0 required, 1 no-block-io, 2 legacy BIOS
    /// bootable, 48–63 type-specific).
    pub attributes: U64,
    /// 56: name, UTF-16LE, zero-padded (72 bytes).
    pub name: [U16; NAME_UNITS],
}

const _: () = assert!(std::mem::size_of::<GptEntry>() == 128);

/// The entry array: `entries * 128` bytes, zero-padded to `array_size`.
fn entry_array(plan: &Plan, layout: &GptLayout) -> Vec<u8> {
    let ss = u64::from(plan.sector_size);
    let entry_size = std::mem::size_of::<GptEntry>();
    let mut array = vec![0u8; usize::try_from(layout.array_size).unwrap_or(0)];
    for p in &plan.partitions {
        let Some(number) = p.number.filter(|_| p.in_table) else {
            continue;
        };
        let mut name = [U16::new(0); NAME_UNITS];
        for (unit, c) in name.iter_mut().zip(p.name.encode_utf16()) {
            *unit = U16::new(c);
        }
        let entry = GptEntry {
            // The plan refused a GPT entry without a GUID.
            type_guid: p.part_type.gpt.unwrap_or_default().to_gpt_bytes(),
            unique_guid: p.uuid.to_gpt_bytes(),
            first_lba: U64::new(p.start / ss),
            last_lba: U64::new((p.end() / ss).saturating_sub(1)),
            attributes: U64::new(p.gpt_attrs),
            name,
        };
        let at = (number as usize).saturating_sub(1) * entry_size;
        if let Some(slot) = array.get_mut(at..at + entry_size) {
            slot.copy_from_slice(entry.as_bytes());
        }
    }
    array
}

/// One header sector: the header, its CRC, zeros to the end of the sector.
fn header_sector(plan: &Plan, layout: &GptLayout, primary: bool, entries_crc32: u32) -> Vec<u8> {
    let ss = u64::from(plan.sector_size);
    // Without a backup the primary names itself as its alternate, as
    // genimage's gpt-no-backup does: Linux then finds a valid "alternate"
    // and reads the table without complaint.
    let backup_lba = if layout.backup {
        layout.backup_header_offset / ss
    } else {
        1
    };
    let primary_lba = 1;
    let (my_lba, alternate_lba, array_lba) = if primary {
        (primary_lba, backup_lba, layout.array_offset / ss)
    } else {
        (backup_lba, primary_lba, layout.backup_array_offset / ss)
    };
    let mut header = GptHeader {
        signature: SIGNATURE,
        revision: U32::new(REVISION),
        header_size: U32::new(std::mem::size_of::<GptHeader>() as u32),
        header_crc32: U32::new(0),
        reserved: U32::new(0),
        my_lba: U64::new(my_lba),
        alternate_lba: U64::new(alternate_lba),
        first_usable_lba: U64::new(layout.first_usable_lba),
        last_usable_lba: U64::new(layout.last_usable_lba),
        disk_guid: plan.disk_guid.to_gpt_bytes(),
        partition_entry_lba: U64::new(array_lba),
        num_entries: U32::new(layout.entries),
        entry_size: U32::new(std::mem::size_of::<GptEntry>() as u32),
        entries_crc32: U32::new(entries_crc32),
    };
    header.header_crc32 = U32::new(crc32fast::hash(header.as_bytes()));
    let mut sector = vec![0u8; plan.sector_size as usize];
    sector[..header.as_bytes().len()].copy_from_slice(header.as_bytes());
    sector
}

/// The four GPT regions: primary header, primary array, backup array,
/// backup header, each at its byte offset (the last two only with a backup).
pub fn encode(plan: &Plan, layout: &GptLayout) -> Vec<(u64, Vec<u8>)> {
    let ss = u64::from(plan.sector_size);
    let array = entry_array(plan, layout);
    let used = (layout.entries as usize)
        .saturating_mul(std::mem::size_of::<GptEntry>())
        .min(array.len());
    let crc = crc32fast::hash(&array[..used]);
    let mut out = vec![
        (ss, header_sector(plan, layout, true, crc)),
        (layout.array_offset, array.clone()),
    ];
    if layout.backup {
        out.push((layout.backup_array_offset, array));
        out.push((
            layout.backup_header_offset,
            header_sector(plan, layout, false, crc),
        ));
    }
    out
}

/// A partition found in an existing image: its name and byte range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundPartition {
    pub name: String,
    pub offset: u64,
    pub size: u64,
}

/// Entry arrays larger than this are not GPTs this tool would read.
const MAX_ENTRIES: u32 = 1024;

/// The named partitions of the GPT at the start of `file` (sector size 512
/// or 4096, whichever holds the header), or `None` when neither does.
/// Checks the header's and the array's CRC32: this is how an update build
/// reads the previous release's image (`--reference`), which is input.
pub fn read_partitions(file: &std::fs::File) -> std::io::Result<Option<Vec<FoundPartition>>> {
    use std::os::unix::fs::FileExt;
    let file_len = file.metadata()?.len();
    for sector in [512u64, 4096] {
        let mut raw = [0u8; 92];
        if sector + 92 > file_len {
            continue;
        }
        file.read_exact_at(&mut raw, sector)?;
        let Ok(h) = GptHeader::read_from_bytes(&raw[..]) else {
            continue;
        };
        let mut zeroed = raw;
        zeroed[16..20].fill(0);
        if h.signature != SIGNATURE
            || h.header_size.get() != 92
            || crc32fast::hash(&zeroed) != h.header_crc32.get()
            || h.entry_size.get() != 128
            || h.num_entries.get() > MAX_ENTRIES
        {
            continue;
        }
        let mut array = vec![0u8; h.num_entries.get() as usize * 128];
        let at = h.partition_entry_lba.get().saturating_mul(sector);
        if at.saturating_add(array.len() as u64) > file_len {
            continue;
        }
        file.read_exact_at(&mut array, at)?;
        if crc32fast::hash(&array) != h.entries_crc32.get() {
            continue;
        }
        let mut out = Vec::new();
        for raw in array.chunks_exact(128) {
            let Ok(e) = GptEntry::read_from_bytes(raw) else {
                continue;
            };
            let (first, last) = (e.first_lba.get(), e.last_lba.get());
            if e.type_guid == [0; 16] || last < first {
                continue;
            }
            let units: Vec<u16> = e
                .name
                .iter()
                .map(|u| u.get())
                .take_while(|&u| u != 0)
                .collect();
            out.push(FoundPartition {
                name: String::from_utf16_lossy(&units),
                offset: first.saturating_mul(sector),
                size: (last - first + 1).saturating_mul(sector),
            });
        }
        return Ok(Some(out));
    }
    Ok(None)
}
