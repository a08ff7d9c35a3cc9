#!/usr/bin/env bash
# Build every system image as a docker-save archive in $ROS_WORK/images:
#   images/build.sh [NAME...]     (default: all)
# Each image is the shared base layer plus its own layer from images/NAME.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../build/lib.sh"
source "$here/lib.sh"
source "$here/../build/iptables.sh"
for f in "$here"/{base,udev,network,ntp,syslog,console,docker}.sh; do source "$f"; done

ALL=(base udev network ntp syslog console docker)
names=("$@"); [ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")
out=$ROS_WORK/images
mkdir -p "$out"
unpack_debs busybox-static udev iproute2 chrony util-linux dropbear-bin iptables docker.io runc crun sudo libpam-modules

layers=$ROS_WORK/layers
rm -rf "$layers"; mkdir -p "$layers/base"
recipe_base "$layers/base"
strip_docs "$layers/base"
for n in "${names[@]}"; do
  if [ "$n" = base ]; then
    save_archive "$out/base.tar" "ros/base:$ROS_VERSION" '["/bin/sh"]' "$layers/base"
  else
    mkdir -p "$layers/$n"
    "recipe_$n" "$layers/$n"
    strip_docs "$layers/$n"
    # libraries already in base are not repeated
    (cd "$layers/base" && find . -type f -path './lib/*') | while read -r f; do
      if [ -f "$layers/$n/$f" ]; then rm -f "$layers/$n/$f"; fi
    done
    save_archive "$out/$n.tar" "ros/$n:$ROS_VERSION" '["/bin/sh"]' "$layers/base" "$layers/$n"
  fi
  log "image ros/$n:$ROS_VERSION $(du -h "$out/$n.tar" | cut -f1)"
done

# busybox:latest for the user engine (preloaded by `ros user-docker`, so
# `docker run --rm busybox echo hi` works without a registry): the
# image's own static busybox and its applets, nothing else.
uout=$ROS_WORK/user-images
rm -rf "$uout" "$layers/busybox"; mkdir -p "$uout" "$layers/busybox"/{bin,etc,tmp,root}
chmod 1777 "$layers/busybox/tmp"
cp "$SYSROOT/bin/busybox" "$layers/busybox/bin/busybox"
for a in $("$SYSROOT/bin/busybox" --list-full); do
  [ -e "$layers/busybox/$a" ] || { mkdir -p "$layers/busybox/$(dirname "$a")"; ln -s /bin/busybox "$layers/busybox/$a"; }
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$layers/busybox/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$layers/busybox/etc/group"
save_archive "$uout/busybox.tar" "busybox:latest" '["sh"]' "$layers/busybox"
log "user image busybox:latest $(du -h "$uout/busybox.tar" | cut -f1)"

# The load balancer service's HAProxy image, preloaded into every node's
# user engine (no registry: an LB works on an air-gapped cluster).
bash "$here/haproxy.sh"

# Operator images baked into the ISO (air-gapped clusters): ROS_PRELOAD is a
# space-separated list of `docker save` archives (.tar, .tar.gz, .tgz), or
# @FILE naming a file with one archive path per line. The user engine loads
# each once per content at boot, beside the archives a node keeps in
# /var/lib/ros/preload/docker/ on its state disk.
preload_list=${ROS_PRELOAD:-}
case $preload_list in
  @*) preload_list=$(grep -v '^[[:space:]]*#' "${preload_list#@}" || true) ;;
esac
for a in $preload_list; do
  case $a in
    *.tar|*.tar.gz|*.tgz) ;;
    *) echo "ROS_PRELOAD: $a: not a docker save archive (.tar, .tar.gz, .tgz)" >&2; exit 1 ;;
  esac
  [ -f "$a" ] || { echo "ROS_PRELOAD: $a: no such file" >&2; exit 1; }
  cp "$a" "$uout/"
  log "user image $(basename "$a") $(du -h "$a" | cut -f1) (ROS_PRELOAD)"
done
