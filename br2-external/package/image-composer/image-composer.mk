################################################################################
#
# image-composer
#
################################################################################

# Keep in sync with composer/Cargo.toml (tests/integration/run.sh checks).
IMAGE_COMPOSER_VERSION = 0.1.0
# This br2-external lives in the image-composer source tree: build that
# tree. To build another checkout, set HOST_IMAGE_COMPOSER_OVERRIDE_SRCDIR
# in local.mk (docs/buildroot.md).
IMAGE_COMPOSER_SITE = $(BR2_EXTERNAL_IMAGE_COMPOSER_PATH)/..
IMAGE_COMPOSER_SITE_METHOD = local
IMAGE_COMPOSER_LICENSE = MIT or Apache-2.0
IMAGE_COMPOSER_LICENSE_FILES = LICENSE-MIT LICENSE-APACHE
# The workspace root holds Cargo.lock; the package is in composer/.
IMAGE_COMPOSER_SUBDIR = composer

# Do not copy the developer's build directories into the build.
HOST_IMAGE_COMPOSER_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude /target --exclude /composer/target

# Vendor the crates (IMAGE_COMPOSER_VENDOR_CRATES, external.mk).
define HOST_IMAGE_COMPOSER_VENDOR_CRATES
	$(call IMAGE_COMPOSER_VENDOR_CRATES,$(@D))
endef
HOST_IMAGE_COMPOSER_PRE_CONFIGURE_HOOKS += HOST_IMAGE_COMPOSER_VENDOR_CRATES

# The binary finds its layers in <prefix>/share/image-composer/layers.
define HOST_IMAGE_COMPOSER_INSTALL_LAYERS
	rm -rf $(HOST_DIR)/share/image-composer/layers
	mkdir -p $(HOST_DIR)/share/image-composer
	cp -r $(@D)/layers $(HOST_DIR)/share/image-composer/layers
endef
HOST_IMAGE_COMPOSER_POST_INSTALL_HOOKS += HOST_IMAGE_COMPOSER_INSTALL_LAYERS

$(eval $(host-cargo-package))
