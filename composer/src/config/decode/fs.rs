use super::*;

/// The filesystems by their `type:`, with their keys.
pub(super) const FILESYSTEMS: [(&str, &Section); 5] = [
    ("vfat", &VFAT),
    ("ext4", &EXT4),
    ("squashfs", &SQUASHFS),
    ("erofs", &EROFS),
    ("swap", &SWAP),
];

/// `type:` of a filesystem; the schema gives each section its own tag
/// (a list of the tags here would make the tables refer to themselves).
const FS_TYPE: KeySpec = KeySpec {
    name: "type",
    kind: Kind::Text,
    doc: "The filesystem, which chooses the other keys",
};
const FROM: KeySpec = KeySpec {
    name: "from",
    kind: Kind::AnyOf(&[Kind::Path, Kind::List(&Kind::Path)]),
    doc: "The directory tree it is made from (input path), or a list of trees merged in order",
};
pub(super) const EXCLUDE: KeySpec = KeySpec {
    name: "exclude",
    kind: Kind::List(&Kind::Text),
    doc: "Absolute globs of paths left out of the `from:` trees (a trailing / keeps the directory, empty)",
};
const LEVEL: KeySpec = KeySpec {
    name: "level",
    kind: Kind::Uint,
    doc: "Compression level of the chosen compression",
};

const VFAT: Section = Section {
    doc: "fs: { type: vfat }: a FAT12/16/32 filesystem",
    keys: &[
        FS_TYPE,
        KeySpec {
            name: "label",
            kind: Kind::Text,
            doc: "Volume label, at most 11 bytes",
        },
        KeySpec {
            name: "fat",
            kind: Kind::Uint,
            doc: "FAT type: 12, 16 or 32 (default: chosen from the size)",
        },
        KeySpec {
            name: "cluster-size",
            kind: Kind::Size,
            doc: "Bytes per cluster, a power of two from 512 to 64KiB",
        },
        KeySpec {
            name: "volume-id",
            kind: Kind::Uint,
            doc: "Volume serial number, 32 bits (default: derived from the seed)",
        },
        FILES,
        FROM,
        EXCLUDE,
    ],
};

const EXT4: Section = Section {
    doc: "fs: { type: ext4 }",
    keys: &[
        FS_TYPE,
        KeySpec {
            name: "label",
            kind: Kind::Text,
            doc: "Volume label, at most 16 bytes",
        },
        KeySpec {
            name: "uuid",
            kind: Kind::Uuid,
            doc: "Filesystem UUID (default: derived from the seed)",
        },
        FROM,
        EXCLUDE,
        FILES,
        OWNERS,
        DEVICE_TABLE,
        RULES,
        KeySpec {
            name: "features",
            kind: Kind::List(&Kind::Toggles(&EXT4_FEATURES)),
            doc: "ext4 features as mke2fs names them; ^name disables one",
        },
        KeySpec {
            name: "journal",
            kind: Kind::AnyOf(&[Kind::Bool, Kind::Size]),
            doc: "true (default size), false (no journal) or the journal size",
        },
        KeySpec {
            name: "journal-init",
            kind: Kind::Enum(&JOURNAL_INIT_NAMES),
            doc: "zero: write the journal blocks (default); lazy: leave them unmapped",
        },
        KeySpec {
            name: "block-size",
            kind: Kind::Size,
            doc: "Block size: 1024, 2048 or 4096",
        },
        KeySpec {
            name: "inode-ratio",
            kind: Kind::Size,
            doc: "Bytes per inode, 1KiB to 64MiB; not with inodes",
        },
        KeySpec {
            name: "inodes",
            kind: Kind::Uint,
            doc: "Exact inode count; not with inode-ratio",
        },
        KeySpec {
            name: "reserved",
            kind: Kind::Percent(RESERVED_MAX),
            doc: "Percent of blocks reserved for root (default 0)",
        },
        KeySpec {
            name: "hash-seed",
            kind: Kind::Uuid,
            doc: "Directory hash seed (default: derived from the seed)",
        },
    ],
};

const SQUASHFS: Section = Section {
    doc: "fs: { type: squashfs }: a compressed read-only filesystem",
    keys: &[
        FS_TYPE,
        FROM,
        EXCLUDE,
        FILES,
        OWNERS,
        DEVICE_TABLE,
        RULES,
        KeySpec {
            name: "compression",
            kind: Kind::Enum(&COMPRESSION_NAMES),
            doc: "Block compression (default gzip)",
        },
        LEVEL,
        KeySpec {
            name: "block-size",
            kind: Kind::Size,
            doc: "Data block size, a power of two from 4KiB to 1MiB (default 128KiB)",
        },
        KeySpec {
            name: "verity",
            kind: Kind::Bool,
            doc: "Append a dm-verity hash tree",
        },
    ],
};

const EROFS: Section = Section {
    doc: "fs: { type: erofs }: an EROFS read-only filesystem",
    keys: &[
        FS_TYPE,
        FROM,
        EXCLUDE,
        FILES,
        OWNERS,
        DEVICE_TABLE,
        RULES,
        KeySpec {
            name: "compression",
            kind: Kind::Enum(&EROFS_COMPRESSION_NAMES),
            doc: "File data compression (default none)",
        },
        LEVEL,
        KeySpec {
            name: "pcluster-size",
            kind: Kind::Size,
            doc: "Largest physical cluster, a multiple of 4KiB up to 1MiB (default 4KiB)",
        },
        KeySpec {
            name: "verity",
            kind: Kind::Bool,
            doc: "Append a dm-verity hash tree",
        },
    ],
};

const SWAP: Section = Section {
    doc: "fs: { type: swap }: a Linux swap area",
    keys: &[
        FS_TYPE,
        KeySpec {
            name: "label",
            kind: Kind::Text,
            doc: "Label for LABEL= in fstab, at most 16 bytes",
        },
        KeySpec {
            name: "uuid",
            kind: Kind::Uuid,
            doc: "UUID for UUID= in fstab (default: derived from the seed)",
        },
        KeySpec {
            name: "page-size",
            kind: Kind::Size,
            doc: "The target kernel page size: 4KiB (default), 16KiB or 64KiB",
        },
    ],
};

/// `compression:`'s values for initramfs and squashfs.
pub(super) const COMPRESSIONS: [(&str, Compression); 5] = [
    ("none", Compression::None),
    ("gzip", Compression::Gzip),
    ("zstd", Compression::Zstd),
    ("xz", Compression::Xz),
    ("lz4", Compression::Lz4),
];
pub(super) const COMPRESSION_NAMES: [&str; 5] = names(&COMPRESSIONS);
/// EROFS's `compression:` values.
const EROFS_COMPRESSIONS: [(&str, crate::fs::erofs::Compression); 3] = {
    use crate::fs::erofs::Compression as C;
    [("none", C::None), ("lz4", C::Lz4), ("lz4hc", C::Lz4hc)]
};
const EROFS_COMPRESSION_NAMES: [&str; 3] = names(&EROFS_COMPRESSIONS);
/// `journal-init:`'s values.
const JOURNAL_INITS: [(&str, JournalInit); 2] =
    [("zero", JournalInit::Zero), ("lazy", JournalInit::Lazy)];
const JOURNAL_INIT_NAMES: [&str; 2] = names(&JOURNAL_INITS);

/// ext4 feature names mke2fs knows (e2fsprogs lib/e2p/feature.c), so that a
/// typo is caught here rather than ignored by the writer.
pub(super) const EXT4_FEATURES: [&str; 33] = [
    "64bit",
    "bigalloc",
    "casefold",
    "dir_index",
    "dir_nlink",
    "ea_inode",
    "encrypt",
    "ext_attr",
    "extent",
    "extents",
    "extra_isize",
    "fast_commit",
    "filetype",
    "flex_bg",
    "has_journal",
    "huge_file",
    "inline_data",
    "large_dir",
    "large_file",
    "meta_bg",
    "metadata_csum",
    "metadata_csum_seed",
    "mmp",
    "orphan_file",
    "project",
    "quota",
    "resize_inode",
    "sparse_super",
    "sparse_super2",
    "stable_inodes",
    "uninit_bg",
    "verity",
    "journal_dev",
];

/// FAT volume labels are 11 bytes (the BPB field).
pub(super) const VFAT_LABEL_MAX: usize = 11;
/// ext4 `s_volume_name` is 16 bytes.
pub(super) const EXT4_LABEL_MAX: usize = 16;
/// mke2fs accepts bytes-per-inode from 1KiB to 64MiB.
pub(super) const INODE_RATIO_RANGE: (u64, u64) = (1024, 64 * 1024 * 1024);
/// mke2fs refuses more than 50% reserved blocks.
pub(super) const RESERVED_MAX: u64 = 50;
/// FAT clusters are 1 to 128 sectors of 512 bytes (64KiB; Windows reads up to that).
pub(super) const CLUSTER_RANGE: (u64, u64) = (512, 64 * KIB);

pub(super) fn decode_fs(cx: &mut Cx<'_>, node: &Node) -> Option<Filesystem> {
    let Value::Map(_) = &node.value else {
        cx.expected(node, "a map", "write `fs: { type: ext4 }`");
        return None;
    };
    let Some(t) = node.get("type").filter(|n| !matches!(n.value, Value::Null)) else {
        cx.err(
            node,
            "missing key 'type'",
            "add `type: ext4`, `type: vfat`, `type: squashfs`, `type: erofs` or `type: swap`",
        );
        return None;
    };
    let choices = FILESYSTEMS.map(|(tag, _)| (tag, tag));
    match cx.choice(t, "a filesystem type", &choices)? {
        "vfat" => decode_vfat(cx, node).map(|v| Filesystem::Vfat(Box::new(v))),
        "ext4" => decode_ext4(cx, node).map(|e| Filesystem::Ext4(Box::new(e))),
        "squashfs" => decode_squashfs(cx, node).map(|q| Filesystem::Squashfs(Box::new(q))),
        "erofs" => decode_erofs(cx, node).map(|e| Filesystem::Erofs(Box::new(e))),
        "swap" => decode_swap(cx, node).map(|w| Filesystem::Swap(Box::new(w))),
        // `choice` returns only the tags above (fs_types_all_decode tests it).
        _ => None,
    }
}

pub(super) fn label(
    cx: &mut Cx<'_>,
    f: &Fields<'_>,
    max: usize,
    fs: &str,
) -> Option<Spanned<String>> {
    let n = f.get("label")?;
    let s = cx.spanned_text(n)?;
    if s.value.len() > max {
        cx.err(
            n,
            format!("\"{}\" is longer than {max} bytes", s.value),
            format!("{fs} labels hold at most {max} bytes; shorten it"),
        );
        return None;
    }
    Some(s)
}

/// Every component of a FAT destination is a legal long name (the writer's
/// own rule, [`crate::fs::vfat::names::validate`]).
pub(super) fn check_fat_names(cx: &mut Cx<'_>, dest: &Spanned<String>) {
    for name in dest.value.split('/').filter(|c| !c.is_empty()) {
        if let Err(e) = crate::fs::vfat::names::validate(name) {
            cx.diags.push(
                dest.diag(format!("\"{}\": the name \"{name}\" {e}", dest.value))
                    .help("rename it for FAT, e.g. replace ':' with '-'"),
            );
        }
    }
}

pub(super) fn decode_vfat(cx: &mut Cx<'_>, node: &Node) -> Option<Vfat> {
    let f = cx.fields(node, &VFAT, "write `fs: { type: vfat }`")?;
    let label =
        label(cx, &f, VFAT_LABEL_MAX, "FAT").and_then(|s| {
            if let Some(c) = s.value.chars().find(|c| {
                !c.is_ascii() || "\"*+,./:;<=>?[\\]|".contains(*c) || c.is_ascii_control()
            }) {
                cx.diags.push(
                    s.diag(format!(
                        "\"{}\" has '{c}', which FAT labels cannot hold",
                        s.value
                    ))
                    .help("use letters, digits, space, '-' and '_'"),
                );
                return None;
            }
            Some(s)
        });
    let fat = f.get("fat").and_then(|n| {
        let v = cx.uint(n, u64::from(u32::MAX), "a FAT size")?;
        if ![12, 16, 32].contains(&v) {
            cx.err(
                n,
                format!("\"{v}\" is not a FAT size"),
                "use 12, 16 or 32, or leave it out to choose from the size",
            );
            return None;
        }
        u8::try_from(v).ok().map(|v| cx.spanned(n, v))
    });
    let cluster_size = f.get("cluster-size").and_then(|n| {
        let s = cx.size_where(
            n,
            |v| v.is_power_of_two() && (CLUSTER_RANGE.0..=CLUSTER_RANGE.1).contains(&v),
            "is not a FAT cluster size",
            "use a power of two from 512 to 64KiB, e.g. 4KiB",
        )?;
        Some(cx.spanned(n, s))
    });
    let volume_id = f
        .get("volume-id")
        .and_then(|n| cx.u32(n, "a volume id").map(|v| cx.spanned(n, v)));
    let files = decode_files(cx, &f);
    for entry in &files {
        check_fat_names(cx, &entry.dest);
    }
    let sources = decode_sources(cx, &f);
    Some(Vfat {
        label,
        fat,
        cluster_size,
        volume_id,
        files,
        sources,
    })
}

pub(super) fn decode_ext4(cx: &mut Cx<'_>, node: &Node) -> Option<Ext4> {
    let f = cx.fields(node, &EXT4, "write `fs: { type: ext4 }`")?;
    let label = label(cx, &f, EXT4_LABEL_MAX, "ext4");
    let uuid = f
        .get("uuid")
        .and_then(|n| cx.uuid(n).map(|u| cx.spanned(n, u)));
    let sources = decode_sources(cx, &f);
    let files = decode_files(cx, &f);
    let ownership = decode_ownership(cx, &f);
    let mut features = Vec::new();
    if let Some(n) = f.get("features") {
        for item in cx
            .list(n, "write `features: [metadata_csum, ^huge_file]`")
            .unwrap_or_default()
        {
            let Some(t) = cx.scalar_text(item, "a feature name") else {
                continue;
            };
            let (name, enabled) = match t.strip_prefix('^') {
                Some(rest) => (rest.to_string(), false),
                None => (t.clone(), true),
            };
            if !EXT4_FEATURES.contains(&name.as_str()) {
                let mut help = String::new();
                if let Some(best) = closest(&name, &EXT4_FEATURES) {
                    help.push_str(&format!("did you mean '{best}'? "));
                }
                help.push_str("see ext4(5) for the feature names; '^name' disables one");
                cx.err(item, format!("\"{t}\" is not an ext4 feature"), help);
                continue;
            }
            features.push(cx.spanned(item, Feature { name, enabled }));
        }
    }
    let block_size = f.get("block-size").and_then(|n| {
        let s = cx.size_where(
            n,
            |v| [1024, 2048, 4096].contains(&v),
            "is not an ext4 block size",
            "use 1024, 2048 or 4096 (the Linux page size bounds it)",
        )?;
        u32::try_from(s.0).ok().map(|v| cx.spanned(n, v))
    });
    // The journal's smallest size is in blocks: it depends on the block size.
    let journal_block = block_size
        .as_ref()
        .map_or(crate::fs::ext4::Ext4Options::default().block_size, |b| {
            b.value
        });
    let journal_min = crate::fs::ext4::MIN_JOURNAL_BLOCKS * u64::from(journal_block);
    let journal_max = crate::fs::ext4::MAX_JOURNAL_BLOCKS * u64::from(journal_block);
    let journal = f.get("journal").and_then(|n| {
        match n.as_str().map(str::trim) {
            Some("true") => return Some(cx.spanned(n, Journal::Default)),
            Some("false") => return Some(cx.spanned(n, Journal::None)),
            _ => {}
        }
        match n.as_str().map(|t| t.trim().parse::<ByteSize>()) {
            Some(Ok(s)) if s.0 > journal_max => {
                cx.err(
                    n,
                    format!("\"{s}\" is above the largest journal, {}", ByteSize(journal_max)),
                    format!(
                        "mke2fs allows at most {} blocks ({} with {}-byte blocks); write {} or less, or true for the default size",
                        crate::fs::ext4::MAX_JOURNAL_BLOCKS,
                        ByteSize(journal_max),
                        journal_block,
                        ByteSize(journal_max)
                    ),
                );
                None
            }
            Some(Ok(s)) if s.0 >= journal_min => Some(cx.spanned(n, Journal::Size(s))),
            Some(Ok(s)) => {
                cx.err(
                    n,
                    format!("\"{s}\" is below the smallest journal, {}", ByteSize(journal_min)),
                    format!(
                        "jbd2 needs at least {} blocks ({} with {}-byte blocks); write {} or more, or true for the default size",
                        crate::fs::ext4::MIN_JOURNAL_BLOCKS,
                        ByteSize(journal_min),
                        journal_block,
                        ByteSize(journal_min)
                    ),
                );
                None
            }
            _ => {
                if !matches!(n.value, Value::Invalid) {
                    let found = n.as_str().unwrap_or(n.kind_name());
                    cx.err(
                        n,
                        format!("\"{found}\" is not true, false or a journal size"),
                        "write true (default size), false (no journal) or a size such as 16MiB",
                    );
                }
                None
            }
        }
    });
    if let Some(j) = &journal {
        check_journal_features(cx, j, &features);
    }
    let journal = f.or_default("journal", journal, Journal::Default);
    let journal_init = f.get("journal-init").and_then(|n| {
        cx.choice(n, "a journal-init mode", &JOURNAL_INITS)
            .map(|v| cx.spanned(n, v))
    });
    let journal_init = f.or_default("journal-init", journal_init, JournalInit::Zero);
    let inode_ratio = f.get("inode-ratio").and_then(|n| {
        let s = cx.size_where(
            n,
            |v| (INODE_RATIO_RANGE.0..=INODE_RATIO_RANGE.1).contains(&v),
            "is out of range for bytes per inode",
            "use 1KiB to 64MiB, e.g. 16KiB",
        )?;
        Some(cx.spanned(n, s))
    });
    let inodes = f.get("inodes").and_then(|n| {
        let v = cx.uint(n, u64::from(u32::MAX), "an inode count")?;
        let min = u64::from(crate::fs::ext4::MIN_INODES);
        if v < min {
            cx.err(
                n,
                format!("\"{v}\" inodes are fewer than ext4 reserves"),
                format!("ext4 reserves inodes 1 to {min} (lost+found is {min}); use at least {min} plus one per file, or leave it out"),
            );
            return None;
        }
        Some(cx.spanned(n, v))
    });
    if let (Some(_), Some(n)) = (&inodes, f.get("inode-ratio")) {
        cx.err(
            n,
            "inode-ratio and inodes both set",
            "keep one: inodes is an exact count, inode-ratio derives it from the size",
        );
    }
    let reserved = f.get("reserved").and_then(|n| {
        let text = n
            .as_str()
            .map(|t| t.trim().trim_end_matches('%').trim().to_string());
        let v = match text.as_deref().map(str::parse::<u64>) {
            Some(Ok(v)) if v <= RESERVED_MAX => v,
            _ => {
                if !matches!(n.value, Value::Invalid) {
                    let found = n.as_str().unwrap_or(n.kind_name());
                    cx.err(
                        n,
                        format!("\"{found}\" is not a reserved-blocks percentage"),
                        format!("write a whole percent from 0 to {RESERVED_MAX}, e.g. 5"),
                    );
                }
                return None;
            }
        };
        u8::try_from(v).ok().map(|v| cx.spanned(n, v))
    });
    let reserved = f.or_default("reserved", reserved, 0);
    let hash_seed = f
        .get("hash-seed")
        .and_then(|n| cx.uuid(n).map(|u| cx.spanned(n, u)));
    Some(Ext4 {
        label,
        uuid,
        sources,
        files,
        ownership,
        features,
        journal,
        journal_init,
        block_size,
        inode_ratio,
        inodes,
        reserved,
        hash_seed,
    })
}

/// `compression:` of an initramfs or squashfs; default gzip.
pub(super) fn compression(cx: &mut Cx<'_>, f: &Fields<'_>) -> Spanned<Compression> {
    let compression = f.get("compression").and_then(|n| {
        cx.choice(n, "a compression", &COMPRESSIONS)
            .map(|c| cx.spanned(n, c))
    });
    f.or_default("compression", compression, Compression::Gzip)
}

/// A `level:` of a compressed read-only filesystem: within `range` (the
/// chosen compression's), refused with `no_level` (message, help) when the
/// compression takes none; `what` names the compression in the range error.
pub(super) fn compression_level(
    cx: &mut Cx<'_>,
    n: &Node,
    range: Option<(u32, u32)>,
    no_level: (&str, &str),
    what: &str,
) -> Option<Spanned<u32>> {
    let Some((lo, hi)) = range else {
        cx.err(n, no_level.0, no_level.1);
        return None;
    };
    let v = cx.uint(n, u64::from(u32::MAX), "a compression level")?;
    if !(u64::from(lo)..=u64::from(hi)).contains(&v) {
        cx.err(
            n,
            format!("\"{v}\" is out of range for {what}"),
            format!("use a level from {lo} to {hi}"),
        );
        return None;
    }
    u32::try_from(v).ok().map(|v| cx.spanned(n, v))
}

pub(super) fn decode_squashfs(cx: &mut Cx<'_>, node: &Node) -> Option<Squashfs> {
    let f = cx.fields(node, &SQUASHFS, "write `fs: { type: squashfs }`")?;
    let sources = decode_sources(cx, &f);
    let files = decode_files(cx, &f);
    let ownership = decode_ownership(cx, &f);
    let compression = compression(cx, &f);
    let level = f.get("level").and_then(|n| {
        compression_level(
            cx,
            n,
            compression.value.squashfs_codec().level_range(),
            (
                "lz4 and none take no level",
                "remove `level:`, or choose gzip, xz or zstd",
            ),
            "this compression",
        )
    });
    let block_size = f.get("block-size").and_then(|n| {
        let s = cx.size_where(
            n,
            |v| v.is_power_of_two() && (4 * KIB..=1024 * KIB).contains(&v),
            "is not a squashfs block size",
            "use a power of two from 4KiB to 1MiB, e.g. 128KiB (the default)",
        )?;
        u32::try_from(s.0).ok().map(|v| cx.spanned(n, v))
    });
    let verity = f.flag(cx, "verity", false);
    Some(Squashfs {
        sources,
        files,
        ownership,
        compression,
        level,
        block_size,
        verity,
    })
}

pub(super) fn decode_swap(cx: &mut Cx<'_>, node: &Node) -> Option<Swap> {
    use crate::fs::swap::{LABEL_MAX, PAGE_SIZES};
    let f = cx.fields(node, &SWAP, "write `fs: { type: swap }`")?;
    let label = label(cx, &f, LABEL_MAX, "swap");
    let uuid = f
        .get("uuid")
        .and_then(|n| cx.uuid(n).map(|u| cx.spanned(n, u)));
    let page_size = f.get("page-size").and_then(|n| {
        let s = cx.size(n)?;
        match u32::try_from(s.0).ok().filter(|p| PAGE_SIZES.contains(p)) {
            Some(p) => Some(cx.spanned(n, p)),
            None => {
                cx.err(
                    n,
                    format!("\"{s}\" is not a kernel page size"),
                    "use the target kernel's page size: 4KiB (the default), 16KiB or 64KiB",
                );
                None
            }
        }
    });
    Some(Swap {
        label,
        uuid,
        page_size,
    })
}

pub(super) fn decode_erofs(cx: &mut Cx<'_>, node: &Node) -> Option<Erofs> {
    let f = cx.fields(node, &EROFS, "write `fs: { type: erofs }`")?;
    let sources = decode_sources(cx, &f);
    let files = decode_files(cx, &f);
    let ownership = decode_ownership(cx, &f);
    let compression = f
        .get("compression")
        .and_then(|n| cx.choice(n, "an EROFS compression", &EROFS_COMPRESSIONS))
        .unwrap_or(crate::fs::erofs::Compression::None);
    let level = f.get("level").and_then(|n| {
        compression_level(
            cx,
            n,
            compression.level_range(),
            (
                "only lz4hc takes a level",
                "remove `level:`, or write `compression: lz4hc`",
            ),
            "lz4hc",
        )
    });
    let pcluster_size = f.get("pcluster-size").and_then(|n| {
        let s = cx.size_where(
            n,
            |v| v > 0 && v % (4 * KIB) == 0 && v <= 1024 * KIB,
            "is not an EROFS physical cluster size",
            "use a multiple of 4KiB up to 1MiB, e.g. 4KiB (the default) or 64KiB",
        )?;
        u32::try_from(s.0).ok().map(|v| cx.spanned(n, v))
    });
    let verity = f.flag(cx, "verity", false);
    Some(Erofs {
        sources,
        files,
        ownership,
        compression,
        level,
        pcluster_size,
        verity,
    })
}

/// A `journal:` written explicitly that `features:` contradicts (mke2fs
/// refuses `-J size=` with `-O ^has_journal`; here the feature list and the
/// journal key would silently disagree).
pub(super) fn check_journal_features(
    cx: &mut Cx<'_>,
    journal: &Spanned<Journal>,
    features: &[Spanned<Feature>],
) {
    let Some(feature) = features
        .iter()
        .rev()
        .find(|f| f.value.name == "has_journal")
    else {
        return;
    };
    let (message, help) = match (journal.value, feature.value.enabled) {
        (Journal::None, true) => (
            "journal: false contradicts the feature has_journal",
            "keep one: remove 'has_journal' from features, or remove 'journal: false'",
        ),
        (Journal::Default | Journal::Size(_), false) => (
            "a journal is asked for, but features turns has_journal off",
            "keep one: remove '^has_journal' from features (the journal then has this size), or write 'journal: false'",
        ),
        _ => return,
    };
    cx.diags.push(journal.diag(message).help(format!(
        "{help} ({} at line {})",
        feature.key, feature.span.line
    )));
}
