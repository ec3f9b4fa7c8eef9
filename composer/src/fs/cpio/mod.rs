//! Initramfs builder: a cpio newc archive assembled from YAML-declared
//! files, directories, symlinks and device nodes, a directory tree, a
//! busybox with its applet links and kernel modules with their
//! dependencies, then compressed.
//!
//! Scope: [`build`] returns the compressed archive in memory (an initramfs
//! is a few MiB); [`Initramfs`] wraps those bytes as [`Content`] so the
//! archive can also be a partition's content, and the caller can place the
//! same bytes as a file on the boot partition (`FileSource::Bytes`) or
//! write them out standalone.
//!
//! Layering, lowest first; a higher layer replaces a lower one's entry at
//! the same path:
//! 1. the `from:` tree, as `compose::prepare` assembled it with
//!    [`crate::fs::tree`] (trees merged, exclusions cut, `files:`
//!    directories grafted, owners chosen; extended attributes are dropped:
//!    newc has none);
//! 2. busybox as `/bin/busybox` and one symlink `/bin/<applet>` → `busybox`
//!    per applet (a link is skipped where the tree already has that path);
//! 3. kernel modules at `/lib/modules/<version>/<path>.ko` (decompressed),
//!    a `modules.dep` for them, and `/etc/modules-load.order`: their
//!    absolute paths, one per line, in load order (the init `insmod`s
//!    them in that order; see [`modules`]);
//! 4. explicit `dirs`, `symlinks`, `nodes` and `files` (two explicit entries
//!    for one path are an error);
//! 5. device tables, then ownership/mode rules, over the whole archive.
//!
//! Missing parent directories are added (mode 0755, root, build time). A file's mode
//! comes from the spec, else from its source file, else 0644; `/init` is
//! always made executable (the kernel runs it and ignores a non-executable
//! one silently, falling back to mounting `root=` itself).
//!
//! Reproducible: members sorted, inodes numbered in that order, owners as
//! declared, every mtime clamped to `SOURCE_DATE_EPOCH` (generated members
//! get `SOURCE_DATE_EPOCH`; without it they get the build time, and the
//! archive is not reproducible), compressors without timestamps.
//!
//! Spec: kernel `Documentation/driver-api/early-userspace/buffer-format.rst`
//! and `Documentation/filesystems/ramfs-rootfs-initramfs.rst`.

pub mod busybox;
pub mod compress;
pub mod modules;
pub mod newc;

pub use compress::Compression;

use crate::fs::tree::{Node, NodeKind as TreeKind, OwnerRule, Timestamp, Tree};
use crate::fs::{BuildContext, Content, FileSource};
use crate::output::window::Window;
use anyhow::{bail, Context, Result};
use newc::Entry;
use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Default permissions of generated directories and of `Bytes` files.
const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;
/// Symbolic links carry no permissions of their own.
const LINK_MODE: u32 = 0o777;
/// Execute bits forced onto `/init`.
const EXEC_BITS: u32 = 0o111;
/// newc's size field is 32 bits wide.
const NEWC_MAX_FILE: u64 = u32::MAX as u64;
/// Where the module load order is written (read by the layers' `/init`).
pub const MODULES_LOAD_ORDER: &str = "etc/modules-load.order";

/// A regular file placed into the archive.
#[derive(Clone, Debug)]
pub struct FileSpec {
    /// Absolute path in the initramfs (`/init`).
    pub path: String,
    pub source: FileSource,
    /// Permission bits; `None`: the source file's, or 0644 for bytes.
    pub mode: Option<u32>,
    pub uid: u32,
    pub gid: u32,
}

/// A directory (useful for empty mount points such as `/proc`).
#[derive(Clone, Debug)]
pub struct DirSpec {
    pub path: String,
    /// Permission bits; `None`: 0755.
    pub mode: Option<u32>,
    pub uid: u32,
    pub gid: u32,
}

/// A symbolic link `path` → `target` (target stored as written).
#[derive(Clone, Debug)]
pub struct SymlinkSpec {
    pub path: String,
    pub target: String,
}

/// Kind of a special file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// `c`
    Char,
    /// `b`
    Block,
    /// `p`
    Fifo,
}

/// A device node or FIFO (`/dev/console c 5 1`).
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub path: String,
    pub kind: NodeKind,
    pub major: u32,
    pub minor: u32,
    /// Permission bits (`0o600`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Kernel modules to pack.
#[derive(Clone, Debug)]
pub struct Modules {
    /// The modules directory of one kernel, `/lib/modules/<version>`; its
    /// last component is the version the archive uses.
    pub dir: PathBuf,
    /// Module names or aliases, each loaded after its dependencies.
    pub load: Vec<String>,
}

/// Everything an initramfs is made of.
#[derive(Clone, Debug, Default)]
pub struct InitramfsOptions {
    /// The artifact's name, for messages.
    pub name: String,
    pub files: Vec<FileSpec>,
    pub dirs: Vec<DirSpec>,
    pub symlinks: Vec<SymlinkSpec>,
    pub nodes: Vec<NodeSpec>,
    /// The tree copied in first (owners already chosen).
    pub tree: Option<Tree>,
    /// A static busybox binary for the target.
    pub busybox: Option<PathBuf>,
    /// Applets to link; `None`: read the list from the busybox binary
    /// (see [`busybox`]).
    pub applets: Option<Vec<String>>,
    pub modules: Option<Modules>,
    pub compression: Compression,
    /// Buildroot makedevs tables applied to the whole archive, in order.
    pub device_tables: Vec<PathBuf>,
    /// Ownership/mode rules applied after the device tables.
    pub rules: Vec<OwnerRule>,
}

/// Builds the tree of the archive: `from:`, busybox, modules, explicit
/// entries, then device tables and rules.
struct Assembly<'a> {
    tree: Tree,
    ctx: &'a BuildContext,
    /// Paths set by explicit entries (a second one is an error).
    explicit: BTreeSet<String>,
}

/// `/usr/bin/x`, `usr/bin/x/` → `usr/bin/x`; refuses `..`, `.` and empty.
fn archive_path(path: &str) -> Result<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|p| *p == "." || *p == "..") {
        bail!("'{path}' is not a usable path in an initramfs (use an absolute path without '.' or '..')");
    }
    Ok(parts.join("/"))
}

/// The parent of an archive path (`a/b` → `a`, `a` → ``).
fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

impl Assembly<'_> {
    fn now(&self) -> Timestamp {
        self.tree.build_time()
    }

    /// Creates the parents of `path`; a parent that is not a directory is
    /// an error naming both.
    fn parents(&mut self, path: &str) -> Result<()> {
        let parent = parent_of(path);
        if parent.is_empty() {
            return Ok(());
        }
        self.tree.mkdir_all(parent).map_err(|_| {
            anyhow::anyhow!("'/{path}' is placed below '/{parent}', which is not a directory")
        })?;
        Ok(())
    }

    fn exists(&self, path: &str) -> Result<bool> {
        Ok(self.tree.lookup(path)?.is_some())
    }

    /// Adds (or replaces) the non-directory `node` at `path`.
    fn put(&mut self, path: &str, node: Node) -> Result<()> {
        self.parents(path)?;
        if let Some(id) = self.tree.lookup(path)? {
            if self.tree.node(id).is_dir() {
                bail!("'/{path}' is a directory and cannot be replaced by a file");
            }
        }
        self.tree.insert(path, node)?;
        Ok(())
    }

    /// Marks `path` as explicitly declared.
    fn declare(&mut self, path: &str) -> Result<()> {
        if !self.explicit.insert(path.to_string()) {
            bail!("'/{path}' is declared twice");
        }
        Ok(())
    }

    fn file_node(&self, source: &FileSource, mode: Option<u32>) -> Result<Node> {
        let (size, src_mode, mtime) = match source {
            FileSource::Bytes(b) => (b.len() as u64, None, self.now()),
            FileSource::Path(p) => {
                let md = std::fs::metadata(p)
                    .with_context(|| format!("reading metadata of '{}'", p.display()))?;
                if !md.is_file() {
                    bail!("'{}' is not a regular file", p.display());
                }
                let mtime = Timestamp {
                    sec: md.mtime(),
                    nsec: u32::try_from(md.mtime_nsec()).unwrap_or(0),
                };
                (
                    md.len(),
                    Some(md.permissions().mode()),
                    mtime.clamped(self.ctx),
                )
            }
        };
        let kind = TreeKind::File {
            source: source.clone(),
            size,
        };
        Ok(Node::new(
            kind,
            mode.or(src_mode).unwrap_or(FILE_MODE),
            mtime,
        ))
    }

    fn add_busybox(&mut self, bin: &Path, applets: Option<&Vec<String>>) -> Result<()> {
        let data = std::fs::read(bin).with_context(|| format!("reading '{}'", bin.display()))?;
        let list = match applets {
            Some(list) => list.clone(),
            None => busybox::applets_in(&data).with_context(|| {
                format!(
                    "finding the applet list in '{}' (no \"[\" applet table); list the applets explicitly",
                    bin.display()
                )
            })?,
        };
        let mut node = self.file_node(&FileSource::Bytes(Arc::new(data)), None)?;
        node.mode = DIR_MODE;
        if let Ok(md) = std::fs::metadata(bin) {
            node.mtime = Timestamp {
                sec: md.mtime(),
                nsec: 0,
            }
            .clamped(self.ctx);
        }
        // Busybox never displaces a file of the tree (its own `sh`...).
        if !self.exists("bin/busybox")? {
            self.put("bin/busybox", node)?;
        }
        for applet in list.iter().filter(|a| a.as_str() != "busybox") {
            if applet.is_empty() || applet.contains('/') {
                bail!("'{applet}' is not an applet name");
            }
            let path = format!("bin/{applet}");
            if !self.exists(&path)? {
                let link = TreeKind::Symlink {
                    target: b"busybox".to_vec(),
                };
                self.put(&path, Node::new(link, LINK_MODE, self.now()))?;
            }
        }
        Ok(())
    }

    fn add_modules(&mut self, spec: &Modules) -> Result<()> {
        let dir = &spec.dir;
        let Some(version) = dir.file_name().and_then(|v| v.to_str()) else {
            bail!("'{}' does not end in a kernel version", dir.display());
        };
        let idx = modules::ModuleIndex::load(dir)?;
        let order = idx.resolve(&spec.load, dir)?;
        let plain =
            |p: &str| compress::module_compression(p).map_or_else(|| p.to_string(), |(_, n)| n);
        let mut load_order = String::new();
        for rel in &order {
            let src = dir.join(rel);
            let data = std::fs::read(&src)
                .with_context(|| format!("reading module '{}'", src.display()))?;
            let (how, plain_rel) =
                compress::module_compression(rel).unwrap_or((Compression::None, rel.clone()));
            let data = compress::decompress(&data, how)
                .with_context(|| format!("decompressing module '{}'", src.display()))?;
            let path = format!("lib/modules/{version}/{plain_rel}");
            load_order.push_str(&format!("/{path}\n"));
            let node = self.file_node(&FileSource::Bytes(Arc::new(data)), None)?;
            self.put(&path, node)?;
        }
        let dep = idx.dep_lines(&order, plain);
        let node = self.file_node(&FileSource::Bytes(Arc::new(dep.into_bytes())), None)?;
        self.put(&format!("lib/modules/{version}/modules.dep"), node)?;
        let node = self.file_node(&FileSource::Bytes(Arc::new(load_order.into_bytes())), None)?;
        self.put(MODULES_LOAD_ORDER, node)?;
        Ok(())
    }

    fn add_explicit(&mut self, opts: &InitramfsOptions) -> Result<()> {
        for d in &opts.dirs {
            let path = archive_path(&d.path)?;
            self.declare(&path)?;
            let id = self.tree.mkdir_all(&path).map_err(|_| {
                anyhow::anyhow!("'{}' or one of its parents is not a directory", d.path)
            })?;
            let node = self.tree.node_mut(id);
            node.mode = d.mode.unwrap_or(DIR_MODE);
            (node.uid, node.gid) = (d.uid, d.gid);
        }
        for s in &opts.symlinks {
            let path = archive_path(&s.path)?;
            self.declare(&path)?;
            if s.target.is_empty() {
                bail!("symlink '{}' has an empty target", s.path);
            }
            let kind = TreeKind::Symlink {
                target: s.target.clone().into_bytes(),
            };
            let node = Node::new(kind, LINK_MODE, self.now());
            self.put(&path, node)?;
        }
        for n in &opts.nodes {
            let path = archive_path(&n.path)?;
            self.declare(&path)?;
            let kind = match n.kind {
                NodeKind::Char => TreeKind::CharDev {
                    major: n.major,
                    minor: n.minor,
                },
                NodeKind::Block => TreeKind::BlockDev {
                    major: n.major,
                    minor: n.minor,
                },
                NodeKind::Fifo => TreeKind::Fifo,
            };
            let mut node = Node::new(kind, n.mode, self.now());
            (node.uid, node.gid) = (n.uid, n.gid);
            self.put(&path, node)?;
        }
        for f in &opts.files {
            let path = archive_path(&f.path)?;
            self.declare(&path)?;
            let mut node = self
                .file_node(&f.source, f.mode)
                .with_context(|| format!("adding '{}'", f.path))?;
            if path == "init" {
                node.mode |= EXEC_BITS;
            }
            (node.uid, node.gid) = (f.uid, f.gid);
            self.put(&path, node)?;
        }
        Ok(())
    }
}

/// The uncompressed archive's members, in tree order, parents included.
fn collect(opts: &InitramfsOptions, ctx: &BuildContext) -> Result<Vec<Entry>> {
    let tree = match &opts.tree {
        Some(tree) => tree.clone(),
        None => Tree::empty(ctx),
    };
    let mut a = Assembly {
        tree,
        ctx,
        explicit: BTreeSet::new(),
    };
    if let Some(bin) = &opts.busybox {
        a.add_busybox(bin, opts.applets.as_ref())
            .context("adding busybox")?;
    }
    if let Some(spec) = &opts.modules {
        a.add_modules(spec).context("adding kernel modules")?;
    }
    a.add_explicit(opts)?;
    for table in &opts.device_tables {
        a.tree.apply_device_table(table)?;
    }
    a.tree.apply_rules(&opts.rules)?;

    let walk = a.tree.walk();
    let links = a.tree.link_counts();
    // Of a hard-linked file, the path that sorts last carries the data
    // (newc's convention); the file is read once.
    let mut data_path: HashMap<usize, &[u8]> = HashMap::new();
    for (path, id) in &walk {
        if let TreeKind::File { size, .. } = &a.tree.node(*id).kind {
            if *size > NEWC_MAX_FILE {
                bail!(
                    "'{}' is {}, more than a cpio newc member holds ({}); leave it out of the initramfs or put it on a filesystem",
                    String::from_utf8_lossy(path),
                    crate::units::human(*size),
                    crate::units::human(NEWC_MAX_FILE)
                );
            }
            if links[*id] > 1 {
                let last = data_path.entry(*id).or_insert(path);
                if path.as_slice() > *last {
                    *last = path;
                }
            }
        }
    }
    let mut out = Vec::new();
    for (path, id) in &walk {
        let id = *id;
        let node = a.tree.node(id);
        let path = path.strip_prefix(b"/").unwrap_or(path).to_vec();
        let mut link = None;
        let (data, rdev) = match &node.kind {
            TreeKind::File { .. } => {
                let carries = match data_path.get(&id) {
                    Some(last) => {
                        link = Some(id as u64);
                        last.strip_prefix(b"/") == Some(path.as_slice())
                    }
                    None => true,
                };
                let data = if carries {
                    a.tree.read_file(id)?.as_ref().clone()
                } else {
                    Vec::new()
                };
                (data, (0, 0))
            }
            TreeKind::Symlink { target } => (target.clone(), (0, 0)),
            TreeKind::CharDev { major, minor } | TreeKind::BlockDev { major, minor } => {
                (Vec::new(), (*major, *minor))
            }
            TreeKind::Dir { .. } | TreeKind::Fifo | TreeKind::Socket => (Vec::new(), (0, 0)),
        };
        out.push(Entry {
            path,
            mode: node.st_mode(),
            uid: node.uid,
            gid: node.gid,
            // newc times are unsigned 32-bit: clamped, not wrapped.
            mtime: u64::try_from(node.mtime.sec.clamp(0, i64::from(u32::MAX))).unwrap_or(0),
            rdev,
            data,
            link,
        });
    }
    Ok(out)
}

/// Builds the compressed archive.
pub fn build(opts: &InitramfsOptions, ctx: &BuildContext) -> Result<Vec<u8>> {
    let run = || -> Result<Vec<u8>> {
        let mut entries = collect(opts, ctx)?;
        let count = entries.len();
        let archive = newc::write_archive(&mut entries)?;
        let packed = compress::compress(&archive, opts.compression)?;
        tracing::info!(
            "initramfs({}): {count} members, {} bytes, {} {} bytes",
            opts.name,
            archive.len(),
            opts.compression,
            packed.len()
        );
        Ok(packed)
    };
    run().with_context(|| format!("building initramfs '{}'", opts.name))
}

/// A built initramfs as region content (or the bytes of a file elsewhere).
#[derive(Clone, Debug)]
pub struct Initramfs {
    bytes: Arc<Vec<u8>>,
}

impl Initramfs {
    /// Builds the archive described by `opts`.
    pub fn prepare(opts: &InitramfsOptions, ctx: &BuildContext) -> Result<Initramfs> {
        Ok(Initramfs {
            bytes: Arc::new(build(opts, ctx)?),
        })
    }

    /// The compressed archive, shareable as `FileSource::Bytes`.
    pub fn bytes(&self) -> Arc<Vec<u8>> {
        Arc::clone(&self.bytes)
    }
}

impl Content for Initramfs {
    fn min_size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn write(&self, window: &mut Window<'_>) -> Result<()> {
        window.write_at(&self.bytes, 0).context("writing initramfs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::tree::{self, OwnerChoice, TreeOptions};
    use crate::ids::Seed;
    use std::os::unix::ffi::OsStrExt;
    use std::process::{Command, Stdio};

    fn ctx(epoch: Option<u64>) -> BuildContext {
        BuildContext {
            seed: Seed("test".into()),
            source_date_epoch: epoch,
        }
    }

    fn have(tool: &str) -> bool {
        let ok = Command::new(tool).arg("--version").output().is_ok();
        if !ok {
            assert!(std::env::var_os("CI").is_none(), "{tool} is missing in CI");
            eprintln!("note: {tool} not installed; skipping");
        }
        ok
    }

    fn bytes(s: &str) -> FileSource {
        FileSource::Bytes(Arc::new(s.as_bytes().to_vec()))
    }

    /// `dir` scanned as `compose::prepare` does (owners root by default;
    /// no xattrs: newc has none).
    fn scanned(dir: &Path) -> Option<Tree> {
        scanned_at(dir, Some(86_400))
    }

    fn scanned_at(dir: &Path, epoch: Option<u64>) -> Option<Tree> {
        let mut t = tree::scan(dir, &TreeOptions { xattrs: false }, &ctx(epoch)).unwrap();
        t.apply_owners(&OwnerChoice::default(), "test");
        Some(t)
    }

    fn sample(dir: &Path) -> InitramfsOptions {
        std::fs::create_dir_all(dir.join("tree/etc")).unwrap();
        std::fs::write(dir.join("tree/etc/hostname"), "box\n").unwrap();
        std::fs::write(dir.join("tree/etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
        std::fs::write(dir.join("init.sh"), "#!/bin/sh\necho hi\n").unwrap();
        InitramfsOptions {
            name: "test".into(),
            tree: scanned(&dir.join("tree")),
            files: vec![
                FileSpec {
                    path: "/init".into(),
                    source: FileSource::Path(dir.join("init.sh")),
                    mode: None,
                    uid: 0,
                    gid: 0,
                },
                FileSpec {
                    path: "/etc/hostname".into(),
                    source: bytes("device\n"),
                    mode: Some(0o600),
                    uid: 1000,
                    gid: 100,
                },
            ],
            dirs: vec![DirSpec {
                path: "/proc".into(),
                mode: Some(0o555),
                uid: 0,
                gid: 0,
            }],
            symlinks: vec![SymlinkSpec {
                path: "/sbin/init".into(),
                target: "../init".into(),
            }],
            nodes: vec![NodeSpec {
                path: "/dev/console".into(),
                kind: NodeKind::Char,
                major: 5,
                minor: 1,
                mode: 0o600,
                uid: 0,
                gid: 0,
            }],
            compression: Compression::None,
            ..Default::default()
        }
    }

    /// GNU cpio's verbose listing of an archive on stdin.
    fn cpio_list(archive: &[u8], decompress: Option<&str>) -> String {
        let mut cmd = match decompress {
            Some(tool) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("{tool} -dc | cpio -itvn --quiet")]);
                c
            }
            None => {
                let mut c = Command::new("cpio");
                c.args(["-itvn", "--quiet"]);
                c
            }
        };
        let mut child = cmd
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = archive.to_vec();
        let feeder = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &data));
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn gnu_cpio_lists_every_member_with_its_type_owner_and_mode() {
        if !have("cpio") {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let a = build(&sample(d.path()), &ctx(Some(86_400))).unwrap();
        let listing = cpio_list(&a, None);
        let lines: Vec<String> = listing
            .lines()
            .map(|l| {
                // perms, links, owner, group, size or "major, minor", "Jan 2 1970", name.
                let w: Vec<&str> = l.split_whitespace().collect();
                let name_at = w.iter().position(|x| *x == "1970").unwrap() + 1;
                format!("{} {} {} {}", w[0], w[2], w[3], w[name_at..].join(" "))
            })
            .collect();
        assert_eq!(
            lines,
            [
                "drwxr-xr-x 0 0 dev",
                "crw------- 0 0 dev/console",
                "drwxr-xr-x 0 0 etc",
                "-rw------- 1000 100 etc/hostname",
                "-rw-r--r-- 0 0 etc/passwd",
                "-rwxr-xr-x 0 0 init",
                "dr-xr-xr-x 0 0 proc",
                "drwxr-xr-x 0 0 sbin",
                "lrwxrwxrwx 0 0 sbin/init -> ../init",
            ],
            "{listing}"
        );
        assert!(
            listing.lines().all(|l| l.contains("Jan  2  1970")),
            "{listing}"
        );
    }

    #[test]
    fn gnu_cpio_extracts_the_same_contents() {
        if !have("cpio") {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let a = build(&sample(d.path()), &ctx(Some(86_400))).unwrap();
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(d.path().join("a.cpio"), &a).unwrap();
        // -idv without device nodes (creating them needs privileges the CI may lack).
        let st = Command::new("sh")
            .current_dir(&out)
            .arg("-c")
            .arg("cpio -id --quiet --no-absolute-filenames --nonmatching 'dev/console' < ../a.cpio")
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(
            std::fs::read_to_string(out.join("etc/hostname")).unwrap(),
            "device\n"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("init")).unwrap(),
            "#!/bin/sh\necho hi\n"
        );
        assert_eq!(
            std::fs::read_link(out.join("sbin/init")).unwrap(),
            Path::new("../init")
        );
    }

    #[test]
    fn hard_links_are_stored_once_and_extracted_as_links() {
        if !have("cpio") {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        std::fs::create_dir_all(tree.join("bin")).unwrap();
        let data = vec![0x5au8; 200_000];
        std::fs::write(tree.join("bin/tool"), &data).unwrap();
        for name in ["a", "z", "bin/alias"] {
            std::fs::hard_link(tree.join("bin/tool"), tree.join(name)).unwrap();
        }
        let opts = InitramfsOptions {
            tree: scanned(&tree),
            compression: Compression::None,
            ..Default::default()
        };
        let a = build(&opts, &ctx(Some(86_400))).unwrap();
        assert!(a.len() < 2 * data.len(), "{} bytes", a.len());
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(d.path().join("a.cpio"), &a).unwrap();
        let st = Command::new("sh")
            .current_dir(&out)
            .arg("-c")
            .arg("cpio -id --quiet --no-absolute-filenames < ../a.cpio")
            .status()
            .unwrap();
        assert!(st.success());
        let ino = std::fs::metadata(out.join("a")).unwrap().ino();
        for name in ["a", "z", "bin/alias", "bin/tool"] {
            let md = std::fs::metadata(out.join(name)).unwrap();
            assert_eq!((md.ino(), md.nlink()), (ino, 4), "{name}");
            assert_eq!(std::fs::read(out.join(name)).unwrap(), data, "{name}");
        }
    }

    #[test]
    fn too_large_files_and_odd_names_are_named() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        std::fs::create_dir_all(&tree).unwrap();
        let name = std::ffi::OsStr::from_bytes(b"caf\xe9");
        std::fs::write(tree.join(name), b"latin-1").unwrap();
        let mut opts = InitramfsOptions {
            tree: scanned(&tree),
            compression: Compression::None,
            ..Default::default()
        };
        // newc names are bytes: the name is kept as it is.
        let a = build(&opts, &ctx(Some(86_400))).unwrap();
        assert!(a.windows(5).any(|w| w == b"caf\xe9\0"));
        // 4.5 GiB, sparse: refused before anything is read.
        let big = std::fs::File::create(tree.join("huge")).unwrap();
        big.set_len(4608 << 20).unwrap();
        opts.tree = scanned(&tree);
        let err = format!("{:#}", build(&opts, &ctx(None)).unwrap_err());
        assert!(
            err.contains("'/huge' is 4.5 GiB, more than a cpio newc member holds"),
            "{err}"
        );
    }

    #[test]
    fn every_compression_decodes_with_the_reference_tool() {
        if !have("cpio") {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let mut opts = sample(d.path());
        let plain = cpio_list(&build(&opts, &ctx(Some(1))).unwrap(), None);
        for (how, tool) in [
            (Compression::Gzip, "gzip"),
            (Compression::Zstd, "zstd"),
            (Compression::Xz, "xz"),
            (Compression::Lz4, "lz4"),
        ] {
            if !have(tool) {
                continue;
            }
            opts.compression = how;
            let a = build(&opts, &ctx(Some(1))).unwrap();
            assert_eq!(cpio_list(&a, Some(tool)), plain, "{how}");
        }
    }

    #[test]
    fn builds_are_reproducible_and_clamped() {
        let d = tempfile::tempdir().unwrap();
        let mut opts = sample(d.path());
        opts.compression = Compression::Gzip;
        let tree = d.path().join("tree");
        opts.tree = scanned_at(&tree, Some(1_000));
        let a = build(&opts, &ctx(Some(1_000))).unwrap();
        // Touch a source: its mtime moves, but stays above the clamp.
        std::fs::write(d.path().join("tree/etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
        opts.tree = scanned_at(&tree, Some(1_000));
        let b = build(&opts, &ctx(Some(1_000))).unwrap();
        assert_eq!(a, b);
        opts.tree = scanned_at(&tree, Some(2_000));
        let c = build(&opts, &ctx(Some(2_000))).unwrap();
        assert_ne!(a, c, "the epoch is what the times are");
    }

    #[test]
    fn explicit_entries_win_over_the_tree_but_not_over_each_other() {
        let d = tempfile::tempdir().unwrap();
        let mut opts = sample(d.path());
        let members = collect(&opts, &ctx(None)).unwrap();
        let hostname = members.iter().find(|e| e.path == b"etc/hostname").unwrap();
        assert_eq!(hostname.data, b"device\n");
        opts.symlinks.push(SymlinkSpec {
            path: "/init/".into(),
            target: "x".into(),
        });
        let err = format!("{:#}", build(&opts, &ctx(None)).unwrap_err());
        assert_eq!(err, "building initramfs 'test': '/init' is declared twice");
        opts.symlinks.pop();
        opts.dirs.push(DirSpec {
            path: "/etc/../x".into(),
            mode: None,
            uid: 0,
            gid: 0,
        });
        let err = format!("{:#}", build(&opts, &ctx(None)).unwrap_err());
        assert!(err.contains("'/etc/../x' is not a usable path"), "{err}");
        opts.dirs.pop();
        opts.files.push(FileSpec {
            path: "/init/x".into(),
            source: bytes(""),
            mode: None,
            uid: 0,
            gid: 0,
        });
        let err = format!("{:#}", build(&opts, &ctx(None)).unwrap_err());
        assert!(
            err.contains("'/init/x' is placed below '/init', which is not a directory"),
            "{err}"
        );
    }

    #[test]
    fn busybox_links_every_applet_without_displacing_the_tree() {
        let d = tempfile::tempdir().unwrap();
        let mut bin = b"\x7fELF".to_vec();
        bin.extend_from_slice(b"[\0[[\0ash\0cat\0insmod\0ls\0mount\0sh\0switch_root\0\0");
        std::fs::write(d.path().join("busybox"), &bin).unwrap();
        let mut opts = sample(d.path());
        std::fs::create_dir_all(d.path().join("tree/bin")).unwrap();
        std::fs::write(d.path().join("tree/bin/sh"), "real sh").unwrap();
        opts.tree = scanned(&d.path().join("tree"));
        opts.busybox = Some(d.path().join("busybox"));
        let members = collect(&opts, &ctx(None)).unwrap();
        let get = |p: &str| members.iter().find(|e| e.path == p.as_bytes()).unwrap();
        assert_eq!(get("bin/busybox").data, bin);
        assert_eq!(get("bin/busybox").mode & 0o111, 0o111);
        assert_eq!(get("bin/switch_root").data, b"busybox");
        assert_eq!(get("bin/[[").mode & newc::S_IFMT, newc::S_IFLNK);
        assert_eq!(get("bin/sh").data, b"real sh");
        opts.applets = Some(vec!["ls".into()]);
        let members = collect(&opts, &ctx(None)).unwrap();
        assert!(members.iter().all(|e| e.path != b"bin/cat"));
    }

    #[test]
    fn device_tables_and_rules_apply_to_the_whole_archive() {
        let d = tempfile::tempdir().unwrap();
        let mut opts = sample(d.path());
        std::fs::write(
            d.path().join("devices.txt"),
            "/dev/null c 666 0 0 1 3 - - -\n/etc/passwd f 600 0 0 - - - - -\n",
        )
        .unwrap();
        opts.device_tables.push(d.path().join("devices.txt"));
        opts.rules.push(OwnerRule {
            glob: "/init".into(),
            uid: Some(7),
            ..Default::default()
        });
        let members = collect(&opts, &ctx(Some(1))).unwrap();
        let get = |p: &str| members.iter().find(|e| e.path == p.as_bytes()).unwrap();
        assert_eq!(get("dev/null").mode, newc::S_IFCHR | 0o666);
        assert_eq!(get("dev/null").rdev, (1, 3));
        assert_eq!(get("etc/passwd").mode & 0o7777, 0o600);
        assert_eq!(get("init").uid, 7);
        opts.rules[0].glob = "/nosuch".into();
        assert!(
            collect(&opts, &ctx(Some(1))).is_err(),
            "a rule matching nothing is a typo"
        );
    }

    /// Debian's kernel modules directory (linux-image-amd64): the modules
    /// land at their paths, dependencies first in the load order.
    #[test]
    fn packs_real_debian_modules_in_load_order() {
        let Some(dir) = modules::tests::installed_modules_dir() else {
            return;
        };
        let version = dir.file_name().unwrap().to_str().unwrap().to_string();
        let opts = InitramfsOptions {
            name: "mods".into(),
            modules: Some(Modules {
                dir: dir.clone(),
                load: vec!["virtio_blk".into(), "ext4".into()],
            }),
            ..Default::default()
        };
        let members = collect(&opts, &ctx(None)).unwrap();
        let order = members
            .iter()
            .find(|e| e.path == MODULES_LOAD_ORDER.as_bytes())
            .unwrap();
        let order = String::from_utf8(order.data.clone()).unwrap();
        let lines: Vec<&str> = order.lines().collect();
        let pos = |m: &str| {
            lines
                .iter()
                .position(|l| l.ends_with(&format!("/{m}.ko")))
                .unwrap()
        };
        assert!(
            pos("jbd2") < pos("ext4") && pos("virtio") < pos("virtio_blk"),
            "{order}"
        );
        for l in &lines {
            assert!(
                l.starts_with(&format!("/lib/modules/{version}/kernel/")),
                "{l}"
            );
            let m = members
                .iter()
                .find(|e| format!("/{}", e.display()) == *l)
                .unwrap();
            assert_eq!(&m.data[..4], b"\x7fELF", "{l} is a plain ELF module");
        }
        assert!(members
            .iter()
            .any(|e| e.path == format!("lib/modules/{version}/modules.dep").as_bytes()));
    }
}
