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
