//! Inputs read once and checked, and no panic or unbounded work on any
//! input: file inputs must be regular files, a file that changes while the
//! image is built fails the build naming it, `SOURCE_DATE_EPOCH` alone
//! decides invented times, a closed stdout ends `plan` quietly, layer
//! nesting is bounded, diagnostics never show a non-description's
//! contents, and `-v`/`-vv` show the build's decisions and per-file detail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::composer;

/// Runs the binary in `dir`, killing it after `limit` (a hang is a failure).
fn composer_within(dir: &Path, args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_image-composer"))
        .args(args)
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("image-composer {args:?} still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn file_inputs_must_be_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("fifo"));
    fs::create_dir(dir.path().join("tree")).unwrap();
    for (yaml, key) in [
        (
            "partitions:\n  - { name: a, size: 1MiB, image: /dev/null }\n",
            "partitions[0].image: \"/dev/null\" is not a regular file",
        ),
        (
            "partitions:\n  - { name: a, size: 1MiB, image: fifo }\n",
            "partitions[0].image: \"fifo\" is not a regular file",
        ),
        (
            "partitions:\n  - name: a\n    size: 4MiB\n    fs: { type: vfat, files: { /x: fifo } }\n",
            "partitions[0].fs.files./x: \"fifo\" is not a regular file",
        ),
        (
            "partitions:\n  - name: a\n    size: 4MiB\n    fs: { type: ext4, from: tree, device-table: fifo }\n",
            "partitions[0].fs.device-table: \"fifo\" is not a regular file",
        ),
    ] {
        fs::write(
            dir.path().join("board.yaml"),
            format!("image: {{ name: t, size: 8MiB }}\n{yaml}"),
        )
        .unwrap();
        for command in ["validate", "build"] {
            let result = composer_within(
                dir.path(),
                &[command, "board.yaml", "-o", "out"][..if command == "build" { 4 } else { 2 }],
                Duration::from_secs(20),
            );
            assert_eq!(result.status.code(), Some(2), "{command} {yaml}: {}", stderr(&result));
            assert!(stderr(&result).contains(key), "{command}: {}", stderr(&result));
        }
    }
}

/// Grows or shrinks `path` by one byte at a time until `stop`: any two
/// instants a few microseconds apart see different sizes. Returns once
/// the changes are under way.
fn keep_changing(path: &Path, grow: bool, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let path = path.to_path_buf();
    let started = Arc::new(AtomicBool::new(false));
    let started_too = Arc::clone(&started);
    let writer = std::thread::spawn(move || {
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        let mut len = f.metadata().unwrap().len();
        while !stop.load(Ordering::Relaxed) && len > 1 {
            len = if grow { len + 1 } else { len - 1 };
            f.set_len(len).unwrap();
            started_too.store(true, Ordering::Relaxed);
        }
    });
    while !started.load(Ordering::Relaxed) {
        std::thread::yield_now();
    }
    writer
}

#[test]
fn a_file_that_changes_during_the_build_fails_it_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir(&tree).unwrap();
    let moving = tree.join("moving.bin");
    for content in [
        "fs: { type: ext4, from: tree }",
        "fs: { type: vfat, from: tree }",
        "image: tree/moving.bin",
        "initramfs: { from: tree }",
    ] {
        fs::write(
            dir.path().join("board.yaml"),
            format!("image: {{ name: t, size: 24MiB }}\npartitions:\n  - name: a\n    size: 16MiB\n    {content}\n"),
        )
        .unwrap();
        for grow in [false, true] {
            // On a loaded machine the writer thread may not run at all
            // while the build scans and copies: a few tries (a build that
            // ignores changes passes none of them).
            let mut result = None;
            for _ in 0..5 {
                fs::write(&moving, vec![0x5a; 4 << 20]).unwrap();
                let stop = Arc::new(AtomicBool::new(false));
                let writer = keep_changing(&moving, grow, Arc::clone(&stop));
                let run = composer_within(
                    dir.path(),
                    &["build", "board.yaml", "-o", "out"],
                    Duration::from_secs(60),
                );
                stop.store(true, Ordering::Relaxed);
                writer.join().unwrap();
                let failed = run.status.code() == Some(1);
                result = Some(run);
                if failed {
                    break;
                }
                let _ = fs::remove_dir_all(dir.path().join("out"));
            }
            let result = result.unwrap();
            let text = stderr(&result);
            assert_eq!(
                result.status.code(),
                Some(1),
                "{content}, grow {grow}: {text}"
            );
            assert!(
                text.contains("moving.bin") && text.contains("changed"),
                "{content}, grow {grow}: {text}"
            );
            assert!(!dir.path().join("out/t.img").exists(), "{content}");
        }
    }
}

#[test]
fn source_date_epoch_later_than_the_clock_decides_every_time() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("board.yaml"),
        "image: { name: t, size: 24MiB }\npartitions:\n  - { name: a, size: 8MiB, fs: { type: ext4 } }\n  - { name: b, size: 8MiB, fs: { type: vfat } }\n",
    )
    .unwrap();
    let mut images = Vec::new();
    for out in ["one", "two"] {
        let result = Command::new(env!("CARGO_BIN_EXE_image-composer"))
            .args(["build", "board.yaml", "-o", out])
            .current_dir(dir.path())
            // 2100-01-01: later than any clock this test runs on.
            .env("SOURCE_DATE_EPOCH", "4102444800")
            .output()
            .unwrap();
        assert!(result.status.success(), "{}", stderr(&result));
        images.push(fs::read(dir.path().join(out).join("t.img")).unwrap());
        // The next build runs in another second.
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert!(
        images[0] == images[1],
        "two builds with one SOURCE_DATE_EPOCH differ"
    );
}

#[test]
fn plan_into_a_closed_pipe_ends_quietly() {
    let config = support::repo_root().join("examples/embedded/board.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_image-composer"))
        .args(["plan", "--json", config.to_str().unwrap()])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before anything is written (`| head -0`).
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn deeply_nested_layers_are_refused_with_a_location() {
    let dir = tempfile::tempdir().unwrap();
    let depth = 100;
    for i in 0..depth {
        fs::write(
            dir.path().join(format!("l{i}.yaml")),
            format!("layers: [./l{}.yaml]\n", i + 1),
        )
        .unwrap();
    }
    fs::write(dir.path().join(format!("l{depth}.yaml")), "{}\n").unwrap();
    fs::write(
        dir.path().join("board.yaml"),
        "layers: [./l0.yaml]\nimage: { name: t, size: 8MiB }\npartitions:\n  - { name: a, size: 1MiB }\n",
    )
    .unwrap();
    let result = composer(&["validate", dir.path().join("board.yaml").to_str().unwrap()]);
    assert_eq!(result.status.code(), Some(2), "{}", stderr(&result));
    let text = stderr(&result);
    assert!(text.contains("l30.yaml:1:10: layers[0]"), "{text}");
    assert!(text.contains("nests layers deeper than 32 files"), "{text}");
}

#[test]
fn diagnostics_never_show_a_non_description_layer() {
    let dir = tempfile::tempdir().unwrap();
    for (i, secret) in [
        "root:$6$SECRET1$hash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
        "password: [SECRET2\n",
        "- SECRET3\n- SECRET4\n",
        "SECRET5 \t\"\n",
    ]
    .iter()
    .enumerate()
    {
        let file = dir.path().join(format!("secret{i}"));
        fs::write(&file, secret).unwrap();
        fs::write(
            dir.path().join("board.yaml"),
            format!(
                "layers: [{}]\nimage: {{ name: t, size: 8MiB }}\npartitions:\n  - {{ name: a, size: 1MiB }}\n",
                file.display()
            ),
        )
        .unwrap();
        let result = composer(&["validate", dir.path().join("board.yaml").to_str().unwrap()]);
        let text = stderr(&result);
        assert_eq!(result.status.code(), Some(2), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
        assert!(text.contains("board.yaml:1:10: layers[0]"), "{text}");
        assert!(text.contains("is not a description"), "{text}");
    }
}

#[test]
fn verbose_shows_decisions_and_very_verbose_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("hello"), "hello\n").unwrap();
    fs::write(dir.path().join("layer.yaml"), "outputs: [raw, bmap]\n").unwrap();
    fs::write(
        dir.path().join("board.yaml"),
        "layers: [./layer.yaml]\nimage: { name: t, size: 24MiB }\npartitions:\n  - { name: a, size: auto +1MiB, fs: { type: ext4, from: tree, owners: source } }\n",
    )
    .unwrap();
    let run = |flag: &str| {
        let result = composer_within(
            dir.path(),
            &["build", flag, "board.yaml", "-o", "out"],
            Duration::from_secs(60),
        );
        assert!(result.status.success(), "{}", stderr(&result));
        stderr(&result)
    };
    let v = run("-v");
    for decision in [
        "layers, in the order they were merged: '",
        "layer.yaml', 'board.yaml'",
        "a: owners source (`partitions[0].fs.owners: source` at board.yaml:",
        "device tables [], 0 rule(s)",
        "size(a): Auto",
        "plan:",
    ] {
        assert!(v.contains(decision), "-v lacks {decision:?}:\n{v}");
    }
    assert!(!v.contains("scan: "), "-v shows per-file detail:\n{v}");
    let vv = run("-vv");
    assert!(
        vv.contains("scan: '") && vv.contains("hello' mode 100644"),
        "{vv}"
    );
    assert!(vv.contains("hello' (6 bytes, unchanged)"), "{vv}");
}

/// Writes `pieces` (offset, bytes) into `path` of `size` bytes: `dense`
/// writes every zero too, otherwise the zeros between pieces are holes.
fn write_pieces(path: &Path, size: u64, pieces: &[(u64, Vec<u8>)], dense: bool) {
    use std::os::unix::fs::FileExt;
    let file = support::sparse_file(path, size);
    if dense {
        file.write_all_at(&vec![0u8; usize::try_from(size).unwrap()], 0)
            .unwrap();
    }
    for (off, bytes) in pieces {
        file.write_all_at(bytes, *off).unwrap();
    }
    file.sync_all().unwrap();
}

#[test]
fn sparse_and_dense_copies_of_one_content_give_the_same_images() {
    if !support::have_all(&["e2fsck", "debugfs"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = |n: usize, seed: u8| -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed | 1)
            .collect()
    };
    // Data, a run of zeros crossing block boundaries, data not on a block
    // boundary, zeros to the end; a file of zeros only; an empty file.
    let mixed = [(0, data(4096, 1)), (204_800 + 100, data(5000, 2))];
    let yaml = "image: { name: t }\n\
        artifacts:\n\
        \x20 e4k: { fs: { type: ext4, from: tree }, output: e4k.ext4 }\n\
        \x20 e1k: { fs: { type: ext4, block-size: 1024, features: [^metadata_csum], from: tree }, output: e1k.ext4 }\n\
        \x20 sq: { fs: { type: squashfs, from: tree }, output: sq.squashfs }\n\
        \x20 ird: { initramfs: { from: tree, compression: none }, output: ird.cpio }\n\
        partitions:\n\
        \x20 - { name: root, artifact: e4k }\n\
        \x20 - { name: boot, size: 2MiB, fs: { type: vfat, from: tree } }\n";
    let mut outputs: Vec<Vec<Vec<u8>>> = Vec::new();
    for (variant, dense) in [("sparse", false), ("dense", true)] {
        let base = dir.path().join(variant);
        let tree = base.join("tree");
        fs::create_dir_all(&tree).unwrap();
        write_pieces(&tree.join("mixed"), 409_600, &mixed, dense);
        write_pieces(&tree.join("zeros"), 65_536, &[], dense);
        fs::write(tree.join("empty"), b"").unwrap();
        fs::write(base.join("board.yaml"), yaml).unwrap();
        let result = composer_within(
            &base,
            &["build", "board.yaml", "-o", "out"],
            Duration::from_secs(60),
        );
        assert!(result.status.success(), "{variant}: {}", stderr(&result));
        let out = base.join("out");
        outputs.push(
            ["t.img", "e4k.ext4", "e1k.ext4", "sq.squashfs", "ird.cpio"]
                .iter()
                .map(|f| fs::read(out.join(f)).unwrap())
                .collect(),
        );
        for fs_image in ["e4k.ext4", "e1k.ext4"] {
            let img = out.join(fs_image);
            support::run(Command::new("e2fsck").arg("-fn").arg(&img));
            let dumped = base.join(format!("{fs_image}.mixed"));
            support::run(
                Command::new("debugfs")
                    .arg("-R")
                    .arg(format!("dump /mixed {}", dumped.display()))
                    .arg(&img),
            );
            assert_eq!(
                fs::read(&dumped).unwrap(),
                fs::read(tree.join("mixed")).unwrap(),
                "{variant} {fs_image}"
            );
            // Blocks of zeros take no space, as with mke2fs -d: the file
            // of zeros has no blocks.
            let stat = support::run(
                Command::new("debugfs")
                    .arg("-R")
                    .arg("stat /zeros")
                    .arg(&img),
            );
            assert!(
                stat.contains("Blockcount: 0"),
                "{variant} {fs_image}: {stat}"
            );
        }
    }
    for (i, name) in ["t.img", "e4k.ext4", "e1k.ext4", "sq.squashfs", "ird.cpio"]
        .iter()
        .enumerate()
    {
        assert!(
            outputs[0][i] == outputs[1][i],
            "{name}: a sparse and a dense copy of one tree differ"
        );
    }
}
