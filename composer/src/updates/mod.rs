//! Field updates on the host: key pairs (`keygen`), bundles from slot
//! contents (`compose::bundle` prepares the contents, this module seals
//! them), deltas between two bundles (delta.rs) and their inspection
//! (`bundle-info`). The format itself — header,
//! manifest, chunk hashes, signature — is the `composer-bundle` crate's,
//! shared with the device's installer; this module adds what only a host
//! does: compression, files, keys on disk. docs/updates.md is the guide.
//!
//! The payload is compressed with the zstd library at a fixed level and a
//! fixed window (`WINDOW_LOG`), single-threaded: the same slot contents
//! give the same bytes on every run and host with the same library, and
//! the device's decoder never needs more than the window in memory.
//! Rejected: compressing inside the format crate (the device would link
//! the C compressor it never uses).

mod anchors;
mod delta;

pub use delta::delta;
pub(crate) use delta::{read_manifest, unpack};

use crate::diag::Diagnostics;
use crate::output::staging::Staging;
use anyhow::{Context, Result};
use bundle::{Manifest, SlotKind, SlotReader};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Level 10: most of level 19's ratio on root filesystems at a fraction of
/// its time; zero runs (unused slot space) cost nothing at any level.
const ZSTD_LEVEL: i32 = 10;
/// 4 MiB window: bounds the device decoder's memory (the budget is 32 MiB).
const WINDOW_LOG: u32 = 22;
/// Chunks of 1 MiB of compressed payload: the device holds one at a time.
const CHUNK_BYTES: u32 = 1 << 20;

/// The labels of a bundle, besides its contents.
pub struct Labels {
    pub image: String,
    pub version: String,
    pub compatible: String,
    pub slot: SlotKind,
    /// The slot contents' dm-verity values (a partition with `verity: true`).
    pub verity: Option<bundle::Verity>,
}

/// Compresses the `slot_size` bytes of `slot` into the bundle `name`,
/// staged in `staging` (the caller commits it), signed with `key`.
pub fn write_bundle(
    labels: Labels,
    slot: &std::fs::File,
    slot_size: u64,
    key: &bundle::SigningKey,
    staging: &mut Staging,
    name: &str,
) -> Result<Manifest> {
    let mut slot_hash = Sha256::new();
    let payload = compress(staging, Some(slot_size), |enc| {
        let mut reader = std::io::BufReader::with_capacity(1 << 20, slot.take(slot_size));
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf).context("reading the slot contents")?;
            if n == 0 {
                return Ok(());
            }
            slot_hash.update(&buf[..n]);
            enc.write_all(&buf[..n])
                .context("compressing the slot contents")?;
        }
    })?;
    let manifest = Manifest {
        image: labels.image,
        version: labels.version,
        compatible: labels.compatible,
        slot: labels.slot,
        slot_size,
        slot_sha256: slot_hash.finalize().into(),
        verity: labels.verity,
        base: None,
        payload_size: payload.size,
        chunk_size: CHUNK_BYTES,
        chunks: payload.chunks,
    };
    seal_into(staging, name, &manifest, &payload.path, key)?;
    Ok(manifest)
}

/// A compressed payload in a scratch file, with its chunk hashes.
struct Payload {
    path: PathBuf,
    size: u64,
    chunks: Vec<[u8; 32]>,
}

/// Compresses what `fill` writes (`size` bytes when known) into a scratch
/// file of `staging`, hashing every chunk of the compressed bytes.
fn compress(
    staging: &mut Staging,
    size: Option<u64>,
    fill: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<Payload> {
    // The manifest (chunk hashes) precedes the payload: compress into a
    // scratch file first, then write header and payload behind it.
    let (file, path) = staging.create_scratch("payload")?;
    let mut chunker = Chunker::new(&file);
    {
        let mut enc = zstd::stream::Encoder::new(&mut chunker, ZSTD_LEVEL)?;
        enc.window_log(WINDOW_LOG)?;
        enc.include_checksum(false)?;
        enc.set_pledged_src_size(size)?;
        fill(&mut enc)?;
        enc.finish().context("compressing the payload")?;
    }
    let (chunks, size) = chunker.finish()?;
    Ok(Payload { path, size, chunks })
}

/// Writes the bundle `name`: the sealed manifest, then the payload.
fn seal_into(
    staging: &mut Staging,
    name: &str,
    manifest: &Manifest,
    payload: &Path,
    key: &bundle::SigningKey,
) -> Result<()> {
    let out = staging.create(name)?;
    let head =
        bundle::seal(manifest, key).map_err(|e| anyhow::anyhow!("sealing the manifest: {e}"))?;
    let mut w = std::io::BufWriter::new(&out);
    w.write_all(&head)?;
    let mut from = std::fs::File::open(payload)?;
    std::io::copy(&mut from, &mut w).context("copying the payload")?;
    w.flush()?;
    Ok(())
}

/// Passes compressed bytes to a file and hashes every CHUNK_BYTES of them.
struct Chunker<'f> {
    file: std::io::BufWriter<&'f std::fs::File>,
    hasher: Sha256,
    in_chunk: u32,
    chunks: Vec<[u8; 32]>,
    total: u64,
}

impl<'f> Chunker<'f> {
    fn new(file: &'f std::fs::File) -> Self {
        Chunker {
            file: std::io::BufWriter::new(file),
            hasher: Sha256::new(),
            in_chunk: 0,
            chunks: Vec::new(),
            total: 0,
        }
    }

    fn finish(mut self) -> Result<(Vec<[u8; 32]>, u64)> {
        if self.in_chunk > 0 {
            self.chunks.push(self.hasher.finalize().into());
        }
        self.file.flush()?;
        Ok((self.chunks, self.total))
    }
}

impl Write for Chunker<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min((CHUNK_BYTES - self.in_chunk) as usize);
        self.file.write_all(&data[..n])?;
        self.hasher.update(&data[..n]);
        self.in_chunk += n as u32;
        self.total += n as u64;
        if self.in_chunk == CHUNK_BYTES {
            self.chunks
                .push(std::mem::take(&mut self.hasher).finalize().into());
            self.in_chunk = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Reads the secret key at `path` (`--key`).
pub fn read_secret_key(path: &Path) -> Result<bundle::SigningKey, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics::about_file(
            path,
            "--key",
            format!("cannot read the key: {e}"),
            "make one with `image-composer keygen -o DIR`",
        )
    })?;
    bundle::decode_secret_key(&text).map_err(|e| {
        Diagnostics::about_file(
            path,
            "--key",
            e.to_string(),
            "pass the `.key` file `image-composer keygen` wrote (not the `.pub`)",
        )
    })
}

/// Reads the public key at `path` (`--key` of `bundle-info`).
pub fn read_public_key(path: &Path) -> Result<bundle::VerifyingKey, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics::about_file(
            path,
            "--key",
            format!("cannot read the key: {e}"),
            "pass the `.pub` file `image-composer keygen` wrote",
        )
    })?;
    bundle::decode_public_key(&text).map_err(|e| {
        Diagnostics::about_file(
            path,
            "--key",
            e.to_string(),
            "pass the `.pub` file `image-composer keygen` wrote",
        )
    })
}

/// `keygen`: writes `DIR/NAME.key` (mode 0600) and `DIR/NAME.pub`; never
/// overwrites a key.
pub fn keygen(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf)> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("creating '{}'", dir.display()))?;
    let secret_path = dir.join(format!("{name}.key"));
    let public_path = dir.join(format!("{name}.pub"));
    for p in [&secret_path, &public_path] {
        if p.exists() {
            anyhow::bail!(
                "'{}' exists; keys are never overwritten (remove it or pass another --name)",
                p.display()
            );
        }
    }
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .context("reading /dev/urandom")?;
    let key = bundle::key_from_seed(seed);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret_path)
        .with_context(|| format!("creating '{}'", secret_path.display()))?;
    f.write_all(bundle::encode_secret_key(&key).as_bytes())?;
    f.sync_all()?;
    let mut staging = Staging::for_output_dir(dir);
    let mut public = staging.create(&format!("{name}.pub"))?;
    public
        .write_all(bundle::encode_public_key(&key.verifying_key()).as_bytes())
        .and_then(|()| public.sync_all())
        .with_context(|| format!("writing '{}'", public_path.display()))?;
    staging.commit()?;
    Ok((secret_path, public_path))
}

/// `bundle-info`: prints the manifest of the bundle at `path` to stdout,
/// then checks the signature (with `key`) and the whole payload.
pub fn info(path: &Path, key: Option<&Path>) -> Result<(), crate::compose::Error> {
    let key = key.map(read_public_key).transpose()?;
    let refused = |e: bundle::Error| {
        crate::compose::Error::Input(Diagnostics::about_file(
            path,
            "",
            format!("refused: {e}"),
            "rebuild the bundle with `image-composer bundle`, or pass the right --key",
        ))
    };
    let file =
        std::fs::File::open(path).with_context(|| format!("opening '{}'", path.display()))?;
    let mut r = std::io::BufReader::new(file);
    let signed = bundle::read_signed(&mut r).map_err(refused)?;
    print!("{}", signed.manifest_text());
    let manifest = match &key {
        Some(k) => signed.verify(std::slice::from_ref(k)).map_err(refused)?.1,
        None => signed.manifest_unverified().map_err(refused)?,
    };
    if let Some(base) = &manifest.base {
        let stats = bundle::walk_delta(r, &manifest).map_err(refused)?;
        println!(
            "delta against {} {} (base-size {}): {} copied from the base, {} zeros, {} carried, {} ops",
            manifest.image,
            base.version,
            base.size,
            stats.copied,
            stats.zeroed,
            stats.literal,
            stats.ops
        );
    } else {
        let mut slot: SlotReader<_> = bundle::slot_reader(r, &manifest).map_err(refused)?;
        std::io::copy(&mut slot, &mut std::io::sink())
            .map_err(|e| refused(bundle::error_from_io(e, "payload")))?;
    }
    let signature = if key.is_some() {
        "signature verified"
    } else {
        "signature not checked (no --key)"
    };
    tracing::info!(
        "{}: {signature}; payload and slot contents match the manifest{}",
        path.display(),
        if manifest.base.is_some() {
            " (the delta's result is checked on the device)"
        } else {
            ""
        }
    );
    Ok(())
}
