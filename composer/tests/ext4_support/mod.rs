//! Helpers shared by the ext4 integration tests: build a filesystem into an
//! image file through a Window, check it with e2fsck, read it with debugfs.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use composer::fs::ext4::{prepare, Ext4Fs, Ext4Options};
use composer::fs::tree::Tree;
use composer::fs::{BuildContext, Content};
use composer::ids::Seed;
use composer::output::window::{Extents, Window};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether `tool` can be run; without it a test returns early on a laptop
/// and fails in CI (where `CI` is set and every tool is installed).
pub fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "command -v {tool} || test -x /usr/sbin/{tool} || test -x /sbin/{tool}"
        ))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{tool} is required in CI (apt-get install e2fsprogs)");
        }
        eprintln!("note: {tool} not found; skipping");
    }
    found
}

pub fn ctx() -> BuildContext {
    BuildContext {
        seed: Seed("ext4-tests".into()),
        source_date_epoch: Some(1_700_000_000),
    }
}

/// Builds `tree` (or an empty fs) into `img` of `size` bytes (None: the
/// minimum size); returns the prepared fs and the mapped ranges.
pub fn build_into(
    img: &Path,
    opts: &Ext4Options,
    tree: Option<&Tree>,
    size: Option<u64>,
) -> (Ext4Fs, Extents) {
    let fs = prepare(opts, tree, &ctx()).unwrap();
    let size = size.unwrap_or_else(|| fs.min_size());
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(img)
        .unwrap();
    file.set_len(size).unwrap();
    let mut w = Window::new(&file, 0, size);
    fs.write(&mut w).unwrap();
    let mapped = w.into_mapped();
    (fs, mapped)
}

/// Runs `e2fsck -fn` and asserts it finds the filesystem clean.
pub fn assert_fsck_clean(img: &Path) {
    let out = Command::new("e2fsck")
        .args(["-fn"])
        .arg(img)
        .output()
        .expect("running e2fsck");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let allowed = |l: &str| {
        l.starts_with("Pass ")
            || l.starts_with("e2fsck ")
            || l.trim().is_empty()
            || l.contains("files (")
    };
    let bad: Vec<&str> = text.lines().filter(|l| !allowed(l)).collect();
    assert!(
        out.status.success() && bad.is_empty(),
        "e2fsck -fn {} failed ({}):\n{text}",
        img.display(),
        out.status
    );
}

/// Output of `debugfs -R cmd img`.
pub fn debugfs(img: &Path, cmd: &str) -> String {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(cmd)
        .arg(img)
        .output()
        .expect("running debugfs");
    assert!(out.status.success(), "debugfs -R '{cmd}' failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Dumps `path` from the image into a host file and returns its bytes.
pub fn dump(img: &Path, path: &str, dir: &Path) -> Vec<u8> {
    let dest: PathBuf = dir.join("dumped");
    let _ = std::fs::remove_file(&dest);
    debugfs(img, &format!("dump -p \"{path}\" {}", dest.display()));
    std::fs::read(&dest).unwrap_or_default()
}
