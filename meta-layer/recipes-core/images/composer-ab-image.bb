SUMMARY = "Example: core-image-minimal on a bootable A/B disk with a read-only root and an overlay"
DESCRIPTION = "Builds core-image-minimal and composes it with image-composer into \
a GPT disk that boots under UEFI: an ESP with systemd-boot, the kernel and the \
initramfs of image-composer's layers (ab-slots, readonly-rootfs-overlay), two \
root slots holding the same ext4 root filesystem, config and overlay \
partitions. The description is files/composer/composer-ab-image.qemux86-64.yaml \
(found like a .wks file)."
LICENSE = "MIT"

require recipes-core/images/core-image-minimal.bb

# ab-mark-good, ab-switch and ab-install in the root filesystem; the kernel
# modules the initramfs takes from ${IMAGE_ROOTFS}/lib/modules.
IMAGE_INSTALL:append = " composer-ab-slots ab-install kernel-modules"

IMAGE_CLASSES += "image_types_composer"
IMAGE_FSTYPES = "ext4 composer composer.zst"
# The YAML takes the root filesystem OE made: ${IMGDEPLOYDIR}/${IMAGE_NAME}.ext4
COMPOSER_IMAGE_TYPEDEP = "ext4"
# The disk is composer-ab.img (image.name); the layers' initramfs.img is
# deployed too, as ${IMAGE_NAME}.initramfs.img.
COMPOSER_IMAGE_NAME = "composer-ab"
# Read-only root: keep it small.
IMAGE_ROOTFS_EXTRA_SPACE = "0"

# The layers' initramfs needs a static busybox; the ESP gets systemd-boot.
do_image_composer[depends] += "composer-busybox-static:do_deploy systemd-boot:do_deploy virtual/kernel:do_shared_workdir"
# The kernel's version, read when the task runs (the kernel is built by
# then): excluded from the parse-time expansion of IMAGE_CMD.
COMPOSER_KERNEL_VERSION = "${@oe.utils.read_file('${STAGING_KERNEL_BUILDDIR}/kernel-abiversion')}"
IMAGE_CMD:composer[vardepsexclude] += "COMPOSER_KERNEL_VERSION"
COMPOSER_VARS = "BUSYBOX=${DEPLOY_DIR_IMAGE}/busybox-static KERNEL_VERSION=${COMPOSER_KERNEL_VERSION}"

COMPATIBLE_MACHINE = "qemux86-64"
