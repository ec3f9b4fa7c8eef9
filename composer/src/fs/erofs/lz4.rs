//! An LZ4 block encoder that fills a fixed output: as much input as
//! compresses into `capacity` bytes (LZ4's "destSize" mode), which is
//! what an EROFS physical cluster needs.
//!
//! Why our own: `lz4_flex` (the crate the initramfs uses) compresses a
//! whole input and has neither destSize nor a high-compression mode;
//! binary-searching the input length around it costs a dozen compressions
//! per cluster. The C library (`lz4-sys`) would add a C build to every
//! Buildroot and Yocto host build. The encoder is small: a hash-chain
//! match finder (one candidate for `lz4`, `2^(level-1)` for `lz4hc`, with
//! one step of lazy matching), sequences emitted while they fit. As in
//! LZ4 HC, a candidate that differs from the input at the length of the
//! best match so far is skipped without being measured (it cannot be
//! longer), and matches are measured eight bytes at a time: on the bench
//! rootfs that took a third of the CPU off, with the same output.
//!
//! The block format and its end rules are LZ4's `lz4_Block_format.md`: a
//! sequence is a token (literal count, match length - 4), literals, a
//! 16-bit offset and extra length bytes; the last 5 bytes are literals and
//! the last match starts at least 12 bytes before the end. The decoder
//! (the kernel's `LZ4_decompress_safe`) checks them against the end of
//! the decoded data, so the encoder keeps room for a final run of
//! literals long enough for the last match.

/// Shortest match.
const MIN_MATCH: usize = 4;
/// The last bytes of a block are literals (`LASTLITERALS`).
const LAST_LITERALS: usize = 5;
/// A match starts at least this far from the end (`MFLIMIT`).
const MF_LIMIT: usize = 12;
/// Farthest match offset.
const MAX_DISTANCE: usize = 65_535;
const HASH_BITS: u32 = 16;
/// Positions remembered by the chain (the match window).
const CHAIN_SIZE: usize = 1 << 16;

/// How hard the match finder looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effort {
    /// Candidates examined per position.
    pub attempts: u32,
    /// Look one position ahead for a longer match before taking one.
    pub lazy: bool,
}

fn hash(v: u32) -> usize {
    (v.wrapping_mul(2_654_435_761) >> (32 - HASH_BITS)) as usize
}

fn read32(data: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&data[at..at + 4]);
    u32::from_le_bytes(word)
}

fn read64(data: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&data[at..at + 8]);
    u64::from_le_bytes(word)
}

/// The length of the common prefix of `a` and `b`, eight bytes at a time.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut len = 0;
    while len + 8 <= n {
        let x = read64(a, len) ^ read64(b, len);
        if x != 0 {
            return len + (x.trailing_zeros() / 8) as usize;
        }
        len += 8;
    }
    while len < n && a[len] == b[len] {
        len += 1;
    }
    len
}

/// Bytes of a length's extension (after the 15 in the token nibble).
fn extra_len(n: usize) -> usize {
    if n >= 15 {
        (n - 15) / 255 + 1
    } else {
        0
    }
}

fn push_len(out: &mut Vec<u8>, mut n: usize) {
    if n < 15 {
        return;
    }
    n -= 15;
    while n >= 255 {
        out.push(255);
        n -= 255;
    }
    out.push(n as u8);
}

/// The match finder over one buffer: a hash head per 4-byte value and a
/// chain of earlier positions with the same hash. Reused from block to
/// block of a buffer without clearing: positions before the block's start
/// are ignored.
pub struct Finder {
    head: Vec<u32>,
    chain: Vec<u32>,
    /// Positions below this are inserted.
    next: usize,
    /// The current block's start.
    start: usize,
}

/// "No position" in the tables (positions are stored + 1).
const NONE: u32 = 0;

impl Finder {
    pub fn new() -> Self {
        Finder {
            head: vec![NONE; 1 << HASH_BITS],
            chain: vec![NONE; CHAIN_SIZE],
            next: 0,
            start: 0,
        }
    }

    /// Inserts every position below `to`.
    fn insert_to(&mut self, data: &[u8], to: usize) {
        while self.next < to {
            let p = self.next;
            if p + MIN_MATCH <= data.len() {
                let h = hash(read32(data, p));
                self.chain[p % CHAIN_SIZE] = self.head[h];
                self.head[h] = p as u32 + 1;
            }
            self.next += 1;
        }
    }

    /// The longest match at `at` (length, offset) ending at or before
    /// `limit`, at least `MIN_MATCH` long.
    fn find(
        &mut self,
        data: &[u8],
        at: usize,
        limit: usize,
        attempts: u32,
    ) -> Option<(usize, usize)> {
        self.insert_to(data, at);
        let want = read32(data, at);
        let mut cand = self.head[hash(want)];
        let mut best: Option<(usize, usize)> = None;
        let mut left = attempts;
        while cand != NONE && left > 0 {
            let c = cand as usize - 1;
            // Before this block, or left from an earlier block's search
            // past where that block ended.
            if c < self.start || c >= at || at - c > MAX_DISTANCE {
                break;
            }
            left -= 1;
            // Only a longer match counts, so a candidate that differs at
            // the best length so far is skipped before it is measured.
            let longer = best.is_none_or(|(l, _)| data[c + l] == data[at + l]);
            if longer && read32(data, c) == want {
                let len = MIN_MATCH
                    + common_prefix(&data[c + MIN_MATCH..limit], &data[at + MIN_MATCH..limit]);
                if best.is_none_or(|(l, _)| len > l) {
                    best = Some((len, at - c));
                    if at + len == limit {
                        break;
                    }
                }
            }
            let next = self.chain[c % CHAIN_SIZE];
            // An entry overwritten by a position a window later ends it.
            if next != NONE && next as usize > c {
                break;
            }
            cand = next;
        }
        best.filter(|&(l, _)| at + l <= limit && l >= MIN_MATCH)
    }
}

/// Compresses the longest prefix of `buf[start..]` whose LZ4 block fits
/// `capacity` bytes (matches only inside it); returns the block and the
/// prefix length. `finder` is reused over one `buf`, blocks in order.
pub fn compress_dest_size(
    finder: &mut Finder,
    buf: &[u8],
    start: usize,
    capacity: usize,
    effort: Effort,
) -> (Vec<u8>, usize) {
    let src = buf;
    let mut out = Vec::with_capacity(capacity);
    finder.start = start;
    finder.next = start;
    let mut anchor = start;
    let mut ip = start;
    // The shortest final literal run the last match needs.
    let mut min_final = 0;
    let n = src.len();
    // Matches end LAST_LITERALS before the input's end.
    let limit = n.saturating_sub(LAST_LITERALS);
    while ip + MF_LIMIT <= n {
        let Some((mut len, mut off)) = finder.find(src, ip, limit, effort.attempts) else {
            ip += 1;
            continue;
        };
        if effort.lazy && ip + 1 + MF_LIMIT <= n {
            if let Some((l2, o2)) = finder.find(src, ip + 1, limit, effort.attempts) {
                if l2 > len + 1 {
                    ip += 1;
                    (len, off) = (l2, o2);
                }
            }
        }
        // Extend backwards over pending literals.
        while ip > anchor && ip - off > start && src[ip - 1] == src[ip - off - 1] {
            ip -= 1;
            len += 1;
        }
        let lits = ip - anchor;
        let final_after = (MF_LIMIT - len.min(MF_LIMIT - LAST_LITERALS)).max(LAST_LITERALS);
        // Room for this sequence but its length bytes, and the final
        // literals it requires.
        let fixed = 1 + extra_len(lits) + lits + 2 + 1 + extra_len(final_after) + final_after;
        let Some(avail) = capacity.checked_sub(out.len() + fixed) else {
            break;
        };
        // A match longer than its length bytes fit is cut to what fits
        // (a long run of zeros fills the cluster with one match); that
        // keeps it at least 18 long, so the final literals it needs stay 5.
        if extra_len(len - MIN_MATCH) > avail {
            len = MIN_MATCH + 14 + 255 * avail;
        }
        let token = ((lits.min(15) as u8) << 4) | (len - MIN_MATCH).min(15) as u8;
        out.push(token);
        push_len(&mut out, lits);
        out.extend_from_slice(&src[anchor..ip]);
        out.extend_from_slice(&(off as u16).to_le_bytes());
        push_len(&mut out, len - MIN_MATCH);
        ip += len;
        anchor = ip;
        min_final = final_after;
    }
    // The final literals: as many as fit, at least what the last match
    // needs (room for that was kept).
    let room = capacity - out.len();
    let mut lits = (n - anchor).min(room.saturating_sub(1));
    while lits > 0 && 1 + extra_len(lits) + lits > room {
        lits -= 1;
    }
    debug_assert!(lits >= min_final || anchor + lits == n);
    out.push((lits.min(15) as u8) << 4);
    push_len(&mut out, lits);
    out.extend_from_slice(&src[anchor..anchor + lits]);
    (out, anchor + lits - start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effort(attempts: u32, lazy: bool) -> Effort {
        Effort { attempts, lazy }
    }

    /// Every output decodes (with lz4_flex) to exactly the consumed
    /// prefix, fits the capacity, and keeps LZ4's end rules.
    #[test]
    fn prefixes_round_trip_within_capacity() {
        let mut data = Vec::new();
        let mut x: u32 = 1;
        for i in 0..200_000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            // Text-like: repeats with noise.
            data.push(if i % 7 == 0 {
                (x >> 24) as u8
            } else {
                b"abcdefgh"[(i % 8) as usize]
            });
        }
        for cap in [64usize, 4096, 16384, 65536] {
            for e in [effort(1, false), effort(256, true)] {
                let (block, used) = compress_dest_size(&mut Finder::new(), &data, 0, cap, e);
                assert!(block.len() <= cap, "{} > {cap}", block.len());
                assert!(used > 0);
                let back = lz4_flex::block::decompress(&block, used).unwrap();
                assert_eq!(back, &data[..used]);
            }
        }
        // Incompressible input: about the capacity, minus the overhead.
        let noise: Vec<u8> = (0..10_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let (block, used) =
            compress_dest_size(&mut Finder::new(), &noise, 0, 4096, effort(1, false));
        assert!(block.len() <= 4096 && used + 64 >= 4096);
        assert_eq!(
            lz4_flex::block::decompress(&block, used).unwrap(),
            &noise[..used]
        );
        // Zeros: one long match, as long as its length bytes fit (LZ4
        // packs at most 255 bytes per byte).
        let zeros = vec![0u8; 1 << 20];
        for e in [effort(1, false), effort(256, true)] {
            let (block, used) = compress_dest_size(&mut Finder::new(), &zeros, 0, 4096, e);
            assert!(block.len() <= 4096 && used >= 255 * (4096 - 16), "{used}");
            assert_eq!(
                lz4_flex::block::decompress(&block, used).unwrap(),
                &zeros[..used]
            );
        }
        // Blocks one after the other in one buffer, one finder.
        let mut finder = Finder::new();
        let mut at = 0;
        while at < data.len() {
            let (block, used) = compress_dest_size(&mut finder, &data, at, 4096, effort(16, true));
            assert!(block.len() <= 4096);
            assert_eq!(
                lz4_flex::block::decompress(&block, used).unwrap(),
                &data[at..at + used]
            );
            at += used;
        }
        // Short inputs are literals.
        for len in 0..20 {
            let (block, used) =
                compress_dest_size(&mut Finder::new(), &zeros[..len], 0, 4096, effort(1, false));
            assert_eq!(used, len);
            assert_eq!(
                lz4_flex::block::decompress(&block, len).unwrap(),
                &zeros[..len]
            );
        }
    }
}
