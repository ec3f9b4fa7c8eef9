//! The description in the planner's vocabulary: a [`DiskSpec`] and one
//! [`PartSpec`] per partition, with the prepared contents' sizes and every
//! span the planner needs to point its diagnostics at the user's lines.
//!
//! Size rules: a partition with its own `size` gets it, and its filesystem
//! fills it; a partition without one that holds an artifact gets the
//! artifact's size; otherwise it is the content's minimum (plus headroom
//! with `auto +…`). `same-as` takes the referenced partition's size.

use super::prepare::{Contents, Use};
use crate::config::{self, Description, ImageSize, Partition, SizeSpec, TableKind as Table};
use crate::diag::Diagnostic;
use crate::ids::Seed;
use crate::plan::{DiskSpec, Headroom, PartSpec, SizeReq, TableKind};
use crate::ptable::types;

/// GPT attribute bits (UEFI 2.10 §5.3.3; bits 60–63 from the Discoverable
/// Partitions Specification).
const ATTR_REQUIRED: u64 = 1 << 0;
const ATTR_LEGACY_BIOS_BOOTABLE: u64 = 1 << 2;
const ATTR_READ_ONLY: u64 = 1 << 60;
const ATTR_NO_AUTOMOUNT: u64 = 1 << 63;

/// Converts the description into the planner's input.
pub fn specs(
    desc: &Description,
    contents: &Contents,
    seed: &Seed,
) -> Result<(DiskSpec, Vec<PartSpec>), Vec<Diagnostic>> {
    let image = &desc.image;
    let mut disk = DiskSpec::new(match image.table.value {
        Table::Gpt => TableKind::Gpt,
        Table::Mbr => TableKind::Mbr,
        Table::Hybrid => TableKind::Hybrid,
        Table::None => TableKind::None,
    });
    disk.size = match image.size.value {
        ImageSize::Auto => None,
        ImageSize::Fixed(b) => Some(b.bytes()),
    };
    disk.size_span = Some(image.size.span.clone());
    disk.span = image.name.span.clone();
    disk.sector_size = image.sector_size.value;
    disk.align = image.align.value.bytes();
    disk.disk_guid = image
        .disk_uuid
        .as_ref()
        .map_or_else(|| seed.uuid(&["disk"]), |u| u.value);
    disk.mbr_signature = match (&image.mbr_signature, image.table.value) {
        (Some(s), _) => s.value,
        // UEFI 2.10 table 5.3: a protective MBR's signature is zero.
        (None, Table::Gpt) => 0,
        (None, _) => seed.u32(&["mbr-signature"]),
    };
    disk.gpt_backup = !image.gpt_no_backup.as_ref().is_some_and(|b| b.value);
    disk.protective_first = image.protective_first.as_ref().is_some_and(|b| b.value);
    disk.extended_entry = image.extended_partition.as_ref().map(|e| e.value);
    disk.gpt_array_offset = image.gpt_location.as_ref().map(|l| l.value.bytes());
    if let Some(entries) = &image.gpt_entries {
        disk.gpt_entries = entries.value;
    }

    let mut problems = Vec::new();
    let mut parts = Vec::new();
    for (index, part) in desc.partitions.iter().enumerate() {
        let using = &contents.uses[index];
        let prepared = contents.get(using);
        let (size, size_span) = size_of(desc, part, using, contents, &mut problems);
        tracing::debug!(
            "size({}): {size:?}; its content needs {} ({})",
            part.name.value,
            crate::units::human(prepared.min_size()),
            match using {
                Use::Artifact(a) => format!("artifact '{a}'"),
                Use::Own(_) => prepared.describe(),
            }
        );
        let part_type = match &typed(desc, part).part_type {
            Some(t) => match types::check(&t.value) {
                Ok(pt) => pt,
                Err(e) => {
                    problems.push(t.diag(format!("\"{}\" {e}", t.value)).help(format!(
                        "use a GUID, an MBR byte like \"0x83\", or a shorthand such as {} (all in docs/config.md)",
                        types::COMMON.join(", ")
                    )));
                    continue;
                }
            },
            None => types::PartType::linux(),
        };
        let mut part_type = part_type;
        if let Some(mbr) = &part.mbr_type {
            part_type.mbr = Some(mbr.value);
        }
        let flags = &part.flags;
        let mut attrs = flags.attributes.as_ref().map_or(0, |a| a.value);
        for (on, bit) in [
            (flags.required.value, ATTR_REQUIRED),
            (flags.legacy_bios_bootable.value, ATTR_LEGACY_BIOS_BOOTABLE),
            (flags.read_only.value, ATTR_READ_ONLY),
            (flags.no_automount.value, ATTR_NO_AUTOMOUNT),
        ] {
            if on {
                attrs |= bit;
            }
        }
        let name = &part.name.value;
        parts.push(PartSpec {
            name: name.clone(),
            key: format!("partitions[{index}]"),
            span: part.span.clone(),
            size,
            size_span,
            content_min: prepared.min_size(),
            offset: part.offset.as_ref().map(|o| o.value.bytes()),
            offset_span: part.offset.as_ref().map(|o| o.span.clone()),
            align: part.align.as_ref().map(|a| a.value.bytes()),
            in_table: part.in_table.value,
            part_type,
            type_span: typed(desc, part).part_type.as_ref().map(|t| t.span.clone()),
            bootable: part.bootable.value,
            gpt_attrs: attrs,
            uuid: part
                .uuid
                .as_ref()
                .map_or_else(|| seed.uuid(&["partition", name, "uuid"]), |u| u.value),
            holes: part
                .holes
                .iter()
                .map(|h| (h.value.offset.bytes(), h.value.size.bytes()))
                .collect(),
            in_mbr: part.hybrid.value,
            forced_primary: part.forced_primary.value,
            content: match using {
                Use::Artifact(a) => format!("{} (artifact '{a}')", prepared.describe()),
                Use::Own(_) => prepared.describe(),
            },
        });
    }
    if problems.is_empty() {
        Ok((disk, parts))
    } else {
        Err(problems)
    }
}

/// The partition whose `type:` applies: `same-as` without its own type
/// takes the type of the partition it refers to.
fn typed<'d>(desc: &'d Description, part: &'d Partition) -> &'d Partition {
    let mut typed = part;
    for _ in 0..=desc.partitions.len() {
        match (&typed.part_type, &typed.content.value) {
            (None, config::Content::SameAs(target)) => match desc.partition(&target.value) {
                Some(t) => typed = t,
                None => break,
            },
            _ => break,
        }
    }
    typed
}

/// The partition's size request and the span it comes from.
fn size_of(
    desc: &Description,
    part: &Partition,
    using: &Use,
    contents: &Contents,
    problems: &mut Vec<Diagnostic>,
) -> (SizeReq, crate::diag::Span) {
    // `same-as` takes the size of the partition it refers to.
    let mut sized = part;
    for _ in 0..=desc.partitions.len() {
        match (&sized.size, &sized.content.value) {
            (None, config::Content::SameAs(target)) => match desc.partition(&target.value) {
                Some(t) => sized = t,
                None => break,
            },
            _ => break,
        }
    }
    let min = contents.get(using).min_size();
    match &sized.size {
        Some(s) => {
            let req = match s.value {
                SizeSpec::Fixed(b) => SizeReq::Exact(b.bytes()),
                SizeSpec::Auto(h) => SizeReq::Auto {
                    min,
                    headroom: headroom(h),
                },
                SizeSpec::Fill if !std::ptr::eq(sized, part) => {
                    problems.push(
                        part.content
                            .diag(format!(
                                "'{}' is the same as '{}', which fills the rest of the disk",
                                part.name.value, sized.name.value
                            ))
                            .help(format!("give '{}' a size", sized.name.value)),
                    );
                    SizeReq::Exact(0)
                }
                SizeSpec::Fill => SizeReq::Fill,
            };
            (req, s.span.clone())
        }
        None => {
            let min = match using {
                Use::Artifact(name) => contents.artifacts.get(name).map_or(min, |a| a.size),
                Use::Own(_) => min,
            };
            (
                SizeReq::Auto {
                    min,
                    headroom: Headroom::None,
                },
                part.span.clone(),
            )
        }
    }
}

pub(super) fn headroom(h: config::Headroom) -> Headroom {
    match h {
        config::Headroom::None => Headroom::None,
        config::Headroom::Bytes(b) => Headroom::Bytes(b.bytes()),
        config::Headroom::Percent(p) => Headroom::Percent(p),
        config::Headroom::PercentAndBytes(p, b) => Headroom::PercentAndBytes(p, b.bytes()),
    }
}
