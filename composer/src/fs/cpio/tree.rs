//! A minimal scan of a directory tree for `from:`: every entry with its
//! type, permission bits, device number and mtime; owners are root.
//!
//! Interim: `fs::tree` (owners, xattrs, device tables, shared with ext4)
//! replaces this once it lands. Until then ownership is not taken from the
//! build tree (it belongs to the build user, not to the device), exactly
//! like `cpio -R 0:0`.

use super::newc::{Entry, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK};
use anyhow::{bail, Context, Result};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Splits a Linux `dev_t` into (major, minor) (glibc's `gnu_dev_major/minor`).
fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff);
    (major as u32, minor as u32)
}

/// Every entry below `root` (not `root` itself), paths relative to it.
pub fn scan(root: &Path, clamp: &dyn Fn(u64) -> u64) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    walk(root, "", clamp, &mut out)?;
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, clamp: &dyn Fn(u64) -> u64, out: &mut Vec<Entry>) -> Result<()> {
    let mut names = Vec::new();
    for e in
        std::fs::read_dir(dir).with_context(|| format!("reading directory '{}'", dir.display()))?
    {
        let e = e.with_context(|| format!("reading directory '{}'", dir.display()))?;
        names.push(e.file_name());
    }
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let Ok(name) = std::str::from_utf8(name.as_bytes()) else {
            bail!("'{}' is not a UTF-8 file name", path.display());
        };
        let rel = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        let md = std::fs::symlink_metadata(&path)
            .with_context(|| format!("reading metadata of '{}'", path.display()))?;
        let mode = md.mode();
        let mut e = Entry {
            path: rel.clone(),
            mode,
            uid: 0,
            gid: 0,
            mtime: clamp(u64::try_from(md.mtime()).unwrap_or(0)),
            rdev: (0, 0),
            data: Vec::new(),
        };
        match mode & S_IFMT {
            S_IFDIR => {
                out.push(e);
                walk(&path, &rel, clamp, out)?;
                continue;
            }
            S_IFREG => {
                e.data = std::fs::read(&path)
                    .with_context(|| format!("reading '{}'", path.display()))?;
            }
            S_IFLNK => {
                let target = std::fs::read_link(&path)
                    .with_context(|| format!("reading link '{}'", path.display()))?;
                e.data = target.as_os_str().as_bytes().to_vec();
            }
            S_IFCHR | S_IFBLK => e.rdev = split_dev(md.rdev()),
            S_IFIFO | S_IFSOCK => {}
            _ => bail!(
                "'{}' has an unknown file type (mode {mode:o})",
                path.display()
            ),
        }
        out.push(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_split_like_glibc() {
        // makedev(8, 1), makedev(259, 300000)
        assert_eq!(split_dev(0x801), (8, 1));
        let dev = ((300_000u64 & 0xff) | ((259u64 & 0xfff) << 8)) | ((300_000u64 & !0xff) << 12);
        assert_eq!(split_dev(dev), (259, 300_000));
    }

    #[test]
    fn scans_sorted_with_types_and_clamped_times() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(d.path().join("etc/b"), "x").unwrap();
        std::fs::write(d.path().join("a"), "yy").unwrap();
        std::os::unix::fs::symlink("etc/b", d.path().join("l")).unwrap();
        let es = scan(d.path(), &|t| t.min(5)).unwrap();
        let got: Vec<(&str, u32, &[u8])> = es
            .iter()
            .map(|e| (e.path.as_str(), e.mode & S_IFMT, &e.data[..]))
            .collect();
        assert_eq!(
            got,
            [
                ("a", S_IFREG, &b"yy"[..]),
                ("etc", S_IFDIR, &b""[..]),
                ("etc/b", S_IFREG, &b"x"[..]),
                ("l", S_IFLNK, &b"etc/b"[..])
            ]
        );
        assert!(es.iter().all(|e| e.mtime == 5 && e.uid == 0));
    }
}
