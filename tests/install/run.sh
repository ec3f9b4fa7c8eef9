#!/usr/bin/env bash
# The install step of the README (scripts/install.sh) into a scratch PREFIX,
# then the installed command used as a user would: it must find its layers
# under PREFIX/share/image-composer/layers (not the source tree's), and the
# completions and man pages must load in bash and man. Also a DESTDIR
# install (packaging) puts every file under DESTDIR/PREFIX.
#
# Prints one line per case and "N passed, M failed"; exits 1 on a failure.
# A missing tool skips its case with a note, or fails it when CI is set.
# Environment: IMAGE_COMPOSER (a built binary to install; default: the
# install script builds target/release/image-composer), KEEP=1 keeps the
# scratch directory.
set -uo pipefail

TOP="$(cd "$(dirname "$0")/../.." && pwd)"
export SOURCE_DATE_EPOCH=1700000000

# shellcheck source-path=SCRIPTDIR source=../harness.sh
. "${TOP}/tests/harness.sh"
scratch install
PREFIX="${SCRATCH}/prefix"

if PREFIX="${PREFIX}" "${TOP}/scripts/install.sh" > "${LOG}" 2>&1; then
	pass "install.sh into PREFIX=${PREFIX}"
else
	fail "install.sh into PREFIX=${PREFIX}" "${LOG}"
	echo "${passed} passed, ${failed} failed"
	exit 1
fi

# Every shipped layer, the binary, completions, man pages and the schema are
# in place.
expect=(bin/image-composer share/bash-completion/completions/image-composer
	share/zsh/site-functions/_image-composer
	share/fish/vendor_completions.d/image-composer.fish
	share/man/man1/image-composer.1 share/man/man1/image-composer-build.1
	share/image-composer/image-composer.schema.json)
for layer in "${TOP}"/layers/*/layer.yaml; do
	expect+=("share/image-composer/layers/${layer#"${TOP}/layers/"}")
done
absent=()
for f in "${expect[@]}"; do [ -e "${PREFIX}/${f}" ] || absent+=("${f}"); done
if [ ${#absent[@]} -eq 0 ]; then
	pass "installed files (${#expect[@]} checked)"
else
	fail "installed files: missing ${absent[*]}"
fi

# The installed command, with nothing of the source tree on its PATH: a
# description using a shipped layer by name, built from an unrelated
# directory; -v names the layer file it merged.
WORK="${SCRATCH}/work"
mkdir -p "${WORK}"
cat > "${WORK}/board.yaml" <<'YAML'
image: { name: inst, size: 200MiB }
layers: [readonly-rootfs-overlay]
partitions:
  - { name: root, size: 16MiB, fs: { type: ext4, label: root } }
YAML
busybox=$(command -v busybox || true)
if [ -z "${busybox}" ]; then
	missing "installed command builds with an installed layer" "busybox (busybox-static)"
elif (cd "${WORK}" && env PATH="${PREFIX}/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
	image-composer -v build board.yaml --var BUSYBOX="${busybox}" -o out) > "${LOG}" 2>&1; then
	want="${PREFIX}/bin/../share/image-composer/layers/readonly-rootfs-overlay/layer.yaml"
	if ! grep -qF "'${want}'" "${LOG}"; then
		fail "installed command: the layer was not taken from ${PREFIX}/share" "${LOG}"
	elif ! have sfdisk; then
		missing "installed command: the image's table" "sfdisk (fdisk)"
	elif sfdisk --dump "${WORK}/out/inst.img" | grep -q 'name="overlay"' &&
		[ -s "${WORK}/out/initramfs.img" ]; then
		pass "installed command builds with the installed layer (overlay partition, initramfs.img)"
	else
		fail "installed command: no overlay partition or initramfs.img" "${LOG}"
	fi
else
	fail "installed command: build failed" "${LOG}"
fi

# Completions load in bash and complete the subcommands (through the
# function they register for the command).
if bash -c "source '${PREFIX}/share/bash-completion/completions/image-composer' &&
	fn=\$(complete -p image-composer | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p') &&
	COMP_WORDS=(image-composer fl) COMP_CWORD=1 COMP_LINE='image-composer fl' COMP_POINT=17 &&
	\"\$fn\" image-composer fl image-composer &&
	printf '%s\\n' \"\${COMPREPLY[@]}\"" > "${LOG}" 2>&1 && grep -qx flash "${LOG}"; then
	pass "bash completion completes 'fl' to flash"
else
	fail "bash completion" "${LOG}"
fi

# The man pages render without warnings and name every option of build.
if ! have man; then
	missing "man pages render" "man (man-db)"
elif MANWIDTH=80 man --warnings -l "${PREFIX}/share/man/man1/image-composer-build.1" \
	> "${LOG}" 2> "${LOG}.err" && ! [ -s "${LOG}.err" ] && grep -q -- "--output-dir" "${LOG}" &&
	MANWIDTH=80 man -l "${PREFIX}/share/man/man1/image-composer.1" 2>&1 | grep -q "validate"; then
	pass "man pages render (image-composer.1 lists validate, image-composer-build.1 --output-dir)"
else
	fail "man pages render" "${LOG}.err"
fi

# DESTDIR: everything under DESTDIR/PREFIX, nothing elsewhere.
DEST="${SCRATCH}/dest"
installed="${PREFIX}/bin/image-composer"
if IMAGE_COMPOSER="${installed}" DESTDIR="${DEST}" PREFIX=/usr \
	"${TOP}/scripts/install.sh" > "${LOG}" 2>&1 &&
	[ -x "${DEST}/usr/bin/image-composer" ] &&
	[ -f "${DEST}/usr/share/image-composer/layers/ab-slots/layer.yaml" ] &&
	[ "$(ls "${DEST}")" = usr ]; then
	pass "DESTDIR=${DEST} PREFIX=/usr installs under DESTDIR only"
else
	fail "DESTDIR install" "${LOG}"
fi

if ! have shellcheck; then
	missing "shellcheck of the install scripts" "shellcheck"
elif shellcheck -x "${TOP}/scripts/install.sh" "$0" > "${LOG}" 2>&1; then
	pass "shellcheck: scripts/install.sh, tests/install/run.sh"
else
	fail "shellcheck" "${LOG}"
fi

finish
