use super::*;

pub(super) const IMAGE: Section = Section {
    doc: "The disk: name of the output files, partition table, size, geometry",
    keys: &[
        KeySpec {
            name: "name",
            kind: Kind::Text,
            doc: "Stem of the output files (<name>.img, <name>.img.bmap): letters, digits, . _ -",
        },
        KeySpec {
            name: "table",
            kind: Kind::Enum(&TABLE_NAMES),
            doc: "Partition table (default gpt); hybrid = GPT plus an MBR listing the partitions marked hybrid",
        },
        KeySpec {
            name: "size",
            kind: Kind::SizeOrAuto,
            doc: "Whole image (default auto: the smallest that holds everything), whole sectors",
        },
        KeySpec {
            name: "sector-size",
            kind: Kind::Uint,
            doc: "Logical sector size of the medium: 512 (default) or 4096",
        },
        KeySpec {
            name: "align",
            kind: Kind::Size,
            doc: "Default start alignment of partitions (default 1MiB), whole sectors",
        },
        KeySpec {
            name: "seed",
            kind: Kind::Text,
            doc: "Every UUID, volume id and hash seed derives from it (default: the image name)",
        },
        KeySpec {
            name: "disk-uuid",
            kind: Kind::Uuid,
            doc: "GPT disk GUID (default: derived from the seed)",
        },
        KeySpec {
            name: "mbr-signature",
            kind: Kind::Uint,
            doc: "MBR disk signature, 32 bits (default: derived from the seed; 0 on gpt)",
        },
        KeySpec {
            name: "gpt-entries",
            kind: Kind::Uint,
            doc: "GPT partition entry count, 128 to 16384 (default 128)",
        },
        KeySpec {
            name: "gpt-location",
            kind: Kind::Size,
            doc: "Where the primary GPT entry array starts (default: right after the header)",
        },
        KeySpec {
            name: "gpt-no-backup",
            kind: Kind::Bool,
            doc: "Write no backup GPT at the end of the disk (default false)",
        },
        KeySpec {
            name: "protective-entry",
            kind: Kind::Enum(&PROTECTIVE_NAMES),
            doc: "table: hybrid: where the 0xEE entry goes in the MBR (default last)",
        },
        KeySpec {
            name: "extended-partition",
            kind: Kind::Uint,
            doc: "table: mbr: the MBR entry (1-4) holding the extended partition",
        },
    ],
};

/// `table:`'s values.
const TABLES: [(&str, TableKind); 4] = [
    ("gpt", TableKind::Gpt),
    ("mbr", TableKind::Mbr),
    ("hybrid", TableKind::Hybrid),
    ("none", TableKind::None),
];
const TABLE_NAMES: [&str; 4] = names(&TABLES);
/// `protective-entry:`'s values: whether the 0xEE entry comes first.
const PROTECTIVE: [(&str, bool); 2] = [("last", false), ("first", true)];
const PROTECTIVE_NAMES: [&str; 2] = names(&PROTECTIVE);

/// Bytes per GPT partition entry (UEFI 2.10 §5.3.3).
pub(super) const GPT_ENTRY_SIZE: u64 = 128;
/// UEFI reserves at least 16KiB for the entry array: 128 entries.
pub(super) const GPT_ENTRIES_MIN: u64 = 128;
/// 16384 entries (2MiB of array) is far beyond any real table.
pub(super) const GPT_ENTRIES_MAX: u64 = 16384;

pub(super) fn decode_image(cx: &mut Cx<'_>, node: &Node) -> Option<Image> {
    let f = cx.fields(node, &IMAGE, "write `image: { name: sdcard, table: gpt }`")?;
    let name = f
        .require(
            cx,
            "name",
            "add `name: sdcard` (the stem of the output files)",
        )
        .and_then(|n| {
            let s = cx.spanned_text(n)?;
            if !is_name(&s.value) {
                cx.err(
                    n,
                    format!("\"{}\" is not a valid image name", s.value),
                    "use letters, digits, '.', '_' and '-' (it names the output files)",
                );
                return None;
            }
            Some(s)
        });
    let table = f.get("table").and_then(|n| {
        cx.choice(n, "a partition table kind", &TABLES)
            .map(|v| cx.spanned(n, v))
    });
    let table = f.or_default("table", table, TableKind::Gpt);
    let size = f.get("size").and_then(|n| {
        let t = n.as_str().map(str::trim);
        if t == Some("auto") {
            return Some(cx.spanned(n, ImageSize::Auto));
        }
        let t = cx.scalar_text(n, "a size")?;
        match t.parse::<ByteSize>() {
            Ok(s) => Some(cx.spanned(n, ImageSize::Fixed(s))),
            Err(_) => {
                cx.err(
                    n,
                    format!("\"{t}\" is not an image size"),
                    "write a size such as \"4GiB\", or auto (the smallest that fits)",
                );
                None
            }
        }
    });
    let size = f.or_default("size", size, ImageSize::Auto);
    let sector_size = f.get("sector-size").and_then(|n| {
        let v = cx.u32(n, "a sector size")?;
        if v != 512 && v != 4096 {
            cx.err(
                n,
                format!("\"{v}\" is not a supported sector size"),
                "use 512 (SD cards, most eMMC) or 4096 (4Kn disks, UFS)",
            );
            return None;
        }
        Some(cx.spanned(n, v))
    });
    let sector_size = f.or_default("sector-size", sector_size, 512);
    let align = f.get("align").and_then(|n| {
        let a = cx.size(n)?;
        check_align(cx, n, a, sector_size.value)?;
        Some(cx.spanned(n, a))
    });
    let align = f.or_default("align", align, ByteSize(crate::units::MIB));
    if let (ImageSize::Fixed(s), Some(n)) = (size.value, f.get("size")) {
        if s.0 == 0 || s.0 % u64::from(sector_size.value) != 0 {
            cx.err(
                n,
                format!(
                    "\"{s}\" is not a whole number of {}-byte sectors",
                    sector_size.value
                ),
                "use a multiple of the sector size, or auto",
            );
        }
    }
    let seed = f.get("seed").and_then(|n| cx.spanned_text(n));
    let disk_uuid = f
        .get("disk-uuid")
        .and_then(|n| cx.uuid(n).map(|u| cx.spanned(n, u)));
    let mbr_signature = f
        .get("mbr-signature")
        .and_then(|n| cx.u32(n, "an MBR signature").map(|u| cx.spanned(n, u)));
    let gpt_entries = f.get("gpt-entries").and_then(|n| {
        let v = cx.uint(n, u64::from(u32::MAX), "an entry count")?;
        let per_sector = u64::from(sector_size.value) / GPT_ENTRY_SIZE;
        if !(GPT_ENTRIES_MIN..=GPT_ENTRIES_MAX).contains(&v) || v % per_sector != 0 {
            cx.err(
                n,
                format!("\"{v}\" is not a usable GPT entry count"),
                format!(
                    "use a multiple of {per_sector} from {GPT_ENTRIES_MIN} (the UEFI minimum) to {GPT_ENTRIES_MAX}"
                ),
            );
            return None;
        }
        u32::try_from(v).ok().map(|v| cx.spanned(n, v))
    });
    let gpt_location = f.get("gpt-location").and_then(|n| {
        let a = cx.size(n)?;
        let sector = u64::from(sector_size.value);
        // LBA 0 holds the protective MBR and LBA 1 the GPT header.
        if a.0 % sector != 0 || a.0 < 2 * sector {
            cx.err(
                n,
                format!("\"{a}\" is not a usable GPT array location"),
                format!(
                    "use a whole number of {sector}-byte sectors from {} on (after the MBR and the GPT header)",
                    ByteSize(2 * sector)
                ),
            );
            return None;
        }
        Some(cx.spanned(n, a))
    });
    let gpt_no_backup = f
        .get("gpt-no-backup")
        .and_then(|n| cx.boolean(n).map(|b| cx.spanned(n, b)));
    let protective_first = f.get("protective-entry").and_then(|n| {
        cx.choice(n, "a protective entry position", &PROTECTIVE)
            .map(|v| cx.spanned(n, v))
    });
    let extended_partition = f.get("extended-partition").and_then(|n| {
        let v = cx.uint(n, 4, "an MBR entry number")?;
        if v == 0 {
            cx.err(
                n,
                "\"0\" is not an MBR entry",
                "use 1 to 4, or remove it (entry 4 when more than four partitions are in the table)",
            );
            return None;
        }
        u32::try_from(v).ok().map(|v| cx.spanned(n, v))
    });
    let table_kind = table.value;
    check_table_keys(
        cx,
        table_kind,
        gpt_no_backup.as_ref().map(|d| d.diag("")),
        protective_first.as_ref().map(|d| d.diag("")),
        extended_partition.as_ref().map(|d| d.diag("")),
    );
    if let Some(d) = &disk_uuid {
        if matches!(table_kind, TableKind::Mbr | TableKind::None) {
            cx.diags.push(d.diag("a disk UUID needs a GPT").help(
                "remove disk-uuid, or use `table: gpt` (mbr-signature is the MBR's disk id)",
            ));
        }
    }
    if matches!(table_kind, TableKind::Mbr | TableKind::None) {
        for (key, span) in [
            ("gpt-entries", gpt_entries.as_ref().map(|d| d.diag(""))),
            ("gpt-location", gpt_location.as_ref().map(|d| d.diag(""))),
        ] {
            if let Some(at) = span {
                cx.diags.push(
                    Diagnostic::new(at.span, at.key, format!("{key} needs a GPT"))
                        .help(format!("remove {key}, or use `table: gpt`")),
                );
            }
        }
    }
    if let Some(d) = &mbr_signature {
        if table_kind == TableKind::None {
            cx.diags.push(d.diag("an MBR signature needs an MBR").help(
                "remove mbr-signature, or use a table (on `table: gpt` it is the protective MBR's)",
            ));
        }
    }
    let name = name?;
    let seed = seed.unwrap_or_else(|| name.clone());
    Some(Image {
        name,
        table,
        size,
        sector_size,
        align,
        seed,
        disk_uuid,
        mbr_signature,
        gpt_entries,
        gpt_location,
        gpt_no_backup,
        protective_first,
        extended_partition,
    })
}

/// `gpt-no-backup`, `protective-entry` and `extended-partition` (given as
/// the diagnostics to report at them) apply to one kind of table each.
pub(super) fn check_table_keys(
    cx: &mut Cx<'_>,
    table: TableKind,
    gpt_no_backup: Option<Diagnostic>,
    protective_entry: Option<Diagnostic>,
    extended_partition: Option<Diagnostic>,
) {
    let checks = [
        (
            gpt_no_backup,
            matches!(table, TableKind::Gpt | TableKind::Hybrid),
            "gpt-no-backup needs a GPT",
            "remove gpt-no-backup, or use `table: gpt` or `table: hybrid`",
        ),
        (
            protective_entry,
            table == TableKind::Hybrid,
            "protective-entry is the place of the 0xEE entry in a hybrid MBR",
            "remove protective-entry, or use `table: hybrid`",
        ),
        (
            extended_partition,
            table == TableKind::Mbr,
            "extended-partition needs `table: mbr` (logical partitions are an MBR's)",
            "remove extended-partition, or use `table: mbr`",
        ),
    ];
    for (at, fits, message, help) in checks {
        if let (Some(at), false) = (at, fits) {
            cx.diags
                .push(Diagnostic::new(at.span, at.key, message).help(help));
        }
    }
}
