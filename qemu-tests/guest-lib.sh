#!/bin/sh
# Sourced by each case's check.sh inside the guest (the test-only
# `qemu-check` system service: console image, host pid/net, the host's root
# at /host). Prints verdict lines on the serial console, LinuxKit-style.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
say() { echo "$*" > /dev/console; echo "$*"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
ok() { say "CHECK ok $1"; }
bad() { say "CHECK FAIL $1"; }
# chk NAME CMD...: run CMD, ok when it succeeds, else print its output
chk() {
  name=$1; shift
  if "$@" > /tmp/chk.out 2>&1; then ok "$name"; else bad "$name"; sed 's/^/  | /' /tmp/chk.out > /dev/console; fi
}
sdocker() { docker -H unix:///var/run/system-docker.sock "$@"; }
# wait_for SECONDS CMD...: retry CMD every second until SECONDS have passed
wait_for() {
  end=$(( $(cut -d. -f1 /proc/uptime) + $1 )); shift
  while [ "$(cut -d. -f1 /proc/uptime)" -lt "$end" ]; do
    "$@" > /dev/null 2>&1 && return 0
    sleep 1
  done
  return 1
}
rss_of() { # RSS (kB) of the first process whose cmdline matches $1
  for p in /proc/[0-9]*; do
    if tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -q -- "$1"; then
      awk '/VmRSS/{print $2}' "$p/status"; return
    fi
  done
}
figures() {
  say "FIGURE mem $(free -m | awk '/Mem:/{print "total_mb=" $2 " used_mb=" $3 " free_mb=" $4 " shared_mb=" $5 " buff_cache_mb=" $6}')"
  say "FIGURE meminfo_kb $(awk '/^(AnonPages|Shmem|Slab|SReclaimable|SUnreclaim|KernelStack|PageTables|Percpu|VmallocUsed|Mapped):/{sub(":", "", $1); printf "%s=%s ", $1, $2}' /proc/meminfo)"
  say "FIGURE rss_kb init=$(awk '/VmRSS/{print $2}' /proc/1/status) sysinit=$(rss_of 'ros sysinit') system_dockerd=$(rss_of 'system-docker.sock') system_containerd=$(rss_of 'system-docker/containerd') user_dockerd=$(rss_of 'dockerd --host=unix:///var/run/docker.sock') cluster_agent=$(rss_of 'ros cluster up')"
}
# rss_all: idle RSS (kB) of every process above 1 MB, and the tmpfs root
rss_all() {
  say "FIGURE tmpfs_root_kb=$(df -k / | awk 'NR==2{print $3}') store_kb=$(df -k /usr/lib/ros-store 2>/dev/null | awk 'NR==2{print $3}')"
  for p in /proc/[0-9]*; do
    r=$(awk '/VmRSS/{print $2}' "$p/status" 2>/dev/null)
    [ -n "$r" ] && [ "$r" -gt 1024 ] || continue
    a=$(awk '/RssAnon/{print $2}' "$p/status" 2>/dev/null)
    say "FIGURE rss_kb $r anon=$a $(tr '\0' ' ' < "$p/cmdline" 2>/dev/null | cut -c1-70)"
  done
}
