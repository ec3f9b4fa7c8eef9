#!/usr/bin/env bash
# report.sh IMAGE [OFFSET:LENGTH:NAME ...]: the partition table of IMAGE as
# independent tools read it, in one text that genimage's and
# image-composer's images of the same layout are compared by:
# - the image size;
# - `sfdisk -d` (for a GPT disk also `sfdisk -d --label-nested dos`, the
#   protective or hybrid MBR), and for a GPT disk `sgdisk -p`;
# - the bytes of the table areas: the MBR's 72 bytes at 440 in hex, the
#   sha256 of the primary GPT (LBA 1-33) and of the backup GPT (the last 33
#   sectors), and the sha256 of every OFFSET:LENGTH range given (raw blobs).
# Run from anywhere; device names print as the image's file name.
set -euo pipefail
img=$1; shift
cd "$(dirname "$img")"
name=$(basename "$img")
size=$(stat -c %s "$name")
hexdump() { od -An -tx1 -v | tr -d ' \n'; echo; }
sha() { dd if="$name" bs=512 skip="$1" count="$2" status=none | sha256sum | cut -d' ' -f1; }
echo "## size"
echo "$size"
echo "## sfdisk -d"
sfdisk -d "$name"
gpt=$(dd if="$name" bs=1 skip=512 count=8 status=none | tr -d '\0')
if [[ $gpt == "EFI PART" ]]; then
    echo "## sfdisk -d --label-nested dos"
    sfdisk -d --label-nested dos "$name"
    echo "## sgdisk -p"
    # The first line names the file; the rest is the table.
    sgdisk -p "$name" | tail -n +2
fi
echo "## MBR bytes 440..512"
dd if="$name" bs=1 skip=440 count=72 status=none | hexdump
if [[ $gpt == "EFI PART" ]]; then
    echo "## sha256 primary GPT (LBA 1-33)"
    sha 1 33
    echo "## sha256 backup GPT (last 33 sectors)"
    sha $((size / 512 - 33)) 33
fi
for range in "$@"; do
    IFS=: read -r offset length what <<<"$range"
    echo "## sha256 $what (offset $offset, $length bytes)"
    dd if="$name" bs=1M skip="$offset" count="$length" iflag=skip_bytes,count_bytes status=none |
        sha256sum | cut -d' ' -f1
done
