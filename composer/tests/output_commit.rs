//! One commit of all outputs (docs/architecture.md, "Commit protocol"):
//! outputs are staged under names nobody else can own and put in place
//! together; a failed build, a signal or a second build never leaves a
//! mix, a file written through a planted link, or a bmap beside a file it
//! does not describe.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{composer, have};

/// A small GPT image: an ext4 artifact (standalone output `rootfs.ext4`)
/// as a partition, and a vfat partition holding it as a file (a scratch
/// file while preparing). `extra` adds lines under `artifacts:`.
fn description(dir: &Path, extra: &str) -> PathBuf {
    let tree = dir.join("tree");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("hello"), "hello\n").unwrap();
    let yaml = format!(
        "image: {{ name: t, size: 40MiB }}\n\
         artifacts:\n  \
           rootfs:\n    fs: {{ type: ext4, from: tree }}\n    size: 8MiB\n    output: rootfs.ext4\n\
         {extra}\
         partitions:\n  \
           - {{ name: root, size: 8MiB, artifact: rootfs }}\n  \
           - name: boot\n    size: 16MiB\n    fs: {{ type: vfat, files: {{ /rootfs.img: {{ artifact: rootfs }} }} }}\n\
         outputs: [raw, bmap, zst]\n"
    );
    let path = dir.join("board.yaml");
    fs::write(&path, yaml).unwrap();
    path
}

fn build(config: &Path, out: &Path) -> std::process::Output {
    composer(&[
        "build",
        config.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ])
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every entry of `dir` with its bytes (links as their target).
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = fs::symlink_metadata(e.path()).unwrap();
            let bytes = if meta.is_file() {
                fs::read(e.path()).unwrap()
            } else if meta.is_symlink() {
                fs::read_link(e.path())
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else {
                b"(dir)".to_vec()
            };
            (e.file_name().into_string().unwrap(), bytes)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn planted_links_in_the_output_directory_are_never_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let config = description(dir.path(), "");
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, "precious").unwrap();
    for name in [
        "t.img.partial",
        "t.img.bmap.partial",
        "rootfs.ext4.partial",
        ".rootfs.artifact.partial",
    ] {
        symlink(&victim, out.join(name)).unwrap();
    }
    let result = build(&config, &out);
    assert!(result.status.success(), "{}", stderr(&result));
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(fs::symlink_metadata(out.join("t.img")).unwrap().is_file());
}

#[test]
fn validate_and_plan_follow_no_link_and_leave_nothing_in_the_temp_dir() {
    let dir = tempfile::tempdir().unwrap();
    let config = description(dir.path(), "");
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, "precious").unwrap();
    // The scratch names of the old design were `.NAME.PID.artifact.partial`:
    // plant links at the next few thousand process ids.
    let next = Command::new("true").spawn().unwrap().id();
    for pid in next..next + 3000 {
        symlink(&victim, tmp.join(format!(".rootfs.{pid}.artifact.partial"))).unwrap();
    }
    let before = snapshot(&tmp);
    for command in ["validate", "plan"] {
        let result = Command::new(env!("CARGO_BIN_EXE_image-composer"))
            .args([command, config.to_str().unwrap()])
            .env("TMPDIR", &tmp)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(result.status.success(), "{command}: {}", stderr(&result));
        assert_eq!(fs::read(&victim).unwrap(), b"precious", "{command}");
        assert!(snapshot(&tmp) == before, "{command} left files in $TMPDIR");
    }
}

#[test]
fn a_failed_commit_leaves_the_previous_build_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = description(dir.path(), "");
    let result = build(&config, &out);
    assert!(result.status.success(), "{}", stderr(&result));
    // A directory holds the name of a new output: the second build fails
    // when it commits, after every output was written.
    fs::create_dir(out.join("extra.ext4")).unwrap();
    let before = snapshot(&out);
    fs::write(dir.path().join("tree/hello"), "changed\n").unwrap();
    let config = description(
        dir.path(),
        "  extra:\n    fs: { type: ext4 }\n    size: 8MiB\n    output: extra.ext4\n",
    );
    let result = build(&config, &out);
    assert_eq!(result.status.code(), Some(1), "{}", stderr(&result));
    assert!(
        stderr(&result).contains("extra.ext4"),
        "{}",
        stderr(&result)
    );
    let after = snapshot(&out);
    let names = |s: &[(String, Vec<u8>)]| s.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&after), names(&before));
    assert!(after == before, "a file of the previous build changed");
}

#[test]
fn a_second_build_into_a_locked_directory_is_refused() {
    if !have("flock") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = description(dir.path(), "");
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let ready = dir.path().join("ready");
    let mut holder = Command::new("flock")
        .arg(&out)
        .arg("-c")
        .arg(format!("touch '{}'; sleep 60", ready.display()))
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !ready.exists() {
        assert!(start.elapsed() < Duration::from_secs(30), "flock never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    let result = build(&config, &out);
    let _ = Command::new("kill").arg(holder.id().to_string()).status();
    let _ = holder.wait();
    assert_eq!(result.status.code(), Some(1), "{}", stderr(&result));
    assert!(
        stderr(&result).contains("another image-composer build is writing to"),
        "{}",
        stderr(&result)
    );
    assert!(fs::read_dir(&out).unwrap().next().is_none());
}

#[test]
fn sigterm_removes_the_staged_files() {
    let dir = tempfile::tempdir().unwrap();
    // 32 MiB of noise compressed as xz: seconds of work to interrupt.
    let blob = dir.path().join("noise.bin");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..32 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(&blob, bytes).unwrap();
    let config = dir.path().join("board.yaml");
    fs::write(
        &config,
        "image: { name: slow, size: 40MiB }\npartitions:\n  - { name: a, size: 33MiB, image: noise.bin }\noutputs: [raw, bmap, xz]\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_image-composer"))
        .args([
            "build",
            config.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let staged = |out: &Path| {
        fs::read_dir(out)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().contains("partial"))
            })
            .unwrap_or(false)
    };
    while !staged(&out) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nothing was staged"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the build ended too soon"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{status:?}");
    let left: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn output_names_that_collide_or_are_not_plain_are_description_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (output, why) in [
        ("t.img.partial", "reserved"),
        ("t.img", "the image"),
        ("t.img.bmap", "the image"),
        ("'.'", "plain file name"),
        ("'..'", "plain file name"),
        ("rootfs.ext4.bmap", "artifact \"rootfs\""),
        ("rootfs.ext4", "artifact \"rootfs\""),
    ] {
        let config = description(
            dir.path(),
            &format!("  other:\n    fs: {{ type: ext4 }}\n    size: 4MiB\n    output: {output}\n"),
        );
        let out = dir.path().join("out");
        let result = build(&config, &out);
        let text = stderr(&result);
        assert_eq!(result.status.code(), Some(2), "{output}: {text}");
        assert!(
            text.contains("board.yaml:10:13: artifacts.other.output"),
            "{output}: {text}"
        );
        assert!(text.contains(why), "{output}: {text}");
        assert!(!out.exists(), "{output}: the output directory was created");
    }
}
