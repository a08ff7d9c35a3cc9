#!/usr/bin/env bash
# ros/docker: the user engine's runtime environment — iptables (nft) and
# the libraries dockerd links. The engine binaries themselves (dockerd,
# containerd, shim, runc, docker-init, docker-proxy, docker) are the
# host's, bind-mounted by the service: ~190 MB not stored twice.
recipe_docker() {
  local d=$1
  install_bins "$d" /usr/sbin/xtables-nft-multi /usr/sbin/dockerd /usr/sbin/runc /usr/sbin/ip
  # the engine binaries come from the host at run time
  rm -f "$d/usr/sbin/dockerd" "$d/usr/sbin/runc"
  local t
  for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -sf xtables-nft-multi "$d/usr/sbin/$t"
  done
  # iptables' match/target extensions are dlopen()ed: ldd cannot see them
  mkdir -p "$d/usr/lib/x86_64-linux-gnu"
  cp -a "$SYSROOT/usr/lib/x86_64-linux-gnu/xtables" "$d/usr/lib/x86_64-linux-gnu/"
  mkdir -p "$d/etc/docker" "$d/var/lib/docker"
}
