//! Compressed copies of the image (`.zst`, `.xz`, `.gz`), streamed from
//! the finished image file into a staged output (`output::staging`).
//!
//! **Only mapped bytes are read.** The build knows which byte ranges of the
//! image it mapped (see [`Window`](super::window::Window)); everything else
//! is zero. Unmapped ranges are never read from the file: zeros come from
//! memory. An 8 GiB image with 1 GiB of data costs reading and compressing
//! that 1 GiB, plus nearly nothing for the rest (below).
//!
//! **Chunks, both cores.** The image is cut into fixed [`CHUNK_BYTES`]
//! chunks, each compressed *independently* into a complete member of its
//! format (a gzip member, a zstd frame, an xz stream); the output is their
//! concatenation, which `gzip -d`, `zstd -d`, `xz -d`, bmaptool and every
//! decoder built on the reference libraries read as one file (RFC 1952
//! §2.2, RFC 8878 §3, xz file format §2). Independent chunks give:
//! - parallelism for every codec (pigz's idea): worker threads, one per
//!   core, each compresses whole chunks; the writer puts them in order;
//! - a chunk with no mapped byte compresses to the same bytes every time,
//!   so it is compressed once and its output reused: unmapped gigabytes
//!   cost a `write` each 16 MiB;
//! - output that depends only on the input and the codec version, not on
//!   the number of cores (chunk boundaries are fixed), so reproducible
//!   builds stay bit-identical across machines.
//!
//! The ratio loss is negligible: 16 MiB is larger than the window of gzip
//! (32 KiB) and of zstd level 3 (2 MiB), and than the dictionary of xz
//! preset 6 (8 MiB).
//!
//! **Codecs** (encoders in [`codec`], shared with the
//! initramfs; crates and measurements there and in `docs/bmap.md`):
//! compression levels are the command-line tools' defaults (zstd 3, xz 6,
//! gzip 6), with the integrity check those tools write (zstd content
//! checksum, xz CRC64, gzip CRC32). zstd is the format to recommend: xz is
//! two orders of magnitude slower.
//!
//! Rejected designs: one codec stream over the whole image with a reader
//! thread (one core for the codec, unmapped zeros compressed byte by byte);
//! libzstd's or liblzma's own multithreading (their output depends on the
//! thread count and they still compress every zero).

use crate::output::codec;
use crate::output::window::{read_mapped, Extents};
use anyhow::{anyhow, Context};
use liblzma::stream::{Check, LzmaOptions};
use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Size of the independently compressed chunks: large enough that the
/// codecs lose no ratio (see the module doc), small enough that a few per
/// core fit in memory (xz preset 6 itself needs ~94 MiB per encoder).
pub const CHUNK_BYTES: u64 = 16 << 20;

/// Chunks compressed per round, per worker: evens out chunks that take
/// longer than others (mixed data) without holding many in memory.
const CHUNKS_PER_WORKER_PER_ROUND: usize = 2;

/// zstd's command-line default level.
const ZSTD_LEVEL: i32 = 3;
/// xz's command-line default preset.
const XZ_PRESET: u32 = 6;
/// gzip's command-line default level.
const GZIP_LEVEL: u32 = 6;

/// A compressed output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Zstandard (`.zst`): fast, the recommended format.
    Zst,
    /// xz (`.xz`): smaller, much slower.
    Xz,
    /// gzip (`.gz`): for tools that know nothing else.
    Gz,
}

impl Compression {
    /// The usual file name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Zst => "zst",
            Compression::Xz => "xz",
            Compression::Gz => "gz",
        }
    }

    /// Compresses `data` into one complete, independent member of the
    /// format.
    fn compress(self, data: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            Compression::Zst => codec::zstd_encode(data, ZSTD_LEVEL),
            Compression::Xz => {
                let lzma2 = LzmaOptions::new_preset(XZ_PRESET).map_err(io::Error::other)?;
                codec::xz_encode(data, &lzma2, Check::Crc64)
            }
            Compression::Gz => codec::gzip_encode(data, GZIP_LEVEL),
        }
    }
}

/// Writes the image (`image_size` bytes of `image`, of which only `mapped`
/// byte ranges may be non-zero) compressed as `kind` to `out`, an empty
/// file (a staged output, see `output::staging`); `name` is for messages.
pub fn write_compressed(
    image: &File,
    image_size: u64,
    mapped: &Extents,
    kind: Compression,
    out: &File,
    name: &str,
) -> anyhow::Result<()> {
    let mut sink = io::BufWriter::with_capacity(1 << 20, out);
    compress_to(image, image_size, mapped, kind, &mut sink)
        .and_then(|()| sink.flush().map_err(anyhow::Error::from))
        .with_context(|| format!("writing compressed image '{name}'"))
}

/// The chunk pipeline: rounds of chunks compressed in parallel, written in
/// order to `sink`.
fn compress_to(
    image: &File,
    image_size: u64,
    mapped: &Extents,
    kind: Compression,
    sink: &mut dyn Write,
) -> anyhow::Result<()> {
    let chunks = image_size.div_ceil(CHUNK_BYTES);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let round = (workers * CHUNKS_PER_WORKER_PER_ROUND) as u64;
    // The compressed form of a full chunk of zeros, made on first use.
    let mut zero_chunk: Option<Vec<u8>> = None;
    let mut first = 0;
    while first < chunks {
        let last = (first + round).min(chunks);
        let jobs: Vec<Chunk> = (first..last)
            .map(|i| Chunk::new(i, image_size, mapped))
            .collect();
        let results = compress_round(image, mapped, kind, &jobs, workers)?;
        for (job, result) in jobs.iter().zip(results) {
            if result.is_none() && zero_chunk.is_none() {
                zero_chunk = Some(
                    kind.compress(&vec![0u8; CHUNK_BYTES as usize])
                        .context("compressing a chunk of zeros")?,
                );
            }
            let bytes: &[u8] = match &result {
                Some(bytes) => bytes,
                None => zero_chunk.as_deref().unwrap_or_default(),
            };
            sink.write_all(bytes)
                .with_context(|| format!("writing chunk at byte {}", job.start))?;
        }
        first = last;
    }
    Ok(())
}

/// One chunk of the image and whether anything in it is mapped.
#[derive(Debug)]
struct Chunk {
    start: u64,
    len: u64,
    any_mapped: bool,
}

impl Chunk {
    fn new(index: u64, image_size: u64, mapped: &Extents) -> Chunk {
        let start = index * CHUNK_BYTES;
        let end = (start + CHUNK_BYTES).min(image_size);
        let any_mapped = mapped.iter_from(start).next().is_some_and(|(s, _)| s < end);
        Chunk {
            start,
            len: end - start,
            any_mapped,
        }
    }

    /// A full-size chunk with nothing mapped: its compressed form is shared.
    fn is_zero_full(&self) -> bool {
        !self.any_mapped && self.len == CHUNK_BYTES
    }

    /// The chunk's bytes: zeros, with the mapped ranges read from `image`.
    fn read(&self, image: &File, mapped: &Extents, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.resize(usize::try_from(self.len).map_err(io::Error::other)?, 0);
        read_mapped(image, mapped, self.start, buf)
    }
}

/// Compresses `jobs` on up to `workers` threads; `None` for a full chunk of
/// zeros (the caller reuses one compressed copy).
fn compress_round(
    image: &File,
    mapped: &Extents,
    kind: Compression,
    jobs: &[Chunk],
    workers: usize,
) -> anyhow::Result<Vec<Option<Vec<u8>>>> {
    let results: Mutex<Vec<Option<Vec<u8>>>> = Mutex::new(vec![None; jobs.len()]);
    let next = AtomicUsize::new(0);
    let work = || -> anyhow::Result<()> {
        let mut buf = Vec::new();
        while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
            if job.is_zero_full() {
                continue;
            }
            job.read(image, mapped, &mut buf).with_context(|| {
                format!("reading image bytes {}..{}", job.start, job.start + job.len)
            })?;
            let bytes = kind.compress(&buf).with_context(|| {
                format!(
                    "compressing image bytes {}..{}",
                    job.start,
                    job.start + job.len
                )
            })?;
            let index = usize::try_from((job.start - jobs[0].start) / CHUNK_BYTES)?;
            let mut guard = results
                .lock()
                .map_err(|_| anyhow!("a compression thread panicked"))?;
            if let Some(slot) = guard.get_mut(index) {
                *slot = Some(bytes);
            }
        }
        Ok(())
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.min(jobs.len()).max(1))
            .map(|_| scope.spawn(work))
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .map_err(|_| anyhow!("a compression thread panicked"))?
        })
    })?;
    results
        .into_inner()
        .map_err(|_| anyhow!("a compression thread panicked"))
}
