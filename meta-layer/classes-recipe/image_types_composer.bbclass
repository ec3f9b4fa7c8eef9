# Image type "composer": a disk image composed by image-composer from a YAML
# description, the way image_types_wic.bbclass makes "wic" images from .wks.
#
# Use:
#   IMAGE_CLASSES += "image_types_composer"      (machine, distro, local.conf)
#   IMAGE_FSTYPES += "composer"                   (or composer.zst, composer.xz...)
#
# The description is found like wic's kickstart files: the first of
# COMPOSER_CONFIGS (default "<image>.<machine>.yaml <image>.yaml") in
# COMPOSER_SEARCH_PATH (the recipe's directory, then files/composer/ of every
# layer in BBPATH); an absolute COMPOSER_CONFIG is used as is.
#
# The YAML sees these ${VARS}: IMAGE_ROOTFS, IMGDEPLOYDIR, DEPLOY_DIR_IMAGE,
# IMAGE_NAME, IMAGE_LINK_NAME, IMAGE_BASENAME, MACHINE, KERNEL_IMAGETYPE,
# INITRAMFS_FSTYPES plus COMPOSER_VARS ("KEY=VALUE ..."); relative input paths
# are looked up in IMGDEPLOYDIR, then DEPLOY_DIR_IMAGE. Outputs, in
# IMGDEPLOYDIR: <name>.img -> ${IMAGE_NAME}.composer and its bmap ->
# ${IMAGE_NAME}.composer.bmap (both with ${IMAGE_LINK_NAME} symlinks); the
# YAML's compressed copies (<name>.img.zst ...) -> ${IMAGE_NAME}.composer.zst;
# standalone artifacts (rootfs.ext4 ...) -> ${IMAGE_NAME}.<file>, with a
# ${IMAGE_LINK_NAME}.<file> symlink. Prefer OE's conversions (composer.zst)
# to the YAML's "outputs: [zst]": asking for both writes the same file twice.

COMPOSER_CONFIG ??= "${IMAGE_BASENAME}.${MACHINE}.yaml"
COMPOSER_CONFIGS ?= "${COMPOSER_CONFIG} ${IMAGE_BASENAME}.yaml"
COMPOSER_SEARCH_PATH ?= "${THISDIR}:${@':'.join('%s/files/composer' % p for p in '${BBPATH}'.split(':'))}"
COMPOSER_CONFIG_PATH = "${@composer_search(d.getVar('COMPOSER_CONFIGS').split(), d.getVar('COMPOSER_SEARCH_PATH')) or ''}"

# Extra "${KEY}"s for the YAML, as "KEY=VALUE KEY2=VALUE2".
COMPOSER_VARS ??= ""
# Extra directories searched for layers (before the installed ones).
COMPOSER_LAYER_DIRS ??= ""
# The description's image.name: which <name>.img is the disk, when artifacts
# (an initramfs.img ...) write *.img files too. Empty: the only *.img.
COMPOSER_IMAGE_NAME ??= ""
# Anything else for "image-composer build".
COMPOSER_EXTRA_ARGS ??= ""
# Image types the YAML reads (e.g. "ext4" for ${IMGDEPLOYDIR}/${IMAGE_NAME}.ext4):
# they are built first.
COMPOSER_IMAGE_TYPEDEP ??= ""
IMAGE_TYPEDEP:composer = "${COMPOSER_IMAGE_TYPEDEP}"

def composer_search(files, search_path):
    for f in files:
        if os.path.isabs(f):
            if os.path.exists(f):
                return f
        else:
            searched = bb.utils.which(search_path, f)
            if searched:
                return searched
    return None

def composer_checksums(files, search_path):
    # Like wks_checksums(): the found file, and the paths that did not exist,
    # so that adding a file earlier in the search path re-runs the task too.
    ret = ""
    for f in files:
        found, hist = bb.utils.which(search_path, f, history=True)
        ret = ret + " " + " ".join(h + ":False" for h in hist[:-1])
        if found:
            ret = ret + " " + found + ":True"
    return ret

def composer_input_checksums(cfg, layer_dirs):
    # The host files the description names, for do_image_composer's
    # file-checksums: every word of the YAML that is a relative path existing
    # next to it (a file, or a directory given to "from:"), and the
    # COMPOSER_LAYER_DIRS (whole directories). Words with ${VARS} are task
    # outputs (IMAGE_ROOTFS, IMGDEPLOYDIR, DEPLOY_DIR_IMAGE) or come from
    # COMPOSER_VARS: the task dependencies cover them. Absolute words are
    # left out: most are destinations inside the image (/bin/sh), and the
    # build host's files must not change the task's hash. A word scan rather
    # than a YAML parser: a false match only re-runs the task more often.
    import re
    ret = []
    if cfg:
        base = os.path.dirname(cfg)
        with open(cfg, encoding="utf-8") as f:
            text = f.read()
        for word in sorted(set(re.split(r"[\s:,{}\[\]\"'#]+", text))):
            if not word or "$" in word or os.path.isabs(word) or "/../" in "/" + word + "/":
                continue
            path = os.path.normpath(os.path.join(base, word))
            if word not in (".", "..") and os.path.exists(path):
                ret.append(path + ":True")
    for layer_dir in layer_dirs:
        ret.append(layer_dir + ":" + str(os.path.exists(layer_dir)))
    return " ".join(ret)

IMAGE_CMD:composer () {
	cfg="${COMPOSER_CONFIG_PATH}"
	if [ -z "$cfg" ]; then
		bbfatal "No image description from COMPOSER_CONFIGS was found: ${COMPOSER_CONFIGS} (searched ${COMPOSER_SEARCH_PATH}). Set COMPOSER_CONFIG to the YAML file."
	fi
	out="${WORKDIR}/build-composer"
	rm -rf "$out"
	mkdir -p "$out"

	set --
	for kv in ${COMPOSER_VARS}; do
		set -- "$@" --var "$kv"
	done
	for dir in ${COMPOSER_LAYER_DIRS}; do
		set -- "$@" --layer-dir "$dir"
	done

	image-composer build "$cfg" -o "$out" \
		--input-dir "${IMGDEPLOYDIR}" \
		--input-dir "${DEPLOY_DIR_IMAGE}" \
		--var "IMAGE_ROOTFS=${IMAGE_ROOTFS}" \
		--var "IMGDEPLOYDIR=${IMGDEPLOYDIR}" \
		--var "DEPLOY_DIR_IMAGE=${DEPLOY_DIR_IMAGE}" \
		--var "IMAGE_NAME=${IMAGE_NAME}" \
		--var "IMAGE_LINK_NAME=${IMAGE_LINK_NAME}" \
		--var "IMAGE_BASENAME=${IMAGE_BASENAME}" \
		--var "MACHINE=${MACHINE}" \
		--var "KERNEL_IMAGETYPE=${KERNEL_IMAGETYPE}" \
		--var "INITRAMFS_FSTYPES=${INITRAMFS_FSTYPES}" \
		"$@" ${COMPOSER_EXTRA_ARGS}

	img=""
	if [ -n "${COMPOSER_IMAGE_NAME}" ]; then
		img="$out/${COMPOSER_IMAGE_NAME}.img"
		[ -f "$img" ] || bbfatal "image-composer wrote no $img: is COMPOSER_IMAGE_NAME (${COMPOSER_IMAGE_NAME}) the description's image.name?"
	else
		for f in "$out"/*.img; do
			if [ -f "$f" ]; then
				if [ -n "$img" ]; then
					bbfatal "image-composer wrote more than one *.img into $out: $img and $f; set COMPOSER_IMAGE_NAME to the description's image.name"
				fi
				img="$f"
			fi
		done
		if [ -z "$img" ]; then
			bbfatal "image-composer wrote no disk image (<name>.img) into $out"
		fi
	fi

	dest="${IMGDEPLOYDIR}/${IMAGE_NAME}"
	for f in "$out"/*; do
		[ -f "$f" ] || continue
		case "$f" in
		"$img")
			mv "$f" "$dest.composer" ;;
		"$img".*)
			mv "$f" "$dest.composer.${f#"$img".}" ;;
		*)
			base="${f##*/}"
			mv "$f" "$dest.$base"
			if [ -n "${IMAGE_LINK_NAME}" ]; then
				ln -sf "${IMAGE_NAME}.$base" "${IMGDEPLOYDIR}/${IMAGE_LINK_NAME}.$base"
			fi
			;;
		esac
	done
}
IMAGE_CMD:composer[vardepsexclude] += "COMPOSER_CONFIG_PATH COMPOSER_CONFIGS TOPDIR"
SPDX_IMAGE_PURPOSE:composer = "diskImage"

# Re-run when the description changes (or one appears earlier in the path).
USING_COMPOSER = "${@bb.utils.contains_any('IMAGE_FSTYPES', 'composer ' + ' '.join('composer.%s' % c for c in '${CONVERSIONTYPES}'.split()), '1', '', d)}"
COMPOSER_CONFIG_CHECKSUM = "${@composer_checksums(d.getVar('COMPOSER_CONFIGS').split(), d.getVar('COMPOSER_SEARCH_PATH')) if '${USING_COMPOSER}' else ''}"
# And when a file the description names, or a layer of COMPOSER_LAYER_DIRS,
# changes.
COMPOSER_INPUT_CHECKSUMS = "${@composer_input_checksums(d.getVar('COMPOSER_CONFIG_PATH'), d.getVar('COMPOSER_LAYER_DIRS').split()) if '${USING_COMPOSER}' else ''}"
do_image_composer[file-checksums] += "${COMPOSER_CONFIG_CHECKSUM} ${COMPOSER_INPUT_CHECKSUMS}"
do_image_composer[depends] += "image-composer-native:do_populate_sysroot"
# Everything the YAML may take from DEPLOY_DIR_IMAGE (kernel, bootloaders,
# initramfs images) is deployed first, as for wic.
do_image_composer[recrdeptask] += "do_deploy"
do_image_composer[deptask] += "do_image_complete"
do_image_composer[cleandirs] = "${WORKDIR}/build-composer"
# image-composer writes the .bmap itself: link it like the image.
do_image_composer[subimages] += "composer.bmap"

IMAGE_TYPES:append = " composer"
