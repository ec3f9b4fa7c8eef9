//! dm-verity hash trees for read-only filesystems (`verity: true`).
//!
//! Purpose: make a read-only root tamper-evident. The hash tree is
//! computed when the content is prepared, so the root hash is known before
//! planning (`plan` shows it, other contents can use it) and the image is
//! never read back: squashfs hashes its compressed image, which it holds
//! in memory between preparing and writing; EROFS feeds a [`Hasher`] its
//! bytes in write order (metadata and compressed clusters from memory,
//! file data read from the sources, runs on all cores).
//!
//! Layout (cryptsetup's "format 1", `veritysetup format --hash-offset`):
//! the hash area follows the filesystem inside the same content, at the
//! filesystem's size rounded up to 4 KiB (`hash_offset`). It starts with
//! the 512-byte veritysetup superblock (in a 4 KiB block), so
//! `veritysetup verify DEV DEV ROOTHASH --hash-offset=N` and
//! `veritysetup open` need no other parameter; then the tree, top level
//! first, each level's 4 KiB blocks of 128 SHA-256 digests, zero padded.
//! A digest is `sha256(salt || block)`; the root hash is the digest of the
//! single top-level block (of the only data block when there is one). The
//! kernel's table needs `hash_start_block = hash_offset / 4096 + 1`.
//! Spec: the kernel's `Documentation/admin-guide/device-mapper/verity.rst`
//! and cryptsetup's `docs/on-disk-format` (`lib/verity/verity_hash.c`).
//!
//! Rejected designs: a separate hash partition with the GPT `root-verity`
//! types (systemd's discoverable partitions): twice the partitions per A/B
//! slot, impossible with MBR tables, and an update bundle would have to
//! carry and write two images per slot, where one content keeps data and
//! tree together through `same-as` copies, standalone artifacts and bundles.
//! Reading the written image back to hash it: a second pass over the data.
//! Hashing EROFS file data while writing it (one read instead of a read
//! and a `copy_file_range`): the root hash would only be known after
//! writing, too late for the plan and for the files of other partitions
//! that carry it (`${verity.NAME.roothash}`).
//! The hash offset at the end of the partition: it would change with the
//! partition's size, and two slots of different sizes could not share one
//! root hash.

use crate::ids::Seed;
use crate::output::window::Window;
use anyhow::Context;
use sha2::{Digest, Sha256};

/// Data and hash block size (the page size; what every kernel supports).
pub const BLOCK: u64 = 4096;
/// SHA-256 digest length.
const DIGEST: usize = 32;
/// Digests per hash block.
const PER_BLOCK: u64 = BLOCK / DIGEST as u64;
/// Salt length: veritysetup's default.
const SALT_LEN: usize = 32;
/// Size of the veritysetup superblock (`struct verity_sb`).
const SUPERBLOCK_SIZE: usize = 512;
/// The published values' names, in `NAME.verity` order (also the `KEY`s
/// of `${verity.NAME.KEY}`).
pub const KEYS: [&str; 9] = [
    "roothash",
    "salt",
    "data_block_size",
    "hash_block_size",
    "data_blocks",
    "hash_offset",
    "hash_start_block",
    "hash_algorithm",
    "uuid",
];

/// What a verity device needs to be opened, and where the tree is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerityInfo {
    /// Hex SHA-256 of the top hash block.
    pub root_hash: String,
    /// Hex salt.
    pub salt: String,
    /// 4 KiB blocks of data (the filesystem, padded).
    pub data_blocks: u64,
    /// Byte offset of the hash area (its superblock) in the content.
    pub hash_offset: u64,
    /// The superblock's UUID (from the seed).
    pub uuid: String,
}

impl VerityInfo {
    /// `hash_start_block` of the kernel's table: the tree follows the
    /// superblock's block.
    pub fn hash_start_block(&self) -> u64 {
        self.hash_offset / BLOCK + 1
    }

    /// One published value by its name (one of [`KEYS`]).
    pub fn value(&self, key: &str) -> Option<String> {
        Some(match key {
            "roothash" => self.root_hash.clone(),
            "salt" => self.salt.clone(),
            "data_block_size" | "hash_block_size" => BLOCK.to_string(),
            "data_blocks" => self.data_blocks.to_string(),
            "hash_offset" => self.hash_offset.to_string(),
            "hash_start_block" => self.hash_start_block().to_string(),
            "hash_algorithm" => "sha256".into(),
            "uuid" => self.uuid.clone(),
            _ => return None,
        })
    }

    /// `name=value` lines of the `NAME.verity` output file (a shell can
    /// source it; the names are those of `plan --json`).
    pub fn env_text(&self) -> String {
        KEYS.iter()
            .filter_map(|k| Some(format!("{k}={}\n", self.value(k)?)))
            .collect()
    }
}

/// A computed hash area: superblock and tree, written after the data.
#[derive(Debug)]
pub struct HashTree {
    pub info: VerityInfo,
    /// Superblock block followed by the levels, top first.
    area: Vec<u8>,
}

impl HashTree {
    /// Hashes `data_len` bytes given as consecutive `chunks` (a shorter
    /// input reads as zeros up to `data_len`, which is rounded up to 4 KiB).
    pub fn compute<'a>(
        chunks: impl IntoIterator<Item = &'a [u8]>,
        data_len: u64,
        seed: &Seed,
    ) -> HashTree {
        let mut hasher = Hasher::new(seed);
        for chunk in chunks {
            hasher.update(chunk);
        }
        hasher.finish(data_len)
    }

    /// Bytes the hash area takes after the data.
    pub fn len(&self) -> u64 {
        self.area.len() as u64
    }

    /// Whether the area is empty (never: the superblock is always there).
    pub fn is_empty(&self) -> bool {
        self.area.is_empty()
    }

    /// Writes the hash area at its offset in `window`.
    pub fn write(&self, window: &mut Window<'_>) -> anyhow::Result<()> {
        window
            .write_at(&self.area, self.info.hash_offset)
            .context("writing the dm-verity hash tree")?;
        window.settle(self.info.hash_offset + self.len());
        Ok(())
    }
}

/// The data's digests, fed the data front to back in pieces of any size:
/// a writer that produces its bytes in order hashes them as it goes, the
/// data held nowhere.
pub struct Hasher {
    salt: [u8; SALT_LEN],
    salted: Sha256,
    /// Level 0: one digest per full data block so far.
    digests: Vec<u8>,
    /// The current partial block.
    block: Vec<u8>,
    seed: Seed,
}

impl Hasher {
    /// The salt derives from the seed alone and the UUID from the seed and
    /// the root hash, so identical contents (A/B slots, `same-as`) get
    /// identical hash areas whatever they are called.
    pub fn new(seed: &Seed) -> Hasher {
        let salt: [u8; SALT_LEN] = seed.derive(&["verity", "salt"]);
        Hasher {
            salt,
            salted: Sha256::new_with_prefix(salt),
            digests: Vec::new(),
            block: Vec::with_capacity(BLOCK as usize),
            seed: seed.clone(),
        }
    }

    /// The next bytes of the data.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.block.is_empty() && data.len() >= BLOCK as usize {
                let (whole, rest) = data.split_at(BLOCK as usize);
                self.push_digest(whole);
                data = rest;
                continue;
            }
            let take = data.len().min(BLOCK as usize - self.block.len());
            self.block.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.block.len() == BLOCK as usize {
                let digest = self.salted.clone().chain_update(&self.block).finalize();
                self.digests.extend_from_slice(&digest);
                self.block.clear();
            }
        }
    }

    /// `len` zero bytes of data.
    pub fn update_zeros(&mut self, mut len: u64) {
        let zeros = [0u8; BLOCK as usize];
        while len > 0 {
            let n = len.min(BLOCK);
            self.update(&zeros[..n as usize]);
            len -= n;
        }
    }

    /// Appends the level-0 digests another hasher returned from
    /// [`Hasher::level0`] (with the same seed), for data that follows
    /// this one's on a block boundary: pieces hashed on several cores.
    pub fn append_level0(&mut self, digests: &[u8]) {
        debug_assert!(self.block.is_empty(), "appended off a block boundary");
        self.digests.extend_from_slice(digests);
    }

    /// The level-0 digests of `len` bytes of data (rounded up to 4 KiB,
    /// at least one block; what was not fed reads as zeros).
    pub fn level0(mut self, len: u64) -> Vec<u8> {
        let data_blocks = len.div_ceil(BLOCK).max(1) as usize;
        if !self.block.is_empty() {
            let mut block = std::mem::take(&mut self.block);
            block.resize(BLOCK as usize, 0);
            self.push_digest(&block);
        }
        if self.digests.len() / DIGEST < data_blocks {
            let zero = self
                .salted
                .clone()
                .chain_update([0u8; BLOCK as usize])
                .finalize();
            while self.digests.len() / DIGEST < data_blocks {
                self.digests.extend_from_slice(&zero);
            }
        }
        self.digests.truncate(data_blocks * DIGEST);
        self.digests
    }

    fn push_digest(&mut self, block: &[u8]) {
        let digest = self.salted.clone().chain_update(block).finalize();
        self.digests.extend_from_slice(&digest);
    }

    /// The tree over `data_len` bytes (rounded up to 4 KiB; what was not
    /// fed reads as zeros, what was fed beyond it is ignored).
    pub fn finish(self, data_len: u64) -> HashTree {
        let data_blocks = data_len.div_ceil(BLOCK).max(1);
        let (salt, salted, seed) = (self.salt, self.salted.clone(), self.seed.clone());
        let mut digests = self.level0(data_len);
        // Upper levels until one block holds every digest (the kernel's
        // level count: none when there is a single data block).
        let mut levels: Vec<Vec<u8>> = Vec::new();
        while digests.len() > DIGEST {
            let mut level = Vec::new();
            let mut next = Vec::new();
            for group in digests.chunks(PER_BLOCK as usize * DIGEST) {
                let start = level.len();
                level.extend_from_slice(group);
                level.resize(start + BLOCK as usize, 0);
                next.extend_from_slice(&salted.clone().chain_update(&level[start..]).finalize());
            }
            levels.push(level);
            digests = next;
        }
        let root_hash = hex(&digests);
        let uuid = seed.uuid(&["verity", &root_hash]);
        let info = VerityInfo {
            root_hash,
            salt: hex(&salt),
            data_blocks,
            hash_offset: data_blocks * BLOCK,
            uuid: uuid.to_string(),
        };
        let mut area = superblock(&info, &salt, &uuid.0);
        area.resize(BLOCK as usize, 0);
        for level in levels.iter().rev() {
            area.extend_from_slice(level);
        }
        HashTree { info, area }
    }
}

/// cryptsetup's `struct verity_sb` (little endian, 512 bytes).
fn superblock(info: &VerityInfo, salt: &[u8; SALT_LEN], uuid: &[u8; 16]) -> Vec<u8> {
    let mut sb = Vec::with_capacity(SUPERBLOCK_SIZE);
    sb.extend_from_slice(b"verity\0\0"); // 0: signature
    sb.extend_from_slice(&1u32.to_le_bytes()); // 8: version
    sb.extend_from_slice(&1u32.to_le_bytes()); // 12: hash_type (format 1)
    sb.extend_from_slice(uuid); // 16: uuid
    let mut algorithm = [0u8; 32]; // 32: algorithm name
    algorithm[..6].copy_from_slice(b"sha256");
    sb.extend_from_slice(&algorithm);
    sb.extend_from_slice(&(BLOCK as u32).to_le_bytes()); // 64: data_block_size
    sb.extend_from_slice(&(BLOCK as u32).to_le_bytes()); // 68: hash_block_size
    sb.extend_from_slice(&info.data_blocks.to_le_bytes()); // 72: data_blocks
    sb.extend_from_slice(&(SALT_LEN as u16).to_le_bytes()); // 80: salt_size
    sb.extend_from_slice(&[0u8; 6]); // 82: padding
    let mut salt_field = [0u8; 256]; // 88: salt
    salt_field[..SALT_LEN].copy_from_slice(salt);
    sb.extend_from_slice(&salt_field);
    sb.resize(SUPERBLOCK_SIZE, 0); // 344: padding
    sb
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> Seed {
        Seed("test".into())
    }

    #[test]
    fn one_block_has_no_levels_and_the_block_digest_as_root() {
        let t = HashTree::compute([&[7u8; 100][..]], 100, &seed());
        let mut block = vec![7u8; 100];
        block.resize(4096, 0);
        let salt = seed().derive(&["verity", "salt"]);
        let want = Sha256::new_with_prefix(salt)
            .chain_update(&block)
            .finalize();
        assert_eq!(t.info.root_hash, hex(&want));
        assert_eq!(t.info.data_blocks, 1);
        assert_eq!(t.len(), BLOCK);
    }

    #[test]
    fn level_counts_follow_the_kernel() {
        // 128 blocks: one level of one block; 129: two levels (2 + 1 blocks).
        for (blocks, hash_blocks) in [(128u64, 1u64), (129, 3), (128 * 128 + 1, 129 + 2 + 1)] {
            let len = blocks * BLOCK;
            let t = HashTree::compute(std::iter::empty(), len, &seed());
            assert_eq!(t.len(), BLOCK * (1 + hash_blocks), "{blocks} blocks");
            assert_eq!(t.info.hash_offset, len);
        }
    }

    #[test]
    fn chunking_does_not_change_the_tree() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = HashTree::compute([&data[..]], data.len() as u64, &seed());
        let parts = HashTree::compute(data.chunks(999), data.len() as u64, &seed());
        assert_eq!(whole.area, parts.area);
        assert_eq!(whole.info, parts.info);
        let other = HashTree::compute([&data[1..]], data.len() as u64, &seed());
        assert_ne!(whole.info.root_hash, other.info.root_hash);
    }

    #[test]
    fn pieces_hashed_apart_join_like_one_stream() {
        // Two pieces on block boundaries, the first with a partial last
        // block, zeros between: what the EROFS writer feeds.
        let a: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
        let b: Vec<u8> = (0..9000u32).map(|i| (i % 241) as u8).collect();
        let mut stream = a.clone();
        stream.resize(2 * BLOCK as usize, 0);
        stream.resize(3 * BLOCK as usize, 0);
        stream.extend_from_slice(&b);
        let whole = HashTree::compute([&stream[..]], 7 * BLOCK, &seed());

        let mut joined = Hasher::new(&seed());
        let mut first = Hasher::new(&seed());
        first.update(&a);
        joined.append_level0(&first.level0(2 * BLOCK));
        joined.update_zeros(BLOCK);
        let mut second = Hasher::new(&seed());
        second.update(&b);
        joined.append_level0(&second.level0(3 * BLOCK));
        let joined = joined.finish(7 * BLOCK);
        assert_eq!(joined.area, whole.area);
        assert_eq!(joined.info, whole.info);
    }
}
