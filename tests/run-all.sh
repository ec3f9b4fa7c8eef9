#!/usr/bin/env bash
# The whole test suite: lints, unit and integration tests of the crate (which
# check our output with sfdisk, sgdisk, e2fsck, debugfs, fsck.vfat, mtools,
# cpio, bmaptool), then the end-to-end suites (examples, boots under QEMU,
# Buildroot/Yocto integration scripts). Set CI=true to make a missing tool a
# failure instead of a skip. Prints "N passed, M failed" per suite.
set -uo pipefail
cd "$(dirname "$0")/.."

failed=0
step() {
    local name=$1; shift
    echo "=== $name"
    if "$@"; then echo "--- $name: ok"; else echo "--- $name: FAILED"; failed=$((failed + 1)); fi
}

step "cargo fmt" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --all-targets --locked -- -D warnings
step "cargo doc" env RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet
step "cargo test" cargo test --workspace --locked
step "cargo build --release" cargo build --release --locked
for suite in tests/e2e/run.sh tests/boot/run.sh tests/integration/run.sh; do
    [[ -x $suite ]] && step "$suite" "$suite"
done

if ((failed)); then
    echo "run-all: $failed step(s) failed"
    exit 1
fi
echo "run-all: every step passed"
