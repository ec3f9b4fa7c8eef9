SUMMARY = "Example: core-image-minimal on an A/B disk with a read-only root and an overlay"
DESCRIPTION = "Builds core-image-minimal and composes it with image-composer into \
a GPT disk: vfat boot (kernel + initramfs), two root slots holding the same ext4 \
root filesystem, config, overlay and data partitions. The description is \
files/composer/composer-ab-image.qemux86-64.yaml (found like a .wks file)."
LICENSE = "MIT"

require recipes-core/images/core-image-minimal.bb

IMAGE_CLASSES += "image_types_composer"
IMAGE_FSTYPES = "ext4 composer composer.zst"
# The YAML takes the root filesystem OE made: ${IMGDEPLOYDIR}/${IMAGE_NAME}.ext4
COMPOSER_IMAGE_TYPEDEP = "ext4"
# Read-only root: no journal needed, and keep it small.
IMAGE_ROOTFS_EXTRA_SPACE = "0"

COMPATIBLE_MACHINE = "qemux86-64"
