#!/usr/bin/env bash
# Check br2-external/ against a real Buildroot checkout and meta-layer/ against
# a real bitbake + openembedded-core checkout — the checks those projects' own
# tools make. The project's CI cannot download either, so each part is skipped
# with a note when its checkout is not given.
#
#   BUILDROOT_DIR=~/src/buildroot \
#   OECORE_DIR=~/src/openembedded-core BITBAKE_DIR=~/src/bitbake \
#       tests/integration/check-external-trees.sh
#
# Buildroot (tested with 2026.02.x and 2026.05.x): for every configs/*_defconfig,
# `make BR2_EXTERNAL=... <defconfig>` must keep every symbol of the defconfig in
# .config (kconfig drops unknown symbols and symbols with unmet dependencies
# silently) and `make savedefconfig` must give the defconfig back unchanged;
# `make printvars` and `make show-info` must parse external.mk, the package
# and the rootfs type (a filesystem, type "rootfs", in show-info); `make list-defconfigs` must list the external's defconfigs;
# `utils/check-package -b` must pass on every file of the tree (needs
# ShellCheck and Python with `magic` and `flake8`).
#
# Yocto (tested with wrynose + bitbake 2.18): in a build dir with only
# oe-core's meta and this layer, `bitbake -p` parses without errors or
# warnings, `bitbake -e composer-ab-image` shows a do_image_composer task and
# a COMPOSER_CONFIG_PATH that exists, `bitbake -g` makes it depend on
# image-composer-native's sysroot, `bitbake -e image-composer-native` has the
# crate:// entries and (on x86-64 hosts) liblzma's fast-path defines in
# CFLAGS, `bitbake -e ab-install` is the target cargo recipe of ab-install/
# and in the image's build list; with YOCTO_CHECK_LAYER=1 also `yocto-check-layer`
# (slow: 15-25 minutes on 2 cores). bitbake refuses to run as root: as root,
# the Yocto part runs as the user BB_USER (default: bbcheck, created if
# missing) in a copy of the source tree that user owns.
#
# Environment: BUILDROOT_DIR, OECORE_DIR, BITBAKE_DIR (the checkouts),
# WORK_DIR (default /var/tmp/image-composer-checks; keep it between runs: the
# first bitbake parse takes minutes, later ones seconds), BB_USER,
# YOCTO_CHECK_LAYER=1, CHECK_PACKAGE_PYTHON (a python3 with magic + flake8).
# Prints one line per check and "N passed, M failed"; exit 1 on a failure.
set -uo pipefail

TOP="$(cd "$(dirname "$0")/../.." && pwd)"
EXTERNAL="${TOP}/br2-external"
WORK_DIR="${WORK_DIR:-/var/tmp/image-composer-checks}"
IMAGE="composer-ab-image"

passed=0
failed=0
skipped=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() {
	echo "FAIL $1"
	[ $# -gt 1 ] && [ -s "$2" ] && tail -n 25 "$2" | sed 's/^/    /'
	failed=$((failed + 1))
}
skip() { echo "SKIP $1"; skipped=$((skipped + 1)); }

# ---------------------------------------------------------------- Buildroot

# A python3 that can run utils/check-package (imports magic and flake8).
find_check_package_python() {
	local py
	for py in ${CHECK_PACKAGE_PYTHON:-} python3 /usr/bin/python3; do
		if command -v "${py}" > /dev/null && "${py}" -c 'import magic, flake8' 2> /dev/null; then
			echo "${py}"
			return 0
		fi
	done
	return 1
}

# Every "SYM=value" and "# SYM is not set" line of defconfig $1 must be in
# .config $2 (a "not set" symbol may also be absent).
compare_defconfig() {
	local defconfig="$1" config="$2" line sym missing=0
	while IFS= read -r line; do
		case "${line}" in
		BR2_*=*)
			if ! grep -qxF -- "${line}" "${config}"; then
				echo "    dropped or changed: ${line} (.config has: $(grep -E "^(# )?${line%%=*}[= ]" "${config}" || echo nothing))"
				missing=1
			fi ;;
		"# BR2_"*" is not set")
			sym="${line#\# }"
			sym="${sym%% *}"
			if grep -q "^${sym}=" "${config}"; then
				echo "    should be unset: ${sym} (.config has: $(grep "^${sym}=" "${config}"))"
				missing=1
			fi ;;
		esac
	done < "${defconfig}"
	return "${missing}"
}

check_buildroot() {
	if [ -z "${BUILDROOT_DIR:-}" ] || [ ! -f "${BUILDROOT_DIR}/Makefile" ] || [ ! -d "${BUILDROOT_DIR}/support" ]; then
		skip "buildroot: BUILDROOT_DIR is not set to a Buildroot checkout (git clone https://gitlab.com/buildroot.org/buildroot.git)"
		return
	fi
	local version out log defconfigs d name
	version="$(git -C "${BUILDROOT_DIR}" describe --tags 2> /dev/null || echo unknown)"
	echo "# Buildroot ${version} at ${BUILDROOT_DIR}"
	out="${WORK_DIR}/buildroot"
	mkdir -p "${out}"
	log="${out}/log"

	if grep -qx 'name: IMAGE_COMPOSER' "${EXTERNAL}/external.desc"; then
		pass "buildroot: external.desc names the tree IMAGE_COMPOSER"
	else
		fail "buildroot: external.desc must say 'name: IMAGE_COMPOSER' (the paths in the defconfigs use it)"
	fi

	if make -s -C "${BUILDROOT_DIR}" BR2_EXTERNAL="${EXTERNAL}" O="${out}/list" list-defconfigs > "${log}" 2>&1; then
		defconfigs=$(cd "${EXTERNAL}/configs" && ls -- *_defconfig)
		local all=1
		for d in ${defconfigs}; do
			grep -q "^  ${d} " "${log}" || all=0
		done
		if [ "${all}" = 1 ]; then
			pass "buildroot: list-defconfigs lists $(echo "${defconfigs}" | tr '\n' ' ')"
		else
			fail "buildroot: list-defconfigs misses one of: ${defconfigs}" "${log}"
		fi
	else
		fail "buildroot: make list-defconfigs" "${log}"
	fi

	for d in "${EXTERNAL}"/configs/*_defconfig; do
		name="$(basename "${d}")"
		rm -rf "${out:?}/${name}"
		if ! make -s -C "${BUILDROOT_DIR}" BR2_EXTERNAL="${EXTERNAL}" O="${out}/${name}" "${name}" > "${log}" 2>&1; then
			fail "buildroot: make ${name}" "${log}"
			continue
		fi
		if compare_defconfig "${d}" "${out}/${name}/.config" > "${log}" 2>&1; then
			pass "buildroot: make ${name} keeps all $(grep -c '^BR2_\|^# BR2_' "${d}") symbols"
		else
			fail "buildroot: make ${name} drops or changes symbols" "${log}"
		fi
		# savedefconfig gives the defconfig back, byte for byte (it is
		# minimal and in Kconfig order).
		if make -s -C "${BUILDROOT_DIR}" O="${out}/${name}" savedefconfig BR2_DEFCONFIG="${out}/${name}/saved_defconfig" > "${log}" 2>&1 &&
			diff -u "${d}" "${out}/${name}/saved_defconfig" >> "${log}" 2>&1; then
			pass "buildroot: ${name}: savedefconfig round trip is identical"
		else
			fail "buildroot: ${name}: savedefconfig differs from the defconfig" "${log}"
		fi
		# Parses every makefile, external.mk, our package and rootfs type included.
		if make -s -C "${BUILDROOT_DIR}" O="${out}/${name}" show-info > "${out}/${name}.json" 2> "${log}" &&
			python3 -c '
import json, sys
info = json.load(open(sys.argv[1]))
pkg = info["host-image-composer"]
assert pkg["type"] == "host", pkg
assert "host-rustc" in pkg["dependencies"], pkg["dependencies"]
assert pkg["licenses"].startswith("MIT or Apache-2.0"), pkg.get("licenses")
fs = info["rootfs-image-composer"]
assert fs["type"] == "rootfs", fs
assert fs["image_name"] == "rootfs.image-composer", fs
assert set(fs["dependencies"]) >= {"host-image-composer", "rootfs-common"}, fs["dependencies"]
assert "rootfs-ext2" not in info, "rootfs.ext2 would be built too"
inst = info["ab-install"]
assert inst["type"] == "target", inst
assert "host-rustc" in inst["dependencies"], inst["dependencies"]
assert inst["licenses"].startswith("MIT or Apache-2.0"), inst.get("licenses")
' "${out}/${name}.json" 2>> "${log}"; then
			pass "buildroot: ${name}: show-info has host-image-composer (host, depends on host-rustc, MIT or Apache-2.0), the target package ab-install and the filesystem rootfs-image-composer (type rootfs, after host-image-composer and rootfs-common; no rootfs-ext2)"
		else
			fail "buildroot: ${name}: show-info" "${log}"
		fi
		if make -s -C "${BUILDROOT_DIR}" O="${out}/${name}" printvars \
			VARS='HOST_IMAGE_COMPOSER_DOWNLOAD_POST_PROCESS HOST_IMAGE_COMPOSER_SUBDIR BR2_ROOTFS_POST_IMAGE_SCRIPT BR2_ROOTFS_POST_SCRIPT_ARGS BR2_ROOTFS_OVERLAY ROOTFS_IMAGE_COMPOSER_CONFIG' \
			> "${out}/${name}.vars" 2> "${log}"; then
			# The post-image script and the YAML the defconfig names must exist.
			local script args cfg fscfg overlay ok=1
			script="$(sed -n 's/^BR2_ROOTFS_POST_IMAGE_SCRIPT=//p' "${out}/${name}.vars")"
			args="$(sed -n 's/^BR2_ROOTFS_POST_SCRIPT_ARGS=//p' "${out}/${name}.vars")"
			overlay="$(sed -n 's/^BR2_ROOTFS_OVERLAY=//p' "${out}/${name}.vars")"
			overlay="${overlay//\"/}"
			script="${script//\"/}"
			cfg="$(echo "${args//\"/}" | sed -n 's/.*-c \([^ ]*\).*/\1/p')"
			for f in ${script}; do
				case "${f}" in /*) ;; *) f="${BUILDROOT_DIR}/${f}" ;; esac
				[ -x "${f}" ] || { echo "    not an executable: ${f}" >> "${log}"; ok=0; }
			done
			[ -f "${cfg}" ] || { echo "    image description not found: '${cfg}'" >> "${log}"; ok=0; }
			fscfg="$(sed -n 's/^ROOTFS_IMAGE_COMPOSER_CONFIG=//p' "${out}/${name}.vars")"
			[ -f "${fscfg}" ] || { echo "    rootfs type description not found: '${fscfg}'" >> "${log}"; ok=0; }
			for f in ${overlay}; do
				[ -d "${f}" ] || { echo "    BR2_ROOTFS_OVERLAY directory not found: ${f}" >> "${log}"; ok=0; }
			done
			if [ "${ok}" = 1 ]; then
				pass "buildroot: ${name}: post-image script, ${cfg#"${EXTERNAL}"/}, the rootfs type's ${fscfg#"${EXTERNAL}"/} and the rootfs overlays exist"
			else
				fail "buildroot: ${name}: post-image paths" "${log}"
			fi
		else
			fail "buildroot: ${name}: make printvars" "${log}"
		fi
	done

	local py
	if ! command -v shellcheck > /dev/null || ! py="$(find_check_package_python)"; then
		if [ -n "${CI:-}" ]; then
			fail "buildroot: check-package needs shellcheck and python3 with magic + flake8 (apt-get install shellcheck python3-magic flake8)"
		else
			skip "buildroot: check-package needs shellcheck and python3 with magic + flake8 (apt-get install shellcheck python3-magic flake8)"
		fi
	elif (cd "${EXTERNAL}" && find . -type f -print0 | sort -z |
		xargs -0 "${py}" "${BUILDROOT_DIR}/utils/check-package" -b) > "${log}" 2>&1; then
		pass "buildroot: utils/check-package -b on $(find "${EXTERNAL}" -type f | wc -l) files: $(tail -n 1 "${log}")"
	else
		fail "buildroot: utils/check-package -b" "${log}"
	fi
}

# ---------------------------------------------------------------- Yocto

# Runs as the unprivileged user: $1 = a copy of the source tree, $2 = build dir.
yocto_checks() {
	local src="$1" build="$2" layer="$1/meta-layer" log="$2/check.log"
	# oe-init-build-env reads unset variables.
	set +u
	# shellcheck disable=SC1091
	. "${OECORE_DIR}/oe-init-build-env" "${build}" > /dev/null || {
		fail "yocto: oe-init-build-env ${build}"
		return
	}
	# Our own minimal configuration: nodistro, no network, qemux86-64.
	cat > conf/local.conf <<-EOF
	MACHINE ??= "qemux86-64"
	BB_NO_NETWORK = "1"
	CONF_VERSION = "2"
	EOF
	cat > conf/bblayers.conf <<-EOF
	BBPATH = "\${TOPDIR}"
	BBFILES ?= ""
	BBLAYERS ?= "${OECORE_DIR}/meta"
	EOF

	if [ "${YOCTO_CHECK_LAYER:-}" = 1 ]; then
		# yocto-check-layer wants the layer *not* in bblayers.conf.
		# The summary names the layer by its directory: "INFO: meta-layer ... PASS".
		if yocto-check-layer --no-auto-dependency "${layer}" > "${log}" 2>&1 &&
			grep -q '^INFO: meta-layer \.\.\. PASS' "${log}"; then
			pass "yocto: yocto-check-layer: $(grep '^INFO: meta-layer \.\.\. ' "${log}" | sed 's/^INFO: //'), $(grep -oE 'Ran [0-9]+ tests? in [0-9.]+s' "${log}" | tail -n 1)"
		else
			fail "yocto: yocto-check-layer" "${log}"
		fi
	else
		skip "yocto: yocto-check-layer (set YOCTO_CHECK_LAYER=1; takes 15-25 minutes)"
	fi

	if bitbake-layers add-layer "${layer}" > "${log}" 2>&1 && bitbake-layers show-layers >> "${log}" 2>&1 &&
		grep -q "^image-composer " "${log}"; then
		pass "yocto: bitbake-layers add-layer (LAYERSERIES_COMPAT matches $(sed -n 's/^LAYERSERIES_CORENAMES = //p' "${OECORE_DIR}/meta/conf/layer.conf"))"
	else
		fail "yocto: bitbake-layers add-layer" "${log}"
		return
	fi

	if bitbake -p > "${log}" 2>&1 && ! grep -qE '^(ERROR|WARNING):' "${log}"; then
		pass "yocto: bitbake -p: $(grep -o 'Parsing of .* complete.*' "${log}" | tail -n 1)"
	else
		fail "yocto: bitbake -p (errors or warnings)" "${log}"
	fi

	if bitbake -e "${IMAGE}" > "${build}/env.image" 2> "${log}"; then
		local cfgpath fstypes
		cfgpath="$(sed -n 's/^COMPOSER_CONFIG_PATH="\(.*\)"/\1/p' "${build}/env.image")"
		fstypes="$(sed -n 's/^IMAGE_FSTYPES="\(.*\)"/\1/p' "${build}/env.image")"
		if grep -q '^do_image_composer() {' "${build}/env.image" &&
			grep -q 'image-composer build' "${build}/env.image"; then
			pass "yocto: bitbake -e ${IMAGE}: do_image_composer task (IMAGE_FSTYPES=\"${fstypes}\")"
		else
			fail "yocto: bitbake -e ${IMAGE}: no do_image_composer() running image-composer" "${log}"
		fi
		if [ -n "${cfgpath}" ] && [ -f "${cfgpath}" ]; then
			pass "yocto: COMPOSER_CONFIG_PATH found ${cfgpath#"${src}"/}"
		else
			fail "yocto: COMPOSER_CONFIG_PATH='${cfgpath}' is not a file"
		fi
	else
		fail "yocto: bitbake -e ${IMAGE}" "${log}"
	fi

	if (cd "${build}" && bitbake -g "${IMAGE}" > "${log}" 2>&1) &&
		grep -q "\"${IMAGE}.do_image_composer\" -> \"image-composer-native.do_populate_sysroot\"" "${build}/task-depends.dot"; then
		pass "yocto: bitbake -g: do_image_composer after $(grep "^\"${IMAGE}.do_image_composer\" ->" "${build}/task-depends.dot" | sed 's/.*-> "\(.*\)"/\1/' | grep -E 'native|do_image|deploy' | sort | head -n 6 | tr '\n' ' ')"
	else
		fail "yocto: bitbake -g ${IMAGE}: do_image_composer does not depend on image-composer-native" "${log}"
	fi

	if bitbake -e image-composer-native > "${build}/env.native" 2> "${log}" &&
		grep -q '^SRC_URI=.*crate://crates.io/' "${build}/env.native" &&
		grep -q '^SRC_URI="git://' "${build}/env.native" && grep -q '^PV="[0-9.]*+git' "${build}/env.native" &&
		grep -q '^LICENSE="MIT | Apache-2.0"' "${build}/env.native" &&
		{ [ "$(uname -m)" != x86_64 ] || grep -q '^export CFLAGS=.*-DTUKLIB_FAST_UNALIGNED_ACCESS=1.*-DHAVE_USABLE_CLMUL=1' "${build}/env.native"; }; then
		pass "yocto: bitbake -e image-composer-native: git SRC_URI + $(grep '^SRC_URI=' "${build}/env.native" | grep -o 'crate://' | wc -l) crate:// entries, $(grep '^PV=' "${build}/env.native"), $(grep '^LICENSE=' "${build}/env.native"), liblzma's fast-path CFLAGS"
	else
		fail "yocto: bitbake -e image-composer-native" "${log}"
	fi

	# The on-device installer: a target cargo recipe for the workspace's
	# ab-install/, in the example image.
	if bitbake -e ab-install > "${build}/env.ab-install" 2> "${log}" &&
		grep -q '^CARGO_MANIFEST_PATH=".*/ab-install/Cargo.toml"' "${build}/env.ab-install" &&
		grep -q '^SRC_URI=.*crate://crates.io/' "${build}/env.ab-install" &&
		grep -q '^RDEPENDS:ab-install=".*composer-ab-slots' "${build}/env.ab-install" &&
		grep -qx 'ab-install' "${build}/pn-buildlist"; then
		pass "yocto: bitbake -e ab-install: target cargo recipe of ab-install/, RDEPENDS on composer-ab-slots, in ${IMAGE}'s build list"
	else
		fail "yocto: ab-install recipe" "${log}"
	fi
}

check_yocto() {
	if [ -z "${OECORE_DIR:-}" ] || [ ! -f "${OECORE_DIR}/oe-init-build-env" ] ||
		[ -z "${BITBAKE_DIR:-}" ] || [ ! -x "${BITBAKE_DIR}/bin/bitbake" ]; then
		skip "yocto: OECORE_DIR and BITBAKE_DIR are not set to openembedded-core and bitbake checkouts"
		return
	fi
	echo "# openembedded-core $(git -C "${OECORE_DIR}" rev-parse --abbrev-ref HEAD 2> /dev/null) at ${OECORE_DIR}, bitbake $(git -C "${BITBAKE_DIR}" rev-parse --abbrev-ref HEAD 2> /dev/null) at ${BITBAKE_DIR}"
	if [ "$(cd "${OECORE_DIR}/.." && pwd)/bitbake" != "$(cd "${BITBAKE_DIR}" && pwd)" ]; then
		# oe-init-build-env looks for bitbake next to openembedded-core.
		export BITBAKEDIR="${BITBAKE_DIR}"
	fi

	local src="${WORK_DIR}/yocto/src" build="${WORK_DIR}/yocto/build"
	mkdir -p "${WORK_DIR}/yocto"
	# A copy of the tree without build output, owned by whoever runs bitbake.
	rm -rf "${src}"
	mkdir -p "${src}"
	(cd "${TOP}" && tar --exclude=./target --exclude=./composer/target --exclude=./.git -cf - .) | tar -xf - -C "${src}"

	if [ "$(id -u)" != 0 ]; then
		yocto_checks "${src}" "${build}"
		return
	fi
	local user="${BB_USER:-bbcheck}"
	id "${user}" > /dev/null 2>&1 || useradd -m -s /bin/bash "${user}"
	chown -R "${user}:" "${WORK_DIR}/yocto"
	local results="${WORK_DIR}/yocto/results"
	# Re-run only the Yocto part of this script as that user.
	runuser -u "${user}" -- env -i HOME="$(getent passwd "${user}" | cut -d: -f6)" \
		PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" LANG=en_US.UTF-8 \
		OECORE_DIR="${OECORE_DIR}" BITBAKE_DIR="${BITBAKE_DIR}" ${BITBAKEDIR:+BITBAKEDIR="${BITBAKEDIR}"} \
		YOCTO_CHECK_LAYER="${YOCTO_CHECK_LAYER:-}" WORK_DIR="${WORK_DIR}" \
		bash "$0" --yocto-only "${src}" "${build}" | tee "${results}"
	passed=$((passed + $(grep -c '^PASS' "${results}")))
	failed=$((failed + $(grep -c '^FAIL' "${results}")))
	skipped=$((skipped + $(grep -c '^SKIP' "${results}")))
}

if [ "${1:-}" = "--yocto-only" ]; then
	yocto_checks "$2" "$3"
	exit 0
fi

check_buildroot
check_yocto
echo "${passed} passed, ${failed} failed"
[ "${failed}" = 0 ]
