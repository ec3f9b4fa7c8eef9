################################################################################
#
# Build image-composer filesystems and artifacts from TARGET_DIR
#
################################################################################

# The description's artifacts (rootfs.ext4 ...) are built inside the
# fakeroot script of fs/common.mk, like rootfs.ext2, into a directory of
# their own, then moved to BINARIES_DIR; rootfs.image-composer lists the
# files moved. The disk is assembled later by the post-image script, from
# these files (docs/buildroot.md: "The Buildroot route").

ROOTFS_IMAGE_COMPOSER_CONFIG = $(call qstrip,$(BR2_TARGET_ROOTFS_IMAGE_COMPOSER_CONFIG))
ROOTFS_IMAGE_COMPOSER_ARGS = $(call qstrip,$(BR2_TARGET_ROOTFS_IMAGE_COMPOSER_ARGS))
ifeq ($(BR2_TARGET_ROOTFS_IMAGE_COMPOSER)-$(ROOTFS_IMAGE_COMPOSER_CONFIG),y-)
$(error BR2_TARGET_ROOTFS_IMAGE_COMPOSER_CONFIG cannot be empty)
endif

ROOTFS_IMAGE_COMPOSER_DEPENDENCIES = host-image-composer
ROOTFS_IMAGE_COMPOSER_OUTPUT_DIR = $(ROOTFS_IMAGE_COMPOSER_DIR)/images

define ROOTFS_IMAGE_COMPOSER_CMD
	rm -rf $(ROOTFS_IMAGE_COMPOSER_OUTPUT_DIR) $@
	$(EXTRA_ENV) TARGET_DIR=$(TARGET_DIR) BINARIES_DIR=$(BINARIES_DIR) \
		HOST_DIR=$(HOST_DIR) STAGING_DIR=$(STAGING_DIR) BASE_DIR=$(BASE_DIR) \
		$(BR2_EXTERNAL_IMAGE_COMPOSER_PATH)/board/common/image-composer.sh \
		$(BINARIES_DIR) -c $(ROOTFS_IMAGE_COMPOSER_CONFIG) \
		-o $(ROOTFS_IMAGE_COMPOSER_OUTPUT_DIR) $(ROOTFS_IMAGE_COMPOSER_ARGS)
	: > $@.partial
	cd $(ROOTFS_IMAGE_COMPOSER_OUTPUT_DIR) && \
		for f in *; do \
			[ -f "$$f" ] || continue; \
			mv -f "$$f" $(BINARIES_DIR)/"$$f" && echo "$$f" >> $@.partial; \
		done
	mv $@.partial $@
endef

$(eval $(rootfs))
