//! `ab-install BUNDLE|-`: installs a signed image-composer bundle into the
//! A/B slot that is not running, then schedules a trial boot of it with
//! `ab-switch` (the ab-slots layer's state machine, layers/ab-slots/README.md).
//!
//! Order, so that a refusal writes nothing and a power cut at any instant
//! leaves the running slot and the confirmed state intact:
//! 1. checks (nothing written): the signature against the public keys in
//!    /etc/image-composer/keys/*.pub, the format, the `compatible` string
//!    against /etc/image-composer/compatible, the slot kind against the
//!    device (partitions or image files), the running slot (not a trial),
//!    the target (not mounted, large enough); for a bundle file, every
//!    payload chunk too (a first pass over the file); for a delta bundle,
//!    the running slot must hold the delta's base (size and SHA-256), and
//!    a delta file's ops are checked in the first pass;
//! 2. a pending, not yet booted trial of the target slot is cancelled
//!    (`ab-switch none`): the slot is about to be overwritten;
//! 3. the slot contents are streamed to the target (a delta's from its ops
//!    and the running slot, read only), each chunk checked before it is
//!    decompressed, then synced, dropped from the page cache
//!    and read back: the SHA-256 of what the device holds must match;
//! 4. image files only: the file is renamed into place and `versions.conf`
//!    replaced by rename (fsync of file and directory);
//! 5. the bundle's signed head (header, manifest, signature) is stored as
//!    `ab/slot-<slot>.manifest` on the config partition when the manifest
//!    has dm-verity values (the boot opens the slot with them), else a
//!    stale one of that slot is removed (new file, fsync, rename, fsync of
//!    the directory);
//! 6. `ab-switch <slot>`.
//!
//! Exit status: 0 installed, 2 refused (nothing written), 1 failed while
//! or after writing (the inactive slot may be partial; no trial scheduled).
//! One line on stderr says what happened. Memory stays below 32 MiB: one
//! 1 MiB chunk, the 4 MiB zstd window, 1 MiB of I/O buffer (and 1 MiB of
//! base read per delta copy step).
//!
//! `ab-install verity-open ...` opens a dm-verity root in the initramfs
//! ([`verity`], the readonly-rootfs-overlay layer's README), with the root
//! hash and offset of the command line or, `--manifest FILE`, of a stored
//! slot manifest whose signature it checks first (layers/ab-slots/README.md).
//!
//! Depends on the bundle format crate, sha2 and rustix only (no YAML, no
//! filesystem writers): a small static binary (docs/updates.md says how to
//! build it for a target).

mod device;
mod verity;

use bundle::{Manifest, SlotKind};
use device::{Device, Slot};
use sha2::{Digest, Sha256};
use std::io::{BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Why the installation did not happen.
enum Failure {
    /// Before anything was written.
    Refused(String),
    /// While or after writing the inactive slot.
    Failed(String),
}

use Failure::{Failed, Refused};

const BUF_BYTES: usize = 1 << 20;
const VERITY_USAGE: &str =
    "ab-install verity-open NAME DEVICE (ROOTHASH HASH-OFFSET | --manifest FILE)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [cmd, name, dev, rest @ ..] = args.as_slice() {
        if cmd == "verity-open" {
            let opened = match rest {
                [flag, file] if flag == "--manifest" => {
                    stored_verity(&Device::from_env(), Path::new(file)).and_then(
                        |(hash, offset, from)| {
                            verity::open(name, dev, &hash, offset).map(|path| (path, hash, from))
                        },
                    )
                }
                [hash, offset] => offset
                    .parse::<u64>()
                    .map_err(|_| format!("'{offset}' is not a byte offset"))
                    .and_then(|offset| verity::open(name, dev, hash, offset))
                    .map(|path| (path, hash.clone(), String::new())),
                _ => Err(format!("usage: {VERITY_USAGE}")),
            };
            return match opened {
                Ok((path, hash, from)) => {
                    // The device for the caller, the hash for its log line.
                    println!("{path}");
                    eprintln!("roothash {hash}{from}");
                    ExitCode::SUCCESS
                }
                Err(why) => {
                    eprintln!("ab-install: verity-open: {why}");
                    ExitCode::from(1)
                }
            };
        }
    }
    let source = match args.as_slice() {
        [a] if a != "-h" && a != "--help" => a.clone(),
        _ => {
            eprintln!("usage: ab-install BUNDLE|-   (installs into the slot that is not running)");
            eprintln!("       {VERITY_USAGE}");
            return ExitCode::from(2);
        }
    };
    let device = Device::from_env();
    match install(&device, &source) {
        Ok(line) => {
            println!("ab-install: {line}");
            ExitCode::SUCCESS
        }
        Err(Refused(why)) => {
            eprintln!("ab-install: refused: {why}");
            ExitCode::from(2)
        }
        Err(Failed(why)) => {
            eprintln!("ab-install: failed: {why}");
            ExitCode::from(1)
        }
    }
}

/// The dm-verity root hash (hex) and hash offset in the signed manifest
/// `file` that `install` stored for a slot, after its signature verified
/// with a trusted key (the initramfs's own, since the config partition
/// that holds the file is writable), and what to log about their origin.
fn stored_verity(device: &Device, file: &Path) -> Result<(String, u64, String), String> {
    let keys = device.trusted_keys()?;
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut reader = bytes.as_slice();
    let refused = |e: bundle::Error| format!("{}: refused: {e}", file.display());
    let signed = bundle::read_signed(&mut reader).map_err(refused)?;
    if !reader.is_empty() {
        return Err(refused(bundle::Error::TrailingData));
    }
    let (_, manifest) = signed.verify(&keys).map_err(refused)?;
    let v = manifest
        .verity
        .ok_or_else(|| format!("{}: the manifest has no dm-verity values", file.display()))?;
    Ok((
        bundle::hex(&v.root_hash),
        v.hash_offset,
        format!(
            " from {} ({} {}, signature verified)",
            file.display(),
            manifest.image,
            manifest.version
        ),
    ))
}

/// A bundle from a file (checked whole before writing) or standard input.
enum Source {
    File(BufReader<std::fs::File>),
    Stdin(std::io::StdinLock<'static>),
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Source::File(f) => f.read(buf),
            Source::Stdin(s) => s.read(buf),
        }
    }
}

fn install(device: &Device, source: &str) -> Result<String, Failure> {
    let started = std::time::Instant::now();
    let keys = device.trusted_keys().map_err(Refused)?;
    let mut input = if source == "-" {
        Source::Stdin(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(source)
            .map_err(|e| Refused(format!("cannot open {source}: {e}")))?;
        Source::File(BufReader::with_capacity(BUF_BYTES, f))
    };
    let signed = bundle::read_signed(&mut input).map_err(|e| Refused(e.to_string()))?;
    let (_, manifest) = signed.verify(&keys).map_err(|e| Refused(e.to_string()))?;
    // What the boot opens the slot with when it has dm-verity values.
    let head = manifest.verity.as_ref().map(|_| signed.to_bytes());
    let compatible = device.compatible().map_err(Refused)?;
    if manifest.compatible != compatible {
        return Err(Refused(format!(
            "the bundle is for '{}', this device is '{compatible}'",
            manifest.compatible
        )));
    }
    let slots = device.slots().map_err(Refused)?;
    let target = slots.target;
    let plan = device.target(&slots, &manifest).map_err(Refused)?;
    let base = match &manifest.base {
        Some(b) => {
            let path = device.running_slot(&slots).map_err(Refused)?;
            let file = std::fs::File::open(&path).map_err(|e| {
                Refused(format!("opening the running slot {}: {e}", path.display()))
            })?;
            bundle::check_base(&file, b).map_err(|e| Refused(e.to_string()))?;
            Some(file)
        }
        None => None,
    };
    if let Source::File(f) = &mut input {
        // A bundle file is checked whole before the first write, so that a
        // bad chunk (or a bad delta op) anywhere refuses with nothing written.
        let start = f
            .stream_position()
            .map_err(|e| Refused(format!("reading {source}: {e}")))?;
        match &manifest.base {
            Some(_) => bundle::walk_delta(&mut *f, &manifest).map(|_| ()),
            None => bundle::PayloadReader::new(&mut *f, &manifest).finish(),
        }
        .map_err(|e| Refused(e.to_string()))?;
        f.seek(std::io::SeekFrom::Start(start))
            .map_err(|e| Refused(format!("reading {source}: {e}")))?;
    }
    if slots.pending_trial_of_target {
        device.switch("none").map_err(|e| {
            Refused(format!(
                "cannot cancel the pending trial of slot {target}: {e}"
            ))
        })?;
    }
    let from = match &manifest.base {
        Some(b) => format!(" as a delta from {}", b.version),
        None => String::new(),
    };
    eprintln!(
        "ab-install: writing {} {} ({} bytes){from} to slot {target}: {}",
        manifest.image,
        manifest.version,
        manifest.slot_size,
        plan.describe()
    );
    let slot = match base {
        Some(file) => bundle::delta_reader(input, &manifest, file),
        None => bundle::slot_reader(input, &manifest),
    }
    .map_err(|e| Failed(e.to_string()))?;
    match &plan {
        Slot::Partition(dev) => {
            write_and_check(slot, dev, &manifest, false)?;
        }
        Slot::File { dir, name, old } => {
            let _rw = device.remount_rw(dir).map_err(Failed)?;
            device::remove_leftovers(dir, old.as_deref()).map_err(Failed)?;
            let partial = dir.join(format!("{name}{}", device::PARTIAL_SUFFIX));
            write_and_check(slot, &partial, &manifest, true)?;
            let path = dir.join(name);
            std::fs::rename(&partial, &path)
                .map_err(|e| Failed(format!("renaming {}: {e}", partial.display())))?;
            device::sync_dir(dir).map_err(Failed)?;
            device::point_slot(dir, target, name).map_err(Failed)?;
        }
    }
    // Before the trial is armed: a trial never boots without its values.
    device
        .store_slot_manifest(target, head.as_deref())
        .map_err(Failed)?;
    device.switch(&target.to_string()).map_err(|e| {
        Failed(format!(
            "slot {target} is written but the trial could not be scheduled: {e}"
        ))
    })?;
    Ok(format!(
        "installed {} {} into slot {target} in {:.1} s; reboot to try it (ab-mark-good confirms it)",
        manifest.image,
        manifest.version,
        started.elapsed().as_secs_f64()
    ))
}

/// Streams the slot contents to `path` (a block device, or a new file when
/// `create`), syncs, drops the written range from the page cache and reads
/// it back: the bytes the device holds must hash to the manifest's SHA-256.
fn write_and_check(
    mut slot: impl Read,
    path: &Path,
    manifest: &Manifest,
    create: bool,
) -> Result<(), Failure> {
    let failed =
        |what: &str, e: &dyn std::fmt::Display| Failed(format!("{what} {}: {e}", path.display()));
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(create)
        .truncate(create)
        .open(path)
        .map_err(|e| failed("opening", &e))?;
    let mut buf = vec![0u8; BUF_BYTES];
    loop {
        let n = match slot.read(&mut buf) {
            Ok(n) => n,
            Err(e) => return Err(Failed(bundle::error_from_io(e, "payload").to_string())),
        };
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .map_err(|e| failed("writing", &e))?;
    }
    out.sync_all().map_err(|e| failed("syncing", &e))?;
    drop(out);
    let back = std::fs::File::open(path).map_err(|e| failed("reopening", &e))?;
    let _ = rustix::fs::fadvise(&back, 0, None, rustix::fs::Advice::DontNeed);
    let mut hasher = Sha256::new();
    let mut left = manifest.slot_size;
    let mut reader = BufReader::with_capacity(BUF_BYTES, back);
    while left > 0 {
        let want = left.min(BUF_BYTES as u64) as usize;
        reader
            .read_exact(&mut buf[..want])
            .map_err(|e| failed("reading back", &e))?;
        hasher.update(&buf[..want]);
        left -= want as u64;
    }
    if hasher.finalize().as_slice() != manifest.slot_sha256 {
        return Err(Failed(format!(
            "{} does not read back as written (SHA-256 differs): bad medium?",
            path.display()
        )));
    }
    Ok(())
}

impl Slot {
    fn describe(&self) -> String {
        match self {
            Slot::Partition(dev) => dev.display().to_string(),
            Slot::File { dir, name, .. } => dir.join(name).display().to_string(),
        }
    }
}

/// The file name of a slot's image: `<slot>-<bundle's file name>`, never
/// the running slot's name (the slot letter differs).
fn file_name(target: char, kind: &SlotKind) -> Option<String> {
    match kind {
        SlotKind::File { name } => Some(format!("{target}-{name}")),
        SlotKind::Partition => None,
    }
}

/// Paths of the running system, all under one root (`AB_ROOT`, for tests).
fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}
