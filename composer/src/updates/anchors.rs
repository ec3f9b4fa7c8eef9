//! The fine matching of `delta` (its third pass): small windows of what
//! the block passes left unmatched, located in the base by one scan of it.
//!
//! rsync's direction, the one of the block passes (index the base, roll
//! over the new contents), would need an index entry per base offset a
//! small match may start at: for 32-byte windows every 16 bytes that is
//! more index than slot. This pass turns it round, as a diff does when the
//! changed part is small: it samples windows of the unmatched new bytes
//! (`WINDOW` bytes every `STEP`, at most `MAX_ANCHORS` of them, so the
//! host's memory is bounded by what is left to ship, not by the slot),
//! then rolls a hash over every byte of the base once (both cores, each on
//! its share of the base offsets) and notes, for each sampled window, the
//! first base offset that holds it. Any stretch of `WINDOW + STEP - 1`
//! bytes or more that the new contents share with the base contains a
//! sampled window, so it is found wherever it lies in the base: a file
//! rebuilt with edits a few hundred bytes apart costs its edits.
//!
//! The result names candidates only: the caller compares the bytes before
//! it copies anything (a hash collision costs a comparison, never a wrong
//! byte). The first occurrence is kept, which is deterministic whatever
//! the number of threads (each thread keeps its first, the lowest wins).

use std::os::unix::fs::FileExt;

/// Bytes per sampled window.
pub(super) const WINDOW: usize = 32;
/// Distance between sampled windows while the anchors fit `MAX_ANCHORS`.
const STEP: usize = 16;
/// Anchors at most: 40 bytes each at the peak (the sorted windows, each
/// thread's first offsets, the result: 80 MiB), plus the 16 MiB bitmap.
const MAX_ANCHORS: u64 = 2 << 20;
/// Bits of the bitmap in front of the sorted anchors (16 MiB).
const BITS_LOG: u32 = 27;
/// Bytes of the base read at a time by one scanning thread.
const SCAN_BYTES: usize = 4 << 20;
/// No base offset noted (yet).
const NONE: u64 = u64::MAX;

/// The multiplier of the polynomial rolling hash (odd), and its power
/// that weighs the byte leaving a window.
const MUL: u64 = 0x9e37_79b9_7f4a_7c15;
const OUT_WEIGHT: u64 = pow(MUL, WINDOW as u32 - 1);

const fn pow(mut b: u64, mut e: u32) -> u64 {
    let mut r = 1u64;
    while e > 0 {
        if e & 1 == 1 {
            r = r.wrapping_mul(b);
        }
        b = b.wrapping_mul(b);
        e >>= 1;
    }
    r
}

fn hash(window: &[u8]) -> u64 {
    window.iter().fold(0u64, |h, &x| {
        h.wrapping_mul(MUL).wrapping_add(u64::from(x) + 1)
    })
}

fn roll(h: u64, out: u8, into: u8) -> u64 {
    h.wrapping_sub((u64::from(out) + 1).wrapping_mul(OUT_WEIGHT))
        .wrapping_mul(MUL)
        .wrapping_add(u64::from(into) + 1)
}

/// Windows of the new contents, by hash, waiting to be located.
pub(super) struct Anchors {
    step: usize,
    /// (hash, offset in the new contents), sorted.
    windows: Vec<(u64, u64)>,
    bits: Vec<u64>,
}

impl Anchors {
    /// Room for the windows of `open` unmatched bytes.
    pub(super) fn for_open(open: u64) -> Anchors {
        let step = (open.div_ceil(MAX_ANCHORS) as usize).max(STEP);
        Anchors {
            step,
            windows: Vec::new(),
            bits: Vec::new(),
        }
    }

    /// Samples the windows of `bytes`, found at `at` of the new contents.
    /// Windows of zeros are left out: zeros cost nothing compressed, and
    /// every unused stretch of the base would match them.
    pub(super) fn sample(&mut self, at: u64, bytes: &[u8]) {
        let mut p = 0;
        while p + WINDOW <= bytes.len() {
            let window = &bytes[p..p + WINDOW];
            if window.iter().any(|b| *b != 0) {
                self.windows.push((hash(window), at + p as u64));
            }
            p += self.step;
        }
    }

    fn bit(h: u64) -> usize {
        (h >> (64 - BITS_LOG)) as usize
    }

    /// Locates the sampled windows in the base: the first offset in the
    /// byte ranges `spans` (sorted, the base's data; the rest is zeros)
    /// where each one occurs. Returns (new offset, base offset) pairs in
    /// the order of the new contents.
    pub(super) fn locate(
        mut self,
        base: &std::fs::File,
        spans: &[(u64, u64)],
    ) -> std::io::Result<Vec<(u64, u64)>> {
        if self.windows.is_empty() {
            return Ok(Vec::new());
        }
        self.windows.sort_unstable();
        self.bits = vec![0; (1 << BITS_LOG) / 64];
        for &(h, _) in &self.windows {
            let b = Self::bit(h);
            self.bits[b / 64] |= 1 << (b % 64);
        }
        // Window starts, split evenly between the threads.
        let starts: u64 = spans.iter().map(|(s, e)| e - s).sum();
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8)) as u64;
        let share = starts.div_ceil(workers).max(1);
        let mut bounds = Vec::new();
        let mut seen = 0;
        let mut lo = spans.first().map_or(0, |s| s.0);
        for &(s, e) in spans {
            let mut at = s;
            while seen + (e - at) >= share && bounds.len() + 1 < workers as usize {
                let cut = at + (share - seen);
                bounds.push((lo, cut));
                lo = cut;
                at = cut;
                seen = 0;
            }
            seen += e - at;
        }
        bounds.push((lo, u64::MAX));
        let this = &self;
        let found = std::thread::scope(|scope| {
            let threads: Vec<_> = bounds
                .iter()
                .map(|&(lo, hi)| scope.spawn(move || this.scan(base, spans, lo, hi)))
                .collect();
            let mut found: Option<Vec<u64>> = None;
            for t in threads {
                let mine = t
                    .join()
                    .map_err(|_| std::io::Error::other("a scanning thread panicked"))??;
                found = Some(match found {
                    None => mine,
                    Some(f) => f.into_iter().zip(mine).map(|(a, b)| a.min(b)).collect(),
                });
            }
            Ok::<_, std::io::Error>(found.unwrap_or_default())
        })?;
        let mut located: Vec<(u64, u64)> = self
            .windows
            .iter()
            .zip(found)
            .filter(|(_, b)| *b != NONE)
            .map(|(&(_, at), b)| (at, b))
            .collect();
        located.sort_unstable();
        Ok(located)
    }

    /// The first base offset of each window among the window starts in
    /// `lo..hi`.
    fn scan(
        &self,
        base: &std::fs::File,
        spans: &[(u64, u64)],
        lo: u64,
        hi: u64,
    ) -> std::io::Result<Vec<u64>> {
        let mut found = vec![NONE; self.windows.len()];
        let mut buf = vec![0u8; SCAN_BYTES + WINDOW - 1];
        for &(s, e) in spans {
            if e - s < WINDOW as u64 {
                continue;
            }
            let end = (e - WINDOW as u64 + 1).min(hi);
            let mut start = s.max(lo);
            while start < end {
                let n = (end - start).min(SCAN_BYTES as u64) as usize;
                let bytes = &mut buf[..n + WINDOW - 1];
                base.read_exact_at(bytes, start)?;
                let mut h = hash(&bytes[..WINDOW]);
                for k in 0..n {
                    if k > 0 {
                        h = roll(h, bytes[k - 1], bytes[k + WINDOW - 1]);
                    }
                    let b = Self::bit(h);
                    if self.bits[b / 64] & (1 << (b % 64)) != 0 {
                        self.note(h, start + k as u64, &mut found);
                    }
                }
                start += n as u64;
            }
        }
        Ok(found)
    }

    fn note(&self, h: u64, at: u64, found: &mut [u64]) {
        let first = self.windows.partition_point(|w| w.0 < h);
        for (i, w) in self.windows[first..].iter().enumerate() {
            if w.0 != h {
                break;
            }
            let f = &mut found[first + i];
            if *f == NONE {
                *f = at;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn rolling_equals_hashing_each_window() {
        let bytes: Vec<u8> = (0..500u32).map(|i| (i * 7919 % 251) as u8).collect();
        let mut h = hash(&bytes[..WINDOW]);
        for k in 1..=bytes.len() - WINDOW {
            h = roll(h, bytes[k - 1], bytes[k + WINDOW - 1]);
            assert_eq!(h, hash(&bytes[k..k + WINDOW]), "window at {k}");
        }
    }

    #[test]
    fn windows_are_found_at_their_first_base_offset_across_threads_and_spans() {
        // A base of pseudo-random bytes; the new bytes are pieces of it.
        let mut x = 1u32;
        let base_bytes: Vec<u8> = (0..(3 << 20))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&base_bytes).unwrap();
        // The piece at 2 MiB + 5 also sits (copied) at 100 000: the first wins.
        let piece = base_bytes[(2 << 20) + 5..(2 << 20) + 5 + 4096].to_vec();
        let mut copy = base_bytes.clone();
        copy[100_000..100_000 + 4096].copy_from_slice(&piece);
        let mut file2 = tempfile::tempfile().unwrap();
        file2.write_all(&copy).unwrap();
        let spans = [(0, 1 << 20), ((1 << 20) + 4096, 3 << 20)];
        let mut anchors = Anchors::for_open(4096);
        anchors.sample(7, &piece);
        let located = anchors.locate(&file2, &spans).unwrap();
        assert_eq!(located.len(), 4096 / STEP - 1);
        for (at, b) in &located {
            assert_eq!(b - 100_000, at - 7, "window of new offset {at}");
        }
        // Without the copy: found where the piece came from.
        let mut anchors = Anchors::for_open(4096);
        anchors.sample(7, &piece);
        let located = anchors.locate(&file, &spans).unwrap();
        assert_eq!(located.len(), 4096 / STEP - 1);
        assert!(located.iter().all(|(at, b)| b - ((2 << 20) + 5) == at - 7));
        // Outside the spans nothing is found.
        let mut anchors = Anchors::for_open(4096);
        anchors.sample(0, &base_bytes[(1 << 20) + 8..(1 << 20) + 8 + 1024]);
        let located = anchors.locate(&file, &spans).unwrap();
        assert!(located.is_empty(), "{located:?}");
    }
}
