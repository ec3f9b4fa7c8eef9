//! Linux swap space (`fs: { type: swap }`): the version-1 signature that
//! `mkswap` writes and `swapon` looks for, with a label and a UUID.
//!
//! Format (util-linux `include/swapheader.h`, the kernel's `union
//! swap_header` in `include/linux/swap.h`): the first page holds 1024
//! bytes of boot bits (zeros), the header at offset 1024 (version 1, the
//! last usable page, no bad pages, UUID, a label of up to 16 bytes) and the
//! magic `SWAPSPACE2` in the page's last 10 bytes. The header is written
//! little-endian, as mkswap writes it on every machine this project builds
//! for; the kernel also reads a byte-swapped header. The page size is the
//! target kernel's (`page-size`, default 4KiB): a kernel refuses a swap
//! area made for another page size.
//!
//! Only the first page is written and mapped: swap space holds nothing
//! until the kernel swaps, so the rest stays a hole of the image and is
//! left out of the bmap (mkswap does not write it either).
//!
//! The UUID derives from the seed and the content's name when not given,
//! so the same description gives the same signature (mkswap makes a
//! random one).
//!
//! Rejected design: calling `mkswap` on the partition (a tool dependency
//! and a loop over a temporary file for 4 KiB of header).

use crate::fs::{BuildContext, Content};
use crate::ids::Uuid;
use crate::output::window::Window;
use anyhow::{bail, Context};
use zerocopy::little_endian::U32;
use zerocopy::{Immutable, IntoBytes, KnownLayout};

/// Where the header starts: after the boot bits (`SWAP_HEADER_OFFSET`).
const HEADER_OFFSET: usize = 1024;
/// The signature in the last bytes of the first page (version 1).
const MAGIC: &[u8; 10] = b"SWAPSPACE2";
/// The fewest pages mkswap accepts (`MIN_GOODPAGES`): the header page and
/// nine to swap to.
pub const MIN_PAGES: u64 = 10;
/// The longest label (`SWAP_LABEL_LENGTH`).
pub const LABEL_MAX: usize = 16;
/// The page sizes of the kernels this is for (4KiB; 16KiB and 64KiB on
/// some arm64, ppc64 and loongarch configurations).
pub const PAGE_SIZES: [u32; 3] = [4096, 16384, 65536];

/// The swap header at offset 1024 of the first page (the part before the
/// padding).
#[derive(IntoBytes, KnownLayout, Immutable, Clone, Default)]
#[repr(C)]
struct Header {
    /// 0x400: format version, 1.
    version: U32,
    /// 0x404: the last page the kernel may use (pages - 1).
    last_page: U32,
    /// 0x408: number of bad pages listed after the header; none.
    nr_badpages: U32,
    /// 0x40C: UUID, bytes in text order (as blkid prints it).
    uuid: [u8; 16],

    /// 0x41C: label, NUL-padded.
    volume_name: [u8; 16],
}
const _: () = assert!(std::mem::size_of::<Header>() == 44);

/// What a swap area is made of.
#[derive(Clone, Debug)]
pub struct SwapOptions {
    /// The content's name (derives the UUID).
    pub name: String,
    /// At most [`LABEL_MAX`] bytes; empty: none.
    pub label: String,
    /// Derived from the seed when `None`.
    pub uuid: Option<Uuid>,
    /// One of [`PAGE_SIZES`].
    pub page_size: u32,
}

/// A swap area, ready to be written into a window of any size from
/// [`Content::min_size`] up.
#[derive(Debug)]
pub struct SwapArea {
    page_size: u64,
    label: [u8; 16],
    uuid: Uuid,
}

/// Checks `opts` and derives what is not given.
pub fn prepare(opts: &SwapOptions, ctx: &BuildContext) -> anyhow::Result<SwapArea> {
    let name = &opts.name;
    if !PAGE_SIZES.contains(&opts.page_size) {
        bail!(
            "swap '{name}': page size {} is not one of 4096, 16384, 65536",
            opts.page_size
        );
    }
    if opts.label.len() > LABEL_MAX {
        bail!(
            "swap '{name}': label '{}' is {} bytes long; swap labels hold at most {LABEL_MAX}",
            opts.label,
            opts.label.len()
        );
    }
    let mut label = [0u8; 16];
    label[..opts.label.len()].copy_from_slice(opts.label.as_bytes());
    Ok(SwapArea {
        page_size: u64::from(opts.page_size),
        label,
        uuid: opts
            .uuid
            .unwrap_or_else(|| ctx.seed.uuid(&["swap", name, "uuid"])),
    })
}

impl SwapArea {
    /// The first page: boot bits, header, magic.
    fn first_page(&self, pages: u64) -> Vec<u8> {
        let header = Header {
            version: 1.into(),
            // The header's field is 32 bits; mkswap caps the area the same way.
            last_page: u32::try_from(pages - 1).unwrap_or(u32::MAX).into(),
            nr_badpages: 0.into(),
            uuid: self.uuid.0,
            volume_name: self.label,
        };
        let mut page = vec![0u8; self.page_size as usize];
        page[HEADER_OFFSET..HEADER_OFFSET + std::mem::size_of::<Header>()]
            .copy_from_slice(header.as_bytes());
        let magic_at = page.len() - MAGIC.len();
        page[magic_at..].copy_from_slice(MAGIC);
        page
    }
}

impl Content for SwapArea {
    fn min_size(&self) -> u64 {
        MIN_PAGES * self.page_size
    }

    fn write(&self, window: &mut Window<'_>) -> anyhow::Result<()> {
        let pages = window.len() / self.page_size;
        if pages < MIN_PAGES {
            bail!(
                "a swap area of {} bytes is smaller than {MIN_PAGES} pages of {} bytes",
                window.len(),
                self.page_size
            );
        }
        window
            .write_at(&self.first_page(pages), 0)
            .context("writing the swap signature")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Seed;

    #[test]
    fn the_first_page_is_mkswaps() {
        let ctx = BuildContext {
            seed: Seed("s".into()),
            source_date_epoch: None,
        };
        let opts = SwapOptions {
            name: "swap".into(),
            label: "sw".into(),
            uuid: Uuid::parse("0fc63daf-8483-4772-8e79-3d69d8477de4"),
            page_size: 4096,
        };
        let page = prepare(&opts, &ctx).unwrap().first_page(256);
        assert_eq!(&page[4086..], b"SWAPSPACE2");
        assert!(page[..1024].iter().all(|&b| b == 0));
        assert_eq!(&page[1024..1036], &[1, 0, 0, 0, 255, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(page[1036..1040], [0x0f, 0xc6, 0x3d, 0xaf]);
        assert_eq!(&page[1052..1054], b"sw");
        let long = SwapOptions {
            label: "x".repeat(17),
            ..opts
        };
        assert!(prepare(&long, &ctx).is_err());
    }
}
