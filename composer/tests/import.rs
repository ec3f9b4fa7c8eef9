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

/// Boards whose vfat names a directory in `file NAME { image = DIR }`:
/// image-composer's `files:` takes files only, so the imported description
/// is refused, naming the entry. When directories are accepted there,
/// this list empties and the boards are compared like the others.
const VFAT_DIRECTORY_ENTRY: &[&str] = &["pc-x86-64-efi", "qemu-aarch64-ebbr"];

fn import(input: &Path, output: &Path) -> String {
    let result = composer(&["import", input.to_str().unwrap(), "-o", output.to_str().unwrap()]);
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
    assert!(buildroot.len() >= 5, "the Buildroot boards are missing: {buildroot:?}");
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
        if VFAT_DIRECTORY_ENTRY.contains(&name.as_str()) {
            assert!(
                !result.status.success() && stderr.contains("fs.files./EFI: \"efi-part/EFI\" is a directory"),
                "{name}: expected the directory in files: to be refused: {stderr}"
            );
            continue;
        }
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
    for (line, what) in [(4, "exec-pre = \"make-it.sh\""), (7, "imageoffset = \"4K\"")] {
        let shown = format!("{}:{line}: not translated: {what}", cfg.display());
        assert!(stderr.contains(&shown), "{stderr}");
        assert!(text.contains(&format!("# - genimage.cfg:{line}: {what}")), "{text}");
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
        stderr.contains(&format!("{}:1:24: --sise is not an option of this command", wks.display())),
        "{stderr}"
    );
    assert!(result.stdout.is_empty());
}
