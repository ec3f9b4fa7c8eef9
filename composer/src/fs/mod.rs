//! Content writers: one module per kind of content a region can hold.
//!
//! Every kind follows the same small interface, [`Content`]: it is
//! *prepared* from its spec first (inputs scanned, sizes known, nothing
//! written), which gives the planner its minimum size, and is then *written*
//! into its window of the final image. Adding a kind means one enum variant
//! in the config model and one module here.

pub mod cpio;
pub mod erofs;
pub mod ext4;
pub mod parallel;
pub mod raw;
pub mod squashfs;
pub mod swap;
pub mod tree;
pub mod verity;
pub mod vfat;

use crate::ids::Seed;
use crate::output::window::Window;
use std::path::PathBuf;
use std::sync::Arc;

/// What every writer may need to know about the build as a whole.
#[derive(Clone, Debug)]
pub struct BuildContext {
    /// Identifiers (filesystem UUIDs, volume ids, hash seeds) derive from it.
    pub seed: Seed,
    /// `SOURCE_DATE_EPOCH`: when set, every timestamp is clamped to it.
    pub source_date_epoch: Option<u64>,
}

impl BuildContext {
    /// `time` clamped to `SOURCE_DATE_EPOCH` when that is set.
    pub fn clamp_time(&self, time: u64) -> u64 {
        match self.source_date_epoch {
            Some(epoch) => time.min(epoch),
            None => time,
        }
    }
}

/// Where the bytes of one file placed into a filesystem come from.
#[derive(Clone, Debug)]
pub enum FileSource {
    /// A file on the build host.
    Path(PathBuf),
    /// Bytes produced by this build (an initramfs, a generated config).
    Bytes(Arc<Vec<u8>>),
}

/// A prepared piece of content: inputs scanned, ready to be written.
pub trait Content: Send + Sync {
    /// The smallest window, in bytes, this content fits in.
    fn min_size(&self) -> u64;
    /// Writes the content into `window`, which is at least `min_size()` long
    /// and reads as zero where nothing is written.
    fn write(&self, window: &mut Window<'_>) -> anyhow::Result<()>;
}
