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

mod overrides;
mod scan;

pub use overrides::{glob_match, Caps};
pub use scan::scan;

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
    fn a_from_that_is_a_symlink_is_followed_but_links_inside_are_not() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::create_dir_all(real.join("sub")).unwrap();
        std::fs::write(real.join("sub/f"), b"x").unwrap();
        std::os::unix::fs::symlink("sub", real.join("inner")).unwrap();
        std::os::unix::fs::symlink(&real, d.path().join("link")).unwrap();
        let t = scan(&d.path().join("link"), &TreeOptions::default(), &ctx()).unwrap();
        assert!(t.node(ROOT).is_dir());
        assert!(t.lookup("/sub/f").unwrap().is_some());
        let inner = t.lookup("/inner").unwrap().unwrap();
        assert!(matches!(&t.node(inner).kind, NodeKind::Symlink { target } if target == b"sub"));
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
