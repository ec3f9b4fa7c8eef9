//! Staged outputs: every file a build writes is created in a private
//! staging directory inside the output directory and put in place only when
//! all of them are complete, by one commit whose order never leaves a bmap
//! beside a file it does not describe.
//!
//! A [`Staging`] owns, once first used:
//! - a lock on the output directory (`flock` on the directory itself), so
//!   a second build into the same directory is refused instead of racing;
//! - a staging directory `.image-composer-<pid>.partial/` created by
//!   `mkdir` (which never follows a link) with mode 0700, holding `out/`
//!   (the outputs, under their final names) and `scratch/` (filesystems
//!   used as files inside other filesystems, never committed). Every file
//!   in it is created with `O_CREAT|O_EXCL|O_NOFOLLOW`: a name somebody
//!   planted (a symlink to a file elsewhere) makes the build fail, it is
//!   never written through.
//!
//! Dropping an uncommitted `Staging` removes the staging directory (a
//! failed build leaves the previous outputs as they were); SIGINT and
//! SIGTERM remove it too (`remove_on_signals`). A staging directory left
//! by SIGKILL is removed by the next build into the directory, which holds
//! the lock and so knows that no other build owns it.
//!
//! `validate` and `plan` use [`Staging::private`]: the same layout in a
//! fresh mode-0700 directory under `$TMPDIR`, created only if a scratch
//! file is needed, removed when done, never committed.
//!
//! The commit protocol and why a crash never leaves a wrong bmap are in
//! docs/architecture.md ("Commit protocol"); [`Staging::commit`] implements
//! it.
//!
//! Rejected designs: `NAME.partial` beside each final file (the previous
//! design) has predictable names anyone with write access to the directory
//! can plant a link at, and commits file by file; `O_TMPFILE` + `linkat`
//! cannot replace an existing file and is missing on some filesystems;
//! swapping a whole output directory (`renameat2(RENAME_EXCHANGE)`) would
//! replace files the build does not own (other tools' outputs live there
//! too, e.g. Buildroot's `images/`).

use anyhow::{bail, Context, Result};
use std::fs::{DirBuilder, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Staging directories are named `{STAGING_PREFIX}{pid}[-n]{STAGING_SUFFIX}`;
/// the `.partial` suffix tells users what a killed build left behind.
const STAGING_PREFIX: &str = ".image-composer-";
const STAGING_SUFFIX: &str = ".partial";
/// The suffix of a block map: `X.bmap` describes the file `X`.
pub const BMAP_SUFFIX: &str = ".bmap";

/// Staging directories that exist now, removed by the signal handler. The
/// lock is held through a whole commit so that a signal never interrupts
/// one halfway.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Where staged files go.
#[derive(Debug)]
enum Target {
    /// A build: staged in and committed to this output directory.
    OutputDir(PathBuf),
    /// `validate`, `plan`: scratch only, under the temp directory.
    Private,
}

/// The staging area of one command; see the module documentation.
#[derive(Debug)]
pub struct Staging {
    target: Target,
    /// The staging directory, once created.
    root: Option<PathBuf>,
    /// Held while the staging directory exists; `flock` ends with it.
    _lock: Option<File>,
    /// Outputs in creation order: (final name, is a bmap).
    outputs: Vec<(String, bool)>,
    scratch_count: usize,
}

impl Staging {
    /// Stages outputs for `out_dir`; nothing is created or locked until the
    /// first file is.
    pub fn for_output_dir(out_dir: &Path) -> Staging {
        Staging::new(Target::OutputDir(out_dir.to_path_buf()))
    }

    /// A scratch-only staging area under `$TMPDIR` for commands that write
    /// no outputs; created on first use, removed on drop.
    pub fn private() -> Staging {
        Staging::new(Target::Private)
    }

    fn new(target: Target) -> Staging {
        Staging {
            target,
            root: None,
            _lock: None,
            outputs: Vec::new(),
            scratch_count: 0,
        }
    }

    /// Creates the output `name` (a plain file name) in the staging
    /// directory, empty, open for reading and writing.
    pub fn create(&mut self, name: &str) -> Result<File> {
        self.create_output(name, false)
    }

    /// Creates the bmap of the output `of`, named `{of}.bmap`.
    pub fn create_bmap(&mut self, of: &str) -> Result<File> {
        self.create_output(&format!("{of}{BMAP_SUFFIX}"), true)
    }

    fn create_output(&mut self, name: &str, bmap: bool) -> Result<File> {
        if matches!(self.target, Target::Private) {
            bail!("'{name}': validate and plan write no outputs");
        }
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            bail!("'{name}' is not a plain file name");
        }
        if self.outputs.iter().any(|(n, _)| n == name) {
            bail!("'{name}' is written twice");
        }
        let path = self.root()?.join("out").join(name);
        let file = create_new(&path).with_context(|| format!("creating '{}'", path.display()))?;
        self.outputs.push((name.to_string(), bmap));
        Ok(file)
    }

    /// Creates a scratch file (never committed) and returns it with its
    /// path, for inputs that must be files (a filesystem placed in another).
    pub fn create_scratch(&mut self, what: &str) -> Result<(File, PathBuf)> {
        self.scratch_count += 1;
        let path = self
            .root()?
            .join("scratch")
            .join(format!("{}.{what}", self.scratch_count));
        let file = create_new(&path).with_context(|| format!("creating '{}'", path.display()))?;
        Ok((file, path))
    }

    /// The staging directory, created (with the lock taken) on first use.
    fn root(&mut self) -> Result<&Path> {
        if self.root.is_none() {
            let parent = match &self.target {
                Target::OutputDir(dir) => {
                    std::fs::create_dir_all(dir).with_context(|| {
                        format!("creating output directory '{}'", dir.display())
                    })?;
                    self._lock = Some(lock(dir)?);
                    remove_stale(dir)?;
                    dir.clone()
                }
                Target::Private => std::env::temp_dir(),
            };
            let root = make_private_dir(&parent)?;
            for sub in ["out", "scratch"] {
                DirBuilder::new()
                    .mode(0o700)
                    .create(root.join(sub))
                    .with_context(|| format!("creating '{}'", root.join(sub).display()))?;
            }
            tracing::debug!("staging: {}", root.display());
            self.root = Some(root);
        }
        match &self.root {
            Some(root) => Ok(root),
            None => bail!("no staging directory"),
        }
    }

    /// Puts every staged output in place in the output directory, in the
    /// order described in docs/architecture.md ("Commit protocol"):
    /// everything synced; every final name checked to be replaceable; old
    /// bmaps of the replaced files removed; data files renamed; bmaps
    /// renamed last; each step made durable (directory fsync) before the
    /// next. Returns the final paths in creation order.
    pub fn commit(mut self) -> Result<Vec<PathBuf>> {
        let Target::OutputDir(dir) = &self.target else {
            bail!("validate and plan commit nothing");
        };
        let dir = dir.clone();
        let Some(root) = self.root.clone() else {
            return Ok(Vec::new());
        };
        let staged = root.join("out");
        // Holding LIVE: a signal waits for the commit to end.
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        for (name, _) in &self.outputs {
            let path = staged.join(name);
            File::open(&path)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("syncing '{}'", path.display()))?;
        }
        // Preflight: a final name held by a directory (or anything but a
        // file or link) would fail its rename halfway through the commit.
        for (name, _) in &self.outputs {
            let path = dir.join(name);
            if let Ok(meta) = std::fs::symlink_metadata(&path) {
                if meta.is_dir() {
                    bail!(
                        "cannot replace '{}': it is a directory; remove it or choose another output name",
                        path.display()
                    );
                }
            }
        }
        // 1. No bmap may outlive the file it describes: remove the old
        // bmap of every file replaced, and the old file of a bmap staged
        // without its file (`outputs: [bmap, zst]`: the new bmap describes
        // the new image, not the one a previous build left).
        let mut stale = Vec::new();
        for (name, bmap) in &self.outputs {
            if *bmap {
                stale.push(name.clone());
                if let Some(subject) = name.strip_suffix(BMAP_SUFFIX) {
                    if !self.outputs.iter().any(|(n, _)| n == subject) {
                        stale.push(subject.to_string());
                    }
                }
            } else {
                stale.push(format!("{name}{BMAP_SUFFIX}"));
            }
        }
        for old in stale.iter().map(|n| dir.join(n)) {
            match std::fs::remove_file(&old) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing '{}'", old.display()));
                }
                _ => {}
            }
        }
        sync_dir(&dir)?;
        // 2. Data files, then 3. bmaps, each step durable before the next.
        let mut done = Vec::new();
        for bmaps in [false, true] {
            for (name, _) in self.outputs.iter().filter(|(_, b)| *b == bmaps) {
                let (from, to) = (staged.join(name), dir.join(name));
                std::fs::rename(&from, &to).with_context(|| {
                    format!("renaming '{}' to '{}'", from.display(), to.display())
                })?;
                tracing::trace!("commit: {}", to.display());
                done.push(to);
            }
            sync_dir(&dir)?;
        }
        self.remove_root(&mut live);
        Ok(done)
    }

    /// Removes the staging directory and forgets it.
    fn remove_root(&mut self, live: &mut Vec<PathBuf>) {
        if let Some(root) = self.root.take() {
            // Nothing useful can be done about a failure here: the build
            // has either failed already (its error is the one to report) or
            // committed everything.
            let _ = std::fs::remove_dir_all(&root);
            live.retain(|p| *p != root);
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        self.remove_root(&mut live);
    }
}

/// Opens a file that must not exist: `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0644.
fn create_new(path: &Path) -> io::Result<File> {
    File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .mode(0o644)
        .open(path)
}

/// Takes the output directory's lock (`flock` on the directory itself:
/// no lock file to leave behind or to plant a link at), or says that
/// another build holds it.
fn lock(dir: &Path) -> Result<File> {
    let handle = File::options()
        .read(true)
        .custom_flags(rustix::fs::OFlags::DIRECTORY.bits() as i32)
        .open(dir)
        .with_context(|| format!("opening output directory '{}'", dir.display()))?;
    match rustix::fs::flock(
        &handle,
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    ) {
        Ok(()) => Ok(handle),
        Err(rustix::io::Errno::WOULDBLOCK) => bail!(
            "another image-composer build is writing to '{}'; \
             wait for it to finish or build into another directory",
            dir.display()
        ),
        Err(e) => Err(io::Error::from(e))
            .with_context(|| format!("locking output directory '{}'", dir.display())),
    }
}

/// Removes staging directories of killed builds (we hold the lock, so no
/// live build owns one).
fn remove_stale(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading '{}'", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(STAGING_PREFIX) && name.ends_with(STAGING_SUFFIX) {
            tracing::debug!("removing a killed build's staging directory '{name}'");
            // remove_dir_all never follows links; a planted link is removed.
            let path = entry.path();
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
    }
    Ok(())
}

/// Creates a fresh mode-0700 staging directory in `parent` (`mkdir` never
/// follows a link; an existing name is skipped, not reused) and registers
/// it for removal on signals.
fn make_private_dir(parent: &Path) -> Result<PathBuf> {
    remove_on_signals()?;
    let pid = std::process::id();
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for n in 0..MAX_NAME_TRIES {
        let name = match n {
            0 => format!("{STAGING_PREFIX}{pid}{STAGING_SUFFIX}"),
            n => format!("{STAGING_PREFIX}{pid}-{n}{STAGING_SUFFIX}"),
        };
        let path = parent.join(name);
        match DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {
                live.push(path.clone());
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("creating '{}'", path.display()));
            }
        }
    }
    bail!(
        "no free staging directory name in '{}' after {MAX_NAME_TRIES} tries",
        parent.display()
    )
}

/// Names tried for a staging directory before giving up (others' files or
/// links may hold some).
const MAX_NAME_TRIES: u32 = 100;

/// fsyncs a directory, making renames and removals in it durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory '{}'", dir.display()))
}

/// Removes every staging directory when SIGINT or SIGTERM arrives, then
/// exits with 128 + the signal number (the shell's convention). A commit
/// in progress finishes first. Installed with the first staging directory.
fn remove_on_signals() -> Result<()> {
    static INSTALLED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    INSTALLED
        .get_or_init(|| install_signal_thread().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn install_signal_thread() -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
                for path in live.iter() {
                    let _ = std::fs::remove_dir_all(path);
                }
                std::process::exit(128 + signal);
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}
