SUMMARY = "On-target half of image-composer's ab-slots layer"
DESCRIPTION = "ab-mark-good (confirms a trial boot), ab-switch (tries the \
other slot next boot), the state script they share and their init script \
and systemd unit: layers/ab-slots/rootfs of the image-composer source tree, \
for images whose disk uses layers: [ab-slots]."
HOMEPAGE = "https://github.com/image-composer/image-composer"
SECTION = "base"

# SRC_URI, SRCREV, PV, LICENSE and LIC_FILES_CHKSUM.
require recipes-devtools/image-composer/image-composer-source.inc

inherit allarch

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
	cp -R --no-preserve=ownership ${S}/layers/ab-slots/rootfs/. ${D}/
	chmod 0755 ${D}${sysconfdir}/init.d/S95ab-mark-good ${D}${sbindir}/ab-mark-good ${D}${sbindir}/ab-switch
}

FILES:${PN} = "${sysconfdir}/init.d ${sbindir} ${nonarch_libdir}/ab-slots ${systemd_system_unitdir}"
RDEPENDS:${PN} = "${VIRTUAL-RUNTIME_base-utils}"
