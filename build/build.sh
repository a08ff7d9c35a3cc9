#!/usr/bin/env bash
# The image build, one command: release `ros` (static), the system images,
# dist/initrd, dist/vmlinuz and dist/ros.iso (BIOS + UEFI). Downloads are
# cached under $ROS_CACHE (~/.cache/ros); rerunnable. Prints the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
source build/lib.sh
bash build/deps.sh image

log "release ros (static)"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target x86_64-unknown-linux-gnu
ros_bin=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/ros

mkdir -p dist
log "system images"
bash images/build.sh
log "initrd"
bash build/initrd.sh "$ros_bin" dist/initrd
cp "$(ls "$SYSROOT"/boot/vmlinuz-* | sort -V | tail -1)" dist/vmlinuz
log "iso"
bash build/iso.sh dist/vmlinuz dist/initrd dist/ros.iso
bash build/sizes.sh
