//! `image-composer bundle`: the slot contents of a description, sealed
//! into a signed update bundle (`updates::write_bundle`).
//!
//! The description's `update:` names what fills a slot: a partition
//! (`slot: rootA`, the ab-slots layer) — the bundle holds its whole planned
//! size, so that the device can compare the written partition byte for
//! byte — or an artifact (`slot-artifact: rootfs`, ab-slots-images) — the
//! bundle holds the image file as the OS-image partition would hold it.
//! Only that content is written (to a scratch file beside the bundle), not
//! the disk: a bundle costs one content write and one compression.

use super::{resolve, Error, Request};
use crate::config::UpdateSlot;
use crate::diag::{Diagnostic, Diagnostics, Span};
use crate::output::staging::Staging;
use crate::output::window::Window;
use anyhow::Context;
use bundle::SlotKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Writes `<out_dir>/<image>-<version>.bundle`; `version` wins over
/// `update.version`.
pub fn bundle(
    request: &Request,
    out_dir: &Path,
    key_path: &Path,
    version: Option<&str>,
) -> Result<PathBuf, Error> {
    let key = crate::updates::read_secret_key(key_path);
    let mut staging = Staging::for_output_dir(out_dir);
    let (desc, contents, plan, _) = resolve(request, &mut staging)?;
    let key = key?;
    let whole_file = || Span::new(desc.file.clone(), 0, 0);
    let Some(update) = &desc.update else {
        return Err(Diagnostics(vec![Diagnostic::new(whole_file(), "update", "no `update:` section: nothing says what fills a slot")
            .help("add `update: { compatible: my-board, slot: rootA }` (or use the ab-slots layer, which sets `slot`)")])
        .into());
    };
    let version = match (version, &update.version) {
        (Some(v), _) => check_version(v)?,
        (None, Some(v)) => v.value.clone(),
        (None, None) => {
            return Err(Diagnostics(vec![Diagnostic::new(
                whole_file(),
                "update.version",
                "no version for the bundle",
            )
            .help("pass --version 1.2.0, or set `update: { version: ... }`")])
            .into())
        }
    };
    let image = desc.image.name.value.clone();
    let name = format!("{image}-{version}.bundle");
    let path = out_dir.join(&name);
    let (scratch, _) = staging.create_scratch("slot")?;
    let (slot, size, verity) = match &update.slot.value {
        UpdateSlot::Partition(name) => {
            let (index, planned) = plan
                .partitions
                .iter()
                .enumerate()
                .find(|(_, p)| &p.name == name)
                .with_context(|| format!("finding partition '{name}' in the plan"))?;
            let prepared = contents.get(&contents.uses[planned.spec]);
            scratch
                .set_len(planned.size)
                .context("sizing the scratch file")?;
            let mut w = Window::new(&scratch, 0, planned.size);
            prepared
                .write(&mut w, planned.start / u64::from(plan.sector_size))
                .with_context(|| format!("writing partition '{name}' ({index}) for the bundle"))?;
            // The values `plan --json` and NAME.verity give: the device
            // stores them for the slot and opens it with them.
            let verity = prepared
                .verity()
                .map(|v| {
                    let root_hash = bundle::parse_hex32(&v.root_hash)
                        .with_context(|| format!("the root hash of '{name}'"))?;
                    anyhow::Ok(bundle::Verity {
                        root_hash,
                        hash_offset: v.hash_offset,
                    })
                })
                .transpose()?;
            (SlotKind::Partition, planned.size, verity)
        }
        UpdateSlot::Artifact(name) => {
            let artifact = contents
                .artifacts
                .get(name)
                .with_context(|| format!("finding artifact '{name}'"))?;
            let len = artifact.file_size();
            scratch.set_len(len).context("sizing the scratch file")?;
            let mut w = Window::new(&scratch, 0, len);
            artifact
                .prepared
                .write(&mut w, 0)
                .with_context(|| format!("writing artifact '{name}' for the bundle"))?;
            let file = format!("{name}-{version}.img");
            // Image files are loop-mounted, never opened through dm-verity.
            (SlotKind::File { name: file }, len, None)
        }
    };
    let labels = crate::updates::Labels {
        image,
        version,
        compatible: update.compatible.value.clone(),
        slot,
        verity,
    };
    let manifest = crate::updates::write_bundle(labels, &scratch, size, &key, &mut staging, &name)?;
    staging.commit()?;
    let bundle_size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    tracing::info!(
        "bundle: {} ({} of slot contents in {}, {} chunks)",
        path.display(),
        crate::units::human(manifest.slot_size),
        crate::units::human(bundle_size),
        manifest.chunks.len()
    );
    Ok(path)
}

/// `--version`: the manifest's rule for names.
fn check_version(v: &str) -> Result<String, Error> {
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'));
    if ok {
        Ok(v.to_string())
    } else {
        Err(Diagnostics(vec![Diagnostic::new(
            Span::new(Arc::new(PathBuf::from("command line")), 0, 0),
            "--version",
            format!("\"{v}\" is not a valid version"),
        )
        .help("use 1 to 128 letters, digits, '.', '_', '-' and '+', e.g. 1.2.0")])
        .into())
    }
}
