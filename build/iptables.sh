#!/usr/bin/env bash
# iptables for the ros/docker image: Debian's iptables source (the same
# 1.8.9-2 as the bookworm package, its patches applied), legacy backend
# only, built as one static, position-dependent xtables-legacy-multi with
# every match/target extension linked in. Sourced by images/build.sh:
#   static_iptables     prints the path of the built binary
#
# Why not Debian's binary: dockerd runs iptables ~70 times while it starts
# (and once or twice per published port), the cluster agent more. Debian's
# xtables-*-multi loads four shared libraries and dlopen()s an extension
# per match, and under QEMU/TCG every exec translates that code again (the
# libraries land at new addresses each time). Measured per call in a
# booted guest (512 MB, TCG, after boot), two runs: `iptables -C` took
# 139–162 ms with Debian's nft binary against 33–63 ms with its legacy one
# (run A), and 74–98 ms with Debian's legacy binary against 9–18 ms with
# this one (run B); an insert and a delete 180–204 ms against 32–40 ms
# (run B). In the boot, dockerd's ~70 calls went from 8.4 s to 2.3 s.
#
# Sources come from Debian's archive (deb.debian.org, checked against the
# hashes below), cached in $ROS_CACHE/src; the built binary is cached in
# $ROS_CACHE/build (keyed by the hashes and this file), so a rebuild costs
# nothing, and a fresh machine ~20 s.
IPT_VERSION=1.8.9
IPT_DEB_REV=2
IPT_ORIG_SHA256=ef6639a43be8325a4f8ea68123ffac236cb696e8c78501b64e8106afb008c87f
IPT_DEBIAN_SHA256=5415053f2033a351cf85c33e13d67388770f803e8bdce24f46371ea6e7488a6b
IPT_POOL=${ROS_DEBIAN_MIRROR:-https://deb.debian.org/debian}/pool/main/i/iptables

# fetch_src FILE SHA256: FILE from Debian's pool into $ROS_CACHE/src, checked.
ipt_fetch_src() {
  local f=$1 sum=$2 dir=$ROS_CACHE/src
  mkdir -p "$dir"
  if ! echo "$sum  $dir/$f" | sha256sum -c --quiet >/dev/null 2>&1; then
    log "downloading $f"
    curl -fsSL --retry 3 -o "$dir/$f.part" "$IPT_POOL/$f"
    echo "$sum  $dir/$f.part" | sha256sum -c --quiet >&2 ||
      { echo "iptables source $f: sha256 mismatch" >&2; return 1; }
    mv "$dir/$f.part" "$dir/$f"
  fi
}

static_iptables() {
  local key; key=$(cat "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)
  local out=$ROS_CACHE/build/iptables-$IPT_VERSION-$IPT_DEB_REV-static-$key
  if [ -x "$out/xtables-legacy-multi" ]; then
    echo "$out/xtables-legacy-multi"; return
  fi
  local orig=iptables_$IPT_VERSION.orig.tar.xz deb=iptables_$IPT_VERSION-$IPT_DEB_REV.debian.tar.xz
  ipt_fetch_src "$orig" "$IPT_ORIG_SHA256"
  ipt_fetch_src "$deb" "$IPT_DEBIAN_SHA256"
  local src; src=$(mktemp -d)
  tar -xf "$ROS_CACHE/src/$orig" -C "$src"
  local top=$src/iptables-$IPT_VERSION
  tar -xf "$ROS_CACHE/src/$deb" -C "$top"
  local p
  while read -r p; do
    case $p in ''|'#'*) continue ;; esac
    patch -s -p1 -d "$top" < "$top/debian/patches/$p"
  done < "$top/debian/patches/series"
  log "iptables $IPT_VERSION-$IPT_DEB_REV: building a static legacy xtables-legacy-multi"
  (
    cd "$top"
    ./configure -q --disable-nftables --enable-static --disable-shared \
      --disable-devel --disable-libipq --disable-bpf-compiler \
      --disable-nfsynproxy --disable-connlabel \
      --prefix=/usr --sbindir=/usr/sbin CFLAGS="-O2" >/dev/null
    # -all-static: libtool's word for a static, non-PIE executable
    make -s -j"$(nproc)" LDFLAGS="-all-static" >/dev/null 2>&1 ||
      make -j1 LDFLAGS="-all-static" >&2
  )
  local bin=$top/iptables/xtables-legacy-multi
  # static and position-dependent: no program interpreter, ELF type EXEC
  if readelf -l "$bin" | grep -q INTERP || ! readelf -h "$bin" | grep -q 'EXEC'; then
    echo "iptables: $bin is not a static position-dependent executable" >&2; return 1
  fi
  mkdir -p "$out"
  strip -o "$out/xtables-legacy-multi.part" "$bin"
  mv "$out/xtables-legacy-multi.part" "$out/xtables-legacy-multi"
  rm -rf "$src"
  echo "$out/xtables-legacy-multi"
}
