//! Checks across entries of a decoded description: references that name
//! nothing, reference cycles, more than one `size: fill`, too many hybrid
//! MBR entries, empty partitions without a size, output file names that
//! collide, `files:` destinations given twice (after `${VAR}` expansion, so
//! a layer's `/${KERNEL}` and a board's `/bzImage` are caught here, with
//! both places named), partition names and explicit UUIDs given twice (also
//! after expansion: layers merge partitions by the name as written). Per-value checks are in `decode.rs`; layout (overlaps, fitting)
//! is the planner's.

use super::model::*;
use crate::diag::{Diagnostic, Span};
use crate::ids::Uuid;
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
    check_unique_names(d, diags);
    check_unique_uuids(d, diags);
    check_update(d, broken, diags);
    check_verity_refs(d, broken, diags);
}

/// Whether the content called `name` (a partition's, else an artifact's,
/// through `same-as` and `artifact:`) has a dm-verity hash tree; `None`
/// when nothing has that name.
fn has_verity(d: &Description, name: &str) -> Option<bool> {
    let mut content = match d.partition(name) {
        Some(p) => &p.content.value,
        None => &d.artifact(name)?.content.value,
    };
    // Bounded: the other checks report reference cycles.
    for _ in 0..=d.partitions.len() + d.artifacts.len() {
        content = match content {
            Content::SameAs(r) => &d.partition(&r.value)?.content.value,
            Content::Artifact(r) => &d.artifact(&r.value)?.content.value,
            Content::Fs(Filesystem::Squashfs(q)) => return Some(q.verity.value),
            Content::Fs(Filesystem::Erofs(e)) => return Some(e.verity.value),
            _ => return Some(false),
        };
    }
    Some(false)
}

/// Every `${verity.NAME.KEY}` of a file's `text:` names a content with
/// `verity: true` and a published value. (No cycle can go through one: a
/// content with a hash tree is a filesystem made from a directory, which
/// holds no `files:` that could refer back to it.)
fn check_verity_refs(d: &Description, broken: &BTreeSet<String>, diags: &mut Vec<Diagnostic>) {
    use crate::fs::verity::KEYS;
    let with_verity: Vec<&str> = d
        .partitions
        .iter()
        .map(|p| &p.name.value)
        .chain(d.artifacts.iter().map(|a| &a.name.value))
        .filter(|n| has_verity(d, n) == Some(true))
        .map(String::as_str)
        .collect();
    let listed = if with_verity.is_empty() {
        "none has `verity: true` yet".to_string()
    } else {
        format!("with a hash tree: {}", with_verity.join(", "))
    };
    for c in contents(d) {
        let files: &[FileEntry] = match c {
            Content::Fs(Filesystem::Vfat(v)) => &v.files,
            Content::Initramfs(i) => &i.files,
            _ => continue,
        };
        for f in files {
            let FileRef::Text(text) = &f.source else {
                continue;
            };
            for r in super::vars::verity_refs(&text.value) {
                if broken.contains(r.name) {
                    continue;
                }
                let problem = match has_verity(d, r.name) {
                    None => Some((
                        format!("no partition or artifact named \"{}\"", r.name),
                        listed.clone(),
                    )),
                    Some(false) => Some((
                        format!("'{}' has no dm-verity hash tree", r.name),
                        format!(
                            "add `verity: true` to its squashfs or EROFS `fs:`, or name another content ({listed})"
                        ),
                    )),
                    Some(true) if !KEYS.contains(&r.key) => Some((
                        format!("'{}' is not a dm-verity value", r.key),
                        format!("write one of: {}", KEYS.join(", ")),
                    )),
                    Some(true) => None,
                };
                if let Some((message, help)) = problem {
                    diags.push(
                        text.diag(format!("${{{}}}: {message}", r.written))
                            .help(help),
                    );
                }
            }
        }
    }
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
            FileRef::Path(_) | FileRef::Text(_) => None,
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
    // Swap space has no content to size it by: its size is the amount of
    // swap the system gets (`size: auto` would give mkswap's minimum, 40 KiB).
    let swap_help = "give it the amount of swap the system needs, e.g. size: 512MiB";
    for a in &d.artifacts {
        if matches!(a.content.value, Content::Fs(Filesystem::Swap(_)))
            && !matches!(a.size.value, SizeSpec::Fixed(_))
        {
            diags.push(
                a.size
                    .diag(format!("swap artifact \"{}\" needs a size", a.name.value))
                    .help(swap_help),
            );
        }
    }
    for p in &d.partitions {
        if matches!(p.content.value, Content::Fs(Filesystem::Swap(_)))
            && !matches!(
                p.size.as_ref().map(|s| s.value),
                Some(SizeSpec::Fixed(_) | SizeSpec::Fill)
            )
        {
            let at = p
                .size
                .as_ref()
                .map_or_else(|| p.name.diag(""), |s| s.diag(""));
            diags.push(
                Diagnostic::new(
                    at.span,
                    at.key,
                    format!("swap partition \"{}\" needs a size", p.name.value),
                )
                .help(format!("{swap_help}, or fill")),
            );
        }
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

/// Output files land in one directory, committed together: each name must
/// be a plain file name, differ from every other output's name and its
/// bmap's name (`NAME.bmap`, reserved for every artifact: the commit
/// removes the bmap of every file it replaces), and stay out of the names
/// the tool keeps for itself (`*.partial`, `.image-composer*`).
fn check_outputs(d: &Description, diags: &mut Vec<Diagnostic>) {
    let image = &d.image.name.value;
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    for kind in OutputKind::ALL {
        taken.insert(kind.file_name(image), "the image".to_string());
    }
    for a in &d.artifacts {
        let Some(out) = &a.output else { continue };
        let name = &out.value;
        let owner = format!("artifact \"{}\"", a.name.value);
        let problem = if name == "." || name == ".." {
            Some(format!("\"{name}\" is not a plain file name"))
        } else if name.ends_with(".partial") || name.starts_with(".image-composer") {
            Some(format!(
                "\"{name}\" is a name reserved for the tool's temporary files"
            ))
        } else {
            [name.clone(), format!("{name}.bmap")].iter().find_map(|n| {
                taken
                    .get(n)
                    .map(|o| format!("\"{n}\" is also the output of {o}"))
            })
        };
        match problem {
            Some(text) => diags.push(out.diag(text).help("choose another file name")),
            None => {
                taken.insert(name.clone(), owner.clone());
                taken.insert(format!("{name}.bmap"), format!("{owner} (its bmap)"));
            }
        }
    }
}

/// Two `files:` entries of one filesystem, or two paths an initramfs
/// declares (`dirs`, `symlinks`, `nodes`, `files`, `init`), with the same
/// destination (FAT compares names case-insensitively). Layers merge
/// `files:` by key as written, so the clash may only appear once variables
/// are expanded.
fn check_file_dests(d: &Description, diags: &mut Vec<Diagnostic>) {
    for content in contents(d) {
        // Every path an entry declares, in the archive's or the FAT's terms.
        let (declared, fold): (Vec<(&str, &Span, &str)>, bool) = match content {
            Content::Fs(Filesystem::Vfat(v)) => (
                v.files
                    .iter()
                    .map(|f| (f.dest.value.as_str(), &f.dest.span, f.dest.key.as_str()))
                    .collect(),
                true,
            ),
            Content::Initramfs(i) => (initramfs_paths(i), false),
            _ => continue,
        };
        let mut seen: BTreeMap<String, (&str, &Span)> = BTreeMap::new();
        for (path, span, key) in declared {
            let normal: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
            let normal = normal.join("/");
            let normal = if fold { normal.to_uppercase() } else { normal };
            match seen.get(&normal) {
                Some((first, first_span)) => diags.push(
                    Diagnostic::new(
                        span.clone(),
                        key,
                        format!("\"{path}\" is given twice (first as \"{first}\" at {first_span})"),
                    )
                    .help("keep one of the two entries; where a layer and a board both set it, write the destination the same way in both so the board's entry replaces the layer's"),
                ),
                None => {
                    seen.insert(normal, (path, span));
                }
            }
        }
    }
}

/// The paths an initramfs declares explicitly, in the order the writer
/// adds them: `dirs`, `symlinks`, `nodes`, `files`, then `init` as `/init`.
fn initramfs_paths(i: &Initramfs) -> Vec<(&str, &Span, &str)> {
    let mut out: Vec<(&str, &Span, &str)> = Vec::new();
    out.extend(
        i.dirs
            .iter()
            .map(|d| (d.value.as_str(), &d.span, d.key.as_str())),
    );
    out.extend(
        i.symlinks
            .iter()
            .map(|l| (l.link.value.as_str(), &l.link.span, l.link.key.as_str())),
    );
    out.extend(
        i.nodes
            .iter()
            .map(|n| (n.path.value.as_str(), &n.path.span, n.path.key.as_str())),
    );
    out.extend(
        i.files
            .iter()
            .map(|f| (f.dest.value.as_str(), &f.dest.span, f.dest.key.as_str())),
    );
    match &i.init {
        Some(Init::File(p)) => out.push(("/init", &p.span, p.key.as_str())),
        Some(Init::Script(t)) => out.push(("/init", &t.span, t.key.as_str())),
        None => {}
    }
    // In file order: the later one is the second.
    out.sort_by(|a, b| a.1.cmp(b.1));
    out
}

/// Two partitions with one name after `${VAR}` expansion (`name: ${A}` and
/// `name: ${B}` with A = B): layers merged them by the names as written, so
/// both survived, and their derived UUIDs would be the same too.
fn check_unique_names(d: &Description, diags: &mut Vec<Diagnostic>) {
    let mut seen: BTreeMap<&str, &Spanned<String>> = BTreeMap::new();
    for p in &d.partitions {
        match seen.get(p.name.value.as_str()) {
            Some(first) => diags.push(
                p.name
                    .diag(format!(
                        "a second partition named \"{}\" (the first is at {})",
                        p.name.value, first.span
                    ))
                    .help("rename one: partition names are unique once variables are expanded"),
            ),
            None => {
                seen.insert(&p.name.value, &p.name);
            }
        }
    }
}

/// GPT requires every GUID of a disk to be unique: the disk's own and each
/// partition's explicit `uuid:` (derived ones come from unique names).
fn check_unique_uuids(d: &Description, diags: &mut Vec<Diagnostic>) {
    let uuids = d
        .image
        .disk_uuid
        .iter()
        .chain(d.partitions.iter().filter_map(|p| p.uuid.as_ref()));
    let mut seen: Vec<&Spanned<Uuid>> = Vec::new();
    for u in uuids {
        match seen.iter().find(|s| s.value == u.value) {
            Some(first) => diags.push(
                u.diag(format!(
                    "\"{}\" is given twice (first as {} at {})",
                    u.value, first.key, first.span
                ))
                .help("every UUID of a disk must be unique; change one, or leave uuid out to derive it from the seed"),
            ),
            None => seen.push(u),
        }
    }
}
