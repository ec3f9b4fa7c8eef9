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

# The binary finds its layers in <prefix>/share/image-composer/layers.
do_install:append() {
	install -d ${D}${datadir}/image-composer
	cp -R --no-preserve=ownership ${S}/layers ${D}${datadir}/image-composer/layers
}

BBCLASSEXTEND = "native"
