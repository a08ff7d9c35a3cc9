#!/usr/bin/env bash
# The image build, one command: release `ros` (static), the system images,
# dist/initrd, dist/vmlinuz and dist/ros.iso (BIOS + UEFI). Downloads are
# cached under $ROS_CACHE (~/.cache/ros); rerunnable. Prints the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
source build/lib.sh
bash build/deps.sh image

# step N NAME: say which step starts; done: how long the last one took
t_all=$SECONDS t_step=$SECONDS
step() { log "step $1/4: $2"; t_step=$SECONDS; }
done_() { log "  done in $((SECONDS - t_step)) s: $*"; }
size() { du -h "$1" | cut -f1; }

step 1 "release ros (static; the first build compiles every crate, minutes)"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target x86_64-unknown-linux-gnu
ros_bin=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/ros
done_ "ros $(size "$ros_bin")"

mkdir -p dist
step 2 "system images (Debian packages cached in $DEBS)"
bash images/build.sh
done_ "$(ls "$ROS_WORK"/images/*.tar | wc -l) images, $(du -ch "$ROS_WORK"/images/*.tar | tail -1 | cut -f1)"
step 3 "initrd"
bash build/initrd.sh "$ros_bin" dist/initrd
cp "$(ls "$SYSROOT"/boot/vmlinuz-* | sort -V | tail -1)" dist/vmlinuz
done_ "dist/initrd $(size dist/initrd), dist/vmlinuz $(size dist/vmlinuz)"
step 4 "iso"
bash build/iso.sh dist/vmlinuz "$ROS_WORK/initrd-core.img" "$ROS_WORK/ros-store.sqfs" dist/ros.iso
done_ "dist/ros.iso $(size dist/ros.iso)"
log "built in $((SECONDS - t_all)) s"
bash build/sizes.sh
