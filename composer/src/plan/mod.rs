//! The planner: sizes in, every byte range of the disk out.
//!
//! `plan` is pure: it takes a [`DiskSpec`] and one [`PartSpec`] per
//! partition or raw blob (sizes already known: the lead asks each content
//! writer for its minimum size) and returns a [`Plan`] in which every byte
//! range that anything will write is a named [`Region`]: the MBR, the GPT
//! header and entry array, the backup array and header, the EBRs of logical
//! MBR partitions, raw blobs outside the table and partitions. It knows bytes
//! and sectors, not YAML or files; it never does I/O. The partition-table
//! bytes themselves come from [`crate::ptable::encode`].
//!
//! Placement rules (see [`allocate`]):
//! - a partition with an `offset` stands there; one without is placed after
//!   the end of the previous one (in the order given), at the next multiple
//!   of its alignment (`align`, else the disk's);
//! - `SizeReq::Auto` sizes are the content minimum plus headroom, rounded up
//!   to whole sectors; `SizeReq::Exact` sizes must be whole sectors and hold
//!   the content; one `SizeReq::Fill` partition takes everything up to the
//!   next region (the backup GPT, or the disk end), ending on its alignment
//!   when a boundary lies in between (as sgdisk does), and needs a disk size;
//! - an auto disk size is the smallest that holds every region plus the
//!   backup GPT, rounded up to the disk alignment;
//! - one overlap check over all regions names both parties and a fix; a
//!   raw blob may declare `holes` (ranges inside it that it leaves unused,
//!   genimage's idea) that table regions and other partitions may occupy,
//!   e.g. a boot ROM image at offset 0 that leaves bytes 440..512 for the MBR.
//!
//! Table numbering: GPT numbers the in-table partitions 1, 2, … in the order
//! given. MBR numbers up to four as primaries 1–4; with more than four, the
//! first three are primaries 1–3, entry 4 is an extended partition (type
//! 0x0f) and the rest are logical partitions 5, 6, … each preceded by a
//! one-sector EBR that the plan reserves as a region; `extended_entry` moves
//! the extended partition to another entry and `forced_primary` makes
//! partitions after the logical ones primaries again (genimage's rules). A
//! hybrid table is a GPT whose MBR holds up to three partitions marked
//! `in_mbr` (entries 1, 2, …) and then the protective 0xEE entry, as
//! genimage writes it; with `protective_first` the 0xEE entry is entry 1
//! and the mirrors follow, as `sgdisk -h` writes it.
//!
//! Rejected designs: placing auto partitions in the first gap that fits
//! (first-fit reorders the disk behind the user's back; the overlap error
//! says what to move instead); silently rounding exact sizes (a size the
//! user wrote is kept or refused); planning in sectors (offsets in bytes are
//! what users write and what the writers need; sectors are derived).

mod allocate;
mod render;
mod roles;
mod svg;

pub use allocate::allocate;
pub use render::{render_json, render_text};
pub use svg::render_svg;

use crate::diag::Span;
use crate::ids::Uuid;
use crate::ptable::types::PartType;

/// Which partition table the disk gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TableKind {
    /// GUID Partition Table with a protective MBR.
    Gpt,
    /// Classic MBR (DOS) table; more than 4 partitions use logical ones.
    Mbr,
    /// GPT plus an MBR mirroring up to three partitions (`in_mbr`).
    Hybrid,
    /// No table: partitions are raw byte ranges.
    None,
}

impl TableKind {
    /// The name used in YAML and in the JSON plan: `gpt`, `mbr`, `hybrid`, `none`.
    pub fn name(self) -> &'static str {
        match self {
            TableKind::Gpt => "gpt",
            TableKind::Mbr => "mbr",
            TableKind::Hybrid => "hybrid",
            TableKind::None => "none",
        }
    }

    /// True when the disk carries a GPT (plain or hybrid).
    pub fn has_gpt(self) -> bool {
        matches!(self, TableKind::Gpt | TableKind::Hybrid)
    }
}

/// The disk as described (the `image:` section).
#[derive(Clone, Debug)]
pub struct DiskSpec {
    pub table: TableKind,
    /// Disk size in bytes; `None` = the smallest that fits, rounded up to `align`.
    pub size: Option<u64>,
    /// Logical sector size in bytes: 512 or 4096.
    pub sector_size: u32,
    /// Default alignment of partition starts, in bytes (1 MiB by convention).
    pub align: u64,
    pub disk_guid: Uuid,
    /// MBR disk signature (written for `mbr` and `hybrid` tables).
    pub mbr_signature: u32,
    /// Number of GPT entries (at least 128, the UEFI minimum of 16 KiB).
    pub gpt_entries: u32,
    /// Where the primary GPT entry array starts, in bytes; `None` = right
    /// after the header (LBA 2). genimage's `gpt-location`: moves the array
    /// out of the way of boot ROM blobs at fixed offsets (Allwinner's SPL
    /// at 8 KiB).
    pub gpt_array_offset: Option<u64>,
    /// Write the backup GPT at the end of the disk (genimage's
    /// `gpt-no-backup` turns it off; its room stays reserved).
    pub gpt_backup: bool,
    /// Hybrid tables: the 0xEE entry in MBR entry 1 and the mirrors after it
    /// (sgdisk's order) instead of the mirrors first (genimage's).
    pub protective_first: bool,
    /// MBR tables: the entry (1–4) of the extended partition; `None` = entry
    /// 4 when more than four partitions are in the table (genimage's
    /// `extended-partition`).
    pub extended_entry: Option<u32>,
    /// The `image:` section, for diagnostics about the disk as a whole.
    pub span: Span,
    /// The `image.size` value, when written.
    pub size_span: Option<Span>,
}

impl DiskSpec {
    /// A disk with the conventional defaults: 512-byte sectors, 1 MiB
    /// alignment, 128 GPT entries, auto size, nil identifiers.
    pub fn new(table: TableKind) -> Self {
        DiskSpec {
            table,
            size: None,
            sector_size: 512,
            align: crate::units::MIB,
            disk_guid: Uuid::default(),
            mbr_signature: 0,
            gpt_entries: 128,
            gpt_array_offset: None,
            gpt_backup: true,
            protective_first: false,
            extended_entry: None,
            span: Span::default(),
            size_span: None,
        }
    }
}

/// Extra space on top of an auto-sized content's minimum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Headroom {
    None,
    Bytes(u64),
    /// A percentage of the minimum (`auto +20%`), rounded up to whole bytes.
    Percent(u32),
    /// Both (`auto +30% +13MiB`): wic's `--overhead-factor` and `--extra-space`.
    PercentAndBytes(u32, u64),
}

impl Headroom {
    /// The extra bytes on top of `min`; `None` on overflow.
    pub fn bytes(self, min: u64) -> Option<u64> {
        let percent = |p: u32| u64::try_from((u128::from(min) * u128::from(p)).div_ceil(100)).ok();
        match self {
            Headroom::None => Some(0),
            Headroom::Bytes(b) => Some(b),
            Headroom::Percent(p) => percent(p),
            Headroom::PercentAndBytes(p, b) => percent(p)?.checked_add(b),
        }
    }
}

/// How big a partition is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeReq {
    /// Exactly this many bytes (a whole number of sectors).
    Exact(u64),
    /// The content's minimum plus headroom, rounded up to whole sectors.
    Auto { min: u64, headroom: Headroom },
    /// Everything up to the next region or the end of the usable disk.
    Fill,
}

/// One partition or raw blob, as described.
#[derive(Clone, Debug)]
pub struct PartSpec {
    pub name: String,
    /// The key path of this partition as written, e.g. `partitions[2]`;
    /// diagnostics about one field append `.size`, `.offset`, …
    pub key: String,
    /// The partition's entry, for diagnostics about it as a whole.
    pub span: Span,
    pub size: SizeReq,
    pub size_span: Span,
    /// The content's minimum size in bytes (for `Exact` and `Fill`, checked
    /// against the size the partition gets).
    pub content_min: u64,
    /// Absolute byte offset on the disk; `None` = placed after the previous one.
    pub offset: Option<u64>,
    pub offset_span: Option<Span>,
    /// Alignment of an auto-placed start, in bytes; `None` = the disk's.
    pub align: Option<u64>,
    /// False for raw blobs written outside the table (bootloaders at fixed offsets).
    pub in_table: bool,
    pub part_type: PartType,
    /// The `type:` value, when written: where a type without a form in
    /// this table format is reported.
    pub type_span: Option<Span>,
    /// GPT: attribute bit 2 (legacy BIOS bootable); MBR: status 0x80.
    pub bootable: bool,
    /// GPT attribute bits (0 required, 1 no-block-io, 2 legacy-bios-bootable,
    /// 60 read-only, 62 hidden, 63 no-automount), OR-ed with `bootable`.
    pub gpt_attrs: u64,
    /// GPT unique partition GUID.
    pub uuid: Uuid,
    /// Ranges `(offset, size)` in bytes, relative to the start of this
    /// partition, that its content leaves unused: table regions and other
    /// partitions may lie there.
    pub holes: Vec<(u64, u64)>,
    /// Hybrid tables only: also describe this partition in the MBR.
    pub in_mbr: bool,
    /// MBR tables: a primary partition after the logical ones (genimage's
    /// `forced-primary`).
    pub forced_primary: bool,
    /// A short description for the plan table, e.g. `ext4 'rootfs' from /x/target`.
    pub content: String,
}

impl PartSpec {
    /// An in-table Linux partition with no spans, nil UUID and no content
    /// description: a base for struct-update syntax.
    pub fn new(name: &str, size: SizeReq) -> Self {
        PartSpec {
            name: name.to_string(),
            key: String::new(),
            span: Span::default(),
            size,
            size_span: Span::default(),
            content_min: 0,
            offset: None,
            offset_span: None,
            align: None,
            in_table: true,
            part_type: PartType::linux(),
            type_span: None,
            bootable: false,
            gpt_attrs: 0,
            uuid: Uuid::default(),
            holes: Vec::new(),
            in_mbr: false,
            forced_primary: false,
            content: String::new(),
        }
    }
}

/// What a region of the disk holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RegionKind {
    /// The MBR's signature, entries and boot mark (bytes 440..512 of LBA 0;
    /// the boot code area before it belongs to whoever installs boot code).
    Mbr,
    GptHeader,
    GptArray,
    BackupGptArray,
    BackupGptHeader,
    /// The EBR (one sector) before logical partition number `n`.
    Ebr(u32),
    /// A raw blob outside the table: index into the `PartSpec` list.
    Blob(usize),
    /// A partition in the table (or any partition when `table: none`):
    /// index into the `PartSpec` list.
    Partition(usize),
}

impl RegionKind {
    /// True for regions the partition-table encoder writes.
    pub fn is_table(self) -> bool {
        !matches!(self, RegionKind::Blob(_) | RegionKind::Partition(_))
    }

    /// The `PartSpec` index of a blob or partition.
    pub fn part(self) -> Option<usize> {
        match self {
            RegionKind::Blob(i) | RegionKind::Partition(i) => Some(i),
            _ => None,
        }
    }
}

/// One named byte range of the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// `MBR`, `GPT header`, `GPT array`, `backup GPT array`, `backup GPT
    /// header`, `EBR 5`, or the partition's name.
    pub name: String,
    pub kind: RegionKind,
    /// Absolute offset in bytes.
    pub start: u64,
    /// Length in bytes.
    pub size: u64,
}

impl Region {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }
}

/// Where one `PartSpec` landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedPartition {
    /// Index into the `PartSpec` list (partitions keep the input order).
    pub spec: usize,
    pub name: String,
    /// Table number (GPT entry number, or MBR 1–4 / 5… for logical);
    /// `None` outside the table.
    pub number: Option<u32>,
    /// Hybrid tables: its MBR entry number (2–4) when mirrored; MBR tables:
    /// same as `number`.
    pub mbr_number: Option<u32>,
    /// MBR logical partitions: absolute byte offset of their EBR.
    pub ebr: Option<u64>,
    /// Absolute offset in bytes (a whole number of sectors).
    pub start: u64,
    /// Length in bytes (a whole number of sectors).
    pub size: u64,
    pub in_table: bool,
    pub part_type: PartType,
    pub uuid: Uuid,
    pub bootable: bool,
    /// GPT attribute bits as written (`gpt_attrs`, plus bit 2 when bootable).
    pub gpt_attrs: u64,
}

impl PlannedPartition {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }
}

/// Where the GPT structures are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GptLayout {
    pub entries: u32,
    /// Byte offset of the primary entry array.
    pub array_offset: u64,
    /// Bytes of each entry array: `entries * 128` rounded up to whole sectors.
    pub array_size: u64,
    pub first_usable_lba: u64,
    pub last_usable_lba: u64,
    /// Byte offset of the backup entry array (just before the backup header).
    pub backup_array_offset: u64,
    /// Byte offset of the backup header (the last sector of the disk).
    pub backup_header_offset: u64,
    /// False with `gpt-no-backup`: the backup's room is reserved but not
    /// written, and the primary header names itself as its alternate.
    pub backup: bool,
}

/// The whole disk, every byte range named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub disk_size: u64,
    pub sector_size: u32,
    pub table: TableKind,
    pub disk_guid: Uuid,
    pub mbr_signature: u32,
    /// Present for `gpt` and `hybrid`.
    pub gpt: Option<GptLayout>,
    /// MBR tables with logical partitions: the extended partition `(start,
    /// size)` in bytes, from the first EBR to the end of the last logical one.
    pub extended: Option<(u64, u64)>,
    /// The MBR entry (1–4) of the extended partition, when there is one.
    pub extended_entry: u32,
    /// GPT and hybrid tables: the MBR entry (1–4) of the 0xEE entry.
    pub protective_entry: u32,
    /// Every region, sorted by start.
    pub regions: Vec<Region>,
    /// One per `PartSpec`, in the same order.
    pub partitions: Vec<PlannedPartition>,
}

impl Plan {
    /// Number of sectors on the disk.
    pub fn sectors(&self) -> u64 {
        self.disk_size / u64::from(self.sector_size)
    }
}

#[cfg(test)]
mod tests;
