//! The target of `flash`: a block device or a file, and the refusals that
//! keep a mistyped name from destroying the running system.
//!
//! A block device is refused when it backs the running root filesystem
//! (directly, as a partition's disk, or under device-mapper, md or a loop
//! device: the root's device is followed through `slaves/` and
//! `loop/backing_file` in sysfs), when it or one of its partitions is
//! mounted (`/proc/self/mountinfo`), when it is too small for the image,
//! and when the kernel says it is in use (`O_EXCL` on a block device fails
//! with `EBUSY` while anything holds it: a mount, swap, device-mapper).
//! Each refusal names the device and what holds it.
//!
//! Devices are identified by their canonical sysfs directory
//! (`/sys/dev/block/MAJ:MIN` resolved): a partition's directory is inside
//! its disk's, so "is a partition of" is a path prefix test.
//!
//! Rejected: parsing `lsblk` output (a tool and its version to depend on,
//! for what sysfs states directly); refusing only by mount point names
//! (misses bind mounts and the root under device-mapper).

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where the image goes.
#[derive(Debug)]
pub struct Target {
    pub file: File,
    /// The target is a block device (else a regular file).
    pub is_device: bool,
    /// Size in bytes of a block device (a file is sized to the image).
    pub size: u64,
    /// For the confirmation: model and vendor, or a loop device's file.
    pub description: String,
}

/// Why the target is refused (a command-line problem, exit 2).
#[derive(Debug)]
pub struct Refusal {
    pub message: String,
    pub help: &'static str,
}

fn refuse(message: String, help: &'static str) -> Refusal {
    Refusal { message, help }
}

/// `/sys/dev/block/MAJ:MIN`, resolved: the device's sysfs directory.
fn sysfs_dir(dev: u64) -> Option<PathBuf> {
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()
}

/// `dir` is the device `of` or one of its partitions.
fn is_same_or_inside(dir: &Path, of: &Path) -> bool {
    dir == of || dir.starts_with(of)
}

/// Every block device the filesystem on `dev` depends on: itself, the
/// devices under it (device-mapper, md: `slaves/`) and, for a loop device,
/// the device holding its backing file; as sysfs directories.
fn devices_under(dev: u64, out: &mut BTreeSet<PathBuf>) {
    let Some(dir) = sysfs_dir(dev) else { return };
    let mut todo = vec![dir];
    while let Some(dir) = todo.pop() {
        if !out.insert(dir.clone()) || out.len() > 64 {
            continue;
        }
        if let Ok(entries) = std::fs::read_dir(dir.join("slaves")) {
            for e in entries.flatten() {
                if let Ok(p) = std::fs::canonicalize(e.path()) {
                    todo.push(p);
                }
            }
        }
        if let Ok(backing) = std::fs::read_to_string(dir.join("loop/backing_file")) {
            if let Ok(meta) = std::fs::metadata(backing.trim_end()) {
                if let Some(p) = sysfs_dir(meta.dev()) {
                    todo.push(p);
                }
            }
        }
    }
}

/// Mounted block devices: (sysfs directory, mount point), from
/// `/proc/self/mountinfo` (field 3 is `MAJ:MIN`, field 5 the mount point).
fn mounts() -> Vec<(PathBuf, String)> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let (major, minor) = fields.get(2)?.split_once(':')?;
            let dir = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()?;
            Some((dir, fields.get(4)?.replace("\\040", " ")))
        })
        .collect()
}

/// Model and vendor of the disk at `dir` (its parent's for a partition),
/// or the backing file of a loop device.
fn describe(dir: &Path) -> String {
    let disk = if dir.join("partition").exists() {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    let read = |p: PathBuf| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    if let Ok(file) = std::fs::read_to_string(disk.join("loop/backing_file")) {
        return format!("loop device backed by {}", file.trim_end());
    }
    let text = [
        read(disk.join("device/vendor")),
        read(disk.join("device/model")),
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join(" ");
    if text.is_empty() {
        "unknown model".to_string()
    } else {
        text
    }
}

/// A file target: created or truncated, sized to the image (unmapped
/// ranges read as zeros).
fn open_file(path: &Path, image_size: u64) -> io::Result<Target> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.set_len(image_size)?;
    Ok(Target {
        file,
        is_device: false,
        size: image_size,
        description: "file".to_string(),
    })
}

/// Opens `path` to receive an image of `image_size` bytes, refusing what
/// must not be written (see the module documentation); `root` is the
/// running root's mount point (`/`; tests name another mount). A missing
/// path is created as a file.
pub fn open(
    path: &Path,
    image_size: u64,
    root: &Path,
) -> Result<Result<Target, Refusal>, io::Error> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) if meta.file_type().is_block_device() => meta,
        Ok(meta) if !meta.is_file() => {
            return Ok(Err(refuse(
                format!("'{}' is neither a block device nor a file", path.display()),
                "name a disk (/dev/sdX, /dev/mmcblkN) or an image file",
            )));
        }
        Ok(_) => return open_file(path, image_size).map(Ok),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return open_file(path, image_size).map(Ok)
        }
        Err(e) => return Err(e),
    };
    let name = path.display();
    let Some(dir) = sysfs_dir(meta.rdev()) else {
        return Ok(Err(refuse(
            format!("'{name}' is not a block device the kernel lists in /sys/dev/block"),
            "name a disk (/dev/sdX, /dev/mmcblkN)",
        )));
    };
    let mut under_root = BTreeSet::new();
    if let Ok(root_meta) = std::fs::metadata(root) {
        devices_under(root_meta.dev(), &mut under_root);
    }
    if under_root.iter().any(|d| is_same_or_inside(d, &dir)) {
        return Ok(Err(refuse(
            format!("'{name}' backs the running root filesystem"),
            "flash another disk; this one holds the system you are running",
        )));
    }
    for (mounted, point) in mounts() {
        if mounted == dir {
            return Ok(Err(refuse(
                format!("'{name}' is mounted on {point}"),
                "unmount it first (umount), or name another disk",
            )));
        }
        if is_same_or_inside(&mounted, &dir) {
            let part = mounted
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            return Ok(Err(refuse(
                format!(
                    "'{name}' holds partition {} mounted on {point}",
                    part.unwrap_or_default()
                ),
                "unmount its partitions first (umount), or name another disk",
            )));
        }
    }
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::EXCL.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {
            return Ok(Err(refuse(
                format!("'{name}' is in use (swap, device-mapper or another program holds it)"),
                "stop what uses it (swapoff, dmsetup remove, ...), or name another disk",
            )));
        }
        Err(e) => return Err(e),
    };
    let size = (&file).seek(SeekFrom::End(0))?;
    if size < image_size {
        return Ok(Err(refuse(
            format!("'{name}' has {size} bytes, the image needs {image_size}"),
            "use a larger disk, or make the image smaller (image.size)",
        )));
    }
    Ok(Ok(Target {
        file,
        is_device: true,
        size,
        description: describe(&dir),
    }))
}
