#!/usr/bin/env bash
# Benchmark of the service manager under --root (a figure, not a test):
#   - time from "start system-dockerd" (sysinit starts it) to "all default
#     services running" (sysinit's own `ros … started` line), cold (fresh
#     root: image load included) and warm (second boot of the same root);
#   - time until the user engine (system service `docker`) answers;
#   - idle RSS of `ros sysinit`, system-dockerd (+ its containerd) and the
#     user dockerd, after IDLE seconds;
#   - time for a clean shutdown (SIGTERM to sysinit until it exits).
# The default services are stand-ins with the shipped names, ordering and
# namespaces (busybox loops; `docker` is the real user dockerd).
#   sudo build/bench-sysinit.sh            RUNS=3 IDLE=10 ROS_BIN=target/release/ros
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench: must run as root" >&2; exit 1; }
RUNS=${RUNS:-3}
IDLE=${IDLE:-10}
if [ -z "${ROS_BIN:-}" ]; then
  ROS_BIN=target/release/ros
  # A stale release build may predate sysinit: then use the debug build.
  "$ROS_BIN" sysinit --help >/dev/null 2>&1 || { cargo build -q; ROS_BIN=target/debug/ros; }
fi
ROS_BIN=$(readlink -f "$ROS_BIN")
root=$(mktemp -d /tmp/ros-bench-XXXXXX)
sbr=rbs$$; ubr=rbu$$
sysinit_pid=
cleanup() {
  [ -n "$sysinit_pid" ] && kill -TERM "$sysinit_pid" 2>/dev/null && wait "$sysinit_pid" 2>/dev/null || true
  grep -o " $root[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip link del "$sbr" 2>/dev/null || true
  ip link del "$ubr" 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT
ip link add "$sbr" type bridge && ip addr add 10.230.$(( $$ % 250 )).1/24 dev "$sbr" && ip link set "$sbr" up
ip link add "$ubr" type bridge && ip addr add 10.231.$(( $$ % 250 )).1/24 dev "$ubr" && ip link set "$ubr" up

img=ros-test/busybox:1
bash build/test-image.sh "$root/usr/share/ros/images/busybox.tar" "$img"
mkdir -p "$root/usr/bin" "$root/var/lib/ros/conf"
ln -s "$ROS_BIN" "$root/usr/bin/ros"
ln -s /usr "$root/host-usr"; ln -s /usr/lib "$root/host-lib"; ln -s /usr/lib64 "$root/host-lib64"
loop="[sh, -c, 'trap \"exit 0\" TERM; while true; do sleep 1; done']"
cat >"$root/usr/share/ros/os-config.yml" <<YML
ros:
  system_docker:
    host: [unix:///var/run/system-docker.sock]
    data_root: /var/lib/system-docker
    exec_root: /var/run/system-docker
    pid_file: /var/run/system-docker.pid
    bridge: $sbr
    iptables: false
    ip_masq: false
    userland_proxy: false
    storage_driver: overlay2
    log_opts: {max-size: 10m, max-file: "2"}
  services:
    udev-cold: {image: $img, command: "true", labels: {io.rancher.os.detach: "false"}, net: host, uts: host, privileged: true}
    udev: {image: $img, command: $loop, labels: {io.rancher.os.after: udev-cold}, net: host, uts: host, privileged: true, restart: always}
    network: {image: $img, command: $loop, labels: {io.rancher.os.after: udev}, net: host, uts: host, pid: host, privileged: true, restart: always}
    ntp: {image: $img, command: $loop, labels: {io.rancher.os.after: network}, net: host, uts: host, privileged: true, restart: always}
    syslog: {image: $img, command: $loop, labels: {io.rancher.os.after: network}, net: host, uts: host, restart: always}
    cloud-init-execute: {image: $img, command: "true", labels: {io.rancher.os.detach: "false", io.rancher.os.after: "ntp,syslog"}, net: host, uts: host, privileged: true}
    console: {image: $img, command: $loop, labels: {io.rancher.os.after: cloud-init-execute}, net: host, uts: host, pid: host, ipc: host, privileged: true, restart: always}
    docker:
      image: $img
      command: [/bin/ros, user-docker]
      labels: {io.rancher.os.after: console}
      net: host
      uts: host
      pid: host
      ipc: host
      privileged: true
      restart: always
      volumes: [/usr/bin/ros:/bin/ros:ro, /host-usr:/usr:ro, /host-lib:/lib:ro, /host-lib64:/lib64:ro,
                /var/lib/ros:/var/lib/ros, /var/lib/docker:/var/lib/docker, /var/run:/var/run,
                /var/log:/var/log, /sys/fs/cgroup:/sys/fs/cgroup, /lib/modules:/lib/modules:ro, /dev:/dev]
YML
cat >"$root/var/lib/ros/conf/cloud-config.yml" <<YML
ros:
  docker:
    host: [unix:///var/run/docker.sock]
    data_root: /var/lib/docker
    bridge: $ubr
    iptables: false
    ip_masq: false
    userland_proxy: false
    storage_driver: overlay2
YML

rss() { awk '/^VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }
now_ms() { date +%s%3N; }

echo "ros bench-sysinit: binary $ROS_BIN, $RUNS runs, idle $IDLE s, root $root"
for run in $(seq 1 "$RUNS"); do
  kind=warm; [ "$run" -eq 1 ] && kind=cold
  log="$root/sysinit-$run.log"
  rm -f "$root/var/run/ros/sysinit.status"
  t0=$(now_ms)
  NO_COLOR=1 "$ROS_BIN" --root "$root" sysinit >"$log" 2>&1 &
  sysinit_pid=$!
  until [ -e "$root/var/run/ros/sysinit.status" ]; do
    kill -0 "$sysinit_pid" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.05
  done
  t_all=$(( $(now_ms) - t0 ))
  if grep -qv -P '\t(running|completed|created)$' "$root/var/run/ros/sysinit.status"; then
    echo "bench: services failed:"; cat "$root/var/run/ros/sysinit.status"; cat "$log"; exit 1
  fi
  until docker -H "unix://$root/var/run/docker.sock" version >/dev/null 2>&1; do
    kill -0 "$sysinit_pid" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.05
  done
  t_user=$(( $(now_ms) - t0 ))
  line=$(grep -o 'ros [0-9.]* started.*' "$log" | sed 's/\x1b\[[0-9;]*m//g')
  bad=$(grep -cv -P '\t(running|completed|created)$' "$root/var/run/ros/sysinit.status" || true)
  printf 'run %d (%s): all default services running %6d ms after start (sysinit: %s); user docker answering %6d ms; services not ok: %s\n' \
    "$run" "$kind" "$t_all" "$line" "$t_user" "$bad"
  sleep "$IDLE"
  dpid=$(cat "$root/var/run/system-docker.pid")
  cpid=$(pgrep -P "$dpid" containerd | head -1 || true)
  upid=$(cat "$root/var/run/docker.pid" 2>/dev/null || echo 0)
  printf '        idle RSS: ros sysinit %s | system-dockerd %s | its containerd %s | user dockerd %s\n' \
    "$(rss "$sysinit_pid")" "$(rss "$dpid")" "$( [ -n "$cpid" ] && rss "$cpid" || echo -)" "$(rss "$upid")"
  t1=$(now_ms)
  kill -TERM "$sysinit_pid"; wait "$sysinit_pid" || true; sysinit_pid=
  printf '        clean shutdown (SIGTERM → services stopped in reverse order → dockerd stopped): %d ms\n' "$(( $(now_ms) - t1 ))"
done
