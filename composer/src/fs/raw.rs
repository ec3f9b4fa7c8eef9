//! Raw content: a file copied byte for byte into a region (a bootloader
//! blob, a prebuilt filesystem image), and zero fill.
//!
//! [`RawImage`] is genimage's `image = …` with `imageoffset` (here `skip`):
//! the source from `skip` to its end lands at the start of the window. The
//! copy goes through [`Window::copy_from`], so only the data segments of a
//! sparse source are copied (`copy_file_range`, no user-space buffer) and
//! mapped; its holes stay holes in the image and out of the bmap. A hole in
//! the source reads as zero, and the image reads as zero where nothing is
//! written, so the result is byte-identical to a full copy.
//!
//! [`Zeros`] (`fill: zero`) writes nothing but maps its whole window, so
//! that flashing the bmap wipes whatever the device held there (an old
//! filesystem signature that would otherwise be found by blkid).
//!
//! Rejected design: reading the source into memory (blobs can be
//! multi-gigabyte root filesystem images).

use crate::fs::Content;
use crate::input::InputFile;
use crate::output::window::Window;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

/// A file copied into a region, from `skip` bytes into it to its end.
#[derive(Debug)]
pub struct RawImage {
    path: PathBuf,
    /// Opened when prepared: its size then is the one the layout uses.
    input: InputFile,
    skip: u64,
    len: u64,
}

impl RawImage {
    /// Opens `path`; the content is its bytes from offset `skip` to the end.
    pub fn open(path: &Path, skip: u64) -> anyhow::Result<RawImage> {
        let size = std::fs::metadata(path)
            .with_context(|| format!("reading the size of raw image '{}'", path.display()))?
            .len();
        let input = InputFile::open(path, size)?;
        if skip > size {
            bail!(
                "raw image '{}' is {size} bytes long, shorter than its skip offset of {skip} bytes",
                path.display()
            );
        }
        Ok(RawImage {
            path: path.to_path_buf(),
            input,
            skip,
            len: size - skip,
        })
    }

    /// The source file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open source file, checked after a copy with
    /// [`InputFile::check_unchanged`].
    pub fn input(&self) -> &InputFile {
        &self.input
    }
}

impl Content for RawImage {
    fn min_size(&self) -> u64 {
        self.len
    }

    fn write(&self, window: &mut Window<'_>) -> anyhow::Result<()> {
        window
            .copy_from(self.input.file(), self.skip, self.len, 0)
            .with_context(|| format!("copying raw image '{}'", self.path.display()))?;
        self.input.check_unchanged()
    }
}

/// Zero fill: the whole window is mapped as zeros, nothing is written.
#[derive(Clone, Copy, Debug, Default)]
pub struct Zeros;

impl Content for Zeros {
    fn min_size(&self) -> u64 {
        0
    }

    fn write(&self, window: &mut Window<'_>) -> anyhow::Result<()> {
        let len = window.len();
        window.zero(0, len).context("mapping a zero-filled region")
    }
}
