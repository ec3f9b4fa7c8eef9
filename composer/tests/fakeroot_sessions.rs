//! Inside Debian's `fakeroot` and Yocto's `pseudo`, as an unprivileged
//! user: a tree is given owners, setuid bits, device nodes, a file
//! capability, a `user.*` and a `security.selinux` xattr in one session,
//! then built in the same session by `image-composer` (default owners) and
//! by `mkfs.ext4 -d`. Every inode's type, mode, owner, device numbers and
//! xattrs, as `debugfs` reads them, must be equal between the two images.
//! The same session's `plan` must say why it kept the tree's owners, and an
//! explicit `owners: root` there must warn naming an affected path.
//!
//! Run as root (CI), the session runs as `nobody` through `setpriv`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ext4_support;

use ext4_support::{assert_fsck_clean, debugfs, have};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The unprivileged user the session runs as when the test runs as root.
const NOBODY: u32 = 65534;

/// Makes the tree and builds both images; `$BIN` is image-composer.
const SESSION_SCRIPT: &str = r#"set -e
mkdir -p t/etc t/bin t/home/u t/dev
echo secret > t/etc/shadow
chown 0:42 t/etc/shadow
chmod 0640 t/etc/shadow
echo busybox > t/bin/busybox
chown 0:0 t/bin/busybox
chmod 4755 t/bin/busybox
ln -s busybox t/bin/sh
echo f > t/home/u/f
chown 1234:5678 t/home/u/f
mknod t/dev/console c 5 1
mknod t/dev/sda b 8 0
echo ping > t/bin/ping
setcap cap_net_raw+ep t/bin/ping
setfattr -n user.note -v hello t/etc/shadow
setfattr -n security.selinux -v system_u:object_r:bin_t:s0 t/bin/busybox
mkfs.ext4 -q -F -d t reference.img 16M
"$BIN" plan source.yaml > plan.txt
"$BIN" build source.yaml -o out 2> build.log
"$BIN" plan root.yaml > /dev/null 2> root.log
"#;

/// The root filesystem as an artifact written standalone (`out/root.ext4`);
/// `OWNERS` is replaced by an `owners:` key or nothing.
const YAML: &str = "image: { name: disk, table: gpt, size: 32MiB }
artifacts:
  root:
    fs: { type: ext4, from: t OWNERS}
    size: 16MiB
    output: root.ext4
partitions:
  - { name: root, artifact: root }
";

#[test]
fn pseudo_session_builds_what_mkfs_ext4_builds() {
    compare_in_session("pseudo", "LD_PRELOAD has libpseudo");
}

#[test]
fn fakeroot_session_builds_what_mkfs_ext4_builds() {
    compare_in_session("fakeroot", "FAKEROOTKEY is set");
}

fn compare_in_session(session: &str, evidence: &str) {
    if ![
        "mkfs.ext4",
        "debugfs",
        "e2fsck",
        "setcap",
        "setfattr",
        session,
    ]
    .iter()
    .all(|t| have(t))
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    std::fs::write(work.join("source.yaml"), YAML.replace("OWNERS", "")).unwrap();
    std::fs::write(
        work.join("root.yaml"),
        YAML.replace("OWNERS", ", owners: root "),
    )
    .unwrap();
    std::fs::write(work.join("session.sh"), SESSION_SCRIPT).unwrap();
    let as_root = rustix::process::geteuid().is_root();
    if as_root {
        for entry in ["", "source.yaml", "root.yaml", "session.sh"] {
            std::os::unix::fs::chown(work.join(entry), Some(NOBODY), Some(NOBODY)).unwrap();
        }
    }
    let mut cmd = if as_root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            session,
        ]);
        c
    } else {
        Command::new(session)
    };
    cmd.args(["sh", "-x", "session.sh"])
        .current_dir(work)
        .env("BIN", env!("CARGO_BIN_EXE_image-composer"))
        .env("HOME", work)
        .env(
            "PATH",
            format!(
                "/usr/sbin:/sbin:{}",
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("PSEUDO_PREFIX", "/usr")
        .env("PSEUDO_LOCALSTATEDIR", work.join("pseudo"))
        .env_remove("FAKEROOTKEY")
        .env_remove("LD_PRELOAD");
    let out = cmd.output().expect("running the session");
    let log = |name: &str| std::fs::read_to_string(work.join(name)).unwrap_or_default();
    assert!(
        out.status.success(),
        "{session} session failed:\n{}\n{}\nbuild.log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        log("build.log")
    );

    let plan = log("plan.txt");
    assert!(
        plan.contains(&format!(
            "root: source: the tree's, as the {session} session reports them ({evidence})"
        )),
        "plan does not say why it kept the owners:\n{plan}"
    );
    let ours = work.join("out/root.ext4");
    let reference = work.join("reference.img");
    assert_fsck_clean(&ours);
    assert_fsck_clean(&reference);
    let expected = inodes(&reference);
    let got = inodes(&ours);
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "the two filesystems hold different paths"
    );
    for (path, want) in &expected {
        assert_eq!(
            &got[path], want,
            "{session}: '{path}' differs from mkfs.ext4 -d"
        );
    }
    // `owners: root` in the session warns, naming a path whose owner the
    // session reports as not root. (Which one depends on the session:
    // fakeroot 1.31 reports a file it set an xattr on as the real user's.)
    let warning = log("root.log");
    let named = warning
        .split("e.g. '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no warning naming a path for `owners: root`:\n{warning}"));
    assert!(
        warning.contains("`owners: root` makes every file root:root")
            && !expected[named].contains("User: 0 Group: 0"),
        "the warning names '{named}' ({}):\n{warning}",
        expected[named]
    );
    // The comparison must have seen what the session made.
    for (path, needle) in [
        ("/etc/shadow", "Group: 42"),
        ("/etc/shadow", "user.note (5) = \"hello\""),
        ("/bin/busybox", "Mode: 04755"),
        ("/bin/busybox", "security.selinux (26)"),
        ("/home/u/f", "User: 1234 Group: 5678"),
        ("/dev/console", "Device major/minor number: 05:01"),
        ("/dev/sda", "Device major/minor number: 08:00"),
        ("/bin/ping", "security.capability (20) = 01 00 00 02 00 20"),
    ] {
        assert!(
            expected[path].contains(needle),
            "{session}: mkfs.ext4 -d did not see '{needle}' on '{path}': {}",
            expected[path]
        );
    }
}

/// Every path of the filesystem in `img` and the fields compared, from
/// debugfs: type, mode, owner, device numbers and extended attributes.
fn inodes(img: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec!["/".to_string()];
    out.insert("/".to_string(), fields(&debugfs(img, "stat /")));
    while let Some(dir) = dirs.pop() {
        for line in debugfs(img, &format!("ls -p \"{dir}\"")).lines() {
            // `/inode/mode/uid/gid/name/size/`
            let parts: Vec<&str> = line.split('/').collect();
            if parts.len() < 7 || parts[5] == "." || parts[5] == ".." {
                continue;
            }
            let path = format!("{}/{}", dir.trim_end_matches('/'), parts[5]);
            let stat = debugfs(img, &format!("stat \"{path}\""));
            if parts[2].starts_with("04") {
                dirs.push(path.clone());
            }
            out.insert(path, fields(&stat));
        }
    }
    out
}

/// The compared lines of a debugfs `stat`: the type and mode, owner and
/// group, device numbers and every extended attribute, blanks collapsed.
fn fields(stat: &str) -> String {
    let mut keep = Vec::new();
    let mut in_xattrs = false;
    for line in stat.lines() {
        let words = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.starts_with("Inode:") {
            // Drop the inode number and flags: layout, not content.
            let type_mode: Vec<&str> = words
                .split(" Flags:")
                .next()
                .unwrap_or("")
                .split_whitespace()
                .skip(2)
                .collect();
            keep.push(type_mode.join(" "));
        } else if line.starts_with("User:") {
            keep.push(words.split(" Project:").next().unwrap_or("").to_string());
        } else if line.starts_with("Device major/minor number:") {
            keep.push(words);
        } else if line.starts_with("Extended attributes:") {
            in_xattrs = true;
        } else if in_xattrs && line.starts_with("  ") {
            keep.push(words);
        } else {
            in_xattrs = false;
        }
    }
    keep.join("; ")
}
