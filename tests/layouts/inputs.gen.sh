#!/usr/bin/env bash
# Writes the inputs both genimage and image-composer lay out for the layout
# corpus into $1 (default: ./inputs): raw blobs and filesystem images made
# of a fixed byte pattern (the tables are compared, not the contents), so
# the same sizes give the same tables on every machine.
set -euo pipefail
out=${1:-inputs}
mkdir -p "$out"
# pattern NAME BYTES: a file of BYTES bytes, every byte 0xa5 (no holes).
pattern() { head -c "$2" /dev/zero | tr '\0' '\245' >"$out/$1"; }
pattern rootfs.ext4 $((12 * 1024 * 1024))
pattern imx-boot.bin 1500000
pattern tf-a.stm32 200000
pattern fip.bin 1200000
pattern Image 300000
pattern bootcode.bin 440
# The inputs of the Buildroot boards' configurations in tests/import/genimage.
pattern rootfs.ext2 $((12 * 1024 * 1024))
pattern flash.bin 1200000
pattern tf-a-stm32mp157c-dk2.stm32 250000
pattern bzImage 500000
for dtb in bcm2711-rpi-4-b bcm2711-rpi-400 bcm2711-rpi-cm4; do pattern $dtb.dtb 50000; done
mkdir -p "$out/rpi-firmware" "$out/efi-part/EFI/BOOT"
pattern rpi-firmware/cmdline.txt 60
pattern rpi-firmware/config.txt 900
pattern rpi-firmware/fixup4.dat 5000
pattern rpi-firmware/start4.elf 200000
pattern efi-part/EFI/BOOT/bootx64.efi 100000
pattern efi-part/EFI/BOOT/grub.cfg 300
