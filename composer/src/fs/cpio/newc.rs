//! The cpio "new ASCII" (newc, magic `070701`) archive format, as the
//! Linux kernel unpacks it into its initial rootfs.
//!
//! Spec: `Documentation/driver-api/early-userspace/buffer-format.rst` in the
//! kernel tree and cpio(5). Each entry is a 110-byte header of ASCII hex
//! fields, the NUL-terminated path name padded to a multiple of 4 bytes
//! (header included), then the file data padded to a multiple of 4. The
//! archive ends with an entry named `TRAILER!!!`.
//!
//! Reproducibility: the caller passes entries in any order; [`write_archive`]
//! sorts them by path, numbers inodes 1, 2, 3... in that order and writes
//! device numbers of the archive's own filesystem as 0 (what GNU cpio's
//! `--reproducible` does). Hard links (members with the same
//! [`Entry::link`]) share one inode number and carry their link count; the
//! data is stored once, with the last of them in archive order, the others
//! having size 0: what GNU cpio and the kernel's `gen_init_cpio` write, and
//! what the kernel's unpacker expects (it links a name to the first member
//! of that inode and writes the data when it comes). Names are bytes: newc
//! stores any name without NUL, as the kernel does.
//!
//! Rejected: the `cpio` crate as the writer. It streams entries the caller
//! orders and numbers, so sorting, inode numbering and padding would live
//! here anyway; it is kept as an independent reader in the tests.

use anyhow::{bail, Result};
use std::collections::HashMap;
use std::io::Write;

/// Magic of the newc format (no checksum; `070702` would be "crc").
const NEWC_MAGIC: &[u8; 6] = b"070701";
/// Header, name and data are each padded to this boundary.
const NEWC_ALIGN: usize = 4;
/// The name of the entry that ends every archive.
const TRAILER_NAME: &str = "TRAILER!!!";
/// File type bits (`S_IFMT`) and the types an initramfs can hold.
pub const S_IFMT: u32 = 0o170_000;
pub const S_IFDIR: u32 = 0o040_000;
pub const S_IFREG: u32 = 0o100_000;
pub const S_IFLNK: u32 = 0o120_000;
pub const S_IFCHR: u32 = 0o020_000;
pub const S_IFBLK: u32 = 0o060_000;
pub const S_IFIFO: u32 = 0o010_000;
pub const S_IFSOCK: u32 = 0o140_000;

/// One archive member, fully resolved: its data is in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive, without a leading `/` (`bin/busybox`):
    /// bytes, not necessarily UTF-8.
    pub path: Vec<u8>,
    /// File type and permission bits (`S_IFREG | 0o755`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch, already clamped by the caller.
    pub mtime: u64,
    /// Device number of a character or block special file.
    pub rdev: (u32, u32),
    /// File contents, or the target of a symbolic link. Of hard links,
    /// only the last in archive order needs the data (the others' is
    /// ignored).
    pub data: Vec<u8>,
    /// Regular files that are hard links of one another have the same key.
    pub link: Option<u64>,
}

impl Entry {
    /// The path for messages.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

/// Writes one header field: 8 upper-case hex digits.
fn field(out: &mut Vec<u8>, value: u64, what: &str, path: &[u8]) -> Result<()> {
    let Ok(value) = u32::try_from(value) else {
        bail!(
            "{what} of '{}' ({value}) does not fit in a cpio newc header",
            String::from_utf8_lossy(path)
        );
    };
    // Formatting into a Vec cannot fail.
    let _ = write!(out, "{value:08X}");
    Ok(())
}

fn pad(out: &mut Vec<u8>) {
    while out.len() % NEWC_ALIGN != 0 {
        out.push(0);
    }
}

/// How one member is written: its inode number, link count and whether it
/// carries its data.
struct Placement {
    ino: u64,
    nlink: u64,
    with_data: bool,
}

fn write_entry(out: &mut Vec<u8>, at: &Placement, e: &Entry) -> Result<()> {
    if e.path.is_empty() || e.path.contains(&0) {
        bail!(
            "cpio member name {:?} is empty or contains NUL",
            e.display()
        );
    }
    let (ino, nlink) = (at.ino, at.nlink);
    let data: &[u8] = if at.with_data { &e.data } else { &[] };
    out.extend_from_slice(NEWC_MAGIC);
    field(out, ino, "inode number", &e.path)?;
    field(out, e.mode.into(), "mode", &e.path)?;
    field(out, e.uid.into(), "uid", &e.path)?;
    field(out, e.gid.into(), "gid", &e.path)?;
    field(out, nlink, "link count", &e.path)?;
    field(out, e.mtime, "mtime", &e.path)?;
    field(out, data.len() as u64, "size", &e.path)?;
    field(out, 0, "device major", &e.path)?;
    field(out, 0, "device minor", &e.path)?;
    field(out, e.rdev.0.into(), "rdev major", &e.path)?;
    field(out, e.rdev.1.into(), "rdev minor", &e.path)?;
    field(out, e.path.len() as u64 + 1, "name size", &e.path)?;
    field(out, 0, "checksum", &e.path)?;
    out.extend_from_slice(&e.path);
    out.push(0);
    pad(out);
    out.extend_from_slice(data);
    pad(out);
    Ok(())
}

/// Serialises `entries` (sorted here by path) plus the trailer. Paths must
/// be unique; parents are not added here.
pub fn write_archive(entries: &mut [Entry]) -> Result<Vec<u8>> {
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    if let Some(w) = entries.windows(2).find(|w| w[0].path == w[1].path) {
        bail!("two cpio members are named '{}'", w[0].display());
    }
    // Per link key: the first member's inode number, the count, the last.
    let mut links: HashMap<u64, (u64, u64, usize)> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if let Some(key) = e.link {
            let l = links.entry(key).or_insert((i as u64 + 1, 0, i));
            l.1 += 1;
            l.2 = i;
        }
    }
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.data.len() + 128).sum());
    for (i, e) in entries.iter().enumerate() {
        let at = match e.link.and_then(|k| links.get(&k)) {
            Some(&(ino, nlink, last)) => Placement {
                ino,
                nlink,
                with_data: i == last,
            },
            None => Placement {
                ino: i as u64 + 1,
                nlink: if e.mode & S_IFMT == S_IFDIR { 2 } else { 1 },
                with_data: true,
            },
        };
        write_entry(&mut out, &at, e)?;
    }
    let trailer = Entry {
        path: TRAILER_NAME.into(),
        mode: 0,
        uid: 0,
        gid: 0,
        mtime: 0,
        rdev: (0, 0),
        data: Vec::new(),
        link: None,
    };
    let at = Placement {
        ino: 0,
        nlink: 1,
        with_data: true,
    };
    write_entry(&mut out, &at, &trailer)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, mode: u32, data: &[u8]) -> Entry {
        Entry {
            path: path.into(),
            mode,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            rdev: (0, 0),
            data: data.to_vec(),
            link: None,
        }
    }

    #[test]
    fn header_layout_matches_the_kernel_buffer_format() {
        let mut es = [entry("init", S_IFREG | 0o755, b"#!/bin/sh\n")];
        let a = write_archive(&mut es).unwrap();
        let h = std::str::from_utf8(&a[..110]).unwrap();
        assert_eq!(&h[..6], "070701");
        assert_eq!(&h[6..14], "00000001", "inode");
        assert_eq!(&h[14..22], "000081ED", "mode");
        assert_eq!(&h[38..46], "00000001", "nlink");
        assert_eq!(&h[46..54], "6553F100", "mtime");
        assert_eq!(&h[54..62], "0000000A", "filesize");
        assert_eq!(&h[94..102], "00000005", "namesize");
        // 110 + "init\0" = 115, padded to 116; data 10 padded to 12.
        assert_eq!(&a[110..115], b"init\0");
        assert_eq!(&a[116..126], b"#!/bin/sh\n");
        assert_eq!(&a[128..134], b"070701");
        assert!(a.windows(10).any(|w| w == b"TRAILER!!!"));
        assert_eq!(a.len() % 4, 0);
    }

    #[test]
    fn members_are_sorted_and_numbered_and_duplicates_refused() {
        let mut es = [
            entry("b", S_IFREG | 0o644, b"2"),
            entry("a", S_IFREG | 0o644, b"1"),
        ];
        let a = write_archive(&mut es).unwrap();
        let mut r = cpio::NewcReader::new(&a[..]).unwrap();
        assert_eq!((r.entry().name(), r.entry().ino()), ("a", 1));
        r = cpio::NewcReader::new(r.finish().unwrap()).unwrap();
        assert_eq!((r.entry().name(), r.entry().ino()), ("b", 2));
        let mut dup = [entry("a", S_IFREG, b""), entry("a", S_IFDIR, b"")];
        let err = write_archive(&mut dup).unwrap_err().to_string();
        assert!(err.contains("two cpio members are named 'a'"), "{err}");
    }

    #[test]
    fn hard_links_share_an_inode_and_store_the_data_once() {
        let mut es = [
            entry("z", S_IFREG | 0o644, b"data"),
            entry("a", S_IFREG | 0o644, b""),
            entry("m", S_IFREG | 0o644, b"other"),
        ];
        es[0].link = Some(7);
        es[1].link = Some(7);
        let a = write_archive(&mut es).unwrap();
        let mut r = cpio::NewcReader::new(&a[..]).unwrap();
        let mut seen = Vec::new();
        while !r.entry().is_trailer() {
            let e = r.entry();
            seen.push((e.name().to_string(), e.ino(), e.nlink(), e.file_size()));
            r = cpio::NewcReader::new(r.finish().unwrap()).unwrap();
        }
        assert_eq!(seen[0], ("a".into(), 1, 2, 0));
        assert_eq!(seen[1], ("m".into(), 2, 1, 5));
        assert_eq!(seen[2], ("z".into(), 1, 2, 4));
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn names_need_not_be_utf8() {
        let mut e = entry("x", S_IFREG, b"");
        e.path = vec![b'x', 0xff];
        let a = write_archive(&mut [e]).unwrap();
        assert_eq!(&a[110..113], &[b'x', 0xff, 0]);
    }

    #[test]
    fn oversized_fields_are_an_error_not_a_wrap() {
        let mut e = entry("x", S_IFREG, b"");
        e.mtime = u64::from(u32::MAX) + 1;
        let err = write_archive(&mut [e]).unwrap_err().to_string();
        assert!(err.contains("mtime of 'x'"), "{err}");
    }
}
