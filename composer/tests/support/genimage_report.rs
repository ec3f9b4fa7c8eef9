//! Reading the table reports of `tests/layouts/report.sh` and comparing
//! them with the ones genimage 19 recorded (`genimage.txt`), up to the
//! differences docs/config.md documents under "Differences from genimage",
//! each normalized by name. Used by the layout corpus (`layouts.rs`) and by
//! `import` of the same genimage configurations (`import.rs`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

/// The recorded report without its header comments.
pub fn recorded(board: &Path) -> String {
    let text = std::fs::read_to_string(board.join("genimage.txt")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with("# "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The lines of one `## name` section of a report.
pub fn section<'r>(report: &'r str, name: &str) -> Vec<&'r str> {
    report
        .split("## ")
        .find(|s| s.starts_with(name))
        .map(|s| s.lines().skip(1).collect())
        .unwrap_or_default()
}

/// Documented difference: the ending CHS of a 0xEE entry is `ff ff ff`
/// here (as sfdisk and sgdisk write it), computed from the LBA by genimage.
/// Masks bytes 5..8 of every 0xEE entry in the MBR hex dump.
pub fn mask_protective_chs(report: &str) -> String {
    let mut out = String::new();
    let mut in_mbr = false;
    for line in report.lines() {
        let mut line = line.to_string();
        if in_mbr && line.len() == 144 {
            for entry in 0..4 {
                let at = (6 + 16 * entry) * 2;
                if &line[at + 8..at + 10] == "ee" {
                    line.replace_range(at + 10..at + 16, "xxxxxx");
                }
            }
        }
        in_mbr = line.starts_with("## MBR bytes");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Documented difference: genimage ends an MBR image file where its last
/// data ends, possibly inside the last partition; image-composer's image
/// ends with the last partition. Accepts that when the tables agree and our
/// image ends exactly at the end of the last partition sfdisk lists.
pub fn size_is_documented(ours: &str, theirs: &str) -> bool {
    let size = |r: &str| section(r, "size").first()?.parse::<u64>().ok();
    let (Some(ours_size), Some(their_size)) = (size(ours), size(theirs)) else {
        return false;
    };
    let last_end = section(ours, "sfdisk -d")
        .iter()
        .filter_map(|l| {
            let field = |key: &str| -> Option<u64> {
                let rest = &l[l.find(key)? + key.len()..];
                rest.trim_start().split(',').next()?.trim().parse().ok()
            };
            Some((field("start=")? + field("size=")?) * 512)
        })
        .max();
    section(ours, "sfdisk -d --label-nested").is_empty()
        && their_size < ours_size
        && last_end == Some(ours_size)
}

/// Documented difference: image-composer's GPT first usable LBA is right
/// after the entry array (34); genimage moves it past raw blobs that end
/// before the first partition. Masks the lines that show it and the
/// hashes of the GPT headers (which hold it) when ours is 34 and genimage's
/// is larger; the partition entries are still compared by `sfdisk -d`.
pub fn mask_first_usable_lba(ours: &str, theirs: &str) -> (String, String) {
    let first = |r: &str| {
        section(r, "sfdisk -d")
            .iter()
            .find_map(|l| l.strip_prefix("first-lba: ")?.trim().parse::<u64>().ok())
    };
    match (first(ours), first(theirs)) {
        (Some(34), Some(t)) if t > 34 => {}
        _ => return (ours.to_string(), theirs.to_string()),
    }
    let mask = |r: &str| {
        let mut out = String::new();
        let mut hash_next = false;
        for line in r.lines() {
            let masked = hash_next
                || line.starts_with("first-lba:")
                || line.starts_with("First usable sector is")
                || line.starts_with("Total free space is");
            out.push_str(if masked {
                "(first usable LBA: documented difference)"
            } else {
                line
            });
            out.push('\n');
            hash_next = line.starts_with("## sha256 primary GPT")
                || line.starts_with("## sha256 backup GPT");
        }
        out
    };
    (mask(ours), mask(theirs))
}

/// True when our report equals genimage's up to the documented differences.
pub fn same_as_recorded(ours: &str, theirs: &str) -> bool {
    let (ours, theirs) = mask_first_usable_lba(ours, theirs);
    let (ours, theirs) = (ours.as_str(), theirs.as_str());
    let (ours_masked, theirs_masked) = (mask_protective_chs(ours), mask_protective_chs(theirs));
    let without_size = |r: &str| r.replace(&section(r, "size").join("\n"), "");
    ours_masked == theirs_masked
        || (size_is_documented(ours, theirs)
            && without_size(&ours_masked) == without_size(&theirs_masked))
}
