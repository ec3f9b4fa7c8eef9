#!/usr/bin/env bash
# Runs the IMAGE_CMD:composer body of meta-layer's image_types_composer.bbclass
# the way bitbake's do_image_composer would for the example image
# composer-ab-image on qemux86-64, without bitbake: bitbake's ${VARS} are
# replaced by a fake deploy/work tree under BASE filled with the given
# inputs, and COMPOSER_VARS and COMPOSER_IMAGE_NAME taken from
# composer-ab-image.bb (the kernel version: MODULES_DIR's name). Used by tests/integration/run.sh (checks the
# image with real tools) and tests/boot/run.sh (boots it).
#
#   yocto-image-cmd.sh BASE KERNEL MODULES_DIR BUSYBOX EFI_LOADER ROOTFS_EXT4
#
# KERNEL is deployed as bzImage, MODULES_DIR (a lib/modules/<version>
# directory) appears in IMAGE_ROOTFS, BUSYBOX as busybox-static and
# EFI_LOADER as systemd-bootx64.efi in DEPLOY_DIR_IMAGE, ROOTFS_EXT4 as
# ${IMAGE_NAME}.ext4 in IMGDEPLOYDIR. Prints the deployed image's path
# (${IMGDEPLOYDIR}/${IMAGE_NAME}.composer) on success; the task's output
# goes to stderr. Environment: IMAGE_COMPOSER (the binary, required),
# SOURCE_DATE_EPOCH (exported to the task, as bitbake.conf does),
# COMPOSER_CONFIG_PATH (default: the example's; empty = not found).
set -euo pipefail

[ $# = 6 ] || { echo "usage: $0 BASE KERNEL MODULES_DIR BUSYBOX EFI_LOADER ROOTFS_EXT4" >&2; exit 2; }
base="$1" kernel="$2" modules="$3" busybox="$4" efi="$5" ext4="$6"
TOP="$(cd "$(dirname "$0")/../.." && pwd)"
LAYER="${TOP}/meta-layer"
name="composer-ab-image-qemux86-64.rootfs-20231114221320"
link="composer-ab-image-qemux86-64.rootfs"
deploy="${base}/deploy/images/qemux86-64"
imgdeploy="${base}/work/deploy-composer-ab-image-image-complete"
rootfs="${base}/work/rootfs"
kver="$(basename "${modules}")"

rm -rf "${base}"
mkdir -p "${deploy}" "${imgdeploy}" "${rootfs}/lib/modules" "${base}/sysroot/usr/bin"
ln -s "${modules}" "${rootfs}/lib/modules/${kver}"
cp "${kernel}" "${deploy}/bzImage"
cp "${busybox}" "${deploy}/busybox-static"
cp "${efi}" "${deploy}/systemd-bootx64.efi"
cp --sparse=always "${ext4}" "${imgdeploy}/${name}.ext4"
ln -s "${IMAGE_COMPOSER:?set IMAGE_COMPOSER to the binary}" "${base}/sysroot/usr/bin/image-composer"

# A "NAME = value" of the example recipe, as written (bitbake expands it below).
recipe_value() {
	sed -n "s/^$1 = \"\(.*\)\"\$/\1/p" "${LAYER}/recipes-core/images/composer-ab-image.bb"
}

# The body with bitbake's ${NAME}s replaced; a ${NAME} the table lacks is an error.
body="$(python3 - "${LAYER}/classes-recipe/image_types_composer.bbclass" \
	"COMPOSER_CONFIG_PATH=${COMPOSER_CONFIG_PATH-${LAYER}/files/composer/composer-ab-image.qemux86-64.yaml}" \
	"COMPOSER_CONFIGS=composer-ab-image.qemux86-64.yaml composer-ab-image.yaml" \
	"COMPOSER_SEARCH_PATH=${LAYER}/files/composer" \
	"WORKDIR=${base}/work" "IMGDEPLOYDIR=${imgdeploy}" "DEPLOY_DIR_IMAGE=${deploy}" \
	"IMAGE_ROOTFS=${rootfs}" "IMAGE_NAME=${name}" "IMAGE_LINK_NAME=${link}" \
	"IMAGE_BASENAME=composer-ab-image" "MACHINE=qemux86-64" "KERNEL_IMAGETYPE=bzImage" \
	"INITRAMFS_FSTYPES=cpio.gz" "COMPOSER_KERNEL_VERSION=${kver}" \
	"COMPOSER_VARS=$(recipe_value COMPOSER_VARS)" "COMPOSER_IMAGE_NAME=$(recipe_value COMPOSER_IMAGE_NAME)" \
	"COMPOSER_LAYER_DIRS=${TOP}/layers" "COMPOSER_EXTRA_ARGS=" \
	"COMPOSER_BUNDLE_KEY=" "COMPOSER_BUNDLE_VERSION=" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"^IMAGE_CMD:composer \(\) \{\n(.*?)^\}", text, re.M | re.S)
if not m:
    sys.exit("no 'IMAGE_CMD:composer () {' ... '}' in " + sys.argv[1])
values = dict(a.split("=", 1) for a in sys.argv[2:])
def sub(mo):
    name = mo.group(1)
    if name not in values:
        sys.exit("IMAGE_CMD uses ${%s}, which the test does not set" % name)
    return values[name]
# bitbake expands ${NAME} (NAME: letters, digits, _-+./~:), also inside
# values (the recipe's COMPOSER_VARS); shell's ${x#y} stays.
body, prev = m.group(1), None
while body != prev:
    body, prev = re.sub(r"\$\{([A-Za-z0-9_+\-./~:]+)\}", sub, body), body
print(body)
PY
)"

# A shell like bitbake's task runner: bbfatal exits; SOURCE_DATE_EPOCH is exported.
(cd "${base}/work" && env -i PATH="${base}/sysroot/usr/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
	SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-0}" sh -e -c '
bbfatal() { echo "ERROR: $*" >&2; exit 1; }
bbwarn() { echo "WARNING: $*" >&2; }
bbnote() { echo "NOTE: $*"; }
'"${body}") >&2
echo "${imgdeploy}/${name}.composer"
