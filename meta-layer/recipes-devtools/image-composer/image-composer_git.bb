SUMMARY = "Build disk images for embedded Linux devices from one YAML description"
DESCRIPTION = "image-composer builds sparse disk images (GPT/MBR, vfat, ext4, \
initramfs, A/B slots, read-only root with overlay) and their .bmap from one \
declarative YAML file, rootless and reproducibly. The composer image type \
(classes-recipe/image_types_composer.bbclass) runs image-composer-native."
HOMEPAGE = "https://github.com/image-composer/image-composer"
SECTION = "devel"

# SRC_URI, SRCREV, PV, LICENSE and LIC_FILES_CHKSUM.
require image-composer-source.inc

inherit cargo cargo-update-recipe-crates

# The crates of Cargo.lock as crate:// entries; regenerate with
# meta-layer/scripts/gen-crates-inc.py (or bitbake -c update_crates).
require ${BPN}-crates.inc

# image-composer itself; the workspace root holds Cargo.lock.
CARGO_MANIFEST_PATH = "${S}/composer/Cargo.toml"
CARGO_LOCK_PATH = "${S}/Cargo.lock"

# The bundled liblzma's fast paths, which xz's own configure would enable:
# the same defines as the tree's .cargo/config.toml, which cargo does not
# read here (it runs in ${B}). Without them squashfs xz takes about
# 1.5 times as long; the bytes are the same.
LIBLZMA_FAST_CFLAGS = "-DTUKLIB_FAST_UNALIGNED_ACCESS=1 -DHAVE___BUILTIN_BSWAPXX=1 -DHAVE___BUILTIN_ASSUME_ALIGNED=1"
CFLAGS:append:x86-64 = " ${LIBLZMA_FAST_CFLAGS} -DHAVE_IMMINTRIN_H=1 -DHAVE__MM_MOVEMASK_EPI8=1 -DHAVE_CPUID_H=1 -DHAVE_USABLE_CLMUL=1"
CFLAGS:append:aarch64 = " ${LIBLZMA_FAST_CFLAGS}"

# The binary finds its layers in <prefix>/share/image-composer/layers.
do_install:append() {
	install -d ${D}${datadir}/image-composer
	cp -R --no-preserve=ownership ${S}/layers ${D}${datadir}/image-composer/layers
}

BBCLASSEXTEND = "native"
