#!/usr/bin/env bash
# Print the size of every artifact (dist/, the store, the image archives and
# each image's own layer), then the `ros` binary by section and by crate
# (from its symbols: the release profile keeps them in target/, the image
# gets a stripped copy), so growth shows when it happens.
set -euo pipefail
cd "$(dirname "$0")/.."
source build/lib.sh
mb() { awk -v b="$1" 'BEGIN{printf "%9.1fM", b/1048576}'; }
ros_bin=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/ros
printf '%-28s %10s\n' artifact size
for f in dist/ros.iso dist/initrd "$ROS_WORK"/initrd-core.img dist/vmlinuz "$ROS_WORK"/ros-store.sqfs "$ROS_WORK"/initrd/usr/bin/ros \
    "$ROS_WORK"/store/images/*.tar "$ROS_WORK"/images/*.tar "$ROS_WORK"/user-images/*.tar; do
  [ -e "$f" ] || continue
  name=$(basename "$f")
  case "$f" in
    */initrd/usr/bin/ros) name="ros (stripped, in image)" ;;
    */initrd-core.img) name="initrd in the ISO (no store)" ;;
    */ros-store.sqfs) name="ros-store.sqfs (ISO file)" ;;
    */store/images/*) name="$name (all system images)" ;;
    */user-images/lb-haproxy.tar) name="$name (cluster nodes)" ;;
    */user-images/*) name="$name (user engine)" ;;
  esac
  printf "%-30s %s\n" "$name" "$(mb "$(stat -c %s "$f")")"
done
if [ -d "$ROS_WORK/initrd" ]; then
  printf "%-28s %s\n" "initrd unpacked (tmpfs)" "$(mb "$(du -sb --exclude=ros-store.sqfs "$ROS_WORK/initrd" | cut -f1)")"
fi
if [ -d "$ROS_WORK/store" ]; then
  printf "%-28s %s\n" "store unpacked" "$(mb "$(du -sb "$ROS_WORK/store" | cut -f1)")"
fi
if [ -d "$ROS_WORK/layers" ]; then
  echo; echo "image layers (each image = base + its own layer):"
  for d in "$ROS_WORK"/layers/*/; do
    printf "  %-26s %s\n" "$(basename "$d")" "$(mb "$(du -sb "$d" | cut -f1)")"
  done
fi

[ -e "$ros_bin" ] || exit 0
echo; echo "ros binary $(mb "$(stat -c %s "$ros_bin")") ($ros_bin) by section:"
size -A "$ros_bin" | awk 'NR > 2 && $2 ~ /^[0-9]+$/ && $2 > 65536 {printf "  %-26s %9.1fM\n", $1, $2/1048576}'
if nm "$ros_bin" >/dev/null 2>&1 && [ -n "$(nm "$ros_bin" 2>/dev/null | head -1)" ]; then
  echo "ros binary by crate (code + data symbols; C code of bundled libraries as (C code)):"
  nm -S -t d --size-sort -C "$ros_bin" 2>/dev/null | awk '
    NF >= 4 {
      size = $2 + 0; $1 = $2 = $3 = ""; name = substr($0, 4)
      gsub(/^[<&*( ]+/, "", name); sub(/^(dyn |mut |const )/, "", name); gsub(/^[<&*( ]+/, "", name)
      if (name ~ /::/) { split(name, p, "::"); crate = p[1] } else crate = "(C code)"
      sub(/\[[0-9a-f]+\]$/, "", crate)
      sum[crate] += size; total += size
    }
    END {
      for (c in sum) printf "%d %s\n", sum[c], c
      printf "%d %s\n", total, "= all symbols"
    }' | sort -rn | awk 'NR <= 26 {printf "  %-26s %9.1fK\n", $2 " " $3 " " $4, $1/1024}'
else
  echo "  (no symbols: built with strip = true?)"
fi
