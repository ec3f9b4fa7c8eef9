#!/usr/bin/env python3
"""delta-trees.py ROOTFS OUT - the releases of bench/delta.sh, from the bench rootfs.

OUT/v1   the base release: ROOTFS plus a kernel and its modules
         (usr/lib/modules/<old>/, boot/vmlinuz-<old>): a hash-selected ~24 MiB
         slice of this machine's /usr/lib/modules/*/kernel when it has one,
         else generated module-like files)
OUT/a    one 5 MiB file changed: the regular file closest to 5 MiB is
         rebuilt (bytes inserted near its start, 64 small edits spread over
         it), as a rebuilt binary differs from its predecessor
OUT/b    a package upgrade: the ~40 files of one package-like directory
         (chosen by hash) edited the same way, ~20 MiB touched in all, 3
         files added (200 KiB each), 2 removed
OUT/c    a new kernel: boot/vmlinuz-<new> is a new compressed kernel (new
         bytes throughout), the modules move to usr/lib/modules/<new>/ with
         each module rebuilt (vermagic and a few code bytes changed)

Deterministic: every choice and every new byte comes from SHA-256 of a
fixed seed, so two runs on the same ROOTFS give the same trees; the
figures in docs/benchmarks.md name the MANIFEST of bench/run.sh's inputs.
"""

import hashlib
import os
import shutil
import subprocess
import sys

SEED = b"bench-delta"
MIB = 1 << 20
OLD, NEW = "6.1.0-bench1", "6.1.0-bench2"


def stream(tag, n):
    """n deterministic pseudo-random bytes for tag."""
    out = bytearray()
    ctr = 0
    while len(out) < n:
        out += hashlib.sha256(SEED + tag + ctr.to_bytes(8, "little")).digest()
        ctr += 1
    return bytes(out[:n])


def h(tag):
    return int.from_bytes(hashlib.sha256(SEED + tag).digest()[:8], "little")


def rebuild(data, tag):
    """A rebuilt file: 1 KiB inserted at a third, 64 edits of 1-256 bytes."""
    b = bytearray(data)
    cut = len(b) // 3
    b[cut:cut] = stream(tag + b"/insert", 1024)
    for i in range(64):
        at = h(tag + b"/edit/%d" % i) % max(len(b), 1)
        n = 1 + h(tag + b"/len/%d" % i) % 256
        b[at:at + n] = stream(tag + b"/bytes/%d" % i, len(b[at:at + n]))
    return bytes(b)


def replace(path, data):
    """Writes a new file in place of path, keeping its mode and times."""
    st = os.lstat(path)
    tmp = path + ".new"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, st.st_mode & 0o7777)
    os.chown(tmp, st.st_uid, st.st_gid)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, path)


def regular_files(root):
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for n in sorted(files):
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p) and os.lstat(p).st_nlink == 1:
                yield p


def copy_tree(src, dst):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    subprocess.run(["cp", "-a", src, dst], check=True)


def add_kernel(root):
    mods = os.path.join(root, "usr/lib/modules", OLD)
    os.makedirs(os.path.join(root, "boot"), exist_ok=True)
    hosts = sorted(
        os.path.join("/usr/lib/modules", k, "kernel")
        for k in (os.listdir("/usr/lib/modules") if os.path.isdir("/usr/lib/modules") else [])
    )
    picked, total = [], 0
    if hosts:
        for p in regular_files(hosts[-1]):
            if p.endswith(".ko") and h(p.encode().split(b"/kernel/")[-1]) % 8 == 0:
                picked.append((p, os.path.relpath(p, hosts[-1])))
                total += os.path.getsize(p)
                if total > 24 * MIB:
                    break
    if picked:
        for src, rel in picked:
            dst = os.path.join(mods, "kernel", rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(src, "rb") as f:
                data = f.read()
            with open(dst, "wb") as f:
                f.write(data)
    else:
        for i in range(300):
            dst = os.path.join(mods, "kernel/drivers/mod%03d.ko" % i)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(dst, "wb") as f:
                f.write(b"\x7fELF" + stream(b"mod%d" % i, 80 * 1024))
    with open(os.path.join(root, "boot", "vmlinuz-" + OLD), "wb") as f:
        f.write(stream(b"vmlinuz-old", 8 * MIB))
    for d, dirs, files in os.walk(mods):
        for n in dirs + files:
            os.utime(os.path.join(d, n), (1700000000, 1700000000))


def main(rootfs, out):
    os.makedirs(out, exist_ok=True)
    v1 = os.path.join(out, "v1")
    copy_tree(rootfs, v1)
    add_kernel(v1)

    # (a) one ~5 MiB file rebuilt
    a = os.path.join(out, "a")
    copy_tree(v1, a)
    target = min(regular_files(a), key=lambda p: (abs(os.path.getsize(p) - 5 * MIB), p))
    with open(target, "rb") as f:
        replace(target, rebuild(f.read(), b"a"))
    print(f"a: rebuilt {os.path.relpath(target, a)} ({os.path.getsize(target)} bytes)")

    # (b) a package upgrade: one directory's files, ~40 files, ~20 MiB
    b = os.path.join(out, "b")
    copy_tree(v1, b)
    # package-sized files: 40 of them make ~20 MiB
    cands = [p for p in regular_files(os.path.join(b, "usr")) if 256 * 1024 <= os.path.getsize(p) <= 2 * MIB]
    cands.sort(key=lambda p: (h(os.path.relpath(p, b).encode()), p))
    changed, touched = [], 0
    for p in cands:
        if len(changed) >= 40 or touched >= 20 * MIB:
            break
        size = os.path.getsize(p)
        if touched + size > 22 * MIB:
            continue
        with open(p, "rb") as f:
            replace(p, rebuild(f.read(), os.path.relpath(p, b).encode()))
        changed.append(p)
        touched += size
    pkg = os.path.join(b, "usr/share/bench-pkg")
    os.makedirs(pkg, exist_ok=True)
    for i in range(3):
        text = b"".join(b"line %d of new file %d: %s\n" % (j, i, stream(b"t%d/%d" % (i, j), 24).hex().encode())
                        for j in range(2700))
        with open(os.path.join(pkg, "new%d.txt" % i), "wb") as f:
            f.write(text[:200 * 1024])
    removed = cands[-2:]
    for p in removed:
        os.unlink(p)
    print(f"b: {len(changed)} files changed ({touched / MIB:.1f} MiB), 3 added, 2 removed")

    # (c) a new kernel and its modules
    c = os.path.join(out, "c")
    copy_tree(v1, c)
    old_mods = os.path.join(c, "usr/lib/modules", OLD)
    new_mods = os.path.join(c, "usr/lib/modules", NEW)
    os.rename(old_mods, new_mods)
    n = 0
    for p in regular_files(new_mods):
        with open(p, "rb") as f:
            data = bytearray(f.read())
        # vermagic and a few code bytes
        for i in range(4):
            at = h(p.encode() + b"/%d" % i) % max(len(data), 1)
            data[at:at + 16] = stream(p.encode() + b"/c%d" % i, len(data[at:at + 16]))
        replace(p, bytes(data))
        n += 1
    os.unlink(os.path.join(c, "boot", "vmlinuz-" + OLD))
    with open(os.path.join(c, "boot", "vmlinuz-" + NEW), "wb") as f:
        f.write(stream(b"vmlinuz-new", 8 * MIB + 12345))
    print(f"c: new kernel, {n} modules rebuilt under usr/lib/modules/{NEW}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
