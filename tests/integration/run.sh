#!/usr/bin/env bash
# CI tests of the Buildroot and Yocto integrations, without Buildroot or
# bitbake: the shipped Buildroot post-image script and the shipped
# image_types_composer.bbclass IMAGE_CMD body run against fake BINARIES_DIR /
# deploy directories filled with real inputs (Debian's kernel, busybox-static,
# GRUB's EFI binary, an ext4 root filesystem made by mke2fs), on the shipped
# board descriptions; the images are checked with sfdisk, e2fsck, fsck.vfat,
# mtools and bmaptool. Also checks that the files generated from Cargo.lock
# and Cargo.toml (Yocto crates include, versions, licence checksum) are current.
#
# Prints one line per case and "N passed, M failed"; exits 1 on a failure.
# A missing tool skips its case with a note, or fails it when CI is set.
# Environment: IMAGE_COMPOSER (the binary; default target/release/image-composer,
# built if missing), KEEP=1 keeps the scratch directory.
set -uo pipefail

TOP="$(cd "$(dirname "$0")/../.." && pwd)"
EXTERNAL="${TOP}/br2-external"
LAYER="${TOP}/meta-layer"
export SOURCE_DATE_EPOCH=1700000000

# shellcheck source-path=SCRIPTDIR source=../harness.sh
. "${TOP}/tests/harness.sh"
scratch integration

# ------------------------------------------------------------ generated files

if python3 "${LAYER}/scripts/gen-crates-inc.py" --check > "${LOG}" 2>&1; then
	pass "yocto: image-composer-crates.inc matches Cargo.lock ($(grep -c 'crate://' "${LAYER}/recipes-devtools/image-composer/image-composer-crates.inc") crates)"
else
	fail "yocto: image-composer-crates.inc is out of date" "${LOG}"
fi

crate_version="$(sed -n 's/^version = "\(.*\)"/\1/p' "${TOP}/composer/Cargo.toml" | head -n 1)"
br_version="$(sed -n 's/^IMAGE_COMPOSER_VERSION = //p' "${EXTERNAL}/package/image-composer/image-composer.mk")"
SOURCE_INC="${LAYER}/recipes-devtools/image-composer/image-composer-source.inc"
recipe_pv="$(sed -n 's/^PV = "\(.*\)"/\1/p' "${SOURCE_INC}")"
installer_version="$(sed -n 's/^version = "\(.*\)"/\1/p' "${TOP}/ab-install/Cargo.toml" | head -n 1)"
br_installer_version="$(sed -n 's/^AB_INSTALL_VERSION = //p' "${EXTERNAL}/package/ab-install/ab-install.mk")"
if [ "${crate_version}" = "${br_version}" ] && [ "${crate_version}+git" = "${recipe_pv}" ] &&
	[ "${installer_version}" = "${br_installer_version}" ] && [ "${installer_version}+git" = "${recipe_pv}" ]; then
	pass "versions: composer/ and ab-install/Cargo.toml, image-composer.mk, ab-install.mk and the recipes' PV agree (${crate_version}, ${recipe_pv})"
else
	fail "versions: composer/Cargo.toml ${crate_version}, image-composer.mk ${br_version}, ab-install/Cargo.toml ${installer_version}, ab-install.mk ${br_installer_version}, recipe PV ${recipe_pv} (want ${crate_version}+git)"
fi

# The licence: Cargo's "MIT OR Apache-2.0", the two files at the root, and
# both systems' licence fields pointing at them with the right checksums.
lic_log=""
grep -qx 'license = "MIT OR Apache-2.0"' "${TOP}/Cargo.toml" || lic_log+="Cargo.toml: license is not \"MIT OR Apache-2.0\"; "
grep -q 'Permission is hereby granted, free of charge' "${TOP}/LICENSE-MIT" || lic_log+="LICENSE-MIT is not the MIT text; "
grep -q 'Apache License' "${TOP}/LICENSE-APACHE" && grep -q 'Version 2.0, January 2004' "${TOP}/LICENSE-APACHE" ||
	lic_log+="LICENSE-APACHE is not the Apache-2.0 text; "
grep -qx 'LICENSE = "MIT | Apache-2.0"' "${SOURCE_INC}" || lic_log+="recipe LICENSE is not \"MIT | Apache-2.0\"; "
grep -qx 'IMAGE_COMPOSER_LICENSE = MIT or Apache-2.0' "${EXTERNAL}/package/image-composer/image-composer.mk" &&
	grep -qx 'IMAGE_COMPOSER_LICENSE_FILES = LICENSE-MIT LICENSE-APACHE' "${EXTERNAL}/package/image-composer/image-composer.mk" ||
	lic_log+="Buildroot _LICENSE/_LICENSE_FILES do not name MIT or Apache-2.0 and LICENSE-MIT LICENSE-APACHE; "
# LIC_FILES_CHKSUM = "file://F;md5=X file://G;md5=Y" (continued lines joined).
lic_entries="$(sed -n '/^LIC_FILES_CHKSUM = /,/"$/p' "${SOURCE_INC}" | grep -o 'file://[^ "\\]*')"
for f in LICENSE-MIT LICENSE-APACHE; do
	echo "${lic_entries}" | grep -q "^file://${f};md5=$(md5sum < "${TOP}/${f}" | cut -d' ' -f1)\$" ||
		lic_log+="LIC_FILES_CHKSUM has no file://${f} with its md5; "
done
if [ -z "${lic_log}" ]; then
	pass "licence: LICENSE-MIT and LICENSE-APACHE at the root; Buildroot _LICENSE_FILES and Yocto LIC_FILES_CHKSUM (md5) point at them"
else
	echo "${lic_log}" > "${LOG}"
	fail "licence files and fields" "${LOG}"
fi

if have shellcheck; then
	if shellcheck -x "${EXTERNAL}/board/common/image-composer.sh" "${TOP}/tests/integration/"*.sh > "${LOG}" 2>&1; then
		pass "shellcheck: post-image script and integration scripts"
	else
		fail "shellcheck" "${LOG}"
	fi
else
	missing "shellcheck" "shellcheck"
fi

# ------------------------------------------------------------ the binary

COMPOSER="${IMAGE_COMPOSER:-${TOP}/target/release/image-composer}"
if [ ! -x "${COMPOSER}" ]; then
	echo "# building ${COMPOSER}"
	(cd "${TOP}" && cargo build --release --locked -q) || true
fi
if [ ! -x "${COMPOSER}" ]; then
	fail "image-composer binary ${COMPOSER} (set IMAGE_COMPOSER)"
	echo "${passed} passed, ${failed} failed"
	exit 1
fi
COMPOSER="$(cd "$(dirname "${COMPOSER}")" && pwd)/$(basename "${COMPOSER}")"

tools_ok=1
for t in sfdisk sgdisk e2fsck fsck.vfat mdir mcopy mke2fs bmaptool cpio zcat; do
	have "${t}" || { missing "image checks" "${t} (fdisk gdisk e2fsprogs dosfstools mtools bmap-tools cpio gzip)"; tools_ok=0; }
done
if [ "${tools_ok}" = 0 ]; then
	echo "${passed} passed, ${failed} failed"
	[ "${failed}" = 0 ]
	exit
fi

# ------------------------------------------------------------ helpers

# Partition N of image $1 (1-based) copied, sparse, to file $3; $2 = N.
extract() {
	local img="$1" n="$2" out="$3" start size
	read -r start size < <(sfdisk --json "${img}" | python3 -c '
import json, sys
p = json.load(sys.stdin)["partitiontable"]["partitions"]
e = [x for x in p if x["node"].endswith(sys.argv[1]) and not x["node"].endswith("1" + sys.argv[1]) or x["node"] == sys.argv[2]][0]
print(e["start"], e["size"])' "${n}" "${img}${n}")
	dd if="${img}" of="${out}" bs=512 skip="${start}" count="${size}" conv=sparse status=none
}

# Lines "node start size type name" of image $1's table.
table() {
	sfdisk --json "$1" | python3 -c '
import json, sys
t = json.load(sys.stdin)["partitiontable"]
print("label", t["label"])
for p in t["partitions"]:
    print(p["node"][len(sys.argv[1]):], p["start"], p["size"], p["type"], p.get("name", "-"), "boot" if p.get("bootable") else "-")' "$1"
}

# e2fsck -fn on each listed partition number of image $1.
check_ext4() {
	local img="$1" n
	shift
	for n in "$@"; do
		extract "${img}" "${n}" "${SCRATCH}/part.ext4" || return 1
		e2fsck -fn "${SCRATCH}/part.ext4" > "${SCRATCH}/e2fsck.log" 2>&1 || {
			echo "e2fsck -fn partition ${n}:"
			cat "${SCRATCH}/e2fsck.log"
			return 1
		}
	done
	rm -f "${SCRATCH}/part.ext4"
}

# The vfat partition $2 of image $1 passes fsck.vfat -n and holds the files
# "dest=source" given after it, byte for byte.
check_vfat() {
	local img="$1" n="$2" pair dest src
	shift 2
	extract "${img}" "${n}" "${SCRATCH}/part.vfat" || return 1
	fsck.vfat -n "${SCRATCH}/part.vfat" || return 1
	for pair in "$@"; do
		dest="${pair%%=*}"
		src="${pair#*=}"
		rm -f "${SCRATCH}/got"
		mcopy -n -i "${SCRATCH}/part.vfat" "::${dest}" "${SCRATCH}/got" || return 1
		cmp "${src}" "${SCRATCH}/got" || return 1
	done
	rm -f "${SCRATCH}/part.vfat" "${SCRATCH}/got"
}

# The first bytes of partition $2 of image $1 are file $3.
check_content() {
	local img="$1" n="$2" src="$3"
	extract "${img}" "${n}" "${SCRATCH}/part.raw" || return 1
	cmp -n "$(stat -c %s "${src}")" "${src}" "${SCRATCH}/part.raw" || return 1
	rm -f "${SCRATCH}/part.raw"
}

# bmaptool copies image $1 with its bmap $2 to a file equal to the image.
check_bmap() {
	rm -f "${SCRATCH}/copy.img"
	bmaptool copy --bmap "$2" "$1" "${SCRATCH}/copy.img" || return 1
	cmp "$1" "${SCRATCH}/copy.img" || return 1
	rm -f "${SCRATCH}/copy.img"
}

# ------------------------------------------------------------ real inputs

INPUTS="${SCRATCH}/inputs"
mkdir -p "${INPUTS}"
kernel="$(printf '%s\n' /boot/vmlinuz-* | sort -V | tail -n 1)"
MODULES_DIR=""
if [ -f "${kernel}" ]; then
	cp "${kernel}" "${INPUTS}/kernel"
	if [ -f "/lib/modules/${kernel#/boot/vmlinuz-}/modules.dep" ]; then
		MODULES_DIR="/lib/modules/${kernel#/boot/vmlinuz-}"
	fi
else
	missing "real kernel" "linux-image-amd64 (using a stand-in)"
	head -c 3000000 /dev/urandom > "${INPUTS}/kernel"
fi
efi=""
for f in /usr/lib/grub/x86_64-efi/monolithic/grubx64.efi /usr/lib/grub/x86_64-efi/monolithic/gcdx64.efi \
	/usr/lib/systemd/boot/efi/systemd-bootx64.efi; do
	if [ -z "${efi}" ] && [ -f "${f}" ]; then efi="${f}"; fi
done
if [ -n "${efi}" ]; then
	cp "${efi}" "${INPUTS}/bootx64.efi"
else
	missing "real EFI binary" "grub-efi-amd64-bin (using a stand-in)"
	head -c 500000 /dev/urandom > "${INPUTS}/bootx64.efi"
fi
# A small root filesystem tree and Buildroot's rootfs.ext4 made from it.
ROOTTREE="${INPUTS}/target"
mkdir -p "${ROOTTREE}"/{bin,sbin,etc,dev,proc,sys,tmp,lib,usr/bin,media/rfs/ro,media/rfs/rw}
if have busybox && busybox --help 2>&1 | grep -qi static; then
	cp "$(command -v busybox)" "${ROOTTREE}/bin/busybox"
elif [ -x /bin/busybox ]; then
	cp /bin/busybox "${ROOTTREE}/bin/busybox"
else
	missing "real busybox" "busybox-static (using a stand-in)"
	head -c 1000000 /dev/urandom > "${ROOTTREE}/bin/busybox"
fi
ln -s busybox "${ROOTTREE}/bin/sh"
ln -s ../bin/busybox "${ROOTTREE}/sbin/init"
echo "image-composer integration test" > "${ROOTTREE}/etc/issue"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "${ROOTTREE}/etc/passwd"
if ! E2FSPROGS_FAKE_TIME="${SOURCE_DATE_EPOCH}" mke2fs -q -t ext4 -L rootfs \
	-U 5a1f0e2c-8b9d-4c3e-9f10-123456789abc -E root_owner=0:0,hash_seed=5a1f0e2c-8b9d-4c3e-9f10-123456789abc \
	-d "${ROOTTREE}" "${INPUTS}/rootfs.ext4" 64M > "${LOG}" 2>&1; then
	fail "making rootfs.ext4 with mke2fs -d" "${LOG}"
fi

# Installs image-composer into prefix $1 the way the Buildroot host package
# and the Yocto native recipe do: bin/image-composer and
# share/image-composer/layers (a copy: the binary finds its layers relative
# to its own real path).
install_composer() {
	mkdir -p "$1/bin" "$1/share/image-composer"
	cp "${COMPOSER}" "$1/bin/image-composer"
	cp -r "${TOP}/layers" "$1/share/image-composer/layers"
}

# The initramfs on vfat partition $2 of image $1 lists the layers' /init,
# busybox and the ab-slots hook (cpio -it), and the standalone copy $3 starts
# with the same bytes (image-composer pads standalone artifacts to their size).
check_initramfs() {
	local list
	extract "$1" "$2" "${SCRATCH}/part.vfat" || return 1
	rm -f "${SCRATCH}/initramfs.img"
	mcopy -n -i "${SCRATCH}/part.vfat" ::/initramfs.img "${SCRATCH}/initramfs.img" || return 1
	list="$(zcat "${SCRATCH}/initramfs.img" | cpio -it 2> /dev/null)" || return 1
	for f in init bin/busybox lib/rorootfs/hooks/50-ab-slots.sh dev/console; do
		echo "${list}" | grep -qx "${f}" || { echo "initramfs lacks ${f}"; return 1; }
	done
	cmp -n "$(stat -c %s "${SCRATCH}/initramfs.img")" "${SCRATCH}/initramfs.img" "$3" || return 1
	rm -f "${SCRATCH}/part.vfat" "${SCRATCH}/initramfs.img"
}

# ------------------------------------------------------------ Buildroot

# A fake Buildroot output directory: what the defconfig's packages install.
make_br_output() {
	local base="$1"
	mkdir -p "${base}/images/efi-part/EFI/BOOT" "${base}/build"
	cp -a "${ROOTTREE}" "${base}/target"
	cp "${INPUTS}/kernel" "${base}/images/bzImage"
	cp "${INPUTS}/kernel" "${base}/images/Image"
	cp "${INPUTS}/rootfs.ext4" "${base}/images/rootfs.ext4"
	cp "${INPUTS}/bootx64.efi" "${base}/images/efi-part/EFI/BOOT/bootx64.efi"
	printf 'set default=0\n' > "${base}/images/efi-part/EFI/BOOT/grub.cfg"   # Buildroot's default, replaced
	install_composer "${base}/host"
}

# Runs the post-image script like Buildroot's target-post-image does:
# $1 = output dir, then BR2_ROOTFS_POST_SCRIPT_ARGS.
run_post_image() {
	local base="$1"
	shift
	(cd "${SCRATCH}" && env -i PATH="${base}/host/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		BR2_CONFIG="${base}/.config" HOST_DIR="${base}/host" STAGING_DIR="${base}/host/sysroot" \
		TARGET_DIR="${base}/target" BUILD_DIR="${base}/build" BINARIES_DIR="${base}/images" \
		BASE_DIR="${base}" SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH}" \
		BR2_EXTERNAL_IMAGE_COMPOSER_PATH="${EXTERNAL}" \
		"${EXTERNAL}/board/common/image-composer.sh" "${base}/images" "$@")
}

# The args the defconfig gives the script, with $(BR2_EXTERNAL_..._PATH) expanded.
defconfig_args() {
	sed -n 's/^BR2_ROOTFS_POST_SCRIPT_ARGS="\(.*\)"/\1/p' "${EXTERNAL}/configs/$1" |
		sed "s|\$(BR2_EXTERNAL_IMAGE_COMPOSER_PATH)|${EXTERNAL}|g"
}

br_qemu() {
	local base="${SCRATCH}/br-qemu" img sum1
	make_br_output "${base}"
	# shellcheck disable=SC2046 # the defconfig's arguments, split like make does
	if ! run_post_image "${base}" $(defconfig_args image_composer_qemu_x86_64_defconfig) > "${LOG}" 2>&1; then
		fail "buildroot qemu_x86_64: post-image script" "${LOG}"
		return
	fi
	img="${base}/images/sdcard.img"
	if [ -f "${img}" ] && [ -f "${img}.bmap" ] && [ ! -e "${img}.partial" ]; then
		pass "buildroot qemu_x86_64: post-image script wrote images/sdcard.img and sdcard.img.bmap"
	else
		fail "buildroot qemu_x86_64: no sdcard.img + .bmap in BINARIES_DIR" "${LOG}"
		return
	fi
	table "${img}" > "${LOG}" 2>&1
	if grep -q '^label gpt' "${LOG}" &&
		grep -qi '^1 .* C12A7328-F81F-11D2-BA4B-00A0C93EC93B boot ' "${LOG}" &&
		grep -qi '^2 .* 4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709 rootA ' "${LOG}" &&
		grep -qi '^3 .* 4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709 rootB ' "${LOG}" &&
		grep -q '^4 .* config ' "${LOG}" && grep -q '^5 .* overlay ' "${LOG}" && grep -q '^6 .* data ' "${LOG}" &&
		sgdisk -v "${img}" >> "${LOG}" 2>&1 && grep -q 'No problems found' "${LOG}"; then
		pass "buildroot qemu_x86_64: sfdisk: GPT boot(ESP) rootA rootB(root-x86-64) config overlay data; sgdisk -v clean"
	else
		fail "buildroot qemu_x86_64: partition table" "${LOG}"
	fi
	if check_vfat "${img}" 1 "/bzImage=${INPUTS}/kernel" "/EFI/BOOT/bootx64.efi=${INPUTS}/bootx64.efi" \
		"/EFI/BOOT/grub.cfg=${EXTERNAL}/board/qemu_x86_64/grub.cfg" > "${LOG}" 2>&1; then
		pass "buildroot qemu_x86_64: ESP passes fsck.vfat -n, holds bzImage, GRUB and the board's grub.cfg"
	else
		fail "buildroot qemu_x86_64: ESP content" "${LOG}"
	fi
	if check_initramfs "${img}" 1 "${base}/images/initramfs.img" > "${LOG}" 2>&1; then
		pass "buildroot qemu_x86_64: the layers' initramfs (cpio -it: /init, busybox, ab-slots hook) is on the ESP and in BINARIES_DIR"
	else
		fail "buildroot qemu_x86_64: initramfs" "${LOG}"
	fi
	if check_content "${img}" 2 "${INPUTS}/rootfs.ext4" > "${LOG}" 2>&1 &&
		check_content "${img}" 3 "${INPUTS}/rootfs.ext4" >> "${LOG}" 2>&1 &&
		check_ext4 "${img}" 2 3 4 5 6 >> "${LOG}" 2>&1; then
		pass "buildroot qemu_x86_64: rootA and rootB are rootfs.ext4; e2fsck -fn clean on all 5 ext4 partitions"
	else
		fail "buildroot qemu_x86_64: ext4 partitions" "${LOG}"
	fi
	if check_bmap "${img}" "${img}.bmap" > "${LOG}" 2>&1; then
		pass "buildroot qemu_x86_64: bmaptool copy with the bmap reproduces the image"
	else
		fail "buildroot qemu_x86_64: bmaptool copy" "${LOG}"
	fi
	sum1="$(sha256sum < "${img}")"
	rm -f "${img}" "${img}.bmap"
	# shellcheck disable=SC2046
	if run_post_image "${base}" $(defconfig_args image_composer_qemu_x86_64_defconfig) > "${LOG}" 2>&1 &&
		[ "$(sha256sum < "${img}")" = "${sum1}" ]; then
		pass "buildroot qemu_x86_64: a second run gives a bit-identical image"
	else
		fail "buildroot qemu_x86_64: second run differs" "${LOG}"
	fi
}

br_rpi4() {
	local base="${SCRATCH}/br-rpi4" img fw
	make_br_output "${base}"
	fw="${base}/images/rpi-firmware"
	mkdir -p "${fw}/overlays"
	# Stand-ins for the Raspberry Pi firmware blobs (not packaged in Debian).
	head -c 2000000 /dev/urandom > "${fw}/start4.elf"
	head -c 5000 /dev/urandom > "${fw}/fixup4.dat"
	head -c 3000 /dev/urandom > "${fw}/overlays/miniuart-bt.dtbo"
	touch "${fw}/overlays/README"
	cp "${EXTERNAL}/board/raspberrypi4_64/config.txt" "${fw}/config.txt"
	cp "${EXTERNAL}/board/raspberrypi4_64/cmdline.txt" "${fw}/cmdline.txt"
	for d in bcm2711-rpi-4-b bcm2711-rpi-400 bcm2711-rpi-cm4 bcm2711-rpi-cm4s; do
		head -c 50000 /dev/urandom > "${base}/images/${d}.dtb"
	done
	# shellcheck disable=SC2046
	if ! run_post_image "${base}" $(defconfig_args image_composer_raspberrypi4_64_defconfig) > "${LOG}" 2>&1; then
		fail "buildroot raspberrypi4_64: post-image script" "${LOG}"
		return
	fi
	img="${base}/images/sdcard.img"
	if [ -f "${img}" ] && [ -f "${img}.bmap" ]; then
		pass "buildroot raspberrypi4_64: post-image script wrote images/sdcard.img and sdcard.img.bmap"
	else
		fail "buildroot raspberrypi4_64: no sdcard.img + .bmap" "${LOG}"
		return
	fi
	table "${img}" > "${LOG}" 2>&1
	if grep -q '^label dos' "${LOG}" && grep -q '^1 .* c - boot$' "${LOG}" &&
		grep -q '^2 .* 83 ' "${LOG}" && grep -q '^3 .* 83 ' "${LOG}" &&
		grep -q '^5 .* 83 ' "${LOG}" && grep -q '^6 .* 83 ' "${LOG}" && grep -q '^7 .* 83 ' "${LOG}"; then
		pass "buildroot raspberrypi4_64: sfdisk: MBR, bootable 0x0c boot, rootA p2, rootB p3, config p5, overlay p6, data p7"
	else
		fail "buildroot raspberrypi4_64: partition table" "${LOG}"
	fi
	if check_vfat "${img}" 1 "/Image=${INPUTS}/kernel" "/start4.elf=${fw}/start4.elf" \
		"/fixup4.dat=${fw}/fixup4.dat" "/config.txt=${fw}/config.txt" "/cmdline.txt=${fw}/cmdline.txt" \
		"/overlays/miniuart-bt.dtbo=${fw}/overlays/miniuart-bt.dtbo" \
		"/bcm2711-rpi-4-b.dtb=${base}/images/bcm2711-rpi-4-b.dtb" > "${LOG}" 2>&1 &&
		check_initramfs "${img}" 1 "${base}/images/initramfs.img" >> "${LOG}" 2>&1; then
		pass "buildroot raspberrypi4_64: boot partition passes fsck.vfat -n, holds firmware, overlays, dtbs, Image, initramfs"
	else
		fail "buildroot raspberrypi4_64: boot partition content" "${LOG}"
	fi
	if check_content "${img}" 2 "${INPUTS}/rootfs.ext4" > "${LOG}" 2>&1 &&
		check_ext4 "${img}" 2 3 5 6 7 >> "${LOG}" 2>&1 && check_bmap "${img}" "${img}.bmap" >> "${LOG}" 2>&1; then
		pass "buildroot raspberrypi4_64: rootA is rootfs.ext4; e2fsck -fn clean on p2 p3 p5 p6 p7; bmaptool copy matches"
	else
		fail "buildroot raspberrypi4_64: ext4 partitions / bmap" "${LOG}"
	fi
}

br_errors() {
	local base="${SCRATCH}/br-errors" rc
	make_br_output "${base}"
	run_post_image "${base}" > "${LOG}" 2>&1
	rc=$?
	if [ "${rc}" = 1 ] && grep -q 'missing -c IMAGE_YAML' "${LOG}"; then
		pass "buildroot: the post-image script without -c fails with a usage message"
	else
		fail "buildroot: post-image script without -c (exit ${rc})" "${LOG}"
	fi
	# shellcheck disable=SC2016 # a literal ${VAR} for the composer
	printf 'image: { name: x, size: 8MiB }\npartitions:\n  - { name: a, image: "${NOT_SET_ANYWHERE}/x.bin" }\n' > "${SCRATCH}/unset.yaml"
	run_post_image "${base}" -c "${SCRATCH}/unset.yaml" > "${LOG}" 2>&1
	rc=$?
	if [ "${rc}" = 2 ] && grep -q 'NOT_SET_ANYWHERE' "${LOG}" && grep -q 'unset.yaml:3:' "${LOG}"; then
		pass "buildroot: an unset \${VAR} in the YAML fails with exit 2 naming it at unset.yaml:3"
	else
		fail "buildroot: unset variable (exit ${rc})" "${LOG}"
	fi
	rm -f "${base}/host/bin/image-composer"
	run_post_image "${base}" -c "${EXTERNAL}/board/qemu_x86_64/image.yaml" > "${LOG}" 2>&1
	rc=$?
	if [ "${rc}" = 1 ] && grep -q 'enable BR2_PACKAGE_HOST_IMAGE_COMPOSER' "${LOG}"; then
		pass "buildroot: without the host package the script says to enable BR2_PACKAGE_HOST_IMAGE_COMPOSER"
	else
		fail "buildroot: missing binary (exit ${rc})" "${LOG}"
	fi
}

# The rootfs type fs/image-composer/image-composer.mk, run the way
# Buildroot's fs/common.mk runs a rootfs type: a stand-in for its $(rootfs)
# macro writes a fakeroot script (what mkusers, makedevs and the hooks would
# have done to the TARGET_DIR copy: chown -R 0:0, a package user's file, a
# setuid binary, a device node), then the type's ROOTFS_IMAGE_COMPOSER_CMD,
# and runs it under Debian's fakeroot. rootfs.ext4 must carry what the
# fakeroot session reports (debugfs), and reach BINARIES_DIR with the list
# file rootfs.image-composer.
br_rootfs_type() {
	local base="${SCRATCH}/br-rootfs" fsdir
	if ! have fakeroot || ! have debugfs || ! have make; then
		missing "buildroot: rootfs type under fakeroot" "fakeroot, debugfs (e2fsprogs), make"
		return
	fi
	make_br_output "${base}"
	fsdir="${base}/build/buildroot-fs/image-composer"
	mkdir -p "${fsdir}"
	cp -a "${base}/target" "${fsdir}/target"
	cat > "${base}/harness.mk" <<'EOF'
# Stand-ins for what Buildroot defines before an external's fs/*/*.mk.
qstrip = $(strip $(subst ",,$(1)))
EXTRA_ENV = PATH=$(HOST_DIR)/bin:/usr/sbin:/usr/bin:/sbin:/bin BUILD_DIR=$(BASE_DIR)/build
ROOTFS_IMAGE_COMPOSER_DIR = $(BASE_DIR)/build/buildroot-fs/image-composer
TARGET_DIR = $(ROOTFS_IMAGE_COMPOSER_DIR)/target
SCRIPT = $(ROOTFS_IMAGE_COMPOSER_DIR)/fakeroot
define FAKEROOT_PRE_CMD
set -e
chown -h -R 0:0 $(TARGET_DIR)
chown 1234:5678 $(TARGET_DIR)/etc/issue
chmod 4755 $(TARGET_DIR)/bin/busybox
mknod -m 0600 $(TARGET_DIR)/dev/console c 5 1
endef
define rootfs
$$(BINARIES_DIR)/rootfs.image-composer:
	$$(file >$$(SCRIPT),$$(FAKEROOT_PRE_CMD))
	$$(file >>$$(SCRIPT),$$(ROOTFS_IMAGE_COMPOSER_CMD))
	fakeroot -- sh $$(SCRIPT)
endef
include $(BR2_EXTERNAL_IMAGE_COMPOSER_PATH)/fs/image-composer/image-composer.mk
EOF
	if ! make -s -f "${base}/harness.mk" BR2_EXTERNAL_IMAGE_COMPOSER_PATH="${EXTERNAL}" \
		BR2_TARGET_ROOTFS_IMAGE_COMPOSER=y BR2_TARGET_ROOTFS_IMAGE_COMPOSER_CONFIG="\"${EXTERNAL}/board/common/rootfs.yaml\"" \
		BINARIES_DIR="${base}/images" HOST_DIR="${base}/host" STAGING_DIR="${base}/host/sysroot" BASE_DIR="${base}" \
		SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH}" "${base}/images/rootfs.image-composer" > "${LOG}" 2>&1; then
		fail "buildroot: rootfs type under fakeroot" "${LOG}"
		return
	fi
	local ext4="${base}/images/rootfs.ext4"
	{
		printf 'rootfs.image-composer: %s\n' "$(tr '\n' ' ' < "${base}/images/rootfs.image-composer")"
		debugfs -R 'stat /etc/issue' "${ext4}" 2>&1 | grep -E '^(User|Inode)'
		debugfs -R 'stat /bin/busybox' "${ext4}" 2>&1 | grep -E '^Inode'
		debugfs -R 'stat /dev/console' "${ext4}" 2>&1 | grep -E '^(Inode|Device)'
	} > "${LOG}"
	if grep -qx 'rootfs.image-composer: rootfs.ext4 rootfs.ext4.bmap ' "${LOG}" &&
		grep -q 'User:  1234   Group:  5678' "${LOG}" &&
		grep -q 'Type: regular    Mode:  04755' "${LOG}" &&
		grep -q 'Type: character special    Mode:  0600' "${LOG}" &&
		grep -q 'Device major/minor number: 05:01' "${LOG}" &&
		e2fsck -fn "${ext4}" >> "${LOG}" 2>&1 && [ ! -e "${fsdir}/images/rootfs.ext4" ]; then
		pass "buildroot: rootfs type: built in the fakeroot script, rootfs.ext4 (e2fsck -fn) has the session's owners 1234:5678, setuid 4755, /dev/console c 5,1 (debugfs); moved to BINARIES_DIR and listed in rootfs.image-composer"
	else
		fail "buildroot: rootfs type under fakeroot" "${LOG}"
	fi
}

# The bundled liblzma's fast paths (.cargo/config.toml; without them
# squashfs xz took 1.5x as long, docs/benchmarks.md). Buildroot
# builds the package from a copy of the tree that external.mk's
# IMAGE_COMPOSER_VENDOR_CRATES vendors: its source replacement must be
# appended to the tree's .cargo/config.toml, not replace it, and
# liblzma-sys built there the way Buildroot builds it (cargo in composer/,
# offline) must get configure's defines. The Yocto recipe's CFLAGS are
# checked by check-external-trees.sh against a real bitbake.
br_vendored_liblzma() {
	local base="${SCRATCH}/br-vendor" want out
	case "$(uname -m)" in
	x86_64) want='-DTUKLIB_FAST_UNALIGNED_ACCESS=1 .*-DHAVE_USABLE_CLMUL=1' ;;
	aarch64) want='-DTUKLIB_FAST_UNALIGNED_ACCESS=1' ;;
	*)
		pass "buildroot: vendored build: no liblzma defines for $(uname -m) (x86-64 and aarch64 only)"
		return
		;;
	esac
	if ! have make || ! have flock || ! have cargo; then
		missing "buildroot: vendored liblzma" "make, flock (util-linux), cargo"
		return
	fi
	mkdir -p "${base}/src"
	(cd "${TOP}" && tar --exclude=target -cf - Cargo.toml Cargo.lock .cargo composer bundle ab-install) |
		tar -xf - -C "${base}/src"
	cat > "${base}/harness.mk" <<'EOF'
# Stand-ins for what Buildroot defines before an external's external.mk.
HOST_MAKE_ENV =
HOST_PKG_CARGO_ENV =
BR_CARGO_HOME = $(BASE_DIR)/br-cargo-home
include $(BR2_EXTERNAL_IMAGE_COMPOSER_PATH)/external.mk
vendor:
	$(call IMAGE_COMPOSER_VENDOR_CRATES,$(SRC))
EOF
	if ! make -s -f "${base}/harness.mk" BR2_EXTERNAL_IMAGE_COMPOSER_PATH="${EXTERNAL}" BASE_DIR="${base}" \
		SRC="${base}/src" vendor > "${LOG}" 2>&1 ||
		! (cd "${base}/src/composer" && CARGO_TARGET_DIR="${base}/target" \
			cargo build --offline --locked -p liblzma-sys) >> "${LOG}" 2>&1; then
		fail "buildroot: vendored liblzma" "${LOG}"
		return
	fi
	out="$(cat "${base}"/target/debug/build/liblzma-sys-*/output 2> /dev/null)"
	if grep -q '^\[source.crates-io\]' "${base}/src/.cargo/config.toml" &&
		grep -q '^CFLAGS_x86_64_unknown_linux_gnu = ' "${base}/src/.cargo/config.toml" &&
		[ -d "${base}/src/VENDOR/liblzma-sys" ] && grep -qE -- "${want}" <<< "${out}"; then
		pass "buildroot: vendored build: .cargo/config.toml keeps its [env] after the appended source replacement; liblzma-sys built offline from composer/ gets configure's fast-path defines"
	else
		{
			echo "--- .cargo/config.toml"
			cat "${base}/src/.cargo/config.toml"
			echo "--- liblzma-sys build output"
			grep -E 'running|CFLAGS' <<< "${out}"
		} >> "${LOG}"
		fail "buildroot: vendored liblzma" "${LOG}"
	fi
}

# ------------------------------------------------------------ Yocto

# meta-layer's IMAGE_CMD:composer on Debian inputs (tests/integration/yocto-image-cmd.sh):
# $1 = scratch base; then env for the script (e.g. COMPOSER_CONFIG_PATH=).
yocto_image_cmd() {
	local base="$1"
	shift
	env IMAGE_COMPOSER="${COMPOSER}" SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH}" "$@" \
		"${TOP}/tests/integration/yocto-image-cmd.sh" "${base}" "${INPUTS}/kernel" "${MODULES_DIR}" \
		"${ROOTTREE}/bin/busybox" "${INPUTS}/bootx64.efi" "${INPUTS}/rootfs.ext4"
}

yocto() {
	local base="${SCRATCH}/yocto" img sum1 deployed
	if [ -z "${MODULES_DIR}" ]; then
		missing "yocto: IMAGE_CMD:composer" "a kernel with modules (linux-image-amd64)"
		return
	fi
	if ! img="$(yocto_image_cmd "${base}" 2> "${LOG}")"; then
		fail "yocto: IMAGE_CMD:composer" "${LOG}"
		return
	fi
	deployed="$(dirname "${img}")"
	if [ -f "${img}" ] && [ -f "${img}.bmap" ] && [ -f "${img%.composer}.initramfs.img" ] &&
		[ -z "$(ls -A "${base}/work/build-composer")" ]; then
		pass "yocto: IMAGE_CMD:composer deployed \${IMAGE_NAME}.composer, .composer.bmap and the layers' .initramfs.img (COMPOSER_IMAGE_NAME picks the disk)"
	else
		fail "yocto: IMAGE_CMD outputs" "${LOG}"
		# shellcheck disable=SC2012 # a listing for the reader
		ls -la "${deployed}" "${base}/work/build-composer" | sed 's/^/    /'
		return
	fi
	table "${img}" > "${LOG}" 2>&1
	if grep -q '^label gpt' "${LOG}" && grep -qi '^1 .* C12A7328-F81F-11D2-BA4B-00A0C93EC93B boot ' "${LOG}" &&
		grep -q '^2 .* rootA ' "${LOG}" && grep -q '^3 .* rootB ' "${LOG}" &&
		grep -q '^4 .* config ' "${LOG}" && grep -q '^5 .* overlay ' "${LOG}" &&
		check_vfat "${img}" 1 "/bzImage=${INPUTS}/kernel" "/EFI/BOOT/BOOTX64.EFI=${INPUTS}/bootx64.efi" \
			"/loader/loader.conf=${LAYER}/files/composer/composer-ab-image/loader.conf" \
			"/loader/entries/ab.conf=${LAYER}/files/composer/composer-ab-image/ab.conf" >> "${LOG}" 2>&1 &&
		check_initramfs "${img}" 1 "${img%.composer}.initramfs.img" >> "${LOG}" 2>&1 &&
		check_content "${img}" 2 "${INPUTS}/rootfs.ext4" >> "${LOG}" 2>&1 &&
		check_content "${img}" 3 "${INPUTS}/rootfs.ext4" >> "${LOG}" 2>&1 &&
		check_ext4 "${img}" 2 3 4 5 >> "${LOG}" 2>&1 &&
		check_bmap "${img}" "${img}.bmap" >> "${LOG}" 2>&1; then
		pass "yocto: the image: GPT boot(ESP) rootA rootB config overlay; ESP (fsck.vfat) has the loader, its entry, bzImage and the layers' initramfs (cpio -it); rootA/B = \${IMAGE_NAME}.ext4; e2fsck -fn clean; bmap copy matches"
	else
		fail "yocto: image content" "${LOG}"
	fi
	sum1="$(sha256sum < "${img}")"
	if img="$(yocto_image_cmd "${base}" 2> "${LOG}")" && [ "$(sha256sum < "${img}")" = "${sum1}" ]; then
		pass "yocto: a second do_image_composer gives a bit-identical image"
	else
		fail "yocto: second run differs" "${LOG}"
	fi

	# No description found: a clear bbfatal, nothing written.
	if ! yocto_image_cmd "${base}" COMPOSER_CONFIG_PATH= > "${LOG}" 2>&1 &&
		grep -q 'ERROR: No image description from COMPOSER_CONFIGS was found: composer-ab-image.qemux86-64.yaml' "${LOG}" &&
		[ -z "$(find "${base}" -name '*.composer')" ]; then
		pass "yocto: without a description IMAGE_CMD stops with a bbfatal naming COMPOSER_CONFIGS"
	else
		fail "yocto: missing description" "${LOG}"
	fi
}

# The class's composer_input_checksums() (do_image_composer[file-checksums])
# on the example: the files the YAML names next to it and the layer
# directories are listed, nothing named through ${VARS}.
yocto_file_checksums() {
	if python3 - "${LAYER}/classes-recipe/image_types_composer.bbclass" \
		"${LAYER}/files/composer/composer-ab-image.qemux86-64.yaml" "${TOP}/layers" "${SCRATCH}/no-such-layers" > "${LOG}" 2>&1 <<'EOF'
import os, re, sys
text = open(sys.argv[1]).read()
m = re.search(r"^def composer_input_checksums\(.*?(?=^\S)", text, re.M | re.S)
scope = {"os": os}
exec(m.group(0), scope)
got = scope["composer_input_checksums"](sys.argv[2], sys.argv[3:]).split()
print("\n".join(got))
here = os.path.dirname(sys.argv[2])
want = [here + "/composer-ab-image/loader.conf:True", here + "/composer-ab-image/ab.conf:True",
        sys.argv[3] + ":True", sys.argv[4] + ":False"]
missing = [w for w in want if w not in got]
assert not missing, "missing: %s" % missing
assert not [g for g in got if "$" in g or "/lib/modules" in g], "a ${VAR} path was listed"
# An absolute host path in a YAML (here /bin/sh, as a destination) is not listed.
abs_yaml = os.path.join(os.path.dirname(sys.argv[4]), "abs.yaml")
open(abs_yaml, "w").write("files:\n  /bin/sh: x\n")
assert scope["composer_input_checksums"](abs_yaml, []) == "", "absolute path listed"
EOF
	then
		pass "yocto: do_image_composer[file-checksums] lists the YAML's loader.conf and ab.conf and COMPOSER_LAYER_DIRS, no host path"
	else
		fail "yocto: composer_input_checksums" "${LOG}"
	fi
}

# The shipped JSON Schema (schema/, equal to `image-composer schema`:
# composer/tests/shipped_files.rs) accepts every example and layer, and
# refuses a description with an unknown key, a bad enum value and a bad
# size, checked by an independent validator (check-jsonschema, from PyPI:
# .ci/run installs it into a venv).
editor_schema() {
	local schema="${TOP}/schema/image-composer.schema.json"
	if ! have check-jsonschema; then
		missing "schema: examples and layers validate" "check-jsonschema (pip, see .ci/run)"
		return
	fi
	local files=("${TOP}"/examples/*/*.yaml "${TOP}"/layers/*/layer.yaml)
	if check-jsonschema --schemafile "${schema}" "${files[@]}" > "${LOG}" 2>&1; then
		pass "schema: ${#files[@]} examples and layers validate with check-jsonschema"
	else
		fail "schema: examples and layers" "${LOG}"
	fi
	local bad="${SCRATCH}/bad-schema.yaml"
	# shellcheck disable=SC2016 # ${SIZE} is the description's variable
	printf 'image: { nam: x, table: gtp, size: 12QB }\npartitions:\n  - { name: a, size: "${SIZE}", fs: { type: vfat, journal: true } }\n' > "${bad}"
	check-jsonschema --schemafile "${schema}" "${bad}" > "${LOG}" 2>&1
	local rc=$?
	if [ "${rc}" = 1 ] && grep -q "'nam' was unexpected" "${LOG}" && grep -qF '$.image.table' "${LOG}" &&
		grep -qF '$.image.size' "${LOG}" && grep -qF '$.partitions[0].fs' "${LOG}" && ! grep -qF '$.partitions[0].size' "${LOG}"; then
		pass "schema: check-jsonschema refuses an unknown key, a bad table, a bad size and a vfat journal, accepts a \${VAR} size"
	else
		fail "schema: a bad description (exit ${rc})" "${LOG}"
	fi
}

# `plan --svg` of the embedded example, drawn by a browser (Debian's
# chromium-headless-shell, or chromium): every text of the picture is
# inside it, every label inside its box, and the names, sizes, types and
# contents of the plan are there.
plan_picture() {
	local browser=""
	for b in chromium-headless-shell chromium; do have "${b}" && { browser="${b}"; break; }; done
	if [ -z "${browser}" ]; then
		missing "plan --svg: drawn by a browser" "chromium-headless-shell or chromium"
		return
	fi
	local svg="${SCRATCH}/plan.svg" page="${SCRATCH}/plan.html" dom="${SCRATCH}/plan.dom"
	if ! (cd "${TOP}" && "${COMPOSER}" -q plan examples/embedded/board.yaml --svg "${svg}") > "${LOG}" 2>&1; then
		fail "plan --svg" "${LOG}"
		return
	fi
	{
		echo '<!DOCTYPE html><html><body style="margin:0">'
		cat "${svg}"
		cat <<'EOF'
<script>
const svg = document.querySelector("svg");
const width = svg.width.baseVal.value;
const out = [];
for (const t of svg.querySelectorAll("text")) {
	const b = t.getBBox();
	if (b.width === 0 || b.x < 0 || b.x + b.width > width + 0.5) out.push("OUTSIDE-PICTURE " + t.textContent);
	const box = t.parentNode.querySelector(":scope > title") && t.parentNode.querySelector(":scope > rect");
	if (box && (b.x < box.x.baseVal.value || b.x + b.width > box.x.baseVal.value + box.width.baseVal.value + 0.5))
		out.push("OUTSIDE-BOX " + t.textContent);
	out.push("TEXT " + t.textContent);
}
const pre = document.createElement("pre");
pre.id = "result";
pre.textContent = out.join("\n");
document.body.appendChild(pre);
</script></body></html>
EOF
	} > "${page}"
	timeout 120 "${browser}" --headless --no-sandbox --disable-gpu --dump-dom "file://${page}" > "${dom}.all" 2> "${LOG}"
	local rc=$? problems=""
	# The script's findings: the <pre id="result"> it added, one per line.
	sed -n '/<pre id="result">/,/<\/pre>/p' "${dom}.all" | sed 's/^.*<pre id="result">//' > "${dom}"
	grep -q '^TEXT ' "${dom}" || problems+="no text was drawn; "
	problems+="$(grep '^OUTSIDE-' "${dom}" | tr '\n' ';')"
	for want in "TEXT rootA" "TEXT 48 MiB" "TEXT root-arm64" "TEXT ext4 'rootfs' (artifact 'rootfs')" \
		"TEXT (free)" "TEXT protective MBR (0xEE entry)" "TEXT image examples/embedded/bootloader.bin" "TEXT 102 MiB"; do
		grep -qF "${want}" "${dom}" || problems+="no '${want}'; "
	done
	if [ "${rc}" = 0 ] && [ -z "${problems}" ]; then
		pass "plan --svg: ${browser} draws $(grep -c '^TEXT ' "${dom}") texts, each inside the picture and its box, with the plan's names, sizes, types and contents"
	else
		echo "${problems}" >> "${LOG}"
		fail "plan --svg in ${browser} (exit ${rc})" "${LOG}"
	fi
}

editor_schema
plan_picture
br_qemu
br_rpi4
br_errors
br_rootfs_type
br_vendored_liblzma
yocto
yocto_file_checksums

finish
