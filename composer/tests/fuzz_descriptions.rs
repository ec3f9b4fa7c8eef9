//! The description fuzzer: a seeded, structure-aware mutator over every
//! description of the repository (`examples/`, `layers/`, `tests/broken/`)
//! whose mutants run through the real binary's `validate`, `plan` and
//! `build`.
//!
//! Each mutant is a description with one to three edits made on its YAML
//! lines as a user would make them: a key deleted or given twice, values
//! swapped between keys, numbers and units changed (zero, huge, negative,
//! another unit), booleans flipped, enum values replaced by unknown or
//! other keys' words, values nested hundreds deep, unicode, `${VAR}`s, a
//! line from another description spliced in. It is written next to nothing:
//! into a temporary directory, with `--input-dir` naming the original's
//! directory so that its relative inputs still resolve.
//!
//! What must hold for every mutant ("findings" otherwise, each printed with
//! the mutant and saved under `target/fuzz-findings/`):
//! - the process exits 0, 1 or 2: never a panic (101) or an abort (134) or
//!   a signal, and never runs past [`TIMEOUT`];
//! - `validate` and `plan` agree, and `validate` exits 0 or 2 (a problem
//!   found while checking is the description's);
//! - every `error:` line of an exit 2 names `file:line:column`;
//! - a mutant `validate` accepts builds (exit 0): `build` exiting 1 or 2
//!   after a clean `validate` means validation missed a problem.
//!
//! Deterministic from the seed: `FUZZ_SEED` (default 1) picks every
//! mutation, `FUZZ_COUNT` (default 3000) how many mutants, `FUZZ_SECONDS`
//! (default 150) bounds the run (it stops early, saying so). The seed and
//! the count are printed. A longer run: `FUZZ_COUNT=100000 FUZZ_SECONDS=3600
//! FUZZ_SEED=$RANDOM cargo test --release --test fuzz_descriptions -- --nocapture`.
//!
//! Rejected designs: cargo-fuzz/libFuzzer needs nightly and finds byte-level
//! YAML syntax errors, which the parser already rejects cheaply; in-process
//! calls are faster but cannot see an abort, a stack overflow or a hang.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest a single command may run on a mutant before it counts as a hang.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Largest disk a mutant is built into (its `plan` says): a mutant asking
/// for 16 TiB is valid but would only test the host's filesystem.
const BUILD_MAX_BYTES: u64 = 512 << 20;

/// SplitMix64: small, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One corpus description: where it came from and its text.
struct Seed {
    path: PathBuf,
    text: String,
}

fn corpus(root: &Path) -> Vec<Seed> {
    let mut paths = Vec::new();
    let mut dirs = vec![
        root.join("examples"),
        root.join("layers"),
        root.join("tests/broken"),
    ];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.ends_with("inputs") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    // Complete, valid descriptions are few (most of the corpus is broken on
    // purpose): each example is drawn as often as all broken cases together
    // so that mutants reach the contents, the plan and the build.
    let broken = paths.len();
    paths
        .into_iter()
        .flat_map(|path| {
            let weight = if path.starts_with(root.join("examples")) {
                broken / 2
            } else {
                1
            };
            let text = std::fs::read_to_string(&path).unwrap();
            vec![(path, text); weight]
        })
        .map(|(path, text)| Seed { path, text })
        .collect()
}

/// `indent`, `- `, `key`, `value` of a block-style line (`value` may be
/// empty, a flow map or list, or a scalar).
struct Line<'a> {
    indent: &'a str,
    key: Option<&'a str>,
    value: &'a str,
}

fn split(line: &str) -> Line<'_> {
    let body = line.trim_start();
    let item = body.strip_prefix("- ").unwrap_or(body);
    let indent = &line[..line.len() - item.len()];
    match item
        .split_once(": ")
        .or_else(|| item.strip_suffix(':').map(|k| (k, "")))
    {
        Some((k, v)) if !k.contains(['{', '[', '"', '#']) => Line {
            indent,
            key: Some(k),
            value: v,
        },
        _ => Line {
            indent,
            key: None,
            value: item,
        },
    }
}

const WORDS: &[&str] = &[
    "gpt",
    "gtp",
    "mbr",
    "hybrid",
    "none",
    "ext4",
    "ext3",
    "vfat",
    "fat",
    "raw",
    "auto",
    "fill",
    "auto +20%",
    "auto +1GiB",
    "true",
    "false",
    "maybe",
    "yes",
    "lazy",
    "zero",
    "zstd",
    "xz",
    "gzip",
    "lz4",
    "bzip2",
    "char",
    "block",
    "fifo",
    "c",
    "root",
    "source",
    "esp",
    "linux",
    "root-arm64",
    "0x0c",
    "0xee",
    "bmap",
    "zst",
    "img",
    "null",
    "~",
    "''",
    "\"\"",
    "[]",
    "{}",
    "[raw, raw]",
    "{ artifact: rootfs }",
    "{ artifact: nope }",
    "/",
    "//",
    "/..",
    ".",
    "..",
    "/etc/shadow",
    "/dev/zero",
    "/proc/self/fd/0",
];
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "7",
    "11",
    "12",
    "16",
    "32",
    "33",
    "511",
    "512",
    "1023",
    "4096",
    "65536",
    "-1",
    "-4096",
    "0x10",
    "1e9",
    "1.5",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999",
];
const UNITS: &[&str] = &[
    "", "B", "K", "KiB", "KB", "M", "MiB", "MB", "G", "GiB", "GB", "T", "TiB", "P", "PiB", "E",
    "EiB", "QB", " MiB", "%", "s",
];
const UNICODE: &[&str] = &[
    "é", "名前", "\u{202e}", "\u{feff}", "🦀", "ß", "İ", "\u{0301}", "Ａ", "\t",
];
const VARS: &[&str] = &[
    "${UNDEFINED}",
    "${BINARIES_DIR}",
    "${TARGET_DIR}",
    "${KERNEL}",
    "$${KERNEL}",
    "${",
    "${}",
    "${BINARIES_DIR",
    "$BINARIES_DIR",
    "${A${B}}",
];

/// The value of `line` replaced by `value` (a line without a key becomes
/// the value as a list item or a scalar).
fn with_value(line: &str, value: &str) -> String {
    let l = split(line);
    match l.key {
        Some(k) => format!("{}{k}: {value}", l.indent),
        None => format!("{}{value}", l.indent),
    }
}

/// The number of lines after `i` indented deeper than line `i` (its children).
fn children(lines: &[String], i: usize) -> usize {
    let depth = |s: &str| s.len() - s.trim_start().len();
    let own = depth(&lines[i]);
    lines[i + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || depth(l) > own)
        .count()
}

/// Applies one mutation to `lines`; false when it found nothing to change.
fn mutate(rng: &mut Rng, lines: &mut Vec<String>, donors: &[Seed]) -> bool {
    let content: Vec<usize> = (0..lines.len())
        .filter(|&i| {
            let t = lines[i].trim();
            !t.is_empty() && !t.starts_with('#')
        })
        .collect();
    if content.is_empty() {
        return false;
    }
    let i = *rng.pick(&content);
    let line = lines[i].clone();
    let l = split(&line);
    match rng.below(12) {
        // Delete a key with everything under it.
        0 => {
            let n = children(lines, i);
            lines.drain(i..=i + n);
        }
        // Give a key (and its children) twice.
        1 => {
            let n = children(lines, i);
            let block: Vec<String> = lines[i..=i + n].to_vec();
            for (k, b) in block.into_iter().enumerate() {
                lines.insert(i + n + 1 + k, b);
            }
        }
        // Swap the values of two keys.
        2 => {
            let j = *rng.pick(&content);
            let (a, b) = (
                split(&lines[i]).value.to_string(),
                split(&lines[j]).value.to_string(),
            );
            lines[i] = with_value(&lines[i], &b);
            lines[j] = with_value(&lines[j], &a);
        }
        // A number, with or without a unit.
        3 | 4 => {
            let v = format!("{}{}", rng.pick(NUMBERS), rng.pick(UNITS));
            lines[i] = replace_number(&line, &v).unwrap_or_else(|| with_value(&line, &v));
        }
        // A boolean flipped, or an enum value unknown or from another key.
        5 => {
            let v = match l.value.trim() {
                "true" => "false",
                "false" => "true",
                _ => *rng.pick(WORDS),
            };
            lines[i] = with_value(&line, v);
        }
        6 => lines[i] = with_value(&line, rng.pick::<&str>(WORDS)),
        // Deep nesting.
        7 => {
            let depth = 1 + rng.below(400);
            let v = if rng.below(2) == 0 {
                format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
            } else {
                format!("{}1{}", "{a: ".repeat(depth), "}".repeat(depth))
            };
            lines[i] = with_value(&line, &v);
        }
        // Unicode inside a value or a key.
        8 => {
            let u = rng.pick(UNICODE);
            let at = rng.below(line.len() + 1);
            let at = (at..=line.len())
                .find(|&a| line.is_char_boundary(a))
                .unwrap_or(line.len());
            lines[i] = format!("{}{u}{}", &line[..at], &line[at..]);
        }
        // A variable.
        9 => {
            let v = format!("{}{}", rng.pick(VARS), l.value.trim());
            lines[i] = with_value(&line, &v);
        }
        // A line of another description, at this line's indentation.
        10 => {
            let donor = rng.pick(donors);
            let dl: Vec<&str> = donor
                .text
                .lines()
                .filter(|d| !d.trim().is_empty())
                .collect();
            if dl.is_empty() {
                return false;
            }
            let d = split(rng.pick::<&str>(&dl));
            let text = match d.key {
                Some(k) => format!("{}{k}: {}", l.indent, d.value),
                None => format!("{}{}", l.indent, d.value),
            };
            lines.insert(i, text);
        }
        // A huge list of one value.
        _ => {
            let n = 1 + rng.below(3000);
            let v = format!("[{}]", vec![l.value.trim(); n].join(", "));
            lines[i] = with_value(&line, &v);
        }
    }
    true
}

/// `line` with its first number (and unit) replaced by `by`.
fn replace_number(line: &str, by: &str) -> Option<String> {
    let start = line.find(|c: char| c.is_ascii_digit())?;
    let rest = &line[start..];
    let len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
        .unwrap_or(rest.len());
    Some(format!("{}{by}{}", &line[..start], &rest[len..]))
}

/// How one command ended.
struct Outcome {
    /// `None`: killed by a signal or by the timeout.
    code: Option<i32>,
    timed_out: bool,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str], extra: &[String]) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_image-composer"))
        .args(args)
        .args(extra)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running image-composer");
    // Drain the pipes on threads so that a chatty child cannot block.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).ok();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).ok();
        s
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            timed_out = true;
            child.kill().ok();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Outcome {
        code: status.code(),
        timed_out,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// What is wrong with `o` as the outcome of `what`, if anything.
fn check(what: &str, o: &Outcome) -> Option<String> {
    if o.timed_out {
        return Some(format!("{what}: no result after {TIMEOUT:?} (a hang)"));
    }
    match o.code {
        Some(0..=2) => {}
        Some(code) => return Some(format!("{what}: exit {code}\n{}", o.stderr)),
        None => return Some(format!("{what}: killed by a signal\n{}", o.stderr)),
    }
    if o.code == Some(2) {
        for line in o.stderr.lines().filter(|l| l.starts_with("error: ")) {
            if !has_location(line) && !is_summary(line) {
                return Some(format!(
                    "{what}: a message without file:line:column: {line}"
                ));
            }
        }
    }
    None
}

/// `error: FILE:LINE:COLUMN: ...`.
fn has_location(line: &str) -> bool {
    let rest = &line["error: ".len()..];
    rest.split(": ").next().is_some_and(|loc| {
        let mut parts = loc.rsplitn(3, ':');
        let col = parts.next().unwrap_or("");
        let ln = parts.next().unwrap_or("");
        let file = parts.next().unwrap_or("");
        !file.is_empty()
            && ln.parse::<u32>().is_ok_and(|n| n > 0)
            && col.parse::<u32>().is_ok_and(|n| n > 0)
    })
}

/// The closing `error: N problems in FILE; nothing was written`.
fn is_summary(line: &str) -> bool {
    line.contains(" problem") && line.ends_with("; nothing was written")
}

/// The plan's disk size in bytes, from `plan --json`.
fn disk_size(plan_json: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(plan_json).ok()?;
    v.get("disk")?.get("size")?.as_u64()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How many mutants `validate` accepted, and how many of them were built.
#[derive(Default)]
struct Tally {
    valid: AtomicUsize,
    built: AtomicUsize,
}

/// One mutant run through the commands; the findings it produced.
fn try_mutant(
    root: &Path,
    seeds: &[Seed],
    (seed, index): (u64, usize),
    work: &Path,
    tally: &Tally,
) -> Vec<String> {
    let mut rng = Rng(seed ^ (index as u64).wrapping_mul(0xa076_1d64_78bd_642f));
    let original = rng.pick(seeds);
    let mut lines: Vec<String> = original.text.lines().map(str::to_string).collect();
    // One edit most often, so that many mutants stay valid and get built.
    let edits = if rng.below(5) < 3 {
        1
    } else {
        2 + rng.below(2)
    };
    for _ in 0..edits {
        mutate(&mut rng, &mut lines, seeds);
    }
    let dir = work.join(format!("m{index}"));
    std::fs::create_dir_all(&dir).unwrap();
    let yaml = dir.join("board.yaml");
    std::fs::write(&yaml, lines.join("\n") + "\n").unwrap();
    let corpus = root.join("tests/broken");
    let extra: Vec<String> = [
        "--input-dir".to_string(),
        original.path.parent().unwrap().display().to_string(),
        "--layer-dir".to_string(),
        corpus.join("layers").display().to_string(),
        "--var".to_string(),
        format!("BINARIES_DIR={}", corpus.join("inputs").display()),
        "--var".to_string(),
        format!("TARGET_DIR={}", corpus.join("inputs/rootfs").display()),
        "--var".to_string(),
        "KERNEL=Image".to_string(),
    ]
    .into();
    let y = yaml.to_str().unwrap();
    let mut findings = Vec::new();
    let validate = run(&["validate", y], &extra);
    findings.extend(check("validate", &validate));
    if validate.code == Some(1) {
        findings.push(format!(
            "validate: exit 1 (a problem found while checking must be reported as the description's, exit 2)\n{}",
            validate.stderr
        ));
    }
    let plan = run(&["plan", "--json", y], &extra);
    findings.extend(check("plan", &plan));
    if findings.is_empty() && plan.code != validate.code {
        findings.push(format!(
            "plan exit {:?} but validate exit {:?}\n{}",
            plan.code, validate.code, plan.stderr
        ));
    }
    if validate.code == Some(0) {
        tally.valid.fetch_add(1, Ordering::Relaxed);
    }
    let small = disk_size(&plan.stdout).is_some_and(|s| s <= BUILD_MAX_BYTES);
    if findings.is_empty() && validate.code == Some(0) && small {
        tally.built.fetch_add(1, Ordering::Relaxed);
        let out = dir.join("out");
        let build = run(&["build", y, "-o", out.to_str().unwrap()], &extra);
        findings.extend(check("build", &build));
        if findings.is_empty() && build.code != Some(0) {
            findings.push(format!(
                "validate exit 0 but build exit {:?}\n{}",
                build.code, build.stderr
            ));
        }
    }
    if !findings.is_empty() {
        let saved = root.join("target/fuzz-findings");
        std::fs::create_dir_all(&saved).unwrap();
        let keep = saved.join(format!("seed{seed}-{index}.yaml"));
        std::fs::copy(&yaml, &keep).unwrap();
        for f in &mut findings {
            *f = format!(
                "mutant {index} of {} (saved as {}):\n{f}",
                original.path.display(),
                keep.display()
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    findings
}

#[test]
fn mutated_descriptions_never_crash_hang_or_lose_a_location() {
    let root = support::repo_root().canonicalize().unwrap();
    let seeds = corpus(&root);
    assert!(seeds.len() > 100, "the corpus shrank to {}", seeds.len());
    let seed: u64 = env_or("FUZZ_SEED", 1);
    let count: usize = env_or("FUZZ_COUNT", 3000);
    let budget = Duration::from_secs(env_or("FUZZ_SECONDS", 150));
    let work = tempfile::tempdir().unwrap();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let findings = Mutex::new(Vec::new());
    let tally = Tally::default();
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count || start.elapsed() > budget {
                    break;
                }
                let found = try_mutant(&root, &seeds, (seed, index), work.path(), &tally);
                findings.lock().unwrap().extend(found);
                done.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    let done = done.into_inner();
    let findings = findings.into_inner().unwrap();
    eprintln!(
        "fuzz: seed {seed}: {done} of {count} mutants of {} descriptions in {:.0?}{} ({} valid, {} built); {} findings",
        seeds.len(),
        start.elapsed(),
        if done < count { " (time budget reached)" } else { "" },
        tally.valid.into_inner(),
        tally.built.into_inner(),
        findings.len()
    );
    assert!(
        findings.is_empty(),
        "{} findings (FUZZ_SEED={seed}):\n\n{}",
        findings.len(),
        findings.join("\n\n")
    );
}
