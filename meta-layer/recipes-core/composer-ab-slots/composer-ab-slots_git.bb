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

# ab-mark-good and ab-switch read /usr/lib/ab-slots/ab-state.sh.
do_install() {
	r=${S}/layers/ab-slots/rootfs
	install -D -m 0755 $r/usr/sbin/ab-mark-good ${D}${sbindir}/ab-mark-good
	install -D -m 0755 $r/usr/sbin/ab-switch ${D}${sbindir}/ab-switch
	install -D -m 0644 $r/usr/lib/ab-slots/ab-state.sh ${D}${nonarch_libdir}/ab-slots/ab-state.sh
	install -D -m 0755 $r/etc/init.d/S95ab-mark-good ${D}${sysconfdir}/init.d/S95ab-mark-good
	install -D -m 0644 $r/usr/lib/systemd/system/ab-mark-good.service \
		${D}${systemd_system_unitdir}/ab-mark-good.service
}

FILES:${PN} = "${sbindir} ${nonarch_libdir}/ab-slots ${sysconfdir}/init.d ${systemd_system_unitdir}"
RDEPENDS:${PN} = "${VIRTUAL-RUNTIME_base-utils}"
