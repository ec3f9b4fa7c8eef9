#!/usr/bin/env bash
# Buildroot post-image script: compose the disk image described by a YAML
# file with image-composer, the way support/scripts/genimage.sh runs genimage.
#
#   BR2_ROOTFS_POST_IMAGE_SCRIPT="$(BR2_EXTERNAL_IMAGE_COMPOSER_PATH)/board/common/image-composer.sh"
#   BR2_ROOTFS_POST_SCRIPT_ARGS="-c $(BR2_EXTERNAL_IMAGE_COMPOSER_PATH)/board/<board>/image.yaml"
#
# Buildroot calls it with BINARIES_DIR as the first argument, then the
# arguments above, and exports BINARIES_DIR, TARGET_DIR, BUILD_DIR, HOST_DIR,
# BASE_DIR (and SOURCE_DATE_EPOCH with BR2_REPRODUCIBLE). The image
# <image.name>.img, its .bmap and the other outputs the YAML asks for are
# written into BINARIES_DIR (or the -o directory). ${BUSYBOX}, the static
# busybox the layers readonly-rootfs-overlay and ab-slots put into their
# initramfs, defaults to ${TARGET_DIR}/bin/busybox when that exists.
#
# Options (repeatable ones may be given several times; a later -c wins):
#   -c FILE       the image description (required)
#   -o DIR        output directory (default: BINARIES_DIR)
#   -i DIR        extra input directory searched for relative paths
#   -l DIR        extra layer directory
#   -v KEY=VALUE  extra ${KEY} for the YAML
# Environment: IMAGE_COMPOSER overrides the binary
# (default: $HOST_DIR/bin/image-composer). IMAGE_COMPOSER_BUNDLE_KEY: the
# secret key (image-composer keygen) to also write the signed update bundle
# <image.name>-<version>.bundle of the description's `update:` slot, version
# IMAGE_COMPOSER_BUNDLE_VERSION (default: the description's update.version);
# without a key, no bundle (a notice says so). See docs/updates.md.

set -e

die() {
	cat <<EOF >&2
Error: $*

Usage: ${0} [BINARIES_DIR] -c IMAGE_YAML [-o OUTDIR] [-i DIR]... [-l DIR]... [-v KEY=VALUE]...
EOF
	exit 1
}

opts="$(getopt -n "${0##*/}" -o c:o:i:l:v: -- "$@")" || exit $?
eval set -- "${opts}"

config=""
outdir=""
extra=()
while true; do
	case "${1}" in
	-c) config="${2}"; shift 2 ;;
	-o) outdir="${2}"; shift 2 ;;
	-i) extra+=(--input-dir "${2}"); shift 2 ;;
	-l) extra+=(--layer-dir "${2}"); shift 2 ;;
	-v)
		case "${2}" in
		?*=*) extra+=(--var "${2}") ;;
		*) die "-v wants KEY=VALUE, got '${2}'" ;;
		esac
		shift 2 ;;
	--) shift; break ;;
	*) die "unknown option '${1}'" ;;
	esac
done

# Buildroot passes BINARIES_DIR as the first non-option argument.
if [ $# -gt 0 ] && [ -z "${BINARIES_DIR}" ]; then
	BINARIES_DIR="${1}"
fi

[ -n "${config}" ] || die "missing -c IMAGE_YAML"
[ -f "${config}" ] || die "image description '${config}' does not exist"
[ -n "${BINARIES_DIR}" ] || die "BINARIES_DIR is not set (run from Buildroot, or pass it as the first argument)"
outdir="${outdir:-${BINARIES_DIR}}"

composer="${IMAGE_COMPOSER:-${HOST_DIR:+${HOST_DIR}/bin/}image-composer}"
if ! command -v "${composer}" > /dev/null; then
	die "'${composer}' not found: enable BR2_PACKAGE_HOST_IMAGE_COMPOSER"
fi

# Buildroot's directories as ${VAR}s of the YAML; only those that are set,
# so that a description using an unset one fails naming it. They come
# first: a -v of the same name given to this script takes precedence.
brvars=()
for name in BINARIES_DIR TARGET_DIR BUILD_DIR HOST_DIR STAGING_DIR BASE_DIR; do
	if [ -n "${!name}" ]; then
		brvars+=(--var "${name}=${!name}")
	fi
done
if [ -z "${BUSYBOX}" ] && [ -n "${TARGET_DIR}" ] && [ -f "${TARGET_DIR}/bin/busybox" ]; then
	brvars+=(--var "BUSYBOX=${TARGET_DIR}/bin/busybox")
fi

mkdir -p "${outdir}"
"${composer}" build "${config}" \
	-o "${outdir}" \
	--input-dir "${BINARIES_DIR}" \
	"${brvars[@]}" \
	"${extra[@]}"

if [ -z "${IMAGE_COMPOSER_BUNDLE_KEY}" ]; then
	echo "image-composer.sh: IMAGE_COMPOSER_BUNDLE_KEY is not set: no update bundle" >&2
	exit 0
fi
version=()
[ -z "${IMAGE_COMPOSER_BUNDLE_VERSION}" ] || version=(--version "${IMAGE_COMPOSER_BUNDLE_VERSION}")
exec "${composer}" bundle "${config}" \
	-o "${outdir}" \
	--key "${IMAGE_COMPOSER_BUNDLE_KEY}" \
	"${version[@]}" \
	--input-dir "${BINARIES_DIR}" \
	"${brvars[@]}" \
	"${extra[@]}"
