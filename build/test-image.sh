#!/usr/bin/env bash
# Write a tiny busybox image as a `docker save`-format archive, without a
# registry, a Dockerfile or even a running dockerd: a rootfs from Debian's
# busybox-static, one layer, a config and a manifest.
#   build/test-image.sh OUT.tar [TAG]      (default tag ros-test/busybox:1)
set -euo pipefail
out=$1
tag=${2:-ros-test/busybox:1}
# A static busybox: $ROS_BUSYBOX, else /bin/busybox when it is static (the
# busybox-static package), else unpacked from `apt-get download
# busybox-static` into a cache (/bin/busybox may be the dynamic one).
static() { [ -x "$1" ] && ! ldd "$1" >/dev/null 2>&1; }
bb=${ROS_BUSYBOX:-/bin/busybox}
if ! static "$bb"; then
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/ros/busybox-static
  if ! static "$cache/bin/busybox"; then
    dl=$(mktemp -d)
    (cd "$dl" && apt-get download -q busybox-static >/dev/null 2>&1) || true
    deb=$(ls "$dl"/busybox-static_*.deb 2>/dev/null | head -1)
    if [ -z "$deb" ]; then
      echo "test-image: no static busybox: install busybox-static or set ROS_BUSYBOX" >&2
      exit 1
    fi
    dpkg -x "$deb" "$dl/x"
    mkdir -p "$(dirname "$cache")"
    rm -rf "$cache.tmp$$" && mv "$dl/x" "$cache.tmp$$"
    rm -rf "$cache" && mv "$cache.tmp$$" "$cache"
    rm -rf "$dl"
  fi
  bb=$cache/bin/busybox
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/rootfs
mkdir -p "$root"/{bin,sbin,tmp,proc,sys,dev,etc,var/run,run,usr/bin}
cp "$bb" "$root/bin/busybox"
for a in sh ash sleep echo cat true false touch ls mkdir rm date kill ps mount umount \
         id env test grep sed head tail wc hostname ip ifconfig nc printf trap; do
  ln -sf busybox "$root/bin/$a"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
mkdir -p "$tmp/img"
tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$tmp/layer.tar" .
lsha=$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)
mkdir -p "$tmp/img/$lsha"
mv "$tmp/layer.tar" "$tmp/img/$lsha/layer.tar"
printf '{"architecture":"amd64","os":"linux","created":"2026-01-01T00:00:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"2026-01-01T00:00:00Z","created_by":"build/test-image.sh"}]}' "$lsha" >"$tmp/config.json"
csha=$(sha256sum "$tmp/config.json" | cut -d' ' -f1)
mv "$tmp/config.json" "$tmp/img/$csha.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$csha" "$tag" "$lsha" >"$tmp/img/manifest.json"
mkdir -p "$(dirname "$out")"
tar -C "$tmp/img" --numeric-owner --owner=0 --group=0 -cf "$out" .
