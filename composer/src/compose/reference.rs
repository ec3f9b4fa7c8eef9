//! `--reference OLD`: the previous release, whose ext4 filesystems the
//! new build keeps unchanged files in place of (stable placement,
//! docs/ext4.md).
//!
//! Which filesystem of OLD a content of the description is laid out
//! against, by what OLD is:
//!
//! - a full bundle (`image-composer bundle`): its slot contents are the
//!   reference of the content that fills the description's update slot
//!   (`update.slot` / `update.slot-artifact`, through `same-as`);
//! - a disk image with a GPT (`image-composer build`'s `NAME.img`): each
//!   partition of the description is laid out against the partition of the
//!   same name (GPT partition name) in OLD;
//! - a bare ext4 image (an artifact such as `rootfs.ext4`): like a bundle,
//!   the update slot's content, or else the artifact or partition of that
//!   file's name without extension.
//!
//! Anything else, and a matched partition that is not an ext4 filesystem
//! this reader understands, is a problem at `--reference` (exit 2). A
//! content with no match, or of another kind (squashfs, EROFS, vfat), is
//! laid out as without a reference. Rejected: matching by position or by
//! filesystem UUID (positions move when a partition is added; the UUID of
//! `same-as` slots is shared).

use crate::config::{Content as Model, Description, UpdateSlot};
use crate::diag::{Diagnostic, Diagnostics, Span};
use crate::fs::ext4::OldFs;
use crate::output::staging::Staging;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The opened reference: which content names map to which bytes of it.
pub struct Reference {
    path: PathBuf,
    file: File,
    /// (content name, byte offset, length).
    parts: Vec<(String, u64, u64)>,
}

/// A problem at `--reference`.
pub fn problem(path: &Path, message: String) -> Diagnostic {
    Diagnostic::new(
        Span::new(Arc::new(PathBuf::from("command line")), 0, 0),
        "--reference",
        format!("'{}': {message}", path.display()),
    )
    .help(
        "pass the previous release's image (NAME.img) or full bundle, or build without --reference",
    )
}

/// "EXT4 magic at byte 1080".
fn is_ext4(file: &File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut magic = [0u8; 2];
    file.read_exact_at(&mut magic, 1080).is_ok() && magic == [0x53, 0xEF]
}

/// The name of the content that fills the update slot, through `same-as`.
fn slot_content(desc: &Description) -> Option<String> {
    let update = desc.update.as_ref()?;
    match &update.slot.value {
        UpdateSlot::Artifact(name) => Some(name.clone()),
        UpdateSlot::Partition(name) => {
            let mut name = name.clone();
            for _ in 0..=desc.partitions.len() {
                match &desc.partition(&name)?.content.value {
                    Model::SameAs(other) => name = other.value.clone(),
                    Model::Artifact(a) => return Some(a.value.clone()),
                    _ => return Some(name),
                }
            }
            None
        }
    }
}

impl Reference {
    /// Opens `path` and decides what it is; a bundle is checked and
    /// unpacked into a scratch file of `staging`.
    pub fn open(
        path: &Path,
        desc: &Description,
        staging: &mut Staging,
    ) -> Result<Reference, super::Error> {
        let bad = |m: String| super::Error::Input(Diagnostics(vec![problem(path, m)]));
        let file = File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
        let mut head = [0u8; 8];
        let is_bundle = {
            use std::os::unix::fs::FileExt;
            file.read_exact_at(&mut head, 0).is_ok() && &head == b"ICBUNDLE"
        };
        let len = file.metadata().map_err(|e| bad(e.to_string()))?.len();
        let slot = slot_content(desc);
        if is_bundle {
            let manifest = crate::updates::read_manifest(path, "--reference")?;
            if manifest.image != desc.image.name.value {
                return Err(bad(format!(
                    "it is a bundle of image '{}', this description builds '{}'",
                    manifest.image, desc.image.name.value
                )));
            }
            let Some(slot) = slot else {
                return Err(bad(
                    "it is a bundle, and the description has no `update:` slot it would be the old contents of".into(),
                ));
            };
            let unpacked = crate::updates::unpack(staging, path, &manifest)?;
            return Ok(Reference {
                path: path.to_path_buf(),
                file: unpacked,
                parts: vec![(slot, 0, manifest.slot_size)],
            });
        }
        if let Some(found) = crate::ptable::gpt::read_partitions(&file)
            .map_err(|e| bad(format!("reading its partition table: {e}")))?
        {
            let parts = found
                .into_iter()
                .filter(|p| p.offset.saturating_add(p.size) <= len)
                .map(|p| (p.name, p.offset, p.size))
                .collect();
            return Ok(Reference {
                path: path.to_path_buf(),
                file,
                parts,
            });
        }
        if is_ext4(&file) {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let name = slot.unwrap_or(stem);
            return Ok(Reference {
                path: path.to_path_buf(),
                file,
                parts: vec![(name, 0, len)],
            });
        }
        Err(bad(
            "it is neither a bundle, a disk image with a GPT, nor an ext4 filesystem".into(),
        ))
    }

    /// The old ext4 filesystem of the content `name`, if the reference has
    /// one for it; a match that is not a readable ext4 is a problem.
    pub fn ext4(&self, name: &str) -> Result<Option<OldFs>, Diagnostic> {
        let Some((_, offset, len)) = self.parts.iter().find(|p| p.0 == name) else {
            tracing::info!("ext4({name}): the reference has no '{name}': laid out without it");
            return Ok(None);
        };
        let file = self
            .file
            .try_clone()
            .map_err(|e| problem(&self.path, format!("reopening: {e}")))?;
        OldFs::read(file, *offset, *len).map(Some).map_err(|e| {
            problem(
                &self.path,
                format!("its '{name}' is not an ext4 filesystem this build can follow: {e:#}"),
            )
        })
    }
}
