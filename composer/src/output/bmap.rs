//! The block map (`.bmap`) of an image: which 4 KiB blocks hold data, and
//! the SHA-256 of each mapped range, in bmap format 2.0 as bmaptool 3.x
//! writes and reads it (`bmaptool copy` flashes only the mapped blocks and
//! verifies each range after writing it).
//!
//! **Where the map comes from.** Not from scanning the image for holes
//! (`bmaptool create` does that with FIEMAP / `SEEK_DATA`): a hole scan
//! cannot see zero ranges that must be written to the device (a wiped
//! superblock, a journal on reused media) and depends on the filesystem the
//! build ran on. The map is the union of what every writer reported through
//! its [`Window`](super::window::Window): written ranges plus must-be-zero
//! ranges. A block partially covered counts as mapped.
//!
//! **No extra pass.** Hashing is overlapped with writing: [`Hasher`] runs on
//! its own thread and is fed block ranges as soon as they are final (no
//! later write touching its blocks; the image writer hands them on every
//! 32 MiB of a filesystem's sweep and at each region's end). It reads them
//! back with `pread` while they are still in the page cache, in large
//! chunks. On the two-core machines this runs on, one core writes while the
//! other hashes, and when writing is done the writing thread hashes the
//! rest of the queue alongside ([`Hasher::finish`]). `sha2` uses the SHA-NI
//! instructions where the CPU has them (runtime detection).
//!
//! **Contract.** Each block is submitted exactly once, after its last write.
//! Ranges from different submissions stay separate `<Range>` elements even
//! when adjacent (bmaptool accepts any split of the mapped blocks), but a
//! block submitted twice would be written twice by bmaptool and break its
//! `MappedBlocksCount` check; [`Hasher::finish`] rejects it (and
//! `debug_assert`s, so tests catch the bug where it is made). Two regions
//! sharing a 4 KiB block (unaligned neighbours) must be submitted together,
//! after both are written.
//!
//! **Format.** Element order, padding and the `BmapFileChecksum` rule follow
//! bmaptool's `BmapCreate.py` (see `docs/bmap.md`): the file checksum is the
//! SHA-256 of the whole file with the checksum's 64 hex digits replaced by
//! ASCII `0`; a range's checksum covers bytes `[first*4096, (last+1)*4096)`
//! clipped at the image size. The explanatory XML comment is our own text.
//!
//! Rejected designs: hashing in a final pass over the finished image (a
//! second full read of every mapped byte, the cost this module exists to
//! avoid); hashing inside each writer (writers would need to know block
//! boundaries shared with their neighbours, and a writer that patches its
//! own earlier output, like a filesystem superblock written last, would
//! have to re-hash); splitting ranges at a fixed size (changes nothing for
//! bmaptool, only makes the file longer).

use crate::output::window::Extents;
use rustix::fs::SeekFrom;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

/// Block size of every bmap we write. bmaptool takes the host filesystem's
/// block size, which is 4096 on every filesystem images are built on; a
/// fixed value keeps the bmap independent of the build host.
pub const BLOCK_SIZE: u64 = 4096;

/// The bmap format version bmaptool 3.x writes; it refuses majors above 2.
pub const FORMAT_VERSION: &str = "2.0";

/// Bytes read per `pread` while hashing: large enough that syscall cost
/// vanishes, small enough to stay in L2/L3-friendly territory.
const READ_CHUNK: usize = 4 << 20;

/// Length of a SHA-256 digest in hex digits.
const SHA256_HEX_LEN: usize = 64;

/// One `<Range>` of the bmap: blocks `first_block..=last_block` and the
/// SHA-256 of their bytes (clipped at the image size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappedRange {
    pub first_block: u64,
    pub last_block: u64,
    pub sha256: [u8; 32],
}

impl MappedRange {
    /// Number of blocks in the range.
    pub fn blocks(&self) -> u64 {
        self.last_block - self.first_block + 1
    }
}

/// Number of blocks an image of `image_size` bytes has (the last one may
/// be partial).
pub fn blocks_count(image_size: u64) -> u64 {
    image_size.div_ceil(BLOCK_SIZE)
}

/// The block ranges `[first, end)` that cover the byte ranges of `extents`:
/// partially covered blocks count as mapped, and byte ranges that share a
/// block end up in one block range.
pub fn blocks_of(extents: &Extents) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    for (start, end) in extents.iter() {
        let first = start / BLOCK_SIZE;
        let last_end = end.div_ceil(BLOCK_SIZE);
        match out.last_mut() {
            Some(prev) if prev.end >= first => prev.end = prev.end.max(last_end),
            _ => out.push(first..last_end),
        }
    }
    out
}

/// Hashes mapped block ranges of an image on a thread of its own while the
/// image is being written; in [`Hasher::finish`] the calling thread joins
/// in on what is still queued. See the module doc for the contract.
#[derive(Debug)]
pub struct Hasher {
    sender: Option<mpsc::Sender<Vec<Range<u64>>>>,
    queue: Arc<Queue>,
    thread: Option<JoinHandle<io::Result<Vec<MappedRange>>>>,
}

/// What the hashing threads share: the queue of submitted batches, the
/// image and a flag that stops them when the build failed.
#[derive(Debug)]
struct Queue {
    receiver: Mutex<mpsc::Receiver<Vec<Range<u64>>>>,
    file: Arc<File>,
    image_size: u64,
    cancel: AtomicBool,
}

impl Queue {
    /// Hashes batches until the queue is closed and empty.
    fn work(&self) -> io::Result<Vec<MappedRange>> {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut done = Vec::new();
        loop {
            // A poisoned lock only means the other worker panicked; the
            // receiver itself is intact.
            let batch = match self.receiver.lock() {
                Ok(rx) => rx.recv(),
                Err(poisoned) => poisoned.into_inner().recv(),
            };
            let Ok(batch) = batch else {
                return Ok(done);
            };
            for range in batch {
                if self.cancel.load(Ordering::Relaxed) {
                    return Ok(done);
                }
                if let Some(m) = hash_range(&self.file, self.image_size, range, &mut buf)? {
                    done.push(m);
                }
            }
        }
    }
}

impl Hasher {
    /// Starts the hashing thread on `file`, the image being written, whose
    /// final size is `image_size`. The file must already be `image_size`
    /// long when the first range is submitted (`set_len` it first).
    pub fn spawn(file: Arc<File>, image_size: u64) -> io::Result<Hasher> {
        let (sender, receiver) = mpsc::channel::<Vec<Range<u64>>>();
        let queue = Arc::new(Queue {
            receiver: Mutex::new(receiver),
            file,
            image_size,
            cancel: AtomicBool::new(false),
        });
        let worker = Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name("bmap-hasher".into())
            .spawn(move || worker.work())?;
        Ok(Hasher {
            sender: Some(sender),
            queue,
            thread: Some(thread),
        })
    }

    /// Queues block ranges `[first, end)` for hashing. Their bytes must be
    /// final: no later write may touch these blocks. Each block may be
    /// submitted only once over the life of the hasher.
    pub fn submit(&self, blocks: impl IntoIterator<Item = Range<u64>>) {
        if let Some(sender) = &self.sender {
            // A send fails only when the thread has stopped on an error;
            // `finish` reports that error.
            let _ = sender.send(blocks.into_iter().collect());
        }
    }

    /// Queues the blocks covering the byte ranges `extents` (absolute
    /// offsets in the image), partial blocks included.
    pub fn submit_extents(&self, extents: &Extents) {
        self.submit(blocks_of(extents));
    }

    /// Hashes what is still queued on this thread and the hasher's, waits
    /// for both and returns the ranges in block order.
    pub fn finish(mut self) -> io::Result<Vec<MappedRange>> {
        drop(self.sender.take());
        let thread = self
            .thread
            .take()
            .ok_or_else(|| io::Error::other("bmap hasher finished twice"))?;
        let mine = self.queue.work();
        let theirs = thread
            .join()
            .map_err(|_| io::Error::other("bmap hasher thread panicked"))?;
        let mut ranges = mine?;
        ranges.extend(theirs?);
        sort_and_check_disjoint(&mut ranges)?;
        Ok(ranges)
    }
}

impl Drop for Hasher {
    /// An unfinished hasher (the build failed) stops at the next range
    /// instead of hashing the rest of the queue.
    fn drop(&mut self) {
        self.queue.cancel.store(true, Ordering::Relaxed);
    }
}

/// Hashes the blocks covering `extents` of `file` (an image of
/// `image_size` bytes), for an artifact written without a [`Hasher`]
/// running alongside. Ranges are spread over the available cores; the
/// result does not depend on how many there are.
pub fn hash_all(file: &File, image_size: u64, extents: &Extents) -> io::Result<Vec<MappedRange>> {
    let blocks = blocks_of(extents);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(blocks.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let results: Vec<io::Result<Vec<MappedRange>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut buf = vec![0u8; READ_CHUNK];
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(range) = blocks.get(i) else {
                            return Ok(done);
                        };
                        if let Some(m) = hash_range(file, image_size, range.clone(), &mut buf)? {
                            done.push(m);
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("bmap hashing thread panicked")))
            })
            .collect()
    });
    let mut ranges = Vec::new();
    for r in results {
        ranges.extend(r?);
    }
    sort_and_check_disjoint(&mut ranges)?;
    Ok(ranges)
}

/// Hashes blocks `[range.start, range.end)`, clipped at the image size.
fn hash_range(
    file: &File,
    image_size: u64,
    range: Range<u64>,
    buf: &mut [u8],
) -> io::Result<Option<MappedRange>> {
    if range.start >= range.end {
        return Ok(None);
    }
    let blocks = blocks_count(image_size);
    if range.end > blocks {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "block range {}..{} is beyond the end of the image ({} blocks of {} bytes)",
                range.start, range.end, blocks, BLOCK_SIZE
            ),
        ));
    }
    let start = range.start * BLOCK_SIZE;
    let end = (range.end * BLOCK_SIZE).min(image_size);
    // Past the end of the file there is no hole to skip: the file is
    // shorter than the image says (set_len forgotten), an error.
    let file_len = file.metadata()?.len();
    if end > file_len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("image ends at byte {file_len}, before its size of {image_size} bytes"),
        ));
    }
    let mut hasher = Sha256::new();
    let mut pos = start;
    while pos < end {
        // Mapped zeros (an ext4 journal) are holes in the fresh image: hash
        // them from memory instead of reading them, which would fill the
        // page cache with zeroed pages only to copy them out again.
        let (data, hole) = data_segment(file, pos, end)?;
        hash_zeros(&mut hasher, data - pos);
        pos = data;
        while pos < hole {
            let want = usize::try_from(hole - pos).map_or(buf.len(), |n| n.min(buf.len()));
            let got = file.read_at(&mut buf[..want], pos)?;
            if got == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("image ends at byte {pos}, before its size of {image_size} bytes"),
                ));
            }
            hasher.update(&buf[..got]);
            pos += got as u64;
        }
    }
    Ok(Some(MappedRange {
        first_block: range.start,
        last_block: range.end - 1,
        sha256: hasher.finalize().into(),
    }))
}

/// The next data segment `[data, hole)` of `file` at or after `pos`,
/// clipped at `end`: `data == end` when the rest is a hole. A filesystem
/// that cannot tell holes (`EINVAL`, `EOPNOTSUPP`) reports everything as
/// data, which is always correct, only slower.
fn data_segment(file: &File, pos: u64, end: u64) -> io::Result<(u64, u64)> {
    let data = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
        Ok(d) => d.min(end),
        // ENXIO: no data at or after `pos`.
        Err(rustix::io::Errno::NXIO) => return Ok((end, end)),
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::OPNOTSUPP) => return Ok((pos, end)),
        Err(e) => return Err(e.into()),
    };
    if data == end {
        return Ok((end, end));
    }
    let hole = match rustix::fs::seek(file, SeekFrom::Hole(data)) {
        Ok(h) => h.min(end),
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::OPNOTSUPP) => end,
        Err(e) => return Err(e.into()),
    };
    Ok((data, hole))
}

/// Feeds `len` zero bytes to `hasher`.
fn hash_zeros(hasher: &mut Sha256, mut len: u64) {
    /// Zeros hashed per `update` call: large enough that call overhead
    /// vanishes, small enough to stay in L1/L2.
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    while len > 0 {
        let n = usize::try_from(len).map_or(ZEROS.len(), |n| n.min(ZEROS.len()));
        hasher.update(&ZEROS[..n]);
        len -= n as u64;
    }
}

/// Sorts `ranges` by block and rejects a block hashed twice, which is a bug
/// of the caller (see the module doc).
fn sort_and_check_disjoint(ranges: &mut [MappedRange]) -> io::Result<()> {
    ranges.sort_unstable_by_key(|r| r.first_block);
    let overlap = ranges
        .windows(2)
        .find(|w| w[1].first_block <= w[0].last_block);
    debug_assert!(overlap.is_none(), "blocks submitted twice: {overlap:?}");
    match overlap {
        Some(w) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "blocks {}-{} and {}-{} overlap: a block was submitted for hashing twice",
                w[0].first_block, w[0].last_block, w[1].first_block, w[1].last_block
            ),
        )),
        None => Ok(()),
    }
}

/// Renders the bmap of an image of `image_size` bytes whose mapped blocks
/// are `ranges` (any order; they must not overlap), with its
/// `BmapFileChecksum` filled in.
pub fn render(image_size: u64, ranges: &[MappedRange]) -> String {
    let mut ranges = ranges.to_vec();
    ranges.sort_unstable_by_key(|r| r.first_block);
    let blocks = blocks_count(image_size);
    let mapped: u64 = ranges.iter().map(MappedRange::blocks).sum();
    let image_human = human_size(image_size);
    let percent = if blocks == 0 {
        0.0
    } else {
        mapped as f64 * 100.0 / blocks as f64
    };

    // bmaptool reserves room for the mapped-size comment and the mapped
    // count before it knows them, then overwrites the padding in place; the
    // same widths give the same bytes.
    let mapped_comment = pad_to(
        format!("{} or {percent:.1}%", human_size(mapped * BLOCK_SIZE)),
        image_human.len() + " or ".len() + "100.0%".len(),
    );
    let mapped_count = pad_to(mapped.to_string(), blocks.to_string().len());

    let mut xml = String::with_capacity(2048 + ranges.len() * 100);
    xml.push_str(HEADER_COMMENT);
    let _ = write!(
        xml,
        "<bmap version=\"{FORMAT_VERSION}\">\n\
         \x20   <!-- Image size in bytes: {image_human} -->\n\
         \x20   <ImageSize> {image_size} </ImageSize>\n\n\
         \x20   <!-- Size of a block in bytes -->\n\
         \x20   <BlockSize> {BLOCK_SIZE} </BlockSize>\n\n\
         \x20   <!-- Count of blocks in the image file -->\n\
         \x20   <BlocksCount> {blocks} </BlocksCount>\n\n\
         \x20   <!-- Count of mapped blocks: {mapped_comment}   -->\n\
         \x20   <MappedBlocksCount> {mapped_count} </MappedBlocksCount>\n\n\
         \x20   <!-- Type of checksum used in this file -->\n\
         \x20   <ChecksumType> sha256 </ChecksumType>\n\n\
         \x20   <!-- SHA-256 of this file, computed with the value below\n\
         \x20        replaced by as many ASCII \"0\" characters. -->\n\
         \x20   <BmapFileChecksum> "
    );
    let checksum_at = xml.len();
    xml.push_str(&"0".repeat(SHA256_HEX_LEN));
    xml.push_str(
        " </BmapFileChecksum>\n\n\
         \x20   <!-- Mapped blocks: a range \"first-last\" or a single block,\n\
         \x20        with the SHA-256 of its bytes in 'chksum'. -->\n\
         \x20   <BlockMap>\n",
    );
    for r in &ranges {
        let sum = hex(&r.sha256);
        let _ = if r.first_block == r.last_block {
            writeln!(
                xml,
                "        <Range chksum=\"{sum}\"> {} </Range>",
                r.first_block
            )
        } else {
            writeln!(
                xml,
                "        <Range chksum=\"{sum}\"> {}-{} </Range>",
                r.first_block, r.last_block
            )
        };
    }
    xml.push_str("    </BlockMap>\n</bmap>\n");

    let file_sum = hex(&Sha256::digest(xml.as_bytes()).into());
    xml.replace_range(checksum_at..checksum_at + SHA256_HEX_LEN, &file_sum);
    xml
}

/// Our explanation of the format, in place of bmaptool's comment.
const HEADER_COMMENT: &str = "<?xml version=\"1.0\" ?>\n\
<!-- Block map (bmap) of an image file, written by image-composer.\n\
\n\
     It lists the blocks of the image that hold data: partition tables,\n\
     filesystem metadata, file contents, and ranges that must be written\n\
     as zeros. Only these blocks need to be written to the device; the\n\
     others are holes. Flash with: bmaptool copy IMAGE DEVICE\n\
\n\
     The 'version' attribute is the format version, major.minor: the major\n\
     number changes with incompatible changes. -->\n\
\n";

/// `s` followed by spaces up to `width` characters.
fn pad_to(mut s: String, width: usize) -> String {
    while s.len() < width {
        s.push(' ');
    }
    s
}

fn hex(bytes: &[u8; 32]) -> String {
    let mut s = String::with_capacity(SHA256_HEX_LEN);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Sizes in bmaptool's human form (`human_size` in BmapHelpers.py): "1
/// byte", "N bytes" below 512, else one decimal in KiB..TiB, then EiB
/// (sic: bmaptool skips PiB).
fn human_size(size: u64) -> String {
    if size == 1 {
        return "1 byte".into();
    }
    if size < 512 {
        return format!("{size} bytes");
    }
    let mut value = size as f64;
    for unit in ["KiB", "MiB", "GiB", "TiB"] {
        value /= 1024.0;
        if value < 1024.0 {
            return format!("{value:.1} {unit}");
        }
    }
    format!("{value:.1} EiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_of_rounds_partial_blocks_out_and_merges_shared_blocks() {
        let mut e = Extents::new();
        e.insert(0, 1);
        e.insert(4095, 4097);
        e.insert(3 * 4096 + 10, 3 * 4096 + 20);
        e.insert(3 * 4096 + 30, 5 * 4096);
        assert_eq!(blocks_of(&e), vec![0..2, 3..5]);
        assert!(blocks_of(&Extents::new()).is_empty());
    }

    #[test]
    fn human_size_matches_bmaptool() {
        assert_eq!(human_size(1), "1 byte");
        assert_eq!(human_size(511), "511 bytes");
        assert_eq!(human_size(512), "0.5 KiB");
        assert_eq!(human_size(821_752), "802.5 KiB");
        assert_eq!(human_size(4 << 30), "4.0 GiB");
    }

    #[test]
    fn render_pads_like_bmaptool_and_fills_the_file_checksum() {
        let ranges = [
            MappedRange {
                first_block: 12,
                last_block: 12,
                sha256: [0xab; 32],
            },
            MappedRange {
                first_block: 0,
                last_block: 1,
                sha256: [0x01; 32],
            },
        ];
        let xml = render(821_752, &ranges);
        assert!(xml.contains("<BlocksCount> 201 </BlocksCount>"), "{xml}");
        assert!(
            xml.contains("<MappedBlocksCount> 3   </MappedBlocksCount>"),
            "{xml}"
        );
        assert!(xml.contains("<!-- Count of mapped blocks: 12.0 KiB or 1.5%      -->"));
        let first = xml.find("> 0-1 </Range>").unwrap();
        let second = xml.find("> 12 </Range>").unwrap();
        assert!(first < second, "ranges are sorted");
        // The file checksum is the hash of the file with itself zeroed.
        let start = xml.find("<BmapFileChecksum> ").unwrap() + "<BmapFileChecksum> ".len();
        let stored = xml[start..start + 64].to_string();
        let mut zeroed = xml.clone();
        zeroed.replace_range(start..start + 64, &"0".repeat(64));
        assert_eq!(stored, hex(&Sha256::digest(zeroed.as_bytes()).into()));
    }

    fn image(len: u64) -> (tempfile::TempDir, Arc<File>) {
        let dir = tempfile::tempdir().unwrap();
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("img"))
            .unwrap();
        f.set_len(len).unwrap();
        (dir, Arc::new(f))
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "blocks submitted twice")]
    fn a_block_submitted_twice_is_caught() {
        let (_dir, f) = image(10 * BLOCK_SIZE);
        let h = Hasher::spawn(f, 10 * BLOCK_SIZE).unwrap();
        h.submit(std::iter::once(0..3));
        h.submit(std::iter::once(2..4));
        let _ = h.finish();
    }

    #[test]
    fn ranges_beyond_the_image_or_the_file_are_errors() {
        let (_dir, f) = image(10 * BLOCK_SIZE);
        let h = Hasher::spawn(Arc::clone(&f), 10 * BLOCK_SIZE).unwrap();
        h.submit(std::iter::once(9..11));
        let err = h.finish().unwrap_err();
        assert!(
            err.to_string().contains("beyond the end of the image"),
            "{err}"
        );
        // The image claims 20 blocks, the file has 10 (set_len forgotten).
        let h = Hasher::spawn(f, 20 * BLOCK_SIZE).unwrap();
        h.submit(std::iter::once(5..15));
        assert_eq!(h.finish().unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn hasher_and_hash_all_agree_and_hash_what_sha256_says() {
        let (_dir, f) = image(3 * BLOCK_SIZE + 100);
        f.write_all_at(b"hello", 2 * BLOCK_SIZE + 7).unwrap();
        let mut e = Extents::new();
        e.insert(2 * BLOCK_SIZE + 7, 2 * BLOCK_SIZE + 12);
        e.insert(3 * BLOCK_SIZE + 99, 3 * BLOCK_SIZE + 100);
        let h = Hasher::spawn(Arc::clone(&f), 3 * BLOCK_SIZE + 100).unwrap();
        h.submit_extents(&e);
        let ranges = h.finish().unwrap();
        assert_eq!(ranges, hash_all(&f, 3 * BLOCK_SIZE + 100, &e).unwrap());
        let mut want = vec![0u8; BLOCK_SIZE as usize + 100];
        want[7..12].copy_from_slice(b"hello");
        assert_eq!(ranges.len(), 1);
        assert_eq!((ranges[0].first_block, ranges[0].last_block), (2, 3));
        assert_eq!(ranges[0].sha256, <[u8; 32]>::from(Sha256::digest(&want)));
    }

    #[test]
    fn ranges_over_holes_hash_like_the_bytes_read_back() {
        // data, a 3 MiB hole, data, a hole up to a partial last block
        let size = (8 << 20) + 100;
        let (_dir, file) = image(size);
        file.write_all_at(&[7u8; 8192], 4096).unwrap();
        file.write_all_at(&[9u8; 5000], 4 << 20).unwrap();
        let mut all = Extents::new();
        all.insert(0, size);
        let mut some = Extents::new();
        some.insert(4096, 3 << 20); // data then a hole
        some.insert((3 << 20) + 4096, 5 << 20); // a hole then data
        for extents in [all, some] {
            let ranges = hash_all(&file, size, &extents).unwrap();
            assert_eq!(ranges.len(), blocks_of(&extents).len());
            for r in ranges {
                let start = r.first_block * BLOCK_SIZE;
                let end = ((r.last_block + 1) * BLOCK_SIZE).min(size);
                let mut bytes = vec![0u8; (end - start) as usize];
                file.read_exact_at(&mut bytes, start).unwrap();
                assert_eq!(r.sha256, <[u8; 32]>::from(Sha256::digest(&bytes)), "{r:?}");
            }
        }
    }
}
