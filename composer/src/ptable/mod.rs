//! Partition tables: the partition type names users write, and encoders
//! that turn a [`crate::plan::Plan`] into the bytes of its table regions.
//!
//! - [`types`]: `type:` shorthands → GPT type GUID + MBR type byte.
//! - [`gpt`]: GPT header and entry array, primary and backup.
//! - [`mbr`]: classic, protective and hybrid MBRs and the EBR chain.
//!
//! [`encode`] is pure: it returns each table region's bytes at its absolute
//! offset and the caller writes them through `output::window::Window`, so
//! they are mapped in the bmap like everything else. The plan has already
//! checked every limit (32-bit MBR fields, entry counts, name lengths), so
//! encoding cannot fail.
//!
//! Write the table bytes after the raw blobs: a blob may declare `holes`
//! that table regions occupy (a boot ROM image at offset 0 leaving bytes
//! 440..512 for the MBR), and the table must win there. The MBR region is
//! bytes 440..512 of LBA 0 only; bytes 0..440 (boot code) are never written
//! here.

pub mod gpt;
pub mod mbr;
pub mod types;

use crate::plan::Plan;

/// The bytes of every table region of `plan` at their absolute offsets:
/// the MBR (classic, protective or hybrid) at byte 440, the EBRs, the
/// primary GPT header and array, the backup array and header. Empty for
/// `table: none`.
pub fn encode(plan: &Plan) -> Vec<(u64, Vec<u8>)> {
    let mut out = mbr::encode(plan);
    if let Some(layout) = &plan.gpt {
        out.extend(gpt::encode(plan, layout));
    }
    out.sort_by_key(|(offset, _)| *offset);
    out
}
