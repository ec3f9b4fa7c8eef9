#!/usr/bin/env bash
# run.sh - the "bench-ab" benchmark (issue 6): image-composer against genimage
# and systemd-repart on the same inputs, in one run, plus the machine's
# physical floor, ext4 alone against `mke2fs -d`, and our bmap against
# `bmaptool create`. Prints markdown tables on stdout (docs/benchmarks.md
# keeps a copy); raw figures stay in $WORKDIR/results.
#
#   bench/run.sh                         # everything, RUNS=5
#   RUNS=3 STEPS="build floor" bench/run.sh
#
# Steps (STEPS, default "build floor ext4 bmap rofs"):
#   build  RUNS timed builds (+WARMUP untimed) of every tool in TOOLS,
#          alternating: the start tool rotates every round, and ratios to
#          image-composer are taken within a round, so machine drift hits all
#          tools alike. Every image built is verified afterwards, outside the
#          timing (VERIFY=each|last|none): e2fsck -fn on each ext4 partition
#          (img?offset=N), fsck.vfat -n on the extracted boot partition,
#          bmaptool copy of the image with its bmap, cmp of the copy.
#   floor  the physical floor, measured in the same run: the composer image's
#          mapped bytes written once into a fresh file, and SHA-256 of them
#          on one core (bench/floor.py)
#   ext4   one 1.5 GiB ext4 from rootfs/: image-composer vs mke2fs -d (same
#          tree, size and options), both checked with e2fsck -fn
#   bmap   image-composer with and without its inline bmap, and
#          `bmaptool create` on the finished image; mapped-block comparison
#   rofs   rootfs/ as a read-only filesystem: squashfs (zstd, xz) and EROFS
#          (lz4hc) by image-composer against mksquashfs and mkfs.erofs with
#          the same block size, compression and level (their defaults
#          otherwise: mksquashfs on all cores, with duplicate detection and
#          its NFS export table); the pair alternates which goes first. Each
#          image is checked (unsquashfs -lln listings of both must be equal
#          but for directory sizes, which count index headers; fsck.erofs on
#          both) and its size kept.
#
# Environment: WORKDIR (${TMPDIR:-/tmp}/bench-ab), BENCH_INPUTS
# ($WORKDIR/inputs; generated when missing), RUNS (5), WARMUP (1), TOOLS
# ("image-composer genimage repart"), STEPS, VERIFY (each), COMPOSER (the
# binary; default target/release/image-composer, built when missing),
# REFERENCE (../shared/bench: the reference scenario's input generator,
# genimage config and repart.d definitions, used for the peers as they are).
#
# Needs (installed with apt-get when missing and root): time genimage systemd
# (systemd-repart) e2fsprogs dosfstools mtools fdisk bmap-tools python3.
# repart needs root, loop devices and mounts; it is dropped when not root.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
export WORKDIR=${WORKDIR:-${TMPDIR:-/tmp}/bench-ab}
export BENCH_INPUTS=${BENCH_INPUTS:-$WORKDIR/inputs}
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
TOOLS=${TOOLS:-"image-composer genimage repart"}
STEPS=${STEPS:-"build floor ext4 bmap rofs"}
VERIFY=${VERIFY:-each}
COMPOSER=${COMPOSER:-$ROOT/target/release/image-composer}
if [[ -z ${REFERENCE:-} ]]; then
    # ../shared beside the repository (CI, /work/main); one level up from a worktree
    for REFERENCE in "$ROOT/../shared/bench" "$ROOT/../../shared/bench"; do
        [[ -d $REFERENCE ]] && break
    done
fi
TIME=/usr/bin/time
OUT=$WORKDIR/ic-out
RES=$WORKDIR/ic-results
export LC_ALL=C MTOOLS_SKIP_CHECK=1 SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}

die() { echo "bench: $*" >&2; exit 1; }
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
has() { [[ " $2 " == *" $1 "* ]]; }

########################################################################
# tools and inputs
########################################################################
need_pkgs=()
need() { # need COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 || need_pkgs+=("$2")
}
need /usr/bin/time time
need mke2fs e2fsprogs
need fsck.vfat dosfstools
need mcopy mtools
need sfdisk fdisk
need bmaptool bmap-tools
need python3 python3
has rofs "$STEPS" && need mksquashfs squashfs-tools
has rofs "$STEPS" && need mkfs.erofs erofs-utils
has genimage "$TOOLS" && need genimage genimage
# Debian 12 ships systemd-repart in the systemd package itself (newer
# releases split it out as systemd-repart)
has repart "$TOOLS" && need systemd-repart systemd
if ((${#need_pkgs[@]})); then
    [[ $(id -u) == 0 ]] || die "missing packages: ${need_pkgs[*]} (install them, or run as root)"
    log "installing ${need_pkgs[*]}"
    apt-get install -y --no-install-recommends "${need_pkgs[@]}" >&2 ||
        { apt-get update >&2 && apt-get install -y --no-install-recommends "${need_pkgs[@]}" >&2; }
fi
if has repart "$TOOLS" && [[ $(id -u) != 0 ]]; then
    log "not root: dropping systemd-repart (it needs loop devices and mounts)"
    TOOLS=${TOOLS//repart/}
fi

if [[ ! -f $BENCH_INPUTS/MANIFEST.sha256 ]]; then
    [[ -x $REFERENCE/make-inputs.sh ]] || die "no inputs in $BENCH_INPUTS and no generator at $REFERENCE/make-inputs.sh"
    [[ $BENCH_INPUTS == "$WORKDIR/inputs" ]] || die "BENCH_INPUTS=$BENCH_INPUTS has no MANIFEST.sha256"
    log "generating inputs with $REFERENCE/make-inputs.sh"
    "$REFERENCE/make-inputs.sh" >&2
fi
if [[ ! -x $COMPOSER ]]; then
    log "building $COMPOSER"
    (cd "$ROOT" && cargo build --release --quiet) >&2
fi
mkdir -p "$OUT" "$RES/logs"

########################################################################
# measuring
########################################################################
# measure TABLE NAME LOG CMD... : run CMD under GNU time and append
# "name wall user sys rss_kib wchar write_bytes" to $RES/TABLE.tsv. The I/O
# figures are the tree's /proc/<pid>/io after its children were reaped (Linux
# adds a reaped child's counters to its parent's): wchar = bytes passed to
# write-like calls, write_bytes = bytes of page cache it dirtied.
measure() {
    local table=$1 name=$2 logf=$3 tf=$RES/.time iof=$RES/.io rc
    shift 3
    rm -f "$iof"
    # shellcheck disable=SC2016 # expanded by the inner shell
    $TIME -f '%e %U %S %M %x' -o "$tf" \
        sh -c '"$@"; rc=$?; cat /proc/$$/io > "$IOF"; exit $rc' sh "$@" >"$logf" 2>&1 || true
    local t wchar=0 wbytes=0
    t=$(tail -n1 "$tf")
    if [[ -f $iof ]]; then
        wchar=$(awk '/^wchar:/ { print $2 }' "$iof")
        wbytes=$(awk '/^write_bytes:/ { print $2 }' "$iof")
    fi
    rc=${t##* }
    t=${t% *}
    printf '%s\t%s\t%s\t%s\n' "$name" "${t// /$'\t'}" "$wchar" "$wbytes" >> "$RES/$table.tsv"
    if [[ $rc != 0 ]]; then
        log "FAILED ($rc): $name, see $logf"; tail -5 "$logf" >&2
        return 1
    fi
}
export IOF=$RES/.io

# repart 252 mounts the new vfat to copy files into it; a kernel without vfat
# cannot, so its boot definition loses CopyFiles= and mcopy fills the
# partition inside the timed command (what systemd >= 253 does itself)
REPART_DEFS=$REFERENCE/repart.d
REPART_MCOPY=0
if has repart "$TOOLS" && ! grep -qw vfat /proc/filesystems && ! modprobe -q vfat 2>/dev/null; then
    REPART_DEFS=$WORKDIR/ic-repart.d
    rm -rf "$REPART_DEFS" && mkdir -p "$REPART_DEFS"
    cp "$REFERENCE"/repart.d/*.conf "$REPART_DEFS/"
    sed -i '/^CopyFiles=/d' "$REPART_DEFS/10-boot.conf"
    REPART_MCOPY=1
    log "kernel cannot mount vfat: repart formats boot, mcopy fills it (timed with repart)"
fi

tool_cmd() { # TOOL OUTDIR -> CMD array; the image is OUTDIR/bench-ab.img
    local d=$2
    case $1 in
        image-composer)
            CMD=("$COMPOSER" build "${YAML:-$HERE/bench-ab.yaml}" -o "$d") ;;
        genimage)
            mkdir -p "$d/root" "$d/input"
            CMD=(genimage --config "$REFERENCE/genimage-bench-ab.cfg" --rootpath "$d/root"
                 --tmppath "$d/tmp" --inputpath "$d/input" --outputpath "$d") ;;
        repart)
            local r=(systemd-repart --empty=create --size=8G --dry-run=no --pretty=no --no-pager
                     --definitions="$REPART_DEFS" --root="$BENCH_INPUTS"
                     --seed=b3c4ab00-0000-4000-8000-000000000000 "$d/bench-ab.img")
            if [[ $REPART_MCOPY == 1 ]]; then
                # shellcheck disable=SC2016
                CMD=(sh -c '"$@" && mcopy -s -p -m -i "$0@@1048576" "$BENCH_INPUTS"/boot/* ::'
                     "$d/bench-ab.img" "${r[@]}")
            else
                CMD=("${r[@]}")
            fi ;;
        *) die "unknown tool $1" ;;
    esac
}

# verify IMG BMAP|"" : e2fsck -fn on every ext4 partition, fsck.vfat -n on
# every vfat one (extracted), bmaptool copy + cmp. Prints OK or what failed.
verify() {
    local img=$1 bmap=$2 v=$WORKDIR/ic-verify fails=() start size fstype
    rm -rf "$v" && mkdir -p "$v"
    while read -r start size; do
        fstype=$(blkid -p -o value -s TYPE -O "$start" "$img" 2>/dev/null || true)
        case $fstype in
            ext4)
                e2fsck -fn "$img?offset=$start" >"$v/e2fsck.$start" 2>&1 || fails+=("e2fsck@$start") ;;
            vfat)
                dd if="$img" of="$v/part.vfat" bs=1M iflag=skip_bytes,count_bytes \
                    skip="$start" count="$size" conv=sparse status=none
                fsck.vfat -n "$v/part.vfat" >"$v/fsck.$start" 2>&1 || fails+=("fsck.vfat@$start")
                rm -f "$v/part.vfat" ;;
            *) fails+=("unknown-fs($fstype)@$start") ;;
        esac
    done < <(sfdisk -J "$img" | python3 -c '
import json, sys
t = json.load(sys.stdin)["partitiontable"]
ss = t.get("sectorsize", 512)
for p in t["partitions"]:
    print(p["start"] * ss, p["size"] * ss)')
    if [[ -z $bmap ]]; then
        bmap=$v/bmaptool.bmap
        bmaptool create -o "$bmap" "$img" 2>/dev/null || fails+=("bmaptool-create")
    fi
    if bmaptool copy --bmap "$bmap" "$img" "$v/copy.img" >"$v/bmaptool.log" 2>&1; then
        cmp -s "$img" "$v/copy.img" || fails+=("cmp-after-bmaptool-copy")
    else
        fails+=("bmaptool-copy")
    fi
    rm -f "$v/copy.img"
    if ((${#fails[@]})); then echo "FAIL:${fails[*]}"; cp -r "$v" "$RES/logs/verify-failed-$(date +%s)"; else echo OK; fi
}

mapped_bytes() { # bytes in SEEK_DATA extents of a file
    python3 "$HERE/floor.py" mapped "$1"
}

########################################################################
# machine
########################################################################
{
    echo "date       $(date -u +%FT%TZ)"
    echo "nproc      $(nproc)"
    echo "cpu        $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "memory     $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "kernel     $(uname -r)"
    echo "workdir    $(df -PT "$WORKDIR" | awk 'NR == 2 { print $2 " on " $1 }') ($(findmnt -no OPTIONS -T "$WORKDIR" 2>/dev/null || echo '?'))"
    echo "inputs     $(cut -c1-16 "$BENCH_INPUTS/MANIFEST.sha256") (MANIFEST sha256)"
    echo "composer   $("$COMPOSER" --version 2>&1 | head -1) ($(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'))"
    has genimage "$TOOLS" && echo "genimage   $(genimage --version 2>&1 | head -1)"
    has repart "$TOOLS" && echo "repart     $(systemd-repart --version | head -1) (mcopy for boot: $REPART_MCOPY)"
    echo "e2fsprogs  $(mke2fs -V 2>&1 | head -1)"
    has rofs "$STEPS" && echo "squashfs   $(mksquashfs -version 2>&1 | head -1)" &&
        echo "erofs      erofs-utils $(dpkg-query -W -f '${Version}' erofs-utils 2>/dev/null || echo '?')"
    echo "bmaptool   $(bmaptool --version 2>&1)"
    echo "load       $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) at start"
} > "$RES/machine.txt"
cat "$RES/machine.txt" >&2

########################################################################
# build
########################################################################
if has build "$STEPS"; then
    : > "$RES/build.tsv"
    : > "$RES/verify.tsv"
    read -ra tools <<<"$TOOLS"
    n=${#tools[@]}
    for ((round = 1 - WARMUP; round <= RUNS; round++)); do
        for ((i = 0; i < n; i++)); do
            t=${tools[(i + round + n) % n]}
            d=$OUT/$t
            rm -rf "$d" && mkdir -p "$d" && sync
            tool_cmd "$t" "$d"
            if ((round < 1)); then
                log "warm-up: $t"
                "${CMD[@]}" >"$RES/logs/$t.warmup.log" 2>&1 || die "$t failed, see $RES/logs/$t.warmup.log"
                continue
            fi
            log "round $round: $t"
            load=$(cut -d' ' -f1 /proc/loadavg)
            measure build.run "$t" "$RES/logs/$t.$round.log" "${CMD[@]}" ||
                die "$t failed in round $round"
            img=$d/bench-ab.img
            bmap=""
            [[ $t == image-composer ]] && bmap=$d/bench-ab.img.bmap
            printf '%s\t%s\t%s\t%s\t%s\n' "$(tail -n1 "$RES/build.run.tsv")" "$round" \
                "$(du -B1 "$img" | cut -f1)" "$(mapped_bytes "$img")" "$load" >> "$RES/build.tsv"
            rm -f "$RES/build.run.tsv"
            if [[ $VERIFY == each || ($VERIFY == last && $round == "$RUNS") ]]; then
                printf '%s\t%s\t%s\n' "$t" "$round" "$(verify "$img" "$bmap")" >> "$RES/verify.tsv"
            fi
            if [[ $t == image-composer && $round == "$RUNS" ]]; then
                # kept for the floor and bmap steps
                rm -rf "$WORKDIR/ic-last" && mv "$d" "$WORKDIR/ic-last"
            fi
        done
    done
    log "build: $(cut -f3 "$RES/verify.tsv" | sort | uniq -c | tr '\n' ' ')"
fi

########################################################################
# floor
########################################################################
LAST=$WORKDIR/ic-last/bench-ab.img
if has floor "$STEPS"; then
    [[ -f $LAST ]] || { mkdir -p "$WORKDIR/ic-last"; "$COMPOSER" build "$HERE/bench-ab.yaml" -o "$WORKDIR/ic-last" >&2; }
    : > "$RES/floor.tsv"
    for ((r = 1; r <= RUNS; r++)); do
        rm -f "$WORKDIR/floor.out" && sync
        measure floor write "$RES/logs/floor-write.log" python3 "$HERE/floor.py" write "$LAST" "$WORKDIR/floor.out"
        measure floor sha256 "$RES/logs/floor-sha.log" python3 "$HERE/floor.py" sha256 "$LAST"
    done
    rm -f "$WORKDIR/floor.out"
fi

########################################################################
# ext4 alone
########################################################################
if has ext4 "$STEPS"; then
    : > "$RES/ext4.tsv"
    e=$WORKDIR/ic-ext4
    cat > "$WORKDIR/ext4-only.yaml" <<EOF
# one 1.5 GiB ext4 from rootfs/, no partition table (bench/run.sh, step ext4)
image: { name: bench-ab, table: none, size: 1536MiB, seed: bench-ab }
partitions:
  - name: rootA
    offset: 0
    size: 1536MiB
    fs:
      type: ext4
      label: rootA
      uuid: b3c4ab00-0000-4000-8000-0000000000f2
      from: \${BENCH_INPUTS}/rootfs
      owners: source
outputs: [raw]
EOF
    for ((r = 1; r <= RUNS; r++)); do
        rm -rf "$e" && mkdir -p "$e" && sync
        YAML=$WORKDIR/ext4-only.yaml tool_cmd image-composer "$e"
        measure ext4 image-composer "$RES/logs/ext4-ic.log" "${CMD[@]}"
        e2fsck -fn "$e/bench-ab.img" >"$RES/logs/ext4-ic-fsck.log" 2>&1 || die "e2fsck failed on image-composer's ext4"
        rm -rf "$e" && mkdir -p "$e" && sync
        # the peers' options: 4 KiB blocks, -T default, no reserved blocks, 256-byte inodes
        measure ext4 "mke2fs -d" "$RES/logs/ext4-mke2fs.log" mke2fs -q -F -t ext4 -b 4096 -T default -m 0 -I 256 \
            -L rootA -U b3c4ab00-0000-4000-8000-0000000000f2 -d "$BENCH_INPUTS/rootfs" "$e/rootA.ext4" 1536M
        e2fsck -fn "$e/rootA.ext4" >"$RES/logs/ext4-mke2fs-fsck.log" 2>&1 || die "e2fsck failed on mke2fs's ext4"
    done
    rm -rf "$e"
    echo "tree_bytes $(du -sb "$BENCH_INPUTS/rootfs" | cut -f1)" >> "$RES/machine.txt"
fi

########################################################################
# bmap
########################################################################
if has bmap "$STEPS"; then
    : > "$RES/bmap.tsv"
    : > "$RES/variants.tsv"
    sed 's/^outputs: \[raw, bmap\]$/outputs: [raw]/' "$HERE/bench-ab.yaml" > "$WORKDIR/no-bmap.yaml"
    # journals left unwritten and unmapped (mke2fs's lazy_journal_init)
    sed 's/^\( *\)type: ext4$/&\n\1journal-init: lazy/' "$HERE/bench-ab.yaml" > "$WORKDIR/lazy-journal.yaml"
    b=$WORKDIR/ic-bmap
    for ((r = 1; r <= RUNS; r++)); do
        for y in no-bmap lazy-journal bench-ab; do
            rm -rf "$b" && mkdir -p "$b" && sync
            if [[ $y == bench-ab ]]; then YAML=$HERE/bench-ab.yaml; else YAML=$WORKDIR/$y.yaml; fi
            tool_cmd image-composer "$b"
            measure bmap "image-composer ($y)" "$RES/logs/bmap-$y.log" "${CMD[@]}"
            if [[ $r == 1 ]]; then
                # what each variant maps (bmap), allocates (du) and holds (non-zero blocks)
                printf '%s\t%s\t%s\t%s\t%s\n' "$y" "$(du -B1 "$b/bench-ab.img" | cut -f1)" \
                    "$(python3 "$HERE/floor.py" nonzero "$b/bench-ab.img")" \
                    "$(grep -h MappedBlocksCount "$b/bench-ab.img.bmap" 2>/dev/null | tr -dc 0-9)" \
                    "$(verify "$b/bench-ab.img" "$([[ -f $b/bench-ab.img.bmap ]] && echo "$b/bench-ab.img.bmap")")" >> "$RES/variants.tsv"
            fi
        done
        measure bmap "bmaptool create" "$RES/logs/bmaptool-create.log" \
            bmaptool create -o "$b/bmaptool.bmap" "$b/bench-ab.img"
    done
    [[ -f $LAST ]] && bmaptool create -o "$WORKDIR/ic-last/bmaptool.bmap" "$LAST" 2>/dev/null &&
        python3 "$HERE/floor.py" bmapcmp "$WORKDIR/ic-last/bench-ab.img.bmap" "$WORKDIR/ic-last/bmaptool.bmap" > "$RES/bmapcmp.txt"
    rm -rf "$b"
fi

########################################################################
# read-only filesystems
########################################################################
# rofs_cmd VARIANT TOOL OUT -> CMD array writing the image to OUT
rofs_cmd() {
    local v=$1 out=$3 fs comp level
    fs=${v%%-*} comp=${v#*-}
    case $2 in
        image-composer)
            case $comp in zstd) level=15 ;; xz) level=6 ;; *) level=9 ;; esac
            cat > "$WORKDIR/rofs-$v.yaml" <<EOF
# rootfs/ as $fs ($comp), an artifact only (bench/run.sh, step rofs)
image: { name: rofs, table: none, size: 4KiB, seed: bench-ab }
artifacts:
  rootfs:
    fs: { type: $fs, from: "\${BENCH_INPUTS}/rootfs", owners: source, compression: $comp, level: $level }
    output: $(basename "$out")
outputs: [raw]
EOF
            CMD=("$COMPOSER" build "$WORKDIR/rofs-$v.yaml" -o "$(dirname "$out")") ;;
        mksquashfs)
            local x=()
            [[ $comp == zstd ]] && x=(-Xcompression-level 15)
            CMD=(mksquashfs "$BENCH_INPUTS/rootfs" "$out" -noappend -no-progress -quiet -b 131072 -comp "$comp" "${x[@]}") ;;
        mkfs.erofs)
            CMD=(mkfs.erofs "-z$comp,9" "-T$SOURCE_DATE_EPOCH" "$out" "$BENCH_INPUTS/rootfs") ;;
    esac
}

if has rofs "$STEPS"; then
    : > "$RES/rofs.tsv"
    : > "$RES/rofs-size.tsv"
    o=$WORKDIR/ic-rofs
    for v in squashfs-zstd squashfs-xz erofs-lz4hc; do
        case $v in squashfs-*) peer=mksquashfs ;; *) peer=mkfs.erofs ;; esac
        for ((r = 1; r <= RUNS; r++)); do
            pair=(image-composer "$peer")
            ((r % 2)) || pair=("$peer" image-composer)
            for t in "${pair[@]}"; do
                rm -rf "${o:?}/$t" && mkdir -p "$o/$t" && sync
                rofs_cmd "$v" "$t" "$o/$t/rootfs.img"
                log "rofs $v round $r: $t"
                measure rofs "$v	$t" "$RES/logs/rofs-$v-$t.log" "${CMD[@]}" || die "$t failed on $v"
            done
            if ((r == 1)); then
                ours=$o/image-composer/rootfs.img theirs=$o/$peer/rootfs.img check=OK
                if [[ $v == squashfs-* ]]; then
                    # a directory's size counts its index headers, which
                    # depend on where its entries' inodes are: not compared
                    if unsquashfs -lln "$ours" > "$o/ours.lst" 2>&1 && unsquashfs -lln "$theirs" > "$o/theirs.lst" 2>&1; then
                        sed -i -E 's/^(d\S+ \S+) +[0-9]+ /\1 - /' "$o/ours.lst" "$o/theirs.lst"
                        diff "$o/ours.lst" "$o/theirs.lst" > "$RES/logs/rofs-$v.diff" ||
                            check="listings differ: $RES/logs/rofs-$v.diff"
                    else
                        check="unsquashfs failed"
                    fi
                else
                    { fsck.erofs "$ours" && fsck.erofs "$theirs"; } > "$RES/logs/rofs-$v-fsck.log" 2>&1 ||
                        check="fsck.erofs failed"
                fi
                printf '%s\t%s\t%s\t%s\n' "$v" "$(stat -c %s "$ours")" "$(stat -c %s "$theirs")" "$check" >> "$RES/rofs-size.tsv"
            fi
        done
    done
    rm -rf "$o"
fi

echo "load       $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) at end" >> "$RES/machine.txt"
python3 "$HERE/report.py" "$RES"
