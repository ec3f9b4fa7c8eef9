//! `image-composer flash`: an image written to a file or a loop device
//! reads back byte for byte as the image (raw or compressed input, our
//! bmap or bmaptool's), and every refusal holds: no bmap, an image that
//! does not match its bmap, no confirmation, a device too small, mounted,
//! holding a mounted partition, or backing the running root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::{composer, have, run};

/// Builds a 40 MiB GPT image (vfat + ext4) with its bmap and compressed
/// copies into `dir/out`; returns the raw image's path.
fn build_image(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("hello"), "hello\n").unwrap();
    let config = dir.join("board.yaml");
    fs::write(
        &config,
        "image: { name: t, size: 40MiB }\n\
         partitions:\n  \
           - { name: boot, size: 16MiB, fs: { type: vfat, files: { /hello: tree/hello } } }\n  \
           - { name: root, size: fill, fs: { type: ext4, from: tree } }\n\
         outputs: [raw, bmap, zst, xz, gz]\n",
    )
    .unwrap();
    let out = dir.join("out");
    let r = composer(&[
        "build",
        config.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    out.join("t.img")
}

fn flash(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_image-composer"))
        .arg("flash")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn flash_to_a_file_from_raw_and_compressed_images() {
    let dir = tempfile::tempdir().unwrap();
    let image = build_image(dir.path());
    let bytes = fs::read(&image).unwrap();
    for suffix in ["", ".zst", ".xz", ".gz"] {
        let input = PathBuf::from(format!("{}{suffix}", image.display()));
        let target = dir.path().join(format!("target{suffix}.img"));
        // A previous content beyond the image is cut off.
        fs::write(&target, vec![0xA5u8; 50 << 20]).unwrap();
        let r = flash(&[p(&input), p(&target)]);
        assert!(r.status.success(), "{suffix}: {}", stderr(&r));
        assert!(
            fs::read(&target).unwrap() == bytes,
            "{suffix}: target differs"
        );
        let text = stderr(&r);
        for line in [
            "flash: writing",
            "flash: wrote",
            "flash: verifying",
            "flash: verified",
        ] {
            assert!(text.contains(line), "{suffix}: no '{line}' in:\n{text}");
        }
    }
    let target = dir.path().join("noverify.img");
    let r = flash(&["--no-verify", p(&image), p(&target)]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(stderr(&r).contains("read-back skipped"));
    assert!(!stderr(&r).contains("verifying"));
    assert!(fs::read(&target).unwrap() == bytes);
}

#[test]
fn flash_reads_a_bmap_made_by_bmaptool() {
    if !have("bmaptool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = build_image(dir.path());
    let bmap = dir.path().join("theirs.bmap");
    run(Command::new("bmaptool").args(["create", "-o", p(&bmap), p(&image)]));
    let target = dir.path().join("target.img");
    let r = flash(&[
        "--bmap",
        p(&bmap),
        &format!("{}.zst", image.display()),
        p(&target),
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(fs::read(&target).unwrap() == fs::read(&image).unwrap());
}

#[test]
fn an_image_that_does_not_match_its_bmap_fails() {
    let dir = tempfile::tempdir().unwrap();
    let image = build_image(dir.path());
    let mut bytes = fs::read(&image).unwrap();
    // The GPT header at LBA 1 is mapped.
    bytes[512 + 100] ^= 0xFF;
    let other = dir.path().join("other.img");
    fs::write(&other, bytes).unwrap();
    let bmap = format!("{}.bmap", image.display());
    let r = flash(&["--bmap", &bmap, p(&other), p(&dir.path().join("t.img"))]);
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("do not match the SHA-256 in its bmap"),
        "{}",
        stderr(&r)
    );
}

#[test]
fn an_image_without_a_bmap_is_a_command_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("x.img");
    fs::write(&image, [0u8; 4096]).unwrap();
    let r = flash(&[p(&image), p(&dir.path().join("t.img"))]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    let text = stderr(&r);
    assert!(
        text.contains("x.img.bmap") && text.contains("--bmap"),
        "{text}"
    );
    let r = flash(&[p(&image), "/proc/version"]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
}

/// A loop device over a file, detached on drop.
struct Loop(String);

impl Loop {
    fn new(file: &Path, partitions: bool) -> Option<Loop> {
        let mut args = vec!["-f", "--show"];
        if partitions {
            args.push("-P");
        }
        let out = Command::new("losetup")
            .args(&args)
            .arg(file)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| Loop(String::from_utf8_lossy(&out.stdout).trim().to_string()))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// A mount, unmounted on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Loop devices work here; else the loop tests are skipped, which CI
/// allows only where the machine has no loop support.
fn loop_devices(dir: &Path) -> bool {
    let probe = dir.join("probe");
    fs::write(&probe, vec![0u8; 1 << 20]).unwrap();
    if Loop::new(&probe, false).is_some() {
        return true;
    }
    let could = Path::new("/dev/loop-control").exists()
        && Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n");
    assert!(
        std::env::var_os("CI").is_none() || !could,
        "losetup fails although this machine has loop devices and runs as root"
    );
    eprintln!("note: no loop devices (not root?); skipping");
    false
}

#[test]
fn flash_to_loop_devices_and_every_refusal() {
    let dir = tempfile::tempdir().unwrap();
    if !loop_devices(dir.path()) || !have("sfdisk") {
        return;
    }
    let image = build_image(dir.path());
    let bytes = fs::read(&image).unwrap();
    let disk_file = dir.path().join("disk");
    fs::write(&disk_file, vec![0xA5u8; 48 << 20]).unwrap();
    let disk = Loop::new(&disk_file, true).unwrap();

    // No terminal to confirm on: refused, nothing written.
    let r = flash(&[p(&image), &disk.0]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(stderr(&r).contains("needs a confirmation") && stderr(&r).contains("--yes"));
    assert!(
        stderr(&r).contains("loop device backed by"),
        "{}",
        stderr(&r)
    );
    assert!(fs::read(&disk_file).unwrap()[..512]
        .iter()
        .all(|&b| b == 0xA5));

    // On a terminal (`script` gives it one): the question names the
    // device and its size; anything but "yes" writes nothing.
    if have("script") {
        let on_tty = |answer: &str| {
            let cmd = format!(
                "printf '{answer}\\n' | script -qec '{} flash {} {}' /dev/null",
                env!("CARGO_BIN_EXE_image-composer"),
                p(&image),
                disk.0
            );
            Command::new("sh").args(["-c", &cmd]).output().unwrap()
        };
        let r = on_tty("no");
        let out = String::from_utf8_lossy(&r.stdout).into_owned();
        assert_eq!(r.status.code(), Some(1), "{out}");
        assert!(
            out.contains(&format!("to {} (loop device backed by", disk.0)),
            "{out}"
        );
        assert!(
            out.contains("48 MiB)?") && out.contains("not confirmed"),
            "{out}"
        );
        assert!(fs::read(&disk_file).unwrap()[..512]
            .iter()
            .all(|&b| b == 0xA5));
        let r = on_tty("yes");
        let out = String::from_utf8_lossy(&r.stdout).into_owned();
        assert!(r.status.success(), "{out}");
        // The terminal gets a progress line with the rate and time left.
        assert!(out.contains("/s, ") && out.contains("s left"), "{out}");
    }
    let r = flash(&["--yes", &format!("{}.zst", image.display()), &disk.0]);
    assert!(r.status.success(), "{}", stderr(&r));
    // The mapped ranges are the image's, the rest is left as it was.
    let written = fs::read(&disk_file).unwrap();
    let bmap = fs::read_to_string(format!("{}.bmap", image.display())).unwrap();
    let bmap = bmap_parser::Bmap::from_xml(&bmap).unwrap();
    let mut unmapped = vec![true; bytes.len()];
    for range in bmap.block_map() {
        let r = range.offset() as usize..(range.offset() + range.length()) as usize;
        assert!(
            written[r.clone()] == bytes[r.clone()],
            "the device differs at {r:?}"
        );
        unmapped[r].fill(false);
    }
    let untouched = (0..bytes.len())
        .filter(|&i| unmapped[i])
        .all(|i| written[i] == 0xA5);
    assert!(untouched, "an unmapped byte was written");
    assert!(unmapped.iter().any(|&u| u));
    let dump = run(Command::new("sfdisk").args(["--dump", &disk.0]));
    assert!(
        dump.contains("name=\"boot\"") && dump.contains("name=\"root\""),
        "{dump}"
    );

    // Too small.
    let small_file = dir.path().join("small");
    fs::write(&small_file, vec![0u8; 8 << 20]).unwrap();
    let small = Loop::new(&small_file, false).unwrap();
    let r = flash(&["--yes", p(&image), &small.0]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("has 8388608 bytes, the image needs 41943040"),
        "{}",
        stderr(&r)
    );

    // A mounted partition of the disk, and the partition itself; `partx`
    // tells the kernel about the new table (the scan at attach time found
    // none).
    let _ = Command::new("partx").args(["-a", &disk.0]).status();
    let part = format!("{}p2", disk.0);
    let mnt = dir.path().join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    if !Path::new(&part).exists()
        || !Command::new("mount")
            .args(["-o", "ro", &part, p(&mnt)])
            .status()
            .unwrap()
            .success()
    {
        panic!("cannot mount {part} (the flashed ext4 partition)");
    }
    let mount = Mount(mnt.clone());
    let r = flash(&["--yes", p(&image), &disk.0]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    let name = part.rsplit('/').next().unwrap();
    assert!(
        stderr(&r).contains(&format!(
            "holds partition {name} mounted on {}",
            mnt.display()
        )),
        "{}",
        stderr(&r)
    );
    let r = flash(&["--yes", p(&image), &part]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(
        stderr(&r).contains(&format!("is mounted on {}", mnt.display())),
        "{}",
        stderr(&r)
    );

    // Backing the running root: the same check, with the mount standing
    // in for `/`.
    for target in [&disk.0, &part] {
        let refusal = composer::flash::target::open(Path::new(target), 4096, &mnt)
            .unwrap()
            .unwrap_err();
        assert!(
            refusal.message.contains("backs the running root"),
            "{}",
            refusal.message
        );
    }
    drop(mount);
    assert!(
        fs::read(&disk_file).unwrap() == written,
        "a refused flash wrote"
    );
}
