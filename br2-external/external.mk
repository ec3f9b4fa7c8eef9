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
