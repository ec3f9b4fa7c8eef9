SUMMARY = "Build disk images for embedded Linux devices from one YAML description"
DESCRIPTION = "image-composer builds sparse disk images (GPT/MBR, vfat, ext4, \
initramfs, A/B slots, read-only root with overlay) and their .bmap from one \
declarative YAML file, rootless and reproducibly. The composer image type \
(classes-recipe/image_types_composer.bbclass) runs image-composer-native."
SECTION = "devel"
# The workspace manifest declares the licence (license = "MIT OR Apache-2.0");
# tests/integration/run.sh checks that this line and checksum still match.
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=8;endline=8;md5=86b31c7756a1a7962f28b62856ed4f05"

# Where the source comes from:
# - by default, the image-composer source tree this layer lives in, built in
#   place with externalsrc (which keeps the crate:// entries and fetches only
#   those; it hashes the tree with "git add -A" into a scratch index, as
#   devtool does, so the tree's .git must be writable by the build user);
# - for a release, set IMAGE_COMPOSER_GIT_URI (e.g. in a bbappend or
#   local.conf) to "git://<host>/<path>.git;protocol=https;branch=main" and
#   SRCREV to the release commit; Cargo.lock and this layer's crates.inc must
#   then come from the same commit (see README).
IMAGE_COMPOSER_GIT_URI ??= ""
SRC_URI = "${IMAGE_COMPOSER_GIT_URI}"
inherit externalsrc
EXTERNALSRC ?= "${@'' if d.getVar('IMAGE_COMPOSER_GIT_URI') else os.path.dirname(d.getVar('IMAGE_COMPOSER_LAYERDIR'))}"
# Never write oe-workdir/oe-logs symlinks into the source tree.
EXTERNALSRC_SYMLINKS = ""

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
