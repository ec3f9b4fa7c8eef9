#!/usr/bin/env bash
# Installs image-composer: the binary, its layers (where the binary looks for
# them: <bin>/../share/image-composer/layers), shell completions (bash, zsh,
# fish), man pages and the JSON Schema of descriptions for editors
# (share/image-composer/image-composer.schema.json), the last three generated
# by the binary itself.
#
#   scripts/install.sh                          # into /usr/local (may need sudo)
#   PREFIX=$HOME/.local scripts/install.sh      # no root needed
#   DESTDIR=/tmp/pkg PREFIX=/usr scripts/install.sh   # for packaging
#
# Environment: PREFIX (default /usr/local), DESTDIR (prepended to every
# installed path, not to where the binary looks), IMAGE_COMPOSER (a built
# binary to install; default: `cargo build --release --locked`, binary in
# ${CARGO_TARGET_DIR:-target}/release), CARGO (default cargo).
set -euo pipefail

TOP="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="${PREFIX:-/usr/local}"
DESTDIR="${DESTDIR:-}"
case "${PREFIX}" in
/*) ;;
*) echo "install.sh: PREFIX must be an absolute path, not '${PREFIX}'" >&2; exit 2 ;;
esac

bin="${IMAGE_COMPOSER:-}"
if [ -z "${bin}" ]; then
	(cd "${TOP}" && "${CARGO:-cargo}" build --release --locked --bin image-composer)
	target_dir="${CARGO_TARGET_DIR:-${TOP}/target}"
	case "${target_dir}" in /*) ;; *) target_dir="${TOP}/${target_dir}" ;; esac
	bin="${target_dir}/release/image-composer"
fi
[ -x "${bin}" ] || { echo "install.sh: '${bin}' is not an executable" >&2; exit 1; }

root="${DESTDIR}${PREFIX}"
share="${root}/share"
install -d "${root}/bin" "${share}/image-composer" \
	"${share}/bash-completion/completions" "${share}/zsh/site-functions" \
	"${share}/fish/vendor_completions.d" "${share}/man/man1"
install -m 0755 "${bin}" "${root}/bin/image-composer"

# The layers: replaced as a whole, so a layer removed upstream does not linger.
rm -rf "${share}/image-composer/layers"
cp -R "${TOP}/layers" "${share}/image-composer/layers"
chmod -R u+rwX,go+rX,go-w "${share}/image-composer/layers"

"${bin}" completions bash > "${share}/bash-completion/completions/image-composer"
"${bin}" completions zsh > "${share}/zsh/site-functions/_image-composer"
"${bin}" completions fish > "${share}/fish/vendor_completions.d/image-composer.fish"
"${bin}" -q man -o "${share}/man/man1"
"${bin}" schema > "${share}/image-composer/image-composer.schema.json"

echo "installed image-composer into ${root}"
case ":${PATH}:" in
*":${PREFIX}/bin:"*) ;;
*) [ -n "${DESTDIR}" ] || echo "note: ${PREFIX}/bin is not on PATH; add it: export PATH=\"${PREFIX}/bin:\$PATH\"" ;;
esac
