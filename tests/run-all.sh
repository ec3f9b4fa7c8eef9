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
step "cargo test" cargo test --workspace --locked --no-fail-fast
# The minimum supported Rust (rust-version): Debian's rustc-web 1.85 under
# /usr/bin, which .ci/run installs pinned; one compile, the unit tests.
msrv() {
    local want
    want=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
    /usr/bin/rustc --version | grep -q "^rustc $want\." || {
        echo "msrv: /usr/bin/rustc is not Rust $want (install rustc-web $want)"; return 1; }
    RUSTC=/usr/bin/rustc CARGO_TARGET_DIR=target/msrv /usr/bin/cargo test --locked --workspace --lib --bins
}
step "rust $(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml) (minimum)" msrv
step "cargo build --release" cargo build --release --locked
# A suite named here that is missing or not executable is a failure, never
# a silent skip.
for suite in tests/install/run.sh tests/boot/run.sh tests/integration/run.sh; do
    if [[ -x $suite ]]; then
        step "$suite" "$suite"
    else
        echo "=== $suite: missing or not executable"; failed=$((failed + 1))
    fi
done

if ((failed)); then
    echo "run-all: $failed step(s) failed"
    exit 1
fi
echo "run-all: every step passed"
