#!/usr/bin/env bash
# Development shortcut: rebuild the static ros and the initrd only.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target x86_64-unknown-linux-gnu
bash build/initrd.sh "${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/ros" dist/initrd
