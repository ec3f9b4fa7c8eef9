//! [`allocate`]: turns a [`DiskSpec`] and [`PartSpec`]s into a [`Plan`], or
//! into every problem found at once.
//!
//! The steps, each reporting what it finds and carrying on with what is
//! still meaningful: check the disk parameters; lay out the table regions at
//! the start of the disk; give each partition its role (GPT entry, MBR
//! primary or logical, raw blob) and size; place them in order; settle the
//! disk size and the backup GPT; give the `fill` partition the rest; then
//! check every region against the disk end and against every other region,
//! and the per-format limits (MBR's 32-bit sectors, GPT's entry count and
//! 36-unit names, the hybrid MBR's three free entries).
//!
//! All arithmetic on sizes and offsets is checked: an overflow is a
//! diagnostic, never a panic or a wrapped value.

use super::roles::{assign_roles, check_type_forms, Role};
use super::PartSpec;
use super::{DiskSpec, GptLayout, Plan, PlannedPartition, Region, RegionKind, SizeReq, TableKind};
use crate::diag::{Diagnostic, Span};
use crate::units::{align_up, human, ByteSize};

/// The MBR's own bytes start at 440 (disk signature, 4 entries, 0x55AA);
/// bytes 0..440 are boot code, which belongs to whoever installs some.
pub(crate) const MBR_TABLE_START: u64 = 440;
/// The MBR and EBR boot sector layout is 512 bytes whatever the sector size.
pub(crate) const MBR_BYTES: u64 = 512;
/// Every GPT entry we write is 128 bytes (UEFI 2.10 §5.3.3).
pub(crate) const GPT_ENTRY_SIZE: u64 = 128;
/// UEFI 2.10 §5.3.2: at least 16384 bytes must be reserved for the entry
/// array, i.e. 128 entries of 128 bytes.
const GPT_MIN_ENTRIES: u32 = 128;
/// A cap on the entry array (2 MiB): UEFI sets none, but an array the
/// kernel and firmware read whole on every boot should stay small, and a
/// typo (`gpt-entries: 1280000`) should not become a gigabyte of table.
const GPT_MAX_ENTRIES: u32 = 16384;
/// GPT partition names are 36 UTF-16 code units (72 bytes).
pub(crate) const GPT_NAME_UNITS: usize = 36;
/// MBR start and length fields are 32-bit sector counts, so nothing an MBR
/// describes may end beyond sector 2^32.
const MBR_SECTOR_LIMIT: u64 = 1 << 32;

/// Checked disk parameters.
struct Geometry {
    /// Sector size in bytes.
    ss: u64,
    align: u64,
    /// Present for GPT and hybrid tables: primary array offset and size.
    gpt_array: Option<(u64, u64)>,
    /// Where the first partition may start (after the primary table).
    first_usable: u64,
    /// Bytes the backup GPT needs at the end of the disk (0 without GPT).
    backup: u64,
}

/// Places every partition of `parts` on the disk `disk` and names every byte
/// range; on failure, every problem found (see the module docs).
pub fn allocate(disk: &DiskSpec, parts: &[PartSpec]) -> Result<Plan, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let Some(geo) = check_disk(disk, &mut diags) else {
        return Err(diags);
    };
    let numbering = assign_roles(disk, parts, &mut diags);
    let roles = numbering.roles;
    check_type_forms(disk, parts, &roles, &mut diags);

    // Table regions at the start of the disk.
    let mut tables = Vec::new();
    if disk.table != TableKind::None {
        tables.push(table_region(
            "MBR",
            RegionKind::Mbr,
            MBR_TABLE_START,
            MBR_BYTES - MBR_TABLE_START,
        ));
    }
    if let Some((offset, size)) = geo.gpt_array {
        tables.push(table_region(
            "GPT header",
            RegionKind::GptHeader,
            geo.ss,
            geo.ss,
        ));
        tables.push(table_region(
            "GPT array",
            RegionKind::GptArray,
            offset,
            size,
        ));
    }

    // Sizes, then places.
    let sizes: Vec<Option<u64>> = parts
        .iter()
        .map(|p| resolve_size(p, &geo, &mut diags))
        .collect();
    let mut fill: Option<usize> = None;
    let mut starts: Vec<Option<u64>> = vec![None; parts.len()];
    let mut ebrs: Vec<Option<u64>> = vec![None; parts.len()];
    let mut cursor = geo.first_usable;
    for (i, part) in parts.iter().enumerate() {
        if part.size == SizeReq::Fill {
            if let Some(first) = fill {
                diags.push(
                    diag(
                        part,
                        &part.size_span,
                        "size",
                        format!(
                            "'{}' cannot fill the rest of the disk: '{}' already does",
                            part.name, parts[first].name
                        ),
                    )
                    .help(format!(
                        "give '{}' or '{}' a size",
                        part.name, parts[first].name
                    )),
                );
                continue;
            }
        }
        let logical = matches!(roles[i], Role::Logical(_));
        let Some((start, ebr)) = place(
            part,
            &geo,
            cursor,
            logical,
            fill.map(|f| &parts[f]),
            &mut diags,
        ) else {
            continue;
        };
        starts[i] = Some(start);
        ebrs[i] = ebr;
        if part.size == SizeReq::Fill {
            fill = Some(i);
        } else if let Some(size) = sizes[i] {
            match start.checked_add(size) {
                Some(end) => cursor = cursor.max(end),
                None => {
                    diags.push(too_large(part, start, size));
                    starts[i] = None;
                }
            }
        }
    }

    // The EBRs are regions too.
    for (i, ebr) in ebrs.iter().enumerate() {
        if let (Some(ebr), Role::Logical(n)) = (ebr, roles[i]) {
            tables.push(table_region(
                &format!("EBR {n}"),
                RegionKind::Ebr(n),
                *ebr,
                geo.ss,
            ));
        }
    }

    // The disk size.
    let disk_size = match disk.size {
        Some(size) => size,
        None => {
            if let Some(f) = fill {
                let part = &parts[f];
                diags.push(
                    diag(
                        part,
                        &part.size_span,
                        "size",
                        format!(
                        "'{}' has size fill, which needs a disk size, but the image size is auto",
                        part.name
                    ),
                    )
                    .help(format!(
                        "set the image size (e.g. size: 4GiB), or give '{}' a size",
                        part.name
                    )),
                );
                return Err(diags);
            }
            let mut end = geo.first_usable;
            for r in &tables {
                end = end.max(r.end());
            }
            for (i, start) in starts.iter().enumerate() {
                if let (Some(start), Some(size)) = (start, sizes[i]) {
                    end = end.max(start.saturating_add(size));
                }
            }
            // A GPT disk also ends on a 4 KiB boundary, as genimage makes
            // it whatever the alignment (4Kn media, loop devices with
            // 4 KiB logical blocks).
            let rounding = if geo.gpt_array.is_some() {
                GPT_DISK_ROUNDING
            } else {
                geo.ss
            };
            match end
                .checked_add(geo.backup)
                .and_then(|total| align_up(total, geo.align))
                .and_then(|total| align_up(total, rounding))
            {
                Some(size) => size,
                None => {
                    diags.push(disk_diag(
                        disk,
                        "size",
                        "the disk would be larger than 16 EiB".into(),
                    ));
                    return Err(diags);
                }
            }
        }
    };
    if disk_size == 0 {
        diags.push(
            disk_diag(
                disk,
                "size",
                "the image would be empty: it has no partition table and no partitions".into(),
            )
            .help("add a partition, or set the image size"),
        );
        return Err(diags);
    }
    let min_disk = geo.first_usable.saturating_add(geo.backup);
    if disk_size < min_disk {
        diags.push(
            disk_diag(
                disk,
                "size",
                format!(
                    "{} is too small for the {} partition table, which needs {}",
                    size_text(disk_size),
                    disk.table.name().to_uppercase(),
                    size_text(min_disk)
                ),
            )
            .help(format!(
                "make the image at least {}",
                ByteSize(align_up(min_disk, geo.align).unwrap_or(min_disk))
            )),
        );
        return Err(diags);
    }

    // The backup GPT and the usable area.
    let gpt = geo.gpt_array.map(|(array_offset, array_size)| {
        let backup_header_offset = disk_size - geo.ss;
        let backup_array_offset = backup_header_offset - array_size;
        GptLayout {
            entries: disk.gpt_entries,
            array_offset,
            array_size,
            first_usable_lba: geo.first_usable / geo.ss,
            last_usable_lba: (backup_array_offset / geo.ss).saturating_sub(1),
            backup_array_offset,
            backup_header_offset,
            backup: disk.gpt_backup,
        }
    });
    if let Some(g) = &gpt {
        // Without a backup its room stays reserved (genimage's last usable
        // LBA), so a tool can add the backup on the device later.
        let unwritten = if g.backup {
            ""
        } else {
            " (reserved, not written)"
        };
        tables.push(table_region(
            &format!("backup GPT array{unwritten}"),
            RegionKind::BackupGptArray,
            g.backup_array_offset,
            g.array_size,
        ));
        tables.push(table_region(
            &format!("backup GPT header{unwritten}"),
            RegionKind::BackupGptHeader,
            g.backup_header_offset,
            geo.ss,
        ));
    }
    let usable_end = gpt.map_or(disk_size, |g| g.backup_array_offset);

    // The fill partition takes everything up to the next region.
    let mut sizes = sizes;
    if let Some(f) = fill {
        if let Some(start) = starts[f] {
            let next = tables
                .iter()
                .map(|r| r.start)
                .chain(
                    starts
                        .iter()
                        .enumerate()
                        .filter(|&(i, _)| i != f)
                        .filter_map(|(_, s)| *s),
                )
                .filter(|&s| s >= start)
                .fold(usable_end, u64::min);
            let part = &parts[f];
            // End on an alignment boundary, as sgdisk does for "the largest
            // possible" partition, so the size is whole alignment units
            // (encryption and verity tools want 4 KiB multiples); unless
            // that leaves nothing, then take the rest as it is.
            let align = part.align.unwrap_or(geo.align);
            let aligned = next - next % align;
            let end = if aligned > start { aligned } else { next };
            let size = end.saturating_sub(start);
            if size == 0 {
                diags.push(
                    diag(part, &part.size_span, "size", format!(
                        "'{}' fills the rest of the disk, but nothing is left: it would start at {}",
                        part.name,
                        ByteSize(start)
                    ))
                    .help("make the image larger, or give the partitions before it smaller sizes"),
                );
                starts[f] = None;
            } else if size < part.content_min {
                diags.push(
                    diag(
                        part,
                        &part.size_span,
                        "size",
                        format!(
                            "'{}' content needs {} but the rest of the disk is {} ({} short)",
                            part.name,
                            size_text(part.content_min),
                            size_text(size),
                            size_text(part.content_min - size)
                        ),
                    )
                    .help("make the image larger, or give the partitions before it smaller sizes"),
                );
                sizes[f] = Some(size);
            } else {
                sizes[f] = Some(size);
            }
        }
    }

    // Every region, then every check over them.
    let mut regions = tables;
    for (i, part) in parts.iter().enumerate() {
        if let (Some(start), Some(size)) = (starts[i], sizes[i]) {
            let kind = if roles[i] == Role::Blob {
                RegionKind::Blob(i)
            } else {
                RegionKind::Partition(i)
            };
            regions.push(Region {
                name: part.name.clone(),
                kind,
                start,
                size,
            });
            check_holes(part, size, &mut diags);
        }
    }
    regions.sort_by_key(|r| (r.start, r.end(), r.kind));

    let mut reported = vec![false; parts.len()];
    for r in &regions {
        let Some(i) = r.kind.part() else { continue };
        if r.end() > disk_size {
            let part = &parts[i];
            let mut d = diag(
                part,
                &part.span,
                "",
                format!(
                    "'{}' (offset {:#x}, size {}) ends at {}, beyond the end of the disk ({})",
                    r.name,
                    r.start,
                    size_text(r.size),
                    size_text(r.end()),
                    size_text(disk_size)
                ),
            );
            if disk.size.is_some() {
                let need = r.end().saturating_add(geo.backup);
                d = d.help(format!(
                    "make the image at least {}, or make '{}' smaller",
                    ByteSize(align_up(need, geo.align).unwrap_or(need)),
                    r.name
                ));
            }
            diags.push(d);
            reported[i] = true;
        }
    }
    let ebr_owners: Vec<(u32, usize)> = roles
        .iter()
        .enumerate()
        .filter_map(|(i, role)| match role {
            Role::Logical(n) => Some((*n, i)),
            _ => None,
        })
        .collect();
    check_overlaps(
        &regions,
        parts,
        &ebr_owners,
        &geo,
        &mut reported,
        &mut diags,
    );

    if let Some(g) = &gpt {
        let first = g.first_usable_lba * geo.ss;
        for r in &regions {
            let Some(i) = r.kind.part() else { continue };
            if reported[i] || !matches!(roles[i], Role::Gpt { .. }) {
                continue;
            }
            if r.start < first {
                diags.push(
                    diag(&parts[i], &parts[i].span, "", format!(
                        "'{}' (offset {:#x}) starts before the first usable sector of the GPT (LBA {}, offset {:#x})",
                        r.name, r.start, g.first_usable_lba, first
                    ))
                    .help(format!(
                        "start '{}' at {} or later, or make it a raw blob with in-table: false",
                        r.name,
                        ByteSize(align_up(first, geo.align).unwrap_or(first))
                    )),
                );
            }
        }
    }
    check_mbr_limits(&regions, parts, &roles, &geo, &reported, &mut diags);
    let extended = extended_partition(&regions, parts, &roles, &ebrs, &reported, &mut diags);

    if !diags.is_empty() {
        return Err(diags);
    }
    let partitions = parts
        .iter()
        .enumerate()
        .filter_map(|(i, part)| {
            let (start, size) = (starts[i]?, sizes[i]?);
            let attrs = if part.bootable && disk.table.has_gpt() {
                part.gpt_attrs | GPT_ATTR_LEGACY_BIOS_BOOTABLE
            } else {
                part.gpt_attrs
            };
            Some(PlannedPartition {
                spec: i,
                name: part.name.clone(),
                number: roles[i].number(),
                mbr_number: roles[i].mbr_number(),
                ebr: ebrs[i],
                start,
                size,
                in_table: part.in_table,
                part_type: part.part_type,
                uuid: part.uuid,
                bootable: part.bootable,
                gpt_attrs: attrs,
            })
        })
        .collect::<Vec<_>>();
    if partitions.len() != parts.len() {
        // Every unplaced partition produced a diagnostic above; this is a
        // guard against a bug in that bookkeeping, reported as a problem
        // rather than a panic.
        return Err(vec![Diagnostic::new(
            disk.span.clone(),
            "",
            "internal error: a partition was left unplaced without a reason",
        )]);
    }
    Ok(Plan {
        disk_size,
        sector_size: disk.sector_size,
        table: disk.table,
        disk_guid: disk.disk_guid,
        mbr_signature: disk.mbr_signature,
        gpt,
        extended,
        extended_entry: numbering.extended_entry.unwrap_or(0),
        protective_entry: numbering.protective_entry,
        regions,
        partitions,
    })
}

/// An auto-sized GPT disk ends on a multiple of 4 KiB, as genimage's does.
const GPT_DISK_ROUNDING: u64 = 4096;

/// GPT attribute bit 2, "legacy BIOS bootable" (UEFI 2.10 table 5.8): what
/// `bootable` means on GPT, and what U-Boot's distro boot and syslinux look for.
const GPT_ATTR_LEGACY_BIOS_BOOTABLE: u64 = 1 << 2;

fn table_region(name: &str, kind: RegionKind, start: u64, size: u64) -> Region {
    Region {
        name: name.to_string(),
        kind,
        start,
        size,
    }
}

/// A diagnostic about one field of a partition (`field` empty: the whole entry).
pub(super) fn diag(part: &PartSpec, span: &Span, field: &str, message: String) -> Diagnostic {
    let key = match (part.key.is_empty(), field.is_empty()) {
        (true, _) => String::new(),
        (false, true) => part.key.clone(),
        (false, false) => format!("{}.{field}", part.key),
    };
    Diagnostic::new(span.clone(), key, message)
}

/// A diagnostic about one field of the `image:` section.
pub(super) fn disk_diag(disk: &DiskSpec, field: &str, message: String) -> Diagnostic {
    let span = match field {
        "size" => disk.size_span.clone().unwrap_or_else(|| disk.span.clone()),
        _ => disk.span.clone(),
    };
    Diagnostic::new(span, format!("image.{field}"), message)
}

fn too_large(part: &PartSpec, start: u64, size: u64) -> Diagnostic {
    diag(
        part,
        &part.size_span,
        "size",
        format!(
            "'{}' (offset {:#x}, size {}) would end beyond 16 EiB",
            part.name,
            start,
            size_text(size)
        ),
    )
    .help("check the offset and size for a typo")
}

/// Sizes in messages: exact units when they divide (`64MiB`), else rounded
/// with the exact byte count (`1.5 MiB (1572865 bytes)`).
pub(crate) fn size_text(bytes: u64) -> String {
    let exact = ByteSize(bytes).to_string();
    if bytes < 1024 || !exact.chars().all(|c| c.is_ascii_digit()) {
        exact
    } else {
        format!("{} ({bytes} bytes)", human(bytes))
    }
}

/// Checks the disk parameters; `None` when placement cannot go on.
fn check_disk(disk: &DiskSpec, diags: &mut Vec<Diagnostic>) -> Option<Geometry> {
    let before = diags.len();
    let ss = u64::from(disk.sector_size);
    if !matches!(disk.sector_size, 512 | 4096) {
        diags.push(
            disk_diag(
                disk,
                "sector-size",
                format!("{} is not a supported sector size", disk.sector_size),
            )
            .help("use 512 or 4096"),
        );
        return None;
    }
    if disk.align == 0 || disk.align % ss != 0 {
        diags.push(
            disk_diag(
                disk,
                "align",
                format!(
                    "{} is not a multiple of the sector size ({ss})",
                    size_text(disk.align)
                ),
            )
            .help(format!("use a multiple of {ss}, e.g. 1MiB")),
        );
    }
    if let Some(size) = disk.size {
        if size == 0 || size % ss != 0 {
            diags.push(
                disk_diag(
                    disk,
                    "size",
                    format!(
                        "{} is not a whole number of {ss}-byte sectors",
                        size_text(size)
                    ),
                )
                .help(format!(
                    "use a multiple of {ss}, e.g. {}",
                    ByteSize(align_up(size.max(1), crate::units::MIB).unwrap_or(crate::units::MIB))
                )),
            );
        }
    }
    let mut gpt_array = None;
    let mut first_usable = match disk.table {
        TableKind::None => 0,
        // After the MBR sector.
        _ => ss,
    };
    let mut backup = 0;
    if disk.table.has_gpt() {
        if disk.gpt_entries < GPT_MIN_ENTRIES {
            diags.push(
                disk_diag(disk, "gpt-entries", format!(
                    "{} is fewer than the {GPT_MIN_ENTRIES} entries UEFI requires",
                    disk.gpt_entries
                ))
                .help("use 128 (the default) or more; to keep the array clear of a boot blob, move it with gpt-array-offset"),
            );
        }
        if disk.gpt_entries > GPT_MAX_ENTRIES {
            diags.push(
                disk_diag(
                    disk,
                    "gpt-entries",
                    format!(
                        "{} is more than the {GPT_MAX_ENTRIES} entries image-composer writes",
                        disk.gpt_entries
                    ),
                )
                .help("use 128 (the default), or as many as there are partitions"),
            );
        }
        let array_size = u64::from(disk.gpt_entries)
            .checked_mul(GPT_ENTRY_SIZE)
            .and_then(|bytes| align_up(bytes, ss));
        // The header is LBA 1; by default the array follows it at LBA 2.
        let array_offset = disk.gpt_array_offset.unwrap_or(2 * ss);
        if array_offset % ss != 0 || array_offset < 2 * ss {
            diags.push(
                disk_diag(disk, "gpt-array-offset", format!(
                    "{array_offset:#x} is not a sector after the GPT header (LBA 2 or later, a multiple of {ss})"
                ))
                .help(format!("use {} or a later multiple of {ss}", 2 * ss)),
            );
        }
        match array_size.and_then(|size| Some((size, array_offset.checked_add(size)?))) {
            Some((size, end)) => {
                gpt_array = Some((array_offset, size));
                first_usable = end;
                backup = size.saturating_add(ss);
            }
            None => diags.push(disk_diag(
                disk,
                "gpt-entries",
                format!(
                    "{} entries would make the GPT larger than 16 EiB",
                    disk.gpt_entries
                ),
            )),
        }
    }
    if diags.len() > before {
        return None;
    }
    Some(Geometry {
        ss,
        align: disk.align,
        gpt_array,
        first_usable,
        backup,
    })
}

/// The size a partition gets (`None` for `fill`, settled later, or on error).
fn resolve_size(part: &PartSpec, geo: &Geometry, diags: &mut Vec<Diagnostic>) -> Option<u64> {
    let ss = geo.ss;
    if let Some(align) = part.align {
        if align == 0 || align % ss != 0 {
            diags.push(
                diag(
                    part,
                    &part.span,
                    "align",
                    format!(
                        "'{}' alignment {} is not a multiple of the sector size ({ss})",
                        part.name,
                        size_text(align)
                    ),
                )
                .help(format!("use a multiple of {ss}, e.g. 1MiB")),
            );
            return None;
        }
    }
    match part.size {
        SizeReq::Fill => None,
        SizeReq::Exact(size) => {
            if size == 0 {
                diags.push(
                    diag(
                        part,
                        &part.size_span,
                        "size",
                        format!("'{}' has size 0", part.name),
                    )
                    .help("give it a size of at least one sector, or size: auto"),
                );
                return None;
            }
            if size % ss != 0 {
                let up = align_up(size, ss).unwrap_or(size);
                diags.push(
                    diag(
                        part,
                        &part.size_span,
                        "size",
                        format!(
                            "'{}' size {} is not a whole number of {ss}-byte sectors",
                            part.name,
                            size_text(size)
                        ),
                    )
                    .help(format!(
                        "use {} (rounded up to whole sectors)",
                        ByteSize(up)
                    )),
                );
                return None;
            }
            if size < part.content_min {
                diags.push(
                    diag(
                        part,
                        &part.size_span,
                        "size",
                        format!(
                            "'{}' content needs {} but the partition is {} ({} short)",
                            part.name,
                            size_text(part.content_min),
                            size_text(size),
                            size_text(part.content_min - size)
                        ),
                    )
                    .help(format!(
                        "make '{}' at least {}, or write size: auto",
                        part.name,
                        ByteSize(align_up(part.content_min, ss).unwrap_or(part.content_min))
                    )),
                );
            }
            Some(size)
        }
        SizeReq::Auto { min, headroom } => {
            let extra = headroom.bytes(min);
            let Some(size) = extra
                .and_then(|e| min.checked_add(e))
                .and_then(|s| align_up(s, ss))
            else {
                diags.push(
                    diag(
                        part,
                        &part.size_span,
                        "size",
                        format!(
                            "'{}' auto size ({} plus headroom) is larger than 16 EiB",
                            part.name,
                            size_text(min)
                        ),
                    )
                    .help("check the headroom for a typo"),
                );
                return None;
            };
            if size == 0 {
                diags.push(
                    diag(
                        part,
                        &part.size_span,
                        "size",
                        format!("'{}' is empty, so its auto size is 0", part.name),
                    )
                    .help(format!("give '{}' content, headroom or a size", part.name)),
                );
                return None;
            }
            Some(size)
        }
    }
}

/// Where a partition starts, and where its EBR is when it is logical: its
/// offset (the EBR in the sector before), or the next aligned byte after
/// `cursor` (for a logical partition: the EBR there, as sfdisk places it,
/// and the partition at the next aligned byte after the EBR).
fn place(
    part: &PartSpec,
    geo: &Geometry,
    cursor: u64,
    logical: bool,
    fill: Option<&PartSpec>,
    diags: &mut Vec<Diagnostic>,
) -> Option<(u64, Option<u64>)> {
    let ss = geo.ss;
    let align = part.align.unwrap_or(geo.align);
    if let Some(offset) = part.offset {
        let span = part.offset_span.as_ref().unwrap_or(&part.span);
        if offset % ss != 0 {
            let down = offset - offset % ss;
            diags.push(
                diag(
                    part,
                    span,
                    "offset",
                    format!(
                        "'{}' offset {offset:#x} is not a multiple of the sector size ({ss})",
                        part.name
                    ),
                )
                .help(format!(
                    "use {} or {}",
                    ByteSize(down),
                    ByteSize(down.saturating_add(ss))
                )),
            );
            return None;
        }
        if part.align.is_some() && offset % align != 0 {
            diags.push(
                diag(
                    part,
                    span,
                    "offset",
                    format!(
                        "'{}' offset {offset:#x} is not aligned to its alignment ({})",
                        part.name,
                        size_text(align)
                    ),
                )
                .help("drop the alignment, or move the offset to a multiple of it"),
            );
            return None;
        }
        if !logical {
            return Some((offset, None));
        }
        return match offset.checked_sub(ss) {
            Some(ebr) => Some((offset, Some(ebr))),
            None => {
                diags.push(
                    diag(part, span, "offset", format!(
                        "'{}' is a logical partition and needs the sector before it for its EBR, but it starts at 0",
                        part.name
                    ))
                    .help(format!("start '{}' at {} or later", part.name, ByteSize(geo.align))),
                );
                None
            }
        };
    }
    if let Some(filler) = fill {
        diags.push(
            diag(
                part,
                &part.span,
                "",
                format!(
                    "'{}' has no offset and comes after '{}', which fills the rest of the disk",
                    part.name, filler.name
                ),
            )
            .help(format!(
                "list '{}' before '{}', or give '{}' an offset",
                part.name, filler.name, part.name
            )),
        );
        return None;
    }
    let placed = if logical {
        align_up(cursor, align).and_then(|ebr| {
            let start = align_up(ebr.checked_add(ss)?, align)?;
            Some((start, Some(ebr)))
        })
    } else {
        align_up(cursor, align).map(|start| (start, None))
    };
    if placed.is_none() {
        diags.push(
            diag(
                part,
                &part.span,
                "",
                format!("'{}' would start beyond 16 EiB", part.name),
            )
            .help("check the sizes and offsets before it for a typo"),
        );
    }
    placed
}

/// Holes must lie inside their partition and not be empty.
fn check_holes(part: &PartSpec, size: u64, diags: &mut Vec<Diagnostic>) {
    for &(offset, len) in &part.holes {
        if len == 0 || offset.checked_add(len).is_none_or(|end| end > size) {
            diags.push(
                diag(
                    part,
                    &part.span,
                    "holes",
                    format!(
                        "'{}' hole (offset {offset:#x}, size {}) is not inside '{}' ({})",
                        part.name,
                        size_text(len),
                        part.name,
                        size_text(size)
                    ),
                )
                .help("holes are (offset, size) ranges relative to the start of the partition"),
            );
        }
    }
}

/// True when the byte range `lo..hi` lies entirely within holes that the
/// partition of `region` declares.
fn in_holes(region: &Region, parts: &[PartSpec], lo: u64, hi: u64) -> bool {
    let Some(i) = region.kind.part() else {
        return false;
    };
    let mut holes: Vec<(u64, u64)> = parts[i]
        .holes
        .iter()
        .filter_map(|&(offset, len)| {
            let start = region.start.checked_add(offset)?;
            Some((start, start.checked_add(len)?))
        })
        .collect();
    holes.sort_unstable();
    let mut covered = lo;
    for (start, end) in holes {
        if start > covered {
            break;
        }
        covered = covered.max(end);
    }
    covered >= hi
}

/// One pass over all regions (sorted by start): every pair that shares a
/// byte, outside declared holes, is reported once, naming both.
fn check_overlaps(
    regions: &[Region],
    parts: &[PartSpec],
    ebr_owners: &[(u32, usize)],
    geo: &Geometry,
    reported: &mut [bool],
    diags: &mut Vec<Diagnostic>,
) {
    let skip =
        |r: &Region, reported: &[bool]| r.size == 0 || r.kind.part().is_some_and(|i| reported[i]);
    for (i, a) in regions.iter().enumerate() {
        if skip(a, reported) {
            continue;
        }
        for b in &regions[i + 1..] {
            if b.start >= a.end() {
                break;
            }
            if skip(b, reported) {
                continue;
            }
            let (lo, hi) = (b.start, a.end().min(b.end()));
            if in_holes(a, parts, lo, hi) || in_holes(b, parts, lo, hi) {
                continue;
            }
            diags.push(overlap_diag(a, b, regions, parts, ebr_owners, geo));
            for r in [a, b] {
                let owner = match r.kind {
                    RegionKind::Ebr(n) => ebr_owners.iter().find(|(m, _)| *m == n).map(|&(_, i)| i),
                    kind => kind.part(),
                };
                if let Some(p) = owner {
                    reported[p] = true;
                }
            }
            // One problem per partition: its other overlaps are most
            // likely the same mistake.
            if skip(a, reported) {
                break;
            }
        }
    }
}

/// `'boot' (offset 0x2000, size 64MiB) overlaps 'GPT array' (offset 0x400,
/// size 16KiB)`, at the span of the partition the user should move, with a fix.
fn overlap_diag(
    a: &Region,
    b: &Region,
    regions: &[Region],
    parts: &[PartSpec],
    ebr_owners: &[(u32, usize)],
    geo: &Geometry,
) -> Diagnostic {
    // The partition a region belongs to: its own, or the logical one an EBR
    // describes.
    let owner = |r: &Region| match r.kind {
        RegionKind::Ebr(n) => ebr_owners.iter().find(|(m, _)| *m == n).map(|&(_, i)| i),
        kind => kind.part(),
    };
    let explicit = |r: &Region| owner(r).is_some_and(|i| parts[i].offset.is_some());
    // Blame the partition the user placed: b (later start) if it has an
    // offset or a belongs to no partition, else a.
    let (mover, other) = match (owner(a), owner(b)) {
        (_, Some(_)) if explicit(b) || owner(a).is_none() => (b, a),
        (Some(_), _) => (a, b),
        _ => (b, a),
    };
    let describe = |r: &Region| {
        format!(
            "'{}' (offset {:#x}, size {})",
            r.name,
            r.start,
            size_text(r.size)
        )
    };
    let message = format!("{} overlaps {}", describe(mover), describe(other));
    let Some(i) = owner(mover) else {
        return Diagnostic::new(Span::default(), "", message);
    };
    let part = &parts[i];
    let mut d = diag(part, &part.span, "", message);
    let align = part.align.unwrap_or(geo.align);
    let mut help = if matches!(mover.kind, RegionKind::Ebr(_)) {
        // The EBR sits in the sector before its logical partition.
        let later = other
            .end()
            .checked_add(geo.ss)
            .and_then(|e| align_up(e, align))
            .unwrap_or(other.end());
        format!(
            "start '{}' at {} or later: a logical partition needs the sector before it for its EBR",
            part.name,
            ByteSize(later)
        )
    } else if other.start <= mover.start {
        let later = align_up(other.end(), align).unwrap_or(other.end());
        format!("start '{}' at {} or later", mover.name, ByteSize(later))
    } else {
        let room = other.start - mover.start;
        let tail = match other.kind {
            RegionKind::BackupGptArray | RegionKind::BackupGptHeader => {
                ", or make the image larger".to_string()
            }
            _ if other.kind.is_table() => String::new(),
            _ => format!(", or move '{}'", other.name),
        };
        format!("make '{}' at most {}{tail}", mover.name, size_text(room))
    };
    if part.offset.is_some() {
        help.push_str(", or omit offset to let image-composer place it");
    }
    if !part.in_table && other.kind.is_table() {
        help = blob_over_table_help(mover, other, part, regions, geo, help);
    }
    d = d.help(help);
    d
}

/// The fix for a raw blob over a table region, first the one that fits:
/// for the primary GPT array, moving it with `image.gpt-location` (boot ROM
/// blobs at fixed offsets, Allwinner's SPL at 8 KiB); for the MBR, a hole
/// over bytes 440..512 (boot code such as GRUB's boot.img or a 440-byte
/// mbr.bin, which takes a whole sector here). Holes covering every table
/// region the blob overlaps are offered in the syntax to paste, merged where
/// they touch; `moving` (start it elsewhere) comes last.
fn blob_over_table_help(
    blob: &Region,
    table: &Region,
    part: &PartSpec,
    regions: &[Region],
    geo: &Geometry,
    moving: String,
) -> String {
    let mut holes: Vec<(u64, u64)> = Vec::new();
    for r in regions.iter().filter(|r| r.kind.is_table()) {
        let (lo, hi) = (r.start.max(blob.start), r.end().min(blob.end()));
        if lo >= hi {
            continue;
        }
        match holes.last_mut() {
            Some((_, end)) if *end == lo => *end = hi,
            _ => holes.push((lo, hi)),
        }
    }
    let list: Vec<String> = holes
        .iter()
        .map(|(lo, hi)| format!("{{ offset: {}, size: {} }}", lo - blob.start, hi - lo))
        .collect();
    let holes = format!("holes: [{}]", list.join(", "));
    let over_header = regions
        .iter()
        .any(|r| r.kind == RegionKind::GptHeader && r.start < blob.end() && blob.start < r.end());
    if table.kind == RegionKind::GptArray && !over_header {
        let after = align_up(blob.end(), geo.ss).unwrap_or(blob.end());
        return format!(
            "move the GPT array past '{}' with image.gpt-location: {} (genimage's gpt-location); or, if '{}' leaves those bytes unused, declare them a hole in it: {holes}; or {moving}",
            part.name,
            ByteSize(after),
            part.name
        );
    }
    let only_mbr = table.kind == RegionKind::Mbr
        && table.end() >= blob.end().min(MBR_BYTES)
        && blob.end() <= MBR_BYTES;
    let what = if only_mbr {
        if (1..=MBR_TABLE_START).contains(&part.content_min) {
            format!(
                "'{}' holds {} bytes of boot code, which end before the MBR's table at byte {MBR_TABLE_START}, but a blob takes whole sectors",
                part.name, part.content_min
            )
        } else {
            format!(
                "if '{}' is boot code that leaves bytes {MBR_TABLE_START}..{MBR_BYTES} for the MBR's table (GRUB's boot.img, a boot ROM header)",
                part.name
            )
        }
    } else {
        format!("if '{}' leaves the table's bytes unused", part.name)
    };
    if only_mbr && (1..=MBR_TABLE_START).contains(&part.content_min) {
        return format!("{what}: declare the rest of that sector a hole in it: {holes}");
    }
    format!("{what}: declare them a hole in it: {holes}; or {moving}")
}

/// Everything an MBR entry or EBR describes must end within 2^32 sectors.
fn check_mbr_limits(
    regions: &[Region],
    parts: &[PartSpec],
    roles: &[Role],
    geo: &Geometry,
    reported: &[bool],
    diags: &mut Vec<Diagnostic>,
) {
    let limit = MBR_SECTOR_LIMIT.saturating_mul(geo.ss);
    for r in regions {
        let Some(i) = r.kind.part() else { continue };
        if reported[i] || !roles[i].in_mbr() || r.end() <= limit {
            continue;
        }
        diags.push(
            diag(
                &parts[i],
                &parts[i].span,
                "",
                format!(
                    "'{}' ends at {}, beyond the {} an MBR can address with {}-byte sectors",
                    r.name,
                    size_text(r.end()),
                    size_text(limit),
                    geo.ss
                ),
            )
            .help("use table: gpt, or keep MBR partitions within that limit"),
        );
    }
}

/// The extended partition holding the logical ones: from the first EBR to
/// the end of the last logical partition; no primary may lie inside it.
fn extended_partition(
    regions: &[Region],
    parts: &[PartSpec],
    roles: &[Role],
    ebrs: &[Option<u64>],
    reported: &[bool],
    diags: &mut Vec<Diagnostic>,
) -> Option<(u64, u64)> {
    let start = ebrs.iter().flatten().copied().min()?;
    let logical = |r: &&Region| {
        r.kind
            .part()
            .is_some_and(|i| matches!(roles[i], Role::Logical(_)))
    };
    let end = regions.iter().filter(logical).map(Region::end).max()?;
    // One problem for all primaries inside, unless an overlap already
    // explains the misplaced logical partition.
    let misplaced_logical = regions
        .iter()
        .filter(logical)
        .any(|r| r.kind.part().is_some_and(|i| reported[i]));
    let inside: Vec<usize> = regions
        .iter()
        .filter_map(|r| {
            let i = r.kind.part()?;
            (matches!(roles[i], Role::Primary(_)) && r.start < end && start < r.end()).then_some(i)
        })
        .collect();
    if let (Some(&first), false) = (inside.first(), misplaced_logical) {
        let names: Vec<&str> = inside.iter().map(|&i| parts[i].name.as_str()).collect();
        let logicals: Vec<&str> = regions
            .iter()
            .filter(logical)
            .filter_map(|r| Some(parts[r.kind.part()?].name.as_str()))
            .collect();
        diags.push(
            diag(&parts[first], &parts[first].span, "", format!(
                "primary partition{} '{}' lie{} inside the extended partition (offset {start:#x}, size {}) that holds the logical partitions '{}'",
                if names.len() == 1 { "" } else { "s" },
                names.join("', '"),
                if names.len() == 1 { "s" } else { "" },
                size_text(end - start),
                logicals.join("', '")
            ))
            .help("the primary partitions before the extended one come first and forced-primary ones last: place them so, or list them in that order"),
        );
    }
    Some((start, end - start))
}
