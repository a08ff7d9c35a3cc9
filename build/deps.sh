#!/usr/bin/env bash
# Install what the build and the tests need on a fresh Debian machine.
# Idempotent and quick when everything is already there.
#   build/deps.sh            packages for the tests
#   build/deps.sh image      also the packages for building and booting the ISO
set -euo pipefail

# busybox-static: the local test image of the cluster tests; wrk: build/bench-cluster.sh;
# python3-venv: tests/cluster_gdapi.rs installs Rancher's gdapi-python client
# from PyPI into a venv of its own. dnsutils: dig, the real client of the DNS
# server tests. iptables: the overlay's NAT/isolation rules
# (tests/cluster_network.rs). python3 (image): qemu-tests/console.py drives
# the serial console. chromium + nodejs: tests/ui_browser.rs drives the web UI
# in headless Chromium with playwright-core (npm, fetched into the target dir);
# build.rs vendors the UI terminal (xterm.js) with npm at build time.
pkgs=(ca-certificates curl gcc pkg-config iproute2 iptables docker.io busybox-static wrk
      python3 python3-venv dnsutils chromium nodejs)
# npm: Debian packages it apart from nodejs; a nodejs from elsewhere bundles it.
command -v npm >/dev/null || pkgs+=(npm)
if [ "${1:-}" = image ]; then
  pkgs+=(qemu-system-x86 xorriso isolinux syslinux grub-pc-bin grub-efi-amd64-bin
         mtools cpio kmod squashfs-tools busybox-static ovmf xz-utils zstd lz4
         openssh-client e2fsprogs python3 make patch)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
  echo "deps: cargo not found; install a Rust toolchain (rustup) first" >&2
  exit 1
fi
