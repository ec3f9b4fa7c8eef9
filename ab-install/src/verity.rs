//! `ab-install verity-open NAME DEVICE ROOTHASH HASH-OFFSET`: opens a
//! dm-verity device over a partition that holds its data and, at
//! HASH-OFFSET bytes, its veritysetup superblock and hash tree (what
//! image-composer writes for `verity: true`), and prints the block device
//! (`/dev/dm-N`, made by devtmpfs) on stdout.
//!
//! Purpose: the readonly-rootfs-overlay initramfs opens a verity root on
//! kernels whose device mapper is a module (Debian's), where the kernel's
//! own `dm-mod.create=` cannot work (it runs before any module loads).
//! Three ioctls on `/dev/mapper/control`, as `dmsetup create --readonly`
//! does: `DM_DEV_CREATE`, `DM_TABLE_LOAD` (read-only, one `verity`
//! target), `DM_DEV_SUSPEND` without the suspend flag (resume, which makes
//! the table live). Salt, data blocks and block sizes are read from the
//! superblock, so the kernel command line carries only the root hash and
//! the offset; the superblock is only a source of parameters, the root
//! hash is what the kernel checks every block against.
//!
//! Spec: `include/uapi/linux/dm-ioctl.h`, the kernel's
//! `Documentation/admin-guide/device-mapper/verity.rst`, cryptsetup's
//! `struct verity_sb`.
//!
//! Rejected designs: `dmsetup` or `veritysetup` copied into the initramfs
//! with their shared libraries (libdevmapper, libcryptsetup, libudev,
//! libblkid, libc...: megabytes, and the layer would have to find them on
//! the build host); `dm-mod.create=` (built-in device mapper only; kept in
//! the layer's README for such kernels). This is the only module of the
//! workspace with `unsafe`: rustix has no safe device-mapper API, and an
//! ioctl with a variable-length buffer is unsafe by nature.
#![allow(unsafe_code)]

use rustix::fs::{Mode, OFlags};
use rustix::ioctl::{ioctl, opcode, Opcode, Updater};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// `sizeof(struct dm_ioctl)`.
const HEADER: usize = 312;
/// `sizeof(struct dm_target_spec)`.
const TARGET_SPEC: usize = 40;
/// The ioctl buffer: header, one target spec and its parameters.
const BUF: usize = 4096;
/// `DM_IOCTL`, the ioctl group.
const DM_IOCTL: u8 = 0xfd;
/// Interface version 4.0.0: every kernel with dm-verity speaks it.
const VERSION: [u32; 3] = [4, 0, 0];
/// `DM_READONLY_FLAG`.
const READONLY: u32 = 1;
/// `_IOWR(DM_IOCTL, cmd, struct dm_ioctl)` of the commands used.
const DM_DEV_CREATE: Opcode = opcode::read_write::<[u8; HEADER]>(DM_IOCTL, 3);
const DM_DEV_REMOVE: Opcode = opcode::read_write::<[u8; HEADER]>(DM_IOCTL, 4);
const DM_DEV_SUSPEND: Opcode = opcode::read_write::<[u8; HEADER]>(DM_IOCTL, 6);
const DM_TABLE_LOAD: Opcode = opcode::read_write::<[u8; HEADER]>(DM_IOCTL, 9);
/// `dev_t` as the kernel's `huge_encode_dev` gives it in `dm_ioctl.dev`.
const OFF_DEV: usize = 40;
const OFF_NAME: usize = 48;
/// The veritysetup superblock fields read here.
const SB_MAGIC: &[u8; 8] = b"verity\0\0";

/// What the superblock at the hash offset says.
#[derive(Debug, PartialEq, Eq)]
struct Params {
    algorithm: String,
    data_block_size: u32,
    hash_block_size: u32,
    data_blocks: u64,
    salt: String,
}

/// Reads cryptsetup's `struct verity_sb` (format 1).
fn parse_superblock(sb: &[u8]) -> Result<Params, String> {
    let u32_at = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
    if sb.len() < 512 || &sb[..8] != SB_MAGIC {
        return Err("no veritysetup superblock at the hash offset".into());
    }
    if u32_at(8) != 1 || u32_at(12) != 1 {
        return Err("the verity superblock is not version 1, format 1".into());
    }
    let algorithm: String = sb[32..64]
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| char::from(*b))
        .collect();
    let mut blocks = [0u8; 8];
    blocks.copy_from_slice(&sb[72..80]);
    let salt_size = usize::from(u16::from_le_bytes([sb[80], sb[81]]));
    if salt_size > 256 {
        return Err(format!("verity salt of {salt_size} bytes (at most 256)"));
    }
    let salt = sb[88..88 + salt_size]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok(Params {
        algorithm,
        data_block_size: u32_at(64),
        hash_block_size: u32_at(68),
        data_blocks: u64::from_le_bytes(blocks),
        salt: if salt.is_empty() { "-".into() } else { salt },
    })
}

/// The verity target's parameters (after `verity`).
fn table_params(p: &Params, device: &str, root_hash: &str, hash_offset: u64) -> String {
    let hash_start = (hash_offset + 512).div_ceil(u64::from(p.hash_block_size));
    format!(
        "1 {device} {device} {} {} {} {hash_start} {} {root_hash} {}",
        p.data_block_size, p.hash_block_size, p.data_blocks, p.algorithm, p.salt
    )
}

/// One `struct dm_ioctl` buffer.
#[repr(C, align(8))]
struct DmBuf([u8; BUF]);

impl DmBuf {
    fn new(name: &str, flags: u32) -> Result<DmBuf, String> {
        if name.is_empty() || name.len() >= 128 || name.contains('/') {
            return Err(format!("'{name}' is not a device-mapper name"));
        }
        let mut b = DmBuf([0; BUF]);
        for (i, v) in VERSION.iter().enumerate() {
            b.0[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        b.0[12..16].copy_from_slice(&(BUF as u32).to_ne_bytes()); // data_size
        b.0[16..20].copy_from_slice(&(HEADER as u32).to_ne_bytes()); // data_start
        b.0[28..32].copy_from_slice(&flags.to_ne_bytes());
        b.0[OFF_NAME..OFF_NAME + name.len()].copy_from_slice(name.as_bytes());
        Ok(b)
    }

    /// Adds the one target: `length` sectors of `kind` with `params`.
    fn target(&mut self, length: u64, kind: &str, params: &str) -> Result<(), String> {
        if HEADER + TARGET_SPEC + params.len() + 1 > BUF {
            return Err("the verity table is too long".into());
        }
        self.0[20..24].copy_from_slice(&1u32.to_ne_bytes()); // target_count
        let t = HEADER;
        self.0[t + 8..t + 16].copy_from_slice(&length.to_ne_bytes());
        self.0[t + 24..t + 24 + kind.len()].copy_from_slice(kind.as_bytes());
        let p = t + TARGET_SPEC;
        self.0[p..p + params.len()].copy_from_slice(params.as_bytes());
        Ok(())
    }

    fn dev(&self) -> u64 {
        let mut d = [0u8; 8];
        d.copy_from_slice(&self.0[OFF_DEV..OFF_DEV + 8]);
        u64::from_ne_bytes(d)
    }
}

/// Runs device-mapper command `OP` with `buf` on `control`.
fn dm<const OP: Opcode>(control: &File, buf: &mut DmBuf) -> Result<(), String> {
    // SAFETY: `OP` is one of the `DM_*` opcodes above, `_IOWR(DM_IOCTL,
    // cmd, struct dm_ioctl)`; the buffer starts with a `struct dm_ioctl`
    // whose `data_size` is the buffer's full length, so the kernel reads
    // and writes only inside it.
    unsafe { ioctl(control, Updater::<OP, DmBuf>::new(buf)) }
        .map_err(|e| std::io::Error::from(e).to_string())
}

/// Opens the verity device; returns its `/dev/dm-N` path.
pub fn open(name: &str, device: &str, root_hash: &str, hash_offset: u64) -> Result<String, String> {
    if root_hash.len() != 64 || !root_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "'{root_hash}' is not a SHA-256 root hash (64 hex digits)"
        ));
    }
    let dev = File::open(device).map_err(|e| format!("opening {device}: {e}"))?;
    let mut sb = [0u8; 512];
    dev.read_exact_at(&mut sb, hash_offset)
        .map_err(|e| format!("reading the verity superblock of {device} at {hash_offset}: {e}"))?;
    let params = parse_superblock(&sb).map_err(|e| format!("{device}: {e}"))?;
    let sectors = params.data_blocks * u64::from(params.data_block_size) / 512;
    let control = rustix::fs::open(
        "/dev/mapper/control",
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map(File::from)
    .map_err(|e| format!("opening /dev/mapper/control (is dm-mod loaded?): {e}"))?;
    let mut create = DmBuf::new(name, 0)?;
    dm::<DM_DEV_CREATE>(&control, &mut create)
        .map_err(|e| format!("creating device-mapper device '{name}': {e}"))?;
    let mut load = DmBuf::new(name, READONLY)?;
    load.target(
        sectors,
        "verity",
        &table_params(&params, device, root_hash, hash_offset),
    )?;
    let loaded = dm::<DM_TABLE_LOAD>(&control, &mut load).and_then(|()| {
        let mut resume = DmBuf::new(name, 0)?;
        dm::<DM_DEV_SUSPEND>(&control, &mut resume).map(|()| resume)
    });
    match loaded {
        Ok(resumed) => {
            let d = resumed.dev();
            // huge_encode_dev: minor's low 8 bits, major, minor's high bits.
            let minor = (d & 0xff) | ((d >> 12) & !0xff);
            Ok(format!("/dev/dm-{minor}"))
        }
        Err(e) => {
            if let Ok(mut remove) = DmBuf::new(name, 0) {
                let _ = dm::<DM_DEV_REMOVE>(&control, &mut remove);
            }
            Err(format!(
                "loading the verity table of '{name}' on {device} (is dm-verity loaded?): {e}"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblock_gives_the_table() {
        let mut sb = [0u8; 512];
        sb[..8].copy_from_slice(SB_MAGIC);
        sb[8] = 1;
        sb[12] = 1;
        sb[32..38].copy_from_slice(b"sha256");
        sb[64..68].copy_from_slice(&4096u32.to_le_bytes());
        sb[68..72].copy_from_slice(&4096u32.to_le_bytes());
        sb[72..80].copy_from_slice(&733u64.to_le_bytes());
        sb[80] = 2;
        sb[88] = 0xab;
        sb[89] = 0x01;
        let p = parse_superblock(&sb).unwrap();
        assert_eq!(
            table_params(&p, "/dev/vda2", "ff", 733 * 4096),
            "1 /dev/vda2 /dev/vda2 4096 4096 733 734 sha256 ff ab01"
        );
        sb[0] = b'x';
        assert!(parse_superblock(&sb).is_err());
    }
}
