//! Preparing contents: the description's content model turned into writers
//! whose inputs are scanned and whose minimum sizes are known.
//!
//! Artifacts are prepared once, by name, and shared by every partition and
//! file that uses them. An artifact used as a *file* inside another
//! filesystem (an initramfs on the boot partition, a root filesystem image
//! on an OS-image partition) becomes a [`FileSource`]: initramfs bytes
//! directly, a raw image by its path, a filesystem by writing it once into a
//! scratch file of the command's [`Staging`] area (removed when it ends).
//!
//! A file's `text:` with `${verity.NAME.KEY}` needs NAME prepared first:
//! the content it names is prepared on demand (an artifact, or a partition
//! later in the description), so a boot partition listed before its root
//! can carry the root's hash.

use crate::compose::reference::Reference;
use crate::config::{
    self, Content as Model, Description, FileEntry, FileRef, Filesystem, SizeSpec,
};
use crate::diag::Diagnostic;
use crate::fs::cpio::{self, Initramfs, InitramfsOptions};
use crate::fs::erofs::{self, ErofsFs, ErofsOptions};
use crate::fs::ext4::{self, Ext4Fs, Ext4Options, Features};
use crate::fs::raw::{RawImage, Zeros};
use crate::fs::squashfs::{self, SquashfsFs, SquashfsOptions};
use crate::fs::swap::{self, SwapArea, SwapOptions};
use crate::fs::tree::{self, OwnerChoice, OwnerRule, Owners, Session, Tree, TreeOptions};
use crate::fs::verity::VerityInfo;
use crate::fs::vfat::{self, VfatFs, VfatOptions};
use crate::fs::{BuildContext, Content, FileSource};
use crate::output::staging::Staging;
use crate::output::window::Window;
use crate::units::{align_up, human, ByteSize};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;

/// Sizes of standalone artifacts are rounded up to this (the largest
/// filesystem block size and the bmap block size).
pub const ARTIFACT_ALIGN: u64 = 4096;

/// One content, ready to be written.
pub enum Prepared {
    /// Nothing is written: the region stays a hole.
    Empty,
    /// Mapped zeros.
    Zero,
    Raw(RawImage),
    /// Its boot sector records the partition's start, known after planning.
    Vfat(VfatFs),
    Initramfs(Initramfs),
    Ext4(Box<Ext4Fs>),
    Squashfs(SquashfsFs),
    Erofs(ErofsFs),
    Swap(SwapArea),
}

impl Prepared {
    pub fn min_size(&self) -> u64 {
        self.content().map_or(0, |c| c.min_size())
    }

    /// The writer, `None` for an empty region.
    pub fn content(&self) -> Option<&dyn Content> {
        match self {
            Prepared::Empty => None,
            Prepared::Zero => Some(&Zeros),
            Prepared::Raw(raw) => Some(raw),
            Prepared::Vfat(fs) => Some(fs),
            Prepared::Initramfs(i) => Some(i),
            Prepared::Ext4(fs) => Some(fs.as_ref()),
            Prepared::Squashfs(fs) => Some(fs),
            Prepared::Erofs(fs) => Some(fs),
            Prepared::Swap(area) => Some(area),
        }
    }

    /// The dm-verity parameters of a content with a hash tree.
    pub fn verity(&self) -> Option<&VerityInfo> {
        match self {
            Prepared::Squashfs(fs) => fs.verity(),
            Prepared::Erofs(fs) => fs.verity(),
            _ => None,
        }
    }

    /// Whether two windows of the same length get identical bytes, so the
    /// second can be a copy of the first (not vfat: its boot sector holds
    /// the partition's start).
    pub fn is_position_independent(&self) -> bool {
        !matches!(self, Prepared::Vfat(_))
    }

    /// A short description for the plan table.
    pub fn describe(&self) -> String {
        match self {
            Prepared::Empty => "empty".into(),
            Prepared::Zero => "zeros".into(),
            Prepared::Raw(raw) => format!("image {}", raw.path().display()),
            Prepared::Vfat(_) => "vfat".into(),
            Prepared::Initramfs(_) => "initramfs".into(),
            Prepared::Ext4(fs) => match fs.options().label.as_str() {
                "" => "ext4".into(),
                label => format!("ext4 '{label}'"),
            },
            Prepared::Squashfs(fs) if fs.verity().is_some() => "squashfs + verity".into(),
            Prepared::Squashfs(_) => "squashfs".into(),
            Prepared::Erofs(fs) if fs.verity().is_some() => "erofs + verity".into(),
            Prepared::Erofs(_) => "erofs".into(),
            Prepared::Swap(_) => "swap".into(),
        }
    }

    /// Writes the content into `window`, which starts `start_sector`
    /// sectors into the disk (a FAT boot sector records it).
    pub fn write(&self, window: &mut Window<'_>, start_sector: u64) -> Result<()> {
        match self {
            Prepared::Vfat(fs) => fs.write_in_partition(window, start_sector),
            other => match other.content() {
                Some(content) => content.write(window),
                None => Ok(()),
            },
        }
    }
}

/// A prepared artifact and the size it has where it is written at its own size.
pub struct Artifact {
    pub prepared: Prepared,
    /// Standalone size and the size of partitions without their own `size`.
    pub size: u64,
}

impl Artifact {
    /// Its length as a file (standalone output, bundle): a filesystem at
    /// the artifact's size, an archive or a raw image its own bytes.
    pub fn file_size(&self) -> u64 {
        if self.is_filesystem() {
            self.size
        } else {
            self.prepared.min_size()
        }
    }

    /// A filesystem is written at the artifact's size; an archive or a raw
    /// image is its own bytes, not padded.
    pub fn is_filesystem(&self) -> bool {
        matches!(
            self.prepared,
            Prepared::Vfat(_)
                | Prepared::Ext4(_)
                | Prepared::Squashfs(_)
                | Prepared::Erofs(_)
                | Prepared::Swap(_)
        )
    }
}

/// What each partition holds, after resolving `artifact:` and `same-as:`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Use {
    /// The partition's own content, at `own[index]`.
    Own(usize),
    /// A named artifact.
    Artifact(String),
}

/// Every prepared content of a description.
pub struct Contents {
    pub artifacts: BTreeMap<String, Artifact>,
    /// Per partition, in description order.
    pub uses: Vec<Use>,
    own: Vec<Prepared>,
    /// The owners chosen for each content made from a `from:` tree, by
    /// content name (`plan` shows them).
    pub ownership: Vec<(String, OwnerChoice)>,
}

impl Contents {
    /// Every content with a dm-verity hash tree, by name: artifacts by
    /// theirs, partitions by theirs (a partition holding an artifact is
    /// listed under both), in name order.
    pub fn verity<'c>(&'c self, desc: &Description) -> BTreeMap<String, &'c VerityInfo> {
        let artifacts = self
            .artifacts
            .iter()
            .filter_map(|(name, a)| Some((name.clone(), a.prepared.verity()?)));
        let partitions = desc
            .partitions
            .iter()
            .zip(&self.uses)
            .filter_map(|(p, using)| Some((p.name.value.clone(), self.get(using).verity()?)));
        artifacts.chain(partitions).collect()
    }

    pub fn get(&self, using: &Use) -> &Prepared {
        match using {
            Use::Own(i) => &self.own[*i],
            Use::Artifact(name) => match self.artifacts.get(name) {
                Some(a) => &a.prepared,
                None => &Prepared::Empty,
            },
        }
    }
}

struct Preparer<'a> {
    desc: &'a Description,
    ctx: &'a BuildContext,
    staging: &'a mut Staging,
    /// `--reference`: the previous release (stable placement of ext4).
    reference: Option<&'a Reference>,
    artifacts: BTreeMap<String, Artifact>,
    /// Artifacts being prepared (the config rejects cycles; this guards anyway).
    busy: Vec<String>,
    /// Artifacts whose preparation failed (reported once, at the artifact).
    failed: Vec<String>,
    /// Trees already scanned, by source: A/B slots built from one rootfs
    /// scan it once.
    scanned: Vec<(PathBuf, Tree)>,
    /// The fakeroot-like session of this process and its effective uid.
    session: Option<(Session, &'static str)>,
    euid: u32,
    ownership: Vec<(String, OwnerChoice)>,
    /// Problems of the description found while preparing.
    diags: Vec<Diagnostic>,
    /// Partitions' own contents prepared so far, by partition index
    /// (some early, for a `${verity.NAME.KEY}`).
    parts: BTreeMap<usize, Prepared>,
}

/// A content that cannot be prepared because of another problem, already
/// reported (a failed artifact it holds, a reference the config rejected).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Skipped(String);

/// Writing a scratch file failed: the build failed (exit 1), the
/// description is not at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
struct ScratchFailed(anyhow::Error);

/// Why preparing stopped: problems of the description (every one found,
/// each at its place) or a failed write.
pub enum Failure {
    Input(Vec<Diagnostic>),
    Build(anyhow::Error),
}

/// Prepares every artifact and partition content of `desc`. Filesystems
/// used as files are written to scratch files of `staging`.
///
/// A problem with one content (an input that cannot be read, a rule that
/// matches nothing, options the writer refuses) does not stop the others:
/// each becomes a [`Diagnostic`] at the content's key, or at the value
/// itself when it is known ([`Located`]), and all are returned together.
/// `desc` may lack entries the config rejected; references to them are
/// skipped, not reported again.
///
/// `known` are the problems the config found: a content with one of its
/// own is not prepared (its problem is reported once, at its value).
/// `reference` is the previous release: each ext4 content is laid out
/// against its filesystem there (`compose::reference`).
pub fn prepare(
    desc: &Description,
    ctx: &BuildContext,
    staging: &mut Staging,
    known: &[Diagnostic],
    reference: Option<&Reference>,
) -> std::result::Result<Contents, Failure> {
    let mut p = Preparer {
        desc,
        ctx,
        staging,
        reference,
        artifacts: BTreeMap::new(),
        busy: Vec::new(),
        failed: Vec::new(),
        scanned: Vec::new(),
        session: detect_session(&|name| std::env::var_os(name)),
        euid: rustix::process::geteuid().as_raw(),
        ownership: Vec::new(),
        diags: Vec::new(),
        parts: BTreeMap::new(),
    };
    // By key path only: a content merged from a layer and the board has
    // its problems in either file.
    let has_problem = |content: &config::Spanned<Model>| {
        known.iter().any(|d| {
            d.key
                .strip_prefix(content.key.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    };
    for artifact in &desc.artifacts {
        if has_problem(&artifact.content) {
            p.failed.push(artifact.name.value.clone());
        } else if let Err(e) = p.artifact(&artifact.name.value) {
            p.report(e, &artifact.content)?;
        }
    }
    // `own` has one entry per partition (empty for those that hold an
    // artifact, a problem, or a same-as to a partition the config rejected).
    let mut uses = Vec::new();
    for (index, part) in desc.partitions.iter().enumerate() {
        let using = match resolve(desc, &part.content.value) {
            Some(Model::Artifact(name)) => Use::Artifact(name.value.clone()),
            Some(model) if !has_problem(&part.content) && !p.parts.contains_key(&index) => {
                match p.content(&part.name.value, model) {
                    Ok(prepared) => {
                        p.parts.insert(index, prepared);
                    }
                    Err(e) => p.report(e, &part.content)?,
                }
                Use::Own(index)
            }
            _ => Use::Own(index),
        };
        uses.push(using);
    }
    if !p.diags.is_empty() {
        return Err(Failure::Input(p.diags));
    }
    let own = (0..desc.partitions.len())
        .map(|i| p.parts.remove(&i).unwrap_or(Prepared::Empty))
        .collect();
    Ok(Contents {
        artifacts: p.artifacts,
        uses,
        own,
        ownership: p.ownership,
    })
}

/// A problem at one value of the description, raised where that value is
/// known, e.g. an owner rule that matches nothing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Located(pub Diagnostic);

/// Follows `same-as` to the content that is really meant.
pub fn resolve<'d>(desc: &'d Description, content: &'d Model) -> Option<&'d Model> {
    let mut content = content;
    for _ in 0..=desc.partitions.len() {
        match content {
            Model::SameAs(name) => content = &desc.partition(&name.value)?.content.value,
            other => return Some(other),
        }
    }
    None
}

impl Preparer<'_> {
    /// Records why `content` could not be prepared; a scratch write that
    /// failed ends preparing as a failed build.
    fn report(
        &mut self,
        e: anyhow::Error,
        content: &config::Spanned<Model>,
    ) -> std::result::Result<(), Failure> {
        if let Some(ScratchFailed(e)) = e.downcast_ref::<ScratchFailed>() {
            return Err(Failure::Build(anyhow::anyhow!("{e:#}")));
        }
        if e.chain().any(|c| c.is::<crate::input::Changed>()) {
            return Err(Failure::Build(e));
        }
        if e.downcast_ref::<Skipped>().is_some() {
            return Ok(());
        }
        match e.downcast::<Located>() {
            Ok(Located(d)) => self.diags.push(d),
            Err(e) => self.diags.push(content.diag(format!("{e:#}")).help(
                "fix the input or the option the message names; `image-composer validate` checks it without writing",
            )),
        }
        Ok(())
    }

    fn artifact(&mut self, name: &str) -> Result<()> {
        if self.artifacts.contains_key(name) {
            return Ok(());
        }
        if self.failed.iter().any(|f| f == name) {
            return Err(Skipped(format!("artifact '{name}' failed")).into());
        }
        if self.busy.iter().any(|b| b == name) {
            bail!("artifact '{name}' contains itself");
        }
        let Some(model) = self.desc.artifact(name) else {
            return Err(Skipped(format!("there is no artifact '{name}'")).into());
        };
        self.busy.push(name.to_string());
        let prepared = self.content(name, &model.content.value);
        self.busy.pop();
        let prepared = prepared.inspect_err(|_| self.failed.push(name.to_string()))?;
        let min = prepared.min_size();
        let size = sized(min, &model.size.value)?;
        if size < min {
            self.failed.push(name.to_string());
            return Err(Located(
                model
                    .size
                    .diag(format!(
                        "{} is smaller than its content, which needs {}",
                        ByteSize(size),
                        ByteSize(min)
                    ))
                    .help(format!(
                        "write a size of at least {}, or auto (the smallest that fits)",
                        ByteSize(align_up(min, ARTIFACT_ALIGN).unwrap_or(min))
                    )),
            )
            .into());
        }
        tracing::debug!(
            "artifact({name}): {} (size {:?}), at least {}, standalone size {}",
            prepared.describe(),
            model.size.value,
            human(min),
            human(size)
        );
        self.artifacts
            .insert(name.to_string(), Artifact { prepared, size });
        Ok(())
    }

    fn content(&mut self, name: &str, model: &Model) -> Result<Prepared> {
        Ok(match model {
            Model::Empty => Prepared::Empty,
            Model::Zero => Prepared::Zero,
            Model::Image(path) => Prepared::Raw(RawImage::open(&path.path, 0)?),
            Model::Fs(Filesystem::Vfat(v)) => {
                let opts = self.vfat_options(name, v)?;
                Prepared::Vfat(vfat::prepare(&opts, self.ctx)?)
            }
            Model::Fs(Filesystem::Ext4(e)) => {
                let opts = ext4_options(name, e)?;
                let tree = self.tree(name, &e.sources, &e.files, &e.ownership)?;
                let old = match self.reference {
                    Some(r) => r.ext4(name).map_err(Located)?,
                    None => None,
                };
                Prepared::Ext4(Box::new(ext4::prepare_against(
                    &opts,
                    tree.as_ref(),
                    self.ctx,
                    old.as_ref(),
                )?))
            }
            Model::Fs(Filesystem::Squashfs(q)) => {
                let defaults = SquashfsOptions::default();
                let opts = SquashfsOptions {
                    name: name.to_string(),
                    codec: q.compression.value.squashfs_codec(),
                    level: q.level.as_ref().map(|l| l.value),
                    block_size: q
                        .block_size
                        .as_ref()
                        .map_or(defaults.block_size, |b| b.value),
                    verity: q.verity.value,
                };
                let tree = self.tree(name, &q.sources, &q.files, &q.ownership)?;
                Prepared::Squashfs(squashfs::prepare(&opts, tree.as_ref(), self.ctx)?)
            }
            Model::Fs(Filesystem::Erofs(e)) => {
                let opts = ErofsOptions {
                    name: name.to_string(),
                    compression: e.compression,
                    level: e.level.as_ref().map(|l| l.value),
                    pcluster_size: e
                        .pcluster_size
                        .as_ref()
                        .map_or(ErofsOptions::default().pcluster_size, |p| p.value),
                    verity: e.verity.value,
                };
                let tree = self.tree(name, &e.sources, &e.files, &e.ownership)?;
                Prepared::Erofs(erofs::prepare(&opts, tree.as_ref(), self.ctx)?)
            }
            Model::Fs(Filesystem::Swap(w)) => {
                let opts = SwapOptions {
                    name: name.to_string(),
                    label: w
                        .label
                        .as_ref()
                        .map(|l| l.value.clone())
                        .unwrap_or_default(),
                    uuid: w.uuid.as_ref().map(|u| u.value),
                    page_size: w.page_size.as_ref().map_or(4096, |p| p.value),
                };
                Prepared::Swap(swap::prepare(&opts, self.ctx)?)
            }
            Model::Initramfs(i) => {
                let opts = self.initramfs_options(name, i)?;
                Prepared::Initramfs(Initramfs::prepare(&opts, self.ctx)?)
            }
            Model::Artifact(a) => bail!("artifact '{}' is only usable by reference", a.value),
            Model::SameAs(p) => bail!("same-as '{}' must be resolved first", p.value),
        })
    }

    /// The tree of `sources`: every `from:` directory scanned (once per
    /// build), merged in order ([`Tree::merge`]), the `exclude:` globs cut
    /// ([`Tree::exclude`]); `None` without `from:`. Every vfat, ext4,
    /// squashfs, EROFS and initramfs tree is made here.
    fn source_tree(&mut self, sources: &config::Sources) -> Result<Option<Tree>> {
        let mut merged: Option<Tree> = None;
        for from in &sources.from {
            let scanned = match self.scanned.iter().find(|(k, _)| *k == from.path) {
                Some((_, tree)) => tree.clone(),
                None => {
                    let tree =
                        tree::scan(&from.path, &TreeOptions::default(), self.ctx).map_err(|e| {
                            Located(
                                Diagnostic::new(
                                    from.span.clone(),
                                    from.key.clone(),
                                    format!("{e:#}"),
                                )
                                .help("name a readable directory"),
                            )
                        })?;
                    self.scanned.push((from.path.clone(), tree.clone()));
                    tree
                }
            };
            match &mut merged {
                None => merged = Some(scanned),
                Some(tree) => tree.merge(tree::ROOT, &scanned)?,
            }
        }
        let Some(mut tree) = merged else {
            return Ok(None);
        };
        let globs: Vec<&str> = sources.exclude.iter().map(|g| g.value.as_str()).collect();
        let used = tree.exclude(&globs);
        let before = self.diags.len();
        for (glob, used) in sources.exclude.iter().zip(used) {
            if used {
                continue;
            }
            let message = match glob.value.strip_suffix('/') {
                Some(_) => format!("\"{}\" names no directory of the tree", glob.value),
                None if sources.from.len() > 1 => {
                    format!("\"{}\" matches nothing in the merged trees", glob.value)
                }
                None => format!("\"{}\" matches nothing in the tree", glob.value),
            };
            self.diags.push(glob.diag(message).help(
                "fix the glob (`*` and `?` stay within a name, `**` spans directories; paths start at the tree's root) or remove it",
            ));
        }
        if self.diags.len() > before {
            return Err(Skipped("exclude patterns match nothing".into()).into());
        }
        Ok(Some(tree))
    }

    /// The tree of `sources` with the owners chosen for content `name`.
    fn owned_tree(
        &mut self,
        name: &str,
        sources: &config::Sources,
        own: &config::Ownership,
    ) -> Result<Option<Tree>> {
        let Some(mut tree) = self.source_tree(sources)? else {
            return Ok(None);
        };
        let choice = self.owners(name, own);
        tree.apply_owners(&choice, name);
        Ok(Some(tree))
    }

    /// The `files:` entry `entry` names a host directory: its tree (with the
    /// owners chosen for content `name`), to graft at the destination.
    fn files_dir(
        &mut self,
        name: &str,
        entry: &FileEntry,
        own: &config::Ownership,
    ) -> Result<Option<Tree>> {
        match &entry.source {
            FileRef::Path(p) if p.path.is_dir() => {
                let sources = config::Sources {
                    from: vec![p.clone()],
                    exclude: Vec::new(),
                };
                self.owned_tree(name, &sources, own)
            }
            _ => Ok(None),
        }
    }

    /// Places the `files:` of a filesystem made from a tree (ext4,
    /// squashfs, EROFS) over it, in the order written: a directory is
    /// grafted ([`Tree::graft`]), a file put at its destination (root-owned,
    /// its host mode, or 0644 for an artifact's bytes).
    fn place_files(
        &mut self,
        name: &str,
        tree: &mut Tree,
        files: &[FileEntry],
        own: &config::Ownership,
    ) -> Result<()> {
        for entry in files {
            let dest = &entry.dest.value;
            let at = |e: anyhow::Error| {
                Located(entry.dest.diag(format!("{e:#}")).help(
                    "a destination's parents must be directories (or missing); pick another path",
                ))
            };
            if let Some(sub) = self.files_dir(name, entry, own)? {
                tree.graft(dest, &sub).map_err(at)?;
                continue;
            }
            let source = self.file_source(&entry.source)?;
            let (size, mode, time) = match &source {
                FileSource::Path(p) => {
                    let meta = std::fs::metadata(p)
                        .with_context(|| format!("reading '{}'", p.display()))?;
                    let time = tree::Timestamp {
                        sec: meta.mtime(),
                        nsec: u32::try_from(meta.mtime_nsec()).unwrap_or(0),
                    }
                    .clamped(self.ctx);
                    (meta.len(), meta.mode(), time)
                }
                FileSource::Bytes(b) => (b.len() as u64, 0o644, tree.build_time()),
            };
            let node = tree::Node::new(tree::NodeKind::File { source, size }, mode, time);
            let parent = dest.rsplit_once('/').map_or("", |(p, _)| p);
            tree.mkdir_all(parent)
                .and_then(|_| tree.insert(dest, node))
                .map_err(at)?;
        }
        Ok(())
    }

    /// The source tree of a filesystem (ext4, squashfs, erofs) with ownership
    /// overrides applied; `None` for an empty filesystem without overrides.
    fn tree(
        &mut self,
        name: &str,
        sources: &config::Sources,
        files: &[FileEntry],
        own: &config::Ownership,
    ) -> Result<Option<Tree>> {
        let mut tree = match self.owned_tree(name, sources, own)? {
            Some(tree) => tree,
            None if files.is_empty() && own.device_tables.is_empty() && own.rules.is_empty() => {
                return Ok(None)
            }
            None => Tree::empty(self.ctx),
        };
        self.place_files(name, &mut tree, files, own)?;
        for table in &own.device_tables {
            tree.apply_device_table(&table.path).map_err(|e| {
                Located(
                    Diagnostic::new(table.span.clone(), table.key.clone(), format!("{e:#}"))
                        .help("fix the device table's line, or the tree it refers to"),
                )
            })?;
        }
        // One rule at a time, so that a problem is reported at its rule.
        for (rule, model) in owner_rules(own).iter().zip(&own.rules) {
            tree.apply_rules(std::slice::from_ref(rule)).map_err(|e| {
                Located(
                    model
                        .path
                        .diag(format!("{e:#}"))
                        .help("write a glob that matches a path of the tree, or remove the rule"),
                )
            })?;
        }
        Ok(Some(tree))
    }

    fn vfat_options(&mut self, name: &str, v: &config::Vfat) -> Result<VfatOptions> {
        let mut opts = VfatOptions::new(name);
        opts.label = v.label.as_ref().map(|l| l.value.clone());
        opts.fat_bits = v.fat.as_ref().map(|f| f.value);
        opts.cluster_size = v
            .cluster_size
            .as_ref()
            .map(|c| u32::try_from(c.value.bytes()))
            .transpose()
            .context("cluster size")?;
        opts.volume_id = v.volume_id.as_ref().map(|id| id.value);
        opts.sector_size = self.desc.image.sector_size.value;
        opts.tree = self.source_tree(&v.sources)?;
        for entry in &v.files {
            if let FileRef::Path(p) = &entry.source {
                if p.path.is_dir() {
                    let sources = config::Sources {
                        from: vec![p.clone()],
                        exclude: Vec::new(),
                    };
                    let sub = self
                        .source_tree(&sources)?
                        .unwrap_or_else(|| Tree::empty(self.ctx));
                    opts.tree
                        .get_or_insert_with(|| Tree::empty(self.ctx))
                        .graft(&entry.dest.value, &sub)?;
                    continue;
                }
            }
            opts.files
                .push((entry.dest.value.clone(), self.file_source(&entry.source)?));
        }
        Ok(opts)
    }

    fn initramfs_options(&mut self, name: &str, i: &config::Initramfs) -> Result<InitramfsOptions> {
        let own = &i.ownership;
        let mut opts = InitramfsOptions {
            name: name.to_string(),
            tree: self.owned_tree(name, &i.sources, own)?,
            device_tables: own.device_tables.iter().map(|t| t.path.clone()).collect(),
            rules: owner_rules(own),
            busybox: i.busybox.as_ref().map(|b| b.path.clone()),
            compression: match i.compression.value {
                config::Compression::None => cpio::Compression::None,
                config::Compression::Gzip => cpio::Compression::Gzip,
                config::Compression::Zstd => cpio::Compression::Zstd,
                config::Compression::Xz => cpio::Compression::Xz,
                config::Compression::Lz4 => cpio::Compression::Lz4,
            },
            modules: i.modules.as_ref().map(|m| cpio::Modules {
                dir: m.dir.path.clone(),
                load: m.load.iter().map(|l| l.value.clone()).collect(),
            }),
            ..Default::default()
        };
        for entry in &i.files {
            if let Some(sub) = self.files_dir(name, entry, own)? {
                opts.tree
                    .get_or_insert_with(|| Tree::empty(self.ctx))
                    .graft(&entry.dest.value, &sub)?;
                continue;
            }
            opts.files.push(cpio::FileSpec {
                path: entry.dest.value.clone(),
                source: self.file_source(&entry.source)?,
                mode: None,
                uid: 0,
                gid: 0,
            });
        }
        match &i.init {
            Some(config::Init::File(path)) => opts
                .files
                .push(init_spec(FileSource::Path(path.path.clone()))),
            Some(config::Init::Script(text)) => opts.files.push(init_spec(FileSource::Bytes(
                Arc::new(text.value.clone().into_bytes()),
            ))),
            None => {}
        }
        for dir in &i.dirs {
            opts.dirs.push(cpio::DirSpec {
                path: dir.value.clone(),
                mode: None,
                uid: 0,
                gid: 0,
            });
        }
        for link in &i.symlinks {
            opts.symlinks.push(cpio::SymlinkSpec {
                path: link.link.value.clone(),
                target: link.target.value.clone(),
            });
        }
        for node in &i.nodes {
            opts.nodes.push(cpio::NodeSpec {
                path: node.path.value.clone(),
                kind: match node.kind.value {
                    config::NodeKind::Char => cpio::NodeKind::Char,
                    config::NodeKind::Block => cpio::NodeKind::Block,
                    config::NodeKind::Fifo => cpio::NodeKind::Fifo,
                },
                major: node.major,
                minor: node.minor,
                mode: node.mode,
                uid: node.uid,
                gid: node.gid,
            });
        }
        Ok(opts)
    }

    /// Where the bytes of a file placed into a filesystem come from.
    /// The dm-verity values of the content called `name` (a partition's,
    /// else an artifact's), preparing it now if it was not yet.
    fn verity_info(&mut self, name: &str) -> Result<VerityInfo> {
        let desc = self.desc;
        let skipped = || Skipped(format!("'{name}' has no dm-verity values"));
        let prepared = match desc.partitions.iter().position(|p| p.name.value == name) {
            Some(index) => match resolve(desc, &desc.partitions[index].content.value) {
                Some(Model::Artifact(a)) => {
                    self.artifact(&a.value)?;
                    self.artifacts.get(&a.value).map(|a| &a.prepared)
                }
                Some(model) => {
                    if !self.parts.contains_key(&index) {
                        if self.busy.iter().any(|b| b == name) {
                            bail!("'{name}' refers to its own dm-verity values");
                        }
                        self.busy.push(name.to_string());
                        let prepared = self.content(name, model);
                        self.busy.pop();
                        // A failure is reported where the partition is.
                        self.parts.insert(index, prepared.map_err(|_| skipped())?);
                    }
                    self.parts.get(&index)
                }
                None => None,
            },
            None => {
                self.artifact(name)?;
                self.artifacts.get(name).map(|a| &a.prepared)
            }
        };
        Ok(prepared
            .and_then(Prepared::verity)
            .ok_or_else(skipped)?
            .clone())
    }

    fn file_source(&mut self, source: &FileRef) -> Result<FileSource> {
        let name = match source {
            FileRef::Path(p) => return Ok(FileSource::Path(p.path.clone())),
            FileRef::Text(text) => {
                let bytes = config::vars::expand_verity(&text.value, |r| {
                    let info = self.verity_info(r.name)?;
                    info.value(r.key)
                        .ok_or_else(|| anyhow::anyhow!("'{}' is not a dm-verity value", r.key))
                })?;
                return Ok(FileSource::Bytes(Arc::new(bytes.into_bytes())));
            }
            FileRef::Artifact(a) => &a.value,
        };
        self.artifact(name)?;
        let Some(artifact) = self.artifacts.get(name) else {
            bail!("there is no artifact '{name}'");
        };
        Ok(match &artifact.prepared {
            Prepared::Initramfs(i) => FileSource::Bytes(i.bytes()),
            Prepared::Raw(raw) => FileSource::Path(raw.path().to_path_buf()),
            other => {
                // A filesystem as a file: written once to a scratch file.
                let source = (|| {
                    let (file, path) = self.staging.create_scratch(name)?;
                    file.set_len(artifact.size)
                        .with_context(|| format!("sizing '{}'", path.display()))?;
                    let mut window = Window::new(&file, 0, artifact.size);
                    other.write(&mut window, 0).with_context(|| {
                        format!("writing artifact '{name}' to '{}'", path.display())
                    })?;
                    anyhow::Ok(FileSource::Path(path))
                })()
                .map_err(ScratchFailed)?;
                source
            }
        })
    }
}

impl Preparer<'_> {
    /// The owners of the content `name`'s `from:` tree, recorded for `plan`;
    /// the default's notice is logged once per content.
    fn owners(&mut self, name: &str, own: &config::Ownership) -> OwnerChoice {
        let choice = choose_owners(own, self.session, self.euid);
        tracing::debug!(
            "{name}: owners {} ({}), device tables [{}], {} rule(s)",
            choice.owners.name(),
            choice.reason,
            own.device_tables
                .iter()
                .map(|t| format!("'{}'", t.path.display()))
                .collect::<Vec<_>>()
                .join(", "),
            own.rules.len()
        );
        if !choice.explicit && choice.owners == Owners::Root {
            tracing::info!(
                "{name}: every file root:root, {}; set `owners: source` to keep the tree's owners",
                choice.reason
            );
        }
        if !self.ownership.iter().any(|(n, _)| n == name) {
            self.ownership.push((name.to_string(), choice.clone()));
        }
        choice
    }
}

/// The fakeroot or pseudo session this process runs in, detected from the
/// environment they set, with the evidence: fakeroot sets `FAKEROOTKEY`;
/// pseudo puts `libpseudo` in `LD_PRELOAD` and is off when
/// `PSEUDO_DISABLED=1` or `PSEUDO_UNLOAD` is set (bitbake's tasks outside
/// its fakeroot keep `LD_PRELOAD` but set one of these).
pub fn detect_session(env: &dyn Fn(&str) -> Option<OsString>) -> Option<(Session, &'static str)> {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    if set("FAKEROOTKEY") {
        return Some((Session::Fakeroot, "FAKEROOTKEY is set"));
    }
    let preload = env("LD_PRELOAD").unwrap_or_default();
    let pseudo_preloaded = preload.to_string_lossy().contains("libpseudo");
    let pseudo_off = env("PSEUDO_DISABLED").is_some_and(|v| v == "1") || set("PSEUDO_UNLOAD");
    if pseudo_preloaded && !pseudo_off {
        return Some((Session::Pseudo, "LD_PRELOAD has libpseudo"));
    }
    None
}

/// The owners a `from:` tree keeps: as written in the description, else
/// what the user means: inside fakeroot or pseudo, the tree's owners as the
/// session reports them; outside, as root, the tree's owners; outside, not
/// root, root:root.
pub fn choose_owners(
    own: &config::Ownership,
    session: Option<(Session, &'static str)>,
    euid: u32,
) -> OwnerChoice {
    let (owners, explicit, reason) = match (&own.owners, session) {
        (Some(o), _) => {
            let owners = match o.value {
                config::Owners::Root => Owners::Root,
                config::Owners::Source => Owners::Source,
            };
            (
                owners,
                true,
                format!("`{}: {}` at {}", o.key, owners.name(), o.span),
            )
        }
        (None, Some((s, why))) => (
            Owners::Source,
            false,
            format!(
                "the tree's, as the {} session reports them ({why})",
                s.name()
            ),
        ),
        (None, None) if euid == 0 => (
            Owners::Source,
            false,
            "the tree's: running as root, outside fakeroot and pseudo".to_string(),
        ),
        (None, None) => (
            Owners::Root,
            false,
            format!("as the build runs as uid {euid}, outside fakeroot and pseudo"),
        ),
    };
    OwnerChoice {
        owners,
        reason,
        explicit,
        session: session.map(|(s, _)| s),
        euid,
    }
}

/// The `rules:` of an ext4 or initramfs in the tree's vocabulary.
fn owner_rules(own: &config::Ownership) -> Vec<OwnerRule> {
    own.rules
        .iter()
        .map(|r| OwnerRule {
            glob: r.path.value.clone(),
            uid: r.uid.as_ref().map(|v| v.value),
            gid: r.gid.as_ref().map(|v| v.value),
            mode: r.mode.as_ref().map(|v| v.value),
            caps: r.caps.as_ref().map(|v| v.value.clone()),
        })
        .collect()
}

fn ext4_options(name: &str, e: &config::Ext4) -> Result<Ext4Options> {
    let defaults = Ext4Options::default();
    let features: Vec<String> = e
        .features
        .iter()
        .map(|f| {
            if f.value.enabled {
                f.value.name.clone()
            } else {
                format!("^{}", f.value.name)
            }
        })
        .collect();
    Ok(Ext4Options {
        name: name.to_string(),
        label: e
            .label
            .as_ref()
            .map(|l| l.value.clone())
            .unwrap_or_default(),
        uuid: e.uuid.as_ref().map(|u| u.value),
        hash_seed: e.hash_seed.as_ref().map(|u| u.value),
        block_size: e
            .block_size
            .as_ref()
            .map_or(defaults.block_size, |b| b.value),
        features: Features::resolve(&features).map_err(anyhow::Error::msg)?,
        journal: match e.journal.value {
            config::Journal::None => ext4::Journal::Off,
            config::Journal::Default => ext4::Journal::Default,
            config::Journal::Size(b) => ext4::Journal::Size(b.bytes()),
        },
        journal_init: match e.journal_init.value {
            config::JournalInit::Zero => ext4::JournalInit::Zero,
            config::JournalInit::Lazy => ext4::JournalInit::Lazy,
        },
        inode_ratio: e.inode_ratio.as_ref().map(|r| r.value.bytes()),
        inodes: e.inodes.as_ref().map(|n| n.value),
        reserved_percent: f64::from(e.reserved.value),
    })
}

fn init_spec(source: FileSource) -> cpio::FileSpec {
    cpio::FileSpec {
        path: "/init".into(),
        source,
        mode: Some(0o755),
        uid: 0,
        gid: 0,
    }
}

/// An artifact's own size: fixed, or its minimum plus headroom, rounded up
/// to [`ARTIFACT_ALIGN`].
pub fn sized(min: u64, size: &SizeSpec) -> Result<u64> {
    let bytes = match size {
        SizeSpec::Fixed(b) => return Ok(b.bytes()),
        SizeSpec::Auto(headroom) => min
            .checked_add(
                super::layout::headroom(*headroom)
                    .bytes(min)
                    .context("artifact size overflows")?,
            )
            .context("artifact size overflows")?,
        SizeSpec::Fill => bail!("an artifact cannot fill the disk"),
    };
    align_up(bytes, ARTIFACT_ALIGN).context("artifact size overflows")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Spanned;
    use crate::diag::Span;

    #[test]
    fn wic_extra_space_and_overhead_factor_translate_exactly() {
        // wic: (content + --extra-space 10M) * --overhead-factor 1.3;
        // here: auto +30% +13MiB (13 = 10 * 1.3).
        let min = 100 << 20;
        let spec = SizeSpec::Auto(config::Headroom::PercentAndBytes(30, ByteSize(13 << 20)));
        assert_eq!(sized(min, &spec).unwrap(), (min + (10 << 20)) * 13 / 10);
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn sessions_are_detected_from_their_environment() {
        let fakeroot = [
            ("FAKEROOTKEY", "1374054347"),
            ("LD_PRELOAD", "libfakeroot-sysv.so"),
        ];
        assert_eq!(
            detect_session(&env(&fakeroot)),
            Some((Session::Fakeroot, "FAKEROOTKEY is set"))
        );
        let pseudo = [("LD_PRELOAD", "libpseudo.so"), ("PSEUDO_PREFIX", "/usr")];
        assert_eq!(
            detect_session(&env(&pseudo)).map(|s| s.0),
            Some(Session::Pseudo)
        );
        // bitbake's tasks outside its fakeroot keep pseudo loaded but off.
        for off in [("PSEUDO_UNLOAD", "1"), ("PSEUDO_DISABLED", "1")] {
            let vars = [("LD_PRELOAD", "libpseudo.so"), off];
            assert_eq!(detect_session(&env(&vars)), None);
        }
        assert_eq!(detect_session(&env(&[("PSEUDO_PREFIX", "/usr")])), None);
        assert_eq!(detect_session(&env(&[])), None);
    }

    #[test]
    fn owners_default_to_what_the_user_means() {
        let none = config::Ownership {
            owners: None,
            device_tables: Vec::new(),
            rules: Vec::new(),
        };
        let fakeroot = Some((Session::Fakeroot, "FAKEROOTKEY is set"));
        let c = choose_owners(&none, fakeroot, 0);
        assert_eq!((c.owners, c.explicit), (Owners::Source, false));
        assert!(c.reason.contains("fakeroot session"), "{}", c.reason);
        let c = choose_owners(&none, None, 0);
        assert_eq!(c.owners, Owners::Source);
        assert!(c.reason.contains("running as root"), "{}", c.reason);
        let c = choose_owners(&none, None, 1000);
        assert_eq!(c.owners, Owners::Root);
        assert!(c.reason.contains("uid 1000"), "{}", c.reason);
        let root = config::Ownership {
            owners: Some(Spanned::new(
                config::Owners::Root,
                Span::new(Arc::new(PathBuf::from("b.yaml")), 3, 7),
                "partitions[0].fs.owners",
            )),
            ..none
        };
        let c = choose_owners(&root, Some((Session::Pseudo, "x")), 0);
        assert_eq!((c.owners, c.explicit), (Owners::Root, true));
        assert_eq!(c.reason, "`partitions[0].fs.owners: root` at b.yaml:3:7");
    }
}
