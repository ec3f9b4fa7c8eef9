//! A source directory tree, scanned once into memory, with ownership and
//! mode overrides applied without root.
//!
//! Purpose: every writer that packs a tree of files (ext4, the cpio
//! initramfs) starts from the same [`Tree`]: one [`Node`] per inode (hard
//! links are one node reached from several directory entries), names as raw
//! bytes, directory entries sorted by name so the order is fixed, times with
//! nanoseconds clamped to `SOURCE_DATE_EPOCH`, extended attributes read with
//! `llistxattr`/`lgetxattr`. Nothing here knows about any filesystem format.
//!
//! Scope: [`scan`] reads a directory with `lstat` only: a symlink is stored
//! as a symlink and never followed, special files (devices, FIFOs, sockets)
//! are recorded from their metadata and never opened, regular files are not
//! opened either (writers read them later through [`FileSource::Path`]).
//! Overrides are applied in memory: Buildroot `makedevs` device/permission
//! tables ([`Tree::apply_device_table`], semantics of Buildroot's
//! `package/makedevs/makedevs.c`: types `f F d r c b p`, `start inc count`
//! series, user and group names looked up in the tree's own `/etc/passwd`
//! and `/etc/group`, `|xattr` lines carrying libcap capability text), and
//! glob rules ([`Tree::apply_rules`]). Entries that are not on disk are added
//! with [`Tree::insert`].
//!
//! Rejected designs: fakeroot/pseudo databases (need an LD_PRELOAD process
//! around the build, not available to a library) and changing the source
//! tree in place (it belongs to the user; the build must stay read-only on
//! its inputs).

use crate::fs::{BuildContext, FileSource};
use anyhow::{anyhow, bail, Context};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

/// Index of a node in its [`Tree`].
pub type NodeId = usize;

/// The root directory is always node 0.
pub const ROOT: NodeId = 0;

/// File type bits of `st_mode` (`S_IFMT`).
const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFIFO: u32 = 0o010_000;
const S_IFSOCK: u32 = 0o140_000;

/// The permission bits a node keeps, including setuid, setgid and sticky.
pub const MODE_BITS: u32 = 0o7777;

/// The xattr holding file capabilities (`vfs_cap_data`).
pub const CAPABILITY_XATTR: &[u8] = b"security.capability";

/// A point in time with nanoseconds, seconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    pub sec: i64,
    pub nsec: u32,
}

impl Timestamp {
    /// This time, or `SOURCE_DATE_EPOCH` if it is later than that.
    pub fn clamped(self, ctx: &BuildContext) -> Timestamp {
        match ctx.source_date_epoch {
            Some(epoch) => {
                let epoch = i64::try_from(epoch).unwrap_or(i64::MAX);
                if self.sec > epoch || (self.sec == epoch && self.nsec > 0) {
                    Timestamp {
                        sec: epoch,
                        nsec: 0,
                    }
                } else {
                    self
                }
            }
            None => self,
        }
    }

    /// `SOURCE_DATE_EPOCH` when set, else the current time: the time of
    /// things the build creates (the root of an empty tree, `lost+found`).
    pub fn build_time(ctx: &BuildContext) -> Timestamp {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| Timestamp {
                sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nsec: d.subsec_nanos(),
            })
            .unwrap_or_default();
        now.clamped(ctx)
    }
}

/// What a node is, with what its kind needs.
#[derive(Clone, Debug)]
pub enum NodeKind {
    /// Entries by name (raw bytes), sorted: the order writers emit.
    Dir {
        entries: BTreeMap<Vec<u8>, NodeId>,
    },
    /// A regular file of `size` bytes read from `source`. `sparse`: the
    /// source may have holes (it allocates fewer bytes than its size), so
    /// writers that keep holes look for them; a dense file is not opened
    /// until its data is copied.
    File {
        source: FileSource,
        size: u64,
        sparse: bool,
    },
    /// The link target, as raw bytes, never resolved.
    Symlink {
        target: Vec<u8>,
    },
    CharDev {
        major: u32,
        minor: u32,
    },
    BlockDev {
        major: u32,
        minor: u32,
    },
    Fifo,
    Socket,
}

/// One inode of the tree.
#[derive(Clone, Debug)]
pub struct Node {
    pub kind: NodeKind,
    /// Permission bits (`MODE_BITS`), file type excluded.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    /// Extended attributes by full name (`security.selinux`), sorted.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Node {
    /// A node of `kind` with `mode`, owned by root, all times `time`.
    pub fn new(kind: NodeKind, mode: u32, time: Timestamp) -> Node {
        Node {
            kind,
            mode: mode & MODE_BITS,
            uid: 0,
            gid: 0,
            atime: time,
            mtime: time,
            ctime: time,
            xattrs: BTreeMap::new(),
        }
    }

    /// The `S_IFMT` bits of this node's kind.
    pub fn file_type(&self) -> u32 {
        match self.kind {
            NodeKind::Dir { .. } => S_IFDIR,
            NodeKind::File { .. } => S_IFREG,
            NodeKind::Symlink { .. } => S_IFLNK,
            NodeKind::CharDev { .. } => S_IFCHR,
            NodeKind::BlockDev { .. } => S_IFBLK,
            NodeKind::Fifo => S_IFIFO,
            NodeKind::Socket => S_IFSOCK,
        }
    }

    /// `st_mode`: file type and permission bits.
    pub fn st_mode(&self) -> u32 {
        self.file_type() | (self.mode & MODE_BITS)
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, NodeKind::Dir { .. })
    }
}

/// Whose ownership the scanned tree keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Owners {
    /// uid and gid as found in the source tree.
    #[default]
    Source,
    /// Everything owned by root (what Buildroot's fakeroot step does to a
    /// `TARGET_DIR` that belongs to the building user).
    Root,
}

/// How [`scan`] reads the source.
#[derive(Clone, Debug)]
pub struct TreeOptions {
    pub owners: Owners,
    /// Read extended attributes from the source (default true).
    pub xattrs: bool,
}

impl Default for TreeOptions {
    fn default() -> Self {
        TreeOptions {
            owners: Owners::Source,
            xattrs: true,
        }
    }
}

/// A declared override: every path matching `glob` gets the given owner,
/// mode and/or capabilities.
///
/// `glob` matches the absolute path in the tree (`/usr/bin/*`): `*` and `?`
/// stay within one path component, `**` spans components, `[a-z]` is a
/// class. `caps` is libcap text (`cap_net_raw+ep`); an empty string removes
/// the capabilities.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerRule {
    pub glob: String,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: Option<u32>,
    pub caps: Option<String>,
}

/// The scanned tree: nodes by id, node 0 the root directory.
#[derive(Clone, Debug)]
pub struct Tree {
    nodes: Vec<Node>,
    /// Time of the entries the build creates (device table nodes, parent
    /// directories): `SOURCE_DATE_EPOCH` when set, else the scan time.
    time: Timestamp,
}

/// Scans the directory `root` into a tree.
pub fn scan(root: &Path, opts: &TreeOptions, ctx: &BuildContext) -> anyhow::Result<Tree> {
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

/// Splits an in-tree path (`/dev/console`, `dev/console`) into components.
fn components(path: &str) -> anyhow::Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => bail!("path '{path}' must not contain '..'"),
            p => out.push(p.as_bytes()),
        }
    }
    Ok(out)
}

impl Tree {
    /// A tree holding only an empty root directory (mode 0755, root-owned).
    pub fn empty(ctx: &BuildContext) -> Tree {
        let time = Timestamp::build_time(ctx);
        let root = Node::new(
            NodeKind::Dir {
                entries: BTreeMap::new(),
            },
            0o755,
            time,
        );
        Tree {
            nodes: vec![root],
            time,
        }
    }

    /// The time given to entries the build creates.
    pub fn build_time(&self) -> Timestamp {
        self.time
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id]
    }

    /// Number of nodes (inodes), root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Never true: the root is always there.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node at `path`, if any (symlinks are not followed).
    pub fn lookup(&self, path: &str) -> anyhow::Result<Option<NodeId>> {
        let mut id = ROOT;
        for part in components(path)? {
            match &self.nodes[id].kind {
                NodeKind::Dir { entries } => match entries.get(part) {
                    Some(&child) => id = child,
                    None => return Ok(None),
                },
                _ => return Ok(None),
            }
        }
        Ok(Some(id))
    }

    /// Adds `node` at `path`, whose parent directory must exist; replaces
    /// an existing non-directory entry of that name.
    pub fn insert(&mut self, path: &str, node: Node) -> anyhow::Result<NodeId> {
        let parts = components(path)?;
        let Some((name, parent_parts)) = parts.split_last() else {
            bail!("cannot insert at the root of the tree");
        };
        let parent = self.dir_at(parent_parts, path)?;
        if let Some(old) = self.child(parent, name) {
            if self.nodes[old].is_dir() {
                bail!("'{path}' is already a directory in the tree");
            }
        }
        let id = self.nodes.len();
        self.nodes.push(node);
        self.set_entry(parent, name, id);
        Ok(id)
    }

    /// Adds `node` as `name` (raw bytes) in the directory `parent`;
    /// replaces an existing non-directory entry of that name.
    pub fn insert_child(
        &mut self,
        parent: NodeId,
        name: &[u8],
        node: Node,
    ) -> anyhow::Result<NodeId> {
        self.check_child(parent, name)?;
        let id = self.nodes.len();
        self.nodes.push(node);
        self.set_entry(parent, name, id);
        Ok(id)
    }

    /// Adds a hard link `name` (raw bytes) in `parent` to the
    /// non-directory `target`.
    pub fn link_child(
        &mut self,
        parent: NodeId,
        name: &[u8],
        target: NodeId,
    ) -> anyhow::Result<()> {
        if self.nodes[target].is_dir() {
            bail!("cannot hard-link a directory");
        }
        self.check_child(parent, name)?;
        self.set_entry(parent, name, target);
        Ok(())
    }

    fn check_child(&self, parent: NodeId, name: &[u8]) -> anyhow::Result<()> {
        if !self.nodes[parent].is_dir() {
            bail!("node {parent} is not a directory");
        }
        if name.is_empty()
            || name == b"."
            || name == b".."
            || name.contains(&b'/')
            || name.contains(&0)
        {
            bail!(
                "'{}' is not a valid file name",
                String::from_utf8_lossy(name)
            );
        }
        if self
            .child(parent, name)
            .is_some_and(|c| self.nodes[c].is_dir())
        {
            bail!("'{}' is already a directory", String::from_utf8_lossy(name));
        }
        Ok(())
    }

    /// Adds a hard link at `path` to the non-directory `target`.
    pub fn link(&mut self, path: &str, target: NodeId) -> anyhow::Result<()> {
        if self.nodes[target].is_dir() {
            bail!("cannot hard-link a directory at '{path}'");
        }
        let parts = components(path)?;
        let Some((name, parent_parts)) = parts.split_last() else {
            bail!("cannot link at the root of the tree");
        };
        let parent = self.dir_at(parent_parts, path)?;
        self.set_entry(parent, name, target);
        Ok(())
    }

    /// Creates the directory `path` and its missing parents (mode 0755,
    /// root-owned, build time); returns the directory.
    pub fn mkdir_all(&mut self, path: &str) -> anyhow::Result<NodeId> {
        let mut id = ROOT;
        for part in components(path)? {
            id = match self.child(id, part) {
                Some(c) if self.nodes[c].is_dir() => c,
                Some(_) => bail!("'{path}': a component is not a directory"),
                None => {
                    let new = self.nodes.len();
                    self.nodes.push(Node::new(
                        NodeKind::Dir {
                            entries: BTreeMap::new(),
                        },
                        0o755,
                        self.time,
                    ));
                    self.set_entry(id, part, new);
                    new
                }
            };
        }
        Ok(id)
    }

    fn child(&self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        match &self.nodes[dir].kind {
            NodeKind::Dir { entries } => entries.get(name).copied(),
            _ => None,
        }
    }

    fn dir_at(&self, parts: &[&[u8]], path: &str) -> anyhow::Result<NodeId> {
        let mut id = ROOT;
        for part in parts {
            match self.child(id, part) {
                Some(c) if self.nodes[c].is_dir() => id = c,
                _ => bail!(
                    "the parent directory of '{path}' does not exist in the tree (component '{}')",
                    String::from_utf8_lossy(part)
                ),
            }
        }
        Ok(id)
    }

    fn set_entry(&mut self, dir: NodeId, name: &[u8], id: NodeId) {
        if let NodeKind::Dir { entries } = &mut self.nodes[dir].kind {
            entries.insert(name.to_vec(), id);
        }
    }

    /// Every entry below the root, depth first in name order, as
    /// (absolute path bytes, node). A hard-linked node appears once per path.
    pub fn walk(&self) -> Vec<(Vec<u8>, NodeId)> {
        let mut out = Vec::new();
        let mut stack = vec![(Vec::new(), ROOT)];
        while let Some((path, id)) = stack.pop() {
            if let NodeKind::Dir { entries } = &self.nodes[id].kind {
                for (name, &child) in entries.iter().rev() {
                    let mut p = path.clone();
                    p.push(b'/');
                    p.extend_from_slice(name);
                    stack.push((p, child));
                }
            }
            if id != ROOT || !path.is_empty() {
                out.push((path, id));
            }
        }
        out
    }

    /// The number of directory entries naming each node, plus `.` and `..`
    /// for directories (a directory has 2 + its subdirectories).
    pub fn link_counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.nodes.len()];
        counts[ROOT] = 2;
        for node in &self.nodes {
            if let NodeKind::Dir { entries } = &node.kind {
                for &child in entries.values() {
                    if self.nodes[child].is_dir() {
                        counts[child] = counts[child].saturating_add(2);
                    } else {
                        counts[child] = counts[child].saturating_add(1);
                    }
                }
            }
        }
        for (id, node) in self.nodes.iter().enumerate() {
            if let NodeKind::Dir { entries } = &node.kind {
                let subdirs = entries
                    .values()
                    .filter(|&&c| self.nodes[c].is_dir())
                    .count();
                counts[id] = counts[id].saturating_add(u32::try_from(subdirs).unwrap_or(u32::MAX));
            }
        }
        counts
    }

    /// Applies a Buildroot `makedevs` device/permission table file.
    pub fn apply_device_table(&mut self, table: &Path) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(table)
            .with_context(|| format!("reading device table '{}'", table.display()))?;
        self.apply_device_table_str(&text, &table.display().to_string())
    }

    /// Applies a device table given as text; `origin` names it in errors.
    pub fn apply_device_table_str(&mut self, text: &str, origin: &str) -> anyhow::Result<()> {
        let mut last: Vec<NodeId> = Vec::new();
        let mut users: Option<IdMap> = None;
        let mut groups: Option<IdMap> = None;
        for (i, line) in text.lines().enumerate() {
            let lineno = i + 1;
            let at = || format!("{origin}:{lineno}");
            let trimmed = line.trim_start();
            if let Some(rest) = trimmed.strip_prefix("|xattr") {
                let caps = rest.split_whitespace().next().ok_or_else(|| {
                    anyhow!(
                        "{}: '|xattr' needs capability text, e.g. 'cap_net_raw+ep'",
                        at()
                    )
                })?;
                if last.is_empty() {
                    bail!("{}: '|xattr' must follow the line of a file", at());
                }
                for &id in &last {
                    apply_caps(&mut self.nodes[id], caps).with_context(at)?;
                }
                continue;
            }
            if trimmed.is_empty()
                || trimmed.starts_with('#')
                || line.starts_with(char::is_whitespace)
            {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 5 {
                bail!(
                    "{}: expected 'name type mode uid gid major minor start inc count', got '{line}'",
                    at()
                );
            }
            let name = fields[0];
            let kind = fields[1];
            let mode = u32::from_str_radix(fields[2], 8)
                .map_err(|_| anyhow!("{}: mode '{}' is not an octal number", at(), fields[2]))?;
            let uid = resolve_id(fields[3], &mut users, self, "etc/passwd").with_context(at)?;
            let gid = resolve_id(fields[4], &mut groups, self, "etc/group").with_context(at)?;
            let num = |idx: usize| -> anyhow::Result<u32> {
                match fields.get(idx) {
                    None | Some(&"-") => Ok(0),
                    Some(v) => v
                        .parse::<u32>()
                        .ok()
                        .filter(|&n| n <= 0xfffff)
                        .ok_or_else(|| anyhow!("{}: '{v}' is not a number up to 1048575", at())),
                }
            };
            let (major, minor, start, inc, count) = (num(5)?, num(6)?, num(7)?, num(8)?, num(9)?);
            last.clear();
            match kind {
                "d" => {
                    let id = self.mkdir_all(name).with_context(at)?;
                    set_owner_mode(&mut self.nodes[id], uid, gid, mode);
                    last.push(id);
                }
                "f" | "F" => match self.lookup(name).with_context(at)? {
                    Some(id) if matches!(self.nodes[id].kind, NodeKind::File { .. }) => {
                        set_owner_mode(&mut self.nodes[id], uid, gid, mode);
                        last.push(id);
                    }
                    _ if kind == "F" => {}
                    _ => bail!("{}: regular file '{name}' does not exist in the tree", at()),
                },
                "r" => {
                    let id = self
                        .lookup(name)
                        .with_context(at)?
                        .ok_or_else(|| anyhow!("{}: '{name}' does not exist in the tree", at()))?;
                    for sub in self.subtree(id) {
                        let node = &mut self.nodes[sub];
                        node.uid = uid;
                        node.gid = gid;
                        // makedevs chmods everything but symlinks.
                        if !matches!(node.kind, NodeKind::Symlink { .. }) {
                            node.mode = mode & MODE_BITS;
                        }
                    }
                    last.push(id);
                }
                "c" | "b" | "p" => {
                    let count = count.saturating_sub(1);
                    for n in start..=start.saturating_add(count) {
                        let path = if count > 0 {
                            format!("{name}{n}")
                        } else {
                            name.to_string()
                        };
                        let minor = minor.wrapping_add((n - start).wrapping_mul(inc));
                        let node_kind = match kind {
                            "c" => NodeKind::CharDev { major, minor },
                            "b" => NodeKind::BlockDev { major, minor },
                            _ => NodeKind::Fifo,
                        };
                        let mut node = Node::new(node_kind, mode, self.time);
                        node.uid = uid;
                        node.gid = gid;
                        let id = self.insert(&path, node).with_context(at)?;
                        last.push(id);
                    }
                }
                other => bail!(
                    "{}: unsupported type '{other}' (expected one of f F d r c b p)",
                    at()
                ),
            }
        }
        Ok(())
    }

    /// The node and everything below it.
    fn subtree(&self, id: NodeId) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            out.push(n);
            if let NodeKind::Dir { entries } = &self.nodes[n].kind {
                stack.extend(entries.values().copied());
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Applies glob rules in order (a later rule wins); a rule that matches
    /// nothing is an error (it is most likely a typo).
    pub fn apply_rules(&mut self, rules: &[OwnerRule]) -> anyhow::Result<()> {
        if rules.is_empty() {
            return Ok(());
        }
        let paths = self.walk();
        for rule in rules {
            let pattern = if rule.glob.starts_with('/') {
                rule.glob.clone()
            } else {
                format!("/{}", rule.glob)
            };
            let mut matched = false;
            for (path, id) in &paths {
                if !glob_match(pattern.as_bytes(), path) {
                    continue;
                }
                matched = true;
                let node = &mut self.nodes[*id];
                if let Some(uid) = rule.uid {
                    node.uid = uid;
                }
                if let Some(gid) = rule.gid {
                    node.gid = gid;
                }
                if let Some(mode) = rule.mode {
                    node.mode = mode & MODE_BITS;
                }
                if let Some(caps) = &rule.caps {
                    if caps.trim().is_empty() {
                        node.xattrs.remove(CAPABILITY_XATTR);
                    } else {
                        apply_caps(node, caps)
                            .with_context(|| format!("applying rule '{}'", rule.glob))?;
                    }
                }
            }
            if !matched {
                bail!(
                    "owner rule '{}' matches no path in the tree; check the glob (paths look like '/usr/bin/ping')",
                    rule.glob
                );
            }
        }
        Ok(())
    }

    /// Reads the content of a regular file node (for small files such as
    /// `/etc/passwd`).
    pub fn read_file(&self, id: NodeId) -> anyhow::Result<Arc<Vec<u8>>> {
        match &self.nodes[id].kind {
            NodeKind::File {
                source: FileSource::Bytes(b),
                ..
            } => Ok(b.clone()),
            NodeKind::File {
                source: FileSource::Path(p),
                ..
            } => Ok(Arc::new(
                std::fs::read(p).with_context(|| format!("reading '{}'", p.display()))?,
            )),
            _ => bail!("node {id} is not a regular file"),
        }
    }
}

fn set_owner_mode(node: &mut Node, uid: u32, gid: u32, mode: u32) {
    node.uid = uid;
    node.gid = gid;
    node.mode = mode & MODE_BITS;
}

/// Names to ids from the tree's own passwd or group file.
type IdMap = HashMap<String, u32>;

fn resolve_id(
    field: &str,
    cache: &mut Option<IdMap>,
    tree: &Tree,
    file: &str,
) -> anyhow::Result<u32> {
    if let Ok(n) = field.parse::<u32>() {
        return Ok(n);
    }
    if cache.is_none() {
        let mut map = IdMap::new();
        if let Some(id) = tree.lookup(file)? {
            let text = tree.read_file(id)?;
            for line in String::from_utf8_lossy(&text).lines() {
                let mut parts = line.split(':');
                if let (Some(name), Some(_), Some(id)) = (parts.next(), parts.next(), parts.next())
                {
                    if let Ok(id) = id.parse::<u32>() {
                        map.insert(name.to_string(), id);
                    }
                }
            }
        }
        *cache = Some(map);
    }
    cache
        .as_ref()
        .and_then(|m| m.get(field).copied())
        .ok_or_else(|| anyhow!("'{field}' is neither a number nor a name in the tree's /{file}"))
}

/// Matches `path` against a glob: `*`/`?` within a component, `**` across.
pub fn glob_match(pattern: &[u8], path: &[u8]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((b'*', rest)) => {
            if let Some(rest2) = rest.strip_prefix(b"*") {
                // `**/` also matches zero components.
                let rest2_noslash = rest2.strip_prefix(b"/");
                (0..=path.len()).any(|i| {
                    glob_match(rest2, &path[i..])
                        || rest2_noslash.is_some_and(|r| glob_match(r, &path[i..]))
                })
            } else {
                (0..=path.len())
                    .take_while(|&i| i == 0 || path[i - 1] != b'/')
                    .any(|i| glob_match(rest, &path[i..]))
            }
        }
        Some((b'?', rest)) => match path.split_first() {
            Some((&c, prest)) if c != b'/' => glob_match(rest, prest),
            _ => false,
        },
        Some((b'[', rest)) => {
            let Some(close) = rest.iter().skip(1).position(|&c| c == b']').map(|p| p + 1) else {
                return path.first() == Some(&b'[') && glob_match(rest, &path[1..]);
            };
            let (class, after) = (&rest[..close], &rest[close + 1..]);
            let (negate, class) = match class.split_first() {
                Some((b'!' | b'^', c)) => (true, c),
                _ => (false, class),
            };
            let Some((&c, prest)) = path.split_first() else {
                return false;
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && c != b'/' && glob_match(after, prest)
        }
        Some((&p, rest)) => path.first() == Some(&p) && glob_match(rest, &path[1..]),
    }
}

/// Capability names in bit order (`linux/capability.h`).
const CAP_NAMES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// `VFS_CAP_REVISION_2`: the `magic_etc` of a 20-byte `vfs_cap_data`.
const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
/// `VFS_CAP_REVISION_3`: a namespaced capability (with a root uid).
const VFS_CAP_REVISION_3: u32 = 0x0300_0000;
const VFS_CAP_REVISION_MASK: u32 = 0xff00_0000;
/// `VFS_CAP_FLAGS_EFFECTIVE`: raise permitted caps into effective at exec.
const VFS_CAP_FLAGS_EFFECTIVE: u32 = 1;

/// File capability sets, one bit per capability.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

impl Caps {
    /// Decodes a `security.capability` value (revision 2 or 3).
    pub fn decode(value: &[u8]) -> Option<Caps> {
        let word = |i: usize| -> Option<u32> {
            value
                .get(i * 4..i * 4 + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let magic = word(0)?;
        match magic & VFS_CAP_REVISION_MASK {
            VFS_CAP_REVISION_2 | VFS_CAP_REVISION_3 => {}
            _ => return None,
        }
        let permitted = u64::from(word(1)?) | (u64::from(word(3)?) << 32);
        let inheritable = u64::from(word(2)?) | (u64::from(word(4)?) << 32);
        let effective = if magic & VFS_CAP_FLAGS_EFFECTIVE != 0 {
            permitted | inheritable
        } else {
            0
        };
        Some(Caps {
            effective,
            permitted,
            inheritable,
        })
    }

    /// Encodes as a revision-2 `security.capability` value (20 bytes).
    pub fn encode(&self) -> Vec<u8> {
        let flags = if self.effective != 0 {
            VFS_CAP_FLAGS_EFFECTIVE
        } else {
            0
        };
        let mut out = Vec::with_capacity(20);
        for w in [
            VFS_CAP_REVISION_2 | flags,
            self.permitted as u32,
            self.inheritable as u32,
            (self.permitted >> 32) as u32,
            (self.inheritable >> 32) as u32,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Applies libcap text (`cap_net_raw+ep`, `cap_a,cap_b=eip`, `all=ep`)
    /// on top of these sets, like `cap_from_text` on the concatenation.
    pub fn apply_text(&mut self, text: &str) -> anyhow::Result<()> {
        for clause in text.split_whitespace() {
            let op_at = clause
                .find(['=', '+', '-'])
                .ok_or_else(|| anyhow!("capability clause '{clause}' has no '=', '+' or '-'"))?;
            let (list, mut actions) = clause.split_at(op_at);
            let mut bits = 0u64;
            if list.is_empty() || list.eq_ignore_ascii_case("all") {
                bits = (1u64 << CAP_NAMES.len()) - 1;
            } else {
                for name in list.split(',') {
                    let lower = name.to_ascii_lowercase();
                    let short = lower.strip_prefix("cap_").unwrap_or(&lower);
                    let bit = CAP_NAMES
                        .iter()
                        .position(|n| *n == short)
                        .or_else(|| short.parse::<usize>().ok().filter(|&b| b < 64))
                        .ok_or_else(|| anyhow!("unknown capability '{name}' in '{clause}'"))?;
                    bits |= 1u64 << bit;
                }
            }
            while let Some(op) = actions.chars().next() {
                actions = &actions[1..];
                let flags_end = actions.find(['=', '+', '-']).unwrap_or(actions.len());
                let (flags, rest) = actions.split_at(flags_end);
                actions = rest;
                if op == '=' {
                    self.effective &= !bits;
                    self.permitted &= !bits;
                    self.inheritable &= !bits;
                }
                for f in flags.chars() {
                    let set = match f.to_ascii_lowercase() {
                        'e' => &mut self.effective,
                        'p' => &mut self.permitted,
                        'i' => &mut self.inheritable,
                        _ => bail!("unknown capability flag '{f}' in '{clause}' (use e, i, p)"),
                    };
                    if op == '-' {
                        *set &= !bits;
                    } else {
                        *set |= bits;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Adds libcap capability text to a node's `security.capability`.
fn apply_caps(node: &mut Node, text: &str) -> anyhow::Result<()> {
    let mut caps = node
        .xattrs
        .get(CAPABILITY_XATTR)
        .and_then(|v| Caps::decode(v))
        .unwrap_or_default();
    caps.apply_text(text)?;
    if caps == Caps::default() {
        node.xattrs.remove(CAPABILITY_XATTR);
    } else {
        node.xattrs.insert(CAPABILITY_XATTR.to_vec(), caps.encode());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Seed;

    fn ctx() -> BuildContext {
        BuildContext {
            seed: Seed("t".into()),
            source_date_epoch: Some(1_000_000),
        }
    }

    #[test]
    fn globs_match_within_and_across_components() {
        assert!(glob_match(b"/usr/bin/*", b"/usr/bin/ping"));
        assert!(!glob_match(b"/usr/bin/*", b"/usr/bin/x/ping"));
        assert!(glob_match(b"/usr/**", b"/usr/bin/x/ping"));
        assert!(glob_match(b"/**/ping", b"/ping"));
        assert!(glob_match(b"/dev/tty[0-9]", b"/dev/tty3"));
        assert!(!glob_match(b"/dev/tty[!0-9]", b"/dev/tty3"));
        assert!(glob_match(b"/a?c", b"/abc"));
        assert!(!glob_match(b"/a?c", b"/a/c"));
    }

    #[test]
    fn capability_text_encodes_like_libcap() {
        let mut c = Caps::default();
        c.apply_text("cap_net_raw+ep").unwrap();
        let v = c.encode();
        assert_eq!(
            v,
            [1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(Caps::decode(&v).unwrap().permitted, 1 << 13);
        c.apply_text("cap_net_raw-e cap_chown,cap_bpf=i").unwrap();
        assert_eq!(c.effective, 0);
        assert_eq!(c.inheritable, 1 | (1 << 39));
        assert!(c.apply_text("cap_bogus+ep").is_err());
    }

    #[test]
    fn device_table_creates_series_and_sets_owners() {
        let mut t = Tree::empty(&ctx());
        let table = "# comment\n/dev d 755 0 0 - - - - -\n/dev/console c 600 0 5 5 1 - - -\n\
                     /dev/hda b 640 0 0 3 1 1 1 3\n/dev/null c 666 0 0 1 3 0 0 -\n";
        t.apply_device_table_str(table, "t").unwrap();
        let c = t.lookup("/dev/console").unwrap().unwrap();
        assert!(matches!(
            t.node(c).kind,
            NodeKind::CharDev { major: 5, minor: 1 }
        ));
        assert_eq!((t.node(c).gid, t.node(c).mode), (5, 0o600));
        for (n, minor) in [(1, 1), (2, 2), (3, 3)] {
            let id = t.lookup(&format!("/dev/hda{n}")).unwrap().unwrap();
            assert!(
                matches!(t.node(id).kind, NodeKind::BlockDev { major: 3, minor: m } if m == minor)
            );
        }
        assert!(t.lookup("/dev/hda4").unwrap().is_none());
        let err = t
            .apply_device_table_str("/bin/x f 755 0 0 - - - - -\n", "tab")
            .unwrap_err();
        assert!(format!("{err:#}").contains("tab:1"), "{err:#}");
    }

    #[test]
    fn xattr_lines_add_capabilities_to_the_previous_file() {
        let mut t = Tree::empty(&ctx());
        t.mkdir_all("/bin").unwrap();
        let f = Node::new(
            NodeKind::File {
                source: FileSource::Bytes(Arc::new(b"x".to_vec())),
                size: 1,
                sparse: false,
            },
            0o755,
            Timestamp::default(),
        );
        t.insert("/bin/ping", f).unwrap();
        t.apply_device_table_str(
            "/bin/ping f 4755 0 0 - - - - -\n|xattr cap_net_raw+ep\n",
            "t",
        )
        .unwrap();
        let id = t.lookup("/bin/ping").unwrap().unwrap();
        assert_eq!(t.node(id).mode, 0o4755);
        let caps = Caps::decode(&t.node(id).xattrs[CAPABILITY_XATTR]).unwrap();
        assert_eq!(caps.permitted, 1 << 13);
        let err = t
            .apply_rules(&[OwnerRule {
                glob: "/sbin/*".into(),
                uid: Some(1),
                ..Default::default()
            }])
            .unwrap_err();
        assert!(err.to_string().contains("matches no path"));
        t.apply_rules(&[OwnerRule {
            glob: "/bin/*".into(),
            uid: Some(7),
            caps: Some(String::new()),
            ..Default::default()
        }])
        .unwrap();
        assert_eq!(t.node(id).uid, 7);
        assert!(t.node(id).xattrs.is_empty());
    }

    #[test]
    fn times_clamp_to_source_date_epoch() {
        let c = ctx();
        let t = Timestamp {
            sec: 2_000_000,
            nsec: 5,
        }
        .clamped(&c);
        assert_eq!(
            t,
            Timestamp {
                sec: 1_000_000,
                nsec: 0
            }
        );
        let t = Timestamp { sec: 5, nsec: 7 }.clamped(&c);
        assert_eq!(t, Timestamp { sec: 5, nsec: 7 });
    }
}
