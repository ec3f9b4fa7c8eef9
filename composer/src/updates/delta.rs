//! `image-composer delta --from OLD --to NEW`: a signed bundle that carries
//! only what the new slot contents lack from the old ones, as the ops of
//! the bundle crate's delta format (copy from the base, zeros, literal
//! bytes), naming the old slot contents (size, SHA-256) as its base.
//!
//! Matching, in three passes over the new contents:
//!
//! 1. Aligned: cut into 4 KiB blocks (`BLOCK_BYTES`, the ext4 block: a
//!    file's data starts on a block boundary, so a file that moved is still
//!    found block by block), each block is zeros, the block that continues
//!    the previous copy, the block at the same offset of the base, or any
//!    base block with the same SHA-256, in that order.
//! 2. Shifted (rsync's algorithm, on what pass 1 left): a run of
//!    unmatched blocks is searched at every byte offset for a window equal
//!    to some base block (a rolling weak checksum over 4 KiB, confirmed by
//!    SHA-256), and every match is grown byte by byte forwards and
//!    backwards. Cheap, and it finds what moved by whole blocks or more.
//! 3. Fine (anchors.rs, on what is still open): 32-byte windows sampled
//!    every 16 bytes of the open stretches are located in the base by one
//!    rolling scan of it; at each located window the longest of three
//!    candidates (where it was located, the continuation of the last copy,
//!    the same offset) is grown both ways and copied. A rebuilt file whose
//!    edits lie a few hundred bytes apart costs its edits: on the bench's
//!    package upgrade (40 files rebuilt with 64 edits each) 980 KiB carried
//!    instead of 3.9 MiB with passes 1 and 2 alone. What lies between
//!    copies is compared with the base on the diagonal of the last copy,
//!    and equal stretches of 32 bytes or more are copied from there.
//!
//! The ops are compressed like a full bundle's payload. Measured against
//! content-defined chunking in docs/updates.md ("Why 4 KiB blocks"): on
//! block-aligned filesystem images CDC's chunks straddle file boundaries
//! and carry more. Applying needs nothing new on the device: copies may
//! start at any byte of the base.
//!
//! Both bundles are read through the bundle crate (every chunk and the
//! slot hash checked), their slot contents kept in scratch files beside
//! the output; memory: one SHA-256 and one weak checksum per base block
//! (10 MiB per GiB of slot, plus an 8 MiB bitmap), the list of segments
//! passes 1 and 2 leave, pass 3's anchors (at most 96 MiB, anchors.rs),
//! and one open stretch (at most `RUN_BYTES`).

use super::{anchors, compress, seal_into, CHUNK_BYTES};
use crate::compose::Error;
use crate::diag::Diagnostics;
use crate::output::staging::Staging;
use anyhow::Context;
use bundle::{Base, Manifest};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
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
        let old_slot = Old {
            file: &base,
            size: old.slot_size,
        };
        stats = write_ops(out, &index, old_slot, &target, new.slot_size)?;
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
    /// The weak checksums of the non-zero base blocks.
    weak: WeakSet,
}

fn index_blocks(base: &std::fs::File, size: u64) -> anyhow::Result<Index> {
    let mut index = Index {
        blocks: Vec::new(),
        first: HashMap::new(),
        weak: WeakSet {
            bits: vec![0; WEAK_BITS / 64],
            exact: HashSet::new(),
        },
    };
    let mut r = std::io::BufReader::with_capacity(1 << 20, base.take(size));
    let mut block = [0u8; BLOCK_BYTES];
    for i in 0..size / BLOCK_BYTES as u64 {
        r.read_exact(&mut block)
            .context("reading the base slot contents")?;
        let hash: [u8; 32] = Sha256::digest(block).into();
        if block.iter().any(|b| *b != 0) {
            index.first.entry(hash).or_insert(i);
            index.weak.insert(Weak::of(&block).sum());
        }
        index.blocks.push(hash);
    }
    Ok(index)
}

/// A set of weak checksums with a bitmap in front: the search tests one
/// per byte of a run, and almost all of them miss.
struct WeakSet {
    bits: Vec<u64>,
    exact: HashSet<u32>,
}

/// Bits of the bitmap (8 MiB).
const WEAK_BITS: usize = 1 << 26;

impl WeakSet {
    fn bit(sum: u32) -> usize {
        (u64::from(sum).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - 26)) as usize
    }

    fn insert(&mut self, sum: u32) {
        let b = Self::bit(sum);
        self.bits[b / 64] |= 1 << (b % 64);
        self.exact.insert(sum);
    }

    fn contains(&self, sum: u32) -> bool {
        let b = Self::bit(sum);
        self.bits[b / 64] & (1 << (b % 64)) != 0 && self.exact.contains(&sum)
    }
}

/// Unmatched bytes searched (pass 2) or held (pass 3) in one go, at most.
const RUN_BYTES: usize = 16 << 20;

/// rsync's rolling checksum over one block: `a` the sum of the bytes, `b`
/// the sum of the running sums, both mod 2^16.
#[derive(Clone, Copy)]
struct Weak {
    a: u32,
    b: u32,
}

impl Weak {
    fn of(window: &[u8]) -> Weak {
        let n = window.len() as u32;
        let mut w = Weak { a: 0, b: 0 };
        for (i, &x) in window.iter().enumerate() {
            w.a = w.a.wrapping_add(u32::from(x));
            w.b = w.b.wrapping_add((n - i as u32).wrapping_mul(u32::from(x)));
        }
        w
    }

    /// Slides the window one byte: `out` leaves, `into` enters.
    fn roll(&mut self, out: u8, into: u8) {
        self.a = self
            .a
            .wrapping_sub(u32::from(out))
            .wrapping_add(u32::from(into));
        self.b = self
            .b
            .wrapping_sub((BLOCK_BYTES as u32).wrapping_mul(u32::from(out)))
            .wrapping_add(self.a);
    }

    fn sum(self) -> u32 {
        (self.b & 0xffff) << 16 | (self.a & 0xffff)
    }
}

/// What pass 1 found for one aligned block of the new contents.
enum Aligned {
    Zero,
    Copy(u64),
    Unmatched,
}

fn aligned(index: &Index, data: &[u8], i: u64, next: Option<u64>) -> Aligned {
    if data.iter().all(|b| *b == 0) {
        return Aligned::Zero;
    }
    if data.len() < BLOCK_BYTES {
        return Aligned::Unmatched;
    }
    let hash: [u8; 32] = Sha256::digest(data).into();
    let at = |j: u64| index.blocks.get(j as usize) == Some(&hash);
    [next, Some(i)]
        .into_iter()
        .flatten()
        .find(|j| at(*j))
        .or_else(|| index.first.get(&hash).copied())
        .map_or(Aligned::Unmatched, Aligned::Copy)
}

/// A stretch of the new contents as the block passes left it.
enum Seg {
    Zero(u64),
    /// `len` bytes at `at` of the new contents are the base's from `from`.
    Copy {
        at: u64,
        from: u64,
        len: u64,
    },
    /// `len` bytes at `at` not matched by a whole base block.
    Open {
        at: u64,
        len: u64,
    },
}

/// The segments of the new contents, in order, neighbours merged (open
/// stretches up to `RUN_BYTES`, the bytes pass 3 holds at a time).
#[derive(Default)]
struct Segs(Vec<Seg>);

impl Segs {
    fn zero(&mut self, len: u64) {
        if let Some(Seg::Zero(l)) = self.0.last_mut() {
            *l += len;
        } else {
            self.0.push(Seg::Zero(len));
        }
    }

    fn copy(&mut self, at: u64, from: u64, len: u64) {
        if let Some(Seg::Copy {
            from: f, len: l, ..
        }) = self.0.last_mut()
        {
            if *f + *l == from {
                *l += len;
                return;
            }
        }
        self.0.push(Seg::Copy { at, from, len });
    }

    fn open(&mut self, at: u64, len: u64) {
        if len == 0 {
            return;
        }
        if let Some(Seg::Open { len: l, .. }) = self.0.last_mut() {
            if *l + len <= RUN_BYTES as u64 {
                *l += len;
                return;
            }
        }
        self.0.push(Seg::Open { at, len });
    }
}

/// Writes the ops that make `target` (`size` bytes) from the base.
fn write_ops(
    out: &mut dyn Write,
    index: &Index,
    base: Old,
    target: &std::fs::File,
    size: u64,
) -> anyhow::Result<bundle::DeltaStats> {
    let segs = match_blocks(index, base, target, size)?;
    // Pass 3: the open stretches' small windows, located in the base.
    let open = segs.0.iter().map(|s| match s {
        Seg::Open { at, len } => (*at, *len),
        _ => (0, 0),
    });
    let mut anchors = anchors::Anchors::for_open(open.clone().map(|(_, len)| len).sum());
    for (at, len) in open.filter(|(_, len)| *len > 0) {
        anchors.sample(at, &read_at(target, at, len as usize, "new")?);
    }
    let zero: [u8; 32] = Sha256::digest([0u8; BLOCK_BYTES]).into();
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for (i, hash) in index.blocks.iter().enumerate() {
        let at = (i * BLOCK_BYTES) as u64;
        match spans.last_mut() {
            _ if *hash == zero => {}
            Some((_, end)) if *end == at => *end += BLOCK_BYTES as u64,
            _ => spans.push((at, at + BLOCK_BYTES as u64)),
        }
    }
    let located = anchors
        .locate(base.file, &spans)
        .context("reading the base slot contents")?;

    let mut ops = bundle::DeltaWriter::new(out);
    // Base offset minus new offset of the last copy: where the bytes after
    // it are looked for first.
    let mut diag = 0u64;
    for seg in &segs.0 {
        match *seg {
            Seg::Zero(len) => ops.zero(len)?,
            Seg::Copy { at, from, len } => {
                ops.copy(from, len)?;
                diag = from.wrapping_sub(at);
            }
            Seg::Open { at, len } => {
                let bytes = read_at(target, at, len as usize, "new")?;
                let first = located.partition_point(|l| l.0 < at);
                let last = located.partition_point(|l| l.0 < at + len);
                fine(&mut ops, base, at, &bytes, &located[first..last], &mut diag)?;
            }
        }
    }
    Ok(ops.finish()?.1)
}

/// Passes 1 and 2 over the new contents.
fn match_blocks(
    index: &Index,
    base: Old,
    target: &std::fs::File,
    size: u64,
) -> anyhow::Result<Segs> {
    let mut segs = Segs::default();
    let mut block = vec![0u8; BLOCK_BYTES];
    let mut run: Vec<u8> = Vec::new();
    // The base block that would continue the last copy.
    let mut next: Option<u64> = None;
    let mut offset = 0u64;
    while offset < size {
        let len = (size - offset).min(BLOCK_BYTES as u64) as usize;
        target
            .read_exact_at(&mut block[..len], offset)
            .context("reading the new slot contents")?;
        let found = aligned(index, &block[..len], offset / BLOCK_BYTES as u64, next);
        if !matches!(found, Aligned::Unmatched) || run.len() + len > RUN_BYTES {
            shifted(&mut segs, index, base, offset - run.len() as u64, &run)?;
            run.clear();
        }
        next = None;
        match found {
            Aligned::Zero => segs.zero(len as u64),
            Aligned::Copy(j) => {
                segs.copy(offset, j * BLOCK_BYTES as u64, len as u64);
                next = Some(j + 1);
            }
            Aligned::Unmatched => run.extend_from_slice(&block[..len]),
        }
        offset += len as u64;
    }
    shifted(&mut segs, index, base, size - run.len() as u64, &run)?;
    Ok(segs)
}

/// The base slot contents.
#[derive(Clone, Copy)]
struct Old<'a> {
    file: &'a std::fs::File,
    size: u64,
}

/// Pass 2 over a run of unmatched bytes (at `run_at` of the new contents):
/// copies of base blocks found at any offset of the run, grown byte by
/// byte; the rest left open.
fn shifted(
    segs: &mut Segs,
    index: &Index,
    base: Old,
    run_at: u64,
    run: &[u8],
) -> anyhow::Result<()> {
    // Bytes before `cursor` are segmented.
    let mut cursor = 0;
    let mut p = 0;
    let mut weak = run.get(..BLOCK_BYTES).map(Weak::of);
    while let Some(w) = weak {
        let window = &run[p..p + BLOCK_BYTES];
        let found = if index.weak.contains(w.sum()) {
            let hash: [u8; 32] = Sha256::digest(window).into();
            index.first.get(&hash).copied()
        } else {
            None
        };
        if let Some(j) = found {
            let at = j * BLOCK_BYTES as u64;
            // Grow backwards down to the cursor, forwards to the run's end.
            let grown_back = same_before(base, at, &run[cursor..p])?;
            let end = p + BLOCK_BYTES;
            let grown = same_after(base, at + BLOCK_BYTES as u64, &run[end..])?;
            let start = p - grown_back;
            segs.open(run_at + cursor as u64, (start - cursor) as u64);
            let len = (end + grown - start) as u64;
            segs.copy(run_at + start as u64, at - grown_back as u64, len);
            cursor = end + grown;
            p = cursor;
            weak = run.get(p..p + BLOCK_BYTES).map(Weak::of);
            continue;
        }
        weak = run.get(p + BLOCK_BYTES).map(|&into| {
            let mut w = w;
            w.roll(run[p], into);
            w
        });
        p += 1;
    }
    segs.open(run_at + cursor as u64, (run.len() - cursor) as u64);
    Ok(())
}

/// Pass 3 over an open stretch (`bytes`, at `at` of the new contents)
/// with its windows `located` in the base: at each window, in order, the
/// longest of three candidates (where the window was located, the
/// continuation of the last copy, the same offset) grown both ways is
/// copied; what lies between copies is carried.
fn fine<W: Write>(
    ops: &mut bundle::DeltaWriter<W>,
    base: Old,
    at: u64,
    bytes: &[u8],
    located: &[(u64, u64)],
    diag: &mut u64,
) -> anyhow::Result<()> {
    const N: usize = anchors::WINDOW;
    // Bytes before `cursor` are emitted.
    let mut cursor = 0;
    let mut window = [0u8; N];
    for &(t, b) in located {
        let p = (t - at) as usize;
        if p < cursor {
            continue;
        }
        let mut best: Option<(usize, u64, usize)> = None;
        let candidates = [b, t.wrapping_add(*diag), t];
        for (i, &c) in candidates.iter().enumerate() {
            if candidates[..i].contains(&c) || c.checked_add(N as u64).is_none_or(|e| e > base.size)
            {
                continue;
            }
            base.file
                .read_exact_at(&mut window, c)
                .context("reading the base slot contents")?;
            if window != bytes[p..p + N] {
                continue;
            }
            let back = same_before(base, c, &bytes[cursor..p])?;
            let ahead = same_after(base, c + N as u64, &bytes[p + N..])?;
            let len = back + N + ahead;
            if best.is_none_or(|(_, _, l)| len > l) {
                best = Some((p - back, c - back as u64, len));
            }
        }
        let Some((start, from, len)) = best else {
            continue;
        };
        let gap_at = at + cursor as u64;
        carry(ops, base, gap_at.wrapping_add(*diag), &bytes[cursor..start])?;
        ops.copy(from, len as u64)?;
        *diag = from.wrapping_sub(at + start as u64);
        cursor = start + len;
    }
    let gap_at = at + cursor as u64;
    carry(ops, base, gap_at.wrapping_add(*diag), &bytes[cursor..])
}

/// Equal stretches shorter than this are carried (a copy op costs 17 bytes
/// before compression).
const MIN_SAME: usize = 32;

/// Carries `bytes`, except stretches of `MIN_SAME` bytes or more equal to
/// the base from `from` on (the base bytes that correspond, on the
/// diagonal of the last copy): a block that changed in a few bytes, or a
/// gap too short for pass 3's windows, costs its changed bytes.
fn carry<W: Write>(
    ops: &mut bundle::DeltaWriter<W>,
    base: Old,
    from: u64,
    bytes: &[u8],
) -> anyhow::Result<()> {
    let n = bytes
        .len()
        .min(usize::try_from(base.size.saturating_sub(from)).unwrap_or(usize::MAX));
    let old = read_at(base.file, from, n, "base")?;
    // Bytes before `lit` are emitted.
    let mut lit = 0;
    let mut i = 0;
    while i < n {
        if bytes[i] != old[i] {
            i += 1;
            continue;
        }
        let same = i;
        while i < n && bytes[i] == old[i] {
            i += 1;
        }
        if i - same >= MIN_SAME {
            if same > lit {
                ops.data(&bytes[lit..same])?;
            }
            ops.copy(from + same as u64, (i - same) as u64)?;
            lit = i;
        }
    }
    if lit < bytes.len() {
        ops.data(&bytes[lit..])?;
    }
    Ok(())
}

/// Bytes read at first while growing a match, and at most at a time: most
/// matches end within a few hundred bytes, and reading the whole rest of a
/// run for each would make a run with many matches quadratic.
const GROW_FIRST: usize = 256;
const GROW_STEP: usize = 64 << 10;

/// How many bytes at the start of `new` equal the base from `at` on.
fn same_after(base: Old, at: u64, new: &[u8]) -> anyhow::Result<usize> {
    same_run(base, at, new, false)
}

/// How many bytes at the end of `new` equal the base just before `end`.
fn same_before(base: Old, end: u64, new: &[u8]) -> anyhow::Result<usize> {
    same_run(base, end, new, true)
}

/// The length of the run of equal bytes that starts at base offset `at`
/// and the start of `new`, or (`backwards`) ends there and at the end of
/// `new`, read in growing steps.
fn same_run(base: Old, at: u64, new: &[u8], backwards: bool) -> anyhow::Result<usize> {
    let room = if backwards {
        at
    } else {
        base.size.saturating_sub(at)
    };
    let limit = new.len().min(usize::try_from(room).unwrap_or(usize::MAX));
    let mut same = 0;
    let mut step = GROW_FIRST;
    while same < limit {
        let n = (limit - same).min(step);
        let (from, ours) = if backwards {
            let end = new.len() - same;
            (at - (same + n) as u64, &new[end - n..end])
        } else {
            (at + same as u64, &new[same..same + n])
        };
        let old = read_at(base.file, from, n, "base")?;
        let pairs = old.iter().zip(ours);
        let equal = if backwards {
            pairs.rev().take_while(|(a, b)| a == b).count()
        } else {
            pairs.take_while(|(a, b)| a == b).count()
        };
        same += equal;
        if equal < n {
            break;
        }
        step = (step * 4).min(GROW_STEP);
    }
    Ok(same)
}

/// `len` bytes at `at` of the `which` ("base" or "new") slot contents.
fn read_at(file: &std::fs::File, at: u64, len: usize, which: &str) -> anyhow::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, at)
        .with_context(|| format!("reading the {which} slot contents"))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn file_of(bytes: &[u8]) -> std::fs::File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        std::io::Seek::rewind(&mut f).unwrap();
        f
    }

    /// One edit of the new contents: what it does, where (a fraction of
    /// the length), how many bytes, and the seed of new bytes.
    #[derive(Clone, Debug)]
    enum Edit {
        Insert(f64, usize, u64),
        Delete(f64, usize),
        Overwrite(f64, usize, u64),
        /// Bytes from elsewhere of the old contents, inserted.
        Duplicate(f64, f64, usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (0.0..1.0, 1usize..3000, any::<u64>()).prop_map(|(a, n, s)| Edit::Insert(a, n, s)),
            (0.0..1.0, 1usize..3000).prop_map(|(a, n)| Edit::Delete(a, n)),
            (0.0..1.0, 1usize..300, any::<u64>()).prop_map(|(a, n, s)| Edit::Overwrite(a, n, s)),
            (0.0..1.0, 0.0..1.0, 1usize..9000).prop_map(|(a, b, n)| Edit::Duplicate(a, b, n)),
        ]
    }

    /// Applies `edits` to `bytes` (first a copy of `old`); returns the
    /// number of new (random) bytes written.
    fn apply(bytes: &mut Vec<u8>, old: &[u8], edits: &[Edit]) -> usize {
        let mut fresh = 0;
        let at = |f: f64, len: usize| ((f * len as f64) as usize).min(len);
        for e in edits {
            match *e {
                Edit::Insert(f, n, seed) => {
                    let p = at(f, bytes.len());
                    bytes.splice(p..p, noise(n, seed));
                    fresh += n;
                }
                Edit::Delete(f, n) => {
                    let p = at(f, bytes.len());
                    let end = (p + n).min(bytes.len());
                    bytes.drain(p..end);
                }
                Edit::Overwrite(f, n, seed) => {
                    let p = at(f, bytes.len());
                    let end = (p + n).min(bytes.len());
                    bytes[p..end].copy_from_slice(&noise(end - p, seed));
                    fresh += end - p;
                }
                Edit::Duplicate(f, g, n) => {
                    let from = at(g, old.len());
                    let piece = old[from..(from + n).min(old.len())].to_vec();
                    let p = at(f, bytes.len());
                    bytes.splice(p..p, piece);
                }
            }
        }
        fresh
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// The ops make the new contents exactly, and carry little more
        /// than the new bytes: every unchanged stretch of 47 bytes or
        /// more is copied, however the edits shifted it.
        #[test]
        fn ops_rebuild_the_new_contents_and_carry_only_new_bytes(
            blocks in 4usize..32,
            zero_blocks in proptest::collection::vec(0usize..48, 0..4),
            seed in any::<u64>(),
            edits in proptest::collection::vec(edit(), 1..40),
        ) {
            let mut old = noise(blocks * BLOCK_BYTES, seed);
            for z in &zero_blocks {
                if *z < blocks {
                    old[z * BLOCK_BYTES..(z + 1) * BLOCK_BYTES].fill(0);
                }
            }
            let mut new = old.clone();
            let fresh = apply(&mut new, &old, &edits);
            let (base, target) = (file_of(&old), file_of(&new));
            let index = index_blocks(&base, old.len() as u64).unwrap();
            let slot = Old { file: &base, size: old.len() as u64 };
            let mut ops = Vec::new();
            let stats = write_ops(&mut ops, &index, slot, &target, new.len() as u64).unwrap();
            let mut rebuilt = Vec::new();
            bundle::Patch::new(&ops[..], base.try_clone().unwrap(), old.len() as u64)
                .read_to_end(&mut rebuilt)
                .unwrap();
            prop_assert!(rebuilt == new, "the ops do not rebuild the new contents");
            prop_assert_eq!(stats.copied + stats.zeroed + stats.literal, new.len() as u64);
            // Zero blocks are not scanned in the base: a stretch that
            // crosses into one may be carried (its zeros cost nothing
            // compressed), so the bound holds without them.
            if zero_blocks.iter().all(|z| *z >= blocks) {
                let bound = fresh + 2 * 47 * edits.len();
                prop_assert!(
                    stats.literal as usize <= bound,
                    "{} bytes carried, {} new bytes in {} edits",
                    stats.literal,
                    fresh,
                    edits.len()
                );
            }
        }
    }
}
