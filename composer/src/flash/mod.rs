//! `image-composer flash IMAGE TARGET`: writes the mapped ranges of an
//! image, as its bmap lists them, to a block device or a file, checking
//! each range's SHA-256 as it is written and reading every written range
//! back from the device afterwards.
//!
//! **Input.** The image raw or compressed (`.zst`, `.xz`, `.gz`, read as a
//! stream, concatenated members allowed as our own copies are). The bmap is
//! `--bmap`, else the image's name with `.bmap` appended after removing a
//! compression suffix (`sd.img.zst` -> `sd.img.bmap`), as bmaptool finds
//! it; any bmap bmaptool 3.x writes (format 2.0, SHA-256) is read.
//!
//! **Refusals** (`target`): a device that backs the running root, is
//! mounted, holds a mounted partition, is in use, or is smaller than the
//! image; a block device is written only after a confirmation that names
//! its model and size (`--yes` skips it; without a terminal to ask on,
//! `--yes` is required). A file target is created or truncated and sized to
//! the image (unmapped ranges read as zeros, as holes).
//!
//! **Checks.** Each range is hashed as its bytes pass to the target: a
//! mismatch with the bmap stops the write (the image or its bmap is wrong).
//! After a sync, the page cache of the target is dropped
//! (`POSIX_FADV_DONTNEED`) and every range is read back and hashed again
//! (`--no-verify` skips this).
//!
//! **Progress.** On a terminal, one line redrawn with bytes, rate and time
//! left; otherwise one line per stage.
//!
//! Rejected: writing every block (bmaptool's "no bmap" mode: slow, and the
//! build always makes a bmap); `O_DIRECT` writes (alignment rules for
//! every buffer, for little gain over writeback plus one sync).

pub mod target;

use crate::compose::Error;
use crate::diag::Diagnostics;
use crate::units::human;
use anyhow::{bail, Context};
use bmap_parser::Bmap;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bytes moved per read and write.
const IO_CHUNK: usize = 4 << 20;
/// Compressed inputs, by suffix.
const COMPRESSED: [&str; 3] = [".zst", ".xz", ".gz"];
/// How often a terminal progress line is redrawn.
const REDRAW: Duration = Duration::from_millis(250);

/// What `flash` is asked to do.
#[derive(Debug)]
pub struct Request {
    pub image: PathBuf,
    pub target: PathBuf,
    pub bmap: Option<PathBuf>,
    pub verify: bool,
    pub yes: bool,
}

/// The default bmap of `image`: `X.bmap`, where X is the image's name
/// without a compression suffix.
pub fn bmap_path(image: &Path) -> PathBuf {
    let text = image.as_os_str().to_string_lossy();
    let stem = COMPRESSED
        .iter()
        .find_map(|s| text.strip_suffix(s))
        .unwrap_or(&text);
    PathBuf::from(format!("{stem}.bmap"))
}

/// Opens `image` as a stream of its uncompressed bytes.
fn open_image(image: &Path) -> anyhow::Result<Box<dyn Read>> {
    let file = File::open(image).with_context(|| format!("opening image '{}'", image.display()))?;
    let file = io::BufReader::with_capacity(1 << 20, file);
    let name = image.to_string_lossy();
    Ok(if name.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::with_buffer(file)?)
    } else if name.ends_with(".xz") {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(file))
    } else if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

fn problem(path: &Path, key: &str, message: String, help: &str) -> Error {
    Error::Input(Diagnostics::about_file(path, key, message, help))
}

/// Runs `flash` (see the module documentation).
pub fn flash(request: &Request) -> Result<(), Error> {
    let bmap_file = request
        .bmap
        .clone()
        .unwrap_or_else(|| bmap_path(&request.image));
    let text = crate::input::read_text(&bmap_file).map_err(|e| {
        problem(
            &bmap_file,
            "bmap",
            format!("cannot read the bmap: {e}"),
            "build with `outputs: [raw, bmap]`, or name the bmap with --bmap FILE",
        )
    })?;
    let bmap = Bmap::from_xml(&text).map_err(|e| {
        problem(
            &bmap_file,
            "bmap",
            format!("not a bmap bmaptool 3.x reads: {e}"),
            "name the image's own .bmap with --bmap FILE",
        )
    })?;
    if !request.image.is_file() {
        return Err(problem(
            &request.image,
            "IMAGE",
            "is not a file".to_string(),
            "name the built image (NAME.img, or NAME.img.zst ...)",
        ));
    }
    let size = bmap.image_size();
    let target = target::open(&request.target, size, Path::new("/"))
        .with_context(|| format!("opening target '{}'", request.target.display()))?
        .map_err(|r| problem(&request.target, "TARGET", r.message, r.help))?;
    if target.is_device && !request.yes {
        confirm(request, &target, &bmap)?;
    }
    let mut progress = Progress::new(bmap.total_mapped_size());
    write_ranges(request, &bmap, &target.file, &mut progress)?;
    if request.verify {
        verify(request, &bmap, &target.file, &mut progress)?;
    } else {
        tracing::info!("flash: read-back skipped (--no-verify)");
    }
    Ok(())
}

/// Asks on the terminal; without one, `--yes` is required.
fn confirm(request: &Request, target: &target::Target, bmap: &Bmap) -> Result<(), Error> {
    let name = request.target.display();
    if !io::stdin().is_terminal() {
        return Err(problem(
            &request.target,
            "TARGET",
            format!(
                "writing to device ({}, {}) needs a confirmation, and stdin is not a terminal",
                target.description,
                human(target.size)
            ),
            "pass --yes to write without asking",
        ));
    }
    eprint!(
        "Write '{}' ({} mapped of {}) to {name} ({}, {})?\nEverything on {name} is lost. Type yes to continue: ",
        request.image.display(),
        human(bmap.total_mapped_size()),
        human(bmap.image_size()),
        target.description,
        human(target.size),
    );
    let mut answer = String::new();
    io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    if answer.trim() != "yes" {
        return Err(Error::Build(anyhow::anyhow!(
            "not confirmed: nothing was written to {name}"
        )));
    }
    Ok(())
}

/// The range's bytes hash to what the bmap says (SHA-256: the only
/// checksum of bmap format 2.0).
fn matches(range: &bmap_parser::BlockRange, hasher: Sha256) -> bool {
    hasher.finalize().as_slice() == range.checksum().as_slice()
}

/// Streams the image, writing each mapped range to the target and checking
/// its hash.
fn write_ranges(
    request: &Request,
    bmap: &Bmap,
    out: &File,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let mut ranges: Vec<_> = bmap.block_map().collect();
    ranges.sort_by_key(|r| r.offset());
    let mut input = open_image(&request.image)?;
    let image = request.image.display();
    let mut pos = 0u64;
    let mut buf = vec![0u8; IO_CHUNK];
    progress.stage("writing");
    for range in ranges {
        let (start, len) = (range.offset(), range.length());
        if start < pos {
            bail!("the bmap's ranges overlap at byte {start}: it is not a valid bmap");
        }
        // Skip to the range: seek-free, so compressed streams work too.
        let skipped = io::copy(&mut (&mut input).take(start - pos), &mut io::sink())
            .with_context(|| format!("reading '{image}'"))?;
        if skipped != start - pos {
            bail!(
                "'{image}' ends at byte {} before the bmap's range at {start}",
                pos + skipped
            );
        }
        let mut hasher = Sha256::new();
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(IO_CHUNK as u64) as usize;
            input.read_exact(&mut buf[..n]).with_context(|| {
                format!(
                    "reading '{image}' at byte {} (shorter than its bmap?)",
                    start + done
                )
            })?;
            hasher.update(&buf[..n]);
            out.write_all_at(&buf[..n], start + done).with_context(|| {
                format!(
                    "writing '{}' at byte {}",
                    request.target.display(),
                    start + done
                )
            })?;
            done += n as u64;
            progress.advance(n as u64);
        }
        if !matches(range, hasher) {
            bail!(
                "'{image}' bytes {start}..{} do not match the SHA-256 in its bmap: the image or the bmap is not the one built with it",
                start + len
            );
        }
        pos = start + len;
    }
    out.sync_all()
        .with_context(|| format!("syncing '{}'", request.target.display()))?;
    progress.finish("wrote");
    Ok(())
}

/// Reads every range back from the target, past the page cache, and checks
/// its hash.
fn verify(
    request: &Request,
    bmap: &Bmap,
    out: &File,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let name = request.target.display();
    rustix::fs::fadvise(out, 0, None, rustix::fs::Advice::DontNeed)
        .with_context(|| format!("dropping the cached pages of '{name}'"))?;
    let mut buf = vec![0u8; IO_CHUNK];
    progress.stage("verifying");
    for range in bmap.block_map() {
        let (start, len) = (range.offset(), range.length());
        let mut hasher = Sha256::new();
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(IO_CHUNK as u64) as usize;
            out.read_exact_at(&mut buf[..n], start + done)
                .with_context(|| format!("reading back '{name}' at byte {}", start + done))?;
            hasher.update(&buf[..n]);
            done += n as u64;
            progress.advance(n as u64);
        }
        if !matches(range, hasher) {
            bail!(
                "read-back of '{name}' bytes {start}..{} differs from the image: the device did not store what was written",
                start + len
            );
        }
    }
    progress.finish("verified");
    Ok(())
}

/// Progress of one stage: a redrawn line on a terminal, else a line at the
/// start and the end of each stage.
struct Progress {
    total: u64,
    done: u64,
    stage: &'static str,
    started: Instant,
    drawn: Option<Instant>,
    tty: bool,
}

impl Progress {
    fn new(total: u64) -> Progress {
        Progress {
            total,
            done: 0,
            stage: "",
            started: Instant::now(),
            drawn: None,
            tty: io::stderr().is_terminal(),
        }
    }

    fn stage(&mut self, stage: &'static str) {
        self.stage = stage;
        self.done = 0;
        self.started = Instant::now();
        if !self.tty {
            tracing::info!("flash: {stage} {}", human(self.total));
        }
    }

    fn advance(&mut self, n: u64) {
        self.done += n;
        if !self.tty || self.drawn.is_some_and(|t| t.elapsed() < REDRAW) {
            return;
        }
        self.drawn = Some(Instant::now());
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / secs;
        let left = (self.total - self.done.min(self.total)) as f64 / rate.max(1.0);
        eprint!(
            "\r{}: {} of {}, {}/s, {:.0}s left   ",
            self.stage,
            human(self.done),
            human(self.total),
            human(rate as u64),
            left
        );
        let _ = io::stderr().flush();
    }

    fn finish(&mut self, verb: &str) {
        let secs = self.started.elapsed().as_secs_f64();
        if self.tty {
            eprintln!();
        }
        tracing::info!(
            "flash: {verb} {} in {secs:.1}s ({}/s)",
            human(self.done),
            human((self.done as f64 / secs.max(0.001)) as u64)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bmap_of_a_compressed_image_drops_the_suffix() {
        assert_eq!(bmap_path(Path::new("o/sd.img")), Path::new("o/sd.img.bmap"));
        assert_eq!(
            bmap_path(Path::new("o/sd.img.zst")),
            Path::new("o/sd.img.bmap")
        );
        assert_eq!(bmap_path(Path::new("sd.img.xz")), Path::new("sd.img.bmap"));
        assert_eq!(bmap_path(Path::new("sd.img.gz")), Path::new("sd.img.bmap"));
    }
}
