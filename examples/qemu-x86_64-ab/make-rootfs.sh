#!/bin/sh
# make-rootfs.sh OUTDIR [BUSYBOX]: a tiny root filesystem tree for the QEMU
# example, made from a static busybox (default /bin/busybox, Debian's
# busybox-static) plus the ab-slots layer's on-target files and this
# example's probe init scripts. Nothing is downloaded, nothing needs root.
set -eu
out=${1:?usage: make-rootfs.sh OUTDIR [BUSYBOX]}
busybox=${2:-/bin/busybox}
here=$(cd "$(dirname "$0")" && pwd)
layers=$here/../../layers

rm -rf "$out"
mkdir -p "$out"
cd "$out"
mkdir -p bin sbin usr/bin usr/sbin etc/init.d proc sys dev run tmp root \
	var/lib media/rfs/ro media/rfs/rw media/config
cp "$busybox" bin/busybox
chmod 755 bin/busybox
# Applet links: the list comes from the binary the host can run here
# (the example is for x86_64 on x86_64).
for applet in $(bin/busybox --list); do
	[ "$applet" = busybox ] || ln -sf busybox "bin/$applet"
done
ln -s ../bin/busybox sbin/init
cp -R "$layers/ab-slots/rootfs/." .
cp -R "$here/rootfs/." .
chmod 755 etc/init.d/* usr/sbin/*
echo qemu-ab >etc/hostname
# Field updates (docs/updates.md): the compatible string of image.yaml's
# `update:`, the release the probe reports, and, when given, the installer
# binary (AB_INSTALL) and the trusted public key (BUNDLE_PUB).
mkdir -p etc/image-composer/keys
echo qemu-x86_64-ab >etc/image-composer/compatible
echo "${RELEASE:-1}" >etc/release
[ -z "${AB_INSTALL:-}" ] || install -m 755 "$AB_INSTALL" usr/sbin/ab-install
[ -z "${BUNDLE_PUB:-}" ] || cp "$BUNDLE_PUB" etc/image-composer/keys/
printf 'root:x:0:0:root:/root:/bin/sh\n' >etc/passwd
printf 'root:x:0:\n' >etc/group
