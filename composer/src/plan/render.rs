//! Showing a [`Plan`] to people ([`render_text`]) and to programs
//! ([`render_json`], documented field by field in `docs/plan-json.md`).
//!
//! The text form is one line for the disk, a table with one row per region
//! and per free gap (bytes and sectors side by side, so a reader can check
//! it against `sfdisk -d` or `fdisk -l`), and a bar of the disk, 64 columns
//! wide, one symbol per region with a legend. The bar is proportional but
//! never hides a region: each gets at least one column, taken from the
//! widest ones, so the 72-byte MBR is as visible as a 4 GiB data partition.
//! Free gaps narrower than half a column are left out of the bar (they are
//! in the table).
//!
//! Rejected: ANSI colours (the plan is pasted into CI logs and tickets) and
//! a bar in sectors (offsets users write are bytes).

use super::{PartSpec, Plan, Region, RegionKind, TableKind};
use crate::ptable::types::{PartType, SHORTHANDS};
use crate::units::human;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// Width of the disk bar, in columns.
const BAR_WIDTH: u64 = 64;

/// The version of the JSON layout; bumped when a field changes meaning or
/// goes away (new fields do not bump it).
const JSON_VERSION: u32 = 1;

/// How a partition type reads in the plan: the shorthand when one matches,
/// else the GUID (GPT) or the byte (MBR).
pub(super) fn type_text(table: TableKind, t: PartType) -> String {
    match (table, t.mbr) {
        (TableKind::Mbr, Some(byte)) => {
            match SHORTHANDS.iter().find(|(_, _, mbr)| *mbr == Some(byte)) {
                Some((name, _, _)) => format!("0x{byte:02x} ({name})"),
                None => format!("0x{byte:02x}"),
            }
        }
        _ => t.describe(),
    }
}

/// The symbol of a region in the bar: letters for partitions in input order,
/// `#` for table structures.
fn symbol(kind: RegionKind) -> char {
    const SYMBOLS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    match kind.part() {
        Some(i) => SYMBOLS.get(i).map_or('*', |&b| char::from(b)),
        None => '#',
    }
}

/// One row of the table: a region, or a free gap (`region` is `None`).
pub(super) struct Row<'a> {
    pub region: Option<&'a Region>,
    pub start: u64,
    pub end: u64,
}

/// The regions in order with the free gaps of a sector or more between them
/// (smaller ones are the unused boot code area before the MBR entries, or
/// the rest of a sector).
pub(super) fn rows(plan: &Plan) -> Vec<Row<'_>> {
    let ss = u64::from(plan.sector_size);
    let mut out = Vec::new();
    let mut pos = 0u64;
    for r in &plan.regions {
        if r.start >= pos.saturating_add(ss) {
            out.push(Row {
                region: None,
                start: pos,
                end: r.start,
            });
        }
        out.push(Row {
            region: Some(r),
            start: r.start,
            end: r.end(),
        });
        pos = pos.max(r.end());
    }
    if plan.disk_size >= pos.saturating_add(ss) {
        out.push(Row {
            region: None,
            start: pos,
            end: plan.disk_size,
        });
    }
    out
}

/// The plan as a table and a bar, for people.
pub fn render_text(plan: &Plan, parts: &[PartSpec]) -> String {
    let ss = u64::from(plan.sector_size);
    let mut out = String::new();
    let _ = write!(
        out,
        "disk: {} ({} bytes, {} sectors of {} bytes), table {}",
        human(plan.disk_size),
        plan.disk_size,
        plan.sectors(),
        plan.sector_size,
        plan.table.name()
    );
    if plan.table.has_gpt() {
        let _ = write!(out, ", disk GUID {}", plan.disk_guid);
    }
    if matches!(plan.table, TableKind::Mbr | TableKind::Hybrid) {
        let _ = write!(out, ", MBR signature 0x{:08x}", plan.mbr_signature);
    }
    out.push('\n');

    let header = [
        "#",
        "name",
        "start",
        "end",
        "first LBA",
        "last LBA",
        "size",
        "type",
        "uuid",
        "content",
    ];
    let mut table: Vec<[String; 10]> = Vec::new();
    for row in rows(plan) {
        let first = row.start / ss;
        let last = row.end.saturating_sub(1) / ss;
        let (number, name, ty, uuid, content) = match row.region {
            None => ("".into(), "(free)".into(), "".into(), "".into(), "".into()),
            Some(r) => match r
                .kind
                .part()
                .and_then(|i| Some((plan.partitions.get(i)?, parts.get(i)?)))
            {
                Some((p, spec)) => (
                    p.number.map_or("-".into(), |n| n.to_string()),
                    r.name.clone(),
                    if p.in_table && plan.table != TableKind::None {
                        type_text(plan.table, p.part_type)
                    } else {
                        "raw".into()
                    },
                    if p.in_table && plan.table.has_gpt() {
                        p.uuid.to_string()
                    } else {
                        "".into()
                    },
                    spec.content.clone(),
                ),
                None => (
                    "".into(),
                    r.name.clone(),
                    "".into(),
                    "".into(),
                    table_text(plan, r.kind),
                ),
            },
        };
        table.push([
            number,
            name,
            row.start.to_string(),
            row.end.to_string(),
            first.to_string(),
            last.to_string(),
            human(row.end - row.start),
            ty,
            uuid,
            content,
        ]);
    }
    let mut widths = header.map(str::len);
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // Numbers right-aligned (#, offsets, LBAs, size), text left-aligned.
    let right = [
        true, false, true, true, true, true, true, false, false, false,
    ];
    let mut line = |cells: [&str; 10]| {
        let mut text = String::new();
        for (k, cell) in cells.iter().enumerate() {
            if k > 0 {
                text.push_str("  ");
            }
            if right[k] {
                let _ = write!(text, "{cell:>w$}", w = widths[k]);
            } else {
                let _ = write!(text, "{cell:<w$}", w = widths[k]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header);
    for row in &table {
        line(row.each_ref().map(String::as_str));
    }
    out.push_str("(start and end in bytes, end exclusive; LBAs inclusive)\n\n");

    let (bar, legend) = bar(plan);
    let _ = writeln!(out, "|{bar}|");
    out.push_str(&legend);
    out.push('\n');
    out
}

/// The disk bar and its legend.
fn bar(plan: &Plan) -> (String, String) {
    // Segments: (symbol, bytes), table structures that touch merged into one.
    let mut segments: Vec<(char, u64)> = Vec::new();
    for row in rows(plan) {
        let c = row.region.map_or('.', |r| symbol(r.kind));
        let len = row.end.saturating_sub(row.start);
        match segments.last_mut() {
            Some((last, n)) if *last == c && c != '.' => *n += len,
            _ => segments.push((c, len)),
        }
    }
    let disk = u128::from(plan.disk_size.max(1));
    let mut cols: Vec<u64> = segments
        .iter()
        .map(|&(c, len)| {
            let exact = u128::from(len) * u128::from(BAR_WIDTH);
            let rounded = u64::try_from((exact + disk / 2) / disk).unwrap_or(BAR_WIDTH);
            if c == '.' {
                rounded
            } else {
                rounded.max(1)
            }
        })
        .collect();
    // Bring the total to BAR_WIDTH by taking from or giving to the widest.
    loop {
        let total: u64 = cols.iter().sum();
        if total == BAR_WIDTH || cols.is_empty() {
            break;
        }
        let widest = (0..cols.len())
            .filter(|&k| total < BAR_WIDTH || cols[k] > 1 || (segments[k].0 == '.' && cols[k] > 0))
            .max_by_key(|&k| (cols[k], segments[k].1));
        let Some(k) = widest else { break };
        if total > BAR_WIDTH {
            cols[k] -= 1;
        } else {
            cols[k] += 1;
        }
    }
    let mut text = String::new();
    for (&(c, _), &n) in segments.iter().zip(&cols) {
        for _ in 0..n {
            text.push(c);
        }
    }

    let mut legend = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for r in &plan.regions {
        let c = symbol(r.kind);
        if c != '#' && seen.insert(r.kind) {
            legend.push(format!("{c} {}", r.name));
        }
    }
    if plan.regions.iter().any(|r| r.kind.is_table()) {
        legend.push("# partition table".into());
    }
    if segments
        .iter()
        .zip(&cols)
        .any(|(&(c, _), &n)| c == '.' && n > 0)
    {
        legend.push(". free".into());
    }
    (text, legend.join("  "))
}

/// What a table region holds, for the content column.
pub(super) fn table_text(plan: &Plan, kind: RegionKind) -> String {
    match kind {
        RegionKind::Mbr => match plan.table {
            TableKind::Gpt => "protective MBR (0xEE entry)".into(),
            TableKind::Hybrid => "hybrid MBR (0xEE entry + mirrored partitions)".into(),
            _ => match plan.extended {
                Some(_) => "MBR: primary partitions + extended partition".into(),
                None => "MBR: primary partitions".into(),
            },
        },
        RegionKind::GptHeader => "primary GPT header".into(),
        RegionKind::GptArray | RegionKind::BackupGptArray => {
            format!("{} entries", plan.gpt.map_or(0, |g| g.entries))
        }
        RegionKind::BackupGptHeader => "backup GPT header".into(),
        RegionKind::Ebr(n) => format!("EBR of logical partition {n}"),
        RegionKind::Blob(_) | RegionKind::Partition(_) => String::new(),
    }
}

fn kind_text(kind: RegionKind) -> &'static str {
    match kind {
        RegionKind::Mbr => "mbr",
        RegionKind::GptHeader => "gpt-header",
        RegionKind::GptArray => "gpt-array",
        RegionKind::BackupGptArray => "backup-gpt-array",
        RegionKind::BackupGptHeader => "backup-gpt-header",
        RegionKind::Ebr(_) => "ebr",
        RegionKind::Blob(_) => "blob",
        RegionKind::Partition(_) => "partition",
    }
}

/// The plan for programs; every field is described in `docs/plan-json.md`.
pub fn render_json(plan: &Plan, parts: &[PartSpec]) -> Value {
    let ss = u64::from(plan.sector_size);
    let gpt = plan.gpt.map(|g| {
        json!({
            "entries": g.entries,
            "array_lba": g.array_offset / ss,
            "array_sectors": g.array_size / ss,
            "first_usable_lba": g.first_usable_lba,
            "last_usable_lba": g.last_usable_lba,
            "backup_array_lba": g.backup_array_offset / ss,
            "backup_header_lba": g.backup_header_offset / ss,
        })
    });
    let regions: Vec<Value> = plan
        .regions
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "kind": kind_text(r.kind),
                "partition": r.kind.part(),
                "ebr_of": match r.kind { RegionKind::Ebr(n) => Some(n), _ => None },
                "start": r.start,
                "size": r.size,
                "end": r.end(),
                "first_lba": r.start / ss,
                "last_lba": r.end().saturating_sub(1) / ss,
            })
        })
        .collect();
    let partitions: Vec<Value> = plan
        .partitions
        .iter()
        .map(|p| {
            let content = parts.get(p.spec).map_or("", |s| s.content.as_str());
            json!({
                "index": p.spec,
                "name": p.name,
                "in_table": p.in_table,
                "number": p.number,
                "mbr_number": p.mbr_number,
                "logical": p.ebr.is_some(),
                "ebr": p.ebr,
                "start": p.start,
                "size": p.size,
                "end": p.end(),
                "first_lba": p.start / ss,
                "sectors": p.size / ss,
                "type": {
                    "name": type_text(plan.table, p.part_type),
                    "gpt": p.part_type.gpt.map(|g| g.to_string()),
                    "mbr": p.part_type.mbr,
                },
                "uuid": p.uuid.to_string(),
                "bootable": p.bootable,
                "gpt_attrs": p.gpt_attrs,
                "content": content,
            })
        })
        .collect();
    json!({
        "version": JSON_VERSION,
        "disk": {
            "size": plan.disk_size,
            "sector_size": plan.sector_size,
            "sectors": plan.sectors(),
            "table": plan.table.name(),
            "disk_guid": plan.table.has_gpt().then(|| plan.disk_guid.to_string()),
            "mbr_signature": matches!(plan.table, TableKind::Mbr | TableKind::Hybrid).then_some(plan.mbr_signature),
            "gpt": gpt,
            "extended": plan.extended.map(|(start, size)| json!({ "start": start, "size": size })),
        },
        "regions": regions,
        "partitions": partitions,
    })
}
