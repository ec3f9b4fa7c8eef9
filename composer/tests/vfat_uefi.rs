//! The vfat writer checked by UEFI firmware: a FAT32 EFI system partition
//! (in a one-entry MBR, so this test needs no other part of the crate) is
//! booted by OVMF under QEMU. OVMF's own FAT driver must find and load
//! `/EFI/BOOT/BOOTX64.EFI` (a GRUB image), and GRUB's FAT driver must read
//! its `grub.cfg` and a file behind long, spaced names, which it prints to
//! the serial console before powering off.
//!
//! Needs qemu-system-x86, ovmf and grub-efi-amd64-bin; without them the test
//! prints a note and passes on a laptop, and fails when `CI` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use composer::fs::vfat::{prepare, VfatOptions};
use composer::fs::{BuildContext, FileSource};
use composer::ids::Seed;
use composer::output::window::Window;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

const MIB: u64 = 1024 * 1024;
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
const GRUB_MODULES: &str = "/usr/lib/grub/x86_64-efi";
/// The file GRUB prints: its content can only reach the console if GRUB
/// resolved the long names.
const MARKER_PATH: &str = "/Long Directory Name/a file with spaces.txt";
const MARKER: &str = "VFAT-LFN-READ-OK";

fn missing(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is missing (install qemu-system-x86 ovmf grub-efi-amd64-bin)");
    }
    eprintln!("note: {what} not found, skipping");
}

fn available() -> bool {
    for tool in ["qemu-system-x86_64", "grub-mkimage"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            missing(tool);
            return false;
        }
    }
    for path in [OVMF_CODE, OVMF_VARS, GRUB_MODULES] {
        if !Path::new(path).exists() {
            missing(path);
            return false;
        }
    }
    true
}

#[test]
fn ovmf_and_grub_read_the_esp() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let grub = d.join("BOOTX64.EFI");
    let status = Command::new("grub-mkimage")
        .args(["-O", "x86_64-efi", "-p", "/EFI/grub", "-o"])
        .arg(&grub)
        .args([
            "fat",
            "part_msdos",
            "normal",
            "configfile",
            "echo",
            "cat",
            "halt",
        ])
        .status()
        .unwrap();
    assert!(status.success(), "grub-mkimage failed");
    let cfg = format!("echo GRUB-STARTED\ncat \"{MARKER_PATH}\"\nhalt\n");

    let mut opts = VfatOptions::new("esp");
    opts.fat_bits = Some(32);
    opts.label = Some("ESP".into());
    let bytes = |b: &[u8]| FileSource::Bytes(Arc::new(b.to_vec()));
    opts.files = vec![
        ("/EFI/BOOT/BOOTX64.EFI".into(), FileSource::Path(grub)),
        ("/EFI/grub/grub.cfg".into(), bytes(cfg.as_bytes())),
        (MARKER_PATH.into(), bytes(format!("{MARKER}\n").as_bytes())),
        ("/vmlinuz".into(), bytes(&[0x5A; 100_000])),
    ];
    let ctx = BuildContext {
        seed: Seed("uefi-test".into()),
        source_date_epoch: Some(1_700_000_000),
    };
    let fs = prepare(&opts, &ctx).unwrap();

    // Disk: MBR with one EFI system partition (type 0xEF) from 1 MiB.
    let part_len = 64 * MIB;
    let disk = d.join("disk.img");
    let file = support::sparse_file(&disk, MIB + part_len);
    // The partition starts at LBA 2048 (the boot sector's hidden sectors).
    fs.write_in_partition(&mut Window::new(&file, MIB, part_len), 2048)
        .unwrap();
    let mut entry = [0u8; 16];
    entry[4] = 0xEF;
    entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
    entry[12..16].copy_from_slice(&u32::try_from(part_len / 512).unwrap().to_le_bytes());
    file.write_all_at(&entry, 446).unwrap();
    file.write_all_at(&[0x55, 0xAA], 510).unwrap();
    drop(file);

    let vars = d.join("vars.fd");
    std::fs::copy(OVMF_VARS, &vars).unwrap();
    let serial = d.join("serial.log");
    let status = Command::new("timeout")
        .arg("300")
        .arg("qemu-system-x86_64")
        .args(["-accel", "tcg", "-machine", "q35", "-m", "256", "-smp", "1"])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"
        ))
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=1,file={}",
            vars.display()
        ))
        .arg("-drive")
        .arg(format!("file={},format=raw,if=virtio", disk.display()))
        .stdin(std::process::Stdio::null())
        .status()
        .unwrap();
    let log = support::serial_log(&serial, "VFAT_UEFI_LOG");
    assert!(
        status.success(),
        "qemu failed or timed out ({status}):\n{log}"
    );
    assert!(
        log.contains("GRUB-STARTED"),
        "OVMF did not start GRUB from the ESP:\n{log}"
    );
    assert!(
        log.contains(MARKER),
        "GRUB did not read '{MARKER_PATH}':\n{log}"
    );
}
