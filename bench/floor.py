#!/usr/bin/env python3
"""floor.py - helpers of bench/run.sh that look at an image's mapped bytes.

  floor.py mapped IMG          bytes in IMG's data extents (SEEK_DATA/SEEK_HOLE)
  floor.py write IMG OUT       the physical floor of writing: every mapped byte
                               of IMG written once, at its offset, into a fresh
                               sparse file OUT (4 MiB pread/pwrite, one buffer)
  floor.py sha256 IMG          the floor of hashing: SHA-256 of every mapped
                               byte (hashlib = OpenSSL, SHA-NI where the CPU
                               has it), one core
  floor.py nonzero IMG         bytes in IMG's 4 KiB blocks that hold a non-zero
                               byte: the least any block map could map
  floor.py bmapcmp A B         compares two bmap files: mapped blocks, ranges,
                               and whether A's mapped blocks cover B's

Data extents come from SEEK_DATA/SEEK_HOLE, as the kernel reports them: for a
file written by a tool they are exactly what it wrote (fallocated unwritten
extents count as holes).
"""

import hashlib
import os
import sys
import xml.etree.ElementTree as ET

CHUNK = 4 << 20  # large sequential I/O, as the composer itself does


def extents(fd):
    """(start, end) of every data extent of fd."""
    size = os.fstat(fd).st_size
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: no data after pos
            return
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, end
        pos = end


def chunks(fd, buf):
    view = memoryview(buf)
    for start, end in extents(fd):
        off = start
        while off < end:
            n = os.preadv(fd, [view[: min(CHUNK, end - off)]], off)
            if n <= 0:
                raise OSError(f"short read at {off}")
            yield off, view[:n]
            off += n


def cmd_mapped(img):
    fd = os.open(img, os.O_RDONLY)
    print(sum(e - s for s, e in extents(fd)))


def cmd_nonzero(img):
    fd = os.open(img, os.O_RDONLY)
    buf = bytearray(CHUNK)
    zero_chunk, zero_block = bytes(CHUNK), bytes(4096)
    total = 0
    for off, data in chunks(fd, buf):
        data = bytes(data)
        if data == zero_chunk[: len(data)]:
            continue
        # Blocks are counted at their image offset: extents start on 4 KiB
        # boundaries on every filesystem an image is built on.
        first = off - off % 4096
        for b in range(first, off + len(data), 4096):
            lo, hi = max(b, off) - off, min(b + 4096, off + len(data)) - off
            if data[lo:hi] != zero_block[: hi - lo]:
                total += 4096
    print(total)


def cmd_write(img, out):
    src = os.open(img, os.O_RDONLY)
    dst = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.ftruncate(dst, os.fstat(src).st_size)
    buf = bytearray(CHUNK)
    total = 0
    for off, data in chunks(src, buf):
        total += os.pwrite(dst, data, off)
    os.close(dst)
    print(f"wrote {total} bytes", file=sys.stderr)


def cmd_sha256(img):
    fd = os.open(img, os.O_RDONLY)
    buf = bytearray(CHUNK)
    h = hashlib.sha256()
    total = 0
    for _, data in chunks(fd, buf):
        h.update(data)
        total += len(data)
    print(f"sha256 of {total} mapped bytes: {h.hexdigest()}", file=sys.stderr)


def bmap_ranges(path):
    root = ET.parse(path).getroot()
    bs = int(root.findtext("BlockSize").strip())
    blocks = set()
    ranges = []
    for r in root.find("BlockMap"):
        text = r.text.strip()
        a, _, b = text.partition("-")
        first, last = int(a), int(b or a)
        ranges.append((first, last))
        blocks.update(range(first, last + 1))
    return bs, ranges, blocks


def cmd_bmapcmp(a, b):
    bsa, ra, ba = bmap_ranges(a)
    bsb, rb, bb = bmap_ranges(b)
    print(f"{a}: block {bsa}, {len(ra)} ranges, {len(ba)} blocks = {len(ba) * bsa} bytes mapped")
    print(f"{b}: block {bsb}, {len(rb)} ranges, {len(bb)} blocks = {len(bb) * bsb} bytes mapped")
    if bsa == bsb:
        print(f"blocks mapped only in the first: {len(ba - bb)}; only in the second: {len(bb - ba)}")


def main():
    cmds = {"mapped": cmd_mapped, "nonzero": cmd_nonzero, "write": cmd_write, "sha256": cmd_sha256, "bmapcmp": cmd_bmapcmp}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    main()
