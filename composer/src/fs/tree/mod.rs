//! A source directory tree, scanned once into memory, with ownership and
//! mode overrides applied without root.
//!
//! Purpose: every writer that packs a tree of files (ext4, squashfs,
//! EROFS, vfat, the cpio initramfs) starts from the same [`Tree`]: one [`Node`] per inode (hard
//! links are one node reached from several directory entries), names as raw
//! bytes, directory entries sorted by name so the order is fixed, times with
//! nanoseconds clamped to `SOURCE_DATE_EPOCH`, extended attributes read with
//! `llistxattr`/`lgetxattr`. Nothing here knows about any filesystem format.
//!
//! Scope: [`scan`] reads a directory with `lstat` only, through the C
//! library so that fakeroot and pseudo sessions see it: a symlink is stored
//! as a symlink and never followed, special files (devices, FIFOs, sockets)
//! are recorded from their metadata and never opened, regular files are not
//! opened either (writers read them later through [`FileSource::Path`]).
//! The owners the tree keeps ([`OwnerChoice`], decided by
//! `compose::prepare`) are applied by [`Tree::apply_owners`]. Overrides are
//! applied in memory: Buildroot `makedevs` device/permission tables
//! ([`Tree::apply_device_table`], semantics of Buildroot's
//! `package/makedevs/makedevs.c`: types `f F d r c b p`, `start inc count`
//! series, paths through symlinked directories ([`Tree::resolve`]), user
//! and group names looked up in the tree's own `/etc/passwd` and
//! `/etc/group`, `|xattr` lines carrying libcap capability text), and glob
//! rules ([`Tree::apply_rules`]). Entries that are not on disk are added
//! with [`Tree::insert`]. Trees are combined and cut in one way for every
//! writer (`edit`): [`Tree::merge`] overlays a later `from:` tree onto an
//! earlier one as `rsync -a --keep-dirlinks` would ([`Tree::graft`] at a
//! path, for `files:` directories), [`Tree::exclude`] removes entries by
//! glob (wic's `--exclude-path`).
//!
//! Rejected designs: reading fakeroot's or pseudo's databases directly
//! (private formats; running inside the session through the C library gets
//! the same answers) and changing the source tree in place (it belongs to
//! the user; the build must stay read-only on its inputs).

mod edit;
mod overrides;
mod scan;

pub use overrides::{glob_match, Caps};
pub use scan::scan;

use crate::fs::{BuildContext, FileSource};
use crate::input::InputFile;
use anyhow::{anyhow, bail, Context};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
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
    /// When set, it alone decides, even if it is later than the clock: a
    /// build must not depend on when it runs.
    pub fn build_time(ctx: &BuildContext) -> Timestamp {
        if let Some(epoch) = ctx.source_date_epoch {
            return Timestamp {
                sec: i64::try_from(epoch).unwrap_or(i64::MAX),
                nsec: 0,
            };
        }
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| Timestamp {
                sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nsec: d.subsec_nanos(),
            })
            .unwrap_or_default()
    }
}

/// What a node is, with what its kind needs.
#[derive(Clone, Debug)]
pub enum NodeKind {
    /// Entries by name (raw bytes), sorted: the order writers emit.
    Dir {
        entries: BTreeMap<Vec<u8>, NodeId>,
    },
    /// A regular file of `size` bytes read from `source`. Whether the
    /// source stores holes does not matter: writers that keep holes look
    /// at the content (blocks of zeros), so sparse and dense copies of one
    /// content give one image.
    File {
        source: FileSource,
        size: u64,
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

impl NodeKind {
    /// The file type of a directory entry: ext2/3/4's `EXT2_FT_*`, which
    /// EROFS's `EROFS_FT_*` repeat number for number.
    pub fn dirent_type(&self) -> u8 {
        match self {
            NodeKind::File { .. } => 1,
            NodeKind::Dir { .. } => 2,
            NodeKind::CharDev { .. } => 3,
            NodeKind::BlockDev { .. } => 4,
            NodeKind::Fifo => 5,
            NodeKind::Socket => 6,
            NodeKind::Symlink { .. } => 7,
        }
    }
}

/// The kernel's `new_encode_dev`: a device number as ext4 (when either
/// part exceeds 255), squashfs and EROFS store it; majors are 12 bits.
pub fn new_encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
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
    /// uid and gid as the source tree reports them (inside fakeroot or
    /// pseudo: as the session recorded them).
    Source,
    /// Everything owned by root (a tree that belongs to the building user).
    #[default]
    Root,
}

impl Owners {
    /// As written in YAML.
    pub fn name(self) -> &'static str {
        match self {
            Owners::Source => "source",
            Owners::Root => "root",
        }
    }
}

/// An LD_PRELOAD session that fakes root for file metadata: what its
/// processes see of a tree (owners, modes, device nodes, xattrs) is what it
/// recorded, not what the disk holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Session {
    Fakeroot,
    /// Yocto's pseudo.
    Pseudo,
}

impl Session {
    pub fn name(self) -> &'static str {
        match self {
            Session::Fakeroot => "fakeroot",
            Session::Pseudo => "pseudo",
        }
    }
}

/// The owners a tree keeps and why, decided once per content by
/// `compose::prepare` from the description and the session, shown by `plan`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerChoice {
    pub owners: Owners,
    /// Why, for `plan`: `set in the description`, `fakeroot session
    /// (FAKEROOTKEY is set)`, …
    pub reason: String,
    /// Written as `owners:` in the description (not the default).
    pub explicit: bool,
    /// The session the build runs in, if any.
    pub session: Option<Session>,
    /// The effective uid of the build (as the session reports it).
    pub euid: u32,
}

/// How [`scan`] reads the source.
#[derive(Clone, Debug)]
pub struct TreeOptions {
    /// Read extended attributes from the source (default true).
    pub xattrs: bool,
}

impl Default for TreeOptions {
    fn default() -> Self {
        TreeOptions { xattrs: true }
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
                None => self.new_dir_entry(id, part),
            };
        }
        Ok(id)
    }

    /// The node `path` leads to, following symlinks in every component but
    /// the last (and in the last too with `follow_last`), as a path lookup
    /// chrooted into the tree does: an absolute target starts from the
    /// tree's root, `..` stops at it. With `mkdirs`, missing directories
    /// are created (mode 0755, root-owned, like `mkdir -p`). `None`: only
    /// the last component is missing.
    pub fn resolve(
        &mut self,
        path: &str,
        follow_last: bool,
        mkdirs: bool,
    ) -> anyhow::Result<Option<NodeId>> {
        /// Symlinks followed in one lookup before giving up (`MAXSYMLINKS`).
        const MAX_SYMLINKS: u32 = 40;
        let mut todo: Vec<Vec<u8>> = components(path)?
            .into_iter()
            .rev()
            .map(<[u8]>::to_vec)
            .collect();
        let mut stack = vec![ROOT];
        let mut followed = 0;
        while let Some(part) = todo.pop() {
            let dir = *stack.last().unwrap_or(&ROOT);
            match part.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    if stack.len() > 1 {
                        stack.pop();
                    }
                    continue;
                }
                _ => {}
            }
            let last = todo.is_empty();
            let child = match self.child(dir, &part) {
                Some(c) => c,
                None if mkdirs => {
                    let new = self.nodes.len();
                    self.nodes.push(Node::new(
                        NodeKind::Dir {
                            entries: BTreeMap::new(),
                        },
                        0o755,
                        self.time,
                    ));
                    self.set_entry(dir, &part, new);
                    new
                }
                None if last => return Ok(None),
                None => bail!(
                    "'{path}': '{}' does not exist in the tree",
                    String::from_utf8_lossy(&part)
                ),
            };
            match &self.nodes[child].kind {
                NodeKind::Symlink { target } if !last || follow_last => {
                    followed += 1;
                    if followed > MAX_SYMLINKS {
                        bail!("'{path}': too many levels of symbolic links");
                    }
                    if target.first() == Some(&b'/') {
                        stack.truncate(1);
                    }
                    todo.extend(target.split(|&b| b == b'/').rev().map(<[u8]>::to_vec));
                }
                NodeKind::Dir { .. } => stack.push(child),
                _ if last => return Ok(Some(child)),
                _ => bail!(
                    "'{path}': '{}' is not a directory",
                    String::from_utf8_lossy(&part)
                ),
            }
        }
        Ok(stack.last().copied())
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
    /// Gives the scanned tree the owners of `choice`, and warns (naming one
    /// path) when an explicit choice contradicts the session: `root` inside
    /// fakeroot or pseudo on a tree with other owners, `source` outside
    /// any session on a tree the building user owns. `what` names the
    /// content in the warning.
    pub fn apply_owners(&mut self, choice: &OwnerChoice, what: &str) {
        let paths = self.walk();
        let path_of = |want: &dyn Fn(&Node) -> bool| {
            paths
                .iter()
                .find(|(_, id)| want(&self.nodes[*id]))
                .map(|(p, id)| (String::from_utf8_lossy(p).into_owned(), *id))
        };
        match (choice.owners, choice.session) {
            (Owners::Root, Some(session)) if choice.explicit => {
                if let Some((path, id)) = path_of(&|n| n.uid != 0 || n.gid != 0) {
                    let n = &self.nodes[id];
                    tracing::warn!(
                        "{what}: `owners: root` makes every file root:root, but the {} session \
                         reports other owners, e.g. '{path}' {}:{}; remove `owners:` to keep them",
                        session.name(),
                        n.uid,
                        n.gid
                    );
                }
            }
            (Owners::Source, None) if choice.explicit && choice.euid != 0 => {
                if let Some((path, _)) = path_of(&|n| n.uid == choice.euid) {
                    tracing::warn!(
                        "{what}: `owners: source` outside fakeroot or pseudo keeps the building \
                         user's uid {}, e.g. on '{path}'; build inside the session that made the \
                         tree, or remove `owners:` for root:root",
                        choice.euid
                    );
                }
            }
            _ => {}
        }
        if choice.owners == Owners::Root {
            for node in &mut self.nodes {
                node.uid = 0;
                node.gid = 0;
            }
        }
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
                size,
                ..
            } => Ok(Arc::new(InputFile::open(p, *size)?.read_all()?)),
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

    fn file(mode: u32) -> Node {
        Node::new(
            NodeKind::File {
                source: FileSource::Bytes(Arc::new(b"x".to_vec())),
                size: 1,
            },
            mode,
            Timestamp::default(),
        )
    }

    fn symlink(target: &str) -> Node {
        Node::new(
            NodeKind::Symlink {
                target: target.as_bytes().to_vec(),
            },
            0o777,
            Timestamp::default(),
        )
    }

    /// A merged-/usr tree: `/bin`, `/lib` and `/sbin` link into `/usr`.
    fn merged_usr() -> Tree {
        let mut t = Tree::empty(&ctx());
        t.mkdir_all("/usr/bin").unwrap();
        t.mkdir_all("/usr/lib").unwrap();
        t.mkdir_all("/etc").unwrap();
        t.insert("/usr/bin/su", file(0o755)).unwrap();
        t.insert("/usr/bin/busybox", file(0o755)).unwrap();
        t.insert("/usr/bin/sh", symlink("busybox")).unwrap();
        t.insert("/bin", symlink("usr/bin")).unwrap();
        t.insert("/lib", symlink("/usr/lib")).unwrap();
        t.insert("/sbin", symlink("usr/../bin")).unwrap();
        t
    }

    #[test]
    fn device_table_lines_with_leading_blanks_are_read() {
        let mut t = Tree::empty(&ctx());
        t.apply_device_table_str(
            "  /dev d 755 0 0 - - - - -\n\t/dev/console c 600 0 5 5 1 - - -\n   # comment\n \n",
            "t",
        )
        .unwrap();
        let c = t.lookup("/dev/console").unwrap().unwrap();
        assert!(matches!(
            t.node(c).kind,
            NodeKind::CharDev { major: 5, minor: 1 }
        ));
    }

    #[test]
    fn device_table_paths_follow_symlinked_directories() {
        let mut t = merged_usr();
        t.apply_device_table_str(
            "/bin/su f 4755 0 0 - - - - -\n\
             /sbin/su F 4750 0 0 - - - - -\n\
             /lib/firmware d 700 0 0 - - - - -\n\
             /bin/console c 600 0 0 5 1 - - -\n",
            "t",
        )
        .unwrap();
        let su = t.lookup("/usr/bin/su").unwrap().unwrap();
        assert_eq!(t.node(su).mode, 0o4750);
        let fw = t.lookup("/usr/lib/firmware").unwrap().unwrap();
        assert_eq!(t.node(fw).mode, 0o700);
        assert!(t.lookup("/usr/bin/console").unwrap().is_some());
        // The last component is followed for `f` (makedevs' chmod does)...
        t.apply_device_table_str("/bin/sh f 4755 0 0 - - - - -\n", "t")
            .unwrap();
        let bb = t.lookup("/usr/bin/busybox").unwrap().unwrap();
        assert_eq!(t.node(bb).mode, 0o4755);
        // ...and not for `r` (nftw with FTW_PHYS): the link keeps its mode.
        t.apply_device_table_str("/usr/bin/sh r 700 5 5 - - - - -\n", "t")
            .unwrap();
        let sh = t.lookup("/usr/bin/sh").unwrap().unwrap();
        assert_eq!((t.node(sh).uid, t.node(sh).mode), (5, 0o777));
        assert_eq!(t.node(bb).uid, 0);
        let mut loops = Tree::empty(&ctx());
        loops.insert("/a", symlink("b")).unwrap();
        loops.insert("/b", symlink("a")).unwrap();
        let err = loops
            .apply_device_table_str("/a/x f 755 0 0 - - - - -\n", "t")
            .unwrap_err();
        assert!(format!("{err:#}").contains("too many levels"), "{err:#}");
    }

    #[test]
    fn device_table_names_resolve_like_makedevs() {
        let mut t = merged_usr();
        t.mkdir_all("/usr/share/defaults").unwrap();
        let passwd = b"root:x:0:0::/root:/bin/sh\nwww:x:33:33::/:/bin/false\nwww:x:99:99::/:/x\n";
        let mut p = file(0o644);
        p.kind = NodeKind::File {
            source: FileSource::Bytes(Arc::new(passwd.to_vec())),
            size: passwd.len() as u64,
        };
        t.insert("/usr/share/defaults/passwd", p).unwrap();
        t.insert("/etc/passwd", symlink("../usr/share/defaults/passwd"))
            .unwrap();
        let mut g = file(0o644);
        g.kind = NodeKind::File {
            source: FileSource::Bytes(Arc::new(b"bad line\nwww:x:34:\n".to_vec())),
            size: 18,
        };
        t.insert("/etc/group", g).unwrap();
        t.apply_device_table_str("/usr/bin/su f 755 www www - - - - -\n", "t")
            .unwrap();
        let su = t.lookup("/usr/bin/su").unwrap().unwrap();
        // The first entry of a name wins, as with fgetpwent.
        assert_eq!((t.node(su).uid, t.node(su).gid), (33, 34));
        let err = t
            .apply_device_table_str("/usr/bin/su f 755 nobody 0 - - - - -\n", "tab")
            .unwrap_err();
        assert!(format!("{err:#}").contains("tab:1"), "{err:#}");
    }

    #[test]
    fn device_table_dash_ends_the_numbers() {
        let mut t = Tree::empty(&ctx());
        t.apply_device_table_str("/null c 666 0 0 1 - 7 1 4\n", "t")
            .unwrap();
        let n = t.lookup("/null").unwrap().unwrap();
        assert!(matches!(
            t.node(n).kind,
            NodeKind::CharDev { major: 1, minor: 0 }
        ));
        assert!(t.lookup("/null7").unwrap().is_none());
    }

    #[test]
    fn users_tables_are_refused_with_the_buildroot_route() {
        let mut t = Tree::empty(&ctx());
        let err = t
            .apply_device_table_str(
                "# users\nfoo -1 foo -1 =pass /home/foo /bin/sh - Foo user\n",
                "users.txt",
            )
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.starts_with("users.txt:2: this is a users table"),
            "{text}"
        );
        assert!(text.contains("BR2_TARGET_ROOTFS_IMAGE_COMPOSER"), "{text}");
    }

    #[test]
    fn capabilities_only_land_on_regular_files() {
        let mut t = merged_usr();
        for (rule, what) in [("/usr/bin/sh", "symlink"), ("/usr/lib", "directory")] {
            let err = t
                .apply_rules(&[OwnerRule {
                    glob: rule.into(),
                    caps: Some("cap_net_raw+ep".into()),
                    ..Default::default()
                }])
                .unwrap_err();
            let text = format!("{err:#}");
            assert!(text.contains(rule) && text.contains(what), "{text}");
        }
        let err = t
            .apply_device_table_str("/usr/lib d 755 0 0 - - - - -\n|xattr cap_chown+ep\n", "t")
            .unwrap_err();
        assert!(format!("{err:#}").contains("t:2"), "{err:#}");
        // Removing capabilities is no exception (setcap -r refuses too).
        assert!(t
            .apply_rules(&[OwnerRule {
                glob: "/usr/lib".into(),
                caps: Some(String::new()),
                ..Default::default()
            }])
            .is_err());
    }

    #[test]
    fn mode_rules_leave_symlinks_alone() {
        let mut t = merged_usr();
        t.apply_rules(&[OwnerRule {
            glob: "/usr/bin/*".into(),
            mode: Some(0o700),
            uid: Some(3),
            ..Default::default()
        }])
        .unwrap();
        let sh = t.lookup("/usr/bin/sh").unwrap().unwrap();
        assert_eq!((t.node(sh).mode, t.node(sh).uid), (0o777, 3));
        let su = t.lookup("/usr/bin/su").unwrap().unwrap();
        assert_eq!(t.node(su).mode, 0o700);
    }

    #[test]
    fn root_owners_flatten_the_tree() {
        let mut t = merged_usr();
        let su = t.lookup("/usr/bin/su").unwrap().unwrap();
        (t.node_mut(su).uid, t.node_mut(su).gid) = (1234, 5678);
        let mut kept = t.clone();
        kept.apply_owners(
            &OwnerChoice {
                owners: Owners::Source,
                ..Default::default()
            },
            "t",
        );
        assert_eq!(kept.node(su).uid, 1234);
        t.apply_owners(
            &OwnerChoice {
                owners: Owners::Root,
                explicit: true,
                session: Some(Session::Pseudo),
                ..Default::default()
            },
            "t",
        );
        assert_eq!((t.node(su).uid, t.node(su).gid), (0, 0));
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
