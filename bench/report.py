#!/usr/bin/env python3
"""report.py RESULTS_DIR - markdown tables from bench/run.sh's TSV results.

Figures are median [min-max]. Ratios to image-composer are taken within a
round (the tools alternate), then summarised, so that load drift on a shared
machine hits every tool alike.
"""

import os
import statistics
import sys
from collections import defaultdict

MIB = 1 << 20
REF = "image-composer"


def rows(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def fig(values, fmt="{:.2f}"):
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} [{fmt.format(min(values))}–{fmt.format(max(values))}]"


def med(values):
    return statistics.median(values) if values else float("nan")


def main(res):
    print("### Machine\n")
    print("```")
    with open(os.path.join(res, "machine.txt")) as f:
        print(f.read().rstrip())
    print("```\n")

    build = rows(os.path.join(res, "build.tsv"))
    # name wall user sys rss_kib wchar write_bytes round alloc mapped load
    by_tool = defaultdict(list)
    by_round = defaultdict(dict)
    for r in build:
        name, wall, user, sys_, rss, wchar, wbytes, rnd, alloc, mapped, load = r
        rec = dict(wall=float(wall), cpu=float(user) + float(sys_), user=float(user),
                   sys=float(sys_), rss=int(rss) / 1024, wchar=int(wchar) / MIB,
                   wbytes=int(wbytes) / MIB, alloc=int(alloc) / MIB, mapped=int(mapped) / MIB,
                   load=float(load))
        by_tool[name].append(rec)
        by_round[rnd][name] = rec
    verify = defaultdict(list)
    for name, _rnd, result in rows(os.path.join(res, "verify.tsv")):
        verify[name].append(result)

    floor = defaultdict(list)
    for r in rows(os.path.join(res, "floor.tsv")):
        floor[r[0]].append(dict(wall=float(r[1]), cpu=float(r[2]) + float(r[3])))

    if build:
        print("### bench-ab build\n")
        print("| tool | runs | wall s | wall ÷ image-composer | user+sys s | user+sys ÷ image-composer "
              "| user s | sys s | peak RSS MiB | written MiB (page cache dirtied) | write calls MiB "
              "| allocated MiB | mapped MiB | verified |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name, recs in by_tool.items():
            rw, rc = [], []
            for rnd in by_round.values():
                if name in rnd and REF in rnd:
                    rw.append(rnd[name]["wall"] / rnd[REF]["wall"])
                    rc.append(rnd[name]["cpu"] / rnd[REF]["cpu"])
            ok = verify.get(name, [])
            vtext = f"{sum(v == 'OK' for v in ok)}/{len(ok)} OK" if ok else "not run"
            bad = sorted({v for v in ok if v != "OK"})
            if bad:
                vtext += " (" + "; ".join(bad) + ")"
            print(f"| {name} | {len(recs)} | {fig([r['wall'] for r in recs])} | **{fig(rw)}** "
                  f"| {fig([r['cpu'] for r in recs])} | **{fig(rc)}** "
                  f"| {med([r['user'] for r in recs]):.2f} | {med([r['sys'] for r in recs]):.2f} "
                  f"| {fig([r['rss'] for r in recs], '{:.0f}')} | {med([r['wbytes'] for r in recs]):.0f} "
                  f"| {med([r['wchar'] for r in recs]):.0f} | {med([r['alloc'] for r in recs]):.0f} "
                  f"| {med([r['mapped'] for r in recs]):.0f} | {vtext} |")
        loads = [r["load"] for recs in by_tool.values() for r in recs]
        print(f"\nLoad average (1 min) at the start of the timed builds: {fig(loads)}.\n")

    if floor:
        w, s = floor.get("write", []), floor.get("sha256", [])
        print("### Physical floor (same run; the image-composer image's mapped bytes)\n")
        print("| what | wall s | user+sys s |")
        print("|---|---|---|")
        print(f"| write the mapped bytes once into a fresh file (4 MiB pwrite) | {fig([x['wall'] for x in w])} "
              f"| {fig([x['cpu'] for x in w])} |")
        print(f"| SHA-256 of the mapped bytes, one core (hashlib) | {fig([x['wall'] for x in s])} "
              f"| {fig([x['cpu'] for x in s])} |")
        fw = max(med([x["wall"] for x in w]), med([x["wall"] for x in s]))
        fc = med([x["cpu"] for x in w]) + med([x["cpu"] for x in s])
        print(f"| **floor**: both overlapped on two cores (wall = the slower; CPU = the sum) | {fw:.2f} | {fc:.2f} |")
        if REF in by_tool:
            iw = med([r["wall"] for r in by_tool[REF]])
            ic = med([r["cpu"] for r in by_tool[REF]])
            print(f"\nimage-composer ÷ floor: wall **{iw / fw:.2f}**, user+sys **{ic / fc:.2f}**.\n")
        else:
            print()

    ext4 = rows(os.path.join(res, "ext4.tsv"))
    if ext4:
        tree = None
        with open(os.path.join(res, "machine.txt")) as f:
            for line in f:
                if line.startswith("tree_bytes "):
                    tree = int(line.split()[1])
        e = defaultdict(list)
        for r in ext4:
            e[r[0]].append(dict(wall=float(r[1]), cpu=float(r[2]) + float(r[3]), rss=int(r[4]) / 1024,
                                wbytes=int(r[6]) / MIB))
        print("### ext4 alone: one 1.5 GiB filesystem from rootfs/\n")
        print("| tool | runs | wall s | user+sys s | peak RSS MiB | written MiB |")
        print("|---|---|---|---|---|---|")
        for name, recs in e.items():
            print(f"| {name} | {len(recs)} | {fig([r['wall'] for r in recs])} | {fig([r['cpu'] for r in recs])} "
                  f"| {fig([r['rss'] for r in recs], '{:.0f}')} | {med([r['wbytes'] for r in recs]):.0f} |")
        if "image-composer" in e and "mke2fs -d" in e:
            cpu_ratio = med([r["cpu"] for r in e["mke2fs -d"]]) / med([r["cpu"] for r in e["image-composer"]])
            print(f"\nmke2fs -d uses **{cpu_ratio:.1f}×** the CPU of image-composer.", end="")
            if tree:
                rss = med([r["rss"] for r in e["image-composer"]])
                print(f" image-composer's peak RSS is {rss:.0f} MiB for a {tree / MIB:.0f} MiB tree.", end="")
            print("\n")

    bm = rows(os.path.join(res, "bmap.tsv"))
    if bm:
        b = defaultdict(list)
        for r in bm:
            b[r[0]].append(dict(wall=float(r[1]), cpu=float(r[2]) + float(r[3]), rss=int(r[4]) / 1024))
        print("### The bmap: inline vs bmaptool create\n")
        print("| what | runs | wall s | user+sys s | peak RSS MiB |")
        print("|---|---|---|---|---|")
        for name, recs in b.items():
            print(f"| {name} | {len(recs)} | {fig([r['wall'] for r in recs])} | {fig([r['cpu'] for r in recs])} "
                  f"| {fig([r['rss'] for r in recs], '{:.0f}')} |")
        variants = rows(os.path.join(res, "variants.tsv"))
        if variants:
            print("\n| image-composer variant | non-zero MiB (4 KiB blocks) | allocated MiB (du) "
                  "| bmap mapped MiB | verified |")
            print("|---|---|---|---|---|")
            for name, alloc, nonzero, mapped, result in variants:
                mtext = f"{int(mapped) * 4096 / MIB:.0f}" if mapped else "(no bmap)"
                print(f"| {name} | {int(nonzero) / MIB:.0f} | {int(alloc) / MIB:.0f} | {mtext} | {result} |")
        cmp_path = os.path.join(res, "bmapcmp.txt")
        if os.path.exists(cmp_path):
            print("\n```")
            with open(cmp_path) as f:
                print(f.read().rstrip())
            print("```")
        print()

    ro = rows(os.path.join(res, "rofs.tsv"))
    if ro:
        # variant tool wall user sys rss_kib wchar write_bytes
        r_by = defaultdict(list)
        for r in ro:
            r_by[(r[0], r[1])].append(dict(wall=float(r[2]), cpu=float(r[3]) + float(r[4]),
                                           rss=int(r[5]) / 1024))
        sizes = {r[0]: (int(r[1]), int(r[2]), r[3]) for r in rows(os.path.join(res, "rofs-size.tsv"))}
        print("### Read-only filesystems: rootfs/ as squashfs and EROFS\n")
        print("| variant | tool | runs | wall s | user+sys s | peak RSS MiB | image MiB | size ÷ peer | wall ÷ peer "
              "| checked |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for v in dict.fromkeys(k[0] for k in r_by):
            tools = [k[1] for k in r_by if k[0] == v]
            peer = next((t for t in tools if t != REF), None)
            ours, theirs, check = sizes.get(v, (0, 0, "-"))
            for t in tools:
                recs = r_by[(v, t)]
                size = ours if t == REF else theirs
                if t == REF and peer and theirs:
                    sr = f"**{ours / theirs:.3f}**"
                    wr = f"**{med([x['wall'] for x in recs]) / med([x['wall'] for x in r_by[(v, peer)]]):.2f}**"
                else:
                    sr = wr = ""
                print(f"| {v} | {t} | {len(recs)} | {fig([x['wall'] for x in recs])} "
                      f"| {fig([x['cpu'] for x in recs])} | {fig([x['rss'] for x in recs], '{:.0f}')} "
                      f"| {size / MIB:.2f} | {sr} | {wr} | {check} |")
        print()

    dl = rows(os.path.join(res, "delta.tsv"))
    if dl:
        # change method bytes make_s apply_s apply_rss_kib
        changes = os.path.join(res, "changes.txt")
        if os.path.exists(changes):
            print("Changes (bench/delta-trees.py):\n\n```")
            with open(changes) as f:
                print(f.read().rstrip())
            print("```\n")
        print("### Deltas: what the device downloads\n")
        print("| change | method | bytes | ÷ rsync batch | make s | apply s | apply peak RSS MiB |")
        print("|---|---|---|---|---|---|---|")
        batch = {r[0]: int(r[2]) for r in dl if r[1] == "rsync --only-write-batch"}
        for change, method, size, make, apply, rss in dl:
            ratio = f"{int(size) / batch[change]:.2f}" if batch.get(change) else "-"
            if method.startswith("image-composer delta"):
                ratio = f"**{ratio}**"
            rss = f"{int(rss) / 1024:.0f}" if rss != "-" else "-"
            print(f"| {change} | {method} | {int(size):,} | {ratio} | {make} | {apply} | {rss} |")
        print()


if __name__ == "__main__":
    main(sys.argv[1])
