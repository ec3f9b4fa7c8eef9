//! Scanning a source directory into a [`Tree`]: `lstat` only, symlinks never
//! followed, special files recorded from their metadata, xattrs read per entry.

use super::*;

/// Scans the directory `root` into a tree. `root` itself may be a
/// symbolic link to a directory (followed, like every filesystem kind's
/// `from:`); links inside the tree never are.
pub fn scan(root: &Path, opts: &TreeOptions, ctx: &BuildContext) -> anyhow::Result<Tree> {
    let root = &root
        .canonicalize()
        .with_context(|| format!("reading source tree '{}'", root.display()))?;
    let meta = std::fs::symlink_metadata(root)
        .with_context(|| format!("reading source tree '{}'", root.display()))?;
    if !meta.is_dir() {
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
            let meta = std::fs::symlink_metadata(&path)
                .with_context(|| format!("reading metadata of '{}'", path.display()))?;
            let key = (meta.dev(), meta.ino());
            let child = match self.links.get(&key) {
                Some(&existing) if !meta.is_dir() => existing,
                _ => {
                    let node = self.node_from(&path, &meta)?;
                    let child = self.tree.nodes.len();
                    self.tree.nodes.push(node);
                    if meta.is_dir() {
                        self.scan_dir(&path, child)?;
                    } else if meta.nlink() > 1 {
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

    fn node_from(&self, path: &Path, meta: &std::fs::Metadata) -> anyhow::Result<Node> {
        let ft = meta.file_type();
        let mode = meta.mode();
        let rdev = meta.rdev();
        let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        let kind = match mode & S_IFMT {
            S_IFDIR => NodeKind::Dir {
                entries: BTreeMap::new(),
            },
            S_IFREG => NodeKind::File {
                source: FileSource::Path(path.to_path_buf()),
                size: meta.len(),
                sparse: meta.blocks() * 512 < meta.len(),
            },
            S_IFLNK => NodeKind::Symlink {
                target: std::fs::read_link(path)
                    .with_context(|| format!("reading symlink '{}'", path.display()))?
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            },
            S_IFCHR => NodeKind::CharDev { major, minor },
            S_IFBLK => NodeKind::BlockDev { major, minor },
            S_IFIFO => NodeKind::Fifo,
            S_IFSOCK => NodeKind::Socket,
            _ => bail!("'{}' has an unknown file type {ft:?}", path.display()),
        };
        let time = |sec: i64, nsec: i64| {
            Timestamp {
                sec,
                nsec: u32::try_from(nsec).unwrap_or(0),
            }
            .clamped(self.ctx)
        };
        let (uid, gid) = match self.opts.owners {
            Owners::Source => (meta.uid(), meta.gid()),
            Owners::Root => (0, 0),
        };
        let xattrs = if self.opts.xattrs {
            read_xattrs(path)?
        } else {
            BTreeMap::new()
        };
        Ok(Node {
            kind,
            mode: mode & MODE_BITS,
            uid,
            gid,
            atime: time(meta.atime(), meta.atime_nsec()),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            xattrs,
        })
    }
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
