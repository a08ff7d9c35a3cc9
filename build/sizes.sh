#!/usr/bin/env bash
# Print the size of every artifact (dist/ and the image archives).
set -euo pipefail
cd "$(dirname "$0")/.."
source build/lib.sh
printf '%-28s %10s\n' artifact size
for f in dist/ros.iso dist/initrd dist/vmlinuz "${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/ros" "$ROS_WORK"/images/*.tar; do
  [ -e "$f" ] || continue
  printf "%-28s %9.1fM\n" "$(basename "$f")" "$(awk -v b="$(stat -c %s "$f")" "BEGIN{print b/1048576}")"
done
