//! `outputs: [simg, qcow2]`: the Android sparse image must expand with
//! `simg2img` to the raw image byte for byte, and the qcow2 must pass
//! `qemu-img check`, equal the raw image (`qemu-img compare`) and keep its
//! holes (`qemu-img map`); both written in the same build as the raw image,
//! reproducibly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use composer::output::qcow2::write_qcow2;
use composer::output::simg::write_simg;
use composer::output::window::{Extents, Window};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{composer, have_all, run};

/// A sparse image of `size` bytes: noise at the start, across a 64 KiB
/// cluster border, past the first 512 MiB (a second qcow2 L2 table) when
/// the image is that large, a mapped zero range, and the last bytes.
fn make_image(dir: &Path, size: u64) -> (PathBuf, File, Extents) {
    let path = dir.join(format!("sd-{size}.img"));
    let file = support::sparse_file(&path, size);
    let mut w = Window::new(&file, 0, size);
    let mut x: u32 = 7;
    let noise: Vec<u8> = (0..200_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    w.write_at(&noise, 0).unwrap();
    w.write_at(&noise[..5000], 3 * 65536 - 2000).unwrap();
    if size > 600 << 20 {
        w.write_at(&noise[..70_000], (512 << 20) + 4097).unwrap();
    }
    w.zero(2 << 20, 300_000).unwrap();
    w.write_at(&noise[..333], size - 333).unwrap();
    let mapped = w.into_mapped();
    (path, file, mapped)
}

/// `qemu-img check` passes and reports this many allocated clusters.
fn qcow2_allocated_clusters(qcow2: &Path) -> u64 {
    let check = run(Command::new("qemu-img")
        .args(["check", "--output=json", "-f", "qcow2"])
        .arg(qcow2));
    let v: serde_json::Value = serde_json::from_str(&check).unwrap();
    assert_eq!(v["check-errors"], 0, "{check}");
    assert!(
        v.get("corruptions").is_none() && v.get("leaks").is_none(),
        "{check}"
    );
    v["allocated-clusters"].as_u64().unwrap()
}

/// The bytes of the mapped ranges rounded outwards to `unit`.
fn rounded(mapped: &Extents, unit: u64, size: u64) -> u64 {
    mapped.to_blocks(unit, size.div_ceil(unit)).total() * unit
}

#[test]
fn simg2img_and_qemu_img_read_back_the_image() {
    if !have_all(&["simg2img", "qemu-img"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 4 KiB blocks; 512-byte blocks (size not a multiple of 4 KiB); a
    // qcow2 with two L2 tables.
    for size in [(40 << 20) as u64, (40 << 20) + 512 * 3, (700 << 20) + 512] {
        let (path, file, mapped) = make_image(dir.path(), size);
        let image = fs::read(&path).unwrap();

        let simg = dir.path().join("sd.simg");
        let _ = fs::remove_file(&simg);
        write_simg(
            &file,
            size,
            &mapped,
            &File::create(&simg).unwrap(),
            "sd.simg",
        )
        .unwrap();
        let back = dir.path().join("back.img");
        run(Command::new("simg2img").arg(&simg).arg(&back));
        assert!(
            fs::read(&back).unwrap() == image,
            "simg2img of {size} bytes differs"
        );
        let simg_len = fs::metadata(&simg).unwrap().len();
        assert!(
            simg_len <= rounded(&mapped, 4096, size) + 4096,
            "{simg_len}-byte simg for {} mapped bytes",
            mapped.total()
        );

        let qcow2 = dir.path().join("sd.qcow2");
        let _ = fs::remove_file(&qcow2);
        write_qcow2(
            &file,
            size,
            &mapped,
            &File::create(&qcow2).unwrap(),
            "sd.qcow2",
        )
        .unwrap();
        run(Command::new("qemu-img")
            .args(["check", "-f", "qcow2"])
            .arg(&qcow2));
        run(Command::new("qemu-img")
            .args(["compare", "-f", "raw", "-F", "qcow2"])
            .arg(&path)
            .arg(&qcow2));
        let info = run(Command::new("qemu-img")
            .args(["info", "--output=json"])
            .arg(&qcow2));
        let info: serde_json::Value = serde_json::from_str(&info).unwrap();
        assert_eq!(info["virtual-size"].as_u64(), Some(size));
        assert_eq!(info["format"], "qcow2");
        // Holes kept: only clusters with a mapped byte are allocated.
        assert_eq!(
            qcow2_allocated_clusters(&qcow2) * 65536,
            rounded(&mapped, 65536, size)
        );
    }
}

/// A GPT image with a vfat and an ext4 partition, all outputs.
fn description(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("hello"), "hello\n").unwrap();
    let path = dir.join("board.yaml");
    fs::write(
        &path,
        "image: { name: t, size: 72MiB }\n\
         partitions:\n  \
           - { name: boot, size: 16MiB, fs: { type: vfat, files: { /hello: tree/hello } } }\n  \
           - { name: root, size: fill, fs: { type: ext4, from: tree } }\n\
         outputs: [raw, bmap, simg, qcow2]\n",
    )
    .unwrap();
    path
}

#[test]
fn a_build_writes_simg_and_qcow2_reproducibly() {
    if !have_all(&["simg2img", "qemu-img"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = description(dir.path());
    let plan = composer(&["plan", "--json", config.to_str().unwrap()]);
    assert!(plan.status.success());
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(
        plan["outputs"],
        serde_json::json!(["t.img", "t.img.bmap", "t.simg", "t.qcow2"])
    );

    let mut builds = Vec::new();
    for n in ["a", "b"] {
        let out = dir.path().join(n);
        let result = composer(&[
            "build",
            config.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(
            result.status.success(),
            "{}",
            String::from_utf8_lossy(&result.stderr)
        );
        builds.push(out);
    }
    for name in ["t.img", "t.simg", "t.qcow2"] {
        assert!(
            fs::read(builds[0].join(name)).unwrap() == fs::read(builds[1].join(name)).unwrap(),
            "{name} differs between two builds"
        );
    }
    let out = &builds[0];
    let back = dir.path().join("back.img");
    run(Command::new("simg2img").arg(out.join("t.simg")).arg(&back));
    assert!(fs::read(&back).unwrap() == fs::read(out.join("t.img")).unwrap());
    run(Command::new("qemu-img")
        .args(["check", "-f", "qcow2"])
        .arg(out.join("t.qcow2")));
    run(Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "qcow2"])
        .arg(out.join("t.img"))
        .arg(out.join("t.qcow2")));
    // The mostly empty ext4 partition stays mostly unallocated.
    assert!(qcow2_allocated_clusters(&out.join("t.qcow2")) * 65536 < 24 << 20);
}
