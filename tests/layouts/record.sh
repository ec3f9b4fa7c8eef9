#!/usr/bin/env bash
# record.sh GENIMAGE [CORPUS]: runs GENIMAGE (a genimage 19 built from its source:
# Debian bookworm has 16, CI cannot fetch) on every layout of the corpus and
# records its tables in <board>/genimage.txt (CORPUS: another directory of
# <board>/genimage.cfg, such as tests/import/genimage) (see report.sh), headed by
# genimage's version and the command that produced them. CI compares
# image-composer's images against these records (composer/tests/layouts.rs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
genimage=$(command -v "$1")
version=$("$genimage" --version)
[[ $version == 19 ]] || { echo "record.sh: $genimage is genimage $version, not 19" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$here/inputs.gen.sh" "$work/inputs"
corpus=$(cd "${2:-$here}" && pwd)
for cfg in "$corpus"/*/genimage.cfg; do
    board=$(basename "$(dirname "$cfg")")
    rm -rf "$work/out" "$work/tmp" "$work/root"
    mkdir -p "$work/out" "$work/root"
    args=(--inputpath inputs --outputpath out --rootpath root --tmppath tmp)
    (cd "$work" && "$genimage" --config "$cfg" "${args[@]}" >genimage.log 2>&1) ||
        { cat "$work/genimage.log" >&2; exit 1; }
    img=$(sed -n 's/^image \([a-z]*\.img\) {$/\1/p' "$cfg")
    ranges=()
    [[ -f $corpus/$board/ranges ]] && mapfile -t ranges <"$corpus/$board/ranges"
    {
        echo "# genimage $version (built from the v19 tag of github.com/pengutronix/genimage)"
        echo "# recorded by tests/layouts/record.sh: inputs from inputs.gen.sh, then"
        echo "# genimage --config $(realpath --relative-to="$here/../.." "$cfg") ${args[*]}"
        "$here/report.sh" "$work/out/$img" "${ranges[@]}"
    } >"$corpus/$board/genimage.txt"
    echo "$board: $img recorded"
done
