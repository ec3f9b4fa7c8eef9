//! Checks across entries of a decoded description: references that name
//! nothing, reference cycles, more than one `size: fill`, too many hybrid
//! MBR entries, empty partitions without a size, output file names that
//! collide, `files:` destinations given twice (after `${VAR}` expansion, so
//! a layer's `/${KERNEL}` and a board's `/bzImage` are caught here, with
//! both places named). Per-value checks are in `decode.rs`; layout (overlaps, fitting)
//! is the planner's.

use super::model::*;
use crate::diag::Diagnostic;
use std::collections::{BTreeMap, BTreeSet};

/// A hybrid MBR keeps its first entry for the 0xEE protective partition,
/// leaving three for partitions.
const HYBRID_MAX: usize = 3;

/// Appends every cross-entry problem of `d` to `diags`.
/// `broken` names partitions and artifacts left out after a problem was
/// reported: references to them are not problems of their own.
pub fn validate(d: &Description, broken: &BTreeSet<String>, diags: &mut Vec<Diagnostic>) {
    check_artifact_refs(d, broken, diags);
    check_same_as(d, broken, diags);
    check_artifact_cycles(d, diags);
    check_fill(d, diags);
    check_hybrid(d, diags);
    check_sizes(d, diags);
    check_outputs(d, diags);
    check_file_dests(d, diags);
    check_update(d, broken, diags);
}

/// `update.slot` names a partition, `update.slot-artifact` an artifact.
fn check_update(d: &Description, broken: &BTreeSet<String>, diags: &mut Vec<Diagnostic>) {
    let Some(u) = &d.update else { return };
    match &u.slot.value {
        UpdateSlot::Partition(name) if d.partition(name).is_none() && !broken.contains(name) => {
            let names: Vec<&str> = d.partitions.iter().map(|p| p.name.value.as_str()).collect();
            diags.push(
                u.slot
                    .diag(format!("no partition named \"{name}\""))
                    .help(format!("partitions: {}", names.join(", "))),
            );
        }
        UpdateSlot::Artifact(name) if d.artifact(name).is_none() && !broken.contains(name) => {
            let r = Spanned::new(name.clone(), u.slot.span.clone(), u.slot.key.clone());
            diags.push(unknown_artifact(d, &r));
        }
        _ => {}
    }
}

/// Every `{ artifact: name }` a content refers to, directly or from its files.
fn artifact_refs(c: &Content) -> Vec<&Spanned<String>> {
    let files: &[FileEntry] = match c {
        Content::Artifact(r) => return vec![r],
        Content::Fs(Filesystem::Vfat(v)) => &v.files,
        Content::Initramfs(i) => &i.files,
        _ => &[],
    };
    files
        .iter()
        .filter_map(|f| match &f.source {
            FileRef::Artifact(r) => Some(r),
            FileRef::Path(_) => None,
        })
        .collect()
}

fn unknown_artifact(d: &Description, r: &Spanned<String>) -> Diagnostic {
    let names: Vec<&str> = d.artifacts.iter().map(|a| a.name.value.as_str()).collect();
    let help = if names.is_empty() {
        "define it under `artifacts:`".to_string()
    } else {
        let guess = super::decode::closest(&r.value, &names)
            .map(|b| format!("did you mean '{b}'? "))
            .unwrap_or_default();
        format!("{guess}defined artifacts: {}", names.join(", "))
    };
    r.diag(format!("no artifact named \"{}\"", r.value))
        .help(help)
}

/// Every content of `d`: partitions' then artifacts'.
fn contents(d: &Description) -> impl Iterator<Item = &Content> {
    d.partitions
        .iter()
        .map(|p| &p.content.value)
        .chain(d.artifacts.iter().map(|a| &a.content.value))
}

fn check_artifact_refs(d: &Description, broken: &BTreeSet<String>, diags: &mut Vec<Diagnostic>) {
    for c in contents(d) {
        for r in artifact_refs(c) {
            if d.artifact(&r.value).is_none() && !broken.contains(&r.value) {
                diags.push(unknown_artifact(d, r));
            }
        }
    }
}

fn check_same_as(d: &Description, broken: &BTreeSet<String>, diags: &mut Vec<Diagnostic>) {
    let names: Vec<&str> = d.partitions.iter().map(|p| p.name.value.as_str()).collect();
    for p in &d.partitions {
        let Content::SameAs(r) = &p.content.value else {
            continue;
        };
        if broken.contains(&r.value) {
            continue;
        }
        if d.partition(&r.value).is_none() {
            let guess = super::decode::closest(&r.value, &names)
                .map(|b| format!("did you mean '{b}'? "))
                .unwrap_or_default();
            diags.push(
                r.diag(format!("no partition named \"{}\"", r.value))
                    .help(format!("{guess}partitions: {}", names.join(", "))),
            );
            continue;
        }
        // Follow the chain; a cycle is reported once, at its first member.
        let mut chain = vec![p.name.value.as_str()];
        let mut cur = r.value.as_str();
        loop {
            if let Some(pos) = chain.iter().position(|c| *c == cur) {
                if pos == 0 {
                    let mut shown: Vec<&str> = chain.clone();
                    shown.push(cur);
                    let first_in_cycle = chain.iter().min().copied() == Some(p.name.value.as_str());
                    if first_in_cycle {
                        diags.push(
                            r.diag(format!("same-as loops: {}", shown.join(" -> ")))
                                .help("give one of these partitions its own content"),
                        );
                    }
                }
                break;
            }
            chain.push(cur);
            match d.partition(cur).map(|q| &q.content.value) {
                Some(Content::SameAs(next)) => cur = next.value.as_str(),
                _ => break,
            }
        }
    }
}

/// An artifact holding itself through files of its filesystem or initramfs.
fn check_artifact_cycles(d: &Description, diags: &mut Vec<Diagnostic>) {
    let edges: BTreeMap<&str, Vec<&Spanned<String>>> = d
        .artifacts
        .iter()
        .map(|a| (a.name.value.as_str(), artifact_refs(&a.content.value)))
        .collect();
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    for a in &d.artifacts {
        let start = a.name.value.as_str();
        // Depth-first search for a path back to `start`.
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(start, vec![start])];
        let mut visited: BTreeSet<&str> = BTreeSet::new();
        while let Some((cur, path)) = stack.pop() {
            for r in edges.get(cur).into_iter().flatten() {
                let next = r.value.as_str();
                if next == start {
                    if path.iter().all(|n| !reported.contains(n)) {
                        let mut shown = path.clone();
                        shown.push(start);
                        let first = edges
                            .get(start)
                            .and_then(|v| v.first())
                            .map_or_else(|| a.name.diag(""), |r| r.diag(""));
                        diags.push(
                            Diagnostic::new(
                                first.span,
                                first.key,
                                format!(
                                    "artifact \"{start}\" contains itself: {}",
                                    shown.join(" -> ")
                                ),
                            )
                            .help("an artifact cannot be a file inside itself; break the loop"),
                        );
                        reported.extend(path.iter().copied());
                    }
                } else if edges.contains_key(next) && visited.insert(next) {
                    let mut p = path.clone();
                    p.push(next);
                    stack.push((next, p));
                }
            }
        }
    }
}

fn check_fill(d: &Description, diags: &mut Vec<Diagnostic>) {
    let fills: Vec<&Spanned<SizeSpec>> = d
        .partitions
        .iter()
        .filter_map(|p| p.size.as_ref())
        .filter(|s| s.value == SizeSpec::Fill)
        .collect();
    if let Some(first) = fills.first() {
        for s in fills.iter().skip(1) {
            diags.push(
                s.diag("a second `size: fill`").help(format!(
                    "only one partition can take the rest of the disk (the first is at {}); give this one a size",
                    first.span
                )),
            );
        }
    }
    for p in &d.partitions {
        if let (Some(s), false) = (&p.size, p.in_table.value) {
            if s.value == SizeSpec::Fill {
                diags.push(
                    s.diag("a blob outside the table cannot fill the disk")
                        .help(
                            "give it a size, or leave size out to use the size of its image file",
                        ),
                );
            }
        }
    }
}

fn check_hybrid(d: &Description, diags: &mut Vec<Diagnostic>) {
    let hybrids: Vec<&Partition> = d.partitions.iter().filter(|p| p.hybrid.value).collect();
    for p in hybrids.iter().skip(HYBRID_MAX) {
        diags.push(
            p.hybrid
                .diag(format!("more than {HYBRID_MAX} partitions marked hybrid"))
                .help("a hybrid MBR has room for 3 partitions besides the GPT protective entry; unmark some"),
        );
    }
}

fn check_sizes(d: &Description, diags: &mut Vec<Diagnostic>) {
    for p in &d.partitions {
        let nothing = matches!(p.content.value, Content::Empty | Content::Zero);
        let sized = matches!(
            p.size.as_ref().map(|s| s.value),
            Some(SizeSpec::Fixed(_) | SizeSpec::Fill)
        );
        if nothing && !sized {
            let at = p
                .size
                .as_ref()
                .map_or_else(|| p.name.diag(""), |s| s.diag(""));
            diags.push(
                Diagnostic::new(
                    at.span,
                    at.key,
                    format!(
                        "partition \"{}\" has no content to size it by",
                        p.name.value
                    ),
                )
                .help("give it a size (\"256MiB\" or fill), or a content (fs, image, artifact)"),
            );
        }
    }
}

/// Output files land in one directory: their names must differ.
fn check_outputs(d: &Description, diags: &mut Vec<Diagnostic>) {
    let image = &d.image.name.value;
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    for ext in ["img", "img.bmap", "img.zst", "img.xz", "img.gz"] {
        taken.insert(format!("{image}.{ext}"), "the image".to_string());
    }
    for a in &d.artifacts {
        let Some(out) = &a.output else { continue };
        if let Some(owner) = taken.get(&out.value) {
            diags.push(
                out.diag(format!("\"{}\" is also the output of {owner}", out.value))
                    .help("choose another file name"),
            );
        } else {
            taken.insert(out.value.clone(), format!("artifact \"{}\"", a.name.value));
        }
    }
}

/// Two `files:` entries of one filesystem or archive with the same
/// destination (FAT compares names case-insensitively). Layers merge
/// `files:` by key as written, so the clash may only appear once variables
/// are expanded.
fn check_file_dests(d: &Description, diags: &mut Vec<Diagnostic>) {
    for content in contents(d) {
        let (files, fold): (&[FileEntry], bool) = match content {
            Content::Fs(Filesystem::Vfat(v)) => (&v.files, true),
            Content::Initramfs(i) => (&i.files, false),
            _ => continue,
        };
        let mut seen: BTreeMap<String, &Spanned<String>> = BTreeMap::new();
        for f in files {
            let trimmed = f.dest.value.trim_end_matches('/');
            let key = if fold {
                trimmed.to_uppercase()
            } else {
                trimmed.to_string()
            };
            match seen.get(&key) {
                Some(first) => diags.push(
                    f.dest
                        .diag(format!(
                            "\"{}\" is given twice (first as \"{}\" at {})",
                            f.dest.value, first.value, first.span
                        ))
                        .help("keep one of the two entries; where a layer and a board both set it, write the destination the same way in both so the board's entry replaces the layer's"),
                ),
                None => {
                    seen.insert(key, &f.dest);
                }
            }
        }
    }
}
