################################################################################
#
# ab-install
#
################################################################################

# Keep in sync with ab-install/Cargo.toml (tests/integration/run.sh checks).
AB_INSTALL_VERSION = 0.1.0
# Like host-image-composer: the source tree that holds this br2-external.
AB_INSTALL_SITE = $(BR2_EXTERNAL_IMAGE_COMPOSER_PATH)/..
AB_INSTALL_SITE_METHOD = local
AB_INSTALL_LICENSE = MIT or Apache-2.0
AB_INSTALL_LICENSE_FILES = LICENSE-MIT LICENSE-APACHE
# The workspace root holds Cargo.lock; the package is in ab-install/.
AB_INSTALL_SUBDIR = ab-install
AB_INSTALL_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude /target --exclude /composer/target

define AB_INSTALL_VENDOR_CRATES
	$(call IMAGE_COMPOSER_VENDOR_CRATES,$(@D))
endef
AB_INSTALL_PRE_CONFIGURE_HOOKS += AB_INSTALL_VENDOR_CRATES

$(eval $(cargo-package))
