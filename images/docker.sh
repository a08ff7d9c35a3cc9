#!/usr/bin/env bash
# ros/docker: the user engine's runtime environment — iptables (legacy
# backend) and the libraries dockerd links. The engine binaries themselves
# (dockerd, containerd, shim, runc, crun, docker-init, docker-proxy, docker) are the
# host's, bind-mounted by the service: ~190 MB not stored twice.
recipe_docker() {
  local d=$1
  # the libraries of dockerd, runc and crun (the engine's default runtime)
  install_bins "$d" /usr/sbin/dockerd /usr/sbin/runc /usr/bin/crun /sbin/ip
  # iptables: legacy backend, static (build/iptables.sh says why). All on
  # the node that runs iptables uses this image (the user engine, the
  # cluster agent), so every rule sits in the one backend.
  local ipt; ipt=$(static_iptables)
  install -m 755 "$ipt" "$d/usr/sbin/xtables-legacy-multi"
  # the engine binaries come from the host at run time
  rm -f "$d/usr/sbin/dockerd" "$d/usr/sbin/runc" "$d/usr/bin/crun"
  local t
  for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -sf xtables-legacy-multi "$d/usr/sbin/$t"
  done
  mkdir -p "$d/etc/docker" "$d/var/lib/docker"
}
