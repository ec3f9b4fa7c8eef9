#!/usr/bin/env bash
# record.sh GENIMAGE: runs GENIMAGE (a genimage 19 built from its source:
# Debian bookworm has 16, CI cannot fetch) on every layout of the corpus and
# records its tables in <board>/genimage.txt (see report.sh), headed by
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
for cfg in "$here"/*/genimage.cfg; do
    board=$(basename "$(dirname "$cfg")")
    rm -rf "$work/out" "$work/tmp" "$work/root"
    mkdir -p "$work/out" "$work/root"
    args=(--inputpath inputs --outputpath out --rootpath root --tmppath tmp)
    (cd "$work" && "$genimage" --config "$cfg" "${args[@]}" >genimage.log 2>&1) ||
        { cat "$work/genimage.log" >&2; exit 1; }
    img=$(sed -n 's/^image \([a-z]*\.img\) {$/\1/p' "$cfg")
    ranges=()
    [[ -f $here/$board/ranges ]] && mapfile -t ranges <"$here/$board/ranges"
    {
        echo "# genimage $version (built from the v19 tag of github.com/pengutronix/genimage)"
        echo "# recorded by tests/layouts/record.sh: inputs from inputs.gen.sh, then"
        echo "# genimage --config tests/layouts/$board/genimage.cfg ${args[*]}"
        "$here/report.sh" "$work/out/$img" "${ranges[@]}"
    } >"$here/$board/genimage.txt"
    echo "$board: $img recorded"
done
