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

# Local and override sources skip the download step, hence Buildroot's
# download-time "cargo vendor" (support/download/cargo-post-process):
# vendor here instead, the same way, unless the tree already carries
# VENDOR/. Crates come from (and are cached in) $(BR_CARGO_HOME), so
# only the first build needs the network.
define HOST_IMAGE_COMPOSER_VENDOR_CRATES
	if [ ! -d $(@D)/VENDOR ]; then \
		mkdir -p $(@D)/.cargo $(BR_CARGO_HOME) && \
		cd $(@D) && \
		$(HOST_MAKE_ENV) $(HOST_PKG_CARGO_ENV) \
			flock $(BR_CARGO_HOME)/.br-lock \
			cargo vendor --locked VENDOR > $(@D)/.cargo/config.toml; \
	fi
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
