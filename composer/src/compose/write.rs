//! Writing the planned image: every region in disk order through a
//! [`Window`] on one fresh `.partial` file, hashing for the bmap on a second
//! thread as blocks become final, then the bmap, compressed copies and
//! standalone artifacts.
//!
//! Hashing overlaps writing: regions are written in ascending order of
//! their start, and no region writes outside its own range, so once region
//! *i* is written every block that ends at or before the start of region
//! *i+1* is final. Inside a region, a writer that sweeps upwards (ext4's
//! file data) [settles](Window::settle) as it goes, and the blocks below
//! are final too. Final blocks go to the hasher (when a bmap is asked for)
//! and to the kernel's writeback (`Feed`), so neither the hashing nor the
//! final fsync waits for the end of the image. Table blocks are written
//! first, so they are final when the cursor passes them. Identical contents
//! (`same-as`, one artifact in two partitions of one size) are written once
//! and then copied with `copy_file_range`, keeping holes and mapping.

use super::prepare::{Contents, Prepared, Use};
use crate::config::{Description, OutputKind};
use crate::fs::Content;
use crate::output::bmap::{self, Hasher, BLOCK_SIZE};
use crate::output::compress::{self, Compression};
use crate::output::staging::Staging;
use crate::output::window::{Extents, Window};
use crate::output::{qcow2, simg};
use crate::plan::{Plan, RegionKind};
use crate::ptable;
use crate::units::human;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

/// What a build wrote, for the summary line and for tests.
#[derive(Debug)]
pub struct Written {
    /// Every output in the output directory, in the order written.
    pub files: Vec<PathBuf>,
    pub mapped_bytes: u64,
}

/// Writes everything `desc` asks for into `staging`, then commits it all to
/// the output directory at once.
pub fn write_all(
    desc: &Description,
    plan: &Plan,
    contents: &Contents,
    mut staging: Staging,
) -> Result<Written> {
    let name = &desc.image.name.value;
    let image_name = OutputKind::Raw.file_name(name);
    let outputs: Vec<OutputKind> = desc.outputs.iter().map(|o| o.value).collect();
    // Without `raw` the image is only the source of its bmap and copies.
    let image = Arc::new(if outputs.contains(&OutputKind::Raw) {
        staging.create(&image_name)?
    } else {
        staging.create_scratch(&image_name)?.0
    });
    image
        .set_len(plan.disk_size)
        .with_context(|| format!("sizing '{image_name}'"))?;
    tracing::debug!(
        "outputs: {}",
        outputs
            .iter()
            .map(|o| format!("{o:?}").to_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let hasher = if outputs.contains(&OutputKind::Bmap) {
        Some(
            Hasher::spawn(Arc::clone(&image), plan.disk_size)
                .context("starting the bmap hasher")?,
        )
    } else {
        None
    };
    let (mapped, firsts) =
        write_regions(desc, plan, contents, &image, &image_name, hasher.as_ref())?;
    if let Some(hasher) = hasher {
        let ranges = hasher
            .finish()
            .with_context(|| format!("hashing '{image_name}' for its bmap"))?;
        write_text(
            &mut staging.create_bmap(&image_name)?,
            &bmap::render(plan.disk_size, &ranges),
            &image_name,
        )?;
    }

    for &kind in &outputs {
        if matches!(kind, OutputKind::Raw | OutputKind::Bmap) {
            continue;
        }
        let copy_name = kind.file_name(name);
        let copy = staging.create(&copy_name)?;
        let (size, compressed) = (plan.disk_size, |codec| {
            compress::write_compressed(&image, plan.disk_size, &mapped, codec, &copy, &copy_name)
        });
        match kind {
            OutputKind::Zst => compressed(Compression::Zst)?,
            OutputKind::Xz => compressed(Compression::Xz)?,
            OutputKind::Gz => compressed(Compression::Gz)?,
            OutputKind::Simg => simg::write_simg(&image, size, &mapped, &copy, &copy_name)?,
            OutputKind::Qcow2 => qcow2::write_qcow2(&image, size, &mapped, &copy, &copy_name)?,
            OutputKind::Raw | OutputKind::Bmap => {}
        }
        tracing::info!("{}: {copy_name}", kind.keyword());
    }
    write_artifacts(desc, contents, &image, &firsts, &mut staging)?;
    for (name, verity) in contents.verity(desc) {
        let file_name = format!("{name}.verity");
        let mut file = staging.create(&file_name)?;
        std::io::Write::write_all(&mut file, verity.env_text().as_bytes())
            .with_context(|| format!("writing '{file_name}'"))?;
        tracing::info!("verity({name}): {file_name}, roothash {}", verity.root_hash);
    }
    drop(image);
    let files = staging.commit()?;
    tracing::info!(
        "image: {image_name} ({} mapped of {})",
        human(mapped.total()),
        human(plan.disk_size)
    );
    Ok(Written {
        files,
        mapped_bytes: mapped.total(),
    })
}

/// Writes a small text output (a bmap) into its staged file.
fn write_text(file: &mut File, text: &str, of: &str) -> Result<()> {
    use std::io::Write;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing the bmap of '{of}'"))
}

/// Where each distinct content was first written: (content, length) ->
/// (start in the image, mapped ranges relative to it).
type Firsts = HashMap<(Use, u64), (u64, Extents)>;

/// Writes tables and regions; returns every mapped byte range and [`Firsts`].
fn write_regions(
    desc: &Description,
    plan: &Plan,
    contents: &Contents,
    file: &File,
    image_name: &str,
    hasher: Option<&Hasher>,
) -> Result<(Extents, Firsts)> {
    let mut mapped = Extents::new();
    for (offset, bytes) in ptable::encode(plan) {
        let mut w = Window::new(file, offset, bytes.len() as u64);
        w.write_at(&bytes, 0)
            .with_context(|| format!("writing the partition table to '{}'", image_name))?;
        mapped.insert_shifted(w.mapped(), offset);
    }

    // First window of each identical content: (key, length) -> (start, mapped).
    let mut written = Firsts::new();
    let mut feed = Feed {
        hasher,
        file,
        done: 0,
    };
    let regions = &plan.regions;
    for (i, region) in regions.iter().enumerate() {
        if let RegionKind::Partition(p) | RegionKind::Blob(p) = region.kind {
            let planned = &plan.partitions[p];
            let using = &contents.uses[planned.spec];
            let prepared = contents.get(using);
            let key = (using.clone(), region.size);
            let what = format!("'{}'", planned.name);
            let mut settle = |win: &Extents, base: u64, upto: u64| {
                feed.advance(&[(&mapped, 0), (win, base)], upto / BLOCK_SIZE, FEED_BATCH)
            };
            let mut w = Window::new(file, region.start, region.size).on_settle(&mut settle);
            match written.get(&key) {
                Some((from, extents)) if prepared.is_position_independent() => {
                    tracing::info!("copy({}): same content as at {from:#x}", planned.name);
                    copy_extents(&mut w, file, *from, extents)
                        .with_context(|| format!("copying {what} in '{}'", image_name))?;
                }
                _ if !desc.partitions[planned.spec].holes.is_empty() => {
                    let holes = &desc.partitions[planned.spec].holes;
                    write_around_holes(&mut w, prepared, holes)
                        .with_context(|| format!("writing {what} to '{}'", image_name))?;
                }
                _ => {
                    tracing::info!(
                        "{}({}): {} at {:#x}",
                        kind_name(prepared),
                        planned.name,
                        human(region.size),
                        region.start
                    );
                    prepared
                        .write(&mut w, region.start / u64::from(plan.sector_size))
                        .with_context(|| format!("writing {what} to '{}'", image_name))?;
                    written
                        .entry(key)
                        .or_insert_with(|| (region.start, w.mapped().clone()));
                }
            }
            let extents = w.into_mapped();
            mapped.insert_shifted(&extents, region.start);
        }
        // Every block ending at or before the next region's start is final.
        let boundary = regions
            .get(i + 1)
            .map_or(plan.disk_size.div_ceil(BLOCK_SIZE), |next| {
                next.start / BLOCK_SIZE
            });
        feed.advance(&[(&mapped, 0)], boundary, 0);
    }
    feed.advance(&[(&mapped, 0)], plan.disk_size.div_ceil(BLOCK_SIZE), 0);
    Ok((mapped, written))
}

/// Blocks handed on at least this many at a time while a region is being
/// written (32 MiB): few enough calls, small enough to keep the hasher busy.
const FEED_BATCH: u64 = (32 << 20) / BLOCK_SIZE;

/// Hands final blocks on as the write cursor advances: to the bmap hasher,
/// and to the kernel to start writing them back, so that neither waits for
/// the end of the image (the final fsync then only waits for the tail).
struct Feed<'a> {
    hasher: Option<&'a Hasher>,
    file: &'a File,
    /// Blocks below this were handed on.
    done: u64,
}

impl Feed<'_> {
    /// Blocks below `upto` are final; `sources` are mapped ranges with the
    /// offset they are relative to. Waits for at least `batch` new blocks.
    fn advance(&mut self, sources: &[(&Extents, u64)], upto: u64, batch: u64) {
        if upto < self.done + batch.max(1) {
            return;
        }
        let blocks = blocks_between(sources, self.done, upto);
        if let Some(hasher) = self.hasher {
            hasher.submit(blocks.iter().cloned());
        }
        // POSIX_FADV_DONTNEED on dirty pages starts their writeback
        // (WB_SYNC_NONE) and leaves them cached: pages are only dropped once
        // clean, and these were written just now. A failure only costs time.
        for r in &blocks {
            let _ = rustix::fs::fadvise(
                self.file,
                r.start * BLOCK_SIZE,
                std::num::NonZeroU64::new((r.end - r.start) * BLOCK_SIZE),
                rustix::fs::Advice::DontNeed,
            );
        }
        self.done = upto;
    }
}

/// Writes a raw blob except where it declares holes: the table (or another
/// region) lives there and must not be overwritten.
fn write_around_holes(
    w: &mut Window<'_>,
    prepared: &Prepared,
    holes: &[crate::config::Spanned<crate::config::Hole>],
) -> Result<()> {
    let Prepared::Raw(raw) = prepared else {
        anyhow::bail!("only raw images can declare holes");
    };
    let src = raw.input().file();
    let len = raw.min_size();
    let mut cuts: Vec<(u64, u64)> = holes
        .iter()
        .map(|h| {
            (
                h.value.offset.bytes(),
                h.value.offset.bytes() + h.value.size.bytes(),
            )
        })
        .collect();
    cuts.sort_unstable();
    let mut pos = 0;
    for (start, end) in cuts.into_iter().chain([(len, len)]) {
        let start = start.min(len);
        if start > pos {
            w.copy_from(src, pos, start - pos, pos)?;
        }
        pos = pos.max(end);
    }
    raw.input().check_unchanged()
}

/// Copies what an identical content mapped at `from` into `w`.
fn copy_extents(w: &mut Window<'_>, file: &File, from: u64, extents: &Extents) -> Result<()> {
    for (s, e) in extents.iter() {
        w.copy_from(file, from + s, e - s, s)?;
        // Ranges the original only marked as zeros are holes in the file:
        // keep them mapped in the copy too.
        w.zero(s, e - s)?;
    }
    Ok(())
}

/// The blocks in `[first, end)` that the mapped byte ranges of `sources`
/// (each relative to its offset) touch, as sorted, merged block ranges.
fn blocks_between(sources: &[(&Extents, u64)], first: u64, end: u64) -> Vec<Range<u64>> {
    let mut all: Vec<Range<u64>> = Vec::new();
    for (extents, offset) in sources {
        let from = (first * BLOCK_SIZE).saturating_sub(*offset);
        for (s, e) in extents.iter_from(from) {
            let (s, e) = (s + offset, e + offset);
            let (a, b) = ((s / BLOCK_SIZE).max(first), e.div_ceil(BLOCK_SIZE).min(end));
            if s / BLOCK_SIZE >= end {
                break;
            }
            if a < b {
                all.push(a..b);
            }
        }
    }
    all.sort_unstable_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::new();
    for r in all {
        match out.last_mut() {
            Some(last) if last.end >= r.start => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

fn kind_name(p: &Prepared) -> &'static str {
    match p {
        Prepared::Empty => "empty",
        Prepared::Zero => "zeros",
        Prepared::Raw(_) => "raw",
        Prepared::Vfat(_) => "vfat",
        Prepared::Initramfs(_) => "initramfs",
        Prepared::Ext4(_) => "ext4",
        Prepared::Squashfs(_) => "squashfs",
        Prepared::Erofs(_) => "erofs",
        Prepared::Swap(_) => "swap",
    }
}

/// Writes artifacts that have an `output:` file, copying from the image
/// where a partition holds the same bytes.
fn write_artifacts(
    desc: &Description,
    contents: &Contents,
    image: &File,
    firsts: &Firsts,
    staging: &mut Staging,
) -> Result<()> {
    for model in &desc.artifacts {
        let Some(output) = &model.output else {
            continue;
        };
        let name = &model.name.value;
        let Some(artifact) = contents.artifacts.get(name) else {
            continue;
        };
        let file_name = &output.value;
        let filesystem = artifact.is_filesystem();
        let len = artifact.file_size();
        let file = staging.create(file_name)?;
        file.set_len(len)
            .with_context(|| format!("sizing '{file_name}'"))?;
        let mut w = Window::new(&file, 0, len);
        let twin = firsts
            .get(&(Use::Artifact(name.clone()), len))
            .filter(|_| artifact.prepared.is_position_independent());
        match twin {
            Some((from, extents)) => copy_extents(&mut w, image, *from, extents)?,
            None => artifact.prepared.write(&mut w, 0)?,
        }
        let mapped = w.into_mapped();
        if filesystem {
            let ranges = bmap::hash_all(&file, len, &mapped)?;
            write_text(
                &mut staging.create_bmap(file_name)?,
                &bmap::render(len, &ranges),
                file_name,
            )?;
        }
        tracing::info!("artifact({name}): {file_name}");
    }
    Ok(())
}
