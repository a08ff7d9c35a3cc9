#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests,
# then the ISO build and the QEMU boot tests.
# Installs what it needs first (build/deps.sh). Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."

bash build/deps.sh

step() { printf '\n== %s ==\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test"
cargo test --all-targets

# The bootable image and the QEMU boot tests (skip with ROS_SKIP_IMAGE=1).
if [ -z "${ROS_SKIP_IMAGE:-}" ]; then
  step "build/build.sh (ISO, initrd, images)"
  bash build/build.sh

  step "qemu-tests"
  bash qemu-tests/run.sh
fi

echo
echo "all tests passed"
