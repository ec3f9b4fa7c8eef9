# Local and override sources skip the download step, hence Buildroot's
# download-time "cargo vendor" (support/download/cargo-post-process):
# vendor here instead, the same way, unless the tree already carries
# VENDOR/. Crates come from (and are cached in) $(BR_CARGO_HOME), so
# only the first build needs the network. The source replacement is
# appended to the tree's .cargo/config.toml, which holds the C flags of
# the bundled liblzma. Shared by host-image-composer and ab-install; $(1)
# is the package's build directory.
define IMAGE_COMPOSER_VENDOR_CRATES
	if [ ! -d $(1)/VENDOR ]; then \
		mkdir -p $(1)/.cargo $(BR_CARGO_HOME) && \
		cd $(1) && \
		$(HOST_MAKE_ENV) $(HOST_PKG_CARGO_ENV) \
			flock $(BR_CARGO_HOME)/.br-lock \
			cargo vendor --locked VENDOR >> $(1)/.cargo/config.toml; \
	fi
endef

include $(sort $(wildcard $(BR2_EXTERNAL_IMAGE_COMPOSER_PATH)/package/*/*.mk))
# The root filesystem type (after fs/common.mk, which defines $(rootfs)).
include $(sort $(wildcard $(BR2_EXTERNAL_IMAGE_COMPOSER_PATH)/fs/*/*.mk))

# "make image-composer-image": compose the disk image again from what is
# already in output/images and output/target, without rebuilding
# anything else. The description comes from IMAGE_COMPOSER_CONFIG (on the
# make command line) or from the "-c" in the post-image script arguments.
IMAGE_COMPOSER_SCRIPT = $(BR2_EXTERNAL_IMAGE_COMPOSER_PATH)/board/common/image-composer.sh

.PHONY: image-composer-image
image-composer-image: host-image-composer
	@$(call MESSAGE,"Composing the disk image")
	$(Q)$(EXTRA_ENV) $(IMAGE_COMPOSER_SCRIPT) $(BINARIES_DIR) \
		$(call qstrip,$(BR2_ROOTFS_POST_SCRIPT_ARGS)) \
		$(call qstrip,$(BR2_ROOTFS_POST_IMAGE_SCRIPT_ARGS)) \
		$(if $(IMAGE_COMPOSER_CONFIG),-c $(IMAGE_COMPOSER_CONFIG))
