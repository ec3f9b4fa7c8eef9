//! A window on the output image: the byte range one writer fills, in place.
//!
//! Every content writer (ext4, vfat, cpio, raw copies, partition tables)
//! writes through a [`Window`] on the final image file, so that no
//! intermediate full-size copy is ever made. The window checks bounds (a
//! write outside it is a bug in the writer, reported as an error, never a
//! silent overlap with a neighbour) and records which byte ranges it
//! *mapped*: written data, plus ranges that must read back as zero. The bmap
//! is computed from these records and the plan, never by scanning the image
//! for holes (that guess loses zero ranges that must be written, see
//! bmaptool#3).
//!
//! The target file is always freshly created (`.partial`), so anything not
//! written reads as zero: [`Window::zero`] records a must-be-zero range
//! without writing it. Writes use `pwrite` on a shared `&File`, so several
//! windows on one image can be filled from different threads.
//!
//! A writer that fills its window in one ascending sweep (ext4's file data)
//! calls [`Window::settle`] as it goes: everything below that point is
//! final. The image writer listens ([`Window::on_settle`]) to hash those
//! blocks for the bmap and start their writeback while the sweep goes on,
//! instead of after the whole region.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Byte ranges `[start, end)`, kept sorted, disjoint and coalesced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extents {
    ranges: BTreeMap<u64, u64>,
}

impl Extents {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `[start, end)`, merging it with any range it touches.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut start, mut end) = (start, end);
        // The range that starts at or before `start` may reach into the new one.
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back() {
            if e >= start {
                start = s;
                end = end.max(e);
                self.ranges.remove(&s);
            }
        }
        // Ranges that start inside the new one are swallowed.
        let inside: Vec<(u64, u64)> = self
            .ranges
            .range(start..=end)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in inside {
            end = end.max(e);
            self.ranges.remove(&s);
        }
        self.ranges.insert(start, end);
    }

    /// Adds every range of `other`, shifted by `offset`.
    pub fn insert_shifted(&mut self, other: &Extents, offset: u64) {
        for (s, e) in other.iter() {
            self.insert(s + offset, e + offset);
        }
    }

    /// The ranges in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(&s, &e)| (s, e))
    }

    /// The ranges that end after `pos`, in ascending order (the first one
    /// may start before `pos`).
    pub fn iter_from(&self, pos: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        let before = self
            .ranges
            .range(..=pos)
            .next_back()
            .filter(|(_, &e)| e > pos)
            .map(|(&s, &e)| (s, e));
        let after = self
            .ranges
            .range((std::ops::Bound::Excluded(pos), std::ops::Bound::Unbounded))
            .map(|(&s, &e)| (s, e));
        before.into_iter().chain(after)
    }

    /// The ranges in units of `block` bytes, rounded outwards (a block
    /// with any covered byte is in), clipped to `total_blocks`.
    pub fn to_blocks(&self, block: u64, total_blocks: u64) -> Extents {
        let mut blocks = Extents::new();
        for (s, e) in self.iter() {
            blocks.insert(s / block, e.div_ceil(block).min(total_blocks));
        }
        blocks
    }

    /// Total bytes covered.
    pub fn total(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// Reads `buf.len()` bytes of `image` from `start` as the image reads: the
/// `mapped` ranges from the file, zeros elsewhere (never read: unmapped
/// ranges are holes). Used by every copy of a finished image.
pub fn read_mapped(image: &File, mapped: &Extents, start: u64, buf: &mut [u8]) -> io::Result<()> {
    let end = start + buf.len() as u64;
    buf.fill(0);
    for (s, e) in mapped.iter_from(start) {
        if s >= end {
            break;
        }
        let (s, e) = (s.max(start), e.min(end));
        let range = usize::try_from(s - start).map_err(io::Error::other)?
            ..usize::try_from(e - start).map_err(io::Error::other)?;
        image.read_exact_at(&mut buf[range], s)?;
    }
    Ok(())
}

/// Listener of [`Window::settle`]: gets the window's mapped ranges
/// (relative), its base, and the absolute offset below which the window's
/// bytes are final.
pub type SettleFn<'f> = dyn FnMut(&Extents, u64, u64) + 'f;

/// The part of an output file that one writer may fill.
pub struct Window<'f> {
    file: &'f File,
    /// Absolute offset of the window in the file.
    base: u64,
    len: u64,
    /// Mapped ranges, relative to `base`.
    mapped: Extents,
    on_settle: Option<&'f mut SettleFn<'f>>,
}

impl std::fmt::Debug for Window<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("base", &self.base)
            .field("len", &self.len)
            .field("mapped", &self.mapped)
            .finish_non_exhaustive()
    }
}

impl<'f> Window<'f> {
    /// A window of `len` bytes at `base` in `file`, which must read as zero
    /// where nothing is written (a freshly created file).
    pub fn new(file: &'f File, base: u64, len: u64) -> Self {
        Window {
            file,
            base,
            len,
            mapped: Extents::new(),
            on_settle: None,
        }
    }

    /// Calls `listener` whenever the writer [settles](Window::settle).
    pub fn on_settle(mut self, listener: &'f mut SettleFn<'f>) -> Self {
        self.on_settle = Some(listener);
        self
    }

    /// Declares that nothing below `pos` (relative to the window) will be
    /// written or marked again: those bytes are final. A writer calls it as
    /// its ascending sweep advances; calling it is optional and it changes
    /// nothing in the output.
    pub fn settle(&mut self, pos: u64) {
        if let Some(listener) = self.on_settle.as_mut() {
            listener(&self.mapped, self.base, self.base + pos.min(self.len));
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Absolute offset of the window in its file.
    pub fn base(&self) -> u64 {
        self.base
    }

    fn check(&self, pos: u64, len: u64) -> io::Result<()> {
        match pos.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "write of {len} bytes at {pos} is outside the {} byte window",
                    self.len
                ),
            )),
        }
    }

    /// Writes `buf` at `pos` (relative to the window).
    pub fn write_at(&mut self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.check(pos, buf.len() as u64)?;
        self.file.write_all_at(buf, self.base + pos)?;
        self.mapped.insert(pos, pos + buf.len() as u64);
        Ok(())
    }

    /// Marks `[pos, pos+len)` as mapped zeros: it reads as zero already and
    /// must be written as zeros when the image is flashed (e.g. a wiped
    /// superblock area, an ext4 journal on reused media).
    pub fn zero(&mut self, pos: u64, len: u64) -> io::Result<()> {
        self.check(pos, len)?;
        self.mapped.insert(pos, pos + len);
        Ok(())
    }

    /// Copies `len` bytes of `src` starting at `src_pos` to `pos`, keeping
    /// the holes of `src` as holes (only its data segments are copied and
    /// mapped). Uses `copy_file_range`, so the data need not pass through
    /// user space; falls back to read/write where the kernel refuses.
    pub fn copy_from(&mut self, src: &File, src_pos: u64, len: u64, pos: u64) -> io::Result<()> {
        self.check(pos, len)?;
        for (data, hole) in crate::input::data_segments(src, src_pos, src_pos + len)? {
            self.copy_range(src, data, hole - data, pos + (data - src_pos))?;
        }
        Ok(())
    }

    /// Copies a data segment; no hole detection.
    fn copy_range(&mut self, src: &File, src_pos: u64, len: u64, pos: u64) -> io::Result<()> {
        let (mut off_in, mut off_out) = (src_pos, self.base + pos);
        let mut left = len;
        while left > 0 {
            let chunk = usize::try_from(left.min(1 << 30)).unwrap_or(1 << 30);
            match rustix::fs::copy_file_range(
                src,
                Some(&mut off_in),
                self.file,
                Some(&mut off_out),
                chunk,
            ) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the source file changed while it was copied: it is shorter than scanned",
                    ))
                }
                Ok(n) => left -= n as u64,
                Err(rustix::io::Errno::XDEV)
                | Err(rustix::io::Errno::INVAL)
                | Err(rustix::io::Errno::NOSYS)
                | Err(rustix::io::Errno::OPNOTSUPP) => {
                    let done = len - left;
                    self.copy_by_read(src, src_pos + done, left, pos + done)?;
                    left = 0;
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.mapped.insert(pos, pos + len);
        Ok(())
    }

    fn copy_by_read(&mut self, src: &File, src_pos: u64, len: u64, pos: u64) -> io::Result<()> {
        let mut buf = vec![0u8; 1 << 20];
        let mut done = 0;
        while done < len {
            let n = usize::try_from((len - done).min(buf.len() as u64)).unwrap_or(buf.len());
            src.read_exact_at(&mut buf[..n], src_pos + done)?;
            self.file.write_all_at(&buf[..n], self.base + pos + done)?;
            done += n as u64;
        }
        Ok(())
    }

    /// The mapped ranges, relative to the window.
    pub fn mapped(&self) -> &Extents {
        &self.mapped
    }

    /// Ends the window, returning its mapped ranges relative to the window.
    pub fn into_mapped(self) -> Extents {
        self.mapped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn extents_merge_touching_and_overlapping_ranges() {
        let mut e = Extents::new();
        e.insert(10, 20);
        e.insert(30, 40);
        e.insert(20, 25);
        assert_eq!(e.iter().collect::<Vec<_>>(), [(10, 25), (30, 40)]);
        e.insert(5, 35);
        assert_eq!(e.iter().collect::<Vec<_>>(), [(5, 40)]);
        e.insert(50, 50);
        assert_eq!(e.total(), 35);
    }

    proptest! {
        #[test]
        fn extents_cover_exactly_what_was_inserted(ranges in prop::collection::vec((0u64..500, 0u64..50), 0..40)) {
            let mut e = Extents::new();
            let mut covered = vec![false; 600];
            for (s, l) in &ranges {
                e.insert(*s, s + l);
                for b in &mut covered[*s as usize..(*s + *l) as usize] { *b = true; }
            }
            let mut from_extents = vec![false; 600];
            let mut last_end = None;
            for (s, end) in e.iter() {
                prop_assert!(s < end);
                if let Some(prev) = last_end { prop_assert!(s > prev, "ranges must not touch"); }
                last_end = Some(end);
                for b in &mut from_extents[s as usize..end as usize] { *b = true; }
            }
            prop_assert_eq!(covered, from_extents);
        }
    }

    proptest! {
        #[test]
        fn iter_from_lists_exactly_the_ranges_ending_after_pos(
            ranges in prop::collection::vec((0u64..500, 0u64..50), 0..40),
            pos in 0u64..600,
        ) {
            let mut e = Extents::new();
            for (s, l) in &ranges {
                e.insert(*s, s + l);
            }
            let want: Vec<_> = e.iter().filter(|&(_, end)| end > pos).collect();
            prop_assert_eq!(e.iter_from(pos).collect::<Vec<_>>(), want);
        }
    }

    #[test]
    fn settle_reports_final_bytes_to_the_listener() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("img")).unwrap();
        file.set_len(4096).unwrap();
        let mut seen = Vec::new();
        let mut listener = |m: &Extents, base: u64, upto: u64| {
            seen.push((m.iter().collect::<Vec<_>>(), base, upto));
        };
        let mut w = Window::new(&file, 1024, 512).on_settle(&mut listener);
        w.write_at(b"abc", 10).unwrap();
        w.settle(100);
        w.settle(u64::MAX);
        drop(w);
        assert_eq!(
            seen,
            [(vec![(10, 13)], 1024, 1124), (vec![(10, 13)], 1024, 1536)]
        );
    }

    #[test]
    fn window_writes_in_place_and_refuses_to_leave_its_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("img"))
            .unwrap();
        file.set_len(4096).unwrap();
        let mut w = Window::new(&file, 1024, 512);
        w.write_at(b"abc", 10).unwrap();
        assert!(w.write_at(b"abc", 510).is_err());
        w.zero(100, 50).unwrap();
        let mut buf = [0u8; 3];
        file.read_exact_at(&mut buf, 1034).unwrap();
        assert_eq!(&buf, b"abc");
        assert_eq!(
            w.mapped().iter().collect::<Vec<_>>(),
            [(10, 13), (100, 150)]
        );
    }

    #[test]
    fn copy_keeps_holes_of_a_sparse_source() {
        let dir = tempfile::tempdir().unwrap();
        let src = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("src"))
            .unwrap();
        src.set_len(4 << 20).unwrap();
        src.write_all_at(&[7u8; 4096], 0).unwrap();
        src.write_all_at(&[9u8; 4096], 3 << 20).unwrap();
        let dst = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("dst"))
            .unwrap();
        dst.set_len(8 << 20).unwrap();
        let mut w = Window::new(&dst, 1 << 20, 4 << 20);
        w.copy_from(&src, 0, 4 << 20, 0).unwrap();
        let mapped: Vec<_> = w.mapped().iter().collect();
        // tmpfs and ext4 both report the two written blocks as data; the
        // 3 MiB between them is a hole and stays unmapped.
        assert!(w.mapped().total() < (1 << 20), "{mapped:?}");
        let mut b = [0u8; 4096];
        dst.read_exact_at(&mut b, (1 << 20) + (3 << 20)).unwrap();
        assert_eq!(b, [9u8; 4096]);
    }
}
