//! Builds one ext4 image from a directory with the native writer; used to
//! compare with `mke2fs -d` on the bench-ab rootfs.
//!
//! `cargo run --release --example ext4_image -- TREE IMAGE SIZE` where SIZE
//! is a byte size ("1536MiB") or "auto". Ownership: everything root.

use anyhow::Context;
use composer::fs::ext4::{prepare, Ext4Options};
use composer::fs::tree::{scan, OwnerChoice, TreeOptions};
use composer::fs::{BuildContext, Content};
use composer::ids::Seed;
use composer::output::window::Window;
use composer::units::ByteSize;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, tree, image, size] = args.as_slice() else {
        anyhow::bail!("usage: ext4_image TREE IMAGE SIZE|auto");
    };
    let ctx = BuildContext {
        seed: Seed("bench".into()),
        source_date_epoch: Some(1_700_000_000),
    };
    let t0 = Instant::now();
    let mut tree = scan(tree.as_ref(), &TreeOptions::default(), &ctx)?;
    // The default choice: everything root.
    tree.apply_owners(&OwnerChoice::default(), "ext4_image");
    let t1 = Instant::now();
    let fs_opts = Ext4Options {
        reserved_percent: 0.0,
        ..Default::default()
    };
    let fs = prepare(&fs_opts, Some(&tree), &ctx)?;
    let t2 = Instant::now();
    let size = if size == "auto" {
        fs.min_size()
    } else {
        size.parse::<ByteSize>()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("parsing SIZE")?
            .bytes()
    };
    let file = std::fs::File::create(image).with_context(|| format!("creating '{image}'"))?;
    file.set_len(size)?;
    let mut w = Window::new(&file, 0, size);
    fs.write(&mut w)?;
    let t3 = Instant::now();
    eprintln!(
        "scan {:?}, prepare {:?}, write {:?}; {} inodes, min size {}, mapped {} bytes",
        t1 - t0,
        t2 - t1,
        t3 - t2,
        fs.inodes_used(),
        fs.min_size(),
        w.mapped().total()
    );
    Ok(())
}
