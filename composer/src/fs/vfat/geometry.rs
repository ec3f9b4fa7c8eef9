//! Filesystem geometry: FAT type, cluster size, reserved sectors, FAT size
//! and cluster count for a given size, and the smallest size that holds a
//! given content.
//!
//! The FAT type is decided by the cluster count, as in fatgen103 §3.5, the
//! Linux driver and fsck.fat: fewer than 4085 clusters is FAT12, fewer than
//! 65525 FAT16, else FAT32 (which the BPB marks by a zero 16-bit FAT size);
//! a layout whose count contradicts its type is never produced, since
//! fsck.fat warns about it and some firmware misreads it. FAT32 is capped at
//! fsck.fat's limit of 2^28 - 16 clusters.
//!
//! Defaults follow mkfs.fat 4.2 (`establish_params`): FAT32 from 512 MiB up,
//! with 512-byte clusters up to 260 MiB, 4 KiB up to 8 GiB, 8/16/32 KiB
//! beyond; below 512 MiB, FAT12 if 2 KiB clusters give few enough, else
//! FAT16 starting at 2 KiB clusters and doubling while there are too many.
//! When a forced type or cluster size does not fit the size, the cluster
//! size is doubled or halved until it does. Like mkfs.fat, the reserved area
//! is padded so that the data area starts on a cluster boundary (flash pages
//! and erase blocks stay aligned when the partition is).
//!
//! The smallest size for some content is not found by a plain bisection:
//! cluster sizes grow with the filesystem, so content that fits 259 MiB of
//! 512-byte clusters may not fit 261 MiB of 4 KiB ones. [`min_total_sectors`]
//! returns the size from which *every* larger size fits, since the planner
//! may round the size up.

/// Most clusters of a FAT12 filesystem (fatgen103 §3.5).
pub const FAT12_MAX_CLUSTERS: u64 = 4084;
/// Most clusters of a FAT16 filesystem; one more makes it FAT32.
pub const FAT16_MAX_CLUSTERS: u64 = 65_524;
/// Most clusters fsck.fat accepts on FAT32 (the top 4 bits of an entry are
/// reserved, and the last 16 values are markers).
pub const FAT32_MAX_CLUSTERS: u64 = (1 << 28) - 16;
/// Largest cluster Windows, Linux and most firmware all read.
pub const MAX_CLUSTER_BYTES: u32 = 64 * 1024;
/// Reserved sectors on FAT32: boot sector, FSInfo, backup copies at 6 and 7
/// (mkfs.fat and Windows use 32).
const FAT32_RESERVED: u64 = 32;
/// Root directory entries of FAT12/16 unless the content needs more
/// (mkfs.fat's default for hard disks).
const DEFAULT_ROOT_ENTRIES: u64 = 512;
/// Above this size mkfs.fat picks FAT32.
const FAT32_AUTO_BYTES: u64 = 512 * 1024 * 1024;
/// First cluster size mkfs.fat tries on FAT12/16 (4 sectors of 512 bytes).
const FAT16_BASE_CLUSTER: u32 = 2048;
/// Bytes per directory entry.
const ENTRY: u64 = 32;

/// The layout of one FAT filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub fat_bits: u8,
    pub sector_size: u32,
    pub sectors_per_cluster: u32,
    pub total_sectors: u32,
    /// Boot sector (and FSInfo, backups) plus alignment padding.
    pub reserved_sectors: u32,
    /// Sectors of one FAT.
    pub fat_sectors: u32,
    /// Entries of the fixed root directory (FAT12/16), 0 on FAT32.
    pub root_entries: u32,
    /// Data clusters, numbered from 2.
    pub clusters: u32,
}

impl Geometry {
    pub fn cluster_bytes(&self) -> u32 {
        self.sector_size * self.sectors_per_cluster
    }
    pub fn root_dir_sectors(&self) -> u32 {
        (self.root_entries * ENTRY as u32).div_ceil(self.sector_size)
    }
    /// Byte offset of FAT copy `n` (0 or 1).
    pub fn fat_offset(&self, n: u32) -> u64 {
        u64::from(self.reserved_sectors + n * self.fat_sectors) * u64::from(self.sector_size)
    }
    pub fn fat_bytes(&self) -> u64 {
        u64::from(self.fat_sectors) * u64::from(self.sector_size)
    }
    /// Byte offset of the fixed root directory (FAT12/16).
    pub fn root_offset(&self) -> u64 {
        self.fat_offset(2)
    }
    /// Byte offset of the first data cluster (cluster 2).
    pub fn data_offset(&self) -> u64 {
        self.root_offset() + u64::from(self.root_dir_sectors()) * u64::from(self.sector_size)
    }
    /// Byte offset of cluster `n` (n >= 2).
    pub fn cluster_offset(&self, n: u32) -> u64 {
        self.data_offset() + u64::from(n - 2) * u64::from(self.cluster_bytes())
    }
    pub fn size_bytes(&self) -> u64 {
        u64::from(self.total_sectors) * u64::from(self.sector_size)
    }
}

/// Why a (type, cluster size) does not fit a size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Misfit {
    /// The metadata alone does not fit.
    Small,
    /// Fewer clusters than the type allows.
    FewClusters,
    /// More clusters than the type allows.
    ManyClusters,
}

/// What the user fixed, and what the content imposes on the layout.
#[derive(Clone, Copy, Debug)]
pub struct Choice {
    pub fat_bits: Option<u8>,
    pub cluster_bytes: Option<u32>,
    pub sector_size: u32,
    /// Entries (short + long) of the root directory, volume label included.
    pub root_slots: u64,
}

fn cluster_range(bits: u8) -> (u64, u64) {
    match bits {
        12 => (1, FAT12_MAX_CLUSTERS),
        16 => (FAT12_MAX_CLUSTERS + 1, FAT16_MAX_CLUSTERS),
        _ => (FAT16_MAX_CLUSTERS + 1, FAT32_MAX_CLUSTERS),
    }
}

/// The layout of a `total`-sector filesystem of type `bits` with
/// `spc`-sector clusters.
fn layout(total: u64, bits: u8, spc: u32, choice: &Choice) -> Result<Geometry, Misfit> {
    let ss = u64::from(choice.sector_size);
    let spc64 = u64::from(spc);
    let (base_reserved, root_entries) = if bits == 32 {
        (FAT32_RESERVED, 0)
    } else {
        // Whole sectors of entries, at least mkfs.fat's 512.
        let per_sector = ss / ENTRY;
        let needed = choice.root_slots.div_ceil(per_sector) * per_sector;
        let entries = needed.max(DEFAULT_ROOT_ENTRIES);
        if entries > u64::from(u16::MAX) {
            return Err(Misfit::Small);
        }
        (1, entries)
    };
    let root_sectors = (root_entries * ENTRY).div_ceil(ss);
    let mut fat = 1u64;
    loop {
        let meta = base_reserved + 2 * fat + root_sectors;
        let aligned = meta.div_ceil(spc64) * spc64;
        if total < aligned + spc64 {
            return Err(Misfit::Small);
        }
        let clusters = (total - aligned) / spc64;
        let needed_fat = ((clusters + 2) * u64::from(bits)).div_ceil(8).div_ceil(ss);
        if needed_fat > fat {
            fat = needed_fat;
            continue;
        }
        let (min, max) = cluster_range(bits);
        if clusters < min {
            return Err(Misfit::FewClusters);
        }
        if clusters > max {
            return Err(Misfit::ManyClusters);
        }
        let narrow = |v: u64| u32::try_from(v).map_err(|_| Misfit::ManyClusters);
        return Ok(Geometry {
            fat_bits: bits,
            sector_size: choice.sector_size,
            sectors_per_cluster: spc,
            total_sectors: narrow(total)?,
            reserved_sectors: narrow(aligned - 2 * fat - root_sectors)?,
            fat_sectors: narrow(fat)?,
            root_entries: narrow(root_entries)?,
            clusters: narrow(clusters)?,
        });
    }
}

/// mkfs.fat's default cluster size for type `bits` at `bytes`.
fn default_cluster(bits: u8, bytes: u64, sector_size: u32) -> u32 {
    const MIB: u64 = 1024 * 1024;
    let c = if bits == 32 {
        match bytes {
            b if b > 32 * 1024 * MIB => 32 * 1024,
            b if b > 16 * 1024 * MIB => 16 * 1024,
            b if b > 8 * 1024 * MIB => 8 * 1024,
            b if b > 260 * MIB => 4096,
            _ => 512,
        }
    } else {
        FAT16_BASE_CLUSTER
    };
    c.max(sector_size)
}

/// Type `bits` at `total` sectors: the forced cluster size, or the default
/// one doubled or halved until the cluster count suits the type.
fn layout_type(total: u64, bits: u8, choice: &Choice) -> Option<Geometry> {
    let ss = choice.sector_size;
    if let Some(c) = choice.cluster_bytes {
        return layout(total, bits, c / ss, choice).ok();
    }
    let bytes = total * u64::from(ss);
    let mut c = default_cluster(bits, bytes, ss);
    let first = layout(total, bits, c / ss, choice);
    match first {
        Ok(g) => Some(g),
        Err(Misfit::ManyClusters) => {
            while c < MAX_CLUSTER_BYTES {
                c *= 2;
                match layout(total, bits, c / ss, choice) {
                    Ok(g) => return Some(g),
                    Err(Misfit::ManyClusters) => continue,
                    Err(_) => return None,
                }
            }
            None
        }
        Err(Misfit::FewClusters) => {
            while c > ss {
                c /= 2;
                match layout(total, bits, c / ss, choice) {
                    Ok(g) => return Some(g),
                    Err(Misfit::FewClusters) => continue,
                    Err(_) => return None,
                }
            }
            None
        }
        Err(Misfit::Small) => None,
    }
}

/// The layout of a `total`-sector filesystem, or None if no layout with the
/// forced settings exists at that size.
pub fn choose(total: u64, choice: &Choice) -> Option<Geometry> {
    if total > u64::from(u32::MAX) {
        return None;
    }
    if let Some(bits) = choice.fat_bits {
        return layout_type(total, bits, choice);
    }
    let bytes = total * u64::from(choice.sector_size);
    if bytes >= FAT32_AUTO_BYTES {
        if let Some(g) = layout_type(total, 32, choice) {
            return Some(g);
        }
    }
    if choice.cluster_bytes.is_none() {
        // mkfs.fat: FAT12 only while 2 KiB clusters are few enough.
        let c = default_cluster(12, bytes, choice.sector_size);
        if let Ok(g) = layout(total, 12, c / choice.sector_size, choice) {
            return Some(g);
        }
        return layout_type(total, 16, choice).or_else(|| layout_type(total, 32, choice));
    }
    [12, 16, 32]
        .into_iter()
        .find_map(|bits| layout_type(total, bits, choice))
}

/// Orders layouts the way they succeed each other as the size grows.
fn rank(g: Option<Geometry>) -> (u8, u32) {
    g.map_or((0, 0), |g| (g.fat_bits, g.sectors_per_cluster))
}

/// The smallest total sector count from which every larger count (up to the
/// largest size the forced settings allow) holds content needing `need(layout)` clusters; None if
/// the content does not fit any size.
pub fn min_total_sectors(choice: &Choice, need: impl Fn(&Geometry) -> u64) -> Option<u64> {
    // Layouts exist on one interval of sizes (a forced type has a smallest
    // and a largest size); search only inside it.
    let (min, max) = valid_range(choice)?;
    let key = |t: u64| rank(choose(t, choice));
    // Growing the FAT by one sector can cost one cluster, so require one
    // spare cluster: then every larger size of the same layout fits too.
    let roomy = |t: u64| choose(t, choice).is_some_and(|g| u64::from(g.clusters) > need(&g));
    // Split the sizes into runs of one layout (type, cluster size); the
    // layout only moves forward as the size grows.
    let mut runs = Vec::new();
    let mut start = min;
    while start <= max {
        let k = key(start);
        let (mut lo, mut hi) = (start, max);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if key(mid) == k {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        runs.push((start, lo));
        start = lo + 1;
    }
    let mut answer = None;
    for &(s, e) in runs.iter().rev() {
        if !roomy(e) {
            break;
        }
        let (mut lo, mut hi) = (s, e);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if roomy(mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        answer = Some(lo);
        if lo > s {
            break;
        }
    }
    answer
}

/// The range of total sectors at which the forced settings give a layout.
pub fn valid_range(choice: &Choice) -> Option<(u64, u64)> {
    let max = u64::from(u32::MAX);
    // Valid sizes form one interval: below it the type has too few
    // clusters, above it too many.
    let first = (0..64)
        .map(|shift| 1u64 << shift)
        .take_while(|&t| t <= max)
        .find(|&t| choose(t, choice).is_some())?;
    let (mut lo, mut hi) = (first / 2 + 1, first);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if choose(mid, choice).is_some() {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let min = lo;
    let (mut lo, mut hi) = (min, max);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if choose(mid, choice).is_some() {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some((min, lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn auto(ss: u32) -> Choice {
        Choice {
            fat_bits: None,
            cluster_bytes: None,
            sector_size: ss,
            root_slots: 1,
        }
    }

    fn at(bytes: u64, choice: &Choice) -> Geometry {
        choose(bytes / u64::from(choice.sector_size), choice).unwrap()
    }

    #[test]
    fn automatic_choice_follows_mkfs_fat() {
        let c = auto(512);
        let g = at(4 * MIB, &c);
        assert_eq!((g.fat_bits, g.cluster_bytes()), (12, 2048));
        let g = at(64 * MIB, &c);
        assert_eq!((g.fat_bits, g.cluster_bytes()), (16, 2048));
        assert_eq!(g.root_entries, 512);
        let g = at(200 * MIB, &c);
        assert_eq!((g.fat_bits, g.cluster_bytes()), (16, 4096));
        let g = at(511 * MIB, &c);
        assert_eq!((g.fat_bits, g.cluster_bytes()), (16, 8192));
        let g = at(1024 * MIB, &c);
        assert_eq!((g.fat_bits, g.cluster_bytes()), (32, 4096));
        assert_eq!(
            g.reserved_sectors % 8,
            0,
            "data area aligned to the cluster"
        );
        let g = at(10 * 1024 * MIB, &c);
        assert_eq!((g.fat_bits, g.cluster_bytes()), (32, 8192));
    }

    #[test]
    fn cluster_counts_always_match_the_type() {
        for ss in [512u32, 4096] {
            for bits in [None, Some(12), Some(16), Some(32)] {
                let c = Choice {
                    fat_bits: bits,
                    ..auto(ss)
                };
                let mut t = 8u64;
                while t < u64::from(u32::MAX) {
                    if let Some(g) = choose(t, &c) {
                        let n = u64::from(g.clusters);
                        let (min, max) = cluster_range(g.fat_bits);
                        assert!((min..=max).contains(&n), "{g:?}");
                        let fat_entries = g.fat_bytes() * 8 / u64::from(g.fat_bits);
                        assert!(fat_entries >= n + 2, "{g:?}");
                        assert!(
                            g.data_offset() + n * u64::from(g.cluster_bytes()) <= g.size_bytes()
                        );
                        assert_eq!(g.data_offset() % u64::from(g.cluster_bytes()), 0);
                    }
                    t = t * 9 / 8 + 1;
                }
            }
        }
    }

    #[test]
    fn forced_fat32_needs_65525_clusters() {
        let c = Choice {
            fat_bits: Some(32),
            ..auto(512)
        };
        assert!(choose(16 * MIB / 512, &c).is_none());
        let (min, max) = valid_range(&c).unwrap();
        // 65525 clusters of 512 bytes plus 32 reserved sectors and two FATs.
        assert!(min > 65_525 + 32 + 2 * 512 && min < 66_700, "{min}");
        assert_eq!(max, u64::from(u32::MAX));
        let c4k = Choice {
            fat_bits: Some(32),
            ..auto(4096)
        };
        let (min, _) = valid_range(&c4k).unwrap();
        assert!(min * 4096 > 256 * MIB);
    }

    #[test]
    fn min_size_holds_the_content_at_every_larger_size() {
        for (bits, per_cluster_files) in [
            (None, 3000u64),
            (Some(32), 10),
            (Some(12), 100),
            (None, 70_000),
        ] {
            let c = Choice {
                fat_bits: bits,
                ..auto(512)
            };
            // `per_cluster_files` tiny files, one cluster each whatever the size.
            let need = |_g: &Geometry| per_cluster_files;
            let t = min_total_sectors(&c, need)
                .unwrap_or_else(|| panic!("{bits:?} {per_cluster_files}"));
            for extra in [0u64, 1, 2, 3, 7, 100, 2048, 65_536] {
                let g = choose(t + extra, &c).unwrap_or_else(|| panic!("{bits:?} {t}+{extra}"));
                assert!(
                    u64::from(g.clusters) >= per_cluster_files,
                    "{bits:?} {t}+{extra}"
                );
            }
            let smaller = choose(t - 1, &c).map_or(0, |g| u64::from(g.clusters));
            assert!(
                smaller <= per_cluster_files + 1,
                "{bits:?}: min {t} is not minimal"
            );
        }
    }

    #[test]
    fn content_that_fits_only_with_small_clusters_is_not_left_in_a_gap() {
        // 500,000 one-cluster files: fits 260 MiB of 512-byte clusters but
        // not the 4 KiB clusters that FAT32 gets just above it.
        let c = Choice {
            fat_bits: Some(32),
            ..auto(512)
        };
        let need = |_g: &Geometry| 500_000u64;
        let t = min_total_sectors(&c, need).unwrap();
        assert!(t * 512 > 260 * MIB, "{t}");
        let g = choose(t, &c).unwrap();
        assert!(u64::from(g.clusters) >= 500_000);
    }
}
