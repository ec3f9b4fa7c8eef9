//! The encoded tables, checked by tools nobody here wrote: `sfdisk --json`
//! (start, size, type, uuid, name, attrs, disk id), `sgdisk -v` (no
//! problems) and `fdisk -l`; and compared byte for byte with the tables
//! `sfdisk` itself writes for the same layout. Only the table bytes are
//! written, into a sparse file the size of the disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::have;

use composer::ids::Seed;
use composer::plan::{allocate, DiskSpec, Headroom, PartSpec, Plan, SizeReq, TableKind};
use composer::ptable::{encode, types::lookup};
use composer::units::{KIB, MIB};
use serde_json::Value;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

fn run(argv: &[&str]) -> String {
    let out = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{argv:?} failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

fn write_tables(plan: &Plan, path: &Path) {
    let file = File::create(path).unwrap();
    file.set_len(plan.disk_size).unwrap();
    for (offset, bytes) in encode(plan) {
        file.write_all_at(&bytes, offset).unwrap();
    }
}

fn seeded_disk(table: TableKind, size: u64, sector_size: u32) -> DiskSpec {
    let seed = Seed("ptable-tools".into());
    DiskSpec {
        size: Some(size),
        sector_size,
        disk_guid: seed.uuid(&["disk"]),
        // A protective MBR's signature is 0 unless set (UEFI), as the
        // description's default.
        mbr_signature: if table == TableKind::Gpt {
            0
        } else {
            seed.u32(&["mbr"])
        },
        ..DiskSpec::new(table)
    }
}

fn seeded_part(name: &str, ty: &str, size: SizeReq) -> PartSpec {
    PartSpec {
        part_type: lookup(ty).unwrap(),
        uuid: Seed("ptable-tools".into()).uuid(&["partition", name]),
        ..PartSpec::new(name, size)
    }
}

fn gpt_parts() -> Vec<PartSpec> {
    vec![
        PartSpec {
            in_table: false,
            offset: Some(32 * KIB),
            ..seeded_part("uboot", "linux", SizeReq::Exact(256 * KIB))
        },
        PartSpec {
            bootable: true,
            ..seeded_part("boot", "esp", SizeReq::Exact(16 * MIB))
        },
        seeded_part(
            "root-a",
            "root-arm64",
            SizeReq::Auto {
                min: 20 * MIB,
                headroom: Headroom::Percent(10),
            },
        ),
        PartSpec {
            gpt_attrs: 1 << 60,
            ..seeded_part("config", "linux", SizeReq::Exact(4 * MIB))
        },
        seeded_part("data", "home", SizeReq::Fill),
    ]
}

/// sfdisk's view of the partitions in `plan` matches the plan field by field.
fn check_sfdisk_gpt(plan: &Plan, json: &Value) {
    let table = &json["partitiontable"];
    assert_eq!(table["label"], "gpt");
    assert_eq!(
        table["id"].as_str().unwrap().to_lowercase(),
        plan.disk_guid.to_string()
    );
    let ss = u64::from(plan.sector_size);
    let g = plan.gpt.unwrap();
    assert_eq!(table["firstlba"], g.first_usable_lba);
    assert_eq!(table["lastlba"], g.last_usable_lba);
    let listed = table["partitions"].as_array().unwrap();
    let ours: Vec<_> = plan.partitions.iter().filter(|p| p.in_table).collect();
    assert_eq!(listed.len(), ours.len());
    for (got, p) in listed.iter().zip(ours) {
        assert_eq!(got["start"], p.start / ss, "{}", p.name);
        assert_eq!(got["size"], p.size / ss, "{}", p.name);
        assert_eq!(
            got["type"].as_str().unwrap().to_lowercase(),
            p.part_type.gpt.unwrap().to_string()
        );
        assert_eq!(
            got["uuid"].as_str().unwrap().to_lowercase(),
            p.uuid.to_string()
        );
        assert_eq!(got["name"], p.name.as_str());
        assert!(got["node"]
            .as_str()
            .unwrap()
            .ends_with(&p.number.unwrap().to_string()));
        let attrs = got["attrs"].as_str().unwrap_or("");
        for (bit, text) in [(2, "LegacyBIOSBootable"), (60, "GUID:60")] {
            assert_eq!(
                p.gpt_attrs & (1 << bit) != 0,
                attrs.contains(text),
                "{}: {attrs}",
                p.name
            );
        }
    }
}

#[test]
fn gpt_512_is_read_back_by_sfdisk_sgdisk_and_fdisk() {
    let plan = allocate(&seeded_disk(TableKind::Gpt, 64 * MIB, 512), &gpt_parts()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("gpt512.img");
    write_tables(&plan, &img);
    let img = img.to_str().unwrap();
    if have("sfdisk") {
        let json: Value = serde_json::from_str(&run(&["sfdisk", "--json", img])).unwrap();
        check_sfdisk_gpt(&plan, &json);
    }
    if have("sgdisk") {
        let out = run(&["sgdisk", "-v", img]);
        assert!(out.contains("No problems found"), "{out}");
    }
    if have("fdisk") {
        let out = run(&["fdisk", "-l", img]);
        assert!(out.contains("Disklabel type: gpt"), "{out}");
        assert!(!out.to_lowercase().contains("corrupt"), "{out}");
    }
}

/// A loop device with 4096-byte logical sectors over `img`, detached on drop;
/// `None` where loop devices are not available (unprivileged containers).
struct Loop(String);

impl Loop {
    fn attach(img: &str) -> Option<Loop> {
        let out = Command::new("losetup")
            .args(["-f", "--show", "-b", "4096", img])
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "note: no loop device ({}), checking with fdisk -b 4096 only",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Loop(
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        ))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

#[test]
fn gpt_4096_is_read_back_by_fdisk_and_through_a_4k_loop_device() {
    let plan = allocate(&seeded_disk(TableKind::Gpt, 64 * MIB, 4096), &gpt_parts()).unwrap();
    let g = plan.gpt.unwrap();
    // 128 entries of 128 bytes fill 4 sectors of 4096 bytes: LBA 2..5.
    assert_eq!(
        (g.array_offset, g.array_size, g.first_usable_lba),
        (8192, 16384, 6)
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gpt4096.img");
    write_tables(&plan, &path);
    let img = path.to_str().unwrap();
    if have("fdisk") {
        let out = run(&["fdisk", "-b", "4096", "-l", img]);
        assert!(out.contains("Disklabel type: gpt"), "{out}");
        assert!(
            out.contains("Sector size (logical/physical): 4096 bytes"),
            "{out}"
        );
        let starts: Vec<String> = plan
            .partitions
            .iter()
            .filter(|p| p.in_table)
            .map(|p| format!("{} {}", p.start / 4096, p.end() / 4096 - 1))
            .collect();
        for line in starts {
            let found = out.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 2 && format!("{} {}", f[1], f[2]) == line
            });
            assert!(found, "{line} not in\n{out}");
        }
    }
    // sfdisk 2.38 and sgdisk read the sector size from the device.
    if !(have("sfdisk") && have("sgdisk") && have("losetup")) {
        return;
    }
    let Some(dev) = Loop::attach(img) else { return };
    let json: Value = serde_json::from_str(&run(&["sfdisk", "--json", &dev.0])).unwrap();
    assert_eq!(json["partitiontable"]["sectorsize"], 4096);
    check_sfdisk_gpt(&plan, &json);
    let out = run(&["sgdisk", "-v", &dev.0]);
    assert!(out.contains("No problems found"), "{out}");
}

/// Seven partitions on MBR: three primaries, an extended partition, four
/// logical ones each after its EBR.
fn mbr_parts() -> Vec<PartSpec> {
    let mut parts = vec![PartSpec {
        bootable: true,
        ..seeded_part("boot", "fat32", SizeReq::Exact(8 * MIB))
    }];
    for (name, ty) in [
        ("root-a", "linux"),
        ("root-b", "linux"),
        ("config", "linux"),
        ("swap", "swap"),
        ("overlay", "linux"),
    ] {
        parts.push(seeded_part(name, ty, SizeReq::Exact(4 * MIB)));
    }
    parts.push(seeded_part("data", "0xda", SizeReq::Fill));
    parts
}

#[test]
fn mbr_with_logical_partitions_is_read_back_by_sfdisk_and_fdisk() {
    let parts = mbr_parts();
    let plan = allocate(&seeded_disk(TableKind::Mbr, 64 * MIB, 512), &parts).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mbr.img");
    write_tables(&plan, &path);
    let img = path.to_str().unwrap();
    if have("sfdisk") {
        let json: Value = serde_json::from_str(&run(&["sfdisk", "--json", img])).unwrap();
        let table = &json["partitiontable"];
        assert_eq!(table["label"], "dos");
        assert_eq!(table["id"], format!("0x{:08x}", plan.mbr_signature));
        let listed = table["partitions"].as_array().unwrap();
        // 3 primaries, the extended one, 4 logical.
        assert_eq!(listed.len(), 8, "{json:#}");
        let (ext_start, ext_size) = plan.extended.unwrap();
        assert_eq!(listed[3]["start"], ext_start / 512);
        assert_eq!(listed[3]["size"], ext_size / 512);
        assert_eq!(listed[3]["type"], "f");
        let ours = plan.partitions.iter();
        for (got, p) in listed.iter().filter(|g| g["type"] != "f").zip(ours) {
            assert_eq!(got["start"], p.start / 512, "{}", p.name);
            assert_eq!(got["size"], p.size / 512, "{}", p.name);
            let byte = p.part_type.mbr.unwrap();
            assert_eq!(got["type"], format!("{byte:x}"), "{}", p.name);
            let node = got["node"].as_str().unwrap();
            assert!(node.ends_with(&p.number.unwrap().to_string()), "{node}");
            assert_eq!(got["bootable"].as_bool().unwrap_or(false), p.bootable);
        }
        // sfdisk's own consistency check of the EBR chain.
        let out = run(&["sfdisk", "--verify", img]);
        assert!(!out.to_lowercase().contains("overlap"), "{out}");
    }
    if have("fdisk") {
        let out = run(&["fdisk", "-l", img]);
        assert!(out.contains("Disklabel type: dos"), "{out}");
        assert!(out.contains(&format!("{}7", img)), "{out}");
        for bad in [
            "overlap",
            "does not start on physical sector boundary",
            "doesn't end",
        ] {
            assert!(!out.contains(bad), "{out}");
        }
    }
}

/// A hybrid table mirroring boot and config, its MBR as sfdisk lists it.
fn hybrid_mbr(protective_first: bool) -> (Plan, Vec<Value>, tempfile::TempDir) {
    let mut parts = gpt_parts();
    parts[1].in_mbr = true; // boot
    parts[3].in_mbr = true; // config
    let disk = DiskSpec {
        protective_first,
        ..seeded_disk(TableKind::Hybrid, 64 * MIB, 512)
    };
    let plan = allocate(&disk, &parts).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hybrid.img");
    write_tables(&plan, &path);
    let img = path.to_str().unwrap();
    let json: Value = serde_json::from_str(&run(&["sfdisk", "--json", img])).unwrap();
    check_sfdisk_gpt(&plan, &json);
    // The MBR side, read as a DOS table.
    let json: Value =
        serde_json::from_str(&run(&["sfdisk", "--json", "--label-nested", "dos", img])).unwrap();
    let listed = json["partitiontable"]["partitions"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{json:#}");
    if have("sgdisk") {
        let out = run(&["sgdisk", "-v", img]);
        assert!(out.contains("No problems found"), "{out}");
    }
    (plan, listed.clone(), dir)
}

fn assert_mirrors(plan: &Plan, listed: &[Value]) {
    let boot = &plan.partitions[1];
    assert_eq!(listed[0]["start"], boot.start / 512);
    assert_eq!(listed[0]["size"], boot.size / 512);
    assert_eq!(listed[0]["type"], "ef");
    assert_eq!(listed[0]["bootable"], true);
    assert_eq!(listed[1]["start"], plan.partitions[3].start / 512);
    assert_eq!(listed[1]["type"], "83");
}

#[test]
fn hybrid_mbr_lists_the_mirrors_first_and_0xee_last_as_genimage_does() {
    if !have("sfdisk") {
        return;
    }
    // Firmware that loads MBR partition 1 (Raspberry Pi, SoC boot ROMs)
    // finds the boot partition there.
    let (plan, listed, _dir) = hybrid_mbr(false);
    assert_mirrors(&plan, &listed);
    assert!(listed[0]["node"].as_str().unwrap().ends_with("hybrid.img1"));
    assert_eq!(listed[2]["type"], "ee");
    assert_eq!(listed[2]["start"], 1);
    assert_eq!(listed[2]["size"], 33, "LBA 1 to the end of the GPT array");
    assert!(listed[2]["node"].as_str().unwrap().ends_with("hybrid.img3"));
}

#[test]
fn hybrid_mbr_with_protective_entry_first_is_sgdisks_order() {
    if !have("sfdisk") {
        return;
    }
    let (plan, listed, _dir) = hybrid_mbr(true);
    assert_eq!(listed[0]["type"], "ee");
    assert_eq!(listed[0]["start"], 1);
    assert_mirrors(&plan, &listed[1..]);
}

#[test]
fn gpt_without_backup_and_with_a_protective_signature_reads_back() {
    if !have("sfdisk") {
        return;
    }
    let disk = DiskSpec {
        gpt_backup: false,
        mbr_signature: 0x5eed_0001,
        ..seeded_disk(TableKind::Gpt, 64 * MIB, 512)
    };
    let plan = allocate(&disk, &gpt_parts()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nobackup.img");
    write_tables(&plan, &path);
    let img = path.to_str().unwrap();
    let json: Value = serde_json::from_str(&run(&["sfdisk", "--json", img])).unwrap();
    check_sfdisk_gpt(&plan, &json);
    // Nothing at the end of the disk; the primary names itself as alternate.
    let file = File::open(&path).unwrap();
    let mut tail = vec![0u8; 33 * 512];
    file.read_exact_at(&mut tail, plan.disk_size - 33 * 512)
        .unwrap();
    assert!(tail.iter().all(|&b| b == 0));
    let mut header = [0u8; 92];
    file.read_exact_at(&mut header, 512).unwrap();
    assert_eq!(u64::from_le_bytes(header[32..40].try_into().unwrap()), 1);
    let json: Value =
        serde_json::from_str(&run(&["sfdisk", "--json", "--label-nested", "dos", img])).unwrap();
    assert_eq!(json["partitiontable"]["id"], "0x5eed0001");
}

/// An sfdisk script for the same layout as `plan` (512-byte sectors).
fn sfdisk_script(plan: &Plan) -> String {
    let mut script = String::new();
    let mut entries: Vec<(u32, String)> = Vec::new();
    if let Some(g) = plan.gpt {
        // sfdisk would start the usable area at 1 MiB by default; ours
        // starts right after the array, as sgdisk's does.
        script.push_str(&format!(
            "label: gpt\nlabel-id: {}\nfirst-lba: {}\nlast-lba: {}\ntable-length: {}\n\n",
            plan.disk_guid, g.first_usable_lba, g.last_usable_lba, g.entries
        ));
    } else {
        script.push_str(&format!(
            "label: dos\nlabel-id: 0x{:08x}\n\n",
            plan.mbr_signature
        ));
        if let Some((start, size)) = plan.extended {
            entries.push((
                4,
                format!("start={}, size={}, type=f", start / 512, size / 512),
            ));
        }
    }
    for p in plan.partitions.iter().filter(|p| p.in_table) {
        let mut line = format!("start={}, size={}", p.start / 512, p.size / 512);
        if plan.gpt.is_some() {
            line.push_str(&format!(
                ", type={}, uuid={}, name=\"{}\"",
                p.part_type.gpt.unwrap(),
                p.uuid,
                p.name
            ));
            let attrs: Vec<String> = (0..64)
                .filter(|b| p.gpt_attrs & (1 << b) != 0)
                .map(|b| match b {
                    2 => "LegacyBIOSBootable".to_string(),
                    b => format!("GUID:{b}"),
                })
                .collect();
            if !attrs.is_empty() {
                line.push_str(&format!(", attrs=\"{}\"", attrs.join(" ")));
            }
        } else {
            line.push_str(&format!(", type={:x}", p.part_type.mbr.unwrap()));
            if p.bootable {
                line.push_str(", bootable");
            }
        }
        entries.push((p.number.unwrap(), line));
    }
    entries.sort();
    for (_, line) in entries {
        script.push_str(&line);
        script.push('\n');
    }
    script
}

/// Has sfdisk write the layout of `plan` into a fresh sparse file and
/// compares every table region we encode with the bytes sfdisk wrote there.
fn assert_same_bytes_as_sfdisk(plan: &Plan) {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sfdisk.img");
    File::create(&path)
        .unwrap()
        .set_len(plan.disk_size)
        .unwrap();
    let script = sfdisk_script(plan);
    let mut child = Command::new("sfdisk")
        .args([
            "--quiet",
            "--no-reread",
            "--no-tell-kernel",
            path.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sfdisk failed on\n{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = File::open(&path).unwrap();
    for (offset, ours) in encode(plan) {
        let mut buf = vec![0u8; ours.len()];
        theirs.read_exact_at(&mut buf, offset).unwrap();
        let diff: Vec<(usize, u8, u8)> = (0..buf.len())
            .filter(|&k| buf[k] != ours[k])
            .take(8)
            .map(|k| (k, buf[k], ours[k]))
            .collect();
        assert!(
            diff.is_empty(),
            "bytes at {offset:#x} differ from sfdisk's (at, theirs, ours): {diff:?} for\n{script}"
        );
    }
}

#[test]
fn tables_are_byte_identical_to_what_sfdisk_writes() {
    if !have("sfdisk") {
        return;
    }
    let gpt = allocate(&seeded_disk(TableKind::Gpt, 64 * MIB, 512), &gpt_parts()).unwrap();
    assert_same_bytes_as_sfdisk(&gpt);
    let mbr = allocate(&seeded_disk(TableKind::Mbr, 64 * MIB, 512), &mbr_parts()).unwrap();
    assert_same_bytes_as_sfdisk(&mbr);
    // Four primaries and CHS beyond cylinder 1023 (a 16 GiB disk).
    let mut parts: Vec<PartSpec> = (0..3)
        .map(|k| seeded_part(&format!("p{k}"), "linux", SizeReq::Exact(4 * MIB)))
        .collect();
    parts.push(PartSpec {
        offset: Some(12 << 30),
        ..seeded_part("far", "swap", SizeReq::Fill)
    });
    let big = allocate(&seeded_disk(TableKind::Mbr, 16 << 30, 512), &parts).unwrap();
    assert_same_bytes_as_sfdisk(&big);
}
