SUMMARY = "Static busybox for image-composer's initramfs layers"
DESCRIPTION = "The layers readonly-rootfs-overlay and ab-slots build an \
initramfs around one static busybox (their /init runs before any library is \
reachable); OE's busybox is dynamically linked. This recipe builds busybox's \
defconfig statically from the same release and deploys it as \
${DEPLOY_DIR_IMAGE}/busybox-static; nothing is packaged."
HOMEPAGE = "https://www.busybox.net"
SECTION = "base"
LICENSE = "GPL-2.0-only & bzip2-1.0.6"
LIC_FILES_CHKSUM = "file://LICENSE;md5=de10de48642ab74318e893a61105afbb \
                    file://archival/libarchive/bz/LICENSE;md5=28e3301eae987e8cfe19988e98383dae"

SRC_URI = "https://busybox.net/downloads/busybox-${PV}.tar.bz2"
SRC_URI[sha256sum] = "3311dff32e746499f4df0d5df04d7eb396382d7e108bb9250e7b519b837043a4"
S = "${UNPACKDIR}/busybox-${PV}"

DEPENDS = "virtual/libc"
inherit deploy

EXTRA_OEMAKE = "CC='${CC}' LD='${CCLD}' V=1 ARCH=${TARGET_ARCH} CROSS_COMPILE=${TARGET_PREFIX} \
                SKIP_STRIP=y HOSTCC='${BUILD_CC}' HOSTCPP='${BUILD_CPP}'"

# defconfig, static; without tc (kernel headers >= 6.8 lack CBQ).
do_configure() {
	oe_runmake -C ${S} O=${B} defconfig
	sed -i -e 's/^# CONFIG_STATIC is not set$/CONFIG_STATIC=y/' \
		-e 's/^CONFIG_TC=y$/# CONFIG_TC is not set/' ${B}/.config
	oe_runmake -C ${S} O=${B} oldconfig < /dev/null
}

do_compile() {
	oe_runmake -C ${S} O=${B} busybox
}

do_install[noexec] = "1"

do_deploy() {
	install -m 0755 ${B}/busybox ${DEPLOYDIR}/busybox-static
}
addtask deploy after do_compile before do_build

PACKAGES = ""
