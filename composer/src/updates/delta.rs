//! `image-composer delta --from OLD --to NEW`: a signed bundle that carries
//! only what the new slot contents lack from the old ones, as the ops of
//! the bundle crate's delta format (copy from the base, zeros, literal
//! bytes), naming the old slot contents (size, SHA-256) as its base.
//!
//! Matching: the new contents are cut into 4 KiB blocks (`BLOCK_BYTES`,
//! the ext4 block: a file's data starts on a block boundary, so a file that
//! moved is still found block by block); each block is zeros, the block
//! that continues the previous copy, the block at the same offset of the
//! base, or any base block with the same SHA-256, in that order; else its
//! bytes are carried. The ops are compressed like a full bundle's payload.
//! Measured against content-defined chunking in docs/updates.md ("Why 4
//! KiB blocks"): on block-aligned filesystem images CDC's chunks straddle
//! file boundaries and carry more.
//!
//! Both bundles are read through the bundle crate (every chunk and the
//! slot hash checked), their slot contents kept in scratch files beside
//! the output; memory: one SHA-256 per base block (8 MiB per GiB of slot).

use super::{compress, seal_into, CHUNK_BYTES};
use crate::compose::Error;
use crate::diag::Diagnostics;
use crate::output::staging::Staging;
use anyhow::Context;
use bundle::{Base, Manifest};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The ext4 block size image-composer writes (fs/ext4).
const BLOCK_BYTES: usize = 4096;

/// Writes the delta bundle from `from` to `to` into `out_dir`.
pub fn delta(from: &Path, to: &Path, out_dir: &Path, key_path: &Path) -> Result<PathBuf, Error> {
    let key = super::read_secret_key(key_path);
    let old = read_manifest(from, "--from");
    let new = read_manifest(to, "--to");
    let (key, old, new) = match (key, old, new) {
        (Ok(k), Ok(o), Ok(n)) => (k, o, n),
        (k, o, n) => {
            let mut all = Vec::new();
            for d in [k.err(), o.err(), n.err()].into_iter().flatten() {
                all.extend(d.0);
            }
            return Err(crate::diag::Diagnostics(all).into());
        }
    };
    let mismatch = [
        ("image", &old.image, &new.image),
        ("compatible", &old.compatible, &new.compatible),
    ]
    .into_iter()
    .find(|(_, a, b)| a != b);
    if let Some((what, a, b)) = mismatch {
        return Err(Diagnostics::about_file(
            to,
            "--to",
            format!("its {what} is '{b}', the --from bundle's is '{a}'"),
            "make a delta between two releases of the same image",
        )
        .into());
    }
    if std::mem::discriminant(&old.slot) != std::mem::discriminant(&new.slot) {
        return Err(Diagnostics::about_file(
            to,
            "--to",
            "its slot kind (partition or image file) differs from the --from bundle's",
            "make a delta between two releases of the same image",
        )
        .into());
    }
    let mut staging = Staging::for_output_dir(out_dir);
    let base = unpack(&mut staging, from, &old)?;
    let target = unpack(&mut staging, to, &new)?;
    let index = index_blocks(&base, old.slot_size)?;
    let mut stats = bundle::DeltaStats::default();
    let payload = compress(&mut staging, None, |out| {
        stats = write_ops(out, &index, &target, new.slot_size)?;
        Ok(())
    })?;
    let manifest = Manifest {
        base: Some(Base {
            version: old.version.clone(),
            size: old.slot_size,
            sha256: old.slot_sha256,
        }),
        payload_size: payload.size,
        chunk_size: CHUNK_BYTES,
        chunks: payload.chunks,
        ..new
    };
    let name = format!(
        "{}-{}-from-{}.bundle",
        manifest.image, manifest.version, old.version
    );
    seal_into(&mut staging, &name, &manifest, &payload.path, &key)?;
    staging.commit()?;
    let path = out_dir.join(&name);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    tracing::info!(
        "delta: {} ({} from {} to {}: {} carried, {} copied from the base, {} zeros; {})",
        path.display(),
        manifest.image,
        old.version,
        manifest.version,
        crate::units::human(stats.literal),
        crate::units::human(stats.copied),
        crate::units::human(stats.zeroed),
        crate::units::human(size)
    );
    Ok(path)
}

/// The manifest of the full bundle at `path` (named on the command line
/// as `arg`), not a delta.
pub(crate) fn read_manifest(path: &Path, arg: &str) -> Result<Manifest, crate::diag::Diagnostics> {
    let problem = |what: String| {
        Diagnostics::about_file(
            path,
            arg,
            what,
            "pass a full bundle written by `image-composer bundle`",
        )
    };
    let file = std::fs::File::open(path).map_err(|e| problem(format!("cannot open: {e}")))?;
    let signed = bundle::read_signed(&mut std::io::BufReader::new(file))
        .map_err(|e| problem(e.to_string()))?;
    let manifest = signed
        .manifest_unverified()
        .map_err(|e| problem(e.to_string()))?;
    if manifest.base.is_some() {
        return Err(problem(
            "it is a delta bundle; deltas are made between full bundles".into(),
        ));
    }
    Ok(manifest)
}

/// The slot contents of the bundle at `path`, checked against its
/// manifest, in a scratch file.
pub(crate) fn unpack(
    staging: &mut Staging,
    path: &Path,
    manifest: &Manifest,
) -> Result<std::fs::File, Error> {
    let file =
        std::fs::File::open(path).with_context(|| format!("opening '{}'", path.display()))?;
    let mut r = std::io::BufReader::new(file);
    let refused = |e: bundle::Error| {
        Error::Input(Diagnostics::about_file(
            path,
            "",
            format!("refused: {e}"),
            "rebuild the bundle with `image-composer bundle`",
        ))
    };
    bundle::read_signed(&mut r).map_err(refused)?;
    let mut slot = bundle::slot_reader(r, manifest).map_err(refused)?;
    let (mut scratch, _) = staging.create_scratch("slot")?;
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut scratch);
        std::io::copy(&mut slot, &mut w)
            .map_err(|e| refused(bundle::error_from_io(e, "payload")))?;
        w.flush().context("writing the slot contents")?;
    }
    std::io::Seek::rewind(&mut scratch).context("rewinding the slot contents")?;
    Ok(scratch)
}

/// The SHA-256 of every whole block of the base, and where each distinct
/// non-zero block first occurs.
struct Index {
    blocks: Vec<[u8; 32]>,
    first: HashMap<[u8; 32], u64>,
}

fn index_blocks(base: &std::fs::File, size: u64) -> anyhow::Result<Index> {
    let mut index = Index {
        blocks: Vec::new(),
        first: HashMap::new(),
    };
    let mut r = std::io::BufReader::with_capacity(1 << 20, base.take(size));
    let mut block = [0u8; BLOCK_BYTES];
    for i in 0..size / BLOCK_BYTES as u64 {
        r.read_exact(&mut block)
            .context("reading the base slot contents")?;
        let hash: [u8; 32] = Sha256::digest(block).into();
        if block.iter().any(|b| *b != 0) {
            index.first.entry(hash).or_insert(i);
        }
        index.blocks.push(hash);
    }
    Ok(index)
}

/// Writes the ops that make `target` (`size` bytes) from the base.
fn write_ops(
    out: &mut dyn Write,
    index: &Index,
    target: &std::fs::File,
    size: u64,
) -> anyhow::Result<bundle::DeltaStats> {
    let mut ops = bundle::DeltaWriter::new(out);
    let mut stats = bundle::DeltaStats::default();
    let mut block = vec![0u8; BLOCK_BYTES];
    // The base block that would continue the last copy.
    let mut next: Option<u64> = None;
    let mut offset = 0u64;
    while offset < size {
        let len = (size - offset).min(BLOCK_BYTES as u64) as usize;
        target
            .read_exact_at(&mut block[..len], offset)
            .context("reading the new slot contents")?;
        let data = &block[..len];
        let i = offset / BLOCK_BYTES as u64;
        let zero = data.iter().all(|b| *b == 0);
        let found = if zero || len < BLOCK_BYTES {
            None
        } else {
            let hash: [u8; 32] = Sha256::digest(data).into();
            let at = |j: u64| index.blocks.get(j as usize) == Some(&hash);
            [next, Some(i)]
                .into_iter()
                .flatten()
                .find(|j| at(*j))
                .or_else(|| index.first.get(&hash).copied())
        };
        next = found.map(|j| j + 1);
        match found {
            _ if zero => {
                ops.zero(len as u64)?;
                stats.zeroed += len as u64;
            }
            Some(j) => {
                ops.copy(j * BLOCK_BYTES as u64, len as u64)?;
                stats.copied += len as u64;
            }
            None => {
                ops.data(data)?;
                stats.literal += len as u64;
            }
        }
        offset += len as u64;
    }
    ops.finish()?;
    Ok(stats)
}
