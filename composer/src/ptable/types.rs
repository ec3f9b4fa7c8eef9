//! Partition types: the shorthands users write in `type:` and what they mean
//! in each table format.
//!
//! Every shorthand maps to both a GPT partition type GUID and an MBR type
//! byte, so one description can switch `table: gpt` to `table: mbr` (or
//! `hybrid`) without touching its partitions. GUIDs are those of the UAPI
//! group's Discoverable Partitions Specification
//! (<https://uapi-group.org/specifications/specs/discoverable_partitions_specification/>)
//! and UEFI 2.10 §5.3.3 (ESP); they were checked against util-linux's
//! `sfdisk --label gpt -T` list. MBR bytes follow the same util-linux list
//! (`sfdisk --label dos -T`).
//!
//! Besides shorthands, `type:` accepts a GUID (`0fc63daf-8483-4772-8e79-3d69d8477de4`)
//! or an MBR byte (`0x83`). A GUID gets the MBR byte of the shorthand with
//! that GUID, or 0x83 (Linux) when none has it; an MBR byte gets the GUID of
//! the first shorthand with that byte, or the Linux filesystem data GUID when
//! none has it. So a raw value always works in both formats and the table in
//! [`SHORTHANDS`] is the one place the correspondence is written down.
//!
//! Rejected: per-architecture magic (`root` meaning "root for the build
//! host's architecture", as systemd-repart does) — image-composer builds
//! images for other machines, so the architecture is always written out.
//! Also rejected: MBR bytes that describe the table itself (0x00 unused,
//! 0x05/0x0f/0x85 extended, 0xee GPT protective): image-composer writes
//! those entries; a partition that claims one would corrupt the table.

use crate::ids::Uuid;

/// What a partition holds, in both table formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PartType {
    /// The GPT partition type GUID (textual byte order).
    pub gpt: Uuid,
    /// The MBR partition type byte.
    pub mbr: u8,
}

/// Why a `type:` value is not a partition type (see [`check`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    #[error("is not a partition type")]
    Unknown,
    #[error("is the nil GUID, which GPT uses for unused entries")]
    NilGuid,
    #[error("is the MBR type byte of {0}, which image-composer writes itself")]
    Reserved(&'static str),
}

/// MBR type byte for Linux filesystem data: the fallback for GUIDs without a
/// shorthand.
const MBR_LINUX: u8 = 0x83;

/// The GPT "Linux filesystem data" GUID: the fallback for MBR bytes without
/// a shorthand.
const GUID_LINUX: &str = "0fc63daf-8483-4772-8e79-3d69d8477de4";

/// MBR bytes a partition may not use, with what they mean.
const RESERVED_MBR: &[(u8, &str)] = &[
    (0x00, "an unused entry"),
    (0x05, "an extended partition"),
    (0x0f, "an extended partition"),
    (0x85, "an extended partition"),
    (0xee, "the GPT protective entry"),
];

/// Shorthand, GPT type GUID, MBR byte. The first shorthand with a given
/// GUID or byte is the one raw values map back to.
pub const SHORTHANDS: &[(&str, &str, u8)] = &[
    ("linux", GUID_LINUX, MBR_LINUX),
    ("linux-generic", GUID_LINUX, MBR_LINUX),
    // EFI System Partition: MBR 0xef ("EFI (FAT-12/16/32)").
    ("esp", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", 0xef),
    // Extended Boot Loader Partition: MBR 0xea (the spec's "Linux extended boot").
    ("xbootldr", "bc13c2ff-59e6-4262-a352-b275fd6f7172", 0xea),
    ("swap", "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", 0x82),
    ("home", "933ac7e1-2eb4-4f13-b844-0e14e2aef915", MBR_LINUX),
    ("srv", "3b8f8425-20e0-4f3b-907f-1a25a76f98e8", MBR_LINUX),
    ("var", "4d21b016-b534-45c2-a9fb-5c16e091fd2d", MBR_LINUX),
    ("tmp", "7ec6f557-3bc5-4aca-b293-16ef5df639d1", MBR_LINUX),
    (
        "root-x86-64",
        "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
        MBR_LINUX,
    ),
    (
        "root-x86",
        "44479540-f297-41b2-9af7-d131d5f0458a",
        MBR_LINUX,
    ),
    (
        "root-arm64",
        "b921b045-1df0-41c3-af44-4c6f280d3fae",
        MBR_LINUX,
    ),
    (
        "root-arm",
        "69dad710-2ce4-4e3c-b16c-21a1d49abed3",
        MBR_LINUX,
    ),
    (
        "root-riscv64",
        "72ec70a6-cf74-40e6-bd49-4bda08e8f224",
        MBR_LINUX,
    ),
    (
        "usr-x86-64",
        "8484680c-9521-48c6-9c11-b0720656f69e",
        MBR_LINUX,
    ),
    ("usr-x86", "75250d76-8cc6-458e-bd66-bd47cc81a812", MBR_LINUX),
    (
        "usr-arm64",
        "b0e01050-ee5f-4390-949a-9101b17104e9",
        MBR_LINUX,
    ),
    ("usr-arm", "7d0359a3-02b3-4f0a-865c-654403e70625", MBR_LINUX),
    (
        "usr-riscv64",
        "beaec34b-8442-439b-a40b-984381ed097d",
        MBR_LINUX,
    ),
    // FAT boot partitions of boards whose ROM or firmware reads MBR (Raspberry
    // Pi, many SoCs): "W95 FAT32 (LBA)" on MBR, Microsoft basic data on GPT.
    ("fat32", "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", 0x0c),
    ("basic-data", "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", 0x0c),
    ("lvm", "e6d6d379-f507-44c2-a23c-238f2a3df928", 0x8e),
    ("raid", "a19d880f-05fc-4d3b-a006-743f0f84911e", 0xfd),
];

/// The shorthands, for help texts and "did you mean" suggestions.
pub fn names() -> &'static [&'static str] {
    const NAMES: [&str; SHORTHANDS.len()] = {
        let mut out = [""; SHORTHANDS.len()];
        let mut i = 0;
        while i < SHORTHANDS.len() {
            out[i] = SHORTHANDS[i].0;
            i += 1;
        }
        out
    };
    &NAMES
}

/// The partition type a `type:` value names, or `None` (see [`check`] for why).
pub fn lookup(name: &str) -> Option<PartType> {
    check(name).ok()
}

/// The partition type a `type:` value names: a shorthand (case-insensitive),
/// a GUID, or an MBR byte written `0x83`.
pub fn check(name: &str) -> Result<PartType, TypeError> {
    let name = name.trim();
    if let Some(&(_, guid, mbr)) = SHORTHANDS
        .iter()
        .find(|(short, _, _)| short.eq_ignore_ascii_case(name))
    {
        return Ok(PartType {
            gpt: known_guid(guid),
            mbr,
        });
    }
    if let Some(gpt) = Uuid::parse(name) {
        if gpt.is_nil() {
            return Err(TypeError::NilGuid);
        }
        let mbr = SHORTHANDS
            .iter()
            .find(|(_, guid, _)| known_guid(guid) == gpt)
            .map_or(MBR_LINUX, |&(_, _, mbr)| mbr);
        return Ok(PartType { gpt, mbr });
    }
    let hex = name
        .strip_prefix("0x")
        .or_else(|| name.strip_prefix("0X"))
        .ok_or(TypeError::Unknown)?;
    if hex.is_empty() || hex.len() > 2 {
        return Err(TypeError::Unknown);
    }
    let mbr = u8::from_str_radix(hex, 16).map_err(|_| TypeError::Unknown)?;
    if let Some(&(_, what)) = RESERVED_MBR.iter().find(|(byte, _)| *byte == mbr) {
        return Err(TypeError::Reserved(what));
    }
    let guid = SHORTHANDS
        .iter()
        .find(|(_, _, byte)| *byte == mbr)
        .map_or(GUID_LINUX, |&(_, guid, _)| guid);
    Ok(PartType {
        gpt: known_guid(guid),
        mbr,
    })
}

/// The shorthand closest to a mistyped `type:` value (`roo-arm64` →
/// `root-arm64`), for a "did you mean" hint; `None` when nothing is close.
pub fn suggest(name: &str) -> Option<&'static str> {
    let name = name.trim().to_ascii_lowercase();
    names()
        .iter()
        .map(|&short| (edit_distance(&name, short), short))
        .filter(|&(d, short)| d > 0 && d <= short.len().div_ceil(3).max(1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, short)| short)
}

/// Levenshtein distance over bytes (shorthands are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parses a GUID from [`SHORTHANDS`]; they are constants, checked by a test,
/// so a failure here could only be a typo caught before release.
fn known_guid(text: &str) -> Uuid {
    Uuid::parse(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shorthand_has_a_valid_guid() {
        for (name, guid, _) in SHORTHANDS {
            let parsed = Uuid::parse(guid).unwrap();
            assert!(!parsed.is_nil(), "{name}");
            assert_eq!(
                parsed.to_string(),
                *guid,
                "{name}: write GUIDs in lower case"
            );
        }
        assert_eq!(names().len(), SHORTHANDS.len());
        assert_eq!(names()[0], "linux");
    }

    #[test]
    fn shorthands_map_to_both_formats() {
        let esp = lookup("esp").unwrap();
        assert_eq!(esp.gpt.to_string(), "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
        assert_eq!(esp.mbr, 0xef);
        assert_eq!(lookup("ESP"), Some(esp));
        let root = lookup("root-arm64").unwrap();
        assert_eq!(root.gpt.to_string(), "b921b045-1df0-41c3-af44-4c6f280d3fae");
        assert_eq!(root.mbr, 0x83);
        assert_eq!(lookup("swap").unwrap().mbr, 0x82);
        assert_eq!(lookup("linux"), lookup("linux-generic"));
    }

    #[test]
    fn raw_guids_and_bytes_get_the_other_format_from_the_table() {
        let t = lookup("C12A7328-F81F-11D2-BA4B-00A0C93EC93B").unwrap();
        assert_eq!(t, lookup("esp").unwrap());
        let custom = lookup("12345678-1234-4234-8234-123456789abc").unwrap();
        assert_eq!(custom.mbr, 0x83);
        assert_eq!(lookup("0x0c"), lookup("fat32"));
        assert_eq!(lookup("0x83"), lookup("linux"));
        let other = lookup("0xda").unwrap();
        assert_eq!(other.mbr, 0xda);
        assert_eq!(other.gpt, lookup("linux").unwrap().gpt);
    }

    #[test]
    fn suggests_the_closest_shorthand() {
        assert_eq!(suggest("roo-arm64"), Some("root-arm64"));
        assert_eq!(suggest("ESP2"), Some("esp"));
        assert_eq!(suggest("swp"), Some("swap"));
        assert_eq!(suggest("root-aarch64"), Some("root-arm64"));
        assert_eq!(suggest("esp"), None, "an exact name needs no suggestion");
        assert_eq!(suggest("completely-different"), None);
    }

    #[test]
    fn rejects_what_would_corrupt_the_table_or_is_not_a_type() {
        assert_eq!(
            check("0x0f"),
            Err(TypeError::Reserved("an extended partition"))
        );
        assert_eq!(
            check("0xee"),
            Err(TypeError::Reserved("the GPT protective entry"))
        );
        assert_eq!(check("0x00"), Err(TypeError::Reserved("an unused entry")));
        assert_eq!(
            check("00000000-0000-0000-0000-000000000000"),
            Err(TypeError::NilGuid)
        );
        for bad in ["", "0x", "0x123", "83", "rootfs", "0xzz"] {
            assert_eq!(check(bad), Err(TypeError::Unknown), "{bad:?}");
        }
        assert_eq!(
            check("0x05").unwrap_err().to_string(),
            "is the MBR type byte of an extended partition, which image-composer writes itself"
        );
    }
}
