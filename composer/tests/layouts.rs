//! The layout corpus (`tests/layouts/`): real boards' genimage
//! configurations next to their image-composer descriptions. Each
//! description, built on the inputs genimage 19 was run on
//! (`inputs.gen.sh`), must give the tables genimage recorded
//! (`<board>/genimage.txt`, written by `record.sh` with a genimage 19 built
//! from source: Debian bookworm has 16, and CI cannot fetch it), as read by
//! the same report (`report.sh`: `sfdisk -d`, `sgdisk -p`, the table bytes
//! and raw blobs at their offsets). The comparison is exact but for the
//! differences docs/config.md documents ("Differences from genimage"),
//! each normalized below by name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/genimage_report.rs"]
mod genimage_report;
mod support;

use genimage_report::{mask_protective_chs, recorded, same_as_recorded, section};
use std::process::Command;
use support::{composer, have_all, repo_root, run};

#[test]
fn layouts_give_the_tables_genimage_19_recorded() {
    if !have_all(&["sfdisk", "sgdisk", "sha256sum", "od", "dd"]) {
        return;
    }
    let layouts = repo_root().join("tests/layouts");
    let work = tempfile::tempdir().unwrap();
    let inputs = work.path().join("inputs");
    run(Command::new(layouts.join("inputs.gen.sh")).arg(&inputs));
    let mut boards: Vec<_> = std::fs::read_dir(&layouts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("composer.yaml").is_file())
        .collect();
    boards.sort();
    assert!(boards.len() >= 5, "the corpus has lost boards: {boards:?}");
    let mut failures = Vec::new();
    for board in &boards {
        let name = board.file_name().unwrap().to_string_lossy().into_owned();
        let out = work.path().join(&name);
        let result = composer(&[
            "build",
            board.join("composer.yaml").to_str().unwrap(),
            "--var",
            &format!("INPUTS={}", inputs.display()),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(
            result.status.success(),
            "{name}: build failed: {}",
            String::from_utf8_lossy(&result.stderr)
        );
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
        let same = same_as_recorded(&ours, &theirs);
        if !same {
            failures.push(format!(
                "{name}: image-composer:\n{}\ngenimage 19 recorded:\n{}",
                mask_protective_chs(&ours),
                mask_protective_chs(&theirs)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
