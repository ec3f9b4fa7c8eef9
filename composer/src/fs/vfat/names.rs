//! File names on FAT: which long names are legal, which names fit an 8.3
//! entry on their own, and how unique 8.3 aliases (`KERNEL~1.IMG`) are made
//! for the rest.
//!
//! Rules, from fatgen103 §6-7 and the Linux vfat driver (`fs/fat/namei_vfat.c`):
//! a long name is 1 to 255 UTF-16 units without control characters or any of
//! `" * / : < > ? \ |`. Linux strips trailing dots when it looks a name up,
//! and Windows strips trailing dots and spaces, so such names are refused
//! rather than stored unreachable. Names in one directory must differ other
//! than by case (FAT looks names up case-insensitively).
//!
//! A name that is a valid 8.3 name whose base and extension are each all
//! upper or all lower case (`BOOTX64.EFI`, `vmlinuz`, `config.txt`) gets a
//! single entry, with the Windows NT lower-case flags where needed (Linux,
//! mtools and Windows honour them). Every other name gets long-name entries
//! plus a generated 8.3 alias: its upper-cased basis when that is lossless
//! and free (`Image` -> `IMAGE`), else the Windows numeric-tail scheme
//! (`~1`, `~2`, ...). Rejected: Windows' hashed tails after `~4` (only
//! needed to make lookups fast in huge directories on Windows; a linear
//! `~N` is what Linux does and stays readable).

use super::ondisk::{CASE_LOWER_BASE, CASE_LOWER_EXT};
use std::collections::{HashMap, HashSet};

/// Most UTF-16 units in a long name (fatgen103 §7).
const MAX_LONG_NAME_UNITS: usize = 255;
/// Largest numeric tail tried: `~999999` leaves one character of the basis.
const MAX_TAIL: u32 = 999_999;

/// Why a name cannot be stored on FAT.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name cannot be empty")]
    Empty,
    #[error("'.' and '..' are reserved names")]
    Reserved,
    #[error("contains {0:?}, which FAT does not allow in names (control characters and \" * / : < > ? \\ |)")]
    BadChar(char),
    #[error("is {0} UTF-16 units long; FAT allows at most 255")]
    TooLong(usize),
    #[error(
        "ends with a dot or a space, which Linux and Windows strip when they look the name up"
    )]
    TrailingDotOrSpace,
}

/// Checks that `name` (one path component) is a legal FAT long name.
pub fn validate(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(NameError::Reserved);
    }
    if let Some(c) = name
        .chars()
        .find(|&c| (c as u32) < 0x20 || "\"*/:<>?\\|".contains(c))
    {
        return Err(NameError::BadChar(c));
    }
    let units = name.encode_utf16().count();
    if units > MAX_LONG_NAME_UNITS {
        return Err(NameError::TooLong(units));
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Err(NameError::TrailingDotOrSpace);
    }
    Ok(())
}

/// The key under which FAT considers two names equal.
pub fn fold(name: &str) -> String {
    name.to_uppercase()
}

/// The 8.3 entry chosen for one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShortName {
    /// Base and extension, space padded, no dot.
    pub raw: [u8; 11],
    /// NT case flags (byte 12 of the entry).
    pub nt_case: u8,
    /// Whether long-name entries must precede the 8.3 entry.
    pub needs_lfn: bool,
}

/// Characters allowed in an 8.3 name besides `A-Z` and `0-9` (fatgen103
/// §6.1). Space, though legal, is left out: names with spaces get a long name.
const SHORT_SPECIALS: &[u8] = b"!#$%&'()-@^_`{}~";

pub(super) fn short_char_ok(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || SHORT_SPECIALS.contains(&c)
}

fn pack(base: &[u8], ext: &[u8]) -> [u8; 11] {
    let mut raw = [b' '; 11];
    raw[..base.len()].copy_from_slice(base);
    raw[8..8 + ext.len()].copy_from_slice(ext);
    raw
}

/// Case of one part of an 8.3 name: `Some(true)` = lower case, `Some(false)`
/// = upper case (or no letters), `None` = mixed.
fn part_case(part: &[u8]) -> Option<bool> {
    let lower = part.iter().any(u8::is_ascii_lowercase);
    let upper = part.iter().any(u8::is_ascii_uppercase);
    match (lower, upper) {
        (true, true) => None,
        (lower, _) => Some(lower),
    }
}

/// The 8.3 entry for `name` if it needs no long name.
fn exact_short(name: &str) -> Option<([u8; 11], u8)> {
    let bytes = name.as_bytes();
    let (base, ext) = match name.find('.') {
        Some(dot) => (&bytes[..dot], &bytes[dot + 1..]),
        None => (bytes, &[][..]),
    };
    if base.is_empty() || base.len() > 8 || ext.len() > 3 || (name.contains('.') && ext.is_empty())
    {
        return None;
    }
    let ok = |p: &[u8]| p.iter().all(|c| short_char_ok(c.to_ascii_uppercase()));
    if !ok(base) || !ok(ext) {
        return None;
    }
    let mut nt_case = 0;
    if part_case(base)? {
        nt_case |= CASE_LOWER_BASE;
    }
    if part_case(ext)? {
        nt_case |= CASE_LOWER_EXT;
    }
    Some((
        pack(&base.to_ascii_uppercase(), &ext.to_ascii_uppercase()),
        nt_case,
    ))
}

/// The upper-cased basis of an alias (Windows' algorithm): leading dots and
/// all spaces dropped, the last dot splits base from extension, characters
/// not allowed in 8.3 names become `_`. Returns (base, ext, lossy).
fn basis(name: &str) -> (Vec<u8>, Vec<u8>, bool) {
    let trimmed = name.trim_start_matches(['.', ' ']);
    let (base, ext) = match trimmed.rfind('.') {
        Some(dot) => (&trimmed[..dot], &trimmed[dot + 1..]),
        None => (trimmed, ""),
    };
    let mut lossy = trimmed.len() != name.len();
    let mut convert = |part: &str| -> Vec<u8> {
        let mut out = Vec::new();
        for c in part.chars() {
            if c == ' ' || c == '.' {
                lossy = true;
                continue;
            }
            let up = c.to_ascii_uppercase();
            if up.is_ascii() && short_char_ok(up as u8) {
                out.push(up as u8);
            } else {
                lossy = true;
                out.push(b'_');
            }
        }
        out
    };
    let mut base = convert(base);
    let ext = convert(ext);
    if base.is_empty() {
        lossy = true;
        base.push(b'_');
    }
    (base, ext, lossy)
}

/// Assigns 8.3 entries to the names of one directory, in order. The names
/// must already be valid and distinct after [`fold`]. Names that fit 8.3 on
/// their own are placed first so that no alias takes their slot.
pub fn assign(names: &[&str]) -> Result<Vec<ShortName>, String> {
    let mut used: HashSet<[u8; 11]> = HashSet::new();
    // Where the search for a free tail resumes for one basis: every smaller
    // tail is taken, which keeps 2,000 similar names from costing 2,000²
    // probes.
    let mut next_tail: HashMap<(Vec<u8>, Vec<u8>), u32> = HashMap::new();
    let mut out: Vec<Option<ShortName>> = names
        .iter()
        .map(|name| {
            exact_short(name).map(|(raw, nt_case)| {
                used.insert(raw);
                ShortName {
                    raw,
                    nt_case,
                    needs_lfn: false,
                }
            })
        })
        .collect();
    for (slot, name) in out.iter_mut().zip(names) {
        if slot.is_some() {
            continue;
        }
        let (base, ext, lossy) = basis(name);
        let ext = &ext[..ext.len().min(3)];
        let plain = pack(&base[..base.len().min(8)], ext);
        let raw = if !lossy && base.len() <= 8 && !used.contains(&plain) {
            plain
        } else {
            let mut found = None;
            let start = next_tail.get(&(base.clone(), ext.to_vec())).copied();
            for n in start.unwrap_or(1)..=MAX_TAIL {
                let tail = format!("~{n}");
                let keep = base.len().min(8 - tail.len());
                let mut b = base[..keep].to_vec();
                b.extend_from_slice(tail.as_bytes());
                let candidate = pack(&b, ext);
                if !used.contains(&candidate) {
                    next_tail.insert((base.clone(), ext.to_vec()), n + 1);
                    found = Some(candidate);
                    break;
                }
            }
            found.ok_or_else(|| format!("no free 8.3 alias left for '{name}'"))?
        };
        used.insert(raw);
        *slot = Some(ShortName {
            raw,
            nt_case: 0,
            needs_lfn: true,
        });
    }
    Ok(out.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(s: &ShortName) -> String {
        String::from_utf8_lossy(&s.raw).into_owned()
    }

    #[test]
    fn rejects_illegal_names_with_the_reason() {
        assert_eq!(validate(""), Err(NameError::Empty));
        assert_eq!(validate(".."), Err(NameError::Reserved));
        assert_eq!(validate("a:b"), Err(NameError::BadChar(':')));
        assert_eq!(validate("a\nb"), Err(NameError::BadChar('\n')));
        assert_eq!(validate("name."), Err(NameError::TrailingDotOrSpace));
        assert_eq!(validate(&"x".repeat(256)), Err(NameError::TooLong(256)));
        assert!(validate(&"x".repeat(255)).is_ok());
        // A character outside the BMP takes two UTF-16 units.
        assert_eq!(validate(&"😀".repeat(128)), Err(NameError::TooLong(256)));
        assert!(validate("Grüße .config").is_ok());
        assert_eq!(
            NameError::BadChar('*').to_string(),
            "contains '*', which FAT does not allow in names (control characters and \" * / : < > ? \\ |)"
        );
    }

    #[test]
    fn plain_8_3_names_need_no_long_name() {
        let s = assign(&["BOOTX64.EFI", "vmlinuz", "config.txt", "README.md", "Image"]).unwrap();
        assert_eq!(show(&s[0]), "BOOTX64 EFI");
        assert!(!s[0].needs_lfn);
        assert_eq!(s[0].nt_case, 0);
        assert_eq!(
            (show(&s[1]), s[1].nt_case),
            ("VMLINUZ    ".into(), CASE_LOWER_BASE)
        );
        assert_eq!(s[2].nt_case, CASE_LOWER_BASE | CASE_LOWER_EXT);
        assert_eq!(
            s[3].nt_case, CASE_LOWER_EXT,
            "README.md: base upper, ext lower"
        );
        assert!(!s[3].needs_lfn);
        assert_eq!(show(&s[4]), "IMAGE      ");
        assert!(s[4].needs_lfn, "mixed case needs the long name");
    }

    #[test]
    fn clashing_long_names_get_numbered_tails() {
        let s = assign(&[
            "kernel-5.10.img",
            "kernel-6.1.img",
            "KERNEL~1.IMG",
            "a b",
            ".bashrc",
            "Grüße.txt",
        ])
        .unwrap();
        assert_eq!(show(&s[2]), "KERNEL~1IMG");
        assert!(!s[2].needs_lfn);
        // ~1 is taken by the plain 8.3 name, so the aliases move on.
        assert_eq!(show(&s[0]), "KERNEL~2IMG");
        assert_eq!(show(&s[1]), "KERNEL~3IMG");
        assert_eq!(show(&s[3]), "AB~1       ");
        assert_eq!(show(&s[4]), "BASHRC~1   ");
        assert_eq!(show(&s[5]), "GR__E~1 TXT");
        assert!(s.iter().enumerate().all(|(i, x)| i == 2 || x.needs_lfn));
    }

    #[test]
    fn thousands_of_similar_names_stay_unique() {
        let names: Vec<String> = (0..2000).map(|i| format!("file number {i}.data")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let s = assign(&refs).unwrap();
        let unique: HashSet<_> = s.iter().map(|x| x.raw).collect();
        assert_eq!(unique.len(), 2000);
        assert_eq!(show(&s[1999]), "FIL~2000DAT");
    }
}
