//! The vfat writer checked by the Linux kernel: FAT12, FAT16, FAT32 and a
//! FAT32 with 4096-byte sectors on a 4Kn disk are attached to a QEMU guest
//! (TCG, direct kernel boot of the host's Debian kernel, a busybox
//! initramfs), mounted read-only by the `vfat` driver, and every file is
//! hashed inside the guest. The hashes, names (long, Unicode, lower-case
//! 8.3) and directories must match what was put in, and the kernel must log
//! no FAT complaint.
//!
//! Needs qemu-system-x86, busybox-static, cpio and a kernel image with its
//! modules (linux-image-amd64); without them the test prints a note and
//! passes on a laptop, and fails when `CI` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use composer::fs::vfat::{prepare, VfatOptions};
use composer::fs::{BuildContext, Content, FileSource};
use composer::ids::Seed;
use composer::output::window::Window;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const MIB: u64 = 1024 * 1024;

/// Modules the guest loads, in dependency order (Debian 12's 6.1 kernel;
/// missing files are assumed built in).
const MODULES: &[&str] = &[
    "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci_modern_dev",
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_pci",
    "drivers/block/virtio_blk",
    "fs/fat/fat",
    "fs/fat/vfat",
    "fs/nls/nls_cp437",
    "fs/nls/nls_ascii",
    "fs/nls/nls_utf8",
];

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /mnt
mount -t proc proc /proc
mount -t devtmpfs dev /dev
for m in $(cat /modules); do insmod /lib/$m.ko || echo "INSMOD-FAIL $m"; done
n=0
while [ ! -e /dev/vdd ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done
for d in vda vdb vdc vdd; do
  mkdir /mnt/$d
  if mount -t vfat -o ro,utf8 /dev/$d /mnt/$d; then
    echo "WHICH $d $(cat /mnt/$d/which)"
    cd /mnt/$d
    find . -type f -exec sha256sum {} + | sed "s/^/FILE $d /"
    find . -type d | sed "s/^/DIR $d /"
    cd /
  else
    echo "MOUNT-FAIL $d"
  fi
done
echo "KLINES $(dmesg | wc -l)"
dmesg | grep -i fat | sed 's/^/KMSG /'
echo END-OF-CHECK
poweroff -f
"#;

fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        missing(tool);
    }
    found
}

fn missing(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is missing (install qemu-system-x86 busybox-static cpio linux-image-amd64)");
    }
    eprintln!("note: {what} not found, skipping");
}

/// The newest kernel in /boot that has its modules installed.
fn kernel() -> Option<(PathBuf, PathBuf)> {
    let mut found: Vec<(PathBuf, PathBuf)> = std::fs::read_dir("/boot")
        .ok()?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let version = name.strip_prefix("vmlinuz-")?.to_string();
            let modules = PathBuf::from(format!("/lib/modules/{version}/kernel"));
            modules
                .is_dir()
                .then(|| (PathBuf::from(format!("/boot/{name}")), modules))
        })
        .collect();
    found.sort();
    found.pop()
}

fn initramfs(dir: &Path, modules: &Path) -> PathBuf {
    let root = dir.join("initramfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("lib/drivers")).unwrap();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap();
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    let mut list = String::new();
    for m in MODULES {
        let src = modules.join(format!("{m}.ko"));
        if src.exists() {
            let dst = root.join(format!("lib/{m}.ko"));
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            std::fs::copy(&src, dst).unwrap();
            list.push_str(m);
            list.push('\n');
        }
    }
    std::fs::write(root.join("modules"), list).unwrap();
    std::fs::write(root.join("init"), INIT).unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(root.join("init"))
        .status()
        .unwrap();
    let out = dir.join("initramfs.cpio");
    let status = Command::new("sh")
        .arg("-c")
        .arg("find . | sort | cpio -o -H newc -R 0:0 --quiet > \"$OUT\"")
        .env("OUT", &out)
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(status.success());
    out
}

struct Disk {
    which: &'static str,
    opts: VfatOptions,
    size: u64,
    files: Vec<(String, Vec<u8>)>,
}

fn content(which: &'static str) -> Vec<(String, Vec<u8>)> {
    let long = format!("{}.conf", "x".repeat(250));
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("/which".into(), which.as_bytes().to_vec()),
        ("/EFI/BOOT/BOOTX64.EFI".into(), vec![0xAA; 70_001]),
        (
            "/vmlinuz".into(),
            (0..300_000u32).map(|i| (i * 7) as u8).collect(),
        ),
        ("/README.md".into(), b"readme\n".to_vec()),
        ("/Grüße aus Köln.txt".into(), b"unicode\n".to_vec()),
        ("/日本語のファイル".into(), b"cjk\n".to_vec()),
        (format!("/{long}"), b"255\n".to_vec()),
        ("/kernel-5.10.img".into(), b"a".to_vec()),
        ("/kernel-6.1.img".into(), b"b".to_vec()),
        ("/empty".into(), Vec::new()),
        ("/a/b/c/d/e/f/deep file".into(), b"deep".to_vec()),
    ];
    for i in 0..300 {
        files.push((format!("/many/overlay-{i}.dtbo"), vec![i as u8; i * 13]));
    }
    files
}

fn disks() -> Vec<Disk> {
    let mut out = Vec::new();
    for (which, bits, sector, size) in [
        ("fat12", None, 512, 6 * MIB),
        ("fat16", Some(16), 512, 64 * MIB),
        ("fat32", Some(32), 512, 48 * MIB),
        ("fat32-4k", Some(32), 4096, 300 * MIB),
    ] {
        let files = content(which);
        let mut opts = VfatOptions::new(which);
        opts.fat_bits = bits;
        opts.sector_size = sector;
        opts.label = Some(which.to_string());
        opts.files = files
            .iter()
            .map(|(p, b)| (p.clone(), FileSource::Bytes(Arc::new(b.clone()))))
            .collect();
        out.push(Disk {
            which,
            opts,
            size,
            files,
        });
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn linux_mounts_and_reads_every_fat_type() {
    if !(have("qemu-system-x86_64") && have("cpio") && (have("busybox"))) {
        return;
    }
    let Some((vmlinuz, modules)) = kernel() else {
        missing("a kernel in /boot with modules in /lib/modules");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let initrd = initramfs(dir.path(), &modules);
    let ctx = BuildContext {
        seed: Seed("kernel-test".into()),
        source_date_epoch: Some(1_700_000_000),
    };
    let disks = disks();
    let mut args: Vec<String> = Vec::new();
    for (i, d) in disks.iter().enumerate() {
        let fs = prepare(&d.opts, &ctx).unwrap();
        let img = dir.path().join(format!("{}.img", d.which));
        let file = support::sparse_file(&img, d.size);
        fs.write(&mut Window::new(&file, 0, d.size)).unwrap();
        args.push("-drive".into());
        args.push(format!(
            "file={},format=raw,if=none,id=d{i},readonly=on",
            img.display()
        ));
        args.push("-device".into());
        let block = d.opts.sector_size;
        args.push(format!(
            "virtio-blk-pci,drive=d{i},logical_block_size={block},physical_block_size={block}"
        ));
    }
    let serial = dir.path().join("serial.log");
    let status = Command::new("timeout")
        .arg("300")
        .arg("qemu-system-x86_64")
        .args(["-accel", "tcg", "-machine", "q35", "-m", "256", "-smp", "1"])
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .arg("-kernel")
        .arg(&vmlinuz)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet loglevel=4"])
        .args(&args)
        .stdin(std::process::Stdio::null())
        .status()
        .unwrap();
    let log = support::serial_log(&serial, "VFAT_KERNEL_LOG");
    assert!(status.success(), "qemu failed ({status}):\n{log}");
    assert!(
        log.contains("END-OF-CHECK"),
        "the guest did not finish:\n{log}"
    );
    assert!(!log.contains("-FAIL"), "{log}");
    let kmsg: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("KMSG ") && l.contains("FAT-fs"))
        .collect();
    assert!(
        kmsg.is_empty(),
        "the kernel complained:\n{}",
        kmsg.join("\n")
    );

    for d in &disks {
        let dev = log
            .lines()
            .find_map(|l| {
                let rest = l.strip_prefix("WHICH ")?;
                let (dev, which) = rest.split_once(' ')?;
                (which == d.which).then(|| dev.to_string())
            })
            .unwrap_or_else(|| panic!("{} was not mounted:\n{log}", d.which));
        let got: BTreeSet<String> = log
            .lines()
            .filter_map(|l| {
                l.strip_prefix(&format!("FILE {dev} "))
                    .or_else(|| l.strip_prefix(&format!("DIR {dev} ")).map(|_| l))
                    .map(str::to_string)
            })
            .map(|l| {
                l.strip_prefix(&format!("DIR {dev} "))
                    .map_or(l.clone(), |p| format!("dir {p}"))
            })
            .collect();
        let mut want = BTreeSet::new();
        want.insert("dir .".to_string());
        for (path, bytes) in &d.files {
            want.insert(format!("{}  .{path}", hex(&Sha256::digest(bytes))));
            let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
            for i in 1..parts.len() {
                want.insert(format!("dir ./{}", parts[..i].join("/")));
            }
        }
        assert_eq!(got, want, "{} as seen by Linux", d.which);
    }
}
