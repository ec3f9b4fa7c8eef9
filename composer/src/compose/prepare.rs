//! Preparing contents: the description's content model turned into writers
//! whose inputs are scanned and whose minimum sizes are known.
//!
//! Artifacts are prepared once, by name, and shared by every partition and
//! file that uses them. An artifact used as a *file* inside another
//! filesystem (an initramfs on the boot partition, a root filesystem image
//! on an OS-image partition) becomes a [`FileSource`]: initramfs bytes
//! directly, a raw image by its path, a filesystem by writing it once into a
//! scratch file next to the outputs (removed when the build ends).

use crate::config::{self, Content as Model, Description, FileRef, Filesystem, SizeSpec};
use crate::fs::cpio::{self, Initramfs, InitramfsOptions};
use crate::fs::ext4::{self, Ext4Fs, Ext4Options, Features};
use crate::fs::raw::{RawImage, Zeros};
use crate::fs::squashfs::{self, SquashfsFs, SquashfsOptions};
use crate::fs::tree::{self, OwnerRule, Tree, TreeOptions};
use crate::fs::vfat::{self, VfatFs, VfatOptions};
use crate::fs::{BuildContext, Content, FileSource};
use crate::output::atomic::PartialFile;
use crate::output::window::Window;
use crate::units::align_up;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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
            Prepared::Squashfs(_) => "squashfs".into(),
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
    /// Scratch files of filesystems placed as files; removed on drop.
    _scratch: Vec<PartialFile>,
}

impl Contents {
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
    scratch_dir: &'a Path,
    artifacts: BTreeMap<String, Artifact>,
    scratch: Vec<PartialFile>,
    /// Artifacts being prepared (the config rejects cycles; this guards anyway).
    busy: Vec<String>,
    /// Trees already scanned, by source and options: A/B slots built from
    /// one rootfs scan it once.
    scanned: Vec<((PathBuf, tree::Owners), Tree)>,
}

/// Prepares every artifact and partition content of `desc`. Filesystems
/// used as files are written to scratch files in `scratch_dir`.
pub fn prepare(desc: &Description, ctx: &BuildContext, scratch_dir: &Path) -> Result<Contents> {
    let mut p = Preparer {
        desc,
        ctx,
        scratch_dir,
        artifacts: BTreeMap::new(),
        scratch: Vec::new(),
        busy: Vec::new(),
        scanned: Vec::new(),
    };
    for artifact in &desc.artifacts {
        p.artifact(&artifact.name.value)?;
    }
    let mut own = Vec::new();
    let mut uses = Vec::new();
    for part in &desc.partitions {
        let using = match resolve(desc, &part.content.value) {
            Some(Model::Artifact(name)) => Use::Artifact(name.value.clone()),
            Some(model) => {
                let name = &part.name.value;
                own.push(
                    p.content(name, model)
                        .with_context(|| format!("preparing partition '{name}'"))?,
                );
                Use::Own(own.len() - 1)
            }
            None => bail!(
                "partition '{}' refers to itself through same-as",
                part.name.value
            ),
        };
        uses.push(using);
    }
    Ok(Contents {
        artifacts: p.artifacts,
        uses,
        own,
        _scratch: p.scratch,
    })
}

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
    fn artifact(&mut self, name: &str) -> Result<()> {
        if self.artifacts.contains_key(name) {
            return Ok(());
        }
        if self.busy.iter().any(|b| b == name) {
            bail!("artifact '{name}' contains itself");
        }
        let Some(model) = self.desc.artifact(name) else {
            bail!("there is no artifact '{name}'");
        };
        self.busy.push(name.to_string());
        let prepared = self
            .content(name, &model.content.value)
            .with_context(|| format!("preparing artifact '{name}'"))?;
        self.busy.pop();
        let size = sized(prepared.min_size(), &model.size.value)?;
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
                let tree = self.tree(e.from.as_ref(), &e.ownership)?;
                Prepared::Ext4(Box::new(ext4::prepare(&opts, tree.as_ref(), self.ctx)?))
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
                };
                let tree = self.tree(q.from.as_ref(), &q.ownership)?;
                Prepared::Squashfs(squashfs::prepare(&opts, tree.as_ref(), self.ctx)?)
            }
            Model::Initramfs(i) => {
                let opts = self.initramfs_options(name, i)?;
                Prepared::Initramfs(Initramfs::prepare(&opts, self.ctx)?)
            }
            Model::Artifact(a) => bail!("artifact '{}' is only usable by reference", a.value),
            Model::SameAs(p) => bail!("same-as '{}' must be resolved first", p.value),
        })
    }

    /// The source tree of a filesystem (ext4, squashfs) with ownership
    /// overrides applied; `None` for an empty filesystem without overrides.
    fn tree(
        &mut self,
        from: Option<&config::InputPath>,
        own: &config::Ownership,
    ) -> Result<Option<Tree>> {
        let mut tree = match from {
            Some(from) => {
                let key = (from.path.clone(), owners(own));
                match self.scanned.iter().find(|(k, _)| *k == key) {
                    Some((_, tree)) => tree.clone(),
                    None => {
                        let opts = TreeOptions {
                            owners: key.1,
                            ..TreeOptions::default()
                        };
                        let tree = tree::scan(&from.path, &opts, self.ctx)?;
                        self.scanned.push((key, tree.clone()));
                        tree
                    }
                }
            }
            None if own.device_tables.is_empty() && own.rules.is_empty() => return Ok(None),
            None => Tree::empty(self.ctx),
        };
        for table in &own.device_tables {
            tree.apply_device_table(&table.path)?;
        }
        let rules = owner_rules(own);
        if !rules.is_empty() {
            tree.apply_rules(&rules)?;
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
        opts.from = v.from.as_ref().map(|f| f.path.clone());
        for entry in &v.files {
            opts.files
                .push((entry.dest.value.clone(), self.file_source(&entry.source)?));
        }
        Ok(opts)
    }

    fn initramfs_options(&mut self, name: &str, i: &config::Initramfs) -> Result<InitramfsOptions> {
        let own = &i.ownership;
        let mut opts = InitramfsOptions {
            name: name.to_string(),
            owners: owners(own),
            device_tables: own.device_tables.iter().map(|t| t.path.clone()).collect(),
            rules: owner_rules(own),
            from: i.from.as_ref().map(|f| f.path.clone()),
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
    fn file_source(&mut self, source: &FileRef) -> Result<FileSource> {
        let name = match source {
            FileRef::Path(p) => return Ok(FileSource::Path(p.path.clone())),
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
                // A filesystem as a file: write it once to a scratch file,
                // named per process so that parallel runs sharing a
                // directory (`validate` in the temp dir) never collide.
                let pid = std::process::id();
                let path = self.scratch_dir.join(format!(".{name}.{pid}.artifact"));
                let file = PartialFile::create(&path)
                    .with_context(|| format!("creating scratch file '{}'", path.display()))?;
                file.file().set_len(artifact.size)?;
                let mut window = Window::new(file.file(), 0, artifact.size);
                other.write(&mut window, 0).with_context(|| {
                    format!("writing artifact '{name}' to '{}'", path.display())
                })?;
                let source = FileSource::Path(file.partial_path().to_path_buf());
                self.scratch.push(file);
                source
            }
        })
    }
}

fn owners(own: &config::Ownership) -> tree::Owners {
    match own.owners.value {
        config::Owners::Root => tree::Owners::Root,
        config::Owners::Source => tree::Owners::Source,
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
            .checked_add(headroom_bytes(min, headroom))
            .context("artifact size overflows")?,
        SizeSpec::Fill => bail!("an artifact cannot fill the disk"),
    };
    align_up(bytes, ARTIFACT_ALIGN).context("artifact size overflows")
}

pub fn headroom_bytes(min: u64, headroom: &config::Headroom) -> u64 {
    match headroom {
        config::Headroom::None => 0,
        config::Headroom::Bytes(b) => b.bytes(),
        config::Headroom::Percent(p) => {
            u64::try_from((u128::from(min) * u128::from(*p)).div_ceil(100)).unwrap_or(u64::MAX)
        }
    }
}

/// The path of a scratch directory for commands that write no outputs.
pub fn temp_scratch_dir() -> PathBuf {
    std::env::temp_dir()
}
