#!/usr/bin/env bash
# delta.sh - deltas for slow links (issue 15): what a device downloads to go
# from one release to the next, in one run, on the bench rootfs and three
# generated changes (bench/delta-trees.py): (a) one 5 MiB file rebuilt,
# (b) a package upgrade (~40 files, ~20 MiB, 3 added, 2 removed), (c) a new
# kernel and its modules. Prints a markdown table (docs/benchmarks.md keeps
# a copy); raw figures stay in $WORKDIR/delta-results.
#
# For each change, next to the full bundle:
#   image-composer delta   between bundles built without --reference
#                          (every build places files anew) and with it
#                          (unchanged files keep their blocks); made with
#                          `image-composer delta`, applied with `ab-install`
#                          on a simulated device (AB_ROOT: slot files, the
#                          running slot A holding the base), its time and
#                          peak memory measured
#   rsync batch            `rsync -a --only-write-batch` between the two
#                          trees: the file-level ideal (raw, and zstd -19)
#   xdelta3 -9             between the two slot images (source window = the
#                          whole image, -B)
#   zstd --patch-from      `zstd -19 --long=30 --patch-from` between the two
#                          slot images
# The images for xdelta3 and zstd are the ones built with --reference when
# image-composer has it (the best case for them too), else without.
#
# Environment: WORKDIR (${TMPDIR:-/tmp}/bench-ab), BENCH_INPUTS
# ($WORKDIR/inputs; bench/run.sh generates them), COMPOSER, AB_INSTALL
# (target/release/{image-composer,ab-install}, built when missing), SLOT
# (slot size, 768MiB).
#
# Needs: rsync xdelta3 zstd time python3 (installed with apt-get when
# missing and root).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
export WORKDIR=${WORKDIR:-${TMPDIR:-/tmp}/bench-ab}
export BENCH_INPUTS=${BENCH_INPUTS:-$WORKDIR/inputs}
COMPOSER=${COMPOSER:-$ROOT/target/release/image-composer}
AB_INSTALL=${AB_INSTALL:-$ROOT/target/release/ab-install}
SLOT=${SLOT:-768MiB}
D=$WORKDIR/delta
RES=$WORKDIR/delta-results
TIME=/usr/bin/time
export LC_ALL=C SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}

die() { echo "delta-bench: $*" >&2; exit 1; }
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

need_pkgs=()
for t in rsync:rsync xdelta3:xdelta3 zstd:zstd /usr/bin/time:time python3:python3; do
    command -v "${t%%:*}" >/dev/null 2>&1 || need_pkgs+=("${t#*:}")
done
if ((${#need_pkgs[@]})); then
    [[ $(id -u) == 0 ]] || die "missing packages: ${need_pkgs[*]}"
    apt-get install -y --no-install-recommends "${need_pkgs[@]}" >&2
fi
[[ -d $BENCH_INPUTS/rootfs ]] || die "no $BENCH_INPUTS/rootfs: run bench/run.sh once (it generates the inputs)"
if [[ ! -x $COMPOSER || ! -x $AB_INSTALL ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release --quiet --workspace) >&2
fi
HAS_REF=0
"$COMPOSER" build --help | grep -q -- --reference && HAS_REF=1

rm -rf "$RES" && mkdir -p "$RES/logs" "$D"
: > "$RES/delta.tsv"

# measure NAME LOG CMD... -> "name wall user sys rss_kib" in $RES/time.tsv
measure() {
    local name=$1 logf=$2
    shift 2
    $TIME -f '%e %U %S %M' -o "$RES/.time" "$@" >"$logf" 2>&1 || { tail -5 "$logf" >&2; die "$name failed"; }
    printf '%s\t%s\n' "$name" "$(tail -n1 "$RES/.time" | tr ' ' '\t')" >> "$RES/time.tsv"
}
# row CHANGE METHOD BYTES [TIME-NAME-MAKE] [TIME-NAME-APPLY]
row() {
    local make=- apply=- rss=-
    [[ -n ${4:-} ]] && make=$(awk -F'\t' -v n="$4" '$1 == n { print $2 }' "$RES/time.tsv" | tail -1)
    if [[ -n ${5:-} ]]; then
        apply=$(awk -F'\t' -v n="$5" '$1 == n { print $2 }' "$RES/time.tsv" | tail -1)
        rss=$(awk -F'\t' -v n="$5" '$1 == n { print $5 }' "$RES/time.tsv" | tail -1)
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$make" "$apply" "$rss" >> "$RES/delta.tsv"
}
size() { stat -c %s "$1"; }

{
    echo "date       $(date -u +%FT%TZ)"
    echo "nproc      $(nproc)"
    echo "cpu        $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "inputs     $(cut -c1-16 "$BENCH_INPUTS/MANIFEST.sha256") (MANIFEST sha256)"
    echo "composer   $("$COMPOSER" --version 2>&1 | head -1) ($(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')), --reference: $HAS_REF"
    echo "rsync      $(rsync --version | head -1)"
    echo "xdelta3    $(xdelta3 -V 2>&1 | head -1)"
    echo "zstd       $(zstd --version)"
    echo "slot       $SLOT ext4"
    echo "load       $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) at start"
} > "$RES/machine.txt"
cat "$RES/machine.txt" >&2

log "generating the releases"
python3 "$HERE/delta-trees.py" "$BENCH_INPUTS/rootfs" "$D/trees" | tee "$RES/changes.txt" >&2

cat > "$D/slot.yaml" <<EOF
# one A/B slot's ext4, the bundle's contents (bench/delta.sh)
image: { name: delta, table: none, size: $SLOT, seed: bench-delta }
partitions:
  - name: rootA
    offset: 0
    size: $SLOT
    fs: { type: ext4, label: root, from: "\${TREE}", owners: source }
update: { slot: rootA, compatible: bench-delta }
outputs: [raw]
EOF
"$COMPOSER" keygen -o "$D/keys" >/dev/null 2>&1 || [[ -f $D/keys/bundle.key ]]

# release TREE VERSION OUT [REFERENCE]: image and full bundle of one release
release() {
    local tree=$1 v=$2 out=$3 ref=() 
    [[ -n ${4:-} ]] && ref=(--reference "$4")
    mkdir -p "$out"
    TREE=$D/trees/$tree measure "build $v" "$RES/logs/build-$v.log" \
        "$COMPOSER" build "$D/slot.yaml" -o "$out" "${ref[@]}"
    TREE=$D/trees/$tree measure "bundle $v" "$RES/logs/bundle-$v.log" \
        "$COMPOSER" bundle "$D/slot.yaml" -o "$out" --key "$D/keys/bundle.key" --version "$v" "${ref[@]}"
}

# a device whose running slot A holds BASE_IMG (ab-install's AB_ROOT layout)
device() {
    local r=$1 base=$2
    rm -rf "$r" && mkdir -p "$r"/{etc/image-composer/keys,run/ab,proc/self,media/config/ab,dev,bin}
    cp "$D/keys/bundle.pub" "$r/etc/image-composer/keys/bench.pub"
    echo bench-delta > "$r/etc/image-composer/compatible"
    echo A > "$r/run/ab/slot"
    echo no > "$r/run/ab/trial"
    : > "$r/proc/self/mountinfo"
    printf 'active=A\ntrial=\ntries=0\nfailed=\n' > "$r/media/config/ab/state"
    echo "console=ttyS0 rootA=/dev/slotA rootB=/dev/slotB" > "$r/proc/cmdline"
    cp --sparse=always "$base" "$r/dev/slotA"
    truncate -s "$(size "$base")" "$r/dev/slotB"
    printf '#!/bin/sh\nexit 0\n' > "$r/bin/ab-switch"
    cp "$r/bin/ab-switch" "$r/bin/mount"
    chmod 755 "$r/bin/ab-switch" "$r/bin/mount"
}

# apply NAME DELTA BASE_IMG NEW_IMG: ab-install on a simulated device
apply() {
    local r=$D/device
    device "$r" "$3"
    AB_ROOT=$r AB_SWITCH=$r/bin/ab-switch AB_MOUNT=$r/bin/mount \
        measure "$1" "$RES/logs/$1.log" "$AB_INSTALL" "$2"
    cmp -s "$r/dev/slotB" "$4" || die "$1: the installed slot differs from the new image"
    rm -rf "$r"
}

release v1 v1 "$D/v1"
for c in a b c; do
    log "change $c"
    release "$c" "2-$c" "$D/plain-$c"
    full=$D/plain-$c/delta-2-$c.bundle
    row "$c" "full bundle" "$(size "$full")"
    measure "delta plain $c" "$RES/logs/delta-plain-$c.log" \
        "$COMPOSER" delta --from "$D/v1/delta-v1.bundle" --to "$full" -o "$D/plain-$c" --key "$D/keys/bundle.key"
    apply "apply plain $c" "$D/plain-$c/delta-2-$c-from-v1.bundle" "$D/v1/delta.img" "$D/plain-$c/delta.img"
    row "$c" "image-composer delta, no --reference" "$(size "$D/plain-$c/delta-2-$c-from-v1.bundle")" \
        "delta plain $c" "apply plain $c"
    imgs=$D/plain-$c
    if ((HAS_REF)); then
        release "$c" "2-$c" "$D/ref-$c" "$D/v1/delta.img"
        measure "delta ref $c" "$RES/logs/delta-ref-$c.log" \
            "$COMPOSER" delta --from "$D/v1/delta-v1.bundle" --to "$D/ref-$c/delta-2-$c.bundle" -o "$D/ref-$c" --key "$D/keys/bundle.key"
        apply "apply ref $c" "$D/ref-$c/delta-2-$c-from-v1.bundle" "$D/v1/delta.img" "$D/ref-$c/delta.img"
        row "$c" "image-composer delta, --reference" "$(size "$D/ref-$c/delta-2-$c-from-v1.bundle")" \
            "delta ref $c" "apply ref $c"
        imgs=$D/ref-$c
    fi
    rm -f "$D/batch-$c" "$D/batch-$c.sh"
    measure "rsync $c" "$RES/logs/rsync-$c.log" \
        rsync -a --only-write-batch="$D/batch-$c" "$D/trees/$c/" "$D/trees/v1/"
    row "$c" "rsync --only-write-batch" "$(size "$D/batch-$c")" "rsync $c"
    zstd -q -19 -f "$D/batch-$c" -o "$D/batch-$c.zst"
    row "$c" "rsync --only-write-batch, zstd -19" "$(size "$D/batch-$c.zst")"
    measure "xdelta3 $c" "$RES/logs/xdelta3-$c.log" \
        xdelta3 -9 -e -f -B "$(size "$D/v1/delta.img")" -s "$D/v1/delta.img" "$imgs/delta.img" "$D/xdelta-$c.vcdiff"
    row "$c" "xdelta3 -9 (images)" "$(size "$D/xdelta-$c.vcdiff")" "xdelta3 $c"
    measure "zstd $c" "$RES/logs/zstd-$c.log" \
        zstd -q -f -19 --long=30 --patch-from="$D/v1/delta.img" "$imgs/delta.img" -o "$D/zstd-$c.zst"
    row "$c" "zstd -19 --long=30 --patch-from (images)" "$(size "$D/zstd-$c.zst")" "zstd $c"
    rm -rf "$D/plain-$c/"*.img "$D/ref-$c" "$D/trees/$c" "$D"/batch-"$c"* "$D"/*-"$c".vcdiff "$D"/zstd-"$c".zst
done
echo "load       $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) at end" >> "$RES/machine.txt"
python3 "$HERE/report.py" "$RES"
