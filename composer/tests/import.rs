//! `image-composer import`: genimage configurations and wic kickstart
//! files translated into descriptions that build, with the tables the
//! source tool's semantics give.
//!
//! genimage: every configuration of the layout corpus (`tests/layouts/`)
//! and the Buildroot boards of `tests/import/genimage/` (written after
//! Buildroot's genimage.cfg files), each with the tables genimage 19 made
//! of it (`genimage.txt`, recorded by `tests/layouts/record.sh`), is
//! imported, built on the corpus inputs (`inputs.gen.sh`, found through
//! `--input-dir` as genimage's `--inputpath`) and compared by `report.sh`
//! up to the documented differences (support/genimage_report.rs).
//!
//! wic: the canned kickstart files of `tests/import/wic/` are imported
//! and built on a small tree; their tables are compared with the ones
//! recorded in `<name>.expected` (derived from wic's rules, see
//! tests/import/README.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/genimage_report.rs"]
mod genimage_report;
mod support;

use genimage_report::{mask_protective_chs, recorded, same_as_recorded, section};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{composer, have_all, repo_root, run};

fn import(input: &Path, output: &Path) -> String {
    let result = composer(&[
        "import",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
    ]);
    assert!(
        result.status.success(),
        "{}: import failed: {}",
        input.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    String::from_utf8_lossy(&result.stderr).into_owned()
}

fn boards(dir: &Path) -> Vec<PathBuf> {
    let mut boards: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("genimage.cfg").is_file() && p.join("genimage.txt").is_file())
        .collect();
    boards.sort();
    boards
}

#[test]
fn imported_genimage_configs_give_the_tables_genimage_19_recorded() {
    if !have_all(&["sfdisk", "sgdisk", "sha256sum", "od", "dd"]) {
        return;
    }
    let root = repo_root();
    let layouts = root.join("tests/layouts");
    let work = tempfile::tempdir().unwrap();
    let inputs = work.path().join("inputs");
    run(Command::new(layouts.join("inputs.gen.sh")).arg(&inputs));
    let mut all = boards(&layouts);
    let buildroot = boards(&root.join("tests/import/genimage"));
    assert!(
        buildroot.len() >= 5,
        "the Buildroot boards are missing: {buildroot:?}"
    );
    all.extend(buildroot);
    let mut failures = Vec::new();
    for board in &all {
        let name = board.file_name().unwrap().to_string_lossy().into_owned();
        let yaml = work.path().join(format!("{name}.yaml"));
        import(&board.join("genimage.cfg"), &yaml);
        let out = work.path().join(&name);
        let result = composer(&[
            "build",
            yaml.to_str().unwrap(),
            "--input-dir",
            inputs.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(result.status.success(), "{name}: build failed: {stderr}");
        let theirs = recorded(board);
        let image = section(&theirs, "sfdisk -d")
            .iter()
            .find_map(|l| l.strip_prefix("device: "))
            .unwrap()
            .to_string();
        let ranges = std::fs::read_to_string(board.join("ranges")).unwrap_or_default();
        let ours = run(Command::new(layouts.join("report.sh"))
            .arg(out.join(&image))
            .args(ranges.split_whitespace()));
        if !same_as_recorded(&ours, &theirs) {
            failures.push(format!(
                "{name}: image-composer:\n{}\ngenimage 19 recorded:\n{}",
                mask_protective_chs(&ours),
                mask_protective_chs(&theirs)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn untranslated_options_are_listed_with_their_lines() {
    let work = tempfile::tempdir().unwrap();
    let cfg = work.path().join("genimage.cfg");
    std::fs::write(
        &cfg,
        "image sdcard.img {\n\thdimage {\n\t}\n\texec-pre = \"make-it.sh\"\n\tpartition p {\n\t\timage = \"p.bin\"\n\t\timageoffset = 4K\n\t}\n}\n",
    )
    .unwrap();
    let yaml = work.path().join("out.yaml");
    let stderr = import(&cfg, &yaml);
    let text = std::fs::read_to_string(&yaml).unwrap();
    for (line, what) in [
        (4, "exec-pre = \"make-it.sh\""),
        (7, "imageoffset = \"4K\""),
    ] {
        let shown = format!("{}:{line}: not translated: {what}", cfg.display());
        assert!(stderr.contains(&shown), "{stderr}");
        assert!(
            text.contains(&format!("# - genimage.cfg:{line}: {what}")),
            "{text}"
        );
    }
}

#[test]
fn parse_errors_exit_2_with_file_line_column() {
    let work = tempfile::tempdir().unwrap();
    let wks = work.path().join("bad.wks");
    std::fs::write(&wks, "part / --source rootfs --sise 4\n").unwrap();
    let result = composer(&["import", wks.to_str().unwrap()]);
    assert_eq!(result.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:1:24: --sise is not an option of this command",
            wks.display()
        )),
        "{stderr}"
    );
    assert!(result.stdout.is_empty());
}

/// One partition of a `tests/import/wic/<name>.expected` table.
struct Expected {
    start: Start,
    size: Size,
    type_: String,
    bootable: bool,
    attrs: Option<String>,
    name: Option<String>,
}

enum Start {
    At(u64),
    /// The previous partition's end, rounded up to this many sectors.
    After(u64),
}

enum Size {
    Sectors(u64),
    /// wic's `(content + 10MiB) × 1.3` (KiB, rounded down).
    Rootfs,
    /// wic's boot loader plugins: `content + 16MiB` (KiB).
    Bootdd,
}

fn expected(path: &Path) -> (String, Vec<Expected>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut table = String::new();
    let mut parts = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        if let Some(t) = line.strip_prefix("table=") {
            table = t.to_string();
            continue;
        }
        let mut e = Expected {
            start: Start::At(0),
            size: Size::Sectors(0),
            type_: String::new(),
            bootable: false,
            attrs: None,
            name: None,
        };
        for field in line.split_whitespace().skip(1) {
            match field.split_once('=') {
                Some(("start", s)) => {
                    e.start = match s.strip_prefix("after:") {
                        Some(a) => Start::After(a.parse().unwrap()),
                        None => Start::At(s.parse().unwrap()),
                    }
                }
                Some(("size", "rootfs")) => e.size = Size::Rootfs,
                Some(("size", "bootdd")) => e.size = Size::Bootdd,
                Some(("size", s)) => e.size = Size::Sectors(s.parse().unwrap()),
                Some(("type", t)) => e.type_ = t.to_string(),
                Some(("attrs", a)) => e.attrs = Some(a.to_string()),
                Some(("name", n)) => e.name = Some(n.to_string()),
                None if field == "bootable" => e.bootable = true,
                _ => panic!("{}: unknown field {field}", path.display()),
            }
        }
        parts.push(e);
    }
    (table, parts)
}

#[test]
fn imported_wks_files_give_the_tables_wic_makes() {
    if !have_all(&["sfdisk"]) {
        return;
    }
    let dir = repo_root().join("tests/import/wic");
    let work = tempfile::tempdir().unwrap();
    // The trees the translations name: a root filesystem, the boot
    // loader's files, the boot files.
    let rootfs = work.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/hostname"), "wic\n").unwrap();
    std::fs::write(rootfs.join("etc/big"), vec![0xa5u8; 3 << 20]).unwrap();
    let boot = work.path().join("boot");
    std::fs::create_dir_all(boot.join("EFI/BOOT")).unwrap();
    std::fs::write(boot.join("EFI/BOOT/bootx64.efi"), vec![0x5au8; 300_000]).unwrap();
    std::fs::write(boot.join("vmlinuz"), vec![0x3cu8; 1 << 20]).unwrap();
    let vars = [
        format!("IMAGE_ROOTFS={}", rootfs.display()),
        format!("BOOT_DIR={}", boot.display()),
        format!("BOOT_FILES={}", boot.display()),
    ];
    let mut wks: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wks"))
        .collect();
    wks.sort();
    assert_eq!(wks.len(), 5, "the canned files: {wks:?}");
    let mut failures = Vec::new();
    for file in &wks {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        let yaml = work.path().join(format!("{stem}.yaml"));
        import(file, &yaml);
        let with_vars = |args: &[&str]| {
            let mut all: Vec<&str> = args.to_vec();
            for v in &vars {
                all.extend(["--var", v]);
            }
            composer(&all)
        };
        let out = work.path().join(&stem);
        let result = with_vars(&["build", yaml.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert!(
            result.status.success(),
            "{stem}: build failed: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        // The content sizes, as image-composer measures them: the same
        // description with every headroom taken away, planned.
        let bare = work.path().join(format!("{stem}-bare.yaml"));
        let text = std::fs::read_to_string(&yaml).unwrap();
        let bare_text: String = text
            .lines()
            .map(|l| match l.find("size: auto") {
                Some(at) => format!("{}size: auto\n", &l[..at]),
                None => format!("{l}\n"),
            })
            .collect();
        std::fs::write(&bare, bare_text).unwrap();
        let plan = with_vars(&["plan", "--json", bare.to_str().unwrap()]);
        assert!(
            plan.status.success(),
            "{}",
            String::from_utf8_lossy(&plan.stderr)
        );
        let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
        let content: Vec<u64> = plan["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["size"].as_u64().unwrap())
            .collect();
        let image = out.join(format!("{stem}.img"));
        let (json, parts) = support::sfdisk(&image);
        let (table, want) = expected(&dir.join(format!("{stem}.expected")));
        let mut problems = Vec::new();
        let label = json["partitiontable"]["label"].as_str().unwrap_or("");
        if label != table {
            problems.push(format!("table {label}, wic makes {table}"));
        }
        if parts.len() != want.len() {
            problems.push(format!(
                "{} partitions, wic makes {}",
                parts.len(),
                want.len()
            ));
        }
        let mut previous_end: u64 = 0;
        for (i, (got, want)) in parts.iter().zip(&want).enumerate() {
            let n = i + 1;
            let start = match want.start {
                Start::At(s) => s,
                Start::After(a) => previous_end.div_ceil(a) * a,
            };
            if got.start != start {
                problems.push(format!(
                    "{n}: start {}, wic's rules give {start}",
                    got.start
                ));
            }
            let c_kib = content[i].div_ceil(1024);
            let (size, tolerance) = match want.size {
                Size::Sectors(s) => (s, 0),
                // wic rounds down to KiB what image-composer rounds up
                // to the sector (config.md, "Sizes translated from wic").
                Size::Rootfs => ((c_kib + 10240) * 13 / 10 * 2, 4),
                Size::Bootdd => ((c_kib + 16384) * 2, 4),
            };
            if got.size.abs_diff(size) > tolerance {
                problems.push(format!(
                    "{n}: size {}, wic's rules give {size} (±{tolerance})",
                    got.size
                ));
            }
            if got.type_ != want.type_ {
                problems.push(format!("{n}: type {}, wic makes {}", got.type_, want.type_));
            }
            let bootable = json["partitiontable"]["partitions"][i]["bootable"]
                .as_bool()
                .unwrap_or(false);
            if bootable != want.bootable {
                problems.push(format!("{n}: bootable {bootable}, wic: {}", want.bootable));
            }
            if got.attrs != want.attrs {
                problems.push(format!(
                    "{n}: attrs {:?}, wic makes {:?}",
                    got.attrs, want.attrs
                ));
            }
            if want.name.is_some() && got.name != want.name {
                problems.push(format!(
                    "{n}: name {:?}, wic makes {:?}",
                    got.name, want.name
                ));
            }
            previous_end = got.start + got.size;
        }
        if !problems.is_empty() {
            failures.push(format!("{stem}:\n  {}", problems.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
