//! Delta payloads: the new slot contents as instructions against a base,
//! the exact slot contents of an earlier release that the device holds in
//! its running (read-only) slot. A delta bundle is a full bundle's
//! container and manifest (plus the `base-*` lines that name the base by
//! size and SHA-256); only the meaning of the decompressed payload differs:
//!
//! ```text
//! op      bytes                          meaning
//! copy    'C' len:u64le offset:u64le     len bytes of the base from offset
//! zero    'Z' len:u64le                  len zero bytes
//! data    'D' len:u64le <len bytes>      the bytes themselves
//! ```
//!
//! The ops, in order, produce the new slot contents; the reader checks
//! every op (known tag, len > 0, a copy inside the base) and the stream
//! ends exactly after an op. What the ops produce is then checked like a
//! full bundle's slot contents (size and SHA-256 of the manifest), and the
//! base itself is checked whole ([`check_base`]) before anything is
//! written, so a delta for another base is refused up front.
//!
//! The format does not fix how the host finds the copies: `image-composer
//! delta` matches 4 KiB blocks (docs/updates.md has the measurement). A
//! copy may come from anywhere in the base, so files that moved still
//! match. Rejected: a binary diff format (bsdiff, VCDIFF) — their decoders
//! need the whole base or large tables in memory, and a vendored decoder on
//! the device for what block copies already do on block-aligned ext4.

use crate::{error_from_io, Error};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;

const COPY: u8 = b'C';
const ZERO: u8 = b'Z';
const DATA: u8 = b'D';
/// Bytes read from the base per step of a copy.
const COPY_STEP: usize = 1 << 20;

/// Checks that the first `base.size` bytes of `file` hash to the base's
/// SHA-256: the running slot is the release the delta was made against.
pub fn check_base(file: &std::fs::File, base: &crate::Base) -> Result<(), Error> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; COPY_STEP];
    let mut offset = 0u64;
    while offset < base.size {
        let want = (base.size - offset).min(COPY_STEP as u64) as usize;
        file.read_exact_at(&mut buf[..want], offset)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Error::WrongBase(format!(
                    "the running slot holds fewer than the base's {} bytes",
                    base.size
                )),
                _ => Error::Io(format!("reading the running slot: {e}")),
            })?;
        hasher.update(&buf[..want]);
        offset += want as u64;
    }
    if hasher.finalize().as_slice() != base.sha256 {
        return Err(Error::WrongBase(format!(
            "the delta applies to {} (SHA-256 {}…), the running slot holds something else",
            base.version,
            &crate::hex(&base.sha256)[..16]
        )));
    }
    Ok(())
}

/// Writes delta ops, merging neighbours (a copy that continues the previous
/// copy in the base, zeros after zeros, data after data) so the stream is
/// the same for the same inputs however the caller splits them, and
/// counts what they produce.
pub struct DeltaWriter<W: Write> {
    out: W,
    pending: Option<Pending>,
    stats: DeltaStats,
}

enum Pending {
    Copy { offset: u64, len: u64 },
    Zero(u64),
    Data(Vec<u8>),
}

/// Data ops are flushed at this size: bounds the writer's memory.
const MAX_PENDING_DATA: usize = 1 << 20;

impl<W: Write> DeltaWriter<W> {
    pub fn new(out: W) -> Self {
        DeltaWriter {
            out,
            pending: None,
            stats: DeltaStats::default(),
        }
    }

    pub fn copy(&mut self, offset: u64, len: u64) -> std::io::Result<()> {
        self.stats.copied += len;
        if let Some(Pending::Copy { offset: o, len: l }) = &mut self.pending {
            if *o + *l == offset {
                *l += len;
                return Ok(());
            }
        }
        self.replace(Pending::Copy { offset, len })
    }

    pub fn zero(&mut self, len: u64) -> std::io::Result<()> {
        self.stats.zeroed += len;
        if let Some(Pending::Zero(l)) = &mut self.pending {
            *l += len;
            return Ok(());
        }
        self.replace(Pending::Zero(len))
    }

    pub fn data(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stats.literal += bytes.len() as u64;
        if let Some(Pending::Data(d)) = &mut self.pending {
            if d.len() + bytes.len() <= MAX_PENDING_DATA {
                d.extend_from_slice(bytes);
                return Ok(());
            }
        }
        self.replace(Pending::Data(bytes.to_vec()))
    }

    fn replace(&mut self, next: Pending) -> std::io::Result<()> {
        if let Some(p) = self.pending.replace(next) {
            write_op(&mut self.out, &p)?;
            self.stats.ops += 1;
        }
        Ok(())
    }

    /// Writes the last op; returns the inner writer and what the ops
    /// produce.
    pub fn finish(mut self) -> std::io::Result<(W, DeltaStats)> {
        if let Some(p) = self.pending.take() {
            write_op(&mut self.out, &p)?;
            self.stats.ops += 1;
        }
        Ok((self.out, self.stats))
    }
}

fn write_op(out: &mut impl Write, op: &Pending) -> std::io::Result<()> {
    match op {
        Pending::Copy { offset, len } => {
            out.write_all(&[COPY])?;
            out.write_all(&len.to_le_bytes())?;
            out.write_all(&offset.to_le_bytes())
        }
        Pending::Zero(len) => {
            out.write_all(&[ZERO])?;
            out.write_all(&len.to_le_bytes())
        }
        Pending::Data(bytes) => {
            out.write_all(&[DATA])?;
            out.write_all(&(bytes.len() as u64).to_le_bytes())?;
            out.write_all(bytes)
        }
    }
}

/// One op as read, with what is left of it.
#[derive(Clone, Copy)]
enum Op {
    Copy { offset: u64 },
    Zero,
    Data,
}

/// Reads ops from the decompressed payload and checks each one.
struct Ops<R> {
    inner: R,
    base_size: u64,
    /// The op being served and the bytes left of it.
    current: Option<(Op, u64)>,
    /// Bytes produced so far (for messages).
    produced: u64,
}

impl<R: Read> Ops<R> {
    /// The next op, or None at a clean end of the stream.
    fn next(&mut self) -> Result<Option<(Op, u64)>, Error> {
        let mut tag = [0u8; 1];
        loop {
            match self.inner.read(&mut tag) {
                Ok(0) => return Ok(None),
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(error_from_io(e, "delta")),
            }
        }
        let mut word = [0u8; 8];
        let mut number = |r: &mut R| -> Result<u64, Error> {
            r.read_exact(&mut word)
                .map_err(|e| error_from_io(e, "delta op"))?;
            Ok(u64::from_le_bytes(word))
        };
        let len = number(&mut self.inner)?;
        let op = match tag[0] {
            COPY => {
                let offset = number(&mut self.inner)?;
                if offset
                    .checked_add(len)
                    .is_none_or(|end| end > self.base_size)
                {
                    return Err(self.bad(format!(
                        "copies {len} bytes from offset {offset}, beyond the base's {} bytes",
                        self.base_size
                    )));
                }
                Op::Copy { offset }
            }
            ZERO => Op::Zero,
            DATA => Op::Data,
            other => return Err(self.bad(format!("unknown op 0x{other:02x}"))),
        };
        if len == 0 {
            return Err(self.bad("an op of length 0".into()));
        }
        Ok(Some((op, len)))
    }

    fn bad(&self, what: String) -> Error {
        Error::Delta(format!("at slot byte {}: {what}", self.produced))
    }
}

/// The new slot contents: ops from `inner` (decompressed) applied to
/// `base`, each op checked as it is read. Memory: one copy step (1 MiB) at
/// most, allocated on the first copy.
pub struct Patch<R> {
    ops: Ops<R>,
    base: std::fs::File,
    buf: Vec<u8>,
}

impl<R: Read> Patch<R> {
    pub fn new(inner: R, base: std::fs::File, base_size: u64) -> Self {
        Patch {
            ops: ops(inner, base_size),
            base,
            buf: Vec::new(),
        }
    }

    pub(crate) fn get_mut(&mut self) -> &mut R {
        &mut self.ops.inner
    }
}

fn ops<R>(inner: R, base_size: u64) -> Ops<R> {
    Ops {
        inner,
        base_size,
        current: None,
        produced: 0,
    }
}

impl<R: Read> Read for Patch<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let (op, left) = match self.ops.current {
            Some(c) if c.1 > 0 => c,
            _ => match self.ops.next()? {
                Some(c) => c,
                None => return Ok(0),
            },
        };
        let want = out.len().min(COPY_STEP).min(left as usize);
        let n = match op {
            Op::Zero => {
                out[..want].fill(0);
                want
            }
            Op::Data => match self.ops.inner.read(&mut out[..want])? {
                0 => return Err(Error::Truncated("delta data").into()),
                n => n,
            },
            Op::Copy { offset } => {
                self.buf.resize(want, 0);
                self.base
                    .read_exact_at(&mut self.buf, offset)
                    .map_err(|e| Error::Io(format!("reading the base slot: {e}")))?;
                out[..want].copy_from_slice(&self.buf);
                want
            }
        };
        let op = match op {
            Op::Copy { offset } => Op::Copy {
                offset: offset + n as u64,
            },
            other => other,
        };
        self.ops.current = Some((op, left - n as u64));
        self.ops.produced += n as u64;
        Ok(n)
    }
}

/// What a delta's ops produce, by kind (for `bundle-info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeltaStats {
    pub copied: u64,
    pub zeroed: u64,
    pub literal: u64,
    pub ops: u64,
}

/// Walks the ops of a decompressed delta payload without a base: checks
/// them as [`Patch`] does and counts what they produce.
pub(crate) fn walk(inner: impl Read, base_size: u64) -> Result<DeltaStats, Error> {
    let mut ops = ops(inner, base_size);
    let mut stats = DeltaStats::default();
    let mut sink = vec![0u8; 64 * 1024];
    while let Some((op, len)) = ops.next()? {
        stats.ops += 1;
        match op {
            Op::Copy { .. } => stats.copied += len,
            Op::Zero => stats.zeroed += len,
            Op::Data => {
                let mut left = len;
                while left > 0 {
                    let want = left.min(sink.len() as u64) as usize;
                    ops.inner
                        .read_exact(&mut sink[..want])
                        .map_err(|e| error_from_io(e, "delta data"))?;
                    left -= want as u64;
                }
                stats.literal += len;
            }
        }
        ops.produced += len;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(bytes: &[u8]) -> std::fs::File {
        let mut f = tempfile_in_tmp();
        f.write_all(bytes).unwrap();
        f
    }

    fn tempfile_in_tmp() -> std::fs::File {
        let path = std::env::temp_dir().join(format!(
            "bundle-delta-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    fn apply(stream: &[u8], base: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        Patch::new(stream, file(base), base.len() as u64)
            .read_to_end(&mut out)
            .map_err(|e| error_from_io(e, "delta"))?;
        Ok(out)
    }

    #[test]
    fn ops_merge_and_apply() {
        let base: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let mut w = DeltaWriter::new(Vec::new());
        w.copy(100, 50).unwrap();
        w.copy(150, 50).unwrap();
        w.zero(3).unwrap();
        w.zero(4).unwrap();
        w.data(b"ab").unwrap();
        w.data(b"c").unwrap();
        w.copy(0, 1).unwrap();
        let (stream, written) = w.finish().unwrap();
        assert_eq!(stream.len(), 17 + 9 + 9 + 3 + 17);
        let mut want = base[100..200].to_vec();
        want.extend([0; 7]);
        want.extend(b"abc");
        want.push(base[0]);
        assert_eq!(apply(&stream, &base).unwrap(), want);
        let stats = walk(&stream[..], base.len() as u64).unwrap();
        assert_eq!(stats, written);
        assert_eq!(
            stats,
            DeltaStats {
                copied: 101,
                zeroed: 7,
                literal: 3,
                ops: 4
            }
        );
    }

    #[test]
    fn bad_ops_are_refused() {
        let base = vec![1u8; 4096];
        let op = |tag: u8, len: u64, extra: &[u8]| {
            let mut v = vec![tag];
            v.extend(len.to_le_bytes());
            v.extend(extra);
            v
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (op(COPY, 10, &4090u64.to_le_bytes()), "beyond the base"),
            (op(COPY, 1, &u64::MAX.to_le_bytes()), "beyond the base"),
            (op(b'X', 1, &[]), "unknown op 0x58"),
            (op(ZERO, 0, &[]), "length 0"),
            (op(DATA, 5, b"abc"), "truncated"),
            (vec![ZERO, 1, 0], "truncated"),
        ];
        for (stream, text) in cases {
            let e = apply(&stream, &base).unwrap_err().to_string();
            assert!(e.contains(text), "{stream:?}: {e}");
            let e = walk(&stream[..], 4096).unwrap_err().to_string();
            assert!(e.contains(text), "{stream:?} (walk): {e}");
        }
    }

    #[test]
    fn the_base_must_match() {
        let data = vec![7u8; 3 * COPY_STEP + 5];
        let base = crate::Base {
            version: "1".into(),
            size: data.len() as u64,
            sha256: Sha256::digest(&data).into(),
        };
        let mut longer = data.clone();
        longer.extend([1, 2, 3]);
        check_base(&file(&longer), &base).unwrap();
        let mut other = data.clone();
        other[COPY_STEP * 2] ^= 1;
        let e = check_base(&file(&other), &base).unwrap_err();
        assert!(matches!(e, Error::WrongBase(_)), "{e}");
        let e = check_base(&file(&data[..100]), &base).unwrap_err();
        assert!(e.to_string().contains("fewer than"), "{e}");
    }
}
