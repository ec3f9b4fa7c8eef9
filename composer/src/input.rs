//! Reading the build's inputs.
//!
//! Text inputs parsed whole (descriptions, layers, device tables) are read
//! bounded ([`read_text`]): a name such as `/dev/zero` or a huge file is an
//! error instead of a read until memory runs out.
//!
//! Files copied into images ([`InputFile`]: file contents, raw images) are
//! opened when their data is copied and checked after the copy: the size
//! must still be the one the layout was planned with (the scan's), and
//! size and modification time must not have moved while the bytes were
//! copied. A file rewritten by a build still running beside us fails the
//! build, naming the file, instead of being stored truncated (as zeros) or
//! cut at its scanned size.
//!
//! The blocks of a file that hold anything but zeros ([`InputFile::data_blocks`])
//! are what a filesystem that keeps holes stores, so a file stored sparse
//! and the same content stored dense give the same image (`mke2fs -d`
//! skips blocks of zeros while copying; our layout is planned before the
//! copy, so the blocks are found when the filesystem is prepared).
//!
//! Rejected design: checking against the scan's modification time too;
//! trees are scanned with times clamped to `SOURCE_DATE_EPOCH`, and a file
//! rewritten with the same size between the scan and the copy is stored
//! consistently (the copy is checked), so the size is what the layout needs.

use anyhow::Context;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The most bytes a description, layer or device table may have: far more
/// than any real one (the largest example is a few KiB).
pub const MAX_TEXT_BYTES: u64 = 16 << 20;

/// Why a text input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Longer than [`MAX_TEXT_BYTES`]; the limit falls at this line and
    /// column (1-based), so a diagnostic can point at it.
    #[error("longer than {} MiB", MAX_TEXT_BYTES >> 20)]
    TooLong { line: u32, column: u32 },
}

/// Reads `path` as UTF-8 text of at most [`MAX_TEXT_BYTES`].
pub fn read_text(path: &Path) -> Result<String, TextError> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_TEXT_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_TEXT_BYTES {
        let before = &bytes[..bytes.len() - 1];
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).saturating_add(1);
        let line = count(before.iter().filter(|&&b| b == b'\n').count());
        let column = count(before.iter().rev().take_while(|&&b| b != b'\n').count());
        return Err(TextError::TooLong { line, column });
    }
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e).into())
}

/// A host file changed while the build read it: the build failed (exit 1);
/// the description is not at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Changed(pub String);

/// A host file opened to be copied into an image; see the module docs.
#[derive(Debug)]
pub struct InputFile {
    file: File,
    path: PathBuf,
    /// Size and modification time (seconds, nanoseconds) when opened.
    stamp: (u64, i64, i64),
}

impl InputFile {
    /// Opens `path`, which was scanned at `scanned_size` bytes.
    pub fn open(path: &Path, scanned_size: u64) -> anyhow::Result<InputFile> {
        let file = File::open(path).with_context(|| format!("opening '{}'", path.display()))?;
        let input = InputFile {
            stamp: stamp(&file, path)?,
            file,
            path: path.to_path_buf(),
        };
        if input.stamp.0 != scanned_size {
            return Err(Changed(format!(
                "'{}' changed while the image was built: {scanned_size} bytes when scanned, {} now; \
                 build again once the file is complete",
                path.display(),
                input.stamp.0
            )).into());
        }
        Ok(input)
    }

    /// The open file, to copy from.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Fails if the file's size or modification time changed since it was
    /// opened; call after the copy.
    pub fn check_unchanged(&self) -> anyhow::Result<()> {
        let now = stamp(&self.file, &self.path)?;
        if now != self.stamp {
            return Err(Changed(format!(
                "'{}' changed while it was copied into the image ({} bytes, then {}); \
                 build again once the file is complete",
                self.path.display(),
                self.stamp.0,
                now.0
            ))
            .into());
        }
        tracing::trace!(
            "copied '{}' ({} bytes, unchanged)",
            self.path.display(),
            now.0
        );
        Ok(())
    }

    /// Runs of `block_size`-byte blocks (first block, count) that hold a
    /// non-zero byte: holes of the file and blocks of zeros are left out,
    /// so the answer depends on the content only. Reads the data segments
    /// (a 5 GiB file with two blocks of data reads two blocks) and checks
    /// that the file did not change meanwhile.
    pub fn data_blocks(&self, block_size: u64) -> anyhow::Result<Vec<(u64, u64)>> {
        use std::os::unix::fs::FileExt;
        let size = self.stamp.0;
        let reading = || format!("reading '{}'", self.path.display());
        let bs = usize::try_from(block_size).with_context(reading)?;
        let chunk = (ZERO_SCAN_CHUNK / bs).max(1) * bs;
        let mut buf = vec![0u8; chunk];
        let mut runs = Vec::new();
        // The first byte not yet looked at (segments rounded out to blocks
        // may overlap).
        let mut next = 0;
        for (start, end) in data_segments(&self.file, 0, size).with_context(reading)? {
            let mut pos = (start / block_size * block_size).max(next);
            let end = end
                .div_ceil(block_size)
                .saturating_mul(block_size)
                .min(size);
            while pos < end {
                let len = usize::try_from((end - pos).min(chunk as u64)).unwrap_or(chunk);
                let got = &mut buf[..len];
                self.file.read_exact_at(got, pos).map_err(|_| {
                    Changed(format!(
                        "'{}' changed while it was read: shorter than its {size} bytes; \
                         build again once the file is complete",
                        self.path.display()
                    ))
                })?;
                push_data_blocks(&mut runs, pos, got, bs);
                pos += len as u64;
            }
            next = pos;
        }
        self.check_unchanged()?;
        Ok(runs)
    }

    /// Reads the whole file (at most its scanned size) and checks it.
    pub fn read_all(self) -> anyhow::Result<Vec<u8>> {
        let mut data = Vec::new();
        (&self.file)
            .take(self.stamp.0)
            .read_to_end(&mut data)
            .with_context(|| format!("reading '{}'", self.path.display()))?;
        self.check_unchanged()?;
        if data.len() as u64 != self.stamp.0 {
            return Err(Changed(format!(
                "'{}' changed while it was read ({} bytes, then {})",
                self.path.display(),
                self.stamp.0,
                data.len()
            ))
            .into());
        }
        Ok(data)
    }
}

/// The data segments of `file` between `start` and `end` (`SEEK_DATA` /
/// `SEEK_HOLE`), in order; the whole range where the filesystem cannot
/// tell holes.
pub fn data_segments(file: &File, start: u64, end: u64) -> io::Result<Vec<(u64, u64)>> {
    use rustix::fs::{seek, SeekFrom};
    let mut segments = Vec::new();
    let mut cursor = start;
    while cursor < end {
        let data = match seek(file, SeekFrom::Data(cursor)) {
            Ok(d) => d,
            // ENXIO: no data after `cursor`; the rest is a hole.
            Err(rustix::io::Errno::NXIO) => break,
            // The filesystem cannot tell holes: all of it is data.
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::OPNOTSUPP) => cursor,
            Err(e) => return Err(e.into()),
        };
        if data >= end {
            break;
        }
        let hole = seek(file, SeekFrom::Hole(data)).map_or(end, |h| h.min(end));
        segments.push((data, hole));
        cursor = hole;
    }
    Ok(segments)
}

/// What a block of zeros is compared with (memcmp is vectorized; a byte
/// loop is not).
static ZEROS: [u8; 4096] = [0; 4096];

/// The largest read while looking for blocks of zeros.
const ZERO_SCAN_CHUNK: usize = 1 << 20;

/// Runs of `block_size`-byte blocks of `data` (of a file at `base`, a
/// multiple of the block size) that hold a non-zero byte, appended to `runs`
/// as (first block, count), merged with the last run when adjacent.
pub fn push_data_blocks(runs: &mut Vec<(u64, u64)>, base: u64, data: &[u8], block_size: usize) {
    for (i, block) in data.chunks(block_size).enumerate() {
        if block.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()]) {
            continue;
        }
        let n = base / block_size as u64 + i as u64;
        match runs.last_mut() {
            Some((first, count)) if *first + *count == n => *count += 1,
            _ => runs.push((n, 1)),
        }
    }
}

fn stamp(file: &File, path: &Path) -> anyhow::Result<(u64, i64, i64)> {
    let meta = file
        .metadata()
        .with_context(|| format!("reading the metadata of '{}'", path.display()))?;
    Ok((meta.len(), meta.mtime(), meta.mtime_nsec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_long_text_names_where_the_limit_falls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        // Two short lines, then one line running past the limit.
        let mut text = b"a: 1\nb: 2\n".to_vec();
        text.resize(usize::try_from(MAX_TEXT_BYTES).unwrap() + 10, b'x');
        std::fs::write(&path, &text).unwrap();
        match read_text(&path) {
            Err(TextError::TooLong { line, column }) => {
                assert_eq!(
                    (line, column),
                    (3, u32::try_from(MAX_TEXT_BYTES).unwrap() - 10 + 1)
                );
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(&path, b"a: 1\n").unwrap();
        assert_eq!(read_text(&path).unwrap(), "a: 1\n");
    }
}
