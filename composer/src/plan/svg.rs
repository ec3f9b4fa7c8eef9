//! The plan as a picture ([`render_svg`]): the disk as a bar, one box per
//! region and per free gap, and below it one line per box with its name,
//! start, size, type and content (the same rows as [`super::render_text`]).
//!
//! Scale: a box is as wide as its share of the disk, but never narrower
//! than [`MIN_BOX`] pixels (a broken axis), so the 72-byte MBR, the GPT
//! header and a 1 MiB alignment gap stay visible beside a 4 GiB partition;
//! the other boxes share the rest in proportion, so their ratios are true.
//! A widened box has a dashed outline, and the picture says so. Rejected: a log scale (sizes of large partitions would
//! look alike, and their ratios are what a reader compares).
//!
//! The text is deterministic: integer pixel positions, the same colours for
//! the same partition order, no time or host in it. Text is measured as
//! monospace (every character [`CHAR_WIDTH`] pixels wide), so nothing
//! depends on the fonts of the viewer for placement.

use super::render::{rows, table_text, type_text};
use super::{PartSpec, Plan, TableKind};
use crate::units::human;
use std::fmt::Write as _;

/// Width of the disk bar in pixels (more with more than 19 boxes).
const BAR_WIDTH: u64 = 920;
/// The narrowest box: room for five characters ("512 B").
const MIN_BOX: u64 = 48;
/// Left and right margin.
const MARGIN: u64 = 20;
/// Pixels per character of the 13px monospace font.
const CHAR_WIDTH: u64 = 8;
/// Height of one line of the list.
const LINE: u64 = 22;
/// Fill colours of partitions, in partition order (cycled).
const PALETTE: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
];
/// Fill of partition table structures.
const TABLE_FILL: &str = "#8c8c8c";

/// One box of the bar and one line of the list.
struct Item {
    name: String,
    start: u64,
    len: u64,
    fill: String,
    kind: String,
    content: String,
}

/// The plan as an SVG document.
pub fn render_svg(plan: &Plan, parts: &[PartSpec]) -> String {
    let items: Vec<Item> = rows(plan)
        .into_iter()
        .map(|row| {
            let len = row.end.saturating_sub(row.start);
            let Some(r) = row.region else {
                return Item {
                    name: "(free)".into(),
                    start: row.start,
                    len,
                    fill: "url(#free)".into(),
                    kind: String::new(),
                    content: String::new(),
                };
            };
            match r
                .kind
                .part()
                .and_then(|i| Some((i, plan.partitions.get(i)?, parts.get(i)?)))
            {
                Some((i, p, spec)) => Item {
                    name: r.name.clone(),
                    start: row.start,
                    len,
                    fill: PALETTE[i % PALETTE.len()].into(),
                    kind: if p.in_table && plan.table != TableKind::None {
                        type_text(plan.table, p.part_type)
                    } else {
                        "raw".into()
                    },
                    content: spec.content.clone(),
                },
                None => Item {
                    name: r.name.clone(),
                    start: row.start,
                    len,
                    fill: TABLE_FILL.into(),
                    kind: "table".into(),
                    content: table_text(plan, r.kind),
                },
            }
        })
        .collect();

    let lengths: Vec<u64> = items.iter().map(|i| i.len).collect();
    // Many partitions make the bar wider rather than any box narrower.
    let bar_width = BAR_WIDTH.max(MIN_BOX * items.len() as u64);
    let (widths, widened) = box_widths(&lengths, bar_width);

    // Columns of the list: # swatch, name, start, size, type, content.
    let col = |k: usize| -> u64 {
        let longest = |f: &dyn Fn(&Item) -> usize, head: usize| {
            items.iter().map(f).max().unwrap_or(0).max(head) as u64 * CHAR_WIDTH + 16
        };
        let name = longest(&|i| i.name.chars().count(), 4);
        let start = longest(&|i| i.start.to_string().len(), 5);
        let size = longest(&|i| human(i.len).chars().count(), 4);
        let kind = longest(&|i| i.kind.chars().count(), 4);
        let x = [MARGIN + 24, name, start, size, kind];
        x.iter().take(k + 1).sum()
    };
    let content_len = items
        .iter()
        .map(|i| i.content.chars().count())
        .max()
        .unwrap_or(0) as u64;
    let width = (2 * MARGIN + bar_width).max(col(4) + content_len * CHAR_WIDTH + MARGIN);
    let bar_y = 44;
    let bar_h = 56;
    let list_y = bar_y + bar_h + 52;
    let height = list_y + LINE * (items.len() as u64 + 1) + MARGIN;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="monospace" font-size="13">"#
    );
    out.push_str(concat!(
        "<defs><pattern id=\"free\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">",
        "<rect width=\"6\" height=\"6\" fill=\"#ffffff\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#c8c8c8\" stroke-width=\"2\"/>",
        "</pattern></defs>\n"
    ));
    let _ = writeln!(
        out,
        r##"<rect width="{width}" height="{height}" fill="#ffffff"/>"##
    );
    let mut title = format!(
        "disk: {} ({} bytes), table {}, {}-byte sectors",
        human(plan.disk_size),
        plan.disk_size,
        plan.table.name(),
        plan.sector_size
    );
    if widened.iter().any(|&w| w) {
        title.push_str("; dashed boxes are widened (not to scale)");
    }
    let _ = writeln!(
        out,
        r#"<text x="{MARGIN}" y="24" font-size="14">{}</text>"#,
        escape(&title)
    );

    let mut x = MARGIN;
    for ((item, &w), &wide) in items.iter().zip(&widths).zip(&widened) {
        let dash = if wide {
            r#" stroke-dasharray="4 3""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r##"<g><title>{}</title><rect x="{x}" y="{bar_y}" width="{w}" height="{bar_h}" fill="{}" stroke="#333333"{dash}/>"##,
            escape(&format!(
                "{}: {} at {}",
                item.name,
                human(item.len),
                item.start
            )),
            item.fill
        );
        // The name and size inside the box, cut to its width.
        let fits = (w.saturating_sub(6) / CHAR_WIDTH) as usize;
        let colour = if item.fill.starts_with('#') {
            "#ffffff"
        } else {
            "#333333"
        };
        // The name, cut to fit; the size only when it fits whole.
        let size = human(item.len);
        let size = if size.chars().count() <= fits {
            size
        } else {
            String::new()
        };
        for (text, dy) in [(cut(&item.name, fits), 24), (size, 42)] {
            if !text.is_empty() {
                let _ = writeln!(
                    out,
                    r#"<text x="{}" y="{}" fill="{colour}">{}</text>"#,
                    x + 4,
                    bar_y + dy,
                    escape(&text)
                );
            }
        }
        out.push_str("</g>\n");
        x += w;
    }
    let _ = writeln!(
        out,
        r##"<text x="{MARGIN}" y="{}" fill="#555555">0</text><text x="{}" y="{}" fill="#555555" text-anchor="end">{}</text>"##,
        bar_y + bar_h + 18,
        MARGIN + bar_width,
        bar_y + bar_h + 18,
        escape(&human(plan.disk_size))
    );

    let head = ["name", "start", "size", "type", "content"];
    let mut y = list_y;
    for (k, h) in head.iter().enumerate() {
        let _ = write!(
            out,
            r#"<text x="{}" y="{y}" font-weight="bold">{h}</text>"#,
            col(k)
        );
    }
    out.push('\n');
    for item in &items {
        y += LINE;
        let _ = write!(
            out,
            r##"<g><rect x="{MARGIN}" y="{}" width="14" height="14" fill="{}" stroke="#333333"/>"##,
            y - 12,
            item.fill
        );
        let size = human(item.len);
        let start = item.start.to_string();
        let cells = [&item.name, &start, &size, &item.kind, &item.content];
        for (k, cell) in cells.iter().enumerate() {
            if !cell.is_empty() {
                let _ = write!(
                    out,
                    r#"<text x="{}" y="{y}">{}</text>"#,
                    col(k),
                    escape(cell)
                );
            }
        }
        out.push_str("</g>\n");
    }
    out.push_str("</svg>\n");
    out
}

/// The width of each box, out of `total` pixels, and whether it was
/// widened: a box whose share would be under [`MIN_BOX`] gets that, and the
/// others share the rest in proportion to their bytes (so their ratios stay
/// true); the rounding remainder goes to the largest box.
fn box_widths(lengths: &[u64], total: u64) -> (Vec<u64>, Vec<bool>) {
    let mut widened = vec![false; lengths.len()];
    let share = |widened: &[bool]| {
        let pinned = widened.iter().filter(|&&w| w).count() as u64;
        let bytes: u128 = lengths
            .iter()
            .zip(widened)
            .filter(|(_, &w)| !w)
            .map(|(&l, _)| u128::from(l))
            .sum();
        (
            u128::from(total.saturating_sub(MIN_BOX * pinned)),
            bytes.max(1),
        )
    };
    loop {
        let (pixels, bytes) = share(&widened);
        let mut changed = false;
        for (k, &len) in lengths.iter().enumerate() {
            if !widened[k] && u128::from(len) * pixels < u128::from(MIN_BOX) * bytes {
                widened[k] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let (pixels, bytes) = share(&widened);
    let mut widths: Vec<u64> = lengths
        .iter()
        .zip(&widened)
        .map(|(&len, &w)| {
            if w {
                MIN_BOX
            } else {
                u64::try_from(u128::from(len) * pixels / bytes).unwrap_or(MIN_BOX)
            }
        })
        .collect();
    let used: u64 = widths.iter().sum();
    let largest = (0..lengths.len()).max_by_key(|&k| (lengths[k], std::cmp::Reverse(k)));
    if let Some(k) = largest {
        widths[k] += total.saturating_sub(used);
    }
    (widths, widened)
}

/// `text` cut to `max` characters, with `…` when cut; empty when even one
/// character and the mark do not fit.
fn cut(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        return text.to_string();
    }
    if max < 2 {
        return String::new();
    }
    let mut s: String = text.chars().take(max - 1).collect();
    s.push('…');
    s
}

/// Text for XML character data and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
