//! Scanning a source directory into a [`Tree`]: `lstat` only, symlinks never
//! followed, special files recorded from their metadata, xattrs read per entry.
//!
//! Everything learnt about an entry comes from the C library's functions:
//! `lstat`, `readlink`, `llistxattr`, `lgetxattr` (rustix built with
//! `use-libc`). An LD_PRELOAD fakeroot and Yocto's pseudo replace exactly
//! these, so a tree read inside their session shows the owners, modes,
//! device nodes and xattrs the session recorded. Rejected: rustix's raw
//! syscalls (invisible to LD_PRELOAD) and std's `symlink_metadata`, which
//! calls `statx`, a function fakeroot 1.31 does not wrap.

use super::*;
use rustix::fs::Stat;

/// Scans the directory `root` into a tree. `root` itself may be a
/// symbolic link to a directory (followed, like every filesystem kind's
/// `from:`); links inside the tree never are.
pub fn scan(root: &Path, opts: &TreeOptions, ctx: &BuildContext) -> anyhow::Result<Tree> {
    let root = &root
        .canonicalize()
        .with_context(|| format!("reading source tree '{}'", root.display()))?;
    let meta = lstat(root).with_context(|| format!("reading source tree '{}'", root.display()))?;
    if meta.st_mode & S_IFMT != S_IFDIR {
        bail!("source tree '{}' is not a directory", root.display());
    }
    let mut scanner = Scanner {
        opts,
        ctx,
        tree: Tree {
            nodes: Vec::new(),
            time: Timestamp::build_time(ctx),
        },
        links: HashMap::new(),
    };
    let root_node = scanner.node_from(root, &meta)?;
    scanner.tree.nodes.push(root_node);
    scanner.scan_dir(root, ROOT)?;
    Ok(scanner.tree)
}

struct Scanner<'a> {
    opts: &'a TreeOptions,
    ctx: &'a BuildContext,
    tree: Tree,
    /// Hard links: (st_dev, st_ino) of a multiply linked non-directory.
    links: HashMap<(u64, u64), NodeId>,
}

impl Scanner<'_> {
    fn scan_dir(&mut self, dir: &Path, id: NodeId) -> anyhow::Result<()> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)
            .with_context(|| format!("reading directory '{}'", dir.display()))?
        {
            let entry = entry.with_context(|| format!("reading directory '{}'", dir.display()))?;
            names.push(entry.file_name());
        }
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let meta = lstat(&path)
                .with_context(|| format!("reading metadata of '{}'", path.display()))?;
            let is_dir = meta.st_mode & S_IFMT == S_IFDIR;
            let key = (meta.st_dev, meta.st_ino);
            let child = match self.links.get(&key) {
                Some(&existing) if !is_dir => existing,
                _ => {
                    let node = self.node_from(&path, &meta)?;
                    let child = self.tree.nodes.len();
                    self.tree.nodes.push(node);
                    if is_dir {
                        self.scan_dir(&path, child)?;
                    } else if meta.st_nlink > 1 {
                        self.links.insert(key, child);
                    }
                    child
                }
            };
            if let NodeKind::Dir { entries } = &mut self.tree.nodes[id].kind {
                entries.insert(name.as_bytes().to_vec(), child);
            }
        }
        Ok(())
    }

    fn node_from(&self, path: &Path, meta: &Stat) -> anyhow::Result<Node> {
        let mode = meta.st_mode;
        let (major, minor) = (
            rustix::fs::major(meta.st_rdev),
            rustix::fs::minor(meta.st_rdev),
        );
        let size = u64::try_from(meta.st_size).unwrap_or(0);
        let kind = match mode & S_IFMT {
            S_IFDIR => NodeKind::Dir {
                entries: BTreeMap::new(),
            },
            S_IFREG => NodeKind::File {
                source: FileSource::Path(path.to_path_buf()),
                size,
            },
            S_IFLNK => NodeKind::Symlink {
                target: rustix::fs::readlink(path, Vec::new())
                    .with_context(|| format!("reading symlink '{}'", path.display()))?
                    .into_bytes(),
            },
            S_IFCHR => NodeKind::CharDev { major, minor },
            S_IFBLK => NodeKind::BlockDev { major, minor },
            S_IFIFO => NodeKind::Fifo,
            S_IFSOCK => NodeKind::Socket,
            other => bail!("'{}' has an unknown file type {other:#o}", path.display()),
        };
        let time = |sec: i64, nsec: i64| {
            Timestamp {
                sec,
                nsec: u32::try_from(nsec).unwrap_or(0),
            }
            .clamped(self.ctx)
        };
        let xattrs = if self.opts.xattrs {
            read_xattrs(path)?
        } else {
            BTreeMap::new()
        };
        tracing::trace!(
            "scan: '{}' mode {mode:o} owner {}:{}",
            path.display(),
            meta.st_uid,
            meta.st_gid
        );
        Ok(Node {
            kind,
            mode: mode & MODE_BITS,
            uid: meta.st_uid,
            gid: meta.st_gid,
            atime: time(meta.st_atime, meta.st_atime_nsec),
            mtime: time(meta.st_mtime, meta.st_mtime_nsec),
            ctime: time(meta.st_ctime, meta.st_ctime_nsec),
            xattrs,
        })
    }
}

/// `lstat(2)` through the C library (see the module documentation).
fn lstat(path: &Path) -> std::io::Result<Stat> {
    rustix::fs::lstat(path).map_err(std::io::Error::from)
}

/// The extended attributes of `path` itself (never of a symlink's target).
fn read_xattrs(path: &Path) -> anyhow::Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let ctx = || format!("reading extended attributes of '{}'", path.display());
    let mut out = BTreeMap::new();
    let mut names = Vec::new();
    loop {
        match rustix::fs::llistxattr_query(path) {
            Ok(0) => return Ok(out),
            Ok(n) => names.resize(n, 0),
            // The source filesystem has no xattrs at all.
            Err(rustix::io::Errno::NOTSUP) => return Ok(out),
            Err(e) => return Err(e).with_context(ctx),
        }
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(n) => {
                names.truncate(n);
                break;
            }
            // Grew between the two calls: ask again.
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(e).with_context(ctx),
        }
    }
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = OsStr::from_bytes(name);
        let mut value = Vec::new();
        loop {
            match rustix::fs::lgetxattr_query(path, cname) {
                Ok(n) => value.resize(n, 0),
                Err(rustix::io::Errno::NODATA) => break,
                Err(e) => return Err(e).with_context(ctx),
            }
            match rustix::fs::lgetxattr(path, cname, &mut value[..]) {
                Ok(n) => {
                    value.truncate(n);
                    out.insert(name.to_vec(), std::mem::take(&mut value));
                    break;
                }
                Err(rustix::io::Errno::RANGE) => continue,
                Err(rustix::io::Errno::NODATA) => break,
                Err(e) => return Err(e).with_context(ctx),
            }
        }
    }
    Ok(out)
}
