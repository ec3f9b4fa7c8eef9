use super::*;

pub(super) const PARTITION: Section = Section {
    doc: "A partition, or a blob outside the table (in-table: false)",
    keys: &[
        KeySpec {
            name: "name",
            kind: Kind::Text,
            doc: "Unique name, 1-36 characters; also the GPT partition name",
        },
        KeySpec {
            name: "type",
            kind: Kind::PartType,
            doc: "Partition type: a shorthand (linux, esp, root-arm64, ...), a GUID or an MBR byte (0x0c); default Linux data",
        },
        KeySpec {
            name: "size",
            kind: Kind::SizeSpec { fill: true },
            doc: "A size, auto (default), auto +SIZE, auto +N% or fill (the rest of the disk)",
        },
        KeySpec {
            name: "offset",
            kind: Kind::Size,
            doc: "Absolute byte offset from the start of the disk (default: placed after the previous one)",
        },
        KeySpec {
            name: "in-table",
            kind: Kind::Bool,
            doc: "false: a raw blob outside the table (needs offset); default true",
        },
        KeySpec {
            name: "bootable",
            kind: Kind::Bool,
            doc: "MBR active flag / GPT legacy-BIOS-bootable attribute",
        },
        KeySpec {
            name: "read-only",
            kind: Kind::Bool,
            doc: "GPT attribute bit 60",
        },
        KeySpec {
            name: "no-automount",
            kind: Kind::Bool,
            doc: "GPT attribute bit 63",
        },
        KeySpec {
            name: "required",
            kind: Kind::Bool,
            doc: "GPT attribute bit 0 (platform required)",
        },
        KeySpec {
            name: "legacy-bios-bootable",
            kind: Kind::Bool,
            doc: "GPT attribute bit 2",
        },
        KeySpec {
            name: "gpt-attributes",
            kind: Kind::AnyOf(&[Kind::Uint, Kind::List(&Kind::AnyOf(&[Kind::Uint, Kind::Enum(&GPT_ATTRIBUTE_LABELS)]))]),
            doc: "GPT attribute bits: the 64-bit field, or a list of bit numbers and names",
        },
        KeySpec {
            name: "forced-primary",
            kind: Kind::Bool,
            doc: "table: mbr with an extended partition: make this partition primary",
        },
        KeySpec {
            name: "uuid",
            kind: Kind::Uuid,
            doc: "GPT partition UUID (default: derived from the seed and the name)",
        },
        KeySpec {
            name: "align",
            kind: Kind::Size,
            doc: "Start alignment of this partition (default image.align)",
        },
        KeySpec {
            name: "mbr-type",
            kind: Kind::Uint,
            doc: "MBR type byte on mbr/hybrid tables (default: from type)",
        },
        KeySpec {
            name: "hybrid",
            kind: Kind::Bool,
            doc: "table: hybrid: also list this partition in the MBR",
        },
        KeySpec {
            name: "holes",
            kind: Kind::List(&Kind::Map(&HOLE)),
            doc: "Ranges of an in-table: false blob that may overlap table areas",
        },
        KeySpec {
            name: "image",
            kind: Kind::Path,
            doc: "Content: a file copied in (input path)",
        },
        KeySpec {
            name: "fs",
            kind: Kind::Tagged(&FILESYSTEMS),
            doc: "Content: a filesystem built in place, chosen by type",
        },
        KeySpec {
            name: "initramfs",
            kind: Kind::Map(&INITRAMFS),
            doc: "Content: a cpio initramfs",
        },
        KeySpec {
            name: "artifact",
            kind: Kind::Text,
            doc: "Content: the named artifact",
        },
        KeySpec {
            name: "same-as",
            kind: Kind::Text,
            doc: "Content: the same content and size as that partition (its own UUIDs)",
        },
        KeySpec {
            name: "fill",
            kind: Kind::Enum(&FILL_NAMES),
            doc: "Content: mapped zeros",
        },
        KeySpec {
            name: "after",
            kind: Kind::Text,
            doc: "Layers: place this partition after that one",
        },
        KeySpec {
            name: "before",
            kind: Kind::Text,
            doc: "Layers: place this partition before that one",
        },
    ],
};

const HOLE: Section = Section {
    doc: "A range of the blob that may overlap table areas",
    keys: &[
        KeySpec {
            name: "offset",
            kind: Kind::Size,
            doc: "From the start of the image file",
        },
        KeySpec {
            name: "size",
            kind: Kind::Size,
            doc: "Length of the range",
        },
    ],
};

pub(super) const ARTIFACT: Section = Section {
    doc: "A named content: used by partitions and files, and/or written as a file of its own",
    keys: &[
        KeySpec {
            name: "fs",
            kind: Kind::Tagged(&FILESYSTEMS),
            doc: "Content: a filesystem, chosen by type",
        },
        KeySpec {
            name: "initramfs",
            kind: Kind::Map(&INITRAMFS),
            doc: "Content: a cpio initramfs",
        },
        KeySpec {
            name: "image",
            kind: Kind::Path,
            doc: "Content: a file (input path)",
        },
        KeySpec {
            name: "size",
            kind: Kind::SizeSpec { fill: false },
            doc: "Size when written standalone or where a partition says auto (default auto)",
        },
        KeySpec {
            name: "output",
            kind: Kind::Text,
            doc: "Also write it to the output directory under this file name",
        },
    ],
};

/// GPT partition names are 36 UTF-16 code units (72 bytes in the entry).
pub(super) const GPT_NAME_MAX: usize = 36;

pub(super) fn decode_artifact(
    cx: &mut Cx<'_>,
    node: &Node,
    name: Spanned<String>,
) -> Option<Artifact> {
    let f = cx.fields(node, &ARTIFACT, "write `rootfs: { fs: { type: ext4 } }`")?;
    let kinds = ["fs", "initramfs", "image"];
    let content = match one_content(cx, &f, &kinds) {
        Some((k, v)) => decode_content(cx, k, v),
        None => {
            cx.diags.push(
                Diagnostic::new(
                    name.span.clone(),
                    name.key.clone(),
                    "an artifact needs a content",
                )
                .help("add one of fs, initramfs, image"),
            );
            None
        }
    };
    let size = f.get("size").and_then(|n| {
        let s = cx.size_spec(n, false)?;
        Some(cx.spanned(n, s))
    });
    let size = f.or_default("size", size, SizeSpec::Auto(Headroom::None));
    let output = f.get("output").and_then(|n| {
        let s = cx.spanned_text(n)?;
        if !is_name(&s.value) {
            cx.err(
                n,
                format!("\"{}\" is not a plain file name", s.value),
                "use letters, digits, '.', '_' and '-'; the file is written into the output directory",
            );
            return None;
        }
        Some(s)
    });
    Some(Artifact {
        name,
        content: content?,
        size,
        output,
    })
}

pub(super) fn decode_partition(
    cx: &mut Cx<'_>,
    node: &Node,
    image: Option<&Image>,
) -> Option<Partition> {
    let f = cx.fields(
        node,
        &PARTITION,
        "write `- name: boot` followed by its keys",
    )?;
    let name = f
        .require(cx, "name", "add `name: ...` (also the GPT partition name)")
        .and_then(|n| {
            let s = cx.spanned_text(n)?;
            if s.value.is_empty() || s.value.encode_utf16().count() > GPT_NAME_MAX {
                cx.err(
                    n,
                    format!("\"{}\" is not a usable partition name", s.value),
                    format!("use 1 to {GPT_NAME_MAX} characters (the GPT name field)"),
                );
                return None;
            }
            Some(s)
        });
    let part_type = f.get("type").and_then(|n| {
        let s = cx.spanned_text(n)?;
        match types::check(&s.value) {
            Ok(_) => Some(s),
            Err(e) => {
                let help = match e {
                    TypeError::Unknown => {
                        let guess = closest(&s.value, types::names())
                            .map(|b| format!("did you mean '{b}'? "))
                            .unwrap_or_default();
                        format!(
                            "{guess}write a GUID, an MBR byte such as 0x83, or a shorthand such as {} (all in docs/config.md)",
                            types::COMMON.join(", ")
                        )
                    }
                    TypeError::NilGuid | TypeError::Reserved(_) => {
                        "use the type of the partition's content, e.g. linux or esp".to_string()
                    }
                };
                cx.err(n, format!("\"{}\" {e}", s.value), help);
                None
            }
        }
    });
    let mbr_type = f.get("mbr-type").and_then(|n| {
        let v = cx.uint(n, 0xff, "an MBR type byte")?;
        let v = u8::try_from(v).ok()?;
        if let Err(e) = types::check(&format!("0x{v:02x}")) {
            cx.err(
                n,
                format!("\"0x{v:02x}\" {e}"),
                "use the partition's type byte, e.g. 0x83 (Linux) or 0x0c (FAT32 LBA)",
            );
            return None;
        }
        Some(cx.spanned(n, v))
    });
    let size = f
        .get("size")
        .and_then(|n| cx.size_spec(n, true).map(|s| cx.spanned(n, s)));
    let offset = f
        .get("offset")
        .and_then(|n| cx.size(n).map(|s| cx.spanned(n, s)));
    let in_table = f.flag(cx, "in-table", true);
    let bootable = f.flag(cx, "bootable", false);
    let flags = PartitionFlags {
        read_only: f.flag(cx, "read-only", false),
        no_automount: f.flag(cx, "no-automount", false),
        required: f.flag(cx, "required", false),
        legacy_bios_bootable: f.flag(cx, "legacy-bios-bootable", false),
        attributes: f
            .get("gpt-attributes")
            .and_then(|n| decode_gpt_attributes(cx, n)),
    };
    let forced_primary = f.flag(cx, "forced-primary", false);
    let uuid = f
        .get("uuid")
        .and_then(|n| cx.uuid(n).map(|u| cx.spanned(n, u)));
    let sector = image.map_or(512, |i| i.sector_size.value);
    let align = f.get("align").and_then(|n| {
        let a = cx.size(n)?;
        check_align(cx, n, a, sector)?;
        Some(cx.spanned(n, a))
    });
    let hybrid = f.flag(cx, "hybrid", false);
    let mut holes = Vec::new();
    if let Some(n) = f.get("holes") {
        for h in cx
            .list(n, "write `holes: [{ offset: 0, size: 1KiB }]`")
            .unwrap_or_default()
        {
            if let Some(hf) = cx.fields(h, &HOLE, "write `{ offset: 0, size: 1KiB }`") {
                let o = hf
                    .require(
                        cx,
                        "offset",
                        "add `offset:` (from the start of the image file)",
                    )
                    .and_then(|n| cx.size(n));
                let s = hf
                    .require(cx, "size", "add `size:`")
                    .and_then(|n| cx.size(n));
                if let (Some(offset), Some(size)) = (o, s) {
                    holes.push(cx.spanned(h, Hole { offset, size }));
                }
            }
        }
    }
    let content = match one_content(cx, &f, &CONTENT_KEYS) {
        Some((k, v)) => decode_content(cx, k, v),
        None => Some(Spanned::new(
            Content::Empty,
            node.span.clone(),
            node.path.clone(),
        )),
    };

    // Cross-key checks within the entry.
    if !in_table.value {
        if offset.is_none() && f.get("offset").is_none() {
            cx.diags.push(
                in_table
                    .diag("a blob outside the table needs an offset")
                    .help(
                    "add `offset:` (e.g. 32KiB for i.MX boot images), or remove `in-table: false`",
                ),
            );
        }
        for key in ["type", "uuid", "mbr-type"] {
            if let Some(n) = f.get(key) {
                cx.err(
                    n,
                    format!("'{key}' has no effect on a blob outside the table"),
                    format!("remove {key}, or remove `in-table: false`"),
                );
            }
        }
    } else if !holes.is_empty() {
        if let Some(n) = f.get("holes") {
            cx.err(
                n,
                "holes are for blobs outside the table",
                "add `in-table: false` and an offset, or remove holes",
            );
        }
    }
    if let (Some(c), Some(n)) = (&content, f.get("size")) {
        if let Content::SameAs(r) = &c.value {
            cx.err(
                n,
                format!("same-as takes the size of '{}'", r.value),
                "remove size, or use `artifact:` to share content with a size of its own",
            );
        }
    }
    if let Some(img) = image {
        if hybrid.value && img.table.value != TableKind::Hybrid {
            cx.diags.push(
                hybrid
                    .diag("hybrid needs `table: hybrid`")
                    .help("remove hybrid, or set `table: hybrid` under image"),
            );
        }
    }
    Some(Partition {
        name: name?,
        span: node.span.clone(),
        key: node.path.clone(),
        part_type,
        mbr_type,
        size,
        offset,
        in_table,
        bootable,
        flags,
        uuid,
        align,
        hybrid,
        forced_primary,
        holes,
        content: content?,
    })
}

/// GPT attribute bits by name, with their bit number (UEFI 2.10 table 5.8;
/// 59–63 from the Discoverable Partitions Specification).
pub(super) const GPT_ATTRIBUTE_NAMES: [(&str, u32); 7] = [
    ("required", 0),
    ("no-block-io", 1),
    ("legacy-bios-bootable", 2),
    ("growfs", 59),
    ("read-only", 60),
    ("hidden", 62),
    ("no-automount", 63),
];
const GPT_ATTRIBUTE_LABELS: [&str; 7] = names(&GPT_ATTRIBUTE_NAMES);
/// Bits 3–47 are reserved by UEFI for future use and must be zero.
pub(super) const GPT_ATTRIBUTES_RESERVED: u64 = ((1u64 << 48) - 1) & !0b111;

/// `gpt-attributes:` as the 64-bit field: an integer (the field itself) or
/// a list of bit numbers and names.
pub(super) fn decode_gpt_attributes(cx: &mut Cx<'_>, n: &Node) -> Option<Spanned<u64>> {
    let bits = match &n.value {
        Value::Seq(items) => {
            let mut bits = 0u64;
            for item in items {
                let text = cx.scalar_text(item, "a GPT attribute bit")?;
                let bit = GPT_ATTRIBUTE_NAMES
                    .iter()
                    .find(|(name, _)| *name == text)
                    .map(|&(_, bit)| bit)
                    .or_else(|| text.parse::<u32>().ok().filter(|&b| b < 64));
                match bit {
                    Some(b) => bits |= 1u64 << b,
                    None => cx.err(
                        item,
                        format!("\"{text}\" is not a GPT attribute bit"),
                        format!(
                            "write a bit number 0-63 or one of: {}",
                            GPT_ATTRIBUTE_LABELS.join(", ")
                        ),
                    ),
                }
            }
            bits
        }
        _ => cx.uint(n, u64::MAX, "GPT attribute bits")?,
    };
    if bits & GPT_ATTRIBUTES_RESERVED != 0 {
        cx.err(
            n,
            format!("{bits:#x} sets GPT attribute bits 3-47, which UEFI reserves"),
            "use bits 0-2 and the type-specific bits 48-63",
        );
        return None;
    }
    Some(cx.spanned(n, bits))
}
