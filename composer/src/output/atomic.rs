//! Atomic output files: everything is written under `NAME.partial` and
//! renamed to `NAME` only once complete and on stable storage.
//!
//! A build that fails, panics or is interrupted must never leave a file
//! under the final name that looks like a finished image: CI would publish
//! it, a user would flash it. [`PartialFile`] owns the `.partial` file;
//! [`PartialFile::commit`] makes it durable (fsync the file, rename, fsync
//! the directory so the rename itself survives a power cut, the ext4
//! "rename without fsync" lesson) and dropping it uncommitted removes it.
//! A process killed with SIGKILL still leaves the `.partial` behind, but
//! never a final file; the next run truncates the stale `.partial`.
//!
//! Rejected designs: a temporary file with a random name (`tempfile`)
//! leaks unpredictable names into the output directory when killed, and
//! `O_TMPFILE` + `linkat` cannot replace an existing final file atomically
//! and is unsupported on some filesystems (overlayfs on older kernels).
//! coreos-installer uses the same `.partial` convention.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Suffix of the file being written; stable so users can recognise and
/// clean up what a killed build left behind.
const PARTIAL_SUFFIX: &str = ".partial";

/// An output file being written under `NAME.partial`.
#[derive(Debug)]
pub struct PartialFile {
    file: Arc<File>,
    partial_path: PathBuf,
    final_path: PathBuf,
    committed: bool,
}

impl PartialFile {
    /// Creates `final_path` + `.partial`, empty (an existing one is
    /// truncated), open for reading and writing. The parent directory must
    /// exist.
    pub fn create(final_path: &Path) -> io::Result<PartialFile> {
        let partial_path = partial_path_of(final_path)?;
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&partial_path)?;
        Ok(PartialFile {
            file: Arc::new(file),
            partial_path,
            final_path: final_path.to_path_buf(),
            committed: false,
        })
    }

    /// The open `.partial` file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// A shared handle on the open `.partial` file, for threads that read it
    /// back while it is written (the bmap hasher, a compressor).
    pub fn shared_file(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }

    /// Where the file is being written.
    pub fn partial_path(&self) -> &Path {
        &self.partial_path
    }

    /// The name the file gets on commit.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Flushes the file to stable storage, renames it to its final name and
    /// flushes the directory, so that after a power cut the final name holds
    /// either the complete new file or whatever it held before.
    ///
    /// If syncing the directory fails, the file is already in place under
    /// its final name, but the error is still returned: the rename may not
    /// survive a power cut.
    pub fn commit(mut self) -> io::Result<()> {
        self.file.sync_all()?;
        std::fs::rename(&self.partial_path, &self.final_path)?;
        self.committed = true;
        sync_parent_dir(&self.final_path)
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.committed {
            // Nothing useful can be done about a failure here: the build has
            // already failed, and its error is the one worth reporting.
            let _ = std::fs::remove_file(&self.partial_path);
        }
    }
}

/// Writes `contents` to `path` atomically: through `path.partial`, synced,
/// then renamed. For small files (the bmap, a manifest).
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let partial = PartialFile::create(path)?;
    let mut file = partial.file();
    file.write_all(contents)?;
    partial.commit()
}

/// `dir/name` -> `dir/name.partial`.
fn partial_path_of(final_path: &Path) -> io::Result<PathBuf> {
    let name = final_path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("output path '{}' has no file name", final_path.display()),
        )
    })?;
    let mut partial_name = OsString::from(name);
    partial_name.push(PARTIAL_SUFFIX);
    Ok(final_path.with_file_name(partial_name))
}

/// fsyncs the directory holding `path`, making a rename into it durable.
fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_name_appends_the_suffix() {
        assert_eq!(
            partial_path_of(Path::new("out/sdcard.img")).unwrap(),
            Path::new("out/sdcard.img.partial")
        );
        assert_eq!(
            partial_path_of(Path::new("a.bmap")).unwrap(),
            Path::new("a.bmap.partial")
        );
        assert!(partial_path_of(Path::new("/")).is_err());
    }
}
