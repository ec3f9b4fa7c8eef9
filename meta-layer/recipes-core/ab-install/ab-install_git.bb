SUMMARY = "Installs a signed image-composer update bundle into the inactive A/B slot"
DESCRIPTION = "ab-install, the on-device half of image-composer's field \
updates: it checks a slot bundle made by 'image-composer bundle' against the \
public keys in /etc/image-composer/keys, writes it into the inactive slot so \
that a power cut never leaves the device unbootable, and schedules a trial \
boot with ab-switch (composer-ab-slots). See docs/updates.md."
HOMEPAGE = "https://github.com/image-composer/image-composer"
SECTION = "base"

# SRC_URI, SRCREV, PV, LICENSE and LIC_FILES_CHKSUM.
require recipes-devtools/image-composer/image-composer-source.inc

inherit cargo

# The crates of the workspace's Cargo.lock, shared with image-composer
# (meta-layer/scripts/gen-crates-inc.py regenerates them).
require recipes-devtools/image-composer/image-composer-crates.inc

# ab-install/ of the workspace; the workspace root holds Cargo.lock.
CARGO_MANIFEST_PATH = "${S}/ab-install/Cargo.toml"
CARGO_LOCK_PATH = "${S}/Cargo.lock"

# ab-install schedules the trial boot with ab-switch.
RDEPENDS:${PN} = "composer-ab-slots"
